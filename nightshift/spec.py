"""Dataset specs: a dataset is configuration (YAML), loaded into typed, validated objects.

Every field below carries its meaning in its `description`: docs/spec.md is generated from these
models (`nightshift spec-reference`), and a test keeps it current.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

SPEC_DIR = Path(__file__).parent / "specs"
ModelFamily = Literal["mlp", "gbdt", "best"]  # the candidate `train` registers (DatasetSettings.model_family)


class Feature(BaseModel):
    """One model input: its kind and the data-quality limits the validation suite enforces."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Column name in the source (or added by the derive hook).")
    kind: Literal["numeric", "categorical"] = Field(
        description="`numeric`: scaled, nulls imputed with the training median. `categorical`: an embedding per "
                    "value seen 5+ times in training; other values and nulls share one unknown bucket.")
    null_share: float | None = Field(None, ge=0, le=1, description="Largest share of nulls a day may have; "
                                     "empty: `expectations.max_null_share`.")
    min: float | None = Field(None, description="Numeric: smallest valid value (validation allows "
                              "`expectations.range_mostly` of values inside [min, max]).")
    max: float | None = Field(None, description="Numeric: largest valid value.")
    categories: list[str | int] | None = Field(
        None, description="Categorical: the closed set of allowed values, strings or integers (`[0, 1]` for an "
                          "integer-coded column); empty: an open set (unseen values map to the unknown bucket). "
                          "Requests to the real-time endpoint must use one of them.")
    derived: bool = Field(False, description="Produced by the spec's derive hook, not present in raw rows.")
    monitor: bool = Field(True, description="Watched for drift. `false` for a feature one day's rows cannot judge "
                                            "(the weekday is constant within a day, so every day would drift).")
    constant_ok: bool = Field(False, description="May hold a single value all day (the weekday of a day's rows, "
                                                 "no rain anywhere on a dry day). Otherwise a day on which the "
                                                 "feature has one value (one category) fails validation: a stuck "
                                                 "feed or a filled-in default, not data.")

    @model_validator(mode="after")
    def _kind_fits(self) -> Feature:
        if self.kind == "numeric" and self.categories is not None:
            raise ValueError(f"feature {self.name!r}: categories are for categorical features")
        if self.kind == "categorical" and (self.min is not None or self.max is not None):
            raise ValueError(f"feature {self.name!r}: min/max are for numeric features")
        return self


class Source(BaseModel):
    """Where rows come from: a Python loader, or a CSV/Parquet file."""

    model_config = ConfigDict(extra="forbid")

    loader: str | None = Field(None, description="`module:function` returning a pandas DataFrame of every row.")
    path: str | None = Field(None, description="A CSV or Parquet file; a relative path resolves against the "
                                               "spec file's folder.")
    format: Literal["csv", "parquet"] | None = Field(None, description="The file's format (with `path`); empty: "
                                                     "from the file's extension.")

    @model_validator(mode="after")
    def _one_kind(self) -> Source:
        if (self.loader is None) == (self.path is None):
            raise ValueError("source needs exactly one of 'loader' or 'path'")
        return self

    def file_format(self) -> str:
        """csv or parquet: `format`, else the path's extension."""
        if self.format:
            return self.format
        return "parquet" if str(self.path).lower().endswith((".parquet", ".pq")) else "csv"


class Target(BaseModel):
    """The binary label a model learns."""

    model_config = ConfigDict(extra="forbid")

    column: str = Field(description="The label column.")
    positive: Any = Field(description="The value that counts as the positive class (`1`, `\"yes\"`, `true`); "
                                      "any other non-null value is negative, a null is not labelled yet.")
    threshold: float = Field(0.5, gt=0, lt=1, description="Score at or above which a prediction is labelled "
                                                          "positive.")


class Scoring(BaseModel):
    """What batch scoring scores."""

    model_config = ConfigDict(extra="forbid")

    scope: Literal["all", "day"] = Field("all", description="`all`: every ingested partition (the full dataset, "
                                         "what lookups ask about); `day`: only the run's data date.")


class Derive(BaseModel):
    """Derived features: a Python hook run on raw rows, the same way in training, scoring and serving."""

    model_config = ConfigDict(extra="forbid")

    hook: str = Field(description="`module:function`: DataFrame of raw inputs -> the same frame with the derived "
                                  "columns added.")
    inputs: list[str] = Field(default_factory=list, description="Raw columns the hook reads that are not features "
                                                                "themselves (callers of the real-time endpoint "
                                                                "send them).")


class Expectations(BaseModel):
    """The data-quality gate of each day's partition (Great Expectations)."""

    model_config = ConfigDict(extra="forbid")

    min_rows: int = Field(1, ge=0, description="Fewest rows a day may have.")
    max_rows: int = Field(10_000_000, ge=1, description="Most rows a day may have.")
    max_null_share: float = Field(0.05, ge=0, le=1, description="Default largest share of nulls of a feature.")
    max_unknown_share: float = Field(0.02, ge=0, le=1, description="Largest share of values outside a "
                                                                   "feature's `categories`.")
    range_mostly: float = Field(0.999, gt=0, le=1, description="Share of numeric values that must lie within "
                                                               "[min, max].")
    target_null_share: float = Field(0.1, ge=0, le=1, description="Largest share of rows without a label yet.")


class GateFloors(BaseModel):
    """Absolute floors a candidate must clear before it is compared with the champion and the baseline."""

    model_config = ConfigDict(extra="forbid")

    min_auc: float = Field(0.6, gt=0, le=1, description="Lowest holdout ROC AUC.")
    max_log_loss: float = Field(0.69, gt=0, description="Highest holdout log loss (the gate also demands "
                                                        "beating the base rate's).")


class DatasetSettings(BaseModel):
    """The dataset's own values of settings that depend on its data. A `NIGHTSHIFT_<NAME>` environment
    variable, when set, overrides the spec's value (for every dataset); empty: the built-in default."""

    model_config = ConfigDict(extra="forbid")

    schedule_start: date | None = Field(None, description="First data date the DAGs schedule and accept; empty: "
                                                          "no lower bound (scheduled runs start today).")
    schedule_end: date | None = Field(None, description="Last data date the DAGs schedule and accept; empty: "
                                                        "open-ended. A run for a date outside the window fails "
                                                        "and says so.")
    train_days: int | None = Field(None, ge=1, description="Days of data a model trains on (default 56).")
    holdout_days: int | None = Field(None, ge=1, description="Days after the training window the gates judge on "
                                                             "(default 7).")
    min_train_days: int | None = Field(None, ge=1, description="Fewest ingested training days to train at all "
                                                               "(default 5).")
    batch_size: int | None = Field(None, ge=8, description="Rows per gradient step of the MLP (default 1024); "
                                   "a small dataset wants more steps per epoch (mpls_stops: 256).")
    mlp_members: int | None = Field(None, ge=1, le=16, description="Networks in the MLP candidate, trained from "
                                    "consecutive seeds and averaged (a deep ensemble; default 1). Costs that many "
                                    "times the training and scoring compute; steadies a network on few rows.")
    model_family: ModelFamily | None = Field(
        None, description="The candidate `train` registers: `mlp` (the PyTorch network), `gbdt` (scikit-learn's "
                          "HistGradientBoosting, otherwise the baseline the gates compare with) or `best` (the one "
                          "with the higher holdout AUC). Both are fitted and logged either way; every consumer "
                          "scores either through the same bundle (default mlp).")
    retrain_every_days: int | None = Field(None, ge=0, description="`nightly` retrains when the champion is this "
                                           "many data days old; 0: only runs with a reason retrain (default 1).")
    min_slice_rows: int | None = Field(None, ge=1, description="Fewest holdout rows of a slice for the per-slice "
                                                               "gate to judge it (default 300).")
    drift_min_rows: int | None = Field(None, ge=1, description="Fewest rows of a day for drift to judge it "
                                                               "(default 100).")
    drift_min_labels: int | None = Field(None, ge=10, description="Served labels of each class pooled, from the "
                                         "label day back, before performance drift is judged (default 200).")
    drift_window_days: int | None = Field(None, ge=1, description="n: daily drift windows looked at (default 7).")
    drift_min_windows: int | None = Field(None, ge=1, description="k: of which this many must have drifted to "
                                                                  "retrain (default 3).")
    drift_cooldown_days: int | None = Field(None, ge=0, description="Data days after a drift retrain with no "
                                                                    "other (default 7).")
    label_delay_days: int | None = Field(None, ge=0, description="Labels of day D are judged by the drift run of "
                                                                 "D + this (default 1).")

    @model_validator(mode="after")
    def _window(self) -> DatasetSettings:
        if self.schedule_start and self.schedule_end and self.schedule_end < self.schedule_start:
            raise ValueError(f"schedule_end {self.schedule_end} is before schedule_start {self.schedule_start}")
        return self


class DatasetSpec(BaseModel):
    """Everything the pipeline needs to know about one tabular dataset."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,49}$", description="The dataset's name: DAG ids "
                      "(`nightly__<name>`), the registered model (`nightshift-<name>`), API paths. Lower case "
                      "letters, digits and `_`; the file name without `.yaml` must match it.")
    description: str = Field("", description="One line for people.")
    source: Source = Field(description="Where the rows come from.")
    entity_key: str = Field(description="Column that identifies a row (unique within a day): what the lookup API "
                                        "is asked for.")
    date_column: str = Field(description="Column holding each row's data date (a date, a timestamp or "
                                         "`YYYY-MM-DD` text): one offline-store partition per date.")
    event_timestamp: str | None = Field(None, description="Optional column with each row's event time, kept in "
                                                          "the offline store; ingest parses text into timestamps. "
                                                          "Validation wants a timestamp type, without a time zone "
                                                          "(the clock of `date_column`) or in UTC, on the "
                                                          "partition's day in that clock, at most "
                                                          "`expectations.max_null_share` nulls.")
    target: Target = Field(description="The label.")
    features: list[Feature] = Field(min_length=1, description="The model's inputs, in order.")
    derive: Derive | None = Field(None, description="Derived features (`derived: true` features need it).")
    slices: list[str] = Field(default_factory=list, description="Categorical features the gates also judge slice "
                                                                "by slice (a candidate may not regress on any).")
    expectations: Expectations = Field(default_factory=Expectations, description="Data-quality limits of a day.")
    gates: GateFloors = Field(default_factory=GateFloors, description="Absolute floors of the gates.")
    scoring: Scoring = Field(default_factory=Scoring, description="What batch scoring scores.")
    settings: DatasetSettings = Field(default_factory=DatasetSettings,
                                      description="The dataset's schedule window, training windows and drift "
                                                  "figures; `NIGHTSHIFT_<NAME>` in the environment overrides each.")
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
    if not isinstance(raw, dict):
        raise ValueError(f"{path} is not a YAML mapping of spec fields (docs/spec.md)")
    try:
        spec = DatasetSpec(**raw, spec_dir=path.parent)
    except ValidationError as exc:
        raise ValueError(f"dataset spec {path} is invalid (docs/spec.md lists every field):\n{exc}") from exc
    if spec.name != path.stem:
        raise ValueError(f"dataset spec {path} names itself {spec.name!r}: name the file {spec.name}.yaml")
    return spec


def load_all(extra_dir: Path | None = None) -> tuple[dict[str, DatasetSpec], dict[str, str]]:
    """Every spec the installation knows, by name, and the error of each one that does not load."""
    specs, errors = {}, {}
    for name, path in available_specs(extra_dir).items():
        try:
            specs[name] = load_spec(str(path))
        except ValueError as exc:
            errors[name] = str(exc)
    return specs, errors
