"""The operational check, run in a fresh process: load a registered model, predict a sample, time it.

Usage: python -m registry.smoke MODEL_URI SAMPLE_PARQUET  (prints one JSON line)
"""

from __future__ import annotations

import json
import sys
import time


def main(argv: list[str]) -> int:
    model_uri, sample_path = argv
    import mlflow
    import numpy as np
    import pandas as pd

    t0 = time.perf_counter()
    model = mlflow.pyfunc.load_model(model_uri)
    load_s = time.perf_counter() - t0
    sample = pd.read_parquet(sample_path)
    model.predict(sample)  # warm-up
    timings, preds = [], None
    for _ in range(5):
        t = time.perf_counter()
        preds = np.asarray(model.predict(sample), dtype=float)
        timings.append((time.perf_counter() - t) * 1000)
    assert preds is not None
    print(json.dumps({"loaded": True, "load_seconds": load_s, "rows": len(sample),
                      "latency_ms": float(np.median(timings)), "nan_count": int(np.isnan(preds).sum())}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
