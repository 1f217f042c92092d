"""`nightshift`: the operator's command. Set up the stores, run each pipeline step outside Airflow for a
date (or the whole nightly run: jobs/nightly.py, as the DAG runs it), trigger DAG runs through
Airflow's REST API, move and roll back the champion, and show status. Each command builds one
pipeline context (jobs/context.py) and hands it to the steps it runs."""

from __future__ import annotations

import logging
import os
import sys
import warnings
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from nightshift.settings import GATE_MODES

app = typer.Typer(help="Nightshift: validate, train, gate, promote and inspect tabular models.",
                  no_args_is_help=True, add_completion=False)
console = Console()

Day = Annotated[str, typer.Argument(help="Data date, YYYY-MM-DD")]
GATE_MODE_HELP = "gate mode: " + ", ".join(GATE_MODES) + " (default: NIGHTSHIFT_GATE_MODE, enforce)"


def _quiet() -> None:
    warnings.filterwarnings("ignore")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    for name in ("mlflow", "great_expectations", "alembic", "py4j"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a date of the form YYYY-MM-DD") from None


_options: dict[str, Any] = {"dataset": None}


@app.callback()
def _main(dataset: Annotated[str | None, typer.Option("--dataset", "-d", help="The dataset to act on, by name "
                                                       "(`nightshift datasets` lists them); default: "
                                                       "NIGHTSHIFT_DATASET, flights")] = None) -> None:
    """Nightshift: validate, train, gate, promote and inspect tabular models (one dataset per command)."""
    _options["dataset"] = dataset


def _ctx() -> Any:
    """The pipeline context of this command: the --dataset (or configured) dataset, settings from the environment."""
    from jobs.context import Pipeline

    try:
        return Pipeline.of(_options["dataset"])
    except ValueError as exc:  # an unknown dataset or a spec that does not load
        _fail(exc)


def _log(msg: str) -> None:
    console.print(f"[dim]{datetime.now():%H:%M:%S}[/dim] {escape(msg)}", highlight=False)


def _fail(exc: Exception) -> None:
    console.print(f"[bold red]error:[/bold red] {escape(str(exc))}", highlight=False)
    raise typer.Exit(1)


@app.command()
def init() -> None:
    """Create (or bring up to date) the SQL store and the MLflow store, once, before anything opens them.

    Safe to run again and from several processes at once: each store is created under a lock, and
    a store that is already current is left as it is. Services and tasks never create a store.
    """
    _quiet()
    from nightshift import store
    from nightshift.settings import get_settings
    from nightshift.spec import available_specs
    from registry.tracking import init_tracking

    s = get_settings()
    created = store.init_store(s.store_uri)
    _log(f"SQL store {store.safe_url(s.store_uri)}: " + (f"created {', '.join(created)}" if created else "up to date"))
    datasets = sorted(available_specs(s.spec_dir))
    init_tracking(s, datasets)
    _log(f"MLflow store {store.safe_url(s.tracking_uri)}: ready, experiments for {', '.join(datasets)}")


@app.command()
def ingest(day: Annotated[str | None, typer.Argument(help="Data date, YYYY-MM-DD; empty: every date of the "
                                                        "source within the dataset's schedule window")] = None,
           end: Annotated[str | None, typer.Option(help="Last date of a range")] = None) -> None:
    """Write the day's (or a range's, or the whole source's) partitions into the offline store.

    Dates the source has no rows for get no partition, and are listed; when it has none of them, nothing
    is written and the command fails naming the dates the source covers.
    """
    _quiet()
    from jobs.ingest import ingest as run

    ctx = _ctx()
    try:
        run(ctx, _day(day) if day else None, _day(end) if end else None, log=_log)
    except (ValueError, FileNotFoundError) as exc:
        _fail(exc)


@app.command()
def dates() -> None:
    """Print the first and last data dates of the dataset's source within its schedule window (`FIRST LAST`)."""
    _quiet()
    from jobs.ingest import source_dates

    ctx = _ctx()
    try:
        first, last = source_dates(ctx)
    except (ValueError, FileNotFoundError) as exc:
        _fail(exc)
    print(first.isoformat(), last.isoformat())


@app.command()
def validate(day: Day) -> None:
    """Run the Great Expectations suite on the day's partition."""
    _quiet()
    from jobs.validate import validate as run
    from validation.suite import ValidationFailed

    try:
        run(_ctx(), _day(day), log=_log)
    except (ValidationFailed, FileNotFoundError) as exc:
        _fail(exc)


@app.command()
def train(day: Day, reason: Annotated[str, typer.Option(help="Why: recorded on the candidate")] = "") -> None:
    """Train the MLP and the baseline for the day; register the spec's model_family as challenger."""
    _quiet()
    from jobs.train import train as run

    try:
        out = run(_ctx(), _day(day), actor=_actor(), reason=reason, log=_log)
    except ValueError as exc:
        _fail(exc)
    console.print(f"candidate: version {out['version']}" + (" (reused)" if out["reused"] else ""))


@app.command()
def evaluate(day: Day, version: Annotated[str, typer.Option(help="Model version to gate")],
             mode: Annotated[str | None, typer.Option(help=GATE_MODE_HELP)] = None,
             override_reason: Annotated[str | None, typer.Option(help="Required with --mode override")] = None
             ) -> None:
    """Run the gates for a version and record the decision."""
    _quiet()
    from jobs.evaluate import evaluate as run

    try:
        decision = run(_ctx(), _day(day), version, mode=mode, override_reason=override_reason, log=_log)
    except ValueError as exc:
        _fail(exc)
    _print_decision(decision)


@app.command()
def promote(version: str, reason: Annotated[str, typer.Option(help="Recorded in the audit trail")] = "",
            score: Annotated[bool, typer.Option(help="Score with the new champion when no snapshot of it is "
                                                    "kept, so the lookup serves its scores")] = False) -> None:
    """Make a gated version champion (the old champion keeps alias previous); the lookup follows it."""
    _quiet()
    from jobs.promote import promote as run

    ctx = _ctx()
    try:
        run(ctx, version, actor=_actor(), reason=reason, log=_log)
    except RuntimeError as exc:
        _fail(exc)
    _follow(ctx, version, reason or "promoted", score)


def _follow(ctx: Any, version: str, reason: str, score: bool) -> None:
    """After an alias move: serve a kept snapshot of the champion, or score with it, or say plainly it is stale."""
    from jobs.publish import follow_champion

    out = follow_champion(ctx, version, actor=_actor(), reason=reason, log=lambda _: None)
    if not out["stale"]:
        _log(out["message"])
        return
    if not score:
        console.print(f"[bold yellow]note:[/bold yellow] {escape(out['message'])}", highlight=False)
        return
    from jobs.publish import publish
    from jobs.score import score as do_score

    _log(f"no snapshot of v{version} is kept: scoring with it")
    try:
        publish(ctx, do_score(ctx, None, run_id=f"cli__{datetime.now():%Y%m%dT%H%M%S}", log=_log), actor=_actor(),
                log=_log)
    except ValueError as exc:
        _fail(exc)


@app.command("run")
def run_all(day: Day, mode: Annotated[str | None, typer.Option(help=GATE_MODE_HELP)] = None,
            override_reason: Annotated[str | None, typer.Option(help="Required with --mode override")] = None,
            reason: Annotated[str, typer.Option(help="Why: recorded on the candidate; a run with a reason always "
                                                    "trains")] = "",
            retrain_every_days: Annotated[int | None, typer.Option(help="Overrides NIGHTSHIFT_RETRAIN_EVERY_DAYS "
                                                                       "for this run")] = None) -> None:
    """Every step of a nightly run for one date, in order, with progress: what the `nightly` DAG does."""
    _quiet()
    from rich.progress import Progress

    from jobs.nightly import STEPS, NightlyRun, Skipped, run_nightly
    from validation.suite import ValidationFailed

    run = NightlyRun(day=_day(day), actor=_actor(), reason=reason, gate_mode=mode, override_reason=override_reason,
                     retrain_every_days=retrain_every_days)
    with Progress(console=console, transient=False) as progress:
        bar = progress.add_task(f"nightly {run.day}", total=len(STEPS))

        def advance(step: str) -> None:
            progress.advance(bar)
            progress.update(bar, description=f"nightly {run.day}: {step} done")

        try:
            out = run_nightly(_ctx(), run, log=progress.console.print, on_step=advance)
        except (ValidationFailed, ValueError, FileNotFoundError, RuntimeError) as exc:
            _fail(exc)
    if isinstance(out["train"], Skipped):
        console.print(f"[bold]no training[/bold]: {escape(out['train'].reason)}", highlight=False)
        return
    _print_decision(out["evaluate"])


@app.command()
def trigger(dag: Annotated[str, typer.Argument(help="DAG to run: nightly, scoring or drift (of the --dataset), "
                                                   "or a full DAG id such as nightly__flights")], day: Day,
            wait: Annotated[bool, typer.Option(help="Wait for the run to finish")] = True,
            mode: Annotated[str, typer.Option(help=f"gate_mode param (nightly): {GATE_MODE_HELP}")] = "enforce",
            override_reason: Annotated[str, typer.Option(help="override_reason param (nightly, with --mode "
                                                            "override)")] = "",
            reason: Annotated[str, typer.Option(help="Why this run (nightly): recorded on the candidate; a run "
                                                    "with a reason always trains")] = "",
            rerun: Annotated[bool, typer.Option(help="Start a new run for the date even when one succeeded "
                                                   "(by default a succeeded run is reported, not rerun)")] = False,
            timeout: Annotated[float, typer.Option(help="Seconds to wait")] = 1800) -> None:
    """Trigger a DAG run for a data date through Airflow's REST API (the scheduler runs it).

    When the date already has a run that succeeded it is reported and left as it is (its history
    stays that of the run that did the work) unless --rerun; after a failed one, or with --rerun, a
    new run for the same date starts beside it; a running one is waited for.
    """
    from nightshift.runctx import DAG_KINDS
    from nightshift.runctx import dag_id as dag_id_of
    from ops.airflow_api import AirflowAPI

    ctx = _ctx()
    s = ctx.settings
    kind = dag.split("__", 1)[0]
    if kind not in DAG_KINDS:
        _fail(ValueError(f"no DAG kind {kind!r}: one of {', '.join(DAG_KINDS)}"))
    dag_id = dag if "__" in dag else dag_id_of(kind, ctx.dataset)
    if not s.airflow_password:
        _fail(RuntimeError("set NIGHTSHIFT_AIRFLOW_PASSWORD (infra/local/stack.sh env prints it)"))
    if mode == "override" and not override_reason.strip():
        _fail(ValueError("--mode override needs --override-reason (a written reason)"))
    api = AirflowAPI(s.airflow_url, s.airflow_user, s.airflow_password)
    conf: dict[str, Any] = {}
    if kind == "nightly":  # None, like the UI's empty fields: the DAG's defaults apply
        conf = {"gate_mode": mode, "override_reason": override_reason.strip() or None,
                "reason": reason.strip() or None}
    try:
        api.wait_until_up()
        api.wait_for_dag(dag_id)
        api.unpause(dag_id)
        existing = api.find_run(dag_id, _day(day))
        state = str(existing["state"]) if existing else ""
        if existing and (state in ("queued", "running") or (state == "success" and not rerun)):
            run_id = str(existing["dag_run_id"])
            _log(f"{dag_id} for {day} already succeeded in run {run_id}: not rerun (--rerun runs it again)"
                 if state == "success" else f"{dag_id} for {day} is already {state} as run {run_id}: waiting for it")
        else:
            run_id = api.trigger(dag_id, _day(day), conf=conf, log=_log)
            _log(f"triggered {dag_id} run {run_id}")
            state = "queued"
        if state != "success" and wait:
            state = api.wait(dag_id, run_id, timeout=timeout, log=_log)
            if state != "success":
                why = api.failure(dag_id, run_id) if state == "failed" else None
                _fail(RuntimeError(f"{dag_id} run {run_id} ended {state}: "
                                   + (why or "see its task logs in the Airflow UI")))
            _log(f"{dag_id} for {day} succeeded")
        if state == "success" and kind == "nightly":
            _print_run_outcome(api, dag_id, run_id)
    except typer.Exit:  # _fail's own exit (click's Exit is a RuntimeError)
        raise
    except (RuntimeError, TimeoutError) as exc:
        _fail(exc)


def _print_run_outcome(api: Any, dag_id: str, run_id: str) -> None:
    """What a finished nightly run decided: why it did not train, or the gate decision and failed gates."""
    tasks = api.task_states(dag_id, run_id)
    if tasks.get("train") == "skipped":
        why = api.xcom(dag_id, run_id, "train", "skip_reason")
        console.print(f"[bold]no training[/bold]: {escape(str(why or 'see the train task log'))}", highlight=False)
        return
    decision = api.xcom(dag_id, run_id, "evaluate")
    if isinstance(decision, dict):
        _print_decision(decision)


def _print_decision(decision: dict[str, Any]) -> None:
    """The gate decision at a glance: the headline, then every failed gate."""
    head = decision.get("headline") or decision.get("label")
    color = "green" if decision.get("passed") and decision.get("label") != "champion" else (
        "yellow" if decision.get("label") in ("champion", "overridden") else "red")
    console.print(f"[bold {color}]gate decision for v{decision.get('version')}: {escape(str(head))}[/bold {color}]",
                  highlight=False)
    for failure in decision.get("failures") or []:
        console.print(f"  [red]failed:[/red] {escape(failure)}", highlight=False)


@app.command()
def drift(day: Day) -> None:
    """Judge a day's drift against the champion (outside Airflow); says whether it would retrain and why."""
    _quiet()
    from jobs.drift import check_drift

    try:
        out = check_drift(_ctx(), _day(day), run_id=f"cli__{datetime.now():%Y%m%dT%H%M%S}", log=_log)
    except ValueError as exc:
        _fail(exc)
    if out.get("retrain"):
        _log("nightly would retrain: trigger it with that reason, or let the drift DAG do it")


@app.command()
def replay(start: Annotated[str | None, typer.Argument(help="First data date (default: the source's first in "
                                                          "the schedule window)")] = None,
           end: Annotated[str | None, typer.Argument(help="Last data date (default: the source's last)")] = None,
           out: Annotated[Path, typer.Option(help="Folder for replay.png, replay.csv and replay.md")]
           = Path("docs/replay"),
           via: Annotated[str, typer.Option(help="airflow (backfills through the running Airflow's REST API) "
                                                 "or dag-test (in this process, no scheduler)")] = "airflow") -> None:
    """Replay start..end day by day through nightly and drift (and scoring on promotions); chart the loop."""
    _quiet()
    from jobs.ingest import source_dates
    from ops import replay as rp

    ctx = _ctx()
    s = ctx.settings
    try:
        first, last = source_dates(ctx) if start is None or end is None else (_day(start), _day(end))
    except ValueError as exc:
        _fail(exc)
    first, last = (_day(start) if start else first), (_day(end) if end else last)
    if via == "airflow":
        from ops.airflow_api import AirflowAPI

        if not s.airflow_password:
            _fail(RuntimeError("set NIGHTSHIFT_AIRFLOW_PASSWORD (infra/local/stack.sh env prints it)"))
        runner: Any = rp.AirflowRunner(AirflowAPI(s.airflow_url, s.airflow_user, s.airflow_password), ctx)
        runner.prepare()
    elif via == "dag-test":
        runner = rp.DagTestRunner(Path(__file__).resolve().parents[1] / "dags", ctx)
    else:
        _fail(ValueError(f"--via must be airflow or dag-test, not {via!r}"))
    command = f"nightshift replay {first} {last} --via {via}"

    def checkpoint(partial: Any) -> None:
        to = partial["data_date"].iloc[-1]
        rp.write(partial, out, title=f"Replay of {ctx.dataset} {first}..{last} (so far: to {to})",
                 command=f"{command} (so far: to {to})")

    try:
        frame = rp.replay(runner, ctx, first, last, log=_log, checkpoint=checkpoint)
    except (RuntimeError, TimeoutError, ValueError) as exc:
        _fail(exc)
    paths = rp.write(frame, out, title=f"Replay of {ctx.dataset} {first}..{last}", command=command)
    _log(f"replayed {len(frame)} days at {frame.attrs['seconds_per_day']:.1f} s a day: "
         + ", ".join(str(p) for p in paths.values()))


@app.command()
def backtest(start: Annotated[str, typer.Argument(help="First data date")],
             end: Annotated[str, typer.Argument(help="Last data date")],
             policy: Annotated[list[str] | None, typer.Option(
                 help="A retraining policy, repeatable: never, weekly, nightly, drift, drift_weekly (default: all)")]
             = None,
             out: Annotated[Path, typer.Option(help="Folder for backtest.md, backtest.csv and backtest.png")]
             = Path("docs/backtest"),
             json_out: Annotated[Path | None, typer.Option("--json", help="Also write the summary and the "
                                                                           "targets' figures as JSON here")] = None,
             workers: Annotated[int, typer.Option(help="Policies run side by side, one process (and core) each")]
             = 1) -> None:
    """Replay start..end under each retraining policy, in this process, on the same data and code; compare them."""
    _quiet()
    import json

    from jobs.ingest import ingest
    from jobs.train import windows
    from ops import backtest as bt

    ctx = _ctx()
    first, last = _day(start), _day(end)
    policies = policy or list(bt.POLICIES)
    try:
        before, _ = windows(first, ctx.settings)
        ingest(ctx, max(before[0], ctx.settings.schedule_start or before[0]), last, log=_log)
        daily = bt.backtest(ctx.dataset, first, last, policies, workers=workers, log=_log)
    except ValueError as exc:
        _fail(exc)
    command = (f"nightshift --dataset {ctx.dataset} backtest {first} {last}"
               + "".join(f" --policy {p}" for p in (policy or [])) + f" --workers {workers}")
    found = bt.write(daily, out, floor=ctx.spec.gates.min_auc, command=command,
                     title=f"Backtest of {ctx.dataset} {first}..{last}: served AUC and trainings per retraining policy")
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps({"command": command, "dataset": ctx.dataset, "start": str(first),
                                        "end": str(last), "seconds": round(daily.attrs["seconds"], 1),
                                        "policy_seconds": daily.attrs["policy_seconds"], **found},
                                       indent=2, default=str) + "\n")
    _log(f"backtest of {len(policies)} polic{'y' if len(policies) == 1 else 'ies'} over {first}..{last} in "
         f"{daily.attrs['seconds']:.0f} s: {out / 'backtest.md'}")
    for key in ("drift_alarm_day_share", "drift_vs_nightly_auc", "drift_vs_nightly_retrain_share",
                "worst_month_drift_vs_never"):
        if found[key] is not None:
            _log(f"  {key}: {found[key]}")


@app.command()
def score(day: Annotated[str | None, typer.Argument(help="Data date (needed for a scoring scope of one day)")] = None,
          run_id: Annotated[str | None, typer.Option(help="Scoring run id (a rerun of an id replaces its snapshot)")]
          = None) -> None:
    """Score the scope with the champion on Spark and publish the snapshot, outside Airflow."""
    _quiet()
    from jobs.publish import publish
    from jobs.score import score as run

    when = _day(day) if day else None
    rid = run_id or f"cli__{datetime.now():%Y%m%dT%H%M%S}"
    ctx = _ctx()
    try:
        publish(ctx, run(ctx, when, run_id=rid, log=_log), actor=_actor(), log=_log)
    except ValueError as exc:
        _fail(exc)


@app.command()
def snapshots() -> None:
    """The prediction snapshots of the dataset, newest first; `served` is the one the lookup API reads."""
    from nightshift import predstore

    ctx = _ctx()
    t = Table(title=f"Prediction snapshots of {ctx.dataset}")
    for col in ("id", "served", "status", "model", "scoring run", "data interval", "rows", "scored at"):
        t.add_column(col, overflow="fold")
    for r in predstore.list_snapshots(ctx.engine, dataset=ctx.dataset):
        t.add_row(str(r["id"]), "*" if r["served"] else "", r["status"], f"v{r['model_version']}", r["run_id"],
                  f"{r['data_start']}..{r['data_end']}", f"{r['row_count'] or 0:,}", f"{r['scored_at']:%Y-%m-%d %H:%M}")
    console.print(t)


@app.command("serve-snapshot")
def serve_snapshot(snapshot_id: Annotated[int, typer.Argument(help="A complete snapshot's id (see `snapshots`)")],
                   reason: Annotated[str, typer.Option(help="Why: recorded in the audit trail")] = "manual switch"
                   ) -> None:
    """Switch the served prediction snapshot (e.g. back to an older one), atomically and audited."""
    from nightshift import predstore

    ctx = _ctx()
    try:
        before = predstore.serve(ctx.engine, dataset=ctx.dataset, snapshot_id=snapshot_id, actor=_actor(),
                                 reason=reason)
    except predstore.SnapshotError as exc:
        _fail(exc)
    _log(f"{ctx.dataset}: served snapshot {before} -> {snapshot_id}")


@app.command()
def rollback(reason: Annotated[str, typer.Option(help="Why: recorded in the audit trail")] = "manual rollback",
             score: Annotated[bool, typer.Option(help="Score with the restored champion when no snapshot of it "
                                                     "is kept")] = False) -> None:
    """Move champion back to the previous version, in one step; the lookup follows it."""
    _quiet()
    from jobs.promote import rollback as run

    ctx = _ctx()
    try:
        out = run(ctx, actor=_actor(), reason=reason, log=_log)
    except RuntimeError as exc:
        _fail(exc)
    _follow(ctx, out["to_version"], f"rollback: {reason}", score)


@app.command()
def status(runs: Annotated[int, typer.Option(help="How many recent runs to list")] = 8) -> None:
    """Champion, challenger and previous, the last gate decisions, the last runs, the alias audit."""
    _quiet()
    from ops.status import collect

    info = collect(_ctx(), runs=runs)
    console.print(f"[bold]{info['model']}[/bold]  dataset {info['dataset']}  tracking {info['tracking_uri']}")
    t = Table(title="Aliases")
    for col in ("alias", "version", "data date", "holdout AUC", "gate decision", "override reason"):
        t.add_column(col)
    for row in info["aliases"]:
        t.add_row(*[str(row.get(k, "")) for k in ("alias", "version", "data_date", "holdout_auc", "gate_decision",
                                                   "override_reason")])
    console.print(t)
    t = Table(title="Recent versions and gate decisions")
    for col in ("version", "data date", "decision", "mode", "reason"):
        t.add_column(col, overflow="fold")
    for row in info["versions"]:
        t.add_row(row["version"], row["data_date"], row["gate_decision"], row["gate_mode"], row["gate_reason"])
    console.print(t)
    t = Table(title="Recent MLflow runs")
    for col in ("started", "name", "kind", "status", "holdout AUC"):
        t.add_column(col)
    for row in info["runs"]:
        t.add_row(row["started"], row["name"], row["kind"], row["status"], row["auc"])
    console.print(t)
    _print_audit(info["audit"][:10])


@app.command()
def audit(limit: Annotated[int, typer.Option(help="How many moves")] = 50) -> None:
    """Every alias move, newest first: when, who, from which version to which, why."""
    _quiet()
    from nightshift import store

    ctx = _ctx()
    _print_audit(store.alias_history(ctx.engine, model_name=ctx.model_name, limit=limit))


@app.command()
def datasets() -> None:
    """The dataset specs this installation knows: their DAGs, schedule windows and files (and any spec error)."""
    from nightshift.runctx import DAG_KINDS, dag_id
    from nightshift.settings import get_settings
    from nightshift.spec import available_specs, load_all

    s = get_settings()
    specs, errors = load_all(s.spec_dir)
    t = Table(title="Datasets (one Airflow DAG of each kind per dataset)")
    for col in ("dataset", "DAGs", "schedule window", "spec file"):
        t.add_column(col, overflow="fold")
    for name, path in available_specs(s.spec_dir).items():
        label = name + (" (default)" if name == s.dataset else "")
        if name in errors:
            t.add_row(label, "[red]none: the spec does not load[/red]", escape(errors[name].splitlines()[0]), str(path))
            continue
        try:
            window = s.for_dataset(specs[name]).schedule_window()
        except ValueError as exc:
            window = f"[red]{escape(str(exc).splitlines()[0])}[/red]"
        dags = ", ".join(dag_id(k, name) for k in DAG_KINDS)
        if s.dag_dataset_names and name not in s.dag_dataset_names:
            dags = "none: not in NIGHTSHIFT_DAG_DATASETS"
        t.add_row(label, dags, window, str(path))
    console.print(t)
    if unknown := [n for n in s.dag_dataset_names if n not in specs and n not in errors]:
        console.print(f"[red]NIGHTSHIFT_DAG_DATASETS names datasets with no spec: {escape(', '.join(unknown))}[/red]")


@app.command("spec-reference")
def spec_reference() -> None:
    """Print the dataset spec reference (docs/spec.md is this output; a test keeps it current)."""
    from nightshift.specdoc import reference

    print(reference(), end="")


def _print_audit(rows: list[dict[str, Any]]) -> None:
    t = Table(title="Alias audit (newest first)")
    for col in ("when", "alias", "from", "to", "who", "why"):
        t.add_column(col, overflow="fold")
    for r in rows:
        t.add_row(f"{r['at']:%Y-%m-%d %H:%M:%S}", r["alias"], r["from_version"] or "-", r["to_version"] or "-",
                  r["actor"], r["reason"])
    console.print(t)


def _actor() -> str:
    import getpass

    return f"cli:{getpass.getuser()}"


def main() -> None:
    """The `nightshift` command: a store that was never created is an error with the fix, not a traceback."""
    from nightshift.store import StoreNotReady

    try:
        app(sys.argv[1:])
    except StoreNotReady as exc:
        console.print(f"[bold red]error:[/bold red] {escape(str(exc))}", highlight=False)
        sys.exit(1)


if __name__ == "__main__":
    main()
