// bullmq_burn.js: BullMQ's burn-down, for a side-by-side run with
// `e2e_bench --burn_down` on the same machine in the same hour (not part of
// the test run; nothing here is installed by tools/bootstrap).
//
// Adds N no-op jobs with addBulk (1,000 per call, removeOnComplete), then
// times one Worker (concurrency 100) emptying the queue.
//
//   apt-get install -y redis-server && npm install bullmq@5   (in a scratch dir)
//   redis-server --port 6390 --dir DIR --appendonly yes --appendfsync always --save '' --daemonize yes
//   NODE_PATH=SCRATCH/node_modules node tools/bench/peers/bullmq_burn.js [N=200000] [PORT=6390]
const { Queue, Worker } = require('bullmq');
const N = Number(process.argv[2] || 200000);
const port = Number(process.argv[3] || 6390);
const connection = { host: '127.0.0.1', port };
(async () => {
  const q = new Queue('bench', { connection });
  await q.obliterate({ force: true }).catch(() => {});
  let t = Date.now();
  for (let i = 0; i < N; i += 1000) {
    const batch = [];
    for (let j = i; j < Math.min(N, i + 1000); j++) batch.push({ name: 'noop', data: { i: j }, opts: { removeOnComplete: true } });
    await q.addBulk(batch);
  }
  const addS = (Date.now() - t) / 1000;
  let done = 0;
  t = Date.now();
  await new Promise((resolve) => {
    const w = new Worker('bench', async () => {}, { connection, concurrency: 100 });
    w.on('completed', () => { if (++done === N) { resolve(); w.close(); } });
  });
  const s = (Date.now() - t) / 1000;
  console.log(`bullmq ${N} jobs: addBulk ${(N / addS).toFixed(0)} jobs/s, burn-down ${(N / s).toFixed(0)} jobs/s`);
  await q.close();
  process.exit(0);
})();
