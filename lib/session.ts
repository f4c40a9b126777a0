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
import { type CookieOptions, MAX_COOKIE_AGE_SECONDS, cookieValues, isPlainCookieValue, serializeCookie } from './cookie.js';
import { SessionError, StorageError, errCode, sessionTooLarge } from './errors.js';
import { maskCsrfToken, newCsrfSecret, verifyCsrfToken } from './csrf.js';
import { type Duration, describe, parseDuration } from './duration.js';
import { hashId } from './id.js';
import { cloneJson, jsonEqual, newRecord, setOwn, toJsonValue } from './json.js';
import type { CookieJar } from './request.js';
import { META, NOT_NOW, REMOVED, SYNC, type JsonValue, type SessionChanges, type SessionData, type Storage, type StorageEvent, type SyncStorage, isMetaKey } from './storage/storage.js';

/**
 * How many values of the session cookie one request may offer. A sibling subdomain can plant a
 * second cookie of the same name beside the host's own; each well-formed one costs a storage
 * read, so the number is small.
 */
export const MAX_SESSION_COOKIES = 4;

/** The most ids whose next cookie refresh the manager remembers. */
const MAX_COOKIE_DUE = 100_000;

type Change = JsonValue | typeof REMOVED;

/**
 * The changes of a session that holds none: one empty map shared by all of them (sessions this
 * request only read, and those `destroy()` or `regenerate({ keepData: false })` emptied), only
 * ever read, so that a request that only reads its session makes no map. Every change goes
 * through {@link changesOf}, which gives the session a map of its own first.
 */
const NO_CHANGES: ReadonlyMap<string, Change> = new Map();

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
  /** This request's changes, by key: {@link NO_CHANGES} while there are none; written only through {@link changesOf}, or replaced whole. */
  changes: ReadonlyMap<string, Change>;
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
  /** A data operation ran (`set`, `setMap`, `remove`, `removeAll`, a flash, …). */
  touched: boolean;
}

/** What a session needs from its manager. */
export interface SessionContext {
  /** A new id from the configured generator. */
  newId(): string;
  /** The clock, in milliseconds. */
  now(): number;
  /** The longest idle timeout `remember` may give one session, in milliseconds. */
  readonly maxAgeLimitMs: number;
}

/** The key of a session's state, for the manager; not part of the public surface. */
const STATE: unique symbol = Symbol('session state');

function reserved(key: string): never {
  throw new TypeError(`session key is invalid: ${JSON.stringify(key.slice(0, 64))} (keys starting with NUL are the library's own)`);
}

/**
 * One request's view of a session. Data operations are synchronous and work on memory; nothing
 * reaches the storage before the commit, after the handler.
 *
 * `T` types the data: `new Server<{ time: number }>()` makes `r.session.get('time')` a
 * `number | undefined`.
 */
export class Session<T extends object = SessionData> {
  readonly #s: SessionState;
  readonly #ctx: SessionContext;
  /** @internal The state the manager commits. */
  readonly [STATE]: SessionState;

  /**
   * Built by the server's session manager; a handler receives it as `r.session`.
   * @param ctx - what the session needs of its manager
   * @param id - the id loaded from the request (`''`: none)
   * @param base - the data stored under `id`
   */
  constructor(ctx: SessionContext, id: string, base: SessionData | undefined) {
    this.#ctx = ctx;
    this.#s = {
      id,
      origin: id,
      base,
      changes: NO_CHANGES,
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
    const v = isMetaKey(key) ? undefined : lookup(this.#s, key);
    return v === undefined ? def : (cloneJson(v) as T[K]);
  }

  /** Whether `key` is present. */
  has(key: Key<T>): boolean {
    return !isMetaKey(key) && lookup(this.#s, key) !== undefined;
  }

  /** How many keys the session holds. */
  get size(): number {
    let n = 0;
    eachKey(this.#s, () => n++);
    return n;
  }

  /** A plain copy of everything the session holds. */
  data(): Partial<T> {
    // Objects are deep-copied, primitives are not: `{ time: 1 }` costs one small object.
    const out: Record<string, unknown> = {};
    eachKey(this.#s, (k, v) => setOwn(out, k, cloneJson(v)));
    return out as Partial<T>;
  }

  /**
   * Stores a JSON value under `key`. A value JSON cannot hold (a function, symbol, bigint,
   * `undefined`, a cycle, a `Date` or other class instance) throws a `TypeError` and changes
   * nothing. The value is copied: changing the object afterwards does not change the session.
   */
  set<K extends Key<T>>(key: K, value: T[K]): this {
    if (isMetaKey(key)) reserved(key);
    this.#change(key, toJsonValue(value, key));
    return this;
  }

  /** Stores several values at once: all of them, or (when one is invalid) none. */
  setMap(record: Partial<T>): this {
    if (record === null || typeof record !== 'object') {
      throw new TypeError('session record is invalid: expected an object');
    }
    // Every value is checked and copied before the first is recorded: all of them, or none.
    const keys = Object.keys(record);
    const values: JsonValue[] = [];
    for (const k of keys) {
      if (isMetaKey(k)) reserved(k);
      values.push(toJsonValue((record as Record<string, unknown>)[k], k));
    }
    for (let i = 0; i < keys.length; i++) this.#change(keys[i] as string, values[i] as JsonValue);
    return this;
  }

  /** Deletes keys. */
  remove(...keys: Key<T>[]): this {
    for (const k of keys) if (isMetaKey(k)) reserved(k);
    const changes = changesOf(this.#s);
    for (const k of keys) changes.set(k, REMOVED);
    this.#s.touched = true;
    return this;
  }

  /**
   * Deletes every key. The session and its id stay (with its owner, flash messages and the
   * other things the library keeps); use {@link Session.destroy} to end it.
   */
  removeAll(): this {
    const s = this.#s;
    const keep = new Map<string, Change>();
    const v = view(s);
    for (const k of Object.keys(v)) if (isMetaKey(k)) keep.set(k, v[k] as JsonValue);
    s.changes = keep;
    s.cleared = true;
    s.touched = true;
    return this;
  }

  /**
   * Gives the session a new id (on login, for example). The data is kept unless `keepData` is
   * `false`; the creation time always is (a login does not reset the absolute timeout).
   * Resolves to the new id at once; the commit, after the handler, writes the session under the
   * new id, then deletes the record under the old one, and the response sets the new cookie. A
   * request that fails commits nothing: the old session and its cookie stay valid.
   */
  async regenerate({ keepData = true }: { keepData?: boolean } = {}): Promise<string> {
    const s = this.#s;
    if (!keepData) {
      const created = lookup(s, META.created);
      s.changes = created === undefined ? NO_CHANGES : new Map([[META.created, created]]);
      s.cleared = true;
      s.fromOrigin = false;
    }
    s.id = this.#ctx.newId();
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
    s.changes = NO_CHANGES;
    s.cleared = true;
    s.fromOrigin = false;
    s.retire = s.origin !== '';
    s.regenerated = false;
    s.destroyed = true;
  }

  /** When the session was created, in ms since the epoch; `undefined` before it starts. */
  get createdAt(): number | undefined {
    const c = lookup(this.#s, META.created);
    return typeof c === 'number' ? c : undefined;
  }

  /**
   * "Remember me": `true` gives the session a persistent cookie (the default), `false` a
   * browser-session cookie (no `Max-Age`: the browser forgets it when it closes), and a duration
   * a persistent cookie and an idle timeout of its own for this session, at most the server's
   * `sessionMaxAgeLimit`. Kept with the session until changed.
   */
  remember(persist: boolean | Duration): this {
    let value: Change;
    if (persist === true) value = REMOVED;
    else if (persist === false) value = false;
    else {
      const ms = parseDuration(persist, 'remember');
      if (ms > this.#ctx.maxAgeLimitMs) throw new TypeError(`option remember is invalid: ${describe(persist)} (expected at most the server's sessionMaxAgeLimit of ${this.#ctx.maxAgeLimitMs} ms)`);
      value = ms;
    }
    this.#change(META.remember, value);
    return this;
  }

  /**
   * Adds a flash message under `name` (with a value), to be read once, usually by the next
   * request after a redirect; or (without a value) reads the messages under `name` and removes
   * them. Messages not read stay for a later request.
   */
  flash(name: string, value: JsonValue): this;
  flash(name: string): JsonValue[];
  flash(name: string, ...value: [JsonValue?]): this | JsonValue[] {
    if (typeof name !== 'string') throw new TypeError(`flash name is invalid: ${describe(name)} (expected a string)`);
    const key = META.flash + name;
    const current = lookup(this.#s, key);
    const list = Array.isArray(current) ? current : [];
    if (value.length > 0) {
      this.#change(key, [...list, toJsonValue(value[0], name)]);
      return this;
    }
    if (current !== undefined) {
      changesOf(this.#s).set(key, REMOVED);
      this.#s.touched = true;
    }
    return cloneJson(list);
  }

  /** Reads every flash message, by name, and removes them. */
  flashes(): Record<string, JsonValue[]> {
    const out: Record<string, JsonValue[]> = Object.create(null);
    for (const k of Object.keys(view(this.#s))) {
      if (k.startsWith(META.flash)) out[k.slice(META.flash.length)] = this.flash(k.slice(META.flash.length));
    }
    return out;
  }

  /** The session's owner (a user id), as set by {@link Session.setOwner}. */
  get owner(): string | undefined {
    const o = lookup(this.#s, META.owner);
    return typeof o === 'string' ? o : undefined;
  }

  /**
   * Names the session's owner (a user id, on login), so that `server.sessions.of(owner)` lists
   * it and `server.sessions.destroyAll(owner)` ends it; `info` (a JSON value such as the user
   * agent) is shown in those listings. `undefined` removes the owner.
   */
  setOwner(owner: string | undefined, info?: JsonValue): this {
    const s = this.#s;
    if (owner === undefined) {
      const changes = changesOf(s);
      for (const k of [META.owner, META.ownedSince, META.info]) changes.set(k, REMOVED);
      s.touched = true;
      return this;
    }
    if (typeof owner !== 'string' || owner === '') throw new TypeError(`session owner is invalid: ${describe(owner)} (expected a non-empty string)`);
    const value = info === undefined ? REMOVED : toJsonValue(info, 'info');
    if (lookup(s, META.owner) !== owner) {
      this.#change(META.owner, owner);
      this.#change(META.ownedSince, this.#ctx.now());
    }
    changesOf(s).set(META.info, value);
    s.touched = true;
    return this;
  }

  /**
   * The SHA-256 of the id, in hex (`''` while the session has not started): what
   * `server.sessions.of` lists and events name, to tell this session among them.
   */
  get idHash(): string {
    return this.#s.id === '' ? '' : hashId(this.#s.id);
  }

  /**
   * A CSRF token for a form or a header of this session: the session's secret (made on first
   * use, which starts the session) masked afresh, so every call gives a different token. The
   * `csrf()` middleware checks it.
   */
  csrfToken(): string {
    let secret = lookup(this.#s, META.csrf);
    if (typeof secret !== 'string') {
      secret = newCsrfSecret();
      this.#change(META.csrf, secret);
    }
    return maskCsrfToken(secret);
  }

  /** Whether `token` is a CSRF token of this session (compared in constant time). */
  verifyCsrfToken(token: unknown): boolean {
    const secret = lookup(this.#s, META.csrf);
    return typeof secret === 'string' && verifyCsrfToken(secret, token);
  }

  /** Records a change, starting the session (issuing an id) when it has none. */
  #change(key: string, value: Change): void {
    const s = this.#s;
    if (s.id === '') {
      s.id = this.#ctx.newId();
      s.destroyed = false;
    }
    changesOf(s).set(key, value);
    s.touched = true;
  }
}

/** The session's changes, to be written: its own map, made on the first change. */
function changesOf(s: SessionState): Map<string, Change> {
  if (s.changes === NO_CHANGES) s.changes = new Map();
  return s.changes as Map<string, Change>;
}

/** The value a session holds under `key` now, the library's keys included. */
function lookup(s: SessionState, key: string): JsonValue | undefined {
  const c = s.changes.get(key);
  if (c !== undefined) return c === REMOVED ? undefined : c;
  if (s.cleared || !s.fromOrigin || s.base === undefined || !Object.hasOwn(s.base, key)) return undefined;
  return s.base[key];
}

/**
 * Calls `fn` for each of the user's keys the session holds now, in the order `applyChanges`
 * gives (the loaded keys, then the new ones), without building the merged record.
 */
function eachKey(s: SessionState, fn: (key: string, value: JsonValue) => void): void {
  const base = s.cleared || !s.fromOrigin ? undefined : s.base;
  const changes = s.changes;
  if (base !== undefined) {
    for (const k of Object.keys(base)) {
      if (isMetaKey(k)) continue;
      const c = changes.size === 0 ? undefined : changes.get(k);
      if (c !== REMOVED) fn(k, c === undefined ? (base[k] as JsonValue) : c);
    }
  }
  for (const [k, v] of changes) {
    if (v !== REMOVED && !isMetaKey(k) && (base === undefined || !Object.hasOwn(base, k))) fn(k, v);
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

/** A new record (see {@link newRecord}): `base` (when given) with `changes` applied. */
function applyChanges(base: SessionData | undefined, changes: ReadonlyMap<string, Change>): SessionData {
  const out: SessionData = newRecord();
  // Removed keys are left out of the copy rather than deleted from it, as the storages' patches
  // do: a delete turns the record into a dictionary, slower to read from then on.
  if (base !== undefined) {
    for (const k of Object.keys(base)) if (changes.size === 0 || changes.get(k) !== REMOVED) setOwn(out, k, base[k]);
  }
  for (const [k, v] of changes) if (v !== REMOVED) setOwn(out, k, v);
  return out;
}

/** Whether a new session holds anything worth creating it for (more than its creation time). */
function worthKeeping(data: SessionData): boolean {
  for (const k in data) if (k !== META.created) return true;
  return false;
}

/** This request's changes in the form {@link Storage.patch} takes. */
function changeSet(s: SessionState): SessionChanges {
  const set: SessionData = newRecord();
  const remove: string[] = [];
  for (const [k, v] of s.changes) {
    if (v === REMOVED) remove.push(k);
    else setOwn(set, k, v);
  }
  return { set, remove, clear: s.cleared };
}

/** Where the session cookie goes: a request, whose cookie jar is made only when a cookie is set. */
interface CookieHolder {
  readonly cookie: CookieJar;
}

/** What the manager needs to know, resolved by the server from its options. */
export interface SessionConfig {
  readonly storage: () => Storage;
  /** The idle timeout of sessions, in ms. */
  readonly maxAgeMs: number;
  /** The absolute timeout of sessions, in ms after their creation; 0: none. */
  readonly maxLifetimeMs: number;
  /** The longest idle timeout `remember` may give one session, in ms. */
  readonly maxAgeLimitMs: number;
  readonly idName: string;
  readonly cookieOutput: boolean;
  /** The cookie's Max-Age in ms; 0 for a browser-session cookie. */
  readonly cookieMaxAgeMs: number;
  readonly cookie: CookieOptions;
  readonly generateId: () => string;
  readonly validateId: (id: string) => boolean;
  readonly maxSize: number;
  readonly now: () => number;
  /** Receives the lifecycle events, with the request they happened in; absent: nobody listens. */
  readonly emit?: ((event: SessionEvent, request: unknown) => void) | undefined;
}

/**
 * What happened to a session, for audit logs and metrics. Ids appear only as their SHA-256
 * (`idHash`), never as themselves.
 * - `created`: a new session was written.
 * - `regenerated`: a session moved to a new id (`previousIdHash` is the old one's).
 * - `destroyed`: `destroy()` ended a session.
 * - `expired`: a session outlived its idle or absolute timeout, found by the server on a read or
 *   by the storage (its sweep, for storages that can tell).
 * - `refused`: a request offered an id that is malformed or names no live session; the hash is
 *   of what it sent.
 * - `storageError`: the storage failed; the request answered 503.
 */
export type SessionEvent =
  | { readonly type: 'created'; readonly idHash: string }
  | { readonly type: 'regenerated'; readonly idHash: string; readonly previousIdHash: string }
  | { readonly type: 'destroyed'; readonly idHash: string }
  | { readonly type: 'expired'; readonly idHash: string }
  | { readonly type: 'refused'; readonly idHash: string; readonly reason: 'malformed' | 'unknown' }
  | { readonly type: 'storageError'; readonly error: unknown };

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
  return Math.min(MAX_COOKIE_AGE_SECONDS, Math.max(1, Math.ceil(ms / 1000)));
}

/**
 * Loads sessions before the handler and commits them after. One per server.
 */
export class SessionManager {
  readonly #config: SessionConfig;
  /** Commits of one id run one after another: `get`, merge and `set` never interleave. */
  readonly #locks = new Map<string, Promise<void>>();
  /**
   * When each id's cookie is next due for a refresh (ms), so requests that keep the id refresh it
   * only then, for the sessions whose storage does not keep it beside them in memory (see
   * {@link SyncStorage.cookieDue}). A plain map, emptied when it grows past
   * {@link MAX_COOKIE_DUE} (which costs each session one early refresh at most).
   */
  readonly #cookieDue = new Map<string, number>();
  /** The session cookie's attributes after `Max-Age`, without and with `Secure`. */
  readonly #suffixes: [string | undefined, string | undefined] = [undefined, undefined];
  #storage: Storage | undefined;
  /** Whether the storage checks `maxSize` itself (it has `configure`). */
  #storageChecksSize = false;
  /** What each session is handed. */
  readonly #ctx: SessionContext;
  /** The storage's {@link SyncStorage}; `null` until looked up. */
  #syncStorage: SyncStorage | undefined | null = null;

  constructor(config: SessionConfig) {
    this.#config = config;
    this.#ctx = { newId: () => this.newId(), now: config.now, maxAgeLimitMs: config.maxAgeLimitMs };
  }

  /** The storage, configured with the server's settings on first use. */
  get storage(): Storage {
    if (this.#storage === undefined) {
      const storage = this.#config.storage();
      if (typeof storage.configure === 'function') {
        const emit = this.#config.emit;
        storage.configure({
          maxAgeMs: Math.max(this.#config.maxAgeMs, this.#config.maxAgeLimitMs),
          maxSize: this.#config.maxSize,
          onEvent: emit === undefined ? undefined : (e: StorageEvent) => emit({ type: 'expired', idHash: e.idHash }, undefined),
        });
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
  incomingIds(cookieHeader: string | undefined, request: { header(name: string): string | undefined }): string[] {
    const name = this.#config.idName;
    const ids = cookieValues(cookieHeader, name, MAX_SESSION_COOKIES);
    if (ids.length === 0) {
      const h = request.header(name);
      if (h !== undefined) ids.push(h);
    }
    return ids;
  }

  /**
   * Loads the session of a request: the first offered id that is well-formed and names a live
   * session. An id that is malformed, unknown or expired is never adopted: with none left the
   * handler sees an empty session, and a write gets a new id. A storage that fails rejects with
   * a `StorageError` (the request gets a 503), never with an empty session.
   *
   * Answers at once (no promise) when the storage can: no id offered, or a storage that reads
   * from memory.
   */
  load<T extends object>(ids: readonly string[], request?: unknown): Session<T> | Promise<Session<T>> {
    const sync = this.#sync();
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i] as string;
      if (!this.#wellFormed(id, request)) continue;
      let data: SessionData | undefined | typeof NOT_NOW = NOT_NOW;
      if (sync !== undefined) {
        try {
          data = sync.get(id);
        } catch (err) {
          throw asStorageError(err, 'read');
        }
      }
      if (data === NOT_NOW) return this.#readFrom(ids, i, request);
      if (data !== undefined && this.#remainingLife(data) > 0) return new Session<T>(this.#ctx, id, data);
      // Past its absolute timeout, or unknown: never adopted.
      if (data !== undefined) return this.#loadAsync(ids, i, request, data);
      this.#config.emit?.({ type: 'refused', idHash: hashId(id), reason: 'unknown' }, request);
    }
    return new Session<T>(this.#ctx, '', undefined);
  }

  /**
   * {@link SessionManager.load} from the `i`th id on (well-formed), awaiting the storage: the
   * commonest case, a live session, in one step, without the loop's async function.
   */
  #readFrom<T extends object>(ids: readonly string[], i: number, request: unknown): Promise<Session<T>> {
    const id = ids[i] as string;
    return this.#read(id).then((data) => (data !== undefined && this.#remainingLife(data) > 0 ? new Session<T>(this.#ctx, id, data) : this.#loadAsync<T>(ids, i, request, data)));
  }

  /**
   * {@link SessionManager.load} from the `i`th id on, awaiting the storage; `first` is what the
   * storage answered for that id (not adopted: unknown, or past its absolute timeout).
   */
  async #loadAsync<T extends object>(ids: readonly string[], from: number, request: unknown, first: SessionData | undefined): Promise<Session<T>> {
    const emit = this.#config.emit;
    for (let i = from; i < ids.length; i++) {
      const id = ids[i] as string;
      if (i > from && !this.#wellFormed(id, request)) continue;
      const data = i === from ? first : await this.#read(id);
      if (data !== undefined && this.#remainingLife(data) > 0) return new Session<T>(this.#ctx, id, data);
      if (data !== undefined) {
        // Past its absolute timeout: gone for good, whatever its idle timeout says.
        await this.#remove(id);
        emit?.({ type: 'expired', idHash: hashId(id) }, request);
      } else {
        emit?.({ type: 'refused', idHash: hashId(id), reason: 'unknown' }, request);
      }
    }
    return new Session<T>(this.#ctx, '', undefined);
  }

  /** Whether an offered id has the issued format (reported as refused when not). */
  #wellFormed(id: string, request: unknown): boolean {
    if (id !== '' && this.#config.validateId(id)) return true;
    if (id !== '') this.#config.emit?.({ type: 'refused', idHash: hashId(id.slice(0, 4096)), reason: 'malformed' }, request);
    return false;
  }

  /** The storage's way to answer at once, if it has one. */
  #sync(): SyncStorage | undefined {
    if (this.#syncStorage === null) {
      const candidate = (this.storage as { [SYNC]?: SyncStorage })[SYNC];
      this.#syncStorage = candidate ?? undefined;
    }
    return this.#syncStorage;
  }

  /**
   * Commits a session after the handler: writes it when it changed, extends its life when it
   * was only read, carries out `regenerate` and `destroy`, and sets or expires the cookie.
   * Everything that can fail without the storage (the cookie) is checked before anything is
   * written. Rejects with a `StorageError` (503) when the storage fails; nothing is half-written
   * and no cookie is set then.
   * @returns whether the session cookie was set or cleared
   */
  commit(session: Session<object>, cookies: CookieHolder, secure: boolean, request?: unknown): boolean | Promise<boolean> {
    const s = session[STATE];
    // The commonest requests answer at once: nothing to commit, or a storage that can.
    if (s.id === '' && !s.retire) return false;
    const sync = this.#sync();
    if (sync !== undefined && !s.retire && s.id === s.origin) {
      let cookie: string | undefined;
      if (s.touched && changed(s)) {
        // A storage that never writes at once (FileStorage, RedisStorage): the awaited commit.
        const patch = sync.patch;
        if (patch === undefined) return this.#update(s).then((written) => this.#setCookie(s, cookies, secure, written ? this.#cookieAfterWrite(s, secure) : undefined));
        const remember = lookup(s, META.remember);
        const created = lookup(s, META.created);
        let written: boolean;
        try {
          written = patch(s.id, s.changes, s.cleared, this.#ttl(remember, created));
        } catch (err) {
          throw asStorageError(err, 'write');
        }
        if (written) cookie = this.#cookieIfDue(s.id, remember, created, secure, s.changes.has(META.remember));
      } else if (s.base !== undefined) {
        let alive: ReturnType<SyncStorage['touch']>;
        try {
          alive = sync.touch(s.id, this.#ttl(s.base[META.remember], s.base[META.created]));
        } catch (err) {
          throw asStorageError(err, 'touch');
        }
        if (alive === NOT_NOW) return this.#commitAsync(s, cookies, secure, request);
        if (alive !== false) cookie = this.#cookieIfDue(s.id, s.base[META.remember], s.base[META.created], secure, false);
        // A touch that could not tell whether the session exists: asked before a cookie goes out.
        if (cookie !== undefined && alive === undefined) return this.#confirmed(s, cookies, secure, cookie);
      }
      return this.#setCookie(s, cookies, secure, cookie);
    }
    if (sync !== undefined && !s.retire && s.origin === '') return this.#commitNew(s, sync, cookies, secure, request);
    return this.#commitAsync(s, cookies, secure, request);
  }

  /**
   * {@link SessionManager.commit} of a session started by this request (no id was loaded, none
   * is retired) on a storage that may write it at once: without a promise when it does.
   */
  #commitNew(s: SessionState, sync: SyncStorage, cookies: CookieHolder, secure: boolean, request: unknown): boolean | Promise<boolean> {
    const next = this.#prepareNew(s, undefined, secure);
    if (next === undefined) {
      // Started and emptied in one request: no session is created.
      s.id = '';
      return this.#setCookie(s, cookies, secure, undefined);
    }
    let written: ReturnType<SyncStorage['set']>;
    try {
      written = sync.set(s.id, next.data, next.ttl);
    } catch (err) {
      throw asStorageError(err, 'write');
    }
    if (written === NOT_NOW) {
      return this.#write(s.id, next.data, next.ttl).then(() => {
        this.#afterNew(s, request);
        return this.#setCookie(s, cookies, secure, next.header);
      });
    }
    this.#afterNew(s, request);
    return this.#setCookie(s, cookies, secure, next.header);
  }

  /**
   * What a session under a new id is written as: `base` (what the retired id held, if its data
   * is carried over) with this request's changes and a creation time, its time to live, and its
   * cookie; `undefined` when there is nothing to keep (a session started and emptied in one
   * request).
   */
  #prepareNew(s: SessionState, base: SessionData | undefined, secure: boolean): { data: SessionData; ttl: number; header: string | undefined } | undefined {
    const data = applyChanges(base, s.changes);
    if (!s.regenerated && !worthKeeping(data)) return undefined;
    if (!Object.hasOwn(data, META.created)) setOwn(data, META.created, this.#config.now());
    // Built before the write: a cookie that cannot be sent fails the request first.
    const header = this.#cookieIfDue(s.id, data[META.remember], data[META.created], secure, true);
    return { data, ttl: this.#ttl(data[META.remember], data[META.created]), header };
  }

  /**
   * What follows the write of a session under a new id: its cookie's due time goes beside it,
   * and the listeners hear that it was created, or regenerated.
   */
  #afterNew(s: SessionState, request: unknown): void {
    this.#settleDue(s.id);
    const emit = this.#config.emit;
    if (emit === undefined) return;
    emit(s.retire ? { type: 'regenerated', idHash: hashId(s.id), previousIdHash: hashId(s.origin) } : { type: 'created', idHash: hashId(s.id) }, request);
  }

  /**
   * Sets `cookie` once the storage says that the session still exists: a session another
   * request destroyed meanwhile is never sent back.
   */
  async #confirmed(s: SessionState, cookies: CookieHolder, secure: boolean, cookie: string): Promise<boolean> {
    const alive = (await this.#read(s.id)) !== undefined;
    return this.#setCookie(s, cookies, secure, alive ? cookie : undefined);
  }

  /** {@link SessionManager.commit}, awaiting the storage. */
  async #commitAsync(s: SessionState, cookies: CookieHolder, secure: boolean, request: unknown): Promise<boolean> {
    let cookie: string | undefined;
    if (s.id === '') {
      // No session now: destroyed.
      if (s.retire) {
        await this.#remove(s.origin);
        this.#config.emit?.({ type: 'destroyed', idHash: hashId(s.origin) }, request);
      }
    } else if (s.id === s.origin) {
      // The loaded session, same id: write the changes, or extend its life.
      if (s.touched && changed(s)) {
        if (await this.#update(s)) cookie = this.#cookieAfterWrite(s, secure);
      } else if (s.base !== undefined) {
        let alive = await this.#touch(s.id, this.#ttlOf(s));
        cookie = this.#cookieIfDue(s.id, s.base[META.remember], s.base[META.created], secure, false);
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
      const next = gone ? undefined : this.#prepareNew(s, base, secure);
      if (next === undefined) {
        // Nothing to keep (gone meanwhile, or started and emptied in one request).
        s.id = '';
      } else {
        await this.#write(s.id, next.data, next.ttl);
        cookie = next.header;
        this.#afterNew(s, request);
      }
      if (s.retire) await this.#remove(s.origin);
    }
    return this.#setCookie(s, cookies, secure, cookie);
  }

  /** The session cookie after a write of the loaded session, when due (always when the write changed its life). */
  #cookieAfterWrite(s: SessionState, secure: boolean): string | undefined {
    return this.#cookieIfDue(s.id, lookup(s, META.remember), lookup(s, META.created), secure, s.changes.has(META.remember));
  }

  /** Puts the session cookie (or its expiry) in the request's jar. @returns whether it did */
  #setCookie(s: SessionState, cookies: CookieHolder, secure: boolean, cookie: string | undefined): boolean {
    const c = this.#config;
    if (!c.cookieOutput) return false;
    if (cookie !== undefined) {
      cookies.cookie.pending.set(c.idName, cookie);
      return true;
    }
    if (s.destroyed && s.id === '') {
      cookies.cookie.remove(c.idName, this.#cookieOptions(secure, undefined));
      return true;
    }
    return false;
  }

  /** Sends an event to the listeners of `server.sessions`, if any. */
  emit(event: SessionEvent, request: unknown): void {
    this.#config.emit?.(event, request);
  }

  /** Stops the manager's timers. */
  close(): void {
    this.#cookieDue.clear();
  }

  /** How long a session created at `created` has left before its absolute timeout (`Infinity` without one). */
  #remainingLife(data: SessionData): number {
    return this.#config.maxLifetimeMs === 0 ? Infinity : this.#lifeLeft(data[META.created]);
  }

  #lifeLeft(created: JsonValue | undefined): number {
    const lifetime = this.#config.maxLifetimeMs;
    if (lifetime === 0 || typeof created !== 'number') return Infinity;
    return created + lifetime - this.#config.now();
  }

  /** The time to live a write or a touch gives a session: its idle timeout, within its lifetime. */
  #ttl(remember: JsonValue | undefined, created: JsonValue | undefined): number {
    const idle = typeof remember === 'number' ? remember : this.#config.maxAgeMs;
    return Math.max(1, Math.min(idle, this.#lifeLeft(created)));
  }

  /** {@link SessionManager.#ttl} of the session as this request sees it. */
  #ttlOf(s: SessionState): number {
    return this.#ttl(lookup(s, META.remember), lookup(s, META.created));
  }

  /** How long the session's cookie lives, in ms; 0 for a browser-session cookie. */
  #cookieLife(remember: JsonValue | undefined, created: JsonValue | undefined): number {
    if (remember === false) return 0;
    const life = typeof remember === 'number' ? remember : this.#config.cookieMaxAgeMs;
    return life === 0 ? 0 : Math.min(life, this.#lifeLeft(created));
  }

  /**
   * The session cookie when it is due (always when `force`: a new id, or a changed life),
   * recording when it is next due: a quarter of its life from now, at most a minute.
   */
  #cookieIfDue(id: string, remember: JsonValue | undefined, created: JsonValue | undefined, secure: boolean, force: boolean): string | undefined {
    const c = this.#config;
    if (!c.cookieOutput) return undefined;
    const life = this.#cookieLife(remember, created);
    const now = c.now();
    if (!force) {
      // A browser-session cookie lives as long as the browser: it needs no refresh.
      if (life === 0) return undefined;
      const due = this.#sync()?.cookieDue?.(id) ?? this.#cookieDue.get(id);
      if (due !== undefined && now < due) return undefined;
    }
    const header = this.#sessionCookie(id, life, secure);
    if (life > 0) this.#noteDue(id, now + cookieRefreshInterval(life));
    return header;
  }

  /**
   * Keeps when an id's cookie is next due: beside the session, when the storage holds it in
   * memory (no lookup of the server's own then), else in the server's map.
   */
  #noteDue(id: string, at: number): void {
    if (this.#sync()?.setCookieDue?.(id, at) === true) return;
    if (this.#cookieDue.size >= MAX_COOKIE_DUE) this.#cookieDue.clear();
    this.#cookieDue.set(id, at);
  }

  /**
   * Once a session under a new id is written, moves its cookie's due time (noted before the
   * write, when the storage did not hold it yet) to beside it.
   */
  #settleDue(id: string): void {
    const sync = this.#sync();
    if (sync?.setCookieDue === undefined) return;
    const at = this.#cookieDue.get(id);
    if (at !== undefined && sync.setCookieDue(id, at)) this.#cookieDue.delete(id);
  }

  /**
   * The session cookie's `Set-Cookie` value. The attributes after `Max-Age` never change for
   * one server, so they are serialized (and checked) once per `Secure` flag and reused.
   */
  #sessionCookie(id: string, lifeMs: number, secure: boolean): string {
    const name = this.#config.idName;
    if (!isPlainCookieValue(name, id)) return serializeCookie(name, id, this.#cookieOptions(secure, lifeMs));
    const i = secure ? 1 : 0;
    const suffix = (this.#suffixes[i] ??= serializeCookie(name, 'x', this.#cookieOptions(secure, undefined)).slice(name.length + 2));
    return lifeMs > 0 ? `${name}=${id}; Max-Age=${cookieMaxAgeSeconds(lifeMs)}${suffix}` : `${name}=${id}${suffix}`;
  }

  #cookieOptions(secure: boolean, lifeMs: number | undefined): CookieOptions {
    const options: CookieOptions = { ...this.#config.cookie, secure };
    if (lifeMs !== undefined && lifeMs > 0) options.maxAge = cookieMaxAgeSeconds(lifeMs);
    return options;
  }

  /**
   * Applies this request's changes to the session as stored now: through the storage's atomic
   * `patch` when it has one, else by reading, merging and writing under this process's lock.
   * @returns `false` when the session no longer exists (nothing is written then)
   */
  #update(s: SessionState): Promise<boolean> {
    const storage = this.storage;
    const id = s.id;
    const ttl = this.#ttlOf(s);
    if (typeof storage.patch === 'function') {
      // The size check first, its error as it is (not the storage's: nothing was sent to it).
      try {
        if (!this.#storageChecksSize) this.#checkSize(view(s));
      } catch (err) {
        return Promise.reject(err);
      }
      const patch = storage.patch;
      return fromStorage('write', () => patch.call(storage, id, changeSet(s), ttl));
    }
    return this.#lock(id, async () => {
      const current = await this.#read(id);
      // Destroyed, regenerated or expired meanwhile: never bring it back.
      if (current === undefined) return false;
      await this.#write(id, applyChanges(s.cleared ? undefined : current, s.changes), ttl);
      return true;
    });
  }

  #checkSize(data: SessionData): void {
    const size = Buffer.byteLength(JSON.stringify(data));
    if (size > this.#config.maxSize) throw sessionTooLarge(size, this.#config.maxSize);
  }

  #read(id: string): Promise<SessionData | undefined> {
    return fromStorage('read', () => this.storage.get(id));
  }

  async #write(id: string, data: SessionData, ttl: number): Promise<void> {
    const storage = this.storage;
    if (!this.#storageChecksSize) this.#checkSize(data);
    try {
      await storage.set(id, data, ttl);
    } catch (err) {
      throw asStorageError(err, 'write');
    }
  }

  async #touch(id: string, ttl: number): Promise<boolean | undefined> {
    try {
      const alive: unknown = await this.storage.touch(id, ttl);
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
      this.#cookieDue.delete(id);
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

/**
 * Calls the storage: its failure, thrown or rejected, becomes a `StorageError` (a 503), without
 * an async function of its own on the way.
 */
function fromStorage<R>(what: string, call: () => R | Promise<R>): Promise<R> {
  let pending: Promise<R>;
  try {
    pending = Promise.resolve(call());
  } catch (err) {
    return Promise.reject(asStorageError(err, what));
  }
  return pending.then(undefined, (err: unknown) => {
    throw asStorageError(err, what);
  });
}

function asStorageError(err: unknown, what: string): SessionError {
  if (err instanceof SessionError) return err;
  const code = errCode(err);
  return new StorageError(`session storage failed to ${what} a session${code === undefined ? '' : ` (${code})`}`, { cause: err });
}
