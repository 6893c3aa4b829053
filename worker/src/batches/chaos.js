// Fault injection for the tests of /v1/batches, read from EDGEBATCH_CHAOS (a JSON object) and
// only while the simulator is on (EDGEBATCH_SIM = "on": development, never production):
//   consumerCrashAfter: K   the consumer invocation throws once after K upstream replies,
//                           before committing them (its leases must run out and be redone)
//   ledgerResetAtCommit: N  the N-th commit call finds its batch object reset (ctx.abort())
//   consumerAlwaysFails     every work message throws (so it ends in the dead-letter queue)
// The first two fire once per isolate.
/** Events counted per knob, and the knobs that have fired. */
const counts = new Map();
const fired = new Set();

function chaosOf(env) {
  if (env.EDGEBATCH_SIM !== 'on' || !env.EDGEBATCH_CHAOS) return {};
  try {
    return JSON.parse(env.EDGEBATCH_CHAOS) ?? {};
  } catch {
    return {};
  }
}

/** Counts one event for `knob`; true once, when the count reaches the knob's number. */
function countdown(env, knob) {
  const at = chaosOf(env)[knob];
  const n = (counts.get(knob) ?? 0) + 1;
  counts.set(knob, n);
  if (!Number.isInteger(at) || fired.has(knob) || n < at) return false;
  fired.add(knob);
  return true;
}

/** Counts an upstream reply; true when the consumer should crash now. */
export const crashNow = (env) => countdown(env, 'consumerCrashAfter');

/** Counts a commit; true when the batch object should reset under it. */
export const resetNow = (env) => countdown(env, 'ledgerResetAtCommit');

/** True when every work message should fail. */
export function failAlways(env) {
  return chaosOf(env).consumerAlwaysFails === true;
}
