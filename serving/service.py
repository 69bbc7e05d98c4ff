"""The BentoML scoring service: ``bentoml serve serving.service:LeadScore`` (or ``leadscore serve``).

Thin wiring over ``serving.scorer.Scorer``: BentoML's own typed endpoints (pydantic IO, its timeout, concurrency
limit, HTTP metrics and tracing), per-motion Prometheus metrics, a durable score-log journal, champion reload on alias
moves (poll + POST /admin/reload), /livez and /readyz (ready once a model is loaded). Settings are read when a
worker starts.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import bentoml
import orjson
from bentoml.exceptions import InvalidArgument
from pydantic import Field

from leadscore import motions
from leadscore.errors import UserError
from leadscore.motions import MotionName
from leadscore.settings import Settings
from leadscore.store import Store, StoreUnavailable
from leadscore.times import epoch_seconds, format_utc
from serving import heap
from serving.auth import KeyAuth
from serving.events import EventIngest
from serving.hot_path import HotPath
from serving.limits import RequestLimits
from serving.log_rows import column_batches, result_batches, rows
from serving.metrics import observe, observe_columns
from serving.micro_batcher import MicroBatcher, Overloaded
from serving.readiness import ReadyDetail
from serving.reload_signal import ReloadSignal, watch
from serving.responses import json_body, respond, unavailable
from serving.schemas import (
    AccountColumns,
    ColumnsRequest,
    ColumnsResponse,
    CustomerColumns,
    EventColumns,
    EventsResult,
    LeadColumns,
    OrderColumns,
    OutcomeRow,
    ScoreRequest,
    ScoreResponse,
    StreamEvent,
    TimeText,
)
from serving.score_log import JournalFull, open_score_log
from serving.scorer import Scorer
from serving.shortest_first import ShortestFirst
from serving.webhooks import Dispatcher

log_warning = logging.getLogger("leadscore.serving").warning
HARD_MAX_BATCH = 100_000  # the OpenAPI bound of /score_batch; LEADSCORE_MAX_BATCH sets the service's own
# events taken in (recorded, applied, re-scored) at a time: bounds a part's memory and transaction, and how long a
# small body waits for the part in progress
EVENT_PART = 512


def _iso(t: Any) -> Any:
    """A validated time (epoch seconds or a datetime) as the ISO-8601 text the outcomes table is read from."""
    if t is None or isinstance(t, str):
        return t
    return format_utc(epoch_seconds(t))


# The service's BentoML configuration is static (BentoML reads it when the module is imported); deployments
# override it through BentoML's own configuration (BENTOML_CONFIG_OVERRIDES, or a BENTOML_CONFIG file), which is
# how ``leadscore serve --workers`` sets the worker count. The scoring routes are left out of tracing unless a
# deployment configures it: spans cost event-loop time and go nowhere without an exporter.
@bentoml.service(
    name="leadscore",
    workers=1,
    traffic={"timeout": 10, "max_concurrency": 512},  # every path: requests over the limit get a 503
    logging={"access": {"enabled": False}},
    tracing={"excluded_urls": ["/score", "/score_batch"]},
)
class LeadScore:
    def __init__(self) -> None:
        settings = self.settings = Settings.load()
        settings.ensure_home()
        # The event loop (parsing, answering) and the scoring thread share one GIL: a short switch interval
        # lets a request that arrives mid-batch be read without waiting out CPython's default 5 ms.
        sys.setswitchinterval(settings.switch_interval)
        self.scorer = Scorer(settings)
        self.scorer.reload()
        self.store = Store(settings.store_url)
        self.log = open_score_log(Store(settings.store_url), settings).start()
        # One scoring thread per worker: batches run there while the event loop parses the next requests.
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="scoring")
        self._bulk = 0  # bulk bodies waiting for the scoring thread or on it (counted on the event loop)
        self.batcher: MicroBatcher[ScoreRequest, bytes] = MicroBatcher(
            lambda reqs: self._run(reqs, "realtime", batched=False),
            self.executor,
            settings.realtime_batch,
            settings.max_pending,
            item_errors=(
                UserError,
            ),  # a bad request fails alone; a full journal fails the batch, not N retries
        )
        self.dispatcher = Dispatcher(
            self.store,
            settings.webhook_secret,
            settings.webhook_max_attempts,
            settings.webhook_timeout,
            poll_seconds=0.2,
        ).start()
        # Events are taken in on a thread of their own with a scorer of their own (the models loaded again, the
        # contexts memoised apart): a large /events body then never holds /score batches back behind it; the two
        # threads share the cores through the GIL's switch interval instead.
        self.events_scorer = Scorer(settings)
        self.events_scorer.reload()
        # One events thread, smallest body first: a one-event body is not queued behind 1,000-event ones; at a
        # lower priority, so /score requests get the cores first when both are busy (bench.events while events
        # flow, three runs at nice 5 against five at 0: /score p99 43-51 ms against 64-102, at 1,073-1,794 rps
        # against 900-1,247; events taken in meanwhile 7.6-10.1k/s against 8.3-10.6k, webhook p99 under 0.7 s
        # in both; at 10, the events taken in during /score load fell by a third).
        self.events_executor = ShortestFirst("events", settings.events_nice)
        self.events = EventIngest(
            self.events_scorer, self.store, self.log, settings.webhook_url, self.dispatcher
        )
        self._stop = threading.Event()
        self.reload_signal = ReloadSignal(settings.home)
        follow = (self.reload_signal, self._reload, settings.reload_seconds, self._stop, self._failing)
        threading.Thread(target=watch, args=follow, name="champion-poll", daemon=True).start()
        threading.Thread(target=self._watch_pending, name="pending-events", daemon=True).start()
        heap.settle()
        _worker["service"] = self

    def _reload(self) -> dict[str, str]:
        """Both scorers follow the champions; the heap is frozen again after a change."""
        changed = self.scorer.reload() | self.events_scorer.reload()
        if changed:
            heap.settle()
        return changed

    def _failing(self) -> bool:
        """A champion failed to load in either scorer (tried again sooner than the poll)."""
        return bool(self.scorer.load_errors or self.events_scorer.load_errors)

    def _watch_pending(self) -> None:
        """Entities with pending events, as other workers and processes record them (and, hourly, the events
        taken in that left the longest feature window deleted)."""
        while not self._stop.wait(2.0):
            try:
                self.events.refresh_pending()
                self.events.prune_due()
            except Exception as exc:  # the store is down: both are done again when it returns
                log_warning("pending events not refreshed, or old events not pruned: %s", exc)

    def _adopt(self, reqs: list[ScoreRequest]) -> None:
        """Requests that carry the fields of an entity with pending events: it joins the online state and its
        events are applied (then re-scored, source 'event'). On the scoring thread, after the answers."""
        for r in reqs:
            entity = r.customer.customer_id if r.customer else (r.lead.account_id if r.lead else None)
            if entity is not None and self.events.waiting(r.motion, entity):
                try:
                    self.events.adopt(r)
                except Exception as exc:  # the score stands; the events stay pending
                    log_warning("pending events of %s not applied: %s", entity, exc)

    def __is_ready__(self) -> bool:
        """Ready to score: a model is loaded and the journal can take rows (store down is fine: rows wait)."""
        return self.scorer.ready() and not self.log.full()

    def readiness(self) -> dict[str, Any]:
        """The reasons behind /readyz."""
        return self.scorer.status() | self.log.status()

    def _run(self, reqs: list[ScoreRequest], source: str, batched: bool = True) -> list[bytes]:
        """Runs on the scoring thread: score, journal the score log (durable before any answer leaves; a row per
        score for /score's few, ``batched`` as score batches for a body of many), count, serialise the
        responses."""
        results = self.scorer.score_many(reqs)
        if batched:
            self.log.append_batches(result_batches(results, source))
        else:
            self.log.append(rows(results, source))
        observe(results, self.log.unshipped_bytes())
        bodies = [json_body(r) for r in results]
        if self.events._pending:  # after the answers, on the events thread
            self.events_executor.submit(len(reqs), self._adopt, reqs)
        return bodies

    def _run_columns(self, req: ColumnsRequest) -> bytes:
        """``_run`` for a columnar body: one motion, its answers as columns."""
        result = self.scorer.score_columns(req)
        self.log.append_batches(column_batches(result, "batch-api"))
        observe_columns(result, self.log.unshipped_bytes())
        return orjson.dumps(
            {k: v for k, v in result.items() if not k.startswith("_")}, option=orjson.OPT_SERIALIZE_NUMPY
        )

    # The declared return types are the OpenAPI contract; the bodies are serialised on the scoring thread and
    # handed to BentoML as finished responses.
    @bentoml.api(route="/score")
    async def score(self, request: ScoreRequest) -> ScoreResponse:
        """Score one lead (B2B, hybrid) or customer (B2C): calibrated score, tier, route, owner, SLA, reasons.

        Concurrent requests are scored together (adaptive batching, no fixed wait)."""
        try:
            return respond(await self.batcher.submit(request))  # type: ignore[return-value]
        except UserError as exc:
            raise InvalidArgument(str(exc)) from None
        except JournalFull as exc:
            return unavailable(str(exc), 5)  # type: ignore[return-value]
        except Overloaded as exc:
            return unavailable(str(exc), 1)  # type: ignore[return-value]

    @bentoml.api(route="/score_batch")
    async def score_batch(
        self, requests: list[ScoreRequest] = Field(max_length=HARD_MAX_BATCH)
    ) -> list[ScoreResponse]:
        """Score a list of leads (any mix of motions); at most LEADSCORE_MAX_BATCH (default 1,000) per call."""
        if len(requests) > self.settings.max_batch:
            raise InvalidArgument(
                f"requests: at most {self.settings.max_batch} items per call (got {len(requests)})"
            )
        try:
            bodies = await self._bulk_run(self._run, requests, "batch-api")
        except UserError as exc:
            raise InvalidArgument(str(exc)) from None
        except JournalFull as exc:
            return unavailable(str(exc), 5)  # type: ignore[return-value]
        return respond(b"[" + b",".join(bodies) + b"]", self.bulk_waiting())  # type: ignore[return-value]

    @bentoml.api(route="/score_columns")
    async def score_columns(
        self,
        motion: MotionName,
        lead: LeadColumns | None = None,
        account: AccountColumns | None = None,
        customer: CustomerColumns | None = None,
        events: EventColumns | None = None,
        orders: OrderColumns | None = None,
        as_of: TimeText | None = None,
        request_id: list[str] | None = None,
    ) -> ColumnsResponse:
        """Score many leads (B2B, hybrid) or customers (B2C) of one motion given as columns — value i of each
        column is row i; events and orders name their row — answered as columns: the bulk form of /score_batch.
        At most LEADSCORE_MAX_BATCH rows per call."""
        body = ColumnsRequest.model_construct(
            motion=motion, lead=lead, account=account, customer=customer, events=events, orders=orders,
            as_of=as_of, request_id=request_id,
        )  # fmt: skip
        try:
            return respond(await self.columns(body), self.bulk_waiting())  # type: ignore[return-value]
        except UserError as exc:
            raise InvalidArgument(str(exc)) from None
        except JournalFull as exc:
            return unavailable(str(exc), 5)  # type: ignore[return-value]

    async def columns(self, body: Any) -> bytes:
        """A validated /score_columns body (the endpoint's, or the hot path's) scored on the scoring thread."""
        m = motions.get(body.motion)
        entity = getattr(body, m.request_field)
        n = len(entity.__dict__[m.id_column]) if entity is not None else 0
        if n > self.settings.max_batch:
            raise UserError(f"{m.request_field}: at most {self.settings.max_batch} rows per call (got {n})")
        if not isinstance(body, ColumnsRequest):
            body = ColumnsRequest.model_construct(**body.__dict__)
        return await self._bulk_run(self._run_columns, body)

    async def _bulk_run(self, fn: Any, *args: Any) -> Any:
        """A bulk body (``/score_batch``, ``/score_columns``) on the scoring thread, counted while it waits or runs."""
        self._bulk += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)
        finally:
            self._bulk -= 1

    def bulk_waiting(self) -> bool:
        """Other bulk bodies wait for the scoring thread (asked as one is answered): the caller's next one is better
        sent on a new connection, which a free worker takes (``serving.responses.respond``)."""
        return self._bulk > 0

    @bentoml.api(route="/outcomes")
    def outcomes(
        self,
        outcomes: list[OutcomeRow] = Field(min_length=1, max_length=10_000),
        motion: MotionName | None = None,
    ) -> dict:
        """Record outcomes (canonical outcomes rows): validated, idempotent, all-or-nothing; answered only once
        they are committed (503 with Retry-After while the store is down)."""
        import pandas as pd

        from leadscore.outcomes import ingest_frame
        from leadscore.schema import SchemaError

        rows = [
            {k: _iso(v) if k in ("occurred_at", "contacted_at") else v for k, v in r.items()}
            for r in outcomes
        ]
        try:
            r = ingest_frame(pd.DataFrame(rows), self.store, motion, source="api")
        except (SchemaError, UserError) as exc:
            raise InvalidArgument(str(exc)) from None
        except StoreUnavailable as exc:
            return unavailable(str(exc), 5)  # type: ignore[return-value]
        return {"motion": r.motion, "rows": r.rows, "inserted": r.inserted, "duplicates": r.duplicates}

    @bentoml.api(route="/events")
    async def events_in(
        self,
        motion: MotionName,
        events: list[StreamEvent] = Field(min_length=1, max_length=10_000),
    ) -> EventsResult:
        """Take in behaviour as it happens (canonical events rows of one motion): idempotent by event_id, applied
        to the online state, the leads or customers it changes re-scored (source 'event'), triggers pushed as
        webhooks. Answered once the events, the scores and the notifications are durable."""
        try:
            # one job on the events thread, smallest body first; between its parts, smaller bodies go first
            body = [dict(e) for e in events]
            pool = self.events_executor
            r = await asyncio.wrap_future(
                pool.submit(len(body), self.events.ingest, motion, body, "event", EVENT_PART, pool.yield_to)
            )
        except UserError as exc:
            raise InvalidArgument(str(exc)) from None
        except JournalFull as exc:
            return unavailable(str(exc), 5)  # type: ignore[return-value]
        except StoreUnavailable as exc:
            return unavailable(str(exc), 5)  # type: ignore[return-value]
        # other bodies wait here: the caller's next body goes to a new connection, which a free worker takes
        return respond(orjson.dumps(r), hand_back=pool.waiting() > 0)  # type: ignore[return-value]

    @bentoml.api(route="/admin/reload")
    def admin_reload(self) -> dict:
        """Reload champions whose alias moved, in every worker: answers once all have (``workers_reloaded`` of
        ``workers``; fewer if some did not within 8 s). The workers also poll the registry periodically."""
        generation = self.reload_signal.request()
        changed = self._reload()
        self.reload_signal.ack(generation)
        done, workers = self.reload_signal.wait_all(generation, 8.0)
        return {"reloaded": changed, "workers": workers, "workers_reloaded": done} | self.scorer.status()

    @bentoml.api(route="/admin/status")
    def admin_status(self) -> dict:
        return (
            self.scorer.status()
            | self.log.status()
            | {
                "time": time.time(),
                "realtime_batches": self.batcher.batches,
                "realtime_items": self.batcher.items,
            }
        )

    @bentoml.on_shutdown
    def flush(self) -> None:
        self._stop.set()
        self.dispatcher.stop()
        self.executor.shutdown(wait=True)
        self.events_executor.shutdown(wait=True)
        self.log.close()


# Keys first; then /readyz with its reasons; then the /score and /score_columns hot paths (JSON bodies only, their own body
# limit, the one error shape); then the request limits for everything else.
LeadScore.add_asgi_middleware(KeyAuth)  # type: ignore[attr-defined]
_worker: dict[str, LeadScore] = {}  # this worker process's service instance, once constructed
LeadScore.add_asgi_middleware(  # type: ignore[attr-defined]
    ReadyDetail, detail=lambda: svc.readiness() if (svc := _worker.get("service")) is not None else None
)
LeadScore.add_asgi_middleware(  # type: ignore[attr-defined]
    HotPath,
    path="/score",
    body=lambda: LeadScore.apis["score"].input_spec,  # type: ignore[attr-defined]
    field="request",
    handler=lambda: svc.batcher.submit if (svc := _worker.get("service")) is not None else None,
)
LeadScore.add_asgi_middleware(  # type: ignore[attr-defined]
    HotPath,
    path="/score_columns",
    body=lambda: LeadScore.apis["score_columns"].input_spec,  # type: ignore[attr-defined]
    field=None,
    handler=lambda: svc.columns if (svc := _worker.get("service")) is not None else None,
    hand_back=lambda: (svc := _worker.get("service")) is not None and svc.bulk_waiting(),
)
LeadScore.add_asgi_middleware(RequestLimits)  # type: ignore[attr-defined]
