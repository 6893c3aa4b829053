// postProcess in headless Chromium: the package's browser entry (pkg/browser.js, as a plain
// page with an import map) runs the stage on module Web Workers through workerpool. Order,
// the worker really used, a throwing and a dying worker, a retry that does not re-run the
// stage, cancel and deadline during it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { readFile } from 'node:fs/promises';
import { extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const FLAGS = ['--no-sandbox', '--headless', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm' };

test('postProcess on Web Workers in headless Chromium', { timeout: 60_000 }, async () => {
  // Only the package, workerpool and the page's fixtures are served.
  const server = http.createServer(async (req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url, 'http://x').pathname));
    const allowed = /^\/(pkg\/|node_modules\/workerpool\/dist\/|tests\/js\/fixtures\/)/.test(path) && !path.includes('..');
    try {
      if (!allowed) throw new Error('not served');
      const body = await readFile(join(ROOT, path));
      res.writeHead(200, { 'content-type': TYPES[extname(path)] ?? 'application/octet-stream' }).end(body);
    } catch {
      res.writeHead(404).end('not found');
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS });
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`http://127.0.0.1:${server.address().port}/tests/js/fixtures/post-page.html`);
    await page.waitForFunction(() => window.__post !== undefined, null, { timeout: 45_000 });
    const out = await page.evaluate(() => window.__post);
    assert.equal(out.error, undefined, out.error);
    // The dying worker's own uncaught error is reported to the page as well (as browsers do).
    assert.deepEqual(errors.filter((m) => !/worker crash/.test(m)), []);
    assert.deepEqual(out.order.map((r) => r.value), [0, 1, 2, 3, 4, 5].map((i) => ({ text: `DOC ${i}`, index: i, item: i })));
    assert.equal(out.events.filter((t) => t === 'processStart').length, 6);
    assert.equal(out.events.filter((t) => t === 'processEnd').length, 6);
    assert.deepEqual(out.where.map((r) => r.value), ['worker'], 'the export ran in a Web Worker');
    assert.deepEqual(out.faults.map((r) => r.ok), [true, false, false, true], JSON.stringify(out.faults));
    assert.equal(out.faults[1].kind, 'process');
    assert.match(out.faults[1].message, /postProcess extract .* threw: cannot extract from "b"/);
    assert.equal(out.faults[2].kind, 'process');
    assert.equal(out.faults[3].value.text, 'D', 'the item after the dead worker ran on its replacement');
    assert.deepEqual(out.retry.map((r) => [r.ok, r.attempts]), [[true, 2], [true, 2]], JSON.stringify(out.retry));
    assert.deepEqual(out.cancel.map((r) => r.message), ['cancelled during post-processing', 'cancelled before post-processing']);
    assert.deepEqual(out.deadline.map((r) => r.kind), ['deadline', 'deadline']);
  } finally {
    await browser.close();
    await new Promise((resolve) => server.close(resolve));
  }
});
