// The dashboard in a real browser (Debian's Chromium, driven by
// playwright-core) against a real jobwired and real `jobwire worker`
// processes. Every page is checked for console errors, uncaught exceptions,
// CSP violations and requests off 127.0.0.1; screenshots of each page land
// in build/dashboard-test/.

import assert from "node:assert/strict";
import {after, before, describe, test} from "node:test";

import {eventually, launchBrowser, openPage, screenshot, sleep, startServer} from "./harness.js";
import {fill, renderTime} from "./jobs_page_bench.js";

// A worker command that reports progress 1/5 .. 5/5, 600 ms apart: slower
// than the jobs page's relist of a job it has not seen yet (500 ms after
// its first event), so a new row shows at least two steps live.
const STEPS = 'for i in 1 2 3 4 5; do echo "progress $i/5 step $i"; sleep 0.6; done; echo \'{"ok": true}\'';
// One that reports 1/2 and then works for a minute (to be cancelled).
const SLOW = 'echo "progress 1/2 started"; sleep 60';

const HTTP_400 = /status of 400/;
const HTTP_401 = /status of 401/;

let server;
let browser;

before(async () => {
  [server, browser] = await Promise.all([startServer(), launchBrowser()]);
  server.startWorker("work", STEPS);
  server.startWorker("slow", SLOW);
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

async function visit(hash, options = {}) {
  const p = await openPage(browser, options);
  await p.page.goto(`${server.url}/${hash}`);
  return p;
}

async function stateOf(id) {
  return (await server.api("GET", `/v1/jobs/${id}`)).state;
}

describe("serving", () => {
  test("the page is served without auth, under a strict CSP, with ETag revalidation", async () => {
    const r = await fetch(`${server.url}/`);
    assert.equal(r.status, 200);
    assert.match(r.headers.get("content-type"), /^text\/html/);
    const csp = r.headers.get("content-security-policy");
    for (const d of ["default-src 'self'", "script-src 'self'", "style-src 'self'", "connect-src 'self'",
      "frame-ancestors 'none'", "base-uri 'none'", "form-action 'none'"]) {
      assert.ok(csp.includes(d), `CSP lacks ${d}: ${csp}`);
    }
    assert.equal(r.headers.get("x-content-type-options"), "nosniff");
    assert.equal(r.headers.get("referrer-policy"), "no-referrer");
    assert.equal(r.headers.get("cache-control"), "no-cache");
    const etag = r.headers.get("etag");
    assert.match(etag, /^"[0-9a-f]{32}"$/);
    assert.match(await r.text(), /<script type="module" src="\/ui\/app.js">/);

    const again = await fetch(`${server.url}/`, {headers: {"If-None-Match": etag}});
    assert.equal(again.status, 304);
    assert.equal(await again.text(), "");

    const js = await fetch(`${server.url}/ui/app.js`);
    assert.match(js.headers.get("content-type"), /^text\/javascript/);
    assert.equal((await fetch(`${server.url}/ui/missing.js`)).status, 404);
  });
});

describe("pages", () => {
  test("every page loads with no console error or CSP violation; screenshots", async () => {
    const job = await server.submit({queue: "tour", kind: "look", args: {n: 1}});
    const p = await visit("#/queues");
    const {page} = p;
    await page.getByRole("heading", {name: "Queues"}).waitFor();
    await page.locator('tr[data-queue="tour"]').waitFor();
    await screenshot(page, "queues");
    await page.getByRole("link", {name: "Jobs", exact: true}).click();
    await page.locator(`tr[data-job="${job.id}"]`).waitFor();
    await screenshot(page, "jobs");
    await page.locator(`a[href="#/jobs/${job.id}"]`).click();
    await page.locator("#job-state").waitFor();
    await page.locator("#log li").first().waitFor();
    await screenshot(page, "job");
    await page.getByRole("link", {name: "Server"}).click();
    await page.locator("#server-info dd").first().waitFor();
    const info = await page.locator("#server-info").innerText();
    assert.match(info, /Version/);
    assert.match(info, /Uptime/);
    assert.match(info, /127\.0\.0\.1/);
    assert.match(await page.locator("#group-commit").innerText(), /Commits\s+[\d,.\s]+/);
    assert.equal(await page.locator("#metrics-link").getAttribute("href"), "/metrics");
    const metrics = await fetch(`${server.url}/metrics`);
    assert.equal(metrics.status, 200, "the /metrics link leads nowhere");
    assert.match(await metrics.text(), /^# (HELP|TYPE) /m);
    await screenshot(page, "server");
    await p.check();
    await p.close();
  });

  test("the queues page shows counts by state, live", async () => {
    const p = await visit("#/queues");
    for (let i = 0; i < 3; i++) await server.submit({queue: "counted", kind: "k"});
    const queued = p.page.locator('tr[data-queue="counted"] td[data-state="QUEUED"]');
    await eventually(async () => (await queued.innerText()) === "3", 8000, "3 queued");
    await server.submit({queue: "counted", kind: "k"});
    await eventually(async () => (await queued.innerText()) === "4", 8000, "4 queued without a reload");
    await p.check();
    await p.close();
  });

  test("the queues page shows the free slots of the workers serving a queue, live", async () => {
    server.startWorker("slots", SLOW);
    const p = await visit("#/queues");
    const free = p.page.locator('tr[data-queue="slots"] td[data-field="free-slots"]');
    await eventually(async () => (await free.innerText()) === "4", 8000, "the worker's 4 free slots");
    const job = await server.submit({queue: "slots", kind: "k"});
    await eventually(async () => (await free.innerText()) === "3", 8000, "3 free slots once the job runs");
    const listed = (await server.api("GET", "/v1/queues")).queues.find((q) => q.name === "slots");
    assert.equal(listed.freeSlots, 3);
    assert.equal(listed.workers, 1);
    await server.api("POST", `/v1/jobs/${job.id}:cancel`, {});
    await eventually(async () => (await free.innerText()) === "4", 8000, "4 free slots after the cancel");
    await screenshot(p.page, "queues-free-slots");
    await p.check();
    await p.close();
  });

  test("a submitted job appears and its progress bar moves live to SUCCEEDED", async () => {
    const p = await visit('#/jobs?filter=queue%20%3D%20%22work%22');
    const {page} = p;
    await page.locator("#filter").waitFor();
    // Record every value the bars take, with the time it was shown.
    await page.evaluate(() => {
      window.__noReload = true;
      window.__bars = [];
      new MutationObserver((records) => {
        for (const r of records) {
          if (r.target.localName === "progress" && r.attributeName === "data-done") {
            window.__bars.push([r.target.closest("tr").dataset.job, r.target.dataset.done, performance.now()]);
          }
        }
      }).observe(document.querySelector("tbody"), {subtree: true, attributes: true, attributeFilter: ["data-done"]});
    });
    const job = await server.submit({queue: "work", kind: "steps", args: {file: "a.png"}});
    const row = page.locator(`tr[data-job="${job.id}"]`);
    await row.waitFor({timeout: 8000});
    await eventually(async () => (await row.getAttribute("data-state")) === "SUCCEEDED", 20000, "SUCCEEDED");
    // The worker reports 1/5 .. 5/5, 600 ms apart: the bar showed at least
    // two steps before the last, at least 200 ms apart (live, not a burst).
    const bars = (await page.evaluate(() => window.__bars)).filter(([id]) => id === job.id);
    const steps = new Map();
    for (const [, done, t] of bars) if (/^[1-4]$/.test(done) && !steps.has(done)) steps.set(done, t);
    const times = [...steps.values()];
    assert.ok(times.length >= 2, `the bar moved through at most one step: ${JSON.stringify(bars)}`);
    assert.ok(times.at(-1) - times[0] >= 200, `the steps came in a burst: ${JSON.stringify(bars)}`);
    assert.equal(await row.locator("progress").evaluate((b) => b.value === b.max), true);
    assert.equal(await page.evaluate(() => window.__noReload), true, "the page reloaded");
    await p.check();
    await p.close();
  });

  test("a running job is cancelled from its row", async () => {
    const job = await server.submit({queue: "slow", kind: "long"});
    await eventually(async () => (await stateOf(job.id)) === "STATE_RUNNING", 10000, "RUNNING");
    const p = await visit(`#/jobs?filter=${encodeURIComponent(`queue = "slow"`)}`);
    const row = p.page.locator(`tr[data-job="${job.id}"]`);
    await eventually(async () => (await row.getAttribute("data-state")) === "RUNNING", 8000, "row RUNNING");
    await row.locator('button[data-action="cancel"]').click();
    await eventually(async () => (await row.getAttribute("data-state")) === "CANCELLED", 10000, "row CANCELLED");
    assert.equal(await stateOf(job.id), "STATE_CANCELLED");
    await p.check();
    await p.close();
  });

  test("pausing a queue shows ExplainJob's gate on a waiting job's page", async () => {
    const job = await server.submit({queue: "held", kind: "k"});
    const p = await visit("#/queues");
    const {page} = p;
    await page.getByRole("button", {name: "Pause queue held"}).click();
    await page.locator('tr[data-queue="held"] .badge.PAUSED').waitFor();
    await page.goto(`${server.url}/#/jobs/${job.id}`);
    await page.locator('#gates li[data-gate="QUEUE_PAUSED"]').waitFor({timeout: 8000});
    assert.match(await page.locator("#gates").innerText(), /QUEUE_PAUSED/);
    await screenshot(page, "job-waiting");
    // A timed pause shows when it ends.
    await page.goto(`${server.url}/#/queues`);
    const row = page.locator('tr[data-queue="held"]');
    await row.getByRole("button", {name: "Resume queue held"}).click();
    await row.locator("summary").click();
    await row.getByLabel("Minutes").fill("5");
    await row.getByRole("button", {name: "Pause for"}).click();
    await eventually(async () => /paused until/.test(await row.locator(".badge").innerText()), 8000, "timed pause");
    const queue = (await server.api("GET", "/v1/queues")).queues.find((q) => q.name === "held");
    const left = new Date(queue.resumeTime).getTime() - Date.now();
    assert.ok(left > 4 * 60000 && left <= 5 * 60000, `resume in ${left} ms`);
    await p.check();
    await p.close();
  });

  test("a bad filter shows the server's error next to the box", async () => {
    const p = await visit("#/jobs", {allow: [HTTP_400]});
    const {page} = p;
    await page.locator("#filter").fill("colour = red");
    await page.locator("#filter").press("Enter");
    const error = page.locator("#filter-error");
    await eventually(async () => /colour/.test(await error.innerText()), 8000, "the filter error");
    assert.match(await error.innerText(), /^Filter: /);
    assert.equal(await page.locator("#filter").getAttribute("aria-invalid"), "true");
    await screenshot(page, "jobs-bad-filter");
    // What is typed to fix it survives the page's next poll.
    await page.locator("#filter").fill("queue = ");
    await sleep(5500);
    assert.equal(await page.locator("#filter").inputValue(), "queue = ");
    await page.locator("#filter").fill('queue = "nothing-here"');
    await page.locator("#filter").press("Enter");
    await eventually(async () => (await error.innerText()) === "", 8000, "the error to clear");
    assert.equal(await page.locator("#filter").getAttribute("aria-invalid"), null);
    await p.check();
    await p.close();
  });

  test("a bulk cancel shows its dry-run count and writes only after confirmation", async () => {
    const ids = [];
    for (let i = 0; i < 7; i++) ids.push((await server.submit({queue: "bulk", kind: "k"})).id);
    const p = await visit(`#/jobs?filter=${encodeURIComponent(`queue = "bulk"`)}`);
    const {page} = p;
    await page.locator(`tr[data-job="${ids[0]}"]`).waitFor();
    await page.locator("details.bulk summary").click();
    await page.getByLabel("Action").selectOption("ACTION_CANCEL");
    await page.getByRole("button", {name: "Preview"}).click();
    await page.locator("#bulk-count").waitFor();
    assert.equal(await page.locator("#bulk-count").innerText(), "7");
    assert.match(await page.locator("#bulk-dry-run").innerText(), /7 jobs match/);
    await screenshot(page, "jobs-bulk-dry-run");
    for (const id of ids) assert.equal(await stateOf(id), "STATE_QUEUED", "the dry run wrote");
    await page.locator("#bulk-confirm").click();
    await page.locator("#bulk-done").waitFor();
    assert.match(await page.locator("#bulk-done").innerText(), /7 cancelled/);
    for (const id of ids) assert.equal(await stateOf(id), "STATE_CANCELLED");
    await eventually(async () => (await page.locator('tr[data-state="CANCELLED"]').count()) === 7, 8000,
      "rows CANCELLED");
    await p.check();
    await p.close();
  });

  test("the phone viewport shows every page without horizontal overflow", async () => {
    const job = await server.submit({queue: "phone", kind: "a-rather-long-kind-name", args: {text: "x".repeat(200)}});
    const p = await visit("#/queues", {viewport: {width: 375, height: 667}});
    const {page} = p;
    const overflow = () => page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    await page.locator('tr[data-queue="phone"]').waitFor();
    assert.equal(await overflow(), 0, "queues overflow");
    await screenshot(page, "phone-queues");
    await page.goto(`${server.url}/#/jobs`);
    await page.locator(`tr[data-job="${job.id}"]`).waitFor();
    assert.equal(await overflow(), 0, "jobs overflow");
    await screenshot(page, "phone-jobs");
    await page.goto(`${server.url}/#/jobs/${job.id}`);
    await page.locator("#log li").first().waitFor();
    assert.equal(await overflow(), 0, "job overflow");
    await screenshot(page, "phone-job");
    await page.goto(`${server.url}/#/server`);
    await page.locator("#server-info dd").first().waitFor();
    assert.equal(await overflow(), 0, "server overflow");
    await screenshot(page, "phone-server");
    await p.check();
    await p.close();
  });

  test("the keyboard reaches a row's actions, with a visible focus", async () => {
    const job = await server.submit({queue: "keys", kind: "k"});
    const p = await visit(`#/jobs?filter=${encodeURIComponent(`queue = "keys"`)}`);
    const {page} = p;
    await page.locator(`tr[data-job="${job.id}"]`).waitFor();
    let reached = false;
    for (let i = 0; i < 40 && !reached; i++) {
      await page.keyboard.press("Tab");
      reached = await page.evaluate((id) => {
        const el = document.activeElement;
        return el?.dataset.action === "cancel" && el.closest("tr")?.dataset.job === id;
      }, job.id);
    }
    assert.ok(reached, "Tab never reached the row's Cancel button");
    const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
    assert.notEqual(outline, "none", "no visible focus");
    await page.keyboard.press("Enter");
    await eventually(async () => (await stateOf(job.id)) === "STATE_CANCELLED", 8000, "cancelled by Enter");
    await p.check();
    await p.close();
  });
});

describe("a large database", () => {
  // 200,000 jobs keep the default run short (about 10 s to fill);
  // jobs_page_bench.js measures 1,000,000 by hand (BENCHMARKS.md).
  const JOBS = 200000;
  let big;
  before(async () => {
    big = await startServer();
  });
  after(async () => {
    await big?.stop();
  });

  test(`the jobs page renders within 1 s with ${JOBS.toLocaleString("en")} jobs`, async () => {
    await fill(big, JOBS);
    const times = [];
    for (let i = 0; i < 3; i++) {
      const {ms, rows} = await renderTime(browser, big);
      assert.equal(rows, 50, "one page of rows");
      times.push(ms);
    }
    times.sort((a, b) => a - b);
    console.log(`# jobs page with ${JOBS} jobs: first render ${times.map((t) => t.toFixed(0)).join(", ")} ms`);
    assert.ok(times[1] < 1000, `median first render ${times[1]} ms`);
  });
});

describe("auth", () => {
  let secured;
  const TOKEN = "s3cret-dashboard-token";
  before(async () => {
    secured = await startServer({authToken: TOKEN});
  });
  after(async () => {
    await secured?.stop();
  });

  test("the page asks for the token once; a wrong one is refused; it is kept nowhere", async () => {
    const p = await openPage(browser, {allow: [HTTP_401]});
    const {page} = p;
    await page.goto(`${secured.url}/#/jobs`);
    const token = page.getByLabel("Token");
    await token.fill("wrong");
    await token.press("Enter");
    await page.getByText("Wrong token.").waitFor();
    await screenshot(page, "login-refused");
    await token.fill(TOKEN);
    await page.getByRole("button", {name: "Log in"}).click();
    await page.getByRole("heading", {name: "Jobs"}).waitFor();
    const job = await secured.submit({queue: "q", kind: "k"});
    await page.locator(`tr[data-job="${job.id}"]`).waitFor({timeout: 8000});
    // The live stream is open (the cookie rides on EventSource).
    await eventually(async () => /live/.test(await page.locator("#live").innerText()), 8000, "live stream");
    // Reload: the cookie holds, no second prompt.
    await page.reload();
    await page.getByRole("heading", {name: "Jobs"}).waitFor();
    assert.equal(await page.getByLabel("Token").count(), 0);

    const leaks = await page.evaluate((t) => ({
      url: location.href.includes(t),
      local: JSON.stringify({...localStorage}).includes(t) || JSON.stringify({...sessionStorage}).includes(t),
      cookie: document.cookie.includes("jobwire_session") || document.cookie.includes(t),
      history: history.length > 0 && location.href.includes(t),
      dom: document.documentElement.outerHTML.includes(t),
    }), TOKEN);
    assert.deepEqual(leaks, {url: false, local: false, cookie: false, history: false, dom: false});
    for (const u of p.requests) assert.ok(!u.includes(TOKEN), `token in a request URL: ${u}`);
    const cookies = await p.context.cookies();
    const session = cookies.find((c) => c.name === "jobwire_session");
    assert.ok(session?.httpOnly, "the session cookie is not HttpOnly");
    assert.ok(!session.value.includes(TOKEN));

    // Logging out asks again.
    await page.getByRole("button", {name: "Log out"}).click();
    await page.getByLabel("Token").waitFor();
    await p.check();
    await p.close();
  });
});
