#!/usr/bin/env bash
# The cluster topology on this machine (ops/cluster.py): `make cluster` / `make cluster-down`.
#   bash infra/cluster/cluster.sh up [DATA_DATE]   start it, run nightly then scoring through it, start serving
#   bash infra/cluster/cluster.sh down             stop every process it started (its data stays)
# Settings: DATASET (flights), NIGHTSHIFT_HOME (./.nightshift-cluster), NS_CLUSTER_PG (PostgreSQL server URL),
# NS_CLUSTER_BROKER (redis://127.0.0.1:6379/3), NS_CLUSTER_{AIRFLOW,MLFLOW,SPARK,LOOKUP,REALTIME,STATS}_PORT.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
export PATH="$ROOT/.venv/bin:$PATH"
export NIGHTSHIFT_HOME="${NIGHTSHIFT_HOME:-$ROOT/.nightshift-cluster}"
[ -n "${DATASET:-}" ] && export NIGHTSHIFT_DATASET="$DATASET"
case "${1:-}" in
  up) exec python -m ops.cluster up ${2:+--date "$2"} ;;
  down) exec python -m ops.cluster down ;;
  *) echo "usage: $0 up [DATA_DATE] | down" >&2; exit 2 ;;
esac
