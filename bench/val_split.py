"""Holdout AUC of the MLP with early stopping on the newest rows ("tail", what training does) vs a random
share (the same rows shuffled first, so the held-out tail is a seeded random 10 %), per date.

    NIGHTSHIFT_HOME=.nightshift .venv/bin/python bench/val_split.py   # after `make up` ingested the flights

Only reads the home's offline store (nothing is logged or registered). Prints a markdown table and writes
bench/results/val_split.json: per data date the two AUCs, and on how many dates the tail split won.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DATES = (date(2013, 6, 30), date(2013, 7, 15), date(2013, 8, 15), date(2013, 9, 15))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "val_split.json")
    args = ap.parse_args()
    os.environ.setdefault("NIGHTSHIFT_DEVICE", "cpu")

    import numpy as np
    from sklearn.metrics import roc_auc_score

    from jobs.train import load_window, windows
    from nightshift.features import Preprocessor
    from nightshift.model import MLPScorer, fit_mlp
    from nightshift.settings import get_settings

    s = get_settings()
    spec = s.spec()
    rows: list[dict[str, float | str]] = []
    wins = 0
    print("| data date | random split | tail split |\n| --- | --- | --- |")
    for day in DATES:
        train_days, holdout_days = windows(day, s)
        frame, y, _ = load_window(spec, s, train_days, "training", s.min_train_days)
        hold, yh, _ = load_window(spec, s, holdout_days, "holdout", 1)
        pre = Preprocessor.fit(spec, frame)
        num, cat = pre.transform(frame)
        aucs = []
        shuffled = np.random.default_rng(s.seed).permutation(len(y))
        for order in (shuffled, np.arange(len(y))):  # random split, then tail split
            fit = fit_mlp(num[order], cat[order], y[order], pre.cardinalities, device="cpu", log=lambda *_: None)
            aucs.append(float(roc_auc_score(yh, MLPScorer(pre, fit.state_dict, fit.config).predict_proba(hold))))
        wins += aucs[1] > aucs[0]
        rows.append({"data_date": day.isoformat(), "auc_random_split": round(aucs[0], 4),
                     "auc_tail_split": round(aucs[1], 4)})
        print(f"| {day} | {aucs[0]:.4f} | {aucs[1]:.4f} |", flush=True)
    result = {
        "command": "python bench/val_split.py",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, CPU",
        "dataset": s.dataset, "seed": s.seed, "train_days": s.train_days, "holdout_days": s.holdout_days,
        "dates": rows,
        "tail_split_wins": wins,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
