"""Holdout AUC of the MLP and the HistGradientBoosting baseline, side by side, over data dates of each dataset.

    .venv/bin/python bench/models_bench.py [--datasets flights,tiny,mpls_stops]

Trains through the nightly job's own `train` step (jobs/train.py: the MLP and the baseline on the same
window, scored on the same holdout) in a fresh home, for each data date of a dataset: flights at the
end of every month from March (2013-12-30, its window's last day, for December), tiny on four dates of
its three months, mpls_stops (the second real dataset) at the end of every month from April 2017. Reads
each run's holdout AUC, epochs and seconds per epoch from MLflow and writes bench/results/models.json:
per date the two AUCs and the gap (MLP - baseline), and per dataset the median gap
(`mlp_gap_median_<dataset>`; `mlp_gap_median_second` repeats the second real dataset's). The measure
every change to the network is judged by. Beside it, the family `train` registered under the spec's
`model_family` and that candidate's gap (`candidate_gap_median_<dataset>`): what the gates and users get.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MONTH_END = {4: 30, 6: 30, 9: 30, 11: 30}
DATES = {  # flights: the end of every month with a full 56 + 7 day window before it, and its window's last day
    "flights": [date(2013, m, MONTH_END.get(m, 31)) for m in range(3, 12)] + [date(2013, 12, 30)],
    "tiny": [date(2013, 2, 10), date(2013, 2, 28), date(2013, 3, 15), date(2013, 3, 31)],
    # the end of every month with a full 84 + 14 day window before it
    "mpls_stops": [date(2017, m, MONTH_END.get(m, 31)) for m in range(4, 13)],
}
SECOND = "mpls_stops"  # the second real dataset (besides flights): its median gap is also `mlp_gap_median_second`


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def measure(dataset: str, dates: list[date]) -> dict[str, Any]:
    from mlflow import MlflowClient

    from jobs.context import Pipeline
    from jobs.ingest import ingest
    from jobs.train import train
    from nightshift.settings import get_settings
    from tests.conftest import init_home

    home = Path(tempfile.mkdtemp(prefix=f"ns-models-{dataset}-")) / "home"
    os.environ.update({"NIGHTSHIFT_HOME": str(home), "NIGHTSHIFT_DATASET": dataset})
    get_settings.cache_clear()
    s = init_home(get_settings())
    ctx = Pipeline.of(dataset, s)
    ingest(ctx, log=lambda *_: None)
    client = MlflowClient(s.tracking_uri, s.tracking_uri)
    rows = []
    for day in dates:
        out = train(ctx, day, actor="bench", log=lambda *_: None)
        mlp, base = client.get_run(out["mlp_run_id"]).data, client.get_run(out["baseline_run_id"]).data
        row = {"data_date": day.isoformat(), "auc_mlp": round(mlp.metrics["holdout_auc"], 4),
               "auc_baseline": round(base.metrics["holdout_auc"], 4),
               "gap": round(mlp.metrics["holdout_auc"] - base.metrics["holdout_auc"], 4),
               "candidate": out["model_family"],
               "candidate_gap": round(client.get_run(out["run_id"]).data.metrics["holdout_auc"]
                                      - base.metrics["holdout_auc"], 4),
               "mlp_epochs": int(mlp.metrics["epochs"]),
               "mlp_epoch_seconds": round(mlp.metrics["mean_epoch_seconds"], 3),
               "baseline_train_seconds": round(base.metrics["train_seconds"], 2)}
        rows.append(row)
        log(f"{dataset} {day}: {row}")
    return {"dates": rows, "gap_median": round(statistics.median(r["gap"] for r in rows), 4),
            "candidate_gap_median": round(statistics.median(r["candidate_gap"] for r in rows), 4),
            "model_family": ctx.settings.model_family,
            "train_days": ctx.settings.train_days, "holdout_days": ctx.settings.holdout_days}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default="flights,tiny,mpls_stops")
    ap.add_argument("--dates", type=int, default=0, help="only the first N data dates of each dataset (a quick look)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "models.json")
    args = ap.parse_args()
    for key, value in {"MLFLOW_DISABLE_TELEMETRY": "true", "GX_ANALYTICS_ENABLED": "false",
                       "GIT_PYTHON_REFRESH": "quiet", "NIGHTSHIFT_DEVICE": "cpu"}.items():
        os.environ.setdefault(key, value)
    result: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, CPU, "
                   f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}",
        "command": " ".join(["python bench/models_bench.py", *sys.argv[1:]]),
    }
    for dataset in args.datasets.split(","):
        found = measure(dataset, DATES[dataset][:args.dates or None])
        result[dataset] = found
        result[f"mlp_gap_median_{dataset}"] = found["gap_median"]
        result[f"candidate_gap_median_{dataset}"] = found["candidate_gap_median"]
        if dataset == SECOND:
            result["mlp_gap_median_second"] = found["gap_median"]
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
