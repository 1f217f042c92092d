"""serving/one_write.py: a replica that dies mid-response has sent nothing, so the balancer can retry the
request elsewhere; every other answer is what plain uvicorn sends. Real uvicorn processes on loopback sockets.
"""

from __future__ import annotations

import http.client
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from ops.serving_tier import free_port, wait_for

ONE_WRITE = "serving.one_write:OneWriteProtocol"


def served(protocol: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "tests.integration.dying_app:app", "--port", str(port),
                             "--loop", "uvloop", "--http", protocol, "--no-access-log"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def answers() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            return False

    def alive() -> None:
        if proc.poll() is not None:
            raise RuntimeError(f"uvicorn exited {proc.returncode}: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]

    wait_for(answers, f"uvicorn with {protocol}", 60, alive)
    return proc, port


@pytest.fixture
def one_write() -> Iterator[int]:
    proc, port = served(ONE_WRITE)
    try:
        yield port
    finally:
        proc.kill()
        proc.wait()


def bytes_before_close(port: int, path: str) -> bytes:
    """Send one GET and read until the server closes the connection (or resets it)."""
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
    return received


@pytest.mark.parametrize(("protocol", "head_sent"), [(ONE_WRITE, False), ("httptools", True)])
def test_a_process_killed_mid_response_has_sent_nothing(protocol: str, head_sent: bool) -> None:
    """With one_write the crash leaves a connection closed with no answer, which HAProxy retries (empty-response);
    plain uvicorn has already sent the head, a broken answer no balancer can retry."""
    proc, port = served(protocol)
    try:
        received = bytes_before_close(port, "/die")
        assert proc.wait(timeout=30) == -9
    finally:
        proc.kill()
        proc.wait()
    assert received.startswith(b"HTTP/1.1 200 OK") is head_sent, received


def test_answers_are_whole_on_a_kept_alive_connection(one_write: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", one_write, timeout=30)
    try:
        for _ in range(3):  # the same connection each time
            conn.request("GET", "/ok")
            answer = conn.getresponse()
            assert (answer.status, answer.read()) == (200, b'{"ok": true}')
        conn.request("HEAD", "/ok")  # a head without a body still goes out
        answer = conn.getresponse()
        assert (answer.status, answer.getheader("content-length"), answer.read()) == (200, "12", b"")
        size = 3 * 256 * 1024 + 7  # over the held limit: written as it comes, whole at the other end
        conn.request("GET", f"/big?bytes={size}")
        answer = conn.getresponse()
        assert (answer.status, len(answer.read())) == (200, size)
        # A client that waits for "100 Continue" before its body gets it, then the answer.
        conn.putrequest("POST", "/echo")
        conn.putheader("Content-Length", "5")
        conn.putheader("Expect", "100-continue")
        conn.endheaders()
        assert conn.sock is not None
        conn.sock.settimeout(10)
        assert conn.sock.recv(64) == b"HTTP/1.1 100 Continue\r\n\r\n"
        conn.send(b"hello")
        answer = conn.getresponse()
        assert (answer.status, answer.read()) == (200, b"hello")
    finally:
        conn.close()
