// The batches page (www/batches.html) in headless Chromium against the Worker on real workerd
// (Miniflare) with the simulator: two real stored batches, one ended and one kept running and
// then waiting for the token's hour, watched, canceled from the keyboard, downloaded, and
// audited with axe-core (WCAG 2 A/AA and best practices: zero violations); and, on a second
// Worker, two batches created through the page on the built-in simulator: a 24h window served
// by the provider's Batch API at half the realtime dollars, and a capped one stopped at its
// cap, each shown as the batch view says. No timing asserted.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startWorker, TOKEN } from '../../worker/test/harness.mjs';
import { api, requests, simSession, submit, waitEnded } from '../../worker/test/batches-client.mjs';
import { capStopped, clockTime, shortId, createBody, describeCost, describeProviderBatch, describeRate, describeRoute, describeStatus, describeWaiting, fieldOf,
  FieldError, formOptions, RateMeter, usd } from '../batches-format.js';
import { axe } from './axe.mjs';

const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/', import.meta.url));
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const FLAGS = ['--no-sandbox', '--headless', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const SMALL = 6;
const LONG = 200;
// The token's hour holds the small batch and 40 of the long one's requests: the long one runs
// a while (1.5 s a request), then waits for the hour with its other 160 queued, until canceled.
const ITEMS_PER_HOUR = SMALL + 40;
// The cost test's Worker (its own: a 200 ms alarm would change the first test's pace): the
// built-in simulator without faults, its Message Batches ending 1.5-2 s after the create (so
// the page sees one wait on them); the ledger's alarm and the provider poll every 200 ms.
const FAST_PROVIDER = {
  EDGEBATCH_SIM: 'on',
  EDGEBATCH_BATCH_ALARM_MS: '200',
  EDGEBATCH_PROVIDER_POLL_MS: '200',
  EDGEBATCH_SIM_CONFIG: JSON.stringify({ faults: {}, batches: { delayMs: 1500, spreadMs: 500 } }),
};
const sim = (latencyMs) => ({ seed: 3, minuteMs: 60_000, requestsPerMinute: 1_000_000, latency: { baseMs: latencyMs, perOutputTokenMs: 0, jitterMs: 0 }, faults: {} });

let worker;
let costWorker;
let browser;
let small;
let long;

before(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  // Both started at once; each kept as soon as it is up, so `after` stops it even if the other failed.
  await Promise.all([
    startWorker({ EDGEBATCH_SIM: 'on', EDGEBATCH_ITEMS_PER_HOUR: String(ITEMS_PER_HOUR), EDGEBATCH_SUBREQUESTS_PER_HOUR: '100000000' }).then((w) => (worker = w)),
    startWorker(FAST_PROVIDER).then((w) => (costWorker = w)),
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
  await costWorker?.dispose();
});

/**
 * A fresh tab on the page that records errors. The browser logs every HTTP error status: the
 * 401 of a wrong token and the 400 of a refused create are the tests' own doing.
 */
async function openPage(path = '/batches.html', viewport = { width: 1280, height: 800 }, base = worker.url) {
  const context = await browser.newContext({ viewport, acceptDownloads: true });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    if (/status of (401|400)/.test(m.text()) && new URL(m.location().url).pathname === '/v1/batches') return;
    errors.push(`console: ${m.text()} (${m.location().url})`);
  });
  await page.goto(new URL(path, base).href);
  return { page, errors, close: () => context.close() };
}

/** What a batch's row shows, by column; the cost and route cells also line by line. */
function row(page, id) {
  return page.$eval(`#rows tr[data-id="${id}"]`, (tr) => ({
    ...Object.fromEntries([...tr.querySelectorAll('td[data-col]')].map((td) => [td.dataset.col, td.textContent])),
    cancelShown: !tr.querySelector('button.danger').hidden,
    spent: tr.querySelector('[data-col=cost] .spent').textContent,
    cap: tr.querySelector('[data-col=cost] .cap').textContent,
    how: tr.querySelector('[data-col=route] .how').textContent,
    providerBatches: [...tr.querySelectorAll('[data-col=route] li')].map((li) => li.textContent),
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
      // A wait that ends on another day (past midnight) shows its date too (clockTime).
      const shown = /^waiting for the token's hourly budget until (?:(\d{4}-\d\d-\d\d) )?\d\d:\d\d:\d\d$/.exec(running.waiting);
      assert.ok(shown, running.waiting);
      assert.notEqual(shown[1], new Date().toLocaleDateString('sv-SE'), 'no date for a time of today');
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

describe('the batches page: cost and route, for batches made through its form', { timeout: 60_000 }, () => {
  test('a 24h window is served by the provider batch at half the realtime dollars; a small cap shows the cap and what it stopped; axe finds nothing', async () => {
    const { page, errors, close } = await openPage(undefined, undefined, costWorker.url);
    const view = async (id) => (await api(costWorker.url, 'GET', `/v1/batches/${id}`)).json;
    const resultLines = async (id) => (await api(costWorker.url, 'GET', `/v1/batches/${id}/results`)).text
      .split('\n').filter(Boolean).map((l) => JSON.parse(l));
    let made = 0;
    /** Creates the sample batch with the form's fields; returns its id (the new first row). */
    async function create(window, cap) {
      await page.click('#sample');
      await page.selectOption('#completion-window', window);
      await page.fill('#max-cost', cap);
      await page.click('#create-submit');
      const said = await page.waitForFunction(() => {
        const text = document.getElementById('status').textContent;
        return /^(Created|Creating the batch failed)/.test(text) && text;
      });
      const text = await said.jsonValue();
      // The list is shown again with the new batch at its head.
      const id = await (await page.waitForFunction((n) => document.querySelectorAll('#rows tr').length === n && document.querySelector('#rows tr').dataset.id,
        ++made)).jsonValue();
      return { id, text };
    }
    const ended = (id) => page.waitForFunction((i) => /^ended/.test(document.querySelector(`#rows tr[data-id="${i}"] [data-col=status]`)?.textContent ?? ''),
      id, { timeout: 20_000 });
    try {
      await page.fill('#token', TOKEN);
      await page.click('#show');
      await page.waitForSelector('#status:has-text("This token has no batches yet.")');
      await page.click('#create summary');

      // A cap that is not dollars: named before anything is sent, the field marked and focused.
      await page.click('#sample');
      await page.fill('#max-cost', 'ten cents');
      await page.click('#create-submit');
      assert.equal(await page.textContent('#status'),
        'Not sent: Spending cap (USD) must be a number of dollars above 0 and at most 1000000000, like 0.50; got "ten cents"');
      assert.equal(await page.getAttribute('#max-cost', 'aria-invalid'), 'true');
      assert.ok(await page.evaluate(() => document.activeElement.id === 'max-cost'));
      assert.equal(await page.$$eval('#rows tr', (trs) => trs.length), 0, 'nothing created');

      await page.evaluate(() => {
        window.announced = [];
        new MutationObserver(() => window.announced.push(document.getElementById('status').textContent))
          .observe(document.getElementById('status'), { childList: true, characterData: true, subtree: true });
      });
      // 24 hours: to the provider's Batch API (the simulator's), waited on, then its lines read.
      const windowed = await create('24h', '');
      assert.match(windowed.text, /^Created batch_…[0-9a-f]{8} with 5 requests, a 24h window\.$/);
      assert.equal(await page.getAttribute('#max-cost', 'aria-invalid'), null);
      const first = await row(page, windowed.id);
      assert.equal(first.how, "24h window: the provider's Batch API");
      // Until the window's cutoff: 80% of 24 h after the create, when the rest would run realtime.
      const cutoff = Date.parse((await view(windowed.id)).created_at) + 0.8 * 24 * 3600_000;
      assert.equal(first.waiting, describeWaiting({ reason: 'provider_batch', until: new Date(cutoff).toISOString() }));
      assert.match(first.waiting, /^waiting for the provider's Batch API; what it has not finished by (\d{4}-\d\d-\d\d )?\d\d:\d\d:\d\d runs realtime$/);

      // Realtime with a cap of a tenth of a cent, made while the other waits on the provider:
      // three of the sample's requests fit it (about $0.00033 each on claude-haiku-4-5), the
      // rest end canceled by the cap.
      const capped = await create('', '$0.001');
      assert.match(capped.text, /^Created batch_…[0-9a-f]{8} with 5 requests, a cap of \$0\.001\.$/);
      await Promise.all([ended(windowed.id), ended(capped.id)]);

      const w = await row(page, windowed.id);
      const wv = await view(windowed.id);
      assert.equal(wv.request_counts.succeeded, 5);
      assert.equal(w.status, 'ended');
      assert.equal(w.waiting, '');
      assert.equal(w.how, "24h window: the provider's Batch API");
      assert.deepEqual(w.providerBatches, wv.edgebatch.providerBatches.map(describeProviderBatch));
      assert.match(w.providerBatches[0], /^msgbat…[0-9a-f]{8}: 5 requests, results read \(5 succeeded\)$/);
      const lines = await resultLines(windowed.id);
      assert.ok(lines.length === 5 && lines.every((l) => l.edgebatch.route === 'provider_batch'), JSON.stringify(lines.map((l) => l.edgebatch.route)));
      // The dollars on the page are the view's, and half what realtime would have cost.
      const m = /^\$([\d.]+) \(realtime: \$([\d.]+)\)$/.exec(w.spent);
      assert.ok(m, `spent: ${w.spent}`);
      assert.equal(`$${m[1]}`, usd(wv.edgebatch.cost.usd));
      assert.equal(`$${m[2]}`, usd(wv.edgebatch.cost.usdIfRealtime));
      const [spent, realtime] = [Number(m[1]), Number(m[2])];
      assert.ok(spent > 0 && Math.abs(spent / realtime - 0.5) < 0.005, `${spent} of ${realtime}`);
      // Exactly half, to the pico-dollar of each line's rounding.
      const pico = (x) => Math.round(x * 1e12);
      assert.ok(Math.abs(2 * pico(wv.edgebatch.cost.usd) - pico(wv.edgebatch.cost.usdIfRealtime)) <= 5, JSON.stringify(wv.edgebatch.cost));
      assert.equal(w.cap, '');
      // Its end is announced with what it cost.
      const announced = await page.evaluate(() => window.announced);
      assert.ok(announced.some((t) => t.includes(`${shortId(windowed.id)} ended: 5 succeeded, 0 errored, 0 canceled, 0 expired. Cost ${w.spent}.`)),
        JSON.stringify(announced));

      const c = await row(page, capped.id);
      const cv = await view(capped.id);
      const canceled = cv.request_counts.canceled;
      assert.ok(canceled >= 1 && cv.request_counts.succeeded >= 1, JSON.stringify(cv.request_counts));
      assert.equal(c.status, 'ended (spending cap reached)');
      assert.equal(c.canceled, String(canceled));
      assert.equal(c.cap, `cap $0.001 reached: ${canceled} request${canceled === 1 ? '' : 's'} not run`);
      assert.equal(c.spent, usd(cv.edgebatch.cost.usd), 'realtime: one figure');
      assert.ok(cv.edgebatch.cost.usd > 0 && cv.edgebatch.cost.usd <= 0.001);
      assert.equal(c.how, 'realtime');
      assert.deepEqual(c.providerBatches, []);
      const capLines = await resultLines(capped.id);
      assert.equal(capLines.filter((l) => l.result.type === 'canceled' && l.result.error?.kind === 'cost_cap').length, canceled);

      assert.deepEqual(await axe(page), [], 'axe with the cost and route of both batches');
      await page.screenshot({ path: `${ARTIFACTS}batches-cost.png`, fullPage: true });
      console.log(`24h window: ${w.spent}, ${w.providerBatches[0]}; cap: ${c.spent}, ${c.cap}`);
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

test('dollars, cost, route and the form\'s options, on their own', () => {
  const now = new Date(2026, 4, 3, 10, 0, 0);
  assert.deepEqual([0, 0.42, 0.5, 0.000825, 0.00099, 0.015, 0.9999, 12.5, 1204].map(usd),
    ['$0', '$0.42', '$0.50', '$0.000825', '$0.00099', '$0.015', '$1.00', '$12.50', '$1,204.00']);
  assert.equal(usd(undefined), '—');
  assert.equal(describeWaiting({ reason: 'provider_batch', until: new Date(2026, 4, 3, 14, 48, 15).toISOString() }, now),
    "waiting for the provider's Batch API; what it has not finished by 14:48:15 runs realtime");
  assert.equal(describeWaiting({ reason: 'cost_hold', until: new Date(2026, 4, 3, 10, 0, 2).toISOString() }, now),
    'waiting near its spending cap: the requests running now hold what is left of it until 10:00:02');

  const batch = (cost, extra = {}) => ({ processing_status: 'ended', cancel_initiated_at: null,
    request_counts: { processing: 0, succeeded: 3, errored: 0, canceled: 2, expired: 0 }, edgebatch: { cost }, ...extra });
  assert.deepEqual(describeCost(batch({ usd: 0.42, usdIfRealtime: 0.84 })), { spent: '$0.42 (realtime: $0.84)', cap: '', unknown: '' });
  assert.equal(describeCost(batch({ usd: 0.00099, usdIfRealtime: 0.00099 })).spent, '$0.00099', 'realtime: one figure');
  // The cap: what stopped the batch (canceled without a cancel), else what is held of it.
  const stopped = batch({ usd: 0.00099, usdIfRealtime: 0.00099, maxCostUsd: 0.001 });
  assert.equal(capStopped(stopped), 2);
  assert.equal(describeCost(stopped).cap, 'cap $0.001 reached: 2 requests not run');
  assert.equal(describeStatus(stopped), 'ended (spending cap reached)');
  const userCanceled = batch({ usd: 0.2, usdIfRealtime: 0.4, maxCostUsd: 5 }, { cancel_initiated_at: '2026-05-03T10:00:00Z' });
  assert.equal(capStopped(userCanceled), 0);
  assert.equal(describeCost(userCanceled).cap, 'cap $5.00');
  assert.equal(describeStatus(userCanceled), 'ended (canceled)');
  const held = batch({ usd: 0.1, usdIfRealtime: 0.2, maxCostUsd: 1, heldUsd: 0.25, unknownUsd: 0.05 },
    { processing_status: 'in_progress', request_counts: { processing: 4, succeeded: 3, errored: 0, canceled: 0, expired: 0 } });
  assert.deepEqual(describeCost(held), { spent: '$0.10 (realtime: $0.20)', cap: 'cap $1.00, $0.25 of it held for requests at the provider',
    unknown: 'up to $0.05 more may be billed (a provider batch whose create went unanswered)' });
  assert.equal(describeCost({ request_counts: { canceled: 0 }, edgebatch: {} }), null);

  assert.deepEqual(describeRoute({ cost: {} }), { how: 'realtime', batches: [] });
  assert.deepEqual(describeRoute({ completionWindow: '30m', route: 'realtime' }),
    { how: "realtime: its 30m window is too short for the provider's Batch API", batches: [] });
  assert.deepEqual(describeRoute({ completionWindow: '24h', providerBatches: [] }), { how: "24h window: the provider's Batch API", batches: ['not submitted yet'] });
  assert.deepEqual(describeRoute({ completionWindow: '24h', providerBatches: [
    { id: null, status: 'submitting', items: 5, counts: null },
    { id: 'msgbatch_sim_9919c5952283a014', status: 'in_progress', items: 5, counts: { processing: 2, succeeded: 3, errored: 0, canceled: 0, expired: 1 } },
    { id: 'batch_0123456789abcdef0123', status: 'read', items: 60, counts: { total: 60, completed: 58, failed: 2 } },
  ] }).batches, ['a new provider batch: 5 requests, being submitted',
    'msgbat…2283a014: 5 requests, running at the provider (3 succeeded, 1 expired, 2 running)',
    'batch_…cdef0123: 60 requests, results read (58 of 60 completed, 2 failed)']);

  // The form's fields in the body: into the header line, a new one, or the JSON's options.
  const req = '{"custom_id":"x","params":{}}';
  assert.deepEqual(formOptions({ completionWindow: '', maxCostUsd: ' $0.50 ' }), { maxCostUsd: 0.5 });
  assert.deepEqual(formOptions({}), {});
  assert.equal(createBody(`{"provider":{"name":"anthropic"},"options":{"concurrency":2}}\n${req}`, { completionWindow: '24h', maxCostUsd: '2' }).body,
    `{"provider":{"name":"anthropic"},"options":{"concurrency":2,"completionWindow":"24h","maxCostUsd":2}}\n${req}\n`);
  assert.equal(createBody(req, { completionWindow: '4h' }).body, `{"options":{"completionWindow":"4h"}}\n${req}\n`);
  assert.equal(createBody(req).body, `${req}\n`, 'no fields, no header');
  const json = createBody(`{"requests":[${req}]}`, { maxCostUsd: '0.001' });
  assert.deepEqual(JSON.parse(json.body), { requests: [{ custom_id: 'x', params: {} }], options: { maxCostUsd: 0.001 } });
  assert.deepEqual(json.options, { maxCostUsd: 0.001 });
  for (const bad of ['0', '-1', 'abc', '1e12', '1,5', '2000000000']) {
    assert.throws(() => createBody(req, { maxCostUsd: bad }), (e) => e instanceof FieldError && e.field === 'maxCostUsd' && /^Spending cap \(USD\) must be/.test(e.message), bad);
  }
  assert.throws(() => createBody(req, { completionWindow: '2 days' }), (e) => e instanceof FieldError && e.field === 'completionWindow' && /^Completion window must be/.test(e.message));
  assert.throws(() => createBody(`{"options":{"completionWindow":"4h"}}\n${req}`, { completionWindow: '24h' }),
    (e) => e instanceof FieldError && e.field === 'completionWindow' && /^Completion window: the pasted options set completionWindow to "4h"/.test(e.message));
  assert.equal(fieldOf('options.maxCostUsd must be a number of dollars above 0'), 'maxCostUsd');
  assert.equal(fieldOf('options.completionWindow 25h is longer than a batch lives'), 'completionWindow');
  assert.equal(fieldOf('duplicate custom_id "a"'), null);
});
