"""The DAGs' schedule: a daily timetable bounded by a dataset's schedule window, and the plugin that
registers it with Airflow (entry point `airflow.plugins` in pyproject.toml).

The window bounds the timetable, not the DAG: a DAG with an end date creates no task for a run
triggered after it, and such a run "succeeds" having run nothing. Bounded here, the scheduler still
schedules nothing outside the window, while a run triggered for a date outside it gets its tasks,
and the first one fails naming the window (Settings.check_scheduled).
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pendulum
from airflow.plugins_manager import AirflowPlugin
from airflow.timetables.base import DagRunInfo, DataInterval, TimeRestriction
from airflow.timetables.trigger import CronTriggerTimetable


def _day(text: str | None) -> date | None:
    return date.fromisoformat(text) if text else None


class _Window:
    """Clamps a timetable's scheduling to [first, last] data dates (either may be open)."""

    first: date | None = None
    last: date | None = None
    last_hour: int = 0  # the last run's hour on the last date

    def _bounds(self) -> tuple[pendulum.DateTime | None, pendulum.DateTime | None]:
        first = pendulum.datetime(self.first.year, self.first.month, self.first.day, tz="UTC") if self.first else None
        last = (pendulum.datetime(self.last.year, self.last.month, self.last.day, self.last_hour, tz="UTC")
                if self.last else None)
        return first, last

    def next_dagrun_info(self, *, last_automated_data_interval: DataInterval | None,
                         restriction: TimeRestriction) -> DagRunInfo | None:
        first, last = self._bounds()
        earliest, latest = restriction.earliest, restriction.latest
        if first is not None:
            earliest = max(earliest, first) if earliest else first
        if last is not None:
            latest = min(latest, last) if latest else last
        return super().next_dagrun_info(  # type: ignore[misc, no-any-return]
            last_automated_data_interval=last_automated_data_interval,
            restriction=TimeRestriction(earliest, latest, restriction.catchup))

    def _window_summary(self) -> str:
        return f"daily, data dates {self.first or 'any'}..{self.last or 'open-ended'}"

    def _with_window(self, data: dict[str, Any]) -> dict[str, Any]:
        return {**data, "first": self.first.isoformat() if self.first else None,
                "last": self.last.isoformat() if self.last else None}


class DailyTriggerWindow(_Window, CronTriggerTimetable):
    """Every day at `hour`:00 UTC (logical date = data date = that day, as `@daily` gives), within the window."""

    def __init__(self, hour: int = 0, first: date | None = None, last: date | None = None) -> None:
        super().__init__(f"0 {hour} * * *", timezone="UTC")
        self.hour, self.first, self.last, self.last_hour = hour, first, last, hour
        self.description = f"{self._window_summary()}, at {hour:02d}:00 UTC"

    @property
    def summary(self) -> str:
        return self.description

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> DailyTriggerWindow:
        return cls(int(data.get("hour", 0)), _day(data.get("first")), _day(data.get("last")))

    def serialize(self) -> dict[str, Any]:
        return {**self._with_window(super().serialize()), "hour": self.hour}


class NightshiftPlugin(AirflowPlugin):
    """Registers the windowed timetables so that the scheduler can read the DAGs that use them."""

    name = "nightshift"
    timetables = [DailyTriggerWindow]
