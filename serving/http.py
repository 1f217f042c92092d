"""What both services share over HTTP: the app itself (offline docs, metrics) and the fast route.

**Offline docs.** The apps serve Swagger UI and ReDoc from the installed `fastapi-offline`
package, not a CDN: /docs works with no internet.

**The fast route.** Under load, FastAPI's per-request machinery (dependency solving, parameter
validation, the exit stack around each endpoint) cost 15-20% of the event loop of the lookup API
and of the real-time endpoint, more than the store read (py-spy under `bench/lookup_bench.py`).
For the one hot route of each service, a plain Starlette route placed ahead of the documented
FastAPI route answers every request: its handler validates its own input and raises the same
`RequestValidationError` (a 422 rendered by FastAPI's handler) and `HTTPException`s, and the app's
middleware (metrics, errors) sees it like any other route. The FastAPI twin is never reached; it
documents the path in /openapi.json.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager

from fastapi import APIRouter, FastAPI
from fastapi_offline import FastAPIOffline
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from serving.metrics import MetricsMiddleware, ServiceMetrics

Handler = Callable[[Request], Awaitable[Response]]


def service_app(*, title: str, description: str, lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]],
                metrics: ServiceMetrics, routers: list[APIRouter]) -> FastAPI:
    """A service's app: offline docs, request metrics on /metrics, its routers (fast routes ahead of twins)."""
    app = FastAPIOffline(title=title, version="1", lifespan=lifespan, description=description)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_route("/metrics", metrics.endpoint, include_in_schema=False)
    for router in routers:
        app.include_router(router)
    return app


def fast_route(router: APIRouter, path: str, methods: list[str]) -> Callable[[Handler], Handler]:
    """Decorator: answer `methods` on `path` with the plain Starlette handler, ahead of the router's twin.

    The router must already hold the documented FastAPI route for `path` (declare the twin first).
    """
    def register(handler: Handler) -> Handler:
        full = router.prefix + path
        if not any(getattr(r, "path", None) == full for r in router.routes):
            raise ValueError(f"{full} has no documented route: declare the FastAPI twin first")
        router.routes.insert(0, Route(full, handler, methods=methods, include_in_schema=False))
        return handler

    return register
