"""The real-time endpoint's own Prometheus figures, read at scrape time from what the app holds.

Batch sizes, queue depth, loaded models, fallbacks, swaps and the prediction log's counts
(request latency and counts come from serving/metrics.py, as for the lookup API).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class RealtimeStats(Collector):
    """Batch sizes, queue depth, loaded models, fallbacks, swaps and the prediction log's counts."""

    def __init__(self) -> None:
        self.batches = [0] * (len(BATCH_BUCKETS) + 1)
        self.batch_rows_total = 0
        self.fallbacks = {"prediction_store": 0, "unavailable": 0}
        self.events: dict[tuple[str, str], int] = {}
        self.shadow_skipped = 0
        self.state: Any = None  # the app's RealtimeState (batcher, models, log writer), read at scrape time

    def batch(self, rows: int) -> None:
        """Count one forward pass of `rows` rows."""
        self.batches[bisect_left(BATCH_BUCKETS, rows)] += 1
        self.batch_rows_total += rows

    def event(self, kind: str, alias: str) -> None:
        """Count a model event ("swap", "load_failure") of an alias."""
        self.events[(kind, alias)] = self.events.get((kind, alias), 0) + 1

    def collect(self) -> Iterator[Metric]:
        """The metric families, as prometheus_client renders them at scrape time."""
        p = "nightshift_realtime"
        cumulative, buckets = 0, []
        for bound, count in zip([*BATCH_BUCKETS, float("inf")], self.batches, strict=True):
            cumulative += count
            buckets.append((str(bound) if bound != float("inf") else "+Inf", float(cumulative)))
        hist = HistogramMetricFamily(f"{p}_batch_rows", "Rows per forward pass (dynamic batching)")
        hist.add_metric([], buckets, float(self.batch_rows_total))
        yield hist
        state = self.state
        batcher = getattr(state, "batcher", None)
        yield GaugeMetricFamily(f"{p}_queue_rows", "Rows waiting for the model",
                                value=batcher.pending_rows if batcher else 0)
        info = GaugeMetricFamily(f"{p}_model_info", "The loaded models (value 1)",
                                 labels=["alias", "name", "version", "device", "precision"])
        manager = getattr(state, "manager", None)
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
