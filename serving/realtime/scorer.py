"""Loading a scorer bundle for serving: on the device at the precision, warmed up, refused if it cannot serve.

Used in the endpoint's process and in a model's own child process (serving/realtime/model_process.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nightshift.spec import DatasetSpec


def load_scorer(bundle: Path, spec: DatasetSpec, *, device: str, precision: str,
                warm_sizes: Sequence[int] = (1, 8, 64)) -> Any:
    """The bundle's scorer, after a few warm-up batches (first CUDA calls are slow); raises if it gives NaN."""
    from nightshift.model import load_bundle

    scorer = load_bundle(bundle, device=device, precision=precision)
    for n in warm_sizes:
        scores = scorer.predict_records(example_rows(spec, n))
        if scores.shape != (n,) or not np.isfinite(scores).all():
            raise ValueError(f"{bundle} gave {scores.shape} scores with NaN or inf on {n} warm-up rows: refused")
    return scorer


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
