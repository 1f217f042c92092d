"""The cluster topology (ops/cluster.py): Airflow's CeleryExecutor with two workers, one MLflow server on
PostgreSQL with proxied artifacts, a Spark standalone master and two workers, the stores on PostgreSQL, and
the serving tier behind HAProxy, all with the unchanged DAGs and services.

`nightly` runs through the Celery workers (train on the `training` queue); the worker running `train` is
SIGKILLed: Airflow finds the task without heartbeat and retries it on the other worker, the run succeeds and
the registry holds one model version. The promotion starts `scoring`, which runs on the Spark cluster and
publishes a complete snapshot; the lookup replicas serve it through HAProxy.
"""

from __future__ import annotations

import json
import os
import signal
import urllib.request
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from nightshift import offline, predstore, store
from nightshift.settings import Settings
from ops.airflow_api import AirflowAPI
from ops.cluster import Cluster, wait_asset_run
from ops.serving_tier import wait_for
from tests.conftest import TINY_ENV

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture
def cluster(ingested: Settings, tmp_path: Path) -> Iterator[Cluster]:
    """The topology on the tiny dataset's ingested home, on databases and a Redis DB of its own."""
    import redis

    broker = "redis://127.0.0.1:6379/11"
    redis.Redis.from_url(broker).flushdb()  # no task left queued by an earlier run
    env = {**os.environ, **TINY_ENV}
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


def task_instance(api: AirflowAPI, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
    return api._call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}")  # type: ignore[no-any-return]


def test_nightly_and_scoring_through_celery_and_spark_survive_a_lost_worker(cluster: Cluster, ingested: Settings
                                                                          ) -> None:
    api = cluster.api()
    for dag in ("nightly__tiny", "scoring__tiny"):
        api.wait_for_dag(dag, timeout=300)
        api.unpause(dag)
    run_id = api.trigger("nightly__tiny", date(2013, 2, 10), log=lambda *_: None)

    # Handshake: `train` runs on a worker (its task instance names the node); that worker dies.
    wait_for(lambda: task_instance(api, "nightly__tiny", run_id, "train")["state"] == "running", "train to run",
             600, lambda: None if api.run_state("nightly__tiny", run_id) in ("queued", "running") else
             pytest.fail(f"nightly ended before train ran: {api.failure('nightly__tiny', run_id)}"))
    first = task_instance(api, "nightly__tiny", run_id, "train")
    victim = first["hostname"]
    assert victim in ("worker1", "worker2") and first["queue"] == "training", first
    os.killpg(cluster.procs[f"celery-{victim}"].pid, signal.SIGKILL)

    assert api.wait("nightly__tiny", run_id, timeout=900, log=lambda *_: None) == "success", \
        api.failure("nightly__tiny", run_id)
    retried = task_instance(api, "nightly__tiny", run_id, "train")
    assert retried["try_number"] == 2 and retried["hostname"] not in ("", victim), retried
    client = MlflowClient(cluster.mlflow_url, cluster.mlflow_url)
    versions = client.search_model_versions("name = 'nightshift-tiny'")
    assert [v.version for v in versions] == ["1"], "one model version, however many tries trained"
    assert client.get_model_version_by_alias("nightshift-tiny", "champion").version == "1"
    # Artifacts went through the server (proxied), into its destination.
    assert any((cluster.dir / "artifacts").rglob("mlp.pt"))

    # The promotion starts `scoring`; it runs on the Spark cluster and publishes the whole snapshot.
    scoring = wait_asset_run(api, "scoring__tiny")
    assert api.wait("scoring__tiny", scoring, timeout=900, log=lambda *_: None) == "success", \
        api.failure("scoring__tiny", scoring)
    assert cluster.log_says("spark-master", "Registering app")
    engine = store.get_engine(cluster.db("store"))
    snap = predstore.current_snapshot(engine, dataset="tiny")
    assert snap is not None and snap["model_version"] == "1" and snap["row_count"] == 5400, snap
    assert predstore.count_rows(engine, snap["id"]) == 5400  # once each: no partition written twice

    # The lookup replicas serve it through HAProxy.
    tier = cluster.serve()
    served_by = set()
    keys = offline.read_partition(ingested.offline_dir, "tiny", date(2013, 2, 10))["id"].astype(str)
    for key in keys.iloc[:20]:
        with urllib.request.urlopen(f"{tier.lookup_url}/v1/datasets/tiny/predictions/{key}", timeout=10) as answer:
            body = json.loads(answer.read())
            assert (body["model"]["version"], body["snapshot"]["id"], body["snapshot"]["run_id"]) == \
                ("1", snap["id"], scoring), body
            served_by.add(answer.headers["X-Served-By"])
    assert served_by == {"lookup1", "lookup2"}
