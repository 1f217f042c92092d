"""The models the real-time endpoint runs: in its process or their own, kept current by polling the registry.

`ModelManager` holds the champion (and, for shadow or canary, the challenger) as `ServingModel`s.
It polls the registry's aliases; a new version is downloaded, loaded and warmed in a background
thread while the old one keeps serving, then swapped in by one assignment. A version that fails to
load or to warm up is refused and the old one keeps serving. With `realtime_inference=process`
(the default) each model runs in its own child process (serving/realtime/model_process.py); a replaced
model's process ends a grace period after the swap, and one that died is started again at the
next poll.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nightshift.settings import Settings
from nightshift.spec import DatasetSpec
from serving.metrics import Dependency
from serving.realtime.model_process import ModelProcess
from serving.realtime.scorer import load_scorer

log = logging.getLogger("nightshift.realtime")

CHAMPION, CHALLENGER = "champion", "challenger"
RETIRE_SECONDS = 30.0  # a replaced model's process outlives the swap this long (batches that started on it finish)


class ServingModel:
    """A registered version ready to answer raw rows: in this process, or in a child process of its own."""

    def __init__(self, name: str, version: str, alias: str, device: str, precision: str) -> None:
        self.name, self.version, self.alias, self.device, self.precision = name, version, alias, device, precision
        self.loaded_at = time.time()
        self.ref = {"name": name, "version": version}  # what answers name as the model
        self.ref_json = json.dumps(self.ref, separators=(",", ":"))  # `ref` as answers embed it

    @property
    def alive(self) -> bool:
        """False when the model's own process has died (the manager then starts it again)."""
        return True

    async def predict(self, rows: Sequence[dict[str, Any]], *, off_loop: bool = False) -> np.ndarray:
        """Scores (float32) of raw rows, in order."""
        raise NotImplementedError

    async def close(self) -> None:
        """Release what the model holds (its process, if it has one)."""


class InProcessModel(ServingModel):
    """The scorer in the endpoint's own process (`realtime_inference=loop`)."""

    def __init__(self, scorer: Any, *, name: str, version: str, alias: str) -> None:
        super().__init__(name, version, alias, scorer.device.type, scorer.precision)
        self.scorer = scorer

    async def predict(self, rows: Sequence[dict[str, Any]], *, off_loop: bool = False) -> np.ndarray:
        """On the event loop, or in a worker thread when `off_loop` (the shadow's batches)."""
        if off_loop:
            return await asyncio.to_thread(self.scorer.predict_records, rows)  # type: ignore[no-any-return]
        return self.scorer.predict_records(rows)  # type: ignore[no-any-return]


class OwnProcessModel(ServingModel):
    """The scorer in a child process of its own (serving/realtime/model_process.py): the default."""

    def __init__(self, process: ModelProcess, *, name: str, version: str, alias: str) -> None:
        super().__init__(name, version, alias, process.device, process.precision)
        self.process = process

    @property
    def alive(self) -> bool:
        return self.process.alive

    async def predict(self, rows: Sequence[dict[str, Any]], *, off_loop: bool = False) -> np.ndarray:
        """In the child; the event loop never computes, whatever `off_loop` says."""
        return await self.process.predict(rows)

    async def close(self) -> None:
        """End the child once the batch in flight (if any) is answered."""
        await self.process.close()


def start_model(bundle: Path, *, name: str, version: str, alias: str, spec: DatasetSpec, device: str = "auto",
                precision: str = "auto", own_process: bool = True, threads: int = 1) -> ServingModel:
    """Load, warm and wrap a bundle, in this process or in its own (blocking: run it off the loop).

    Raises when the model cannot serve (it fails to load, or its warm-up gives NaN).
    """
    if own_process:
        process = ModelProcess(bundle, spec=spec, device=device, precision=precision, threads=threads)
        return OwnProcessModel(process, name=name, version=version, alias=alias)
    return InProcessModel(load_scorer(bundle, spec, device=device, precision=precision), name=name, version=version,
                          alias=alias)


class ModelManager:
    """The serving models by alias, kept current by polling the registry."""

    def __init__(self, settings: Settings, spec: DatasetSpec,
                 on_event: Callable[[str, str], None] = lambda *_: None) -> None:
        self.settings, self.spec = settings, spec
        self.name = settings.model_name(spec.name)
        self.models: dict[str, ServingModel | None] = {CHAMPION: None, CHALLENGER: None}
        self.failed: dict[str, str] = {}  # alias -> version that failed to load (not retried until it moves)
        self.last_error: dict[str, str] = {}
        self.on_event = on_event  # (event, alias): "swap", "load_failure"
        self.registry = Dependency("registry")  # up/down, logged once per transition, in /metrics and /readyz
        self._client: Any = None
        self._retiring: set[asyncio.Task[None]] = set()
        self.roles = [CHAMPION] + ([CHALLENGER] if settings.realtime_shadow or settings.realtime_canary_percent
                                   else [])

    @property
    def champion(self) -> ServingModel | None:
        return self.models[CHAMPION]

    @property
    def challenger(self) -> ServingModel | None:
        return self.models[CHALLENGER]

    def _registry(self) -> Any:
        if self._client is None:
            from registry.tracking import connect

            self._client = connect(self.settings)
        return self._client

    def alias_versions(self) -> dict[str, str | None]:
        """The registry's current version of each alias this endpoint serves (blocking: run in a thread)."""
        from registry.aliases import alias_version

        client = self._registry()
        return {role: alias_version(client, self.name, role) for role in self.roles}

    def load_version(self, alias: str, version: str) -> ServingModel:
        """Download (once), load and warm a registered version (blocking: run in a thread)."""
        from registry.packaging import local_bundle

        self._registry()
        bundle = local_bundle(self.settings.home, self.name, version)
        return self._start(bundle, name=self.name, version=version, alias=alias)

    def _start(self, bundle: Path, *, name: str, version: str, alias: str) -> ServingModel:
        s = self.settings
        return start_model(bundle, name=name, version=version, alias=alias, spec=self.spec,
                           device=s.realtime_device, precision=s.realtime_precision,
                           own_process=s.realtime_inference == "process", threads=s.realtime_cpu_threads)

    async def refresh(self) -> None:
        """Load and swap in any alias that moved since the last look; a failed load keeps the old model."""
        bundle_dir = self.settings.realtime_bundle_dir
        if bundle_dir is not None:
            if self.champion is None or not self.champion.alive:
                await self._swap(CHAMPION, "local", functools.partial(
                    self._start, bundle_dir, name=f"{self.name} (bundle {bundle_dir.name})", version="local",
                    alias=CHAMPION))
            return
        try:
            wanted = await asyncio.to_thread(self.alias_versions)
        except Exception as exc:  # noqa: BLE001  (an outage: every loaded model keeps serving as it is)
            self.registry.failed(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            if self.champion is None:
                await self._from_disk()
            return
        self.registry.ok()
        for alias, version in wanted.items():
            current = self.models[alias]
            if version is None:
                if current is not None and alias == CHALLENGER:  # challenger removed: stop shadow and canary
                    self.models[alias] = None
                    self._retire(current)
                    log.info("alias %s of %s removed: no %s model now", alias, self.name, alias)
                continue
            if current is not None and current.version == version and not current.alive:
                log.error("the process of %s v%s (%s) died: starting it again", self.name, version, alias)
            elif (current is not None and current.version == version) or self.failed.get(alias) == version:
                continue
            await self._swap(alias, version, functools.partial(self.load_version, alias, version))

    async def _from_disk(self) -> None:
        """No champion and no registry (a start during an outage): serve the last champion this home served,
        from its bundle on disk, until the registry answers again."""
        from registry.packaging import last_served

        found = last_served(self.settings.home, self.name, CHAMPION)
        if found is None:
            log.error("the registry is down and no champion of %s was served from this home before: "
                      "no model until the registry answers", self.name)
            return
        version, bundle = found
        log.warning("the registry is down: serving %s v%s, the last champion served here, from %s",
                    self.name, version, bundle)
        await self._swap(CHAMPION, version, functools.partial(self._start, bundle, name=self.name,
                                                              version=version, alias=CHAMPION))

    async def _swap(self, alias: str, version: str, load: Callable[[], ServingModel]) -> None:
        old = self.models[alias]
        started = time.perf_counter()
        try:
            model = await asyncio.to_thread(load)
        except Exception as exc:  # noqa: BLE001  (any failure to load leaves the old model serving)
            self.failed[alias] = version
            self.last_error[alias] = f"v{version}: {type(exc).__name__}: {exc}"
            log.error("could not load %s v%s for %s, %s keeps serving: %s", self.name, version, alias,
                      f"v{old.version}" if old else "no model", exc)
            self.on_event("load_failure", alias)
            return
        self.models[alias] = model  # one assignment: a batch runs on the model it started with
        if old is not None:
            self._retire(old)
        self.failed.pop(alias, None)
        self.last_error.pop(alias, None)
        if alias == CHAMPION and version != "local":
            from registry.packaging import remember_served

            remember_served(self.settings.home, self.name, alias, version)
        log.info("%s is now %s v%s on %s/%s (was %s; loaded and warmed in %.2fs)", alias, self.name, version,
                 model.device, model.precision, f"v{old.version}" if old else "none", time.perf_counter() - started)
        self.on_event("swap", alias)

    def _retire(self, model: ServingModel) -> None:
        """End a replaced model's process once batches that started on it have long finished."""
        if not isinstance(model, OwnProcessModel):
            return

        async def retire() -> None:
            try:
                await asyncio.sleep(RETIRE_SECONDS)
            finally:  # also when cancelled by close(): the process must not outlive the server
                await model.close()

        task = asyncio.create_task(retire())
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def close(self) -> None:
        """End every model process (the server is shutting down)."""
        for task in list(self._retiring):
            task.cancel()
        await asyncio.gather(*self._retiring, return_exceptions=True)
        for model in self.models.values():
            if model is not None:
                await model.close()

    async def poll(self) -> None:
        """Refresh every `realtime_poll_seconds` until cancelled; registry errors are logged, not fatal."""
        while True:
            await asyncio.sleep(self.settings.realtime_poll_seconds)
            try:
                await self.refresh()  # a registry outage is counted and logged there, once per transition
            except Exception as exc:  # noqa: BLE001  (nothing may stop the poll)
                log.warning("model refresh failed (the loaded models keep serving): %s", exc)
