"""Load test of the FastAPI example on PostgreSQL: 50 concurrent clients driving grid
cases over loopback, the sync `Engine` in the thread pool vs `AsyncEngine`, in one run.

Each mode starts the example under uvicorn (127.0.0.1, a free port, one worker
process) on a fresh PostgreSQL schema. Every client opens cases and fires
``note`` steps at a small set of shared cases with ``If-Match`` (so clients race
on the same cases: a 412 is re-read and retried), for a fixed time. Reported per
mode: steps per second, p50 and p99 latency of a step, 412s retried, and the
lost-update check — every case's stored version equals 1 + the steps the clients
saw succeed on it, and every case verifies.

    python benchmarks/http_load.py                # 50 clients, 10 s per mode
    python benchmarks/http_load.py --quick        # 10 clients, 2 s per mode (CI smoke)

Needs the PostgreSQL server (GRIDFLOW_PG_URL, default the local one), uvicorn and
httpx. Asserts nothing about time; exits 1 if an update was lost, a case fails
verification, or a response was a 5xx.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

import gridflow

ROOT = Path(__file__).resolve().parent.parent
PG_URL = os.environ.get("GRIDFLOW_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
HEADERS = {"X-Actor-Id": "load-1", "X-Actor-Roles": "coordinator,grid_worker",
           "X-Actor-Grids": "*"}
GRID = "load-grid"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(mode: str, schema: str, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "GRIDFLOW_DB": PG_URL, "GRIDFLOW_DB_SCHEMA": schema,
           "GRIDFLOW_API_ENGINE": mode}
    return subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app:app", "--app-dir",
         str(ROOT / "examples" / "fastapi_app"), "--host", "127.0.0.1", "--port", str(port),
         "--log-level", "warning", "--no-access-log",
         # Longer than the run's pauses: no keep-alive connection closes under a request.
         "--timeout-keep-alive", "60"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


async def _wait_up(base: str, proc: subprocess.Popen[bytes]) -> None:
    async with httpx.AsyncClient(base_url=base) as client:
        for _ in range(300):
            if proc.poll() is not None:
                raise SystemExit(f"uvicorn exited: {proc.stderr.read().decode()[-2000:]}"
                                 if proc.stderr else "uvicorn exited")
            try:
                if (await client.get("/openapi.json")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit("uvicorn did not start")


async def _drive(base: str, clients: int, seconds: float, shared: int) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, headers=HEADERS, limits=limits,
                                 timeout=60) as http:
        ids = []
        for i in range(shared):
            r = await http.post("/cases", json={"workflow": "grid_case", "grid": GRID,
                                                "data": {"title": f"热点 {i}",
                                                         "source": "resident"}})
            r.raise_for_status()
            ids.append(r.json()["id"])
        versions = {i: 1 for i in ids}
        done: Counter[str] = Counter()
        unknown: Counter[str] = Counter()
        latencies: list[float] = []
        statuses: Counter[int] = Counter()
        stop = time.perf_counter() + seconds

        async def client(n: int) -> None:
            k = n
            while time.perf_counter() < stop:
                case_id = ids[k % len(ids)]
                k += 1
                tag = versions[case_id]
                t0 = time.perf_counter()
                try:
                    r = await http.post(f"/cases/{case_id}/triggers/note",
                                        headers={"If-Match": f'"{tag}"'},
                                        json={"payload": {"text": f"c{n} 第{k}次"}})
                except httpx.TransportError:
                    # The connection dropped: the step may or may not have landed.
                    unknown[case_id] += 1
                    continue
                latencies.append(time.perf_counter() - t0)
                statuses[r.status_code] += 1
                if r.status_code == 200:
                    done[case_id] += 1
                    versions[case_id] = max(versions[case_id], r.json()["version"])
                elif r.status_code == 412:
                    versions[case_id] = max(versions[case_id], r.json().get("actual") or tag)

        started = time.perf_counter()
        await asyncio.gather(*(client(n) for n in range(clients)))
        elapsed = time.perf_counter() - started
    return {"ids": ids, "done": done, "unknown": unknown, "latencies": latencies,
            "statuses": statuses, "elapsed": elapsed}


def _check(schema: str, result: dict[str, Any]) -> list[str]:
    problems = []
    store = gridflow.SQLStore(PG_URL, schema=schema)
    engine = gridflow.Engine(store, entry_points=False)
    try:
        for case_id in result["ids"]:
            case = engine.verify(case_id)
            done, unknown = result["done"][case_id], result["unknown"][case_id]
            # A request whose connection dropped may have landed: at most that many more.
            if not 1 + done <= case.version <= 1 + done + unknown:
                problems.append(f"case {case_id}: version {case.version}, but {done} step(s) "
                                f"answered 200 (and {unknown} lost their connection)")
    finally:
        store.close()
    if any(code >= 500 for code in result["statuses"]):
        problems.append(f"5xx answers: {dict(result['statuses'])}")
    return problems


def _drop(schema: str) -> None:
    engine = sa.create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 clients, 2 s per mode")
    parser.add_argument("--clients", type=int, default=None)
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--cases", type=int, default=10, help="shared cases (default 10)")
    args = parser.parse_args()
    clients = args.clients or (10 if args.quick else 50)
    seconds = args.seconds or (2.0 if args.quick else 10.0)
    rows, failed = [], False
    for mode in ("sync", "async"):
        schema = f"gfload_{uuid.uuid4().hex[:12]}"
        port = _port()
        proc = _serve(mode, schema, port)
        try:
            base = f"http://127.0.0.1:{port}"
            asyncio.run(_wait_up(base, proc))
            result = asyncio.run(_drive(base, clients, seconds, args.cases))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        problems = _check(schema, result)
        _drop(schema)
        lat = sorted(result["latencies"])
        steps = sum(result["done"].values())
        rows.append((mode, steps / result["elapsed"], statistics.median(lat) * 1000,
                     lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000,
                     result["statuses"][412], sum(result["unknown"].values()),
                     "none" if not problems else "; ".join(problems)))
        failed = failed or bool(problems)
    print(f"HTTP load: {clients} clients, {seconds:g} s per mode, {args.cases} shared cases, "
          "PostgreSQL, uvicorn on 127.0.0.1 (one process)")
    print(f"{'engine':<28} {'steps/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'412 retried':>12} "
          f"{'dropped':>8}  lost updates / problems")
    names = {"sync": "Engine in the thread pool", "async": "AsyncEngine"}
    for mode, rate, p50, p99, retried, dropped, problems in rows:
        print(f"{names[mode]:<28} {rate:>9.1f} {p50:>8.1f} {p99:>8.1f} {retried:>12} "
              f"{dropped:>8}  {problems}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
