"""Server-Sent Events through a real SSE client (httpx-sse), with a real
worker (the Python SDK) making progress: the watch guarantees over HTTP."""

import contextlib
import json
import random
import re
import signal
import threading
import time

import httpx
import httpx_sse
import pytest

from jobwire import Client, Worker
from jobwire.v1 import job_service_pb2, job_service_pb2_grpc


def submit(http, kind="step", **job):
    r = http.post("/v1/jobs", json={"job": {"kind": kind, **job}})
    assert r.status_code == 200, r.text
    return r.json()["job"]["id"]


def read_events(http, path, headers=None, limit=None, params=None):
    """(id, event, data) of an SSE stream until it ends or `limit` events."""
    out = []
    with httpx_sse.connect_sse(http, "GET", path, headers=headers or {},
                               params=params) as source:
        if source.response.status_code == 204:
            return out, 204
        assert source.response.status_code == 200, source.response.read()
        assert source.response.headers["content-type"].startswith(
            "text/event-stream")
        for sse in source.iter_sse():
            out.append((sse.id, sse.event, json.loads(sse.data)))
            if limit is not None and len(out) >= limit:
                break
    return out, 200


@pytest.fixture
def worker(server):
    """A worker that reports 5 progress steps, 20 ms apart, then succeeds."""
    w = Worker(Client(server.grpc_addr), queues=["default"], slots=8)

    @w.handler("step")
    def step(ctx):
        steps = int(ctx.args.get("steps", 5))
        for i in range(steps):
            ctx.progress(done=i + 1, total=steps, message=f"step {i + 1}")
            time.sleep(float(ctx.args.get("sleep", 0.02)))
        return {"steps": steps}

    t = threading.Thread(target=w.run, daemon=True)
    t.start()
    yield w
    w.stop()
    t.join(timeout=10)


def test_progress_and_terminal_event_then_the_stream_ends(server, http, worker):
    job = submit(http, args={"steps": 3})
    events, _ = read_events(http, f"/v1/jobs/{job}/events")
    kinds = [e for _, e, _ in events]
    assert kinds[0] == "snapshot"
    # The worker may have reported before the watch began: the snapshot then
    # holds that progress, and the events carry the rest, none missing.
    before = int(events[0][2]["snapshot"].get("progress", {}).get("done", 0))
    done = [int(d["progress"]["done"]) for _, e, d in events if e == "progress"]
    assert done == list(range(before + 1, 4))
    assert kinds[-1] == "state_changed"
    assert events[-1][2]["stateChanged"]["to"] == "STATE_SUCCEEDED"
    # id: is the job's seq, dense from the snapshot on.
    seqs = [int(i) for i, _, _ in events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert all(int(d["seq"]) == int(i) for i, _, d in events)
    # A reconnect after the end gets 204: EventSource stops reconnecting.
    again, status = read_events(http, f"/v1/jobs/{job}/events",
                                headers={"Last-Event-ID": events[-1][0]})
    assert status == 204 and again == []


def test_resume_hammer_gives_each_watcher_exactly_the_durable_log(
        server, http, worker):
    rng = random.Random(7)
    jobs = [submit(http, args={"steps": 8, "sleep": 0.03}) for _ in range(6)]
    seen = {}

    def watch(job):
        got = []
        last = None
        while True:
            headers = {"Last-Event-ID": last} if last else {}
            # Disconnect after a random number of events, like a flaky network.
            events, status = read_events(http, f"/v1/jobs/{job}/events",
                                         headers=headers,
                                         limit=rng.randint(1, 4))
            if status == 204:
                break
            got.extend(events)
            if events:
                last = events[-1][0]
            if events and events[-1][1] == "state_changed" and events[-1][2][
                    "stateChanged"]["to"] in ("STATE_SUCCEEDED", "STATE_FAILED"):
                break
        seen[job] = got

    threads = [threading.Thread(target=watch, args=(j,)) for j in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for job in jobs:
        # The durable log, replayed whole.
        log, _ = read_events(http, f"/v1/jobs/{job}/events",
                             params={"after_seq": 0})
        got = seen[job]
        assert got[0][1] == "snapshot"
        first = int(got[0][0])
        want = [(i, e) for i, e, _ in log if int(i) > first]
        assert [(i, e) for i, e, _ in got[1:]] == want
        assert [d for _, _, d in got[1:]] == [d for i, _, d in log
                                             if int(i) > first]


def test_many_jobs_stream_resumes_by_event_id(server, http):
    a = submit(http, kind="k", queue="one")
    submit(http, kind="k", queue="two")
    events, _ = read_events(http, "/v1/events",
                            params={"filter": 'queue = "one"',
                                    "after_event_id": 0}, limit=1)
    assert events[0][2]["jobId"] == a
    first_id = events[0][0]
    assert http.post(f"/v1/jobs/{a}:cancel", json={}).status_code == 200
    more, _ = read_events(http, "/v1/events",
                          params={"filter": 'queue = "one"',
                                  "after_event_id": 0},
                          headers={"Last-Event-ID": first_id}, limit=1)
    assert more[0][2]["jobId"] == a
    assert int(more[0][0]) > int(first_id)
    assert more[0][2]["stateChanged"]["to"] == "STATE_CANCELLED"
    r = http.get("/v1/events", params={"filter": "state = = x"})
    assert r.status_code == 400


def test_an_sse_stream_is_a_watch_of_the_service_let_go_when_the_peer_goes(
        server, http):
    """Each SSE stream is one watch of the JobService (it counts among the
    server's watchers, beside gRPC's) and a peer that goes away releases it."""
    job = submit(http)  # no worker: stays queued, the streams stay open

    def counts():
        """(watchers, SSE streams gauge, gRPC watch streams gauge)"""
        watchers = int(http.get("/v1/server").json().get("watchers", 0))
        text = http.get("/metrics").text
        gauges = [re.search(rf"^{name} (\S+)$", text, re.M)
                  for name in ("jobwire_sse_streams",
                               "jobwire_grpc_watch_streams")]
        return (watchers, *(float(m.group(1)) if m else 0.0 for m in gauges))

    assert counts() == (0, 0.0, 0.0)
    readers = []  # a dropped reader closes its connection
    with contextlib.ExitStack() as stack:
        for _ in range(3):
            c = stack.enter_context(server.client())
            source = stack.enter_context(
                httpx_sse.connect_sse(c, "GET", f"/v1/jobs/{job}/events"))
            readers.append(source.iter_sse())
            assert next(readers[-1]).event == "snapshot"
        grpc_client = stack.enter_context(Client(server.grpc_addr))
        grpc_watch = job_service_pb2_grpc.JobServiceStub(
            grpc_client.channel).WatchJob(
                job_service_pb2.WatchJobRequest(id=job))
        stack.callback(grpc_watch.cancel)
        assert next(grpc_watch).event.snapshot.id == job
        # Three SSE watches and one gRPC watch of the same service.
        assert counts() == (4, 3.0, 1.0)
        readers.clear()
    # The connections are closed: each watch is let go.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and counts() != (0, 0.0, 0.0):
        time.sleep(0.05)
    assert counts() == (0, 0.0, 0.0)


def test_a_watcher_survives_a_sigterm_restart_by_reconnecting(server, worker):
    # Over the Unix socket, whose address a restart keeps.
    with server.unix_client() as http:
        job = submit(http, args={"steps": 40, "sleep": 0.05})
        got = []
        last = None
        drained = False
        restarted = False
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            headers = {"Last-Event-ID": last} if last else {}
            try:
                with httpx_sse.connect_sse(http, "GET", f"/v1/jobs/{job}/events",
                                           headers=headers) as source:
                    if source.response.status_code == 204:
                        break
                    for sse in source.iter_sse():
                        if sse.event == "draining":
                            drained = True
                            continue
                        if sse.event == "error":  # the stop ended the watch
                            assert json.loads(sse.data)["code"] == 14
                            continue
                        got.append((sse.id, sse.event, json.loads(sse.data)))
                        last = sse.id
                        if not restarted and sum(
                                e == "progress" for _, e, _ in got) >= 3:
                            restarted = True
                            threading.Thread(target=server.restart).start()
            except (httpx.TransportError, httpx.RemoteProtocolError):
                time.sleep(0.1)  # the server is restarting
        assert restarted and drained
        seqs = [int(i) for i, _, _ in got]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs
        assert got[-1][2]["stateChanged"]["to"] == "STATE_SUCCEEDED"
