"""The operational check: load a registered model in a fresh process, predict a sample, time it.

`smoke_check` runs `measure` in a child of a forkserver (multiprocessing's): a process started from a
fresh interpreter that has imported only the libraries a model load needs (this module's imports and
torch), then forks one child per check. The child shares nothing with the caller (no module, object or
CUDA state of the training process), as a serving replica would not, and pays no import time: a
check takes about a second after the server's first start, not the ~6 s of a new interpreter. The
server lives as long as the calling process (one Airflow task, or the whole replay under dag.test()).

By hand: python -m registry.smoke MODEL_URI SAMPLE_PARQUET  (prints one JSON line)
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import time
from multiprocessing.connection import Connection
from typing import Any

import mlflow
import numpy as np
import pandas as pd

# Imported by the forkserver before it forks checks; one that is not installed is skipped by multiprocessing.
PRELOAD = ["registry.smoke", "torch", "pyarrow.parquet"]


def measure(model_uri: str, sample: pd.DataFrame) -> dict[str, Any]:
    """Load the model, predict the sample once to warm up, then five times timed: the median latency."""
    t0 = time.perf_counter()
    model = mlflow.pyfunc.load_model(model_uri)
    load_s = time.perf_counter() - t0
    model.predict(sample)  # warm-up
    timings, preds = [], None
    for _ in range(5):
        t = time.perf_counter()
        preds = np.asarray(model.predict(sample), dtype=float)
        timings.append((time.perf_counter() - t) * 1000)
    assert preds is not None
    return {"loaded": True, "load_seconds": load_s, "rows": len(sample),
            "latency_ms": float(np.median(timings)), "nan_count": int(np.isnan(preds).sum())}


def _child(model_uri: str, sample: pd.DataFrame, env: dict[str, str], cwd: str, conn: Connection) -> None:
    # The forkserver's environment and directory are those of the caller when it started: take today's.
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    try:
        conn.send(("ok", measure(model_uri, sample)))
    except BaseException as exc:  # noqa: BLE001 - any failure to load or predict is the check's result
        conn.send(("error", f"{type(exc).__name__}: {exc}"))


def smoke_check(model_uri: str, sample: pd.DataFrame, env: dict[str, str], timeout_s: float = 600.0) -> dict[str, Any]:
    """`measure` in a fresh forked process under `env`; {"loaded": False, "error": ...} when it fails, crashes
    or runs past `timeout_s`."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)  # takes effect when the server starts (the first check)
    receive, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(model_uri, sample, env, os.getcwd(), send), name="nightshift-smoke")
    proc.start()
    send.close()
    try:
        if not receive.poll(timeout_s):
            return {"loaded": False, "error": f"timed out after {timeout_s:g} s"}
        status, value = receive.recv()
    except EOFError:  # the child died without an answer (a crash in native code, the OOM killer)
        proc.join(10)
        return {"loaded": False, "error": f"the check's process exited with code {proc.exitcode}"}
    finally:
        proc.join(10)
        if proc.is_alive():
            proc.kill()
            proc.join()
        receive.close()
    return value if status == "ok" else {"loaded": False, "error": value}


def main(argv: list[str]) -> int:
    model_uri, sample_path = argv
    print(json.dumps(measure(model_uri, pd.read_parquet(sample_path))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
