"""uvicorn's httptools protocol, sending each response in one write: `--http serving.one_write:OneWriteProtocol`.

Plain uvicorn writes a response's status line and headers as soon as the app starts the response, and the body
when the app sends it. A replica that dies between the two (SIGKILL, the OOM killer, a lost node) leaves the
balancer holding a head without a body: HAProxy cannot retry a request whose answer has begun, so the client
gets a broken response. Here every write of a response is held until the response is complete and then goes
out at once: a replica that dies mid-response has sent nothing, the balancer sees a connection closed with no
answer and retries the request on another replica (haproxy.cfg `retry-on empty-response`). Both APIs answer
small JSON bodies; a body over `FLUSH_BYTES` is written as it comes, as plain uvicorn does.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

FLUSH_BYTES = 256 * 1024
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class HeldWrites:
    """A transport that keeps what is written until `flush` (or `close`), then writes it in one call."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._held: list[bytes] = []
        self._size = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._held.append(bytes(data))
        self._size += len(data)
        if self._size > FLUSH_BYTES or data == CONTINUE:  # "100 Continue" is owed before the request body
            self.flush()

    def flush(self) -> None:
        if self._held:
            data = b"".join(self._held)
            self._held.clear()
            self._size = 0
            self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:  # everything else is the real transport's
        return getattr(self._transport, name)


class OneWriteProtocol(HttpToolsProtocol):
    """HttpToolsProtocol whose responses leave in one write, when uvicorn calls the response complete."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(HeldWrites(transport))  # type: ignore[arg-type]

    def on_response_complete(self) -> None:
        self.transport.flush()  # type: ignore[attr-defined]
        super().on_response_complete()
