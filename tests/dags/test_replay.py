"""The replay, CI-sized: three months of the tiny dataset (whose March drifts by design) day by day
through `nightly`, `drift` and `scoring` with dag.test(), then its chart and table, under the policy
the README advises from the backtest: a weekly scheduled retrain (retrain_every_days=7) plus drift.

It shows the loop: no champion and no failure before the window has enough days, then a first
champion; quiet days that never retrain (and rarely alarm); drift (judged by `drift` runs on the real partitions)
triggering `nightly` runs that exist in Airflow with the reason in their conf; candidates that carry
that reason; gates that decide; a rerun of a drift run triggering nothing; and served models that
beat the first champion, never retrained, once March has drifted.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
from mlflow import MlflowClient

from nightshift.settings import Settings
from tests.conftest import ROOT, tiny_env
from tests.dags.conftest import airflow_env, nightly_runs, run_dag


def test_three_month_replay_shows_the_loop(airflow_home: Path, settings: Settings, tmp_path: Path) -> None:
    out = tmp_path / "replay"
    # Only tiny's DAGs: dag.test() parses and syncs every DAG of the folder on each of the ~190 runs.
    env = airflow_env(airflow_home, **tiny_env(settings.home, NIGHTSHIFT_RETRAIN_EVERY_DAYS="7",
                                               NIGHTSHIFT_DAG_DATASETS="tiny"),
                      PYSPARK_PYTHON=sys.executable, COLUMNS="200")
    proc = subprocess.run([sys.executable, "-m", "ops.cli", "replay", "2013-01-01", "2013-03-31",
                           "--via", "dag-test", "--out", str(out)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=1500)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    assert "replayed 90 days" in proc.stdout

    days = pd.read_csv(out / "replay.csv", parse_dates=["data_date"])
    assert len(days) == 90 and days["data_date"].is_monotonic_increasing
    judged = days[days["model_version"].notna()]
    # Candidates come once the training window has min_train_days (5) days, on Jan 12; the first champion
    # as soon as the gates pass one.
    assert pd.Timestamp("2013-01-12") <= judged["data_date"].min() <= pd.Timestamp("2013-01-20")
    # Until Feb 20 the data is like January's: no drift retrain, and data drift only as often as the
    # calibration expects of stationary days (a young champion's 8..21 reference days: 1 in 9..22 per
    # statistic). From Feb 21 it drifts by design.
    before = days[days["data_date"] < pd.Timestamp("2013-02-21")]
    assert before["data_drift"].eq(True).sum() <= 3 and not before["retrain"].eq(True).any()
    after = days[days["data_date"] >= pd.Timestamp("2013-02-21")]
    assert after["data_drift"].eq(True).sum() >= 10
    retrains = days[days["retrain"].eq(True)]
    drift_retrains = retrains[retrains["data_date"] >= pd.Timestamp("2013-02-21")]
    assert len(drift_retrains) >= 2 and drift_retrains["gate_decision"].notna().all()
    assert (drift_retrains["gate_decision"] == "promoted").any() and (retrains["gate_decision"] == "rejected").any()
    # The cooldown: at most two drift retrains within any 7 data days (a severe drop overrides it once).
    for day in retrains["data_date"]:
        assert retrains["data_date"].between(day, day + pd.Timedelta(days=6)).sum() <= 2

    # Served AUC falls as the drift sets in and recovers once a retrain on drifted data is promoted:
    # over March's last week the served model beats the first champion, never retrained, on the
    # same labelled days.
    early = days[(days["data_date"] >= pd.Timestamp("2013-03-01")) & (days["data_date"] < pd.Timestamp("2013-03-15"))]
    late = days[days["data_date"] >= pd.Timestamp("2013-03-25")]
    assert late["served_auc"].notna().sum() >= 5
    assert late["served_auc"].mean() > early["served_auc"].mean() + 0.1
    assert late["served_auc"].mean() > late["first_model_auc"].mean() + 0.1

    # Each drift retrain is a real `nightly` run in Airflow's metadata DB with the reason in its conf,
    # and the candidate it trained carries that reason.
    runs = {r["run_id"]: r for r in nightly_runs(airflow_home, settings.home)}
    client = MlflowClient(settings.tracking_uri, settings.tracking_uri)
    for _, row in retrains.iterrows():
        day = row["data_date"].date().isoformat()
        assert runs[f"drift__{day}"]["conf"]["data_date"] == day
        reason = runs[f"drift__{day}"]["conf"]["reason"]
        version = client.get_model_version("nightshift-tiny", str(int(row["retrain_version"])))
        assert version.tags["trigger_reason"] == reason and reason.startswith(f"drift {day} vs champion v")

    # Rerunning a drift run that retrained triggers no second retrain.
    day = retrains["data_date"].iloc[0].date().isoformat()
    again = run_dag(airflow_home, settings.home, "drift", day)
    assert again["state"] == "success" and again["tasks"]["trigger_nightly"] == "skipped", again["log"][-3000:]
    assert [r["run_id"] for r in nightly_runs(airflow_home, settings.home)].count(f"drift__{day}") == 1

    assert (out / "replay.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = (out / "replay.md").read_text()
    assert "| 2013-03 |" in summary and "s per simulated day" in summary
