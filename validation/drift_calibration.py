"""Drift thresholds calibrated from the reference itself, and a pooled, confidence-bounded AUC drop.

A fixed threshold (a normed Wasserstein distance of 1.0, say) means a different false-alarm rate on
every dataset and feature: a feature that wanders from day to day alarms often, a steady one never
moves far enough. `calibrate` instead measures the spread between day-sized samples of the reference
window (each sample against the rest, with the very distances `check` reports) and sets each
threshold at a high quantile of that spread: per feature, for the share of features beyond their
threshold, for the worst feature's distance relative to its threshold, and for the score distance.
A day's data drifts when its share of features beyond their thresholds lies above the share's
threshold (a broad shift) or its worst feature lies above the worst's threshold (one feature far
off: a category mix collapsed, a unit changed); its scores drift when their distance lies above
theirs. Always strictly above, so on a stationary stream each statistic alarms on about
`expected_rate` of the days; the k-of-n rule and the cooldown of validation/drift_policy.py then act
on those daily alarms.

The thresholds sit at a conformal order statistic of the null values, not an interpolated quantile:
with m samples the k-th smallest, k = ceil(q (m + 1)), exceeded by a new null day with probability
1 - k / (m + 1) whatever the distribution. With too few samples for q (m + 1 < 1 / (1 - q)) the
threshold is the largest null value and the rate is 1 / (m + 1): 56 reference days give 1.75% per
statistic at q = 0.99, which `Calibration.expected_rate` states.

`Calibration` is small and JSON-serialisable: it is meant to be stored with the champion so a drift
verdict can be reproduced. `pooled_auc_drop` judges performance on enough labels: it pools labelled
days until both classes are numerous and flags a drop only when its lower confidence bound clears.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from nightshift.metrics import auc_and_log_loss
from validation.drift import CAT_METHOD, NUM_METHOD, SCORE, as_kinds, column_distance
from validation.drift_policy import auc_standard_error

MIN_SAMPLES = 7  # fewer null samples give a threshold that is just the largest of a handful of values
FORMAT = 1  # the layout of Calibration.to_json; bump when a field changes meaning


@dataclass(frozen=True)
class Calibration:
    """Thresholds calibrated on one reference, with what is needed to reproduce them.

    `thresholds` maps each feature to its distance threshold; `share` is the threshold of the share of
    features beyond theirs; `score` that of the score distance (None when no score was calibrated).
    `rows_per_sample` is the median size of the null samples: the thresholds hold for judged days of
    about that size (distances shrink as days grow, so a much bigger day is judged too leniently).
    """

    thresholds: dict[str, float]
    share: float
    worst: float  # threshold of the largest feature distance relative to its own threshold
    score: float | None
    quantile: float
    samples: int
    expected_rate: float  # chance that a stationary day exceeds one statistic's threshold
    rows_per_sample: int
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    score_column: str | None
    day_column: str | None  # None: samples were random draws of rows_per_sample rows
    seed: int
    library: str  # "evidently <version>": the distances come from its registered tests
    row_fraction: float = 1.0  # the reference kept this share of each day's rows: judge days sampled alike
    methods: dict[str, str] = field(default_factory=lambda: {"numeric": NUM_METHOD, "categorical": CAT_METHOD})
    format: int = FORMAT

    def to_json(self) -> str:
        """The calibration as a JSON object (sorted keys, so equal calibrations give equal text)."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Calibration:
        """The calibration `to_json` wrote; ValueError for another format."""
        data = json.loads(text)
        if data.get("format") != FORMAT:
            raise ValueError(f"drift calibration format {data.get('format')!r} is not {FORMAT}: calibrate again")
        data["numeric"], data["categorical"] = tuple(data["numeric"]), tuple(data["categorical"])
        return cls(**data)

    @property
    def features(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    def judge(self, distances: Mapping[str, float]) -> CalibratedDay:
        """A day's verdict from its distances (feature -> distance, and the score column's if calibrated).

        The distances must be those `check` reports (its ColumnDrift.score) or `day_distances` gives.
        """
        missing = [c for c in self.features if c not in distances]
        if missing:
            raise ValueError(f"no distance for calibrated feature(s) {missing}")
        drifted = tuple(sorted((c for c in self.features if distances[c] > self.thresholds[c]),
                               key=lambda c: -distances[c] / max(self.thresholds[c], 1e-12)))
        share = len(drifted) / max(len(self.features), 1)
        worst = max(distances[c] / max(self.thresholds[c], 1e-12) for c in self.features)
        prediction: bool | None = None
        if self.score is not None and self.score_column is not None and self.score_column in distances:
            prediction = distances[self.score_column] > self.score
        data = share > self.share or worst > self.worst
        return CalibratedDay(drifted=drifted, share=share, worst=worst, data_drift=data, prediction_drift=prediction)


@dataclass(frozen=True)
class CalibratedDay:
    """One day judged against a Calibration: the features beyond their threshold (worst first) and the verdicts."""

    drifted: tuple[str, ...]
    share: float
    worst: float  # the largest feature distance relative to its threshold
    data_drift: bool
    prediction_drift: bool | None  # None when the calibration or the day has no score distance


def day_distances(reference: pd.DataFrame, current: pd.DataFrame, *, numeric: Sequence[str],
                  categorical: Sequence[str], score_column: str | None = SCORE) -> dict[str, float]:
    """Column -> the distance `check` would report for it (features, and the score column when given)."""
    cols = _columns(reference, numeric, categorical, score_column, where="reference")
    _columns(current, numeric, categorical, score_column, where="current")
    ref, cur = as_kinds(reference[cols], list(categorical)), as_kinds(current[cols], list(categorical))
    return _distances(ref, cur, numeric, categorical, score_column)


def calibrate(reference: pd.DataFrame, day_column: str | None, *, numeric: Sequence[str], categorical: Sequence[str],
              score_column: str | None = SCORE, day_rows: int | None = None, quantile: float = 0.99,
              draws: int = 200, seed: int = 0, row_fraction: float = 1.0) -> Calibration:
    """Thresholds at `quantile` of each statistic's spread between day-sized samples of `reference`.

    With `day_column`, each day of the reference is one sample, compared with all the other days: the
    spread includes real day-to-day variation (weekdays, holidays), and needs MIN_SAMPLES days. Without
    it, `draws` random samples of `day_rows` rows each (seeded) are compared with the remaining rows:
    only sampling noise, for a reference that lost its days (a row sample of a training window).
    Each sample yields every feature's distance and the score distance; the share statistic counts the
    features beyond thresholds calibrated on the other samples, so it is not judged by its own values.
    `row_fraction` records the share of each day's rows the reference kept (a sampled reference):
    days judged against it must be sampled at that share, so that they are as large as the null samples.
    Deterministic: the same frame, arguments and seed give an equal Calibration.
    """
    import evidently

    if not 0.5 <= quantile < 1:
        raise ValueError(f"quantile {quantile} is outside [0.5, 1): a drift threshold sits high in the null spread")
    cols = _columns(reference, numeric, categorical, score_column, where="reference")
    frame = as_kinds(reference[cols], list(categorical)).reset_index(drop=True)
    samples = _samples(reference, day_column, day_rows, draws, seed)
    rows = np.ones(len(frame), dtype=bool)
    null: list[dict[str, float]] = []
    for index in samples:
        rows[:] = True
        rows[index] = False
        null.append(_distances(frame[rows], frame.iloc[index], numeric, categorical, score_column))
    features = [*numeric, *categorical]
    values = {c: np.array([d[c] for d in null]) for c in [*features, *([score_column] if score_column else [])]}
    m = len(samples)
    thresholds = {c: _order_statistic(values[c], quantile) for c in features}
    # Each sample's share against thresholds calibrated without it: in-sample thresholds never lie
    # below the sample that set them, which would make the share's spread too narrow.
    beyond, worst = np.zeros(m), np.zeros(m)
    for c in features:
        others = np.array([_order_statistic(np.delete(values[c], i), quantile) for i in range(m)])
        beyond += values[c] > others
        worst = np.maximum(worst, values[c] / np.maximum(others, 1e-12))
    share = _order_statistic(beyond / max(len(features), 1), quantile)
    k = min(m, math.ceil(quantile * (m + 1)))
    return Calibration(
        thresholds=thresholds, share=share, worst=_order_statistic(worst, quantile),
        score=_order_statistic(values[score_column], quantile) if score_column else None,
        quantile=quantile, samples=m, expected_rate=1 - k / (m + 1),
        rows_per_sample=int(np.median([len(i) for i in samples])), numeric=tuple(numeric),
        categorical=tuple(categorical), score_column=score_column, day_column=day_column, seed=seed,
        library=f"evidently {evidently.__version__}", row_fraction=row_fraction)


@dataclass(frozen=True)
class PooledAUC:
    """The served AUC over pooled labelled days against the holdout AUC; `drifted` None when not judged."""

    days: int  # how many of the newest days were pooled
    positives: int
    negatives: int
    auc: float | None
    standard_error: float | None
    drop: float | None  # holdout AUC - pooled AUC
    lower_bound: float | None  # drop - z * standard error
    drifted: bool | None
    note: str


def pooled_auc_drop(days: Sequence[tuple[np.ndarray, np.ndarray]], holdout_auc: float, *, min_per_class: int = 200,
                    z: float = 1.645, min_drop: float = 0.0) -> PooledAUC:
    """Whether the served AUC fell below the holdout AUC with confidence, on enough labels.

    `days` are (labels 0/1, served scores) per day, newest first; they are pooled, newest first, until
    both classes have `min_per_class` rows. The drop counts only when its lower confidence bound
    (drop - z x the AUC's Hanley-McNeil standard error) exceeds `min_drop` (e.g. the policy's
    auc_drop, to ask that the drop is at least that large with confidence). The holdout AUC is taken as
    exact; its own error would widen the bound. Not judged (drifted None) when the days hold too few.
    """
    ys: list[np.ndarray] = []
    ps: list[np.ndarray] = []
    positives = negatives = 0
    for y, p in days:
        y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
        if y.shape != p.shape:
            raise ValueError(f"day {len(ys) + 1} has {len(y)} labels but {len(p)} scores")
        ys.append(y)
        ps.append(p)
        positives, negatives = positives + int((y == 1).sum()), negatives + int((y == 0).sum())
        if min(positives, negatives) >= min_per_class:
            break
    if min(positives, negatives) < min_per_class:
        return PooledAUC(len(ys), positives, negatives, None, None, None, None, None,
                         f"{positives} positive and {negatives} negative labels in {len(ys)} day(s); "
                         f"needs {min_per_class} of each")
    y, p = np.concatenate(ys), np.concatenate(ps)
    auc = auc_and_log_loss(y, p)[0]
    se = auc_standard_error(auc, positives, negatives)
    drop = holdout_auc - auc
    bound = drop - z * se
    return PooledAUC(len(ys), positives, negatives, auc, se, drop, bound, bound > min_drop,
                     f"served AUC {auc:.3f} ± {se:.3f} over {len(ys)} day(s) ({positives}+/{negatives}-) vs "
                     f"holdout {holdout_auc:.3f}: drop {drop:.3f}, lower bound {bound:.3f} (needs > {min_drop:g})")


def _order_statistic(values: np.ndarray, quantile: float) -> float:
    # The k-th smallest, k = ceil(q (m + 1)) capped at m: exceeded by a new exchangeable value with
    # probability at most 1 - q (exactly 1 - k / (m + 1) for continuous values).
    ordered = np.sort(values)
    k = min(len(ordered), math.ceil(quantile * (len(ordered) + 1)))
    return float(ordered[k - 1])


def _columns(frame: pd.DataFrame, numeric: Sequence[str], categorical: Sequence[str], score_column: str | None,
             *, where: str) -> list[str]:
    cols = [*numeric, *categorical, *([score_column] if score_column else [])]
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise ValueError(f"the {where} frame has no column(s) {missing} (it has {list(frame.columns)})")
    if not cols:
        raise ValueError("no features to calibrate: name numeric or categorical columns")
    return cols


def _samples(reference: pd.DataFrame, day_column: str | None, day_rows: int | None, draws: int,
             seed: int) -> list[np.ndarray]:
    """Row positions of each null sample: one per day, or `draws` random day-sized ones."""
    if day_column is not None:
        if day_column not in reference.columns:
            raise ValueError(f"the reference frame has no day column {day_column!r}")
        codes, days = pd.factorize(reference[day_column], sort=True)
        if (codes < 0).any():
            raise ValueError(f"{int((codes < 0).sum())} reference row(s) have no {day_column!r}")
        if len(days) < MIN_SAMPLES:
            raise ValueError(f"the reference has {len(days)} day(s) in {day_column!r}, needs at least {MIN_SAMPLES} "
                             "to calibrate drift thresholds: use a longer reference window")
        return [np.flatnonzero(codes == i) for i in range(len(days))]
    if day_rows is None:
        raise ValueError("without a day column, give day_rows (the size of a judged day) for random samples")
    if draws < MIN_SAMPLES:
        raise ValueError(f"draws={draws}, needs at least {MIN_SAMPLES}")
    if not 0 < day_rows <= len(reference) // 2:
        raise ValueError(f"day_rows={day_rows} with {len(reference)} reference rows: a sample must leave at least "
                         "as many rows to compare it with; use a larger reference")
    rng = np.random.default_rng(seed)
    return [np.sort(rng.choice(len(reference), size=day_rows, replace=False)) for _ in range(draws)]


def _distances(reference: pd.DataFrame, current: pd.DataFrame, numeric: Sequence[str], categorical: Sequence[str],
               score_column: str | None) -> dict[str, float]:
    # Both frames already as_kinds.
    out = {c: column_distance(reference[c], current[c], categorical=False) for c in numeric}
    out.update({c: column_distance(reference[c], current[c], categorical=True) for c in categorical})
    if score_column:
        out[score_column] = column_distance(reference[score_column], current[score_column], categorical=False)
    return out
