"""jobwire: the Python client of the jobwire job server.

    from jobwire import Client, Worker, JobFailed, JobwireError

``Client`` submits, reads, controls and watches jobs (watches resume on
their own after a break); ``Worker`` runs handlers for assigned jobs over
one WorkerService stream. ``watch_progress`` and ``follow_jobs`` give
aggregate progress over many jobs (a tqdm bar when tqdm is installed). ``verify_webhook`` checks a webhook's signature
on the receiving side (``jobwire.webhooks``). The generated messages and
stubs are in ``jobwire.v1`` (``job_pb2``, ``job_service_pb2_grpc``, ...).
"""

from jobwire.client import (TERMINAL_STATES, Client, Job, default_address,
                            JobEvent, is_terminal)
from jobwire.errors import FieldViolation, JobwireError
from jobwire.progress import Progress, follow_jobs, watch_progress
from jobwire.webhooks import WebhookVerificationError, verify_webhook
from jobwire.worker import JobContext, JobFailed, Worker

__all__ = [
    "Client", "default_address", "FieldViolation", "Job", "JobContext",
    "JobEvent", "JobFailed", "JobwireError", "Progress", "TERMINAL_STATES",
    "WebhookVerificationError", "Worker", "follow_jobs", "is_terminal",
    "verify_webhook", "watch_progress",
]
__version__ = "0.1.0"
