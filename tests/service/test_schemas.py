"""The request contract: events and orders are validated typed dicts, times are epoch seconds or ISO-8601."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from leadscore.settings import PROJECT_ROOT
from serving.schemas import ScoreRequest
from serving.scorer import Scorer


def example(motion: str) -> dict:
    return json.loads((PROJECT_ROOT / f"serving/examples/{motion}.json").read_text())["request"]


def test_events_and_orders_are_validated_dicts_with_extras_dropped():
    body = example("b2c")
    body["events"] = [
        {"event_id": "e1", "ts": 1781300000, "type": "add_to_cart", "price": 3, "crm_extra": "x"},
        {"event_id": "e2", "ts": "2026-06-19T15:00:00Z", "type": "product_view"},
    ]
    body["orders"] = [{"ts": "2026-06-01T00:00:00", "amount": 12, "currency": "EUR"}]
    req = ScoreRequest.model_validate(body)
    assert req.events[0] == {"event_id": "e1", "ts": 1781300000.0, "type": "add_to_cart", "price": 3.0}
    assert req.events[1]["ts"] == datetime(2026, 6, 19, 15, tzinfo=UTC) and "price" not in req.events[1]
    assert req.orders == [{"ts": datetime(2026, 6, 1), "amount": 12.0}]
    schema = ScoreRequest.model_json_schema()
    assert {"event_id", "ts", "type", "price"} <= set(schema["$defs"]["Event"]["properties"])
    assert schema["$defs"]["Event"]["required"] == ["event_id", "ts", "type"]


@pytest.mark.parametrize(
    ("field", "item", "location"),
    [
        ("events", {"event_id": "", "ts": 1781300000, "type": "add_to_cart"}, ("events", 0, "event_id")),
        (
            "events",
            {"event_id": "e", "ts": 1781300000, "type": "add_to_cart", "price": -1},
            ("events", 0, "price"),
        ),
        (
            "events",
            {"event_id": "e", "ts": float("nan"), "type": "add_to_cart"},
            ("events", 0, "ts", "constrained-float"),
        ),
        (
            "events",
            {"event_id": "e", "ts": 1e20, "type": "add_to_cart"},
            ("events", 0, "ts", "constrained-float"),
        ),
        ("events", {"event_id": "e", "ts": -1e19, "type": "add_to_cart"}, ("events", 0, "ts", "datetime")),
        (
            "events",
            {"event_id": "e", "ts": "yesterday", "type": "add_to_cart"},
            ("events", 0, "ts", "datetime"),
        ),
        ("events", {"event_id": "e", "ts": 1781300000, "type": "fax"}, ("events", 0, "type")),
        ("events", {"ts": 1781300000, "type": "add_to_cart"}, ("events", 0, "event_id")),
        ("orders", {"ts": 1781300000, "amount": float("inf")}, ("orders", 0, "amount")),
        ("orders", {"ts": 1781300000}, ("orders", 0, "amount")),
        ("orders", {"ts": 1e300, "amount": 1}, ("orders", 0, "ts", "constrained-float")),
    ],
)
def test_bad_items_are_rejected_by_location(field, item, location):
    with pytest.raises(ValidationError) as err:
        ScoreRequest.model_validate(example("b2c") | {field: [item]})
    assert location in [e["loc"] for e in err.value.errors()]


def test_epoch_seconds_milliseconds_and_iso_times_score_the_same(trained):
    scorer = Scorer(names=("b2b",))
    scorer.reload()
    iso = example("b2b")
    epoch, millis = json.loads(json.dumps(iso)), json.loads(json.dumps(iso))
    for e, m in zip(epoch["events"], millis["events"], strict=True):
        e["ts"] = datetime.fromisoformat(e["ts"]).timestamp()
        m["ts"] = int(e["ts"] * 1000)  # what JavaScript's Date.now() gives
    a, b, c = (scorer.score(ScoreRequest.model_validate(r)) for r in (iso, epoch, millis))
    assert a["_features"] == b["_features"] == c["_features"] and a["score"] == b["score"] == c["score"]
    assert a["_features"]["intent_lead_pricing_7d"] > 0  # the request's events were counted


def test_out_of_range_epoch_seconds_are_a_user_error_in_the_feature_code_too():
    from leadscore.errors import UserError
    from leadscore.times import epoch_seconds

    assert epoch_seconds(253_402_300_799) == 253_402_300_799
    for v in (1e20, -1e19, 253_402_300_800):
        with pytest.raises(UserError, match="out of range"):
            epoch_seconds(v)
