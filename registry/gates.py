"""The promotion gates as a pure function: metrics and thresholds in, a decision with reasons out."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from nightshift.settings import GATE_MODES


@dataclass(frozen=True)
class HoldoutMetrics:
    """Holdout metrics of one model; `slices` maps "column=value" to AUC on that slice."""

    auc: float
    log_loss: float
    prior_log_loss: float | None = None  # log loss of always predicting the training base rate
    slices: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Smoke:
    """The operational check: the registered model loaded in a fresh process and predicted."""

    loaded: bool
    nan_count: int = 0
    latency_ms: float = 0.0
    rows: int = 0
    error: str = ""


@dataclass(frozen=True)
class Policy:
    min_auc: float
    max_log_loss: float
    regression_tolerance: float
    slice_regression_tolerance: float
    baseline_tolerance: float
    latency_budget_ms: float


@dataclass
class Decision:
    """Whether the gates passed, whether to promote, and every reason in words."""

    passed: bool
    promote: bool
    mode: str
    reasons: list[str]
    override_reason: str = ""

    @property
    def label(self) -> str:
        """One word for tags and tables: promoted, rejected, dry_run or overridden."""
        if self.mode == "dry_run":
            return "dry_run"
        if self.promote and not self.passed:
            return "overridden"
        return "promoted" if self.promote else "rejected"

    @property
    def failures(self) -> list[str]:
        return [r for r in self.reasons if r.startswith("FAIL")]

    @property
    def headline(self) -> str:
        """The decision at a glance: what happened (or, in a dry run, what would have)."""
        failed = len(self.failures)
        gates = f"{failed} failed gate{'s' if failed != 1 else ''}" if failed else "all gates passed"
        if self.mode == "dry_run":
            return f"dry run: would {'promote' if self.passed else 'reject'} ({gates}); nothing promoted"
        if self.promote and not self.passed:
            return f"overridden: promoted despite {gates} (override reason: {self.override_reason})"
        return f"{'promoted' if self.promote else 'rejected'} ({gates})"

    def summary(self) -> str:
        """What a person reads in the task log and the CLI: the headline, every failed gate, then every check."""
        lines = [f"gate decision: {self.headline} [mode {self.mode}]"]
        lines += [f"  failed: {r.removeprefix('FAIL: ')}" for r in self.failures]
        lines += ["  checks:"] + [f"    - {r}" for r in self.reasons]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "label": self.label}


def decide(*, validation_passed: bool, candidate: HoldoutMetrics, champion: HoldoutMetrics | None,
           baseline: HoldoutMetrics | None, smoke: Smoke, policy: Policy, mode: str = "enforce",
           override_reason: str = "") -> Decision:
    """Apply every gate; with no champion yet only the floors, the baseline and the smoke check apply."""
    if mode not in GATE_MODES:
        raise ValueError(f"gate mode must be one of {', '.join(GATE_MODES)}, got {mode!r}")
    if mode == "override" and not override_reason.strip():
        raise ValueError("gate mode 'override' needs a written override reason")
    reasons: list[str] = []

    def check(ok: bool, text: str) -> None:
        reasons.append(("PASS: " if ok else "FAIL: ") + text)

    check(validation_passed, "data validation " + ("passed" if validation_passed else "failed"))
    check(candidate.auc >= policy.min_auc, f"holdout AUC {candidate.auc:.4f} vs floor {policy.min_auc:.4f}")
    check(candidate.log_loss <= policy.max_log_loss,
          f"holdout log loss {candidate.log_loss:.4f} vs ceiling {policy.max_log_loss:.4f}")
    if candidate.prior_log_loss is not None:
        check(candidate.log_loss < candidate.prior_log_loss,
              f"holdout log loss {candidate.log_loss:.4f} vs {candidate.prior_log_loss:.4f} of always "
              "predicting the training base rate (must be lower)")
    if baseline is not None:
        gap = baseline.auc - candidate.auc
        check(gap <= policy.baseline_tolerance,
              f"AUC {candidate.auc:.4f} vs baseline {baseline.auc:.4f} (gap {gap:+.4f}, "
              f"tolerance {policy.baseline_tolerance:.4f})")
    if champion is None:
        reasons.append("INFO: no champion yet (or the candidate already is it): first-model policy "
                       "(floors, baseline and smoke check only)")
    else:
        drop = champion.auc - candidate.auc
        check(drop <= policy.regression_tolerance,
              f"AUC {candidate.auc:.4f} vs champion {champion.auc:.4f} on the same holdout "
              f"(drop {drop:+.4f}, tolerance {policy.regression_tolerance:.4f})")
        worst = [(s, champion.slices[s] - auc) for s, auc in candidate.slices.items() if s in champion.slices]
        bad = [(s, d) for s, d in worst if d > policy.slice_regression_tolerance]
        if worst:
            detail = ", ".join(f"{s} drop {d:+.4f}" for s, d in sorted(bad, key=lambda x: -x[1])[:5])
            check(not bad, f"per-slice AUC vs champion over {len(worst)} slices (tolerance "
                  f"{policy.slice_regression_tolerance:.4f})" + (f": {detail}" if bad else ""))
    if not smoke.loaded:
        check(False, f"model did not load in a fresh process: {smoke.error}")
    else:
        check(smoke.nan_count == 0, f"{smoke.nan_count} NaN predictions in a {smoke.rows}-row sample")
        check(smoke.latency_ms <= policy.latency_budget_ms,
              f"predict latency {smoke.latency_ms:.1f} ms for {smoke.rows} rows vs budget "
              f"{policy.latency_budget_ms:.0f} ms")

    passed = not any(r.startswith("FAIL") for r in reasons)
    promote = {"enforce": passed, "dry_run": False, "override": True}[mode]
    return Decision(passed=passed, promote=promote, mode=mode, reasons=reasons,
                    override_reason=override_reason.strip() if mode == "override" else "")
