// The demo page in headless Chromium (Debian's, driven by playwright-core) against the Worker on
// real workerd (Miniflare), which serves www/ as static assets and the simulator under /sim:
// real fetch, real AbortController, real timers, the wasm build the page loads itself.
// Screenshots of the finished runs go to test-artifacts/. No timing is asserted. An axe-core
// audit (WCAG 2 A/AA and best practices) of every state the page shows must find nothing.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import { extname } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startWorker } from '../../worker/test/harness.mjs';
import { axe } from './axe.mjs';

const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/', import.meta.url));
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const FLAGS = ['--no-sandbox', '--headless', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const RUN_TIMEOUT_MS = 90_000;

let worker;
let browser;

before(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  worker = await startWorker({ EDGEBATCH_SIM: 'on' });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS });
});

after(async () => {
  await browser?.close();
  await worker?.dispose();
});

/**
 * A fresh page on the demo, ready to run, that records console errors and page errors. The
 * browser logs every HTTP error status as "Failed to load resource": for the simulator's
 * 429/5xx that is the demo doing its job, so only those are let through.
 */
async function openDemo({ width = 1280, height = 800, url = new URL('/', worker.url).href, allow = null } = {}) {
  const context = await browser.newContext({ viewport: { width, height }, acceptDownloads: true });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    const fromSim = m.location().url.includes('/sim/s/');
    if (fromSim && /^Failed to load resource: the server responded with a status of (429|5\d\d)/.test(m.text())) return;
    if (allow?.test(m.location().url)) return;
    errors.push(`console: ${m.text()} (${m.location().url})`);
  });
  await page.goto(url);
  await page.waitForSelector('#status[data-state=idle]');
  return { page, errors, close: () => context.close() };
}

/** Runs `fn(page)` on a fresh demo page; afterwards the page must have logged no error. */
async function withDemo(options, fn) {
  const { page, errors, close } = await openDemo(options);
  try {
    await fn(page);
    assert.deepEqual(errors, []);
  } finally {
    await close();
  }
}

async function fill(page, values) {
  for (const [id, value] of Object.entries(values)) await page.fill(`#${id}`, String(value));
}

/** Waits for the run to end; returns the status line's state and text. */
async function finished(page) {
  await page.waitForSelector('#status:is([data-state=done], [data-state=cancelled], [data-state=error])', { timeout: RUN_TIMEOUT_MS });
  return page.$eval('#status', (s) => ({ state: s.dataset.state, text: s.textContent }));
}

/** The results table as data. */
function rows(page) {
  return page.$$eval('#rows tr', (trs) => trs.map((tr) => ({
    index: Number(tr.dataset.index),
    cls: tr.className,
    status: tr.children[1].textContent,
    attempts: Number(tr.children[2].textContent || 0),
    cost: tr.children[4].textContent,
    servedBy: tr.children[5].textContent,
    text: tr.children[6].textContent,
  })));
}

/** What a run's panel shows: progress, counters, timeline bars by outcome. */
function panel(page, run) {
  return page.$eval(`.panel[data-run=${run}]`, (p) => {
    const bars = [...p.querySelectorAll('svg.timeline rect.attempt')];
    const byOutcome = {};
    for (const b of bars) byOutcome[b.dataset.outcome ?? 'inflight'] = (byOutcome[b.dataset.outcome ?? 'inflight'] ?? 0) + 1;
    const counts = Object.fromEntries([...p.querySelectorAll('[data-count]')].map((d) => [d.dataset.count, d.textContent]));
    const progress = p.querySelector('progress');
    return {
      progress: { value: progress.value, max: progress.max },
      fraction: p.querySelector('.fraction').textContent,
      counts,
      bars: bars.length,
      byOutcome,
      bins: p.querySelectorAll('svg.histogram rect.bin').length,
      verdict: p.querySelector('.verdict').textContent,
      spent: p.querySelector('.spent').textContent,
    };
  });
}

const sum = (xs) => xs.reduce((a, b) => a + b, 0);

/** WCAG contrast ratio of two computed colours, "rgb(r, g, b)". */
function contrast(a, b) {
  const luminance = (css) => {
    const [r, g, bl] = css.match(/[\d.]+/g).slice(0, 3).map((v) => Number(v) / 255)
      .map((v) => (v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4));
    return 0.2126 * r + 0.7152 * g + 0.0722 * bl;
  };
  const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
  return (hi + 0.05) / (lo + 0.05);
}

const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.wasm': 'application/wasm' };

/** A plain static file server for www/ on 127.0.0.1 and a free port: no Worker, no /sim. */
async function staticServer() {
  const dir = fileURLToPath(new URL('..', import.meta.url));
  const server = http.createServer(async (req, res) => {
    const path = new URL(req.url, 'http://x').pathname.replace(/\/$/, '/index.html');
    try {
      if (path.includes('..')) throw new Error('no');
      const body = await readFile(dir + path.slice(1));
      res.writeHead(200, { 'content-type': TYPES[extname(path)] ?? 'application/octet-stream' }).end(body);
    } catch {
      res.writeHead(404).end('not found');
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${server.address().port}/`, close: () => new Promise((r) => server.close(r)) };
}

describe('the demo page on the Worker (workerd) in headless Chromium', { timeout: 300_000 }, () => {
  test('a 50-document batch against the faulty simulator: a row, a result and a bar for everything', async () => {
    await withDemo({}, async (page) => {
      assert.equal(await page.textContent('#doc-count'), '50');
      await fill(page, { 'sim-429': 0.05, 'sim-529': 0.05, 'sim-500': 0.03, 'sim-hang': 0.03, 'sim-hang-ms': 4000, timeout: 1500, 'max-retries': 10 });
      // Keyboard operable: focus Run and press Enter.
      await page.focus('#run');
      await page.keyboard.press('Enter');
      const end = await finished(page);
      assert.equal(end.state, 'done', end.text);

      const table = await rows(page);
      assert.equal(table.length, 50);
      assert.deepEqual(table.map((r) => r.index), [...Array(50).keys()]);
      assert.deepEqual(table.filter((r) => r.cls !== 'ok'), [], 'every document ok (10 retries each are plenty here)');
      assert.ok(table.every((r) => r.attempts >= 1 && r.text.startsWith('Summary ')), 'each row has attempts and the reply text');

      const p = await panel(page, 'edgebatch');
      assert.deepEqual(p.progress, { value: 50, max: 50 });
      assert.equal(p.fraction, '50 / 50');
      assert.equal(p.counts.done, '50');
      assert.equal(p.counts.ok, '50');
      assert.equal(p.counts.inFlight, '0');
      assert.equal(p.bars, sum(table.map((r) => r.attempts)), 'a timeline bar per attempt');
      assert.equal(p.byOutcome.ok, 50, 'one green bar per document');
      assert.equal(p.byOutcome.inflight, undefined, 'no bar left in flight');
      assert.equal(Number(p.counts.retries), p.bars - 50, 'retries = bars beyond the first per document');
      assert.ok(Number(p.counts.retries) > 0, `the faults (16% of requests) caused retries: ${JSON.stringify(p.byOutcome)}`);
      assert.ok(p.bins > 0, 'the latency histogram has bars');
      assert.match(p.verdict, /Every document has exactly one result: 50 ok/);
      assert.match(end.text, /edgebatch: 50 of 50 ok/);

      // The JSONL download: one line per document, in input order, as the table says.
      const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
      const lines = readFileSync(await download.path(), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
      assert.equal(download.suggestedFilename(), 'edgebatch-results.jsonl');
      assert.deepEqual(lines.map((r) => [r.index, r.ok, r.attempts]), table.map((r) => [r.index, true, r.attempts]));
      assert.ok(lines.every((r) => typeof r.value.text === 'string' && r.usage.outputTokens > 0));

      // "Failed only" hides the ok rows.
      await page.check('#only-failed');
      assert.equal(await page.$$eval('#rows tr', (trs) => trs.filter((tr) => tr.offsetParent !== null).length), 0);
      await page.uncheck('#only-failed');

      await page.screenshot({ path: `${ARTIFACTS}demo-edgebatch.png`, fullPage: true });
    });
  });

  test('a simulator at capacity: the concurrency chart marks where the limit moved, and why', async () => {
    await withDemo({}, async (page) => {
      await fill(page, {
        concurrency: 12, 'sim-capacity': 2, 'sim-queue': 1, 'sim-shed-ms': 5, 'sim-rpm': 100000,
        'sim-429': 0, 'sim-529': 0, 'sim-500': 0, 'sim-hang': 0, 'max-retries': 20,
      });
      await page.click('#run');
      const end = await finished(page);
      assert.equal(end.state, 'done', end.text);
      assert.match(end.text, /edgebatch: 50 of 50 ok/);
      const marks = await page.$$eval('.panel[data-run=edgebatch] svg.limits circle.limit-move', (cs) => cs.map((c) => c.querySelector('title').textContent));
      assert.ok(marks.some((t) => /limit [2-6], failures rise with our load, fast rejections: the server sheds/.test(t)), JSON.stringify(marks));
      const label = await page.textContent('.panel[data-run=edgebatch] svg.limits text.limit-label');
      assert.match(label, /allowed \(orange\): now \d+/);
    });
  });

  test('Cancel mid-run: every document still has a row; the unfinished ones say cancelled', async () => {
    await withDemo({}, async (page) => {
      await page.click('#sample');
      assert.equal(await page.textContent('#doc-count'), '100');
      await fill(page, { 'sim-latency': 400, 'sim-hang': 0 });
      await page.click('#run');
      await page.waitForFunction(() => Number(document.querySelector('.panel progress')?.value) >= 10, null, { timeout: RUN_TIMEOUT_MS });
      await page.click('#cancel');
      const end = await finished(page);
      assert.equal(end.state, 'cancelled', end.text);

      const table = await rows(page);
      assert.equal(table.length, 100);
      assert.deepEqual(table.filter((r) => r.cls === 'pending'), [], 'no row left pending');
      const cancelled = table.filter((r) => r.status === 'cancelled').length;
      const ok = table.filter((r) => r.cls === 'ok').length;
      assert.ok(ok >= 10, `${ok} finished before Cancel`);
      assert.ok(cancelled >= 1, 'the rest were cancelled');
      assert.equal(ok + table.filter((r) => r.cls.startsWith('failed')).length, 100);

      const p = await panel(page, 'edgebatch');
      assert.deepEqual(p.progress, { value: 100, max: 100 });
      assert.equal(p.counts.inFlight, '0');
      assert.equal(Number(p.counts.cancelled), cancelled);
      assert.equal(Number(p.counts.ok) + Number(p.counts.failed) + Number(p.counts.cancelled), 100);
      assert.equal(p.byOutcome.inflight, undefined, 'attempts cut by Cancel end as cancelled bars');
      assert.equal(p.bars, sum(table.map((r) => r.attempts)));
      assert.match(end.text, /cancelled/);
      await page.screenshot({ path: `${ARTIFACTS}demo-cancelled.png`, fullPage: true });
    });
  });

  test('postProcess on: a second-colour bar after each call, entities in every result', async () => {
    await withDemo({}, async (page) => {
      await fill(page, { 'sim-429': 0, 'sim-529': 0, 'sim-500': 0, 'sim-hang': 0 });
      await page.check('#post-process');
      await page.click('#run');
      const end = await finished(page);
      assert.equal(end.state, 'done', end.text);
      const stages = await page.$$eval('.panel[data-run=edgebatch] svg.timeline rect.stage', (rs) => rs.map((r) => ({
        index: Number(r.dataset.index), cls: r.getAttribute('class'), x: Number(r.getAttribute('x')),
      })));
      assert.equal(stages.length, 50, 'a post-processing bar per document');
      assert.ok(stages.every((s) => s.cls === 'stage'), JSON.stringify(stages.filter((s) => s.cls !== 'stage')));
      const calls = await page.$$eval('.panel[data-run=edgebatch] svg.timeline rect.attempt', (rs) => rs.map((r) => ({
        index: Number(r.dataset.index), end: Number(r.getAttribute('x')) + Number(r.getAttribute('width')),
      })));
      for (const s of stages) {
        const call = calls.find((c) => c.index === s.index);
        assert.ok(call && s.x >= call.end - 10, `document ${s.index}: the stage's bar starts after its call's`);
      }
      const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
      const lines = readFileSync(await download.path(), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
      assert.ok(lines.every((r) => r.ok && Array.isArray(r.value.entities) && typeof r.value.text === 'string'));
    });
  });

  test('Fallback on: the overloaded first model hands items to the second, counted and shown; axe finds nothing', async () => {
    await withDemo({}, async (page) => {
      await fill(page, {
        'sim-rpm': 100000, 'sim-latency': 100, 'sim-429': 0, 'sim-529': 0, 'sim-500': 0, 'sim-hang': 0,
        'sim-overload-ms': 60000, 'fallback-model': 'claude-sonnet-4-5',
      });
      await page.check('#fallback');
      await page.click('#run');
      const end = await finished(page);
      assert.equal(end.state, 'done', end.text);
      const table = await rows(page);
      assert.deepEqual(table.filter((r) => r.cls !== 'ok'), [], 'no document failed');
      const moved = table.filter((r) => r.servedBy === 'claude-sonnet-4-5 (fallback 1)');
      const stayed = table.filter((r) => r.servedBy === 'claude-haiku-4-5');
      assert.equal(moved.length + stayed.length, 50, JSON.stringify(table.map((r) => r.servedBy)));
      // 80% 529s on the first model: most move, at once (one failed attempt at most: an item
      // queued while the first model's breaker is open starts on the second).
      assert.ok(moved.length >= 20 && moved.every((r) => r.attempts <= 2), JSON.stringify(moved));
      const p = await panel(page, 'edgebatch');
      assert.equal(Number(p.counts.fallbacks), moved.length);
      assert.match(end.text, new RegExp(`, ${moved.length} fallbacks,`));
      assert.deepEqual(await axe(page), [], 'axe after a run with Fallback on');
      await page.screenshot({ path: `${ARTIFACTS}demo-fallback.png`, fullPage: true });
    });
  });

  test('naive vs edgebatch: both runs, both timelines, both results', async () => {
    await withDemo({}, async (page) => {
      await page.check('#mode-compare');
      await fill(page, { 'sim-hang-ms': 3000, 'max-retries': 10 });
      await page.click('#run');
      const end = await finished(page);
      assert.equal(end.state, 'done', end.text);
      assert.deepEqual(await page.$$eval('.panel', (ps) => ps.map((p) => p.dataset.run)), ['naive', 'edgebatch']);

      const naive = await panel(page, 'naive');
      const eb = await panel(page, 'edgebatch');
      assert.equal(naive.fraction, '50 / 50');
      assert.equal(eb.fraction, '50 / 50');
      assert.equal(naive.bars, 50, 'the naive code sends each document once');
      assert.equal(naive.counts.retries, '0');
      assert.match(naive.verdict, /Promise\.all (rejected|resolved) after/);
      assert.equal(eb.counts.ok, '50');
      assert.match(end.text, /naive: \d+ of 50 ok/);
      assert.match(end.text, /edgebatch: 50 of 50 ok/);

      // The table shows either run.
      assert.deepEqual(await page.$$eval('#results-of option', (os) => os.map((o) => o.value)), ['naive', 'edgebatch']);
      await page.selectOption('#results-of', 'naive');
      const naiveRows = await rows(page);
      assert.equal(naiveRows.length, 50);
      assert.ok(naiveRows.every((r) => r.cls !== 'pending' && r.attempts === 1));
      assert.equal(naiveRows.filter((r) => r.cls === 'ok').length, Number(naive.counts.ok));
      await page.selectOption('#results-of', 'edgebatch');
      assert.ok((await rows(page)).every((r) => r.cls === 'ok'));

      await page.screenshot({ path: `${ARTIFACTS}demo-compare.png`, fullPage: true });
    });
  });

  test('Shared system prompt on, naive vs edgebatch: naive writes the cache entry many times, edgebatch once and reads it; edgebatch costs less; axe finds nothing', async () => {
    await withDemo({}, async (page) => {
      await page.check('#mode-compare');
      await page.check('#shared-system');
      await fill(page, { 'max-tokens': 20, 'sim-rpm': 100000, 'sim-latency': 50, 'sim-429': 0, 'sim-529': 0, 'sim-500': 0, 'sim-hang': 0 });
      await page.click('#run');
      const end = await finished(page);
      assert.equal(end.state, 'done', end.text);
      const naive = await panel(page, 'naive');
      const eb = await panel(page, 'edgebatch');
      assert.equal(naive.counts.ok, '50', naive.verdict);
      assert.equal(eb.counts.ok, '50');
      const usd = (p) => Number(/^\$(\d+\.\d{4})$/.exec(p.counts.usd)?.[1]);
      const [naiveWrites, ebWrites] = [naive, eb].map((p) => Number(p.counts.cacheWrites));
      const [naiveReads, ebReads] = [naive, eb].map((p) => Number(p.counts.cacheReads));
      const figures = `naive: cache writes ${naiveWrites}, reads ${naiveReads}, ${naive.counts.usd}; edgebatch: cache writes ${ebWrites}, reads ${ebReads}, ${eb.counts.usd}`;
      assert.equal(ebWrites, 1, figures);
      assert.equal(ebReads, 49, figures);
      assert.ok(naiveWrites > 1, figures);
      assert.equal(naiveWrites + naiveReads, 50, figures);
      assert.ok(usd(eb) > 0 && usd(eb) < usd(naive), figures);
      assert.match(eb.spent, /^Its 50 replies cost \$\d+\.\d{4} \(\$\d+\.\d{6} a reply\)\. The prompt cache was written once and read 49 times\.$/);
      assert.match(naive.spent, new RegExp(`The prompt cache was written ${naiveWrites} times and read ${naiveReads} times\\.$`));
      assert.match(end.text, /edgebatch: 50 of 50 ok, .*\$\d+\.\d{4} \(cache: 1 write, 49 reads\)/);

      // Each row's dollars, and they add up to the panel's (summarize's) figure.
      for (const run of ['naive', 'edgebatch']) {
        await page.selectOption('#results-of', run);
        const table = await rows(page);
        assert.ok(table.every((r) => /^\$\d+\.\d{6}$/.test(r.cost)), JSON.stringify(table.map((r) => r.cost)));
        const total = sum(table.map((r) => Number(r.cost.slice(1))));
        assert.ok(Math.abs(total - usd(run === 'naive' ? naive : eb)) < 0.0001, `${run}: rows add up to ${total}`);
      }
      console.log(`prompt caching, 50 documents: ${figures}`);
      assert.deepEqual(await axe(page), [], 'axe after a compare run with the shared system prompt');
      await page.screenshot({ path: `${ARTIFACTS}demo-cache.png`, fullPage: true });
    });
  });

  test('bad options and a missing key are named, and nothing is sent', async () => {
    await withDemo({}, async (page) => {
      await fill(page, { concurrency: 0 });
      await page.click('#run');
      let end = await finished(page);
      assert.equal(end.state, 'error');
      assert.match(end.text, /concurrency/);
      assert.equal(await page.$$eval('.panel', (ps) => ps.length), 0);

      await fill(page, { concurrency: 6 });
      await page.check('#api-anthropic');
      assert.equal(await page.isDisabled('#mode-compare'), true, 'compare is for the simulator only');
      assert.equal(await page.getAttribute('#api-key', 'type'), 'password');
      await page.click('#run');
      end = await finished(page);
      assert.equal(end.state, 'error');
      assert.match(end.text, /API key/);
    });
  });

  test('keyboard only, in every state the page shows (idle, running, done, cancelled, an error): axe finds nothing, the live region stays quiet', async () => {
    await withDemo({}, async (page) => {
      const audits = { idle: await axe(page) };
      // 30 short documents, a quarter of the calls fail for good (500, no retry): failed rows.
      await page.fill('#docs', Array.from({ length: 30 }, (_, i) => `Keyboard document ${i + 1}.`).join('\n'));
      await fill(page, {
        concurrency: 3, 'max-retries': 0, 'max-tokens': 16, 'sim-rpm': 100000, 'sim-latency': 150,
        'sim-429': 0, 'sim-529': 0, 'sim-500': 0.25, 'sim-hang': 0,
      });
      // Everything a screen reader would announce from here on: changes inside any live region.
      await page.evaluate(() => {
        window.announced = [];
        const live = '[aria-live]:not([aria-live=off]), [role=status], [role=alert], [role=log], [role=timer], [role=marquee], output';
        new MutationObserver((records) => {
          for (const r of records) {
            const region = (r.target.nodeType === Node.ELEMENT_NODE ? r.target : r.target.parentElement)?.closest(live);
            if (region) window.announced.push(`${region.id || region.className}: ${region.textContent}`);
          }
        }).observe(document.body, { subtree: true, childList: true, characterData: true });
      });

      // Tab from the top of the page to Run: it shows where the focus is, and Enter runs.
      const focused = (selector) => page.evaluate((s) => document.activeElement === document.querySelector(s), selector);
      await page.evaluate(() => document.activeElement?.blur());
      let tabs = 0;
      while (!(await focused('#run')) && tabs < 60) {
        await page.keyboard.press('Tab');
        tabs += 1;
      }
      assert.ok(await focused('#run'), `Run reached with Tab (${tabs} presses)`);
      const ring = await page.$eval('#run', (b) => {
        const s = getComputedStyle(b);
        return { visible: b.matches(':focus-visible'), style: s.outlineStyle, width: parseFloat(s.outlineWidth), color: s.outlineColor };
      });
      assert.ok(ring.visible && ring.style === 'solid' && ring.width >= 2, `a focus ring on Run: ${JSON.stringify(ring)}`);
      // The ring is drawn on the card (white) and the page's background: 3:1 against both.
      for (const bg of ['rgb(255, 255, 255)', 'rgb(246, 247, 249)']) {
        assert.ok(contrast(ring.color, bg) >= 3, `focus ring ${ring.color} on ${bg}: ${contrast(ring.color, bg).toFixed(2)}:1`);
      }
      await page.keyboard.press('Enter');
      await page.waitForFunction(() => ['ok', 'failed', 'pending'].every((c) => document.querySelector(`#rows tr.${c}`)), null, { timeout: RUN_TIMEOUT_MS });
      audits.running = await axe(page);
      let end = await finished(page);
      assert.equal(end.state, 'done', end.text);
      const table = await rows(page);
      assert.ok(table.some((r) => r.cls === 'failed') && table.some((r) => r.cls === 'ok'), `failed and ok rows: ${JSON.stringify(table.map((r) => r.status))}`);
      audits.done = await axe(page);
      await page.emulateMedia({ colorScheme: 'dark' });
      audits.doneDark = await axe(page);
      await page.emulateMedia({ colorScheme: 'light' });
      const announced = await page.evaluate(() => window.announced);
      assert.ok(announced.every((a) => a.startsWith('status: ')), `only the status line speaks: ${JSON.stringify(announced)}`);
      assert.ok(announced.length <= 3 && new Set(announced).size === announced.length, `a few announcements, none repeated: ${JSON.stringify(announced)}`);
      assert.match(announced.at(-1), /^status: Done\. edgebatch: \d+ of 30 ok/);

      // On with Tab to the results: the table's region takes the focus, has a name, and the
      // keyboard scrolls it.
      const wrap = '#results .table-wrap';
      tabs = 0;
      while (!(await focused(wrap)) && tabs < 60) {
        await page.keyboard.press('Tab');
        tabs += 1;
      }
      assert.ok(await focused(wrap), `the results region reached with Tab (${tabs} presses)`);
      const region = await page.$eval(wrap, (w) => ({ role: w.getAttribute('role'), name: w.getAttribute('aria-label'), ring: w.matches(':focus-visible') && getComputedStyle(w).outlineStyle, overflow: w.scrollHeight - w.clientHeight }));
      assert.equal(region.role, 'region');
      assert.match(region.name, /^Results table/);
      assert.equal(region.ring, 'solid');
      assert.ok(region.overflow > 0, `the table is taller than its region (${region.overflow}px more)`);
      await page.keyboard.press('PageDown');
      await page.waitForFunction((s) => document.querySelector(s).scrollTop > 0, wrap, { timeout: 5_000 });
      await page.keyboard.press('Home');
      await page.waitForFunction((s) => document.querySelector(s).scrollTop === 0, wrap, { timeout: 5_000 });

      // Cancelled rows, then an error message.
      await fill(page, { 'sim-latency': 400 });
      await page.click('#run');
      await page.waitForFunction(() => document.querySelectorAll('#rows tr:not(.pending)').length >= 3, null, { timeout: RUN_TIMEOUT_MS });
      await page.click('#cancel');
      end = await finished(page);
      assert.equal(end.state, 'cancelled', end.text);
      assert.ok((await rows(page)).some((r) => r.status === 'cancelled'));
      audits.cancelled = await axe(page);
      await fill(page, { concurrency: 0 });
      await page.click('#run');
      end = await finished(page);
      assert.equal(end.state, 'error', end.text);
      assert.equal(await page.getAttribute('#status', 'role'), 'alert');
      audits.error = await axe(page);

      assert.deepEqual(audits, { idle: [], running: [], done: [], doneDark: [], cancelled: [], error: [] });
    });
  });

  test('Anthropic mode sends the key only to api.anthropic.com, with the direct-browser header', async () => {
    // No network here: the browser's request to the real endpoint is answered by the test,
    // which checks what the page would have sent.
    const KEY = 'sk-ant-FAKE-page-key-0a1b2c3d';
    const seen = [];
    await withDemo({}, async (page) => {
      await page.route('https://api.anthropic.com/**', async (route) => {
        const req = route.request();
        const cors = { 'access-control-allow-origin': '*', 'access-control-allow-headers': '*', 'access-control-expose-headers': '*' };
        if (req.method() === 'OPTIONS') return route.fulfill({ status: 204, headers: cors });
        seen.push({ url: req.url(), headers: req.headers(), body: req.postDataJSON() });
        return route.fulfill({
          status: 200,
          headers: { ...cors, 'content-type': 'application/json' },
          body: JSON.stringify({ id: 'msg_1', type: 'message', role: 'assistant', model: 'claude-haiku-4-5', content: [{ type: 'text', text: 'A summary.' }], stop_reason: 'end_turn', usage: { input_tokens: 20, output_tokens: 4 } }),
        });
    });
    await page.fill('#docs', 'first\nsecond\nthird');
    await page.check('#api-anthropic');
    await page.fill('#api-key', KEY);
    await page.click('#run');
    const end = await finished(page);
    assert.equal(end.state, 'done', end.text);
    assert.equal(seen.length, 3);
    for (const r of seen) {
      assert.equal(r.url, 'https://api.anthropic.com/v1/messages');
      assert.equal(r.headers['x-api-key'], KEY);
      assert.equal(r.headers['anthropic-dangerous-direct-browser-access'], 'true');
      assert.equal(r.body.model, 'claude-haiku-4-5');
    }
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
    const text = readFileSync(await download.path(), 'utf8');
    assert.equal(text.trim().split('\n').length, 3);
    assert.ok(!text.includes(KEY), 'the key is not in the results');
    assert.ok(!(await page.textContent('body')).includes(KEY), 'the key is not shown on the page');
    });
  });

  test('phone width: nothing overflows sideways, a run works, axe finds nothing', async () => {
    await withDemo({ width: 390, height: 844 }, async (page) => {
      await page.fill('#docs', Array.from({ length: 12 }, (_, i) => `Phone document ${i + 1}.`).join('\n'));
      await page.click('#run');
      const end = await finished(page);
      assert.equal(end.state, 'done', end.text);
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
      assert.ok(overflow <= 0, `the page is ${overflow}px wider than the screen`);
      assert.deepEqual(await axe(page), [], 'axe at phone width');
      await page.screenshot({ path: `${ARTIFACTS}demo-phone.png`, fullPage: true });
    });
  });

  test('from any static server: the page asks for the simulator address and runs against it (CORS)', async () => {
    const site = await staticServer();
    try {
      // The static server has neither /healthz (the page's probe) nor /sim/sessions (the wrong
      // address this test enters first): their 404s are expected.
      await withDemo({ url: site.url, allow: new RegExp(`^${site.url}(healthz|sim/sessions)$`) }, async (page) => {
        assert.equal(await page.inputValue('#sim-url'), 'http://127.0.0.1:8787');
        await page.fill('#sim-url', site.url);
        await page.fill('#docs', 'one\ntwo');
        await page.click('#run');
        let end = await finished(page);
        assert.equal(end.state, 'error');
        assert.match(end.text, /no edgebatch simulator at .*Simulator server/);

        await page.fill('#sim-url', worker.url.origin);
        await page.fill('#docs', Array.from({ length: 8 }, (_, i) => `Static document ${i + 1}.`).join('\n'));
        await page.click('#run');
        end = await finished(page);
        assert.equal(end.state, 'done', end.text);
        const table = await rows(page);
        assert.equal(table.length, 8);
        assert.ok(table.every((r) => r.cls === 'ok'), JSON.stringify(table));
      });
    } finally {
      await site.close();
    }
  });
});
