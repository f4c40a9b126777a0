/**
 * The storage contract. `MemoryStorage`, `FileStorage` and a user's own storage (for example
 * over Redis) implement it; the server calls nothing else.
 */

/** A value JSON can hold. Session values are JSON values only. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** A whole session: its keys and JSON values. */
export type SessionData = Record<string, JsonValue>;

/**
 * Where sessions live. Every method takes an id that already has the issued format.
 *
 * Contract, for users who write their own:
 * - `get` resolves to the session, or `undefined` when it is missing or expired (and for a
 *   record that cannot be read back, after setting it aside). It rejects only when the
 *   backend fails: the server then answers 503 instead of starting an empty session.
 *   The returned object is only read by the caller, never changed.
 * - `set` stores the whole session for `ttlMs` from now. It is called when a session changed,
 *   and must have persisted the data when its promise resolves (the response waits for it).
 *   The storage takes ownership of `data`; the caller never changes it afterwards.
 * - `touch` extends the life of an existing session to `ttlMs` from now without rewriting its
 *   data, and never creates one.
 * - `remove` deletes the session; a missing one is not an error.
 * - `close`, when present, flushes pending work and stops timers.
 *
 * @example
 * ```ts
 * class RedisStorage implements Storage {
 *   async get(id: string) { const s = await redis.get(`sess:${id}`); return s === null ? undefined : JSON.parse(s); }
 *   async set(id: string, data: SessionData, ttlMs: number) { await redis.set(`sess:${id}`, JSON.stringify(data), 'PX', ttlMs); }
 *   async touch(id: string, ttlMs: number) { await redis.pexpire(`sess:${id}`, ttlMs); }
 *   async remove(id: string) { await redis.del(`sess:${id}`); }
 * }
 * ```
 */
export interface Storage {
  /** The session, or `undefined` when missing, expired or unreadable. */
  get(id: string, ttlMs: number): Promise<SessionData | undefined>;
  /** Stores the whole session; resolves once it is persisted. */
  set(id: string, data: SessionData, ttlMs: number): Promise<void>;
  /** Extends the session's life without a rewrite; never creates a session. */
  touch(id: string, ttlMs: number): Promise<void>;
  /** Deletes the session; a missing one is no error. */
  remove(id: string): Promise<void>;
  /** Flushes pending work and stops timers. */
  close?(): Promise<void>;
}
