"""MLflow set-up: the tracking store's one-time creation, the connection to it, the dataset's experiment.

Only `init_tracking` (`nightshift init`) creates or migrates a database-backed tracking store, under
the store's migration lock. Everything else connects through `connect`, which refuses a store that
was never created instead of letting MLflow create it as a side effect of opening it: services and
tasks that start together would otherwise each run MLflow's migrations on the same new database.
"""

from __future__ import annotations

import os
from functools import lru_cache

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from nightshift.settings import Settings
from nightshift.store import StoreNotReady, migration_lock, safe_url, sqlite_path

DB_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")


def _quiet_env() -> None:
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def _is_db(uri: str) -> bool:
    return uri.split(":", 1)[0].split("+", 1)[0] in DB_SCHEMES


@lru_cache(maxsize=16)
def _check_ready(uri: str) -> None:
    """Raise StoreNotReady unless the database at `uri` already holds MLflow's tables (no writes)."""
    from sqlalchemy import create_engine, inspect

    path = sqlite_path(uri)
    if path is not None and not path.exists():
        raise StoreNotReady(f"the MLflow store {path} does not exist: run `nightshift init` first (make up does), "
                            "with the same NIGHTSHIFT_HOME / NIGHTSHIFT_MLFLOW_TRACKING_URI")
    engine = create_engine(uri)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    if not {"alembic_version", "experiments", "registered_models"} <= tables:
        raise StoreNotReady(f"the MLflow store at {safe_url(uri)} has no MLflow tables yet: run "
                            "`nightshift init` first (make up does)")


def init_tracking(settings: Settings, datasets: list[str]) -> None:
    """Create (or migrate) the tracking store once, under the migration lock, and each dataset's experiment."""
    _quiet_env()
    uri = settings.tracking_uri
    if _is_db(uri):
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        with migration_lock(uri):
            SqlAlchemyStore(uri, settings.artifact_root)  # creates the tables, or checks they are at head
        _check_ready.cache_clear()
    client = connect(settings)
    for dataset in datasets:
        ensure_experiment(client, settings, dataset)


def connect(settings: Settings) -> MlflowClient:
    """Point MLflow at the configured store (it must exist: see init_tracking) and return a client."""
    _quiet_env()
    # Bounded calls to a tracking server: a few seconds to fail during an outage, not minutes.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(max(1, round(settings.registry_timeout_s))))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(settings.registry_retries))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    uri = settings.tracking_uri
    if _is_db(uri):
        _check_ready(uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(uri, uri)


def configure(settings: Settings, dataset: str) -> MlflowClient:
    """`connect`, make sure the dataset's experiment exists and is the active one, return a client."""
    client = connect(settings)
    mlflow.set_experiment(experiment_id=ensure_experiment(client, settings, dataset))
    return client


def ensure_experiment(client: MlflowClient, settings: Settings, dataset: str) -> str:
    """The id of the dataset's experiment, created if missing (another process may create it meanwhile)."""
    name = experiment_name(settings, dataset)
    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    # Against a tracking server the server decides (its proxied --artifacts-destination), so that no client needs
    # the server's disk; against a local store, or with NIGHTSHIFT_MLFLOW_ARTIFACT_ROOT set, that root.
    server = settings.tracking_uri.startswith(("http://", "https://"))
    location = None if server and not settings.mlflow_artifact_root else f"{settings.artifact_root}/{dataset}"
    try:
        return str(client.create_experiment(name, artifact_location=location))
    except MlflowException:
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return str(found.experiment_id)


def model_uri(name: str, version: str) -> str:
    """The MLflow URI of a registered version (the one place these URIs are built)."""
    return f"models:/{name}/{version}"


def run_model_uri(run_id: str, artifact: str = "model") -> str:
    """The MLflow URI of a model logged in a run (the baseline is logged, not registered)."""
    return f"runs:/{run_id}/{artifact}"


def experiment_name(settings: Settings, dataset: str) -> str:
    """The MLflow experiment of a dataset."""
    return f"{settings.registry_prefix}{dataset}"
