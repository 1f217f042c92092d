"""The real-time inference service: fresh predictions from the registry's champion.

    uvicorn serving.realtime:app --port 8001

`POST /v1/predict` takes one row of raw features (answer: one prediction) or {"rows": [...]}
(answer: {"predictions": [...]}); the row schema comes from the dataset spec (schema.py).
Concurrent requests are batched dynamically (batcher.py) and scored by the champion, in its own
process by default (models.py, model_process.py), which is swapped for a newly promoted one
without dropping requests. When the model cannot answer, rows that carry an entity key get the
batch prediction from the prediction store, marked as a fallback; anything else gets a 503 that
says why (routes.py). Every prediction is logged to the SQL store off the request path
(predlog_writer.py). Optional shadow and canary with the challenger (inference.py).

`app` is built on first access (as uvicorn asks for it), so importing the package reads no settings.
"""

from __future__ import annotations

from serving.lazy import lazy_exports

_EXPORTS = {"create_app": "serving.realtime.service", "canary_share": "serving.realtime.inference"}
__all__ = [*_EXPORTS, "app"]
__getattr__ = lazy_exports(__name__, _EXPORTS)
