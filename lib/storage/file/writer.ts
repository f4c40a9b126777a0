/**
 * The writer threads of `FileStorage`: workers that create, write and rename session files, and
 * rewrite their headers on renewal, with synchronous calls, so a write is one message round trip
 * instead of four trips through Node's thread pool (64 header rewrites, instead of five trips
 * each). What is asked of a thread in one turn of the event loop goes as one message, answered
 * by one message. A write that replaces a file spends most of its time in the kernel, and
 * several threads overlap that work; when the kernel's part is small, the saved trips are what
 * counts, and header rewrites go to one thread only. bench/RESULTS.md ("Writer threads") has
 * what they were measured to buy.
 *
 * A thread runs writer-thread.ts (the two routines the thread pool path shares), loaded by a
 * few lines of bootstrap: from `dist/` the compiled `writer-thread.js`; from the TypeScript
 * sources (this project's tests, run under tsx) the `.ts` file, with tsx registered in the
 * thread first, as tsx registers itself in the main thread only on Node 20. (tsx's ESM loader,
 * not its faster CommonJS hook: the thread must compile the module as the main thread does, or a
 * coverage run maps one thread's counts through the other's source map.)
 */
import { Worker } from 'node:worker_threads';
import { type HeaderOutcome, STOP, type ThreadError, type WriteReply, type WriteRequest } from './writer-thread.js';

/**
 * @internal A module a writer thread imports before it serves: its default export is called with
 * the thread's `WriteIo` (which it may wrap) and `data`. Tests inject faults and watch calls
 * there, on the real threads; nothing else uses it.
 */
export interface WriterHooks {
  /** The module's URL. */
  readonly module: string;
  /** Passed to the module's default export; structured-cloned into the thread. */
  readonly data?: unknown;
}

/** Whether this module runs from its TypeScript source rather than from `dist/`. */
const FROM_SOURCE = import.meta.url.endsWith('.ts');
/** The thread's code, next to this module. */
const ENTRY = new URL(FROM_SOURCE ? './writer-thread.ts' : './writer-thread.js', import.meta.url).href;
/** tsx's API, to register it in the thread, when running from the sources. */
const TSX = FROM_SOURCE ? resolveQuietly('tsx/esm/api') : undefined;

function resolveQuietly(specifier: string): string | undefined {
  try {
    return import.meta.resolve(specifier);
  } catch {
    return undefined;
  }
}

/**
 * Loads the thread's module (and the hooks module, if any) and serves. CommonJS, given as a
 * string: nothing to resolve before the thread knows where its module is. An error here fails
 * the thread's writes (`'error'`).
 */
const BOOTSTRAP = `
const { workerData: { entry, tsx, hooks } } = require('node:worker_threads');
(async () => {
  if (tsx !== undefined) (await import(tsx)).register();
  const thread = await import(entry);
  if (hooks !== undefined) (await import(hooks.module)).default(thread.threadIo, hooks.data);
  thread.serve();
})();
`;

interface Pending {
  resolve(outcomes: (HeaderOutcome | ThreadError)[] | undefined): void;
  reject(err: Error): void;
}

/** A request before the lane numbers it (each member of the union without its `id`). */
type Unnumbered<T> = T extends unknown ? Omit<T, 'id'> : never;
type Request = Unnumbered<WriteRequest>;

/**
 * Writes files atomically, and rewrites their headers, on their own threads (`threads` of
 * them, each started on its first call). A file's writes always go to the same thread
 * (`lane`), so two writes of one file are done in the order they were asked; header rewrites all
 * go to the first thread (see {@link Writer.headers}), so a header rewrite and a write of one
 * file may run at once on two threads: the caller waits for one before it asks the other. A
 * thread keeps the process alive only while its requests are pending, or until it has stopped
 * once `close()` asked it to.
 */
export class Writer {
  readonly #lanes: Lane[];

  /**
   * @param threads - how many threads (at least one)
   * @param hooks - @internal see {@link WriterHooks}
   */
  constructor(threads: number, hooks?: WriterHooks) {
    this.#lanes = Array.from({ length: Math.max(1, Math.floor(threads)) }, () => new Lane(hooks));
  }

  /**
   * Creates `tmp` exclusively (0600, never through a link), writes every byte of `content`,
   * optionally `fsync`s it and its folder, and renames it over `file`; on an error before the
   * rename `tmp` is removed and the promise rejects with the file system's `code` (and
   * `inPlace: true` when only the folder's sync failed). `lane` (any non-negative integer) picks
   * the thread: give the same one for the same file.
   */
  write(tmp: string, file: string, content: string, fsync: boolean, lane = 0): Promise<void> {
    // A write's reply carries no outcome: the promise resolves with nothing.
    return this.#lane(lane).ask({ kind: 'write', tmp, file, content, fsync }) as Promise<void>;
  }

  /**
   * Renews the session files `files`, each to its `expiresAt` (same index), with `rewriteHeader`
   * (lib/storage/file/writer-thread.ts), as one request to the first thread, whatever the files:
   * for each, what it found, or an `Error` with the file system's `code` (one failing does not
   * fail the others; one the thread did not answer fails with `'EWRITER'`). Rejects (code
   * `'EWRITER'`) only when the thread fails as a whole.
   *
   * One request for many renewals, run by a synchronous loop in the thread: no promise and no
   * message per header. Spreading renewals over the threads buys nothing (a header rewrite
   * spends little time in the kernel) and costs each thread its own warm-up: a thread's code
   * starts interpreted and is compiled as it runs, and each thread's JIT warms on its own, so
   * that a young process would pay for four cold loops instead of one (bench/RESULTS.md, "What
   * was left for FileStorage's reads"). The caller orders the requests of one file (its queue,
   * or a hold on it), so which thread runs them does not matter.
   */
  async headers(files: string[], expiresAt: number[], maxAgeMs: number, now: number): Promise<(HeaderOutcome | Error)[]> {
    const outcomes = (await this.#lane(0).ask({ kind: 'headers', files, expiresAt, maxAgeMs, now })) ?? [];
    return files.map((_, i) => {
      const o = outcomes[i];
      if (o === undefined) return threadError('the writer thread gave no answer for this renewal', 'EWRITER');
      return typeof o === 'string' ? o : threadError(o.message, o.code);
    });
  }

  #lane(lane: number): Lane {
    return this.#lanes[lane % this.#lanes.length] as Lane;
  }

  /**
   * Stops the threads once they answered the writes already asked (`FileStorage` waits for its
   * own writes before it closes). A write after `close()` starts a thread again.
   */
  async close(): Promise<void> {
    await Promise.all(this.#lanes.map((l) => l.close()));
  }
}

/** A started thread and the writes it has not answered yet: each thread has its own. */
interface Thread {
  worker: Worker;
  pending: Map<number, Pending>;
  exited: Promise<void>;
  /** Asked to stop: it keeps the process alive until it has. */
  stopping: boolean;
  /**
   * What was asked of it in this turn of the event loop, sent as one message at the turn's end:
   * the thread's own, so that nothing asked of a thread started since goes to this one.
   */
  batch: WriteRequest[] | undefined;
}

/** An error as a thread reports it, with the code `node:fs` gave. */
function threadError(message: string, code: string | undefined, inPlace = false): Error {
  const err = new Error(message) as Error & { code?: string; inPlace?: boolean };
  if (code !== undefined) err.code = code;
  if (inPlace) err.inPlace = true;
  return err;
}

/** Sends what was asked of `thread` in this turn, if anything: at the turn's end, or before it is asked to stop. */
function send(thread: Thread): void {
  const { batch } = thread;
  thread.batch = undefined;
  if (batch !== undefined) thread.worker.postMessage(batch);
}

/** One writer thread, started again on the next write after it stopped. */
class Lane {
  readonly #hooks: WriterHooks | undefined;
  #thread: Thread | undefined;
  #seq = 0;

  constructor(hooks: WriterHooks | undefined) {
    this.#hooks = hooks;
  }

  ask(request: Request): Promise<(HeaderOutcome | ThreadError)[] | undefined> {
    const thread = this.#thread ?? this.#start();
    return new Promise((resolve, reject) => {
      const id = this.#seq++;
      if (thread.pending.size === 0) thread.worker.ref();
      thread.pending.set(id, { resolve, reject });
      if (thread.batch === undefined) {
        thread.batch = [];
        setImmediate(send, thread);
      }
      thread.batch.push({ id, ...request } satisfies WriteRequest);
    });
  }

  async close(): Promise<void> {
    const thread = this.#thread;
    this.#thread = undefined;
    if (thread === undefined) return;
    send(thread);
    // Asked, not terminated: the thread answers what it was given, then ends on its own (and a
    // coverage run gets its profile).
    thread.stopping = true;
    thread.worker.ref();
    thread.worker.postMessage(STOP);
    await thread.exited;
  }

  #start(): Thread {
    // execArgv: [] keeps the main thread's loaders and flags out of the thread; tsx, when the
    // sources run, is registered by the bootstrap instead.
    const worker = new Worker(BOOTSTRAP, { eval: true, execArgv: [], workerData: { entry: ENTRY, tsx: TSX, hooks: this.#hooks } });
    let exited!: () => void;
    const thread: Thread = { worker, pending: new Map(), exited: new Promise<void>((resolve) => (exited = resolve)), stopping: false, batch: undefined };
    const { pending } = thread;
    worker.unref();
    worker.on('message', (replies: WriteReply[]) => {
      for (const { id, outcomes, err } of replies) {
        const p = pending.get(id);
        if (p === undefined) continue;
        pending.delete(id);
        if (err === null) p.resolve(outcomes);
        else p.reject(threadError(err.message, err.code, err.inPlace));
      }
      if (pending.size === 0 && !thread.stopping) worker.unref();
    });
    // Fails this thread's writes only: a thread started since has its own.
    const fail = (err: Error): void => {
      if (this.#thread === thread) this.#thread = undefined;
      for (const p of pending.values()) p.reject(err);
      pending.clear();
    };
    worker.on('error', (err) => fail(threadError(`the writer thread failed: ${err.message}`, 'EWRITER')));
    worker.on('exit', (code) => {
      fail(threadError(`the writer thread stopped (exit code ${code})`, 'EWRITER'));
      exited();
    });
    this.#thread = thread;
    return thread;
  }
}
