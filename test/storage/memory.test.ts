/**
 * MemoryStorage's own tests, beyond the contract (test/storage/contract.test.ts): the size it
 * keeps per session, the owner index on eviction, the answers-at-once interface the server
 * uses, and its options.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemoryStorage, generateId } from '../../lib/index.js';
import { type JsonValue, META, NOT_NOW, REMOVED, SYNC, type SessionData, type SyncStorage } from '../../lib/storage/storage.js';
import { Clock } from '../helpers.js';
import { prng } from '../prng.js';

const MINUTE = 60_000;

/** A random JSON value: strings with escapes and non-ASCII, numbers, nesting. */
function randomValue(rand: () => number, depth = 0): JsonValue {
  const pick = Math.floor(rand() * (depth > 2 ? 4 : 6));
  if (pick === 0) return Math.floor(rand() * 1e6) / 7;
  if (pick === 1) return ['', 'a"b', 'é☃', '\n\t\\', '\u0000', 'plain'][Math.floor(rand() * 6)] as string;
  if (pick === 2) return rand() < 0.5;
  if (pick === 3) return null;
  if (pick === 4) return Array.from({ length: Math.floor(rand() * 3) }, () => randomValue(rand, depth + 1));
  const o: Record<string, JsonValue> = {};
  for (let i = 0; i < Math.floor(rand() * 3); i++) o[`k${i}`] = randomValue(rand, depth + 1);
  return o;
}

const KEYS = ['a', 'b', 'é', 'quote"d', '__proto__', 'constructor', '', META.created];

describe('MemoryStorage', () => {
  it('measures a patched session exactly as its JSON, without serializing the keys that did not change, through the contract and the server\'s change map', async () => {
    const rand = prng(20261130);
    for (let round = 0; round < 100; round++) {
      const storage = new MemoryStorage();
      const sync = (storage as unknown as { [SYNC]: Required<SyncStorage> })[SYNC];
      const id = generateId();
      let data: SessionData = Object.create(null);
      for (const k of KEYS) if (rand() < 0.5) Object.defineProperty(data, k, { value: randomValue(rand), enumerable: true, writable: true, configurable: true });
      await storage.set(id, data, MINUTE);
      for (let step = 0; step < 5; step++) {
        // Half the steps as the server patches (a session's change map: a key is set or removed,
        // never both), half through the contract, where a key may be removed and set again.
        const viaMap = rand() < 0.5;
        const set: SessionData = Object.create(null);
        const remove: string[] = [];
        const map = new Map<string, JsonValue | typeof REMOVED>();
        for (const k of KEYS) {
          const r = rand();
          if (r < 0.25) {
            Object.defineProperty(set, k, { value: randomValue(rand), enumerable: true, writable: true, configurable: true });
            map.set(k, set[k] as JsonValue);
            if (!viaMap && r < 0.08) remove.push(k);
          } else if (r < 0.4) {
            remove.push(k);
            map.set(k, REMOVED);
          }
        }
        const clear = rand() < 0.1;
        const patch = (): Promise<boolean> => (viaMap ? Promise.resolve().then(() => sync.patch(id, map, clear, MINUTE)) : storage.patch(id, { set, remove, clear }, MINUTE));
        // The exact JSON of the result, computed the plain way.
        const expected: SessionData = Object.create(null);
        if (!clear) for (const k of Object.keys(data)) Object.defineProperty(expected, k, { value: data[k], enumerable: true, writable: true, configurable: true });
        for (const k of remove) delete expected[k];
        for (const k of Object.keys(set)) Object.defineProperty(expected, k, { value: set[k], enumerable: true, writable: true, configurable: true });
        const size = Buffer.byteLength(JSON.stringify(expected));
        // Exactly at the limit: accepted; one byte under it: refused, changing nothing.
        storage.configure({ maxAgeMs: MINUTE, maxSize: size - 1 });
        await assert.rejects(patch(), (e: unknown) => (e as { code?: string }).code === 'ESESSIONTOOLARGE', `round ${round} step ${step}: one byte over the limit is refused`);
        assert.deepEqual({ ...(await storage.get(id)) }, { ...data }, `round ${round} step ${step}: a refused patch changed nothing`);
        storage.configure({ maxAgeMs: MINUTE, maxSize: size });
        assert.equal(await patch(), true, `round ${round} step ${step}: exactly at the limit is accepted`);
        data = (await storage.get(id)) as SessionData;
        assert.equal(JSON.stringify(data), JSON.stringify(expected), `round ${round} step ${step}: the patch gave the expected session`);
      }
      await storage.close();
    }
  });

  it('answers at once through its SyncStorage, as its promises do', async () => {
    const clock = new Clock();
    const storage = new MemoryStorage({ now: clock.now });
    const sync = (storage as unknown as { [SYNC]: Required<SyncStorage> })[SYNC];
    const id = generateId();
    assert.equal(sync.get(id), undefined, 'a missing session, at once');
    assert.equal(sync.touch(id, MINUTE), false, 'touch of a missing session: false, at once');
    assert.equal(sync.patch(id, new Map([['a', 1]]), false, MINUTE), false, 'patch of a missing session: false, at once');
    assert.equal(sync.set(id, { a: 1 }, MINUTE), true, 'set, at once');
    assert.equal(sync.patch(id, new Map<string, JsonValue | typeof REMOVED>([['b', 2], ['a', REMOVED]]), false, MINUTE), true, 'patch, at once');
    assert.deepEqual({ ...(sync.get(id) as SessionData) }, { b: 2 }, 'what was patched is read back');
    assert.notEqual(sync.get(id), NOT_NOW, 'memory never says "not now"');
    clock.advance(MINUTE);
    assert.equal(sync.touch(id, MINUTE), false, 'an expired session cannot be touched');
    assert.equal(await storage.get(id), undefined, 'and reads as missing through the promise too');
  });

  it('forgets an owner\'s session when it is evicted past max or expires unread', async () => {
    const clock = new Clock();
    const storage = new MemoryStorage({ max: 2, now: clock.now });
    const [a, b, c] = [generateId(), generateId(), generateId()];
    await storage.set(a, { [META.owner]: 'ann' }, MINUTE);
    await storage.set(b, { [META.owner]: 'ann' }, 2 * MINUTE);
    await storage.set(c, { [META.owner]: 'bob' }, 2 * MINUTE);
    assert.equal((await storage.ownerSessions('ann')).length, 1, 'the evicted session left the owner index');
    clock.advance(2 * MINUTE);
    assert.equal(await storage.get(b), undefined, 'expired');
    assert.deepEqual(await storage.ownerSessions('ann'), [], 'the expired session left the owner index');
    assert.equal(await storage.removeOwner('ann'), 0, 'nothing left to remove');
  });

  it('reports an expiry it finds to the server', async () => {
    const clock = new Clock();
    const storage = new MemoryStorage({ now: clock.now });
    const events: unknown[] = [];
    storage.configure({ maxAgeMs: MINUTE, maxSize: 1024, onEvent: (e) => events.push(e) });
    const id = generateId();
    await storage.set(id, { a: 1 }, MINUTE);
    await storage.remove(id);
    assert.deepEqual(events, [], 'a removal is no expiry');
    await storage.set(id, { a: 1 }, MINUTE);
    clock.advance(MINUTE);
    assert.equal(await storage.get(id), undefined, 'expired');
    assert.equal(events.length, 1, 'one expiry reported');
    assert.match(JSON.stringify(events[0]), /^\{"type":"expired","idHash":"[0-9a-f]{64}"\}$/, 'with the hash of the id, never the id');
  });

  it('refuses bad options with a TypeError naming them', () => {
    for (const [options, re] of [
      [{ max: 0 }, /^option max is invalid: 0/],
      [{ max: 1.5 }, /^option max is invalid: 1\.5/],
      [{ now: 5 as never }, /^option now is invalid: 5/],
      [{ sweepInterval: 'soon' as never }, /^option sweepInterval is invalid: "soon"/],
    ] as const) {
      assert.throws(() => new MemoryStorage(options), (e: unknown) => e instanceof TypeError && re.test(e.message), `${JSON.stringify(options)} is refused by name`);
    }
  });
});

describe('MemoryStorage: the size it keeps', () => {
  it('measures a record given back to set afresh, frozen or changed after a get', async () => {
    const storage = new MemoryStorage();
    storage.configure({ maxAgeMs: MINUTE, maxSize: 100 });
    const id = generateId();
    await storage.set(id, { a: 'small' }, MINUTE);
    // The record a get returned, changed and given back (the contract forbids it; set must still hold).
    const got = (await storage.get(id)) as SessionData;
    got['big'] = 'x'.repeat(500);
    await assert.rejects(storage.set(id, got, MINUTE), (e: unknown) => (e as { code?: string }).code === 'ESESSIONTOOLARGE', 'the changed record is measured again, not by the size kept on it');
    const frozen = Object.freeze({ a: 'frozen' });
    await storage.set(generateId(), frozen, MINUTE);
    const again = generateId();
    await storage.set(again, Object.freeze({ b: 1 }), MINUTE);
    assert.equal(await storage.patch(again, { set: { c: 2 }, remove: [], clear: false }, MINUTE), true, 'a frozen record is stored and patched');
    assert.deepEqual({ ...(await storage.get(again)) }, { b: 1, c: 2 }, 'with the patch applied');
  });
});
