"""The reload signal's acknowledgements: threads of one worker acknowledging at once (the request's thread and
the watcher, as ``/admin/reload`` makes them) never fail, and the file says the latest generation."""

from __future__ import annotations

import os
import threading

from serving.reload_signal import ReloadSignal


def test_threads_of_one_worker_acknowledge_at_once_without_failing(tmp_path):
    signal = ReloadSignal(tmp_path)
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def ack(first: int) -> None:
        start.wait()
        try:
            for g in range(first, 400, 8):
                signal.ack(g)
        except BaseException as exc:  # noqa: BLE001 (collected: the assertion below names it)
            errors.append(exc)

    threads = [threading.Thread(target=ack, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert (tmp_path / "workers" / f"{os.getpid()}.ack").read_text() == "399" and signal.seen == 399
    assert signal.wait_all(399, 0.1) == (1, 1)


def test_a_champion_that_failed_to_load_is_tried_again_sooner_than_the_poll(tmp_path, monkeypatch):
    """A worker that started without its champion (the registry down, another worker placing the copy) tries
    again after RETRY_FIRST, then twice as long each time; once it loads, the poll is back to ``every``."""
    import time

    from serving import reload_signal
    from serving.reload_signal import watch

    monkeypatch.setattr(reload_signal, "RETRY_FIRST", 0.3)
    calls: list[float] = []
    stop = threading.Event()
    t0 = time.monotonic()
    t = threading.Thread(
        target=watch,
        args=(ReloadSignal(tmp_path), lambda: calls.append(time.monotonic() - t0), 60.0, stop,
              lambda: len(calls) < 3),
        daemon=True,
    )  # fmt: skip
    t.start()
    try:
        deadline = time.monotonic() + 15
        while len(calls) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(calls) == 3, calls  # two tries failed, the third loaded: all well within the poll
        gaps = [b - a for a, b in zip([0.0, *calls], calls, strict=False)]
        assert 0.3 <= gaps[0] < 1.5 and 0.6 <= gaps[1] < 2.0 and 1.2 <= gaps[2] < 3.0, gaps
        time.sleep(3.0)
        assert len(calls) == 3  # loaded: the next try waits the whole poll (60 s)
    finally:
        stop.set()
        t.join(2)
