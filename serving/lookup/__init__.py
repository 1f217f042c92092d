"""The prediction lookup service: precomputed predictions of the served snapshot, by entity key.

    uvicorn serving.lookup:app --port 8000

Every answer names the model version and the snapshot that produced it and when it was scored.
`app` is built on first access (as uvicorn asks for it), so importing the package reads no settings.
"""

from __future__ import annotations

from serving.lazy import lazy_exports

_EXPORTS = {"create_app": "serving.lookup.service"}
__all__ = [*_EXPORTS, "app"]
__getattr__ = lazy_exports(__name__, _EXPORTS)
