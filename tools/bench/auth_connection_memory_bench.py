#!/usr/bin/env python3
"""Server memory of one long authenticated connection (issue #27): for each
build given (--jobwired PATH, repeatable), a fresh jobwired with
--auth-token on a Unix socket, then --calls GetServerInfo calls one after
another on one channel; prints the server's VmRSS above the first call at
each quarter.

Needs grpcio and the Python SDK's generated code (clients/python); run it
with the venv tools/bootstrap builds (build/tools/py/bin/python).
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)),
                                "clients", "python"))
sys.path.insert(0, HERE)

import grpc  # noqa: E402
from jobwire.v1 import admin_service_pb2, admin_service_pb2_grpc  # noqa: E402
from list_memory_bench import status_kb  # noqa: E402


def run(binary, calls):
    with tempfile.TemporaryDirectory(prefix="jw-authbench-") as d:
        sock = os.path.join(d, "j.sock")
        proc = subprocess.Popen(
            [os.path.abspath(binary), "--listen", "unix:" + sock, "--db",
             os.path.join(d, "j.db"), "--auth-token", "s3cret-token"],
            stdout=open(os.path.join(d, "log"), "w"), stderr=subprocess.STDOUT)
        try:
            deadline = time.time() + 20
            while not os.path.exists(sock) and time.time() < deadline:
                time.sleep(0.05)
            stub = admin_service_pb2_grpc.AdminServiceStub(
                grpc.insecure_channel("unix:" + sock))
            md = [("authorization", "Bearer s3cret-token")]
            request = admin_service_pb2.GetServerInfoRequest()
            stub.GetServerInfo(request, metadata=md, wait_for_ready=True)
            base = status_kb(proc.pid, "VmRSS")
            row = []
            for i in range(1, calls + 1):
                stub.GetServerInfo(request, metadata=md)
                if i % (calls // 4) == 0:
                    row.append(status_kb(proc.pid, "VmRSS") - base)
            return row
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--jobwired", action="append", required=True)
    p.add_argument("--calls", type=int, default=200000)
    a = p.parse_args()
    quarters = [a.calls * q // 4 for q in range(1, 5)]
    print("| build | " + " | ".join(f"{n:,} calls" for n in quarters) + " |")
    print("|---|" + "---:|" * 4)
    for binary in a.jobwired:
        row = run(binary, a.calls)
        print(f"| {binary} | " + " | ".join(f"+{kb} KiB" for kb in row) + " |",
              flush=True)


if __name__ == "__main__":
    main()
