// Who may call the Worker, and the secrets that must never leave it: the bearer-token check
// and the redactor that every response line and log line goes through.

import { HttpError } from './http.js';

/**
 * Checks `Authorization: Bearer <token>` in constant time: both sides are hashed first so
 * neither the comparison nor an early length mismatch says how much of a guess was right.
 */
export async function checkBearer(request, expected) {
  if (!expected) {
    throw new HttpError(500, 'configuration_error', 'EDGEBATCH_TOKEN is not set on the Worker');
  }
  const header = request.headers.get('authorization') ?? '';
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!match || !(await equalSecret(match[1], expected))) {
    throw new HttpError(401, 'authentication_error', 'missing or wrong bearer token');
  }
}

async function equalSecret(a, b) {
  const enc = new TextEncoder();
  const [ha, hb] = await Promise.all([
    crypto.subtle.digest('SHA-256', enc.encode(a)),
    crypto.subtle.digest('SHA-256', enc.encode(b)),
  ]);
  if (typeof crypto.subtle.timingSafeEqual === 'function') return crypto.subtle.timingSafeEqual(ha, hb);
  const x = new Uint8Array(ha);
  const y = new Uint8Array(hb);
  let diff = 0;
  for (let i = 0; i < x.length; i++) diff |= x[i] ^ y[i];
  return diff === 0;
}

/** A run of this many characters of a secret is redacted wherever it shows up. */
export const REDACT_RUN = 8;
/** Secrets shorter than this are not redacted at all (they would match ordinary text). */
const MIN_SECRET = 6;
/** Mask characters upstreams put between the prefix and suffix they echo of a key. */
const MASK = '(?:[*\u2022\u00b7\u2026]|\\.{2,})+';
const escape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * Replaces secrets in a string with `[redacted]`: a whole secret; any run of REDACT_RUN or more
 * of its characters (an upstream that echoes part of a key); and a masked echo, a prefix of it
 * (optional), mask characters, then its last 4..8 characters (`sk-ab…wxyz`, `sk-proj-12****wxyz`,
 * OpenAI's "Incorrect API key provided" style).
 */
export function redactor(secrets) {
  const list = [...new Set(secrets.filter((s) => typeof s === 'string' && s.length >= MIN_SECRET))];
  if (list.length === 0) return (s) => s;
  const long = list.filter((s) => s.length >= REDACT_RUN);
  const alternatives = (parts) => [...new Set(parts)].sort((a, b) => b.length - a.length).map(escape).join('|');
  const windows = long.flatMap((s) => Array.from({ length: s.length - REDACT_RUN + 1 }, (_, i) => s.slice(i, i + REDACT_RUN)));
  const runs = windows.length > 0 ? new RegExp(alternatives(windows), 'g') : null;
  const masked = long.length > 0
    ? new RegExp(`(?:${alternatives(long.flatMap((s) => prefixes(s)))})?${MASK}(?:${alternatives(long.flatMap((s) => suffixes(s)))})`, 'g')
    : null;
  const inSecret = (part) => long.some((s) => s.includes(part));
  return (text) => {
    let out = text;
    for (const secret of list) if (out.includes(secret)) out = out.split(secret).join('[redacted]');
    if (masked) out = out.replace(masked, '[redacted]');
    if (runs) out = redactRuns(out, runs, inSecret);
    return out;
  };
}

/** Prefixes of a secret an upstream might echo: 2 characters up to all but its last 4. */
function prefixes(secret) {
  return Array.from({ length: Math.max(0, secret.length - 5) }, (_, i) => secret.slice(0, i + 2));
}

/** The last 4..8 characters of a secret (what a masked echo keeps at the end). */
function suffixes(secret) {
  return [4, 5, 6, 7, 8].filter((n) => n < secret.length).map((n) => secret.slice(-n));
}

/** Each match of `runs` (a window of a secret), grown both ways while it stays inside one. */
function redactRuns(text, runs, inSecret) {
  let out = '';
  let from = 0;
  runs.lastIndex = 0;
  for (let m = runs.exec(text); m !== null; m = runs.exec(text)) {
    let start = m.index;
    let end = m.index + m[0].length;
    while (end < text.length && inSecret(text.slice(start, end + 1))) end += 1;
    while (start > from && inSecret(text.slice(start - 1, end))) start -= 1;
    out += `${text.slice(from, start)}[redacted]`;
    from = end;
    runs.lastIndex = end;
  }
  return out + text.slice(from);
}
