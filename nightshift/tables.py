"""Every table of the SQL store, in one metadata: the one module that owns the store's schema.

`nightshift init` creates them (nightshift/store.py); the modules that read and write them
(store: the alias audit; predstore: prediction snapshots; predlog: the real-time prediction log;
drifthistory: one row of drift figures per day) import them from here.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

alias_audit = Table(
    "alias_audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("model_name", String(200), nullable=False, index=True),
    Column("alias", String(50), nullable=False),
    Column("from_version", String(20)),
    Column("to_version", String(20)),
    Column("actor", String(300), nullable=False),
    Column("reason", Text, nullable=False),
)


prediction_snapshots = Table(
    "prediction_snapshots",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dataset", String(100), nullable=False, index=True),
    Column("run_id", String(250), nullable=False),  # the scoring run; a rerun replaces its snapshot
    Column("model_name", String(200), nullable=False),
    Column("model_version", String(20), nullable=False),
    Column("model_run_id", String(64)),  # the MLflow run that trained the model
    Column("data_start", Date),
    Column("data_end", Date),
    Column("row_count", BigInteger),
    Column("status", String(12), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("scored_at", DateTime(timezone=True)),
    Column("published_at", DateTime(timezone=True)),
    sqlite_autoincrement=True,  # ids are never reused: readers cache snapshot rows by id
)


predictions = Table(
    "predictions",
    metadata,
    Column("snapshot_id", Integer, primary_key=True),
    # Byte-order keys on PostgreSQL: its primary-key build sorts with memcmp and abbreviated keys instead
    # of the locale's strcoll (10M keys: 8 s instead of 12 s); lookups only ever test equality.
    Column("entity_key", Text().with_variant(Text(collation="C"), "postgresql"), primary_key=True),
    Column("score", Float(precision=24), nullable=False),  # REAL: the model computes in float32
    Column("label", Boolean, nullable=False),
    postgresql_partition_by="LIST (snapshot_id)",
    sqlite_with_rowid=False,
)


served_snapshot = Table(
    "served_snapshot",
    metadata,
    Column("dataset", String(100), primary_key=True),
    Column("snapshot_id", Integer, nullable=False),
    Column("switched_at", DateTime(timezone=True), nullable=False),
)


prediction_log = Table(
    "prediction_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False, index=True),
    Column("dataset", String(100), nullable=False),
    Column("request_id", String(40), nullable=False),
    Column("entity_key", String(200)),
    Column("inputs", Text, nullable=False),  # the row's raw features as JSON
    Column("score", Float),
    Column("label", Boolean),
    Column("model_name", String(200)),
    Column("model_version", String(20)),
    Column("role", String(20), nullable=False),
    Column("source", String(20), nullable=False),
    Column("returned", Boolean, nullable=False),  # False for shadow rows: logged, never sent back
    Column("latency_ms", Float),
    sqlite_autoincrement=True,
)


drift_history = Table(
    "drift_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dataset", String(100), nullable=False, index=True),
    Column("data_date", Date, nullable=False),
    Column("run_id", String(250), nullable=False),
    Column("model_name", String(200), nullable=False),
    Column("model_version", String(20), nullable=False),  # the champion the day was judged against
    Column("rows", Integer, nullable=False),
    Column("reference_rows", Integer, nullable=False),
    Column("features", Integer, nullable=False),
    Column("drifted_features", Integer),  # None: too few rows to judge
    Column("drift_share", Float),
    Column("drifted_names", Text),
    Column("data_drift", Boolean),
    Column("prediction_drift_score", Float),
    Column("prediction_drift", Boolean),
    Column("label_date", Date),
    Column("served_model_version", String(20)),
    Column("served_rows", Integer),
    Column("served_auc", Float),
    Column("auc_se", Float),  # the served AUC's standard error: drops within twice it are noise
    Column("holdout_auc", Float),
    Column("auc_drop", Float),
    Column("performance_drift", Boolean),  # None: no labels or nothing served for label_date
    Column("retrain", Boolean, nullable=False),
    Column("cooldown", Boolean, nullable=False),  # drift held, but the cooldown stopped the retrain
    Column("override", Boolean),  # retrained inside a cooldown (severe performance drift)
    Column("reason", Text, nullable=False),
    Column("report_uri", Text),
    Column("triggered_run_id", String(250)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    sqlite_autoincrement=True,
)
