"""The inference side of the real-time endpoint: batches of rows on the loaded models.

`InferenceRunner.run` is the batcher's `run`: it scores a batch with the champion, or a stable,
hash-chosen share of entity keys with the challenger (canary), and hands a copy of the batch to the
challenger in shadow after the champion's answers went out. One bad request never fails the others.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from serving.realtime.batcher import Job
from serving.realtime.models import ModelManager, ServingModel
from serving.realtime.stats import RealtimeStats

log = logging.getLogger("nightshift.realtime")


class ModelUnavailable(RuntimeError):
    """No model could answer (none loaded, or inference failed)."""


def canary_share(key: str) -> float:
    """A stable number in [0, 100) for an entity key: keys below the canary percent go to the challenger."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big") % 10_000 / 100


def request_ids(kind: str) -> Iterator[str]:
    """Unique request ids: a random prefix per process, then a counter (uuid4 per request cost 7% of the loop)."""
    prefix = uuid.uuid4().hex[:12]
    return (f"{kind}-{prefix}-{n}" for n in itertools.count(1))


class InferenceRunner:
    """Runs the batcher's batches on the loaded models (champion, canary, shadow)."""

    def __init__(self, manager: ModelManager, stats: RealtimeStats, *, shadow: bool, log_writer: Any,
                 key_field: str, threshold: float) -> None:
        self.manager, self.stats, self.log_writer = manager, stats, log_writer
        self.key_field, self.threshold = key_field, threshold
        self.shadow = shadow
        self.shadow_tasks: set[asyncio.Task[None]] = set()
        self.request_ids = request_ids("shadow")

    async def run(self, jobs: list[Job]) -> list[Any]:
        """One outcome per job: (scores, models per row), or the exception that stopped it."""
        champion, challenger = self.manager.champion, self.manager.challenger
        if champion is None:
            return [ModelUnavailable("no model is loaded yet")] * len(jobs)
        try:
            outcomes: list[Any] = await self._score(jobs, champion, challenger)
        except Exception:  # noqa: BLE001  (retry one by one: one bad request must not fail the others)
            outcomes = []
            for job in jobs:
                try:
                    outcomes += await self._score([job], champion, challenger)
                except Exception as exc:  # noqa: BLE001
                    log.warning("inference failed on %s v%s: %s", champion.name, champion.version, exc)
                    outcomes.append(ModelUnavailable(f"inference failed: {type(exc).__name__}: {exc}"))
        if self.shadow and challenger is not None:
            self._shadow(jobs, challenger)
        return outcomes

    async def _score(self, jobs: list[Job], champion: ServingModel, challenger: ServingModel | None) -> list[Any]:
        rows = [row for job in jobs for row in job.rows]
        canary = [flag for job in jobs for flag in (job.extra or [False] * job.n)]
        models: list[ServingModel] = [champion] * len(rows)
        if challenger is not None and any(canary):
            picked = [i for i, flag in enumerate(canary) if flag]
            scores = np.empty(len(rows), dtype=np.float32)
            rest = [i for i, flag in enumerate(canary) if not flag]
            try:
                scores[picked] = await challenger.predict([rows[i] for i in picked])
                for i in picked:
                    models[i] = challenger
            except Exception as exc:  # noqa: BLE001  (a failing canary falls back to the champion)
                log.warning("canary %s v%s failed, the champion answers: %s", challenger.name, challenger.version,
                            exc)
                rest = list(range(len(rows)))
            if rest:
                scores[rest] = await champion.predict([rows[i] for i in rest])
        else:
            scores = await champion.predict(rows)
        outcomes, start = [], 0
        for job in jobs:
            outcomes.append((scores[start:start + job.n], models[start:start + job.n]))
            start += job.n
        return outcomes

    def _shadow(self, jobs: list[Job], challenger: ServingModel) -> None:
        if len(self.shadow_tasks) >= 4:  # the shadow fell behind: skip rather than queue without bound
            self.stats.shadow_skipped += 1
            return
        task = asyncio.create_task(self._run_shadow([job.rows for job in jobs], challenger))
        self.shadow_tasks.add(task)
        task.add_done_callback(self.shadow_tasks.discard)

    async def _run_shadow(self, batch: list[Sequence[dict[str, Any]]], challenger: ServingModel) -> None:
        """After the champion's answers went out: off the loop (a thread, or the challenger's own process)."""
        try:
            scores = await challenger.predict([row for part in batch for row in part], off_loop=True)
            if self.log_writer is not None:
                start = 0
                for part in batch:
                    s = scores[start:start + len(part)]
                    start += len(part)
                    self.log_writer.put(next(self.request_ids), part, s.tolist(), (s >= self.threshold).tolist(),
                                        [challenger.ref] * len(part), "shadow", source="model",
                                        returned=False, latency_ms=None, key_field=self.key_field)
        except Exception as exc:  # noqa: BLE001  (a failing shadow never touches served traffic)
            log.warning("shadow %s v%s failed: %s", challenger.name, challenger.version, exc)

    async def close(self) -> None:
        """Let the shadow batches in flight finish (their scores are logged)."""
        await asyncio.gather(*self.shadow_tasks, return_exceptions=True)
