"""Aggregate progress over many jobs, against a real jobwired."""

import io
import sys
import threading

from jobwire import Client, Worker, follow_jobs, watch_progress


def test_counts_follow_the_jobs_of_a_filter_to_their_end(server):
    with Client(server.addr) as client:
        ids = [client.submit_job("k", queue="p", labels={"b": "1"}).job.id
               for _ in range(3)]
        client.submit_job("k", queue="p", labels={"b": "2"})
        client.cancel_job(ids[0])
        stream = watch_progress(client, 'labels.b = "1"')
        first = next(stream)
        assert (first.total, first.cancelled, first.ended) == (3, 1, 1)
        assert first.eta is None and not first.done
        client.cancel_job(ids[1])
        client.cancel_job(ids[2])
        seen = list(stream)
        last = seen[-1]
        assert (last.total, last.cancelled, last.succeeded) == (3, 3, 0)
        assert last.done and last.eta is None
        # Only changes after the list: the two cancels, not a replay.
        assert [p.ended for p in seen] == [2, 3]
        assert last.rate > 0


def _run_worker(client, count):
    worker = Worker(client, queues=["w"])
    done = []

    def handler(ctx):
        done.append(1)
        if len(done) == count:
            threading.Thread(target=worker.stop).start()
        return {"ok": True}

    worker.register("k", handler)
    return worker


def test_follow_jobs_prints_lines_without_tqdm(server, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # not importable
    with Client(server.addr) as client:
        ids = [client.submit_job("k", queue="w").job.id for _ in range(4)]
        worker = _run_worker(client, 4)
        runner = threading.Thread(target=worker.run, args=(False,))
        runner.start()
        out = io.StringIO()
        final = follow_jobs(client, 'queue = "w"', ids=set(ids[:3]), out=out)
        runner.join(timeout=30)
        assert (final.total, final.succeeded) == (3, 3)
        lines = out.getvalue().splitlines()
        assert lines[-1].startswith("3/3 ended: 3 succeeded, 0 failed")
        assert "\r" not in out.getvalue()


def test_follow_jobs_draws_a_tqdm_bar_when_installed(server):
    import pytest
    pytest.importorskip("tqdm")
    with Client(server.addr) as client:
        job = client.submit_job("k", queue="t").job
        client.cancel_job(job.id)
        out = io.StringIO()
        final = follow_jobs(client, 'queue = "t"', out=out)
        assert (final.total, final.cancelled) == (1, 1)
        assert "1/1" in out.getvalue() and "cancelled=1" in out.getvalue()
