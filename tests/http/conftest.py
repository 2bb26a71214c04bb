"""Fixtures for the HTTP face's tests: a real jobwired with --http.

The binary is $JOBWIRED, else the ci, dev or release build of this checkout.
HTTP is served on a Unix socket in a temp directory (so a restart keeps the
address) and on 127.0.0.1:0 (the bound port is read from the log; HTTPS
when the extra flags give --tls-cert).
"""

import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import httpx
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "clients" / "python"))


def jobwired_binary() -> str:
    env = os.environ.get("JOBWIRED")
    if env:
        return env
    for preset in ("ci", "dev", "release"):
        path = ROOT / "build" / preset / "bin" / "jobwired"
        if path.exists():
            return str(path)
    pytest.fail("no jobwired: build it or set JOBWIRED")


class Server:
    """One jobwired process; restart() keeps its database and sockets."""

    def __init__(self, directory: pathlib.Path, *extra: str) -> None:
        self.dir = directory
        self.grpc_socket = directory / "j.sock"
        self.http_socket = directory / "h.sock"
        self.grpc_addr = f"unix:{self.grpc_socket}"
        self.extra = list(extra)
        self.proc = None
        self.log = directory / "jobwired.log"
        self.url = ""
        self.start()

    def start(self) -> None:
        offset = self.log.stat().st_size if self.log.exists() else 0
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [jobwired_binary(), "--listen", self.grpc_addr, "--db",
                 str(self.dir / "j.db"), "--http", f"unix:{self.http_socket}",
                 "--http", "127.0.0.1:0", *self.extra],
                stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            text = self.log.read_bytes()[offset:].decode(errors="replace")
            m = re.search(r"listening on (https?://127\.0\.0\.1:\d+)", text)
            if m:
                self.url = m.group(1)
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        pytest.fail("jobwired did not start:\n" + self.log.read_text())

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            return self.proc.wait(timeout=30)
        return self.proc.returncode if self.proc else 0

    def restart(self) -> None:
        self.stop()
        self.start()

    def client(self, **kwargs) -> httpx.Client:
        """An HTTP client over TCP."""
        return httpx.Client(base_url=self.url, timeout=10, **kwargs)

    def unix_client(self, **kwargs) -> httpx.Client:
        """An HTTP client over the Unix socket (same address after a restart)."""
        return httpx.Client(
            base_url="http://jobwired",
            transport=httpx.HTTPTransport(uds=str(self.http_socket)),
            timeout=10, **kwargs)


@pytest.fixture
def server(tmp_path):
    s = Server(tmp_path, "--shutdown-grace=2s", "--lease-ttl=3s")
    yield s
    assert s.stop() == 0


@pytest.fixture
def http(server):
    with server.client() as c:
        yield c
