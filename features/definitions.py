"""Every feature, declared once: name, entity, group, dtype, window and the words a rep reads.

A named, versioned ``FeatureSet`` is what a model version consumes; training (point-in-time batch) and
serving (online) compute it with the same functions in ``features.compute``, which must produce exactly
the declared names (checked on every call).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Group = Literal["fit", "intent", "engagement", "behavior", "cart", "lifecycle"]
GROUP_LABEL: dict[str, str] = {
    "fit": "ICP fit",
    "intent": "intent",
    "engagement": "buying group",
    "behavior": "engagement",
    "cart": "cart",
    "lifecycle": "lifecycle",
}


@dataclass(frozen=True)
class Feature:
    name: str
    entity: Literal["lead", "customer"]
    dtype: Literal["float", "category"]
    window_days: int | None
    label: str  # format string over {v}: "{v:.0f} pricing-page visits in 7 days"
    model_input: bool = True

    @property
    def group(self) -> str:
        return self.name.split("_", 1)[0]

    def describe(self, value: object) -> str:
        if value is None or (isinstance(value, float) and value != value):
            return self.label.split(":", 1)[0].replace("{v:.0f}", "no").replace("{v:.1f}", "no").replace(
                "{v}", "unknown"
            ) + (": unknown" if ":" in self.label else "")
        try:
            return self.label.format(v=value)
        except (ValueError, TypeError):
            return self.label.format(v=str(value)) if "{v}" in self.label else f"{self.name} = {value}"


@dataclass(frozen=True)
class FeatureSet:
    name: str
    motion: str
    entity: Literal["lead", "customer"]
    features: tuple[Feature, ...]

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    def get(self, name: str) -> Feature:
        return self._by_name()[name]

    def _by_name(self) -> dict[str, Feature]:
        return {f.name: f for f in self.features}

    def categorical(self) -> list[str]:
        return [f.name for f in self.features if f.dtype == "category"]


def _l(
    name: str, label: str, window: int | None = None, dtype: str = "float", model_input: bool = True
) -> Feature:
    return Feature(name, "lead", dtype, window, label, model_input)  # type: ignore[arg-type]


def _c(
    name: str, label: str, window: int | None = None, dtype: str = "float", model_input: bool = True
) -> Feature:
    return Feature(name, "customer", dtype, window, label, model_input)  # type: ignore[arg-type]


FIT = (
    _l("fit_industry_match", "industry in the ICP: {v:.0f}"),
    _l("fit_size_match", "employee count in the ICP band: {v:.0f}"),
    _l("fit_revenue_match", "revenue in the ICP band: {v:.0f}"),
    _l("fit_region_match", "region in the ICP: {v:.0f}"),
    _l("fit_icp_score", "{v:.0%} of the ICP criteria met"),
    _l("fit_log_employees", "company size 10^{v:.1f} employees"),
    _l("fit_business_email", "business email: {v:.0f}"),
    _l("fit_seniority", "seniority level {v:.0f} of 4"),
    _l("fit_buying_role", "buying role: {v}", dtype="category"),
    _l("fit_industry", "industry: {v}", dtype="category"),
)
LEAD_INTENT = (
    _l("intent_lead_hi_7d", "{v:.0f} high-intent actions in 7 days", 7),
    _l("intent_lead_hi_30d", "{v:.0f} high-intent actions in 30 days", 30),
    _l("intent_lead_hi_90d", "{v:.0f} high-intent actions in 90 days", 90),
    _l("intent_lead_pricing_7d", "{v:.0f} pricing-page visits in 7 days", 7),
    _l("intent_lead_demo_30d", "{v:.0f} demo or trial requests in 30 days", 30),
    _l("intent_lead_decayed", "recent intent weight {v:.1f}", 90),
    _l("intent_lead_surge", "intent surge ×{v:.1f} (7 days vs the prior 28)", 35),
    _l("intent_lead_days_since_hi", "last high-intent action {v:.0f} days ago", 90),
)
ACCOUNT_INTENT = (
    _l("intent_acct_hi_30d", "{v:.0f} high-intent actions across the account in 30 days", 30),
    _l("intent_acct_decayed", "account intent weight {v:.1f}", 90),
    _l("intent_acct_surge", "account intent surge ×{v:.1f}", 35),
    _l("intent_acct_days_since_hi", "account's last high-intent action {v:.0f} days ago", 90),
    _l("intent_acct_topics_90d", "{v:.0f} third-party intent topics in 90 days", 90),
)
ENGAGEMENT = (
    _l("engagement_contacts_30d", "{v:.0f} contacts engaged in 30 days", 30),
    _l("engagement_roles_30d", "{v:.0f} buying roles engaged in 30 days", 30),
    _l("engagement_economic_buyer", "economic buyer engaged: {v:.0f}", 30),
    _l("engagement_champion", "champion engaged: {v:.0f}", 30),
    _l("engagement_role_coverage", "{v:.0%} of the required buying roles engaged", 30),
    _l("engagement_max_seniority", "most senior contact engaged: level {v:.0f} of 4", 30),
    _l("engagement_lead_share", "this lead carries {v:.0%} of the account's engagement", 30),
    _l("engagement_lead_events_30d", "{v:.0f} engagements by this lead in 30 days", 30),
    _l("engagement_meetings_90d", "{v:.0f} meetings booked with the account in 90 days", 90),
)
B2C_BEHAVIOR = (
    _c("behavior_recency_days", "last visit {v:.0f} days ago", 90),
    _c("behavior_sessions_1d", "{v:.0f} sessions today", 1),
    _c("behavior_sessions_7d", "{v:.0f} sessions in 7 days", 7),
    _c("behavior_sessions_30d", "{v:.0f} sessions in 30 days", 30),
    _c("behavior_product_views_7d", "{v:.0f} product views in 7 days", 7),
    _c("behavior_product_views_30d", "{v:.0f} product views in 30 days", 30),
    _c("behavior_categories_30d", "{v:.0f} categories browsed in 30 days", 30),
    _c("behavior_searches_7d", "{v:.0f} searches in 7 days", 7),
    _c("behavior_minutes_on_site_30d", "{v:.0f} minutes on site in 30 days", 30),
    _c("behavior_returning", "returning visitor: {v:.0f}", 90),
    _c("behavior_email_clicks_30d", "{v:.0f} email clicks in 30 days", 30),
    _c("behavior_orders", "{v:.0f} past orders"),
    _c("behavior_monetary", "{v:.0f} spent to date"),
    _c("behavior_days_since_order", "last order {v:.0f} days ago"),
)
CART = (
    _c("cart_items", "{v:.0f} items in the open cart", 30),
    _c("cart_value", "open cart worth {v:.0f}", 30),
    _c("cart_adds_7d", "{v:.0f} add-to-carts in 7 days", 7),
    _c("cart_removes_7d", "{v:.0f} cart removals in 7 days", 7),
    _c("cart_minutes_since_add", "last add-to-cart {v:.0f} minutes ago", 30),
    _c("cart_abandoned", "abandoned cart: {v:.0f}", 30),
    _c("cart_checkout_no_purchase", "checkout started without purchase: {v:.0f}", 30),
)
B2C_LIFECYCLE = (
    _c("lifecycle_stage", "lifecycle stage: {v}", dtype="category"),
    _c("lifecycle_tenure_days", "customer for {v:.0f} days"),
    _c("lifecycle_channel", "acquired through {v}", dtype="category"),
    _c("lifecycle_device", "device: {v}", dtype="category"),
    _c("lifecycle_consent_email", "email consent: {v:.0f}"),
    _c("lifecycle_consent_sms", "SMS consent: {v:.0f}"),
)
HYBRID_BEHAVIOR = (
    _l("behavior_recency_days", "last activity {v:.0f} days ago", 90),
    _l("behavior_events_7d", "{v:.0f} activities in 7 days", 7),
    _l("behavior_events_30d", "{v:.0f} activities in 30 days", 30),
    _l("behavior_active_days_30d", "active on {v:.0f} days of the last 30", 30),
    _l("behavior_content_30d", "{v:.0f} content downloads or webinars in 30 days", 30),
)
HYBRID_LIFECYCLE = (
    _l("lifecycle_stage", "funnel stage: {v}", dtype="category"),
    _l("lifecycle_tenure_days", "lead for {v:.0f} days"),
)

FEATURE_SETS: dict[str, FeatureSet] = {
    "b2b_v1": FeatureSet("b2b_v1", "b2b", "lead", FIT + LEAD_INTENT + ACCOUNT_INTENT + ENGAGEMENT),
    "b2c_v1": FeatureSet("b2c_v1", "b2c", "customer", B2C_BEHAVIOR + CART + B2C_LIFECYCLE),
    "hybrid_v1": FeatureSet(
        "hybrid_v1", "hybrid", "lead", HYBRID_BEHAVIOR + LEAD_INTENT + HYBRID_LIFECYCLE + FIT + ENGAGEMENT
    ),
}


def feature_set(name: str) -> FeatureSet:
    if name not in FEATURE_SETS:
        raise ValueError(f"unknown feature set {name!r}; known: {sorted(FEATURE_SETS)}")
    return FEATURE_SETS[name]
