/**
 * The buffered response: a handler writes into it, and the server sends it once, after the
 * handler and the session's commit have finished.
 */
import type { OutgoingHttpHeader, ServerResponse } from 'node:http';
import { describe } from './duration.js';

/** A value {@link Response.write} accepts. */
export type WriteValue = string | Uint8Array | number | boolean | null | undefined | object;

const JSON_TYPE = 'application/json; charset=utf-8';
const TEXT_TYPE = 'text/plain; charset=utf-8';
const BYTES_TYPE = 'application/octet-stream';

// RFC 9110 field-name = token.
const HEADER_NAME_RE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// RFC 9110 field-value = *( VCHAR / obs-text / SP / HTAB ): anything else (CR, LF, NUL, other
// controls, characters above U+00FF) is refused, as node:http would refuse it at send time.
const HEADER_VALUE_BAD_RE = /[^\t\x20-\x7e\x80-\xff]/;

/**
 * The response of one request. Nothing is sent until the handler (and the session's commit)
 * has finished; then the status, headers and body go out in one `end()`.
 */
export class Response {
  /** The `ServerResponse`, for a handler that streams: once it sends headers, the server sends nothing. */
  readonly raw: ServerResponse;
  #status = 200;
  /** Headers set so far, by lower-case name; made on the first. */
  #headers: Map<string, [string, OutgoingHttpHeader]> | undefined;
  /** The body written so far: nothing, one chunk (the commonest), or several. */
  #chunks: string | Uint8Array | (string | Uint8Array)[] | undefined;
  /** 'empty' until written; 'json' while the body is exactly one JSON value; else 'text' or 'bytes'. */
  #kind: 'empty' | 'json' | 'text' | 'bytes' = 'empty';

  constructor(raw: ServerResponse) {
    this.raw = raw;
  }

  /**
   * Appends values to the body: strings and bytes as they are, numbers and booleans as text,
   * `null` and `undefined` as nothing, objects and arrays as JSON. A body that is exactly one
   * object or array is sent as `application/json`, anything else as `text/plain` (only bytes:
   * `application/octet-stream`), unless a `Content-Type` was set.
   */
  write(...values: WriteValue[]): this {
    for (const v of values) {
      if (v === null || v === undefined) continue;
      if (typeof v === 'string') {
        this.#push(v, 'text');
      } else if (v instanceof Uint8Array) {
        this.#push(v, 'bytes');
      } else if (typeof v === 'number' || typeof v === 'boolean') {
        this.#push(String(v), 'text');
      } else if (typeof v === 'object') {
        this.#push(toJson(v), 'json');
      } else {
        throw new TypeError(`response value is invalid: ${describe(v)}`);
      }
    }
    return this;
  }

  /** Replaces the body with `value` as JSON, sent as `application/json`. */
  writeJson(value: unknown): this {
    this.#chunks = toJson(value);
    this.#kind = 'json';
    return this;
  }

  /** Sets the status code (an integer from 200 to 599). Chainable. */
  status(code: number): this {
    // 1xx are interim answers, not a final status: a client would wait for the real one.
    if (!Number.isInteger(code) || code < 200 || code > 599) {
      throw new TypeError(`response status is invalid: ${describe(code)} (expected an integer from 200 to 599)`);
    }
    this.#status = code;
    return this;
  }

  /** The status code that will be sent. */
  get statusCode(): number {
    return this.#status;
  }

  /**
   * Sets a header, replacing an earlier value of the same name (case-insensitive). Names and
   * values are checked: CR, LF, NUL, other controls or characters above U+00FF throw a
   * `TypeError`. Prefer `r.cookie.set` for cookies: a raw `Set-Cookie` set here is sent before them.
   */
  header(name: string, value: string | number | readonly string[]): this {
    if (typeof name !== 'string' || !HEADER_NAME_RE.test(name)) {
      throw new TypeError(`header name is invalid: ${describe(name)}`);
    }
    const values = Array.isArray(value) ? value : [value];
    for (const v of values) {
      if ((typeof v !== 'string' && typeof v !== 'number') || HEADER_VALUE_BAD_RE.test(String(v))) {
        throw new TypeError(`header ${name} value is invalid: ${describe(v)}`);
      }
    }
    (this.#headers ??= new Map()).set(name.toLowerCase(), [name, Array.isArray(value) ? [...(value as string[])] : String(value)]);
    return this;
  }

  /** The value of a header set so far, or `undefined`. */
  getHeader(name: string): OutgoingHttpHeader | undefined {
    return this.#headers?.get(name.toLowerCase())?.[1];
  }

  /** Redirects to `location` with `code` (default 302) and an empty body. */
  redirect(location: string, code = 302): this {
    if (!Number.isInteger(code) || code < 300 || code > 399) {
      throw new TypeError(`redirect status is invalid: ${describe(code)} (expected an integer from 300 to 399)`);
    }
    // The header first: a bad location throws before the status changes.
    this.header('Location', location).status(code);
    this.#chunks = undefined;
    this.#kind = 'empty';
    return this;
  }

  /** Drops the status, headers and body written so far (used when a request fails). */
  reset(status: number, body: string): void {
    this.#status = status;
    this.#headers = undefined;
    this.#chunks = body;
    this.#kind = 'text';
  }

  /** Whether the handler took over `raw` and sent headers itself. */
  get takenOver(): boolean {
    return this.raw.headersSent || this.raw.writableEnded;
  }

  /**
   * Sends the status, headers, the given cookies and the body, in one `end()`. Node computes
   * `Content-Length` itself for a body given whole to `end()`.
   */
  send(setCookies: Iterable<string> | undefined): void {
    const res = this.raw;
    if (this.takenOver) return;
    const chunks = this.#chunks;
    const body = chunks === undefined ? '' : Array.isArray(chunks) ? Buffer.concat(chunks.map((c) => (typeof c === 'string' ? Buffer.from(c) : c))) : chunks;
    const headers = this.#headers;
    if (headers !== undefined) for (const [name, value] of headers.values()) res.setHeader(name, value);
    if (setCookies !== undefined) {
      const cookies = [...setCookies];
      if (cookies.length > 0) {
        // A Set-Cookie the handler set as a raw header stays, before the jar's cookies.
        const own = headers?.get('set-cookie')?.[1];
        res.setHeader('Set-Cookie', own === undefined ? (cookies.length === 1 ? (cookies[0] as string) : cookies) : [...(Array.isArray(own) ? own : [String(own)]), ...cookies]);
      }
    }
    res.statusCode = this.#status;
    if (this.#status === 204 || this.#status === 304) {
      res.end();
      return;
    }
    if (this.#kind !== 'empty' && headers?.has('content-type') !== true) {
      res.setHeader('Content-Type', this.#kind === 'json' ? JSON_TYPE : this.#kind === 'text' ? TEXT_TYPE : BYTES_TYPE);
    }
    // Node leaves out the body of a HEAD answer, and with it the length it would compute.
    if (res.req?.method === 'HEAD') res.setHeader('Content-Length', typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength);
    res.end(body);
  }

  #push(chunk: string | Uint8Array, kind: 'json' | 'text' | 'bytes'): void {
    if (this.#kind === 'empty') this.#kind = kind;
    else if (this.#kind === 'json' || kind === 'text' || kind === 'json') this.#kind = 'text';
    const chunks = this.#chunks;
    if (chunks === undefined) this.#chunks = chunk;
    else if (Array.isArray(chunks)) chunks.push(chunk);
    else this.#chunks = [chunks, chunk];
  }
}

function toJson(value: unknown): string {
  const s = JSON.stringify(value);
  return s === undefined ? 'null' : s;
}
