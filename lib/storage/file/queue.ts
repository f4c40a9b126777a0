/**
 * The per-file operation queue of `FileStorage`: one operation on a session's file at a time, and
 * at most one waiting behind it, into which later operations are merged. The file operations
 * themselves are injected, so the merge rules are tested on their own (test/storage/file/queue.test.ts).
 *
 * Why merge: a burst of writes of one session must end with the newest state on disk, with never
 * two renames of one file at once, and without writing each intermediate state. Only the newest
 * waiting operation matters for most kinds; the rules say which:
 *
 * | waiting \ arriving | write    | touch           | unlink   | sweep, set-aside, unmark |
 * |--------------------|----------|-----------------|----------|--------------------------|
 * | nothing            | waits    | waits           | waits    | waits                    |
 * | write              | replaces | folds its expiry in | replaces | joins                |
 * | touch              | replaces | replaces        | replaces | joins                    |
 * | unlink             | replaces | joins           | replaces | joins                    |
 * | sweep, unmark      | replaces | replaces        | replaces | joins                    |
 * | set-aside          | replaces | joins           | replaces | joins                    |
 *
 * "Joins": the arriving operation is dropped, and its caller is answered with the waiting one,
 * which decides the file's fate (a deletion or set-aside checks the file again when it runs, so
 * dropping one behind a write or a renewal is always safe). Every caller merged into one
 * operation is answered together: all resolve, or all reject with its error.
 */

/** An operation on one session's file (the file is named by the hash of the session's id). */
export type Op =
  /** Writes the whole session: the header for `expiresAt`, then `json`. `owner` is the session's owner, for the owner index. */
  | { kind: 'write'; json: string; expiresAt: number; owner: string | undefined }
  /** Rewrites the expiry in the header in place. */
  | { kind: 'touch'; expiresAt: number }
  /** Deletes the file, and the owner index markers of the owners (hashed) named. */
  | { kind: 'unlink'; ownerHashes: readonly string[] }
  /** Deletes the file if it is still expired when the operation runs. */
  | { kind: 'sweep' }
  /** Renames an unreadable file aside, if the file at the name is still unreadable. */
  | { kind: 'setAside' }
  /** Deletes the owner index marker of the owner hashed as `ownerHash` if the session no longer has that owner. */
  | { kind: 'unmark'; ownerHash: string };

/** Runs one operation on the file of `hash`; a rejection is passed on to the operation's callers. */
export type ApplyOp = (hash: string, op: Op) => Promise<void>;

interface Waiter {
  resolve(): void;
  reject(err: unknown): void;
}

interface Queue {
  /** The operation waiting behind the one under way, with every caller merged into it. */
  pending: { op: Op; waiters: Waiter[] } | undefined;
  /** Whether an operation is under way. */
  busy: boolean;
  /** Called once the file has nothing running or waiting. */
  idle: (() => void)[];
}

/**
 * Operations on files, one at a time per file, merged by the rules of the module's table.
 * Files are independent: operations on two files run at once. A file with nothing running or
 * waiting costs nothing.
 *
 * @example
 * ```ts
 * const queue = new FileQueue((hash, op) => applyToFile(hash, op));
 * await queue.enqueue(hash, { kind: 'write', json, expiresAt, owner: undefined });
 * ```
 */
export class FileQueue {
  readonly #apply: ApplyOp;
  readonly #queues = new Map<string, Queue>();

  /** @param apply - runs one operation; called for one file at a time, never twice at once */
  constructor(apply: ApplyOp) {
    this.#apply = apply;
  }

  /**
   * Runs `op` on the file of `hash` after the operation under way, merged with the one waiting
   * (see the module's table). Resolves when the operation that carries it out has run, or
   * rejects with that operation's error. The queue may change `op` (a renewal folds into a write).
   */
  enqueue(hash: string, op: Op): Promise<void> {
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
        return;
      }
      pending.waiters.push(waiter);
      const waiting = pending.op.kind;
      if (op.kind === 'write' || op.kind === 'unlink') {
        pending.op = op;
      } else if (op.kind === 'touch') {
        if (pending.op.kind === 'write') pending.op.expiresAt = Math.max(pending.op.expiresAt, op.expiresAt);
        else if (waiting === 'touch' || waiting === 'sweep' || waiting === 'unmark') pending.op = op;
        // Behind an unlink or a set-aside the renewal is moot: the waiting operation decides.
      }
      // A sweep, a set-aside or an unmark joins whatever waits: a waiting write or renewal
      // means the file is being replaced or is in use, and a waiting deletion decides anyway.
    });
    if (!queue.busy) void this.#drain(hash, queue);
    return done;
  }

  /**
   * Takes the file of `hash` for an operation run outside the queue (a batch of renewals, many
   * files in one request), when nothing runs or waits on it: operations enqueued meanwhile wait,
   * merged as usual, until the returned function is called (once). `undefined` when the file is
   * busy: enqueue the operation instead.
   */
  hold(hash: string): (() => void) | undefined {
    if (this.#queues.has(hash)) return undefined;
    const q: Queue = { pending: undefined, busy: true, idle: [] };
    this.#queues.set(hash, q);
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      void this.#drain(hash, q);
    };
  }

  /** Resolves once nothing runs or waits on the file of `hash` (at once when nothing does). */
  settled(hash: string): Promise<void> {
    const q = this.#queues.get(hash);
    if (q === undefined) return Promise.resolve();
    return new Promise((resolve) => q.idle.push(resolve));
  }

  /** Whether an operation runs or waits on the file of `hash`. */
  has(hash: string): boolean {
    return this.#queues.has(hash);
  }

  /** The hashes of the files with an operation running or waiting, as a snapshot. */
  keys(): string[] {
    return [...this.#queues.keys()];
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
}
