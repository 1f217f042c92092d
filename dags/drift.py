"""
### drift__&lt;dataset&gt;: the day's data, scores and served AUC against the champion; retrain when drift holds

One per dataset. Daily within the dataset's schedule window, after `nightly` has ingested the day
(data date = the run's logical date, or the `data_date` param); a run for a date outside the window
fails, naming it. Nothing to do, and no failure, before there is a champion.

* **check**: Evidently compares the day's partition with a sample of the champion's training window
  (data drift, feature by feature) and the champion's scores of both (prediction drift); for the
  label day (`NIGHTSHIFT_LABEL_DELAY_DAYS` back) it joins the labels with what was served and
  compares the served AUC with the holdout AUC at promotion (performance drift). The HTML report is
  logged to MLflow (its link is in the log) and a row goes to the `drift_history` table.
* **retrain_needed**: goes on only when drift held in k of the last n daily windows and no drift
  retrain ran within the cooldown (severe performance drift overrides it); the log says why not.
* **trigger_nightly**: starts the dataset's `nightly` for the data date with the reason in its conf (checks that
  fired, by how much, the report's location); `nightly` records it on the candidate. The run id is
  `drift__<date>`, so rerunning a drift run never retrains twice.

Thresholds: the `NIGHTSHIFT_DRIFT_*` settings (README, "Drift"); minimum rows, windows and cooldown:
the spec's `settings` (docs/spec.md), which those settings override. A day that is not judged says why
(too few rows, no labels yet) in the log and in the drift history.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import dag, get_current_context, task

from dags.common import DEFAULT_ARGS, bad_input_fails_fast, check_scheduled, data_date_param, datasets
from dags.schedule import DailyTriggerWindow
from nightshift.runctx import dag_id
from nightshift.settings import Settings


def drift_dag(dataset: str, settings: Settings) -> Any:
    """The `drift` DAG of one dataset (settings: its own, resolved from its spec; environment only)."""
    this_dag = dag_id("drift", dataset)

    @dag(
        dag_id=this_dag,
        schedule=DailyTriggerWindow(0, settings.schedule_start, settings.schedule_end),
        start_date=None,  # the window bounds the timetable (dags/schedule.py)
        catchup=False,
        max_active_runs=1,  # windows and cooldown read the days before: judge days in order
        doc_md=__doc__,
        description=f"{dataset}: drift against the champion; retrain when it holds",
        tags=["nightshift", dataset],
        default_args=DEFAULT_ARGS,
        render_template_as_native_obj=True,
        params={"data_date": data_date_param()},
    )
    def drift() -> None:
        @task
        def check() -> dict[str, Any]:
            from jobs.context import Pipeline
            from jobs.drift import check_drift
            from nightshift.runctx import data_date_of

            context = get_current_context()
            ctx = Pipeline.of(dataset)
            with bad_input_fails_fast():
                day = data_date_of(context)
            check_scheduled(ctx.settings, day, this_dag)
            with bad_input_fails_fast():
                return check_drift(ctx, day, run_id=str(context["run_id"]))

        @task.short_circuit
        def retrain_needed(result: dict[str, Any]) -> bool:
            print(("retraining: " if result["retrain"] else "no retrain: ")
                  + (result.get("skipped") or result["conf"]["reason"]))
            return bool(result["retrain"])

        result = check()
        retrain_needed(result) >> TriggerDagRunOperator(  # type: ignore[arg-type, operator]
            task_id="trigger_nightly",
            trigger_dag_id=dag_id("nightly", dataset),
            trigger_run_id="{{ ti.xcom_pull(task_ids='check')['triggered_run_id'] }}",
            conf="{{ ti.xcom_pull(task_ids='check')['conf'] }}",  # type: ignore[arg-type]  # native: a dict
            logical_date=None,  # a run keyed by its data_date param, beside the scheduled run of that date
            skip_when_already_exists=True,
        )

    return drift()


for _dataset, _settings in datasets().items():
    drift_dag(_dataset, _settings)
