"""A model in its own process: the server's event loop keeps the HTTP work, the model gets a core.

On 2 cores the feature transform and forward pass took about a fifth of the endpoint's event loop
(py-spy under bench/realtime_bench.py); in a thread of the same process they fight the loop for
the GIL. Here the loop pickles a batch's rows down a pipe and goes on serving while the child
transforms and scores them; the scores come back as a read event on the loop. The child loads
and warms the bundle before it says it is ready, so a model that cannot load or serve is refused
before it is swapped in. It ignores SIGINT and SIGTERM: a Ctrl+C or SIGTERM to the server's
process group must not kill it while the server drains its last requests; it ends when the
server closes the pipe or dies.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import signal
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

from nightshift.spec import DatasetSpec


class InferenceFailed(RuntimeError):
    """The model process could not score a batch (its error, or that it died)."""


class ModelProcess:
    """One scorer bundle loaded in a child process; `predict` awaits its scores without blocking the loop."""

    def __init__(self, bundle: Path, *, spec: DatasetSpec, device: str, precision: str, threads: int,
                 start_timeout: float = 300.0) -> None:
        """Start the child and wait (blocking: call it off the loop) until it has loaded and warmed the bundle."""
        ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no copied event loop, threads or CUDA state
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child, str(bundle), spec, device, precision, threads),
                                 name=f"model {Path(bundle).name}", daemon=True)
        self._proc.start()
        child.close()
        self._lock = asyncio.Lock()  # one batch at a time down the pipe (canary and shadow share a model)
        try:
            if not self._conn.poll(start_timeout):
                raise TimeoutError(f"the model process did not load {bundle} within {start_timeout:.0f}s")
            ok, answer = self._conn.recv()
        except (EOFError, OSError, TimeoutError) as exc:
            self._end()
            raise RuntimeError(f"the model process for {bundle} ended before it was ready "
                               f"(exit code {self._proc.exitcode}): {exc}") from exc
        if not ok:
            self._end()
            raise RuntimeError(answer)
        self.device, self.precision = answer

    async def predict(self, rows: Sequence[dict[str, Any]]) -> np.ndarray:
        """Scores of raw rows, computed in the child; InferenceFailed when it fails or is gone.

        The answer arrives as a read event on the event loop: no thread waits for it, so no GIL
        hand-off delays it (a worker thread waiting on the pipe cost the loop 5-20% of its rows/s).
        """
        async with self._lock:
            loop = asyncio.get_running_loop()
            answered: asyncio.Future[Any] = loop.create_future()

            def readable() -> None:
                if not answered.done():
                    try:
                        answered.set_result(self._conn.recv())
                    except Exception as exc:  # noqa: BLE001  (EOF: the child died)
                        answered.set_exception(exc)

            try:
                fd = self._conn.fileno()
                loop.add_reader(fd, readable)
            except OSError as exc:  # closed
                raise InferenceFailed("the model process is closed") from exc
            try:
                self._conn.send(rows)  # the child waits in recv(): a batch's rows pass at once
                ok, answer = await answered
            except (EOFError, OSError) as exc:
                raise InferenceFailed(f"the model process is gone (exit code {self._proc.exitcode})") from exc
            finally:
                loop.remove_reader(fd)
        if not ok:
            raise InferenceFailed(answer)
        return answer  # type: ignore[no-any-return]

    @property
    def alive(self) -> bool:
        return self._proc.is_alive()

    @property
    def pid(self) -> int | None:
        return self._proc.pid

    async def close(self, timeout: float = 10.0) -> None:
        """Let the child end once the batch in flight (if any) is answered, and wait for it."""
        async with self._lock:
            self._conn.close()
        await asyncio.to_thread(self._end, timeout)

    def _end(self, timeout: float = 10.0) -> None:
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

    from serving.realtime.scorer import load_scorer

    torch.set_num_threads(threads)
    try:
        model = load_scorer(Path(bundle), spec, device=device, precision=precision)
    except Exception as exc:  # noqa: BLE001  (reported to the server, which keeps its old model)
        conn.send((False, f"{type(exc).__name__}: {exc}"))
        return
    conn.send((True, (model.device.type, model.precision)))
    while True:
        try:
            rows = conn.recv()
        except (EOFError, OSError):
            return
        try:
            answer: tuple[bool, Any] = (True, model.predict_records(rows))
        except Exception as exc:  # noqa: BLE001  (the server answers these rows another way)
            answer = (False, f"{type(exc).__name__}: {exc}")
        conn.send(answer)
