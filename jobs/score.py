"""Score: the champion over the spec's scoring scope with PySpark, into a Parquet output per run.

The champion's bundle (fitted preprocessing + weights) is shipped to the workers with the job and
loaded once per Python worker; workers run the suite's own environment (no environment is restored
and nothing is downloaded at run time). JVM -> Python transfer is Arrow (`mapInArrow`), only the
columns the model reads travel, and the output is (entity_key, score, label).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
import time
import uuid
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from typing import Any

import pyarrow.parquet as pq

from jobs.context import Pipeline
from nightshift import offline
from nightshift.scoring import score_columns
from nightshift.settings import Settings
from nightshift.spec import DatasetSpec


def scope_days(settings: Settings, spec: DatasetSpec, day: date | None) -> list[date]:
    """The ingested days a scoring run covers: all of them (scope `all`) or the data date (`day`)."""
    root = settings.offline_dir / spec.name
    found = sorted(date.fromisoformat(p.name.split("=", 1)[1]) for p in root.glob("date=*")
                   if (p / "part-0.parquet").exists()) if root.exists() else []
    if spec.scoring.scope == "day":
        if day is None:
            raise ValueError(f"{spec.name} scores one day at a time (scoring scope 'day'): give a data date")
        found = [d for d in found if d == day]
    if not found:
        raise ValueError(f"nothing to score: no ingested {spec.name} partitions"
                         + (f" for {day.isoformat()}" if day and spec.scoring.scope == "day" else "")
                         + f" under {root}")
    return found


def champion_bundle(ctx: Pipeline) -> dict[str, Any]:
    """The champion's name, version, run id and a local copy of its bundle (downloaded once per version)."""
    from registry import aliases
    from registry.packaging import local_bundle

    client, name, settings = ctx.client, ctx.model_name, ctx.settings
    version = aliases.alias_version(client, name, aliases.CHAMPION)
    if version is None:
        raise ValueError(f"{name} has no champion yet: run `nightly` (or `nightshift run`) until one is promoted")
    mv = client.get_model_version(name, version)
    bundle = local_bundle(settings.home, name, str(version))
    return {"model_name": name, "model_version": str(version), "model_run_id": mv.run_id,
            "bundle_dir": str(bundle)}


def spark_session(settings: Settings, app_name: str = "nightshift-scoring") -> Any:
    """A Spark session on the configured master, its Python workers on this interpreter."""
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    if settings.spark_master.startswith("local") and settings.bind_host != "0.0.0.0":
        # A local driver (and its UI on 4040) listens on the configured address, not on every interface.
        os.environ.setdefault("SPARK_LOCAL_IP", settings.bind_host)
    return (SparkSession.builder.master(settings.spark_master).appName(app_name)
            .config("spark.pyspark.python", os.environ["PYSPARK_PYTHON"])
            .config("spark.driver.memory", settings.spark_driver_memory)
            .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(settings.score_batch_rows))
            .config("spark.sql.session.timeZone", "UTC")
            # pandas writes event timestamps as TIMESTAMP(NANOS), which Spark refuses by default; the
            # model never reads them, so reading them as long costs nothing.
            .config("spark.sql.legacy.parquet.nanosAsLong", "true")
            .config("spark.ui.showConsoleProgress", "false")
            # One folder per day: listing a year of them in the driver beats a Spark job to list them.
            .config("spark.sql.sources.parallelPartitionDiscovery.threshold", "4096")
            .getOrCreate())


def scored_frame(frame: Any, spec: DatasetSpec, bundle_name: str) -> Any:
    """(entity_key, score, label) of every row: the model in a scalar-iterator Arrow UDF, the label in SQL."""
    from pyspark.sql import functions as F
    from pyspark.sql.functions import ArrowUDFType, arrow_udf

    names = list(spec.raw_inputs)

    def score_udf(batches: Any) -> Any:
        return score_columns(batches, bundle=bundle_name, names=names)

    with warnings.catch_warnings():  # the UDF type is given explicitly, so pyspark needs no type hints
        warnings.simplefilter("ignore", UserWarning)
        udf = arrow_udf(score_udf, "float", ArrowUDFType.SCALAR_ITER)
    return (frame.select(F.col(spec.entity_key).cast("string").alias("entity_key"), udf(*names).alias("score"))
            .withColumn("label", F.col("score") >= F.lit(spec.target.threshold)))


def run_slug(run_id: str) -> str:
    """A folder-safe name for a run id."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", run_id)[:150]


def score(ctx: Pipeline, day: date | None, *, run_id: str, log: Callable[[str], Any] = print,
          spark: Any = None) -> dict[str, Any]:
    """Score the scope with the champion; returns a reference to the scored Parquet and its provenance."""
    settings, spec = ctx.settings, ctx.spec
    days = scope_days(settings, spec, day)
    own_session = spark is None
    with ThreadPoolExecutor(1, thread_name_prefix="spark-start") as pool:
        # The JVM starts (seconds) while the champion is resolved in the registry (seconds).
        starting = pool.submit(spark_session, settings) if own_session else None
        try:
            model = champion_bundle(ctx)
        except BaseException:
            if starting is not None:
                with contextlib.suppress(Exception):  # the registry's error is the one to report
                    starting.result().stop()
            raise
        spark = starting.result() if starting is not None else spark
    log(f"scoring {spec.name} {days[0]}..{days[-1]} ({len(days)} partitions) with "
        f"{model['model_name']} v{model['model_version']} on {settings.spark_master}")
    out = settings.home / "scores" / spec.name / run_slug(run_id)
    staging = out.parent / f".staging-{out.name}-{uuid.uuid4().hex}"
    started = time.perf_counter()
    scored_at = datetime.now(UTC)
    try:
        # Shipped as an archive (clusters take no directories); workers see it unpacked under this name.
        bundle_name = f"bundle-{model['model_name']}-v{model['model_version']}.zip"
        archive = settings.home / "models" / "ship" / bundle_name
        if not archive.exists():
            archive.parent.mkdir(parents=True, exist_ok=True)
            tmp = shutil.make_archive(str(archive.with_suffix(f".{uuid.uuid4().hex}")), "zip", model["bundle_dir"])
            os.replace(tmp, archive)
        spark.sparkContext.addArchive(str(archive))
        # The whole dataset folder when scoring it all: the same plan read 365 day folders given one by
        # one at half the rate, measured when this was chosen.
        source = ([str(settings.offline_dir / spec.name)] if spec.scoring.scope == "all" else
                  [str(offline.partition_dir(settings.offline_dir, spec.name, d)) for d in days])
        columns = list(dict.fromkeys([spec.entity_key, *spec.raw_inputs]))
        scored = scored_frame(spark.read.parquet(*source).select(*columns), spec, bundle_name)
        scored.write.mode("overwrite").parquet(str(staging))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)  # a failed run leaves the previous output as it was
        raise
    finally:
        if own_session:
            spark.stop()
    rows = sum(pq.ParquetFile(f).metadata.num_rows for f in staging.glob("*.parquet"))
    old = out.parent / f".old-{out.name}-{uuid.uuid4().hex}"
    if out.exists():
        os.replace(out, old)
    os.replace(staging, out)
    shutil.rmtree(old, ignore_errors=True)
    seconds = time.perf_counter() - started
    log(f"scored {rows:,} rows in {seconds:.1f}s ({rows / max(seconds, 1e-9):,.0f} rows/s) -> {out}")
    return {**{k: v for k, v in model.items() if k != "bundle_dir"}, "run_id": run_id, "dataset": spec.name,
            "scored_path": str(out), "rows": int(rows), "data_start": days[0].isoformat(),
            "data_end": days[-1].isoformat(), "scored_at": scored_at.isoformat(), "seconds": round(seconds, 2)}
