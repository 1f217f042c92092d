"""Run one DAG with dag.test() for a logical date and print its final state and task states as JSON."""

import json
import sys
from datetime import datetime

from airflow.dag_processing.dagbag import DagBag

folder, dag_id, day = sys.argv[1:4]
conf = json.loads(sys.argv[4]) if len(sys.argv) > 4 else None
dag = DagBag(folder).get_dag(dag_id)
run = dag.test(logical_date=datetime.fromisoformat(day + "T00:00:00+00:00"), run_conf=conf)
states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
print("RESULT " + json.dumps({"state": str(run.state), "tasks": states}))
