"""The real-time endpoint's app: its lifespan (models, batcher, prediction log, store reader) and its routes.

Nothing loads at import time: the champion is loaded from the registry in the lifespan, and a
registry outage at start-up leaves the app up with /readyz saying why (the poll retries).
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.routing import APIRoute

from nightshift.settings import Settings, get_settings
from nightshift.store import safe_url
from serving.http import service_app
from serving.metrics import ServiceMetrics
from serving.realtime import routes
from serving.realtime.batcher import Batcher
from serving.realtime.inference import InferenceRunner
from serving.realtime.models import ModelManager
from serving.realtime.stats import RealtimeStats

log = logging.getLogger("nightshift.realtime")


def create_app(settings: Settings | None = None) -> FastAPI:
    """The real-time endpoint for the configured dataset."""
    settings = settings or get_settings()
    state = routes.RealtimeState(settings, settings.spec(), RealtimeStats())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from nightshift import store
        from serving.realtime.predlog_writer import PredictionLogWriter
        from serving.store_reader import StoreReader

        if settings.realtime_inference != "process":  # else each model process sets its own; this one needs no torch
            import torch

            torch.set_num_threads(settings.realtime_cpu_threads)  # the whole process: this server only serves
        try:  # only a check: the store is created by `nightshift init`, never by a service opening it
            store.get_engine(settings.store_uri).dispose()
        except Exception as exc:  # noqa: BLE001  (serve anyway: the model does not need the store)
            log.warning("prediction store %s not ready at start-up (no fallback until it is): %s",
                        safe_url(settings.store_uri), exc)

        manager = state.manager = ModelManager(settings, state.spec, on_event=state.stats.event)
        metrics.watch(manager.registry)
        try:  # a registry outage falls back to the last champion's bundle on disk (ModelManager.refresh)
            await manager.refresh()
        except Exception as exc:  # noqa: BLE001  (start anyway: /readyz says why, the poll retries)
            log.error("no model at start-up: %s", exc)
        if settings.realtime_log_predictions:
            state.log_writer = PredictionLogWriter(settings.store_uri, state.spec.name,
                                                   max_rows=settings.realtime_log_queue)
            await state.log_writer.start()
        state.reader = StoreReader(settings.store_uri, state.spec.name, timeout_s=settings.store_timeout_s,
                                   name="nightshift-realtime")
        metrics.watch(state.reader.health)
        await state.reader.open()
        runner = state.runner = InferenceRunner(manager, state.stats, shadow=settings.realtime_shadow,
                                                log_writer=state.log_writer, key_field=state.key_field,
                                                threshold=state.threshold)
        state.batcher = Batcher(runner.run, max_batch=settings.realtime_max_batch,
                                max_delay_s=settings.realtime_max_delay_ms / 1000, on_batch=state.stats.batch)
        poller = asyncio.create_task(manager.poll())
        gc.freeze()
        try:
            yield
        finally:
            poller.cancel()
            await runner.close()
            await manager.close()
            if state.log_writer is not None:
                await state.log_writer.close()
            await state.reader.close()

    metrics = ServiceMetrics("nightshift_realtime")
    metrics.registry.register(state.stats)
    app = service_app(title="Nightshift real-time predictions", lifespan=lifespan,
                      description=f"Fresh {state.spec.name} predictions from the champion model, batched dynamically.",
                      metrics=metrics, routers=[routes.router], api_key=settings.realtime_api_key)
    app.state.realtime = state
    state.stats.state = state
    for route in app.router.routes:  # the documented twins of /v1/predict get this dataset's row schema
        if isinstance(route, APIRoute) and route.path in ("/v1/predict", "/v1/datasets/{dataset}/predict"):
            route.openapi_extra = {"requestBody": state.request_body()}
    return app
