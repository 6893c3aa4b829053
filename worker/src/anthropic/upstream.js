// @ts-check
// Who the /anthropic routes call, and who is calling them.
//   upstreamOf   the Worker's Anthropic upstream: api.anthropic.com with the Worker's
//                ANTHROPIC_API_KEY, or, while the simulator is on (EDGEBATCH_SIM = "on"), the
//                in-process simulator (SIM_ORIGIN) with a placeholder key: a client never picks
//                the upstream or sends its key, the SDK's apiKey is the edgebatch token
//   callerOf     the token as the SDK sends it: `x-api-key` (apiKey) or `Authorization: Bearer`
//                (authToken), checked by auth.js like every other route
import { authenticate } from '../auth.js';
import { SIM_ORIGIN } from '../config.js';
import { badRequest, HttpError } from '../http.js';
import { parseProvider } from '../validate.js';

/**
 * The `anthropic-version` the client sent (the SDK always does), passed on upstream; no
 * `anthropic-beta` is passed on: a beta can turn on what the item rules do not look at.
 * @param {Request} request
 * @returns {string | undefined}
 */
export function versionOf(request) {
  const v = request.headers.get('anthropic-version');
  if (v === null) return undefined;
  if (!/^[\w.-]{1,40}$/.test(v)) throw badRequest('anthropic-version must be a short string such as "2023-06-01"');
  return v;
}

/**
 * The provider a call or a batch of these routes runs on (never the client's choice), as
 * validate.js reads it: `{ provider: { name, baseUrl, apiKey, version? }, header, missingKey }`;
 * `header` is what a stored batch is created with (it holds no key: the consumer takes the
 * Worker's). `missingKey`: the 500 to throw once the request is known to be valid.
 * @param {ReturnType<typeof import('../config.js').readConfig>} config
 * @param {string} origin
 * @param {string | undefined} version
 */
export function upstreamOf(config, origin, version) {
  const header = { name: 'anthropic', ...(config.simOn && { baseUrl: SIM_ORIGIN }), ...(version && { version }) };
  const { provider, missingKey } = parseProvider(header, config, origin);
  return { provider, header, missingKey };
}

/**
 * @param {Request} request
 * @param {Record<string, unknown>} env
 * @returns {Promise<{ name: string, token: string }>}
 */
export async function callerOf(request, env) {
  const apiKey = request.headers.get('x-api-key');
  // The SDK sends one of the two; with both, the Authorization header is the one checked.
  const asked = request.headers.has('authorization') || apiKey === null ? request
    : /** @type {Request} */ (/** @type {unknown} */ ({ headers: new Headers({ authorization: `Bearer ${apiKey.trim()}` }) }));
  try {
    return await authenticate(asked, env);
  } catch (err) {
    if (err instanceof HttpError && err.status === 401) err.message = 'missing or wrong token: send the edgebatch token as x-api-key (the SDK\'s apiKey) or Authorization: Bearer';
    throw err;
  }
}
