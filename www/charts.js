// The pictures of a run, drawn in SVG from a RunRecord on every animation frame: the timeline
// (one lane per document, one bar per attempt, coloured by outcome, backoff waits as thin
// lines), the concurrency chart (edgebatch's allowed limit and what was in flight) and the
// latency histogram of successful attempts. Elements are made once and then only moved, so a
// 500-document run stays smooth.

const SVG = 'http://www.w3.org/2000/svg';
const AXIS_PX = 18;

function el(name, attrs = {}, parent = null) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (parent) parent.append(e);
  return e;
}

/** A round step for about `count` ticks over `span` (ms). */
function tickStep(span, count) {
  const raw = span / count;
  const pow = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * pow).find((s) => s >= raw);
}

const seconds = (ms) => (ms >= 10_000 || ms % 1000 === 0 ? `${Math.round(ms / 1000)} s` : `${(ms / 1000).toFixed(1)} s`);

/** Width of the drawing in user units: the element's own pixels, so text is not stretched. */
function widthOf(svg) {
  return Math.max(200, Math.round(svg.getBoundingClientRect().width) || 600);
}

/** Draws the axis ticks of a time span under a plot of height `plotH`. */
function drawTimeAxis(group, span, width, plotH) {
  group.replaceChildren();
  const step = tickStep(span, Math.max(2, Math.floor(width / 90)));
  for (let t = 0; t <= span; t += step) {
    const x = (t / span) * width;
    el('line', { x1: x, x2: x, y1: 0, y2: plotH, class: 'grid' }, group);
    const label = el('text', { x: Math.min(x + 2, width - 30), y: plotH + 13, class: 'tick' }, group);
    label.textContent = seconds(t);
  }
}

/** The timeline: a lane per item, a bar per attempt. */
export class Timeline {
  constructor(svg, total) {
    this.svg = svg;
    this.total = total;
    this.plotH = Math.max(120, Math.min(360, total * 6));
    this.laneH = this.plotH / total;
    svg.replaceChildren();
    this.axis = el('g', {}, svg);
    this.bars = el('g', { class: 'bars' }, svg);
    this.drawn = 0;
    this.drawnWaits = 0;
    this.drawnStages = 0;
    this.live = [];
    this.liveStages = [];
    this.span = 0;
  }

  /** Span of the time axis: grows in whole seconds ahead of the run, never shrinks. */
  #spanFor(now) {
    const want = Math.max(2000, Math.ceil((now * 1.1) / 1000) * 1000);
    if (want > this.span) this.span = want;
    return this.span;
  }

  render(record) {
    const width = widthOf(this.svg);
    const now = record.now();
    const span = this.#spanFor(now);
    const sx = width / span;
    this.svg.setAttribute('viewBox', `0 0 ${width} ${this.plotH + AXIS_PX}`);
    this.svg.setAttribute('height', this.plotH + AXIS_PX);
    this.bars.setAttribute('transform', `scale(${sx} 1)`);
    const minW = 2 / sx; // 2 px, so a quick attempt still shows
    for (; this.drawnWaits < record.waits.length; this.drawnWaits += 1) {
      const w = record.waits[this.drawnWaits];
      const y = w.index * this.laneH + this.laneH * 0.4;
      el('rect', { class: 'wait', x: w.start, y, width: Math.max(0, w.end - w.start), height: Math.max(0.5, this.laneH * 0.2) }, this.bars);
    }
    for (; this.drawn < record.attempts.length; this.drawn += 1) {
      const a = record.attempts[this.drawn];
      const rect = el('rect', { class: 'attempt inflight', x: a.start, y: a.index * this.laneH + this.laneH * 0.1, height: Math.max(0.6, this.laneH * 0.8) }, this.bars);
      rect.dataset.index = a.index;
      rect.dataset.attempt = a.attempt;
      this.live.push([a, rect]);
    }
    // Post-processing: a bar of its own colour after the call's, on the same lane.
    for (; this.drawnStages < record.stages.length; this.drawnStages += 1) {
      const s = record.stages[this.drawnStages];
      const rect = el('rect', { class: 'stage inflight', x: s.start, y: s.index * this.laneH + this.laneH * 0.25, height: Math.max(0.5, this.laneH * 0.5) }, this.bars);
      rect.dataset.index = s.index;
      this.liveStages.push([s, rect]);
    }
    this.liveStages = this.liveStages.filter(([s, rect]) => {
      rect.setAttribute('width', Math.max(minW, (s.end ?? now) - s.start));
      if (s.end === null) return true;
      rect.setAttribute('class', s.cls);
      el('title', {}, rect).textContent = `document ${s.index + 1}: post-processing ${s.cls === 'stage' ? 'done' : 'failed'} after ${Math.round(s.end - s.start)} ms`;
      return false;
    });
    const still = [];
    for (const [a, rect] of this.live) {
      rect.setAttribute('width', Math.max(minW, (a.end ?? now) - a.start));
      if (a.end === null) {
        still.push([a, rect]);
        continue;
      }
      rect.setAttribute('class', `attempt ${a.cls}`);
      rect.dataset.outcome = a.cls;
      const title = el('title', {}, rect);
      const what = a.status ? `HTTP ${a.status}` : a.cls;
      title.textContent = `document ${a.index + 1}, attempt ${a.attempt}: ${what} after ${Math.round(a.end - a.start)} ms`;
    }
    this.live = still;
    drawTimeAxis(this.axis, span, width, this.plotH);
    this.svg.setAttribute('aria-label', `${record.name} timeline: ${record.attempts.length} attempts for ${this.total} documents over ${seconds(Math.round(now))}`);
  }
}

/** Why the adaptive limit moved, as the chart's markers say it. */
export const REASONS = {
  configured: 'back to the configured concurrency',
  shedding: 'failures rise with our load, fast rejections: the server sheds',
  overload: 'failures rise with our load',
  probe: 'probing above the knee',
  held: 'fast rejections before any success: their slots held',
};

/** Allowed concurrency (edgebatch's adaptive limit) and attempts in flight over time. */
export class LimitChart {
  constructor(svg) {
    this.svg = svg;
    this.plotH = 60;
    svg.replaceChildren();
    this.axis = el('g', {}, svg);
    this.limit = el('path', { class: 'limit' }, svg);
    this.inflight = el('path', { class: 'inflight-line' }, svg);
    this.marks = el('g', { class: 'limit-moves' }, svg);
    this.label = el('text', { class: 'tick limit-label', x: 4, y: 11 }, svg);
    this.drawn = -1;
  }

  render(record, span) {
    const width = widthOf(this.svg);
    const samples = record.limits;
    const top = Math.max(1, ...samples.map(([, limit, inFlight]) => Math.max(limit ?? 0, inFlight)));
    const x = (t) => ((t / span) * width).toFixed(1);
    const y = (v) => (this.plotH - (v / top) * (this.plotH - 14)).toFixed(1);
    const step = (pick) => {
      let d = '';
      let last = null;
      for (const s of samples) {
        const v = pick(s);
        if (v === null || v === undefined) continue;
        d += last === null ? `M${x(s[0])},${y(v)}` : `H${x(s[0])}V${y(v)}`;
        last = v;
      }
      return last === null ? '' : `${d}H${x(record.now())}`;
    };
    this.svg.setAttribute('viewBox', `0 0 ${width} ${this.plotH + AXIS_PX}`);
    this.svg.setAttribute('height', this.plotH + AXIS_PX);
    this.limit.setAttribute('d', step((s) => s[1]));
    this.inflight.setAttribute('d', step((s) => s[2]));
    drawTimeAxis(this.axis, span, width, this.plotH);
    // A marker where the limit moved, titled with why; redrawn only when there are new ones.
    if (record.moves.length !== this.drawn || record.running) {
      this.drawn = record.moves.length;
      this.marks.replaceChildren();
      for (const [at, limit, reason] of record.moves) {
        const mark = el('circle', { class: `limit-move ${reason}`, cx: x(at), cy: y(limit), r: 3 }, this.marks);
        el('title', {}, mark).textContent = `${seconds(Math.round(at))}: limit ${limit}, ${REASONS[reason] ?? reason}`;
      }
    }
    const { limit, limitReason } = record.counts;
    const why = limitReason && limitReason !== 'configured' ? ` (${REASONS[limitReason] ?? limitReason})` : '';
    this.label.textContent = `in flight (blue)${limit === null ? '' : `, allowed (orange): now ${limit}${why}`}; scale 0–${top}`;
  }
}

/** Latency of successful attempts, in ten bins. */
export class Histogram {
  constructor(svg) {
    this.svg = svg;
    this.plotH = 80;
    this.seen = -1;
  }

  render(record) {
    const ok = record.attempts.filter((a) => a.cls === 'ok').map((a) => a.end - a.start);
    if (ok.length === this.seen) return;
    this.seen = ok.length;
    const width = widthOf(this.svg);
    const svg = this.svg;
    svg.replaceChildren();
    svg.setAttribute('viewBox', `0 0 ${width} ${this.plotH + AXIS_PX * 2}`);
    svg.setAttribute('height', this.plotH + AXIS_PX * 2);
    if (ok.length === 0) {
      el('text', { class: 'tick', x: 4, y: 14 }, svg).textContent = 'no successful attempt yet';
      svg.setAttribute('aria-label', `${record.name} latency: no successful attempt yet`);
      return;
    }
    ok.sort((a, b) => a - b);
    const pct = (p) => Math.round(ok[Math.min(ok.length - 1, Math.floor(p * ok.length))]);
    const binW = tickStep(ok[ok.length - 1] - ok[0] + 1, 10);
    const from = Math.floor(ok[0] / binW) * binW;
    const bins = new Array(Math.floor((ok[ok.length - 1] - from) / binW) + 1).fill(0);
    for (const v of ok) bins[Math.floor((v - from) / binW)] += 1;
    const most = Math.max(...bins);
    const w = width / bins.length;
    bins.forEach((n, i) => {
      const h = (n / most) * (this.plotH - 4);
      const bar = el('rect', { class: 'bin', x: i * w + 1, y: AXIS_PX + this.plotH - h, width: Math.max(1, w - 2), height: h }, svg);
      const lo = from + i * binW;
      el('title', {}, bar).textContent = `${n} attempts took ${lo}–${lo + binW} ms`;
      el('text', { class: 'tick', x: i * w + 2, y: this.plotH + AXIS_PX * 2 - 4 }, svg).textContent = `${lo}`;
    });
    el('text', { class: 'tick', x: 4, y: 12 }, svg).textContent = `${ok.length} ok attempts · p50 ${pct(0.5)} ms · p95 ${pct(0.95)} ms · max ${Math.round(ok[ok.length - 1])} ms (bins of ${binW} ms)`;
    svg.setAttribute('aria-label', `${record.name} latency: p50 ${pct(0.5)} ms, p95 ${pct(0.95)} ms over ${ok.length} successful attempts`);
  }
}
