"""What the DAG files share: the datasets they make DAGs for, the data-date Param, the schedule check, and
turning step outcomes into task states.

Only this module, dags/schedule.py and the DAG files import Airflow; the steps they call (jobs/) run
without it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import date
from typing import Any

from airflow.sdk import Param

from nightshift.settings import Settings, get_settings
from nightshift.spec import load_all

# Transient failures (a database blip, a lost Celery worker) retry once, after Airflow's own
# `[core] default_task_retry_delay` (the local stack sets 120 s, the cluster 15 s); bad data fails at once
# (bad_input_fails_fast).
DEFAULT_ARGS = {"retries": 1}


log = logging.getLogger(__name__)


def datasets() -> dict[str, Settings]:
    """Each dataset of the spec folders with its own settings (Settings.for_dataset): one DAG of each kind
    per dataset, or per dataset `NIGHTSHIFT_DAG_DATASETS` names. Parsing reads the YAML specs and nothing
    else; a spec that does not load (or a name with no spec) is logged (the DAG processor's log) and gets no
    DAGs, so one broken spec does not take the others' DAGs down."""
    base = get_settings()
    specs, errors = load_all(base.spec_dir)
    if wanted := base.dag_dataset_names:
        for name in wanted:
            if name not in specs and name not in errors:
                errors[name] = (f"NIGHTSHIFT_DAG_DATASETS names it, but no spec folder has it (known: "
                                f"{', '.join(sorted(specs)) or 'none'})")
        specs = {name: specs[name] for name in wanted if name in specs}
        errors = {name: error for name, error in errors.items() if name in wanted}
    out = {}
    for name, spec in specs.items():
        try:
            out[name] = base.for_dataset(spec)
        except ValueError as exc:
            errors[name] = str(exc)
    for name, error in errors.items():
        log.error("dataset %s gets no DAGs: %s", name, error)
    return out


def check_scheduled(settings: Settings, day: date, dag_id: str) -> None:
    """Fail the task (no retry) when `day` is outside the dataset's schedule window, naming the window."""
    with bad_input_fails_fast():
        settings.check_scheduled(day, dag_id)


def data_date_param(description: str = "Leave empty to use the run's logical date.") -> Param:
    """The `data_date` Param every DAG takes; empty (null, as the Trigger form sends it) = the run's date."""
    return Param(None, type=["null", "string"], title="Data date (YYYY-MM-DD)", description=description)


@contextmanager
def bad_input_fails_fast() -> Iterator[None]:
    """Bad data or parameters (ValueError) fail the task at once, since retrying cannot help."""
    from airflow.sdk.exceptions import AirflowFailException

    try:
        yield
    except ValueError as exc:
        raise AirflowFailException(str(exc)) from exc


def done_or_skipped(result: Any, context: Mapping[str, Any]) -> Any:
    """A step's result; a `Skipped` step skips the task, its reason logged and kept as XCom `skip_reason`."""
    from airflow.sdk.exceptions import AirflowSkipException

    from jobs.nightly import Skipped

    if isinstance(result, Skipped):
        context["ti"].xcom_push(key="skip_reason", value=result.reason)
        raise AirflowSkipException(result.reason)
    return result
