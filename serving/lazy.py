"""Lazy package exports: a service package names what it exports without importing it until first use.

So importing `serving.lookup` or `serving.realtime` (as `python -m serving.realtime.predlog_writer`
does for its child process) loads nothing else and reads no settings; `app` is built when uvicorn
first asks for it. No imports here, on purpose.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` for `package`: each name of `exports` from its module, and `app` from create_app()."""
    def getattr_(name: str) -> Any:
        namespace = vars(import_module(package))
        if name == "app":
            value = namespace["app"] = getattr_("create_app")()
        elif name in exports:
            value = namespace[name] = getattr(import_module(exports[name]), name)
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return value

    return getattr_
