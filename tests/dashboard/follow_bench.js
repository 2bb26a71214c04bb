// Browser memory of the dashboard's jobs page while it follows a busy
// server: `--rate` jobs/s submitted (POST /v1/jobs:batchSubmit every
// 100 ms) and cancelled again once a second (POST /v1/jobs:bulkUpdate on
// `state = QUEUED`), so the page's stream (no filter on the first page: every
// job's events) carries two events per job. Samples the page's JS heap and
// DOM size (Chrome DevTools Performance.getMetrics) every `--every` seconds.
//
//   node follow_bench.js [--seconds 600] [--rate 500] [--every 30]
//
// Counts the SSE messages the page receives (DevTools Network events).
// Prints one line per sample and whether the heap stayed bounded (the last
// sample under twice the one after the first minute). By hand, not in
// tools/test (BENCHMARKS.md).

import {launchBrowser, numberFlag, openPage, sleep, startServer} from "./harness.js";

const seconds = numberFlag("seconds", 600);
const rate = numberFlag("rate", 500);
const every = numberFlag("every", 30);

const server = await startServer();
const browser = await launchBrowser();
const p = await openPage(browser);
await p.page.goto(`${server.url}/#/jobs`);
await p.page.locator("#filter").waitFor();
const cdp = await p.context.newCDPSession(p.page);
await cdp.send("Performance.enable");
// The SSE messages the page receives (its one /v1/events stream).
let events = 0;
await cdp.send("Network.enable");
cdp.on("Network.eventSourceMessageReceived", () => { events++; });

let submitted = 0;
let running = true;
const batch = Math.max(1, Math.round(rate / 10));
const body = JSON.stringify({jobs: Array.from({length: batch}, () => ({job: {queue: "busy", kind: "k"}}))});
const post = (route, b) => fetch(`${server.url}${route}`, {method: "POST", headers: {"Content-Type": "application/json"}, body: b})
  .then((r) => r.arrayBuffer());
const submitter = (async () => {
  let next = performance.now();
  while (running) {
    await post("/v1/jobs:batchSubmit", body);
    submitted += batch;
    next += 100;
    await sleep(Math.max(0, next - performance.now()));
  }
})();
const canceller = (async () => {
  while (running) {
    await post("/v1/jobs:bulkUpdate", JSON.stringify({filter: "state = QUEUED", action: "ACTION_CANCEL"}));
    await sleep(1000);
  }
})();

async function sample() {
  await cdp.send("HeapProfiler.collectGarbage").catch(() => {});
  const {metrics} = await cdp.send("Performance.getMetrics");
  const m = Object.fromEntries(metrics.map((x) => [x.name, x.value]));
  return {heapMiB: m.JSHeapUsedSize / 1048576, nodes: m.Nodes, listeners: m.JSEventListeners};
}

const start = performance.now();
const samples = [];
while ((performance.now() - start) / 1000 < seconds) {
  await sleep(every * 1000);
  const s = await sample();
  const t = (performance.now() - start) / 1000;
  samples.push({t, ...s});
  const rows = await p.page.locator("tbody tr").count();
  console.log(`t=${t.toFixed(0)}s submitted=${submitted} (${Math.round(submitted / t)}/s) ` +
    `events=${events} (${Math.round(events / t)}/s) ` +
    `heap=${s.heapMiB.toFixed(1)} MiB nodes=${s.nodes} listeners=${s.listeners} rows=${rows}`);
}
running = false;
await Promise.all([submitter, canceller]);
const base = samples.find((s) => s.t >= 60) || samples[0];
const last = samples.at(-1);
console.log(`heap after the first minute ${base.heapMiB.toFixed(1)} MiB, at the end ${last.heapMiB.toFixed(1)} MiB: ` +
  `${last.heapMiB < 2 * base.heapMiB ? "bounded" : "GROWING"}`);
await p.check().catch((e) => console.log(`page problems: ${e.message}`));
await browser.close();
await server.stop();
