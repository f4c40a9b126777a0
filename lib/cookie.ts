/**
 * Cookies: a lenient `Cookie` header parser and a strict `Set-Cookie` serializer, after
 * RFC 6265 and its revision RFC 6265bis. Pure functions and no imports: this module knows nothing
 * else of the library.
 *
 * Parsing never throws and runs in linear time. Serializing checks every part against the RFC
 * grammar and throws a `TypeError` naming the part, so a header can never be split or extended by
 * its input (CVE-2024-47764).
 */

/**
 * The most `name=value` pairs {@link parseCookie} examines in one header; the rest are ignored.
 * Browsers send at most 180 cookies to one site, so a real header stays under the bound.
 * A segment without `=` is not a pair and does not count.
 */
export const MAX_COOKIE_PAIRS = 200;

/**
 * The longest life a cookie may be given, in seconds: 400 days (34 560 000 s), the cap
 * RFC 6265bis sets on `Max-Age` and `Expires` and browsers apply.
 */
export const MAX_COOKIE_AGE_SECONDS = 34_560_000;

/**
 * The longest `name=value` a cookie may have, in bytes. RFC 6265bis has user agents drop a
 * cookie whose name and value together exceed 4096 bytes, so the serializer refuses one.
 */
export const MAX_COOKIE_NAME_VALUE_BYTES = 4096;

/**
 * The longest attribute value (`Path`, `Domain`) in bytes. RFC 6265bis has user agents ignore a
 * longer one.
 */
export const MAX_COOKIE_ATTRIBUTE_BYTES = 1024;

/**
 * Parses a `Cookie` request header into a null-prototype record of names to values.
 *
 * Lenient by design, after jshttp/cookie: it never throws (a value that is not a string gives an
 * empty record) and runs in linear time.
 * - Pairs are separated by `;`; a pair without `=` or with an empty name is ignored.
 * - Spaces and tabs around names and values are trimmed.
 * - The first occurrence of a name wins.
 * - A value wrapped in double quotes is unquoted.
 * - A value containing `%` is decoded with `decodeURIComponent`; a bad escape leaves it as sent.
 * - At most {@link MAX_COOKIE_PAIRS} pairs are examined.
 *
 * Names such as `__proto__` or `constructor` are ordinary own keys of the result, which has no
 * prototype: look names up with `record[name]` or `Object.hasOwn`, never `in` on a plain object.
 *
 * @param header - the `Cookie` header as received, or `undefined` when there is none
 * @returns a fresh record created with `Object.create(null)`
 * @example
 * ```ts
 * const cookies = parseCookie(req.headers.cookie);
 * const id = cookies['sid']; // string | undefined
 * ```
 */
export function parseCookie(header: string | undefined): Record<string, string> {
  const cookies = Object.create(null) as Record<string, string>;
  if (typeof header !== 'string') return cookies;
  const at: Pair = { nameStart: 0, nameEnd: 0, valueStart: 0, end: 0 };
  for (let index = 0, pairs = 0; (index = nextPair(header, index, at)) !== -1 && ++pairs <= MAX_COOKIE_PAIRS; ) {
    if (at.nameStart < at.nameEnd) {
      const name = header.slice(at.nameStart, at.nameEnd);
      if (cookies[name] === undefined) cookies[name] = readValue(header, at.valueStart, at.end);
    }
  }
  return cookies;
}

/**
 * The values of every cookie named `name` in a `Cookie` header, in the order sent, at most
 * `limit` of them. Same grammar as {@link parseCookie} (trimmed, unquoted, decoded when a `%`
 * is present, at most {@link MAX_COOKIE_PAIRS} pairs examined), but it compares names in place
 * and builds only the values asked for: the server reads its session cookie with it.
 *
 * A header may carry one name twice (a sibling subdomain can plant `sid=…` for the parent
 * domain, which the browser then sends beside the host's own): every value is returned, so the
 * caller can choose the first that is valid.
 *
 * @param header - the `Cookie` header as received, or `undefined`
 * @param name - the cookie name to look for
 * @param limit - the most values returned
 */
export function cookieValues(header: string | undefined, name: string, limit = 1): string[] {
  const values: string[] = [];
  if (typeof header !== 'string') return values;
  const at = SCRATCH;
  for (let index = 0, pairs = 0; values.length < limit && (index = nextPair(header, index, at)) !== -1 && ++pairs <= MAX_COOKIE_PAIRS; ) {
    if (at.nameEnd - at.nameStart === name.length && header.startsWith(name, at.nameStart)) values.push(readValue(header, at.valueStart, at.end));
  }
  return values;
}

/** Where a `name=value` pair lies in a header: its name (trimmed), and its value up to `end`. */
interface Pair {
  nameStart: number;
  nameEnd: number;
  valueStart: number;
  end: number;
}

/**
 * Where {@link cookieValues} keeps the pair it is at: one for the module, as the scan is
 * synchronous and calls nothing that scans again, so a request's lookup allocates no record.
 */
const SCRATCH: Pair = { nameStart: 0, nameEnd: 0, valueStart: 0, end: 0 };

/**
 * Finds the next `name=value` pair at or after `index`, skipping segments without `=`, and
 * writes where it lies into `at`. The one scanning loop of both readers: linear, no allocation.
 * @returns the index after the pair (past its `;`), or -1 when there is none
 */
function nextPair(header: string, index: number, at: Pair): number {
  const len = header.length;
  while (index < len) {
    const eq = header.indexOf('=', index);
    if (eq === -1) return -1;
    const semicolon = header.indexOf(';', index);
    const end = semicolon === -1 ? len : semicolon;
    if (eq > end) {
      // This segment has no '=': go straight to the segment that holds the next one.
      index = header.lastIndexOf(';', eq - 1) + 1;
      continue;
    }
    at.nameStart = skipOws(header, index, eq);
    at.nameEnd = skipOwsBack(header, eq, at.nameStart);
    at.valueStart = eq + 1;
    at.end = end;
    return end + 1;
  }
  return -1;
}

/** The index of the first character in `[start, end)` that is not SP or HTAB, else `end`. */
function skipOws(str: string, start: number, end: number): number {
  while (start < end && isOws(str.charCodeAt(start))) start++;
  return start;
}

/** One past the last character in `[start, end)` that is not SP or HTAB, else `start`. */
function skipOwsBack(str: string, end: number, start: number): number {
  while (end > start && isOws(str.charCodeAt(end - 1))) end--;
  return end;
}

// OWS = *( SP / HTAB )
function isOws(code: number): boolean {
  return code === 0x20 || code === 0x09;
}

/** The value in `[start, end)`: trimmed, unquoted, and decoded when it holds a `%`. */
function readValue(str: string, start: number, end: number): string {
  start = skipOws(str, start, end);
  end = skipOwsBack(str, end, start);
  if (end - start >= 2 && str.charCodeAt(start) === 0x22 && str.charCodeAt(end - 1) === 0x22) {
    start++;
    end--;
  }
  const raw = str.slice(start, end);
  if (!raw.includes('%')) return raw;
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

/** The `SameSite` values {@link serializeCookie} accepts; the output is capitalised. */
export type CookieSameSite = 'Strict' | 'Lax' | 'None' | 'strict' | 'lax' | 'none';

/** The `Priority` values {@link serializeCookie} accepts; the output is capitalised. */
export type CookiePriority = 'Low' | 'Medium' | 'High' | 'low' | 'medium' | 'high';

/**
 * Attributes of a `Set-Cookie` header. Every option may be left out (or `undefined`), and then
 * the attribute is not sent.
 */
export interface CookieOptions {
  /**
   * `Max-Age`: seconds until the cookie expires, an integer from 0 (expire now) to
   * {@link MAX_COOKIE_AGE_SECONDS} (400 days).
   * @default undefined (a session cookie, unless `expires` is set)
   */
  maxAge?: number | undefined;
  /**
   * `Expires`: when the cookie expires, a valid `Date` at most 400 days from now; a past date
   * expires it at once. Browsers prefer `Max-Age` when both are sent.
   * @default undefined
   */
  expires?: Date | undefined;
  /**
   * `Domain`: a host name (RFC 1034 labels, an optional leading dot) whose subdomains receive the
   * cookie too. Leave it out to send the cookie to the setting host only.
   * @default undefined
   */
  domain?: string | undefined;
  /**
   * `Path`: the path prefix the cookie is sent for; starts with `/`, no controls or `;`.
   * @default undefined (the browser uses the directory of the request path)
   */
  path?: string | undefined;
  /**
   * `Secure`: send the cookie over HTTPS only. Required by the `__Secure-` and `__Host-` name
   * prefixes, `SameSite=None` and `Partitioned`.
   * @default false
   */
  secure?: boolean | undefined;
  /**
   * `HttpOnly`: hide the cookie from page scripts.
   * @default false
   */
  httpOnly?: boolean | undefined;
  /**
   * `SameSite`: whether cross-site requests carry the cookie. `None` requires `secure`.
   * @default undefined (the browser's default, `Lax` in current browsers)
   */
  sameSite?: CookieSameSite | undefined;
  /**
   * `Partitioned` (CHIPS): keep the cookie in a jar per top-level site. Requires `secure`.
   * @default false
   */
  partitioned?: boolean | undefined;
  /**
   * `Priority`: which cookies a browser evicts last (a Chromium extension).
   * @default undefined
   */
  priority?: CookiePriority | undefined;
  /**
   * Turns the value into a cookie-value. The result must match the RFC 6265 cookie-value grammar
   * or {@link serializeCookie} throws. {@link parseCookie} decodes with `decodeURIComponent` when
   * a value holds `%`, so an encoder other than the default must agree with that for values to
   * come back unchanged.
   * @default the value as is when it is all cookie-octets without `%`, else `encodeURIComponent`
   */
  encode?: ((value: string) => string) | undefined;
}

/*
 * cookie-name       = token
 * token             = 1*tchar
 * tchar             = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." /
 *                     "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA
 *                     ; RFC 6265 section 4.1.1, token as in RFC 9110 section 5.6.2
 */
const COOKIE_NAME_RE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/*
 * cookie-value      = *cookie-octet / ( DQUOTE *cookie-octet DQUOTE )
 * cookie-octet      = %x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E
 *                     ; US-ASCII characters excluding CTLs, whitespace, DQUOTE, comma,
 *                     ; semicolon and backslash (RFC 6265 section 4.1.1)
 */
const COOKIE_VALUE_RE = /^("?)[\u0021\u0023-\u002B\u002D-\u003A\u003C-\u005B\u005D-\u007E]*\1$/;

/*
 * raw-value         = *( cookie-octet except "%" )
 *                   = *( %x21 / %x23-24 / %x26-2B / %x2D-3A / %x3C-5B / %x5D-7E )
 *                     ; what the default encoder sends as is: parseCookie would decode a "%"
 */
const RAW_VALUE_RE = /^[\u0021\u0023\u0024\u0026-\u002B\u002D-\u003A\u003C-\u005B\u005D-\u007E]*$/;

/*
 * path-value        = <any CHAR except CTLs or ";">
 * CHAR              = %x01-7F
 * CTL               = %x00-1F / %x7F
 *                     ; RFC 6265 section 4.1.1. We also require a leading "/": user agents
 *                     ; ignore any other path (RFC 6265 section 5.2.4).
 */
const PATH_VALUE_RE = /^\/[\u0020-\u003A\u003C-\u007E]*$/;

/*
 * domain-value      = <subdomain>
 *                     ; RFC 1034 section 3.5, as enhanced by RFC 1123 section 2.1
 * <subdomain>       = <label> | <subdomain> "." <label>
 * <label>           = <let-dig> [ [ <ldh-str> ] <let-dig> ]   ; at most 63 characters
 * <ldh-str>         = <let-dig-hyp> | <let-dig-hyp> <ldh-str>
 * <let-dig-hyp>     = <let-dig> | "-"
 * <let-dig>         = <letter> | <digit>
 *                     ; a leading "." is allowed and ignored by user agents (RFC 6265
 *                     ; section 4.1.2.3); at most 253 characters after it
 */
const DOMAIN_VALUE_RE =
  /^\.?(?=[^]{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/i;

const SAME_SITE: ReadonlyMap<string, string> = new Map([
  ['Strict', 'Strict'], ['strict', 'Strict'],
  ['Lax', 'Lax'], ['lax', 'Lax'],
  ['None', 'None'], ['none', 'None'],
]);

const PRIORITY: ReadonlyMap<string, string> = new Map([
  ['Low', 'Low'], ['low', 'Low'],
  ['Medium', 'Medium'], ['medium', 'Medium'],
  ['High', 'High'], ['high', 'High'],
]);

const BOOLEAN_OPTIONS = ['secure', 'httpOnly', 'partitioned'] as const;

/**
 * Builds a `Set-Cookie` header value. Strict: every part is checked against the RFC 6265 and
 * RFC 6265bis grammar, and contradictory attributes are refused.
 *
 * The value is sent as is when it is all cookie-octets and holds no `%`; otherwise it is encoded
 * with `encodeURIComponent` (or `options.encode`), so `parseCookie(serializeCookie(n, v))[n]`
 * is `v` for every valid name and every string without lone surrogates.
 *
 * Attributes come in this fixed order, each only when set:
 * `name=value; Max-Age=…; Domain=…; Path=…; Expires=…; HttpOnly; Secure; Partitioned;
 * Priority=…; SameSite=…`. `SameSite` and `Priority` are capitalised (`lax` gives `Lax`).
 *
 * @param name - the cookie name, an RFC 6265 token
 * @param value - any string without lone surrogates; an empty string is allowed
 * @param options - the attributes, see {@link CookieOptions}
 * @returns the header value, without the `Set-Cookie:` field name
 * @throws TypeError `cookie name is invalid: …`, `cookie value is invalid: …` or
 *   `option <name> is invalid: …` when a name, value, `Path` or `Domain` is outside the grammar
 *   (a `;`, CR, LF or NUL anywhere included); a `__Host-` cookie has a `Domain`, a `Path` other
 *   than `/` or no `Secure`; a `__Secure-` cookie has no `Secure`; `SameSite=None` or
 *   `Partitioned` comes without `Secure`; `maxAge` is not an integer from 0 to 400 days;
 *   `expires` is not a valid `Date` or is more than 400 days ahead; `sameSite` or `priority` is
 *   not one of the listed values; a boolean option is not a boolean. The value itself is never
 *   shown in a message, as it may be a secret.
 * @example
 * ```ts
 * res.setHeader('Set-Cookie', serializeCookie('__Host-sid', id, {
 *   path: '/', secure: true, httpOnly: true, sameSite: 'lax', maxAge: 3600,
 * }));
 * // '__Host-sid=…; Max-Age=3600; Path=/; HttpOnly; Secure; SameSite=Lax'
 * ```
 */
export function serializeCookie(name: string, value: string, options: CookieOptions = {}): string {
  if (!isCookieName(name)) {
    throw new TypeError(`cookie name is invalid: ${show(name)} (expected an RFC 6265 token)`);
  }
  if (typeof value !== 'string') {
    throw new TypeError(`cookie value is invalid: expected a string, not ${value === null ? 'null' : typeof value}`);
  }
  const { maxAge, expires, domain, path, secure, httpOnly, sameSite, partitioned, priority } = options;
  const encoded = options.encode === undefined ? encodeValue(value) : options.encode(value);
  if (typeof encoded !== 'string' || !COOKIE_VALUE_RE.test(encoded)) {
    throw new TypeError('cookie value is invalid: the encoded value is not an RFC 6265 cookie-value (value not shown)');
  }
  if (name.length + encoded.length > MAX_COOKIE_NAME_VALUE_BYTES) {
    throw new TypeError(`cookie value is invalid: name and encoded value are ${name.length + encoded.length} bytes (at most ${MAX_COOKIE_NAME_VALUE_BYTES})`);
  }

  for (const key of BOOLEAN_OPTIONS) {
    const flag = options[key];
    if (flag !== undefined && typeof flag !== 'boolean') throw invalid(key, flag, 'expected true or false');
  }

  let header = `${name}=${encoded}`;

  if (maxAge !== undefined) {
    if (!Number.isInteger(maxAge) || maxAge < 0 || maxAge > MAX_COOKIE_AGE_SECONDS) {
      throw invalid('maxAge', maxAge, `expected an integer number of seconds from 0 to ${MAX_COOKIE_AGE_SECONDS}`);
    }
    header += `; Max-Age=${maxAge}`;
  }

  if (domain !== undefined) {
    if (!isCookieDomain(domain)) {
      throw invalid('domain', domain, 'expected a host name such as "example.com"');
    }
    header += `; Domain=${domain}`;
  }

  if (path !== undefined) {
    if (!isCookiePath(path)) {
      throw invalid('path', path, `expected "/" then at most ${MAX_COOKIE_ATTRIBUTE_BYTES - 1} characters, none a control or ";"`);
    }
    header += `; Path=${path}`;
  }

  if (expires !== undefined) {
    if (!(expires instanceof Date) || !Number.isFinite(expires.getTime())) {
      throw invalid('expires', expires, 'expected a valid Date');
    }
    if (expires.getTime() > Date.now() + MAX_COOKIE_AGE_SECONDS * 1000) {
      throw invalid('expires', expires, 'more than 400 days from now');
    }
    header += `; Expires=${expires.toUTCString()}`;
  }

  if (httpOnly === true) header += '; HttpOnly';
  if (secure === true) header += '; Secure';

  if (partitioned === true) {
    if (secure !== true) throw invalid('partitioned', partitioned, 'a partitioned cookie needs secure: true');
    header += '; Partitioned';
  }

  if (priority !== undefined) {
    const normal = PRIORITY.get(priority);
    if (normal === undefined) throw invalid('priority', priority, 'expected "Low", "Medium" or "High"');
    header += `; Priority=${normal}`;
  }

  if (sameSite !== undefined) {
    const normal = SAME_SITE.get(sameSite);
    if (normal === undefined) throw invalid('sameSite', sameSite, 'expected "Strict", "Lax" or "None"');
    if (normal === 'None' && secure !== true) throw invalid('sameSite', sameSite, 'SameSite=None needs secure: true');
    header += `; SameSite=${normal}`;
  }

  // Name prefixes (RFC 6265bis), matched case-insensitively as current user agents do.
  const lower = name.toLowerCase();
  if (lower.startsWith('__host-')) {
    if (secure !== true) throw invalid('secure', secure, 'a "__Host-" cookie needs secure: true');
    if (domain !== undefined) throw invalid('domain', domain, 'a "__Host-" cookie must not have a domain');
    if (path !== '/') throw invalid('path', path, 'a "__Host-" cookie needs path "/"');
  } else if (lower.startsWith('__secure-') && secure !== true) {
    throw invalid('secure', secure, 'a "__Secure-" cookie needs secure: true');
  }

  return header;
}

/**
 * Whether `serializeCookie(name, value)` would send `value` as it is: all cookie-octets without
 * `%`, and `name=value` within {@link MAX_COOKIE_NAME_VALUE_BYTES}. The server checks its session
 * ids with it, to build the session cookie without serializing it again.
 */
export function isPlainCookieValue(name: string, value: string): boolean {
  return name.length + value.length <= MAX_COOKIE_NAME_VALUE_BYTES && RAW_VALUE_RE.test(value);
}

/** Whether `name` is a valid cookie name (an RFC 6265 token). */
export function isCookieName(name: unknown): name is string {
  return typeof name === 'string' && COOKIE_NAME_RE.test(name);
}

/** Whether `path` is a valid `Path` attribute value for {@link serializeCookie}. */
export function isCookiePath(path: unknown): path is string {
  return typeof path === 'string' && PATH_VALUE_RE.test(path) && path.length <= MAX_COOKIE_ATTRIBUTE_BYTES;
}

/** Whether `domain` is a valid `Domain` attribute value for {@link serializeCookie}. */
export function isCookieDomain(domain: unknown): domain is string {
  return typeof domain === 'string' && DOMAIN_VALUE_RE.test(domain);
}

/** The default encoder: the value as is when that is safe, else `encodeURIComponent`. */
function encodeValue(value: string): string {
  if (RAW_VALUE_RE.test(value)) return value;
  try {
    return encodeURIComponent(value);
  } catch {
    // encodeURIComponent throws URIError on a lone surrogate, which UTF-8 cannot carry.
    throw new TypeError('cookie value is invalid: it holds a lone surrogate (value not shown)');
  }
}

/** The TypeError for a bad option, in the library's one message shape. */
function invalid(option: string, value: unknown, why: string): TypeError {
  return new TypeError(`option ${option} is invalid: ${show(value)} (${why})`);
}

/** A short, safe rendering of a value for an error message. */
function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}…` : value);
  if (value instanceof Date) return Number.isFinite(value.getTime()) ? value.toISOString() : 'Invalid Date';
  if (value === null || (typeof value !== 'object' && typeof value !== 'function')) return String(value);
  return typeof value === 'function' ? 'a function' : 'an object';
}
