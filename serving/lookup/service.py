"""The lookup API's app: its lifespan (open the store reader) and its routes (serving/lookup/routes.py).

Nothing touches the store at import time; the store (SQLite or PostgreSQL) comes from settings and
must have been created by `nightshift init`.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from nightshift.settings import Settings, get_settings
from nightshift.spec import available_specs
from nightshift.store import safe_url
from serving.http import service_app
from serving.lookup import routes
from serving.metrics import ServiceMetrics
from serving.store_reader import StoreReader, StoreUnavailable

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The lookup API on the configured prediction store."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from nightshift import store

        try:  # only a check: the store is created by `nightshift init`, never by a service opening it
            store.get_engine(settings.store_uri).dispose()  # the API reads through its own async pool
        except Exception as exc:  # noqa: BLE001  (the API still starts; /readyz says the store is down)
            log.warning("prediction store %s not ready at start-up: %s", safe_url(settings.store_uri), exc)
        reader = StoreReader(settings.store_uri, settings.dataset, timeout_s=settings.store_timeout_s)
        metrics.watch(reader.health)
        await reader.open()
        known = frozenset(available_specs(settings.spec_dir)) | {settings.dataset}
        app.state.lookup = routes.LookupState(settings, reader, known)
        gc.freeze()  # the start-up objects (FastAPI, pydantic, SQLAlchemy) never die: keep GC passes off them
        try:
            yield
        finally:
            await reader.close()

    metrics = ServiceMetrics("nightshift_lookup")
    app = service_app(title="Nightshift prediction lookup", lifespan=lifespan,
                      description=f"Precomputed predictions of each dataset's served snapshot, by entity key: "
                                  f"/v1/datasets/{{dataset}}/... (/v1/... for {settings.dataset}).",
                      metrics=metrics, routers=[routes.v1, routes.health],
                      api_key=settings.lookup_api_key)
    app.add_exception_handler(StoreUnavailable, routes.store_unavailable)
    return app
