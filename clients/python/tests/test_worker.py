"""The Worker runtime against a real jobwired (tests/conftest.py)."""

import pathlib
import signal
import subprocess
import sys
import threading
import time

import pytest

from jobwire import Client, Job, JobFailed, Worker


@pytest.fixture
def client(server):
    c = Client(server.addr)
    yield c
    c.close()


def start(worker):
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    return thread


def test_handlers_complete_fail_and_retry(client):
    worker = Worker(client, slots=2, queues=["work"])
    calls = {"flaky": 0}

    @worker.handler("add")
    def add(ctx):
        ctx.progress(done=1, total=1, message="adding", log="a log line")
        return {"sum": ctx.args["a"] + ctx.args["b"]}

    @worker.handler("bad")
    def bad(ctx):
        raise JobFailed("input is wrong", retryable=False,
                        details={"field": "a"})

    @worker.handler("flaky")
    def flaky(ctx):
        calls["flaky"] += 1
        if ctx.attempt == 1:
            raise RuntimeError("transient")
        return b"\x01\x02"

    runner = start(worker)
    add_job = client.submit_job("add", {"a": 2, "b": 3}, queue="work").job
    bad_job = client.submit_job("bad", queue="work").job
    flaky_job = client.submit_job("flaky", queue="work").job
    # Backoff after the first failure is the server's default (~1 s).

    done = client.wait_job(add_job.id)
    assert done.state == Job.STATE_SUCCEEDED
    assert done.result.data["sum"] == 5
    assert done.progress.message == "adding"

    failed = client.wait_job(bad_job.id)
    assert failed.state == Job.STATE_FAILED
    assert failed.error.message == "input is wrong"
    assert not failed.error.retryable
    assert failed.error.details["field"] == "a"

    retried = client.wait_job(flaky_job.id)
    assert retried.state == Job.STATE_SUCCEEDED
    assert retried.result.payload == b"\x01\x02"
    assert calls["flaky"] == 2

    worker.stop(timeout=5)
    runner.join(10)
    assert not runner.is_alive()


def test_a_refused_result_fails_the_attempt_with_the_refusal(client):
    # #27: a result over the server's 1 MiB cap is refused; the worker
    # fails the attempt with the refusal rather than leave the job RUNNING
    # while its heartbeats renew the lease.
    worker = Worker(client, queues=["big"])

    @worker.handler("big")
    def big(ctx):
        return b"r" * (2 << 20)

    runner = start(worker)
    job = client.submit_job("big", queue="big", max_attempts=1).job
    failed = client.wait_job(job.id)
    assert failed.state == Job.STATE_FAILED
    assert "at most 1048576" in failed.error.message
    assert failed.error.code == 3  # INVALID_ARGUMENT
    worker.stop(timeout=5)
    runner.join(10)
    assert not runner.is_alive()


def test_cancel_of_a_running_job_stops_its_handler(client):
    worker = Worker(client)
    started = threading.Event()
    saw_stop = threading.Event()

    @worker.handler("long")
    def long(ctx):
        started.set()
        if ctx.stopping.wait(20):
            saw_stop.set()
            return {"ignored": True}
        return {"finished": True}

    runner = start(worker)
    job = client.submit_job("long").job
    assert started.wait(20)
    client.cancel_job(job.id, reason="changed my mind")
    final = client.wait_job(job.id)
    assert saw_stop.is_set()
    assert final.state == Job.STATE_CANCELLED
    assert not final.result.data  # the result after a stop is not kept
    worker.stop(timeout=5)
    runner.join(10)


def test_stop_waits_for_running_jobs_and_takes_no_new_ones(client):
    worker = Worker(client)
    started = threading.Event()

    @worker.handler("slow")
    def slow(ctx):
        started.set()
        time.sleep(0.5)
        return {"ok": True}

    runner = start(worker)
    job = client.submit_job("slow").job
    assert started.wait(20)
    worker.stop(timeout=10)
    runner.join(10)
    assert not runner.is_alive()
    # The stream ended OK only once the complete was durable.
    assert client.get_job(job.id).state == Job.STATE_SUCCEEDED
    # Nothing runs the next job now.
    later = client.submit_job("slow").job
    time.sleep(0.3)
    assert client.get_job(later.id).state == Job.STATE_QUEUED


_DRAINING_WORKER = r"""
import os, sys, time
from jobwire import Client, Worker

worker = Worker(Client(sys.argv[1]), queues=["default"])

@worker.handler("slow")
def slow(ctx):
    print("started", flush=True)
    while not os.path.exists(sys.argv[2]):  # the test's go-ahead
        time.sleep(0.01)
    return {"ok": True}

worker.run()
print("drained", flush=True)
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_sigint_and_sigterm_drain_the_worker(server, client, tmp_path, sig):
    release = tmp_path / "release"
    proc = subprocess.Popen(
        [sys.executable, "-c", _DRAINING_WORKER, server.addr, str(release)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=pathlib.Path(__file__).resolve().parents[1])
    try:
        job = client.submit_job("slow").job
        assert proc.stdout.readline() == "started\n"
        proc.send_signal(sig)  # while the job runs
        release.touch()
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err, err
    assert out == "drained\n"
    assert client.get_job(job.id).state == Job.STATE_SUCCEEDED
