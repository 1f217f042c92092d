"""The Airflow DAG files (`nightly`, `scoring`, `drift`); they wire tasks and hold no logic (jobs/ does)."""
