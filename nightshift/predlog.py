"""The prediction log: every real-time prediction (inputs, outputs, model, latency, fallback) in the
SQL store, so that drift and performance checks can use served traffic.

The real-time endpoint appends rows off the request path (`serving/realtime/predlog_writer.py` batches them
from a queue); this module owns the table and the plain functions that write and read it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, bindparam, insert, select

from nightshift.tables import prediction_log


def append(engine: Engine, rows: Sequence[dict[str, Any]]) -> int:
    """Insert prediction-log rows in one transaction; returns how many."""
    if not rows:
        return 0
    with engine.begin() as conn:
        conn.execute(insert(prediction_log), list(rows))
    return len(rows)


def read(engine: Engine, *, dataset: str | None = None, since: datetime | None = None,
         role: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """Logged rows, oldest first, filtered by dataset, time and role."""
    query = select(prediction_log).order_by(prediction_log.c.id)
    if dataset is not None:
        query = query.where(prediction_log.c.dataset == dataset)
    if since is not None:
        query = query.where(prediction_log.c.at >= since)
    if role is not None:
        query = query.where(prediction_log.c.role == role)
    if limit is not None:
        query = query.limit(limit)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def served_for(engine: Engine, *, dataset: str, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The first prediction returned to a caller for each of `keys` (shadow rows excluded), by key."""
    out: dict[str, dict[str, Any]] = {}
    query = (select(prediction_log.c.entity_key, prediction_log.c.score, prediction_log.c.model_version)
             .where(prediction_log.c.dataset == dataset, prediction_log.c.returned.is_(True),
                    prediction_log.c.entity_key.in_(bindparam("keys", expanding=True)))
             .order_by(prediction_log.c.id))
    with engine.connect() as conn:
        for i in range(0, len(keys), 5000):
            for row in conn.execute(query, {"keys": list(keys[i:i + 5000])}):
                out.setdefault(row.entity_key, dict(row._mapping))
    return out
