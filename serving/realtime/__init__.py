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

from importlib import import_module
from typing import Any

# Imported on first use, so that importing the package (as `python -m serving.<service>.<module>`
# does for a child process) loads nothing else and reads no settings.
_LAZY = {"create_app": "serving.realtime.service", "canary_share": "serving.realtime.inference"}
__all__ = [*_LAZY, "app"]


def __getattr__(name: str) -> Any:
    if name == "app":
        value = globals()["app"] = __getattr__("create_app")()
        return value
    if name in _LAZY:
        value = globals()[name] = getattr(import_module(_LAZY[name]), name)
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
