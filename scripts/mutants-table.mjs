// Prints cargo-mutants' outcomes per file: caught / missed / timeout / unviable, and the share
// of viable mutants caught (a timeout counts as caught: the tests did not pass), then every
// missed mutant by name. With several files (runs of different files, or a re-run of the
// survivors after new tests), a later outcome of the same mutant replaces an earlier one.
//   node scripts/mutants-table.mjs target/mutants/mutants.out/outcomes.json [more.json ...]
import { readFileSync } from "node:fs";

const paths = process.argv.slice(2);
if (paths.length === 0) {
  console.error("usage: node scripts/mutants-table.mjs <mutants.out/outcomes.json> ...");
  process.exit(1);
}
const column = { CaughtMutant: "caught", MissedMutant: "missed", Timeout: "timeout", Unviable: "unviable" };

const latest = new Map(); // mutant name -> { file, key }
for (const path of paths) {
  for (const { scenario, summary } of JSON.parse(readFileSync(path, "utf8")).outcomes) {
    const mutant = scenario?.Mutant;
    if (!mutant) continue; // the unmutated baseline
    const key = column[summary];
    if (!key) throw new Error(`unexpected outcome ${summary} for ${mutant.name}`);
    latest.set(mutant.name, { file: mutant.file, key });
  }
}
const files = new Map();
const missed = [];
for (const [name, { file, key }] of latest) {
  const row = files.get(file) ?? { caught: 0, missed: 0, timeout: 0, unviable: 0 };
  row[key] += 1;
  files.set(file, row);
  if (key === "missed") missed.push(name);
}

const share = (r) => {
  const viable = r.caught + r.missed + r.timeout;
  return viable === 0 ? "-" : `${((100 * (r.caught + r.timeout)) / viable).toFixed(1)}%`;
};
const total = { caught: 0, missed: 0, timeout: 0, unviable: 0 };
const lines = [["file", "caught", "missed", "timeout", "unviable", "caught of viable"]];
for (const [file, r] of [...files].sort(([a], [b]) => a.localeCompare(b))) {
  for (const k of Object.keys(total)) total[k] += r[k];
  lines.push([file, r.caught, r.missed, r.timeout, r.unviable, share(r)]);
}
lines.push(["total", total.caught, total.missed, total.timeout, total.unviable, share(total)]);
const widths = lines[0].map((_, i) => Math.max(...lines.map((l) => String(l[i]).length)));
for (const l of lines) {
  console.log(l.map((c, i) => (i === 0 ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join("  "));
}
if (missed.length) {
  console.log(`\nmissed (${missed.length}):`);
  for (const name of missed) console.log(`  ${name}`);
}
