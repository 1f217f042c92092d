"""
### nightly__&lt;dataset&gt;: ingest → validate → train → evaluate → promote, for the run's data date

One such DAG per dataset of the spec folders (dags/common.py), scheduled daily within the dataset's
schedule window (`settings.schedule_start/end` of its spec); a run for a date outside the window fails
at `ingest`, naming the window.

The data date is the run's logical date (the start of its data interval), or the `data_date`
param when set. Every step reads and writes that date's data only, so reruns replace their own
output and backfills replay history.

* **ingest**: the day's partition into the offline store (Parquet, one partition per day)
* **validate**: Great Expectations suite from the dataset spec; failure stops the run here and names
  every failed expectation (Data Docs in the log and in MLflow)
* **train**: PyTorch MLP (CUDA when available) and a HistGradientBoosting baseline; the spec's
  `model_family` (the MLP by default) becomes registry version `challenger`. Trains when the run has
  a `reason` (runs that `drift` triggers do), when there is no champion yet and the window has
  enough days, or when the champion was trained `retrain_every_days` data days before or more
  (`NIGHTSHIFT_RETRAIN_EVERY_DAYS`, 1 = every night; 0 = only with a reason). Skipped otherwise,
  with evaluate and promote, the reason in the log
* **evaluate**: gates (floors, baseline, champion on the same holdout overall and per slice, smoke
  check in a fresh process); the decision and reasons are tagged on the version
* **promote**: `champion` moves to the candidate, the old one keeps `previous`, and asset
  `nightshift://registry/<dataset>/champion` is updated (that runs `scoring`); skipped, with the reason in its
  log, when the gates say no (or in `dry_run`) or the candidate already is champion

Params (each may stay empty, as the Trigger form sends it): `data_date` (empty: the run's logical
date), `gate_mode` (enforce, dry_run, override; empty: enforce), `override_reason` (required for
override, ignored otherwise), `reason` (why this run: recorded on the candidate as tag
`trigger_reason`; `drift` fills it in), `retrain_every_days` (overrides the setting for this run;
the replay backfills with 0). Each task calls one step of `jobs/nightly.py`, which `nightshift run`
runs too.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from airflow.sdk import Asset, Param, dag, get_current_context, task

from dags.common import DEFAULT_ARGS, bad_input_fails_fast, check_scheduled, data_date_param, datasets, done_or_skipped
from dags.schedule import DailyTriggerWindow
from nightshift.runctx import champion_asset, dag_id
from nightshift.settings import GATE_MODES, Settings


def _run(data_date: str) -> Any:
    """The NightlyRun of this task's DAG run (its Params, its data date, who triggered it)."""
    from jobs.nightly import NightlyRun
    from nightshift.runctx import actor_of, param

    context = get_current_context()
    every = context["params"].get("retrain_every_days")
    return NightlyRun(day=date.fromisoformat(data_date), actor=actor_of(context), reason=param(context, "reason"),
                      gate_mode=param(context, "gate_mode") or None,
                      override_reason=param(context, "override_reason") or None,
                      retrain_every_days=None if every is None else int(every))


def nightly_dag(dataset: str, settings: Settings) -> Any:
    """The `nightly` DAG of one dataset (settings: its own, resolved from its spec; environment only)."""
    champion = Asset(champion_asset(dataset))
    this_dag = dag_id("nightly", dataset)

    @dag(
        dag_id=this_dag,
        schedule=DailyTriggerWindow(0, settings.schedule_start, settings.schedule_end),
        start_date=None,  # the window bounds the timetable (dags/schedule.py), so runs outside it still fail loudly
        catchup=False,
        max_active_runs=1,
        doc_md=__doc__,
        description=f"{dataset}: ingest, validate, train, gate and promote",
        tags=["nightshift", dataset],
        default_args=DEFAULT_ARGS,
        params={
            "data_date": data_date_param(),
            "gate_mode": Param("enforce", type=["null", "string"], enum=[None, *GATE_MODES],
                               title="Gate mode", description="Empty: enforce."),
            "override_reason": Param(None, type=["null", "string"], title="Override reason",
                                     description="Required with gate_mode=override; recorded in the audit trail."),
            "reason": Param(None, type=["null", "string"], title="Why this run",
                            description="Recorded on the candidate. A run with a reason always trains."),
            "retrain_every_days": Param(None, type=["null", "integer"], minimum=0, title="Retrain every N days",
                                        description="Empty: the spec's or NIGHTSHIFT_RETRAIN_EVERY_DAYS. "
                                                    "0: only with a reason."),
        },
    )
    def nightly() -> None:
        @task
        def ingest() -> dict[str, Any]:
            from jobs.context import Pipeline
            from jobs.nightly import ingest_step
            from nightshift.runctx import data_date_of

            ctx = Pipeline.of(dataset)
            with bad_input_fails_fast():
                day = data_date_of(get_current_context())
            check_scheduled(ctx.settings, day, this_dag)
            with bad_input_fails_fast():
                return ingest_step(ctx, _run(day.isoformat()))

        @task
        def validate(ingested: dict[str, Any]) -> dict[str, Any]:
            from jobs.context import Pipeline
            from jobs.nightly import validate_step

            with bad_input_fails_fast():
                return validate_step(Pipeline.of(dataset), _run(ingested["data_date"]))

        @task(queue=settings.training_queue)
        def train(ingested: dict[str, Any]) -> dict[str, Any]:
            from jobs.context import Pipeline
            from jobs.nightly import train_step

            with bad_input_fails_fast():
                return done_or_skipped(  # type: ignore[no-any-return]
                    train_step(Pipeline.of(dataset), _run(ingested["data_date"])), get_current_context())

        @task
        def evaluate(ingested: dict[str, Any], candidate: dict[str, Any], validation: dict[str, Any]) -> dict[str, Any]:
            from jobs.context import Pipeline
            from jobs.nightly import evaluate_step

            with bad_input_fails_fast():
                return evaluate_step(Pipeline.of(dataset), _run(ingested["data_date"]), candidate, validation)

        @task(outlets=[champion])
        def promote(ingested: dict[str, Any], decision: dict[str, Any]) -> dict[str, Any]:
            from jobs.context import Pipeline
            from jobs.nightly import promote_step

            context = get_current_context()
            promoted = done_or_skipped(promote_step(Pipeline.of(dataset), _run(ingested["data_date"]), decision),
                                       context)
            # `scoring` runs on this event; it scores as of this run's data date.
            context["outlet_events"][champion].extra = {"data_date": ingested["data_date"],
                                                        "version": str(decision["version"])}
            return promoted  # type: ignore[no-any-return]

        # Task calls take and return XComArgs at parse time; mypy sees the runtime types.
        ingested = ingest()
        validation = validate(ingested)  # type: ignore[arg-type]
        candidate = train(ingested)  # type: ignore[arg-type]
        validation >> candidate  # type: ignore[operator]  # nothing trains on data that failed validation
        promoted = promote(ingested, evaluate(ingested, candidate, validation))  # type: ignore[arg-type]
        # A train that skips (nothing to train) skips evaluate and promote in one pass, not one after the other.
        candidate >> promoted  # type: ignore[operator]

    return nightly()


for _dataset, _settings in datasets().items():
    nightly_dag(_dataset, _settings)
