"""Replay a range of days through the DAGs, day by day, and chart what the loop did.

For each day, in order: `nightly` (ingest and validate the day; it trains only when there is no
champion yet, since the replay passes retrain_every_days=0), then `drift` for the day; when drift
triggers `nightly`, that run and the `scoring` run its promotion starts finish before the next day.
The year's partitions are loaded first (a flight schedule is known ahead), so each promotion's
snapshot scores the days still to come: what the lookup API served for them.

Two runners: `AirflowRunner` goes through a running Airflow's REST API with its own backfills (one
backfill per DAG and day) and scheduler; `DagTestRunner` runs the same DAGs in-process with dag.test()
(no scheduler), doing what the scheduler would (the triggered run, the asset-triggered scoring run).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from jobs.context import Pipeline
from nightshift import drifthistory, offline
from nightshift.runctx import DAG_KINDS, dag_id, drift_run_id

REPLAY_CONF = {"retrain_every_days": 0}  # scheduled runs only ingest and validate: drift retrains


class Runner(Protocol):
    def run(self, kind: str, day: date, conf: dict[str, Any] | None = None) -> str:
        """Run the dataset's DAG of `kind` (nightly, scoring, drift) for a data date; its final state."""

    def after_drift(self, day: date, triggered: dict[str, Any] | None) -> None:
        """Let what drift triggered (a `nightly` run, then `scoring` on a promotion) finish."""


def current_champion(ctx: Pipeline) -> str | None:
    """The champion version now (a change means a promotion, which starts `scoring`)."""
    from registry import aliases

    return aliases.alias_version(ctx.client, ctx.model_name, aliases.CHAMPION)


@dataclass
class AirflowRunner:
    """A running Airflow: backfills through the REST API, its scheduler runs everything."""

    api: Any  # ops.airflow_api.AirflowAPI
    ctx: Pipeline
    timeout: float = 3600.0
    poll: float = 0.5

    def prepare(self) -> None:
        self.api.wait_until_up()
        for kind in DAG_KINDS:
            self.api.wait_for_dag(self._id(kind))
            self.api.unpause(self._id(kind))
        self._champion = current_champion(self.ctx)
        self._scorings = self._scoring_runs()

    def _id(self, kind: str) -> str:
        return dag_id(kind, self.ctx.dataset)

    def run(self, kind: str, day: date, conf: dict[str, Any] | None = None) -> str:
        first = f"{day.isoformat()}T00:00:00Z"
        dag = self._id(kind)
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                backfill = self._call("POST", "/backfills", json={
                    "dag_id": dag, "from_date": first, "to_date": first, "reprocess_behavior": "completed",
                    "max_active_runs": 1, "dag_run_conf": conf or {}})
                break
            except RuntimeError as exc:  # a backfill closed by the scheduler's sweep, not by us
                if "already a running backfill" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(1)
        while True:
            runs = self._call("GET", f"/dags/{dag}/dagRuns",
                                  params={"logical_date_gte": first, "logical_date_lte": first})["dag_runs"]
            mine = [r for r in runs if r.get("queued_at") and _at(r["queued_at"]) >= _at(backfill["created_at"])]
            if mine and mine[0]["state"] in ("success", "failed"):
                state = str(mine[0]["state"])
                break
            if self._call("GET", f"/backfills/{backfill['id']}").get("completed_at"):
                state = str(runs[0]["state"]) if runs else "missing"
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{dag} backfill for {day} not done after {self.timeout:.0f}s")
            time.sleep(self.poll)
        self._close(backfill["id"])
        if kind == "nightly":
            self._scoring_if_promoted(day)
        return state

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        """A REST call, retried while Airflow's SQLite metadata DB is locked by the scheduler (503)."""
        for attempt in range(30):
            try:
                return self.api._call(method, path, **kwargs)
            except RuntimeError as exc:
                if "Database is locked" not in str(exc) or attempt == 29:
                    raise
                time.sleep(1)

    def _close(self, backfill_id: int) -> None:
        """Mark a backfill whose one run finished complete now: the scheduler's sweep does it only every
        30 s, and a DAG's next backfill is refused until then (that alone made a day take 30 s)."""
        try:
            self._call("PUT", f"/backfills/{backfill_id}/cancel")
        except RuntimeError as exc:
            if "already completed" not in str(exc):
                raise

    def after_drift(self, day: date, triggered: dict[str, Any] | None) -> None:
        if triggered:
            deadline = time.monotonic() + self.timeout
            nightly = self._id("nightly")
            path = f"/dags/{nightly}/dagRuns/{drift_run_id(day)}"
            while self._call("GET", path)["state"] not in ("success", "failed"):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{nightly} {drift_run_id(day)} not done after {self.timeout:.0f}s")
                time.sleep(self.poll)
            self._scoring_if_promoted(day)

    def _scoring_runs(self) -> int:
        return int(self._call("GET", f"/dags/{self._id('scoring')}/dagRuns", params={"limit": 1})["total_entries"])

    def _scoring_if_promoted(self, day: date) -> None:
        """After a promotion, wait for the `scoring` run its champion asset event starts to finish."""
        champion = current_champion(self.ctx)
        if champion == self._champion:
            return
        self._champion = champion
        deadline = time.monotonic() + self.timeout
        path = f"/dags/{self._id('scoring')}/dagRuns"
        while self._scoring_runs() <= self._scorings or self._call(
                "GET", path, params={"state": ["queued", "running"]})["total_entries"]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"scoring after the promotion of v{champion} ({day}) not done "
                                   f"after {self.timeout:.0f}s")
            time.sleep(self.poll)
        self._scorings = self._scoring_runs()


def _at(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


@dataclass
class DagTestRunner:
    """The same DAGs in this process with dag.test(); what the scheduler would start, it runs itself."""

    dag_folder: Path
    ctx: Pipeline

    def __post_init__(self) -> None:
        self._champion = current_champion(self.ctx)

    def run(self, kind: str, day: date, conf: dict[str, Any] | None = None) -> str:
        from datetime import UTC

        from airflow.dag_processing.dagbag import DagBag

        # A fresh parse per run (dag.test() leaves a run's conf in the DAG object's params), of the one file
        # that defines this kind's DAGs.
        dag = DagBag(str(self.dag_folder / f"{kind}.py")).get_dag(dag_id(kind, self.ctx.dataset))
        run = dag.test(logical_date=datetime(day.year, day.month, day.day, tzinfo=UTC), run_conf=conf)
        state = str(getattr(run.state, "value", run.state))
        if kind == "nightly":
            self._score_if_promoted(day)
        return state

    def after_drift(self, day: date, triggered: dict[str, Any] | None) -> None:
        if triggered:  # what the scheduler does with the run the trigger task created
            self.run("nightly", day, {"data_date": day.isoformat(), "reason": triggered["reason"]})

    def _score_if_promoted(self, day: date) -> None:
        champion = current_champion(self.ctx)
        if champion != self._champion:  # the champion asset would start `scoring`
            self._champion = champion
            self.run("scoring", day)


def replay(runner: Runner, ctx: Pipeline, start: date, end: date, *, log: Any = print,
           checkpoint: Any = None, every: int = 30) -> pd.DataFrame:
    """Run every day of start..end through nightly and drift; returns the daily results (collect()).

    `checkpoint(frame)` gets the results so far every `every` days (a long replay shows progress).
    """
    from jobs.ingest import ingest

    spec = ctx.spec
    ingest(ctx, start, end, log=log)  # the schedule of the days to come
    engine = ctx.engine
    t0 = time.perf_counter()
    for i, day in enumerate(offline.days(start, end), start=1):
        t = time.perf_counter()
        nightly = runner.run("nightly", day, REPLAY_CONF)
        drift = runner.run("drift", day)
        rows = drifthistory.read(engine, dataset=spec.name, start=day, end=day)
        row = rows[0] if rows else None
        triggered = {"reason": row["reason"]} if row and row["retrain"] else None
        runner.after_drift(day, triggered)
        log(f"{day} [{i}/{(end - start).days + 1}] nightly {nightly}, drift {drift}: " + _line(row)
            + f" ({time.perf_counter() - t:.1f}s)")
        if nightly != "success" or drift != "success":
            raise RuntimeError(f"replay stopped at {day}: nightly {nightly}, drift {drift} (see their task logs)")
        if checkpoint is not None and i % every == 0 and day < end:
            partial = collect(ctx, start, day)
            partial.attrs["seconds_per_day"] = (time.perf_counter() - t0) / i
            checkpoint(partial)
    seconds = time.perf_counter() - t0
    out = collect(ctx, start, end)
    out.attrs["seconds_per_day"] = seconds / max(len(out), 1)
    return out


def _line(row: dict[str, Any] | None) -> str:
    if row is None:
        return "no champion yet"
    perf = f"served AUC {row['served_auc']:.3f}" if row["served_auc"] is not None else "served AUC -"
    act = "RETRAIN" if row["retrain"] else ("cooldown" if row["cooldown"] else "-")
    return (f"v{row['model_version']}, {row['drifted_features']}/{row['features']} features drifted, "
            f"score distance {row['prediction_drift_score'] or 0:.2f}, {perf}, {act}")


def collect(ctx: Pipeline, start: date, end: date) -> pd.DataFrame:
    """One row per day: the champion judged, drift figures, served AUC, and the retrain outcome."""
    from registry.tracking import model_uri

    spec = ctx.spec
    rows = drifthistory.read(ctx.engine, dataset=spec.name, start=start, end=end)
    frame = pd.DataFrame(rows, columns=[c.name for c in drifthistory.drift_history.columns])
    days = pd.DataFrame({"data_date": offline.days(start, end)})
    frame = days.merge(frame, on="data_date", how="left")
    versions = ctx.client.search_model_versions(f"name = '{ctx.model_name}'")
    outcome = {}
    for v in versions:
        if v.tags.get("trigger_reason", "").startswith("drift "):
            outcome[v.tags.get("data_date")] = (str(v.version), v.tags.get("gate_decision", "?"))
    frame["retrain_version"] = [outcome.get(d.isoformat(), (None, None))[0] for d in frame["data_date"]]
    frame["gate_decision"] = [outcome.get(d.isoformat(), (None, None))[1] for d in frame["data_date"]]
    first = min((int(v.version) for v in versions if v.tags.get("gate_decision") == "promoted"), default=None)
    frame["first_model_auc"] = _frozen_auc(ctx, model_uri(ctx.model_name, str(first)),
                                           frame["label_date"]) if first else None
    return frame


def _frozen_auc(ctx: Pipeline, uri: str, label_days: pd.Series) -> list[float | None]:
    """AUC of one model (the first champion, never retrained) on each label day: the loop's baseline."""
    import mlflow
    import numpy as np

    from nightshift.metrics import auc_and_log_loss

    settings, spec = ctx.settings, ctx.spec
    model = mlflow.pyfunc.load_model(uri)
    out: list[float | None] = []
    for day in label_days:
        if not isinstance(day, date):
            out.append(None)
            continue
        frame = offline.read_partition(settings.offline_dir, spec.name, day)
        y = offline.labels(spec, frame)
        keep = ~np.isnan(y)
        if keep.sum() < settings.drift_min_rows or y[keep].min() == y[keep].max():
            out.append(None)
            continue
        p = np.asarray(model.predict(frame.loc[keep, spec.raw_inputs]), dtype=float)
        out.append(auc_and_log_loss(y[keep], p)[0])
    return out


def write(frame: pd.DataFrame, out_dir: Path, *, title: str, command: str) -> dict[str, Path]:
    """The daily table (CSV), a summary (Markdown) and the chart (PNG) under out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    cols = ["data_date", "model_version", "rows", "drifted_features", "drift_share", "drifted_names",
            "prediction_drift_score", "label_date", "served_model_version", "served_auc", "auc_se", "holdout_auc",
            "auc_drop", "first_model_auc", "data_drift", "prediction_drift", "performance_drift", "retrain",
            "cooldown", "retrain_version", "gate_decision"]
    csv = out_dir / "replay.csv"
    frame[cols].to_csv(csv, index=False, float_format="%.4f")
    png = out_dir / "replay.png"
    chart(frame, png, title=title)
    md = out_dir / "replay.md"
    md.write_text(summary(frame, command=command, seconds_per_day=frame.attrs.get("seconds_per_day")))
    return {"csv": csv, "png": png, "md": md}


def summary(frame: pd.DataFrame, *, command: str, seconds_per_day: float | None) -> str:
    """Markdown: the retrains with their outcome, and served AUC and drift by month."""
    lines = [f"Made by `{command}`" + (f" ({seconds_per_day:.1f} s per simulated day)." if seconds_per_day else "."),
             "", "### Drift retrains", "", "| data date | fired on | candidate | gate decision |",
             "| --- | --- | --- | --- |"]
    for _, r in frame[frame["retrain"].eq(True)].iterrows():
        fired = str(r["reason"]).split(": ", 1)[-1].split("; report", 1)[0]
        lines.append(f"| {r['data_date']} | {fired} | v{r['retrain_version'] or '?'} | {r['gate_decision'] or '?'} |")
    monthly = frame.assign(month=pd.to_datetime(frame["data_date"]).dt.strftime("%Y-%m")).groupby("month").agg(
        champions=("model_version", lambda s: ", ".join(f"v{v}" for v in pd.unique(s.dropna()))),
        served_auc=("served_auc", "mean"), first_model_auc=("first_model_auc", "mean"),
        drift_share=("drift_share", "mean"),
        score_distance=("prediction_drift_score", "mean"),
        drift_retrains=("retrain", lambda s: int(s.eq(True).sum())),
        promoted=("gate_decision", lambda s: int((s == "promoted").sum())),
        rejected=("gate_decision", lambda s: int(s.notna().sum() - (s == "promoted").sum())))
    lines += ["", "### By month", "",
              "| month | champions | mean served AUC | first champion's AUC | mean drifted share "
              "| mean score distance | drift retrains | promoted | rejected |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for month, r in monthly.iterrows():
        auc = f"{r['served_auc']:.3f}" if pd.notna(r["served_auc"]) else "-"
        frozen = f"{r['first_model_auc']:.3f}" if pd.notna(r["first_model_auc"]) else "-"
        share = f"{r['drift_share']:.2f}" if pd.notna(r["drift_share"]) else "-"
        dist = f"{r['score_distance']:.2f}" if pd.notna(r["score_distance"]) else "-"
        lines.append(f"| {month} | {r['champions'] or '-'} | {auc} | {frozen} | {share} | {dist} "
                     f"| {r['drift_retrains']} | {r['promoted']} | {r['rejected']} |")
    return "\n".join(lines) + "\n"


def chart(frame: pd.DataFrame, path: Path, *, title: str) -> None:
    """Served AUC against the served model's holdout AUC, the drift scores, and the retrain outcomes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = pd.to_datetime(frame["data_date"])
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(13, 7.5), sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    served = frame["served_auc"].astype(float)
    top.plot(x, served, ".", color="tab:blue", alpha=0.35, label="served AUC (label day)")
    top.plot(x, served.rolling(7, min_periods=3).mean(), color="tab:blue", label="served AUC, 7-day mean")
    top.step(x, frame["holdout_auc"].astype(float), where="post", color="black", lw=1, alpha=0.7,
             label="holdout AUC of the served model at promotion")
    frozen = frame["first_model_auc"].astype(float)
    top.plot(x, frozen.rolling(7, min_periods=3).mean(), color="grey", ls=":", lw=1.5,
             label="the first champion, never retrained, 7-day mean")
    top.set_ylabel("AUC")
    bottom.plot(x, frame["drift_share"].astype(float), color="tab:orange", label="share of features drifted")
    bottom.plot(x, frame["prediction_drift_score"].astype(float), color="tab:purple", alpha=0.8,
                label="score distance (prediction drift)")
    bottom.set_ylabel("drift")
    for _, r in frame[frame["retrain"].eq(True)].iterrows():
        promoted = r["gate_decision"] == "promoted"
        for ax in (top, bottom):
            ax.axvline(pd.Timestamp(r["data_date"]), color="tab:green" if promoted else "tab:red",
                       ls="-" if promoted else "--", lw=1.2, alpha=0.8)
    top.plot([], [], color="tab:green", label="drift retrain, promoted")
    top.plot([], [], color="tab:red", ls="--", label="drift retrain, rejected by the gates")
    top.legend(loc="lower left", fontsize=8, ncol=2)
    bottom.legend(loc="upper left", fontsize=8)
    top.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

