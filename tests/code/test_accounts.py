"""Leads without an account: matched by email domain, then company name + country; the rest counted and given an
account of their own; the features of a matched lead are those it has with its account id given."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.historical import features_as_of, latest_time
from features.prepare import prepare
from leadscore.accounts import UNMATCHED_PREFIX, company_key, email_domain, match_accounts, web_domain
from leadscore.config import load_config
from leadscore.schema import SchemaError, load_dataset


def test_keys_are_normalised():
    assert email_domain(" Ann.Lee@Acme.COM ") == "acme.com" and email_domain("no-at-sign") is None
    assert web_domain("https://www.Acme.com/about") == "acme.com" and web_domain("acme.com:443") == "acme.com"
    assert company_key("ACME, Inc.") == company_key("Acme Incorporated") == company_key("acme") == "acme"
    assert company_key("Müller & Söhne GmbH") == "müller and söhne"
    assert company_key("  ") is None


def _accounts() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "account_id": ["A1", "A2", "A3", "A4"],
            "name": ["Acme Inc.", "Globex GmbH", "Initech", "Initech LLC"],
            "country": ["US", "DE", "US", "UK"],
            "domain": ["acme.com", "https://www.globex.de", "initech.com", "initech.com"],
        }
    )


def test_domain_first_then_company_and_country_free_mail_and_ambiguity_never_match():
    leads = pd.DataFrame(
        {
            "lead_id": ["L1", "L2", "L3", "L4", "L5", "L6", "L7"],
            "account_id": [None, None, "A2", None, None, None, ""],
            "email": ["a@acme.com", "b@gmail.com", "c@acme.com", "d@initech.com", None, "f@other.io", None],
            "company": [None, "Globex", None, "Initech", "INITECH, L.L.C.", "Nobody Ltd", None],
            "country": [None, "de", None, "us", "UK", "US", None],
        }
    )
    out, accounts, r = match_accounts(leads, _accounts())
    got = dict(zip(out["lead_id"], out["account_id"], strict=True))
    assert got["L1"] == "A1"  # by domain
    assert got["L2"] == "A2"  # free mail: by company + country (case-insensitive)
    assert got["L3"] == "A2"  # given: left as it was
    assert got["L4"] == "A3"  # initech.com names two accounts: by company + country instead
    assert got["L5"] == "A4"  # legal form and punctuation dropped
    assert got["L6"] == UNMATCHED_PREFIX + "L6" and got["L7"] == UNMATCHED_PREFIX + "L7"
    assert (r.without_account, r.by_domain, r.by_company, r.unmatched_ids) == (6, 1, 3, ["L6", "L7"])
    assert r.ambiguous == 1 and r.match_rate == pytest.approx(4 / 6)
    assert set(accounts["account_id"]) == {"A1", "A2", "A3", "A4", "unmatched:L6", "unmatched:L7"}
    assert accounts.set_index("account_id").loc["unmatched:L6", "name"] == "Nobody Ltd"
    assert r.summary()["account_match_rate"] == pytest.approx(0.6667, abs=1e-4)


def test_leads_that_all_name_their_account_are_untouched():
    leads = pd.DataFrame({"lead_id": ["L1"], "account_id": ["A1"]})
    out, accounts, r = match_accounts(leads, _accounts())
    assert out is leads and accounts.shape == (4, 4) and r.summary() == {}


def test_a_matched_lead_gets_the_features_it_has_with_its_account_given(b2b_dir, tmp_path):
    """Blank the account of a third of the generated leads, give them an email at their account's domain (or,
    for some, only the company name and country, or nothing): the matched leads' features, fit and buying
    group included, equal those of the original data; the unmatched are scored on what they have."""
    for f in b2b_dir.glob("*.parquet"):
        (tmp_path / f.name).write_bytes(f.read_bytes())
    acc = pd.read_parquet(tmp_path / "accounts.parquet")
    acc["domain"] = acc["account_id"].str.lower() + ".example.com"
    acc.to_parquet(tmp_path / "accounts.parquet", index=False)
    leads = pd.read_parquet(tmp_path / "leads.parquet")
    rng = np.random.default_rng(0)
    pick = rng.random(len(leads))
    names = acc.set_index("account_id")
    by_mail, by_name, lost = pick < 0.2, (pick >= 0.2) & (pick < 0.3), (pick >= 0.3) & (pick < 0.32)
    leads["email"] = np.where(by_mail, "x@" + leads["account_id"].str.lower() + ".example.com", None)
    leads["company"] = np.where(by_name, names.loc[leads["account_id"], "name"].to_numpy(), None)
    leads["country"] = np.where(by_name, names.loc[leads["account_id"], "country"].to_numpy(), None)
    original = leads["account_id"].copy()
    leads.loc[by_mail | by_name | lost, "account_id"] = None
    leads.to_parquet(tmp_path / "leads.parquet", index=False)

    conf = load_config("b2b")
    before = prepare("b2b", load_dataset(b2b_dir, "b2b"))
    after = prepare("b2b", load_dataset(tmp_path, "b2b"))
    notes = after.notes
    assert notes["account_leads_without"] == int((by_mail | by_name | lost).sum())
    assert notes["account_matched_by_email_domain"] == int(by_mail.sum())
    # generated names are not unique per country, so a few name keys are ambiguous and stay unmatched
    assert notes["account_matched_by_company_and_country"] + notes["account_ambiguous_keys"] >= by_name.sum()
    assert notes["account_unmatched"] >= lost.sum() and notes["account_match_rate"] > 0.8
    t = latest_time(before)
    a = features_as_of(before, t, conf).set_index("lead_id")
    b = features_as_of(after, t, conf).set_index("lead_id").loc[a.index]
    matched = ~b["account_id"].str.startswith(UNMATCHED_PREFIX)
    assert (b.loc[matched, "account_id"] == original.set_axis(leads["lead_id"]).loc[a.index][matched]).all()
    # an unmatched lead's events count for its own account, not for the one it really belongs to
    short = set(a.loc[~matched, "account_id"])
    same = matched & ~a["account_id"].isin(short)
    assert same.sum() > 0.8 * len(a)
    pd.testing.assert_frame_equal(a[same], b[same], check_dtype=False)
    own = b.loc[~matched]
    assert len(own) and (own.filter(like="bg_").notna().all(axis=None))


def test_a_lead_naming_an_account_that_does_not_exist_is_still_refused(b2b_dir, tmp_path):
    for f in b2b_dir.glob("*.parquet"):
        (tmp_path / f.name).write_bytes(f.read_bytes())
    leads = pd.read_parquet(tmp_path / "leads.parquet")
    leads.loc[0, "account_id"] = "NOPE"
    leads.to_parquet(tmp_path / "leads.parquet", index=False)
    with pytest.raises(SchemaError, match="unknown account"):
        load_dataset(tmp_path, "b2b")
