"""Fixtures and helpers the integration tests share: a lookup API store with published snapshots, and a tiny
home with a trained champion for the real-time endpoint."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from jobs.context import Pipeline
from jobs.train import train
from nightshift import offline, predstore, store
from nightshift.settings import Settings, get_settings
from tests.conftest import create_pg_database, drop_pg_database, tiny_env, train_champion

# The lookup API's store: 50 flights keys, published with `publish`.
KEYS = [f"EV{i:04d}-EWR-20130701-0600" for i in range(50)]

# The real-time endpoint's home: champion v1 trained on D1, challenger v2 on D2.
D1, D2 = date(2013, 2, 10), date(2013, 3, 10)
NAME = "nightshift-tiny"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def lookup_settings(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                    ) -> Iterator[Settings]:
    """Settings of a fresh home on the flights dataset with an initialised store (SQLite or a new PostgreSQL
    database, by the param) and no API key; nothing published yet."""
    monkeypatch.setenv("NIGHTSHIFT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NIGHTSHIFT_DATASET", "flights")
    monkeypatch.delenv("NIGHTSHIFT_LOOKUP_API_KEY", raising=False)
    url = None
    if request.param == "postgres":
        url = create_pg_database("ns_lookup")
        monkeypatch.setenv("NIGHTSHIFT_STORE_URL", url)
    get_settings.cache_clear()
    store.init_store(get_settings().store_uri)
    yield get_settings()
    get_settings.cache_clear()
    store.get_engine.cache_clear()
    if url:
        drop_pg_database(url)


def publish(s: Settings, run_id: str, version: str, scores: list[float]) -> int:
    """Publish a flights snapshot of KEYS with `scores` (labels: score >= 0.5); returns its id."""
    engine = store.get_engine(s.store_uri)
    sid = predstore.begin_snapshot(engine, dataset="flights", run_id=run_id, model_name="nightshift-flights",
                                   model_version=version, model_run_id="abc", data_start=None, data_end=None)
    predstore.write_rows(engine, sid, [pa.record_batch({
        "entity_key": KEYS, "score": pa.array(scores, pa.float32()), "label": [x >= 0.5 for x in scores]})])
    predstore.publish(engine, sid, actor="test", reason=run_id, retention=5)
    return sid


def scores(base: float) -> list[float]:
    """One score per key of KEYS: base, base + 0.001, ..."""
    return [round(base + i / 1000, 3) for i in range(len(KEYS))]


def quiet(*_: object) -> None:
    pass


@pytest.fixture(scope="session")
def realtime_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A tiny home: 90 days ingested, v1 champion, v2 challenger (trained on a later date); made once per
    worker, never changed (each test gets a copy: `realtime_home`)."""
    home = tmp_path_factory.mktemp("realtime") / "home"
    saved = dict(os.environ)
    os.environ.update(tiny_env(home))
    get_settings.cache_clear()
    s = get_settings()
    first = train_champion(s, D1)
    second = train(Pipeline(s), D2, actor="test", log=quiet)
    assert (first, second["version"]) == ("1", "2")
    store.get_engine.cache_clear()
    os.environ.clear()
    os.environ.update(saved)
    get_settings.cache_clear()
    yield home


@pytest.fixture
def realtime_home(realtime_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """A copy of the template home for one test (tests move aliases and log predictions)."""
    copy = tmp_path / "home"
    shutil.copytree(realtime_template, copy)
    for key, value in tiny_env(copy, NIGHTSHIFT_REALTIME_POLL_SECONDS="0.2").items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()
    store.get_engine.cache_clear()


def rows(s: Settings, n: int) -> list[dict[str, Any]]:
    """`n` real rows of raw inputs with their entity key, as a caller would send them."""
    frame, _ = offline.read_days(s.offline_dir, "tiny", offline.days(date(2013, 3, 1), date(2013, 3, 31)))
    cols = [*s.spec().raw_inputs, "id"]
    return json.loads(frame[cols].head(n).to_json(orient="records"))  # type: ignore[no-any-return]


def publish_snapshot(s: Settings, keys: list[str], score: float) -> int:
    """A served batch snapshot of the tiny dataset holding `keys`, all at `score` (what the fallback answers)."""
    engine = store.get_engine(s.store_uri)
    sid = predstore.begin_snapshot(engine, dataset="tiny", run_id="batch", model_name=NAME, model_version="1",
                                   model_run_id="r", data_start=None, data_end=None)
    predstore.write_rows(engine, sid, [pa.record_batch({"entity_key": keys, "score": pa.array([score] * len(keys),
                                                        pa.float32()), "label": [score >= 0.5] * len(keys)})])
    predstore.publish(engine, sid, actor="test", reason="test", retention=5)
    return sid
