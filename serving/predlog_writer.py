"""Writes the prediction log off the request path: requests enqueue, a thread inserts in batches.

A request only puts one tuple on a bounded queue. The writer thread turns queued requests into
rows (inputs as JSON) and inserts up to `batch_rows` of them per transaction. If the store falls
so far behind that the queue is full, new entries are dropped and counted (`dropped`), so a slow
store never slows or fails predictions; the count is in /metrics. Closing flushes what is queued.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger("nightshift.realtime")


class PredictionLogWriter:
    """A background thread appending logged predictions to the SQL store's prediction_log."""

    def __init__(self, store_url: str, dataset: str, *, max_queue: int, batch_rows: int = 5000,
                 flush_seconds: float = 0.5) -> None:
        self.store_url, self.dataset = store_url, dataset
        self.batch_rows, self.flush_seconds = batch_rows, flush_seconds
        self._queue: queue.Queue[tuple[Any, ...] | None] = queue.Queue(maxsize=max_queue)
        self.written = self.dropped = self.failed = 0
        self._thread = threading.Thread(target=self._loop, name="prediction-log", daemon=True)

    def start(self) -> None:
        from nightshift import store

        self._engine = store.get_engine(self.store_url)  # creates prediction_log on a fresh store
        self._thread.start()

    def put(self, request_id: str, rows: Sequence[dict[str, Any]], scores: Sequence[float | None],
            labels: Sequence[bool | None], models: Sequence[dict[str, str] | None], roles: str | Sequence[str], *,
            source: str, returned: bool, latency_ms: float | None, key_field: str) -> None:
        """Queue one request's rows (never blocks; drops and counts when the queue is full).

        `roles`: who computed the rows (champion, canary or shadow), one for all rows or one per row.
        """
        try:
            self._queue.put_nowait((datetime.now(UTC), request_id, rows, scores, labels, models, roles, source,
                                    returned, latency_ms, key_field))
        except queue.Full:
            self.dropped += len(rows)

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    def close(self, timeout: float = 30.0) -> None:
        """Flush what is queued and stop the thread."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)

    def _rows(self, entry: tuple[Any, ...]) -> list[dict[str, Any]]:
        at, request_id, rows, scores, labels, models, roles, source, returned, latency_ms, key_field = entry
        out = []
        for i, (row, score, label, model) in enumerate(zip(rows, scores, labels, models, strict=True)):
            inputs = {k: v for k, v in row.items() if k != key_field}
            out.append({"at": at, "dataset": self.dataset, "request_id": request_id, "entity_key": row.get(key_field),
                        "inputs": json.dumps(inputs), "score": None if score is None else float(score),
                        "label": label, "model_name": model["name"] if model else None,
                        "model_version": model["version"] if model else None,
                        "role": roles if isinstance(roles, str) else roles[i], "source": source,
                        "returned": returned, "latency_ms": latency_ms})
        return out

    def _loop(self) -> None:
        from nightshift import predlog

        stopping = False
        while not stopping:
            batch: list[dict[str, Any]] = []
            try:
                entry = self._queue.get(timeout=self.flush_seconds)
                while True:
                    if entry is None:
                        stopping = True
                    else:
                        batch += self._rows(entry)
                    if stopping or len(batch) >= self.batch_rows:
                        break
                    entry = self._queue.get_nowait()
            except queue.Empty:
                pass
            if batch:
                try:
                    self.written += predlog.append(self._engine, batch)
                except Exception as exc:  # noqa: BLE001  (the log must never take serving down)
                    self.failed += len(batch)
                    log.warning("prediction log: %d rows not written: %s", len(batch), exc)
