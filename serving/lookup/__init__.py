"""The prediction lookup service: precomputed predictions of the served snapshot, by entity key.

    uvicorn serving.lookup:app --port 8000

Every answer names the model version and the snapshot that produced it and when it was scored.
`app` is built on first access (as uvicorn asks for it), so importing the package reads no settings.
"""

from __future__ import annotations

from typing import Any

from serving.lookup.service import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "app":
        app = globals()["app"] = create_app()
        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
