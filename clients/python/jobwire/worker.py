"""Worker: runs registered handlers for jobs that jobwired assigns.

A Worker keeps one WorkerService.Connect stream (docs/worker-protocol.md),
runs each assigned job's handler on a thread of its own pool (``slots``
threads), reports progress, results and failures, heartbeats while idle,
and reconnects with backoff when the stream ends (a server restart or
drain). ::

    worker = Worker(Client(), queues=["images"])  # $JOBWIRE_ADDR or default

    @worker.handler("resize")
    def resize(ctx):
        for i in range(10):
            if ctx.stopping.is_set():
                return               # cancelled or paused: stop here
            ctx.progress(done=i, total=10)
        return {"ok": True}          # the job's result (a dict or bytes)

    worker.run()                     # until worker.stop(), SIGINT or SIGTERM

A handler fails the attempt by raising: ``JobFailed(message,
retryable=False)`` ends the job FAILED, any other exception is a retryable
failure (the server retries with backoff while attempts remain). When the
job is cancelled or paused while its handler runs, ``ctx.stopping`` is set;
whatever the handler then returns, the runtime acknowledges the stop and
the job ends CANCELLED (or PAUSED). ``ctx.stopping`` is also set when the
attempt loses its lease (the stream broke, the lease expired): its reports
would be rejected, so none are sent.
"""

from __future__ import annotations

import concurrent.futures
import os
import queue
import signal
import socket
import threading
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple

import grpc
from google.protobuf import json_format, struct_pb2

from jobwire.client import Client, _Backoff
from jobwire.errors import JobwireError
from jobwire.v1 import job_pb2, worker_service_pb2 as wpb, \
    worker_service_pb2_grpc

Handler = Callable[["JobContext"], Any]

# Cancel reasons after which the job has moved on: no ack is wanted.
_NO_ACK_REASONS = frozenset(("lease expired", "attempt timeout"))
# Codes of a `rejected` that refuse a report, not the attempt.
_REFUSED_CODES = frozenset((grpc.StatusCode.INVALID_ARGUMENT.value[0],
                            grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]))
# The most of a refusal's message that the fail answering it carries.
_MAX_REFUSAL_CHARS = 4096


class JobFailed(Exception):
    """Raised by a handler: the attempt failed with ``message``."""

    def __init__(self, message: str, *, retryable: bool = True,
                 details: Optional[Mapping] = None) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.details = details


class JobContext:
    """One attempt of one job, as its handler sees it."""

    def __init__(self, worker: "Worker", assign: wpb.Assign) -> None:
        self._worker = worker
        self.job: job_pb2.Job = assign.job
        self.attempt: int = assign.attempt
        # The data of the last checkpoint an earlier attempt saved.
        self.checkpoint: bytes = assign.checkpoint
        # Set when the handler should stop: cancelled, paused, or the
        # attempt lost its lease. `stop_reason` says which.
        self.stopping = threading.Event()
        self.stop_reason: Optional[str] = None
        self._ack_stop = False  # whether the stop wants an ack
        self._lost = False      # no report of this attempt would be taken
        self._reported = False  # the handler's outcome is (being) sent

    @property
    def id(self) -> str:
        return self.job.id

    @property
    def kind(self) -> str:
        return self.job.kind

    @property
    def args(self) -> Dict[str, Any]:
        """The job's args as a dict (from google.protobuf.Struct).

        A Struct keeps every number as a double; whole numbers come back as
        int (``{"n": 6}`` reads as 6, not 6.0), as they were most likely
        written.
        """
        return _ints(json_format.MessageToDict(self.job.args))

    def progress(self, done: int = 0, total: int = 0, message: str = "",
                 log: str = "") -> None:
        """Reports progress (watchers see it live); ``log`` adds a log line."""
        if self._lost:
            return
        self._worker._send(wpb.ConnectRequest(progress=wpb.ReportProgress(
            job_id=self.id, attempt=self.attempt,
            progress=job_pb2.Progress(done=done, total=total, message=message),
            log=log)))

    def save_checkpoint(self, data: bytes) -> None:
        """Saves ``data``; a later attempt of the job gets it as checkpoint."""
        if self._lost:
            return
        self._worker._send(wpb.ConnectRequest(checkpoint=wpb.Checkpoint(
            job_id=self.id, attempt=self.attempt, data=data, release=False)))

    def _stop(self, reason: str, ack: bool, lost: bool = False) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
        self._ack_stop = self._ack_stop or ack
        self._lost = self._lost or lost
        self.stopping.set()


class Worker:
    """Runs handlers for the jobs of ``queues`` (kinds: the registered ones).

    ``client``: a Client (or an address for one). ``slots``: jobs at once.
    ``worker_id``: a name for operators (default ``host:pid``).
    """

    def __init__(self, client: Optional[Client | str] = None, *,
                 queues: Sequence[str] = ("default",), slots: int = 1,
                 worker_id: Optional[str] = None) -> None:
        if slots < 1:
            raise ValueError("slots must be at least 1")
        self.client = client if isinstance(client, Client) else Client(client)
        self.queues = list(queues)
        self.slots = slots
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}"
        self._handlers: Dict[str, Handler] = {}
        self._stub = worker_service_pb2_grpc.WorkerServiceStub(
            self.client.channel)
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=slots, thread_name_prefix="jobwire-job")
        self._lock = threading.Lock()
        self._active: Dict[Tuple[str, int], JobContext] = {}
        self._idle = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._outbox: Optional[queue.Queue] = None
        self._call = None
        self.session_id = ""

    # -- registration -------------------------------------------------------

    def register(self, kind: str, handler: Handler) -> None:
        self._handlers[kind] = handler

    def handler(self, kind: str) -> Callable[[Handler], Handler]:
        """Decorator form of register()."""

        def wrap(fn: Handler) -> Handler:
            self.register(kind, fn)
            return fn

        return wrap

    # -- running ------------------------------------------------------------

    def run(self, handle_signals: bool = True) -> None:
        """Serves until stop(): connects, runs jobs, reconnects on breaks.

        Called on the main thread with ``handle_signals`` (the default),
        SIGINT (Ctrl-C) and SIGTERM drain the worker: no new jobs, running
        ones finish (up to 30 s), then run() returns normally. A second
        signal stops at once (KeyboardInterrupt for SIGINT). The previous
        handlers are restored when run() returns.

        Raises JobwireError when the server refuses the worker
        (INVALID_ARGUMENT, UNAUTHENTICATED, ...).
        """
        if not self._handlers:
            raise ValueError("register a handler before run()")
        restore = self._drain_on_signals() if handle_signals else {}
        try:
            self._run_until_stopped()
        finally:
            for sig, previous in restore.items():
                signal.signal(sig, previous)
            # A stopped Worker does not run again; its handler threads end
            # with their jobs.
            self._pool.shutdown(wait=False)

    def _drain_on_signals(self) -> Dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}
        previous = {}

        def drain(signum: int, frame: Any) -> None:
            # stop() waits for running jobs: not in a signal handler.
            for sig in previous:  # the next signal is not a drain
                signal.signal(sig, signal.default_int_handler
                              if sig == signal.SIGINT else signal.SIG_DFL)
            threading.Thread(target=self.stop, name="jobwire-drain",
                             daemon=True).start()

        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, drain)
        return previous

    def _run_until_stopped(self) -> None:
        backoff = _Backoff(initial=0.1, maximum=5.0)
        while not self._stopping.is_set():
            try:
                self._serve_once(backoff)
            except grpc.RpcError as e:
                error = JobwireError.from_rpc_error(e)
                if error.code not in (grpc.StatusCode.UNAVAILABLE,
                                      grpc.StatusCode.CANCELLED,
                                      grpc.StatusCode.INTERNAL,
                                      grpc.StatusCode.UNKNOWN):
                    raise error from None
            finally:
                self._lose_all("disconnected")
            if not self._stopping.is_set():
                backoff.sleep()

    def stop(self, timeout: float = 30.0) -> None:
        """Takes no new jobs, waits up to ``timeout`` s for running ones,
        then closes the stream so run() returns. Safe from any thread."""
        self._stopping.set()
        self._send(wpb.ConnectRequest(ready=wpb.Ready(slots=-self.slots)))
        with self._idle:
            self._idle.wait_for(lambda: not self._active, timeout=timeout)
        outbox = self._outbox
        if outbox is not None:
            outbox.put(None)  # ends the request stream: a clean close
        call = self._call
        if call is not None and self._active:
            call.cancel()  # jobs still running past the timeout

    def _serve_once(self, backoff: _Backoff) -> None:
        outbox: queue.Queue = queue.Queue()
        heartbeat = [1.0]  # seconds; from welcome
        hello = wpb.Hello(worker_id=self.worker_id,
                          queues=[wpb.WorkerQueue(name=q) for q in self.queues],
                          kinds=sorted(self._handlers), slots=self.slots)
        outbox.put(wpb.ConnectRequest(hello=hello))

        def requests():
            while True:
                try:
                    item = outbox.get(timeout=heartbeat[0])
                except queue.Empty:
                    item = wpb.ConnectRequest(heartbeat=wpb.WorkerHeartbeat())
                if item is None:
                    return
                yield item

        self._outbox = outbox
        call = self._stub.Connect(requests(), wait_for_ready=True)
        self._call = call
        if self._stopping.is_set():
            outbox.put(None)
        try:
            for message in call:
                kind = message.WhichOneof("kind")
                if kind == "welcome":
                    backoff.reset()
                    self.session_id = message.welcome.session_id
                    interval = message.welcome.heartbeat_interval.ToTimedelta()
                    heartbeat[0] = max(interval.total_seconds(), 0.05)
                elif kind == "assign":
                    self._start(message.assign)
                elif kind == "cancel":
                    c = message.cancel
                    self._stop_job(c.job_id, c.attempt, "cancel",
                                   ack=c.reason not in _NO_ACK_REASONS,
                                   lost=c.reason in _NO_ACK_REASONS)
                elif kind == "pause":
                    p = message.pause
                    self._stop_job(p.job_id, p.attempt, "pause", ack=True)
                elif kind == "rejected":
                    self._on_rejected(message.rejected)
                # drain: the server assigns nothing more; jobs finish, then
                # the stream ends UNAVAILABLE and run() reconnects.
        finally:
            self._outbox = None
            self._call = None
            outbox.put(None)

    def _send(self, request: wpb.ConnectRequest) -> None:
        outbox = self._outbox
        if outbox is not None:
            outbox.put(request)

    def _start(self, assign: wpb.Assign) -> None:
        ctx = JobContext(self, assign)
        with self._lock:
            self._active[(ctx.id, ctx.attempt)] = ctx
        self._pool.submit(self._run_job, ctx)

    def _stop_job(self, job_id: str, attempt: int, reason: str, ack: bool,
                  lost: bool = False) -> None:
        with self._lock:
            ctx = self._active.get((job_id, attempt))
        if ctx is not None:
            ctx._stop(reason, ack=ack, lost=lost)

    def _on_rejected(self, r: wpb.Rejected) -> None:
        # INVALID_ARGUMENT (a field over its limit) and RESOURCE_EXHAUSTED
        # (the message over the server's request limit) refuse the report.
        if r.code not in _REFUSED_CODES:
            # ABORTED, NOT_FOUND: the attempt is no longer this worker's.
            self._stop_job(r.job_id, r.attempt, "rejected", ack=False,
                           lost=True)
            return
        with self._lock:
            ctx = self._active.get((r.job_id, r.attempt))
            if ctx is not None and not ctx._reported:
                # A refused progress or checkpoint changed nothing; the
                # handler goes on and reports its outcome.
                return
        # The handler's outcome was refused (a result over 1 MiB): the job
        # would stay RUNNING while heartbeats renew its lease. Fail the
        # attempt with the refusal, so the job is retried per its policy or
        # ends FAILED (docs/worker-protocol.md).
        message = ("the server refused the worker's report: "
                   + r.message[:_MAX_REFUSAL_CHARS])
        error = job_pb2.JobError(code=r.code, message=message, retryable=True)
        self._send(wpb.ConnectRequest(fail=wpb.Fail(
            job_id=r.job_id, attempt=r.attempt, error=error, retryable=True)))

    def _lose_all(self, reason: str) -> None:
        with self._lock:
            for ctx in self._active.values():
                ctx._stop(reason, ack=False, lost=True)

    def _run_job(self, ctx: JobContext) -> None:
        try:
            report = self._outcome(ctx)
            ctx._reported = True
            if ctx._lost:
                return
            if ctx.stopping.is_set() and ctx._ack_stop:
                report = wpb.ConnectRequest(ack=wpb.Ack(
                    job_id=ctx.id, attempt=ctx.attempt, stopped=True))
            self._send(report)
        finally:
            with self._idle:
                self._active.pop((ctx.id, ctx.attempt), None)
                self._idle.notify_all()

    def _outcome(self, ctx: JobContext) -> wpb.ConnectRequest:
        handler = self._handlers.get(ctx.kind)
        try:
            if handler is None:
                raise JobFailed(f"no handler for kind {ctx.kind!r}",
                                retryable=False)
            value = handler(ctx)
        except JobFailed as e:
            return _fail(ctx, e.message, e.retryable, e.details)
        except Exception as e:  # a handler's bug: retry, say what it was
            return _fail(ctx, f"{type(e).__name__}: {e}", True, None)
        result = job_pb2.JobResult()
        if isinstance(value, (bytes, bytearray)):
            result.payload = bytes(value)
        elif value is not None:
            data = struct_pb2.Struct()
            data.update(value)
            result.data.CopyFrom(data)
        return wpb.ConnectRequest(complete=wpb.Complete(
            job_id=ctx.id, attempt=ctx.attempt, result=result))


def _ints(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {k: _ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_ints(v) for v in value]
    return value


def _fail(ctx: JobContext, message: str, retryable: bool,
          details: Optional[Mapping]) -> wpb.ConnectRequest:
    error = job_pb2.JobError(message=message, retryable=retryable)
    if details:
        error.details.update(details)
    return wpb.ConnectRequest(fail=wpb.Fail(
        job_id=ctx.id, attempt=ctx.attempt, error=error, retryable=retryable))
