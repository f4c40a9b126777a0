/**
 * The session a handler sees as `r.session`, and the manager that loads it before the handler
 * and commits it after, before the response is sent.
 *
 * A session keeps what it loaded as a read-only base and records this request's changes on the
 * side. The commit applies those changes to the state stored at that moment (not to the copy
 * loaded earlier), so two overlapping requests that write different keys both keep their keys.
 */
import { ExpiringCache } from './cache.js';
import { type CookieOptions, serializeCookie } from './cookie.js';
import { SessionError, StorageError } from './errors.js';
import { cloneJson, setOwn, toJsonValue } from './json.js';
import type { CookieJar } from './request.js';
import type { JsonValue, SessionData, Storage } from './storage.js';

// cookie-octet = %x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E (RFC 6265), and no "%": such a
// value is written as it is. At most 4 000 characters, within what browsers keep.
const COOKIE_OCTETS_RE = /^[\x21\x23\x24\x26-\x2B\x2D-\x3A\x3C-\x5B\x5D-\x7E]{1,4000}$/;

/** Marks a key this request removed. */
const REMOVED = Symbol('removed');

type Change = JsonValue | typeof REMOVED;

/** Keys of a session data type, as strings. */
type Key<T> = keyof T & string;

/** What the manager needs of a session; not part of the public surface. */
interface SessionState {
  id: string;
  /** The data loaded from storage (or carried over by regenerate); never changed in place. */
  base: SessionData | undefined;
  changes: Map<string, Change>;
  cleared: boolean;
  dirty: boolean;
  /** The id was adopted from the request and exists in storage. */
  adopted: boolean;
  /** The id was issued during this request and is not in storage yet. */
  fresh: boolean;
  /** `destroy()` ran during this request. */
  destroyed: boolean;
}

/** The key of a session's state, for the manager; not part of the public surface. */
const STATE: unique symbol = Symbol('session state');

/**
 * One request's view of a session. Data operations are synchronous and work on memory.
 *
 * `T` types the data: `new Server<{ time: number }>()` makes `r.session.get('time')` a
 * `number | undefined`.
 */
export class Session<T extends object = SessionData> {
  readonly #s: SessionState;
  readonly #manager: SessionManager;
  /** @internal The state the manager commits. */
  readonly [STATE]: SessionState;

  /** @internal Built by the server; a handler receives it as `r.session`. */
  constructor(manager: SessionManager, id: string, base: SessionData | undefined) {
    this.#manager = manager;
    this.#s = {
      id,
      base,
      changes: new Map(),
      cleared: false,
      dirty: false,
      adopted: base !== undefined,
      fresh: false,
      destroyed: false,
    };
    this[STATE] = this.#s;
  }

  /** The session id; `''` while the session has not started (nothing written yet). */
  get id(): string {
    return this.#s.id;
  }

  /** Whether this request changed the session. */
  get isDirty(): boolean {
    return this.#s.dirty;
  }

  /** The value stored under `key` (a copy of objects and arrays), else `def`, else `undefined`. */
  get<K extends Key<T>>(key: K): T[K] | undefined;
  get<K extends Key<T>>(key: K, def: T[K]): T[K];
  get<K extends Key<T>>(key: K, def?: T[K]): T[K] | undefined {
    const v = this.#lookup(key);
    return v === undefined ? def : (cloneJson(v) as T[K]);
  }

  /** Whether `key` is present. */
  has(key: Key<T>): boolean {
    return this.#lookup(key) !== undefined;
  }

  /** How many keys the session holds. */
  get size(): number {
    return Object.keys(this.#view()).length;
  }

  /** A plain copy of everything the session holds. */
  data(): Partial<T> {
    // Objects are deep-copied, primitives are not: `{ time: 1 }` costs one small object.
    const view = this.#view();
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(view)) setOwn(out, k, cloneJson(view[k]));
    return out as Partial<T>;
  }

  /**
   * Stores a JSON value under `key`. A value JSON cannot hold (a function, symbol, bigint,
   * `undefined`, a cycle, a `Date` or other class instance) throws a `TypeError` and changes
   * nothing. The value is copied: changing the object afterwards does not change the session.
   */
  set<K extends Key<T>>(key: K, value: T[K]): this {
    const v = toJsonValue(value, key);
    this.#start();
    this.#s.changes.set(key, v);
    this.#s.dirty = true;
    return this;
  }

  /** Stores several values at once: all of them, or (when one is invalid) none. */
  setMap(record: Partial<T>): this {
    if (record === null || typeof record !== 'object') {
      throw new TypeError('session record is invalid: expected an object');
    }
    const entries = Object.keys(record).map((k) => [k, toJsonValue((record as Record<string, unknown>)[k], k)] as const);
    if (entries.length === 0) return this;
    this.#start();
    for (const [k, v] of entries) this.#s.changes.set(k, v);
    this.#s.dirty = true;
    return this;
  }

  /** Deletes keys. */
  remove(...keys: Key<T>[]): this {
    for (const k of keys) this.#s.changes.set(k, REMOVED);
    this.#s.dirty = true;
    return this;
  }

  /** Deletes every key. The session and its id stay; use {@link Session.destroy} to end it. */
  removeAll(): this {
    this.#s.changes.clear();
    this.#s.cleared = true;
    this.#s.dirty = true;
    return this;
  }

  /**
   * Gives the session a new id (on login, for example), deleting the record under the old one.
   * The data is kept unless `keepData` is `false`. Resolves to the new id; the response sets the
   * new cookie.
   */
  async regenerate({ keepData = true }: { keepData?: boolean } = {}): Promise<string> {
    const s = this.#s;
    const base = keepData ? this.#view() : Object.create(null) as SessionData;
    const oldId = s.adopted ? s.id : '';
    s.id = this.#manager.newId();
    s.base = base;
    s.changes = new Map();
    s.cleared = false;
    s.dirty = true;
    s.adopted = false;
    s.fresh = true;
    s.destroyed = false;
    if (oldId !== '') await this.#manager.remove(oldId);
    return s.id;
  }

  /**
   * Ends the session: deletes its record everywhere and expires the cookie. The session reads
   * as empty afterwards; a later `set` in the same request starts a new one with a new id.
   */
  async destroy(): Promise<void> {
    const s = this.#s;
    const oldId = s.adopted ? s.id : '';
    s.id = '';
    s.base = undefined;
    s.changes = new Map();
    s.cleared = false;
    s.dirty = false;
    s.adopted = false;
    s.fresh = false;
    s.destroyed = true;
    if (oldId !== '') await this.#manager.remove(oldId);
  }

  /** Issues an id on the first write of a session that has none. */
  #start(): void {
    if (this.#s.id === '') {
      this.#s.id = this.#manager.newId();
      this.#s.fresh = true;
    }
  }

  #lookup(key: string): JsonValue | undefined {
    const s = this.#s;
    const c = s.changes.get(key);
    if (c !== undefined) return c === REMOVED ? undefined : c;
    if (s.cleared || s.base === undefined || !Object.hasOwn(s.base, key)) return undefined;
    return s.base[key];
  }

  #view(): SessionData {
    return applyChanges(this.#s.cleared ? undefined : this.#s.base, this.#s.changes);
  }
}

/** A new null-prototype record: `base` (when given) with `changes` applied. */
function applyChanges(base: SessionData | undefined, changes: ReadonlyMap<string, Change>): SessionData {
  const out: SessionData = Object.create(null);
  if (base !== undefined) {
    for (const k of Object.keys(base)) setOwn(out, k, base[k]);
  }
  for (const [k, v] of changes) {
    if (v === REMOVED) delete out[k];
    else setOwn(out, k, v);
  }
  return out;
}

/** What the manager needs to know, resolved by the server from its options. */
export interface SessionConfig {
  readonly storage: () => Storage;
  readonly maxAgeMs: number;
  readonly idName: string;
  readonly cookieOutput: boolean;
  /** The cookie's Max-Age in ms; 0 for a browser-session cookie. */
  readonly cookieMaxAgeMs: number;
  readonly cookie: CookieOptions;
  readonly generateId: () => string;
  readonly validateId: (id: string) => boolean;
  readonly maxSize: number;
  /** How often a read-only request may refresh the cookie. */
  readonly cookieRefreshMs: number;
  readonly now: () => number;
}

/**
 * Loads sessions before the handler and commits them after. One per server.
 */
export class SessionManager {
  readonly #config: SessionConfig;
  /** Commits of one id run one after another: `get`, merge and `set` never interleave. */
  readonly #locks = new Map<string, Promise<void>>();
  /** When each id last had its cookie sent, so read-only requests refresh it at most once a minute. */
  readonly #cookieSent: ExpiringCache<string, true>;
  /** The session cookie's attributes after `name=value`, without and with `Secure`. */
  readonly #suffixes: [string | undefined, string | undefined] = [undefined, undefined];

  constructor(config: SessionConfig) {
    this.#config = config;
    this.#cookieSent = new ExpiringCache<string, true>({ ttl: config.cookieRefreshMs, max: 100_000, now: config.now });
  }

  /** A new id from the configured generator. */
  newId(): string {
    const id = this.#config.generateId();
    if (typeof id !== 'string' || !this.#config.validateId(id)) {
      throw new TypeError('option sessionIdGenerator is invalid: it made an id that sessionIdValidator refuses');
    }
    return id;
  }

  /** The id a request carries: the cookie, else the header of the same name. */
  incomingId(jar: CookieJar, header: (name: string) => string | undefined): string | undefined {
    return jar.get(this.#config.idName) ?? header(this.#config.idName);
  }

  /**
   * Loads the session of a request. An id that is malformed, unknown or expired is never
   * adopted: the handler sees an empty session, and a write gets a new id. A storage that fails
   * rejects with a `StorageError` (the request gets a 503), never with an empty session.
   */
  async load<T extends object>(id: string | undefined): Promise<Session<T>> {
    if (id === undefined || id === '' || !this.#config.validateId(id)) return new Session<T>(this, '', undefined);
    let data: SessionData | undefined;
    try {
      data = await this.#config.storage().get(id);
    } catch (err) {
      throw asStorageError(err, 'read');
    }
    return data === undefined ? new Session<T>(this, '', undefined) : new Session<T>(this, id, data);
  }

  /** Deletes a session's record (used by `regenerate` and `destroy`). */
  async remove(id: string): Promise<void> {
    await this.#lock(id, async () => {
      try {
        await this.#config.storage().remove(id);
      } catch (err) {
        throw asStorageError(err, 'delete');
      }
      this.#cookieSent.delete(id);
    });
  }

  /**
   * Commits a session after the handler: writes it when it changed, extends its life when it
   * was only read, and sets or expires the cookie. Rejects with a `StorageError` (503) when the
   * storage fails; nothing is half-written.
   * @returns whether the session cookie was set or cleared
   */
  async commit(session: Session<object>, jar: CookieJar, secure: boolean): Promise<boolean> {
    const s = session[STATE];
    const c = this.#config;
    let sendCookie = false;
    if (s.dirty && s.id !== '') {
      if (s.fresh) {
        const data = applyChanges(s.cleared ? undefined : s.base, s.changes);
        if (Object.keys(data).length === 0 && s.base === undefined) {
          // Started and emptied in one request: nothing to keep, no session created.
          s.id = '';
        } else {
          await this.#write(s.id, data);
          sendCookie = true;
        }
      } else {
        const written = await this.#lock(s.id, async () => {
          const current = await this.#read(s.id);
          // Destroyed, regenerated or expired meanwhile: never bring it back.
          if (current === undefined) return false;
          await this.#write(s.id, applyChanges(s.cleared ? undefined : current, s.changes));
          return true;
        });
        sendCookie = written;
      }
    } else if (s.adopted && s.base !== undefined && Object.keys(s.base).length > 0) {
      try {
        await c.storage().touch(s.id, c.maxAgeMs);
      } catch (err) {
        throw asStorageError(err, 'touch');
      }
      sendCookie = c.cookieMaxAgeMs > 0 && !this.#cookieSent.has(s.id);
    }
    if (!c.cookieOutput) return false;
    if (sendCookie) {
      this.#cookieSent.set(s.id, true);
      jar.pending.set(c.idName, this.#sessionCookie(s.id, secure));
      return true;
    }
    if (s.destroyed && s.id === '') {
      jar.remove(c.idName, this.#cookieOptions(secure));
      return true;
    }
    return false;
  }

  /** Stops the manager's timers. */
  close(): void {
    this.#cookieSent.close();
  }

  /**
   * The session cookie's `Set-Cookie` value. The attributes never change for one server, so
   * they are serialized (and checked) once per `Secure` flag and reused: this saves the
   * grammar checks and option objects on every write, about a tenth of a write's CPU.
   */
  #sessionCookie(id: string, secure: boolean): string {
    const i = secure ? 1 : 0;
    const suffix = (this.#suffixes[i] ??= serializeCookie(this.#config.idName, 'x', this.#cookieOptions(secure)).slice(this.#config.idName.length + 2));
    // Ids of the default format are cookie-octets as they are; a custom id is checked in full.
    return COOKIE_OCTETS_RE.test(id) ? `${this.#config.idName}=${id}${suffix}` : serializeCookie(this.#config.idName, id, this.#cookieOptions(secure));
  }

  #cookieOptions(secure: boolean): CookieOptions {
    const c = this.#config;
    const options: CookieOptions = { ...c.cookie, secure };
    if (c.cookieMaxAgeMs > 0) options.maxAge = Math.floor(c.cookieMaxAgeMs / 1000);
    return options;
  }

  async #read(id: string): Promise<SessionData | undefined> {
    try {
      return await this.#config.storage().get(id);
    } catch (err) {
      throw asStorageError(err, 'read');
    }
  }

  async #write(id: string, data: SessionData): Promise<void> {
    const size = Buffer.byteLength(JSON.stringify(data));
    if (size > this.#config.maxSize) {
      throw new SessionError(
        `session data is ${size} bytes, over the sessionMaxSize of ${this.#config.maxSize} bytes; nothing was written`,
        'ESESSIONTOOLARGE',
        500,
      );
    }
    try {
      await this.#config.storage().set(id, data, this.#config.maxAgeMs);
    } catch (err) {
      throw asStorageError(err, 'write');
    }
  }

  async #lock<R>(id: string, fn: () => Promise<R>): Promise<R> {
    const previous = this.#locks.get(id);
    let release!: () => void;
    const mine = new Promise<void>((resolve) => {
      release = resolve;
    });
    const tail = previous === undefined ? mine : previous.then(() => mine);
    this.#locks.set(id, tail);
    try {
      if (previous !== undefined) await previous;
      return await fn();
    } finally {
      release();
      if (this.#locks.get(id) === tail) this.#locks.delete(id);
    }
  }
}

function asStorageError(err: unknown, what: string): SessionError {
  if (err instanceof SessionError) return err;
  const code = (err as { code?: unknown } | null)?.code;
  return new StorageError(`session storage failed to ${what} a session${typeof code === 'string' ? ` (${code})` : ''}`, { cause: err });
}
