import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

import { status } from "@grpc/grpc-js";

import { Client, Job_State, JobEvent, JobFailed, JobwireError, VERSION, watchProgress, Worker } from "../src";
import { BulkUpdateJobsRequest_Action } from "../src/gen/jobwire/v1/job_service";
import { withServer } from "./server";

async function rejectsWith(p: Promise<unknown>, code: status): Promise<JobwireError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof JobwireError, String(err));
    assert.equal(err.code, code, err.message);
    return err;
  }
  assert.fail("expected a JobwireError");
}

test("submit, get, list and cancel", () =>
  withServer(async (s) => {
    const c = new Client(s.addr);
    const first = await c.submitJob(
      { kind: "email", queue: "mail", args: { to: "a@example.com" }, labels: { team: "growth" } },
      { requestId: "req-1" },
    );
    assert.ok(first.created);
    const again = await c.submitJob({ kind: "email", queue: "mail" }, { requestId: "req-1" });
    assert.equal(again.created, false);
    assert.equal(again.job!.id, first.job!.id);
    const got = await c.getJob(first.job!.id);
    assert.equal(got.args!.to, "a@example.com");
    assert.equal(got.labels.team, "growth");
    for (let i = 0; i < 4; i++) await c.submitJob({ kind: "report", queue: "mail" });
    const listed = [];
    for await (const j of c.listJobs('queue = "mail"', { pageSize: 2 })) listed.push(j);
    assert.equal(listed.length, 5);
    const cancelled = await c.cancelJob(first.job!.id, "not needed");
    assert.equal(cancelled.state, Job_State.STATE_CANCELLED);
    c.close();
  }));

test("bad input rejects with JobwireError naming the field", () =>
  withServer(async (s) => {
    const c = new Client(s.addr);
    const e = await rejectsWith(c.submitJob({ kind: "", queue: "Bad Queue" }), status.INVALID_ARGUMENT);
    const fields = e.violations.map((v) => v.field);
    assert.ok(fields.includes("job.kind") && fields.includes("job.queue"), String(fields));
    await rejectsWith(c.getJob("01M9715MHTFBGAGMKPGD3MGD0W"), status.NOT_FOUND);
    const listing = (async () => {
      for await (const _ of c.listJobs("state = = RUNNING")) {
        // nothing
      }
    })();
    await rejectsWith(listing, status.INVALID_ARGUMENT);
    c.close();
  }));

test("a worker runs handlers; the watch resumes across a restart", () =>
  withServer(async (s) => {
    const c = new Client(s.addr);
    const { job } = await c.submitJob({ kind: "steps", args: { n: 6 } });
    const seen: JobEvent[] = [];
    const watched = (async () => {
      for await (const ev of c.watchJob(job!.id)) seen.push(ev);
    })();

    let reached!: () => void;
    const atStep3 = new Promise<void>((r) => (reached = r));
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    const w = new Worker(c);
    w.handle("steps", async (task) => {
      const n = task.args.n as number;
      for (let i = 1; i <= n; i++) {
        task.progress(i, n);
        if (i === 3) {
          reached();
          await released;
        }
      }
      return { steps: n };
    });
    const running = w.run();
    await atStep3;
    // Mid-job the server stops; at the end of its grace the job goes back
    // to its queue. After the restart the worker runs it again and the
    // watch resumes from its cursor.
    await s.stop();
    await new Promise((r) => setTimeout(r, 1000)); // down for a while
    await s.start();
    release();
    await watched;
    await w.stop(5000);
    await running;

    seen.forEach((ev, i) => assert.equal(ev.seq, seen[0].seq + i, "a gap or a duplicate"));
    assert.ok(seen[0].snapshot);
    const states = seen.filter((e) => e.stateChanged).map((e) => e.stateChanged!.to);
    assert.deepEqual(states, [
      Job_State.STATE_RUNNING,
      Job_State.STATE_QUEUED,
      Job_State.STATE_RUNNING,
      Job_State.STATE_SUCCEEDED,
    ]);
    assert.equal((await c.getJob(job!.id)).result!.data!.steps, 6);
    c.close();
  }));

test("a worker fails, retries and stops on cancel", () =>
  withServer(async (s) => {
    const c = new Client(s.addr);
    let started!: () => void;
    const longStarted = new Promise<void>((r) => (started = r));
    const w = new Worker(c, { slots: 2 })
      .handle("bad", () => {
        throw new JobFailed("input is wrong", { retryable: false, details: { field: "a" } });
      })
      .handle("flaky", (task) => {
        if (task.attempt === 1) throw new Error("transient");
        return Buffer.from([1, 2]);
      })
      .handle("long", async (task) => {
        started();
        await new Promise((r) => task.signal.addEventListener("abort", r));
        assert.equal(task.signal.reason, "cancelled");
        return { ignored: true };
      });
    const running = w.run();
    const bad = (await c.submitJob({ kind: "bad" })).job!.id;
    const flaky = (await c.submitJob({ kind: "flaky" })).job!.id;
    const failed = await c.waitJob(bad);
    assert.equal(failed.state, Job_State.STATE_FAILED);
    assert.equal(failed.error!.message, "input is wrong");
    assert.equal(failed.error!.retryable, false);
    assert.equal(failed.error!.details!.field, "a");
    const retried = await c.waitJob(flaky);
    assert.equal(retried.state, Job_State.STATE_SUCCEEDED);
    assert.equal(retried.attempt, 2);
    assert.deepEqual([...retried.result!.payload], [1, 2]);

    const long = (await c.submitJob({ kind: "long" })).job!.id;
    await longStarted;
    await c.cancelJob(long, "changed my mind");
    const ended = await c.waitJob(long);
    assert.equal(ended.state, Job_State.STATE_CANCELLED);
    assert.equal(ended.result, undefined);
    await w.stop(5000);
    await running;
    c.close();
  }));

// #27: a result over the server's 1 MiB cap is refused; the worker fails the
// attempt with the refusal rather than leave the job RUNNING while its
// heartbeats renew the lease.
test("a refused result fails the attempt with the refusal", () =>
  withServer(async (s) => {
    const c = new Client(s.addr);
    const w = new Worker(c).handle("big", () => Buffer.alloc(2 << 20, 0x72));
    const running = w.run();
    const id = (await c.submitJob({ kind: "big", maxAttempts: 1 })).job!.id;
    const failed = await c.waitJob(id);
    assert.equal(failed.state, Job_State.STATE_FAILED);
    assert.equal(failed.error!.code, status.INVALID_ARGUMENT);
    assert.match(failed.error!.message, /at most 1048576/);
    await w.stop(5000);
    await running;
    c.close();
  }));

test("the token goes on every call and stream", () =>
  withServer(
    async (s) => {
      const anonymous = new Client(s.addr, { token: "" });
      await rejectsWith(anonymous.submitJob({ kind: "k" }), status.UNAUTHENTICATED);
      anonymous.close();
      const c = new Client(s.addr, { token: "s3cret" });
      const { job } = await c.submitJob({ kind: "k" });
      const w = new Worker(c).handle("k", () => ({ ok: true }));
      const running = w.run();
      assert.equal((await c.waitJob(job!.id)).state, Job_State.STATE_SUCCEEDED);
      await w.stop(5000);
      await running;
      c.close();
    },
    ["--auth-token=s3cret"],
  ));

test("submitJobs yields ids in order and reads ahead boundedly", () =>
  withServer(async (s) => {
    const c = new Client(s.addr);
    let read = 0;
    let readAtFirstId = -1;
    function* source() {
      for (let i = 0; i < 95; i++) {
        read++;
        yield { kind: "many", labels: { i: String(i) } };
      }
    }
    const ids: string[] = [];
    for await (const id of c.submitJobs(source(), { batchSize: 10, maxInFlight: 1 })) {
      if (ids.length === 0) readAtFirstId = read;
      ids.push(id);
    }
    assert.equal(ids.length, 95);
    assert.equal(new Set(ids).size, 95);
    assert.equal((await c.getJob(ids[0])).labels.i, "0");
    assert.equal((await c.getJob(ids[94])).labels.i, "94");
    // Back-pressure: the batch in flight, the next and one more being filled.
    assert.ok(readAtFirstId <= 31, String(readAtFirstId));
    const bad = (async () => {
      for await (const _ of c.submitJobs([{ kind: "" }])) {
        // refused
      }
    })();
    await rejectsWith(bad, status.INVALID_ARGUMENT);
    c.close();
  }));

// #27: six jobs of 900 KiB are 5.4 MiB, over the server's default 4 MiB
// request limit as one batch; submitJobs splits them.
test("submitJobs splits batches under the byte limit", () =>
  withServer(async (s) => {
    const c = new Client(s.addr);
    const jobs = Array.from({ length: 6 }, () => ({ kind: "big", payload: Buffer.alloc(900 << 10, 0x70) }));
    const ids: string[] = [];
    for await (const id of c.submitJobs(jobs)) ids.push(id);
    assert.equal(new Set(ids).size, 6);
    c.close();
  }));

test("bulkUpdateJobs and the AdminService calls", () =>
  withServer(async (s) => {
    const c = new Client(s.addr);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await c.submitJob({ kind: "bulk", queue: "bulkq" })).job!.id);
    const cancel = BulkUpdateJobsRequest_Action.ACTION_CANCEL;
    const dry = await c.bulkUpdateJobs({ filter: 'queue = "bulkq"', action: cancel, dryRun: true });
    assert.deepEqual([dry.matched, dry.updated], [3, 3]);
    const done = await c.bulkUpdateJobs({ ids: ids.slice(0, 2), action: cancel });
    assert.deepEqual([done.matched, done.updated, done.failed], [2, 2, 0]);
    assert.equal((await c.getJob(ids[1])).state, Job_State.STATE_CANCELLED);
    const patched = await c.bulkUpdateJobs({ filter: 'queue = "bulkq" AND state = QUEUED', patch: { priority: 7 }, paths: ["priority"] });
    assert.equal(patched.updated, 1);
    assert.equal((await c.getJob(ids[2])).priority, 7);

    assert.equal((await c.admin.getServerInfo()).version, VERSION);
    const q = await c.admin.pauseQueue({ name: "adminq" });
    assert.ok(q.paused);
    assert.ok((await c.admin.listQueues()).queues.some((x) => x.name === "adminq"));
    assert.equal((await c.admin.resumeQueue({ name: "adminq" })).paused, false);
    const chunks: Uint8Array[] = [];
    for await (const chunk of c.admin.backup()) chunks.push(chunk);
    assert.equal(Buffer.concat(chunks).subarray(0, 15).toString(), "SQLite format 3");
    c.close();
  }));

// A CA, a server certificate for 127.0.0.1 and a client certificate, made
// by openssl in `dir`.
function makeCertificates(dir: string): void {
  const run = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "ignore" });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  run("req", "-x509", ...ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=ca");
  for (const [name, san] of [
    ["server", "IP:127.0.0.1"],
    ["client", "DNS:client"],
  ]) {
    run("req", ...ec, "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${name}`);
    writeFileSync(join(dir, `${name}.ext`), `subjectAltName=${san}\n`);
    run("x509", "-req", "-in", `${name}.csr`, "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
      "-out", `${name}.pem`, "-days", "2", "-extfile", `${name}.ext`);
  }
}

test("TLS with a client certificate", async () => {
  const certs = mkdtempSync(join(tmpdir(), "jobwire-ts-tls-"));
  try {
    makeCertificates(certs);
    const file = (name: string) => join(certs, name);
    await withServer(
      async (s) => {
        let log = "";
        for (const deadline = Date.now() + 20_000; Date.now() < deadline; ) {
          log = readFileSync(join(s.dir, "jobwired.log"), "utf8");
          if (log.includes("listening on 127.0.0.1:")) break;
          await new Promise((r) => setTimeout(r, 20));
        }
        const addr = "127.0.0.1:" + log.split("listening on 127.0.0.1:")[1].split(/\s/)[0];
        const c = new Client(addr, { tlsCa: file("ca.pem"), tlsCert: file("client.pem"), tlsKey: file("client.key") });
        assert.equal((await c.submitJob({ kind: "k" })).job!.kind, "k");
        c.close();
        // Without the client certificate the handshake fails.
        const anonymous = new Client(addr, { tlsCa: file("ca.pem"), timeoutMs: 2000 });
        await assert.rejects(anonymous.submitJob({ kind: "k" }));
        anonymous.close();
      },
      ["--listen", "127.0.0.1:0", "--tls-cert", file("server.pem"), "--tls-key", file("server.key"),
        "--tls-client-ca", file("ca.pem")],
    );
  } finally {
    rmSync(certs, { recursive: true, force: true });
  }
});

test("watchProgress counts the jobs of a filter to their end", () =>
  withServer(async (s) => {
    const c = new Client(s.addr);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await c.submitJob({ kind: "k", labels: { b: "1" } })).job!.id);
    await c.submitJob({ kind: "k", labels: { b: "2" } });
    await c.cancelJob(ids[0]);
    const ended: number[] = [];
    for await (const p of watchProgress(c, 'labels.b = "1"')) {
      assert.equal(p.total, 3);
      ended.push(p.ended);
      if (ended.length === 1) {
        assert.equal(p.cancelled, 1);
        assert.equal(p.etaSeconds, undefined);
        for (const id of ids.slice(1)) await c.cancelJob(id);
      }
      if (p.ended === 3) {
        assert.equal(p.cancelled, 3);
        assert.equal(p.etaSeconds, undefined);
        assert.ok(p.rate > 0);
      }
    }
    // The list, then the two cancels: no replay of what the list saw.
    assert.deepEqual(ended, [1, 2, 3]);
    c.close();
  }));
