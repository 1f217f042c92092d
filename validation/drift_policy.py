"""When drift should retrain: a pure policy over today's checks and the recent daily windows.

Statistics in, a decision with its reasons out; the drift job records it and the DAG only branches
on `retrain`. Drift must hold in k of the last n daily windows judged against the same champion (one
noisy day never fires), and a cooldown stops a retrain storm unless performance drift is severe.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from typing import Any


@dataclass(frozen=True)
class DriftPolicy:
    """Thresholds and windows (settings NIGHTSHIFT_DRIFT_*)."""

    feature_share: float = 0.1  # share of drifted features that makes a day's data drifted
    prediction_threshold: float = 0.5  # drift score of the day's scores
    auc_drop: float = 0.05  # served AUC surely this far below the holdout AUC at promotion: performance drift
    severe_auc_drop: float = 0.10  # ... and this far is severe: it overrides the cooldown
    window_days: int = 7  # n: the daily windows looked at
    min_windows: int = 3  # k: how many of them must have drifted
    cooldown_days: int = 7  # no second drift retrain within this many data days, unless severe


@dataclass(frozen=True)
class Window:
    """One day's outcome of the three checks; None where a check could not judge that day."""

    day: date
    data: bool | None = None
    prediction: bool | None = None
    performance: bool | None = None


@dataclass
class DriftDecision:
    """Whether to retrain, what fired (with figures) and why not when suppressed."""

    retrain: bool
    fired: list[str] = field(default_factory=list)  # checks that held in k of n windows
    reasons: list[str] = field(default_factory=list)
    severe: bool = False
    override: bool = False  # retrains inside a cooldown (severe performance drift)
    cooldown_until: date | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["cooldown_until"] = self.cooldown_until.isoformat() if self.cooldown_until else None
        return out


def auc_standard_error(auc: float, positives: int, negatives: int) -> float:
    """Standard error of an AUC measured on this many positives and negatives (Hanley & McNeil, 1982)."""
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (positives - 1) * (q1 - auc * auc) + (negatives - 1) * (q2 - auc * auc))
    return float(max(var, 0.0) / (positives * negatives)) ** 0.5


def performance_drifted(lower_bound: float, policy: DriftPolicy) -> tuple[bool, bool]:
    """(drifted, severe): the lower confidence bound of the served AUC's drop below the holdout AUC
    (validation/drift_calibration.pooled_auc_drop) clears the policy's bar, and the severe one: a drop
    counts only when the labels say with confidence that it is at least that large."""
    return lower_bound > policy.auc_drop, lower_bound > policy.severe_auc_drop


def held(windows: list[Window], today: date, check: str, policy: DriftPolicy) -> tuple[int, int]:
    """(windows where `check` drifted, windows where it could judge) among the last n days to today."""
    first = today - timedelta(days=policy.window_days - 1)
    seen = [getattr(w, check) for w in windows if first <= w.day <= today]
    judged = [v for v in seen if v is not None]
    return sum(bool(v) for v in judged), len(judged)


def decide(today: date, windows: list[Window], *, figures: dict[str, str], severe: bool,
           last_retrain: date | None, policy: DriftPolicy, last_was_override: bool = False) -> DriftDecision:
    """The retrain decision for `today`, given the windows judged against the current champion.

    `figures` describes each check's value today (for the reasons); `severe` says today's served-AUC
    drop is severe (performance_drifted); `last_retrain` is the data date of the last drift retrain
    and `last_was_override` whether that one itself overrode a cooldown: severe drift overrides a
    cooldown once, not every day (a candidate that cannot fix it yet would be retrained daily).
    """
    decision = DriftDecision(retrain=False)
    for check in ("data", "prediction", "performance"):
        count, judged = held(windows, today, check, policy)
        status = f"{check} drift in {count} of the last {judged} judged window(s) (needs {policy.min_windows})"
        if check in figures:
            status += f"; today {figures[check]}"
        decision.reasons.append(status)
        if count >= policy.min_windows:
            decision.fired.append(check)
    decision.severe = severe
    if severe and "performance" not in decision.fired:
        decision.fired.append("performance")
        decision.reasons.append(f"severe performance drift today (served AUC {policy.severe_auc_drop}+ below holdout)")
    if not decision.fired:
        return decision
    if last_retrain is not None:
        until = last_retrain + timedelta(days=policy.cooldown_days)
        if today < until and (not decision.severe or last_was_override):
            decision.cooldown_until = until
            decision.reasons.append(
                f"cooldown: a drift retrain ran for {last_retrain}; none again before {until}" +
                (" (that one already overrode a cooldown for severe performance drift)" if last_was_override
                 else " unless performance drift is severe"))
            return decision
        decision.override = today < until
    decision.retrain = True
    return decision
