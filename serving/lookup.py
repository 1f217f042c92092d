"""The prediction lookup API: precomputed predictions of the served snapshot, by entity key.

    uvicorn serving.lookup:app --port 8000

Every answer names the model version and the snapshot that produced it and when it was scored.
The store (SQLite or PostgreSQL) comes from settings; nothing touches it at import time.
"""

from __future__ import annotations

import gc
import hmac
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import APIKeyHeader
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, Field, StringConstraints, TypeAdapter, ValidationError

from nightshift.settings import Settings, get_settings
from serving.metrics import Metrics, MetricsMiddleware
from serving.reader import StoreReader, StoreUnavailable
from serving.routes import serve_ahead

KEY_MAX = 200
log = logging.getLogger(__name__)


class ModelRef(BaseModel):
    """The registered model (name, version) that computed a prediction."""

    name: str
    version: str


class SnapshotRef(BaseModel):
    """The prediction snapshot an answer was read from: scoring run, data interval, when scored and published."""

    id: int
    run_id: str
    data_start: date | None
    data_end: date | None
    scored_at: datetime | None
    published_at: datetime | None


class Prediction(BaseModel):
    """One entity's served prediction, with the model and snapshot that produced it."""

    entity_key: str
    score: float
    label: bool
    model: ModelRef
    snapshot: SnapshotRef
    scored_at: datetime | None


class BatchRequest(BaseModel):
    """Entity keys to look up in one call (at most `lookup_max_keys`)."""

    keys: list[Annotated[str, Field(min_length=1, max_length=KEY_MAX)]] = Field(min_length=1)


class BatchAnswer(BaseModel):
    """Found predictions (all from one snapshot) and the keys that snapshot does not hold."""

    predictions: list[Prediction]
    missing: list[str]
    snapshot: SnapshotRef | None
    model: ModelRef | None


class Health(BaseModel):
    """Liveness."""

    status: str


class Readiness(BaseModel):
    """Readiness: the store answers and a snapshot is published."""

    status: str  # ok | unavailable
    store: str  # ok | unreachable: <why>
    snapshot: int | str | None = None  # the served snapshot id, or why there is none


class Snapshot(SnapshotRef):
    """The served snapshot's full row."""

    dataset: str
    model_name: str
    model_version: str
    model_run_id: str | None
    row_count: int | None
    status: str


def _utc(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; the store writes UTC.
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def _snapshot_ref(snap: dict[str, Any]) -> SnapshotRef:
    return SnapshotRef(id=snap["id"], run_id=snap["run_id"], data_start=snap["data_start"], data_end=snap["data_end"],
                       scored_at=_utc(snap["scored_at"]), published_at=_utc(snap["published_at"]))


def _prediction(row: dict[str, Any], snap: dict[str, Any]) -> Prediction:
    return Prediction(entity_key=row["entity_key"], score=round(float(row["score"]), 7), label=bool(row["label"]),
                      model=ModelRef(name=snap["model_name"], version=snap["model_version"]),
                      snapshot=_snapshot_ref(snap), scored_at=_utc(snap["scored_at"]))


class _Rendered:
    """The JSON of single-key answers, with the per-snapshot part rendered once per snapshot.

    Only key, score and label differ between answers from one snapshot; building and validating the
    nested models per request cost more than the store read (bench/lookup_bench.py).
    """

    def __init__(self) -> None:
        self._tails: dict[int, bytes] = {}

    def answer(self, row: Any, snap: dict[str, Any]) -> Response:
        tail = self._tails.get(snap["id"])
        if tail is None:
            full = _prediction({"entity_key": "", "score": 0.0, "label": False}, snap).model_dump_json()
            tail = self._tails[snap["id"]] = full[full.index(',"model":'):].encode()
        key: str = row["entity_key"]
        # Most keys need no JSON escaping; json.dumps costs more than the rest of the line.
        quoted = f'"{key}"' if key.isascii() and key.isprintable() and '"' not in key and "\\" not in key \
            else json.dumps(key)
        head = f'{{"entity_key":{quoted},"score":{round(float(row["score"]), 7)!r},' \
               f'"label":{"true" if row["label"] else "false"}'
        return Response(head.encode() + tail, media_type="application/json")


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _no_snapshot(dataset: str) -> HTTPException:
    return HTTPException(503, {"error": "no_snapshot", "dataset": dataset,
                               "message": f"no {dataset} prediction snapshot is published yet: run the scoring DAG"})


async def get_reader(request: Request) -> StoreReader:  # async: a sync dependency costs a thread hop
    """The app's store reader (made in the lifespan)."""
    reader: StoreReader = request.app.state.reader
    return reader


Reader = Annotated[StoreReader, Depends(get_reader)]
EntityKey = Annotated[str, Path(min_length=1, max_length=KEY_MAX, description="The entity key, e.g. a flight id")]


KEY_ADAPTER = TypeAdapter(Annotated[str, StringConstraints(min_length=1, max_length=KEY_MAX)])


def check_api_key(settings: Settings, given: str | None) -> None:
    """401 unless settings set no key or `given` is it."""
    expected = settings.lookup_api_key
    if expected is not None and not (given and hmac.compare_digest(given.encode(),
                                                                   expected.get_secret_value().encode())):
        raise HTTPException(401, {"error": "unauthorized", "message": "missing or wrong X-API-Key header"},
                            headers={"WWW-Authenticate": "APIKey"})


def require_api_key(settings: Settings) -> Any:
    """A dependency that checks X-API-Key (the documented routes; see `check_api_key`)."""
    header = APIKeyHeader(name="X-API-Key", auto_error=False)

    async def check(given: str | None = Security(header)) -> None:  # a default: `header` is local
        check_api_key(settings, given)

    return check


def create_app(settings: Settings | None = None) -> FastAPI:
    """The lookup API on the configured prediction store."""
    settings = settings or get_settings()
    dataset = settings.dataset

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from nightshift import store

        try:  # only a check: the store is created by `nightshift init`, never by a service opening it
            store.get_engine(settings.store_uri).dispose()  # the API reads through its own async pool
        except Exception as exc:  # noqa: BLE001  (the API still starts; /readyz says the store is down)
            log.warning("prediction store %s not reachable at start-up: %s", _safe_url(settings.store_uri), exc)
        app.state.reader = StoreReader(settings.store_uri, dataset)
        await app.state.reader.open()
        gc.freeze()  # the start-up objects (FastAPI, pydantic, SQLAlchemy) never die: keep GC passes off them
        try:
            yield
        finally:
            await app.state.reader.close()

    metrics = Metrics("nightshift_lookup")
    # Swagger UI and ReDoc from the installed fastapi-offline package, not a CDN: /docs works with no internet.
    app = FastAPIOffline(title="Nightshift prediction lookup", version="1", lifespan=lifespan,
                  description=f"Precomputed {dataset} predictions of the served snapshot, by entity key.")
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_route("/metrics", metrics.endpoint, include_in_schema=False)
    # No key set: no auth dependency at all (each dependency costs per request).
    v1 = APIRouter(prefix="/v1", dependencies=[Depends(require_api_key(settings))] if settings.lookup_api_key else [])
    rendered = _Rendered()

    @v1.get("/predictions/{entity_key}", response_model=Prediction,
            responses={404: {"description": "Unknown entity key"}, 503: {"description": "No snapshot yet"}})
    async def get_prediction(entity_key: EntityKey, request: Request) -> Response:
        """The served prediction of one entity."""
        return await prediction(request, entity_key)  # documents the route; `serve_prediction` answers it

    async def serve_prediction(request: Request) -> Response:
        """GET /v1/predictions/{entity_key} as a plain Starlette route (serving/routes.py)."""
        if settings.lookup_api_key is not None:
            check_api_key(settings, request.headers.get("x-api-key"))
        entity_key = request.path_params["entity_key"]
        try:
            KEY_ADAPTER.validate_python(entity_key)
        except ValidationError as exc:
            raise RequestValidationError([{**e, "loc": ("path", "entity_key")}
                                          for e in exc.errors(include_url=False)]) from exc
        return await prediction(request, entity_key)

    async def prediction(request: Request, entity_key: str) -> Response:
        reader: StoreReader = request.app.state.reader
        row = await reader.lookup_one(entity_key)
        if row is not None:
            return rendered.answer(row, await reader.snapshot(row["snapshot_id"]))
        current = await reader.current()
        if current is None:
            raise _no_snapshot(dataset)
        raise HTTPException(404, {"error": "unknown_entity_key", "entity_key": entity_key, "snapshot_id": current["id"],
                                  "message": f"no prediction for {entity_key!r} in {dataset} snapshot {current['id']}"})

    @v1.post("/predictions/batch", response_model=BatchAnswer)
    async def batch(body: BatchRequest, reader: Reader) -> BatchAnswer:
        """Served predictions of up to `lookup_max_keys` entities, all from one snapshot; unknown keys listed."""
        if len(body.keys) > settings.lookup_max_keys:
            raise HTTPException(422, {"error": "too_many_keys", "max": settings.lookup_max_keys,
                                      "message": f"{len(body.keys)} keys asked; at most {settings.lookup_max_keys} "
                                                 "per call"})
        wanted = list(dict.fromkeys(body.keys))
        rows = await reader.lookup(wanted)
        snap = await reader.snapshot(rows[0]["snapshot_id"]) if rows else await reader.current()
        if snap is None:
            raise _no_snapshot(dataset)
        found = {r["entity_key"] for r in rows}
        return BatchAnswer(predictions=[_prediction(r, snap) for r in rows],
                           missing=[k for k in wanted if k not in found], snapshot=_snapshot_ref(snap),
                           model=ModelRef(name=snap["model_name"], version=snap["model_version"]))

    @v1.get("/snapshots/current", response_model=Snapshot)
    async def current_snapshot(reader: Reader) -> Snapshot:
        """The snapshot the lookups read now."""
        snap = await reader.current()
        if snap is None:
            raise _no_snapshot(dataset)
        return Snapshot(**{**snap, "scored_at": _utc(snap["scored_at"]), "published_at": _utc(snap["published_at"])})

    app.include_router(v1)
    serve_ahead(app, "/v1/predictions/{entity_key}", serve_prediction, ["GET"])

    @app.exception_handler(StoreUnavailable)
    async def store_unavailable(_request: Request, exc: Exception) -> JSONResponse:
        """503 with a JSON body when the store cannot answer (instead of a bare 500)."""
        return JSONResponse({"detail": {"error": "store_unavailable", "dataset": dataset,
                                        "message": f"the prediction store did not answer: {exc}"}}, 503)

    @app.get("/healthz", response_model=Health)
    async def healthz() -> Health:
        """The process is up (says nothing about the store: see /readyz)."""
        return Health(status="ok")

    @app.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
    async def readyz(reader: Reader) -> JSONResponse:
        """200 when the store answers and a snapshot is published; 503 saying which is missing."""
        try:
            snap = await reader.current()
        except StoreUnavailable as exc:
            return JSONResponse({"status": "unavailable", "store": f"unreachable: {exc}"}, 503)
        if snap is None:
            return JSONResponse({"status": "unavailable", "store": "ok", "snapshot": "none published yet"}, 503)
        return JSONResponse({"status": "ok", "store": "ok", "snapshot": snap["id"]})

    return app


app = create_app()
