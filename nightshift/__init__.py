"""The core every layer may import: settings, dataset specs, the feature transform, the model, the offline
store and the SQL store. It imports nothing above it, no Airflow and no MLflow (import-linter checks)."""
