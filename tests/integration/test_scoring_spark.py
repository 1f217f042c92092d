"""Batch scoring with real PySpark: local[*], and a standalone master with two workers on loopback where scoring
that loses a worker (SIGKILL, mid-job) finishes with every row, scored as local[*] scores them (the executors
ran on the workers; tests/integration/test_cluster.py runs the scoring DAG on such a cluster too); the
README's `load_model` line, in a shell set up by `stack.sh env`, scores like the lookup serves."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pyspark
import pytest

from jobs.context import Pipeline
from jobs.publish import publish
from jobs.score import score
from nightshift import offline, predstore, store
from nightshift.settings import Settings, get_settings
from ops.serving_tier import free_port
from tests.conftest import ROOT, tiny_env, train_champion

D = date(2013, 2, 10)
SPARK_HOME = Path(pyspark.__file__).parent


def quiet(*_: object) -> None:
    pass


@pytest.fixture(scope="module")
def champion_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A tiny-dataset home with all 90 days ingested and a promoted champion (shared by this module)."""
    home = tmp_path_factory.mktemp("scoring") / "home"
    saved = dict(os.environ)
    os.environ.update(tiny_env(home, NIGHTSHIFT_SPARK_MASTER="local[2]", PYSPARK_PYTHON=sys.executable))
    get_settings.cache_clear()
    s = get_settings()
    train_champion(s, D)
    yield s
    os.environ.clear()
    os.environ.update(saved)
    get_settings.cache_clear()
    store.get_engine.cache_clear()


def all_rows(s: Settings) -> pd.DataFrame:
    frame, _ = offline.read_days(s.offline_dir, "tiny", offline.days(date(2013, 1, 1), date(2013, 3, 31)))
    return frame


@pytest.fixture(scope="module")
def expected(champion_home: Settings) -> pd.Series:
    """The registered pyfunc's score of every row, by entity key: what Spark must reproduce."""
    s = champion_home
    rows = all_rows(s)
    mlflow.set_tracking_uri(s.tracking_uri)
    mlflow.set_registry_uri(s.tracking_uri)
    p = mlflow.pyfunc.load_model("models:/nightshift-tiny@champion").predict(rows[s.spec().raw_inputs])
    return pd.Series(np.asarray(p, dtype=np.float32), index=rows["id"].astype(str))


def test_scoring_before_any_champion_fails_clearly(ingested: Settings) -> None:
    with pytest.raises(ValueError, match="nightshift-tiny has no champion yet"):
        score(Pipeline(ingested), D, run_id="manual__x", log=quiet)
    # The Spark session started beside the champion look-up is stopped, not left running.
    assert pyspark.SparkContext._active_spark_context is None


def assert_scores_match(scored: dict[str, object], expected: pd.Series, threshold: float) -> None:
    out = pd.read_parquet(str(scored["scored_path"])).set_index("entity_key")
    assert len(out) == len(expected) and out.index.is_unique
    # One feature path: Spark's scores equal the registered pyfunc's on the same raw rows.
    np.testing.assert_allclose(out.loc[expected.index, "score"].to_numpy(), expected.to_numpy(), atol=1e-6)
    assert (out["label"] == (out["score"] >= threshold)).all()


def test_local_spark_scores_every_row_like_the_registered_model(champion_home: Settings,
                                                                expected: pd.Series) -> None:
    s = champion_home
    scored = score(Pipeline(s), D, run_id="manual__local", log=quiet)
    assert scored["rows"] == 5400
    assert (scored["data_start"], scored["data_end"], scored["model_version"]) == ("2013-01-01", "2013-03-31", "1")
    assert_scores_match(scored, expected, s.spec().target.threshold)

    snap = publish(Pipeline(s), scored, actor="test", log=quiet)
    engine = store.get_engine(s.store_uri)
    found = predstore.lookup(engine, dataset="tiny", keys=expected.index.tolist())
    assert len(found) == 5400 and {r["snapshot_id"] for r in found.values()} == {snap["snapshot_id"]}


def test_readme_load_model_line_in_the_stack_shell_scores_like_the_lookup(champion_home: Settings,
                                                                           tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from serving.lookup import create_app

    s = champion_home
    if predstore.current_snapshot(store.get_engine(s.store_uri), dataset="tiny") is None:
        publish(Pipeline(s), score(Pipeline(s), D, run_id="manual__readme", log=quiet), actor="test", log=quiet)
    row = all_rows(s).iloc[7]
    with TestClient(create_app(s)) as client:
        served = client.get(f"/v1/predictions/{row['id']}").json()
    inputs = pd.DataFrame([row[s.spec().raw_inputs]]).to_json(orient="records")
    # A new shell with nothing of the test's environment: only what `stack.sh env` exports, in another folder.
    script = f"""eval "$(bash {ROOT}/infra/local/stack.sh env)"
cd {tmp_path}
python - <<'PY'
import io
import mlflow
import pandas as pd
model = mlflow.pyfunc.load_model("models:/nightshift-tiny@champion")
print("SCORE", float(model.predict(pd.read_json(io.StringIO('{inputs}'), orient="records"))[0]))
PY
"""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path), "NIGHTSHIFT_HOME": str(s.home),
           "NIGHTSHIFT_DATASET": "tiny"}
    out = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    score_line = [line for line in out.stdout.splitlines() if line.startswith("SCORE ")]
    assert score_line, out.stdout + out.stderr[-3000:]
    assert float(score_line[0].split()[1]) == pytest.approx(served["score"], abs=1e-6)
    assert served["model"]["version"] == "1"
    assert list(tmp_path.iterdir()) == [], "the shell left files (a stray mlflow.db?) in its working directory"



def wait_for(path: Path, text: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        assert proc.poll() is None, path.read_text(errors="replace")[-3000:]
        time.sleep(0.5)
    raise AssertionError(f"{text!r} not in {path} after {timeout}s:\n" + path.read_text(errors="replace")[-3000:])


@dataclass
class SparkCluster:
    """A Spark standalone master and its workers on loopback (the classes ship with pyspark); each worker in a
    process group of its own (the worker and its executors), with its own work folder."""

    url: str
    workers: list[subprocess.Popen[bytes]]
    work: list[Path]


@contextmanager
def spark_cluster(tmp_path: Path, workers: int, cores: int) -> Iterator[SparkCluster]:
    env = {**os.environ, "SPARK_HOME": str(SPARK_HOME), "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable}
    spark_class = str(SPARK_HOME / "bin" / "spark-class")
    port = free_port()
    url = f"spark://127.0.0.1:{port}"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        master_log = tmp_path / "master.log"
        master = subprocess.Popen([spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                                   "--port", str(port), "--webui-port", str(free_port())],
                                  env=env, stdout=master_log.open("wb"), stderr=subprocess.STDOUT,
                                  start_new_session=True)
        procs.append(master)
        wait_for(master_log, "I have been elected leader", master)
        started, work = [], []
        for i in range(workers):
            folder, log = tmp_path / f"worker{i}", tmp_path / f"worker{i}.log"
            worker = subprocess.Popen([spark_class, "org.apache.spark.deploy.worker.Worker", url, "--host",
                                       "127.0.0.1", "--cores", str(cores), "--memory", "1g", "--work-dir",
                                       str(folder), "--webui-port", str(free_port())],
                                      env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                                      start_new_session=True)
            procs.append(worker)
            started.append(worker)
            work.append(folder)
        for i, worker in enumerate(started):
            wait_for(tmp_path / f"worker{i}.log", "Successfully registered with master", worker)
        yield SparkCluster(url, started, work)
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)


def executor_logs(work: Path) -> list[Path]:
    return list(work.glob("app-*/*/stderr"))


def test_scoring_finishes_complete_when_a_spark_worker_is_killed_during_it(
        champion_home: Settings, expected: pd.Series, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with spark_cluster(tmp_path, workers=2, cores=1) as cluster:
        monkeypatch.setenv("NIGHTSHIFT_SPARK_MASTER", cluster.url)
        monkeypatch.setenv("NIGHTSHIFT_SPARK_DRIVER_MEMORY", "1g")
        get_settings.cache_clear()
        s = get_settings()
        outcome: dict[str, object] = {}

        def run() -> None:
            try:
                outcome["scored"] = score(Pipeline(s), D, run_id="manual__worker_killed", log=quiet)
            except BaseException as exc:  # noqa: BLE001  (reported by the assertion below)
                outcome["error"] = exc

        job = threading.Thread(target=run)
        job.start()
        # Handshake: a worker's executor has started running tasks of the scoring job; that worker is killed.
        deadline = time.monotonic() + 300
        busy: list[int] = []
        while not busy:
            busy = [i for i, work in enumerate(cluster.work)
                    if any("Running task" in p.read_text(errors="replace") for p in executor_logs(work))]
            assert job.is_alive(), f"scoring ended before any executor ran a task: {outcome}"
            assert time.monotonic() < deadline, "no executor ever ran a task"
            time.sleep(0.05)
        lost, other = busy[0], 1 - busy[0]
        os.killpg(cluster.workers[lost].pid, signal.SIGKILL)  # the worker and its executor, mid-job
        killed_during_scoring = job.is_alive()
        job.join(timeout=600)
        assert killed_during_scoring and not job.is_alive()
        assert "error" not in outcome, outcome.get("error")
        scored = outcome["scored"]
        assert isinstance(scored, dict) and scored["rows"] == 5400  # every row, once
        assert_scores_match(scored, expected, s.spec().target.threshold)
        # The snapshot it publishes is complete: every key served, from that one snapshot.
        snap = publish(Pipeline(s), scored, actor="test", log=quiet)
        found = predstore.lookup(store.get_engine(s.store_uri), dataset="tiny", keys=expected.index.tolist())
        assert len(found) == 5400 and {r["snapshot_id"] for r in found.values()} == {snap["snapshot_id"]}
        # The other worker finished the job: its executor ran tasks too.
        assert any("Running task" in p.read_text(errors="replace") for p in executor_logs(cluster.work[other]))
