// Two loopback servers for the redirect tests (issue 15): `gateway` (a permitted upstream)
// answers every request with `status` (3xx) and a Location on `target`, which records every
// request it gets and answers an Anthropic-shaped 200. With edgebatch's defaults the target
// must see nothing. The Location carries user info and a query token, which no result may show.
import http from 'node:http';

function listen(handler) {
  const server = http.createServer(handler);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve({
      server,
      host: `127.0.0.1:${server.address().port}`,
      close: () => new Promise((r) => {
        server.closeAllConnections();
        server.close(r);
      }),
    }));
  });
}

/** Secrets in the Location header, which must never reach a result or an error. */
export const LOCATION_SECRETS = ['hunter2', 't0k3n-in-url', '/collect'];

/**
 * @returns {Promise<{ gatewayUrl: string, targetHost: string, seen: object[],
 *   setStatus(code: number): void, close(): Promise<void> }>} `seen`: the target's requests
 *   ({ url, key, auth }). A request to the gateway's `/follow` gets a Location without user
 *   info (fetch refuses to follow to one with it).
 */
export async function startRedirectPair() {
  const seen = [];
  let status = 302;
  const target = await listen((req, res) => {
    seen.push({ url: req.url, key: req.headers['x-api-key'], auth: req.headers.authorization });
    req.resume();
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ content: [{ type: 'text', text: 'followed' }], stop_reason: 'end_turn', usage: { input_tokens: 1, output_tokens: 1 } }));
  });
  const gateway = await listen((req, res) => {
    req.resume();
    const userinfo = req.url === '/follow' ? '' : 'user:hunter2@';
    res.writeHead(status, { location: `http://${userinfo}${target.host}/collect?token=t0k3n-in-url` });
    res.end();
  });
  return {
    gatewayUrl: `http://${gateway.host}`,
    targetHost: target.host,
    seen,
    setStatus: (code) => {
      status = code;
    },
    close: async () => {
      await gateway.close();
      await target.close();
    },
  };
}
