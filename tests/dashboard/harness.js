// What the dashboard's browser tests share: a real jobwired (and `jobwire
// worker` processes) in a temp directory, Debian's Chromium through
// playwright-core, and a page that records what must not happen (console
// errors, uncaught exceptions, CSP violations, requests off 127.0.0.1).
//
// Binaries: $JOBWIRED and $JOBWIRE, else build/{ci,dev,release}/bin of this
// checkout. Browser: $CHROMIUM, else /usr/bin/chromium. Screenshots go to
// $DASHBOARD_ARTIFACTS, else build/dashboard-test/.

import {spawn} from "node:child_process";
import {existsSync, mkdirSync, mkdtempSync, rmSync} from "node:fs";
import {tmpdir} from "node:os";
import path from "node:path";
import {fileURLToPath} from "node:url";
import {chromium} from "playwright-core";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const ARTIFACTS = process.env.DASHBOARD_ARTIFACTS || path.join(ROOT, "build", "dashboard-test");

function binary(name, env) {
  if (process.env[env]) return process.env[env];
  for (const preset of ["ci", "dev", "release"]) {
    const p = path.join(ROOT, "build", preset, "bin", name);
    if (existsSync(p)) return p;
  }
  throw new Error(`no ${name}: build it or set ${env}`);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A jobwired on a Unix socket (gRPC, for workers) and 127.0.0.1:0 (HTTP).
export async function startServer({authToken = "", args = []} = {}) {
  const dir = mkdtempSync(path.join(tmpdir(), "jobwire-dashboard-"));
  const grpc = `unix:${path.join(dir, "j.sock")}`;
  const flags = ["--listen", grpc, "--db", path.join(dir, "j.db"), "--http", "127.0.0.1:0",
    "--shutdown-grace=1s", ...args];
  if (authToken) flags.push("--auth-token", authToken);
  const proc = spawn(binary("jobwired", "JOBWIRED"), flags, {stdio: ["ignore", "pipe", "pipe"]});
  let log = "";
  proc.stdout.on("data", (d) => { log += d; });
  proc.stderr.on("data", (d) => { log += d; });
  const deadline = Date.now() + 20000;
  let url = "";
  while (!url) {
    const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(log);
    if (m) url = m[1];
    else if (proc.exitCode !== null || Date.now() > deadline) throw new Error(`jobwired did not start:\n${log}`);
    else await sleep(20);
  }
  const workers = [];
  const server = {
    url, grpc, dir, authToken,
    log: () => log,
    // The JSON API from Node (with the bearer token when there is one).
    async api(method, route, body) {
      const headers = {"Content-Type": "application/json"};
      if (authToken) headers.Authorization = `Bearer ${authToken}`;
      const r = await fetch(url + route, {method, headers, body: body ? JSON.stringify(body) : undefined});
      const text = await r.text();
      const data = text ? JSON.parse(text) : {};
      if (!r.ok) throw new Error(`${method} ${route}: ${r.status} ${text}`);
      return data;
    },
    // The submitted Job.
    async submit(job) {
      return (await server.api("POST", "/v1/jobs", {job})).job;
    },
    // `jobwire worker --exec COMMAND` on `queue`.
    startWorker(queue, command, extra = []) {
      const env = {...process.env, JOBWIRE_ADDR: grpc};
      if (authToken) env.JOBWIRE_TOKEN = authToken;
      const w = spawn(binary("jobwire", "JOBWIRE"), ["worker", "--queue", queue, "--slots", "4", ...extra,
        "--exec", command], {env, stdio: ["ignore", "ignore", "pipe"]});
      w.stderr.on("data", () => {});
      workers.push(w);
      return w;
    },
    async stop() {
      for (const w of workers) if (w.exitCode === null) w.kill("SIGKILL");
      if (proc.exitCode === null) {
        proc.kill("SIGTERM");
        await new Promise((r) => proc.once("exit", r));
      }
      rmSync(dir, {recursive: true, force: true});
    },
  };
  return server;
}

export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    // Root in a container: Chromium's sandbox needs user namespaces.
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
}

// A page in a fresh context that records problems; check() throws on any.
// `allow`: regexps of console errors that the test expects (a 400 for a
// bad filter, a 401 for a wrong token).
export async function openPage(browser, {viewport = {width: 1280, height: 800}, allow = []} = {}) {
  const context = await browser.newContext({viewport});
  const page = await context.newPage();
  const problems = [];
  const requests = [];
  page.on("console", (m) => {
    if (m.type() === "error" && !allow.some((re) => re.test(m.text()))) problems.push(`console error: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`uncaught: ${e.message}`));
  page.on("request", (r) => requests.push(r.url()));
  await page.addInitScript(() => {
    window.__csp = [];
    document.addEventListener("securitypolicyviolation",
      (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  return {
    page, context, problems, requests,
    // Throws on a console error, an uncaught exception, a CSP violation or
    // a request to anything but 127.0.0.1.
    async check() {
      const csp = await page.evaluate(() => window.__csp).catch(() => []);
      for (const v of csp || []) problems.push(`CSP violation: ${v}`);
      for (const u of requests) {
        const url = new URL(u);
        if (url.protocol !== "data:" && url.hostname !== "127.0.0.1") problems.push(`request off 127.0.0.1: ${u}`);
      }
      if (problems.length) throw new Error(problems.join("\n"));
    },
    async close() {
      await context.close();
    },
  };
}

export async function screenshot(page, name) {
  mkdirSync(ARTIFACTS, {recursive: true});
  await page.screenshot({path: path.join(ARTIFACTS, `${name}.png`), fullPage: true});
}

// Polls `fn` until it returns a truthy value (or throws after `ms`).
export async function eventually(fn, ms = 10000, what = "condition") {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    try {
      last = await fn();
      if (last) return last;
    } catch (err) {
      last = err;
    }
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}: ${last instanceof Error ? last.message : JSON.stringify(last)}`);
}

// A numeric command-line flag of a bench script: `--name N`.
export function numberFlag(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

export {sleep};
