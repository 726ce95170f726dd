"""What the ``gridflow`` command shows, in English or Chinese: case timelines
(every time in one zone, payload keys and codes as labels) and the figures of
a report (which figures apply to which workflow, and for workflows without
built-in figures, the cases in each state and the median time spent there).

Labels come from the registered specs (states, triggers, roles, the
workflow's name); the payload keys and choice values of the built-in
workflows have Chinese labels here. Lines are laid out to a width with
`gridflow._textlayout`.

Example:
    >>> w("figures", "zh")
    '监督考核指标'
    >>> show_value("priority", "urgent", "zh", SHANGHAI)
    '紧急'
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, tzinfo
from typing import Any

from gridflow._errors import UnknownWorkflow
from gridflow._session import SHANGHAI
from gridflow._textlayout import table, wrap, wrap_parts
from gridflow.engine import Engine
from gridflow.model import Case, Event
from gridflow.spec import WorkflowSpec

__all__ = ["FIGURES", "SHANGHAI", "Labels", "class_lines", "duration", "event_details",
           "figure_lines", "show_value", "timeline", "w"]

# -- words in two languages --------------------------------------------------------------

_WORDS: dict[str, tuple[str, str]] = {
    # key: (en, zh)
    "open": ("Opened", "新建"),
    "link": ("Linked to a case", "关联案件"),
    "overdue": ("Overdue", "超时"),
    "upgrade": ("Upgraded to gridflow 0.2", "升级到 gridflow 0.2"),
    "migrate": ("Migrated to a new version", "迁移到新版本"),
    "migrated": ("{label} @{source} → @{target} (plan {plan})", "{label} @{source} → @{target}"),
    "case": ("Case", "案件"),
    "state": ("state", "状态"),
    "grid": ("grid", "网格"),
    "links": ("linked", "关联"),
    "verified": ("history verified: {n} events, hash chain intact, replay matches",
                 "历史已验证:{n} 条事件,哈希链完整,重放一致"),
    "figures": ("Supervision figures", "监督考核指标"),
    "demo_title": ("gridflow demo: the stories of Huayang Road sub-district (华阳路街道)",
                   "gridflow 演示：华阳路街道的网格治理案例"),
    "stored": ("Stored in {where}. Try:", "数据已保存在 {where}。可以试试："),
    "no_cases": ("no cases", "没有案件"),
    "all": ("all", "全部"),
    "now": ("now", "现在"),
    "breach": ("deadline {at} passed in state {state}", "已过时限 {at}（状态：{state}）"),
    "marked": ("deadline {at} passed; marked overdue", "已过时限 {at}，标记为超期"),
    "refused": ("the breach step was refused: {why}", "超时步骤被拒绝：{why}"),
    "applies": ("{label} ({name}): figures of {name} cases only",
                "{label} ({name})：以下指标只统计该流程的案件"),
    "no_figures": ("{label} ({name}): no supervision figures are defined for it; its cases "
                   "by state and the median time in each state follow",
                   "{label} ({name})：没有为此流程定义考核指标；"
                   "以下为各状态的案件数和停留时间中位数"),
    "by_state": ("Cases by state now (opened in the period)",
                 "各状态案件数（本期新建的案件，按当前状态）"),
    "in_state": ("Median time in each state (stays that ended in the period)",
                 "各状态停留时间中位数（本期结束的停留）"),
    "classes": ("Problem classes (一类事): grid cases opened in the period, by place "
                "(location.key) and category",
                "一类事：本期新建的网格案件，按地点（location.key）和分类"),
    "no_classes": ("no grid case opened in the period has a location key",
                   "本期新建的网格案件都没有地点（location.key）"),
    "scorecard": ("{label} (grid_case): the closed-loop figures of each department (签收, 退单, "
                  "核查, 满意度, 督办)",
                  "{label}（grid_case）：各部门的闭环考核指标（签收、退单、核查、满意度、督办）"),
    "min": ("{n} min", "{n} 分钟"),
    "h": ("{n} h", "{n} 小时"),
    "d": ("{n} d", "{n} 天"),
    "true": ("true", "是"),
    "false": ("false", "否"),
    "none": ("null", "无"),
}


def w(key: str, lang: str) -> str:
    """The word ``key`` in ``lang`` (``en`` or ``zh``).

    Example:
        >>> w("open", "en"), w("open", "zh")
        ('Opened', '新建')
    """
    en, zh = _WORDS[key]
    return zh if lang == "zh" else en


# -- payload keys and values --------------------------------------------------------------

#: Chinese labels of the payload and data keys of the built-in workflows (and the
#: engine's own): English shows the key itself.
KEY_LABELS_ZH: Mapping[str, str] = {
    "title": "标题", "summary": "概要", "source": "来源", "address": "地址",
    "area": "居民区", "problems": "问题", "category": "分类", "priority": "优先级",
    "reason": "原因", "duplicate_of": "重复于", "departments": "部门", "plan": "工作方案",
    "department": "部门", "result": "处置结果", "observation": "核查情况", "text": "内容",
    "until": "延期至", "deadline_at": "时限", "on_time": "按期", "consent": "当事人同意",
    "tier": "调解层级", "terms": "协议内容", "signed_by": "签字方",
    "performance_due": "履行期限", "court": "法院", "outcome": "结果", "channel": "转出渠道",
    "parties": "当事人", "injury": "有人受伤", "claim_amount": "索赔金额",
    "violence_risk": "有暴力风险", "state": "状态", "breach_refused": "超时步骤被拒绝",
    "case": "案件",
    "location": "地点", "key": "地点编码", "satisfaction": "满意度", "due_at": "签收时限",
    "recurrence_of": "反弹自",
}

#: Chinese labels of choice values (codes) of the built-in workflows, by key.
VALUE_LABELS_ZH: Mapping[str, Mapping[Any, str]] = {
    "priority": {"urgent": "紧急", "normal": "一般", "low": "较低"},
    "source": {"visit": "走访发现", "resident": "居民反映", "hotline": "热线", "patrol": "巡查",
               "other": "其他", "screening": "矛盾排查", "walk_in": "来访",
               "police_referral": "派出所移交", "court_referral": "法院委派",
               "grid_case": "网格案件"},
    "channel": {"litigation": "诉讼", "arbitration": "仲裁", "administrative": "行政途径"},
    "consent": {True: "同意", False: "不同意"},
    "satisfaction": {"satisfied": "满意", "basically_satisfied": "基本满意",
                     "dissatisfied": "不满意"},
}

_INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})")


def _when(value: datetime, tz: tzinfo) -> str:
    return value.astimezone(tz).strftime("%Y-%m-%d %H:%M")


def show_value(key: str, value: Any, lang: str, tz: tzinfo,
               spec: WorkflowSpec | None = None) -> str:
    """A payload value as shown: instants in ``tz``, codes and booleans as words in
    Chinese, lists joined, parties by name; ``key`` says whose value it is.

    Example:
        >>> show_value("deadline_at", "2026-04-05T07:00:00+00:00", "en", SHANGHAI)
        '2026-04-05 15:00'
        >>> show_value("consent", {"谢女士": True}, "zh", SHANGHAI)
        '谢女士 同意'
    """
    zh = lang == "zh"
    sep = "、" if zh else ", "
    if isinstance(value, bool):
        own = VALUE_LABELS_ZH.get(key, {}).get(value) if zh else None
        return own or w("true" if value else "false", lang)
    if value is None:
        return w("none", lang)
    if isinstance(value, str):
        if _INSTANT.fullmatch(value):
            try:
                return _when(datetime.fromisoformat(value.replace("Z", "+00:00")), tz)
            except ValueError:
                return value
        if zh:
            if key in ("tier", "state") and spec is not None:
                try:
                    return spec.state(value).label(lang)
                except KeyError:
                    pass
            return VALUE_LABELS_ZH.get(key, {}).get(value, value)
        return value
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        parts = [str(v.get("name", "…")) if isinstance(v, dict) else
                 show_value(key, v, lang, tz, spec) for v in value]
        return sep.join(parts)
    if isinstance(value, dict):
        mark = " " if zh else ": "
        return sep.join(f"{KEY_LABELS_ZH.get(k, k) if zh else k}{mark}"
                        f"{show_value(key, v, lang, tz, spec)}" for k, v in value.items())
    return json.dumps(value, ensure_ascii=False)


def _pairs(payload: Mapping[str, Any], lang: str, tz: tzinfo,
           spec: WorkflowSpec | None) -> str:
    if lang == "zh":
        return "；".join(f"{KEY_LABELS_ZH.get(k, k)}：{show_value(k, v, lang, tz, spec)}"
                        for k, v in payload.items())
    return "; ".join(f"{k}={show_value(k, v, lang, tz, spec)}" for k, v in payload.items())


# -- labels from the specs ------------------------------------------------------------------


class Labels:
    """Labels of workflows, states, triggers and roles in one language, from the
    specs registered on ``engine`` (names where a spec is not registered).

    Example:
        >>> import gridflow
        >>> labels = Labels(gridflow.Engine(entry_points=False), "zh")
        >>> spec = labels.workflow_spec("grid_case")
        >>> labels.state(spec, "closed"), labels.trigger(spec, "triage")
        ('已结案', '立案分类')
    """

    def __init__(self, engine: Engine, lang: str) -> None:
        self.engine = engine
        self.lang = lang

    def workflow_spec(self, name: str, version: int | None = None) -> WorkflowSpec | None:
        """The registered spec, or ``None``."""
        try:
            return self.engine.workflow(name, version)
        except UnknownWorkflow:
            return None

    def spec(self, case: Case) -> WorkflowSpec | None:
        """The spec ``case`` runs on, or ``None`` if it is not registered."""
        return self.workflow_spec(case.workflow, case.workflow_version)

    def workflow(self, name: str) -> str:
        """The workflow's label (its latest registered version's), or its name."""
        spec = self.workflow_spec(name)
        return spec.label(self.lang) if spec is not None else name

    def state(self, spec: WorkflowSpec | None, name: str | None) -> str:
        """A state's label."""
        if name is None:
            return ""
        if spec is not None:
            try:
                return spec.state(name).label(self.lang)
            except KeyError:
                pass
        return name

    def trigger(self, spec: WorkflowSpec | None, trigger: str) -> str:
        """A trigger's label (the engine's own ``open``, ``link``, ``overdue`` too)."""
        if trigger in ("open", "link", "overdue", "upgrade", "migrate"):
            return w(trigger, self.lang)
        for tr in spec.transitions if spec is not None else ():
            if tr.trigger == trigger:
                return tr.label(self.lang)
        return trigger

    def role(self, spec: WorkflowSpec | None, role: str) -> str:
        """A role's label: declared by the spec, or registered (a plugin, gridflow)."""
        for own in spec.roles if spec is not None else ():
            if own.name == role:
                label = own.label_zh if self.lang == "zh" else own.label_en
                return label or role
        known = self.engine.roles.get(role)
        if known is None:
            return role
        return known[0] if self.lang == "zh" else known[1]

    def actor(self, event: Event, spec: WorkflowSpec | None) -> str:
        """``id (role/role)``."""
        names = [self.role(spec, r) for r in sorted(event.actor.roles)]
        return f"{event.actor.id} ({'/'.join(names)})" if names else event.actor.id


# -- timelines ---------------------------------------------------------------------------


def event_details(event: Event, labels: Labels, spec: WorkflowSpec | None,
                  tz: tzinfo) -> str:
    """What a step said: the opening title, the linked case, the timer's reason, or
    the payload's keys and values.

    Example:
        >>> import gridflow
        >>> from datetime import datetime, UTC
        >>> t = datetime(2026, 4, 6, tzinfo=UTC)
        >>> e = Event("c", 9, "start_revisit", "closed", "revisit", gridflow.Actor.system(), t,
        ...           {"reason": "…", "deadline_at": "2026-04-05T07:00:00+00:00"}, None, "", "")
        >>> labels = Labels(gridflow.Engine(entry_points=False), "zh")
        >>> event_details(e, labels, labels.workflow_spec("grid_case"), SHANGHAI)
        '已过时限 2026-04-05 15:00（状态：已结案）'
    """
    lang = labels.lang
    payload = dict(event.payload)
    if event.trigger == "open":
        data = payload.get("data") or {}
        return str(data.get("title") or data.get("summary") or "")
    if event.trigger == "link":
        return f"↔ {payload.get('case', '')}"
    if event.trigger == "migrate":
        # The fingerprints and the state map are for verify; a reader wants the versions.
        return w("migrated", lang).format(
            label=labels.workflow(spec.name) if spec is not None else "",
            plan=payload.get("plan", ""),
            source=payload.get("source_version", "?"), target=payload.get("target_version", "?"))
    deadline = payload.get("deadline_at")
    parts: list[str] = []
    if event.actor.id == "system" and isinstance(deadline, str) and (
            event.trigger == "overdue" or "reason" in payload):
        at = show_value("deadline_at", deadline, lang, tz)
        if event.trigger == "overdue":
            parts.append(w("marked", lang).format(at=at))
            refused = payload.pop("breach_refused", None)
            if refused:
                parts.append(w("refused", lang).format(why=refused))
            payload.pop("state", None)
        else:
            parts.append(w("breach", lang).format(at=at, state=labels.state(spec, event.source)))
            if payload.get("text") == payload.get("reason"):
                payload.pop("text")  # the timer's note (an urge's) repeats its reason
            payload.pop("reason", None)
        payload.pop("deadline_at", None)
    if payload:
        parts.append(_pairs(payload, lang, tz, spec))
    return ("；" if lang == "zh" else "; ").join(parts)


def timeline(engine: Engine, case_id: str, lang: str, tz: tzinfo,
             columns: int | None) -> tuple[Case, list[str]]:
    """A case's header and timeline, laid out to ``columns`` (any width if ``None``).

    Example:
        >>> import gridflow
        >>> engine = gridflow.Engine(clock=gridflow.FixedClock(), entry_points=False)
        >>> c = engine.open("grid_case", actor=gridflow.Actor("w", ["grid_worker"], ["g"]),
        ...                 grid="g", case_id="c-1", data={"title": "堆物", "source": "visit"})
        >>> print("\\n".join(timeline(engine, "c-1", "zh", SHANGHAI, 80)[1]))
        ■ 案件 c-1 · 网格案件 (grid_case@2) · 网格 g · 状态：已上报
          2026-01-05 09:00  新建  w (网格员)  → 已上报  堆物
    """
    case = engine.get(case_id)
    events = engine.history(case_id)
    labels = Labels(engine, lang)
    spec = labels.spec(case)
    title = spec.label(lang) if spec is not None else case.workflow
    colon = "：" if lang == "zh" else ": "
    head = [f"■ {w('case', lang)} {case.id}", f"{title} ({case.workflow}@{case.workflow_version})",
            f"{w('grid', lang)} {case.grid or '-'}",
            f"{w('state', lang)}{colon}{labels.state(spec, case.state)}"]
    lines = [" · ".join(head)] if columns is None else wrap_parts(head, columns)
    if case.links:
        sep = "、" if lang == "zh" else ", "
        lines += _wrapped(f"  {w('links', lang)}{colon}{sep.join(case.links)}", columns, "    ")
    rows: list[list[str]] = []
    for event in events:
        if event.dest is None:
            change = f"↻ {labels.state(spec, event.source)}"
        elif event.source is None:
            change = f"→ {labels.state(spec, event.dest)}"
        else:
            change = f"{labels.state(spec, event.source)} → {labels.state(spec, event.dest)}"
        rows.append([_when(event.at, tz), labels.trigger(spec, event.trigger),
                     labels.actor(event, spec), change,
                     event_details(event, labels, spec, tz)])
    lines += table(rows, columns, stack=[[0, 1, 3], [2], [4]], min_flex=40)
    return case, lines


def _wrapped(text: str, columns: int | None, indent: str) -> list[str]:
    if columns is None:
        return [text]
    lead = len(text) - len(text.lstrip(" "))
    pieces = wrap(text.strip(), columns - lead)
    first = pieces[0]
    rest = wrap(" ".join(pieces[1:]), columns - len(indent)) if len(pieces) > 1 else []
    return [" " * lead + first, *(indent + p for p in rest)]


# -- figures -----------------------------------------------------------------------------

#: (Row attribute, English label, Chinese label, kind, workflow): kind is "n" (count),
#: "%" (rate) or "d" (days); workflow is the built-in workflow the figure is defined on.
FIGURES = (
    ("received", "Received", "受理数", "n", "grid_case"),
    ("triaged", "Triaged (filed)", "立案数", "n", "grid_case"),
    ("due", "Due", "应结案数", "n", "grid_case"),
    ("closed", "Closed", "结案数", "n", "grid_case"),
    ("closed_on_time", "Closed on time", "按期结案数", "n", "grid_case"),
    ("reopened", "Reopened (rework)", "返工数", "n", "grid_case"),
    ("extended", "Extended", "延期数", "n", "grid_case"),
    ("closed_in_grid", "Closed inside the grid", "格内解决数", "n", "grid_case"),
    ("revisits", "Revisits concluded", "回头看数", "n", "grid_case"),
    ("revisits_passed", "Revisits passed", "回头看通过数", "n", "grid_case"),
    ("filing_rate", "Filing rate 立案率", "立案率", "%", "grid_case"),
    ("closure_rate", "Closure rate 结案率", "结案率", "%", "grid_case"),
    ("on_time_rate", "On-time closure rate 按期结案率", "按期结案率", "%", "grid_case"),
    ("rework_rate", "Rework rate 返工率", "返工率", "%", "grid_case"),
    ("extension_rate", "Extension rate 延期率", "延期率", "%", "grid_case"),
    ("in_grid_rate", "Solved-in-grid rate 格内解决率", "格内解决率", "%", "grid_case"),
    ("revisit_pass_rate", "Revisit pass rate 回头看通过率", "回头看通过率", "%", "grid_case"),
    ("mediations_ended", "Mediations ended", "调解结束数", "n", "mediation"),
    ("mediations_resolved", "Mediations resolved", "化解成功数", "n", "mediation"),
    ("resolved_at_tier1", "Resolved in tier 1 (grid)", "网格一级化解数", "n", "mediation"),
    ("agreements", "Agreements signed", "达成协议数", "n", "mediation"),
    ("mediation_success_rate", "Mediation success rate 化解成功率", "化解成功率", "%",
     "mediation"),
    ("tier1_share", "Share resolved in tier 1", "一级化解占比", "%", "mediation"),
    ("median_days_to_agreement", "Median days to agreement", "达成协议天数中位数", "d",
     "mediation"),
)
#: The closed-loop figures of ``grid_case@2``, in `FIGURES`' shape: shown under the
#: grid-case figures when a row has any of them.
LOOP_FIGURES = (
    ("acknowledged", "Acknowledged (签收)", "签收数", "n", "grid_case"),
    ("returned", "Returned (退单)", "退单数", "n", "grid_case"),
    ("checks", "On-site checks (核查)", "核查数", "n", "grid_case"),
    ("rated", "Rated (满意度回访)", "回访数", "n", "grid_case"),
    ("parked", "Parked 挂账数", "挂账数", "n", "grid_case"),
    ("urged", "Urged 督办数", "督办数", "n", "grid_case"),
    ("ack_on_time_rate", "On-time acknowledgement 按时签收率", "按时签收率", "%", "grid_case"),
    ("return_rate", "Return rate 退单率", "退单率", "%", "grid_case"),
    ("first_pass_rate", "First-check pass rate 核查一次通过率", "核查一次通过率", "%",
     "grid_case"),
    ("check_rework_rate", "Sent-back rate 发回重办率", "发回重办率", "%", "grid_case"),
    ("satisfaction_rate", "Satisfaction rate 满意率", "满意率", "%", "grid_case"),
    ("recurrence_rate", "Recurrence rate 反弹率", "反弹率", "%", "grid_case"),
    ("score", "Composite score 综合指标值", "综合指标值", "s", "grid_case"),
)
_LOOP_SHOWN = ("acknowledged", "returned", "checks", "rated", "parked", "urged", "triages")
#: The workflows the built-in figures are defined on, in the order they are shown.
FIGURE_WORKFLOWS = ("grid_case", "mediation")


def _cell(value: Any, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "%":
        return f"{value * 100:.1f}%"
    if kind in ("d", "s"):
        return f"{value:.1f}"
    return str(value)


def duration(seconds: float, lang: str) -> str:
    """A time span, rounded to what a reader compares: minutes, hours or days.

    Example:
        >>> duration(90, "en"), duration(3 * 3600, "zh"), duration(2.5 * 86400, "en")
        ('2 min', '3.0 小时', '2.5 d')
    """
    if seconds < 3600:
        return w("min", lang).format(n=round(seconds / 60))
    if seconds < 86400:
        return w("h", lang).format(n=f"{seconds / 3600:.1f}")
    return w("d", lang).format(n=f"{seconds / 86400:.1f}")


def _heads(groups: Sequence[str | None], by: str | None, lang: str) -> list[str]:
    return [str(g) if g is not None else (w("all", lang) if by is None else "-")
            for g in groups]


def _numbers(table_rows: list[list[str]], columns: int | None, indent: str) -> list[str]:
    right = set(range(1, max(len(r) for r in table_rows)))
    return table(table_rows, columns, indent=indent, right=right, flex=0, min_flex=12)


def figure_lines(report: Any, labels: Labels, *, by: str | None,
                 cases: Mapping[str, int],
                 by_state: Mapping[tuple[str, str, str | None], int],
                 columns: int | None) -> list[str]:
    """The blocks of a report: for each built-in workflow with cases, its figures
    (said to apply to that workflow only); for every other workflow, its cases by
    state and the median time in each state. ``cases`` counts each workflow's
    cases in the period, ``by_state`` maps (workflow, state, group) to cases.

    Example:
        >>> import gridflow
        >>> from datetime import datetime, UTC
        >>> from gridflow.metrics import Report, Row
        >>> t = datetime(2026, 1, 1, tzinfo=UTC)
        >>> report = Report(t, t, None, None, (Row(None, received=2, triaged=1),))
        >>> labels = Labels(gridflow.Engine(entry_points=False), "en")
        >>> lines = figure_lines(report, labels, by=None, cases={"grid_case": 2}, by_state={},
        ...                      columns=80)
        >>> lines[0], lines[2].split()
        ('Grid case (grid_case): figures of grid_case cases only', ['Received', '2'])
    """
    lang = labels.lang
    zh = lang == "zh"
    out: list[str] = []
    rows = report.rows
    names = [*(n for n in FIGURE_WORKFLOWS if n in cases),
             *sorted(n for n in {*cases, *(k[0] for k in by_state)}
                     if n not in FIGURE_WORKFLOWS)]
    if by == "department":
        # A scorecard per department: the closed-loop figures of grid cases only.
        if not rows:
            return []
        label = labels.workflow("grid_case")
        out += _wrapped(w("scorecard", lang).format(label=label), columns, "  ")
        body = [["", *_heads([r.group for r in rows], by, lang)]]
        for attr, en, zh_name, kind, _ in LOOP_FIGURES:
            body.append([zh_name if zh else en,
                         *(_cell(getattr(r, attr, None), kind) for r in rows)])
        return out + _numbers(body, columns, "  ")
    for name in names:
        label = labels.workflow(name)
        if name in FIGURE_WORKFLOWS:
            out += _wrapped(w("applies", lang).format(label=label, name=name), columns, "  ")
            body = [["", *_heads([r.group for r in rows], by, lang)]]
            loop = name == "grid_case" and any(getattr(r, a, 0) for r in rows
                                               for a in _LOOP_SHOWN)
            for attr, en, zh_name, kind, workflow in (*FIGURES, *(LOOP_FIGURES if loop else ())):
                if workflow == name:
                    body.append([zh_name if zh else en,
                                 *(_cell(getattr(r, attr, None), kind) for r in rows)])
            out += _numbers(body, columns, "  ")
            continue
        spec = labels.workflow_spec(name)
        out += _wrapped(w("no_figures", lang).format(label=label, name=name), columns, "  ")
        mine = {k: n for k, n in by_state.items() if k[0] == name}
        groups = sorted({k[2] for k in mine}, key=lambda g: (g is not None, g or ""))
        states = _state_order(spec, {k[1] for k in mine})
        if mine:
            out.append("  " + w("by_state", lang))
            body = [["", *_heads(groups, by, lang)]]
            for state in states:
                body.append([labels.state(spec, state),
                             *(str(mine.get((name, state, g), 0)) for g in groups)])
            out += _numbers(body, columns, "    ")
        medians = [(r.group, r.median_seconds_in_state.get(name, {})) for r in rows]
        timed = sorted({s for _, m in medians for s in m})
        if timed:
            out.append("  " + w("in_state", lang))
            with_time = [(g, m) for g, m in medians if m]
            body = [["", *_heads([g for g, _ in with_time], by, lang)]]
            for state in _state_order(spec, set(timed)):
                body.append([labels.state(spec, state),
                             *(duration(m[state], lang) if state in m else "-"
                               for _, m in with_time)])
            out += _numbers(body, columns, "    ")
    return out


#: The columns of the problem classes (一类事): (English, Chinese).
CLASS_HEADS = (("Place", "地点"), ("Category", "分类"), ("Cases", "案件数"),
               ("Recurrences", "反弹数"), ("Solved", "已解决"),
               ("Median time to solve", "解决时间中位数"), ("Total time to solve", "解决总时长"))


def class_lines(classes: Sequence[Any], lang: str, columns: int | None) -> list[str]:
    """The problem classes (`gridflow.metrics.problem_classes`) as a table.

    Example:
        >>> from gridflow.metrics import ProblemClass
        >>> c = ProblemClass("CN-ZL-324", "违规堆物", cases=2, recurrences=1, solved=1,
        ...                  median_seconds_to_solve=7200.0, total_seconds_to_solve=7200.0)
        >>> class_lines([c], "en", 120)[2].split()
        ['CN-ZL-324', '违规堆物', '2', '1', '1', '2.0', 'h', '2.0', 'h']
    """
    zh = lang == "zh"
    out = _wrapped(w("classes", lang), columns, "  ")
    if not classes:
        return [*out, "  " + w("no_classes", lang)]
    body = [[zh_head if zh else en for en, zh_head in CLASS_HEADS]]
    for c in classes:
        median = c.median_seconds_to_solve
        body.append([c.key, "-" if c.category is None else c.category, str(c.cases),
                     str(c.recurrences), str(c.solved),
                     "-" if median is None else duration(median, lang),
                     duration(c.total_seconds_to_solve, lang) if c.solved else "-"])
    return [*out, *table(body, columns, indent="  ", right={2, 3, 4, 5, 6}, flex=0,
                         min_flex=12)]


def _state_order(spec: WorkflowSpec | None, names: set[str]) -> list[str]:
    """States in the spec's order (unknown ones after, by name)."""
    order = [s.name for s in spec.states] if spec is not None else []
    return [n for n in order if n in names] + sorted(names - set(order))
