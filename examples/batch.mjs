// `make run` (until the Worker lands): summarize 200 documents through a deliberately hostile
// loopback upstream — it answers 429 past 6 requests in flight, 529 now and then, and sometimes
// hangs — and show that every document still comes back exactly once.
import http from 'node:http';
// The package's Node entry (what `import ... from "edgebatch"` resolves to): no init call.
import { BatchProcessor } from '../pkg/node.js';

const DOCS = 200;
const CAPACITY = 6; // the upstream's concurrent-request limit
let inFlight = 0;
const seen = { requests: 0, 429: 0, 529: 0, hangs: 0 };

// A tiny stand-in for an AI API, on 127.0.0.1 and a free port.
const upstream = http.createServer((req, res) => {
  let body = '';
  req.on('data', (c) => (body += c));
  req.on('end', () => {
    seen.requests++;
    const reply = (status, payload, headers = {}) => {
      res.writeHead(status, { 'content-type': 'application/json', ...headers });
      res.end(JSON.stringify(payload));
    };
    if (inFlight >= CAPACITY) {
      seen[429]++;
      return reply(429, { type: 'error', error: { type: 'rate_limit_error', message: 'too many requests' } },
        { 'retry-after-ms': '200' });
    }
    const roll = Math.random();
    if (roll < 0.03) {
      seen.hangs++;
      return; // never answers: only a real timeout gets this item back
    }
    if (roll < 0.08) {
      seen[529]++;
      return reply(529, { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } });
    }
    inFlight++;
    const { text } = JSON.parse(body);
    setTimeout(() => {
      inFlight--;
      reply(200, { summary: text.split(' ').slice(0, 4).join(' ') + '…' });
    }, 80 + Math.random() * 120);
  });
});
await new Promise((ok) => upstream.listen(0, '127.0.0.1', ok));
const url = `http://127.0.0.1:${upstream.address().port}/v1/summarize`;

const documents = Array.from({ length: DOCS }, (_, i) =>
  `Document ${i + 1}: quarterly notes on shipping, inventory and the weather in port ${i % 17}.`);

const tty = process.stdout.isTTY;
let lastLine = 0;
const bp = new BatchProcessor({
  concurrency: CAPACITY,
  maxRetries: 6,
  timeoutMs: 1500,
  backoff: { baseMs: 100, maxMs: 2000 },
  onProgress(p) {
    const now = Date.now();
    if (p.done < p.total && now - lastLine < (tty ? 80 : 1000)) return;
    lastLine = now;
    const width = 30;
    const bar = '#'.repeat(Math.round((p.done / p.total) * width)).padEnd(width, '.');
    const line = `[${bar}] ${p.done}/${p.total} ok ${p.ok} failed ${p.failed} in flight ${p.inFlight} ` +
      `retries ${p.retries} ${(p.elapsedMs / 1000).toFixed(1)}s`;
    process.stdout.write(tty ? `\r${line}` : `${line}\n`);
  },
});

console.log(`edgebatch: ${DOCS} documents -> ${url} (capacity ${CAPACITY}, 3% hangs, 5% 529s)`);
const t0 = performance.now();
const results = await bp.run(documents.map((text) => ({ url, method: 'POST', body: { text } })));
const wall = (performance.now() - t0) / 1000;
if (tty) process.stdout.write('\n');

const ok = results.filter((r) => r.ok);
const failed = results.filter((r) => !r.ok);
const attempts = results.reduce((n, r) => n + r.attempts, 0);
console.log(`\n${results.length} results for ${DOCS} documents, in input order: ${results.every((r, i) => r.index === i)}`);
console.table({
  ok: ok.length,
  failed: failed.length,
  'wall time (s)': Number(wall.toFixed(2)),
  'attempts sent': attempts,
  'retries': attempts - DOCS,
  '429s received': seen[429],
  '529s received': seen[529],
  'hung requests cut by timeout': seen.hangs,
});
for (const r of failed.slice(0, 5)) console.log(`  #${r.index}: ${r.error.kind} ${r.error.message}`);
console.log(`first summary: ${ok[0]?.value.body.summary}`);
upstream.closeAllConnections();
upstream.close();
