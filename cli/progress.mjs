// Progress on stderr: a live bar redrawn in place on a TTY, plain lines otherwise (every 10% or
// every 2 seconds, whichever comes first), so logs and CI output stay readable.

export class ProgressView {
  /** `already`: what was done before this view started (a resumed download, a batch joined late), left out of the rate. */
  constructor({ total, already = 0, stream = process.stderr, quiet = false }) {
    this.total = total;
    this.already = already;
    this.stream = stream;
    this.quiet = quiet || total === 0;
    this.tty = Boolean(stream.isTTY);
    this.t0 = Date.now();
    this.lastDraw = 0;
    this.lastTenth = -1;
    this.state = { done: 0, ok: 0, failed: 0, inFlight: undefined, retries: undefined };
  }

  /** `state`: { done, ok, failed, inFlight?, retries? } of this run. */
  update(state) {
    Object.assign(this.state, state);
    if (this.quiet) return;
    const now = Date.now();
    const finished = this.state.done >= this.total;
    if (this.tty) {
      if (!finished && now - this.lastDraw < 80) return;
      this.lastDraw = now;
      this.stream.write(`\r\x1b[2K${this.line(true)}`);
      return;
    }
    const tenth = Math.floor((this.state.done / this.total) * 10);
    if (finished || tenth > this.lastTenth || now - this.lastDraw >= 2000) {
      if (finished && this.printedFinal) return;
      this.printedFinal = finished;
      this.lastTenth = tenth;
      this.lastDraw = now;
      this.stream.write(`${this.line(false)}\n`);
    }
  }

  /** Ends the live line so what follows starts on a fresh one. */
  finish() {
    if (this.quiet) return;
    if (this.tty) this.stream.write(`\r\x1b[2K${this.line(true)}\n`);
    else if (!this.printedFinal) this.stream.write(`${this.line(false)}\n`);
  }

  line(withBar) {
    const { done, ok, failed, inFlight, retries } = this.state;
    const secs = (Date.now() - this.t0) / 1000;
    const width = 28;
    const frac = this.total ? done / this.total : 1;
    const bar = withBar ? `[${'#'.repeat(Math.round(frac * width)).padEnd(width, '.')}] ` : 'progress: ';
    const parts = [`${done}/${this.total}`, `ok ${ok}`, `failed ${failed}`];
    if (inFlight !== undefined) parts.push(`in flight ${inFlight}`);
    if (retries !== undefined) parts.push(`retries ${retries}`);
    const rate = secs > 0 ? (done - this.already) / secs : 0;
    parts.push(`${secs.toFixed(1)}s`, `${rate.toFixed(1)}/s`);
    return `${bar}${parts.join('  ')}`;
  }
}
