"""The real-time inference endpoint: fresh predictions from the registry's champion.

    uvicorn serving.realtime:app --port 8001

`POST /v1/predict` takes one row of raw features (answer: one prediction) or {"rows": [...]}
(answer: {"predictions": [...]}); the row schema comes from the dataset spec. Concurrent requests
are batched dynamically (serving/batcher.py). A new champion is loaded and warmed in the
background and swapped in atomically (serving/models.py). When the model cannot answer, rows that
carry an entity key get the batch prediction from the prediction store, marked as a fallback;
anything else gets a 503 that says why. Every prediction is logged to the SQL store off the
request path. Optional shadow (the challenger scores a copy of the traffic, never returned) and
canary (a stable, hash-chosen share of entity keys is answered by the challenger).
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import itertools
import json
import logging
import re
import time
import uuid
from bisect import bisect_left
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi_offline import FastAPIOffline
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from pydantic import ValidationError

from nightshift.settings import Settings, get_settings
from serving.batcher import Batcher, Job
from serving.metrics import Metrics, MetricsMiddleware
from serving.models import CHAMPION, LoadedModel, ModelManager, example_rows
from serving.routes import serve_ahead
from serving.schema import Answer, Answers, row_model, rows_model

log = logging.getLogger("nightshift.realtime")
MANY_ROWS = re.compile(rb'\s*\{\s*"rows"\s*:')  # a multi-row request (a row may not have a field "rows")
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class ModelUnavailable(RuntimeError):
    """No model could answer (none loaded, or inference failed)."""


def canary_share(key: str) -> float:
    """A stable number in [0, 100) for an entity key: keys below the canary percent go to the challenger."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big") % 10_000 / 100


class RealtimeStats(Collector):
    """Batch sizes, queue depth, loaded models, fallbacks, swaps and the prediction log's counts."""

    def __init__(self) -> None:
        self.batches = [0] * (len(BATCH_BUCKETS) + 1)
        self.batch_rows_total = 0
        self.fallbacks = {"prediction_store": 0, "unavailable": 0}
        self.events: dict[tuple[str, str], int] = {}
        self.shadow_skipped = 0
        self.app: Any = None  # the app whose state (batcher, models, log writer) the scrape reads

    def batch(self, rows: int) -> None:
        self.batches[bisect_left(BATCH_BUCKETS, rows)] += 1
        self.batch_rows_total += rows

    def event(self, kind: str, alias: str) -> None:
        self.events[(kind, alias)] = self.events.get((kind, alias), 0) + 1

    def collect(self) -> Iterator[Metric]:
        p = "nightshift_realtime"
        cumulative, buckets = 0, []
        for bound, count in zip([*BATCH_BUCKETS, float("inf")], self.batches, strict=True):
            cumulative += count
            buckets.append((str(bound) if bound != float("inf") else "+Inf", float(cumulative)))
        hist = HistogramMetricFamily(f"{p}_batch_rows", "Rows per forward pass (dynamic batching)")
        hist.add_metric([], buckets, float(self.batch_rows_total))
        yield hist
        state = getattr(self.app, "state", None)
        batcher = getattr(state, "batcher", None)
        yield GaugeMetricFamily(f"{p}_queue_rows", "Rows waiting for the model",
                                value=batcher.pending_rows if batcher else 0)
        info = GaugeMetricFamily(f"{p}_model_info", "The loaded models (value 1)",
                                 labels=["alias", "name", "version", "device", "precision"])
        manager = getattr(state, "models", None)
        for alias, model in (manager.models.items() if manager else []):
            if model is not None:
                info.add_metric([alias, model.name, model.version, model.device, model.precision], 1.0)
        yield info
        fallbacks = CounterMetricFamily(f"{p}_fallbacks", "Requests the model did not answer, by what answered",
                                        labels=["kind"])
        for kind, n in self.fallbacks.items():
            fallbacks.add_metric([kind], float(n))
        yield fallbacks
        events = CounterMetricFamily(f"{p}_model_events", "Model swaps and load failures", labels=["event", "alias"])
        for (kind, alias), n in self.events.items():
            events.add_metric([kind, alias], float(n))
        yield events
        writer = getattr(state, "log_writer", None)
        logged = CounterMetricFamily(f"{p}_prediction_log_rows", "Prediction-log rows by outcome", labels=["outcome"])
        for outcome in ("written", "dropped", "failed"):
            logged.add_metric([outcome], float(getattr(writer, outcome, 0)))
        yield logged
        yield CounterMetricFamily(f"{p}_shadow_skipped", "Shadow batches skipped (the shadow model fell behind)",
                                  value=float(self.shadow_skipped))


class Engine:
    """The inference side: runs the batcher's batches on the loaded models (champion, canary, shadow).

    `off_loop`: models loaded in this process compute in a worker thread instead of on the event
    loop (models in their own process never compute on the loop).
    """

    def __init__(self, manager: ModelManager, stats: RealtimeStats, *, shadow: bool, log_writer: Any,
                 key_field: str, threshold: float, off_loop: bool) -> None:
        self.manager, self.stats, self.log_writer = manager, stats, log_writer
        self.key_field, self.threshold, self.off_loop = key_field, threshold, off_loop
        self.shadow = shadow
        self.shadow_tasks: set[asyncio.Task[None]] = set()
        self.request_ids = _request_ids("shadow")

    async def run(self, jobs: list[Job]) -> list[Any]:
        """One outcome per job: (scores, models per row), or the exception that stopped it."""
        champion, challenger = self.manager.champion, self.manager.challenger
        if champion is None:
            return [ModelUnavailable("no model is loaded yet")] * len(jobs)
        try:
            outcomes: list[Any] = await self._score(jobs, champion, challenger)
        except Exception:  # noqa: BLE001  (retry one by one: one bad request must not fail the others)
            outcomes = []
            for job in jobs:
                try:
                    outcomes += await self._score([job], champion, challenger)
                except Exception as exc:  # noqa: BLE001
                    log.warning("inference failed on %s v%s: %s", champion.name, champion.version, exc)
                    outcomes.append(ModelUnavailable(f"inference failed: {type(exc).__name__}: {exc}"))
        if self.shadow and challenger is not None:
            self._shadow(jobs, challenger)
        return outcomes

    async def _score(self, jobs: list[Job], champion: LoadedModel, challenger: LoadedModel | None) -> list[Any]:
        rows = [row for job in jobs for row in job.rows]
        canary = [flag for job in jobs for flag in (job.extra or [False] * job.n)]
        models: list[LoadedModel] = [champion] * len(rows)
        if challenger is not None and any(canary):
            picked = [i for i, flag in enumerate(canary) if flag]
            scores = np.empty(len(rows), dtype=np.float32)
            rest = [i for i, flag in enumerate(canary) if not flag]
            try:
                scores[picked] = await challenger.predict_async([rows[i] for i in picked], off_loop=self.off_loop)
                for i in picked:
                    models[i] = challenger
            except Exception as exc:  # noqa: BLE001  (a failing canary falls back to the champion)
                log.warning("canary %s v%s failed, the champion answers: %s", challenger.name, challenger.version,
                            exc)
                rest = list(range(len(rows)))
            if rest:
                scores[rest] = await champion.predict_async([rows[i] for i in rest], off_loop=self.off_loop)
        else:
            scores = await champion.predict_async(rows, off_loop=self.off_loop)
        outcomes, start = [], 0
        for job in jobs:
            outcomes.append((scores[start:start + job.n], models[start:start + job.n]))
            start += job.n
        return outcomes

    def _shadow(self, jobs: list[Job], challenger: LoadedModel) -> None:
        if len(self.shadow_tasks) >= 4:  # the shadow fell behind: skip rather than queue without bound
            self.stats.shadow_skipped += 1
            return
        task = asyncio.create_task(self._run_shadow([job.rows for job in jobs], challenger))
        self.shadow_tasks.add(task)
        task.add_done_callback(self.shadow_tasks.discard)

    async def _run_shadow(self, batch: list[Sequence[dict[str, Any]]], challenger: LoadedModel) -> None:
        """After the champion's answers went out: off the loop (a thread, or the challenger's own process)."""
        try:
            scores = await challenger.predict_async([row for part in batch for row in part], off_loop=True)
            if self.log_writer is not None:
                start = 0
                for part in batch:
                    s = scores[start:start + len(part)]
                    start += len(part)
                    self.log_writer.put(next(self.request_ids), part, s.tolist(), (s >= self.threshold).tolist(),
                                        [challenger.ref] * len(part), "shadow", source="model",
                                        returned=False, latency_ms=None, key_field=self.key_field)
        except Exception as exc:  # noqa: BLE001  (a failing shadow never touches served traffic)
            log.warning("shadow %s v%s failed: %s", challenger.name, challenger.version, exc)

    async def close(self) -> None:
        """Let the shadow batches in flight finish (their scores are logged)."""
        await asyncio.gather(*self.shadow_tasks, return_exceptions=True)


def _request_ids(kind: str) -> Iterator[str]:
    """Unique request ids: a random prefix per process, then a counter (uuid4 per request cost 7% of the loop)."""
    prefix = uuid.uuid4().hex[:12]
    return (f"{kind}-{prefix}-{n}" for n in itertools.count(1))


def create_app(settings: Settings | None = None) -> FastAPI:
    """The real-time endpoint for the configured dataset."""
    settings = settings or get_settings()
    spec = settings.spec()
    key_field, threshold = spec.entity_key, spec.target.threshold
    row_cls = row_model(spec)
    rows_cls = rows_model(spec, row_cls, settings.realtime_max_rows)
    canary_percent = settings.realtime_canary_percent
    stats = RealtimeStats()
    request_ids = _request_ids("req")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from nightshift import store
        from serving.predlog_writer import PredictionLogWriter
        from serving.reader import StoreReader

        if settings.realtime_inference != "process":  # else each model process sets its own; this one needs no torch
            import torch

            torch.set_num_threads(settings.realtime_cpu_threads)  # the whole process: this server only serves
        try:  # only a check: the store is created by `nightshift init`, never by a service opening it
            store.get_engine(settings.store_uri).dispose()
        except Exception as exc:  # noqa: BLE001  (serve anyway: the model does not need the store)
            log.warning("prediction store not reachable at start-up (no fallback until it is): %s", exc)

        manager = app.state.models = ModelManager(settings, spec, on_event=stats.event)
        try:
            await manager.refresh()
        except Exception as exc:  # noqa: BLE001  (start anyway: /readyz says why, the poll retries)
            log.error("no model at start-up (the registry did not answer): %s", exc)
        writer = None
        if settings.realtime_log_predictions:
            writer = PredictionLogWriter(settings.store_uri, spec.name, max_rows=settings.realtime_log_queue)
            await writer.start()
        app.state.log_writer = writer
        app.state.reader = StoreReader(settings.store_uri, spec.name)
        await app.state.reader.open()
        engine = app.state.engine = Engine(manager, stats, shadow=settings.realtime_shadow, log_writer=writer,
                                           key_field=key_field, threshold=threshold,
                                           off_loop=settings.realtime_inference == "thread")
        app.state.batcher = Batcher(engine.run, max_batch=settings.realtime_max_batch,
                                    max_delay_s=settings.realtime_max_delay_ms / 1000, on_batch=stats.batch)
        poller = asyncio.create_task(manager.poll())
        gc.freeze()
        try:
            yield
        finally:
            poller.cancel()
            await engine.close()
            await manager.close()
            if writer is not None:
                await writer.close()
            await app.state.reader.close()

    metrics = Metrics("nightshift_realtime")
    metrics.registry.register(stats)
    # Swagger UI and ReDoc from the installed fastapi-offline package, not a CDN: /docs works with no internet.
    app = FastAPIOffline(title="Nightshift real-time predictions", version="1", lifespan=lifespan,
                  description=f"Fresh {spec.name} predictions from the champion model, batched dynamically.")
    stats.app = app
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_route("/metrics", metrics.endpoint, include_in_schema=False)
    example = example_rows(spec, 1)[0]
    # Inline schemas: pydantic's "#/$defs/..." references would not resolve inside the OpenAPI document.
    row_schema = row_cls.model_json_schema()
    rows_schema = {"title": f"{spec.name} rows", "type": "object", "additionalProperties": False,
                   "required": ["rows"], "properties": {"rows": {"type": "array", "items": row_schema, "minItems": 1,
                                                                 "maxItems": settings.realtime_max_rows}}}
    body_schema = {"oneOf": [row_schema, rows_schema], "example": example}

    request_body = {"required": True, "content": {"application/json": {"schema": body_schema}}}

    @app.post("/v1/predict", response_model=Answer | Answers, openapi_extra={"requestBody": request_body},
              responses={422: {"description": "A field is missing, of the wrong type or not an allowed value"},
                         503: {"description": "No model could answer and no batch prediction stood in"}})
    async def predict(request: Request) -> Response:
        """Score one row (answer: one prediction) or {"rows": [...]} (answer: {"predictions": [...]})."""
        started = time.perf_counter()
        body = await request.body()
        many = MANY_ROWS.match(body) is not None
        try:
            try:
                parsed = rows_cls.model_validate_json(body).rows if many else [row_cls.model_validate_json(body)]  # type: ignore[attr-defined]
            except ValidationError as exc:
                if many or not any(e["loc"] == ("rows",) for e in exc.errors()):
                    raise
                many = True  # {"rows": ...} with another key first
                parsed = rows_cls.model_validate_json(body).rows  # type: ignore[attr-defined]
        except ValidationError as exc:
            raise RequestValidationError(exc.errors(include_url=False)) from exc
        rows = [vars(r) for r in parsed]
        canary = None
        if canary_percent and app.state.models.challenger is not None:
            canary = [bool(r[key_field]) and canary_share(r[key_field]) < canary_percent for r in rows]
            canary = canary if any(canary) else None
        outcome = await app.state.batcher.submit(rows, canary)
        if isinstance(outcome, BaseException):
            return await _fallback(request.app, rows, many, outcome, started)
        scores, models = outcome
        labels = (scores >= threshold).tolist()
        scores = scores.tolist()
        refs = [m.ref for m in models]
        # Rendered by hand: json.dumps of a nested dict per row cost more than the model (bench/realtime_bench.py).
        answers = [f'{{"entity_key":{json.dumps(r[key_field])},"score":{round(s, 7)!r},'
                   f'"label":{"true" if lab else "false"},"model":{m.ref_json},"fallback":false,"source":"model"}}'
                   for r, s, lab, m in zip(rows, scores, labels, models, strict=True)]
        writer = request.app.state.log_writer
        if writer is not None:
            roles = [CHAMPION if m.alias == CHAMPION else "canary" for m in models] if canary else CHAMPION
            writer.put(next(request_ids), rows, scores, labels, refs, roles, source="model", returned=True,
                       latency_ms=(time.perf_counter() - started) * 1000, key_field=key_field)
        text = f'{{"predictions":[{",".join(answers)}]}}' if many else answers[0]
        return Response(text.encode(), media_type="application/json")

    async def _fallback(app: FastAPI, rows: list[dict[str, Any]], many: bool, error: BaseException,
                        started: float) -> Response:
        from serving.reader import StoreUnavailable

        keys = [r[key_field] for r in rows]
        found: dict[str, Any] = {}
        why = str(error)
        if all(keys):
            try:
                found = {r["entity_key"]: r for r in await app.state.reader.lookup(keys)}
            except StoreUnavailable as exc:
                why += f"; the prediction store did not answer either: {str(exc).splitlines()[0]}"
        missing = [k for k in keys if k not in found] if all(keys) else None
        if missing is None or missing:
            stats.fallbacks["unavailable"] += 1
            body = {"error": "model_unavailable", "message": f"no prediction: {why}",
                    "fallback": "rows with an entity key get the batch prediction from the prediction store"
                                if missing is None else
                                f"no batch prediction for: {', '.join(map(str, missing[:20]))}"}
            return JSONResponse({"detail": body}, 503, headers={"Retry-After": "5"})
        stats.fallbacks["prediction_store"] += 1
        snaps = {sid: await app.state.reader.snapshot(sid) for sid in {r["snapshot_id"] for r in found.values()}}
        answers = []
        for key in keys:
            hit = found[key]
            snap = snaps[hit["snapshot_id"]]
            answers.append({"entity_key": key, "score": round(float(hit["score"]), 7), "label": bool(hit["label"]),
                            "model": {"name": snap["model_name"], "version": snap["model_version"]},
                            "fallback": True, "source": "prediction_store", "snapshot_id": hit["snapshot_id"]})
        writer = app.state.log_writer
        if writer is not None:
            writer.put(next(request_ids), rows, [a["score"] for a in answers], [a["label"] for a in answers],
                       [a["model"] for a in answers], CHAMPION, source="prediction_store", returned=True,
                       latency_ms=(time.perf_counter() - started) * 1000, key_field=key_field)
        return JSONResponse({"predictions": answers} if many else answers[0])

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        """The loaded models by alias (device, precision, when loaded) and the last load failures."""
        manager: ModelManager = app.state.models
        return {alias: (None if m is None else {**m.ref, "device": m.device, "precision": m.precision,
                                                 "loaded_at": m.loaded_at}) for alias, m in manager.models.items()
                if alias == CHAMPION or alias in manager.roles} | {"load_errors": manager.last_error}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        """200 when a champion is loaded; 503 saying why not."""
        manager: ModelManager = app.state.models
        model = manager.champion
        if model is None:
            why = manager.last_error.get(CHAMPION) or f"{manager.name} has no champion loaded yet"
            return JSONResponse({"status": "unavailable", "model": None, "reason": why}, 503)
        return JSONResponse({"status": "ok", "model": model.ref, "device": model.device, "precision": model.precision,
                             "challenger": manager.challenger.ref if manager.challenger else None})

    serve_ahead(app, "/v1/predict", predict, ["POST"])
    return app


app = create_app()
