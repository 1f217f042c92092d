"""Dynamic batching: concurrent requests queue on the event loop and run together in one forward pass.

A batch closes when it holds `max_batch` rows or its first request has waited `max_delay`; requests
that arrived while the model was busy go as soon as it is free (they waited for it already). A
request's rows are never split, and each caller gets back exactly the outcome of its own rows.
One batch runs at a time, as a task on the loop: `run` awaits the model in its own process (the
default) or computes on the loop itself (serving/realtime/inference.py).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True, eq=False)
class Job:
    """One request's rows waiting for the model; `future` gets the outcome `run` made for it."""

    rows: Sequence[Any]
    future: asyncio.Future[Any]
    extra: Any = None  # per-request data for `run` (e.g. which rows the canary model answers)
    n: int = field(init=False)

    def __post_init__(self) -> None:
        self.n = len(self.rows)


class Batcher:
    """Queues jobs and hands batches of them to `await run(jobs) -> outcomes`, one batch at a time."""

    def __init__(self, run: Callable[[list[Job]], Awaitable[list[Any]]], *, max_batch: int, max_delay_s: float,
                 on_batch: Callable[[int], None] = lambda _n: None) -> None:
        self.run = run
        self.max_batch, self.max_delay_s = max_batch, max_delay_s
        self.on_batch = on_batch  # called with each batch's row count (metrics)
        self._pending: deque[Job] = deque()
        self.pending_rows = 0
        self._busy = False
        self._timer: asyncio.TimerHandle | None = None
        self._running: asyncio.Task[None] | None = None  # the batch in flight (the loop keeps only weak references)

    async def submit(self, rows: Sequence[Any], extra: Any = None) -> Any:
        """The outcome of `rows` once a batch holding them has run."""
        loop = asyncio.get_running_loop()
        job = Job(rows, loop.create_future(), extra)
        self._pending.append(job)
        self.pending_rows += job.n
        if not self._busy:
            if self.pending_rows >= self.max_batch or self.max_delay_s <= 0:
                self._dispatch(loop)
            elif self._timer is None:
                self._timer = loop.call_later(self.max_delay_s, self._on_timer, loop)
        return await job.future

    def _take(self) -> list[Job]:
        jobs: list[Job] = []
        rows = 0
        while self._pending and (not jobs or rows + self._pending[0].n <= self.max_batch):
            job = self._pending.popleft()
            jobs.append(job)
            rows += job.n
        self.pending_rows -= rows
        self.on_batch(rows)
        return jobs

    def _on_timer(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        if not self._busy and self._pending:
            self._dispatch(loop)

    def _dispatch(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._busy = True
        self._running = loop.create_task(self._run(loop, self._take()))

    async def _run(self, loop: asyncio.AbstractEventLoop, jobs: list[Job]) -> None:
        try:
            outcomes = await self.run(jobs)
        except Exception as exc:  # noqa: BLE001  (`run` should catch; if not, every job gets the error)
            outcomes = [exc] * len(jobs)
        except BaseException:  # cancelled (shutdown): so are the callers' waits
            for job in jobs:
                job.future.cancel()
            raise
        for job, outcome in zip(jobs, outcomes, strict=True):
            if not job.future.done():  # a caller that went away leaves a cancelled future
                job.future.set_result(outcome)
        self._busy = False
        if self._pending:
            self._dispatch(loop)  # they waited for the model already: no further delay
