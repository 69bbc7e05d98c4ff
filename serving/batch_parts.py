"""What every batch-scoring path shares: a chunk of feature rows scored, explained and routed as columns, the
output file written chunk by chunk, the chunk's score-log rows, and the run recorded in MLflow."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from model.artifact import Coverage
from serving.log_rows import batches
from serving.routing import route_names


def score_chunk(model: Any, conf: Any, part: pd.DataFrame, ids: np.ndarray, id_name: str,
                consent: tuple[np.ndarray, np.ndarray] | None, reasons: int,
                threads: int = 1) -> tuple[pd.DataFrame, dict]:  # fmt: skip
    """One chunk scored, explained (a line of reasons per row) and routed, all on columns; and the readable
    model inputs the score log keeps. ``threads``: see ``LeadScoreModel.contributions``."""
    X = model.preprocessor.transform(part)
    scored = model.score_matrix(X, reasons, worded="text", threads=threads)
    shown = model.preprocessor.display_columns(X)  # what the model saw, readable (levels, not codes)
    rules = shown | (
        {c: part[c].to_numpy() for c in part.columns if c not in shown} if model.feature_set else {}
    )
    routes = route_names(
        conf, tiers=scored.tier, features=rules, expected_value=scored.expected_value,
        stages=rules.get("lifecycle_stage"),
        consent_email=None if consent is None else consent[0].tolist(),
        consent_sms=None if consent is None else consent[1].tolist(),
    )  # fmt: skip
    result = pd.DataFrame({
        id_name: ids, "score": scored.score, "score_100": scored.score_100, "tier": scored.tier, "route": routes,
        "reasons": scored.texts if scored.texts is not None else [""] * len(X),
    })  # fmt: skip
    return result, shown


class Writer:
    """The output file written chunk by chunk (Parquet row groups, or CSV), in place only once complete."""

    def __init__(self, out: Path):
        self.out, self.tmp = out, out.with_name(f".{out.name}.partial")
        self._pq: Any = None

    def write(self, part: pd.DataFrame) -> None:
        if self.out.suffix == ".parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(part, preserve_index=False)
            if self._pq is None:
                self._pq = pq.ParquetWriter(self.tmp, table.schema)
            self._pq.write_table(table)
        else:
            part.to_csv(self.tmp, index=False, mode="a" if self.tmp.exists() else "w",
                        header=not self.tmp.exists())  # fmt: skip

    def close(self) -> None:
        if self._pq is not None:
            self._pq.close()
        if not self.tmp.exists():  # nothing to score: an empty file with the columns
            self.write(pd.DataFrame(columns=["score"]))
            if self._pq is not None:
                self._pq.close()
        self.tmp.replace(self.out)

    def abort(self) -> None:
        if self._pq is not None:
            self._pq.close()
        self.tmp.unlink(missing_ok=True)


def chunk_log_batches(batch: str, start: int, as_of: np.ndarray, motion: str, name: str, version: str,
                      result: pd.DataFrame, id_name: str, shown: dict[str, np.ndarray]) -> list[tuple]:  # fmt: skip
    """A chunk's score log as score batches (its scores in columns, a few store rows for the whole chunk)."""
    n = len(result)
    return batches(motion, name, version, "batch", [f"{batch}-{i}" for i in range(start, start + n)], as_of,
                   result[id_name].astype(str).to_numpy(dtype=object), result["score"].to_numpy(dtype=np.float64),
                   result["tier"].to_numpy(dtype=object), result["route"].to_numpy(dtype=object), shown)  # fmt: skip


def track_run(name: str, version: str, data: Path, result: pd.DataFrame, coverage: Coverage | None) -> None:
    """The batch run in MLflow (experiment ``leadscore-scoring-NAME``): what was scored, with what, and which
    model inputs the file lacked."""
    import mlflow

    from model.registry import setup_mlflow

    setup_mlflow()
    mlflow.set_experiment(f"leadscore-scoring-{name}")
    with mlflow.start_run(run_name=f"score-{name}-v{version}"):
        mlflow.set_tags({"kind": "batch-scoring", "model_name": name, "model_version": version})
        mlflow.log_params(
            {"data": str(data)[:500], "missing_inputs": ", ".join(result.attrs["missing_inputs"])[:500]}
        )
        mlflow.log_metrics(
            {"rows": float(result.attrs["rows"]), "missing_inputs": float(len(result.attrs["missing_inputs"])),
             "missing_weight": coverage.missing_weight if coverage else 0.0}
            | {f"tier_{k}": float(v) for k, v in result.attrs["tiers"].items()}
        )  # fmt: skip
