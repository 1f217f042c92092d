"""The prediction store on SQLite and PostgreSQL: atomic publish, kill mid-write, reruns, retention, rollback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from sqlalchemy import Engine, func, select

from jobs.context import Pipeline
from nightshift import predstore, store
from nightshift.settings import Settings
from tests.conftest import ROOT, create_pg_database, drop_pg_database
from tests.integration import crash

ROWS = 20_000
SAMPLE = [f"k{i:07d}" for i in range(0, ROWS, 997)]  # keys spread over the whole snapshot


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        store.init_store(f"sqlite:///{tmp_path / 'store.db'}")
        yield f"sqlite:///{tmp_path / 'store.db'}"
    else:
        url = create_pg_database("ns_predstore")
        store.init_store(url)
        yield url
        store.get_engine.cache_clear()
        drop_pg_database(url)
    store.get_engine.cache_clear()


def run_worker(url: str, run_id: str, marker: float, rows: int = ROWS, delay: float = 0.0) -> int:
    """Publish a snapshot whose every score is `marker`, in a separate process; returns its id."""
    return crash.run_worker(url, run_id, marker, "--delay", str(delay), rows=rows)


def served_state(engine: Engine) -> tuple[int, int, int, set[float], int]:
    """(served id, its row_count, rows stored under it, scores of the sampled keys, sampled keys found).

    The id is the one snapshot the read's rows came from (a read of two, or of none, fails), and its
    row_count is that snapshot's own, looked up by id.
    """
    found = predstore.lookup(engine, dataset="d", keys=SAMPLE)
    ids = {r["snapshot_id"] for r in found.values()}
    assert len(ids) == 1, f"one read, rows of {len(ids)} snapshots: {ids}"
    (snapshot_id,) = ids
    snap = predstore.get_snapshot(engine, snapshot_id)
    assert snap["status"] == predstore.COMPLETE, snap
    with engine.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(predstore.predictions)
                              .where(predstore.predictions.c.snapshot_id == snapshot_id)).scalar_one()
    return snapshot_id, snap["row_count"], stored, {round(r["score"], 3) for r in found.values()}, len(found)


def test_reader_polling_during_publish_sees_only_complete_snapshots(store_url: str) -> None:
    engine = store.get_engine(store_url)
    first = run_worker(store_url, "run-1", 0.1)
    seen: list[tuple[int, int, int, set[float], int]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    second_seen = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            try:
                seen.append(served_state(engine))
            except BaseException as exc:  # noqa: BLE001  (reported by the test thread)
                errors.append(exc)
                return
            if seen[-1][0] != first:
                second_seen.set()

    reader = threading.Thread(target=poll)
    reader.start()
    try:
        second = run_worker(store_url, "run-2", 0.7, delay=0.01)
        assert second_seen.wait(timeout=60), "the reader never saw the second snapshot"
    finally:
        stop.set()
        reader.join(timeout=60)
    assert not errors, errors
    assert len(seen) > 5
    for snapshot_id, row_count, stored, scores, found in seen:
        # Every read is one whole snapshot: all sampled keys, all with that snapshot's score.
        assert found == len(SAMPLE) and stored == row_count == ROWS
        assert (snapshot_id, scores) in [(first, {0.1}), (second, {0.7})]
    assert seen[0][0] == first and seen[-1][0] == second


def test_reads_during_back_to_back_publishes_never_come_back_empty(store_url: str) -> None:
    """Both readers (the jobs' lookup and the lookup API's) find every served key through 120 publishes.

    On PostgreSQL a statement planned just before a publish attached its partition once ran against
    the new served pointer and found nothing: about 1 read in 1,000 during publishes.
    """
    import asyncio

    from serving.store_reader import StoreReader

    engine = store.get_engine(store_url)
    keys = [f"k{i:03d}" for i in range(100)]

    def publish(run_id: str, marker: float) -> None:
        sid = predstore.begin_snapshot(engine, dataset="d", run_id=run_id, model_name="m", model_version="1",
                                       model_run_id=None, data_start=None, data_end=None)
        predstore.write_rows(engine, sid, [pa.record_batch({
            "entity_key": keys, "score": pa.array([marker] * len(keys), pa.float32()), "label": [False] * len(keys)})])
        predstore.publish(engine, sid, actor="test", reason="back to back", retention=2)

    publish("run-0", 0.0)
    found: dict[str, list[int]] = {"jobs": [], "api": []}
    stop = threading.Event()

    def jobs_reader() -> None:
        while not stop.is_set():
            found["jobs"].append(len(predstore.lookup(engine, dataset="d", keys=keys[:10])))

    async def api_readers() -> None:
        reader = StoreReader(store_url, "d", pool_size=3)
        await reader.open()

        async def poll() -> None:
            while not stop.is_set():
                found["api"].append(len(await reader.lookup(keys[:10])))

        try:
            await asyncio.gather(*[poll() for _ in range(3)])
        finally:
            await reader.close()

    threads = [threading.Thread(target=jobs_reader), threading.Thread(target=lambda: asyncio.run(api_readers()))]
    for t in threads:
        t.start()
    try:
        for i in range(1, 121):
            publish(f"run-{i}", i / 1000)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert len(found["jobs"]) > 10 and len(found["api"]) > 10  # reads overlapped the publishes
    assert set(found["jobs"]) == {10} and set(found["api"]) == {10}, \
        {name: sum(n != 10 for n in counts) for name, counts in found.items()}


def test_killed_publish_leaves_previous_snapshot_served(store_url: str) -> None:
    engine = store.get_engine(store_url)
    first = run_worker(store_url, "run-1", 0.1)
    # The worker holds after its first batch is in the store until told to go on: killed there, it dies
    # mid-write for certain.
    proc = subprocess.Popen([sys.executable, str(crash.WORKER), store_url, "run-2", str(ROWS), "0.9", "--hold"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("WRITING"), line
    dead = int(line.split()[1])
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)

    assert served_state(engine)[:4] == (first, ROWS, ROWS, {0.1})
    statuses = {s["id"]: s["status"] for s in predstore.list_snapshots(engine, dataset="d")}
    assert statuses == {first: "complete", dead: "writing"}
    # The next publish clears the dead write and serves normally.
    third = run_worker(store_url, "run-3", 0.5)
    assert served_state(engine)[:4] == (third, ROWS, ROWS, {0.5})
    assert dead not in {s["id"] for s in predstore.list_snapshots(engine, dataset="d")}
    assert predstore.count_rows(engine, dead) == 0


def test_rerun_replaces_its_own_snapshot(store_url: str) -> None:
    engine = store.get_engine(store_url)
    first = run_worker(store_url, "run-1", 0.1)
    again = run_worker(store_url, "run-1", 0.3)
    snaps = predstore.list_snapshots(engine, dataset="d")
    assert [(s["id"], s["run_id"], s["served"]) for s in snaps] == [(again, "run-1", True)]
    assert predstore.count_rows(engine, first) == 0
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(predstore.predictions)).scalar_one()
    assert total == ROWS  # no duplicates anywhere
    assert served_state(engine)[3] == {0.3}


def test_retention_and_snapshot_rollback(store_url: str) -> None:
    engine = store.get_engine(store_url)

    def publish(run_id: str, marker: float, retention: int) -> int:
        sid = predstore.begin_snapshot(engine, dataset="d", run_id=run_id, model_name="m", model_version="1",
                                       model_run_id=None, data_start=None, data_end=None)
        predstore.write_rows(engine, sid, [pa.record_batch({
            "entity_key": SAMPLE, "score": pa.array([marker] * len(SAMPLE), pa.float32()),
            "label": [False] * len(SAMPLE)})])
        return int(predstore.publish(engine, sid, actor="test", reason=run_id, retention=retention)["id"])

    s1, s2, s3 = publish("r1", 0.1, 2), publish("r2", 0.2, 2), publish("r3", 0.3, 2)
    assert [s["id"] for s in predstore.list_snapshots(engine, dataset="d")] == [s3, s2]  # s1 removed
    assert predstore.count_rows(engine, s1) == 0

    # Rollback: serve the older snapshot again; every read answers from it.
    assert predstore.serve(engine, dataset="d", snapshot_id=s2, actor="ops", reason="bad scores") == s3
    assert {round(r["score"], 3) for r in predstore.lookup(engine, dataset="d", keys=SAMPLE).values()} == {0.2}
    with pytest.raises(predstore.SnapshotError, match=f"kept: \\[{s2}, {s3}\\]"):
        predstore.serve(engine, dataset="d", snapshot_id=s1, actor="ops", reason="gone")
    # Retention never removes the served snapshot, even when it is not among the newest.
    assert predstore.apply_retention(engine, dataset="d", keep=1) == []
    assert {s["id"] for s in predstore.list_snapshots(engine, dataset="d")} == {s2, s3}
    s4 = publish("r4", 0.4, 2)
    assert [s["id"] for s in predstore.list_snapshots(engine, dataset="d")] == [s4, s3]
    # Every switch of the served snapshot is in the audit trail.
    moves = store.alias_history(engine, model_name="predictions:d")
    assert [(m["from_version"], m["to_version"]) for m in reversed(moves)] == [
        (None, str(s1)), (str(s1), str(s2)), (str(s2), str(s3)), (str(s3), str(s2)), (str(s2), str(s4))]
    assert moves[1]["actor"] == "ops" and moves[1]["reason"] == "bad scores"


def test_publish_refuses_unknown_or_finished_snapshot(store_url: str) -> None:
    engine = store.get_engine(store_url)
    sid = run_worker(store_url, "run-1", 0.1, rows=10)
    with pytest.raises(predstore.SnapshotError, match="not being written"):
        predstore.publish(engine, sid, actor="t", reason="again", retention=2)
    with pytest.raises(predstore.SnapshotError, match="missing"):
        predstore.publish(engine, 999, actor="t", reason="none", retention=2)


@pytest.mark.postgres
@pytest.mark.parametrize("made_before_c_keys", [False, True])
def test_postgres_partitions_take_the_stores_key_collation(made_before_c_keys: bool) -> None:
    """New stores keep keys in byte order ("C"); a store made before that keeps publishing with its own."""
    from sqlalchemy import create_engine, text

    url = create_pg_database("ns_collation")
    try:
        if made_before_c_keys:  # the predictions table as earlier releases created it
            old = create_engine(url)
            with old.begin() as conn:
                conn.execute(text("CREATE TABLE predictions (snapshot_id integer NOT NULL, entity_key text NOT NULL, "
                                  "score real NOT NULL, label boolean NOT NULL, PRIMARY KEY (snapshot_id, entity_key)) "
                                  "PARTITION BY LIST (snapshot_id)"))
            old.dispose()
        store.init_store(url)  # an existing store: only the tables it lacks are created
        engine = store.get_engine(url)
        sid = run_worker(url, "run-1", 0.4)
        with engine.connect() as conn:
            collations = set(conn.execute(text(
                "SELECT c.relname, coalesce(co.collname, 'default') FROM pg_attribute a "
                "JOIN pg_class c ON c.oid = a.attrelid LEFT JOIN pg_collation co ON co.oid = a.attcollation "
                "AND a.attcollation <> (SELECT oid FROM pg_collation WHERE collname = 'default') "
                "WHERE a.attname = 'entity_key' AND c.relname IN ('predictions', :part)"),
                {"part": f"predictions_s{sid}"}).all())
        want = "default" if made_before_c_keys else "C"
        assert collations == {("predictions", want), (f"predictions_s{sid}", want)}
        assert served_state(engine)[:4] == (sid, ROWS, ROWS, {0.4})
    finally:
        store.get_engine.cache_clear()
        drop_pg_database(url)


def test_the_served_snapshot_follows_the_champion_or_says_it_does_not(settings: Settings) -> None:
    from jobs.publish import follow_champion

    engine = store.get_engine(settings.store_uri)
    ids = {}
    for version, marker in (("1", 0.1), ("2", 0.2)):
        sid = predstore.begin_snapshot(engine, dataset="tiny", run_id=f"run-v{version}", model_name="nightshift-tiny",
                                       model_version=version, model_run_id=None, data_start=None, data_end=None)
        predstore.write_rows(engine, sid, [pa.record_batch({"entity_key": ["a", "b"], "score": pa.array(
            [marker, marker], pa.float32()), "label": [False, False]})])
        predstore.publish(engine, sid, actor="test", reason="test", retention=5)
        ids[version] = sid
    said: list[str] = []
    # A rollback to v1: its kept snapshot is served again, audited.
    out = follow_champion(Pipeline(settings), "1", actor="test", reason="rollback: bad canary", log=said.append)
    assert out == {"served": ids["1"], "stale": False, "message": said[-1]}
    assert predstore.current_snapshot(engine, dataset="tiny")["id"] == ids["1"]
    assert store.alias_history(engine, model_name="predictions:tiny", limit=1)[0]["reason"].startswith(
        "follows champion v1: rollback: bad canary")
    # Already served: nothing moves.
    assert follow_champion(Pipeline(settings), "1", actor="test", reason="again", log=said.append)["stale"] is False
    # A champion with no kept snapshot: the lookup keeps serving v1's scores, and the message says so plainly.
    out = follow_champion(Pipeline(settings), "3", actor="test", reason="promoted", log=said.append)
    assert out["stale"] and out["served"] == ids["1"]
    assert f"still serves snapshot {ids['1']}, scores of v1, not of champion v3" in out["message"]
    assert "nightshift score" in out["message"]
    assert predstore.current_snapshot(engine, dataset="tiny")["id"] == ids["1"]


@pytest.mark.postgres
@pytest.mark.parametrize("point", crash.KILL_POINTS)
def test_publish_killed_at_each_step_keeps_every_key_answered_and_next_publish_clean(point: str) -> None:
    """Killed (and its connections cut) in the middle of any step of a publish, a publisher leaves the
    served snapshot answering every key, no snapshot that can be switched to without its rows, and a
    store the next publish cleans up completely."""
    out = crash.kill_publish_on_a_fresh_store(point)
    snaps, after = out["snapshots"], out["after_kill"]
    switched = point in ("detach", "drop")  # the pointer moved before the kill
    assert after["snapshot"] == [snaps["killed"] if switched else snaps["kept"]], out
    assert after["answered"] == after["asked"] and after["scores"] == ([0.9] if switched else [0.2]), out
    # A snapshot without its rows in place is never switched to: the killed write before the switch, the
    # one being removed after it.
    assert after["serve_refused"].get(snaps["old"] if switched else snaps["killed"], True) is True, out
    final = out["after_next_publish"]
    assert final["snapshot"] == [snaps["next"]] and final["answered"] == final["asked"] and final["scores"] == [0.5]
    assert out["leftovers"] == {"orphan_tables": [], "unattached": [], "pending_detach": [], "unfinished": []}, out
    assert len(out["kept_after_next_publish"]) == 2, out


@pytest.mark.postgres
def test_a_publish_blocked_by_a_held_lock_fails_naming_it_and_serves_on() -> None:
    """A session that keeps a lock the publish needs (the orphaned backend of a killed publisher, a
    migration left open) makes the publish fail after the lock timeout, naming it, instead of hanging."""
    from sqlalchemy import text

    url = create_pg_database("ns_locked")
    try:
        store.init_store(url)
        engine = store.get_engine(url)
        with engine.connect() as conn:  # every job's session, unless its store URL says otherwise
            assert conn.execute(text("SHOW lock_timeout")).scalar() == "1min"
            assert conn.execute(text("SHOW client_connection_check_interval")).scalar() == "2s"
        first = run_worker(url, "run-1", 0.1)
        holder = engine.connect()
        holder.begin()
        holder.execute(text("LOCK TABLE predictions IN SHARE UPDATE EXCLUSIVE MODE"))  # readers go on
        try:  # the store URL's own options come after Nightshift's: a 1 s lock timeout for this publisher
            proc = subprocess.run([sys.executable, str(crash.WORKER), url + "?options=-c%20lock_timeout%3D1s",
                                   "run-2", "1000", "0.9"], capture_output=True, text=True, timeout=120,
                                  env={**os.environ, "PYTHONPATH": str(ROOT)})
            assert proc.returncode != 0 and "lock timeout" in proc.stderr, proc.stderr[-2000:]
            assert served_state(engine)[:4] == (first, ROWS, ROWS, {0.1})
        finally:
            holder.rollback()
            holder.close()
        assert served_state(engine)[:4][0] == first
        third = run_worker(url, "run-3", 0.5)  # lock gone: the next publish clears the failed one and serves
        assert served_state(engine)[:4] == (third, ROWS, ROWS, {0.5})
        assert [s["status"] for s in predstore.list_snapshots(engine, dataset="d")] == ["complete", "complete"]
    finally:
        store.get_engine.cache_clear()
        drop_pg_database(url)
