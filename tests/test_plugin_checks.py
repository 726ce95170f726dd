"""Plugins, as a plugin author meets them (issue 16's findings on 0.1): a
misspelled hook (``gridflow_after_fired``) was accepted silently; errors named
plugins by a number (``plugin '139776821917520'``) and said ``'plugin veto'``
without which plugin; vetoes got no clock; ``allowed()`` ignored vetoes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import gridflow
from gridflow import (
    ALL_GRIDS,
    Actor,
    Engine,
    FixedClock,
    GuardRejected,
    PluginError,
    hookimpl,
)

T0 = datetime(2026, 3, 2, 1, tzinfo=UTC)  # a Monday, 09:00 in Beijing
RESIDENT = Actor("居民-张", ["resident"], ALL_GRIDS)
BOSS = Actor("书记-王", ["coordinator"], ALL_GRIDS)


def _engine(*plugins: object) -> Engine:
    return Engine(clock=FixedClock(T0), plugins=plugins, entry_points=False)


def _case(engine: Engine) -> gridflow.Case:
    return engine.open("grid_case", version=1,
                       actor=RESIDENT, data={"title": "堆物", "source": "resident"})


class Typo:
    @hookimpl
    def gridflow_after_fired(self, case: Any, event: Any) -> None:
        raise AssertionError("never called")


class Unmarked:
    def gridflow_after_fire(self, case: Any, event: Any) -> None:
        raise AssertionError("never called")


def test_a_misspelled_hook_is_refused_with_the_right_name() -> None:
    with pytest.raises(PluginError) as caught:
        _engine(Typo())
    assert caught.value.plugin == "Typo"
    assert "'gridflow_after_fired' is not a gridflow hook" in str(caught.value)
    assert "did you mean 'gridflow_after_fire'?" in str(caught.value)


def test_an_unmarked_hook_is_refused() -> None:
    with pytest.raises(PluginError, match=r"not marked @gridflow\.hookimpl"):
        _engine(Unmarked())


class AsksTooMuch:
    @hookimpl
    def gridflow_veto(self, case: Any, trigger: str, mood: str) -> str | None:
        raise AssertionError("never called")


def test_a_hook_asking_for_an_argument_it_is_not_given_is_refused_by_name() -> None:
    # 0.1 let pluggy's own PluginValidationError through, naming the plugin by a
    # number: "Plugin '140511551368336' for hook 'gridflow_veto'".
    with pytest.raises(PluginError) as caught:
        _engine(AsksTooMuch())
    assert caught.value.plugin == "AsksTooMuch"
    assert "'AsksTooMuch'" in str(caught.value) and "mood" in str(caught.value)
    assert not any(word.strip("'").isdigit() for word in str(caught.value).split())


def test_a_refused_registration_leaves_the_engine_as_it_was() -> None:
    engine = _engine()
    before = (sorted(engine.plugins.list_name_plugin(), key=lambda p: p[0]), engine.workflows)
    with pytest.raises(PluginError):
        engine.register(Typo())

    class BadSpec:
        @hookimpl
        def gridflow_workflows(self) -> list[gridflow.WorkflowSpec]:
            return [gridflow.WorkflowSpec(
                "bad", 1, "a", [gridflow.StateSpec("a"), gridflow.StateSpec("b", terminal=True)],
                [gridflow.TransitionSpec("go", "a", "b", guards=["nope"])])]

    with pytest.raises(gridflow.SpecError, match="guard 'nope' is not registered"):
        engine.register(BadSpec())
    after = (sorted(engine.plugins.list_name_plugin(), key=lambda p: p[0]), engine.workflows)
    assert after == before


class NoCloseAfterFive:
    """Decides on the step's time, not the wall clock."""

    @hookimpl
    def gridflow_veto(self, case: Any, trigger: str, now: datetime) -> str | None:
        local = now.astimezone(gridflow.WorkingDays().tz)
        if trigger == "triage" and local.hour >= 17:
            return "no triage after 17:00 (Beijing)"
        return None


def test_vetoes_are_named_by_plugin_and_get_the_steps_now() -> None:
    engine = _engine(NoCloseAfterFive())
    case = _case(engine)
    triage = {"category": "违规堆物", "priority": "normal"}
    assert isinstance(engine.clock, FixedClock)
    engine.clock.advance(timedelta(hours=9))  # 18:00 in Beijing
    with pytest.raises(GuardRejected) as caught:
        engine.fire(case.id, "triage", actor=BOSS, payload=triage)
    assert caught.value.guard == "NoCloseAfterFive.gridflow_veto"
    assert "NoCloseAfterFive" in str(caught.value) and "plugin veto" not in str(caught.value)
    assert not any(ch.isdigit() for ch in caught.value.guard)
    engine.clock.advance(timedelta(hours=16))  # 10:00 the next day
    assert engine.fire(case.id, "triage", actor=BOSS, payload=triage).state == "triaged"


def test_allowed_reflects_vetoes() -> None:
    engine = _engine(NoCloseAfterFive())
    case = _case(engine)
    assert "triage" in engine.allowed(case.id, BOSS)
    assert isinstance(engine.clock, FixedClock)
    engine.clock.advance(timedelta(hours=9))
    assert "triage" not in engine.allowed(case.id, BOSS)
    assert "note" in engine.allowed(case.id, BOSS)


def test_allowed_passes_a_payload_to_vetoes() -> None:
    class NeedsChannel:
        @hookimpl
        def gridflow_veto(self, trigger: str, payload: Any) -> str | None:
            return None if trigger != "note" or payload.get("channel") else "say the channel"

    engine = _engine(NeedsChannel())
    case = _case(engine)
    assert "note" not in engine.allowed(case.id, BOSS)
    assert "note" in engine.allowed(case.id, BOSS, payload={"channel": "app"})


def test_a_failing_before_hook_is_named_by_plugin() -> None:
    class Flaky:
        @hookimpl
        def gridflow_before_fire(self, trigger: str) -> None:
            raise RuntimeError("points service down")

    engine = _engine(Flaky())
    with pytest.raises(GuardRejected) as caught:  # opening runs the hook too
        _case(engine)
    assert caught.value.guard == "Flaky.gridflow_before_fire"
    assert isinstance(caught.value.__cause__, RuntimeError)


def test_after_hook_errors_name_the_plugin() -> None:
    class Broken:
        @hookimpl
        def gridflow_after_fire(self, case: Any, event: Any) -> None:
            raise RuntimeError("sms gateway down")

    engine = _engine(Broken())
    _case(engine)
    assert [e.plugin for e in engine.hook_errors] == ["Broken"]


def test_two_instances_of_one_class_get_distinct_names() -> None:
    engine = _engine(NoCloseAfterFive(), NoCloseAfterFive())
    names = {name for name, _ in engine.plugins.list_name_plugin()}
    assert {"NoCloseAfterFive", "NoCloseAfterFive#2"} <= names
    assert engine.register(NoCloseAfterFive(), "evening") == "evening"


def test_the_deadline_hook_gets_now() -> None:
    seen: list[datetime] = []

    class Watch:
        @hookimpl
        def gridflow_deadline(self, case: Any, state: Any, now: datetime) -> None:
            seen.append(now)

    engine = _engine(Watch())
    _case(engine)
    assert seen == [T0]
