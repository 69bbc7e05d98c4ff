"""Typed request and response bodies (pydantic v2): the OpenAPI contract of the scoring service.

NaN and infinity are rejected everywhere; unknown fields are ignored (CRM webhooks carry extras). Events and
orders, the many small items of a request, are typed dicts rather than models: validated the same way, cheaper
to validate (they arrive by the thousand in a batch), and handed to the feature code as they are.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, NotRequired

from pydantic import BaseModel, ConfigDict, Field, with_config
from typing_extensions import TypedDict

from leadscore.motions import (
    B2B_EVENT_TYPES,
    B2B_STAGES,
    B2C_EVENT_TYPES,
    BUYING_ROLES,
    EMAIL_TYPES,
    SENIORITIES,
    MotionName,
)
from leadscore.times import MAX_EPOCH, MIN_EPOCH

# Epoch seconds (years 1 to 9999) stay numbers; a larger number is read as epoch milliseconds (as JavaScript
# sends them) and anything else must be an ISO-8601 time. Tried in that order (cheaper than pydantic's default
# "smart" union, which tries both). A number beyond every reading is a 400 naming the field, never a 5xx.
Time = Annotated[
    Annotated[float, Field(ge=MIN_EPOCH, le=MAX_EPOCH)] | datetime, Field(union_mode="left_to_right")
]
IN = ConfigDict(allow_inf_nan=False, extra="ignore")
NonNegative = Annotated[float, Field(ge=0)]


class _In(BaseModel):
    model_config = IN


class Lead(_In):
    lead_id: str = Field(min_length=1)
    account_id: str = Field(min_length=1)
    created_at: Time
    source: str | None = None
    title: str | None = None
    seniority: Literal[SENIORITIES] | None = None  # type: ignore[valid-type]
    buying_role: Literal[BUYING_ROLES] = "unknown"  # type: ignore[valid-type]
    email_domain_type: Literal[EMAIL_TYPES] = "business"  # type: ignore[valid-type]
    stage: Literal[B2B_STAGES] | None = Field(  # type: ignore[valid-type]
        None, description="funnel stage reached (hybrid routing, gates)"
    )


class Account(_In):
    account_id: str | None = None
    name: str | None = None
    industry: str | None = None
    employee_count: float | None = Field(None, ge=0)
    annual_revenue: float | None = Field(None, ge=0)
    country: str | None = None
    region: str | None = None
    owner_id: str | None = None
    territory: str | None = None


class Customer(_In):
    customer_id: str = Field(min_length=1)
    created_at: Time
    channel: str | None = None
    country: str | None = None
    device: str | None = None
    consent_email: bool = False
    consent_sms: bool = False


@with_config(IN)
class Event(TypedDict):
    """B2B (lead/account) or B2C (session/cart) event; ``type`` is checked against the motion."""

    event_id: Annotated[str, Field(min_length=1)]
    ts: Time
    type: Literal[tuple(sorted(set(B2B_EVENT_TYPES) | set(B2C_EVENT_TYPES)))]  # type: ignore[valid-type]
    lead_id: NotRequired[str | None]
    topic: NotRequired[str | None]
    session_id: NotRequired[str | None]
    product_id: NotRequired[str | None]
    category: NotRequired[str | None]
    price: NotRequired[NonNegative | None]
    quantity: NotRequired[NonNegative | None]


@with_config(IN)
class StreamEvent(Event):
    """A canonical events row as it happens (``POST /events``): B2B and hybrid name the ``account_id`` (and the
    ``lead_id``, or none for account-level intent), B2C the ``customer_id`` and ``session_id``."""

    account_id: NotRequired[str | None]
    customer_id: NotRequired[str | None]


class EventsResult(BaseModel):
    motion: MotionName
    received: int
    new: int = Field(description="events not seen before (by event_id)")
    duplicates: int = Field(description="events already taken in: counted once")
    pending: int = Field(
        description="events whose lead, account or customer is not known yet: kept, applied when it appears"
    )
    entities_changed: int
    rescored: int = Field(description="leads or customers re-scored (source 'event' in the score log)")
    notifications: int = Field(description="trigger notifications written to the outbox")


@with_config(IN)
class Order(TypedDict):
    ts: Time
    amount: NonNegative


@with_config(IN)
class OutcomeRow(TypedDict):
    """One canonical outcomes row: B2B (``lead_id``, ``account_id``, ``stage``) or B2C (``customer_id``,
    ``purchased``), with ``occurred_at`` and an optional deal or order ``value``; ``outcome_id`` makes a row
    idempotent by itself (otherwise entity, stage or purchase, and time do)."""

    occurred_at: Time
    lead_id: NotRequired[Annotated[str, Field(min_length=1)]]
    account_id: NotRequired[Annotated[str, Field(min_length=1)]]
    stage: NotRequired[Literal[B2B_STAGES]]  # type: ignore[valid-type]
    customer_id: NotRequired[Annotated[str, Field(min_length=1)]]
    purchased: NotRequired[bool]
    value: NotRequired[NonNegative | None]
    contacted_at: NotRequired[Time | None]
    outcome_id: NotRequired[Annotated[str, Field(min_length=1)]]


# The columnar form (``POST /score_columns``): one motion per body, each table a dict of equally long columns.
# Times stay text (or epoch numbers; text first, the common case) and are parsed a whole column at a time by the
# scorer.
TimeText = Annotated[
    str | Annotated[float, Field(ge=MIN_EPOCH, le=MAX_EPOCH)], Field(union_mode="left_to_right")
]
Id = Annotated[str, Field(min_length=1)]


class LeadColumns(_In):
    """Leads as columns: value i of each column is lead i. Absent columns, and null values, take the ``Lead``
    defaults (buying role unknown, business email, no stage)."""

    lead_id: list[Id]
    account_id: list[Id]
    created_at: list[TimeText]
    source: list[str | None] | None = None
    title: list[str | None] | None = None
    seniority: list[Literal[SENIORITIES] | None] | None = None  # type: ignore[valid-type]
    buying_role: list[Literal[BUYING_ROLES] | None] | None = None  # type: ignore[valid-type]
    email_domain_type: list[Literal[EMAIL_TYPES] | None] | None = None  # type: ignore[valid-type]
    stage: list[Literal[B2B_STAGES] | None] | None = None  # type: ignore[valid-type]


class AccountColumns(_In):
    """Each lead's account fields as columns (value i: lead i's account); null: the stored value."""

    account_id: list[str | None] | None = None
    name: list[str | None] | None = None
    industry: list[str | None] | None = None
    employee_count: list[NonNegative | None] | None = None
    annual_revenue: list[NonNegative | None] | None = None
    country: list[str | None] | None = None
    region: list[str | None] | None = None
    owner_id: list[str | None] | None = None
    territory: list[str | None] | None = None


class CustomerColumns(_In):
    """Customers as columns (value i: customer i); null consent is no consent, as in ``Customer``."""

    customer_id: list[Id]
    created_at: list[TimeText]
    channel: list[str | None] | None = None
    country: list[str | None] | None = None
    device: list[str | None] | None = None
    consent_email: list[bool | None] | None = None
    consent_sms: list[bool | None] | None = None


class EventColumns(_In):
    """Events as columns; ``row`` is the index of the lead or customer each belongs to."""

    row: list[Annotated[int, Field(ge=0)]]
    event_id: list[Id]
    ts: list[TimeText]
    type: list[Literal[tuple(sorted(set(B2B_EVENT_TYPES) | set(B2C_EVENT_TYPES)))]]  # type: ignore[valid-type]
    lead_id: list[str | None] | None = None
    topic: list[str | None] | None = None
    session_id: list[str | None] | None = None
    product_id: list[str | None] | None = None
    category: list[str | None] | None = None
    price: list[NonNegative | None] | None = None
    quantity: list[NonNegative | None] | None = None


class OrderColumns(_In):
    row: list[Annotated[int, Field(ge=0)]]
    ts: list[TimeText]
    amount: list[NonNegative]


class ColumnsRequest(_In):
    """Many leads (B2B, hybrid) or customers (B2C) of one motion as columns: the bulk form of /score_batch."""

    motion: MotionName
    lead: LeadColumns | None = None
    account: AccountColumns | None = None
    customer: CustomerColumns | None = None
    events: EventColumns | None = None
    orders: OrderColumns | None = None
    as_of: TimeText | None = Field(None, description="score as of this time (default: now)")
    request_id: list[str] | None = Field(None, description="one per row (default: generated)")


class ScoreRequest(_In):
    motion: MotionName
    lead: Lead | None = None
    account: Account | None = None
    customer: Customer | None = None
    events: list[Event] = Field(default_factory=list, max_length=5000)
    orders: list[Order] = Field(default_factory=list, max_length=5000)
    as_of: Time | None = Field(
        None, description="score as of this time (default: now); for replays and tests"
    )
    request_id: str | None = None


# OpenAPI 3.0 (the document BentoML publishes) has no null type: a field that may be null says so this way.
NULLABLE: dict[str, Any] = {"nullable": True}


class Reason(BaseModel):
    feature: str
    group: str
    value: float | str | None = Field(json_schema_extra=NULLABLE)
    direction: Literal["+", "-"]
    contribution: float
    text: str


class Gate(BaseModel):
    stage: str
    ready: bool
    missing: list[str]


class ScoreResponse(BaseModel):
    request_id: str
    lead_id: str
    motion: MotionName
    model: str
    version: str
    score: float = Field(description="calibrated probability of conversion within the motion's horizon")
    score_100: int
    tier: str
    route: str
    owner: str | None = Field(json_schema_extra=NULLABLE)
    sla_minutes: int | None = Field(json_schema_extra=NULLABLE)
    next_actions: list[str]
    expected_value: float
    reasons: list[Reason]
    fit_score: int | None = Field(None, json_schema_extra=NULLABLE)
    engagement_score: int | None = Field(None, json_schema_extra=NULLABLE)
    grade: str | None = Field(
        None, description="B2B fit × engagement grade, A1 (best) … D4", json_schema_extra=NULLABLE
    )
    gates: list[Gate] = []
    unknown_categories: dict[str, int] = {}
    degraded: list[str] = Field(
        [],
        description='what this score had to do without, e.g. ["online_store"]: scored from the request alone',
    )


class ReasonColumns(BaseModel):
    """Every row's reasons as one table: ``row`` is the index of the lead or customer; per row, its top positive
    then top negative reasons, as ``ScoreResponse.reasons`` lists them."""

    row: list[int]
    feature: list[str]
    group: list[str]
    value: list[float | str | None]
    direction: list[Literal["+", "-"]]
    contribution: list[float]
    text: list[str]


class ColumnsResponse(BaseModel):
    """The answers of ``POST /score_columns`` as columns (value i: row i of the request), with the fields of
    ``ScoreResponse``; what is the same for every row is given once."""

    motion: MotionName
    model: str
    version: str
    as_of: str
    rows: int
    degraded: list[str]
    request_id: list[str]
    lead_id: list[str] = Field(description="the lead ids (B2B, hybrid) or customer ids (B2C)")
    score: list[float]
    score_100: list[int]
    tier: list[str]
    route: list[str]
    owner: list[str | None]
    sla_minutes: list[int | None]
    next_actions: list[list[str]]
    expected_value: list[float]
    reasons: ReasonColumns
    fit_score: list[int | None]
    engagement_score: list[int | None]
    grade: list[str | None]
    gates: list[list[Gate]]
    unknown_categories: list[dict[str, int]]


def columns_of(requests: list[dict[str, Any]]) -> dict[str, Any]:
    """The /score_columns body of list-form requests (``ScoreRequest`` bodies as JSON values, one motion): the
    same leads, accounts, events and orders as columns. Absent fields become null; ``as_of`` is the first's."""
    if not requests:
        raise ValueError("columns_of needs at least one request")
    motion = requests[0]["motion"]
    if any(r["motion"] != motion for r in requests):
        raise ValueError("a columnar body holds one motion")
    body: dict[str, Any] = {"motion": motion}
    if requests[0].get("as_of") is not None:
        body["as_of"] = requests[0]["as_of"]
    if all(r.get("request_id") for r in requests):
        body["request_id"] = [r["request_id"] for r in requests]
    for table in ("lead", "customer", "account"):
        rows = [r.get(table) or {} for r in requests]
        names = list(dict.fromkeys(k for row in rows for k in row))
        if names:
            body[table] = {k: [row.get(k) for row in rows] for k in names}
    for child in ("events", "orders"):
        items = [(i, x) for i, r in enumerate(requests) for x in r.get(child) or []]
        names = list(dict.fromkeys(k for _, x in items for k in x))
        if items:
            body[child] = {"row": [i for i, _ in items]} | {k: [x.get(k) for _, x in items] for k in names}
    return body


def reasons_per_row(table: dict[str, list], n: int) -> list[list[dict[str, Any]]]:
    """A /score_columns reasons table as ``ScoreResponse.reasons`` lists, one per row of ``n``."""
    out: list[list[dict[str, Any]]] = [[] for _ in range(n)]
    names = [k for k in table if k != "row"]
    for i, *values in zip(table["row"], *(table[k] for k in names), strict=True):
        out[i].append(dict(zip(names, values, strict=True)))
    return out
