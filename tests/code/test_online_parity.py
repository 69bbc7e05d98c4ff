"""Online features equal batch features for the same entity and as-of, on every store backend."""

from __future__ import annotations

import socket
import uuid

import numpy as np
import pandas as pd
import pytest

from features.historical import features_as_of, latest_time
from features.materialize import materialize
from features.online_frame import OnlineFeatures
from features.online_store import open_store
from features.prepare import prepare
from leadscore.config import load_config
from leadscore.errors import UserError
from leadscore.schema import load_dataset


def _jsonable(v):
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    if v is None or (not isinstance(v, bool | np.bool_) and pd.isna(v)):
        return None
    return v.item() if hasattr(v, "item") else v


class Payloads:
    """What a CRM webhook or checkout would send: the entity's fields and its recent events."""

    def __init__(self, motion: str, tables: dict, as_of: int):
        self.motion = motion
        self.id_col, ent = ("customer_id", "customers") if motion == "b2c" else ("lead_id", "leads")
        self.entities = tables[ent].set_index(self.id_col)
        t = pd.Timestamp(as_of, unit="s")
        ev = tables["events"]
        ev = ev[(ev["ts"] <= t) & (ev["ts"] > t - pd.Timedelta(days=90)) & ev[self.id_col].notna()]
        self.events = {k: g for k, g in ev.groupby(self.id_col)}

    def __call__(self, entity_id: str) -> dict:
        rec = {k: _jsonable(v) for k, v in self.entities.loc[entity_id].items()} | {self.id_col: entity_id}
        ev = self.events.get(entity_id)
        events = (
            [] if ev is None else [{k: _jsonable(v) for k, v in r.items()} for r in ev.to_dict("records")]
        )
        return {"customer" if self.motion == "b2c" else "lead": rec, "events": events}


def assert_same(batch_row: pd.Series, online: dict, where: str) -> None:
    for k, v in online.items():
        b = batch_row[k]
        if pd.isna(b) and (v is None or (isinstance(v, float) and np.isnan(v))):
            continue
        if isinstance(b, str) or isinstance(v, str):
            assert b == v, (where, k, b, v)
        else:
            assert v == pytest.approx(b, rel=1e-12, abs=1e-12), (where, k, b, v)


def _check(motion: str, folder, store_url: str, n: int, withhold: bool) -> int:
    conf = load_config(motion)
    tables = load_dataset(folder, motion)
    p_full = prepare(motion, tables)
    as_of = latest_time(p_full) - 30 * 86400
    batch = features_as_of(p_full, as_of, conf)
    id_col = "customer_id" if motion == "b2c" else "lead_id"
    if motion != "b2c":  # one lead per account, so a withheld lead never hides a colleague's events
        batch = batch.drop_duplicates("account_id")
    sample = batch.sample(min(n, len(batch)), random_state=1)
    store_tables = tables
    if withhold:  # the store has never seen these entities' events: they arrive only in the request
        ev = tables["events"]
        store_tables = dict(tables, events=ev[~ev[id_col].isin(sample[id_col])])
    store = open_store(store_url)
    materialize(prepare(motion, store_tables), as_of, conf, store)
    online = OnlineFeatures(conf, store)
    payload = Payloads(motion, tables, as_of)
    rows = [row for _, row in sample.iterrows()]
    # The service scores a batch as one frame (one pseudo-account per request): same values as one at a time.
    batched = online.compute_many([payload(row[id_col]) for row in rows], as_of)
    for row, got in zip(rows, batched, strict=True):
        assert_same(row, got, row[id_col])
    for row in rows[:50]:
        assert_same(row, online.compute(payload(row[id_col]), as_of), row[id_col])
    store.close()
    return len(sample)


@pytest.mark.parametrize("motion", ["b2b", "b2c", "hybrid"])
def test_parity_sqlite_thousands_of_entities(motion, data_of, tmp_path):
    n = _check(motion, data_of(motion), f"sqlite:///{tmp_path}/o.db", 2000, withhold=False)
    assert n >= 1000


@pytest.mark.parametrize("motion", ["b2b", "b2c"])
def test_parity_when_events_arrive_only_in_the_request(motion, data_of, tmp_path):
    _check(motion, data_of(motion), f"sqlite:///{tmp_path}/o.db", 500, withhold=True)


@pytest.mark.services
@pytest.mark.parametrize("motion", ["b2b", "b2c"])
def test_parity_redis(motion, data_of, redis_url):
    _check(motion, data_of(motion), redis_url, 300, withhold=True)


@pytest.mark.services
@pytest.mark.parametrize("motion", ["b2b", "b2c"])
def test_parity_postgres(motion, data_of, pg_url):
    _check(motion, data_of(motion), pg_url, 300, withhold=True)


def test_unknown_entity_scores_from_the_request_alone(tmp_path):
    conf = load_config("b2b")
    online = OnlineFeatures(conf, open_store(f"sqlite:///{tmp_path}/o.db"))
    as_of = 1_780_000_000
    f = online.compute(
        {
            "lead": {
                "lead_id": "new",
                "account_id": "new-acct",
                "created_at": as_of - 86400,
                "buying_role": "economic_buyer",
                "email_domain_type": "business",
            },
            "account": {"industry": "software", "employee_count": 800, "region": "NA"},
            "events": [{"event_id": "e1", "ts": as_of - 60, "type": "pricing_page"}],
        },
        as_of,
    )
    assert f["intent_lead_pricing_7d"] == 1 and f["fit_industry_match"] == 1
    assert f["engagement_economic_buyer"] == 1
    with pytest.raises(UserError, match="created after as_of"):
        online.compute({"lead": {"lead_id": "x", "account_id": "a", "created_at": as_of + 10}}, as_of)
    with pytest.raises(UserError, match="unparseable timestamp"):
        online.compute({"lead": {"lead_id": "x", "account_id": "a", "created_at": "yesterday"}}, as_of)


def test_a_batch_keeps_requests_apart_and_names_the_bad_item(tmp_path):
    """Two requests for leads of the same account each see only their own request events; errors carry the index."""
    from leadscore.errors import ItemError

    online = OnlineFeatures(load_config("b2b"), open_store(f"sqlite:///{tmp_path}/o.db"))
    as_of = 1_780_000_000
    lead = {"account_id": "acct", "created_at": as_of - 86400}
    hot = {
        "lead": lead | {"lead_id": "a"},
        "events": [{"event_id": f"e{i}", "ts": as_of - 60 * i, "type": "pricing_page"} for i in range(1, 4)],
    }
    cold = {"lead": lead | {"lead_id": "b"}, "events": []}
    f = online.compute_many([hot, cold, hot], as_of)
    assert [x["intent_lead_pricing_7d"] for x in f] == [3, 0, 3]
    repeated = hot | {"events": hot["events"] + hot["events"][:2]}  # a webhook retry repeats two events
    assert repr(online.compute(repeated, as_of)) == repr(f[0])
    assert repr(f[0]) == repr(f[2]) == repr(online.compute(hot, as_of))  # repr: NaN equals NaN
    with pytest.raises(ItemError, match="created after as_of") as err:
        online.compute_many([hot, {"lead": lead | {"lead_id": "c", "created_at": as_of + 5}}], as_of)
    assert err.value.index == 1


def test_store_url_is_validated():
    with pytest.raises(UserError, match="unsupported online store URL"):
        open_store(f"mysql://{uuid.uuid4()}")


def test_a_batch_with_many_distinct_topics_and_categories_counts_each_entity_alone(tmp_path):
    """Topic and category codes are numbered across a whole batch: beyond 64 topics (256 categories) an
    account's distinct count must not spill into its neighbour's."""
    as_of = 1_780_000_000
    b2b = OnlineFeatures(load_config("b2b"), open_store(f"sqlite:///{tmp_path}/b2b.db"))
    leads = [
        {
            "lead": {"lead_id": f"l{i}", "account_id": f"a{i}", "created_at": as_of - 86400},
            "events": [
                {
                    "event_id": f"e{i}-{j}",
                    "ts": as_of - 3600,
                    "type": "third_party_intent",
                    "topic": f"topic-{i}-{j}",
                }
                for j in range(i % 3 + 1)
            ],
        }
        for i in range(120)
    ]
    batch = [f["intent_acct_topics_90d"] for f in b2b.compute_many(leads, as_of)]
    assert batch == [float(i % 3 + 1) for i in range(120)]
    assert batch == [b2b.compute(p, as_of)["intent_acct_topics_90d"] for p in leads]
    b2c = OnlineFeatures(load_config("b2c"), open_store(f"sqlite:///{tmp_path}/b2c.db"))
    customers = [
        {
            "customer": {"customer_id": f"c{i}", "created_at": as_of - 86400},
            "events": [
                {
                    "event_id": f"v{i}-{j}",
                    "ts": as_of - 3600,
                    "type": "product_view",
                    "session_id": f"s{i}",
                    "category": f"cat-{i}-{j}",
                    "price": 10.0,
                }
                for j in range(i % 4 + 1)
            ],
        }
        for i in range(200)
    ]
    batch = [f["behavior_categories_30d"] for f in b2c.compute_many(customers, as_of)]
    assert batch == [float(i % 4 + 1) for i in range(200)]
    # The batch path numbers every topic of its data too (no longer the first 63 alone): codes of any size.
    from features.compute import _distinct

    counts = _distinct(np.array([0, 0, 1, 1]), np.array([700, 700, 64, 0]), np.ones(4, dtype=bool), 2)
    assert counts.tolist() == [1.0, 2.0]


def test_a_rewritten_context_is_read_anew_and_the_memo_stays_bounded(tmp_path):
    """Decoded contexts are memoised by their stored text: a materialization that rewrites an account is seen
    on the next request, and the memo keeps to its memory budget."""
    import json

    from features.contexts import MEMO_COST
    from features.frames import ROLE_CODE

    as_of = 1_780_000_000
    store = open_store(f"sqlite:///{tmp_path}/o.db")

    def context(n_events: int) -> str:
        return json.dumps(
            {
                "account": {
                    "account_id": "acct",
                    "industry": "software",
                    "employee_count": 800,
                    "annual_revenue": None,
                    "region": "NA",
                },
                "leads": {
                    "lead_id": ["other"],
                    "created": [as_of - 86400 * 30],
                    "role": [ROLE_CODE["champion"]],
                    "seniority": [None],
                    "business": [1.0],
                    "stage": [0],
                },
                "events": {
                    "ts": [as_of - 3600 * (k + 1) for k in range(n_events)],
                    "type": ["pricing_page"] * n_events,
                    "lead": [0] * n_events,
                    "topic": [None] * n_events,
                    "event_id": [f"s{k}" for k in range(n_events)],
                },
            }
        )

    request = {
        "lead": {
            "lead_id": "a",
            "account_id": "acct",
            "created_at": as_of - 86400,
            "buying_role": "economic_buyer",
        },
        "events": [],
    }
    store.put_many([("leadscore:b2b:acct", context(1))])
    online = OnlineFeatures(
        load_config("b2b"), store, memo_mb=MEMO_COST * len(context(4)) * 1.5 / 2**20
    )  # one fits
    first = online.compute(request, as_of)
    assert first["intent_acct_hi_30d"] == 1 and first["engagement_champion"] == 1
    store.put_many([("leadscore:b2b:acct", context(4))])
    assert online.compute(request, as_of)["intent_acct_hi_30d"] == 4
    # The request's own copy of a stored event is not counted twice; another account's context evicts this one.
    again = request | {"events": [{"event_id": "s0", "ts": as_of - 3600, "type": "pricing_page"}]}
    assert online.compute(again, as_of)["intent_acct_hi_30d"] == 4
    store.put_many([("leadscore:b2b:other", context(2))])
    online.compute(request | {"lead": request["lead"] | {"account_id": "other"}}, as_of)
    assert len(online.memo) == 1 and online.memo.used_bytes <= online.memo.memo_bytes
    assert not online.memo.get_many(["other"])[0].ev_ts.flags.writeable  # shared with every batch: read-only
    none = OnlineFeatures(load_config("b2b"), store, memo_mb=0)
    assert none.compute(request, as_of)["intent_acct_hi_30d"] == 4 and len(none.memo) == 0


@pytest.mark.parametrize("backend", ["sqlite", "redis", "postgres"])
def test_compare_and_set_many_writes_what_is_unchanged_and_refuses_what_moved(backend, tmp_path, request):
    url = {"sqlite": lambda: f"sqlite:///{tmp_path}/o.db", "redis": lambda: request.getfixturevalue("redis_url"),
           "postgres": lambda: request.getfixturevalue("pg_url")}[backend]()  # fmt: skip
    store = open_store(url)
    k = [f"leadscore:t:{uuid.uuid4()}" for _ in range(4)]
    store.put_many([(k[0], "a"), (k[1], "b")])
    # k0: unchanged → written; k1: moved (we read "x") → refused; k2: new → inserted; k3: we thought it new, it is not
    store.put_many([(k[3], "there")])
    landed = store.compare_and_set_many(
        [(k[0], "a", "a2"), (k[1], "x", "b2"), (k[2], None, "c"), (k[3], None, "d")]
    )
    assert landed == [True, False, True, False]
    assert store.get_many(k) == ["a2", "b", "c", "there"]
    assert store.compare_and_set_many([(k[0], "a2", "a3"), (k[2], "c", "c3")]) == [True, True]  # all land
    assert store.get_many(k[:3]) == ["a3", "b", "c3"]
    assert store.compare_and_set_many([]) == []
    store.close()


def test_redis_compare_and_set_many_over_several_script_parts(redis_url):
    store = open_store(redis_url)
    n = 2 * store.CAS_PART + 7  # type: ignore[attr-defined]
    keys = [f"leadscore:t:{uuid.uuid4()}" for _ in range(n)]
    store.put_many([(k, f"v{i}") for i, k in enumerate(keys)])
    # every third key moved since it was read: refused, wherever it falls among the parts
    read = [f"v{i}" if i % 3 else "moved" for i in range(n)]
    landed = store.compare_and_set_many(
        [(k, r, f"w{i}") for i, (k, r) in enumerate(zip(keys, read, strict=True))]
    )
    assert landed == [bool(i % 3) for i in range(n)]
    assert store.get_many(keys) == [f"w{i}" if i % 3 else f"v{i}" for i in range(n)]
    assert store.compare_and_set(keys[0], "v0", "x") and not store.compare_and_set(keys[0], "v0", "y")
    assert store.compare_and_set(f"leadscore:t:{uuid.uuid4()}", None, "new")
    store.close()


def test_redis_down_is_store_unavailable_for_writes():
    """Redis not answering: the events path gets StoreUnavailable (a 503 that acknowledges nothing), as with the SQL
    stores, not a raw client error (a 500)."""
    from leadscore.store import StoreUnavailable

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = open_store(f"redis://:secret@127.0.0.1:{port}/0")
    for call in (lambda: store.get_many(["k"]), lambda: store.put_many([("k", "v")]),
                 lambda: store.compare_and_set_many([("k", None, "v")])):  # fmt: skip
        with pytest.raises(StoreUnavailable, match="unavailable") as e:
            call()
        assert "secret" not in str(e.value)
