"""Kill a publisher at each step of a publish on PostgreSQL, then check what readers and the next publish see.

A publish (tests/integration/publish_worker.py, retention 2) writes a third snapshot over two kept
ones: COPY, key build, attach, pointer switch, then the removal of the oldest (detach, drop). For a
kill point, a holder connection takes a lock that the step needs, the worker is let go, and once
PostgreSQL shows the worker waiting on that lock in that very statement (the handshake), the worker
is killed with SIGKILL and its connections are cut, as a crashed machine's would be. Used by
tests/integration/test_prediction_store.py and bench/reliability.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

from sqlalchemy import Engine, text

from nightshift import predstore, store
from tests.conftest import ROOT, create_pg_database, drop_pg_database

WORKER = ROOT / "tests" / "integration" / "publish_worker.py"
ROWS = 20_000
KILL_POINTS = ["copy", "key_build", "attach", "pointer_switch", "detach", "drop"]

# For each point: the lock the holder takes ({new}: the partition being written, {old}: the oldest
# snapshot's, removed by retention), and the statement the worker is then found waiting in.
HOLDS = {
    "copy": ("LOCK TABLE predictions_s{new} IN SHARE MODE", "COPY "),
    "key_build": ("SELECT 1 FROM predictions_s{new} LIMIT 1", "ADD PRIMARY KEY"),
    "attach": ("LOCK TABLE predictions IN SHARE UPDATE EXCLUSIVE MODE", "ATTACH PARTITION"),
    "pointer_switch": ("SELECT 1 FROM served_snapshot WHERE dataset = 'd' FOR UPDATE", "UPDATE served_snapshot"),
    "detach": ("SELECT 1 FROM predictions LIMIT 1", "DETACH PARTITION"),
    # The drop and the row's delete are one transaction: a key-share lock on the row stops it after the drop.
    "drop": ("SELECT 1 FROM prediction_snapshots WHERE id = {old} FOR KEY SHARE", "DELETE FROM prediction_snapshots"),
}


def run_worker(url: str, run_id: str, marker: float, *args: str, rows: int = ROWS) -> int:
    """Publish a snapshot whose every score is `marker` in a separate process; returns its id."""
    proc = subprocess.run([sys.executable, str(WORKER), url, run_id, str(rows), str(marker), *args],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return int(proc.stdout.split("PUBLISHED")[1].split()[0])


def served_answers(engine: Engine, rows: int = ROWS) -> dict[str, Any]:
    """Look every key up in the served snapshot: {snapshot, asked, answered, scores}."""
    keys = [f"k{i:07d}" for i in range(rows)]
    found = predstore.lookup(engine, dataset="d", keys=keys)
    return {"snapshot": sorted({r["snapshot_id"] for r in found.values()}), "asked": len(keys),
            "answered": len(found), "scores": sorted({round(r["score"], 3) for r in found.values()})}


def leftovers(engine: Engine) -> dict[str, Any]:
    """What a store should not hold between publishes: partitions without a snapshot row, snapshots whose
    partition is not attached, detaches left pending, snapshots not complete."""
    with engine.connect() as conn:
        tables = {r[0] for r in conn.execute(text(
            "SELECT relname FROM pg_class WHERE relkind = 'r' AND relname ~ '^predictions_s[0-9]+$'"))}
        attached = {r[0]: r[1] for r in conn.execute(text(
            "SELECT inhrelid::regclass::text, inhdetachpending FROM pg_inherits "
            "WHERE inhparent = 'predictions'::regclass"))}
    snaps = predstore.list_snapshots(engine, dataset="d")
    names = {f"predictions_s{s['id']}": s for s in snaps}
    return {"orphan_tables": sorted(tables - set(names)),
            "unattached": sorted(n for n in names if n not in attached),
            "pending_detach": sorted(n for n, pending in attached.items() if pending),
            "unfinished": sorted((s["id"], s["status"]) for s in snaps if s["status"] != predstore.COMPLETE)}


def _wait_blocked(engine: Engine, proc: subprocess.Popen[str], statement: str, deadline_s: float = 120) -> None:
    """Return once the worker's connection waits on a lock inside `statement` (the handshake)."""
    app = f"nightshift-publisher-{proc.pid}"
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        with engine.connect() as conn:
            waiting = conn.execute(text(
                "SELECT query FROM pg_stat_activity WHERE application_name = :app AND wait_event_type = 'Lock'"),
                {"app": app}).scalars().all()
        if any(statement in q for q in waiting):
            return
        if proc.poll() is not None:
            raise AssertionError(f"the publisher ended ({proc.returncode}) before it waited in {statement!r}")
        time.sleep(0.02)
    raise AssertionError(f"the publisher never waited in {statement!r}")


def kill_publish_at(url: str, point: str, rows: int = ROWS) -> dict[str, Any]:
    """Kill a publish at `point` (one of KILL_POINTS) on a PostgreSQL store with two snapshots; returns
    what readers saw after the kill and after the next publish, and what was left over."""
    engine = store.get_engine(url)
    old = run_worker(url, "run-0", 0.1, rows=rows)
    kept = run_worker(url, "run-1", 0.2, rows=rows)
    proc = subprocess.Popen([sys.executable, str(WORKER), url, "run-2", str(rows), "0.9", "--hold",
                             "--retention", "2"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdin is not None and proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("WRITING"), line
    new = int(line.split()[1])
    lock, statement = HOLDS[point]
    holder = engine.connect()
    try:
        holder.begin()
        holder.execute(text(lock.format(new=new, old=old)))
        proc.stdin.write("go\n")
        proc.stdin.flush()
        _wait_blocked(engine, proc, statement)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        with engine.connect() as conn:  # its backends go too, as a crashed machine's connections would
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = :a"),
                         {"a": f"nightshift-publisher-{proc.pid}"})
    finally:
        holder.rollback()
        holder.close()
    after_kill = served_answers(engine, rows)
    statuses = {s["id"]: s["status"] for s in predstore.list_snapshots(engine, dataset="d")}
    # Only a complete snapshot with its rows in place may be switched to.
    refused = {}
    for sid in (old, new):
        if sid in statuses:
            try:
                predstore.serve(engine, dataset="d", snapshot_id=sid, actor="test", reason="after a kill")
                refused[sid] = False
                predstore.serve(engine, dataset="d", snapshot_id=after_kill["snapshot"][0], actor="test",
                                reason="back")
            except predstore.SnapshotError:
                refused[sid] = True
    after_kill.update(statuses=statuses, serve_refused=refused)
    follow = run_worker(url, "run-3", 0.5, "--retention", "2", rows=rows)
    return {"point": point, "snapshots": {"old": old, "kept": kept, "killed": new, "next": follow},
            "after_kill": after_kill, "after_next_publish": served_answers(engine, rows),
            "kept_after_next_publish": [s["id"] for s in predstore.list_snapshots(engine, dataset="d")],
            "leftovers": leftovers(engine)}


def kill_publish_on_a_fresh_store(point: str, rows: int = ROWS) -> dict[str, Any]:
    """`kill_publish_at` on a PostgreSQL database of its own, dropped afterwards."""
    url = create_pg_database("ns_crash")
    try:
        store.init_store(url)
        return kill_publish_at(url, point, rows)
    finally:
        store.get_engine.cache_clear()
        drop_pg_database(url)
