// Worker: runs registered handlers for the jobs jobwired assigns.
//
// A Worker keeps one WorkerService.Connect stream (docs/worker-protocol.md),
// runs up to `slots` handlers at once, reports progress, results and
// failures, heartbeats, and reconnects with backoff when the stream ends (a
// server restart or drain). A handler's `task.signal` aborts when the job
// is cancelled or paused, or when the attempt loses its lease;
// `task.signal.reason` says which. Whatever a handler returns after a stop,
// the runtime acknowledges the stop and the job ends CANCELLED (or PAUSED).

import { hostname } from "node:os";

import { status as Status, type ClientDuplexStream } from "@grpc/grpc-js";

import { Backoff, Client, waitingMetadata } from "./client";
import { JobwireError } from "./errors";
import { Job, JobResult } from "./gen/jobwire/v1/job";
import { Assign, ConnectRequest, ConnectResponse, Rejected } from "./gen/jobwire/v1/worker_service";

/** Why a task's signal aborted. */
export type StopReason = "cancelled" | "paused" | "lost";

/** Thrown by a handler: the attempt failed; `retryable: false` ends the job. */
export class JobFailed extends Error {
  readonly retryable: boolean;
  readonly details?: Record<string, unknown>;
  constructor(message: string, options: { retryable?: boolean; details?: Record<string, unknown> } = {}) {
    super(message);
    this.name = "JobFailed";
    this.retryable = options.retryable ?? true;
    this.details = options.details;
  }
}

/** One attempt of one job, as its handler sees it. */
export class Task {
  readonly signal: AbortSignal;
  /** @internal */ readonly controller = new AbortController();
  /** @internal */ ack = false;
  /** @internal */ lost = false;
  /** @internal the handler's outcome is (being) sent */ reported = false;

  constructor(
    private readonly worker: Worker,
    readonly job: Job,
    readonly attempt: number,
    /** Saved by an earlier attempt. */
    readonly checkpoint: Buffer,
  ) {
    this.signal = this.controller.signal;
  }

  /** The job's args (a JSON object). */
  get args(): Record<string, any> {
    return (this.job.args ?? {}) as Record<string, any>;
  }

  /** Reports progress (watchers see it live); `log` adds a log line. */
  progress(done: number, total: number, message = "", log = ""): void {
    if (this.lost) return;
    this.worker.send({
      progress: { jobId: this.job.id, attempt: this.attempt, progress: { done, total, message, details: undefined }, log },
    });
  }

  /** Saves `data`; a later attempt of the job gets it. */
  saveCheckpoint(data: Uint8Array): void {
    const bytes = Buffer.from(data);
    if (this.lost) return;
    this.worker.send({ checkpoint: { jobId: this.job.id, attempt: this.attempt, data: bytes, release: false } });
  }

  /** @internal */
  stop(reason: StopReason, ack: boolean, lost: boolean): void {
    this.ack ||= ack;
    this.lost ||= lost;
    if (!this.signal.aborted) this.controller.abort(reason);
  }
}

export type Handler = (task: Task) => unknown | Promise<unknown>;

export interface WorkerOptions {
  queues?: string[]; // default ["default"]
  slots?: number; // jobs at once; default 1
  workerId?: string; // default host:pid
}

export class Worker {
  private readonly handlers = new Map<string, Handler>();
  private readonly queues: string[];
  private readonly slots: number;
  private readonly workerId: string;
  private readonly active = new Map<string, Task>();
  private stream?: ClientDuplexStream<ConnectRequest, ConnectResponse>;
  private stopping = false;
  private idle?: () => void;

  constructor(readonly client: Client, options: WorkerOptions = {}) {
    this.queues = options.queues?.length ? options.queues : ["default"];
    this.slots = Math.max(1, options.slots ?? 1);
    this.workerId = options.workerId ?? `${hostname()}:${process.pid}`;
  }

  /** Registers the handler of `kind`. */
  handle(kind: string, handler: Handler): this {
    this.handlers.set(kind, handler);
    return this;
  }

  /** Serves until stop(): connects, runs jobs, reconnects on breaks.
   *  Rejects with JobwireError when the server refuses the worker. */
  async run(): Promise<void> {
    if (this.handlers.size === 0) throw new Error("register a handler before run()");
    const backoff = new Backoff(100, 5000);
    while (!this.stopping) {
      try {
        await this.serveOnce(backoff);
      } catch (err) {
        const e = JobwireError.from(err);
        if (![Status.UNAVAILABLE, Status.CANCELLED, Status.INTERNAL, Status.UNKNOWN].includes(e.code)) throw e;
      } finally {
        for (const t of this.active.values()) t.stop("lost", false, true);
      }
      if (!this.stopping) await backoff.sleep();
    }
  }

  /** Takes no new jobs, waits up to `graceMs` for running ones, then
   *  closes the stream so run() resolves. */
  async stop(graceMs = 30_000): Promise<void> {
    this.stopping = true;
    this.send({ ready: { slots: -this.slots } });
    if (this.active.size > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, graceMs);
        this.idle = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    const stream = this.stream;
    if (stream) {
      if (this.active.size > 0) stream.cancel(); // still running past the grace
      else stream.end();
    }
  }

  /** @internal */
  send(request: Partial<ConnectRequest>): void {
    this.stream?.write(ConnectRequest.fromPartial(request));
  }

  private serveOnce(backoff: Backoff): Promise<void> {
    return new Promise((resolve, reject) => {
      const stream = this.client.workers.connect(waitingMetadata());
      this.stream = stream;
      let heartbeat: NodeJS.Timeout | undefined;
      stream.write(
        ConnectRequest.fromPartial({
          hello: {
            workerId: this.workerId,
            queues: this.queues.map((name) => ({ name, weight: 0 })),
            kinds: [...this.handlers.keys()].sort(),
            slots: this.slots,
          },
        }),
      );
      if (this.stopping) stream.end();
      stream.on("data", (msg: ConnectResponse) => {
        if (msg.welcome) {
          backoff.reset();
          const d = msg.welcome.heartbeatInterval;
          const ms = d ? Math.max(50, d.seconds * 1000 + d.nanos / 1e6) : 1000;
          heartbeat = setInterval(() => this.send({ heartbeat: {} }), ms);
        } else if (msg.assign) {
          this.start(msg.assign);
        } else if (msg.cancel) {
          const expired = msg.cancel.reason === "lease expired" || msg.cancel.reason === "attempt timeout";
          this.active
            .get(key(msg.cancel.jobId, msg.cancel.attempt))
            ?.stop(expired ? "lost" : "cancelled", !expired, expired);
        } else if (msg.pause) {
          this.active.get(key(msg.pause.jobId, msg.pause.attempt))?.stop("paused", true, false);
        } else if (msg.rejected) {
          this.onRejected(msg.rejected);
        }
        // drain: nothing new is assigned; the stream ends UNAVAILABLE later.
      });
      const finish = (err?: unknown) => {
        if (heartbeat) clearInterval(heartbeat);
        if (this.stream === stream) this.stream = undefined;
        if (err) reject(err);
        else resolve();
      };
      stream.on("error", (err) => finish(err));
      stream.on("end", () => finish());
    });
  }

  private start(assign: Assign): void {
    const job = assign.job!;
    const task = new Task(this, job, assign.attempt, assign.checkpoint);
    const k = key(job.id, assign.attempt);
    this.active.set(k, task);
    void this.runTask(task).finally(() => {
      this.active.delete(k);
      if (this.active.size === 0) this.idle?.();
    });
  }

  /**
   * A report the server refused. A stale attempt (ABORTED, NOT_FOUND) stops
   * its task. A refused outcome (INVALID_ARGUMENT, e.g. a result over 1 MiB)
   * would leave the job RUNNING while heartbeats renew its lease: it is
   * answered with a retryable fail carrying the refusal, so the job is
   * retried per its policy or ends FAILED (docs/worker-protocol.md). A
   * refused progress or checkpoint of a running handler changed nothing.
   */
  private onRejected(r: Rejected): void {
    const task = this.active.get(key(r.jobId, r.attempt));
    // INVALID_ARGUMENT (a field over its limit) and RESOURCE_EXHAUSTED (the
    // message over the server's request limit) refuse the report only.
    if (r.code !== Status.INVALID_ARGUMENT && r.code !== Status.RESOURCE_EXHAUSTED) {
      task?.stop("lost", false, true);
      return;
    }
    if (task && !task.reported) return;
    const message = `the server refused the worker's report: ${r.message.slice(0, MAX_REFUSAL_CHARS)}`;
    this.send({
      fail: {
        jobId: r.jobId,
        attempt: r.attempt,
        error: { code: r.code, message, details: undefined, retryable: true },
        retryable: true,
      },
    });
  }

  private async runTask(task: Task): Promise<void> {
    const report = await this.outcome(task);
    task.reported = true;
    if (task.lost) return;
    if (task.signal.aborted && task.ack) {
      this.send({ ack: { jobId: task.job.id, attempt: task.attempt, stopped: true } });
    } else {
      this.send(report);
    }
  }

  private async outcome(task: Task): Promise<Partial<ConnectRequest>> {
    const { id } = task.job;
    const attempt = task.attempt;
    const fail = (message: string, retryable: boolean, details?: Record<string, unknown>) => ({
      fail: { jobId: id, attempt, error: { code: 0, message, details, retryable }, retryable },
    });
    const handler = this.handlers.get(task.job.kind);
    if (!handler) return fail(`no handler for kind "${task.job.kind}"`, false);
    let value: unknown;
    try {
      value = await handler(task);
    } catch (err) {
      if (err instanceof JobFailed) return fail(err.message, err.retryable, err.details);
      return fail(err instanceof Error ? `${err.name}: ${err.message}` : String(err), true);
    }
    const result: JobResult = { data: undefined, payload: Buffer.alloc(0) };
    if (value instanceof Uint8Array) result.payload = Buffer.from(value);
    else if (value !== undefined && value !== null) result.data = value as Record<string, unknown>;
    return { complete: { jobId: id, attempt, result } };
  }
}

/** The most of a refusal's message that the fail answering it carries. */
const MAX_REFUSAL_CHARS = 4096;

function key(jobId: string, attempt: number): string {
  return `${jobId}/${attempt}`;
}
