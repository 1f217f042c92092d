"""The serving tier of the cluster topology: HAProxy (infra/cluster/haproxy.cfg) in front of two lookup and two
real-time replicas, each its own uvicorn process, the store and prediction log on PostgreSQL, the registry an
MLflow tracking server over HTTP (ops/serving_tier.py).

- Predictions with the same X-Entity-Key always reach the same real-time replica, and the keys spread over both;
  then one lookup replica and one real-time replica are SIGKILLed while wrk drives both APIs through the balancer:
  no request fails (a replica writes each answer at once, serving/one_write.py, so a request it dies on has no
  answer begun and HAProxy retries it), the balancer takes them out, and once restarted they are back in rotation.
- The MLflow server is stopped for a minute while predictions flow: both real-time replicas keep answering with
  the loaded champion and say so (log, /metrics, /readyz); a promotion once it is back reaches both.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from nightshift import store
from nightshift.settings import Settings, get_settings
from ops.serving_tier import ServingTier, free_port, start_wrk, stop_wrk, wait_for, write_requests
from tests.conftest import create_pg_database, drop_pg_database
from tests.integration.conftest import publish_snapshot, rows
from tests.integration.test_realtime import set_alias
from tests.integration.test_registry_outage import start_registry, stop_registry

pytestmark = pytest.mark.postgres

SNAPSHOT_KEYS = [f"K{i:05d}" for i in range(200)]
OUTAGE_SECONDS = 60


@dataclass
class Registry:
    """The MLflow tracking server every replica reaches over HTTP (stopped and started by a test)."""

    home: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = start_registry(self.home, self.port)

    def stop(self) -> None:
        if self.proc is not None:
            stop_registry(self.proc)


@pytest.fixture
def registry(realtime_home: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Registry]:
    server = Registry(realtime_home.home, free_port())
    server.start()
    monkeypatch.setenv("NIGHTSHIFT_MLFLOW_TRACKING_URI", f"http://127.0.0.1:{server.port}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def tier(realtime_home: Settings, registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
         ) -> Iterator[ServingTier]:
    """The tier on the tiny home (champion v1, challenger v2), a published snapshot of SNAPSHOT_KEYS, the store
    on PostgreSQL, the registry the MLflow server above."""
    url = create_pg_database("ns_tier")
    monkeypatch.setenv("NIGHTSHIFT_STORE_URL", url)
    get_settings.cache_clear()
    store.init_store(url)
    publish_snapshot(get_settings(), SNAPSHOT_KEYS, 0.25)
    store.get_engine.cache_clear()
    serving = ServingTier(tmp_path / "tier", dict(os.environ))
    try:
        serving.start()
        yield serving
    finally:
        serving.stop()
        store.get_engine.cache_clear()
        drop_pg_database(url)


def request_lines(s: Settings) -> list[tuple[str, ...]]:
    """Lookups of snapshot keys and predictions of real rows (keyed by their id), as wrk sends them."""
    lines: list[tuple[str, ...]] = [("GET", f"/v1/datasets/tiny/predictions/{k}") for k in SNAPSHOT_KEYS]
    lines += [("POST", "/v1/datasets/tiny/predict", str(row["id"]), json.dumps(row)) for row in rows(s, 64)]
    return lines


def keys_keep_their_replica(tier: ServingTier, s: Settings) -> None:
    """Predictions with the same X-Entity-Key always reach the same real-time replica, and the keys spread over
    both; lookups through the balancer answer from the published snapshot."""
    by_key: dict[str, set[str]] = {}
    for _ in range(3):
        for row in rows(s, 40):
            request = urllib.request.Request(
                f"{tier.realtime_url}/v1/datasets/tiny/predict", data=json.dumps(row).encode(),
                headers={"Content-Type": "application/json", "X-Entity-Key": str(row["id"])})
            with urllib.request.urlopen(request, timeout=10) as answer:
                assert answer.status == 200
                by_key.setdefault(str(row["id"]), set()).add(answer.headers["X-Served-By"])
    assert all(len(replicas) == 1 for replicas in by_key.values()), by_key
    counts = {name: sum(1 for r in by_key.values() if r == {name}) for name in ("realtime1", "realtime2")}
    assert min(counts.values()) >= 5, f"keys by replica: {counts}"
    # Lookups through the balancer answer from the published snapshot.
    for key in SNAPSHOT_KEYS[:20]:
        with urllib.request.urlopen(f"{tier.lookup_url}/v1/datasets/tiny/predictions/{key}", timeout=10) as answer:
            assert json.loads(answer.read())["score"] == pytest.approx(0.25)


def test_keys_keep_their_replica_and_killing_replicas_under_load_fails_no_request(tier: ServingTier) -> None:
    s = get_settings()
    keys_keep_their_replica(tier, s)  # (one tier for both: each start costs half a minute of CI)
    folder = tier.run_dir
    lookups = write_requests(folder / "lookups.tsv", [x for x in request_lines(s) if x[0] == "GET"])
    predicts = write_requests(folder / "predicts.tsv", [x for x in request_lines(s) if x[0] == "POST"])
    load = [start_wrk(tier.lookup_url, lookups, seconds=300, connections=8),
            start_wrk(tier.realtime_url, predicts, seconds=300, connections=8)]
    # Handshake: every replica is answering under the load before any is killed.
    wait_for(lambda: min(tier.served().values()) >= 20, "load on every replica", 60)
    for name in ("lookup1", "realtime1"):
        tier.replica(name).kill()
    for name in ("lookup1", "realtime1"):
        tier.wait_server(name, "DOWN", 30)
    before = tier.served()
    for name in ("lookup1", "realtime1"):
        tier.restart(name)
    # Back in rotation: the restarted replicas answer requests of the load again.
    wait_for(lambda: all(tier.served()[n] > before[n] for n in ("lookup1", "realtime1")),
             "restarted replicas to serve", 60)
    results = [stop_wrk(p) for p in load]  # the load ends once the restarted replicas serve again
    for what, result in zip(("lookups", "predictions"), results, strict=True):
        assert result["requests"] > 0, what
        assert (result["non2xx"], result["socket_errors"]) == (0, 0), (
            f"{what} failed during the kills: {result}; HAProxy's abnormal requests:\n"
            + (folder / "haproxy.log").read_text(errors="replace")[-4000:])
    assert tier.server_status() == dict.fromkeys(("lookup1", "lookup2", "realtime1", "realtime2"), "UP")


def replica_json(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return json.loads(answer.read())  # type: ignore[no-any-return]


def replica_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return answer.read().decode()


def test_a_registry_outage_fails_no_prediction_and_a_promotion_after_it_reaches_both_replicas(
        tier: ServingTier, registry: Registry) -> None:
    s = get_settings()
    predicts = write_requests(tier.run_dir / "predicts.tsv", [x for x in request_lines(s) if x[0] == "POST"])
    load = start_wrk(tier.realtime_url, predicts, seconds=300, connections=8)
    wait_for(lambda: min(tier.served()[r.name] for r in tier.realtimes) >= 20, "load on both real-time replicas", 60)
    registry.stop()
    for r in tier.realtimes:
        wait_for(lambda r=r: replica_json(f"{r.url}/readyz")["registry"] == "unreachable",  # type: ignore[misc]
                 f"{r.name} to see the registry down", 60)
    down_since, during = time.monotonic(), tier.served()
    # The outage lasts a minute of traffic (the figure), with predictions answered on both replicas.
    wait_for(lambda: time.monotonic() - down_since >= OUTAGE_SECONDS
             and all(tier.served()[r.name] > during[r.name] + 200 for r in tier.realtimes),
             "a minute of predictions through the outage", OUTAGE_SECONDS + 60)
    for r in tier.realtimes:
        ready = replica_json(f"{r.url}/readyz")
        assert ready["model"]["version"] == "1", ready  # type: ignore[index]
        assert 'nightshift_realtime_dependency_up{dependency="registry"} 0.0' in replica_text(f"{r.url}/metrics")
    assert tier.server_status()["realtime1"] == tier.server_status()["realtime2"] == "UP"  # still in rotation

    registry.start()
    set_alias(s, "champion", "2")
    for r in tier.realtimes:
        wait_for(lambda r=r: replica_json(f"{r.url}/readyz")["model"]["version"] == "2",  # type: ignore[misc, index]
                 f"{r.name} to serve the promoted v2", 120)
    result = stop_wrk(load)  # the load ends once both replicas serve v2
    assert result["requests"] > 0
    assert (result["non2xx"], result["socket_errors"]) == (0, 0), f"predictions failed in the outage: {result}"
    for r in tier.realtimes:
        log = r.log.read_text()
        assert log.count("registry is down") == 1 and log.count("registry is back") == 1, log[-2000:]
