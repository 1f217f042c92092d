"""The pipeline context: what every step of a run needs, made once per run and passed to each step.

The settings (with the dataset's own values from its spec: Settings.for_dataset), the dataset's
spec, its registered model's name, the MLflow client (set up once) and the SQL store's engine. The
CLI makes one per command; an Airflow task makes one per task process (`Pipeline.of(dataset)`, settings
from the environment). Nothing is opened until a step asks for it.
"""

from __future__ import annotations

from dataclasses import InitVar, dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from nightshift.settings import Settings, get_settings
from nightshift.spec import DatasetSpec

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from sqlalchemy import Engine


@dataclass
class Pipeline:
    """One dataset's pipeline under one set of settings (resolved for the dataset when made)."""

    settings: Settings = field(default_factory=get_settings)
    dataset_name: InitVar[str | None] = None  # None: the configured dataset (NIGHTSHIFT_DATASET)
    spec: DatasetSpec = field(init=False)

    def __post_init__(self, dataset_name: str | None) -> None:
        self.spec = self.settings.spec(dataset_name)
        self.settings = self.settings.for_dataset(self.spec)

    @classmethod
    def of(cls, dataset: str | None = None, settings: Settings | None = None) -> Pipeline:
        """The pipeline of `dataset` (default: the configured one); settings from the environment unless given."""
        return cls(settings or get_settings(), dataset)

    @property
    def dataset(self) -> str:
        return self.spec.name

    @property
    def model_name(self) -> str:
        """The dataset's one registered model."""
        return self.settings.model_name(self.spec.name)

    @cached_property
    def client(self) -> MlflowClient:
        """The MLflow client, with the tracking store and the dataset's experiment set up (once)."""
        from registry.tracking import configure

        return configure(self.settings, self.spec.name)

    @cached_property
    def experiment_id(self) -> str:
        """The id of the dataset's MLflow experiment (runs of this pipeline go there)."""
        from registry.tracking import ensure_experiment

        return ensure_experiment(self.client, self.settings, self.dataset)

    @cached_property
    def engine(self) -> Engine:
        """The SQL store's engine (the store must exist: `nightshift init`)."""
        from nightshift import store

        return store.get_engine(self.settings.store_uri)
