// Time to first render of the dashboard's jobs page with many jobs in the
// database, measured in the browser: from navigation start to the mark the
// page sets once its first page of rows is on screen
// (performance.mark("jobwire:jobs-rendered") in jobs.js).
//
//   node jobs_page_bench.js [--jobs 1000000] [--runs 5] [--limit-ms 1000]
//
// Starts a jobwired on a temp database, fills it with POST
// /v1/jobs:batchSubmit (1,000 jobs a request, 4 in flight), then opens
// #/jobs in fresh browser contexts (no cache) `--runs` times. Prints one
// line per run and a summary; exits 1 when the median is over --limit-ms.
// tests/dashboard/dashboard.test.js runs the same measure on fewer jobs
// (its `jobs page` test); the 1,000,000-job run is by hand (BENCHMARKS.md).

import {launchBrowser, numberFlag, openPage, startServer} from "./harness.js";

export async function fill(server, jobs, {batch = 1000, inFlight = 4} = {}) {
  const start = performance.now();
  let next = 0;
  const body = (n) => JSON.stringify({
    jobs: Array.from({length: n}, (_, i) => ({job: {queue: `q${i % 4}`, kind: "bench", args: {i}}})),
  });
  const one = body(batch);
  async function lane() {
    while (next < jobs) {
      const n = Math.min(batch, jobs - next);
      next += n;
      const r = await fetch(`${server.url}/v1/jobs:batchSubmit`, {
        method: "POST", headers: {"Content-Type": "application/json"}, body: n === batch ? one : body(n),
      });
      if (!r.ok) throw new Error(`batchSubmit: ${r.status} ${await r.text()}`);
      await r.arrayBuffer();
    }
  }
  await Promise.all(Array.from({length: inFlight}, lane));
  return (performance.now() - start) / 1000;
}

// Opens #/jobs in a fresh context; returns the ms from navigation start to
// the first rendered page, and the rows shown.
export async function renderTime(browser, server) {
  const p = await openPage(browser);
  await p.page.goto(`${server.url}/#/jobs`);
  await p.page.locator("tbody tr").first().waitFor({timeout: 30000});
  const {ms, list} = await p.page.evaluate(() => ({
    ms: performance.getEntriesByName("jobwire:jobs-rendered")[0]?.startTime,
    // The ListJobs call, as the browser timed it.
    list: performance.getEntriesByType("resource").find((e) => e.name.includes("/v1/jobs?"))?.duration,
  }));
  const rows = await p.page.locator("tbody tr").count();
  await p.check();
  await p.close();
  return {ms, list, rows};
}

async function main() {
  const jobs = numberFlag("jobs", 1000000);
  const runs = numberFlag("runs", 5);
  const limit = numberFlag("limit-ms", 1000);
  const server = await startServer();
  const browser = await launchBrowser();
  try {
    const seconds = await fill(server, jobs);
    console.log(`filled ${jobs.toLocaleString("en")} jobs in ${seconds.toFixed(1)} s ` +
      `(${Math.round(jobs / seconds).toLocaleString("en")} jobs/s)`);
    const info = await server.api("GET", "/v1/server");
    const total = Object.values(info.jobCounts || {}).reduce((a, b) => a + Number(b), 0);
    console.log(`jobs in the database: ${total.toLocaleString("en")}`);
    const times = [];
    for (let i = 0; i < runs; i++) {
      const {ms, list, rows} = await renderTime(browser, server);
      times.push(ms);
      console.log(`run ${i + 1}: jobs page rendered ${rows} rows in ${ms.toFixed(0)} ms ` +
        `(of which GET /v1/jobs ${list.toFixed(0)} ms)`);
    }
    times.sort((a, b) => a - b);
    const median = times[Math.floor(times.length / 2)];
    console.log(`median ${median.toFixed(0)} ms, max ${times.at(-1).toFixed(0)} ms (limit ${limit} ms)`);
    process.exitCode = median <= limit ? 0 : 1;
  } finally {
    await browser.close();
    await server.stop();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
