"""Holdout metrics: AUC and log loss, overall and per slice."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import log_loss, roc_auc_score


def auc_and_log_loss(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """(ROC AUC, log loss) of probabilities p against 0/1 labels y."""
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return float(roc_auc_score(y, p)), float(log_loss(y, p, labels=[0, 1]))


def slice_aucs(frame: pd.DataFrame, columns: list[str], y: np.ndarray, p: np.ndarray,
               min_rows: int) -> dict[str, float]:
    """AUC per "column=value" slice that has at least min_rows rows and both classes."""
    out: dict[str, float] = {}
    for col in columns:
        values = frame[col].astype("string").fillna("<null>").to_numpy()
        for value in pd.unique(values):
            mask = values == value
            if mask.sum() >= min_rows and 0 < y[mask].sum() < mask.sum():
                out[f"{col}={value}"] = float(roc_auc_score(y[mask], p[mask]))
    return out
