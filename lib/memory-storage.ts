/**
 * Memory storage: sessions in an expiring cache. Fast, and gone when the process ends.
 */
import { ExpiringCache } from './cache.js';
import { type Duration, parseDuration } from './duration.js';
import type { SessionData, Storage } from './storage.js';

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

/**
 * Sessions in memory: an {@link ExpiringCache} keyed by id. Lost on restart. Each id owns its
 * data: nothing is shared between two ids.
 *
 * @example
 * ```ts
 * const s = new Server().setSessionStorage(new MemoryStorage());
 * ```
 */
export class MemoryStorage implements Storage {
  readonly #cache: ExpiringCache<string, SessionData>;

  constructor({ max = 1_000_000, sweepInterval = '1m', now = Date.now }: MemoryStorageOptions = {}) {
    if (!Number.isInteger(max) || max < 1) throw new TypeError(`option max is invalid: ${String(max)} (expected a positive integer)`);
    this.#cache = new ExpiringCache<string, SessionData>({
      ttl: '24h',
      max,
      now,
      sweepInterval: parseDuration(sweepInterval, 'sweepInterval'),
    });
  }

  /** The session, or `undefined` when missing or expired. */
  async get(id: string): Promise<SessionData | undefined> {
    return this.#cache.get(id);
  }

  /** Stores the session for `ttlMs`; the storage owns `data` from now on. */
  async set(id: string, data: SessionData, ttlMs: number): Promise<void> {
    this.#cache.set(id, data, ttlMs);
  }

  /** Extends the session's life to `ttlMs` from now; a missing session stays missing. */
  async touch(id: string, ttlMs: number): Promise<void> {
    this.#cache.touch(id, ttlMs);
  }

  /** Deletes the session. */
  async remove(id: string): Promise<void> {
    this.#cache.delete(id);
  }

  /** How many sessions are held (expired ones not yet swept included). */
  get size(): number {
    return this.#cache.size;
  }

  /** Drops every session and stops the sweep timer. */
  async close(): Promise<void> {
    this.#cache.close();
  }
}
