"""A bare ASGI app for tests/integration/test_one_write.py, served by uvicorn in its own process.

    GET  /ok       a small JSON answer
    GET  /big      a body of ?bytes= bytes
    POST /echo     the request body back
    GET  /die      starts a 200 answer, then SIGKILLs its own process before the body (a crash mid-response)
"""

from __future__ import annotations

import os
import signal
from typing import Any
from urllib.parse import parse_qs

Scope = dict[str, Any]


async def app(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    path = scope["path"]
    body = b'{"ok": true}'
    if path == "/echo":
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
    elif path == "/big":
        body = b"x" * int(parse_qs(scope["query_string"].decode())["bytes"][0])
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    if path == "/die":
        os.kill(os.getpid(), signal.SIGKILL)
    await send({"type": "http.response.body", "body": body})
