/**
 * The per-file operation queue of FileStorage (lib/storage/file/queue.ts) on its own: its merge
 * rules, one by one, with a fake file operation the test finishes by hand. Nothing touches a
 * file and nothing waits for time: each operation runs until the test resolves or rejects it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FileQueue, type Op } from '../../../lib/storage/file/queue.js';
import { type Deferred, deferred, turn } from '../../helpers.js';

/** One call of the fake file operation: what ran (as it was when it started), and its finish. */
interface Call {
  hash: string;
  op: Op;
  done: Deferred<void>;
}

/** A queue whose operations are recorded and wait until the test finishes them. */
function harness(): { queue: FileQueue; calls: Call[]; finish(i: number, err?: Error): Promise<void> } {
  const calls: Call[] = [];
  const queue = new FileQueue((hash, op) => {
    const done = deferred();
    calls.push({ hash, op: { ...op }, done });
    return done.promise;
  });
  return {
    queue,
    calls,
    /** Finishes call `i` (with an error when given), then lets the queue move on. */
    async finish(i, err) {
      const call = calls[i];
      assert.ok(call !== undefined, `call ${i} was made (${calls.length} so far)`);
      if (err === undefined) call.done.resolve();
      else call.done.reject(err);
      await turn();
    },
  };
}

/** Records how each promise settled, so a test can check them without awaiting. */
function watch(promises: readonly Promise<void>[]): string[] {
  const outcomes = promises.map(() => 'pending');
  promises.forEach((p, i) =>
    p.then(
      () => (outcomes[i] = 'resolved'),
      (e: unknown) => (outcomes[i] = `rejected: ${(e as Error).message}`),
    ),
  );
  return outcomes;
}

const write = (json: string, expiresAt = 1_000, owner?: string): Op => ({ kind: 'write', json, expiresAt, owner });
const touch = (expiresAt: number): Op => ({ kind: 'touch', expiresAt });
const unlink: Op = { kind: 'unlink', ownerHashes: [] };
const sweep: Op = { kind: 'sweep' };
const setAside: Op = { kind: 'setAside' };
const unmark: Op = { kind: 'unmark', ownerHash: 'f'.repeat(64) };

describe('FileQueue: one operation at a time per file', () => {
  it('starts the first operation at once, holds the next until it ends, and runs other files alongside', async () => {
    const { queue, calls, finish } = harness();
    const first = queue.enqueue('a', write('1'));
    assert.equal(calls.length, 1, 'the first operation on a file starts within enqueue');
    const second = queue.enqueue('a', write('2'));
    assert.equal(calls.length, 1, 'a second operation on the same file waits for the first');
    void queue.enqueue('b', write('b'));
    assert.deepEqual(calls.map((c) => c.hash), ['a', 'b'], 'another file does not wait for the first');
    await finish(0);
    await first;
    assert.deepEqual(calls.map((c) => c.op.kind === 'write' && c.op.json), ['1', 'b', '2'], 'the waiting operation starts once the first ended');
    await finish(2);
    await second;
    await finish(1);
  });

  it('says which files are busy, and settles once a file has nothing running or waiting', async () => {
    const { queue, finish } = harness();
    let idle = false;
    await queue.settled('a').then(() => (idle = true));
    assert.equal(idle, true, 'settled resolves at once for a file with nothing queued');
    void queue.enqueue('a', write('1'));
    void queue.enqueue('a', write('2'));
    void queue.enqueue('b', sweep);
    assert.equal(queue.has('a'), true, 'a file with an operation under way is busy');
    assert.equal(queue.has('c'), false, 'a file never queued is not');
    assert.deepEqual(queue.keys().sort(), ['a', 'b'], 'keys lists every busy file');
    let settled = false;
    const waiting = queue.settled('a').then(() => (settled = true));
    await finish(0);
    assert.equal(settled, false, 'not settled while the second operation waits or runs');
    await finish(2);
    await waiting;
    assert.equal(settled, true, 'settled once both are done');
    assert.equal(queue.has('a'), false, 'and the file is no longer busy');
    assert.deepEqual(queue.keys(), ['b'], 'only the other file is left');
    await finish(1);
    assert.deepEqual(queue.keys(), [], 'an idle queue holds nothing');
  });
});

describe('FileQueue: the merge rules', () => {
  it('lets a write replace a waiting write: only the newest data is written, and every caller is answered', async () => {
    const { queue, calls, finish } = harness();
    const outcomes = watch([queue.enqueue('a', write('0')), queue.enqueue('a', write('1')), queue.enqueue('a', write('2')), queue.enqueue('a', write('3'))]);
    await finish(0);
    assert.deepEqual(outcomes, ['resolved', 'pending', 'pending', 'pending'], 'the first write is answered on its own');
    assert.equal(calls.length, 2, 'the three waiting writes became one');
    assert.deepEqual(calls[1]?.op, write('3'), 'the one written is the newest');
    await finish(1);
    assert.deepEqual(outcomes, ['resolved', 'resolved', 'resolved', 'resolved'], 'the replaced writes are answered when the newest is written');
  });

  it('folds a touch into a waiting write: the write carries the later of the two expiries', async () => {
    const { queue, calls, finish } = harness();
    void queue.enqueue('a', write('0'));
    const outcomes = watch([queue.enqueue('a', write('1', 100)), queue.enqueue('a', touch(200)), queue.enqueue('a', touch(150))]);
    await finish(0);
    assert.equal(calls.length, 2, 'no header rewrite of its own: the renewals went into the write');
    assert.deepEqual(calls[1]?.op, write('1', 200), 'the write carries the latest expiry, not the last one asked');
    await finish(1);
    assert.deepEqual(outcomes, ['resolved', 'resolved', 'resolved'], 'the renewals are answered with the write');
  });

  it('lets an unlink replace a waiting write, and a write replace a waiting unlink', async () => {
    const { queue, calls, finish } = harness();
    void queue.enqueue('a', write('0'));
    void queue.enqueue('a', write('1'));
    void queue.enqueue('a', unlink);
    await finish(0);
    assert.deepEqual(calls[1]?.op, unlink, 'a destroy after a waiting write: the write never happens');
    void queue.enqueue('a', unlink);
    void queue.enqueue('a', write('2'));
    await finish(1);
    assert.deepEqual(calls[2]?.op, write('2'), 'a new write after a waiting unlink: the session is written, not deleted');
    await finish(2);
    assert.equal(calls.length, 3, 'nothing else ran');
  });

  it('lets a touch replace a waiting touch, sweep or unmark, and drops it behind an unlink or a set-aside', async () => {
    for (const waiting of [touch(50), sweep, unmark]) {
      const { queue, calls, finish } = harness();
      void queue.enqueue('a', write('0'));
      void queue.enqueue('a', waiting);
      void queue.enqueue('a', touch(300));
      await finish(0);
      assert.deepEqual(calls[1]?.op, touch(300), `the renewal runs instead of the waiting ${waiting.kind}`);
      await finish(1);
    }
    for (const waiting of [unlink, setAside]) {
      const { queue, calls, finish } = harness();
      void queue.enqueue('a', write('0'));
      void queue.enqueue('a', waiting);
      const renewal = queue.enqueue('a', touch(300));
      await finish(0);
      assert.deepEqual(calls[1]?.op, waiting, `the waiting ${waiting.kind} decides: the renewal is dropped`);
      await finish(1);
      await renewal;
      assert.equal(calls.length, 2, `the renewal behind the ${waiting.kind} never runs on its own`);
    }
  });

  it('lets a sweep, a set-aside or an unmark wait behind anything, without running on its own', async () => {
    const checks: Op[] = [sweep, setAside, unmark];
    for (const waiting of [write('1'), touch(100), unlink, sweep, setAside, unmark]) {
      for (const arriving of checks) {
        const { queue, calls, finish } = harness();
        void queue.enqueue('a', write('0'));
        void queue.enqueue('a', waiting);
        const joined = queue.enqueue('a', arriving);
        await finish(0);
        await finish(1);
        await joined;
        assert.deepEqual(calls.map((c) => c.op.kind), ['write', waiting.kind], `a ${arriving.kind} behind a waiting ${waiting.kind} is answered by it`);
      }
    }
  });

  it('runs a sweep, a set-aside or an unmark that finds nothing waiting', async () => {
    for (const op of [sweep, setAside, unmark]) {
      const { queue, calls, finish } = harness();
      void queue.enqueue('a', write('0'));
      void queue.enqueue('a', op);
      await finish(0);
      assert.deepEqual(calls[1]?.op, op, `a ${op.kind} behind a running write, with nothing waiting, runs next`);
      await finish(1);
    }
  });

  it('answers every caller merged into one operation together: all resolve, or all reject with its error', async () => {
    const { queue, calls, finish } = harness();
    void queue.enqueue('a', write('0'));
    const outcomes = watch([queue.enqueue('a', write('1')), queue.enqueue('a', touch(5)), queue.enqueue('a', sweep), queue.enqueue('a', write('2'))]);
    await finish(0);
    await finish(1, new Error('disk full'));
    assert.deepEqual(outcomes, Array(4).fill('rejected: disk full'), 'each merged caller gets the error of the one operation');
    const after = watch([queue.enqueue('a', write('3'))]);
    assert.equal(calls.length, 3, 'a failure does not stop the queue: the next operation runs');
    await finish(2);
    assert.deepEqual(after, ['resolved'], 'and is answered on its own');
  });

  it('rejects the callers of an operation that throws at once, and goes on with the next', async () => {
    let n = 0;
    const queue = new FileQueue(() => {
      if (n++ === 0) throw new Error('thrown synchronously');
      return Promise.resolve();
    });
    await assert.rejects(queue.enqueue('a', write('0')), /thrown synchronously/, 'a synchronous throw rejects the caller, not enqueue itself');
    await queue.enqueue('a', write('1'));
    assert.equal(n, 2, 'the next operation ran');
  });
});

describe('FileQueue: a file held outside the queue (a batch of renewals)', () => {
  it('holds an idle file until released: what is enqueued meanwhile waits, merged as usual, then runs', async () => {
    const { queue, calls, finish } = harness();
    const release = queue.hold('a');
    assert.ok(release !== undefined, 'an idle file can be held');
    assert.equal(queue.has('a'), true, 'a held file counts as busy');
    assert.equal(queue.hold('a'), undefined, 'a held file cannot be held twice');
    const settled = watch([queue.settled('a')]);
    const waiting = watch([queue.enqueue('a', write('{"v":1}')), queue.enqueue('a', write('{"v":2}'))]);
    await turn();
    assert.equal(calls.length, 0, 'nothing runs on a held file');
    assert.deepEqual(waiting, ['pending', 'pending'], 'writes asked meanwhile wait');
    assert.deepEqual(settled, ['pending'], 'a held file is not settled');
    release();
    release();
    await turn();
    assert.deepEqual(calls.map((c) => c.op), [write('{"v":2}')], 'once released, the waiting writes run as one, the newest, and a second release changes nothing');
    await finish(0);
    assert.deepEqual(waiting, ['resolved', 'resolved'], 'both callers are answered');
    assert.deepEqual(settled, ['resolved'], 'the file is settled');
    assert.equal(queue.has('a'), false, 'and idle again');
  });

  it('refuses a file with an operation under way or waiting, and leaves the file idle when released with nothing waiting', async () => {
    const { queue, finish } = harness();
    const running = queue.enqueue('b', touch(5));
    assert.equal(queue.hold('b'), undefined, 'a busy file is not held: its renewal goes through the queue');
    await finish(0);
    await running;
    const release = queue.hold('b');
    assert.ok(release !== undefined, 'held once idle');
    release();
    await turn();
    assert.equal(queue.has('b'), false, 'released with nothing waiting: idle, nothing kept');
    assert.deepEqual(queue.keys(), [], 'no queue left behind');
  });
});
