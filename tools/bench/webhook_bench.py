#!/usr/bin/env python3
"""Webhook deliveries per second from a real jobwired to a local receiver.

For each --in-flight level: a fresh jobwired (--webhook-max-in-flight N,
--webhook-allow-cidr 127.0.0.1/32) gets --jobs jobs with a webhook (SubmitJobs),
then one BulkUpdateJobs cancels them all (N terminal events, N outbox rows);
the clock runs from that request to the receiver's last delivery. The
receiver (Python's ThreadingHTTPServer, keep-alive, answers 204 at once) is
part of what is measured: a faster receiver would show more. Loopback only.
Not part of the test run. The submit path's cost with webhooks on vs off
is measured by `submit_bench --ab-webhooks` (a C++ load generator: 64
callers from Python would measure Python).

  build/tools/py/bin/python tools/bench/webhook_bench.py [--jobs 2000]
      [--in-flight 1,16,64] [--jobwired build/release/bin/jobwired]
"""

import argparse
import base64
import http.server
import pathlib
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import grpc

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "clients" / "python"))

from jobwire.v1 import job_pb2, job_service_pb2, job_service_pb2_grpc  # noqa: E402


class Receiver:
    def __init__(self) -> None:
        self.count = 0
        self.last = 0.0
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers["content-length"]))
                self.send_response(204)
                self.send_header("content-length", "0")
                self.end_headers()
                with receiver.lock:
                    receiver.count += 1
                    receiver.last = time.monotonic()

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True
            address_family = socket.AF_INET
            request_queue_size = 256

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def run(jobwired: str, jobs: int, in_flight: int) -> float:
    receiver = Receiver()
    with tempfile.TemporaryDirectory() as d:
        secret = pathlib.Path(d) / "secret"
        secret.write_text("whsec_" +
                          base64.b64encode(secrets.token_bytes(24)).decode())
        sock = pathlib.Path(d) / "j.sock"
        log = open(pathlib.Path(d) / "log", "wb")
        proc = subprocess.Popen(
            [jobwired, "--listen", f"unix:{sock}", "--db", f"{d}/j.db",
             "--webhook-secret-file", str(secret), "--webhook-allow-cidr",
             "127.0.0.1/32", f"--webhook-max-in-flight={in_flight}"],
            stdout=log, stderr=subprocess.STDOUT)
        try:
            channel = grpc.insecure_channel(f"unix:{sock}")
            grpc.channel_ready_future(channel).result(timeout=20)
            stub = job_service_pb2_grpc.JobServiceStub(channel)
            url = f"http://127.0.0.1:{receiver.port}/hook"

            def batches():
                for start in range(0, jobs, 1000):
                    yield job_service_pb2.SubmitJobsRequest(jobs=[
                        job_service_pb2.SubmitJobRequest(job=job_pb2.Job(
                            kind="bench", labels={"bench": "webhooks"},
                            webhook=job_pb2.Webhook(url=url)))
                        for _ in range(min(1000, jobs - start))])

            for _ in stub.SubmitJobs(batches(), timeout=120):
                pass
            start = time.monotonic()
            request = job_service_pb2.BulkUpdateJobsRequest(
                filter='labels.bench = "webhooks"',
                action=job_service_pb2.BulkUpdateJobsRequest.ACTION_CANCEL)
            for _ in stub.BulkUpdateJobs(iter([request]), timeout=120):
                pass
            deadline = time.monotonic() + 300
            while receiver.count < jobs and time.monotonic() < deadline:
                time.sleep(0.01)
            if receiver.count < jobs:
                raise SystemExit(f"only {receiver.count} of {jobs} delivered")
            return jobs / (receiver.last - start)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
            receiver.server.shutdown()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--jobs", type=int, default=2000)
    p.add_argument("--in-flight", default="1,16,64")
    default = ROOT / "build" / "release" / "bin" / "jobwired"
    if not default.exists():
        default = ROOT / "build" / "dev" / "bin" / "jobwired"
    p.add_argument("--jobwired", default=str(default))
    a = p.parse_args()
    print(f"jobwired {a.jobwired}, {a.jobs} jobs per run")
    for n in (int(x) for x in a.in_flight.split(",")):
        print(f"in flight {n:3d}: {run(a.jobwired, a.jobs, n):8.0f} "
              f"deliveries/s")


if __name__ == "__main__":
    main()
