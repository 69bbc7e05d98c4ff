"""The hand-written peer: FastAPI + LightGBM, one feature vector in, one probability out (``/predict``), or a
list of them in one call (``/predict_batch``, one booster call on the matrix).

It computes no features, no calibration beyond the booster, no reasons and no routes — the floor of what a
scoring endpoint can cost. Loaded from the same champion's booster.
"""

from __future__ import annotations

import os

import lightgbm as lgb
import numpy as np
from fastapi import FastAPI
from pydantic import BaseModel

booster = lgb.Booster(model_file=os.environ["PEER_BOOSTER"])
app = FastAPI()


class Row(BaseModel):
    features: list[float | None]


@app.post("/predict")
def predict(row: Row) -> dict:
    x = np.array([[np.nan if v is None else v for v in row.features]], dtype=np.float64)
    return {"score": float(booster.predict(x, num_threads=1)[0])}


class Rows(BaseModel):
    rows: list[list[float | None]]


@app.post("/predict_batch")
def predict_batch(body: Rows) -> dict:
    x = np.array([[np.nan if v is None else v for v in r] for r in body.rows], dtype=np.float64)
    return {"scores": booster.predict(x, num_threads=1).tolist()}
