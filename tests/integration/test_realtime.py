"""The real-time endpoint against a real MLflow registry and SQL store: contract, batching, hot swap,
fallbacks, canary, shadow and the prediction log."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import mlflow
import numpy as np
import pytest
from fastapi import FastAPI
from mlflow import MlflowClient
from pydantic import SecretStr

from nightshift import predlog, store
from nightshift.settings import Settings
from registry import aliases
from registry.packaging import NightshiftPyfunc, local_bundle
from serving.realtime import canary_share, create_app
from serving.realtime.models import OwnProcessModel
from tests.conftest import create_pg_database, drop_pg_database
from tests.integration.conftest import NAME, publish_snapshot, rows
from tests.integration.faults import MARKER


def registered_scores(s: Settings, version: str, batch: list[dict[str, Any]]) -> np.ndarray:
    """The registered pyfunc's scores: what the endpoint must reproduce."""
    import pandas as pd

    mlflow.set_tracking_uri(s.tracking_uri)
    mlflow.set_registry_uri(s.tracking_uri)
    model = mlflow.pyfunc.load_model(f"models:/{NAME}/{version}")
    return np.asarray(model.predict(pd.DataFrame(batch)[s.spec().raw_inputs]), dtype=np.float32)


def set_alias(s: Settings, alias: str, version: str | None) -> None:
    client = MlflowClient(s.tracking_uri, s.tracking_uri)
    aliases.move_alias(client, store.get_engine(s.store_uri), name=NAME, alias=alias, version=version,
                       actor="test", reason="test")


def register_bundle(s: Settings, edit: Any) -> str:
    """Register a new version whose bundle is v1's with `edit(bundle_dir)` applied; returns the version."""
    mlflow.set_tracking_uri(s.tracking_uri)
    mlflow.set_registry_uri(s.tracking_uri)
    bundle = Path(s.home) / "edited-bundle"
    shutil.copytree(local_bundle(s.home, NAME, "1"), bundle)
    edit(bundle)
    mlflow.set_experiment(NAME)
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(name="model", python_model=NightshiftPyfunc(), artifacts={"bundle": str(bundle)},
                                       registered_model_name=NAME, pip_requirements=["nightshift"])
    return str(info.registered_model_version)


@asynccontextmanager
async def serving(s: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The app with its lifespan running, and an HTTP client on it."""
    app = create_app(s)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://rt") as client:
            yield app, client


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def wait_until(check: Any, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


class PredictLoad:
    """Callers that POST their row to /v1/predict over and over until `finish`: the versions that answered,
    in order, and the text of every answer that failed or fell back."""

    def __init__(self, client: httpx.AsyncClient, batch: list[dict[str, Any]], callers: int) -> None:
        self.client, self.batch = client, batch
        self.answered: list[str] = []
        self.failures: list[str] = []
        self._stop = asyncio.Event()
        self._tasks = [asyncio.create_task(self._caller(i)) for i in range(callers)]

    async def _caller(self, i: int) -> None:
        while not self._stop.is_set():
            answer = await self.client.post("/v1/predict", json=self.batch[i])
            if answer.status_code != 200 or answer.json()["fallback"]:
                self.failures.append(answer.text)
            else:
                self.answered.append(answer.json()["model"]["version"])

    async def more(self, n: int, timeout: float = 30.0) -> None:
        """Wait until `n` more answers came (load measured in answers, not in time slept)."""
        target = len(self.answered) + n

        async def enough() -> bool:
            return len(self.answered) >= target

        await wait_until(enough, timeout)

    async def finish(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)


@pytest.mark.parametrize("inference", ["process", "loop"])
def test_answers_match_the_registered_model_and_concurrent_callers_get_their_own_rows(realtime_home: Settings,
                                                                                      inference: str) -> None:
    s = realtime_home.model_copy(update={"realtime_max_delay_ms": 5.0, "realtime_max_batch": 32,
                                         "realtime_inference": inference})
    batch = rows(s, 120)
    expected = registered_scores(s, "1", batch)

    async def main() -> None:
        async with serving(s) as (app, client):
            one = (await client.post("/v1/predict", json=batch[0])).json()
            assert one["model"] == {"name": NAME, "version": "1"} and one["fallback"] is False
            assert one["source"] == "model" and one["entity_key"] == batch[0]["id"]
            assert one["score"] == pytest.approx(float(expected[0]), abs=1e-5)
            assert one["label"] == (one["score"] >= 0.5)
            many = (await client.post("/v1/predict", json={"rows": batch[:10]})).json()["predictions"]
            assert [p["entity_key"] for p in many] == [r["id"] for r in batch[:10]]
            assert np.allclose([p["score"] for p in many], expected[:10], atol=1e-5)
            # 120 callers at once: some alone, some with several rows; each gets exactly its rows back.
            calls = [client.post("/v1/predict", json=r) for r in batch[:60]]
            calls += [client.post("/v1/predict", json={"rows": batch[i:i + 3]}) for i in range(60, 120, 3)]
            answers = await asyncio.gather(*calls)
            assert all(a.status_code == 200 for a in answers)
            got = [a.json() for a in answers[:60]] + [p for a in answers[60:] for p in a.json()["predictions"]]
            assert [g["entity_key"] for g in got] == [r["id"] for r in batch]
            assert np.allclose([g["score"] for g in got], expected, atol=1e-5)
            metrics = (await client.get("/metrics")).text
            # The batcher did batch: fewer forward passes than requests.
            passes = float(metrics.split("nightshift_realtime_batch_rows_count ")[1].split()[0])
            assert passes < 82, passes
            assert 'nightshift_realtime_model_info{alias="champion",device="cpu",name="nightshift-tiny",' \
                   'precision="fp32",version="1"} 1.0' in metrics

    run(main())


@pytest.mark.parametrize(("body", "field"), [
    ({"segment": "a", "region": "north", "x1": 1.0}, "x2"),  # missing field
    ({"segment": "z", "region": "north", "x1": 1.0, "x2": 3.0}, "segment"),  # not an allowed category
    ({"segment": "a", "region": "north", "x1": "high", "x2": 3.0}, "x1"),  # wrong type
    ({"segment": "a", "region": "north", "x1": True, "x2": 3.0}, "x1"),  # a boolean is not a number
    ({"segment": "a", "region": "north", "x1": "1.5", "x2": 3.0}, "x1"),  # nor is a numeric string
    ({"segment": "a", "region": "north", "x1": 1.0, "x2": 3.0, "x3": 1}, "x3"),  # unknown field
    ({"rows": []}, "rows"),  # empty list
    ({"rows": [{"segment": "a", "region": "north", "x1": 1.0, "x2": 3.0}, {"segment": "a"}]}, "region"),
])
def test_bad_input_gets_a_422_naming_the_field(realtime_home: Settings, body: dict[str, Any], field: str) -> None:
    async def main() -> None:
        async with serving(realtime_home) as (_app, client):
            answer = await client.post("/v1/predict", json=body)
            assert answer.status_code == 422
            assert any(field in [str(part) for part in e["loc"]] for e in answer.json()["detail"]), answer.json()

    run(main())


def test_openapi_documents_both_request_forms_with_resolvable_references(realtime_home: Settings) -> None:
    async def main() -> None:
        async with serving(realtime_home) as (_app, client):
            doc = (await client.get("/openapi.json")).json()
            body = doc["paths"]["/v1/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
            single, many = body["oneOf"]
            assert set(single["required"]) == {"segment", "region", "x1", "x2"}
            assert many["properties"]["rows"]["items"] == single
            assert {"200", "413", "422", "503"} <= set(doc["paths"]["/v1/predict"]["post"]["responses"])
            assert "503" in doc["paths"]["/readyz"]["get"]["responses"]
            text = json.dumps(doc)
            for ref in {part.split('"')[0] for part in text.split('"$ref": "')[1:]}:
                assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in doc["components"]["schemas"]

    run(main())


def test_too_many_rows_and_invalid_json_are_422(realtime_home: Settings) -> None:
    s = realtime_home.model_copy(update={"realtime_max_rows": 5})
    batch = rows(s, 6)

    async def main() -> None:
        async with serving(s) as (_app, client):
            assert (await client.post("/v1/predict", json={"rows": batch})).status_code == 422
            bad = await client.post("/v1/predict", content=b"{not json", headers={"content-type": "application/json"})
            assert bad.status_code == 422 and bad.json()["detail"][0]["type"] == "json_invalid"
            assert (await client.post("/v1/predict", json={"rows": batch[:5]})).status_code == 200

    run(main())


def test_swap_under_concurrent_load_fails_no_request(realtime_home: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    s = realtime_home
    batch = rows(s, 64)
    monkeypatch.setattr("serving.realtime.models.RETIRE_SECONDS", 0.5)

    async def main() -> None:
        async with serving(s) as (app, client):
            old = app.state.realtime.manager.champion
            assert isinstance(old, OwnProcessModel) and old.alive  # the default: the model in its own process
            load = PredictLoad(client, batch, callers=16)
            seen = load.answered
            await load.more(100)  # under load
            await asyncio.to_thread(set_alias, s, "champion", "2")

            async def swapped() -> bool:
                return app.state.realtime.manager.champion.version == "2" and seen[-20:].count("2") == 20

            await wait_until(swapped)
            await load.more(100)  # and on under load after the swap
            await load.finish()
            assert load.failures == []
            first_two = seen.index("2")
            assert seen[:first_two] and set(seen[:first_two]) == {"1"} and len(seen) > 200
            assert "1" not in seen[first_two + 16:]  # after the switch (the 16 in flight aside) only v2 answers
            metrics = (await client.get("/metrics")).text
            assert 'nightshift_realtime_model_events_total{alias="champion",event="swap"} 2.0' in metrics

            async def retired() -> bool:  # the replaced model's process ends after the grace period
                return not old.alive

            await wait_until(retired)
        assert not app.state.realtime.manager.champion.alive  # and at shutdown, the serving one's

    run(main())


def test_a_model_process_that_dies_is_started_again(realtime_home: Settings) -> None:
    s = realtime_home
    batch = rows(s, 4)
    publish_snapshot(s, [r["id"] for r in batch], 0.75)

    async def main() -> None:
        async with serving(s) as (app, client):
            dead = app.state.realtime.manager.champion
            assert isinstance(dead, OwnProcessModel)
            os.kill(dead.process.pid, signal.SIGKILL)

            async def gone() -> bool:
                return not dead.alive

            await wait_until(gone)
            # Until the poll has started it again, keyed rows get the batch prediction.
            answer = (await client.post("/v1/predict", json={"rows": batch})).json()["predictions"]
            assert all(a["fallback"] and a["source"] == "prediction_store" and a["score"] == 0.75 for a in answer)

            async def restarted() -> bool:
                model = app.state.realtime.manager.champion
                return model is not dead and model.alive

            await wait_until(restarted)
            answer = (await client.post("/v1/predict", json={"rows": batch})).json()["predictions"]
            assert not any(a["fallback"] for a in answer) and {a["model"]["version"] for a in answer} == {"1"}

    run(main())


def test_a_model_that_fails_to_load_leaves_the_old_one_serving(realtime_home: Settings) -> None:
    s = realtime_home
    broken = register_bundle(s, lambda b: (b / "mlp.pt").write_bytes(b"not a torch file"))
    batch = rows(s, 4)

    async def main() -> None:
        async with serving(s) as (app, client):
            await asyncio.to_thread(set_alias, s, "champion", broken)

            async def failed() -> bool:
                return "champion" in app.state.realtime.manager.last_error

            await wait_until(failed)
            answer = (await client.post("/v1/predict", json={"rows": batch})).json()["predictions"]
            assert {a["model"]["version"] for a in answer} == {"1"} and not any(a["fallback"] for a in answer)
            models = (await client.get("/v1/models")).json()
            assert models["champion"]["version"] == "1" and f"v{broken}" in models["load_errors"]["champion"]
            assert (await client.get("/readyz")).json()["model"]["version"] == "1"
            metrics = (await client.get("/metrics")).text
            assert 'nightshift_realtime_model_events_total{alias="champion",event="load_failure"} 1.0' in metrics

    run(main())


def edit_hook(bundle: Path) -> None:
    pre = json.loads((bundle / "preprocessor.json").read_text())
    pre["derive_hook"] = "tests.integration.faults:derive_failing_on_marker"
    (bundle / "preprocessor.json").write_text(json.dumps(pre))


def test_failed_inference_answers_keyed_rows_from_the_store_and_others_get_503(realtime_home: Settings) -> None:
    s = realtime_home.model_copy(update={"realtime_max_delay_ms": 20.0})
    faulty = register_bundle(s, edit_hook)
    set_alias(s, "champion", faulty)
    batch = rows(s, 8)
    sid = publish_snapshot(s, [r["id"] for r in batch], 0.75)
    poisoned = [{**r, "x2": MARKER} for r in batch]

    async def main() -> None:
        async with serving(s) as (_app, client):
            # A poisoned request batched with good ones: the good ones still get the model's answer.
            answers = await asyncio.gather(client.post("/v1/predict", json=poisoned[0]),
                                           *[client.post("/v1/predict", json=r) for r in batch[1:4]])
            fallback = answers[0].json()
            assert answers[0].status_code == 200 and fallback["fallback"] is True
            assert fallback["source"] == "prediction_store" and fallback["snapshot_id"] == sid
            assert fallback["score"] == 0.75 and fallback["model"] == {"name": NAME, "version": "1"}
            assert all(a.status_code == 200 and a.json()["source"] == "model" for a in answers[1:])
            # No entity key: nothing to fall back on, a clear 503.
            unkeyed = {k: v for k, v in poisoned[1].items() if k != "id"}
            answer = await client.post("/v1/predict", json=unkeyed)
            assert answer.status_code == 503 and answer.json()["detail"]["error"] == "model_unavailable"
            assert "inference failed" in answer.json()["detail"]["message"]
            # A key the store does not hold: 503 naming it.
            answer = await client.post("/v1/predict", json={**poisoned[2], "id": "nope"})
            assert answer.status_code == 503 and "nope" in answer.json()["detail"]["fallback"]
            metrics = (await client.get("/metrics")).text
            assert 'nightshift_realtime_fallbacks_total{kind="prediction_store"} 1.0' in metrics
            assert 'nightshift_realtime_fallbacks_total{kind="unavailable"} 2.0' in metrics

    run(main())


def test_no_champion_at_all_serves_keyed_rows_from_the_store(realtime_home: Settings) -> None:
    s = realtime_home
    set_alias(s, "champion", None)
    batch = rows(s, 3)
    publish_snapshot(s, [r["id"] for r in batch], 0.25)

    async def main() -> None:
        async with serving(s) as (_app, client):
            ready = await client.get("/readyz")
            assert ready.status_code == 503 and "no champion" in ready.json()["reason"]
            answer = (await client.post("/v1/predict", json={"rows": batch})).json()["predictions"]
            assert [a["score"] for a in answer] == [0.25] * 3 and all(a["fallback"] for a in answer)

    run(main())


def test_canary_split_is_stable_per_key_and_near_the_set_share(realtime_home: Settings) -> None:
    s = realtime_home.model_copy(update={"realtime_canary_percent": 25.0})
    base = rows(s, 1)[0]
    keys = [f"key-{i}" for i in range(800)]

    async def main() -> None:
        async with serving(s) as (_app, client):
            first = (await client.post("/v1/predict", json={"rows": [{**base, "id": k} for k in keys]})).json()
            again = (await client.post("/v1/predict", json={"rows": [{**base, "id": k} for k in keys]})).json()
            versions = [p["model"]["version"] for p in first["predictions"]]
            assert versions == [p["model"]["version"] for p in again["predictions"]]  # stable per key
            assert versions == ["2" if canary_share(k) < 25 else "1" for k in keys]
            assert 0.20 <= versions.count("2") / len(keys) <= 0.30
            unkeyed = (await client.post("/v1/predict", json={k: v for k, v in base.items() if k != "id"})).json()
            assert unkeyed["model"]["version"] == "1"  # no key, no canary

    run(main())


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_prediction_log_and_shadow_on_both_stores(realtime_home: Settings, backend: str) -> None:
    url = create_pg_database("ns_predlog") if backend == "postgres" else None
    if url:
        store.init_store(url)
    s = realtime_home.model_copy(update={"realtime_shadow": True, **({"store_url": url} if url else {})})
    batch = rows(s, 30)
    try:
        async def main() -> None:
            async with serving(s) as (_app, client):
                answers = await asyncio.gather(*[client.post("/v1/predict", json=r) for r in batch[:20]],
                                               client.post("/v1/predict", json={"rows": batch[20:]}))
                got = [a.json() for a in answers[:20]] + answers[20].json()["predictions"]
                assert {g["model"]["version"] for g in got} == {"1"}  # the shadow is never returned

        run(main())  # leaving the lifespan flushes the log
        logged = predlog.read(store.get_engine(s.store_uri), dataset="tiny")
        served = [r for r in logged if r["role"] == "champion"]
        shadow = [r for r in logged if r["role"] == "shadow"]
        assert sorted(r["entity_key"] for r in served) == sorted(r["id"] for r in batch)
        assert all(r["returned"] and r["model_version"] == "1" and r["source"] == "model" for r in served)
        assert all(r["latency_ms"] > 0 for r in served)
        first = next(r for r in served if r["entity_key"] == batch[0]["id"])
        assert json.loads(first["inputs"]) == {k: v for k, v in batch[0].items() if k != "id"}
        assert sorted(r["entity_key"] for r in shadow) == sorted(r["id"] for r in batch)
        assert all(not r["returned"] and r["model_version"] == "2" for r in shadow)
        expected = registered_scores(s, "2", batch)
        by_key = {r["entity_key"]: r["score"] for r in shadow}
        assert np.allclose([by_key[r["id"]] for r in batch], expected, atol=1e-5)
    finally:
        store.get_engine.cache_clear()
        if url:
            drop_pg_database(url)


def test_the_app_module_builds_without_touching_the_registry(tmp_path: Path) -> None:
    # Importing the module (as uvicorn does) must not load models or open the store.
    import subprocess

    env = {**os.environ, "NIGHTSHIFT_HOME": str(tmp_path / "nowhere")}
    subprocess.run([sys.executable, "-c", "import serving.realtime as r; assert r.app.title"], env=env, check=True)
    assert not (tmp_path / "nowhere").exists()


def test_sigterm_to_the_server_loses_no_logged_prediction(realtime_home: Settings) -> None:
    # uvicorn in its own process group, as a service manager runs it; SIGTERM goes to the whole group.
    import signal
    import socket
    import subprocess
    import time
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "NIGHTSHIFT_HOME": str(realtime_home.home)}
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "serving.realtime:app", "--port", str(port)], env=env,
                            start_new_session=True, stderr=subprocess.PIPE, text=True)
    batch = rows(realtime_home, 40)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2).read()
                break
            except Exception:  # noqa: BLE001  (not up yet)
                assert time.monotonic() < deadline and proc.poll() is None, "the endpoint did not start"
                time.sleep(0.3)
        for r in batch:
            req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/predict", data=json.dumps(r).encode(),
                                         headers={"Content-Type": "application/json"})
            assert json.loads(urllib.request.urlopen(req, timeout=10).read())["source"] == "model"
        os.killpg(proc.pid, signal.SIGTERM)  # at once: the last rows are still queued in memory
        _, err = proc.communicate(timeout=60)
        assert "Application shutdown complete" in err, err  # (uvicorn then re-raises the signal: exit -15)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    # The writer process (its own session: the group's SIGTERM missed it) ends after its last insert.
    deadline = time.monotonic() + 30
    while len(logged := predlog.read(store.get_engine(realtime_home.store_uri), dataset="tiny")) < len(batch):
        assert time.monotonic() < deadline, f"{len(logged)} of {len(batch)} predictions logged"
        time.sleep(0.2)
    assert sorted(r["entity_key"] for r in logged) == sorted(r["id"] for r in batch)


def test_hostile_input_is_a_small_422_or_413_never_a_5xx(realtime_home: Settings) -> None:
    good = {"segment": "a", "region": "north", "x1": 1.0, "x2": 3.0, "id": "k1"}
    raw = {"content-type": "application/json"}

    async def main() -> None:
        async with serving(realtime_home) as (_app, client):
            # A finite but huge number (the spec's range is [-12, 12]): 422 naming the field and the bound.
            huge = await client.post("/v1/predict", json={**good, "x1": 1e308})
            assert huge.status_code == 422 and huge.json()["detail"][0]["loc"][-1] == "x1"
            assert "12" in huge.json()["detail"][0]["msg"]
            # A NaN literal, invalid UTF-8, a NUL byte in the key: 422 with a valid JSON body.
            for body in (b'{"segment": "a", "region": "north", "x1": NaN, "x2": 3.0}',
                         b'{"segment": "\xff\xfe", "region": "north", "x1": 1.0, "x2": 3.0}',
                         json.dumps({**good, "id": "bad\x00key"}).encode()):
                answer = await client.post("/v1/predict", content=body, headers=raw)
                assert answer.status_code == 422, (body, answer.text)
                assert "NaN" not in answer.text and answer.json()["detail"]
            # A 500 kB field is refused without being echoed back.
            long = await client.post("/v1/predict", json={**good, "id": "x" * 500_000})
            assert long.status_code == 422 and len(long.content) < 2_000, len(long.content)
            # A body over NIGHTSHIFT_REALTIME_MAX_BODY_BYTES (1 MB) is refused unread: 413.
            big = await client.post("/v1/predict", json={**good, "id": "x" * 2_000_000})
            assert big.status_code == 413 and big.json()["detail"]["error"] == "body_too_large"
            assert (await client.post("/v1/predict", json=good)).status_code == 200  # and it still serves

    run(main())


def test_a_model_that_yields_a_non_finite_score_falls_back_instead_of_answering_it(realtime_home: Settings) -> None:
    def edit(bundle: Path) -> None:
        pre = json.loads((bundle / "preprocessor.json").read_text())
        pre["derive_hook"] = "tests.integration.faults:derive_infinite_on_marker"
        (bundle / "preprocessor.json").write_text(json.dumps(pre))

    s = realtime_home.model_copy(update={"realtime_max_delay_ms": 20.0})
    set_alias(s, "champion", register_bundle(s, edit))
    batch = rows(s, 4)
    sid = publish_snapshot(s, [r["id"] for r in batch], 0.25)

    async def main() -> None:
        async with serving(s) as (_app, client):
            answers = await asyncio.gather(client.post("/v1/predict", json={**batch[0], "x2": MARKER}),
                                           *[client.post("/v1/predict", json=r) for r in batch[1:]])
            assert all(a.status_code == 200 and "NaN" not in a.text and "Infinity" not in a.text for a in answers)
            first = answers[0].json()
            assert first["fallback"] is True and first["source"] == "prediction_store" and first["snapshot_id"] == sid
            assert all(a.json()["source"] == "model" for a in answers[1:])
            unkeyed = {k: v for k, v in batch[0].items() if k != "id"} | {"x2": MARKER}
            answer = await client.post("/v1/predict", json=unkeyed)
            assert answer.status_code == 503 and "non-finite" in answer.json()["detail"]["message"]

    run(main())


def test_api_key_when_set_guards_every_path_but_healthz(realtime_home: Settings) -> None:
    key = "rt-key-for-tests-0123456789"
    s = realtime_home.model_copy(update={"realtime_api_key": SecretStr(key)})
    good = rows(s, 1)[0]

    async def main() -> None:
        async with serving(s) as (_app, client):
            assert (await client.get("/healthz")).status_code == 200
            for method, path in (("POST", "/v1/predict"), ("POST", "/v1/datasets/tiny/predict"), ("GET", "/v1/models"),
                                 ("GET", "/readyz"), ("GET", "/metrics"), ("GET", "/docs"), ("GET", "/openapi.json")):
                body = good if method == "POST" else None
                denied = await client.request(method, path, json=body)
                wrong = await client.request(method, path, json=body, headers={"X-API-Key": key[:-1] + "x"})
                assert denied.status_code == wrong.status_code == 401, path
                assert denied.json()["detail"]["error"] == "unauthorized"
                allowed = await client.request(method, path, json=body, headers={"X-API-Key": key})
                assert allowed.status_code == 200, (path, allowed.text)

    run(main())
