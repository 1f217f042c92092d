"""What a nightly run does, defined once: ingest → validate → train → evaluate → promote for one data date.

The `nightly` DAG runs each step as a task; `nightshift run` runs them in order in one process.
Both call these functions, so the two cannot drift apart: the same retrain policy decides whether
anything trains, the same gates decide, the same promotion moves the aliases. A step that does not
apply returns `Skipped` with the reason (the DAG turns it into a skipped task); bad data or bad
parameters raise ValueError (ValidationFailed is one), which retrying cannot fix.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from jobs.context import Pipeline

STEPS = ("ingest", "validate", "train", "evaluate", "promote")


@dataclass(frozen=True)
class NightlyRun:
    """One nightly run: its data date and its parameters (the DAG's Params, or the CLI's options)."""

    day: date
    actor: str
    reason: str = ""  # why this run: recorded on the candidate; a run with a reason always trains
    gate_mode: str | None = None  # None: NIGHTSHIFT_GATE_MODE
    override_reason: str | None = None  # counts only with gate mode override
    retrain_every_days: int | None = None  # None: NIGHTSHIFT_RETRAIN_EVERY_DAYS


@dataclass(frozen=True)
class Skipped:
    """A step that did not apply to this run, and why (for the log and the CLI)."""

    reason: str


def ingest_step(ctx: Pipeline, run: NightlyRun, log: Any = print) -> dict[str, Any]:
    """The data date's partition into the offline store."""
    from jobs.ingest import ingest

    return {**ingest(ctx, run.day, log=log), "data_date": run.day.isoformat()}


def validate_step(ctx: Pipeline, run: NightlyRun, log: Any = print) -> dict[str, Any]:
    """The GX gate on the partition; raises ValidationFailed naming every failed expectation."""
    from jobs.validate import validate

    return validate(ctx, run.day, log=log)


def train_step(ctx: Pipeline, run: NightlyRun, log: Any = print) -> dict[str, Any] | Skipped:
    """The candidate (trained, or reused for the same data, parameters and code), or why nothing trains."""
    from jobs.train import retrain_due, train

    due, why = retrain_due(ctx, run.day, reason=run.reason, every_days=run.retrain_every_days)
    if not due:
        return Skipped(f"no training for {run.day}: {why}")
    log(f"training for {run.day}: {why}")
    return train(ctx, run.day, actor=run.actor, reason=run.reason, log=log)


def evaluate_step(ctx: Pipeline, run: NightlyRun, candidate: dict[str, Any], validation: dict[str, Any],
                  log: Any = print) -> dict[str, Any]:
    """The gate decision for the candidate, recorded on its version."""
    from jobs.evaluate import evaluate

    mode = run.gate_mode or ctx.settings.gate_mode
    return evaluate(ctx, run.day, candidate["version"], validation=validation["summary"], mode=mode,
                    override_reason=run.override_reason if mode == "override" else "", log=log)


def promote_step(ctx: Pipeline, run: NightlyRun, decision: dict[str, Any], log: Any = print
                 ) -> dict[str, Any] | Skipped:
    """The alias move when the gates said so, or why not (a decision against, or nothing changed)."""
    from jobs.promote import promote

    version = str(decision["version"])
    if not decision["promote"]:
        return Skipped(f"v{version} not promoted: gate decision {decision['label']}: {decision.get('headline', '')} "
                       "(reasons in the evaluate log and on the model version's tags)")
    promoted = promote(ctx, version, actor=run.actor, log=log)
    if promoted["previous"] == version:  # a rerun: no new champion, nothing to rescore
        return Skipped(f"v{version} is already champion; nothing changed")
    return promoted


def run_nightly(ctx: Pipeline, run: NightlyRun, *, log: Any = print,
                on_step: Callable[[str], None] = lambda _step: None) -> dict[str, Any]:
    """Every step in order, in this process; {step: its result or Skipped}. Stops at the first skip."""
    out: dict[str, Any] = {"ingest": ingest_step(ctx, run, log)}
    on_step("ingest")
    out["validate"] = validate_step(ctx, run, log)
    on_step("validate")
    out["train"] = train_step(ctx, run, log)
    on_step("train")
    if isinstance(out["train"], Skipped):
        return out
    out["evaluate"] = evaluate_step(ctx, run, out["train"], out["validate"], log)
    on_step("evaluate")
    out["promote"] = promote_step(ctx, run, out["evaluate"], log)
    on_step("promote")
    return out
