"""What the DAG files share: the data-date Param, schedule dates, and turning step outcomes into task states.

Only this module and the DAG files import Airflow; the steps they call (jobs/) run without it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import date, timedelta
from typing import Any

import pendulum
from airflow.sdk import Param

# Transient failures (a database blip) retry once; bad data fails at once (bad_input_fails_fast).
DEFAULT_ARGS = {"retries": 1, "retry_delay": timedelta(minutes=2)}


def at(day: date, hour: int = 0) -> pendulum.DateTime:
    """`day` at `hour`:00 UTC (the schedules' start and end)."""
    return pendulum.datetime(day.year, day.month, day.day, hour, tz="UTC")


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
