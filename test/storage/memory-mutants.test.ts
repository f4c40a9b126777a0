/**
 * MemoryStorage beyond the storage contract and test/storage/memory.test.ts, on what the mutation
 * check (test/mutants/) found open: the size bound at its exact byte, after the changes a patch
 * measures without serializing the whole session again; and the owner index, which must forget an
 * id with its session however the session left.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemoryStorage, generateId } from '../../lib/index.js';
import { hashId } from '../../lib/id.js';
import { META, type SessionData } from '../../lib/storage/storage.js';
import { Clock } from '../helpers.js';

const MINUTE = 60_000;

function bytes(data: SessionData): number {
  return Buffer.byteLength(JSON.stringify(data));
}

const tooLarge = (err: unknown): boolean => (err as { code?: unknown }).code === 'ESESSIONTOOLARGE';

describe('MemoryStorage: the size bound', () => {
  it('stores a session of exactly maxSize bytes and refuses one byte more, with set', async () => {
    const s = new MemoryStorage();
    try {
      s.configure({ maxAgeMs: MINUTE, maxSize: 200 });
      const base: SessionData = { [META.created]: 1_700_000_000_000, name: 'é☃', list: [1, { a: null }] };
      const pad = 200 - bytes({ ...base, pad: '' });
      const exact = { ...base, pad: 'x'.repeat(pad) };
      assert.equal(bytes(exact), 200, 'the session under test is exactly 200 bytes of JSON');
      const id = generateId();
      await s.set(id, exact, MINUTE);
      assert.deepEqual({ ...(await s.get(id)) }, exact, 'a session of exactly maxSize bytes is stored');
      await assert.rejects(s.set(id, { ...base, pad: 'x'.repeat(pad + 1) }, MINUTE), tooLarge, 'one byte more is refused');
      assert.deepEqual({ ...(await s.get(id)) }, exact, 'and the stored session is unchanged');
      await assert.rejects(s.set(generateId(), { big: 'x'.repeat(300) }, MINUTE), tooLarge, 'a new session over the bound is refused');
      await s.set(generateId(), {}, MINUTE);
    } finally {
      await s.close();
    }
  });

  it('measures a patched session as its JSON, whatever the patches set, replace, remove and clear', async () => {
    const s = new MemoryStorage();
    try {
      const max = 120;
      s.configure({ maxAgeMs: MINUTE, maxSize: max });
      const id = generateId();
      await s.set(id, { a: 'first', gone: [1, 2, 3] }, MINUTE);
      const patches = [
        { set: { a: 'replaced with a longer value', b: { deep: ['ü'] } }, remove: [], clear: false },
        { set: {}, remove: ['gone', 'absent'], clear: false },
        { set: { c: 'é☃' }, remove: ['b'], clear: false },
        { set: { fresh: true }, remove: [], clear: true },
        { set: { again: 'x' }, remove: ['fresh'], clear: false },
        { set: { again: 'removed and set in one patch', n: 12345 }, remove: ['again'], clear: false },
        { set: { n: -0.5, q: '"\\' }, remove: ['n'], clear: false },
      ];
      for (const [i, changes] of patches.entries()) {
        assert.equal(await s.patch(id, changes, MINUTE), true, `patch ${i} applies`);
        const now = (await s.get(id)) as SessionData;
        // The room left, filled exactly to the bound: accepted; one byte more: refused.
        const room = max - bytes({ ...now, pad: '' });
        assert.ok(room > 0, `patch ${i} leaves room to test the bound`);
        await assert.rejects(s.patch(id, { set: { pad: 'x'.repeat(room + 1) }, remove: [], clear: false }, MINUTE), tooLarge, `after patch ${i}, one byte over the bound is refused`);
        assert.deepEqual({ ...(await s.get(id)) }, { ...now }, `after patch ${i}, a refused patch changes nothing`);
        assert.equal(await s.patch(id, { set: { pad: 'x'.repeat(room) }, remove: [], clear: false }, MINUTE), true, `after patch ${i}, a patch to exactly the bound applies`);
        assert.equal(bytes((await s.get(id)) as SessionData), max, `after patch ${i}, the session is exactly ${max} bytes`);
        assert.equal(await s.patch(id, { set: {}, remove: ['pad'], clear: false }, MINUTE), true, `after patch ${i}, the padding is removed again`);
      }
    } finally {
      await s.close();
    }
  });
});

describe('MemoryStorage: the owner index', () => {
  it('forgets an id with its session, removed, expired or evicted: an id used again is never listed under its old owner', async () => {
    const clock = new Clock();
    const s = new MemoryStorage({ now: clock.now, max: 2 });
    try {
      const [removed, expired, evicted] = [generateId(), generateId(), generateId()];
      await s.set(removed, { [META.owner]: 'ann' }, MINUTE);
      await s.remove(removed);
      await s.set(expired, { [META.owner]: 'ann' }, 1_000);
      clock.advance(1_000);
      assert.equal(await s.get(expired), undefined, 'the short session expired');
      await s.set(evicted, { [META.owner]: 'ann' }, MINUTE);
      // Two more sessions push `evicted` out (max 2).
      await s.set(generateId(), { x: 1 }, MINUTE);
      await s.set(generateId(), { x: 2 }, MINUTE);
      assert.equal(await s.get(evicted), undefined, 'the oldest session was evicted');
      assert.deepEqual(await s.ownerSessions('ann'), [], 'ann has no live session left');
      // The same ids again, now for bob (a custom id generator may reuse ids).
      for (const id of [removed, expired, evicted]) await s.set(id, { [META.owner]: 'bob' }, MINUTE);
      assert.deepEqual(await s.ownerSessions('ann'), [], 'none of bob\'s sessions is listed under ann');
      assert.equal(await s.removeOwner('ann'), 0, 'logging ann out everywhere ends none of bob\'s sessions');
      const bob = (await s.ownerSessions('bob')).map((x) => x.idHash);
      assert.equal(bob.length, 2, 'bob\'s live sessions are listed (max 2 keeps two of the three)');
      assert.ok(bob.every((h) => [removed, expired, evicted].map(hashId).includes(h)), 'and only bob\'s');
    } finally {
      await s.close();
    }
  });
});
