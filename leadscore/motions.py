"""The motions, declared once: their names, entity and id column, event types, funnel stages and label rule.

A motion is a configuration of one codebase (``conf/<motion>.yaml``); what does not vary by policy — which table
holds the entity, which column names it, which event types exist — lives here, and every stage reads it from
here. Hybrid shares the B2B tables and outcome family.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import pandas as pd

from leadscore.errors import UserError

BUYING_ROLES = ("economic_buyer", "champion", "technical_evaluator", "procurement", "user", "unknown")
SENIORITIES = ("individual", "manager", "director", "vp", "cxo")
EMAIL_TYPES = ("business", "free")
B2B_EVENT_TYPES = (
    "page_view",
    "solution_page",
    "pricing_page",
    "demo_request",
    "trial_signup",
    "webinar",
    "content_download",
    "email_open",
    "email_click",
    "meeting_booked",
    "third_party_intent",
)
B2B_STAGES = ("mql", "sql", "opportunity", "won", "lost")
B2C_EVENT_TYPES = (
    "page_view",
    "product_view",
    "search",
    "add_to_cart",
    "remove_from_cart",
    "checkout_start",
    "purchase",
    "email_click",
    "wishlist_add",
)
CHANNELS = ("organic", "paid_search", "social", "email", "referral", "direct")
DEVICES = ("mobile", "desktop", "tablet")

Family = Literal["b2b", "b2c"]


@dataclass(frozen=True)
class Motion:
    """What a motion is, apart from its policy: ``family`` names the canonical tables and outcomes it uses."""

    name: str
    family: Family
    entity: Literal["lead", "customer"]
    entity_table: str
    id_column: str
    event_types: tuple[str, ...]

    @property
    def request_field(self) -> str:
        """The request field that carries the entity (``lead`` or ``customer``)."""
        return self.entity


MOTIONS: dict[str, Motion] = {
    "b2b": Motion("b2b", "b2b", "lead", "leads", "lead_id", B2B_EVENT_TYPES),
    "b2c": Motion("b2c", "b2c", "customer", "customers", "customer_id", B2C_EVENT_TYPES),
    "hybrid": Motion("hybrid", "b2b", "lead", "leads", "lead_id", B2B_EVENT_TYPES),
}
NAMES: tuple[str, ...] = tuple(MOTIONS)
MotionName = Literal["b2b", "b2c", "hybrid"]  # the same names, for typed models (configs, requests, specs)
assert get_args(MotionName) == NAMES
ID_COLUMNS = ("lead_id", "customer_id", "account_id")


def get(name: str) -> Motion:
    """The motion called ``name``, or a ``UserError`` that lists the motions."""
    if name not in MOTIONS:
        raise UserError(f"unknown motion {name!r}; expected one of {', '.join(NAMES)}")
    return MOTIONS[name]


def positive_outcomes(outcomes: pd.DataFrame, motion: str, stage: str | None) -> np.ndarray:
    """The label rule: which outcome rows are conversions. B2C: a purchase; B2B and hybrid: reaching ``stage``
    (the motion's ``label.stage``, e.g. won)."""
    if get(motion).family == "b2c":
        return outcomes["purchased"].fillna(False).astype(bool).to_numpy()
    return (outcomes["stage"] == stage).to_numpy()


def labels_within(
    rows: pd.DataFrame, positives: pd.DataFrame, id_col: str, horizon_days: int
) -> tuple[np.ndarray, np.ndarray]:
    """Label and realised value per (entity, ``as_of``) row: 1 when a positive outcome of its entity occurred in
    (as_of, as_of + horizon]; the value is the sum of those outcomes' values (0 where none is known).

    ``positives`` has ``id_col``, ``occurred_at`` and ``value`` (already filtered by ``positive_outcomes``)."""
    m = (
        rows[[id_col, "as_of"]]
        .reset_index(drop=True)
        .reset_index()
        .merge(positives[[id_col, "occurred_at", "value"]], on=id_col, how="inner")
    )
    h = pd.Timedelta(days=horizon_days)
    m = m[(m["occurred_at"] > m["as_of"]) & (m["occurred_at"] <= m["as_of"] + h)]
    agg = m.groupby("index")["value"].sum(min_count=1)
    y = np.zeros(len(rows), dtype=np.int8)
    v = np.zeros(len(rows))
    y[agg.index.to_numpy()] = 1
    v[agg.index.to_numpy()] = agg.fillna(0).to_numpy()
    return y, v
