"""Every example in examples/ runs, and does what its docstring says."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import runpy
import sys
import threading
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote

import pytest

import gridflow
from gridflow.plugins import ENTRY_POINT_GROUP
from gridflow.testing import walk_all_transitions

EXAMPLES = Path(__file__).parents[1] / "examples"
GRID = "第一综合网格"


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# -- walkthrough.py (`make demo`) --------------------------------------------------------


def test_walkthrough(capsys: pytest.CaptureFixture[str]) -> None:
    runpy.run_path(str(EXAMPLES / "walkthrough.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "case alley-324: 网格案件 / Grid case" in out
    assert "closed -> revisit" in out and "system" in out  # the timer started the look-back
    assert out.rstrip().splitlines()[-1] == (
        "final state: archived (已归档), 16 events, history verified")
    assert "verifying -> closed" in out and "核查通过 / Pass check" in out


# -- custom_workflow/ ----------------------------------------------------------------------


def test_custom_workflow(capsys: pytest.CaptureFixture[str]) -> None:
    module = _load(EXAMPLES / "custom_workflow" / "run.py", "example_custom_workflow")
    case = module.main()
    assert case.state == "closed" and case.version == 4
    out = capsys.readouterr().out
    assert "公共法律服务 / Public legal service request (legal_consultation@1)" in out
    # The same file, walked: every transition of the YAML workflow can fire.
    spec = gridflow.WorkflowSpec.load(module.SPEC_FILE)
    engine = gridflow.Engine(clock=gridflow.FixedClock(), entry_points=False)
    assert walk_all_transitions(engine, spec).complete


# -- fastapi_app/ --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def app_module() -> ModuleType:
    with warnings.catch_warnings():
        # Starlette's notice that its test client will move to httpx2: not ours to fix.
        warnings.simplefilter("ignore")
        import fastapi.testclient  # noqa: F401
    return _load(EXAMPLES / "fastapi_app" / "app.py", "example_fastapi_app")


def headers(actor_id: str, roles: str, grids: str = GRID, **extra: str) -> dict[str, str]:
    # Header values are Latin-1: Chinese grid names travel percent-encoded.
    return {"X-Actor-Id": actor_id, "X-Actor-Roles": roles, "X-Actor-Grids": quote(grids),
            **extra}


WORKER = headers("grid-worker-1", "grid_worker")
SECRETARY = headers("secretary-1", "coordinator")
ALLEY = {"grid": GRID, "data": {"title": "长宁支路324弄堆物", "source": "visit"}}


@pytest.fixture
def clock() -> gridflow.FixedClock:
    return gridflow.FixedClock(datetime(2026, 3, 2, 1, tzinfo=UTC))


@pytest.fixture(params=["async", "sync"])
def client(request: pytest.FixtureRequest, app_module: ModuleType, tmp_path: Path,
           clock: gridflow.FixedClock) -> Iterator[Any]:
    """The example on `AsyncEngine` (its own kind) and on a sync `Engine` in the
    thread pool: the same HTTP contract."""
    from fastapi.testclient import TestClient

    url = f"sqlite:///{tmp_path / 'api.db'}"
    with gridflow.SQLStore(url) as sync_store:
        sync_store.create_schema()
    store: Any = gridflow.AsyncSQLStore(url) if request.param == "async" \
        else gridflow.SQLStore(url)
    engine: Any = (gridflow.AsyncEngine if request.param == "async" else gridflow.Engine)(
        store, clock=clock, entry_points=False)
    with TestClient(app_module.create_app(engine)) as test_client:
        yield test_client
        if request.param == "async":
            test_client.portal.call(store.aclose)
    if request.param == "sync":
        store.close()


#: What a client of HTTP should never be told to do (Python arguments, module names).
PYTHON_ADVICE = ("gridflow.", "expected_version=", "retries=", "grids=", "pass ")


def _no_python_advice(body: dict[str, Any]) -> None:
    assert not any(word in body["detail"] for word in PYTHON_ADVICE), body["detail"]
    assert body["type"].startswith("tag:gridflow.readthedocs.io,2026:problem/")


def _open(client: Any) -> dict[str, Any]:
    response = client.post("/cases", json=ALLEY, headers=WORKER)
    assert response.status_code == 201, response.text
    assert response.headers["ETag"] == '"1"'
    assert response.headers["Location"] == f"/cases/{response.json()['id']}"
    body: dict[str, Any] = response.json()
    return body


def test_api_case_lifecycle(client: Any) -> None:
    case = _open(client)
    url = f"/cases/{case['id']}"
    assert client.get(f"{url}/allowed", headers=SECRETARY).json() == [
        "mark_duplicate", "note", "reject", "triage"]
    response = client.post(f"{url}/triggers/triage", headers=SECRETARY,
                           json={"payload": {"category": "违规堆物", "priority": "normal"}})
    assert response.status_code == 200 and response.json()["state"] == "triaged"
    assert response.headers["ETag"] == '"2"'
    got = client.get(url, headers=SECRETARY)
    assert got.json() == response.json() and got.headers["ETag"] == '"2"'
    history = client.get(f"{url}/history", headers=SECRETARY).json()
    assert [e["trigger"] for e in history] == ["open", "triage"]
    assert history[1]["actor"] == {"id": "secretary-1", "roles": ["coordinator"], "grids": [GRID]}


def test_api_not_found_and_no_actor(client: Any) -> None:
    response = client.get("/cases/nope", headers=SECRETARY)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["title"] == "CaseNotVisible" and response.json()["case_id"] == "nope"
    assert client.post("/cases/nope/triggers/triage", headers=SECRETARY,
                       json={"payload": {}}).status_code == 404
    assert client.get("/cases/nope").status_code == 401


def test_api_conflict_on_a_stale_version(client: Any) -> None:
    case = _open(client)
    url = f"/cases/{case['id']}/triggers/note"
    stale = {**SECRETARY, "If-Match": '"1"'}
    first = client.post(url, headers=stale, json={"payload": {"text": "已联系物业"}})
    second = client.post(url, headers=stale, json={"payload": {"text": "已联系清运"}})
    # RFC 9110: a failed If-Match is 412 Precondition Failed.
    assert (first.status_code, second.status_code) == (200, 412)
    assert second.json()["title"] == "PreconditionFailed"
    assert second.json()["actual"] == 2
    _no_python_advice(second.json())
    # expected_version in the body works the same way.
    third = client.post(url, headers=SECRETARY,
                        json={"payload": {"text": "x"}, "expected_version": 1})
    assert third.status_code == 409 and third.json()["title"] == "ConcurrencyError"
    assert (third.json()["expected"], third.json()["actual"]) == (1, 2)
    _no_python_advice(third.json())
    assert client.get(f"/cases/{case['id']}", headers=SECRETARY).json()["version"] == 2


def test_api_two_concurrent_requests_one_conflicts(client: Any) -> None:
    case = _open(client)
    url = f"/cases/{case['id']}/triggers/triage"
    barrier = threading.Barrier(2)
    statuses: list[int] = []

    def send(priority: str) -> None:
        barrier.wait()
        response = client.post(url, headers={**SECRETARY, "If-Match": '"1"'},
                               json={"payload": {"category": "违规堆物", "priority": priority}})
        statuses.append(response.status_code)

    threads = [threading.Thread(target=send, args=(p,)) for p in ("normal", "urgent")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(statuses) == [200, 412]
    history = client.get(f"/cases/{case['id']}/history", headers=SECRETARY).json()
    assert [e["trigger"] for e in history] == ["open", "triage"]  # one landed, once


@pytest.mark.parametrize("header", ['3', '"1', '"1" "2"', '"1",,', 'W/', '"a"b"', ''])
def test_api_malformed_if_match_is_400_and_changes_nothing(client: Any, header: str) -> None:
    case = _open(client)
    response = client.post(f"/cases/{case['id']}/triggers/note",
                           headers={**SECRETARY, "If-Match": header},
                           json={"payload": {"text": "x"}})
    assert response.status_code == 400, response.text
    assert response.json()["title"] == "MalformedIfMatch"
    assert response.headers["content-type"] == "application/problem+json"
    _no_python_advice(response.json())
    assert client.get(f"/cases/{case['id']}", headers=SECRETARY).json()["version"] == 1


@pytest.mark.parametrize(("header", "status"), [
    ('"1"', 200), ('"7", "1"', 200), ("*", 200), ('W/"1"', 412), ('"2"', 412),
    ('"0", "2"', 412)])
def test_api_if_match_compares_strongly(client: Any, header: str, status: int) -> None:
    case = _open(client)
    response = client.post(f"/cases/{case['id']}/triggers/note",
                           headers={**SECRETARY, "If-Match": header},
                           json={"payload": {"text": "x"}})
    assert response.status_code == status, response.text
    version = client.get(f"/cases/{case['id']}", headers=SECRETARY).json()["version"]
    assert version == (2 if status == 200 else 1)


def test_api_if_none_match_answers_304(client: Any) -> None:
    case = _open(client)
    url = f"/cases/{case['id']}"
    same = client.get(url, headers={**SECRETARY, "If-None-Match": '"1"'})
    assert same.status_code == 304 and same.headers["ETag"] == '"1"' and same.content == b""
    assert client.get(url, headers={**SECRETARY, "If-None-Match": '"9"'}).status_code == 200


def test_api_problems_speak_http_not_python(client: Any) -> None:
    no_grids = headers("w-9", "grid_worker", "")
    opened = client.post("/cases", headers=no_grids, json=ALLEY)
    assert opened.status_code == 403
    assert "X-Actor-Grids" in opened.json()["detail"]
    _no_python_advice(opened.json())
    bad_body = client.post("/cases", headers=WORKER, json={"workflow": "grid_case"})
    assert bad_body.status_code == 422 and bad_body.json()["title"] == "InvalidRequest"
    _no_python_advice(bad_body.json())
    bad_actor = client.get("/cases/x", headers=headers("w", "co ordinator"))
    assert bad_actor.status_code == 400
    _no_python_advice(bad_actor.json())


def test_api_schema_names_each_workflows_opening_fields(client: Any) -> None:
    schema = client.get("/openapi.json").json()
    models = schema["components"]["schemas"]
    assert set(models["OpenData_grid_case"]["required"]) == {"title", "source"}
    assert "OpenData_mediation" in models
    fire = schema["paths"]["/cases/{case_id}/triggers/{trigger}"]["post"]["responses"]
    assert {"200", "400", "401", "403", "404", "409", "412", "422", "503"} <= set(fire)
    assert "application/problem+json" in fire["412"]["content"]


def test_api_refused_step_is_422_and_changes_nothing(client: Any) -> None:
    case = _open(client)
    url = f"/cases/{case['id']}"
    before = client.get(url, headers=SECRETARY).json()
    refusals = [
        ("triage", {"category": "违规堆物"}, "MissingPayload"),                 # no priority
        ("triage", {"category": "x", "priority": "someday"}, "InvalidPayload"),  # bad choice
        ("close", {}, "InvalidTransition"),                                      # wrong state
        ("mark_duplicate", {"duplicate_of": "nope"}, "GuardRejected"),           # guard
    ]
    for trigger, payload, title in refusals:
        response = client.post(f"{url}/triggers/{trigger}", headers=SECRETARY,
                               json={"payload": payload})
        assert response.status_code == 422, (trigger, response.text)
        assert response.json()["title"] == title
    assert response.json()["guard"] == "grid_case.duplicate_exists"
    invalid = client.post(f"{url}/triggers/close", headers=SECRETARY, json={}).json()
    assert "triage" in invalid["allowed"]
    assert client.get(url, headers=SECRETARY).json() == before
    assert len(client.get(f"{url}/history", headers=SECRETARY).json()) == 1


def test_api_role_refusals_are_403_and_other_grids_404(client: Any) -> None:
    case = _open(client)
    url = f"/cases/{case['id']}"
    response = client.post(f"{url}/triggers/triage", headers=WORKER,
                           json={"payload": {"category": "c", "priority": "low"}})
    assert response.status_code == 403 and response.json()["title"] == "PermissionDenied"
    # A case in another grid answers exactly as a missing one does.
    elsewhere = headers("secretary-2", "coordinator", "第二综合网格")
    missing = "/cases/no-such-case"
    for path in ("", "/history", "/allowed"):
        seen, gone = client.get(url + path, headers=elsewhere), client.get(missing + path,
                                                                           headers=elsewhere)
        assert seen.status_code == gone.status_code == 404
        assert seen.json()["detail"] == gone.json()["detail"].replace("no-such-case",
                                                                      case["id"])
    assert client.post(f"{url}/triggers/triage", headers=elsewhere,
                       json={"payload": {"category": "c", "priority": "low"}}
                       ).status_code == 404
    assert client.post("/cases", headers=elsewhere, json=ALLEY).status_code == 403
    assert client.get(url, headers=headers("street-1", "street", "*")).status_code == 200


def test_api_idempotency_key(client: Any) -> None:
    case = _open(client)
    url = f"/cases/{case['id']}/triggers/note"
    key = {**SECRETARY, "Idempotency-Key": "note-1"}
    first = client.post(url, headers=key, json={"payload": {"text": "一次"}})
    again = client.post(url, headers=key, json={"payload": {"text": "一次"}})
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    other = client.post(f"/cases/{case['id']}/triggers/triage", headers=key,
                        json={"payload": {"category": "c", "priority": "low"}})
    assert other.status_code == 409 and other.json()["title"] == "IdempotencyConflict"


def test_api_overdue(client: Any, clock: gridflow.FixedClock) -> None:
    late = _open(client)
    clock.advance(timedelta(days=2))  # "reported" has one day
    fresh = _open(client)
    response = client.get("/overdue", headers=SECRETARY)
    assert response.status_code == 200
    assert [c["id"] for c in response.json()] == [late["id"]]
    assert fresh["id"] not in response.text
    assert client.get("/overdue", headers=headers("s-2", "coordinator", "第二综合网格")
                      ).json() == []
    assert client.get("/overdue?limit=0", headers=SECRETARY).status_code == 422


def _env_app_roundtrip(app_module: ModuleType) -> None:
    from fastapi.testclient import TestClient

    with TestClient(app_module.create_app()) as env_client:
        case = _open(env_client)
        assert env_client.get(f"/cases/{case['id']}", headers=SECRETARY).status_code == 200


def test_api_on_sqlite_from_the_environment(app_module: ModuleType, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRIDFLOW_DB", f"sqlite:///{tmp_path / 'env.db'}")
    monkeypatch.delenv("GRIDFLOW_DB_SCHEMA", raising=False)
    _env_app_roundtrip(app_module)
    assert (tmp_path / "env.db").exists()


@pytest.mark.postgres
def test_api_on_postgres_from_the_environment(app_module: ModuleType, pg_url: str,
                                              pg_schema: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRIDFLOW_DB", pg_url)
    monkeypatch.setenv("GRIDFLOW_DB_SCHEMA", pg_schema)
    _env_app_roundtrip(app_module)


# -- plugin_package/ ---------------------------------------------------------------------

PLUGIN_SRC = EXAMPLES / "plugin_package" / "src"


def _neighbourhood() -> ModuleType:
    try:
        import gridflow_neighbourhood
    except ImportError:
        sys.path.insert(0, str(PLUGIN_SRC))
        import gridflow_neighbourhood
    return gridflow_neighbourhood


def _alley_with_revisit(engine: gridflow.Engine, clock: gridflow.FixedClock) -> str:
    worker = gridflow.Actor("grid-worker-1", ["grid_worker"], [GRID])
    secretary = gridflow.Actor("secretary-1", ["coordinator"], [GRID])
    case = engine.open("grid_case", version=1, actor=worker, grid=GRID, data={
        "title": "长宁支路324弄堆物", "source": "visit", "building": "长宁支路324弄5号楼"})
    engine.fire(case.id, "triage", actor=secretary,
                payload={"category": "违规堆物", "priority": "normal"})
    engine.fire(case.id, "dispatch", actor=secretary,
                payload={"departments": ["清运单位"], "plan": "清运"})
    engine.fire(case.id, "report_done", actor=gridflow.Actor("haulage", ["department"],
                                                             grids=gridflow.ALL_GRIDS),
                payload={"department": "清运单位", "result": "已清运"})
    engine.fire(case.id, "close", actor=secretary)
    clock.advance(timedelta(days=31))
    engine.tick()
    engine.fire(case.id, "confirm", actor=gridflow.Actor("volunteer-1", ["volunteer"], [GRID]),
                payload={"observation": "未反弹"})
    return case.id


def test_plugin_behaviour_when_registered_explicitly(clock: gridflow.FixedClock) -> None:
    module = _neighbourhood()
    plugin = module.NeighbourhoodPlugin()
    engine = gridflow.Engine(clock=clock, plugins=[plugin], entry_points=False)
    case_id = _alley_with_revisit(engine, clock)
    texts = plugin.chat.to("长宁支路324弄5号楼")
    assert texts[0] == "【网格案件】长宁支路324弄堆物:新建(当前:已上报)"
    assert "【网格案件】长宁支路324弄堆物:回头看(当前:回头看)" in texts  # the timer's step too
    assert texts[-1] == "感谢志愿者 volunteer-1 回头看,获得志愿积分 5 分"
    assert len(plugin.chat.messages) == len(engine.history(case_id)) + 1
    assert plugin.points.balance("volunteer-1") == 5
    assert plugin.points.balance("secretary-1") == 0
    assert not engine.hook_errors


def test_volunteer_points_exchange_for_honours() -> None:
    points = _neighbourhood().VolunteerPoints()
    for n in range(2):
        points.award("volunteer-1", 5, case_id=f"c{n}", reason="回头看")
    assert points.exchange("volunteer-1", "社区志愿之星") == "社区志愿之星"
    assert points.balance("volunteer-1") == 0 and points.honours("volunteer-1") == ["社区志愿之星"]
    with pytest.raises(ValueError, match="needs 50"):
        points.exchange("volunteer-1", "优秀社区志愿者")


def test_plugin_is_discovered_through_its_entry_point(clock: gridflow.FixedClock) -> None:
    try:
        dist = importlib.metadata.distribution("gridflow-neighbourhood")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("the example plugin is not installed: pip install -e "
                    "examples/plugin_package (the Makefile's install step does it)")
    (entry,) = [ep for ep in dist.entry_points if ep.group == ENTRY_POINT_GROUP]
    assert (entry.name, entry.value) == ("neighbourhood", "gridflow_neighbourhood:plugin")
    import gridflow_neighbourhood

    engine = gridflow.Engine(clock=clock)  # entry points are loaded by default
    plugin = engine.plugins.get_plugin("neighbourhood")
    assert plugin is gridflow_neighbourhood.plugin
    sent = len(plugin.chat.messages)
    _alley_with_revisit(engine, clock)
    assert plugin.chat.messages[-1].text.startswith("感谢志愿者 volunteer-1")
    assert len(plugin.chat.messages) > sent
    assert not gridflow.Engine(entry_points=False).plugins.has_plugin("neighbourhood")
