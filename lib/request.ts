/**
 * The request `r` a handler receives: what the client sent, the route's parameters, bounded
 * body readers, the cookie jar, the session and the response.
 */
import type { IncomingMessage } from 'node:http';
import { type CookieOptions, parseCookie, serializeCookie } from './cookie.js';
import { HttpError } from './errors.js';
import type { Params } from './router.js';
import type { Response } from './response.js';
import type { JsonValue } from './storage/storage.js';

/**
 * The cookies of a request and the ones its response will set. A name set twice is sent once,
 * with the last value: the response carries exactly one `Set-Cookie` per name.
 */
export class CookieJar {
  readonly #header: string | undefined;
  #parsed: Record<string, string> | undefined;
  readonly #defaults: CookieOptions;
  #pending: Map<string, string> | undefined;

  /** Pending `Set-Cookie` values by cookie name (made on first use). */
  get pending(): Map<string, string> {
    this.#pending ??= new Map();
    return this.#pending;
  }

  /** Whether any cookie is pending, without making the map. */
  get hasPending(): boolean {
    return this.#pending !== undefined && this.#pending.size > 0;
  }

  constructor(header: string | undefined, defaults: CookieOptions) {
    this.#header = header;
    this.#defaults = defaults;
  }

  /** The value of the request's cookie `name`, or `undefined`. */
  get(name: string): string | undefined {
    this.#parsed ??= parseCookie(this.#header);
    return this.#parsed[name];
  }

  /**
   * Sets cookie `name` on the response. Options fall back to `Path=/; SameSite=Lax`; a bad name,
   * value or option throws a `TypeError` at once.
   */
  set(name: string, value: string, options?: CookieOptions): this {
    this.pending.set(name, serializeCookie(name, value, { ...this.#defaults, ...options }));
    return this;
  }

  /** Expires cookie `name` on the client, with the same `Path` and `Domain` it was set with. */
  remove(name: string, options?: Pick<CookieOptions, 'path' | 'domain' | 'secure' | 'sameSite' | 'httpOnly' | 'partitioned'>): this {
    const { path, domain, secure, sameSite, httpOnly, partitioned } = { ...this.#defaults, ...options };
    const attrs: CookieOptions = { maxAge: 0, expires: new Date(0) };
    if (path !== undefined) attrs.path = path;
    if (domain !== undefined) attrs.domain = domain;
    if (secure !== undefined) attrs.secure = secure;
    if (sameSite !== undefined) attrs.sameSite = sameSite;
    if (httpOnly !== undefined) attrs.httpOnly = httpOnly;
    if (partitioned !== undefined) attrs.partitioned = partitioned;
    this.pending.set(name, serializeCookie(name, '', attrs));
    return this;
  }

  /** Drops every pending cookie (used when a request fails). */
  clear(): void {
    this.#pending?.clear();
  }
}

/** Reads a request body into a `Buffer`, refusing more than `limit` bytes with a 413. */
export async function readBody(raw: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = raw.headers['content-length'];
  if (declared !== undefined && Number(declared) > limit) {
    raw.resume();
    throw new HttpError(413);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of raw as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) {
      throw new HttpError(413);
    }
    chunks.push(chunk);
  }
  return chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks);
}

/** What the server hands to each request. */
export interface RequestContext {
  readonly bodyLimit: number;
  readonly cookieDefaults: CookieOptions;
}

/**
 * One request, as the handler sees it. `S` is the session's type, filled in by the server.
 */
export class Request<S = unknown> {
  /** The `IncomingMessage`. */
  readonly raw: IncomingMessage;
  /** The method, upper case. */
  readonly method: string;
  /** The path, without the query string, as the client sent it (percent-encoded). */
  readonly path: string;
  /** Route parameters: a null-prototype record, values percent-decoded (frozen and shared when the route has none). */
  params: Params;
  /** The response, sent after the handler and the session's commit. */
  readonly response: Response;
  /** The session, loaded before the handler when the request carries an id. */
  session!: S;
  readonly #rawQuery: string;
  readonly #bodyLimit: number;
  readonly #cookieDefaults: CookieOptions;
  #cookie: CookieJar | undefined;
  #url: URL | undefined;
  #query: URLSearchParams | undefined;
  #body: Promise<Buffer> | undefined;
  #fields: ((name: string) => JsonValue | undefined) | undefined;

  constructor(raw: IncomingMessage, response: Response, context: RequestContext, params: Params) {
    this.raw = raw;
    this.method = raw.method ?? 'GET';
    const target = raw.url ?? '/';
    const q = target.indexOf('?');
    this.path = q === -1 ? target : target.slice(0, q);
    this.#rawQuery = q === -1 ? '' : target.slice(q + 1);
    this.params = params;
    this.response = response;
    this.#bodyLimit = context.bodyLimit;
    this.#cookieDefaults = context.cookieDefaults;
  }

  /** The request's cookies and the ones the response sets. */
  get cookie(): CookieJar {
    // Made on first use: most requests neither read a cookie nor set one besides the session's.
    this.#cookie ??= new CookieJar(this.raw.headers.cookie, this.#cookieDefaults);
    return this.#cookie;
  }

  /** @internal The `Set-Cookie` values pending, or `undefined` when none is (without making the jar). */
  get pendingCookies(): Iterable<string> | undefined {
    const jar = this.#cookie;
    return jar !== undefined && jar.hasPending ? jar.pending.values() : undefined;
  }

  /** The full URL (built on first use). Host comes from the `Host` header, else `localhost`. */
  get url(): URL {
    if (this.#url === undefined) {
      const host = this.raw.headers.host ?? 'localhost';
      try {
        this.#url = new URL(this.raw.url ?? '/', `http://${host}`);
      } catch {
        this.#url = new URL(this.raw.url ?? '/', 'http://localhost');
      }
    }
    return this.#url;
  }

  /** The query string's parameters. */
  get query(): URLSearchParams {
    this.#query ??= new URLSearchParams(this.#rawQuery);
    return this.#query;
  }

  /** A request header's value (several values joined with `, `), or `undefined`. */
  header(name: string): string | undefined {
    // `headers` is a plain object: only its own keys are headers (not `constructor`).
    const key = name.toLowerCase();
    const v = Object.hasOwn(this.raw.headers, key) ? this.raw.headers[key] : undefined;
    return Array.isArray(v) ? v.join(', ') : v;
  }

  /**
   * A value by name: the route parameter, else the query parameter, else a field of a body
   * already read by {@link Request.form} or {@link Request.json}.
   */
  get(name: string): JsonValue | undefined {
    const p = this.params[name];
    if (p !== undefined) return p;
    const q = this.query.get(name);
    if (q !== null) return q;
    return this.#fields?.(name);
  }

  /** The body as UTF-8 text; over the body limit: a 413. */
  async text(): Promise<string> {
    return (await this.#bytes()).toString('utf8');
  }

  /** The body parsed as JSON; malformed: a 400; over the body limit: a 413. */
  async json<T = JsonValue>(): Promise<T> {
    const text = await this.text();
    let value: JsonValue;
    try {
      value = JSON.parse(text) as JsonValue;
    } catch (err) {
      throw new HttpError(400, 'Bad Request: the body is not valid JSON', { cause: err });
    }
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
      const obj = value;
      this.#fields = (name) => (Object.hasOwn(obj, name) ? obj[name] : undefined);
    }
    return value as T;
  }

  /** The body parsed as `application/x-www-form-urlencoded`; over the body limit: a 413. */
  async form(): Promise<URLSearchParams> {
    const form = new URLSearchParams(await this.text());
    this.#fields = (name) => form.get(name) ?? undefined;
    return form;
  }

  #bytes(): Promise<Buffer> {
    this.#body ??= readBody(this.raw, this.#bodyLimit);
    return this.#body;
  }
}
