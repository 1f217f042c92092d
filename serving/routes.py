"""Hot paths served by plain Starlette routes; their FastAPI twins stay for the OpenAPI document.

Under load, FastAPI's per-request machinery (dependency solving, parameter validation, the exit
stack around each endpoint) cost 15-20% of the event loop of the lookup API and of the real-time
endpoint, more than the store read (py-spy under `bench/lookup_bench.py`). For the one hot route
of each app, a Starlette route placed ahead of the documented FastAPI route answers every request:
its handler validates its own input and raises the same `RequestValidationError` (a 422 rendered
by FastAPI's handler) and `HTTPException`s, and the app's middleware (metrics, errors) sees it like
any other route. The FastAPI route is never reached; it documents the path in /openapi.json.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


def serve_ahead(app: FastAPI, path: str, endpoint: Callable[[Request], Awaitable[Response]],
                methods: list[str]) -> None:
    """Answer `methods` on `path` with `endpoint(request)`, ahead of any route the app already has there."""
    if not any(getattr(r, "path", None) == path for r in app.router.routes):
        raise ValueError(f"{path} has no documented route: add the FastAPI route first")
    app.router.routes.insert(0, Route(path, endpoint, methods=methods, include_in_schema=False))
