// The demo page: reads the form, runs the batch (edgebatch alone, or the naive fan-out and then
// edgebatch on the same documents), and draws both as they happen. Everything runs in this
// page; the simulator is a real HTTP server (the Worker's /sim, or any URL given).
import init, { BatchProcessor, summarize } from './pkg/edgebatch.js';
import { Histogram, LimitChart, Timeline } from './charts.js';
import { downloadJsonl, ResultsTable } from './results.js';
import { RunRecord, runEdgebatch, runNaive } from './runs.js';
import { sampleDocuments, sharedSystemPrompt } from './sample.js';
import * as extract from './extract.js';

const $ = (id) => document.getElementById(id);
const form = $('setup');
const status = $('status');
const table = new ResultsTable($('rows'));
/** The runs of the last Run: [{ record, panel }]. */
let runs = [];
let controller = null;
/** Prices the naive run's replies (set once the wasm is loaded). */
let pricer = null;

function setStatus(state, text) {
  status.dataset.state = state;
  status.textContent = text;
  status.setAttribute('role', state === 'error' ? 'alert' : 'status');
}

const secs = (ms) => `${(ms / 1000).toFixed(1)} s`;
const dollars = (usd) => `$${usd.toFixed(4)}`;
const times = (n) => (n === 1 ? 'once' : `${n} times`);
const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;

// ---- the form ----

function documents() {
  return $('docs').value.split('\n').map((l) => l.trim()).filter(Boolean);
}

function countDocuments() {
  $('doc-count').value = String(documents().length);
}

/** A number field: undefined when empty, else its number (bad ones are edgebatch's to refuse). */
function num(id) {
  const raw = $(id).value.trim();
  return raw === '' ? undefined : Number(raw);
}

function api() {
  return form.elements.api.value;
}

function syncForm() {
  const sim = api() === 'sim';
  document.body.classList.toggle('api-sim', sim);
  document.body.classList.toggle('api-anthropic', !sim);
  $('mode-compare').disabled = !sim;
  if (!sim && $('mode-compare').checked) $('mode-single').checked = true;
}

/** The first choice's model, and with Fallback on the second (`fallbacks`). */
function models() {
  const first = $('model').value.trim() || 'claude-haiku-4-5';
  const second = $('fallback').checked ? ($('fallback-model').value.trim() || 'claude-sonnet-4-5') : null;
  return { first, second };
}

function edgebatchOptions() {
  const { second } = models();
  const rateLimit = Object.fromEntries(
    [['requestsPerMinute', 'rpm'], ['inputTokensPerMinute', 'itpm'], ['outputTokensPerMinute', 'otpm']]
      .map(([key, id]) => [key, num(id)])
      .filter(([, v]) => v !== undefined),
  );
  return {
    concurrency: num('concurrency'),
    maxRetries: num('max-retries'),
    timeoutMs: num('timeout'),
    adaptive: $('adaptive').checked,
    ...(Object.keys(rateLimit).length && { rateLimit }),
    ...(second !== null && { fallbacks: [{ model: second }] }),
  };
}

/** The capacity model, only when a capacity is given (queue and shedMs need one). */
function capacityConfig() {
  const capacity = num('sim-capacity');
  if (capacity === undefined) return {};
  return { capacity, queue: num('sim-queue') ?? 0, shedMs: num('sim-shed-ms') ?? 5 };
}

/**
 * With Fallback on, the first model is overloaded (80% 529s) from now for the window given.
 * `untilMs` is in the simulator's clock: on the Worker (workerd) that is Unix time, so this
 * assumes the page and the simulator agree on the time of day (they do on one machine).
 */
function byModel() {
  const { first, second } = models();
  if (second === null) return {};
  return { byModel: { [first]: { overloaded: 0.8, untilMs: Date.now() + (num('sim-overload-ms') ?? 0) } } };
}

function simConfig() {
  return {
    config: {
      seed: num('sim-seed') ?? 0,
      minuteMs: num('sim-minute'),
      requestsPerMinute: num('sim-rpm'),
      maxTokens: num('max-tokens'),
      latency: { baseMs: num('sim-latency') ?? 0, perOutputTokenMs: 2, jitterMs: 100 },
      faults: { rate429: num('sim-429') ?? 0, rate529: num('sim-529') ?? 0, rate500: num('sim-500') ?? 0, hang: num('sim-hang') ?? 0, ...byModel() },
      ...capacityConfig(),
    },
    hangMs: num('sim-hang-ms'),
  };
}

/**
 * A fresh simulator of its own on the server: its URL for `provider.baseUrl`. The server says
 * only the path (a URL it built would come from the Host header); it is on `simUrl`.
 */
async function simSession(simUrl) {
  let res;
  try {
    res = await fetch(`${simUrl.replace(/\/+$/, '')}/sim/sessions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(simConfig()),
    });
  } catch (err) {
    throw new Error(`could not reach the simulator at ${simUrl} (${err.message}). Start it with \`make run\`, which serves this page and the simulator on http://127.0.0.1:8787.`);
  }
  const body = await res.json().catch(() => null);
  if (res.ok && typeof body?.path === 'string') return new URL(body.path, `${simUrl.replace(/\/+$/, '')}/`).href;
  if (body?.error?.message) throw new Error(`the simulator refused the settings: ${body.error.message}`);
  throw new Error(`no edgebatch simulator at ${simUrl} (HTTP ${res.status}). \`make run\` starts one on http://127.0.0.1:8787: enter its address under "Simulator server".`);
}

// ---- panels ----

function makePanel(record, title, lede) {
  const node = $('panel').content.firstElementChild.cloneNode(true);
  node.dataset.run = record.name;
  node.querySelector('h2').textContent = title;
  node.querySelector('.lede').textContent = lede;
  node.querySelector('progress').setAttribute('aria-label', `${title}: documents done`);
  $('panels').append(node);
  return {
    node,
    timeline: new Timeline(node.querySelector('.timeline'), record.total),
    limits: new LimitChart(node.querySelector('.limits')),
    histogram: new Histogram(node.querySelector('.histogram')),
  };
}

/**
 * What the run's results cost so far: the library's `summarize(results).cost` (the sum of each
 * result's `usd`, in whole pico-dollars), worked out again only when results arrived.
 */
function costOf(run) {
  const { record } = run;
  if (run.cost?.results !== record.order.length) {
    const { cost } = summarize(record.order.map((i) => record.results[i]));
    run.cost = { results: record.order.length, usd: cost.usd, unpriced: cost.unpriced };
  }
  return run.cost;
}

function drawPanel(run) {
  const { record, panel } = run;
  const c = record.counts;
  const progress = panel.node.querySelector('progress');
  progress.max = record.total;
  progress.value = c.done;
  panel.node.querySelector('.fraction').textContent = `${c.done} / ${record.total}`;
  const cost = costOf(run);
  const shown = {
    time: secs(record.now()),
    usd: cost.unpriced > 0 ? `${dollars(cost.usd)} (+${cost.unpriced} unpriced)` : dollars(cost.usd),
    cacheWrites: String(record.cache.writes),
    cacheReads: String(record.cache.reads),
  };
  for (const dd of panel.node.querySelectorAll('[data-count]')) {
    const key = dd.dataset.count;
    dd.textContent = shown[key] ?? String(c[key]);
  }
  panel.timeline.render(record);
  panel.limits.render(record, panel.timeline.span);
  panel.histogram.render(record);
  panel.node.classList.toggle('running', record.running);
  panel.node.querySelector('.verdict').textContent = verdict(record);
  panel.node.querySelector('.spent').textContent = spent(run);
}

/** What the finished run cost, and what the prompt cache did, in a sentence. */
function spent(run) {
  const { record } = run;
  if (record.startedAt === null || record.running || record.counts.ok === 0) return '';
  const { usd, unpriced } = costOf(run);
  const { ok } = record.counts;
  const { writes, reads } = record.cache;
  const replies = ok === 1 ? 'Its 1 reply' : `Its ${ok} replies`;
  const each = unpriced > 0 ? `${unpriced} of them unpriced: no price for their model` : `$${(usd / ok).toFixed(6)} a reply`;
  const cache = writes + reads > 0 ? ` The prompt cache was written ${times(writes)} and read ${times(reads)}.` : '';
  return `${replies} cost ${dollars(usd)} (${each}).${cache}`;
}

function verdict(record) {
  if (record.startedAt === null) return '';
  const c = record.counts;
  if (record.name === 'naive') {
    const v = record.verdict;
    if (!v) return '';
    const given = v.ok
      ? `Promise.all resolved after ${secs(v.atMs)}: the caller got all ${v.got} results.`
      : `Promise.all rejected after ${secs(v.atMs)} (${v.message}): the caller got 0 of ${record.total} results.`;
    return record.running ? `${given} ${c.inFlight} requests still open…` : `${given} Of its ${record.total} requests: ${c.ok} ok, ${c.failed} failed, ${c.cancelled} cancelled; none was retried.`;
  }
  if (record.running) return '';
  const moved = c.fallbacks > 0 ? ` and ${c.fallbacks} fallbacks to the second model` : '';
  return `Every document has exactly one result: ${c.ok} ok, ${c.failed} failed, ${c.cancelled} cancelled, after ${c.retries} retries${moved}.`;
}

function frame() {
  for (const run of runs) drawPanel(run);
  table.update();
  if (controller !== null) requestAnimationFrame(frame);
}

function showResultsOf(name) {
  const run = runs.find((r) => r.record.name === name) ?? runs[runs.length - 1];
  table.show(run.record);
}

// ---- a run ----

function summary(run) {
  const { record } = run;
  const c = record.counts;
  const moved = c.fallbacks > 0 ? `, ${c.fallbacks} fallbacks` : '';
  const { writes, reads } = record.cache;
  const cache = writes + reads > 0 ? ` (cache: ${plural(writes, 'write')}, ${plural(reads, 'read')})` : '';
  return `${record.name}: ${c.ok} of ${record.total} ok, ${c.failed} failed, ${c.cancelled} cancelled, ${c.retries} retries${moved}, ${c.r429} × 429, ${secs(record.now())}, ${dollars(costOf(run).usd)}${cache}`;
}

async function run(event) {
  event.preventDefault();
  const docs = documents();
  if (docs.length === 0) {
    setStatus('error', 'Add at least one document (one per line), or press “Sample 100”.');
    return;
  }
  const model = models().first;
  // One system block for every request, marked as a cache breakpoint: the shared prefix.
  const system = $('shared-system').checked
    ? [{ type: 'text', text: sharedSystemPrompt(), cache_control: { type: 'ephemeral' } }]
    : undefined;
  const bodies = docs.map((d) => ({
    model,
    max_tokens: num('max-tokens'),
    ...(system && { system }),
    messages: [{ role: 'user', content: `Summarize in one sentence: ${d}` }],
  }));
  const compare = form.elements.mode.value === 'compare' && api() === 'sim';
  controller = new AbortController();
  const { signal } = controller;
  $('run').disabled = true;
  $('cancel').disabled = false;
  $('panels').replaceChildren();
  $('panels').classList.toggle('two', compare);
  runs = [];
  setStatus('running', 'Starting…');
  try {
    let provider;
    let naiveBase;
    if (api() === 'sim') {
      const simUrl = $('sim-url').value.trim() || location.origin;
      // Separate simulators: the naive run cannot use up edgebatch's rate limit.
      [naiveBase, provider] = await Promise.all([
        compare ? simSession(simUrl) : null,
        simSession(simUrl).then((baseUrl) => ({ name: 'anthropic', apiKey: 'sim-demo-key', baseUrl })),
      ]);
    } else {
      const apiKey = $('api-key').value.trim();
      if (!apiKey) throw new Error('enter your Anthropic API key, or choose the simulator');
      provider = { name: 'anthropic', apiKey, dangerouslyAllowBrowser: true };
    }
    const options = { ...edgebatchOptions(), provider };
    new BatchProcessor(options).free(); // bad options throw here, before anything is sent

    const naive = compare ? new RunRecord('naive', bodies.length) : null;
    const eb = new RunRecord('edgebatch', bodies.length);
    if (naive) {
      runs.push({ record: naive, panel: makePanel(naive, 'Naive: Promise.all(fetch)', 'Every request at once, no timeout, no retry. (The browser itself opens at most 6 connections to one server, so even this is queued.)') });
    }
    runs.push({ record: eb, panel: makePanel(eb, 'edgebatch', 'Bounded concurrency, backoff with jitter, attempt timeouts that abort, pacing from the rate-limit headers.') });
    $('results-of').replaceChildren(...runs.map(({ record }) => new Option(record.name, record.name)));
    $('results-of').value = 'edgebatch';
    $('results').hidden = false;
    requestAnimationFrame(frame);

    if (naive) {
      table.show(naive);
      setStatus('running', 'Running the naive fan-out…');
      await runNaive({
        url: `${naiveBase}/v1/messages`,
        headers: { 'content-type': 'application/json', 'x-api-key': 'sim-demo-key', 'anthropic-version': '2023-06-01' },
        bodies, record: naive, signal, price: priceReply,
      });
    }
    if (!signal.aborted) {
      // The overload window starts when edgebatch does: after a naive run, a fresh simulator.
      if (naive && $('fallback').checked) options.provider.baseUrl = await simSession($('sim-url').value.trim() || location.origin);
      table.show(eb);
      setStatus('running', naive ? 'Now edgebatch on the same documents…' : 'Running…');
      // A module object: the raw build has no worker pool, so the stage runs inline.
      const postProcess = $('post-process').checked ? { module: extract, export: 'entities' } : undefined;
      await runEdgebatch({ BatchProcessor, options, bodies, record: eb, signal, postProcess });
    } else {
      for (let index = 0; index < eb.total; index += 1) {
        eb.result({ index, ok: false, error: { kind: 'aborted', message: 'cancelled before edgebatch started' }, attempts: 0, elapsedMs: 0 });
      }
      eb.finish();
    }
    const word = signal.aborted ? 'Cancelled' : 'Done';
    setStatus(signal.aborted ? 'cancelled' : 'done', `${word}. ${runs.map(summary).join(' · ')}. Every document has a row below.`);
  } catch (err) {
    for (const { record } of runs) if (record.running) record.finish();
    setStatus('error', `Could not run: ${err.message}`);
  } finally {
    $('run').disabled = false;
    $('cancel').disabled = true;
    controller = null;
    frame();
  }
}

/**
 * What a Messages reply cost at the library's prices: `map()` puts `usd` on a value that is a
 * Message (its `model` and `usage`), from the same table edgebatch's own results are priced by.
 */
async function priceReply(reply) {
  const [priced] = await pricer.map([reply], (r) => r);
  return priced.usd;
}

// ---- start ----

/** Whether this page is served by the edgebatch Worker with its simulator on. */
async function simulatorHere() {
  if (location.protocol !== 'http:' && location.protocol !== 'https:') return false;
  try {
    const res = await fetch('/healthz');
    return res.ok && (await res.json()).sim === 'on';
  } catch {
    return false;
  }
}

async function start() {
  $('sim-url').value = await simulatorHere() ? location.origin : 'http://127.0.0.1:8787';
  $('docs').value = sampleDocuments(50);
  countDocuments();
  const prompt = sharedSystemPrompt();
  $('system-size').textContent = `${prompt.length.toLocaleString('en')} characters (about ${Math.ceil(prompt.length / 4).toLocaleString('en')} tokens at 4 characters a token)`;
  syncForm();
  $('docs').addEventListener('input', countDocuments);
  $('sample').addEventListener('click', () => {
    $('docs').value = sampleDocuments(100);
    countDocuments();
  });
  $('sample-small').addEventListener('click', () => {
    $('docs').value = sampleDocuments(50);
    countDocuments();
  });
  for (const radio of form.elements.api) radio.addEventListener('change', syncForm);
  $('cancel').addEventListener('click', () => controller?.abort(new Error('cancelled by the user')));
  $('results-of').addEventListener('change', (e) => showResultsOf(e.target.value));
  $('only-failed').addEventListener('change', (e) => $('results').classList.toggle('only-failed', e.target.checked));
  $('download').addEventListener('click', () => {
    const run = runs.find((r) => r.record.name === $('results-of').value);
    if (run) downloadJsonl(run.record);
  });
  form.addEventListener('submit', run);
  try {
    await init();
  } catch (err) {
    setStatus('error', `Could not load edgebatch's WebAssembly (pkg/): ${err.message}. Build it with \`make build\`.`);
    return;
  }
  pricer = new BatchProcessor({ concurrency: 10000, maxRetries: 0 });
  $('run').disabled = false;
  setStatus('idle', 'Ready. Press Run.');
}

$('run').disabled = true;
start();
