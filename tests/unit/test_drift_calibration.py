"""Calibrated drift thresholds: false-alarm rate on a stationary stream, shifts caught, reproducible, clear errors."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from validation.drift import SCORE, check
from validation.drift_calibration import (
    CalibratedDay,
    Calibration,
    calibrate,
    day_distances,
    pooled_auc_drop,
)
from validation.drift_policy import DriftPolicy, Window, decide

NUMERIC = ["amount", "distance", "stops"]
CATEGORICAL = ["carrier", "origin"]
FEATURES = [*NUMERIC, *CATEGORICAL]
ROWS = 100  # rows a day
REFERENCE_DAYS = 56
POLICY = DriftPolicy()  # k of n from the defaults (3 of 7)
START = date(2024, 1, 1)
CARRIERS = ["AA", "BB", "CC"]
CARRIER_SHARES = [0.5, 0.3, 0.2]


def day_frame(rng: np.random.Generator, day: date, *, amount_shift: float = 0.0,
              carrier_shares: list[float] = CARRIER_SHARES) -> pd.DataFrame:
    """One day of rows from a fixed distribution (unless shifted), with a score that depends on them."""
    amount = rng.normal(amount_shift, 1.0, ROWS)
    distance = rng.lognormal(0.0, 0.5, ROWS)
    carrier = rng.choice(CARRIERS, ROWS, p=carrier_shares)
    logit = 0.8 * amount + 0.3 * distance + np.where(carrier == "CC", 1.0, 0.0) - 1.0
    return pd.DataFrame({"day": day, "amount": amount, "distance": distance,
                         "stops": rng.poisson(2.0, ROWS).astype(float), "carrier": carrier,
                         "origin": rng.choice(list("pqrstu"), ROWS), SCORE: 1 / (1 + np.exp(-logit))})


def stream(seed: int, days: int, first: date, **shift: object) -> list[pd.DataFrame]:
    rng = np.random.default_rng(seed)
    return [day_frame(rng, first + timedelta(days=i), **shift) for i in range(days)]  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return pd.concat(stream(1, REFERENCE_DAYS, START), ignore_index=True)


@pytest.fixture(scope="module")
def calibration(reference: pd.DataFrame) -> Calibration:
    return calibrate(reference, "day", numeric=NUMERIC, categorical=CATEGORICAL, quantile=0.99)


def judged(calibration: Calibration, reference: pd.DataFrame, days: list[pd.DataFrame]) -> list[CalibratedDay]:
    return [calibration.judge(day_distances(reference, d, numeric=NUMERIC, categorical=CATEGORICAL)) for d in days]


def retrain_days(verdicts: list[CalibratedDay], first: date) -> list[int]:
    """Indices of the days on which the k-of-n policy (no cooldown) would retrain."""
    windows = [Window(first + timedelta(days=i), data=v.data_drift, prediction=v.prediction_drift)
               for i, v in enumerate(verdicts)]
    return [i for i, w in enumerate(windows)
            if decide(w.day, windows[:i + 1], figures={}, severe=False, last_retrain=None, policy=POLICY).retrain]


def alarm_bound(calibration: Calibration, days: int, statistics: int = 1) -> int:
    """The 0.999 quantile of the alarm count on `days` stationary days, summed over independent statistics.

    Given the calibration, a statistic alarms on each new day with a rate p; p itself depends on the m
    null samples (for the k-th of m values it is Beta(m + 1 - k, k)), so the count is beta-binomial,
    which is the binomial margin widened by the calibration's own uncertainty.
    """
    m, k = calibration.samples, round(calibration.samples + 1 - calibration.expected_rate * (calibration.samples + 1))
    pmf = stats.betabinom(days, m + 1 - k, k).pmf(np.arange(days + 1))
    total = np.array([1.0])
    for _ in range(statistics):
        total = np.convolve(total, pmf)
    return int(np.searchsorted(np.cumsum(total), 0.999))


def test_column_distance_is_what_check_reports(reference: pd.DataFrame) -> None:
    current = stream(7, 1, START + timedelta(days=60), amount_shift=0.3)[0]
    small = reference.iloc[:3000]
    found = check(small, current, numeric=NUMERIC, categorical=CATEGORICAL, feature_share=0.5, num_threshold=1.0,
                  cat_threshold=0.2, prediction_threshold=0.5, min_rows=10)
    ours = day_distances(small, current, numeric=NUMERIC, categorical=CATEGORICAL)
    assert found.prediction is not None
    assert {c: d.score for c, d in found.columns.items()} | {SCORE: found.prediction.score} == pytest.approx(ours)


def test_stationary_stream_alarms_at_the_expected_rate_and_k_of_n_rarely(
        reference: pd.DataFrame, calibration: Calibration) -> None:
    days = 200
    verdicts = judged(calibration, reference, stream(2, days, START + timedelta(days=REFERENCE_DAYS)))
    # 56 days cannot resolve q = 0.99: the threshold is the largest null value, exceeded 1 time in 57.
    assert calibration.samples == REFERENCE_DAYS and calibration.expected_rate == pytest.approx(1 / 57)
    per_feature = {c: sum(c in v.drifted for v in verdicts) for c in FEATURES}
    assert all(n <= alarm_bound(calibration, days) for n in per_feature.values()), per_feature
    assert sum(per_feature.values()) <= alarm_bound(calibration, days, statistics=len(FEATURES)), per_feature
    data = sum(v.data_drift for v in verdicts)
    prediction = sum(bool(v.prediction_drift) for v in verdicts)
    assert data <= alarm_bound(calibration, days) and prediction <= alarm_bound(calibration, days)
    # k of n: a retrain needs k alarms of one check within n days; with independent days at the
    # observed alarm rates that is P(Binomial(n, rate) >= k) a day.
    trigger_rate = sum(stats.binom.sf(POLICY.min_windows - 1, POLICY.window_days, max(n, 1) / days)
                       for n in (data, prediction))
    retrains = retrain_days(verdicts, START + timedelta(days=REFERENCE_DAYS))
    assert trigger_rate < max(data + prediction, 1) / days / 10  # far below the daily alarm rate
    assert len(retrains) <= stats.binom.ppf(0.999, days, trigger_rate)  # overlapping windows: a loose bound


@pytest.mark.parametrize(("shift", "feature"), [
    ({"amount_shift": 0.5}, "amount"),  # half a standard deviation
    ({"carrier_shares": [0.3, 0.2, 0.5]}, "carrier"),  # the carrier of the highest scores from 20% to 50%
])
def test_injected_shift_is_caught_within_k_days(reference: pd.DataFrame, calibration: Calibration,
                                                shift: dict[str, object], feature: str) -> None:
    first = START + timedelta(days=REFERENCE_DAYS)
    before, after = 10, 10
    days = [*stream(3, before, first), *stream(4, after, first + timedelta(days=before), **shift)]
    verdicts = judged(calibration, reference, days)
    assert all(feature in v.drifted for v in verdicts[before:])
    assert all(v.drifted[0] == feature for v in verdicts[before:])  # the worst feature, relative to its threshold
    # One feature of five is within the share's null spread (0.2 here); the score, which depends on
    # the feature, is what holds in k of n windows.
    retrains = retrain_days(verdicts, first)
    assert retrains and before <= retrains[0] <= before + POLICY.min_windows - 1


def test_one_feature_far_off_is_data_drift_though_the_share_is_not(reference: pd.DataFrame,
                                                                   calibration: Calibration) -> None:
    """A category mix collapsed to one value: one feature of five, within the share's null spread, but
    far beyond its own threshold: the worst-feature statistic makes it data drift on every such day."""
    days = stream(5, 5, START + timedelta(days=REFERENCE_DAYS), carrier_shares=[0.0, 0.0, 1.0])
    for verdict in judged(calibration, reference, days):
        assert verdict.drifted[0] == "carrier" and verdict.share <= calibration.share
        assert verdict.worst > calibration.worst and verdict.data_drift


def test_same_seed_same_calibration_and_json_round_trip(reference: pd.DataFrame, calibration: Calibration) -> None:
    assert calibrate(reference, "day", numeric=NUMERIC, categorical=CATEGORICAL) == calibration
    assert Calibration.from_json(calibration.to_json()) == calibration
    sample = reference.iloc[:6000]
    drawn = [calibrate(sample, None, numeric=NUMERIC, categorical=CATEGORICAL, day_rows=ROWS, draws=20, seed=s)
             for s in (5, 5, 6)]
    assert drawn[0] == drawn[1] != drawn[2]
    assert drawn[0].day_column is None and drawn[0].rows_per_sample == ROWS and drawn[0].samples == 20
    assert Calibration.from_json(drawn[0].to_json()) == drawn[0]
    assert calibration.library.startswith("evidently ")


def test_too_few_days_and_missing_columns_are_refused(reference: pd.DataFrame) -> None:
    five = reference[reference["day"] < START + timedelta(days=5)]
    with pytest.raises(ValueError, match=r"has 5 day\(s\) in 'day', needs at least 7"):
        calibrate(five, "day", numeric=NUMERIC, categorical=CATEGORICAL)
    with pytest.raises(ValueError, match="no column.*'fare'"):
        calibrate(reference, "day", numeric=[*NUMERIC, "fare"], categorical=CATEGORICAL)
    with pytest.raises(ValueError, match="day_rows"):
        calibrate(reference, None, numeric=NUMERIC, categorical=CATEGORICAL)
    with pytest.raises(ValueError, match=r"no distance for calibrated feature\(s\) \['origin'\]"):
        calibrate(reference, "day", numeric=NUMERIC, categorical=CATEGORICAL).judge(
            {c: 0.0 for c in FEATURES if c != "origin"})
    with pytest.raises(ValueError, match="format"):
        Calibration.from_json('{"format": 0}')


def labelled_days(seed: int, days: int, rows: int, separation: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """(labels, scores) per day; a larger separation is a better model (AUC = Phi(separation / sqrt 2))."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(days):
        y = (rng.random(rows) < 0.2).astype(float)
        out.append((y, 1 / (1 + np.exp(-(rng.normal(0, 1, rows) + separation * y)))))
    return out


@pytest.mark.parametrize(("separation", "drifted"), [(1.5, False), (0.8, True)])
def test_pooled_auc_drop_is_judged_on_enough_labels(separation: float, drifted: bool) -> None:
    holdout = float(stats.norm.cdf(1.5 / np.sqrt(2)))  # about 0.86
    out = pooled_auc_drop(labelled_days(8, 10, 300, separation), holdout, min_per_class=200)
    assert out.days == 4 and out.positives >= 200 and out.negatives >= 200  # 60 positives a day
    assert out.drifted is drifted and out.lower_bound is not None
    assert (out.lower_bound > 0) is drifted


def test_pooled_auc_drop_not_judged_on_too_few_labels() -> None:
    out = pooled_auc_drop(labelled_days(9, 2, 100, 1.0), 0.8, min_per_class=200)
    assert out.drifted is None and out.days == 2 and "needs 200 of each" in out.note
