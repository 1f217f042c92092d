"""The Nightshift scorer bundle served by BentoML, for bench/bentoml_bench.py (the peer of our real-time endpoint).

Runs in BentoML's own virtual environment (.peers/bentoml, made by bench/bentoml_bench.py), started as

    .peers/bentoml/bin/bentoml serve bentoml_service:NightshiftScorer --working-dir bench/peers --port 8842

A BentoML 1.x service as BentoML's current docs set one up ("Services", "Adaptive batching",
"Parallelize requests handling": docs.bentoml.com/en/latest/build-with-bentoml/services.html,
/get-started/adaptive-batching.html, /build-with-bentoml/parallelize-requests.html): a class under
`@bentoml.service` that loads the model once in `__init__`, and a synchronous
`@bentoml.api(batchable=True)` method whose one parameter is a list (the batch dimension), which
BentoML's dispatcher fills with the rows of concurrent requests. A request's body is
`{"rows": [{...}, ...]}`; the answer is the list of their scores.

It scores with the same code and bundle as the endpoint: `nightshift.model.load_bundle` (the
repository's root is put on sys.path) on the bundle in NIGHTSHIFT_BENTO_BUNDLE, then
`predict_records(rows)`. Settings come from the environment so the bench can set them:
NIGHTSHIFT_BENTO_MAX_BATCH (64), NIGHTSHIFT_BENTO_MAX_LATENCY_MS (BentoML's default, 60000),
NIGHTSHIFT_BENTO_TORCH_THREADS (1, as the endpoint's NIGHTSHIFT_REALTIME_CPU_THREADS),
NIGHTSHIFT_BENTO_WORKERS (1).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import bentoml
import numpy as np
from bentoml.validators import ContentType

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MAX_BATCH = int(os.environ.get("NIGHTSHIFT_BENTO_MAX_BATCH", "64"))
MAX_LATENCY_MS = int(os.environ.get("NIGHTSHIFT_BENTO_MAX_LATENCY_MS", "60000"))
TORCH_THREADS = int(os.environ.get("NIGHTSHIFT_BENTO_TORCH_THREADS", "1"))
WORKERS = int(os.environ.get("NIGHTSHIFT_BENTO_WORKERS", "1"))


@bentoml.service(workers=WORKERS, logging={"access": {"enabled": False}})
class NightshiftScorer:
    """The bundle in NIGHTSHIFT_BENTO_BUNDLE, loaded once per worker, on the CPU in fp32 (the endpoint's CPU choice)."""

    def __init__(self) -> None:
        import torch

        from nightshift.model import load_bundle

        torch.set_num_threads(TORCH_THREADS)
        bundle = Path(os.environ["NIGHTSHIFT_BENTO_BUNDLE"])
        self.scorer = load_bundle(bundle, device="cpu", precision="fp32")

    # The output's content type is declared (bentoml.validators.ContentType, as the IO-types docs declare one):
    # left undeclared, BentoML rebuilds the output type's JSON schema on every response to infer it, about a
    # tenth of its CPU per request here (py-spy). JSON either way.
    @bentoml.api(batchable=True, max_batch_size=MAX_BATCH, max_latency_ms=MAX_LATENCY_MS)
    def predict(self, rows: list[dict[str, Any]]) -> Annotated[list[float], ContentType("application/json")]:
        """Scores (probabilities) of raw rows, in order."""
        scores = self.scorer.predict_records(rows)
        if not np.isfinite(scores).all():
            raise ValueError("the model gave NaN or inf scores")
        return [float(s) for s in scores]
