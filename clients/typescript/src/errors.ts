// JobwireError: the one error type of the SDK. Every failed call rejects
// with a JobwireError carrying the gRPC status code, the server's message
// and the rich details jobwired sends (google.rpc.Status in the
// `grpc-status-details-bin` trailer): the BadRequest field violations of an
// INVALID_ARGUMENT and the RetryInfo delay of an UNAVAILABLE.

import { Metadata, status as Status, type ServiceError } from "@grpc/grpc-js";

import { BadRequest, RetryInfo } from "./gen/google/rpc/error_details";
import { Status as RpcStatus } from "./gen/google/rpc/status";

/** One bad field of a request: `field` is its path (`job.kind`). */
export interface FieldViolation {
  field: string;
  description: string;
}

export class JobwireError extends Error {
  constructor(
    /** The gRPC status code (`status.INVALID_ARGUMENT`, ...). */
    readonly code: Status,
    readonly details: string,
    readonly violations: FieldViolation[] = [],
    /** From RetryInfo, when the server sent one. */
    readonly retryDelayMs?: number,
  ) {
    super(
      `${Status[code] ?? code}: ${details}` +
        violations.map((v) => `; ${v.field}: ${v.description}`).join(""),
    );
    this.name = "JobwireError";
  }

  /** Converts what grpc-js reports into a JobwireError. */
  static from(err: unknown): JobwireError {
    if (err instanceof JobwireError) return err;
    const e = err as Partial<ServiceError>;
    if (typeof e?.code !== "number") {
      return new JobwireError(Status.UNKNOWN, String(err));
    }
    const violations: FieldViolation[] = [];
    let retryDelayMs: number | undefined;
    const raw = e.metadata instanceof Metadata ? e.metadata.get("grpc-status-details-bin") : [];
    for (const value of raw) {
      if (!(value instanceof Buffer)) continue;
      for (const any of RpcStatus.decode(value).details) {
        if (any.typeUrl.endsWith("/google.rpc.BadRequest")) {
          for (const v of BadRequest.decode(any.value).fieldViolations) {
            violations.push({ field: v.field, description: v.description });
          }
        } else if (any.typeUrl.endsWith("/google.rpc.RetryInfo")) {
          const d = RetryInfo.decode(any.value).retryDelay;
          if (d) retryDelayMs = d.seconds * 1000 + d.nanos / 1e6;
        }
      }
    }
    return new JobwireError(e.code, e.details ?? e.message ?? "", violations, retryDelayMs);
  }
}
