"""Walk one grid case (网格案件) through its whole life and print its history.

The alley near Lane 324, Changning Branch Road (长宁支路324弄), from the source
article: found on a door-to-door visit, triaged into the problem list, handled
by four departments together (each acknowledges its task, 签收, and reports it
done), checked on site by an inspector (核查) which closes it, rated by the
resident (满意度回访), looked back at by a volunteer 30 days later (the timer
starts the look-back), archived. It plays ``grid_case@2``, the version ``open``
takes by default.

Run it with ``python examples/walkthrough.py`` (``make demo`` does). It needs
only the core install: a `MemoryStore`, and a `FixedClock` so the output is
the same on every run. ``gridflow demo`` plays every story of the article on
a SQLite file.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import gridflow

GRID = "第一综合网格"
CST = timezone(timedelta(hours=8))  # Shanghai


def main() -> None:
    clock = gridflow.FixedClock(datetime(2026, 3, 2, 2, 0, tzinfo=UTC))  # 10:00 in Shanghai
    engine = gridflow.Engine(store=gridflow.MemoryStore(), clock=clock, entry_points=False)
    worker = gridflow.Actor("grid-worker-huasan", ["grid_worker"], [GRID])
    secretary = gridflow.Actor("secretary-huasan", ["coordinator"], [GRID])
    volunteer = gridflow.Actor("volunteer-huasan", ["volunteer"], [GRID])
    inspector = gridflow.Actor("inspector-changning", ["inspector"], [GRID])
    resident = gridflow.Actor("resident-324", ["resident"], [GRID])
    departments = {"社区管理办": "community-office", "城运中心": "city-operation",
                   "综合执法队": "law-enforcement", "清运单位": "haulage"}

    # 问需于民: found on a visit, put on the problem list.
    case = engine.open("grid_case", case_id="alley-324", actor=worker, grid=GRID, data={
        "title": "长宁支路324弄附近无名小巷违规堆物、加装地锁", "source": "visit"})
    clock.advance(timedelta(hours=6))
    engine.fire(case.id, "triage", actor=secretary,
                payload={"category": "违规堆物", "priority": "normal", "area": "华三居民区"})

    # 一呼百应: the grid joint meeting agrees a plan; every department reports its part.
    clock.advance(timedelta(days=1))
    engine.fire(case.id, "dispatch", actor=secretary,
                payload={"departments": list(departments), "plan": "联合整治工作方案"})
    staff = {name: gridflow.Actor(dept_id, ["department"], grids=gridflow.ALL_GRIDS)
             for name, dept_id in departments.items()}
    clock.advance(timedelta(minutes=30))  # 签收 within 2 working hours of dispatch
    for name, dept in staff.items():
        engine.fire(case.id, "acknowledge", actor=dept, payload={"department": name})
    clock.advance(timedelta(hours=16))  # next morning, 08:30
    for name, dept in staff.items():
        clock.advance(timedelta(hours=1))
        engine.fire(case.id, "report_done", actor=dept,
                    payload={"department": name, "result": "完成"})
    print("the secretary may now:", ", ".join(engine.allowed(case.id, secretary)))
    clock.advance(timedelta(hours=1))
    engine.fire(case.id, "submit_check", actor=secretary)

    # 核查: the inspector checks on site, which closes the case; the resident rates it.
    clock.advance(timedelta(hours=2))
    engine.fire(case.id, "pass_check", actor=inspector,
                payload={"observation": "小巷已清理,地锁已拆除"})
    clock.advance(timedelta(days=1))
    engine.fire(case.id, "rate", actor=resident, payload={"satisfaction": "satisfied"})

    # 长效治理: 30 days later the timer starts the look-back; a volunteer confirms.
    clock.advance(timedelta(days=31))
    engine.tick()
    clock.advance(timedelta(hours=2))
    engine.fire(case.id, "confirm", actor=volunteer, payload={"observation": "小巷畅通整洁,未反弹"})

    spec = engine.workflow("grid_case")
    labels = {t.trigger: f"{t.label('zh')} / {t.label('en')}" for t in spec.transitions}
    labels["open"] = "新建 / Opened"
    print(f"\ncase {case.id}: {spec.label('zh')} / {spec.label('en')}")
    for event in engine.history(case.id):
        when = event.at.astimezone(CST).strftime("%Y-%m-%d %H:%M")
        move = f"{event.source or ''} -> {event.dest}" if event.dest else f"{event.source} (stays)"
        print(f"  {event.seq:>2}  {when}  {move:<28}  {event.actor.id:<22}  "
              f"{labels[event.trigger]}")
    final = engine.verify(case.id)  # hash chain intact, replay gives the stored state
    print(f"final state: {final.state} ({spec.state(final.state).label('zh')}), "
          f"{final.version} events, history verified")


if __name__ == "__main__":
    main()
