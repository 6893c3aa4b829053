// The results table (a row per document from the start, filled in as results arrive, in input
// order) and the JSONL download of a run's results.

const TEXT_CHARS = 160;

function statusOf(r) {
  if (r === null) return { cls: 'pending', text: 'pending' };
  if (r.ok) return { cls: 'ok', text: 'ok' };
  const e = r.error;
  if (e.kind === 'aborted') return { cls: 'failed cancelled', text: 'cancelled' };
  return { cls: 'failed', text: e.status ? `${e.kind} ${e.status}` : e.kind };
}

/** Who answered: with `fallbacks`, the model of the alternative that served the item. */
function servedBy(r) {
  const s = r?.servedBy;
  if (!s) return '';
  return s.alternative > 0 ? `${s.model ?? s.provider} (fallback ${s.alternative})` : (s.model ?? s.provider);
}

function cell(row, text, title, tag = 'td') {
  const td = document.createElement(tag);
  td.textContent = text;
  if (title) td.title = title;
  row.append(td);
  return td;
}

export class ResultsTable {
  /** @param {HTMLTableSectionElement} tbody */
  constructor(tbody) {
    this.tbody = tbody;
    this.record = null;
    this.shown = 0;
  }

  /** Shows `record`'s results: a row per document, pending ones included. */
  show(record) {
    this.record = record;
    this.shown = 0;
    const rows = record.results.map((r, index) => this.#row(index, r));
    this.tbody.replaceChildren(...rows);
    this.shown = record.order.length;
  }

  /** Fills in the rows of results that arrived since the last call. */
  update() {
    const record = this.record;
    if (!record) return;
    for (; this.shown < record.order.length; this.shown += 1) {
      const index = record.order[this.shown];
      this.tbody.children[index]?.replaceWith(this.#row(index, record.results[index]));
    }
  }

  #row(index, r) {
    const row = document.createElement('tr');
    const { cls, text } = statusOf(r);
    row.className = cls;
    row.dataset.index = index;
    // The document's number heads its row, so a screen reader names the row when moving across it.
    cell(row, String(index + 1), '', 'th').scope = 'row';
    cell(row, text);
    cell(row, r ? String(r.attempts) : '');
    cell(row, r ? `${Math.round(r.elapsedMs)} ms` : '');
    // The result's own `usd` (edgebatch's, or the library's price of a naive reply), to the micro-dollar.
    cell(row, r?.usd === undefined ? '' : `$${r.usd.toFixed(6)}`);
    cell(row, servedBy(r));
    const full = r === null ? '' : r.ok ? (r.value?.text ?? '') : r.error.message;
    cell(row, full.length > TEXT_CHARS ? `${full.slice(0, TEXT_CHARS)}…` : full, full.length > TEXT_CHARS ? full : '');
    return row;
  }
}

/** Offers `record`'s results as a JSONL file, one line per document in input order. */
export function downloadJsonl(record) {
  const lines = record.results.map((r, index) => JSON.stringify(r ?? { index, ok: false, pending: true }));
  const blob = new Blob([`${lines.join('\n')}\n`], { type: 'application/x-ndjson' });
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = `${record.name.replace(/\W+/g, '-').toLowerCase()}-results.jsonl`;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
}
