"""The DAGs through a real Airflow: API server, scheduler and DAG processor, metadata DB on PostgreSQL.

One deployment serves two datasets, tiny and docs/spec.md's "shop" (a spec folder of its own): each runs
`nightly` and `scoring` through the scheduler to its own champion and snapshot, and the lookup answers
for both. A run for a date outside a dataset's schedule fails naming the window. Then tiny's range is
backfilled twice and the rerun adds nothing; a drifted day's `drift` run triggers `nightly`, which the
scheduler runs with the reason.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from mlflow import MlflowClient

from jobs.context import Pipeline
from jobs.ingest import ingest
from nightshift import offline, predstore, store
from nightshift.settings import Settings, get_settings
from ops.airflow_api import AirflowAPI
from ops.serving_tier import free_port
from registry import aliases
from serving.lookup import create_app as create_lookup
from tests.conftest import create_pg_database, drop_pg_database, tiny_env
from tests.dags.conftest import airflow_env
from tests.datasets import write_shop

pytestmark = pytest.mark.slow



@pytest.fixture
def airflow(ingested: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AirflowAPI]:
    """A running Airflow (LocalExecutor, PostgreSQL metadata DB) on a free port, with the shop spec folder
    beside the packaged specs; stopped afterwards."""
    specs = write_shop(tmp_path / "specs")
    monkeypatch.setenv("NIGHTSHIFT_SPEC_DIR", str(specs))
    get_settings.cache_clear()
    db = create_pg_database("ns_airflow")
    port, password = free_port(), secrets.token_urlsafe(12)
    home = tmp_path / "airflow"
    home.mkdir()
    (home / "simple_auth_manager_passwords.json.generated").write_text(f'{{"nightshift": "{password}"}}')
    env = airflow_env(home, **tiny_env(ingested.home, NIGHTSHIFT_SPEC_DIR=str(specs)), **{
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db,
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "2",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "nightshift:admin",
        "AIRFLOW__API__BASE_URL": f"http://localhost:{port}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://localhost:{port}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "NIGHTSHIFT_DRIFT_MIN_WINDOWS": "1",  # the first drifted day fires: one drift run shows the trigger
    })
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True, capture_output=True,
                   timeout=600)
    procs = []
    for args in (["api-server", "--port", str(port)], ["scheduler"], ["dag-processor"]):
        log = open(home / f"{args[0]}.log", "w")  # noqa: SIM115 - closed with the process
        procs.append(subprocess.Popen([sys.executable, "-m", "airflow", *args], env=env, stdout=log,
                                      stderr=subprocess.STDOUT, start_new_session=True))
    api = AirflowAPI(f"http://localhost:{port}", "nightshift", password)
    try:
        api.wait_until_up(timeout=240)
        api.wait_for_dag("nightly__tiny", timeout=240)
        yield api
    finally:
        for p in procs:
            os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        drop_pg_database(db)


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


def test_two_datasets_window_rest_trigger_and_idempotent_backfill(airflow: AirflowAPI, ingested: Settings) -> None:
    client = MlflowClient(ingested.tracking_uri, ingested.tracking_uri)
    airflow.wait_for_dag("scoring__tiny", timeout=240)
    airflow.unpause("scoring__tiny")
    airflow.unpause("nightly__tiny")
    run_id = airflow.trigger("nightly__tiny", date(2013, 2, 10))
    assert airflow.wait("nightly__tiny", run_id, timeout=900, log=print) == "success"
    assert aliases.alias_version(client, "nightshift-tiny", "champion") == "1"

    # The promotion updated the champion asset: the scheduler starts `scoring` on its own.
    deadline = time.monotonic() + 120
    while not (runs := airflow._call("GET", "/dags/scoring__tiny/dagRuns", params={"run_type": "asset_triggered"})
               ["dag_runs"]):
        assert time.monotonic() < deadline, "no asset-triggered scoring run"
        time.sleep(2)
    assert airflow.wait("scoring__tiny", runs[0]["dag_run_id"], timeout=600, log=print) == "success"
    airflow._call("PATCH", "/dags/scoring__tiny", json={"is_paused": True})  # the backfill below needs no scoring
    snap = predstore.current_snapshot(store.get_engine(ingested.store_uri), dataset="tiny")
    assert snap is not None and snap["model_version"] == "1" and snap["row_count"] == 5400
    assert snap["data_end"] == date(2013, 3, 31) and snap["run_id"] == runs[0]["dag_run_id"]

    # The second dataset of the same deployment: its own DAGs, champion, scoring run and snapshot.
    shop = Pipeline.of("shop")  # settings from the environment, which now names the shop spec folder
    ingest(shop, log=print)
    for dag in ("nightly__shop", "scoring__shop"):
        airflow.wait_for_dag(dag, timeout=240)
        airflow.unpause(dag)
    shop_run = airflow.trigger("nightly__shop", date(2024, 3, 30))
    assert airflow.wait("nightly__shop", shop_run, timeout=900, log=print) == "success"
    assert aliases.alias_version(client, "nightshift-shop", "champion") == "1"
    deadline = time.monotonic() + 120
    while not (shop_scoring := airflow._call("GET", "/dags/scoring__shop/dagRuns",
                                             params={"run_type": "asset_triggered"})["dag_runs"]):
        assert time.monotonic() < deadline, "no asset-triggered scoring__shop run"
        time.sleep(2)
    assert airflow.wait("scoring__shop", shop_scoring[0]["dag_run_id"], timeout=600, log=print) == "success"
    assert len(airflow._call("GET", "/dags/scoring__tiny/dagRuns")["dag_runs"]) == 1  # tiny's was not rerun
    shop_snap = predstore.current_snapshot(store.get_engine(ingested.store_uri), dataset="shop")
    assert shop_snap is not None and shop_snap["model_name"] == "nightshift-shop" and shop_snap["row_count"] == 6000
    tiny_key = str(offline.read_partition(ingested.offline_dir, "tiny", date(2013, 2, 10))["id"].iloc[0])
    with TestClient(create_lookup(get_settings())) as lookup:
        for dataset, key in (("tiny", tiny_key), ("shop", "o-000001")):
            answer = lookup.get(f"/v1/datasets/{dataset}/predictions/{key}")
            assert answer.status_code == 200, answer.text
            assert answer.json()["model"] == {"name": f"nightshift-{dataset}", "version": "1"}
        assert lookup.get("/v1/predictions/o-000001").status_code == 404  # the default dataset is tiny
        unknown = lookup.get("/v1/datasets/nope/predictions/x")
        assert unknown.status_code == 404 and unknown.json()["detail"]["error"] == "unknown_dataset"

    # A run for a date outside tiny's schedule (2013-01-01..2013-03-31) fails at its first task, naming the
    # window; it does not report success having run nothing.
    outside = airflow.trigger("nightly__tiny", date(2013, 6, 1))
    assert airflow.wait("nightly__tiny", outside, timeout=600, log=print) == "failed"
    assert airflow.task_states("nightly__tiny", outside)["ingest"] == "failed"
    task_log = airflow._call("GET", f"/dags/nightly__tiny/dagRuns/{outside}/taskInstances/ingest/logs/1")
    assert "2013-06-01 is outside the schedule of nightly__tiny: 2013-01-01..2013-03-31" in str(task_log)

    # The Trigger form with its Params left empty, submitted as the UI does (it sends empty fields as
    # null): the run is accepted and follows the normal retrain policy. Here v1 was trained for a later
    # day, so nothing trains; a run the form had forced (a reason) would have trained.
    ui_run = airflow._call("POST", "/dags/nightly__tiny/dagRuns", json={
        "dag_run_id": None, "logical_date": "2013-02-09T00:00:00Z", "data_interval_start": None,
        "data_interval_end": None, "note": None,
        "conf": {"data_date": None, "gate_mode": "enforce", "override_reason": None, "reason": None,
                 "retrain_every_days": None}})["dag_run_id"]
    assert airflow.wait("nightly__tiny", ui_run, timeout=600, log=print) == "success"
    states = airflow.task_states("nightly__tiny", ui_run)
    assert (states["ingest"], states["validate"], states["train"]) == ("success", "success", "skipped"), states
    why = airflow.xcom("nightly__tiny", ui_run, "train", "skip_reason")
    assert "no training for 2013-02-09" in why and "trained for a later day" in why, why

    def backfill(reprocess: str) -> list[dict]:  # type: ignore[type-arg]
        out = airflow._call("POST", "/backfills", json={
            "dag_id": "nightly__tiny", "from_date": "2013-02-11T00:00:00Z", "to_date": "2013-02-12T00:00:00Z",
            "reprocess_behavior": reprocess, "max_active_runs": 1})
        return wait_backfill(airflow, out["id"])

    first = backfill("none")
    assert sorted(r["logical_date"][:10] for r in first) == ["2013-02-11", "2013-02-12"]
    assert {r["state"] for r in first} == {"success"}, first
    versions_after_first = sorted(int(v.version) for v in client.search_model_versions("name = 'nightshift-tiny'"))
    assert versions_after_first == [1, 2, 3]

    second = backfill("completed")  # rerun the same dates
    assert {r["state"] for r in second} == {"success"}, second
    versions_after_rerun = sorted(int(v.version) for v in client.search_model_versions("name = 'nightshift-tiny'"))
    assert versions_after_rerun == versions_after_first  # no duplicate versions
    for day in ("2013-02-11", "2013-02-12"):
        files = list(offline.partition_dir(ingested.offline_dir, "tiny", date.fromisoformat(day)).iterdir())
        assert [f.name for f in files] == ["part-0.parquet"]
    assert len(list((ingested.offline_dir / "tiny").iterdir())) == 90  # no stray partition folders

    # Drift through the scheduler: March drifts by design, so the drift run triggers `nightly`.
    airflow.wait_for_dag("drift__tiny", timeout=240)
    airflow.unpause("drift__tiny")
    drift_run = airflow.trigger("drift__tiny", date(2013, 3, 20))
    assert airflow.wait("drift__tiny", drift_run, timeout=600, log=print) == "success"
    assert airflow.task_states("drift__tiny", drift_run)["trigger_nightly"] == "success"
    assert airflow.wait("nightly__tiny", "drift__2013-03-20", timeout=900, log=print) == "success"
    triggered = airflow._call("GET", "/dags/nightly__tiny/dagRuns/drift__2013-03-20")
    reason = triggered["conf"]["reason"]
    assert reason.startswith("drift 2013-03-20 vs champion v") and "data drift" in reason
    newest = max(client.search_model_versions("name = 'nightshift-tiny'"), key=lambda v: int(v.version))
    assert int(newest.version) == 4 and newest.tags["trigger_reason"] == reason
    assert newest.tags["data_date"] == "2013-03-20"
