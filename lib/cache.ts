/**
 * An in-memory key-value cache whose entries expire: a time to live per entry, an optional
 * bound on the number of entries (least recently used first out), lazy expiry on every read,
 * and one `unref()`'d timer that sweeps expired entries in the background.
 *
 * Modelled on isaacs/ttlcache and lru-cache. Knows nothing of sessions or HTTP.
 */

import { describe, parseDuration, type Duration, MAX_DURATION_MS } from './duration.js';

/**
 * Why an entry left the cache, as passed to {@link ExpiringCacheOptions.dispose}.
 *
 * - `'expire'`: its time to live ran out. Reported by whichever comes first: a read or write
 *   of that key, {@link ExpiringCache.purgeStale}, the sweep timer, or `set` pushing it out
 *   past `max` when it had already expired.
 * - `'evict'`: it was the least recently used live entry when `set` went past `max`.
 * - `'delete'`: {@link ExpiringCache.delete} removed it while it was live.
 */
export type EvictionReason = 'expire' | 'evict' | 'delete';

/** Options of {@link ExpiringCache}. */
export interface ExpiringCacheOptions<K, V> {
  /**
   * The default time to live: how long an entry lives after a `set` that gives no ttl of its
   * own. Milliseconds or a duration string such as `'30m'`, above zero, or `Infinity` for
   * entries that never expire. An entry keeps the ttl it was set with (or last touched with):
   * `touch(key)` renews it for that, never for this default.
   *
   * Optional, for a cache where every `set` gives its own ttl: `new ExpiringCache({})` is
   * fine, and then a `set` without a ttl throws `TypeError('option ttl is invalid: undefined
   * (this cache has no default ttl; pass one to set)')`. The options object itself is
   * required: `new ExpiringCache()` throws a `TypeError` naming `ttl`.
   *
   * @default undefined (no default: every `set` must give a ttl)
   */
  ttl?: Duration;
  /**
   * The most entries held. Setting a new key beyond it removes the least recently used
   * entry, reported to `dispose` as `'evict'` (or `'expire'` when it had already expired).
   * A positive integer, or `Infinity` for no bound. Order of use is tracked to within an
   * eighth of it: see {@link ExpiringCache}.
   *
   * @default Infinity
   */
  max?: number;
  /**
   * The clock, in milliseconds. Expiry times are absolute values of this clock, so
   * {@link ExpiringCache.expiresAt} answers in its terms. Tests pass their own to move time
   * instead of sleeping. Called with the cache as `this`: wrap a method that needs its own
   * receiver, as in `() => performance.now()`.
   *
   * @default Date.now
   */
  now?: () => number;
  /**
   * Called after an entry left the cache for one of the {@link EvictionReason}s, with the
   * entry already gone. Every value put in by `set` is reported exactly once, unless it is
   * first replaced by a `set` of the same key while still live (a replacement is not a
   * removal) or dropped by `clear()`/`close()` (which call nothing).
   *
   * It may use the cache. It should not throw: an exception propagates to the caller of the
   * method that removed the entry (the cache is consistent by then), or, from the sweep
   * timer, becomes an uncaught exception like any timer callback's (the sweep carries on).
   *
   * @default undefined (nothing is called)
   */
  dispose?: (value: V, key: K, reason: EvictionReason) => void;
  /**
   * The least time between two sweeps of the background timer (milliseconds or a duration
   * string; `0` allowed). The timer fires at the soonest expiry of the entries it knows of, but
   * never sooner than this after it was scheduled, so `dispose(…, 'expire')` for an entry no
   * one reads comes up to this late. A sweep looks at every entry (bench/RESULTS.md has what
   * that costs per million), so a cache of millions may want a larger value: only memory waits
   * for the sweep, as reads never see an expired entry whatever this is.
   *
   * @default 1000
   */
  sweepInterval?: Duration;
}

/**
 * What is kept per key, and a link of the list in order of use (see {@link ExpiringCache}).
 * Mutated in place so that a hit, a move or an update allocates nothing.
 */
interface Entry<K, V> {
  key: K;
  value: V;
  /** Absolute time, on the cache's clock, from which the entry is expired; `Infinity` for never. */
  expiresAt: number;
  /** The entry's own time to live in milliseconds (`Infinity` for never), renewed by `touch`. */
  ttl: number;
  /** What the caller said the value weighs (see {@link ExpiringCache.sizeOf}); 0 when it said nothing. */
  size: number;
  /** The owner's note (see {@link ExpiringCache.noteOf}); 0 until set. */
  note: number;
  /** The cache's `#seq` when the entry last went to the end of the list. */
  seq: number;
  /** The entry used just before this one (the list's root for the least recently used). */
  prev: Entry<K, V>;
  /** The entry used just after this one (the list's root for the most recently used). */
  next: Entry<K, V>;
}

/** A new entry, in a list of its own: every entry (the root too) is made here, so all have one shape. */
function newEntry<K, V>(key: K, value: V, expiresAt: number, ttl: number, size: number, seq: number): Entry<K, V> {
  const entry = { key, value, expiresAt, ttl, size, note: 0, seq, prev: undefined, next: undefined } as unknown as Entry<K, V>;
  entry.prev = entry;
  entry.next = entry;
  return entry;
}

/** Puts an entry (out of any list) into the list right before `next`. */
function linkBefore<K, V>(entry: Entry<K, V>, next: Entry<K, V>): void {
  const prev = next.prev;
  entry.prev = prev;
  entry.next = next;
  prev.next = entry;
  next.prev = entry;
}

/** Takes an entry out of its list (its own links are left as they are). */
function unlink<K, V>(entry: Entry<K, V>): void {
  entry.prev.next = entry.next;
  entry.next.prev = entry.prev;
}


/** The longest delay `setTimeout` takes (about 24.8 days); longer ones would fire at once. */
const TIMEOUT_MAX = 2_147_483_647;
/** Entries a background sweep looks at before it yields to the event loop. */
const SWEEP_CHUNK = 10_000;
const DEFAULT_SWEEP_INTERVAL = 1_000;

/**
 * A ttl in milliseconds: whole numbers in range are taken as they are, `Infinity` means never.
 *
 * @throws TypeError naming `ttl` and the value when it is not a duration above zero
 */
function ttlMs(ttl: unknown): number {
  if (typeof ttl === 'number' && ttl > 0 && (ttl === Infinity || (ttl <= MAX_DURATION_MS && Number.isInteger(ttl)))) return ttl;
  return parseDuration(ttl, 'ttl');
}

/** The error of a `set` without a ttl on a cache without a default. */
function noDefaultTtl(): never {
  throw new TypeError('option ttl is invalid: undefined (this cache has no default ttl; pass one to set)');
}

/**
 * A key-value cache whose entries expire after a time to live, with an optional bound on
 * their number that evicts the least recently used.
 *
 * Expiry is exact and lazy: an entry is expired from the instant `now() >= expiresAt`, and
 * every method that looks up a key (`get`, `peek`, `has`, `touch`, `expiresAt`, `sizeOf`,
 * `delete`, `set`) treats an expired entry as missing and removes it, reporting `'expire'`
 * (`set` reports it and puts the new value in its place). Reading never extends a life; only
 * `set` and `touch` do. Each entry keeps its own ttl (the one `set` or the
 * last `touch` gave it, else the default), which a bare `touch` renews: one number more per
 * entry, and no lookup of options on the hot path. A ttl of `Infinity` never expires: such an
 * entry has `expiresAt` `Infinity` and never causes a timer.
 *
 * In the background, one `unref()`'d timer at a time (so it never keeps a program alive) fires
 * at the soonest known expiry, but no sooner than `sweepInterval` after it was scheduled. Its
 * callback reads the clock again and, if anything may have expired, sweeps the whole cache
 * in chunks of 10 000 entries with `setImmediate` between them, so even a million entries
 * never block the event loop for long. There is no timer while the cache is empty, and none
 * ever after `close()`, nor while every entry is one that never expires.
 *
 * Entries are found by key in one `Map`, and kept in order of use, the least recently used
 * first, in a list that runs through the entries themselves: a use (`get`, `set`, `touch`)
 * moves its entry to the end by relinking it between new neighbours, which allocates nothing.
 * (Reordering the `Map` itself, a delete and a set per use, leaves a deleted slot each time: a
 * key moved over and over makes its own lookups slower and slower, and the tables V8 rebuilds
 * to drop those slots outlive the young generation, so the garbage collector copies and
 * promotes them on every read: a third more CPU per read on a server whose sessions take
 * turns.) Not on every use, though: a relink writes to the entry's old neighbours, which on a
 * server taking its sessions in turn the CPU's caches no longer hold, so an entry among the last
 * `max / 8` added or moved stays where it is. Eviction is thus least recently used to within
 * an eighth of `max`, and exact for a `max` below 16; a cache far larger than what is in use
 * (`MemoryStorage`'s million) moves nothing. Without `max` order does not matter and nothing is
 * moved: `get` and `touch` do a lookup and no more, and the order is that in which keys were
 * first set. The entry found last is kept, so that a `touch`, `peek` or `set` of the same key
 * right after a `get` finds it without one.
 *
 * @example
 * ```ts
 * const cache = new ExpiringCache<string, Session>({
 *   ttl: '30m',
 *   max: 100_000,
 *   dispose: (session, id, reason) => log(`session ${id} left: ${reason}`),
 * });
 * cache.set(id, session);
 * cache.get(id); // the session, until 30 minutes after the set
 * cache.touch(id); // 30 more minutes from now
 * cache.set(key, value, '5m'); // this entry's own ttl: a touch(key) renews it for 5 minutes
 * cache.set(config, value, Infinity); // never expires
 * cache.close(); // on shutdown
 * ```
 */
export class ExpiringCache<K, V> {
  readonly #map = new Map<K, Entry<K, V>>();
  /**
   * The list of use's root: its `next` is the least recently used entry, its `prev` the most
   * (itself when the cache is empty). It holds no key or value of its own.
   */
  readonly #root: Entry<K, V>;
  /** Counts additions and moves; an entry's `seq` is the count when it last went to the end. */
  #seq = 0;
  /** How far from the end an entry must be before a use moves it: see the class notes. */
  readonly #window: number;
  /** The default ttl in milliseconds; `undefined` when every `set` must give one. */
  readonly #ttl: number | undefined;
  readonly #max: number;
  readonly #now: () => number;
  readonly #dispose: ((value: V, key: K, reason: EvictionReason) => void) | undefined;
  readonly #sweepInterval: number;

  /** A lower bound of every entry's `expiresAt` (exact after a full pass); `Infinity` when empty. */
  #soonest = Infinity;
  #timer: NodeJS.Timeout | undefined;
  /** When the timer fires, on the cache's clock; `Infinity` when there is no timer. */
  #timerAt = Infinity;
  /** The background sweep under way, and the soonest live expiry it has seen so far. */
  #sweep: MapIterator<[K, Entry<K, V>]> | undefined;
  #sweepSoonest = Infinity;
  #immediate: NodeJS.Immediate | undefined;
  #closed = false;
  /**
   * The entry last found, and its key: a request reads its session, then touches or replaces
   * it, and each of those finds the entry here instead of in the map (where a lookup of a
   * fresh key costs a hash of it and a walk of the table, out of the CPU's caches on a busy
   * server). Forgotten when the entry leaves the map.
   */
  #lastKey: K | undefined;
  #last: Entry<K, V> | undefined;

  /**
   * @param options - see {@link ExpiringCacheOptions}; required, though `{}` will do
   * @throws TypeError naming the option when one is invalid, and naming `ttl` when there is
   *   no options object
   */
  constructor(options: ExpiringCacheOptions<K, V>) {
    if (typeof options !== 'object' || options === null) {
      throw new TypeError(`option ttl is invalid: ${describe(options)} (expected an options object: { ttl } for a default ttl, or {} when every set gives its own)`);
    }
    const { ttl, max = Infinity, now = Date.now, dispose, sweepInterval = DEFAULT_SWEEP_INTERVAL } = options;
    this.#ttl = ttl === undefined ? undefined : ttlMs(ttl);
    if (max !== Infinity && !(Number.isSafeInteger(max) && max > 0)) {
      throw new TypeError(`option max is invalid: ${describe(max)} (expected a positive integer or Infinity)`);
    }
    this.#max = max;
    this.#window = max === Infinity ? Infinity : Math.max(1, Math.floor(max / 8));
    this.#root = newEntry(undefined as K, undefined as V, Infinity, Infinity, 0, 0);
    if (typeof now !== 'function') {
      throw new TypeError(`option now is invalid: ${describe(now)} (expected a function returning milliseconds)`);
    }
    this.#now = now;
    if (dispose !== undefined && typeof dispose !== 'function') {
      throw new TypeError(`option dispose is invalid: ${describe(dispose)} (expected a function)`);
    }
    this.#dispose = dispose;
    this.#sweepInterval = parseDuration(sweepInterval, 'sweepInterval', true);
  }

  /**
   * The number of entries held, including expired ones that no read, `purgeStale()` or sweep
   * has removed yet. Call `purgeStale()` first for the count of live entries.
   */
  get size(): number {
    return this.#map.size;
  }

  /**
   * The value of a live entry, which becomes the most recently used (see the class notes on
   * order of use). Does not extend its life.
   *
   * @returns the value, or `undefined` when the key is missing or expired (an expired entry is
   *   removed and reported as `'expire'`)
   */
  get(key: K): V | undefined {
    const entry = this.#live(key, this.#map.get(key));
    if (entry === undefined) return undefined;
    if (this.#seq - entry.seq >= this.#window) this.#moveToEnd(entry);
    return entry.value;
  }

  /**
   * Like {@link ExpiringCache.get}, but leaves the order of use as it is.
   *
   * @returns the value, or `undefined` when the key is missing or expired (an expired entry is
   *   removed and reported as `'expire'`)
   */
  peek(key: K): V | undefined {
    return this.#live(key, this.#find(key))?.value;
  }

  /**
   * Whether the key has a live entry. Does not change the order of use.
   * An expired entry is removed and reported as `'expire'`.
   */
  has(key: K): boolean {
    return this.#live(key, this.#find(key)) !== undefined;
  }

  /**
   * Stores a value that lives for `ttl` from now, as the most recently used entry. Replacing
   * the value of a live key calls no `dispose`; replacing an expired one first reports the
   * old value as `'expire'`. A new key beyond `max` removes the least recently used entry.
   *
   * @param ttl - this entry's own time to live (which `touch` renews): milliseconds or a
   *   duration string, above zero, or `Infinity` for never; defaults to the cache's `ttl`
   * @param size - a number kept with the entry for the caller, such as what the value weighs
   *   (read back with {@link ExpiringCache.sizeOf}); the cache does nothing else with it
   * @throws TypeError when `ttl` is invalid, or missing on a cache without a default (nothing
   *   is stored then)
   */
  set(key: K, value: V, ttl?: Duration, size = 0): this {
    const ms = ttl === undefined ? (this.#ttl ?? noDefaultTtl()) : ttlMs(ttl);
    const t = this.#now();
    const expiresAt = t + ms;
    const map = this.#map;
    const entry = this.#find(key);
    let expired: V | undefined;
    let hadExpired = false;
    if (entry === undefined) {
      const created = newEntry(key, value, expiresAt, ms, size, ++this.#seq);
      linkBefore(created, this.#root);
      map.set(key, created);
    } else {
      if (entry.expiresAt <= t) {
        hadExpired = true;
        expired = entry.value;
        // A new value where an expired one was: nothing of the old entry is kept.
        entry.note = 0;
      }
      entry.value = value;
      entry.expiresAt = expiresAt;
      entry.ttl = ms;
      entry.size = size;
      if (this.#seq - entry.seq >= this.#window) this.#moveToEnd(entry);
    }
    if (expiresAt < this.#soonest) this.#soonest = expiresAt;
    if (expiresAt < this.#timerAt) this.#schedule(t);
    if (hadExpired) this.#dispose?.(expired as V, key, 'expire');
    if (map.size > this.#max) this.#evictOldest(t);
    return this;
  }

  /**
   * Renews a live entry: it lives for its own ttl (the one it was set or last touched with)
   * from now, or for `ttl` when given, which then becomes its own. Makes it the most recently
   * used. Never needs the cache's default ttl.
   *
   * @param ttl - a new time to live for this entry, milliseconds or a duration string, above
   *   zero (shorter or longer than it had), or `Infinity` for never
   * @returns `false` when the key is missing or expired (an expired entry is removed and
   *   reported as `'expire'`)
   * @throws TypeError when `ttl` is invalid, whether or not the key is there
   */
  touch(key: K, ttl?: Duration): boolean {
    const ms = ttl === undefined ? undefined : ttlMs(ttl);
    const entry = this.#find(key);
    if (entry === undefined) return false;
    const t = this.#now();
    if (entry.expiresAt <= t) {
      this.#remove(key, entry, 'expire');
      return false;
    }
    if (ms !== undefined) entry.ttl = ms;
    const expiresAt = t + entry.ttl;
    entry.expiresAt = expiresAt;
    if (this.#seq - entry.seq >= this.#window) this.#moveToEnd(entry);
    if (expiresAt < this.#soonest) this.#soonest = expiresAt;
    if (expiresAt < this.#timerAt) this.#schedule(t);
    return true;
  }

  /**
   * The size `set` was given with a live entry (0 when it was given none), without changing the
   * order of use.
   *
   * @returns the size, or `undefined` when the key is missing or expired (an expired entry is
   *   removed and reported as `'expire'`)
   */
  sizeOf(key: K): number | undefined {
    return this.#live(key, this.#find(key))?.size;
  }

  /**
   * @internal A number the cache's owner keeps beside a live entry, 0 until set, kept when `set`
   * replaces the value (gone with the entry). Does not change the order of use.
   *
   * @returns the note, or `undefined` when the key is missing or expired
   */
  noteOf(key: K): number | undefined {
    return this.#live(key, this.#find(key))?.note;
  }

  /**
   * @internal Sets the note of a live entry (see {@link ExpiringCache.noteOf}).
   *
   * @returns `false` when the key is missing or expired
   */
  setNote(key: K, note: number): boolean {
    const entry = this.#live(key, this.#find(key));
    if (entry === undefined) return false;
    entry.note = note;
    return true;
  }

  /**
   * Removes an entry, reporting it as `'delete'`.
   *
   * @returns `true` when a live entry was removed; `false` when the key was missing, or
   *   expired (then it is removed and reported as `'expire'` instead)
   */
  delete(key: K): boolean {
    const entry = this.#live(key, this.#find(key));
    if (entry === undefined) return false;
    this.#remove(key, entry, 'delete');
    return true;
  }

  /**
   * When a live entry expires: an absolute time on the cache's clock (epoch milliseconds with
   * the default `Date.now`). Does not change the order of use.
   *
   * @returns the time, or `undefined` when the key is missing or expired (an expired entry is
   *   removed and reported as `'expire'`)
   */
  expiresAt(key: K): number | undefined {
    return this.#live(key, this.#find(key))?.expiresAt;
  }

  /**
   * Removes every expired entry now, reporting each as `'expire'`. It runs in one go over every
   * entry, blocking meanwhile, for a time that grows with the number of entries (mostly
   * `Map.delete` for expired ones). The background sweep does the same work in chunks of
   * 10 000 entries instead.
   *
   * @returns how many entries it removed
   */
  purgeStale(): number {
    const t = this.#now();
    let removed = 0;
    let soonest = Infinity;
    for (const [key, entry] of this.#map) {
      if (entry.expiresAt <= t) {
        this.#remove(key, entry, 'expire');
        removed++;
      } else if (entry.expiresAt < soonest) {
        soonest = entry.expiresAt;
      }
    }
    this.#soonest = soonest;
    return removed;
  }

  /**
   * Removes every entry without calling `dispose`, and stops the timer and any sweep under
   * way. The cache stays usable: the next `set` schedules a timer again.
   */
  clear(): void {
    this.#map.clear();
    this.#forget();
    const root = this.#root;
    root.prev = root;
    root.next = root;
    this.#idle();
  }

  /**
   * `clear()`, and no timer is ever scheduled again, so the cache cannot keep anything
   * running. The cache still works after it, with lazy expiry alone. Safe to call twice.
   */
  close(): void {
    this.#closed = true;
    this.clear();
  }

  /**
   * The keys of the live entries, from the least to the most recently used (in the order of
   * the class notes; without `max`, in the order keys were first set): a snapshot taken at
   * the call, so the loop may use the cache, and it changes no order of use.
   */
  keys(): IterableIterator<K> {
    return this.#snapshot((entry) => entry.key);
  }

  /** The values of the live entries, in the order and with the snapshot of {@link ExpiringCache.keys}. */
  values(): IterableIterator<V> {
    return this.#snapshot((entry) => entry.value);
  }

  /** `[key, value]` of the live entries, in the order and with the snapshot of {@link ExpiringCache.keys}. */
  entries(): IterableIterator<[K, V]> {
    return this.#snapshot((entry): [K, V] => [entry.key, entry.value]);
  }

  /** The same as {@link ExpiringCache.entries}, for `for…of` and spreading. */
  [Symbol.iterator](): IterableIterator<[K, V]> {
    return this.entries();
  }

  /**
   * The live entry of a key, given as found (`#find`, or the map's own for `get`: it starts a
   * request, whose key is a fresh string that would be compared in full with the key remembered
   * from the last request); remembered from then on for what follows on the same key. An
   * expired one is removed and reported here.
   */
  #live(key: K, entry: Entry<K, V> | undefined): Entry<K, V> | undefined {
    if (entry === undefined) return undefined;
    this.#lastKey = key;
    this.#last = entry;
    if (entry.expiresAt > this.#now()) return entry;
    this.#remove(key, entry, 'expire');
    return undefined;
  }

  /** The entry of a key, expired or not: the one last found (by `#live`), or the map's. */
  #find(key: K): Entry<K, V> | undefined {
    return this.#last !== undefined && key === this.#lastKey ? this.#last : this.#map.get(key);
  }

  /** Forgets the entry last found (it left the map). */
  #forget(): void {
    this.#lastKey = undefined;
    this.#last = undefined;
  }

  /** What `pick` makes of each live entry, in order of use: a snapshot (no code of the caller's runs meanwhile). */
  #snapshot<T>(pick: (entry: Entry<K, V>) => T): IterableIterator<T> {
    const t = this.#now();
    const root = this.#root;
    const out: T[] = [];
    for (let entry = root.next; entry !== root; entry = entry.next) if (entry.expiresAt > t) out.push(pick(entry));
    return out.values();
  }

  /** Makes an entry the most recently used. */
  #moveToEnd(entry: Entry<K, V>): void {
    unlink(entry);
    linkBefore(entry, this.#root);
    entry.seq = ++this.#seq;
  }

  /** Takes an entry out of the map, the list of use and the memory of the entry last found. */
  #detach(key: K, entry: Entry<K, V>): void {
    this.#map.delete(key);
    if (entry === this.#last) this.#forget();
    unlink(entry);
  }

  /** Takes an entry out, then reports it: the cache is consistent when `dispose` runs. */
  #remove(key: K, entry: Entry<K, V>, reason: EvictionReason): void {
    this.#detach(key, entry);
    if (this.#map.size === 0) this.#idle();
    this.#dispose?.(entry.value, key, reason);
  }

  /** Removes the least recently used entry (the map holds more than `max`, so there is one). */
  #evictOldest(t: number): void {
    const oldest = this.#root.next;
    this.#remove(oldest.key, oldest, oldest.expiresAt <= t ? 'expire' : 'evict');
  }

  /** Stops the timer and any sweep; called when the cache becomes empty. */
  #idle(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Infinity;
    if (this.#immediate !== undefined) clearImmediate(this.#immediate);
    this.#immediate = undefined;
    this.#sweep = undefined;
    this.#soonest = Infinity;
  }

  /**
   * Makes sure a timer fires at the soonest known expiry, or `sweepInterval` from `t` if that
   * is later. One timer at a time: an earlier target replaces it, a later one leaves it. None
   * when nothing is known to expire (`#soonest` is `Infinity`: only infinite entries left).
   */
  #schedule(t: number): void {
    if (this.#closed || this.#sweep !== undefined || this.#soonest === Infinity) return;
    const at = Math.max(this.#soonest, t + this.#sweepInterval);
    if (this.#timer !== undefined) {
      if (at >= this.#timerAt) return;
      clearTimeout(this.#timer);
    }
    this.#timerAt = at;
    this.#timer = setTimeout(this.#onTimer, Math.min(at - t, TIMEOUT_MAX)).unref();
  }

  /** The timer's callback. It trusts its clock, not the timer: too early, it schedules again. */
  readonly #onTimer = (): void => {
    this.#timer = undefined;
    this.#timerAt = Infinity;
    const t = this.#now();
    if (t < this.#soonest) {
      this.#schedule(t);
      return;
    }
    this.#sweep = this.#map.entries();
    this.#sweepSoonest = Infinity;
    this.#sweepChunk();
  };

  /**
   * One chunk of the background sweep: removes the expired entries among the next
   * `SWEEP_CHUNK`, then yields with `setImmediate`, or, at the end, schedules the next timer.
   * Map iterators survive changes to the map (entries added meanwhile are visited later),
   * so the sweep sees every entry and its soonest expiry is a true lower bound.
   */
  readonly #sweepChunk = (): void => {
    this.#immediate = undefined;
    const sweep = this.#sweep;
    // Cannot happen (whatever ends a sweep also clears its immediate); narrows the type.
    /* c8 ignore next */
    if (sweep === undefined) return;
    const t = this.#now();
    let budget = SWEEP_CHUNK;
    let finished = false;
    try {
      for (const [key, entry] of sweep) {
        if (entry.expiresAt <= t) {
          // Not #remove: an emptied cache must not stop the sweep under way.
          this.#detach(key, entry);
          this.#dispose?.(entry.value, key, 'expire');
        } else if (entry.expiresAt < this.#sweepSoonest) {
          this.#sweepSoonest = entry.expiresAt;
        }
        // Map iterators have no return(), so breaking out leaves `sweep` where it was.
        if (--budget === 0) break;
      }
      finished = budget > 0;
    } finally {
      // Unless clear(), close() or an emptied cache stopped it (from dispose), go on: after an
      // exception from dispose too, which then propagates as the timer's own would.
      if (this.#sweep === sweep) {
        if (finished) {
          this.#sweep = undefined;
          this.#soonest = this.#sweepSoonest;
          this.#schedule(t);
        } else {
          this.#immediate = setImmediate(this.#sweepChunk).unref();
        }
      }
    }
  };
}
