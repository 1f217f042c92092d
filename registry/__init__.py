"""The MLflow side: tracking set-up and URIs, the registered model's aliases and their audit, the gates,
model packaging and the smoke check."""
