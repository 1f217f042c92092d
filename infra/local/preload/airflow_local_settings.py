"""Airflow local settings for the scheduler of the local stack: preload the task libraries.

Airflow imports this module at start-up when it is on the path; `infra/local/stack.sh` puts this
folder on PYTHONPATH for the scheduler only. LocalExecutor workers, and the task processes they
fork, then start with the heavy third-party libraries already imported instead of importing them
again for every task (2-4 s a task on 2 cores, measured when this was chosen). Nightshift's own modules are
not preloaded, so an edited job runs as edited without restarting the scheduler.
"""

import importlib
import logging

PRELOAD = ("numpy", "pandas", "pyarrow", "pyarrow.parquet", "sklearn.metrics", "sqlalchemy", "mlflow",
           "mlflow.pyfunc", "torch", "great_expectations", "evidently", "pyspark.sql", "matplotlib")

for _name in PRELOAD:
    try:
        importlib.import_module(_name)
    except Exception as exc:  # noqa: BLE001  (a missing library only loses the speed-up)
        logging.getLogger(__name__).warning("not preloaded: %s (%s)", _name, exc)
