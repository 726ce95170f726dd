"""OpenTelemetry: a span per open / fire / tick / verify with the step's attributes,
counters for steps, refusals, conflicts and breaches — and never a personal value."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import gridflow
from gridflow import Actor, Engine, FixedClock
from gridflow.telemetry import ATTRIBUTES, Telemetry

GRID = "华三-1"
T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
worker = Actor("网格员-王", ["grid_worker"], [GRID])
secretary = Actor("书记-李", ["coordinator"], [GRID])
#: Planted in data and payloads: no span or metric attribute may carry them.
PERSONAL = ("蒯秀英", "13917265508", "310104196512074321", "kuai.xy@example.com")


class Observed:
    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        self.clock = FixedClock(T0)
        self.engine = Engine(clock=self.clock, entry_points=False, telemetry=Telemetry(
            tracer_provider=self.tracer_provider, meter_provider=self.meter_provider))

    def finished(self) -> list[Any]:
        return list(self.spans.get_finished_spans())

    def points(self) -> dict[str, list[tuple[dict[str, Any], float]]]:
        data = self.reader.get_metrics_data()
        out: dict[str, list[tuple[dict[str, Any], float]]] = {}
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    out[metric.name] = [(dict(p.attributes), p.value)
                                        for p in metric.data.data_points]
        return out


@pytest.fixture
def observed() -> Iterator[Observed]:
    o = Observed()
    yield o
    o.tracer_provider.shutdown()
    o.meter_provider.shutdown()


def _open(engine: Engine) -> gridflow.Case:
    return engine.open("grid_case", version=1, actor=worker, grid=GRID, data={
        "title": "弄堂违规堆物", "source": "resident",
        "reporter": {"name": PERSONAL[0], "phone": PERSONAL[1], "id_number": PERSONAL[2],
                     "email": PERSONAL[3]}})


def test_open_and_fire_spans_carry_the_step(observed: Observed) -> None:
    case = _open(observed.engine)
    observed.engine.fire(case.id, "triage", actor=secretary,
                         payload={"category": "违规堆物", "priority": "normal",
                                  "note": f"联系人 {PERSONAL[0]}"})
    opened, fired = observed.finished()
    assert opened.name == "gridflow.open" and fired.name == "gridflow.fire"
    assert dict(opened.attributes) == {
        "gridflow.operation": "open", "gridflow.case_id": case.id,
        "gridflow.workflow": "grid_case", "gridflow.workflow_version": 1,
        "gridflow.trigger": "open", "gridflow.to_state": "reported",
        "gridflow.grid": GRID, "gridflow.outcome": "ok"}
    assert dict(fired.attributes) == {
        "gridflow.operation": "fire", "gridflow.case_id": case.id,
        "gridflow.workflow": "grid_case", "gridflow.workflow_version": 1,
        "gridflow.trigger": "triage", "gridflow.from_state": "reported",
        "gridflow.to_state": "triaged", "gridflow.grid": GRID, "gridflow.outcome": "ok"}
    steps = observed.points()["gridflow.steps"]
    assert sorted((a["gridflow.trigger"], v) for a, v in steps) == [("open", 1), ("triage", 1)]


def test_a_refusal_is_recorded_by_its_class_only(observed: Observed) -> None:
    case = _open(observed.engine)
    with pytest.raises(gridflow.PermissionDenied):
        observed.engine.fire(case.id, "triage", actor=worker,
                             payload={"category": PERSONAL[1]})
    with pytest.raises(gridflow.InvalidTransition):
        observed.engine.fire(case.id, "close", actor=secretary)
    refused = observed.finished()[1:]
    assert [(s.attributes["gridflow.outcome"], s.attributes["gridflow.refusal"])
            for s in refused] == [("refused", "PermissionDenied"),
                                  ("refused", "InvalidTransition")]
    assert all(not s.events for s in refused)  # no exception event: its text stays out
    assert all(s.status.is_unset for s in refused)  # a refusal is an answer, not a fault
    points = observed.points()["gridflow.refusals"]
    assert sorted((a["gridflow.refusal"], v) for a, v in points) == [
        ("InvalidTransition", 1), ("PermissionDenied", 1)]


def test_a_stale_version_counts_as_a_conflict(observed: Observed) -> None:
    case = _open(observed.engine)
    with pytest.raises(gridflow.ConcurrencyError):
        observed.engine.fire(case.id, "triage", actor=secretary,
                             payload={"category": "违规堆物", "priority": "normal"},
                             expected_version=7)
    span = observed.finished()[-1]
    assert span.attributes["gridflow.outcome"] == "conflict"
    assert not span.status.is_ok and span.status.description == "ConcurrencyError"
    assert observed.points()["gridflow.conflicts"] == [({"gridflow.operation": "fire"}, 1)]


def test_tick_and_verify_spans_and_the_breach_counter(observed: Observed) -> None:
    ids = [_open(observed.engine).id for _ in range(3)]
    observed.clock.advance(timedelta(days=2))
    assert len(observed.engine.tick()) == 3
    observed.engine.verify(ids[0])
    *_, tick, verify = observed.finished()
    assert (tick.name, tick.attributes["gridflow.breaches"]) == ("gridflow.tick", 3)
    assert tick.attributes["gridflow.outcome"] == "ok"
    assert (verify.name, verify.attributes["gridflow.case_id"]) == ("gridflow.verify", ids[0])
    assert observed.points()["gridflow.breaches"] == [({}, 3)]


def test_verify_of_a_missing_case_is_a_refusal(observed: Observed) -> None:
    with pytest.raises(gridflow.CaseNotFound):
        observed.engine.verify("no-such-case")
    assert observed.finished()[-1].attributes["gridflow.outcome"] == "refused"


def test_the_engine_span_is_a_child_of_the_callers(observed: Observed) -> None:
    tracer = observed.tracer_provider.get_tracer("service")
    with tracer.start_as_current_span("POST /cases") as parent:
        _open(observed.engine)
    child = observed.finished()[0]
    assert child.parent is not None and child.parent.span_id == parent.get_span_context().span_id


def test_no_personal_value_in_any_attribute(observed: Observed) -> None:
    engine = observed.engine
    case = _open(engine)
    engine.fire(case.id, "triage", actor=secretary,
                payload={"category": "违规堆物", "priority": "normal", "contact": PERSONAL[1]})
    for bad in ({"category": PERSONAL[0]}, {"note": PERSONAL[3]}):
        with pytest.raises(gridflow.GridflowError):
            engine.fire(case.id, "close", actor=secretary, payload=bad)
    with pytest.raises(gridflow.GridflowError):
        engine.open("grid_case", version=1, actor=worker, grid=GRID, data={"title": PERSONAL[2]})
    engine.verify(case.id)
    seen: list[str] = []
    for span in observed.finished():
        assert set(span.attributes) <= set(ATTRIBUTES), span.attributes
        seen.extend(str(v) for v in span.attributes.values())
        seen.extend(str(e.attributes) for e in span.events)
        seen.append(str(span.status.description))
    for points in observed.points().values():
        seen.extend(str(v) for attrs, _ in points for v in attrs.values())
    text = "\n".join(seen)
    assert text and not any(value in text for value in PERSONAL)


def test_nothing_configured_means_plain_calls() -> None:
    engine = Engine(entry_points=False)
    assert engine.telemetry.enabled is False
    # The attributes traced come from the same call either way.
    assert engine.open("grid_case", version=1, actor=worker, grid=GRID,
                       data={"title": "t", "source": "visit"}).state == "reported"


def test_the_global_providers_are_used_once_the_application_sets_them() -> None:
    # A fresh process: the global providers can be set only once per process.
    code = textwrap.dedent("""
        import gridflow
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
            InMemorySpanExporter)
        engine = gridflow.Engine(entry_points=False)
        before = engine.telemetry.enabled
        spans = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(spans))
        trace.set_tracer_provider(provider)
        engine.open("grid_case", actor=gridflow.Actor("w", ["grid_worker"], ["g"]),
                    grid="g", data={"title": "t", "source": "visit"})
        print(before, engine.telemetry.enabled,
              [s.name for s in spans.get_finished_spans()])
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False True ['gridflow.open']"


def test_importing_gridflow_does_not_import_opentelemetry() -> None:
    code = "import sys, gridflow; print(any(m.startswith('opentelemetry') for m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.stdout.strip() == "False", done.stderr
