"""The batch work as plain, importable functions: one module per pipeline step, each taking the pipeline
context (context.py); nightly.py defines a nightly run once. No Airflow here: dags/ wraps these."""
