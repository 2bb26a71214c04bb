"""jobwire.aio: the asyncio client of jobwired (grpc.aio).

The same calls as ``jobwire.Client``, as coroutines, and watches as async
iterators that resume on their own after a break::

    from jobwire.aio import Client

    async with Client() as client:            # $JOBWIRE_ADDR, else default_address()
        job = (await client.submit_job("resize", {"width": 640})).job
        async for event in client.watch_job(job.id):
            print(event.seq, event.WhichOneof("type"))

Errors are ``jobwire.JobwireError``. The worker runtime is ``jobwire.Worker``
(threads); this module has none.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import os
from typing import Any, AsyncIterator, Callable, Mapping, Optional, Sequence

import grpc
from google.protobuf import field_mask_pb2

from jobwire.client import (_CHANNEL_OPTIONS, Job, JobEvent, _Backoff,
                            _ends_job_event, _hinted, _job_of, _resume_delay,
                            default_address)
from jobwire.errors import JobwireError
from jobwire.v1 import job_service_pb2, job_service_pb2_grpc


class Client:
    """An asyncio connection to jobwired; the arguments are
    ``jobwire.Client``'s. Use ``async with`` or ``await client.close()``."""

    def __init__(self, addr: Optional[str] = None, *,
                 token: Optional[str] = None, timeout: float = 10.0) -> None:
        self.addr = addr or os.environ.get("JOBWIRE_ADDR") or default_address()
        token = token if token is not None else os.environ.get("JOBWIRE_TOKEN")
        # As metadata: grpcio sends call credentials only over TLS.
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self.channel = grpc.aio.insecure_channel(self.addr,
                                                 options=_CHANNEL_OPTIONS)
        self.timeout = timeout
        self._jobs = job_service_pb2_grpc.JobServiceStub(self.channel)

    async def close(self) -> None:
        await self.channel.close()

    async def __aenter__(self) -> "Client":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def _call(self, method: Any, request: Any) -> Any:
        try:
            return await method(request, timeout=self.timeout,
                                wait_for_ready=True, metadata=self._metadata)
        except grpc.aio.AioRpcError as e:
            raise _hinted(JobwireError.from_rpc_error(e), self.addr) from None

    async def submit_job(self, kind: str, args: Optional[Mapping] = None, *,
                         queue: str = "", payload: bytes = b"",
                         labels: Optional[Mapping[str, str]] = None,
                         priority: int = 0, max_attempts: int = 0,
                         schedule_time: Optional[_dt.datetime] = None,
                         request_id: str = "", job: Optional[Job] = None,
                         ) -> job_service_pb2.SubmitJobResponse:
        """Submits one job; returns once it is durable."""
        if job is None:
            job = _job_of(kind, args, queue, payload, labels, priority,
                          max_attempts, schedule_time)
        return await self._call(self._jobs.SubmitJob,
                                job_service_pb2.SubmitJobRequest(
                                    job=job, request_id=request_id))

    async def get_job(self, job_id: str) -> Job:
        return await self._call(self._jobs.GetJob,
                                job_service_pb2.GetJobRequest(id=job_id))

    async def list_jobs(self, filter: str = "", *, order_by: str = "",
                        page_size: int = 0) -> AsyncIterator[Job]:
        """Every job matching ``filter``, page by page."""
        token = ""
        while True:
            page = await self._call(self._jobs.ListJobs,
                                    job_service_pb2.ListJobsRequest(
                                        filter=filter, order_by=order_by,
                                        page_size=page_size, page_token=token))
            for job in page.jobs:
                yield job
            token = page.next_page_token
            if not token:
                return

    async def explain_job(self, job_id: str) -> job_service_pb2.ExplainJobResponse:
        return await self._call(self._jobs.ExplainJob,
                                job_service_pb2.ExplainJobRequest(id=job_id))

    async def cancel_job(self, job_id: str, reason: str = "") -> Job:
        return await self._call(self._jobs.CancelJob,
                                job_service_pb2.CancelJobRequest(
                                    id=job_id, reason=reason))

    async def pause_job(self, job_id: str) -> Job:
        return await self._call(self._jobs.PauseJob,
                                job_service_pb2.PauseJobRequest(id=job_id))

    async def resume_job(self, job_id: str) -> Job:
        return await self._call(self._jobs.ResumeJob,
                                job_service_pb2.ResumeJobRequest(id=job_id))

    async def retry_job(self, job_id: str) -> Job:
        return await self._call(self._jobs.RetryJob,
                                job_service_pb2.RetryJobRequest(id=job_id))

    async def update_job(self, job: Job, paths: Sequence[str], *,
                         etag: str = "") -> Job:
        return await self._call(self._jobs.UpdateJob,
                                job_service_pb2.UpdateJobRequest(
                                    job=job, etag=etag,
                                    update_mask=field_mask_pb2.FieldMask(
                                        paths=list(paths))))

    def watch_job(self, job_id: str, *, after_seq: Optional[int] = None,
                  resume: bool = True) -> AsyncIterator[JobEvent]:
        """The events of one job until its terminal event, resuming after
        breaks from the last ``seq`` yielded (see ``jobwire.Client``)."""
        def open_stream(cursor: Optional[int]) -> Any:
            request = job_service_pb2.WatchJobRequest(id=job_id)
            if cursor is not None:
                request.after_seq = cursor
            return self._jobs.WatchJob(request, wait_for_ready=True,
                                       metadata=self._metadata)

        return _resuming(open_stream, after_seq, lambda e: e.seq,
                         _ends_job_event, resume)

    def watch_jobs(self, filter: str = "", *,
                   after_event_id: Optional[int] = None,
                   resume: bool = True) -> AsyncIterator[JobEvent]:
        """The events of every job matching ``filter``, live, resuming after
        breaks from the last ``event_id`` yielded; stop with ``break``."""
        def open_stream(cursor: Optional[int]) -> Any:
            request = job_service_pb2.WatchJobsRequest(filter=filter)
            if cursor is not None:
                request.after_event_id = cursor
            return self._jobs.WatchJobs(request, wait_for_ready=True,
                                        metadata=self._metadata)

        return _resuming(open_stream, after_event_id, lambda e: e.event_id,
                         lambda e: False, resume)

    async def wait_job(self, job_id: str) -> Job:
        """Returns the job once it has ended."""
        async for _ in self.watch_job(job_id):
            pass
        return await self.get_job(job_id)


async def _resuming(open_stream: Callable[[Optional[int]], Any],
                    cursor: Optional[int], cursor_of: Callable[[JobEvent], int],
                    ends: Callable[[JobEvent], bool],
                    resume: bool) -> AsyncIterator[JobEvent]:
    backoff = _Backoff()
    while True:
        call = open_stream(cursor)
        try:
            async for message in call:
                if message.WhichOneof("kind") == "event":  # not a heartbeat
                    backoff.reset()
                    cursor = cursor_of(message.event)
                    yield message.event
                    if ends(message.event):
                        return
            return
        except grpc.aio.AioRpcError as e:
            await asyncio.sleep(_resume_delay(e, resume, backoff))
        finally:
            call.cancel()
