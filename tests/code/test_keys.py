"""API keys: shown once, stored hashed, found in constant time, scoped, revocable."""

from __future__ import annotations

import pytest

from leadscore import keys
from leadscore.errors import UserError
from leadscore.store import Store
from serving.auth import bearer, required_scope


def test_keys_are_stored_hashed_scoped_and_revocable(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/s.db")
    k = keys.create(store, "crm", ["score"])
    assert k.startswith(keys.PREFIX) and len(k) > 40
    rows = store.query("SELECT * FROM api_keys")
    assert rows[0]["hash"] == keys.digest(k) and k not in str(rows)  # only the hash is kept
    found = keys.find(keys.load(store), k)
    assert found is not None and found.name == "crm" and found.scopes == {"score"}
    assert keys.find(keys.load(store), k + "x") is None
    keys.revoke(store, "crm")
    assert keys.find(keys.load(store), k) is None  # revoked: no longer accepted
    with pytest.raises(UserError, match="exists already"):
        keys.create(store, "crm", ["score"])
    with pytest.raises(UserError, match="scope 'scoring'"):
        keys.create(store, "other", ["scoring"])
    with pytest.raises(UserError, match="no active key"):
        keys.revoke(store, "crm")


def test_every_path_has_a_scope_or_is_open():
    assert required_scope("/score") == required_scope("/score_batch") == "score"
    assert required_scope("/outcomes") == "outcomes" and required_scope("/events") == "events"
    assert required_scope("/admin/reload") == "admin" and required_scope("/somewhere") == "any"
    assert all(required_scope(p) is None for p in ("/livez", "/readyz", "/metrics", "/docs.json", "/"))
    assert bearer([(b"authorization", b"Bearer abc")]) == "abc"
    assert bearer([(b"authorization", b"Basic abc")]) is None and bearer([]) is None


def test_the_local_copy_holds_hashes_and_reads_back_the_same_keys(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/s.db")
    k = keys.create(store, "crm", ["score", "events"], rate_per_minute=60)
    keys.save_copy(keys.load(store), tmp_path / "copy.json")
    text = (tmp_path / "copy.json").read_text()
    assert k not in text and keys.digest(k) in text
    assert keys.read_copy(tmp_path / "copy.json") == keys.load(store)
    assert keys.find(keys.read_copy(tmp_path / "copy.json"), k).name == "crm"
