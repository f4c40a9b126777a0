/**
 * The folder of a `FileStorage` and every file in it but the atomic write of a session and the
 * rewrite of its header (lib/storage/file/writer-thread.ts, which `writeHeader` here calls):
 * making and locking the folder, trusting shard and owner index folders only once checked,
 * opening files safely, and clearing orphans.
 *
 * Nothing in the folder is trusted until checked: folders must be real folders of ours, mode 0700
 * (a bad one is set aside, renamed `….bad`); a session file is opened without following a link,
 * without waiting (a FIFO opens at once) and never as a controlling terminal, and `fstat` then
 * tells whether it is a regular file of ours.
 *
 * Layout, under the folder:
 * - `<xx>/<sha256(id)>`: a session's file (`xx`: the hash's first two hex digits), in the format
 *   of lib/storage/file/format.ts; `<…>.<pid>-<token>-<n>.tmp` while it is being written; `<…>.bad`
 *   once set aside.
 * - `owners/<sha256(owner)>/<sha256(id)>`: an empty file per session of an owner, the owner index.
 *   Only names count: a marker is created exclusively and deleted, never opened to read.
 * - `.lock.<n>`: the lock (see {@link takeLock}).
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  type Stats,
  chmodSync,
  close as closeCb,
  closeSync,
  constants as fsc,
  fstatSync,
  fstat as fstatCb,
  fsync as fsyncCb,
  linkSync,
  lstatSync,
  mkdirSync,
  open as openCb,
  openSync,
  read as readCb,
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
import { type FileHandle, lstat, mkdir, open, readdir, rename, rmdir, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { threadId } from 'node:worker_threads';
import { describe } from '../../duration.js';
import { StorageError, asError, errCode } from '../../errors.js';
import { DAY_MS, HEADER_SIZE, type Parsed, parseFile, parseHeader } from './format.js';
import { type HeaderOutcome, type WriteIo, rewriteHeader } from './writer-thread.js';
import type { Writer, WriterHooks } from './writer.js';

/** The write calls of Node's thread pool path (`writerThreads: 0`), as promises. */
const poolIo: WriteIo = {
  open: (path, flags, mode) => new Promise((res, rej) => openCb(path, flags, mode, (e, fd) => (e === null ? res(fd) : rej(e)))),
  stat: (fd) => new Promise((res, rej) => fstatCb(fd, (e, st) => (e === null ? res(st) : rej(e)))),
  read: (fd, buffer, offset, length, position) => new Promise((res, rej) => readCb(fd, buffer, offset, length, position, (e, n) => (e === null ? res(n) : rej(e)))),
  write: (fd, buffer, offset, length, position) => new Promise((res, rej) => writeCb(fd, buffer, offset, length, position ?? null, (e, n) => (e === null ? res(n) : rej(e)))),
  fsync: (fd) => new Promise((res, rej) => fsyncCb(fd, (e) => (e === null ? res() : rej(e)))),
  close: (fd) => new Promise((res, rej) => closeCb(fd, (e) => (e === null ? res() : rej(e)))),
  rename: (from, to) => new Promise((res, rej) => renameCb(from, to, (e) => (e === null ? res() : rej(e)))),
  unlink: (path) => new Promise((res, rej) => unlinkCb(path, (e) => (e === null ? res() : rej(e)))),
};

/**
 * @internal The file-system calls tests make fail or wait, which `chmod` cannot do for root:
 * `open` (reads and owner index markers) and `rename` (set-asides) of `fs/promises`, `io` (every
 * call of a write or a header rewrite through Node's thread pool), and `writerHooks`,
 * which storages created while it is set hand to their writer threads (see {@link WriterHooks}).
 * Not exported by the package's entry point.
 */
export const fsCalls: { open: typeof open; rename: typeof rename; io: WriteIo; writerHooks: WriterHooks | undefined } = {
  open,
  rename,
  io: poolIo,
  writerHooks: undefined,
};

/** A session file's name: the SHA-256 of its id, in hex. Also the name of an owner index folder and of a marker. */
export const HASH_RE = /^[0-9a-f]{64}$/;
/** A shard folder's name: two hex digits. */
export const SHARD_RE = /^[0-9a-f]{2}$/;
/** A temporary file of a write: `<hash>.<pid>-<token>-<n>.tmp`. */
const TMP_RE = /^[0-9a-f]{64}\.(\d+)-([0-9a-f]+)-\d+\.tmp$/;
const LOCK_RE = /^\.lock\.(\d{1,15})$/;
const LOCK_TMP_RE = /^\.lock-(\d+)-([0-9a-f]+)\.tmp$/;
/** The owner index folder, under the storage's folder. */
export const OWNERS = 'owners';
/** Tokens of the FileStorage instances alive in this process: their temporary files are not orphans, their locks are held. */
const LIVE = new Set<string>();
/** A set-aside file older than this is deleted by the sweep. */
const BAD_FILE_AGE_MS = 7 * DAY_MS;
/** A temporary file of an unknown writer older than this is an orphan. */
const FOREIGN_TMP_AGE_MS = 3_600_000;
/** How many files are worked on at once by a walk over a folder. */
export const CONCURRENCY = 16;
/** How many folders `path` may need created: more is not a path anyone means. */
const MAX_NEW_FOLDERS = 64;
/**
 * Opens a session file to read it: never through a link, never waiting (a FIFO opens at once),
 * never as a controlling terminal. `fstat` then tells whether it is a regular file.
 */
const READ_FLAGS = fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK | fsc.O_NOCTTY;
/** Creates an owner index marker: only if nothing is at its name, so never through a link nor into a FIFO. */
const MARK_FLAGS = fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW | fsc.O_NONBLOCK | fsc.O_NOCTTY;
/** This process's user, to check that folders and files are ours; `undefined` where there are no uids. */
const UID = process.getuid?.();

/** The SHA-256 of a string, in hex: a session's file name from its id, an owner's folder name from the owner. */
export function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
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
 * The default folder: private to this user and this program (see `FileStorageOptions.path`).
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
  const hash = sha256(entry).slice(0, 8);
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

/** Deletes a file, never following a link; `false` when it was not there. */
export async function unlinkQuiet(file: string): Promise<boolean> {
  try {
    await unlink(file);
    return true;
  } catch (err) {
    if (errCode(err) !== 'ENOENT') throw err;
    return false;
  }
}

/** Runs `fn` over `items`, at most `limit` at once. */
export async function runLimited<I>(items: readonly I[], limit: number, fn: (item: I) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++] as I;
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
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
// The folder

/** Options of a {@link Folder}. */
export interface FolderOptions {
  /** The folder; created 0700 with its missing parents. */
  readonly path: string;
  /** The instance that holds the folder's lock (its temporary files carry it too). */
  readonly token: string;
  /** What to do with a folder open to others or another user's: see `FileStorageOptions.insecureFolder`. */
  readonly insecureFolder: 'throw' | 'warn';
  /** The clock, in milliseconds, against which expiry times in headers are judged. */
  readonly now: () => number;
  /** Receives the warning of an insecure folder with `insecureFolder: 'warn'`, at construction. */
  readonly onError: (error: Error) => void;
  /** Receives problems that do not fail a call (a file set aside, a folder set aside). */
  readonly report: (message: string, cause: unknown, code?: string) => void;
}

/**
 * A storage's folder, opened (created 0700) and locked for one instance: every file operation
 * but the atomic write of a session. Subfolders (`rel`, a path relative to the folder with `/`
 * separators: a shard `ab`, `owners`, `owners/<hash>`) are trusted once checked, by this
 * instance, once at a time.
 */
export class Folder {
  /** The folder. */
  readonly path: string;
  readonly #token: string;
  readonly #now: () => number;
  readonly #onError: (error: Error) => void;
  readonly #report: (message: string, cause: unknown, code?: string) => void;
  /** The lock file this instance holds. */
  #lock: string;
  /** Subfolders checked (real folders of ours, 0700) by this instance. */
  readonly #trusted = new Set<string>();
  /** Checks of subfolders under way, so that one is checked (and set aside) once at a time. */
  readonly #checks = new Map<string, Promise<boolean>>();

  /**
   * Makes the folder if needed, checks it is ours and private, and takes its lock.
   * @throws TypeError naming `path` when it cannot be made or used (see `FileStorageOptions`)
   * @throws StorageError with code `'EFOLDERINUSE'` when another process or instance holds it
   */
  constructor(options: FolderOptions) {
    this.path = options.path;
    this.#token = options.token;
    this.#now = options.now;
    this.#onError = options.onError;
    this.#report = options.report;
    this.#open(options.insecureFolder);
    this.#lock = takeLock(this.path, this.path, this.#token);
    LIVE.add(this.#token);
  }

  /** Releases the lock: the instance's temporary files are orphans from now on. */
  release(): void {
    LIVE.delete(this.#token);
    releaseLock(this.#lock, this.#token);
  }

  /** The path of the session file named `hash`. */
  file(hash: string): string {
    return join(this.path, hash.slice(0, 2), hash);
  }

  /**
   * Whether the subfolder `rel` exists and can be trusted: a real folder (not a link), ours, mode
   * 0700, inside a trusted parent. Checked once per instance (and once at a time); a bad one is
   * set aside (renamed `<name>.<random>.bad`), reported, and reads as missing.
   */
  verify(rel: string): Promise<boolean> {
    if (this.#trusted.has(rel)) return Promise.resolve(true);
    let check = this.#checks.get(rel);
    if (check === undefined) {
      check = this.#check(rel).finally(() => this.#checks.delete(rel));
      this.#checks.set(rel, check);
    }
    return check;
  }

  /** Whether the subfolder `rel` is known to be trusted already (no check is started). */
  trusts(rel: string): boolean {
    return this.#trusted.has(rel);
  }

  /** Forgets that `rel` was trusted (it was removed behind this instance's back, or by the sweep). */
  forget(rel: string): void {
    this.#trusted.delete(rel);
  }

  /** Makes sure the subfolder `rel` (and its parents) exists and can be trusted, creating it 0700 if needed. */
  async make(rel: string): Promise<void> {
    const slash = rel.lastIndexOf('/');
    for (let attempt = 0; attempt < 3; attempt++) {
      if (await this.verify(rel)) return;
      if (slash !== -1) await this.make(rel.slice(0, slash));
      try {
        await mkdir(join(this.path, rel), { mode: 0o700 });
      } catch (err) {
        const code = errCode(err);
        if (code === 'ENOENT') {
          // The parent is gone: the whole folder (made again, and locked again), or a subfolder.
          if (slash === -1) this.#reopen();
          else this.forget(rel.slice(0, slash));
        } else if (code !== 'EEXIST') {
          throw err;
        }
      }
    }
    if (!(await this.verify(rel))) throw new StorageError(`could not make a private ${what(rel)}`);
  }

  /**
   * Reads the session file named `hash` (see {@link Folder.read}); `undefined` when its shard
   * folder is missing or cannot be trusted.
   */
  async readSession(hash: string, maxSize: number): Promise<Parsed | string | undefined> {
    return (await this.verify(hash.slice(0, 2))) ? this.read(this.file(hash), maxSize) : undefined;
  }

  /**
   * Reads a session file: its expiry and data; why it is not a session file (a string); or
   * `undefined` when missing. Rejects on an I/O error. Never follows a link, never waits on a
   * FIFO or device, never reads what is not a regular file of ours or is bigger than a session
   * of `maxSize` bytes.
   */
  async read(file: string, maxSize: number): Promise<Parsed | string | undefined> {
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
      if (st.size > HEADER_SIZE + maxSize) return 'is too large';
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
  async peekExpiry(file: string): Promise<number | string | undefined> {
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

  /** Whether anything is at the name of the session file `hash` (looked at with `lstat`: never followed). */
  async sessionExists(hash: string): Promise<boolean> {
    if (!(await this.verify(hash.slice(0, 2)))) return false;
    try {
      await lstat(this.file(hash));
      return true;
    } catch (err) {
      if (errCode(err) === 'ENOENT') return false;
      throw err;
    }
  }

  /** Deletes the session file `hash`; `false` when it was not there. A shard folder never checked holds nothing of ours to delete. */
  async unlinkSession(hash: string): Promise<boolean> {
    return (await this.verify(hash.slice(0, 2))) ? unlinkQuiet(this.file(hash)) : false;
  }

  /**
   * Rewrites the expiry digits in place, to a later expiry, or to `expiresAt` when the header
   * promises more than `maxAgeMs` from now: on `writer`'s first thread, or on Node's thread pool
   * without one (see `rewriteHeader`). Never creates a file, never follows a link, never waits;
   * a file that is not a session file is set aside instead.
   */
  async writeHeader(hash: string, expiresAt: number, maxAgeMs: number, maxSize: number, writer: Writer | undefined): Promise<void> {
    const shard = hash.slice(0, 2);
    if (!(await this.verify(shard))) return;
    const file = this.file(hash);
    const now = this.#now();
    let outcome: HeaderOutcome | Error;
    try {
      outcome = writer === undefined ? await rewriteHeader(fsCalls.io, file, expiresAt, maxAgeMs, now) : ((await writer.headers([file], [expiresAt], maxAgeMs, now))[0] as HeaderOutcome | Error);
    } catch (err) {
      outcome = asError(err);
    }
    await this.settleHeader(hash, outcome, maxSize);
  }

  /**
   * What follows a header rewrite of the session file `hash` that found `outcome` (run in the
   * file's queue, or while a batch of renewals holds the file): a file that is not a session
   * file is set aside; a failure is set aside too when what is at the name is why (a folder:
   * EISDIR; a link: ELOOP; anything but a regular file, which putAside reads again first), else
   * it rejects with it.
   */
  async settleHeader(hash: string, outcome: HeaderOutcome | Error, maxSize: number): Promise<void> {
    if (outcome instanceof Error) {
      if ((await whatIsAt(this.file(hash))) === undefined) throw outcome;
    } else if (outcome !== 'not a session') {
      return;
    }
    await this.putAside(hash, maxSize);
  }

  /**
   * Renames the session file `hash` aside (`<hash>.bad`) and reports it once, if it is still not
   * a session file: read again here, so a good file a write put in place meanwhile is kept (the
   * caller runs this in the file's queue).
   */
  async putAside(hash: string, maxSize: number): Promise<void> {
    const file = this.file(hash);
    let why: string | undefined;
    try {
      const parsed = await this.read(file, maxSize);
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

  /** The shard folders that can be trusted (bad ones are set aside on the way); `undefined` when the folder is gone. */
  async shards(): Promise<string[] | undefined> {
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
        if (await this.verify(name)) shards.push(name);
      } catch (err) {
        this.#report(`could not check shard folder ${name}`, err);
      }
    }
    return shards;
  }

  /** The names in the subfolder `rel` (which the caller trusts); rejects when it cannot be read. */
  names(rel: string): Promise<string[]> {
    return readdir(join(this.path, rel));
  }

  // -------------------------------------------------------------------------------------------
  // The owner index

  /**
   * Marks the session `hash` as one of the owner hashed as `ownerHash`: creates the empty file
   * `owners/<ownerHash>/<hash>` (and its folders, 0700) unless something is at that name already.
   */
  async mark(ownerHash: string, hash: string): Promise<void> {
    const rel = `${OWNERS}/${ownerHash}`;
    for (let attempt = 1; ; attempt++) {
      await this.make(rel);
      try {
        const fh = await fsCalls.open(join(this.path, rel, hash), MARK_FLAGS, 0o600);
        await fh.close();
        return;
      } catch (err) {
        const code = errCode(err);
        // Only the name counts, and whatever holds it is never opened: marked already.
        if (code === 'EEXIST') return;
        if (code !== 'ENOENT' || attempt === 3) throw err;
        // The sweep removed the owner's empty folder meanwhile: made again.
        this.forget(rel);
      }
    }
  }

  /** Deletes the marker of the session `hash` for the owner hashed as `ownerHash`; `false` when it was not there. */
  async unmark(ownerHash: string, hash: string): Promise<boolean> {
    const rel = `${OWNERS}/${ownerHash}`;
    return (await this.verify(rel)) ? unlinkQuiet(join(this.path, rel, hash)) : false;
  }

  /** The hashes of the sessions marked for the owner hashed as `ownerHash` (none when its folder is missing or cannot be trusted). */
  async markers(ownerHash: string): Promise<string[]> {
    const rel = `${OWNERS}/${ownerHash}`;
    if (!(await this.verify(rel))) return [];
    try {
      return (await this.names(rel)).filter((name) => HASH_RE.test(name));
    } catch (err) {
      if (errCode(err) === 'ENOENT') return [];
      throw err;
    }
  }

  /** The owner hashes of the owner index folders that can be trusted (bad ones are set aside on the way). */
  async owners(): Promise<string[]> {
    if (!(await this.verify(OWNERS))) return [];
    let names: string[];
    try {
      names = await this.names(OWNERS);
    } catch (err) {
      if (errCode(err) === 'ENOENT') return [];
      throw err;
    }
    const owners: string[] = [];
    for (const name of names) {
      if (HASH_RE.test(name) && (await this.verify(`${OWNERS}/${name}`))) owners.push(name);
    }
    return owners;
  }

  /** Removes the owner index folder of `ownerHash` if it is empty. */
  async removeOwnerFolder(ownerHash: string): Promise<void> {
    const rel = `${OWNERS}/${ownerHash}`;
    try {
      await rmdir(join(this.path, rel));
      this.forget(rel);
    } catch (err) {
      // Not empty (a marker was made meanwhile), or gone: nothing to do.
      if (!['ENOTEMPTY', 'EEXIST', 'ENOENT'].includes(errCode(err) ?? '')) throw err;
    }
  }

  // -------------------------------------------------------------------------------------------
  // Orphans

  /** Removes the orphaned temporary files of every trusted shard folder. */
  async removeOrphans(): Promise<void> {
    for (const shard of (await this.shards()) ?? []) {
      const dir = join(this.path, shard);
      const names = await readdir(dir).catch(() => [] as string[]);
      await runLimited(names.filter((n) => n.endsWith('.tmp')), CONCURRENCY, (name) => this.removeIfOrphan(join(dir, name), name));
    }
  }

  /**
   * A temporary file is an orphan when its writer is gone (a dead process, or a closed instance
   * of this one). Looked at with `lstat` and removed with `unlink`: never opened, never followed.
   */
  async removeIfOrphan(file: string, name: string): Promise<void> {
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

  /** Deletes a set-aside file (not a folder) older than a week. */
  async removeIfOldBad(file: string): Promise<void> {
    const st = await lstat(file).catch(() => undefined);
    if (st !== undefined && !st.isDirectory() && Date.now() - st.mtimeMs > BAD_FILE_AGE_MS) await unlinkQuiet(file).catch(() => undefined);
  }

  // -------------------------------------------------------------------------------------------

  /** Makes the folder if needed and checks it is ours and private; throws a `TypeError` naming `path` otherwise (unless 'warn'). */
  #open(mode: 'throw' | 'warn'): void {
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
  #reopen(): void {
    try {
      this.#open('throw');
      this.#lock = takeLock(this.path, this.path, this.#token);
    } catch (err) {
      if (err instanceof StorageError) throw err;
      throw new StorageError(`could not make the session folder again: ${(err as Error).message}`, { cause: err, code: errCode((err as Error).cause) ?? 'ESTORAGE' });
    }
  }

  async #check(rel: string): Promise<boolean> {
    const slash = rel.lastIndexOf('/');
    if (slash !== -1 && !(await this.verify(rel.slice(0, slash)))) return false;
    const dir = join(this.path, rel);
    let st: Stats;
    try {
      st = await lstat(dir);
    } catch (err) {
      if (errCode(err) === 'ENOENT') return false;
      throw err;
    }
    const problems = folderProblems(st);
    if (problems.length === 0) {
      this.#trusted.add(rel);
      return true;
    }
    const aside = `${rel}.${randomBytes(4).toString('hex')}.bad`;
    try {
      await fsCalls.rename(dir, join(this.path, aside));
    } catch (err) {
      if (errCode(err) === 'ENOENT') return false;
      throw err;
    }
    this.#report(`${what(rel)} ${problems.join(' and ')}; it was set aside as ${short(aside)} and is not used`, undefined, 'EINSECURE');
    return false;
  }
}

/** What a subfolder is, for a message. */
function what(rel: string): string {
  return rel === OWNERS || rel.startsWith(`${OWNERS}/`) ? `owner index folder ${short(rel)}` : `shard folder ${rel}`;
}

/** A subfolder's name with a hash in it cut to 12 digits: enough to find it, not worth logging whole. */
function short(rel: string): string {
  return rel.replace(/[0-9a-f]{64}/, (h) => `${h.slice(0, 12)}…`);
}
