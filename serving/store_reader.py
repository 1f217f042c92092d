"""Async reads of the prediction store: the lookup API's every answer, and the real-time endpoint's fallback.

PostgreSQL: an asyncpg pool running prepared statements compiled once from predstore's queries
(SQLAlchemy's async layer cost about 2 ms per lookup here against 0.2 ms for the same statement
on asyncpg; bench/lookup_bench.py). SQLite: SQLAlchemy's async engine on aiosqlite.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import make_url

from nightshift import predstore
from serving.metrics import Dependency


class StoreUnavailable(RuntimeError):
    """The store could not be reached or could not answer (the API answers 503)."""


def _compiled(query: Any) -> tuple[str, list[str]]:
    """SQL text with $n placeholders for asyncpg, and the bind param names in placeholder order."""
    from sqlalchemy.dialects.postgresql import asyncpg as pg_asyncpg

    compiled = query.compile(dialect=pg_asyncpg.dialect())
    return str(compiled), list(compiled.positiontup or [])


class StoreReader:
    """Served predictions by entity key, one snapshot per read; snapshot rows cached by id.

    `dataset` is the one a call reads unless it names another: one reader (one pool) serves every
    dataset of the store.
    """

    def __init__(self, url: str, dataset: str, *, pool_size: int = 8, max_inflight: int = 2, timeout_s: float = 5.0,
                 name: str = "nightshift-lookup") -> None:
        self.url, self.dataset, self.pool_size, self.max_inflight = url, dataset, pool_size, max_inflight
        self.timeout_s, self.name = timeout_s, name
        self.health = Dependency("store")
        backend = make_url(url).get_backend_name()
        if backend not in ("postgresql", "sqlite"):
            raise ValueError(f"the lookup API reads PostgreSQL or SQLite stores, not {backend} ({url!r})")
        self.postgres = backend == "postgresql"
        self._pool: Any = None
        self._engine: Any = None
        self._errors: tuple[type[BaseException], ...] = (OSError, asyncio.TimeoutError)
        self._lost: tuple[type[BaseException], ...] = (ConnectionError,)  # the connection died: try a fresh one
        self._snapshots: dict[int, dict[str, Any]] = {}  # a published snapshot never changes
        self._pending: dict[str, list[tuple[str, asyncio.Future[Any]]]] = {}  # by dataset
        self._flushing: set[asyncio.Task[None]] = set()
        self._queries = {"rows": predstore.served_rows_query(), "current": predstore.current_query(),
                         "snapshot": predstore.snapshot_query()}

    async def open(self) -> None:
        """Connect (a pool of `pool_size` connections on PostgreSQL)."""
        if self.postgres:
            import asyncpg

            u = make_url(self.url)
            # InternalClientError: a backend terminated mid-protocol ("cannot switch to state 12").
            self._errors += (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError)
            self._lost += (asyncpg.InterfaceError, asyncpg.InternalClientError, asyncpg.AdminShutdownError,
                           asyncpg.PostgresConnectionError)
            # min_size 0: no connection at start-up, so the API starts (and /readyz says why it is not
            # ready) while the store is down; connections are made on first use and then kept.
            self._pool = await asyncpg.create_pool(
                host=u.host, port=u.port or 5432, user=u.username, password=u.password, database=u.database,
                min_size=0, max_size=self.pool_size, reset=_keep_session, timeout=self.timeout_s,
                # A custom plan per execution (PostgreSQL's default for the first runs, and for good when
                # the custom plans look cheaper) replans the partitioned read each time: 3x the CPU.
                server_settings={"plan_cache_mode": "force_generic_plan", "application_name": self.name,
                                 # The server's backstop to the client's bound (a stalled store answers
                                 # 503 after timeout_s): a statement whose caller went away ends too.
                                 "statement_timeout": str(int(self.timeout_s * 1000) + 1000),
                                 # One snapshot for planning and running each statement: under READ
                                 # COMMITTED a plan made just before a publish attached its partition
                                 # could run against the new served pointer and find nothing.
                                 "default_transaction_isolation": "repeatable read"})
            self._queries["rows"] = predstore.served_rows_query(postgres=True)
            self._sql = {name: _compiled(q) for name, q in self._queries.items()}
        else:
            from sqlalchemy import event
            from sqlalchemy.exc import SQLAlchemyError
            from sqlalchemy.ext.asyncio import create_async_engine

            self._errors += (SQLAlchemyError,)
            self._engine = create_async_engine(make_url(self.url).set(drivername="sqlite+aiosqlite"))
            event.listen(self._engine.sync_engine, "connect", _sqlite_reader_pragmas)

    async def close(self) -> None:
        """Close the pool or engine."""
        if self._pool is not None:
            await self._pool.close()
        if self._engine is not None:
            await self._engine.dispose()

    async def _fetch(self, name: str, params: dict[str, Any]) -> list[Any]:
        """Rows (mappings by column name) of one of the reader's statements; StoreUnavailable on store errors.

        Each try is bounded by `timeout_s` (and a new connection by the pool's connect timeout); a read whose connection
        died (a terminated backend, a restarted server) is tried once more on a fresh connection.
        """
        for attempt in (1, 2):
            try:
                rows = await self._run(name, params)
                self.health.ok()
                return rows
            except TimeoutError as exc:
                error: BaseException = exc
                break
            except self._lost as exc:
                error = exc
                if attempt == 1:
                    if self._pool is not None:  # its other connections are likely cut too: new ones next
                        await self._pool.expire_connections()
                    continue
            except self._errors as exc:
                error = exc
                break
        message = f"{type(error).__name__}: {error}".strip().rstrip(":")
        self.health.failed(message)
        raise StoreUnavailable(message) from error

    async def _run(self, name: str, params: dict[str, Any]) -> list[Any]:
        if self._pool is not None:
            # asyncpg's own bound (the pool's connect timeout covers a new connection): an asyncio.timeout
            # around each read cost about a tenth of the lookup's throughput (bench/lookup_bench.py).
            sql, order = self._sql[name]
            return await self._pool.fetch(sql, *[params[k] for k in order],  # type: ignore[no-any-return]
                                          timeout=self.timeout_s)
        async with asyncio.timeout(self.timeout_s):
            async with self._engine.connect() as conn:
                return [dict(r._mapping) for r in await conn.execute(self._queries[name], params)]

    async def lookup(self, keys: Sequence[str], dataset: str | None = None) -> list[Any]:
        """Rows (snapshot_id, entity_key, score, label) of `keys` in the served snapshot; absent keys left out."""
        return await self._fetch("rows", {"dataset": dataset or self.dataset, "keys": list(keys)})

    async def lookup_one(self, key: str, dataset: str | None = None) -> Any | None:
        """One key's served row, or None. Keys asked for in the same event-loop turn share one query.

        Under load many requests arrive together; one `= ANY(keys)` read for all of them costs the
        store and the driver far less than one read each, and each caller still gets its own row
        from a single consistent snapshot read (no cache: every request reads the store).
        """
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        pending = self._pending.setdefault(dataset or self.dataset, [])
        pending.append((key, future))
        if len(pending) == 1:
            asyncio.get_running_loop().call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        # With `max_inflight` reads out, keys wait for the next free one and go together (per dataset).
        while self._pending and len(self._flushing) < self.max_inflight:
            dataset = next(iter(self._pending))
            batch = self._pending.pop(dataset)
            task = asyncio.get_running_loop().create_task(self._answer(dataset, batch))
            self._flushing.add(task)
            task.add_done_callback(self._read_done)

    def _read_done(self, task: asyncio.Task[None]) -> None:
        self._flushing.discard(task)
        self._flush()

    async def _answer(self, dataset: str, batch: list[tuple[str, asyncio.Future[Any]]]) -> None:
        try:
            rows = {r["entity_key"]: r for r in await self.lookup(list({k for k, _ in batch}), dataset)}
        except BaseException as exc:  # noqa: BLE001  (every waiting caller gets the failure)
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for key, future in batch:
            if not future.done():
                future.set_result(rows.get(key))

    async def current(self, dataset: str | None = None) -> dict[str, Any] | None:
        """The served snapshot's row, or None before the first publish."""
        rows = await self._fetch("current", {"dataset": dataset or self.dataset})
        if not rows:
            return None
        snap = self._snapshots[rows[0]["id"]] = dict(rows[0])
        return snap

    async def snapshot(self, snapshot_id: int) -> dict[str, Any]:
        """A snapshot's row by id (cached)."""
        cached = self._snapshots.get(snapshot_id)
        if cached is None:
            rows = await self._fetch("snapshot", {"id": snapshot_id})
            if not rows:
                raise LookupError(f"snapshot {snapshot_id} vanished")
            cached = self._snapshots[snapshot_id] = dict(rows[0])
        return cached


async def _keep_session(_conn: Any) -> None:
    """Pool release without asyncpg's reset query (a round trip per request); reads leave no session state."""


def _sqlite_reader_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=30000")  # the writer's WAL mode lets readers read while it writes
    cur.close()
