"""Holdout AUC of the MLP with early stopping on the newest rows ("tail", what training does) vs a random
share (the same rows shuffled first, so the held-out tail is a seeded random 10 %), per date.

  NIGHTSHIFT_HOME=.nightshift .venv/bin/python bench/val_split.py   # after `make up` ingested the flights
"""

from datetime import date

import numpy as np
from sklearn.metrics import roc_auc_score

from jobs.train import load_window, windows
from nightshift.features import Preprocessor
from nightshift.model import MLPScorer, fit_mlp
from nightshift.settings import get_settings

s = get_settings()
spec = s.spec()
print("| data date | random split | tail split |\n| --- | --- | --- |")
for day in (date(2013, 6, 30), date(2013, 7, 15), date(2013, 8, 15), date(2013, 9, 15)):
    train_days, holdout_days = windows(day, s)
    frame, y, _ = load_window(spec, s, train_days, "training", s.min_train_days)
    hold, yh, _ = load_window(spec, s, holdout_days, "holdout", 1)
    pre = Preprocessor.fit(spec, frame)
    num, cat = pre.transform(frame)
    aucs = []
    shuffled = np.random.default_rng(s.seed).permutation(len(y))
    for order in (shuffled, np.arange(len(y))):  # random split, then tail split
        fit = fit_mlp(num[order], cat[order], y[order], pre.cardinalities, device="cpu", log=lambda *_: None)
        aucs.append(roc_auc_score(yh, MLPScorer(pre, fit.state_dict, fit.config).predict_proba(hold)))
    print(f"| {day} | {aucs[0]:.4f} | {aucs[1]:.4f} |", flush=True)
