"""The drift job on the tiny dataset with a real champion, MLflow store and SQL store (SQLite, PostgreSQL).

Drift is injected into real partitions: a shifted numeric feature (which moves the scores too) and a
new category mix, judged by thresholds calibrated on the champion's own training days. Unchanged days
never retrain; the cooldown holds unless served performance collapses; a label day without labels
skips the performance check.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import urlparse

import mlflow
import numpy as np
import pandas as pd
import pytest

from jobs.context import Pipeline
from jobs.drift import check_drift
from nightshift import drifthistory, offline, predlog, store
from nightshift.settings import Settings, get_settings
from registry.tracking import configure
from tests.conftest import tiny_env, train_champion

CHAMPION_DAY = date(2013, 2, 10)  # trained on Jan 14..Feb 3, holdout Feb 4..10; March drifts by design
DRIFT_ENV = {"NIGHTSHIFT_DRIFT_MIN_ROWS": "50", "NIGHTSHIFT_DRIFT_WINDOW_DAYS": "7",
             "NIGHTSHIFT_DRIFT_MIN_WINDOWS": "3", "NIGHTSHIFT_DRIFT_COOLDOWN_DAYS": "7"}


def quiet(*_: object) -> None:
    pass


@pytest.fixture(scope="module")
def trained_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A home with the tiny dataset ingested and champion v1 trained for CHAMPION_DAY (made once)."""
    home = tmp_path_factory.mktemp("drift") / "home"
    with pytest.MonkeyPatch.context() as mp:
        for key, value in tiny_env(home, **DRIFT_ENV).items():
            mp.setenv(key, value)
        get_settings.cache_clear()
        assert train_champion(get_settings(), CHAMPION_DAY) == "1"
    get_settings.cache_clear()
    yield home


@pytest.fixture
def home(trained_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Settings of a private copy of the trained home (the MLflow artifacts stay shared, read only)."""
    copy = tmp_path / "home"
    shutil.copytree(trained_home, copy, ignore=shutil.ignore_patterns("mlartifacts"))
    for key, value in tiny_env(copy, **DRIFT_ENV, NIGHTSHIFT_MLFLOW_ARTIFACT_ROOT=str(trained_home / "mlartifacts")
                               ).items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


def rewrite(s: Settings, day: date, change: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
    """Replace a day's partition with a changed copy of itself."""
    frame = offline.read_partition(s.offline_dir, "tiny", day)
    offline.write_partition(s.offline_dir, "tiny", day, change(frame.copy()))


def serve(s: Settings, day: date, scores: Callable[[pd.DataFrame, np.ndarray], np.ndarray]) -> None:
    """Log what the endpoint would have answered for a day's entities: the champion's scores, changed."""
    frame = offline.read_partition(s.offline_dir, "tiny", day)
    configure(s, "tiny")
    model = mlflow.pyfunc.load_model("models:/nightshift-tiny/1")
    p = scores(frame, np.asarray(model.predict(frame[s.spec().raw_inputs]), dtype=float))
    rows = [{"at": pd.Timestamp(day, tz="UTC").to_pydatetime(), "dataset": "tiny", "request_id": f"r{i}",
             "entity_key": key, "inputs": "{}", "score": float(score), "label": bool(score >= 0.5),
             "model_name": "nightshift-tiny", "model_version": "1", "role": "champion", "source": "model",
             "returned": True, "latency_ms": 1.0} for i, (key, score) in enumerate(zip(frame["id"], p, strict=True))]
    predlog.append(store.get_engine(s.store_uri), rows)


def history(s: Settings) -> list[dict]:  # type: ignore[type-arg]
    return drifthistory.read(store.get_engine(s.store_uri), dataset="tiny")


def run(s: Settings, day: date) -> dict:  # type: ignore[type-arg]
    return check_drift(Pipeline(s), day, run_id=f"test-{day}", log=quiet)


def test_unchanged_days_never_retrain_on_postgres(home: Settings, pg_url: str, monkeypatch: pytest.MonkeyPatch
                                                  ) -> None:
    monkeypatch.setenv("NIGHTSHIFT_STORE_URL", pg_url)
    get_settings.cache_clear()
    s = get_settings()
    start = CHAMPION_DAY + timedelta(days=1)
    for i in range(8):
        day = start + timedelta(days=i)
        serve(s, day, lambda _frame, p: p)  # served exactly what the champion scores
        out = run(s, day)
        assert not out["retrain"] and out["fired"] == [], out
    rows = history(s)
    assert [r["data_date"] for r in rows] == [start + timedelta(days=i) for i in range(8)]
    assert not any(r["data_drift"] or r["prediction_drift"] or r["performance_drift"] or r["retrain"] for r in rows)
    judged = [r for r in rows if r["performance_drift"] is not None]
    # The first label day (the champion's data date) was never served, and the second alone holds too few
    # labels (drift_min_labels 40, about 25 positives a day): performance pools two days from then on.
    assert [r["data_date"] for r in judged] == [start + timedelta(days=i) for i in range(2, 8)]
    for r in judged:
        assert r["served_model_version"] == "1" and r["served_rows"] == 120
        assert abs(r["served_auc"] - r["holdout_auc"]) < 0.2
    run(s, start)  # a rerun replaces its day's row, and writes into the day's MLflow run instead of adding one
    assert len(history(s)) == 8
    runs = mlflow.search_runs(experiment_names=["nightshift-tiny"], output_format="list",
                              filter_string=f"tags.kind = 'drift' and tags.data_date = '{start}'")
    assert len(runs) == 1


def shift_x1(by: float) -> Callable[[pd.DataFrame], pd.DataFrame]:
    return lambda f: f.assign(x1=f["x1"] + by)


def all_segment_d(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(segment="d")


@pytest.mark.parametrize(("change", "check", "named"), [
    (shift_x1(8.0), "data", "x1"),  # a shifted numeric feature
    (all_segment_d, "data", "segment"),  # a new category mix
    (shift_x1(8.0), "prediction", "score distance"),  # ... which moves the scores, which x1 drives
], ids=["numeric", "categories", "scores"])
def test_injected_drift_retrains_on_the_kth_day_with_the_reason(home: Settings, change, check: str,
                                                                 named: str) -> None:  # type: ignore[no-untyped-def]
    days = [CHAMPION_DAY + timedelta(days=i) for i in (1, 2, 3)]
    for day in days:
        rewrite(home, day, change)
    first, second, third = (run(home, d) for d in days)
    assert not first["retrain"] and not second["retrain"]  # k = 3: one or two drifted days are not enough
    assert third["retrain"] and check in third["fired"], [r["reason"] for r in history(home)]
    reason = third["conf"]["reason"]
    assert reason.startswith(f"drift {days[2]} vs champion v1: ") and f"{check} drift" in reason and named in reason
    assert third["conf"]["data_date"] == days[2].isoformat()
    assert third["triggered_run_id"] == f"drift__{days[2]}"
    # The Evidently report is kept in MLflow and linked from the row and the reason.
    row = history(home)[-1]
    assert row["retrain"] and row["report_uri"] in reason
    path = Path(urlparse(row["report_uri"]).path)
    html = path.read_text()
    assert html.lstrip().lower().startswith("<!doctype html>") and "__score__" in html and "segment" in html


def test_cooldown_holds_unless_served_performance_collapses(home: Settings) -> None:
    days = [CHAMPION_DAY + timedelta(days=i) for i in range(1, 7)]
    for day in days:
        rewrite(home, day, shift_x1(8.0))
    outcomes = [run(home, d)["retrain"] for d in days[:5]]
    assert outcomes == [False, False, True, False, False]  # the 4th and 5th day are in the cooldown
    row = history(home)[-1]
    assert row["cooldown"] and not row["retrain"] and "cooldown" in row["reason"]
    # What was served for the 4th and 5th days turns out to be wrong way round: severe performance drift
    # (two days: the labels of each class that performance pools).
    for day in days[3:5]:
        serve(home, day, lambda _frame, p: 1 - p)
    out = run(home, days[5])
    assert out["retrain"] and "performance" in out["fired"]
    row = history(home)[-1]
    assert row["auc_drop"] >= 0.10 and row["performance_drift"] and row["served_auc"] < row["holdout_auc"] - 0.10
    assert "served AUC" in out["conf"]["reason"]


def test_a_day_without_labels_yet_skips_performance_drift(home: Settings) -> None:
    day = CHAMPION_DAY + timedelta(days=2)
    label_day = day - timedelta(days=1)
    serve(home, label_day, lambda _frame, p: p)
    rewrite(home, label_day, lambda f: f.assign(label=None))
    out = run(home, day)
    assert not out["retrain"]
    row = history(home)[-1]
    assert row["label_date"] == label_day and row["performance_drift"] is None and row["served_auc"] is None
    assert row["data_drift"] is False  # the rest of the check ran


def test_no_champion_yet_is_a_skip_not_a_failure(settings: Settings) -> None:
    from jobs.ingest import ingest

    ingest(Pipeline(settings), date(2013, 1, 1), date(2013, 1, 3), log=quiet)
    out = check_drift(Pipeline(settings), date(2013, 1, 3), log=quiet)
    assert out == {**out, "retrain": False, "skipped": "no champion yet"}
    assert history(settings) == []
