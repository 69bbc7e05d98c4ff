"""API keys: named, scoped, stored hashed in the project's store; the service checks every request against them.

A key is shown once, when it is created (``leadscore keys create``); the store keeps its SHA-256 only (a key is
32 random bytes, so a plain hash is as strong as the key itself). Revoked keys stay listed with their time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from leadscore.errors import UserError
from leadscore.store import Store

SCOPES = ("score", "outcomes", "events", "admin")
PREFIX = "lsk_"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
DDL = [
    """CREATE TABLE IF NOT EXISTS api_keys (
        name TEXT PRIMARY KEY, hash TEXT NOT NULL, scopes TEXT NOT NULL, rate_per_minute INTEGER,
        created_at TEXT NOT NULL, revoked_at TEXT)"""
]


@dataclass(frozen=True)
class Key:
    name: str
    hash: str
    scopes: frozenset[str]
    rate_per_minute: int | None
    created_at: str
    revoked_at: str | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _store(store: Store) -> Store:
    for statement in DDL:
        store.execute(statement)
    return store


def create(store: Store, name: str, scopes: list[str], rate_per_minute: int | None = None) -> str:
    """A new key called ``name`` with ``scopes``; returns the key itself (it is not stored)."""
    if not NAME.match(name):
        raise UserError(f"key name {name!r}: letters, digits, '.', '_' or '-', at most 64 characters")
    bad = sorted(set(scopes) - set(SCOPES))
    if not scopes or bad:
        raise UserError(f"scope {bad[0] if bad else '(none)'!r}: give one or more of {', '.join(SCOPES)}")
    if rate_per_minute is not None and rate_per_minute <= 0:
        raise UserError("--rate must be a positive number of requests per minute")
    if any(k.name == name for k in load(store)):
        raise UserError(f"a key named {name!r} exists already (revoked keys keep their name)")
    key = PREFIX + secrets.token_urlsafe(32)
    store.execute(
        "INSERT INTO api_keys (name, hash, scopes, rate_per_minute, created_at) VALUES (?, ?, ?, ?, ?)",
        (name, digest(key), ",".join(sorted(set(scopes))), rate_per_minute, _now()),
    )
    return key


def load(store: Store) -> list[Key]:
    rows = _store(store).query("SELECT * FROM api_keys ORDER BY created_at, name")
    return [Key(r["name"], r["hash"], frozenset(r["scopes"].split(",")), r["rate_per_minute"], r["created_at"],
                r["revoked_at"]) for r in rows]  # fmt: skip


def revoke(store: Store, name: str) -> None:
    if _store(store).execute("UPDATE api_keys SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
                             (_now(), name)) == 0:  # fmt: skip
        raise UserError(f"no active key named {name!r} (leadscore keys list shows them)")


def find(keys: list[Key], presented: str) -> Key | None:
    """The active key whose hash matches ``presented``, compared in constant time against every key."""
    h, found = digest(presented), None
    for k in keys:
        if hmac.compare_digest(k.hash, h) and k.active:
            found = k
    return found


def save_copy(keys: list[Key], path: Path) -> None:
    """The keys (hashes, never keys) as a file a service can start from when the store is down."""
    rows = [{"name": k.name, "hash": k.hash, "scopes": sorted(k.scopes), "rate_per_minute": k.rate_per_minute,
             "created_at": k.created_at, "revoked_at": k.revoked_at} for k in keys]  # fmt: skip
    text = json.dumps(rows)
    if not path.exists() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)


def read_copy(path: Path) -> list[Key]:
    return [Key(r["name"], r["hash"], frozenset(r["scopes"]), r["rate_per_minute"], r["created_at"],
                r["revoked_at"]) for r in json.loads(path.read_text())]  # fmt: skip


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
