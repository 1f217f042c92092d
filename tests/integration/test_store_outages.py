"""The lookup API through store outages on PostgreSQL: a stalled store, backends terminated under load.

Every read is bounded (`store_timeout_s`); an outage answers 503 JSON, shows in /readyz (without the
error text) and /metrics, is logged once when it starts and once when it ends; a read whose
connection was cut is tried again on a fresh connection, so terminated backends fail no lookup.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from nightshift import store
from nightshift.settings import Settings, get_settings
from serving.lookup import create_app
from tests.conftest import create_pg_database, drop_pg_database
from tests.integration.conftest import KEYS, publish, scores

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    url = create_pg_database("ns_outage")
    monkeypatch.setenv("NIGHTSHIFT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NIGHTSHIFT_DATASET", "flights")
    monkeypatch.setenv("NIGHTSHIFT_STORE_URL", url)
    monkeypatch.setenv("NIGHTSHIFT_STORE_TIMEOUT_S", "1")
    monkeypatch.delenv("NIGHTSHIFT_LOOKUP_API_KEY", raising=False)
    get_settings.cache_clear()
    store.init_store(url)
    yield get_settings()
    get_settings.cache_clear()
    store.get_engine.cache_clear()
    drop_pg_database(url)


def metric(client: TestClient, name: str) -> float:
    line = next(x for x in client.get("/metrics").text.splitlines()
                if x.startswith(f'nightshift_lookup_{name}{{dependency="store"}}'))
    return float(line.split()[-1])


def test_a_stalled_store_answers_503_within_the_timeout_and_recovers(pg_settings: Settings,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    publish(pg_settings, "run-1", "3", scores(0.4))
    engine = store.get_engine(pg_settings.store_uri)
    caplog.set_level(logging.WARNING, logger="nightshift.dependencies")
    with TestClient(create_app(pg_settings)) as client, ThreadPoolExecutor(2) as pool:
        assert client.get(f"/v1/predictions/{KEYS[0]}").status_code == 200
        holder = engine.connect()  # a session that holds the pointer table: every read waits behind it
        try:
            holder.begin()
            holder.execute(text("LOCK TABLE served_snapshot IN ACCESS EXCLUSIVE MODE"))
            # Without a bound these requests would wait for as long as the lock is held (the test's guard:
            # 60 s, then the lock is released and the test fails).
            one = pool.submit(client.get, f"/v1/predictions/{KEYS[1]}").result(timeout=60)
            ready = pool.submit(client.get, "/readyz").result(timeout=60)
            batch = pool.submit(client.post, "/v1/predictions/batch", json={"keys": KEYS[:3]}).result(timeout=60)
        finally:
            holder.rollback()
            holder.close()
        assert one.status_code == 503 and one.json()["detail"]["error"] == "store_unavailable"
        assert "timeout" not in one.text.lower() and "Error" not in one.text  # no error text to the caller
        assert ready.status_code == 503 and ready.json() == {"status": "unavailable", "store": "unreachable"}
        assert batch.status_code == 503
        assert metric(client, "dependency_up") == 0 and metric(client, "dependency_outages_total") == 1
        assert metric(client, "dependency_failures_total") >= 3
        # Lock gone: answers again at once.
        assert client.get(f"/v1/predictions/{KEYS[1]}").status_code == 200
        assert client.get("/readyz").status_code == 200 and metric(client, "dependency_up") == 1
    logged = [r.getMessage() for r in caplog.records if r.name == "nightshift.dependencies"]
    assert len(logged) == 2 and logged[0].startswith("store is down: TimeoutError"), logged
    assert logged[1].startswith("store is back after"), logged


def test_backends_terminated_under_load_fail_no_lookup(pg_settings: Settings) -> None:
    """asyncpg once turned a terminated backend into plain-text 500s (InternalClientError) and 503s."""
    publish(pg_settings, "run-1", "3", scores(0.4))
    engine = store.get_engine(pg_settings.store_uri)
    statuses: list[int] = []
    stop = threading.Event()
    rounds = 0

    def terminate_rounds(n: int) -> None:
        # Each round cuts every backend the API holds, then waits for 200 more answers (the handshake:
        # the API is serving again on new connections) before the next.
        nonlocal rounds
        for _ in range(n):
            with engine.connect() as conn:
                pids = conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                         "WHERE datname = current_database() AND pid <> pg_backend_pid()")
                                    ).scalars().all()
            rounds += bool(pids)
            seen = len(statuses)
            while len(statuses) < seen + 200 and not stop.is_set():
                stop.wait(0.01)
        stop.set()

    async def load() -> None:
        app = create_app(pg_settings)
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://lookup") as c:
                async def client(i: int) -> None:
                    while not stop.is_set():
                        answer = await c.get(f"/v1/predictions/{KEYS[i % len(KEYS)]}")
                        statuses.append(answer.status_code)
                await asyncio.gather(*[client(i) for i in range(16)])

    killer = threading.Thread(target=terminate_rounds, args=(10,))
    killer.start()
    try:
        asyncio.run(load())
    finally:
        stop.set()
        killer.join(timeout=60)
    assert rounds >= 5, rounds  # backends were there to cut
    failed = {s: statuses.count(s) for s in set(statuses) if s != 200}
    assert failed == {}, f"{sum(failed.values())} of {len(statuses)} lookups failed: {failed}"
