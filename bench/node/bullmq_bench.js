// bullmq_bench.js - BullMQ's side of the dispatch benchmark (bench/dispatch.py
// runs it): no-op jobs on the same Redis as ours, state kept in Redis only.
//
//   node bullmq_bench.js --port P --jobs N --workers W --concurrency C
//
// 1. enqueue: N jobs added one `await queue.add` at a time (one client), timed;
// 2. drain: W worker processes (child_process.fork of this file), each a
//    BullMQ Worker with C concurrent slots, connect first and start together;
//    the drain rate is N over first processedOn .. last finishedOn of the
//    job records (the same definition bench/dispatch.py uses for every system).
// Prints one JSON object on stdout.
'use strict';
const { fork } = require('child_process');
const { Queue, Worker } = require('bullmq');

function arg(name, dflt) {
  const i = process.argv.indexOf('--' + name);
  return i > 0 ? process.argv[i + 1] : dflt;
}
const port = Number(arg('port', '6379'));
const connection = { host: '127.0.0.1', port, maxRetriesPerRequest: null };
const qname = arg('queue', 'bench' + process.pid);

async function workerMain() {
  const concurrency = Number(arg('concurrency', '1'));
  const w = new Worker(qname, async () => {}, { connection, concurrency, autorun: false });
  await w.waitUntilReady();
  process.on('message', async (m) => {
    if (m === 'go') w.run();
    if (m === 'stop') {
      await w.close();
      process.exit(0);
    }
  });
  process.send('ready');
}

async function main() {
  const n = Number(arg('jobs', '10000'));
  const nworkers = Number(arg('workers', '2'));
  const concurrency = arg('concurrency', '1');
  const q = new Queue(qname, { connection });
  await q.waitUntilReady();
  await q.obliterate({ force: true });

  let t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await q.add('noop', { i });
  const enqueueS = Number(process.hrtime.bigint() - t0) / 1e9;

  const kids = [];
  for (let i = 0; i < nworkers; i++) {
    const k = fork(__filename, ['--worker', '--port', String(port), '--queue', qname,
      '--concurrency', concurrency]);
    kids.push(new Promise((resolve) => k.once('message', () => resolve(k))));
  }
  const ready = await Promise.all(kids);
  t0 = process.hrtime.bigint();
  ready.forEach((k) => k.send('go'));
  for (;;) {
    const c = await q.getJobCounts('completed', 'failed');
    if (c.completed + c.failed >= n) break;
    await new Promise((r) => setTimeout(r, 5));
  }
  const wallS = Number(process.hrtime.bigint() - t0) / 1e9;
  ready.forEach((k) => k.send('stop'));

  let first = Infinity, last = 0, done = 0;
  for (let off = 0; off < n; off += 1000) {
    const jobs = await q.getJobs(['completed'], off, off + 999);
    for (const j of jobs) {
      first = Math.min(first, j.processedOn);
      last = Math.max(last, j.finishedOn);
      done++;
    }
  }
  await q.obliterate({ force: true });
  await q.close();
  const spanS = (last - first) / 1000;
  console.log(JSON.stringify({
    system: 'bullmq', version: require('bullmq/package.json').version, jobs: n, completed: done,
    workers: nworkers, concurrency: Number(concurrency), enqueue_per_s: n / enqueueS,
    drain_wall_s: wallS, drain_span_s: spanS, drain_per_s: n / spanS,
  }));
}

if (process.argv.includes('--worker')) workerMain();
else main().catch((e) => { console.error(e); process.exit(1); });
