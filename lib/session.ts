/**
 * The session a handler sees as `r.session`, and the manager that loads it before the handler
 * and commits it after, before the response is sent.
 *
 * A session keeps what it loaded as a read-only base and records this request's changes on the
 * side. Nothing reaches the storage before the commit: not the changes, not a `regenerate`, not
 * a `destroy`. So a request that fails commits nothing, and the commit applies the changes to
 * the state stored at that moment (not to the copy loaded earlier): two overlapping requests
 * that write different keys both keep their keys.
 */
import { ExpiringCache } from './cache.js';
import { type CookieOptions, MAX_COOKIE_AGE_SECONDS, cookieValues, isPlainCookieValue, serializeCookie } from './cookie.js';
import { SessionError, StorageError, errCode, sessionTooLarge } from './errors.js';
import { cloneJson, jsonEqual, setOwn, toJsonValue } from './json.js';
import type { CookieJar } from './request.js';
import type { JsonValue, SessionChanges, SessionData, Storage } from './storage.js';

/**
 * How many values of the session cookie one request may offer. A sibling subdomain can plant a
 * second cookie of the same name beside the host's own; each well-formed one costs a storage
 * read, so the number is small.
 */
export const MAX_SESSION_COOKIES = 4;

/** Marks a key this request removed. */
const REMOVED = Symbol('removed');

type Change = JsonValue | typeof REMOVED;

/** Keys of a session data type, as strings. */
type Key<T> = keyof T & string;

/** What the manager needs of a session; not part of the public surface. */
interface SessionState {
  /** The session's id now: the loaded one, a new one, or `''` (none). */
  id: string;
  /** The id adopted from the request (it exists in storage), or `''`. */
  readonly origin: string;
  /** The data loaded under `origin`; never changed in place. */
  readonly base: SessionData | undefined;
  changes: Map<string, Change>;
  /** Every stored key is dropped before `changes` apply. */
  cleared: boolean;
  /** Whether the data of the session under `id` derives from the stored `origin`. */
  fromOrigin: boolean;
  /** `regenerate()` or `destroy()` ran: `origin` is deleted at the commit. */
  retire: boolean;
  /** `regenerate()` ran: the session under the new id is written even when empty. */
  regenerated: boolean;
  /** `destroy()` ran and no session was started after it. */
  destroyed: boolean;
  /** A data operation ran (`set`, `setMap`, `remove`, `removeAll`). */
  touched: boolean;
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
  readonly #newId: () => string;
  /** @internal The state the manager commits. */
  readonly [STATE]: SessionState;

  /**
   * Built by the server's session manager; a handler receives it as `r.session`.
   * @param newId - makes an id when the session starts or is regenerated
   * @param id - the id loaded from the request (`''`: none)
   * @param base - the data stored under `id`
   */
  constructor(newId: () => string, id: string, base: SessionData | undefined) {
    this.#newId = newId;
    this.#s = {
      id,
      origin: id,
      base,
      changes: new Map(),
      cleared: false,
      fromOrigin: id !== '',
      retire: false,
      regenerated: false,
      destroyed: false,
      touched: false,
    };
    this[STATE] = this.#s;
  }

  /** The session id; `''` while the session has not started (nothing written yet). */
  get id(): string {
    return this.#s.id;
  }

  /**
   * Whether this request changed the session: its data differs from what was loaded, or it was
   * regenerated or destroyed. Setting a key to the value it already holds is no change.
   */
  get isDirty(): boolean {
    const s = this.#s;
    return s.retire || s.regenerated || (s.touched && changed(s));
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
    return Object.keys(view(this.#s)).length;
  }

  /** A plain copy of everything the session holds. */
  data(): Partial<T> {
    // Objects are deep-copied, primitives are not: `{ time: 1 }` costs one small object.
    const v = view(this.#s);
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v)) setOwn(out, k, cloneJson(v[k]));
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
    this.#s.touched = true;
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
    this.#s.touched = true;
    return this;
  }

  /** Deletes keys. */
  remove(...keys: Key<T>[]): this {
    for (const k of keys) this.#s.changes.set(k, REMOVED);
    this.#s.touched = true;
    return this;
  }

  /** Deletes every key. The session and its id stay; use {@link Session.destroy} to end it. */
  removeAll(): this {
    this.#s.changes.clear();
    this.#s.cleared = true;
    this.#s.touched = true;
    return this;
  }

  /**
   * Gives the session a new id (on login, for example). The data is kept unless `keepData` is
   * `false`. Resolves to the new id at once; the commit, after the handler, writes the session
   * under the new id, then deletes the record under the old one, and the response sets the new
   * cookie. A request that fails commits nothing: the old session and its cookie stay valid.
   */
  async regenerate({ keepData = true }: { keepData?: boolean } = {}): Promise<string> {
    const s = this.#s;
    if (!keepData) {
      s.changes = new Map();
      s.cleared = true;
      s.fromOrigin = false;
    }
    s.id = this.#newId();
    s.retire = s.origin !== '';
    s.regenerated = true;
    s.destroyed = false;
    return s.id;
  }

  /**
   * Ends the session: the commit deletes its record everywhere and the response expires the
   * cookie. The session reads as empty afterwards; a later `set` in the same request starts a
   * new one with a new id. A request that fails commits nothing.
   */
  async destroy(): Promise<void> {
    const s = this.#s;
    s.id = '';
    s.changes = new Map();
    s.cleared = true;
    s.fromOrigin = false;
    s.retire = s.origin !== '';
    s.regenerated = false;
    s.destroyed = true;
  }

  /** Issues an id on the first write of a session that has none. */
  #start(): void {
    if (this.#s.id === '') {
      this.#s.id = this.#newId();
      this.#s.destroyed = false;
    }
  }

  #lookup(key: string): JsonValue | undefined {
    const s = this.#s;
    const c = s.changes.get(key);
    if (c !== undefined) return c === REMOVED ? undefined : c;
    if (s.cleared || !s.fromOrigin || s.base === undefined || !Object.hasOwn(s.base, key)) return undefined;
    return s.base[key];
  }
}

/** The data a session shows now: what was loaded (unless cleared), with this request's changes. */
function view(s: SessionState): SessionData {
  return applyChanges(s.cleared || !s.fromOrigin ? undefined : s.base, s.changes);
}

/** Whether the changes leave the loaded data different from what it was. */
function changed(s: SessionState): boolean {
  const base = s.fromOrigin ? s.base : undefined;
  if (s.cleared) {
    const after = applyChanges(undefined, s.changes);
    return !jsonEqual(after, base ?? {});
  }
  for (const [k, v] of s.changes) {
    const had = base !== undefined && Object.hasOwn(base, k);
    if (v === REMOVED ? had : !had || !jsonEqual((base as SessionData)[k], v)) return true;
  }
  return false;
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

/** This request's changes in the form {@link Storage.patch} takes. */
function changeSet(s: SessionState): SessionChanges {
  const set: SessionData = Object.create(null);
  const remove: string[] = [];
  for (const [k, v] of s.changes) {
    if (v === REMOVED) remove.push(k);
    else setOwn(set, k, v);
  }
  return { set, remove, clear: s.cleared };
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
  readonly now: () => number;
}

/**
 * How often a request that does not change the id may send the session cookie again, for a
 * cookie that lives `cookieMaxAgeMs`: a quarter of its life, at most a minute. An active user's
 * cookie is then never older than that, and never dies before the server's session does.
 */
export function cookieRefreshInterval(cookieMaxAgeMs: number): number {
  return Math.max(1, Math.min(60_000, Math.floor(cookieMaxAgeMs / 4)));
}

/** The `Max-Age` of a cookie that must live `ms`: whole seconds, rounded up (never 0 for a live cookie). */
export function cookieMaxAgeSeconds(ms: number): number {
  return Math.min(MAX_COOKIE_AGE_SECONDS, Math.ceil(ms / 1000));
}

/**
 * Loads sessions before the handler and commits them after. One per server.
 */
export class SessionManager {
  readonly #config: SessionConfig;
  /** Commits of one id run one after another: `get`, merge and `set` never interleave. */
  readonly #locks = new Map<string, Promise<void>>();
  /** When each id last had its cookie sent, so read-only requests refresh it only when due. */
  readonly #cookieSent: ExpiringCache<string, true>;
  /** The session cookie's attributes after `name=value`, without and with `Secure`. */
  readonly #suffixes: [string | undefined, string | undefined] = [undefined, undefined];
  #storage: Storage | undefined;
  /** Whether the storage checks `maxSize` itself (it has `configure`). */
  #storageChecksSize = false;
  readonly #newId = (): string => this.newId();

  constructor(config: SessionConfig) {
    this.#config = config;
    this.#cookieSent = new ExpiringCache<string, true>({ ttl: cookieRefreshInterval(config.cookieMaxAgeMs), max: 100_000, now: config.now });
  }

  /** The storage, configured with the server's settings on first use. */
  get storage(): Storage {
    if (this.#storage === undefined) {
      const storage = this.#config.storage();
      if (typeof storage.configure === 'function') {
        storage.configure({ maxAgeMs: this.#config.maxAgeMs, maxSize: this.#config.maxSize });
        this.#storageChecksSize = true;
      }
      this.#storage = storage;
    }
    return this.#storage;
  }

  /** A new id from the configured generator. */
  newId(): string {
    const id = this.#config.generateId();
    if (typeof id !== 'string' || !this.#config.validateId(id)) {
      throw new TypeError('option sessionIdGenerator is invalid: it made an id that sessionIdValidator refuses');
    }
    return id;
  }

  /**
   * The ids a request offers, in order: every value of the session cookie (at most
   * {@link MAX_SESSION_COOKIES}), else the request header of the same name.
   */
  incomingIds(cookieHeader: string | undefined, header: (name: string) => string | undefined): string[] {
    const name = this.#config.idName;
    const ids = cookieValues(cookieHeader, name, MAX_SESSION_COOKIES);
    if (ids.length === 0) {
      const h = header(name);
      if (h !== undefined) ids.push(h);
    }
    return ids;
  }

  /**
   * Loads the session of a request: the first offered id that is well-formed and names a live
   * session. An id that is malformed, unknown or expired is never adopted: with none left the
   * handler sees an empty session, and a write gets a new id. A storage that fails rejects with
   * a `StorageError` (the request gets a 503), never with an empty session.
   */
  async load<T extends object>(ids: readonly string[]): Promise<Session<T>> {
    for (const id of ids) {
      if (id === '' || !this.#config.validateId(id)) continue;
      const data = await this.#read(id);
      if (data !== undefined) return new Session<T>(this.#newId, id, data);
    }
    return new Session<T>(this.#newId, '', undefined);
  }

  /**
   * Commits a session after the handler: writes it when it changed, extends its life when it
   * was only read, carries out `regenerate` and `destroy`, and sets or expires the cookie.
   * Everything that can fail without the storage (the cookie) is checked before anything is
   * written. Rejects with a `StorageError` (503) when the storage fails; nothing is half-written
   * and no cookie is set then.
   * @returns whether the session cookie was set or cleared
   */
  async commit(session: Session<object>, jar: CookieJar, secure: boolean): Promise<boolean> {
    const s = session[STATE];
    const c = this.#config;
    let cookie: string | undefined;
    if (s.id === '') {
      // No session now: never started, or destroyed.
      if (s.retire) await this.#remove(s.origin);
    } else if (s.id === s.origin) {
      // The loaded session, same id: write the changes, or extend its life.
      if (s.touched && changed(s)) {
        if (await this.#update(s)) cookie = this.#cookieIfDue(s.id, secure, true);
      } else if (s.base !== undefined && Object.keys(s.base).length > 0) {
        let alive = await this.#touch(s.id);
        cookie = this.#cookieIfDue(s.id, secure, false);
        // A storage that does not say whether the session still exists is asked before a
        // cookie goes out: a session another request destroyed is never sent back.
        if (cookie !== undefined && alive === undefined) alive = (await this.#read(s.id)) !== undefined;
        if (alive === false) cookie = undefined;
      }
    } else {
      // A new id: a new session, or a regenerated one.
      let base: SessionData | undefined;
      let gone = false;
      if (s.fromOrigin && !s.cleared) {
        base = await this.#read(s.origin);
        // Destroyed or expired meanwhile: its data is never carried to a new id.
        gone = base === undefined;
      }
      const data = applyChanges(base, s.changes);
      if (gone || (!s.regenerated && Object.keys(data).length === 0)) {
        // Nothing to keep (started and emptied in one request): no session is created.
        s.id = '';
      } else {
        // Built before the write: a cookie that cannot be sent fails the request first.
        const header = c.cookieOutput ? this.#sessionCookie(s.id, secure) : undefined;
        await this.#write(s.id, data);
        this.#cookieSent.set(s.id, true);
        cookie = header;
      }
      if (s.retire) await this.#remove(s.origin);
    }
    if (!c.cookieOutput) return false;
    if (cookie !== undefined) {
      jar.pending.set(c.idName, cookie);
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

  /** The session cookie when it is due (always after a write when `wrote`), recording it as sent. */
  #cookieIfDue(id: string, secure: boolean, wrote: boolean): string | undefined {
    const c = this.#config;
    if (!c.cookieOutput) return undefined;
    if (!wrote && (c.cookieMaxAgeMs === 0 || this.#cookieSent.has(id))) return undefined;
    this.#cookieSent.set(id, true);
    return this.#sessionCookie(id, secure);
  }

  /**
   * The session cookie's `Set-Cookie` value. The attributes never change for one server, so
   * they are serialized (and checked) once per `Secure` flag and reused.
   */
  #sessionCookie(id: string, secure: boolean): string {
    const i = secure ? 1 : 0;
    const suffix = (this.#suffixes[i] ??= serializeCookie(this.#config.idName, 'x', this.#cookieOptions(secure)).slice(this.#config.idName.length + 2));
    // Ids of the default format are cookie-octets as they are; a custom id is checked in full.
    const name = this.#config.idName;
    return isPlainCookieValue(name, id) ? `${name}=${id}${suffix}` : serializeCookie(name, id, this.#cookieOptions(secure));
  }

  #cookieOptions(secure: boolean): CookieOptions {
    const c = this.#config;
    const options: CookieOptions = { ...c.cookie, secure };
    if (c.cookieMaxAgeMs > 0) options.maxAge = cookieMaxAgeSeconds(c.cookieMaxAgeMs);
    return options;
  }

  /**
   * Applies this request's changes to the session as stored now: through the storage's atomic
   * `patch` when it has one, else by reading, merging and writing under this process's lock.
   * @returns `false` when the session no longer exists (nothing is written then)
   */
  async #update(s: SessionState): Promise<boolean> {
    const storage = this.storage;
    const id = s.id;
    if (typeof storage.patch === 'function') {
      if (!this.#storageChecksSize) this.#checkSize(view(s));
      try {
        return await storage.patch(id, changeSet(s), this.#config.maxAgeMs);
      } catch (err) {
        throw asStorageError(err, 'write');
      }
    }
    return this.#lock(id, async () => {
      const current = await this.#read(id);
      // Destroyed, regenerated or expired meanwhile: never bring it back.
      if (current === undefined) return false;
      await this.#write(id, applyChanges(s.cleared ? undefined : current, s.changes));
      return true;
    });
  }

  #checkSize(data: SessionData): void {
    const size = Buffer.byteLength(JSON.stringify(data));
    if (size > this.#config.maxSize) throw sessionTooLarge(size, this.#config.maxSize);
  }

  async #read(id: string): Promise<SessionData | undefined> {
    try {
      return await this.storage.get(id);
    } catch (err) {
      throw asStorageError(err, 'read');
    }
  }

  async #write(id: string, data: SessionData): Promise<void> {
    const storage = this.storage;
    if (!this.#storageChecksSize) this.#checkSize(data);
    try {
      await storage.set(id, data, this.#config.maxAgeMs);
    } catch (err) {
      throw asStorageError(err, 'write');
    }
  }

  async #touch(id: string): Promise<boolean | undefined> {
    try {
      const alive: unknown = await this.storage.touch(id, this.#config.maxAgeMs);
      return typeof alive === 'boolean' ? alive : undefined;
    } catch (err) {
      throw asStorageError(err, 'touch');
    }
  }

  /** Deletes a session's record, after any commit of it under way in this process. */
  async #remove(id: string): Promise<void> {
    const storage = this.storage;
    const remove = async (): Promise<void> => {
      try {
        await storage.remove(id);
      } catch (err) {
        throw asStorageError(err, 'delete');
      }
      this.#cookieSent.delete(id);
    };
    // A storage with `patch` checks existence atomically; without it a merge under the lock
    // must not write the session back after this deletion.
    await (typeof storage.patch === 'function' ? remove() : this.#lock(id, remove));
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
  const code = errCode(err);
  return new StorageError(`session storage failed to ${what} a session${code === undefined ? '' : ` (${code})`}`, { cause: err });
}
