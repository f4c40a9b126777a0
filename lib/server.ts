/**
 * The server: its lifecycle (`start`, `close`, `run`), the dispatch of each request, and the
 * error path.
 *
 * One way through: request → router → session load → middleware and handler → session commit
 * → response.
 */
import { type IncomingMessage, type Server as HttpServer, type ServerResponse, createServer as createHttpServer } from 'node:http';
import { type ServerOptions as HttpsServerOptions, createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { CookieOptions, CookieSameSite } from './cookie.js';
import { type Duration, describe } from './duration.js';
import { HttpError, SessionError, STATUS_TEXT, StorageError, errCode } from './errors.js';
import { FileStorage } from './storage/file/file-storage.js';
import { Request, type RequestContext } from './request.js';
import { Response } from './response.js';
import { type Handler, type Middleware, RouteGroup, type RouteEntry, type RouteTable, chainOf, runChain } from './route-group.js';
import { EMPTY_PARAMS, type Match, Router } from './router.js';
import {
  type ErrorHook,
  type Logger,
  type OptionName,
  type Req,
  type ResolvedOptions,
  type ServerOptions,
  checkCombinations,
  parseOption,
  resolveOptions,
} from './server-options.js';
import { Session, SessionManager } from './session.js';
import { Sessions } from './sessions.js';
import type { SessionData, Storage } from './storage/storage.js';

const GENERIC_500 = STATUS_TEXT[500] as string;
/** How many lines of a stack the default error log shows. */
const STACK_LINES = 6;

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
  readonly #router: Router<RouteEntry<T>>;
  readonly #table: RouteTable<T>;
  readonly #o: ResolvedOptions<T>;
  #manager: SessionManager | undefined;
  #context: RequestContext | undefined;
  #storage: Storage | undefined;
  #http: HttpServer | undefined;
  #inFlight = 0;
  #idle: (() => void) | undefined;
  #closing: Promise<void> | undefined;
  readonly #warned = new Set<string>();
  /**
   * The sessions beyond the request's own: `count()`, `list()`, an owner's (`of`,
   * `destroyAll`), and lifecycle events (`on`).
   */
  readonly sessions: Sessions;

  /** Makes a server; options may also be set later with the setters. */
  constructor(options: ServerOptions<T> = {}) {
    const router = new Router<RouteEntry<T>>();
    const table: RouteTable<T> = { add: (method, pattern, entry) => router.add(method, pattern, entry), version: 0 };
    super('/', [], table);
    this.#router = router;
    this.#table = table;
    this.#o = resolveOptions(options);
    this.sessions = new Sessions({
      storage: () => this.#sessions().storage,
      maxAgeMs: () => this.#o.sessionMaxAge,
      now: () => this.#o.now(),
      listenersChanged: () => this.#resetSessions(),
    });
  }

  /** Sets the port to listen on (`0`: a free one). */
  setPort(port: number): this {
    return this.#set('port', port);
  }
  /** Sets the host to listen on. */
  setAddress(address: string): this {
    return this.#set('address', address);
  }
  /** Sets the idle timeout of sessions (at most 400 days). */
  setSessionMaxAge(maxAge: Duration): this {
    return this.#set('sessionMaxAge', maxAge);
  }
  /** Sets the absolute timeout of sessions (`0`: none). */
  setSessionMaxLifetime(lifetime: Duration): this {
    return this.#set('sessionMaxLifetime', lifetime);
  }
  /** Sets the longest idle timeout `r.session.remember(duration)` may give one session. */
  setSessionMaxAgeLimit(limit: Duration): this {
    return this.#set('sessionMaxAgeLimit', limit);
  }
  /** Serves HTTPS with these `node:https` options (before `start()`). */
  setHttps(options: HttpsServerOptions): this {
    return this.#set('https', options);
  }
  /** Sets where sessions live. */
  setSessionStorage(storage: Storage): this {
    return this.#set('sessionStorage', storage);
  }
  /** Sets the session cookie's name (also the header read when no cookie carries the id). */
  setSessionIdName(name: string): this {
    return this.#set('sessionIdName', name);
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
    parseOption('sessionIdValidator', validator);
    this.#set('sessionIdGenerator', generator);
    return this.#set('sessionIdValidator', validator);
  }
  /** Sets the largest serialized session, in bytes. */
  setSessionMaxSize(bytes: number): this {
    return this.#set('sessionMaxSize', bytes);
  }
  /** Sets the session cookie's `Path`. */
  setCookiePath(path: string): this {
    return this.#set('cookiePath', path);
  }
  /** Sets the session cookie's `Domain`. */
  setCookieDomain(domain: string): this {
    return this.#set('cookieDomain', domain);
  }
  /** Sets the session cookie's `SameSite`. */
  setCookieSameSite(sameSite: CookieSameSite): this {
    return this.#set('cookieSameSite', sameSite);
  }
  /** Sets the session cookie's `Secure` (`'auto'`: over TLS). */
  setCookieSecure(secure: boolean | 'auto'): this {
    return this.#set('cookieSecure', secure);
  }
  /** Sets the session cookie's `HttpOnly`. */
  setCookieHttpOnly(httpOnly: boolean): this {
    return this.#set('cookieHttpOnly', httpOnly);
  }
  /** Believes (or not) `X-Forwarded-Proto` from a reverse proxy. */
  setTrustProxy(trust: boolean): this {
    return this.#set('trustProxy', trust);
  }
  /** Sets the largest request body read, in bytes. */
  setBodyLimit(bytes: number): this {
    return this.#set('bodyLimit', bytes);
  }
  /** Sets how long `close()` waits for in-flight requests. */
  setCloseTimeout(timeout: Duration): this {
    return this.#set('closeTimeout', timeout);
  }
  /** Sets the hook that receives errors that ended a request with a 5xx. */
  setOnError(hook: ErrorHook<T>): this {
    return this.#set('onError', hook);
  }
  /** Sets where the server writes its lines. */
  setLogger(logger: Logger): this {
    return this.#set('logger', logger);
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

  /** The storage in use (the default `FileStorage` is created on `start()` or first use). */
  get storage(): Storage {
    this.#storage ??= this.#o.sessionStorage ?? new FileStorage();
    return this.#storage;
  }

  /** The `(req, res)` listener, for users who run their own `node:http` server. */
  readonly handler = (req: IncomingMessage, res: ServerResponse): void => {
    let pending: Promise<void> | undefined;
    try {
      pending = this.#handle(req, res);
    } catch (err) {
      this.#lastResort(err, res);
      return;
    }
    // The closure only for a request that did not finish at once.
    pending?.catch((err: unknown) => this.#lastResort(err, res));
  };

  /** Last resort: the handling itself failed. Answers if still possible; never crashes. */
  #lastResort(err: unknown, res: ServerResponse): void {
    this.#report(err, undefined);
    if (!res.headersSent) {
      res.statusCode = 500;
      res.end(GENERIC_500);
    } else {
      res.destroy();
    }
  }

  /**
   * Opens the storage (a folder another process holds is refused here), then listens on the
   * configured port and address; resolves once listening.
   */
  async start(): Promise<this> {
    if (this.#http !== undefined) throw new Error('server already started');
    void this.#sessions().storage;
    const http = this.#o.https === undefined ? createHttpServer(this.handler) : createHttpsServer(this.#o.https, this.handler);
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

  /**
   * Starts, prints the address it listens on and where sessions are kept, and on SIGINT or
   * SIGTERM closes, prints one line, and exits with status 0.
   */
  async run(): Promise<void> {
    const log = this.#o.logger;
    try {
      await this.start();
    } catch (err) {
      const code = errCode(err);
      const what = code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL' ? `could not listen on ${this.#o.address ?? 'port'} ${this.#o.port} (${code})` : `could not start: ${err instanceof Error ? err.message : describe(err)}`;
      log.error(`bare-session: ${what}`);
      process.exitCode = 1;
      return;
    }
    const stop = (signal: NodeJS.Signals): void => {
      this.close().then(
        () => {
          log.info(`bare-session: stopped (${signal})`);
          process.exit(0);
        },
        (err: unknown) => {
          this.#report(err, undefined);
          process.exit(1);
        },
      );
    };
    // Before the address is printed: a supervisor may signal as soon as it reads it.
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    log.info(`bare-session: listening on ${this.#listenAddress()}`);
    log.info(`bare-session: sessions ${storageWhere(this.storage)}`);
  }

  /** Where the server listens, as a user would type it, and whether that is every interface. */
  #listenAddress(): string {
    const address = this.#http?.address() as AddressInfo;
    const all = address.address === '::' || address.address === '0.0.0.0';
    const host = all ? 'localhost' : address.family === 'IPv6' ? `[${address.address}]` : address.address;
    return `${this.#o.https === undefined ? 'http' : 'https'}://${host}:${address.port}${all ? ' (all interfaces)' : ''}`;
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
          timer = setTimeout(resolve, this.#o.closeTimeout);
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
      maxAgeMs: o.sessionMaxAge,
      maxLifetimeMs: o.sessionMaxLifetime,
      maxAgeLimitMs: o.sessionMaxAgeLimit,
      emit: this.sessions.emitter(),
      idName: o.sessionIdName,
      cookieOutput: o.sessionCookieOutput,
      cookieMaxAgeMs: o.sessionCookieMaxAge ?? o.sessionMaxAge,
      cookie: this.#cookieDefaults(),
      generateId: o.sessionIdGenerator,
      validateId: o.sessionIdValidator,
      maxSize: o.sessionMaxSize,
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

  /** Sets one option; settings that then contradict each other are refused and nothing changes. */
  #set<K extends OptionName>(key: K, value: unknown): this {
    const o = this.#o as unknown as ResolvedOptions;
    const next = { ...o, [key]: parseOption(key, value) };
    checkCombinations(next);
    const given = o.sessionStorage;
    Object.assign(o, next);
    this.#context = undefined;
    if (key === 'sessionStorage' && this.#storage !== undefined && this.#storage !== value) {
      // A default FileStorage made here is ours to close; a storage the user gave is theirs.
      if (this.#storage !== given) void this.#storage.close?.().catch((err: unknown) => this.#report(err, undefined));
      this.#storage = undefined;
    }
    // Session settings are read when the first request needs them; a change rebuilds them.
    if (key.startsWith('session') || key.startsWith('cookie') || key === 'now' || key === 'https') this.#resetSessions();
    return this;
  }

  /**
   * Drops the session manager, to be rebuilt with the current settings by the next request,
   * which configures the storage again.
   */
  #resetSessions(): void {
    this.#manager?.close();
    this.#manager = undefined;
  }

  /**
   * Handles one request. Each step (load, middleware and handler, commit) goes on at once when
   * it answered at once, and only a step that returned a promise makes the rest wait: a request
   * on a storage that answers from memory, with a synchronous handler, takes no promise.
   */
  #handle(req: IncomingMessage, res: ServerResponse): Promise<void> | undefined {
    const response = new Response(res);
    const method = req.method ?? 'GET';
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const match = this.#router.find(method, q === -1 ? url : url.slice(0, q));
    const global = this.ownMiddleware();
    if (match.kind !== 'found' && global.length === 0) {
      // Unknown path or method and no middleware to run: answer without touching sessions.
      answerUnmatched(response, match);
      if (this.#closing !== undefined) response.header('Connection', 'close');
      response.send(undefined);
      return undefined;
    }
    this.#inFlight++;
    const r = new Request<Session<T>>(req, response, this.#requestContext(), match.kind === 'found' ? match.params : EMPTY_PARAMS);
    let pending: Promise<void> | undefined;
    try {
      const manager = this.#sessions();
      const loaded = manager.load<T>(manager.incomingIds(req.headers.cookie, r), r);
      if (loaded instanceof Promise) {
        pending = loaded.then((session) => {
          r.session = session;
          return this.#run(r, match, manager);
        });
      } else {
        r.session = loaded;
        pending = this.#run(r, match, manager);
      }
    } catch (err) {
      this.#fail(err, r);
    }
    if (pending === undefined) {
      this.#finish(r);
      return undefined;
    }
    return pending.then(
      () => this.#finish(r),
      (err: unknown) => {
        this.#fail(err, r);
        this.#finish(r);
      },
    );
  }

  /** Runs the middleware and the handler, then commits: a promise only when a step gave one. */
  #run(r: Request<Session<T>>, match: Match<RouteEntry<T>>, manager: SessionManager): Promise<void> | undefined {
    let ran: unknown;
    if (match.kind === 'found') {
      ran = runChain(chainOf(match.handler, this.#table.version), match.handler.handler, r);
    } else {
      ran = runChain(this.ownMiddleware(), () => answerUnmatched(r.response, match), r);
    }
    if (isThenable(ran)) return Promise.resolve(ran).then(() => this.#commit(r, manager));
    return this.#commit(r, manager);
  }

  #commit(r: Request<Session<T>>, manager: SessionManager): Promise<void> | undefined {
    const committed = manager.commit(r.session as Session<object>, r, this.#secure(r.raw), r);
    if (committed instanceof Promise) return committed.then((cookie) => this.#noStore(r, cookie));
    this.#noStore(r, committed);
    return undefined;
  }

  /** Responses that set or clear the session cookie are not cached, unless the handler said otherwise. */
  #noStore(r: Request<Session<T>>, cookieSet: boolean): void {
    if (cookieSet && r.response.getHeader('cache-control') === undefined) r.response.header('Cache-Control', 'no-store');
  }

  /** Sends the response, once everything before it is done. */
  #finish(r: Request<Session<T>>): void {
    this.#inFlight--;
    const response = r.response;
    if (this.#closing !== undefined && !response.takenOver) response.header('Connection', 'close');
    response.send(r.pendingCookies);
    if (this.#inFlight === 0) this.#idle?.();
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
    if (err instanceof StorageError) this.#manager?.emit({ type: 'storageError', error: err }, r);
    this.#report(err, r);
  }

  #report(err: unknown, r: Request<Session<T>> | undefined): void {
    try {
      if (this.#o.onError !== undefined) this.#o.onError(err, r);
      else this.#logError(err, r);
    } catch (hookErr) {
      this.#logError(hookErr, undefined);
    }
  }

  /**
   * The default error log: the error's class and message, its cause's class and code, the
   * route, and the first lines of the stack, so a new user finds where it was thrown. Session
   * ids never reach it.
   */
  #logError(err: unknown, r: Request<Session<T>> | undefined): void {
    const e = err instanceof Error ? err : new Error(describe(err));
    const causeCode = errCode(e.cause);
    const cause = e.cause instanceof Error ? ` (cause: ${e.cause.name}${causeCode === undefined ? '' : ` ${causeCode}`})` : '';
    const where = r === undefined ? '' : ` [${r.method} ${r.path.length > 200 ? `${r.path.slice(0, 200)}…` : r.path}]`;
    const frames = err instanceof Error && typeof e.stack === 'string' ? e.stack.split('\n').filter((l) => /^\s+at /.test(l)).slice(0, STACK_LINES) : [];
    let text = [`bare-session: ${e.name}: ${e.message}${cause}${where}`.replace(/[\r\n]+/g, ' '), ...frames.map((l) => `    ${l.trim()}`)].join('\n');
    // Session ids are secrets (SECURITY.md 30): the request's own ids never reach the log, even
    // when a handler's message holds one.
    for (const id of r === undefined ? [] : this.#idsOf(r)) text = text.split(id).join('[session id]');
    try {
      this.#o.logger.error(text);
    } catch {
      // A logger that throws must not take the process down with it.
    }
  }

  /** The ids a request carries or was given: the incoming ones the validator accepts, and the session's. */
  #idsOf(r: Request<Session<T>>): string[] {
    const o = this.#o;
    const ids: string[] = [];
    for (const id of this.#sessions().incomingIds(r.raw.headers.cookie, r)) {
      try {
        if (id !== '' && o.sessionIdValidator(id)) ids.push(id);
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

/**
 * The answer when no route handles a request: 404 for an unknown path, 400 for a path whose
 * parameters are not valid percent-encoding, 204 with `Allow` to an `OPTIONS` request on a
 * known path, and 405 with `Allow` to another method there.
 */
function answerUnmatched(response: Response, match: Exclude<Match<unknown>, { kind: 'found' }>): void {
  switch (match.kind) {
    case 'none':
      response.status(404).write(STATUS_TEXT[404] as string);
      return;
    case 'bad':
      response.status(400).write(STATUS_TEXT[400] as string);
      return;
    case 'options':
      response.status(204).header('Allow', match.allow);
      return;
    case 'method':
      response.status(405).header('Allow', match.allow).write(STATUS_TEXT[405] as string);
  }
}

/** Whether a value is a promise or another thenable. */
function isThenable(value: unknown): value is PromiseLike<unknown> {
  return value !== null && (typeof value === 'object' || typeof value === 'function') && typeof (value as { then?: unknown }).then === 'function';
}

/** Where a storage keeps sessions, for `run()`'s line. */
function storageWhere(storage: Storage): string {
  const path = (storage as { path?: unknown }).path;
  const name = (storage as { constructor?: { name?: unknown } }).constructor?.name;
  const kind = typeof name === 'string' && name !== 'Object' ? name : 'a custom storage';
  if (typeof path === 'string') return `in ${path} (${kind})`;
  return kind === 'MemoryStorage' ? 'in memory (MemoryStorage: lost on restart)' : `in ${kind}`;
}

/** Same as `new Server(options)`. */
export function createServer<T extends object = SessionData>(options?: ServerOptions<T>): Server<T> {
  return new Server<T>(options);
}
