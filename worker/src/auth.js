// @ts-check
// Who may call the Worker, and the secrets that must never leave it: named bearer tokens
// (authenticate), which upstream key a batch sends (upstreamKey), and the redactor that every
// response line and log line goes through.

import { upstreamSecrets } from './config.js';
import { badRequest, HttpError } from './http.js';

/** A token's name: what its limits and usage are kept under, and what errors say. */
const TOKEN_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

/**
 * @typedef {Record<string, unknown>} Env
 * @typedef {{ name: string, hash: Uint8Array }} Token
 */

/**
 * The tokens the Worker accepts, as [{ name, hash }] (hash: 32 bytes). `EDGEBATCH_TOKENS` is a
 * comma-separated list of `name:sha256hex` (the hex SHA-256 of the token, so the secret store
 * never holds a usable token list: `printf %s "$token" | sha256sum`); `EDGEBATCH_TOKEN`, a
 * plain token, is one more, named "default". A malformed entry is a configuration error that
 * names its position, never its value.
 * @param {Env} env
 * @returns {Promise<Token[]>}
 */
export async function tokensOf(env) {
  const out = configuredTokens(env).map(({ name, hex }) => ({ name, hash: Uint8Array.from(hex.match(/../g) ?? [], (h) => parseInt(h, 16)) }));
  if (typeof env.EDGEBATCH_TOKEN === 'string' && env.EDGEBATCH_TOKEN) out.push({ name: 'default', hash: await sha256(env.EDGEBATCH_TOKEN) });
  return out;
}

/**
 * The named entries of EDGEBATCH_TOKENS, checked (a malformed entry, or a name given twice,
 * EDGEBATCH_TOKEN's "default" included, is a 500 `configuration_error`).
 * @param {Env} env
 * @returns {{ name: string, hex: string }[]}
 */
function configuredTokens(env) {
  const raw = typeof env.EDGEBATCH_TOKENS === 'string' ? env.EDGEBATCH_TOKENS : '';
  /** @type {{ name: string, hex: string }[]} */
  const out = [];
  raw.split(',').forEach((part, i) => {
    const entry = part.trim();
    if (entry === '') return;
    const m = /^([^:]+):([0-9a-fA-F]{64})$/.exec(entry);
    if (!m || !TOKEN_NAME.test(m[1])) {
      throw new HttpError(500, 'configuration_error',
        `EDGEBATCH_TOKENS entry ${i + 1} must be name:sha256hex (name: 1-64 of A-Z a-z 0-9 _ . -; 64 hex digits)`);
    }
    out.push({ name: m[1], hex: m[2] });
  });
  const names = [...out.map((t) => t.name), ...(env.EDGEBATCH_TOKEN ? ['default'] : [])];
  const twice = names.find((n, i) => names.indexOf(n) !== i);
  if (twice) throw new HttpError(500, 'configuration_error', `token name ${twice} is configured twice (EDGEBATCH_TOKENS, EDGEBATCH_TOKEN = "default")`);
  return out;
}

/**
 * Whether the token named `name` (a batch's owner) is still configured: revoking a token is
 * taking it out of EDGEBATCH_TOKENS (or unsetting EDGEBATCH_TOKEN, for "default"); a token
 * replaced under the same name stays active (limits and batches belong to the name). Cheap:
 * reads the Worker's vars only (no hashing, no Durable Object), so a consumer can ask before
 * every batch it runs. A malformed EDGEBATCH_TOKENS throws the same 500 `configuration_error`
 * as authenticate: that says nothing about the owner (do not treat it as revoked).
 * @param {Env} env
 * @param {string} name
 * @returns {boolean}
 */
export function ownerActive(env, name) {
  const raw = typeof env.EDGEBATCH_TOKENS === 'string' ? env.EDGEBATCH_TOKENS : '';
  let names = activeNames.get(raw);
  if (!names) {
    names = new Set(configuredTokens({ EDGEBATCH_TOKENS: raw }).map((t) => t.name));
    activeNames.clear(); // one entry: the secret changes only with a new deployment
    activeNames.set(raw, names);
  }
  const plain = typeof env.EDGEBATCH_TOKEN === 'string' && env.EDGEBATCH_TOKEN !== '';
  if (plain && names.has('default')) configuredTokens(env); // throws: "default" configured twice
  return names.has(name) || (plain && name === 'default');
}

/** @type {Map<string, Set<string>>} EDGEBATCH_TOKENS -> its names (ownerActive's cache) */
const activeNames = new Map();

/**
 * Who is calling: `Authorization: Bearer <token>` checked against every configured token in
 * constant time (the presented token is hashed, and every hash is compared in full, with no
 * early exit), so neither timing nor length says how much of a guess was right.
 * @returns {Promise<{ name: string, token: string }>} the token's name (and the token itself,
 *   for the redactor); throws 401 for a missing or wrong token, 500 when none is configured
 */
/**
 * @param {Request} request
 * @param {Env} env
 */
export async function authenticate(request, env) {
  const tokens = await tokensOf(env);
  if (tokens.length === 0) {
    throw new HttpError(500, 'configuration_error', 'no token is configured: set the Worker secret EDGEBATCH_TOKENS (or EDGEBATCH_TOKEN)');
  }
  const header = request.headers.get('authorization') ?? '';
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  const presented = await sha256(match ? match[1] : '');
  /** @type {string | null} */
  let found = null;
  for (const t of tokens) if (equalHashes(presented, t.hash) && match) found ??= t.name;
  if (found === null || !match) throw new HttpError(401, 'authentication_error', 'missing or wrong bearer token');
  return { name: found, token: match[1] };
}

/** @param {string} text */
async function sha256(text) {
  return new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text)));
}

/**
 * @param {Uint8Array} a
 * @param {Uint8Array} b
 */
function equalHashes(a, b) {
  const subtle = /** @type {SubtleCrypto & { timingSafeEqual?: (a: Uint8Array, b: Uint8Array) => boolean }} */ (crypto.subtle);
  if (typeof subtle.timingSafeEqual === 'function') return subtle.timingSafeEqual(a, b);
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

/**
 * The upstream key a batch sends: the client's own (only if EDGEBATCH_ALLOW_CLIENT_KEYS), a
 * placeholder for the simulator (a real key must never reach it), else the Worker's secret.
 * @param {{ provider: string, keyVar: string, clientKey?: unknown, toSim: boolean }} which
 * @param {{ allowClientKeys: boolean, keys: Record<string, string | undefined> }} config
 * @returns {string}
 */
export function upstreamKey({ provider, keyVar, clientKey, toSim }, config) {
  if (clientKey !== undefined) {
    if (!config.allowClientKeys) {
      throw badRequest(`provider.apiKey is not accepted: this Worker uses its own ${keyVar} secret`);
    }
    if (typeof clientKey !== 'string' || clientKey.length === 0) throw badRequest('provider.apiKey must be a non-empty string');
    return clientKey;
  }
  if (toSim) return 'sim-key';
  const key = config.keys[provider];
  if (!key) throw new HttpError(500, 'configuration_error', `no API key for ${provider}: set the Worker secret ${keyVar}`);
  return key;
}

/**
 * Every secret the Worker knows, plus the caller's token (the configured ones are hashes): the
 * keys of the operator's own upstreams (EDGEBATCH_UPSTREAMS) too, so that every route's
 * redactor scrubs a fallback's key.
 * @param {Env} env
 * @param {string} [presentedToken]
 * @returns {unknown[]}
 */
export function secretsOf(env, presentedToken) {
  return [env.EDGEBATCH_TOKEN, env.ANTHROPIC_API_KEY, env.OPENAI_API_KEY, presentedToken, ...upstreamSecrets(env)];
}

/** A run of this many characters of a secret is redacted wherever it shows up. */
export const REDACT_RUN = 8;
/** Secrets shorter than this are not redacted at all (they would match ordinary text). */
const MIN_SECRET = 6;
/** Mask characters upstreams put between the prefix and suffix they echo of a key. */
const MASK = '(?:[*\u2022\u00b7\u2026]|\\.{2,})+';
/** @param {string} s */
const escape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * Replaces secrets in a string with `[redacted]`: a whole secret; any run of REDACT_RUN or more
 * of its characters (an upstream that echoes part of a key); and a masked echo, a prefix of it
 * (optional), mask characters, then its last 4..8 characters (`sk-ab…wxyz`, `sk-proj-12****wxyz`,
 * OpenAI's "Incorrect API key provided" style).
 */
/**
 * @param {unknown[]} secrets
 * @returns {(text: string) => string}
 */
export function redactor(secrets) {
  const list = [...new Set(secrets.filter((s) => typeof s === 'string' && s.length >= MIN_SECRET))].map(String);
  if (list.length === 0) return (s) => s;
  const long = list.filter((s) => s.length >= REDACT_RUN);
  /** @param {string[]} parts */
  const alternatives = (parts) => [...new Set(parts)].sort((a, b) => b.length - a.length).map(escape).join('|');
  const windows = long.flatMap((s) => Array.from({ length: s.length - REDACT_RUN + 1 }, (_, i) => s.slice(i, i + REDACT_RUN)));
  const runs = windows.length > 0 ? new RegExp(alternatives(windows), 'g') : null;
  const masked = long.length > 0
    ? new RegExp(`(?:${alternatives(long.flatMap((s) => prefixes(s)))})?${MASK}(?:${alternatives(long.flatMap((s) => suffixes(s)))})`, 'g')
    : null;
  /** @param {string} part */
  const inSecret = (part) => long.some((s) => s.includes(part));
  return (text) => {
    let out = text;
    for (const secret of list) if (out.includes(secret)) out = out.split(secret).join('[redacted]');
    if (masked) out = out.replace(masked, '[redacted]');
    if (runs) out = redactRuns(out, runs, inSecret);
    return out;
  };
}

/**
 * Prefixes of a secret an upstream might echo: 2 characters up to all but its last 4.
 * @param {string} secret
 */
function prefixes(secret) {
  return Array.from({ length: Math.max(0, secret.length - 5) }, (_, i) => secret.slice(0, i + 2));
}

/**
 * The last 4..8 characters of a secret (what a masked echo keeps at the end).
 * @param {string} secret
 */
function suffixes(secret) {
  return [4, 5, 6, 7, 8].filter((n) => n < secret.length).map((n) => secret.slice(-n));
}

/**
 * Each match of `runs` (a window of a secret), grown both ways while it stays inside one.
 * @param {string} text
 * @param {RegExp} runs
 * @param {(part: string) => boolean} inSecret
 */
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
