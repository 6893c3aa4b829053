// The batches page (www/batches.html) in headless Chromium against the Worker on real workerd
// (Miniflare) with the simulator: two real stored batches, one ended and one kept running and
// then waiting for the token's hour, watched, canceled from the keyboard, downloaded, and
// audited with axe-core (WCAG 2 A/AA and best practices: zero violations). No timing asserted.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startWorker, TOKEN } from '../../worker/test/harness.mjs';
import { requests, simSession, submit, waitEnded } from '../../worker/test/batches-client.mjs';
import { clockTime, createBody, describeRate, describeWaiting, RateMeter } from '../batches-format.js';
import { axe } from './axe.mjs';

const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/', import.meta.url));
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const FLAGS = ['--no-sandbox', '--headless', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const SMALL = 6;
const LONG = 200;
// The token's hour holds the small batch and 40 of the long one's requests: the long one runs
// a while (1.5 s a request), then waits for the hour with its other 160 queued, until canceled.
const ITEMS_PER_HOUR = SMALL + 40;
const sim = (latencyMs) => ({ seed: 3, minuteMs: 60_000, requestsPerMinute: 1_000_000, latency: { baseMs: latencyMs, perOutputTokenMs: 0, jitterMs: 0 }, faults: {} });

let worker;
let browser;
let small;
let long;

before(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  // Both started at once; each kept as soon as it is up, so `after` stops it even if the other failed.
  await Promise.all([
    startWorker({ EDGEBATCH_SIM: 'on', EDGEBATCH_ITEMS_PER_HOUR: String(ITEMS_PER_HOUR), EDGEBATCH_SUBREQUESTS_PER_HOUR: '100000000' }).then((w) => (worker = w)),
    chromium.launch({ executablePath: CHROMIUM, args: FLAGS }).then((b) => (browser = b)),
  ]);
  const [fast, slow] = await Promise.all([simSession(worker.url, sim(5)), simSession(worker.url, sim(1500))]);
  small = await submit(worker.url, { provider: { name: 'anthropic', baseUrl: fast.baseUrl }, requests: requests(SMALL, 's') });
  await waitEnded(worker.url, small.id, { timeoutMs: 20_000 });
  long = await submit(worker.url, { provider: { name: 'anthropic', baseUrl: slow.baseUrl }, requests: requests(LONG, 'r') });
});

after(async () => {
  await browser?.close();
  await worker?.dispose();
});

/**
 * A fresh tab on the page that records errors. The browser logs every HTTP error status: the
 * 401 of a wrong token and the 400 of a refused create are the tests' own doing.
 */
async function openPage(path = '/batches.html', viewport = { width: 1280, height: 800 }) {
  const context = await browser.newContext({ viewport, acceptDownloads: true });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    if (/status of (401|400)/.test(m.text()) && new URL(m.location().url).pathname === '/v1/batches') return;
    errors.push(`console: ${m.text()} (${m.location().url})`);
  });
  await page.goto(new URL(path, worker.url).href);
  return { page, errors, close: () => context.close() };
}

/** What a batch's row shows, by column. */
function row(page, id) {
  return page.$eval(`#rows tr[data-id="${id}"]`, (tr) => ({
    ...Object.fromEntries([...tr.querySelectorAll('td[data-col]')].map((td) => [td.dataset.col, td.textContent])),
    cancelShown: !tr.querySelector('button.danger').hidden,
  }));
}

async function download(page, id) {
  const [file] = await Promise.all([page.waitForEvent('download'), page.click(`#rows tr[data-id="${id}"] [data-col=actions] button:not(.danger)`)]);
  const lines = readFileSync(await file.path(), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  return { name: file.suggestedFilename(), lines };
}

const polls = (page) => page.$eval('#table-wrap', (w) => Number(w.dataset.polls));

describe('the batches page on the Worker (workerd) in headless Chromium', { timeout: 120_000 }, () => {
  test('watch two batches, cancel the running one from the keyboard, download results; axe finds nothing', async () => {
    const { page, errors, close } = await openPage();
    try {
      // A wrong token: the 401's message, and nothing kept.
      await page.fill('#token', 'not-the-token');
      await page.press('#token', 'Enter');
      await page.waitForSelector('#status[data-state=error]');
      assert.match(await page.textContent('#status'), /refused the token \(401: missing or wrong bearer token\)/);
      assert.equal(await page.evaluate(() => sessionStorage.getItem('edgebatch.token')), null);
      assert.equal(await page.getAttribute('#status', 'role'), 'alert');

      await page.fill('#token', TOKEN);
      await page.press('#token', 'Enter');
      await page.waitForSelector(`#rows tr[data-id="${long.id}"]`);
      assert.deepEqual(await page.$$eval('#rows tr', (trs) => trs.map((t) => t.dataset.id)), [long.id, small.id], 'newest first');
      assert.match(await page.textContent('#status'), /^2 batches, 1 in progress\.$/);
      assert.equal(await page.evaluate(() => sessionStorage.getItem('edgebatch.token')), TOKEN);
      assert.ok(!page.url().includes(TOKEN), 'the token is not in the address');
      // Every announcement from here on (the live region must not repeat each poll).
      await page.evaluate(() => {
        window.announced = [];
        new MutationObserver(() => window.announced.push(document.getElementById('status').textContent))
          .observe(document.getElementById('status'), { childList: true, characterData: true, subtree: true });
      });

      const ended = await row(page, small.id);
      assert.equal(ended.status, 'ended');
      assert.equal(ended.succeeded, String(SMALL));
      assert.equal(ended.progress, `${SMALL} / ${SMALL}`);
      assert.equal(ended.cancelShown, false, 'no Cancel on an ended batch');

      // The running one: counts that move between polls, a rate, then why it waits.
      const seen = new Set();
      let rated = null;
      for (let i = 0; i < 40 && (seen.size < 3 || rated === null); i++) {
        const r = await row(page, long.id);
        seen.add(r.succeeded);
        if (/^[\d.]+ items\/s$/.test(r.rate) && parseFloat(r.rate) > 0) rated = r.rate;
        await page.waitForTimeout(500);
      }
      assert.ok(seen.size >= 3, `succeeded moved across polls: ${[...seen]}`);
      assert.ok(rated, 'a rate in items/s');
      await page.waitForFunction((id) => document.querySelector(`#rows tr[data-id="${id}"] [data-col=waiting]`).textContent !== '', long.id, { timeout: 20_000 });
      const running = await row(page, long.id);
      assert.equal(running.status, 'in progress');
      assert.match(running.waiting, /^waiting for the token's hourly budget until \d\d:\d\d:\d\d$/);
      assert.equal(running.cancelShown, true);
      assert.match(await page.textContent('#updated'), /again every 1\.5 s/);

      // Hidden: no poll; visible again: polling resumes at once.
      await page.evaluate(() => {
        Object.defineProperty(document, 'visibilityState', { value: 'hidden', configurable: true });
        document.dispatchEvent(new Event('visibilitychange'));
      });
      const hiddenAt = await polls(page);
      await page.waitForTimeout(3_500);
      assert.equal(await polls(page), hiddenAt, 'no poll while hidden');
      assert.match(await page.textContent('#updated'), /Paused while the page is hidden/);
      await page.evaluate(() => {
        delete document.visibilityState;
        document.dispatchEvent(new Event('visibilitychange'));
      });
      await page.waitForFunction((n) => Number(document.getElementById('table-wrap').dataset.polls) > n, hiddenAt, { timeout: 5_000 });

      // Partial results while it runs: what has finished so far, each request once.
      const partial = await download(page, long.id);
      assert.equal(partial.name, `${long.id}-partial-results.jsonl`);
      const ids = partial.lines.map((l) => l.custom_id);
      assert.ok(ids.length >= 1 && ids.length < LONG && new Set(ids).size === ids.length, `${ids.length} partial lines`);
      assert.match(await page.textContent('#status'), /\(partial: it is still running\)\.$/);

      const violationsRunning = await axe(page);
      await page.screenshot({ path: `${ARTIFACTS}batches-running.png`, fullPage: true });

      // Keyboard only: Tab from the token field to the running batch's Cancel, then Enter.
      const dialogs = [];
      page.on('dialog', (d) => {
        dialogs.push(d.message());
        d.accept();
      });
      await page.focus('#token');
      let tabs = 0;
      const onCancel = () => page.evaluate((id) => document.activeElement === document.querySelector(`#rows tr[data-id="${id}"] button.danger`), long.id);
      while (!(await onCancel()) && tabs < 30) {
        await page.keyboard.press('Tab');
        tabs += 1;
      }
      assert.ok(await onCancel(), `Cancel reached with Tab (${tabs} presses)`);
      await page.keyboard.press('Enter');
      await page.waitForFunction((id) => document.querySelector(`#rows tr[data-id="${id}"] [data-col=status]`).textContent === 'ended (canceled)', long.id, { timeout: 20_000 });
      assert.equal(dialogs.length, 1);
      assert.match(dialogs[0], /^Cancel batch_…[0-9a-f]{8}\?/);
      const canceled = await row(page, long.id);
      const counts = ['succeeded', 'errored', 'canceled', 'expired'].map((k) => Number(canceled[k]));
      // What ran before the cancel succeeded (at most the hour's 40); the rest canceled.
      assert.ok(counts[0] >= 1 && counts[0] <= 40 && counts[2] >= LONG - 40 && counts[0] + counts[1] + counts[2] + counts[3] === LONG, JSON.stringify(canceled));
      assert.equal(canceled.waiting, '');
      assert.equal(canceled.cancelShown, false);
      assert.ok(await page.evaluate((id) => document.activeElement === document.querySelector(`#rows tr[data-id="${id}"] [data-col=actions] button:not(.danger)`), long.id),
        'the focus moved from the hidden Cancel to Download');
      const announced = await page.evaluate(() => window.announced);
      // Said once each: what the person did and what changed; never a poll's counts.
      const kinds = [/ is waiting for the token's hourly budget until /, /^Downloaded \d+ results of /, /^Canceling batch_/, / (canceling|ended \(canceled\)): /];
      assert.ok(announced.every((t) => kinds.some((k) => k.test(t))), `announcements: ${JSON.stringify(announced)}`);
      assert.equal(new Set(announced).size, announced.length, `announcements: ${JSON.stringify(announced)}`);
      assert.match(announced.at(-1), /ended \(canceled\): \d+ succeeded, 0 errored, \d+ canceled, 0 expired\./);
      const endedPolls = await polls(page);
      assert.ok(endedPolls > announced.length + 3, `${endedPolls} polls, ${announced.length} announcements`);
      await page.waitForSelector('#updated:text-matches("not polling")');

      // Results: every custom_id exactly once.
      const a = await download(page, small.id);
      assert.equal(a.name, `${small.id}-results.jsonl`);
      assert.deepEqual(a.lines.map((l) => l.custom_id).sort(), requests(SMALL, 's').map((r) => r.custom_id).sort());
      assert.ok(a.lines.every((l) => l.result.type === 'succeeded'));
      const b = await download(page, long.id);
      assert.equal(b.name, `${long.id}-results.jsonl`);
      assert.deepEqual(b.lines.map((l) => l.custom_id).sort(), requests(LONG, 'r').map((r) => r.custom_id).sort());
      assert.equal(b.lines.filter((l) => l.result.type === 'canceled').length, counts[2]);
      assert.match(await page.textContent('#status'), /^Downloaded 200 results of batch_…[0-9a-f]{8}\.$/);

      const violationsEnded = await axe(page);
      assert.equal(await polls(page), endedPolls, 'no poll once nothing is in progress');
      assert.deepEqual(violationsRunning, [], 'axe while a batch runs');
      assert.deepEqual(violationsEnded, [], 'axe after the cancel and the downloads');
      await page.screenshot({ path: `${ARTIFACTS}batches-ended.png`, fullPage: true });
      assert.deepEqual(errors, []);
    } finally {
      await close();
    }
  });

  test('paging (?limit=1) at phone width: Older and Newer walk the list, nothing overflows sideways; reload keeps the token, Forget drops it', async () => {
    const { page, errors, close } = await openPage('/batches.html?limit=1', { width: 390, height: 844 });
    try {
      await page.fill('#token', TOKEN);
      await page.click('#show');
      await page.waitForSelector('#rows tr');
      const ids = () => page.$$eval('#rows tr', (trs) => trs.map((t) => t.dataset.id));
      assert.deepEqual(await ids(), [long.id]);
      assert.equal(await page.isDisabled('#newer'), true);
      await page.click('#older');
      await page.waitForSelector(`#rows tr[data-id="${small.id}"]`);
      assert.deepEqual(await ids(), [small.id]);
      assert.equal(await page.isDisabled('#older'), true, 'no older batch');
      await page.click('#newer');
      await page.waitForSelector(`#rows tr[data-id="${long.id}"]`);
      assert.deepEqual(await ids(), [long.id]);
      assert.equal(new URL(page.url()).search, '?limit=1');
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
      assert.ok(overflow <= 0, `the page is ${overflow}px wider than the screen (the table scrolls in its own region)`);
      await page.screenshot({ path: `${ARTIFACTS}batches-phone.png`, fullPage: true });

      // The tab keeps the token across a reload (session storage); Forget drops it.
      await page.reload();
      await page.waitForSelector(`#rows tr[data-id="${long.id}"]`);
      await page.click('#forget');
      assert.equal(await page.evaluate(() => sessionStorage.getItem('edgebatch.token')), null);
      assert.equal(await page.isHidden('#list'), true);
      assert.equal(await page.inputValue('#token'), '');
      assert.deepEqual(errors, []);
    } finally {
      await close();
    }
  });

  test('create a small batch from pasted JSONL; a bad line is named before anything is sent', async () => {
    const { page, errors, close } = await openPage();
    try {
      await page.fill('#token', TOKEN);
      await page.click('#show');
      await page.waitForSelector('#rows tr');
      await page.click('#create summary');
      await page.fill('#create-body', '{"custom_id": "a", "params": {}}\nnot json');
      await page.click('#create-submit');
      assert.match(await page.textContent('#status'), /^Not sent: line 2 is not JSON: not json$/);
      // The Worker's own refusal, in its words (a custom_id given twice).
      const twice = JSON.stringify(requests(1, 'dup')[0]);
      await page.fill('#create-body', `${twice}\n${twice}`);
      await page.click('#create-submit');
      await page.waitForSelector('#status[data-state=error]:has-text("Creating the batch failed")');
      assert.match(await page.textContent('#status'), /^Creating the batch failed: 400: .*duplicate custom_id.*dup0/);
      await page.click('#sample');
      await page.click('#create-submit');
      const said = await page.waitForFunction(() => {
        const text = document.getElementById('status').textContent;
        return /^(Created|Creating the batch failed)/.test(text) && text;
      });
      assert.match(await said.jsonValue(), /^Created batch_…[0-9a-f]{8} with 5 requests\.$/);
      await page.waitForFunction(() => document.querySelectorAll('#rows tr').length === 3);
      const first = await page.$eval('#rows tr', (t) => t.dataset.id);
      assert.ok(![small.id, long.id].includes(first), 'the new batch heads the list');
      assert.deepEqual(errors, []);
    } finally {
      await close();
    }
  });
});

test('the words and the rate, on their own', () => {
  const now = new Date(2026, 4, 3, 10, 0, 0);
  assert.equal(describeWaiting({ reason: 'token_budget', until: new Date(2026, 4, 3, 10, 42, 5).toISOString() }, now),
    "waiting for the token's hourly budget until 10:42:05");
  assert.equal(describeWaiting({ reason: 'upstream_429', until: new Date(2026, 4, 4, 9, 1, 2).toISOString() }, now),
    'waiting after the upstream answered 429 (rate limited) until 2026-05-04 09:01:02');
  assert.match(describeWaiting({ reason: 'limiter', until: null }, now), /^waiting for the upstream's rate limit/);
  assert.equal(describeWaiting(undefined, now), '');
  assert.equal(clockTime('not a date', now), 'not a date');
  const meter = new RateMeter(10_000);
  assert.equal(meter.rate(), null);
  meter.add(0, { succeeded: 0, errored: 0 });
  meter.add(2_000, { succeeded: 20, errored: 4 });
  assert.equal(describeRate(meter.rate()), '12 items/s');
  meter.add(14_000, { succeeded: 20, errored: 4 }); // the old samples leave the window
  assert.equal(describeRate(meter.rate()), '0 items/s');
  assert.throws(() => createBody('  '), /paste the requests first/);
  assert.deepEqual(createBody('{"requests": [{"custom_id": "x", "params": {}}]}').type, 'application/json');
  assert.equal(createBody('{"provider": {"name": "anthropic"}}\n{"custom_id": "x", "params": {}}').count, 1);
});
