/**
 * File storage, the server's default: memory first, files for persistence.
 *
 * 1. Every session operation works on memory (an {@link ExpiringCache}).
 * 2. The cache controls expiry in memory.
 * 3. Files persist sessions: a new `FileStorage` on the same folder restores them.
 * 4. A session is serialized (JSON) and written only when it changed (`set`, `patch`).
 * 5. A file is read only when its session is not in memory; a missing file is a plain miss.
 * 6. Reads never rewrite a file: the expiry in its header is rewritten in place, in a batch,
 *    at most once per `ttlUpdateInterval`.
 * 7. Expired sessions are gone on read at once; a sweep deletes their files, reading only the
 *    header, and reports each as `expired` once.
 * 8. One process owns a folder: a lock file in it names the process, and a second process (or a
 *    second instance) refuses the folder.
 * 9. Nothing in the folder is trusted until checked: folders must be real folders of ours, mode
 *    0700; session files must be regular files of ours, with a header and body this library
 *    could have written. Anything else is set aside (renamed `….bad`), never followed, never
 *    waited on.
 * 10. The owner index persists with the sessions: an empty file `owners/<sha256(owner)>/<hash>`
 *    per session of an owner, made before the first write that gives the session that owner and
 *    deleted with it. A listing checks each against its session and drops the stale ones.
 *
 * The modules: the file format (lib/storage/file/format.ts); the folder, its lock and every file
 * operation but the atomic write (files.ts); the per-file operation queue and its merge rules
 * (queue.ts); the atomic write and its threads (writer.ts, writer-thread.ts). This one holds the
 * cache, the shared loads and the sweep, and wires them.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { ExpiringCache } from '../../cache.js';
import { type Duration, describe, parseDuration } from '../../duration.js';
import { StorageError, asError, errCode, sessionTooLarge } from '../../errors.js';
import { hashId } from '../../id.js';
import { newRecord, setOwn } from '../../json.js';
import { META, NOT_NOW, SYNC, type SessionChanges, type SessionData, type Storage, type StorageEvent, type StorageSettings, type StoredSession, type SyncStorage } from '../storage.js';
import { CONCURRENCY, Folder, HASH_RE, defaultPath, fsCalls, runLimited, sha256, unlinkQuiet } from './files.js';
import { MAX_AGE_MS, type Parsed, header } from './format.js';
import { FileQueue, type Op } from './queue.js';
import { type HeaderOutcome, writeAtomic } from './writer-thread.js';
import { Writer } from './writer.js';

/**
 * Header rewrites of a flush per request to the first writer thread, one request at a time (on
 * Node's thread pool, {@link CONCURRENCY} in flight, as each holds a descriptor open): 64
 * costs as little CPU a header as 256 (measured when each was a message of its own, 40 % less
 * than 16), while a write of that thread waits behind 64 header rewrites at most (a few ms),
 * and a thread that dies takes 64 renewals with it at most.
 */
const THREAD_FLUSH_CONCURRENCY = 64;

/** Options of {@link FileStorage}. */
export interface FileStorageOptions {
  /**
   * The folder sessions are kept in; created 0700 (with any missing parent folders). One process
   * owns a folder: a second process, or a second `FileStorage` of this one, refuses it while the
   * first has it open.
   *
   * The default is private to the user and to the program, so two apps of one user never share
   * it: `join(os.tmpdir(), 'bare-session-<uid>-<name>-<hash>')`, where `<name>` is the entry
   * script's file name without its extension (`server` for `node server.js`) and `<hash>` the
   * first 8 hex digits of the SHA-256 of the script's real path (of the working folder when
   * there is no script). Give an explicit path to keep sessions across a rename or a move of the
   * script, and one per process when you run several.
   * @default join(os.tmpdir(), `bare-session-${uid}-${name}-${hash}`)
   */
  path?: string;
  /**
   * How often the expiry of sessions that were only read is written to their files, in one
   * batch. Writes update it at once.
   * @default '1m'
   */
  ttlUpdateInterval?: Duration;
  /** How many sessions are held in memory; past it the least recently used leaves memory (its file stays). @default 10_000 */
  maxInMemory?: number;
  /** How often expired files and orphaned temporary files are deleted. @default '10m' */
  sweepInterval?: Duration;
  /** `fsync` each file (and its folder) before answering, for durability across power loss. @default false */
  fsync?: boolean;
  /**
   * How many threads write session files and rewrite their headers on renewal, with synchronous
   * calls (a message round trip per write, where Node's thread pool takes four trips, and one
   * per 64 headers, where it takes five a header). A session's file is always written by the
   * same thread, and every header is rewritten by the first one; each thread starts on its first
   * call. More than one pays even on two cores: a write that replaces a file spends most of its
   * time in the kernel, and four threads overlap it (see lib/storage/file/writer.ts). Each
   * thread takes about 9 MB of memory. `0` writes through Node's thread pool instead. An integer from 0 to 64.
   * @default 4
   */
  writerThreads?: number;
  /**
   * What to do when the folder is open to other users or owned by another user:
   * `'throw'` refuses it at construction, `'warn'` reports it to `onError` and goes on.
   * Shard folders inside it are checked either way (see the module's notes).
   * @default 'throw'
   */
  insecureFolder?: 'throw' | 'warn';
  /** Receives file problems that do not fail a request (a corrupt file set aside, a sweep error). @default one line on stderr */
  onError?: (error: Error) => void;
  /** The clock, in milliseconds; tests inject one. @default Date.now */
  now?: () => number;
}


/** The server's default `sessionMaxSize`, the size limit until {@link FileStorage.configure} says otherwise. */
const DEFAULT_MAX_SIZE = 1024 * 1024;
/** How many files `list()` looks at before it yields what it found. */
const LIST_BATCH = 256;
/** How many times a listing looks again at a session that is being written meanwhile. */
const LOOKS = 3;

/** A session in memory. */
interface Entry {
  data: SessionData;
  /** The SHA-256 of its id, its file's name. */
  readonly hash: string;
  /**
   * The owner whose owner index marker is known to exist for this session (made by this
   * instance, or implied by a file read with that owner, as a file is only written with an owner
   * once its marker exists); `undefined` when none is known.
   */
  marked: string | undefined;
  /** When the session's cookie is next due for a refresh (see {@link SyncStorage.cookieDue}). */
  cookieDue: number | undefined;
  /**
   * Whether its hash is in `#touches`, put there by a renewal of this entry: later renewals
   * before the flush only move {@link Entry.renewedTo}, sparing a read a lookup in that map.
   */
  pending: boolean;
  /** The expiry the last renewal of this entry gave it (0 before any). */
  renewedTo: number;
}

/** The owner of a session: its {@link META} `owner` key when a string. */
function ownerOf(data: SessionData): string | undefined {
  const owner = data[META.owner];
  return typeof owner === 'string' ? owner : undefined;
}

/** The `StorageError` of a failed file operation, naming the system's code. */
function failed(what: string, err: unknown, more = ''): StorageError {
  const code = errCode(err);
  return new StorageError(`${what}${code === undefined ? '' : ` (${code})`}${more}`, { cause: err });
}

/**
 * Memory + file session storage, the server's default. One process owns a folder: a second
 * process, or a second open instance in this one, is refused with a `StorageError` of code
 * `'EFOLDERINUSE'`; a lock left by a process that died is taken over. Several processes need a
 * storage they can share (Redis, a database).
 *
 * It has every optional method of the contract: `patch` (atomic within the process: the merge is
 * applied to the session as held when the write is queued), `configure`, an owner index kept on
 * disk (`ownerSessions`, `removeOwner`), and `count` and `list`, which walk the files reading
 * headers only.
 *
 * @example
 * ```ts
 * const s = new Server().setSessionStorage(new FileStorage({ path: './sessions', fsync: true }));
 * ```
 */
export class FileStorage implements Storage {
  /** The folder sessions are kept in. */
  readonly path: string;
  readonly #folder: Folder;
  /** Per file: the operation running and the one waiting, into which later ones merge. */
  readonly #queue: FileQueue;
  readonly #cache: ExpiringCache<string, Entry>;
  /** The id of each session in memory, by hash: how the owner index (which names hashes) finds them. As large as the cache. */
  readonly #ids = new Map<string, string>();
  readonly #now: () => number;
  readonly #fsync: boolean;
  /** The writer threads, unless `writerThreads: 0`. */
  readonly #writer: Writer | undefined;
  readonly #onError: (error: Error) => void;
  readonly #token = randomBytes(6).toString('hex');
  #seq = 0;
  /** The longest life a session gets from its last use (see {@link FileStorage.configure}). */
  #maxAgeMs = MAX_AGE_MS;
  /** The largest session, as bytes of JSON (see {@link FileStorage.configure}). */
  #maxSize = DEFAULT_MAX_SIZE;
  /** Where expired sessions are reported (see {@link FileStorage.configure}). */
  #onEvent: ((event: StorageEvent) => void) | undefined;
  /** Batched life extensions, by hash: the expiry to write at the next flush. */
  readonly #touches = new Map<string, number>();
  /** Reads of files under way, by hash, so two requests of one session read its file once. */
  readonly #loading = new Map<string, Promise<Entry | undefined>>();
  /** Sessions (by hash) removed while their file was being read: that read must not put them back in memory. */
  readonly #removedWhileLoading = new Set<string>();
  readonly #timers: NodeJS.Timeout[] = [];
  #sweeping: Promise<number> | undefined;
  #flushing: Promise<void> | undefined;
  readonly #startup: Promise<void>;
  #closed = false;
  /** Expired files deleted so far, for {@link FileStorage.sweep}'s count. */
  #swept = 0;

  /**
   * Opens (and creates, 0700) the folder and takes its lock.
   * @throws TypeError naming the option for a bad option, and for a `path` that cannot be made
   *   or used (a file in the way, a file system that refuses folders, a folder other users can
   *   reach, unless `insecureFolder: 'warn'`)
   * @throws StorageError with code `'EFOLDERINUSE'` when another process, or another open
   *   `FileStorage` of this one, holds the folder
   */
  constructor(options: FileStorageOptions = {}) {
    const {
      path = defaultPath(),
      ttlUpdateInterval = '1m',
      maxInMemory = 10_000,
      sweepInterval = '10m',
      fsync = false,
      writerThreads = 4,
      insecureFolder = 'throw',
      onError = (err: Error) => process.stderr.write(`bare-session: ${err.message}\n`),
      now = Date.now,
    } = options;
    if (typeof path !== 'string' || path === '') throw new TypeError(`option path is invalid: ${describe(path)}`);
    if (!Number.isInteger(maxInMemory) || maxInMemory < 1) throw new TypeError(`option maxInMemory is invalid: ${describe(maxInMemory)} (expected a positive integer)`);
    if (typeof fsync !== 'boolean') throw new TypeError(`option fsync is invalid: ${describe(fsync)} (expected true or false)`);
    if (!Number.isInteger(writerThreads) || writerThreads < 0 || writerThreads > 64) throw new TypeError(`option writerThreads is invalid: ${describe(writerThreads)} (expected an integer from 0 to 64)`);
    if (insecureFolder !== 'throw' && insecureFolder !== 'warn') throw new TypeError(`option insecureFolder is invalid: ${describe(insecureFolder)} (expected 'throw' or 'warn')`);
    if (typeof onError !== 'function') throw new TypeError(`option onError is invalid: ${describe(onError)}`);
    if (typeof now !== 'function') throw new TypeError(`option now is invalid: ${describe(now)}`);
    const ttlUpdateMs = parseDuration(ttlUpdateInterval, 'ttlUpdateInterval');
    const sweepMs = parseDuration(sweepInterval, 'sweepInterval');
    this.path = path;
    this.#now = now;
    this.#fsync = fsync;
    this.#onError = onError;
    this.#folder = new Folder({ path, token: this.#token, insecureFolder, now, onError, report: (message, cause, code) => this.#report(message, cause, code) });
    this.#queue = new FileQueue((hash, op) => this.#apply(hash, op));
    this.#writer = writerThreads > 0 ? new Writer(writerThreads, fsCalls.writerHooks) : undefined;
    this.#cache = new ExpiringCache<string, Entry>({
      ttl: '24h',
      max: maxInMemory,
      now,
      // Whatever way an entry leaves memory, its hash stops naming it.
      dispose: (entry, id) => {
        if (this.#ids.get(entry.hash) === id) this.#ids.delete(entry.hash);
        // Its latest renewal, kept on the entry, goes where the flush and reads from disk see it.
        if (entry.pending) this.#touches.set(entry.hash, Math.max(entry.renewedTo, this.#touches.get(entry.hash) ?? 0));
      },
    });
    this.#startup = this.#folder.removeOrphans().catch((err: unknown) => this.#report('could not clean orphaned temporary files', err));
    const flush = setInterval(() => void this.flush().catch((err: unknown) => this.#report('could not extend session lifetimes', err)), ttlUpdateMs);
    const sweep = setInterval(() => void this.sweep().catch((err: unknown) => this.#report('the sweep failed', err)), sweepMs);
    flush.unref();
    sweep.unref();
    this.#timers.push(flush, sweep);
  }

  /**
   * Receives the server's settings (see {@link StorageSettings}): sessions never get a longer life
   * than `maxAgeMs` from their last use (an expiry read from a file further ahead is cut to it),
   * `set` and `patch` refuse a session over `maxSize` bytes, a file bigger than any session of
   * that size is set aside unread, and `onEvent` hears of each session whose file is deleted as
   * expired (found by the sweep or by a read), once. Until it is called: 400 days, 1 MiB, no events.
   * @throws TypeError naming the setting when `maxAgeMs` is not a number of milliseconds from 1
   *   to 400 days, `maxSize` not a positive integer, or `onEvent` not a function
   */
  configure(settings: StorageSettings): void {
    const { maxAgeMs, maxSize, onEvent } = settings;
    if (typeof maxAgeMs !== 'number' || !(maxAgeMs >= 1 && maxAgeMs <= MAX_AGE_MS)) throw new TypeError(`option maxAgeMs is invalid: ${describe(maxAgeMs)} (expected milliseconds from 1 to 400 days)`);
    if (!Number.isSafeInteger(maxSize) || maxSize < 1) throw new TypeError(`option maxSize is invalid: ${describe(maxSize)} (expected a positive integer of bytes)`);
    if (onEvent !== undefined && typeof onEvent !== 'function') throw new TypeError(`option onEvent is invalid: ${describe(onEvent)} (expected a function)`);
    this.#maxAgeMs = Math.floor(maxAgeMs);
    this.#maxSize = maxSize;
    this.#onEvent = onEvent;
  }

  /** The session: from memory, else from its file; `undefined` when missing, expired or unreadable. */
  /**
   * @internal A session held in memory is read and touched at once; anything that needs the
   * disk (a cold read, a write) answers "not now" and takes the promise.
   */
  readonly [SYNC]: SyncStorage = {
    get: (id) => this.#cache.get(id)?.data ?? NOT_NOW,
    set: () => NOT_NOW,
    touch: (id, ttlMs) => (this.#renew(id, ttlMs) ? true : NOT_NOW),
    cookieDue: (id) => this.#cache.peek(id)?.cookieDue,
    setCookieDue: (id, at) => {
      const entry = this.#cache.peek(id);
      if (entry === undefined) return false;
      entry.cookieDue = at;
      return true;
    },
  };

  async get(id: string): Promise<SessionData | undefined> {
    return (await this.#entry(id))?.data;
  }

  /**
   * Stores the whole session in memory and in its file (a temporary file renamed over it);
   * resolves once the file is in place. The session is serialized once, first: a session over
   * `maxSize` rejects with a `SessionError` of code `'ESESSIONTOOLARGE'` and changes nothing. On
   * a write failure the previous file is kept and the memory copy dropped, so the next read sees
   * what the file holds. The life is at most `maxAgeMs`. A session whose owner is new to it is
   * added to the owner index before its file is written.
   */
  async set(id: string, data: SessionData, ttlMs: number): Promise<void> {
    const json = JSON.stringify(data) as string | undefined;
    if (typeof json !== 'string') throw new TypeError(`session data is invalid: ${describe(data)} (expected an object)`);
    return this.#store(id, data, json, ttlMs);
  }

  /**
   * Applies one request's changes (`clear`, then `remove`, then `set`) to the session as held now,
   * and writes it as `set` does, for `ttlMs` from now. A session not in memory is read first (the
   * read shared with any other under way); then the merge, the one serialization, the size check,
   * the memory update and the queueing of the write happen at once, with nothing in between, so
   * concurrent patches of one session in this process each apply to the result of the last.
   * @returns `false`, writing nothing, when the session is missing, expired, or removed while it
   *   was being read
   */
  async patch(id: string, changes: SessionChanges, ttlMs: number): Promise<boolean> {
    let current = this.#cache.get(id);
    if (current === undefined) {
      await this.#entry(id);
      // Looked up again: another patch may have replaced the entry while this one waited.
      current = this.#cache.peek(id);
      if (current === undefined) return false;
    }
    const next: SessionData = newRecord();
    // Removed keys are left out of the copy rather than deleted from it (a delete turns the
    // record into a dictionary, slower to read from then on).
    const removed = changes.remove;
    if (!changes.clear) for (const k of Object.keys(current.data)) if (removed.length === 0 || !removed.includes(k)) setOwn(next, k, current.data[k]);
    for (const k of Object.keys(changes.set)) setOwn(next, k, changes.set[k]);
    await this.#store(id, next, JSON.stringify(next), ttlMs);
    return true;
  }

  /**
   * Extends the session's life in memory at once, and in its file at the next batch. A session
   * not in memory is read first, so that an expired or unknown one is never extended. The life
   * is at most `maxAgeMs`. Resolves `false` when the session does not exist (nothing extended).
   */
  async touch(id: string, ttlMs: number): Promise<boolean> {
    const entry = await this.#entry(id);
    return entry !== undefined && this.#renew(id, ttlMs);
  }

  /**
   * Extends a session's life in memory at once and in its file at the next batch, for at most
   * `maxAgeMs`. @returns `false` when it is no longer in memory (expired meanwhile)
   */
  #renew(id: string, ttlMs: number): boolean {
    const ttl = Math.min(ttlMs, this.#maxAgeMs);
    if (!this.#cache.touch(id, ttl)) return false;
    // The entry in memory now (the one found last): a write while this touch waited for a read
    // may have replaced the one it found.
    const entry = this.#cache.peek(id) as Entry;
    const at = this.#now() + ttl;
    entry.renewedTo = at;
    if (!entry.pending) {
      entry.pending = true;
      this.#touches.set(entry.hash, at);
    }
    return true;
  }

  /** Deletes the session from memory and disk, with its owner index marker; a write still under way cannot bring it back. */
  async remove(id: string): Promise<void> {
    await this.#remove(this.#cache.peek(id)?.hash ?? hashId(id), []);
  }

  /**
   * The live sessions of `owner`, from the owner index: each marker's session is read (from
   * memory when it is there, else its file) and listed only if it is live and still that owner's.
   * A marker whose session is gone or has another owner is deleted.
   * @throws StorageError when the index or a session file cannot be read
   */
  async ownerSessions(owner: string): Promise<StoredSession[]> {
    const ownerHash = sha256(owner);
    let hashes: string[];
    try {
      hashes = await this.#folder.markers(ownerHash);
    } catch (err) {
      throw failed('could not read the owner index', err);
    }
    const out: StoredSession[] = [];
    await runLimited(hashes, CONCURRENCY, async (hash) => {
      const session = await this.#owned(hash, owner, ownerHash);
      if (session !== undefined) out.push(session);
    });
    return out;
  }

  /**
   * Removes every live session of `owner` (see {@link FileStorage.ownerSessions}) but the one
   * whose id hashes to `exceptIdHash`, from memory and disk, through each file's queue (so no
   * write under way brings one back).
   * @returns how many sessions were removed
   */
  async removeOwner(owner: string, exceptIdHash?: string): Promise<number> {
    const ownerHash = sha256(owner);
    let n = 0;
    await runLimited(await this.ownerSessions(owner), CONCURRENCY, async ({ idHash }) => {
      if (idHash === exceptIdHash) return;
      await this.#remove(idHash, [ownerHash]);
      n++;
    });
    return n;
  }

  /** How many live sessions there are: see {@link FileStorage.list}. */
  async count(): Promise<number> {
    let n = 0;
    for await (const _ of this.list()) n++;
    return n;
  }

  /**
   * Every live session's id hash and expiry, walking the shard folders a few hundred files at a
   * time and reading headers only (never a body). The expiry is memory's for a session held
   * there, else its file's or its batched renewal's. A session counts once its file is in place
   * (as `set` resolves): memory and disk then agree.
   */
  async *list(): AsyncGenerator<{ readonly idHash: string; readonly expiresAt: number }> {
    let shards: string[];
    try {
      shards = (await this.#folder.shards()) ?? [];
    } catch (err) {
      throw failed('could not read the session folder', err);
    }
    for (const shard of shards) {
      let names: string[];
      try {
        names = (await this.#folder.names(shard)).filter((name) => HASH_RE.test(name));
      } catch (err) {
        if (errCode(err) === 'ENOENT') continue;
        throw failed('could not read a shard folder', err);
      }
      for (let i = 0; i < names.length; i += LIST_BATCH) {
        const found: { idHash: string; expiresAt: number }[] = [];
        await runLimited(names.slice(i, i + LIST_BATCH), CONCURRENCY, async (hash) => {
          const expiresAt = await this.#liveExpiry(hash);
          if (expiresAt !== undefined) found.push({ idHash: hash, expiresAt });
        });
        yield* found;
      }
    }
  }

  /** How many sessions are held in memory. */
  get sizeInMemory(): number {
    return this.#cache.size;
  }

  /** Writes the batched life extensions now (the timer does it every `ttlUpdateInterval`). */
  flush(): Promise<void> {
    this.#flushing ??= this.#flush().finally(() => {
      this.#flushing = undefined;
    });
    return this.#flushing;
  }

  /**
   * Deletes expired session files, orphaned temporary files and owner index markers whose
   * session is gone now, and sets aside what is not a session file (the timer does it every
   * `sweepInterval`). Resolves to the number of session files deleted.
   */
  sweep(): Promise<number> {
    this.#sweeping ??= this.#sweep().finally(() => {
      this.#sweeping = undefined;
    });
    return this.#sweeping;
  }

  /**
   * Writes pending life extensions, waits for every write (and for reads under way, with the
   * deletion or set-aside they queue), stops the timers and threads, and releases the folder.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const t of this.#timers) clearInterval(t);
    await this.#startup;
    await this.#sweeping?.catch(() => undefined);
    await Promise.all([...this.#loading.values()].map((loading) => loading.catch(() => undefined)));
    await this.flush();
    await Promise.all(this.#queue.keys().map((hash) => this.#queue.settled(hash)));
    await this.#writer?.close();
    this.#cache.close();
    this.#ids.clear();
    this.#folder.release();
  }

  /**
   * Stores a serialized session in memory and queues its write, with nothing in between (see
   * {@link FileStorage.patch}); resolves once the file is in place.
   */
  #store(id: string, data: SessionData, json: string, ttlMs: number): Promise<void> {
    const size = Buffer.byteLength(json);
    if (size > this.#maxSize) throw sessionTooLarge(size, this.#maxSize);
    const ttl = Math.min(ttlMs, this.#maxAgeMs);
    const previous = this.#cache.peek(id);
    const hash = previous?.hash ?? hashId(id);
    const entry: Entry = { data, hash, marked: previous?.marked, cookieDue: previous?.cookieDue, pending: false, renewedTo: 0 };
    this.#cache.set(id, entry, ttl);
    // After the set: replacing an expired entry disposes of it, which forgets its hash.
    this.#ids.set(hash, id);
    this.#touches.delete(hash);
    const owner = ownerOf(data);
    return this.#written(id, entry, this.#queue.enqueue(hash, { kind: 'write', json, expiresAt: this.#now() + ttl, owner }));
  }

  /** Waits for a queued write; on failure drops the memory copy (if still this one), so the next read sees the file. */
  async #written(id: string, entry: Entry, writing: Promise<void>): Promise<void> {
    try {
      await writing;
    } catch (err) {
      if ((err as { inPlace?: unknown }).inPlace === true) {
        throw failed('could not sync the folder of a session file', err, '; the new version is in place but may not survive a power loss');
      }
      if (this.#cache.peek(id) === entry) this.#cache.delete(id);
      // The folder could not be made again (or locked again): that error says why.
      if (err instanceof StorageError) throw err;
      throw failed('could not write a session file', err, '; the previous version is kept');
    }
  }

  /** Removes the session of `hash` from memory and queues the deletion of its file and of its markers (those of `ownerHashes` and any memory knows). */
  async #remove(hash: string, ownerHashes: readonly string[]): Promise<void> {
    const owners = new Set(ownerHashes);
    const id = this.#ids.get(hash);
    const entry = id === undefined ? undefined : this.#cache.peek(id);
    if (entry !== undefined) {
      const owner = ownerOf(entry.data);
      if (owner !== undefined) owners.add(sha256(owner));
      if (entry.marked !== undefined) owners.add(sha256(entry.marked));
      this.#cache.delete(id as string);
    }
    this.#touches.delete(hash);
    if (this.#loading.has(hash)) this.#removedWhileLoading.add(hash);
    try {
      await this.#queue.enqueue(hash, { kind: 'unlink', ownerHashes: [...owners] });
    } catch (err) {
      throw failed('could not delete a session file', err);
    }
  }

  /** The live entry in memory of the session whose id hashes to `hash`. */
  #inMemory(hash: string): Entry | undefined {
    const id = this.#ids.get(hash);
    return id === undefined ? undefined : this.#cache.peek(id);
  }

  /** A session's expiry from its file's, counting a batched renewal, and never more than `maxAgeMs` ahead. */
  #expiry(hash: string, fileExpiresAt: number): number {
    return Math.min(Math.max(fileExpiresAt, this.#renewal(hash)), this.#now() + this.#maxAgeMs);
  }

  /**
   * The latest batched extension of the session `hash` not yet written to its header (0 when
   * none): the one its memory entry holds while it is pending there, else `#touches`'s.
   */
  #renewal(hash: string): number {
    // Memory first: finding its entry expired there moves its renewal into the map.
    const entry = this.#inMemory(hash);
    const inMap = this.#touches.get(hash) ?? 0;
    return entry?.pending === true ? Math.max(entry.renewedTo, inMap) : inMap;
  }

  /** The expiry of the session `hash` if it is live (memory's when held there, else its header's); reads 21 bytes at most. */
  async #liveExpiry(hash: string): Promise<number | undefined> {
    const id = this.#ids.get(hash);
    const inMemory = id === undefined ? undefined : this.#cache.expiresAt(id);
    if (inMemory !== undefined) return inMemory;
    const expiresAt = await this.#folder.peekExpiry(this.#folder.file(hash));
    if (typeof expiresAt !== 'number') return undefined;
    const live = this.#expiry(hash, expiresAt);
    return live > this.#now() ? live : undefined;
  }

  /**
   * The session the owner index marks as `owner`'s under `hash`, if it is live and still theirs.
   * Memory holds the newest state (a write under way is in memory first); else the file is read,
   * once no operation runs on it. A marker with no live session of the owner behind it is deleted,
   * in the file's queue, which checks again.
   */
  async #owned(hash: string, owner: string, ownerHash: string): Promise<StoredSession | undefined> {
    for (let look = 1; ; look++) {
      const id = this.#ids.get(hash);
      const entry = id === undefined ? undefined : this.#cache.peek(id);
      const expiresAt = id === undefined ? undefined : this.#cache.expiresAt(id);
      if (entry !== undefined && expiresAt !== undefined) {
        // Another owner's now: its marker goes with its next write, or once it leaves memory.
        return ownerOf(entry.data) === owner ? { idHash: hash, expiresAt, data: entry.data } : undefined;
      }
      if (this.#queue.has(hash) && look < LOOKS) {
        await this.#queue.settled(hash);
        continue;
      }
      let parsed: Parsed | string | undefined;
      try {
        parsed = await this.#folder.readSession(hash, this.#maxSize);
      } catch (err) {
        throw failed('could not read a session file', err);
      }
      // Written or read into memory meanwhile: looked at again.
      if ((this.#inMemory(hash) !== undefined || this.#queue.has(hash)) && look < LOOKS) continue;
      if (typeof parsed === 'string') {
        void this.#queue.enqueue(hash, { kind: 'setAside' }).catch((err: unknown) => this.#report('could not set aside an unreadable session file', err));
      } else if (parsed !== undefined) {
        const live = this.#expiry(hash, parsed.expiresAt);
        if (live > this.#now()) {
          if (ownerOf(parsed.data) === owner) return { idHash: hash, expiresAt: live, data: parsed.data };
        } else {
          void this.#queue.enqueue(hash, { kind: 'sweep' }).catch((err: unknown) => this.#report('could not delete an expired session file', err));
        }
      }
      await this.#queue.enqueue(hash, { kind: 'unmark', ownerHash }).catch((err: unknown) => this.#report('could not delete a marker of the owner index', err));
      return undefined;
    }
  }

  /** The session's entry: from memory, else from its file, one read at a time per session. */
  #entry(id: string): Promise<Entry | undefined> {
    const hit = this.#cache.get(id);
    if (hit !== undefined) return Promise.resolve(hit);
    const hash = hashId(id);
    let loading = this.#loading.get(hash);
    if (loading === undefined) {
      loading = this.#load(id, hash).finally(() => {
        this.#loading.delete(hash);
        this.#removedWhileLoading.delete(hash);
      });
      this.#loading.set(hash, loading);
    }
    return loading;
  }

  async #load(id: string, hash: string): Promise<Entry | undefined> {
    // A batched extension not yet written counts: the session was used after the header was.
    // Taken before the read too, as a flush under way may take it from #touches meanwhile.
    const renewed = this.#renewal(hash);
    await this.#queue.settled(hash);
    let parsed: Parsed | string | undefined;
    try {
      parsed = await this.#folder.readSession(hash, this.#maxSize);
    } catch (err) {
      throw failed('could not read a session file', err);
    }
    if (typeof parsed === 'string') await this.#queue.enqueue(hash, { kind: 'setAside' });
    // Another request may have written the session while this one read the file: memory wins.
    const current = this.#cache.peek(id);
    if (current !== undefined) return current;
    if (parsed === undefined || typeof parsed === 'string') return undefined;
    const now = this.#now();
    let expiresAt = Math.max(parsed.expiresAt, renewed, this.#renewal(hash));
    if (expiresAt > now + this.#maxAgeMs) {
      // Written under a longer max age than today's: cut, and the header with it at the next flush.
      expiresAt = now + this.#maxAgeMs;
      this.#touches.set(hash, expiresAt);
    }
    const ttl = expiresAt - now;
    if (ttl <= 0) {
      // Deleted if still expired when its turn comes, and reported as expired then, once.
      void this.#queue.enqueue(hash, { kind: 'sweep' }).catch((err: unknown) => this.#report('could not delete an expired session file', err));
      return undefined;
    }
    // Removed while this read was under way: the read must not bring it back.
    if (this.#removedWhileLoading.has(hash)) return undefined;
    // A file is written with an owner only once that owner's marker exists.
    const entry: Entry = { data: parsed.data, hash, marked: ownerOf(parsed.data), cookieDue: undefined, pending: false, renewedTo: 0 };
    this.#cache.set(id, entry, ttl);
    this.#ids.set(hash, id);
    return entry;
  }

  /** Carries out one operation of a file's queue (see lib/storage/file/queue.ts). */
  async #apply(hash: string, op: Op): Promise<void> {
    switch (op.kind) {
      case 'write':
        await this.#applyWrite(hash, op.json, op.expiresAt, op.owner);
        return;
      case 'touch':
        await this.#folder.writeHeader(hash, op.expiresAt, this.#maxAgeMs, this.#maxSize, this.#writer);
        return;
      case 'unlink':
        await this.#folder.unlinkSession(hash);
        for (const ownerHash of op.ownerHashes) {
          // A marker left behind is harmless (listings check it), so it does not fail the removal.
          await this.#folder.unmark(ownerHash, hash).catch((err: unknown) => this.#report('could not delete a marker of the owner index', err));
        }
        return;
      case 'sweep': {
        // Deleted only if still expired: a session renewed or rewritten meanwhile keeps its file.
        const file = this.#folder.file(hash);
        const expiresAt = await this.#folder.peekExpiry(file);
        if (typeof expiresAt === 'string') {
          await this.#folder.putAside(hash, this.#maxSize);
        } else if (expiresAt !== undefined && expiresAt <= this.#now() && !this.#touches.has(hash) && (await unlinkQuiet(file))) {
          this.#swept++;
          this.#expired(hash);
        }
        return;
      }
      case 'setAside':
        await this.#folder.putAside(hash, this.#maxSize);
        return;
      case 'unmark':
        await this.#unmark(hash, op.ownerHash);
    }
  }

  /**
   * Writes a session's file; first, when its owner's marker is not known to exist, makes it (so a
   * file never has an owner the index does not list), and after, deletes the marker of an owner
   * it no longer has.
   */
  async #applyWrite(hash: string, json: string, expiresAt: number, owner: string | undefined): Promise<void> {
    const before = this.#inMemory(hash)?.marked;
    if (owner !== undefined && owner !== before) await this.#folder.mark(sha256(owner), hash);
    await this.#write(hash, header(expiresAt) + json);
    const entry = this.#inMemory(hash);
    if (entry !== undefined) entry.marked = owner;
    if (before !== undefined && before !== owner) {
      await this.#folder.unmark(sha256(before), hash).catch((err: unknown) => this.#report('could not delete a marker of the owner index', err));
    }
  }

  /** Deletes the marker of the owner hashed as `ownerHash` unless the session (in memory, else its live file) is still that owner's. */
  async #unmark(hash: string, ownerHash: string): Promise<void> {
    const entry = this.#inMemory(hash);
    let owner: string | undefined;
    if (entry !== undefined) {
      owner = ownerOf(entry.data);
    } else {
      // An I/O error rejects: the marker is kept, and checked again later.
      const parsed = await this.#folder.readSession(hash, this.#maxSize);
      if (typeof parsed === 'object' && this.#expiry(hash, parsed.expiresAt) > this.#now()) owner = ownerOf(parsed.data);
    }
    if (owner !== undefined && sha256(owner) === ownerHash) return;
    await this.#folder.unmark(ownerHash, hash);
  }

  /** Reports a session whose file was deleted as expired to the server, if it listens. */
  #expired(hash: string): void {
    const onEvent = this.#onEvent;
    if (onEvent === undefined) return;
    try {
      onEvent({ type: 'expired', idHash: hash });
    } catch {
      // A listener that throws must not take the storage down.
    }
  }

  /** Writes a temporary file in the same folder and renames it over the session's file. */
  async #write(hash: string, content: string): Promise<void> {
    const shard = hash.slice(0, 2);
    const file = this.#folder.file(hash);
    // A second attempt when the folder was removed behind our back (a tmp cleaner, say).
    for (let attempt = 1; ; attempt++) {
      await this.#folder.make(shard);
      const tmp = `${file}.${process.pid}-${this.#token}-${this.#seq++}.tmp`;
      try {
        if (this.#writer !== undefined) await this.#writer.write(tmp, file, content, this.#fsync, Number.parseInt(shard, 16));
        else await writeAtomic(fsCalls.io, tmp, file, content, this.#fsync);
        return;
      } catch (err) {
        if (errCode(err) !== 'ENOENT' || attempt === 2) throw err;
        this.#folder.forget(shard);
      }
    }
  }

  async #flush(): Promise<void> {
    const hashes = [...this.#touches.keys()];
    const writer = this.#writer;
    if (writer === undefined) {
      await runLimited(hashes, CONCURRENCY, async (hash) => {
        const expiresAt = this.#takeRenewal(hash);
        if (expiresAt !== undefined) await this.#queueRenewal(hash, expiresAt);
      });
      return;
    }
    // Renewals of busy files go through their queues meanwhile: waited for at the end, so that
    // a slow write of one file holds back no later batch.
    const queued: Promise<void>[] = [];
    for (let i = 0; i < hashes.length; i += THREAD_FLUSH_CONCURRENCY) await this.#flushBatch(writer, hashes.slice(i, i + THREAD_FLUSH_CONCURRENCY), queued);
    await Promise.all(queued);
  }

  /**
   * Takes the renewal of `hash` out of `#touches` for its header write: the expiry to write, or
   * `undefined` when a set or remove made it moot. Each renewal stays in `#touches`, where reads
   * and the sweep see it, until its write is queued or its file held (the queue then guards the
   * file).
   */
  #takeRenewal(hash: string): number | undefined {
    if (!this.#touches.has(hash)) return undefined;
    const expiresAt = this.#renewal(hash);
    this.#touches.delete(hash);
    // The next renewal of the entry in memory starts the next batch.
    const entry = this.#inMemory(hash);
    if (entry !== undefined) entry.pending = false;
    return expiresAt;
  }

  /** Writes the renewal of `hash` through its file's queue; a failure is reported. */
  #queueRenewal(hash: string, expiresAt: number): Promise<void> {
    return this.#queue.enqueue(hash, { kind: 'touch', expiresAt }).catch((err: unknown) => this.#report('could not extend a session file\'s lifetime', err));
  }

  /**
   * Writes the renewals of `hashes` as one request to the first writer thread, each file held in
   * its queue until its outcome is dealt with, so that a write or a removal of it waits as it
   * would behind a queued renewal. A file with an operation under way or waiting, or in a shard
   * folder not checked yet, gets its renewal through its queue instead: pushed to `queued`.
   */
  async #flushBatch(writer: Writer, hashes: readonly string[], queued: Promise<void>[]): Promise<void> {
    const held: { hash: string; expiresAt: number; release: () => void }[] = [];
    for (const hash of hashes) {
      const expiresAt = this.#takeRenewal(hash);
      if (expiresAt === undefined) continue;
      const release = this.#folder.trusts(hash.slice(0, 2)) ? this.#queue.hold(hash) : undefined;
      if (release === undefined) queued.push(this.#queueRenewal(hash, expiresAt));
      else held.push({ hash, expiresAt, release });
    }
    if (held.length > 0) {
      let outcomes: (HeaderOutcome | Error)[];
      try {
        outcomes = await writer.headers(held.map((h) => this.#folder.file(h.hash)), held.map((h) => h.expiresAt), this.#maxAgeMs, this.#now());
      } catch (err) {
        const failure = asError(err);
        outcomes = held.map(() => failure);
      }
      const settling: Promise<void>[] = [];
      for (const [i, { hash, release }] of held.entries()) {
        const outcome = outcomes[i] as HeaderOutcome | Error;
        // Nothing to do after most rewrites: released at once, without a promise each.
        if (outcome === 'written' || outcome === 'kept' || outcome === 'missing') {
          release();
          continue;
        }
        const settled = this.#folder.settleHeader(hash, outcome, this.#maxSize).catch((err: unknown) => this.#report('could not extend a session file\'s lifetime', err));
        settling.push(settled.finally(release));
      }
      await Promise.all(settling);
    }
  }

  async #sweep(): Promise<number> {
    await this.flush();
    const before = this.#swept;
    for (const shard of (await this.#folder.shards()) ?? []) {
      let names: string[];
      try {
        names = await this.#folder.names(shard);
      } catch {
        continue;
      }
      const dir = join(this.path, shard);
      await runLimited(names, CONCURRENCY, async (name) => {
        if (HASH_RE.test(name)) {
          if (this.#touches.has(name) || this.#queue.has(name)) return;
          const expiresAt = await this.#folder.peekExpiry(join(dir, name));
          if (typeof expiresAt === 'string') await this.#queue.enqueue(name, { kind: 'setAside' }).catch((err: unknown) => this.#report('could not set aside an unreadable session file', err));
          else if (expiresAt !== undefined && expiresAt <= this.#now()) await this.#queue.enqueue(name, { kind: 'sweep' }).catch((err: unknown) => this.#report('could not delete an expired session file', err));
        } else if (name.endsWith('.tmp')) {
          await this.#folder.removeIfOrphan(join(dir, name), name);
        } else if (name.endsWith('.bad')) {
          await this.#folder.removeIfOldBad(join(dir, name));
        }
      });
    }
    await this.#sweepOwners();
    return this.#swept - before;
  }

  /** Deletes the owner index markers whose session file is gone, and the owner folders left empty. */
  async #sweepOwners(): Promise<void> {
    for (const ownerHash of await this.#folder.owners()) {
      let hashes: string[];
      try {
        hashes = await this.#folder.markers(ownerHash);
      } catch (err) {
        this.#report('could not read the owner index', err);
        continue;
      }
      let kept = 0;
      await runLimited(hashes, CONCURRENCY, async (hash) => {
        const busy = this.#inMemory(hash) !== undefined || this.#queue.has(hash) || this.#touches.has(hash);
        if (busy || (await this.#folder.sessionExists(hash).catch(() => true))) {
          kept++;
          return;
        }
        await this.#queue.enqueue(hash, { kind: 'unmark', ownerHash }).catch((err: unknown) => this.#report('could not delete a marker of the owner index', err));
      });
      if (kept === 0) await this.#folder.removeOwnerFolder(ownerHash).catch((err: unknown) => this.#report('could not remove an empty folder of the owner index', err));
    }
  }

  #report(message: string, cause: unknown, code = 'ESTORAGE'): void {
    const c = errCode(cause);
    try {
      this.#onError(new StorageError(`${message}${c === undefined ? '' : ` (${c})`}`, { cause, code }));
    } catch {
      // An error hook that throws must not take the storage down.
    }
  }
}
