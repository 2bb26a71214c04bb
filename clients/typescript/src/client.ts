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
  type ChannelOptions,
  type ClientReadableStream,
  type Interceptor,
} from "@grpc/grpc-js";

import { JobwireError } from "./errors";
import { Job, Job_State, JobEvent } from "./gen/jobwire/v1/job";
import {
  AdminServiceClient,
  BackupRequest,
  DispatchState,
  GetServerInfoRequest,
  ListQueuesRequest,
  ListQueuesResponse,
  ListWebhookDeliveriesRequest,
  ListWebhookDeliveriesResponse,
  PauseDispatchRequest,
  PauseQueueRequest,
  Queue,
  RedeliverWebhookRequest,
  ResumeDispatchRequest,
  ResumeQueueRequest,
  ServerInfo,
  UpdateQueueRequest,
  WebhookDeliveryRecord,
} from "./gen/jobwire/v1/admin_service";
import {
  BulkUpdateJobsRequest,
  BulkUpdateJobsResponse,
  ExplainJobResponse,
  JobServiceClient,
  RetryJobRequest,
  SubmitJobRequest,
  SubmitJobResponse,
  SubmitJobsRequest,
} from "./gen/jobwire/v1/job_service";
import { WorkerServiceClient } from "./gen/jobwire/v1/worker_service";

/** Where `new Client()` connects when $JOBWIRE_ADDR is unset, and where
 *  jobwired serves by default: the same rule in every jobwire client. It
 *  depends on the user, not on the current folder:
 *  - "unix:$XDG_RUNTIME_DIR/jobwire.sock" when XDG_RUNTIME_DIR is an absolute path;
 *  - else "unix:/run/jobwire/jobwire.sock" when running as root;
 *  - else "unix:/tmp/jobwire-UID/jobwire.sock" (UID: the effective user id). */
export function defaultAddress(): string {
  let dir = process.env.XDG_RUNTIME_DIR ?? "";
  if (dir.startsWith("/")) {
    if (dir.length > 1 && dir.endsWith("/")) dir = dir.slice(0, -1);
    return `unix:${dir}/jobwire.sock`;
  }
  const uid = process.geteuid?.() ?? 0;
  if (uid === 0) return "unix:/run/jobwire/jobwire.sock";
  return `unix:/tmp/jobwire-${uid}/jobwire.sock`;
}

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
/** The most bytes (as protobuf) of one SubmitJobs batch: jobwired's default
 *  --max-receive-message-bytes. Lower `batchBytes` for a server with a
 *  lower limit. */
export const DEFAULT_BATCH_BYTES = 4 << 20;

/** What `request` adds to a SubmitJobsRequest: its tag, length and bytes. */
function batchEntryBytes(request: SubmitJobRequest): number {
  const n = SubmitJobRequest.encode(request).finish().length;
  let varint = 1;
  for (let v = n; v >= 0x80; v = Math.floor(v / 0x80)) varint++;
  return 1 + varint + n;
}

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
  private readonly channelOptions: ChannelOptions;
  private adminCalls?: Admin;

  /** `addr`: "unix:PATH", "unix:///ABS" or "HOST:PORT"; default
   *  $JOBWIRE_ADDR, else defaultAddress(). */
  constructor(addr?: string, options: ClientOptions = {}) {
    this.addr = addr || process.env.JOBWIRE_ADDR || defaultAddress();
    const token = options.token ?? process.env.JOBWIRE_TOKEN ?? "";
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.channelOptions = {
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
    this.jobs = new JobServiceClient(this.addr, creds, this.channelOptions);
    this.workers = new WorkerServiceClient(this.addr, creds, this.channelOptions);
  }

  close(): void {
    this.jobs.close();
    this.workers.close();
    this.adminCalls?.stub.close();
  }

  /** An unreachable server's error names the address tried and how to
   *  choose another. */
  private withHint(e: JobwireError): JobwireError {
    if (e.code !== Status.UNAVAILABLE && e.code !== Status.DEADLINE_EXCEEDED) return e;
    const details = `${e.details} (is jobwired serving ${this.addr}? pass the address to Client or set JOBWIRE_ADDR)`;
    return new JobwireError(e.code, details, e.violations, e.retryDelayMs);
  }

  /** @internal */
  unary<Res>(
    call: (md: Metadata, opts: Partial<CallOptions>, cb: (err: unknown, res: Res) => void) => unknown,
  ): Promise<Res> {
    return new Promise((resolve, reject) => {
      const opts = { deadline: new Date(Date.now() + this.timeoutMs) };
      call(waitingMetadata(), opts, (err, res) => (err ? reject(this.withHint(JobwireError.from(err))) : resolve(res)));
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

  /** Submits many jobs over one SubmitJobs stream; yields each job's id, in
   *  order, once its batch is durable. `jobs`: Jobs, or SubmitJobRequests
   *  (`{ job, requestId }`), read lazily, `batchSize` (at most 1,000) to a
   *  batch and at most `batchBytes` (as protobuf; default DEFAULT_BATCH_BYTES):
   *  a batch ends early rather than pass it, a larger job goes alone (and the
   *  server answers RESOURCE_EXHAUSTED, reason REQUEST_TOO_LARGE, naming the
   *  limit). Back-pressure: at most `maxInFlight` batches are sent and not yet
   *  answered; reading `jobs` waits for the server meanwhile. Throws
   *  JobwireError on the first refused batch (the batches before it are in). */
  async *submitJobs(
    jobs: Iterable<Partial<Job> | Partial<SubmitJobRequest>> | AsyncIterable<Partial<Job> | Partial<SubmitJobRequest>>,
    options: { batchSize?: number; maxInFlight?: number; batchBytes?: number } = {},
  ): AsyncGenerator<string> {
    const batchSize = options.batchSize ?? 1000;
    const batchBytes = options.batchBytes ?? DEFAULT_BATCH_BYTES;
    const maxInFlight = options.maxInFlight ?? 4;
    if (!(batchSize >= 1 && batchSize <= 1000)) throw new RangeError("batchSize must be 1 to 1000");
    if (!(maxInFlight >= 1)) throw new RangeError("maxInFlight must be at least 1");
    const call = this.jobs.submitJobs(waitingMetadata());
    let inFlight = 0;
    let finished = false;
    let wake: (() => void) | undefined;
    let sourceError: unknown;
    const room = async (): Promise<boolean> => {
      while (inFlight >= maxInFlight && !finished) await new Promise<void>((r) => (wake = r));
      return !finished;
    };
    const writer = (async () => {
      let batch: SubmitJobRequest[] = [];
      let size = 0; // bytes of batch
      const send = async (): Promise<boolean> => {
        if (!(await room())) return false;
        inFlight++;
        call.write(SubmitJobsRequest.fromPartial({ jobs: batch }));
        batch = [];
        size = 0;
        return true;
      };
      for await (const item of jobs) {
        const request = "job" in item || "requestId" in item
          ? SubmitJobRequest.fromPartial(item as Partial<SubmitJobRequest>)
          : SubmitJobRequest.fromPartial({ job: item as Partial<Job> });
        const entry = batchEntryBytes(request);
        if (batch.length > 0 && size + entry > batchBytes && !(await send())) return;
        batch.push(request);
        size += entry;
        if (batch.length === batchSize && !(await send())) return;
      }
      if (batch.length > 0 && !(await send())) return;
      call.end();
    })().catch((err) => {
      sourceError = err;
      call.cancel();
    });
    try {
      for await (const response of call) {
        inFlight--;
        wake?.();
        yield* (response as { ids: string[] }).ids;
      }
    } catch (err) {
      if (sourceError !== undefined) throw sourceError;
      throw this.withHint(JobwireError.from(err));
    } finally {
      finished = true;
      wake?.();
      call.on("error", () => {}); // the cancel below reports CANCELLED
      call.cancel();
      await writer;
    }
    if (sourceError !== undefined) throw sourceError;
  }

  /** BulkUpdateJobs: one change to the jobs `filter` matches (`""`: every
   *  job) or to `ids`: `patch` with its `paths` (an UpdateJob field mask),
   *  or an `action` (BulkUpdateJobsRequest_Action.ACTION_CANCEL, ...).
   *  Resolves to the counts (matched, updated, skipped, failed) and the first
   *  failures. No deadline unless `timeoutMs`: a large selection takes as
   *  long as it takes. */
  bulkUpdateJobs(
    request: { filter?: string; ids?: string[]; patch?: Partial<Job>; paths?: string[] } & Partial<
      Pick<BulkUpdateJobsRequest, "action" | "expectedStates" | "dryRun">
    >,
    options: { timeoutMs?: number } = {},
  ): Promise<BulkUpdateJobsResponse> {
    if ((request.filter === undefined) === (request.ids === undefined)) {
      return Promise.reject(new RangeError("give exactly one of filter and ids"));
    }
    const message = BulkUpdateJobsRequest.fromPartial({
      filter: request.filter,
      ids: request.ids === undefined ? undefined : { ids: request.ids },
      patch: request.patch === undefined ? undefined : Job.fromPartial(request.patch),
      updateMask: request.paths ?? [],
      action: request.action,
      expectedStates: request.expectedStates,
      dryRun: request.dryRun,
    });
    const opts = options.timeoutMs === undefined ? {} : { deadline: new Date(Date.now() + options.timeoutMs) };
    const call = this.jobs.bulkUpdateJobs(waitingMetadata(), opts);
    return new Promise((resolve, reject) => {
      let done = false;
      call.on("data", (response: BulkUpdateJobsResponse) => {
        done = true;
        resolve(response);
        call.end();
      });
      call.on("error", (err) => {
        if (!done) reject(this.withHint(JobwireError.from(err)));
      });
      call.on("end", () => {
        if (!done) reject(new JobwireError(Status.INTERNAL, "BulkUpdateJobs ended without a response"));
      });
      call.write(message);
    });
  }

  /** The AdminService calls over this client's channel. */
  get admin(): Admin {
    // The same channel as the job calls.
    this.adminCalls ??= new Admin(
      this,
      new AdminServiceClient(this.addr, credentials.createInsecure(), {
        ...this.channelOptions,
        channelOverride: this.jobs.getChannel(),
      }),
    );
    return this.adminCalls;
  }
}

/** AdminService: each method takes the request's fields and resolves to the
 *  response message, e.g. `client.admin.pauseQueue({ name: "emails" })`. */
export class Admin {
  /** @internal */
  constructor(
    private readonly client: Client,
    /** @internal */ readonly stub: AdminServiceClient,
  ) {}

  pauseDispatch(request: Partial<PauseDispatchRequest> = {}): Promise<DispatchState> {
    const r = PauseDispatchRequest.fromPartial(request);
    return this.client.unary((md, o, cb) => this.stub.pauseDispatch(r, md, o, cb));
  }
  resumeDispatch(request: Partial<ResumeDispatchRequest> = {}): Promise<DispatchState> {
    const r = ResumeDispatchRequest.fromPartial(request);
    return this.client.unary((md, o, cb) => this.stub.resumeDispatch(r, md, o, cb));
  }
  pauseQueue(request: Partial<PauseQueueRequest>): Promise<Queue> {
    const r = PauseQueueRequest.fromPartial(request);
    return this.client.unary((md, o, cb) => this.stub.pauseQueue(r, md, o, cb));
  }
  resumeQueue(request: Partial<ResumeQueueRequest>): Promise<Queue> {
    const r = ResumeQueueRequest.fromPartial(request);
    return this.client.unary((md, o, cb) => this.stub.resumeQueue(r, md, o, cb));
  }
  listQueues(request: Partial<ListQueuesRequest> = {}): Promise<ListQueuesResponse> {
    const r = ListQueuesRequest.fromPartial(request);
    return this.client.unary((md, o, cb) => this.stub.listQueues(r, md, o, cb));
  }
  updateQueue(request: Partial<UpdateQueueRequest>): Promise<Queue> {
    const r = UpdateQueueRequest.fromPartial(request);
    return this.client.unary((md, o, cb) => this.stub.updateQueue(r, md, o, cb));
  }
  getServerInfo(request: Partial<GetServerInfoRequest> = {}): Promise<ServerInfo> {
    const r = GetServerInfoRequest.fromPartial(request);
    return this.client.unary((md, o, cb) => this.stub.getServerInfo(r, md, o, cb));
  }
  listWebhookDeliveries(request: Partial<ListWebhookDeliveriesRequest> = {}): Promise<ListWebhookDeliveriesResponse> {
    const r = ListWebhookDeliveriesRequest.fromPartial(request);
    return this.client.unary((md, o, cb) => this.stub.listWebhookDeliveries(r, md, o, cb));
  }
  redeliverWebhook(request: Partial<RedeliverWebhookRequest>): Promise<WebhookDeliveryRecord> {
    const r = RedeliverWebhookRequest.fromPartial(request);
    return this.client.unary((md, o, cb) => this.stub.redeliverWebhook(r, md, o, cb));
  }
  /** A consistent copy of the database, chunk by chunk: write them to a
   *  temporary file and rename it once the iteration ends. */
  async *backup(): AsyncGenerator<Uint8Array> {
    const stream = this.stub.backup(BackupRequest.fromPartial({}), waitingMetadata());
    try {
      for await (const chunk of stream) yield (chunk as { data: Uint8Array }).data;
    } catch (err) {
      throw JobwireError.from(err);
    }
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
