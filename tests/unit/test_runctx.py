"""The data date and the actor, from a run context."""

from __future__ import annotations

from datetime import UTC, date, datetime
from types import SimpleNamespace

import pytest

from nightshift.runctx import actor_of, data_date_of, scoring_date_of


def test_data_date_is_the_interval_start_unless_the_param_says_otherwise():
    ctx = {"data_interval_start": datetime(2013, 5, 2, tzinfo=UTC), "params": {"data_date": ""}}
    assert data_date_of(ctx) == date(2013, 5, 2)
    assert data_date_of({**ctx, "params": {"data_date": "2013-07-04"}}) == date(2013, 7, 4)


def test_bad_or_missing_dates_say_what_to_do():
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        data_date_of({"params": {"data_date": "July 4th"}})
    with pytest.raises(ValueError, match="no logical date"):
        data_date_of({"params": {}, "data_interval_start": None, "logical_date": None})


def test_actor_names_the_run_and_the_user():
    run = SimpleNamespace(run_id="manual__1", dag_id="nightly", triggering_user_name="ana")
    assert actor_of({"dag_run": run}) == "airflow:nightly/manual__1 (by ana)"


def test_scoring_date_comes_from_the_param_then_the_promotion_event_then_the_run():
    event = SimpleNamespace(extra={"data_date": "2013-06-30", "version": "4"})
    older = SimpleNamespace(extra={"data_date": "2013-06-29"})
    asset_run = {"params": {"data_date": ""}, "logical_date": None,
                 "triggering_asset_events": {"nightshift://registry/champion": [older, event]}}
    assert scoring_date_of(asset_run) == date(2013, 6, 30)  # the newest promotion's data date
    assert scoring_date_of({**asset_run, "params": {"data_date": "2013-01-05"}}) == date(2013, 1, 5)
    assert scoring_date_of({"params": {}, "logical_date": datetime(2013, 3, 1, 6, tzinfo=UTC)}) == date(2013, 3, 1)
    assert scoring_date_of({"params": {}, "logical_date": None, "triggering_asset_events": {}}) is None
