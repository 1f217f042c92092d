"""Scoring raw rows with a model bundle: the piece Spark's Python workers, the in-process baseline
and the real-time endpoint share. No Spark import here: workers import it to score Arrow batches.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

OUTPUT_SCHEMA = pa.schema([("entity_key", pa.string()), ("score", pa.float32()), ("label", pa.bool_())])

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


def score_batch(scorer: Any, batch: pa.RecordBatch | pa.Table, *, key: str, threshold: float) -> pa.RecordBatch:
    """(entity_key, score, label) for every row of an Arrow batch of raw inputs."""
    frame = batch.drop_columns([key]).to_pandas()  # the key never goes through pandas (10M strings: seconds)
    proba = np.asarray(scorer.predict_proba(frame), dtype=np.float32)
    keys = batch.column(key)
    if isinstance(keys, pa.ChunkedArray):
        keys = keys.combine_chunks()
    return pa.record_batch([keys.cast(pa.string()), pa.array(proba, pa.float32()), pa.array(proba >= threshold)],
                           schema=OUTPUT_SCHEMA)


def score_columns(batches: Iterator[tuple[pa.Array, ...]], *, bundle: str, names: list[str]) -> Iterator[pa.Array]:
    """Scalar Arrow UDF body: raw input columns in, float32 scores out (the key stays in the JVM)."""
    from pyspark import SparkFiles  # only ever called inside a Spark Python worker

    scorer = cached_scorer(SparkFiles.get(bundle))
    for columns in batches:
        frame = pa.Table.from_arrays(list(columns), names=names).to_pandas()
        yield pa.array(np.asarray(scorer.predict_proba(frame), dtype=np.float32), pa.float32())
