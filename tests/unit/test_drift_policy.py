"""The drift retrain policy: k of n windows, judged windows only, cooldown, severe performance drift."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from validation.drift_policy import DriftPolicy, Window, auc_standard_error, decide, performance_drifted

DAY = date(2013, 6, 20)
POLICY = DriftPolicy(window_days=7, min_windows=3, cooldown_days=7, auc_drop=0.05, severe_auc_drop=0.10)


def days(*drifted: bool | None, check: str = "data") -> list[Window]:
    """Windows ending on DAY (the last value is today's)."""
    n = len(drifted)
    return [Window(DAY - timedelta(days=n - 1 - i), **{check: v}) for i, v in enumerate(drifted)]


@pytest.mark.parametrize(("windows", "retrain"), [
    (days(False, False, False, False, False, False, True), False),  # one noisy day never fires
    (days(True, False, False, False, False, True, False), False),  # two of seven
    (days(True, False, False, True, False, False, True), True),  # three of seven
    (days(True, True, True), True),  # three in a row
    (days(True, None, None, None, None, True, None), False),  # unjudged days do not count either way
])
def test_k_of_n_windows(windows: list[Window], retrain: bool) -> None:
    out = decide(DAY, windows, figures={}, severe=False, last_retrain=None, policy=POLICY)
    assert out.retrain is retrain
    assert out.fired == (["data"] if retrain else [])


def test_windows_older_than_n_days_do_not_count() -> None:
    old = [Window(DAY - timedelta(days=d), data=True) for d in (7, 8, 9)]  # just outside 7 days
    out = decide(DAY, [*old, Window(DAY, data=True)], figures={}, severe=False, last_retrain=None, policy=POLICY)
    assert not out.retrain


def test_each_check_fires_on_its_own_and_reasons_name_it() -> None:
    out = decide(DAY, days(True, True, True, check="prediction"), figures={"prediction": "score distance 0.9"},
                 severe=False, last_retrain=None, policy=POLICY)
    assert out.retrain and out.fired == ["prediction"]
    assert any("prediction drift in 3 of the last 3" in r and "score distance 0.9" in r for r in out.reasons)


@pytest.mark.parametrize(("last", "auc_drop", "retrain"), [
    (DAY - timedelta(days=3), None, False),  # inside the cooldown
    (DAY - timedelta(days=6), 0.06, False),  # still inside; performance drift, but not severe
    (DAY - timedelta(days=7), None, True),  # the cooldown is over
    (DAY - timedelta(days=2), 0.13, True),  # severe performance drift overrides it
])
def test_cooldown(last: date, auc_drop: float | None, retrain: bool) -> None:
    severe = auc_drop is not None and performance_drifted(auc_drop - 0.02, POLICY)[1]  # bound: drop - 2 x 0.01
    out = decide(DAY, days(True, True, True), figures={}, severe=severe, last_retrain=last, policy=POLICY)
    assert out.retrain is retrain
    if not retrain:
        assert out.cooldown_until == last + timedelta(days=7)
        assert any(r.startswith("cooldown") for r in out.reasons)


def test_severe_drop_alone_fires_performance() -> None:
    out = decide(DAY, days(None, None, True, check="performance"), figures={}, severe=True, last_retrain=None,
                 policy=POLICY)
    assert out.retrain and out.severe and out.fired == ["performance"]


@pytest.mark.parametrize(("drop", "positives", "negatives", "drifted", "severe"), [
    (0.09, 300, 700, True, False),  # many labels: the drop is surely beyond 0.05, not surely beyond 0.10
    (0.16, 300, 700, True, True),
    (0.06, 300, 700, False, False),  # a drop, but not surely beyond the policy's 0.05
    (0.09, 20, 40, False, False),  # few labels: the same drop is within the noise
    (0.30, 20, 40, True, True),
])
def test_performance_drop_must_exceed_noise(drop: float, positives: int, negatives: int, drifted: bool,
                                            severe: bool) -> None:
    se = auc_standard_error(0.75, positives, negatives)
    assert performance_drifted(drop - 1.645 * se, POLICY) == (drifted, severe)


def test_auc_standard_error_shrinks_with_rows() -> None:
    assert 0.05 < auc_standard_error(0.75, 20, 40) < 0.08
    assert 0.015 < auc_standard_error(0.75, 300, 700) < 0.02


def test_severe_drift_overrides_a_cooldown_once_not_daily() -> None:
    first = decide(DAY, days(True, True, True), figures={}, severe=True, last_retrain=DAY - timedelta(days=2),
                   policy=POLICY)
    assert first.retrain and first.override
    again = decide(DAY + timedelta(days=1), days(True, True, True, True), figures={}, severe=True,
                   last_retrain=DAY, last_was_override=True, policy=POLICY)
    assert not again.retrain and again.cooldown_until == DAY + timedelta(days=7)
    later = decide(DAY + timedelta(days=7), days(True, True, True), figures={}, severe=True, last_retrain=DAY,
                   last_was_override=True, policy=POLICY)
    assert later.retrain and not later.override  # the cooldown is over
