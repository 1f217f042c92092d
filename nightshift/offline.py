"""The offline store: one Parquet partition per dataset and day, replaced atomically."""

from __future__ import annotations

import hashlib
import importlib
import os
import shutil
import uuid
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from nightshift.spec import DatasetSpec, resolve


def partition_dir(root: Path, dataset: str, day: date) -> Path:
    """Folder of one day's partition."""
    return root / dataset / f"date={day.isoformat()}"


def load_source(spec: DatasetSpec, cache_dir: Path | None = None) -> pd.DataFrame:
    """All rows of the dataset's source, with the stored columns only.

    A Python loader's output is cached as Parquet under cache_dir, keyed by the loader and its
    module's code, so a changed loader never serves stale rows; files are read directly.
    """
    cache = None
    if spec.source.loader and cache_dir is not None:
        module = importlib.import_module(spec.source.loader.partition(":")[0])
        code = Path(module.__file__ or "").read_bytes() if module.__file__ else b""
        key = hashlib.sha256(spec.source.loader.encode() + code).hexdigest()[:12]
        cache = cache_dir / f"{spec.name}-source-{key}.parquet"
        if cache.exists():
            return pd.read_parquet(cache)
    if spec.source.loader:
        frame = resolve(spec.source.loader)()
    else:
        path = Path(spec.source.path or "")
        path = path if path.is_absolute() else spec.spec_dir / path
        if not path.is_file():
            raise ValueError(f"the source file of {spec.name} does not exist: {path}")
        frame = pd.read_parquet(path) if spec.source.file_format() == "parquet" else pd.read_csv(path)
    missing = [c for c in spec.stored_columns if c not in frame.columns]
    if missing:
        raise ValueError(f"source of {spec.name} lacks columns {missing}")
    frame = frame[spec.stored_columns].copy()
    frame[spec.date_column] = pd.to_datetime(frame[spec.date_column]).dt.strftime("%Y-%m-%d")
    if spec.event_timestamp and not pd.api.types.is_datetime64_any_dtype(frame[spec.event_timestamp]):
        # A CSV holds times as text; stored as text they would read as strings (validation refuses them).
        try:
            frame[spec.event_timestamp] = pd.to_datetime(frame[spec.event_timestamp], format="ISO8601")
        except ValueError as exc:
            raise ValueError(f"the event_timestamp column {spec.event_timestamp!r} of {spec.name} is not ISO 8601 "
                             f"timestamps (YYYY-MM-DD HH:MM:SS, optionally with a UTC offset): {exc}") from exc
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".{uuid.uuid4().hex}.tmp")
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, cache)
    return frame


def write_partition(root: Path, dataset: str, day: date, frame: pd.DataFrame) -> Path:
    """Write (or replace) one day's partition; readers see the old or the new one, never a mix."""
    final = partition_dir(root, dataset, day)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = final.parent / f".staging-{day.isoformat()}-{uuid.uuid4().hex}"
    staging.mkdir()
    frame.to_parquet(staging / "part-0.parquet", index=False)
    old = None
    if final.exists():
        old = final.parent / f".old-{day.isoformat()}-{uuid.uuid4().hex}"
        os.replace(final, old)
    os.replace(staging, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return final


def read_partition(root: Path, dataset: str, day: date) -> pd.DataFrame:
    """One day's partition; FileNotFoundError naming the day when it was never ingested."""
    path = partition_dir(root, dataset, day) / "part-0.parquet"
    if not path.exists():
        raise FileNotFoundError(f"no {dataset} partition for {day.isoformat()} (looked in {path.parent})")
    return pd.read_parquet(path)


def days(start: date, end: date) -> list[date]:
    """Every day from start to end, both included."""
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def read_days(root: Path, dataset: str, wanted: list[date]) -> tuple[pd.DataFrame, list[date]]:
    """The partitions that exist among `wanted`, concatenated, and the days found."""
    frames, found = [], []
    for day in wanted:
        path = partition_dir(root, dataset, day) / "part-0.parquet"
        if path.exists():
            frames.append(pd.read_parquet(path))
            found.append(day)
    if not frames:
        return pd.DataFrame(), found
    return pd.concat(frames, ignore_index=True), found


def fingerprint(root: Path, dataset: str, found: list[date]) -> str:
    """Content hash of a set of partitions: the same data gives the same fingerprint."""
    h = hashlib.sha256()
    for day in sorted(found):
        h.update(day.isoformat().encode())
        h.update((partition_dir(root, dataset, day) / "part-0.parquet").read_bytes())
    return h.hexdigest()[:16]


def labels(spec: DatasetSpec, frame: pd.DataFrame) -> np.ndarray:
    """The target as 1.0 (positive), 0.0, or NaN where the label is unknown."""
    col = frame[spec.target.column]
    y = (col.astype(object) == spec.target.positive).astype(float).to_numpy()
    if pd.api.types.is_numeric_dtype(col):
        y = np.where(col.to_numpy(dtype=float) == float(spec.target.positive), 1.0, 0.0)
    y[col.isna().to_numpy()] = np.nan
    return y
