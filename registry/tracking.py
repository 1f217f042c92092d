"""MLflow set-up: tracking and registry URIs and the dataset's experiment, from settings only."""

from __future__ import annotations

import os

import mlflow
from mlflow import MlflowClient

from nightshift.settings import Settings


def configure(settings: Settings, dataset: str) -> MlflowClient:
    """Point MLflow at the configured store, make sure the dataset's experiment exists, return a client."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    name = experiment_name(settings, dataset)
    if mlflow.get_experiment_by_name(name) is None:
        mlflow.create_experiment(name, artifact_location=f"{settings.artifact_root}/{dataset}")
    mlflow.set_experiment(name)
    return MlflowClient(settings.tracking_uri, settings.tracking_uri)


def experiment_name(settings: Settings, dataset: str) -> str:
    """The MLflow experiment of a dataset."""
    return f"{settings.registry_prefix}{dataset}"
