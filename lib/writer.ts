/**
 * The writer threads of `FileStorage`: workers that create, write and rename session files with
 * synchronous calls, so a write is one message round trip instead of four trips through Node's
 * thread pool. What they buy, measured on a 2-core ext4 machine (bench/RESULTS.md), with 50 writes
 * in flight over 2 000 files: a write that replaces a file costs about 500 µs of CPU, nearly all
 * in the kernel, so one thread tops out near 2 000 writes/s; two threads reach about 2 800/s and
 * four about 3 400/s, as Node's pool of four does through `fs/promises`, at the same or less CPU
 * per write. When the kernel's part is small (the same machine at other times: 8 500 writes/s),
 * the saved trips are what counts: 102 µs of CPU a write against 205 through the pool. Through
 * HTTP, with the load generator on the same cores, four threads served 2 700-3 300 writes/s
 * against 1 900-2 000 for one.
 */
import { Worker } from 'node:worker_threads';

/**
 * The thread's code: plain CommonJS given as a string, so it runs the same from `dist/` and from
 * the TypeScript sources, and loads no loader. It answers every message once: `err` is `null`
 * when the file is in place.
 */
const SOURCE = `
const { parentPort } = require('node:worker_threads');
const fs = require('node:fs');
const FLAGS = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW;
parentPort.on('message', ({ id, tmp, file, content, fsync }) => {
  let fd;
  try {
    fd = fs.openSync(tmp, FLAGS, 0o600);
    fs.writeSync(fd, content);
    if (fsync) fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(tmp, file);
    if (fsync) {
      const dir = fs.openSync(require('node:path').dirname(file), 'r');
      try { fs.fsyncSync(dir); } finally { fs.closeSync(dir); }
    }
    parentPort.postMessage({ id, err: null });
  } catch (e) {
    try { if (fd !== undefined) fs.closeSync(fd); } catch {}
    try { fs.unlinkSync(tmp); } catch {}
    parentPort.postMessage({ id, err: { code: typeof e.code === 'string' ? e.code : undefined, message: String(e.message) } });
  }
});
`;

interface Pending {
  resolve(): void;
  reject(err: Error): void;
}

/** An error as the thread reports it, with the code `node:fs` gave. */
export class WriteError extends Error {
  readonly code: string | undefined;
  constructor(message: string, code: string | undefined) {
    super(message);
    this.name = 'WriteError';
    this.code = code;
  }
}

/**
 * Writes files atomically on their own threads (`threads` of them, each started on its first
 * write). A file always goes to the same thread (`lane`), so two writes of one file are done in
 * the order they were asked. A thread keeps the process alive only while its writes are pending,
 * and stops on `close()`.
 */
export class Writer {
  readonly #lanes: Lane[];

  constructor(threads = 1) {
    this.#lanes = Array.from({ length: Math.max(1, Math.floor(threads)) }, () => new Lane());
  }

  /** How many threads writes are spread over. */
  get threads(): number {
    return this.#lanes.length;
  }

  /**
   * Creates `tmp` exclusively (0600, never through a link), writes `content`, optionally
   * `fsync`s it and its folder, and renames it over `file`; on any error `tmp` is removed and
   * the promise rejects with the file system's code. `lane` (any non-negative integer) picks the
   * thread: give the same one for the same file.
   */
  write(tmp: string, file: string, content: string, fsync: boolean, lane = 0): Promise<void> {
    return (this.#lanes[lane % this.#lanes.length] as Lane).write(tmp, file, content, fsync);
  }

  /**
   * Stops the threads at once: writes still under way reject with `EWRITER` (`FileStorage`
   * waits for its own writes before it closes). A write after `close()` starts a thread again.
   */
  async close(): Promise<void> {
    await Promise.all(this.#lanes.map((l) => l.close()));
  }
}

/** A started thread and the writes it has not answered yet: each thread has its own. */
interface Thread {
  worker: Worker;
  pending: Map<number, Pending>;
}

/** One writer thread, started again on the next write after it stopped. */
class Lane {
  #thread: Thread | undefined;
  #seq = 0;

  write(tmp: string, file: string, content: string, fsync: boolean): Promise<void> {
    const { worker, pending } = this.#thread ?? this.#start();
    return new Promise<void>((resolve, reject) => {
      const id = this.#seq++;
      if (pending.size === 0) worker.ref();
      pending.set(id, { resolve, reject });
      worker.postMessage({ id, tmp, file, content, fsync });
    });
  }

  async close(): Promise<void> {
    const thread = this.#thread;
    this.#thread = undefined;
    if (thread !== undefined) await thread.worker.terminate();
  }

  #start(): Thread {
    // execArgv: [] keeps loaders and flags of the main thread (such as tsx) out of the thread.
    const worker = new Worker(SOURCE, { eval: true, execArgv: [] });
    const thread: Thread = { worker, pending: new Map() };
    const { pending } = thread;
    worker.unref();
    worker.on('message', ({ id, err }: { id: number; err: { code: string | undefined; message: string } | null }) => {
      const p = pending.get(id);
      if (p === undefined) return;
      pending.delete(id);
      if (pending.size === 0) worker.unref();
      if (err === null) p.resolve();
      else p.reject(new WriteError(err.message, err.code));
    });
    // Fails this thread's writes only: a thread started since has its own.
    const fail = (err: Error): void => {
      if (this.#thread === thread) this.#thread = undefined;
      for (const p of pending.values()) p.reject(err);
      pending.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new WriteError(`the writer thread stopped (exit code ${code})`, 'EWRITER')));
    this.#thread = thread;
    return thread;
  }
}
