"""JobwireError: the one error type of the SDK.

Every failed call raises JobwireError carrying the gRPC status code, the
server's message and the rich details jobwired sends (google.rpc.Status in
the ``grpc-status-details-bin`` trailer): the BadRequest field violations of
an INVALID_ARGUMENT and the RetryInfo delay of an UNAVAILABLE.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import grpc
from google.rpc import error_details_pb2, status_pb2

_DETAILS_KEY = "grpc-status-details-bin"


@dataclass(frozen=True)
class FieldViolation:
    """One bad field of a request: ``field`` is its path (``job.kind``)."""

    field: str
    description: str


class JobwireError(Exception):
    """A failed jobwire call."""

    def __init__(self, code: grpc.StatusCode, message: str,
                 violations: Optional[List[FieldViolation]] = None,
                 retry_delay: Optional[float] = None) -> None:
        self.code = code
        self.message = message
        self.violations: List[FieldViolation] = list(violations or [])
        self.retry_delay = retry_delay  # seconds, from RetryInfo
        super().__init__(code, message)

    def __str__(self) -> str:
        text = f"{self.code.name}: {self.message}"
        for v in self.violations:
            text += f"\n  {v.field}: {v.description}"
        return text

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError) -> "JobwireError":
        """Converts what grpcio raises (a grpc.Call) into a JobwireError."""
        code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
        message = error.details() if hasattr(error, "details") else str(error)
        result = cls(code=code, message=message or "")
        trailers = error.trailing_metadata() if hasattr(
            error, "trailing_metadata") else None
        for key, value in trailers or ():
            if key != _DETAILS_KEY:
                continue
            status = status_pb2.Status.FromString(value)
            for any_detail in status.details:
                bad = error_details_pb2.BadRequest()
                retry = error_details_pb2.RetryInfo()
                if any_detail.Unpack(bad):
                    result.violations.extend(
                        FieldViolation(v.field, v.description)
                        for v in bad.field_violations)
                elif any_detail.Unpack(retry):
                    result.retry_delay = retry.retry_delay.ToTimedelta(
                    ).total_seconds()
        return result
