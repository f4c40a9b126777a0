/**
 * CSRF protection for cookie sessions: the synchronizer-token pattern with a per-session secret
 * and a freshly masked token per page (so the token in a compressed page never repeats, after
 * BREACH), checked in constant time; and the request's `Sec-Fetch-Site` and `Origin` headers as
 * a second layer.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { describe } from './duration.js';
import { HttpError } from './errors.js';
import type { Middleware } from './route-group.js';
import type { SessionData } from './storage/storage.js';

/** Bytes of a session's CSRF secret. */
const SECRET_BYTES = 32;

/** A new CSRF secret: 32 random bytes, base64url. */
export function newCsrfSecret(): string {
  return randomBytes(SECRET_BYTES).toString('base64url');
}

/**
 * A token for `secret`, masked afresh: base64url of a random mask followed by the secret XOR
 * the mask. Every call gives a different token; each verifies against the same secret.
 */
export function maskCsrfToken(secret: string): string {
  const key = Buffer.from(secret, 'base64url');
  const mask = randomBytes(key.length);
  const out = Buffer.allocUnsafe(key.length * 2);
  mask.copy(out, 0);
  for (let i = 0; i < key.length; i++) out[key.length + i] = (key[i] as number) ^ (mask[i] as number);
  return out.toString('base64url');
}

/** Whether `token` was made by {@link maskCsrfToken} from `secret`; compared in constant time. */
export function verifyCsrfToken(secret: string, token: unknown): boolean {
  if (typeof token !== 'string' || token.length > 200) return false;
  const key = Buffer.from(secret, 'base64url');
  const raw = Buffer.from(token, 'base64url');
  if (key.length !== SECRET_BYTES || raw.length !== key.length * 2) return false;
  const unmasked = Buffer.allocUnsafe(key.length);
  for (let i = 0; i < key.length; i++) unmasked[i] = (raw[i] as number) ^ (raw[key.length + i] as number);
  return timingSafeEqual(unmasked, key);
}

/** Options of {@link csrf}. */
export interface CsrfOptions {
  /** The request header that may carry the token. @default 'x-csrf-token' */
  header?: string;
  /** The form field (or JSON body field) that may carry the token. @default '_csrf' */
  field?: string;
  /**
   * Origins besides the request's own that may send unsafe requests, such as
   * `'https://app.example.com'`. @default [] (only the request's own origin)
   */
  origins?: readonly string[];
}

/** Methods that change nothing, which the middleware lets through. */
const SAFE = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE']);

/**
 * A middleware that refuses, with 403, an unsafe request (`POST`, `PUT`, `PATCH`, `DELETE`, …)
 * that does not carry a valid token from `r.session.csrfToken()` in the `x-csrf-token` header
 * or the `_csrf` field of a form or JSON body; and, first, one that a browser says came from
 * another site (`Sec-Fetch-Site: cross-site`, or an `Origin` other than the request's own and
 * the allowed ones).
 *
 * @example
 * ```ts
 * s.use(csrf());
 * s.get('/form', (r) => r.response.write(`<input type="hidden" name="_csrf" value="${r.session.csrfToken()}">`));
 * s.post('/form', (r) => r.response.write('accepted'));
 * ```
 */
export function csrf<T extends object = SessionData>(options: CsrfOptions = {}): Middleware<T> {
  if (options === null || typeof options !== 'object') throw new TypeError(`option csrf is invalid: ${describe(options)} (expected an object)`);
  const { header = 'x-csrf-token', field = '_csrf', origins = [] } = options;
  if (typeof header !== 'string' || header === '') throw new TypeError(`option header is invalid: ${describe(header)} (expected a header name)`);
  if (typeof field !== 'string' || field === '') throw new TypeError(`option field is invalid: ${describe(field)} (expected a field name)`);
  if (!Array.isArray(origins) || !origins.every((o) => typeof o === 'string')) throw new TypeError(`option origins is invalid: ${describe(origins)} (expected an array of origins)`);
  const allowed = new Set(origins.map((o) => o.toLowerCase()));
  return async (r, next) => {
    if (!SAFE.has(r.method)) {
      if (!sameOrigin(r.header('sec-fetch-site'), r.header('origin'), r.header('host'), allowed)) {
        throw new HttpError(403, 'Forbidden: a cross-site request');
      }
      const token = r.header(header) ?? (await bodyField(r, field));
      if (!r.session.verifyCsrfToken(token)) throw new HttpError(403, 'Forbidden: a missing or invalid CSRF token');
    }
    await next();
  };
}

/** Whether the browser's own headers say the request comes from this site (absent: no verdict). */
function sameOrigin(fetchSite: string | undefined, origin: string | undefined, host: string | undefined, allowed: ReadonlySet<string>): boolean {
  if (origin !== undefined) {
    const o = origin.toLowerCase();
    if (allowed.has(o)) return true;
    if (o === 'null') return false;
    try {
      return host !== undefined && new URL(o).host === host.toLowerCase();
    } catch {
      return false;
    }
  }
  // No Origin: a browser that sends Sec-Fetch-Site still says where the request came from.
  return fetchSite !== 'cross-site';
}

/** The token from a form or JSON body, read through the request's own bounded readers. */
async function bodyField(r: { header(name: string): string | undefined; form(): Promise<URLSearchParams>; json(): Promise<unknown> }, field: string): Promise<string | undefined> {
  const type = (r.header('content-type') ?? '').split(';', 1)[0]?.trim().toLowerCase();
  if (type === 'application/x-www-form-urlencoded') return (await r.form()).get(field) ?? undefined;
  if (type === 'application/json') {
    const body = await r.json();
    if (body !== null && typeof body === 'object' && !Array.isArray(body) && Object.hasOwn(body, field)) {
      const v = (body as Record<string, unknown>)[field];
      return typeof v === 'string' ? v : undefined;
    }
  }
  return undefined;
}
