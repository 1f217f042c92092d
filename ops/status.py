"""Status: the registry, the last gate decisions, the last runs and the alias audit, as plain dicts."""

from __future__ import annotations

from typing import Any

from jobs.context import Pipeline
from nightshift import store
from registry import aliases


def collect(ctx: Pipeline, *, runs: int = 8) -> dict[str, Any]:
    """Everything `nightshift status` shows."""
    settings, spec, client, name = ctx.settings, ctx.spec, ctx.client, ctx.model_name
    alias_rows = []
    for alias in (aliases.CHAMPION, aliases.CHALLENGER, aliases.PREVIOUS):
        version = aliases.alias_version(client, name, alias)
        row: dict[str, Any] = {"alias": alias, "version": version or "-"}
        if version:
            row.update(client.get_model_version(name, version).tags)
        alias_rows.append(row)
    versions = sorted(client.search_model_versions(f"name = '{name}'"), key=lambda v: -int(v.version))[:runs]
    version_rows = [{"version": str(v.version), "data_date": v.tags.get("data_date", ""),
                     "gate_decision": v.tags.get("gate_decision", "pending"), "gate_mode": v.tags.get("gate_mode", ""),
                     "gate_reason": v.tags.get("override_reason") or v.tags.get("gate_reason", "")}
                    for v in versions]
    run_rows = []
    for r in client.search_runs([ctx.experiment_id], order_by=["attributes.start_time DESC"], max_results=runs):
        auc = r.data.metrics.get("holdout_auc")
        run_rows.append({"started": f"{r.info.start_time and _ts(r.info.start_time)}",
                         "name": r.info.run_name or "", "kind": r.data.tags.get("model_kind")
                         or r.data.tags.get("kind", ""), "status": r.info.status,
                         "auc": f"{auc:.4f}" if auc is not None else ""})
    audit = store.alias_history(ctx.engine, model_name=name, limit=20)
    return {"model": name, "dataset": spec.name, "tracking_uri": settings.tracking_uri, "aliases": alias_rows,
            "versions": version_rows, "runs": run_rows, "audit": audit}


def _ts(ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
