"""The lookup API's routes: precomputed predictions of the served snapshot by entity key, and health.

Every dataset of the store is addressed by name under /v1/datasets/{dataset}/...; the shorter /v1/...
routes answer for the configured dataset (NIGHTSHIFT_DATASET).

Every route reads what the app's lifespan made (`LookupState` on `app.state.lookup`: settings,
store reader, answer renderer) through a dependency, so the routes are plain module-level functions.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import APIKeyHeader
from pydantic import StringConstraints, TypeAdapter, ValidationError

from nightshift.settings import Settings
from serving.http import KEY_MAX, NO_NUL, Responses, error_response, fast_route
from serving.lookup.schema import (
    BatchAnswer,
    BatchRequest,
    Health,
    ModelRef,
    Prediction,
    Readiness,
    SingleAnswers,
    Snapshot,
    prediction_of,
    snapshot_ref,
    utc,
)
from serving.store_reader import StoreReader, StoreUnavailable

log = logging.getLogger(__name__)
KEY_ADAPTER = TypeAdapter(Annotated[str, StringConstraints(min_length=1, max_length=KEY_MAX, pattern=NO_NUL)])
API_KEY_HEADER = APIKeyHeader(name="X-API-Key", auto_error=False)


@dataclass
class LookupState:
    """What the routes read: the settings, the store reader (opened in the lifespan), the renderer, and the
    datasets the installation knows (its spec folders)."""

    settings: Settings
    reader: StoreReader
    datasets: frozenset[str] = frozenset()
    rendered: SingleAnswers = field(default_factory=SingleAnswers)

    @property
    def dataset(self) -> str:
        return self.settings.dataset

    def known(self, dataset: str) -> str:
        """`dataset` when the installation knows it; else 404 listing the ones it does."""
        if dataset not in self.datasets:
            raise HTTPException(404, {"error": "unknown_dataset", "dataset": dataset,
                                      "message": f"no dataset {dataset!r}; known: {', '.join(sorted(self.datasets))}"})
        return dataset


async def lookup_state(request: Request) -> LookupState:  # async: a sync dependency costs a thread hop
    """The app's LookupState."""
    state: LookupState = request.app.state.lookup
    return state


State = Annotated[LookupState, Depends(lookup_state)]
EntityKey = Annotated[str, Path(min_length=1, max_length=KEY_MAX, pattern=NO_NUL,
                                description="The entity key, e.g. a flight id")]
DatasetName = Annotated[str, Path(min_length=1, max_length=100, description="A dataset's name, e.g. flights")]


async def require_api_key(state: State, given: Annotated[str | None, Security(API_KEY_HEADER)] = None) -> None:
    """Documents the X-API-Key header of the /v1 routes in OpenAPI; the app's ApiKeyMiddleware (serving/http.py)
    checks it on every path but /healthz before any route runs."""


def no_snapshot(dataset: str) -> HTTPException:
    """503: nothing published yet for the dataset."""
    return HTTPException(503, {"error": "no_snapshot", "dataset": dataset,
                               "message": f"no {dataset} prediction snapshot is published yet: run the scoring DAG"})


v1 = APIRouter(prefix="/v1", dependencies=[Depends(require_api_key)])
health = APIRouter()


# What the /v1 routes answer besides 200 (and 401 with a key, 422 for bad input): every one reads the store.
UNAVAILABLE: Responses = {503: error_response("No snapshot published yet, or the prediction store did not answer")}
UNKNOWN_DATASET: Responses = {404: error_response("No such dataset")}
SINGLE = {"response_model": Prediction,
          "responses": {404: error_response("Unknown entity key or dataset"), **UNAVAILABLE}}


@v1.get("/predictions/{entity_key}", **SINGLE)  # type: ignore[arg-type]
async def get_prediction(entity_key: EntityKey, state: State) -> Response:
    """The served prediction of one entity of the configured dataset."""
    return await prediction(state, entity_key, state.dataset)  # documents the route; `serve_prediction` answers


@v1.get("/datasets/{dataset}/predictions/{entity_key}", **SINGLE)  # type: ignore[arg-type]
async def get_dataset_prediction(dataset: DatasetName, entity_key: EntityKey, state: State) -> Response:
    """The served prediction of one entity of a dataset, by name."""
    return await prediction(state, entity_key, state.known(dataset))  # documents; `serve_prediction` answers


@fast_route(v1, "/predictions/{entity_key}", ["GET"])
@fast_route(v1, "/datasets/{dataset}/predictions/{entity_key}", ["GET"])
async def serve_prediction(request: Request) -> Response:
    """GET /v1[/datasets/{dataset}]/predictions/{entity_key} as a plain Starlette route (serving/http.py)."""
    state: LookupState = request.app.state.lookup  # (the key, when set, was checked by the middleware)
    entity_key = request.path_params["entity_key"]
    dataset = request.path_params.get("dataset")
    try:
        KEY_ADAPTER.validate_python(entity_key)
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("path", "entity_key")}
                                      for e in exc.errors(include_url=False)]) from exc
    return await prediction(state, entity_key, state.dataset if dataset is None else state.known(dataset))


async def prediction(state: LookupState, entity_key: str, dataset: str) -> Response:
    """One key's answer: its row of the served snapshot, 404 naming the snapshot, or 503 before any."""
    row = await state.reader.lookup_one(entity_key, dataset)
    if row is not None:
        return state.rendered.answer(row, await state.reader.snapshot(row["snapshot_id"]))
    current = await state.reader.current(dataset)
    if current is None:
        raise no_snapshot(dataset)
    raise HTTPException(404, {"error": "unknown_entity_key", "entity_key": entity_key, "snapshot_id": current["id"],
                              "message": f"no prediction for {entity_key!r} in {dataset} snapshot "
                                         f"{current['id']}"})


@v1.post("/predictions/batch", response_model=BatchAnswer, responses=UNAVAILABLE)
async def batch(body: BatchRequest, state: State) -> BatchAnswer:
    """Served predictions of up to `lookup_max_keys` entities of the configured dataset, all from one snapshot."""
    return await batch_answer(state, body, state.dataset)


@v1.post("/datasets/{dataset}/predictions/batch", response_model=BatchAnswer,
         responses={**UNKNOWN_DATASET, **UNAVAILABLE})
async def dataset_batch(dataset: DatasetName, body: BatchRequest, state: State) -> BatchAnswer:
    """Served predictions of up to `lookup_max_keys` entities of a dataset, all from one snapshot; unknown keys
    listed."""
    return await batch_answer(state, body, state.known(dataset))


async def batch_answer(state: LookupState, body: BatchRequest, dataset: str) -> BatchAnswer:
    """The batch answer for `dataset`: one snapshot's rows, and the keys it lacks."""
    most = state.settings.lookup_max_keys
    if len(body.keys) > most:  # a 422 like every other bad input's, as the OpenAPI document declares it
        raise RequestValidationError([{"type": "too_long", "loc": ("body", "keys"), "input": body.keys,
                                       "msg": f"{len(body.keys)} keys asked; at most {most} per call "
                                              "(NIGHTSHIFT_LOOKUP_MAX_KEYS)"}])
    wanted = list(dict.fromkeys(body.keys))
    rows = await state.reader.lookup(wanted, dataset)
    snap = await state.reader.snapshot(rows[0]["snapshot_id"]) if rows else await state.reader.current(dataset)
    if snap is None:
        raise no_snapshot(dataset)
    found = {r["entity_key"] for r in rows}
    return BatchAnswer(predictions=[prediction_of(r, snap) for r in rows],
                       missing=[k for k in wanted if k not in found], snapshot=snapshot_ref(snap),
                       model=ModelRef(name=snap["model_name"], version=snap["model_version"]))


@v1.get("/snapshots/current", response_model=Snapshot, responses=UNAVAILABLE)
async def current_snapshot(state: State) -> Snapshot:
    """The snapshot the lookups of the configured dataset read now."""
    return await snapshot_answer(state, state.dataset)


@v1.get("/datasets/{dataset}/snapshots/current", response_model=Snapshot,
        responses={**UNKNOWN_DATASET, **UNAVAILABLE})
async def dataset_snapshot(dataset: DatasetName, state: State) -> Snapshot:
    """The snapshot the lookups of a dataset read now."""
    return await snapshot_answer(state, state.known(dataset))


@v1.get("/datasets", responses=UNAVAILABLE)
async def list_datasets(state: State) -> dict[str, Any]:
    """The datasets this API answers for, the configured one first, each with its served snapshot's id."""
    names = [state.dataset, *sorted(state.datasets - {state.dataset})]
    out = {}
    for name in names:
        snap = await state.reader.current(name)
        out[name] = {"snapshot": snap["id"] if snap else None,
                     "model": {"name": snap["model_name"], "version": snap["model_version"]} if snap else None}
    return {"default": state.dataset, "datasets": out}


async def snapshot_answer(state: LookupState, dataset: str) -> Snapshot:
    snap = await state.reader.current(dataset)
    if snap is None:
        raise no_snapshot(dataset)
    return Snapshot(**{**snap, "scored_at": utc(snap["scored_at"]), "published_at": utc(snap["published_at"])})


@health.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is up (says nothing about the store: see /readyz)."""
    return Health(status="ok")


@health.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
async def readyz(state: State) -> JSONResponse:
    """200 when the store answers and a snapshot is published; 503 saying which is missing."""
    try:
        snap = await state.reader.current()
    except StoreUnavailable:  # the why goes to the log (once per outage), not to whoever asks
        return JSONResponse({"status": "unavailable", "store": "unreachable"}, 503)
    if snap is None:
        return JSONResponse({"status": "unavailable", "store": "ok", "snapshot": "none published yet"}, 503)
    return JSONResponse({"status": "ok", "store": "ok", "snapshot": snap["id"]})


async def store_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """503 with a JSON body when the store cannot answer (instead of a bare 500)."""
    # The error itself is logged once per outage (StoreReader.health), not told to whoever asks.
    return JSONResponse({"detail": {"error": "store_unavailable", "dataset": request.app.state.lookup.dataset,
                                    "message": "the prediction store did not answer; try again"}}, 503)
