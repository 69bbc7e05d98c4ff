"""Stored contexts and score requests, each read as the other: what a /score request for each entity of a context
would carry (re-scoring after events), and a context with a request's entity added (an entity that appears with
events waiting for it)."""

from __future__ import annotations

from typing import Any

from features.frames import ROLE_CODE, STAGE_RANK
from features.prepare import SENIORITY_RANK
from leadscore import motions
from leadscore.times import epoch_seconds
from serving.schemas import ScoreRequest

ROLES = {v: k for k, v in ROLE_CODE.items()}
SENIORITY = {v: k for k, v in SENIORITY_RANK.items()}


def with_entity(motion: str, ctx: dict | None, req: ScoreRequest) -> dict | None:
    """The stored context with the request's entity in it (None: nothing to add)."""
    if motions.get(motion).family == "b2c":
        if ctx is not None or req.customer is None:
            return None
        c = req.customer
        return {"customer": {"customer_id": c.customer_id, "created": epoch_seconds(c.created_at),
                             "channel": c.channel, "device": c.device, "consent_email": c.consent_email,
                             "consent_sms": c.consent_sms}, "events": None, "orders": None}  # fmt: skip
    lead = req.lead
    assert lead is not None
    ctx = dict(ctx or {"account": {"account_id": lead.account_id}})
    if req.account is not None and not raw_has_account(ctx):
        a = req.account
        ctx["account"] = {"account_id": lead.account_id, "industry": a.industry,
                          "employee_count": a.employee_count, "annual_revenue": a.annual_revenue, "region": a.region}  # fmt: skip
    leads = {k: list(v) for k, v in (ctx.get("leads") or {"lead_id": [], "created": [], "role": [], "seniority": [],
                                                           "business": [], "stage": []}).items()}  # fmt: skip
    if lead.lead_id in leads["lead_id"]:
        return None
    leads["lead_id"].append(lead.lead_id)
    leads["created"].append(epoch_seconds(lead.created_at))
    leads["role"].append(ROLE_CODE.get(lead.buying_role, ROLE_CODE["unknown"]))
    leads["seniority"].append(SENIORITY_RANK.get(lead.seniority or "", None))
    leads["business"].append(float(lead.email_domain_type == "business"))
    leads["stage"].append(STAGE_RANK[lead.stage] if lead.stage else 0)
    ctx["leads"] = leads
    return ctx


def raw_has_account(ctx: dict) -> bool:
    return any(v is not None for k, v in (ctx.get("account") or {}).items() if k != "account_id")


def payloads(motion: str, ctx: dict) -> list[dict[str, Any]]:
    """What a /score request for each entity of a stored context would carry (no events: they are stored)."""
    if motions.get(motion).family == "b2c":
        c = ctx.get("customer") or {}
        return [{"motion": motion, "customer": {"customer_id": c["customer_id"], "created_at": c["created"],
                 "channel": c.get("channel"), "device": c.get("device"),
                 "consent_email": bool(c.get("consent_email")), "consent_sms": bool(c.get("consent_sms"))}}]  # fmt: skip
    a, leads = ctx.get("account") or {}, ctx.get("leads") or {}
    account = {k: a.get(k) for k in ("account_id", "industry", "employee_count", "annual_revenue", "region")}
    out = []
    for j, lead_id in enumerate(leads.get("lead_id", [])):
        s = leads["seniority"][j]
        out.append({"motion": motion, "account": account, "lead": {
            "lead_id": lead_id, "account_id": a.get("account_id"), "created_at": leads["created"][j],
            "buying_role": ROLES.get(leads["role"][j], "unknown"),
            "seniority": SENIORITY.get(s) if s is not None else None,
            "email_domain_type": "business" if leads["business"][j] else "free"}})  # fmt: skip
    return out
