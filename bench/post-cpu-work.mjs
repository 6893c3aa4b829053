// The benchmark's CPU work: `ms` (default 40) of busy computation over the reply's text.
export function burn(value, ctx) {
  const ms = ctx && typeof ctx.ms === 'number' ? ctx.ms : Number(process.env.BENCH_CPU_MS ?? 40);
  const end = performance.now() + ms;
  let h = 0;
  const text = JSON.stringify(value);
  while (performance.now() < end) {
    for (let i = 0; i < text.length; i++) h = (h * 31 + text.charCodeAt(i)) | 0;
  }
  return { ...value, hash: h };
}
