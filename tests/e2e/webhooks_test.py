"""End to end: webhooks sent by a real jobwired to receivers on loopback.

Every delivery a receiver gets is verified with an implementation that is
not jobwire's: the Standard Webhooks reference library (PyPI
`standardwebhooks`) and Python's own hmac written from the specification.
Receivers listen on 127.0.0.1 / ::1 only; nothing here sends traffic
anywhere else, even if the guard under test were broken (its other ranges
are unit-tested without any connect: server/webhooks/address_policy_test).

Run by CTest (tests/CMakeLists.txt) with JOBWIRED and JOBWIRE_CLI set, in
the venv tools/bootstrap builds:
  build/tools/py/bin/python -m pytest -q tests/e2e/webhooks_test.py
"""

import base64
import hashlib
import hmac
import http.server
import json
import os
import pathlib
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import grpc
import httpx
import pytest
from standardwebhooks.webhooks import Webhook

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "clients" / "python"))

from jobwire import Client, JobwireError  # noqa: E402
from jobwire.v1 import admin_service_pb2, admin_service_pb2_grpc  # noqa: E402
from jobwire.v1 import job_pb2, job_service_pb2, job_service_pb2_grpc  # noqa: E402


def _binary(env: str, name: str) -> str:
    path = os.environ.get(env)
    if path:
        return path
    for preset in ("dev", "ci", "release"):
        candidate = ROOT / "build" / preset / "bin" / name
        if candidate.exists():
            return str(candidate)
    pytest.fail(f"no {name}: build it or set {env}")


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def spec_signatures(secret: str, headers: dict, body: bytes) -> list:
    """The v1 signatures of the spec, computed with hmac from its text."""
    key = base64.b64decode(secret[len("whsec_"):])
    content = (headers["webhook-id"] + "." + headers["webhook-timestamp"] +
               ".").encode() + body
    mac = hmac.new(key, content, hashlib.sha256).digest()
    return ["v1," + base64.b64encode(mac).decode()]


class Receiver:
    """An HTTP server on loopback that records every request and every
    accepted connection, and answers from a per-path script."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.lock = threading.Lock()
        self.requests = []      # (path, headers, body, monotonic time)
        self.connections = 0    # TCP connections accepted
        # path -> list of (status, delay, headers); headers["_body_bytes"]
        # sets the answer's size; a threading.Event as the delay holds the
        # answer until it is set
        self.scripts = {}
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver.lock:
                    receiver.requests.append(
                        (self.path, headers, body, time.monotonic()))
                    script = receiver.scripts.get(self.path) or []
                    status, delay, extra = (script.pop(0) if script else
                                            (200, 0, {}))
                if isinstance(delay, threading.Event):
                    delay.wait(30)
                elif delay:
                    time.sleep(delay)
                extra = dict(extra)
                answer = b"x" * extra.pop("_body_bytes", 0) or b"ok"
                try:
                    self.send_response(status)
                    for k, v in extra.items():
                        self.send_header(k, v)
                    self.send_header("content-length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except OSError:
                    pass  # the sender gave up (timeout) or died

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True
            address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

            def handle_error(self, request, client_address):
                pass  # a sender that stopped reading (a long answer's cap)

            def get_request(self):
                conn = super().get_request()
                with receiver.lock:
                    receiver.connections += 1
                return conn

        self.server = Server((host, port), Handler)
        self.port = self.server.server_address[1]
        self.host = host
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{path}"

    def script(self, path: str, *steps) -> None:
        with self.lock:
            self.scripts[path] = list(steps)

    def received(self, path: str) -> list:
        with self.lock:
            return [r for r in self.requests if r[0] == path]

    def wait_for(self, path: str, count: int, timeout: float = 10) -> list:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.received(path)
            if len(got) >= count:
                return got
            time.sleep(0.02)
        pytest.fail(f"{path}: {len(self.received(path))} of {count} "
                    f"deliveries after {timeout}s")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Jobwired:
    """One jobwired on a Unix socket; kill() and start() keep its database."""

    def __init__(self, directory: pathlib.Path, *flags: str) -> None:
        self.dir = directory
        self.socket = directory / "j.sock"
        self.addr = f"unix:{self.socket}"
        self.flags = list(flags)
        self.log = directory / "jobwired.log"
        self.proc = None
        self.start()

    def start(self) -> None:
        starts = self.log.read_bytes().count(b"listening on") \
            if self.log.exists() else 0
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [_binary("JOBWIRED", "jobwired"), "--listen", self.addr,
                 "--db", str(self.dir / "j.db"), "--shutdown-grace=1s",
                 *self.flags], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.log.read_bytes().count(b"listening on") > starts:
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        pytest.fail("jobwired did not start:\n" + self.log.read_text())

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)

    def client(self) -> Client:
        return Client(self.addr, timeout=10)

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [_binary("JOBWIRE_CLI", "jobwire"), "--addr", self.addr, *args],
            capture_output=True, text=True, timeout=30)


@pytest.fixture
def secret_file(tmp_path):
    keys = [new_secret(), new_secret()]
    path = tmp_path / "secrets"
    path.write_text("# rotation: new first, old second\n" + "\n".join(keys) +
                    "\n")
    return path, keys


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def start_server(tmp_path, secret_path, *flags):
    d = tmp_path / f"srv{len(list(tmp_path.glob('srv*')))}"
    d.mkdir()
    return Jobwired(d, "--webhook-secret-file", str(secret_path),
                    "--webhook-initial-backoff=200ms",
                    "--webhook-connect-timeout=1s", "--webhook-timeout=1s",
                    *flags)


def submit_with_webhook(client: Client, url: str, **kw) -> job_pb2.Job:
    job = job_pb2.Job(kind="hooked", webhook=job_pb2.Webhook(url=url), **kw)
    return client.submit_job("", job=job).job


def delivery_events(server: Jobwired, job_id: str, count: int,
                    timeout: float = 10, after_seq: int = 2) -> list:
    """The job's first `count` webhook_delivery events, from its log.

    They follow the terminal event (seq 2 of a job cancelled while queued),
    and a WatchJob ends right after a terminal event it sends: read after
    it."""
    stub = job_service_pb2_grpc.JobServiceStub(server.client().channel)
    deadline = time.monotonic() + timeout
    events = []
    while time.monotonic() < deadline:
        events = []
        try:
            for r in stub.WatchJob(job_service_pb2.WatchJobRequest(
                    id=job_id, after_seq=after_seq), timeout=0.5):
                if r.WhichOneof("kind") != "event":
                    continue
                if r.event.WhichOneof("type") == "webhook_delivery":
                    events.append(r.event)
                    if len(events) >= count:
                        return events
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
                raise
    pytest.fail(f"job {job_id}: {len(events)} of {count} delivery events")


def verify(keys: list, headers: dict, body: bytes) -> dict:
    """Checks a delivery against each secret alone, both ways; the body."""
    sigs = headers["webhook-signature"].split(" ")
    assert len(sigs) == len(keys)
    for key in keys:
        Webhook(key).verify(body, headers)  # raises when it does not verify
        assert spec_signatures(key, headers, body)[0] in sigs
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 60
    return json.loads(body)


def deliveries(server: Jobwired, **kw):
    stub = admin_service_pb2_grpc.AdminServiceStub(server.client().channel)
    return stub.ListWebhookDeliveries(
        admin_service_pb2.ListWebhookDeliveriesRequest(**kw), timeout=5)


def test_retries_with_backoff_until_delivered(tmp_path, secret_file,
                                              receiver):
    path, keys = secret_file
    server = start_server(tmp_path, path, "--webhook-allow-cidr",
                          "127.0.0.1/32")
    try:
        receiver.script("/hook", (500, 0, {}), (500, 0, {}), (500, 0, {}))
        c = server.client()
        job = submit_with_webhook(c, receiver.url("/hook"))
        c.cancel_job(job.id, reason="e2e")
        got = receiver.wait_for("/hook", 4)
        time.sleep(0.3)
        assert len(receiver.received("/hook")) == 4  # delivered: no more
        ids = {h["webhook-id"] for _, h, _, _ in got}
        assert len(ids) == 1, ids
        for _, headers, body, _ in got:
            envelope = verify(keys, headers, body)
            assert envelope["type"] == "job.cancelled"
            assert envelope["data"]["job"]["id"] == job.id
            assert envelope["data"]["event"]["stateChanged"]["to"] == \
                "STATE_CANCELLED"
            assert headers["webhook-id"] == \
                "msg_" + envelope["data"]["event"]["eventId"]
        # Backoff: 200ms, 600ms, 1.8s (x3, +-20%) between the attempts.
        times = [t for _, _, _, t in got]
        gaps = [b - a for a, b in zip(times, times[1:])]
        assert 0.15 < gaps[0] < gaps[1] < gaps[2], gaps

        events = delivery_events(server, job.id, 4)
        assert [e.webhook_delivery.attempt for e in events] == [1, 2, 3, 4]
        assert [e.webhook_delivery.http_status for e in events] == \
            [500, 500, 500, 200]
        assert [e.webhook_delivery.delivered for e in events] == \
            [False, False, False, True]
        assert events[0].webhook_delivery.error.startswith("HTTP 500")
        stamps = [e.time.ToNanoseconds() / 1e9 for e in events]
        event_gaps = [b - a for a, b in zip(stamps, stamps[1:])]
        assert event_gaps[0] < event_gaps[1] < event_gaps[2], event_gaps

        listed = deliveries(server, job_id=job.id).deliveries
        assert len(listed) == 1
        assert listed[0].state == \
            admin_service_pb2.WebhookDeliveryRecord.STATE_DELIVERED
        assert listed[0].attempts == 4
        assert listed[0].webhook_id == got[0][1]["webhook-id"]
    finally:
        server.stop()


def test_retry_after_redirects_and_long_answers(tmp_path, secret_file,
                                                receiver):
    path, keys = secret_file
    server = start_server(tmp_path, path, "--webhook-allow-cidr",
                          "127.0.0.1/32", "--webhook-max-attempts=2")
    try:
        c = server.client()
        # 503 with Retry-After: 1 second, not the 200ms backoff.
        receiver.script("/busy", (503, 0, {"Retry-After": "1"}))
        busy = submit_with_webhook(c, receiver.url("/busy"))
        # A redirect is an answer, not a way elsewhere.
        receiver.script("/moved", (302, 0, {"Location": "/elsewhere"}),
                        (302, 0, {"Location": "/elsewhere"}))
        moved = submit_with_webhook(c, receiver.url("/moved"))
        # A 2xx with a long body: delivered, the body read only in part.
        receiver.script("/long", (200, 0, {"_body_bytes": 1 << 20}))
        long = submit_with_webhook(c, receiver.url("/long"))
        for job in (busy, moved, long):
            c.cancel_job(job.id)
        got = receiver.wait_for("/busy", 2)
        assert got[1][3] - got[0][3] >= 0.95
        assert delivery_events(server, busy.id, 2)[1].webhook_delivery.delivered
        moved_events = delivery_events(server, moved.id, 2)
        assert [e.webhook_delivery.http_status for e in moved_events] == \
            [302, 302]
        assert not any(e.webhook_delivery.delivered for e in moved_events)
        assert receiver.received("/elsewhere") == []
        long_event = delivery_events(server, long.id, 1)[0]
        assert long_event.webhook_delivery.delivered
        assert long_event.webhook_delivery.http_status == 200
    finally:
        server.stop()


def test_refused_destinations_are_never_connected_to(tmp_path, secret_file):
    path, keys = secret_file
    v4 = Receiver("127.0.0.1")
    v6 = None
    for _ in range(20):  # ::1 on the same port, for "localhost"
        try:
            v6 = Receiver("::1", v4.port)
            break
        except OSError:
            v4.close()
            v4 = Receiver("127.0.0.1")
    server = start_server(tmp_path, path, "--webhook-max-attempts=2")
    try:
        c = server.client()
        # Literal loopback addresses can never be delivered: refused up front.
        for url in (v4.url("/hook"), f"http://[::1]:{v4.port}/hook"):
            with pytest.raises(JobwireError) as e:
                submit_with_webhook(c, url)
            assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
            assert [v.field for v in e.value.violations] == ["job.webhook.url"]
        # A name that resolves to them: refused at connect time, each try.
        job = submit_with_webhook(c, f"http://localhost:{v4.port}/hook")
        c.cancel_job(job.id)
        events = delivery_events(server, job.id, 2)
        for e in events:
            assert not e.webhook_delivery.delivered
            assert e.webhook_delivery.http_status == 0
            assert "refused" in e.webhook_delivery.error
            assert "loopback" in e.webhook_delivery.error
        time.sleep(0.2)
        assert v4.connections == 0 and v4.requests == []
        if v6 is not None:
            assert v6.connections == 0 and v6.requests == []

        # Operators see it dead, and can send it again.
        listed = server.cli("webhooks", "list", "--failed", "--job", job.id)
        assert listed.returncode == 0, listed.stderr
        assert "DEAD" in listed.stdout and job.id in listed.stdout
        delivery_id = deliveries(server, failed_only=True).deliveries[0].id
        again = server.cli("webhooks", "redeliver", str(delivery_id))
        assert again.returncode == 0, again.stderr
        assert "pending again" in again.stdout
        assert len(delivery_events(server, job.id, 4)) == 4
        assert v4.connections == 0
        twice = server.cli("webhooks", "redeliver", "999999")
        assert twice.returncode == 1 and "NOT_FOUND" in twice.stderr
    finally:
        server.stop()
        v4.close()
        if v6 is not None:
            v6.close()


def test_server_wide_webhook_for_jobs_without_one(tmp_path, secret_file,
                                                  receiver):
    path, keys = secret_file
    server = start_server(tmp_path, path, "--webhook-allow-cidr",
                          "127.0.0.1/32", "--webhook-url",
                          receiver.url("/default"))
    try:
        c = server.client()
        job = c.submit_job("plain").job
        c.cancel_job(job.id)
        got = receiver.wait_for("/default", 1)
        envelope = verify(keys, got[0][1], got[0][2])
        assert envelope["data"]["job"]["id"] == job.id
    finally:
        server.stop()


def test_without_secrets_webhooks_are_refused(tmp_path):
    d = tmp_path / "plain"
    d.mkdir()
    server = Jobwired(d)
    try:
        with pytest.raises(JobwireError) as e:
            submit_with_webhook(server.client(), "https://example.com/hook")
        assert e.value.code == grpc.StatusCode.FAILED_PRECONDITION
        assert "--webhook-secret-file" in str(e.value)
    finally:
        server.stop()


def test_slow_receiver_delays_no_other_delivery_or_rpc(tmp_path, secret_file,
                                                       receiver):
    path, keys = secret_file
    server = start_server(tmp_path, path, "--webhook-allow-cidr",
                          "127.0.0.1/32", "--webhook-max-attempts=1")
    try:
        receiver.script("/slow", (200, 3, {}))  # past the 1s timeout
        c = server.client()
        slow = submit_with_webhook(c, receiver.url("/slow"))
        fast = submit_with_webhook(c, receiver.url("/fast"))
        c.cancel_job(slow.id)
        receiver.wait_for("/slow", 1)
        start = time.monotonic()
        c.cancel_job(fast.id)
        got = receiver.wait_for("/fast", 1, timeout=5)
        assert got[0][3] - start < 0.5, "the fast delivery waited"
        rpc = time.monotonic()
        c.get_job(fast.id)
        assert time.monotonic() - rpc < 0.5
        verify(keys, got[0][1], got[0][2])
        slow_event = delivery_events(server, slow.id, 1)[0]
        assert not slow_event.webhook_delivery.delivered
        assert "timeout" in slow_event.webhook_delivery.error.lower() or \
            "timed out" in slow_event.webhook_delivery.error.lower()
    finally:
        server.stop()


def test_kill_between_send_and_mark_sends_the_same_id_again(
        tmp_path, secret_file, receiver):
    """SIGKILL while the receiver holds the request (sent, not marked):
    after the restart the same webhook-id comes again; every job that
    ended has its delivery."""
    path, keys = secret_file
    server = start_server(tmp_path, path, "--webhook-allow-cidr",
                          "127.0.0.1/32")
    kills = 5
    try:
        jobs = []
        for i in range(kills):
            hook = f"/kill{i}"
            receiver.script(hook, (200, 30, {}))  # records, then hangs
            c = server.client()
            job = submit_with_webhook(c, receiver.url(hook))
            c.cancel_job(job.id)
            first = receiver.wait_for(hook, 1)[0]
            server.kill()
            c.close()
            server.start()
            again = receiver.wait_for(hook, 2)[1]
            assert again[1]["webhook-id"] == first[1]["webhook-id"]
            assert again[2] == first[2]  # the same body, as stored
            verify(keys, again[1], again[2])
            jobs.append(job.id)
        # And SIGKILL right after the terminal event is acknowledged, maybe
        # before its delivery started: it is sent after the restart.
        for i in range(3):
            hook = f"/early{i}"
            c = server.client()
            job = submit_with_webhook(c, receiver.url(hook))
            c.cancel_job(job.id)
            server.kill()
            c.close()
            server.start()
            got = receiver.wait_for(hook, 1)
            verify(keys, got[-1][1], got[-1][2])
            jobs.append(job.id)
        c = server.client()
        for job_id in jobs:
            assert c.get_job(job_id).state == job_pb2.Job.STATE_CANCELLED
            events = delivery_events(server, job_id, 1)
            assert events[-1].webhook_delivery.delivered
        listed = deliveries(server).deliveries
        assert len(listed) == kills + 3
        assert all(d.state ==
                   admin_service_pb2.WebhookDeliveryRecord.STATE_DELIVERED
                   for d in listed)
    finally:
        server.stop()


def metric(text: str, series: str) -> float:
    """The value of one series ("name{labels}") of a /metrics scrape."""
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    pytest.fail(f"no {series} in the scrape:\n{text}")


def test_deliveries_move_the_webhook_metrics(tmp_path, secret_file, receiver):
    path, keys = secret_file
    http_socket = tmp_path / "h.sock"
    server = start_server(tmp_path, path, "--webhook-allow-cidr",
                          "127.0.0.1/32", "--webhook-max-attempts=2",
                          "--webhook-timeout=30s", "--http",
                          f"unix:{http_socket}")
    web = httpx.Client(transport=httpx.HTTPTransport(uds=str(http_socket)),
                       base_url="http://jobwired", timeout=10)
    release = threading.Event()

    def scrape() -> str:
        r = web.get("/metrics")
        assert r.status_code == 200
        return r.text

    def outcome(text: str, name: str) -> float:
        return metric(text, f'jobwire_webhook_deliveries_total{{outcome="{name}"}}')

    try:
        before = scrape()
        for name in ("delivered", "failed_will_retry", "dead", "refused"):
            assert outcome(before, name) == 0
        assert metric(before, "jobwire_webhook_outbox_pending") == 0

        c = server.client()
        # Held by the receiver until released: pending in the outbox.
        receiver.script("/held", (200, release, {}))
        held = submit_with_webhook(c, receiver.url("/held"))
        c.cancel_job(held.id)
        receiver.wait_for("/held", 1)
        assert metric(scrape(), "jobwire_webhook_outbox_pending") == 1
        release.set()
        delivery_events(server, held.id, 1)

        # 500 twice with two attempts allowed: one retry, then dead.
        receiver.script("/dead", (500, 0, {}), (500, 0, {}))
        dead = submit_with_webhook(c, receiver.url("/dead"))
        c.cancel_job(dead.id)
        events = delivery_events(server, dead.id, 2)
        assert [e.webhook_delivery.delivered for e in events] == [False, False]

        after = scrape()
        assert outcome(after, "delivered") == 1
        assert outcome(after, "failed_will_retry") == 1
        assert outcome(after, "dead") == 1
        assert outcome(after, "refused") == 0
        assert metric(after,
                      "jobwire_webhook_delivery_duration_seconds_count") == 3
        assert metric(after, "jobwire_webhook_outbox_pending") == 0
        promtool = shutil.which("promtool") or "/usr/bin/promtool"
        check = subprocess.run([promtool, "check", "metrics"], input=after,
                               capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check.stdout + check.stderr
    finally:
        release.set()
        web.close()
        server.stop()
