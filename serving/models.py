"""The models the real-time endpoint runs: loading, warm-up, inference, and hot swap on promotion.

`ModelManager` holds the champion (and, for shadow or canary, the challenger) as `LoadedModel`s.
It polls the registry's aliases; a new version is downloaded, loaded and warmed in a background
thread while the old one keeps serving, then swapped in by one assignment. A version that fails to
load or to warm up is refused and the old one keeps serving. With `realtime_inference=process`
(the default) each model runs in its own child process (serving/model_process.py); a replaced
model's process ends a grace period after the swap, and one that died is started again at the
next poll.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nightshift.settings import Settings
from nightshift.spec import DatasetSpec

log = logging.getLogger("nightshift.realtime")

CHAMPION, CHALLENGER = "champion", "challenger"
RETIRE_SECONDS = 30.0  # a replaced model's process outlives the swap this long (batches that started on it finish)


def _precision(wanted: str, device: str) -> str:
    """The precision a model runs at: fp32 on CPU; `auto` is bf16 on CUDA."""
    if device != "cuda":
        return "fp32"
    return "bf16" if wanted == "auto" else wanted


@dataclass
class LoadedModel:
    """A scorer ready to answer: raw rows in, scores out (on CUDA in reduced precision when set)."""

    name: str
    version: str
    alias: str
    scorer: Any
    columns: list[str]
    device: str = "cpu"
    precision: str = "fp32"
    loaded_at: float = field(default_factory=time.time)
    _net: Any = None
    _process: Any = None  # a ModelProcess when the model runs in its own process

    @classmethod
    def start(cls, bundle: Path, *, name: str, version: str, alias: str, spec: DatasetSpec, device: str = "auto",
              precision: str = "auto", own_process: bool = False, threads: int = 1) -> LoadedModel:
        """`load` in this process, or in a child process of its own (`own_process`); raises when it cannot serve."""
        if not own_process:
            return cls.load(bundle, name=name, version=version, alias=alias, spec=spec, device=device,
                            precision=precision)
        from serving.model_process import ModelProcess

        process = ModelProcess(bundle, spec=spec, device=device, precision=precision, threads=threads)
        return cls(name, version, alias, None, list(spec.raw_inputs), process.device, process.precision,
                   _process=process)

    @classmethod
    def load(cls, bundle: Path, *, name: str, version: str, alias: str, spec: DatasetSpec,
             device: str = "auto", precision: str = "auto") -> LoadedModel:
        """Load a scorer bundle, move it to the device, warm it up; raises when it cannot serve."""
        import torch

        from nightshift.model import MLPScorer, load_bundle

        scorer = load_bundle(bundle, device=device)
        dev = str(scorer.device.type) if isinstance(scorer, MLPScorer) else "cpu"
        model = cls(name, version, alias, scorer, list(spec.raw_inputs), dev, _precision(precision, dev))
        if isinstance(scorer, MLPScorer):
            net = scorer.model
            if model.precision != "fp32":
                import copy

                net = copy.deepcopy(net).to({"bf16": torch.bfloat16, "fp16": torch.float16}[model.precision])
            model._net = net
        model.warm_up(spec)
        return model

    @property
    def ref(self) -> dict[str, str]:
        """{"name": ..., "version": ...}: what answers name as the model."""
        return {"name": self.name, "version": self.version}

    @functools.cached_property
    def ref_json(self) -> str:
        """`ref` as JSON (answers embed it)."""
        import json

        return json.dumps(self.ref, separators=(",", ":"))

    @property
    def alive(self) -> bool:
        """False when the model's own process has died (the manager then starts it again)."""
        return self._process is None or self._process.alive

    async def close(self) -> None:
        """End the model's own process, if it has one (after a batch in flight)."""
        if self._process is not None:
            await self._process.close()

    async def predict_async(self, rows: Sequence[dict[str, Any]], *, off_loop: bool = False) -> np.ndarray:
        """`predict` in the model's own process, else in a worker thread (`off_loop`) or on the loop."""
        if self._process is not None:
            return await self._process.predict(rows)  # type: ignore[no-any-return]
        if off_loop:
            return await asyncio.to_thread(self.predict, rows)
        return self.predict(rows)

    def predict(self, rows: Sequence[dict[str, Any]]) -> np.ndarray:
        """Scores (float32) of raw input rows, in order (in this process)."""
        if self._process is not None:
            raise RuntimeError(f"{self.name} v{self.version} runs in its own process: use predict_async")
        if self._net is None:  # the scikit-learn baseline
            import pandas as pd

            return np.asarray(self.scorer.predict_proba(pd.DataFrame(list(rows))), dtype=np.float32)
        import torch

        num, cat = self.scorer.pre.transform_records(rows)
        dev = self.scorer.device
        with torch.inference_mode():
            x = torch.as_tensor(num, device=dev)
            if self.precision != "fp32":
                x = x.to(next(self._net.parameters()).dtype)
            logits = self._net(x, torch.as_tensor(cat, device=dev))
            return torch.sigmoid(logits.float()).cpu().numpy()  # type: ignore[no-any-return]

    def warm_up(self, spec: DatasetSpec, sizes: Sequence[int] = (1, 8, 64)) -> None:
        """Run a few batches (first CUDA calls are slow); refuses a model that gives NaN or fails."""
        for n in sizes:
            scores = self.predict(example_rows(spec, n))
            if scores.shape != (n,) or not np.isfinite(scores).all():
                raise ValueError(f"{self.name} v{self.version} gave {scores.shape} scores with NaN or inf "
                                 f"on {n} warm-up rows: refused")


def example_rows(spec: DatasetSpec, n: int) -> list[dict[str, Any]]:
    """`n` valid rows of `spec` (mid-range numerics, known categories) for warm-ups and examples."""
    kinds = {f.name: f for f in spec.features}
    rows = []
    for i in range(n):
        row: dict[str, Any] = {}
        for name in spec.raw_inputs:
            f = kinds.get(name)
            if f is not None and f.kind == "categorical":
                row[name] = f.categories[i % len(f.categories)] if f.categories else f"value{i % 7}"
            elif f is not None and f.min is not None and f.max is not None:
                row[name] = f.min + (f.max - f.min) * ((i % 10) + 0.5) / 10
            else:
                row[name] = float(i % 10)
        rows.append(row)
    return rows


class ModelManager:
    """The serving models by alias, kept current by polling the registry."""

    def __init__(self, settings: Settings, spec: DatasetSpec,
                 on_event: Callable[[str, str], None] = lambda *_: None) -> None:
        self.settings, self.spec = settings, spec
        self.name = settings.model_name(spec.name)
        self.models: dict[str, LoadedModel | None] = {CHAMPION: None, CHALLENGER: None}
        self.failed: dict[str, str] = {}  # alias -> version that failed to load (not retried until it moves)
        self.last_error: dict[str, str] = {}
        self.on_event = on_event  # (event, alias): "swap", "load_failure"
        self._client: Any = None
        self._retiring: set[asyncio.Task[None]] = set()
        self.roles = [CHAMPION] + ([CHALLENGER] if settings.realtime_shadow or settings.realtime_canary_percent
                                   else [])

    @property
    def champion(self) -> LoadedModel | None:
        return self.models[CHAMPION]

    @property
    def challenger(self) -> LoadedModel | None:
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

    def load_version(self, alias: str, version: str) -> LoadedModel:
        """Download (once), load and warm a registered version (blocking: run in a thread)."""
        from registry.packaging import local_bundle

        self._registry()
        bundle = local_bundle(self.settings.home, self.name, version)
        return self._start(bundle, name=self.name, version=version, alias=alias)

    def _start(self, bundle: Path, *, name: str, version: str, alias: str) -> LoadedModel:
        s = self.settings
        return LoadedModel.start(bundle, name=name, version=version, alias=alias, spec=self.spec,
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
        wanted = await asyncio.to_thread(self.alias_versions)
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

    async def _swap(self, alias: str, version: str, load: Callable[[], LoadedModel]) -> None:
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
        log.info("%s is now %s v%s on %s/%s (was %s; loaded and warmed in %.2fs)", alias, self.name, version,
                 model.device, model.precision, f"v{old.version}" if old else "none", time.perf_counter() - started)
        self.on_event("swap", alias)

    def _retire(self, model: LoadedModel) -> None:
        """End a replaced model's process once batches that started on it have long finished."""
        if model._process is None:
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
                await self.refresh()
            except Exception as exc:  # noqa: BLE001  (a registry outage must not stop serving)
                log.warning("registry poll failed (the loaded models keep serving): %s", exc)
