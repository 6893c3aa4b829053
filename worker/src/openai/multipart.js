// @ts-check
// The upload of POST /files, read as bytes and parsed here rather than by `formData()`: the
// isolate then holds the body once (one Uint8Array, the parts being views into it), where
// decoding it to a string, parsing a form and reading the file's text would hold it three or
// four times (a 32 MiB upload with one non-Latin-1 character was ~190 MB, over a Worker's 128).
//   readUpload      the body, at most `limit` bytes (413), stalls refused (408); with a
//                   Content-Length the buffer is that size and each chunk is copied in as it
//                   comes, without one the chunks are joined at the end (twice the body, once)
//   parseMultipart  RFC 7578's form-data: each part's name, filename and a view of its bytes
import { HttpError, readBefore } from '../http.js';
import { invalid } from './errors.js';

/** What an oversize body is still read for, so the client reads the 413 (http.js's drain). */
const DRAIN_MS = 2_000;
const DRAIN_BYTES = 8 * 1024 * 1024;
const CR = 0x0d;
const LF = 0x0a;
/** RFC 2046: a boundary is 1 to 70 characters. */
const BOUNDARY = /^[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]$/;

/**
 * @typedef {{ name: string, filename: string | null, bytes: Uint8Array }} Part filename: null for
 *   a part without one (a plain field); bytes: a view into the body
 */

/**
 * The request body as bytes.
 * @param {Request} request
 * @param {number} limit
 * @param {number} stallMs the longest wait between two chunks
 * @param {(limit: number) => HttpError} tooLarge the 413
 * @returns {Promise<Uint8Array>}
 */
export async function readUpload(request, limit, stallMs, tooLarge) {
  const header = request.headers.get('content-length');
  const declared = header === null ? null : Number(header);
  if (declared !== null && declared > limit) throw tooLarge(limit);
  if (!request.body) return new Uint8Array(0);
  const reader = request.body.getReader();
  /** @type {Uint8Array | null} the whole body, when its length is known */
  const whole = declared !== null && Number.isSafeInteger(declared) && declared >= 0 ? new Uint8Array(declared) : null;
  /** @type {Uint8Array[]} */
  const chunks = [];
  let size = 0;
  for (;;) {
    const next = await readBefore(reader, Date.now() + stallMs);
    if (next === null) throw new HttpError(408, 'request_timeout', `the request body stalled: nothing arrived for ${stallMs} ms`);
    if (next.done) break;
    const chunk = next.value;
    if (size + chunk.byteLength > (whole ? whole.byteLength : limit)) {
      await dropRest(reader, size);
      if (whole) throw invalid(`the body is longer than its Content-Length (${whole.byteLength})`);
      throw tooLarge(limit);
    }
    if (whole) whole.set(chunk, size);
    else chunks.push(chunk);
    size += chunk.byteLength;
  }
  if (whole) return size === whole.byteLength ? whole : whole.subarray(0, size);
  const all = new Uint8Array(size);
  let at = 0;
  for (let i = 0; i < chunks.length; i++) {
    all.set(chunks[i], at);
    at += chunks[i].byteLength;
    chunks[i] = new Uint8Array(0); // collectable as soon as it is copied
  }
  return all;
}

/**
 * Reads and drops the rest of a refused body for a while (up to DRAIN_BYTES): answered before it
 * is read, a client may see its connection reset instead of the 413.
 * @param {ReadableStreamDefaultReader<Uint8Array>} reader @param {number} seen bytes read already
 */
async function dropRest(reader, seen) {
  const deadline = Date.now() + DRAIN_MS;
  for (let total = seen; total <= DRAIN_BYTES;) {
    const next = await readBefore(reader, deadline);
    if (next === null || next.done) return;
    total += next.value.byteLength;
  }
  await reader.cancel().catch(() => {});
}

/**
 * The parts of a multipart/form-data body.
 * @param {Uint8Array} body
 * @param {string} contentType the request's Content-Type (its boundary)
 * @returns {Part[]}
 */
export function parseMultipart(body, contentType) {
  const m = /;\s*boundary=(?:"([^"]*)"|([^;\s]*))/i.exec(contentType);
  const boundary = m ? (m[1] ?? m[2]) : '';
  if (!BOUNDARY.test(boundary)) throw invalid('the Content-Type has no valid multipart boundary', 'file');
  const dash = ascii(`--${boundary}`);
  const delimiter = ascii(`\r\n--${boundary}`);
  // The first boundary may open the body (no CRLF before it); what precedes it is a preamble.
  let at = dash.length;
  if (!startsWith(body, 0, dash)) {
    const first = find(body, delimiter, 0);
    if (first < 0) throw malformed('no boundary');
    at = first + delimiter.length;
  }
  /** @type {Part[]} */
  const parts = [];
  for (;;) {
    // After a boundary: `--` ends the body, else CRLF (after optional blanks) opens a part.
    if (body[at] === 0x2d && body[at + 1] === 0x2d) return parts;
    while (body[at] === 0x20 || body[at] === 0x09) at++;
    if (body[at] !== CR || body[at + 1] !== LF) throw malformed('a boundary not followed by CRLF');
    at += 2;
    const headEnd = find(body, ascii('\r\n\r\n'), at - 2);
    if (headEnd < 0) throw malformed('a part without the blank line after its headers');
    const head = new TextDecoder().decode(body.subarray(at, headEnd));
    const next = find(body, delimiter, headEnd + 4);
    if (next < 0) throw malformed('no closing boundary');
    parts.push({ ...disposition(head), bytes: body.subarray(headEnd + 4, next) });
    at = next + delimiter.length;
  }
}

/**
 * A part's name and filename, from its Content-Disposition header.
 * @param {string} head the part's headers
 * @returns {{ name: string, filename: string | null }}
 */
function disposition(head) {
  const line = head.split('\r\n').find((l) => /^content-disposition\s*:/i.test(l));
  if (!line) throw malformed('a part without Content-Disposition');
  /** @param {string} key */
  const param = (key) => {
    const p = new RegExp(`;\\s*${key}\\s*=\\s*(?:"((?:[^"\\\\]|\\\\.)*)"|([^;\\s]*))`, 'i').exec(line);
    if (!p) return null;
    return p[1] !== undefined ? p[1].replace(/\\(.)/g, '$1') : p[2];
  };
  const name = param('name');
  if (name === null) throw malformed('a part without a name');
  const star = param('filename\\*');
  let filename = param('filename');
  if (star !== null) {
    const enc = /^utf-8''(.*)$/i.exec(star);
    try {
      if (enc) filename = decodeURIComponent(enc[1]);
    } catch {
      // a filename* that does not decode: the plain filename stands
    }
  }
  return { name, filename };
}

/** @param {string} s @returns {Uint8Array} */
const ascii = (s) => new TextEncoder().encode(s);

/** @param {string} what */
const malformed = (what) => invalid(`the body is not valid multipart/form-data: ${what}`, 'file');

/** @param {Uint8Array} body @param {number} at @param {Uint8Array} needle */
function startsWith(body, at, needle) {
  if (at + needle.length > body.length) return false;
  for (let i = 0; i < needle.length; i++) if (body[at + i] !== needle[i]) return false;
  return true;
}

/**
 * Where `needle` next occurs in `body` from `from`, or -1. Its first byte is found by the
 * native indexOf (a CR here, rare in JSONL), the rest compared by hand.
 * @param {Uint8Array} body @param {Uint8Array} needle @param {number} from
 */
function find(body, needle, from) {
  for (let at = body.indexOf(needle[0], from); at >= 0; at = body.indexOf(needle[0], at + 1)) {
    if (startsWith(body, at, needle)) return at;
  }
  return -1;
}
