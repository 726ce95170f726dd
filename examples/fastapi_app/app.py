"""A FastAPI service that embeds gridflow: open cases, fire triggers, read history,
list overdue cases.

gridflow keeps the rules, the state and the history; the service keeps HTTP,
authentication and its own UI. Run it with::

    pip install "gridflow[sql]" fastapi uvicorn
    GRIDFLOW_DB=sqlite:///cases.db uvicorn app:app --app-dir examples/fastapi_app
    # or GRIDFLOW_DB=postgresql+psycopg://user@host/db with gridflow[postgres]
    # (and GRIDFLOW_DB_SCHEMA=name to keep the tables in a schema of their own)

Who acts comes from request headers: ``X-Actor-Id``, ``X-Actor-Roles`` and
``X-Actor-Grids`` (comma-separated; percent-encode non-ASCII names, e.g.
``%E7%AC%AC...``, since HTTP headers are Latin-1). In a real deployment an
authenticating gateway sets them; never trust them from the open internet.

Endpoints:

=========================================== ==========================================
``POST /cases``                              open a case (201, ``ETag: "<version>"``)
``GET /cases/{id}``                          the case (``ETag``)
``POST /cases/{id}/triggers/{trigger}``      fire a trigger; ``If-Match: "<version>"``
                                             (or ``expected_version`` in the body) makes
                                             it conditional, ``Idempotency-Key`` makes a
                                             retry safe
``GET /cases/{id}/history``                  every event, oldest first
``GET /cases/{id}/allowed``                  triggers the actor may fire now
``GET /overdue``                             cases past their deadline (in the actor's grids)
=========================================== ==========================================

Errors are ``application/problem+json`` (RFC 9457): 404 no such case (or one
outside the actor's grids: the two look the same), 409 the
case changed meanwhile (stale ``If-Match``) or an idempotency key reused, 422
a refused step (a trigger not allowed in the state, a guard, a missing or
invalid payload field) — nothing is stored then —, 403 a role refusal (or
opening in a grid outside the actor's), 401 no actor.
"""

from __future__ import annotations

import os
from contextlib import asynccontextmanager
from typing import Annotated, Any
from urllib.parse import unquote

from fastapi import Depends, FastAPI, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

import gridflow

DB_ENV = "GRIDFLOW_DB"
SCHEMA_ENV = "GRIDFLOW_DB_SCHEMA"
DEFAULT_DB = "sqlite:///gridflow-api.db"

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
    (gridflow.StoreError, 503),
)


class OpenCase(BaseModel):
    """Body of ``POST /cases``."""

    workflow: str = "grid_case"
    grid: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    links: list[str] = Field(default_factory=list)


class Fire(BaseModel):
    """Body of ``POST /cases/{id}/triggers/{trigger}``."""

    payload: dict[str, Any] = Field(default_factory=dict)
    expected_version: int | None = None


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


def _names(header: str | None) -> list[str]:
    return [unquote(part.strip()) for part in (header or "").split(",") if part.strip()]


class NoActor(Exception):
    """The request did not say who acts."""


def actor(
    x_actor_id: Annotated[str | None, Header()] = None,
    x_actor_roles: Annotated[str | None, Header()] = None,
    x_actor_grids: Annotated[str | None, Header()] = None,
) -> gridflow.Actor:
    """The acting person, from the ``X-Actor-*`` headers."""
    if not x_actor_id:
        raise NoActor()
    # "X-Actor-Grids: *" is the street level; no header, no grid: no case at all.
    grids: Any = (gridflow.ALL_GRIDS if unquote(x_actor_grids or "").strip() == "*"
                  else _names(x_actor_grids))
    return gridflow.Actor(unquote(x_actor_id), _names(x_actor_roles), grids)


def _version(if_match: str | None) -> int | None:
    """``If-Match: "3"`` (or ``W/"3"`` or ``3``) -> 3."""
    if if_match is None or if_match.strip() == "*":
        return None
    text = if_match.strip().removeprefix("W/").strip('"')
    return int(text) if text.isdigit() else -1  # -1 never matches: 409, as HTTP wants


def _tagged(case: gridflow.Case, status: int = 200) -> JSONResponse:
    return JSONResponse(case_json(case), status_code=status,
                        headers={"ETag": f'"{case.version}"'})


def get_engine(request: Request) -> gridflow.Engine:
    """The app's engine (set by `create_app` or at start-up)."""
    found: gridflow.Engine = request.app.state.engine
    return found


# Module level, so FastAPI can resolve them from the (postponed) annotations.
Engine = Annotated[gridflow.Engine, Depends(get_engine)]
Who = Annotated[gridflow.Actor, Depends(actor)]


def create_app(engine: gridflow.Engine | None = None, *, db_url: str | None = None) -> FastAPI:
    """The service. With no ``engine``, one is built at start-up on ``db_url``
    (default: the ``GRIDFLOW_DB`` environment variable, else a SQLite file)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        if engine is not None:
            yield
            return
        # GRIDFLOW_DB_SCHEMA: a PostgreSQL schema to keep the tables in (optional).
        store = gridflow.SQLStore(db_url or os.environ.get(DB_ENV) or DEFAULT_DB,
                                  schema=os.environ.get(SCHEMA_ENV) or None)
        store.create_schema()
        app.state.engine = gridflow.Engine(store)
        try:
            yield
        finally:
            store.close()

    app = FastAPI(title="gridflow cases", lifespan=lifespan)
    if engine is not None:
        app.state.engine = engine

    @app.exception_handler(gridflow.GridflowError)
    def gridflow_error(request: Request, exc: gridflow.GridflowError) -> JSONResponse:
        status = next((code for kind, code in STATUS if isinstance(exc, kind)), 500)
        body: dict[str, Any] = {"type": "about:blank", "title": type(exc).__name__,
                                "status": status, "detail": str(exc)}
        # The structured parts a client can act on.
        for name in ("case_id", "state", "trigger", "allowed", "guard", "reason", "missing",
                     "expected", "actual"):
            value = getattr(exc, name, None)
            if value is not None:
                body[name] = value
        return JSONResponse(body, status_code=status, media_type="application/problem+json")

    @app.exception_handler(NoActor)
    def no_actor(request: Request, exc: NoActor) -> JSONResponse:
        return JSONResponse({"type": "about:blank", "title": "NoActor", "status": 401,
                             "detail": "say who acts: send X-Actor-Id (and X-Actor-Roles, "
                                       "X-Actor-Grids) headers"},
                            status_code=401, media_type="application/problem+json")

    @app.post("/cases", status_code=201)
    def open_case(body: OpenCase, engine: Engine, who: Who,
                  idempotency_key: Annotated[str | None, Header()] = None) -> JSONResponse:
        case = engine.open(body.workflow, actor=who, data=body.data, grid=body.grid,
                           links=body.links, idempotency_key=idempotency_key)
        response = _tagged(case, 201)
        response.headers["Location"] = f"/cases/{case.id}"
        return response

    @app.get("/cases/{case_id}")
    def get_case(case_id: str, engine: Engine, who: Who) -> JSONResponse:
        # Scoped: a case in another grid is a 404, exactly like a missing one.
        return _tagged(engine.get(case_id, actor=who))

    @app.post("/cases/{case_id}/triggers/{trigger}")
    def fire(case_id: str, trigger: str, engine: Engine, who: Who, body: Fire | None = None,
             if_match: Annotated[str | None, Header()] = None,
             idempotency_key: Annotated[str | None, Header()] = None) -> JSONResponse:
        body = body or Fire()
        expected = body.expected_version if body.expected_version is not None else (
            _version(if_match))
        case = engine.fire(case_id, trigger, actor=who, payload=body.payload,
                           expected_version=expected, idempotency_key=idempotency_key)
        return _tagged(case)

    @app.get("/cases/{case_id}/history")
    def history(case_id: str, engine: Engine, who: Who) -> list[dict[str, Any]]:
        return [event_json(e) for e in engine.history(case_id, actor=who)]

    @app.get("/cases/{case_id}/allowed")
    def allowed(case_id: str, engine: Engine, who: Who) -> list[str]:
        return engine.allowed(case_id, who)

    @app.get("/overdue")
    def overdue(engine: Engine, who: Who, response: Response,
                limit: Annotated[int, Query(ge=1, le=500)] = 100,
                after: str | None = None) -> list[dict[str, Any]]:
        page = engine.store.query(overdue_at=engine.clock.now(), after=after, limit=limit,
                                  grid=None if who.grids is gridflow.ALL_GRIDS
                                  else sorted(who.grids))
        if page.next is not None:
            response.headers["X-Next-After"] = page.next
        return [case_json(c) for c in page.items]

    return app


#: The app for ``uvicorn app:app`` (its engine is built at start-up).
app = create_app()
