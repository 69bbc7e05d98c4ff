"""Online stores: where materialization writes each account's (B2B, hybrid) or customer's (B2C) context and
request-time scoring reads it. SQLite (the embedded default), Redis or PostgreSQL, by URL."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from leadscore.errors import UserError
from leadscore.store import Store


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
        """``compare_and_set`` for each (key, old, new), in one transaction: one commit for a batch of contexts."""
        if not items:
            return []
        insert = "INSERT INTO leadscore_online (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING"
        update = "UPDATE leadscore_online SET value = ? WHERE key = ? AND value = ?"
        with self._db.transaction() as tx:
            return [
                (tx.execute(insert, (k, new)) if old is None else tx.execute(update, (new, k, old))) == 1
                for k, old, new in items
            ]

    def close(self) -> None:
        self._db.close()


class RedisStore:
    def __init__(self, url: str):
        import redis

        self._r = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=0.5)

    def put_many(self, items: Iterable[tuple[str, str]]) -> int:
        n = 0
        pipe = self._r.pipeline(transaction=False)
        for k, v in items:
            pipe.set(k, v)
            n += 1
            if n % 5000 == 0:
                pipe.execute()
        pipe.execute()
        return n

    def get_many(self, keys: list[str]) -> list[str | None]:
        return [v.decode() if isinstance(v, bytes) else v for v in self._r.mget(keys)] if keys else []

    def compare_and_set(self, key: str, old: str | None, new: str) -> bool:
        import redis

        with self._r.pipeline() as pipe:
            try:
                pipe.watch(key)
                now = pipe.get(key)
                if (now.decode() if isinstance(now, bytes) else now) != old:
                    return False
                pipe.multi()
                pipe.set(key, new)
                pipe.execute()
                return True
            except redis.WatchError:
                return False

    def compare_and_set_many(self, items: list[tuple[str, str | None, str]]) -> list[bool]:
        return [self.compare_and_set(k, old, new) for k, old, new in items]

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
