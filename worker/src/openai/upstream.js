// @ts-check
// Who the /openai routes call, and who is calling them.
//   upstreamOf   the Worker's OpenAI upstream: api.openai.com with the Worker's OPENAI_API_KEY,
//                or, while the simulator is on (EDGEBATCH_SIM = "on"), the in-process simulator
//                (SIM_ORIGIN) with a placeholder key: a client never picks the upstream or sends
//                its key, the SDK's apiKey is the edgebatch token
//   callerOf     the token as the SDK sends it (`Authorization: Bearer`), checked by auth.js
import { authenticate } from '../auth.js';
import { SIM_ORIGIN } from '../config.js';
import { HttpError } from '../http.js';
import { parseProvider } from '../validate.js';

/**
 * The provider a call or a batch of these routes runs on, as validate.js reads it:
 * `{ provider: { name, baseUrl, apiKey }, header, missingKey }`; `header` is what a stored batch
 * is created with (it holds no key: the consumer takes the Worker's). `missingKey`: the 500 to
 * throw once the request is known to be valid.
 * @param {ReturnType<typeof import('../config.js').readConfig>} config
 * @param {string} origin
 */
export function upstreamOf(config, origin) {
  const header = { name: 'openai', ...(config.simOn && { baseUrl: SIM_ORIGIN }) };
  const { provider, missingKey } = parseProvider(header, config, origin);
  return { provider, header, missingKey };
}

/**
 * @param {Request} request
 * @param {Record<string, unknown>} env
 * @returns {Promise<{ name: string, token: string }>}
 */
export async function callerOf(request, env) {
  try {
    return await authenticate(request, env);
  } catch (err) {
    // Never OpenAI's "Incorrect API key provided: sk-ab****wxyz": nothing of it is echoed.
    if (err instanceof HttpError && err.status === 401) {
      err.message = 'Incorrect API key provided: send the edgebatch token as the SDK\'s apiKey (Authorization: Bearer)';
    }
    throw err;
  }
}
