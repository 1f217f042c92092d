"""The feature transform: derive hook, then fitted imputation, scaling and category codes.

Training, Spark scoring and the real-time endpoint all use the one fitted `Preprocessor`: frames
through `transform`, row dicts (the real-time path) through `transform_records`, which gives the
same output without building a frame per column. The fitted state is plain JSON and travels inside
the logged model.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
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
        """Raw rows -> (scaled numerics with medians for nulls, category codes with 0 for unknown).

        Columns are read once each and the arithmetic runs on whole matrices: the real-time endpoint
        transforms small batches, where per-column pandas calls cost more than the data (5 ms for
        20 rows before, bench/realtime_bench.py). tests/unit/test_features.py holds it equal to the plain
        per-column definition.
        """
        frame = self.derive(frame)
        n = len(frame)
        values = np.empty((n, len(self.numeric)), dtype=np.float64)
        for j, col in enumerate(self.numeric):
            column = frame[col]
            if column.dtype.kind in "fiub":
                values[:, j] = column.to_numpy(dtype=np.float64, na_value=np.nan)
            else:  # strings or mixed objects: what parses as a number counts, the rest is null
                values[:, j] = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        stats = self._numeric_stats()
        values = np.where(np.isnan(values), stats[0], values)
        num = ((values - stats[1]) / stats[2]).astype(np.float32)
        cat = np.zeros((n, len(self.categorical)), dtype=np.int64)
        for j, col in enumerate(self.categorical):
            column = frame[col]
            if not (column.dtype == object and pd.api.types.infer_dtype(column, skipna=True) in ("string", "empty")):
                column = column.astype("string").fillna("\0")  # numbers and the like match by their text
            if n <= 512:  # a dict look-up per value beats building a hash table of the values
                codes = self._codes(col)
                cat[:, j] = [codes.get(v, 0) for v in column.to_numpy()]
            else:
                cat[:, j] = self._index(col).get_indexer(column) + 1  # -1 (unknown or null) becomes 0
        return num, cat

    def transform_records(self, rows: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
        """`transform` of row dicts (the real-time path), without building Series per column.

        The same output as `transform(pd.DataFrame(rows))` (tests/unit/test_features.py holds them
        equal): the derive hook still gets a DataFrame, and only the derived columns are read back
        from it; every other value is read straight from the dicts. Numerics must be numbers or
        None; rows with anything else go through `transform`.
        """
        if not rows:
            return (np.empty((0, len(self.numeric)), dtype=np.float32),
                    np.empty((0, len(self.categorical)), dtype=np.int64))
        first = rows[0]
        derived = [c for c in (*self.numeric, *self.categorical) if c not in first]
        read: dict[str, np.ndarray] = {}
        if derived:
            if not self.derive_hook:
                raise KeyError(f"rows lack feature(s) {', '.join(derived)}")
            cat_cols = set(self.categorical)
            frame = self.derive(pd.DataFrame(
                {c: np.array([r.get(c) for r in rows], dtype=object if c in cat_cols else None) for c in first},
                copy=False))
            read = {c: frame[c].to_numpy() for c in derived}
        try:
            values = np.array([[r.get(c) for c in self.numeric if c not in read] for r in rows], dtype=np.float64)
        except (TypeError, ValueError):  # text in a numeric column: the general path parses what it can
            return self.transform(pd.DataFrame(list(rows)))
        if read:
            full = np.empty((len(rows), len(self.numeric)), dtype=np.float64)
            k = 0
            for j, col in enumerate(self.numeric):
                if col in read:
                    full[:, j] = pd.to_numeric(read[col], errors="coerce") if read[col].dtype == object else read[col]
                else:
                    full[:, j] = values[:, k]
                    k += 1
            values = full
        stats = self._numeric_stats()
        values = np.where(np.isnan(values), stats[0], values)
        num = ((values - stats[1]) / stats[2]).astype(np.float32)
        cat = np.zeros((len(rows), len(self.categorical)), dtype=np.int64)
        for j, col in enumerate(self.categorical):
            codes: dict[Any, int] = self._codes(col)  # looked up with None too (never a key: code 0)
            column = read[col] if col in read else [r.get(col) for r in rows]
            cat[:, j] = [codes.get(v if v is None or isinstance(v, str) else _as_text(v), 0) for v in column]
        return num, cat

    def _numeric_stats(self) -> np.ndarray:
        cached: np.ndarray | None = self.__dict__.get("_stats")
        if cached is None:
            cached = self.__dict__["_stats"] = np.array(
                [[self.medians[c] for c in self.numeric], [self.means[c] for c in self.numeric],
                 [self.stds[c] for c in self.numeric]], dtype=np.float64)
        return cached

    def _codes(self, col: str) -> dict[str, int]:
        codes: dict[str, dict[str, int]] = self.__dict__.setdefault("_code_maps", {})
        if col not in codes:
            codes[col] = {v: i + 1 for i, v in enumerate(self.vocab[col])}
        return codes[col]

    def _index(self, col: str) -> pd.Index:
        indexes: dict[str, pd.Index] = self.__dict__.setdefault("_indexes", {})
        if col not in indexes:
            indexes[col] = pd.Index(self.vocab[col], dtype=object)
        return indexes[col]

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Preprocessor:
        data: dict[str, Any] = json.loads(text)
        return cls(**data)


def _as_text(value: Any) -> str | None:
    """A non-string category value as `astype("string")` writes it (None for NaN)."""
    if isinstance(value, float) and np.isnan(value):
        return None
    return str(pd.array([value]).astype("string")[0])
