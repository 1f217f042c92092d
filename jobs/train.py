"""Train: the PyTorch MLP and the HistGradientBoosting baseline on the window before the data date.

Both runs are tracked in MLflow; the MLP is registered as a new version with alias `challenger`.
A rerun with the same data, parameters and code reuses the version it made the first time.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from jobs.context import Pipeline
from nightshift import offline
from nightshift.features import Preprocessor
from nightshift.metrics import auc_and_log_loss
from nightshift.settings import Settings
from nightshift.spec import DatasetSpec
from nightshift.version import code_version
from registry import aliases
from registry.packaging import log_scorer


def windows(data_date: date, settings: Settings) -> tuple[list[date], list[date]]:
    """(training days, holdout days): the holdout is the most recent days, ending on the data date."""
    return windows_of(data_date, settings.train_days, settings.holdout_days)


def windows_of(data_date: date, train_days: int, holdout_days: int) -> tuple[list[date], list[date]]:
    """(training days, holdout days) for explicit window lengths."""
    holdout_start = data_date - timedelta(days=holdout_days - 1)
    train_end = holdout_start - timedelta(days=1)
    train_start = train_end - timedelta(days=train_days - 1)
    return offline.days(train_start, train_end), offline.days(holdout_start, data_date)


def load_window(spec: DatasetSpec, settings: Settings, wanted: list[date], what: str,
                min_days: int) -> tuple[pd.DataFrame, np.ndarray, list[date]]:
    """Labelled rows of the partitions in `wanted`; a clear error when fewer than min_days exist."""
    frame, found = offline.read_days(settings.offline_dir, spec.name, wanted)
    if len(found) < min_days:
        first = settings.schedule_start
        if first is not None and wanted[0] < first:  # part of the window lies before the dataset's data
            hint = (f"the days before {first} (the start of {spec.name}'s schedule window) do not exist: choose a "
                    "later data date, or shorten train_days/holdout_days/min_train_days in the spec's settings")
        else:
            hint = f"ingest those dates first (nightshift --dataset {spec.name} ingest {wanted[0]} --end {wanted[-1]})"
        raise ValueError(f"{what} window {wanted[0]}..{wanted[-1]} has {len(found)} ingested day(s) of "
                         f"{spec.name}, needs at least {min_days}; {hint}")
    y = offline.labels(spec, frame)
    keep = ~np.isnan(y)
    return frame[keep].reset_index(drop=True), y[keep], found


def training_params(settings: Settings, data_date: date) -> dict[str, Any]:
    """Everything that decides what gets trained (it forms the idempotency key with the data)."""
    return {
        "data_date": data_date.isoformat(), "train_days": settings.train_days,
        "holdout_days": settings.holdout_days, "max_epochs": settings.max_epochs,
        "patience": settings.patience, "batch_size": settings.batch_size,
        "learning_rate": settings.learning_rate, "seed": settings.seed, "val_split": "tail",
        "model_family": settings.model_family, "mlp_members": settings.mlp_members,
    }


def retrain_due(ctx: Pipeline, data_date: date, *, reason: str = "", every_days: int | None = None
                ) -> tuple[bool, str]:
    """(whether this run trains, why): always with a reason (drift, a person); else when there is no
    champion yet and the window has enough days, or the champion was trained `every_days` (default
    NIGHTSHIFT_RETRAIN_EVERY_DAYS) or more data days before; 0 = only with a reason."""
    settings, spec = ctx.settings, ctx.spec
    every = settings.retrain_every_days if every_days is None else every_days
    if reason:
        return True, f"requested: {reason}"
    client, name = ctx.client, ctx.model_name
    champion = aliases.alias_version(client, name, aliases.CHAMPION)
    if champion is None:
        train_wanted, _ = windows(data_date, settings)
        found = [d for d in train_wanted if offline.partition_dir(settings.offline_dir, spec.name, d).exists()]
        if len(found) < settings.min_train_days:
            return False, (f"no champion yet, and only {len(found)} of the training window's days "
                           f"({train_wanted[0]}..{train_wanted[-1]}) are ingested; needs {settings.min_train_days}")
        return True, "no champion yet"
    trained_for = date.fromisoformat(client.get_model_version(name, champion).tags.get("data_date", "1970-01-01"))
    age = (data_date - trained_for).days
    if age < 0:
        return False, (f"champion v{champion} was trained for a later day ({trained_for}): a run for {data_date} "
                       "does not retrain it on older data (set the `reason` param to train anyway)")
    if every == 0:
        return False, (f"champion v{champion} (trained for {trained_for}) serves and retraining without a reason "
                       "is off (retrain_every_days=0): drift retrains, or set the `reason` param")
    if age < every:
        return False, (f"champion v{champion} was trained for {trained_for}, {age} day(s) before; retraining every "
                       f"{every} day(s) (set the `reason` param to train anyway)")
    return True, f"champion v{champion} was trained for {trained_for}, {age} day(s) before"


FAMILY_NAMES = {"mlp": "MLP", "gbdt": "HistGradientBoosting"}


@dataclass
class Fitted:
    """Both models fitted on one window and scored on its holdout (what `train` logs and registers)."""

    mlp: Any  # nightshift.model.MLPScorer
    fit: Any  # nightshift.model.FitResult
    baseline: Any  # nightshift.model.HGBScorer
    mlp_auc: float
    mlp_log_loss: float
    baseline_auc: float
    baseline_log_loss: float
    baseline_seconds: float

    @property
    def train_seconds(self) -> float:
        """Compute spent fitting both models."""
        return float(self.fit.train_seconds + self.baseline_seconds)

    def family(self, setting: str) -> str:
        """The family registered as the candidate under `model_family` (mlp, gbdt or best): with `best`,
        the MLP unless the HistGradientBoosting model's holdout AUC is higher."""
        if setting == "gbdt" or (setting == "best" and self.baseline_auc > self.mlp_auc):
            return "gbdt"
        return "mlp"

    def scorer(self, family: str) -> Any:
        """The fitted scorer of a family."""
        return self.baseline if family == "gbdt" else self.mlp

    def holdout_auc(self, family: str) -> float:
        return self.baseline_auc if family == "gbdt" else self.mlp_auc


def fit_models(spec: DatasetSpec, settings: Settings, train_df: pd.DataFrame, y_train: np.ndarray,
               holdout_df: pd.DataFrame, y_hold: np.ndarray, *, log: Any = print) -> Fitted:
    """The MLP and the HistGradientBoosting baseline on the same training rows, scored on the same holdout.

    No tracking: `train` logs the result to MLflow, the backtest (ops/backtest.py) uses it as it is.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier

    from nightshift.model import HGBScorer, MLPScorer, fit_mlp

    pre = Preprocessor.fit(spec, train_df)
    num, cat = pre.transform(train_df)
    fit = fit_mlp(num, cat, y_train, pre.cardinalities, max_epochs=settings.max_epochs,
                  patience=settings.patience, batch_size=settings.batch_size, lr=settings.learning_rate,
                  seed=settings.seed, device=settings.device, log=log, members=settings.mlp_members)
    mlp = MLPScorer(pre, fit.state_dict, fit.config, device="cpu")
    auc, ll = auc_and_log_loss(y_hold, mlp.predict_proba(holdout_df))
    log(f"MLP: holdout AUC {auc:.4f}, log loss {ll:.4f}, {fit.epochs} epochs in {fit.train_seconds:.1f}s "
        f"on {fit.device}")
    hgb = HistGradientBoostingClassifier(
        max_iter=300, learning_rate=0.08, early_stopping=True, validation_fraction=0.1,
        random_state=settings.seed, categorical_features=[num.shape[1] + j for j in range(cat.shape[1])] or None)
    tb = time.perf_counter()
    hgb.fit(HGBScorer.design(num, cat), y_train)
    seconds = time.perf_counter() - tb
    baseline = HGBScorer(pre, hgb)
    b_auc, b_ll = auc_and_log_loss(y_hold, baseline.predict_proba(holdout_df))
    log(f"baseline (HistGradientBoosting): holdout AUC {b_auc:.4f}, log loss {b_ll:.4f}")
    return Fitted(mlp, fit, baseline, auc, ll, b_auc, b_ll, seconds)


def train(ctx: Pipeline, data_date: date, *, actor: str = "cli", reason: str = "",
          log: Any = print) -> dict[str, Any]:
    """Train (or reuse) the candidate for data_date; returns a small reference: version and run ids."""
    t0 = time.perf_counter()
    settings, spec = ctx.settings, ctx.spec
    client, name = ctx.client, ctx.model_name
    train_wanted, holdout_wanted = windows(data_date, settings)
    train_df, y_train, train_found = load_window(spec, settings, train_wanted, "training", settings.min_train_days)
    holdout_df, y_hold, hold_found = load_window(spec, settings, holdout_wanted, "holdout", 1)
    fp = offline.fingerprint(settings.offline_dir, spec.name, train_found + hold_found)
    params = training_params(settings, data_date)
    code = code_version()
    run_key = hashlib.sha256(json.dumps([spec.name, fp, params, code.removesuffix("-dirty")],
                                        sort_keys=True).encode()).hexdigest()[:16]

    aliases.ensure_model(client, name, description=spec.description)
    existing = aliases.find_version(client, name, run_key=run_key)
    if existing is not None:
        log(f"reusing model version {existing.version}: same data (fingerprint {fp}), parameters and code")
        return {"version": str(existing.version), "run_id": existing.run_id,
                "mlp_run_id": existing.tags.get("mlp_run_id", existing.run_id),
                "baseline_run_id": existing.tags.get("baseline_run_id", ""),
                "model_family": existing.tags.get("model_family", "mlp"), "data_date": data_date.isoformat(),
                "reused": True, "seconds": time.perf_counter() - t0}

    log(f"training {spec.name} for {data_date}: {len(train_df)} rows from {len(train_found)} day(s) "
        f"{train_found[0]}..{train_found[-1]}, holdout {len(holdout_df)} rows {hold_found[0]}..{hold_found[-1]}")
    example = train_df[spec.raw_inputs].head(20)
    interval = f"{train_found[0]}..{hold_found[-1]}"
    tags = {"dataset": spec.name, "data_date": data_date.isoformat(), "data_interval": interval,
            "data_fingerprint": fp, "code_version": code, "run_key": run_key, "actor": actor}
    if reason:
        tags["trigger_reason"] = reason

    fitted = fit_models(spec, settings, train_df, y_train, holdout_df, y_hold, log=log)
    fit = fitted.fit
    with mlflow.start_run(run_name=f"mlp {data_date}", experiment_id=ctx.experiment_id) as mlp_run:
        mlflow.set_tags({**tags, "model_kind": "mlp"})
        mlflow.log_params({**params, "train_rows": len(train_df), "holdout_rows": len(holdout_df)})
        for i, sec in enumerate(fit.epoch_seconds, start=1):
            mlflow.log_metric("epoch_seconds", sec, step=i)
        mlflow.log_metrics({"holdout_auc": fitted.mlp_auc, "holdout_log_loss": fitted.mlp_log_loss,
                            "best_val_log_loss": fit.best_val_loss, "epochs": fit.epochs,
                            "best_epoch": fit.best_epoch, "train_seconds": fit.train_seconds,
                            "mean_epoch_seconds": float(np.mean(fit.epoch_seconds))})
        mlflow.set_tag("device", fit.device)
        info = log_scorer(fitted.mlp, example)

    with mlflow.start_run(run_name=f"baseline {data_date}", experiment_id=ctx.experiment_id) as base_run:
        mlflow.set_tags({**tags, "model_kind": "baseline"})
        mlflow.log_params(params)
        mlflow.log_metrics({"holdout_auc": fitted.baseline_auc, "holdout_log_loss": fitted.baseline_log_loss,
                            "train_seconds": fitted.baseline_seconds})
        base_info = log_scorer(fitted.baseline, example)

    family = fitted.family(settings.model_family)
    chosen_info, chosen_run = (base_info, base_run) if family == "gbdt" else (info, mlp_run)
    if settings.model_family == "best":
        log(f"model_family best: {family} (holdout AUC MLP {fitted.mlp_auc:.4f}, "
            f"HistGradientBoosting {fitted.baseline_auc:.4f})")
    # model_id names the logged model the source URI points at: an MLflow server (HTTP) refuses a models:/ source
    # without it, where a local store does not check.
    version = client.create_model_version(
        name, source=chosen_info.model_uri, run_id=chosen_run.info.run_id, model_id=chosen_info.model_id,
        tags={**tags, "baseline_run_id": base_run.info.run_id, "mlp_run_id": mlp_run.info.run_id,
              "validation_result": "pending",
              "model_family": family, "model_family_setting": settings.model_family,
              "train_positive_rate": f"{float(y_train.mean()):.6f}"},
        description=f"{FAMILY_NAMES[family]} trained for {data_date} on {interval}")
    v = str(version.version)
    aliases.move_alias(client, ctx.engine, name=name, alias=aliases.CHALLENGER, version=v,
                       actor=actor, reason=f"new candidate for {data_date}")
    log(f"registered {name} v{v} as challenger")
    return {"version": v, "run_id": chosen_run.info.run_id, "mlp_run_id": mlp_run.info.run_id,
            "baseline_run_id": base_run.info.run_id, "model_family": family,
            "data_date": data_date.isoformat(), "reused": False, "seconds": time.perf_counter() - t0}
