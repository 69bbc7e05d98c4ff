"""The score-log journal: durable appends, idempotent shipping, rows kept while the store is down, segments of a
process that died shipped by the next one, and a disk cap that refuses rather than acknowledges."""

from __future__ import annotations

import os
import sqlite3

import pytest

from leadscore import score_rows
from leadscore.settings import Settings
from leadscore.store import Store, new_request_id
from serving.journal_off import MemoryScoreLog
from serving.score_log import JournalFull, ScoreLog, open_score_log


def _rows(tag: str, n: int) -> list[tuple]:
    return [(f"{tag}-{i}", "2026-06-01T00:00:00", "2026-06-01 00:00:00", "b2b", f"L{i}", "b2b", "1", 0.5, "A",
             "ae_direct", "realtime", "{}") for i in range(n)]  # fmt: skip


def _count(store: Store, tag: str) -> int:
    return store.query("SELECT COUNT(*) AS n FROM score_log WHERE request_id LIKE ?", (f"{tag}-%",))[0]["n"]


def test_rows_are_on_disk_when_append_returns_and_ship_once(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/s.db")
    log = ScoreLog(store, tmp_path / "home", fsync_seconds=0)
    log.append(_rows("a", 5))
    segment = next((tmp_path / "home" / "journal").glob("*.jsonl"))
    assert len(segment.read_bytes().splitlines()) == 5 and _count(store, "a") == 0  # journaled, not shipped
    assert log.ship() and _count(store, "a") == 5
    log._owned[-1].shipped = 0  # a crash between the insert and the saved position
    assert log.ship() and _count(store, "a") == 5  # shipped again: each request id once
    log.close()
    assert not list((tmp_path / "home" / "journal").glob("*.jsonl"))  # nothing left to ship: removed


class Down(Store):
    def append_log(self, rows, batches):
        raise ConnectionError("store down")


def test_rows_wait_while_the_store_is_down_and_a_dead_process_is_taken_over(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/s.db")
    first = ScoreLog(Down(f"sqlite:///{tmp_path}/s.db"), tmp_path / "home")
    first.append(_rows("b", 7))
    assert not first.ship() and first.unshipped_bytes() > 0 and not first.status()["store_ok"]
    os.close(first._active.fd)  # the process dies: its lock goes with it
    second = ScoreLog(store, tmp_path / "home")  # the next start claims the orphan segment
    assert second.ship() and _count(store, "b") == 7
    second.close()


class Flaky(Store):
    """Refuses the first write (after the shipper has taken its rows from memory), then takes them all."""

    failed = False

    def append_log(self, rows, batches):
        if not self.failed:
            self.failed = True
            raise ConnectionError("store down")
        return super().append_log(rows, batches)


def _batches(tag: str, n: int) -> list[tuple]:
    """Score batches of ``n`` scores (as ``/score_columns`` and ``leadscore score`` write them), two per call."""
    import numpy as np

    from serving.log_rows import batches

    ids = np.array([f"L{i}" for i in range(n)], dtype=object)
    features = {
        "x": np.linspace(0, 1, n),
        "n": np.arange(n),
        "s": np.array(["a", None] * (n // 2), dtype=object),
    }
    return batches("b2b", "b2b", "1", "batch-api", [f"{tag}-{i}" for i in range(n)], "2026-06-01 00:00:00", ids,
                   np.full(n, 0.25), ["B"] * n, ["sdr_queue"] * n, features)  # fmt: skip


def _logged(store: Store) -> list[tuple]:
    return sorted((tuple(r.values()) for r in score_rows.read(store, "b2b")), key=str)


def test_rows_shipped_from_memory_equal_the_journal_lines_and_a_failed_write_falls_back_to_the_file(
    tmp_path, monkeypatch
):
    import serving.score_log as score_log

    # read back in small pieces (a score batch's line is longer than one)
    monkeypatch.setattr(score_log, "READ_BYTES", 100)
    monkeypatch.setattr("serving.log_rows.BATCH_ROWS", 6)  # 10 scores: two batches
    batches = [_rows(f"m{k}", 3) for k in range(4)] + [_batches("cols", 10)]
    memory = Store(f"sqlite:///{tmp_path}/memory.db")
    log = ScoreLog(memory, tmp_path / "a")
    for b in batches:
        log.append(b) if len(b[0]) == 12 else log.append_batches(b)
    assert (
        sum(len(rows) + len(cols) for _, _, rows, cols in log._active.held) == 12 + 2
    )  # held, not read back
    assert log.ship() and log._held_bytes == 0 and not log._active.held
    monkeypatch.setattr(score_log, "HELD_BYTES", 0)  # nothing held: every row read back from the journal
    from_file = Store(f"sqlite:///{tmp_path}/file.db")
    log2 = ScoreLog(from_file, tmp_path / "b")
    for b in batches:
        log2.append(b) if len(b[0]) == 12 else log2.append_batches(b)
    assert not log2._active.held and log2.ship() and log2.written == 22
    assert _logged(memory) == _logged(from_file) and len(_logged(memory)) == 22
    monkeypatch.setattr(score_log, "HELD_BYTES", 32 * 2**20)
    flaky = Flaky(f"sqlite:///{tmp_path}/flaky.db")
    log3 = ScoreLog(flaky, tmp_path / "c")
    for b in batches:
        log3.append(b) if len(b[0]) == 12 else log3.append_batches(b)
    assert not log3.ship()  # the rows taken from memory were refused: they are still in the journal
    assert log3.ship() and _logged(flaky) == _logged(memory)  # read back from the file, each once
    assert log3._held_bytes == 0 and log3.unshipped_bytes() == 0
    for log_ in (log, log2, log3):
        log_.close()


def test_past_the_disk_cap_scores_are_refused_not_acknowledged(tmp_path):
    log = ScoreLog(Down(f"sqlite:///{tmp_path}/s.db"), tmp_path / "home", max_mb=0.001)
    log.append(_rows("c", 3))
    with pytest.raises(JournalFull):
        log.append(_rows("d", 50))


def test_fsync_runs_outside_the_append_lock(tmp_path, monkeypatch):
    log = ScoreLog(Store(f"sqlite:///{tmp_path}/s.db"), tmp_path / "home")
    log.append(_rows("f", 2))
    held = []
    monkeypatch.setattr(os, "fdatasync", lambda fd: held.append(log._lock.locked()))
    log.sync()
    log.sync()  # nothing written since: no second fsync
    assert held == [False]
    log.close()


def test_the_journal_switch_keeps_rows_in_memory_and_says_so(tmp_path, caplog):
    settings = Settings.load({"LEADSCORE_HOME": str(tmp_path / "home"), "LEADSCORE_JOURNAL": "false"})
    store = Store(f"sqlite:///{tmp_path}/s.db")
    log = open_score_log(store, settings)
    assert isinstance(log, MemoryScoreLog) and "acknowledged before they are on disk" in caplog.text
    log.append(_rows("m", 4))
    assert not (tmp_path / "home" / "journal").exists() and _count(store, "m") == 0
    log.close()
    assert _count(store, "m") == 4 and log.status()["journal"] == "off"
    down = MemoryScoreLog(Down(f"sqlite:///{tmp_path}/s.db"), max_mb=0.005)  # 5 rows
    down.append(_rows("n", 3))
    assert not down.ship() and down.unshipped_bytes() == 3 * 1024  # kept for the next try, in order
    with pytest.raises(JournalFull):
        down.append(_rows("o", 3))
    assert isinstance(
        open_score_log(store, Settings.load({"LEADSCORE_HOME": str(tmp_path / "h2")})), ScoreLog
    )


def test_a_score_batch_reads_back_as_the_rows_it_holds(tmp_path):
    """A columnar batch's scores come back from the store as score-log rows: NaN as None, strings and None kept,
    the batch's as-of on every row, each request id once (its first score), in the order scored."""
    import numpy as np

    from serving.log_rows import batches

    store = Store(f"sqlite:///{tmp_path}/s.db")
    features = {"x": np.array([1.5, np.nan, 3.0]), "n": np.array([1, 2, 3]),
                "s": np.array(["a", None, "c"], dtype=object), "mixed": np.array(["a", 2.0, None], dtype=object)}  # fmt: skip
    made = batches("b2c", "b2c", "4", "batch-api", ["r-0", "r-1", "r-2"], np.array(["2026-01-02", "2026-01-01",
                   "2026-01-03"], dtype=object), ["C0", "C1", "C2"], np.array([0.1, 0.2, 0.3]), ["low"] * 3,
                   np.array(["nurture"] * 3, dtype=object), features)  # fmt: skip
    assert len(made) == 1 and made[0][2] == "2026-01-01"  # first_as_of: the earliest
    before = ("r-0", "2026-01-01T00:00:00", "2026-01-01", "b2c", "C0", "b2c", "3", 0.9, "high", "concierge",
              "realtime", '{"x": 1.0}')  # fmt: skip
    store.append_log([before], made)  # "r-0" scored before, as a row: that score stands
    store.append_log([], made)  # shipped twice: once
    rows = score_rows.read(store, "b2c")
    assert [(r["request_id"], r["version"]) for r in rows] == [("r-0", "3"), ("r-1", "4"), ("r-2", "4")]
    assert rows[0]["features"] == {"x": 1.0}
    rows = rows[1:]
    assert [r["features"] for r in rows] == [{"x": None, "n": 2, "s": None, "mixed": 2.0},
                                             {"x": 3.0, "n": 3, "s": "c", "mixed": None}]  # fmt: skip
    assert [(r["as_of"], r["entity_id"], r["score"], r["route"]) for r in rows] == [
        ("2026-01-01", "C1", 0.2, "nurture"), ("2026-01-03", "C2", 0.3, "nurture")]  # fmt: skip


def test_generated_request_ids_sort_by_time_and_an_old_log_loses_its_entity_index(tmp_path):
    ids = [new_request_id() for _ in range(2000)]
    assert len(set(ids)) == 2000 and all(len(i) == 32 for i in ids)
    assert [i[:12] for i in ids] == sorted(i[:12] for i in ids)  # the log's unique index grows at its end
    read, write = os.pipe()  # a forked child (a worker) draws its own ids, not its parent's next ones
    if (pid := os.fork()) == 0:
        os.write(write, "".join(new_request_id() for _ in range(100)).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 100 * 32).decode()
    theirs, ours = (
        {child[k : k + 32][12:] for k in range(0, len(child), 32)},
        {new_request_id()[12:] for _ in range(100)},
    )
    assert len(theirs) == 100 and not theirs & ours and not theirs & {i[12:] for i in ids}
    old = sqlite3.connect(tmp_path / "s.db")
    old.execute(
        "CREATE TABLE score_log (id INTEGER PRIMARY KEY, request_id TEXT, motion TEXT, entity_id TEXT, as_of TEXT)"
    )
    old.execute("CREATE INDEX score_log_entity ON score_log (motion, entity_id, as_of)")
    old.commit()
    old.close()
    store = Store(f"sqlite:///{tmp_path}/s.db")
    names = {r["name"] for r in store.query("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "score_log_entity" not in names and "score_log_motion_as_of" in names


def test_a_store_that_refuses_connections_fails_each_operation_at_once(pg_schema_url, caplog):
    """Down: each operation raises ``StoreUnavailable`` at once (not after the pool's 5 s wait), so a service
    starting or stopping with its store down is not held up; the outbox says so once per outage."""
    import logging
    import time

    from leadscore.store import StoreUnavailable
    from serving.webhooks import Dispatcher

    t0 = time.perf_counter()
    down = Store("postgresql://postgres@127.0.0.1:1/nowhere", timeout=5.0)  # refused: port 1
    for _ in range(3):
        with pytest.raises(StoreUnavailable, match="not reachable"):
            down.query("SELECT 1 AS one")
    assert time.perf_counter() - t0 < 3.0
    with caplog.at_level(logging.WARNING, logger="leadscore"):
        d = Dispatcher(down, "secret", poll_seconds=0.05).start()
        time.sleep(1.5)  # with backoff: a handful of tries, not one every poll
        d.stop()
    assert d._thread is not None and not d._thread.is_alive()
    assert sum("outbox unavailable" in m for m in caplog.messages) == 1
    up = Store(pg_schema_url)  # a live store: probed once, then served by its pool
    assert up.query("SELECT 1 AS one") == [{"one": 1}]


def test_a_borrowed_store_is_closed_only_when_it_was_opened_for_the_block(pg_schema_url, monkeypatch):
    monkeypatch.setenv("LEADSCORE_STORE_URL", pg_schema_url)
    with Store.borrowed(None) as opened:
        assert opened.query("SELECT 1 AS one") == [{"one": 1}]
    assert opened._pool.closed  # the default store, opened for the block: no pool or connection left behind
    given = Store(pg_schema_url)
    with Store.borrowed(given) as same:
        assert same is given
    assert not given._pool.closed and given.query("SELECT 1 AS one") == [{"one": 1}]  # its owner closes it
    given.close()
