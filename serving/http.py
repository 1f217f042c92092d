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

**API key.** With a key set (`NIGHTSHIFT_LOOKUP_API_KEY`, `NIGHTSHIFT_REALTIME_API_KEY`), every path of the
service but /healthz (the liveness probe) needs it in the X-API-Key header, compared in constant time:
the docs, the OpenAPI document, /metrics and /readyz included. One middleware does it for both apps.

**Hostile input.** Text a caller sends (entity keys, categorical values) is bounded and may not hold
a NUL byte (PostgreSQL refuses it, and a refused key inside a shared, batched read would fail the
other callers' lookups): `NO_NUL` is the pattern both services validate with before anything reaches
a shared resource. A 422 never echoes more than a short excerpt of the bad input, and renders inputs
JSON cannot hold (NaN, invalid UTF-8) instead of failing with a 500.
"""

from __future__ import annotations

import hmac
import math
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, ConfigDict, SecretStr
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from serving.metrics import MetricsMiddleware, ServiceMetrics

Handler = Callable[[Request], Awaitable[Response]]
KEY_MAX = 200  # longest entity key either service accepts
NO_NUL = r"^[^\x00]*$"  # text with no NUL byte
ECHO_MAX = 80  # characters of a bad input a 422 repeats


def _echo(value: Any) -> Any:
    """A bad input as a 422 may repeat it: short, and always valid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        return value if len(value) <= ECHO_MAX else value[:ECHO_MAX] + f"... ({len(value)} characters)"
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    text = repr(value)
    return text if len(text) <= ECHO_MAX else text[:ECHO_MAX] + "..."


async def validation_error(_request: Request, exc: Exception) -> JSONResponse:
    """422 for every malformed request, naming each bad field, with short, JSON-safe excerpts of the input."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    detail = [{"type": e.get("type"), "loc": [x if isinstance(x, (int, str)) else str(x) for x in e.get("loc", ())],
               "msg": str(e.get("msg")),
               "input": _echo(e.get("input"))} for e in errors]
    return JSONResponse({"detail": detail}, 422)


# FastAPI's answer to a JSON body it could not even decode (invalid UTF-8, nesting deeper than the parser goes).
BODY_PARSE_ERROR = "There was an error parsing the body"


async def http_error(request: Request, exc: Exception) -> Response:
    """FastAPI's HTTP errors, except its 400 for an undecodable body: that is a 422 `json_invalid`, as every other
    malformed body is (and as the real-time endpoint answers the same bytes)."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and exc.detail == BODY_PARSE_ERROR:
        why = type(exc.__cause__).__name__ if exc.__cause__ is not None else "unreadable"
        error = {"type": "json_invalid", "loc": ("body",), "msg": f"the body is not valid JSON ({why})", "input": None}
        return await validation_error(request, RequestValidationError([error]))
    return await http_exception_handler(request, exc)


class ErrorDetail(BaseModel):
    """What went wrong, as a stable code, and what to do about it; some errors add fields of their own."""

    model_config = ConfigDict(extra="allow")
    error: str
    message: str


class ErrorAnswer(BaseModel):
    """The body of each refusal but a 422 (whose body lists the bad fields)."""

    detail: ErrorDetail


Responses = dict[int | str, dict[str, Any]]  # a route's `responses=`


def error_response(description: str) -> dict[str, Any]:
    """An OpenAPI `responses=` entry whose body is an ErrorAnswer."""
    return {"model": ErrorAnswer, "description": description}


def key_matches(expected: SecretStr | None, given: str | None) -> bool:
    """True when no key is set, or `given` is it (compared in constant time)."""
    if expected is None:
        return True
    return bool(given) and hmac.compare_digest(str(given).encode(), expected.get_secret_value().encode())


UNAUTHORIZED = {"detail": {"error": "unauthorized", "message": "missing or wrong X-API-Key header"}}


class ApiKeyMiddleware:
    """401 for every request without the service's key, except /healthz (plain ASGI: no per-request object)."""

    OPEN = frozenset({"/healthz"})

    def __init__(self, app: ASGIApp, key: SecretStr) -> None:
        self.app, self.key = app, key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in self.OPEN:
            given = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-api-key"), None)
            if not key_matches(self.key, given):
                await JSONResponse(UNAUTHORIZED, 401, headers={"WWW-Authenticate": "APIKey"})(scope, receive, send)
                return
        await self.app(scope, receive, send)


def service_app(*, title: str, description: str, lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]],
                metrics: ServiceMetrics, routers: list[APIRouter], api_key: SecretStr | None = None) -> FastAPI:
    """A service's app: offline docs, request metrics on /metrics, its routers (fast routes ahead of twins),
    and with `api_key` the key required on every path but /healthz."""
    app = FastAPIOffline(title=title, version="1", lifespan=lifespan, description=description)
    if api_key is not None:
        app.add_middleware(ApiKeyMiddleware, key=api_key)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_route("/metrics", metrics.endpoint, include_in_schema=False)
    # With a key, every documented route can answer 401, and says so (the liveness probe stays open).
    unauthorized: Responses | None = \
        {401: error_response("Missing or wrong X-API-Key header")} if api_key is not None else None
    for router in routers:
        app.include_router(router, responses=unauthorized)
    for route in app.router.routes:
        if unauthorized and isinstance(route, APIRoute) and route.path in ApiKeyMiddleware.OPEN:
            route.responses.pop(401)
            route.response_fields.pop(401)
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
