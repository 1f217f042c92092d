"""The cluster topology on one machine: the suite's unchanged code on distributed engines, only settings differ.

    make cluster          # python -m ops.cluster up: start it, run `nightly` then `scoring` through it, serve
    make cluster-down     # python -m ops.cluster down: stop every process it started (data is kept)

- Airflow with the CeleryExecutor: broker Redis on loopback (`NS_CLUSTER_BROKER`, default
  redis://127.0.0.1:6379/3), metadata DB and Celery result backend on PostgreSQL; API server, scheduler,
  DAG processor, triggerer; two Celery workers, each taking the `default` and `training` queues (`nightly`'s
  train task goes to `training`, NIGHTSHIFT_TRAINING_QUEUE: a GPU worker would take only that queue). A
  worker that dies takes its task with it: the scheduler finds the task without heartbeat
  (`task_instance_heartbeat_timeout`, 30 s here) and retries it on a live worker.
- One MLflow tracking server on PostgreSQL with proxied artifact storage (`--artifacts-destination`): every
  task and service reaches it over HTTP (NIGHTSHIFT_MLFLOW_TRACKING_URI), none opens its database.
- A Spark standalone master and two workers; `scoring` submits to it (NIGHTSHIFT_SPARK_MASTER).
- The prediction store and the prediction log on PostgreSQL (NIGHTSHIFT_STORE_URL).
- Two lookup and two real-time replicas behind HAProxy (ops/serving_tier.py, infra/cluster/haproxy.cfg).

Every service listens on 127.0.0.1 and reaches the others by the addresses in its environment. Its state
lives under `<home>/cluster` (logs/, run/ with one pid file per process group, artifacts/); its databases are
`<prefix>_airflow`, `<prefix>_mlflow` and `<prefix>_store` on `NS_CLUSTER_PG`.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from ops.airflow_api import AirflowAPI
from ops.serving_tier import ServingTier, free_port, wait_for

ROOT = Path(__file__).resolve().parents[1]


def spark_home() -> Path:
    """The Spark that pyspark's wheel ships (bin/spark-class and its jars)."""
    import pyspark

    return Path(str(pyspark.__file__)).parent


def node_name() -> str:
    """The host name Airflow records on a task instance (`[core] hostname_callable` of the cluster's Celery
    workers): the worker's NIGHTSHIFT_NODE, so that a task says which worker ran it."""
    return os.environ.get("NIGHTSHIFT_NODE") or socket.getfqdn()


def create_database(server: str, name: str) -> str:
    """`server`/`name`, created when missing (PostgreSQL); its URL."""
    import sqlalchemy as sa

    engine = sa.create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            if conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first() is None:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return f"{server}/{name}"


def drop_database(server: str, name: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        engine.dispose()


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


@dataclass
class Cluster:
    """The topology's processes on this machine (free ports unless given), started by `up`, stopped by `down`."""

    home: Path  # NIGHTSHIFT_HOME: the offline store, scores, GX projects; the cluster's own state in home/cluster
    env: dict[str, str]  # the environment every process starts from (dataset settings, PATH, ...)
    pg: str = "postgresql+psycopg2://postgres@127.0.0.1:5432"
    prefix: str = "nightshift_cluster"
    broker: str = "redis://127.0.0.1:6379/3"
    host: str = "127.0.0.1"
    celery_workers: int = 2
    spark_workers: int = 2
    executor: str = "CeleryExecutor"  # the LocalExecutor only for bench/executor_overhead.py's comparison
    dags_folder: Path = ROOT / "dags"
    airflow_options: dict[str, str] = field(default_factory=dict)  # AIRFLOW__* over the topology's own
    ports: dict[str, int] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    tier: ServingTier | None = None

    def __post_init__(self) -> None:
        for name in ("airflow", "mlflow", "spark", "spark_ui", "lookup", "realtime", "stats"):
            self.ports[name] = self.ports.get(name) or free_port(self.host)
        self.dir.mkdir(parents=True, exist_ok=True)
        secret_file = self.dir / "secrets.json"  # made once, never in the repo
        if not secret_file.exists():
            made = {"jwt": secrets.token_urlsafe(32), "password": secrets.token_urlsafe(12)}
            with os.fdopen(os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
                json.dump(made, out)
        self.secrets = json.loads(secret_file.read_text())

    @property
    def dir(self) -> Path:
        return self.home / "cluster"

    def db(self, kind: str) -> str:
        return f"{self.pg}/{self.prefix}_{kind}"

    @property
    def airflow_url(self) -> str:
        return f"http://{self.host}:{self.ports['airflow']}"

    @property
    def mlflow_url(self) -> str:
        return f"http://{self.host}:{self.ports['mlflow']}"

    @property
    def spark_url(self) -> str:
        return f"spark://{self.host}:{self.ports['spark']}"

    def settings_env(self) -> dict[str, str]:
        """What every Nightshift process of the cluster gets: the settings that make it a cluster."""
        return {**self.env, "NIGHTSHIFT_HOME": str(self.home), "NIGHTSHIFT_STORE_URL": self.db("store"),
                "NIGHTSHIFT_MLFLOW_TRACKING_URI": self.mlflow_url, "MLFLOW_TRACKING_URI": self.mlflow_url,
                "MLFLOW_REGISTRY_URI": self.mlflow_url, "NIGHTSHIFT_SPARK_MASTER": self.spark_url,
                "NIGHTSHIFT_SPARK_DRIVER_MEMORY": "1g", "NIGHTSHIFT_TRAINING_QUEUE": "training",
                "PYSPARK_PYTHON": sys.executable, "SPARK_LOCAL_IP": self.host, "GX_ANALYTICS_ENABLED": "false",
                "MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}

    def airflow_env(self) -> dict[str, str]:
        backend = "db+" + self.db("airflow")  # Celery's result backend, through SQLAlchemy (psycopg2)
        return {**self.settings_env(), "AIRFLOW_HOME": str(self.dir / "airflow"),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": self.executor, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.db("airflow"),
                "AIRFLOW__CELERY__BROKER_URL": self.broker, "AIRFLOW__CELERY__RESULT_BACKEND": backend,
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
                "AIRFLOW__CORE__PARALLELISM": "4", "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
                "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "15",
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "nightshift:admin",
                "AIRFLOW__API__BASE_URL": self.airflow_url, "AIRFLOW__API__HOST": self.host,
                "AIRFLOW__API__PORT": str(self.ports["airflow"]),
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.airflow_url}/execution/",
                "AIRFLOW__API_AUTH__JWT_SECRET": self.secrets["jwt"],
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5", **self.airflow_options}

    def api(self) -> AirflowAPI:
        return AirflowAPI(self.airflow_url, "nightshift", self.secrets["password"])

    # --- processes -------------------------------------------------------------------------------------------

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        """A process in its own process group, logging to logs/<name>.log, its pid in run/<name>.pid."""
        (self.dir / "logs").mkdir(exist_ok=True)
        (self.dir / "run").mkdir(exist_ok=True)
        proc = subprocess.Popen(argv, env=env, stdout=(self.dir / "logs" / f"{name}.log").open("ab"),
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        (self.dir / "run" / f"{name}.pid").write_text(str(proc.pid))
        self.procs[name] = proc
        return proc

    def alive(self, name: str) -> None:
        proc = self.procs[name]
        if proc.poll() is not None:
            tail = (self.dir / "logs" / f"{name}.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{name} exited {proc.returncode}; {self.dir / 'logs' / f'{name}.log'}:\n{tail}")

    def log_says(self, name: str, text: str) -> bool:
        return text in (self.dir / "logs" / f"{name}.log").read_text(errors="replace")

    def run(self, argv: list[str], env: dict[str, str], what: str) -> None:
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            raise RuntimeError(f"{what} failed (exit {done.returncode}):\n{(done.stdout + done.stderr)[-3000:]}")

    def up(self, log: Any = print) -> None:
        """Databases, MLflow, the stores, Spark, Airflow and its Celery workers; returns once each answers."""
        py = sys.executable
        for kind in ("mlflow", "store"):
            create_database(self.pg, f"{self.prefix}_{kind}")
        log(f"MLflow tracking server on PostgreSQL, artifacts proxied: {self.mlflow_url}")
        self.start("mlflow", [py, "-m", "mlflow", "server", "--backend-store-uri", self.db("mlflow"),
                              "--artifacts-destination", (self.dir / "artifacts").as_uri(), "--host", self.host,
                              "--port", str(self.ports["mlflow"]), "--workers", "1"], self.settings_env())
        wait_for(lambda: answers(f"{self.mlflow_url}/health"), "the MLflow server", 180, lambda: self.alive("mlflow"))
        log("creating the stores (nightshift init)")
        self.run([py, "-m", "ops.cli", "init"], self.settings_env(), "nightshift init")
        log(f"Spark standalone master and {self.spark_workers} workers: {self.spark_url}")
        self.start_spark()
        log(f"Airflow ({self.executor}, {self.celery_workers} workers): {self.airflow_url}")
        self.start_airflow()

    def start_airflow(self) -> None:
        """Its metadata DB (created, migrated), API server, scheduler, DAG processor, triggerer and, on the
        CeleryExecutor, the Celery workers; returns once the API answers and every worker is ready."""
        py = sys.executable
        create_database(self.pg, f"{self.prefix}_airflow")
        airflow_home = self.dir / "airflow"
        airflow_home.mkdir(exist_ok=True)
        self.run([py, "-m", "airflow", "db", "migrate"], self.airflow_env(), "airflow db migrate")
        passwords = airflow_home / "simple_auth_manager_passwords.json.generated"
        passwords.write_text(json.dumps({"nightshift": self.secrets["password"]}))
        passwords.chmod(0o600)
        env = self.airflow_env()
        self.start("airflow-api-server", [py, "-m", "airflow", "api-server", "--port", str(self.ports["airflow"])], env)
        for part in ("scheduler", "dag-processor", "triggerer"):
            self.start(f"airflow-{part}", [py, "-m", "airflow", part], env)
        workers = range(1, self.celery_workers + 1) if self.executor == "CeleryExecutor" else range(0)
        for i in workers:
            self.start_celery_worker(i)
        self.api().wait_until_up(timeout=300)
        for i in workers:
            wait_for(lambda i=i: self.log_says(f"celery-worker{i}", " ready."), f"celery worker {i}", 180,  # type: ignore[misc]
                     lambda i=i: self.alive(f"celery-worker{i}"))  # type: ignore[misc]

    def start_celery_worker(self, i: int) -> subprocess.Popen[bytes]:
        env = {**self.airflow_env(), "NIGHTSHIFT_NODE": f"worker{i}",
               "AIRFLOW__CORE__HOSTNAME_CALLABLE": "ops.cluster.node_name"}
        return self.start(f"celery-worker{i}", [sys.executable, "-m", "airflow", "celery", "worker", "--queues",
                                                "default,training", "--celery-hostname", f"worker{i}@%h",
                                                "--skip-serve-logs", "--without-mingle", "--without-gossip"], env)

    def start_spark(self) -> None:
        env = {**self.settings_env(), "SPARK_HOME": str(spark_home())}
        spark_class = str(spark_home() / "bin" / "spark-class")
        self.start("spark-master", [spark_class, "org.apache.spark.deploy.master.Master", "--host", self.host,
                                    "--port", str(self.ports["spark"]), "--webui-port", str(self.ports["spark_ui"])],
                   env)
        wait_for(lambda: self.log_says("spark-master", "I have been elected leader"), "the Spark master", 120,
                 lambda: self.alive("spark-master"))
        cores = max(1, (os.cpu_count() or 2) // self.spark_workers)
        for i in range(1, self.spark_workers + 1):
            self.start(f"spark-worker{i}", [spark_class, "org.apache.spark.deploy.worker.Worker", self.spark_url,
                                            "--host", self.host, "--cores", str(cores), "--memory", "1g",
                                            "--work-dir", str(self.dir / f"spark-worker{i}"),
                                            "--webui-port", str(free_port(self.host))], env)
        for i in range(1, self.spark_workers + 1):
            wait_for(lambda i=i: self.log_says(f"spark-worker{i}", "Successfully registered with master"),  # type: ignore[misc]
                     f"Spark worker {i}", 120, lambda i=i: self.alive(f"spark-worker{i}"))  # type: ignore[misc]

    def serve(self) -> ServingTier:
        """The serving tier on the cluster's store and registry (once a champion exists: /readyz needs one)."""
        self.tier = ServingTier(self.dir / "tier", self.settings_env(), host=self.host,
                                lookup_port=self.ports["lookup"], realtime_port=self.ports["realtime"],
                                stats_port=self.ports["stats"])
        try:
            self.tier.start()
        except BaseException:
            self.tier.stop()  # nothing half-started is left behind
            raise
        run = self.dir / "run"
        assert self.tier.haproxy is not None
        (run / "haproxy.pid").write_text(str(self.tier.haproxy.pid))
        for r in self.tier.all_replicas():
            assert r.proc is not None
            (run / f"{r.name}.pid").write_text(str(r.proc.pid))
        return self.tier

    def running(self) -> list[str]:
        """The processes of run/*.pid that are alive."""
        run = self.dir / "run"
        return [p.stem for p in sorted(run.glob("*.pid"))
                if _group_alive(int(p.read_text()))] if run.exists() else []

    def down(self) -> list[str]:
        """SIGTERM every process group of run/*.pid (SIGKILL after 30 s); the names stopped."""
        stopped = []
        run = self.dir / "run"
        pids = {p.stem: int(p.read_text()) for p in sorted(run.glob("*.pid"))} if run.exists() else {}
        for name, pid in pids.items():
            try:
                os.killpg(pid, signal.SIGTERM)
                stopped.append(name)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 30
        for name, pid in pids.items():
            while _group_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _group_alive(pid):
                os.killpg(pid, signal.SIGKILL)
            proc = self.procs.get(name)
            if proc is not None:
                proc.wait(timeout=30)
            (run / f"{name}.pid").unlink(missing_ok=True)
        if self.tier is not None:
            self.tier.stop()
        return stopped

    def drop_databases(self) -> None:
        for kind in ("airflow", "mlflow", "store"):
            drop_database(self.pg, f"{self.prefix}_{kind}")


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    # A killed leader stays a zombie until its parent waits; the group is gone once no member runs.
    return any(_pgid_of(p) == pgid and _state(p) != "Z" for p in Path("/proc").iterdir() if p.name.isdigit())


def _pgid_of(proc: Path) -> int | None:
    try:
        return int((proc / "stat").read_text().rsplit(")", 1)[1].split()[2])
    except (OSError, IndexError, ValueError):
        return None


def _state(proc: Path) -> str:
    try:
        return (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "?"


def from_environment() -> Cluster:
    """The cluster `make cluster` runs: fixed ports (NS_CLUSTER_*_PORT), NIGHTSHIFT_HOME (./.nightshift-cluster)."""
    home = Path(os.environ.get("NIGHTSHIFT_HOME", ROOT / ".nightshift-cluster")).resolve()
    defaults = {"airflow": 8280, "mlflow": 5500, "spark": 7177, "spark_ui": 8180, "lookup": 8100, "realtime": 8101,
                "stats": 8102}
    ports = {k: int(os.environ.get(f"NS_CLUSTER_{k.upper()}_PORT", v)) for k, v in defaults.items()}
    return Cluster(home, dict(os.environ), pg=os.environ.get("NS_CLUSTER_PG", Cluster.pg),
                   broker=os.environ.get("NS_CLUSTER_BROKER", Cluster.broker), ports=ports)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("action", choices=["up", "down"])
    ap.add_argument("--date", help="data date of the nightly run `up` triggers (default: the dataset's last)")
    args = ap.parse_args()
    cluster = from_environment()
    if args.action == "down":
        print("stopped: " + (", ".join(cluster.down()) or "nothing was running"))
        return
    running = cluster.running()
    if running:
        raise SystemExit(f"the cluster is already running ({', '.join(running)}): make cluster-down first")
    cluster.up()
    env = cluster.settings_env()
    dataset = env.get("NIGHTSHIFT_DATASET", "flights")
    print(f">> ingesting {dataset} into the offline store")
    cluster.run([sys.executable, "-m", "ops.cli", "ingest"], env, "nightshift ingest")
    day = date.fromisoformat(args.date) if args.date else last_date(env)
    api = cluster.api()
    for kind in ("nightly", "scoring"):
        api.wait_for_dag(f"{kind}__{dataset}", timeout=300)
        api.unpause(f"{kind}__{dataset}")
    print(f">> nightly__{dataset} for {day} through the Celery workers")
    run_id = api.trigger(f"nightly__{dataset}", day)
    if api.wait(f"nightly__{dataset}", run_id, timeout=3600) != "success":
        raise SystemExit(f"nightly__{dataset} {run_id} failed: {api.failure(f'nightly__{dataset}', run_id)}")
    scoring = wait_asset_run(api, f"scoring__{dataset}")
    if api.wait(f"scoring__{dataset}", scoring, timeout=3600) != "success":
        raise SystemExit(f"scoring__{dataset} {scoring} failed: {api.failure(f'scoring__{dataset}', scoring)}")
    tier = cluster.serve()
    key = example_key(dataset, day)
    urls = {"Airflow UI": f"{cluster.airflow_url}/", "MLflow": f"{cluster.mlflow_url}/",
            "Spark master UI": f"http://{cluster.host}:{cluster.ports['spark_ui']}/",
            "Lookup": f"{tier.lookup_url}/v1/datasets/{dataset}/predictions/{key}",
            "Lookup API docs": f"{tier.lookup_url}/docs", "Real-time API docs": f"{tier.realtime_url}/docs",
            "HAProxy stats": f"http://{cluster.host}:{cluster.ports['stats']}/"}
    broken = [f"{what} {url}" for what, url in urls.items() if not answers(url)]
    if broken:
        raise SystemExit("the cluster is up but these do not answer 200: " + ", ".join(broken))
    print(f"""
The cluster is up, {dataset} scored as of {day} (stop it: make cluster-down; logs: {cluster.dir / 'logs'})
  Airflow UI        {urls['Airflow UI']}   user nightshift, password in {cluster.dir / 'secrets.json'}
  MLflow            {urls['MLflow']}
  Spark master      {cluster.spark_url}   UI {urls['Spark master UI']}
  Lookups (HAProxy) {tier.lookup_url}/docs   e.g.
                    curl {urls['Lookup']}
  Predictions       {tier.realtime_url}/docs   POST /v1/datasets/{dataset}/predict (X-Entity-Key picks the replica)
  HAProxy stats     {urls['HAProxy stats']}   (Prometheus: /metrics)""")


def example_key(dataset: str, day: date) -> str:
    """An entity key of the scored data (the data date's first row), for the printed example; settings from the
    environment (NIGHTSHIFT_HOME, NIGHTSHIFT_SPEC_DIR)."""
    from nightshift import offline
    from nightshift.settings import Settings

    s = Settings()
    frame = offline.read_partition(s.offline_dir, dataset, day)
    return str(frame[s.spec(dataset).entity_key].iloc[0])


def last_date(env: dict[str, str]) -> date:
    out = subprocess.run([sys.executable, "-m", "ops.cli", "dates"], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    return date.fromisoformat(out[1])


def wait_asset_run(api: AirflowAPI, dag_id: str, timeout: float = 300) -> str:
    """The run id of the newest asset-triggered run of `dag_id` (the promotion starts it)."""
    deadline = time.monotonic() + timeout
    while not (runs := api._call("GET", f"/dags/{dag_id}/dagRuns",
                                 params={"run_type": "asset_triggered", "order_by": "-run_after"})["dag_runs"]):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no asset-triggered run of {dag_id} within {timeout:.0f}s")
        time.sleep(1)
    return str(runs[0]["dag_run_id"])


if __name__ == "__main__":
    main()
