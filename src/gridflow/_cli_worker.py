"""``gridflow worker``: the timer as a long-running process (or once, for cron).

Kept apart from `gridflow.cli` so that the command module only registers it.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from gridflow._session import UsageError, open_session
from gridflow.worker import (
    DEFAULT_EVERY,
    CheckpointTask,
    JSONLogFormatter,
    TickTask,
    Worker,
    WorkerMetrics,
)

__all__ = ["add_worker_parser", "cmd_worker"]


def _seconds(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not 0 < number <= 86_400:
        raise argparse.ArgumentTypeError(f"expected a number of seconds above 0 and at most "
                                         f"86400 (a day), got {value!r}")
    return number


def _port(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = -1
    if not 0 <= number <= 65_535:
        raise argparse.ArgumentTypeError(f"expected a port from 0 to 65535, got {value!r}")
    return number


def add_worker_parser(sub: Any, parents: Sequence[argparse.ArgumentParser],
                      batch: Callable[[str], int]) -> None:
    """Register ``gridflow worker`` on the sub-command set ``sub``.

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> add_worker_parser(parser.add_subparsers(), [], int)
        >>> parser.parse_args(["worker", "--once"]).once
        True
    """
    p = sub.add_parser(
        "worker", parents=list(parents),
        help="run the timer every N seconds (several workers may run at once)",
        description="Runs the timer (the breach trigger of every overdue case, as actor "
                    "'system') every --every seconds until SIGTERM or SIGINT, which let the "
                    "batch in hand finish and exit 0. Several workers may run against one "
                    "database: each overdue case is handled by one of them, once. --once "
                    "runs one round and exits: 0 when every case was handled, 1 when one "
                    "is left for a later run. Log lines go to stderr, as JSON with "
                    "--log-format json; --metrics-port serves /metrics (Prometheus text "
                    "format) and /healthz.")
    p.add_argument("--every", type=_seconds, default=DEFAULT_EVERY, metavar="SECONDS",
                   help=f"seconds between two rounds (default: {DEFAULT_EVERY:g})")
    p.add_argument("--batch", type=batch, default=100, metavar="N",
                   help="cases claimed at a time (default: 100)")
    p.add_argument("--once", action="store_true", help="run one round and exit")
    p.add_argument("--checkpoint-key", metavar="KEYFILE", default=None,
                   help="also sign a checkpoint of the Merkle log every round with this "
                        "signer key (gridflow keygen NAME writes NAME.key)")
    p.add_argument("--log-format", choices=("text", "json"), default="text",
                   help="log lines as text (default) or one JSON object per line")
    p.add_argument("--metrics-port", type=_port, default=None, metavar="PORT",
                   help="serve /metrics and /healthz on this port (needs gridflow[worker])")
    p.add_argument("--metrics-host", default="127.0.0.1", metavar="HOST",
                   help="address for --metrics-port (default: 127.0.0.1, this machine only)")
    p.set_defaults(func=cmd_worker)


class _Text(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z")
        return f"{stamp} gridflow worker: {record.levelname.lower()}: {record.getMessage()}"


def cmd_worker(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Run the worker as the command line asked; return the exit status.

    Example:
        >>> import tempfile, pathlib
        >>> import gridflow
        >>> db = pathlib.Path(tempfile.mkdtemp()) / "cases.db"
        >>> with gridflow.SQLStore(f"sqlite:///{db}") as store:
        ...     store.create_schema()
        >>> from gridflow.cli import main
        >>> main(["worker", "--once", "--db", str(db), "--no-project", "--no-plugins"])
        0
    """
    session = open_session(args, database=True)
    handler = logging.StreamHandler(err if err is not None else sys.stderr)
    handler.setFormatter(JSONLogFormatter() if args.log_format == "json" else _Text())
    root = logging.getLogger("gridflow")
    # One format for every line of the process: the command's own one-line
    # handler is set aside while the worker runs.
    saved, level = root.handlers[:], root.level
    root.handlers = [handler]
    root.setLevel(logging.INFO)
    metrics: WorkerMetrics | None = None
    try:
        if args.metrics_port is not None:
            try:
                metrics = WorkerMetrics(every=args.every)
                port = metrics.serve(args.metrics_port, args.metrics_host)
            except Exception as exc:
                raise UsageError(str(exc)) from None
            logging.getLogger("gridflow.worker").info(
                "metrics on http://%s:%d/metrics", args.metrics_host, port,
                extra={"event": "metrics", "port": port})
        tasks: list[Any] = [TickTask(args.batch)]
        if args.checkpoint_key is not None:
            from gridflow._cli_log import _key

            tasks.append(CheckpointTask(_key(args.checkpoint_key, private=True)))
        worker = Worker(session.engine, every=args.every, tasks=tasks, metrics=metrics)
        return worker.run(once=args.once)
    finally:
        if metrics is not None:
            metrics.close()
        root.handlers, root.level = saved, level
