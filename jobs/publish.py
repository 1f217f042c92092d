"""Publish: a scored Parquet output into the prediction store as a new snapshot, served atomically."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from jobs.context import Pipeline
from nightshift import predstore


def publish(ctx: Pipeline, scored: dict[str, Any], *, actor: str, log: Callable[[str], Any] = print) -> dict[str, Any]:
    """Load `score`'s output as a snapshot, make it the served one, apply retention; returns the snapshot.

    Until the final switch nothing is visible to readers; a failure before it leaves the served
    snapshot as it was (the half-written one is cleared by the next publish).
    """
    import pyarrow.dataset as pads

    settings, engine = ctx.settings, ctx.engine
    started = time.perf_counter()
    snapshot_id = predstore.begin_snapshot(
        engine, dataset=scored["dataset"], run_id=scored["run_id"], model_name=scored["model_name"],
        model_version=scored["model_version"], model_run_id=scored.get("model_run_id"),
        data_start=date.fromisoformat(scored["data_start"]), data_end=date.fromisoformat(scored["data_end"]),
        scored_at=datetime.fromisoformat(scored["scored_at"]))
    log(f"writing snapshot {snapshot_id} ({scored['rows']:,} rows) into {engine.dialect.name}")
    batches = pads.dataset(scored["scored_path"], format="parquet").to_batches(batch_size=100_000)
    written = predstore.write_rows(engine, snapshot_id, batches)
    if written != scored["rows"]:
        raise RuntimeError(f"snapshot {snapshot_id}: wrote {written} rows but scoring produced {scored['rows']}; "
                           "not published")
    reason = f"scoring run {scored['run_id']}: {scored['model_name']} v{scored['model_version']}"
    snap = predstore.publish(engine, snapshot_id, actor=actor, retention=settings.snapshot_retention, reason=reason)
    seconds = time.perf_counter() - started
    log(f"snapshot {snapshot_id} served: {snap['row_count']:,} rows in {seconds:.1f}s "
        f"({snap['row_count'] / max(seconds, 1e-9):,.0f} rows/s); removed {snap['removed'] or 'none'}")
    if snap["retention_error"]:
        log(f"warning: older snapshots were not removed ({snap['retention_error']}); the next publish retries")
    return {"snapshot_id": snapshot_id, "rows": int(snap["row_count"]), "removed": snap["removed"],
            "retention_error": snap["retention_error"], "seconds": round(seconds, 2)}


def follow_champion(ctx: Pipeline, version: str, *, actor: str, reason: str,
                    log: Callable[[str], Any] = print) -> dict[str, Any]:
    """Make the lookup serve scores of champion `version` when a complete snapshot of it is kept.

    Returns {"served": snapshot id or None, "stale": True when the lookup still serves another
    model's scores (no snapshot of `version` is kept: scoring must run), "message": what to tell}.
    """
    dataset, engine = ctx.dataset, ctx.engine
    snaps = predstore.list_snapshots(engine, dataset=dataset)
    served = next((s for s in snaps if s["served"]), None)
    if served is not None and served["model_version"] == str(version):
        return {"served": served["id"], "stale": False,
                "message": f"the lookup already serves snapshot {served['id']} of v{version}"}
    mine = next((s for s in snaps if s["status"] == predstore.COMPLETE and s["model_version"] == str(version)), None)
    if mine is not None:
        predstore.serve(engine, dataset=dataset, snapshot_id=mine["id"], actor=actor,
                        reason=f"follows champion v{version}: {reason}")
        scored = f"{mine['scored_at']:%Y-%m-%d %H:%M}"
        message = (f"the lookup now serves snapshot {mine['id']} of v{version} (scored {scored}, data "
                   f"{mine['data_start']}..{mine['data_end']}) instead of "
                   + (f"snapshot {served['id']} of v{served['model_version']}" if served else "nothing"))
        log(message)
        return {"served": mine["id"], "stale": False, "message": message}
    message = ((f"the lookup still serves snapshot {served['id']}, scores of v{served['model_version']}, not of "
                f"champion v{version}" if served else f"the lookup serves nothing yet for champion v{version}")
               + ": no snapshot of it is kept. Score with it: `nightshift score` (or trigger the scoring DAG), "
               "or pass --score")
    log(message)
    return {"served": served["id"] if served else None, "stale": True, "message": message}
