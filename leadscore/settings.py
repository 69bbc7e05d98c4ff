"""Machine-specific settings, read from the environment (never from committed YAML).

Nothing here touches the disk on import; ``Settings.load()`` only resolves paths and URLs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Settings:
    """Where the project keeps its state.

    ``home``: folder for the embedded default stores (score log, online features, audit log).
    ``store_url``: the project's relational store (SQLite file under ``home`` or a PostgreSQL URL).
    ``online_store_url``: online feature store (SQLite under ``home``, ``redis://`` or ``postgresql://``).
    ``tracking_uri``: MLflow tracking/registry URI (MLflow's own default: ``sqlite:///mlflow.db``).
    ``conf_dir``: the per-motion YAML policies.
    ``dask_scheduler``: a Dask scheduler address for batch feature computation (``None``: in-process).
    ``context_memo_mb``: memory for decoded online contexts, per motion and serving worker (0: none).
    """

    home: Path
    store_url: str
    online_store_url: str
    tracking_uri: str
    conf_dir: Path
    dask_scheduler: str | None = None
    context_memo_mb: float = 64

    @classmethod
    def load(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        home = Path(env.get("LEADSCORE_HOME", PROJECT_ROOT / ".leadscore")).expanduser().resolve()
        return cls(
            home=home,
            store_url=env.get("LEADSCORE_STORE_URL", f"sqlite:///{home / 'leadscore.db'}"),
            online_store_url=env.get("LEADSCORE_ONLINE_STORE_URL", f"sqlite:///{home / 'online.db'}"),
            tracking_uri=env.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db"),
            conf_dir=Path(env.get("LEADSCORE_CONF_DIR", PROJECT_ROOT / "conf")).resolve(),
            dask_scheduler=env.get("LEADSCORE_DASK_SCHEDULER") or None,
            context_memo_mb=float(env.get("LEADSCORE_CONTEXT_MEMO_MB", "64")),
        )

    def ensure_home(self) -> Path:
        self.home.mkdir(parents=True, exist_ok=True)
        return self.home
