"""Leads without an account: B2B exports often carry a lead's email or company but no account id.

Such a lead is matched to an account by its email's domain (against the accounts' ``domain`` or ``website``),
then by its normalised company name and country (against the accounts' ``name`` and ``country``); a key that
fits more than one account matches none (counted as ambiguous). Free-mail domains never match. A lead that is
still unmatched gets an account of its own (``unmatched:<lead_id>``, firmographics unknown), so it is scored on
what it has instead of being dropped, and is counted and listed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pandas as pd

FREE_MAIL = frozenset(
    "gmail.com googlemail.com yahoo.com yahoo.co.uk hotmail.com hotmail.co.uk outlook.com live.com msn.com "
    "aol.com icloud.com me.com mac.com proton.me protonmail.com gmx.de gmx.net web.de mail.ru yandex.ru "
    "qq.com 163.com 126.com zoho.com".split()
)
_LEGAL = re.compile(
    r"\b(inc|incorporated|llc|l\.l\.c|ltd|limited|corp|corporation|co|company|plc|gmbh|ag|sa|s\.a|sas|bv|nv|"
    r"oy|ab|as|srl|spa|pty|kk|llp|lp)\b\.?"
)
UNMATCHED_PREFIX = "unmatched:"


def email_domain(email: object) -> str | None:
    """The domain of an email address, lower-case; None for a missing or malformed one."""
    if not isinstance(email, str) or "@" not in email:
        return None
    d = email.rsplit("@", 1)[1].strip().lower().rstrip(".")
    return d or None


def web_domain(site: object) -> str | None:
    """A website or domain as a bare domain: scheme, ``www.``, path and port dropped."""
    if not isinstance(site, str) or not site.strip():
        return None
    d = re.sub(r"^[a-z]+://", "", site.strip().lower()).split("/")[0].split(":")[0]
    return d.removeprefix("www.") or None


def company_key(name: object) -> str | None:
    """A company name as a comparable key: lower-case, accents and punctuation dropped, legal forms removed."""
    if not isinstance(name, str) or not name.strip():
        return None
    t = name.lower().replace("&", " and ")
    t = _LEGAL.sub(" ", t)
    t = re.sub(r"[^\w ]+", " ", t)
    t = " ".join(t.split())
    return t or None


def _country(v: object) -> str:
    return v.strip().lower() if isinstance(v, str) else ""


@dataclass
class AccountMatch:
    """How the leads without an account were matched."""

    leads: int = 0  # every lead
    without_account: int = 0
    by_domain: int = 0
    by_company: int = 0
    ambiguous: int = 0  # a key that fits more than one account
    unmatched_ids: list[str] = field(default_factory=list)

    @property
    def matched(self) -> int:
        return self.by_domain + self.by_company

    @property
    def match_rate(self) -> float:
        return self.matched / self.without_account if self.without_account else 1.0

    def summary(self) -> dict[str, int | float | str]:
        if not self.without_account:
            return {}
        return {  # names MLflow takes as parameters too
            "account_leads_without": self.without_account,
            "account_matched_by_email_domain": self.by_domain,
            "account_matched_by_company_and_country": self.by_company,
            "account_ambiguous_keys": self.ambiguous,
            "account_match_rate": round(self.match_rate, 4),
            "account_unmatched": len(self.unmatched_ids),
            "account_unmatched_first_ids": " ".join(self.unmatched_ids[:5]),
        }


def _unique_index(keys: pd.Series, ids: pd.Series) -> tuple[dict, set]:
    """key → account id for keys that name exactly one account; the keys that name several."""
    frame = pd.DataFrame({"k": keys, "id": ids}).dropna().drop_duplicates()
    counts = frame["k"].value_counts()
    several = set(counts.index[counts > 1])
    one = frame[~frame["k"].isin(several)]
    return dict(zip(one["k"], one["id"], strict=True)), several


def match_accounts(
    leads: pd.DataFrame, accounts: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame, AccountMatch]:
    """Leads with ``account_id`` filled where it was empty, accounts with one of its own for each lead still
    unmatched, and the report. Leads that name an account are left as they are."""
    report = AccountMatch(leads=len(leads))
    aid = leads["account_id"] if "account_id" in leads else pd.Series(None, index=leads.index, dtype=object)
    empty = aid.isna() | (aid.astype("str").str.strip() == "")
    report.without_account = int(empty.sum())
    if not report.without_account:
        return leads, accounts, report
    out = leads.copy()
    out["account_id"] = aid.where(~empty, None).astype(object)
    todo = out.index[empty.to_numpy()]
    site = next((c for c in ("domain", "website") if c in accounts), None)
    if site and "email" in out:
        by_domain, several = _unique_index(accounts[site].map(web_domain), accounts["account_id"])
        doms = out.loc[todo, "email"].map(email_domain)
        usable = doms.notna() & ~doms.isin(FREE_MAIL)
        hit = doms[usable].map(by_domain).dropna()
        out.loc[hit.index, "account_id"] = hit
        report.by_domain = len(hit)
        report.ambiguous += int(doms[usable].isin(several).sum())
        todo = todo.difference(hit.index)
    if len(todo) and "company" in out and "name" in accounts:
        acc_country = accounts["country"].map(_country) if "country" in accounts else ""
        keys = accounts["name"].map(company_key) + "|" + acc_country
        by_name, several = _unique_index(keys, accounts["account_id"])
        lead_country = out.loc[todo, "country"].map(_country) if "country" in out else ""
        lkeys = out.loc[todo, "company"].map(company_key) + "|" + lead_country
        hit = lkeys.map(by_name).dropna()
        out.loc[hit.index, "account_id"] = hit
        report.by_company = len(hit)
        report.ambiguous += int(lkeys.isin(several).sum())
        todo = todo.difference(hit.index)
    if len(todo):
        own = UNMATCHED_PREFIX + out.loc[todo, "lead_id"].astype("str")
        out.loc[todo, "account_id"] = own
        report.unmatched_ids = out.loc[todo, "lead_id"].astype("str").tolist()
        extra = pd.DataFrame({"account_id": own.to_numpy(), "name": out.loc[todo, "company"].to_numpy()
                              if "company" in out else None})  # fmt: skip
        if "country" in out and "country" in accounts:
            extra["country"] = out.loc[todo, "country"].to_numpy()
        extra = extra.reindex(columns=accounts.columns).astype(
            {c: accounts[c].dtype for c in accounts.columns}, errors="ignore"
        )
        accounts = pd.concat([accounts, extra], ignore_index=True)
    out["account_id"] = out["account_id"].astype(
        leads["account_id"].dtype if "account_id" in leads else "str"
    )
    return out, accounts, report
