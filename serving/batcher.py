"""Dynamic batching: concurrent requests queue on the event loop and run together in one forward pass.

A batch closes when it holds `max_batch` rows or its first request has waited `max_delay`; requests
that arrived while the model was busy go as soon as it is free (they waited for it already). A
request's rows are never split, and each caller gets back exactly the outcome of its own rows.

Where batches run: with no executor, on the event loop itself, one loop turn after the first
waiting request (or `max_delay` later), so that every request the loop read in the meantime joins
the batch. With an executor, one batch runs at a time in it and the loop keeps reading requests.
The real-time endpoint's default is an executor thread that only hands each batch to the model's
own process (serving/model_process.py). With the model in the server's process, running batches
on the loop gave 14% more requests/s on 2 cores than in a thread (a thread makes the loop wait for
the GIL); BENCHMARKS.md compares the modes.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
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
    """Queues jobs and hands batches of them to `run(jobs) -> outcomes` in `executor`, one at a time."""

    def __init__(self, run: Callable[[list[Job]], list[Any]], executor: Executor | None, *, max_batch: int,
                 max_delay_s: float, on_batch: Callable[[int], None] = lambda _n: None) -> None:
        self.run, self.executor = run, executor
        self.max_batch, self.max_delay_s = max_batch, max_delay_s
        self.on_batch = on_batch  # called with each batch's row count (metrics)
        self._pending: deque[Job] = deque()
        self.pending_rows = 0
        self._busy = False
        self._timer: asyncio.TimerHandle | asyncio.Handle | None = None

    async def submit(self, rows: Sequence[Any], extra: Any = None) -> Any:
        """The outcome of `rows` once a batch holding them has run."""
        loop = asyncio.get_running_loop()
        job = Job(rows, loop.create_future(), extra)
        self._pending.append(job)
        self.pending_rows += job.n
        if self.executor is None:
            if self._timer is None:
                self._timer = loop.call_later(self.max_delay_s, self._drain) if self.max_delay_s > 0 \
                    else loop.call_soon(self._drain)
        elif not self._busy:
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

    def _drain(self) -> None:
        """Inline mode: run everything waiting now, `max_batch` rows at a time, on the loop."""
        self._timer = None
        while self._pending:
            jobs = self._take()
            try:
                outcomes = self.run(jobs)
            except Exception as exc:  # noqa: BLE001  (`run` should catch; if not, every job gets the error)
                outcomes = [exc] * len(jobs)
            self._resolve(jobs, outcomes)

    @staticmethod
    def _resolve(jobs: list[Job], outcomes: list[Any]) -> None:
        for job, outcome in zip(jobs, outcomes, strict=True):
            if not job.future.done():  # a caller that went away leaves a cancelled future
                job.future.set_result(outcome)

    def _on_timer(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        if not self._busy and self._pending:
            self._dispatch(loop)

    def _dispatch(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        jobs = self._take()
        self._busy = True
        done = loop.run_in_executor(self.executor, self.run, jobs)
        done.add_done_callback(lambda f: self._finish(loop, jobs, f))

    def _finish(self, loop: asyncio.AbstractEventLoop, jobs: list[Job], done: asyncio.Future[list[Any]]) -> None:
        self._busy = False
        try:
            outcomes = done.result()
        except BaseException as exc:  # noqa: BLE001  (`run` should catch; if not, every job gets the error)
            outcomes = [exc] * len(jobs)
        self._resolve(jobs, outcomes)
        if self._pending:
            self._dispatch(loop)  # they waited for the model already: no further delay
