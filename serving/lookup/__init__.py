"""The prediction lookup service: precomputed predictions of the served snapshot, by entity key.

    uvicorn serving.lookup:app --port 8000

Every answer names the model version and the snapshot that produced it and when it was scored.
`app` is built on first access (as uvicorn asks for it), so importing the package reads no settings.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

# Imported on first use, so that importing the package (as `python -m serving.<service>.<module>`
# does for a child process) loads nothing else and reads no settings.
_LAZY = {"create_app": "serving.lookup.service"}
__all__ = [*_LAZY, "app"]


def __getattr__(name: str) -> Any:
    if name == "app":
        value = globals()["app"] = __getattr__("create_app")()
        return value
    if name in _LAZY:
        value = globals()[name] = getattr(import_module(_LAZY[name]), name)
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
