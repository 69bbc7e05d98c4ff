"""Machine-specific settings, read from the environment (never from committed YAML) when a command or the
service starts — never at import.

Every variable is ``LEADSCORE_<FIELD>`` (``MLFLOW_TRACKING_URI`` for the tracking store); a value that does not
fit names the variable and the value. Nothing here touches the disk; ``ensure_home`` creates the home folder.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from leadscore.errors import UserError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The motion configurations: conf/ of a source checkout, or the copy a wheel installs as leadscore/conf.
CONF_DIR = next((d for d in (PROJECT_ROOT / "conf", Path(__file__).resolve().parent / "conf") if d.is_dir()),
                PROJECT_ROOT / "conf")  # fmt: skip


def project_dir() -> Path:
    """Where the embedded defaults live (``.leadscore/``, ``mlflow.db``, ``mlruns/``): the source checkout this
    runs from, or — installed as a package — the working folder."""
    return PROJECT_ROOT if (PROJECT_ROOT / "pyproject.toml").is_file() else Path.cwd()


PREFIX = "LEADSCORE_"
_only_given: ContextVar[bool] = ContextVar("only_given", default=False)


class Settings(BaseSettings):
    """Where the project keeps its state and how the service runs.

    ``home``: folder for the embedded default stores (score log, online features, audit log).
    ``store_url``: the relational store (default: a SQLite file under ``home``; or a PostgreSQL URL).
    ``online_store_url``: online features (default: SQLite under ``home``; ``redis://`` or ``postgresql://``).
    ``tracking_uri``: MLflow tracking and registry (``MLFLOW_TRACKING_URI``; default ``sqlite:///mlflow.db``).
    ``conf_dir``: the per-motion YAML policies.
    ``dask_scheduler``: a Dask scheduler address for batch feature computation (unset: in-process).
    ``dask_workdir``: where the tables are written partitioned by entity for the cluster (default: under
    ``home``); on a real cluster, storage every worker reads (a shared volume).
    ``max_events_in_memory``: ``leadscore score`` on canonical tables with more events than this partitions
    them by entity on disk and scores one partition at a time in-process (memory stays flat; the output is in
    partition order).
    ``max_training_rows``: a distributed training set larger than this is fitted on a stratified sample of it
    (the sample's size is logged with the run).
    ``context_memo_mb``: memory for decoded online contexts, per motion and serving worker (0: none).
    ``reload_seconds``: how often the service polls the registry for a moved champion alias.
    ``realtime_batch``: most concurrent ``/score`` requests scored together.
    ``max_batch``: largest ``/score_batch`` list.
    ``max_body_mb``: the largest request body the service reads (413 past it).
    ``max_pending``: /score requests a worker holds waiting to be scored; past it, 503 with Retry-After.
    ``journal_fsync_seconds``: how often the score-log journal is fsynced (0: on every write); a killed process
    loses nothing either way, this bounds what a power loss can take.
    ``journal``: the score-log journal (default on). Off, a score is acknowledged before it is on disk — only to
    measure what durability costs, never in production.
    ``journal_max_mb``: unshipped score-log rows the journal may hold while the store is down; past it, scoring
    answers 503 instead of acknowledging a score it cannot keep.
    ``max_missing_inputs``, ``max_missing_weight``: batch scoring refuses a file that lacks more than this share
    of a model's inputs, or inputs that carried more than this share of its training gain (``--allow-missing``).
    ``webhook_url``, ``webhook_secret``: where trigger notifications go (a trigger may name its own URL) and the
    key they are signed with (``X-Leadscore-Signature``); ``webhook_max_attempts``: tries before a notification
    is dead-lettered (backoff doubles from 1 s); ``webhook_timeout``: seconds a receiver has to answer.
    ``switch_interval``: the service worker's GIL switch interval in seconds (the event loop gets the GIL back
    from the scoring thread within it).
    ``events_nice``: added to the nice value of a service worker's events thread (Linux; 0: as the process), so
    when the cores are full, ``/score`` requests get them first and events are taken in with what is left.
    """

    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="ignore", validate_default=True)

    home: Path = Field(default_factory=lambda: project_dir() / ".leadscore")
    store_url: str = ""
    online_store_url: str = ""
    tracking_uri: str = Field("sqlite:///mlflow.db", validation_alias=AliasChoices("MLFLOW_TRACKING_URI"))
    conf_dir: Path = CONF_DIR
    dask_scheduler: str | None = None
    dask_workdir: Path | None = None
    max_training_rows: int = Field(2_000_000, ge=1000)
    max_events_in_memory: int = Field(20_000_000, ge=1)
    context_memo_mb: float = Field(64, ge=0)
    reload_seconds: float = Field(30, gt=0)
    realtime_batch: int = Field(64, ge=1)
    max_batch: int = Field(1000, ge=1, le=100_000)
    max_body_mb: float = Field(16, gt=0)
    max_pending: int = Field(4096, ge=1)
    journal: bool = True
    journal_fsync_seconds: float = Field(1.0, ge=0)
    journal_max_mb: float = Field(1024, gt=0)
    switch_interval: float = Field(0.001, gt=0, le=1)
    events_nice: int = Field(5, ge=0, le=19)
    max_missing_inputs: float = Field(0.2, ge=0, le=1)
    max_missing_weight: float = Field(0.05, ge=0, le=1)
    webhook_url: str | None = None
    webhook_secret: str | None = None
    webhook_max_attempts: int = Field(8, ge=1)
    webhook_timeout: float = Field(5.0, gt=0)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The process environment, or (``load(env)``) only the mapping given."""
        return (init_settings,) if _only_given.get() else (init_settings, env_settings)

    @model_validator(mode="after")
    def _resolve(self) -> Settings:
        self.home = self.home.expanduser().resolve()
        self.conf_dir = self.conf_dir.expanduser().resolve()
        self.store_url = self.store_url or f"sqlite:///{self.home / 'leadscore.db'}"
        self.online_store_url = self.online_store_url or f"sqlite:///{self.home / 'online.db'}"
        self.dask_scheduler = self.dask_scheduler or None
        return self

    @staticmethod
    def variable(field: str) -> str:
        """The environment variable that sets ``field``."""
        return "MLFLOW_TRACKING_URI" if field == "tracking_uri" else PREFIX + field.upper()

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Settings from the process environment, or from ``env`` alone; a bad value is a ``UserError`` that names
        the variable and the value."""
        source = os.environ if env is None else env
        given = {name: source[var] for name in cls.model_fields if (var := cls.variable(name)) in source}
        kwargs: dict[str, Any] = {
            ("MLFLOW_TRACKING_URI" if k == "tracking_uri" else k): v for k, v in given.items()
        }
        token = _only_given.set(True)
        try:
            return cls(**kwargs)
        except ValidationError as exc:
            problems = []
            for e in exc.errors():
                field = str(e["loc"][0]) if e["loc"] else ""
                name = "tracking_uri" if field == "MLFLOW_TRACKING_URI" else field
                problems.append(f"{cls.variable(name)}={given.get(name)!r}: {e['msg']}")
            raise UserError("bad setting: " + "; ".join(problems)) from None
        finally:
            _only_given.reset(token)

    def ensure_home(self) -> Path:
        self.home.mkdir(parents=True, exist_ok=True)
        return self.home
