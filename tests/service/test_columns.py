"""The columnar body (``POST /score_columns``) in-process: the same answers as the list form for the same leads
and customers, for every motion, and bad columns refused naming the column and the row."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from leadscore.errors import UserError
from leadscore.schema import load_dataset
from leadscore.settings import PROJECT_ROOT
from serving.schemas import ColumnsRequest, ScoreRequest, columns_of, reasons_per_row
from serving.scorer import Scorer

EXAMPLES = PROJECT_ROOT / "serving" / "examples"
ANSWERS = ("request_id", "lead_id", "score", "score_100", "tier", "route", "owner", "sla_minutes", "next_actions",
           "expected_value", "fit_score", "engagement_score", "grade", "gates", "unknown_categories")  # fmt: skip


def _example(motion: str) -> dict:
    return json.loads((EXAMPLES / f"{motion}.json").read_text())["request"]


def _requests(motion: str, folder, n: int = 40) -> list[dict]:
    """Known and new leads (or customers) with varied fields and events: none, repeated ids, account-level intent,
    zoned and unzoned times."""
    rng = random.Random(7)
    ex = _example(motion)
    tables = load_dataset(folder, motion)
    out = []
    if motion == "b2c":
        known = tables["customers"].sample(n - 5, random_state=1)["customer_id"].tolist() + [
            f"C-new-{i}" for i in range(5)
        ]
        for i, cid in enumerate(known):
            customer = ex["customer"] | {"customer_id": cid}
            if i % 3 == 0:
                del customer["consent_sms"]  # absent consent: none, as in the list form
            if i % 4 == 0:
                customer["channel"] = None
            events = [e | {"event_id": f"{e['event_id']}-{i % 7}"} for e in ex["events"][: rng.randint(0, 6)]]
            out.append(ex | {"request_id": f"r{i}", "customer": customer, "events": events,
                             "orders": ex["orders"] if i % 2 else []})  # fmt: skip
        return out
    leads = tables["leads"].sample(n - 5, random_state=1)
    pairs = list(zip(leads["lead_id"], leads["account_id"], strict=True)) + [(f"L-new-{i}", f"A-new-{i}") for i in range(5)]  # fmt: skip
    for i, (lid, aid) in enumerate(pairs):
        lead = ex["lead"] | {"lead_id": lid, "account_id": aid}
        if i % 3 == 0:
            lead["stage"] = None  # hybrid: the lifecycle stage the features give
        if i % 5 == 0:
            lead.pop("buying_role", None)
            lead.pop("email_domain_type", None)
        events = [
            e | {"event_id": f"{e['event_id']}-{i % 4}"}
            for e in ex["events"][: rng.randint(0, len(ex["events"]))]
        ]
        if i % 6 == 0 and events:
            events.append(dict(events[0]))  # the same event twice in one request: counted once
        if i % 7 == 0:
            events.append({"event_id": f"tpi-{i}", "ts": "2026-06-18T08:00:00", "type": "third_party_intent",
                           "topic": "analytics"})  # fmt: skip
        account = (ex.get("account") or {}) | {"account_id": aid} if i % 2 else None
        out.append(ex | {"request_id": f"r{i}", "lead": lead, "account": account, "events": events})
    return out


@pytest.mark.parametrize("motion", ["b2b", "hybrid", "b2c"])
def test_columns_answer_as_the_list_form_does(trained, data_of, motion):
    scorer = Scorer(names=(motion,))
    scorer.reload()
    reqs = _requests(motion, data_of(motion))
    rows = scorer.score_many([ScoreRequest.model_validate(r) for r in reqs])
    body = columns_of(reqs)
    got = scorer.score_columns(ColumnsRequest.model_validate(body))
    assert got["rows"] == len(reqs) and got["motion"] == motion
    assert reasons_per_row(got["reasons"], len(reqs)) == [r["reasons"] for r in rows]
    for k in ANSWERS:
        column = got[k].tolist() if isinstance(got[k], np.ndarray) else list(got[k])
        assert column == [r[k] for r in rows], k
    for name, values in got["_features"].items():
        expected = np.array([r["_features"][name] for r in rows], dtype=values.dtype)
        assert np.array_equal(values, expected, equal_nan=values.dtype.kind == "f"), name
    # Events in any order of rows give the same answers (each request's own events keep their order).
    if "events" in body:
        order = sorted(range(len(body["events"]["row"])), key=lambda k: (-body["events"]["row"][k], k))
        shuffled = body | {"events": {c: [v[k] for k in order] for c, v in body["events"].items()}}
        again = scorer.score_columns(ColumnsRequest.model_validate(shuffled))
        assert again["score"].tolist() == got["score"].tolist() and again["reasons"] == got["reasons"]


def _refusal(scorer: Scorer, body: dict) -> str:
    with pytest.raises(UserError) as exc:
        scorer.score_columns(ColumnsRequest.model_validate(body))
    return str(exc.value)


def test_bad_columns_are_refused_naming_the_column_and_the_row(trained, data_of):
    scorer = Scorer(names=("b2b", "b2c"))
    scorer.reload()
    body = columns_of(_requests("b2b", data_of("b2b"), 10))
    assert "lead.created_at: 9 values for 10 rows" in _refusal(
        scorer, body | {"lead": body["lead"] | {"created_at": body["lead"]["created_at"][:9]}}
    )
    events = body["events"]
    assert "events.row.2: 10 is not a row" in _refusal(
        scorer, body | {"events": events | {"row": events["row"][:2] + [10] + events["row"][3:]}}
    )
    assert "events.ts.1: unparseable timestamp" in _refusal(
        scorer, body | {"events": events | {"ts": events["ts"][:1] + ["yesterday"] + events["ts"][2:]}}
    )
    assert "events.type.0: 'add_to_cart' is not a b2b event type" in _refusal(
        scorer, body | {"events": events | {"type": ["add_to_cart"] + events["type"][1:]}}
    )
    assert "events.lead_id: " in _refusal(scorer, body | {"events": events | {"lead_id": [None]}})
    assert "lead: required for motion b2b" in _refusal(scorer, {"motion": "b2b"})
    empty = {"lead_id": [], "account_id": [], "created_at": []}
    assert "lead.lead_id: at least one row" in _refusal(scorer, {"motion": "b2b", "lead": empty})
    assert "request_id: 3 values for 10 rows" in _refusal(scorer, body | {"request_id": ["a", "b", "c"]})
    assert "created after as_of" in _refusal(scorer, body | {"as_of": "2020-01-01T00:00:00Z"})
    assert "motion: no hybrid champion" in _refusal(scorer, body | {"motion": "hybrid"})
