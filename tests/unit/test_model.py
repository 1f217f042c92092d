"""The MLP trains reproducibly on CPU, and on CUDA (bf16 autocast) where a GPU is present."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nightshift.model import MLPScorer, fit_mlp, pick_device


class Identity:
    def transform(self, xy):  # type: ignore[no-untyped-def]
        return xy


def data(n: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    num = rng.normal(size=(n, 3)).astype(np.float32)
    cat = rng.integers(0, 5, size=(n, 2)).astype(np.int64)
    logit = 1.5 * num[:, 0] - num[:, 1] + (cat[:, 0] == 3) * 1.0
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.float64)
    return num, cat, y


def auc(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p))


def test_cpu_training_is_seeded_and_learns() -> None:
    num, cat, y = data()
    a = fit_mlp(num, cat, y, [5, 5], max_epochs=6, device="cpu", log=lambda *_: None)
    b = fit_mlp(num, cat, y, [5, 5], max_epochs=6, device="cpu", log=lambda *_: None)
    for k in a.state_dict:
        torch.testing.assert_close(a.state_dict[k], b.state_dict[k])
    p = MLPScorer(Identity(), a.state_dict, a.config, device="cpu").predict_proba((num, cat))
    assert a.device == "cpu" and auc(y, p) > 0.75


def test_asking_for_cuda_without_a_gpu_is_a_clear_error() -> None:
    if torch.cuda.is_available():
        assert pick_device("cuda").type == "cuda"
    else:
        with pytest.raises(RuntimeError, match="no CUDA device"):
            pick_device("cuda")
        assert pick_device("auto").type == "cpu"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU; CPU machines run the CPU path above")
def test_cuda_mixed_precision_matches_cpu_quality() -> None:
    num, cat, y = data()
    gpu = fit_mlp(num, cat, y, [5, 5], max_epochs=6, device="cuda", log=lambda *_: None)
    cpu = fit_mlp(num, cat, y, [5, 5], max_epochs=6, device="cpu", log=lambda *_: None)
    assert gpu.device == "cuda"
    p_gpu = MLPScorer(Identity(), gpu.state_dict, gpu.config, device="cuda").predict_proba((num, cat))
    p_cpu = MLPScorer(Identity(), cpu.state_dict, cpu.config, device="cpu").predict_proba((num, cat))
    assert not np.isnan(p_gpu).any()
    assert abs(auc(y, p_gpu) - auc(y, p_cpu)) < 0.02
