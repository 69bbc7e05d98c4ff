"""The frames every feature function reads: leads, accounts, customers and events as plain numpy arrays, with
the codes that index the canonical vocabularies (event types, buying roles, funnel stages)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from leadscore.motions import B2B_EVENT_TYPES, B2B_STAGES, B2C_EVENT_TYPES, BUYING_ROLES

DAY = 86_400.0
NONE = np.array(None, dtype=object)  # a missing value for np.where over object arrays
B2B_CODE = {t: i for i, t in enumerate(B2B_EVENT_TYPES)}
B2C_CODE = {t: i for i, t in enumerate(B2C_EVENT_TYPES)}
ROLE_CODE = {r: i for i, r in enumerate(BUYING_ROLES)}
STAGE_RANK = {"none": 0, "mql": 1, "sql": 2, "opportunity": 3, "won": 4, "lost": 4}
STAGE_NAMES = ("none", "mql", "sql", "opportunity", "closed")
HIGH_INTENT_TYPES = ("solution_page", "pricing_page", "demo_request", "trial_signup", "third_party_intent")


def spans(counts: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """For parts of these lengths laid end to end: where each part starts, and the part of each element."""
    c = np.array(counts, dtype=np.int64)
    return np.cumsum(c) - c, np.repeat(np.arange(len(c)), c)


def object_array(values: list) -> np.ndarray:
    """Values as a one-dimensional object array (strings and None as they are)."""
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _lut(codes: dict[str, int], names) -> np.ndarray:
    """Type code → membership, a lookup table (far cheaper than np.isin on small arrays)."""
    t = np.zeros(len(codes), dtype=bool)
    t[[codes[n] for n in names]] = True
    return t


HI_LUT = _lut(B2B_CODE, HIGH_INTENT_TYPES)
DEMO_LUT = _lut(B2B_CODE, ("demo_request", "trial_signup"))
CONTENT_LUT = _lut(B2B_CODE, ("content_download", "webinar"))
BROWSE_LUT = _lut(B2C_CODE, ("product_view", "add_to_cart"))
INTENT_LUT = _lut(B2C_CODE, ("add_to_cart", "checkout_start", "email_click"))
assert set(STAGE_RANK) - {"none"} == set(B2B_STAGES)


@dataclass
class B2BFrame:
    """Leads (with their account index), accounts and events as arrays; codes index the schema tuples."""

    lead_account: np.ndarray  # int, index into accounts
    lead_created: np.ndarray  # int64 epoch seconds
    lead_role: np.ndarray  # int, index into BUYING_ROLES
    lead_seniority: np.ndarray  # float 0..4, NaN unknown
    lead_business: np.ndarray  # float 0/1
    lead_stage: np.ndarray  # int stage rank reached as of the frame's as-of (hybrid)
    acc_industry: np.ndarray  # object
    acc_employees: np.ndarray  # float
    acc_revenue: np.ndarray  # float
    acc_region: np.ndarray  # object
    ev_ts: np.ndarray  # int64
    ev_type: np.ndarray  # int8 code into B2B_EVENT_TYPES
    ev_lead: np.ndarray  # int, -1 for account-level events
    ev_account: np.ndarray  # int
    ev_topic: np.ndarray  # int, -1 none
    ev_pos: np.ndarray  # int, the event's row in its source (batch) or -1 (request)

    @property
    def n_leads(self) -> int:
        return len(self.lead_account)

    @property
    def n_accounts(self) -> int:
        return len(self.acc_industry)


@dataclass
class B2CFrame:
    cust_created: np.ndarray  # int64
    cust_channel: np.ndarray  # object
    cust_device: np.ndarray  # object
    cust_consent_email: np.ndarray  # float 0/1
    cust_consent_sms: np.ndarray  # float 0/1
    ev_ts: np.ndarray
    ev_type: np.ndarray  # int8 code into B2C_EVENT_TYPES
    ev_cust: np.ndarray
    ev_session: np.ndarray  # int, unique per session within the frame
    ev_category: np.ndarray  # int, -1 none
    ev_price: np.ndarray  # float
    ev_qty: np.ndarray  # float
    ev_pos: np.ndarray  # int, the event's row in its source (batch) or -1 (request)
    ord_cust: np.ndarray
    ord_ts: np.ndarray
    ord_amount: np.ndarray

    @property
    def n(self) -> int:
        return len(self.cust_created)
