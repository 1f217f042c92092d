"""A chain of 10 tasks that do nothing: what an executor costs per task, apart from any work
(bench/executor_overhead.py runs it on the LocalExecutor and on the CeleryExecutor)."""

from __future__ import annotations

from airflow.sdk import chain, dag, task

TASKS = 10


@dag(dag_id="noop_chain", schedule=None, start_date=None, catchup=False, tags=["bench"])
def noop_chain() -> None:
    @task
    def noop(i: int) -> int:
        return i

    chain(*[noop.override(task_id=f"noop_{i}")(i) for i in range(TASKS)])


noop_chain()
