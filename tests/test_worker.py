"""`gridflow worker`: the timer as a process — rounds, stop requests, several workers,
log lines, the metrics endpoint and the exit codes of ``--once``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import gridflow
from gridflow import Actor, Engine, FixedClock, MemoryStore
from gridflow.cli import main
from gridflow.store import Write
from gridflow.worker import RunReport, TaskResult, TickTask, Worker, WorkerMetrics

GRID = "华三-1"
T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
reporter = Actor("网格员-王", ["grid_worker"], [GRID])
#: Planted in every case: no log line may ever show it.
SECRET_NAME = "蒯秀英"


def _open(engine: Engine, n: int) -> list[str]:
    return [engine.open("grid_case", version=1, actor=reporter, grid=GRID,
                        data={"title": f"弄堂违规堆物 {i}", "source": "visit",
                              "note": f"来电人 {SECRET_NAME}"}).id for i in range(n)]


def _overdue_events(engine: Engine, case_id: str) -> int:
    return sum(1 for e in engine.history(case_id) if e.trigger == "overdue")


def test_one_round_acts_on_every_overdue_case_once() -> None:
    clock = FixedClock(T0)
    engine = Engine(clock=clock, entry_points=False)
    ids = _open(engine, 7)
    clock.advance(timedelta(days=2))
    report = Worker(engine, tasks=[TickTask(batch=3)]).run_once()
    assert (report.steps, report.ok, report.at) == (7, True, clock.now())
    assert report.results == (TaskResult("tick", steps=7),)
    assert [_overdue_events(engine, i) for i in ids] == [1] * 7
    assert Worker(engine).run_once().steps == 0  # marked once per breach


def test_the_loop_runs_until_stopped_without_sleeping() -> None:
    clock = FixedClock(T0)
    engine = Engine(clock=clock, entry_points=False)
    _open(engine, 2)
    pauses: list[float] = []
    worker: Worker

    def wait(seconds: float) -> bool:
        # The pause between rounds: advance the test's clock instead of sleeping.
        pauses.append(seconds)
        clock.advance(timedelta(days=1))
        if len(pauses) == 3:
            worker.stop()
        return worker.stopping

    worker = Worker(engine, every=30, wait=wait)
    assert worker.run(install_signals=False) == 0
    assert pauses == [30.0, 30.0, 30.0]
    assert worker.last is not None and worker.last.steps == 0


def test_a_stop_request_lets_the_batch_in_hand_finish_and_no_more() -> None:
    clock = FixedClock(T0)
    engine = Engine(clock=clock, entry_points=False)
    ids = _open(engine, 10)
    clock.advance(timedelta(days=2))
    result = TickTask(batch=4)(engine, clock.now(), lambda: True)
    assert (result.steps, result.complete) == (4, False)
    assert sorted(_overdue_events(engine, i) for i in ids) == [0] * 6 + [1] * 4
    for case_id in ids:
        engine.verify(case_id)  # nothing half done


class _Broken(MemoryStore):
    """Commits for some cases fail like a broken connection."""

    def __init__(self) -> None:
        super().__init__()
        self.broken: set[str] = set()

    def commit(self, writes: Sequence[Write]) -> None:
        if any(w.case.id in self.broken for w in writes):
            raise gridflow.StoreError("connection reset by peer")
        super().commit(writes)


def test_a_case_left_for_later_is_a_failure_of_the_round() -> None:
    store = _Broken()
    clock = FixedClock(T0)
    engine = Engine(store=store, clock=clock, entry_points=False)
    bad, *_ = _open(engine, 3)
    store.broken.add(bad)
    clock.advance(timedelta(days=2))
    worker = Worker(engine)
    report = worker.run_once()
    assert (report.steps, report.results[0].failures, report.ok) == (2, 1, False)
    assert worker.run(install_signals=False, once=True) == 0  # still claimed: nothing due
    store.broken.clear()
    clock.advance(timedelta(minutes=2))  # the claim lapses
    assert worker.run_once().steps == 1


def test_a_task_that_cannot_run_is_reported_and_the_worker_goes_on() -> None:
    class Down:
        name = "tick"

        def __call__(self, engine: Engine, now: datetime, stopping: Any) -> TaskResult:
            raise gridflow.StoreError("could not connect to server")

    worker = Worker(Engine(entry_points=False), tasks=[Down()])
    report = worker.run_once()
    assert report.results[0].error == "StoreError: could not connect to server"
    assert not report.ok


@pytest.mark.parametrize("bad", [0, -1, True, "60"])
def test_the_interval_must_be_a_positive_number(bad: Any) -> None:
    with pytest.raises(gridflow.InvalidArgument, match="positive number of seconds"):
        Worker(Engine(entry_points=False), every=bad)


def test_task_names_must_differ_and_batches_are_bounded() -> None:
    with pytest.raises(gridflow.InvalidArgument, match="must differ"):
        Worker(Engine(entry_points=False), tasks=[TickTask(), TickTask()])
    with pytest.raises(gridflow.InvalidArgument, match="from 1 to"):
        TickTask(batch=0)


# -- the metrics endpoint -----------------------------------------------------------------


def _get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.headers["Content-Type"], answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read()


def test_metrics_and_health_over_http() -> None:
    ticks = [0.0]
    metrics = WorkerMetrics(every=10, monotonic=lambda: ticks[0])
    port = metrics.serve(0)
    try:
        base = f"http://127.0.0.1:{port}"
        assert _get(base + "/healthz")[0] == 503  # no run yet
        metrics.observe(RunReport(T0, 0.5, (TaskResult("tick", steps=5, failures=1),)))
        assert _get(base + "/healthz")[0] == 503  # a run that left a case behind
        metrics.observe(RunReport(T0 + timedelta(minutes=1), 0.25,
                                  (TaskResult("tick", steps=2),)))
        status, kind, body = _get(base + "/healthz")
        assert (status, body) == (200, b"ok\n")
        status, kind, body = _get(base + "/metrics")
        assert status == 200 and kind.startswith("text/plain; version=")
        text = body.decode()
        assert 'gridflow_worker_steps_total{task="tick"} 7.0' in text
        assert 'gridflow_worker_failures_total{task="tick"} 1.0' in text
        assert "gridflow_worker_runs_total 2.0" in text
        [last] = [line for line in text.splitlines()
                  if line.startswith("gridflow_worker_last_success_timestamp_seconds ")]
        assert float(last.split()[1]) == (T0 + timedelta(minutes=1)).timestamp()
        ticks[0] = 3 * 10 + 60 + 1  # no good run for too long
        assert _get(base + "/healthz")[0] == 503
        assert _get(base + "/other")[0] == 404
    finally:
        metrics.close()


def test_metrics_without_prometheus_client_say_what_to_install(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    with pytest.raises(gridflow.WorkerError, match=r"pip install 'gridflow\[worker\]'"):
        WorkerMetrics()


def test_a_taken_port_is_a_clear_error() -> None:
    first = WorkerMetrics()
    port = first.serve(0)
    try:
        with pytest.raises(gridflow.WorkerError, match=f"cannot listen on 127.0.0.1:{port}"):
            WorkerMetrics().serve(port)
    finally:
        first.close()


# -- the command --------------------------------------------------------------------------


def _sqlite_with_overdue(tmp_path: Path, n: int) -> tuple[Path, list[str]]:
    db = tmp_path / "cases.db"
    store = gridflow.SQLStore(f"sqlite:///{db}")
    store.create_schema()
    # Opened three days ago by the real clock: the worker (on the system clock) finds
    # every case overdue.
    engine = Engine(store=store, clock=FixedClock(datetime.now(UTC) - timedelta(days=3)),
                    entry_points=False)
    ids = _open(engine, n)
    store.close()
    return db, ids


def _counts(url: str, ids: list[str]) -> Counter[int]:
    store = gridflow.SQLStore(url)
    try:
        engine = Engine(store=store, entry_points=False)
        for case_id in ids:
            engine.verify(case_id)
        return Counter(_overdue_events(engine, i) for i in ids)
    finally:
        store.close()


def test_once_exit_codes_and_json_log_lines(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    db, ids = _sqlite_with_overdue(tmp_path, 5)
    base = ["worker", "--db", str(db), "--no-project", "--no-plugins"]
    assert main([*base, "--once", "--log-format", "json"]) == 0
    out, err = capsys.readouterr()
    assert out == ""
    lines = [json.loads(line) for line in err.splitlines()]
    [run] = [line for line in lines if line.get("event") == "run"]
    assert (run["task"], run["steps"], run["failures"], run["level"]) == ("tick", 5, 0, "info")
    assert datetime.fromisoformat(run["time"]).utcoffset() == timedelta(0)
    assert SECRET_NAME not in err
    assert _counts(f"sqlite:///{db}", ids) == Counter({1: 5})
    assert main([*base, "--once"]) == 0  # nothing left: still fine
    assert "task tick: 0 step(s)" in capsys.readouterr().err
    assert main([*base[:2], str(tmp_path / "missing.db"), "--once"]) == 2
    assert "no database file" in capsys.readouterr().err
    assert main([*base, "--once", "--every", "0"]) == 2
    assert "above 0" in capsys.readouterr().err


def test_once_exits_1_when_a_case_is_left_for_later(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "cases.db"
    store = gridflow.SQLStore(f"sqlite:///{db}")
    store.create_schema()
    spec = gridflow.WorkflowSpec.from_dict({
        "name": "streetlight", "version": 1, "initial": "reported",
        "labels": {"zh": "路灯", "en": "Streetlight"},
        "states": [{"name": "reported", "label_zh": "已上报", "label_en": "Reported",
                    "deadline": "P1D"},
                   {"name": "fixed", "label_zh": "已修复", "label_en": "Fixed",
                    "terminal": True}],
        "transitions": [{"trigger": "fix", "source": "reported", "dest": "fixed",
                         "label_zh": "修复", "label_en": "Fix", "roles": ["grid_worker"]}],
        "open_roles": ["grid_worker"]})
    engine = Engine(store=store, clock=FixedClock(datetime.now(UTC) - timedelta(days=3)),
                    entry_points=False)
    engine.register_workflow(spec)
    engine.open("streetlight", actor=reporter, grid=GRID, data={})
    store.close()
    # Without --spec the worker does not know the workflow: the case waits.
    code = main(["worker", "--db", str(db), "--no-project", "--no-plugins", "--once"])
    assert code == 1
    err = capsys.readouterr().err
    assert "1 case(s) left for a later run" in err and "Traceback" not in err


def _pg_database(pg_url: str) -> Iterator[str]:
    import sqlalchemy as sa

    name = f"gfworker_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield pg_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def pg_database(pg_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database (the command takes a URL, not a schema)."""
    yield from _pg_database(pg_url)


def _fill(url: str, n: int) -> list[str]:
    store = gridflow.SQLStore(url)
    store.create_schema()
    engine = Engine(store=store, clock=FixedClock(datetime.now(UTC) - timedelta(days=3)),
                    entry_points=False)
    try:
        return _open(engine, n)
    finally:
        store.close()


def _command(url: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "gridflow", "worker", "--db", url, "--no-project",
            "--no-plugins", *extra]


_ENV = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}


@pytest.mark.postgres
def test_two_workers_handle_each_breach_of_1000_cases_once(pg_database: str) -> None:
    ids = _fill(pg_database, 1000)
    workers = [subprocess.Popen(_command(pg_database, "--once", "--batch", "20",
                                         "--log-format", "json"),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=_ENV) for _ in range(2)]
    results = [w.communicate(timeout=300) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], results
    steps = [sum(json.loads(line).get("steps", 0) for line in err.splitlines()
                 if '"event": "run"' in line) for _, err in results]
    assert sum(steps) == 1000
    assert _counts(pg_database, ids) == Counter({1: 1000})


@pytest.mark.postgres
def test_sigterm_mid_batch_exits_0_with_nothing_half_done(pg_database: str) -> None:
    ids = _fill(pg_database, 600)
    proc = subprocess.Popen(_command(pg_database, "--batch", "1", "--every", "3600",
                                     "--log-format", "json"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_ENV)
    store = gridflow.SQLStore(pg_database)
    try:
        # Wait (bounded) until the worker is under way, then ask it to stop.
        deadline = time.monotonic() + 120
        while _done(store) < 20:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        store.close()
    assert proc.returncode == 0, err
    events = [json.loads(line) for line in err.splitlines()]
    assert any(e.get("event") == "signal" and e.get("signal") == "SIGTERM" for e in events)
    [run] = [e for e in events if e.get("event") == "run"]
    assert run["complete"] is False  # stopped mid-drain, after the case in hand
    counts = _counts(pg_database, ids)
    assert set(counts) <= {0, 1} and counts[0] > 0 and counts[1] == run["steps"]
    # The rest is handled by the next run, each case once.
    done = subprocess.run(_command(pg_database, "--once"), capture_output=True, text=True,
                          env=_ENV, timeout=300)
    assert done.returncode == 0, done.stderr
    assert _counts(pg_database, ids) == Counter({1: 600})


def _done(store: gridflow.SQLStore) -> int:
    import sqlalchemy as sa

    with store._writer.connect() as conn:
        return int(conn.execute(sa.text(
            "SELECT count(*) FROM gridflow_events WHERE trigger = 'overdue'")).scalar_one())


def test_the_worker_signs_checkpoints_when_given_a_key(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    db, _ = _sqlite_with_overdue(tmp_path, 3)
    skey, vkey = gridflow.generate_key("huasan.example/gridflow")
    keyfile = tmp_path / "log.key"
    from gridflow.log.note import write_key_file

    write_key_file(keyfile, skey)
    base = ["worker", "--db", str(db), "--no-project", "--no-plugins", "--once",
            "--log-format", "json", "--checkpoint-key", str(keyfile)]
    assert main(base) == 0
    runs = [json.loads(line) for line in capsys.readouterr().err.splitlines()
            if '"event": "run"' in line]
    # 3 opened + 3 overdue events, all logged by the round's checkpoint.
    assert [(r["task"], r["steps"]) for r in runs] == [("tick", 3), ("checkpoint", 6)]
    store = gridflow.SQLStore(f"sqlite:///{db}")
    try:
        engine = Engine(store=store, entry_points=False)
        engine.verify_log(key=vkey)
    finally:
        store.close()
