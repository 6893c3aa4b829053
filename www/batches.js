// The batches page: the token's stored batches on this Worker (/v1/batches, same origin), polled
// while one is in progress and the page is visible; cancel, results download, a small create.
// Rows are updated in place, never rebuilt: a button that has the keyboard focus keeps it.
// The words (status, waiting, dollars, route) come from batches-format.js; this file is the DOM.
import { clockTime, createBody, describeCost, describeRate, describeRoute, describeStatus, describeWaiting, fieldOf, FieldError, RateMeter, shortId,
  totals, usd } from './batches-format.js';

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = 'edgebatch.token';
const POLL_MS = 1500;
const MAX_CREATE_BYTES = 1024 * 1024;
// ?limit=N in the page's address sets the page size (1..100, as the API takes); 20 otherwise.
const PAGE_SIZE = (() => {
  const n = Number(new URLSearchParams(location.search).get('limit'));
  return Number.isInteger(n) && n >= 1 && n <= 100 ? n : 20;
})();

const status = $('status');
const tbody = $('rows');
let token = sessionStorage.getItem(TOKEN_KEY) ?? '';
/** before_id of each page shown before this one (the API pages backwards from the newest). */
const newerPages = [];
let beforeId = null;
let timer = null;
let polls = 0;
/** Whether the first poll of a page says how many batches it shows (not after a create). */
let sayCount = true;
/** id -> { row, cells, meter, status } for the rows on screen. */
const shown = new Map();

function setStatus(state, text) {
  status.dataset.state = state;
  status.setAttribute('role', state === 'error' ? 'alert' : 'status');
  // The same words again are not news: a screen reader is told only what changed.
  if (status.textContent !== text) status.textContent = text;
}

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** `method path` on this Worker with the token; the Worker's JSON error becomes an ApiError naming it. */
async function api(method, path, { body, type } = {}) {
  const res = await fetch(path, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(type && { 'content-type': type }) },
    ...(body !== undefined && { body }),
    cache: 'no-store',
  });
  if (res.ok) return res;
  const err = await res.json().catch(() => null);
  throw new ApiError(res.status, `${res.status}: ${err?.error?.message ?? res.statusText ?? 'request failed'}`);
}

/** A failed call in words; a 401 also forgets the token. */
function failed(what, err) {
  if (err instanceof ApiError && err.status === 401) {
    token = '';
    sessionStorage.removeItem(TOKEN_KEY);
    stopPolling();
    setStatus('error', `The Worker refused the token (${err.message}). Enter your edgebatch token again.`);
    return;
  }
  setStatus('error', `${what} failed: ${err.message}`);
}

// ---- the list ----

function cell(row, tag = 'td') {
  const c = document.createElement(tag);
  row.append(c);
  return c;
}

function button(text, label, onClick) {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = text;
  b.setAttribute('aria-label', label);
  b.addEventListener('click', onClick);
  return b;
}

/** A line of its own in a cell. */
function line(parent, className) {
  const el = document.createElement('span');
  el.className = className;
  parent.append(el);
  return el;
}

/** A row for batch `id`, empty until `fill`. */
function makeRow(id) {
  const row = document.createElement('tr');
  row.dataset.id = id;
  const head = cell(row, 'th');
  head.scope = 'row';
  const name = document.createElement('code');
  name.textContent = shortId(id);
  name.title = id;
  const created = document.createElement('span');
  created.className = 'created';
  head.append(name, created);
  const cells = { head, created };
  for (const key of ['status', 'progress', 'cost', 'route', 'succeeded', 'errored', 'canceled', 'expired', 'processing', 'rate', 'waiting', 'actions']) {
    cells[key] = cell(row);
    cells[key].dataset.col = key;
  }
  const bar = document.createElement('progress');
  const fraction = document.createElement('span');
  fraction.className = 'fraction';
  cells.progress.append(bar, fraction);
  const cost = { spent: line(cells.cost, 'spent'), cap: line(cells.cost, 'cap'), unknown: line(cells.cost, 'unknown') };
  const how = line(cells.route, 'how');
  const pbs = document.createElement('ul');
  pbs.className = 'provider-batches';
  cells.route.append(pbs);
  const download = button('Download', `Download results of ${shortId(id)}`, () => downloadResults(id));
  const cancel = button('Cancel', `Cancel ${shortId(id)}`, () => cancelBatch(id));
  cancel.className = 'danger';
  cells.actions.append(cancel, download);
  return { row, cells, bar, fraction, cost, how, pbs, cancel, download, meter: new RateMeter(), status: null, waiting: '' };
}

/** Brings `entry`'s row up to date with `batch`, touching only what changed. */
function fill(entry, batch, now) {
  const { cells } = entry;
  const c = batch.request_counts;
  const { total, done } = totals(c);
  const running = batch.processing_status !== 'ended';
  const set = (el, text) => {
    if (el.textContent !== text) el.textContent = text;
  };
  set(entry.cells.created, `created ${clockTime(batch.created_at)}`);
  set(cells.status, describeStatus(batch));
  entry.row.className = batch.processing_status;
  entry.bar.max = Math.max(total, 1);
  entry.bar.value = done;
  entry.bar.setAttribute('aria-label', `${shortId(batch.id)}: ${done} of ${total} requests finished`);
  set(entry.fraction, `${done} / ${total}`);
  for (const key of ['succeeded', 'errored', 'canceled', 'expired', 'processing']) set(cells[key], String(c[key]));
  entry.meter.add(now, c);
  set(cells.rate, running ? describeRate(entry.meter.rate()) : '—');
  const waiting = running ? describeWaiting(batch.edgebatch?.waiting) : '';
  set(cells.waiting, waiting);
  const cost = describeCost(batch);
  set(entry.cost.spent, cost ? cost.spent : '—');
  set(entry.cost.cap, cost?.cap ?? '');
  set(entry.cost.unknown, cost?.unknown ?? '');
  const route = describeRoute(batch.edgebatch);
  set(entry.how, route.how);
  if (entry.pbs.children.length !== route.batches.length) {
    entry.pbs.replaceChildren(...route.batches.map(() => document.createElement('li')));
  }
  route.batches.forEach((text, i) => set(entry.pbs.children[i], text));
  entry.pbs.hidden = route.batches.length === 0;
  const cancelable = batch.processing_status === 'in_progress';
  if (entry.cancel.hidden === cancelable) {
    // Hiding the focused Cancel would drop the focus to the page: hand it to Download.
    if (!cancelable && document.activeElement === entry.cancel) entry.download.focus();
    entry.cancel.hidden = !cancelable;
  }
  entry.download.setAttribute('aria-label', `Download ${running ? 'partial results (it runs)' : 'results'} of ${shortId(batch.id)}`);
  // News for the live region: changes seen between polls, never a row's first look.
  const news = [];
  if (entry.status === null) {
    // first look: nothing to announce
  } else if (entry.status !== batch.processing_status) {
    news.push(`${shortId(batch.id)} ${describeStatus(batch)}: ${c.succeeded} succeeded, ${c.errored} errored, ${c.canceled} canceled, ${c.expired} expired.` +
      (cost && batch.processing_status === 'ended' ? ` Cost ${cost.spent}.` : ''));
  } else if (waiting && !entry.waiting) {
    news.push(`${shortId(batch.id)} is ${waiting}.`);
  }
  entry.status = batch.processing_status;
  entry.waiting = waiting;
  return news;
}

/** One poll of the page shown: rows updated, the next poll planned. */
async function refresh() {
  clearTimeout(timer);
  timer = null;
  if (!token) return;
  const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (beforeId) query.set('before_id', beforeId);
  let page;
  try {
    page = await (await api('GET', `/v1/batches?${query}`)).json();
  } catch (err) {
    failed('Listing the batches', err);
    if (!(err instanceof ApiError && err.status === 401)) schedule(true);
    return;
  }
  const first = polls === 0;
  polls += 1;
  sessionStorage.setItem(TOKEN_KEY, token);
  $('list').hidden = false;
  $('table-wrap').dataset.polls = String(polls);
  const now = Date.now();
  const news = [];
  const ids = page.data.map((b) => b.id);
  for (const [id, entry] of shown) {
    if (!ids.includes(id)) {
      entry.row.remove();
      shown.delete(id);
    }
  }
  for (const batch of page.data) {
    let entry = shown.get(batch.id);
    if (!entry) shown.set(batch.id, (entry = makeRow(batch.id)));
    news.push(...fill(entry, batch, now));
  }
  // Re-inserting a row takes the focus from its buttons: only when the order changed.
  const order = [...tbody.children].map((r) => r.dataset.id);
  if (order.join() !== ids.join()) tbody.replaceChildren(...ids.map((id) => shown.get(id).row));
  $('empty').hidden = page.data.length > 0 || beforeId !== null;
  $('older').disabled = !page.has_more;
  $('newer').disabled = newerPages.length === 0;
  const active = page.data.filter((b) => b.processing_status !== 'ended').length;
  if (first && sayCount) {
    const n = page.data.length;
    setStatus('idle', n === 0 ? 'This token has no batches yet.'
      : `${n} batch${n === 1 ? '' : 'es'}${page.has_more ? ' on this page' : ''}, ${active} in progress.`);
  } else if (news.length) {
    setStatus('idle', news.join(' '));
  }
  schedule(active > 0);
}

/** The next poll, while something runs and the page is visible. */
function schedule(active) {
  clearTimeout(timer);
  timer = null;
  const when = `Updated ${clockTime(Date.now())}`;
  if (!active) {
    $('updated').textContent = `${when}. Nothing in progress on this page: not polling.`;
  } else if (document.visibilityState !== 'visible') {
    $('updated').textContent = `${when}. Paused while the page is hidden.`;
  } else {
    $('updated').textContent = `${when}; again every ${POLL_MS / 1000} s while a batch is in progress.`;
    timer = setTimeout(refresh, POLL_MS);
  }
}

function stopPolling() {
  clearTimeout(timer);
  timer = null;
}

/** Shows another page of the list, starting over with its rows. */
function showPage(before, { count = true } = {}) {
  beforeId = before;
  sayCount = count;
  polls = 0;
  for (const entry of shown.values()) entry.row.remove();
  shown.clear();
  return refresh();
}

// ---- actions ----

async function cancelBatch(id) {
  const ok = confirm(`Cancel ${shortId(id)}? Its queued requests end canceled now; requests already in flight finish and keep their results.`);
  if (!ok) return;
  try {
    await api('POST', `/v1/batches/${id}/cancel`);
    setStatus('idle', `Canceling ${shortId(id)}…`);
  } catch (err) {
    failed(`Canceling ${shortId(id)}`, err);
  }
  await refresh();
}

/**
 * The results so far as a .jsonl file. One GET streams every finished line (the Worker pages
 * through the ledger itself); the header says whether the batch had ended.
 */
async function downloadResults(id) {
  try {
    const res = await api('GET', `/v1/batches/${id}/results`);
    const ended = res.headers.get('edgebatch-batch-ended') === 'true';
    const text = await res.text();
    const lines = text.split('\n').filter(Boolean).length;
    const a = document.createElement('a');
    a.href = URL.createObjectURL(new Blob([text], { type: 'application/x-ndjson' }));
    a.download = `${id}${ended ? '' : '-partial'}-results.jsonl`;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
    setStatus('idle', `Downloaded ${lines} result${lines === 1 ? '' : 's'} of ${shortId(id)}${ended ? '' : ' (partial: it is still running)'}.`);
  } catch (err) {
    failed(`Downloading the results of ${shortId(id)}`, err);
  }
}

async function createBatch() {
  if (!token) {
    setStatus('error', 'Enter your edgebatch token first.');
    $('token').focus();
    return;
  }
  for (const el of Object.values(FIELDS)) el.removeAttribute('aria-invalid');
  let made;
  try {
    made = createBody($('create-body').value, { completionWindow: FIELDS.completionWindow.value, maxCostUsd: FIELDS.maxCostUsd.value });
    if (new Blob([made.body]).size > MAX_CREATE_BYTES) {
      throw new Error('over 1 MiB: this page sends small batches; send larger ones with the CLI or POST /v1/batches (NDJSON)');
    }
  } catch (err) {
    setStatus('error', `Not sent: ${err.message}`);
    if (err instanceof FieldError) markInvalid(err.field);
    return;
  }
  setStatus('idle', `Sending a batch of ${made.count} request${made.count === 1 ? '' : 's'}…`);
  try {
    const batch = await (await api('POST', '/v1/batches', { body: made.body, type: made.type })).json();
    const how = [made.options.completionWindow && `a ${made.options.completionWindow} window`,
      made.options.maxCostUsd !== undefined && `a cap of ${usd(made.options.maxCostUsd)}`].filter(Boolean);
    setStatus('idle', `Created ${shortId(batch.id)} with ${made.count} request${made.count === 1 ? '' : 's'}${how.length ? `, ${how.join(' and ')}` : ''}.`);
    newerPages.length = 0;
    await showPage(null, { count: false });
  } catch (err) {
    failed('Creating the batch', err);
    // The Worker's 400 names the option: the form field that set it is marked too.
    const field = err instanceof ApiError && err.status === 400 ? fieldOf(err.message) : null;
    if (field && made.options[field] !== undefined) markInvalid(field);
  }
}

/** The create form's option fields, by the option each one sets. */
const FIELDS = { completionWindow: $('completion-window'), maxCostUsd: $('max-cost') };

/** Marks a form field refused (the status says why) and puts the keyboard there. */
function markInvalid(field) {
  FIELDS[field].setAttribute('aria-invalid', 'true');
  FIELDS[field].focus();
}

function sample() {
  const header = { provider: { name: 'anthropic', baseUrl: `${location.origin}/sim` } };
  const lines = Array.from({ length: 5 }, (_, i) => ({
    custom_id: `doc-${i + 1}`,
    params: { model: 'claude-haiku-4-5', max_tokens: 64, messages: [{ role: 'user', content: `Summarize document ${i + 1} in one sentence.` }] },
  }));
  $('create-body').value = [header, ...lines].map((l) => JSON.stringify(l)).join('\n');
}

// ---- wiring ----

$('token-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const entered = $('token').value.trim();
  if (!entered) {
    setStatus('error', 'Enter your edgebatch token.');
    return;
  }
  token = entered;
  newerPages.length = 0;
  setStatus('idle', 'Loading your batches…');
  showPage(null);
});

$('forget').addEventListener('click', () => {
  token = '';
  sessionStorage.removeItem(TOKEN_KEY);
  $('token').value = '';
  stopPolling();
  for (const entry of shown.values()) entry.row.remove();
  shown.clear();
  $('list').hidden = true;
  setStatus('idle', 'Token forgotten. Enter a token to see its batches.');
});

$('older').addEventListener('click', () => {
  const last = tbody.lastElementChild?.dataset.id;
  if (!last) return;
  newerPages.push(beforeId);
  showPage(last);
});

$('newer').addEventListener('click', () => {
  if (newerPages.length) showPage(newerPages.pop());
});

$('create-submit').addEventListener('click', createBatch);
for (const el of Object.values(FIELDS)) el.addEventListener('input', () => el.removeAttribute('aria-invalid'));
$('sample').addEventListener('click', sample);

document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible') refresh();
  else if (timer !== null) schedule(true); // says "paused", sets no timer
});

if (token) {
  $('token').value = token;
  setStatus('idle', 'Loading your batches…');
  showPage(null);
}
