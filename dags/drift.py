"""
### drift: the day's data, scores and served AUC against the champion; retrain when drift holds

Daily, after `nightly` has ingested the day (data date = the run's logical date, or the `data_date`
param). Nothing to do, and no failure, before there is a champion.

* **check**: Evidently compares the day's partition with a sample of the champion's training window
  (data drift, feature by feature) and the champion's scores of both (prediction drift); for the
  label day (`NIGHTSHIFT_LABEL_DELAY_DAYS` back) it joins the labels with what was served and
  compares the served AUC with the holdout AUC at promotion (performance drift). The HTML report is
  logged to MLflow (its link is in the log) and a row goes to the `drift_history` table.
* **retrain_needed**: goes on only when drift held in k of the last n daily windows and no drift
  retrain ran within the cooldown (severe performance drift overrides it); the log says why not.
* **trigger_nightly**: starts `nightly` for the data date with the reason in its conf (checks that
  fired, by how much, the report's location); `nightly` records it on the candidate. The run id is
  `drift__<date>`, so rerunning a drift run never retrains twice.

Thresholds, windows and cooldown: the `NIGHTSHIFT_DRIFT_*` settings (README, "Drift").
"""

from __future__ import annotations

from typing import Any

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import dag, get_current_context, task

from dags.common import DEFAULT_ARGS, at, bad_input_fails_fast, data_date_param
from nightshift.settings import get_settings

_settings = get_settings()  # environment only: no connection or database look-up at parse time


@dag(
    schedule="@daily",
    start_date=at(_settings.schedule_start, 0),
    end_date=at(_settings.schedule_end, 0) if _settings.schedule_end else None,
    catchup=False,
    max_active_runs=1,  # windows and cooldown read the days before: judge days in order
    doc_md=__doc__,
    tags=["nightshift"],
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
        with bad_input_fails_fast():
            return check_drift(Pipeline.of(), data_date_of(context), run_id=str(context["run_id"]))

    @task.short_circuit
    def retrain_needed(result: dict[str, Any]) -> bool:
        print(("retraining: " if result["retrain"] else "no retrain: ")
              + (result.get("skipped") or result["conf"]["reason"]))
        return bool(result["retrain"])

    result = check()
    retrain_needed(result) >> TriggerDagRunOperator(  # type: ignore[arg-type, operator]
        task_id="trigger_nightly",
        trigger_dag_id="nightly",
        trigger_run_id="{{ ti.xcom_pull(task_ids='check')['triggered_run_id'] }}",
        conf="{{ ti.xcom_pull(task_ids='check')['conf'] }}",  # type: ignore[arg-type]  # native: a dict
        logical_date=None,  # a run keyed by its data_date param, beside the scheduled run of that date
        skip_when_already_exists=True,
    )


drift()
