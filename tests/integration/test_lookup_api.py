"""The lookup API's contract on SQLite and PostgreSQL: found, batch, 404, 422, 503, auth, metrics, rollback."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from nightshift import predstore, store
from nightshift.settings import Settings, get_settings
from serving.lookup import create_app
from serving.store_reader import StoreReader
from tests.integration.conftest import KEYS, publish, scores

API_KEY = "k3y-for-tests-0123456789"


def test_before_any_snapshot_lookups_say_so_and_readyz_is_503(lookup_settings: Settings) -> None:
    with TestClient(create_app(lookup_settings)) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["snapshot"] == "none published yet"
        for answer in (client.get(f"/v1/predictions/{KEYS[0]}"), client.get("/v1/snapshots/current"),
                       client.post("/v1/predictions/batch", json={"keys": KEYS[:2]})):
            assert answer.status_code == 503
            assert answer.json()["detail"]["error"] == "no_snapshot"
        documented = client.get("/openapi.json").json()["paths"]  # and every /v1 route says it may answer 503
        assert all("503" in op["responses"] for path, item in documented.items() if path.startswith("/v1/")
                   for op in item.values())


def test_found_batch_404_and_422(lookup_settings: Settings) -> None:
    sid = publish(lookup_settings, "run-1", "3", scores(0.4))
    with TestClient(create_app(lookup_settings)) as client:
        assert client.get("/readyz").json() == {"status": "ok", "store": "ok", "snapshot": sid}
        one = client.get(f"/v1/predictions/{KEYS[7]}")
        assert one.status_code == 200
        body = one.json()
        assert body["entity_key"] == KEYS[7] and body["score"] == pytest.approx(0.407) and body["label"] is False
        assert body["model"] == {"name": "nightshift-flights", "version": "3"}
        assert body["snapshot"]["id"] == sid and body["snapshot"]["run_id"] == "run-1"
        assert body["scored_at"] and body["snapshot"]["published_at"]
        assert client.get(f"/v1/predictions/{KEYS[49]}").json()["label"] is False
        assert client.get(f"/v1/predictions/{KEYS[0]}").json()["score"] == pytest.approx(0.4)

        batch = client.post("/v1/predictions/batch", json={"keys": [KEYS[1], "nope", KEYS[2], KEYS[1]]})
        assert batch.status_code == 200
        b = batch.json()
        assert [p["entity_key"] for p in sorted(b["predictions"], key=lambda p: p["entity_key"])] == KEYS[1:3]
        assert b["missing"] == ["nope"] and b["snapshot"]["id"] == sid and b["model"]["version"] == "3"
        assert {p["snapshot"]["id"] for p in b["predictions"]} == {sid}

        missing = client.get("/v1/predictions/UA0001-JFK-20130101-0000")
        assert missing.status_code == 404
        assert missing.json()["detail"] == {
            "error": "unknown_entity_key", "entity_key": "UA0001-JFK-20130101-0000", "snapshot_id": sid,
            "message": f"no prediction for 'UA0001-JFK-20130101-0000' in flights snapshot {sid}"}

        too_many = client.post("/v1/predictions/batch", json={"keys": [f"k{i}" for i in range(1001)]})
        assert too_many.status_code == 422 and too_many.json()["detail"][0]["type"] == "too_long"
        assert too_many.json()["detail"][0]["loc"] == ["body", "keys"] and "at most 1000" in too_many.text
        assert client.post("/v1/predictions/batch", json={"keys": []}).status_code == 422
        assert client.post("/v1/predictions/batch", json={"key": KEYS[0]}).status_code == 422
        assert client.post("/v1/predictions/batch", json={"keys": [""]}).status_code == 422
        assert client.post("/v1/predictions/batch", content=b"not json",
                           headers={"content-type": "application/json"}).status_code == 422
        # Bytes that are not even UTF-8: the same 422 (FastAPI alone answers an undocumented 400).
        undecodable = client.post("/v1/predictions/batch", content=b'{"keys": ["\xff\xfe"]}',
                                  headers={"content-type": "application/json"})
        assert undecodable.status_code == 422 and undecodable.json()["detail"][0]["type"] == "json_invalid"
        too_long = client.get("/v1/predictions/" + "x" * 201)
        assert too_long.status_code == 422 and too_long.json()["detail"][0]["loc"] == ["path", "entity_key"]
        # Served by a plain Starlette route (serving/http.py), still documented with its parameter.
        documented = client.get("/openapi.json").json()["paths"]["/v1/predictions/{entity_key}"]["get"]
        assert [p["name"] for p in documented["parameters"]] == ["entity_key"]

        current = client.get("/v1/snapshots/current").json()
        assert current["id"] == sid and current["row_count"] == len(KEYS) and current["status"] == "complete"
        assert current["model_version"] == "3"

        metrics = client.get("/metrics").text
        route = 'route="/v1/predictions/{entity_key}"'
        assert f'nightshift_lookup_request_seconds_bucket{{le="0.005",method="GET",{route}}}' in metrics
        assert 'nightshift_lookup_requests_total{method="GET",route="/v1/predictions/{entity_key}",status="404"} 1.0' \
            in metrics
        assert 'route="/v1/predictions/batch",status="422"} 6.0' in metrics
        assert 'nightshift_lookup_request_seconds_count{method="GET",route="/v1/predictions/{entity_key}"} 5.0' \
            in metrics


def test_new_snapshot_is_served_and_rollback_serves_the_old_one(lookup_settings: Settings) -> None:
    first = publish(lookup_settings, "run-1", "3", scores(0.1))
    with TestClient(create_app(lookup_settings)) as client:
        assert client.get(f"/v1/predictions/{KEYS[0]}").json()["snapshot"]["id"] == first
        second = publish(lookup_settings, "run-2", "4", scores(0.6))
        answer = client.get(f"/v1/predictions/{KEYS[0]}").json()
        assert (answer["snapshot"]["id"], answer["model"]["version"], answer["label"]) == (second, "4", True)
        predstore.serve(store.get_engine(lookup_settings.store_uri), dataset="flights", snapshot_id=first,
                        actor="ops", reason="rollback test")
        answer = client.get(f"/v1/predictions/{KEYS[0]}").json()
        assert (answer["snapshot"]["id"], answer["model"]["version"], answer["score"]) == (first, "3", 0.1)
        assert client.get("/v1/snapshots/current").json()["id"] == first


def test_api_key_when_set(lookup_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    publish(lookup_settings, "run-1", "3", scores(0.2))
    monkeypatch.setenv("NIGHTSHIFT_LOOKUP_API_KEY", API_KEY)
    get_settings.cache_clear()
    with TestClient(create_app(get_settings())) as client:
        path = f"/v1/predictions/{KEYS[0]}"
        assert client.get(path).status_code == 401
        wrong = client.get(path, headers={"X-API-Key": "wrong-key-0123456789"})
        assert wrong.status_code == 401 and wrong.json()["detail"]["error"] == "unauthorized"
        assert client.get(path, headers={"X-API-Key": API_KEY}).status_code == 200
        assert client.post("/v1/predictions/batch", json={"keys": KEYS[:1]}).status_code == 401
        assert client.get("/v1/snapshots/current").status_code == 401
        assert client.get("/healthz").status_code == 200  # the liveness probe stays open
        # Everything else needs the key too: the docs, the OpenAPI document, metrics, readiness.
        for path in ("/readyz", "/metrics", "/docs", "/redoc", "/openapi.json"):
            assert client.get(path).status_code == 401, path
            assert client.get(path, headers={"X-API-Key": API_KEY}).status_code == 200, path
        documented = client.get("/openapi.json", headers={"X-API-Key": API_KEY}).json()["paths"]
        assert "401" in documented["/v1/predictions/{entity_key}"]["get"]["responses"]
        assert "401" in documented["/readyz"]["get"]["responses"]
        assert "401" not in documented["/healthz"]["get"]["responses"]


def test_store_down_api_starts_and_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Nothing listens on port 1: the API must still start, stay live, and answer 503s that say why.
    monkeypatch.setenv("NIGHTSHIFT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NIGHTSHIFT_STORE_URL", "postgresql+psycopg2://postgres@127.0.0.1:1/nowhere")
    get_settings.cache_clear()
    try:
        with TestClient(create_app(get_settings())) as client:
            assert client.get("/healthz").status_code == 200
            ready = client.get("/readyz")  # says what is down, and not the error text (hosts, ports, drivers)
            assert ready.status_code == 503 and ready.json() == {"status": "unavailable", "store": "unreachable"}
            answer = client.get(f"/v1/predictions/{KEYS[0]}")
            assert answer.status_code == 503 and answer.json()["detail"]["error"] == "store_unavailable"
            assert client.post("/v1/predictions/batch", json={"keys": KEYS[:2]}).status_code == 503
    finally:
        get_settings.cache_clear()


def test_placeholder_api_key_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NIGHTSHIFT_LOOKUP_API_KEY", "changeme")
    get_settings.cache_clear()
    with pytest.raises(ValueError, match="placeholder"):
        get_settings()
    get_settings.cache_clear()


def test_concurrent_lookups_share_reads_and_each_gets_its_own_row(lookup_settings: Settings) -> None:
    sid = publish(lookup_settings, "run-1", "3", scores(0.3))

    async def run() -> list[object]:
        reader = StoreReader(lookup_settings.store_uri, "flights", max_inflight=1)
        await reader.open()
        try:
            return await asyncio.gather(*[reader.lookup_one(k) for k in [*KEYS, "nope", KEYS[3]]])
        finally:
            await reader.close()

    rows = asyncio.run(run())
    assert [r["entity_key"] if r else None for r in rows] == [*KEYS, None, KEYS[3]]  # type: ignore[index]
    assert {r["snapshot_id"] for r in rows if r} == {sid}  # type: ignore[index]
    assert [round(r["score"], 3) for r in rows[:3]] == [0.3, 0.301, 0.302]  # type: ignore[index]


def test_a_nul_byte_key_is_refused_alone_and_fails_no_other_callers_lookup(lookup_settings: Settings) -> None:
    # PostgreSQL refuses a NUL in text; concurrent single lookups share one read, so before validation one
    # such key failed every good lookup batched with it (503s). Now it is a 422 before any read.
    import asyncio
    from urllib.parse import quote

    import httpx

    publish(lookup_settings, "run-1", "3", scores(0.4))
    bad = ["bad\x00key", "\x00", KEYS[3] + "\x00"]
    asked = [KEYS[i % len(KEYS)] if i % 4 else bad[i % 3] for i in range(400)]

    async def main() -> list[httpx.Response]:
        app = create_app(lookup_settings)
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://lookup") as c:
                singles = [c.get(f"/v1/predictions/{quote(k, safe='')}") for k in asked]
                batch = c.post("/v1/predictions/batch", json={"keys": [KEYS[0], "bad\x00key"]})
                return list(await asyncio.gather(*singles, batch))

    answers = asyncio.run(main())
    pairs = list(zip(asked, answers[:-1], strict=True))
    failed_good = [(k, a.status_code) for k, a in pairs if "\x00" not in k and a.status_code != 200]
    assert failed_good == [], f"{len(failed_good)} good lookups failed beside bad keys: {failed_good[:3]}"
    assert all(a.json()["entity_key"] == k for k, a in pairs if "\x00" not in k)
    for _key, answer in [(k, a) for k, a in pairs if "\x00" in k]:
        assert answer.status_code == 422 and answer.json()["detail"][0]["loc"] == ["path", "entity_key"]
    assert answers[-1].status_code == 422
