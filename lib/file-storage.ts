/**
 * File storage, the server's default: memory first, files for persistence.
 *
 * 1. Every session operation works on memory (an {@link ExpiringCache}).
 * 2. The cache controls expiry in memory.
 * 3. Files persist sessions: a new `FileStorage` on the same folder restores them.
 * 4. A session is serialized (JSON) and written only when it changed (`set`).
 * 5. A file is read only when its session is not in memory; a missing file is a plain miss.
 * 6. Reads never rewrite a file: the expiry in its header is rewritten in place, in a batch,
 *    at most once per `ttlUpdateInterval`.
 * 7. Expired sessions are gone on read at once; a sweep deletes their files, reading only the
 *    header.
 *
 * The file format (version 1) is a 21-byte header, then the session as JSON:
 * `BS1 ` (magic and version, 4 bytes), the expiry time in milliseconds since the epoch as 16
 * zero-padded decimal digits, and `\n`. Files live at `<path>/<xx>/<sha256(id)>`, where `xx` are
 * the first two hex digits of the hash.
 */
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, constants as fsc, lstatSync, mkdirSync } from 'node:fs';
import { type FileHandle, mkdir, open, readdir, rename, stat, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ExpiringCache } from './cache.js';
import { type Duration, describe, parseDuration } from './duration.js';
import { StorageError } from './errors.js';
import type { SessionData, Storage } from './storage.js';
import { Writer } from './writer.js';

/** Options of {@link FileStorage}. */
export interface FileStorageOptions {
  /** The folder sessions are kept in; created 0700. @default join(os.tmpdir(), 'bare-session') */
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
   * How many threads write session files, with synchronous calls (a message round trip per
   * write, where Node's thread pool takes four trips). A session's file always goes to the same
   * thread; each thread starts on its first write. More than one pays even on two cores: a write
   * that replaces a file spends most of its time in the kernel, and four threads overlap it
   * (see lib/writer.ts). Each thread takes about 9 MB of memory. `0` writes through Node's
   * thread pool instead. An integer from 0 to 64.
   * @default 4
   */
  writerThreads?: number;
  /**
   * What to do when the folder is open to other users or owned by another user:
   * `'throw'` refuses it at construction, `'warn'` reports it to `onError` and goes on.
   * @default 'throw'
   */
  insecureFolder?: 'throw' | 'warn';
  /** Receives file problems that do not fail a request (a corrupt file set aside, a sweep error). @default one line on stderr */
  onError?: (error: Error) => void;
  /** The clock, in milliseconds; tests inject one. @default Date.now */
  now?: () => number;
}

/**
 * @internal The file-system calls that open and rename session files, in one object so that
 * tests can make them fail or wait (`t.mock.method(fsCalls, 'rename', …)`), which `chmod` cannot
 * do for root. Not exported by the package's entry point.
 */
export const fsCalls = { open, rename };

/** Magic and version of the file format. */
const MAGIC = 'BS1 ';
const EXPIRY_DIGITS = 16;
/** Bytes before the JSON body. */
export const HEADER_SIZE = MAGIC.length + EXPIRY_DIGITS + 1;
const HASH_RE = /^[0-9a-f]{64}$/;
const SHARD_RE = /^[0-9a-f]{2}$/;
const TMP_RE = /^[0-9a-f]{64}\.(\d+)-([0-9a-f]+)-\d+\.tmp$/;
/** Tokens of the FileStorage instances alive in this process: their temporary files are not orphans. */
const LIVE = new Set<string>();
/** A set-aside file older than this is deleted by the sweep. */
const BAD_FILE_AGE_MS = 7 * 86_400_000;
/** A temporary file of an unknown writer older than this is an orphan. */
const FOREIGN_TMP_AGE_MS = 3_600_000;
/** The largest session file read; a bigger one is set aside unread. The server's sessionMaxSize defaults to 1 MiB. */
export const MAX_FILE_BYTES = 64 * 1024 * 1024;
/** How many files the sweep works on at once. */
const SWEEP_CONCURRENCY = 16;

interface Entry {
  data: SessionData;
  readonly hash: string;
}

type Op =
  | { kind: 'write'; data: SessionData; expiresAt: number }
  | { kind: 'touch'; expiresAt: number }
  | { kind: 'unlink' }
  | { kind: 'sweep' }
  /** Renames an unreadable file aside, if the file at the name is still unreadable. */
  | { kind: 'setAside' };

interface Waiter {
  resolve(): void;
  reject(err: unknown): void;
}

interface Queue {
  pending: { op: Op; waiters: Waiter[] } | undefined;
  busy: boolean;
  idle: (() => void)[];
}

/** Formats the 21-byte header for an expiry time. */
function header(expiresAt: number): string {
  return `${MAGIC}${String(Math.max(0, Math.floor(expiresAt))).padStart(EXPIRY_DIGITS, '0')}\n`;
}

/** Reads the expiry from a header, or `undefined` when the bytes are not a version-1 header. */
function parseHeader(buf: Buffer): number | undefined {
  if (buf.length < HEADER_SIZE || buf.toString('latin1', 0, MAGIC.length) !== MAGIC || buf[HEADER_SIZE - 1] !== 10) return undefined;
  const digits = buf.toString('latin1', MAGIC.length, MAGIC.length + EXPIRY_DIGITS);
  return /^\d{16}$/.test(digits) ? Number(digits) : undefined;
}

/** The expiry and data in a session file's bytes, or why they are not a session. */
function parseFile(buf: Buffer): { expiresAt: number; data: SessionData } | string {
  const expiresAt = parseHeader(buf);
  if (expiresAt === undefined) return buf.length === 0 ? 'is empty' : 'is corrupt or of an unknown format';
  let data: unknown;
  try {
    data = JSON.parse(buf.toString('utf8', HEADER_SIZE));
  } catch {
    return 'is corrupt or of an unknown format';
  }
  if (data === null || typeof data !== 'object' || Array.isArray(data)) return 'is corrupt or of an unknown format';
  return { expiresAt, data: data as SessionData };
}

/** Reads and parses an open session file; a file bigger than any session we write is not read. */
async function readSessionFile(fh: FileHandle): Promise<ReturnType<typeof parseFile>> {
  const { size } = await fh.stat();
  return size > MAX_FILE_BYTES ? 'is too large' : parseFile(await fh.readFile());
}

function errCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** Whether process `pid` is alive (signal 0 probes without sending anything). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return errCode(err) === 'EPERM';
  }
}

/**
 * Memory + file session storage, the server's default. One process owns a folder.
 *
 * @example
 * ```ts
 * const s = new Server().setSessionStorage(new FileStorage({ path: './sessions', fsync: true }));
 * ```
 */
export class FileStorage implements Storage {
  /** The folder sessions are kept in. */
  readonly path: string;
  readonly #cache: ExpiringCache<string, Entry>;
  readonly #now: () => number;
  readonly #fsync: boolean;
  /** The writer threads, unless `writerThreads: 0`. */
  readonly #writer: Writer | undefined;
  readonly #onError: (error: Error) => void;
  readonly #token = randomBytes(6).toString('hex');
  #seq = 0;
  /** Per file: the operation running and the newest one waiting (older ones are coalesced away). */
  readonly #queues = new Map<string, Queue>();
  /** Batched life extensions, by hash: the expiry to write at the next flush. */
  readonly #touches = new Map<string, number>();
  /** Reads of files under way, by id, so two requests of one session read its file once. */
  readonly #loading = new Map<string, Promise<Entry | undefined>>();
  /** Ids removed while their file was being read: that read must not put them back in memory. */
  readonly #removedWhileLoading = new Set<string>();
  readonly #shards = new Set<string>();
  readonly #timers: NodeJS.Timeout[] = [];
  #sweeping: Promise<number> | undefined;
  #flushing: Promise<void> | undefined;
  readonly #startup: Promise<void>;
  #closed = false;
  /** Expired files deleted so far, for {@link FileStorage.sweep}'s count. */
  #swept = 0;

  /** Opens (and creates, 0700) the folder; refuses one that other users can reach. */
  constructor(options: FileStorageOptions = {}) {
    const {
      path = join(tmpdir(), 'bare-session'),
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
    this.#writer = writerThreads > 0 ? new Writer(writerThreads) : undefined;
    this.#onError = onError;
    this.#openFolder(insecureFolder);
    this.#cache = new ExpiringCache<string, Entry>({ ttl: '24h', max: maxInMemory, now });
    LIVE.add(this.#token);
    this.#startup = this.#removeOrphans().catch((err: unknown) => this.#report('could not clean orphaned temporary files', err));
    const flush = setInterval(() => void this.flush().catch((err: unknown) => this.#report('could not extend session lifetimes', err)), ttlUpdateMs);
    const sweep = setInterval(() => void this.sweep().catch((err: unknown) => this.#report('the sweep failed', err)), sweepMs);
    flush.unref();
    sweep.unref();
    this.#timers.push(flush, sweep);
  }

  /** The session: from memory, else from its file; `undefined` when missing, expired or unreadable. */
  async get(id: string): Promise<SessionData | undefined> {
    return (await this.#entry(id))?.data;
  }

  /**
   * Stores the whole session in memory and in its file (a temporary file renamed over it);
   * resolves once the file is in place. On failure the previous file is kept and the memory
   * copy dropped, so the next read sees what the file holds.
   */
  async set(id: string, data: SessionData, ttlMs: number): Promise<void> {
    const hash = this.#cache.peek(id)?.hash ?? hashId(id);
    const expiresAt = this.#now() + ttlMs;
    const entry: Entry = { data, hash };
    this.#cache.set(id, entry, ttlMs);
    this.#touches.delete(hash);
    try {
      await this.#enqueue(hash, { kind: 'write', data, expiresAt });
    } catch (err) {
      if (this.#cache.peek(id) === entry) this.#cache.delete(id);
      throw new StorageError(`could not write a session file${errCode(err) === undefined ? '' : ` (${errCode(err)})`}; the previous version is kept`, { cause: err });
    }
  }

  /**
   * Extends the session's life in memory at once, and in its file at the next batch. A session
   * not in memory is read first, so that an expired or unknown one is never extended.
   */
  async touch(id: string, ttlMs: number): Promise<void> {
    const entry = await this.#entry(id);
    if (entry === undefined || !this.#cache.touch(id, ttlMs)) return;
    this.#touches.set(entry.hash, this.#now() + ttlMs);
  }

  /** Deletes the session from memory and disk; a write still under way cannot bring it back. */
  async remove(id: string): Promise<void> {
    const hash = this.#cache.peek(id)?.hash ?? hashId(id);
    this.#cache.delete(id);
    this.#touches.delete(hash);
    if (this.#loading.has(id)) this.#removedWhileLoading.add(id);
    try {
      await this.#enqueue(hash, { kind: 'unlink' });
    } catch (err) {
      throw new StorageError(`could not delete a session file${errCode(err) === undefined ? '' : ` (${errCode(err)})`}`, { cause: err });
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
   * Deletes expired session files and orphaned temporary files now (the timer does it every
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
   * deletion or set-aside they queue), and stops the timers.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const t of this.#timers) clearInterval(t);
    await this.#startup;
    await this.#sweeping?.catch(() => undefined);
    await Promise.all([...this.#loading.values()].map((loading) => loading.catch(() => undefined)));
    await this.flush();
    await Promise.all([...this.#queues.keys()].map((hash) => this.#settled(hash)));
    await this.#writer?.close();
    this.#cache.close();
    LIVE.delete(this.#token);
  }

  #openFolder(mode: 'throw' | 'warn'): void {
    try {
      mkdirSync(this.path, { recursive: true, mode: 0o700 });
    } catch (err) {
      // A file (or a link to one) at the path: refused below, naming the option.
      if (errCode(err) !== 'EEXIST') throw err;
    }
    const st = lstatSync(this.path);
    const problems: string[] = [];
    if (st.isSymbolicLink()) problems.push('is a symbolic link');
    else if (!st.isDirectory()) throw new TypeError(`option path is invalid: ${describe(this.path)} is not a folder`);
    if ((st.mode & 0o077) !== 0) problems.push(`has mode ${(st.mode & 0o777).toString(8)}, open to other users (expected 700)`);
    if (typeof process.getuid === 'function' && st.uid !== process.getuid()) problems.push('belongs to another user');
    if (problems.length === 0) return;
    const message = `session folder ${this.path} ${problems.join(' and ')}`;
    if (mode === 'throw') throw new TypeError(`option path is invalid: ${message}; use a private folder (chmod 700) or insecureFolder: 'warn'`);
    this.#onError(new StorageError(message, { code: 'EINSECURE' }));
    if (!st.isSymbolicLink() && st.uid === process.getuid?.()) {
      try {
        chmodSync(this.path, 0o700);
      } catch {
        // Reported above already; the folder stays as it is.
      }
    }
  }

  #file(hash: string): string {
    return join(this.path, hash.slice(0, 2), hash);
  }

  /** The session's entry: from memory, else from its file, one read at a time per id. */
  #entry(id: string): Promise<Entry | undefined> {
    const hit = this.#cache.get(id);
    if (hit !== undefined) return Promise.resolve(hit);
    let loading = this.#loading.get(id);
    if (loading === undefined) {
      loading = this.#load(id).finally(() => {
        this.#loading.delete(id);
        this.#removedWhileLoading.delete(id);
      });
      this.#loading.set(id, loading);
    }
    return loading;
  }

  async #load(id: string): Promise<Entry | undefined> {
    const hash = hashId(id);
    // A batched extension not yet written counts: the session was used after the header was.
    // Taken before the read too, as a flush under way may take it from #touches meanwhile.
    const renewed = this.#touches.get(hash) ?? 0;
    await this.#settled(hash);
    const file = this.#file(hash);
    let fh: FileHandle;
    try {
      fh = await fsCalls.open(file, fsc.O_RDONLY | fsc.O_NOFOLLOW);
    } catch (err) {
      const code = errCode(err);
      if (code === 'ENOENT') return undefined;
      if (code === 'ELOOP') {
        await this.#setAside(hash);
        return this.#cache.peek(id);
      }
      throw new StorageError(`could not read a session file${code === undefined ? '' : ` (${code})`}`, { cause: err });
    }
    let parsed: ReturnType<typeof parseFile>;
    try {
      parsed = await readSessionFile(fh);
    } catch (err) {
      const code = errCode(err);
      if (code !== 'EISDIR') throw new StorageError(`could not read a session file${code === undefined ? '' : ` (${code})`}`, { cause: err });
      parsed = 'is a folder';
    } finally {
      await fh.close();
    }
    if (typeof parsed === 'string') await this.#setAside(hash);
    // Another request may have written the session while this one read the file: memory wins.
    const current = this.#cache.peek(id);
    if (current !== undefined) return current;
    if (typeof parsed === 'string') return undefined;
    const expiresAt = Math.max(parsed.expiresAt, renewed, this.#touches.get(hash) ?? 0);
    const ttl = expiresAt - this.#now();
    if (ttl <= 0) {
      void this.#enqueue(hash, { kind: 'sweep' }).catch((err: unknown) => this.#report('could not delete an expired session file', err));
      return undefined;
    }
    // Removed while this read was under way: the read must not bring it back.
    if (this.#removedWhileLoading.has(id)) return undefined;
    const entry: Entry = { data: parsed.data, hash };
    this.#cache.set(id, entry, ttl);
    return entry;
  }

  /** Runs `op` on a file after the operation under way; a newer op replaces a waiting one. */
  #enqueue(hash: string, op: Op): Promise<void> {
    let q = this.#queues.get(hash);
    if (q === undefined) {
      q = { pending: undefined, busy: false, idle: [] };
      this.#queues.set(hash, q);
    }
    const queue = q;
    const done = new Promise<void>((resolve, reject) => {
      const waiter: Waiter = { resolve, reject };
      const pending = queue.pending;
      if (pending === undefined) {
        queue.pending = { op, waiters: [waiter] };
      } else if (op.kind === 'write' || op.kind === 'unlink') {
        pending.op = op;
        pending.waiters.push(waiter);
      } else if (op.kind === 'touch' && pending.op.kind === 'write') {
        pending.op.expiresAt = Math.max(pending.op.expiresAt, op.expiresAt);
        pending.waiters.push(waiter);
      } else if (op.kind === 'touch' && (pending.op.kind === 'touch' || pending.op.kind === 'sweep')) {
        pending.op = op;
        pending.waiters.push(waiter);
      } else {
        // A sweep, a touch behind an unlink or a set-aside, or a set-aside behind anything (a
        // write or touch waiting means the unreadable file is being replaced): the waiting
        // operation decides the file's fate.
        pending.waiters.push(waiter);
      }
    });
    if (!queue.busy) void this.#drain(hash, queue);
    return done;
  }

  async #drain(hash: string, q: Queue): Promise<void> {
    q.busy = true;
    while (q.pending !== undefined) {
      const { op, waiters } = q.pending;
      q.pending = undefined;
      try {
        await this.#apply(hash, op);
        for (const w of waiters) w.resolve();
      } catch (err) {
        for (const w of waiters) w.reject(err);
      }
    }
    q.busy = false;
    this.#queues.delete(hash);
    for (const f of q.idle) f();
  }

  /** Resolves once no operation on the file is running or waiting. */
  #settled(hash: string): Promise<void> {
    const q = this.#queues.get(hash);
    if (q === undefined) return Promise.resolve();
    return new Promise((resolve) => q.idle.push(resolve));
  }

  async #apply(hash: string, op: Op): Promise<void> {
    const file = this.#file(hash);
    switch (op.kind) {
      case 'write':
        await this.#write(hash, file, header(op.expiresAt) + JSON.stringify(op.data));
        return;
      case 'touch':
        await this.#writeHeader(file, op.expiresAt);
        return;
      case 'unlink':
        await unlinkQuiet(file);
        return;
      case 'sweep': {
        // Deleted only if still expired: a session renewed meanwhile keeps its file.
        const expiresAt = await readExpiry(file);
        if (expiresAt !== undefined && expiresAt <= this.#now() && !this.#touches.has(hash)) {
          await unlinkQuiet(file);
          this.#swept++;
        }
        return;
      }
      case 'setAside': {
        // Read again, in the queue: a good file a write put in place meanwhile is kept.
        const why = await unreadable(file);
        if (why === undefined) return;
        try {
          await fsCalls.rename(file, `${file}.bad`);
        } catch (err) {
          this.#report('could not set aside an unreadable session file', err);
        }
        this.#report(`a session file ${why}; it reads as no session and was set aside as ${hash.slice(0, 2)}/${hash.slice(0, 12)}….bad`, undefined, 'ECORRUPT');
      }
    }
  }

  /** Writes a temporary file in the same folder and renames it over the session's file. */
  async #write(hash: string, file: string, content: string): Promise<void> {
    const dir = join(this.path, hash.slice(0, 2));
    // A second attempt when the folder was removed behind our back (a tmp cleaner, say).
    for (let attempt = 1; ; attempt++) {
      if (!this.#shards.has(dir)) {
        await mkdir(dir, { recursive: true, mode: 0o700 });
        this.#shards.add(dir);
      }
      const tmp = `${file}.${process.pid}-${this.#token}-${this.#seq++}.tmp`;
      try {
        if (this.#writer !== undefined) {
          await this.#writer.write(tmp, file, content, this.#fsync, Number.parseInt(hash.slice(0, 2), 16));
          return;
        }
        await this.#writeAtomic(tmp, file, content);
        break;
      } catch (err) {
        if (errCode(err) !== 'ENOENT' || attempt === 2) throw err;
        this.#shards.delete(dir);
      }
    }
    if (this.#fsync) await syncFolder(dir);
  }

  /** Creates `tmp` exclusively (0600), writes it whole, renames it over `file`; removes `tmp` on error. */
  async #writeAtomic(tmp: string, file: string, content: string): Promise<void> {
    let fh: FileHandle | undefined;
    try {
      fh = await fsCalls.open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600);
      await fh.writeFile(content);
      if (this.#fsync) await fh.sync();
      await fh.close();
      fh = undefined;
      await fsCalls.rename(tmp, file);
    } catch (err) {
      await fh?.close().catch(() => undefined);
      await unlinkQuiet(tmp).catch(() => undefined);
      throw err;
    }
  }

  /** Rewrites the expiry digits in place; never creates a file, never follows a link. */
  async #writeHeader(file: string, expiresAt: number): Promise<void> {
    let fh: FileHandle;
    try {
      fh = await fsCalls.open(file, fsc.O_RDWR | fsc.O_NOFOLLOW);
    } catch (err) {
      const code = errCode(err);
      if (code === 'ENOENT' || code === 'ELOOP') return;
      throw err;
    }
    try {
      const head = Buffer.alloc(HEADER_SIZE);
      const { bytesRead } = await fh.read(head, 0, HEADER_SIZE, 0);
      const current = parseHeader(head.subarray(0, bytesRead));
      if (current !== undefined && current < expiresAt) await fh.write(header(expiresAt), 0, 'latin1');
    } finally {
      await fh.close();
    }
  }

  async #flush(): Promise<void> {
    // Each extension stays in #touches, where reads and the sweep see it, until its header write
    // is queued (the queue then guards the file); a set or remove meanwhile makes it moot.
    await runLimited([...this.#touches.keys()], SWEEP_CONCURRENCY, async (hash) => {
      const expiresAt = this.#touches.get(hash);
      if (expiresAt === undefined) return;
      this.#touches.delete(hash);
      await this.#enqueue(hash, { kind: 'touch', expiresAt }).catch((err: unknown) => this.#report('could not extend a session file\'s lifetime', err));
    });
  }

  /**
   * Renames an unreadable file aside (`<hash>.bad`) and reports it once: in the file's queue,
   * and only if the file there is still unreadable.
   */
  #setAside(hash: string): Promise<void> {
    return this.#enqueue(hash, { kind: 'setAside' });
  }

  async #sweep(): Promise<number> {
    await this.flush();
    const before = this.#swept;
    let shards: string[];
    try {
      shards = (await readdir(this.path)).filter((n) => SHARD_RE.test(n));
    } catch (err) {
      if (errCode(err) === 'ENOENT') return 0;
      throw err;
    }
    for (const shard of shards) {
      const dir = join(this.path, shard);
      let names: string[];
      try {
        names = await readdir(dir);
      } catch {
        continue;
      }
      await runLimited(names, SWEEP_CONCURRENCY, async (name) => {
        if (HASH_RE.test(name)) {
          if (this.#touches.has(name) || this.#queues.has(name)) return;
          const expiresAt = await readExpiry(join(dir, name));
          if (expiresAt === undefined || expiresAt > this.#now()) return;
          await this.#enqueue(name, { kind: 'sweep' }).catch((err: unknown) => this.#report('could not delete an expired session file', err));
        } else if (name.endsWith('.tmp')) {
          await this.#removeIfOrphan(join(dir, name), name);
        } else if (name.endsWith('.bad')) {
          const st = await stat(join(dir, name)).catch(() => undefined);
          if (st !== undefined && Date.now() - st.mtimeMs > BAD_FILE_AGE_MS) await unlinkQuiet(join(dir, name)).catch(() => undefined);
        }
      });
    }
    return this.#swept - before;
  }

  async #removeOrphans(): Promise<void> {
    let shards: string[];
    try {
      shards = (await readdir(this.path)).filter((n) => SHARD_RE.test(n));
    } catch {
      return;
    }
    for (const shard of shards) {
      const dir = join(this.path, shard);
      const names = await readdir(dir).catch(() => [] as string[]);
      await runLimited(names.filter((n) => n.endsWith('.tmp')), SWEEP_CONCURRENCY, (name) => this.#removeIfOrphan(join(dir, name), name));
    }
  }

  /** A temporary file is an orphan when its writer is gone (a dead process, or a closed instance of this one). */
  async #removeIfOrphan(file: string, name: string): Promise<void> {
    const m = TMP_RE.exec(name);
    let orphan: boolean;
    if (m !== null) {
      const pid = Number(m[1]);
      orphan = pid === process.pid ? !LIVE.has(m[2] as string) : !alive(pid);
    } else {
      const st = await stat(file).catch(() => undefined);
      orphan = st !== undefined && Date.now() - st.mtimeMs > FOREIGN_TMP_AGE_MS;
    }
    if (orphan) await unlinkQuiet(file).catch(() => undefined);
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

/** The SHA-256 of an id, in hex: the file name, which reveals nothing usable. */
function hashId(id: string): string {
  return createHash('sha256').update(id).digest('hex');
}

async function unlinkQuiet(file: string): Promise<void> {
  try {
    await unlink(file);
  } catch (err) {
    if (errCode(err) !== 'ENOENT') throw err;
  }
}

/**
 * Why the file at `file` is not a session that reads (a link, a folder, bad bytes); `undefined`
 * when it reads, is missing, or cannot be read at all.
 */
async function unreadable(file: string): Promise<string | undefined> {
  let fh: FileHandle;
  try {
    fh = await fsCalls.open(file, fsc.O_RDONLY | fsc.O_NOFOLLOW);
  } catch (err) {
    return errCode(err) === 'ELOOP' ? 'is a symbolic link' : undefined;
  }
  try {
    const parsed = await readSessionFile(fh);
    return typeof parsed === 'string' ? parsed : undefined;
  } catch (err) {
    return errCode(err) === 'EISDIR' ? 'is a folder' : undefined;
  } finally {
    await fh.close();
  }
}

/** The expiry in a file's header, reading 21 bytes only; `undefined` when missing or not ours. */
async function readExpiry(file: string): Promise<number | undefined> {
  let fh: FileHandle;
  try {
    fh = await fsCalls.open(file, fsc.O_RDONLY | fsc.O_NOFOLLOW);
  } catch {
    return undefined;
  }
  try {
    const head = Buffer.alloc(HEADER_SIZE);
    const { bytesRead } = await fh.read(head, 0, HEADER_SIZE, 0);
    return parseHeader(head.subarray(0, bytesRead));
  } catch {
    return undefined;
  } finally {
    await fh.close();
  }
}

async function syncFolder(dir: string): Promise<void> {
  const fh = await fsCalls.open(dir, fsc.O_RDONLY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Runs `fn` over `items`, at most `limit` at once. */
async function runLimited<I>(items: readonly I[], limit: number, fn: (item: I) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++] as I;
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
