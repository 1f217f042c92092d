"""Run one DAG with dag.test() for a logical date and print its final state and task states as JSON."""

import json
import sys
from datetime import datetime


def main(folder: str, dag_id: str, day: str, conf: str | None = None) -> None:
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(folder).get_dag(dag_id)
    run = dag.test(logical_date=datetime.fromisoformat(day + "T00:00:00+00:00"),
                   run_conf=json.loads(conf) if conf else None)
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    print("RESULT " + json.dumps({"state": str(run.state), "tasks": states}))


if __name__ == "__main__":
    main(*sys.argv[1:])
