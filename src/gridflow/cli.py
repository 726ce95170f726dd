"""The ``gridflow`` command: demo, validate, diagram, history, report, tick, worker, open, fire.

Built on `argparse` (standard library), so the core install needs nothing
more. Databases need ``gridflow[sql]`` (SQLite) or ``gridflow[postgres]``;
YAML files need ``gridflow[yaml]``.

Every command takes ``--spec FILE`` and ``--plugin MODULE`` (both
repeatable) and reads the project file (``gridflow.toml``, or
``[tool.gridflow]`` in ``pyproject.toml``): a team's own workflows work in
every command. `gridflow._session.open_session` builds each command's store
and engine from the options and the file; a new command calls it too.

Exit codes: 0 success; 1 the command ran and found a problem (an invalid
spec, a case that does not exist, a refused step, a failed or impossible
verification, a timer error); 2 the command could not run as asked (bad
arguments or project file, a missing file or database, a missing optional
dependency); 130 interrupted. Messages go to stderr, one line, never a
traceback, for anything the user can cause.

Example:
    >>> main(["diagram", "grid_case", "--format", "mermaid", "--lang", "zh",
    ...       "--no-project"])  # doctest: +ELLIPSIS
    stateDiagram-v2
    ...
    0
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import Any, TextIO

from gridflow import __version__
from gridflow._display import (
    FIGURE_WORKFLOWS,
    Labels,
    class_lines,
    figure_lines,
    timeline,
    w,
)
from gridflow._errors import (
    MAX_LISTED_PROBLEMS,
    GridflowError,
    IntegrityError,
    InvalidArgument,
    SpecError,
    SpecProblem,
    UnknownWorkflow,
)
from gridflow._session import (
    DB_ENV,
    EXIT_PROBLEMS,
    EXIT_USAGE,
    REGISTER_HINT,
    SHANGHAI,
    Session,
    UsageError,
    _db_url,
    open_session,
    open_store,
    parse_tz,
    spec_arg,
)
from gridflow._speccheck import listing
from gridflow._specload import parse_spec, read_text
from gridflow._textlayout import terminal_width
from gridflow.clock import FixedClock, SystemClock
from gridflow.engine import MAX_TICK_LIMIT, Engine
from gridflow.model import ALL_GRIDS, Actor, Case, Event
from gridflow.spec import WorkflowSpec
from gridflow.store import Store

__all__ = ["DB_ENV", "EXIT_OK", "EXIT_PROBLEMS", "EXIT_USAGE", "UsageError", "build_parser",
           "main", "print_case"]

EXIT_OK = 0
#: Exit status after Ctrl-C (128 + SIGINT), as shells expect.
EXIT_INTERRUPTED = 130
#: Where ``gridflow demo`` keeps its SQLite file unless ``--db`` is given.
DEMO_DB = Path(tempfile.gettempdir()) / "gridflow-demo.db"
#: Set to 1 to see the traceback of an unexpected error (a bug) instead of one line.
DEBUG_ENV = "GRIDFLOW_DEBUG"
#: China Standard Time, the default zone of every time shown (Asia/Shanghai).
CST = SHANGHAI


# -- progress on stderr ------------------------------------------------------------------


class Progress:
    """A count of cases done, on stderr: rewritten in place on a terminal, a line
    every ``every`` cases otherwise, and a final line either way.

    Example:
        >>> import io
        >>> stream = io.StringIO()
        >>> progress = Progress("tick", stream, every=2)
        >>> progress.add(3); progress.done("3 step(s) recorded")
        >>> stream.getvalue()
        'tick: 3 …\\ntick: 3 step(s) recorded\\n'
    """

    def __init__(self, label: str, stream: TextIO, *, quiet: bool = False,
                 every: int = 500) -> None:
        self.label = label
        self.stream = stream
        self.quiet = quiet
        self.every = every
        self.count = 0
        self.tty = bool(getattr(stream, "isatty", lambda: False)())

    def add(self, n: int = 1) -> None:
        """Count ``n`` more."""
        if self.quiet or n <= 0:
            self.count += n
            return
        before = self.count
        self.count += n
        if self.tty:
            self.stream.write(f"\r{self.label}: {self.count} …")
            self.stream.flush()
        elif before // self.every != self.count // self.every:
            self.stream.write(f"{self.label}: {self.count} …\n")

    def done(self, what: str) -> None:
        """The final line."""
        if self.quiet:
            return
        end = "\r" if self.tty else ""
        self.stream.write(f"{end}{self.label}: {what}\n")


# -- option values -----------------------------------------------------------------------


def _tz_arg(value: str) -> tzinfo:
    try:
        return parse_tz(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _batch_arg(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if not 1 <= number <= MAX_TICK_LIMIT:
        raise argparse.ArgumentTypeError(f"expected a whole number from 1 to "
                                         f"{MAX_TICK_LIMIT:,}, got {value!r}")
    return number


def _when(value: str, tz: tzinfo, *, end_of_day: bool = False) -> datetime:
    """A date (its start, or its end with ``end_of_day``) or a datetime; naive ones in ``tz``."""
    text = value.strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            day = date.fromisoformat(text)
            if end_of_day:
                day += timedelta(days=1)
            return datetime.combine(day, time(0), tz).astimezone(UTC)
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if when.tzinfo is None:
            when = when.replace(tzinfo=tz)
        return when.astimezone(UTC)
    except ValueError:
        raise UsageError(f"not a date or date-time: {value!r}; use 2026-03-31 or "
                         "2026-03-31T18:00+08:00") from None
    except OverflowError:
        # The end of 9999-12-31, or year 1 moved to UTC: past what a datetime holds.
        raise UsageError(f"{value!r} is at the edge of the calendar (year 1 or 9999); give a "
                         "date between them") from None


def _columns() -> int:
    return terminal_width()


# -- timelines ---------------------------------------------------------------------------


def print_case(engine: Engine, case_id: str, lang: str, tz: tzinfo, out: TextIO,
               columns: int | None = None) -> Case:
    """Print one case's header and timeline (laid out to ``columns``); return the case.

    Example:
        >>> import io, gridflow
        >>> engine = gridflow.Engine(clock=gridflow.FixedClock(), entry_points=False)
        >>> c = engine.open("grid_case", actor=gridflow.Actor("w", ["grid_worker"], ["g"]),
        ...                 grid="g", case_id="c-1", data={"title": "堆物", "source": "visit"})
        >>> print_case(engine, "c-1", "en", UTC, io.StringIO()).state
        'reported'
    """
    case, lines = timeline(engine, case_id, lang, tz, columns)
    out.write("\n".join(lines) + "\n")
    return case


# -- supervision figures -----------------------------------------------------------------


def _cases(store: Store, progress: Progress, **filters: Any) -> Iterator[Case]:
    """Every case matching ``filters``, page by page, counted on ``progress``."""
    after: str | None = None
    while True:
        page = store.query(after=after, limit=500, **filters)
        progress.add(len(page.items))
        yield from page.items
        if page.next is None:
            return
        after = page.next


def _metrics_module() -> Any:
    try:
        import gridflow.metrics as metrics
    except ImportError as exc:
        raise UsageError(f"this gridflow cannot compute figures: gridflow.metrics does not "
                         f"import ({exc})") from None
    return metrics


def _group(case: Case, by: str | None) -> str | None:
    if by is None:
        return None
    value = case.grid if by == "grid" else case.data.get(by)
    return None if value is None else str(value)


def _by_state(store: Store, since: datetime | None, until: datetime,
              by: str | None) -> dict[tuple[str, str, str | None], int]:
    """Cases opened in ``[since, until)`` by (workflow, state now, group)."""
    if since is None and by in (None, "grid") and until >= SystemClock().now():
        # Every case: the database counts them (one GROUP BY).
        columns = ("workflow", "state", "grid") if by == "grid" else ("workflow", "state")
        return {(k[0], k[1], k[2] if by == "grid" else None): n
                for k, n in store.counts(columns).items()}
    out: dict[tuple[str, str, str | None], int] = {}
    quiet = Progress("", sys.stderr, quiet=True)
    for case in _cases(store, quiet, opened_from=since, opened_until=until):
        if case.opened_at >= until:
            continue
        key = (case.workflow, case.state, _group(case, by))
        out[key] = out.get(key, 0) + 1
    return out


def _print_figures(session: Session, out: TextIO, err: TextIO, *, since: datetime | None,
                   until: datetime, by: str | None, quiet: bool = False,
                   as_json: bool = False, columns: int | None = None) -> None:
    """Compute the figures (`gridflow.metrics.compute`) and the cases by state, and
    print them: a block per workflow, saying which figures apply to it."""
    store = session.store
    assert store is not None
    lang = session.settings.lang
    metrics = _metrics_module()
    zh = lang == "zh"
    progress = Progress("统计" if zh else "report", err, quiet=quiet)
    if not quiet:
        total = sum(store.counts(("workflow",)).values())
        err.write(f"统计：正在计算 {total} 个案件的指标 …\n" if zh else
                  f"report: computing the figures over {total} case(s) …\n")
    try:
        report = metrics.compute(store, since=since or datetime(1970, 1, 1, tzinfo=UTC),
                                 until=until, by=by)
    except ImportError as exc:  # an optional part of the metrics is not installed
        raise UsageError(f"the figures cannot be computed here: {exc}") from None
    # Cases are not split by department (a case has several): no count by state then.
    by_state = {} if by == "department" else _by_state(store, since, until, by)
    cases: dict[str, int] = {}
    for (workflow, _, _), n in by_state.items():
        cases[workflow] = cases.get(workflow, 0) + n
    progress.done(f"{len(report.rows)} 组" if zh else f"{len(report.rows)} group(s)")
    if as_json:
        json.dump({
            "since": since.isoformat() if since else None, "until": until.isoformat(),
            "by": by, "rows": report.to_dicts(),
            "workflows": {name: {"figures": name if name in FIGURE_WORKFLOWS else None,
                                 "cases": n} for name, n in sorted(cases.items())},
            "cases_by_state": [{"workflow": k[0], "state": k[1], "group": k[2], "cases": n}
                               for k, n in sorted(by_state.items(),
                                                  key=lambda kv: (kv[0][0], kv[0][1],
                                                                  kv[0][2] or ""))],
        }, out, ensure_ascii=False, indent=2)
        out.write("\n")
        return
    if not report.rows and not by_state:
        out.write(f"  {w('no_cases', lang)}\n")
        return
    # A built-in workflow's figures are shown when it has cases in the period, or
    # figures in it (a case opened earlier that fell due in the period).
    for name, attrs in (("grid_case", ("received", "due", "revisits")),
                        ("mediation", ("mediations_ended", "agreements"))):
        if name not in cases and any(getattr(r, a) for r in report.rows for a in attrs):
            cases[name] = 0
    labels = Labels(session.engine, lang)
    lines = figure_lines(report, labels, by=by, cases=cases, by_state=by_state,
                         columns=columns)
    out.write("\n".join(lines) + "\n")


# -- commands ----------------------------------------------------------------------------


def _demo_store(value: str | None, lang: str, err: TextIO) -> tuple[Store, str]:
    """The demo's store and a description of where it is."""
    if value:
        store = open_store(value, create=True)
        return store, _db_url(value)
    for suffix in ("", "-wal", "-shm", "-journal"):
        try:
            Path(f"{DEMO_DB}{suffix}").unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise UsageError(f"cannot replace the demo database {DEMO_DB}: {exc}; pass "
                             "--db FILE to use another file") from None
    try:
        return open_store(str(DEMO_DB), create=True), _db_url(str(DEMO_DB))
    except UsageError as exc:
        if "SQLAlchemy" not in str(exc):
            raise
    from gridflow.store.memory import MemoryStore

    if lang == "zh":
        err.write("gridflow demo：没有安装 `sqlalchemy`，演示在内存中运行，不保存数据（运行 "
                  "`pip install 'gridflow[sql]'` 后可保存到数据库文件）\n")
    else:
        err.write("gridflow demo: SQLAlchemy is not installed, so the demo runs in memory and "
                  "keeps nothing (pip install 'gridflow[sql]' to keep it in a SQLite file)\n")
    return MemoryStore(), "memory"


def cmd_demo(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from gridflow import _demo

    lang = args.lang or "en"
    tz = args.tz or SHANGHAI
    columns = _columns()
    store, where = _demo_store(args.db, lang, err)
    clock = FixedClock(_demo.START)
    # The demo plays fixed stories: no project file, no installed plugins; the
    # plugins and specs named on the command line are registered.
    # The demo's personal values are sealed under a key of this run only.
    from gridflow.personal.keyring import Keyring

    session = open_session(args, store=store, clock=clock, project=False, entry_points=False,
                           keyring=Keyring.generate())
    engine = session.engine
    taken = [cid for cid in _demo.CASE_IDS if store.get(cid) is not None]
    if taken:
        raise UsageError(f"the demo's cases already exist in {where} ({', '.join(taken)}); "
                         "give the demo an empty database", EXIT_PROBLEMS)
    known = {spec.name for spec in engine.workflows}
    mediation = "mediation" in known
    if not mediation:
        err.write("gridflow demo：没有 mediation 流程，只演示网格案件\n" if lang == "zh" else
                  "gridflow demo: this gridflow has no 'mediation' workflow; playing the grid "
                  "case only\n")

    def say(story: str) -> None:
        en, zh = _demo.STORIES[story]
        err.write(f"gridflow demo：{zh}\n" if lang == "zh" else f"gridflow demo: {en}\n")

    ids = _demo.play(engine, clock, mediation=mediation, progress=None if args.quiet else say)
    out.write("\n".join(_wrap_line(w("demo_title", lang), columns)) + "\n\n")
    for case_id in ids:
        print_case(engine, case_id, lang, tz, out, columns)
        out.write("\n")
    out.write(f"{w('figures', lang)}\n")
    try:
        _print_figures(session, out, err, since=None, until=clock.now() + timedelta(seconds=1),
                       by="grid", quiet=True, columns=columns)
    except UsageError as exc:  # the stories are the point; the figures are a bonus
        out.write(f"  ({exc})\n")
    if where != "memory":
        db = f"--db {where}"
        out.write("\n" + "\n".join(_wrap_line(w("stored", lang).format(where=where), columns))
                  + "\n")
        program = _program()
        for command in (f"{program} history {_demo.ALLEY} {db}",
                        f"{program} report {db} --by grid",
                        f"{program} report {db} --classes",
                        f"{program} diagram grid_case --format mermaid"):
            out.write(_command_lines(command, columns))
    return EXIT_OK


def _here(path: str) -> str:
    """``path`` relative to the current directory when it is inside it."""
    full = os.path.abspath(path)  # not resolved: a venv's python is a symlink
    rel = os.path.relpath(full)
    return full if rel.startswith("..") else rel


def _program() -> str:
    """How to run gridflow again, as this process was started: ``gridflow`` when that
    is the command on the PATH, else the script's path or ``python -m gridflow``, so
    that the commands the demo suggests run as printed."""
    import shutil

    argv0 = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path()
    if argv0.name == "__main__.py" and argv0.parent.name == "gridflow":
        return f"{_here(sys.executable)} -m gridflow"
    if argv0.name == "gridflow":
        found = shutil.which("gridflow")
        if found is None or Path(found).resolve() != argv0.resolve():
            return _here(str(argv0))
    return "gridflow"


def _wrap_line(text: str, columns: int) -> list[str]:
    from gridflow._textlayout import wrap

    return wrap(text, columns)


def _command_lines(command: str, columns: int) -> str:
    """A command to copy, broken with shell continuations to fit ``columns`` (a
    single word longer than that, such as a URL, is left whole)."""
    lines: list[str] = []
    line = "  "
    for word in command.split(" "):
        if line.strip() and len(line) + 1 + len(word) + 2 > columns:
            lines.append(line + " \\")
            line = "      "
        line += ("" if not line.strip() else " ") + word
    lines.append(line)
    return "\n".join(lines) + "\n"


def _case_json(case: Case) -> dict[str, Any]:
    return {
        "id": case.id, "workflow": case.workflow, "workflow_version": case.workflow_version,
        "state": case.state, "version": case.version, "data": case.data, "grid": case.grid,
        "opened_at": case.opened_at.isoformat(), "updated_at": case.updated_at.isoformat(),
        "deadline_at": case.deadline_at.isoformat() if case.deadline_at else None,
        "links": list(case.links), "head": case.head,
    }


def _event_json(event: Event) -> dict[str, Any]:
    return {
        "seq": event.seq, "trigger": event.trigger, "source": event.source,
        "dest": event.dest, "actor": event.actor.to_json(), "at": event.at.isoformat(),
        "payload": event.payload, "idempotency_key": event.idempotency_key,
        "prev_hash": event.prev_hash, "hash": event.hash,
    }


#: What to do about a workflow the command does not know.
_REGISTER_HINT = REGISTER_HINT


def cmd_history(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    session = open_session(args, database=True)
    engine, conf = session.engine, session.settings
    if args.json:
        case = engine.get(args.case_id)
        data = {"case": _case_json(case),
                "events": [_event_json(e) for e in engine.history(args.case_id)]}
        json.dump(data, out, ensure_ascii=False, indent=2)
        out.write("\n")
    else:
        case = print_case(engine, args.case_id, conf.lang, conf.tz, out, _columns())
    try:
        engine.verify(case.id)
    except UnknownWorkflow as exc:
        err.write(f"gridflow history: not verified: {exc}; {_REGISTER_HINT}\n")
        return EXIT_PROBLEMS
    except IntegrityError as exc:
        err.write(f"gridflow history: VERIFICATION FAILED: {exc}\n")
        return EXIT_PROBLEMS
    if not args.json:
        out.write("  ✓ " + w("verified", conf.lang).format(n=case.version) + "\n")
    return EXIT_OK


def cmd_report(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    session = open_session(args, database=True)
    conf = session.settings
    since = _when(args.since, conf.tz) if args.since else None
    until = (_when(args.until, conf.tz, end_of_day=True) if args.until
             else SystemClock().now() + timedelta(microseconds=1))
    if since is not None and until <= since:
        raise UsageError(f"--until ({args.until}) is before --since ({args.since})")
    by = None if args.by == "none" else args.by
    if args.classes:
        _print_classes(session, out, since=since, until=until, args=args)
        return EXIT_OK
    if not args.json:
        span = f"{args.since or '…'} – {args.until or w('now', conf.lang)}"
        out.write(f"{w('figures', conf.lang)} ({span})\n")
    _print_figures(session, out, err, since=since, until=until, by=by, quiet=args.quiet,
                   as_json=args.json, columns=_columns())
    return EXIT_OK


def _print_classes(session: Session, out: TextIO, *, since: datetime | None, until: datetime,
                   args: argparse.Namespace) -> None:
    """``report --classes``: the problem classes (`gridflow.metrics.problem_classes`)."""
    store = session.store
    assert store is not None
    metrics = _metrics_module()
    classes = metrics.problem_classes(
        store, since=since or datetime(1970, 1, 1, tzinfo=UTC), until=until,
        min_cases=args.min_cases)
    if args.json:
        json.dump({"since": since.isoformat() if since else None, "until": until.isoformat(),
                   "min_cases": args.min_cases, "classes": [c.to_dict() for c in classes]},
                  out, ensure_ascii=False, indent=2)
        out.write("\n")
        return
    span = f"{args.since or '…'} – {args.until or w('now', session.settings.lang)}"
    out.write(f"{w('figures', session.settings.lang)} ({span})\n")
    out.write("\n".join(class_lines(classes, session.settings.lang, _columns())) + "\n")


def _min_cases_arg(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {value!r}")
    return number


def cmd_tick(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    session = open_session(args, database=True)
    engine, store, conf = session.engine, session.store, session.settings
    assert store is not None
    now = _when(args.now, conf.tz) if args.now else SystemClock().now()
    engine.clock = FixedClock(now)
    lang = conf.lang
    labels = Labels(engine, lang)
    label = "计时器" if lang == "zh" else "tick"
    progress = Progress(label, err, quiet=args.quiet)
    if args.dry_run:
        rows = []
        for case in _cases(store, progress, overdue_at=now):
            spec = labels.spec(case)
            due = case.deadline_at.astimezone(conf.tz).strftime("%Y-%m-%d %H:%M") \
                if case.deadline_at else ""
            breach = spec.state(case.state).on_breach if spec is not None else None
            rows.append([case.id, labels.state(spec, case.state), due,
                         labels.trigger(spec, breach) if breach else w("overdue", lang)])
        progress.done(f"{len(rows)} 个超期案件，未做任何改动（--dry-run）" if lang == "zh" else
                      f"{len(rows)} overdue case(s), nothing changed (--dry-run)")
        from gridflow._textlayout import table

        lines = table(rows, _columns())
        out.write("".join(line + "\n" for line in lines))
        return EXIT_OK
    total = 0
    while True:
        events = engine.tick(now, limit=args.batch)
        for event in events:
            found = store.get(event.case_id)
            spec = labels.spec(found) if found is not None else None
            change = (f"↻ {labels.state(spec, event.source)}" if event.dest is None else
                      f"{labels.state(spec, event.source)} → {labels.state(spec, event.dest)}")
            out.write(f"{event.case_id}  {labels.trigger(spec, event.trigger)}  {change}\n")
        total += len(events)
        progress.add(len(events))
        if not events:
            break
    progress.done(f"记录了 {total} 步" if lang == "zh" else f"{total} step(s) recorded")
    errors = list(engine.tick_errors)
    for failure in errors:
        hint = f"; {_REGISTER_HINT}" if isinstance(failure.error, UnknownWorkflow) else ""
        err.write(f"gridflow tick: case {failure.case_id!r}: {failure.error}{hint}\n")
    return EXIT_PROBLEMS if any(not f.marked_overdue for f in errors) else EXIT_OK


# -- open and fire -----------------------------------------------------------------------


def _split(values: Sequence[str] | None) -> list[str]:
    return [part.strip() for value in values or () for part in value.split(",")
            if part.strip()]


def _actor(args: argparse.Namespace) -> Actor:
    grids = _split(args.grids)
    if not grids:
        raise UsageError("--grids is needed: the grids the actor works in (--grids 华三-1, "
                         "several comma-separated), or --grids '*' for the street level "
                         "(every grid); an actor without grids may touch no case")
    scope: Any = ALL_GRIDS if grids == ["*"] else grids
    try:
        return Actor(args.actor, _split(args.roles), scope)
    except InvalidArgument as exc:
        raise UsageError(f"--actor/--roles/--grids: {exc}") from None


def _data(value: str | None) -> dict[str, Any]:
    if value is None:
        return {}
    where = "--data"
    if value.startswith("@") or value == "-":
        name = value[1:] if value.startswith("@") else "-"
        try:
            text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read --data file {name}: {exc}") from None
        where = f"--data file {name}"
    else:
        text = value
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{where} is not valid JSON: {exc.msg} at line {exc.lineno}, "
                         f"column {exc.colno}; e.g. --data '{{\"title\": \"路灯不亮\"}}'") \
            from None
    except RecursionError:
        # json's decoder recurses per level: a deep enough file exhausts the stack.
        from gridflow.values import MAX_DEPTH

        raise UsageError(f"{where} is nested too deeply to be read; a payload may be "
                         f"nested {MAX_DEPTH} levels at most") from None
    if not isinstance(data, dict):
        raise UsageError(f"{where} must be a JSON object ({{...}}), got "
                         f"{type(data).__name__}")
    return data


def _step_session(args: argparse.Namespace, *, create: bool) -> tuple[Session, Actor,
                                                                       dict[str, Any]]:
    """What open and fire share: the actor and data (checked first), the engine on
    its database, and the clock (``--now``)."""
    actor = _actor(args)
    data = _data(args.data)
    session = open_session(args, database=True, create=create)
    if args.now:
        session.engine.clock = FixedClock(_when(args.now, session.settings.tz))
    return session, actor, data


def _print_step(session: Session, case: Case, verb: str, as_json: bool, out: TextIO) -> None:
    if as_json:
        json.dump(_case_json(case), out, ensure_ascii=False, indent=2)
        out.write("\n")
        return
    lang = session.settings.lang
    labels = Labels(session.engine, lang)
    spec = labels.spec(case)
    title = spec.label(lang) if spec is not None else case.workflow
    colon = "：" if lang == "zh" else ": "
    out.write(f"{verb} {case.id} · {title} ({case.workflow}@{case.workflow_version}) · "
              f"{w('grid', lang)} {case.grid or '-'} · {w('state', lang)}{colon}"
              f"{labels.state(spec, case.state)}\n")


def cmd_open(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    session, actor, data = _step_session(args, create=True)
    grid = args.grid
    own = actor.grids
    if grid is None and isinstance(own, frozenset) and len(own) == 1:
        grid = next(iter(own))
    case = session.engine.open(args.workflow, actor=actor, data=data, grid=grid,
                               links=_split(args.link), idempotency_key=args.key,
                               case_id=args.id)
    _print_step(session, case, "新建" if session.settings.lang == "zh" else "opened",
                args.json, out)
    return EXIT_OK


def cmd_fire(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    session, actor, payload = _step_session(args, create=False)
    case = session.engine.fire(args.case_id, args.trigger, actor=actor, payload=payload,
                               idempotency_key=args.key)
    lang = session.settings.lang
    labels = Labels(session.engine, lang)
    _print_step(session, case, labels.trigger(labels.spec(case), args.trigger), args.json, out)
    return EXIT_OK


# -- validate ----------------------------------------------------------------------------

_PATH_TOKEN = re.compile(r"\.?([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\['([^']*)'\]|\[\"([^\"]*)\"\]")

# Which field of a state / transition a problem is about, from its wording:
# (pattern on SpecProblem.what, field, group of the pattern holding the value or 0).
_FIELD_HINTS = (
    (re.compile(r"unknown dest state '([^']*)'"), "dest", 0),
    (re.compile(r"unknown source state '([^']*)'"), "source", 1),
    (re.compile(r"source state '([^']*)' is terminal"), "source", 1),
    (re.compile(r"^guard '([^']*)' is not registered"), "guards", 1),
    (re.compile(r"^effect '([^']*)' is not registered"), "effects", 1),
    (re.compile(r"^role '([^']*)' is not registered"), "roles", 1),
    (re.compile(r"^trigger name"), "trigger", 0),
    (re.compile(r"^deadline"), "deadline", 0),
    (re.compile(r"^on_breach|^a terminal state has a deadline"), "on_breach", 0),
    (re.compile(r"^choices for '([^']*)'"), "choices", 0),
    (re.compile(r"^extra fields found \(([^,)]*)"), "", 1),
)


def _path_of(where: str) -> list[str | int]:
    """``transitions[3] (triage)`` / ``spec.states[0].deadline`` -> a path in the data."""
    text = where.split(" ", 1)[0]
    if text.startswith("spec"):
        text = text[4:]
    out: list[str | int] = []
    pos = 0
    while pos < len(text):
        match = _PATH_TOKEN.match(text, pos)
        if match is None:
            break
        name, index, key1, key2 = match.groups()
        out.append(int(index) if index is not None else (name or key1 or key2 or ""))
        pos = match.end()
    return out


def _hint(problem: SpecProblem) -> tuple[list[str | int], str | None]:
    """Extra path steps (a field, and the list item naming a value) for a problem."""
    for pattern, field, group in _FIELD_HINTS:
        match = pattern.search(problem.what)
        if match is None:
            continue
        value = match.group(group) if group else None
        if not field:  # an unknown key: point at the key itself
            return ([value] if value else []), None
        return [field], value
    return [], None


def _locator(text: str) -> Callable[[list[str | int], str | None], tuple[int, int] | None]:
    """Find the line and column of a path in YAML (or JSON) text; no code runs.

    The deepest node of the path that exists is used; ``value`` picks the
    item of a list that holds it.
    """
    try:
        import yaml

        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except Exception:  # no PyYAML, or text it cannot read: locations without lines
        return lambda _path, _value: None

    def find(path: list[str | int], value: str | None) -> tuple[int, int] | None:
        node = root
        if node is None:
            return None
        best = node
        for step in path:
            nxt = None
            if isinstance(node, yaml.MappingNode) and isinstance(step, str):
                for key, item in node.value:
                    if getattr(key, "value", None) == step:
                        nxt = item if isinstance(item, yaml.CollectionNode) else key
                        break
            elif (isinstance(node, yaml.SequenceNode) and isinstance(step, int)
                  and 0 <= step < len(node.value)):
                nxt = node.value[step]
            if nxt is None:
                break
            node = best = nxt
        if value is not None and isinstance(node, yaml.SequenceNode):
            for item in node.value:
                if getattr(item, "value", None) == value:
                    best = item
                    break
        mark = best.start_mark
        return mark.line + 1, mark.column + 1

    return find


def _raw(path: Path, text: str) -> Any:
    """The file's data as plain values (the spec reader, within its limits), or None if
    it cannot be read."""
    try:
        return parse_spec(text, path)
    except SpecError:
        return None


def _unregistered(data: Any, engine: Engine) -> list[SpecProblem]:
    """Guards, effects and roles a spec names that nobody registered (nor the spec
    declares), read from the raw data (for a spec too broken to build, so that every
    problem is listed)."""
    if not isinstance(data, dict):
        return []
    declared = {r.get("name") for r in data.get("roles") or () if isinstance(r, dict)} \
        if isinstance(data.get("roles"), list) else set()
    tables: dict[str, Mapping[str, object] | set[Any]] = {
        "guard": engine.guards, "effect": engine.effects, "role": {*engine.roles, *declared}}
    listed = {kind: listing(sorted(n for n in table if isinstance(n, str)))
              for kind, table in tables.items()}
    out: list[SpecProblem] = []

    def check(where: str, item: Any) -> None:
        if not isinstance(item, dict):
            return
        for kind, key in (("guard", "guards"), ("effect", "effects"), ("role", "roles")):
            names = item.get(key)
            for name in names if isinstance(names, list) else ():
                if isinstance(name, str) and name not in tables[kind]:
                    out.append(SpecProblem(where, f"{kind} {name!r} is not registered",
                                           f"registered {kind}s: {listed[kind]}"))

    check("open", {"guards": data.get("open_guards"), "effects": data.get("open_effects"),
                   "roles": data.get("open_roles")})
    transitions = data.get("transitions")
    for i, item in enumerate(transitions if isinstance(transitions, list) else ()):
        trigger = item.get("trigger") if isinstance(item, dict) else None
        check(f"transitions[{i}] ({trigger})", item)
    personal = data.get("personal")
    if isinstance(personal, dict):
        for key in ("readers", "auditors"):
            check(f"personal.{key}", {"roles": personal.get(key)})
    return out


def _problems(path: Path, text: str, engine: Engine) -> tuple[WorkflowSpec | None,
                                                               list[SpecProblem]]:
    try:
        spec = WorkflowSpec.load(path)
    except SpecError as exc:
        if any("PyYAML is not installed" in p.what for p in exc.problems):
            raise UsageError(f"{path}: reading YAML needs PyYAML: pip install "
                             "'gridflow[yaml]'") from None
        seen = {(p.where, p.what) for p in exc.problems}
        extra = [p for p in _unregistered(_raw(path, text), engine)
                 if (p.where, p.what) not in seen]
        return None, [*exc.problems, *extra]
    try:
        engine.register_workflow(spec)
    except SpecError as exc:
        return spec, list(exc.problems)
    return spec, []


def _problem_line(name: str, path: Path, problem: SpecProblem,
                  locate: Callable[[list[str | int], str | None], tuple[int, int] | None]) -> str:
    what, where = problem.what, problem.where
    if where.startswith(f"{path}:"):  # a JSON syntax error names its own line:column
        return f"{where.replace(str(path), name, 1)}: {what}"
    if what.startswith("invalid YAML"):
        marks = re.findall(r"line (\d+), column (\d+)", what)
        head = what.splitlines()[0]
        at = f"{name}:{marks[-1][0]}:{marks[-1][1]}" if marks else name
        return f"{at}: {head}"
    loc = None
    if where not in (str(path), "open"):
        extra, value = _hint(problem)
        loc = locate([*_path_of(where), *extra], value)
    elif where == "open":
        extra, value = _hint(problem)
        loc = locate([f"open_{extra[0]}"] if extra else [], value)
    at = f"{name}:{loc[0]}:{loc[1]}" if loc else name
    why = f" ({problem.why})" if problem.why else ""
    return f"{at}: {where}: {what}{why}"


def cmd_validate(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    # Plugins count (they register guards, effects, roles); the specs are what is checked.
    session = open_session(args, register_specs=False)
    engine = session.engine
    given = [*(Path(f) for f in args.files), *(Path(f) for f in args.spec or ())]
    names = [str(p) for p in given] or [str(p) for p in session.settings.specs]
    if not names:
        raise UsageError("nothing to validate: pass FILE (a .yaml, .yml or .json spec), or "
                         "list specs in gridflow.toml")
    status = EXIT_OK
    for name in names:
        path = Path(name)
        if not path.is_file():
            raise UsageError(f"no such file: {name}")
        try:
            text = read_text(path)
        except SpecError as exc:  # too big, not UTF-8, unreadable
            text, spec, problems = "", None, exc.problems
        else:
            spec, problems = _problems(path, text, engine)
        if not problems:
            assert spec is not None
            out.write(f"{name}: ok: {spec.key} ({len(spec.states)} states, "
                      f"{len(spec.transitions)} transitions)\n")
            continue
        status = EXIT_PROBLEMS
        # Problems of a file that cannot be read carry their own location.
        locate = _locator(text) if _raw(path, text) is not None else (lambda _p, _v: None)
        out.write(f"{name}: {len(problems)} problem(s)\n")
        for problem in problems[:MAX_LISTED_PROBLEMS]:
            line = _problem_line(name, path, problem, locate)
            out.write((line if len(line) <= 500 else line[:497] + "...") + "\n")
        if len(problems) > MAX_LISTED_PROBLEMS:
            out.write(f"... and {len(problems) - MAX_LISTED_PROBLEMS} more problem(s)\n")
    return status


# -- diagram -----------------------------------------------------------------------------


def cmd_diagram(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from gridflow.interop import diagram

    session = open_session(args)
    spec = spec_arg(args.workflow, session)
    text = diagram.render(spec, args.format, session.settings.lang)
    if args.output:
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write {args.output}: {exc.strerror or exc}") from None
        err.write(f"gridflow diagram: wrote {args.output}\n")
    else:
        out.write(text)
    return EXIT_OK


# -- the parser --------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The ``gridflow`` argument parser (every subcommand has ``--help``).

    Example:
        >>> parser = build_parser()
        >>> parser.parse_args(["diagram", "grid_case"]).format
        'mermaid'
    """
    parser = argparse.ArgumentParser(
        prog="gridflow",
        description="Community-governance case workflows (grid cases, 1+3+N mediation) as "
                    "durable state machines.",
        epilog="Run `gridflow COMMAND --help` for a command's options. Every command reads "
               "gridflow.toml (or [tool.gridflow] in pyproject.toml) in the current "
               "directory: database, specs, plugins, lang, calendar, tz; options given on "
               "the command line win. Exit codes: 0 ok, 1 problems found, 2 bad usage, "
               "130 interrupted.")
    parser.add_argument("--version", action="version", version=f"gridflow {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    project = argparse.ArgumentParser(add_help=False)
    group = project.add_argument_group("workflows, plugins and the project file")
    group.add_argument("--spec", action="append", metavar="FILE",
                       help="register a workflow spec file (YAML or JSON); repeatable, added "
                            "to the project file's specs")
    group.add_argument("--plugin", action="append", metavar="MODULE",
                       help="register a plugin: an importable module or MODULE:ATTRIBUTE "
                            "(a class is instantiated), also looked for in the current "
                            "directory; repeatable")
    group.add_argument("--no-plugins", action="store_true",
                       help="do not load installed plugins (the 'gridflow' entry points); "
                            "--plugin ones still load")
    group.add_argument("--no-project", action="store_true",
                       help="ignore gridflow.toml / [tool.gridflow] in pyproject.toml")
    lang = argparse.ArgumentParser(add_help=False)
    lang.add_argument("--lang", choices=("en", "zh"), default=None,
                      help="language of labels and headings (default: the project's, or en)")
    tz = argparse.ArgumentParser(add_help=False)
    tz.add_argument("--tz", type=_tz_arg, default=None, metavar="ZONE",
                    help="time zone for times shown and dates given: UTC, +08:00, "
                         "Asia/Shanghai... (default: the project's, or Asia/Shanghai)")
    db = argparse.ArgumentParser(add_help=False)
    db.add_argument("--db", default=None, metavar="URL",
                    help=f"database: a SQLite file path or a SQLAlchemy URL such as "
                         f"postgresql+psycopg://user@host/db (default: ${DB_ENV}, then the "
                         "project's database)")
    calendar = argparse.ArgumentParser(add_help=False)
    calendar.add_argument("--calendar", choices=("days", "weekdays", "china"), default=None,
                          help="how the deadlines of states entered are counted: calendar "
                               "days (default), Monday-Friday, or mainland China's working "
                               "days (needs gridflow[china])")
    quiet = argparse.ArgumentParser(add_help=False)
    quiet.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    step = argparse.ArgumentParser(add_help=False)
    who = step.add_argument_group("who acts, and with what")
    who.add_argument("--actor", required=True, metavar="ID", help="the actor's id")
    who.add_argument("--roles", action="append", metavar="ROLE[,ROLE]",
                     help="the actor's roles (repeatable or comma-separated)")
    who.add_argument("--grids", action="append", metavar="GRID[,GRID]|*",
                     help="the grids the actor may act in; '*' for the street level (every "
                          "grid)")
    who.add_argument("--data", metavar="JSON|@FILE|-",
                     help="the step's data: a JSON object, @FILE to read one, - for stdin")
    who.add_argument("--key", metavar="KEY",
                     help="idempotency key: the same key again returns the stored result")
    who.add_argument("--now", metavar="DATETIME",
                     help="act as if it were this time (default: now)")
    who.add_argument("--json", action="store_true", help="print the case as JSON")

    p = sub.add_parser(
        "demo", parents=[lang, tz, quiet, project],
        help="play the source's stories and print their timelines and figures",
        description="Plays the stories of the source article: the alley near Lane 324 "
                    "(grid case: four departments, the look-back), the hot-pot scald "
                    "(1+3+N mediation with its linked rectification case) and the second "
                    "victim. Prints each case's timeline and the supervision figures, fitted "
                    f"to the terminal's width. Uses a fresh SQLite file ({DEMO_DB}, replaced "
                    "on every run) unless --db is given; without SQLAlchemy it runs in "
                    "memory. It reads no project file and loads no installed plugin.")
    p.add_argument("--db", metavar="URL", default=None,
                   help="an empty database to play the stories on (SQLite path or URL)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "validate", help="check workflow spec files (YAML or JSON)",
        description="Checks each workflow spec file (FILE and --spec; with neither, the "
                    "project file's specs) and prints every problem with its location "
                    "(file:line:column where it can be found). Loading a spec never executes "
                    "code from it (YAML is read with the safe loader). Guards, effects and "
                    "roles must be registered: by gridflow, by the spec's own roles, by a "
                    "--plugin or the project's plugins, or by an installed plugin unless "
                    "--no-plugins. Exit code 1 if any file has problems.", parents=[project])
    p.add_argument("files", nargs="*", metavar="FILE", help="a .yaml, .yml or .json spec")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser(
        "diagram", parents=[lang, project],
        help="print a workflow's state diagram (Mermaid or Graphviz DOT)",
        description="Prints the state diagram of a registered workflow (NAME or "
                    "NAME@VERSION: grid_case, mediation, or one of --spec / the project's "
                    "specs / a plugin) or of a spec file.")
    p.add_argument("workflow", metavar="WORKFLOW|FILE")
    p.add_argument("--format", choices=("mermaid", "dot"), default="mermaid",
                   help="mermaid (default) or dot")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    p.set_defaults(func=cmd_diagram)

    p = sub.add_parser(
        "history", parents=[db, lang, tz, project],
        help="print a case's timeline and verify its history",
        description="Prints a case's timeline (time, step, actor, state change, payload) "
                    "and verifies its stored history (hash chain and replay). Exit code 1 if "
                    "the case does not exist, or its history fails verification or cannot "
                    "be verified (its workflow is not registered: pass --spec).")
    p.add_argument("case_id", metavar="CASE_ID")
    p.add_argument("--json", action="store_true", help="print the case and events as JSON")
    p.set_defaults(func=cmd_history)

    p = sub.add_parser(
        "report", parents=[db, lang, tz, project, quiet],
        help="print the supervision figures",
        description="Prints, for the cases opened between --since and --until (dates are "
                    "whole days in --tz, both included), the supervision figures of the "
                    "workflows they are defined on (grid_case, mediation), each said to "
                    "apply to that workflow only, and for every other workflow its cases by "
                    "state and the median time spent in each state.")
    p.add_argument("--since", metavar="DATE", help="first day (2026-03-01) or a date-time")
    p.add_argument("--until", metavar="DATE", help="last day (2026-03-31) or a date-time")
    p.add_argument("--by", choices=("grid", "area", "category", "version", "department",
                                    "none"),
                   default="none",
                   help="one column per grid, residents' area, category, workflow version or "
                        "department (the closed-loop figures of grid_case@2 only) (default: "
                        "none, one column for everything)")
    p.add_argument("--classes", action="store_true",
                   help="list the problem classes (一类事) instead: grid cases opened in the "
                        "period by place (location key) and category, with their cases, "
                        "recurrences (反弹), cases solved and time to solve")
    p.add_argument("--min-cases", metavar="N", type=_min_cases_arg, default=1,
                   help="with --classes: only the classes with at least N cases (2: the "
                        "problems that came back)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser(
        "tick", parents=[db, lang, tz, calendar, project, quiet],
        help="run the timer once: act on every overdue case",
        description="Fires the breach trigger (on_breach) of every overdue case as actor "
                    "'system', or marks it overdue where its state has none; run it from "
                    "cron or a scheduler. Safe to run on several machines at once. Exit code "
                    "1 if a case could not be handled (it is retried on the next run).")
    p.add_argument("--now", metavar="DATETIME",
                   help="act as if it were this time (default: now)")
    p.add_argument("--batch", type=_batch_arg, default=100, metavar="N",
                   help=f"cases claimed per round, 1 to {MAX_TICK_LIMIT:,} (default: 100)")
    p.add_argument("--dry-run", action="store_true",
                   help="list the overdue cases, change nothing")
    p.set_defaults(func=cmd_tick)

    from gridflow._cli_worker import add_worker_parser

    add_worker_parser(sub, [db, calendar, project], _batch_arg)

    p = sub.add_parser(
        "open", parents=[step, db, lang, tz, calendar, project],
        help="open a case (creates the database's tables if need be)",
        description="Opens a case of WORKFLOW as --actor with --roles in --grids, with "
                    "--data as its opening data. The case's grid is --grid, or the actor's "
                    "grid when it has exactly one. Prints the case (--json: as JSON). Exit "
                    "code 1 if the workflow refuses (role, grid, missing data...).")
    p.add_argument("workflow", metavar="WORKFLOW", help="a registered workflow's name")
    p.add_argument("--grid", metavar="GRID", help="the grid the case belongs to")
    p.add_argument("--id", metavar="CASE_ID", help="the case's id (default: a random one)")
    p.add_argument("--link", action="append", metavar="CASE_ID",
                   help="link the new case to this one (repeatable)")
    p.set_defaults(func=cmd_open)

    p = sub.add_parser(
        "fire", parents=[step, db, lang, tz, calendar, project],
        help="fire a trigger on a case: one recorded step",
        description="Fires TRIGGER on CASE_ID as --actor with --roles in --grids, with "
                    "--data as the payload. Prints the case after the step (--json: as "
                    "JSON). Exit code 1 if the step is refused; nothing is stored then.")
    p.add_argument("case_id", metavar="CASE_ID")
    p.add_argument("trigger", metavar="TRIGGER")
    p.set_defaults(func=cmd_fire)

    from gridflow import _cli_migrate

    _cli_migrate.add_commands(sub, project=project, db=db)

    from gridflow import _cli_personal

    _cli_personal.add_parsers(sub, [db, lang, project])

    from gridflow._cli_log import add_log_commands

    add_log_commands(sub, db=db, project=project)
    return parser


# -- running -----------------------------------------------------------------------------


class _OneLine(logging.Formatter):
    """Log records as one line each: the CLI says what went wrong; a traceback is for
    `GRIDFLOW_DEBUG`."""

    def format(self, record: logging.LogRecord) -> str:
        return f"gridflow: {record.levelname.lower()}: {record.getMessage()}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``gridflow`` command with ``argv`` (default ``sys.argv[1:]``); return
    the exit status.

    Example:
        >>> main(["--version"])
        gridflow ...
        0
    """
    out, err = sys.stdout, sys.stderr
    debug = os.environ.get(DEBUG_ENV) == "1"
    handler = logging.StreamHandler(err)
    handler.setLevel(logging.WARNING)
    if not debug:
        handler.setFormatter(_OneLine())
    log = logging.getLogger("gridflow")
    log.addHandler(handler)
    try:
        return _run(argv, out, err, debug)
    except KeyboardInterrupt:  # Ctrl-C: the user knows; say nothing more
        return EXIT_INTERRUPTED
    finally:
        log.removeHandler(handler)


def _run(argv: Sequence[str] | None, out: TextIO, err: TextIO, debug: bool) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error argparse printed
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if not getattr(args, "command", None):
        parser.print_help(err)
        return EXIT_USAGE
    name = f"gridflow {args.command}"
    try:
        status: int = args.func(args, out, err)
    except UsageError as exc:
        err.write(f"{name}: error: {exc}\n")
        return exc.code
    except GridflowError as exc:
        err.write(f"{name}: error: {exc}\n")
        return EXIT_PROBLEMS
    except BrokenPipeError:
        # The reader went away (`gridflow ... | head`): not an error of ours.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        if debug:
            raise
        first = str(exc).splitlines()[0] if str(exc) else ""
        err.write(f"{name}: unexpected error: {type(exc).__name__}: {first} (a bug in "
                  f"gridflow or in a plugin; run again with {DEBUG_ENV}=1 to see where)\n")
        return EXIT_PROBLEMS
    return status
