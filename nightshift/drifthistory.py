"""The drift history: one row of summary figures per dataset and data date, in the SQL store."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Engine,
    delete,
    insert,
    select,
)

from nightshift.tables import drift_history


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
