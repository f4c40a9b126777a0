/**
 * FileStorage on what the mutation check (test/mutants/) found open: every byte written when the
 * file system takes a few at a time; `fsync: true` syncing the file and its folder, on the writer
 * threads and on Node's thread pool; a renewal's header rewrite that never creates a file; and a
 * renewal a flush takes while the session's file is being read.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { constants as fsc, existsSync, readFileSync, readdirSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { FileStorage, type FileStorageOptions, generateId } from '../../../lib/index.js';
import { fsCalls } from '../../../lib/storage/file/files.js';
import { HEADER_SIZE } from '../../../lib/storage/file/format.js';
import install, { type Call, type Plan } from '../../fixtures/write-faults.js';
import { Clock, deferred, tempDir, turn } from '../../helpers.js';

const MINUTE = 60_000;
const FAULTS = new URL('../../fixtures/write-faults.ts', import.meta.url).href;
/** The thread pool's calls as the library has them, restored after each test that wraps them. */
const POOL_IO = { ...fsCalls.io };

function fileOf(dir: string, id: string): string {
  const hash = createHash('sha256').update(id).digest('hex');
  return join(dir, hash.slice(0, 2), hash);
}

/** The calls a plan's log recorded. */
function calls(log: string): Call[] {
  if (!existsSync(log)) return [];
  return readFileSync(log, 'utf8').trim().split('\n').filter((l) => l !== '').map((line) => JSON.parse(line) as Call);
}

/**
 * A storage on `dir` whose writes go through the fault plan: installed in its writer threads, or
 * on Node's thread pool path for `writerThreads: 0`. Closed (and the plan removed) after the test.
 */
function storageWith(t: TestContext, plan: Plan, options: FileStorageOptions & { path: string; writerThreads: number }): FileStorage {
  let s: FileStorage;
  if (options.writerThreads === 0) {
    // One plan at a time on the shared calls: the newest storage's (an older one is done writing).
    Object.assign(fsCalls.io, POOL_IO);
    install(fsCalls.io, plan);
    s = new FileStorage(options);
  } else {
    // The storage hands the hooks to its threads when it is made: set for that moment only.
    fsCalls.writerHooks = { module: FAULTS, data: plan };
    try {
      s = new FileStorage(options);
    } finally {
      fsCalls.writerHooks = undefined;
    }
  }
  t.after(async () => {
    await s.close();
    Object.assign(fsCalls.io, POOL_IO);
  });
  return s;
}

const MODES = [
  { name: 'writer threads', writerThreads: 2 },
  { name: 'thread pool', writerThreads: 0 },
] as const;

for (const mode of MODES) {
  describe(`FileStorage writes on the ${mode.name} (writerThreads ${mode.writerThreads})`, () => {
    it('writes every byte of a session when the file system takes at most 7 bytes per call', async (t) => {
      const dir = tempDir(t, 'bare-session-short-');
      const log = join(tempDir(t), 'calls');
      const errors: Error[] = [];
      const s = storageWith(t, { faults: [{ call: 'write', maxBytes: 7 }], log }, { path: dir, writerThreads: mode.writerThreads, onError: (e) => errors.push(e) });
      const id = generateId();
      const data = { text: 'é☃'.repeat(100), n: 12_345, list: [1, { a: null }] };
      await s.set(id, data, MINUTE);
      const bytes = readFileSync(fileOf(dir, id));
      const writes = calls(log).filter((c) => c.call === 'write').length;
      assert.ok(writes >= Math.ceil(bytes.length / 7), `${writes} write calls for ${bytes.length} bytes: the short writes were continued`);
      assert.deepEqual(JSON.parse(bytes.toString('utf8', HEADER_SIZE)), data, 'the whole session is in the file');
      await s.close();
      const again = new FileStorage({ path: dir, writerThreads: 0 });
      t.after(() => again.close());
      assert.deepEqual(await again.get(id), data, 'a new storage on the folder reads it back whole');
      assert.deepEqual(errors, [], 'nothing to report');
    });

    it('syncs the temporary file before its rename, and the folder after it, with fsync: true, and never without', async (t) => {
      const dir = tempDir(t, 'bare-session-fsync-');
      const logs = tempDir(t);
      const synced = storageWith(t, { log: join(logs, 'synced') }, { path: join(dir, 'synced'), writerThreads: mode.writerThreads, fsync: true });
      const id = generateId();
      await synced.set(id, { durable: true }, MINUTE);
      const seen = calls(join(logs, 'synced')).map((c) => `${c.call} ${c.on}`).filter((c) => c !== 'write tmp');
      assert.deepEqual(seen, ['open tmp', 'fsync tmp', 'close tmp', 'rename tmp', 'open folder', 'fsync folder', 'close folder'], 'the file is synced before its rename, then its folder');
      const folder = calls(join(logs, 'synced')).find((c) => c.call === 'open' && c.on === 'folder');
      assert.equal(folder?.path, join(fileOf(join(dir, 'synced'), id), '..'), 'the folder synced is the session file\'s own');
      assert.equal((folder?.flags ?? 0) & fsc.O_DIRECTORY, fsc.O_DIRECTORY, 'opened as a folder');
      const plain = storageWith(t, { log: join(logs, 'plain') }, { path: join(dir, 'plain'), writerThreads: mode.writerThreads });
      await plain.set(generateId(), { durable: false }, MINUTE);
      const plainCalls = calls(join(logs, 'plain'));
      assert.ok(plainCalls.some((c) => c.call === 'rename'), 'the write without fsync went through the logged calls');
      assert.deepEqual(plainCalls.filter((c) => c.call === 'fsync'), [], 'nothing is synced without fsync: true');
    });
  });
}

describe('FileStorage renewals', () => {
  it('never creates a session file when it writes a renewal: a file deleted behind its back stays deleted', async (t) => {
    const dir = tempDir(t, 'bare-session-renewal-');
    const clock = new Clock();
    const errors: Error[] = [];
    const s = new FileStorage({ path: dir, writerThreads: 0, now: clock.now, ttlUpdateInterval: '1h', onError: (e) => errors.push(e) });
    t.after(() => s.close());
    const id = generateId();
    await s.set(id, { v: 1 }, MINUTE);
    const file = fileOf(dir, id);
    // A cleaner removes the file; the session is still in memory and is used.
    unlinkSync(file);
    clock.advance(10_000);
    assert.equal(await s.touch(id, MINUTE), true, 'the session in memory is renewed');
    await s.flush();
    assert.equal(existsSync(file), false, 'the renewal did not create the file');
    assert.deepEqual(readdirSync(join(file, '..')), [], 'nor anything else beside it (no empty file set aside)');
    assert.deepEqual(errors.map((e) => e.message), [], 'nothing was reported');
  });

  it('keeps a renewal that a flush takes while the session\'s file is being read', async (t) => {
    const dir = tempDir(t, 'bare-session-renewal-');
    const clock = new Clock();
    const s = new FileStorage({ path: dir, writerThreads: 0, now: clock.now, maxInMemory: 1, ttlUpdateInterval: '1h' });
    const realOpen = fsCalls.open;
    const realIoOpen = fsCalls.io.open;
    const read = deferred();
    const rewrite = deferred();
    t.after(async () => {
      read.resolve();
      rewrite.resolve();
      fsCalls.open = realOpen;
      fsCalls.io.open = realIoOpen;
      await s.close();
    });
    const id = generateId();
    await s.set(id, { v: 1 }, MINUTE); // the file says: expires at t0 + 60 s
    clock.advance(50_000);
    assert.equal(await s.touch(id, MINUTE), true, 'renewed in memory at t0 + 50 s, to t0 + 110 s; the file is rewritten at the next flush');
    await s.set(generateId(), { other: true }, MINUTE); // pushes the session out of memory (maxInMemory 1)
    clock.advance(20_000); // t0 + 70 s: past the file's expiry, within the renewal's
    const file = fileOf(dir, id);
    const held = { read: false, rewrite: false };
    // Reads open through fs/promises, header rewrites through the write calls.
    fsCalls.open = (async (path: Parameters<typeof realOpen>[0], flags?: Parameters<typeof realOpen>[1], mode?: Parameters<typeof realOpen>[2]) => {
      if (path === file) {
        held.read = true;
        await read.promise;
      }
      return realOpen(path, flags, mode);
    }) as typeof realOpen;
    fsCalls.io.open = async (path, flags, mode) => {
      if (path === file) {
        held.rewrite = true;
        await rewrite.promise;
      }
      return realIoOpen(path, flags, mode);
    };
    const got = s.get(id);
    for (let i = 0; i < 1_000 && !held.read; i++) await turn();
    assert.equal(held.read, true, 'the read of the session\'s file has started');
    // The flush takes the renewal from the batch and queues its header rewrite, held.
    const flushed = s.flush();
    for (let i = 0; i < 1_000 && !held.rewrite; i++) await turn();
    assert.equal(held.rewrite, true, 'the flush took the renewal and started its header rewrite while the read is under way');
    read.resolve(); // the read sees the old header (t0 + 60 s)
    assert.deepEqual(await got, { v: 1 }, 'the session is alive: its renewal counts though the flush took it and its header is not written yet');
    rewrite.resolve();
    await flushed;
    fsCalls.open = realOpen;
    fsCalls.io.open = realIoOpen;
    assert.deepEqual(await s.get(id), { v: 1 }, 'and it stays alive once the header is written');
  });
});
