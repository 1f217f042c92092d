"""Writes the prediction log off the request path, in a child process.

A request appends one tuple to an in-memory list. Every `flush_seconds` the event loop pickles
the list and writes it to the writer process's stdin (asyncio never blocks on the pipe); that
process turns entries into rows (inputs as JSON) and inserts them in one transaction per batch.
Writing in the serving process itself, even from a thread, cost a third of the endpoint's
throughput on 2 cores: the thread's SQLAlchemy and JSON work held the GIL the event loop needed
(bench/realtime_bench.py). If the store falls so far behind that `max_rows` rows wait in memory
or in the pipe, new entries are dropped and counted, so a slow store never slows or fails
predictions; the counts are in /metrics. Closing flushes what is queued and waits for the insert.

    python -m serving.realtime.predlog_writer STORE_URL DATASET   (started by PredictionLogWriter)
"""

from __future__ import annotations

import asyncio
import json
import logging
import pickle
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger("nightshift.realtime")
ENTRY_BYTES = 600  # rough pickled size of one logged row, to bound what waits in the pipe


class PredictionLogWriter:
    """Queues logged predictions and ships them to a writer process that appends them to prediction_log."""

    def __init__(self, store_url: str, dataset: str, *, max_rows: int, flush_seconds: float = 0.2) -> None:
        self.store_url, self.dataset, self.max_rows, self.flush_seconds = store_url, dataset, max_rows, flush_seconds
        self._entries: list[tuple[Any, ...]] = []
        self._queued_rows = 0
        self.written = self.dropped = self.failed = self.sent = 0
        self._proc: asyncio.subprocess.Process | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start the writer process and the periodic flush."""
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "serving.realtime.predlog_writer", self.store_url, self.dataset,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            # Its own session: a SIGTERM or Ctrl+C sent to the server's process group must not kill it
            # before it has written what the server hands it while shutting down; it ends at stdin's end.
            start_new_session=True)
        self._reader = asyncio.create_task(self._read_counts(self._proc))
        self._timer = asyncio.get_running_loop().call_later(self.flush_seconds, self._tick)

    def put(self, request_id: str, rows: Sequence[dict[str, Any]], scores: Sequence[float | None],
            labels: Sequence[bool | None], models: Sequence[dict[str, str] | None], roles: str | Sequence[str], *,
            source: str, returned: bool, latency_ms: float | None, key_field: str) -> None:
        """Queue one request's rows (never blocks; drops and counts when too much waits).

        `roles`: who computed the rows (champion, canary or shadow), one for all rows or one per row.
        Safe to call from a worker thread (the shadow model's) as well as from the event loop.
        """
        if self._queued_rows + len(rows) > self.max_rows:
            self.dropped += len(rows)
            return
        self._queued_rows += len(rows)
        self._entries.append((datetime.now(UTC), request_id, rows, scores, labels, models, roles, source, returned,
                              latency_ms, key_field))

    def _tick(self) -> None:
        self._flush()
        self._timer = asyncio.get_running_loop().call_later(self.flush_seconds, self._tick)

    def _flush(self) -> None:
        entries, self._entries = self._entries, []
        rows, self._queued_rows = sum(len(e[2]) for e in entries), 0
        if not entries:
            return
        proc = self._proc
        if proc is None or proc.stdin is None or proc.returncode is not None or proc.stdin.is_closing():
            self.dropped += rows
            return
        if proc.stdin.transport.get_write_buffer_size() > self.max_rows * ENTRY_BYTES:  # type: ignore[attr-defined]
            self.dropped += rows  # the writer fell behind: keep memory bounded
            return
        data = pickle.dumps(entries, protocol=pickle.HIGHEST_PROTOCOL)
        proc.stdin.write(len(data).to_bytes(8, "big") + data)
        self.sent += rows

    async def _read_counts(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        async for line in proc.stdout:
            kind, _, rest = line.decode().strip().partition(" ")
            n, _, why = rest.partition(" ")
            if kind == "written":
                self.written += int(n)
            elif kind == "failed":
                self.failed += int(n)
                log.warning("prediction log: %s rows not written: %s", n, why)
        if await proc.wait():
            log.error("the prediction log writer exited with %s: predictions are no longer logged", proc.returncode)

    @property
    def depth(self) -> int:
        """Rows waiting in memory (not yet handed to the writer process)."""
        return self._queued_rows

    async def close(self, timeout: float = 60.0) -> None:
        """Flush what is queued, let the writer process insert it, and stop it."""
        if self._timer is not None:
            self._timer.cancel()
        self._flush()
        proc = self._proc
        if proc is None or proc.stdin is None:
            return
        try:
            await proc.stdin.drain()
            proc.stdin.close()
            await asyncio.wait_for(proc.wait(), timeout)
            if self._reader is not None:
                await asyncio.wait_for(self._reader, timeout)
        except (TimeoutError, ConnectionError) as exc:
            log.error("prediction log writer did not finish (%s): %d rows not confirmed written", exc,
                      self.sent - self.written - self.failed)
            if proc.returncode is None:
                proc.kill()


def rows_of(entry: tuple[Any, ...], dataset: str) -> list[dict[str, Any]]:
    """prediction_log rows of one queued request."""
    at, request_id, rows, scores, labels, models, roles, source, returned, latency_ms, key_field = entry
    out = []
    for i, (row, score, label, model) in enumerate(zip(rows, scores, labels, models, strict=True)):
        out.append({"at": at, "dataset": dataset, "request_id": request_id, "entity_key": row.get(key_field),
                    "inputs": json.dumps({k: v for k, v in row.items() if k != key_field}),
                    "score": None if score is None else float(score), "label": label,
                    "model_name": model["name"] if model else None,
                    "model_version": model["version"] if model else None,
                    "role": roles if isinstance(roles, str) else roles[i], "source": source, "returned": returned,
                    "latency_ms": latency_ms})
    return out


def main(store_url: str, dataset: str) -> None:
    """The writer process: length-prefixed pickled batches on stdin, one insert each; counts on stdout."""
    from nightshift import predlog, store

    stdin = sys.stdin.buffer
    while header := stdin.read(8):
        entries = pickle.loads(stdin.read(int.from_bytes(header, "big")))  # noqa: S301  (our own parent's data)
        rows = [row for entry in entries for row in rows_of(entry, dataset)]
        try:
            # The engine is made (and cached) on the first batch that finds the store ready.
            print(f"written {predlog.append(store.get_engine(store_url), rows)}", flush=True)
        except Exception as exc:  # noqa: BLE001  (report and go on: the next batch may get through)
            print(f"failed {len(rows)} {type(exc).__name__}: {str(exc).splitlines()[0][:300]}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
