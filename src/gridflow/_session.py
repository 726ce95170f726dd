"""What every ``gridflow`` command starts from: the settings (command line, then
the environment, then the project file, then the defaults), and the store and
engine they describe, with the team's plugins and specs registered.

`open_session` is the one helper a command calls; a new command gets
``--spec``, ``--plugin`` and the project file by calling it too.

Precedence, for each setting: an option on the command line, then (for the
database) the ``GRIDFLOW_DB`` environment variable, then the project file
(`gridflow._project`), then the default. ``--spec`` and ``--plugin`` add to
the project file's lists (the file's first); ``--no-project`` leaves the file
out; ``--no-plugins`` leaves out installed plugins (entry points), not the
ones named.

Example:
    >>> import argparse
    >>> s = open_session(argparse.Namespace(no_project=True))
    >>> s.settings.lang, s.store is None, "grid_case" in [w.name for w in s.engine.workflows]
    ('en', True, True)
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any

import attrs

from gridflow._errors import (
    CalendarError,
    GridflowError,
    PluginError,
    SpecError,
    StoreError,
    UnknownWorkflow,
)
from gridflow._project import Project, ProjectError, find
from gridflow.calendar import Calendar, CalendarDays
from gridflow.clock import Clock
from gridflow.engine import Engine
from gridflow.spec import WorkflowSpec
from gridflow.store import Store

__all__ = ["DB_ENV", "EXIT_PROBLEMS", "EXIT_USAGE", "SHANGHAI", "Session", "Settings",
           "UsageError", "load_plugin", "load_spec", "open_session", "open_store", "parse_tz",
           "settings"]

#: The command ran and found problems (invalid spec, unknown case, failed check).
EXIT_PROBLEMS = 1
#: The command could not run as asked (arguments, missing file / database / extra).
EXIT_USAGE = 2
#: Environment variable holding the default database.
DB_ENV = "GRIDFLOW_DB"


def _shanghai() -> tzinfo:
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo("Asia/Shanghai")
    except Exception:  # no time zone database on this machine: the same offset, fixed
        return timezone(timedelta(hours=8), "CST")


#: Times are shown in Shanghai time (China Standard Time) unless told otherwise.
SHANGHAI = _shanghai()


class UsageError(GridflowError):
    """The command cannot run as asked; ``code`` is the exit status (2 by default).

    Example:
        >>> UsageError("no database given").code
        2
    """

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


def parse_tz(value: str) -> tzinfo:
    """``UTC``, an offset (``+08:00``, ``-05:30``) or an IANA name (``Asia/Shanghai``);
    raises `ValueError` naming the forms.

    Example:
        >>> parse_tz("+08:00"), parse_tz("UTC")
        (datetime.timezone(datetime.timedelta(seconds=28800)), datetime.timezone.utc)
    """
    text = value.strip()
    if text.upper() in ("UTC", "Z"):
        return UTC
    match = re.fullmatch(r"([+-])(\d{1,2}):?(\d{2})?", text)
    if match:
        sign = -1 if match[1] == "-" else 1
        offset = timedelta(hours=int(match[2]), minutes=int(match[3] or 0))
        if offset < timedelta(hours=24):
            return timezone(sign * offset)
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo(text)
    except Exception:  # not a name, a malformed one, or no time zone database
        raise ValueError(f"unknown time zone {value!r}; use UTC, an offset like +08:00, or a "
                         "name like Asia/Shanghai") from None


@attrs.frozen
class Settings:
    """What a command runs with, every source merged (see the module's precedence).

    Example:
        >>> settings(argparse.Namespace(no_project=True, lang="zh")).lang
        'zh'
    """

    project: Project
    database: str | None
    #: Spec files to register, the project's first.
    specs: tuple[Path, ...]
    #: Plugins to register: (``MODULE`` or ``MODULE:ATTRIBUTE``, directory to import from).
    plugins: tuple[tuple[str, Path], ...]
    lang: str
    tz: tzinfo
    calendar: str
    entry_points: bool


def settings(args: argparse.Namespace, *, project: bool = True) -> Settings:
    """Merge the command line (``args``), ``GRIDFLOW_DB`` and the project file
    (unless ``project=False`` or ``--no-project``). Options a command does not
    have count as not given.

    Example:
        >>> s = settings(argparse.Namespace(no_project=True, spec=["a.yaml"], db="x.db"))
        >>> s.specs, s.database.endswith("x.db"), s.calendar
        ((PosixPath('a.yaml'),), True, 'days')
    """
    def given(name: str) -> Any:
        return getattr(args, name, None)

    proj = find() if project and not given("no_project") else Project()
    database = given("db") or os.environ.get(DB_ENV) or proj.database
    tz = given("tz")
    if tz is None and proj.tz is not None:
        try:
            tz = parse_tz(proj.tz)
        except ValueError as exc:
            raise UsageError(str(ProjectError(proj.path or Path(), f"'tz': {exc}"))) from None
    here = Path.cwd()
    return Settings(
        project=proj,
        database=database,
        specs=(*proj.specs, *(Path(p) for p in given("spec") or ())),
        plugins=(*((p, proj.root) for p in proj.plugins),
                 *((p, here) for p in given("plugin") or ())),
        lang=given("lang") or proj.lang or "en",
        tz=tz or SHANGHAI,
        calendar=given("calendar") or proj.calendar or "days",
        entry_points=not given("no_plugins"),
    )


# -- the pieces -------------------------------------------------------------------------


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


def open_store(value: str | None, *, create: bool) -> Store:
    """The store at ``value`` (a SQLAlchemy URL or a SQLite file path); with
    ``create`` its schema is created (or upgraded), else a SQLite file must exist.

    A wrong URL, a missing file or a missing driver is a `UsageError`; a
    database that exists but cannot be used raises its `StoreError` later, on
    first use.

    Example:
        >>> open_store(None, create=False)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        gridflow._session.UsageError: no database given: pass --db URL ...
    """
    if not value:
        raise UsageError(f"no database given: pass --db URL (e.g. --db cases.db or "
                         f"--db postgresql+psycopg://user@host/db), set {DB_ENV}, or name "
                         "it in gridflow.toml (database = \"cases.db\")")
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
    except StoreError as exc:  # not a URL, or not a database SQLStore supports
        raise UsageError(f"{exc} (check --db)") from None
    except ValueError as exc:  # SQLAlchemy's URL parser, on a malformed host or port
        raise UsageError(f"not a database URL: {value!r} ({exc}); use e.g. --db cases.db or "
                         "--db postgresql+psycopg://user@host/dbname") from None
    if create:
        store.create_schema()
    return store


def load_spec(path: Path) -> WorkflowSpec:
    """The spec in ``path``, or a `UsageError` saying what is wrong (exit 2 for a
    missing file or PyYAML, 1 for a spec with problems).

    Example:
        >>> load_spec(Path("nowhere.yaml"))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        gridflow._session.UsageError: no such file: nowhere.yaml...
    """
    if not path.is_file():
        raise UsageError(f"no such file: {path} (a workflow spec given with --spec or in "
                         "gridflow.toml)")
    try:
        return WorkflowSpec.load(path)
    except SpecError as exc:
        if any("PyYAML is not installed" in p.what for p in exc.problems):
            raise UsageError(f"{path}: reading YAML needs PyYAML: pip install "
                             "'gridflow[yaml]'") from None
        raise UsageError(f"{path} is not a valid workflow spec: {_summary(exc)} (run "
                         f"`gridflow validate {path}` for every problem and its location)",
                         EXIT_PROBLEMS) from None


#: What to do about a workflow the command does not know.
REGISTER_HINT = ("pass its spec with --spec FILE (or list it under specs in gridflow.toml), "
                 "or install the plugin that provides it")


def spec_arg(value: str, session: Session) -> WorkflowSpec:
    """A command's workflow argument: a spec file, or ``NAME`` / ``NAME@VERSION`` of a
    workflow registered on the session's engine (``diagram``, ``diff``).

    Example:
        >>> s = open_session(argparse.Namespace(no_project=True, no_plugins=True))
        >>> spec_arg("grid_case@1", s).version
        1
    """
    path = Path(value)
    if path.suffix.lower() in (".json", ".yaml", ".yml") or path.is_file():
        return load_spec(path)
    name, _, version = value.partition("@")
    try:
        number = int(version) if version else None
    except ValueError:
        raise UsageError(f"not a version number in {value!r}; write NAME, NAME@VERSION or a "
                         "spec file") from None
    try:
        return session.engine.workflow(name, number)
    except UnknownWorkflow as exc:
        raise UsageError(f"{exc}; {REGISTER_HINT}", EXIT_PROBLEMS) from None


def _summary(exc: SpecError) -> str:
    """A spec's problems in one line: how many, and the first."""
    first = str(exc.problems[0]) if exc.problems else str(exc)
    if len(first) > 200:
        first = first[:197] + "..."
    more = f"{len(exc.problems)} problems, the first: " if len(exc.problems) > 1 else ""
    return more + first


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


@contextmanager
def _importable_from(directory: Path) -> Iterator[None]:
    # A team's plugin module usually sits next to its specs, not in site-packages:
    # import it from there, as `python -m` would from the current directory.
    entry = str(directory)
    sys.path.insert(0, entry)
    importlib.invalidate_caches()
    try:
        yield
    finally:
        with suppress(ValueError):
            sys.path.remove(entry)


def load_plugin(ref: str, directory: Path) -> object:
    """The plugin ``ref`` names: a module (``team_rules``), or an attribute of one
    (``team_rules:Plugin``; a class is instantiated without arguments), imported
    from the installed packages or ``directory``. `UsageError` if it cannot be.

    Example:
        >>> load_plugin("gridflow.workflows.extension", Path.cwd()).__name__
        'gridflow.workflows.extension'
        >>> load_plugin("x:", Path.cwd())  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        gridflow._session.UsageError: plugin 'x:': write MODULE or MODULE:ATTRIBUTE ...
    """
    module_name, sep, attr = ref.partition(":")
    if not _NAME.fullmatch(module_name) or (sep and not _NAME.fullmatch(attr)):
        raise UsageError(f"plugin {ref!r}: write MODULE or MODULE:ATTRIBUTE (e.g. team_rules "
                         "or team_rules:Plugin)")
    with _importable_from(directory):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and module_name.startswith(exc.name):
                raise UsageError(f"cannot import plugin {ref!r}: no module named {exc.name!r} "
                                 f"among the installed packages or in {directory}") from None
            raise UsageError(f"plugin {ref!r} failed to import: {type(exc).__name__}: "
                             f"{exc}") from None
        except Exception as exc:
            raise UsageError(f"plugin {ref!r} failed to import: {type(exc).__name__}: "
                             f"{exc}") from None
    found: object = module
    for part in attr.split(".") if attr else ():
        try:
            found = getattr(found, part)
        except AttributeError:
            raise UsageError(f"plugin {ref!r}: {module_name!r} has no attribute "
                             f"{part!r}") from None
    if inspect.isclass(found):
        try:
            found = found()
        except Exception as exc:
            raise UsageError(f"plugin {ref!r}: the class cannot be instantiated without "
                             f"arguments: {type(exc).__name__}: {exc}") from None
    return found


def _calendar(name: str) -> Calendar:
    if name == "days":
        return CalendarDays()
    from gridflow.calendar import WorkingDays

    if name == "weekdays":
        return WorkingDays()
    try:
        return WorkingDays.china()
    except CalendarError as exc:
        raise UsageError(f"--calendar china: {exc}") from None


# -- the session --------------------------------------------------------------------------


@attrs.define
class Session:
    """A command's engine, its store (``None`` when the command needs no database)
    and the settings they were built from.

    Example:
        >>> s = open_session(argparse.Namespace(no_project=True))
        >>> s.engine.workflow("grid_case").initial
        'reported'
    """

    settings: Settings
    engine: Engine
    store: Store | None
    #: The specs of ``settings.specs``, registered on ``engine``.
    specs: list[WorkflowSpec]


def _env_keyring() -> Any:
    """The master key from ``GRIDFLOW_MASTER_KEY`` (hex or base64) or the file named by
    ``GRIDFLOW_MASTER_KEY_FILE``; ``None`` when neither is set."""
    import os

    from gridflow._errors import KeyringError
    from gridflow.personal.keyring import Keyring

    try:
        if os.environ.get("GRIDFLOW_MASTER_KEY"):
            return Keyring.from_env("GRIDFLOW_MASTER_KEY")
        if os.environ.get("GRIDFLOW_MASTER_KEY_FILE"):
            return Keyring.from_file(os.environ["GRIDFLOW_MASTER_KEY_FILE"])
    except KeyringError as exc:
        raise UsageError(str(exc)) from None
    return None


def open_session(args: argparse.Namespace, *, database: bool = False, create: bool = False,
                 store: Store | None = None, clock: Clock | None = None,
                 project: bool = True, register_specs: bool = True,
                 entry_points: bool | None = None,
                 keyring: Any = None) -> Session:
    """Build the engine a command runs on, from ``args`` and the project file.

    With ``database``, the store is opened (``create``: and its schema created);
    a ``store`` given is used as it is; with neither, the engine runs on a
    `MemoryStore`. ``entry_points`` overrides ``--no-plugins``; ``project=False``
    reads no project file. Plugins are imported and
    registered (`Engine.register`, so a misspelled hook is refused), then the
    specs are loaded and registered (unless ``register_specs=False``: a command
    that checks spec files itself). Every problem is a `UsageError` carrying
    the exit status.

    Example:
        >>> s = open_session(argparse.Namespace(no_project=True, no_plugins=True))
        >>> s.settings.entry_points
        False
    """
    try:
        conf = settings(args, project=project)
    except ProjectError as exc:
        raise UsageError(str(exc)) from None
    plugins = [(ref, load_plugin(ref, where)) for ref, where in conf.plugins]
    specs = [load_spec(path) for path in conf.specs] if register_specs else []
    calendar = _calendar(conf.calendar)
    if store is None and database:
        store = open_store(conf.database, create=create)
    if entry_points is None:
        entry_points = conf.entry_points
    try:
        engine = Engine(store, clock=clock, calendar=calendar, entry_points=entry_points,
                        keyring=keyring if keyring is not None else _env_keyring())
    except PluginError as exc:
        raise UsageError(f"an installed plugin cannot be used: {exc} (--no-plugins leaves "
                         "installed plugins out)") from None
    for ref, plugin in plugins:
        if engine.plugins.is_registered(plugin):
            continue  # installed too, and loaded as an entry point already
        try:
            engine.register(plugin, name=ref)
        except PluginError as exc:
            raise UsageError(str(exc)) from None
        except SpecError as exc:
            raise UsageError(f"plugin {ref!r}: its workflow {exc.spec_name!r} is not valid: "
                             f"{_summary(exc)}") from None
    for path, spec in zip(conf.specs if register_specs else (), specs, strict=True):
        try:
            engine.register_workflow(spec)
        except SpecError as exc:
            raise UsageError(f"{path} cannot be registered: {_summary(exc)} (run `gridflow "
                             f"validate {path}` for every problem and its location)",
                             EXIT_PROBLEMS) from None
    return Session(conf, engine, store, specs)
