#!/usr/bin/env python3
"""Server memory with large jobs (issue #27): RSS of jobwired builds holding
--jobs jobs of --args-kb KB args, before and after listing them all.

For each build given (--jobwired PATH, repeatable; the first is the
baseline): a fresh jobwired on a Unix socket in a temp dir, --jobs SubmitJob
calls, then ListJobs with page_size 1000 over every page (on a channel that
accepts 2 GiB messages, so an unbounded page still arrives and its cost
shows), then one ListJobs with gRPC's default 4 MiB client limit. Prints one
Markdown table row per build; --append FILE adds them to BENCHMARKS.md.

Needs grpcio and the Python SDK's generated code (clients/python); run it
with the venv tools/bootstrap builds (build/tools/py/bin/python).
"""
import argparse
import datetime
import os
import platform
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "clients", "python"))

import grpc  # noqa: E402
from google.protobuf import struct_pb2  # noqa: E402
from jobwire.v1 import job_service_pb2, job_service_pb2_grpc  # noqa: E402


def status_kb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def run(binary, jobs, args_kb):
    with tempfile.TemporaryDirectory(prefix="jw-membench-") as d:
        sock = os.path.join(d, "j.sock")
        log = open(os.path.join(d, "log"), "w")
        proc = subprocess.Popen([os.path.abspath(binary), "--listen", "unix:" + sock, "--db",
                                 os.path.join(d, "j.db")], stdout=log,
                                stderr=subprocess.STDOUT, cwd=d)
        try:
            deadline = time.time() + 20
            while not os.path.exists(sock) and time.time() < deadline:
                time.sleep(0.05)
            big = (1 << 31) - 1
            ch = grpc.insecure_channel(
                "unix:" + sock,
                options=[("grpc.max_receive_message_length", big),
                         ("grpc.max_send_message_length", big)])
            grpc.channel_ready_future(ch).result(timeout=20)
            stub = job_service_pb2_grpc.JobServiceStub(ch)
            blob = "x" * (args_kb * 1000)
            for i in range(jobs):
                req = job_service_pb2.SubmitJobRequest()
                req.job.kind = "big"
                req.job.args.update({"blob": blob, "i": i})
                stub.SubmitJob(req, timeout=60)
            rss_submitted = status_kb(proc.pid, "VmRSS")
            hwm_submitted = status_kb(proc.pid, "VmHWM")
            pages, listed, biggest = 0, 0, 0
            req = job_service_pb2.ListJobsRequest(page_size=1000)
            t0 = time.time()
            while True:
                page = stub.ListJobs(req, timeout=300)
                pages += 1
                listed += len(page.jobs)
                biggest = max(biggest, page.ByteSize())
                if not page.next_page_token:
                    break
                req.page_token = page.next_page_token
            list_s = time.time() - t0
            hwm_listed = status_kb(proc.pid, "VmHWM")
            small = grpc.insecure_channel("unix:" + sock)
            try:
                job_service_pb2_grpc.JobServiceStub(small).ListJobs(
                    job_service_pb2.ListJobsRequest(page_size=1000), timeout=300)
                default_client = "OK"
            except grpc.RpcError as e:
                default_client = e.code().name
            return dict(rss_submitted=rss_submitted, hwm_submitted=hwm_submitted,
                        hwm_listed=hwm_listed, pages=pages, listed=listed,
                        biggest=biggest, list_s=list_s,
                        default_client=default_client)
        finally:
            proc.terminate()
            proc.wait(timeout=60)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobwired", action="append", required=True)
    ap.add_argument("--jobs", type=int, default=1200)
    ap.add_argument("--args-kb", type=int, default=900)
    ap.add_argument("--append")
    a = ap.parse_args()
    rows = []
    base = None
    for binary in a.jobwired:
        r = run(binary, a.jobs, a.args_kb)
        base = base or r
        ratio = r["hwm_listed"] / base["hwm_listed"]
        rows.append(
            f"| `{binary}` | {r['rss_submitted'] // 1024} | {r['hwm_submitted'] // 1024} "
            f"| {r['hwm_listed'] // 1024} ({ratio:.2f}x) | {r['pages']} "
            f"| {r['biggest'] / (1 << 20):.1f} | {r['listed']} | {r['list_s']:.1f} "
            f"| {r['default_client']} |")
    out = [
        f"### List memory with large jobs (issue #27), {datetime.date.today()}",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}. "
        f"Command: `{' '.join([os.path.relpath(sys.argv[0], REPO)] + sys.argv[1:])}`. "
        f"{a.jobs} jobs with {a.args_kb} KB args each, then ListJobs page_size 1000 "
        "over every page; ratios against the first build, same run.",
        "",
        "| jobwired | RSS after submits (MiB) | peak after submits (MiB) | peak after listing (MiB) | pages | largest page (MiB) | jobs listed | list time (s) | ListJobs at a 4 MiB client |",
        "|---|---|---|---|---|---|---|---|---|",
    ] + rows
    text = "\n".join(out) + "\n"
    print(text)
    if a.append:
        with open(a.append, "a") as f:
            f.write("\n" + text)


if __name__ == "__main__":
    main()
