"""The running timer: a long-lived process that acts on overdue cases every N seconds.

`Worker` runs its tasks (the timer, `TickTask`, by default) once per interval.
Several workers may run against one database at once: each overdue case is
claimed by one of them only (`Store.claim_due` hands a case out under a lease,
``FOR UPDATE SKIP LOCKED`` on PostgreSQL, and each step is committed with the
version the case was claimed at), so every breach is acted on exactly once.

A stop request (`Worker.stop`, or SIGTERM / SIGINT when `Worker.run` installs
its handlers) lets the batch in hand finish and then ends the loop: every step
is one atomic commit, so there is never a half-done case to clean up.

`WorkerMetrics` exposes what the worker did in the Prometheus text format
(``prometheus-client``, extra ``gridflow[worker]``) on an opt-in port, with a
health answer beside it.

Example:
    >>> import gridflow
    >>> from datetime import timedelta
    >>> clock = gridflow.FixedClock()
    >>> engine = gridflow.Engine(clock=clock, entry_points=False)
    >>> case = engine.open("grid_case", actor=gridflow.Actor("r", ["resident"], ["g"]),
    ...                    grid="g", data={"title": "路灯坏了", "source": "resident"})
    >>> _ = clock.advance(timedelta(days=2))
    >>> report = gridflow.Worker(engine).run_once()
    >>> report.steps, report.ok
    (1, True)
"""

from __future__ import annotations

import json
import logging
import math
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any, Protocol

import attrs

from gridflow._errors import GridflowError, InvalidArgument, WorkerError
from gridflow.engine import MAX_TICK_LIMIT, Engine

__all__ = ["CheckpointTask", "JSONLogFormatter", "RunReport", "TaskResult", "TickTask", "Worker",
           "WorkerMetrics", "WorkerTask"]

log = logging.getLogger("gridflow.worker")

#: The default interval between two runs, in seconds.
DEFAULT_EVERY = 60.0
#: The longest `Worker` period, in seconds.
_MAX_EVERY = 365 * 86_400


@attrs.frozen
class TaskResult:
    """What one task did in one run.

    ``steps`` counts the events recorded; ``failures`` the cases that could not
    be handled and are left for a later run (a breach refused by a rule is not
    a failure: the case is marked overdue instead, as `Engine.tick` does);
    ``complete`` is ``False`` when a stop request ended the task early.

    Example:
        >>> TaskResult("tick", steps=3).ok
        True
    """

    task: str
    steps: int = 0
    failures: int = 0
    complete: bool = True
    #: Why the task could not run at all (the database was down, say), or ``None``.
    error: str | None = None

    @property
    def ok(self) -> bool:
        """No failure and no error.

        Example:
            >>> TaskResult("tick", failures=1).ok
            False
        """
        return self.failures == 0 and self.error is None


class WorkerTask(Protocol):
    """A job the worker runs once per interval: the timer, and later checkpoints
    or retention.

    ``stopping`` tells a long task that a stop was requested, so that it ends
    after the batch in hand.

    Example:
        >>> class Count:
        ...     name = "count"
        ...     def __call__(self, engine, now, stopping):
        ...         return TaskResult(self.name, steps=0)
        >>> import gridflow
        >>> gridflow.Worker(gridflow.Engine(entry_points=False), tasks=[Count()]).run_once().ok
        True
    """

    name: str

    def __call__(self, engine: Engine, now: datetime,
                 stopping: Callable[[], bool]) -> TaskResult: ...


@attrs.define
class TickTask:
    """The timer: `Engine.tick` in batches of ``batch`` cases until nothing is due.

    Example:
        >>> TickTask(batch=50).name
        'tick'
    """

    batch: int = 100
    name: str = "tick"

    def __attrs_post_init__(self) -> None:
        if self.batch.__class__ is not int or not 1 <= self.batch <= MAX_TICK_LIMIT:
            raise InvalidArgument(f"TickTask(batch=...) takes an int from 1 to "
                                  f"{MAX_TICK_LIMIT:,}, got {self.batch!r}")

    def __call__(self, engine: Engine, now: datetime,
                 stopping: Callable[[], bool]) -> TaskResult:
        steps = failures = 0
        complete = True
        while True:
            mark = engine.tick_errors[-1] if engine.tick_errors else None
            events = engine.tick(now, limit=self.batch)
            steps += len(events)
            failures += _new_failures(engine, mark)
            if not events:
                break
            if stopping():
                complete = False
                break
        return TaskResult(self.name, steps=steps, failures=failures, complete=complete)


def _new_failures(engine: Engine, mark: object) -> int:
    # `Engine.tick_errors` keeps the last 100 failures; count those after `mark`.
    # A case the timer could not act on stays claimed under its lease, so it is
    # not seen again in this run: it waits for a later one.
    count = 0
    for failure in reversed(engine.tick_errors):
        if failure is mark:
            break
        count += not failure.marked_overdue
    return count


@attrs.define
class CheckpointTask:
    """Sign a checkpoint of the Merkle log every round (`Engine.checkpoint`), so the
    log's signed tree heads follow the steps; ``steps`` counts the events logged.

    ``signer`` is a signer key string (``gridflow keygen``) or any signer object;
    ``steps`` is how much the tree grew since this task's last round (its first
    round: the whole tree).

    Example:
        >>> import gridflow
        >>> skey, _ = gridflow.generate_key("huasan.example/gridflow")
        >>> engine = gridflow.Engine(entry_points=False)
        >>> w = gridflow.Worker(engine, tasks=[TickTask(), CheckpointTask(skey)])
        >>> [r.task for r in w.run_once().results]
        ['tick', 'checkpoint']
    """

    signer: Any
    name: str = "checkpoint"
    origin: str | None = None

    _size: int | None = attrs.field(default=None, init=False, repr=False)

    def __call__(self, engine: Engine, now: datetime,
                 stopping: Callable[[], bool]) -> TaskResult:
        text = engine.checkpoint(self.signer, origin=self.origin)
        # A C2SP checkpoint's second line is the tree size.
        size = int(text.split("\n", 2)[1])
        grown = size - self._size if self._size is not None else size
        self._size = size
        return TaskResult(self.name, steps=grown)


@attrs.frozen
class RunReport:
    """One run of every task of a worker.

    Example:
        >>> r = RunReport(datetime(2026, 5, 1, tzinfo=UTC), 0.25, (TaskResult("tick", 2),))
        >>> r.steps, r.ok
        (2, True)
    """

    at: datetime
    seconds: float
    results: tuple[TaskResult, ...]

    @property
    def steps(self) -> int:
        """Events recorded by every task together.

        Example:
            >>> RunReport(datetime(2026, 5, 1, tzinfo=UTC), 0.1, ()).steps
            0
        """
        return sum(r.steps for r in self.results)

    @property
    def ok(self) -> bool:
        """Every task ran and left no case behind.

        Example:
            >>> RunReport(datetime(2026, 5, 1, tzinfo=UTC), 0.1, ()).ok
            True
        """
        return all(r.ok for r in self.results)


class Worker:
    """Run ``tasks`` (default: the timer) on ``engine`` every ``every`` seconds.

    `run_once` runs every task once (``gridflow worker --once``, for cron);
    `run` loops until `stop` is called or, with ``install_signals``, SIGTERM or
    SIGINT arrives, and returns the exit status (0 after a stop request, even
    mid-batch: the batch in hand is finished first). A task that raises is
    logged and counted, and the worker goes on at the next interval, so a
    database restart does not end the process.

    Example:
        >>> import gridflow
        >>> w = gridflow.Worker(gridflow.Engine(entry_points=False), every=0.01)
        >>> w.stop()
        >>> w.run(install_signals=False)
        0
    """

    def __init__(self, engine: Engine, *, every: float = DEFAULT_EVERY,
                 tasks: Sequence[WorkerTask] | None = None,
                 metrics: WorkerMetrics | None = None,
                 wait: Callable[[float], bool] | None = None) -> None:
        # inf (or 2**70) passed: the worker then waited forever between runs.
        if isinstance(every, bool) or not isinstance(every, int | float) or not every > 0 \
                or not math.isfinite(every) or every > _MAX_EVERY:
            raise InvalidArgument(f"Worker(every=...) takes a positive number of seconds, at "
                                  f"most {_MAX_EVERY:,} (a year), got {repr(every)[:40]}")
        if tasks is not None and (isinstance(tasks, str | bytes | Mapping)
                                  or not isinstance(tasks, Iterable)):
            raise InvalidArgument(f"Worker(tasks=...) takes None or a list of tasks, got "
                                  f"{type(tasks).__name__}")
        self.engine = engine
        self.every = float(every)
        self.tasks: list[WorkerTask] = list(tasks) if tasks is not None else [TickTask()]
        odd = [type(t).__name__ for t in self.tasks
               if not isinstance(getattr(t, "name", None), str)]
        if odd:
            raise InvalidArgument(f"Worker(tasks=...): every task needs a name (a string), got "
                                  f"{', '.join(odd[:5])}")
        names = [t.name for t in self.tasks]
        if len(set(names)) != len(names):
            raise InvalidArgument(f"Worker(tasks=...): task names must differ, got {names}")
        self.metrics = metrics
        self._stop = threading.Event()
        # The pause between runs; a test passes its own so that nothing sleeps.
        self._wait = wait or self._stop.wait
        #: The last run's report, or ``None`` before the first run.
        self.last: RunReport | None = None

    @property
    def stopping(self) -> bool:
        """Whether a stop was requested.

        Example:
            >>> import gridflow
            >>> gridflow.Worker(gridflow.Engine(entry_points=False)).stopping
            False
        """
        return self._stop.is_set()

    def stop(self) -> None:
        """Ask the worker to end after the batch in hand (safe from a signal handler
        or another thread).

        Example:
            >>> import gridflow
            >>> w = gridflow.Worker(gridflow.Engine(entry_points=False))
            >>> w.stop(); w.stopping
            True
        """
        self._stop.set()

    def run_once(self) -> RunReport:
        """Run every task once, now, and return what they did.

        Example:
            >>> import gridflow
            >>> gridflow.Worker(gridflow.Engine(entry_points=False)).run_once().results
            (TaskResult(task='tick', steps=0, failures=0, complete=True, error=None),)
        """
        started = time.perf_counter()
        now = self.engine.clock.now()
        results: list[TaskResult] = []
        for task in self.tasks:
            task_started = time.perf_counter()
            try:
                result = task(self.engine, now, self._stop.is_set)
            except GridflowError as exc:
                result = TaskResult(task.name, error=f"{type(exc).__name__}: {exc}")
            except Exception as exc:  # a bug in a task or a plugin: report it, go on
                log.exception("worker task %r failed", task.name)
                result = TaskResult(task.name, error=f"{type(exc).__name__}: {exc}")
            results.append(result)
            _log_result(result, time.perf_counter() - task_started)
            if self._stop.is_set():
                break
        report = RunReport(now, time.perf_counter() - started, tuple(results))
        self.last = report
        if self.metrics is not None:
            self.metrics.observe(report)
        return report

    def run(self, *, install_signals: bool = True, once: bool = False) -> int:
        """Loop until stopped; return the exit status.

        With ``once``, run every task once and return 0 if every case was
        handled, 1 otherwise (as ``gridflow tick`` does). Without it, return 0
        when a stop request ends the loop.

        Example:
            >>> import gridflow
            >>> gridflow.Worker(gridflow.Engine(entry_points=False)).run(
            ...     install_signals=False, once=True)
            0
        """
        with self._signals(install_signals):
            if once:
                return 0 if self.run_once().ok else 1
            log.info("worker started: every %.3g s, tasks %s", self.every,
                     ", ".join(t.name for t in self.tasks),
                     extra={"event": "start", "every": self.every})
            while not self._stop.is_set():
                self.run_once()
                if self._stop.is_set() or self._wait(self.every):
                    break
            log.info("worker stopped", extra={"event": "stop"})
            return 0

    @contextmanager
    def _signals(self, install: bool) -> Iterator[None]:
        if not install or threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, frame: FrameType | None) -> None:
            log.info("received %s: finishing the batch in hand", signal.Signals(signum).name,
                     extra={"event": "signal", "signal": signal.Signals(signum).name})
            self.stop()

        old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for s, h in old.items():
                signal.signal(s, h)


def _log_result(result: TaskResult, seconds: float) -> None:
    extra = {"event": "run", "task": result.task, "steps": result.steps,
             "failures": result.failures, "complete": result.complete,
             "seconds": round(seconds, 6)}
    if result.error is not None:
        log.error("task %s could not run: %s", result.task, result.error,
                  extra={**extra, "error": result.error})
    elif result.failures:
        log.warning("task %s: %d step(s), %d case(s) left for a later run", result.task,
                    result.steps, result.failures, extra=extra)
    else:
        log.info("task %s: %d step(s)", result.task, result.steps, extra=extra)


#: LogRecord attributes that every record has; the rest came from ``extra=``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message"}


class JSONLogFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message and
    the record's ``extra`` fields (``event``, ``task``, ``steps``, ...).

    The worker logs case ids, states, triggers and counts only, never a
    payload, so no personal value reaches a log line.

    Example:
        >>> record = logging.LogRecord("gridflow.worker", logging.INFO, "", 0,
        ...                            "task %s: %d step(s)", ("tick", 2), None)
        >>> record.created = 0.0
        >>> record.steps = 2
        >>> line = json.loads(JSONLogFormatter().format(record))
        >>> line["time"], line["message"], line["steps"]
        ('1970-01-01T00:00:00+00:00', 'task tick: 2 step(s)', 2)
    """

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value if isinstance(value, str | int | float | bool) or \
                    value is None else str(value)
        if record.exc_info and record.exc_info[1] is not None:
            line["exception"] = f"{type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
        return json.dumps(line, ensure_ascii=False)


class WorkerMetrics:
    """The worker's figures in the Prometheus text format, and a health answer.

    Needs ``prometheus-client`` (``pip install 'gridflow[worker]'``). `serve`
    answers ``GET /metrics`` with the figures and ``GET /healthz`` with 200 when
    the last run succeeded recently (within ``3 × every + 60`` seconds), 503
    otherwise.

    Example:
        >>> m = WorkerMetrics(every=60)
        >>> m.observe(RunReport(datetime(2026, 5, 1, tzinfo=UTC), 0.2,
        ...                     (TaskResult("tick", steps=4),)))
        >>> b'gridflow_worker_steps_total{task="tick"} 4.0' in m.exposition()
        True
    """

    def __init__(self, every: float = DEFAULT_EVERY,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        try:
            import prometheus_client as prom
        except ImportError:
            raise WorkerError("the worker's metrics endpoint needs prometheus-client: "
                              "pip install 'gridflow[worker]'") from None
        self._prom = prom
        self.every = every
        self._monotonic = monotonic
        self.registry = prom.CollectorRegistry()
        r = self.registry
        self.runs = prom.Counter("gridflow_worker_runs", "Runs of the worker's tasks",
                                 registry=r)
        self.steps = prom.Counter("gridflow_worker_steps", "Events recorded by a task",
                                  ["task"], registry=r)
        self.failures = prom.Counter("gridflow_worker_failures",
                                     "Cases a task could not handle (retried later)",
                                     ["task"], registry=r)
        self.errors = prom.Counter("gridflow_worker_errors",
                                   "Runs in which a task could not run at all",
                                   ["task"], registry=r)
        self.duration = prom.Histogram("gridflow_worker_run_duration_seconds",
                                       "Time one run of every task took", registry=r)
        self.last_run = prom.Gauge("gridflow_worker_last_run_timestamp_seconds",
                                   "Unix time of the last run", registry=r)
        self.last_success = prom.Gauge("gridflow_worker_last_success_timestamp_seconds",
                                       "Unix time of the last run with no failure",
                                       registry=r)
        self._last_ok: float | None = None
        self._server: ThreadingHTTPServer | None = None

    def observe(self, report: RunReport) -> None:
        """Count one run.

        Example:
            >>> m = WorkerMetrics()
            >>> m.observe(RunReport(datetime(2026, 5, 1, tzinfo=UTC), 0.1, ()))
            >>> m.healthy()
            True
        """
        self.runs.inc()
        self.duration.observe(report.seconds)
        self.last_run.set(report.at.timestamp())
        for r in report.results:
            self.steps.labels(r.task).inc(r.steps)
            self.failures.labels(r.task).inc(r.failures)
            if r.error is not None:
                self.errors.labels(r.task).inc()
        if report.ok:
            self.last_success.set(report.at.timestamp())
            self._last_ok = self._monotonic()

    def healthy(self) -> bool:
        """Whether the last good run is recent enough (``3 × every + 60`` seconds).

        Example:
            >>> WorkerMetrics().healthy()
            False
        """
        return self._last_ok is not None and \
            self._monotonic() - self._last_ok <= 3 * self.every + 60

    def exposition(self) -> bytes:
        """The figures in the Prometheus text format.

        Example:
            >>> b"gridflow_worker_runs_total 0.0" in WorkerMetrics().exposition()
            True
        """
        data: bytes = self._prom.generate_latest(self.registry)
        return data

    def serve(self, port: int, host: str = "127.0.0.1") -> int:
        """Answer ``/metrics`` and ``/healthz`` on ``host:port`` from a daemon thread;
        return the port (useful with ``port=0``).

        Example:
            >>> m = WorkerMetrics()
            >>> port = m.serve(0)
            >>> import urllib.request
            >>> urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").status
            200
            >>> m.close()
        """
        metrics = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    body, status = metrics.exposition(), 200
                    kind = metrics._prom.CONTENT_TYPE_LATEST
                elif path == "/healthz":
                    good = metrics.healthy()
                    body, status = (b"ok\n", 200) if good else (b"no recent good run\n", 503)
                    kind = "text/plain; charset=utf-8"
                else:
                    body, status, kind = b"not found\n", 404, "text/plain; charset=utf-8"
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # scrapes every few seconds would drown the worker's own lines

        try:
            server = ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:
            raise WorkerError(f"the metrics endpoint cannot listen on {host}:{port}: "
                              f"{exc.strerror or exc}; pick another --metrics-port") from None
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, name="gridflow-metrics",
                         daemon=True).start()
        self._server = server
        return int(server.server_address[1])

    def close(self) -> None:
        """Stop answering.

        Example:
            >>> WorkerMetrics().close()
        """
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
