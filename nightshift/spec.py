"""Dataset specs: a dataset is configuration (YAML), loaded into typed, validated objects."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

SPEC_DIR = Path(__file__).parent / "specs"


class Feature(BaseModel):
    """One model input: its kind and the data-quality limits the validation suite enforces."""

    model_config = ConfigDict(extra="forbid")

    name: str
    kind: Literal["numeric", "categorical"]
    null_share: float | None = None  # max share of nulls; None = the spec's default
    min: float | None = None
    max: float | None = None
    categories: list[str] | None = None  # allowed values; None = open set (unknowns map to OOV)
    derived: bool = False  # produced by the spec's derive hook, not present in raw rows
    # Watched for drift. False for a feature one day's rows cannot judge (the weekday is constant
    # within a day, so every day would "drift").
    monitor: bool = True


class Source(BaseModel):
    """Where rows come from: a Python loader, or a CSV/Parquet file."""

    model_config = ConfigDict(extra="forbid")

    loader: str | None = None  # "module:function" returning a DataFrame
    path: str | None = None  # relative paths resolve against the spec file's folder
    format: Literal["csv", "parquet"] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Source:
        if (self.loader is None) == (self.path is None):
            raise ValueError("source needs exactly one of 'loader' or 'path'")
        return self


class Target(BaseModel):
    model_config = ConfigDict(extra="forbid")

    column: str
    positive: Any  # the value that counts as the positive class
    threshold: float = Field(0.5, gt=0, lt=1)  # score at or above which a prediction is labelled positive


class Scoring(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # What a batch scoring run scores: every ingested partition, the full dataset ("all", the
    # default: upcoming flights are what a lookup asks about), or only the data date's ("day").
    scope: Literal["all", "day"] = "all"


class Derive(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hook: str  # "module:function": DataFrame of raw inputs -> same frame with derived columns added
    inputs: list[str] = Field(default_factory=list)  # raw columns the hook reads


class Expectations(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_rows: int = 1
    max_rows: int = 10_000_000
    max_null_share: float = 0.05
    max_unknown_share: float = 0.02  # share of values outside a feature's categories
    range_mostly: float = 0.999  # share of numeric values that must lie within [min, max]
    target_null_share: float = 0.1


class GateFloors(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_auc: float = 0.6
    max_log_loss: float = 0.69


class DatasetSpec(BaseModel):
    """Everything the pipeline needs to know about one tabular dataset."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    source: Source
    entity_key: str
    date_column: str  # partition date (YYYY-MM-DD) of each row
    event_timestamp: str | None = None
    target: Target
    features: list[Feature]
    derive: Derive | None = None
    slices: list[str] = Field(default_factory=list)
    expectations: Expectations = Field(default_factory=Expectations)
    gates: GateFloors = Field(default_factory=GateFloors)
    scoring: Scoring = Field(default_factory=Scoring)
    spec_dir: Path = Field(default=SPEC_DIR, exclude=True)

    @model_validator(mode="after")
    def _consistent(self) -> DatasetSpec:
        names = [f.name for f in self.features]
        if len(set(names)) != len(names):
            raise ValueError(f"spec {self.name}: duplicate feature names")
        for s in self.slices:
            if s not in names:
                raise ValueError(f"spec {self.name}: slice column {s!r} is not a feature")
        if any(f.derived for f in self.features) and self.derive is None:
            raise ValueError(f"spec {self.name}: derived features need a 'derive' hook")
        return self

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def numeric(self) -> list[str]:
        return [f.name for f in self.features if f.kind == "numeric"]

    @property
    def categorical(self) -> list[str]:
        return [f.name for f in self.features if f.kind == "categorical"]

    @property
    def monitored(self) -> list[Feature]:
        """Features the drift checks compare."""
        return [f for f in self.features if f.monitor]

    @property
    def raw_inputs(self) -> list[str]:
        """Columns a caller must send to score a row: raw features plus the derive hook's inputs."""
        cols = [f.name for f in self.features if not f.derived]
        if self.derive:
            cols += [c for c in self.derive.inputs if c not in cols]
        return cols

    @property
    def stored_columns(self) -> list[str]:
        """Columns of an offline-store partition."""
        cols = [self.entity_key, self.date_column]
        if self.event_timestamp:
            cols.append(self.event_timestamp)
        cols += [c for c in self.raw_inputs if c not in cols]
        cols.append(self.target.column)
        return cols

    def derive_hook(self) -> Callable[[Any], Any] | None:
        return resolve(self.derive.hook) if self.derive else None


def resolve(ref: str) -> Callable[..., Any]:
    """Import "module:function" and return the function."""
    module, _, attr = ref.partition(":")
    if not attr:
        raise ValueError(f"{ref!r} is not of the form 'module:function'")
    return getattr(importlib.import_module(module), attr)  # type: ignore[no-any-return]


def available_specs(extra_dir: Path | None = None) -> dict[str, Path]:
    """Spec name -> file, the packaged ones first, then NIGHTSHIFT_SPEC_DIR's (which may override)."""
    found = {p.stem: p for p in sorted(SPEC_DIR.glob("*.yaml"))}
    if extra_dir and extra_dir.is_dir():
        found.update({p.stem: p for p in sorted(extra_dir.glob("*.yaml"))})
    return found


@lru_cache(maxsize=32)
def load_spec(name_or_path: str, extra_dir: str | None = None) -> DatasetSpec:
    """Load a spec by name (packaged or in extra_dir) or by path to a YAML file."""
    path = Path(name_or_path)
    if not path.is_file():
        specs = available_specs(Path(extra_dir) if extra_dir else None)
        if name_or_path not in specs:
            raise ValueError(f"unknown dataset {name_or_path!r}; known: {', '.join(sorted(specs))}")
        path = specs[name_or_path]
    raw = yaml.safe_load(path.read_text())
    return DatasetSpec(**raw, spec_dir=path.parent)
