"""Past capacity the service sheds load: 503 with Retry-After, never timeouts piling up or memory growing."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil
import pytest

pytestmark = pytest.mark.slow
EXAMPLES = Path(__file__).resolve().parents[2] / "serving" / "examples"


def test_overload_is_shed_with_503_and_flat_memory(trained, start_service, tmp_path):
    service = start_service({"LEADSCORE_HOME": str(tmp_path / "home"), "LEADSCORE_MAX_PENDING": "4",
                             "LEADSCORE_REALTIME_BATCH": "2"})  # fmt: skip
    body = json.loads((EXAMPLES / "b2b.json").read_text())
    worker = psutil.Process(service.workers()[0])
    codes: Counter[int] = Counter()
    retry_after: set[str] = set()
    lock, stop = threading.Lock(), threading.Event()

    def client(_: int) -> None:
        with httpx.Client(timeout=30) as http:
            while not stop.is_set():
                r = http.post(f"{service.url}/score", json=body)
                with lock:
                    codes[r.status_code] += 1
                    if r.status_code == 503:
                        retry_after.add(r.headers.get("retry-after", ""))

    with ThreadPoolExecutor(48) as pool:
        futures = [pool.submit(client, k) for k in range(48)]
        time.sleep(3)
        rss_start = worker.memory_info().rss
        time.sleep(8)
        rss_end = worker.memory_info().rss
        stop.set()
        for f in futures:
            f.result()
    assert set(codes) <= {200, 503}, codes  # nothing but answers and clean refusals
    assert codes[200] > 100 and codes[503] > 0, codes  # it kept scoring and it shed the rest
    assert retry_after == {"1"}
    assert rss_end - rss_start < 64 * 2**20, (rss_start, rss_end)
