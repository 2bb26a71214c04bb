#!/usr/bin/env python3
"""ListQueues and GetServerInfo latency with many jobs in the database (#24).

Both RPCs give job counts by queue and state (the dashboard's queues page
polls ListQueues every 2 s, its server page GetServerInfo). The benchmark
fills one database with --jobs jobs (`jobwire submit-batch`, 1,000 per
commit; four queues; a tenth of them cancelled, so ended jobs are counted
too), then serves that same file with each jobwired given (--jobwired,
repeatable; e.g. main's build, which counts every row per call, and this
branch's, which keeps the counts in memory) in turns, --rounds times, and
times --calls calls of each RPC per turn over the Unix socket, one at a
time. It also prints how long each start took (from exec to serving: a
jobwired that keeps counts counts once there). Loopback and a temp
directory only. Not part of the test run.

  build/tools/py/bin/python tools/bench/queue_counts_bench.py \\
      --jobwired OLD --jobwired NEW [--jobs 1000000] [--calls 20] [--rounds 2]
"""

import argparse
import json
import pathlib
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import grpc

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "clients" / "python"))

from jobwire.v1 import admin_service_pb2, admin_service_pb2_grpc  # noqa: E402


def start(binary: str, d: pathlib.Path):
    sock = d / "j.sock"
    log = open(d / "log", "ab")
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [binary, "--listen", f"unix:{sock}", "--db", str(d / "j.db")],
        stdout=log, stderr=subprocess.STDOUT)
    channel = grpc.insecure_channel(f"unix:{sock}")
    stub = admin_service_pb2_grpc.AdminServiceStub(channel)
    try:
        # Waits for the socket (a connect before it exists would back off).
        stub.GetServerInfo(admin_service_pb2.GetServerInfoRequest(),
                           timeout=300, wait_for_ready=True)
    except grpc.RpcError as e:
        proc.kill()
        raise SystemExit(f"{binary} did not start ({e.code()}); see {d}/log")
    return proc, channel, stub, time.monotonic() - t0


def stop(proc, channel) -> None:
    channel.close()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)


def fill(cli: str, binary: str, d: pathlib.Path, jobs: int) -> None:
    lines = d / "jobs.jsonl"
    with open(lines, "w") as f:
        for i in range(jobs):
            f.write(json.dumps({"job": {"queue": f"q{i % 4}", "kind": "bench",
                                        "args": {"i": i}}}) + "\n")
    proc, channel, _, _ = start(binary, d)
    t0 = time.monotonic()
    subprocess.run([cli, "--addr", f"unix:{d}/j.sock", "--timeout", "600s",
                    "submit-batch", str(lines)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # A tenth ended: cancelled in one bulk call.
    subprocess.run([cli, "--addr", f"unix:{d}/j.sock", "--timeout", "600s",
                    "bulk", "--filter", 'queue = "q1"', "--action", "cancel"],
                   check=True, stdout=subprocess.DEVNULL)
    print(f"filled {jobs} jobs in {time.monotonic() - t0:.0f} s")
    lines.unlink()
    stop(proc, channel)


def time_calls(stub, calls: int):
    out = {}
    for name, call, req in (
            ("ListQueues", stub.ListQueues,
             admin_service_pb2.ListQueuesRequest()),
            ("GetServerInfo", stub.GetServerInfo,
             admin_service_pb2.GetServerInfoRequest())):
        ms = []
        for _ in range(calls):
            t0 = time.perf_counter()
            call(req, timeout=120)
            ms.append((time.perf_counter() - t0) * 1000)
        out[name] = ms
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--jobwired", action="append", required=True)
    p.add_argument("--cli", default=str(ROOT / "build" / "dev" / "bin" /
                                        "jobwire"))
    p.add_argument("--jobs", type=int, default=1000000)
    p.add_argument("--calls", type=int, default=20)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--dir", default="/tmp")
    a = p.parse_args()
    with tempfile.TemporaryDirectory(dir=a.dir) as tmp:
        d = pathlib.Path(tmp)
        fill(a.cli, a.jobwired[-1], d, a.jobs)
        results = {b: {"ListQueues": [], "GetServerInfo": [], "start": []}
                   for b in a.jobwired}
        counts = {}
        for _ in range(a.rounds):
            for binary in a.jobwired:
                proc, channel, stub, started = start(binary, d)
                try:
                    results[binary]["start"].append(started)
                    for name, ms in time_calls(stub, a.calls).items():
                        results[binary][name].extend(ms)
                    q = stub.ListQueues(admin_service_pb2.ListQueuesRequest())
                    counts[binary] = {x.name: dict(x.counts) for x in q.queues}
                finally:
                    stop(proc, channel)
        for binary, r in results.items():
            print(f"{binary}:")
            print("  start (exec to serving): " +
                  ", ".join(f"{s:.2f} s" for s in r["start"]))
            for name in ("ListQueues", "GetServerInfo"):
                ms = sorted(r[name])
                print(f"  {name:13s} median {statistics.median(ms):8.2f} ms, "
                      f"p90 {ms[int(len(ms) * 0.9) - 1]:8.2f} ms, "
                      f"max {ms[-1]:8.2f} ms ({len(ms)} calls)")
        first = counts[a.jobwired[0]]
        same = all(c == first for c in counts.values())
        print(f"counts identical across builds: {same}: {first}")
        if not same:
            raise SystemExit(f"counts differ: {counts}")


if __name__ == "__main__":
    main()
