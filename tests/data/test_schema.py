"""The canonical data model: every rule gives a clear error naming table, column, rule and rows."""

from __future__ import annotations

import io

import pandas as pd
import pytest

from leadscore.files import read_table
from leadscore.schema import TABLES, SchemaError, coerce, load_dataset

NOW = pd.Timestamp("2026-11-23")


def _leads(**override) -> pd.DataFrame:
    df = pd.DataFrame(
        {
            "lead_id": ["L1", "L2", "L3"],
            "account_id": ["A1", "A1", "A2"],
            "created_at": ["2026-01-01", "2026-01-02T10:00:00Z", "2026-01-03 08:00"],
            "source": ["web", None, "event"],
            "title": ["VP", "CTO", None],
            "seniority": ["vp", "cxo", None],
            "buying_role": ["economic_buyer", "champion", "user"],
            "email_domain_type": ["business", "free", "business"],
        }
    )
    for k, v in override.items():
        df[k] = v
    return df


def _err(df: pd.DataFrame, table: str = "leads", motion: str = "b2b") -> SchemaError:
    with pytest.raises(SchemaError) as info:
        coerce(TABLES[motion][table], df, NOW)
    return info.value


def test_valid_table_is_cast_to_canonical_types():
    out = coerce(TABLES["b2b"]["leads"], _leads(), NOW)
    assert str(out["created_at"].dtype) == "datetime64[s]"
    assert out["created_at"].iloc[1] == pd.Timestamp("2026-01-02 10:00:00")
    assert out["source"].isna().sum() == 1


@pytest.mark.parametrize(
    "override, column, rule",
    [
        ({"created_at": ["2026-01-01", "not a date", "2026-01-03"]}, "created_at", "unparseable timestamp"),
        ({"created_at": ["2026-01-01", "2031-01-01", "2026-01-03"]}, "created_at", "timestamp in the future"),
        ({"buying_role": ["economic_buyer", "wizard", "user"]}, "buying_role", "value not in"),
        ({"lead_id": ["L1", "L1", "L3"]}, "lead_id", "duplicate key"),
        ({"lead_id": ["L1", None, "L3"]}, "lead_id", "must not be empty"),  # (an empty account_id is matched)
        ({"email_domain_type": ["business", "free", "gmail"]}, "email_domain_type", "value not in"),
    ],
)
def test_each_rule_names_table_column_rule_and_rows(override, column, rule):
    err = _err(_leads(**override))
    assert (err.table, err.column) == ("leads", column)
    assert rule in err.rule
    assert 1 <= len(err.rows) <= 5
    assert f"leads.{column}" in str(err) and rule in str(err)


def test_missing_column_is_named():
    err = _err(_leads().drop(columns=["buying_role"]))
    assert err.column == "buying_role" and "required column missing" in err.rule
    one = pd.read_csv(io.StringIO(_leads().to_csv(sep=";", index=False)))  # a ';' CSV read with ','
    assert "the file reads as a single column: it looks ';'-separated" in _err(one).rule


def test_numbers_booleans_and_minimums():
    acc = pd.DataFrame(
        {
            "account_id": ["A1", "A2"],
            "name": ["x", "y"],
            "industry": [None, "software"],
            "employee_count": ["12", "lots"],
            "annual_revenue": [1.0, 2.0],
            "country": ["US", "US"],
            "region": ["NA", "NA"],
            "owner_id": [None, None],
            "territory": [None, None],
        }
    )
    assert _err(acc, "accounts").rule == "not a number"
    acc["employee_count"] = [12, -3]
    assert "below minimum" in _err(acc, "accounts").rule
    cust = pd.DataFrame(
        {
            "customer_id": ["C1"],
            "created_at": ["2026-01-01"],
            "channel": [None],
            "country": [None],
            "device": [None],
            "consent_email": ["maybe"],
            "consent_sms": ["no"],
        }
    )
    assert "not a boolean" in _err(cust, "customers", "b2c").rule
    cust["consent_email"] = ["yes"]
    out = coerce(TABLES["b2c"]["customers"], cust, NOW)
    assert bool(out["consent_email"].iloc[0]) and not bool(out["consent_sms"].iloc[0])


def test_at_most_five_rows_are_shown_but_all_are_counted():
    df = pd.concat([_leads()] * 4, ignore_index=True)
    df["lead_id"] = [f"L{i}" for i in range(len(df))]
    df["buying_role"] = "wizard"
    err = _err(df)
    assert len(err.rows) == 5 and "(12 rows" in str(err)


def test_leads_must_point_at_known_accounts(b2b_dir, tmp_path):
    for name in ("accounts", "events", "outcomes"):
        pd.read_parquet(b2b_dir / f"{name}.parquet").to_csv(tmp_path / f"{name}.csv", index=False)
    leads = pd.read_parquet(b2b_dir / "leads.parquet")
    leads.loc[0, "account_id"] = "A_missing"
    leads.to_csv(tmp_path / "leads.csv", index=False)
    with pytest.raises(SchemaError, match="leads.account_id: unknown account"):
        load_dataset(tmp_path, "b2b")


def test_readers_accept_csv_and_parquet(b2c_dir, tmp_path):
    for name in ("customers", "events", "orders", "outcomes"):
        pd.read_parquet(b2c_dir / f"{name}.parquet").to_csv(tmp_path / f"{name}.csv", index=False)
    a, b = load_dataset(b2c_dir, "b2c"), load_dataset(tmp_path, "b2c")
    for name in a:
        assert len(a[name]) == len(b[name])
        assert list(a[name].columns) == list(b[name].columns)
    pd.testing.assert_series_equal(a["events"]["ts"], b["events"]["ts"])


def test_unreadable_and_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_table(tmp_path / "nope.csv")
    (tmp_path / "x.xlsx").write_text("x")
    with pytest.raises(ValueError, match="unsupported format"):
        read_table(tmp_path / "x.xlsx")
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(ValueError, match="cannot read"):
        read_table(tmp_path / "bad.parquet")
    with pytest.raises(FileNotFoundError, match="table 'accounts' not found"):
        load_dataset(tmp_path, "b2b")


def test_a_csv_that_does_not_read_says_what_it_looks_like(tmp_path):
    # A European spreadsheet's export: ';' between fields, ',' in the numbers (read with the default ',').
    (tmp_path / "eu.csv").write_text("name;visits;rate\nAna;3;0,5\nBo;12,5;1,25\nCy;4;2\n")
    with pytest.raises(ValueError, match=r"it looks ';'-separated; it was read with sep=','"):
        read_table(tmp_path / "eu.csv")
    assert read_table(tmp_path / "eu.csv", sep=";", decimal=",")["rate"].tolist()[0] == 0.5
    # Another encoding: named, with the option that reads it.
    (tmp_path / "latin.csv").write_bytes("name,city\nAna,Mal\xe9\n".encode("cp1252"))
    with pytest.raises(
        ValueError, match=r"not UTF-8: give its encoding, e\.g\. read_options: \{encoding: cp1252\}"
    ):
        read_table(tmp_path / "latin.csv")
    assert read_table(tmp_path / "latin.csv", encoding="cp1252")["city"].tolist() == ["Malé"]
