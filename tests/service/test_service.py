"""The real service, started as a subprocess on a free port: examples, bad input, reload, score log."""

from __future__ import annotations

import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from pydantic import TypeAdapter

from leadscore import score_rows
from leadscore.settings import PROJECT_ROOT, Settings
from leadscore.store import Store
from serving.schemas import ColumnsResponse, ScoreResponse, columns_of, reasons_per_row

EXAMPLES = PROJECT_ROOT / "serving" / "examples"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(trained, start_service):
    service = start_service({"LEADSCORE_RELOAD_SECONDS": "2", "LEADSCORE_MAX_BATCH": "200"})
    return service.url, service.proc


def example(motion: str) -> dict:
    return json.loads((EXAMPLES / f"{motion}.json").read_text())


def post(url: str, path: str, body, raw: str | None = None) -> httpx.Response:
    if raw is not None:
        return httpx.post(url + path, content=raw, headers={"content-type": "application/json"}, timeout=30)
    return httpx.post(url + path, json=body, timeout=30)


def test_health_endpoints(server):
    url, _ = server
    assert httpx.get(f"{url}/livez").status_code == 200
    ready = httpx.get(f"{url}/readyz")
    assert ready.status_code == 200  # BentoML's readiness, with its reasons as the body
    detail = ready.json()
    assert detail["ready"] and set(detail["models"]) == {"b2b", "b2c", "hybrid"} and detail["store_ok"]
    assert detail["journal"] == "on" and detail["journal_cap_bytes"] == 1024 * 2**20
    assert "paths" in httpx.get(f"{url}/docs.json").json()


@pytest.mark.parametrize("motion", ["b2b", "b2c", "hybrid"])
def test_each_motion_example(server, motion):
    url, _ = server
    r = post(url, "/score", example(motion))
    assert r.status_code == 200, r.text
    body = r.json()
    assert r.headers["content-type"] == "application/json"
    assert ScoreResponse.model_validate(body).model_dump(mode="json") == body  # exactly the OpenAPI contract
    assert body["motion"] == motion and body["model"] == motion and body["version"] == "1"
    assert 0 <= body["score"] <= 1 and body["score_100"] == round(100 * body["score"])
    assert body["tier"] and body["route"] and body["next_actions"] and body["reasons"]
    assert all(x["text"] and x["direction"] in "+-" for x in body["reasons"])
    if motion == "b2b":
        assert body["grade"][0] in "ABCD" and body["fit_score"] is not None and body["owner"]
        assert {g["stage"] for g in body["gates"]} == {"opportunity"}
    if motion == "b2c":
        assert body["grade"] is None and body["gates"] == []


def test_json_and_other_content_types_reach_the_same_typed_endpoint(server):
    """Every call goes through BentoML's own typed endpoint, whatever its content type."""
    url, _ = server
    body = json.dumps(example("b2b"))
    as_json = post(url, "/score", None, raw=body)
    as_text = httpx.post(url + "/score", content=body, headers={"content-type": "text/plain"}, timeout=30)
    assert as_json.status_code == as_text.status_code == 200
    assert as_json.json() == as_text.json()
    bad = json.dumps({"request": example("b2b")["request"] | {"motion": "b2x"}})
    as_json = post(url, "/score", None, raw=bad)
    as_text = httpx.post(url + "/score", content=bad, headers={"content-type": "text/plain"}, timeout=30)
    assert as_json.status_code == as_text.status_code == 400
    assert as_json.json()["detail"].startswith("request.motion: ") and as_text.json()["detail"].startswith(
        "request.motion: "
    )  # one error shape, whichever layer answered


def _metric(url: str, name: str, **labels: str) -> float:
    """The sum of a Prometheus series over the lines whose labels include ``labels``."""
    want = [f'{k}="{v}"' for k, v in labels.items()]
    total = 0.0
    for line in httpx.get(f"{url}/metrics", timeout=30).text.splitlines():
        if line.startswith(name + "{") and all(w in line for w in want):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_score_responses_are_counted_by_status_in_bentomls_http_metrics(server):
    url, _ = server
    body, bad = json.dumps(example("b2b")), json.dumps({"request": {"motion": "b2b"}})
    before = {
        s: _metric(url, "bentoml_service_request_total", endpoint="/score", http_response_code=s)
        for s in ("200", "400")
    }
    for raw in (body, body, bad):
        post(url, "/score", None, raw=raw)
    after = {
        s: _metric(url, "bentoml_service_request_total", endpoint="/score", http_response_code=s)
        for s in ("200", "400")
    }
    assert after["200"] == before["200"] + 2 and after["400"] == before["400"] + 1


def test_batch_mixes_motions_in_order(server):
    url, _ = server
    reqs = [example(m)["request"] for m in ("b2c", "b2b", "hybrid", "b2c")]
    r = post(url, "/score_batch", {"requests": reqs})
    assert r.status_code == 200, r.text
    assert [x["motion"] for x in r.json()] == ["b2c", "b2b", "hybrid", "b2c"]
    assert TypeAdapter(list[ScoreResponse]).validate_python(r.json())


def test_columns_answer_as_columns_and_are_logged(server):
    url, _ = server
    tag = f"cols-{time.time_ns()}"
    reqs = [example("b2b")["request"] | {"request_id": f"{tag}-{i}"} for i in range(3)]
    r = post(url, "/score_columns", columns_of(reqs))
    assert r.status_code == 200, r.text
    body = r.json()
    assert ColumnsResponse.model_validate(body).model_dump(mode="json") == body  # the OpenAPI contract
    listed = post(
        url, "/score_batch", {"requests": [q | {"request_id": f"{tag}-list-{i}"} for i, q in enumerate(reqs)]}
    ).json()
    for k in ("score", "tier", "route", "gates", "grade"):
        assert body[k] == [x[k] for x in listed], k
    assert reasons_per_row(body["reasons"], 3) == [x["reasons"] for x in listed]
    assert "/score_columns" in httpx.get(f"{url}/docs.json").json()["paths"]
    store = Store(Settings.load().store_url)
    deadline, logged = time.time() + 20, {}
    while time.time() < deadline and len(logged) < 6:
        logged = {
            r["request_id"]: r for r in score_rows.read(store, "b2b") if r["request_id"].startswith(tag)
        }
        time.sleep(0.2)
    row, twin = logged[f"{tag}-0"], logged[f"{tag}-list-0"]  # from /score_columns and from /score_batch
    assert len(logged) == 6 and row["source"] == "batch-api" and row["score"] == body["score"][0]
    assert row["features"] == twin["features"]  # what the model saw, as the list form logs it


def test_bulk_bodies_answered_while_others_wait_give_the_connection_back(server):
    """A /score_batch or /score_columns body answered while other bulk bodies wait for the worker's scoring thread
    carries ``Connection: close`` (keep-alive callers that connected at once can otherwise all stay on one worker);
    one answered with nothing waiting keeps its connection, and a single /score always does."""
    url, _ = server
    tag = f"hand-{time.time_ns()}"

    def body(path: str, k: int) -> dict:
        reqs = [example("b2b")["request"] | {"request_id": f"{tag}-{path}-{k}-{i}"} for i in range(200)]
        return {"requests": reqs} if path == "/score_batch" else columns_of(reqs)

    def at_once(path: str, n: int) -> list[httpx.Response]:
        """``n`` bodies of the most rows a call takes, encoded beforehand and sent together on connections of their
        own (a barrier): they arrive within a fraction of the time one takes to score, so bodies wait behind others
        however fast the machine is (encoding each as it is sent let one finish before the next arrived)."""
        raws = [json.dumps(body(path, k)).encode() for k in range(n)]
        start = threading.Barrier(n)

        def post(raw: bytes) -> httpx.Response:
            with httpx.Client(timeout=120) as client:
                start.wait()
                return client.post(url + path, content=raw, headers={"content-type": "application/json"})

        with ThreadPoolExecutor(n) as pool:
            return list(pool.map(post, raws))

    for path in ("/score_batch", "/score_columns"):
        answers = at_once(path, 4)
        assert all(a.status_code == 200 for a in answers), [a.text[:200] for a in answers]
        closed = [a.headers.get("connection") == "close" for a in answers]
        assert 1 <= sum(closed) <= 3, (path, closed)  # the last answered has nothing behind it
        with httpx.Client(timeout=60) as client:
            for k in (8, 9):  # one after the other on one connection: nothing waits behind either
                r = client.post(url + path, json=body(path, k))
                assert r.status_code == 200 and r.headers.get("connection") != "close", (path, r.headers)
    with httpx.Client(timeout=60) as client:
        for _ in range(3):
            r = client.post(url + "/score", json=example("b2c"))
            assert r.status_code == 200 and r.headers.get("connection") != "close"


def _bad(server, body=None, raw=None, path="/score") -> str:
    url, _ = server
    r = post(url, path, body, raw)
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    return r.text


def test_bad_input_is_a_4xx_naming_the_field(server):
    good = example("b2b")["request"]
    lead = dict(good["lead"])
    del lead["created_at"]
    assert "created_at" in _bad(server, {"request": good | {"lead": lead}})
    assert "employee_count" in _bad(server, {"request": good | {"account": {"employee_count": "lots"}}})
    assert "motion" in _bad(server, {"request": good | {"motion": "b2x"}})
    assert "ts" in _bad(server, raw=json.dumps({"request": good}).replace('"2026-06-19T15:00:00Z"', "NaN", 1))
    assert "price" in _bad(
        server, raw=json.dumps({"request": example("b2c")["request"]}).replace("320.0", "Infinity", 1)
    )
    assert "Invalid JSON" in _bad(server, raw='{"request": {"motion": "b2b"')
    assert "lead" in _bad(server, {"request": {"motion": "b2b"}})
    assert "events.0.type" in _bad(
        server,
        {
            "request": good
            | {"events": [{"event_id": "x", "ts": "2026-06-19T15:00:00Z", "type": "add_to_cart"}]}
        },
    )
    assert "created after as_of" in _bad(server, {"request": good | {"as_of": "2020-01-01T00:00:00Z"}})
    huge = [dict(good["events"][0], ts=1e20)]  # beyond epoch seconds and milliseconds: a 400, not an overflow
    assert "request.events.0.ts" in _bad(server, {"request": good | {"events": huge}})
    assert "as_of" in _bad(server, {"request": good | {"as_of": -1e19}})
    assert "requests" in _bad(server, {"requests": [good] * 201}, path="/score_batch")
    assert "1.lead" in _bad(server, {"requests": [good, {"motion": "b2b"}]}, path="/score_batch")
    cols = columns_of([good, good])
    assert "lead.created_at" in _bad(
        server, cols | {"lead": cols["lead"] | {"created_at": ["x", None]}}, path="/score_columns"
    )
    assert "events.row.0" in _bad(
        server,
        cols | {"events": cols["events"] | {"row": [5] * len(cols["events"]["row"])}},
        path="/score_columns",
    )
    assert "lead: at most 200 rows" in _bad(server, columns_of([good] * 201), path="/score_columns")
    assert "Invalid JSON" in _bad(server, raw='{"motion": "b2b", "lead": {', path="/score_columns")


def test_bodies_the_endpoints_do_not_read_are_a_4xx(server):
    url, _ = server
    r = httpx.post(
        url + "/score", content=b"--x\r\n", headers={"content-type": "multipart/form-data"}, timeout=30
    )
    assert r.status_code == 415 and "application/json" in r.json()["error"]  # not a parser's 500
    big = b'{"requests": [' + b" " * (17 * 2**20) + b"]}"
    r = httpx.post(
        url + "/score_batch", content=big, headers={"content-type": "application/json"}, timeout=60
    )
    assert r.status_code == 413 and "larger than" in r.json()["error"]


def test_outcomes_are_recorded_once_and_a_bad_row_names_its_field(server):
    url, _ = server
    row = {"customer_id": "C00000001", "purchased": True, "value": 40.0, "occurred_at": "2026-06-10T10:00:00Z",
           "outcome_id": f"o-{time.time_ns()}"}  # fmt: skip
    r = post(url, "/outcomes", {"outcomes": [row]})
    assert r.status_code == 200 and r.json() | {} == {
        "motion": "b2c",
        "rows": 1,
        "inserted": 1,
        "duplicates": 0,
    }
    again = post(
        url, "/outcomes", {"outcomes": [row | {"occurred_at": 1781085600}]}
    )  # the same, as epoch seconds
    assert again.status_code == 200 and (again.json()["inserted"], again.json()["duplicates"]) == (0, 1)
    bad = post(url, "/outcomes", {"outcomes": [row | {"value": -3}]})
    assert bad.status_code == 400 and "value" in bad.json()["detail"]


def test_unknown_categories_score_and_are_counted(server):
    url, _ = server
    body = example("b2b")
    body["request"]["account"]["industry"] = "asteroid_mining"
    r = post(url, "/score", body)
    assert r.status_code == 200 and r.json()["unknown_categories"] == {"fit_industry": 1}
    metrics = httpx.get(f"{url}/metrics").text
    assert 'leadscore_unknown_category_total{feature="fit_industry",motion="b2b"}' in metrics
    assert 'leadscore_tier_total{motion="b2b"' in metrics and "leadscore_scoring_seconds_bucket" in metrics
    assert re.search(r'leadscore_scores_total{band="0\.\d",motion="b2b"} [1-9]', metrics)


def test_score_log_rows_equal_responses_after_a_concurrent_burst(server):
    url, _ = server
    store = Store(Settings.load().store_url)
    tag = f"burst-{time.time_ns()}"

    def call(i: int) -> int:
        body = example(("b2b", "b2c", "hybrid")[i % 3])
        body["request"]["request_id"] = f"{tag}-{i}"
        return post(url, "/score", body).status_code

    with ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(call, range(300)))
    assert codes.count(200) == 300
    deadline = time.time() + 20
    n = 0
    while time.time() < deadline:
        n = store.query("SELECT COUNT(*) AS n FROM score_log WHERE request_id LIKE ?", (f"{tag}-%",))[0]["n"]
        if n == 300:
            break
        time.sleep(0.2)
    assert n == 300
    row = store.query("SELECT * FROM score_log WHERE request_id = ?", (f"{tag}-0",))[0]
    assert (
        row["motion"] == "b2b"
        and row["source"] == "realtime"
        and "intent_lead_pricing_7d" in json.loads(row["features"])
    )


def test_reload_after_a_promotion_reaches_every_worker(server, b2c_dir, start_service):
    """/admin/reload answers once every worker serves the new champion: here two workers that would not poll
    the registry for an hour, and the module's service beside them (the same home)."""
    from model import registry
    from training.pipelines import train_motion

    two = start_service(
        {
            "LEADSCORE_RELOAD_SECONDS": "3600",
            "BENTOML_CONFIG_OVERRIDES": json.dumps({"services": {"leadscore": {"workers": 2}}}),
        }
    )
    url = two.url
    r = train_motion("b2c", b2c_dir)
    assert r.alias == "challenger"
    registry.promote("b2c", r.version, force=True, why="reload test")
    status = post(url, "/admin/reload", {}).json()
    assert status["models"]["b2c"] == r.version
    assert status["workers_reloaded"] == status["workers"] == len(two.workers()) + 1  # + the module's service
    assert {post(url, "/score", example("b2c")).json()["version"] for _ in range(20)} == {r.version}
    assert post(server[0], "/score", example("b2c")).json()["version"] == r.version
    assert post(url, "/score", example("b2b")).json()["version"] == "1"
