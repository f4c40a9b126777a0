/**
 * Memory storage: sessions in an expiring cache. Fast, and gone when the process ends.
 */
import { ExpiringCache } from '../cache.js';
import { type Duration, describe } from '../duration.js';
import { sessionTooLarge } from '../errors.js';
import { hashId } from '../id.js';
import { entryBytes, newRecord, setOwn, valueBytes } from '../json.js';
import { META, REMOVED, SYNC, type JsonValue, type SessionChangeMap, type SessionChanges, type SessionData, type Storage, type StorageEvent, type StorageSettings, type StoredSession, type SyncStorage } from './storage.js';

/** Options of {@link MemoryStorage}. */
export interface MemoryStorageOptions {
  /**
   * The most sessions held; past it the least recently used is dropped.
   * @default 1_000_000
   */
  max?: number;
  /**
   * How often expired sessions are swept out of memory (they are never returned once expired,
   * swept or not).
   * @default '1m'
   */
  sweepInterval?: Duration;
  /** The clock, in milliseconds; tests inject one. @default Date.now */
  now?: () => number;
}

/** The default `sessionMaxSize` until the server configures the storage. */
const DEFAULT_MAX_SIZE = 1024 * 1024;

/**
 * Sessions in memory: an {@link ExpiringCache} keyed by id. Lost on restart. Each id owns its
 * data: nothing is shared between two ids. A `patch` is applied synchronously, so it is atomic
 * within the process.
 *
 * @example
 * ```ts
 * const s = new Server().setSessionStorage(new MemoryStorage());
 * ```
 */
export class MemoryStorage implements Storage {
  readonly #cache: ExpiringCache<string, SessionData>;
  #maxSize = DEFAULT_MAX_SIZE;
  #onEvent: ((event: StorageEvent) => void) | undefined;
  /** The ids of each owner's sessions; an id leaves with its session, however it leaves. */
  readonly #owners = new Map<string, Set<string>>();

  constructor({ max = 1_000_000, sweepInterval = '1m', now = Date.now }: MemoryStorageOptions = {}) {
    if (!Number.isSafeInteger(max) || max < 1) throw new TypeError(`option max is invalid: ${describe(max)} (expected a positive integer)`);
    if (typeof now !== 'function') throw new TypeError(`option now is invalid: ${describe(now)} (expected a function returning milliseconds)`);
    this.#cache = new ExpiringCache<string, SessionData>({
      max,
      now,
      sweepInterval,
      dispose: (data, id, reason) => {
        this.#unindex(id, data);
        if (reason === 'expire') this.#onEvent?.({ type: 'expired', idHash: hashId(id) });
      },
    });
  }

  /** Takes the server's `sessionMaxSize`, which `set` and `patch` then enforce, and its event sink. */
  configure(settings: StorageSettings): void {
    this.#maxSize = settings.maxSize;
    this.#onEvent = settings.onEvent;
  }

  /** @internal Every operation answers at once: the server takes no promise for this storage. */
  readonly [SYNC]: SyncStorage = {
    get: (id) => this.#cache.get(id),
    set: (id, data, ttlMs) => {
      this.#store(id, data, ttlMs, this.#checkSize(data));
      return true;
    },
    patch: (id, changes, clear, ttlMs) => this.#patch(id, changes, clear, ttlMs),
    touch: (id, ttlMs) => this.#cache.touch(id, ttlMs),
    cookieDue: (id) => this.#cache.noteOf(id) || undefined,
    setCookieDue: (id, at) => this.#cache.setNote(id, at),
  };

  /** The session, or `undefined` when missing or expired. */
  async get(id: string): Promise<SessionData | undefined> {
    return this.#cache.get(id);
  }

  /** Stores the session for `ttlMs`; the storage owns `data` from now on. */
  async set(id: string, data: SessionData, ttlMs: number): Promise<void> {
    this.#store(id, data, ttlMs, this.#checkSize(data));
  }

  /**
   * Applies one request's changes to the session as held now, and gives it `ttlMs` from now.
   * @returns `false` (changing nothing) when the session is missing or expired
   */
  async patch(id: string, changes: SessionChanges, ttlMs: number): Promise<boolean> {
    const set = new Map<string, JsonValue>();
    for (const k of Object.keys(changes.set)) set.set(k, changes.set[k] as JsonValue);
    // The removed keys are dropped from the copy: one also set is then set again, at the end,
    // as on FileStorage.
    return this.#patch(id, set, changes.clear, ttlMs, changes.remove.length === 0 ? undefined : new Set(changes.remove));
  }

  /**
   * Extends the session's life to `ttlMs` from now.
   * @returns `false` when the session is missing or expired (it stays missing)
   */
  async touch(id: string, ttlMs: number): Promise<boolean> {
    return this.#cache.touch(id, ttlMs);
  }

  /** Deletes the session. */
  async remove(id: string): Promise<void> {
    this.#cache.delete(id);
  }

  /** How many sessions are held (expired ones not yet swept included). */
  get size(): number {
    return this.#cache.size;
  }

  /** The live sessions whose owner is `owner`. */
  async ownerSessions(owner: string): Promise<StoredSession[]> {
    const out: StoredSession[] = [];
    for (const id of this.#owners.get(owner) ?? []) {
      const data = this.#cache.peek(id);
      const expiresAt = this.#cache.expiresAt(id);
      if (data !== undefined && expiresAt !== undefined) out.push({ idHash: hashId(id), expiresAt, data });
    }
    return out;
  }

  /** Removes every session of `owner` but the one whose id hashes to `exceptIdHash`. */
  async removeOwner(owner: string, exceptIdHash?: string): Promise<number> {
    let n = 0;
    for (const id of [...(this.#owners.get(owner) ?? [])]) {
      if (exceptIdHash !== undefined && hashId(id) === exceptIdHash) continue;
      if (this.#cache.delete(id)) n++;
    }
    return n;
  }

  /** How many live sessions are held (expired ones are dropped first). */
  async count(): Promise<number> {
    this.#cache.purgeStale();
    return this.#cache.size;
  }

  /** Every live session's id hash and expiry. */
  async *list(): AsyncGenerator<{ readonly idHash: string; readonly expiresAt: number }> {
    for (const id of this.#cache.keys()) {
      const expiresAt = this.#cache.expiresAt(id);
      if (expiresAt !== undefined) yield { idHash: hashId(id), expiresAt };
    }
  }

  /** Drops every session and stops the sweep timer. */
  async close(): Promise<void> {
    this.#cache.close();
    this.#owners.clear();
  }

  /**
   * {@link MemoryStorage.patch}, on the changes as the session records them (see
   * {@link SessionChangeMap}): every stored key is dropped when `clear`; else the keys marked
   * removed (the server's), and those in `dropped` (the contract's `patch` gives its removed keys
   * there; one it also sets is set again, at the end), are.
   */
  #patch(id: string, changes: SessionChangeMap, clear: boolean, ttlMs: number, dropped?: ReadonlySet<string>): boolean {
    const current = this.#cache.peek(id);
    if (current === undefined) return false;
    const next: SessionData = newRecord();
    // The size of the result, from the size of what is stored and the changes alone: the JSON
    // of the keys that did not change is not serialized again.
    // Removed keys are left out of the copy rather than deleted from it: a delete would turn
    // the record into a dictionary, slower to read from then on.
    let sum = 0;
    if (!clear) {
      sum = this.#cache.sizeOf(id) ?? 0;
      for (const k of Object.keys(current)) {
        if (changes.get(k) === REMOVED || dropped?.has(k) === true) sum -= entryBytes(k, current[k] as JsonValue);
        else setOwn(next, k, current[k]);
      }
    }
    for (const [k, v] of changes) {
      if (v === REMOVED) continue;
      // A key that stays: only its value's bytes change.
      sum += Object.hasOwn(next, k) ? valueBytes(v) - valueBytes(next[k] as JsonValue) : entryBytes(k, v);
      setOwn(next, k, v);
    }
    this.#checkBytes(sum);
    this.#store(id, next, ttlMs, sum, current);
    return true;
  }

  /**
   * Stores a session with the sum of its JSON entries (kept in the cache beside it, for the next
   * patch), keeping the owner index in step with it.
   */
  #store(id: string, data: SessionData, ttlMs: number, sum: number, previous = this.#cache.peek(id)): void {
    if (previous !== undefined && previous[META.owner] !== data[META.owner]) this.#unindex(id, previous);
    this.#cache.set(id, data, ttlMs, sum);
    const owner = data[META.owner];
    if (typeof owner === 'string') {
      let ids = this.#owners.get(owner);
      if (ids === undefined) {
        ids = new Set();
        this.#owners.set(owner, ids);
      }
      ids.add(id);
    }
  }

  #unindex(id: string, data: SessionData): void {
    const owner = data[META.owner];
    if (typeof owner !== 'string') return;
    const ids = this.#owners.get(owner);
    if (ids === undefined) return;
    ids.delete(id);
    if (ids.size === 0) this.#owners.delete(owner);
  }

  /** Checks a whole session's size, and returns its sum of entries for later patches. */
  #checkSize(data: SessionData): number {
    let sum = 0;
    for (const k of Object.keys(data)) sum += entryBytes(k, data[k] as JsonValue);
    this.#checkBytes(sum);
    return sum;
  }

  #checkBytes(sum: number): void {
    const size = sum === 0 ? 2 : sum + 1;
    if (size > this.#maxSize) throw sessionTooLarge(size, this.#maxSize);
  }
}
