#!/usr/bin/env python3
"""Server memory with watchers that stop reading while large events flow
(issue #27): peak RSS of jobwired builds with --watchers WatchJobs streams
(each on its own connection) that never read, while --jobs jobs complete
with a --result-kb KB result each (every completion event carries it).

For each build given (--jobwired PATH, repeatable; the first is the
baseline): a fresh jobwired on a Unix socket in a temp dir; the watchers
open and take nothing; a worker (the Python SDK) runs the jobs; then the
server's VmHWM and VmRSS. Prints one Markdown table row per build.

Needs grpcio and the Python SDK (clients/python); run it with the venv
tools/bootstrap builds (build/tools/py/bin/python).
"""
import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "clients", "python"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import grpc  # noqa: E402
import jobwire  # noqa: E402
from jobwire.v1 import job_service_pb2, job_service_pb2_grpc  # noqa: E402
from jobwire.worker import Worker  # noqa: E402
from list_memory_bench import status_kb  # noqa: E402


def run(binary, watchers, jobs, result_kb):
    with tempfile.TemporaryDirectory(prefix="jw-watchbench-") as d:
        sock = os.path.join(d, "j.sock")
        log = open(os.path.join(d, "log"), "w")
        proc = subprocess.Popen([os.path.abspath(binary), "--listen", "unix:" + sock,
                                 "--db", os.path.join(d, "j.db")], stdout=log,
                                stderr=subprocess.STDOUT, cwd=d)
        try:
            deadline = time.time() + 20
            while not os.path.exists(sock) and time.time() < deadline:
                time.sleep(0.05)
            idle_kb = status_kb(proc.pid, "VmRSS")
            streams = []
            for _ in range(watchers):
                ch = grpc.insecure_channel(
                    "unix:" + sock, options=[("grpc.use_local_subchannel_pool", 1)])
                stub = job_service_pb2_grpc.JobServiceStub(ch)
                call = stub.WatchJobs(job_service_pb2.WatchJobsRequest(),
                                      wait_for_ready=True)
                streams.append((ch, call))  # never read
            time.sleep(1)
            client = jobwire.Client("unix:" + sock)
            ids = [client.submit_job("big").job.id for _ in range(jobs)]
            result = b"r" * (result_kb * 1000)
            worker = Worker(client)
            worker.register("big", lambda ctx: result)
            t = threading.Thread(target=worker.run,
                                 kwargs={"handle_signals": False}, daemon=True)
            t.start()
            while client.get_job(ids[-1]).state != 5:  # SUCCEEDED
                time.sleep(0.1)
            time.sleep(2)
            peak_kb = status_kb(proc.pid, "VmHWM")
            rss_kb = status_kb(proc.pid, "VmRSS")
            worker.stop(timeout=5)
            for ch, call in streams:
                call.cancel()
                ch.close()
            return idle_kb, peak_kb, rss_kb
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--jobwired", action="append", required=True)
    p.add_argument("--watchers", type=int, default=8)
    p.add_argument("--jobs", type=int, default=150)
    p.add_argument("--result-kb", type=int, default=900)
    a = p.parse_args()
    print("| build | watchers | jobs x result | idle RSS | peak RSS | RSS after |")
    print("|---|---|---|---|---|---|")
    for binary in a.jobwired:
        idle, peak, after = run(binary, a.watchers, a.jobs, a.result_kb)
        print(f"| {binary} | {a.watchers} | {a.jobs} x {a.result_kb} KB | "
              f"{idle // 1024} MiB | {peak // 1024} MiB | {after // 1024} MiB |",
              flush=True)


if __name__ == "__main__":
    main()
