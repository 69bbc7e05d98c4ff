"""Per-motion policy: a typed object built from conf/<motion>.yaml.

One codebase, one file per motion: features, label and horizon, model settings, tiers, routes, SLAs, stage
gates, promotion gates and feedback bounds.  Unknown keys are errors, so a typo never silently falls back.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from leadscore.errors import UserError
from leadscore.motions import MotionName
from leadscore.settings import Settings

log = logging.getLogger("leadscore.config")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ICP(_Strict):
    industries: list[str] = []
    employee_band: tuple[float, float] = (0, float("inf"))
    revenue_band: tuple[float, float] = (0, float("inf"))
    regions: list[str] = []


class Label(_Strict):
    """B2B: positive when ``stage`` is reached within the horizon. B2C: when ``purchased`` is true."""

    stage: str | None = None
    purchased: bool | None = None


class Snapshots(_Strict):
    """Training rows are (entity, as-of, label): one snapshot every ``every_days``, ``count`` of them."""

    every_days: int = 30
    count: int = 4


class SearchConf(_Strict):
    """The time-bounded model search (training/search.py): on by default for a spec (a flat export the motion's
    settings were not chosen for), off for a motion's canonical data unless asked for (--search-seconds)."""

    seconds_per_50k_rows: float = Field(
        default=90.0, ge=0
    )  # the budget grows with the rows, within the bounds
    min_seconds: float = Field(default=15.0, ge=0)
    max_seconds: float = Field(default=180.0, ge=0)
    # 16 rather than 8 (bench.quality, 5 seeds, 2026-12-04): gap to the best peer +0.0047/+0.0042/+0.0047 AUC on
    # X Education, bank-full, bank-additional against +0.0042-0.0046/+0.0037/+0.0046, bank-full training 43 s.
    # Five folds instead of three added nothing (+0.0046/+0.0043/+0.0050) for 1.7x the time.
    max_candidates: int = Field(default=16, ge=1)
    # boosters averaged at most: >1 adds other candidates while they raise the out-of-fold AUC (ensemble
    # selection). Measured (bench.quality, 5 seeds, 16 candidates, up to 5 members): +0.0004 to +0.0008 AUC on
    # X Education, bank-full and bank-additional, for several times the trees (bank-full: 2,281 trees against
    # 327 for its best member alone; LightGBM's own SHAP then takes 3.5 ms a row), so it is off by default.
    max_members: int = Field(default=1, ge=1)
    folds: int = Field(
        default=3, ge=1
    )  # stratified folds over the fit period (one fold when rows have a time)
    blend: bool = True  # blend with a logistic regression when it wins out of fold
    # weight of a refit on every fit row beside the fold boosters' average (0: the average alone). Measured
    # (bench.quality, 5 seeds, 2026-12-04): gap to the best peer on X Education, bank-full, bank-additional, IBM
    # +0.0053/+0.0051/+0.0050/+0.0066 AUC against +0.0052/+0.0042/+0.0047/+0.0058 with the average alone; a
    # quarter gave bank-full +0.0048, the refit alone +0.0045. The calibrator reads out-of-fold scores of the same
    # recipe (training/search.py ``with_refit``): X Education's pooled ECE 0.0102 (floor 0.0096), not 0.0120.
    refit_weight: float = Field(default=0.5, ge=0, le=1)

    def budget(self, rows: int) -> float:
        return float(min(self.max_seconds, max(self.min_seconds, self.seconds_per_50k_rows * rows / 50_000)))


class ModelConf(_Strict):
    params: dict[str, float | int | str] = {}
    max_rounds: int = 2000
    early_stopping_rounds: int = 100
    # one validation fold: after early stopping, retrain on train + validation rows (the calibrator stays
    # out-of-sample). Cross-validated (a search over several folds): the fold boosters are averaged, with a refit
    # beside them by ``search.refit_weight``.
    refit: bool = True
    max_category_levels: int = 50
    seed: int = 0
    search: SearchConf = SearchConf()


class Value(_Strict):
    """Expected value = probability × deal value − cost of the sales interaction."""

    deal_value: float = 1000.0
    value_feature: str | None = None
    cost_of_contact: float = 0.0


class TierLevel(_Strict):
    name: str
    share: float | None = Field(default=None, gt=0, le=1)
    min_probability: float | None = Field(default=None, ge=0, le=1)
    min_expected_value: float | None = None

    @model_validator(mode="after")
    def _one_threshold(self) -> TierLevel:
        given = [x is not None for x in (self.share, self.min_probability, self.min_expected_value)]
        if sum(given) > 1:
            raise ValueError(f"tier {self.name!r}: give one of share, min_probability, min_expected_value")
        return self


class Tiers(_Strict):
    """Ordered best first; the last level catches the rest. ``share`` is cumulative and fitted on validation."""

    method: Literal["probability", "expected_value", "capacity"] = "probability"
    levels: list[TierLevel]


class Condition(_Strict):
    feature: str | None = None
    op: Literal[">=", ">", "<=", "<", "==", "!="] = ">="
    value: float | str | bool | None = None
    tier: list[str] | None = None
    stage_at_least: str | None = None
    stage_below: str | None = None
    consent: Literal["any", "email", "sms", "none"] | None = None
    expected_value_below: float | None = None


class Route(_Strict):
    """First matching route wins; ``when`` is a list of conditions that must all hold."""

    name: str
    when: list[Condition] = []
    owner: Literal["account_owner", "territory_queue", "none"] = "none"
    sla_minutes: int | None = None
    actions: list[str] = []

    def features(self) -> list[str]:
        """The features its conditions read."""
        return [c.feature for c in self.when if c.feature is not None]


def routes_lacking(routes: list[Route], inputs: list[str]) -> dict[str, list[str]]:
    """Routes that read a feature not among ``inputs``, with those features: such a route never applies (a flat
    export scored on a motion's routes, which name the motion's own features)."""
    have = set(inputs)
    out = {r.name: [f for f in r.features() if f not in have] for r in routes}
    return {name: lacking for name, lacking in out.items() if lacking}


def check_routes(conf: MotionConfig, inputs: list[str], model: str, own: bool) -> None:
    """Routes must read what ``model`` reads (``inputs``): a spec's ``own`` routes that do not are refused (a
    UserError naming the route and the column); the motion's are named once in a warning (they never apply)."""
    lacking = routes_lacking(conf.routes, inputs)
    if not lacking:
        return
    if own:
        route, cols = next(iter(lacking.items()))
        raise UserError(
            f"route {route!r} reads {cols[0]!r}, which model {model!r} does not read (it reads: "
            f"{', '.join(inputs[:12])}{', …' if len(inputs) > 12 else ''})"
        )
    log.warning(
        "%s routes %s read features this export lacks (%s): they never apply for model %s, so its leads go to %s; "
        "declare `routes:` in its spec to route them on its own columns",
        conf.motion, ", ".join(lacking), ", ".join(sorted({c for cs in lacking.values() for c in cs})), model,
        ", ".join(r.name for r in conf.routes if r.name not in lacking),
    )  # fmt: skip


class Gate(_Strict):
    """Evidence required before a lead may advance to ``stage``; ``missing`` is what a rep reads."""

    stage: str
    require: list[Condition]
    missing: str


class Trigger(_Strict):
    """A change worth pushing to the CRM at once, checked whenever an entity is re-scored (an event, decay).

    ``tier_up``: into one of ``tiers`` from a lower tier (or from no score); ``route_into``: into one of
    ``routes`` from another; ``feature_at_least``: ``feature`` reaches ``bound`` from below (with every feature
    of ``require`` at least its value, e.g. ``cart_abandoned: 1``); ``score_drop``: the score falls by at least
    ``bound``. One notification per (entity, trigger, ``window_hours``) at most; ``url`` overrides
    LEADSCORE_WEBHOOK_URL."""

    name: str
    kind: Literal["tier_up", "route_into", "feature_at_least", "score_drop"]
    tiers: list[str] = []
    routes: list[str] = []
    feature: str | None = None
    bound: float | None = None
    require: dict[str, float] = {}
    window_hours: float = Field(default=24.0, gt=0)
    url: str | None = None

    @model_validator(mode="after")
    def _complete(self) -> Trigger:
        need = {"tier_up": self.tiers, "route_into": self.routes, "score_drop": self.bound is not None,
                "feature_at_least": self.feature and self.bound is not None}  # fmt: skip
        if not need[self.kind]:
            what = {"tier_up": "tiers", "route_into": "routes", "score_drop": "bound",
                    "feature_at_least": "feature and bound"}[self.kind]  # fmt: skip
            raise ValueError(f"trigger {self.name!r} ({self.kind}) needs {what}")
        return self


class Grade(_Strict):
    fit_cutoffs: list[float] = [75, 50, 25]
    engagement_cutoffs: list[float] = [75, 50, 25]


class Promotion(_Strict):
    auc_margin: float = 0.005
    ece_margin: float = 0.005
    min_positives: int = 100


class Leakage(_Strict):
    max_single_feature_auc: float = 0.95


class FeedbackConf(_Strict):
    min_new_labels: int = 500
    psi_bound: float = 0.2
    ece_bound: float = 0.05
    auc_drop_bound: float = 0.03


class MotionConfig(_Strict):
    motion: MotionName
    feature_set: str
    label: Label
    horizon_days: int = Field(gt=0)
    snapshots: Snapshots = Snapshots()
    icp: ICP = ICP()
    required_roles: list[str] = []
    intent_half_life_days: float = 14.0
    model_inputs_exclude: list[str] = []
    segments: list[str] = []  # per-segment metrics, always within this motion
    gate_stage: str | None = None
    model: ModelConf = ModelConf()
    value: Value = Value()
    tiers: Tiers
    routes: list[Route]
    gates: list[Gate] = []
    triggers: list[Trigger] = []
    grade: Grade = Grade()
    promotion: Promotion = Promotion()
    leakage: Leakage = Leakage()
    feedback: FeedbackConf = FeedbackConf()
    max_batch_size: int = 1000
    sla_latency_ms: int = 50

    @model_validator(mode="after")
    def _routes_end_with_fallback(self) -> MotionConfig:
        if not self.routes or self.routes[-1].when:
            raise ValueError("the last route must have no conditions (the fallback)")
        tiers = {t.name for t in self.tiers.levels}
        for r in self.routes:
            unknown = [t for c in r.when for t in c.tier or [] if t not in tiers]
            if unknown:
                raise ValueError(f"route {r.name!r}: tier {unknown[0]!r} is not one of {sorted(tiers)}")
        return self

    def with_routes(self, routes: list[Route]) -> MotionConfig:
        """These settings with other routes (a spec's), checked as the motion's own are."""
        try:
            return MotionConfig.model_validate(
                self.model_dump() | {"routes": [r.model_dump() for r in routes]}
            )
        except ValidationError as exc:
            raise UserError(f"routes: {exc.errors()[0]['msg']}") from None


def load_config(motion_or_path: str | Path, settings: Settings | None = None) -> MotionConfig:
    """Load ``conf/<motion>.yaml`` (or a YAML path) into a validated ``MotionConfig``."""
    p = Path(motion_or_path)
    if p.suffix not in (".yaml", ".yml"):
        p = (settings or Settings.load()).conf_dir / f"{motion_or_path}.yaml"
    if not p.exists():
        raise FileNotFoundError(f"no motion configuration at {p} (motions: b2b, b2c, hybrid)")
    with p.open() as fh:
        try:
            raw = yaml.safe_load(fh)
        except yaml.YAMLError as exc:
            raise UserError(f"{p} is not valid YAML: {exc}") from None
    try:
        return MotionConfig.model_validate(raw)
    except ValidationError as exc:
        raise UserError(f"{p}: {exc}") from None
