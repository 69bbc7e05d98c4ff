"""API keys and scopes on the real running service: the whole matrix, rate limits, revocation without a restart."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from cli.app import app
from serving.schemas import columns_of

pytestmark = pytest.mark.slow
EXAMPLES = Path(__file__).resolve().parents[2] / "serving" / "examples"


def _cli(*args: str):
    return CliRunner().invoke(app, list(args))


def _key(*args: str) -> str:
    r = _cli("keys", "create", *args)
    assert r.exit_code == 0, r.output
    return r.output.strip().splitlines()[-1]  # the key is the last line


def test_no_key_means_no_open_port_beyond_loopback(tmp_path, monkeypatch):
    monkeypatch.setenv("LEADSCORE_HOME", str(tmp_path / "home"))
    r = _cli("serve", "--host", "0.0.0.0")
    assert r.exit_code == 2 and "no API key exists" in r.output and "--insecure" in r.output
    assert _cli("keys", "create", "--name", "x", "--scope", "scoring").exit_code == 2  # unknown scope
    assert _cli("keys", "revoke", "nobody").exit_code == 2


def test_keys_and_scopes_on_every_endpoint(trained, start_service, tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("LEADSCORE_HOME", str(home))  # the keys go into this service's own store
    crm = _key("--name", "crm", "--scope", "score")
    ops = _key("--name", "ops", "--scope", "admin", "--scope", "outcomes")
    slow = _key("--name", "slow", "--scope", "score", "--rate", "2")
    old = _key("--name", "old", "--scope", "score")
    assert crm.startswith("lsk_") and len({crm, ops, slow, old}) == 4
    assert _cli("keys", "revoke", "old").exit_code == 0
    listed = _cli("keys", "list").output
    assert "crm" in listed and "old" in listed and crm not in listed
    service = start_service({"LEADSCORE_HOME": str(home)})
    body = json.loads((EXAMPLES / "b2b.json").read_text())

    def call(path: str, key: str | None = None, payload=None) -> httpx.Response:
        headers = {"authorization": f"Bearer {key}"} if key else {}
        return httpx.post(service.url + path, json=body if payload is None else payload, headers=headers,
                          timeout=30)  # fmt: skip

    r = call("/score")
    assert (
        r.status_code == 401
        and "missing API key" in r.json()["error"]
        and "bearer" in r.headers["www-authenticate"].lower()
    )
    assert call("/score", "lsk_not-a-key").status_code == 401
    assert call("/score", old).status_code == 401  # revoked
    r = call("/score", ops)
    assert r.status_code == 403 and "'score'" in r.json()["error"]  # wrong scope
    assert call("/score", crm).status_code == 200  # right scope
    assert call("/score_batch", crm, {"requests": [body["request"]]}).status_code == 200
    assert call("/score_columns", crm, columns_of([body["request"]])).status_code == 200
    assert call("/score_columns", ops, columns_of([body["request"]])).status_code == 403
    assert call("/admin/status", crm, {}).status_code == 403
    assert call("/admin/status", ops, {}).status_code == 200
    assert call("/outcomes", crm, {"outcomes": [{"x": 1}]}).status_code == 403
    assert call("/outcomes", ops, {"outcomes": [{"x": 1}]}).status_code == 400  # through to validation
    for path in ("/livez", "/readyz", "/metrics", "/docs.json"):
        assert httpx.get(service.url + path, timeout=10).status_code == 200, path  # open
    # A key's own rate limit: its burst, then 429 with Retry-After.
    codes = [call("/score", slow).status_code for _ in range(4)]
    assert codes[:2] == [200, 200] and 429 in codes[2:]
    limited = call("/score", slow)
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    metrics = httpx.get(service.url + "/metrics", timeout=10).text
    assert 'leadscore_requests_by_key_total{key="crm",scope="score"}' in metrics
    # Revoked while the service runs: refused within the key refresh, no restart.
    assert _cli("keys", "revoke", "crm").exit_code == 0
    deadline = time.time() + 15
    while call("/score", crm).status_code != 401 and time.time() < deadline:
        time.sleep(0.5)
    assert call("/score", crm).status_code == 401
    assert all(k not in service.log.read_text() for k in (crm, ops, slow, old))  # keys are never logged
