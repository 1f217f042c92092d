"""The real-time endpoint through an outage of a real MLflow tracking server (`mlflow server` over HTTP).

While the registry is down the loaded champion and challenger serve on (an outage is not a removed
alias), the outage is logged once and shown in /metrics and /readyz, a server started during it serves
the last champion from its bundle on disk, and a promotion made once the registry is back reaches the
endpoint.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow import MlflowClient

from nightshift import store
from nightshift.settings import Settings, get_settings
from ops.serving_tier import free_port
from registry import aliases
from tests.integration.conftest import NAME, rows
from tests.integration.test_realtime import PredictLoad, run, serving, set_alias, wait_until


def start_registry(home: Path, port: int) -> subprocess.Popen[bytes]:
    """An MLflow tracking server on the home's registry database; returns once /health answers."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{home / 'mlflow.db'}",
         "--default-artifact-root", str(home / "mlartifacts"), "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"], stdout=subprocess.DEVNULL, stderr=open(home / f"mlflow-server-{port}.log", "ab"),
        start_new_session=True)
    for _ in range(1200):  # up to about 2 minutes, checked every 0.1 s: the handshake is /health answering
        if proc.poll() is not None:
            raise AssertionError(f"mlflow server exited {proc.returncode}: "
                                 + (home / f"mlflow-server-{port}.log").read_text()[-2000:])
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).status == 200:
                return proc
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError("mlflow server never answered /health")


def stop_registry(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)


def test_a_registry_outage_fails_no_prediction_and_a_promotion_after_it_reaches_the_endpoint(
        realtime_home: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    home = realtime_home
    set_alias(home, "challenger", "2")  # shadow on: the challenger must survive the outage too
    port = free_port()
    monkeypatch.setenv("NIGHTSHIFT_MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("NIGHTSHIFT_REALTIME_SHADOW", "true")
    get_settings.cache_clear()
    s = get_settings()
    batch = rows(s, 32)
    registry = start_registry(home.home, port)

    async def main() -> None:
        nonlocal registry
        async with serving(s) as (app, client):
            manager = app.state.realtime.manager
            ready = (await client.get("/readyz")).json()
            assert (ready["model"]["version"], ready["challenger"]["version"], ready["registry"]) == ("1", "2", "ok")
            load = PredictLoad(client, batch, callers=8)
            await asyncio.to_thread(stop_registry, registry)

            async def registry_down() -> bool:
                return not manager.registry.up

            await wait_until(registry_down, timeout=60)
            await load.more(200)  # traffic through the outage
            ready = (await client.get("/readyz"))
            assert ready.status_code == 200 and ready.json()["registry"] == "unreachable"
            assert ready.json()["challenger"]["version"] == "2"  # an outage is not a removed alias
            metrics = (await client.get("/metrics")).text
            assert 'nightshift_realtime_dependency_up{dependency="registry"} 0.0' in metrics

            # A server started during the outage serves the last champion this home served, from disk.
            async with serving(s) as (_, cold):
                ready = await cold.get("/readyz")
                assert ready.status_code == 200 and ready.json()["model"]["version"] == "1", ready.text
                answer = await cold.post("/v1/predict", json=batch[0])
                assert answer.status_code == 200 and answer.json()["model"]["version"] == "1", answer.text

            registry = await asyncio.to_thread(start_registry, home.home, port)
            client_http = MlflowClient(s.tracking_uri, s.tracking_uri)
            await asyncio.to_thread(aliases.promote, client_http, store.get_engine(s.store_uri), name=NAME,
                                    version="2", actor="test", reason="after the outage")

            async def promoted() -> bool:
                return manager.champion is not None and manager.champion.version == "2" and manager.registry.up

            await wait_until(promoted, timeout=120)
            await load.finish()
            assert load.failures == [], load.failures[:3]
            assert manager.registry.outages == 1 and (await client.get("/readyz")).json()["registry"] == "ok"

    try:
        run(main())
    finally:
        stop_registry(registry)


