#!/usr/bin/env bash
# The local stack on embedded defaults: Airflow 3 (SQLite metadata DB, LocalExecutor), MLflow (SQLite
# store), the Parquet offline store, all under .nightshift/ in the checkout.
#   stack.sh install   create .venv with exactly the versions in constraints.txt
#   stack.sh up        install, start Airflow (API server + UI, scheduler, DAG processor, triggerer) and
#                      the MLflow UI, the lookup API and the real-time endpoint, ingest the bundled
#                      2013 flights, run `nightly`
#                      for DATA_DATE (default 2013-06-30) and then `scoring` through the scheduler,
#                      and leave everything running
#   stack.sh replay [START END]
#                      replay START..END (default all of 2013) day by day through Airflow's backfills
#                      of nightly and drift, in a fresh home (.nightshift-replay) with its own Airflow
#                      on port 8090, then write the chart and tables to docs/replay (REPLAY_OUT)
#   stack.sh down      stop what `up` started
#   stack.sh env       print the environment (eval "$(infra/local/stack.sh env)" to use the CLI by hand)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
HOME_DIR="${NIGHTSHIFT_HOME:-$ROOT/.nightshift}"
DATA_DATE="${DATA_DATE:-2013-06-30}"
AIRFLOW_PORT="${AIRFLOW_PORT:-8080}"
MLFLOW_PORT="${MLFLOW_PORT:-5000}"
LOOKUP_PORT="${LOOKUP_PORT:-8000}"
REALTIME_PORT="${REALTIME_PORT:-8001}"

install() {
  local stamp
  stamp="$VENV/.nightshift-$(cat constraints.txt pyproject.toml | sha256sum | cut -c1-16)"
  [ -f "$stamp" ] && return 0
  echo ">> creating $VENV (pinned by constraints.txt)"
  [ -x "$VENV/bin/python" ] || python3.11 -m venv "$VENV" 2>/dev/null || python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -c constraints.txt -e ".[dev]"
  touch "$stamp"
}

environment() {
  mkdir -p "$HOME_DIR/airflow" "$HOME_DIR/logs" "$HOME_DIR/run"
  local secrets="$HOME_DIR/secrets.env"
  if [ ! -f "$secrets" ]; then  # made once per machine, never committed
    umask 077
    printf 'AIRFLOW__API_AUTH__JWT_SECRET=%s\nNIGHTSHIFT_AIRFLOW_PASSWORD=%s\n' \
      "$(head -c 32 /dev/urandom | base64 | tr -d '/+=\n')" "$(head -c 12 /dev/urandom | base64 | tr -d '/+=\n')" > "$secrets"
  fi
  cat <<ENV
export PATH="$VENV/bin:\$PATH"
export NIGHTSHIFT_HOME="$HOME_DIR"
export PYSPARK_PYTHON="$VENV/bin/python"
export AIRFLOW_HOME="$HOME_DIR/airflow"
export AIRFLOW__CORE__DAGS_FOLDER="$ROOT/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__EXECUTOR=LocalExecutor
export AIRFLOW__CORE__PARALLELISM=2
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=True
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=nightshift:admin
export AIRFLOW__API__BASE_URL="http://localhost:$AIRFLOW_PORT"
export AIRFLOW__API__PORT=$AIRFLOW_PORT
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="http://localhost:$AIRFLOW_PORT/execution/"
export AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL=30
export AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL=30
export NIGHTSHIFT_AIRFLOW_URL="http://localhost:$AIRFLOW_PORT"
export GX_ANALYTICS_ENABLED=false
export MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=false
export MLFLOW_DISABLE_TELEMETRY=true
set -a; . "$secrets"; set +a
ENV
}

start() {  # start NAME COMMAND...: a background service with its log and pid under .nightshift
  local name="$1"; shift
  local pidfile="$HOME_DIR/run/$name.pid"
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then echo "   $name already running"; return; fi
  setsid "$@" >"$HOME_DIR/logs/$name.log" 2>&1 < /dev/null &
  echo $! > "$pidfile"
  echo "   $name started (log: $HOME_DIR/logs/$name.log)"
}

up() {
  install
  eval "$(environment)"
  echo ">> Airflow metadata DB: ${AIRFLOW__DATABASE__SQL_ALCHEMY_CONN:-sqlite (embedded default)}"
  airflow db migrate > "$HOME_DIR/logs/db-migrate.log" 2>&1
  # The simple auth manager keeps generated passwords in this file; we write ours first.
  printf '{"nightshift": "%s"}\n' "$NIGHTSHIFT_AIRFLOW_PASSWORD" > "$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"
  echo ">> starting services"
  start airflow-api-server airflow api-server --port "$AIRFLOW_PORT"
  start airflow-scheduler env PYTHONPATH="$ROOT/infra/local/preload${PYTHONPATH:+:$PYTHONPATH}" airflow scheduler
  start airflow-dag-processor airflow dag-processor
  start airflow-triggerer airflow triggerer
  start mlflow-ui mlflow server --backend-store-uri "sqlite:///$HOME_DIR/mlflow.db" \
    --default-artifact-root "$HOME_DIR/mlartifacts" --host 127.0.0.1 --port "$MLFLOW_PORT"
  start lookup-api uvicorn serving.lookup:app --host 127.0.0.1 --port "$LOOKUP_PORT" --loop uvloop --http httptools \
    --no-access-log
  start realtime-api uvicorn serving.realtime:app --host 127.0.0.1 --port "$REALTIME_PORT" --loop uvloop \
    --http httptools --no-access-log
  echo ">> ingesting the bundled NYC flights 2013 into the offline store"
  nightshift ingest 2013-01-01 --end 2013-12-31
  echo ">> running nightly for data date $DATA_DATE through the scheduler"
  nightshift trigger nightly "$DATA_DATE" --wait
  echo ">> scoring every flight with the champion (PySpark) into the prediction store"
  nightshift trigger scoring "$DATA_DATE" --wait
  echo ">> checking $DATA_DATE for drift against the champion (Evidently report in MLflow)"
  nightshift trigger drift "$DATA_DATE" --wait
  nightshift status
  nightshift snapshots
  # The endpoint started before the first champion existed: it picks the champion up on its next
  # registry poll (NIGHTSHIFT_REALTIME_POLL_SECONDS); wait for that before printing the example.
  echo ">> waiting for the real-time endpoint to load the champion"
  for _ in $(seq 1 60); do
    curl -sf "http://127.0.0.1:$REALTIME_PORT/readyz" > /dev/null && break
    sleep 1
  done
  curl -s "http://127.0.0.1:$REALTIME_PORT/readyz"; echo
  local key
  key="$(python - "$DATA_DATE" <<'PY'
import glob
import sys

import pyarrow.parquet as pq
from nightshift.settings import get_settings
s = get_settings()
part = sorted(glob.glob(f"{s.offline_dir}/{s.dataset}/date={sys.argv[1]}/*.parquet"))[-1]
print(pq.read_table(part, columns=[s.spec().entity_key]).column(0)[0])
PY
)"
  local row
  row="$(python - "$DATA_DATE" <<'PY'
import glob
import json
import sys

import pyarrow.parquet as pq
from nightshift.settings import get_settings
s = get_settings()
spec = s.spec()
part = sorted(glob.glob(f"{s.offline_dir}/{s.dataset}/date={sys.argv[1]}/*.parquet"))[-1]
row = pq.read_table(part, columns=[*spec.raw_inputs, spec.entity_key]).slice(0, 1).to_pylist()[0]
print(json.dumps(row, separators=(",", ":")))
PY
)"
  cat <<MSG

Nightshift is up.
  Airflow UI   http://localhost:$AIRFLOW_PORT   user: nightshift   password: $NIGHTSHIFT_AIRFLOW_PASSWORD
  MLflow UI    http://localhost:$MLFLOW_PORT
  Lookup API   http://localhost:$LOOKUP_PORT/docs   e.g. curl http://localhost:$LOOKUP_PORT/v1/predictions/$key
  Real-time    http://localhost:$REALTIME_PORT/docs   e.g.
               curl -X POST http://localhost:$REALTIME_PORT/v1/predict -H 'Content-Type: application/json' -d '$row'
  CLI          eval "\$(infra/local/stack.sh env)"; nightshift status
  Stop         make down
MSG
}

replay() {
  local first="${1:-2013-01-01}" last="${2:-2013-12-30}" out="${REPLAY_OUT:-$ROOT/docs/replay}"
  install
  HOME_DIR="${REPLAY_HOME:-$ROOT/.nightshift-replay}"
  AIRFLOW_PORT="${REPLAY_AIRFLOW_PORT:-8090}"
  [ -d "$HOME_DIR/run" ] && down
  rm -rf "$HOME_DIR"  # a replay starts from nothing: no offline store, models, history or runs
  eval "$(environment)"
  airflow db migrate > "$HOME_DIR/logs/db-migrate.log" 2>&1
  printf '{"nightshift": "%s"}\n' "$NIGHTSHIFT_AIRFLOW_PASSWORD" > "$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"
  trap down EXIT
  echo ">> starting Airflow for the replay on port $AIRFLOW_PORT (home $HOME_DIR)"
  start airflow-api-server airflow api-server --port "$AIRFLOW_PORT"
  start airflow-scheduler env PYTHONPATH="$ROOT/infra/local/preload${PYTHONPATH:+:$PYTHONPATH}" airflow scheduler
  start airflow-dag-processor airflow dag-processor
  start airflow-triggerer airflow triggerer
  echo ">> replaying $first..$last (the Airflow UI shows the runs as they go)"
  nightshift replay "$first" "$last" --via airflow --out "$out"
}

down() {
  for pidfile in "$HOME_DIR"/run/*.pid; do
    [ -f "$pidfile" ] || continue
    kill -- "-$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
    echo "stopped $(basename "$pidfile" .pid)"
  done
}

case "${1:-up}" in
  install) install ;;
  up) up ;;
  down) down ;;
  replay) shift; replay "$@" ;;
  env) environment ;;
  *) echo "usage: $0 {install|up|down|replay [START END]|env}" >&2; exit 2 ;;
esac
