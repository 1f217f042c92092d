#!/usr/bin/env bash
# The local stack on embedded defaults: Airflow 3 (SQLite metadata DB, LocalExecutor), MLflow (SQLite
# store), the Parquet offline store, all under .nightshift/ in the checkout.
#   stack.sh install   create .venv with exactly the versions in constraints.txt
#   stack.sh up        install, start Airflow (API server + UI, scheduler, DAG processor, triggerer) and
#                      the MLflow UI, the lookup API and the real-time endpoint, ingest the dataset's
#                      source (DATASET, else NIGHTSHIFT_DATASET, else the settings' default; specs of
#                      your own in NIGHTSHIFT_SPEC_DIR), run its `nightly` for DATA_DATE (default: the
#                      source's last date in the spec's schedule window), then `scoring` and `drift`
#                      through the scheduler, and leave everything running
#   stack.sh replay [START END]
#                      replay START..END (default: the source's dates in its schedule window) day by
#                      day through Airflow's backfills of nightly and drift, in a fresh home
#                      (.nightshift-replay) with its own Airflow on port 8090, then write the chart and
#                      tables to docs/replay (REPLAY_OUT)
#   stack.sh down      stop what `up` started, and wait until every process of it has exited
#   stack.sh check     every URL the banner advertises answers 200 and every service is alive (exit 1 if not)
#   stack.sh env       print the environment (eval "$(infra/local/stack.sh env)" to use the CLI by hand)
# Every server listens on NIGHTSHIFT_BIND_HOST (default 127.0.0.1, this machine only); set it to 0.0.0.0
# to open the stack to the network.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
HOME_DIR="${NIGHTSHIFT_HOME:-$ROOT/.nightshift}"
DATA_DATE="${DATA_DATE:-}"  # empty: the dataset's last date (nightshift dates)
[ -n "${DATASET:-}" ] && export NIGHTSHIFT_DATASET="$DATASET"
[ -n "${NIGHTSHIFT_SPEC_DIR:-}" ] && NIGHTSHIFT_SPEC_DIR="$(cd "$NIGHTSHIFT_SPEC_DIR" && pwd)"
AIRFLOW_PORT="${AIRFLOW_PORT:-8080}"
MLFLOW_PORT="${MLFLOW_PORT:-5000}"
LOOKUP_PORT="${LOOKUP_PORT:-8000}"
REALTIME_PORT="${REALTIME_PORT:-8001}"
BIND_HOST="${NIGHTSHIFT_BIND_HOST:-127.0.0.1}"
# The address the banner advertises and clients use: the bind address, or this host's name when open to all.
if [ "$BIND_HOST" = "0.0.0.0" ]; then PUBLIC_HOST="$(hostname)"; else PUBLIC_HOST="$BIND_HOST"; fi
SERVICE_TIMEOUT="${SERVICE_TIMEOUT:-240}"  # seconds a service may take to answer its health check

# The cluster topology's system packages (infra/cluster/): HAProxy in front of the API replicas, wrk for the
# load under which its tests kill replicas. Debian's packages, installed when missing and this runs as root
# (CI does); otherwise the command to run is printed and the tier's tests say what is missing.
system_packages() {
  local missing=()
  command -v haproxy > /dev/null || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
  command -v wrk > /dev/null || missing+=(wrk)
  [ "${#missing[@]}" -eq 0 ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null; then
    echo ">> installing ${missing[*]} (Debian packages, for the cluster topology and its tests)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" > /dev/null \
      || { apt-get update -q > /dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" > /dev/null; }
  else
    echo "!! ${missing[*]} missing: sudo apt-get install ${missing[*]} (the cluster topology and its tests need them)" >&2
  fi
}

install() {
  system_packages
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
  local spark_ip="# Spark's driver and its UI listen on this address, not on every interface.
export SPARK_LOCAL_IP=$BIND_HOST"
  [ "$BIND_HOST" = "0.0.0.0" ] && spark_ip=""
  cat <<ENV
export PATH="$VENV/bin:\$PATH"
export NIGHTSHIFT_HOME="$HOME_DIR"
export PYSPARK_PYTHON="$VENV/bin/python"
export AIRFLOW_HOME="$HOME_DIR/airflow"
export AIRFLOW__CORE__DAGS_FOLDER="$ROOT/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__EXECUTOR=LocalExecutor
export AIRFLOW__CORE__PARALLELISM=2
export AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY=120
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=True
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=nightshift:admin
export AIRFLOW__API__BASE_URL="http://$PUBLIC_HOST:$AIRFLOW_PORT"
export AIRFLOW__API__HOST="$BIND_HOST"
export AIRFLOW__API__PORT=$AIRFLOW_PORT
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="http://$PUBLIC_HOST:$AIRFLOW_PORT/execution/"
export AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL=30
export AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL=30
export NIGHTSHIFT_AIRFLOW_URL="http://$PUBLIC_HOST:$AIRFLOW_PORT"
${NIGHTSHIFT_DATASET:+export NIGHTSHIFT_DATASET="$NIGHTSHIFT_DATASET"}
${NIGHTSHIFT_SPEC_DIR:+export NIGHTSHIFT_SPEC_DIR="$NIGHTSHIFT_SPEC_DIR"}
export NIGHTSHIFT_BIND_HOST="$BIND_HOST"
# MLflow's own default store is ./mlflow.db in the working directory: point every MLflow client of this
# shell (mlflow.pyfunc.load_model("models:/...") included) at the stack's store instead.
export MLFLOW_TRACKING_URI="${NIGHTSHIFT_MLFLOW_TRACKING_URI:-sqlite:///$HOME_DIR/mlflow.db}"
export MLFLOW_REGISTRY_URI="${NIGHTSHIFT_MLFLOW_TRACKING_URI:-sqlite:///$HOME_DIR/mlflow.db}"
$spark_ip
export GX_ANALYTICS_ENABLED=false
export MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=false
export MLFLOW_DISABLE_TELEMETRY=true
set -a; . "$secrets"; set +a
ENV
}

start() {  # start NAME COMMAND...: a background service in its own process group, log and pid under .nightshift
  local name="$1"; shift
  local pidfile="$HOME_DIR/run/$name.pid"
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then echo "   $name already running"; return; fi
  # No service needs the operator's Airflow password (the CLI does); only Airflow's own need its JWT secret.
  local strip=(-u NIGHTSHIFT_AIRFLOW_PASSWORD)
  case "$name" in airflow-*) ;; *) strip+=(-u AIRFLOW__API_AUTH__JWT_SECRET) ;; esac
  setsid env "${strip[@]}" "$@" >"$HOME_DIR/logs/$name.log" 2>&1 < /dev/null &
  echo $! > "$pidfile"
  echo "   $name started (log: $HOME_DIR/logs/$name.log)"
}

init_stores() {  # every store is created and migrated here, once, before any service or task opens it
  echo ">> creating the stores (SQL store, MLflow; Airflow metadata DB: ${AIRFLOW__DATABASE__SQL_ALCHEMY_CONN:-SQLite})"
  nightshift init > "$HOME_DIR/logs/init.log" 2>&1 || { tail -n 30 "$HOME_DIR/logs/init.log"; exit 1; }
  airflow db migrate > "$HOME_DIR/logs/db-migrate.log" 2>&1 || { tail -n 30 "$HOME_DIR/logs/db-migrate.log"; exit 1; }
  # The simple auth manager keeps generated passwords in this file; we write ours first.
  (umask 077; printf '{"nightshift": "%s"}\n' "$NIGHTSHIFT_AIRFLOW_PASSWORD" \
     > "$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated")
  chmod 600 "$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"  # (made 0644 by an older make up)
}

start_airflow() {
  start airflow-api-server airflow api-server --host "$BIND_HOST" --port "$AIRFLOW_PORT"
  start airflow-scheduler env PYTHONPATH="$ROOT/infra/local/preload${PYTHONPATH:+:$PYTHONPATH}" airflow scheduler
  start airflow-dag-processor airflow dag-processor
  start airflow-triggerer airflow triggerer
}

# name|health URL: what "up" means for each service `up` starts (Airflow's health names its components).
health_urls() {
  echo "airflow-api-server|http://$PUBLIC_HOST:$AIRFLOW_PORT/api/v2/monitor/health"
  echo "airflow-scheduler|airflow:scheduler"
  echo "airflow-dag-processor|airflow:dag_processor"
  echo "airflow-triggerer|airflow:triggerer"
  [ -f "$HOME_DIR/run/mlflow-ui.pid" ] && echo "mlflow-ui|http://$PUBLIC_HOST:$MLFLOW_PORT/health"
  [ -f "$HOME_DIR/run/lookup-api.pid" ] && echo "lookup-api|http://$PUBLIC_HOST:$LOOKUP_PORT/healthz"
  [ -f "$HOME_DIR/run/realtime-api.pid" ] && echo "realtime-api|http://$PUBLIC_HOST:$REALTIME_PORT/healthz"
  return 0
}

service_failed() {  # service_failed NAME WHY: report with the tail of its log, stop the stack, exit 1
  echo "!! $1 $2; the last lines of $HOME_DIR/logs/$1.log:" >&2
  tail -n 25 "$HOME_DIR/logs/$1.log" | sed 's/^/   | /' >&2
  echo "!! stopping the stack (logs stay under $HOME_DIR/logs)" >&2
  down > /dev/null
  exit 1
}

component_healthy() {  # component_healthy NAME: Airflow's health check says the component heartbeats
  curl -s -m 5 "http://$PUBLIC_HOST:$AIRFLOW_PORT/api/v2/monitor/health" | python -c '
import json, sys
try:
    print(json.load(sys.stdin).get(sys.argv[1], {}).get("status", ""))
except ValueError:
    print("")' "$1" | grep -qx healthy
}

wait_healthy() {  # every service answers its health check within SERVICE_TIMEOUT, and none has died
  local deadline=$((SECONDS + SERVICE_TIMEOUT)) pending name url pid
  echo ">> waiting for every service to answer its health check"
  while :; do
    pending=""
    while IFS='|' read -r name url; do
      pid="$(cat "$HOME_DIR/run/$name.pid" 2>/dev/null || true)"
      if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then service_failed "$name" "died while starting"; fi
      case "$url" in
        airflow:*) component_healthy "${url#airflow:}" || pending="$pending $name" ;;
        *) [ "$(curl -s -o /dev/null -m 5 -w '%{http_code}' "$url")" = 200 ] || pending="$pending $name" ;;
      esac
    done < <(health_urls)
    [ -z "$pending" ] && { echo "   all services healthy"; return 0; }
    if [ "$SECONDS" -ge "$deadline" ]; then
      for name in $pending; do service_failed "$name" "did not answer its health check in ${SERVICE_TIMEOUT}s"; done
    fi
    sleep 2
  done
}

dataset_name() {  # the dataset this stack runs (NIGHTSHIFT_DATASET, else the settings' default)
  python -c 'from nightshift.settings import get_settings; print(get_settings().dataset)'
}

example_key_and_row() {  # the first entity of DATA_DATE's partition: its key, its raw input row (JSON), the dataset
  python - "$DATA_DATE" <<'PY'
import glob
import json
import sys
from urllib.parse import quote

import pyarrow.parquet as pq
from nightshift.settings import get_settings
s = get_settings()
spec = s.spec()
part = sorted(glob.glob(f"{s.offline_dir}/{s.dataset}/date={sys.argv[1]}/*.parquet"))[-1]
row = pq.read_table(part, columns=[*spec.raw_inputs, spec.entity_key]).slice(0, 1).to_pylist()[0]
print(quote(str(row[spec.entity_key]), safe=""))
print(json.dumps({k: row[k] for k in spec.raw_inputs} | {spec.entity_key: str(row[spec.entity_key])},
                 separators=(",", ":"), default=str))
print(s.dataset)
PY
}

advertised() {  # method|URL|body: every URL the banner advertises, the examples included
  local key row ds
  key="$(sed -n 1p "$HOME_DIR/run/example")"; row="$(sed -n 2p "$HOME_DIR/run/example")"
  ds="$(sed -n 3p "$HOME_DIR/run/example")"
  echo "GET|http://$PUBLIC_HOST:$AIRFLOW_PORT/|"
  echo "GET|http://$PUBLIC_HOST:$MLFLOW_PORT/|"
  echo "GET|http://$PUBLIC_HOST:$LOOKUP_PORT/docs|"
  echo "GET|http://$PUBLIC_HOST:$LOOKUP_PORT/redoc|"
  echo "GET|http://$PUBLIC_HOST:$LOOKUP_PORT/v1/datasets/$ds/predictions/$key|"
  echo "GET|http://$PUBLIC_HOST:$REALTIME_PORT/docs|"
  echo "GET|http://$PUBLIC_HOST:$REALTIME_PORT/redoc|"
  echo "POST|http://$PUBLIC_HOST:$REALTIME_PORT/v1/datasets/$ds/predict|$row"
}

check() {  # every service alive and every advertised URL answering 200; exit 1 naming what is not
  local failed=0 name url pid method body code
  eval "$(environment)"
  while IFS='|' read -r name url; do
    pid="$(cat "$HOME_DIR/run/$name.pid" 2>/dev/null || true)"
    if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
      echo "DEAD  $name (log: $HOME_DIR/logs/$name.log)"; failed=1
    fi
  done < <(health_urls)
  [ -f "$HOME_DIR/run/example" ] || { echo "no $HOME_DIR/run/example: has make up finished?"; return 1; }
  while IFS='|' read -r method url body; do
    if [ "$method" = POST ]; then
      code="$(curl -s -o /dev/null -m 30 -w '%{http_code}' -X POST -H 'Content-Type: application/json' -d "$body" "$url")"
    else
      code="$(curl -s -o /dev/null -m 30 -w '%{http_code}' "$url")"
    fi
    printf '%s  %-4s %s\n' "$code" "$method" "$url"
    [ "$code" = 200 ] || failed=1
  done < <(advertised)
  return "$failed"
}

up() {
  install
  eval "$(environment)"
  init_stores
  # Every service reads the spec folders when it starts: a stack started for another folder restarts.
  if [ -f "$HOME_DIR/run/spec-dir" ] && [ "$(cat "$HOME_DIR/run/spec-dir")" != "${NIGHTSHIFT_SPEC_DIR:-}" ]; then
    echo ">> NIGHTSHIFT_SPEC_DIR changed since the services started: restarting them"
    down > /dev/null
  fi
  echo "${NIGHTSHIFT_SPEC_DIR:-}" > "$HOME_DIR/run/spec-dir"
  echo ">> starting services (listening on $BIND_HOST)"
  start_airflow
  start mlflow-ui mlflow server --backend-store-uri "$MLFLOW_TRACKING_URI" \
    --default-artifact-root "$HOME_DIR/mlartifacts" --host "$BIND_HOST" --port "$MLFLOW_PORT" --workers 1
  local ds
  ds="$(dataset_name)"
  # The real-time endpoint serves one dataset: one started for another dataset is restarted for this one.
  if [ -f "$HOME_DIR/run/realtime-api.pid" ] && [ "$(cat "$HOME_DIR/run/realtime-api.dataset" 2>/dev/null)" != "$ds" ]; then
    stop_service realtime-api
  fi
  echo "$ds" > "$HOME_DIR/run/realtime-api.dataset"
  start lookup-api uvicorn serving.lookup:app --host "$BIND_HOST" --port "$LOOKUP_PORT" --loop uvloop \
    --http serving.one_write:OneWriteProtocol --no-access-log
  start realtime-api uvicorn serving.realtime:app --host "$BIND_HOST" --port "$REALTIME_PORT" --loop uvloop \
    --http serving.one_write:OneWriteProtocol --no-access-log
  wait_healthy
  echo ">> ingesting $ds (every date of its source in its schedule window) into the offline store"
  nightshift ingest
  [ -n "$DATA_DATE" ] || DATA_DATE="$(nightshift dates | cut -d' ' -f2)"
  echo ">> running nightly__$ds for data date $DATA_DATE through the scheduler"
  nightshift trigger nightly "$DATA_DATE" --wait
  echo ">> scoring $ds with the champion (PySpark) into the prediction store"
  nightshift trigger scoring "$DATA_DATE" --wait
  echo ">> checking $DATA_DATE for drift against the champion (Evidently report in MLflow)"
  nightshift trigger drift "$DATA_DATE" --wait
  nightshift status
  nightshift snapshots
  # The endpoint started before the first champion existed: it picks the champion up on its next
  # registry poll (NIGHTSHIFT_REALTIME_POLL_SECONDS); wait for that before checking the examples.
  echo ">> waiting for the real-time endpoint to load the champion"
  local deadline=$((SECONDS + SERVICE_TIMEOUT))
  until [ "$(curl -s -o /dev/null -m 5 -w '%{http_code}' "http://$PUBLIC_HOST:$REALTIME_PORT/readyz")" = 200 ]; do
    kill -0 "$(cat "$HOME_DIR/run/realtime-api.pid")" 2>/dev/null || service_failed realtime-api "died"
    [ "$SECONDS" -lt "$deadline" ] || service_failed realtime-api "did not load the champion in ${SERVICE_TIMEOUT}s"
    sleep 1
  done
  example_key_and_row > "$HOME_DIR/run/example"
  echo ">> checking every service and every URL below"
  if ! check; then
    echo "!! a service is down or an advertised URL does not answer 200 (above); logs under $HOME_DIR/logs" >&2
    exit 1
  fi
  local key row
  key="$(sed -n 1p "$HOME_DIR/run/example")"; row="$(sed -n 2p "$HOME_DIR/run/example")"
  cat <<MSG

Nightshift is up ($ds, data date $DATA_DATE).
  Airflow UI   http://$PUBLIC_HOST:$AIRFLOW_PORT   user: nightshift   password: NIGHTSHIFT_AIRFLOW_PASSWORD in $HOME_DIR/secrets.env
  MLflow UI    http://$PUBLIC_HOST:$MLFLOW_PORT
  Lookup API   http://$PUBLIC_HOST:$LOOKUP_PORT/docs   e.g.
               curl http://$PUBLIC_HOST:$LOOKUP_PORT/v1/datasets/$ds/predictions/$key
  Real-time    http://$PUBLIC_HOST:$REALTIME_PORT/docs   e.g.
               curl -X POST http://$PUBLIC_HOST:$REALTIME_PORT/v1/datasets/$ds/predict -H 'Content-Type: application/json' -d '$row'
  CLI          eval "\$(infra/local/stack.sh env)"; nightshift --dataset $ds status
  Stop         make down
MSG
}

replay() {
  local first="${1:-}" last="${2:-}" out="${REPLAY_OUT:-$ROOT/docs/replay}"
  install
  HOME_DIR="${REPLAY_HOME:-$ROOT/.nightshift-replay}"
  AIRFLOW_PORT="${REPLAY_AIRFLOW_PORT:-8090}"
  [ -d "$HOME_DIR/run" ] && down
  rm -rf "$HOME_DIR"  # a replay starts from nothing: no offline store, models, history or runs
  eval "$(environment)"
  init_stores
  trap down EXIT
  echo ">> starting Airflow for the replay on port $AIRFLOW_PORT (home $HOME_DIR)"
  start_airflow
  wait_healthy
  if [ -z "$first" ] || [ -z "$last" ]; then  # the source's dates within the spec's schedule window
    local range
    range="$(nightshift dates)"
    first="${first:-${range% *}}"
    last="${last:-${range#* }}"
  fi
  echo ">> replaying $(dataset_name) $first..$last (the Airflow UI shows the runs as they go)"
  nightshift replay "$first" "$last" --via airflow --out "$out"
}

stop_service() {  # stop one service's process group and wait until it has exited
  local pid
  pid="$(cat "$HOME_DIR/run/$1.pid" 2>/dev/null || true)"
  rm -f "$HOME_DIR/run/$1.pid"
  [ -n "$pid" ] || return 0
  kill -- "-$pid" 2>/dev/null || true
  local deadline=$((SECONDS + 30))
  while pgrep -g "$pid" > /dev/null; do
    [ "$SECONDS" -lt "$deadline" ] || kill -9 -- "-$pid" 2>/dev/null || true
    sleep 0.2
  done
  echo "   $1 stopped (it served another dataset)"
}

down() {  # stop every service's process group; wait until all of it has exited (SIGKILL after 30 s)
  local pidfile pid pids=()
  for pidfile in "$HOME_DIR"/run/*.pid; do
    [ -f "$pidfile" ] || continue
    pid="$(cat "$pidfile")"
    kill -- "-$pid" 2>/dev/null || true
    pids+=("$pid")
    rm -f "$pidfile"
    echo "stopped $(basename "$pidfile" .pid)"
  done
  local deadline=$((SECONDS + 30))
  for pid in "${pids[@]}"; do
    while pgrep -g "$pid" > /dev/null; do
      if [ "$SECONDS" -ge "$deadline" ]; then kill -9 -- "-$pid" 2>/dev/null || true; sleep 0.2; continue; fi
      sleep 0.2
    done
  done
  return 0
}

case "${1:-up}" in
  install) install ;;
  up) up ;;
  down) down ;;
  replay) shift; replay "$@" ;;
  check) check ;;
  env)  # a shell that matches the running stack: its spec folder and dataset unless this shell sets them
    if [ -z "${NIGHTSHIFT_SPEC_DIR:-}" ] && [ -s "$HOME_DIR/run/spec-dir" ]; then NIGHTSHIFT_SPEC_DIR="$(cat "$HOME_DIR/run/spec-dir")"; fi
    if [ -z "${NIGHTSHIFT_DATASET:-}" ] && [ -s "$HOME_DIR/run/realtime-api.dataset" ]; then
      NIGHTSHIFT_DATASET="$(cat "$HOME_DIR/run/realtime-api.dataset")"
    fi
    environment ;;
  *) echo "usage: $0 {install|up|down|check|replay [START END]|env}" >&2; exit 2 ;;
esac
