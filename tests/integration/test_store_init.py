"""Stores are created once, by `nightshift init`, and opening them from several processes at once never races.

Each round starts from an empty home (new SQLite files, or new PostgreSQL databases): a part that
opens the stores before init gets a clear error and creates nothing; two inits run at once; then
the parts the stack starts together (the MLflow server, the real-time endpoint, two pipeline
tasks, an audit write) open the same new stores at the same moment. Ten rounds, both backends.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from nightshift import store
from tests.conftest import ROOT, create_pg_database, drop_pg_database

WORKER = ROOT / "tests" / "integration" / "store_worker.py"
ROUNDS = 10
OPENERS = ["mlflow-server", "realtime", "task", "task", "audit"]


class Workers:
    """Long-lived worker processes; `round` sends each one command at once and collects the answers."""

    def __init__(self, n: int) -> None:
        self.procs = [subprocess.Popen([sys.executable, str(WORKER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       text=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
                      for _ in range(n)]
        for p in self.procs:  # handshake: every worker has imported everything before the first round
            assert p.stdout is not None and p.stdout.readline().strip() == "READY"

    def round(self, commands: list[dict[str, str]]) -> list[str]:
        for proc, cmd in zip(self.procs, commands, strict=False):
            assert proc.stdin is not None
            proc.stdin.write(json.dumps(cmd) + "\n")
            proc.stdin.flush()
        answers = []
        for proc, _ in zip(self.procs, commands, strict=False):
            assert proc.stdout is not None
            answers.append(proc.stdout.readline().strip())
        return answers

    def close(self) -> None:
        for p in self.procs:
            assert p.stdin is not None
            p.stdin.close()
            p.wait(timeout=60)


@pytest.fixture(scope="module")
def workers() -> Iterator[Workers]:
    w = Workers(len(OPENERS))
    yield w
    w.close()


def new_stores(backend: str, home: Path) -> tuple[str, str]:
    if backend == "sqlite":
        return f"sqlite:///{home / 'store.db'}", f"sqlite:///{home / 'mlflow.db'}"
    return create_pg_database("ns_init_store"), create_pg_database("ns_init_mlflow")


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_stores_are_made_once_and_opened_together_without_a_race(backend: str, workers: Workers,
                                                                   tmp_path: Path) -> None:
    for i in range(ROUNDS):
        home = tmp_path / f"home{i}"
        store_url, tracking_uri = new_stores(backend, home)
        try:
            base = {"home": str(home), "store_url": store_url, "tracking_uri": tracking_uri}

            # Before init: opening refuses with the fix, and creates nothing.
            before = workers.round([{**base, "role": "realtime", "tag": f"{i}-early"}])
            assert before[0].startswith(f"ERR {i}-early nightshift.store.StoreNotReady"), before
            assert "run `nightshift init` first" in before[0], before
            if backend == "sqlite":
                assert not (home / "mlflow.db").exists() and not (home / "store.db").exists()
            else:
                for url in (store_url, tracking_uri):
                    assert _tables(url) == set()

            # Two inits at once: one creates, the other waits on the lock and finds the stores made.
            inits = workers.round([{**base, "role": "init", "tag": f"{i}-init{j}"} for j in range(2)])
            assert inits == [f"OK {i}-init0", f"OK {i}-init1"], inits

            # Everything the stack starts together opens the new stores at the same moment.
            opened = workers.round([{**base, "role": role, "tag": f"{i}-{role}{j}"} for j, role in enumerate(OPENERS)])
            assert opened == [f"OK {i}-{role}{j}" for j, role in enumerate(OPENERS)], opened

            mlflow_tables = _tables(tracking_uri)
            assert not [t for t in mlflow_tables if t.startswith("_alembic_tmp")], mlflow_tables
            assert {"experiments", "registered_models", "model_versions"} <= mlflow_tables
            assert _scalar(tracking_uri, "SELECT count(*) FROM alembic_version") == 1
            assert _scalar(tracking_uri, "SELECT count(*) FROM experiments WHERE name = 'nightshift-tiny'") == 1
            assert _scalar(tracking_uri, "SELECT count(*) FROM runs") == 2
            assert _scalar(store_url, "SELECT count(*) FROM alias_audit") == 1
            assert set(_tables(store_url)) >= {"alias_audit", "prediction_snapshots", "predictions", "served_snapshot",
                                               "drift_history", "prediction_log"}
        finally:
            store.get_engine.cache_clear()
            if backend == "postgres":
                drop_pg_database(store_url)
                drop_pg_database(tracking_uri)


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _scalar(url: str, sql: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(sql)).scalar_one())
    finally:
        engine.dispose()
