"""Model packaging: a scorer bundle (preprocessing + weights) logged as an MLflow pyfunc."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.models import infer_signature
from mlflow.pyfunc import PythonModel

from nightshift.model import HGBScorer, MLPScorer, load_bundle, save_bundle
from registry.tracking import model_uri


class NightshiftPyfunc(PythonModel):  # type: ignore[misc]
    """Scores raw rows: the fitted preprocessing travels inside, so any consumer sends raw features."""

    def load_context(self, context: Any) -> None:
        self.scorer = load_bundle(context.artifacts["bundle"])

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> Any:
        return self.scorer.predict_proba(model_input)


# Our pyfunc is pickled by reference to this importable class; MLflow's generic warning about
# pickled objects (and its per-call "validating input example" note) is noise here.
logging.getLogger("mlflow.pyfunc").setLevel(logging.ERROR)


def log_scorer(scorer: MLPScorer | HGBScorer, example: pd.DataFrame, name: str = "model") -> Any:
    """Log the scorer in the active run with signature and input example; returns MLflow's ModelInfo."""
    # The signature keeps the stored column types (MLflow refuses long input for a double column).
    with tempfile.TemporaryDirectory() as tmp:
        bundle = Path(tmp) / "bundle"
        save_bundle(bundle, scorer)
        signature = infer_signature(example, scorer.predict_proba(example))
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=NightshiftPyfunc(),
            artifacts={"bundle": str(bundle)},
            signature=signature,
            input_example=example.head(5),
            # The suite's own environment runs the model: no requirement inference at log time.
            pip_requirements=["nightshift"],
        )


def local_bundle(home: Path, name: str, version: str) -> Path:
    """A local copy of a registered version's scorer bundle (downloaded once per version, atomically)."""
    target = home / "models" / name / f"v{version}"
    if not (target / "bundle").exists():
        staging = target.parent / f".v{version}-{uuid.uuid4().hex}"
        try:
            # models:/ resolves through the registry URI that registry.tracking.configure set.
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri(name, version),
                                                             dst_path=str(staging)))
            found = next(local.rglob("preprocessor.json"), None)
            if found is None:
                raise ValueError(f"{name} v{version} holds no Nightshift scorer bundle (no preprocessor.json)")
            target.mkdir(parents=True, exist_ok=True)
            try:
                os.replace(found.parent, target / "bundle")  # a reader sees no bundle or the whole one
            except OSError:
                # Another process sharing the home (a second replica) put the same version there first:
                # versions are immutable, so its copy is this one.
                if not (target / "bundle" / "preprocessor.json").exists():
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target / "bundle"


def remember_served(home: Path, name: str, alias: str, version: str) -> None:
    """Note on disk which version serves as `alias` (its bundle is in `local_bundle`'s cache): what a
    server started while the registry is down falls back to."""
    path = home / "models" / name / f"{alias}.served"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}-{uuid.uuid4().hex}")
    tmp.write_text(f"{version}\n")
    os.replace(tmp, path)  # a reader sees the old note or the new one


def last_served(home: Path, name: str, alias: str) -> tuple[str, Path] | None:
    """(version, bundle) of the version last noted serving as `alias`, when its bundle is on disk."""
    path = home / "models" / name / f"{alias}.served"
    if not path.exists():
        return None
    version = path.read_text().strip()
    bundle = home / "models" / name / f"v{version}" / "bundle"
    return (version, bundle) if version and bundle.exists() else None
