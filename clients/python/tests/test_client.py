"""The Client against a real jobwired (tests/conftest.py)."""

import threading
import time

import grpc
import pytest

from jobwire import Client, Job, JobwireError, Worker


def test_submit_get_list_cancel(server):
    with Client(server.addr) as client:
        first = client.submit_job("email", {"to": "a@example.com"},
                                  queue="mail", labels={"team": "growth"},
                                  request_id="req-1")
        assert first.created
        job = first.job
        assert job.id and job.state == Job.STATE_QUEUED
        assert job.labels["team"] == "growth"
        again = client.submit_job("email", {"to": "a@example.com"},
                                  queue="mail", request_id="req-1")
        assert not again.created and again.job.id == job.id

        got = client.get_job(job.id)
        assert got.kind == "email" and got.args["to"] == "a@example.com"

        for i in range(4):
            client.submit_job("report", queue="mail", labels={"n": str(i)})
        # Paged two at a time; the iterator follows the page tokens.
        listed = list(client.list_jobs('queue = "mail"', page_size=2))
        assert len(listed) == 5
        assert [j.id for j in listed].count(job.id) == 1
        assert len(list(client.list_jobs('kind = "report"'))) == 4

        cancelled = client.cancel_job(job.id, reason="not needed")
        assert cancelled.state == Job.STATE_CANCELLED


def test_bad_input_raises_jobwire_error_naming_the_field(server):
    with Client(server.addr) as client:
        with pytest.raises(JobwireError) as info:
            client.submit_job("", queue="Bad Queue")
        error = info.value
        assert error.code == grpc.StatusCode.INVALID_ARGUMENT
        fields = {v.field for v in error.violations}
        assert "job.kind" in fields and "job.queue" in fields, error

        with pytest.raises(JobwireError) as info:
            client.get_job("01M9715MHTFBGAGMKPGD3MGD0W")
        assert info.value.code == grpc.StatusCode.NOT_FOUND

        with pytest.raises(JobwireError) as info:
            list(client.list_jobs("state = = RUNNING"))
        assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
        # Nothing was written.
        assert list(client.list_jobs()) == []


def test_watch_sees_a_finished_job_as_its_snapshot(server):
    with Client(server.addr) as client:
        job = client.submit_job("k").job
        client.cancel_job(job.id)
        events = list(client.watch_job(job.id))
        assert len(events) == 1
        assert events[0].WhichOneof("type") == "snapshot"
        assert events[0].snapshot.state == Job.STATE_CANCELLED


def test_watch_resumes_across_a_server_restart_without_gaps(server):
    client = Client(server.addr)
    job = client.submit_job("steps", {"n": 6}).job
    seen = []
    done = threading.Event()

    def watch():
        for event in client.watch_job(job.id):
            seen.append(event)
        done.set()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()

    step = threading.Event()
    release = threading.Event()
    worker = Worker(client, slots=1)

    @worker.handler("steps")
    def steps(ctx):
        for i in range(ctx.args["n"]):
            ctx.progress(done=i + 1, total=ctx.args["n"])
            if i == 2:
                step.set()
                release.wait(20)
        return {"steps": ctx.args["n"]}

    runner = threading.Thread(target=worker.run, daemon=True)
    runner.start()
    assert step.wait(20)
    # The server stops mid-job: the worker's stream and the watch break, and
    # at the end of the grace period the job goes back to its queue (a
    # shutdown is not a failed attempt). After the restart the worker
    # reconnects and runs it again, and the watch resumes from its cursor.
    server.stop()
    time.sleep(1)  # down for a while: the clients' reconnects fail meanwhile
    server.start()
    release.set()
    assert done.wait(30), [e.WhichOneof("type") for e in seen]
    worker.stop(timeout=5)
    runner.join(10)

    seqs = [e.seq for e in seen]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs
    assert seen[0].WhichOneof("type") == "snapshot"
    # Both attempts are in the one stream: RUNNING twice, with the
    # shutdown's requeue between.
    states = [e.state_changed.to for e in seen
              if e.WhichOneof("type") == "state_changed"]
    assert states == [Job.STATE_RUNNING, Job.STATE_QUEUED, Job.STATE_RUNNING,
                      Job.STATE_SUCCEEDED], states
    last = seen[-1]
    assert last.WhichOneof("type") == "state_changed"
    assert last.state_changed.to == Job.STATE_SUCCEEDED
    final = client.get_job(job.id)
    assert final.result.data["steps"] == 6
    client.close()


def test_watch_jobs_replays_then_follows_by_event_id(server):
    with Client(server.addr) as client:
        a = client.submit_job("k", queue="q1").job
        client.submit_job("k", queue="q2")
        stream = client.watch_jobs('queue = "q1"', after_event_id=0)
        first = next(stream)
        assert first.job_id == a.id
        b = client.submit_job("k", queue="q1").job
        second = next(stream)
        assert second.job_id == b.id and second.event_id > first.event_id
        stream.close()


def test_token_is_sent_on_every_call_and_stream(tmp_path):
    from conftest import Server

    server = Server(tmp_path, "--auth-token=s3cret")
    try:
        with Client(server.addr, token="") as anonymous:
            with pytest.raises(JobwireError) as info:
                anonymous.submit_job("k")
            assert info.value.code == grpc.StatusCode.UNAUTHENTICATED
        with Client(server.addr, token="s3cret") as client:
            job = client.submit_job("k").job
            worker = Worker(client)
            worker.register("k", lambda ctx: {"ok": True})
            runner = threading.Thread(target=worker.run, daemon=True)
            runner.start()
            assert client.wait_job(job.id).state == Job.STATE_SUCCEEDED
            worker.stop(timeout=5)
            runner.join(10)
    finally:
        server.stop()


def test_submit_jobs_yields_ids_in_order_and_reads_ahead_boundedly(server):
    client = Client(server.addr)
    read = []
    first_id_after = []

    def source():
        for i in range(95):
            read.append(i)
            yield Job(kind="many", labels={"i": str(i)})

    ids = []
    for job_id in client.submit_jobs(source(), batch_size=10, max_in_flight=1):
        if not ids:
            first_id_after.append(len(read))
        ids.append(job_id)
    assert len(ids) == 95 and len(set(ids)) == 95
    # In order: the n-th id is the n-th job of the source.
    assert client.get_job(ids[0]).labels["i"] == "0"
    assert client.get_job(ids[94]).labels["i"] == "94"
    # Back-pressure: when the first batch was answered, at most the batch in
    # flight, the next one and one more being filled had been read.
    assert first_id_after[0] <= 31
    with pytest.raises(JobwireError) as e:
        list(client.submit_jobs([Job(kind="")]))
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_submit_jobs_splits_batches_under_the_byte_limit(server):
    # #27: six jobs of 900 KiB are 5.4 MiB, over the server's default 4 MiB
    # request limit as one batch; submit_jobs splits them.
    client = Client(server.addr)
    jobs = [Job(kind="big", payload=b"p" * (900 << 10)) for _ in range(6)]
    ids = list(client.submit_jobs(jobs))
    assert len(ids) == 6 and len(set(ids)) == 6
    # With a lower budget than one job, each job goes alone.
    assert len(list(client.submit_jobs(jobs[:2], batch_bytes=1024))) == 2


def test_bulk_update_jobs_dry_run_then_cancel(server):
    client = Client(server.addr)
    ids = [client.submit_job("bulk", queue="bulkq").job.id for _ in range(3)]
    from jobwire.v1 import job_service_pb2
    cancel = job_service_pb2.BulkUpdateJobsRequest.ACTION_CANCEL
    dry = client.bulk_update_jobs(filter='queue = "bulkq"', action=cancel,
                                  dry_run=True)
    assert (dry.matched, dry.updated) == (3, 3)
    assert client.get_job(ids[0]).state == Job.STATE_QUEUED
    done = client.bulk_update_jobs(ids=ids[:2], action=cancel)
    assert (done.matched, done.updated, done.failed) == (2, 2, 0)
    assert client.get_job(ids[1]).state == Job.STATE_CANCELLED
    patched = client.bulk_update_jobs(filter='queue = "bulkq" AND state = QUEUED',
                                      patch=Job(priority=7), paths=["priority"])
    assert patched.updated == 1
    assert client.get_job(ids[2]).priority == 7


def test_admin_calls(server, tmp_path):
    import jobwire
    client = Client(server.addr)
    assert client.admin.get_server_info().version == jobwire.__version__
    queue = client.admin.pause_queue(name="adminq")
    assert queue.name == "adminq" and queue.paused
    assert "adminq" in [q.name for q in client.admin.list_queues().queues]
    assert not client.admin.resume_queue(name="adminq").paused
    with open(tmp_path / "copy.db", "wb") as out:
        assert client.admin.backup(out) > 0
    assert (tmp_path / "copy.db").read_bytes().startswith(b"SQLite format 3")


def _make_certificates(directory):
    """A CA, a server certificate for 127.0.0.1 and a client certificate."""
    import subprocess

    def run(*args):
        subprocess.run(["openssl", *args], cwd=directory, check=True,
                       capture_output=True)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days",
        "2", "-subj", "/CN=ca")
    for name, san in (("server", "IP:127.0.0.1"), ("client", "DNS:client")):
        run("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr",
            "-subj", f"/CN={name}")
        (directory / f"{name}.ext").write_text(f"subjectAltName={san}\n")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey",
            "ca.key", "-CAcreateserial", "-out", f"{name}.pem", "-days", "2",
            "-extfile", f"{name}.ext")


def test_tls_with_a_client_certificate(tmp_path):
    from conftest import Server

    _make_certificates(tmp_path)
    server = Server(tmp_path, "--listen", "127.0.0.1:0",
                    "--tls-cert", str(tmp_path / "server.pem"),
                    "--tls-key", str(tmp_path / "server.key"),
                    "--tls-client-ca", str(tmp_path / "ca.pem"))
    try:
        log = server.log.read_text()
        port = log.split("listening on 127.0.0.1:")[1].split()[0]
        addr = f"127.0.0.1:{port}"
        with Client(addr, tls_ca=str(tmp_path / "ca.pem"),
                    tls_cert=str(tmp_path / "client.pem"),
                    tls_key=str(tmp_path / "client.key"),
                    timeout=5) as client:
            assert client.submit_job("k").job.kind == "k"
        # Without the client certificate the handshake fails.
        with Client(addr, tls_ca=str(tmp_path / "ca.pem"),
                    timeout=2) as anonymous:
            with pytest.raises(JobwireError):
                anonymous.submit_job("k")
    finally:
        server.stop()
