"""jobwire.aio against a real jobwired (tests/conftest.py)."""

import asyncio

import grpc
import pytest

from jobwire import Job, JobwireError
from jobwire.aio import Client


def test_submit_get_list_watch_and_errors(server):
    async def main():
        async with Client(server.addr) as client:
            job = (await client.submit_job("email", {"to": "a"}, queue="aio")).job
            assert (await client.get_job(job.id)).args["to"] == "a"
            assert [j.id async for j in client.list_jobs('queue = "aio"')] == [job.id]
            events = client.watch_job(job.id)
            first = await events.__anext__()
            assert first.WhichOneof("type") == "snapshot"
            await client.cancel_job(job.id, "done")
            async for event in events:
                last = event
            assert last.state_changed.to == Job.STATE_CANCELLED
            assert (await client.wait_job(job.id)).state == Job.STATE_CANCELLED
            with pytest.raises(JobwireError) as e:
                await client.submit_job("")
            assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
            assert "job.kind" in [v.field for v in e.value.violations]

    asyncio.run(main())


def test_watch_resumes_across_a_server_restart(server):
    async def main():
        async with Client(server.addr) as client:
            job = (await client.submit_job("slow", queue="aio")).job
            events = client.watch_job(job.id)
            assert (await events.__anext__()).WhichOneof("type") == "snapshot"
            await asyncio.get_running_loop().run_in_executor(None, server.restart)
            await client.cancel_job(job.id)
            seen = [e async for e in events]
            assert seen[-1].state_changed.to == Job.STATE_CANCELLED

    asyncio.run(main())
