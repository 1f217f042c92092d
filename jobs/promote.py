"""Promote: the gated candidate becomes champion; the replaced champion keeps alias previous."""

from __future__ import annotations

import time
from typing import Any

from jobs.context import Pipeline
from registry import aliases


def promote(ctx: Pipeline, version: str, *, actor: str = "cli", reason: str = "", log: Any = print) -> dict[str, Any]:
    """Move the aliases (each move audited); refuses a version whose recorded decision is not to promote."""
    t0 = time.perf_counter()
    client, name = ctx.client, ctx.model_name
    decision = client.get_model_version(name, version).tags.get("gate_decision", "")
    if decision not in ("promoted", "overridden"):
        raise RuntimeError(f"{name} v{version} has gate decision {decision or 'none'!r}; only a version the gates "
                           "promoted (or an override with a written reason) can become champion")
    reason = reason or f"gate decision {decision}"
    old = aliases.promote(client, ctx.engine, name=name, version=version, actor=actor, reason=reason)
    log(f"{name}: champion v{old or '-'} -> v{version} ({reason})")
    return {"version": version, "previous": old, "seconds": time.perf_counter() - t0}


def rollback(ctx: Pipeline, *, actor: str = "cli", reason: str = "manual rollback", log: Any = print
             ) -> dict[str, Any]:
    """Champion goes back to the previous version (and previous to the one rolled back from)."""
    name = ctx.model_name
    was, now = aliases.rollback(ctx.client, ctx.engine, name=name, actor=actor, reason=reason)
    log(f"{name}: rolled back champion v{was} -> v{now}")
    return {"from_version": was, "to_version": now}
