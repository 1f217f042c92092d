"""Shared fixtures: an isolated Nightshift home on the tiny dataset, and fresh PostgreSQL databases."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from jobs.context import Pipeline
from nightshift.settings import Settings, get_settings
from nightshift.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"

# Small, fast training for tests; every value is a setting a user could set too.
TINY_ENV = {
    "NIGHTSHIFT_DATASET": "tiny",
    "NIGHTSHIFT_MAX_EPOCHS": "15",
    "GX_ANALYTICS_ENABLED": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "GIT_PYTHON_REFRESH": "quiet",
}


def tiny_env(home: Path, **extra: str) -> dict[str, str]:
    """Environment variables of an isolated Nightshift home on the tiny dataset."""
    return {**TINY_ENV, "NIGHTSHIFT_HOME": str(home), **extra}


def init_home(s: Settings) -> Settings:
    """Create the home's stores, as `nightshift init` does before anything opens them; returns `s`."""
    from nightshift import store
    from registry.tracking import init_tracking

    store.init_store(s.store_uri)
    init_tracking(s, [s.dataset])
    return s


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Settings of a fresh, initialised home on the tiny dataset (SQLite store and MLflow)."""
    for key, value in tiny_env(tmp_path / "home").items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    yield init_home(get_settings())
    get_settings.cache_clear()


@pytest.fixture
def ingested(settings: Settings) -> Settings:
    """The tiny dataset's 90 days in the offline store."""
    from jobs.ingest import ingest

    ingest(Pipeline(settings), date(2013, 1, 1), date(2013, 3, 31), log=lambda *_: None)
    return settings


def train_champion(s: Settings, day: date) -> str:
    """Ingest the tiny dataset's 90 days, train on `day`, gate and promote; returns the champion version."""
    from jobs.evaluate import evaluate
    from jobs.ingest import ingest
    from jobs.promote import promote
    from jobs.train import train

    init_home(s)
    ingest(Pipeline(s), date(2013, 1, 1), date(2013, 3, 31), log=_quiet)
    candidate = train(Pipeline(s), day, actor="test", log=_quiet)
    assert evaluate(Pipeline(s), day, candidate["version"], log=_quiet)["promote"]
    promote(Pipeline(s), candidate["version"], actor="test", log=_quiet)
    return str(candidate["version"])


def _quiet(*_: object) -> None:
    pass


def create_pg_database(prefix: str) -> str:
    """A new empty PostgreSQL database; returns its SQLAlchemy URL."""
    from sqlalchemy import create_engine, text

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    engine = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"


def drop_pg_database(url: str) -> None:
    from sqlalchemy import create_engine, text

    name = url.rsplit("/", 1)[1]
    engine = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database holding an initialised SQL store, for one test; dropped afterwards."""
    from nightshift import store

    url = create_pg_database("nightshift_test")
    store.init_store(url)
    yield url
    store.get_engine.cache_clear()
    drop_pg_database(url)


@pytest.fixture(scope="session")
def tiny_spec():  # type: ignore[no-untyped-def]
    return load_spec("tiny")


os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


# The longest tests (minutes each; BENCHMARKS.md "Start-up and CI"), longest first.
LONGEST = ("tests/dags/test_replay.py", "tests/integration/test_cluster.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Start each of the longest tests near the head of one xdist worker's share.

    pytest-xdist's work stealing hands each worker one contiguous share of the items (or, when one
    worker is up first, all of them, and the next steals the tail half) and lets an idle worker take
    the tail of another's queue; a long test deep in a share starts late and the run ends with one
    worker idle while it finishes. The second share starts one item early so that either way of
    sharing puts its long test first or second. Every worker sorts alike, as xdist requires.
    """
    workers = max(1, int(getattr(config, "workerinput", {}).get("workercount", 1)))
    heads = sorted((i for i in items if i.nodeid.split("::")[0] in LONGEST),
                   key=lambda i: LONGEST.index(i.nodeid.split("::")[0]))
    if workers < 2 or not heads:
        return
    rest = [i for i in items if i not in heads]
    share = len(items) // workers
    ordered: list[pytest.Item] = []
    for w in range(workers):
        if w:
            ordered, rest = ordered + rest[:1], rest[1:]
        ordered += heads[w::workers]
        take = len(rest) if w == workers - 1 else max(0, share * (w + 1) - len(ordered))
        ordered, rest = ordered + rest[:take], rest[take:]
    items[:] = ordered
