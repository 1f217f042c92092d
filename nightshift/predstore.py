"""The prediction store: one snapshot of scores per scoring run, published atomically.

Tables (in the SQL store, SQLite or PostgreSQL by URL):
* `prediction_snapshots`: one row per snapshot (model, runs, data interval, row count, status);
* `predictions`: (snapshot_id, entity_key) -> score, label. On PostgreSQL it is partitioned by
  snapshot: a new snapshot is COPYed into its own table, indexed, then attached as a partition, and
  retention drops whole partitions;
* `served_snapshot`: per dataset, the one snapshot readers see.

Readers resolve the served snapshot and read its rows in one statement, so a reader sees the old
snapshot or the new one, never a mix. A snapshot is written with status `writing`, invisible to
readers; publishing flips the pointer in one transaction. A crash or kill mid-write leaves the
pointer (and what is served) untouched; the next write clears the leftovers.

Removing a snapshot (retention, a rerun's older copy) first marks it `dropping` (never servable
again), then detaches and drops its partition, then deletes its row: killed at any of these steps,
the served snapshot still answers, and the next write finishes the removal (a detach left pending
by a cut connection is finalized, a table without a snapshot row is dropped).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa
import sqlalchemy.orm  # noqa: F401  (imported once here: its lazy first import from two threads at once fails)
from sqlalchemy import (
    Engine,
    Text,
    and_,
    any_,
    bindparam,
    delete,
    desc,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from nightshift import store
from nightshift.tables import prediction_snapshots as snapshots
from nightshift.tables import predictions
from nightshift.tables import served_snapshot as served

WRITING, COMPLETE, DROPPING = "writing", "complete", "dropping"
SERVED_ALIAS = "served_snapshot"  # how served-snapshot switches appear in the audit trail
PARTITION_PREFIX = "predictions_s"

log = logging.getLogger(__name__)


class SnapshotError(ValueError):
    """A snapshot that does not exist or cannot be served."""


def _now() -> datetime:
    return datetime.now(UTC)


def _is_pg(engine: Engine | Connection) -> bool:
    return engine.dialect.name == "postgresql"


def _partition(snapshot_id: int) -> str:
    return f"{PARTITION_PREFIX}{int(snapshot_id)}"


# ---------------------------------------------------------------- writing


def begin_snapshot(engine: Engine, *, dataset: str, run_id: str, model_name: str, model_version: str,
                   model_run_id: str | None, data_start: date | None, data_end: date | None,
                   scored_at: datetime | None = None) -> int:
    """Register a new snapshot (status writing, invisible to readers); returns its id.

    Leftovers of writes that never finished (a crash, a kill) are removed first: scoring runs one at
    a time per dataset, so a snapshot still `writing` when a new one starts is dead.
    """
    clear_unfinished(engine, dataset=dataset)
    with engine.begin() as conn:
        snapshot_id = int(conn.execute(insert(snapshots).values(
            dataset=dataset, run_id=run_id, model_name=model_name, model_version=str(model_version),
            model_run_id=model_run_id, data_start=data_start, data_end=data_end, status=WRITING,
            created_at=_now(), scored_at=scored_at or _now()).returning(snapshots.c.id)).scalar_one())
        if _is_pg(conn):
            # Its own table, no index while loading; attached as a partition on publish. LIKE takes
            # the columns as the store has them (a store made before the C collation keeps its own).
            part = _partition(snapshot_id)
            conn.execute(text(f"CREATE TABLE {part} (LIKE predictions, CHECK (snapshot_id = {snapshot_id}))"))
            conn.execute(text(f"ALTER TABLE {part} ALTER COLUMN snapshot_id SET DEFAULT {snapshot_id}"))
    return snapshot_id


def write_rows(engine: Engine, snapshot_id: int, batches: Iterable[pa.RecordBatch], *, streams: int = 2,
               chunk_rows: int = 250_000) -> int:
    """Load (entity_key, score, label) batches into a writing snapshot; returns the rows written.

    PostgreSQL: COPY in CSV from Arrow, `chunk_rows` rows per COPY, over `streams` connections at
    once. SQLite: one transaction.
    """
    if _is_pg(engine):
        total = _copy_pg(engine, snapshot_id, batches, streams=max(1, streams), chunk_rows=chunk_rows)
    else:
        total = 0
        with engine.begin() as conn:
            for batch in batches:
                cols = batch.to_pydict()
                rows = list(zip([snapshot_id] * batch.num_rows, cols["entity_key"], cols["score"], cols["label"],
                                strict=True))
                conn.exec_driver_sql("INSERT INTO predictions (snapshot_id, entity_key, score, label) "
                                     "VALUES (?, ?, ?, ?)", rows)
                total += batch.num_rows
    with engine.begin() as conn:  # publish trusts this count instead of counting millions of rows again
        conn.execute(update(snapshots).where(snapshots.c.id == snapshot_id).values(row_count=total))
    return total


def _copy_pg(engine: Engine, snapshot_id: int, batches: Iterable[pa.RecordBatch], *, streams: int,
             chunk_rows: int) -> int:
    import pyarrow.csv as pacsv

    part = _partition(snapshot_id)
    options = pacsv.WriteOptions(include_header=False)
    sql = f"COPY {part} (entity_key, score, label) FROM STDIN WITH (FORMAT csv)"

    def copy(chunk: list[pa.RecordBatch]) -> int:
        buf = io.BytesIO()
        pacsv.write_csv(pa.Table.from_batches(chunk), buf, options)
        buf.seek(0)
        raw = engine.raw_connection()
        try:
            with raw.cursor() as cur:  # type: ignore[attr-defined]
                cur.copy_expert(sql, buf)
            raw.commit()
        finally:
            raw.close()
        return sum(b.num_rows for b in chunk)

    def chunks() -> Iterable[list[pa.RecordBatch]]:
        chunk: list[pa.RecordBatch] = []
        rows = 0
        for batch in batches:
            chunk.append(batch.select(["entity_key", "score", "label"]))
            rows += batch.num_rows
            if rows >= chunk_rows:
                yield chunk
                chunk, rows = [], 0
        if chunk:
            yield chunk

    # Encoding the next chunk overlaps with the server parsing the previous ones; at most `streams`
    # chunks are in memory at once.
    total = 0
    with ThreadPoolExecutor(max_workers=streams) as pool:
        running: set[Future[int]] = set()
        for chunk in chunks():
            if len(running) >= streams:
                done, running = wait(running, return_when=FIRST_COMPLETED)
                total += sum(f.result() for f in done)
            running.add(pool.submit(copy, chunk))
        total += sum(f.result() for f in running)
    return total


def publish(engine: Engine, snapshot_id: int, *, actor: str, reason: str, retention: int) -> dict[str, Any]:
    """Make a written snapshot the served one, in one transaction; then apply retention.

    An older snapshot of the same run is replaced (a rerun adds no second copy). Returns the
    published snapshot's row and the ids removed.
    """
    if _is_pg(engine):
        # The partition is attached in its own transaction, committed before the served pointer moves:
        # a reader whose statement sees the new pointer then always plans with the new partition (a
        # plan made before an attach in the same transaction as the switch found no rows at all).
        with engine.begin() as conn:
            _writing(conn, snapshot_id)
            part = _partition(snapshot_id)
            attached = conn.execute(text("SELECT 1 FROM pg_inherits WHERE inhrelid = to_regclass(:t)"),
                                    {"t": part}).first()
            if not attached:
                conn.execute(text(f"ALTER TABLE {part} ADD PRIMARY KEY (snapshot_id, entity_key)"))
                conn.execute(text(f"ALTER TABLE predictions ATTACH PARTITION {part} FOR VALUES IN ({snapshot_id})"))
    with engine.begin() as conn:
        snap = _writing(conn, snapshot_id)
        rows = snap.row_count
        conn.execute(update(snapshots).where(snapshots.c.id == snapshot_id).values(
            status=COMPLETE, row_count=int(rows), published_at=_now()))
        before = _switch(conn, snap.dataset, snapshot_id)
        store.record_alias_move_in(conn, model_name=f"predictions:{snap.dataset}", alias=SERVED_ALIAS,
                                   from_version=None if before is None else str(before),
                                   to_version=str(snapshot_id), actor=actor, reason=reason)
        replaced = [r.id for r in conn.execute(select(snapshots.c.id).where(and_(
            snapshots.c.dataset == snap.dataset, snapshots.c.run_id == snap.run_id,
            snapshots.c.id != snapshot_id)))]
    # The new snapshot is served from here on: a removal that fails (a lock held too long, a cut connection)
    # is logged and left to the next write, which finishes it, instead of failing a publish that happened.
    removed: list[int] = []
    try:
        removed += _drop(engine, replaced)
        removed += apply_retention(engine, dataset=snap.dataset, keep=retention)
        error = None
    except SQLAlchemyError as exc:
        error = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
        log.warning("snapshot %s is served; removing older snapshots failed (the next write retries): %s",
                    snapshot_id, error)
    return {**get_snapshot(engine, snapshot_id), "removed": removed, "retention_error": error}


def _writing(conn: Connection, snapshot_id: int) -> Any:
    """The snapshot's row, locked, when it is written and not yet published; SnapshotError otherwise."""
    snap = conn.execute(select(snapshots).where(snapshots.c.id == snapshot_id).with_for_update()).first()
    if snap is None or snap.status != WRITING:
        raise SnapshotError(f"snapshot {snapshot_id} is not being written (status: "
                            f"{snap.status if snap else 'missing'}); nothing published")
    if snap.row_count is None:
        raise SnapshotError(f"snapshot {snapshot_id} has no rows written (write_rows never finished)")
    return snap


def _switch(conn: Connection, dataset: str, snapshot_id: int) -> int | None:
    before = conn.execute(select(served.c.snapshot_id).where(served.c.dataset == dataset)).scalar_one_or_none()
    if before is None:
        conn.execute(insert(served).values(dataset=dataset, snapshot_id=snapshot_id, switched_at=_now()))
    else:
        conn.execute(update(served).where(served.c.dataset == dataset).values(
            snapshot_id=snapshot_id, switched_at=_now()))
    return before


def serve(engine: Engine, *, dataset: str, snapshot_id: int, actor: str, reason: str) -> int | None:
    """Switch the served snapshot (rollback to an older complete one); returns the one it replaced."""
    with engine.begin() as conn:
        # Locked: a removal marks the row `dropping` under the same lock, so a snapshot being removed is
        # never switched to.
        snap = conn.execute(select(snapshots).where(snapshots.c.id == snapshot_id)
                            .with_for_update(key_share=True)).first()
        if snap is None or snap.dataset != dataset or snap.status != COMPLETE:
            kept = [r.id for r in conn.execute(select(snapshots.c.id).where(and_(
                snapshots.c.dataset == dataset, snapshots.c.status == COMPLETE)).order_by(snapshots.c.id))]
            raise SnapshotError(f"snapshot {snapshot_id} is not a complete {dataset} snapshot; kept: {kept}")
        if _is_pg(conn) and snapshot_id in _unattached(conn, [snapshot_id]):
            raise SnapshotError(f"snapshot {snapshot_id}'s rows are not attached to the store (an interrupted "
                                "removal); not served")
        before = _switch(conn, dataset, snapshot_id)
        store.record_alias_move_in(conn, model_name=f"predictions:{dataset}", alias=SERVED_ALIAS,
                                   from_version=None if before is None else str(before),
                                   to_version=str(snapshot_id), actor=actor, reason=reason)
    return before


def apply_retention(engine: Engine, *, dataset: str, keep: int) -> list[int]:
    """Remove complete snapshots beyond the newest `keep` (never the served one); returns their ids."""
    keep = max(1, keep)
    with engine.connect() as conn:
        current = conn.execute(select(served.c.snapshot_id).where(served.c.dataset == dataset)).scalar_one_or_none()
        ids = [r.id for r in conn.execute(select(snapshots.c.id).where(and_(
            snapshots.c.dataset == dataset, snapshots.c.status == COMPLETE)).order_by(desc(snapshots.c.id)))]
    return _drop(engine, [i for i in ids[keep:] if i != current])


def clear_unfinished(engine: Engine, *, dataset: str) -> list[int]:
    """Finish what a write or a removal that died left behind; returns the snapshot ids removed.

    Snapshots still `writing` or `dropping` are removed; on PostgreSQL a detach left pending is
    finalized and a partition table that no snapshot row names is dropped.
    """
    with engine.connect() as conn:
        ids = [r.id for r in conn.execute(select(snapshots.c.id).where(and_(
            snapshots.c.dataset == dataset, snapshots.c.status.in_([WRITING, DROPPING]))))]
        if _is_pg(conn):  # `complete` with a detached partition: a removal by an older version that died
            ids += _unattached(conn, [r.id for r in conn.execute(select(snapshots.c.id).where(and_(
                snapshots.c.dataset == dataset, snapshots.c.status == COMPLETE)))])
    if _is_pg(engine):
        _finalize_pending_detach(engine)
    removed = _drop(engine, ids)
    if _is_pg(engine):
        _drop_orphan_tables(engine)
    return removed


def _drop(engine: Engine, ids: Sequence[int]) -> list[int]:
    """Remove snapshots: mark each `dropping`, detach and drop its partition, delete its row.

    Each step commits on its own; killed after any of them, the snapshot is `dropping` (refused by
    `serve`, finished by the next `clear_unfinished`) or gone. The served snapshot is never removed.
    """
    removed = []
    for snapshot_id in ids:
        with engine.begin() as conn:
            snap = conn.execute(select(snapshots).where(snapshots.c.id == snapshot_id)
                                .with_for_update(key_share=True)).first()
            current = conn.execute(select(served.c.snapshot_id).where(
                served.c.dataset == snap.dataset)).scalar_one_or_none() if snap else None
            if snap is not None and current == snapshot_id:
                log.warning("snapshot %s is served: not removed", snapshot_id)
                continue
            if snap is not None:
                conn.execute(update(snapshots).where(snapshots.c.id == snapshot_id).values(status=DROPPING))
        if _is_pg(engine):
            _detach(engine, _partition(snapshot_id))
        with engine.begin() as conn:
            if _is_pg(conn):
                conn.execute(text(f"DROP TABLE IF EXISTS {_partition(snapshot_id)}"))
            else:
                conn.execute(delete(predictions).where(predictions.c.snapshot_id == snapshot_id))
            conn.execute(delete(snapshots).where(snapshots.c.id == snapshot_id))
        removed.append(snapshot_id)
    return removed


def _unattached(conn: Connection, ids: Sequence[int]) -> list[int]:
    """Those of `ids` whose partition is not attached (or is being detached): they have no rows to serve."""
    attached = {r[0] for r in conn.execute(text(
        "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = 'predictions'::regclass "
        "AND NOT inhdetachpending"))}
    return [i for i in ids if _partition(i) not in attached]


def _detach(engine: Engine, part: str) -> None:
    """Detach a partition without blocking readers of the others (CONCURRENTLY), finishing a pending detach."""
    _finalize_pending_detach(engine, keep=part)  # a table has at most one detach pending at a time
    with engine.connect() as conn:
        pending = conn.execute(text("SELECT inhdetachpending FROM pg_inherits WHERE inhrelid = to_regclass(:t)"),
                               {"t": part}).scalar_one_or_none()
    if pending is None:
        return  # not attached (never was, or detached already)
    how = "FINALIZE" if pending else "CONCURRENTLY"
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f"ALTER TABLE predictions DETACH PARTITION {part} {how}"))


def _finalize_pending_detach(engine: Engine, keep: str | None = None) -> None:
    """Finish a `DETACH ... CONCURRENTLY` that was interrupted (a killed publisher, a cut connection)."""
    with engine.connect() as conn:
        pending = [r[0] for r in conn.execute(text(
            "SELECT inhrelid::regclass::text FROM pg_inherits "
            "WHERE inhparent = 'predictions'::regclass AND inhdetachpending"))]
    for part in pending:
        if part == keep:
            continue
        log.warning("finishing the interrupted detach of %s", part)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f"ALTER TABLE predictions DETACH PARTITION {part} FINALIZE"))


def _drop_orphan_tables(engine: Engine) -> None:
    """Drop partition tables that no snapshot row names (left by a store written before removals were
    crash-safe); an attached one is detached first."""
    with engine.connect() as conn:
        tables = [r[0] for r in conn.execute(text(
            "SELECT relname FROM pg_class WHERE relkind = 'r' AND relnamespace = current_schema()::regnamespace "
            "AND relname LIKE :prefix"), {"prefix": PARTITION_PREFIX + "%"})]
        known = {_partition(r.id) for r in conn.execute(select(snapshots.c.id))}
    for part in tables:
        if part in known or not part[len(PARTITION_PREFIX):].isdigit():
            continue
        log.warning("dropping %s: no snapshot names it", part)
        _detach(engine, part)
        with engine.begin() as conn:
            conn.execute(text(f"DROP TABLE IF EXISTS {part}"))


# ---------------------------------------------------------------- reading


def get_snapshot(engine: Engine, snapshot_id: int) -> dict[str, Any]:
    """One snapshot's row; SnapshotError when it does not exist."""
    with engine.connect() as conn:
        row = conn.execute(select(snapshots).where(snapshots.c.id == snapshot_id)).first()
    if row is None:
        raise SnapshotError(f"no snapshot {snapshot_id}")
    return dict(row._mapping)


def current_snapshot(engine: Engine, *, dataset: str) -> dict[str, Any] | None:
    """The served snapshot of a dataset, or None when nothing was published yet."""
    with engine.connect() as conn:
        row = conn.execute(current_query(), {"dataset": dataset}).first()
    return dict(row._mapping) if row else None


def list_snapshots(engine: Engine, *, dataset: str) -> list[dict[str, Any]]:
    """Every snapshot of a dataset, newest first, with `served` marking the one readers see."""
    current = current_snapshot(engine, dataset=dataset)
    with engine.connect() as conn:
        rows = conn.execute(select(snapshots).where(snapshots.c.dataset == dataset).order_by(desc(snapshots.c.id)))
        return [{**dict(r._mapping), "served": bool(current and r.id == current["id"])} for r in rows]


def served_rows_query(*, postgres: bool = False) -> Any:
    """The one-statement read: rows of bind param `keys` in the served snapshot of bind param `dataset`.

    The served pointer and the rows are read by one statement, so a read never mixes snapshots.
    On PostgreSQL `keys` is one array parameter (one prepared statement for any number of keys).
    """
    current = select(served.c.snapshot_id).where(served.c.dataset == bindparam("dataset")).scalar_subquery()
    keys = (predictions.c.entity_key == any_(bindparam("keys", type_=postgresql.ARRAY(Text))) if postgres
            else predictions.c.entity_key.in_(bindparam("keys", expanding=True)))
    return (select(predictions.c.snapshot_id, predictions.c.entity_key, predictions.c.score, predictions.c.label)
            .where(predictions.c.snapshot_id == current, keys))


def current_query() -> Any:
    """The served snapshot's row of bind param `dataset`."""
    return (select(snapshots).join(served, served.c.snapshot_id == snapshots.c.id)
            .where(served.c.dataset == bindparam("dataset")))


def snapshot_query() -> Any:
    """A snapshot's row by bind param `id`."""
    return select(snapshots).where(snapshots.c.id == bindparam("id"))


def lookup(engine: Engine, *, dataset: str, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Served predictions of `keys` by entity key (missing keys are absent), all from one snapshot."""
    query = served_rows_query(postgres=_is_pg(engine))
    with engine.connect() as conn:
        if _is_pg(engine):
            # One snapshot for planning and running the statement (READ COMMITTED takes one for each).
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        rows = conn.execute(query, {"dataset": dataset, "keys": list(keys)})
        return {r.entity_key: dict(r._mapping) for r in rows}


def snapshot_rows(engine: Engine, snapshot_id: int, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Rows of `keys` in one kept snapshot (served or not), by entity key."""
    query = select(predictions.c.entity_key, predictions.c.score, predictions.c.label).where(
        predictions.c.snapshot_id == snapshot_id, predictions.c.entity_key.in_(bindparam("keys", expanding=True)))
    out: dict[str, dict[str, Any]] = {}
    with engine.connect() as conn:
        for i in range(0, len(keys), 5000):
            out.update({r.entity_key: dict(r._mapping) for r in conn.execute(query, {"keys": list(keys[i:i + 5000])})})
    return out


def count_rows(engine: Engine, snapshot_id: int) -> int:
    """Rows stored for a snapshot (a published one, or one being written)."""
    with engine.connect() as conn:
        if _is_pg(conn):
            exists = conn.execute(text("SELECT to_regclass(:t)"), {"t": _partition(snapshot_id)}).scalar()
            return int(conn.execute(text(f"SELECT count(*) FROM {_partition(snapshot_id)}")).scalar_one()) \
                if exists else 0
        return int(conn.execute(select(func.count()).select_from(predictions)
                                .where(predictions.c.snapshot_id == snapshot_id)).scalar_one())
