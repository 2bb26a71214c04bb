// @jobwire/client: the TypeScript client of the jobwire job server.
//
//   import { Client, Worker, JobFailed, JobwireError } from "@jobwire/client";
//
// Client submits, reads, controls and watches jobs (watches resume on their
// own after a break); Worker runs handlers for assigned jobs over one
// WorkerService stream. verifyWebhook checks a webhook's signature on the
// receiving side. The generated messages are re-exported as `v1`.

export { Admin, Backoff, Client, DEFAULT_BATCH_BYTES, defaultAddress, isTerminal } from "./client";
export type { ClientOptions, ListOptions, SubmitOptions } from "./client";
export { JobwireError } from "./errors";
export { watchProgress } from "./progress";
export type { Progress } from "./progress";
export { VERSION } from "./version";
export type { FieldViolation } from "./errors";
export { JobFailed, Task, Worker } from "./worker";
export type { Handler, StopReason, WorkerOptions } from "./worker";
export { DEFAULT_WEBHOOK_TOLERANCE_MS, verifyWebhook, WebhookVerificationError } from "./webhook";
export type { VerifyWebhookOptions, WebhookErrorKind, WebhookHeaders } from "./webhook";
export { Job, Job_State, JobEvent } from "./gen/jobwire/v1/job";
export * as v1 from "./gen/jobwire/v1/job_service";
