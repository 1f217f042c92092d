"""FastAPI apps: the prediction lookup service (and the real-time endpoint to come)."""
