"""The SQL store (SQLite by default, PostgreSQL by URL): the alias audit trail lives here."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    desc,
    event,
    insert,
    select,
)
from sqlalchemy.engine import Connection

metadata = MetaData()

alias_audit = Table(
    "alias_audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("model_name", String(200), nullable=False, index=True),
    Column("alias", String(50), nullable=False),
    Column("from_version", String(20)),
    Column("to_version", String(20)),
    Column("actor", String(300), nullable=False),
    Column("reason", Text, nullable=False),
)


@lru_cache(maxsize=8)
def get_engine(url: str) -> Engine:
    """A pooled engine for the store URL, with the tables created if missing."""
    import nightshift.drifthistory  # noqa: F401  (their tables live in this metadata)
    import nightshift.predlog  # noqa: F401
    import nightshift.predstore  # noqa: F401

    engine = create_engine(url, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        if engine.url.database and engine.url.database != ":memory:":
            Path(engine.url.database).parent.mkdir(parents=True, exist_ok=True)
        event.listen(engine, "connect", _sqlite_pragmas)
    metadata.create_all(engine)
    return engine


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL: readers keep reading the last committed state while a snapshot is being written.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def record_alias_move(engine: Engine, *, model_name: str, alias: str, from_version: str | None,
                      to_version: str | None, actor: str, reason: str) -> None:
    """Append one alias move to the audit trail."""
    with engine.begin() as conn:
        record_alias_move_in(conn, model_name=model_name, alias=alias, from_version=from_version,
                             to_version=to_version, actor=actor, reason=reason)


def record_alias_move_in(conn: Connection, *, model_name: str, alias: str, from_version: str | None,
                         to_version: str | None, actor: str, reason: str) -> None:
    """Append one alias move inside the caller's transaction (it lands only if that commits)."""
    conn.execute(insert(alias_audit).values(
        at=datetime.now(UTC), model_name=model_name, alias=alias, from_version=from_version,
        to_version=to_version, actor=actor, reason=reason))


def alias_history(engine: Engine, *, model_name: str, limit: int = 20) -> list[dict[str, Any]]:
    """The newest alias moves of a model, newest first."""
    query = (select(alias_audit).where(alias_audit.c.model_name == model_name)
             .order_by(desc(alias_audit.c.id)).limit(limit))
    with engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]
