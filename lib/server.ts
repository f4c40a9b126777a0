/**
 * The server: a `node:http` server, a router with groups and middleware, and the session's
 * load and commit around every handler.
 *
 * One way through: request → router → session load → middleware and handler → session commit
 * → response.
 */
import { type IncomingMessage, type Server as HttpServer, type ServerResponse, createServer as createHttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { type CookieOptions, serializeCookie } from './cookie.js';
import { type Duration, describe, parseDuration } from './duration.js';
import { HttpError, SessionError, STATUS_TEXT } from './errors.js';
import { FileStorage } from './file-storage.js';
import { generateId, isValidId } from './id.js';
import { Request, type RequestContext } from './request.js';
import { Response } from './response.js';
import { type Method, Router, joinPath } from './router.js';
import { Session, SessionManager } from './session.js';
import type { SessionData, Storage } from './storage.js';

/** The request a handler receives, with its session typed by `T`. */
export type Req<T extends object = SessionData> = Request<Session<T>>;

/** A route handler; may be async. What it returns is ignored: it writes to `r.response`. */
export type Handler<T extends object = SessionData> = (r: Req<T>) => unknown;

/** A middleware: runs around the rest of the chain, which `await next()` runs. */
export type Middleware<T extends object = SessionData> = (r: Req<T>, next: () => Promise<void>) => unknown;

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

/** The `SameSite` values of the session cookie. */
export type SameSite = 'Strict' | 'Lax' | 'None';

/**
 * Options of {@link Server}. Each has a setter named with `set` (`sessionMaxAge` is
 * `setSessionMaxAge`).
 */
export interface ServerOptions<T extends object = SessionData> {
  /** Port to listen on; `0` picks a free one (`server.port` tells which). @default 0 */
  port?: number;
  /** Host to listen on. @default all interfaces, as `node:http` */
  address?: string;
  /** Idle timeout: a session unused this long is gone. @default '24h' */
  sessionMaxAge?: Duration;
  /** Where sessions live. @default new FileStorage() (created on first use) */
  sessionStorage?: Storage;
  /** The cookie's name, and the request header read when no cookie carries the id. @default 'sid' */
  sessionIdName?: string;
  /** Send the session cookie automatically. @default true */
  sessionCookieOutput?: boolean;
  /** The cookie's `Max-Age`; `0` makes a browser-session cookie. @default sessionMaxAge */
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
  /** The session cookie's `SameSite`. @default 'Lax' */
  cookieSameSite?: SameSite;
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
  /** Receives errors that ended a request with a 5xx. @default one line on stderr */
  onError?: ErrorHook<T>;
  /** Where the server writes its lines. @default stdout for info, stderr for the rest */
  logger?: Logger;
  /** The clock used for cookie refreshes, in milliseconds; tests inject one. @default Date.now */
  now?: () => number;
}

const DEFAULT_LOGGER: Logger = {
  info: (m) => process.stdout.write(`${m}\n`),
  warn: (m) => process.stderr.write(`${m}\n`),
  error: (m) => process.stderr.write(`${m}\n`),
};

const GENERIC_500 = STATUS_TEXT[500] as string;
const MIB = 1024 * 1024;

/** The server option behind each cookie attribute, for error messages. */
const COOKIE_OPTION: ReadonlyMap<string, string> = new Map([
  ['secure', 'cookieSecure'],
  ['sameSite', 'cookieSameSite'],
  ['path', 'cookiePath'],
  ['domain', 'cookieDomain'],
  ['httpOnly', 'cookieHttpOnly'],
]);

type Resolved<T extends object> = Required<Omit<ServerOptions<T>, 'address' | 'sessionStorage' | 'cookieDomain' | 'sessionCookieMaxAge' | 'sessionIdGenerator' | 'sessionIdValidator' | 'sessionMaxAge' | 'closeTimeout'>> & {
  address: string | undefined;
  sessionStorage: Storage | undefined;
  cookieDomain: string | undefined;
  sessionMaxAgeMs: number;
  sessionCookieMaxAgeMs: number | undefined;
  closeTimeoutMs: number;
  sessionIdGenerator: () => string;
  sessionIdValidator: (id: string) => boolean;
};

interface RouteEntry<T extends object> {
  readonly handler: Handler<T>;
  readonly groups: readonly RouteGroup<T>[];
  chain?: Middleware<T>[];
  /** The value of `middlewareVersion` when `chain` was built. */
  chainVersion?: number;
}

/**
 * A set of routes under one prefix, with its own middleware. `server.group('/api', (g) => …)`
 * hands one to its callback; groups nest with `g.group(…)`.
 */
export class RouteGroup<T extends object = SessionData> {
  readonly #prefix: string;
  readonly #parents: readonly RouteGroup<T>[];
  readonly #add: (method: Method | 'ALL', pattern: string, entry: RouteEntry<T>) => void;
  /** @internal */
  readonly mw: Middleware<T>[] = [];
  /** @internal Bumped whenever any group gains middleware, so routes rebuild their chains. */
  static middlewareVersion = 0;

  /** @internal Made by the server. */
  constructor(prefix: string, parents: readonly RouteGroup<T>[], add: (method: Method | 'ALL', pattern: string, entry: RouteEntry<T>) => void) {
    this.#prefix = prefix;
    this.#parents = parents;
    this.#add = add;
  }

  /** A nested group: its prefix is appended to this one's, and this group's middleware runs first. */
  group(prefix: string, fn: (group: RouteGroup<T>) => void): this {
    fn(new RouteGroup<T>(joinPath(this.#prefix, prefix), [...this.#parents, this], this.#add));
    return this;
  }

  /** Adds middleware for this group's routes (and its nested groups'), whenever they were registered. */
  middleware(...middleware: Middleware<T>[]): this {
    for (const m of middleware) {
      if (typeof m !== 'function') throw new TypeError(`middleware is invalid: ${describe(m)}`);
    }
    this.mw.push(...middleware);
    RouteGroup.middlewareVersion++;
    return this;
  }

  /** Registers `handler` for every method. */
  all(pattern: string, handler: Handler<T>): this {
    return this.#route('ALL', pattern, handler);
  }
  /** Registers a `GET` route (it answers `HEAD` too, without a body). */
  get(pattern: string, handler: Handler<T>): this {
    return this.#route('GET', pattern, handler);
  }
  /** Registers a `POST` route. */
  post(pattern: string, handler: Handler<T>): this {
    return this.#route('POST', pattern, handler);
  }
  /** Registers a `PUT` route. */
  put(pattern: string, handler: Handler<T>): this {
    return this.#route('PUT', pattern, handler);
  }
  /** Registers a `PATCH` route. */
  patch(pattern: string, handler: Handler<T>): this {
    return this.#route('PATCH', pattern, handler);
  }
  /** Registers a `DELETE` route. */
  delete(pattern: string, handler: Handler<T>): this {
    return this.#route('DELETE', pattern, handler);
  }
  /** Registers a `HEAD` route. */
  head(pattern: string, handler: Handler<T>): this {
    return this.#route('HEAD', pattern, handler);
  }
  /** Registers an `OPTIONS` route. */
  options(pattern: string, handler: Handler<T>): this {
    return this.#route('OPTIONS', pattern, handler);
  }

  #route(method: Method | 'ALL', pattern: string, handler: Handler<T>): this {
    if (typeof handler !== 'function') throw new TypeError(`handler for ${method} ${pattern} is invalid: ${describe(handler)}`);
    if (typeof pattern !== 'string') throw new TypeError(`route pattern is invalid: ${describe(pattern)}`);
    this.#add(method, joinPath(this.#prefix, pattern), { handler, groups: [...this.#parents, this] });
    return this;
  }
}

/**
 * An HTTP server with sessions, on `node:http` alone.
 *
 * @example
 * ```ts
 * import { Server } from 'bare-session';
 *
 * const s = new Server().setSessionMaxAge('1m');
 * s.group('/', (group) => {
 *   group.all('/set', (r) => { r.session.set('time', Date.now()); r.response.write('ok'); });
 *   group.all('/get', (r) => { r.response.write(r.session.data()); });
 * });
 * s.setPort(8199).run();
 * ```
 */
export class Server<T extends object = SessionData> extends RouteGroup<T> {
  readonly #router = new Router<RouteEntry<T>>();
  readonly #o: Resolved<T>;
  #manager: SessionManager | undefined;
  #context: RequestContext | undefined;
  #storage: Storage | undefined;
  #http: HttpServer | undefined;
  #inFlight = 0;
  #idle: (() => void) | undefined;
  #closing: Promise<void> | undefined;
  readonly #warned = new Set<string>();

  /** Makes a server; options may also be set later with the setters. */
  constructor(options: ServerOptions<T> = {}) {
    const routes: { router?: Router<RouteEntry<T>> } = {};
    super('/', [], (method, pattern, entry) => (routes.router as Router<RouteEntry<T>>).add(method, pattern, entry));
    routes.router = this.#router;
    if (options === null || typeof options !== 'object') throw new TypeError(`options are invalid: ${describe(options)}`);
    this.#o = {
      port: 0,
      address: undefined,
      sessionMaxAgeMs: 86_400_000,
      sessionStorage: undefined,
      sessionIdName: 'sid',
      sessionCookieOutput: true,
      sessionCookieMaxAgeMs: undefined,
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
      closeTimeoutMs: 10_000,
      onError: (err, r) => this.#logError(err, r),
      logger: DEFAULT_LOGGER,
      now: Date.now,
    };
    for (const key of Object.keys(options) as (keyof ServerOptions<T>)[]) {
      this.#set(key, options[key], false);
    }
    if ((options.sessionIdGenerator === undefined) !== (options.sessionIdValidator === undefined)) {
      throw new TypeError('option sessionIdGenerator is invalid: give sessionIdGenerator and sessionIdValidator together');
    }
    this.#checkCookie();
  }

  /** Sets the port to listen on (`0`: a free one). */
  setPort(port: number): this {
    return this.#set('port', port);
  }
  /** Sets the host to listen on. */
  setAddress(address: string): this {
    return this.#set('address', address);
  }
  /** Sets the idle timeout of sessions. */
  setSessionMaxAge(maxAge: Duration): this {
    return this.#set('sessionMaxAge', maxAge);
  }
  /** Sets where sessions live. */
  setSessionStorage(storage: Storage): this {
    return this.#set('sessionStorage', storage);
  }
  /** Sets the session cookie's name (also the header read when no cookie carries the id). */
  setSessionIdName(name: string): this {
    const previous = this.#o.sessionIdName;
    this.#set('sessionIdName', name);
    try {
      this.#checkCookie();
    } catch (err) {
      // Refused: keep the name that worked.
      this.#o.sessionIdName = previous;
      throw err;
    }
    return this;
  }
  /** Turns the automatic session cookie on or off. */
  setSessionCookieOutput(enabled: boolean): this {
    return this.#set('sessionCookieOutput', enabled);
  }
  /** Sets the session cookie's `Max-Age`; `0` makes a browser-session cookie. */
  setSessionCookieMaxAge(maxAge: Duration): this {
    return this.#set('sessionCookieMaxAge', maxAge);
  }
  /** Sets how ids are made and checked; both are required together. */
  setSessionIdGenerator(generator: () => string, validator: (id: string) => boolean): this {
    this.#set('sessionIdGenerator', generator);
    return this.#set('sessionIdValidator', validator);
  }
  /** Adds middleware that runs for every request, found or not, before any group's middleware. */
  use(...middleware: Middleware<T>[]): this {
    return this.middleware(...middleware);
  }

  /** The port the server listens on, once `start()` resolved; else the configured one. */
  get port(): number {
    const address = this.#http?.address();
    return address !== null && typeof address === 'object' ? (address as AddressInfo).port : this.#o.port;
  }

  /** The storage in use (the default `FileStorage` is created on first use). */
  get storage(): Storage {
    this.#storage ??= this.#o.sessionStorage ?? new FileStorage();
    return this.#storage;
  }

  /** The `(req, res)` listener, for users who run their own `node:http` server. */
  readonly handler = (req: IncomingMessage, res: ServerResponse): void => {
    this.#handle(req, res).catch((err: unknown) => {
      // Last resort: the handling itself failed. Answer if still possible; never crash.
      this.#report(err, undefined);
      if (!res.headersSent) {
        res.statusCode = 500;
        res.end(GENERIC_500);
      } else {
        res.destroy();
      }
    });
  };

  /** Listens on the configured port and address; resolves once listening. */
  async start(): Promise<this> {
    if (this.#http !== undefined) throw new Error('server already started');
    this.#sessions();
    const http = createHttpServer(this.handler);
    this.#http = http;
    try {
      await new Promise<void>((resolve, reject) => {
        http.once('error', reject);
        http.listen(this.#o.port, this.#o.address, () => {
          http.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      // Not listening (a port in use, say): the server may be started again.
      this.#http = undefined;
      throw err;
    }
    return this;
  }

  /**
   * Stops accepting connections, lets in-flight requests finish (for at most `closeTimeout`),
   * closes idle keep-alive connections, then flushes and closes the storage. A program whose
   * server is closed exits by itself.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  /** Starts, prints the address, and on SIGINT or SIGTERM closes and exits with status 0. */
  async run(): Promise<void> {
    try {
      await this.start();
    } catch (err) {
      const code = (err as { code?: unknown } | null)?.code;
      this.#o.logger.error(`bare-session: could not listen on ${this.#o.address ?? 'port'} ${this.#o.port}${typeof code === 'string' ? ` (${code})` : ''}`);
      process.exitCode = 1;
      return;
    }
    const stop = (): void => {
      this.close().then(
        () => process.exit(0),
        (err: unknown) => {
          this.#report(err, undefined);
          process.exit(1);
        },
      );
    };
    // Before the address is printed: a supervisor may signal as soon as it reads it.
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    const address = this.#http?.address() as AddressInfo;
    const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    this.#o.logger.info(`bare-session: listening on http://${host === '[::]' || host === '0.0.0.0' ? 'localhost' : host}:${address.port}`);
  }

  async #close(): Promise<void> {
    const http = this.#http;
    if (http !== undefined) {
      // Stop accepting; `closed` resolves once every connection has ended.
      const closed = new Promise<void>((resolve) => http.close(() => resolve()));
      http.closeIdleConnections();
      // In-flight requests are answered with `Connection: close`, so their connections end by
      // themselves once the whole answer is out; cutting them any earlier would truncate it.
      const drained = (async (): Promise<void> => {
        if (this.#inFlight > 0) {
          await new Promise<void>((resolve) => {
            this.#idle = resolve;
          });
        }
        // Not closeIdleConnections() again: node counts an ended answer still being written
        // as idle, and would cut it.
        await closed;
      })();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        drained,
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, this.#o.closeTimeoutMs);
        }),
      ]);
      clearTimeout(timer);
      http.closeAllConnections();
      await closed;
    }
    this.#manager?.close();
    // The storage in use, or the one the user gave even if no request needed it yet; a default
    // FileStorage that was never used is not created just to be closed.
    await (this.#storage ?? this.#o.sessionStorage)?.close?.();
  }

  #sessions(): SessionManager {
    if (this.#manager !== undefined) return this.#manager;
    const o = this.#o;
    this.#manager = new SessionManager({
      storage: () => this.storage,
      maxAgeMs: o.sessionMaxAgeMs,
      idName: o.sessionIdName,
      cookieOutput: o.sessionCookieOutput,
      cookieMaxAgeMs: o.sessionCookieMaxAgeMs ?? o.sessionMaxAgeMs,
      cookie: this.#cookieDefaults(),
      generateId: o.sessionIdGenerator,
      validateId: o.sessionIdValidator,
      maxSize: o.sessionMaxSize,
      cookieRefreshMs: 60_000,
      now: o.now,
    });
    return this.#manager;
  }

  /**
   * What every request is handed: the body limit, and the defaults of `r.cookie.set` (the
   * session cookie's `Path`, `Domain` and `SameSite`, without `HttpOnly`). Built once, rebuilt
   * after an option changes.
   */
  #requestContext(): RequestContext {
    if (this.#context === undefined) {
      const { httpOnly: _, ...cookieDefaults } = this.#cookieDefaults();
      if (cookieDefaults.sameSite === 'None') cookieDefaults.secure = true;
      this.#context = { bodyLimit: this.#o.bodyLimit, cookieDefaults };
    }
    return this.#context;
  }

  #cookieDefaults(): CookieOptions {
    const o = this.#o;
    const c: CookieOptions = { path: o.cookiePath, sameSite: o.cookieSameSite, httpOnly: o.cookieHttpOnly };
    if (o.cookieDomain !== undefined) c.domain = o.cookieDomain;
    return c;
  }

  /**
   * Contradictory cookie settings throw now, not on the first request, with a message that
   * names the server's option (`cookieSameSite`), not the serializer's (`sameSite`).
   */
  #checkCookie(): void {
    const o = this.#o;
    try {
      serializeCookie(o.sessionIdName, 'x', { ...this.#cookieDefaults(), secure: o.cookieSecure === true, maxAge: 60 });
    } catch (err) {
      if (!(err instanceof TypeError)) throw err;
      const m = /^(?:option (\w+)|cookie name) is invalid: /.exec(err.message);
      const option = m === null ? undefined : m[1] === undefined ? 'sessionIdName' : COOKIE_OPTION.get(m[1]);
      if (m === null || option === undefined) throw err;
      throw new TypeError(`option ${option} is invalid: ${err.message.slice(m[0].length)}`, { cause: err });
    }
  }

  #set(key: keyof ServerOptions<T>, value: unknown, check = true): this {
    const o = this.#o;
    const bad = (expected: string): never => {
      throw new TypeError(`option ${key} is invalid: ${describe(value)} (expected ${expected})`);
    };
    switch (key) {
      case 'port':
        if (!Number.isInteger(value) || (value as number) < 0 || (value as number) > 65535) bad('an integer from 0 to 65535');
        o.port = value as number;
        break;
      case 'address':
        if (typeof value !== 'string' || value === '') bad('a host name or address');
        o.address = value as string;
        break;
      case 'sessionMaxAge':
        o.sessionMaxAgeMs = parseDuration(value, key);
        break;
      case 'sessionCookieMaxAge':
        o.sessionCookieMaxAgeMs = parseDuration(value, key, true);
        if (o.sessionCookieMaxAgeMs > 400 * 86_400_000) bad('at most 400 days');
        break;
      case 'closeTimeout':
        o.closeTimeoutMs = parseDuration(value, key, true);
        break;
      case 'sessionStorage': {
        const s = value as Partial<Storage> | null;
        if (s === null || typeof s !== 'object' || typeof s.get !== 'function' || typeof s.set !== 'function' || typeof s.touch !== 'function' || typeof s.remove !== 'function') {
          bad('an object with get, set, touch and remove');
        }
        o.sessionStorage = value as Storage;
        break;
      }
      case 'sessionIdName':
        if (typeof value !== 'string' || value === '') bad('a cookie name');
        o.sessionIdName = value as string;
        break;
      case 'sessionIdGenerator':
      case 'sessionIdValidator':
      case 'onError':
      case 'now':
        if (typeof value !== 'function') bad('a function');
        (o as Record<string, unknown>)[key] = value;
        break;
      case 'sessionCookieOutput':
      case 'cookieHttpOnly':
      case 'trustProxy':
        if (typeof value !== 'boolean') bad('true or false');
        o[key] = value as boolean;
        break;
      case 'cookieSecure':
        if (typeof value !== 'boolean' && value !== 'auto') bad("true, false or 'auto'");
        o.cookieSecure = value as boolean | 'auto';
        break;
      case 'cookieSameSite':
        if (value !== 'Strict' && value !== 'Lax' && value !== 'None') bad("'Strict', 'Lax' or 'None'");
        o.cookieSameSite = value as SameSite;
        break;
      case 'cookiePath':
      case 'cookieDomain':
        if (typeof value !== 'string') bad('a string');
        o[key] = value as string;
        break;
      case 'sessionMaxSize':
      case 'bodyLimit':
        if (!Number.isInteger(value) || (value as number) < 1) bad('a positive integer of bytes');
        o[key] = value as number;
        break;
      case 'logger': {
        const l = value as Partial<Logger> | null;
        if (l === null || typeof l !== 'object' || typeof l.info !== 'function' || typeof l.warn !== 'function' || typeof l.error !== 'function') {
          bad('an object with info, warn and error');
        }
        o.logger = value as Logger;
        break;
      }
      default:
        throw new TypeError(`option ${String(key)} is unknown`);
    }
    this.#context = undefined;
    // Session settings are read when the first request needs them; a change rebuilds them.
    if (key.startsWith('session') || key.startsWith('cookie') || key === 'now') {
      this.#manager?.close();
      this.#manager = undefined;
      if (check && key.startsWith('cookie')) this.#checkCookie();
    }
    return this;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const o = this.#o;
    const response = new Response(res);
    const method = req.method ?? 'GET';
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const match = this.#router.find(method, q === -1 ? url : url.slice(0, q));
    const global = this.mw;
    if (match.kind !== 'found' && global.length === 0) {
      // Unknown path or method and no middleware to run: answer without touching sessions.
      this.#answerUnmatched(response, match.kind === 'method' ? match.allow : undefined);
      if (this.#closing !== undefined) response.header('Connection', 'close');
      response.send([]);
      return;
    }
    this.#inFlight++;
    const r = new Request<Session<T>>(req, response, this.#requestContext(), match.kind === 'found' ? match.params : Object.create(null));
    try {
      const manager = this.#sessions();
      r.session = await manager.load<T>(manager.incomingId(r.cookie, (name) => r.header(name)));
      let chain: Middleware<T>[];
      let last: Handler<T>;
      if (match.kind === 'found') {
        const entry = match.handler;
        if (entry.chain === undefined || entry.chainVersion !== RouteGroup.middlewareVersion) {
          entry.chain = [...global, ...entry.groups.slice(1).flatMap((g) => g.mw)];
          entry.chainVersion = RouteGroup.middlewareVersion;
        }
        chain = entry.chain;
        last = entry.handler;
      } else {
        chain = global;
        last = () => this.#answerUnmatched(response, match.kind === 'method' ? match.allow : undefined);
      }
      await runChain(chain, last, r);
      if (await manager.commit(r.session as Session<object>, r.cookie, this.#secure(req)) && response.getHeader('cache-control') === undefined) {
        response.header('Cache-Control', 'no-store');
      }
    } catch (err) {
      this.#fail(err, r);
    } finally {
      this.#inFlight--;
    }
    if (this.#closing !== undefined && !response.takenOver) response.header('Connection', 'close');
    response.send([...r.cookie.pending.values()]);
    if (this.#inFlight === 0) this.#idle?.();
  }

  #answerUnmatched(response: Response, allow: string | undefined): void {
    if (allow === undefined) {
      response.status(404).write(STATUS_TEXT[404] as string);
    } else {
      response.status(405).header('Allow', allow).write(STATUS_TEXT[405] as string);
    }
  }

  /** Turns an error into the answer: its status for an `HttpError`, else 500 (503 for storage). */
  #fail(err: unknown, r: Request<Session<T>>): void {
    r.cookie.clear();
    // A handler that took over the response and failed half-way: cut the connection rather
    // than leave the client waiting for the rest.
    if (r.response.takenOver && !r.response.raw.writableEnded) r.response.raw.destroy();
    const status = err instanceof SessionError ? err.status : 500;
    if (err instanceof HttpError && err.expose) {
      r.response.reset(status, err.message);
      if (status === 413) r.response.header('Connection', 'close');
      return;
    }
    r.response.reset(status, STATUS_TEXT[status] ?? GENERIC_500);
    this.#report(err, r);
  }

  #report(err: unknown, r: Request<Session<T>> | undefined): void {
    try {
      this.#o.onError(err, r);
    } catch (hookErr) {
      this.#logError(hookErr, undefined);
    }
  }

  #logError(err: unknown, r: Request<Session<T>> | undefined): void {
    const e = err instanceof Error ? err : new Error(describe(err));
    const causeCode = (e.cause as { code?: unknown } | undefined)?.code;
    const cause = e.cause instanceof Error ? ` (cause: ${e.cause.name}${typeof causeCode === 'string' ? ` ${causeCode}` : ''})` : '';
    const where = r === undefined ? '' : ` [${r.method} ${r.path.length > 200 ? `${r.path.slice(0, 200)}…` : r.path}]`;
    let line = `bare-session: ${e.name}: ${e.message}${cause}${where}`.replace(/[\r\n]+/g, ' ');
    // Session ids are secrets (security.md 30): the request's own ids never reach the log, even
    // when a handler's message holds one.
    for (const id of r === undefined ? [] : this.#idsOf(r)) line = line.split(id).join('[session id]');
    try {
      this.#o.logger.error(line);
    } catch {
      // A logger that throws must not take the process down with it.
    }
  }

  /** The ids a request carries or was given: the incoming ones the validator accepts, and the session's. */
  #idsOf(r: Request<Session<T>>): string[] {
    const o = this.#o;
    const ids: string[] = [];
    for (const id of [r.cookie.get(o.sessionIdName), r.header(o.sessionIdName)]) {
      try {
        if (id !== undefined && id !== '' && o.sessionIdValidator(id)) ids.push(id);
      } catch {
        // A validator that throws accepted nothing.
      }
    }
    // `session` is unset when loading it failed.
    const current = (r.session as Session<T> | undefined)?.id;
    if (current !== undefined && current !== '') ids.push(current);
    return ids;
  }

  #secure(req: IncomingMessage): boolean {
    const o = this.#o;
    const tls = (req.socket as TLSSocket).encrypted === true;
    let viaProxy = false;
    const proto = req.headers['x-forwarded-proto'];
    if (typeof proto === 'string') {
      const first = proto.split(',', 1)[0]?.trim().toLowerCase();
      if (o.trustProxy) viaProxy = first === 'https';
      else if (first === 'https' && o.cookieSecure === 'auto') {
        this.#warnOnce('proxy', 'bare-session: a request came with X-Forwarded-Proto: https but trustProxy is off, so the session cookie is sent without Secure; set trustProxy: true behind a reverse proxy you trust');
      }
    }
    if (o.cookieSecure === 'auto') return tls || viaProxy;
    if (o.cookieSecure && !tls && !viaProxy) {
      this.#warnOnce('secure', 'bare-session: cookieSecure is true but a request came over plain HTTP; browsers will not send the Secure session cookie back over HTTP (use HTTPS, or trustProxy behind a TLS proxy)');
    }
    return o.cookieSecure;
  }

  #warnOnce(key: string, message: string): void {
    if (this.#warned.has(key)) return;
    this.#warned.add(key);
    this.#o.logger.warn(message);
  }
}

/** Runs middleware in order around `last`; each `next()` runs the rest once. */
async function runChain<T extends object>(chain: readonly Middleware<T>[], last: Handler<T>, r: Req<T>): Promise<void> {
  if (chain.length === 0) {
    await last(r);
    return;
  }
  const step = async (i: number): Promise<void> => {
    if (i === chain.length) {
      await last(r);
      return;
    }
    let called = false;
    await (chain[i] as Middleware<T>)(r, () => {
      if (called) return Promise.reject(new Error('next() called twice'));
      called = true;
      return step(i + 1);
    });
  };
  await step(0);
}

/** Same as `new Server(options)`. */
export function createServer<T extends object = SessionData>(options?: ServerOptions<T>): Server<T> {
  return new Server<T>(options);
}
