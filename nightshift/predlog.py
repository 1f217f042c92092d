"""The prediction log: every real-time prediction (inputs, outputs, model, latency, fallback) in the
SQL store, so that drift and performance checks can use served traffic.

The real-time endpoint appends rows off the request path (`serving/predlog_writer.py` batches them
from a queue); this module owns the table and the plain functions that write and read it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Engine,
    Float,
    Integer,
    String,
    Table,
    Text,
    bindparam,
    insert,
    select,
)

from nightshift.store import metadata

ROLES = ("champion", "canary", "shadow")  # who computed the row: served champion, canary challenger, shadow
SOURCES = ("model", "prediction_store")  # what answered: the model, or the batch prediction (fallback)

prediction_log = Table(
    "prediction_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False, index=True),
    Column("dataset", String(100), nullable=False),
    Column("request_id", String(40), nullable=False),
    Column("entity_key", String(200)),
    Column("inputs", Text, nullable=False),  # the row's raw features as JSON
    Column("score", Float),
    Column("label", Boolean),
    Column("model_name", String(200)),
    Column("model_version", String(20)),
    Column("role", String(20), nullable=False),
    Column("source", String(20), nullable=False),
    Column("returned", Boolean, nullable=False),  # False for shadow rows: logged, never sent back
    Column("latency_ms", Float),
    sqlite_autoincrement=True,
)


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
