"""Promote: the gated candidate becomes champion; the replaced champion keeps alias previous."""

from __future__ import annotations

import time
from typing import Any

from nightshift import store
from nightshift.settings import Settings, get_settings
from registry import aliases
from registry.tracking import configure


def promote(version: str, *, actor: str = "cli", reason: str = "", settings: Settings | None = None,
            log: Any = print) -> dict[str, Any]:
    """Move the aliases (each move audited); refuses a version whose recorded decision is not to promote."""
    t0 = time.perf_counter()
    settings = settings or get_settings()
    spec = settings.spec()
    client = configure(settings, spec.name)
    name = settings.model_name(spec.name)
    decision = client.get_model_version(name, version).tags.get("gate_decision", "")
    if decision not in ("promoted", "overridden"):
        raise RuntimeError(f"{name} v{version} has gate decision {decision or 'none'!r}; only a version the gates "
                           "promoted (or an override with a written reason) can become champion")
    reason = reason or f"gate decision {decision}"
    old = aliases.promote(client, store.get_engine(settings.store_uri), name=name, version=version, actor=actor,
                          reason=reason)
    log(f"{name}: champion v{old or '-'} -> v{version} ({reason})")
    return {"version": version, "previous": old, "seconds": time.perf_counter() - t0}


def rollback(*, actor: str = "cli", reason: str = "manual rollback", settings: Settings | None = None,
             log: Any = print) -> dict[str, Any]:
    """Champion goes back to the previous version (and previous to the one rolled back from)."""
    settings = settings or get_settings()
    spec = settings.spec()
    client = configure(settings, spec.name)
    name = settings.model_name(spec.name)
    was, now = aliases.rollback(client, store.get_engine(settings.store_uri), name=name, actor=actor, reason=reason)
    log(f"{name}: rolled back champion v{was} -> v{now}")
    return {"from_version": was, "to_version": now}
