"""The one feature transform: derive hook, then fitted imputation, scaling and category codes.

Training, Spark scoring and the real-time endpoint all call `Preprocessor.transform`; the fitted
state is plain JSON and travels inside the logged model.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from nightshift.spec import DatasetSpec, resolve


@dataclass
class Preprocessor:
    """Fitted feature state; `transform` turns raw rows into (numeric float32, categorical int64)."""

    numeric: list[str]
    categorical: list[str]
    derive_hook: str | None = None
    medians: dict[str, float] = field(default_factory=dict)
    means: dict[str, float] = field(default_factory=dict)
    stds: dict[str, float] = field(default_factory=dict)
    vocab: dict[str, list[str]] = field(default_factory=dict)  # code = index + 1; 0 = unknown/null

    @classmethod
    def fit(cls, spec: DatasetSpec, frame: pd.DataFrame, min_count: int = 5) -> Preprocessor:
        """Fit on training rows: medians and scale of numerics, vocabularies of categoricals."""
        pre = cls(spec.numeric, spec.categorical, spec.derive.hook if spec.derive else None)
        frame = pre.derive(frame)
        for col in pre.numeric:
            values = pd.to_numeric(frame[col], errors="coerce").astype(float)
            median = float(values.median()) if values.notna().any() else 0.0
            filled = values.fillna(median)
            pre.medians[col] = median
            pre.means[col] = float(filled.mean())
            std = float(filled.std(ddof=0))
            pre.stds[col] = std if std > 1e-9 else 1.0
        for col in pre.categorical:
            counts = frame[col].dropna().astype(str).value_counts()
            pre.vocab[col] = sorted(counts[counts >= min_count].index.tolist())
        return pre

    def derive(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Raw rows with the spec's derived columns added."""
        return resolve(self.derive_hook)(frame) if self.derive_hook else frame

    @property
    def cardinalities(self) -> list[int]:
        """Embedding table sizes, unknown bucket included."""
        return [len(self.vocab[c]) + 1 for c in self.categorical]

    def transform(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Raw rows -> (scaled numerics with medians for nulls, category codes with 0 for unknown)."""
        frame = self.derive(frame)
        num = np.empty((len(frame), len(self.numeric)), dtype=np.float32)
        for j, col in enumerate(self.numeric):
            values = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=float)
            values = np.where(np.isnan(values), self.medians[col], values)
            num[:, j] = (values - self.means[col]) / self.stds[col]
        cat = np.zeros((len(frame), len(self.categorical)), dtype=np.int64)
        for j, col in enumerate(self.categorical):
            index = pd.Index(self.vocab[col])
            codes = index.get_indexer(frame[col].astype("string").fillna("\0"))
            cat[:, j] = codes + 1  # -1 (unknown) becomes 0
        return num, cat

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Preprocessor:
        data: dict[str, Any] = json.loads(text)
        return cls(**data)
