"""Scoring Arrow batches with a model bundle inside Spark's Python workers (jobs/score.py's UDF body).

Each worker loads the bundle once and keeps it for every batch and task it runs; the scores come
from the scorer's one forward pass (nightshift/model.py), as everywhere else.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

# One scorer per bundle per process: a Spark Python worker loads the model once and keeps it for
# every batch and task it runs (Spark reuses its Python workers).
_SCORERS: dict[str, Any] = {}


def cached_scorer(bundle_dir: str | Path, threads: int | None = 1) -> Any:
    """The scorer of a bundle folder, loaded on first use in this process (CPU; `threads` torch threads)."""
    key = str(bundle_dir)
    if key not in _SCORERS:
        import torch

        from nightshift.model import load_bundle

        if threads:
            torch.set_num_threads(threads)
        _SCORERS[key] = load_bundle(key, device="cpu")
    return _SCORERS[key]


def score_columns(batches: Iterator[tuple[pa.Array, ...]], *, bundle: str, names: list[str]) -> Iterator[pa.Array]:
    """Scalar Arrow UDF body: raw input columns in, float32 scores out (the key stays in the JVM)."""
    from pyspark import SparkFiles  # only ever called inside a Spark Python worker

    scorer = cached_scorer(SparkFiles.get(bundle))
    for columns in batches:
        frame = pa.Table.from_arrays(list(columns), names=names).to_pandas()
        yield pa.array(np.asarray(scorer.predict_proba(frame), dtype=np.float32), pa.float32())
