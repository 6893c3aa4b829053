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
