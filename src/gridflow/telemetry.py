"""OpenTelemetry for the engine: a span per open / fire / tick / verify, and counters.

Through ``opentelemetry-api`` (extra ``gridflow[otel]``). Without it, or while
no tracer or meter provider is configured (neither globally nor given to
`Telemetry`), every call is a plain call: the check costs well under a
microsecond, so an engine that nobody observes pays nothing measurable.

Attributes (all names under ``gridflow.``): ``operation``, ``case_id``,
``workflow``, ``workflow_version``, ``trigger``, ``from_state``, ``to_state``,
``grid``, ``outcome`` (``ok``, ``refused``, ``conflict``, ``integrity`` or
``error``) and ``refusal`` (the error's class, e.g. ``GuardRejected``). Never a
payload, a data value or an error message: messages may quote what a caller
sent, so only the class of an error is recorded.

Counters: ``gridflow.steps`` (events recorded by open and fire, by workflow,
trigger and outcome), ``gridflow.refusals`` (by operation and refusal class),
``gridflow.conflicts`` (lost races and stale versions) and ``gridflow.breaches``
(events recorded by the timer).

Example:
    >>> import gridflow
    >>> engine = gridflow.Engine(clock=gridflow.FixedClock(), entry_points=False)
    >>> engine.telemetry.enabled  # nothing configured: plain calls
    False
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from gridflow._errors import (
    ConcurrencyError,
    GridflowError,
    IdempotencyConflict,
    IntegrityError,
    StoreError,
)

if TYPE_CHECKING:
    from gridflow.model import Case, Event

__all__ = ["ATTRIBUTES", "Telemetry", "traced"]

#: Every span attribute gridflow sets; nothing else is ever recorded.
ATTRIBUTES = ("gridflow.operation", "gridflow.case_id", "gridflow.workflow",
              "gridflow.workflow_version", "gridflow.trigger", "gridflow.from_state",
              "gridflow.to_state", "gridflow.grid", "gridflow.outcome", "gridflow.refusal",
              "gridflow.breaches")

_SCOPE = "gridflow"
_modules = sys.modules
#: Imported by whoever configures OpenTelemetry (`opentelemetry.trace` and
#: `opentelemetry.metrics` both import it).
_API = "opentelemetry.context"

def _configured_tracer_provider() -> Any:
    # An application that set a provider has imported the API: no need to import
    # it here (that would cost every user of gridflow its import time).
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return None
    provider = trace.get_tracer_provider()
    # The API hands out a proxy until the application sets a real provider.
    return None if isinstance(provider, trace.ProxyTracerProvider) else provider


def _configured_meter_provider() -> Any:
    metrics = sys.modules.get("opentelemetry.metrics")
    if metrics is None:
        return None
    provider = metrics.get_meter_provider()
    return None if type(provider).__name__ == "_ProxyMeterProvider" else provider


class _Instruments:
    """A tracer and the four counters, made once per pair of providers."""

    def __init__(self, tracer_provider: Any, meter_provider: Any) -> None:
        from gridflow import __version__

        self.tracer = tracer_provider.get_tracer(_SCOPE, __version__) \
            if tracer_provider is not None else None
        meter = meter_provider.get_meter(_SCOPE, __version__) \
            if meter_provider is not None else None
        if meter is None:
            self.steps = self.refusals = self.conflicts = self.breaches = None
            return
        self.steps = meter.create_counter(
            "gridflow.steps", unit="{event}", description="Events recorded by open and fire")
        self.refusals = meter.create_counter(
            "gridflow.refusals", unit="{call}", description="Calls refused, by class")
        self.conflicts = meter.create_counter(
            "gridflow.conflicts", unit="{call}",
            description="Steps that lost a race or carried a stale version")
        self.breaches = meter.create_counter(
            "gridflow.breaches", unit="{event}", description="Events recorded by the timer")


class _Call:
    """The attributes of one traced call, filled in as the step goes."""

    __slots__ = ("attributes", "operation")

    def __init__(self, operation: str, attributes: dict[str, Any]) -> None:
        self.operation = operation
        self.attributes = attributes


_current: ContextVar[_Call | None] = ContextVar("gridflow_telemetry_call", default=None)


def _outcome(exc: BaseException) -> str:
    if isinstance(exc, ConcurrencyError | IdempotencyConflict):
        return "conflict"
    if isinstance(exc, IntegrityError):
        return "integrity"
    if isinstance(exc, StoreError) or not isinstance(exc, GridflowError):
        return "error"
    return "refused"


class Telemetry:
    """Where an engine's spans and counters go.

    With no provider given, the global ones (``opentelemetry.trace`` and
    ``opentelemetry.metrics``) are used as soon as the application sets them;
    until then, and without ``opentelemetry-api``, nothing is recorded.

    Example:
        >>> from opentelemetry.sdk.trace import TracerProvider
        >>> from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        >>> from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
        ...     InMemorySpanExporter)
        >>> import gridflow
        >>> spans = InMemorySpanExporter()
        >>> provider = TracerProvider()
        >>> provider.add_span_processor(SimpleSpanProcessor(spans))
        >>> engine = gridflow.Engine(clock=gridflow.FixedClock(), entry_points=False,
        ...                          telemetry=Telemetry(tracer_provider=provider))
        >>> case = engine.open("grid_case", actor=gridflow.Actor("w", ["grid_worker"], ["g"]),
        ...                    grid="g", data={"title": "路灯坏了", "source": "visit"})
        >>> [(s.name, s.attributes["gridflow.to_state"]) for s in spans.get_finished_spans()]
        [('gridflow.open', 'reported')]
    """

    def __init__(self, *, tracer_provider: Any = None, meter_provider: Any = None) -> None:
        self._tracer_provider = tracer_provider
        self._meter_provider = meter_provider
        self._made: tuple[Any, Any, _Instruments] | None = None
        self._explicit = tracer_provider is not None or meter_provider is not None

    def _instruments(self) -> _Instruments | None:
        tp = self._tracer_provider or _configured_tracer_provider()
        mp = self._meter_provider or _configured_meter_provider()
        if tp is None and mp is None:
            return None
        made = self._made
        if made is None or made[0] is not tp or made[1] is not mp:
            made = self._made = (tp, mp, _Instruments(tp, mp))
        return made[2]

    @property
    def enabled(self) -> bool:
        """Whether anything is recorded now (a provider is given or configured).

        Example:
            >>> Telemetry().enabled
            False
        """
        return self._instruments() is not None

    def call(self, operation: str, attributes: dict[str, Any],
             fn: Callable[[], Any]) -> Any:
        """Run ``fn`` inside a span ``gridflow.<operation>``; count its outcome.

        Example:
            >>> Telemetry().call("verify", {"gridflow.case_id": "c-1"}, lambda: 42)
            42
        """
        tools = self._instruments()
        if tools is None:
            return fn()
        attributes = {"gridflow.operation": operation, **attributes}
        record = _Call(operation, attributes)
        token = _current.set(record)
        try:
            with self._span(tools, operation) as span:
                try:
                    result = fn()
                except BaseException as exc:
                    outcome = _outcome(exc)
                    attributes["gridflow.outcome"] = outcome
                    attributes["gridflow.refusal"] = type(exc).__name__
                    self._count_failure(tools, operation, outcome, type(exc).__name__)
                    self._finish(span, attributes, failed=type(exc).__name__)
                    raise
                _result_attributes(attributes, result)
                attributes["gridflow.outcome"] = "ok"
                if operation == "tick" and tools.breaches is not None:
                    tools.breaches.add(len(result))
                if operation in ("open", "fire") and tools.steps is not None:
                    tools.steps.add(1, {k: attributes[k] for k in (
                        "gridflow.workflow", "gridflow.trigger", "gridflow.outcome")
                        if k in attributes})
                self._finish(span, attributes, failed=None)
                return result
        finally:
            _current.reset(token)

    @contextmanager
    def _span(self, tools: _Instruments, operation: str) -> Iterator[Any]:
        if tools.tracer is None:
            yield None
            return
        # Exceptions are recorded by class only (see _finish), never by message.
        with tools.tracer.start_as_current_span(f"gridflow.{operation}",
                                                record_exception=False,
                                                set_status_on_exception=False) as span:
            yield span

    @staticmethod
    def _finish(span: Any, attributes: dict[str, Any], failed: str | None) -> None:
        if span is None:
            return
        span.set_attributes({k: v for k, v in attributes.items() if v is not None})
        if failed is not None and attributes.get("gridflow.outcome") != "refused":
            from opentelemetry.trace import Status, StatusCode

            span.set_status(Status(StatusCode.ERROR, failed))

    @staticmethod
    def _count_failure(tools: _Instruments, operation: str, outcome: str, cls: str) -> None:
        if outcome == "conflict" and tools.conflicts is not None:
            tools.conflicts.add(1, {"gridflow.operation": operation})
        if tools.refusals is not None and outcome in ("refused", "integrity"):
            tools.refusals.add(1, {"gridflow.operation": operation, "gridflow.refusal": cls})


def committed(case: Case, event: Event) -> None:
    """Note the step just committed on the traced open or fire it belongs to.

    Example:
        >>> committed(None, None)  # outside a traced call: nothing happens
    """
    record = _current.get()
    if record is None or record.operation not in ("open", "fire"):
        return
    record.attributes.update({
        "gridflow.case_id": case.id, "gridflow.workflow": case.workflow,
        "gridflow.workflow_version": case.workflow_version,
        "gridflow.trigger": event.trigger, "gridflow.from_state": event.source,
        "gridflow.to_state": case.state, "gridflow.grid": case.grid,
    })


def _result_attributes(attributes: dict[str, Any], result: Any) -> None:
    from gridflow.model import Case

    if isinstance(result, Case):
        attributes.setdefault("gridflow.case_id", result.id)
        attributes.setdefault("gridflow.workflow", result.workflow)
        attributes.setdefault("gridflow.workflow_version", result.workflow_version)
        attributes["gridflow.to_state"] = result.state
        attributes.setdefault("gridflow.grid", result.grid)
    elif isinstance(result, list):
        attributes["gridflow.breaches"] = len(result)


P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S")


def traced(operation: str, *, case_arg: bool = False, trigger_arg: bool = False,
           workflow_arg: bool = False
           ) -> Callable[[Callable[Concatenate[S, P], R]], Callable[Concatenate[S, P], R]]:
    """Trace an `Engine` method as ``operation``; the first positional arguments
    named by the flags become attributes (a case id, a trigger, a workflow name).

    Example:
        >>> class Thing:
        ...     telemetry = Telemetry()
        ...     @traced("verify", case_arg=True)
        ...     def verify(self, case_id):
        ...         return case_id
        >>> Thing().verify("c-1")
        'c-1'
    """
    names = [n for n, on in (("gridflow.case_id", case_arg),
                             ("gridflow.workflow", workflow_arg),
                             ("gridflow.trigger", trigger_arg)) if on]

    def wrap(fn: Callable[Concatenate[S, P], R]) -> Callable[Concatenate[S, P], R]:
        @functools.wraps(fn)
        def inner(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
            telemetry: Telemetry = self.telemetry  # type: ignore[attr-defined]
            # The common case, checked inline (a step costs ~20 µs; this, ~0.1):
            # no provider given and the OpenTelemetry API never imported.
            if not telemetry._explicit and _API not in _modules:
                return fn(self, *args, **kwargs)
            if telemetry._instruments() is None:
                return fn(self, *args, **kwargs)
            given = {name: value for name, value in zip(names, args, strict=False)
                     if isinstance(value, str)}
            result: R = telemetry.call(operation, given, lambda: fn(self, *args, **kwargs))
            return result

        return inner

    return wrap
