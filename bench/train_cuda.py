"""Train the MLP on CUDA (bf16 autocast) on the arrays from `nightly_bench.py export`; print JSON.

Run on a GPU machine from the repo root: PYTHONPATH=. python3 bench/train_cuda.py .devbench/window.npz
Needs only torch, numpy and scikit-learn, so it runs on a bare GPU image.
"""

import json
import sys
import time

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from nightshift.model import MLPScorer, fit_mlp


class _Pre:  # the arrays are already transformed: identity preprocessor
    def transform(self, xy):  # type: ignore[no-untyped-def]
        return xy


def main(path: str) -> None:
    d = np.load(path)
    out = {}
    for device in ("cuda", "cpu"):
        t0 = time.perf_counter()
        fit = fit_mlp(d["num"], d["cat"], d["y"], d["cardinalities"].tolist(), device=device, log=lambda *_: None)
        scorer = MLPScorer(_Pre(), fit.state_dict, fit.config, device=device)
        auc = roc_auc_score(d["hy"], scorer.predict_proba((d["hnum"], d["hcat"])))
        out[device] = {"train_seconds": round(fit.train_seconds, 2), "epochs": fit.epochs,
                       "epoch_seconds": round(float(np.mean(fit.epoch_seconds)), 4),
                       "epoch_seconds_after_first": round(float(np.mean(fit.epoch_seconds[1:])), 4),
                       "holdout_auc": round(float(auc), 4), "wall_seconds": round(time.perf_counter() - t0, 2)}
    print(json.dumps({
        "train_seconds_cuda": out["cuda"]["train_seconds"], "epoch_seconds_cuda": out["cuda"]["epoch_seconds"],
        "auc_mlp_cuda": out["cuda"]["holdout_auc"], "cuda_detail": out["cuda"], "gpu_box_cpu_detail": out["cpu"],
        "gpu": torch.cuda.get_device_name(0), "gpu_torch": torch.__version__,
    }))


if __name__ == "__main__":
    main(sys.argv[1])
