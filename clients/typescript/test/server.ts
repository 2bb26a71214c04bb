// A real jobwired on a Unix socket in a temp directory; the binary is
// $JOBWIRED, else the ci or release build of this checkout.

import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, openSync, readFileSync, closeSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

function jobwired(): string {
  if (process.env.JOBWIRED) return process.env.JOBWIRED;
  for (const preset of ["ci", "release"]) {
    const p = resolve(__dirname, "..", "..", "..", "..", "build", preset, "bin", "jobwired");
    if (existsSync(p)) return p;
  }
  throw new Error("no jobwired: build it or set JOBWIRED");
}

export class Server {
  readonly dir = mkdtempSync(join(tmpdir(), "jobwire-ts-"));
  readonly addr = `unix:${join(this.dir, "j.sock")}`;
  private proc?: ChildProcess;
  private readonly log = join(this.dir, "jobwired.log");

  constructor(private readonly extra: string[] = []) {}

  async start(): Promise<void> {
    const from = existsSync(this.log) ? readFileSync(this.log).length : 0;
    const fd = openSync(this.log, "a");
    this.proc = spawn(
      jobwired(),
      ["--listen", this.addr, "--db", join(this.dir, "j.db"), "--shutdown-grace=2s", "--lease-ttl=3s", ...this.extra],
      { stdio: ["ignore", fd, fd] },
    );
    closeSync(fd);
    for (const deadline = Date.now() + 20_000; Date.now() < deadline; ) {
      if (readFileSync(this.log).subarray(from).includes("listening on")) return;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`jobwired did not start:\n${readFileSync(this.log, "utf8")}`);
  }

  async stop(): Promise<void> {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null) return;
    await new Promise((r) => {
      proc.once("exit", r);
      proc.kill("SIGTERM");
    });
  }

  async dispose(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export async function withServer(fn: (s: Server) => Promise<void>, extra: string[] = []): Promise<void> {
  const s = new Server(extra);
  await s.start();
  try {
    await fn(s);
  } finally {
    await s.dispose();
  }
}
