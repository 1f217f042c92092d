"""A long-lived process that opens Nightshift's stores the way one of the stack's parts does, on command.

Reads one JSON command per line on stdin: {"role", "home", "store_url", "tracking_uri", "tag"}; does the
role's work against those stores and prints "OK <tag>" or "ERR <tag> <error>" (one line). Imports are
done once at start ("READY"), so that the workers of a round start their work together.
"""

from __future__ import annotations

import json
import os
import sys
import traceback

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

import mlflow  # noqa: E402
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore  # noqa: E402

from nightshift import store  # noqa: E402
from nightshift.settings import Settings  # noqa: E402
from registry import tracking  # noqa: E402


def settings_of(cmd: dict[str, str]) -> Settings:
    return Settings(home=cmd["home"], dataset="tiny", store_url=cmd["store_url"],
                    mlflow_tracking_uri=cmd["tracking_uri"])


def run(cmd: dict[str, str]) -> None:
    s, role = settings_of(cmd), cmd["role"]
    if role == "init":  # `nightshift init`
        store.init_store(s.store_uri)
        tracking.init_tracking(s, ["tiny", "flights"])
    elif role == "realtime":  # the real-time endpoint's registry poll
        client = tracking.connect(s)
        client.search_registered_models()
        from registry.aliases import alias_version

        alias_version(client, s.model_name("tiny"), "champion")
        store.get_engine(s.store_uri).dispose()
    elif role == "task":  # a pipeline task: the dataset's experiment, a run with a metric
        tracking.configure(s, "tiny")
        with mlflow.start_run(run_name=f"task {cmd['tag']}"):
            mlflow.log_metric("x", 1.0)
    elif role == "audit":  # the promote task's audit row in the SQL store
        engine = store.get_engine(s.store_uri)
        store.record_alias_move(engine, model_name="nightshift-tiny", alias="champion", from_version=None,
                                to_version="1", actor="test", reason=cmd["tag"])
    elif role == "mlflow-server":  # what `mlflow server` does with its backend store at start-up
        SqlAlchemyStore(s.tracking_uri, str(s.artifact_root)).search_experiments()
    else:
        raise ValueError(f"unknown role {role!r}")


def main() -> None:
    print("READY", flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        try:
            run(cmd)
            print(f"OK {cmd['tag']}", flush=True)
        except Exception as exc:  # noqa: BLE001  (reported to the test, which fails on it)
            last = traceback.format_exception_only(type(exc), exc)[-1].strip().replace("\n", " ")
            print(f"ERR {cmd['tag']} {last}", flush=True)


if __name__ == "__main__":
    main()
