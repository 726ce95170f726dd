"""Exports: Open311 GeoReport v2 (JSON and XML) and the CSV of cases; no personal data."""

from __future__ import annotations

import csv
import io
import json
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

import gridflow
from gridflow import Actor, Case, Engine, FixedClock, MemoryStore, Store
from gridflow.interop import export, open311

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)  # Monday 09:00 in Shanghai
GRID = "华三-1"

# The reporter's personal data: none of it may leave through any export.
NAME, PHONE, EMAIL, DEVICE = "王小明", "13812345678", "wxm@example.com", "dev-8f3a9c07"
OPENER = Actor("resident-7731", ["resident"], [GRID])
PARTY = "谢女士"
PERSONAL = (NAME, PHONE, EMAIL, DEVICE, OPENER.id, PARTY)

secretary = Actor("书记-李", ["coordinator"], grids=gridflow.ALL_GRIDS)
street = Actor("街道-城运中心", ["street"], grids=gridflow.ALL_GRIDS)
dept = Actor("部门-清运单位", ["department"], grids=gridflow.ALL_GRIDS)
volunteer = Actor("志愿者-赵", ["volunteer"], grids=gridflow.ALL_GRIDS)
mediator = Actor("调解员-孙", ["mediator"], grids=gridflow.ALL_GRIDS)

#: GeoReport v2: each field of a service request and what its value may be.
ISO_WITH_ZONE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?([+-]\d{2}:\d{2}|Z)$")
GEOREPORT_V2: dict[str, str] = {
    "service_request_id": "string", "status": "status", "status_notes": "string?",
    "service_name": "string?", "service_code": "string", "description": "string?",
    "agency_responsible": "string?", "service_notice": "string?",
    "requested_datetime": "datetime", "updated_datetime": "datetime?",
    "expected_datetime": "datetime?", "address": "string?", "address_id": "string?",
    "zipcode": "string?", "lat": "number?", "long": "number?", "media_url": "string?",
}


def validate(request: dict[str, Any]) -> None:
    """Check one request against the GeoReport v2 field list (every field, nothing else)."""
    assert list(request) == list(GEOREPORT_V2)
    for field, kind in GEOREPORT_V2.items():
        value = request[field]
        if kind.endswith("?"):
            if value is None:
                continue
            kind = kind[:-1]
        if kind == "string":
            assert isinstance(value, str) and value, field
        elif kind == "status":
            assert value in ("open", "closed")
        elif kind == "datetime":
            assert isinstance(value, str) and ISO_WITH_ZONE.match(value), (field, value)
            assert datetime.fromisoformat(value.replace("Z", "+00:00")).tzinfo is not None
        elif kind == "number":
            assert isinstance(value, int | float) and not isinstance(value, bool), field


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0)


@pytest.fixture
def engine(store: Store, clock: FixedClock) -> Engine:
    return Engine(store=store, clock=clock, entry_points=False,
                  keyring=gridflow.Keyring.generate())


def reported(engine: Engine, **extra: Any) -> Case:
    return engine.open("grid_case", version=1, actor=OPENER, grid=GRID, data={
        "title": f"弄堂违规堆物（{NAME}反映，电话{PHONE}）", "source": "resident",
        "description": "长宁支路324弄 地锁与堆物堵塞通道",
        "reporter": {"name": NAME, "phone": PHONE, "email": EMAIL, "device_id": DEVICE},
        "address": "长宁支路324弄", "lat": 31.2193, "long": 121.4237, **extra})


def walk(engine: Engine, clock: FixedClock) -> dict[str, Case]:
    """One case in each interesting state (the timer runs once, before the others open)."""
    out: dict[str, Case] = {}
    c = reported(engine)
    engine.fire(c.id, "triage", actor=secretary,
                payload={"category": "地锁", "priority": "urgent"})
    engine.fire(c.id, "dispatch", actor=secretary,
                payload={"departments": ["综合执法队"], "plan": "拆除地锁"})
    clock.advance(timedelta(hours=3))
    engine.fire(c.id, "report_done", actor=dept,
                payload={"department": "综合执法队", "result": "已拆除"})
    engine.fire(c.id, "close", actor=secretary)
    clock.advance(timedelta(days=31))
    assert [e.trigger for e in engine.tick()] == ["start_revisit"]  # 回头看 after 30 days
    engine.fire(c.id, "reopen", actor=volunteer, payload={"reason": "地锁又装回来了"})
    clock.advance(timedelta(hours=5))
    engine.fire(c.id, "report_done", actor=dept,
                payload={"department": "综合执法队", "result": "再次拆除"})
    out["reworked"] = engine.fire(c.id, "close", actor=secretary)

    out["reported"] = reported(engine)
    c = reported(engine)
    out["rejected"] = engine.fire(c.id, "reject", actor=secretary, payload={"reason": "重复反映"})
    c = reported(engine)
    engine.fire(c.id, "triage", actor=secretary,
                payload={"category": "违规堆物", "priority": "normal", "area": "华阳一村"})
    clock.advance(timedelta(hours=2))
    out["joint_action"] = engine.fire(c.id, "dispatch", actor=secretary, payload={
        "departments": ["社区管理办", "清运单位"], "plan": "联合整治"})
    engine.fire(c.id, "note", actor=secretary,
                payload={"text": f"已联系{NAME}（{PHONE}），约定周三清运"})
    c = reported(engine)
    engine.fire(c.id, "triage", actor=secretary,
                payload={"category": "违规堆物", "priority": "low"})
    engine.fire(c.id, "dispatch", actor=secretary,
                payload={"departments": ["清运单位"], "plan": "清运"})
    engine.fire(c.id, "report_done", actor=dept,
                payload={"department": "清运单位", "result": "已清运"})
    out["closed"] = engine.fire(c.id, "close", actor=secretary)
    out["mediation"] = engine.open("mediation", actor=mediator, grid=GRID, data={
        "summary": f"{PARTY}在火锅店用餐时烫伤，与商家就赔偿发生矛盾",
        "parties": [{"name": PARTY, "side": "applicant", "kind": "person",
                     "phone": "13900001111"},
                    {"name": "某火锅店", "side": "respondent", "kind": "organisation"}],
        "source": "walk_in"})
    return {k: engine.get(v.id) for k, v in out.items()}


def all_requests(engine: Engine, cases: dict[str, Case], **kw: Any) -> list[dict[str, Any]]:
    return open311.service_requests(cases.values(), store=engine.store, **kw)


# -- GeoReport v2 --------------------------------------------------------------------------


def test_json_follows_the_georeport_v2_field_list(engine: Engine, clock: FixedClock) -> None:
    cases = walk(engine, clock)
    requests = json.loads(open311.to_json(all_requests(engine, cases)))
    assert len(requests) == len(cases)
    for request in requests:
        validate(request)
    by_id = {r["service_request_id"]: r for r in requests}
    assert set(by_id) == {c.id for c in cases.values()}


def test_fields_come_from_the_case(engine: Engine, clock: FixedClock) -> None:
    cases = walk(engine, clock)
    requests = {r["service_request_id"]: r for r in all_requests(
        engine, cases, service_codes={"违规堆物": "illegal-stacking"})}
    doing = requests[cases["joint_action"].id]
    assert doing["status"] == "open"
    assert doing["service_code"] == "illegal-stacking" and doing["service_name"] == "违规堆物"
    assert doing["agency_responsible"] == "社区管理办; 清运单位"
    assert doing["expected_datetime"] == cases["joint_action"].deadline_at.isoformat()
    assert doing["requested_datetime"] == cases["joint_action"].opened_at.isoformat()
    assert doing["address"] == "长宁支路324弄"
    assert (doing["lat"], doing["long"]) == (31.2193, 121.4237)
    assert doing["status_notes"].startswith("联合处置 (Joint action): 已联系")
    assert doing["service_notice"] is None and doing["media_url"] is None
    # The category is the code when no mapping is given; no category: the workflow.
    assert requests[cases["reworked"].id]["service_code"] == "地锁"
    assert requests[cases["reported"].id]["service_code"] == "grid_case"
    assert requests[cases["reported"].id]["service_name"] == "网格案件"
    # Open and closed, after the states' tags; a closed request expects nothing more.
    status = {k: requests[c.id]["status"] for k, c in cases.items()}
    assert status == {"reported": "open", "rejected": "closed", "joint_action": "open",
                      "closed": "closed", "reworked": "closed", "mediation": "open"}
    assert requests[cases["reworked"].id]["expected_datetime"] is None
    assert requests[cases["rejected"].id]["status_notes"] == "不予立案 (Rejected): 重复反映"
    assert requests[cases["mediation"].id]["service_name"] == "多元调解"


def test_datetimes_in_another_zone() -> None:
    engine = Engine(clock=FixedClock(T0), entry_points=False)
    case = reported(engine)
    request = open311.service_request(case, tz=ZoneInfo("Asia/Shanghai"))
    assert request["requested_datetime"] == "2026-03-02T09:00:00+08:00"
    assert request["expected_datetime"] == "2026-03-03T09:00:00+08:00"
    validate(request)


def test_xml_parses_back(engine: Engine, clock: FixedClock) -> None:
    cases = walk(engine, clock)
    requests = all_requests(engine, cases)
    text = open311.to_xml(requests)
    assert text.startswith('<?xml version="1.0" encoding="utf-8"?><service_requests>')
    root = ET.fromstring(text.encode("utf-8"))
    assert root.tag == "service_requests"
    nodes = root.findall("request")
    assert len(nodes) == len(requests)
    for node in nodes:
        assert [child.tag for child in node] == list(open311.FIELDS)
    assert open311.parse_xml(text) == requests
    assert open311.parse_xml(text.encode("utf-8")) == requests


def test_parse_xml_refuses_other_documents() -> None:
    with pytest.raises(gridflow.InvalidPayload, match="expected <service_requests>"):
        open311.parse_xml("<services><service/></services>")


@pytest.mark.parametrize(("text", "said"), [
    ("<service_requests><request>", "not a well-formed XML document (no element found"),
    ("", "not a well-formed XML document"),  # each a bare xml ParseError
    (b"\xff<a/>", "not a well-formed XML document"),
    ("\udc80", "cannot be encoded as UTF-8"),  # a bare UnicodeEncodeError
    (None, "takes the XML document as str or bytes, got NoneType"),  # a bare TypeError
    ("<service_requests><request><lat>北纬31</lat></request></service_requests>",
     "request 1: <lat> is not a number"),  # a bare ValueError; the value is not repeated
])
def test_parse_xml_refuses_a_broken_file_with_a_gridflow_error(text: Any, said: str) -> None:
    with pytest.raises(gridflow.InvalidPayload, match=re.escape(said)) as caught:
        open311.parse_xml(text)
    assert "北纬" not in str(caught.value)


@pytest.mark.parametrize("indent", [True, "  ", -1, 2.0])
def test_to_json_indent_is_a_small_int(indent: Any) -> None:
    # True was an indent of 1, a string the indent itself.
    with pytest.raises(gridflow.InvalidArgument, match=r"to_json\(indent=\.\.\.\)"):
        open311.to_json([], indent=indent)


def test_unknown_workflow_says_what_to_pass() -> None:
    spec = gridflow.WorkflowSpec.from_dict({
        "name": "ticket", "version": 1, "initial": "open",
        "states": [{"name": "open"}, {"name": "done", "terminal": True}],
        "transitions": [{"trigger": "finish", "source": "open", "dest": "done"}]})
    engine = Engine(clock=FixedClock(T0), entry_points=False)
    engine.register_workflow(spec)
    case = engine.open("ticket", actor=OPENER, grid=GRID, data={"title": "x"})
    with pytest.raises(gridflow.UnknownWorkflow, match=r"pass specs=engine\.workflows"):
        open311.service_request(case)
    assert open311.service_request(case, specs=engine.workflows)["status"] == "open"
    done = engine.fire(case.id, "finish", actor=OPENER)
    assert open311.service_request(done, specs=[spec])["status"] == "closed"


# -- CSV -------------------------------------------------------------------------------------


def read_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_csv_has_a_timestamp_per_state(engine: Engine, clock: FixedClock) -> None:
    cases = walk(engine, clock)
    out = io.StringIO(newline="")
    assert export.write_csv(engine.store, out) == len(cases)
    rows = {r["case_id"]: r for r in read_csv(out.getvalue())}
    header = next(csv.reader(io.StringIO(out.getvalue())))
    assert header[:len(export.BASE_COLUMNS)] == list(export.BASE_COLUMNS)
    states = [h.removeprefix("entered_") for h in header[len(export.BASE_COLUMNS):]]
    # Every state of both workflows, in declaration order, once.
    assert states[:8] == ["reported", "triaged", "joint_action", "escalated", "closed",
                          "revisit", "archived", "rejected"]
    assert "grid_mediation" in states and len(states) == len(set(states))
    row = rows[cases["reworked"].id]
    events = engine.history(cases["reworked"].id)
    first = {}
    for e in events:
        if e.dest is not None:
            first.setdefault(e.dest, e.at.isoformat())
    # First time entered: the rework re-entered joint_action and closed, the columns
    # keep the first entries; the re-entries are counted.
    assert {s: row[f"entered_{s}"] for s in first} == first
    assert row["entered_escalated"] == "" and row["entered_archived"] == ""
    assert (row["reopened"], row["escalations"], row["extensions"]) == ("1", "0", "0")
    assert row["status"] == "closed" and row["category"] == "地锁"
    assert row["departments"] == "综合执法队"
    assert rows[cases["reported"].id]["entered_triaged"] == ""
    mediation = cases["mediation"]
    assert rows[mediation.id]["entered_intake"] == mediation.opened_at.isoformat()


def test_csv_filters_zone_and_given_cases(engine: Engine, clock: FixedClock) -> None:
    cases = walk(engine, clock)
    out = io.StringIO(newline="")
    n = export.write_csv(engine.store, out, workflow="mediation", tz=ZoneInfo("Asia/Shanghai"))
    assert n == 1
    rows = read_csv(out.getvalue())
    opened = cases["mediation"].opened_at.astimezone(ZoneInfo("Asia/Shanghai"))
    assert rows[0]["opened_at"] == opened.isoformat() and opened.isoformat().endswith("+08:00")
    assert "entered_reported" not in rows[0]
    out = io.StringIO(newline="")
    assert export.write_csv(engine.store, out, cases=[cases["closed"]]) == 1
    assert [r["case_id"] for r in read_csv(out.getvalue())] == [cases["closed"].id]
    assert "entered_intake" not in out.getvalue().splitlines()[0]


def test_iter_cases_pages_through_everything(engine: Engine) -> None:
    ids = {reported(engine).id for _ in range(7)}
    assert {c.id for c in export.iter_cases(engine.store, page_size=3)} == ids


# -- privacy -------------------------------------------------------------------------------


def test_no_personal_data_in_any_export(engine: Engine, clock: FixedClock) -> None:
    """No reporter name, phone, email or device id, no party name, and not the
    opening actor's id, in the CSV, the JSON or the XML, even where staff typed
    them into a title or a note."""
    cases = walk(engine, clock)
    # They are in the store (the exports have something to leak).
    stored = json.dumps([c.data for c in cases.values()], ensure_ascii=False)
    assert NAME in stored and PHONE in stored and PARTY in stored
    requests = all_requests(engine, cases)
    out = io.StringIO(newline="")
    export.write_csv(engine.store, out)
    exports = {"json": open311.to_json(requests), "xml": open311.to_xml(requests),
               "csv": out.getvalue()}
    for kind, text in exports.items():
        for value in (*PERSONAL, "13900001111"):
            assert value not in text, (kind, value)
    # What was typed around them is kept, the values blanked.
    assert "弄堂违规堆物（[redacted]反映，电话[redacted]）" in exports["csv"]
    assert "已联系[redacted]（[redacted]），约定周三清运" in exports["json"]
    assert "[redacted]在火锅店用餐时烫伤" in exports["xml"]


def test_redactor_blanks_nested_and_suffixed_keys() -> None:
    from gridflow.interop._common import Redactor

    case = Case("c", "grid_case", 1, "reported", 1, {
        "title": "赵六 13700000000 zl@example.com",
        "contact_phone": 13700000000, "owner_name": "赵六",
        "extra": {"people": [{"e_mail": "zl@example.com"}]}}, None, T0, T0)
    assert Redactor(case).text(case.data["title"]) == "[redacted] [redacted] [redacted]"
    assert Redactor(case).text(None) is None


def test_memory_store_default(clock: FixedClock) -> None:
    engine = Engine(store=MemoryStore(), clock=clock, entry_points=False)
    case = reported(engine)
    validate(open311.service_request(case))


@pytest.mark.parametrize(("call", "said"), [
    (lambda s, c: export.write_csv(s, io.StringIO(), tz="Asia/Shanghai"),
     "write_csv(tz=...) takes a tzinfo"),  # a TypeError at the first row
    (lambda s, c: export.write_csv(s, io.StringIO(), report=[]),
     "write_csv(report=...) takes None or a dict"),  # AttributeError after the rows
    (lambda s, c: open311.service_request(c, tz=8), "service_request(tz=...) takes a tzinfo"),
    (lambda s, c: open311.service_request(c, events=True), "takes None or the case's list"),
    (lambda s, c: open311.service_requests([c], store=s, report=0), "takes None or a dict"),
])
def test_export_arguments_are_checked_before_a_row(engine: Engine, call: Any, said: str) -> None:
    case = engine.open("grid_case", actor=Actor("r", ["resident"], ["g"]), grid="g",
                       data={"title": "t", "source": "resident"})
    with pytest.raises(gridflow.InvalidArgument, match=re.escape(said)):
        call(engine.store, case)
