"""The DAG folder parses cleanly and cheaply into one `nightly`, `scoring` and `drift` per dataset, each with the
shape the design promises and its own assets and schedule window."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT
from tests.dags.conftest import DAGS, airflow_env


def parse(airflow_home, **extra):  # type: ignore[no-untyped-def]
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "dags" / "probe_parse.py"), str(DAGS)],
                          env=airflow_env(airflow_home, **extra), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "log": proc.stdout + proc.stderr}


def test_dag_folder_parses_without_db_queries_lookups_or_heavy_imports(airflow_home):  # type: ignore[no-untyped-def]
    out = parse(airflow_home)
    assert out["import_errors"] == {}
    assert out["dags"] == [f"{kind}__{name}" for kind in ("drift", "nightly", "scoring")
                           for name in ("flights", "mpls_stops", "tiny")]
    assert out["queries"] == []
    assert out["lookups"] == []
    assert out["heavy_imports"] == []


def test_a_spec_folder_adds_its_datasets_dags_and_a_broken_spec_takes_down_only_its_own(airflow_home, tmp_path):  # type: ignore[no-untyped-def]
    tiny = (ROOT / "nightshift" / "specs" / "tiny.yaml").read_text()
    (tmp_path / "shop.yaml").write_text(tiny.replace("name: tiny", "name: shop").replace(
        "path: ../data/tiny.csv", f"path: {ROOT / 'nightshift' / 'data' / 'tiny.csv'}"))
    (tmp_path / "broken.yaml").write_text("name: broken\nsource: {path: x.csv}\n")
    out = parse(airflow_home, NIGHTSHIFT_SPEC_DIR=str(tmp_path))
    assert out["import_errors"] == {}
    assert {d for d in out["dags"] if d.endswith("__shop")} == {"nightly__shop", "scoring__shop", "drift__shop"}
    assert not [d for d in out["dags"] if "broken" in d]
    assert "nightly__flights" in out["dags"] and "nightly__tiny" in out["dags"]
    assert "dataset broken gets no DAGs" in out["log"]

    # NIGHTSHIFT_DAG_DATASETS keeps the DAGs of the datasets it names (the bundled ones it leaves out get none)
    # and names in the log what it names but no folder has.
    out = parse(airflow_home, NIGHTSHIFT_SPEC_DIR=str(tmp_path), NIGHTSHIFT_DAG_DATASETS="shop, tiny,nope")
    assert out["import_errors"] == {}
    assert out["dags"] == [f"{kind}__{name}" for kind in ("drift", "nightly", "scoring") for name in ("shop", "tiny")]
    assert "dataset nope gets no DAGs: NIGHTSHIFT_DAG_DATASETS names it, but no spec folder has it" in out["log"]
    assert "dataset broken gets no DAGs" not in out["log"]


def test_nightly_structure(airflow_home, monkeypatch):  # type: ignore[no-untyped-def]
    for key, value in airflow_env(airflow_home).items():
        monkeypatch.setenv(key, value)
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(str(DAGS)).get_dag("nightly__tiny")
    assert dag.dag_id == "nightly__tiny" and dag.doc_md and "ingest" in dag.doc_md
    assert dag.max_active_runs == 1
    assert {t.task_id for t in dag.tasks} == {"ingest", "validate", "train", "evaluate", "promote"}
    edges = {(u, t.task_id) for t in dag.tasks for u in t.upstream_task_ids}
    assert edges == {("ingest", "validate"), ("validate", "train"), ("validate", "evaluate"),
                     ("ingest", "train"), ("ingest", "evaluate"), ("train", "evaluate"), ("evaluate", "promote"),
                     ("ingest", "promote"), ("train", "promote")}
    assert all(t.retries == 1 for t in dag.tasks)  # validation failures skip retries (AirflowFailException)
    outlets = [o.uri for o in dag.get_task("promote").outlets]
    assert outlets == ["nightshift://registry/tiny/champion"]
    # The schedule is the tiny spec's window, on the timetable (the DAG has no end date: see dags/schedule.py).
    assert dag.timetable.summary == "daily, data dates 2013-01-01..2013-03-31, at 00:00 UTC"
    assert dag.end_date is None
    assert set(dag.params.keys()) == {"data_date", "gate_mode", "override_reason", "reason", "retrain_every_days"}
    assert dag.params.get_param("gate_mode").schema["enum"] == [None, "enforce", "dry_run", "override"]
    # The Trigger form sends an empty field as null: every Param takes it (empty = the default behaviour).
    for name in dag.params.keys():
        dag.params.get_param(name).resolve(None)  # raises ParamValidationError if null is refused


def test_scoring_structure(airflow_home, monkeypatch):  # type: ignore[no-untyped-def]
    for key, value in airflow_env(airflow_home).items():
        monkeypatch.setenv(key, value)
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(str(DAGS)).get_dag("scoring__tiny")
    assert dag.doc_md and "publish" in dag.doc_md
    assert dag.max_active_runs == 1  # one writer per prediction store
    assert {(u, t.task_id) for t in dag.tasks for u in t.upstream_task_ids} == {("score", "publish")}
    # Runs on a new champion and on its own daily schedule.
    assert dag.timetable.__class__.__name__ == "AssetOrTimeSchedule"
    assert [a.uri for a in dag.timetable.asset_condition.objects] == ["nightshift://registry/tiny/champion"]
    assert dag.timetable.can_be_scheduled
    assert [o.uri for o in dag.get_task("publish").outlets] == ["nightshift://store/tiny/predictions"]


def test_drift_structure(airflow_home, monkeypatch):  # type: ignore[no-untyped-def]
    for key, value in airflow_env(airflow_home).items():
        monkeypatch.setenv(key, value)
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(str(DAGS)).get_dag("drift__tiny")
    assert dag.doc_md and "Evidently" in dag.doc_md
    assert dag.max_active_runs == 1  # windows and cooldown read the days before
    assert {(u, t.task_id) for t in dag.tasks for u in t.upstream_task_ids} == {
        ("check", "retrain_needed"), ("retrain_needed", "trigger_nightly")}
    trigger = dag.get_task("trigger_nightly")
    assert trigger.trigger_dag_id == "nightly__tiny" and trigger.skip_when_already_exists
    assert dag.render_template_as_native_obj  # the conf reaches nightly as a dict
    assert set(dag.params.keys()) == {"data_date"}
