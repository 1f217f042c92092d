"""The real-time endpoint on CUDA: reduced precision within tolerance, and serving from the GPU.

Runs wherever torch sees a CUDA device; CPU machines skip it (the same endpoint is tested on CPU
in test_realtime.py). Needs no MLflow: the endpoint serves a bundle folder
(NIGHTSHIFT_REALTIME_BUNDLE_DIR), so it also runs on a bare GPU image.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from nightshift.features import Preprocessor
from nightshift.model import MLPScorer, fit_mlp, save_bundle
from nightshift.settings import Settings
from nightshift.spec import load_spec
from serving.realtime.scorer import load_scorer

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="needs a CUDA GPU; CPU machines run the endpoint's CPU path (test_realtime.py)")
TOLERANCE = 0.01  # largest score difference bf16 on CUDA may make against fp32 on CPU
TINY_CSV = Path(__file__).resolve().parents[2] / "nightshift" / "data" / "tiny.csv"


def quiet(*_: object) -> None:
    pass


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle fitted on the tiny dataset on the GPU (no registry involved)."""
    spec = load_spec("tiny")
    frame = pd.read_csv(TINY_CSV)
    pre = Preprocessor.fit(spec, frame)
    num, cat = pre.transform(frame)
    y = (frame["label"] == "yes").to_numpy(dtype=np.float32)
    fit = fit_mlp(num, cat, y, pre.cardinalities, max_epochs=5, device="cuda", log=quiet)
    path = tmp_path_factory.mktemp("cuda") / "bundle"
    save_bundle(path, MLPScorer(pre, fit.state_dict, fit.config, device="cpu"))
    return path


def rows() -> list[dict[str, Any]]:
    frame = pd.read_csv(TINY_CSV)
    return json.loads(frame[["segment", "region", "x1", "x2", "id"]].to_json(orient="records"))  # type: ignore[no-any-return]


def test_bf16_on_cuda_stays_within_tolerance_of_fp32(bundle: Path) -> None:
    spec = load_spec("tiny")
    cpu = load_scorer(bundle, spec, device="cpu", precision="auto")
    gpu = load_scorer(bundle, spec, device="cuda", precision="auto")
    assert (cpu.device.type, cpu.precision) == ("cpu", "fp32") and (gpu.device.type, gpu.precision) == ("cuda", "bf16")
    batch = rows()
    diff = np.abs(cpu.predict_records(batch) - gpu.predict_records(batch))
    assert diff.max() <= TOLERANCE, f"bf16 moved a score by {diff.max():.4f}"
    for size in (1, 7, 64):  # batch shapes the batcher makes
        np.testing.assert_allclose(gpu.predict_records(batch[:size]), cpu.predict_records(batch[:size]),
                                   atol=TOLERANCE)


def test_endpoint_serves_from_the_gpu(bundle: Path, tmp_path: Path) -> None:
    import httpx

    from serving.realtime import create_app

    s = Settings(home=tmp_path / "home", dataset="tiny", realtime_bundle_dir=bundle, realtime_max_delay_ms=2.0,
                 realtime_log_predictions=False)
    batch = rows()[:100]
    expected = load_scorer(bundle, load_spec("tiny"), device="cpu", precision="auto").predict_records(batch)

    async def main() -> None:
        app = create_app(s)
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://rt") as client:
                ready = (await client.get("/readyz")).json()
                assert ready["device"] == "cuda" and ready["precision"] == "bf16"
                answers = await asyncio.gather(*[client.post("/v1/predict", json=r) for r in batch])
                scores = [a.json()["score"] for a in answers]
                assert [a.json()["entity_key"] for a in answers] == [r["id"] for r in batch]
                np.testing.assert_allclose(scores, expected, atol=TOLERANCE)

    asyncio.run(main())
