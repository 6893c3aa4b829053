// Flag checks shared by every command of the CLI: URLs, integer flags, the Worker and its token.
import process from 'node:process';
import { UsageError } from './results-file.mjs';

export function checkUrl(flag, s) {
  let u;
  try {
    u = new URL(s);
  } catch {
    throw new UsageError(`${flag} must be an http(s) URL, got ${JSON.stringify(s)}`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new UsageError(`${flag} must be an http(s) URL, got ${JSON.stringify(s)}`);
  }
}

/**
 * The edgebatch options the CLI takes as flags, in one place: parsing (`optionFlags`), the
 * integer check (`intFlags`) and the help lines (`optionHelp`) read this table. The ranges are
 * BatchProcessor's (src/options/mod.rs declares them; a usage error beats a stack trace); `caps`
 * of a command (a Worker's) narrow them. Adding a flag for an option is one line here.
 */
export const OPTION_FLAGS = {
  concurrency: { option: 'concurrency', min: 1, max: 10000, help: 'attempts in flight at once (default 8; on a Worker, its cap: 6)' },
  'max-retries': { option: 'maxRetries', min: 0, max: 100, help: 'retries per item after the first attempt (default 4)' },
  'timeout-ms': { option: 'timeoutMs', min: 1, max: 2147483647, help: 'per-attempt timeout (default 60000)' },
  'deadline-ms': { option: 'deadlineMs', min: 1, max: 2147483647, help: 'deadline for the whole run' },
};

/** parseArgs `options` for these option flags. */
export function optionFlags(flags) {
  return Object.fromEntries(flags.map((flag) => [flag, { type: 'string' }]));
}

/** The `intFlags` table of these option flags; `caps`: flag -> a lower max (a Worker's). */
export function optionInts(flags, caps = {}) {
  return Object.fromEntries(flags.map((flag) => {
    const { option, min, max } = OPTION_FLAGS[flag];
    return [flag, [option, min, caps[flag] ?? max]];
  }));
}

/** Help lines for these option flags, aligned like the rest of the help. */
export function optionHelp(flags) {
  return flags.map((flag) => `  ${`--${flag} N`.padEnd(22)}${OPTION_FLAGS[flag].help}`).join('\n');
}

/**
 * `table`: flag -> [option key, min, max]. Returns `{ key: n }` for the flags given in `values`;
 * a value that is not an integer in range is a usage error naming the flag.
 */
export function intFlags(values, table) {
  const out = {};
  for (const [flag, [key, min, max]] of Object.entries(table)) {
    if (values[flag] === undefined) continue;
    const n = Number(values[flag]);
    if (!/^\d+$/.test(values[flag]) || !Number.isSafeInteger(n) || n < min || n > max) {
      throw new UsageError(`--${flag} must be an integer in ${min}..=${max}, got ${JSON.stringify(values[flag])}`);
    }
    out[key] = n;
  }
  return out;
}

/**
 * `{ url, token }` of the Worker, from --worker and --token (or env EDGEBATCH_TOKEN). The batch
 * commands need one and also read env EDGEBATCH_WORKER; for `run` it is optional (no --worker:
 * in-process), and the environment never switches `run` to a Worker by itself.
 */
export function workerTarget(values, { required }) {
  const url = values.worker ?? (required ? process.env.EDGEBATCH_WORKER : undefined);
  if (url === undefined) {
    if (required) throw new UsageError('missing --worker URL (or env EDGEBATCH_WORKER): the edgebatch Worker to talk to');
    if (values.token !== undefined) throw new UsageError('--token only applies with --worker URL');
    return undefined;
  }
  checkUrl(values.worker === undefined ? 'EDGEBATCH_WORKER' : '--worker', url);
  const token = values.token ?? process.env.EDGEBATCH_TOKEN;
  if (!token) throw new UsageError('--worker needs --token T (or env EDGEBATCH_TOKEN)');
  return { url, token };
}
