"""The PyTorch model (category embeddings + periodic embeddings of scaled numerics -> MLP), its seeded training
loop, and the scorers (MLP and the HistGradientBoosting baseline) with the one forward pass every consumer uses."""

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


class PeriodicEmbedding(nn.Module):
    """PLR embeddings of numerics (Gorishniy et al. 2022): x -> [cos 2πcx, sin 2πcx] -> per-feature linear -> ReLU.

    Each numeric gets `n_frequencies` trainable frequencies c ~ N(0, sigma) (the inputs are z-scores), and
    its own linear map of the 2k periodic features to `d` outputs.
    """

    def __init__(self, n_features: int, n_frequencies: int, sigma: float, d: int) -> None:
        super().__init__()
        self.frequencies = nn.Parameter(torch.randn(n_features, n_frequencies) * sigma)
        bound = 1 / math.sqrt(2 * n_frequencies)
        self.weight = nn.Parameter(torch.empty(n_features, 2 * n_frequencies, d).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n_features, d).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = 2 * math.pi * self.frequencies.unsqueeze(0) * x.unsqueeze(-1)  # (batch, features, k)
        v = torch.cat([torch.cos(v), torch.sin(v)], dim=-1)
        return torch.relu(torch.einsum("bfk,fkd->bfd", v, self.weight) + self.bias).flatten(1)


class CategoryStats(nn.Module):
    """Fixed per-code statistics of one categorical, fitted on the training rows: standardised log count
    and smoothed log-odds of the target (frequency- and target-aware handling of many-valued categories)."""

    def __init__(self, cardinality: int) -> None:
        super().__init__()
        self.table: torch.Tensor
        self.register_buffer("table", torch.zeros(cardinality, 2))

    def fit(self, codes: np.ndarray, y: np.ndarray, smoothing: float = 20.0) -> None:
        n = len(self.table)
        count = np.bincount(codes, minlength=n).astype(np.float64)
        pos = np.bincount(codes, weights=y, minlength=n)
        prior = float(y.mean())
        rate = (pos + smoothing * prior) / (count + smoothing)
        logit = np.log(rate / (1 - rate)) - math.log(prior / (1 - prior))
        log_count = np.log1p(count)
        log_count = (log_count - log_count.mean()) / (log_count.std() + 1e-9)
        self.table.copy_(torch.as_tensor(np.stack([log_count, logit], axis=1), dtype=torch.float32))

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return self.table[codes]


class TabularMLP(nn.Module):
    """Embeddings for categorical codes, concatenated with numerics, through a two-layer MLP.

    Options (all off in bundles saved before them, which load as the plain architecture):
    `numeric_embedding` {"kind": "plr", "n_frequencies", "sigma", "d"} embeds the numerics periodically;
    `category_stats` adds each categorical's fitted count and target statistics (CategoryStats).
    """

    def __init__(self, n_numeric: int, cardinalities: list[int], hidden: tuple[int, ...] = (128, 64),
                 dropout: float = 0.1, numeric_embedding: dict[str, Any] | None = None,
                 category_stats: bool = False) -> None:
        super().__init__()
        self.config: dict[str, Any] = {"n_numeric": n_numeric, "cardinalities": list(cardinalities),
                                       "hidden": list(hidden), "dropout": dropout}
        self.embeddings = nn.ModuleList(nn.Embedding(c, embedding_dim(c)) for c in cardinalities)
        width = sum(embedding_dim(c) for c in cardinalities)
        self.numeric_embedding: PeriodicEmbedding | None = None
        if numeric_embedding:
            ne = dict(numeric_embedding)
            if ne.get("kind") != "plr":
                raise ValueError(f"unknown numeric embedding {ne.get('kind')!r}")
            self.numeric_embedding = PeriodicEmbedding(n_numeric, int(ne["n_frequencies"]), float(ne["sigma"]),
                                                       int(ne["d"]))
            self.config["numeric_embedding"] = ne
            width += n_numeric * int(ne["d"])
        else:
            width += n_numeric
        self.category_stats = nn.ModuleList(CategoryStats(c) for c in cardinalities) if category_stats else None
        if category_stats:
            self.config["category_stats"] = True
            width += 2 * len(cardinalities)
        layers: list[nn.Module] = []
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]
            width = h
        layers.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*layers)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> TabularMLP:
        """The architecture a saved config describes (configs from before the options give the plain MLP)."""
        return cls(int(config["n_numeric"]), list(config["cardinalities"]),
                   hidden=tuple(config.get("hidden", (128, 64))), dropout=float(config.get("dropout", 0.1)),
                   numeric_embedding=config.get("numeric_embedding"),
                   category_stats=bool(config.get("category_stats", False)))

    def forward(self, num: torch.Tensor, cat: torch.Tensor) -> torch.Tensor:
        parts = [self.numeric_embedding(num) if self.numeric_embedding is not None else num]
        parts += [emb(cat[:, i]) for i, emb in enumerate(self.embeddings)]
        if self.category_stats is not None:
            parts += [st(cat[:, i]).to(num.dtype) for i, st in enumerate(self.category_stats)]
        return self.mlp(torch.cat(parts, dim=1)).squeeze(1)  # logits


class MLPEnsemble(nn.Module):
    """`members` networks of one architecture, trained from different seeds; the forward pass is the mean of
    their logits (a deep ensemble: on a small dataset one network's early stop on a noisy validation split
    varies by several AUC points from seed to seed, and the mean of three steadies it)."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.config = dict(config)
        member = {k: v for k, v in config.items() if k != "members"}
        self.members = nn.ModuleList(TabularMLP.from_config(member) for _ in range(int(config["members"])))

    def forward(self, num: torch.Tensor, cat: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(num, cat) for m in self.members]).mean(0)


def build_mlp(config: dict[str, Any]) -> TabularMLP | MLPEnsemble:
    """The network a saved config describes: an ensemble when it names more than one member."""
    return MLPEnsemble(config) if int(config.get("members", 1)) > 1 else TabularMLP.from_config(config)


# Periodic embeddings of the numerics, kept after measuring (bench/models_bench.py, two seeds): the median holdout
# AUC gap to the baseline rose by ~0.004 on flights and ~0.008 on mpls_stops; sigma 1.0 was unstable on tiny.
PLR = {"kind": "plr", "n_frequencies": 24, "sigma": 0.1, "d": 8}


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
            log: Any = print, numeric_embedding: dict[str, Any] | None = PLR, category_stats: bool = False,
            schedule: str = "constant", min_epochs: int = 0, weight_decay: float = 1e-4,
            hidden: tuple[int, ...] = (128, 64), dropout: float = 0.1, members: int = 1) -> FitResult:
    """Train with early stopping on the newest rows; mixed precision (bf16) on CUDA.

    The numerics go through PLR embeddings by default (`numeric_embedding=None`: the plain MLP);
    `category_stats` and an LR `schedule` ("cosine", "onecycle") are measured options, off by default.
    `members` > 1 trains that many networks from seeds seed, seed + 1, ..., each with its own early stop
    on the same validation rows, into one MLPEnsemble (epochs and epoch seconds are then all members').

    Rows come in time order, and the newest `val_fraction` of them is the validation split: that is
    what the model will face next (on the flights summer this beat a random split by up to 0.05 AUC,
    bench/val_split.py).
    """
    if members < 1:
        raise ValueError(f"members must be at least 1, got {members}")
    dev = pick_device(device)
    n_val = max(1, int(len(y) * val_fraction))
    val_idx, tr_idx = np.arange(len(y) - n_val, len(y)), np.arange(len(y) - n_val)

    def tensors(idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return (torch.as_tensor(num[idx], device=dev), torch.as_tensor(cat[idx], device=dev),
                torch.as_tensor(y[idx], dtype=torch.float32, device=dev))

    train_rows, val_rows = tensors(tr_idx), tensors(val_idx)
    start = time.perf_counter()
    states, config, epochs, best_epochs, losses, epoch_seconds = [], {}, 0, [], [], []
    for k in range(members):
        if members > 1:
            log(f"member {k + 1}/{members} (seed {seed + k})")
        torch.manual_seed(seed + k)
        model = TabularMLP(int(num.shape[1]), list(cardinalities), hidden=hidden, dropout=dropout,
                           numeric_embedding=numeric_embedding, category_stats=category_stats)
        if model.category_stats is not None:
            for j, stats in enumerate(model.category_stats):
                assert isinstance(stats, CategoryStats)
                stats.fit(cat[tr_idx, j], y[tr_idx])
        config = dict(model.config)
        state, ran, best_epoch, best, seconds = _fit_one(
            model.to(dev), train_rows, val_rows, dev, max_epochs=max_epochs, patience=patience,
            batch_size=batch_size, lr=lr, seed=seed + k, log=log, schedule=schedule, min_epochs=min_epochs,
            weight_decay=weight_decay)
        states.append(state)
        epochs += ran
        best_epochs.append(best_epoch)
        losses.append(best)
        epoch_seconds += seconds
    if members == 1:
        return FitResult(states[0], config, dev.type, epochs, best_epochs[0], losses[0], epoch_seconds,
                         time.perf_counter() - start)
    config["members"] = members
    ensemble = MLPEnsemble(config)
    ensemble.load_state_dict({f"members.{k}.{name}": value for k, state in enumerate(states)
                              for name, value in state.items()})
    ensemble.eval()
    with torch.inference_mode():
        vn, vc, vy = (t.cpu() for t in val_rows)
        val_loss = float(nn.BCEWithLogitsLoss()(ensemble(vn, vc), vy))
    log(f"ensemble of {members}: val log loss {val_loss:.4f} (members' {', '.join(f'{v:.4f}' for v in losses)})")
    return FitResult(ensemble.state_dict(), config, dev.type, epochs, max(best_epochs), val_loss, epoch_seconds,
                     time.perf_counter() - start)


def _fit_one(model: TabularMLP, train_rows: tuple[torch.Tensor, ...], val_rows: tuple[torch.Tensor, ...],
             dev: torch.device, *, max_epochs: int, patience: int, batch_size: int, lr: float, seed: int,
             log: Any, schedule: str, min_epochs: int, weight_decay: float
             ) -> tuple[dict[str, Any], int, int, float, list[float]]:
    """One network's training loop: (best state on CPU, epochs run, best epoch, best val loss, seconds per epoch)."""
    xn, xc, yt = train_rows
    vn, vc, vy = val_rows
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = math.ceil(len(yt) / batch_size)
    sched: Any = None
    if schedule == "cosine":  # one cosine decay over max_epochs, after a one-epoch linear warm-up
        total, warm = max_epochs * steps_per_epoch, steps_per_epoch
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: min(1.0, (k + 1) / warm) * 0.5 * (
            1 + math.cos(math.pi * min(1.0, k / total))))
    elif schedule == "onecycle":
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max_epochs * steps_per_epoch)
    elif schedule != "constant":
        raise ValueError(f"unknown schedule {schedule!r}")
    loss_fn = nn.BCEWithLogitsLoss()
    amp = dev.type == "cuda"
    gen = torch.Generator(device=dev).manual_seed(seed)

    best, best_epoch, best_state, stale = math.inf, 0, None, 0
    epoch_seconds: list[float] = []
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
            if sched is not None:
                sched.step()
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
            if stale >= patience and epoch >= min_epochs:
                log(f"early stop: no improvement for {patience} epochs; best epoch {best_epoch}")
                break
    assert best_state is not None
    return best_state, epoch, best_epoch, best, epoch_seconds


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
        self.model = build_mlp(config)
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


def _config_of(model: TabularMLP | MLPEnsemble) -> dict[str, Any]:
    return dict(model.config)


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
