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
import threading
import time
from typing import (Any, Callable, Iterable, Iterator, Mapping, Optional,
                    Sequence)

import grpc
from google.protobuf import field_mask_pb2, struct_pb2

from jobwire.errors import JobwireError
from jobwire.v1 import (admin_service_pb2, admin_service_pb2_grpc, job_pb2,
                        job_service_pb2, job_service_pb2_grpc)

Job = job_pb2.Job
JobEvent = job_pb2.JobEvent
State = job_pb2.Job.State


def default_address() -> str:
    """Where ``Client()`` connects when ``$JOBWIRE_ADDR`` is unset, and where
    jobwired serves by default: the same rule in every jobwire client. It
    depends on the user, not on the current folder:

    - ``unix:$XDG_RUNTIME_DIR/jobwire.sock`` when XDG_RUNTIME_DIR is an
      absolute path;
    - else ``unix:/run/jobwire/jobwire.sock`` when running as root;
    - else ``unix:/tmp/jobwire-UID/jobwire.sock`` (UID: the effective user id).
    """
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    if runtime.startswith("/"):
        if len(runtime) > 1 and runtime.endswith("/"):
            runtime = runtime[:-1]
        return f"unix:{runtime}/jobwire.sock"
    uid = os.geteuid()
    if uid == 0:
        return "unix:/run/jobwire/jobwire.sock"
    return f"unix:/tmp/jobwire-{uid}/jobwire.sock"


TERMINAL_STATES = frozenset(
    (Job.STATE_SUCCEEDED, Job.STATE_FAILED, Job.STATE_CANCELLED))

# Codes after which a watch reconnects (anything else ends it).
_RESUMABLE = frozenset((grpc.StatusCode.UNAVAILABLE,
                        grpc.StatusCode.INTERNAL,
                        grpc.StatusCode.UNKNOWN,
                        grpc.StatusCode.DEADLINE_EXCEEDED,
                        grpc.StatusCode.RESOURCE_EXHAUSTED))


# The most bytes (as protobuf) of one SubmitJobs batch: jobwired's default
# --max-receive-message-bytes (submit_jobs).
DEFAULT_BATCH_BYTES = 4 << 20


def _batch_entry_bytes(request: job_service_pb2.SubmitJobRequest) -> int:
    """What ``request`` adds to a SubmitJobsRequest: tag, length, bytes."""
    n = request.ByteSize()
    return 1 + max(1, (n.bit_length() + 6) // 7) + n


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


def _hinted(error: JobwireError, addr: str) -> JobwireError:
    """An unreachable server's error says where we looked and how to look
    elsewhere."""
    if error.code in (grpc.StatusCode.UNAVAILABLE,
                      grpc.StatusCode.DEADLINE_EXCEEDED):
        error.message += (f" (is jobwired serving {addr}? pass the address "
                          "to Client or set JOBWIRE_ADDR)")
    return error


def _job_of(kind: str, args: Optional[Mapping], queue: str, payload: bytes,
            labels: Optional[Mapping[str, str]], priority: int,
            max_attempts: int, schedule_time: Optional[_dt.datetime]) -> Job:
    job = Job(kind=kind, queue=queue, payload=payload, priority=priority,
              max_attempts=max_attempts, labels=dict(labels or {}))
    if args is not None:
        job.args.CopyFrom(_to_struct(args))
    if schedule_time is not None:
        job.schedule_time.FromDatetime(schedule_time)
    return job


def _ends_job_event(event: JobEvent) -> bool:
    kind = event.WhichOneof("type")
    if kind == "state_changed":
        return is_terminal(event.state_changed.to)
    if kind == "snapshot":
        return is_terminal(event.snapshot.state)
    return False


def _resume_delay(e: grpc.RpcError, resume: bool, backoff: "_Backoff") -> float:
    """How long a broken watch waits before it reopens; raises JobwireError
    when it should not (``resume`` off, or a code that is not resumable)."""
    error = JobwireError.from_rpc_error(e)
    if not resume or error.code not in _RESUMABLE:
        raise error from None
    return backoff.next_delay(error.retry_delay)


class _Backoff:
    """Reconnect delays: 50 ms doubling to 2 s, with ±20% jitter."""

    def __init__(self, initial: float = 0.05, maximum: float = 2.0) -> None:
        self._initial = initial
        self._maximum = maximum
        self._next = initial

    def reset(self) -> None:
        self._next = self._initial

    def next_delay(self, hint: Optional[float] = None) -> float:
        """Seconds to wait now (``hint``: the server's RetryInfo)."""
        delay = hint if hint is not None else self._next
        self._next = min(self._next * 2, self._maximum)
        return delay * random.uniform(0.8, 1.2)

    def sleep(self, hint: Optional[float] = None) -> None:
        time.sleep(self.next_delay(hint))


class Client:
    """A connection to jobwired.

    ``addr``: ``unix:PATH``, ``unix:///ABS`` or ``HOST:PORT``; default
    ``$JOBWIRE_ADDR``, else ``default_address()``. ``token``: the bearer
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
        self.addr = addr or os.environ.get("JOBWIRE_ADDR") or default_address()
        token = token if token is not None else os.environ.get("JOBWIRE_TOKEN")
        self.channel = channel or _channel(self.addr, token, tls_ca, tls_cert,
                                           tls_key)
        self.timeout = timeout
        self._jobs = job_service_pb2_grpc.JobServiceStub(self.channel)
        self._admin: Optional[Admin] = None

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
            raise self._hinted(JobwireError.from_rpc_error(e)) from None

    def _hinted(self, error: JobwireError) -> JobwireError:
        return _hinted(error, self.addr)

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
            job = _job_of(kind, args, queue, payload, labels, priority,
                          max_attempts, schedule_time)
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

        return _resuming(open_stream, after_seq, lambda e: e.seq, _ends_job_event,
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

    # -- many jobs ----------------------------------------------------------

    def submit_jobs(self, jobs: Iterable[Any], *, batch_size: int = 1000,
                    max_in_flight: int = 4,
                    batch_bytes: int = DEFAULT_BATCH_BYTES) -> Iterator[str]:
        """Submits many jobs over one SubmitJobs stream; yields each job's id,
        in order, once its batch is durable.

        ``jobs``: Job or SubmitJobRequest messages (the latter to set a
        ``request_id``), read lazily, ``batch_size`` (at most 1,000) to a
        batch, and at most ``batch_bytes`` (as protobuf; default 4 MiB,
        jobwired's default ``--max-receive-message-bytes``): a batch ends
        early rather than pass it, a larger job goes alone (and the server
        answers RESOURCE_EXHAUSTED, reason REQUEST_TOO_LARGE, naming the
        limit). Lower it for a server with a lower limit. Back-pressure: at most ``max_in_flight`` batches are sent and
        not yet answered; reading ``jobs`` waits for the server meanwhile,
        so a large or endless source costs bounded memory. Raises
        JobwireError on the first refused batch (the batches before it are
        in); with request ids, submitting again is safe.
        """
        if not 1 <= batch_size <= 1000:
            raise ValueError("batch_size must be 1 to 1000")
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        window = threading.BoundedSemaphore(max_in_flight)
        done = threading.Event()

        def room() -> bool:  # waits for a free slot; False once we are done
            while not window.acquire(timeout=0.1):
                if done.is_set():
                    return False
            return True

        def batches() -> Iterator[job_service_pb2.SubmitJobsRequest]:
            batch = job_service_pb2.SubmitJobsRequest()
            size = 0  # bytes of batch
            for item in jobs:
                request = item if isinstance(
                    item, job_service_pb2.SubmitJobRequest) else \
                    job_service_pb2.SubmitJobRequest(job=item)
                entry = _batch_entry_bytes(request)
                if batch.jobs and size + entry > batch_bytes:
                    if not room():
                        return
                    yield batch
                    batch = job_service_pb2.SubmitJobsRequest()
                    size = 0
                batch.jobs.append(request)
                size += entry
                if len(batch.jobs) == batch_size:
                    if not room():
                        return
                    yield batch
                    batch = job_service_pb2.SubmitJobsRequest()
                    size = 0
            if batch.jobs and room():
                yield batch

        stream = self._jobs.SubmitJobs(batches(), wait_for_ready=True)
        try:
            for response in stream:
                window.release()
                yield from response.ids
        except grpc.RpcError as e:
            raise self._hinted(JobwireError.from_rpc_error(e)) from None
        finally:
            done.set()
            stream.cancel()

    def bulk_update_jobs(
            self, *, filter: Optional[str] = None,
            ids: Optional[Sequence[str]] = None,
            action: int = 0, patch: Optional[Job] = None,
            paths: Sequence[str] = (),
            expected_states: Sequence[int] = (),
            dry_run: bool = False,
            timeout: Optional[float] = None,
    ) -> job_service_pb2.BulkUpdateJobsResponse:
        """BulkUpdateJobs: one change to the jobs ``filter`` matches (``""``:
        every job) or to the given ``ids``: ``patch`` with its ``paths`` (an
        UpdateJob field mask), or an ``action``
        (``BulkUpdateJobsRequest.ACTION_CANCEL``, ``_PAUSE``, ``_RESUME``,
        ``_RETRY``, ``_DELETE``). Returns the counts (matched, updated,
        skipped, failed) and the first failures. ``timeout``: seconds (default
        none: a large selection takes as long as it takes).
        """
        if (filter is None) == (ids is None):
            raise ValueError("give exactly one of filter and ids")
        request = job_service_pb2.BulkUpdateJobsRequest(
            action=action, expected_states=list(expected_states),
            dry_run=dry_run)
        if ids is not None:
            request.ids.ids.extend(ids)
        else:
            request.filter = filter or ""
        if patch is not None:
            request.patch.CopyFrom(patch)
            request.update_mask.CopyFrom(
                field_mask_pb2.FieldMask(paths=list(paths)))
        stream = self._jobs.BulkUpdateJobs(iter([request]), timeout=timeout,
                                           wait_for_ready=True)
        try:
            return next(iter(stream))
        except grpc.RpcError as e:
            raise self._hinted(JobwireError.from_rpc_error(e)) from None
        finally:
            stream.cancel()

    @property
    def admin(self) -> "Admin":
        """The AdminService calls (dispatch and queue controls, server info,
        webhook deliveries, backup)."""
        if self._admin is None:
            self._admin = Admin(self)
        return self._admin


class Admin:
    """AdminService over a Client's channel: each method takes the request's
    fields as keyword arguments and returns the response message, e.g.
    ``client.admin.pause_queue(name="emails")``,
    ``client.admin.get_server_info().version``. Errors are JobwireError."""

    def __init__(self, client: "Client") -> None:
        self._client = client
        self._stub = admin_service_pb2_grpc.AdminServiceStub(client.channel)

    def _unary(self, method: str, request_type: Any, fields: Mapping[str, Any]) -> Any:
        return self._client._call(getattr(self._stub, method),
                                  request_type(**fields))

    def pause_dispatch(self, **fields: Any) -> admin_service_pb2.DispatchState:
        return self._unary("PauseDispatch", admin_service_pb2.PauseDispatchRequest, fields)

    def resume_dispatch(self, **fields: Any) -> admin_service_pb2.DispatchState:
        return self._unary("ResumeDispatch", admin_service_pb2.ResumeDispatchRequest, fields)

    def pause_queue(self, **fields: Any) -> admin_service_pb2.Queue:
        return self._unary("PauseQueue", admin_service_pb2.PauseQueueRequest, fields)

    def resume_queue(self, **fields: Any) -> admin_service_pb2.Queue:
        return self._unary("ResumeQueue", admin_service_pb2.ResumeQueueRequest, fields)

    def list_queues(self, **fields: Any) -> admin_service_pb2.ListQueuesResponse:
        return self._unary("ListQueues", admin_service_pb2.ListQueuesRequest, fields)

    def update_queue(self, **fields: Any) -> admin_service_pb2.Queue:
        return self._unary("UpdateQueue", admin_service_pb2.UpdateQueueRequest, fields)

    def get_server_info(self, **fields: Any) -> admin_service_pb2.ServerInfo:
        return self._unary("GetServerInfo", admin_service_pb2.GetServerInfoRequest, fields)

    def list_webhook_deliveries(
            self, **fields: Any) -> admin_service_pb2.ListWebhookDeliveriesResponse:
        return self._unary("ListWebhookDeliveries",
                           admin_service_pb2.ListWebhookDeliveriesRequest, fields)

    def redeliver_webhook(self, **fields: Any) -> admin_service_pb2.WebhookDeliveryRecord:
        return self._unary("RedeliverWebhook",
                           admin_service_pb2.RedeliverWebhookRequest, fields)

    def backup(self, out: Any, **fields: Any) -> int:
        """Writes a consistent copy of the database to the binary file
        ``out`` (``open(path, "wb")``); returns the bytes written. Write to a
        temporary name and rename once this returns."""
        written = 0
        try:
            for chunk in self._stub.Backup(
                    admin_service_pb2.BackupRequest(**fields), wait_for_ready=True):
                out.write(chunk.data)
                written += len(chunk.data)
        except grpc.RpcError as e:
            raise self._client._hinted(JobwireError.from_rpc_error(e)) from None
        return written


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
                backoff.reset()
                cursor = cursor_of(message.event)
                yield message.event
                if ends(message.event):
                    return
            return
        except grpc.RpcError as e:
            time.sleep(_resume_delay(e, resume, backoff))
        finally:
            stream.cancel()
