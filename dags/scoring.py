"""
### scoring: the champion scores the dataset with PySpark; the snapshot is published atomically

Runs when `nightly` promotes a new champion (asset `nightshift://registry/champion`), on its own
daily schedule (06:00 UTC, data date = that day), and on Trigger or backfill like `nightly`.

* **score**: Spark (`NIGHTSHIFT_SPARK_MASTER`: `local[*]` or a `spark://` cluster) scores every row
  of the spec's scoring scope with the champion: the same feature transform as training, shipped
  with the model and loaded once per Python worker, Arrow between the JVM and Python. Output:
  Parquet under `$NIGHTSHIFT_HOME/scores/<dataset>/<run>`.
* **publish**: a new snapshot in the prediction store (COPY on PostgreSQL), switched to served in one
  transaction; readers never see a partial snapshot. A rerun of this run replaces its own snapshot;
  retention (`NIGHTSHIFT_SNAPSHOT_RETENTION`) removes the oldest. Updates asset
  `nightshift://store/predictions`.

Params: `data_date` (only needed for a scope of one day; empty = the run's date).
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import Asset, AssetOrTimeSchedule, CronTriggerTimetable, dag, get_current_context, task

from dags.common import DEFAULT_ARGS, at, bad_input_fails_fast, data_date_param
from nightshift.runctx import CHAMPION_ASSET, PREDICTIONS_ASSET
from nightshift.settings import get_settings

CHAMPION, PREDICTIONS = Asset(CHAMPION_ASSET), Asset(PREDICTIONS_ASSET)
_settings = get_settings()  # environment only: no connection or database look-up at parse time


@dag(
    schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable("0 6 * * *", timezone="UTC"), assets=[CHAMPION]),
    start_date=at(_settings.schedule_start, 0),
    end_date=at(_settings.schedule_end, 23) if _settings.schedule_end else None,
    catchup=False,
    max_active_runs=1,  # one writer per prediction store: a new publish clears dead writes
    doc_md=__doc__,
    tags=["nightshift"],
    default_args=DEFAULT_ARGS,
    dagrun_timeout=pendulum.duration(hours=6),
    params={"data_date": data_date_param("Only for a scoring scope of one day; empty = the run's date.")},
)
def scoring() -> None:
    @task
    def score() -> dict[str, Any]:
        from jobs.context import Pipeline
        from jobs.score import score as run
        from nightshift.runctx import scoring_date_of

        context = get_current_context()
        with bad_input_fails_fast():
            return run(Pipeline.of(), scoring_date_of(context), run_id=str(context["run_id"]))

    @task(outlets=[PREDICTIONS])
    def publish(scored: dict[str, Any]) -> dict[str, Any]:
        from jobs.context import Pipeline
        from jobs.publish import publish as run
        from nightshift.runctx import actor_of

        context = get_current_context()
        snapshot = run(Pipeline.of(), scored, actor=actor_of(context))
        context["outlet_events"][PREDICTIONS].extra = {"snapshot_id": snapshot["snapshot_id"],
                                                       "model_version": scored["model_version"]}
        return snapshot

    publish(score())  # type: ignore[arg-type]


scoring()
