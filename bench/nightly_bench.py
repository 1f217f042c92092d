
"""Benchmark of the nightly pipeline on the bundled flights data; writes bench/results/nightly.json.

  .venv/bin/python bench/nightly_bench.py train     # CPU training: epoch and total time, holdout AUCs
  .venv/bin/python bench/nightly_bench.py nightly   # `nightly` end to end through the running stack (make up)
  .venv/bin/python bench/nightly_bench.py export    # the training window as arrays for bench/train_cuda.py
  .venv/bin/python bench/nightly_bench.py cuda FILE # merge the JSON printed by bench/train_cuda.py

Each part merges its keys into the JSON file, so the figures of one machine sit side by side.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from datetime import date, datetime
from pathlib import Path

from jobs.context import Pipeline

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "nightly.json"
DATA_DATE = date(2013, 6, 30)


def merge(values: dict[str, object]) -> None:
    current = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    current.update(values)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    print(json.dumps(values, indent=2))


def init_stores(s: object) -> None:
    """Create the fresh home's stores, as `nightshift init` does."""
    from nightshift import store
    from registry.tracking import init_tracking

    store.init_store(s.store_uri)  # type: ignore[attr-defined]
    init_tracking(s, ["flights"])  # type: ignore[arg-type]


def bench_train() -> None:
    """Train on a fresh home for DATA_DATE with default settings and read the tracked figures back."""
    os.environ["NIGHTSHIFT_HOME"] = tempfile.mkdtemp(prefix="nightshift-bench-")
    os.environ["NIGHTSHIFT_DATASET"] = "flights"
    os.environ["NIGHTSHIFT_DEVICE"] = "cpu"
    from mlflow import MlflowClient

    from jobs.ingest import ingest
    from jobs.train import train
    from nightshift.settings import get_settings

    s = get_settings()
    init_stores(s)
    ingest(Pipeline(s), date(2013, 1, 1), date(2013, 12, 31))
    out = train(Pipeline(s), DATA_DATE)
    client = MlflowClient(s.tracking_uri)
    mlp, base = client.get_run(out["mlp_run_id"]).data.metrics, client.get_run(out["baseline_run_id"]).data.metrics
    merge({
        "data_date": DATA_DATE.isoformat(),
        "train_rows": int(client.get_run(out["mlp_run_id"]).data.params["train_rows"]),
        "train_seconds_cpu": round(mlp["train_seconds"], 2),
        "epoch_seconds_cpu": round(mlp["mean_epoch_seconds"], 3),
        "epochs_cpu": int(mlp["epochs"]),
        "auc_mlp": round(mlp["holdout_auc"], 4),
        "auc_baseline": round(base["holdout_auc"], 4),
        "baseline_train_seconds_cpu": round(base["train_seconds"], 2),
        "cpu": f"{os.cpu_count()} cores",
    })


def bench_nightly(day: date = date(2013, 9, 15)) -> None:
    """Trigger `nightly` for a date not yet trained on the running stack; wall time and overhead per task."""
    from nightshift.runctx import dag_id
    from nightshift.settings import get_settings
    from ops.airflow_api import AirflowAPI

    s = get_settings()
    api = AirflowAPI(s.airflow_url, s.airflow_user, s.airflow_password)
    nightly = dag_id("nightly", s.dataset)
    api.wait_for_dag(nightly)
    api.unpause(nightly)
    run_id = api.trigger(nightly, day)
    state = api.wait(nightly, run_id)
    assert state == "success", f"{nightly} ended {state}"
    run = api._call("GET", f"/dags/{nightly}/dagRuns/{run_id}")
    wall = (datetime.fromisoformat(run["end_date"]) - datetime.fromisoformat(run["start_date"])).total_seconds()
    states = api.task_states(nightly, run_id)
    bodies = {}
    for task in ("ingest", "validate", "train", "evaluate", "promote"):
        if states[task] != "success":  # promote is skipped when the gates reject: no body ran
            bodies[task] = 0.0
            continue
        xcom = api._call("GET", f"/dags/{nightly}/dagRuns/{run_id}/taskInstances/{task}/xcomEntries/return_value",
                         params={"deserialize": "true", "stringify": "false"})
        bodies[task] = float(xcom["value"]["seconds"])
    rollback_s = time_rollback(day)
    merge({
        "nightly_task_states": states,
        "rollback_seconds": rollback_s,
        "nightly_date": day.isoformat(),
        "nightly_seconds": round(wall, 1),
        "task_body_seconds": {k: round(v, 2) for k, v in bodies.items()},
        "airflow_overhead_per_task_seconds": round((wall - sum(bodies.values())) / len(bodies), 2),
    })


def time_rollback(day: date) -> float:
    """Wall time of `nightshift rollback` (the whole CLI process, imports included).

    With no previous champion yet, the candidate of `day` is promoted first by an override with a
    written reason, so that there is something to roll back from; the rollback restores the champion.
    """
    import subprocess

    from jobs.evaluate import evaluate
    from jobs.promote import promote
    from registry import aliases

    ctx = Pipeline.of()
    client, name = ctx.client, ctx.model_name
    if aliases.alias_version(client, name, aliases.PREVIOUS) is None:
        version = aliases.find_version(client, name, data_date=day.isoformat())
        reason = "benchmark: give rollback a previous champion"
        evaluate(ctx, day, str(version.version), mode="override", override_reason=reason)
        promote(ctx, str(version.version), actor="bench", reason=reason)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ops.cli", "rollback", "--reason", "benchmark: rollback"],
                   check=True, capture_output=True)
    return round(time.perf_counter() - t0, 2)


def export_window(path: Path) -> None:
    """The exact arrays `train` fits on for DATA_DATE (and its holdout), for a run on another machine."""
    import numpy as np

    from jobs.train import load_window, windows
    from nightshift.features import Preprocessor
    from nightshift.settings import get_settings

    s = get_settings()
    spec = s.spec()
    train_days, holdout_days = windows(DATA_DATE, s)
    frame, y, _ = load_window(spec, s, train_days, "training", s.min_train_days)
    hold, yh, _ = load_window(spec, s, holdout_days, "holdout", 1)
    pre = Preprocessor.fit(spec, frame)
    num, cat = pre.transform(frame)
    hnum, hcat = pre.transform(hold)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, num=num, cat=cat, y=y, hnum=hnum, hcat=hcat, hy=yh,
                        cardinalities=np.array(pre.cardinalities))
    print(f"wrote {path} ({len(y)} training rows)")


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "train"
    t0 = time.perf_counter()
    if what == "train":
        bench_train()
    elif what == "nightly":
        bench_nightly()
    elif what == "export":
        export_window(ROOT / ".devbench" / "window.npz")
    elif what == "cuda":
        merge(json.loads(Path(sys.argv[2]).read_text()))
    else:
        raise SystemExit(__doc__)
