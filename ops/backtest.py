"""Backtest: one range of days under several retraining policies, on the same data and the same code.

Each policy replays the days in order, as the DAGs would run them: the served model scores the day
(its served AUC, on the day's labels), the scheduled retrain runs when the champion is old enough,
the drift check judges the day against the champion (drift policies), and a drift retrain follows
when the drift policy says so. Every step calls the functions the jobs use: the training of both
models (jobs.train.fit_models), the gates (registry.gates.decide on jobs.evaluate.metrics_of), the
drift reference, its calibration, the day's verdict and the pooled performance check (jobs.drift),
and the k-of-n rule with its cooldown (validation.drift_policy.decide).

It runs in-process, not through Airflow as the replay does: five policies over a year are 1,800
policy-days, 30 hours through the scheduler at the replay's 16.6 s a day, for no different outcome:
the DAG tasks call these same functions (the replay shows the loop through Airflow). A candidate
depends only on its data date (the window before it, the seed, the code), so each day's is trained
once and shared by every policy that trains on that day; each policy's gates judge it against that
policy's own champion. What it leaves out, the same for every policy: the GX validation of each day
(every day of the bundled sources passes it), the smoke check of each candidate in a fresh process,
the MLflow registry and the Spark scoring (the served model scores each day in memory, as the
snapshot it would publish does).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nightshift.settings import Settings
from nightshift.spec import DatasetSpec


@dataclass(frozen=True)
class Policy:
    """When a policy retrains: every `every_days` data days of champion age (0: never on schedule), and/or on drift."""

    name: str
    every_days: int
    drift: bool
    text: str


POLICIES = {p.name: p for p in (
    Policy("never", 0, False, "the first champion serves the whole range"),
    Policy("weekly", 7, False, "retrain when the champion is 7 data days old (retrain_every_days=7)"),
    Policy("nightly", 1, False, "retrain every night (retrain_every_days=1, the default)"),
    Policy("drift", 0, True, "retrain only when drift holds (retrain_every_days=0, the `drift` DAG)"),
    Policy("drift_weekly", 7, True, "drift retrains, and a scheduled one when the champion is 7 days old"),
)}


@dataclass
class Champion:
    """A promoted model as a policy holds it: its scorer, holdout AUC and, once judged, its drift reference."""

    version: int
    data_date: date
    scorer: Any
    holdout_auc: float
    reference: pd.DataFrame | None = None
    calibration: Any = None  # validation.drift_calibration.Calibration


class Days:
    """Every partition of the range and of the windows before it, read once from the offline store."""

    def __init__(self, spec: DatasetSpec, settings: Settings, first: date, last: date) -> None:
        from nightshift import offline

        self.spec = spec
        self.frames: dict[date, pd.DataFrame] = {}
        for day in offline.days(first, last):
            try:
                self.frames[day] = offline.read_partition(settings.offline_dir, spec.name, day)
            except FileNotFoundError:
                continue

    def labelled(self, wanted: list[date]) -> tuple[pd.DataFrame, np.ndarray, list[date]]:
        """The labelled rows of the partitions among `wanted` (as jobs.train.load_window reads them)."""
        from nightshift import offline

        found = [d for d in wanted if d in self.frames]
        if not found:
            return pd.DataFrame(), np.array([]), []
        frame = pd.concat([self.frames[d] for d in found], ignore_index=True)
        y = offline.labels(self.spec, frame)
        keep = ~np.isnan(y)
        return frame[keep].reset_index(drop=True), y[keep], found

    def window(self, wanted: list[date]) -> pd.DataFrame:
        found = [self.frames[d] for d in wanted if d in self.frames]
        return pd.concat(found, ignore_index=True) if found else pd.DataFrame()


@dataclass
class Candidate:
    """The models trained for one data date: the same for every policy that trains on that day."""

    day: date
    model: Any  # the candidate: the scorer of the family `model_family` picks (jobs.train.Fitted.family)
    baseline: Any  # nightshift.model.HGBScorer
    holdout_auc: float
    prior: float  # the training base rate
    seconds: float  # fitting both models, one core


def train_candidate(spec: DatasetSpec, settings: Settings, days: Days, day: date) -> Candidate | None:
    """Both models for `day` (jobs.train.fit_models); None when the window has too few days to train."""
    from jobs.train import fit_models, windows

    train_wanted, holdout_wanted = windows(day, settings)
    train_df, y_train, found = days.labelled(train_wanted)
    holdout_df, y_hold, hold_found = days.labelled(holdout_wanted)
    if len(found) < settings.min_train_days or not hold_found or len(np.unique(y_hold)) < 2:
        return None
    t0 = time.perf_counter()
    fitted = fit_models(spec, settings, train_df, y_train, holdout_df, y_hold, log=lambda *_: None)
    family = fitted.family(settings.model_family)
    return Candidate(day, fitted.scorer(family), fitted.baseline, fitted.holdout_auc(family), float(y_train.mean()),
                     time.perf_counter() - t0)


class Candidates:
    """Candidates by data date, trained once, whichever policy asks first (or ahead, in parallel)."""

    def __init__(self, spec: DatasetSpec, settings: Settings, days: Days) -> None:
        self.spec, self.settings, self.days = spec, settings, days
        self.trained: dict[date, Candidate | None] = {}

    def get(self, day: date) -> Candidate | None:
        if day not in self.trained:
            self.trained[day] = train_candidate(self.spec, self.settings, self.days, day)
        return self.trained[day]

    def prefetch(self, dataset: str, wanted: list[date], workers: int, log: Callable[[str], None]) -> None:
        """Train every day of `wanted` in `workers` processes (one core each), in chunks of days."""
        chunks = [wanted[i:i + 8] for i in range(0, len(wanted), 8)]
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_one_thread) as pool:
            for i, got in enumerate(pool.map(_train_chunk, [(dataset, chunk) for chunk in chunks]), start=1):
                self.trained.update(got)
                log(f"candidates trained for {min(got)}..{max(got)} ({i}/{len(chunks)} chunks)")


def _train_chunk(args: tuple[str, list[date]]) -> dict[date, Candidate | None]:
    from jobs.train import windows

    dataset, chunk = args
    spec, settings = _dataset(dataset)
    days = Days(spec, settings, windows(chunk[0], settings)[0][0], chunk[-1])
    return {day: train_candidate(spec, settings, days, day) for day in chunk}


def _dataset(dataset: str) -> tuple[DatasetSpec, Settings]:
    from nightshift.settings import get_settings

    base = get_settings()
    spec = base.spec(dataset)
    return spec, base.for_dataset(spec)


@dataclass
class Outcome:
    """One policy's candidate and what the gates said."""

    version: int
    promoted: bool
    seconds: float
    holdout_auc: float


@dataclass
class PolicyRun:
    """The state of one policy as it replays the days."""

    policy: Policy
    spec: DatasetSpec
    settings: Settings
    days: Days
    candidates: Candidates
    log: Callable[[str], None]
    champion: Champion | None = None
    versions: int = 0
    served: dict[date, tuple[np.ndarray, np.ndarray, int]] = field(default_factory=dict)  # day -> y, p, version
    windows: list[tuple[int, Any]] = field(default_factory=list)  # (champion version, drift_policy.Window)
    last_retrain: date | None = None
    last_was_override: bool = False
    rows: list[dict[str, Any]] = field(default_factory=list)

    def train(self, day: date) -> Outcome | None:
        """The candidate for `day` through the gates against this policy's champion; None when the window
        has too few days to train."""
        from jobs.evaluate import metrics_of, policy_for
        from jobs.train import windows
        from registry.gates import Smoke, decide

        made = self.candidates.get(day)
        if made is None:
            return None
        spec, settings = self.spec, self.settings
        holdout_df, y_hold, _ = self.days.labelled(windows(day, settings)[1])
        rows = settings.min_slice_rows
        candidate = metrics_of(made.model.predict_proba(holdout_df), spec, holdout_df, y_hold, rows, made.prior)
        baseline = metrics_of(made.baseline.predict_proba(holdout_df), spec, holdout_df, y_hold, rows)
        current = (metrics_of(self.champion.scorer.predict_proba(holdout_df), spec, holdout_df, y_hold, rows)
                   if self.champion else None)
        decision = decide(validation_passed=True, candidate=candidate, champion=current, baseline=baseline,
                          smoke=Smoke(loaded=True, rows=settings.smoke_rows), policy=policy_for(spec, settings))
        self.versions += 1
        if decision.promote:
            self.champion = Champion(self.versions, day, made.model, candidate.auc)
        return Outcome(self.versions, decision.promote, made.seconds, candidate.auc)

    def drift(self, day: date, raw: pd.DataFrame) -> dict[str, Any]:
        """The drift check of `day` against the champion, and the retrain decision (jobs.drift's steps)."""
        from jobs.drift import DAY, calibrate_reference, features_of, judge_performance, policy_of, reference_rows
        from jobs.train import windows_of
        from validation.drift import SCORE
        from validation.drift_calibration import day_distances
        from validation.drift_policy import Window, decide

        spec, settings, champion = self.spec, self.settings, self.champion
        assert champion is not None
        policy = policy_of(settings)
        if champion.reference is None:
            train_days, _ = windows_of(champion.data_date, settings.train_days, settings.holdout_days)
            ref, fraction = reference_rows(spec, settings, self.days.window(train_days), champion.scorer.predict_proba)
            champion.calibration, _ = calibrate_reference(spec, settings, ref, fraction)
            champion.reference = ref.drop(columns=[DAY])
        cal = champion.calibration
        out: dict[str, Any] = {"data_drift": None, "prediction_drift": None, "drift_share": None, "worst": None,
                               "score_distance": None, "performance_drift": None, "pooled_auc": None,
                               "auc_bound": None, "retrain_on_drift": False, "cooldown": False, "fired": ""}
        if cal.row_fraction < 1:
            raw = raw.sample(frac=cal.row_fraction, random_state=settings.seed).reset_index(drop=True)
        if len(raw) >= settings.drift_min_rows:
            current = features_of(spec, raw)
            current[SCORE] = champion.scorer.predict_proba(raw[spec.raw_inputs])
            distances = day_distances(champion.reference, current, numeric=list(cal.numeric),
                                      categorical=list(cal.categorical))
            verdict = cal.judge(distances)
            out.update(data_drift=verdict.data_drift, prediction_drift=verdict.prediction_drift,
                       drift_share=verdict.share, worst=verdict.worst, score_distance=distances[SCORE])
        label_day = day - timedelta(days=settings.label_delay_days)
        pooled: list[tuple[np.ndarray, np.ndarray]] = []
        for back in range(settings.drift_window_days):
            got = self.served.get(label_day - timedelta(days=back))
            if got is None or got[2] != champion.version:
                break
            pooled.append((got[0], got[1]))
        severe = False
        if pooled:
            judged, severe = judge_performance(pooled, champion.holdout_auc, settings, policy)
            out.update(performance_drift=judged.drifted, pooled_auc=judged.auc, auc_bound=judged.lower_bound)
        today = Window(day, out["data_drift"], out["prediction_drift"], out["performance_drift"])
        first = day - timedelta(days=policy.window_days - 1)
        past = [w for v, w in self.windows if v == champion.version and first <= w.day < day]
        self.windows.append((champion.version, today))
        decision = decide(day, [*past, today], figures={}, severe=severe, last_retrain=self.last_retrain,
                          last_was_override=self.last_was_override, policy=policy)
        out.update(retrain_on_drift=decision.retrain, cooldown=decision.cooldown_until is not None,
                   fired=", ".join(decision.fired))
        if decision.retrain:
            self.last_retrain, self.last_was_override = day, decision.override
        return out

    def step(self, day: date) -> None:
        """One data date: what was served for it, the scheduled retrain, the drift check and its retrain."""
        from nightshift import offline
        from nightshift.metrics import auc_and_log_loss

        settings, spec = self.settings, self.spec
        raw = self.days.frames.get(day)
        row: dict[str, Any] = {"policy": self.policy.name, "data_date": day, "champion": None, "served_auc": None,
                               "trained": 0, "train_seconds": 0.0, "promoted": 0, "rejected": 0, "trigger": ""}
        if self.champion is not None and raw is not None:
            y = offline.labels(spec, raw)
            keep = ~np.isnan(y)
            p = self.champion.scorer.predict_proba(raw.loc[keep, spec.raw_inputs])
            self.served[day] = (y[keep], p, self.champion.version)
            row["champion"] = self.champion.version
            if keep.sum() >= settings.drift_min_rows and len(np.unique(y[keep])) == 2:
                row["served_auc"] = auc_and_log_loss(y[keep], p)[0]
        if raw is None:
            self.rows.append(row)
            return
        trained_today: Outcome | None = None
        due = self.champion is None or (
            self.policy.every_days > 0 and (day - self.champion.data_date).days >= self.policy.every_days)
        if due:
            trained_today = self._train(day, row, "first" if self.champion is None else "schedule")
        if self.policy.drift and self.champion is not None:
            judged = self.drift(day, raw)
            row.update(judged)
            if judged["retrain_on_drift"] and trained_today is None:  # a same-day candidate is reused
                self._train(day, row, "drift")
        self.rows.append(row)

    def _train(self, day: date, row: dict[str, Any], trigger: str) -> Outcome | None:
        outcome = self.train(day)
        if outcome is None:
            return None
        row.update(trained=row["trained"] + 1, train_seconds=row["train_seconds"] + outcome.seconds,
                   promoted=row["promoted"] + int(outcome.promoted),
                   rejected=row["rejected"] + int(not outcome.promoted),
                   trigger=(row["trigger"] + " " + trigger).strip())
        self.log(f"{self.policy.name} {day}: {trigger} candidate v{outcome.version} "
                 f"{'promoted' if outcome.promoted else 'rejected'} (holdout AUC {outcome.holdout_auc:.3f})")
        return outcome


def run_policy(run: PolicyRun, start: date, end: date) -> pd.DataFrame:
    """One policy over start..end: a row per day (served AUC, trainings, gate outcomes, drift figures)."""
    from nightshift import offline

    t0 = time.perf_counter()
    for day in offline.days(start, end):
        run.step(day)
    out = pd.DataFrame(run.rows)
    out.attrs["seconds"] = time.perf_counter() - t0
    run.log(f"{run.policy.name}: {len(out)} days in {out.attrs['seconds']:.0f} s")
    return out


def _one_thread() -> None:
    """One training on one core: the models are small, and the days train side by side."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    threadpool_limits(1)


def backtest(dataset: str, start: date, end: date, policies: list[str], *, workers: int = 1,
             log: Callable[[str], None] = print) -> pd.DataFrame:
    """Every policy over start..end, on the same candidates; their daily rows, one frame.

    A candidate depends only on its data date (the window before it, the seed, the code), so each is
    trained once and every policy that trains on that day gets it; each policy's gates judge it
    against that policy's own champion. With a nightly policy every day gets one: they are trained
    ahead, in `workers` processes.
    """
    from jobs.train import windows
    from nightshift import offline

    unknown = [p for p in policies if p not in POLICIES]
    if unknown:
        raise ValueError(f"unknown policy {', '.join(unknown)}: choose from {', '.join(POLICIES)}")
    if end < start:
        raise ValueError(f"END {end} is before START {start}")
    t0 = time.perf_counter()
    _one_thread()
    spec, settings = _dataset(dataset)
    days = Days(spec, settings, windows(start, settings)[0][0], end)
    candidates = Candidates(spec, settings, days)
    if workers > 1 and any(POLICIES[p].every_days == 1 for p in policies):
        candidates.prefetch(dataset, offline.days(start, end), workers, log)
        log(f"trained {sum(c is not None for c in candidates.trained.values())} candidates in "
            f"{time.perf_counter() - t0:.0f} s ({workers} processes)")
    frames = [run_policy(PolicyRun(POLICIES[p], spec, settings, days, candidates, log), start, end)
              for p in policies]
    out = pd.concat(frames, ignore_index=True)
    out.attrs["seconds"] = time.perf_counter() - t0
    out.attrs["policy_seconds"] = {p: round(f.attrs["seconds"], 1) for p, f in zip(policies, frames, strict=True)}
    return out


def summarise(daily: pd.DataFrame, floor: float) -> pd.DataFrame:
    """One row per policy: served AUC (mean, days below the gates' floor), trainings, promotions,
    rejections, training compute, and the drift alarms (data drift share of judged days)."""
    rows = []
    for name, g in daily.groupby("policy", sort=False):
        auc = g["served_auc"].dropna().astype(float)
        judged = g["data_drift"].dropna() if "data_drift" in g else pd.Series(dtype=bool)
        rows.append({
            "policy": name, "served_days": len(auc), "mean_served_auc": auc.mean(),
            "days_below_floor": int((auc < floor).sum()), "retrains": int(g["trained"].sum()),
            "promotions": int(g["promoted"].sum()), "rejections": int(g["rejected"].sum()),
            "train_seconds": float(g["train_seconds"].sum()),
            "drift_judged_days": len(judged), "data_drift_days": int(judged.astype(bool).sum()),
            "data_drift_day_share": float(judged.astype(bool).mean()) if len(judged) else None,
            "prediction_drift_days": int(g["prediction_drift"].dropna().astype(bool).sum())
            if "prediction_drift" in g else 0,
            "performance_drift_days": int(g["performance_drift"].dropna().astype(bool).sum())
            if "performance_drift" in g else 0,
            "drift_retrains": int(g["trigger"].str.contains("drift").sum())})
    return pd.DataFrame(rows).set_index("policy")


def monthly(daily: pd.DataFrame) -> pd.DataFrame:
    """Mean served AUC per month (rows) and policy (columns)."""
    frame = daily.assign(month=pd.to_datetime(daily["data_date"]).dt.strftime("%Y-%m"))
    table = frame.pivot_table(index="month", columns="policy", values="served_auc", aggfunc="mean")
    return table[[p for p in pd.unique(daily["policy"]) if p in table.columns]]


def targets(summary: pd.DataFrame, months: pd.DataFrame) -> dict[str, float | None]:
    """The figures issue 20 sets targets on (None where a policy they compare is missing)."""
    have = set(summary.index)
    out: dict[str, float | None] = {"drift_alarm_day_share": None, "drift_vs_nightly_auc": None,
                                    "drift_vs_nightly_retrain_share": None, "worst_month_drift_vs_never": None}
    if "drift" in have:
        out["drift_alarm_day_share"] = _num(summary.loc["drift", "data_drift_day_share"])
    if {"drift", "nightly"} <= have:
        out["drift_vs_nightly_auc"] = _num(summary.loc["drift", "mean_served_auc"]
                                           - summary.loc["nightly", "mean_served_auc"])
        out["drift_vs_nightly_retrain_share"] = _num(summary.loc["drift", "retrains"]
                                                     / max(int(summary.loc["nightly", "retrains"]), 1))
    if {"drift", "never"} <= have:
        out["worst_month_drift_vs_never"] = _num((months["drift"] - months["never"]).min())
    return out


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts, a missing figure as None (JSON null, not NaN)."""
    return [{k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}
            for row in frame.to_dict(orient="records")]


def _num(value: Any) -> float | None:
    value = float(value)
    return None if math.isnan(value) else round(value, 4)


def write(daily: pd.DataFrame, out_dir: Path, *, floor: float, title: str, command: str) -> dict[str, Any]:
    """backtest.csv (daily), backtest.md (the table, by month), backtest.png (the chart); returns the summary."""
    out_dir.mkdir(parents=True, exist_ok=True)
    daily.to_csv(out_dir / "backtest.csv", index=False, float_format="%.4f")
    summary, months = summarise(daily, floor), monthly(daily)
    found = targets(summary, months)
    chart(daily, out_dir / "backtest.png", floor=floor, title=title)
    lines = [f"Made by `{command}` ({daily.attrs.get('seconds', 0):.0f} s).", "",
             "| policy | what it does | mean served AUC | days below the floor | retrains | promoted | rejected "
             "| training compute (s) | data drift days / judged | drift retrains |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in summary.reset_index().to_dict(orient="records"):
        drift = (f"{r['data_drift_days']} / {r['drift_judged_days']} ({r['data_drift_day_share']:.1%})"
                 if r["drift_judged_days"] else "-")
        lines.append(f"| {r['policy']} | {POLICIES[r['policy']].text} | {r['mean_served_auc']:.4f} "
                     f"| {r['days_below_floor']} | {r['retrains']} | {r['promotions']} | {r['rejections']} "
                     f"| {r['train_seconds']:.0f} | {drift} | {r['drift_retrains']} |")
    lines += ["", f"Served AUC: the served model's AUC on each day's labels ({summary['served_days'].max()} days "
              f"with a champion); the floor is the gates' min_auc ({floor}).", "", "### Mean served AUC by month", "",
              "| month | " + " | ".join(months.columns) + " |", "| --- |" + " --- |" * len(months.columns)]
    for month, r in months.iterrows():
        lines.append(f"| {month} | " + " | ".join("-" if pd.isna(v) else f"{v:.4f}" for v in r) + " |")
    lines += ["", "### Targets", "", *(f"- `{k}`: {v}" for k, v in found.items())]
    (out_dir / "backtest.md").write_text("\n".join(lines) + "\n")
    return {"summary": _records(summary.reset_index()), "monthly": _records(months.round(4).reset_index()), **found}


def chart(daily: pd.DataFrame, path: Path, *, floor: float, title: str) -> None:
    """Top: each policy's served AUC (28-day mean); bottom: its trainings, cumulative."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(13, 7.5), sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    for name, g in daily.groupby("policy", sort=False):
        x = pd.to_datetime(g["data_date"])
        top.plot(x, g["served_auc"].astype(float).rolling(28, min_periods=7).mean(), label=str(name))
        bottom.plot(x, g["trained"].cumsum(), label=str(name))
    top.axhline(floor, color="grey", ls=":", lw=1, label=f"gates' floor ({floor})")
    top.set_ylabel("served AUC, 28-day mean")
    bottom.set_ylabel("trainings, cumulative")
    top.legend(loc="lower left", fontsize=8, ncol=3)
    bottom.legend(loc="upper left", fontsize=8)
    top.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
