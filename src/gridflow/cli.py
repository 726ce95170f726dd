"""The ``gridflow`` command: demo, validate, diagram, history, report, tick.

Built on `argparse` (standard library), so the core install needs nothing
more. Databases need ``gridflow[sql]`` (SQLite) or ``gridflow[postgres]``;
YAML files need ``gridflow[yaml]``.

Exit codes: 0 success; 1 the command ran and found a problem (an invalid
spec, a case that does not exist, a failed verification, a timer error);
2 the command could not run as asked (bad arguments, a missing file or
database, a missing optional dependency). Messages go to stderr, never
tracebacks, for anything the user can fix.

Example:
    >>> main(["diagram", "grid_case", "--format", "mermaid", "--lang", "zh"])  # doctest: +ELLIPSIS
    stateDiagram-v2
    ...
    0
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import unicodedata
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any, TextIO

from gridflow import __version__
from gridflow._errors import (
    MAX_LISTED_PROBLEMS,
    CaseNotFound,
    GridflowError,
    IntegrityError,
    SpecError,
    SpecProblem,
    UnknownWorkflow,
)
from gridflow._speccheck import listing
from gridflow._specload import parse_spec, read_text
from gridflow.calendar import Calendar, CalendarDays
from gridflow.clock import Clock, FixedClock, SystemClock
from gridflow.engine import Engine
from gridflow.model import Case, Event
from gridflow.spec import WorkflowSpec
from gridflow.store import Store

__all__ = ["EXIT_OK", "EXIT_PROBLEMS", "EXIT_USAGE", "UsageError", "build_parser", "main"]

EXIT_OK = 0
#: The command ran and found problems (invalid spec, unknown case, failed check).
EXIT_PROBLEMS = 1
#: The command could not run as asked (arguments, missing file / database / extra).
EXIT_USAGE = 2

#: Environment variable holding the default ``--db``.
DB_ENV = "GRIDFLOW_DB"
#: Where ``gridflow demo`` keeps its SQLite file unless ``--db`` is given.
DEMO_DB = Path(tempfile.gettempdir()) / "gridflow-demo.db"
#: Times are shown in China Standard Time unless ``--tz`` says otherwise.
CST = timezone(timedelta(hours=8), "CST")


class UsageError(GridflowError):
    """The command cannot run as asked; ``code`` is the exit status (2 by default)."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


# -- words in two languages --------------------------------------------------------------

_WORDS: dict[str, tuple[str, str]] = {
    # key: (en, zh)
    "open": ("Opened", "新建"),
    "link": ("Linked to a case", "关联案件"),
    "overdue": ("Overdue", "超时"),
    "stays": ("stays", "保持"),
    "case": ("Case", "案件"),
    "state": ("state", "状态"),
    "grid": ("grid", "网格"),
    "links": ("linked", "关联"),
    "time": ("Time", "时间"),
    "step": ("Step", "步骤"),
    "actor": ("Actor", "操作人"),
    "change": ("State", "状态变化"),
    "details": ("Details", "详情"),
    "verified": ("history verified: {n} events, hash chain intact, replay matches",
                 "历史已验证:{n} 条事件,哈希链完整,重放一致"),
    "figures": ("Supervision figures", "监督考核指标"),
    "demo_title": ("gridflow demo: the stories of Huayang Road sub-district (华阳路街道)",
                   "gridflow 演示:华阳路街道的网格治理案例"),
    "stored": ("Stored in {where}. Try:", "数据已保存在 {where}。可以试试:"),
    "no_cases": ("no cases", "没有案件"),
    "all": ("all", "全部"),
    "now": ("now", "现在"),
    "total": ("total", "合计"),
}


def _w(key: str, lang: str) -> str:
    en, zh = _WORDS[key]
    return zh if lang == "zh" else en


# -- text layout (CJK characters take two columns) ---------------------------------------


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * max(0, width - _width(text))


def _clip(text: str, width: int) -> str:
    if _width(text) <= width:
        return text
    out, used = [], 0
    for ch in text:
        w = _width(ch)
        if used + w > width - 1:
            break
        out.append(ch)
        used += w
    return "".join(out) + "…"


def _table(rows: Sequence[Sequence[str]], out: TextIO, indent: str = "  ",
           max_width: int = 48) -> None:
    """Left-aligned columns; the last column is not padded or clipped."""
    if not rows:
        return
    count = max(len(r) for r in rows)
    widths = [0] * count
    for row in rows:
        for i, cell in enumerate(row[:-1]):
            widths[i] = min(max(widths[i], _width(cell)), max_width)
    for row in rows:
        cells = [_pad(_clip(cell, widths[i]), widths[i]) for i, cell in enumerate(row[:-1])]
        out.write((indent + "  ".join([*cells, row[-1]])).rstrip() + "\n")


# -- progress on stderr ------------------------------------------------------------------


class Progress:
    """A count of cases done, on stderr: rewritten in place on a terminal, a line
    every ``every`` cases otherwise, and a final line either way."""

    def __init__(self, label: str, stream: TextIO, *, quiet: bool = False,
                 every: int = 500) -> None:
        self.label = label
        self.stream = stream
        self.quiet = quiet
        self.every = every
        self.count = 0
        self.tty = bool(getattr(stream, "isatty", lambda: False)())

    def add(self, n: int = 1) -> None:
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
        if self.quiet:
            return
        end = "\r" if self.tty else ""
        self.stream.write(f"{end}{self.label}: {what}\n")


# -- stores, engines, times --------------------------------------------------------------


def _db_url(value: str) -> str:
    """A SQLAlchemy URL; a plain path means a SQLite file."""
    if "://" in value:
        return value
    return f"sqlite:///{Path(value).expanduser().resolve()}"


def _sqlite_path(url: str) -> Path | None:
    if not url.startswith("sqlite"):
        return None
    _, _, rest = url.partition(":///")
    rest = rest.split("?", 1)[0]
    if not rest or rest == ":memory:":
        return None
    return Path(rest)


def _open_store(value: str | None, *, create: bool) -> Store:
    if not value:
        raise UsageError(f"no database given: pass --db URL (e.g. --db cases.db or "
                         f"--db postgresql+psycopg://user@host/db) or set {DB_ENV}")
    url = _db_url(value)
    path = _sqlite_path(url)
    if not create and path is not None and not path.exists():
        raise UsageError(f"no database file at {path}; check --db (run `gridflow demo --db "
                         f"{path}` to make one with the demo's cases)")
    try:
        from gridflow.store.sql import SQLStore
    except ImportError as exc:
        raise UsageError(f"databases need SQLAlchemy: pip install 'gridflow[sql]' "
                         f"(PostgreSQL: 'gridflow[postgres]') ({exc})") from None
    try:
        store = SQLStore(url)
    except ImportError as exc:
        raise UsageError(str(exc)) from None
    if create:
        store.create_schema()
    return store


def _engine(store: Store, args: argparse.Namespace, *, clock: Clock | None = None,
            calendar: Calendar | None = None) -> Engine:
    return Engine(store, clock=clock, calendar=calendar,
                  entry_points=not getattr(args, "no_plugins", False))


def _tz(value: str) -> tzinfo:
    """``UTC``, ``+08:00`` / ``-05:30`` or an IANA name such as ``Asia/Shanghai``."""
    text = value.strip()
    if text.upper() in ("UTC", "Z"):
        return UTC
    match = re.fullmatch(r"([+-])(\d{1,2}):?(\d{2})?", text)
    if match:
        sign = -1 if match[1] == "-" else 1
        offset = timedelta(hours=int(match[2]), minutes=int(match[3] or 0))
        return timezone(sign * offset)
    try:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
    except ImportError:  # pragma: no cover - Python < 3.9 only
        raise argparse.ArgumentTypeError(f"unknown time zone {value!r}") from None
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise argparse.ArgumentTypeError(
            f"unknown time zone {value!r}; use UTC, an offset like +08:00, or a name like "
            "Asia/Shanghai") from None


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
    except ValueError:
        raise UsageError(f"not a date or date-time: {value!r}; use 2026-03-31 or "
                         "2026-03-31T18:00+08:00") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=tz)
    return when.astimezone(UTC)


# -- timelines ---------------------------------------------------------------------------


class _Labels:
    """Labels of states, triggers and roles in one language, from the registered specs."""

    def __init__(self, engine: Engine, lang: str) -> None:
        self.engine = engine
        self.lang = lang

    def spec(self, case: Case) -> WorkflowSpec | None:
        try:
            return self.engine.workflow(case.workflow, case.workflow_version)
        except UnknownWorkflow:
            return None

    def state(self, spec: WorkflowSpec | None, name: str | None) -> str:
        if name is None:
            return ""
        if spec is not None:
            try:
                return spec.state(name).label(self.lang)
            except KeyError:
                pass
        return name

    def trigger(self, spec: WorkflowSpec | None, trigger: str) -> str:
        if trigger in ("open", "link", "overdue"):
            return _w(trigger, self.lang)
        for tr in spec.transitions if spec is not None else ():
            if tr.trigger == trigger:
                return tr.label(self.lang)
        return trigger

    def actor(self, event: Event) -> str:
        roles = self.engine.roles
        names = [roles[r][1 if self.lang == "en" else 0] if r in roles else r
                 for r in sorted(event.actor.roles)]
        return f"{event.actor.id} ({'/'.join(names)})" if names else event.actor.id


def _short(value: Any, lang: str) -> str:
    sep = "、" if lang == "zh" else ", "
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        parts = [str(v.get("name", "…")) if isinstance(v, dict) else _short(v, lang)
                 for v in value]
        return sep.join(parts)
    if isinstance(value, dict):
        return sep.join(f"{k}:{_short(v, lang)}" for k, v in value.items())
    return str(value)


def _details(event: Event, lang: str) -> str:
    payload = event.payload
    if event.trigger == "open":
        data = payload.get("data") or {}
        text = data.get("title") or data.get("summary") or ""
        return str(text)
    if event.trigger == "link":
        return f"↔ {payload.get('case', '')}"
    return "; ".join(f"{k}={_short(v, lang)}" for k, v in payload.items())


def print_case(engine: Engine, case_id: str, lang: str, tz: tzinfo, out: TextIO) -> Case:
    """Print one case's header and timeline; return the case."""
    case = engine.get(case_id)
    events = engine.history(case_id)
    labels = _Labels(engine, lang)
    spec = labels.spec(case)
    title = spec.label(lang) if spec is not None else case.workflow
    head = (f"■ {_w('case', lang)} {case.id} · {title} ({case.workflow}@{case.workflow_version})"
            f" · {_w('grid', lang)} {case.grid or '-'} · {_w('state', lang)}: "
            f"{labels.state(spec, case.state)}")
    out.write(head + "\n")
    if case.links:
        out.write(f"  {_w('links', lang)}: {', '.join(case.links)}\n")
    rows: list[list[str]] = []
    for event in events:
        when = event.at.astimezone(tz).strftime("%Y-%m-%d %H:%M")
        if event.dest is None:
            change = f"↻ {labels.state(spec, event.source)}"
        elif event.source is None:
            change = f"→ {labels.state(spec, event.dest)}"
        else:
            change = f"{labels.state(spec, event.source)} → {labels.state(spec, event.dest)}"
        rows.append([when, labels.trigger(spec, event.trigger), labels.actor(event), change,
                     _clip(_details(event, lang), 72)])
    _table(rows, out)
    return case


# -- supervision figures -----------------------------------------------------------------

#: (Row attribute, English label, Chinese label, kind): kind is "n" (count),
#: "%" (rate) or "d" (days).
_FIGURES = (
    ("received", "Received", "受理数", "n"),
    ("triaged", "Triaged (filed)", "立案数", "n"),
    ("due", "Due", "应结案数", "n"),
    ("closed", "Closed", "结案数", "n"),
    ("closed_on_time", "Closed on time", "按期结案数", "n"),
    ("reopened", "Reopened (rework)", "返工数", "n"),
    ("extended", "Extended", "延期数", "n"),
    ("closed_in_grid", "Closed inside the grid", "格内解决数", "n"),
    ("revisits", "Revisits concluded", "回头看数", "n"),
    ("revisits_passed", "Revisits passed", "回头看通过数", "n"),
    ("mediations_ended", "Mediations ended", "调解结束数", "n"),
    ("mediations_resolved", "Mediations resolved", "化解成功数", "n"),
    ("resolved_at_tier1", "Resolved in tier 1 (grid)", "网格一级化解数", "n"),
    ("agreements", "Agreements signed", "达成协议数", "n"),
    ("filing_rate", "Filing rate 立案率", "立案率", "%"),
    ("closure_rate", "Closure rate 结案率", "结案率", "%"),
    ("on_time_rate", "On-time closure rate 按期结案率", "按期结案率", "%"),
    ("rework_rate", "Rework rate 返工率", "返工率", "%"),
    ("extension_rate", "Extension rate 延期率", "延期率", "%"),
    ("in_grid_rate", "Solved-in-grid rate 格内解决率", "格内解决率", "%"),
    ("revisit_pass_rate", "Revisit pass rate 回头看通过率", "回头看通过率", "%"),
    ("mediation_success_rate", "Mediation success rate 化解成功率", "化解成功率", "%"),
    ("tier1_share", "Share resolved in tier 1", "一级化解占比", "%"),
    ("median_days_to_agreement", "Median days to agreement", "达成协议天数中位数", "d"),
)


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


def _cell(value: Any, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "%":
        return f"{value * 100:.1f}%"
    if kind == "d":
        return f"{value:.1f}"
    return str(value)


def _print_figures(store: Store, out: TextIO, err: TextIO, *, lang: str,
                   since: datetime | None, until: datetime, by: str | None,
                   quiet: bool = False, as_json: bool = False) -> None:
    """Compute the figures with `gridflow.metrics.compute` and print them: one
    line per figure, one column per group."""
    metrics = _metrics_module()
    progress = Progress("report", err, quiet=quiet)
    if not quiet:
        total = sum(store.counts(("workflow",)).values())
        err.write(f"report: computing the figures over {total} case(s) …\n")
    try:
        report = metrics.compute(store, since=since or datetime(1970, 1, 1, tzinfo=UTC),
                                 until=until, by=by)
    except ImportError as exc:  # an optional part of the metrics is not installed
        raise UsageError(f"the figures cannot be computed here: {exc}") from None
    progress.done(f"{len(report.rows)} group(s)")
    if as_json:
        json.dump({"since": since.isoformat() if since else None, "until": until.isoformat(),
                   "by": by, "rows": report.to_dicts()}, out, ensure_ascii=False, indent=2)
        out.write("\n")
        return
    if not report.rows:
        out.write(f"  {_w('no_cases', lang)}\n")
        return
    heads = [str(row.group) if row.group is not None else (
        _w("all", lang) if by is None else "-") for row in report.rows]
    table = [["", *heads]]
    for name, en, zh, kind in _FIGURES:
        values = [getattr(row, name, None) for row in report.rows]
        if all(v is None for v in values) and kind == "n":
            continue
        table.append([zh if lang == "zh" else en, *(_cell(v, kind) for v in values)])
    # Right-align the numbers: pad every column but the first to its width.
    widths = [max(_width(r[i]) for r in table) for i in range(1, len(table[0]))]
    rows = [[r[0], *(" " * (w - _width(c)) + c for c, w in zip(r[1:], widths, strict=True))]
            for r in table]
    _table(rows, out)


# -- commands ----------------------------------------------------------------------------


def _demo_store(value: str | None, err: TextIO) -> tuple[Store, str]:
    """The demo's store and a description of where it is."""
    if value:
        store = _open_store(value, create=True)
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
        return _open_store(str(DEMO_DB), create=True), _db_url(str(DEMO_DB))
    except UsageError as exc:
        if "SQLAlchemy" not in str(exc):
            raise
    from gridflow.store.memory import MemoryStore

    err.write("gridflow demo: SQLAlchemy is not installed, so the demo runs in memory and "
              "keeps nothing (pip install 'gridflow[sql]' to keep it in a SQLite file)\n")
    return MemoryStore(), "memory"


def cmd_demo(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from gridflow import _demo

    lang, tz = args.lang, args.tz
    store, where = _demo_store(args.db, err)
    clock = FixedClock(_demo.START)
    engine = Engine(store, clock=clock, entry_points=False)
    taken = [cid for cid in _demo.CASE_IDS if store.get(cid) is not None]
    if taken:
        raise UsageError(f"the demo's cases already exist in {where} ({', '.join(taken)}); "
                         "give the demo an empty database", EXIT_PROBLEMS)
    known = {spec.name for spec in engine.workflows}
    mediation = "mediation" in known
    if not mediation:
        err.write("gridflow demo: this gridflow has no 'mediation' workflow; playing the grid "
                  "case only\n")
    say = None if args.quiet else (lambda text: err.write(f"gridflow demo: {text}\n"))
    ids = _demo.play(engine, clock, mediation=mediation, progress=say)
    out.write(_w("demo_title", lang) + "\n\n")
    for case_id in ids:
        print_case(engine, case_id, lang, tz, out)
        out.write("\n")
    out.write(f"{_w('figures', lang)}\n")
    try:
        _print_figures(store, out, err, lang=lang, since=None, until=clock.now() + timedelta(
            seconds=1), by="grid", quiet=True)
    except UsageError as exc:  # the stories are the point; the figures are a bonus
        out.write(f"  ({exc})\n")
    db = "" if where == "memory" else f" --db {where}"
    if where != "memory":
        out.write("\n" + _w("stored", lang).format(where=where) + "\n")
        out.write(f"  gridflow history {_demo.ALLEY}{db}\n")
        out.write(f"  gridflow report{db} --by grid\n")
        out.write("  gridflow diagram grid_case --format mermaid\n")
    return EXIT_OK


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


def cmd_history(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    store = _open_store(args.db, create=False)
    engine = _engine(store, args)
    if args.json:
        case = engine.get(args.case_id)
        data = {"case": _case_json(case),
                "events": [_event_json(e) for e in engine.history(args.case_id)]}
        json.dump(data, out, ensure_ascii=False, indent=2)
        out.write("\n")
    else:
        case = print_case(engine, args.case_id, args.lang, args.tz, out)
    try:
        engine.verify(case.id)
    except UnknownWorkflow as exc:
        err.write(f"gridflow history: not verified: {exc} (install the plugin that "
                  "provides it)\n")
        return EXIT_OK
    except IntegrityError as exc:
        err.write(f"gridflow history: VERIFICATION FAILED: {exc}\n")
        return EXIT_PROBLEMS
    if not args.json:
        out.write("  ✓ " + _w("verified", args.lang).format(n=case.version) + "\n")
    return EXIT_OK


def cmd_report(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    since = _when(args.since, args.tz) if args.since else None
    until = (_when(args.until, args.tz, end_of_day=True) if args.until
             else SystemClock().now() + timedelta(microseconds=1))
    if since is not None and until <= since:
        raise UsageError(f"--until ({args.until}) is before --since ({args.since})")
    store = _open_store(args.db, create=False)
    by = None if args.by == "none" else args.by
    if not args.json:
        span = f"{args.since or '…'} – {args.until or _w('now', args.lang)}"
        out.write(f"{_w('figures', args.lang)} ({span})\n")
    _print_figures(store, out, err, lang=args.lang, since=since, until=until, by=by,
                   quiet=args.quiet, as_json=args.json)
    return EXIT_OK


def _calendar(name: str) -> Calendar:
    if name == "days":
        return CalendarDays()
    from gridflow.calendar import WorkingDays

    if name == "weekdays":
        return WorkingDays()
    return WorkingDays.china()


def cmd_tick(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    store = _open_store(args.db, create=False)
    now = _when(args.now, args.tz) if args.now else SystemClock().now()
    engine = _engine(store, args, clock=FixedClock(now), calendar=_calendar(args.calendar))
    labels = _Labels(engine, args.lang)
    progress = Progress("tick", err, quiet=args.quiet)
    if args.dry_run:
        rows = []
        for case in _cases(store, progress, overdue_at=now):
            spec = labels.spec(case)
            due = case.deadline_at.astimezone(args.tz).strftime("%Y-%m-%d %H:%M") \
                if case.deadline_at else ""
            breach = spec.state(case.state).on_breach if spec is not None else None
            rows.append([case.id, labels.state(spec, case.state), due,
                         labels.trigger(spec, breach) if breach else _w("overdue", args.lang)])
        progress.done(f"{len(rows)} overdue case(s), nothing changed (--dry-run)")
        _table(rows, out)
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
    progress.done(f"{total} step(s) recorded")
    errors = list(engine.tick_errors)
    for failure in errors:
        err.write(f"gridflow tick: case {failure.case_id!r}: {failure.error}\n")
    return EXIT_PROBLEMS if any(not f.marked_overdue for f in errors) else EXIT_OK


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
    engine = Engine(entry_points=not args.no_plugins)
    status = EXIT_OK
    for name in args.files:
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


def _load_spec_arg(value: str, args: argparse.Namespace) -> WorkflowSpec:
    path = Path(value)
    if path.suffix.lower() in (".json", ".yaml", ".yml") or path.is_file():
        if not path.is_file():
            raise UsageError(f"no such file: {value}")
        try:
            return WorkflowSpec.load(path)
        except SpecError as exc:
            raise UsageError(f"{value} is not a valid workflow spec: {exc} (run `gridflow "
                             f"validate {value}` for the locations)", EXIT_PROBLEMS) from None
    name, _, version = value.partition("@")
    engine = Engine(entry_points=not args.no_plugins)
    try:
        return engine.workflow(name, int(version) if version else None)
    except ValueError:
        raise UsageError(f"not a version number in {value!r}; write NAME or NAME@VERSION") \
            from None


def cmd_diagram(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from gridflow.interop.diagram import render

    spec = _load_spec_arg(args.workflow, args)
    text = render(spec, args.format, args.lang)
    if args.output:
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write {args.output}: {exc}") from None
        err.write(f"gridflow diagram: wrote {args.output}\n")
    else:
        out.write(text)
    return EXIT_OK


# -- the parser --------------------------------------------------------------------------


def _tz_arg(value: str) -> tzinfo:
    return _tz(value)


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
        epilog="Run `gridflow COMMAND --help` for a command's options. Exit codes: 0 ok, "
               "1 problems found, 2 bad usage.")
    parser.add_argument("--version", action="version", version=f"gridflow {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    lang = argparse.ArgumentParser(add_help=False)
    lang.add_argument("--lang", choices=("en", "zh"), default="en",
                      help="language of labels and headings (default: en)")
    tz = argparse.ArgumentParser(add_help=False)
    tz.add_argument("--tz", type=_tz_arg, default=CST, metavar="ZONE",
                    help="time zone for times shown and dates given: UTC, +08:00, "
                         "Asia/Shanghai... (default: +08:00, China Standard Time)")
    db = argparse.ArgumentParser(add_help=False)
    db.add_argument("--db", default=os.environ.get(DB_ENV), metavar="URL",
                    help=f"database: a SQLite file path or a SQLAlchemy URL such as "
                         f"postgresql+psycopg://user@host/db (default: ${DB_ENV})")
    plugins = argparse.ArgumentParser(add_help=False)
    plugins.add_argument("--no-plugins", action="store_true",
                         help="do not load installed plugins (the 'gridflow' entry points)")
    quiet = argparse.ArgumentParser(add_help=False)
    quiet.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")

    p = sub.add_parser(
        "demo", parents=[lang, tz, quiet],
        help="play the source's stories and print their timelines and figures",
        description="Plays the stories of the source article: the alley near Lane 324 "
                    "(grid case: four departments, the look-back), the hot-pot scald "
                    "(1+3+N mediation with its linked rectification case) and the second "
                    "victim. Prints each case's timeline and the supervision figures. "
                    f"Uses a fresh SQLite file ({DEMO_DB}, replaced on every run) unless "
                    "--db is given; without SQLAlchemy it runs in memory.")
    p.add_argument("--db", metavar="URL", default=None,
                   help="an empty database to play the stories on (SQLite path or URL)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "validate", help="check workflow spec files (YAML or JSON)",
        description="Checks each workflow spec file and prints every problem with its "
                    "location (file:line:column where it can be found). Loading a spec "
                    "never executes code from it (YAML is read with the safe loader). "
                    "Guards, effects and roles must be registered: by gridflow, or by an "
                    "installed plugin unless --no-plugins. Exit code 1 if any file has "
                    "problems.", parents=[plugins])
    p.add_argument("files", nargs="+", metavar="FILE", help="a .yaml, .yml or .json spec")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser(
        "diagram", parents=[lang, plugins],
        help="print a workflow's state diagram (Mermaid or Graphviz DOT)",
        description="Prints the state diagram of a registered workflow (NAME or "
                    "NAME@VERSION, e.g. grid_case, mediation) or of a spec file.")
    p.add_argument("workflow", metavar="WORKFLOW|FILE")
    p.add_argument("--format", choices=("mermaid", "dot"), default="mermaid",
                   help="mermaid (default) or dot")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    p.set_defaults(func=cmd_diagram)

    p = sub.add_parser(
        "history", parents=[db, lang, tz, plugins],
        help="print a case's timeline and verify its history",
        description="Prints a case's timeline (time, step, actor, state change, payload) "
                    "and verifies its stored history (hash chain and replay). Exit code 1 if "
                    "the case does not exist or its history fails verification.")
    p.add_argument("case_id", metavar="CASE_ID")
    p.add_argument("--json", action="store_true", help="print the case and events as JSON")
    p.set_defaults(func=cmd_history)

    p = sub.add_parser(
        "report", parents=[db, lang, tz, plugins, quiet],
        help="print the supervision figures",
        description="Prints the supervision figures for the cases opened between --since "
                    "and --until (dates are whole days in --tz, both included).")
    p.add_argument("--since", metavar="DATE", help="first day (2026-03-01) or a date-time")
    p.add_argument("--until", metavar="DATE", help="last day (2026-03-31) or a date-time")
    p.add_argument("--by", choices=("grid", "area", "category", "none"), default="none",
                   help="one column per grid, residents' area or category (default: none, "
                        "one column for everything)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser(
        "tick", parents=[db, lang, tz, plugins, quiet],
        help="run the timer once: act on every overdue case",
        description="Fires the breach trigger (on_breach) of every overdue case as actor "
                    "'system', or marks it overdue where its state has none; run it from "
                    "cron or a scheduler. Safe to run on several machines at once. Exit code "
                    "1 if a case could not be handled (it is retried on the next run).")
    p.add_argument("--now", metavar="DATETIME",
                   help="act as if it were this time (default: now)")
    p.add_argument("--batch", type=int, default=100, metavar="N",
                   help="cases claimed per round (default: 100)")
    p.add_argument("--calendar", choices=("days", "weekdays", "china"), default="days",
                   help="how the deadlines of states entered are counted: calendar days "
                        "(default), Monday-Friday, or mainland China's working days "
                        "(needs gridflow[china])")
    p.add_argument("--dry-run", action="store_true",
                   help="list the overdue cases, change nothing")
    p.set_defaults(func=cmd_tick)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``gridflow`` command with ``argv`` (default ``sys.argv[1:]``); return
    the exit status.

    Example:
        >>> main(["--version"])
        gridflow ...
        0
    """
    out, err = sys.stdout, sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error argparse printed
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if not getattr(args, "command", None):
        parser.print_help(err)
        return EXIT_USAGE
    try:
        status: int = args.func(args, out, err)
    except UsageError as exc:
        err.write(f"gridflow {args.command}: error: {exc}\n")
        return exc.code
    except CaseNotFound as exc:
        err.write(f"gridflow {args.command}: error: {exc}\n")
        return EXIT_PROBLEMS
    except GridflowError as exc:
        err.write(f"gridflow {args.command}: error: {exc}\n")
        return EXIT_PROBLEMS
    except KeyboardInterrupt:
        err.write("gridflow: interrupted\n")
        return 130
    except BrokenPipeError:
        # The reader went away (`gridflow ... | head`): not an error of ours.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    return status

