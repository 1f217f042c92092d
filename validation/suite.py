"""Data-quality gate: a Great Expectations suite generated from the dataset spec, run on a partition.

`run_suite` validates a frame in its own GX project folder, so its Data Docs hold exactly that
validation, and returns a report that names every failed expectation (jobs/validate.py runs it on
a day's partition and logs the report and the Data Docs to MLflow).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from nightshift.spec import DatasetSpec

NUMERIC_TYPES = ["int8", "int16", "int32", "int64", "Int64", "float16", "float32", "float64", "Float64"]
TEXT_TYPES = ["object", "str", "string", "StringDtype"]
TIMESTAMP_TYPES = ["datetime64[ns]", "datetime64[us]", "datetime64[ms]", "datetime64[s]"]


class ValidationFailed(ValueError):
    """The partition broke expectations; the message names each one."""


@dataclass
class Failure:
    expectation: str
    column: str | None
    detail: str

    def __str__(self) -> str:
        where = f" on column {self.column!r}" if self.column else ""
        return f"{self.expectation}{where}: {self.detail}"


@dataclass
class Report:
    passed: bool
    evaluated: int
    failures: list[Failure] = field(default_factory=list)
    docs_index: Path | None = None

    def summary(self) -> str:
        if self.passed:
            return f"passed: {self.evaluated} expectations"
        lines = [f"failed: {len(self.failures)} of {self.evaluated} expectations"]
        return "\n".join(lines + [f"  - {f}" for f in self.failures])


FINITE = 1e300  # a numeric value beyond this is an infinity (or as good as one): never allowed


def expectations_for(spec: DatasetSpec, day: date | None = None) -> list[Any]:
    """The suite the spec implies: columns and types, null shares, ranges, categories, key, row count; no
    infinite number in any feature; no feature with a single value all day unless `constant_ok`; a target of
    the positive label's kind with at most two values; an event timestamp of a timestamp type without a time
    zone (or UTC, read as naive UTC by `run_suite`); and, given the partition's `day`, every row's date and
    event time on it."""
    import great_expectations.expectations as gxe

    e = spec.expectations
    out: list[Any] = [gxe.ExpectTableRowCountToBeBetween(min_value=e.min_rows, max_value=e.max_rows)]
    if day is not None:  # a row of another date (or another date format) is not this partition's
        out.append(gxe.ExpectColumnValuesToBeInSet(column=spec.date_column, value_set=[day.isoformat()]))
    if spec.event_timestamp:  # text, epoch numbers or another zone's clock would be misread as event times
        ts = spec.event_timestamp
        out += [gxe.ExpectColumnToExist(column=ts),
                gxe.ExpectColumnValuesToBeInTypeList(column=ts, type_list=TIMESTAMP_TYPES, description=(
                    "event time: a timestamp without a time zone (the date column's clock) or in UTC")),
                gxe.ExpectColumnValuesToNotBeNull(column=ts, mostly=1 - e.max_null_share)]
        if day is not None:
            start = datetime.combine(day, time())
            out.append(gxe.ExpectColumnValuesToBeBetween(
                column=ts, min_value=start, max_value=start + timedelta(days=1), strict_max=True,
                description=f"event time on the partition's day, {day.isoformat()}"))
    # The target: of the positive label's kind (a numeric label stored as text would read as all negative),
    # and binary (a third value is a corrupted label, e.g. "None" or -inf).
    positive = spec.target.positive
    kinds = TEXT_TYPES if isinstance(positive, str) else [*NUMERIC_TYPES, "bool", "boolean"]
    out += [gxe.ExpectColumnValuesToBeInTypeList(column=spec.target.column, type_list=kinds),
            gxe.ExpectColumnUniqueValueCountToBeBetween(column=spec.target.column, min_value=1, max_value=2)]
    for f in spec.features:
        if f.kind == "numeric":  # mostly=1: one infinity is one too many (range_mostly would let it through)
            out.append(gxe.ExpectColumnValuesToBeBetween(column=f.name, min_value=-FINITE, max_value=FINITE))
    for col in [spec.entity_key, spec.date_column, spec.target.column] + spec.feature_names:
        out.append(gxe.ExpectColumnToExist(column=col))
    out += [gxe.ExpectColumnValuesToBeUnique(column=spec.entity_key),
            gxe.ExpectColumnValuesToNotBeNull(column=spec.entity_key)]
    if e.target_null_share < 1:
        out.append(gxe.ExpectColumnValuesToNotBeNull(column=spec.target.column, mostly=1 - e.target_null_share))
    for f in spec.features:
        null_share = e.max_null_share if f.null_share is None else f.null_share
        if null_share < 1:
            out.append(gxe.ExpectColumnValuesToNotBeNull(column=f.name, mostly=1 - null_share))
        if not f.constant_ok:  # a stuck feed or a filled-in default; all nulls (0 values) fail here too
            out.append(gxe.ExpectColumnUniqueValueCountToBeBetween(
                column=f.name, min_value=2, description="not one value all day (`constant_ok: true` in the spec "
                                                        "if the feature may be)"))
        if f.kind == "numeric":
            out.append(gxe.ExpectColumnValuesToBeInTypeList(column=f.name, type_list=NUMERIC_TYPES))
            if f.min is not None or f.max is not None:
                out.append(gxe.ExpectColumnValuesToBeBetween(column=f.name, min_value=f.min, max_value=f.max,
                                                             mostly=e.range_mostly))
        elif f.categories:
            out.append(gxe.ExpectColumnValuesToBeInSet(column=f.name, value_set=f.categories,
                                                       mostly=1 - e.max_unknown_share))
    return out


def _as_validated(spec: DatasetSpec, frame: pd.DataFrame) -> pd.DataFrame:
    """The frame the suite sees: derived columns added, a UTC event time as naive UTC (GX's type check knows
    only numpy's dtypes, and comparing an aware column with the day's bounds would raise)."""
    ts = spec.event_timestamp
    if ts and ts in frame.columns and isinstance(frame[ts].dtype, pd.DatetimeTZDtype) and str(frame[ts].dt.tz) == "UTC":
        frame = frame.assign(**{ts: frame[ts].dt.tz_localize(None)})
    hook = spec.derive_hook()
    if hook is None or any(c not in frame.columns for c in (spec.derive.inputs if spec.derive else [])):
        return frame  # a missing input column is reported by the suite itself
    try:
        return hook(frame.copy())  # type: ignore[no-any-return]
    except (TypeError, ValueError, KeyError):
        return frame  # wrong input types: the type expectations name the column


def _failures(result: Any, dtypes: dict[str, str]) -> list[Failure]:
    failures = []
    for run in result.run_results.values():
        for r in run.results:
            if r.success:
                continue
            cfg, out = r.expectation_config, (r.result or {})
            info = r.exception_info or {}
            if "raised_exception" in info:
                info = {"_": info}
            errors = sorted({v.get("exception_message", "") for v in info.values() if v.get("raised_exception")})
            if cfg.type == "expect_column_to_exist":
                detail = "the column is missing"
            elif errors:
                detail = "could not be evaluated: " + "; ".join(errors)[:300]
            elif out.get("unexpected_percent") is not None:
                sample = out.get("partial_unexpected_list") or []
                detail = f"{out['unexpected_percent']:.2f}% unexpected values" + (
                    f", e.g. {sample[:5]}" if sample else "")
            else:
                detail = f"observed {out.get('observed_value')!r}"
            column = cfg.kwargs.get("column")
            if cfg.type == "expect_column_values_to_be_in_type_list" and column in dtypes \
                    and repr(dtypes[column]) != repr(out.get("observed_value")):
                detail += f" (dtype {dtypes[column]})"  # GX shows a zone-aware dtype as plain "Timestamp"
            if cfg.description:
                detail += f"; wanted: {cfg.description}"
            failures.append(Failure(cfg.type, column, detail))
    # The cause first: a missing column or a wrong type, then what the data broke, then what could not be
    # evaluated at all (a range check on text, a missing column's null check).
    order = {"expect_column_to_exist": 0, "expect_column_values_to_be_in_type_list": 1}
    return sorted(failures, key=lambda f: (f.detail.startswith("could not be evaluated"), order.get(f.expectation, 2)))


def run_suite(spec: DatasetSpec, frame: pd.DataFrame, project_dir: Path, run_name: str,
              day: date | None = None) -> Report:
    """Validate a frame against the spec's suite in a fresh GX project folder; build its Data Docs."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.checkpoint import UpdateDataDocsAction
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.base import ProgressBarsConfig

    shutil.rmtree(project_dir, ignore_errors=True)
    project_dir.mkdir(parents=True)
    context = gx.get_context(mode="file", project_root_dir=str(project_dir))
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    context.variables.save()
    asset = context.data_sources.add_pandas(name="offline_store").add_dataframe_asset(name=spec.name)
    batch = asset.add_batch_definition_whole_dataframe("partition")
    suite = context.suites.add(gx.ExpectationSuite(name=f"{spec.name}_suite", expectations=expectations_for(spec, day)))
    definition = context.validation_definitions.add(gx.ValidationDefinition(name=spec.name, data=batch, suite=suite))
    checkpoint = context.checkpoints.add(gx.Checkpoint(
        name=f"{spec.name}_checkpoint", validation_definitions=[definition],
        actions=[UpdateDataDocsAction(name="data_docs")], result_format={"result_format": "SUMMARY"}))
    validated = _as_validated(spec, frame)
    result = checkpoint.run(batch_parameters={"dataframe": validated}, run_id=RunIdentifier(run_name=run_name))
    evaluated = sum(len(r.results) for r in result.run_results.values())
    docs = next(project_dir.rglob("data_docs/local_site/index.html"), None)
    dtypes = {str(c): str(t) for c, t in validated.dtypes.items()}
    return Report(passed=bool(result.success), evaluated=evaluated, failures=_failures(result, dtypes),
                  docs_index=docs)
