
"""Batch scoring and publishing at scale: the flights data grown to N rows, measured in one run.

    .venv/bin/python bench/scoring_bench.py --home $HOME_DIR --rows 10000000

Stages (all on the same scaled Parquet and the same champion, one process, one machine):
* inprocess        the model and transform in one Python process over the Parquet (the limit)
* spark_transfer   the Spark job with the model replaced by a pass-through (the JVM<->Python ceiling)
* spark_map_in_arrow / spark_map_in_pandas / spark_predict_batch_udf   the scoring job variants
* publish_pg       jobs.publish into a fresh PostgreSQL store vs `psql \\copy` of the same rows
* spark_udf_jdbc   what most users would write: mlflow.pyfunc.spark_udf + Spark's JDBC writer
                   (then, timed apart, the primary key a lookup needs on the table it wrote)
* floor            no framework at all: scored in this process and streamed straight into the store
                   (the COPY overlaps the scoring), key built, switched: the least this machine needs
Both paths as users run them, each a fresh process (`nightshift score`, the floor and the spark_udf +
JDBC script), are timed by bench/score_cold_bench.py, which uses this file's pieces.
Every stage also reports the core-seconds the whole machine was busy during it (PostgreSQL and the
JVM included), from /proc/stat. The JDBC stage needs the PostgreSQL JDBC driver
(Debian: `apt-get install libpostgresql-jdbc-java`). Writes bench/results/scoring.json.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from jobs.context import Pipeline

OUTPUT_SCHEMA = pa.schema([("entity_key", pa.string()), ("score", pa.float32()), ("label", pa.bool_())])


def score_batch(scorer: Any, batch: pa.RecordBatch | pa.Table, *, key: str, threshold: float) -> pa.RecordBatch:
    """(entity_key, score, label) for every row of an Arrow batch of raw inputs."""
    frame = batch.drop_columns([key]).to_pandas()  # the key never goes through pandas (10M strings: seconds)
    proba = np.asarray(scorer.predict_proba(frame), dtype=np.float32)
    keys = batch.column(key)
    if isinstance(keys, pa.ChunkedArray):
        keys = keys.combine_chunks()
    return pa.record_batch([keys.cast(pa.string()), pa.array(proba, pa.float32()), pa.array(proba >= threshold)],
                           schema=OUTPUT_SCHEMA)


ROOT = Path(__file__).resolve().parents[1]
PG = "postgresql+psycopg2://postgres@127.0.0.1:5432"
JDBC_JAR = "/usr/share/java/postgresql.jar"  # Debian's libpostgresql-jdbc-java


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def setup_env(home: Path, offline: Path | None = None) -> Any:
    os.environ.update({"NIGHTSHIFT_HOME": str(home), "NIGHTSHIFT_DATASET": "flights", "GIT_PYTHON_REFRESH": "quiet",
                       "MLFLOW_DISABLE_TELEMETRY": "true", "GX_ANALYTICS_ENABLED": "false",
                       "PYSPARK_PYTHON": sys.executable})
    if offline:
        os.environ["NIGHTSHIFT_OFFLINE_STORE_DIR"] = str(offline)
    from nightshift.settings import get_settings

    get_settings.cache_clear()
    return get_settings()


def ensure_champion(home: Path) -> None:
    """Ingest 2013 and run the nightly steps for 2013-06-30 unless a champion exists."""
    settings = setup_env(home)
    from jobs.score import champion_bundle
    from nightshift.store import StoreNotReady

    try:
        champion_bundle(Pipeline(settings))
        return
    except (ValueError, StoreNotReady):
        pass
    env = {**os.environ}
    cli = [sys.executable, "-m", "ops.cli"]
    subprocess.run([*cli, "init"], env=env, check=True)
    subprocess.run([*cli, "ingest", "2013-01-01", "--end", "2013-12-31"], env=env, check=True)
    subprocess.run([*cli, "run", "2013-06-30"], env=env, check=True)


def scale(settings: Any, rows: int, target: Path) -> int:
    """The flights partitions replicated with new entity keys (key~NN) up to `rows` rows, same days."""
    marker = target / f".rows-{rows}"
    if marker.exists():
        return rows
    shutil.rmtree(target, ignore_errors=True)
    source = sorted((settings.offline_dir / "flights").glob("date=*"))
    base = sum(pq.ParquetFile(p / "part-0.parquet").metadata.num_rows for p in source)
    copies = -(-rows // base)
    written = 0
    key = settings.spec().entity_key
    for i, part in enumerate(source):
        table = pq.read_table(part / "part-0.parquet")
        want = rows * (i + 1) // len(source) - written  # spread the rows evenly over the days
        reps = []
        for r in range(max(copies, -(-want // max(table.num_rows, 1)))):
            keys = pa.compute.binary_join_element_wise(table.column(key), pa.scalar(f"{r:02d}"), "~")
            reps.append(table.set_column(table.schema.get_field_index(key), key, keys))
        grown = pa.concat_tables(reps).slice(0, want)
        out = target / "flights" / part.name
        out.mkdir(parents=True, exist_ok=True)
        pq.write_table(grown, out / "part-0.parquet")
        written += grown.num_rows
    marker.touch()
    return written


def busy_core_seconds() -> float:
    """Core-seconds every CPU of the machine spent busy since boot (/proc/stat), all processes counted."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait


def with_cpu(fn: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """fn's result dict with `busy_core_seconds` added: what the whole machine spent while it ran."""
    before = busy_core_seconds()
    result = fn(*args, **kwargs)
    return {**result, "busy_core_seconds": round(busy_core_seconds() - before, 1)}


def parquet_rows(path: Path) -> int:
    return sum(pq.ParquetFile(f).metadata.num_rows for f in path.rglob("*.parquet"))


def inprocess(settings: Any, bundle_dir: str, out: Path) -> dict[str, Any]:
    """Model and transform in one Python process over the same Parquet (all cores for torch)."""
    from nightshift.scoring import cached_scorer

    spec = settings.spec()
    scorer = cached_scorer(bundle_dir, threads=os.cpu_count())
    columns = list(dict.fromkeys([spec.entity_key, *spec.raw_inputs]))
    data = pads.dataset(str(settings.offline_dir / "flights"), format="parquet", partitioning="hive")
    t0 = time.perf_counter()
    rows = 0
    with pq.ParquetWriter(out, OUTPUT_SCHEMA) as writer:
        for batch in data.to_batches(columns=columns, batch_size=settings.score_batch_rows):
            writer.write_batch(score_batch(scorer, batch, key=spec.entity_key, threshold=spec.target.threshold))
            rows += batch.num_rows
    seconds = time.perf_counter() - t0
    return {"rows": rows, "seconds": round(seconds, 2), "rows_per_s": round(rows / seconds)}


def floor(settings: Any, model: dict[str, Any], url: str | None = None) -> dict[str, Any]:
    """No framework: each batch scored in this process goes straight to the store's COPY streams, which
    run while the next batch is scored; then the primary key, the attach and the switch (into `url`, or a
    new database)."""
    from nightshift import predstore, store
    from nightshift.scoring import cached_scorer

    spec = settings.spec()
    engine = store.get_engine(url or new_pg_db("nsbench_floor"))
    scorer = cached_scorer(model["bundle_dir"], threads=os.cpu_count())  # as the in-process stage (cached)
    columns = list(dict.fromkeys([spec.entity_key, *spec.raw_inputs]))
    data = pads.dataset(str(settings.offline_dir / "flights"), format="parquet", partitioning="hive")
    t0 = time.perf_counter()
    sid = predstore.begin_snapshot(engine, dataset="flights", run_id="floor", model_name=model["model_name"],
                                   model_version=model["model_version"], model_run_id=None, data_start=None,
                                   data_end=None)
    scored = (score_batch(scorer, b, key=spec.entity_key, threshold=spec.target.threshold)
              for b in data.to_batches(columns=columns, batch_size=settings.score_batch_rows))
    rows = predstore.write_rows(engine, sid, scored)
    predstore.publish(engine, sid, actor="bench", reason="floor", retention=1)
    seconds = time.perf_counter() - t0
    engine.dispose()
    store.get_engine.cache_clear()
    return {"rows": rows, "seconds": round(seconds, 2), "rows_per_s": round(rows / seconds)}


SPARK_OUTPUT_SCHEMA = "entity_key string, score float, label boolean"


def score_batches(batches: Any, *, bundle: str, key: str, threshold: float) -> Any:
    """mapInArrow body: the key travels to Python and back with the score."""
    from pyspark import SparkFiles

    from nightshift.scoring import cached_scorer

    scorer = cached_scorer(SparkFiles.get(bundle))
    for batch in batches:
        yield score_batch(scorer, batch, key=key, threshold=threshold)


def _passthrough(batches: Any) -> Any:
    for batch in batches:
        n = batch.num_rows
        yield pa.record_batch([batch.column(0), pa.array(np.zeros(n, np.float32)), pa.array(np.zeros(n, bool))],
                              names=["entity_key", "score", "label"])


def spark_variant(spark: Any, settings: Any, variant: str, bundle_name: str, out: Path,
                  source: str | None = None) -> dict[str, Any]:
    """One Spark job over the scaled Parquet (or `source`): read, score (or pass through), write Parquet."""
    from pyspark.sql import functions as F

    spec = settings.spec()
    key, threshold = spec.entity_key, spec.target.threshold
    columns = list(dict.fromkeys([key, *spec.raw_inputs]))
    frame = spark.read.parquet(source or str(settings.offline_dir / "flights")).select(*columns)
    t0 = time.perf_counter()
    if variant == "transfer":
        scored = frame.mapInArrow(_passthrough, SPARK_OUTPUT_SCHEMA)
    elif variant == "map_in_arrow":
        scored = frame.mapInArrow(lambda b: score_batches(b, bundle=bundle_name, key=key, threshold=threshold),
                                  SPARK_OUTPUT_SCHEMA)
    elif variant == "arrow_udf":  # what jobs.score runs
        from jobs.score import scored_frame

        scored = scored_frame(frame, spec, bundle_name)
    elif variant == "arrow_udf_transfer":
        from collections.abc import Iterator

        from pyspark.sql.functions import ArrowUDFType, arrow_udf

        names = columns[1:]

        def fn(it: Iterator[tuple[pa.Array, ...]]) -> Iterator[pa.Array]:
            for cols in it:
                yield pa.array(np.zeros(len(cols[0]), np.float32))
        fn.__annotations__ = {}  # string hints (future annotations) confuse pyspark: the type is given
        udf = arrow_udf(fn, "float", ArrowUDFType.SCALAR_ITER)
        scored = (frame.select(F.col(key).alias("entity_key"), udf(*names).alias("score"))
                  .withColumn("label", F.col("score") >= threshold))
    elif variant == "map_in_pandas":
        def pandas_fn(frames: Any) -> Any:
            from pyspark import SparkFiles

            from nightshift.scoring import cached_scorer

            scorer = cached_scorer(SparkFiles.get(bundle_name))
            for pdf in frames:
                p = scorer.predict_proba(pdf).astype("float32")
                yield pdf[[key]].rename(columns={key: "entity_key"}).assign(score=p, label=p >= threshold)

        scored = frame.mapInPandas(pandas_fn, SPARK_OUTPUT_SCHEMA)
    elif variant == "predict_batch_udf":
        from pyspark.ml.functions import predict_batch_udf

        names = columns[1:]

        def make_predict_fn() -> Any:
            import pandas as pd
            from pyspark import SparkFiles

            from nightshift.scoring import cached_scorer

            scorer = cached_scorer(SparkFiles.get(bundle_name))

            def predict(*cols: np.ndarray) -> np.ndarray:
                return scorer.predict_proba(pd.DataFrame(dict(zip(names, cols, strict=True)))).astype(np.float32)

            # predict_batch_udf counts the function's parameters to hand over one array per column.
            predict.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
                [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in names])
            return predict

        from pyspark.sql.types import FloatType

        udf = predict_batch_udf(make_predict_fn, return_type=FloatType(), batch_size=settings.score_batch_rows)
        scored = (frame.withColumn("score", udf(*names)).select(F.col(key).alias("entity_key"), "score")
                  .withColumn("label", F.col("score") >= threshold))
    else:
        raise ValueError(variant)
    scored.write.mode("overwrite").parquet(str(out))
    seconds = time.perf_counter() - t0
    rows = parquet_rows(out)
    return {"rows": rows, "seconds": round(seconds, 2), "rows_per_s": round(rows / seconds)}


def new_pg_db(name: str, *, store: bool = True) -> str:
    """A new PostgreSQL database; with `store`, holding an initialised SQL store (as `nightshift init` makes)."""
    from sqlalchemy import create_engine, text

    from nightshift import store as sql_store

    admin = create_engine(f"{PG}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    if store:
        sql_store.init_store(f"{PG}/{name}")
    return f"{PG}/{name}"


def publish_vs_copy(settings: Any, scored: dict[str, Any], work: Path) -> dict[str, Any]:
    """jobs.publish into PostgreSQL vs psql \\copy of the same rows into a table of the same schema."""
    import pyarrow.csv as pacsv

    from jobs.publish import publish
    from nightshift import store

    url = new_pg_db("nsbench_store")
    os.environ["NIGHTSHIFT_STORE_URL"] = url
    from nightshift.settings import get_settings

    get_settings.cache_clear()
    store.get_engine.cache_clear()
    busy = busy_core_seconds()
    ours = publish(Pipeline(get_settings()), scored, actor="bench", log=log)
    busy = busy_core_seconds() - busy
    csv_path = work / "scored.csv"
    with pacsv.CSVWriter(csv_path, pa.schema([("entity_key", pa.string()), ("score", pa.float32()),
                                               ("label", pa.bool_())]),
                         write_options=pacsv.WriteOptions(include_header=False)) as writer:
        for batch in pads.dataset(scored["scored_path"]).to_batches(batch_size=500_000):
            writer.write_batch(batch)
    psql = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "nsbench_store", "-q", "-c"]
    # The same schema as the store's predictions: columns, types and the primary key.
    subprocess.run([*psql, "DROP TABLE IF EXISTS copy_baseline; CREATE TABLE copy_baseline "
                    "(LIKE predictions INCLUDING ALL); ALTER TABLE copy_baseline ALTER snapshot_id SET DEFAULT 1"],
                   check=True)
    t0 = time.perf_counter()
    subprocess.run([*psql, f"\\copy copy_baseline (entity_key, score, label) from '{csv_path}' csv"], check=True)
    copy_seconds = time.perf_counter() - t0
    csv_path.unlink()
    rows = ours["rows"]
    return {"rows": rows, "publish_seconds": ours["seconds"], "publish_rows_per_s": round(rows / ours["seconds"]),
            "publish_busy_core_seconds": round(busy, 1),
            "psql_copy_seconds": round(copy_seconds, 2), "psql_copy_rows_per_s": round(rows / copy_seconds),
            "note": "publish = COPY over 2 connections into the snapshot's own table, primary key built once, "
                    "attach as partition, pointer switch; the \\copy baseline loads a table of the same columns "
                    "and primary key (LIKE predictions INCLUDING ALL)"}


def spark_udf_jdbc(spark: Any, settings: Any, model_uri: str, *, key: bool = True) -> dict[str, Any]:
    """The path most users would write: mlflow.pyfunc.spark_udf, then Spark's JDBC writer to PostgreSQL."""
    import mlflow
    from pyspark.sql import functions as F

    spec = settings.spec()
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    new_pg_db("nsbench_jdbc", store=False)
    frame = spark.read.parquet(str(settings.offline_dir / "flights"))
    busy = busy_core_seconds()
    t0 = time.perf_counter()
    udf = mlflow.pyfunc.spark_udf(spark, model_uri, env_manager="local", result_type="double")
    inputs = list(spec.raw_inputs)
    scored = (frame.withColumn("score", udf(F.struct(*inputs)))
              .select(F.col(spec.entity_key).alias("entity_key"), F.col("score").cast("float").alias("score"),
                      (F.col("score") >= spec.target.threshold).alias("label")))
    scored.write.jdbc("jdbc:postgresql://127.0.0.1:5432/nsbench_jdbc", "predictions", mode="overwrite",
                      properties={"user": "postgres", "driver": "org.postgresql.Driver"})
    seconds = time.perf_counter() - t0
    busy = busy_core_seconds() - busy
    rows = frame.count()
    result = {"rows": rows, "seconds": round(seconds, 2), "rows_per_s": round(rows / seconds),
              "busy_core_seconds": round(busy, 1)}
    if key:  # what the lookup API would need on that table before it could serve it; not in `seconds`
        t1 = time.perf_counter()
        subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "nsbench_jdbc", "-q", "-c",
                        "ALTER TABLE predictions ADD PRIMARY KEY (entity_key)"], check=True)
        result["primary_key_seconds"] = round(time.perf_counter() - t1, 2)
    return result


def baseline_child(home: Path, rows: int) -> None:
    """The spark_udf + JDBC path alone, as a user's script runs it: its own process and Spark session."""
    settings = setup_env(home, home / f"scaled-{rows}")
    from jobs.score import champion_bundle, spark_session

    model = champion_bundle(Pipeline(settings))
    os.environ["PYSPARK_SUBMIT_ARGS"] = f"--jars {JDBC_JAR} pyspark-shell"
    spark = spark_session(settings, "spark-udf-jdbc")
    spark_udf_jdbc(spark, settings, f"models:/{model['model_name']}/{model['model_version']}", key=False)
    spark.stop()


def timed_process(cmd: list[str], env: dict[str, str]) -> dict[str, float]:
    """Wall time from launch to exit of a fresh process, and the machine's busy core-seconds meanwhile."""
    busy, t0 = busy_core_seconds(), time.perf_counter()
    done = subprocess.run(cmd, env={**env, "COLUMNS": "250"}, capture_output=True, text=True)
    seconds, busy = time.perf_counter() - t0, busy_core_seconds() - busy
    if done.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    out = {"seconds": round(seconds, 2), "busy_core_seconds": round(busy, 1)}
    # `nightshift score` logs its two phases; the rest is start-up (imports, champion, Spark session).
    phases = {"score_seconds": re.search(r"scored [\d,]+ rows in ([\d.]+)s", done.stdout),
              "publish_seconds": re.search(r"served: [\d,]+ rows in ([\d.]+)s", done.stdout)}
    if all(phases.values()):
        out.update({k: float(m.group(1)) for k, m in phases.items() if m})
        out["startup_seconds"] = round(seconds - out["score_seconds"] - out["publish_seconds"], 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", type=Path, default=ROOT / ".bench" / "scoring")
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--stages", default="inprocess,transfer,arrow_udf_transfer,map_in_arrow,map_in_pandas,"
                                        "predict_batch_udf,arrow_udf,publish_pg,spark_udf_jdbc,floor")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "scoring.json")
    ap.add_argument("--baseline-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.baseline_child:
        baseline_child(args.home.resolve(), args.rows)
        return
    stages = args.stages.split(",")
    if "spark_udf_jdbc" in stages and not Path(JDBC_JAR).exists():
        sys.exit(f"the spark_udf_jdbc stage needs the PostgreSQL JDBC driver at {JDBC_JAR} "
                 "(Debian: apt-get install libpostgresql-jdbc-java); or leave the stage out with --stages")
    home = args.home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    ensure_champion(home)
    base = setup_env(home)
    scaled_dir = home / f"scaled-{args.rows}"
    log(f"scaling flights to {args.rows:,} rows under {scaled_dir}")
    scale(base, args.rows, scaled_dir)
    settings = setup_env(home, scaled_dir)
    from jobs.score import champion_bundle, spark_session

    model = champion_bundle(Pipeline(settings))
    work = home / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    results: dict[str, Any] = {"rows": args.rows, "model": f"{model['model_name']} v{model['model_version']}",
                               "command": "python " + " ".join([f"bench/{Path(__file__).name}", *sys.argv[1:]]).replace(
                                   str(args.home), "$HOME_DIR"),
                               "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                           "python": platform.python_version()},
                               "date": date.today().isoformat(), "settings": {
                                   "spark_master": settings.spark_master, "score_batch_rows": settings.score_batch_rows,
                                   "spark_driver_memory": settings.spark_driver_memory}}
    if "inprocess" in stages:
        log("in-process scoring")
        results["inprocess"] = with_cpu(inprocess, settings, model["bundle_dir"], work / "inprocess.parquet")
        log(str(results["inprocess"]))
    spark = None
    spark_stages = [s for s in stages if s not in ("inprocess", "publish_pg", "floor")]
    if spark_stages or "publish_pg" in stages:
        if "spark_udf_jdbc" in stages:
            os.environ["PYSPARK_SUBMIT_ARGS"] = f"--jars {JDBC_JAR} pyspark-shell"
        spark = spark_session(settings, "nightshift-bench")
        bundle_name = f"bundle-{model['model_name']}-v{model['model_version']}.zip"
        archive = shutil.make_archive(str(home / "ship" / bundle_name[:-4]), "zip", model["bundle_dir"])
        spark.sparkContext.addArchive(archive)
        # Warm-up, not measured: JIT-compiles the JVM paths and starts the Python workers with the model.
        first_days = str(sorted((settings.offline_dir / "flights").glob("date=*"))[0])
        for variant in ("map_in_arrow", "arrow_udf"):
            spark_variant(spark, settings, variant, bundle_name, work / "warmup", source=first_days)
        for variant in ("transfer", "arrow_udf_transfer", "map_in_arrow", "map_in_pandas", "predict_batch_udf",
                        "arrow_udf"):
            if variant in stages:
                log(f"spark {variant}")
                try:
                    results[f"spark_{variant}"] = with_cpu(spark_variant, spark, settings, variant, bundle_name,
                                                                work / f"spark-{variant}")
                except Exception as exc:  # noqa: BLE001  (recorded; the other stages still run)
                    results[f"spark_{variant}"] = {"error": str(exc).strip().splitlines()[-1][:300]}
                log(str(results[f"spark_{variant}"]))
    if "score_rounds" in stages and spark is not None:
        # Alternating rounds of the limit and the scoring task: this VM's speed drifts within minutes.
        from jobs.score import score

        rounds = []
        for r in range(3):
            one = inprocess(settings, model["bundle_dir"], work / "inprocess.parquet")
            job = score(Pipeline(settings), None, run_id=f"round-{r}", log=log, spark=spark)
            rounds.append({"inprocess_rows_per_s": one["rows_per_s"],
                           "score_job_rows_per_s": round(job["rows"] / job["seconds"]),
                           "ratio": round(job["rows"] / job["seconds"] / one["rows_per_s"], 3)})
            log(str(rounds[-1]))
        results["score_rounds"] = rounds
        results["score_rounds_median_ratio"] = float(np.median([x["ratio"] for x in rounds]))
    if "publish_pg" in stages:
        from jobs.score import score

        log("the scoring job (jobs.score) then publish into PostgreSQL vs psql \\copy")
        busy = busy_core_seconds()
        scored = score(Pipeline(settings), None, run_id="bench", log=log, spark=spark)
        results["score_job"] = {"rows": scored["rows"], "seconds": scored["seconds"],
                                "rows_per_s": round(scored["rows"] / scored["seconds"]),
                                "busy_core_seconds": round(busy_core_seconds() - busy, 1)}
        results["publish_pg"] = publish_vs_copy(settings, scored, work)
        log(str(results["publish_pg"]))
        end_to_end = scored["seconds"] + results["publish_pg"]["publish_seconds"]
        results["end_to_end"] = {"seconds": round(end_to_end, 2), "rows_per_s": round(scored["rows"] / end_to_end),
                                 "busy_core_seconds": round(results["score_job"]["busy_core_seconds"]
                                                            + results["publish_pg"]["publish_busy_core_seconds"], 1)}
    if "spark_udf_jdbc" in stages and spark is not None:
        log("mlflow spark_udf + JDBC writer")
        uri = f"models:/{model['model_name']}/{model['model_version']}"
        results["spark_udf_jdbc"] = spark_udf_jdbc(spark, settings, uri)
        log(str(results["spark_udf_jdbc"]))
    if spark is not None:
        spark.stop()
    if "floor" in stages:
        log("no framework: scored in this process, streamed into the store")
        results["floor"] = with_cpu(floor, settings, model)
        log(str(results["floor"]))
    ratios: dict[str, Any] = {}
    if "inprocess" in results:
        inproc = results["inprocess"]["rows_per_s"]
        for k in ("spark_map_in_arrow", "spark_map_in_pandas", "spark_predict_batch_udf", "spark_arrow_udf",
                  "score_job"):
            if "rows_per_s" in results.get(k, {}):
                ratios[f"{k}_vs_inprocess"] = round(results[k]["rows_per_s"] / inproc, 3)
        if "score_job_vs_inprocess" in ratios:  # the headline: what the scoring DAG runs
            ratios["scoring_ratio_vs_inprocess"] = ratios["score_job_vs_inprocess"]
        for k in ("spark_transfer", "spark_arrow_udf_transfer"):
            if "rows_per_s" in results.get(k, {}):
                ratios[f"{k}_ceiling_vs_inprocess"] = round(results[k]["rows_per_s"] / inproc, 3)
    if "publish_pg" in results:
        p = results["publish_pg"]
        ratios["publish_ratio_vs_copy"] = round(p["publish_rows_per_s"] / p["psql_copy_rows_per_s"], 3)
    if "end_to_end" in results and "spark_udf_jdbc" in results:
        ratios["speedup_vs_spark_udf_jdbc_in_one_warm_session"] = round(
            results["end_to_end"]["rows_per_s"] / results["spark_udf_jdbc"]["rows_per_s"], 2)
        base = results["spark_udf_jdbc"]
        if "primary_key_seconds" in base:  # the baseline's table made servable (keyed) too
            ratios["speedup_vs_spark_udf_jdbc_keyed_in_one_warm_session"] = round(
                (base["seconds"] + base["primary_key_seconds"]) / results["end_to_end"]["seconds"], 2)
    if "floor" in results and "spark_udf_jdbc" in results:
        ratios["floor_speedup_vs_spark_udf_jdbc"] = round(
            results["floor"]["rows_per_s"] / results["spark_udf_jdbc"]["rows_per_s"], 2)
    results["ratios"] = ratios
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    log(json.dumps(ratios, indent=2))


if __name__ == "__main__":
    main()
