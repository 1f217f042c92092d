"""Drift statistics with Evidently: a day's features and scores against the champion's reference.

Each numeric column is compared by the normed Wasserstein distance and each categorical one by the
Jensen-Shannon distance, the tests Evidently itself picks for references over 1000 rows, named here
so a short reference does not switch them to p-values. Distances, unlike p-values, do not call ever
smaller shifts significant as samples grow, so a big day does not drift on noise; days with too few
rows are not judged at all, so a small day does not look drifted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

SCORE = "__score__"  # the model's score column beside the features
NUM_METHOD = "wasserstein"  # Evidently's normed Wasserstein distance, for numeric columns and SCORE
CAT_METHOD = "jensenshannon"  # Evidently's Jensen-Shannon distance, for categorical columns


@dataclass(frozen=True)
class ColumnDrift:
    """One column's drift: Evidently's method, score and threshold, and whether it drifted."""

    column: str
    method: str
    score: float
    threshold: float
    drifted: bool

    def describe(self) -> str:
        return f"{self.column} {self.score:.3f} ({self.method} > {self.threshold:.3g})" if self.drifted \
            else f"{self.column} {self.score:.3f}"


@dataclass
class DriftReport:
    """What one drift check found; `data_drift` and `prediction_drift` are None when not judged."""

    rows: int
    reference_rows: int
    columns: dict[str, ColumnDrift] = field(default_factory=dict)
    prediction: ColumnDrift | None = None
    data_drift: bool | None = None
    prediction_drift: bool | None = None
    share: float = 0.0
    share_threshold: float | None = None  # the calibrated share beyond which data drifted (None: fixed rule)
    html: Path | None = None

    @property
    def drifted(self) -> list[ColumnDrift]:
        """Drifted feature columns, largest score first."""
        return sorted((c for c in self.columns.values() if c.drifted), key=lambda c: -c.score)


def check(reference: pd.DataFrame, current: pd.DataFrame, *, numeric: list[str], categorical: list[str],
          feature_share: float, num_threshold: float, cat_threshold: float, prediction_threshold: float,
          min_rows: int, html: Path | None = None, per_column_threshold: dict[str, float] | None = None
          ) -> DriftReport:
    """Compare `current` with `reference` feature by feature and on the SCORE column; save the HTML.

    Both frames hold the feature columns and SCORE. With fewer than `min_rows` current rows the
    statistics are still reported but nothing is judged (data_drift and prediction_drift stay None).
    `per_column_threshold` (calibrated thresholds, by column and SCORE) replaces the fixed ones where given.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    features = [*numeric, *categorical]
    definition = DataDefinition(numerical_columns=[*numeric, SCORE], categorical_columns=categorical)
    columns = [*features, SCORE]
    # Distances, named rather than left to Evidently: its own pick turns to p-value tests when the
    # reference has 1000 rows or fewer (a young champion's short training window).
    per_column = per_column_threshold or {}
    report = Report([
        DataDriftPreset(columns=features, drift_share=feature_share, num_method=NUM_METHOD,
                        num_threshold=num_threshold, cat_method=CAT_METHOD, cat_threshold=cat_threshold,
                        per_column_threshold={c: t for c, t in per_column.items() if c in features} or None),
        ValueDrift(column=SCORE, method=NUM_METHOD, threshold=per_column.get(SCORE, prediction_threshold)),
    ], include_tests=True)
    snapshot = report.run(Dataset.from_pandas(as_kinds(current[columns], categorical), data_definition=definition),
                          Dataset.from_pandas(as_kinds(reference[columns], categorical), data_definition=definition))
    found = _column_drifts(snapshot.dict())
    out = DriftReport(rows=len(current), reference_rows=len(reference),
                      columns={c: found[c] for c in features if c in found}, prediction=found.get(SCORE))
    out.share = len(out.drifted) / max(len(features), 1)
    if len(current) >= min_rows:
        out.data_drift = out.share >= feature_share
        out.prediction_drift = bool(out.prediction and out.prediction.drifted)
    if html is not None:
        html.parent.mkdir(parents=True, exist_ok=True)
        snapshot.save_html(str(html))
        out.html = html
    return out


def as_kinds(frame: pd.DataFrame, categorical: list[str]) -> pd.DataFrame:
    """A copy with the categorical columns as text, as `check` hands them to Evidently.

    Categories as text (None stays missing): Evidently must not read codes as numbers.
    """
    frame = frame.copy()
    for col in categorical:
        frame[col] = frame[col].astype(object).where(frame[col].notna(), None).map(
            lambda v: v if v is None else str(v))
    return frame


def column_distance(reference: pd.Series, current: pd.Series, *, categorical: bool) -> float:
    """The distance `check` reports for one column, without building a Report (about 1 ms, not 100s of ms).

    Evidently's own registered test (NUM_METHOD or CAT_METHOD), called as its ValueDrift calls it:
    infinities and missing values dropped from both sides first. Categorical series must already be
    text (`as_kinds`). tests/unit/test_drift_calibration.py checks it against `check`'s scores.
    """
    from evidently.legacy.calculations.stattests.registry import get_registered_stattest
    from evidently.legacy.core import ColumnType

    kind = ColumnType.Categorical if categorical else ColumnType.Numerical
    ref, cur = (s.replace([-np.inf, np.inf], np.nan).dropna() for s in (reference, current))
    if ref.empty or cur.empty:
        raise ValueError(f"column {reference.name!r} has no values in the {'reference' if ref.empty else 'current'} "
                         "rows: nothing to compare")
    test = get_registered_stattest(CAT_METHOD if categorical else NUM_METHOD, kind)
    return float(test(ref, cur, kind, None).drift_score)


def _column_drifts(result: dict[str, Any]) -> dict[str, ColumnDrift]:
    """Column -> drift, from a snapshot's metrics (scores, method, threshold) and tests (pass or fail)."""
    values: dict[str, dict[str, Any]] = {}
    for metric in result["metrics"]:
        config = metric["config"]
        if config.get("type", "").endswith(":ValueDrift"):
            values[metric["id"]] = {"column": config["column"], "method": config.get("method") or "?",
                                    "threshold": float(config.get("threshold") or 0.0), "score": float(metric["value"])}
    out: dict[str, ColumnDrift] = {}
    for test in result["tests"]:
        metric_id = test.get("metric_config", {}).get("metric_id")
        if metric_id in values:
            v = values[metric_id]
            out[v["column"]] = ColumnDrift(v["column"], v["method"], v["score"], v["threshold"],
                                           drifted=test["status"] == "FAIL")
    missing = [v["column"] for k, v in values.items() if v["column"] not in out]
    if missing:
        raise RuntimeError(f"Evidently gave no drift test for column(s) {missing}")
    return out
