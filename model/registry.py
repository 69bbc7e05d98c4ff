"""The MLflow registry is the only hand-off to serving: ``champion`` serves, ``challenger`` waits.

The first version of a name becomes champion (so a fresh demo serves); later versions become challenger and
replace the champion only through ``promote``, which is gated on the challenger's (most recent) holdout:
AUC no worse than a margin and ECE no worse than a margin, unless forced. MLflow keeps no history of alias
moves, so every move is appended to the audit log in the project's store.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import sys
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from leadscore.config import load_config
from leadscore.errors import UserError
from leadscore.settings import Settings
from leadscore.store import Store
from model import metrics

CHAMPION, CHALLENGER = "champion", "challenger"


def setup_mlflow() -> None:
    import mlflow

    uri = Settings.load().tracking_uri
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)


def client():
    from mlflow import MlflowClient

    setup_mlflow()
    return MlflowClient()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _who() -> str:
    return os.environ.get("LEADSCORE_USER") or getpass.getuser()


def audit(
    name: str,
    alias: str,
    from_v: str | None,
    to_v: str | None,
    action: str,
    why: str,
    metrics_: dict | None = None,
    store: Store | None = None,
) -> None:
    with Store.borrowed(store) as s:
        s.execute(
            "INSERT INTO alias_audit (at, who, model, alias, from_version, to_version, action, why, metrics) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                _now(),
                _who(),
                name,
                alias,
                from_v,
                to_v,
                action,
                why,
                json.dumps(metrics_ or {}, default=float),
            ),
        )


def audit_log(name: str | None = None, store: Store | None = None) -> list[dict]:
    with Store.borrowed(store) as s:
        if name:
            return s.query("SELECT * FROM alias_audit WHERE model = ? ORDER BY id", (name,))
        return s.query("SELECT * FROM alias_audit ORDER BY id")


class RegistryUnavailable(UserError):
    """The registry could not be reached (as opposed to: it has no such model or alias)."""


NOT_FOUND = {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"}


def alias_version(name: str, alias: str) -> str | None:
    """The version ``alias`` points at; None when the model or the alias does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client().get_model_version_by_alias(name, alias).version)
    except MlflowException as exc:
        if exc.error_code in NOT_FOUND:
            return None
        raise RegistryUnavailable(
            f"the model registry at {Settings.load().tracking_uri} did not answer: {str(exc)[:300]}"
        ) from None


def after_registration(name: str, version: str, test_metrics: dict, run_id: str) -> str:
    c = client()
    c.set_model_version_tag(name, version, "run_id", run_id)
    champion = alias_version(name, CHAMPION)
    if champion is None:
        c.set_registered_model_alias(name, CHAMPION, version)
        audit(
            name, CHAMPION, None, version, "initial", "first version of this model", {"after": test_metrics}
        )
        return CHAMPION
    previous = alias_version(name, CHALLENGER)
    c.set_registered_model_alias(name, CHALLENGER, version)
    audit(
        name,
        CHALLENGER,
        previous,
        version,
        "register",
        "new version awaits the gated promotion",
        {"after": test_metrics},
    )
    return CHALLENGER


def resolve(ref: str) -> tuple[str, str]:
    """``NAME``, ``NAME@alias`` or ``NAME/version`` → (name, version)."""
    if "@" in ref:
        name, alias = ref.split("@", 1)
        v = alias_version(name, alias)
        if v is None:
            raise UserError(f"model {name!r} has no version with alias {alias!r}")
        return name, v
    if "/" in ref:
        name, v = ref.rsplit("/", 1)
        return name, v
    v = alias_version(ref, CHAMPION)
    if v is None:
        raise UserError(f"model {ref!r} has no champion; train one first (leadscore train …)")
    return ref, v


def load(ref: str):
    """The unwrapped ``LeadScoreModel`` of ``NAME[@alias|/version]`` and its version."""

    name, version = resolve(ref)
    setup_mlflow()
    try:
        return _unwrapped(f"models:/{name}/{version}"), version
    except Exception as exc:
        raise UserError(f"cannot load model {name} version {version}: {exc}") from None


def _unwrapped(uri: str) -> Any:
    """The ``LeadScoreModel`` behind a pyfunc. A model logged with its code puts that code first on ``sys.path``
    while it loads; this project's modules are already imported here, so the path is put back as it was (later
    imports come from the installed project, not from whichever model loaded last)."""
    import mlflow.pyfunc

    import model.artifact  # noqa: F401  # the classes the pickle names, from this project

    saved = list(sys.path)
    try:
        return mlflow.pyfunc.load_model(uri).unwrap_python_model()
    finally:
        sys.path[:] = saved


def load_cached(name: str, version: str, cache: Path) -> Any:
    """Serving's copy of a registered version: downloaded once into ``cache/NAME/VERSION`` and loaded from there,
    so that a service can start on it when the registry is down (``cached_version`` says which one it served)."""
    import mlflow.artifacts
    import mlflow.pyfunc

    local = cache / name / version
    if not (local / "MLmodel").exists():
        setup_mlflow()
        tmp = cache / name / f".{version}.{os.getpid()}.{threading.get_ident()}.tmp"  # a thread's own
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            got = Path(
                mlflow.artifacts.download_artifacts(
                    artifact_uri=f"models:/{name}/{version}", dst_path=str(tmp)
                )
            )
            src = got if (got / "MLmodel").exists() else next(p.parent for p in got.rglob("MLmodel"))
            place(src, local)
        except Exception as exc:
            raise UserError(f"cannot load model {name} version {version}: {exc}") from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    loaded = _unwrapped(str(local))
    (cache / name / "serving").write_text(version)
    return loaded


def place(src: Path, local: Path) -> None:
    """A complete download ``src`` renamed to ``local``. A directory rename is all or nothing, so ``local`` is
    either absent or complete; when another worker placed its copy first (two workers start on the same new
    version at once), the rename fails and that copy is kept, never deleted under the worker loading it. A copy
    without ``MLmodel`` (interrupted under an earlier release, or a hand's) is moved aside first."""
    for _ in range(3):
        try:
            os.replace(src, local)
            return
        except OSError:
            if (local / "MLmodel").exists():
                return  # (``src`` goes with the caller's temporary folder)
            if not local.exists():
                raise
            aside = local.with_name(f".{local.name}.{os.getpid()}.{threading.get_ident()}.old")
            os.replace(local, aside)
            shutil.rmtree(aside, ignore_errors=True)
    os.replace(src, local)


def cached_version(name: str, cache: Path) -> str | None:
    """The version of ``name`` this machine's service last loaded (its copy is in ``cache``)."""
    try:
        version = (cache / name / "serving").read_text().strip()
    except FileNotFoundError:
        return None
    return version if (cache / name / version / "MLmodel").exists() else None


def holdout(name: str, version: str) -> pd.DataFrame:
    import mlflow

    run_id = client().get_model_version(name, version).run_id
    setup_mlflow()
    path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="holdout/holdout.parquet")
    return pd.read_parquet(path)


def compare(name: str, versions: list[str], data: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Metrics of several versions on the same labelled rows."""
    y = data["label"].to_numpy()
    X = data.drop(columns=[c for c in ("label", "label_value") if c in data.columns])
    out = {}
    for v in versions:
        model, _ = load(f"{name}/{v}")
        out[v] = metrics.core(y, model.predict(None, X))
    return out


@dataclass
class PromotionDecision:
    name: str
    champion: str | None
    challenger: str
    promoted: bool
    reasons: list[str]
    metrics: dict[str, dict[str, float]]


def gate(name: str, champion: str, challenger: str, data: pd.DataFrame | None = None) -> PromotionDecision:
    """The evidence: both versions on the challenger's (most recent) holdout, or on ``data`` if given."""
    c = client()
    motion = c.get_model_version(name, challenger).tags.get("motion") or _motion_of(name, challenger)
    conf = load_config(motion)
    data = holdout(name, challenger) if data is None else data
    m = compare(name, [champion, challenger], data)
    a, b = m[champion], m[challenger]
    reasons = []
    ok_auc = b["auc"] >= a["auc"] - conf.promotion.auc_margin
    ok_ece = b["ece"] <= a["ece"] + conf.promotion.ece_margin
    reasons.append(
        f"AUC {b['auc']:.4f} vs champion {a['auc']:.4f} (margin {conf.promotion.auc_margin}): "
        + ("ok" if ok_auc else "worse")
    )
    reasons.append(
        f"ECE {b['ece']:.4f} vs champion {a['ece']:.4f} (margin {conf.promotion.ece_margin}): "
        + ("ok" if ok_ece else "worse")
    )
    return PromotionDecision(name, champion, challenger, ok_auc and ok_ece, reasons, m)


def test_auc(name: str, version: str) -> float | None:
    """The AUC a registered version reached on its test period at training (None if it was not logged)."""
    return client().get_run(client().get_model_version(name, version).run_id).data.metrics.get("test_auc")


def _motion_of(name: str, version: str) -> str:
    run = client().get_run(client().get_model_version(name, version).run_id)
    return run.data.tags.get("motion", "b2b")


def promote(
    name: str,
    version: str | None = None,
    force: bool = False,
    why: str = "",
    data: pd.DataFrame | None = None,
) -> PromotionDecision:
    champion = alias_version(name, CHAMPION)
    challenger = version or alias_version(name, CHALLENGER)
    if challenger is None:
        raise UserError(f"model {name!r} has no challenger to promote")
    if champion == challenger:
        raise UserError(f"version {challenger} of {name!r} is already the champion")
    if champion is None:
        d = PromotionDecision(name, None, challenger, True, ["no champion yet"], {})
    else:
        d = gate(name, champion, challenger, data)
    if force and not d.promoted:
        d.promoted, d.reasons = True, d.reasons + ["forced by the operator"]
    c = client()
    evidence = {"before": d.metrics.get(champion or "", {}), "after": d.metrics.get(challenger, {})}
    if d.promoted:
        c.set_registered_model_alias(name, CHAMPION, challenger)
        if alias_version(name, CHALLENGER) == challenger:
            c.delete_registered_model_alias(name, CHALLENGER)
        audit(
            name,
            CHAMPION,
            champion,
            challenger,
            "force-promote" if force else "promote",
            why or "; ".join(d.reasons),
            evidence,
        )
    else:
        audit(name, CHAMPION, champion, champion, "refused", "; ".join(d.reasons), evidence)
    return d


def rollback(name: str, why: str = "") -> tuple[str, str]:
    """Point champion back at the version it replaced last (from the audit log)."""
    current = alias_version(name, CHAMPION)
    if current is None:
        raise UserError(f"model {name!r} has no champion to roll back")
    moves = [
        r
        for r in audit_log(name)
        if r["alias"] == CHAMPION
        and r["action"] in ("promote", "force-promote", "rollback")
        and r["to_version"] == current
        and r["from_version"]
    ]
    if not moves:
        raise UserError(f"model {name!r}: no earlier champion to roll back to")
    previous = moves[-1]["from_version"]
    client().set_registered_model_alias(name, CHAMPION, previous)
    audit(name, CHAMPION, current, previous, "rollback", why or "operator rollback")
    return current, previous


def list_versions(name: str | None = None) -> list[dict]:
    c = client()
    names = [name] if name else [m.name for m in c.search_registered_models()]
    rows = []
    for n in names:
        try:
            versions = c.search_model_versions(f"name='{n}'")
        except Exception:
            raise UserError(f"no registered model {n!r}") from None
        if not versions:
            raise UserError(f"no registered model {n!r}")
        for found in sorted(versions, key=lambda v: int(v.version)):
            mv = c.get_model_version(n, found.version)  # search results carry no aliases
            run = c.get_run(mv.run_id)
            m = run.data.metrics
            rows.append(
                {
                    "model": n,
                    "version": mv.version,
                    "aliases": ",".join(mv.aliases),
                    "motion": run.data.tags.get("motion", ""),
                    "auc": m.get("test_auc", np.nan),
                    "ece": m.get("test_ece", np.nan),
                    "lr_auc": m.get("logistic_auc", np.nan),
                    "created": datetime.fromtimestamp(mv.creation_timestamp / 1000, UTC).strftime(
                        "%Y-%m-%d %H:%M"
                    ),
                }
            )
    return rows
