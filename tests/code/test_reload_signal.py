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
