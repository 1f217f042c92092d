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


def plain_pre() -> object:
    from nightshift.features import Preprocessor

    return Preprocessor(numeric=["a", "b", "c"], categorical=["u", "v"],
                        medians={"a": 0.0, "b": 0.0, "c": 0.0}, means={"a": 0.0, "b": 0.0, "c": 0.0},
                        stds={"a": 1.0, "b": 1.0, "c": 1.0}, vocab={"u": list("abcd"), "v": list("abcd")})


@pytest.mark.parametrize("options", [
    {"numeric_embedding": {"kind": "plr", "n_frequencies": 8, "sigma": 0.1, "d": 4}},
    {"category_stats": True},
    {"schedule": "cosine", "min_epochs": 4},
    {"members": 3},
])
def test_options_learn_and_round_trip_through_a_bundle(tmp_path, options) -> None:  # type: ignore[no-untyped-def]
    from nightshift.model import load_bundle, save_bundle

    num, cat, y = data()
    fit = fit_mlp(num, cat, y, [5, 5], max_epochs=6, device="cpu", log=lambda *_: None, **options)
    scorer = MLPScorer(plain_pre(), fit.state_dict, fit.config, device="cpu")
    p = scorer.scores(num, cat)
    assert auc(y, p) > 0.75
    save_bundle(tmp_path / "b", scorer)
    loaded = load_bundle(tmp_path / "b", device="cpu")
    assert isinstance(loaded, MLPScorer)
    np.testing.assert_allclose(loaded.scores(num, cat), p, rtol=1e-5, atol=1e-6)


def test_a_bundle_saved_before_the_options_loads_as_the_plain_mlp(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from nightshift.model import TabularMLP, load_bundle

    torch.manual_seed(0)
    old = TabularMLP(3, [5, 5])
    folder = tmp_path / "old"
    folder.mkdir()
    (folder / "preprocessor.json").write_text(plain_pre().to_json())  # type: ignore[attr-defined]
    torch.save({"config": {"n_numeric": 3, "cardinalities": [5, 5]}, "state_dict": old.state_dict()},
               folder / "mlp.pt")
    loaded = load_bundle(folder, device="cpu")
    assert isinstance(loaded, MLPScorer) and loaded.model.numeric_embedding is None
    num, cat, _ = data(50)
    with torch.inference_mode():
        want = torch.sigmoid(old.eval()(torch.as_tensor(num), torch.as_tensor(cat))).numpy()
    np.testing.assert_allclose(loaded.scores(num, cat), want, rtol=1e-5, atol=1e-6)


def test_an_ensemble_averages_the_logits_of_members_trained_from_consecutive_seeds() -> None:
    from nightshift.model import MLPEnsemble, TabularMLP

    num, cat, y = data()
    quiet = {"max_epochs": 4, "device": "cpu", "log": lambda *_: None}
    ensemble = fit_mlp(num, cat, y, [5, 5], members=3, **quiet)
    singles = [fit_mlp(num, cat, y, [5, 5], seed=13 + k, **quiet) for k in range(3)]
    assert ensemble.config["members"] == 3
    assert ensemble.epochs == sum(s.epochs for s in singles)
    model = MLPEnsemble(ensemble.config)
    model.load_state_dict(ensemble.state_dict)
    xn, xc = torch.as_tensor(num), torch.as_tensor(cat)
    with torch.inference_mode():
        logits = []
        for single in singles:
            net = TabularMLP.from_config(single.config)
            net.load_state_dict(single.state_dict)
            logits.append(net.eval()(xn, xc))
        torch.testing.assert_close(model.eval()(xn, xc), torch.stack(logits).mean(0))
    assert not torch.equal(logits[0], logits[1])  # the members differ
    with pytest.raises(ValueError, match="members must be at least 1"):
        fit_mlp(num, cat, y, [5, 5], members=0, **quiet)
