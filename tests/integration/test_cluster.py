"""The DAGs through a real Airflow on the cluster topology (ops/cluster.py): API server, scheduler, DAG
processor, triggerer and two Celery workers, metadata DB on PostgreSQL; one MLflow server on PostgreSQL with
proxied artifacts; a Spark standalone master and two workers; the stores on PostgreSQL; the serving tier
behind HAProxy. The DAGs and services are unchanged: only settings make it a cluster.

One deployment serves two datasets, tiny and docs/spec.md's "shop" (a spec folder of its own).
`nightly__tiny` runs through the Celery workers (train on the `training` queue) and the worker running
`train` is SIGKILLed: Airflow finds the task without heartbeat and retries it on the other worker, the run
succeeds and the registry holds one model version. The promotion starts `scoring`, which runs on the Spark
cluster and publishes a complete snapshot; shop gets its own champion, scoring run and snapshot; the lookup
replicas serve both through HAProxy. Then, on the same scheduler: a run for a date outside a dataset's
schedule fails naming the window; the Trigger form's empty Params are accepted; tiny's range is backfilled
twice and the rerun adds nothing; a drifted day's `drift` run triggers `nightly`, which runs with the reason.

(One Airflow for all of it: the LocalExecutor of `make up` runs the same DAGs with dag.test() in
tests/dags, and the scheduler's behaviour does not depend on the executor.)
"""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from jobs.context import Pipeline
from jobs.ingest import ingest
from nightshift import offline, predstore, store
from nightshift.settings import Settings, get_settings
from ops.airflow_api import AirflowAPI
from ops.cluster import Cluster, wait_asset_run
from ops.serving_tier import wait_for
from tests.conftest import TINY_ENV
from tests.datasets import write_shop

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture
def cluster(ingested: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    """The topology on the tiny dataset's ingested home with the shop spec folder beside the packaged
    specs, on databases and a Redis DB of its own."""
    import redis

    specs = write_shop(tmp_path / "specs")
    monkeypatch.setenv("NIGHTSHIFT_SPEC_DIR", str(specs))
    get_settings.cache_clear()
    broker = "redis://127.0.0.1:6379/11"
    redis.Redis.from_url(broker).flushdb()  # no task left queued by an earlier run
    env = {**os.environ, **TINY_ENV, "NIGHTSHIFT_SPEC_DIR": str(specs),
           "NIGHTSHIFT_DAG_DATASETS": "tiny,shop",  # the two datasets it serves: the bundled others get no DAGs
           "NIGHTSHIFT_DRIFT_MIN_WINDOWS": "1"}  # the first drifted day fires: one drift run shows the trigger
    # A lost worker's task found after 15 s without heartbeat and retried 3 s later (the topology: 30 s, 15 s).
    quicker = {"AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "15",
               "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "3"}
    topology = Cluster(ingested.home, env, prefix=f"ns_cluster_{os.getpid()}", broker=broker, airflow_options=quicker)
    topology.drop_databases()
    try:
        topology.up(log=lambda *_: None)
        yield topology
    finally:
        topology.down()
        topology.drop_databases()
        get_settings.cache_clear()


def task_instance(api: AirflowAPI, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
    return api._call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}")  # type: ignore[no-any-return]


def wait_backfill(api: AirflowAPI, backfill_id: int, timeout: float = 900) -> list[dict]:  # type: ignore[type-arg]
    """The runs of one backfill once it completed (fails at the timeout: never a partial answer)."""
    deadline = time.monotonic() + timeout
    while not (backfill := api._call("GET", f"/backfills/{backfill_id}")).get("completed_at"):
        assert time.monotonic() < deadline, f"backfill {backfill_id} not completed after {timeout:.0f}s"
        time.sleep(2)
    # The backfill runs of its dates (the REST API's runs do not name their backfill; Airflow keeps one run
    # per logical date, which a rerun of the backfill reprocesses).
    mine = api._call("GET", "/dags/nightly__tiny/dagRuns", params={
        "run_type": "backfill", "logical_date_gte": backfill["from_date"], "logical_date_lte": backfill["to_date"],
        "limit": 100})["dag_runs"]
    assert mine, f"backfill {backfill_id} has no run"
    return mine  # type: ignore[no-any-return]  # (JSON)


def lookup(url: str) -> tuple[int, dict[str, Any], str]:
    """Status, JSON body and X-Served-By of one GET through HAProxy."""
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, json.loads(answer.read()), answer.headers["X-Served-By"]
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read()), err.headers["X-Served-By"]


def test_two_datasets_through_celery_and_spark_survive_a_lost_worker(cluster: Cluster, ingested: Settings) -> None:
    api = cluster.api()
    log = lambda *_: None  # noqa: E731
    for dag in ("nightly__tiny", "scoring__tiny"):
        api.wait_for_dag(dag, timeout=300)
        api.unpause(dag)
    run_id = api.trigger("nightly__tiny", date(2013, 2, 10), log=log)

    # Handshake: `train` runs on a worker (its task instance names the node); that worker dies.
    wait_for(lambda: task_instance(api, "nightly__tiny", run_id, "train")["state"] == "running", "train to run",
             600, lambda: None if api.run_state("nightly__tiny", run_id) in ("queued", "running") else
             pytest.fail(f"nightly ended before train ran: {api.failure('nightly__tiny', run_id)}"))
    first = task_instance(api, "nightly__tiny", run_id, "train")
    victim = first["hostname"]
    assert victim in ("worker1", "worker2") and first["queue"] == "training", first
    os.killpg(cluster.procs[f"celery-{victim}"].pid, signal.SIGKILL)

    assert api.wait("nightly__tiny", run_id, timeout=900, log=log) == "success", api.failure("nightly__tiny", run_id)
    retried = task_instance(api, "nightly__tiny", run_id, "train")
    assert retried["try_number"] == 2 and retried["hostname"] not in ("", victim), retried
    client = MlflowClient(cluster.mlflow_url, cluster.mlflow_url)
    versions = client.search_model_versions("name = 'nightshift-tiny'")
    assert [v.version for v in versions] == ["1"], "one model version, however many tries trained"
    assert client.get_model_version_by_alias("nightshift-tiny", "champion").version == "1"
    # Artifacts went through the server (proxied), into its destination.
    assert any((cluster.dir / "artifacts").rglob("mlp.pt"))

    # The promotion updated the champion asset: the scheduler starts `scoring`, which runs on the Spark
    # cluster and publishes the whole snapshot.
    scoring = wait_asset_run(api, "scoring__tiny")
    assert api.wait("scoring__tiny", scoring, timeout=900, log=log) == "success", api.failure("scoring__tiny", scoring)
    api._call("PATCH", "/dags/scoring__tiny", json={"is_paused": True})  # the backfill below needs no scoring
    assert cluster.log_says("spark-master", "Registering app")
    engine = store.get_engine(cluster.db("store"))
    snap = predstore.current_snapshot(engine, dataset="tiny")
    assert snap is not None and snap["model_version"] == "1" and snap["row_count"] == 5400, snap
    assert snap["data_end"] == date(2013, 3, 31) and snap["run_id"] == scoring
    assert predstore.count_rows(engine, snap["id"]) == 5400  # once each: no partition written twice

    # The second dataset of the same deployment: its own DAGs, champion, scoring run and snapshot.
    ingest(Pipeline.of("shop"), log=log)  # the offline store is the cluster's shared home
    for dag in ("nightly__shop", "scoring__shop"):
        api.wait_for_dag(dag, timeout=300)
        api.unpause(dag)
    shop_run = api.trigger("nightly__shop", date(2024, 3, 30), log=log)
    assert api.wait("nightly__shop", shop_run, timeout=900, log=log) == "success", \
        api.failure("nightly__shop", shop_run)
    assert client.get_model_version_by_alias("nightshift-shop", "champion").version == "1"
    shop_scoring = wait_asset_run(api, "scoring__shop")
    assert api.wait("scoring__shop", shop_scoring, timeout=900, log=log) == "success", \
        api.failure("scoring__shop", shop_scoring)
    assert len(api._call("GET", "/dags/scoring__tiny/dagRuns")["dag_runs"]) == 1  # tiny's was not rerun
    assert {d["dag_id"].split("__")[1] for d in api._call("GET", "/dags")["dags"]} == {"tiny", "shop"}
    shop_snap = predstore.current_snapshot(engine, dataset="shop")
    assert shop_snap is not None and shop_snap["model_name"] == "nightshift-shop" and shop_snap["row_count"] == 6000

    # The lookup replicas serve both through HAProxy.
    tier = cluster.serve()
    served_by = set()
    keys = offline.read_partition(ingested.offline_dir, "tiny", date(2013, 2, 10))["id"].astype(str)
    for key in keys.iloc[:20]:
        status, body, replica = lookup(f"{tier.lookup_url}/v1/datasets/tiny/predictions/{key}")
        assert status == 200 and (body["model"], body["snapshot"]["id"], body["snapshot"]["run_id"]) == \
            ({"name": "nightshift-tiny", "version": "1"}, snap["id"], scoring), body
        served_by.add(replica)
    assert served_by == {"lookup1", "lookup2"}
    status, body, _ = lookup(f"{tier.lookup_url}/v1/datasets/shop/predictions/o-000001")
    assert status == 200 and body["model"] == {"name": "nightshift-shop", "version": "1"}, body
    assert lookup(f"{tier.lookup_url}/v1/predictions/o-000001")[0] == 404  # the default dataset is tiny
    status, body, _ = lookup(f"{tier.lookup_url}/v1/datasets/nope/predictions/x")
    assert status == 404 and body["detail"]["error"] == "unknown_dataset", body

    # A run for a date outside tiny's schedule (2013-01-01..2013-03-31) fails at its first task, naming the
    # window; it does not report success having run nothing.
    outside = api.trigger("nightly__tiny", date(2013, 6, 1), log=log)
    assert api.wait("nightly__tiny", outside, timeout=600, log=log) == "failed"
    assert api.task_states("nightly__tiny", outside)["ingest"] == "failed"
    task_log = api._call("GET", f"/dags/nightly__tiny/dagRuns/{outside}/taskInstances/ingest/logs/1")
    assert "2013-06-01 is outside the schedule of nightly__tiny: 2013-01-01..2013-03-31" in str(task_log)

    # The Trigger form with its Params left empty, submitted as the UI does (it sends empty fields as
    # null): the run is accepted and follows the normal retrain policy. Here v1 was trained for a later
    # day, so nothing trains; a run the form had forced (a reason) would have trained.
    ui_run = api._call("POST", "/dags/nightly__tiny/dagRuns", json={
        "dag_run_id": None, "logical_date": "2013-02-09T00:00:00Z", "data_interval_start": None,
        "data_interval_end": None, "note": None,
        "conf": {"data_date": None, "gate_mode": "enforce", "override_reason": None, "reason": None,
                 "retrain_every_days": None}})["dag_run_id"]
    assert api.wait("nightly__tiny", ui_run, timeout=600, log=log) == "success"
    states = api.task_states("nightly__tiny", ui_run)
    assert (states["ingest"], states["validate"], states["train"]) == ("success", "success", "skipped"), states
    why = api.xcom("nightly__tiny", ui_run, "train", "skip_reason")
    assert "no training for 2013-02-09" in why and "trained for a later day" in why, why

    def backfill(reprocess: str) -> list[dict]:  # type: ignore[type-arg]
        out = api._call("POST", "/backfills", json={
            "dag_id": "nightly__tiny", "from_date": "2013-02-11T00:00:00Z", "to_date": "2013-02-12T00:00:00Z",
            "reprocess_behavior": reprocess, "max_active_runs": 1})
        return wait_backfill(api, out["id"])

    first_backfill = backfill("none")
    assert sorted(r["logical_date"][:10] for r in first_backfill) == ["2013-02-11", "2013-02-12"]
    assert {r["state"] for r in first_backfill} == {"success"}, first_backfill
    versions_after_first = sorted(int(v.version) for v in client.search_model_versions("name = 'nightshift-tiny'"))
    assert versions_after_first == [1, 2, 3]

    second_backfill = backfill("completed")  # rerun the same dates
    assert {r["state"] for r in second_backfill} == {"success"}, second_backfill
    versions_after_rerun = sorted(int(v.version) for v in client.search_model_versions("name = 'nightshift-tiny'"))
    assert versions_after_rerun == versions_after_first  # no duplicate versions
    for day in ("2013-02-11", "2013-02-12"):
        files = list(offline.partition_dir(ingested.offline_dir, "tiny", date.fromisoformat(day)).iterdir())
        assert [f.name for f in files] == ["part-0.parquet"]
    assert len(list((ingested.offline_dir / "tiny").iterdir())) == 90  # no stray partition folders

    # Drift through the scheduler: March drifts by design, so the drift run triggers `nightly`.
    api.wait_for_dag("drift__tiny", timeout=300)
    api.unpause("drift__tiny")
    drift_run = api.trigger("drift__tiny", date(2013, 3, 20), log=log)
    assert api.wait("drift__tiny", drift_run, timeout=600, log=log) == "success", api.failure("drift__tiny", drift_run)
    assert api.task_states("drift__tiny", drift_run)["trigger_nightly"] == "success"
    assert api.wait("nightly__tiny", "drift__2013-03-20", timeout=900, log=log) == "success"
    reason = api._call("GET", "/dags/nightly__tiny/dagRuns/drift__2013-03-20")["conf"]["reason"]
    assert reason.startswith("drift 2013-03-20 vs champion v") and "data drift" in reason
    newest = max(client.search_model_versions("name = 'nightshift-tiny'"), key=lambda v: int(v.version))
    assert int(newest.version) == 4 and newest.tags["trigger_reason"] == reason
    assert newest.tags["data_date"] == "2013-03-20"
