"""
### nightly: ingest → validate → train → evaluate → promote, for the run's data date

The data date is the run's logical date (the start of its data interval), or the `data_date`
param when set. Every step reads and writes that date's data only, so reruns replace their own
output and backfills replay history.

* **ingest**: the day's partition into the offline store (Parquet, one partition per day)
* **validate**: Great Expectations suite from the dataset spec; failure stops the run here and names
  every failed expectation (Data Docs in the log and in MLflow)
* **train**: PyTorch MLP (CUDA when available) and a HistGradientBoosting baseline; the MLP becomes
  registry version `challenger`. Trains when the run has a `reason` (runs that `drift` triggers do),
  when there is no champion yet and the window has enough days, or when the champion was trained
  `retrain_every_days` data days before or more (`NIGHTSHIFT_RETRAIN_EVERY_DAYS`, 1 = every night;
  0 = only with a reason). Skipped otherwise, with evaluate and promote, the reason in the log
* **evaluate**: gates (floors, baseline, champion on the same holdout overall and per slice, smoke
  check in a fresh process); the decision and reasons are tagged on the version
* **promote**: `champion` moves to the candidate, the old one keeps `previous`, and asset
  `nightshift://registry/champion` is updated (that runs `scoring`); skipped, with the reason in its
  log, when the gates say no (or in `dry_run`) or the candidate already is champion

Params: `gate_mode` (enforce, dry_run, override), `override_reason` (required for override),
`reason` (why this run: recorded on the candidate as tag `trigger_reason`; `drift` fills it in),
`retrain_every_days` (overrides the setting for this run; the replay backfills with 0).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pendulum
from airflow.sdk import Asset, Param, dag, get_current_context, task

from nightshift.runctx import CHAMPION_ASSET, bad_input_fails_fast
from nightshift.settings import get_settings

CHAMPION = Asset(CHAMPION_ASSET)
_settings = get_settings()  # environment only: no connection or database look-up at parse time


def _midnight_utc(day: date) -> pendulum.DateTime:
    return pendulum.datetime(day.year, day.month, day.day, tz="UTC")


@dag(
    schedule="@daily",
    start_date=_midnight_utc(_settings.schedule_start),
    end_date=_midnight_utc(_settings.schedule_end) if _settings.schedule_end else None,
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["nightshift"],
    # Transient failures (a database blip) retry once; bad data fails at once (AirflowFailException).
    default_args={"retries": 1, "retry_delay": timedelta(minutes=2)},
    params={
        "data_date": Param(None, type=["null", "string"], title="Data date (YYYY-MM-DD)",
                           description="Leave empty to use the run's logical date."),
        "gate_mode": Param("enforce", type=["null", "string"], enum=[None, "enforce", "dry_run", "override"],
                           title="Gate mode", description="Empty: enforce."),
        "override_reason": Param(None, type=["null", "string"], title="Override reason",
                                 description="Required with gate_mode=override; recorded in the audit trail."),
        "reason": Param(None, type=["null", "string"], title="Why this run",
                        description="Recorded on the candidate. A run with a reason always trains."),
        "retrain_every_days": Param(None, type=["null", "integer"], minimum=0, title="Retrain every N days",
                                    description="Empty: NIGHTSHIFT_RETRAIN_EVERY_DAYS. 0: only with a reason."),
    },
)
def nightly() -> None:
    @task
    def ingest() -> dict[str, Any]:
        from jobs.ingest import ingest as run
        from nightshift.runctx import data_date_of

        with bad_input_fails_fast():
            day = data_date_of(get_current_context())
            return {**run(day), "data_date": day.isoformat()}

    @task
    def validate(ingested: dict[str, Any]) -> dict[str, Any]:
        from validation.suite import validate as run

        with bad_input_fails_fast():
            return run(date.fromisoformat(ingested["data_date"]))

    @task
    def train(ingested: dict[str, Any], validation: dict[str, Any]) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        from jobs.train import retrain_due
        from jobs.train import train as run
        from nightshift.runctx import actor_of, param

        context = get_current_context()
        day, reason = date.fromisoformat(ingested["data_date"]), param(context, "reason")
        due, why = retrain_due(day, reason=reason, every_days=context["params"].get("retrain_every_days"))
        if not due:
            context["ti"].xcom_push(key="skip_reason", value=f"no training for {day}: {why}")
            raise AirflowSkipException(f"no training for {day}: {why}")
        print(f"training for {day}: {why}")
        with bad_input_fails_fast():
            return run(day, actor=actor_of(context), reason=reason)

    @task
    def evaluate(ingested: dict[str, Any], candidate: dict[str, Any], validation: dict[str, Any]) -> dict[str, Any]:
        from jobs.evaluate import evaluate as run
        from nightshift.runctx import param

        context = get_current_context()
        with bad_input_fails_fast():
            return run(date.fromisoformat(ingested["data_date"]), candidate["version"],
                       validation=validation["summary"], mode=param(context, "gate_mode", "enforce"),
                       override_reason=param(context, "override_reason"))

    @task(outlets=[CHAMPION])
    def promote(ingested: dict[str, Any], decision: dict[str, Any]) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        from jobs.promote import promote as run
        from nightshift.runctx import actor_of

        if not decision["promote"]:
            raise AirflowSkipException(f"v{decision['version']} not promoted: gate decision {decision['label']}: "
                                       f"{decision.get('headline', '')} (reasons in the evaluate log and on the "
                                       "model version's tags)")
        context = get_current_context()
        promoted = run(decision["version"], actor=actor_of(context))
        if promoted["previous"] == str(decision["version"]):  # a rerun: no new champion, nothing to rescore
            raise AirflowSkipException(f"v{decision['version']} is already champion; nothing changed")
        # `scoring` runs on this event; it scores as of this run's data date.
        context["outlet_events"][CHAMPION].extra = {"data_date": ingested["data_date"],
                                                    "version": str(decision["version"])}
        return promoted

    # Task calls take and return XComArgs at parse time; mypy sees the runtime types.
    ingested = ingest()
    validation = validate(ingested)  # type: ignore[arg-type]
    candidate = train(ingested, validation)  # type: ignore[arg-type]
    promote(ingested, evaluate(ingested, candidate, validation))  # type: ignore[arg-type]


nightly()
