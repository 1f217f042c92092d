"""The one settings object: environment variables (prefix NIGHTSHIFT_) over sane local defaults."""

from __future__ import annotations

from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Literal, get_args

from pydantic import Field, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from nightshift.spec import DatasetSpec, ModelFamily, load_spec

GateMode = Literal["enforce", "dry_run", "override"]
GATE_MODES: tuple[str, ...] = get_args(GateMode)  # the one list of gate modes (settings, gates, DAG params, CLI)


class Settings(BaseSettings):
    """Where things live and how the pipeline behaves; every field is NIGHTSHIFT_<FIELD> in the env."""

    model_config = SettingsConfigDict(env_prefix="NIGHTSHIFT_", extra="ignore")
    _base: Settings | None = PrivateAttr(None)  # the settings `for_dataset` resolved these from

    home: Path = Field(default_factory=lambda: Path.cwd() / ".nightshift")
    dataset: str = "flights"
    # Outside systems. None means "the local default under home" (see the properties below).
    offline_store_dir: Path | None = None
    store_url: str | None = None
    mlflow_tracking_uri: str | None = None
    mlflow_artifact_root: str | None = None
    # Calls to an MLflow tracking server over HTTP: each try's timeout and the retries after it (MLflow's own
    # defaults, 120 s and 7 retries with backoff, held a call for minutes during an outage). The
    # MLFLOW_HTTP_REQUEST_* variables, when set, win.
    registry_timeout_s: float = Field(10.0, gt=0)
    registry_retries: int = Field(2, ge=0, le=10)
    registry_prefix: str = "nightshift-"
    spec_dir: Path | None = None  # extra dataset specs (*.yaml) beside the packaged ones
    # The datasets that get DAGs, comma-separated names; empty: every dataset of the spec folders. A deployment
    # of its own specs names them here to leave the packaged examples (flights, mpls_stops, tiny) unscheduled.
    dag_datasets: str = ""

    # The address the suite's own servers listen on (make up's services, a local Spark driver and its UI):
    # this machine only by default; 0.0.0.0 opens them to the network.
    bind_host: str = "127.0.0.1"

    # The Airflow API the CLI triggers runs through (password from the environment only).
    airflow_url: str = "http://127.0.0.1:8080"
    airflow_user: str = "nightshift"
    airflow_password: str = ""

    # Dataset-dependent settings (each dataset's spec sets its own under `settings:`; set here, in the
    # environment, they override every spec's): see DatasetSettings in nightshift/spec.py and docs/spec.md.
    # The DAGs' first and last data dates; None: unbounded.
    schedule_start: date | None = None
    schedule_end: date | None = None

    # Training.
    train_days: int = Field(56, ge=1)
    holdout_days: int = Field(7, ge=1)
    min_train_days: int = Field(5, ge=1)
    max_epochs: int = Field(30, ge=1)
    patience: int = Field(3, ge=1)
    batch_size: int = Field(1024, ge=8)
    # Networks in the MLP candidate, trained from seeds seed, seed + 1, ... and averaged (a deep ensemble).
    mlp_members: int = Field(1, ge=1, le=16)
    learning_rate: float = Field(2e-3, gt=0)
    seed: int = 13
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # The Airflow queue `train` goes to: on the CeleryExecutor, workers on a GPU node listen on it (ops/cluster.py
    # routes it to `training`); Airflow's default queue otherwise. The LocalExecutor ignores queues.
    training_queue: str = Field("default", min_length=1)
    # The candidate `train` registers: the PyTorch MLP, the HistGradientBoosting model (otherwise the
    # baseline), or the better of the two on the holdout. Both are fitted either way.
    model_family: ModelFamily = "mlp"
    # `nightly` retrains when the champion was trained for a data date this many days back or more
    # (1: every night); 0: only runs with a reason (drift, a person) retrain. A first champion is
    # trained as soon as the training window has enough days.
    retrain_every_days: int = Field(1, ge=0)

    # Gates (the floors are per dataset, in its spec).
    gate_mode: GateMode = "enforce"
    override_reason: str = ""
    regression_tolerance: float = Field(0.01, ge=0)
    slice_regression_tolerance: float = Field(0.03, ge=0)
    baseline_tolerance: float = Field(0.02, ge=0)
    min_slice_rows: int = Field(300, ge=1)
    latency_budget_ms: float = Field(250.0, gt=0)
    smoke_rows: int = Field(256, ge=1)

    # Batch scoring (Spark) and the prediction store.
    spark_master: str = "local[*]"  # or spark://host:7077 for a cluster
    spark_driver_memory: str = "2g"
    score_batch_rows: int = Field(50_000, ge=100)  # rows per Arrow batch between the JVM and Python
    snapshot_retention: int = Field(5, ge=1)  # complete prediction snapshots kept (served one always kept)

    # Drift monitoring (the `drift` DAG); README "Drift" explains the defaults.
    # The champion's training window, each day kept whole, or every day sampled at one share when the
    # window holds more rows than this (judged days are then sampled alike).
    drift_reference_rows: int = Field(100_000, ge=100)
    drift_min_rows: int = Field(100, ge=1)  # a day with fewer rows is not judged
    # Thresholds calibrated per champion (validation/drift_calibration.py): the quantile of each
    # statistic's spread between the reference's own days, so a stationary day alarms on about 1 - q of them.
    drift_quantile: float = Field(0.99, ge=0.5, lt=1)
    # Fixed thresholds, only for a reference of fewer than 7 days (too few to calibrate on):
    drift_feature_share: float = Field(0.1, gt=0, le=1)  # share of drifted features that is data drift
    drift_num_threshold: float = Field(1.0, gt=0)  # normed Wasserstein distance of a numeric feature
    drift_cat_threshold: float = Field(0.2, gt=0, le=1)  # Jensen-Shannon distance of a categorical feature
    drift_prediction_threshold: float = Field(0.5, gt=0)  # normed Wasserstein distance of the scores
    # Performance: served labels pooled back from the label day until each class has this many, then the
    # drop below the holdout AUC counts only when its lower confidence bound (z standard errors) clears
    # drift_auc_drop (severe: drift_severe_auc_drop).
    drift_min_labels: int = Field(200, ge=10)
    drift_auc_z: float = Field(1.645, gt=0)
    drift_auc_drop: float = Field(0.05, gt=0, lt=1)  # served AUC this far below holdout AUC: performance drift
    drift_severe_auc_drop: float = Field(0.10, gt=0, lt=1)  # this far: retrain even in the cooldown
    drift_window_days: int = Field(7, ge=1)  # n: daily windows looked at
    drift_min_windows: int = Field(3, ge=1)  # k: of which this many must have drifted
    drift_cooldown_days: int = Field(7, ge=0)  # data days after a drift retrain with no other
    label_delay_days: int = Field(1, ge=0)  # labels of day D are judged by the drift run of D + this

    # Both services' reads of the prediction store: each is answered or fails (503) within this many seconds.
    store_timeout_s: float = Field(5.0, gt=0, le=300)

    # The lookup API.
    lookup_api_key: SecretStr | None = None  # set it to require the X-API-Key header (all but /healthz)
    lookup_max_keys: int = Field(1000, ge=1)  # most keys one batch lookup may ask for

    # The real-time endpoint (serving/realtime/).
    realtime_device: Literal["auto", "cpu", "cuda"] = "auto"
    # auto: bf16 on CUDA (scores stay within 0.01 of fp32, tests/integration/test_realtime_cuda.py), fp32 on CPU.
    realtime_precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    realtime_max_batch: int = Field(64, ge=1)  # most rows one forward pass takes
    # Longest a row waits for others to fill a batch: 2 ms did best of the delays tried on 2 cores at
    # 64 clients (BENCHMARKS.md, Real-time: the delay curve).
    realtime_max_delay_ms: float = Field(2.0, ge=0, le=1000)
    # Where batches run: "process": each model in its own child process (the event loop keeps only
    # the HTTP work, however slow the model); "loop": on the event loop. BENCHMARKS.md compares them.
    realtime_inference: Literal["process", "loop"] = "process"
    realtime_max_rows: int = Field(1000, ge=1)  # most rows one request may send
    realtime_max_body_bytes: int = Field(1_000_000, ge=1024)  # larger request bodies get a 413, unread
    realtime_max_string_chars: int = Field(200, ge=1)  # longest text value (open-set categorical) in a row
    # PyTorch threads for CPU inference. Batches of a few dozen rows gain nothing from more: the
    # extra threads spin on the cores the event loop and the clients need (1 thread gave more rows/s
    # than PyTorch's default of one per core on 2 cores, measured when this was chosen).
    realtime_cpu_threads: int = Field(1, ge=1)
    realtime_poll_seconds: float = Field(10.0, gt=0)  # how often the endpoint looks for a new champion
    realtime_shadow: bool = False  # score a copy of the traffic with the challenger, off the request path
    realtime_canary_percent: float = Field(0.0, ge=0, le=100)  # share of entity keys the challenger answers
    realtime_log_predictions: bool = True  # write every prediction to the prediction log
    realtime_log_queue: int = Field(200_000, ge=1)  # log rows held in memory before new ones are dropped
    realtime_bundle_dir: Path | None = None  # serve this scorer bundle instead of the registry's champion
    realtime_api_key: SecretStr | None = None  # set it to require the X-API-Key header (all but /healthz)

    @field_validator("lookup_api_key", "realtime_api_key")
    @classmethod
    def _real_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        secret = value.get_secret_value()
        if secret.lower() in {"changeme", "changethis", "secret", "password", "apikey"} or len(secret) < 16:
            raise ValueError("an API key (NIGHTSHIFT_LOOKUP_API_KEY / NIGHTSHIFT_REALTIME_API_KEY) looks like a "
                             "placeholder: use 16+ random characters")
        return value

    @field_validator("home", "offline_store_dir", "spec_dir", "realtime_bundle_dir")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        # Airflow runs tasks from other working directories: relative paths would drift.
        return value.expanduser().resolve() if value is not None else None

    @model_validator(mode="after")
    def _drift_windows(self) -> Settings:
        if self.drift_min_windows > self.drift_window_days:
            raise ValueError(f"NIGHTSHIFT_DRIFT_MIN_WINDOWS ({self.drift_min_windows}) cannot exceed "
                             f"NIGHTSHIFT_DRIFT_WINDOW_DAYS ({self.drift_window_days})")
        if self.drift_severe_auc_drop < self.drift_auc_drop:
            raise ValueError("NIGHTSHIFT_DRIFT_SEVERE_AUC_DROP must be at least NIGHTSHIFT_DRIFT_AUC_DROP")
        return self

    @model_validator(mode="after")
    def _override_needs_reason(self) -> Settings:
        if self.gate_mode == "override" and not self.override_reason.strip():
            raise ValueError("NIGHTSHIFT_GATE_MODE=override needs NIGHTSHIFT_OVERRIDE_REASON (a written reason)")
        return self

    @property
    def offline_dir(self) -> Path:
        """Root of the Parquet offline store."""
        return self.offline_store_dir or self.home / "offline"

    @property
    def store_uri(self) -> str:
        """SQLAlchemy URL of the SQL store (audit, later predictions)."""
        return self.store_url or f"sqlite:///{self.home / 'store.db'}"

    @property
    def tracking_uri(self) -> str:
        """MLflow tracking and registry URI."""
        return self.mlflow_tracking_uri or f"sqlite:///{self.home / 'mlflow.db'}"

    @property
    def artifact_root(self) -> str:
        """Where new MLflow experiments put their artifacts."""
        return self.mlflow_artifact_root or str(self.home / "mlartifacts")

    @property
    def dag_dataset_names(self) -> list[str]:
        """The datasets `dag_datasets` names, in its order; empty: every one."""
        return [name.strip() for name in self.dag_datasets.split(",") if name.strip()]

    def spec(self, dataset: str | None = None) -> DatasetSpec:
        """The dataset spec of `dataset` (default: the configured one)."""
        return load_spec(dataset or self.dataset, str(self.spec_dir) if self.spec_dir else None)

    def for_dataset(self, spec: DatasetSpec) -> Settings:
        """These settings with the spec's values of the dataset-dependent ones, except those set explicitly
        (in the environment or by the caller), which win; validated again as a whole."""
        base = self._base or self  # resolved again for another dataset: from the explicit settings, not ours
        given = spec.settings.model_dump(exclude_none=True)
        update = {k: v for k, v in given.items() if k not in base.model_fields_set}
        merged = Settings.model_validate({**{k: getattr(base, k) for k in type(self).model_fields},
                                          **update, "dataset": spec.name})
        merged._base = base
        return merged

    def schedule_window(self) -> str:
        """The schedule's window in words, e.g. 2013-01-01..2013-12-31 (either end may be open)."""
        return f"{self.schedule_start or 'any date'}..{self.schedule_end or 'open-ended'}"

    def check_scheduled(self, day: date, dag_id: str) -> None:
        """ValueError naming the window when `day` lies outside the dataset's schedule."""
        if (self.schedule_start and day < self.schedule_start) or (self.schedule_end and day > self.schedule_end):
            raise ValueError(f"{day} is outside the schedule of {dag_id}: {self.schedule_window()} (settings "
                             f"schedule_start/schedule_end of the {self.dataset} spec, or NIGHTSHIFT_SCHEDULE_START/"
                             "END); nothing was run")

    def model_name(self, dataset: str) -> str:
        """The one registered model of a dataset."""
        return f"{self.registry_prefix}{dataset}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (tests call get_settings.cache_clear() after changing the env)."""
    return Settings()
