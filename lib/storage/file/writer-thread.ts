/**
 * The two routines that write session files, shared by `FileStorage`'s writer threads and by
 * Node's thread pool (`writerThreads: 0`):
 *
 * - {@link writeAtomic} writes a whole session: a temporary file created exclusively (mode 0600,
 *   never through a link), every byte written (a short write is continued; a write that makes no
 *   progress fails), optionally `fsync`ed, closed, renamed over the session's file, and with
 *   `fsync` the folder synced too. On an error before the rename the temporary file is removed
 *   and the previous file stays as it was.
 * - {@link rewriteHeader} renews a session: it rewrites the expiry digits of the file's header in
 *   place, never creating a file nor following a link.
 *
 * It is also the code of a writer thread: lib/writer.ts starts a thread that imports this module
 * and calls {@link serve}. The module imports `node:` modules, the pure file format
 * (lib/storage/file/format.ts) and the error helpers only, none with a file system or a state
 * of its own, and does nothing when imported.
 */
import { closeSync, constants as fsc, fstatSync, fsyncSync, openSync, readSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { type MessagePort, parentPort } from 'node:worker_threads';
import { errCode } from '../../errors.js';
import { HEADER_SIZE, header, parseHeader } from './format.js';

/** A value, or a promise of one: a thread's calls are synchronous, the thread pool's are not. */
export type MaybePromise<T> = T | Promise<T>;

/**
 * The file-system calls {@link writeAtomic} and {@link rewriteHeader} make, with the signatures
 * of `node:fs`'s synchronous functions (`write` at `position`, or from the file's current
 * position without one). Tests wrap them to inject faults.
 */
export interface WriteIo {
  open(path: string, flags: number, mode: number): MaybePromise<number>;
  /** What `fstat` says of the open file (whether it is a regular file is all that is asked). */
  stat(fd: number): MaybePromise<{ isFile(): boolean }>;
  read(fd: number, buffer: Uint8Array, offset: number, length: number, position: number): MaybePromise<number>;
  write(fd: number, buffer: Uint8Array, offset: number, length: number, position?: number): MaybePromise<number>;
  fsync(fd: number): MaybePromise<void>;
  close(fd: number): MaybePromise<void>;
  rename(from: string, to: string): MaybePromise<void>;
  unlink(path: string): MaybePromise<void>;
}

/** Creates the temporary file: write only, exclusively (never an existing file), never through a link. */
export const CREATE_FLAGS = fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW;
/** Opens a folder to sync it: it must be a folder, and not a link to one. */
export const FOLDER_FLAGS = fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW;
/** Opens a session file to rewrite its header: never created, never through a link, never waiting (a FIFO), never a terminal. */
export const REWRITE_FLAGS = fsc.O_RDWR | fsc.O_NOFOLLOW | fsc.O_NONBLOCK | fsc.O_NOCTTY;

/**
 * The error of a write whose file is in place but whose folder could not be synced: the new
 * version replaced the previous one, but may not survive a power loss.
 */
export interface InPlaceError extends Error {
  code?: string;
  inPlace: true;
}

/**
 * Writes `content` to `tmp` and renames it over `file`, through `io`. Rejects with the file
 * system's error; before the rename, `tmp` is then removed and `file` is untouched. A failure to
 * sync the folder after the rename rejects with an {@link InPlaceError}.
 */
export async function writeAtomic(io: WriteIo, tmp: string, file: string, content: string, fsync: boolean): Promise<void> {
  const bytes = Buffer.from(content);
  let fd: number | undefined;
  try {
    fd = await io.open(tmp, CREATE_FLAGS, 0o600);
    for (let offset = 0; offset < bytes.length; ) {
      const written = await io.write(fd, bytes, offset, bytes.length - offset);
      // A regular file takes at least one byte or fails; zero would loop forever.
      if (!(written > 0)) throw Object.assign(new Error(`a write made no progress at byte ${offset} of ${bytes.length}`), { code: 'ESHORTWRITE' });
      offset += written;
    }
    if (fsync) await io.fsync(fd);
    const open = fd;
    fd = undefined;
    await io.close(open);
    await io.rename(tmp, file);
  } catch (err) {
    if (fd !== undefined) await settle(() => io.close(fd as number));
    await settle(() => io.unlink(tmp));
    throw err;
  }
  if (!fsync) return;
  try {
    const dir = await io.open(dirname(file), FOLDER_FLAGS, 0);
    try {
      await io.fsync(dir);
    } finally {
      await settle(() => io.close(dir));
    }
  } catch (err) {
    throw Object.assign(new Error(`the folder of a written file could not be synced: ${String((err as Error | null)?.message)}`, { cause: err }), {
      code: errCode(err),
      inPlace: true as const,
    });
  }
}

/**
 * What {@link rewriteHeader} found: the file was renewed (`'written'`), already promised as long
 * (`'kept'`), was not there (`'missing'`), or is not a session file (`'not a session'`: the
 * caller sets it aside).
 */
export type HeaderOutcome = 'written' | 'kept' | 'missing' | 'not a session';

/**
 * Rewrites the expiry digits of the session file `file` in place, through `io`: to `expiresAt`
 * when that is later than the header's, or when the header promises more than `maxAgeMs` from
 * `now`. Never creates a file, never follows a link, never waits on a FIFO; the body is not
 * touched. Fails with the file system's error (an open refused, an `fstat`, read or write that
 * failed), or with code `'ESHORTWRITE'` when a write makes no progress.
 *
 * Synchronous as long as `io` answers synchronously (a writer thread's calls: a batch of
 * renewals then takes no promise and no turn of the thread's event loop per header); a promise
 * from the first call of `io` that returns one (Node's thread pool, or calls a test wrapped)
 * on. It throws or rejects accordingly.
 */
export function rewriteHeader(io: WriteIo, file: string, expiresAt: number, maxAgeMs: number, now: number): MaybePromise<HeaderOutcome> {
  return drive(headerSteps(io, file, expiresAt, maxAgeMs, now));
}

/** {@link rewriteHeader}'s steps: each call of `io` is yielded, and what it answered comes back (see {@link drive}). */
function* headerSteps(io: WriteIo, file: string, expiresAt: number, maxAgeMs: number, now: number): Generator<unknown, HeaderOutcome, unknown> {
  let fd: number;
  try {
    fd = (yield io.open(file, REWRITE_FLAGS, 0)) as number;
  } catch (err) {
    if (errCode(err) === 'ENOENT') return 'missing';
    throw err;
  }
  try {
    if (!((yield io.stat(fd)) as { isFile(): boolean }).isFile()) return 'not a session';
    const head = Buffer.alloc(HEADER_SIZE);
    const current = parseHeader(head.subarray(0, (yield io.read(fd, head, 0, HEADER_SIZE, 0)) as number), now);
    if (typeof current === 'string') return 'not a session';
    if (current >= expiresAt && current <= now + maxAgeMs) return 'kept';
    const bytes = Buffer.from(header(expiresAt), 'latin1');
    for (let at = 0; at < bytes.length; ) {
      const n = (yield io.write(fd, bytes, at, bytes.length - at, at)) as number;
      if (!(n > 0)) throw Object.assign(new Error(`a header rewrite made no progress at byte ${at}`), { code: 'ESHORTWRITE' });
      at += n;
    }
    return 'written';
  } finally {
    try {
      yield io.close(fd);
    } catch {
      // As in settle(): a header written before a close that failed is written.
    }
  }
}

/**
 * Runs `steps` to their end: each value a step yields goes back to it at once, until one is a
 * promise; from there on, each is awaited (a rejection is thrown into the steps, where their
 * `try` sees it). Returns what the steps return, or a promise of it.
 */
function drive<T>(steps: Generator<unknown, T, unknown>): MaybePromise<T> {
  let step = steps.next();
  while (step.done !== true) {
    if (step.value instanceof Promise) return driveAsync(steps, step.value);
    step = steps.next(step.value);
  }
  return step.value;
}

async function driveAsync<T>(steps: Generator<unknown, T, unknown>, first: Promise<unknown>): Promise<T> {
  let pending: unknown = first;
  for (;;) {
    let step: IteratorResult<unknown, T>;
    try {
      step = steps.next(await pending);
    } catch (err) {
      // The awaited call failed (or the steps threw on: then throw() rethrows it, ending them).
      step = steps.throw(err);
    }
    if (step.done === true) return step.value;
    pending = step.value;
  }
}

/** Runs a clean-up call, ignoring its failure: the error that made the clean-up needed is the one reported. */
async function settle(call: () => MaybePromise<void>): Promise<void> {
  try {
    await call();
  } catch {
    // Nothing better to do: a temporary file left is an orphan the sweep removes, and a header
    // written before a close that failed is written.
  }
}

/** The synchronous calls of a writer thread: each blocks the thread, never the event loop. */
export const threadIo: WriteIo = {
  open: (path, flags, mode) => openSync(path, flags, mode),
  stat: (fd) => fstatSync(fd),
  read: (fd, buffer, offset, length, position) => readSync(fd, buffer, offset, length, position),
  write: (fd, buffer, offset, length, position) => writeSync(fd, buffer, offset, length, position),
  fsync: (fd) => fsyncSync(fd),
  close: (fd) => closeSync(fd),
  rename: (from, to) => renameSync(from, to),
  unlink: (path) => unlinkSync(path),
};

/**
 * One request to a thread, which gets them in batches: a whole file ({@link writeAtomic}), or
 * renewals ({@link rewriteHeader}), the header of `files[i]` to `expiresAt[i]`, one after another.
 */
export type WriteRequest =
  | { id: number; kind: 'write'; tmp: string; file: string; content: string; fsync: boolean }
  | { id: number; kind: 'headers'; files: string[]; expiresAt: number[]; maxAgeMs: number; now: number };

/** A failure as it crosses from a thread: the error's message, its `code`, and whether it is an {@link InPlaceError}. */
export interface ThreadError {
  message: string;
  code: string | undefined;
  inPlace: boolean;
}

/**
 * A thread's answer: `err` is `null` when the request succeeded; a renewals request then has
 * `outcomes`, one per file, what its header rewrite found or how it failed (one failing does
 * not fail the others).
 */
export interface WriteReply {
  id: number;
  outcomes?: (HeaderOutcome | ThreadError)[];
  err: ThreadError | null;
}

/** Asks a thread to stop once the writes before it are answered. */
export const STOP = 'stop';

/**
 * Answers batches of requests on `port` (the thread's parent port) with {@link writeAtomic} or
 * {@link rewriteHeader} over {@link threadIo}, one request at a time and in order, a reply batch
 * per batch, until {@link STOP} arrives.
 */
export function serve(port: MessagePort | null = parentPort): void {
  if (port === null) throw new TypeError('serve() runs in a writer thread');
  port.on('message', (msg: WriteRequest[] | typeof STOP) => {
    if (msg === STOP) {
      // Ends the thread (not the process) even when a loader left a handle open in it.
      port.close();
      process.exit(0);
    }
    void answer(msg).then((replies) => port.postMessage(replies));
  });
}

/** Carries out a batch of requests, one after another, in order: a reply each, never a rejection. */
async function answer(batch: readonly WriteRequest[]): Promise<WriteReply[]> {
  const replies: WriteReply[] = [];
  for (const msg of batch) {
    if (msg.kind === 'headers') {
      const outcomes: (HeaderOutcome | ThreadError)[] = [];
      for (let i = 0; i < msg.files.length; i++) {
        try {
          // Synchronous on the thread's own calls; a promise only when a test wrapped them.
          const outcome = rewriteHeader(threadIo, msg.files[i] as string, msg.expiresAt[i] as number, msg.maxAgeMs, msg.now);
          outcomes.push(outcome instanceof Promise ? await outcome : outcome);
        } catch (e) {
          outcomes.push(describe(e));
        }
      }
      replies.push({ id: msg.id, outcomes, err: null });
      continue;
    }
    try {
      await writeAtomic(threadIo, msg.tmp, msg.file, msg.content, msg.fsync);
      replies.push({ id: msg.id, err: null });
    } catch (e) {
      replies.push({ id: msg.id, err: describe(e) });
    }
  }
  return replies;
}

/** What a thread sends of an error (an `Error` itself would lose its `code` on the way). */
function describe(e: unknown): ThreadError {
  const { code, message, inPlace } = (e ?? {}) as { code?: unknown; message?: unknown; inPlace?: unknown };
  return { message: String(message), code: typeof code === 'string' ? code : undefined, inPlace: inPlace === true };
}
