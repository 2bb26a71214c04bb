"""What a JSON request keeps now that it calls the service's unary method in
process rather than through an in-process gRPC call: its deadline (504 like
a gRPC client's DEADLINE_EXCEEDED), the drain of a graceful stop (an answer
for every request in flight, no acknowledged job lost), the scope refusal
(before the method runs, with the code gRPC gives) and the access log line.
"""

import json
import os
import re
import signal
import sqlite3
import subprocess
import threading
import time

import httpx
import pytest

from conftest import ROOT, Server

GRPCURL = str(ROOT / "build" / "tools" / "bin" / "grpcurl")


def wait_for(predicate, what, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    pytest.fail(f"timed out waiting for {what}")


class WriteLock:
    """Another SQLite connection holding the database's write lock: the
    server's writes wait in SQLite's busy handler (up to 5 s) until
    release(), so a write request stays open meanwhile. Reads go on (WAL)."""

    def __init__(self, server):
        self.db = sqlite3.connect(str(server.dir / "j.db"), timeout=10,
                                  isolation_level=None)
        self.db.execute("BEGIN IMMEDIATE")

    def release(self):
        if self.db is not None:
            self.db.execute("ROLLBACK")
            self.db.close()
            self.db = None


def in_background(fn):
    out = {}

    def run():
        try:
            out["r"] = fn()
        except Exception as e:  # noqa: BLE001 - reported by the caller
            out["error"] = e

    t = threading.Thread(target=run)
    t.start()
    return t, out


def queued_job(http):
    r = http.post("/v1/jobs", json={"job": {"kind": "k"}})
    assert r.status_code == 200, r.text
    return r.json()["job"]["id"]


def test_a_call_past_its_deadline_gets_504_and_the_connection_lives(tmp_path):
    server = Server(tmp_path, "--http-call-timeout=1s", "--shutdown-grace=2s")
    try:
        with server.client() as http:
            job = queued_job(http)
            lock = WriteLock(server)
            try:
                r = http.post(f"/v1/jobs/{job}:cancel", json={"reason": "x"})
            finally:
                lock.release()
            assert r.status_code == 504, r.text
            assert r.json() == {"code": 4, "message": "Deadline Exceeded"}
            # The method ran on: once the lock went, the cancel committed;
            # the same keep-alive connection serves the next request.
            wait_for(lambda: http.get(f"/v1/jobs/{job}").json()["state"]
                     == "STATE_CANCELLED", "the cancel to commit")
    finally:
        assert server.stop() == 0


def test_a_drain_waits_for_the_json_calls_in_flight(tmp_path):
    server = Server(tmp_path, "--shutdown-grace=30s", "--log-level=debug")
    try:
        with server.client() as http:
            job = queued_job(http)
        lock = WriteLock(server)
        try:
            def cancel():
                with httpx.Client(base_url=server.url, timeout=60) as c:
                    return c.post(f"/v1/jobs/{job}:cancel", json={})
            canceller, out = in_background(cancel)
            # The call has started (its access log line) and waits for the
            # store; now the stop begins.
            wait_for(lambda: f"call POST /v1/jobs/{job}:cancel"
                     in server.log.read_text(), "the cancel to start")
            server.proc.send_signal(signal.SIGTERM)
            wait_for(lambda: "draining" in server.log.read_text(),
                     "the drain")
            time.sleep(0.3)
            # The drain waits for it: no gRPC call is open, only this one.
            assert server.proc.poll() is None
            assert canceller.is_alive()
        finally:
            lock.release()
        canceller.join(timeout=30)
        assert "error" not in out, out
        r = out["r"]
        assert r.status_code == 200, r.text
        assert r.json()["state"] == "STATE_CANCELLED"
        assert server.proc.wait(timeout=60) == 0
        server.start()
        with server.client() as http:
            assert http.get(f"/v1/jobs/{job}").json()["state"] == \
                "STATE_CANCELLED"
    finally:
        assert server.stop() == 0


def test_submits_during_a_drain_are_acked_durably_or_refused_503(tmp_path):
    server = Server(tmp_path, "--shutdown-grace=5s")
    acked, refused, stop = [], [], threading.Event()

    def submit(i):
        with server.client() as c:
            n = 0
            while not stop.is_set():
                n += 1
                try:
                    r = c.post("/v1/jobs", json={
                        "job": {"kind": "later"}, "requestId": f"s{i}-{n}"})
                except httpx.TransportError:
                    return  # the server closed the connection between calls
                if r.status_code == 200:
                    acked.append(r.json()["job"]["id"])
                else:
                    refused.append(r)
                    return

    try:
        submitters = [threading.Thread(target=submit, args=(i,))
                      for i in range(4)]
        for t in submitters:
            t.start()
        wait_for(lambda: len(acked) >= 20, "submits before the stop")
        server.proc.send_signal(signal.SIGTERM)
        for t in submitters:
            t.join(timeout=30)
        stop.set()
        assert server.proc.wait(timeout=60) == 0
        # A refused submit has the draining answer: 503 with Retry-After.
        for r in refused:
            assert r.status_code == 503, r.text
            assert r.json()["code"] == 14
            assert int(r.headers["retry-after"]) >= 1
        # Every acknowledged submit is durable.
        server.start()
        with server.client() as http:
            for job_id in acked:
                assert http.get(f"/v1/jobs/{job_id}").status_code == 200
    finally:
        stop.set()
        assert server.stop() == 0


TOKENS = """reader  r3ader-token  read
boss    b0ss-token    admin,read,submit
"""


def test_a_scope_refusal_is_grpcs_and_runs_nothing(tmp_path):
    path = tmp_path / "tokens"
    path.write_text(TOKENS)
    os.chmod(path, 0o600)
    server = Server(tmp_path, "--auth-token-file", str(path),
                    "--shutdown-grace=1s", "--log-level=debug")
    try:
        body = {"job": {"kind": "k"}, "requestId": "scoped-1"}
        out = subprocess.run(
            [GRPCURL, "-plaintext", "-unix", "-format-error",
             "-H", "authorization: Bearer r3ader-token", "-d",
             json.dumps(body), str(server.grpc_socket),
             "jobwire.v1.JobService/SubmitJob"],
            capture_output=True, text=True, timeout=30)
        grpc_code = json.loads(out.stderr)["code"]
        with server.client() as http:
            r = http.post("/v1/jobs", json=body,
                          headers={"Authorization": "Bearer r3ader-token"})
            assert grpc_code == 7
            assert r.status_code == 403
            assert r.json()["code"] == grpc_code
            assert "lacks the scope 'submit'" in r.json()["message"]
            # Neither refusal reached the service: no job was made.
            boss = {"Authorization": "Bearer b0ss-token"}
            assert http.get("/v1/jobs", headers=boss).json() == {}
            r = http.post("/v1/jobs", json=body, headers=boss)
            assert r.status_code == 200 and r.json()["created"] is True
        # Each HTTP call has an access log line in the shape of gRPC's,
        # naming its token and peer.
        log = server.log.read_text()
        lines = re.findall(r"call POST /v1/jobs by (\S+) from (\S+)", log)
        assert [who for who, peer in lines] == ["token:reader", "token:boss"]
        assert all(peer.startswith("ipv4:127.0.0.1:") or
                   peer.startswith("unix:") for who, peer in lines), lines
    finally:
        assert server.stop() == 0
