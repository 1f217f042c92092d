"""Prometheus metrics for the FastAPI apps: a pure ASGI middleware and a scrape-time collector.

Requests are counted into plain Python lists and dicts on the event loop (no lock, no labelled
child look-up per request: prometheus_client's own Histogram and Counter cost more than the rest of
the middleware together, bench/lookup_bench.py); prometheus_client renders them when scraped.
"""

from __future__ import annotations

import logging
import time
from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

log = logging.getLogger("nightshift.dependencies")


class Dependency:
    """Up or down, of one thing a service calls (the prediction store, the model registry).

    Every failed call is counted; an outage is logged once when it starts (with the error) and once
    when it ends (with its length), never per request. /metrics shows the state and the counts, and
    /readyz the state, without the error text.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.up = True
        self.failures = 0  # failed calls
        self.outages = 0  # transitions to down
        self._since = time.monotonic()

    def failed(self, error: str) -> None:
        """A call failed: counts it; logs when this starts an outage."""
        self.failures += 1
        if self.up:
            self.up, self.outages, self._since = False, self.outages + 1, time.monotonic()
            log.error("%s is down: %s", self.name, error)

    def ok(self) -> None:
        """A call succeeded: logs when this ends an outage."""
        if not self.up:
            log.warning("%s is back after %.1f s down", self.name, time.monotonic() - self._since)
            self.up, self._since = True, time.monotonic()

    @property
    def state(self) -> str:
        return "ok" if self.up else "unreachable"


class ServiceMetrics(Collector):
    """Request latency histogram (by method and route template) and request counter (also by status)."""

    def __init__(self, prefix: str, buckets: tuple[float, ...] = BUCKETS) -> None:
        self.prefix = prefix
        self.dependencies: dict[str, Dependency] = {}
        self.buckets = tuple(sorted(buckets))
        # (method, route) -> per-bucket counts (not cumulative; the last one is +Inf), and the sum.
        self._hist: dict[tuple[str, str], tuple[list[int], list[float]]] = {}
        self._counts: dict[tuple[str, str, int], int] = {}
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(self)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Record one request. Call it from the event loop only (it takes no lock)."""
        series = self._hist.get((method, route))
        if series is None:
            series = self._hist[(method, route)] = ([0] * (len(self.buckets) + 1), [0.0])
        series[0][bisect_left(self.buckets, seconds)] += 1  # the first bound >= seconds: Prometheus' `le`
        series[1][0] += seconds
        key = (method, route, status)
        self._counts[key] = self._counts.get(key, 0) + 1

    def collect(self) -> Iterator[Metric]:
        """The metric families as prometheus_client renders them (called at scrape time)."""
        hist = HistogramMetricFamily(f"{self.prefix}_request_seconds", "Request latency by route template",
                                     labels=["method", "route"])
        for (method, route), (counts, total) in list(self._hist.items()):
            cumulative, buckets = 0, []
            for bound, count in zip([*self.buckets, float("inf")], counts, strict=True):
                cumulative += count
                buckets.append((floatToGoString(bound), float(cumulative)))
            hist.add_metric([method, route], buckets, total[0])
        yield hist
        requests = CounterMetricFamily(f"{self.prefix}_requests", "Requests by route template and HTTP status",
                                       labels=["method", "route", "status"])
        for (method, route, status), count in list(self._counts.items()):
            requests.add_metric([method, route, str(status)], float(count))
        yield requests
        up = GaugeMetricFamily(f"{self.prefix}_dependency_up", "1 while a dependency answers, 0 during an outage",
                               labels=["dependency"])
        failures = CounterMetricFamily(f"{self.prefix}_dependency_failures", "Failed calls to a dependency",
                                       labels=["dependency"])
        outages = CounterMetricFamily(f"{self.prefix}_dependency_outages", "Outages of a dependency (up to down)",
                                      labels=["dependency"])
        for name, dep in list(self.dependencies.items()):
            up.add_metric([name], float(dep.up))
            failures.add_metric([name], float(dep.failures))
            outages.add_metric([name], float(dep.outages))
        yield from (up, failures, outages)

    def watch(self, dependency: Dependency) -> Dependency:
        """Show a dependency's state and counts in /metrics; returns it."""
        self.dependencies[dependency.name] = dependency
        return dependency

    async def endpoint(self, _request: Request) -> Response:  # async: on the loop, beside observe()
        """GET /metrics in the Prometheus text format."""
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


class MetricsMiddleware:
    """Times every HTTP request and counts it by route template (not raw path: keys would explode it)."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = scope.get("route")
            self.metrics.observe(scope["method"], getattr(route, "path", None) or "unmatched", status,
                                 time.perf_counter() - start)
