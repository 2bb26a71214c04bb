"""Client: submit, inspect, control and watch jobwire jobs.

One Client wraps one gRPC channel to one jobwired (a Unix socket or TCP).
Method names follow the RPCs in snake_case (``submit_job`` for SubmitJob);
they return the generated messages (``jobwire.v1.job_pb2.Job``) and raise
JobwireError on failure. Thread-safe: share one Client.

Watches are iterators that resume on their own: when the stream breaks (the
server restarts, a proxy drops it, the server drains), the iterator
reconnects with backoff from the last cursor it yielded, so the caller sees
every event exactly once, in order.
"""

from __future__ import annotations

import collections
import datetime as _dt
import os
import random
import time
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence

import grpc
from google.protobuf import field_mask_pb2, struct_pb2

from jobwire.errors import JobwireError
from jobwire.v1 import job_pb2, job_service_pb2, job_service_pb2_grpc

Job = job_pb2.Job
JobEvent = job_pb2.JobEvent
State = job_pb2.Job.State

DEFAULT_ADDR = "unix:var/jobwire.sock"

TERMINAL_STATES = frozenset(
    (Job.STATE_SUCCEEDED, Job.STATE_FAILED, Job.STATE_CANCELLED))

# Codes after which a watch reconnects (anything else ends it).
_RESUMABLE = frozenset((grpc.StatusCode.UNAVAILABLE,
                        grpc.StatusCode.INTERNAL,
                        grpc.StatusCode.UNKNOWN,
                        grpc.StatusCode.DEADLINE_EXCEEDED,
                        grpc.StatusCode.RESOURCE_EXHAUSTED))


def is_terminal(state: int) -> bool:
    """Whether a Job.State is SUCCEEDED, FAILED or CANCELLED."""
    return state in TERMINAL_STATES


class _CallDetails(
        collections.namedtuple(
            "_CallDetails", ("method", "timeout", "metadata", "credentials",
                             "wait_for_ready", "compression")),
        grpc.ClientCallDetails):
    pass


class _TokenInterceptor(grpc.UnaryUnaryClientInterceptor,
                        grpc.UnaryStreamClientInterceptor,
                        grpc.StreamUnaryClientInterceptor,
                        grpc.StreamStreamClientInterceptor):
    """Adds ``authorization: Bearer TOKEN`` to every call.

    As metadata rather than call credentials: grpcio sends call credentials
    only over TLS, and jobwired's loopback and Unix listeners are plaintext.
    """

    def __init__(self, token: str) -> None:
        self._header = ("authorization", f"Bearer {token}")

    def _with_token(self, d):
        return _CallDetails(d.method, d.timeout,
                            list(d.metadata or ()) + [self._header],
                            d.credentials, d.wait_for_ready, d.compression)

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._with_token(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._with_token(details), request)

    def intercept_stream_unary(self, continuation, details, requests):
        return continuation(self._with_token(details), requests)

    def intercept_stream_stream(self, continuation, details, requests):
        return continuation(self._with_token(details), requests)


# gRPC's own reconnect backoff (1 s growing to 120 s by default) would keep
# a resuming watch or worker away from a restarted server for minutes; a
# job server is worth retrying sooner.
_CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 5000),
]
# Every call is made wait_for_ready. grpcio's synchronous stack moves a
# connection's bytes only while some call waits on it, and a fail-fast call
# on a channel that is reconnecting fails at once without waiting, so after
# a server restart a client making only fail-fast calls never finishes the
# new connection's handshake (seen: 20 s timeouts, over and over). Waiting
# calls do, and a restart then costs a caller a short wait rather than an
# error.


def _read(path: Optional[str]) -> Optional[bytes]:
    if not path:
        return None
    with open(path, "rb") as f:
        return f.read()


def _channel(addr: str, token: Optional[str], tls_ca: Optional[str] = None,
             tls_cert: Optional[str] = None,
             tls_key: Optional[str] = None) -> grpc.Channel:
    if tls_ca:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=_read(tls_ca), private_key=_read(tls_key),
            certificate_chain=_read(tls_cert))
        channel = grpc.secure_channel(addr, credentials,
                                      options=_CHANNEL_OPTIONS)
    else:
        channel = grpc.insecure_channel(addr, options=_CHANNEL_OPTIONS)
    if token:
        channel = grpc.intercept_channel(channel, _TokenInterceptor(token))
    return channel


def _to_struct(value: Optional[Mapping]) -> Optional[struct_pb2.Struct]:
    if value is None:
        return None
    s = struct_pb2.Struct()
    s.update(value)
    return s


class _Backoff:
    """Reconnect delays: 50 ms doubling to 2 s, with ±20% jitter."""

    def __init__(self, initial: float = 0.05, maximum: float = 2.0) -> None:
        self._initial = initial
        self._maximum = maximum
        self._next = initial

    def reset(self) -> None:
        self._next = self._initial

    def sleep(self, hint: Optional[float] = None) -> None:
        delay = hint if hint is not None else self._next
        time.sleep(delay * random.uniform(0.8, 1.2))
        self._next = min(self._next * 2, self._maximum)


class Client:
    """A connection to jobwired.

    ``addr``: ``unix:PATH``, ``unix:///ABS`` or ``HOST:PORT``; default
    ``$JOBWIRE_ADDR`` or ``unix:var/jobwire.sock``. ``token``: the bearer
    token (default ``$JOBWIRE_TOKEN``). ``timeout``: seconds per unary call,
    including the wait for an unreachable server (a restart) to come back;
    then the call raises DEADLINE_EXCEEDED. ``tls_ca``: a PEM CA file to
    connect over TLS (a TCP address of a jobwired with ``--tls-cert``);
    ``tls_cert`` and ``tls_key``: the client's PEM certificate and key for a
    server that asks for one (``--tls-client-ca``).
    """

    def __init__(self, addr: Optional[str] = None, *,
                 token: Optional[str] = None, timeout: float = 10.0,
                 channel: Optional[grpc.Channel] = None,
                 tls_ca: Optional[str] = None, tls_cert: Optional[str] = None,
                 tls_key: Optional[str] = None) -> None:
        self.addr = addr or os.environ.get("JOBWIRE_ADDR") or DEFAULT_ADDR
        token = token if token is not None else os.environ.get("JOBWIRE_TOKEN")
        self.channel = channel or _channel(self.addr, token, tls_ca, tls_cert,
                                           tls_key)
        self.timeout = timeout
        self._jobs = job_service_pb2_grpc.JobServiceStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _call(self, method, request):
        try:
            return method(request, timeout=self.timeout, wait_for_ready=True)
        except grpc.RpcError as e:
            raise JobwireError.from_rpc_error(e) from None

    # -- submitting ---------------------------------------------------------

    def submit_job(self, kind: str, args: Optional[Mapping] = None, *,
                   queue: str = "", payload: bytes = b"",
                   labels: Optional[Mapping[str, str]] = None,
                   priority: int = 0, max_attempts: int = 0,
                   schedule_time: Optional[_dt.datetime] = None,
                   request_id: str = "",
                   job: Optional[Job] = None) -> job_service_pb2.SubmitJobResponse:
        """Submits one job; returns once it is durable.

        Either the fields (``kind`` and the rest) or a whole ``job`` message.
        With ``request_id`` a retry returns the first job
        (``response.created`` is False). Raises JobwireError
        (INVALID_ARGUMENT with ``violations`` naming each bad field).
        """
        if job is None:
            job = Job(kind=kind, queue=queue, payload=payload,
                      priority=priority, max_attempts=max_attempts,
                      labels=dict(labels or {}))
            if args is not None:
                job.args.CopyFrom(_to_struct(args))
            if schedule_time is not None:
                job.schedule_time.FromDatetime(schedule_time)
        return self._call(self._jobs.SubmitJob,
                          job_service_pb2.SubmitJobRequest(
                              job=job, request_id=request_id))

    # -- reading ------------------------------------------------------------

    def get_job(self, job_id: str) -> Job:
        return self._call(self._jobs.GetJob,
                          job_service_pb2.GetJobRequest(id=job_id))

    def list_jobs(self, filter: str = "", *, order_by: str = "",
                  page_size: int = 0) -> Iterator[Job]:
        """Every job matching ``filter`` (AIP-160 subset), page by page."""
        token = ""
        while True:
            page = self._call(self._jobs.ListJobs,
                              job_service_pb2.ListJobsRequest(
                                  filter=filter, order_by=order_by,
                                  page_size=page_size, page_token=token))
            yield from page.jobs
            token = page.next_page_token
            if not token:
                return

    def explain_job(self, job_id: str) -> job_service_pb2.ExplainJobResponse:
        return self._call(self._jobs.ExplainJob,
                          job_service_pb2.ExplainJobRequest(id=job_id))

    # -- control ------------------------------------------------------------

    def cancel_job(self, job_id: str, reason: str = "") -> Job:
        return self._call(self._jobs.CancelJob,
                          job_service_pb2.CancelJobRequest(id=job_id,
                                                           reason=reason))

    def pause_job(self, job_id: str) -> Job:
        return self._call(self._jobs.PauseJob,
                          job_service_pb2.PauseJobRequest(id=job_id))

    def resume_job(self, job_id: str) -> Job:
        return self._call(self._jobs.ResumeJob,
                          job_service_pb2.ResumeJobRequest(id=job_id))

    def retry_job(self, job_id: str) -> Job:
        return self._call(self._jobs.RetryJob,
                          job_service_pb2.RetryJobRequest(id=job_id))

    def update_job(self, job: Job, paths: Sequence[str], *,
                   etag: str = "") -> Job:
        """Writes the fields of ``job`` named by ``paths`` (a FieldMask)."""
        return self._call(self._jobs.UpdateJob,
                          job_service_pb2.UpdateJobRequest(
                              job=job,
                              update_mask=field_mask_pb2.FieldMask(
                                  paths=list(paths)),
                              etag=etag))

    # -- watching -----------------------------------------------------------

    def watch_job(self, job_id: str, *, after_seq: Optional[int] = None,
                  resume: bool = True) -> Iterator[JobEvent]:
        """The events of one job, live, until its terminal event.

        Without ``after_seq`` the first event is a snapshot of the job. Each
        event's ``seq`` is the cursor: after a break the watch resumes after
        the last one yielded. A ``reset`` (the cursor is older than the
        server keeps) is followed by a fresh snapshot event, which is
        yielded like any other. Heartbeats and drain notices are not
        yielded. Ends after the terminal event; raises JobwireError for a
        non-resumable failure (NOT_FOUND, INVALID_ARGUMENT, ...).
        """
        def open_stream(cursor: Optional[int]):
            request = job_service_pb2.WatchJobRequest(id=job_id)
            if cursor is not None:
                request.after_seq = cursor
            return self._jobs.WatchJob(request, wait_for_ready=True)

        return _resuming(open_stream, after_seq, lambda e: e.seq, _ends_job,
                         resume)

    def watch_jobs(self, filter: str = "", *,
                   after_event_id: Optional[int] = None,
                   resume: bool = True) -> Iterator[JobEvent]:
        """The events of every job matching ``filter``, live, forever.

        Without ``after_event_id`` it starts from now; with it, it replays
        what came after (``0``: every event the server keeps). Resumes after
        breaks from the last ``event_id`` yielded. A watch from "now" that
        breaks before its first event resumes from "now" again and may miss
        what happened in between: pass a cursor when that matters. Stop by
        breaking out of the loop.
        """
        def open_stream(cursor: Optional[int]):
            request = job_service_pb2.WatchJobsRequest(filter=filter)
            if cursor is not None:
                request.after_event_id = cursor
            return self._jobs.WatchJobs(request, wait_for_ready=True)

        return _resuming(open_stream, after_event_id, lambda e: e.event_id,
                         lambda e: False, resume)

    def wait_job(self, job_id: str) -> Job:
        """Blocks until the job ends; returns it as it ended."""
        for _ in self.watch_job(job_id):
            pass
        return self.get_job(job_id)


def _resuming(open_stream: Callable[[Optional[int]], Any],
              cursor: Optional[int], cursor_of: Callable[[JobEvent], int],
              ends: Callable[[JobEvent], bool],
              resume: bool) -> Iterator[JobEvent]:
    """The events of a watch stream, reopened after the last cursor yielded
    whenever it breaks with a resumable code; ends after an event for which
    ``ends`` holds, or when the server ends the stream OK."""
    backoff = _Backoff()
    while True:
        stream = open_stream(cursor)
        try:
            for message in stream:
                if message.WhichOneof("kind") != "event":
                    continue  # heartbeat, draining, reset (a snapshot follows)
                event = message.event
                backoff.reset()
                cursor = cursor_of(event)
                yield event
                if ends(event):
                    return
            return
        except grpc.RpcError as e:
            error = JobwireError.from_rpc_error(e)
            if not resume or error.code not in _RESUMABLE:
                raise error from None
            backoff.sleep(error.retry_delay)
        finally:
            stream.cancel()


def _ends_job(event: JobEvent) -> bool:
    kind = event.WhichOneof("type")
    if kind == "state_changed":
        return is_terminal(event.state_changed.to)
    if kind == "snapshot":
        return is_terminal(event.snapshot.state)
    return False
