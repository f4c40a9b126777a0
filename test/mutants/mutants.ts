/**
 * The mutants test/mutants/run.ts plants, one at a time, in a scratch copy of the project: each a
 * small, plausible bug written as a source edit. `find` must occur exactly once in `file` (the
 * runner refuses to start otherwise: a mutant that no longer applies after a refactor is fixed
 * here, never skipped). `tests` are the test files that should notice, most likely killer first:
 * the runner stops at the first that fails. A mutant the suite cannot notice because it changes
 * no behaviour carries `equivalent` with the reason.
 */

/** One planted bug. */
export interface Mutant {
  /** A short, unique name. */
  readonly id: string;
  /** The source file edited, from the project's root. */
  readonly file: string;
  /** The exact text replaced; it must occur exactly once in the file. */
  readonly find: string;
  /** What replaces it. */
  readonly replace: string;
  /** The test files run against the mutant, from the project's root. */
  readonly tests: readonly string[];
  /** What the bug is, and what would go wrong in production. */
  readonly why: string;
  /** Set when the mutant changes no observable behaviour: why. */
  readonly equivalent?: string;
}

const SESSION = 'test/session.test.ts';
const SESSION_MORE = 'test/session-commit.test.ts';
const FEATURES = 'test/features.test.ts';
const CONTRACT = 'test/storage/contract.test.ts';
const MEMORY = 'test/storage/memory.test.ts';
const MEMORY_MUTANTS = 'test/storage/memory-mutants.test.ts';
const FILE = 'test/storage/file/file-storage.test.ts';
const FILE_HOSTILE = 'test/storage/file/file-hostile.test.ts';
const FILE_MUTANTS = 'test/storage/file/mutants-file.test.ts';
const CSRF = 'test/csrf.test.ts';

export const MUTANTS: readonly Mutant[] = [
  // ------------------------------------------------------------------------------------------
  // lib/session.ts: the commit, its lock, regenerate and destroy, the cookie, the size check
  {
    id: 'session-merge-loaded-copy',
    file: 'lib/session.ts',
    find: 'await this.#write(id, applyChanges(s.cleared ? undefined : current, s.changes), ttl);',
    replace: 'await this.#write(id, applyChanges(s.cleared ? undefined : s.base, s.changes), ttl);',
    tests: [SESSION],
    why: 'the read-merge-write applies the changes to the copy loaded before the handler, not to the state stored now: overlapping requests lose each other\'s keys',
  },
  {
    id: 'session-patch-loaded-copy',
    file: 'lib/session.ts',
    find: 'return await storage.patch(id, changeSet(s), ttl);',
    replace: 'return await storage.patch(id, { set: data, remove: [], clear: true }, ttl);',
    tests: [SESSION],
    why: 'the patch sends the whole loaded view (clear, then set everything) instead of this request\'s changes: a storage with patch loses concurrent keys',
  },
  {
    id: 'session-lock-removed',
    file: 'lib/session.ts',
    find: `    return this.#lock(id, async () => {
      const current = await this.#read(id);
      // Destroyed, regenerated or expired meanwhile: never bring it back.
      if (current === undefined) return false;
      await this.#write(id, applyChanges(s.cleared ? undefined : current, s.changes), ttl);
      return true;
    });`,
    replace: `    return (async () => {
      const current = await this.#read(id);
      // Destroyed, regenerated or expired meanwhile: never bring it back.
      if (current === undefined) return false;
      await this.#write(id, applyChanges(s.cleared ? undefined : current, s.changes), ttl);
      return true;
    })();`,
    tests: [SESSION],
    why: 'the read-merge-write runs without the per-id lock: two commits read the same state and the second write drops the first\'s key',
  },
  {
    id: 'session-lock-no-wait',
    file: 'lib/session.ts',
    find: '      if (previous !== undefined) await previous;\n',
    replace: '',
    tests: [SESSION],
    why: 'the lock is queued but never waited for: commits of one id interleave',
  },
  {
    id: 'session-lock-missing-await',
    file: 'lib/session.ts',
    find: '      return await fn();',
    replace: '      return fn();',
    tests: [SESSION],
    why: 'a missing await: the finally releases the lock as soon as fn starts, not when it ends',
  },
  {
    id: 'session-merge-resurrects',
    file: 'lib/session.ts',
    find: '      if (current === undefined) return false;\n',
    replace: '',
    tests: [SESSION, SESSION_MORE],
    why: 'the read-merge-write writes a session another request destroyed meanwhile: it comes back to life',
  },
  {
    id: 'session-regenerate-keeps-old',
    file: 'lib/session.ts',
    find: '      if (s.retire) await this.#remove(s.origin);',
    replace: '',
    tests: [SESSION],
    why: 'regenerate does not delete the old id: a stolen pre-login id stays valid (session fixation)',
  },
  {
    id: 'session-regenerate-drop-keeps-set',
    file: 'lib/session.ts',
    find: '      const created = lookup(s, META.created);\n      s.changes = new Map();\n',
    replace: '      const created = lookup(s, META.created);\n',
    tests: [SESSION],
    why: 'regenerate({ keepData: false }) keeps the keys set earlier in the same request',
  },
  {
    id: 'session-regenerate-carries-destroyed',
    file: 'lib/session.ts',
    find: '        gone = base === undefined;',
    replace: '        gone = false;',
    tests: [SESSION, SESSION_MORE],
    why: 'a regenerate whose old session another request destroyed meanwhile still creates a session under the new id (a logout undone by a slow login)',
  },
  {
    id: 'session-destroy-keeps-record',
    file: 'lib/session.ts',
    find: `      if (s.retire) {
        await this.#remove(s.origin);`,
    replace: `      if (s.retire) {
        void s.origin;`,
    tests: [SESSION],
    why: 'destroy expires the cookie but leaves the record: the old cookie replayed still logs in',
  },
  {
    id: 'session-destroy-keeps-cookie',
    file: 'lib/session.ts',
    find: '    if (s.destroyed && s.id === \'\') {',
    replace: '    if (s.destroyed && s.id === \'\' && false) {',
    tests: [SESSION],
    why: 'destroy deletes the record but does not expire the cookie',
  },
  {
    id: 'session-refresh-interval-half',
    file: 'lib/session.ts',
    find: 'Math.floor(cookieMaxAgeMs / 4)',
    replace: 'Math.floor(cookieMaxAgeMs / 2)',
    tests: [SESSION],
    why: 'the read-only cookie refresh comes every half of the cookie\'s life instead of every quarter: a client may drop it before it is refreshed',
  },
  {
    id: 'session-refresh-interval-cap',
    file: 'lib/session.ts',
    find: 'Math.min(60_000, Math.floor(',
    replace: 'Math.min(600_000, Math.floor(',
    tests: [SESSION],
    why: 'the refresh interval is capped at ten minutes instead of one',
  },
  {
    id: 'session-max-age-floor',
    file: 'lib/session.ts',
    find: 'Math.max(1, Math.ceil(ms / 1000))',
    replace: 'Math.max(1, Math.floor(ms / 1000))',
    tests: [SESSION],
    why: 'the cookie\'s Max-Age is rounded down: the browser drops the cookie before the session ends',
  },
  {
    id: 'session-max-age-round',
    file: 'lib/session.ts',
    find: 'Math.max(1, Math.ceil(ms / 1000))',
    replace: 'Math.max(1, Math.round(ms / 1000))',
    tests: [SESSION],
    why: 'the cookie\'s Max-Age is rounded to the nearest second: 1 001 ms gives 1 s',
  },
  {
    id: 'session-max-age-no-floor-of-one',
    file: 'lib/session.ts',
    find: 'Math.max(1, Math.ceil(ms / 1000))',
    replace: 'Math.ceil(ms / 1000)',
    tests: [SESSION],
    why: 'the guard that keeps a live cookie\'s Max-Age above 0 is dropped',
    equivalent: 'cookieMaxAgeSeconds is only called with a life above 0 ms (#cookieLife is 0 or positive, and 0 takes the path without Max-Age), and Math.ceil of a positive number of ms / 1000 is already at least 1',
  },
  {
    id: 'session-duplicate-cookies-first-only',
    file: 'lib/session.ts',
    find: 'cookieValues(cookieHeader, name, MAX_SESSION_COOKIES)',
    replace: 'cookieValues(cookieHeader, name, 1)',
    tests: [SESSION],
    why: 'only the first value of the session cookie is tried: a sibling subdomain that plants a garbage sid logs the user out',
  },
  {
    id: 'session-duplicate-cookies-bound',
    file: 'lib/session.ts',
    find: 'export const MAX_SESSION_COOKIES = 4;',
    replace: 'export const MAX_SESSION_COOKIES = 5;',
    tests: [SESSION],
    why: 'one more cookie value (and storage read) per request than documented',
  },
  {
    id: 'session-size-check-off-by-one',
    file: 'lib/session.ts',
    find: '    if (size > this.#config.maxSize) throw sessionTooLarge(size, this.#config.maxSize);',
    replace: '    if (size >= this.#config.maxSize) throw sessionTooLarge(size, this.#config.maxSize);',
    tests: [SESSION, SESSION_MORE],
    why: 'the server\'s own size check (for storages without configure) refuses a session of exactly sessionMaxSize bytes',
  },
  {
    id: 'session-size-check-skipped',
    file: 'lib/session.ts',
    find: '    if (!this.#storageChecksSize) this.#checkSize(data);\n    try {\n      await storage.set(id, data, ttl);',
    replace: '    try {\n      await storage.set(id, data, ttl);',
    tests: [SESSION, SESSION_MORE],
    why: 'a storage without configure gets sessions of any size',
  },
  {
    id: 'session-validator-skipped',
    file: 'lib/session.ts',
    find: "    if (id !== '' && this.#config.validateId(id)) return true;",
    replace: "    if (id !== '') return true;",
    tests: [SESSION],
    why: 'incoming ids reach the storage without the format check',
  },
  {
    id: 'session-adopts-unknown-id',
    file: 'lib/session.ts',
    find: "    return new Session<T>(this.#ctx, '', undefined);\n  }\n\n  /** Whether an offered id",
    replace: "    return new Session<T>(this.#ctx, ids.find((id) => id !== '' && this.#config.validateId(id)) ?? '', undefined);\n  }\n\n  /** Whether an offered id",
    tests: [SESSION],
    why: 'an unknown, well-formed id from the client is adopted (session fixation), on a storage that answers with promises',
  },
  {
    id: 'session-adopts-unknown-id-sync',
    file: 'lib/session.ts',
    find: "    return new Session<T>(this.#ctx, '', undefined);\n  }\n\n  /** {@link SessionManager.load} from",
    replace: "    return new Session<T>(this.#ctx, ids.find((id) => id !== '' && this.#config.validateId(id)) ?? '', undefined);\n  }\n\n  /** {@link SessionManager.load} from",
    tests: [SESSION, SESSION_MORE],
    why: 'an unknown, well-formed id from the client is adopted (session fixation), on a storage that answers at once (MemoryStorage)',
  },
  {
    id: 'session-no-absolute-timeout',
    file: 'lib/session.ts',
    find: "    if (lifetime === 0 || typeof created !== 'number') return Infinity;",
    replace: '    return Infinity;',
    tests: [FEATURES],
    why: 'sessionMaxLifetime is ignored: an active session lives forever',
  },
  {
    id: 'session-touch-dead-cookie',
    file: 'lib/session.ts',
    find: '        if (alive === false) cookie = undefined;\n',
    replace: '',
    tests: [SESSION],
    why: 'a read-only request refreshes the cookie of a session that a concurrent request destroyed',
  },
  {
    id: 'session-touch-unknown-not-asked',
    file: 'lib/session.ts',
    find: '        if (cookie !== undefined && alive === undefined) alive = (await this.#read(s.id)) !== undefined;\n',
    replace: '',
    tests: [SESSION],
    why: 'with a storage whose touch does not tell, the cookie of a destroyed session is sent back',
  },
  {
    id: 'session-change-ignores-new-value',
    file: 'lib/session.ts',
    find: 'if (v === REMOVED ? had : !had || !jsonEqual((base as SessionData)[k], v)) return true;',
    replace: 'if (v === REMOVED ? had : !had) return true;',
    tests: [SESSION, SESSION_MORE],
    why: 'changing the value of an existing key is not seen as a change: the write is lost',
  },
  {
    id: 'session-creates-emptied',
    file: 'lib/session.ts',
    find: '    if (!s.regenerated && !worthKeeping(data)) return undefined;',
    replace: '',
    tests: [SESSION_MORE, SESSION],
    why: 'a new session started and emptied in one request is still stored and gets a cookie, on either path of the commit',
  },
  {
    id: 'session-new-no-created-event',
    file: 'lib/session.ts',
    find: '    if (emit === undefined) return;\n    emit(s.retire',
    replace: '    if (emit === undefined || !s.retire) return;\n    emit(s.retire',
    tests: [SESSION_MORE, FEATURES],
    why: 'a new session is never reported to the created listeners (audit logs miss every session)',
  },
  {
    id: 'session-sync-new-no-event',
    file: 'lib/session.ts',
    find: '    this.#afterNew(s, request);\n    return this.#setCookie(s, jar, secure, next.header);\n  }',
    replace: '    return this.#setCookie(s, jar, secure, next.header);\n  }',
    tests: [SESSION_MORE, FEATURES],
    why: 'on a storage that answers at once, a new session is never reported to the created listeners',
  },
  {
    id: 'session-sync-touch-dead-cookie',
    file: 'lib/session.ts',
    find: '        if (alive !== false) cookie = this.#cookieIfDue(s.id, s.base[META.remember], s.base[META.created], secure, false);',
    replace: '        cookie = this.#cookieIfDue(s.id, s.base[META.remember], s.base[META.created], secure, false);',
    tests: [SESSION, SESSION_MORE],
    why: 'on a storage that answers at once (MemoryStorage), a read-only request refreshes the cookie of a session a concurrent request destroyed',
  },
  {
    id: 'session-sync-patch-dead-cookie',
    file: 'lib/session.ts',
    find: '        if (written) cookie = this.#cookieIfDue(',
    replace: '        cookie = this.#cookieIfDue(',
    tests: [SESSION, SESSION_MORE],
    why: 'on a storage that answers at once, a write to a session a concurrent request destroyed (the patch wrote nothing) still sends its cookie',
  },
  {
    id: 'session-refresh-due-boundary',
    file: 'lib/session.ts',
    find: '      if (due !== undefined && now < due) return undefined;',
    replace: '      if (due !== undefined && now <= due) return undefined;',
    tests: [SESSION],
    why: 'the cookie refresh comes one tick after it is due: at exactly a quarter of its life the cookie is not refreshed',
  },
  {
    id: 'server-cache-control',
    file: 'lib/server.ts',
    find: "r.response.header('Cache-Control', 'no-store');",
    replace: "r.response.header('Cache-Control', 'no-cache');",
    tests: [SESSION],
    why: 'responses that set the session cookie may be stored by caches (no-cache is not no-store)',
  },
  {
    id: 'server-trusts-any-proxy',
    file: 'lib/server.ts',
    find: "      if (o.trustProxy) viaProxy = first === 'https';",
    replace: "      if (o.trustProxy !== undefined) viaProxy = first === 'https';",
    tests: [SESSION],
    why: 'X-Forwarded-Proto is believed without trustProxy',
  },
  {
    id: 'sessions-destroy-all-no-except',
    file: 'lib/sessions.ts',
    find: ": except.id === '' ? undefined : hashId(except.id);",
    replace: ': undefined;',
    tests: [FEATURES],
    why: 'log out everywhere ends the current session too, though it was excepted',
  },

  // ------------------------------------------------------------------------------------------
  // lib/csrf.ts
  {
    id: 'csrf-compare-not-constant-time',
    file: 'lib/csrf.ts',
    find: '  return timingSafeEqual(unmasked, key);',
    replace: "  return unmasked.toString('hex') === key.toString('hex');",
    tests: [FEATURES, CSRF],
    why: 'the token is compared with ===, which leaks through timing how much of it is right',
  },
  {
    id: 'csrf-skips-origin-layer',
    file: 'lib/csrf.ts',
    find: "      if (!sameOrigin(r.header('sec-fetch-site'), r.header('origin'), r.header('host'), allowed)) {",
    replace: '      if (false) {',
    tests: [FEATURES],
    why: 'the Sec-Fetch-Site and Origin layer is skipped: only the token protects',
  },
  {
    id: 'csrf-ignores-fetch-site',
    file: 'lib/csrf.ts',
    find: "  return fetchSite !== 'cross-site';",
    replace: '  return true;',
    tests: [FEATURES],
    why: 'without an Origin header, Sec-Fetch-Site: cross-site is not looked at',
  },
  {
    id: 'csrf-delete-is-safe',
    file: 'lib/csrf.ts',
    find: "const SAFE = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE']);",
    replace: "const SAFE = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'DELETE']);",
    tests: [FEATURES, CSRF],
    why: 'DELETE requests go through without a token',
  },
  {
    id: 'csrf-token-length-unchecked',
    file: 'lib/csrf.ts',
    find: '  if (key.length !== SECRET_BYTES || raw.length !== key.length * 2) return false;',
    replace: '  if (key.length !== SECRET_BYTES) return false;',
    tests: [FEATURES, CSRF],
    why: 'a token of the wrong length is unmasked with missing bytes: the bare secret (or a half token) verifies',
  },

  // ------------------------------------------------------------------------------------------
  // lib/storage/memory.ts
  {
    id: 'memory-patch-creates',
    file: 'lib/storage/memory.ts',
    find: '    const current = this.#cache.peek(id);\n    if (current === undefined) return false;\n',
    replace: '    const current = this.#cache.peek(id) ?? Object.create(null);\n',
    tests: [CONTRACT, SESSION],
    why: 'patch of a missing (destroyed) session creates it: resurrection',
  },
  {
    id: 'memory-patch-ignores-remove',
    file: 'lib/storage/memory.ts',
    find: '        if (removed.length !== 0 && removed.includes(k)) sum -= entryBytes(k, current[k] as JsonValue);\n        else setOwn(next, k, current[k]);',
    replace: '        if (removed.length !== 0 && removed.includes(k)) sum -= entryBytes(k, current[k] as JsonValue);\n        setOwn(next, k, current[k]);',
    tests: [CONTRACT, SESSION],
    why: 'patch does not delete the removed keys',
  },
  {
    id: 'memory-patch-no-size-check',
    file: 'lib/storage/memory.ts',
    find: '    this.#checkBytes(sum);\n    this.#store(id, next, ttlMs, sum, current);',
    replace: '    this.#store(id, next, ttlMs, sum, current);',
    tests: [CONTRACT, SESSION],
    why: 'a patch past sessionMaxSize is stored',
  },
  {
    id: 'memory-size-check-off-by-one',
    file: 'lib/storage/memory.ts',
    find: '    if (size > this.#maxSize) throw sessionTooLarge(size, this.#maxSize);',
    replace: '    if (size >= this.#maxSize) throw sessionTooLarge(size, this.#maxSize);',
    tests: [CONTRACT, MEMORY, MEMORY_MUTANTS],
    why: 'a session of exactly sessionMaxSize bytes is refused',
  },
  {
    id: 'memory-size-of-empty-brace',
    file: 'lib/storage/memory.ts',
    find: '    const size = sum === 0 ? 2 : sum + 1;',
    replace: '    const size = sum === 0 ? 2 : sum;',
    tests: [CONTRACT, MEMORY, MEMORY_MUTANTS],
    why: 'the incremental size of a session forgets one byte of its JSON: a session one byte over sessionMaxSize is stored',
  },
  {
    id: 'memory-size-replace-counted-twice',
    file: 'lib/storage/memory.ts',
    find: '      sum += Object.hasOwn(next, k) ? valueBytes(v) - valueBytes(next[k] as JsonValue) : entryBytes(k, v);',
    replace: '      sum += Object.hasOwn(next, k) ? entryBytes(k, v) : entryBytes(k, v);',
    tests: [CONTRACT, MEMORY, MEMORY_MUTANTS],
    why: 'a patch that replaces a key counts the old value\'s bytes as well: sessions are refused long before sessionMaxSize',
  },
  {
    id: 'memory-size-removed-not-subtracted',
    file: 'lib/storage/memory.ts',
    find: '        if (removed.length !== 0 && removed.includes(k)) sum -= entryBytes(k, current[k] as JsonValue);',
    replace: '        if (removed.length !== 0 && removed.includes(k)) sum -= 0;',
    tests: [CONTRACT, MEMORY, MEMORY_MUTANTS],
    why: 'a removed key still counts toward the session\'s size',
  },
  {
    id: 'memory-touch-creates',
    file: 'lib/storage/memory.ts',
    find: '    return this.#cache.touch(id, ttlMs);',
    replace: '    if (!this.#cache.touch(id, ttlMs)) this.#cache.set(id, Object.create(null), ttlMs);\n    return true;',
    tests: [CONTRACT, SESSION],
    why: 'touch of a missing session creates an empty one',
  },
  {
    id: 'memory-owner-index-keeps-dead',
    file: 'lib/storage/memory.ts',
    find: '        this.#unindex(id, data);\n',
    replace: '',
    tests: [CONTRACT, FEATURES, MEMORY, MEMORY_MUTANTS],
    why: 'the owner index keeps the ids of sessions that left (expired, evicted, removed): it grows without bound, and an id used again is listed under its old owner',
  },
  {
    id: 'memory-owner-index-stale-owner',
    file: 'lib/storage/memory.ts',
    find: '    if (previous !== undefined && previous[META.owner] !== data[META.owner]) this.#unindex(id, previous);\n',
    replace: '',
    tests: [CONTRACT, FEATURES],
    why: 'a session whose owner changed is still listed (and logged out) under its old owner',
  },
  {
    id: 'memory-remove-owner-no-except',
    file: 'lib/storage/memory.ts',
    find: '      if (exceptIdHash !== undefined && hashId(id) === exceptIdHash) continue;\n',
    replace: '',
    tests: [CONTRACT, FEATURES],
    why: 'removeOwner removes the excepted session too',
  },

  // ------------------------------------------------------------------------------------------
  // lib/cache.ts
  {
    id: 'cache-returns-expired',
    file: 'lib/cache.ts',
    find: '    if (entry.expiresAt > this.#now()) return entry;',
    replace: '    if (entry.expiresAt >= this.#now()) return entry;',
    tests: ['test/cache.test.ts'],
    why: 'an entry is still returned at the instant it expires',
  },
  {
    id: 'cache-touch-revives-expired',
    file: 'lib/cache.ts',
    find: "    if (entry.expiresAt <= t) {\n      this.#remove(key, entry, 'expire');\n      return false;",
    replace: "    if (entry.expiresAt < t) {\n      this.#remove(key, entry, 'expire');\n      return false;",
    tests: ['test/cache.test.ts'],
    why: 'touch renews an entry at the instant it expires',
  },
  {
    id: 'cache-evicts-one-early',
    file: 'lib/cache.ts',
    find: '    if (map.size > this.#max) this.#evictOldest(t);',
    replace: '    if (map.size >= this.#max) this.#evictOldest(t);',
    tests: ['test/cache.test.ts'],
    why: 'the cache holds max - 1 entries',
  },
  {
    id: 'cache-lists-expired',
    file: 'lib/cache.ts',
    find: '    for (const [key, entry] of this.#map) if (entry.expiresAt > t) keys.push(key);',
    replace: '    for (const [key] of this.#map) keys.push(key);',
    tests: ['test/cache.test.ts'],
    why: 'keys() lists expired entries (MemoryStorage.list would list dead sessions)',
  },
  {
    id: 'cache-touch-keeps-old-ttl',
    file: 'lib/cache.ts',
    find: '    if (ms !== undefined) entry.ttl = ms;\n',
    replace: '',
    tests: ['test/cache.test.ts'],
    why: 'touch with a ttl extends by the entry\'s old ttl instead',
  },
  {
    id: 'cache-remembers-removed',
    file: 'lib/cache.ts',
    find: '    this.#map.delete(key);\n    if (entry === this.#last) this.#forget();\n',
    replace: '    this.#map.delete(key);\n',
    tests: ['test/cache.test.ts'],
    why: 'a deleted, expired or evicted entry stays the one last found: reads still see it, and the next set of its key updates it outside the map',
  },
  {
    id: 'cache-sweep-remembers-removed',
    file: 'lib/cache.ts',
    find: '          this.#map.delete(key);\n          if (entry === this.#last) this.#forget();\n',
    replace: '          this.#map.delete(key);\n',
    tests: ['test/cache.test.ts'],
    why: 'an entry the sweep removed stays the one last found: after the clock steps back it is read again, and a set of its key updates it outside the map',
  },
  {
    id: 'cache-clear-remembers',
    file: 'lib/cache.ts',
    find: '    this.#map.clear();\n    this.#forget();\n',
    replace: '    this.#map.clear();\n',
    tests: ['test/cache.test.ts'],
    why: 'after clear() the entry last found is still read (MemoryStorage.close would leave a session readable)',
  },

  {
    id: 'cache-set-resets-note',
    file: 'lib/cache.ts',
    find: '      entry.size = size;\n',
    replace: '      entry.size = size;\n      entry.note = 0;\n',
    tests: ['test/session.test.ts'],
    why: 'a write on MemoryStorage forgets when the cookie is next due: every read after a write sends the cookie again',
  },
  {
    id: 'memory-due-dropped',
    file: 'lib/storage/memory.ts',
    find: '    setCookieDue: (id, at) => this.#cache.setNote(id, at),',
    replace: '    setCookieDue: (id) => this.#cache.has(id),',
    tests: ['test/session.test.ts'],
    why: 'MemoryStorage says it keeps the due time beside the session but drops it: every read sends the cookie',
  },
  {
    id: 'file-flush-keeps-pending',
    file: 'lib/storage/file/file-storage.ts',
    find: '      if (entry !== undefined) entry.pending = false;\n',
    replace: '',
    tests: ['test/storage/file/file-features.test.ts'],
    why: 'after a flush, a session in memory never goes back into the batch of renewals: its file keeps the expiry of its first batch and the sweep deletes a session in use',
  },
  {
    id: 'file-evicted-renewal-lost',
    file: 'lib/storage/file/file-storage.ts',
    find: '        if (entry.pending) this.#touches.set(entry.hash, Math.max(entry.renewedTo, this.#touches.get(entry.hash) ?? 0));\n',
    replace: '',
    tests: ['test/storage/file/file-features.test.ts'],
    why: 'a session that leaves memory takes its latest renewal with it: read back from its file it has expired early',
  },
  {
    id: 'file-renewal-first-of-batch',
    file: 'lib/storage/file/file-storage.ts',
    find: '    return entry?.pending === true ? Math.max(entry.renewedTo, inMap) : inMap;',
    replace: '    return inMap;',
    tests: ['test/storage/file/file-features.test.ts'],
    why: 'the flush writes the first renewal of a batch, not the latest: a session used all along expires a batch early',
  },
  {
    id: 'file-due-not-carried',
    file: 'lib/storage/file/file-storage.ts',
    find: 'marked: previous?.marked, cookieDue: previous?.cookieDue,',
    replace: 'marked: previous?.marked, cookieDue: undefined,',
    tests: ['test/session.test.ts'],
    why: 'a write on FileStorage forgets when the cookie is next due: the read after every write sends the cookie again',
  },

  // ------------------------------------------------------------------------------------------
  // lib/storage/redis.ts
  {
    id: 'redis-name-kept-for-another-id',
    file: 'lib/storage/redis.ts',
    find: '    if (named === undefined || named.id !== id) {',
    replace: '    if (named === undefined) {',
    tests: ['test/storage/redis.test.ts'],
    why: 'the hash of the first id named is used for every later one: every session is read and written under one Redis key',
  },
  {
    id: 'session-unconfirmed-cookie',
    file: 'lib/session.ts',
    find: '        if (cookie !== undefined && alive === undefined) return this.#confirmed(s, jar, secure, cookie);\n',
    replace: '',
    tests: ['test/storage/redis.test.ts'],
    why: 'a read whose touch could not tell (Redis within its rate limit) sends a due cookie without asking whether the session still exists: a session another process destroyed gets its cookie back',
  },

  // ------------------------------------------------------------------------------------------
  // lib/cookie.ts and the cookie jar
  {
    id: 'cookie-httponly-dropped',
    file: 'lib/cookie.ts',
    find: "  if (httpOnly === true) header += '; HttpOnly';\n",
    replace: '',
    tests: ['test/cookie.test.ts'],
    why: 'the HttpOnly attribute is dropped: page scripts can read the session id',
  },
  {
    id: 'cookie-samesite-none-without-secure',
    file: 'lib/cookie.ts',
    find: "    if (normal === 'None' && secure !== true) throw invalid('sameSite', sameSite, 'SameSite=None needs secure: true');\n",
    replace: '',
    tests: ['test/cookie.test.ts'],
    why: 'SameSite=None is accepted without Secure (browsers then drop the cookie)',
  },
  {
    id: 'cookie-pair-bound-off-by-one',
    file: 'lib/cookie.ts',
    find: "(index = nextPair(header, index, at)) !== -1 && ++pairs <= MAX_COOKIE_PAIRS; ) {\n    if (at.nameStart < at.nameEnd) {",
    replace: "(index = nextPair(header, index, at)) !== -1 && ++pairs < MAX_COOKIE_PAIRS; ) {\n    if (at.nameStart < at.nameEnd) {",
    tests: ['test/cookie.test.ts'],
    why: 'parseCookie examines one pair fewer than documented',
  },
  {
    id: 'cookie-path-allows-semicolon',
    file: 'lib/cookie.ts',
    find: 'const PATH_VALUE_RE = /^\\/[\\u0020-\\u003A\\u003C-\\u007E]*$/;',
    replace: 'const PATH_VALUE_RE = /^\\/[\\u0020-\\u007E]*$/;',
    tests: ['test/cookie.test.ts'],
    why: 'a Path holding ";" is accepted: attribute injection into Set-Cookie',
  },
  {
    id: 'cookie-last-value-wins',
    file: 'lib/cookie.ts',
    find: '      if (cookies[name] === undefined) cookies[name] = readValue(header, at.valueStart, at.end);',
    replace: '      cookies[name] = readValue(header, at.valueStart, at.end);',
    tests: ['test/cookie.test.ts'],
    why: 'parseCookie keeps the last value of a repeated name instead of the first',
  },
  {
    id: 'jar-remove-drops-path',
    file: 'lib/request.ts',
    find: '    if (path !== undefined) attrs.path = path;\n',
    replace: '',
    tests: ['test/request.test.ts', SESSION],
    why: 'the expiring cookie has no Path: the browser keeps the one set with Path=/',
  },

  // ------------------------------------------------------------------------------------------
  // lib/router.ts
  {
    id: 'router-decodes-static',
    file: 'lib/router.ts',
    find: "    if (seg.kind === 'static' && part !== seg.text) return false;",
    replace: "    if (seg.kind === 'static' && decodeSegment(part) !== seg.text) return false;",
    tests: ['test/router.test.ts'],
    why: 'static segments of dynamic routes are percent-decoded: /admin/%2e%2e-style tricks match',
  },
  {
    id: 'router-rest-matches-zero',
    file: 'lib/router.ts',
    find: "    if (seg.kind === 'rest') return parts.length > i;",
    replace: "    if (seg.kind === 'rest') return parts.length >= i;",
    tests: ['test/router.test.ts'],
    why: '/files/* matches /files itself',
  },
  {
    id: 'router-bad-escape-passes',
    file: 'lib/router.ts',
    find: '    return decodeURIComponent(text);\n  } catch {\n    return undefined;',
    replace: '    return decodeURIComponent(text);\n  } catch {\n    return text;',
    tests: ['test/router.test.ts'],
    why: 'a malformed escape in a parameter is passed on raw instead of answering 400',
  },
  {
    id: 'router-no-head-fallback',
    file: 'lib/router.ts',
    find: "      (method === 'HEAD' ? route.entries.get('GET') : undefined) ??",
    replace: '      undefined ??',
    tests: ['test/router.test.ts'],
    why: 'HEAD does not fall back to GET',
  },

  // ------------------------------------------------------------------------------------------
  // lib/request.ts and lib/response.ts
  {
    id: 'request-body-limit-off-by-one',
    file: 'lib/request.ts',
    find: '    if (size > limit) {',
    replace: '    if (size >= limit) {',
    tests: ['test/request.test.ts'],
    why: 'a body of exactly bodyLimit bytes is refused',
  },
  {
    id: 'request-declared-limit-off-by-one',
    file: 'lib/request.ts',
    find: '  if (declared !== undefined && Number(declared) > limit) {',
    replace: '  if (declared !== undefined && Number(declared) >= limit) {',
    tests: ['test/request.test.ts'],
    why: 'a Content-Length of exactly bodyLimit is refused',
  },
  {
    id: 'request-header-inherited',
    file: 'lib/request.ts',
    find: '    const v = Object.hasOwn(this.raw.headers, key) ? this.raw.headers[key] : undefined;',
    replace: '    const v = this.raw.headers[key];',
    tests: ['test/request.test.ts'],
    why: 'r.header(\'constructor\') answers an inherited member instead of undefined',
  },
  {
    id: 'response-header-value-unchecked',
    file: 'lib/response.ts',
    find: "      if ((typeof v !== 'string' && typeof v !== 'number') || HEADER_VALUE_BAD_RE.test(String(v))) {",
    replace: "      if (typeof v !== 'string' && typeof v !== 'number') {",
    tests: ['test/response.test.ts'],
    why: 'header values with CR or LF are accepted (the request then fails late in node:http)',
  },
  {
    id: 'response-304-with-body',
    file: 'lib/response.ts',
    find: '    if (this.#status === 204 || this.#status === 304) {',
    replace: '    if (this.#status === 204) {',
    tests: ['test/response.test.ts'],
    why: 'a 304 is sent with a Content-Type and length',
  },
  {
    id: 'response-drops-raw-set-cookie',
    file: 'lib/response.ts',
    find: 'own === undefined ? (cookies.length === 1 ? (cookies[0] as string) : cookies) : [...(Array.isArray(own) ? own : [String(own)]), ...cookies]',
    replace: 'cookies.length === 1 ? (cookies[0] as string) : cookies',
    tests: ['test/response.test.ts'],
    why: 'a Set-Cookie the handler set as a raw header is dropped when the jar sets cookies',
  },

  // ------------------------------------------------------------------------------------------
  // lib/storage/file/
  {
    id: 'file-read-follows-links',
    file: 'lib/storage/file/files.ts',
    find: 'READ_FLAGS = fsc.O_RDONLY | fsc.O_NOFOLLOW |',
    replace: 'READ_FLAGS = fsc.O_RDONLY |',
    tests: [FILE, FILE_HOSTILE],
    why: 'a symbolic link planted at a session\'s file name is followed on read',
  },
  {
    id: 'file-rewrite-follows-links',
    file: 'lib/storage/file/files.ts',
    find: 'REWRITE_FLAGS = fsc.O_RDWR | fsc.O_NOFOLLOW |',
    replace: 'REWRITE_FLAGS = fsc.O_RDWR |',
    tests: [FILE, FILE_HOSTILE],
    why: 'the header rewrite of a renewal follows a planted symbolic link and writes through it',
  },
  {
    id: 'file-create-follows-links',
    file: 'lib/storage/file/writer-thread.ts',
    find: 'export const CREATE_FLAGS = fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW;',
    replace: 'export const CREATE_FLAGS = fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL;',
    tests: [FILE, FILE_MUTANTS],
    why: 'the temporary file is created without O_NOFOLLOW',
    equivalent: 'with O_CREAT | O_EXCL, open(2) fails with EEXIST on any existing name, a symbolic link (dangling or not) included, and never follows it; O_NOFOLLOW adds nothing there (kept as a second lock on the door)',
  },
  {
    id: 'file-rewrite-creates',
    file: 'lib/storage/file/files.ts',
    find: 'REWRITE_FLAGS = fsc.O_RDWR | fsc.O_NOFOLLOW |',
    replace: 'REWRITE_FLAGS = fsc.O_RDWR | fsc.O_CREAT | fsc.O_NOFOLLOW |',
    tests: [FILE_MUTANTS, FILE],
    why: 'a renewal\'s header rewrite creates the session file when it is missing (a file removed behind the storage\'s back comes back empty, and is then set aside and reported as corrupt)',
  },
  {
    id: 'file-short-write-ignored',
    file: 'lib/storage/file/writer-thread.ts',
    find: '      offset += written;\n    }',
    replace: '      offset += written;\n      break;\n    }',
    tests: [FILE_MUTANTS],
    why: 'a short write is taken for the whole file: a truncated session file is renamed into place',
  },
  {
    id: 'file-thread-fsync-dropped',
    file: 'lib/storage/file/writer.ts',
    find: '      worker.postMessage({ id, tmp, file, content, fsync } satisfies WriteRequest);',
    replace: '      worker.postMessage({ id, tmp, file, content, fsync: false } satisfies WriteRequest);',
    tests: [FILE_MUTANTS],
    why: 'fsync: true is not passed to the writer threads: nothing is synced on the default write path',
  },
  {
    id: 'file-pool-fsync-dropped',
    file: 'lib/storage/file/writer-thread.ts',
    find: '    if (fsync) await io.fsync(fd);',
    replace: '',
    tests: [FILE_MUTANTS],
    why: 'the temporary file is renamed into place without being synced, on both write paths',
  },
  {
    id: 'file-mode-0644',
    file: 'lib/storage/file/writer-thread.ts',
    find: '    fd = await io.open(tmp, CREATE_FLAGS, 0o600);',
    replace: '    fd = await io.open(tmp, CREATE_FLAGS, 0o644);',
    tests: [FILE],
    why: 'session files are readable by other users',
  },
  {
    id: 'file-set-missing-await',
    file: 'lib/storage/file/file-storage.ts',
    find: '      await writing;\n',
    replace: '      void writing;\n',
    tests: [FILE, FILE_MUTANTS],
    why: 'set resolves before the file is written: the response is sent for a write that may be lost, and a failed write is never reported',
  },
  {
    id: 'file-write-failure-keeps-memory',
    file: 'lib/storage/file/file-storage.ts',
    find: '      if (this.#cache.peek(id) === entry) this.#cache.delete(id);\n',
    replace: '',
    tests: [FILE, FILE_MUTANTS],
    why: 'after a failed write the memory copy keeps the data the file does not have',
  },
  {
    id: 'file-coalesce-keeps-older',
    file: 'lib/storage/file/queue.ts',
    find: "      if (op.kind === 'write' || op.kind === 'unlink') {\n        pending.op = op;",
    replace: "      if (op.kind === 'write' || op.kind === 'unlink') {\n        void pending.op;",
    tests: [FILE],
    why: 'a newer write waiting behind another does not replace the older one: the older data ends on disk',
  },
  {
    id: 'file-sweep-replaces-write',
    file: 'lib/storage/file/queue.ts',
    find: "      if (op.kind === 'write' || op.kind === 'unlink') {\n",
    replace: "      if (op.kind === 'write' || op.kind === 'unlink' || op.kind === 'sweep') {\n",
    tests: [FILE, FILE_MUTANTS],
    why: 'a sweep queued behind a waiting write replaces it: the write is acknowledged and never made',
  },
  {
    id: 'file-sweep-no-recheck',
    file: 'lib/storage/file/file-storage.ts',
    find: 'expiresAt !== undefined && expiresAt <= this.#now() && !this.#touches.has(hash) &&',
    replace: 'expiresAt !== undefined && !this.#touches.has(hash) &&',
    tests: [FILE, FILE_MUTANTS],
    why: 'the sweep deletes a file it found expired even when a write in flight put a live one in its place',
  },
  {
    id: 'file-sweep-skips-no-queued',
    file: 'lib/storage/file/file-storage.ts',
    find: '          if (this.#touches.has(name) || this.#queue.has(name)) return;',
    replace: '          if (this.#touches.has(name)) return;',
    tests: [FILE, FILE_MUTANTS],
    why: 'the sweep looks at files with operations under way',
    equivalent: 'the sweep only queues a `sweep` operation, which runs in the file\'s queue after the operation under way and reads the header again before it deletes: a file rewritten or renewed meanwhile is kept; the skip only saves a read',
  },
  {
    id: 'file-renewal-behind-sweep',
    file: 'lib/storage/file/queue.ts',
    find: "else if (waiting === 'touch' || waiting === 'sweep' || waiting === 'unmark') pending.op = op;",
    replace: "else if (waiting === 'touch' || waiting === 'unmark') pending.op = op;",
    tests: [FILE],
    why: 'a renewal queued behind a waiting sweep does not replace it: the renewed session\'s file is deleted',
  },
  {
    id: 'file-queue-not-serialized',
    file: 'lib/storage/file/queue.ts',
    find: '    if (!queue.busy) void this.#drain(hash, queue);',
    replace: '    void this.#drain(hash, queue);',
    tests: [FILE],
    why: 'two operations on one file run at once: two renames race',
  },
  {
    id: 'file-removed-while-loading-returns',
    file: 'lib/storage/file/file-storage.ts',
    find: '    if (this.#removedWhileLoading.has(hash)) return undefined;\n',
    replace: '',
    tests: [FILE],
    why: 'a read under way puts back in memory a session removed meanwhile',
  },
  {
    id: 'file-reads-expired',
    file: 'lib/storage/file/file-storage.ts',
    find: '    let expiresAt = Math.max(parsed.expiresAt, renewed, this.#renewal(hash));',
    replace: '    let expiresAt = Math.max(parsed.expiresAt, renewed, this.#renewal(hash), now + 1_000);',
    tests: [FILE],
    why: 'an expired session file reads as a live session',
  },
  {
    id: 'file-renewal-not-batched',
    file: 'lib/storage/file/file-storage.ts',
    find: '      this.#touches.set(entry.hash, at);\n',
    replace: '',
    tests: [FILE],
    why: 'a read-only request\'s renewal is never written to the file: the session dies on disk while in use',
  },
  {
    id: 'file-renewal-taken-late',
    file: 'lib/storage/file/file-storage.ts',
    find: '    const renewed = this.#renewal(hash);',
    replace: '    const renewed = 0;',
    tests: [FILE_MUTANTS, FILE],
    why: 'a renewal a flush takes while the file is read is lost',
  },
  {
    id: 'file-no-size-cap-on-read',
    file: 'lib/storage/file/files.ts',
    find: "      if (st.size > HEADER_SIZE + maxSize) return 'is too large';\n",
    replace: '',
    tests: [FILE_HOSTILE, FILE],
    why: 'a huge file at a session path is read whole into memory',
  },
  {
    id: 'file-no-expiry-bound',
    file: 'lib/storage/file/format.ts',
    find: "  return expiresAt > now + MAX_AGE_MS + EXPIRY_SLACK_MS ? 'has an expiry time no session can have' : expiresAt;",
    replace: '  return expiresAt;',
    tests: [FILE_HOSTILE, FILE],
    why: 'a header with an expiry centuries ahead is believed',
  },
  {
    id: 'file-patch-loaded-copy',
    file: 'lib/storage/file/file-storage.ts',
    find: '      await this.#entry(id);\n      // Looked up again: another patch may have replaced the entry while this one waited.\n      current = this.#cache.peek(id);',
    replace: '      current = await this.#entry(id);',
    tests: [SESSION, FILE, CONTRACT],
    why: 'concurrent patches of a session not in memory each merge into the copy read from the file, not into the result of the patch before: keys are lost',
  },
  {
    id: 'file-patch-ignores-remove',
    file: 'lib/storage/file/file-storage.ts',
    find: 'if (removed.length === 0 || !removed.includes(k)) setOwn(next, k, current.data[k]);',
    replace: 'setOwn(next, k, current.data[k]);',
    tests: [CONTRACT, FILE],
    why: 'FileStorage.patch does not delete the removed keys',
  },
];
