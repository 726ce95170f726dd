"""The stories `gridflow demo` plays: the source article's cases, step by step.

Source: a report from Huayang Road sub-district (华阳路街道), Changning,
Shanghai. The dates are made up (the article gives none) but plausible, and
fixed, so the demo prints the same thing every time. Which grid the hot-pot
stories belong to is not in the source either; they are put in a second grid
so that the figures have two grids to compare.

Every step goes through the public `Engine` API; nothing is written to the
store any other way.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from gridflow.clock import FixedClock
from gridflow.engine import Engine
from gridflow.model import ALL_GRIDS, Actor, Case

__all__ = ["ALLEY", "CASE_IDS", "SCALD", "SCALD_FIX", "SECOND_VICTIM", "START", "STORIES",
           "play"]

#: China Standard Time: the stories happen in Shanghai.
CST = timezone(timedelta(hours=8), "CST")
#: When the demo's clock starts: Monday 2 March 2026, 09:00 in Shanghai.
START = datetime(2026, 3, 2, 9, 0, tzinfo=CST)

ALLEY = "demo-alley-324"
SCALD = "demo-scald-xie"
SCALD_FIX = "demo-scald-fix"
SECOND_VICTIM = "demo-scald-wang"
#: Every case id the demo opens, in story order.
CASE_IDS = (ALLEY, SCALD, SCALD_FIX, SECOND_VICTIM)
#: The stories, by the key `play` reports as it starts each: (English, Chinese).
STORIES = {
    "alley": ("the alley near Lane 324 (grid case)", "长宁支路324弄附近的小巷（网格案件）"),
    "scald": ("the hot-pot scald (mediation, and its rectification grid case)",
              "火锅店烫伤（多元调解，以及关联的整改网格案件）"),
    "second_victim": ("the second scald victim (mediation)", "第二位烫伤受害人（多元调解）"),
}

GRID_1 = "第一综合网格"
GRID_2 = "第二综合网格"

# The people of the stories: their ids are what the history records.
WORKER = Actor("grid-worker-huasan", ["grid_worker"], [GRID_1])
SECRETARY = Actor("secretary-huasan", ["coordinator"], [GRID_1])
SECRETARY_2 = Actor("secretary-grid-2", ["coordinator"], [GRID_2])
DEPARTMENTS = {
    "社区管理办": Actor("dept-community-office", ["department"], grids=ALL_GRIDS),
    "城运中心": Actor("dept-city-operation", ["department"], grids=ALL_GRIDS),
    "综合执法队": Actor("dept-law-enforcement", ["department"], grids=ALL_GRIDS),
    "清运单位": Actor("dept-haulage", ["department"], grids=ALL_GRIDS),
}
#: 退单: a department dispatched by mistake, which sends the task back.
MISROUTED = "绿化市容所"
GREENING = Actor("dept-greening", ["department"], grids=ALL_GRIDS)
#: The street's system operator, who runs the upgrade to grid_case@2.
OPERATOR = Actor("street-it-ops", ["street"], grids=ALL_GRIDS)
#: 监督员: the sub-district's inspector, who checks the result on site (核查).
INSPECTOR = Actor("inspector-huayang", ["inspector"], grids=ALL_GRIDS)
RESIDENT = Actor("resident-huasan", ["resident"], [GRID_1])
#: The alley's place (``location.key``): its problem class (一类事) with the category.
ALLEY_PLACE = "长宁支路324弄"
VOLUNTEER = Actor("volunteer-huasan", ["volunteer"], [GRID_1])
VOLUNTEER_2 = Actor("volunteer-grid-2", ["volunteer"], [GRID_2])
JUDICIAL = Actor("judicial-office-huayang", ["judicial_office"], grids=ALL_GRIDS)
POLICE = Actor("police-station-huayang", ["police"], grids=ALL_GRIDS)
LAWYER = Actor("lawyer-firm", ["lawyer"], grids=ALL_GRIDS)
MEDIATOR = Actor("mediator-grid-2", ["mediator"], [GRID_2])


def _at(clock: FixedClock, month: int, day: int, hour: int, minute: int = 0) -> None:
    clock.set(datetime(2026, month, day, hour, minute, tzinfo=CST))


def _alley(engine: Engine, clock: FixedClock) -> None:
    """问需于民 → 一呼百应 → 长效治理: the alley near Lane 324, Changning Branch Road,
    on ``grid_case@2``: 签收 by the four departments (one late, urged by the timer), a
    misrouted department's 退单, a failed 核查 and the rework, then 满意度回访."""
    _at(clock, 3, 2, 10)
    engine.open("grid_case", case_id=ALLEY, actor=WORKER, grid=GRID_1, version=2, data={
        "title": "长宁支路324弄附近无名小巷违规堆物、加装地锁",
        "source": "visit",
        "address": "长宁支路324弄附近无名小巷",
        "location": {"key": ALLEY_PLACE},
        "area": "华三居民区",
        "problems": ["违规堆物", "加装地锁"],
    })
    _at(clock, 3, 2, 16)
    engine.fire(ALLEY, "triage", actor=SECRETARY, payload={
        "category": "违规堆物", "priority": "normal", "area": "华三居民区"})
    # The grid joint meeting (网格党建联席会议) agrees the joint plan the next day.
    _at(clock, 3, 3, 14)
    engine.fire(ALLEY, "dispatch", actor=SECRETARY, payload={
        "departments": [*DEPARTMENTS, MISROUTED],
        "plan": "网格党建联席会议制定联合整治工作方案:清理堆物、拆除私装地锁、清运垃圾",
    })
    _at(clock, 3, 3, 14, 30)
    engine.fire(ALLEY, "return_task", actor=GREENING, payload={
        "department": MISROUTED, "reason": "小巷堆物清运由清运单位负责,非本所职责"})
    # 签收 within 2 working hours (by 16:00), but the haulage company is out on a job.
    for minute, name in zip((40, 50, 55), ("城运中心", "综合执法队", "社区管理办"), strict=True):
        _at(clock, 3, 3, 14, minute)
        engine.fire(ALLEY, "acknowledge", actor=DEPARTMENTS[name], payload={"department": name})
    _timer(engine, clock, 3, 4)  # 08:00: the 签收 limit passed at 16:00: 清运单位 is urged
    _at(clock, 3, 4, 9, 30)
    engine.fire(ALLEY, "acknowledge", actor=DEPARTMENTS["清运单位"],
                payload={"department": "清运单位"})
    results = {
        "综合执法队": "依法告知并拆除私装地锁",
        "清运单位": "地毯式清理,堆物全部清运",
        "社区管理办": "组织居民协商小巷日常管理",
        "城运中心": "派单跟踪,现场复核完成",
    }
    for hour, (name, result) in enumerate(results.items(), start=9):
        _at(clock, 3, 6, hour)
        engine.fire(ALLEY, "report_done", actor=DEPARTMENTS[name],
                    payload={"department": name, "result": result})
    _at(clock, 3, 6, 14)
    engine.fire(ALLEY, "submit_check", actor=SECRETARY)
    _at(clock, 3, 6, 16)
    engine.fire(ALLEY, "fail_check", actor=INSPECTOR, payload={
        "reason": "现场核查:私装地锁的底座仍在,影响通行"})
    # Rework: every department reports again (their 签收 stays valid).
    reworked = {
        "综合执法队": "切除地锁底座,路面修补",
        "清运单位": "复查无新增堆物",
        "社区管理办": "告知居民整改结果",
        "城运中心": "复核完成",
    }
    for minute, (name, result) in zip((0, 15, 30, 45), reworked.items(), strict=True):
        _at(clock, 3, 9, 9, minute)
        engine.fire(ALLEY, "report_done", actor=DEPARTMENTS[name],
                    payload={"department": name, "result": result})
    _at(clock, 3, 9, 11)
    engine.fire(ALLEY, "submit_check", actor=SECRETARY)
    _at(clock, 3, 9, 15)
    engine.fire(ALLEY, "pass_check", actor=INSPECTOR, payload={
        "observation": "核查通过:堆物清除,地锁及底座拆除,小巷畅通"})
    _at(clock, 3, 10, 10)
    engine.fire(ALLEY, "rate", actor=RESIDENT, payload={"satisfaction": "satisfied"})
    _at(clock, 3, 20, 10)
    engine.fire(ALLEY, "note", actor=VOLUNTEER, payload={
        "text": "华三居民区组建社区志愿者队伍,每周巡查小巷"})


def _scald(engine: Engine, clock: FixedClock) -> None:
    """The hot-pot scald: straight to the three-office linkage, plus a rectification case."""
    _at(clock, 4, 13, 10)
    engine.open("mediation", case_id=SCALD, actor=JUDICIAL, grid=GRID_2, data={
        "summary": "火锅店炭炉锅底未做完全防护,消费者腿部烫伤,双方就赔偿数额发生矛盾",
        "source": "screening",
        "parties": [
            {"name": "谢女士", "side": "applicant", "kind": "person"},
            {"name": "某火锅店", "side": "respondent", "kind": "organisation"},
        ],
        "injury": True,
    })
    _at(clock, 4, 13, 11)
    engine.fire(SCALD, "accept", actor=JUDICIAL,
                payload={"consent": {"谢女士": True, "某火锅店": True}})
    _at(clock, 4, 13, 15)
    engine.fire(SCALD, "note", actor=POLICE, payload={
        "text": "派出所参与三所联动,现场了解情况,防止矛盾激化"})
    _at(clock, 4, 14, 10)
    engine.fire(SCALD, "note", actor=LAWYER, payload={
        "text": "律师提供法律咨询,引导当事人以合法途径表达诉求"})
    # The restaurant must remove the hazard: a grid case of its own, linked. The
    # second grid's system still ran grid_case@1 that day: the case opens on @1 and
    # the shipped plan moves it to @2 the next morning, mid-handling.
    _at(clock, 4, 14, 11)
    engine.open("grid_case", case_id=SCALD_FIX, actor=SECRETARY_2, grid=GRID_2, links=[SCALD],
                version=1, data={"title": "火锅店炭炉锅底未做完全防护,存在烫伤隐患",
                                 "source": "other", "area": "沿街商铺"})
    _at(clock, 4, 14, 14)
    engine.fire(SCALD_FIX, "triage", actor=SECRETARY_2,
                payload={"category": "安全隐患", "priority": "urgent"})
    _at(clock, 4, 14, 14, 30)
    engine.fire(SCALD_FIX, "dispatch", actor=SECRETARY_2, payload={
        "departments": ["综合执法队"], "plan": "督促商家为炭炉加装防护并设置安全提示"})
    _at(clock, 4, 15, 8, 30)
    # A department dispatched under @1 counts as having acknowledged (签收) its task.
    from gridflow.migrate import GRID_CASE_V1_TO_V2  # (imported when used: see __init__)

    engine.migrate(GRID_CASE_V1_TO_V2, actor=OPERATOR, cases=[SCALD_FIX])
    _at(clock, 4, 15, 10)
    engine.fire(SCALD_FIX, "report_done", actor=DEPARTMENTS["综合执法队"], payload={
        "department": "综合执法队", "result": "商家已为炭炉加装防护罩并张贴安全提示"})
    _at(clock, 4, 15, 10, 30)
    engine.fire(SCALD_FIX, "submit_check", actor=SECRETARY_2)
    _at(clock, 4, 15, 11)
    engine.fire(SCALD_FIX, "pass_check", actor=INSPECTOR, payload={
        "observation": "核查通过:防护罩已安装,安全提示醒目"})
    _at(clock, 4, 16, 15)
    engine.fire(SCALD, "agree", actor=JUDICIAL, payload={
        "terms": "商家赔偿医疗等费用并完成整改",
        "signed_by": ["谢女士", "某火锅店"],
        "performance_due": "2026-04-30T18:00:00+08:00",
    })


def _second_victim(engine: Engine, clock: FixedClock) -> None:
    """王某某 read about the first case and came to the judicial office herself."""
    _at(clock, 5, 11, 9, 30)
    engine.open("mediation", case_id=SECOND_VICTIM, actor=JUDICIAL, grid=GRID_2,
                links=[SCALD], data={
                    "summary": "同样遇到烫伤纠纷,看到“上海长宁”公众号宣传后慕名前来求助",
                    "source": "walk_in",
                    "parties": [
                        {"name": "王某某", "side": "applicant", "kind": "person"},
                        {"name": "某餐饮店", "side": "respondent", "kind": "organisation"},
                    ],
                    "injury": True,
                })
    _at(clock, 5, 11, 10)
    engine.fire(SECOND_VICTIM, "accept", actor=JUDICIAL,
                payload={"consent": {"王某某": True, "某餐饮店": True}})
    _at(clock, 5, 13, 16)
    engine.fire(SECOND_VICTIM, "agree", actor=JUDICIAL, payload={
        "terms": "商家赔偿相关费用", "signed_by": ["王某某", "某餐饮店"],
        "performance_due": "2026-05-20T18:00:00+08:00",
    })


def _timer(engine: Engine, clock: FixedClock, month: int, day: int) -> None:
    """The timer runs once that morning (a host runs `gridflow tick` from cron)."""
    _at(clock, month, day, 8)
    engine.tick()


def _v2(engine: Engine) -> None:
    """Register the recurrence finder of ``grid_case@2`` (一类事) unless it is."""
    from gridflow.workflows import grid_case_v2

    if not any(isinstance(p, grid_case_v2.Recurrence) for p in engine.plugins.get_plugins()):
        engine.register(grid_case_v2.Recurrence(engine.store))


def play(engine: Engine, clock: FixedClock, *, mediation: bool = True,
         progress: Callable[[str], Any] | None = None) -> list[str]:
    """Play every story on ``engine``, in date order; returns the ids of the cases opened.

    The grid cases run on ``grid_case@2`` (registered on ``engine`` if it is not).

    ``mediation=False`` plays only the alley (for a gridflow without the
    mediation workflow). ``progress`` is called with each story's key in
    `STORIES` as it starts.

    Example:
        >>> engine = Engine(clock=FixedClock(START), entry_points=False)
        >>> play(engine, engine.clock, progress=print)  # doctest: +ELLIPSIS
        alley
        scald
        second_victim
        ['demo-alley-324', ...]
    """
    _v2(engine)
    say = progress or (lambda _text: None)
    say("alley")
    _alley(engine, clock)
    # The look-back (回头看) starts 30 days after closing: the timer starts it.
    _timer(engine, clock, 4, 9)
    _at(clock, 4, 10, 10)
    engine.fire(ALLEY, "confirm", actor=VOLUNTEER, payload={
        "observation": "回头看:小巷保持畅通整洁,堆物和地锁未反弹"})
    if not mediation:
        return [ALLEY]
    say("scald")
    _scald(engine, clock)
    # The agreement's performance date passes: the timer starts the follow-up visit.
    _timer(engine, clock, 5, 1)
    _at(clock, 5, 6, 10)
    engine.fire(SCALD, "resolve", actor=MEDIATOR,
                payload={"outcome": "赔偿已履行,整改完成,纠纷圆满化解"})
    say("second_victim")
    _second_victim(engine, clock)
    _timer(engine, clock, 5, 16)
    _at(clock, 5, 16, 11)
    engine.fire(SCALD_FIX, "confirm", actor=VOLUNTEER_2, payload={
        "observation": "回头看:炭炉防护到位,未再发生烫伤"})
    _timer(engine, clock, 5, 21)
    _at(clock, 5, 22, 10)
    engine.fire(SECOND_VICTIM, "resolve", actor=MEDIATOR,
                payload={"outcome": "赔偿已履行,纠纷再次圆满化解"})
    return [ALLEY, SCALD, SCALD_FIX, SECOND_VICTIM]


def lookup(engine: Engine, case_id: str) -> Case:
    """The demo case ``case_id`` (raises `CaseNotFound` if the demo did not open it)."""
    return engine.get(case_id)
