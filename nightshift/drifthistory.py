"""The drift history: one row of summary figures per dataset and data date, in the SQL store."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Engine,
    Float,
    Integer,
    String,
    Table,
    Text,
    delete,
    insert,
    select,
)

from nightshift.store import metadata

drift_history = Table(
    "drift_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dataset", String(100), nullable=False, index=True),
    Column("data_date", Date, nullable=False),
    Column("run_id", String(250), nullable=False),
    Column("model_name", String(200), nullable=False),
    Column("model_version", String(20), nullable=False),  # the champion the day was judged against
    Column("rows", Integer, nullable=False),
    Column("reference_rows", Integer, nullable=False),
    Column("features", Integer, nullable=False),
    Column("drifted_features", Integer),  # None: too few rows to judge
    Column("drift_share", Float),
    Column("drifted_names", Text),
    Column("data_drift", Boolean),
    Column("prediction_drift_score", Float),
    Column("prediction_drift", Boolean),
    Column("label_date", Date),
    Column("served_model_version", String(20)),
    Column("served_rows", Integer),
    Column("served_auc", Float),
    Column("auc_se", Float),  # the served AUC's standard error: drops within twice it are noise
    Column("holdout_auc", Float),
    Column("auc_drop", Float),
    Column("performance_drift", Boolean),  # None: no labels or nothing served for label_date
    Column("retrain", Boolean, nullable=False),
    Column("cooldown", Boolean, nullable=False),  # drift held, but the cooldown stopped the retrain
    Column("override", Boolean),  # retrained inside a cooldown (severe performance drift)
    Column("reason", Text, nullable=False),
    Column("report_uri", Text),
    Column("triggered_run_id", String(250)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    sqlite_autoincrement=True,
)


def record(engine: Engine, row: dict[str, Any]) -> None:
    """Write a day's row, replacing the one a previous run for the same dataset and date wrote."""
    with engine.begin() as conn:
        conn.execute(delete(drift_history).where(drift_history.c.dataset == row["dataset"],
                                                 drift_history.c.data_date == row["data_date"]))
        conn.execute(insert(drift_history).values(**row, created_at=datetime.now(UTC)))


def read(engine: Engine, *, dataset: str, start: date | None = None, end: date | None = None,
         model_version: str | None = None) -> list[dict[str, Any]]:
    """Rows of a dataset, oldest data date first, filtered by date range and champion version."""
    query = select(drift_history).where(drift_history.c.dataset == dataset).order_by(drift_history.c.data_date)
    if start is not None:
        query = query.where(drift_history.c.data_date >= start)
    if end is not None:
        query = query.where(drift_history.c.data_date <= end)
    if model_version is not None:
        query = query.where(drift_history.c.model_version == model_version)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def recent(engine: Engine, *, dataset: str, model_version: str, before: date, days: int) -> list[dict[str, Any]]:
    """The rows of the `days` - 1 data dates before `before` judged against the same champion."""
    return read(engine, dataset=dataset, start=before - timedelta(days=days - 1), end=before - timedelta(days=1),
                model_version=model_version)


def last_retrain(engine: Engine, *, dataset: str, before: date) -> tuple[date | None, bool]:
    """(data date of the latest drift retrain before `before`, whether it overrode a cooldown)."""
    query = (select(drift_history.c.data_date, drift_history.c.override)
             .where(drift_history.c.dataset == dataset, drift_history.c.retrain.is_(True),
                    drift_history.c.data_date < before)
             .order_by(drift_history.c.data_date.desc()).limit(1))
    with engine.connect() as conn:
        row = conn.execute(query).first()
    return (row.data_date, bool(row.override)) if row else (None, False)
