"""
### scoring__&lt;dataset&gt;: the champion scores the dataset with PySpark; the snapshot is published atomically

One per dataset. Runs when the dataset's `nightly` promotes a new champion (asset
`nightshift://registry/<dataset>/champion`), on its own daily schedule within the dataset's schedule
window (06:00 UTC, data date = that day), and on Trigger or backfill like `nightly`; a run for a date
outside the window fails, naming it.

* **score**: Spark (`NIGHTSHIFT_SPARK_MASTER`: `local[*]` or a `spark://` cluster) scores every row
  of the spec's scoring scope with the champion: the same feature transform as training, shipped
  with the model and loaded once per Python worker, Arrow between the JVM and Python. Output:
  Parquet under `$NIGHTSHIFT_HOME/scores/<dataset>/<run>`.
* **publish**: a new snapshot in the prediction store (COPY on PostgreSQL), switched to served in one
  transaction; readers never see a partial snapshot. A rerun of this run replaces its own snapshot;
  retention (`NIGHTSHIFT_SNAPSHOT_RETENTION`) removes the oldest. Updates asset
  `nightshift://store/<dataset>/predictions`.

Params: `data_date` (only needed for a scope of one day; empty = the run's date).
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import Asset, AssetOrTimeSchedule, dag, get_current_context, task

from dags.common import DEFAULT_ARGS, bad_input_fails_fast, check_scheduled, data_date_param, datasets
from dags.schedule import DailyTriggerWindow
from nightshift.runctx import champion_asset, dag_id, predictions_asset
from nightshift.settings import Settings


def scoring_dag(dataset: str, settings: Settings) -> Any:
    """The `scoring` DAG of one dataset (settings: its own, resolved from its spec; environment only)."""
    champion, predictions = Asset(champion_asset(dataset)), Asset(predictions_asset(dataset))
    this_dag = dag_id("scoring", dataset)

    @dag(
        dag_id=this_dag,
        schedule=AssetOrTimeSchedule(  # a core timetable, registered by the plugin in dags/schedule.py
            timetable=DailyTriggerWindow(6, settings.schedule_start, settings.schedule_end),  # type: ignore[arg-type]
            assets=[champion]),
        start_date=None,  # the window bounds the timetable (dags/schedule.py)
        catchup=False,
        max_active_runs=1,  # one writer per prediction store: a new publish clears dead writes
        doc_md=__doc__,
        description=f"{dataset}: score with the champion on Spark, publish the snapshot",
        tags=["nightshift", dataset],
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
            ctx = Pipeline.of(dataset)
            with bad_input_fails_fast():
                day = scoring_date_of(context)
            if day is not None:
                check_scheduled(ctx.settings, day, this_dag)
            with bad_input_fails_fast():
                return run(ctx, day, run_id=str(context["run_id"]))

        @task(outlets=[predictions])
        def publish(scored: dict[str, Any]) -> dict[str, Any]:
            from jobs.context import Pipeline
            from jobs.publish import publish as run
            from nightshift.runctx import actor_of

            context = get_current_context()
            snapshot = run(Pipeline.of(dataset), scored, actor=actor_of(context))
            context["outlet_events"][predictions].extra = {"snapshot_id": snapshot["snapshot_id"],
                                                           "model_version": scored["model_version"]}
            return snapshot

        publish(score())  # type: ignore[arg-type]

    return scoring()


for _dataset, _settings in datasets().items():
    scoring_dag(_dataset, _settings)
