"""The PyTorch model (category embeddings + scaled numerics -> MLP), its seeded training loop, and the
scorers (MLP and the HistGradientBoosting baseline) with the one forward pass every consumer uses."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn


def embedding_dim(cardinality: int) -> int:
    """Embedding width for a categorical feature with this many codes."""
    return int(min(16, max(2, math.ceil(cardinality**0.5) + 1)))


class TabularMLP(nn.Module):
    """Embeddings for categorical codes, concatenated with numerics, through a two-layer MLP."""

    def __init__(self, n_numeric: int, cardinalities: list[int], hidden: tuple[int, ...] = (128, 64),
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.embeddings = nn.ModuleList(nn.Embedding(c, embedding_dim(c)) for c in cardinalities)
        width = n_numeric + sum(embedding_dim(c) for c in cardinalities)
        layers: list[nn.Module] = []
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]
            width = h
        layers.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*layers)

    def forward(self, num: torch.Tensor, cat: torch.Tensor) -> torch.Tensor:
        parts = [num] + [emb(cat[:, i]) for i, emb in enumerate(self.embeddings)]
        return self.mlp(torch.cat(parts, dim=1)).squeeze(1)  # logits


@dataclass
class FitResult:
    """What training produced and how long it took."""

    state_dict: dict[str, Any]
    config: dict[str, Any]
    device: str
    epochs: int
    best_epoch: int
    best_val_loss: float
    epoch_seconds: list[float] = field(default_factory=list)
    train_seconds: float = 0.0


def pick_device(wanted: str = "auto") -> torch.device:
    """CUDA when asked for or available under 'auto', else CPU."""
    if wanted == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for but torch sees no CUDA device")
    if wanted == "cuda" or (wanted == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def fit_mlp(num: np.ndarray, cat: np.ndarray, y: np.ndarray, cardinalities: list[int], *,
            val_fraction: float = 0.1, max_epochs: int = 30, patience: int = 3,
            batch_size: int = 1024, lr: float = 2e-3, seed: int = 13, device: str = "auto",
            log: Any = print) -> FitResult:
    """Train with early stopping on the newest rows; mixed precision (bf16) on CUDA.

    Rows come in time order, and the newest `val_fraction` of them is the validation split: that is
    what the model will face next (on the flights summer this beat a random split by up to 0.05 AUC,
    bench/val_split.py).
    """
    torch.manual_seed(seed)
    dev = pick_device(device)
    n_val = max(1, int(len(y) * val_fraction))
    val_idx, tr_idx = np.arange(len(y) - n_val, len(y)), np.arange(len(y) - n_val)

    def tensors(idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return (torch.as_tensor(num[idx], device=dev), torch.as_tensor(cat[idx], device=dev),
                torch.as_tensor(y[idx], dtype=torch.float32, device=dev))

    xn, xc, yt = tensors(tr_idx)
    vn, vc, vy = tensors(val_idx)
    config: dict[str, Any] = {"n_numeric": int(num.shape[1]), "cardinalities": list(cardinalities)}
    model = TabularMLP(config["n_numeric"], config["cardinalities"]).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    loss_fn = nn.BCEWithLogitsLoss()
    amp = dev.type == "cuda"
    gen = torch.Generator(device=dev).manual_seed(seed)

    best, best_epoch, best_state, stale = math.inf, 0, None, 0
    epoch_seconds: list[float] = []
    start = time.perf_counter()
    epoch = 0
    for epoch in range(1, max_epochs + 1):
        t0 = time.perf_counter()
        model.train()
        perm = torch.randperm(len(yt), device=dev, generator=gen)
        for i in range(0, len(perm), batch_size):
            b = perm[i:i + batch_size]
            with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=amp):
                loss = loss_fn(model(xn[b], xc[b]).float(), yt[b])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        model.eval()
        with torch.inference_mode(), torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=amp):
            val_loss = float(loss_fn(model(vn, vc).float(), vy))
        if dev.type == "cuda":
            torch.cuda.synchronize()
        epoch_seconds.append(time.perf_counter() - t0)
        log(f"epoch {epoch}/{max_epochs}: val log loss {val_loss:.4f} ({epoch_seconds[-1]:.2f}s on {dev.type})")
        if val_loss < best - 1e-4:
            best, best_epoch, stale = val_loss, epoch, 0
            best_state = {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
            if stale >= patience:
                log(f"early stop: no improvement for {patience} epochs; best epoch {best_epoch}")
                break
    assert best_state is not None
    return FitResult(best_state, config, dev.type, epoch, best_epoch, best, epoch_seconds,
                     time.perf_counter() - start)


def resolve_precision(wanted: str, device: str) -> str:
    """The precision a model runs at: always fp32 on CPU; on CUDA `auto` is bf16 (within 0.01 of fp32)."""
    if device != "cuda":
        return "fp32"
    return "bf16" if wanted == "auto" else wanted


class MLPScorer:
    """A fitted preprocessor and MLP: raw rows in, probabilities out; the one forward pass of every consumer.

    Training's holdout, the MLflow pyfunc, Spark's workers and the real-time endpoint (in its own
    process or not) all score through `scores`: frames via `predict_proba`, row dicts via
    `predict_records`. On CUDA the weights can be cast to bf16 or fp16 (`precision`).
    """

    def __init__(self, preprocessor: Any, state_dict: dict[str, Any], config: dict[str, Any],
                 device: str = "cpu", precision: str = "fp32") -> None:
        self.pre = preprocessor
        self.device = pick_device(device)
        self.precision = resolve_precision(precision, self.device.type)
        self.model = TabularMLP(int(config["n_numeric"]), list(config["cardinalities"]))
        self.model.load_state_dict(state_dict)
        self._dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[self.precision]
        self.model.to(self.device, dtype=self._dtype).eval()

    def scores(self, num: np.ndarray, cat: np.ndarray) -> np.ndarray:
        """Probabilities (float32) of transformed rows: the forward pass."""
        with torch.inference_mode():
            x = torch.as_tensor(num, device=self.device).to(self._dtype)
            logits = self.model(x, torch.as_tensor(cat, device=self.device))
            return torch.sigmoid(logits.float()).cpu().numpy()  # type: ignore[no-any-return]

    def predict_proba(self, frame: Any) -> np.ndarray:
        """Probability of the positive class for each raw row of a frame (float64, as MLflow returns it)."""
        return self.scores(*self.pre.transform(frame)).astype(np.float64)

    def predict_records(self, rows: Any) -> np.ndarray:
        """Probabilities (float32) of raw rows given as dicts (the real-time path: no frame per column)."""
        return self.scores(*self.pre.transform_records(rows))


class HGBScorer:
    """The scikit-learn HistGradientBoosting baseline behind the same preprocessor."""

    device = torch.device("cpu")
    precision = "fp32"

    def __init__(self, preprocessor: Any, estimator: Any) -> None:
        self.pre = preprocessor
        self.estimator = estimator

    @staticmethod
    def design(num: np.ndarray, cat: np.ndarray) -> np.ndarray:
        """Feature matrix for the tree model: numerics, then category codes (marked categorical)."""
        return np.hstack([num, cat.astype(np.float32)])

    def scores(self, num: np.ndarray, cat: np.ndarray) -> np.ndarray:
        """Probabilities (float64, as scikit-learn computes them) of transformed rows."""
        return np.asarray(self.estimator.predict_proba(self.design(num, cat))[:, 1], dtype=np.float64)

    def predict_proba(self, frame: Any) -> np.ndarray:
        """Probability of the positive class for each raw row of a frame (float64)."""
        return self.scores(*self.pre.transform(frame))

    def predict_records(self, rows: Any) -> np.ndarray:
        """Probabilities (float32) of raw rows given as dicts."""
        return self.scores(*self.pre.transform_records(rows)).astype(np.float32)


def save_bundle(path: Any, scorer: MLPScorer | HGBScorer) -> None:
    """Write a scorer to a folder: preprocessor JSON plus the model's weights."""
    from pathlib import Path

    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "preprocessor.json").write_text(scorer.pre.to_json())
    if isinstance(scorer, MLPScorer):
        weights = {k: v.detach().float().cpu() for k, v in scorer.model.state_dict().items()}
        torch.save({"config": _config_of(scorer.model), "state_dict": weights}, folder / "mlp.pt")
    else:
        import joblib

        joblib.dump(scorer.estimator, folder / "hgb.joblib")


def _config_of(model: TabularMLP) -> dict[str, Any]:
    first = model.mlp[0]
    assert isinstance(first, nn.Linear)
    embeddings = [e for e in model.embeddings if isinstance(e, nn.Embedding)]
    n_emb = sum(e.embedding_dim for e in embeddings)
    return {"n_numeric": first.in_features - n_emb, "cardinalities": [e.num_embeddings for e in embeddings]}


def load_bundle(path: Any, device: str = "auto", precision: str = "fp32") -> MLPScorer | HGBScorer:
    """Read a scorer written by save_bundle (the MLP lands on CUDA when available under 'auto')."""
    from pathlib import Path

    from nightshift.features import Preprocessor

    folder = Path(path)
    pre = Preprocessor.from_json((folder / "preprocessor.json").read_text())
    if (folder / "mlp.pt").exists():
        saved = torch.load(folder / "mlp.pt", map_location="cpu", weights_only=True)
        return MLPScorer(pre, saved["state_dict"], saved["config"], device=device, precision=precision)
    import joblib

    return HGBScorer(pre, joblib.load(folder / "hgb.joblib"))
