"""Fixtures: a real jobwired on a Unix socket in a temp directory.

The binary is $JOBWIRED, else the release or ci build of this checkout.
"""

import os
import pathlib
import signal
import subprocess
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]


def _jobwired() -> str:
    env = os.environ.get("JOBWIRED")
    if env:
        return env
    for preset in ("ci", "release"):
        path = ROOT / "build" / preset / "bin" / "jobwired"
        if path.exists():
            return str(path)
    pytest.fail("no jobwired: build it or set JOBWIRED")


class Server:
    """One jobwired process; restart() keeps its database and socket."""

    def __init__(self, directory: pathlib.Path, *extra: str) -> None:
        self.dir = directory
        self.socket = directory / "j.sock"
        self.addr = f"unix:{self.socket}"
        self.extra = list(extra)
        self.proc = None
        self.log = directory / "jobwired.log"
        self.start()

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [_jobwired(), "--listen", self.addr, "--db",
                 str(self.dir / "j.db"), *self.extra],
                stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.socket.exists() and b"listening on" in self.log.read_bytes(
            ).split(b"starting")[-1]:
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        pytest.fail("jobwired did not start:\n" + self.log.read_text())

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def server(tmp_path):
    s = Server(tmp_path, "--shutdown-grace=2s", "--lease-ttl=3s")
    yield s
    s.stop()
