// Client: submit, read, control and watch jobwire jobs.
//
// One Client wraps one gRPC channel to one jobwired (a Unix socket or TCP).
// Method names follow the RPCs in camelCase (`submitJob` for SubmitJob);
// they resolve to the generated messages and reject with JobwireError.
// Watches are async iterables that resume on their own: when the stream
// breaks (a server restart, a drain, a proxy), they reconnect with backoff
// from the last cursor they yielded, so the caller sees every event once,
// in order.

import { readFileSync } from "node:fs";
import {
  credentials,
  InterceptingCall,
  Metadata,
  status as Status,
  type CallOptions,
  type ClientReadableStream,
  type Interceptor,
} from "@grpc/grpc-js";

import { JobwireError } from "./errors";
import { Job, Job_State, JobEvent } from "./gen/jobwire/v1/job";
import {
  ExplainJobResponse,
  JobServiceClient,
  RetryJobRequest,
  SubmitJobResponse,
} from "./gen/jobwire/v1/job_service";
import { WorkerServiceClient } from "./gen/jobwire/v1/worker_service";

export const DEFAULT_ADDR = "unix:var/jobwire.sock";

export interface ClientOptions {
  /** Bearer token sent on every call (default $JOBWIRE_TOKEN). */
  token?: string;
  /** Milliseconds per unary call, including the wait for a restarting
   *  server to come back (default 10 000); then DEADLINE_EXCEEDED. */
  timeoutMs?: number;
  /** A PEM CA file: connect over TLS (a TCP address of a jobwired started
   *  with --tls-cert). */
  tlsCa?: string;
  /** The client's PEM certificate and key files, for a server that asks
   *  for one (--tls-client-ca). */
  tlsCert?: string;
  tlsKey?: string;
}

export interface SubmitOptions {
  /** A retry with the same id returns the first job (`created` false). */
  requestId?: string;
}

export interface ListOptions {
  orderBy?: string;
  pageSize?: number;
}

const TERMINAL = new Set([Job_State.STATE_SUCCEEDED, Job_State.STATE_FAILED, Job_State.STATE_CANCELLED]);

/** Whether a job state is SUCCEEDED, FAILED or CANCELLED. */
export function isTerminal(state: Job_State): boolean {
  return TERMINAL.has(state);
}

// Codes after which a watch reconnects; anything else ends it.
const RESUMABLE = new Set([Status.UNAVAILABLE, Status.INTERNAL, Status.UNKNOWN, Status.RESOURCE_EXHAUSTED]);

/** Metadata for a call that waits for the channel to be ready: a
 *  restarting server then costs a caller a short wait rather than an
 *  UNAVAILABLE (unary calls still end at their deadline). */
export function waitingMetadata(): Metadata {
  const md = new Metadata();
  md.setOptions({ waitForReady: true });
  return md;
}

function tokenInterceptor(token: string): Interceptor {
  return (options, nextCall) =>
    new InterceptingCall(nextCall(options), {
      start(metadata, listener, next) {
        metadata.set("authorization", `Bearer ${token}`);
        next(metadata, listener);
      },
    });
}

/** Reconnect delays: 50 ms doubling to 2 s, with ±20% jitter. */
export class Backoff {
  private next: number;
  constructor(private readonly initialMs = 50, private readonly maxMs = 2000) {
    this.next = initialMs;
  }
  reset(): void {
    this.next = this.initialMs;
  }
  async sleep(hintMs?: number): Promise<void> {
    const ms = (hintMs ?? this.next) * (0.8 + 0.4 * Math.random());
    this.next = Math.min(this.next * 2, this.maxMs);
    await new Promise((r) => setTimeout(r, ms));
  }
}

export class Client {
  readonly addr: string;
  /** @internal */ readonly jobs: JobServiceClient;
  /** @internal */ readonly workers: WorkerServiceClient;
  private readonly timeoutMs: number;

  /** `addr`: "unix:PATH", "unix:///ABS" or "HOST:PORT"; default
   *  $JOBWIRE_ADDR, else "unix:var/jobwire.sock". */
  constructor(addr?: string, options: ClientOptions = {}) {
    this.addr = addr || process.env.JOBWIRE_ADDR || DEFAULT_ADDR;
    const token = options.token ?? process.env.JOBWIRE_TOKEN ?? "";
    this.timeoutMs = options.timeoutMs ?? 10_000;
    const channelOptions = {
      // gRPC's reconnect backoff grows to 120 s by default; a job server is
      // worth retrying sooner.
      "grpc.initial_reconnect_backoff_ms": 100,
      "grpc.max_reconnect_backoff_ms": 5000,
      interceptors: token ? [tokenInterceptor(token)] : [],
    };
    const creds = options.tlsCa
      ? credentials.createSsl(
          readFileSync(options.tlsCa),
          options.tlsKey ? readFileSync(options.tlsKey) : null,
          options.tlsCert ? readFileSync(options.tlsCert) : null,
        )
      : credentials.createInsecure();
    this.jobs = new JobServiceClient(this.addr, creds, channelOptions);
    this.workers = new WorkerServiceClient(this.addr, creds, channelOptions);
  }

  close(): void {
    this.jobs.close();
    this.workers.close();
  }

  private unary<Res>(
    call: (md: Metadata, opts: Partial<CallOptions>, cb: (err: unknown, res: Res) => void) => unknown,
  ): Promise<Res> {
    return new Promise((resolve, reject) => {
      const opts = { deadline: new Date(Date.now() + this.timeoutMs) };
      call(waitingMetadata(), opts, (err, res) => (err ? reject(JobwireError.from(err)) : resolve(res)));
    });
  }

  /** Submits one job; resolves once it is durable. */
  submitJob(job: Partial<Job>, options: SubmitOptions = {}): Promise<SubmitJobResponse> {
    const request = { job: Job.fromPartial(job), requestId: options.requestId ?? "" };
    return this.unary((md, o, cb) => this.jobs.submitJob(request, md, o, cb));
  }

  getJob(id: string): Promise<Job> {
    return this.unary((md, o, cb) => this.jobs.getJob({ id }, md, o, cb));
  }

  /** Every job matching `filter` (AIP-160 subset), page by page. */
  async *listJobs(filter = "", options: ListOptions = {}): AsyncGenerator<Job> {
    let pageToken = "";
    for (;;) {
      const request = { filter, orderBy: options.orderBy ?? "", pageSize: options.pageSize ?? 0, pageToken };
      const page = await this.unary<{ jobs: Job[]; nextPageToken: string }>((md, o, cb) =>
        this.jobs.listJobs(request, md, o, cb),
      );
      yield* page.jobs;
      if (!page.nextPageToken) return;
      pageToken = page.nextPageToken;
    }
  }

  cancelJob(id: string, reason = ""): Promise<Job> {
    return this.unary((md, o, cb) => this.jobs.cancelJob({ id, reason }, md, o, cb));
  }
  pauseJob(id: string): Promise<Job> {
    return this.unary((md, o, cb) => this.jobs.pauseJob({ id }, md, o, cb));
  }
  resumeJob(id: string): Promise<Job> {
    return this.unary((md, o, cb) => this.jobs.resumeJob({ id }, md, o, cb));
  }
  retryJob(id: string): Promise<Job> {
    return this.unary((md, o, cb) => this.jobs.retryJob(RetryJobRequest.fromPartial({ id }), md, o, cb));
  }
  /** Writes the fields of `job` named by `paths` (a FieldMask). */
  updateJob(job: Partial<Job>, paths: string[], etag = ""): Promise<Job> {
    const request = { job: Job.fromPartial(job), updateMask: paths, etag };
    return this.unary((md, o, cb) => this.jobs.updateJob(request, md, o, cb));
  }
  explainJob(id: string): Promise<ExplainJobResponse> {
    return this.unary((md, o, cb) => this.jobs.explainJob({ id }, md, o, cb));
  }

  /** The events of one job, live, until its terminal event. Without
   *  `afterSeq` the first event is a snapshot; after a break it resumes
   *  after the last seq yielded (a reset is followed by a fresh snapshot).
   *  Throws JobwireError for a non-resumable failure (NOT_FOUND, ...). */
  watchJob(id: string, afterSeq?: number): AsyncGenerator<JobEvent> {
    return resuming(
      (cursor) => this.jobs.watchJob({ id, afterSeq: cursor }, waitingMetadata()),
      afterSeq,
      (e) => e.seq,
      endsJob,
    );
  }

  /** The events of every job matching `filter`, live, until the caller
   *  stops. Without `afterEventId` it starts from now (a break before the
   *  first event resumes from now again); with it, it replays what came
   *  after (0: every event the server keeps). */
  watchJobs(filter = "", afterEventId?: number): AsyncGenerator<JobEvent> {
    return resuming(
      (cursor) => this.jobs.watchJobs({ filter, afterEventId: cursor }, waitingMetadata()),
      afterEventId,
      (e) => e.eventId,
      () => false,
    );
  }

  /** Resolves once the job has ended, with the job as it ended. */
  async waitJob(id: string): Promise<Job> {
    for await (const _ of this.watchJob(id)) {
      // the watch ends after the terminal event
    }
    return this.getJob(id);
  }
}

function endsJob(e: JobEvent): boolean {
  if (e.stateChanged) return isTerminal(e.stateChanged.to);
  if (e.snapshot) return isTerminal(e.snapshot.state);
  return false;
}

async function* resuming(
  open: (cursor: number | undefined) => ClientReadableStream<{ event?: JobEvent }>,
  cursor: number | undefined,
  cursorOf: (e: JobEvent) => number,
  ends: (e: JobEvent) => boolean,
): AsyncGenerator<JobEvent> {
  const backoff = new Backoff();
  for (;;) {
    const stream = open(cursor);
    try {
      for await (const message of stream) {
        const event = message.event;
        if (!event) continue; // heartbeat, draining, reset (a snapshot follows)
        backoff.reset();
        cursor = cursorOf(event);
        yield event;
        if (ends(event)) return;
      }
      return; // the server ended the stream OK
    } catch (err) {
      const e = JobwireError.from(err);
      if (!RESUMABLE.has(e.code)) throw e;
      await backoff.sleep(e.retryDelayMs);
    } finally {
      stream.on("error", () => {}); // the cancel below reports CANCELLED
      stream.cancel();
    }
  }
}
