"""Drift: the day's partition and scores against the champion's reference, and the served model's AUC.

* data drift: each monitored feature of the day's rows against a sample of the champion's training
  window (Evidently, validation/drift.py);
* prediction drift: the champion's scores of the day against its scores of that sample;
* performance drift: for the label day (data date - NIGHTSHIFT_LABEL_DELAY_DAYS), what was served for
  that day's entities (the prediction log, else the newest kept snapshot scored by a model trained
  before that day) joined with the labels: the served model's AUC against its holdout AUC at
  promotion, a drop counting only beyond twice the AUC's standard error.

Every run keeps the Evidently HTML report in MLflow and a row in the drift-history table; the
decision (validation/drift_policy.py) says whether to retrain and why.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from jobs.context import Pipeline
from nightshift import drifthistory, offline, predlog, predstore
from nightshift.runctx import drift_run_id
from nightshift.settings import Settings
from nightshift.spec import DatasetSpec
from registry import aliases
from registry.tracking import model_uri
from validation.drift import SCORE, DriftReport, check
from validation.drift_calibration import MIN_SAMPLES, Calibration, PooledAUC, calibrate, pooled_auc_drop
from validation.drift_policy import DriftDecision, DriftPolicy, Window, decide, performance_drifted

from .train import windows_of

DAY = "__day__"  # a reference row's day: calibration compares the reference's days with each other
FRACTION = "__fraction__"  # in the cached reference: the share of each day's rows it kept
CALIBRATION_ARTIFACT = "drift_calibration.json"  # stored on the champion's run


def policy_of(settings: Settings) -> DriftPolicy:
    """The retrain policy from settings."""
    return DriftPolicy(feature_share=settings.drift_feature_share,
                       prediction_threshold=settings.drift_prediction_threshold,
                       auc_drop=settings.drift_auc_drop, severe_auc_drop=settings.drift_severe_auc_drop,
                       window_days=settings.drift_window_days, min_windows=settings.drift_min_windows,
                       cooldown_days=settings.drift_cooldown_days)


def features_of(spec: DatasetSpec, frame: pd.DataFrame) -> pd.DataFrame:
    """The monitored feature columns of raw rows (the derive hook adds derived ones)."""
    hook = spec.derive_hook()
    frame = hook(frame.copy()) if hook else frame
    return frame[[f.name for f in spec.monitored]].reset_index(drop=True)


def reference_rows(spec: DatasetSpec, settings: Settings, window: pd.DataFrame,
                   score: Callable[[pd.DataFrame], np.ndarray]) -> tuple[pd.DataFrame, float]:
    """(the monitored features, scores and day of a training window's rows, the share of rows kept).

    Every day is kept whole, or, when the window holds more than drift_reference_rows rows, every day
    is sampled at one share (seeded), so each day of the reference stays a day's worth of rows.
    """
    fraction = min(1.0, settings.drift_reference_rows / max(len(window), 1))
    if fraction < 1.0:
        window = window.groupby(window[spec.date_column].astype(str), group_keys=False, sort=True).sample(
            frac=fraction, random_state=settings.seed)
    window = window.reset_index(drop=True)
    out = features_of(spec, window)
    out[SCORE] = np.asarray(score(window[spec.raw_inputs]), dtype=float)
    out[DAY] = window[spec.date_column].astype(str).to_numpy()
    return out, fraction


def calibrate_reference(spec: DatasetSpec, settings: Settings, ref: pd.DataFrame,
                        fraction: float) -> tuple[Calibration, str]:
    """(the thresholds calibrated on the reference's own days, in words); with fewer than MIN_SAMPLES
    days, too few to calibrate on, the fixed thresholds of settings (fixed_thresholds) instead."""
    numeric = [f.name for f in spec.monitored if f.kind == "numeric"]
    categorical = [f.name for f in spec.monitored if f.kind == "categorical"]
    days = int(ref[DAY].nunique())
    if days < MIN_SAMPLES:
        return fixed_thresholds(settings, numeric, categorical), (
            f"fixed thresholds: the reference has {days} day(s), calibration needs {MIN_SAMPLES}")
    cal = calibrate(ref, DAY, numeric=numeric, categorical=categorical, score_column=SCORE,
                    quantile=settings.drift_quantile, seed=settings.seed, row_fraction=fraction)
    return cal, (f"thresholds calibrated on {cal.samples} reference days at q={cal.quantile:g} "
                 f"(a stationary day exceeds each with chance {cal.expected_rate:.3f})")


def fixed_thresholds(settings: Settings, numeric: list[str], categorical: list[str]) -> Calibration:
    """The settings' fixed thresholds in a Calibration's shape (samples 0), judged by the same rule.

    Data drifts at a share of drifted features of drift_feature_share or more; no worst-feature rule.
    """
    return Calibration(
        thresholds={**{c: settings.drift_num_threshold for c in numeric},
                    **{c: settings.drift_cat_threshold for c in categorical}},
        share=settings.drift_feature_share - 1e-9, worst=math.inf, score=settings.drift_prediction_threshold,
        quantile=0.0, samples=0, expected_rate=math.nan, rows_per_sample=0, numeric=tuple(numeric),
        categorical=tuple(categorical), score_column=SCORE, day_column=None, seed=settings.seed, library="fixed")


def reference(ctx: Pipeline, version: str, model: Any) -> tuple[pd.DataFrame, Calibration, str]:
    """The rows the version was trained on (reference_rows) and their calibration; cached per version.

    The calibration is also stored with the version (artifact drift_calibration.json of its run), so a
    verdict can be reproduced; a stored one is used as it is, unless drift_quantile has changed since.
    """
    client, name, spec, settings = ctx.client, ctx.model_name, ctx.spec, ctx.settings
    mv = client.get_model_version(name, version)
    params = client.get_run(str(mv.run_id)).data.params
    train_days, _ = windows_of(date.fromisoformat(mv.tags["data_date"]),
                               int(params.get("train_days", settings.train_days)),
                               int(params.get("holdout_days", settings.holdout_days)))
    rows = settings.drift_reference_rows
    fingerprint = mv.tags.get("data_fingerprint", "x")
    cache = settings.home / "drift" / spec.name / f"reference-v{version}-{fingerprint}-{rows}.parquet"
    if cache.exists():
        ref = pd.read_parquet(cache)
    else:
        frame, _ = offline.read_days(settings.offline_dir, spec.name, train_days)
        if frame.empty:
            raise ValueError(f"the training window of {name} v{version} ({train_days[0]}..{train_days[-1]}) is not "
                             "in the offline store any more: ingest it again to judge drift against this champion")
        ref, fraction = reference_rows(spec, settings, frame, model.predict)
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".{uuid.uuid4().hex}.tmp")
        ref.assign(**{FRACTION: fraction}).to_parquet(tmp, index=False)
        os.replace(tmp, cache)
    fraction = float(ref[FRACTION].iloc[0]) if FRACTION in ref and len(ref) else 1.0
    ref = ref.drop(columns=[FRACTION], errors="ignore")
    stored = _stored_calibration(client, str(mv.run_id))
    if stored is not None and stored.quantile == settings.drift_quantile:
        return ref, stored, (f"thresholds calibrated on {stored.samples} reference days at q={stored.quantile:g}, "
                             f"stored with v{version}")
    cal, how = calibrate_reference(spec, settings, ref, fraction)
    if cal.samples:
        client.log_text(str(mv.run_id), cal.to_json(), CALIBRATION_ARTIFACT)
    return ref, cal, how


def _stored_calibration(client: Any, run_id: str) -> Calibration | None:
    """The calibration stored with a version's run, or None (none stored, or an older format)."""
    if CALIBRATION_ARTIFACT not in [a.path for a in client.list_artifacts(run_id)]:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        text = Path(client.download_artifacts(run_id, CALIBRATION_ARTIFACT, tmp)).read_text()
    try:
        return Calibration.from_json(text)
    except (ValueError, TypeError):
        return None


def served_scores(ctx: Pipeline, day: date, keys: list[str]) -> tuple[dict[str, float], str | None, str]:
    """(key -> served score, the serving model version, where they came from) for one day's entities.

    The prediction log (what the real-time endpoint answered) first; else the newest kept snapshot
    whose model was trained for a data date before `day`, so its scores of that day were made before
    the day's labels could be known (later snapshots rescore the day with models that saw them).
    """
    engine, spec, client, name = ctx.engine, ctx.spec, ctx.client, ctx.model_name
    logged = predlog.served_for(engine, dataset=spec.name, keys=keys)
    if logged:
        versions = pd.Series([r["model_version"] for r in logged.values()]).mode()
        return ({k: float(r["score"]) for k, r in logged.items() if r["score"] is not None},
                str(versions.iloc[0]) if len(versions) else None, "prediction log")
    trained_for: dict[str, str] = {}
    for snap in predstore.list_snapshots(engine, dataset=spec.name):  # newest first
        if snap["status"] != predstore.COMPLETE or not (snap["data_start"] <= day <= snap["data_end"]):
            continue
        version = str(snap["model_version"])
        if version not in trained_for:
            trained_for[version] = client.get_model_version(name, version).tags.get("data_date", "9999-12-31")
        if trained_for[version] < day.isoformat():
            rows = predstore.snapshot_rows(engine, snap["id"], keys)
            return {k: float(r["score"]) for k, r in rows.items()}, version, f"prediction store snapshot {snap['id']}"
    return {}, None, "no kept snapshot scored it with a model trained before that day"


def judge_performance(days: list[tuple[np.ndarray, np.ndarray]], holdout_auc: float, settings: Settings,
                      policy: DriftPolicy) -> tuple[PooledAUC, bool]:
    """(the pooled served AUC against the holdout AUC, severe): `days` are (labels, served scores),
    newest first, all served by the champion; pooled until each class has drift_min_labels rows."""
    pooled = pooled_auc_drop(days, holdout_auc, min_per_class=settings.drift_min_labels, z=settings.drift_auc_z,
                             min_drop=policy.auc_drop)
    if pooled.lower_bound is None:
        return pooled, False
    return pooled, performance_drifted(pooled.lower_bound, policy)[1]


def performance(ctx: Pipeline, data_date: date, policy: DriftPolicy, champion: str) -> dict[str, Any]:
    """The champion's served AUC on its newest labelled days against its holdout AUC; `note` says why when
    not judged.

    From the label day back (at most drift_window_days days), the days the champion served are pooled
    until each class has drift_min_labels labels; the drop counts only when its lower confidence bound
    clears the policy's bar. Days served by an earlier model are not pooled: a drop of a model replaced
    since is no reason to retrain the one that replaced it.
    """
    spec, settings, client, name = ctx.spec, ctx.settings, ctx.client, ctx.model_name
    label_day = data_date - timedelta(days=settings.label_delay_days)
    out: dict[str, Any] = {"label_date": label_day, "served_model_version": None, "served_rows": None,
                           "served_auc": None, "auc_se": None, "holdout_auc": None, "auc_drop": None,
                           "performance_drift": None, "severe": False}
    holdout = client.get_model_version(name, champion).tags.get("holdout_auc")
    if holdout is None:
        return {**out, "note": f"v{champion} has no holdout AUC recorded"}
    days: list[tuple[np.ndarray, np.ndarray]] = []
    stop = ""
    for back in range(settings.drift_window_days):
        day = label_day - timedelta(days=back)
        try:
            frame = offline.read_partition(settings.offline_dir, spec.name, day)
        except FileNotFoundError:
            stop = f"no partition for {day}"
            break
        y = offline.labels(spec, frame)
        labelled = ~np.isnan(y)
        keys = frame.loc[labelled, spec.entity_key].astype(str).tolist()
        scores, version, source = served_scores(ctx, day, keys) if keys else ({}, None, "no labels")
        if version is not None and version != champion:
            stop = f"{day} was served by v{version}, replaced since by champion v{champion}"
            break
        if not scores:
            stop = f"nothing served for {day} ({source})"
            break
        have = np.array([k in scores for k in keys])
        days.append((y[labelled][have], np.array([scores[k] for k in keys if k in scores])))
        out["served_model_version"] = version
        if min(sum(int(d[0].sum()) for d in days), sum(int((d[0] == 0).sum()) for d in days)) \
                >= settings.drift_min_labels:
            break
    if not days:
        return {**out, "note": stop}
    pooled, severe = judge_performance(days, float(holdout), settings, policy)
    out.update(served_rows=pooled.positives + pooled.negatives, served_auc=pooled.auc, auc_se=pooled.standard_error,
               holdout_auc=float(holdout), auc_drop=pooled.drop, performance_drift=pooled.drifted, severe=severe)
    first = label_day - timedelta(days=pooled.days - 1)
    note = f"v{champion} on {first}..{label_day}: {pooled.note}"
    return {**out, "note": note + (f" (pooling stopped: {stop})" if stop and pooled.drifted is None else "")}


def judge_day(spec: DatasetSpec, settings: Settings, policy: DriftPolicy, ref: pd.DataFrame, current: pd.DataFrame,
              calibration: Calibration, html: Path | None = None) -> DriftReport:
    """Data and prediction drift of a day's rows against the reference, by the calibration's thresholds
    (Evidently's report drawn with them too)."""
    found = check(ref, current, numeric=list(calibration.numeric), categorical=list(calibration.categorical),
                  feature_share=policy.feature_share, num_threshold=settings.drift_num_threshold,
                  cat_threshold=settings.drift_cat_threshold, prediction_threshold=policy.prediction_threshold,
                  min_rows=settings.drift_min_rows, html=html,
                  per_column_threshold={**calibration.thresholds, SCORE: calibration.score or math.inf})
    distances = {c: d.score for c, d in found.columns.items()}
    if found.prediction is not None:
        distances[SCORE] = found.prediction.score
    day = calibration.judge(distances)
    found.share, found.share_threshold = day.share, calibration.share if calibration.samples else None
    found.columns = {c: replace(d, drifted=c in day.drifted) for c, d in found.columns.items()}
    if found.data_drift is not None:
        found.data_drift, found.prediction_drift = day.data_drift, day.prediction_drift
    return found


def check_drift(ctx: Pipeline, data_date: date, *, run_id: str = "cli", log: Any = print) -> dict[str, Any]:
    """Judge the day's drift against the champion, record it, and decide; returns a small summary.

    The summary's `retrain` says whether `nightly` should run, with `conf` (data date and reason).
    """
    import mlflow

    t0 = time.perf_counter()
    settings, spec = ctx.settings, ctx.spec
    client, name = ctx.client, ctx.model_name
    policy = policy_of(settings)
    champion = aliases.alias_version(client, name, aliases.CHAMPION)
    if champion is None:
        log(f"no champion of {name} yet: nothing to compare {data_date} with; skipped")
        return {"data_date": data_date.isoformat(), "retrain": False, "skipped": "no champion yet",
                "seconds": time.perf_counter() - t0}
    try:
        raw = offline.read_partition(settings.offline_dir, spec.name, data_date)
    except FileNotFoundError as exc:
        raise ValueError(f"{exc}: ingest {data_date} before checking its drift") from exc

    model = mlflow.pyfunc.load_model(model_uri(name, champion))
    ref, calibration, thresholds = reference(ctx, champion, model)
    if calibration.row_fraction < 1:  # as large as the reference's days
        raw = raw.sample(frac=calibration.row_fraction, random_state=settings.seed).reset_index(drop=True)
    current = features_of(spec, raw)
    current[SCORE] = np.asarray(model.predict(raw[spec.raw_inputs]), dtype=float)
    with tempfile.TemporaryDirectory() as tmp:
        html = Path(tmp) / "drift_report.html"
        found = judge_day(spec, settings, policy, ref, current, calibration, html=html)
        perf = performance(ctx, data_date, policy, champion)
        engine = ctx.engine
        past = drifthistory.recent(engine, dataset=spec.name, model_version=champion, before=data_date,
                                   days=policy.window_days)
        today = Window(data_date, found.data_drift, found.prediction_drift, perf["performance_drift"])
        last, last_was_override = drifthistory.last_retrain(engine, dataset=spec.name, before=data_date)
        decision = decide(data_date, [*(_window(r) for r in past), today], figures=_figures(found, perf),
                          severe=perf["severe"], last_retrain=last, last_was_override=last_was_override,
                          policy=policy)
        # One MLflow run per day and champion: a rerun of the day writes into the run it made before.
        earlier = mlflow.search_runs(filter_string=f"tags.kind = 'drift' and tags.data_date = '{data_date}' and "
                                                   f"tags.champion_version = '{champion}'",
                                     experiment_ids=[ctx.experiment_id], max_results=1, output_format="list")
        with mlflow.start_run(run_id=earlier[0].info.run_id if earlier else None, experiment_id=ctx.experiment_id,
                              run_name=None if earlier else f"drift {data_date}") as run:
            mlflow.set_tags({"kind": "drift", "dataset": spec.name, "data_date": data_date.isoformat(),
                             "champion_version": champion, "airflow_run_id": run_id,
                             "retrain": str(decision.retrain).lower()})
            mlflow.log_metrics({k: v for k, v in {
                "rows": found.rows, "drift_share": found.share, "drifted_features": len(found.drifted),
                "prediction_drift_score": found.prediction.score if found.prediction else None,
                "served_auc": perf["served_auc"], "auc_drop": perf["auc_drop"]}.items() if v is not None})
            mlflow.log_artifact(str(html))
            report_uri = f"{run.info.artifact_uri}/drift_report.html"
            summary = _summary(data_date, champion, found, perf, decision, report_uri)
            mlflow.log_dict(summary, "drift_summary.json")

    unjudged = _not_judged(found, perf, settings.drift_min_rows)
    reason = _reason(data_date, champion, found, perf, decision, report_uri, unjudged)
    triggered = drift_run_id(data_date) if decision.retrain else None
    drifthistory.record(engine, {
        "dataset": spec.name, "data_date": data_date, "run_id": run_id, "model_name": name,
        "model_version": champion, "rows": found.rows, "reference_rows": found.reference_rows,
        "features": len(found.columns),
        "drifted_features": len(found.drifted) if found.data_drift is not None else None,
        "drift_share": found.share, "drifted_names": ", ".join(c.column for c in found.drifted),
        "data_drift": found.data_drift,
        "prediction_drift_score": found.prediction.score if found.prediction else None,
        "prediction_drift": found.prediction_drift,
        **{k: perf[k] for k in ("label_date", "served_model_version", "served_rows", "served_auc", "auc_se",
                                "holdout_auc", "auc_drop", "performance_drift")},
        "retrain": decision.retrain, "cooldown": decision.cooldown_until is not None,
        "override": decision.override,
        "reason": reason, "report_uri": report_uri, "triggered_run_id": triggered})
    log(f"drift of {spec.name} {data_date} against champion v{champion}: {found.rows} rows vs "
        f"{found.reference_rows} reference rows; {thresholds}")
    for line in [*decision.reasons, perf["note"], *unjudged]:
        log(f"  {line}")
    log(f"report: {report_uri}")
    log(("RETRAIN: " if decision.retrain else "no retrain: ") + reason)
    return {"data_date": data_date.isoformat(), "model_version": champion, "retrain": decision.retrain,
            "fired": decision.fired, "report_uri": report_uri, "triggered_run_id": triggered,
            "conf": {"data_date": data_date.isoformat(), "reason": reason},
            "seconds": time.perf_counter() - t0}


def _window(row: dict[str, Any]) -> Window:
    return Window(row["data_date"], row["data_drift"], row["prediction_drift"], row["performance_drift"])


def _figures(found: DriftReport, perf: dict[str, Any]) -> dict[str, str]:
    out = {}
    if found.data_drift is not None:
        top = ", ".join(c.describe() for c in found.drifted[:4]) or "none"
        bar = f"; drifts above {found.share_threshold:.3f}" if found.share_threshold is not None else ""
        out["data"] = f"{len(found.drifted)}/{len(found.columns)} features beyond their thresholds ({top}{bar})"
    if found.prediction is not None and found.prediction_drift is not None:
        out["prediction"] = f"score distance {found.prediction.score:.3f} (threshold {found.prediction.threshold:.3g})"
    if perf["auc_drop"] is not None:
        out["performance"] = perf["note"]
    return out


def _not_judged(found: DriftReport, perf: dict[str, Any], min_rows: int) -> list[str]:
    """Why a check judged nothing today (too few rows, no labels yet), one line per check; [] when all judged."""
    out = []
    if found.data_drift is None:
        out.append(f"data and prediction drift not judged: {found.rows} rows, fewer than drift_min_rows={min_rows} "
                   "(the spec's settings.drift_min_rows, or NIGHTSHIFT_DRIFT_MIN_ROWS)")
    if perf["performance_drift"] is None:
        out.append(f"performance drift not judged: {perf['note']}")
    return out


def _reason(day: date, champion: str, found: DriftReport, perf: dict[str, Any], decision: DriftDecision,
            report_uri: str, unjudged: list[str]) -> str:
    figures = _figures(found, perf)
    fired = "; ".join(f"{c} drift ({figures.get(c, 'held in earlier windows')})" for c in decision.fired)
    head = f"drift {day} vs champion v{champion}: " + (fired or "no check held")
    if decision.cooldown_until:
        head += f"; cooldown until {decision.cooldown_until}"
    return "; ".join([head, *unjudged, f"report {report_uri}"])


def _summary(day: date, champion: str, found: DriftReport, perf: dict[str, Any], decision: DriftDecision,
             report_uri: str) -> dict[str, Any]:
    return json.loads(json.dumps({
        "data_date": day, "champion_version": champion, "rows": found.rows, "reference_rows": found.reference_rows,
        "data_drift": found.data_drift, "drift_share": found.share,
        "columns": {c: vars(d) for c, d in found.columns.items()},
        "prediction": vars(found.prediction) if found.prediction else None,
        "prediction_drift": found.prediction_drift, "performance": perf, "decision": decision.to_dict(),
        "report_uri": report_uri}, default=str))
