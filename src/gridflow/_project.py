"""The project file: a team's settings for the ``gridflow`` command.

``gridflow.toml`` in the current directory, or else the ``[tool.gridflow]``
table of ``pyproject.toml`` there, may name:

========== ============================================================ ==================
key        meaning                                                      example
========== ============================================================ ==================
database   the database: a SQLAlchemy URL, or a SQLite file path        ``"cases.db"``
           (relative to the file)
specs      workflow spec files (YAML/JSON), relative to the file;       ``["workflows/*.yaml"]``
           glob patterns allowed
plugins    plugins to register: ``MODULE`` or ``MODULE:ATTRIBUTE``,     ``["team_rules"]``
           importable, or in the file's directory
lang       ``en`` or ``zh``                                             ``"zh"``
calendar   how deadlines are counted: ``days``, ``weekdays``, ``china`` ``"china"``
tz         the time zone times are shown in                             ``"Asia/Shanghai"``
========== ============================================================ ==================

This module only reads and checks the file (standard library `tomllib`);
`gridflow._session` merges it with the command line.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> root = Path(tempfile.mkdtemp())
    >>> _ = (root / "gridflow.toml").write_text('database = "cases.db"\\nlang = "zh"\\n')
    >>> project = find(root)
    >>> project.lang, project.database == f"{root.resolve() / 'cases.db'}"
    ('zh', True)
"""

from __future__ import annotations

import glob
import tomllib
from pathlib import Path
from typing import Any

import attrs

from gridflow._errors import GridflowError

__all__ = ["CALENDARS", "KEYS", "LANGS", "PROJECT_FILE", "Project", "ProjectError", "find",
           "read"]

#: The project file's own name; ``pyproject.toml``'s ``[tool.gridflow]`` is the other place.
PROJECT_FILE = "gridflow.toml"
#: Every key a project file may have.
KEYS = ("database", "specs", "plugins", "lang", "calendar", "tz")
LANGS = ("en", "zh")
CALENDARS = ("days", "weekdays", "china")


class ProjectError(GridflowError):
    """A project file that cannot be used: the message names the file and the key.

    Example:
        >>> print(ProjectError(Path("gridflow.toml"), "unknown key 'x'"))
        gridflow.toml: unknown key 'x'
    """

    def __init__(self, path: Path, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


@attrs.frozen
class Project:
    """The settings a project file gives (``path`` ``None``: there is no project file).

    Paths are resolved against the file's directory: ``database`` (when it is
    a file path, not a URL) and each of ``specs``.

    Example:
        >>> Project().specs, Project().root == Path.cwd()
        ((), True)
    """

    path: Path | None = None
    database: str | None = None
    specs: tuple[Path, ...] = ()
    plugins: tuple[str, ...] = ()
    lang: str | None = None
    calendar: str | None = None
    tz: str | None = None

    @property
    def root(self) -> Path:
        """The directory relative paths are read from (the current one without a file)."""
        return self.path.parent if self.path is not None else Path.cwd()


def find(directory: Path | None = None) -> Project:
    """The project of ``directory`` (default: the current one): its
    ``gridflow.toml``, else ``[tool.gridflow]`` of its ``pyproject.toml``, else
    an empty `Project`.

    Example:
        >>> import tempfile
        >>> find(Path(tempfile.mkdtemp())).path is None
        True
    """
    root = (directory or Path.cwd()).resolve()
    own = root / PROJECT_FILE
    if own.is_file():
        return read(own)
    pyproject = root / "pyproject.toml"
    if pyproject.is_file():
        return read(pyproject, table="tool.gridflow")
    return Project()


def _load(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ProjectError(path, f"not valid TOML: {exc}") from None
    except OSError as exc:
        raise ProjectError(path, f"cannot be read: {exc.strerror or exc}") from None


def read(path: Path, *, table: str | None = None) -> Project:
    """Read the project file ``path`` (its ``table``, a dotted name, if given:
    ``"tool.gridflow"`` for ``pyproject.toml``; a file without that table is no
    project file). Raises `ProjectError` for anything it cannot use.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "gridflow.toml"
        >>> _ = path.write_text('calendar = "lunar"\\n')
        >>> read(path)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        gridflow._project.ProjectError: ...gridflow.toml: 'calendar' must be one of: days, ...
    """
    path = path.resolve()
    data: Any = _load(path)
    where = PROJECT_FILE if table is None else f"[{table}]"
    for part in (table.split(".") if table else ()):
        data = data.get(part) if isinstance(data, dict) else None
        if data is None:
            return Project()
    if not isinstance(data, dict):
        raise ProjectError(path, f"{where} must be a table of settings")
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise ProjectError(path, f"unknown key {unknown[0]!r} in {where}; the keys are: "
                                 f"{', '.join(KEYS)}")
    root = path.parent

    def text(key: str, choices: tuple[str, ...] = ()) -> str | None:
        value = data.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise ProjectError(path, f"{key!r} must be a non-empty string, got {value!r}")
        if choices and value not in choices:
            raise ProjectError(path, f"{key!r} must be one of: {', '.join(choices)}; "
                                     f"got {value!r}")
        return value

    def strings(key: str) -> list[str]:
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            example = '"workflows/*.yaml"' if key == "specs" else '"team_rules"'
            raise ProjectError(path, f"{key!r} must be a list of strings, e.g. "
                                     f"{key} = [{example}]")
        return value

    database = text("database")
    if database is not None and "://" not in database:
        database = str((root / Path(database).expanduser()).resolve())
    specs: list[Path] = []
    for pattern in strings("specs"):
        full = root / Path(pattern).expanduser()
        found = sorted(glob.glob(str(full), recursive=True)) if glob.has_magic(pattern) \
            else ([str(full)] if full.is_file() else [])
        if not found:
            raise ProjectError(path, f"'specs': no spec file matches {pattern!r} (relative to "
                                     f"{root})")
        for name in found:
            spec = Path(name).resolve()
            if spec not in specs:
                specs.append(spec)
    return Project(path, database, tuple(specs), tuple(strings("plugins")),
                   text("lang", LANGS), text("calendar", CALENDARS), text("tz"))
