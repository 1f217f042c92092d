"""Variants of the MLP against the HistGradientBoosting baseline on a dataset's bench dates, several seeds.

    .venv/bin/python bench/mlp_variants.py mpls_stops "batch_size=1024" "batch_size=256,members=3" [--seeds 13,113,213]

How a change to the network is tried before it becomes a setting: each variant is keyword arguments of
`fit_mlp` (nightshift/model.py) over the spec's own settings, trained on the same windows as
bench/models_bench.py (the spec's train_days before its holdout_days), for each seed; the baseline is fitted
once per date as `train` fits it. Writes the median and mean gap (MLP - baseline holdout AUC) per variant
and seed to bench/results/mlp_variants_<dataset>.json. No MLflow: the windows come from a fresh home's
offline store.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def parse_variant(text: str) -> dict[str, Any]:
    """`a=1,b=x` -> {"a": 1, "b": "x"} (numbers parsed, the rest left as text)."""
    out: dict[str, Any] = {}
    for part in filter(None, text.split(",")):
        key, _, value = part.partition("=")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset")
    ap.add_argument("variants", nargs="+", help="fit_mlp keyword arguments, e.g. batch_size=256,members=3")
    ap.add_argument("--seeds", default="13,113,213")
    args = ap.parse_args()
    for key, value in {"MLFLOW_DISABLE_TELEMETRY": "true", "GX_ANALYTICS_ENABLED": "false",
                       "GIT_PYTHON_REFRESH": "quiet"}.items():
        os.environ.setdefault(key, value)
    home = Path(tempfile.mkdtemp(prefix=f"ns-variants-{args.dataset}-")) / "home"
    os.environ.update({"NIGHTSHIFT_HOME": str(home), "NIGHTSHIFT_DATASET": args.dataset})

    import numpy as np
    from sklearn.ensemble import HistGradientBoostingClassifier

    from bench.models_bench import DATES
    from jobs.context import Pipeline
    from jobs.ingest import ingest
    from jobs.train import load_window, windows
    from nightshift.features import Preprocessor
    from nightshift.metrics import auc_and_log_loss
    from nightshift.model import HGBScorer, MLPScorer, fit_mlp
    from nightshift.settings import get_settings
    from tests.conftest import init_home

    get_settings.cache_clear()
    ctx = Pipeline.of(args.dataset, init_home(get_settings()))
    s = ctx.settings
    ingest(ctx, log=lambda *_: None)
    seeds = [int(x) for x in args.seeds.split(",")]
    gaps: dict[str, dict[int, list[float]]] = {v: {seed: [] for seed in seeds} for v in args.variants}
    for day in DATES[args.dataset]:
        train_days, holdout_days = windows(day, s)
        train_df, y, _ = load_window(ctx.spec, s, train_days, "training", 1)
        hold_df, y_hold, _ = load_window(ctx.spec, s, holdout_days, "holdout", 1)
        pre = Preprocessor.fit(ctx.spec, train_df)
        num, cat = pre.transform(train_df)
        hn, hc = pre.transform(hold_df)
        hgb = HistGradientBoostingClassifier(
            max_iter=300, learning_rate=0.08, early_stopping=True, validation_fraction=0.1, random_state=s.seed,
            categorical_features=[num.shape[1] + j for j in range(cat.shape[1])] or None)
        hgb.fit(HGBScorer.design(num, cat), y)
        base = auc_and_log_loss(y_hold, HGBScorer(pre, hgb).scores(hn, hc))[0]
        line = f"{day} baseline {base:.4f}"
        for variant in args.variants:
            kw = {"max_epochs": s.max_epochs, "patience": s.patience, "batch_size": s.batch_size,
                  "lr": s.learning_rate, "members": s.mlp_members, **parse_variant(variant)}
            for seed in seeds:
                fit = fit_mlp(num, cat, y, pre.cardinalities, seed=seed, device="cpu", log=lambda *_: None, **kw)
                auc = auc_and_log_loss(y_hold, MLPScorer(pre, fit.state_dict, fit.config).scores(hn, hc))[0]
                gaps[variant][seed].append(round(auc - base, 4))
            line += f" | {variant}: {np.mean([g[-1] for g in gaps[variant].values()]):+.4f}"
        print(f"[{time.strftime('%H:%M:%S')}] {line}", flush=True)
    result = {"command": " ".join(["python bench/mlp_variants.py", *sys.argv[1:]]), "dataset": args.dataset,
              "dates": [d.isoformat() for d in DATES[args.dataset]], "variants": {}}
    for variant, by_seed in gaps.items():
        result["variants"][variant] = {
            "gaps": {str(seed): g for seed, g in by_seed.items()},
            "median_gap": {str(seed): round(statistics.median(g), 4) for seed, g in by_seed.items()},
            "mean_gap": {str(seed): round(statistics.mean(g), 4) for seed, g in by_seed.items()}}
        print(f"{variant}: median gap by seed {result['variants'][variant]['median_gap']}", flush=True)
    out = ROOT / "bench" / "results" / f"mlp_variants_{args.dataset}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
