"""Evaluate: candidate, champion and baseline on the same holdout, the smoke check, the gate decision.

The decision and every reason are recorded as tags on the model version (promoted or not) and as
an artifact of the candidate's run; the return value says whether the promote step should run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from jobs.context import Pipeline
from nightshift.metrics import auc_and_log_loss, slice_aucs
from nightshift.settings import Settings
from nightshift.spec import DatasetSpec
from registry import aliases
from registry.gates import Decision, HoldoutMetrics, Policy, Smoke, decide
from registry.tracking import model_uri, run_model_uri

from .train import load_window, windows


def holdout_metrics(uri: str, spec: DatasetSpec, frame: pd.DataFrame, y: np.ndarray,
                    min_slice_rows: int, prior: float | None = None) -> HoldoutMetrics:
    """AUC and log loss of a logged model on the holdout, overall and per slice.

    `prior` (the training base rate) adds the log loss of always predicting it, the bar to beat.
    """
    p = np.asarray(mlflow.pyfunc.load_model(uri).predict(frame[spec.raw_inputs]), dtype=float)
    return metrics_of(p, spec, frame, y, min_slice_rows, prior)


def metrics_of(p: np.ndarray, spec: DatasetSpec, frame: pd.DataFrame, y: np.ndarray, min_slice_rows: int,
               prior: float | None = None) -> HoldoutMetrics:
    """`holdout_metrics` of scores already made (the backtest scores in memory)."""
    auc, ll = auc_and_log_loss(y, p)
    prior_ll = auc_and_log_loss(y, np.full(len(y), prior))[1] if prior is not None else None
    return HoldoutMetrics(auc, ll, prior_ll, slice_aucs(frame, spec.slices, y, p, min_slice_rows))


def smoke_check(uri: str, sample: pd.DataFrame, settings: Settings) -> Smoke:
    """Load and predict in a fresh Python process; a failure is a result, not an exception."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sample.parquet"
        sample.to_parquet(path, index=False)
        env = {**os.environ, "MLFLOW_TRACKING_URI": settings.tracking_uri,
               "MLFLOW_REGISTRY_URI": settings.tracking_uri}
        try:
            proc = subprocess.run([sys.executable, "-m", "registry.smoke", uri, str(path)], env=env,
                                  capture_output=True, text=True, timeout=600)
        except subprocess.TimeoutExpired:
            return Smoke(loaded=False, error="timed out after 600 s")
    if proc.returncode != 0:
        return Smoke(loaded=False, error=(proc.stderr.strip().splitlines() or ["exit " + str(proc.returncode)])[-1])
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return Smoke(loaded=True, nan_count=out["nan_count"], latency_ms=out["latency_ms"], rows=out["rows"])


def policy_for(spec: DatasetSpec, settings: Settings) -> Policy:
    """The dataset's floors with the tolerances from settings."""
    return Policy(min_auc=spec.gates.min_auc, max_log_loss=spec.gates.max_log_loss,
                  regression_tolerance=settings.regression_tolerance,
                  slice_regression_tolerance=settings.slice_regression_tolerance,
                  baseline_tolerance=settings.baseline_tolerance, latency_budget_ms=settings.latency_budget_ms)


def evaluate(ctx: Pipeline, data_date: date, version: str, *, validation: str = "passed", mode: str | None = None,
             override_reason: str | None = None, log: Any = print) -> dict[str, Any]:
    """Run the gates for a registered candidate and record the decision; returns {promote, label, ...}."""
    t0 = time.perf_counter()
    settings, spec = ctx.settings, ctx.spec
    client, name = ctx.client, ctx.model_name
    mode = mode or settings.gate_mode
    override_reason = settings.override_reason if override_reason is None else override_reason
    mv = client.get_model_version(name, version)
    champion_version = aliases.alias_version(client, name, aliases.CHAMPION)
    if champion_version == str(version):  # a rerun that reused the champion: its recorded decision stands
        headline = f"v{version} already is the champion: nothing to decide (its recorded decision stands)"
        log(headline)
        return {"version": version, "promote": False, "label": "champion", "passed": True, "headline": headline,
                "failures": [], "mode": mode, "champion_version": champion_version,
                "seconds": time.perf_counter() - t0}

    _, holdout_wanted = windows(data_date, settings)
    frame, y, found = load_window(spec, settings, holdout_wanted, "holdout", 1)
    log(f"evaluating {name} v{version} on {len(frame)} holdout rows {found[0]}..{found[-1]}")
    prior = float(mv.tags["train_positive_rate"]) if "train_positive_rate" in mv.tags else None
    candidate = holdout_metrics(model_uri(name, version), spec, frame, y, settings.min_slice_rows, prior)
    champion = None
    if champion_version is not None:
        champion = holdout_metrics(model_uri(name, champion_version), spec, frame, y, settings.min_slice_rows)
    baseline_run = mv.tags.get("baseline_run_id")
    baseline = (holdout_metrics(run_model_uri(baseline_run), spec, frame, y, settings.min_slice_rows)
                if baseline_run else None)
    smoke = smoke_check(model_uri(name, version), frame[spec.raw_inputs].head(settings.smoke_rows), settings)

    decision = decide(validation_passed=validation.startswith("passed"), candidate=candidate, champion=champion,
                      baseline=baseline, smoke=smoke, policy=policy_for(spec, settings), mode=mode,
                      override_reason=override_reason)
    record(client, name, version, decision, validation, champion_version, candidate, baseline)
    log(decision.summary())
    return {"version": version, "promote": decision.promote, "label": decision.label, "passed": decision.passed,
            "headline": decision.headline, "failures": [r.removeprefix("FAIL: ") for r in decision.failures],
            "mode": decision.mode, "champion_version": champion_version, "seconds": time.perf_counter() - t0}


def record(client: Any, name: str, version: str, decision: Decision, validation: str,
           champion_version: str | None, candidate: HoldoutMetrics, baseline: HoldoutMetrics | None) -> None:
    """Tags on the model version and a JSON artifact on its run: the decision and all reasons."""
    tags = {
        "validation_result": validation[:5000],
        "gate_decision": decision.label,
        "gate_passed": str(decision.passed).lower(),
        "gate_mode": decision.mode,
        "gate_reason": "; ".join(decision.failures or ["all gates passed"])[:5000],
        "gate_reasons": "\n".join(decision.reasons)[:5000],
        "compared_with_champion": champion_version or "none",
        "holdout_auc": f"{candidate.auc:.4f}",
    }
    if baseline is not None:
        tags["baseline_holdout_auc"] = f"{baseline.auc:.4f}"
    if decision.override_reason:
        tags["override_reason"] = decision.override_reason[:5000]
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    run_id = client.get_model_version(name, version).run_id
    if run_id:
        client.set_tag(run_id, "gate_decision", decision.label)
        client.log_dict(run_id, {**decision.to_dict(), "candidate": candidate.__dict__,
                                 "baseline": baseline.__dict__ if baseline else None,
                                 "champion_version": champion_version}, "gate_decision.json")
