/**
 * FileStorage: every principle of its header comment and every file-store promise of
 * security.md (3, 5, 15–17, 20–26), with real files in temporary folders and an injected clock.
 * Nothing sleeps: time moves with `Clock`, and `flush()` / `sweep()` are called directly.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  constants as fsc,
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  realpathSync,
  rmSync,
  statSync,
  symlinkSync,
  truncateSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { Worker } from 'node:worker_threads';
import { StorageError } from '../../../lib/errors.js';
import { generateId } from '../../../lib/id.js';
import { FileStorage, type FileStorageOptions } from '../../../lib/storage/file/file-storage.js';
import { fsCalls } from '../../../lib/storage/file/files.js';
import { HEADER_SIZE } from '../../../lib/storage/file/format.js';
import { Writer } from '../../../lib/storage/file/writer.js';
import type { SessionData } from '../../../lib/storage/storage.js';
import { type Child, startChild } from '../../child.js';
import { Jar, SpyStorage, send, serve, tempDir, turn } from '../../helpers.js';
import { crashRounds } from '../../stress/crash-lib.js';
import { MINUTE, type OpenArgs, bodyOf, codes, entries, expiryOf, fileOf, fsError, gateOpen, gateRename, hashOf, header, plant, setup } from './helpers.js';

const ROOT = join(import.meta.dirname, '..', '..', '..');
const CLOSE_EXIT = join(import.meta.dirname, '..', '..', 'fixtures', 'file-close-exit.ts');
const IS_ROOT = process.getuid?.() === 0;

/** Every entry under `dir` that is not a folder, relative to it. */
function filesUnder(dir: string): string[] {
  return (readdirSync(dir, { recursive: true }) as string[]).filter((name) => !lstatSync(join(dir, name)).isDirectory()).sort();
}

/** An old time (2001), for mtimes that any write would change. */
const OLD = new Date('2001-01-01T00:00:00Z');

/** A pid that is surely dead: a child's, after it exited. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', '']);
  assert.equal(child.status, 0, 'the short-lived child exited cleanly');
  assert.throws(() => process.kill(child.pid, 0), { code: 'ESRCH' }, 'its pid names no process any more');
  return child.pid;
}

// ---------------------------------------------------------------------------------------------

describe('FileStorage: memory first, files for persistence', () => {
  it('restores sessions after a restart, but not an expired one, whose file it deletes', async (t) => {
    const { dir, clock, errors, make } = setup(t);
    const first = make();
    const live = generateId();
    const dead = generateId();
    await first.set(live, { user: 'ann', list: [1, 'two', { three: null }] }, 10 * MINUTE);
    await first.set(dead, { user: 'bob' }, 1_000);
    await first.close();
    assert.equal(existsSync(fileOf(dir, dead)), true, 'the expired session\'s file is on disk before the restart');

    clock.advance(5_000);
    const second = make();
    assert.deepEqual(await second.get(live), { user: 'ann', list: [1, 'two', { three: null }] }, 'the live session reads back whole after a restart');
    assert.equal(await second.get(dead), undefined, 'the expired session reads as missing after the restart');
    // close() waits for the deletion the read queued.
    await second.close();
    assert.equal(existsSync(fileOf(dir, dead)), false, 'the read that found it expired deleted its file');
    assert.equal(existsSync(fileOf(dir, live)), true, 'the live session\'s file stays');
    assert.deepEqual(errors, [], 'nothing reported');
  });

  it('writes only when a session changed: reads and touches leave the file alone until a flush', async (t) => {
    const { dir, clock, errors, make } = setup(t);
    const s = make();
    const id = generateId();
    await s.set(id, { a: 1 }, MINUTE);
    const file = fileOf(dir, id);
    // An old mtime, so that any rewrite, even within the same clock tick, shows.
    utimesSync(file, OLD, OLD);
    const bytes = readFileSync(file);
    const { ino } = statSync(file);

    const opens = t.mock.method(fsCalls, 'open');
    const renames = t.mock.method(fsCalls.io, 'rename');
    for (let i = 0; i < 20; i++) {
      clock.advance(1_000);
      assert.deepEqual(await s.get(id), { a: 1 }, 'the session is served from memory on every read');
      await s.touch(id, MINUTE);
    }
    assert.deepEqual(readFileSync(file), bytes, 'the file is byte for byte the same');
    assert.equal(statSync(file).mtimeMs, OLD.getTime(), 'the file was not rewritten');
    assert.equal(statSync(file).ino, ino, 'the same file (inode)');
    // A session in memory is read from memory: no file was opened, none renamed.
    assert.equal(opens.mock.callCount(), 0, 'no file opened while the session is in memory');
    assert.equal(renames.mock.callCount(), 0, 'no file replaced');

    await s.flush();
    assert.notEqual(statSync(file).mtimeMs, OLD.getTime(), 'the flush rewrote the header');
    assert.equal(statSync(file).ino, ino, 'the header is rewritten in place, not the file');
    assert.deepEqual(readFileSync(file).subarray(HEADER_SIZE), bytes.subarray(HEADER_SIZE), 'the body is byte for byte the same');
    assert.equal(expiryOf(file), clock.ms + MINUTE, 'the header now says a minute after the last touch');

    // And the file is not read at all while the session is in memory: deleted behind its back,
    // the session is still served from memory.
    rmSync(file);
    assert.deepEqual(await s.get(id), { a: 1 }, 'a session in memory is served from memory, its file not read');
    assert.deepEqual(errors, [], 'nothing reported');
  });

  it('treats a missing file as an immediate miss, with no error report and nothing created', async (t) => {
    const { dir, errors, make } = setup(t);
    const s = make();
    assert.equal(await s.get(generateId()), undefined, 'an id never stored reads as missing');
    assert.equal(await s.get(generateId()), undefined, 'so does another');
    assert.deepEqual(errors, [], 'nothing reported');
    assert.deepEqual(entries(dir), [], 'nothing but the lock file');
  });

  it('batches life extensions: many touches make one header rewrite, to the newest expiry', async (t) => {
    const { dir, clock, errors, make } = setup(t);
    const s = make();
    const id = generateId();
    const start = clock.ms;
    await s.set(id, { cart: ['x', 'y'], n: 42 }, MINUTE);
    const file = fileOf(dir, id);
    const body = readFileSync(file).subarray(HEADER_SIZE);
    assert.equal(expiryOf(file), start + MINUTE, 'the write put the session\'s expiry in the header');

    const opens = t.mock.method(fsCalls.io, 'open');
    const readOpens = t.mock.method(fsCalls, 'open');
    for (let i = 0; i < 10; i++) {
      clock.advance(1_000);
      await s.touch(id, MINUTE);
    }
    assert.equal(expiryOf(file), start + MINUTE, 'nothing written before the flush');
    await s.flush();
    const forWriting = opens.mock.calls.filter((c) => String(c.arguments[0]) === file && ((c.arguments[1] as number) & fsc.O_RDWR) !== 0);
    assert.equal(forWriting.length, 1, 'the header was rewritten once');
    assert.equal(expiryOf(file), start + 10_000 + MINUTE, 'the header holds the expiry of the last touch');
    assert.deepEqual(readFileSync(file).subarray(HEADER_SIZE), body, 'the body is untouched by the header rewrite');
    // Nothing pending: another flush writes nothing.
    await s.flush();
    assert.equal(opens.mock.calls.filter((c) => String(c.arguments[0]) === file).length, 1, 'a second flush, with nothing pending, opens the file no more');
    assert.equal(readOpens.mock.calls.filter((c) => String(c.arguments[0]) === file).length, 0, 'nor does either flush read it');

    // touch() never creates a file for an id it does not know.
    const unknown = generateId();
    await s.touch(unknown, MINUTE);
    await s.flush();
    assert.equal(existsSync(fileOf(dir, unknown)), false, 'touch made no file for an unknown id');
    assert.equal(await s.get(unknown), undefined, 'and the unknown id still reads as missing');
    assert.deepEqual(errors, [], 'nothing reported');
  });

  it('never lets touch() bring back a session that expired', async (t) => {
    const { dir, clock, errors, make } = setup(t);
    const s = make();
    const id = generateId();
    await s.set(id, { a: 1 }, 1_000);
    clock.advance(2_000);
    await s.touch(id, MINUTE);
    assert.equal(await s.get(id), undefined, 'the expired session reads as missing after a touch');
    await s.flush();
    assert.equal(await s.get(id), undefined, 'and still after a flush of that touch');
    // The same for a session that left memory: a new storage on the folder.
    const other = generateId();
    await s.set(other, { b: 2 }, 1_000);
    await s.close();
    clock.advance(2_000);
    const restarted = make();
    await restarted.touch(other, MINUTE);
    await restarted.flush();
    assert.equal(await restarted.get(other), undefined, 'a session read back from disk expired is not revived by touch');
    await restarted.close();
    assert.equal(existsSync(fileOf(dir, other)), false, 'its expired file was deleted');
    assert.deepEqual(errors, [], 'nothing reported');
  });

  it('sweeps expired files by their 21-byte header alone, keeps live and renewed ones, and counts', async (t) => {
    const { dir, clock, errors, make } = setup(t);
    const s = make();
    const expired = generateId();
    const live = generateId();
    const renewed = generateId();
    await s.set(expired, { x: 1 }, 1_000);
    await s.set(live, { x: 2 }, 10 * MINUTE);
    await s.set(renewed, { x: 3 }, 1_000);
    // Files the storage never read: one expired and one live, both with a body that is not JSON.
    const garbageExpired = plant(dir, generateId(), `${header(clock.ms - 1)}{{{ not json`);
    const garbageLive = plant(dir, generateId(), `${header(clock.ms + 10 * MINUTE)}{{{ not json`);
    const garbageLiveBytes = readFileSync(garbageLive);
    // A link at a session's name, to an expired session file outside: neither followed nor
    // deleted; the link itself is set aside, as is anything at a session's name that is not a
    // regular file.
    const outside = join(dir, 'outside');
    const outsideBytes = `${header(clock.ms - 1)}{}`;
    writeFileSync(outside, outsideBytes);
    const link = fileOf(dir, generateId());
    mkdirSync(join(link, '..'), { recursive: true, mode: 0o700 });
    symlinkSync(outside, link);

    clock.advance(500);
    await s.touch(renewed, MINUTE); // renewed in memory; its file still says it expires in 500 ms
    clock.advance(1_000);
    assert.ok(expiryOf(fileOf(dir, renewed)) < clock.ms, 'the renewal is not on disk yet');

    assert.equal(await s.sweep(), 2, 'the sweep deleted the two expired session files');
    assert.equal(existsSync(fileOf(dir, expired)), false, 'the expired session\'s file is gone');
    assert.equal(existsSync(garbageExpired), false, 'an expired file with a corrupt body is deleted by its header alone');
    assert.equal(existsSync(fileOf(dir, live)), true, 'the live session\'s file stays');
    assert.equal(existsSync(fileOf(dir, renewed)), true, 'the session renewed in memory keeps its file');
    assert.equal(expiryOf(fileOf(dir, renewed)), clock.ms - 1_000 + MINUTE, 'its header got the renewal the sweep flushed first');
    assert.deepEqual(readFileSync(garbageLive), garbageLiveBytes, 'a live file with a corrupt body is left alone: its body was never read');
    assert.equal(lstatSync(`${link}.bad`).isSymbolicLink(), true, 'the link was set aside, as a link');
    assert.equal(readFileSync(outside, 'utf8'), outsideBytes, 'its target was neither followed nor deleted');
    assert.deepEqual(await s.get(renewed), { x: 3 }, 'the renewed session still reads back');
    assert.deepEqual(codes(errors), ['ECORRUPT'], 'the link is reported; no corrupt body is: the sweep reads headers only');
    assert.match(errors[0]?.message ?? '', /symbolic link/, 'reported as a link');
    // Nothing left to delete.
    assert.equal(await s.sweep(), 0, 'a second sweep finds nothing to delete');
  });

  it('holds at most maxInMemory sessions and reads the others back from their files', async (t) => {
    const { errors, make } = setup(t);
    const s = make({ maxInMemory: 2 });
    const ids = Array.from({ length: 5 }, () => generateId());
    for (const [i, id] of ids.entries()) {
      await s.set(id, { i, name: `user${i}` }, MINUTE);
      assert.ok(s.sizeInMemory <= 2, 'at most maxInMemory sessions in memory');
    }
    for (const [i, id] of ids.entries()) {
      assert.deepEqual(await s.get(id), { i, name: `user${i}` }, 'every session reads back, from memory or from its file');
      assert.ok(s.sizeInMemory <= 2, 'at most maxInMemory sessions in memory');
    }
    // Twice, in reverse, so that every read of the second pass is also a file read.
    for (const [i, id] of [...ids.entries()].reverse()) assert.deepEqual(await s.get(id), { i, name: `user${i}` }, 'and again in reverse order, each a file read');
    assert.deepEqual(errors, [], 'nothing reported');
  });

  it('coalesces a burst of 100 sets on one id: never two renames of the file at once, the newest data wins', async (t) => {
    const { dir, errors, make } = setup(t);
    const s = make();
    const id = generateId();
    const file = fileOf(dir, id);
    // Renames of this file are counted as they start and end: `max` is how many were under way
    // at one moment. This observes the property itself (two renames at once) rather than a
    // proxy such as inode changes, and does not depend on timing.
    const real = fsCalls.io.rename;
    let inFlight = 0;
    let max = 0;
    let renames = 0;
    t.mock.method(fsCalls.io, 'rename', async (from: string, to: string): Promise<void> => {
      if (to !== file) return real(from, to);
      renames++;
      max = Math.max(max, ++inFlight);
      try {
        await real(from, to);
      } finally {
        inFlight--;
      }
    });

    // Issued synchronously: the first write starts, the other 99 coalesce into one.
    await Promise.all(Array.from({ length: 100 }, (_, i) => s.set(id, { i }, MINUTE)));
    assert.equal(max, 1, 'never two renames of the file at once');
    assert.ok(renames <= 2, `${renames} renames for a synchronous burst`);
    assert.deepEqual(bodyOf(file), { i: 99 }, 'the newest of the synchronous burst is on disk');

    // Issued across many turns of the event loop: still one at a time, the last one on disk.
    const pending: Promise<void>[] = [];
    for (let i = 100; i < 200; i++) {
      pending.push(s.set(id, { i }, MINUTE));
      if (i % 7 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    await Promise.all(pending);
    assert.equal(max, 1, 'never two renames of the file at once');
    assert.ok(renames < 200, 'the writes were coalesced');
    assert.deepEqual(bodyOf(file), { i: 199 }, 'the newest of the spread-out burst is on disk');
    assert.deepEqual(readdirSync(join(file, '..')), [hashOf(id)], 'no temporary file left');
    assert.deepEqual(errors, [], 'nothing reported');
  });

  it('queues a sweep and a renewal behind writes under way: the newest data and expiry win', async (t) => {
    const { dir, clock, errors, make } = setup(t);
    const s = make();
    const id = generateId();
    const file = fileOf(dir, id);
    await s.set(id, { v: 0 }, 1_000);
    clock.advance(2_000); // expired, in memory and on disk

    // The sweep has opened the expired file when two writes arrive: the first stays under way
    // (its rename held), the second waits behind it.
    const reading = gateOpen(t, (path) => path === file);
    const writing = gateRename(t, file);
    const sweeping = s.sweep();
    await reading.reached;
    const w1 = s.set(id, { v: 1 }, MINUTE);
    await writing.reached;
    clock.advance(1_000);
    const w2 = s.set(id, { v: 2 }, MINUTE);
    reading.release();
    await reading.closed;
    await turn(); // the sweep saw an expired header, and queued its deletion behind w2
    clock.advance(1_000);
    await s.touch(id, MINUTE); // merged into the waiting write
    const flushing = s.flush();
    writing.release();
    assert.equal(await sweeping, 0, 'the sweep deleted nothing: the writes won');
    await Promise.all([w1, w2, flushing]);
    assert.deepEqual(bodyOf(file), { v: 2 }, 'the newest write is on disk');
    assert.equal(expiryOf(file), clock.ms + MINUTE, 'with the newest expiry, renewal included');
    assert.deepEqual(errors, [], 'nothing reported');
  });

  it('keeps the file a write put in place while the sweep decided to delete it, with no renewal queued', async (t) => {
    // Only the sweep's second look, in the file's queue, saves the new file here: set() drops
    // any renewal, so none is queued, and the sweep's first look saw an expired header.
    const { dir, clock, errors, make } = setup(t);
    const s = make();
    const id = generateId();
    const file = fileOf(dir, id);
    await s.set(id, { v: 0 }, 1_000);
    clock.advance(2_000); // expired, in memory and on disk
    const reading = gateOpen(t, (path) => path === file);
    const writing = gateRename(t, file);
    const sweeping = s.sweep();
    await reading.reached; // the sweep has the expired file open
    const written = s.set(id, { v: 1 }, MINUTE);
    await writing.reached; // the write is under way, its rename held
    reading.release();
    await reading.closed;
    await turn(); // the sweep saw an expired header, and queued the deletion behind the write
    writing.release();
    await written;
    assert.equal(await sweeping, 0, 'nothing was swept');
    assert.deepEqual(bodyOf(file), { v: 1 }, 'the new file is in place');
    assert.equal(expiryOf(file), clock.ms + MINUTE, 'with its new expiry');
    assert.deepEqual(errors, [], 'nothing reported');
  });

  it('lets a renewal replace a sweep waiting behind a write, so the renewed file stays', async (t) => {
    const { dir, clock, errors, make } = setup(t);
    const s = make();
    const id = generateId();
    const file = fileOf(dir, id);
    await s.set(id, { v: 0 }, 1_000);
    clock.advance(2_000);
    const reading = gateOpen(t, (path) => path === file);
    const writing = gateRename(t, file);
    const sweeping = s.sweep();
    await reading.reached;
    const w1 = s.set(id, { v: 1 }, MINUTE);
    await writing.reached;
    reading.release();
    await reading.closed;
    await turn(); // the sweep, done reading the expired header, queued its deletion behind w1
    clock.advance(1_000);
    await s.touch(id, MINUTE);
    const flushing = s.flush(); // the renewal takes the deletion's place
    writing.release();
    assert.equal(await sweeping, 0, 'the sweep deleted nothing: the renewal took its place');
    await Promise.all([w1, flushing]);
    assert.deepEqual(bodyOf(file), { v: 1 }, 'the write under way is on disk');
    assert.equal(expiryOf(file), clock.ms + MINUTE, 'with the renewal\'s expiry');
    assert.deepEqual(errors, [], 'nothing reported');
  });
});

describe('FileStorage: bad files', () => {
  const variants: [string, (file: string) => void][] = [
    ['corrupt JSON', (f) => writeFileSync(f, `${header(Date.now() + 3_600_000_000)}{"a": 1,`)],
    ['a header and no body', (f) => writeFileSync(f, header(Date.now() + 3_600_000_000))],
    ['a partial header', (f) => writeFileSync(f, 'BS1 00017')],
    ['an empty file', (f) => writeFileSync(f, '')],
    ['a foreign file of random text', (f) => writeFileSync(f, 'lorem ipsum dolor sit amet, consectetur adipiscing elit\n'.repeat(5))],
    ['a header with bad digits', (f) => writeFileSync(f, 'BS1 00000000000000x1\n{}')],
    ['a header without its newline', (f) => writeFileSync(f, 'BS1 0000000000000001 {}')],
    ['a JSON array', (f) => writeFileSync(f, `${header(Date.now() + 3_600_000_000)}[1,2]`)],
    ['JSON null', (f) => writeFileSync(f, `${header(Date.now() + 3_600_000_000)}null`)],
    ['a folder', (f) => mkdirSync(f)],
    // Sparse: a byte more than the header and the largest session (1 MiB until configure()
    // says otherwise) on paper, nothing on disk, and never read.
    ['a file larger than any session', (f) => {
      writeFileSync(f, `${header(Date.now() + 3_600_000_000)}{}`);
      truncateSync(f, HEADER_SIZE + 1024 * 1024 + 1);
    }],
  ];
  for (const [what, putBadFile] of variants) {
    it(`reads ${what} at a session's path as no session, sets it aside once, and keeps serving`, async (t) => {
      const { dir, errors, make } = setup(t);
      // These files carry real expiry times (Date.now based): the storage runs on the real clock.
      const s = make({ now: Date.now });
      const id = generateId();
      const file = fileOf(dir, id);
      mkdirSync(join(file, '..'), { recursive: true, mode: 0o700 });
      putBadFile(file);
      assert.equal(await s.get(id), undefined, 'the bad file reads as no session');
      assert.equal(existsSync(file), false, 'the original name is gone');
      assert.equal(existsSync(`${file}.bad`), true, 'it was set aside as <hash>.bad');
      assert.equal(errors.length, 1, 'it was reported once');
      assert.ok(errors[0] instanceof StorageError, 'as a StorageError');
      assert.equal(errors[0].code, 'ECORRUPT', 'with the code ECORRUPT');
      assert.doesNotMatch(errors[0].message, new RegExp(hashOf(id)), 'the full file name (a hash) is not logged');
      // The storage keeps serving this id and others.
      assert.equal(await s.get(id), undefined, 'a second read is still a miss, without a second report');
      await s.set(id, { fixed: true }, MINUTE);
      assert.deepEqual(await s.get(id), { fixed: true }, 'a new write of the id is served');
      await s.close();
      assert.deepEqual(await make({ now: Date.now }).get(id), { fixed: true }, 'and reads back from its file after a restart');
      assert.equal(errors.length, 1, 'still reported only once');
    });
  }

  it('reports a file it cannot set aside, and still reads it as no session', async (t) => {
    const { dir, errors, make } = setup(t);
    const s = make();
    const id = generateId();
    const file = plant(dir, id, 'not a session');
    // A non-empty folder where the set-aside copy would go: the rename fails.
    mkdirSync(join(`${file}.bad`, 'x'), { recursive: true });
    assert.equal(await s.get(id), undefined, 'a file that cannot be set aside still reads as no session');
    assert.deepEqual(codes(errors).sort(), ['ECORRUPT', 'ESTORAGE'], 'both the bad file and the failed set-aside are reported');
    assert.match(errors.find((e) => e instanceof StorageError && e.code === 'ESTORAGE')?.message ?? '', /could not set aside/, 'the failed set-aside is reported as such');
  });

  it('never sets aside a good file that a write put in place while a corrupt one was being read', async (t) => {
    const { dir, errors, make } = setup(t);
    const s = make();
    const id = generateId();
    const file = plant(dir, id, 'torn');
    // The read opens the corrupt file and stops there; meanwhile a set replaces it.
    const gate = gateOpen(t, (path, flags) => path === file && ((flags as number) & fsc.O_RDWR) === 0);
    const reading = s.get(id);
    await gate.reached;
    await s.set(id, { good: true }, MINUTE);
    gate.release();
    // Memory wins for the reader too.
    assert.deepEqual(await reading, { good: true }, 'the reader gets the write made while it read: memory wins');
    assert.deepEqual(bodyOf(file), { good: true }, 'the acknowledged write is still in place');
    await s.close();
    const restarted = make();
    assert.deepEqual(await restarted.get(id), { good: true }, 'the good file reads back after a restart');
    assert.equal(codes(errors).filter((c) => c !== 'ECORRUPT').length, 0, 'nothing but the corrupt file was reported');
  });

  it('loads stored JSON as plain data: a __proto__ key grants nothing', async (t) => {
    const { dir, make } = setup(t);
    // The file carries a real expiry time (Date.now based): the storage runs on the real clock.
    const s = make({ now: Date.now });
    const id = generateId();
    plant(dir, id, `${header(Date.now() + 3_600_000_000)}{"__proto__":{"admin":true},"user":"eve"}`);
    const data = (await s.get(id)) as SessionData;
    assert.equal(data['user'], 'eve', 'the plain key reads back');
    assert.equal((data as { admin?: unknown }).admin, undefined, 'a stored __proto__ key grants nothing through the prototype');
    assert.equal(({} as { admin?: unknown }).admin, undefined, 'Object.prototype is untouched');
  });
});

describe('FileStorage: temporary files', () => {
  it('removes orphaned temporary files at startup and in the sweep, and keeps live writers\' ones', async (t) => {
    const { dir, errors, make } = setup(t);
    const id = generateId();
    const hash = hashOf(id);
    const shard = join(dir, hash.slice(0, 2));
    mkdirSync(shard, { recursive: true, mode: 0o700 });
    const dead = deadPid();
    const tmp = (pid: number, token: string, n: number): string => join(shard, `${hash}.${pid}-${token}-${n}.tmp`);
    const orphan = tmp(dead, 'a1b2c3', 0);
    const parentWriter = tmp(process.ppid, 'a1b2c3', 1);
    const initWriter = tmp(1, 'a1b2c3', 2);
    const closedInstance = tmp(process.pid, '000000000000', 3);
    // Not our naming: removed only when old.
    const foreignOld = join(shard, `${hash}.tmp`);
    const foreignNew = join(shard, `${hash}.x.tmp`);
    for (const f of [orphan, parentWriter, initWriter, closedInstance, foreignOld, foreignNew]) writeFileSync(f, 'partial');
    utimesSync(foreignOld, OLD, OLD);

    const s = make();
    await s.close(); // waits for the startup clean-up
    assert.equal(existsSync(orphan), false, 'the temporary file of a dead process was removed at startup');
    assert.equal(existsSync(closedInstance), false, 'so was one of a closed instance of this process');
    assert.equal(existsSync(foreignOld), false, 'and an old one not named by this library');
    assert.equal(existsSync(parentWriter), true, 'a temporary file of a live process (the parent) is kept');
    assert.equal(existsSync(initWriter), true, 'so is one of pid 1');
    assert.equal(existsSync(foreignNew), true, 'and a recent one not named by this library');

    // The sweep does the same for files that appear later.
    const s2 = make();
    await s2.close();
    const s3 = make();
    const later = tmp(deadPid(), 'ffff', 9);
    writeFileSync(later, 'partial');
    // A temporary file of this very instance, while it is open, is no orphan.
    const real = fsCalls.io.open;
    let own = '';
    t.mock.method(fsCalls.io, 'open', (path: string, flags: number, mode: number) => {
      if (path.endsWith('.tmp')) own = path;
      return real(path, flags, mode);
    });
    await s3.set(generateId(), { a: 1 }, MINUTE);
    const mine = own.replace(/-(\d+)\.tmp$/, '-999.tmp');
    assert.match(mine, new RegExp(`\\.${process.pid}-[0-9a-f]+-999\\.tmp$`), 'the instance\'s temporary files carry this pid and its token');
    writeFileSync(mine, 'partial');
    assert.equal(await s3.sweep(), 0, 'the sweep deleted no session file');
    assert.equal(existsSync(later), false, 'it removed the temporary file of a dead process that appeared later');
    assert.equal(existsSync(mine), true, 'it kept a temporary file of this open instance');
    assert.equal(existsSync(parentWriter), true, 'and the live parent\'s');
    assert.equal(existsSync(initWriter), true, 'and pid 1\'s');
    // Once the instance is closed, its temporary files are orphans for the next one.
    await s3.close();
    const s4 = make();
    await s4.close();
    assert.equal(existsSync(mine), false, 'the closed instance\'s temporary file is an orphan for the next one');
    assert.deepEqual(errors, [], 'nothing reported');
  });

  it('deletes set-aside files after a week and keeps recent ones', async (t) => {
    const { dir, make } = setup(t);
    const oldBad = plant(dir, generateId(), 'x');
    const newBad = plant(dir, generateId(), 'y');
    const s = make();
    const aside = (f: string): string => {
      writeFileSync(`${f}.bad`, 'bad');
      rmSync(f);
      return `${f}.bad`;
    };
    const oldAside = aside(oldBad);
    const newAside = aside(newBad);
    const eightDaysAgo = new Date(Date.now() - 8 * 86_400_000);
    utimesSync(oldAside, eightDaysAgo, eightDaysAgo);
    assert.equal(await s.sweep(), 0, 'the sweep deleted no session file');
    assert.equal(existsSync(oldAside), false, 'a set-aside file older than a week is deleted');
    assert.equal(existsSync(newAside), true, 'a recent set-aside file is kept');
  });
});

describe('FileStorage: ids and the file system', () => {
  it('never touches the file system for a malformed id from a request', async (t) => {
    const storages: FileStorage[] = [];
    t.after(async () => {
      for (const st of storages) await st.close();
    });
    const dir = tempDir(t, 'bare-session-file-');
    const errors: Error[] = [];
    const storage = new FileStorage({ path: dir, onError: (e) => errors.push(e) });
    storages.push(storage);
    const spy = new SpyStorage(storage);
    const s = await serve(t, { sessionStorage: spy }, (s) => {
      s.all('/get', (r) => r.response.write(r.session.data()));
      s.all('/has', (r) => r.response.write(r.session.has('user') ? 'yes' : 'no'));
    });
    const corpus = [
      '../../etc/passwd',
      '..%2f..%2fetc%2fpasswd',
      '..%2f',
      '/abs',
      '/etc/passwd',
      'a%00b',
      'x'.repeat(10_000),
      '',
      '""',
      '"../../etc/passwd"',
      '__proto__',
      'constructor',
      'hasOwnProperty',
      `${generateId()}x`,
      generateId().slice(1),
    ];
    for (const value of corpus) {
      for (const path of ['/get', '/has']) {
        const viaCookie = await send(s.port, path, { headers: { cookie: `sid=${value}` } });
        assert.equal(viaCookie.status, 200, `cookie ${value.slice(0, 40)}`);
        assert.match(viaCookie.body, /^(\{\}|no)$/, 'the request saw an empty session');
        assert.deepEqual(viaCookie.setCookies, [], 'and got no cookie');
        if (value !== '') {
          const viaHeader = await send(s.port, path, { headers: { sid: value } });
          assert.equal(viaHeader.status, 200, 'an id in a header is refused the same way');
        }
      }
    }
    const prototypeNames = await send(s.port, '/get', { headers: { cookie: '__proto__=x; constructor=y; sid=__proto__' } });
    assert.equal(prototypeNames.body, '{}', 'cookies named like prototype members are ignored');
    const methods = (): string[] => spy.calls.map((c) => c.method);
    assert.deepEqual(methods(), [], 'no storage call');
    assert.deepEqual(entries(dir), [], 'no file, no shard folder');
    // A well-formed id (quoted, as RFC 6265 allows) is looked up, misses, and creates nothing.
    const unknown = generateId();
    assert.equal((await send(s.port, '/get', { headers: { cookie: `sid="${unknown}"` } })).body, '{}', 'a well-formed unknown id reads as an empty session');
    assert.deepEqual(methods(), ['get'], 'it cost exactly one storage read');
    assert.deepEqual(entries(dir), [], 'and created nothing on disk');
    assert.deepEqual(errors, [], 'nothing reported');
  });

  it('names files by the SHA-256 of the id, in shard folders, with the documented format', async (t) => {
    const { dir, clock, make } = setup(t);
    const s = make();
    const id = generateId();
    await s.set(id, { k: 'v' }, MINUTE);
    const hash = hashOf(id);
    assert.deepEqual(entries(dir), [hash.slice(0, 2)], 'the folder holds one shard folder, named by the hash\'s first two digits');
    assert.deepEqual(readdirSync(join(dir, hash.slice(0, 2))), [hash], 'the shard holds one file named by the hash');
    assert.equal(filesUnder(dir).some((f) => f.includes(id)), false, 'the id appears in no file name');
    assert.equal(readFileSync(fileOf(dir, id), 'utf8'), `BS1 ${String(clock.ms + MINUTE).padStart(16, '0')}\n{"k":"v"}`, 'the file is the version-1 header then the JSON body');
  });

  it('creates the folder 0700, shard folders 0700 and files 0600', async (t) => {
    const { dir, make } = setup(t);
    const path = join(dir, 'nested', 'sessions');
    const s = make({ path });
    const id = generateId();
    await s.set(id, { a: 1 }, MINUTE);
    assert.equal(statSync(path).mode & 0o777, 0o700, 'the folder is created 0700');
    assert.equal(statSync(join(fileOf(path, id), '..')).mode & 0o777, 0o700, 'the shard folder is created 0700');
    assert.equal(statSync(fileOf(path, id)).mode & 0o777, 0o600, 'the session file is created 0600');
    // A rewrite keeps the mode.
    await s.set(id, { a: 2 }, MINUTE);
    assert.equal(statSync(fileOf(path, id)).mode & 0o777, 0o600, 'a rewrite keeps the file 0600');
  });

  it('refuses a folder other users can reach, or warns and fixes it with insecureFolder: warn', async (t) => {
    const { dir, errors, make } = setup(t);
    const open = join(dir, 'open');
    mkdirSync(open);
    chmodSync(open, 0o755);
    assert.throws(() => make({ path: open }), (err: unknown) => err instanceof TypeError && /^option path is invalid/.test(err.message) && /755/.test(err.message), 'a folder open to others is refused, naming path and the mode');
    assert.equal(statSync(open).mode & 0o777, 0o755, 'refused without changing it');
    const s = make({ path: open, insecureFolder: 'warn' });
    assert.deepEqual(codes(errors), ['EINSECURE'], 'with warn, it is reported as insecure');
    assert.equal(statSync(open).mode & 0o777, 0o700, 'and fixed to 0700');
    await s.set(generateId(), { a: 1 }, MINUTE);
  });

  it('refuses a folder that is a symbolic link', async (t) => {
    const { dir, errors, make } = setup(t);
    const real = join(dir, 'real');
    mkdirSync(real, { mode: 0o700 });
    const link = join(dir, 'link');
    symlinkSync(real, link);
    assert.throws(() => make({ path: link }), (err: unknown) => err instanceof TypeError && /option path/.test(err.message) && /symbolic link/.test(err.message), 'a folder that is a link is refused, naming path and the link');
    // With 'warn' it is reported; the target's mode is not changed through the link.
    chmodSync(real, 0o750);
    make({ path: link, insecureFolder: 'warn' });
    assert.deepEqual(codes(errors), ['EINSECURE'], 'with warn, the link is reported as insecure');
    assert.match(errors[0]?.message ?? '', /symbolic link/, 'as a symbolic link');
    assert.equal(statSync(real).mode & 0o777, 0o750, 'the target\'s mode is not changed through the link');
  });

  it('refuses a path that is a file, and invalid options, naming the option', (t) => {
    const { dir } = setup(t);
    const file = join(dir, 'file');
    writeFileSync(file, '');
    const bad: [FileStorageOptions, RegExp][] = [
      [{ path: file }, /option path is invalid: .* is not a folder/],
      [{ path: '' }, /option path is invalid/],
      [{ path: dir, maxInMemory: 0 }, /option maxInMemory/],
      [{ path: dir, maxInMemory: 1.5 }, /option maxInMemory/],
      [{ path: dir, fsync: 'yes' as unknown as boolean }, /option fsync/],
      [{ path: dir, insecureFolder: 'ignore' as unknown as 'warn' }, /option insecureFolder/],
      [{ path: dir, onError: 'log' as unknown as () => void }, /option onError/],
      [{ path: dir, now: 5 as unknown as () => number }, /option now/],
      [{ path: dir, ttlUpdateInterval: '0s' }, /option ttlUpdateInterval/],
      [{ path: dir, sweepInterval: -1 }, /option sweepInterval/],
    ];
    for (const [options, message] of bad) assert.throws(() => new FileStorage(options), (err: unknown) => err instanceof TypeError && message.test(err.message), 'each invalid option is refused with a TypeError naming it');
    // A path that cannot be created at all: the same TypeError, with the system's reason.
    assert.throws(
      () => new FileStorage({ path: join(file, 'sessions') }),
      (err: unknown) => err instanceof TypeError && /^option path is invalid: .*ENOTDIR/.test(err.message),
      'a TypeError naming path and ENOTDIR',
    );
  });

  it('refuses a folder that belongs to another user (as root), and does not chmod it with warn', { skip: !IS_ROOT && 'needs root to chown' }, async (t) => {
    const { dir, errors, make } = setup(t);
    const theirs = join(dir, 'theirs');
    mkdirSync(theirs, { mode: 0o700 });
    chownSync(theirs, 12345, 12345);
    chmodSync(theirs, 0o750);
    assert.throws(() => make({ path: theirs }), /belongs to another user/, 'another user\'s folder is refused, saying so');
    make({ path: theirs, insecureFolder: 'warn' });
    assert.deepEqual(codes(errors), ['EINSECURE'], 'with warn, it is reported');
    assert.equal(statSync(theirs).mode & 0o777, 0o750, 'and its mode is left alone');
  });

  it('never follows a symbolic link planted at a session\'s file name: not on read, write or touch', async (t) => {
    const { dir, clock, errors, make } = setup(t);
    const outsideDir = tempDir(t, 'bare-session-outside-');
    const secret = join(outsideDir, 'secret');
    // The outside file is itself a valid session file: following the link would show.
    const secretBytes = `${header(clock.ms + 10 * MINUTE)}{"admin":true}`;
    writeFileSync(secret, secretBytes);
    const s = make();

    // Read
    const a = generateId();
    const linkA = fileOf(dir, a);
    mkdirSync(join(linkA, '..'), { recursive: true, mode: 0o700 });
    symlinkSync(secret, linkA);
    assert.equal(await s.get(a), undefined, 'a link at a session\'s name reads as no session');
    assert.deepEqual(codes(errors), ['ECORRUPT'], 'the link is reported as a bad file');
    assert.equal(lstatSync(`${linkA}.bad`).isSymbolicLink(), true, 'the link itself was set aside');
    assert.equal(readFileSync(secret, 'utf8'), secretBytes, 'the link\'s target is untouched by the read');

    // Write
    const b = generateId();
    const linkB = fileOf(dir, b);
    mkdirSync(join(linkB, '..'), { recursive: true, mode: 0o700 });
    symlinkSync(secret, linkB);
    await s.set(b, { mine: 1 }, MINUTE);
    assert.equal(lstatSync(linkB).isFile(), true, 'the write replaced the link with a regular file');
    assert.deepEqual(bodyOf(linkB), { mine: 1 }, 'holding the session written');
    assert.equal(readFileSync(secret, 'utf8'), secretBytes, 'the link\'s target is untouched by the write');

    // Touch and flush
    const c = generateId();
    await s.set(c, { mine: 2 }, MINUTE);
    const fileC = fileOf(dir, c);
    rmSync(fileC);
    symlinkSync(secret, fileC);
    clock.advance(1_000);
    await s.touch(c, 60 * MINUTE);
    await s.flush();
    assert.equal(lstatSync(`${fileC}.bad`).isSymbolicLink(), true, 'the header rewrite set the link aside, unfollowed');
    assert.equal(readFileSync(secret, 'utf8'), secretBytes, 'the target is untouched');
    assert.deepEqual(codes(errors), ['ECORRUPT', 'ECORRUPT'], 'both links reported');
  });
});

describe('FileStorage: I/O failures', () => {
  // Failures are injected through `fsCalls`, the module's seam for the file system: chmod
  // cannot make a call fail for root, and tests may run as root.
  // Failures of writes (ENOSPC, EIO, short writes, rename failures…) are in
  // test/storage/file/file-writes.test.ts, on the writer threads and on the thread pool alike.

  it('never turns a read error into a missing session: get rejects with a StorageError', async (t) => {
    const { dir, errors, make } = setup(t);
    const writer = make();
    const id = generateId();
    await writer.set(id, { v: 1 }, MINUTE);
    await writer.close();
    const file = fileOf(dir, id);
    const s = make();

    const real = fsCalls.open;
    const opening = t.mock.method(fsCalls, 'open', (...args: OpenArgs) => (String(args[0]) === file ? Promise.reject(fsError('EACCES')) : real(...args)));
    await assert.rejects(s.get(id), (err: unknown) => err instanceof StorageError && err.status === 503 && /EACCES/.test(err.message), 'an open failing with EACCES rejects with a 503 naming it');
    opening.mock.restore();
    const odd = t.mock.method(fsCalls, 'open', (...args: OpenArgs) => (String(args[0]) === file ? Promise.reject(new Error('odd')) : real(...args)));
    await assert.rejects(s.get(id), (err: unknown) => err instanceof StorageError && err.message === 'could not read a session file', 'an error without a code rejects with a plain message');
    odd.mock.restore();

    for (const call of ['read', 'stat'] as const) {
      const failing = t.mock.method(fsCalls, 'open', async (...args: OpenArgs): Promise<FileHandle> => {
        const fh = await real(...args);
        if (String(args[0]) === file) t.mock.method(fh, call, () => Promise.reject(fsError('EIO')));
        return fh;
      });
      await assert.rejects(s.get(id), (err: unknown) => err instanceof StorageError && err.code === 'ESTORAGE' && /EIO/.test(err.message), `a failing ${call} rejects`);
      failing.mock.restore();
    }
    // The file is intact and reads once the failure is gone; nothing was set aside.
    assert.deepEqual(await s.get(id), { v: 1 }, 'once the failures are gone the session reads back');
    assert.equal(existsSync(`${file}.bad`), false, 'nothing was set aside for a read error');
    assert.deepEqual(errors, [], 'nothing reported');
  });

  it('recreates a shard folder (or the whole folder) removed behind its back, and says so when it cannot', async (t) => {
    const { dir, errors, make } = setup(t);
    // Two levels below the test's own temporary folder: the test removes both, and nothing above.
    const parent = join(dir, 'parent');
    const path = join(parent, 'sessions');
    const s = make({ path });
    const id = generateId();
    await s.set(id, { v: 1 }, MINUTE);
    rmSync(join(fileOf(path, id), '..'), { recursive: true });
    await s.set(id, { v: 2 }, MINUTE);
    assert.deepEqual(bodyOf(fileOf(path, id)), { v: 2 }, 'the shard folder was made again');
    rmSync(parent, { recursive: true });
    await s.set(id, { v: 3 }, MINUTE);
    assert.deepEqual(bodyOf(fileOf(path, id)), { v: 3 }, 'the folder (and its parent) were made again');
    assert.equal(statSync(path).mode & 0o777, 0o700, 'private');
    assert.equal(readdirSync(path).filter((n) => n.startsWith('.lock')).length, 1, 'and locked again');
    // Gone again, with a file where its parent was: the write fails with a clear 503.
    rmSync(parent, { recursive: true });
    writeFileSync(parent, 'not a folder');
    let other = generateId();
    while (hashOf(other).slice(0, 2) === hashOf(id).slice(0, 2)) other = generateId();
    await assert.rejects(s.set(other, { v: 4 }, MINUTE), (err: unknown) => err instanceof StorageError && err.status === 503 && /ENOTDIR/.test(err.message), 'a 503 naming the cause');
    // And with a dangling link where the folder was: made again it would be a link, so refused.
    rmSync(parent);
    mkdirSync(parent, { mode: 0o700 });
    symlinkSync(join(dir, 'nowhere'), path);
    await assert.rejects(
      s.set(other, { v: 5 }, MINUTE),
      (err: unknown) => err instanceof StorageError && err.status === 503 && /could not make the session folder again: .*symbolic link/.test(err.message),
      'a 503 saying the folder could not be made again',
    );
    assert.equal(existsSync(join(dir, 'nowhere')), false, 'nothing made through the link');
    rmSync(path);
    mkdirSync(path, { recursive: true, mode: 0o700 });
    assert.deepEqual(errors, [], 'nothing reported');
  });

  it('reports a header rewrite that fails, without failing the request or losing the session', async (t) => {
    const { dir, clock, errors, make } = setup(t);
    const s = make();
    const id = generateId();
    await s.set(id, { v: 1 }, MINUTE);
    const file = fileOf(dir, id);
    const real = fsCalls.io.open;
    t.mock.method(fsCalls.io, 'open', (path: string, flags: number, mode: number) => (path === file && (flags & fsc.O_RDWR) !== 0 ? Promise.reject(fsError('EIO')) : real(path, flags, mode)));
    clock.advance(1_000);
    await s.touch(id, MINUTE);
    await s.flush();
    assert.deepEqual(codes(errors), ['ESTORAGE'], 'the failed header rewrite is reported');
    assert.match(errors[0]?.message ?? '', /could not extend .*EIO/, 'saying the lifetime could not be extended, and why');
    assert.deepEqual(await s.get(id), { v: 1 }, 'the session still reads back');
  });

  it('fails remove() with a StorageError when the file cannot be deleted', async (t) => {
    const { dir, make } = setup(t);
    const s = make();
    const id = generateId();
    mkdirSync(join(fileOf(dir, id), 'x'), { recursive: true, mode: 0o700 }); // a folder: unlink fails
    await assert.rejects(s.remove(id), (err: unknown) => err instanceof StorageError && err.status === 503 && /could not delete/.test(err.message), 'a file that cannot be deleted fails remove() with a 503');
  });

  it('keeps going when onError itself throws', async (t) => {
    const { dir, make } = setup(t);
    const s = make({
      onError: () => {
        throw new Error('hook failed');
      },
    });
    const id = generateId();
    plant(dir, id, 'garbage');
    assert.equal(await s.get(id), undefined, 'the garbage file reads as no session despite the hook throwing');
    await s.set(id, { ok: true }, MINUTE);
    assert.deepEqual(await s.get(id), { ok: true }, 'and the storage keeps serving');
  });

  it('sweeps a removed folder as empty, and rejects when the folder is not readable as one', async (t) => {
    const { dir, make } = setup(t);
    const s = make();
    // A stray file named like a shard, and a folder at a hash's name: skipped.
    writeFileSync(join(dir, 'ab'), 'x');
    mkdirSync(join(dir, 'cd', hashOf('x')), { recursive: true });
    assert.equal(await s.sweep(), 0, 'a stray file named like a shard and a folder named like a session are skipped');
    rmSync(dir, { recursive: true });
    assert.equal(await s.sweep(), 0, 'a folder removed behind its back sweeps as empty');
    writeFileSync(dir, 'not a folder');
    await assert.rejects(s.sweep(), { code: 'ENOTDIR' }, 'a file where the folder was rejects with ENOTDIR');
    rmSync(dir);
  });
});

describe('FileStorage: destroy, regenerate, close', () => {
  it('deletes the file on remove(), even when a set of that id is still under way', async (t) => {
    const { dir, errors, make } = setup(t);
    const s = make();
    const id = generateId();
    await s.set(id, { a: 1 }, MINUTE);
    await s.remove(id);
    assert.equal(existsSync(fileOf(dir, id)), false, 'remove() deleted the file');
    assert.equal(await s.get(id), undefined, 'and the session reads as missing');
    await s.remove(id); // a missing one is no error

    for (let round = 0; round < 5; round++) {
      const other = generateId();
      const writing = s.set(other, { round }, MINUTE); // not awaited
      const removing = s.remove(other);
      await Promise.all([writing, removing]);
      assert.equal(existsSync(fileOf(dir, other)), false, 'a remove right after an unawaited set leaves no file');
      assert.equal(await s.get(other), undefined, 'and the session reads as missing');
    }
    assert.deepEqual(entries(dir).flatMap((shard) => readdirSync(join(dir, shard))), [], 'no file is left in any shard');
    assert.deepEqual(errors, [], 'nothing reported');
  });

  it('cannot bring a removed session back through a read of its file under way', async (t) => {
    const { dir, errors, make } = setup(t);
    const writer = make();
    const id = generateId();
    await writer.set(id, { a: 1 }, MINUTE);
    await writer.close();
    const s = make();
    const file = fileOf(dir, id);
    // The read has opened the file (so it will see its bytes) when the remove runs.
    const gate = gateOpen(t, (path) => path === file);
    const reading = s.get(id);
    await gate.reached;
    await s.remove(id);
    gate.release();
    await reading; // either answer is fine for a read that raced the remove…
    assert.equal(await s.get(id), undefined, '…but afterwards the session is gone');
    assert.equal(s.sizeInMemory, 0, 'nothing is held in memory for it');
    assert.equal(existsSync(file), false, 'its file is gone');
    assert.deepEqual(errors, [], 'nothing reported');
  });

  it('lets a write made while the file was being read win over the file\'s older data', async (t) => {
    const { dir, errors, make } = setup(t);
    const writer = make();
    const id = generateId();
    await writer.set(id, { v: 'old' }, MINUTE);
    await writer.close();
    const s = make();
    const gate = gateOpen(t, (path) => path === fileOf(dir, id));
    const reading = s.get(id);
    await gate.reached;
    await s.set(id, { v: 'new' }, MINUTE);
    gate.release();
    assert.deepEqual(await reading, { v: 'new' }, 'the read under way answers the newer write');
    assert.deepEqual(await s.get(id), { v: 'new' }, 'and so does the next read');
    assert.deepEqual(errors, [], 'nothing reported');
  });

  it('lets a write made while an expired file was being read win, and keeps its file', async (t) => {
    const { dir, clock, errors, make } = setup(t);
    const writer = make();
    const id = generateId();
    await writer.set(id, { v: 'old' }, 1_000);
    await writer.close();
    clock.advance(2_000);
    const s = make();
    const gate = gateOpen(t, (path) => path === fileOf(dir, id));
    const reading = s.get(id);
    await gate.reached;
    await s.set(id, { v: 'new' }, MINUTE);
    gate.release();
    assert.deepEqual(await reading, { v: 'new' }, 'the read under way answers the newer write, not the expired file');
    await s.close();
    assert.deepEqual(bodyOf(fileOf(dir, id)), { v: 'new' }, 'the new write is on disk, not deleted as expired');
    assert.deepEqual(errors, [], 'nothing reported');
  });

  it('shares one file read between concurrent gets of a session not in memory', async (t) => {
    const { dir, make } = setup(t);
    const writer = make();
    const id = generateId();
    await writer.set(id, { a: 1 }, MINUTE);
    await writer.close();
    const s = make();
    const opens = t.mock.method(fsCalls, 'open');
    const all = await Promise.all(Array.from({ length: 10 }, () => s.get(id)));
    for (const data of all) assert.deepEqual(data, { a: 1 }, 'every concurrent get answers the session');
    assert.equal(opens.mock.calls.filter((c) => String(c.arguments[0]) === fileOf(dir, id)).length, 1, 'its file was opened once for all of them');
  });

  it('counts an unflushed renewal of a session that left memory when it reads the file again', async (t) => {
    const { dir, clock, errors, make } = setup(t);
    const s = make({ maxInMemory: 1 });
    const id = generateId();
    await s.set(id, { a: 1 }, 1_000);
    clock.advance(500);
    await s.touch(id, MINUTE); // now + 1 minute, not on disk yet
    await s.set(generateId(), { other: true }, MINUTE); // pushes `id` out of memory
    clock.advance(1_000); // the file's header has expired, the renewal has not
    assert.deepEqual(await s.get(id), { a: 1 }, 'the session left memory but its unflushed renewal keeps it alive');
    await s.flush();
    assert.equal(expiryOf(fileOf(dir, id)), clock.ms - 1_000 + MINUTE, 'the flush writes that renewal');
    assert.deepEqual(errors, [], 'nothing reported');
  });

  it('does not lose a renewal while a flush of many renewals is under way', async (t) => {
    const { dir, clock, errors, make } = setup(t);
    const s = make({ maxInMemory: 1 });
    // 20 sessions renewed (more than a flush writes at once), then the one under test.
    const others = Array.from({ length: 20 }, () => generateId());
    for (const o of others) await s.set(o, { o }, MINUTE);
    const id = generateId();
    await s.set(id, { a: 1 }, 1_000);
    clock.advance(500);
    for (const o of others) await s.touch(o, MINUTE);
    await s.touch(id, MINUTE);
    await s.set(generateId(), { other: true }, MINUTE); // pushes `id` out of memory
    clock.advance(1_000); // `id`'s header has expired; its renewal is pending

    // The flush starts and stalls on every other session's header (it writes 16 at once, so
    // `id`'s renewal waits its turn); `id` is read meanwhile.
    const otherFiles = new Set(others.map((o) => fileOf(dir, o)));
    const real = fsCalls.io.open;
    let stalled = 0;
    let allStalled!: () => void;
    let release!: () => void;
    const reached = new Promise<void>((resolve) => (allStalled = resolve));
    const released = new Promise<void>((resolve) => (release = resolve));
    t.mock.method(fsCalls.io, 'open', async (path: string, flags: number, mode: number): Promise<number> => {
      if (otherFiles.has(path) && (flags & fsc.O_RDWR) !== 0) {
        if (++stalled === 16) allStalled();
        await released;
      }
      return real(path, flags, mode);
    });
    const flushing = s.flush();
    await reached;
    // A write of a session whose renewal is still waiting in the flush: the write carries it.
    const last = others[19] as string;
    await s.set(last, { rewritten: true }, 2 * MINUTE);
    const reading = s.get(id);
    const result = await Promise.race([reading, flushing.then(() => 'flush ended first')]);
    release();
    await flushing;
    assert.deepEqual(result, { a: 1 }, 'the read answered while the flush was still under way');
    assert.deepEqual(await s.get(id), { a: 1 }, 'and reads back again');
    assert.equal(existsSync(fileOf(dir, id)), true, 'its file is still there');
    assert.equal(expiryOf(fileOf(dir, id)), clock.ms - 1_000 + MINUTE, 'the renewal waiting in the flush reached the header');
    assert.equal(expiryOf(fileOf(dir, last)), clock.ms + 2 * MINUTE, 'the write carried the renewal it replaced in the flush');
    assert.deepEqual(bodyOf(fileOf(dir, last)), { rewritten: true }, 'and its data');
    assert.deepEqual(errors, [], 'nothing reported');
  });

  it('close() writes pending renewals and waits for writes under way', async (t) => {
    const { dir, clock, errors, make } = setup(t);
    const s = make();
    const a = generateId();
    const b = generateId();
    await s.set(a, { a: 1 }, MINUTE);
    clock.advance(1_000);
    await s.touch(a, MINUTE);
    const writing = s.set(b, { b: 1 }, MINUTE); // not awaited
    await s.close();
    assert.equal(expiryOf(fileOf(dir, a)), clock.ms + MINUTE, 'close() flushed the pending renewal');
    assert.deepEqual(bodyOf(fileOf(dir, b)), { b: 1 }, 'the write was finished by close()');
    await writing;
    await s.close(); // twice is fine
    assert.deepEqual(errors, [], 'nothing reported');
  });

  it('close() also waits for reads under way and the file work they queue', async (t) => {
    const { dir, errors, make } = setup(t);
    const s = make();
    const id = generateId();
    const file = plant(dir, id, 'torn');
    const gate = gateOpen(t, (path) => path === file);
    const reading = s.get(id);
    await gate.reached;
    const closing = s.close();
    gate.release();
    await closing;
    assert.equal(existsSync(`${file}.bad`), true, 'set aside before close() resolved');
    assert.deepEqual(codes(errors), ['ECORRUPT'], 'the corrupt file was reported once');
    assert.equal(await reading, undefined, 'the read under way answered no session');
  });

  it('lets a program that used it exit by itself, closed or not', async (t) => {
    const dir = tempDir(t, 'bare-session-file-');
    for (const mode of ['close', 'no-close']) {
      const folder = join(dir, mode);
      // The child's safety kill is the deadline, not a sleep: a program that does not exit by
      // itself is killed, and `exited` rejects saying so.
      const { code, signal, stdout, stderr } = await startChild(CLOSE_EXIT, { args: [folder, mode], t }).exited;
      assert.equal(signal, null, `the ${mode} program exited by itself: ${stderr}`);
      assert.equal(code, 0, `the ${mode} program exited cleanly: ${stderr}`);
      const file = fileOf(folder, stdout.trim());
      assert.deepEqual(bodyOf(file), { n: 1 }, `the ${mode} program's session was written`);
      // close() flushed the pending renewal to ~2 h; without close it is still the set's ~1 h.
      const hoursLeft = (expiryOf(file) - Date.now()) / 3_600_000;
      if (mode === 'close') assert.ok(hoursLeft > 1.9 && hoursLeft <= 2, `close() wrote the pending renewal to 2 h (${hoursLeft} h left)`);
      else assert.ok(hoursLeft > 0.9 && hoursLeft <= 1, `without close() the header keeps the write's 1 h (${hoursLeft} h left)`);
      // The folder's lock is released by close(), or when the process exits without it.
      assert.deepEqual(readdirSync(folder).filter((n) => n.startsWith('.lock')), [], `no lock left behind (${mode})`);
    }
  });
});

describe('FileStorage: crashes and the seed program', () => {
  it('keeps every acknowledged write across kill -9 during concurrent writes (3 seeded rounds)', async (t) => {
    // The harness of `npm run test:crash` (100 rounds), three rounds of it: kill -9 once a seeded
    // random number of writes were acknowledged, with others in flight; then every acknowledged
    // value (or a later one) must read back and no file may be unreadable.
    // One writer thread per server (npm run test:crash runs the default four): a thread started
    // from the TypeScript sources takes a while to load, and each round starts a server.
    const report = await crashRounds(tempDir(t, 'bare-session-file-'), 3, { seed: 0x5e5510, writerThreads: 1 });
    assert.equal(report.rounds, 3, 'all three rounds ran');
    assert.ok(report.acknowledged > 3 * 20, `only ${report.acknowledged} writes acknowledged`);
    assert.deepEqual(report.details, [], 'no round found a problem');
    assert.equal(report.lost, 0, 'no acknowledged write was lost');
    assert.equal(report.unreadable, 0, 'no file was left unreadable');
  });

  it('runs the seed walk-through of examples/file.ts: set, get, restart keeps it, past the max age it is gone', async (t) => {
    // examples/file.ts uses the default folder, os.tmpdir()/bare-session-<uid>-file-<hash>: TMPDIR points the
    // child's os.tmpdir() at a private temporary folder instead.
    const tmp = tempDir(t, 'bare-session-file-');
    const example = join(ROOT, 'examples', 'file.ts');
    const start = async (): Promise<{ child: Child; port: number }> => {
      const child = startChild(example, { env: { TMPDIR: tmp, PORT: '0' }, t });
      const [, port] = await child.line(/listening on http:\/\/localhost:(\d+)/);
      return { child, port: Number(port) };
    };
    const stop = async (child: Child): Promise<void> => {
      const { code, stderr } = await child.stop('SIGTERM');
      assert.equal(code, 0, `the example stopped cleanly on SIGTERM: ${stderr}`);
    };
    const jar = new Jar();

    let server = await start();
    assert.equal((await jar.send(server.port, '/set')).body, 'ok', 'the example stores the time');
    const got = await jar.send(server.port, '/get');
    assert.match(got.body, /^\{"time":\d+\}$/, 'and reads it back as JSON');
    await stop(server.child);

    server = await start();
    assert.equal((await jar.send(server.port, '/get')).body, got.body, 'kept across a restart');
    await stop(server.child);

    // The max age is one minute and the child runs on the real clock, which a test cannot move.
    // So the minute passes on disk instead: with the server stopped, the expiry in the session
    // file's header is set to a time in the past, exactly as if the minute had gone by.
    // The default folder: this user, the script's name and the hash of its real path.
    const folder = join(tmp, `bare-session-${process.getuid?.()}-file-${hashOf(realpathSync(example)).slice(0, 8)}`);
    const file = fileOf(folder, jar.cookies.get('sid') as string);
    const bytes = readFileSync(file);
    bytes.write(String(Date.now() - 1_000).padStart(16, '0'), 4, 'latin1');
    writeFileSync(file, bytes);

    server = await start();
    assert.equal((await jar.send(server.port, '/get')).body, '{}', 'past its max age the session reads as empty');
    await stop(server.child);
    assert.equal(existsSync(file), false, 'the expired file was deleted');
  });
});

/** What {@link watchThreads} saw: a message posted to a thread. */
interface Posted {
  /** The thread's id. */
  thread: number;
  /** The files of the requests it carried (none for the message that asks a thread to stop). */
  files: string[];
  /** What each request asked: `'write'` or `'header'`, in the order of `files`. */
  kinds: string[];
}

/**
 * Follows requests to their threads: every message posted to a worker, in order. A thread for
 * which `kill` says true is terminated instead, as an out-of-memory or a bug in it would.
 */
function watchThreads(t: TestContext, kill: (threadId: number) => boolean = () => false): Posted[] {
  const posted: Posted[] = [];
  const post = Worker.prototype.postMessage;
  t.mock.method(Worker.prototype, 'postMessage', function (this: Worker, ...args: Parameters<typeof post>) {
    const batch: unknown = args[0];
    // A write names its file; a request of renewals ('headers') names many: one entry each.
    const requests = (Array.isArray(batch) ? (batch as { file?: string; files?: string[]; kind: string }[]) : []).flatMap((r) =>
      r.files === undefined ? [{ file: r.file as string, kind: r.kind }] : r.files.map((file) => ({ file, kind: 'header' })),
    );
    posted.push({ thread: this.threadId, files: requests.map((r) => r.file), kinds: requests.map((r) => r.kind) });
    if (kill(this.threadId)) return void this.terminate();
    return post.apply(this, args);
  });
  return posted;
}

describe('FileStorage: the writer threads (the default)', () => {
  it('writes, restores and coalesces on its thread, the newest data winning, 0600', async (t) => {
    const { dir, make } = setup(t);
    const s = make({ writerThreads: 4 });
    const id = generateId();
    await Promise.all(Array.from({ length: 50 }, (_, i) => s.set(id, { i }, MINUTE)));
    assert.deepEqual(bodyOf(fileOf(dir, id)), { i: 49 }, 'the newest of 50 concurrent writes is on disk');
    assert.equal((statSync(fileOf(dir, id)).mode & 0o777).toString(8), '600', 'written 0600 by the thread');
    const others = Array.from({ length: 100 }, generateId);
    await Promise.all(others.map((o, i) => s.set(o, { i }, MINUTE)));
    await s.close();
    const again = make({ writerThreads: 4 });
    assert.deepEqual(await again.get(id), { i: 49 }, 'it reads back after a restart');
    for (const [i, o] of others.entries()) assert.deepEqual(await again.get(o), { i }, 'each of 100 more sessions reads back after a restart');
    for (const bad of [-1, 1.5, 65, '4', true, Number.NaN]) {
      assert.throws(() => make({ writerThreads: bad as never }), (err: unknown) => err instanceof TypeError && /option writerThreads is invalid/.test(err.message), 'an invalid writerThreads is refused, naming the option');
    }
  });

  it(
    'keeps the previous file when the folder refuses new files, leaving no temporary file',
    { skip: IS_ROOT ? false : 'chattr +i needs root; CI runs as root' },
    async (t) => {
      const { dir, errors, make } = setup(t);
      const s = make({ writerThreads: 4 });
      const id = generateId();
      await s.set(id, { v: 'previous' }, MINUTE);
      const file = fileOf(dir, id);
      const before = readFileSync(file);
      // An immutable folder refuses to create or rename files, even for root (ext4 and most
      // local file systems; the temporary folder here is one).
      spawnSync('chattr', ['+i', join(file, '..')]);
      t.after(() => spawnSync('chattr', ['-i', join(file, '..')]));
      await assert.rejects(s.set(id, { v: 'next' }, MINUTE), (err: unknown) => err instanceof StorageError && err.status === 503 && /EPERM/.test(err.message), 'an immutable folder fails the write with a 503 naming EPERM');
      spawnSync('chattr', ['-i', join(file, '..')]);
      assert.deepEqual(readFileSync(file), before, 'the previous file is untouched');
      assert.deepEqual(readdirSync(join(file, '..')), [hashOf(id)], 'no temporary file left');
      assert.deepEqual(await s.get(id), { v: 'previous' }, 'the memory copy was dropped: the previous data reads');
      await s.set(id, { v: 'after' }, MINUTE);
      assert.deepEqual(bodyOf(file), { v: 'after' }, 'a write once the folder is writable again succeeds');
      assert.deepEqual(errors, [], 'nothing reported');
    },
  );

  it('spreads files over its threads, each file on one, so the last write of a file wins; what one turn asks of a thread goes as one message', async (t) => {
    const writer = new Writer(3);
    t.after(() => writer.close());
    const dir = tempDir(t);
    const posted = watchThreads(t);
    const file = (i: number): string => join(dir, `f${i}`);
    // 30 files over the three lanes, and 20 writes in flight to one file on one lane, asked at once.
    const writes = Array.from({ length: 30 }, (_, i) => writer.write(`${file(i)}.tmp`, file(i), `file ${i}`, false, i));
    const same = Array.from({ length: 20 }, (_, k) => writer.write(`${file(99)}.${k}.tmp`, file(99), `write ${k}`, false, 99));
    await Promise.all([...writes, ...same]);
    assert.deepEqual(posted.map((p) => p.files.length), [30, 10, 10], 'one message per thread: lane 0 took its 10 files and the 20 writes of lane 99 (0 of 3), lanes 1 and 2 their 10');
    assert.equal(new Set(posted.map((p) => p.thread)).size, 3, 'three threads started');
    const threadOf = new Map(posted.flatMap((p) => p.files.map((f) => [f, p.thread] as const)));
    for (let i = 0; i < 30; i++) {
      assert.equal(threadOf.get(file(i)), threadOf.get(file(i % 3)), `lane ${i} on the thread of lane ${i % 3}`);
      assert.equal(readFileSync(file(i), 'utf8'), `file ${i}`, 'each file holds what its lane wrote');
    }
    assert.equal(threadOf.get(file(99)), threadOf.get(file(0)), 'lane 99 is lane 0 of 3');
    assert.equal(readFileSync(file(99), 'utf8'), 'write 19', 'the last of 20 writes to one file on one lane wins');
    assert.deepEqual(readdirSync(dir).filter((n) => n.endsWith('.tmp')), [], 'no temporary file is left');

    // Asked in turns of their own, writes go one message each; asked right before close(), they
    // are sent before the thread is asked to stop, and done.
    const before = posted.length;
    await writer.write(`${file(0)}.tmp`, file(0), 'again', false, 0);
    await writer.write(`${file(0)}.tmp`, file(0), 'and again', false, 0);
    assert.equal(posted.length - before, 2, 'two writes in two turns: two messages');
    const last = writer.write(`${file(1)}.tmp`, file(1), 'last', false, 1);
    await writer.close();
    await last;
    assert.equal(readFileSync(file(1), 'utf8'), 'last', 'the write asked right before close() was done');
  });

  it('rewrites every header of a batch of renewals on the first thread, whatever thread wrote the file', async (t) => {
    const { dir, clock, errors, make } = setup(t);
    const s = make({ writerThreads: 4 });
    const posted = watchThreads(t);
    // A file's lane: its shard, mod 4. 100 ids or more, until each lane has one: never left to chance.
    const laneOf = (id: string): number => Number.parseInt(hashOf(id).slice(0, 2), 16) % 4;
    const ids: string[] = [];
    const lanes = new Set<number>();
    while (ids.length < 100 || lanes.size < 4) {
      const id = generateId();
      ids.push(id);
      lanes.add(laneOf(id));
    }
    await Promise.all(ids.map((id, i) => s.set(id, { i }, MINUTE)));
    const writes = posted.filter((p) => p.kinds.includes('write'));
    assert.equal(new Set(writes.map((p) => p.thread)).size, 4, 'the files were written by all four threads (by shard)');
    const firstLane = new Set(ids.filter((id) => laneOf(id) === 0).map((id) => fileOf(dir, id)));
    const threadOfLane0 = writes.find((p) => p.files.some((f) => firstLane.has(f)))?.thread;
    assert.ok(threadOfLane0 !== undefined, 'some file went to the first thread (shard 0 of 4)');

    clock.advance(10_000);
    for (const id of ids) await s.touch(id, MINUTE);
    const before = posted.length;
    await s.flush();
    const renewals = posted.slice(before).filter((p) => p.kinds.includes('header'));
    assert.deepEqual(renewals.flatMap((p) => p.files).sort(), ids.map((id) => fileOf(dir, id)).sort(), `the flush asked for the header of each of the ${ids.length} files once`);
    assert.deepEqual([...new Set(renewals.map((p) => p.thread))], [threadOfLane0], 'every header went to the first thread, none to the thread that wrote its file');
    const sizes = renewals.map((p) => p.files.length);
    assert.ok(Math.max(...sizes) <= 64 && Math.max(...sizes) > 1, `batched, at most 64 header rewrites a message, so that a write of that thread never waits behind more: ${sizes.join(', ')}`);
    for (const id of ids) assert.equal(expiryOf(fileOf(dir, id)), clock.ms + MINUTE, 'each header holds its renewal');
    assert.deepEqual(errors, [], 'nothing reported');
  });

  it('holds each file of a batch of renewals in its queue: a write asked meanwhile is sent only once the batch is answered, and wins', async (t) => {
    const { dir, clock, errors, make } = setup(t);
    const s = make({ writerThreads: 2 });
    const posted = watchThreads(t);
    // How many messages had been posted when each answer from a thread arrived.
    const answeredAt: number[] = [];
    const emit = Worker.prototype.emit;
    t.mock.method(Worker.prototype, 'emit', function (this: Worker, name: string | symbol, ...args: unknown[]) {
      if (name === 'message') answeredAt.push(posted.length);
      return emit.call(this, name, ...args);
    });
    const ids = Array.from({ length: 20 }, generateId);
    await Promise.all(ids.map((id, i) => s.set(id, { i }, MINUTE)));
    clock.advance(10_000);
    for (const id of ids) await s.touch(id, MINUTE);
    const late = ids[7] as string;
    const flushed = s.flush();
    // The batch is asked (it goes at the end of this turn); the write comes in the same turn.
    const written = s.set(late, { late: true }, 2 * MINUTE);
    await Promise.all([flushed, written]);
    const batch = posted.findIndex((p) => p.kinds.includes('header'));
    const write = posted.findIndex((p, i) => i > batch && p.kinds.includes('write') && p.files.includes(fileOf(dir, late)));
    assert.ok(batch !== -1 && posted[batch]?.files.length === ids.length, `the ${ids.length} renewals went as one request`);
    assert.ok(write > batch, 'the write was posted after the batch');
    assert.ok(answeredAt.some((n) => n > batch && n <= write), 'and only after the batch was answered: the file was held meanwhile, not written under the renewal');
    assert.deepEqual(bodyOf(fileOf(dir, late)), { late: true }, 'the write is on disk');
    assert.equal(expiryOf(fileOf(dir, late)), clock.ms + 2 * MINUTE, 'with its own expiry');
    for (const id of ids.filter((x) => x !== late)) assert.equal(expiryOf(fileOf(dir, id)), clock.ms + MINUTE, 'every other header holds its renewal');
    assert.deepEqual(errors, [], 'nothing reported');
  });

  it('in a batch of renewals, renews a file busy with a write through its queue, sets aside what is not a session file, and renews the rest', async (t) => {
    const { dir, clock, errors, make } = setup(t);
    const s = make({ writerThreads: 2 });
    const posted = watchThreads(t);
    const ids = Array.from({ length: 12 }, generateId);
    await Promise.all(ids.map((id, i) => s.set(id, { i }, MINUTE)));
    clock.advance(10_000);
    for (const id of ids) await s.touch(id, MINUTE);
    const [busy, garbled, folder] = ids as [string, string, string];
    writeFileSync(fileOf(dir, garbled), 'not a session file');
    rmSync(fileOf(dir, folder));
    mkdirSync(fileOf(dir, folder));
    const before = posted.length;
    // A write under way when the flush starts, held on its way to its thread until the batch is
    // out, and a renewal after it: the file cannot be held.
    let letGo!: () => void;
    const heldBack = new Promise<void>((resolve) => (letGo = resolve));
    const post = Worker.prototype.postMessage;
    t.mock.method(Worker.prototype, 'postMessage', function (this: Worker, ...args: Parameters<typeof post>) {
      const batch = args[0] as { kind?: string; file?: string }[] | string;
      if (Array.isArray(batch) && batch.some((r) => r.kind === 'write' && r.file === fileOf(dir, busy))) return void heldBack.then(() => post.apply(this, args));
      return post.apply(this, args);
    });
    const writing = s.set(busy, { busy: true }, MINUTE);
    await turn();
    assert.equal(await s.touch(busy, MINUTE), true, 'renewed while its write is out');
    const flushed = s.flush();
    await turn();
    letGo();
    await Promise.all([flushed, writing]);
    // The header rewrites of each message (a message may also carry writes of its thread).
    const renewals = posted
      .slice(before)
      .map((p) => p.files.filter((_, i) => p.kinds[i] === 'header'))
      .filter((files) => files.length > 0);
    const big = renewals.find((files) => files.length > 1);
    assert.ok(big !== undefined && big.length === ids.length - 1 && !big.includes(fileOf(dir, busy)), 'the busy file was left out of the batch of the others');
    assert.ok(renewals.some((files) => files.length === 1 && files[0] === fileOf(dir, busy)), 'and renewed through its queue, after its write');
    assert.deepEqual(bodyOf(fileOf(dir, busy)), { busy: true }, 'its write stands');
    assert.ok(existsSync(`${fileOf(dir, garbled)}.bad`) && !existsSync(fileOf(dir, garbled)), 'a file that is not a session file is set aside');
    assert.ok(existsSync(`${fileOf(dir, folder)}.bad`) && !existsSync(fileOf(dir, folder)), 'so is a folder at a session\'s name (its rewrite failed)');
    for (const id of ids.slice(3)) assert.equal(expiryOf(fileOf(dir, id)), clock.ms + MINUTE, 'every other header holds its renewal');
    assert.deepEqual(codes(errors), ['ECORRUPT', 'ECORRUPT'], 'the two set-asides are reported, nothing else');
  });

  it('reports every renewal of a batch whose thread died, releases their files, and renews them at the next batch', async (t) => {
    const { dir, clock, errors, make } = setup(t);
    const s = make({ writerThreads: 1 });
    let kill = false;
    watchThreads(t, () => kill);
    const ids = Array.from({ length: 10 }, generateId);
    await Promise.all(ids.map((id, i) => s.set(id, { i }, MINUTE)));
    clock.advance(10_000);
    for (const id of ids) await s.touch(id, MINUTE);
    kill = true;
    await s.flush();
    kill = false;
    assert.equal(errors.length, ids.length, 'each renewal lost with the thread is reported');
    assert.ok(errors.every((e) => /could not extend a session file's lifetime/.test(e.message)), 'as a renewal that failed');
    for (const id of ids) assert.equal(expiryOf(fileOf(dir, id)), clock.ms - 10_000 + MINUTE, 'no header was renewed');
    await s.set(ids[0] as string, { after: true }, MINUTE);
    assert.deepEqual(bodyOf(fileOf(dir, ids[0] as string)), { after: true }, 'a file of the failed batch is not left held: a write of it goes through');
    clock.advance(1_000);
    for (const id of ids) await s.touch(id, MINUTE);
    await s.flush();
    for (const id of ids) assert.equal(expiryOf(fileOf(dir, id)), clock.ms + MINUTE, 'the next batch renews them, on a thread started since');
  });

  it('sends what is asked after a thread died to the thread started since, even within the same turn', async (t) => {
    const writer = new Writer(1);
    t.after(() => writer.close());
    const dir = tempDir(t);
    const workers: Worker[] = [];
    const ref = Worker.prototype.ref;
    t.mock.method(Worker.prototype, 'ref', function (this: Worker) {
      workers.push(this);
      return ref.call(this);
    });
    const posted = watchThreads(t);
    const first = writer.write(join(dir, 'a.tmp'), join(dir, 'a'), 'a', false);
    const old = workers[0] as Worker;
    t.after(() => old.terminate());
    // The thread's death reaches the writer before the turn in which it was asked ends (an 'exit'
    // event can come in the same poll phase as the call that asked); a write follows at once.
    old.emit('exit', 1);
    const second = writer.write(join(dir, 'b.tmp'), join(dir, 'b'), 'b', false);
    await assert.rejects(first, (err: unknown) => (err as { code?: string }).code === 'EWRITER', 'the write asked of the dead thread failed');
    await new Promise((resolve) => setImmediate(resolve));
    const carrier = posted.find((p) => p.files.includes(join(dir, 'b')));
    assert.ok(carrier !== undefined && carrier.thread !== old.threadId, 'the second write went to a new thread, not with the first to the dead one');
    await second;
    assert.equal(readFileSync(join(dir, 'b'), 'utf8'), 'b', 'and was done');
  });

  it('keeps the process alive until a thread asked to stop has stopped, after it answered', async (t) => {
    // The thread's exit is held after it answered its last write and was asked to stop: were the
    // worker unref'd by that answer, nothing would keep this process alive, and close() would
    // never resolve (the test runner reports the test cancelled).
    const writer = new Writer(1, { module: new URL('../../fixtures/slow-exit.ts', import.meta.url).href, data: 200 });
    const dir = tempDir(t);
    const written = writer.write(join(dir, 'f.tmp'), join(dir, 'f'), 'last', false);
    await writer.close();
    await written;
    assert.equal(readFileSync(join(dir, 'f'), 'utf8'), 'last', 'the write was done, and close() resolved once the thread stopped');
  });

  it('starts a thread again after it died, failing only the writes it had under way', async (t) => {
    const writer = new Writer(2);
    t.after(() => writer.close());
    const dir = tempDir(t);
    let victim: number | undefined;
    const posted = watchThreads(t, (thread) => thread === victim);
    await Promise.all([writer.write(join(dir, 'a.tmp'), join(dir, 'a'), 'a', false, 0), writer.write(join(dir, 'b.tmp'), join(dir, 'b'), 'b', false, 1)]);
    const [lane0, lane1] = posted.map((p) => p.thread);
    // Kill lane 0's thread from outside, as an out-of-memory or a bug in it would; lane 1 goes on.
    victim = lane0;
    const [dead, alive] = await Promise.allSettled([
      writer.write(join(dir, 'a.tmp'), join(dir, 'a'), 'a2', false, 0),
      writer.write(join(dir, 'b.tmp'), join(dir, 'b'), 'b2', false, 1),
    ]);
    assert.equal(dead.status, 'rejected', 'the write on the killed thread failed');
    assert.equal((dead as PromiseRejectedResult).reason.code, 'EWRITER', 'with the code EWRITER');
    assert.equal(alive.status, 'fulfilled', 'the write on the other thread succeeded');
    assert.equal(readFileSync(join(dir, 'a'), 'utf8'), 'a', 'the failed write left the previous file');
    assert.equal(readFileSync(join(dir, 'b'), 'utf8'), 'b2', 'the other thread wrote its file');
    // The next write on lane 0 starts a new thread; lane 1 keeps its own.
    await writer.write(join(dir, 'a.tmp'), join(dir, 'a'), 'a3', false, 0);
    await writer.write(join(dir, 'b.tmp'), join(dir, 'b'), 'b3', false, 1);
    assert.notEqual(posted[4]?.thread, lane0, 'a new thread for lane 0');
    assert.equal(posted[5]?.thread, lane1, 'lane 1 kept its thread');
    assert.equal(readFileSync(join(dir, 'a'), 'utf8'), 'a3', 'the new thread of lane 0 writes');
    assert.equal(readFileSync(join(dir, 'b'), 'utf8'), 'b3', 'and so does lane 1');
  });

  it('answers 503 for a write whose thread died, and writes that session again after', async (t) => {
    const { dir, make } = setup(t);
    const s = make({ writerThreads: 4 });
    await s.set(generateId(), { a: 1 }, MINUTE);
    let kill = true;
    watchThreads(t, () => kill);
    // The same id goes to the same thread: the retry proves that thread was started again.
    const victim = generateId();
    await assert.rejects(s.set(victim, { b: 2 }, MINUTE), (err: unknown) => err instanceof StorageError && err.status === 503 && /EWRITER/.test(err.message), 'a write on a thread that died is a 503 naming EWRITER');
    kill = false;
    await s.set(victim, { c: 3 }, MINUTE);
    assert.deepEqual(bodyOf(fileOf(dir, victim)), { c: 3 }, 'the same session is written by the thread started again');
  });
});
