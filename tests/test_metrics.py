"""Supervision figures on a population whose true figures are known by construction.

The population is built by driving the real `Engine` (with a `FixedClock`)
through chosen paths: rejected, closed on time, closed late after the timer
escalated, reopened, extended, escalated by hand, due before the period,
closed after it, and mediations resolved at each tier, referred, withdrawn.
Each scenario states what it adds to each count; the test sums those and
compares them with `gridflow.metrics.compute` on every store, and the SQL
stores' reports with the `MemoryStore` one.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gridflow
import gridflow._figures
from gridflow import Actor, Engine, FixedClock, MemoryStore, Store, metrics
from gridflow.metrics import Report, Row

SINCE = datetime(2026, 3, 1, tzinfo=UTC)
UNTIL = datetime(2026, 4, 1, tzinfo=UTC)
#: The one moment the timer runs: every breach before it is recorded then.
T_TICK = datetime(2026, 3, 20, tzinfo=UTC)

GRIDS = ("华三-1", "华三-2")
AREAS = ("长宁支路324弄", "华阳一村", "姚家角")
CATEGORIES = ("违规堆物", "地锁", "市政设施")
BYS: tuple[str | None, ...] = ("grid", "area", "category", None)

resident = Actor("居民-张", ["resident"], grids=gridflow.ALL_GRIDS)
secretary = Actor("书记-李", ["coordinator"], grids=gridflow.ALL_GRIDS)
street = Actor("街道-城运中心", ["street"], grids=gridflow.ALL_GRIDS)
dept = Actor("部门-清运单位", ["department"], grids=gridflow.ALL_GRIDS)
mediator = Actor("调解员-孙", ["mediator"], grids=gridflow.ALL_GRIDS)

H = timedelta(hours=1)
D = timedelta(days=1)


def day(month: int, d: int, hour: int = 0) -> datetime:
    return datetime(2026, month, d, hour, tzinfo=UTC)


def in_period(when: datetime | None) -> bool:
    return when is not None and SINCE <= when < UNTIL


class Population:
    """Builds the cases and keeps what each count must be, per grouping and group."""

    def __init__(self, store: Store) -> None:
        self.clock = FixedClock(day(1, 5))
        self.engine = Engine(store=store, clock=self.clock, entry_points=False,
                             keyring=gridflow.Keyring.generate())
        self.counts: dict[str | None, dict[str | None, Counter[str]]] = {
            by: defaultdict(Counter) for by in BYS}
        self.stays: dict[str | None, dict[tuple[str | None, str, str], list[timedelta]]] = {
            by: defaultdict(list) for by in BYS}
        self.agreements: dict[str | None, dict[str | None, list[timedelta]]] = {
            by: defaultdict(list) for by in BYS}
        self.keys: dict[str, dict[str | None, str | None]] = {}
        self.where: dict[str, tuple[str, str, datetime]] = {}
        self.first: list[Callable[[], None]] = []
        self.then: list[Callable[[], None]] = []
        self.breaches: set[str] = set()
        self.n = 0

    # -- the oracle ------------------------------------------------------------------

    def expect(self, cid: str, **counts: bool | int) -> None:
        for by in BYS:
            self.counts[by][self.keys[cid][by]].update(
                {k: int(v) for k, v in counts.items() if v})

    def _moved(self, cid: str, state: str, when: datetime) -> None:
        wf, old, entered = self.where[cid]
        if state != old:
            if in_period(when):
                for by in BYS:
                    self.stays[by][(self.keys[cid][by], wf, old)].append(when - entered)
            self.where[cid] = (wf, state, when)

    # -- driving the engine --------------------------------------------------------------

    def open(self, workflow: str, when: datetime, i: int, *, triaged: bool = True,
             data: dict[str, Any] | None = None) -> str:
        self.n += 1
        cid = f"{workflow[0]}{self.n:04d}"
        grid, area, category = GRIDS[i % 2], AREAS[i % 3], CATEGORIES[(i // 2) % 3]
        self.keys[cid] = {"grid": grid, "area": area if triaged else None,
                          "category": category if triaged else None, None: None}
        self.clock.set(when)
        if workflow == "grid_case":
            opened = self.engine.open("grid_case", version=1,
                                      actor=resident, grid=grid, case_id=cid, data={
                "title": "弄堂违规堆物", "source": "resident",
                "reporter": {"name": "张某某", "phone": "13912345678"}})
        else:
            opened = self.engine.open("mediation", actor=mediator, grid=grid, case_id=cid,
                                      data={**(data or {}), "area": area, "category": category})
        self.where[cid] = (workflow, opened.state, when)
        return cid

    def fire(self, cid: str, trigger: str, when: datetime, actor: Actor,
             **payload: Any) -> None:
        self.clock.set(when)
        case = self.engine.fire(cid, trigger, actor=actor, payload=payload)
        self._moved(cid, case.state, when)

    def tick(self) -> None:
        self.clock.set(T_TICK)
        events = self.engine.tick(limit=10_000)
        escalated = {e.case_id for e in events if e.trigger == "escalate"}
        assert escalated == self.breaches
        for e in events:
            if e.dest is not None:
                self._moved(e.case_id, e.dest, e.at)

    def run(self) -> None:
        for action in self.first:
            action()
        self.tick()
        for action in self.then:
            action()

    # -- grid-case steps -------------------------------------------------------------------

    def triage(self, cid: str, when: datetime, priority: str) -> None:
        keys = self.keys[cid]
        self.fire(cid, "triage", when, secretary, category=keys["category"],
                  area=keys["area"], priority=priority)

    def dispatch(self, cid: str, when: datetime, actor: Actor = secretary) -> None:
        self.fire(cid, "dispatch", when, actor, departments=["清运单位"], plan="联合整治方案")

    def close(self, cid: str, when: datetime) -> None:
        self.fire(cid, "report_done", when - H, dept, department="清运单位", result="已清运")
        self.fire(cid, "close", when, secretary)


# -- grid-case scenarios: each adds its case(s) and what they must count ----------------------


def rejected(p: Population, i: int, t: datetime) -> None:
    def go() -> None:
        cid = p.open("grid_case", t, i, triaged=False)
        p.fire(cid, "reject", t + H, secretary, reason="不属于网格事项")
        p.expect(cid, received=in_period(t))
    (p.first if t < T_TICK else p.then).append(go)


def reported_only(p: Population, i: int, t: datetime) -> None:
    def go() -> None:
        cid = p.open("grid_case", t, i, triaged=False)
        p.expect(cid, received=in_period(t))
    (p.first if t < T_TICK else p.then).append(go)


def on_time(p: Population, i: int, t: datetime, revisit: str | None = None) -> None:
    """Dispatched (normal: 5 days) and closed a day later; optionally looked back at."""
    def go() -> None:
        cid = p.open("grid_case", t, i)
        p.triage(cid, t + H, "normal")
        p.dispatch(cid, t + 2 * H + i * timedelta(minutes=7))
        closed_at = t + D + 2 * H
        p.close(cid, closed_at)
        rv_at = t + 3 * D
        received = in_period(t)
        due = in_period(closed_at)
        counts: dict[str, bool | int] = dict(
            received=received, triaged=received, due=due, closed=due, closed_on_time=due,
            closed_in_grid=due)
        if revisit is not None:
            p.fire(cid, "start_revisit", t + 2 * D, secretary)
            if revisit == "pass":
                p.fire(cid, "confirm", rv_at, secretary, observation="未反弹")
            else:
                p.fire(cid, "reopen", rv_at, secretary, reason="堆物反弹")
                p.close(cid, rv_at + 3 * H)
                counts["reopened"] = due and rv_at < UNTIL
            counts["revisits"] = in_period(rv_at)
            counts["revisits_passed"] = in_period(rv_at) and revisit == "pass"
        p.expect(cid, **counts)
    (p.first if t + 4 * D < T_TICK else p.then).append(go)


def late(p: Population, i: int, t: datetime, close_at: datetime | None,
         extend_to: datetime | None = None) -> None:
    """Dispatched urgent (1 day), or extended to ``extend_to``; the timer escalates it at
    T_TICK; the street dispatches it again and it is closed at ``close_at`` (or never)."""
    cid_box: list[str] = []

    def before() -> None:
        cid = p.open("grid_case", t, i)
        cid_box.append(cid)
        p.triage(cid, t + H, "normal" if extend_to else "urgent")
        dispatched = t + 2 * H + i * timedelta(minutes=3)
        p.dispatch(cid, dispatched)
        deadline = dispatched + (5 * D if extend_to else D)
        if extend_to is not None:
            p.fire(cid, "request_extension", t + 3 * H, dept, reason="需协调物业",
                   until=extend_to.isoformat())
            p.fire(cid, "approve_extension", t + 4 * H, secretary)
            deadline = extend_to
        assert deadline < T_TICK
        p.breaches.add(cid)
        due = in_period(deadline)
        closed = due and close_at is not None and close_at < UNTIL
        p.expect(cid, received=in_period(t), triaged=in_period(t), due=due, closed=closed,
                 extended=due and extend_to is not None)

    def after() -> None:
        if close_at is not None:
            cid = cid_box[0]
            p.dispatch(cid, close_at - 2 * H, street)
            p.close(cid, close_at)

    p.first.append(before)
    p.then.append(after)


def extended_on_time(p: Population, i: int, t: datetime) -> None:
    """Extended past T_TICK, so never breached; closed after the original deadline."""
    def before() -> None:
        cid = p.open("grid_case", t, i)
        p.triage(cid, t + H, "normal")
        p.dispatch(cid, t + 2 * H)
        p.fire(cid, "request_extension", t + 3 * D, dept, reason="材料未到",
               until=(T_TICK + 5 * D).isoformat())
        p.fire(cid, "approve_extension", t + 3 * D + H, secretary)
        p.then.append(lambda: finish(cid))

    def finish(cid: str) -> None:
        closed_at = T_TICK + 4 * D + i * H
        p.close(cid, closed_at)
        p.expect(cid, received=in_period(t), triaged=in_period(t), due=True, closed=True,
                 closed_on_time=True, extended=True, closed_in_grid=True)

    p.first.append(before)


def escalated_by_hand(p: Population, i: int, t: datetime) -> None:
    """Sent up to the street level before dispatch; closed in time, but not in the grid."""
    def go() -> None:
        cid = p.open("grid_case", t, i)
        p.triage(cid, t + H, "normal")
        p.fire(cid, "escalate", t + 3 * H, secretary, reason="涉及多个街道部门")
        p.dispatch(cid, t + 4 * H, street)
        closed_at = t + D + 4 * H
        p.close(cid, closed_at)
        due = in_period(closed_at)
        p.expect(cid, received=in_period(t), triaged=in_period(t), due=due, closed=due,
                 closed_on_time=due)
    p.then.append(go)


def still_handling(p: Population, i: int, t: datetime, close_at: datetime | None) -> None:
    """Dispatched low (15 days): its deadline is after the period; closed (if at all)
    after ``until``, so it is not due in the period."""
    def go() -> None:
        cid = p.open("grid_case", t, i)
        p.triage(cid, t + H, "low")
        p.dispatch(cid, t + 2 * H)
        if close_at is not None:
            p.close(cid, close_at)
        p.expect(cid, received=in_period(t), triaged=in_period(t))
    p.then.append(go)


def triaged_after_until(p: Population, i: int) -> None:
    def go() -> None:
        cid = p.open("grid_case", UNTIL - 12 * H, i)
        p.triage(cid, UNTIL + H, "normal")
        p.expect(cid, received=True)
    p.then.append(go)


def closed_before_period(p: Population, i: int) -> None:
    def go() -> None:
        t = day(2, 2) + i * H
        cid = p.open("grid_case", t, i)
        p.triage(cid, t + H, "normal")
        p.dispatch(cid, t + 2 * H)
        p.close(cid, t + 2 * D)
        p.fire(cid, "start_revisit", t + 8 * D, secretary)
        p.fire(cid, "confirm", t + 10 * D, secretary, observation="未反弹")
        p.expect(cid)
    p.first.append(go)


# -- mediation scenarios ---------------------------------------------------------------------


def _parties(i: int) -> list[dict[str, str]]:
    return [{"name": f"甲某{i}", "side": "applicant", "kind": "person"},
            {"name": f"乙某{i}", "side": "respondent", "kind": "person"}]


def mediation(p: Population, i: int, t: datetime, path: str) -> None:
    """``path``: tier1 / three_office / escalated (tier 1 then 3) / referred /
    withdrawn / agreed (agreement, not resolved by ``until``) / ongoing."""
    def go() -> None:
        extra = {"injury": True} if path == "three_office" else {}
        cid = p.open("mediation", t, i, data={
            "summary": f"邻里纠纷{i}", "parties": _parties(i), "source": "walk_in", **extra})
        names = [x["name"] for x in _parties(i)]
        counts: dict[str, bool | int] = {}
        if path == "withdrawn":
            p.fire(cid, "withdraw", t + 2 * H, mediator, reason="当事人撤回")
            p.expect(cid, mediations_ended=in_period(t + 2 * H))
            return
        p.fire(cid, "accept", t + H, mediator, consent=dict.fromkeys(names, True))
        if path == "ongoing":
            p.expect(cid)
            return
        if path == "escalated":
            p.fire(cid, "escalate", t + D, mediator, reason="涉及法律问题")
        if path == "referred":
            p.fire(cid, "refer", t + D + H, mediator, channel="litigation", reason="调解不成")
            p.expect(cid, mediations_ended=in_period(t + D + H))
            return
        agreed = t + 2 * D + i * timedelta(minutes=90)
        p.fire(cid, "agree", agreed, mediator, terms="赔偿500元", signed_by=names,
               performance_due=(agreed + 2 * D).isoformat())
        if in_period(agreed):
            counts["agreements"] = 1
            for by in BYS:
                p.agreements[by][p.keys[cid][by]].append(agreed - t)
        p.fire(cid, "start_follow_up", agreed + 3 * D, mediator)
        resolved_at = agreed + 4 * D if path != "agreed" else UNTIL + D
        p.fire(cid, "resolve", resolved_at, mediator, outcome="已履行")
        ended = in_period(resolved_at)
        counts.update(mediations_ended=ended, mediations_resolved=ended,
                      resolved_at_tier1=ended and path == "tier1")
        p.expect(cid, **counts)
    (p.first if t + 12 * D < T_TICK else p.then).append(go)


def build(store: Store, scale: int = 1) -> Population:
    """The population: every scenario ``scale`` times over (instances spread over groups)."""
    p = Population(store)
    for k in range(scale):
        j = 10 * k
        for i in range(3):
            rejected(p, j + i, day(3, 2 + i, 9))
            on_time(p, j + i, day(3, 3 + i, 8))
            late(p, j + i, day(3, 10, 8 + i), close_at=day(3, 22, 10 + i))
            mediation(p, j + i, day(3, 21, i), "tier1")
        rejected(p, j, day(2, 20))                       # received before the period
        reported_only(p, j + 1, day(3, 25, 15))
        reported_only(p, j + 4, day(2, 27))
        on_time(p, j + 5, day(2, 28, 12))                 # received before, due in the period
        on_time(p, j + 3, day(3, 21, 9), revisit="pass")
        on_time(p, j + 4, day(3, 22, 9), revisit="reopen")
        on_time(p, j + 5, day(3, 29, 9), revisit="pass")  # revisit after until
        on_time(p, j + 7, day(3, 31, 9))                  # closed after until: not yet due
        late(p, j + 3, day(3, 12, 3), close_at=None)      # due, never closed
        late(p, j + 4, day(3, 13, 5), close_at=UNTIL + 2 * D)  # closed after until
        late(p, j + 5, day(2, 24, 4), close_at=day(3, 23))  # due before the period
        late(p, j + 6, day(3, 4, 6), close_at=day(3, 23, 12), extend_to=day(3, 15, 10))
        extended_on_time(p, j + 7, day(3, 5, 7))
        escalated_by_hand(p, j + 8, day(3, 21, 11))
        escalated_by_hand(p, j + 9, day(3, 31, 11))       # closed after until
        still_handling(p, j + 2, day(3, 25, 8), close_at=None)
        still_handling(p, j + 6, day(3, 26, 8), close_at=UNTIL + 3 * D)
        triaged_after_until(p, j + 8)
        closed_before_period(p, j + 9)
        mediation(p, j + 3, day(3, 22, 5), "tier1")
        mediation(p, j + 4, day(3, 21, 7), "three_office")
        mediation(p, j + 5, day(3, 22, 8), "three_office")
        mediation(p, j + 6, day(3, 21, 9), "escalated")
        mediation(p, j + 7, day(3, 21, 10), "referred")
        mediation(p, j + 8, day(3, 24, 10), "withdrawn")
        mediation(p, j + 9, day(3, 26, 10), "agreed")
        mediation(p, j + 1, day(3, 28, 10), "ongoing")
        mediation(p, j + 2, day(2, 1, 10), "tier1")       # all before the period
    p.run()
    return p


def expected_row(p: Population, by: str | None, group: str | None) -> dict[str, Any]:
    counts = p.counts[by].get(group, Counter())
    out: dict[str, Any] = {name: counts.get(name, 0) for name in gridflow._figures._COUNTS}
    stays: dict[str, dict[str, float]] = {}
    for (g, wf, state), values in p.stays[by].items():
        if g == group and values:
            seconds = statistics.median(v.total_seconds() for v in values)
            stays.setdefault(wf, {})[state] = seconds
    out["median_seconds_in_state"] = stays
    days = p.agreements[by].get(group)
    out["median_days_to_agreement"] = (
        statistics.median(v.total_seconds() for v in days) / 86400 if days else None)
    return out


def check_report(p: Population, report: Report, by: str | None) -> None:
    groups = {g for g, c in p.counts[by].items() if +c} | {
        g for (g, _, _), v in p.stays[by].items() if v}
    assert set(report.groups) == groups
    for group in groups:
        row = report.row(group)
        want = expected_row(p, by, group)
        for name in gridflow._figures._COUNTS:
            assert getattr(row, name) == want[name], (by, group, name)
        # Whole-second durations: the medians are exact in binary floating point.
        assert row.median_seconds_in_state == want["median_seconds_in_state"], (by, group)
        assert row.median_days_to_agreement == want["median_days_to_agreement"], (by, group)
        # Rates are the counts' ratios, exactly, and None on a zero denominator.
        c = want
        for rate, (num, den) in {
            "filing_rate": ("triaged", "received"), "closure_rate": ("closed", "due"),
            "on_time_rate": ("closed_on_time", "due"), "rework_rate": ("reopened", "due"),
            "extension_rate": ("extended", "due"), "in_grid_rate": ("closed_in_grid", "closed"),
            "revisit_pass_rate": ("revisits_passed", "revisits"),
            "mediation_success_rate": ("mediations_resolved", "mediations_ended"),
            "tier1_share": ("resolved_at_tier1", "mediations_resolved"),
        }.items():
            assert getattr(row, rate) == (c[num] / c[den] if c[den] else None), (group, rate)


@pytest.fixture(scope="module")
def memory_population() -> Population:
    return build(MemoryStore())


def reports(store: Store) -> dict[str | None, Report]:
    return {by: metrics.compute(store, since=SINCE, until=UNTIL, by=by) for by in BYS}


def test_population_covers_every_figure(memory_population: Population) -> None:
    total = memory_population.counts[None][None]
    for name in gridflow._figures._COUNTS:
        assert total[name] > 0, name
    # The figures the scenarios add up to, written out once as a sanity check.
    assert (total["received"], total["triaged"], total["due"], total["closed"],
            total["closed_on_time"]) == (23, 18, 15, 13, 9)
    assert (total["reopened"], total["extended"], total["closed_in_grid"]) == (1, 2, 8)
    assert (total["revisits"], total["revisits_passed"]) == (2, 1)
    assert (total["mediations_ended"], total["mediations_resolved"],
            total["resolved_at_tier1"], total["agreements"]) == (9, 7, 4, 8)


@pytest.mark.parametrize("by", BYS)
def test_memory_store_figures(memory_population: Population, by: str | None) -> None:
    report = metrics.compute(memory_population.engine.store, since=SINCE, until=UNTIL, by=by)
    check_report(memory_population, report, by)


def test_sql_store_figures_equal_memory(store: Store, memory_population: Population) -> None:
    """On each store (memory, SQLite file, PostgreSQL schema): the known figures, and
    reports equal to the MemoryStore's."""
    population = build(store)
    got = reports(store)
    want = reports(memory_population.engine.store)
    for by in BYS:
        check_report(population, got[by], by)
        assert got[by] == want[by], by
    quick = metrics.compute(store, since=SINCE, until=UNTIL, by="area", time_in_state=False)
    assert quick == metrics.compute(memory_population.engine.store, since=SINCE, until=UNTIL,
                                    by="area", time_in_state=False)
    assert all(not row.median_seconds_in_state for row in quick.rows)
    assert [r.received for r in quick.rows] == [r.received for r in got["area"].rows]


def test_workflow_filter(memory_population: Population) -> None:
    store = memory_population.engine.store
    both = metrics.compute(store, since=SINCE, until=UNTIL, by=None).row(None)
    grid = metrics.compute(store, since=SINCE, until=UNTIL, by=None,
                           workflow="grid_case").row(None)
    med = metrics.compute(store, since=SINCE, until=UNTIL, by=None,
                          workflow="mediation").row(None)
    assert grid.received == both.received and grid.mediations_ended == 0
    assert med.mediations_ended == both.mediations_ended and med.received == 0
    assert set(grid.median_seconds_in_state) == {"grid_case"}
    assert set(med.median_seconds_in_state) == {"mediation"}
    assert med.median_days_to_agreement == both.median_days_to_agreement


def test_as_of_until(memory_population: Population) -> None:
    """Events after ``until`` never change a period's figures: a report of March equals
    one computed on a copy of the store that holds only what happened before April."""
    store = memory_population.engine.store
    truncated = MemoryStore()
    for case in store.query(limit=10_000).items:
        events = [e for e in store.events(case.id) if e.at < UNTIL]
        if events:
            truncated._events[case.id] = events
            truncated._cases[case.id] = case
    assert reports(truncated) == reports(store)


def test_a_later_period(memory_population: Population) -> None:
    """April: the cases closed after 1 April fall due then; nothing of March repeats."""
    report = metrics.compute(memory_population.engine.store, since=UNTIL,
                             until=UNTIL + timedelta(days=30), by=None)
    row = report.row(None)
    assert row.received == 0 and row.triaged == 0
    # Closed in April without a breach (3), closed in April after a March breach
    # (due in March: not again).
    assert (row.due, row.closed, row.closed_on_time) == (3, 3, 3)
    assert row.mediations_ended == 1 and row.mediations_resolved == 1


# -- the API --------------------------------------------------------------------------------


def test_refuses_bad_arguments() -> None:
    store = MemoryStore()
    with pytest.raises(gridflow.InvalidArgument, match="has no time zone"):
        metrics.compute(store, since=datetime(2026, 3, 1), until=UNTIL)
    with pytest.raises(gridflow.InvalidArgument, match="period is empty"):
        metrics.compute(store, since=UNTIL, until=SINCE)
    with pytest.raises(gridflow.InvalidArgument, match="cannot group by 'street'"):
        metrics.compute(store, since=SINCE, until=UNTIL, by="street")
    assert isinstance(gridflow.InvalidPayload("x"), gridflow.GridflowError)


def test_rates_are_none_on_zero_denominators() -> None:
    row = Row("g")
    assert all(value is None for value in row.rates().values())
    assert row.to_dict()["filing_rate"] is None


def test_period_in_another_zone_is_the_same_instant(memory_population: Population) -> None:
    from zoneinfo import ZoneInfo

    cst = ZoneInfo("Asia/Shanghai")
    a = metrics.compute(memory_population.engine.store, since=SINCE.astimezone(cst),
                        until=UNTIL.astimezone(cst), by="grid")
    b = metrics.compute(memory_population.engine.store, since=SINCE, until=UNTIL, by="grid")
    assert a == b


def test_table_and_dicts(memory_population: Population) -> None:
    report = metrics.compute(memory_population.engine.store, since=SINCE, until=UNTIL,
                             by="grid")
    lines = report.table().splitlines()
    assert lines[0].startswith("group\treceived") and "按期结案率" in lines[0]
    assert [line.split("\t")[0] for line in lines[1:]] == list(GRIDS)
    dicts = report.to_dicts()
    assert [d["group"] for d in dicts] == list(GRIDS)
    assert dicts[0]["median_seconds_in_state"]["grid_case"]["triaged"] > 0


# -- memory and SQLite agree on random populations ------------------------------------------


def _random_population(store: Store, picks: list[tuple[int, int, int]]) -> None:
    p = Population(store)
    scenarios: list[Callable[[int, datetime], None]] = [
        lambda i, t: rejected(p, i, t),
        lambda i, t: on_time(p, i, t),
        lambda i, t: on_time(p, i, t, revisit="pass"),
        lambda i, t: on_time(p, i, t, revisit="reopen"),
        lambda i, t: late(p, i, min(t, T_TICK - 3 * D), close_at=T_TICK + (i % 20) * D),
        lambda i, t: escalated_by_hand(p, i, max(t, T_TICK + H)),
        lambda i, t: mediation(p, i, max(t, T_TICK + H), ("tier1", "escalated", "referred",
                                                           "three_office")[i % 4]),
    ]
    for kind, i, hours in picks:
        scenarios[kind](i, day(2, 20) + hours * H)
    p.run()


@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 30), st.integers(0, 24 * 45)),
                min_size=1, max_size=12))
def test_memory_and_sqlite_agree(tmp_path: Path, picks: list[tuple[int, int, int]]) -> None:
    memory = MemoryStore()
    _random_population(memory, picks)
    path = tmp_path / f"h{abs(hash(tuple(picks)))}.db"
    with gridflow.SQLStore(f"sqlite:///{path}") as sql:
        sql.create_schema()
        _random_population(sql, picks)
        for by in BYS:
            for since, until in ((SINCE, UNTIL), (day(2, 20), day(3, 15)),
                                 (day(3, 15), UNTIL + 10 * D)):
                assert (metrics.compute(sql, since=since, until=until, by=by)
                        == metrics.compute(memory, since=since, until=until, by=by))
    path.unlink()



def test_reachable_after_a_bare_import() -> None:
    import subprocess
    import sys

    code = ("import gridflow; print(gridflow.metrics.compute.__name__, "
            "gridflow.interop.open311.FIELDS[0])")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True).stdout
    assert out.split() == ["compute", "service_request_id"]


# -- dates, naive datetimes, printing (issue 16's findings on 0.1) -------------------------


def test_dates_are_whole_local_days() -> None:
    from datetime import date
    from zoneinfo import ZoneInfo

    bj = ZoneInfo("Asia/Shanghai")
    clock = FixedClock(datetime(2026, 3, 31, 23, 30, tzinfo=bj))  # 15:30 UTC, 31 March
    engine = Engine(clock=clock, entry_points=False)
    anyone = Actor("r", ["resident"], gridflow.ALL_GRIDS)
    engine.open("grid_case", version=1,
                actor=anyone, grid="华三-1", data={"title": "x", "source": "visit"})
    march = metrics.compute(engine.store, since=date(2026, 3, 1), until=date(2026, 3, 31))
    assert march.row("华三-1").received == 1
    assert (march.since, march.until) == (datetime(2026, 2, 28, 16, tzinfo=UTC),
                                          datetime(2026, 3, 31, 16, tzinfo=UTC))
    april = metrics.compute(engine.store, since=date(2026, 4, 1), until=date(2026, 4, 30))
    assert april.row("华三-1").received == 0
    utc_april = metrics.compute(engine.store, since=date(2026, 3, 31), until=date(2026, 3, 31),
                                tz="UTC")
    assert utc_april.row("华三-1").received == 1
    with pytest.raises(gridflow.InvalidArgument, match="unknown time zone"):
        metrics.compute(engine.store, since=date(2026, 3, 1), until=date(2026, 3, 2), tz="火星")


def test_a_naive_datetime_is_an_argument_error_not_a_payload_error() -> None:
    with pytest.raises(gridflow.InvalidArgument) as caught:
        metrics.compute(MemoryStore(), since=datetime(2026, 3, 1), until=UNTIL)
    assert not isinstance(caught.value, gridflow.InvalidPayload)
    assert isinstance(caught.value, ValueError)
    with pytest.raises(gridflow.InvalidArgument, match="must be a date or an aware datetime"):
        metrics.compute(MemoryStore(), since="2026-03-01", until=UNTIL)  # type: ignore[arg-type]


def test_a_report_prints_as_an_aligned_table() -> None:
    report = metrics.Report(SINCE, UNTIL, "grid", None,
                            (Row("华三-1", received=12, triaged=9), Row("华三-2", received=3)))
    text = str(report)
    lines = text.splitlines()
    assert lines[0].startswith("supervision figures ") and "by grid" in lines[0]
    assert lines[1].split()[:3] == ["group", "received", "triaged"]
    assert lines[3].split()[:3] == ["华三-1", "12", "9"]
    # Columns line up, Chinese characters counted as two columns wide.
    import unicodedata

    def width(s: str) -> int:
        return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in s)

    assert len({width(line) for line in lines[1:]}) == 1
    assert "Row(" not in text and "\t" not in text


@pytest.mark.parametrize("time_in_state", [False, True])
def test_a_database_failure_of_the_figures_is_a_store_error(tmp_path: Path,
                                                            time_in_state: bool) -> None:
    import sqlite3

    path = tmp_path / "broken.db"
    store = gridflow.SQLStore(f"sqlite:///{path}")
    store.create_schema()
    with sqlite3.connect(path) as raw:  # columns the figures read, gone
        raw.execute("ALTER TABLE gridflow_events RENAME COLUMN stay_us TO was_stay_us")
        raw.execute("ALTER TABLE gridflow_cases RENAME COLUMN f_at_min TO was_f_at_min")
    since = datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(gridflow.StoreError, match="computing the figures"):
        metrics.compute(store, since=since, until=since + timedelta(days=31),
                        time_in_state=time_in_state)
    with sqlite3.connect(path) as raw:
        raw.execute("ALTER TABLE gridflow_cases RENAME COLUMN data TO was_data")
    with pytest.raises(gridflow.StoreError, match="computing the problem classes"):
        metrics.problem_classes(store, since=since, until=since + timedelta(days=31))
    store.close()
