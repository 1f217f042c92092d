"""The SQL store (SQLite by default, PostgreSQL by URL): its engine, its one-time creation, the alias audit.

The store's tables are created by `init_store` alone (`nightshift init`, run once before any service
or task starts), under a lock that serialises concurrent inits; opening the store (`get_engine`)
only checks that they exist and never creates or alters anything, so processes that start together
cannot race on the schema.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Engine,
    create_engine,
    desc,
    event,
    insert,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import Connection

from nightshift.tables import alias_audit, metadata


class StoreNotReady(RuntimeError):
    """The store's tables do not exist yet: `nightshift init` has not run against this URL."""


# Server settings of the jobs' PostgreSQL sessions (a store URL's own `options` query parameter comes
# after them, so it can change them): a statement waits at most a minute for a lock (a publish blocked by
# another session's lock fails naming it instead of hanging, and nothing waits behind it for long), and a
# session whose client died (a killed publisher) is ended within seconds instead of keeping its locks.
PG_SESSION_OPTIONS = "-c lock_timeout=60s -c client_connection_check_interval=2s"


def _new_engine(url: str) -> Engine:
    from sqlalchemy.engine import make_url

    u = make_url(url)
    connect_args = {}
    if u.get_backend_name() == "postgresql":
        connect_args["options"] = f"{PG_SESSION_OPTIONS} {u.query.get('options', '')}".strip()
    engine = create_engine(url, pool_pre_ping=True, connect_args=connect_args)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def safe_url(url: str) -> str:
    """A database URL with its password hidden (for logs and errors); any other URL as it is."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001  (not a database URL: an http tracking server)
        return url


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL, else None."""
    from sqlalchemy.engine import make_url

    u = make_url(url)
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        return None
    return Path(u.database)


@contextmanager
def migration_lock(url: str) -> Iterator[None]:
    """Hold the one lock under which a database at `url` is created or migrated (any process, any store).

    SQLite: an exclusive file lock beside the database file. PostgreSQL: a session advisory lock.
    Other processes that init the same database wait here and then find it done.
    """
    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_name(path.name + ".init-lock"), "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_lock(hashtext('nightshift-migrate'))"))
                conn.commit()
                try:
                    yield
                finally:
                    conn.execute(text("SELECT pg_advisory_unlock(hashtext('nightshift-migrate'))"))
                    conn.commit()
            else:
                yield
    finally:
        engine.dispose()


def init_store(url: str) -> list[str]:
    """Create the store's missing tables, once, under the migration lock; returns the tables it created."""
    with migration_lock(url):
        engine = _new_engine(url)
        try:
            existing = set(inspect(engine).get_table_names())
            missing = [t for t in metadata.sorted_tables if t.name not in existing]
            metadata.create_all(engine, tables=missing)
        finally:
            engine.dispose()
    get_engine.cache_clear()
    return [t.name for t in missing]


def missing_tables(engine: Engine) -> list[str]:
    """The store's tables that do not exist in the database of `engine`."""
    existing = set(inspect(engine).get_table_names())
    return [t.name for t in metadata.sorted_tables if t.name not in existing]


@lru_cache(maxsize=8)
def get_engine(url: str) -> Engine:
    """A pooled engine for the store URL; raises StoreNotReady (with the fix) when its tables do not exist.

    It creates nothing: a SQLite file that is not there stays not there.
    """
    path = sqlite_path(url)
    if path is not None and not path.exists():
        raise StoreNotReady(f"the SQL store {path} does not exist: run `nightshift init` first "
                            "(make up does), with the same NIGHTSHIFT_HOME / NIGHTSHIFT_STORE_URL")
    engine = _new_engine(url)
    missing = missing_tables(engine)
    if missing:
        engine.dispose()
        raise StoreNotReady(f"the SQL store at {safe_url(url)} lacks the tables "
                            f"{', '.join(missing)}: run `nightshift init` first (make up does)")
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
