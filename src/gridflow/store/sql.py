"""`SQLStore`: durable storage on SQLAlchemy 2 Core, for SQLite and PostgreSQL.

One implementation serves both databases. SQLite (a file) is the embedded
default: WAL mode, a busy timeout, foreign keys on, ``synchronous=FULL``
(nothing committed is lost, even on a power cut; ``NORMAL`` is an explicit
opt-in). PostgreSQL (psycopg 3) is for many workers on many machines: JSONB
columns, ``FOR UPDATE SKIP LOCKED`` for the timer's claims.

Every step is one transaction: the event is inserted and the case row is
written *where its version is the expected one*; zero rows means another
writer got there first (`ConcurrencyError`). Every database failure is raised
as `StoreError` with the driver's exception chained as ``__cause__``.

Needs the ``gridflow[sql]`` extra (SQLAlchemy); PostgreSQL also needs
``gridflow[postgres]`` (psycopg 3).
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple, cast

try:
    import sqlalchemy as sa
    from sqlalchemy import exc as sa_exc
    from sqlalchemy.dialects.postgresql import JSONB
    from sqlalchemy.engine import Connection, Dialect, Engine
except ImportError as _missing:  # pragma: no cover - exercised in a test with sqlalchemy hidden
    raise ImportError(
        "gridflow.SQLStore needs SQLAlchemy 2, which is not installed: "
        "pip install 'gridflow[sql]' (for PostgreSQL: pip install 'gridflow[postgres]')"
    ) from _missing

from gridflow import _facts
from gridflow import model as _model
from gridflow._errors import (
    ConcurrencyError,
    GridflowError,
    InvalidArgument,
    SchemaVersionError,
    StoreError,
)
from gridflow.model import Actor, Case, Changes, Event
from gridflow.store import (
    Page,
    Store,
    Write,
    _log,
    check_claim,
    check_count_columns,
    check_query,
    check_retired,
    cursor,
    parse_cursor,
)

__all__ = ["SCHEMA_VERSION", "SQLStore", "Tables", "UTCDateTime"]

#: A query's ``limit + 1`` (one row more says there is a next page) stays a 64-bit int.
_MAX_ROWS = 2**63 - 2

#: The schema version this gridflow writes and reads (stored in ``gridflow_meta``).
SCHEMA_VERSION = 5

_SYNCHRONOUS = ("FULL", "NORMAL", "EXTRA")
_ZERO = timedelta(0)


# -- column types -------------------------------------------------------------------


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every database.

    PostgreSQL stores ``timestamptz``. SQLite has no datetime type: the value
    is stored as UTC text (``YYYY-MM-DD HH:MM:SS.ffffff``, fixed width, so text
    order is time order) and read back as an aware UTC datetime.

    Example:
        >>> import sqlalchemy as sa
        >>> from datetime import datetime, timedelta, timezone
        >>> t = sa.Table("t", sa.MetaData(), sa.Column("at", UTCDateTime()))
        >>> engine = sa.create_engine("sqlite://")
        >>> t.create(engine)
        >>> shanghai = timezone(timedelta(hours=8))
        >>> with engine.begin() as conn:
        ...     _ = conn.execute(t.insert(), {"at": datetime(2026, 10, 1, 9, tzinfo=shanghai)})
        ...     conn.execute(sa.select(t.c.at)).scalar()
        datetime.datetime(2026, 10, 1, 1, 0, tzinfo=datetime.timezone.utc)
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()} cannot be stored; "
                             "gridflow stores aware UTC datetimes (use datetime.UTC)")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# Ids sort the same way as Python strings (code point order) on both databases:
# SQLite compares text bytewise; PostgreSQL is told to with the "C" collation.
_ID = sa.String().with_variant(sa.String(collation="C"), "postgresql")
_JSON = sa.JSON().with_variant(JSONB(), "postgresql")


class Tables(NamedTuple):
    """The three tables of a `SQLStore`, for SQL of your own.

    Example:
        >>> import os, tempfile, gridflow
        >>> store = gridflow.SQLStore("sqlite:///" + os.path.join(tempfile.mkdtemp(), "x.db"))
        >>> [t.name for t in store.tables]
        ['gridflow_cases', 'gridflow_events', 'gridflow_meta']
    """

    cases: sa.Table
    events: sa.Table
    meta: sa.Table


def _tables(metadata: sa.MetaData, partitioned: bool = False
            ) -> tuple[sa.Table, sa.Table, sa.Table]:
    cases = sa.Table(
        "gridflow_cases", metadata,
        sa.Column("id", _ID, primary_key=True),
        sa.Column("workflow", sa.String(), nullable=False),
        sa.Column("workflow_version", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("data", _JSON, nullable=False),
        sa.Column("grid", sa.String(), nullable=True),
        sa.Column("opened_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("deadline_at", UTCDateTime(), nullable=True),
        sa.Column("links", _JSON, nullable=False),
        sa.Column("head", sa.String(64), nullable=False),
        # The timer's lease: claim_due hands the case out again only after this.
        sa.Column("claimed_until", UTCDateTime(), nullable=True),
        # Schema 5: facts folded from the events for the figures (`gridflow._facts`).
        *_fact_columns(),
        # Schema 5: the district of the grid the case opened in (`_facts.district_of`),
        # never changed: the key a sharded store distributes by (docs/storage.md).
        sa.Column("district", sa.String(), nullable=False, server_default=""),
        sa.CheckConstraint("version >= 1", name="ck_gridflow_cases_version"),
        # Every query orders by (opened_at, id): each filter's index ends with both,
        # so a page is an index range scan, not a sort of every match.
        sa.Index("ix_gridflow_cases_workflow_state", "workflow", "state", "opened_at", "id"),
        sa.Index("ix_gridflow_cases_state", "state", "opened_at", "id"),
        sa.Index("ix_gridflow_cases_grid", "grid", "opened_at", "id"),
        sa.Index("ix_gridflow_cases_opened", "opened_at", "id"),
        sa.Index("ix_gridflow_cases_deadline", "deadline_at", "id"),
    )
    events = sa.Table(
        "gridflow_events", metadata,
        sa.Column("case_id", _ID, sa.ForeignKey(cases.c.id, name="fk_gridflow_events_case"),
                  nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("trigger", sa.String(), nullable=False),
        sa.Column("source", sa.String(), nullable=True),
        sa.Column("dest", sa.String(), nullable=True),
        sa.Column("actor_id", sa.String(), nullable=False),
        sa.Column("actor", _JSON, nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("payload", _JSON, nullable=False),
        sa.Column("idempotency_key", sa.String(), nullable=True),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        # What the step changed in the case row (hashed); NULL only for events
        # written by gridflow 0.1 (schema 1).
        sa.Column("changes", _JSON, nullable=True),
        # Per-field checksums (Event.field_digests), so verify can name the field
        # of an edited event. Diagnostics only: not hashed, proves nothing.
        sa.Column("digests", sa.String(), nullable=True),
        *(_event_keys(partitioned)),
        sa.CheckConstraint("seq >= 1", name="ck_gridflow_events_seq"),
        sa.Index("ix_gridflow_events_at", "at"),
        **_partition_by(partitioned),
    )
    # The Merkle log (schema 4): the event's leaf index, NULL until a checkpoint.
    events.append_column(_log.leaf_column())
    _log.unlogged_index(events)
    # Schema 5: the length of the stay in a state this event ended, in microseconds
    # (NULL: it ended none), as `gridflow._facts.derive` computes it.
    events.append_column(sa.Column("stay_us", sa.BigInteger(), nullable=True))
    # Schema 5: its case's district (co-located with the case when sharded).
    events.append_column(sa.Column("district", sa.String(), nullable=False, server_default=""))
    meta = sa.Table(
        "gridflow_meta", metadata,
        sa.Column("key", sa.String(), primary_key=True),
        sa.Column("value", sa.String(), nullable=False),
    )
    return cases, events, meta


def _fact_columns() -> list[sa.Column[Any]]:
    return [sa.Column(name, sa.BigInteger(), nullable=True) for name in _facts.NAMES]


def _fact_updates(cases: sa.Table) -> dict[str, Any]:
    """The SET clause of one step of the facts' fold (`gridflow._facts.FACTS`): each
    column combined with the event's value, bound as ``p_<column>``."""
    out: dict[str, Any] = {}
    c = cases.c
    for name, op, _ in _facts.FACTS:
        col = c[name]
        new = sa.cast(sa.bindparam(f"p_{name}"), sa.BigInteger)
        if op == "sum":
            out[name] = col + new
        elif op == "first":
            out[name] = sa.func.coalesce(col, new)
        elif op == "last":
            out[name] = sa.func.coalesce(new, col)
        else:
            better = new < col if op == "min" else new > col
            out[name] = sa.case((sa.or_(col.is_(None), better), sa.func.coalesce(new, col)),
                                else_=col)
    entered = sa.cast(sa.bindparam("p_f_entered_us"), sa.BigInteger)
    # The old value of f_entered_us (SET reads the row as it was): the stay this event ends.
    out[_facts.STAY] = entered - c.f_entered_us
    at = sa.cast(sa.bindparam("p_f_at_min"), sa.BigInteger)  # the event's time
    # (Literal SQL: the hot path's statements are compiled once, without bound constants.)
    out[_facts.BACK] = c[_facts.BACK] + sa.case((at < c.f_at_max, sa.literal_column("1")),
                                                else_=sa.literal_column("0"))
    return out


_FACT_PARAMS = tuple(f"p_{name}" for name, _, _ in _facts.FACTS)


def _fact_inserts() -> dict[str, Any]:
    """The facts of a case row at its opening event (the fold of one event)."""
    out: dict[str, Any] = {name: sa.cast(sa.bindparam(f"p_{name}"), sa.BigInteger)
                           for name, _, _ in _facts.FACTS}
    out[_facts.STAY] = sa.null()
    out[_facts.BACK] = sa.literal_column("0")
    out["district"] = sa.bindparam("p_district", type_=sa.String())
    return out


def _stay_of(cases: sa.Table, events: sa.Table, column: str = _facts.STAY) -> Any:
    """An event's stay_us (or district): the case row's, which its write has just set."""
    return (sa.select(cases.c[column])
            .where(cases.c.id == sa.bindparam("stay_case", type_=events.c.case_id.type))
            .scalar_subquery())


def _event_keys(partitioned: bool) -> list[Any]:
    if not partitioned:
        return [
            # The primary key is the unique (case_id, seq): two writers can never
            # both store seq n of one case.
            sa.PrimaryKeyConstraint("case_id", "seq", name="pk_gridflow_events"),
            sa.UniqueConstraint("idempotency_key", name="uq_gridflow_events_idempotency_key"),
        ]
    # Range-partitioned by month (PostgreSQL): a key must hold the partition
    # column, so the primary key is (case_id, seq, at) and the keys' uniqueness
    # is kept by gridflow_event_keys (`_event_keys_table`). seq n of a case is
    # still stored once: the step's compare-and-set on the case row admits one.
    return [sa.PrimaryKeyConstraint("case_id", "seq", "at", name="pk_gridflow_events"),
            sa.Index("ix_gridflow_events_idempotency_key", "idempotency_key")]


def _partition_by(partitioned: bool) -> dict[str, Any]:
    return {"postgresql_partition_by": "RANGE (at)"} if partitioned else {}


def _event_keys_table(metadata: sa.MetaData) -> sa.Table:
    """The idempotency keys of a partitioned events table, unique across partitions."""
    return sa.Table(
        "gridflow_event_keys", metadata,
        sa.Column("idempotency_key", sa.String(), primary_key=True),
        sa.Column("case_id", _ID, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
    )


#: ``partition=`` values and the `gridflow_meta` record of each.
_PARTITIONS = ("month",)


# -- JSON ----------------------------------------------------------------------------

_json_dumps = json.JSONEncoder(ensure_ascii=False, allow_nan=False,
                               separators=(",", ":")).encode

#: ``text.encode().translate(_DIGITS)`` makes every digit a 0 and blanks the rest, so a run of
#: nineteen digits (`_LONG_RUN`) is found by ``in``: the number orjson may not read back
#: as `json` does (it reads an integer past 64 bits as a float). The domain keeps every
#: stored integer within 64 bits (`gridflow.values.MAX_INT`); text with such a run (a
#: 19-digit integer, or merely a long digit string) is read by `json` all the same. (A
#: regular expression finding the run costs more than the whole read.)
_DIGITS = bytes(0x30 if 0x30 <= c <= 0x39 else 0x20 for c in range(256))
_LONG_RUN = b"0" * 19


def _plain_dumps(value: Any) -> str:
    """The compact JSON text the stores write (``json``, UTF-8 kept, no NaN), written
    by orjson where it writes the very same text (`gridflow.model._orjson_exact`: no
    float, no subclass, integers within 64 bits): ten times faster on a case's data,
    and a step's personal data doubles its size (each reference holds two hex ids).

    Example:
        >>> _plain_dumps({"名": "王", "n": [1, True, None]})
        '{"名":"王","n":[1,true,null]}'
    """
    cls = value.__class__
    if cls is dict or cls is list:
        orjson = _model._orjson
        if orjson is _model._ORJSON_NOT_LOADED:
            orjson = _model._load_orjson()
        if orjson is not None and _model._orjson_exact(value, 0):
            try:
                return str(orjson.dumps(value), "utf-8")
            except TypeError:  # a lone surrogate (not UTF-8): json writes it as it is
                pass
    return _json_dumps(value)


def _sqlite_dumps(value: Any) -> str:
    return _plain_dumps(value)


def _float_trouble(value: Any) -> bool:
    """True if ``value`` holds a float that JSONB would not give back as written."""
    if isinstance(value, float):
        if value == 0.0 and math.copysign(1.0, value) < 0:
            raise ValueError("-0.0 cannot be stored in PostgreSQL JSONB (numeric has no "
                             "negative zero) and the event hash would no longer verify; "
                             "store 0.0 instead")
        return math.isfinite(value) and abs(value) >= 1e16
    if isinstance(value, dict):
        return any(_float_trouble(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_float_trouble(v) for v in value)
    return False


def _jsonb_encode(value: Any) -> str:
    if isinstance(value, float) and math.isfinite(value) and abs(value) >= 1e16:
        # repr() writes 1e+16; JSONB turns that into the integer 10000000000000000,
        # which reads back as an int and changes the event's canonical JSON.
        # Written with ".0" it stays a float.
        return f"{int(value)}.0"
    if isinstance(value, dict):
        parts = []
        for k, v in value.items():
            key = k if isinstance(k, str) else next(iter(json.loads(_plain_dumps({k: 0}))))
            parts.append(f"{_plain_dumps(key)}:{_jsonb_encode(v)}")
        return "{" + ",".join(parts) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_jsonb_encode(v) for v in value) + "]"
    return _plain_dumps(value)


def _pg_dumps(value: Any) -> str:
    """JSON text that PostgreSQL's JSONB gives back exactly (see `_jsonb_encode`)."""
    text = _plain_dumps(value)
    # Only a float of 1e16 or more (written with "e+") or -0.0 needs the walk; a
    # string that merely holds these characters takes it too, and finds nothing.
    if ("e+" in text or "-0.0" in text) and _float_trouble(value):
        return _jsonb_encode(value)
    return text


# -- hand-bound values for the hot statements ----------------------------------------
#
# get, event_by_key, events and commit run on a pooled DBAPI connection with SQL
# compiled once (see SQLStore._prepare_hot): per call, SQLAlchemy's execution
# machinery (cache key, execution context, result processors, begin events)
# cost ten times the statement itself. These functions do exactly what the
# column types' processors do (UTCDateTime, DateTime, JSON/JSONB), so the rows
# written and the objects read are the same as through Core.


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value.isoformat()} cannot be stored; "
                         "gridflow stores aware UTC datetimes (use datetime.UTC)")
    return value.astimezone(UTC)


def _sqlite_when(value: datetime | None) -> str | None:
    # SQLAlchemy's SQLite DateTime storage format: UTC, fixed width, microseconds.
    utc = _utc(value)
    return None if utc is None else utc.replace(tzinfo=None).isoformat(" ", "microseconds")


def _sqlite_read_when(value: str | None) -> datetime | None:
    if value is None:
        return None
    found = datetime.fromisoformat(value)
    return found.replace(tzinfo=UTC) if found.tzinfo is None else found.astimezone(UTC)


def _sqlite_read_json(value: str | None) -> Any:
    """The value of stored JSON text: by orjson, which reads it as `json.loads` does
    (but for long digit runs, see `_DIGITS`, and what it refuses: those go to
    `json`), in about half the time.

    Example:
        >>> _sqlite_read_json('{"a":[1,2.5,"王"]}'), _sqlite_read_json("[12345678901234567890]")
        ({'a': [1, 2.5, '王']}, [12345678901234567890])
    """
    if value is None:
        return None
    orjson = _model._orjson
    if orjson is _model._ORJSON_NOT_LOADED:
        orjson = _model._load_orjson()
    if orjson is not None and value.__class__ is str:
        try:
            if _LONG_RUN not in value.encode("utf-8").translate(_DIGITS):
                return orjson.loads(value)
        except ValueError:  # NaN, a lone surrogate, too deep...: json decides
            pass
    return json.loads(value)


def _pg_read_when(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _pg_read_json(value: Any) -> Any:
    # psycopg decodes JSONB itself (as it does under SQLAlchemy).
    return value


class _Hot(NamedTuple):
    """The compiled SQL and value codecs of the hot statements, for one dialect."""

    get: str
    by_key: str
    events: str
    insert_case: str
    insert_event: str
    update_case: str
    update_case_light: str
    #: SQLite: a step that moved the case (its state, maybe its deadline), the
    #: other indexed columns required unchanged (see `SQLStore._prepare_hot`).
    update_case_moved: str
    #: PostgreSQL: a whole step in one statement (the compare-and-set of the case
    #: row and, only where it applied, the event's insert); ``""`` on SQLite.
    step: str
    #: PostgreSQL: an opening step (the case row and its first event) in one statement.
    open_step: str
    #: PostgreSQL: ``vault_step(opening, n_keys, n_values)``, `step` (`open_step`) with
    #: that many new subject keys and ciphertexts inserted by the same statement
    #: (`SQLStore._vault_ctes`), compiled once per shape; ``None`` on SQLite.
    vault_step: Callable[[bool, int, int], str] | None
    when: Callable[[datetime | None], Any]
    dumps: Callable[[Any], str]
    read_when: Callable[[Any], Any]
    read_json: Callable[[Any], Any]


# -- errors --------------------------------------------------------------------------


def _sqlstate(exc: BaseException) -> str | None:
    return _sqlstate_of(getattr(exc, "orig", None))


def _sqlstate_of(driver_error: object) -> str | None:
    """The SQLSTATE of a driver's (psycopg's) error, or ``None``."""
    code = getattr(driver_error, "sqlstate", None)
    return code if isinstance(code, str) else None


def _is_unique_violation(exc: sa_exc.IntegrityError) -> bool:
    code = _sqlstate(exc)
    if code is not None:
        return code == "23505"
    return "UNIQUE constraint failed" in str(exc.orig)


def _is_lost_race(exc: sa_exc.DBAPIError) -> bool:
    # PostgreSQL serialization failure / deadlock: another writer won.
    return _sqlstate(exc) in ("40001", "40P01")


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# -- the store -----------------------------------------------------------------------


class SQLStore:
    """A `Store` in a SQL database: SQLite (a file) or PostgreSQL.

    ``url`` is a SQLAlchemy URL: ``sqlite:///cases.db`` (a file; ``sqlite://``
    in memory is for single-threaded experiments only) or
    ``postgresql+psycopg://user@host/db`` (plain ``postgresql://`` means psycopg
    3 too). ``schema`` puts the tables in a PostgreSQL schema (created by
    `create_schema`). ``read_url`` (PostgreSQL) names a streaming replica of
    this database: ``replica`` is then a read-only `SQLStore` on it, which
    `gridflow.metrics.compute`, the problem classes and `Engine.verify_all`
    read from, while every write (and every read of a step) goes to the
    primary; `wait_for_replica` waits until it has caught up. ``synchronous`` is
    SQLite's durability: ``"FULL"`` (default: a committed step survives a power
    cut) or ``"NORMAL"`` (commits do
    not wait for the disk: faster, and a power cut may lose the last commits,
    never corrupt the file; ``"EXTRA"`` is accepted too). ``busy_timeout``
    (seconds) is how long a SQLite writer waits for another one. Other keyword
    arguments go to `sqlalchemy.create_engine` (``pool_size``,
    ``pool_pre_ping``, ``connect_args``, ...).

    The tables are created only by `create_schema` (explicit, idempotent).
    Public for SQL of your own (reports, metrics): ``engine`` (the SQLAlchemy
    `Engine`), ``cases`` and ``events_table`` (SQLAlchemy `Table` objects; all
    three tables are in ``tables``) and ``dialect`` (``"sqlite"`` or
    ``"postgresql"``). ``events`` is the `Store` method, hence ``events_table``.

    Example:
        >>> import os, tempfile, gridflow
        >>> path = os.path.join(tempfile.mkdtemp(), "cases.db")
        >>> with gridflow.SQLStore(f"sqlite:///{path}") as store:
        ...     store.create_schema()
        ...     engine = gridflow.Engine(store=store, entry_points=False)
        ...     case = engine.open("grid_case", actor=gridflow.Actor("r", ["resident"],
        ...                                                          grids=gridflow.ALL_GRIDS),
        ...                        data={"title": "楼道堆物", "source": "resident"})
        ...     (store.get(case.id).state, store.dialect)
        ('reported', 'sqlite')
    """

    def __init__(
        self,
        url: str | sa.URL,
        *,
        schema: str | None = None,
        read_url: str | sa.URL | None = None,
        partition: str | None = None,
        synchronous: str = "FULL",
        busy_timeout: float = 10.0,
        echo: bool = False,
        **engine_options: Any,
    ) -> None:
        try:
            parsed = sa.make_url(url)
        except sa_exc.ArgumentError as exc:
            raise StoreError(f"not a database URL: {url!r}; use e.g. 'sqlite:///cases.db' or "
                             "'postgresql+psycopg://user@host/dbname'") from exc
        if parsed.drivername == "postgresql":
            # Without a driver SQLAlchemy would pick psycopg2; gridflow[postgres]
            # installs psycopg 3.
            parsed = parsed.set(drivername="postgresql+psycopg")
        self.url = parsed
        self._where = parsed.render_as_string(hide_password=True)
        backend = parsed.get_backend_name()
        if backend not in ("sqlite", "postgresql"):
            raise StoreError(f"SQLStore supports SQLite and PostgreSQL, not {backend!r} "
                             f"({self._where})")
        sync = synchronous.upper()
        if sync not in _SYNCHRONOUS:
            raise StoreError(f"synchronous={synchronous!r} is not supported; use 'FULL' "
                             "(durable, the default) or 'NORMAL' (faster, may lose the last "
                             "commits on a power cut)")
        if schema is not None and backend != "postgresql":
            raise StoreError(f"schema={schema!r} needs PostgreSQL; SQLite keeps one database "
                             "per file (use another file instead)")
        if read_url is not None and backend != "postgresql":
            raise StoreError(f"read_url= needs PostgreSQL (a streaming replica of the primary); "
                             f"{self._where} is {backend}")
        if partition is not None and (partition not in _PARTITIONS or backend != "postgresql"):
            raise StoreError(f"partition={partition!r} is not supported on {self._where}: "
                             "partition='month' range-partitions the events table by month, "
                             "on PostgreSQL only")
        self.schema = schema
        #: ``"month"``: the events table is range-partitioned by month (PostgreSQL).
        self.partition = partition
        self.synchronous = sync
        #: The read replica (`read_url`), or ``None``.
        self.replica: SQLStore | None = None
        self._read_only = False
        options: dict[str, Any] = {"echo": echo}
        if backend == "sqlite":
            options["json_serializer"] = _sqlite_dumps
            if parsed.database in (None, "", ":memory:"):
                # One shared connection, or every pooled connection would see
                # its own empty in-memory database.
                options["poolclass"] = sa.pool.StaticPool
                options["connect_args"] = {"check_same_thread": False}
        else:
            options["json_serializer"] = _pg_dumps
        options.update(engine_options)
        try:
            engine = self._create_engine(parsed, options)
        except ImportError as exc:
            extra = "postgres" if backend == "postgresql" else "sql"
            raise ImportError(f"SQLStore({self._where}) needs a database driver that is not "
                              f"installed ({exc}); pip install 'gridflow[{extra}]'") from exc
        except (sa_exc.SQLAlchemyError, TypeError) as exc:
            raise StoreError(f"cannot create a database engine for {self._where}: "
                             f"{_first_line(exc)}") from exc
        #: The SQLAlchemy `Engine` (share it for your own queries).
        self.engine: Engine = engine
        #: ``"sqlite"`` or ``"postgresql"``.
        self.dialect: str = engine.dialect.name
        self.metadata = sa.MetaData(schema=schema)
        tables = Tables(*_tables(self.metadata, partition is not None))
        #: ``gridflow_event_keys`` of a partitioned store (``None`` otherwise).
        self.event_keys: sa.Table | None = (
            _event_keys_table(self.metadata) if partition is not None else None)
        #: The Merkle log's tables (leaves, nodes, checkpoints; see gridflow.store._log).
        self.log_tables = _log.log_tables(self.metadata, tables.cases)
        self._log_backend: Any = None
        #: Every table: ``tables.cases``, ``tables.events``, ``tables.meta``.
        self.tables = tables
        #: The ``gridflow_cases`` table (``events`` is the `Store` method, so the
        #: events table is ``events_table``, also ``tables.events``).
        self.cases: sa.Table = tables.cases
        #: The ``gridflow_events`` table.
        self.events_table: sa.Table = tables.events
        self._meta = tables.meta
        #: The personal-data vault (schema 3): wrapped subject keys and ciphertexts.
        self.pii_keys, self.pii_values = _pii_tables(self.metadata)
        if self.dialect == "sqlite":
            self._setup_sqlite(engine, sync, busy_timeout)
            # Writers start with BEGIN IMMEDIATE: they queue for the write lock up
            # front instead of deadlocking when two readers both try to upgrade.
            self._writer: Engine = engine.execution_options(gridflow_begin="BEGIN IMMEDIATE")
            # Reads are single statements: SQLite runs each in its own snapshot.
            self._reader: Engine = engine.execution_options(gridflow_begin="")
        else:
            self._writer = engine
            # A read is one statement: in autocommit it needs no BEGIN / ROLLBACK
            # round trips, and each statement still sees one consistent snapshot.
            self._reader = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._checked = False
        self._check_lock = threading.Lock()
        self._prepare()
        # Echo asks to see every statement: keep everything on Core then.
        self._hot: _Hot | None = None if echo or not self._hot_path else self._prepare_hot()
        self._driver_error: type[Exception] = engine.dialect.loaded_dbapi.Error
        if read_url is not None:
            replica = type(self)(read_url, schema=schema, partition=partition, echo=echo,
                                 **engine_options)
            if replica.dialect != "postgresql":
                raise StoreError(f"read_url= must be a PostgreSQL URL (a streaming replica of "
                                 f"{self._where}), not {replica._where}")
            replica._read_only = True
            self.replica = replica

    #: Whether commits and reads may take the raw-DBAPI fast path (the sync
    #: drivers); `AsyncSQLStore` keeps everything on Core.
    _hot_path = True

    def _create_engine(self, url: sa.URL, options: dict[str, Any]) -> Engine:
        return sa.create_engine(url, **options)

    def _pause(self, seconds: float) -> None:
        """Wait between two polls (`wait_for_replica`); `AsyncSQLStore` yields to its loop."""
        time.sleep(seconds)

    @staticmethod
    def _setup_sqlite(engine: Engine, synchronous: str, busy_timeout: float) -> None:
        timeout_ms = int(busy_timeout * 1000)

        def on_connect(dbapi_conn: Any, _record: Any) -> None:
            # Take transaction control away from the sqlite3 module so that
            # on_begin can say BEGIN IMMEDIATE for writers.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            try:
                cur.execute(f"PRAGMA busy_timeout = {timeout_ms}")
                cur.execute("PRAGMA foreign_keys = ON")
                cur.execute("PRAGMA journal_mode = WAL")
                cur.execute(f"PRAGMA synchronous = {synchronous}")
            finally:
                cur.close()

        def on_begin(conn: Connection) -> None:
            # store.engine keeps a plain BEGIN, so SQL of your own on it stays atomic.
            begin = conn.get_execution_options().get("gridflow_begin", "BEGIN")
            if begin:
                conn.exec_driver_sql(begin)

        sa.event.listen(engine, "connect", on_connect)
        sa.event.listen(engine, "begin", on_begin)

    def _prepare(self) -> None:
        c, e, m = self.cases.c, self.events_table.c, self._meta.c
        # The columns a Case is made of (schema 4's): a read of a case does not carry
        # the facts and district schema 5 derives for the figures and for sharding.
        derived = {*_facts.NAMES, "district"}
        self._row_columns = [col for col in self.cases.c if col.name not in derived]
        self._q_get = sa.select(*self._row_columns).where(c.id == sa.bindparam("cid"))
        self._q_version = sa.select(c.version).where(c.id == sa.bindparam("cid"))
        self._q_events = (sa.select(self.events_table)
                          .where(e.case_id == sa.bindparam("cid")).order_by(e.seq))
        self._q_key = sa.select(self.events_table).where(
            e.idempotency_key == sa.bindparam("key"))
        self._q_meta = sa.select(m.value).where(m.key == "schema_version")
        self._i_case = sa.insert(self.cases).values(_fact_inserts())
        self._i_event = sa.insert(self.events_table).values(
            stay_us=_stay_of(self.cases, self.events_table),
            district=_stay_of(self.cases, self.events_table, "district"))
        # Compare-and-set on version. The SET columns come from the execute()
        # parameters named after them; any write of the case ends the timer's lease.
        self._u_case = (
            sa.update(self.cases)
            .where(c.id == sa.bindparam("b_id"), c.version == sa.bindparam("b_expected"))
            .values(claimed_until=None, **_fact_updates(self.cases))
        )
        # Most steps (notes, department reports) change no indexed column. SQLite
        # rewrites every index whose column is named in SET, changed or not (4x the
        # cost of a step at 200,000 cases), so this statement leaves them out and
        # instead requires them to be unchanged; if one did change, the full
        # statement above runs.
        self._u_case_light = (
            sa.update(self.cases)
            .where(c.id == sa.bindparam("b_id"), c.version == sa.bindparam("b_expected"),
                   c.workflow == sa.bindparam("b_workflow"),
                   c.workflow_version == sa.bindparam("b_workflow_version"),
                   c.state == sa.bindparam("b_state"),
                   c.grid.is_not_distinct_from(sa.bindparam("b_grid")),
                   c.opened_at == sa.bindparam("b_opened_at"),
                   c.deadline_at.is_not_distinct_from(sa.bindparam("b_deadline_at")))
            .values(claimed_until=None, **_fact_updates(self.cases))
        )

    def _prepare_hot(self) -> _Hot:
        """Compile the hot statements once, with every parameter named."""
        c, e = self.cases.c, self.events_table.c
        if self.dialect == "sqlite":
            # sqlite3 binds :name from a dict as well as ? from a tuple.
            named: Any = type(self.engine.dialect)
            dialect: Dialect = named(paramstyle="named")
            codecs: tuple[Any, ...] = (_sqlite_when, _sqlite_dumps, _sqlite_read_when,
                                       _sqlite_read_json)
        else:
            dialect = self.engine.dialect
            codecs = (_utc, _pg_dumps, _pg_read_when, _pg_read_json)

        def sql(stmt: sa.ClauseElement) -> str:
            return str(stmt.compile(dialect=dialect))

        facts = {*_facts.NAMES, "district"}
        case_cols = [col.name for col in self.cases.c
                     if col.name != "claimed_until" and col.name not in facts]
        updates, inserts = _fact_updates(self.cases), _fact_inserts()
        stay = _stay_of(self.cases, self.events_table)
        district = _stay_of(self.cases, self.events_table, "district")
        changed = ("version", "data", "updated_at", "links", "head")
        moved = (*changed, "state", "deadline_at")
        event_cols = [col for col in e if col.name not in ("leaf", "stay_us", "district")]
        step = open_step = ""
        vault_step: Callable[[bool, int, int], str] | None = None
        if self.dialect == "postgresql":
            # One round trip per step: the compare-and-set runs in a data-modifying
            # CTE and the event is inserted from its RETURNING, so the INSERT's
            # rowcount is 1 if the step applied and 0 if the case was not at the
            # expected version (then nothing at all was written). In autocommit
            # the statement is its own transaction: no BEGIN, no COMMIT.
            cas = (sa.update(self.cases)
                   .where(c.id == sa.bindparam("b_id"), c.version == sa.bindparam("b_expected"))
                   .values({**{name: sa.bindparam(name, type_=self.cases.c[name].type)
                               for name in case_cols if name != "id"},
                            "claimed_until": sa.null(), **updates})
                   .returning(c.id, c[_facts.STAY], c.district).cte("cas"))
            new_case = (sa.insert(self.cases)
                        .values({**{name: sa.bindparam(name, type_=self.cases.c[name].type)
                                    for name in case_cols}, **inserts})
                        .returning(c.id, c[_facts.STAY], c.district).cte("new_case"))

            def event_from(cte: Any, also: Sequence[Any] = ()) -> str:
                values = sa.select(*[sa.bindparam(col.name, type_=col.type) for col in event_cols],
                                   cte.c[_facts.STAY], cte.c.district)
                stmt = (sa.insert(self.events_table)
                        .from_select([*(col.name for col in event_cols), "stay_us", "district"],
                                     values.select_from(cte))
                        .add_cte(cte, *also))
                keys = self.event_keys
                if keys is not None:
                    # Partitioned: the key is stored once across partitions (its own
                    # table's primary key), in the same statement.
                    key = sa.bindparam("idempotency_key", type_=keys.c.idempotency_key.type)
                    stmt = stmt.add_cte(
                        sa.insert(keys).from_select(
                            ["idempotency_key", "case_id", "seq"],
                            sa.select(key, sa.bindparam("case_id", type_=e.case_id.type),
                                      sa.bindparam("seq", type_=e.seq.type))
                            .select_from(cte).where(key.is_not(None)))
                        .cte("new_key"))
                return sql(stmt)

            step, open_step = event_from(cas), event_from(new_case)
            shapes: dict[tuple[bool, int, int], str] = {}

            def vault_step(opening: bool, n_keys: int, n_values: int) -> str:
                found = shapes.get((opening, n_keys, n_values))
                if found is None:
                    if len(shapes) >= 64:
                        shapes.clear()
                    cte = new_case if opening else cas
                    found = shapes[opening, n_keys, n_values] = event_from(
                        cte, self._vault_ctes(cte.name, n_keys, n_values))
                return found
        return _Hot(
            get=sql(self._q_get),
            by_key=sql(self._q_key),
            events=sql(self._q_events),
            insert_case=sql(sa.insert(self.cases).values(
                {**{name: sa.bindparam(name) for name in case_cols}, **inserts})),
            insert_event=sql(sa.insert(self.events_table).values(
                {**{col.name: sa.bindparam(col.name) for col in event_cols}, "stay_us": stay,
                 "district": district})),
            update_case=sql(
                sa.update(self.cases)
                .where(c.id == sa.bindparam("b_id"), c.version == sa.bindparam("b_expected"))
                .values({**{name: sa.bindparam(name) for name in case_cols if name != "id"},
                         "claimed_until": sa.null(), **updates})),
            update_case_light=sql(
                sa.update(self.cases)
                .where(c.id == sa.bindparam("b_id"), c.version == sa.bindparam("b_expected"),
                       c.workflow == sa.bindparam("b_workflow"),
                       c.workflow_version == sa.bindparam("b_workflow_version"),
                       c.state == sa.bindparam("b_state"),
                       c.grid.is_not_distinct_from(sa.bindparam("b_grid")),
                       c.opened_at == sa.bindparam("b_opened_at"),
                       c.deadline_at.is_not_distinct_from(sa.bindparam("b_deadline_at")))
                .values({**{name: sa.bindparam(name) for name in changed},
                         "claimed_until": sa.null(), **updates})),
            update_case_moved=sql(
                sa.update(self.cases)
                .where(c.id == sa.bindparam("b_id"), c.version == sa.bindparam("b_expected"),
                       c.workflow == sa.bindparam("b_workflow"),
                       c.workflow_version == sa.bindparam("b_workflow_version"),
                       c.grid.is_not_distinct_from(sa.bindparam("b_grid")),
                       c.opened_at == sa.bindparam("b_opened_at"))
                .values({**{name: sa.bindparam(name) for name in moved},
                         "claimed_until": sa.null(), **updates})),
            step=step, open_step=open_step,
            vault_step=vault_step,
            when=codecs[0], dumps=codecs[1], read_when=codecs[2], read_json=codecs[3],
        )

    #: The columns of the vault rows a step's statement inserts (`_vault_ctes`): a new
    #: subject key, and a ciphertext with the wrapped key and state it was sealed under.
    VAULT_KEY = ("subject", "key_id", "wrapped", "state")
    VAULT_VALUE = ("ref_id", "subject", "case_id", "path", "ciphertext", "wrapped", "state")

    def _vault_ctes(self, step: str, n_keys: int, n_values: int) -> list[Any]:
        """PostgreSQL: the data-modifying CTEs that store a step's vault rows in the
        step's own statement, only where its case row was written (the CTE ``step``
        returned it), so that a personal step is one round trip like a plain one.

        The rows are bound one parameter each (``k0_subject``..., ``v0_ref_id``...: see
        `VAULT_KEY`, `VAULT_VALUE`) in a ``VALUES`` list, so that the prepared statement
        of each shape gets a generic plan (over arrays, the planner would plan every
        execution again). A new key whose subject has one already is not stored
        (``ON CONFLICT DO NOTHING``); a ciphertext is stored only if its key is the one
        just stored or, unchanged, the one the table holds. Otherwise its
        ``ciphertext`` is NULL and the NOT NULL column fails the whole statement, so
        nothing of the step is written: the caller reads that as a lost race
        (`SQLStore._pg_commit`). The statement's CTEs share one snapshot, hence the new
        keys are matched through their CTE's ``RETURNING``, not the table.
        """
        fmt = self.engine.dialect.identifier_preparer.format_table
        keys, values = fmt(self.pii_keys), fmt(self.pii_values)
        types = {"wrapped": "BYTEA", "ciphertext": "BYTEA"}

        def rows(prefix: str, n: int, cols: Sequence[str]) -> str:
            return ", ".join(
                "(" + ", ".join(f"CAST(:{prefix}{i}_{c} AS {types.get(c, 'VARCHAR')})"
                                for c in cols) + ")" for i in range(n))

        ctes = []
        new_key = "FALSE"
        if n_keys:
            ctes.append(sa.text(
                f"INSERT INTO {keys} (subject, key_id, wrapped, state) "
                "SELECT n.subject, n.key_id, n.wrapped, n.state FROM (VALUES "
                f"{rows('k', n_keys, self.VAULT_KEY)}) AS n (subject, key_id, wrapped, "
                f"state) WHERE EXISTS (SELECT 1 FROM {step}) "
                "ON CONFLICT DO NOTHING RETURNING subject, wrapped"
            ).columns(sa.column("subject"), sa.column("wrapped")).cte("pii_new_key"))
            new_key = ("EXISTS (SELECT 1 FROM pii_new_key AS n "
                       "WHERE n.subject = v.subject AND n.wrapped = v.wrapped)")
        ctes.append(sa.text(
            f"INSERT INTO {values} (ref_id, subject, case_id, path, ciphertext) "
            f"SELECT v.ref_id, v.subject, v.case_id, v.path, CASE WHEN {new_key} "
            f"OR EXISTS (SELECT 1 FROM {keys} AS k WHERE k.subject = v.subject "
            "AND k.wrapped = v.wrapped AND k.state = v.state) THEN v.ciphertext END "
            f"FROM (VALUES {rows('v', n_values, self.VAULT_VALUE)}) "
            "AS v (ref_id, subject, case_id, path, ciphertext, wrapped, state) "
            f"CROSS JOIN {step} RETURNING ref_id"
        ).columns(sa.column("ref_id")).cte("pii_new_value"))
        return ctes

    @contextmanager
    def _dbapi(self, *, autocommit: bool = False) -> Iterator[Any]:
        """A cursor on a pooled DBAPI connection; driver errors come out as
        SQLAlchemy's (``IntegrityError``, ``OperationalError``, ...), as they do
        through Core, and a connection the database dropped is discarded."""
        dialect = self.engine.dialect
        try:
            fairy = self.engine.raw_connection()
        except self._driver_error as exc:
            raise self._wrap(exc) from exc
        cur = None
        driver: Any = fairy.driver_connection
        try:
            if autocommit:
                # PostgreSQL: one SELECT needs no BEGIN / ROLLBACK round trips.
                driver.autocommit = True
            try:
                cur = fairy.cursor()
                yield cur
            finally:
                if autocommit:
                    driver.autocommit = False
        except self._driver_error as exc:
            lost = dialect.is_disconnect(cast(Any, exc), fairy.dbapi_connection, cur)
            if lost:
                fairy.invalidate(exc)
            raise self._wrap(exc, lost) from exc
        finally:
            if cur is not None:
                with suppress(self._driver_error):
                    cur.close()
            fairy.close()

    def _wrap(self, exc: Exception, invalidated: bool = False) -> BaseException:
        return sa_exc.DBAPIError.instance(None, None, exc, self._driver_error,
                                          connection_invalidated=invalidated,
                                          dialect=self.engine.dialect)

    # -- lifecycle ----------------------------------------------------------------

    def __repr__(self) -> str:
        schema = f", schema={self.schema!r}" if self.schema else ""
        replica = f", read_url={self.replica._where!r}" if self.replica is not None else ""
        return f"SQLStore({self._where!r}{schema}{replica})"

    def close(self) -> None:
        """Close every pooled connection (the store can be used again afterwards).

        Example:
            >>> import os, tempfile, gridflow
            >>> store = gridflow.SQLStore("sqlite:///" + os.path.join(tempfile.mkdtemp(), "x.db"))
            >>> store.close()
        """
        self.engine.dispose()
        if self.replica is not None:
            self.replica.close()

    dispose = close

    def __enter__(self) -> SQLStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _failures(self, what: str) -> Iterator[None]:
        """Turn database failures into `StoreError`, cause chained."""
        try:
            yield
        except GridflowError:
            raise
        except (sa_exc.SQLAlchemyError, OSError, ValueError, TypeError, ArithmeticError,
                RecursionError, UnicodeError) as exc:
            raise StoreError(f"{what} failed on {self._where}: {type(exc).__name__}: "
                             f"{_first_line(exc)}") from exc

    # -- the read replica ---------------------------------------------------------

    def _refuse_write(self, what: str) -> None:
        if self._read_only:
            raise StoreError(f"{what} on {self._where} refused: it is this store's read "
                             "replica (read_url=), which only serves reads; write through "
                             "the primary store")

    def wait_for_replica(self, timeout: float = 30.0) -> str:
        """Wait until the read replica has replayed the primary's WAL up to where it
        is now (every commit made before the call); returns that WAL position.

        Reports and verification read from the replica (`replica`), which may
        lag the primary by a few commits: call this first when they must see
        everything committed so far. Raises `StoreError` if the store has no
        replica, the replica is not replaying a primary, or it has not caught
        up within ``timeout`` seconds.

        Example:
            >>> import os, tempfile, gridflow
            >>> store = gridflow.SQLStore("sqlite:///" + os.path.join(tempfile.mkdtemp(), "x.db"))
            >>> store.replica is None
            True
            >>> store.wait_for_replica()  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            gridflow._errors.StoreError: ... has no read replica (read_url=) to wait for
        """
        replica = self.replica
        if replica is None:
            raise StoreError(f"{self._where} has no read replica (read_url=) to wait for")
        with self._failures("reading the primary's WAL position"), \
                self._reader.connect() as conn:
            # The insert position, not the write one: with synchronous_commit=off a
            # commit can be in the WAL buffers, not yet written, when it returns.
            target = str(conn.execute(sa.text("SELECT pg_current_wal_insert_lsn()")).scalar())
        probe = sa.text("SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn(), "
                        "pg_last_wal_replay_lsn() >= CAST(:lsn AS pg_lsn)")
        deadline = time.monotonic() + timeout
        pause = 0.002
        while True:
            with replica._failures("reading the replica's replay position"), \
                    replica._reader.connect() as conn:
                recovering, replayed, done = conn.execute(probe, {"lsn": target}).one()
            if not recovering:
                raise StoreError(f"{replica._where} is not a replica (it is not in recovery): "
                                 f"read_url= must name a streaming replica of {self._where}")
            if done:
                return target
            if time.monotonic() >= deadline:
                raise StoreError(
                    f"the replica {replica._where} has replayed the WAL up to {replayed}, "
                    f"not yet to the primary's {target}, after {timeout:g} s; is it "
                    "streaming (primary_conninfo, pg_stat_replication)? Pass a larger "
                    "timeout= or read from the primary")
            self._pause(pause)
            pause = min(pause * 2, 0.1)

    # -- monthly partitions (PostgreSQL) -------------------------------------------

    def _check_layout(self, conn: Connection) -> None:
        m = self._meta.c
        stored = conn.execute(sa.select(m.value).where(m.key == "events_partition")).scalar()
        if stored != self.partition:
            has = f"partition={stored!r}" if stored else "no partition="
            raise StoreError(
                f"the events table of {self._where} was created with {has}, and this store "
                f"is opened with partition={self.partition!r}; open it as it was created "
                "(a store cannot be partitioned after the fact by create_schema)")

    def _partition_names(self) -> tuple[str, str]:
        prep = self.engine.dialect.identifier_preparer
        parent = prep.format_table(self.events_table)
        prefix = f"{prep.quote_schema(self.schema)}." if self.schema else ""
        return parent, prefix

    @staticmethod
    def _month(value: datetime) -> tuple[int, int]:
        utc = value.astimezone(UTC)
        return utc.year, utc.month

    def _create_partitions(self, conn: Connection, start: datetime, *, months: int) -> list[str]:
        parent, prefix = self._partition_names()
        conn.execute(sa.text(f"CREATE TABLE IF NOT EXISTS {prefix}gridflow_events_default "
                             f"PARTITION OF {parent} DEFAULT"))
        created = []
        year, month = self._month(start)
        existing = {name for name, _ in self._partition_list(conn)}
        for _ in range(months):
            name = f"gridflow_events_y{year:04d}m{month:02d}"
            lo = datetime(year, month, 1, tzinfo=UTC)
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
            hi = datetime(year, month, 1, tzinfo=UTC)
            if name in existing:
                continue
            # Made beside the table, filled with the month's rows the default
            # partition caught meanwhile, then attached: adding a month never fails
            # because steps landed in it before it existed.
            conn.execute(sa.text(f"CREATE TABLE {prefix}{name} (LIKE {parent} "
                                 "INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"))
            conn.execute(sa.text(
                f"WITH moved AS (DELETE FROM {prefix}gridflow_events_default "
                f"WHERE at >= :lo AND at < :hi RETURNING *) "
                f"INSERT INTO {prefix}{name} SELECT * FROM moved"), {"lo": lo, "hi": hi})
            conn.execute(sa.text(f"ALTER TABLE {parent} ATTACH PARTITION {prefix}{name} "
                                 f"FOR VALUES FROM ('{lo.isoformat()}') TO ('{hi.isoformat()}')"))
            created.append(name)
        return created

    def _partition_list(self, conn: Connection) -> list[tuple[str, datetime]]:
        """The monthly partitions attached to the events table: (name, first day)."""
        parent, _ = self._partition_names()
        rows = conn.execute(sa.text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = CAST(:parent AS regclass)"), {"parent": parent}).scalars()
        out = []
        for name in rows:
            tail = name.removeprefix("gridflow_events_y")
            if len(tail) == 7 and tail[4] == "m" and tail.replace("m", "", 1).isdigit():
                out.append((name, datetime(int(tail[:4]), int(tail[5:]), 1, tzinfo=UTC)))
        return sorted(out, key=lambda p: p[1])

    def _partitioned(self, what: str) -> None:
        self._refuse_write(what)
        if self.partition is None:
            raise StoreError(f"{what}: the events table of {self._where} is not partitioned; "
                             "create the store with SQLStore(url, partition='month') on "
                             "PostgreSQL")
        self._ready()

    def add_partitions(self, since: datetime, *, months: int = 3) -> list[str]:
        """Create the monthly partitions of the events table for ``months`` months
        from the month of ``since`` (UTC) where missing; returns the names created.

        Needs ``partition="month"`` (PostgreSQL). `create_schema` makes the
        current month and the next two; run this ahead of time (a scheduled job,
        say monthly). A step at a time no month partition covers is stored all
        the same, in the default partition, and moved into its month when the
        month is added here: results never depend on it.

        Example:
            >>> import os, tempfile, gridflow
            >>> from datetime import datetime, UTC
            >>> store = gridflow.SQLStore("sqlite:///" + os.path.join(tempfile.mkdtemp(), "x.db"))
            >>> store.add_partitions(datetime(2026, 1, 1, tzinfo=UTC))  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            gridflow._errors.StoreError: add_partitions: ... is not partitioned; ...
        """
        self._partitioned("add_partitions")
        with self._failures("adding monthly partitions"), self._writer.begin() as conn:
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:k))"),
                         {"k": f"gridflow.partitions:{self.schema or ''}"})
            return self._create_partitions(conn, since, months=months)

    def partitions(self) -> list[tuple[str, datetime]]:
        """The monthly partitions of the events table, oldest first: ``(table name,
        first instant of its month in UTC)``. Needs ``partition="month"``.

        Example:
            >>> import os, tempfile, gridflow
            >>> store = gridflow.SQLStore("sqlite:///" + os.path.join(tempfile.mkdtemp(), "x.db"))
            >>> store.partitions()  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            gridflow._errors.StoreError: partitions: the events table of ... is not partitioned; ...
        """
        if self.partition is None:
            self._partitioned("partitions")
        self._ready()
        with self._failures("listing monthly partitions"), self.engine.connect() as conn:
            return self._partition_list(conn)

    def detach_partitions(self, before: datetime) -> list[str]:
        """Detach every monthly partition whose month ends at or before ``before``, for
        archiving; returns their (schema-qualified) table names, oldest first.

        A detached partition is an ordinary table holding that month's events
        (dump it with ``pg_dump -t``, then drop it). Its events are no longer
        the store's: detach only months whose cases are closed and archived
        (reports, `history` and `verify` of a case need all of its events), and
        verify them (`Engine.verify_all`) before. Needs ``partition="month"``.

        Example:
            >>> import os, tempfile, gridflow
            >>> from datetime import datetime, UTC
            >>> store = gridflow.SQLStore("sqlite:///" + os.path.join(tempfile.mkdtemp(), "x.db"))
            >>> store.detach_partitions(datetime(2025, 1, 1, tzinfo=UTC))  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            gridflow._errors.StoreError: detach_partitions: the events table of ... is not ...
        """
        self._partitioned("detach_partitions")
        parent, prefix = self._partition_names()
        done = []
        with self._failures("detaching monthly partitions"), self._writer.begin() as conn:
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:k))"),
                         {"k": f"gridflow.partitions:{self.schema or ''}"})
            for name, first in self._partition_list(conn):
                year, month = first.year, first.month
                end = datetime(year + 1, 1, 1, tzinfo=UTC) if month == 12 else \
                    datetime(year, month + 1, 1, tzinfo=UTC)
                if end <= before:
                    conn.execute(sa.text(f"ALTER TABLE {parent} DETACH PARTITION "
                                         f"{prefix}{name}"))
                    done.append(f"{prefix}{name}")
        return done

    # -- schema -------------------------------------------------------------------

    def create_schema(self) -> None:
        """Create the tables and indexes if missing, record the schema version, and
        migrate an older gridflow schema to this version. Idempotent; safe to run
        from several processes at once.

        Raises `SchemaVersionError` if the database was created by a newer gridflow.

        Example:
            >>> import os, tempfile, gridflow
            >>> store = gridflow.SQLStore("sqlite:///" + os.path.join(tempfile.mkdtemp(), "x.db"))
            >>> store.create_schema(); store.create_schema()
            >>> store.schema_version()
            5
        """
        self._refuse_write("create_schema")
        with self._failures("create_schema"), self._writer.begin() as conn:
            if self.dialect == "postgresql":
                # DDL is transactional on PostgreSQL; the advisory lock makes
                # concurrent create_schema calls run one after the other.
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:k))"),
                             {"k": f"gridflow.create_schema:{self.schema or ''}"})
                if self.schema is not None:
                    conn.execute(sa.schema.CreateSchema(self.schema, if_not_exists=True))
            self.metadata.create_all(conn, checkfirst=True)
            found = conn.execute(self._q_meta).scalar()
            if found is None:
                conn.execute(sa.insert(self._meta), [
                    {"key": "schema_version", "value": str(SCHEMA_VERSION)}])
                if self.partition is not None:
                    conn.execute(sa.insert(self._meta), [
                        {"key": "events_partition", "value": self.partition}])
                    self._create_partitions(conn, datetime.now(UTC), months=3)
                _log.ensure_log_state(conn, self)
            else:
                self._check_layout(conn)
                stored = self._parse_version(found)
                if stored > SCHEMA_VERSION:
                    raise self._too_new(stored)
                for version in range(stored, SCHEMA_VERSION):
                    migrate = _MIGRATIONS.get(version)
                    if migrate is None:
                        raise SchemaVersionError(
                            f"the gridflow schema in {self._where} is version {stored} and "
                            f"this gridflow has no migration from version {version} to "
                            f"{version + 1}; upgrade through an older gridflow release first")
                    migrate(conn, self)
                if stored != SCHEMA_VERSION:
                    conn.execute(sa.update(self._meta)
                                 .where(self._meta.c.key == "schema_version")
                                 .values(value=str(SCHEMA_VERSION)))
        self._checked = True

    def schema_version(self) -> int | None:
        """The schema version recorded in the database (``None``: no gridflow schema).

        Example:
            >>> import os, tempfile, gridflow
            >>> store = gridflow.SQLStore("sqlite:///" + os.path.join(tempfile.mkdtemp(), "x.db"))
            >>> store.schema_version() is None
            True
        """
        with self._failures("reading the schema version"), self.engine.connect() as conn:
            if not sa.inspect(conn).has_table(self._meta.name, schema=self.schema):
                return None
            found = conn.execute(self._q_meta).scalar()
        return None if found is None else self._parse_version(found)

    def _parse_version(self, text: str) -> int:
        try:
            return int(text)
        except ValueError:
            raise SchemaVersionError(f"{self._where}: gridflow_meta holds schema_version "
                                     f"{text!r}, not a number; the table was edited by hand") \
                from None

    def _too_new(self, stored: int) -> SchemaVersionError:
        return SchemaVersionError(
            f"the gridflow schema in {self._where} is version {stored}, newer than this "
            f"gridflow handles (schema version {SCHEMA_VERSION}); upgrade gridflow on this "
            "machine (pip install -U gridflow) rather than use the database with an older one")

    def _ready(self) -> None:
        """Check the stored schema version once, before the first real operation."""
        if self._checked:
            return
        with self._check_lock:
            if self._checked:
                return
            stored = self.schema_version()
            if stored is None:
                raise StoreError(f"no gridflow schema in {self._where}"
                                 + (f" (schema {self.schema!r})" if self.schema else "")
                                 + "; call store.create_schema() once to create the tables")
            if stored > SCHEMA_VERSION:
                raise self._too_new(stored)
            if stored < SCHEMA_VERSION:
                raise SchemaVersionError(
                    f"the gridflow schema in {self._where} is version {stored}, older than this "
                    f"gridflow's {SCHEMA_VERSION}; run store.create_schema() once to migrate it")
            if self.dialect == "postgresql":
                with self._failures("reading the events table's layout"), \
                        self.engine.connect() as conn:
                    self._check_layout(conn)
            self._checked = True

    # -- reading ------------------------------------------------------------------

    @staticmethod
    def _case(row: Any) -> Case:
        return Case(row.id, row.workflow, row.workflow_version, row.state, row.version,
                    row.data, row.grid, row.opened_at, row.updated_at, row.deadline_at,
                    tuple(row.links), row.head)

    @staticmethod
    def _event(row: Any) -> Event:
        # The actor's id is read from its own column: the one SQL of one's own
        # filters on, so an edit of it must show in the recomputed hash.
        a = row.actor
        changes = row.changes
        return Event(row.case_id, row.seq, row.trigger, row.source, row.dest,
                     Actor.stored(row.actor_id, a["roles"], a["grids"]), row.at, row.payload,
                     row.idempotency_key, row.prev_hash, row.hash,
                     None if changes is None else Changes.from_json(changes), row.digests)

    def _hot_case(self, row: Sequence[Any]) -> Case:
        # Column order of gridflow_cases (SELECT of the whole table).
        hot = self._hot
        assert hot is not None
        when, read_json = hot.read_when, hot.read_json
        return Case(row[0], row[1], row[2], row[3], row[4], read_json(row[5]), row[6],
                    when(row[7]), when(row[8]), when(row[9]), tuple(read_json(row[10])),
                    row[11])

    def _hot_event(self, row: Sequence[Any]) -> Event:
        # Column order of gridflow_events.
        hot = self._hot
        assert hot is not None
        a = hot.read_json(row[6])
        changes = hot.read_json(row[12])
        return Event(row[0], row[1], row[2], row[3], row[4],
                     Actor.stored(row[5], a["roles"], a["grids"]), hot.read_when(row[7]),
                     hot.read_json(row[8]), row[9], row[10], row[11],
                     None if changes is None else Changes.from_json(changes), row[13])

    def _hot_rows(self, sql: str, params: dict[str, Any], *, one: bool) -> Any:
        with self._dbapi(autocommit=self.dialect == "postgresql") as cur:
            cur.execute(sql, params)
            return cur.fetchone() if one else cur.fetchall()

    def get(self, case_id: str) -> Case | None:
        """The stored case, or ``None``.

        Example:
            >>> import os, tempfile, gridflow
            >>> store = gridflow.SQLStore("sqlite:///" + os.path.join(tempfile.mkdtemp(), "x.db"))
            >>> store.create_schema()
            >>> store.get("nope") is None
            True
        """
        self._ready()
        hot = self._hot
        with self._failures(f"reading case {case_id!r}"):
            if hot is not None:
                found = self._hot_rows(hot.get, {"cid": case_id}, one=True)
                return None if found is None else self._hot_case(found)
            with self._reader.connect() as conn:
                row = conn.execute(self._q_get, {"cid": case_id}).first()
        return None if row is None else self._case(row)

    def events(self, case_id: str) -> list[Event]:
        """The case's events, oldest first (by ``seq``).

        Example:
            >>> import os, tempfile, gridflow
            >>> store = gridflow.SQLStore("sqlite:///" + os.path.join(tempfile.mkdtemp(), "x.db"))
            >>> store.create_schema()
            >>> store.events("nope")
            []
        """
        self._ready()
        hot = self._hot
        with self._failures(f"reading the events of case {case_id!r}"):
            if hot is not None:
                found = self._hot_rows(hot.events, {"cid": case_id}, one=False)
                return [self._hot_event(r) for r in found]
            with self._reader.connect() as conn:
                rows = conn.execute(self._q_events, {"cid": case_id}).all()
        return [self._event(r) for r in rows]

    def rebuild_facts(self, case_ids: Sequence[str] | None = None) -> int:
        """Recompute the facts kept for the figures (schema 5, `gridflow._facts`) from
        the stored events, for ``case_ids`` (``None``: every case), in one
        transaction; returns the number of cases rebuilt. Writes keep them up to
        date: this is for rows edited behind gridflow's back on purpose (a repair),
        which `Engine.verify` otherwise reports.

        Example:
            >>> import os, tempfile, gridflow
            >>> store = gridflow.SQLStore("sqlite:///" + os.path.join(tempfile.mkdtemp(), "x.db"))
            >>> store.create_schema()
            >>> store.rebuild_facts()
            0
        """
        if case_ids is not None:
            # A lone string is a sequence too: "c-1" would rebuild cases "c", "-", "1".
            if isinstance(case_ids, str | bytes) or not isinstance(case_ids, Iterable) \
                    or not all(isinstance(c, str) for c in case_ids):
                raise InvalidArgument(
                    "rebuild_facts: case_ids must be a list of case id strings or None "
                    f"(every case), got {type(case_ids).__name__}; write "
                    "rebuild_facts([case_id])")
            case_ids = list(case_ids)
        self._refuse_write("rebuild_facts")
        self._ready()
        with self._failures("rebuild_facts"), self._writer.begin() as conn:
            return _fill_facts(conn, self, case_ids)

    def stored_facts(self, case_id: str) -> tuple[dict[str, Any], list[Any], list[str]]:
        """What schema 5 derives from the events, as stored: the case row's fact
        columns (`gridflow._facts`) and its ``district``, each event's ``stay_us`` and
        ``district`` (by seq). `Engine.verify` compares them with the fold of the
        events.

        Example:
            >>> import os, tempfile, gridflow
            >>> store = gridflow.SQLStore("sqlite:///" + os.path.join(tempfile.mkdtemp(), "x.db"))
            >>> store.create_schema()
            >>> store.stored_facts("c-1")
            ({}, [], [])
        """
        self._ready()
        c, e = self.cases.c, self.events_table.c
        names = (*_facts.NAMES, "district")
        with self._failures(f"reading the facts of case {case_id!r}"), \
                self._reader.begin() as conn:
            row = conn.execute(sa.select(*(c[n] for n in names))
                               .where(c.id == case_id)).first()
            rows = conn.execute(sa.select(e.stay_us, e.district).where(e.case_id == case_id)
                                .order_by(e.seq)).all()
        facts = {} if row is None else dict(zip(names, row, strict=True))
        return facts, [r[0] for r in rows], [r[1] for r in rows]

    def event_by_key(self, idempotency_key: str) -> Event | None:
        """The event stored with this idempotency key, or ``None``.

        Example:
            >>> import os, tempfile, gridflow
            >>> store = gridflow.SQLStore("sqlite:///" + os.path.join(tempfile.mkdtemp(), "x.db"))
            >>> store.create_schema()
            >>> store.event_by_key("k-1") is None
            True
        """
        self._ready()
        hot = self._hot
        with self._failures(f"looking up idempotency key {idempotency_key!r}"):
            if hot is not None:
                found = self._hot_rows(hot.by_key, {"key": idempotency_key}, one=True)
                return None if found is None else self._hot_event(found)
            with self._reader.connect() as conn:
                row = conn.execute(self._q_key, {"key": idempotency_key}).first()
        return None if row is None else self._event(row)

    # -- writing ------------------------------------------------------------------

    @staticmethod
    def _case_params(case: Case) -> dict[str, Any]:
        return {
            "workflow": case.workflow, "workflow_version": case.workflow_version,
            "state": case.state, "version": case.version, "data": case.data,
            "grid": case.grid, "opened_at": case.opened_at, "updated_at": case.updated_at,
            "deadline_at": case.deadline_at, "links": list(case.links), "head": case.head,
        }

    def _update_case(self, conn: Connection, w: Write) -> bool:
        """Compare-and-set the case row; False if it is not at the expected version."""
        case = w.case
        source, dest = w.event.source, w.event.dest
        facts = _facts.step_params(w.event)
        if dest is None or dest == source:
            light = conn.execute(self._u_case_light, facts | {
                "b_id": case.id, "b_expected": w.expected_version,
                "b_workflow": case.workflow, "b_workflow_version": case.workflow_version,
                "b_state": case.state, "b_grid": case.grid, "b_opened_at": case.opened_at,
                "b_deadline_at": case.deadline_at,
                "version": case.version, "data": case.data, "updated_at": case.updated_at,
                "links": list(case.links), "head": case.head,
            })
            if light.rowcount == 1:
                return True
        params = self._case_params(case) | facts
        params["b_id"] = case.id
        params["b_expected"] = w.expected_version
        return bool(conn.execute(self._u_case, params).rowcount == 1)

    @staticmethod
    def _event_params(event: Event) -> dict[str, Any]:
        if event.at.utcoffset() != _ZERO:
            # The hash covers at.isoformat(); stored as UTC, a +08:00 time would
            # come back different and the event would no longer verify.
            raise ValueError(f"event seq {event.seq} of case {event.case_id!r} is at "
                             f"{event.at.isoformat()}, not UTC; the engine's clock must "
                             "return UTC datetimes")
        return {
            "case_id": event.case_id, "seq": event.seq, "trigger": event.trigger,
            "source": event.source, "dest": event.dest, "actor_id": event.actor.id,
            "actor": event.actor.to_json(), "at": event.at, "payload": event.payload,
            "idempotency_key": event.idempotency_key, "prev_hash": event.prev_hash,
            "hash": event.hash,
            "changes": None if event.changes is None else event.changes.to_json(),
            "digests": event.field_digests(),
        }

    def commit(self, writes: Sequence[Write], *,
               within: Callable[[Callable[..., Any]], None] | None = None) -> None:
        """Apply every write in one transaction, or none of them.

        Each case row is inserted (``expected_version`` 0) or updated where its
        version is the expected one; then the events are inserted. A stale
        version, an existing case, a stored ``(case_id, seq)`` or a stored
        idempotency key raise `ConcurrencyError`; any other failure `StoreError`.
        Either way nothing is written.

        ``within(execute)``, if given, runs last inside the same transaction, with
        ``execute(sql, params)`` running driver-level SQL (compiled for this
        dialect, named parameters) on its connection; what it raises rolls the
        whole commit back. The personal-data vault writes its ciphertexts there
        (`gridflow._sealing`), so a step that is not committed leaves none. On
        PostgreSQL a single write's ``within`` may instead give its rows as
        rows (``within.fold()``, see `_vault_ctes`): they are then stored by the
        step's own statement, in one round trip, and ``within.refused()`` is called
        before the `ConcurrencyError` if a row's subject key was no longer stored.

        Example:
            >>> import os, tempfile, gridflow
            >>> from datetime import datetime, UTC
            >>> from gridflow.model import Case, Event, GENESIS_HASH
            >>> store = gridflow.SQLStore("sqlite:///" + os.path.join(tempfile.mkdtemp(), "x.db"))
            >>> store.create_schema()
            >>> t = datetime(2026, 1, 5, tzinfo=UTC)
            >>> e = Event.create("c-1", 1, "open", None, "reported", gridflow.Actor.system(), t,
            ...                  {}, None, GENESIS_HASH)
            >>> c = Case("c-1", "grid_case", 1, "reported", 1, {}, None, t, t, head=e.hash)
            >>> store.commit([gridflow.Write(c, e, 0)])
            >>> store.commit([gridflow.Write(c, e, 0)])  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            gridflow._errors.ConcurrencyError: case 'c-1' is no longer at version 0, it is now ...
        """
        if not writes:
            return
        if self._read_only:
            self._refuse_write("commit")
        self._ready()
        # One lock order for every writer: two multi-case commits can never
        # deadlock on PostgreSQL by taking the same rows in opposite order.
        ordered = sorted(writes, key=lambda w: w.case.id) if len(writes) > 1 else writes
        what = f"commit of case {writes[0].case.id!r} seq {writes[0].event.seq}"
        cause: BaseException | None = None
        with self._failures(what):
            event_rows = [self._event_params(w.event) for w in ordered]
            for row in event_rows:
                row["stay_case"] = row["case_id"]
            try:
                if self._hot is not None:
                    self._hot_commit(ordered, event_rows, within)
                    return
                # As in _hot_commit: each event's stay_us is read from its case row.
                interleave = len({w.case.id for w in ordered}) < len(ordered)
                with self._writer.begin() as conn:
                    for i, w in enumerate(ordered):
                        if w.expected_version == 0:
                            params = self._case_params(w.case) | _facts.step_params(w.event)
                            params["id"] = w.case.id
                            conn.execute(self._i_case, params)
                        elif not self._update_case(conn, w):
                            raise _Conflict(w.case.id, w.expected_version)
                        if interleave:
                            conn.execute(self._i_event, event_rows[i])
                    if not interleave:
                        conn.execute(self._i_event, event_rows[0] if len(event_rows) == 1
                                     else event_rows)
                    keyed = [{"idempotency_key": r["idempotency_key"], "case_id": r["case_id"],
                              "seq": r["seq"]} for r in event_rows
                             if r["idempotency_key"] is not None]
                    if self.event_keys is not None and keyed:
                        conn.execute(sa.insert(self.event_keys), keyed)
                    if within is not None:
                        within(conn.exec_driver_sql)
                return
            except _Conflict as exc:
                case_id, expected = exc.case_id, exc.expected
            except sa_exc.IntegrityError as exc:
                if not _is_unique_violation(exc):
                    raise
                (case_id, expected), cause = self._blame(ordered), exc
            except sa_exc.DBAPIError as exc:
                if not _is_lost_race(exc):
                    raise
                (case_id, expected), cause = self._blame(ordered), exc
        raise ConcurrencyError(case_id, expected, self._version_of(case_id)) from cause

    def _hot_commit(self, ordered: Sequence[Write], event_rows: list[dict[str, Any]],
                    within: Callable[[Callable[..., Any]], None] | None = None) -> None:
        """commit's transaction on a DBAPI cursor (the same statements as on Core)."""
        hot = self._hot
        assert hot is not None
        when, dumps = hot.when, hot.dumps
        # Every value is encoded before the transaction starts: a value that
        # cannot be stored fails the commit without taking the write lock.
        for row in event_rows:
            row["actor"] = dumps(row["actor"])
            row["at"] = when(row["at"])
            row["payload"] = dumps(row["payload"])
            if row["changes"] is not None:
                row["changes"] = dumps(row["changes"])
        case_rows = []
        for w in ordered:
            case = w.case
            case_rows.append({
                "id": case.id, "workflow": case.workflow,
                "workflow_version": case.workflow_version, "state": case.state,
                "version": case.version, "data": dumps(case.data), "grid": case.grid,
                "opened_at": when(case.opened_at), "updated_at": when(case.updated_at),
                "deadline_at": when(case.deadline_at), "links": dumps(list(case.links)),
                "head": case.head, "b_id": case.id, "b_expected": w.expected_version,
                **_facts.step_params(w.event),
            })
        if self.dialect == "postgresql":
            self._pg_commit(ordered, case_rows, event_rows, within)
            return
        with self._dbapi() as cur:
            conn = cur.connection
            # As on Core: queue for the write lock up front (see __init__).
            cur.execute("BEGIN IMMEDIATE")
            # An event's stay_us is read from its case row as its write left it: two
            # writes of one case insert each event right after its own write.
            interleave = len(ordered) > 1 and len({w.case.id for w in ordered}) < len(ordered)
            try:
                for w, row, event_row in zip(ordered, case_rows, event_rows, strict=True):
                    if w.expected_version == 0:
                        cur.execute(hot.insert_case, row)
                    elif not self._hot_update(cur, w, row):
                        raise _Conflict(w.case.id, w.expected_version)
                    if interleave:
                        cur.execute(hot.insert_event, event_row)
                if interleave:
                    pass  # inserted above
                elif len(event_rows) == 1:
                    cur.execute(hot.insert_event, event_rows[0])
                else:
                    cur.executemany(hot.insert_event, event_rows)
                if within is not None:
                    within(cur.execute)
                conn.commit()
            except BaseException:
                with suppress(self._driver_error):
                    conn.rollback()
                raise

    def _pg_commit(self, ordered: Sequence[Write], case_rows: list[dict[str, Any]],
                   event_rows: list[dict[str, Any]],
                   within: Callable[[Callable[..., Any]], None] | None) -> None:
        """commit on PostgreSQL: each write is one statement (`_Hot.step`).

        A single write with nothing ``within`` runs in autocommit, the statement
        its own transaction: the whole step is one round trip. Otherwise the
        statements, then ``within``, run in one transaction (a single write's
        ``BEGIN`` and statement pipelined in one round trip).
        """
        hot = self._hot
        assert hot is not None
        # The vault's rows, when ``within`` offers them to be folded in (`_vault_ctes`).
        folded = None
        if within is not None and len(ordered) == 1:
            fold = getattr(within, "fold", None)
            folded = fold() if fold is not None else None
        single = (within is None or folded is not None) and len(ordered) == 1
        with self._dbapi(autocommit=single) as cur:
            if single:
                w = ordered[0]
                if folded is None:
                    stmt, params = (hot.open_step if w.expected_version == 0 else hot.step,
                                    case_rows[0] | event_rows[0])
                else:
                    assert hot.vault_step is not None
                    new_keys, new_values = folded
                    stmt = hot.vault_step(w.expected_version == 0, len(new_keys),
                                          len(new_values))
                    params = case_rows[0] | event_rows[0]
                    for prefix, found, cols in (("k", new_keys, self.VAULT_KEY),
                                                ("v", new_values, self.VAULT_VALUE)):
                        for i, row in enumerate(found):
                            for col, value in zip(cols, row, strict=True):
                                params[f"{prefix}{i}_{col}"] = value
                try:
                    cur.execute(stmt, params)
                except self._driver_error as exc:
                    if folded is not None and _sqlstate_of(exc) == "23502" and getattr(
                            getattr(exc, "diag", None), "table_name",
                            None) == self.pii_values.name:
                        # A ciphertext's subject key is no longer the one it was sealed
                        # under (erased, restricted, replaced or taken meanwhile): the
                        # statement failed whole, nothing is written.
                        within.refused()  # type: ignore[union-attr]
                        raise _Conflict(w.case.id, w.expected_version) from None
                    raise
                if cur.rowcount != 1:
                    # The compare-and-set matched no row, so nothing was inserted either.
                    raise _Conflict(w.case.id, w.expected_version)
                return
            conn = cur.connection
            try:
                for w, case_row, event_row in zip(ordered, case_rows, event_rows, strict=True):
                    stmt = hot.open_step if w.expected_version == 0 else hot.step
                    if len(ordered) == 1:
                        # BEGIN and the step's statement in one round trip (pipeline
                        # mode); ``within`` then runs in the open transaction.
                        with conn.pipeline():
                            cur.execute(stmt, case_row | event_row)
                    else:
                        cur.execute(stmt, case_row | event_row)
                    if cur.rowcount != 1:
                        raise _Conflict(w.case.id, w.expected_version)
                if within is not None:
                    within(cur.execute)
                conn.commit()
            except BaseException:
                with suppress(self._driver_error):
                    conn.rollback()
                raise

    def _hot_update(self, cur: Any, w: Write, row: dict[str, Any]) -> bool:
        """`_update_case` on a SQLite cursor: the statement that names the fewest
        indexed columns first (SQLite rewrites every index whose column is in the
        SET list, changed or not): for a step that did not move the case, the
        light one; for one that did, the one that sets the state and deadline
        only; the full statement if the case's workflow, version, grid or
        opening time changed (then the narrower ones match no row)."""
        hot = self._hot
        assert hot is not None
        source, dest = w.event.source, w.event.dest
        params = {
            "b_id": row["id"], "b_expected": row["b_expected"],
            "b_workflow": row["workflow"], "b_workflow_version": row["workflow_version"],
            "b_grid": row["grid"], "b_opened_at": row["opened_at"],
            "version": row["version"], "data": row["data"],
            "updated_at": row["updated_at"], "links": row["links"], "head": row["head"],
        }
        params.update((name, row[name]) for name in _FACT_PARAMS)
        if dest is None or dest == source:
            params["b_state"] = row["state"]
            params["b_deadline_at"] = row["deadline_at"]
            cur.execute(hot.update_case_light, params)
            if cur.rowcount == 1:
                return True
            del params["b_state"], params["b_deadline_at"]
        params["state"] = row["state"]
        params["deadline_at"] = row["deadline_at"]
        cur.execute(hot.update_case_moved, params)
        if cur.rowcount == 1:
            return True
        cur.execute(hot.update_case, row)
        return bool(cur.rowcount == 1)

    def _blame(self, writes: Sequence[Write]) -> tuple[str, int]:
        """The write a unique violation is most likely about, for the error message."""
        for w in writes:
            stored = self._version_of(w.case.id)
            if (stored or 0) != w.expected_version:
                return w.case.id, w.expected_version
        for w in writes:
            key = w.event.idempotency_key
            if key is not None and self.event_by_key(key) is not None:
                return w.case.id, w.expected_version
        return writes[0].case.id, writes[0].expected_version

    def _version_of(self, case_id: str) -> int | None:
        with self._failures(f"reading case {case_id!r}"), self._reader.connect() as conn:
            found = conn.execute(self._q_version, {"cid": case_id}).scalar()
        return None if found is None else int(found)

    # -- queries ------------------------------------------------------------------

    def _where_clause(
        self, workflow: str | None, state: str | Sequence[str] | None,
        grid: str | Sequence[str] | None, opened_from: datetime | None,
        opened_until: datetime | None, overdue_at: datetime | None,
    ) -> list[sa.ColumnElement[bool]]:
        c = self.cases.c
        where: list[sa.ColumnElement[bool]] = []
        if workflow is not None:
            where.append(c.workflow == workflow)
        if state is not None:
            where.append(c.state == state if isinstance(state, str) else c.state.in_(state))
        if grid is not None:
            where.append(c.grid == grid if isinstance(grid, str) else c.grid.in_(grid))
        if opened_from is not None:
            where.append(c.opened_at >= opened_from)
        if opened_until is not None:
            where.append(c.opened_at < opened_until)
        if overdue_at is not None:
            where.append(c.deadline_at <= overdue_at)
        return where

    def query(
        self,
        *,
        workflow: str | None = None,
        state: str | Sequence[str] | None = None,
        grid: str | Sequence[str] | None = None,
        opened_from: datetime | None = None,
        opened_until: datetime | None = None,
        overdue_at: datetime | None = None,
        after: str | None = None,
        limit: int = 100,
    ) -> Page:
        """Cases matching every given filter, ordered by ``(opened_at, id)``, one
        page at a time (keyset pagination: pass ``page.next`` back as ``after``).

        ``opened_from`` is inclusive, ``opened_until`` exclusive; ``overdue_at``
        keeps cases whose ``deadline_at`` is at or before it.

        Example:
            >>> import os, tempfile, gridflow
            >>> store = gridflow.SQLStore("sqlite:///" + os.path.join(tempfile.mkdtemp(), "x.db"))
            >>> store.create_schema()
            >>> store.query(state=["reported", "triaged"], limit=10)
            Page(items=[], next=None)
        """
        check_query(workflow, state, grid, opened_from, opened_until, overdue_at, after, limit)
        self._ready()
        c = self.cases.c
        where = self._where_clause(workflow, state, grid, opened_from, opened_until, overdue_at)
        if after is not None:
            at, last_id = parse_cursor(after)
            where.append(sa.tuple_(c.opened_at, c.id) > sa.tuple_(
                sa.literal(at, UTCDateTime()), sa.literal(last_id, _ID)))
        limit = max(limit, 0)
        stmt = (sa.select(*self._row_columns).where(*where).order_by(c.opened_at, c.id)
                .limit(min(limit, _MAX_ROWS) + 1))
        with self._failures("query"), self._reader.connect() as conn:
            rows = conn.execute(stmt).all()
        items = [self._case(r) for r in rows[:limit]]
        nxt = cursor(items[-1]) if len(rows) > limit and items else None
        return Page(items, nxt)

    def counts(
        self, by: Sequence[str] = ("state",), *, workflow: str | None = None
    ) -> dict[tuple[Any, ...], int]:
        """Number of cases per group; ``by`` names columns: ``state``, ``grid``,
        ``workflow``, ``workflow_version``.

        Example:
            >>> import os, tempfile, gridflow
            >>> store = gridflow.SQLStore("sqlite:///" + os.path.join(tempfile.mkdtemp(), "x.db"))
            >>> store.create_schema()
            >>> store.counts(("grid", "state"))
            {}
        """
        check_count_columns(by)
        self._ready()
        cols = [self.cases.c[name] for name in by]
        stmt = sa.select(*cols, sa.func.count()).select_from(self.cases).group_by(*cols)
        if workflow is not None:
            stmt = stmt.where(self.cases.c.workflow == workflow)
        with self._failures("counts"), self._reader.connect() as conn:
            rows = conn.execute(stmt).all()
        return {tuple(r[:-1]): int(r[-1]) for r in rows if r[-1]}

    def fingerprints(self) -> set[tuple[str, int, str]]:
        """Every ``(workflow, version, fingerprint)`` recorded in the stored events
        (the ``open`` and ``migrate`` events that carry one). One scan of the
        events table.

        Example:
            >>> import os, tempfile, gridflow
            >>> store = gridflow.SQLStore("sqlite:///" + os.path.join(tempfile.mkdtemp(), "x.db"))
            >>> store.create_schema()
            >>> store.fingerprints()
            set()
        """
        self._ready()
        e = self.events_table.c
        fp = e.payload["fingerprint"].as_string()
        stmt = (sa.select(e.changes["workflow"].as_string(),
                          e.changes["workflow_version"].as_integer(), fp)
                .where(e.trigger.in_(("open", "migrate")), fp.is_not(None)).distinct())
        with self._failures("reading the recorded fingerprints"), \
                self._reader.connect() as conn:
            rows = conn.execute(stmt).all()
        return {(r[0], int(r[1]), r[2]) for r in rows if r[0] is not None and r[1] is not None}

    def retired(self) -> set[tuple[str, int]]:
        """The ``(workflow, version)`` pairs marked retired (`Engine.retire`), kept
        in ``gridflow_meta`` under keys ``retired:<workflow>@<version>``.

        Example:
            >>> import os, tempfile, gridflow
            >>> store = gridflow.SQLStore("sqlite:///" + os.path.join(tempfile.mkdtemp(), "x.db"))
            >>> store.create_schema()
            >>> store.retired()
            set()
        """
        self._ready()
        m = self._meta.c
        stmt = sa.select(m.key).where(m.key.startswith("retired:", autoescape=True))
        with self._failures("reading the retired versions"), self._reader.connect() as conn:
            keys = conn.execute(stmt).scalars().all()
        out: set[tuple[str, int]] = set()
        for key in keys:
            name, _, version = key[len("retired:"):].rpartition("@")
            if name and version.isdigit():
                out.add((name, int(version)))
        return out

    def set_retired(self, workflow: str, version: int, retired: bool = True) -> None:
        """Mark ``workflow@version`` retired (or not): no new case opens on it.

        Example:
            >>> import os, tempfile, gridflow
            >>> store = gridflow.SQLStore("sqlite:///" + os.path.join(tempfile.mkdtemp(), "x.db"))
            >>> store.create_schema()
            >>> store.set_retired("grid_case", 1); store.retired()
            {('grid_case', 1)}
        """
        check_retired(workflow, version, retired)
        self._refuse_write("set_retired")
        self._ready()
        key = f"retired:{workflow}@{version}"
        m = self._meta
        with self._failures("marking a version retired"), self._writer.begin() as conn:
            conn.execute(sa.delete(m).where(m.c.key == key))
            if retired:
                conn.execute(sa.insert(m).values(key=key, value="true"))

    def claim_due(self, now: datetime, limit: int = 100, *, lease: float = 60.0) -> list[Case]:
        """Overdue cases (``deadline_at <= now``), oldest deadline first, each handed
        to one caller only: a claimed case is not handed out again for ``lease``
        seconds, or until it is written again.

        PostgreSQL locks the claimed rows with ``FOR UPDATE SKIP LOCKED``, so
        concurrent workers take disjoint sets without waiting on each other;
        SQLite serializes claims with ``BEGIN IMMEDIATE``.

        Example:
            >>> import os, tempfile, gridflow
            >>> from datetime import datetime, UTC
            >>> store = gridflow.SQLStore("sqlite:///" + os.path.join(tempfile.mkdtemp(), "x.db"))
            >>> store.create_schema()
            >>> store.claim_due(datetime(2026, 1, 5, tzinfo=UTC), limit=10)
            []
        """
        check_claim(now, limit, lease)
        self._refuse_write("claim_due")
        self._ready()
        if limit <= 0:
            return []
        c = self.cases.c
        until = now + timedelta(seconds=lease)
        stmt = (
            sa.select(*self._row_columns)
            .where(c.deadline_at <= now,
                   sa.or_(c.claimed_until.is_(None), c.claimed_until <= now))
            .order_by(c.deadline_at, c.id)
            .limit(limit)
        )
        if self.dialect == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        with self._failures("claim_due"), self._writer.begin() as conn:
            rows = conn.execute(stmt).all()
            if rows:
                conn.execute(sa.update(self.cases)
                             .where(c.id.in_([r.id for r in rows]))
                             .values(claimed_until=until))
        return [self._case(r) for r in rows]


class _Conflict(Exception):
    """Internal: a compare-and-set found another version (rolls the transaction back)."""

    def __init__(self, case_id: str, expected: int) -> None:
        super().__init__(case_id, expected)
        self.case_id = case_id
        self.expected = expected


def _add_column(conn: Connection, table: sa.Table, column: sa.Column[Any]) -> None:
    ddl = column.type.compile(dialect=conn.dialect)
    name = conn.dialect.identifier_preparer.format_table(table)
    conn.execute(sa.text(f"ALTER TABLE {name} ADD COLUMN {column.name} {ddl}"))


def _upgrade_1_to_2(conn: Connection, store: SQLStore) -> None:
    """Schema 1 (gridflow 0.1) to 2: events record their changes.

    0.1 events do not say what their steps changed in the row, so the row
    cannot be recomputed from them. Each case gets one ``upgrade`` event,
    actor ``system``, whose changes state the whole row as it is at the
    upgrade (data, deadline, links, workflow, version, grid); from there on
    `Engine.verify` recomputes the row from the events. The 0.1 events keep
    their hashes (a chain without changes); verify checks their chain and
    their states only.
    """
    events = store.events_table
    _add_column(conn, events, events.c.changes)
    _add_column(conn, events, events.c.digests)
    now = datetime.now(UTC)
    system = Actor.system()
    cases = store.cases
    # The columns of schema 1 (the later ones are added by the later upgrades).
    for row in conn.execute(sa.select(*store._row_columns)).all():
        case = SQLStore._case(row)
        changes = Changes(dict(case.data), (), case.deadline_at, tuple(case.links),
                          case.workflow_version, case.workflow, case.grid)
        payload = {"from_schema": 1, "to_schema": 2,
                   "reason": "gridflow 0.2 records each step's changes; this event states the "
                             "case row as it was at the upgrade"}
        event = Event.create(case.id, case.version + 1, "upgrade", case.state, None, system,
                             now, payload, None, case.head, changes)
        conn.execute(sa.insert(events), [SQLStore._event_params(event)])
        conn.execute(sa.update(cases).where(cases.c.id == case.id).values(
            version=event.seq, updated_at=now, head=event.hash))


def _pii_tables(metadata: sa.MetaData) -> tuple[sa.Table, sa.Table]:
    """The personal-data vault (`gridflow._sealing.SQLVault`): keys and ciphertexts."""
    keys = sa.Table(
        "gridflow_pii_keys", metadata,
        sa.Column("subject", sa.String(128), primary_key=True),
        sa.Column("key_id", sa.String(), nullable=False),
        # The subject key wrapped by the master key (AES key wrap): 40 bytes.
        sa.Column("wrapped", sa.LargeBinary(), nullable=False),
        # "active" or "restricted" (PIPL art. 47(2)).
        sa.Column("state", sa.String(16), nullable=False),
    )
    values = sa.Table(
        "gridflow_pii_values", metadata,
        sa.Column("ref_id", sa.String(32), primary_key=True),
        sa.Column("subject", sa.String(128), nullable=False),
        sa.Column("case_id", _ID, nullable=False),
        sa.Column("path", sa.String(), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Index("ix_gridflow_pii_values_subject", "subject", "case_id"),
    )
    return keys, values


def _upgrade_2_to_3(conn: Connection, store: SQLStore) -> None:
    """Schema 2 to 3: the personal-data vault (``gridflow_pii_keys``, ``gridflow_pii_values``).

    create_schema has already created the two new tables (``create_all``);
    nothing stored changes: cases written before hold their values as they
    were written (in plaintext), until they are erased or rewritten.
    """
    for table in (store.pii_keys, store.pii_values):
        table.create(conn, checkfirst=True)


def _upgrade_4_to_5(conn: Connection, store: SQLStore) -> None:
    """Schema 4 to 5: the facts the figures read (`gridflow._facts`).

    Adds the fact columns of the case rows, ``stay_us`` of the events and
    ``district`` of both, and fills them with `gridflow._facts.derive` and
    `gridflow._facts.opening_district` of each case's stored events (the same
    fold the writes keep up to date and verification checks), so the figures of
    cases written before the upgrade are those of before it. Reads the cases in
    pages of 2,000 by id.
    """
    cases, events = store.cases, store.events_table
    for name in _facts.NAMES:
        _add_column(conn, cases, cases.c[name])
    _add_column(conn, events, events.c.stay_us)
    for table in (cases, events):
        name = conn.dialect.identifier_preparer.format_table(table)
        conn.execute(sa.text(f"ALTER TABLE {name} ADD COLUMN district VARCHAR NOT NULL "
                             "DEFAULT ''"))
    _fill_facts(conn, store, None)


def _fill_facts(conn: Connection, store: SQLStore, case_ids: Sequence[str] | None) -> int:
    """Set the facts of the cases ``case_ids`` (every case: ``None``) to
    `gridflow._facts.derive` of their stored events; returns how many cases."""
    cases, events = store.cases, store.events_table
    set_facts = (sa.update(cases).where(cases.c.id == sa.bindparam("b_id"))
                 .values({name: sa.bindparam(f"v_{name}")
                          for name in (*_facts.NAMES, "district")}))
    set_districts = (sa.update(events).where(events.c.case_id.in_(sa.bindparam("b_ids",
                                                                                expanding=True)))
                     .values(district=sa.select(cases.c.district)
                             .where(cases.c.id == events.c.case_id).scalar_subquery()))
    set_stay = (sa.update(events)
                .where(events.c.case_id == sa.bindparam("b_case"),
                       events.c.seq == sa.bindparam("b_seq"))
                .values(stay_us=sa.bindparam("v_stay")))
    after = ""
    wanted = None if case_ids is None else sorted(set(case_ids))
    done = 0
    while True:
        if wanted is None:
            ids = list(conn.execute(sa.select(cases.c.id).where(cases.c.id > after)
                                    .order_by(cases.c.id).limit(2_000)).scalars())
            if not ids:
                return done
            after = ids[-1]
        else:
            if not wanted:
                return done
            ids, wanted = wanted[:2_000], wanted[2_000:]
            ids = list(conn.execute(sa.select(cases.c.id).where(cases.c.id.in_(ids))
                                    .order_by(cases.c.id)).scalars())
            if not ids:
                continue  # a page of ids no case has: the next page may hold some
        done += len(ids)
        history: dict[str, list[Event]] = {cid: [] for cid in ids}
        stored: dict[str, list[Any]] = {cid: [] for cid in ids}
        rows = conn.execute(sa.select(events).where(events.c.case_id.in_(ids))
                            .order_by(events.c.case_id, events.c.seq))
        for row in rows:
            history[row.case_id].append(SQLStore._event(row))
            stored[row.case_id].append(row.stay_us)
        fact_rows: list[dict[str, Any]] = []
        stay_rows: list[dict[str, Any]] = []
        for cid, found in history.items():
            facts, stays = _facts.derive(found)
            district = _facts.opening_district(found[0]) if found else ""
            fact_rows.append({"b_id": cid, "v_district": district,
                              **{f"v_{k}": v for k, v in facts.items()}})
            # Every stay that differs, a NULL one too: a repair also clears a length
            # set on an event that ends no stay.
            stay_rows.extend({"b_case": cid, "b_seq": e.seq, "v_stay": stay}
                             for e, stay, was in zip(found, stays, stored[cid], strict=True)
                             if stay != was)
        conn.execute(set_facts, fact_rows)
        if stay_rows:
            conn.execute(set_stay, stay_rows)
        conn.execute(set_districts, {"b_ids": ids})


#: Schema migrations: ``_MIGRATIONS[v](conn, store)`` upgrades version v to v + 1,
#: inside create_schema's transaction (with the tables of *this* version already
#: created where missing).
_MIGRATIONS: dict[int, Callable[[Connection, SQLStore], None]] = {
    1: _upgrade_1_to_2, 2: _upgrade_2_to_3, 3: _log.upgrade_3_to_4, 4: _upgrade_4_to_5}


if TYPE_CHECKING:

    def _satisfies_the_protocol(store: SQLStore) -> Store:
        # mypy checks here that SQLStore implements every Store method.
        return store
