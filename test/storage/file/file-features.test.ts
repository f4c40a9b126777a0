/**
 * FileStorage's optional methods of the contract, on real files with an injected clock, where
 * the file storage differs from memory: `patch` over sessions that left memory, the owner index
 * kept on disk (and across a restart), `count` and `list` walking headers, and the `expired`
 * events of `configure`. The contract itself runs in test/storage/contract.test.ts and the
 * features over HTTP in test/features.test.ts.
 */
import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { StorageError } from '../../../lib/errors.js';
import { generateId } from '../../../lib/id.js';
import { fsCalls } from '../../../lib/storage/file/files.js';
import { META, NOT_NOW, SYNC, type SessionData, type StorageEvent, type SyncStorage } from '../../../lib/storage/storage.js';
import { Jar, serve, tempDir, waitFor } from '../../helpers.js';
import { MINUTE, type OpenArgs, bodyOf, codes, fileOf, fsError, gateOpen, gateRename, hashOf, header, markerOf, ownerDirOf, plant, setup } from './helpers.js';

const owned = (owner: string, more: SessionData = {}): SessionData => ({ [META.owner]: owner, ...more });
const change = (set: SessionData, remove: string[] = [], clear = false) => ({ set, remove, clear });

/** The names in a folder, or none when it does not exist. */
function namesIn(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir).sort() : [];
}

describe('FileStorage.patch', () => {
  it('patches a session that left memory: one read of its file, one serialization, then the merged file', async (t) => {
    const { dir, make, errors } = setup(t);
    const first = make();
    const id = generateId();
    await first.set(id, { keep: 'x', drop: 1 }, MINUTE);
    await first.close();
    const s = make();
    const opens = t.mock.method(fsCalls, 'open');
    const stringify = t.mock.method(JSON, 'stringify');
    assert.equal(await s.patch(id, change({ add: [1] }, ['drop']), MINUTE), true, 'a session on disk only is patched');
    const serialized = stringify.mock.callCount();
    stringify.mock.restore();
    assert.equal(serialized, 1, 'the merged session was serialized once');
    assert.equal(opens.mock.calls.filter((c) => String(c.arguments[0]) === fileOf(dir, id)).length, 1, 'its file was read once');
    assert.deepEqual(bodyOf(fileOf(dir, id)), { keep: 'x', add: [1] }, 'the file holds the stored keys with the changes applied');
    assert.deepEqual({ ...(await s.get(id)) }, { keep: 'x', add: [1] }, 'memory agrees with the file');
    assert.deepEqual(errors, [], 'nothing reported');
  });

  it('applies each of 30 concurrent patches of a session not in memory to the result of the others', async (t) => {
    const { dir, make } = setup(t);
    const first = make();
    const id = generateId();
    await first.set(id, { start: true }, MINUTE);
    await first.close();
    const s = make();
    // All 30 wait on the one shared read of the file; each must merge into the entry as it is
    // when its turn comes, not into the copy that read returned.
    const results = await Promise.all(Array.from({ length: 30 }, (_, i) => s.patch(id, change({ [`k${i}`]: i }), MINUTE)));
    assert.ok(results.every((r) => r === true), 'every patch applied');
    const expected: SessionData = { start: true };
    for (let i = 0; i < 30; i++) expected[`k${i}`] = i;
    assert.deepEqual({ ...(await s.get(id)) }, expected, 'memory holds every key');
    await s.close();
    assert.deepEqual(bodyOf(fileOf(dir, id)), expected, 'and so does the file once the writes are done');
  });

  it('resolves false and writes nothing for a session missing, expired, or removed while its file is read', async (t) => {
    const { dir, clock, make } = setup(t);
    const s = make();
    const missing = generateId();
    assert.equal(await s.patch(missing, change({ a: 1 }), MINUTE), false, 'a missing session is not patched');
    assert.equal(existsSync(fileOf(dir, missing)), false, 'and no file is made for it');

    const expired = generateId();
    await s.set(expired, { a: 1 }, 1_000);
    clock.advance(1_001);
    assert.equal(await s.patch(expired, change({ b: 2 }), MINUTE), false, 'an expired session is not patched');
    assert.equal(await s.get(expired), undefined, 'and stays gone');

    const removed = generateId();
    await s.set(removed, { a: 1 }, MINUTE);
    await s.close();
    const cold = make();
    const reading = gateOpen(t, (path) => path === fileOf(dir, removed));
    const patching = cold.patch(removed, change({ back: true }), MINUTE);
    await reading.reached;
    await cold.remove(removed);
    reading.release();
    assert.equal(await patching, false, 'a session removed while its file was read is not patched');
    assert.equal(await cold.get(removed), undefined, 'nor brought back');
    await cold.close();
    assert.equal(existsSync(fileOf(dir, removed)), false, 'its file stays deleted');
    assert.equal(existsSync(fileOf(dir, expired)), false, 'the expired file was deleted by the read that found it');
  });

  it('refuses a patch over maxSize, changing neither memory nor the file', async (t) => {
    const { dir, make } = setup(t);
    const s = make();
    s.configure({ maxAgeMs: MINUTE, maxSize: 100 });
    const id = generateId();
    await s.set(id, { v: 'small' }, MINUTE);
    const before = readFileSync(fileOf(dir, id));
    await assert.rejects(s.patch(id, change({ big: 'x'.repeat(200) }), MINUTE), { code: 'ESESSIONTOOLARGE' }, 'the patch is refused as too large');
    assert.deepEqual({ ...(await s.get(id)) }, { v: 'small' }, 'memory is unchanged');
    assert.deepEqual(readFileSync(fileOf(dir, id)), before, 'the file is unchanged');
  });

  it('answers a failed write of a patch with a 503, keeps the previous file and drops the memory copy', async (t) => {
    const { dir, make } = setup(t);
    const s = make();
    const id = generateId();
    await s.set(id, { v: 1 }, MINUTE);
    const file = fileOf(dir, id);
    const before = readFileSync(file);
    const real = fsCalls.io.rename;
    const failing = t.mock.method(fsCalls.io, 'rename', (from: string, to: string) => (to === file ? Promise.reject(fsError('EIO')) : real(from, to)));
    await assert.rejects(
      s.patch(id, change({ v: 2 }), MINUTE),
      (err: unknown) => err instanceof StorageError && err.status === 503 && /could not write a session file \(EIO\); the previous version is kept/.test(err.message),
      'the failed write is a 503 that says the previous version is kept',
    );
    failing.mock.restore();
    assert.deepEqual(readFileSync(file), before, 'the previous file is in place');
    assert.deepEqual({ ...(await s.get(id)) }, { v: 1 }, 'the next read sees the file, not the patch that failed');
  });
});

describe('FileStorage: the owner index', () => {
  it('keeps an empty, private marker per session of an owner under owners/<sha256(owner)>, naming neither the id nor the owner', async (t) => {
    const { dir, make } = setup(t);
    const s = make();
    const id = generateId();
    await s.set(id, owned('ann@example.com', { x: 1 }), MINUTE);
    const marker = markerOf(dir, 'ann@example.com', id);
    const st = lstatSync(marker);
    assert.ok(st.isFile() && st.size === 0, 'the marker is an empty regular file');
    assert.equal(st.mode & 0o777, 0o600, 'readable by this user only');
    assert.equal(statSync(join(dir, 'owners')).mode & 0o777, 0o700, 'the owners folder is private');
    assert.equal(statSync(ownerDirOf(dir, 'ann@example.com')).mode & 0o777, 0o700, 'so is the owner\'s folder');
    const names = readdirSync(dir, { recursive: true }) as string[];
    assert.ok(names.every((n) => !n.includes(id) && !n.includes('ann')), 'no file name holds the id or the owner');
  });

  it('makes a marker only when a session\'s owner changes: ordinary writes and reloads cost no extra file call', async (t) => {
    const { dir, make } = setup(t);
    const s = make();
    const opens = t.mock.method(fsCalls, 'open');
    const markerCalls = (): number => opens.mock.calls.filter((c) => String(c.arguments[0]).startsWith(join(dir, 'owners'))).length;
    const id = generateId();
    await s.set(id, owned('ann', { n: 0 }), MINUTE);
    assert.equal(markerCalls(), 1, 'the first write with an owner makes its marker');
    for (let n = 1; n <= 5; n++) await s.set(id, owned('ann', { n }), MINUTE);
    for (let n = 6; n <= 10; n++) await s.patch(id, change({ n }), MINUTE);
    assert.equal(markerCalls(), 1, 'ten more writes with the same owner touch no marker');
    await s.close();
    const again = make();
    await again.patch(id, change({ n: 11 }), MINUTE);
    assert.equal(markerCalls(), 1, 'a session read back with its owner is known to be marked');
    await again.patch(id, change({ [META.owner]: 'bob' }), MINUTE);
    assert.equal(markerCalls(), 2, 'a new owner makes a new marker');
  });

  it('moves the marker when the owner changes, and deletes it with the owner or the session', async (t) => {
    const { dir, make, errors } = setup(t);
    const s = make();
    const id = generateId();
    await s.set(id, owned('ann'), MINUTE);
    assert.equal(existsSync(markerOf(dir, 'ann', id)), true, 'marked as ann\'s');
    await s.patch(id, change({ [META.owner]: 'bob' }), MINUTE);
    assert.equal(existsSync(markerOf(dir, 'ann', id)), false, 'no longer ann\'s once bob owns it');
    assert.equal(existsSync(markerOf(dir, 'bob', id)), true, 'marked as bob\'s');
    await s.patch(id, change({}, [META.owner]), MINUTE);
    assert.equal(existsSync(markerOf(dir, 'bob', id)), false, 'unmarked when its owner is removed');
    await s.patch(id, change({ [META.owner]: 'ann' }), MINUTE);
    await s.remove(id);
    assert.equal(existsSync(markerOf(dir, 'ann', id)), false, 'unmarked when the session is removed');
    assert.equal(existsSync(fileOf(dir, id)), false, 'with its file');
    assert.deepEqual(errors, [], 'nothing reported');
  });

  it('survives a restart: a new storage lists the owner\'s sessions, and removeOwner ends them, files and markers', async (t) => {
    const { dir, clock, make, errors } = setup(t);
    const first = make();
    const [a, b, c, bob] = [generateId(), generateId(), generateId(), generateId()];
    for (const id of [a, b, c]) await first.set(id, owned('ann', { [META.info]: id.slice(0, 4) }), MINUTE);
    await first.set(bob, owned('bob'), MINUTE);
    await first.close();

    const second = make();
    const listed = await second.ownerSessions('ann');
    assert.deepEqual(listed.map((x) => x.idHash).sort(), [a, b, c].map(hashOf).sort(), 'the three sessions of ann, read from disk');
    assert.ok(listed.every((x) => x.expiresAt === clock.ms + MINUTE && x.data[META.owner] === 'ann'), 'each with its expiry and data');
    assert.equal(second.sizeInMemory, 0, 'listing put nothing in memory');
    assert.equal(await second.removeOwner('ann', hashOf(a)), 2, 'all but the excepted one were removed');
    for (const id of [b, c]) {
      assert.equal(existsSync(fileOf(dir, id)), false, 'a removed session\'s file is deleted');
      assert.equal(existsSync(markerOf(dir, 'ann', id)), false, 'and its marker');
    }
    await second.close();
    const third = make();
    assert.deepEqual((await third.ownerSessions('ann')).map((x) => x.idHash), [hashOf(a)], 'after another restart only the excepted session is ann\'s');
    assert.deepEqual({ ...(await third.get(bob)) }, owned('bob'), 'another owner\'s session is untouched');
    assert.equal(await third.get(b), undefined, 'a removed session reads as missing');
    assert.deepEqual(errors, [], 'nothing reported');
  });

  it('never lists a dead session, and deletes the stale markers: missing, expired, unreadable, another owner\'s', async (t) => {
    const { dir, clock, make, errors } = setup(t);
    const first = make();
    const [live, expired, ghost, corrupt, theirs] = [generateId(), generateId(), generateId(), generateId(), generateId()];
    await first.set(live, owned('ann'), MINUTE);
    await first.set(expired, owned('ann'), 1_000);
    await first.close();
    // Markers planted behind the storage's back, as a crash or an older version could leave them.
    mkdirSync(ownerDirOf(dir, 'ann'), { recursive: true, mode: 0o700 });
    for (const id of [ghost, corrupt, theirs]) writeFileSync(markerOf(dir, 'ann', id), '');
    plant(dir, corrupt, 'not a session');
    plant(dir, theirs, `${header(clock.ms + MINUTE)}${JSON.stringify(owned('bob'))}`);
    clock.advance(1_001);

    const s = make();
    assert.deepEqual((await s.ownerSessions('ann')).map((x) => x.idHash), [hashOf(live)], 'only the live session that is still ann\'s');
    assert.deepEqual(namesIn(ownerDirOf(dir, 'ann')), [hashOf(live)], 'every stale marker was deleted');
    assert.equal(await s.removeOwner('ann'), 1, 'removeOwner counts the live one only');
    await s.close();
    assert.equal(existsSync(fileOf(dir, expired)), false, 'the expired file found on the way was deleted');
    assert.equal(existsSync(`${fileOf(dir, corrupt)}.bad`), true, 'the unreadable file was set aside');
    assert.deepEqual({ ...(await make().get(theirs)) }, owned('bob'), 'bob\'s session is kept, only ann\'s marker for it went');
    assert.deepEqual(codes(errors), ['ECORRUPT'], 'the unreadable file is the one thing reported');
  });

  it('does not list a session in memory whose owner changed, though its old marker is still there', async (t) => {
    const { dir, make } = setup(t);
    const s = make();
    const id = generateId();
    await s.set(id, owned('ann'), MINUTE);
    const file = fileOf(dir, id);
    // The owner changes, and the write that will move the marker is under way.
    const writing = gateRename(t, file);
    const moving = s.patch(id, change({ [META.owner]: 'bob' }), MINUTE);
    await writing.reached;
    assert.equal(existsSync(markerOf(dir, 'ann', id)), true, 'the old marker is still there while the write is under way');
    assert.deepEqual(await s.ownerSessions('ann'), [], 'memory, which holds the newest state, says it is bob\'s now');
    writing.release();
    assert.equal(await moving, true, 'the write went through');
    assert.deepEqual((await s.ownerSessions('bob')).map((x) => x.idHash), [hashOf(id)], 'bob\'s listing has it');
  });

  it('lets the sweep delete the markers whose session is gone, and the owner folders left empty', async (t) => {
    const { dir, clock, make } = setup(t);
    const s = make();
    const [gone, kept, ghost] = [generateId(), generateId(), generateId()];
    await s.set(gone, owned('ann'), 1_000);
    await s.set(kept, owned('ann'), MINUTE);
    mkdirSync(ownerDirOf(dir, 'carl'), { recursive: true, mode: 0o700 });
    writeFileSync(markerOf(dir, 'carl', ghost), '');
    clock.advance(1_001);
    assert.equal(await s.sweep(), 1, 'the sweep deleted the expired session');
    assert.deepEqual(namesIn(ownerDirOf(dir, 'ann')), [hashOf(kept)], 'and its marker, keeping the live one\'s');
    assert.equal(existsSync(ownerDirOf(dir, 'carl')), false, 'an owner folder left empty is removed');
    await s.set(ghost, owned('carl'), MINUTE);
    assert.deepEqual(namesIn(ownerDirOf(dir, 'carl')), [hashOf(ghost)], 'and made again when the owner has a session again');
  });

  it('ends a session whose write is under way, and the write cannot bring it back', async (t) => {
    const { dir, make } = setup(t);
    const s = make();
    const id = generateId();
    await s.set(id, owned('ann', { v: 1 }), MINUTE);
    const writing = gateRename(t, fileOf(dir, id));
    const written = s.set(id, owned('ann', { v: 2 }), MINUTE);
    await writing.reached;
    const removing = s.removeOwner('ann');
    // Once memory let go of the session, its deletion is queued behind the write held above.
    await waitFor(() => s.sizeInMemory === 0);
    writing.release();
    await written;
    assert.equal(await removing, 1, 'the session was removed');
    assert.equal(await s.get(id), undefined, 'it reads as missing after the write under way finished');
    assert.equal(existsSync(fileOf(dir, id)), false, 'its file is gone');
    assert.equal(existsSync(markerOf(dir, 'ann', id)), false, 'so is its marker');
  });

  it('fails a write whose marker cannot be made with a 503, so no file ever has an owner the index misses', async (t) => {
    const { dir, make } = setup(t);
    const s = make();
    const id = generateId();
    await s.set(id, { v: 1 }, MINUTE);
    const before = readFileSync(fileOf(dir, id));
    const fresh = generateId();
    const real = fsCalls.open;
    t.mock.method(fsCalls, 'open', (...args: OpenArgs): Promise<FileHandle> => (String(args[0]).startsWith(join(dir, 'owners')) ? Promise.reject(fsError('EACCES')) : real(...args)));
    const refused = (err: unknown): boolean => err instanceof StorageError && err.status === 503 && /EACCES/.test(err.message);
    await assert.rejects(s.patch(id, change({ [META.owner]: 'ann' }), MINUTE), refused, 'gaining an owner fails when the marker cannot be made');
    assert.deepEqual(readFileSync(fileOf(dir, id)), before, 'the previous file, without the owner, is kept');
    assert.deepEqual({ ...(await s.get(id)) }, { v: 1 }, 'and memory follows it');
    await assert.rejects(s.set(fresh, owned('ann'), MINUTE), refused, 'a new session with an owner fails too');
    assert.equal(existsSync(fileOf(dir, fresh)), false, 'and has no file');
  });

  it('never follows a link in the owner index: not the owners folder, not an owner\'s folder, not a marker', async (t) => {
    const { dir, make, errors } = setup(t);
    const outside = tempDir(t, 'bare-session-outside-');
    const precious = join(outside, 'precious');
    writeFileSync(precious, 'keep me');
    symlinkSync(outside, join(dir, 'owners'));
    const s = make();
    const id = generateId();
    await s.set(id, owned('ann'), MINUTE);
    assert.equal(lstatSync(join(dir, 'owners')).isDirectory(), true, 'a real owners folder replaced the link');
    assert.deepEqual(readdirSync(outside), ['precious'], 'nothing was made through the link');

    // An owner's folder that is a link to a folder holding a name like a session's marker.
    const bait = tempDir(t, 'bare-session-outside-');
    writeFileSync(join(bait, hashOf(id)), '');
    symlinkSync(bait, ownerDirOf(dir, 'bob'));
    assert.deepEqual(await s.ownerSessions('bob'), [], 'no session is listed through a linked owner folder');
    assert.equal(existsSync(join(bait, hashOf(id))), true, 'and nothing in it was deleted');

    // A marker that is a link to a file outside: taken as a name, never opened, deleted as a link.
    const other = generateId();
    symlinkSync(precious, markerOf(dir, 'ann', other));
    await s.set(other, owned('ann'), MINUTE);
    assert.equal(await s.removeOwner('ann'), 2, 'both sessions of ann were removed');
    assert.equal(existsSync(markerOf(dir, 'ann', other)), false, 'the link at the marker\'s name was deleted');
    assert.equal(readFileSync(precious, 'utf8'), 'keep me', 'its target is untouched');
    assert.deepEqual(codes(errors), ['EINSECURE', 'EINSECURE'], 'both linked folders were reported');
    assert.ok(errors.every((e) => /owner index folder \S+ is a symbolic link.*; it was set aside/.test(e.message)), 'as links of the owner index, set aside');
  });
});

describe('FileStorage: count and list', () => {
  it('counts and lists live sessions by their headers alone, never reading a body', async (t) => {
    const { dir, clock, make, errors } = setup(t);
    const s = make();
    const ids = [generateId(), generateId(), generateId()];
    for (const id of ids) await s.set(id, { a: 1 }, MINUTE);
    // Live headers with bodies that are not JSON: a listing never reads past the header.
    const raw = [generateId(), generateId()];
    for (const id of raw) plant(dir, id, `${header(clock.ms + MINUTE)}{{{ not json`);
    plant(dir, generateId(), `${header(clock.ms - 1)}{}`);
    plant(dir, generateId(), 'not even a header');
    assert.equal(await s.count(), 5, 'the three stored and the two with a live header');
    const opens = t.mock.method(fsCalls, 'open');
    const seen: { idHash: string; expiresAt: number }[] = [];
    for await (const x of s.list()) seen.push(x);
    const opened = new Set(opens.mock.calls.map((c) => String(c.arguments[0])));
    assert.ok(ids.every((id) => !opened.has(fileOf(dir, id))), 'a session held in memory is listed from memory, its file unopened');
    assert.deepEqual(seen.map((x) => x.idHash).sort(), [...ids, ...raw].map(hashOf).sort(), 'each live session once, by id hash');
    assert.ok(seen.every((x) => x.expiresAt === clock.ms + MINUTE), 'with its expiry');
    for (const id of raw) assert.equal(existsSync(fileOf(dir, id)), true, 'a body never read is never set aside');
    assert.deepEqual(errors, [], 'nothing reported');
  });

  it('counts a session whose renewal is not on disk yet, and not one that expired in memory', async (t) => {
    const { clock, make } = setup(t);
    const s = make({ maxInMemory: 2 });
    const [renewed, b, c] = [generateId(), generateId(), generateId()];
    await s.set(renewed, { a: 1 }, 1_000);
    clock.advance(500);
    await s.touch(renewed, MINUTE);
    await s.set(b, { b: 1 }, MINUTE);
    await s.set(c, { c: 1 }, 1_000); // pushes `renewed` out of memory
    clock.advance(1_000); // `renewed`'s header has expired, its renewal has not; `c` expired in memory
    const listed = new Map<string, number>();
    for await (const x of s.list()) listed.set(x.idHash, x.expiresAt);
    assert.deepEqual([...listed.keys()].sort(), [renewed, b].map(hashOf).sort(), 'the renewed session counts, the expired one does not');
    assert.equal(listed.get(hashOf(renewed)), clock.ms - 1_000 + MINUTE, 'with the expiry of its renewal');
    assert.equal(await s.count(), 2, 'count agrees with list');
  });

  it('yields as it walks: the first session comes before most files are opened', async (t) => {
    const { make } = setup(t);
    const first = make();
    for (let i = 0; i < 300; i++) await first.set(generateId(), { i }, MINUTE);
    await first.close();
    const s = make();
    const opens = t.mock.method(fsCalls, 'open');
    let got: { idHash: string } | undefined;
    for await (const x of s.list()) {
      got = x;
      break;
    }
    assert.match(got?.idHash ?? '', /^[0-9a-f]{64}$/, 'a session came out');
    assert.ok(opens.mock.callCount() < 30, `only its shard folder was read before it (${opens.mock.callCount()} files opened of 300)`);
    assert.equal(await s.count(), 300, 'and a whole walk finds all 300');
  });
});

describe('FileStorage: expired events', () => {
  it('reports each session whose file is deleted as expired, once, whether the sweep or a read found it', async (t) => {
    const { clock, make } = setup(t);
    const events: StorageEvent[] = [];
    const settings = { maxAgeMs: 10 * MINUTE, maxSize: 1_000_000, onEvent: (e: StorageEvent) => events.push(e) };
    const s = make();
    s.configure(settings);
    const [read, swept, live, cold] = [generateId(), generateId(), generateId(), generateId()];
    for (const id of [read, swept, cold]) await s.set(id, { a: 1 }, 1_000);
    await s.set(live, { a: 1 }, MINUTE);
    clock.advance(1_001);
    assert.equal(await s.get(read), undefined, 'a read finds the session expired');
    assert.equal(await s.get(read), undefined, 'a second read, once the first read\'s deletion ran');
    assert.deepEqual(events, [{ type: 'expired', idHash: hashOf(read) }], 'the read\'s session is reported, once');
    assert.equal(await s.sweep(), 2, 'the sweep deletes the two other expired files');
    assert.equal(await s.sweep(), 0, 'a second sweep finds nothing');
    assert.deepEqual(events.map((e) => e.idHash).sort(), [read, swept, cold].map(hashOf).sort(), 'each expired session is reported once, the live one never');
    await s.close();

    // A session not in memory, found expired by two reads and the sweep at once.
    const again = make();
    const late: StorageEvent[] = [];
    again.configure({ ...settings, onEvent: (e) => late.push(e) });
    const other = generateId();
    await again.set(other, { a: 1 }, 1_000);
    await again.close();
    clock.advance(1_001);
    const third = make();
    third.configure({ ...settings, onEvent: (e) => late.push(e) });
    await Promise.all([third.get(other), third.get(other), third.sweep()]);
    await third.close();
    assert.deepEqual(late, [{ type: 'expired', idHash: hashOf(other) }], 'reported once, however many found it');
  });

  it('keeps sweeping when the listener throws', async (t) => {
    const { clock, make } = setup(t);
    const s = make();
    s.configure({
      maxAgeMs: MINUTE,
      maxSize: 1_000,
      onEvent: () => {
        throw new Error('listener failed');
      },
    });
    for (let i = 0; i < 3; i++) await s.set(generateId(), { i }, 1_000);
    clock.advance(1_001);
    assert.equal(await s.sweep(), 3, 'every expired file was deleted despite the listener');
  });

  it('reaches server.sessions.on(\'expired\') listeners, by id hash', async (t) => {
    const { make, clock } = setup(t);
    const storage = make();
    const server = await serve(t, { sessionStorage: storage, now: clock.now, sessionMaxAge: '1m' }, (s) => {
      s.get('/set', (r) => {
        r.session.set('n', 1);
        r.response.write('ok');
      });
    });
    const events: string[] = [];
    server.sessions.on('expired', (e) => events.push(e.idHash));
    const jar = new Jar();
    await jar.send(server.port, '/set');
    clock.advance(MINUTE + 1);
    assert.equal(await storage.sweep(), 1, 'the sweep deleted the expired session');
    assert.deepEqual(events, [hashOf(jar.cookies.get('sid') as string)], 'the server\'s listener heard of it, by id hash');
  });
});

describe('FileStorage: answers at once from memory', () => {
  it('reads and touches a session held in memory at once, and says "not now" for anything that needs the disk', async (t) => {
    const { dir, clock, make } = setup(t);
    const s = make();
    const sync = (s as unknown as { [SYNC]: SyncStorage })[SYNC];
    const id = generateId();
    assert.equal(sync.get(id), NOT_NOW, 'a session not in memory may be on disk: not now');
    assert.equal(sync.touch(id, MINUTE), NOT_NOW, 'nor can it be touched at once');
    await s.set(id, { a: 1 }, MINUTE);
    assert.deepEqual({ ...(sync.get(id) as SessionData) }, { a: 1 }, 'a session in memory is read at once');
    clock.advance(30_000);
    assert.equal(sync.touch(id, MINUTE), true, 'and touched at once');
    assert.equal(sync.set(id, { a: 2 }, MINUTE), NOT_NOW, 'a write needs the disk: not now');
    assert.equal(sync.patch, undefined, 'and it offers no patch at once: the server awaits the patch');
    assert.deepEqual({ ...(await s.get(id)) }, { a: 1 }, 'and "not now" changed nothing');
    // The touch at once is written with the next batch, as a touch through the promise is.
    await s.flush();
    assert.equal(readFileSync(fileOf(dir, id), 'latin1').slice(0, 21), header(clock.now() + MINUTE), 'the renewal reached the header at the flush');
  });

  // A renewal puts the session's hash among those the next flush writes once; the renewals after
  // it in the same batch are kept on its memory entry. Every way the batch is read must see the
  // latest: the flush, a session that left memory meanwhile, the next batch.
  it('writes the latest of several renewals in one batch, also for a session that left memory before the flush', async (t) => {
    const { dir, clock, make } = setup(t);
    const s = make({ maxInMemory: 1 });
    const sync = (s as unknown as { [SYNC]: SyncStorage })[SYNC];
    const [a, b] = [generateId(), generateId()];
    await s.set(a, { a: 1 }, MINUTE);
    clock.advance(10_000);
    assert.equal(sync.touch(a, MINUTE), true, 'a first renewal');
    clock.advance(10_000);
    assert.equal(sync.touch(a, MINUTE), true, 'a second renewal in the same batch');
    const latest = clock.now() + MINUTE;
    await s.flush();
    assert.equal(readFileSync(fileOf(dir, a), 'latin1').slice(0, 21), header(latest), 'the flush wrote the latest renewal, not the first');
    clock.advance(10_000);
    assert.equal(sync.touch(a, MINUTE), true, 'a renewal after the flush starts the next batch');
    await s.flush();
    assert.equal(readFileSync(fileOf(dir, a), 'latin1').slice(0, 21), header(clock.now() + MINUTE), 'which the next flush writes');
    clock.advance(10_000);
    assert.equal(sync.touch(a, MINUTE), true, 'a renewal');
    clock.advance(10_000);
    assert.equal(sync.touch(a, MINUTE), true, 'and another');
    const evicted = clock.now() + MINUTE;
    await s.set(b, { b: 1 }, MINUTE);
    assert.equal(sync.get(a), NOT_NOW, 'the session left memory (maxInMemory 1) before the flush');
    clock.advance(MINUTE - 5_000);
    assert.deepEqual({ ...(await s.get(a)) }, { a: 1 }, 'read back from its file, it lives by its latest renewal, not by its header');
    await s.flush();
    assert.equal(readFileSync(fileOf(dir, a), 'latin1').slice(0, 21), header(evicted), 'and the flush wrote that renewal to its header');
  });

  it('renews the entry in memory when a write replaced the one a waiting touch found', async (t) => {
    const { dir, clock, make } = setup(t);
    const s = make();
    const sync = (s as unknown as { [SYNC]: SyncStorage })[SYNC];
    const id = generateId();
    await s.set(id, { a: 1 }, MINUTE);
    assert.equal(sync.touch(id, MINUTE), true, 'a renewal puts the session into the batch');
    const touching = s.touch(id, 10 * MINUTE);
    // Before the awaited touch goes on, a write replaces the session's entry in memory.
    const patching = s.patch(id, change({ b: 2 }), MINUTE);
    assert.equal(await touching, true, 'the touch found the session');
    assert.equal(await patching, true, 'the patch applied');
    await s.flush();
    assert.equal(readFileSync(fileOf(dir, id), 'latin1').slice(0, 21), header(clock.now() + 10 * MINUTE), 'the touch\'s longer life reached the header: it renewed the entry the write put in memory');
  });
});
