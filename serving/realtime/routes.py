"""The real-time endpoint's routes: fresh predictions, the loaded models, health.

Every route reads what the app's lifespan made (`RealtimeState` on `app.state.realtime`: the
request models of the dataset's rows, the model manager, the batcher, the prediction-log writer,
the store reader for fallbacks) through a dependency or, on the hot route, directly.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError

from nightshift.settings import Settings
from nightshift.spec import DatasetSpec
from serving.http import Responses, error_response, fast_route
from serving.realtime.batcher import Batcher
from serving.realtime.inference import InferenceRunner, canary_share, request_ids
from serving.realtime.models import CHAMPION, ModelManager
from serving.realtime.predlog_writer import PredictionLogWriter
from serving.realtime.schema import Answer, Answers, row_model, rows_model
from serving.realtime.stats import RealtimeStats
from serving.store_reader import StoreReader, StoreUnavailable

MANY_ROWS = re.compile(rb'\s*\{\s*"rows"\s*:')  # a multi-row request (a row may not have a field "rows")


@dataclass
class RealtimeState:
    """The dataset's request models and what the lifespan starts (models, batcher, log writer, reader)."""

    settings: Settings
    spec: DatasetSpec
    stats: RealtimeStats
    row_cls: type[BaseModel] = field(init=False)
    rows_cls: type[BaseModel] = field(init=False)
    request_ids: Iterator[str] = field(default_factory=lambda: request_ids("req"))
    manager: ModelManager | None = None
    batcher: Batcher | None = None
    runner: InferenceRunner | None = None
    log_writer: PredictionLogWriter | None = None
    reader: StoreReader | None = None

    def __post_init__(self) -> None:
        self.row_cls = row_model(self.spec, self.settings.realtime_max_string_chars)
        self.rows_cls = rows_model(self.spec, self.row_cls, self.settings.realtime_max_rows)

    @property
    def key_field(self) -> str:
        return self.spec.entity_key

    @property
    def threshold(self) -> float:
        return self.spec.target.threshold

    def request_body(self) -> dict[str, Any]:
        """The OpenAPI request body of /v1/predict: one row or {"rows": [...]}, with an example row.

        Inline schemas: pydantic's "#/$defs/..." references would not resolve inside the document.
        """
        from serving.realtime.scorer import example_rows

        row_schema = self.row_cls.model_json_schema()
        rows_schema = {"title": f"{self.spec.name} rows", "type": "object", "additionalProperties": False,
                       "required": ["rows"],
                       "properties": {"rows": {"type": "array", "items": row_schema, "minItems": 1,
                                               "maxItems": self.settings.realtime_max_rows}}}
        schema = {"oneOf": [row_schema, rows_schema], "example": example_rows(self.spec, 1)[0]}
        return {"required": True, "content": {"application/json": {"schema": schema}}}


async def realtime_state(request: Request) -> RealtimeState:  # async: a sync dependency costs a thread hop
    """The app's RealtimeState."""
    state: RealtimeState = request.app.state.realtime
    return state


State = Annotated[RealtimeState, Depends(realtime_state)]
router = APIRouter()


# What /v1/predict answers besides 200 (and 401 with a key).
PREDICT_ERRORS: Responses = {
    413: error_response("The body is over NIGHTSHIFT_REALTIME_MAX_BODY_BYTES (refused unread)"),
    422: {"description": "A field is missing, of the wrong type or not an allowed value"},
    503: error_response("No model could answer and no batch prediction stood in")}


@router.post("/v1/predict", response_model=Answer | Answers, responses=PREDICT_ERRORS)
async def predict_documented(request: Request) -> Response:
    """Score one row (answer: one prediction) or {"rows": [...]} (answer: {"predictions": [...]})."""
    return await predict(request)  # documents the route (its body schema is the dataset's); `predict` answers it


@router.post("/v1/datasets/{dataset}/predict", response_model=Answer | Answers,
             responses={404: error_response("This endpoint does not serve that dataset"), **PREDICT_ERRORS})
async def predict_dataset_documented(request: Request, dataset: str) -> Response:
    """/v1/predict addressed by dataset name: one endpoint process serves one dataset (NIGHTSHIFT_DATASET); another
    name is a 404 that says which one it serves."""
    return await predict(request)


@fast_route(router, "/v1/predict", ["POST"])
@fast_route(router, "/v1/datasets/{dataset}/predict", ["POST"])
async def predict(request: Request) -> Response:
    """POST /v1[/datasets/{dataset}]/predict as a plain Starlette route (serving/http.py)."""
    state: RealtimeState = request.app.state.realtime
    dataset = request.path_params.get("dataset")
    if dataset is not None and dataset != state.spec.name:
        return JSONResponse({"detail": {"error": "unknown_dataset", "dataset": dataset,
                                        "message": f"this endpoint serves {state.spec.name}, not {dataset!r}: run "
                                                   f"one per dataset (NIGHTSHIFT_DATASET={dataset})"}}, 404)
    started = time.perf_counter()
    most = state.settings.realtime_max_body_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > most:
        return too_large(int(declared), most)
    body = await request.body()
    if len(body) > most:
        return too_large(len(body), most)
    many = MANY_ROWS.match(body) is not None
    try:
        try:
            parsed = (state.rows_cls.model_validate_json(body).rows if many  # type: ignore[attr-defined]
                      else [state.row_cls.model_validate_json(body)])
        except ValidationError as exc:
            if many or not any(e["loc"] == ("rows",) for e in exc.errors()):
                raise
            many = True  # {"rows": ...} with another key first
            parsed = state.rows_cls.model_validate_json(body).rows  # type: ignore[attr-defined]
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False)) from exc
    rows = [vars(r) for r in parsed]
    key_field, percent = state.key_field, state.settings.realtime_canary_percent
    assert state.batcher is not None and state.manager is not None
    canary = None
    if percent and state.manager.challenger is not None:
        canary = [bool(r[key_field]) and canary_share(r[key_field]) < percent for r in rows]
        canary = canary if any(canary) else None
    outcome = await state.batcher.submit(rows, canary)
    if isinstance(outcome, BaseException):
        return await fallback(state, rows, many, outcome, started)
    scores, models = outcome
    if not np.isfinite(scores).all():  # a model that yields NaN or inf failed: never answer it
        return await fallback(state, rows, many, RuntimeError("the model returned a non-finite score"), started)
    labels = (scores >= state.threshold).tolist()
    scores = scores.tolist()
    # Rendered by hand: json.dumps of a nested dict per row cost more than the model (bench/realtime_bench.py).
    answers = [f'{{"entity_key":{json.dumps(r[key_field])},"score":{round(s, 7)!r},'
               f'"label":{"true" if lab else "false"},"model":{m.ref_json},"fallback":false,"source":"model"}}'
               for r, s, lab, m in zip(rows, scores, labels, models, strict=True)]
    if state.log_writer is not None:
        roles = [CHAMPION if m.alias == CHAMPION else "canary" for m in models] if canary else CHAMPION
        state.log_writer.put(next(state.request_ids), rows, scores, labels, [m.ref for m in models], roles,
                             source="model", returned=True, latency_ms=(time.perf_counter() - started) * 1000,
                             key_field=key_field)
    text = f'{{"predictions":[{",".join(answers)}]}}' if many else answers[0]
    return Response(text.encode(), media_type="application/json")


def too_large(size: int, most: int) -> JSONResponse:
    """413 for a body over NIGHTSHIFT_REALTIME_MAX_BODY_BYTES."""
    return JSONResponse({"detail": {"error": "body_too_large", "bytes": size, "max_bytes": most,
                                    "message": f"request body of {size} bytes; at most {most} "
                                               "(NIGHTSHIFT_REALTIME_MAX_BODY_BYTES)"}}, 413)


async def fallback(state: RealtimeState, rows: list[dict[str, Any]], many: bool, error: BaseException,
                   started: float) -> Response:
    """When no model answered: the batch predictions of keyed rows from the store, else a 503 saying why."""
    key_field = state.key_field
    keys = [r[key_field] for r in rows]
    found: dict[str, Any] = {}
    why = str(error)
    if all(keys) and state.reader is not None:
        try:
            found = {r["entity_key"]: r for r in await state.reader.lookup(keys)}
        except StoreUnavailable:  # logged once per outage by the reader
            why += "; the prediction store did not answer either"
    missing = [k for k in keys if k not in found] if all(keys) else None
    if missing is None or missing:
        state.stats.fallbacks["unavailable"] += 1
        detail = {"error": "model_unavailable", "message": f"no prediction: {why}",
                  "fallback": "rows with an entity key get the batch prediction from the prediction store"
                              if missing is None else
                              f"no batch prediction for: {', '.join(map(str, missing[:20]))}"}
        return JSONResponse({"detail": detail}, 503, headers={"Retry-After": "5"})
    assert state.reader is not None
    state.stats.fallbacks["prediction_store"] += 1
    snaps = {sid: await state.reader.snapshot(sid) for sid in {r["snapshot_id"] for r in found.values()}}
    answers = []
    for key in keys:
        hit = found[key]
        snap = snaps[hit["snapshot_id"]]
        answers.append({"entity_key": key, "score": round(float(hit["score"]), 7), "label": bool(hit["label"]),
                        "model": {"name": snap["model_name"], "version": snap["model_version"]},
                        "fallback": True, "source": "prediction_store", "snapshot_id": hit["snapshot_id"]})
    if state.log_writer is not None:
        state.log_writer.put(next(state.request_ids), rows, [a["score"] for a in answers],
                             [a["label"] for a in answers], [a["model"] for a in answers], CHAMPION,
                             source="prediction_store", returned=True,
                             latency_ms=(time.perf_counter() - started) * 1000, key_field=key_field)
    return JSONResponse({"predictions": answers} if many else answers[0])


@router.get("/v1/models")
async def models(state: State) -> dict[str, Any]:
    """The loaded models by alias (device, precision, when loaded) and the last load failures."""
    manager = state.manager
    assert manager is not None
    return {alias: (None if m is None else {**m.ref, "device": m.device, "precision": m.precision,
                                             "loaded_at": m.loaded_at}) for alias, m in manager.models.items()
            if alias == CHAMPION or alias in manager.roles} | {"load_errors": manager.last_error}


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "No champion loaded: the body says why"}})
async def readyz(state: State) -> JSONResponse:
    """200 when a champion is loaded; 503 saying why not."""
    manager = state.manager
    assert manager is not None
    model = manager.champion
    if model is None:  # the error itself is in the log and in /v1/models, not told to whoever asks
        why = (f"no champion of {manager.name} loaded: its last load failed (see /v1/models and the server log)"
               if manager.last_error.get(CHAMPION) else f"no champion of {manager.name} loaded yet")
        return JSONResponse({"status": "unavailable", "model": None, "reason": why,
                             "registry": manager.registry.state}, 503)
    # Ready while the registry is down: the loaded champion serves on (the registry's state says so).
    return JSONResponse({"status": "ok", "model": model.ref, "device": model.device, "precision": model.precision,
                         "challenger": manager.challenger.ref if manager.challenger else None,
                         "registry": manager.registry.state})
