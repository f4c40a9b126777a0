/**
 * The server's options: their types, defaults and checks, as plain functions. One option is one
 * field of {@link ServerOptions}, one parser in `PARSERS`, and one setter on the server.
 */
import { type CookieSameSite, MAX_COOKIE_AGE_SECONDS, isCookieDomain, isCookieName, isCookiePath } from './cookie.js';
import { type Duration, describe, parseDuration } from './duration.js';
import { generateId, isValidId } from './id.js';
import type { ServerOptions as HttpsServerOptions } from 'node:https';
import type { Request } from './request.js';
import type { Session } from './session.js';
import type { SessionData, Storage } from './storage/storage.js';

/** The request a handler receives, with its session typed by `T`. */
export type Req<T extends object = SessionData> = Request<Session<T>>;

/** Where the server writes its few lines. */
export interface Logger {
  /** Informational lines, such as the address `run()` listens on. */
  info(message: string): void;
  /** Something a user should fix, reported once. */
  warn(message: string): void;
  /** An error of one request. */
  error(message: string): void;
}

/** The error hook: receives every error that ended a request with a 5xx. */
export type ErrorHook<T extends object = SessionData> = (error: unknown, r: Req<T> | undefined) => void;

/**
 * Options of {@link Server}. Each has a setter named with `set` (`sessionMaxAge` is
 * `setSessionMaxAge`), except `now`, a clock for tests; `sessionIdGenerator` and
 * `sessionIdValidator` share `setSessionIdGenerator(generator, validator)`.
 */
export interface ServerOptions<T extends object = SessionData> {
  /** Port to listen on; `0` picks a free one (`server.port` tells which). @default 0 */
  port?: number;
  /** Host to listen on. @default all interfaces, as `node:http` */
  address?: string;
  /**
   * Serve HTTPS with `node:https` and these options (`key` and `cert` at least), so that
   * `cookieSecure: 'auto'` sets `Secure` and `__Host-` cookie names work without a proxy.
   * @default none: plain HTTP
   */
  https?: HttpsServerOptions;
  /** Idle timeout: a session unused this long is gone. At most 400 days. @default '24h' */
  sessionMaxAge?: Duration;
  /**
   * Absolute timeout: a session ends this long after it was created, however active (OWASP's
   * absolute timeout); a regenerate keeps the creation time. `0`: none. At most 400 days.
   * @default 0
   */
  sessionMaxLifetime?: Duration;
  /**
   * The longest idle timeout `r.session.remember(duration)` may give one session ("remember me
   * for 30 days"). At most 400 days.
   * @default '400d'
   */
  sessionMaxAgeLimit?: Duration;
  /** Where sessions live. @default new FileStorage() (created on `start()` or first use) */
  sessionStorage?: Storage;
  /** The cookie's name, and the request header read when no cookie carries the id. @default 'sid' */
  sessionIdName?: string;
  /** Send the session cookie automatically. @default true */
  sessionCookieOutput?: boolean;
  /** The cookie's `Max-Age` (rounded up to whole seconds); `0` makes a browser-session cookie. At most 400 days. @default sessionMaxAge */
  sessionCookieMaxAge?: Duration;
  /**
   * Makes session ids, instead of 32 random bytes in base64url. Give `sessionIdValidator` with it.
   * @default 32 bytes from crypto.randomBytes, base64url
   */
  sessionIdGenerator?: () => string;
  /** Says whether an incoming id has the generator's format; checked before any storage call. */
  sessionIdValidator?: (id: string) => boolean;
  /** The largest serialized session, in bytes; a bigger one fails its request. @default 1 MiB */
  sessionMaxSize?: number;
  /** The session cookie's `Path`. @default '/' */
  cookiePath?: string;
  /** The session cookie's `Domain`. @default none (host-only) */
  cookieDomain?: string;
  /** The session cookie's `SameSite` (any case); `'None'` needs `cookieSecure: true`. @default 'Lax' */
  cookieSameSite?: CookieSameSite;
  /** The session cookie's `Secure`: `'auto'` sets it when the request came over TLS. @default 'auto' */
  cookieSecure?: boolean | 'auto';
  /** The session cookie's `HttpOnly`. @default true */
  cookieHttpOnly?: boolean;
  /** Believe `X-Forwarded-Proto` from a reverse proxy. @default false */
  trustProxy?: boolean;
  /** The largest request body `text()`, `json()` and `form()` read, in bytes. @default 1 MiB */
  bodyLimit?: number;
  /** How long `close()` waits for in-flight requests before cutting them off. @default '10s' */
  closeTimeout?: Duration;
  /** Receives errors that ended a request with a 5xx. @default the error and the first lines of its stack, through `logger.error` */
  onError?: ErrorHook<T>;
  /** Where the server writes its lines. @default stdout for info, stderr for the rest */
  logger?: Logger;
  /** The clock used for cookie refreshes, in milliseconds; tests inject one. @default Date.now */
  now?: () => number;
}

/** Every option, checked, with durations in milliseconds. */
export interface ResolvedOptions<T extends object = SessionData> {
  port: number;
  address: string | undefined;
  https: HttpsServerOptions | undefined;
  sessionMaxAge: number;
  sessionMaxLifetime: number;
  sessionMaxAgeLimit: number;
  sessionStorage: Storage | undefined;
  sessionIdName: string;
  sessionCookieOutput: boolean;
  /** `undefined`: the same as `sessionMaxAge`. */
  sessionCookieMaxAge: number | undefined;
  sessionIdGenerator: () => string;
  sessionIdValidator: (id: string) => boolean;
  sessionMaxSize: number;
  cookiePath: string;
  cookieDomain: string | undefined;
  /** Capitalised: `'Strict'`, `'Lax'` or `'None'`. */
  cookieSameSite: 'Strict' | 'Lax' | 'None';
  cookieSecure: boolean | 'auto';
  cookieHttpOnly: boolean;
  trustProxy: boolean;
  bodyLimit: number;
  closeTimeout: number;
  /** `undefined`: the server's own logging hook. */
  onError: ErrorHook<T> | undefined;
  logger: Logger;
  now: () => number;
}

/** The name of an option. */
export type OptionName = keyof ServerOptions;

const MIB = 1024 * 1024;
const SAME_SITE: ReadonlyMap<string, 'Strict' | 'Lax' | 'None'> = new Map([
  ['Strict', 'Strict'], ['strict', 'Strict'],
  ['Lax', 'Lax'], ['lax', 'Lax'],
  ['None', 'None'], ['none', 'None'],
]);
/** The longest a session or its cookie may live: 400 days, the cap browsers put on cookies. */
export const MAX_SESSION_AGE_MS = MAX_COOKIE_AGE_SECONDS * 1000;

/** Writes info to stdout, the rest to stderr. */
export const DEFAULT_LOGGER: Logger = {
  info: (m) => process.stdout.write(`${m}\n`),
  warn: (m) => process.stderr.write(`${m}\n`),
  error: (m) => process.stderr.write(`${m}\n`),
};

/** The defaults of every option. */
export function defaultOptions<T extends object>(): ResolvedOptions<T> {
  return {
    port: 0,
    address: undefined,
    https: undefined,
    sessionMaxAge: 86_400_000,
    sessionMaxLifetime: 0,
    sessionMaxAgeLimit: MAX_SESSION_AGE_MS,
    sessionStorage: undefined,
    sessionIdName: 'sid',
    sessionCookieOutput: true,
    sessionCookieMaxAge: undefined,
    sessionIdGenerator: generateId,
    sessionIdValidator: isValidId,
    sessionMaxSize: MIB,
    cookiePath: '/',
    cookieDomain: undefined,
    cookieSameSite: 'Lax',
    cookieSecure: 'auto',
    cookieHttpOnly: true,
    trustProxy: false,
    bodyLimit: MIB,
    closeTimeout: 10_000,
    onError: undefined,
    logger: DEFAULT_LOGGER,
    now: Date.now,
  };
}

/** The TypeError of a bad option, in the library's one message shape. */
export function invalidOption(key: string, value: unknown, expected: string): TypeError {
  return new TypeError(`option ${key} is invalid: ${describe(value)} (expected ${expected})`);
}

function duration(max: number, allowZero: boolean) {
  return (value: unknown, key: string): number => {
    const ms = parseDuration(value, key, allowZero);
    if (ms > max) throw invalidOption(key, value, 'at most 400 days');
    return ms;
  };
}

function boolean(value: unknown, key: string): boolean {
  if (typeof value !== 'boolean') throw invalidOption(key, value, 'true or false');
  return value;
}

function fn<F>(value: unknown, key: string): F {
  if (typeof value !== 'function') throw invalidOption(key, value, 'a function');
  return value as F;
}

function bytes(value: unknown, key: string): number {
  if (!Number.isSafeInteger(value) || (value as number) < 1) throw invalidOption(key, value, 'a positive integer of bytes');
  return value as number;
}

function hasMethods(value: unknown, methods: readonly string[]): boolean {
  return value !== null && typeof value === 'object' && methods.every((m) => typeof (value as Record<string, unknown>)[m] === 'function');
}

/** One parser per option: it checks the value and returns it resolved, or throws a `TypeError`. */
const PARSERS: { readonly [K in OptionName]-?: (value: unknown, key: K) => ResolvedOptions[K] } = {
  port(value, key) {
    if (!Number.isInteger(value) || (value as number) < 0 || (value as number) > 65535) throw invalidOption(key, value, 'an integer from 0 to 65535');
    return value as number;
  },
  address(value, key) {
    if (typeof value !== 'string' || value === '') throw invalidOption(key, value, 'a host name or address');
    return value;
  },
  https(value, key) {
    if (value === null || typeof value !== 'object') throw invalidOption(key, value, 'the options of node:https, with key and cert');
    return value as HttpsServerOptions;
  },
  sessionMaxAge: duration(MAX_SESSION_AGE_MS, false),
  sessionMaxLifetime: duration(MAX_SESSION_AGE_MS, true),
  sessionMaxAgeLimit: duration(MAX_SESSION_AGE_MS, false),
  sessionStorage(value, key) {
    if (!hasMethods(value, ['get', 'set', 'touch', 'remove'])) throw invalidOption(key, value, 'an object with get, set, touch and remove');
    return value as Storage;
  },
  sessionIdName(value, key) {
    if (!isCookieName(value)) throw invalidOption(key, value, 'a cookie name: letters, digits and !#$%&\'*+-.^_`|~');
    return value;
  },
  sessionCookieOutput: boolean,
  sessionCookieMaxAge: duration(MAX_SESSION_AGE_MS, true),
  sessionIdGenerator: fn,
  sessionIdValidator: fn,
  sessionMaxSize: bytes,
  cookiePath(value, key) {
    if (!isCookiePath(value)) throw invalidOption(key, value, '"/" then at most 1023 characters, none a control or ";"');
    return value;
  },
  cookieDomain(value, key) {
    if (!isCookieDomain(value)) throw invalidOption(key, value, 'a host name such as "example.com"');
    return value;
  },
  cookieSameSite(value, key) {
    const normal = typeof value === 'string' ? SAME_SITE.get(value) : undefined;
    if (normal === undefined) throw invalidOption(key, value, "'Strict', 'Lax' or 'None'");
    return normal;
  },
  cookieSecure(value, key) {
    if (typeof value !== 'boolean' && value !== 'auto') throw invalidOption(key, value, "true, false or 'auto'");
    return value;
  },
  cookieHttpOnly: boolean,
  trustProxy: boolean,
  bodyLimit: bytes,
  closeTimeout: duration(Number.MAX_SAFE_INTEGER, true),
  onError: fn,
  logger(value, key) {
    if (!hasMethods(value, ['info', 'warn', 'error'])) throw invalidOption(key, value, 'an object with info, warn and error');
    return value as Logger;
  },
  now: fn,
};

/**
 * Checks one option and returns its resolved value. Throws a `TypeError` naming the option and
 * the value; an unknown name throws too.
 */
export function parseOption<K extends OptionName>(key: K, value: unknown): ResolvedOptions[K] {
  const parse = Object.hasOwn(PARSERS, key) ? (PARSERS[key] as unknown as (value: unknown, key: K) => ResolvedOptions[K]) : undefined;
  if (parse === undefined) throw new TypeError(`option ${String(key)} is unknown`);
  return parse(value, key);
}

/**
 * Resolves an options object over the defaults, then checks the options that depend on each
 * other ({@link checkCombinations}).
 */
export function resolveOptions<T extends object>(options: ServerOptions<T>): ResolvedOptions<T> {
  if (options === null || typeof options !== 'object') throw new TypeError(`options are invalid: ${describe(options)}`);
  const o = defaultOptions<T>() as unknown as Record<string, unknown>;
  for (const key of Object.keys(options) as OptionName[]) {
    const value = (options as Record<string, unknown>)[key];
    if (value === undefined) continue;
    o[key] = parseOption(key, value);
  }
  if ((options.sessionIdGenerator === undefined) !== (options.sessionIdValidator === undefined)) {
    throw new TypeError('option sessionIdGenerator is invalid: give sessionIdGenerator and sessionIdValidator together');
  }
  const resolved = o as unknown as ResolvedOptions<T>;
  checkCombinations(resolved);
  return resolved;
}

/**
 * Refuses settings that cannot work together, naming the option to change: the rules of
 * RFC 6265bis for `SameSite=None` and the `__Host-` and `__Secure-` name prefixes.
 */
export function checkCombinations(o: Pick<ResolvedOptions, 'sessionIdName' | 'cookieSameSite' | 'cookieSecure' | 'cookieDomain' | 'cookiePath' | 'https'>): void {
  const lower = o.sessionIdName.toLowerCase();
  // Over HTTPS, 'auto' always means Secure.
  const secure = o.cookieSecure === true || (o.cookieSecure === 'auto' && o.https !== undefined);
  if (o.cookieSameSite === 'None' && !secure) {
    throw invalidOption('cookieSecure', o.cookieSecure, "true: cookieSameSite 'None' needs cookieSecure: true (or 'auto' with https)");
  }
  if (lower.startsWith('__host-')) {
    if (!secure) throw invalidOption('cookieSecure', o.cookieSecure, `true: the cookie name ${JSON.stringify(o.sessionIdName)} needs cookieSecure: true (or 'auto' with https)`);
    if (o.cookieDomain !== undefined) throw invalidOption('cookieDomain', o.cookieDomain, `none: the cookie name ${JSON.stringify(o.sessionIdName)} must not have a domain`);
    if (o.cookiePath !== '/') throw invalidOption('cookiePath', o.cookiePath, `"/": the cookie name ${JSON.stringify(o.sessionIdName)} needs path "/"`);
  } else if (lower.startsWith('__secure-') && !secure) {
    throw invalidOption('cookieSecure', o.cookieSecure, `true: the cookie name ${JSON.stringify(o.sessionIdName)} needs cookieSecure: true (or 'auto' with https)`);
  }
}
