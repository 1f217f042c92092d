"""The load-balanced serving tier: HAProxy (infra/cluster/haproxy.cfg) in front of lookup and real-time replicas.

Each replica is its own uvicorn process of the unchanged service (`serving.lookup:app`,
`serving.realtime:app`) with the same settings from the environment: the prediction store and the
prediction log on one database (PostgreSQL on a cluster), the registry an MLflow server over HTTP.
HAProxy checks every replica's /readyz, routes lookups to the least-loaded replica and predictions by a
consistent hash of the `X-Entity-Key` header, and retries a request that found a dead replica on another.

Used by the integration tests (tests/integration/test_serving_tier.py) and bench/topology_bench.py; what the
balancer says about its replicas comes from its admin socket (`show stat`), never from a sleep.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HAPROXY_CFG = Path(__file__).resolve().parents[1] / "infra" / "cluster" / "haproxy.cfg"
APPS = {"lookup": "serving.lookup:app", "realtime": "serving.realtime:app"}


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for(check: Callable[[], bool], what: str, timeout: float = 120.0, alive: Callable[[], None] | None = None
             ) -> None:
    """Poll `check` every 50 ms until it holds; `alive` raises when what is awaited has died. A clear error after
    `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if alive is not None:
            alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f}s")
        time.sleep(0.05)


def answers(url: str, status: int = 200, headers: dict[str, str] | None = None) -> bool:
    """Whether GET `url` answers `status` now."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=2) as r:
            return bool(r.status == status)
    except urllib.error.HTTPError as exc:
        return exc.code == status
    except OSError:
        return False


@dataclass
class Replica:
    """One uvicorn process of a service, on host:port, logging to `log`."""

    name: str  # the server's name in haproxy.cfg: lookup1, realtime2, ...
    kind: str  # lookup | realtime
    host: str
    port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def start(self, env: dict[str, str]) -> None:
        """Start the process (returns at once: `ready` says when it serves)."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", APPS[self.kind], "--host", self.host, "--port", str(self.port),
             "--loop", "uvloop", "--http", "serving.one_write:OneWriteProtocol", "--no-access-log",
             "--timeout-graceful-shutdown", "5"],
            env=env, stdout=subprocess.DEVNULL,
            stderr=open(self.log, "ab"), start_new_session=True)  # noqa: SIM115  (the child holds it)

    def alive(self) -> None:
        """Raise with the log's tail when the process has exited."""
        if self.proc is None or self.proc.poll() is not None:
            code = None if self.proc is None else self.proc.returncode
            tail = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
            raise RuntimeError(f"replica {self.name} is not running (exit {code}); {self.log}:\n{tail}")

    def ready(self, headers: dict[str, str]) -> bool:
        return answers(f"{self.url}/readyz", 200, headers)

    def kill(self) -> None:
        """SIGKILL the replica's process group (a crash: no shutdown hooks run)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class ServingTier:
    """HAProxy and `replicas` lookup and real-time replicas, all on `host` (free ports unless given)."""

    run_dir: Path
    env: dict[str, str]
    host: str = "127.0.0.1"
    replicas: int = 2
    lookup_port: int = 0
    realtime_port: int = 0
    stats_port: int = 0
    api_key: str = ""
    lookups: list[Replica] = field(default_factory=list)
    realtimes: list[Replica] = field(default_factory=list)
    haproxy: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        if self.replicas != 2:
            raise ValueError("infra/cluster/haproxy.cfg names two replicas of each service")
        self.lookup_port = self.lookup_port or free_port(self.host)
        self.realtime_port = self.realtime_port or free_port(self.host)
        self.stats_port = self.stats_port or free_port(self.host)
        for kind, into in (("lookup", self.lookups), ("realtime", self.realtimes)):
            for i in range(1, self.replicas + 1):
                name = f"{kind}{i}"
                into.append(Replica(name, kind, self.host, free_port(self.host), self.run_dir / f"{name}.log"))

    @property
    def lookup_url(self) -> str:
        return f"http://{self.host}:{self.lookup_port}"

    @property
    def realtime_url(self) -> str:
        return f"http://{self.host}:{self.realtime_port}"

    @property
    def socket_path(self) -> Path:
        """HAProxy's admin socket: in run_dir, or in the temp folder when that path is over the 107 bytes a Unix
        socket's path may have (a deep test folder)."""
        path = self.run_dir / "haproxy.sock"
        if len(str(path).encode()) <= 100:
            return path
        digest = hashlib.sha1(str(self.run_dir.resolve()).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"ns-haproxy-{digest}.sock"

    @property
    def check_headers(self) -> dict[str, str]:
        return {"X-API-Key": self.api_key} if self.api_key else {}

    def all_replicas(self) -> list[Replica]:
        return [*self.lookups, *self.realtimes]

    def replica(self, name: str) -> Replica:
        return next(r for r in self.all_replicas() if r.name == name)

    def haproxy_env(self) -> dict[str, str]:
        check = ("X-API-Key", self.api_key) if self.api_key else ("X-Health-Check", "haproxy")
        return {"NS_LB_HOST": self.host, "NS_LOOKUP_LB_PORT": str(self.lookup_port),
                "NS_REALTIME_LB_PORT": str(self.realtime_port), "NS_LB_STATS_PORT": str(self.stats_port),
                "NS_LB_SOCKET": str(self.socket_path), "NS_CHECK_HEADER_NAME": check[0],
                "NS_CHECK_HEADER_VALUE": check[1],
                **{f"NS_{r.name.upper()}": r.address for r in self.all_replicas()}}

    def start(self, timeout: float = 180.0) -> None:
        """Start every replica, wait until each is ready, then HAProxy, and wait until it has them all UP."""
        haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
        if not Path(haproxy).exists():
            raise RuntimeError("haproxy is not installed: `bash infra/local/stack.sh install` installs Debian's "
                               "package (apt-get install haproxy) when it runs as root")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for r in self.all_replicas():
            r.start(self.env)
        for r in self.all_replicas():
            wait_for(lambda r=r: r.ready(self.check_headers), f"replica {r.name} ready", timeout, r.alive)  # type: ignore[misc]
        env = {**os.environ, **self.haproxy_env()}
        self.socket_path.unlink(missing_ok=True)  # an earlier HAProxy's socket file answers nobody
        self.haproxy = subprocess.Popen([haproxy, "-W", "-db", "-f", str(HAPROXY_CFG)], env=env,
                                        stdout=subprocess.DEVNULL, stderr=open(self.run_dir / "haproxy.log", "ab"),  # noqa: SIM115
                                        start_new_session=True)
        wait_for(self._admin_answers, "haproxy's admin socket", 30, self._haproxy_alive)
        for r in self.all_replicas():
            self.wait_server(r.name, "UP", timeout)

    def _haproxy_alive(self) -> None:
        if self.haproxy is None or self.haproxy.poll() is not None:
            log = (self.run_dir / "haproxy.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"haproxy is not running; {self.run_dir / 'haproxy.log'}:\n{log}")

    def _admin_answers(self) -> bool:
        try:
            return bool(self.admin("show info"))
        except OSError:
            return False

    def admin(self, command: str) -> str:
        """One command on HAProxy's admin socket; its answer."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(str(self.socket_path))
            sock.sendall(command.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def stats(self) -> list[dict[str, str]]:
        """`show stat` as rows (pxname, svname, status, stot, ...)."""
        text = self.admin("show stat").lstrip("# ")
        return list(csv.DictReader(io.StringIO(text)))

    def served(self) -> dict[str, int]:
        """Requests each replica has answered so far, by HAProxy's count (stot), by server name."""
        return {row["svname"]: int(row["stot"]) for row in self.stats() if row["svname"] not in ("FRONTEND", "BACKEND")}

    def server_status(self) -> dict[str, str]:
        """The balancer's view of each replica: UP, DOWN, ... by server name."""
        return {row["svname"]: row["status"].split(" ")[0] for row in self.stats()
                if row["svname"] not in ("FRONTEND", "BACKEND")}

    def wait_server(self, name: str, status: str, timeout: float = 120.0) -> float:
        """Wait until HAProxy reports the replica `status` (UP, DOWN); the seconds it took."""
        t0 = time.monotonic()
        wait_for(lambda: self.server_status().get(name) == status, f"haproxy to see {name} {status}", timeout,
                 self._haproxy_alive)
        return time.monotonic() - t0

    def restart(self, name: str, timeout: float = 120.0) -> float:
        """Start a (killed) replica again; seconds until HAProxy has it back in rotation."""
        r = self.replica(name)
        t0 = time.monotonic()
        r.start(self.env)
        self.wait_server(name, "UP", timeout)
        return time.monotonic() - t0

    def stop(self) -> None:
        if self.haproxy is not None and self.haproxy.poll() is None:
            os.killpg(self.haproxy.pid, signal.SIGTERM)
            self.haproxy.wait(timeout=30)
        for r in self.all_replicas():
            r.stop()
        self.socket_path.unlink(missing_ok=True)


WRK_SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "tier_requests.lua"


def write_requests(path: Path, lines: list[tuple[str, ...]]) -> Path:
    """The request file bench/tier_requests.lua reads: (GET, path) or (POST, path, entity key, JSON body)."""
    path.write_text("".join("\t".join(fields) + "\n" for fields in lines))
    return path


def start_wrk(url: str, requests_file: Path, seconds: int, connections: int = 8,
              threads: int = 1) -> subprocess.Popen[str]:
    """wrk against `url` for `seconds` with the requests of `requests_file` (bench/tier_requests.lua). A request
    counts as failed when it gets no answer within 10 s (wrk's default, 2 s, would count a request that a retry
    answered late as failed), a socket error or a status other than 2xx/3xx."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk is not installed: `bash infra/local/stack.sh install` installs Debian's package "
                           "when it runs as root")
    return subprocess.Popen([wrk, f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "--latency",
                             "-s", str(WRK_SCRIPT), url], env={**os.environ, "REQUESTS_FILE": str(requests_file)},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def stop_wrk(proc: subprocess.Popen[str]) -> dict[str, int]:
    """End a wrk run now (SIGINT: wrk stops its connections and reports as at the end); its figures."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    return wrk_result(proc, timeout=60)


def wrk_result(proc: subprocess.Popen[str], timeout: float = 600.0) -> dict[str, int]:
    """Wait for wrk; its figures (bench/tier_requests.lua): requests, duration_us, p50_us, p99_us, non2xx,
    socket_errors, and those by kind: connect, read, write, timeout (a request over wrk's 2 s)."""
    out, _ = proc.communicate(timeout=timeout)
    lines = [x for x in out.splitlines() if x.startswith(("RESULT ", "ERRORS "))]
    if proc.returncode != 0 or not any(x.startswith("RESULT ") for x in lines):
        raise RuntimeError(f"wrk failed (exit {proc.returncode}):\n{out[-3000:]}")
    return {k: int(v) for line in lines for k, v in (part.split("=") for part in line.split()[1:])}
