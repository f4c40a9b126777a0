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
 * 8. One process owns a folder: a lock file in it names the process, and a second process (or a
 *    second instance) refuses the folder.
 * 9. Nothing in the folder is trusted until checked: shard folders must be real folders of ours,
 *    mode 0700; session files must be regular files of ours, with a header and body this library
 *    could have written. Anything else is set aside (renamed `….bad`), never followed, never
 *    waited on.
 *
 * The file format (version 1) is a 21-byte header, then the session as JSON:
 * `BS1 ` (magic and version, 4 bytes), the expiry time in milliseconds since the epoch as 16
 * zero-padded decimal digits, and `\n`. Files live at `<path>/<xx>/<sha256(id)>`, where `xx` are
 * the first two hex digits of the hash. The lock is `<path>/.lock.<n>` (see {@link takeLock}).
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  type Stats,
  chmodSync,
  close as closeCb,
  closeSync,
  constants as fsc,
  fstatSync,
  fsync as fsyncCb,
  linkSync,
  lstatSync,
  mkdirSync,
  open as openCb,
  openSync,
  readFileSync,
  readSync,
  readdirSync,
  realpathSync,
  rename as renameCb,
  statSync,
  unlink as unlinkCb,
  unlinkSync,
  write as writeCb,
  writeFileSync,
} from 'node:fs';
import { type FileHandle, lstat, mkdir, open, readdir, rename, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { threadId } from 'node:worker_threads';
import { ExpiringCache } from '../../cache.js';
import { type Duration, describe, parseDuration } from '../../duration.js';
import { StorageError, errCode, sessionTooLarge } from '../../errors.js';
import { MAX_DEPTH } from '../../json.js';
import type { SessionData, Storage, StorageSettings } from '../storage.js';
import { type WriteIo, writeAtomic } from './writer-thread.js';
import { Writer, type WriterHooks } from './writer.js';

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
   * Shard folders inside it are checked either way (see the module's notes).
   * @default 'throw'
   */
  insecureFolder?: 'throw' | 'warn';
  /** Receives file problems that do not fail a request (a corrupt file set aside, a sweep error). @default one line on stderr */
  onError?: (error: Error) => void;
  /** The clock, in milliseconds; tests inject one. @default Date.now */
  now?: () => number;
}

/** The write calls of Node's thread pool path (`writerThreads: 0`), as promises. */
const poolIo: WriteIo = {
  open: (path, flags, mode) => new Promise((res, rej) => openCb(path, flags, mode, (e, fd) => (e === null ? res(fd) : rej(e)))),
  write: (fd, buffer, offset, length) => new Promise((res, rej) => writeCb(fd, buffer, offset, length, null, (e, n) => (e === null ? res(n) : rej(e)))),
  fsync: (fd) => new Promise((res, rej) => fsyncCb(fd, (e) => (e === null ? res() : rej(e)))),
  close: (fd) => new Promise((res, rej) => closeCb(fd, (e) => (e === null ? res() : rej(e)))),
  rename: (from, to) => new Promise((res, rej) => renameCb(from, to, (e) => (e === null ? res() : rej(e)))),
  unlink: (path) => new Promise((res, rej) => unlinkCb(path, (e) => (e === null ? res() : rej(e)))),
};

/**
 * @internal The file-system calls tests make fail or wait, which `chmod` cannot do for root:
 * `open` (reads, header rewrites) and `rename` (set-asides) of `fs/promises`, `io` (every call of
 * a write through Node's thread pool), and `writerHooks`, which storages created while it is set
 * hand to their writer threads (see {@link WriterHooks}). Not exported by the package's entry point.
 */
export const fsCalls: { open: typeof open; rename: typeof rename; io: WriteIo; writerHooks: WriterHooks | undefined } = {
  open,
  rename,
  io: poolIo,
  writerHooks: undefined,
};

/** Magic and version of the file format. */
const MAGIC = 'BS1 ';
const EXPIRY_DIGITS = 16;
/** Bytes before the JSON body. */
export const HEADER_SIZE = MAGIC.length + EXPIRY_DIGITS + 1;
const DAY_MS = 86_400_000;
/** The longest life a session can have: the server caps `sessionMaxAge` at 400 days, as browsers cap cookies. */
const MAX_AGE_MS = 400 * DAY_MS;
/** Clock slack: an expiry further ahead than {@link MAX_AGE_MS} and this cannot have been written, and is corrupt. */
const EXPIRY_SLACK_MS = 60_000;
/** The server's default `sessionMaxSize`, the size limit until {@link FileStorage.configure} says otherwise. */
const DEFAULT_MAX_SIZE = 1024 * 1024;
const HASH_RE = /^[0-9a-f]{64}$/;
const SHARD_RE = /^[0-9a-f]{2}$/;
const TMP_RE = /^[0-9a-f]{64}\.(\d+)-([0-9a-f]+)-\d+\.tmp$/;
const LOCK_RE = /^\.lock\.(\d{1,15})$/;
const LOCK_TMP_RE = /^\.lock-(\d+)-([0-9a-f]+)\.tmp$/;
/** Tokens of the FileStorage instances alive in this process: their temporary files are not orphans, their locks are held. */
const LIVE = new Set<string>();
/** A set-aside file older than this is deleted by the sweep. */
const BAD_FILE_AGE_MS = 7 * DAY_MS;
/** A temporary file of an unknown writer older than this is an orphan. */
const FOREIGN_TMP_AGE_MS = 3_600_000;
/** How many files the sweep works on at once. */
const SWEEP_CONCURRENCY = 16;
/** How many folders `path` may need created: more is not a path anyone means. */
const MAX_NEW_FOLDERS = 64;
/**
 * Opens a session file to read it: never through a link, never waiting (a FIFO opens at once),
 * never as a controlling terminal. `fstat` then tells whether it is a regular file.
 */
const READ_FLAGS = fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK | fsc.O_NOCTTY;
/** The same, to rewrite the header in place. */
const REWRITE_FLAGS = fsc.O_RDWR | fsc.O_NOFOLLOW | fsc.O_NONBLOCK | fsc.O_NOCTTY;
/** This process's user, to check that folders and files are ours; `undefined` where there are no uids. */
const UID = process.getuid?.();

interface Entry {
  data: SessionData;
  readonly hash: string;
}

type Op =
  | { kind: 'write'; json: string; expiresAt: number }
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

/** A session file's expiry and data. */
interface Parsed {
  expiresAt: number;
  data: SessionData;
}

/** Formats the 21-byte header for an expiry time. */
function header(expiresAt: number): string {
  return `${MAGIC}${String(Math.max(0, Math.floor(expiresAt))).padStart(EXPIRY_DIGITS, '0')}\n`;
}

/**
 * The expiry in a header, or why the bytes cannot be the header of a file this library wrote: not
 * a version-1 header, or an expiry further ahead than any session can live (`now` + 400 days).
 */
function parseHeader(buf: Buffer, now: number): number | string {
  if (buf.length === 0) return 'is empty';
  if (buf.length < HEADER_SIZE || buf.toString('latin1', 0, MAGIC.length) !== MAGIC || buf[HEADER_SIZE - 1] !== 10) return 'is corrupt or of an unknown format';
  const digits = buf.toString('latin1', MAGIC.length, MAGIC.length + EXPIRY_DIGITS);
  if (!/^\d{16}$/.test(digits)) return 'is corrupt or of an unknown format';
  const expiresAt = Number(digits);
  return expiresAt > now + MAX_AGE_MS + EXPIRY_SLACK_MS ? 'has an expiry time no session can have' : expiresAt;
}

/** The expiry and data in a session file's bytes, or why they are not a session this library wrote. */
function parseFile(buf: Buffer, now: number): Parsed | string {
  const expiresAt = parseHeader(buf, now);
  if (typeof expiresAt === 'string') return expiresAt;
  let data: unknown;
  try {
    // A body nested deep enough overflows the stack here (a RangeError): corrupt as well.
    data = JSON.parse(buf.toString('utf8', HEADER_SIZE));
  } catch {
    return 'is corrupt or of an unknown format';
  }
  if (data === null || typeof data !== 'object' || Array.isArray(data)) return 'is corrupt or of an unknown format';
  if (!nestsWithin(data, 0)) return `nests deeper than ${MAX_DEPTH} levels`;
  return { expiresAt, data: data as SessionData };
}

/**
 * Whether a parsed session nests no deeper than the server lets a value nest: the session object
 * is level 0, each of its values may hold objects down to level {@link MAX_DEPTH}. Stops at the
 * first level too deep, so the recursion is bounded.
 */
function nestsWithin(value: object, depth: number): boolean {
  if (depth > MAX_DEPTH) return false;
  const items: unknown[] = Array.isArray(value) ? value : Object.values(value);
  for (const item of items) {
    if (item !== null && typeof item === 'object' && !nestsWithin(item, depth + 1)) return false;
  }
  return true;
}

/** What a file that is not a regular file is, for a report. */
function kindOf(st: Stats): string {
  if (st.isDirectory()) return 'is a folder';
  if (st.isSymbolicLink()) return 'is a symbolic link';
  if (st.isFIFO()) return 'is a FIFO';
  if (st.isSocket()) return 'is a socket';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'is a device';
  return 'is not a regular file';
}

/**
 * Why the entry at `file`, which could not be opened, is not a session file (a link, a socket, a
 * device…); `undefined` when it is missing or a regular file that failed to open (an I/O error).
 */
async function whatIsAt(file: string): Promise<string | undefined> {
  const st = await lstat(file).catch(() => undefined);
  if (st === undefined || st.isFile()) return undefined;
  return kindOf(st);
}

/** Why a folder cannot be trusted with sessions: a link, not a folder, another user's, or open to others. */
function folderProblems(st: Stats): string[] {
  const problems: string[] = [];
  if (st.isSymbolicLink()) problems.push('is a symbolic link');
  else if (!st.isDirectory()) problems.push('is not a folder');
  if ((st.mode & 0o077) !== 0) problems.push(`has mode ${(st.mode & 0o777).toString(8)}, open to other users (expected 700)`);
  if (UID !== undefined && st.uid !== UID) problems.push('belongs to another user');
  return problems;
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
 * The default folder: private to this user and this program (see {@link FileStorageOptions.path}).
 * @internal exported for tests only
 */
export function defaultPath(): string {
  const script = process.argv[1];
  let entry: string;
  let name: string;
  if (script !== undefined && script !== '') {
    entry = realpathQuietly(script);
    name = basename(entry, extname(entry));
  } else {
    entry = realpathQuietly(process.cwd());
    name = basename(entry);
  }
  name = name.replace(/[^\w.-]/g, '_').slice(0, 40) || 'app';
  const hash = createHash('sha256').update(entry).digest('hex').slice(0, 8);
  return join(tmpdir(), `bare-session-${UID ?? 'user'}-${name}-${hash}`);
}

function realpathQuietly(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return resolve(path);
  }
}

/**
 * Creates `path` and any missing parent folders, one at a time (never `mkdir -p`, which spins
 * forever where a file system refuses folders, as /proc does), mode 0700. Throws a `TypeError`
 * naming the option and the reason when a folder cannot be made.
 */
function makeFolder(path: string): void {
  const missing: string[] = [];
  for (let dir = resolve(path); ; dir = dirname(dir)) {
    try {
      if (!statSync(dir).isDirectory()) throw invalidPath(path, `${dir} is not a folder`);
      break;
    } catch (err) {
      if (err instanceof TypeError) throw err;
      if (errCode(err) !== 'ENOENT' || dirname(dir) === dir) throw invalidPath(path, `cannot reach ${dir}`, err);
      if (missing.push(dir) > MAX_NEW_FOLDERS) throw invalidPath(path, `more than ${MAX_NEW_FOLDERS} folders would be created`);
    }
  }
  for (const dir of missing.reverse()) {
    try {
      mkdirSync(dir, { mode: 0o700 });
    } catch (err) {
      // Made meanwhile by someone else: checked below like the rest.
      if (errCode(err) !== 'EEXIST') throw invalidPath(path, `cannot create ${dir}`, err);
    }
  }
}

/** The `TypeError` of a `path` that cannot be used, with the reason and the system's code. */
function invalidPath(path: string, why: string, cause?: unknown): TypeError {
  const code = errCode(cause);
  return new TypeError(`option path is invalid: ${describe(path)}: ${why}${code === undefined ? '' : ` (${code})`}`, cause === undefined ? undefined : { cause });
}

// ---------------------------------------------------------------------------------------------
// The lock

/** What a lock file holds: who owns the folder. */
interface LockInfo {
  /** The process. */
  pid: number;
  /** Its start time (field 22 of /proc/<pid>/stat, clock ticks since boot), so that a reused pid is not taken for it; `null` off Linux. */
  start: string | null;
  /** The boot it ran in (/proc/sys/kernel/random/boot_id), so that a lock from before a reboot is stale; `null` off Linux. */
  boot: string | null;
  /** The thread of the process (`worker_threads.threadId`, 0 for the main thread). */
  thread: number;
  /** The `FileStorage` instance. */
  token: string;
}

/** Field 22 of /proc/<pid>/stat, the process's start time; `null` when unreadable (not Linux, or no such process). */
function processStart(pid: number | 'self'): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    // Field 2 (the command) may hold spaces and parentheses: count from the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

let self: { start: string | null; boot: string | null } | undefined;
/** This process's start time and boot, read once. */
function me(): { start: string | null; boot: string | null } {
  if (self === undefined) {
    let boot: string | null = null;
    try {
      boot = readFileSync('/proc/sys/kernel/random/boot_id', 'latin1').trim();
    } catch {
      // Not Linux: pids alone.
    }
    self = { start: processStart('self'), boot };
  }
  return self;
}

/** Whether the owner of a lock is alive: the same boot, the same process (pid and start time), and for this process an open instance. */
function holds(lock: LockInfo): boolean {
  const { start, boot } = me();
  if (lock.boot !== null && boot !== null && lock.boot !== boot) return false;
  if (lock.pid === process.pid) {
    if (lock.start !== start) return false;
    // Another thread's instances are out of sight: its lock holds until it closes them or exits.
    return lock.thread !== threadId || LIVE.has(lock.token);
  }
  if (!alive(lock.pid)) return false;
  if (lock.start === null) return true;
  const now = processStart(lock.pid);
  return now === null || now === lock.start;
}

/** Reads a lock file: `undefined` unless it is a small regular file of ours holding a lock. Never waits, never follows a link. */
function readLock(file: string): LockInfo | undefined {
  let fd: number;
  try {
    fd = openSync(file, READ_FLAGS);
  } catch {
    return undefined;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || (UID !== undefined && st.uid !== UID) || st.size > 1024) return undefined;
    const buf = Buffer.alloc(st.size);
    const n = readSync(fd, buf, 0, st.size, 0);
    const lock = JSON.parse(buf.toString('utf8', 0, n)) as Partial<LockInfo> | null;
    if (lock === null || typeof lock !== 'object' || !Number.isSafeInteger(lock.pid) || typeof lock.token !== 'string') return undefined;
    return {
      pid: lock.pid as number,
      start: typeof lock.start === 'string' ? lock.start : null,
      boot: typeof lock.boot === 'string' ? lock.boot : null,
      thread: Number.isSafeInteger(lock.thread) ? (lock.thread as number) : 0,
      token: lock.token,
    };
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/** The generations of lock files in `dir`, newest first. */
function lockGenerations(dir: string): number[] {
  return readdirSync(dir)
    .map((name) => LOCK_RE.exec(name)?.[1])
    .filter((g): g is string => g !== undefined)
    .map(Number)
    .sort((a, b) => b - a);
}

/** Lock files this process holds, to release them when it exits without closing its storages. */
const HELD = new Map<string, string>();
let exitHook = false;

/**
 * Takes the folder's lock for the instance `token`, or throws: a `StorageError` with code
 * `'EFOLDERINUSE'` when a live process (or a live instance of this one) holds it, a `TypeError`
 * when no file can be created in the folder. Returns the lock file's path.
 *
 * Lock files are generations, `.lock.1`, `.lock.2`…: the newest is the lock. Each appears whole
 * (written to a private temporary file, then hard-linked to its name, which fails if the name
 * exists), so exactly one process creates each generation. A stale newest lock (its process is
 * gone) is taken over by creating the next generation; a process that created its generation and
 * then sees a newer one lost a race and looks again. No lock file is ever replaced or deleted
 * while it may be the newest of a live process, so two processes never both hold the folder.
 */
function takeLock(dir: string, path: string, token: string): string {
  const { start, boot } = me();
  const info: LockInfo = { pid: process.pid, start, boot, thread: threadId, token };
  const tmp = join(dir, `.lock-${process.pid}-${token}.tmp`);
  try {
    const fd = openSync(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600);
    try {
      writeFileSync(fd, JSON.stringify(info));
    } catch (err) {
      unlinkQuietlySync(tmp);
      throw err;
    } finally {
      closeSync(fd);
    }
  } catch (err) {
    // Creating this file is the proof that the folder can be used.
    throw invalidPath(path, 'cannot create files in it', err);
  }
  try {
    for (let attempt = 0; attempt < 100; attempt++) {
      const generations = lockGenerations(dir);
      const newest = generations[0];
      if (newest !== undefined) {
        const holder = readLock(join(dir, `.lock.${newest}`));
        if (holder !== undefined && holds(holder)) throw folderInUse(path, holder);
      }
      const generation = (newest ?? 0) + 1;
      const file = join(dir, `.lock.${generation}`);
      try {
        linkSync(tmp, file);
      } catch (err) {
        if (errCode(err) === 'EEXIST') continue;
        throw invalidPath(path, 'cannot create files in it', err);
      }
      if ((lockGenerations(dir)[0] ?? 0) > generation) {
        unlinkQuietlySync(file);
        continue;
      }
      // Older generations are stale: their processes are gone or lost a race.
      for (const old of generations) unlinkQuietlySync(join(dir, `.lock.${old}`));
      for (const name of readdirSync(dir)) {
        const m = LOCK_TMP_RE.exec(name);
        if (m !== null && Number(m[1]) !== process.pid && !alive(Number(m[1]))) unlinkQuietlySync(join(dir, name));
      }
      HELD.set(file, token);
      if (!exitHook) {
        exitHook = true;
        process.on('exit', () => {
          for (const [held, owner] of HELD) releaseLock(held, owner);
        });
      }
      return file;
    }
    throw new StorageError(`could not lock session folder ${path}: too many processes are starting on it at once`, { code: 'EFOLDERINUSE' });
  } finally {
    unlinkQuietlySync(tmp);
  }
}

/** Deletes a lock file if it is still the one of instance `token`. */
function releaseLock(file: string, token: string): void {
  HELD.delete(file);
  if (readLock(file)?.token === token) unlinkQuietlySync(file);
}

function folderInUse(path: string, holder: LockInfo): StorageError {
  const who = holder.pid === process.pid ? `another FileStorage of this process (pid ${holder.pid}); close it first` : `process ${holder.pid}`;
  return new StorageError(
    `session folder ${path} is in use by ${who}. One process owns a folder: give each process its own path; several processes need a shared storage such as RedisStorage`,
    { code: 'EFOLDERINUSE' },
  );
}

function unlinkQuietlySync(file: string): void {
  try {
    unlinkSync(file);
  } catch {
    // Gone already, or not ours to delete.
  }
}

// ---------------------------------------------------------------------------------------------

/**
 * Memory + file session storage, the server's default. One process owns a folder: a second
 * process, or a second open instance in this one, is refused with a `StorageError` of code
 * `'EFOLDERINUSE'`; a lock left by a process that died is taken over. Several processes need a
 * storage they can share (Redis, a database).
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
  /** The lock file this instance holds. */
  #lock: string;
  #seq = 0;
  /** The longest life a session gets from its last use (see {@link FileStorage.configure}). */
  #maxAgeMs = MAX_AGE_MS;
  /** The largest session, as bytes of JSON (see {@link FileStorage.configure}). */
  #maxSize = DEFAULT_MAX_SIZE;
  /** Per file: the operation running and the newest one waiting (older ones are coalesced away). */
  readonly #queues = new Map<string, Queue>();
  /** Batched life extensions, by hash: the expiry to write at the next flush. */
  readonly #touches = new Map<string, number>();
  /** Reads of files under way, by id, so two requests of one session read its file once. */
  readonly #loading = new Map<string, Promise<Entry | undefined>>();
  /** Ids removed while their file was being read: that read must not put them back in memory. */
  readonly #removedWhileLoading = new Set<string>();
  /** Shard folders checked (real folders of ours, 0700) by this instance. */
  readonly #shards = new Set<string>();
  /** Checks of shard folders under way, so that one shard is checked (and set aside) once at a time. */
  readonly #shardChecks = new Map<string, Promise<boolean>>();
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
    this.#openFolder(insecureFolder);
    this.#lock = takeLock(this.path, this.path, this.#token);
    LIVE.add(this.#token);
    this.#writer = writerThreads > 0 ? new Writer(writerThreads, fsCalls.writerHooks) : undefined;
    this.#cache = new ExpiringCache<string, Entry>({ ttl: '24h', max: maxInMemory, now });
    this.#startup = this.#removeOrphans().catch((err: unknown) => this.#report('could not clean orphaned temporary files', err));
    const flush = setInterval(() => void this.flush().catch((err: unknown) => this.#report('could not extend session lifetimes', err)), ttlUpdateMs);
    const sweep = setInterval(() => void this.sweep().catch((err: unknown) => this.#report('the sweep failed', err)), sweepMs);
    flush.unref();
    sweep.unref();
    this.#timers.push(flush, sweep);
  }

  /**
   * Receives the server's settings (see {@link StorageSettings}): sessions never get a longer life
   * than `maxAgeMs` from their last use (an expiry read from a file further ahead is cut to it),
   * `set` refuses a session over `maxSize` bytes, and a file bigger than any session of that size
   * is set aside unread. Until it is called: 400 days and 1 MiB.
   * @throws TypeError naming the setting when `maxAgeMs` is not a number of milliseconds from 1
   *   to 400 days, or `maxSize` not a positive integer
   */
  configure(settings: StorageSettings): void {
    const { maxAgeMs, maxSize } = settings;
    if (typeof maxAgeMs !== 'number' || !(maxAgeMs >= 1 && maxAgeMs <= MAX_AGE_MS)) throw new TypeError(`option maxAgeMs is invalid: ${describe(maxAgeMs)} (expected milliseconds from 1 to 400 days)`);
    if (!Number.isSafeInteger(maxSize) || maxSize < 1) throw new TypeError(`option maxSize is invalid: ${describe(maxSize)} (expected a positive integer of bytes)`);
    this.#maxAgeMs = Math.floor(maxAgeMs);
    this.#maxSize = maxSize;
  }

  /** The session: from memory, else from its file; `undefined` when missing, expired or unreadable. */
  async get(id: string): Promise<SessionData | undefined> {
    return (await this.#entry(id))?.data;
  }

  /**
   * Stores the whole session in memory and in its file (a temporary file renamed over it);
   * resolves once the file is in place. The session is serialized once, first: a session over
   * `maxSize` rejects with a `SessionError` of code `'ESESSIONTOOLARGE'` and changes nothing. On
   * a write failure the previous file is kept and the memory copy dropped, so the next read sees
   * what the file holds. The life is at most `maxAgeMs`.
   */
  async set(id: string, data: SessionData, ttlMs: number): Promise<void> {
    const json = JSON.stringify(data) as string | undefined;
    if (typeof json !== 'string') throw new TypeError(`session data is invalid: ${describe(data)} (expected an object)`);
    const size = Buffer.byteLength(json);
    if (size > this.#maxSize) throw sessionTooLarge(size, this.#maxSize);
    const ttl = Math.min(ttlMs, this.#maxAgeMs);
    const hash = this.#cache.peek(id)?.hash ?? hashId(id);
    const entry: Entry = { data, hash };
    this.#cache.set(id, entry, ttl);
    const expiresAt = this.#now() + ttl;
    this.#touches.delete(hash);
    try {
      await this.#enqueue(hash, { kind: 'write', json, expiresAt });
    } catch (err) {
      const code = errCode(err);
      if ((err as { inPlace?: unknown }).inPlace === true) {
        throw new StorageError(`could not sync the folder of a session file${code === undefined ? '' : ` (${code})`}; the new version is in place but may not survive a power loss`, { cause: err });
      }
      if (this.#cache.peek(id) === entry) this.#cache.delete(id);
      // The folder could not be made again (or locked again): that error says why.
      if (err instanceof StorageError) throw err;
      throw new StorageError(`could not write a session file${code === undefined ? '' : ` (${code})`}; the previous version is kept`, { cause: err });
    }
  }

  /**
   * Extends the session's life in memory at once, and in its file at the next batch. A session
   * not in memory is read first, so that an expired or unknown one is never extended. The life
   * is at most `maxAgeMs`. Resolves `false` when the session does not exist (nothing extended).
   */
  async touch(id: string, ttlMs: number): Promise<boolean> {
    const entry = await this.#entry(id);
    const ttl = Math.min(ttlMs, this.#maxAgeMs);
    if (entry === undefined || !this.#cache.touch(id, ttl)) return false;
    this.#touches.set(entry.hash, this.#now() + ttl);
    return true;
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
   * Deletes expired session files and orphaned temporary files now, and sets aside what is not a
   * session file (the timer does it every `sweepInterval`). Resolves to the number of session
   * files deleted.
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
    await Promise.all([...this.#queues.keys()].map((hash) => this.#settled(hash)));
    await this.#writer?.close();
    this.#cache.close();
    LIVE.delete(this.#token);
    releaseLock(this.#lock, this.#token);
  }

  /** Makes the folder if needed and checks it is ours and private; throws a `TypeError` naming `path` otherwise (unless 'warn'). */
  #openFolder(mode: 'throw' | 'warn'): void {
    makeFolder(this.path);
    let st: Stats;
    try {
      st = lstatSync(this.path);
    } catch (err) {
      throw invalidPath(this.path, 'cannot reach it', err);
    }
    if (!st.isSymbolicLink() && !st.isDirectory()) throw invalidPath(this.path, 'is not a folder');
    const problems = folderProblems(st);
    if (problems.length === 0) return;
    const message = `session folder ${this.path} ${problems.join(' and ')}`;
    if (mode === 'throw') throw new TypeError(`option path is invalid: ${message}; use a private folder (chmod 700) or insecureFolder: 'warn'`);
    this.#onError(new StorageError(message, { code: 'EINSECURE' }));
    if (!st.isSymbolicLink() && st.uid === UID) {
      try {
        chmodSync(this.path, 0o700);
      } catch {
        // Reported above already; the folder stays as it is.
      }
    }
  }

  /** The folder was removed behind this instance's back: made again, checked, and locked again. */
  #reopenFolder(): void {
    try {
      this.#openFolder('throw');
      this.#lock = takeLock(this.path, this.path, this.#token);
    } catch (err) {
      if (err instanceof StorageError) throw err;
      throw new StorageError(`could not make the session folder again: ${(err as Error).message}`, { cause: err, code: errCode((err as Error).cause) ?? 'ESTORAGE' });
    }
  }

  #file(hash: string): string {
    return join(this.path, hash.slice(0, 2), hash);
  }

  /**
   * Whether the shard folder `shard` exists and can be trusted: a real folder (not a link), ours,
   * mode 0700. Checked once per instance (and once at a time); a bad one is set aside (renamed
   * `<xx>.<random>.bad`), reported, and reads as missing.
   */
  #verifyShard(shard: string): Promise<boolean> {
    if (this.#shards.has(shard)) return Promise.resolve(true);
    let check = this.#shardChecks.get(shard);
    if (check === undefined) {
      check = this.#checkShard(shard).finally(() => this.#shardChecks.delete(shard));
      this.#shardChecks.set(shard, check);
    }
    return check;
  }

  async #checkShard(shard: string): Promise<boolean> {
    const dir = join(this.path, shard);
    let st: Stats;
    try {
      st = await lstat(dir);
    } catch (err) {
      if (errCode(err) === 'ENOENT') return false;
      throw err;
    }
    const problems = folderProblems(st);
    if (problems.length === 0) {
      this.#shards.add(shard);
      return true;
    }
    const aside = `${shard}.${randomBytes(4).toString('hex')}.bad`;
    try {
      await fsCalls.rename(dir, join(this.path, aside));
    } catch (err) {
      if (errCode(err) === 'ENOENT') return false;
      throw err;
    }
    this.#report(`shard folder ${shard} ${problems.join(' and ')}; it was set aside as ${aside} and is not used`, undefined, 'EINSECURE');
    return false;
  }

  /** Makes sure the shard folder of `hash` exists and can be trusted, creating it 0700 if needed. */
  async #makeShard(hash: string): Promise<void> {
    const shard = hash.slice(0, 2);
    for (let attempt = 0; attempt < 3; attempt++) {
      if (await this.#verifyShard(shard)) return;
      try {
        await mkdir(join(this.path, shard), { mode: 0o700 });
      } catch (err) {
        const code = errCode(err);
        // The whole folder is gone: made again (and locked again) before the next attempt.
        if (code === 'ENOENT') this.#reopenFolder();
        else if (code !== 'EEXIST') throw err;
      }
    }
    if (!(await this.#verifyShard(shard))) throw new StorageError(`could not make a private shard folder ${shard}`);
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
    let parsed: Parsed | string | undefined;
    try {
      parsed = (await this.#verifyShard(hash.slice(0, 2))) ? await this.#read(this.#file(hash)) : undefined;
    } catch (err) {
      const code = errCode(err);
      throw new StorageError(`could not read a session file${code === undefined ? '' : ` (${code})`}`, { cause: err });
    }
    if (typeof parsed === 'string') await this.#setAside(hash);
    // Another request may have written the session while this one read the file: memory wins.
    const current = this.#cache.peek(id);
    if (current !== undefined) return current;
    if (parsed === undefined || typeof parsed === 'string') return undefined;
    const now = this.#now();
    let expiresAt = Math.max(parsed.expiresAt, renewed, this.#touches.get(hash) ?? 0);
    if (expiresAt > now + this.#maxAgeMs) {
      // Written under a longer max age than today's: cut, and the header with it at the next flush.
      expiresAt = now + this.#maxAgeMs;
      this.#touches.set(hash, expiresAt);
    }
    const ttl = expiresAt - now;
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

  /**
   * Reads a session file: its expiry and data; why it is not a session file (a string); or
   * `undefined` when missing. Rejects on an I/O error. Never follows a link, never waits on a
   * FIFO or device, never reads what is not a regular file of ours or is bigger than any session.
   */
  async #read(file: string): Promise<Parsed | string | undefined> {
    let fh: FileHandle;
    try {
      fh = await fsCalls.open(file, READ_FLAGS);
    } catch (err) {
      if (errCode(err) === 'ENOENT') return undefined;
      const why = await whatIsAt(file);
      if (why === undefined) throw err;
      return why;
    }
    try {
      const st = await fh.stat();
      if (!st.isFile()) return kindOf(st);
      if (UID !== undefined && st.uid !== UID) return 'belongs to another user';
      if (st.size > HEADER_SIZE + this.#maxSize) return 'is too large';
      const buf = Buffer.allocUnsafe(st.size);
      let n = 0;
      while (n < st.size) {
        const { bytesRead } = await fh.read(buf, n, st.size - n, n);
        if (bytesRead === 0) break;
        n += bytesRead;
      }
      return parseFile(buf.subarray(0, n), this.#now());
    } finally {
      await fh.close().catch(() => undefined);
    }
  }

  /**
   * The expiry in a file's header, reading 21 bytes only; why it is not a session file (a
   * string); or `undefined` when missing or unreadable.
   */
  async #peekExpiry(file: string): Promise<number | string | undefined> {
    let fh: FileHandle;
    try {
      fh = await fsCalls.open(file, READ_FLAGS);
    } catch (err) {
      return errCode(err) === 'ENOENT' ? undefined : whatIsAt(file);
    }
    try {
      const st = await fh.stat();
      if (!st.isFile()) return kindOf(st);
      const head = Buffer.alloc(HEADER_SIZE);
      const { bytesRead } = await fh.read(head, 0, HEADER_SIZE, 0);
      return parseHeader(head.subarray(0, bytesRead), this.#now());
    } catch {
      return undefined;
    } finally {
      await fh.close().catch(() => undefined);
    }
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
        await this.#write(hash, file, header(op.expiresAt) + op.json);
        return;
      case 'touch':
        await this.#writeHeader(hash, file, op.expiresAt);
        return;
      case 'unlink':
        // A shard folder never checked holds nothing of ours: nothing to delete through it.
        if (await this.#verifyShard(hash.slice(0, 2))) await unlinkQuiet(file);
        return;
      case 'sweep': {
        // Deleted only if still expired: a session renewed or rewritten meanwhile keeps its file.
        const expiresAt = await this.#peekExpiry(file);
        if (typeof expiresAt === 'string') {
          await this.#putAside(hash, file);
        } else if (expiresAt !== undefined && expiresAt <= this.#now() && !this.#touches.has(hash)) {
          await unlinkQuiet(file);
          this.#swept++;
        }
        return;
      }
      case 'setAside':
        await this.#putAside(hash, file);
    }
  }

  /**
   * Renames the file aside (`<hash>.bad`) and reports it once, if it is still not a session file:
   * read again here, in the file's queue, so a good file a write put in place meanwhile is kept.
   */
  async #putAside(hash: string, file: string): Promise<void> {
    let why: string | undefined;
    try {
      const parsed = await this.#read(file);
      why = typeof parsed === 'string' ? parsed : undefined;
    } catch {
      // Unreadable for now (an I/O error): kept, and read again on the next use.
    }
    if (why === undefined) return;
    try {
      await fsCalls.rename(file, `${file}.bad`);
    } catch (err) {
      this.#report('could not set aside an unreadable session file', err);
    }
    this.#report(`a session file ${why}; it reads as no session and was set aside as ${hash.slice(0, 2)}/${hash.slice(0, 12)}….bad`, undefined, 'ECORRUPT');
  }

  /** Writes a temporary file in the same folder and renames it over the session's file. */
  async #write(hash: string, file: string, content: string): Promise<void> {
    const shard = hash.slice(0, 2);
    // A second attempt when the folder was removed behind our back (a tmp cleaner, say).
    for (let attempt = 1; ; attempt++) {
      await this.#makeShard(hash);
      const tmp = `${file}.${process.pid}-${this.#token}-${this.#seq++}.tmp`;
      try {
        if (this.#writer !== undefined) await this.#writer.write(tmp, file, content, this.#fsync, Number.parseInt(shard, 16));
        else await writeAtomic(fsCalls.io, tmp, file, content, this.#fsync);
        return;
      } catch (err) {
        if (errCode(err) !== 'ENOENT' || attempt === 2) throw err;
        this.#shards.delete(shard);
      }
    }
  }

  /**
   * Rewrites the expiry digits in place, to a later expiry, or to `expiresAt` when the header
   * promises more than `maxAgeMs` from now. Never creates a file, never follows a link, never
   * waits; a file that is not a session file is set aside instead.
   */
  async #writeHeader(hash: string, file: string, expiresAt: number): Promise<void> {
    if (!(await this.#verifyShard(hash.slice(0, 2)))) return;
    let fh: FileHandle;
    try {
      fh = await fsCalls.open(file, REWRITE_FLAGS);
    } catch (err) {
      if (errCode(err) === 'ENOENT') return;
      if ((await whatIsAt(file)) === undefined) throw err;
      await this.#putAside(hash, file);
      return;
    }
    let bad = false;
    try {
      const st = await fh.stat();
      const head = Buffer.alloc(HEADER_SIZE);
      const current = st.isFile() ? parseHeader(head.subarray(0, (await fh.read(head, 0, HEADER_SIZE, 0)).bytesRead), this.#now()) : kindOf(st);
      if (typeof current === 'string') {
        bad = true;
      } else if (current < expiresAt || current > this.#now() + this.#maxAgeMs) {
        const bytes = Buffer.from(header(expiresAt), 'latin1');
        for (let n = 0; n < bytes.length; ) {
          const { bytesWritten } = await fh.write(bytes, n, bytes.length - n, n);
          if (bytesWritten <= 0) throw Object.assign(new Error('a header rewrite made no progress'), { code: 'ESHORTWRITE' });
          n += bytesWritten;
        }
      }
    } finally {
      await fh.close().catch(() => undefined);
    }
    if (bad) await this.#putAside(hash, file);
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

  /** The shard folders in the folder that can be trusted (bad ones are set aside on the way); `undefined` when the folder is gone. */
  async #trustedShards(): Promise<string[] | undefined> {
    let names: string[];
    try {
      names = await readdir(this.path);
    } catch (err) {
      if (errCode(err) === 'ENOENT') return undefined;
      throw err;
    }
    const shards: string[] = [];
    for (const name of names) {
      if (!SHARD_RE.test(name)) continue;
      try {
        if (await this.#verifyShard(name)) shards.push(name);
      } catch (err) {
        this.#report(`could not check shard folder ${name}`, err);
      }
    }
    return shards;
  }

  async #sweep(): Promise<number> {
    await this.flush();
    const before = this.#swept;
    for (const shard of (await this.#trustedShards()) ?? []) {
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
          const expiresAt = await this.#peekExpiry(join(dir, name));
          if (typeof expiresAt === 'string') await this.#setAside(name).catch((err: unknown) => this.#report('could not set aside an unreadable session file', err));
          else if (expiresAt !== undefined && expiresAt <= this.#now()) await this.#enqueue(name, { kind: 'sweep' }).catch((err: unknown) => this.#report('could not delete an expired session file', err));
        } else if (name.endsWith('.tmp')) {
          await this.#removeIfOrphan(join(dir, name), name);
        } else if (name.endsWith('.bad')) {
          const st = await lstat(join(dir, name)).catch(() => undefined);
          if (st !== undefined && !st.isDirectory() && Date.now() - st.mtimeMs > BAD_FILE_AGE_MS) await unlinkQuiet(join(dir, name)).catch(() => undefined);
        }
      });
    }
    return this.#swept - before;
  }

  async #removeOrphans(): Promise<void> {
    for (const shard of (await this.#trustedShards()) ?? []) {
      const dir = join(this.path, shard);
      const names = await readdir(dir).catch(() => [] as string[]);
      await runLimited(names.filter((n) => n.endsWith('.tmp')), SWEEP_CONCURRENCY, (name) => this.#removeIfOrphan(join(dir, name), name));
    }
  }

  /**
   * A temporary file is an orphan when its writer is gone (a dead process, or a closed instance
   * of this one). Looked at with `lstat` and removed with `unlink`: never opened, never followed.
   */
  async #removeIfOrphan(file: string, name: string): Promise<void> {
    const m = TMP_RE.exec(name);
    let orphan: boolean;
    if (m !== null) {
      const pid = Number(m[1]);
      orphan = pid === process.pid ? !LIVE.has(m[2] as string) : !alive(pid);
    } else {
      const st = await lstat(file).catch(() => undefined);
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
