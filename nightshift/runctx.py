"""What a pipeline step needs from its orchestrator's run context (a plain mapping: no Airflow import)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

DAG_KINDS = ("nightly", "scoring", "drift")  # every dataset gets one DAG of each


def dag_id(kind: str, dataset: str) -> str:
    """The id of a dataset's DAG of one kind, e.g. nightly__flights."""
    return f"{kind}__{dataset}"


def champion_asset(dataset: str) -> str:
    """URI of the asset a dataset's `nightly` updates on promotion (its `scoring` runs on it)."""
    return f"nightshift://registry/{dataset}/champion"


def predictions_asset(dataset: str) -> str:
    """URI of the asset a dataset's `scoring` updates when it publishes a snapshot."""
    return f"nightshift://store/{dataset}/predictions"


def drift_run_id(day: date) -> str:
    """Run id of the `nightly` run that drift on `day` triggers (one per day: a rerun adds none)."""
    return f"drift__{day.isoformat()}"


def data_date_of(context: Mapping[str, Any]) -> date:
    """The run's data date: the `data_date` param when set, else the start of its data interval."""
    param = str((context.get("params") or {}).get("data_date") or "").strip()
    if param:
        try:
            return date.fromisoformat(param)
        except ValueError as exc:
            raise ValueError(f"param data_date must be YYYY-MM-DD, got {param!r}") from exc
    for key in ("data_interval_start", "logical_date"):
        value = context.get(key)
        if isinstance(value, datetime):
            return value.date()
    raise ValueError("this run has no logical date: trigger it with a logical date or set the data_date param")


def scoring_date_of(context: Mapping[str, Any]) -> date | None:
    """A scoring run's data date: the param, else the data date of the promotion that triggered it
    (asset runs have no logical date), else the run's logical date; None when there is none."""
    param = str((context.get("params") or {}).get("data_date") or "").strip()
    if param:
        return data_date_of(context)
    events = context.get("triggering_asset_events") or {}
    dates = [str(e.extra["data_date"]) for evs in events.values() for e in evs
             if isinstance(getattr(e, "extra", None), dict) and e.extra.get("data_date")]
    if dates:
        return date.fromisoformat(max(dates))
    try:
        return data_date_of(context)
    except ValueError:
        return None


def actor_of(context: Mapping[str, Any]) -> str:
    """Who or what ran this: the triggering user when known, else the DAG run."""
    run = context.get("dag_run")
    user = getattr(run, "triggering_user_name", None)
    run_id = getattr(run, "run_id", None) or context.get("run_id", "?")
    dag_id = getattr(run, "dag_id", None) or "?"
    return f"airflow:{dag_id}/{run_id}" + (f" (by {user})" if user else "")


def param(context: Mapping[str, Any], name: str, default: str = "") -> str:
    """A string param of the run, stripped; default when unset."""
    return str((context.get("params") or {}).get(name) or default).strip()
