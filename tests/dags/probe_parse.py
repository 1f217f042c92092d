"""Parse the DAG folder and report what parsing did: DB queries, connection look-ups, heavy imports.

Run as a script (a separate process) so nothing imported by other tests hides what parsing imports.
"""

import json
import sys

from sqlalchemy import event
from sqlalchemy.engine import Engine

queries: list[str] = []
event.listen(Engine, "before_cursor_execute", lambda conn, cursor, statement, *a: queries.append(statement))

lookups: list[str] = []
from airflow.sdk import Connection, Variable  # noqa: E402

Connection.get = classmethod(lambda cls, conn_id: lookups.append(f"connection {conn_id}"))  # type: ignore
Variable.get = staticmethod(lambda key, *a, **k: lookups.append(f"variable {key}"))  # type: ignore

from airflow.dag_processing.dagbag import DagBag  # noqa: E402

before = set(sys.modules)
bag = DagBag(sys.argv[1])
heavy = sorted({m.split(".")[0] for m in set(sys.modules) - before}
               & {"torch", "mlflow", "great_expectations", "pyspark", "sklearn", "evidently", "jobs", "validation"})
print(json.dumps({"dags": sorted(bag.dag_ids), "import_errors": {k: str(v) for k, v in bag.import_errors.items()},
                  "queries": queries, "lookups": lookups, "heavy_imports": heavy}))
