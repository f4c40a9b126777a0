/**
 * The storage contract. `MemoryStorage`, `FileStorage` and a user's own storage (for example
 * over Redis) implement it; the server calls nothing else.
 */

/** A value JSON can hold. Session values are JSON values only. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** A whole session: its keys and JSON values. */
export type SessionData = Record<string, JsonValue>;

/**
 * Keys the library keeps in a session beside the user's, for its own features. They start with
 * NUL, which no user key may (`set` refuses one), and `data()`, `get` and `size` never show them.
 * A storage may store them as any other key; the built-in storages also read `owner` to keep an
 * index of each owner's sessions, and `created` to list them.
 */
export const META = Object.freeze({
  /** When the session was created, in ms since the epoch; a regenerate keeps it. */
  created: '\u0000created',
  /** The session's owner (a user id), a string. */
  owner: '\u0000owner',
  /** When the session got its owner (a login), in ms since the epoch. */
  ownedSince: '\u0000ownedSince',
  /** What the application stored about the session for listings (a user agent, say). */
  info: '\u0000info',
  /** `false`: a browser-session cookie; a number: this session's idle timeout in ms. */
  remember: '\u0000remember',
  /** The session's CSRF secret, base64url. */
  csrf: '\u0000csrf',
  /** The prefix of flash messages: `\u0000flash:<name>` holds an array of values. */
  flash: '\u0000flash:',
});

/** Whether a session key is one of the library's own ({@link META}). */
export function isMetaKey(key: string): boolean {
  return key.charCodeAt(0) === 0;
}

/** One stored session as a storage lists it: never its id, only the id's hash. */
export interface StoredSession {
  /** The SHA-256 of the id, in hex (`hashId` of lib/id.ts). */
  readonly idHash: string;
  /** When it expires, in ms since the epoch. */
  readonly expiresAt: number;
  /** Its data, the library's {@link META} keys included. */
  readonly data: SessionData;
}

/** What a storage reports to the server on its own (see {@link StorageSettings.onEvent}). */
export type StorageEvent = { readonly type: 'expired'; readonly idHash: string };

/**
 * One request's changes to a session, as {@link Storage.patch} applies them: first `clear`
 * (delete every stored key), then `remove`, then `set`.
 */
export interface SessionChanges {
  /** Keys to store, with their new values. */
  readonly set: SessionData;
  /** Keys to delete. */
  readonly remove: readonly string[];
  /** Delete every stored key before `remove` and `set` apply. */
  readonly clear: boolean;
}

/** What the server tells its storage once, before the first call: see {@link Storage.configure}. */
export interface StorageSettings {
  /**
   * The server's `sessionMaxAge` in milliseconds: no session is given a longer life than this
   * from its last use, so a stored expiry further ahead is cut to it.
   */
  readonly maxAgeMs: number;
  /**
   * The server's `sessionMaxSize`: the largest session, as UTF-8 bytes of its JSON. A write
   * past it rejects with a `SessionError` of code `'ESESSIONTOOLARGE'` and writes nothing.
   */
  readonly maxSize: number;
  /**
   * Called when the storage finds a session expired (its sweep, or a read), when the server has
   * listeners for that event; a storage that cannot tell never calls it.
   */
  readonly onEvent?: ((event: StorageEvent) => void) | undefined;
}

/**
 * Where sessions live. Every method takes an id that already has the issued format.
 *
 * Contract, for users who write their own:
 * - `get` resolves to the session, or `undefined` when it is missing or expired (and for a
 *   record that cannot be read back, after setting it aside). It rejects only when the
 *   backend fails: the server then answers 503 instead of starting an empty session.
 *   The returned object is only read by the caller, never changed.
 * - `set` stores the whole session for `ttlMs` from now. It is called for a new session, and
 *   for a changed one when the storage has no `patch`. It must have persisted the data when its
 *   promise resolves (the response waits for it). The storage takes ownership of `data`.
 * - `patch`, when present, applies one request's changes to the session as stored at that
 *   moment, atomically, and gives it `ttlMs` from now; it resolves `false`, writing nothing,
 *   when the session no longer exists (so a destroyed session is never brought back).
 *   Without it the server reads, merges and `set`s under a lock of its own, which keeps
 *   concurrent writes of one process, but not of several processes sharing the storage.
 * - `touch` extends the life of an existing session to `ttlMs` from now without rewriting its
 *   data, and never creates one. It resolves `false` when the session no longer exists (then
 *   the server sends no cookie for it); a storage that cannot tell resolves nothing, and the
 *   server reads the session before it refreshes the cookie.
 * - `remove` deletes the session; a missing one is not an error.
 * - `configure`, when present, receives the server's settings once, before the first call.
 *   A storage that has it enforces `maxSize` itself where it serializes; for one that has not,
 *   the server serializes each write once more to check the size.
 * - `close`, when present, flushes pending work and stops timers.
 *
 * Optional methods for the features of `server.sessions` (the server answers with a clear
 * error when they are missing):
 * - `ownerSessions(owner)` lists the live sessions whose {@link META} `owner` key is `owner`;
 *   `removeOwner(owner, exceptIdHash?)` removes them all but one, everywhere the storage is
 *   shared. The index behind them expires with the sessions and never lists a dead one.
 * - `count()` and `list()` count and walk the live sessions without loading them all at once.
 *
 * @example
 * ```ts
 * class RedisStringStorage implements Storage {
 *   async get(id: string) { const s = await redis.get(`sess:${id}`); return s === null ? undefined : JSON.parse(s); }
 *   async set(id: string, data: SessionData, ttlMs: number) { await redis.set(`sess:${id}`, JSON.stringify(data), 'PX', ttlMs); }
 *   async touch(id: string, ttlMs: number) { await redis.pexpire(`sess:${id}`, ttlMs); }
 *   async remove(id: string) { await redis.del(`sess:${id}`); }
 * }
 * ```
 */
export interface Storage {
  /** The session, or `undefined` when missing, expired or unreadable. */
  get(id: string): Promise<SessionData | undefined>;
  /** Stores the whole session; resolves once it is persisted. */
  set(id: string, data: SessionData, ttlMs: number): Promise<void>;
  /** Applies one request's changes to the stored session atomically; `false` when it is gone. */
  patch?(id: string, changes: SessionChanges, ttlMs: number): Promise<boolean>;
  /** Extends the session's life without a rewrite; never creates one; `false` when it is gone. */
  touch(id: string, ttlMs: number): Promise<boolean | void>;
  /** Deletes the session; a missing one is no error. */
  remove(id: string): Promise<void>;
  /** Receives the server's settings once, before the first call. */
  configure?(settings: StorageSettings): void;
  /** Flushes pending work and stops timers. */
  close?(): Promise<void>;
  /** The live sessions of an owner (see {@link META}). */
  ownerSessions?(owner: string): Promise<StoredSession[]>;
  /** Removes every session of an owner but the one whose id hashes to `exceptIdHash`; resolves to how many. */
  removeOwner?(owner: string, exceptIdHash?: string): Promise<number>;
  /** How many live sessions there are. */
  count?(): Promise<number>;
  /** Every live session's id hash and expiry, a few at a time. */
  list?(): AsyncIterable<{ readonly idHash: string; readonly expiresAt: number }>;
}

/** @internal Marks, in a {@link SessionChangeMap}, a key the request removed. */
export const REMOVED: unique symbol = Symbol('bare-session: removed');

/**
 * @internal A request's changes as the session records them, by key: a new value, or
 * {@link REMOVED}; they apply after `clear` (every stored key dropped), when given. What
 * {@link SyncStorage.patch} takes instead of the {@link SessionChanges} of the contract's
 * `patch`: the session's own map, which the storage reads during the call and neither keeps nor
 * changes (its values are stored as they are, as the contract's are).
 */
export type SessionChangeMap = ReadonlyMap<string, JsonValue | typeof REMOVED>;

/** What a {@link SyncStorage} answers when it cannot answer at once (the server then awaits the method's promise). */
export const NOT_NOW: unique symbol = Symbol('bare-session: not now');

/**
 * @internal How the library's own storages answer at once when they can (memory, and
 * `FileStorage`'s sessions in memory), so that the server's commonest requests take no promise
 * at all. Each method does what the contract's method of the same name does (`patch` on a
 * {@link SessionChangeMap}) and has done it completely when it returns, or returns
 * {@link NOT_NOW} having done nothing. A storage that
 * offers it also has `configure`, and so checks `maxSize` itself. Not part of the contract: a
 * storage of a user never needs it.
 */
export interface SyncStorage {
  get(id: string): SessionData | undefined | typeof NOT_NOW;
  set(id: string, data: SessionData, ttlMs: number): true | typeof NOT_NOW;
  /** Absent when the storage never writes at once (FileStorage, RedisStorage): the server then awaits the contract's `patch`. */
  patch?(id: string, changes: SessionChangeMap, clear: boolean, ttlMs: number): boolean;
  /**
   * As the contract's `touch`; `undefined` when it extended nothing and cannot tell whether the
   * session exists (RedisStorage within its `ttlUpdateInterval`): the server then reads the
   * session before it sends a cookie.
   */
  touch(id: string, ttlMs: number): boolean | undefined | typeof NOT_NOW;
  /**
   * When the session's cookie is next due for a refresh (ms, on the server's clock), as kept
   * beside the session in memory by {@link SyncStorage.setCookieDue}; `undefined` when the
   * session is not in memory or none was kept. Spares the server a lookup of its own.
   */
  cookieDue?(id: string): number | undefined;
  /** Keeps `at` beside the session in memory; `false` when it is not there (the server keeps it then). */
  setCookieDue?(id: string, at: number): boolean;
}

/** @internal The key under which a storage offers its {@link SyncStorage}. */
export const SYNC: unique symbol = Symbol('bare-session: sync storage');
