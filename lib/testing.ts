/**
 * The storage contract as tests, on `node:test`: `bare-session/testing`. Every storage of the
 * library passes it, and a user who writes a storage runs it against theirs:
 *
 * ```ts
 * import { storageContract } from 'bare-session/testing';
 * storageContract('MyStorage', { create: () => new MyStorage(), advance: (ms) => clock.advance(ms) });
 * ```
 *
 * Run the file with `node --test`. It needs nothing but the storage and, for the tests of
 * expiry, a way to move the storage's clock.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { createHash } from 'node:crypto';
import { META, type SessionData, type Storage } from './storage/storage.js';

/** How {@link storageContract} makes and drives the storage under test. */
export interface ContractOptions {
  /** Makes a fresh, empty storage for one test; it is closed after the test. */
  create: () => Storage | Promise<Storage>;
  /**
   * Moves the storage's clock forward by `ms`, as if that much time had passed (an injected
   * clock, or for a backend with its own clock, shortening every key's time to live). Without
   * it the tests of expiry are skipped, and say so.
   */
  advance?: (ms: number) => void | Promise<void>;
  /**
   * Whether `touch` resolves `true` or `false` (the contract allows a storage that cannot tell
   * to resolve nothing). @default true
   */
  touchTells?: boolean;
}

/** The SHA-256 of an id in hex, as storages list them. */
function hashOf(id: string): string {
  return createHash('sha256').update(id).digest('hex');
}

/** A fresh id in the format the server issues. */
function newId(): string {
  return randomBytes(32).toString('base64url');
}

const MINUTE = 60_000;

/**
 * Registers the contract's tests under `describe(name)`: reads, writes, `touch`, `remove`,
 * expiry, data that must round-trip as plain JSON, and, for a storage that has them, `patch`
 * (with 50 concurrent patches of one session) and the size limit of `configure`.
 */
export function storageContract(name: string, options: ContractOptions): void {
  const { create, advance, touchTells = true } = options;
  const noClock = advance === undefined ? 'the storage\'s clock cannot be moved (give advance)' : false;

  /** Runs `fn` with a fresh storage, closed afterwards whatever happens. */
  async function using(fn: (s: Storage) => Promise<void>): Promise<void> {
    const storage = await create();
    try {
      await fn(storage);
    } finally {
      await storage.close?.();
    }
  }

  describe(`${name}: the storage contract`, async () => {
    // The optional methods' tests are registered only for a storage that has them.
    const probe = await create();
    const hasPatch = typeof probe.patch === 'function';
    const hasConfigure = typeof probe.configure === 'function';
    const hasOwners = typeof probe.ownerSessions === 'function' && typeof probe.removeOwner === 'function';
    const hasCount = typeof probe.count === 'function';
    const hasList = typeof probe.list === 'function';
    await probe.close?.();

    it('reads a missing session as undefined', () =>
      using(async (s) => {
        assert.equal(await s.get(newId()), undefined, 'get of an id never set');
      }));

    it('stores a whole session and reads it back as JSON data', () =>
      using(async (s) => {
        const id = newId();
        const data: SessionData = { n: 1, text: 'héllo ☃', flag: true, nothing: null, list: [1, 'two', { three: 3 }], nested: { a: { b: [] } } };
        await s.set(id, data, MINUTE);
        assert.deepEqual({ ...(await s.get(id)) }, data, 'what was set is what is read');
        await s.set(id, { only: 'this' }, MINUTE);
        assert.deepEqual({ ...(await s.get(id)) }, { only: 'this' }, 'a second set replaces the whole session');
        assert.equal(await s.get(newId()), undefined, 'other ids stay missing');
      }));

    it('keeps keys named like prototype members as plain data, touching no prototype', () =>
      using(async (s) => {
        const id = newId();
        const data = JSON.parse('{"__proto__":{"admin":true},"constructor":"c","toString":"t"}') as SessionData;
        await s.set(id, data, MINUTE);
        const back = (await s.get(id)) as SessionData;
        assert.ok(Object.hasOwn(back, '__proto__'), '__proto__ is an own key');
        assert.deepEqual(back['__proto__'], { admin: true }, 'with its value');
        assert.equal((back as { admin?: unknown }).admin, undefined, 'it grants nothing');
        assert.equal(back['constructor'], 'c', 'constructor is plain data');
        assert.equal(({} as { admin?: unknown }).admin, undefined, 'Object.prototype is untouched');
      }));

    it('removes a session, and a missing one without error', () =>
      using(async (s) => {
        const id = newId();
        await s.set(id, { a: 1 }, MINUTE);
        await s.remove(id);
        assert.equal(await s.get(id), undefined, 'removed');
        await s.remove(id);
        await s.remove(newId());
      }));

    it('touches a live session, and never creates a missing one', () =>
      using(async (s) => {
        const id = newId();
        await s.set(id, { a: 1 }, MINUTE);
        const live = await s.touch(id, MINUTE);
        const missing = newId();
        const gone = await s.touch(missing, MINUTE);
        if (touchTells) {
          assert.equal(live, true, 'touch of a live session resolves true');
          assert.equal(gone, false, 'touch of a missing session resolves false');
        } else {
          assert.ok(live === undefined || typeof live === 'boolean', 'touch resolves a boolean or nothing');
        }
        assert.equal(await s.get(missing), undefined, 'touch created nothing');
        assert.deepEqual({ ...(await s.get(id)) }, { a: 1 }, 'touch changed no data');
      }));

    it('expires a session after its time to live, on every read', { skip: noClock }, () =>
      using(async (s) => {
        const id = newId();
        await s.set(id, { a: 1 }, 10_000);
        await advance?.(9_000);
        assert.deepEqual({ ...(await s.get(id)) }, { a: 1 }, 'alive before its time to live');
        await advance?.(1_001);
        assert.equal(await s.get(id), undefined, 'gone after it');
        const gone = await s.touch(id, 10_000);
        if (touchTells) assert.equal(gone, false, 'an expired session cannot be touched');
        assert.equal(await s.get(id), undefined, 'touch does not bring it back');
      }));

    it('extends the life of a touched session', { skip: noClock }, () =>
      using(async (s) => {
        const id = newId();
        await s.set(id, { a: 1 }, 10_000);
        await advance?.(6_000);
        await s.touch(id, 10_000);
        await advance?.(6_000);
        assert.deepEqual({ ...(await s.get(id)) }, { a: 1 }, 'alive 12 s after the set: the touch at 6 s gave it 10 s more');
        await advance?.(4_001);
        assert.equal(await s.get(id), undefined, 'gone 10 s after the touch');
      }));

    if (hasPatch) it('patches the stored session: clear, then remove, then set', async () => {
      await using(async (s) => {
        const patch = (s.patch as NonNullable<Storage['patch']>).bind(s);
        const id = newId();
        await s.set(id, { keep: 1, drop: 2, change: 'old' }, MINUTE);
        assert.equal(await patch(id, { set: { change: 'new', add: [1] }, remove: ['drop', 'absent'], clear: false }, MINUTE), true, 'patch of a live session resolves true');
        assert.deepEqual({ ...(await s.get(id)) }, { keep: 1, change: 'new', add: [1] }, 'set and remove applied to what was stored');
        assert.equal(await patch(id, { set: { only: true }, remove: [], clear: true }, MINUTE), true, 'a clearing patch');
        assert.deepEqual({ ...(await s.get(id)) }, { only: true }, 'clear drops every stored key first');
        const missing = newId();
        assert.equal(await patch(missing, { set: { a: 1 }, remove: [], clear: false }, MINUTE), false, 'patch of a missing session resolves false');
        assert.equal(await s.get(missing), undefined, 'and writes nothing');
        await s.remove(id);
        assert.equal(await patch(id, { set: { back: true }, remove: [], clear: false }, MINUTE), false, 'a removed session is never brought back');
        assert.equal(await s.get(id), undefined, 'still removed');
      });
    });

    if (hasPatch) it('keeps every key of 50 concurrent patches of one session', async () => {
      await using(async (s) => {
        const id = newId();
        await s.set(id, { start: true }, MINUTE);
        const patch = (s.patch as NonNullable<Storage['patch']>).bind(s);
        const results = await Promise.all(Array.from({ length: 50 }, (_, i) => patch(id, { set: { [`k${i}`]: i }, remove: [], clear: false }, MINUTE)));
        assert.ok(results.every((r) => r === true), 'every patch applied');
        const data = (await s.get(id)) as SessionData;
        for (let i = 0; i < 50; i++) assert.equal(data[`k${i}`], i, `k${i} is kept`);
        assert.equal(data['start'], true, 'the stored key is kept');
      });
    });

    if (hasPatch) it('patches an expired session as missing', { skip: noClock }, async () => {
      await using(async (s) => {
        const patch = (s.patch as NonNullable<Storage['patch']>).bind(s);
        const id = newId();
        await s.set(id, { a: 1 }, 1_000);
        await advance?.(1_001);
        assert.equal(await patch(id, { set: { b: 2 }, remove: [], clear: false }, MINUTE), false, 'an expired session is gone');
        assert.equal(await s.get(id), undefined, 'and stays gone');
      });
    });

    if (hasOwners) it('lists and removes the sessions of an owner, and forgets them when they go', async () => {
      await using(async (s) => {
        const [a, b, c, other] = [newId(), newId(), newId(), newId()];
        for (const id of [a, b, c]) await s.set(id, { [META.owner]: 'ann', [META.created]: 1, [META.info]: { ua: id.slice(0, 4) } }, MINUTE);
        await s.set(other, { [META.owner]: 'bob' }, MINUTE);
        const listed = await (s.ownerSessions as NonNullable<Storage['ownerSessions']>)('ann');
        assert.deepEqual(listed.map((x) => x.idHash).sort(), [a, b, c].map(hashOf).sort(), 'every session of the owner, by id hash');
        assert.ok(listed.every((x) => x.expiresAt > 0 && x.data[META.created] === 1), 'each with its expiry and data');
        await s.remove(c);
        assert.equal((await s.ownerSessions?.('ann'))?.length, 2, 'a removed session is no longer listed');
        if (typeof s.patch === 'function') {
          await s.patch(b, { set: {}, remove: [META.owner], clear: false }, MINUTE);
          assert.deepEqual((await s.ownerSessions?.('ann'))?.map((x) => x.idHash), [hashOf(a)], 'a session whose owner was removed is no longer listed');
          await s.patch(b, { set: { [META.owner]: 'ann' }, remove: [], clear: false }, MINUTE);
        }
        assert.equal(await s.removeOwner?.('ann', hashOf(a)), 1, 'removes all but the one excepted');
        assert.deepEqual({ ...(await s.get(a)) }[META.owner], 'ann', 'the excepted session stays');
        assert.equal(await s.get(b), undefined, 'the others are gone');
        assert.ok((await s.get(other)) !== undefined, 'another owner\'s session stays');
        assert.deepEqual((await s.ownerSessions?.('nobody')) ?? [], [], 'an unknown owner has no sessions');
      });
    });

    if (hasOwners && advance !== undefined) it('never lists an expired session of an owner', async () => {
      await using(async (s) => {
        const [a, b] = [newId(), newId()];
        await s.set(a, { [META.owner]: 'ann' }, 1_000);
        await s.set(b, { [META.owner]: 'ann' }, MINUTE);
        await advance(1_001);
        assert.deepEqual((await s.ownerSessions?.('ann'))?.map((x) => x.idHash), [hashOf(b)], 'only the live session');
        assert.equal(await s.removeOwner?.('ann'), 1, 'only the live one is counted as removed');
      });
    });

    if (hasCount || hasList) it('counts and lists the live sessions', async () => {
      await using(async (s) => {
        const ids = [newId(), newId(), newId()];
        for (const id of ids) await s.set(id, { a: 1 }, MINUTE);
        if (hasCount) assert.equal(await s.count?.(), 3, 'three live sessions');
        if (hasList) {
          const seen: string[] = [];
          for await (const x of (s.list as NonNullable<Storage['list']>).call(s)) {
            assert.ok(x.expiresAt > 0, 'each with its expiry');
            seen.push(x.idHash);
          }
          assert.deepEqual(seen.sort(), ids.map(hashOf).sort(), 'every live session once, by id hash');
        }
        if (advance !== undefined) {
          await s.set(ids[0] as string, { a: 1 }, 1_000);
          await advance(1_001);
          if (hasCount) assert.equal(await s.count?.(), 2, 'an expired session is not counted');
        }
      });
    });

    if (hasConfigure) it('refuses a session over the configured maxSize, writing nothing', async () => {
      await using(async (s) => {
        s.configure?.({ maxAgeMs: MINUTE, maxSize: 1_000 });
        const id = newId();
        await s.set(id, { small: 'x' }, MINUTE);
        const tooLarge = (err: unknown): boolean => (err as { code?: unknown }).code === 'ESESSIONTOOLARGE';
        await assert.rejects(s.set(id, { big: 'x'.repeat(2_000) }, MINUTE), tooLarge, 'set over maxSize rejects with ESESSIONTOOLARGE');
        assert.deepEqual({ ...(await s.get(id)) }, { small: 'x' }, 'the stored session is unchanged');
        const other = newId();
        await assert.rejects(s.set(other, { big: 'x'.repeat(2_000) }, MINUTE), tooLarge, 'a new session over maxSize rejects too');
        assert.equal(await s.get(other), undefined, 'and is not stored');
        if (typeof s.patch === 'function') {
          await assert.rejects(s.patch(id, { set: { big: 'x'.repeat(2_000) }, remove: [], clear: false }, MINUTE), tooLarge, 'patch over maxSize rejects');
          assert.deepEqual({ ...(await s.get(id)) }, { small: 'x' }, 'and changes nothing');
        }
      });
    });
  });
}
