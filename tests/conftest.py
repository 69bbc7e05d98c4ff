"""Shared fixtures: small generated data sets (session-scoped) and an isolated project state per test run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from leadscore.synth import generate

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
PG_URL = os.environ.get("LEADSCORE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("LEADSCORE_TEST_REDIS", "redis://127.0.0.1:6379/15")


@pytest.fixture(autouse=True, scope="session")
def _isolated_state(tmp_path_factory):
    """Every test run keeps its MLflow store and LEADSCORE_HOME in a temporary folder."""
    root = tmp_path_factory.mktemp("state")
    old = {k: os.environ.get(k) for k in ("LEADSCORE_HOME", "MLFLOW_TRACKING_URI")}
    os.environ["LEADSCORE_HOME"] = str(root / "home")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"
    yield root
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def b2b_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("b2b")
    generate("b2b", 6000, 7, out)
    return out


@pytest.fixture(scope="session")
def b2c_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("b2c")
    generate("b2c", 6000, 7, out)
    return out


def data_dir(motion: str, b2b_dir: Path, b2c_dir: Path) -> Path:
    return b2c_dir if motion == "b2c" else b2b_dir


def pg_available() -> bool:
    try:
        import psycopg
        psycopg.connect(PG_URL, connect_timeout=2).close()
        return True
    except Exception:
        return False


def redis_available() -> bool:
    try:
        import redis
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping())
    except Exception:
        return False


@pytest.fixture(scope="session")
def trained(b2b_dir, b2c_dir, _isolated_state):
    """All three motions trained on the small data sets, champions registered, online stores materialized."""
    from features.batch import latest_time, prepare
    from features.online import materialize, open_store
    from leadscore.config import load_config
    from leadscore.schema import load_dataset
    from leadscore.settings import Settings
    from training.train import train_motion

    results = {}
    settings = Settings.load()
    settings.ensure_home()
    store = open_store(settings.online_store_url)
    for motion in ("b2b", "b2c", "hybrid"):
        folder = b2c_dir if motion == "b2c" else b2b_dir
        results[motion] = train_motion(motion, folder)
        p = prepare(motion, load_dataset(folder, motion))
        materialize(p, latest_time(p), load_config(motion), store)
    store.close()
    return results
