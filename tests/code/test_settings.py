"""Settings come from the environment; the embedded defaults need no server."""

from __future__ import annotations

from leadscore.settings import Settings


def test_embedded_defaults_and_production_overrides(tmp_path):
    s = Settings.load({"LEADSCORE_HOME": str(tmp_path)})
    assert s.store_url == f"sqlite:///{tmp_path / 'leadscore.db'}"
    assert s.online_store_url == f"sqlite:///{tmp_path / 'online.db'}"
    assert (s.tracking_uri, s.dask_scheduler, s.context_memo_mb) == ("sqlite:///mlflow.db", None, 64)
    p = Settings.load(
        {
            "LEADSCORE_HOME": str(tmp_path),
            "LEADSCORE_STORE_URL": "postgresql://u@db/ls",
            "LEADSCORE_ONLINE_STORE_URL": "redis://cache:6379/0",
            "LEADSCORE_CONTEXT_MEMO_MB": "0",
            "LEADSCORE_DASK_SCHEDULER": "tcp://dask:8786",
        }
    )
    assert (p.store_url, p.online_store_url, p.context_memo_mb, p.dask_scheduler) == (
        "postgresql://u@db/ls",
        "redis://cache:6379/0",
        0,
        "tcp://dask:8786",
    )
