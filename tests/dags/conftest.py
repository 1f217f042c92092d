"""An Airflow home with a migrated SQLite metadata DB, shared by the DAG tests of one session."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, tiny_env

DAGS = ROOT / "dags"


def airflow_env(airflow_home: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "AIRFLOW_HOME": str(airflow_home), "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__UNIT_TEST_MODE": "False", **extra}


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("airflow")
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=airflow_env(home), check=True,
                   capture_output=True, timeout=300)
    return home


def run_dag(airflow_home: Path, ns_home: Path, dag_id: str, day: str, conf: dict[str, Any] | None = None,
            **extra: str) -> dict[str, Any]:
    """dag.test() in a fresh process on the tiny dataset; returns {"state", "tasks", "log"}.

    `dag_id` may be a kind (nightly, scoring, drift): the DAG of that kind of NIGHTSHIFT_DATASET (tiny).
    Only the DAGs of the run's dataset are parsed and synced (NIGHTSHIFT_DAG_DATASETS), as a deployment of
    one dataset would.
    """
    env = airflow_env(airflow_home, **tiny_env(ns_home, **extra))
    if "__" not in dag_id:
        dag_id = f"{dag_id}__{env['NIGHTSHIFT_DATASET']}"
    env.setdefault("NIGHTSHIFT_DAG_DATASETS", dag_id.split("__", 1)[1])
    args = [sys.executable, str(ROOT / "tests" / "dags" / "run_dag.py"), str(DAGS), dag_id, day]
    if conf:
        args.append(json.dumps(conf))
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=900)
    log = proc.stdout + proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, log[-5000:]
    return {**json.loads(lines[-1][len("RESULT "):]), "log": log}


LIST_RUNS = """
import json
from sqlalchemy import select
from airflow.models.dagrun import DagRun
from airflow.utils.session import create_session
with create_session() as session:
    runs = session.scalars(select(DagRun).where(DagRun.dag_id == "nightly__tiny")).all()
    print("RUNS " + json.dumps([{"run_id": r.run_id, "conf": r.conf, "run_type": str(r.run_type)} for r in runs]))
"""


def nightly_runs(airflow_home: Path, ns_home: Path) -> list[dict]:  # type: ignore[type-arg]
    """The runs of `nightly__tiny` in the metadata DB, with their conf."""
    proc = subprocess.run([sys.executable, "-c", LIST_RUNS], env=airflow_env(airflow_home, **tiny_env(ns_home)),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [x for x in proc.stdout.splitlines() if x.startswith("RUNS ")][-1]
    return json.loads(line[len("RUNS "):])  # type: ignore[no-any-return]
