"""A FastAPI service that embeds gridflow on `AsyncEngine`: open cases, fire
triggers, read history, list overdue cases — with an HTTP contract a client can
rely on.

gridflow keeps the rules, the state and the history; the service keeps HTTP,
authentication and its own UI. Run it with::

    pip install "gridflow[async]" fastapi uvicorn
    GRIDFLOW_DB=sqlite:///cases.db uvicorn app:app --app-dir examples/fastapi_app
    # or GRIDFLOW_DB=postgresql+psycopg://user@host/db
    # (and GRIDFLOW_DB_SCHEMA=name to keep the tables in a schema of their own)

Who acts comes from request headers: ``X-Actor-Id``, ``X-Actor-Roles`` and
``X-Actor-Grids`` (comma-separated; percent-encode non-ASCII names, e.g.
``%E7%AC%AC...``, since HTTP headers are Latin-1; ``*`` is the street level).
In a real deployment an authenticating gateway sets them; never trust them from
the open internet.

Endpoints:

=========================================== ==========================================
``POST /cases``                              open a case (201, ``ETag``, ``Location``)
``GET /cases/{id}``                          the case (``ETag``; ``If-None-Match`` → 304)
``POST /cases/{id}/triggers/{trigger}``      fire a trigger; ``If-Match`` makes it
                                             conditional, ``Idempotency-Key`` makes a
                                             retry safe
``GET /cases/{id}/history``                  every event, oldest first
``GET /cases/{id}/allowed``                  triggers the actor may fire now
``GET /overdue``                             cases past their deadline (in the actor's grids)
=========================================== ==========================================

Conditional requests (RFC 9110 §13): a case's ``ETag`` is the strong tag
``"<version>"``. ``If-Match`` takes ``*`` or a list of tags compared strongly
(a weak ``W/"3"`` never matches); no match is **412 Precondition Failed**, as is
a step that loses the race after the check; a header that is not a list of
entity-tags is **400**. ``expected_version`` in the body (a number) still works
and answers 409 when stale.

Errors are ``application/problem+json`` (RFC 9457) with a ``type`` URI per kind
of problem (``tag:gridflow.readthedocs.io,2026:problem/<kind>``), a ``title``
(the kind), the ``status``, a ``detail`` in HTTP terms (headers, not Python
arguments), and the structured members a client can act on (``case_id``,
``state``, ``trigger``, ``allowed``, ``guard``, ``reason``, ``missing``,
``expected``, ``actual``): 400 a malformed header, 401 no actor, 403 a role
refusal (or opening in a grid outside the actor's), 404 no such case (or one
outside the actor's grids: the two look the same), 409 a stale
``expected_version`` or a reused idempotency key, 412 a failed ``If-Match``,
422 a refused step or an invalid body — nothing is stored then —, 503 the
database is unavailable. Every code and body is in the OpenAPI schema, and the
request schema of ``POST /cases`` names each workflow's opening fields.
"""


import os
import re
from collections.abc import Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal, TypeVar, Union
from urllib.parse import unquote

from fastapi import Depends, FastAPI, Header, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, create_model
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

import gridflow

DB_ENV = "GRIDFLOW_DB"
SCHEMA_ENV = "GRIDFLOW_DB_SCHEMA"
#: ``sync``: run a sync `Engine` in the thread pool instead of `AsyncEngine`.
ENGINE_ENV = "GRIDFLOW_API_ENGINE"
DEFAULT_DB = "sqlite:///gridflow-api.db"
PROBLEM = "application/problem+json"
TYPE_PREFIX = "tag:gridflow.readthedocs.io,2026:problem/"

#: gridflow error -> HTTP status; the first matching class wins (subclasses first).
STATUS: tuple[tuple[type[gridflow.GridflowError], int], ...] = (
    (gridflow.CaseNotFound, 404),
    (gridflow.ConcurrencyError, 409),
    (gridflow.IdempotencyConflict, 409),
    (gridflow.PermissionDenied, 403),
    (gridflow.InvalidTransition, 422),
    (gridflow.GuardRejected, 422),
    (gridflow.InvalidPayload, 422),  # MissingPayload is one
    (gridflow.UnknownWorkflow, 422),
    (gridflow.InvalidArgument, 422),
    (gridflow.StoreError, 503),
)

T = TypeVar("T")


class Problem(BaseModel):
    """An RFC 9457 problem details object (``application/problem+json``)."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str


class CaseOut(BaseModel):
    """A case as the API returns it."""

    id: str
    workflow: str
    workflow_version: int
    state: str
    version: int
    grid: str | None
    data: dict[str, Any]
    links: list[str]
    opened_at: str
    updated_at: str
    deadline_at: str | None


class EventOut(BaseModel):
    """One event of a case's history."""

    seq: int
    trigger: str
    source: str | None
    dest: str | None
    actor: dict[str, Any]
    at: str
    payload: dict[str, Any]
    hash: str


class Fire(BaseModel):
    """Body of ``POST /cases/{id}/triggers/{trigger}``."""

    payload: dict[str, Any] = Field(default_factory=dict)
    expected_version: int | None = Field(default=None, ge=0)


def _problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": Problem, "content": {PROBLEM: {}}} for code in codes}


def case_json(case: gridflow.Case) -> dict[str, Any]:
    return {
        "id": case.id, "workflow": case.workflow, "workflow_version": case.workflow_version,
        "state": case.state, "version": case.version, "grid": case.grid, "data": case.data,
        "links": list(case.links), "opened_at": case.opened_at.isoformat(),
        "updated_at": case.updated_at.isoformat(),
        "deadline_at": case.deadline_at.isoformat() if case.deadline_at else None,
    }


def event_json(event: gridflow.Event) -> dict[str, Any]:
    return {
        "seq": event.seq, "trigger": event.trigger, "source": event.source,
        "dest": event.dest, "actor": event.actor.to_json(), "at": event.at.isoformat(),
        "payload": event.payload, "hash": event.hash,
    }


# -- problems ------------------------------------------------------------------------------


class HTTPProblem(Exception):
    """A problem the HTTP layer itself finds (a bad header, no actor, a failed If-Match)."""

    def __init__(self, status: int, kind: str, detail: str, **members: Any) -> None:
        self.status, self.kind, self.detail, self.members = status, kind, detail, members


def _problem(status: int, kind: str, detail: str, **members: Any) -> JSONResponse:
    body = {"type": TYPE_PREFIX + re.sub(r"(?<!^)(?=[A-Z])", "-", kind).lower(),
            "title": kind, "status": status, "detail": detail,
            **{k: v for k, v in members.items() if v is not None}}
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


def _detail(exc: gridflow.GridflowError) -> str:
    """What went wrong, in HTTP terms: the engine's messages name Python arguments
    (``expected_version``, ``grids=gridflow.ALL_GRIDS``) where they help a caller
    of the library; a client of this API sends headers instead."""
    if isinstance(exc, gridflow.CaseNotFound):
        # The same words whether the case is missing or in another grid.
        return f"case {exc.case_id!r} does not exist or is outside your grids"
    if isinstance(exc, gridflow.ConcurrencyError):
        now = "" if exc.actual is None else f" (it is now at version {exc.actual})"
        return (f"case {exc.case_id!r} is no longer at version {exc.expected}{now}; "
                "GET it again and retry with its current version")
    if isinstance(exc, gridflow.IdempotencyConflict):
        return ("this Idempotency-Key was already used for another step; send a new key "
                "for a new step")
    if isinstance(exc, gridflow.PermissionDenied):
        text = str(exc).split(". An actor with no grids", 1)[0]
        if "(none)" in text:
            text += "; send X-Actor-Grids with the actor's grids (* for the street level)"
        return text
    if isinstance(exc, gridflow.StoreError):
        return "the case database is unavailable; retry later"
    return str(exc)


def _members(exc: gridflow.GridflowError) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name in ("case_id", "state", "trigger", "allowed", "guard", "reason", "missing",
                 "expected", "actual"):
        value = getattr(exc, name, None)
        if value is not None:
            found[name] = list(value) if isinstance(value, tuple | frozenset) else value
    return found


# -- who acts, and conditions --------------------------------------------------------------


def _names(header: str | None) -> list[str]:
    return [unquote(part.strip()) for part in (header or "").split(",") if part.strip()]


def actor(
    x_actor_id: Annotated[str | None, Header()] = None,
    x_actor_roles: Annotated[str | None, Header()] = None,
    x_actor_grids: Annotated[str | None, Header()] = None,
) -> gridflow.Actor:
    """The acting person, from the ``X-Actor-*`` headers."""
    if not x_actor_id or not x_actor_id.strip():
        raise HTTPProblem(401, "NoActor", "say who acts: send the X-Actor-Id header (and "
                                          "X-Actor-Roles, X-Actor-Grids)")
    # "X-Actor-Grids: *" is the street level; no header, no grid: no case at all.
    grids: Any = (gridflow.ALL_GRIDS if unquote(x_actor_grids or "").strip() == "*"
                  else _names(x_actor_grids))
    try:
        return gridflow.Actor(unquote(x_actor_id).strip(), _names(x_actor_roles), grids)
    except gridflow.InvalidArgument as exc:
        raise HTTPProblem(400, "InvalidActor", f"the X-Actor-* headers do not name a valid "
                                               f"actor: {exc}") from None


#: One entity-tag of RFC 9110 §8.8.3: optional W/, then a quoted string of etagc.
_ETAG = re.compile(r'\s*(W/)?"([\x21\x23-\x7e\x80-\xff]*)"\s*')


def if_match_tags(header: str | None) -> list[str] | None:
    """``If-Match`` as the strong tags it lists (``["*"]`` for any; ``None``:
    absent). A weak tag is kept as ``W/...`` so that it never matches; anything
    that is not a comma-separated list of entity-tags is a 400."""
    if header is None:
        return None
    if header.strip() == "*":
        return ["*"]
    tags, rest = [], header
    while True:
        found = _ETAG.match(rest)
        if found is None:
            raise HTTPProblem(400, "MalformedIfMatch",
                              'If-Match must be * or a comma-separated list of entity-tags '
                              'such as "3"')
        tags.append(("W/" if found.group(1) else "") + found.group(2))
        rest = rest[found.end():]
        if not rest:
            return tags
        if not rest.startswith(","):
            raise HTTPProblem(400, "MalformedIfMatch",
                              'If-Match must be * or a comma-separated list of entity-tags '
                              'such as "3"')
        rest = rest[1:]


def _etag(case: gridflow.Case) -> str:
    return f'"{case.version}"'


def _tagged(case: gridflow.Case, status: int = 200) -> JSONResponse:
    # Vary: what a request sees depends on who asks (scope, and masking of personal data).
    return JSONResponse(case_json(case), status_code=status,
                        headers={"ETag": _etag(case),
                                 "Vary": "X-Actor-Id, X-Actor-Roles, X-Actor-Grids"})


# -- the engine: async, or a sync one in the thread pool -----------------------------------


class Calls:
    """The app's engine behind one interface: `AsyncEngine` awaited directly, a sync
    `Engine` run in Starlette's thread pool (the two are compared by
    benchmarks/http_load.py)."""

    def __init__(self, engine: gridflow.AsyncEngine | gridflow.Engine) -> None:
        self.engine = engine

    async def __call__(self, method: str, *args: Any, **kwargs: Any) -> Any:
        found = getattr(self.engine, method)
        if isinstance(self.engine, gridflow.AsyncEngine):
            return await found(*args, **kwargs)
        return await run_in_threadpool(found, *args, **kwargs)

    async def store(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if isinstance(self.engine, gridflow.AsyncEngine):
            return await self.engine.run(fn, *args, **kwargs)
        return await run_in_threadpool(fn, *args, **kwargs)


def get_calls(request: Request) -> Calls:
    """The app's engine (set by `create_app` or at start-up)."""
    found: Calls = request.app.state.calls
    return found


Engine = Annotated[Calls, Depends(get_calls)]
#: ``Idempotency-Key``: the same key again returns the stored result.
IdempotencyKey = Annotated[str | None, Header(min_length=1, max_length=200)]
Who = Annotated[gridflow.Actor, Depends(actor)]


def _open_models(engine: gridflow.AsyncEngine | gridflow.Engine) -> Any:
    """``POST /cases``'s body: one model per workflow, each naming its opening fields."""
    models = []
    sync = engine.sync if isinstance(engine, gridflow.AsyncEngine) else engine
    for spec in sorted(sync.workflows, key=lambda s: (s.name, s.version)):
        if any(m.__name__ == f"Open_{spec.name}" for m in models):
            continue  # one schema per workflow name (its latest version opens)
        required = {name: (Any, ...) for name in spec.open_requires}
        data = create_model(f"OpenData_{spec.name}", __config__=ConfigDict(extra="allow"),
                            **required)  # type: ignore[call-overload]
        models.append(create_model(
            f"Open_{spec.name}", __doc__=f"Open a {spec.name!r} case "
                                         f"({spec.labels.get('en', spec.name)}).",
            workflow=(Literal[spec.name], spec.name),  # type: ignore[valid-type]
            grid=(str | None, None), data=(data, ...),
            links=(list[str], Field(default_factory=list))))
    if len(models) == 1:
        return models[0]

    def which(value: Any) -> Any:
        # No "workflow" in the body means grid_case, as in gridflow 0.1's API.
        if isinstance(value, dict):
            return value.get("workflow", "grid_case")
        return getattr(value, "workflow", None)

    tagged = tuple(Annotated[m, Tag(m.__name__.removeprefix("Open_"))] for m in models)
    return Annotated[Union[tagged], Discriminator(which)]  # noqa: UP007


def create_app(engine: gridflow.AsyncEngine | gridflow.Engine | None = None, *,
               db_url: str | None = None) -> FastAPI:
    """The service. With no ``engine``, an `AsyncEngine` on an `AsyncSQLStore` is
    built at start-up on ``db_url`` (default: the ``GRIDFLOW_DB`` environment
    variable, else a SQLite file). A sync `Engine` works too (in the thread pool)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        if engine is not None:
            yield
            return
        url = db_url or os.environ.get(DB_ENV) or DEFAULT_DB
        schema = os.environ.get(SCHEMA_ENV) or None
        if os.environ.get(ENGINE_ENV) == "sync":
            # The sync Engine in Starlette's thread pool (benchmarks/http_load.py
            # compares the two).
            sync_store = gridflow.SQLStore(url, schema=schema)
            sync_store.create_schema()
            app.state.calls = Calls(gridflow.Engine(sync_store))
            try:
                yield
            finally:
                sync_store.close()
            return
        store = gridflow.AsyncSQLStore(url, schema=schema)
        await store.prepare()
        app.state.calls = Calls(gridflow.AsyncEngine(store))
        try:
            yield
        finally:
            await app.state.calls.engine.drain()
            await store.aclose()

    app = FastAPI(title="gridflow cases", lifespan=lifespan)
    # The request schema needs the workflows: those of `engine`, or the built-ins.
    schema_engine = engine or gridflow.Engine(entry_points=False)
    OpenCase = _open_models(schema_engine)
    if engine is not None:
        app.state.calls = Calls(engine)

    @app.exception_handler(gridflow.GridflowError)
    async def gridflow_error(request: Request, exc: gridflow.GridflowError) -> JSONResponse:
        status = next((code for kind, code in STATUS if isinstance(exc, kind)), 500)
        if isinstance(exc, gridflow.ConcurrencyError) and request.headers.get("if-match"):
            status = 412  # the precondition failed at commit time (a lost race)
        return _problem(status, type(exc).__name__, _detail(exc), **_members(exc))

    @app.exception_handler(HTTPProblem)
    async def http_problem(request: Request, exc: HTTPProblem) -> JSONResponse:
        return _problem(exc.status, exc.kind, exc.detail, **exc.members)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"where": ".".join(str(p) for p in e.get("loc", ())), "what": e.get("msg")}
                  for e in exc.errors()]
        return _problem(422, "InvalidRequest", "the request does not match the API's schema",
                        errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Starlette's own answers (a body that is not JSON, an unknown route, a
        # method not allowed) as problems too.
        kind = {400: "BadRequest", 404: "NotFound", 405: "MethodNotAllowed"}.get(
            exc.status_code, "HTTPError")
        detail = exc.detail if isinstance(exc.detail, str) else "the request was refused"
        response = _problem(exc.status_code, kind, detail)
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        return response

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        return _problem(500, "InternalError", "the service failed; the step, if any, was not "
                                              "stored unless its case shows it")

    @app.post("/cases", status_code=201, response_model=CaseOut,
              responses=_problems(400, 401, 403, 404, 409, 422, 503))
    async def open_case(body: OpenCase, calls: Engine, who: Who,  # type: ignore[valid-type]
                        idempotency_key: IdempotencyKey = None
                        ) -> JSONResponse:
        case = await calls("open", body.workflow, actor=who,
                           data=body.data.model_dump(), grid=body.grid, links=body.links,
                           idempotency_key=idempotency_key)
        response = _tagged(case, 201)
        response.headers["Location"] = f"/cases/{case.id}"
        return response

    @app.get("/cases/{case_id}", response_model=CaseOut,
             responses={304: {"description": "Not Modified: the case is still at the "
                                              "version If-None-Match names"},
                        **_problems(400, 401, 404, 422, 503)})
    async def get_case(case_id: str, calls: Engine, who: Who,
                       if_none_match: Annotated[str | None, Header()] = None) -> Response:
        # Scoped: a case in another grid is a 404, exactly like a missing one.
        case = await calls("get", case_id, actor=who)
        if if_none_match is not None:
            tags = if_match_tags(if_none_match)  # the same syntax (weak tags match here)
            assert tags is not None
            if "*" in tags or str(case.version) in {t.removeprefix("W/") for t in tags}:
                return Response(status_code=304, headers={"ETag": _etag(case)})
        return _tagged(case)

    @app.post("/cases/{case_id}/triggers/{trigger}", response_model=CaseOut,
              responses=_problems(400, 401, 403, 404, 409, 412, 422, 503))
    async def fire(case_id: str, trigger: str, calls: Engine, who: Who,
                   body: Fire | None = None,
                   if_match: Annotated[str | None, Header()] = None,
                   idempotency_key: IdempotencyKey = None) -> JSONResponse:
        body = body or Fire()
        expected = body.expected_version
        tags = if_match_tags(if_match)
        if tags is not None and expected is None:
            current = await calls("get", case_id, actor=who)
            if "*" not in tags:
                if str(current.version) not in tags:
                    raise HTTPProblem(412, "PreconditionFailed",
                                      f"If-Match does not match case {case_id!r}: it is at "
                                      f"version {current.version} (ETag {_etag(current)})",
                                      case_id=case_id, actual=current.version)
                # The step lands only on the version matched: a race after this
                # check fails at commit time, also as 412.
                expected = current.version
        case = await calls("fire", case_id, trigger, actor=who, payload=body.payload,
                           expected_version=expected, idempotency_key=idempotency_key)
        return _tagged(case)

    @app.get("/cases/{case_id}/history", response_model=list[EventOut],
             responses=_problems(400, 401, 404, 422, 503))
    async def history(case_id: str, calls: Engine, who: Who) -> list[dict[str, Any]]:
        return [event_json(e) for e in await calls("history", case_id, actor=who)]

    @app.get("/cases/{case_id}/allowed", response_model=list[str],
             responses=_problems(400, 401, 404, 422, 503))
    async def allowed(case_id: str, calls: Engine, who: Who) -> list[str]:
        found: list[str] = await calls("allowed", case_id, who)
        return found

    @app.get("/overdue", response_model=list[CaseOut],
             responses=_problems(400, 401, 422, 503))
    async def overdue(calls: Engine, who: Who, response: Response,
                      limit: Annotated[int, Query(ge=1, le=500)] = 100,
                      after: str | None = None) -> list[dict[str, Any]]:
        store = calls.engine.store
        grid = None if who.grids is gridflow.ALL_GRIDS else sorted(who.grids)
        if grid == []:
            return []  # an actor with no grids sees no case
        page = await calls.store(store.query, overdue_at=calls.engine.clock.now(),
                                 after=after, limit=limit, grid=grid)
        if page.next is not None:
            response.headers["X-Next-After"] = page.next
        return [case_json(c) for c in page.items]

    return app


#: The app for ``uvicorn app:app`` (its engine is built at start-up).
app = create_app()
