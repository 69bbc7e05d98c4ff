"""Scoring logic behind the service, testable without a server.

Loads each motion's ``models:/MOTION@champion``, keeps the last good model when a new one fails to load,
computes online features through ``features.online``, predicts, explains and routes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from features.online_frame import OnlineFeatures, rows_of
from features.online_store import open_store
from leadscore import motions
from leadscore.config import MotionConfig, load_config
from leadscore.errors import ItemError, UserError
from leadscore.settings import Settings
from leadscore.store import new_request_id
from leadscore.times import epoch_seconds, format_utc
from model import registry
from model.artifact import Scores
from serving.column_table import EVENT_TYPES, table_of
from serving.routing import RouteDecision, decide_columns, decide_many
from serving.schemas import ColumnsRequest, ScoreRequest

log = logging.getLogger("leadscore.serving")


@dataclass
class Loaded:
    model: Any
    version: str
    conf: MotionConfig
    online: OnlineFeatures


class Scorer:
    def __init__(self, settings: Settings | None = None, names: tuple[str, ...] = motions.NAMES):
        self.settings = settings or Settings.load()
        self.motions = names
        self.models: dict[str, Loaded] = {}
        self.store = open_store(self.settings.online_store_url)
        self._lock = threading.Lock()
        self._reloading = threading.Lock()
        self.load_errors: dict[str, str] = {}

    # -- models
    def reload(self) -> dict[str, str]:
        """Load every motion whose champion moved; keep the last good model if loading fails. One reload at a
        time (the poller and /admin/reload may ask together)."""
        with self._reloading:
            return self._reload()

    def _reload(self) -> dict[str, str]:
        changed = {}
        cache = self.settings.home / "models"
        for motion in self.motions:
            current = self.models.get(motion)
            try:
                try:
                    version = registry.alias_version(motion, registry.CHAMPION)
                except registry.RegistryUnavailable:
                    version = registry.cached_version(motion, cache)
                    if current is not None or version is None:
                        raise
                    log.warning(
                        "registry unavailable: %s starts on its local copy of version %s", motion, version
                    )
                if version is None or (current and current.version == version):
                    continue
                model = registry.load_cached(motion, version, cache)
                conf = load_config(motion, self.settings)
                loaded = Loaded(
                    model,
                    version,
                    conf,
                    OnlineFeatures(conf, self.store, memo_mb=self.settings.context_memo_mb),
                )
                with self._lock:
                    self.models[motion] = loaded
                changed[motion] = version
                self.load_errors.pop(motion, None)
            except Exception as exc:  # keep serving the last good model
                self.load_errors[motion] = str(exc)
                log.error(
                    "could not load %s champion: %s (keeping %s)",
                    motion,
                    exc,
                    current.version if current else "nothing",
                )
        return changed

    def ready(self) -> bool:
        return bool(self.models)

    def status(self) -> dict[str, Any]:
        return {"models": {m: v.version for m, v in self.models.items()}, "errors": self.load_errors}

    # -- scoring
    def _validate(self, req: ScoreRequest) -> dict:
        m = motions.get(req.motion)
        if getattr(req, m.request_field) is None:
            raise UserError(f"{m.request_field}: required for motion {m.name}")
        types = EVENT_TYPES[m.name]
        bad = [i for i, e in enumerate(req.events) if e["type"] not in types]
        if bad:
            raise UserError(
                f"events.{bad[0]}.type: {req.events[bad[0]]['type']!r} is not a {req.motion} event type"
            )
        return _payload(req)

    def score(self, req: ScoreRequest) -> dict[str, Any]:
        return self.score_many([req])[0]

    def score_many(
        self,
        reqs: list[ScoreRequest],
        written: Mapping[str, tuple[str, dict]] | None = None,
        worded: bool = True,
    ) -> list[dict[str, Any]]:
        """Score requests (any mix of motions): per motion and as-of, one feature pass and one model call.

        Errors name the field, prefixed by the item's index in a batch. ``written``: stored contexts the caller
        has just written, by entity id (``ContextMemo.read``: not read back). ``worded`` False: each reason as
        ``[feature, value, contribution]`` (``model.reasons.reason_picks``; re-scores after events).
        """

        def fail(i: int, message: str) -> UserError:
            return UserError(f"{i}.{message}" if len(reqs) > 1 else message)

        now = int(time.time())
        groups: dict[tuple[str, int], list[int]] = {}
        payloads: list[dict] = []
        for i, req in enumerate(reqs):
            try:
                if req.motion not in self.models:
                    raise UserError(
                        f"motion: no {req.motion} champion is loaded "
                        f"(train one: leadscore train {req.motion})"
                    )
                payloads.append(self._validate(req))
                as_of = epoch_seconds(req.as_of) if req.as_of is not None else now
            except UserError as exc:
                raise fail(i, str(exc)) from None
            groups.setdefault((req.motion, as_of), []).append(i)
        out: list[dict[str, Any] | None] = [None] * len(reqs)
        for (motion, as_of), idx in groups.items():
            loaded = self.models[motion]
            entity, id_col = motions.get(motion).request_field, motions.get(motion).id_column
            t0 = time.perf_counter()
            try:
                degraded: list[str] = []
                columns = loaded.online.compute_columns([payloads[i] for i in idx], as_of, degraded, written)
            except ItemError as exc:
                raise fail(idx[exc.index], str(exc)) from None
            t1 = time.perf_counter()
            features = rows_of(columns)
            model = loaded.model
            encoded = model.preprocessor.encode(columns, len(idx))
            scored = model.score_matrix(encoded.matrix, reasons=3, worded="dicts" if worded else "picks")
            reasons = _kept(scored)
            unknown = encoded.unseen_per_row()
            batch = [reqs[i] for i in idx]
            decisions = decide_batch(loaded.conf, batch, columns, features, scored)
            share = (time.perf_counter() - t0) / len(idx)
            log.debug(
                "%s: %d leads, features %.1f ms, model and routing %.1f ms",
                motion,
                len(idx),
                1e3 * (t1 - t0),
                1e3 * (time.perf_counter() - t1),
            )
            for i, req, f, s, s100, tier, ev, why, d, u in zip(
                idx,
                batch,
                features,
                scored.score.tolist(),
                scored.score_100.tolist(),
                scored.tier.tolist(),
                scored.expected_value.tolist(),
                reasons,
                decisions,
                unknown,
                strict=True,
            ):
                out[i] = {
                    "request_id": req.request_id or new_request_id(),
                    "lead_id": getattr(req, entity).__dict__[id_col],
                    "motion": motion,
                    "model": motion,
                    "version": loaded.version,
                    "score": s,
                    "score_100": s100,
                    "tier": tier,
                    "route": d.route,
                    "owner": d.owner,
                    "sla_minutes": d.sla_minutes,
                    "next_actions": d.actions,
                    "expected_value": ev,
                    "reasons": why,
                    "fit_score": d.fit_score,
                    "engagement_score": d.engagement_score,
                    "grade": d.grade,
                    "gates": d.gates,
                    "degraded": degraded,
                    "unknown_categories": u,
                    "_features": f,
                    "_as_of": as_of,
                    "_account_id": req.lead.account_id if req.lead is not None else None,
                    "_latency": share,
                }
        return out  # type: ignore[return-value]

    def score_stored(self, motion: str, contexts: list[dict], as_of: int | None = None) -> dict[str, Any]:
        """B2C customers scored from their stored contexts alone (re-scores after events and decay), as columns:
        the scores, tiers and routes ``score_many`` gives requests that carry only the stored customer fields
        (tested equal), with the reasons not worded (``[feature, value, contribution]``) and no object per row
        on the way."""
        if motion not in self.models:
            raise UserError(f"motion: no {motion} champion is loaded (train one: leadscore train {motion})")
        loaded, n = self.models[motion], len(contexts)
        as_of = as_of if as_of is not None else int(time.time())
        try:
            columns = loaded.online.compute_stored(contexts, as_of)
        except ItemError as exc:
            raise UserError(f"{exc.index}.{exc}") from None
        model = loaded.model
        scored = model.score_matrix(model.preprocessor.encode(columns, n).matrix, reasons=3, worded="picks")
        customers = [c.get("customer") or {} for c in contexts]
        decided = _decided(
            loaded.conf,
            scored,
            columns,
            consent_email=[bool(c.get("consent_email")) for c in customers],
            consent_sms=[bool(c.get("consent_sms")) for c in customers],
        )
        batch = new_request_id()
        return {
            "motion": motion,
            "model": motion,
            "version": loaded.version,
            "as_of": format_utc(as_of),
            "request_id": [f"{batch}-{i}" for i in range(n)],
            "lead_id": [str(c["customer_id"]) for c in customers],
            "score": scored.score,
            "tier": scored.tier.tolist(),
            "route": decided["route"],
            "owner": decided["owner"],
            "sla_minutes": decided["sla_minutes"],
            "reasons": _kept(scored),
            "_features": columns,
        }

    def score_columns(self, req: ColumnsRequest) -> dict[str, Any]:
        """Score a columnar body (one motion): the answers as columns, with one feature pass, one model call and
        one routing pass for all its rows, no object per row on the way. Errors name the column and the row."""
        if req.motion not in self.models:
            raise UserError(
                f"motion: no {req.motion} champion is loaded (train one: leadscore train {req.motion})"
            )
        table = table_of(req)
        n, loaded = table.n, self.models[req.motion]
        m = motions.get(req.motion)
        ids = [str(x) for x in table.entity[m.id_column]]
        request_ids = req.request_id
        if request_ids is not None and len(request_ids) != n:
            raise UserError(f"request_id: {len(request_ids)} values for {n} rows")
        as_of = epoch_seconds(req.as_of) if req.as_of is not None else int(time.time())
        t0 = time.perf_counter()
        degraded: list[str] = []
        try:
            columns = loaded.online.compute_table(table, as_of, degraded)
        except ItemError as exc:
            raise UserError(f"{m.request_field}.{exc.index}: {exc}") from None
        model = loaded.model
        encoded = model.preprocessor.encode(columns, n)
        scored = model.score_matrix(encoded.matrix, reasons=3, worded="table")
        stage = table.entity.get("stage") or [None] * n
        life = columns.get("lifecycle_stage") if req.motion == "hybrid" else None
        customer = table.entity if m.family == "b2c" else {}
        account = table.account or {}
        decided = _decided(
            loaded.conf,
            scored,
            columns,
            stages=[s or (life[i] if life is not None else None) for i, s in enumerate(stage)],
            owner_id=account.get("owner_id"),
            territory=account.get("territory"),
            consent_email=customer.get("consent_email"),
            consent_sms=customer.get("consent_sms"),
        )
        batch = new_request_id()
        return {
            "motion": req.motion,
            "model": req.motion,
            "version": loaded.version,
            "as_of": format_utc(as_of),
            "rows": n,
            "degraded": degraded,
            "request_id": request_ids or [f"{batch}-{i}" for i in range(n)],
            "lead_id": ids,
            "score": scored.score,
            "score_100": scored.score_100,
            "tier": scored.tier.tolist(),
            "route": decided["route"],
            "owner": decided["owner"],
            "sla_minutes": decided["sla_minutes"],
            "next_actions": decided["next_actions"],
            "expected_value": scored.expected_value,
            "reasons": scored.table,
            "fit_score": decided["fit_score"],
            "engagement_score": decided["engagement_score"],
            "grade": decided["grade"],
            "gates": decided["gates"],
            "unknown_categories": encoded.unseen_per_row(),
            "_features": columns,
            "_as_of": as_of,
            "_latency": (time.perf_counter() - t0) / max(n, 1),
        }


def _kept(scored: Scores) -> list:
    """The reasons as kept unworded (``picks``); a model saved before picks existed words them instead."""
    picks = getattr(scored, "picks", None)
    return picks if picks is not None else scored.reasons  # type: ignore[return-value]


def _decided(conf: MotionConfig, scored: Scores, columns: dict[str, Any], **given: Any) -> dict[str, list]:
    """``decide_columns`` for a scored batch of columns (``given``: its stages, accounts and consent)."""
    return decide_columns(conf, tiers=scored.tier, features=columns, expected_value=scored.expected_value,
                          groups=scored.groups, **given)  # fmt: skip


def decide_batch(
    conf: MotionConfig,
    batch: list[ScoreRequest],
    columns: dict[str, Any],
    features: list[dict],
    scored: Scores,
) -> list[RouteDecision]:
    """The motion's rules for a batch of one motion: its features as columns, the requests' stages, accounts
    (ownership, territory) and consent."""
    return decide_many(
        conf,
        tiers=scored.tier,
        features=columns,
        expected_value=scored.expected_value,
        groups=scored.groups,
        stages=[_stage(r, f) for r, f in zip(batch, features, strict=True)],
        accounts=[r.account.__dict__ if r.account else None for r in batch],
        consent_email=[r.customer.consent_email if r.customer else None for r in batch],
        consent_sms=[r.customer.consent_sms if r.customer else None for r in batch],
    )


def _stage(req: ScoreRequest, features: dict) -> str | None:
    """The stage gates and hybrid routes read: the lead's, or (hybrid) the lifecycle stage its features give."""
    if req.lead is not None and req.lead.stage:
        return req.lead.stage
    return features.get("lifecycle_stage") if req.motion == "hybrid" else None


def _payload(req: ScoreRequest) -> dict[str, Any]:
    """The request as the plain dicts the feature code reads, without copying: a pydantic model keeps its
    validated field values in ``__dict__`` (None where a field was not given), and events and orders already
    are dicts. A fraction of the cost of ``model_dump`` or ``dict(model)``; the feature code only reads them."""
    d = dict(req.__dict__)
    for k in ("lead", "account", "customer"):
        if d[k] is not None:
            d[k] = d[k].__dict__
    return d
