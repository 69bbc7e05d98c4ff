"""Online stores: where materialization writes each account's (B2B, hybrid) or customer's (B2C) context and
request-time scoring reads it. SQLite (the embedded default), Redis or PostgreSQL, by URL."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Protocol

from leadscore.errors import UserError
from leadscore.store import Store, StoreUnavailable, redacted


class OnlineStore(Protocol):
    def put_many(self, items: Iterable[tuple[str, str]]) -> int: ...
    def get_many(self, keys: list[str]) -> list[str | None]: ...
    def compare_and_set(self, key: str, old: str | None, new: str) -> bool: ...
    def compare_and_set_many(self, items: list[tuple[str, str | None, str]]) -> list[bool]: ...
    def close(self) -> None: ...


class SQLStore:
    """SQLite (the embedded default, a file under LEADSCORE_HOME) or PostgreSQL, through the project's Store."""

    DDL = ["CREATE TABLE IF NOT EXISTS leadscore_online (key TEXT PRIMARY KEY, value TEXT NOT NULL)"]
    UPSERT = (
        "INSERT INTO leadscore_online (key, value) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
    )

    def __init__(self, url: str):
        self._db = Store(url, ddl=self.DDL, timeout=0.5)  # a request waits at most this for a connection

    def put_many(self, items: Iterable[tuple[str, str]]) -> int:
        rows = list(items)
        self._db.executemany(self.UPSERT, rows)
        return len(rows)

    def get_many(self, keys: list[str]) -> list[str | None]:
        found: dict[str, str] = {}
        distinct = list(dict.fromkeys(keys))
        for s in range(0, len(distinct), 500):
            part = distinct[s : s + 500]
            found.update(
                self._db.query_tuples(
                    f"SELECT key, value FROM leadscore_online WHERE key IN ({','.join('?' * len(part))})",
                    tuple(part),
                )
            )
        return [found.get(k) for k in keys]

    def compare_and_set(self, key: str, old: str | None, new: str) -> bool:
        """Write ``new`` only if the stored value is still ``old`` (None: nothing stored): events applied by two
        processes to one context never lose each other's update (the loser reads again)."""
        if old is None:
            sql = "INSERT INTO leadscore_online (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING"
            return self._db.execute(sql, (key, new)) == 1
        sql = "UPDATE leadscore_online SET value = ? WHERE key = ? AND value = ?"
        return self._db.execute(sql, (new, key, old)) == 1

    def compare_and_set_many(self, items: list[tuple[str, str | None, str]]) -> list[bool]:
        """``compare_and_set`` for each (key, old, new), in one transaction: one commit for a batch of contexts,
        and one statement for its inserts and one for its updates. When fewer rows changed than were asked (another
        process came first for some), the keys whose stored value is now the new one are those that landed."""
        if not items:
            return []
        insert = "INSERT INTO leadscore_online (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING"
        update = "UPDATE leadscore_online SET value = ? WHERE key = ? AND value = ?"
        inserts = [(k, new) for k, old, new in items if old is None]
        updates = [(new, k, old) for k, old, new in items if old is not None]
        with self._db.transaction() as tx:
            changed = tx.executemany(insert, inserts) + tx.executemany(update, updates)
            if changed == len(items):
                return [True] * len(items)
            return [
                bool(tx.query("SELECT 1 AS hit FROM leadscore_online WHERE key = ? AND value = ?", (k, new)))
                for k, _, new in items
            ]

    def close(self) -> None:
        self._db.close()


class RedisStore:
    # KEYS: the keys; ARGV, three per key: '1' and the value read (or '0' and '' when none was), the new value
    CAS = """
local landed = {}
for i, k in ipairs(KEYS) do
  local had, old, new = ARGV[3 * i - 2], ARGV[3 * i - 1], ARGV[3 * i]
  local now = redis.call('GET', k)
  if (had == '0' and not now) or (had == '1' and now == old) then
    redis.call('SET', k, new)
    landed[i] = 1
  else
    landed[i] = 0
  end
end
return landed
"""
    CAS_PART = 500  # keys per script: a script blocks the server while it runs

    def __init__(self, url: str):
        import redis

        self.url = url
        self._r = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=0.5)
        self._cas = self._r.register_script(self.CAS)

    @contextmanager
    def _reached(self) -> Iterator[None]:
        """Redis down or not answering is ``StoreUnavailable``, as for the SQL stores (a 503 at the service, which
        acknowledges nothing it could not store; reads for scoring degrade instead)."""
        import redis

        try:
            yield
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise StoreUnavailable(f"online store {redacted(self.url)} unavailable: {exc}") from None

    def put_many(self, items: Iterable[tuple[str, str]]) -> int:
        n = 0
        with self._reached():
            pipe = self._r.pipeline(transaction=False)
            for k, v in items:
                pipe.set(k, v)
                n += 1
                if n % 5000 == 0:
                    pipe.execute()
            pipe.execute()
        return n

    def get_many(self, keys: list[str]) -> list[str | None]:
        if not keys:
            return []
        with self._reached():
            return [v.decode() if isinstance(v, bytes) else v for v in self._r.mget(keys)]

    def compare_and_set(self, key: str, old: str | None, new: str) -> bool:
        return self.compare_and_set_many([(key, old, new)])[0]

    def compare_and_set_many(self, items: list[tuple[str, str | None, str]]) -> list[bool]:
        """``compare_and_set`` for each (key, old, new) in one script per ``CAS_PART`` keys: Redis runs a script
        alone, so each key is compared and set with nothing in between, in one round trip for the part (a
        WATCH/MULTI transaction per key took a round trip each, several per key)."""
        out: list[bool] = []
        for s in range(0, len(items), self.CAS_PART):
            part = items[s : s + self.CAS_PART]
            args = [a for _, old, new in part for a in (("0", "") if old is None else ("1", old)) + (new,)]
            with self._reached():
                out += [bool(x) for x in self._cas(keys=[k for k, _, _ in part], args=args)]
        return out

    def close(self) -> None:
        self._r.close()


def open_store(url: str) -> OnlineStore:
    """``sqlite:///path``, ``redis://host:port/db`` or ``postgresql://…``."""
    if url.startswith(("sqlite:///", "postgresql://", "postgres://")):
        return SQLStore(url)
    if url.startswith(("redis://", "rediss://")):
        return RedisStore(url)
    raise UserError(f"unsupported online store URL {url!r} (sqlite:///, redis://, postgresql://)")


def key(motion: str, entity: str) -> str:
    return f"leadscore:{motion}:{entity}"
