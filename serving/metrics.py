"""Prometheus metrics for the FastAPI apps: a pure ASGI middleware (no per-request task switching)."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    """The request histogram and status counter of one app, in its own registry."""

    def __init__(self, prefix: str) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(f"{prefix}_request_seconds", "Request latency by route template",
                                 ["method", "route"], buckets=BUCKETS, registry=self.registry)
        self.requests = Counter(f"{prefix}_requests", "Requests by route template and HTTP status",
                                ["method", "route", "status"], registry=self.registry)
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Record one request (the labelled series are looked up once per label set)."""
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (self.latency.labels(method, route),
                                               self.requests.labels(method, route, str(status)))
        children[0].observe(seconds)
        children[1].inc()

    def endpoint(self, _request: Request) -> Response:
        """GET /metrics in the Prometheus text format."""
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


class MetricsMiddleware:
    """Times every HTTP request and counts it by route template (not raw path: keys would explode it)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]

        async def send_with_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route: Any = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.observe(scope.get("method", ""), template, status[0], time.perf_counter() - start)
