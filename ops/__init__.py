"""The operator layer, on top of everything it drives: the `nightshift` CLI, the Airflow REST client,
`status` (what the registry, runs and audit say) and the replay of history through the DAGs."""
