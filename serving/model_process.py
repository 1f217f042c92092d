"""A model in its own process: the server's event loop keeps the HTTP work, the model gets a core.

On 2 cores the feature transform and forward pass took about a fifth of the endpoint's event loop
(py-spy under bench/realtime_bench.py); in a thread of the same process they fight the loop for
the GIL. Here the server's inference thread pickles a batch's rows down a pipe and waits (the GIL
released) while the child transforms and scores them. The child loads and warms the bundle before
it says it is ready, so a model that cannot load or serve is refused before it is swapped in. It
ignores SIGINT and SIGTERM: a Ctrl+C or SIGTERM to the server's process group must not kill it
while the server drains its last requests; it ends when the server closes the pipe or dies.
"""

from __future__ import annotations

import multiprocessing
import signal
import threading
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

from nightshift.spec import DatasetSpec


class InferenceFailed(RuntimeError):
    """The model process could not score a batch (its error, or that it died)."""


class ModelProcess:
    """One scorer bundle loaded in a child process; `predict` blocks (call it off the event loop)."""

    def __init__(self, bundle: Path, *, spec: DatasetSpec, device: str, precision: str, threads: int,
                 start_timeout: float = 300.0) -> None:
        ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no copied event loop, threads or CUDA state
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child, str(bundle), spec, device, precision, threads),
                                 name=f"model {Path(bundle).name}", daemon=True)
        self._proc.start()
        child.close()
        self._lock = threading.Lock()
        try:
            if not self._conn.poll(start_timeout):
                raise TimeoutError(f"the model process did not load {bundle} within {start_timeout:.0f}s")
            ok, answer = self._conn.recv()
        except (EOFError, OSError, TimeoutError) as exc:
            self.close()
            raise RuntimeError(f"the model process for {bundle} ended before it was ready "
                               f"(exit code {self._proc.exitcode}): {exc}") from exc
        if not ok:
            self.close()
            raise RuntimeError(answer)
        self.device, self.precision = answer

    def predict(self, rows: Sequence[dict[str, Any]]) -> np.ndarray:
        """Scores of raw rows, computed in the child; InferenceFailed when it fails or is gone."""
        with self._lock:
            try:
                self._conn.send(rows)
                ok, answer = self._conn.recv()
            except (EOFError, OSError) as exc:
                raise InferenceFailed(f"the model process is gone (exit code {self._proc.exitcode})") from exc
        if not ok:
            raise InferenceFailed(answer)
        return answer  # type: ignore[no-any-return]

    @property
    def alive(self) -> bool:
        return self._proc.is_alive()

    @property
    def pid(self) -> int | None:
        return self._proc.pid

    def join(self, timeout: float | None = None) -> None:
        """Wait for the child to end."""
        self._proc.join(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Let the child end (after a batch in flight) and wait for it."""
        with self._lock:
            self._conn.close()
        self._proc.join(timeout)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(timeout)


def _serve(conn: Connection, bundle: str, spec: DatasetSpec, device: str, precision: str, threads: int) -> None:
    """The child: load and warm the bundle, then score each batch of rows until the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    import torch

    from serving.models import LoadedModel

    torch.set_num_threads(threads)
    try:
        model = LoadedModel.load(Path(bundle), name=Path(bundle).name, version="", alias="", spec=spec,
                                 device=device, precision=precision)
    except Exception as exc:  # noqa: BLE001  (reported to the server, which keeps its old model)
        conn.send((False, f"{type(exc).__name__}: {exc}"))
        return
    conn.send((True, (model.device, model.precision)))
    while True:
        try:
            rows = conn.recv()
        except (EOFError, OSError):
            return
        try:
            answer: tuple[bool, Any] = (True, model.predict(rows))
        except Exception as exc:  # noqa: BLE001  (the server answers these rows another way)
            answer = (False, f"{type(exc).__name__}: {exc}")
        conn.send(answer)
