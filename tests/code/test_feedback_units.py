"""Feedback building blocks: SLA adherence and PSI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from feedback.report import sla_adherence
from leadscore.config import load_config
from model.drift import psi


def test_sla_adherence_per_route():
    conf = load_config("b2b")  # ae_direct 60 min, sdr_qualify 240 min, recycle has no SLA
    t = pd.Timestamp("2026-06-01 09:00")
    rows = pd.DataFrame(
        {
            "route": ["ae_direct", "ae_direct", "sdr_qualify", "recycle", "ae_direct"],
            "at": [t] * 5,
            "contacted_at": [t + pd.Timedelta(minutes=m) for m in (30, 90, 200, 10)] + [pd.NaT],
        }
    )
    s = sla_adherence(rows, conf)
    assert s["contacts_with_times"] == 3
    assert s["by_route"] == {"ae_direct": 0.5, "sdr_qualify": 1.0}
    assert s["met_share"] == pytest.approx(2 / 3)
    assert sla_adherence(rows.assign(contacted_at=pd.NaT), conf) == {"contacts_with_times": 0}


def test_psi_is_zero_for_the_same_distribution_and_grows_with_shift():
    e = np.full(10, 0.1)
    assert psi(e, e) == pytest.approx(0.0)
    shifted = np.r_[np.full(5, 0.02), np.full(5, 0.18)]
    assert psi(e, shifted) > 0.2
