"""The gate policy: parametrised cases of metrics and thresholds against the expected decision."""

from __future__ import annotations

import pytest

from registry.gates import HoldoutMetrics, Policy, Smoke, decide

POLICY = Policy(min_auc=0.7, max_log_loss=0.6, regression_tolerance=0.01, slice_regression_tolerance=0.03,
                baseline_tolerance=0.02, latency_budget_ms=100)
GOOD = HoldoutMetrics(auc=0.80, log_loss=0.45, prior_log_loss=0.55, slices={"carrier=AA": 0.80, "carrier=UA": 0.78})
SMOKE = Smoke(loaded=True, nan_count=0, latency_ms=10, rows=256)
BASE = HoldoutMetrics(auc=0.79, log_loss=0.46)


def run(**overrides):  # type: ignore[no-untyped-def]
    args = dict(validation_passed=True, candidate=GOOD, champion=None, baseline=BASE, smoke=SMOKE, policy=POLICY)
    args.update(overrides)
    return decide(**args)


@pytest.mark.parametrize(
    ("overrides", "passed", "failing"),
    [
        ({}, True, None),
        ({"validation_passed": False}, False, "data validation failed"),
        ({"candidate": HoldoutMetrics(0.65, 0.45, 0.55)}, False, "vs floor"),
        ({"candidate": HoldoutMetrics(0.80, 0.65, 0.70)}, False, "vs ceiling"),
        ({"candidate": HoldoutMetrics(0.80, 0.58, 0.55)}, False, "always predicting the training base rate"),
        ({"baseline": HoldoutMetrics(0.85, 0.40)}, False, "vs baseline"),
        ({"champion": HoldoutMetrics(0.83, 0.44)}, False, "vs champion"),
        ({"champion": HoldoutMetrics(0.805, 0.44)}, True, None),  # within tolerance
        ({"champion": HoldoutMetrics(0.80, 0.45, slices={"carrier=AA": 0.80, "carrier=UA": 0.83})}, False,
         "carrier=UA"),
        ({"smoke": Smoke(loaded=False, error="ModuleNotFoundError: x")}, False, "did not load"),
        ({"smoke": Smoke(loaded=True, nan_count=3, latency_ms=10, rows=256)}, False, "3 NaN"),
        ({"smoke": Smoke(loaded=True, nan_count=0, latency_ms=150, rows=256)}, False, "latency"),
    ],
)
def test_enforce_mode(overrides, passed, failing):  # type: ignore[no-untyped-def]
    decision = run(**overrides)
    assert decision.passed is passed
    assert decision.promote is passed
    assert decision.label == ("promoted" if passed else "rejected")
    if failing:
        assert any(failing in r for r in decision.failures), decision.reasons


def test_first_model_policy_says_so():
    decision = run()
    assert any(r.startswith("INFO: no champion yet") for r in decision.reasons)
    assert not any("vs champion" in r for r in decision.reasons)


def test_dry_run_decides_but_never_promotes():
    decision = run(mode="dry_run")
    assert decision.passed and not decision.promote and decision.label == "dry_run"


def test_override_needs_a_reason_and_then_promotes_a_failed_candidate():
    with pytest.raises(ValueError, match="override reason"):
        run(mode="override", validation_passed=True, override_reason="  ")
    decision = run(mode="override", candidate=HoldoutMetrics(0.6, 0.5, 0.55), override_reason="hotfix for INC-42")
    assert not decision.passed and decision.promote and decision.label == "overridden"
    assert "INC-42" in decision.summary()


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="gate mode"):
        run(mode="yolo")
