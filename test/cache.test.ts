import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { ExpiringCache, type EvictionReason, type ExpiringCacheOptions } from '../lib/cache.js';
import type { Duration } from '../lib/duration.js';

type Call = [value: number, key: string, reason: EvictionReason];

/**
 * A cache on a clock the test moves by hand, recording every `dispose` call; closed after the
 * test. The default ttl is 1000 ms and the default sweepInterval 1000 ms.
 */
function setup(t: TestContext, options: Partial<ExpiringCacheOptions<string, number>> = {}) {
  const clock = { now: 0 };
  const calls: Call[] = [];
  const cache = new ExpiringCache<string, number>({
    ttl: 1000,
    now: () => clock.now,
    dispose: (value, key, reason) => {
      calls.push([value, key, reason]);
    },
    ...options,
  });
  t.after(() => cache.close());
  return { clock, calls, cache };
}

/**
 * Moves the test's clock and the mocked timers together.
 *
 * Node 20's MockTimers runs a timer again when its callback schedules an immediate due at the
 * very instant it fires (the new one takes the head of its queue, so the old one is never
 * taken off). Tests that sweep in several chunks therefore move 1 ms past the due time.
 */
function advance(t: TestContext, clock: { now: number }, ms: number): void {
  clock.now += ms;
  t.mock.timers.tick(ms);
}

describe('ExpiringCache options', () => {
  const invalid: [string, Record<string, unknown>][] = [
    ['ttl', { ttl: 0 }],
    ['ttl', { ttl: Number.NEGATIVE_INFINITY }],
    ['ttl', { ttl: null }],
    ['ttl', { ttl: -1 }],
    ['ttl', { ttl: 'abc' }],
    ['ttl', { ttl: Number.NaN }],
    ['max', { ttl: 1000, max: 0 }],
    ['max', { ttl: 1000, max: 1.5 }],
    ['max', { ttl: 1000, max: -3 }],
    ['max', { ttl: 1000, max: Number.NaN }],
    ['max', { ttl: 1000, max: '10' }],
    ['now', { ttl: 1000, now: 5 }],
    ['dispose', { ttl: 1000, dispose: 'log' }],
    ['sweepInterval', { ttl: 1000, sweepInterval: -1 }],
    ['sweepInterval', { ttl: 1000, sweepInterval: '1 s' }],
  ];
  for (const [option, options] of invalid) {
    it(`throws a TypeError naming ${option} for ${JSON.stringify(options)}`, () => {
      assert.throws(() => new ExpiringCache(options as unknown as ExpiringCacheOptions<string, number>), {
        name: 'TypeError',
        message: new RegExp(`^option ${option} is invalid: `),
      }, `${JSON.stringify(options)} is refused with a TypeError naming ${option}`);
    });
  }

  for (const options of [undefined, null, 'ttl']) {
    it(`throws a TypeError naming ttl when given ${String(options)} for options`, () => {
      assert.throws(
        () => new ExpiringCache(options as unknown as ExpiringCacheOptions<string, number>),
        { name: 'TypeError', message: /^option ttl is invalid: .*\bttl\b/ },
        'no options object at all',
      );
    });
  }

  it('takes no default ttl from {}, and then set without a ttl throws naming ttl', (t) => {
    const clock = { now: 0 };
    const cache = new ExpiringCache<string, number>({ now: () => clock.now });
    t.after(() => cache.close());
    assert.throws(
      () => cache.set('a', 1),
      { name: 'TypeError', message: 'option ttl is invalid: undefined (this cache has no default ttl; pass one to set)' },
      'set needs the missing default',
    );
    assert.equal(cache.has('a'), false, 'nothing stored');
    cache.set('a', 1, 100);
    assert.equal(cache.expiresAt('a'), 100, 'a per-call ttl works');
    clock.now = 50;
    assert.equal(cache.touch('a'), true, 'touch needs no default: the entry has its own ttl');
    assert.equal(cache.expiresAt('a'), 150, 'renewed for its own ttl');
  });

  it('takes durations as strings, max Infinity and a sweepInterval of 0', (t) => {
    const { cache } = setup(t, { ttl: '2s', max: Infinity, sweepInterval: 0 });
    cache.set('a', 1);
    assert.equal(cache.expiresAt('a'), 2000, "a ttl of '2s' gives an expiry 2000 ms ahead");
  });

  it('defaults the clock to Date.now', (t) => {
    const cache = new ExpiringCache<string, number>({ ttl: '1h' });
    t.after(() => cache.close());
    const before = Date.now();
    cache.set('a', 1);
    const at = cache.expiresAt('a');
    assert.ok(at !== undefined && at >= before + 3_600_000 && at <= Date.now() + 3_600_000, "a ttl of '1h' on the default clock expires an hour after Date.now()");
  });

  const badTtls: unknown[] = [0, -5, Number.NEGATIVE_INFINITY, Number.NaN, 'Infinity', '5x', '', null, 9e15];
  for (const ttl of badTtls) {
    it(`rejects a per-call ttl of ${String(ttl)} from set and touch, storing nothing`, (t) => {
      const { cache } = setup(t);
      cache.set('kept', 1);
      const bad = ttl as Duration;
      assert.throws(() => cache.set('a', 1, bad), { name: 'TypeError', message: /^option ttl is invalid: / }, `set refuses a ttl of ${String(ttl)}`);
      assert.equal(cache.has('a'), false, `a set refused for a ttl of ${String(ttl)} stored nothing`);
      assert.throws(() => cache.touch('kept', bad), { name: 'TypeError', message: /^option ttl is invalid: / }, `touch of a live entry refuses a ttl of ${String(ttl)}`);
      assert.throws(() => cache.touch('missing', bad), { name: 'TypeError' }, `touch of a missing entry refuses a ttl of ${String(ttl)} too`);
      assert.equal(cache.expiresAt('kept'), 1000, `a touch refused for a ttl of ${String(ttl)} left the expiry unchanged`);
    });
  }

  it('parses per-call ttls given as strings or fractions', (t) => {
    const { cache } = setup(t);
    cache.set('s', 1, '1m').set('f', 2, 2.5);
    assert.equal(cache.expiresAt('s'), 60_000, "a per-call ttl of '1m' is 60 000 ms");
    assert.equal(cache.expiresAt('f'), 3, 'a fractional per-call ttl of 2.5 ms is rounded to 3');
  });
});

describe('ExpiringCache expiry', () => {
  it('expires an entry after its ttl: live until just before, gone at exactly the ttl', (t) => {
    const { clock, calls, cache } = setup(t);
    cache.set('a', 1);
    clock.now = 999;
    assert.equal(cache.get('a'), 1, 'the entry is live 1 ms before its ttl');
    assert.equal(cache.has('a'), true, 'has sees the entry 1 ms before its ttl');
    clock.now = 1000;
    assert.equal(cache.get('a'), undefined, 'the entry is gone at exactly its ttl');
    assert.equal(cache.size, 0, 'the expired entry was removed on the read');
    assert.deepEqual(calls, [[1, 'a', 'expire']], "dispose was called once, with 'expire'");
  });

  const lookups: [string, (cache: ExpiringCache<string, number>) => unknown, unknown][] = [
    ['get', (c) => c.get('a'), undefined],
    ['peek', (c) => c.peek('a'), undefined],
    ['has', (c) => c.has('a'), false],
    ['expiresAt', (c) => c.expiresAt('a'), undefined],
    ['touch', (c) => c.touch('a'), false],
    ['delete', (c) => c.delete('a'), false],
  ];
  for (const [name, lookup, missing] of lookups) {
    it(`${name} treats an entry at its expiry as missing and removes it as 'expire'`, (t) => {
      const { clock, calls, cache } = setup(t);
      cache.set('a', 1);
      clock.now = 1000;
      assert.equal(cache.size, 1, `before ${name}, the expired entry is still counted`);
      assert.equal(lookup(cache), missing, `${name} answers as for a missing entry`);
      assert.equal(cache.size, 0, `${name} removed the expired entry`);
      assert.deepEqual(calls, [[1, 'a', 'expire']], `${name} reported the removal as 'expire'`);
      assert.equal(lookup(cache), missing, `${name} again answers as for a missing entry`);
      assert.equal(calls.length, 1, `the second ${name} called dispose no more`);
    });
  }

  it('gives each entry its own ttl when set is passed one', (t) => {
    const { clock, cache } = setup(t);
    cache.set('short', 1, 100).set('long', 2, '2s').set('default', 3);
    clock.now = 100;
    assert.equal(cache.get('short'), undefined, 'the 100 ms entry is gone at 100 ms');
    clock.now = 1999;
    assert.equal(cache.get('default'), undefined, 'the default-ttl entry is gone at 1999 ms (it expired at 1000)');
    assert.equal(cache.get('long'), 2, 'the 2 s entry is live at 1999 ms');
    clock.now = 2000;
    assert.equal(cache.get('long'), undefined, 'the 2 s entry is gone at 2000 ms');
  });

  it('does not extend a life on get, peek or has', (t) => {
    const { clock, cache } = setup(t);
    cache.set('a', 1);
    clock.now = 500;
    cache.get('a');
    cache.peek('a');
    cache.has('a');
    assert.equal(cache.expiresAt('a'), 1000, 'reads left the expiry where set put it');
  });

  it("renews an entry on touch for its own ttl, and a touch's ttl becomes its own", (t) => {
    const { clock, cache } = setup(t);
    cache.set('a', 1, 100).set('d', 2);
    clock.now = 50;
    assert.equal(cache.touch('a'), true, 'touch finds the live entry');
    assert.equal(cache.expiresAt('a'), 150, "the ttl it was set with, not the cache's 1000");
    assert.equal(cache.touch('a', 300), true, 'touch with a ttl finds the live entry');
    assert.equal(cache.expiresAt('a'), 350, 'the given ttl');
    clock.now = 100;
    cache.touch('a');
    assert.equal(cache.expiresAt('a'), 400, "the touch's ttl is now the entry's own");
    cache.touch('d');
    assert.equal(cache.expiresAt('d'), 1100, 'an entry set without a ttl has the default');
    cache.set('a', 3);
    clock.now = 200;
    cache.touch('a');
    assert.equal(cache.expiresAt('a'), 1200, 'set without a ttl gives the entry the default again');
  });

  it('extends a life on touch, to the default ttl or its own, from now', (t) => {
    const { clock, cache } = setup(t);
    cache.set('a', 1);
    clock.now = 900;
    assert.equal(cache.touch('a'), true, 'touch finds the live entry');
    assert.equal(cache.expiresAt('a'), 1900, 'touch renews for the default ttl from now');
    clock.now = 1500;
    assert.equal(cache.get('a'), 1, 'the renewed entry is live past its first expiry');
    assert.equal(cache.touch('a', '100ms'), true, 'touch with a ttl finds the live entry');
    assert.equal(cache.expiresAt('a'), 1600, 'touch with a ttl renews for that ttl from now');
    clock.now = 1600;
    assert.equal(cache.get('a'), undefined, 'the entry is gone at the end of the life touch gave it');
  });

  it('keeps an entry with a ttl of Infinity forever, as the default or per entry', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'setImmediate'] });
    const setTimeoutSpy = t.mock.method(globalThis, 'setTimeout');
    const { clock, calls, cache } = setup(t, { ttl: Number.POSITIVE_INFINITY });
    cache.set('default', 1);
    assert.equal(cache.expiresAt('default'), Number.POSITIVE_INFINITY, 'expiresAt of a default-infinite entry');
    cache.set('finite', 2, 100).set('own', 3, Number.POSITIVE_INFINITY);
    advance(t, clock, 1000);
    assert.deepEqual(calls, [[2, 'finite', 'expire']], 'only the finite entry expired');
    advance(t, clock, 1e15);
    assert.equal(cache.get('default'), 1, 'the default-infinite entry lives on');
    assert.equal(cache.touch('own'), true, 'touch of an infinite entry');
    assert.equal(cache.expiresAt('own'), Number.POSITIVE_INFINITY, 'still infinite after touch');
    assert.equal(setTimeoutSpy.mock.callCount(), 1, 'a timer for the finite entry only');
    assert.deepEqual(calls, [[2, 'finite', 'expire']], 'nothing else left');
  });

  it('makes an entry infinite with set or touch given Infinity, and finite again with a ttl', (t) => {
    const setTimeoutSpy = t.mock.method(globalThis, 'setTimeout');
    const { clock, cache } = setup(t);
    cache.set('a', 1, Number.POSITIVE_INFINITY);
    assert.equal(setTimeoutSpy.mock.callCount(), 0, 'no timer for an entry that never expires');
    cache.set('b', 2);
    assert.equal(cache.touch('b', Number.POSITIVE_INFINITY), true, 'touch to Infinity');
    clock.now = 5000;
    assert.equal(cache.get('b'), 2, 'touched to Infinity, it outlives its first ttl');
    cache.touch('b');
    assert.equal(cache.expiresAt('b'), Number.POSITIVE_INFINITY, 'its own ttl is now Infinity');
    cache.touch('a', 10);
    assert.equal(cache.expiresAt('a'), 5010, 'finite again');
  });

  it('returns false from touch for a key it does not hold', (t) => {
    const { calls, cache } = setup(t);
    assert.equal(cache.touch('missing'), false, 'touch of a missing key answers false');
    assert.equal(cache.has('missing'), false, 'touch created no entry');
    assert.deepEqual(calls, [], 'touch of a missing key disposed nothing');
  });

  it('tells when a live entry expires, on the clock it was given', (t) => {
    const { clock, cache } = setup(t);
    clock.now = 1_700_000_000_000;
    cache.set('a', 1, '1d');
    assert.equal(cache.expiresAt('a'), 1_700_000_000_000 + 86_400_000, 'expiresAt is the time of the set plus the ttl, on the given clock');
    assert.equal(cache.expiresAt('missing'), undefined, 'expiresAt of a missing key is undefined');
  });

  it('replaces a live value on set without calling dispose, with a fresh ttl', (t) => {
    const { clock, calls, cache } = setup(t);
    cache.set('a', 1);
    clock.now = 600;
    cache.set('a', 2);
    assert.equal(cache.get('a'), 2, 'set replaced the value');
    assert.equal(cache.expiresAt('a'), 1600, 'set gave the entry a fresh ttl from now');
    assert.equal(cache.size, 1, 'set of a live key keeps one entry');
    assert.deepEqual(calls, [], 'replacing a live value disposes nothing');
  });

  it("reports an expired value as 'expire' when set replaces it", (t) => {
    const { clock, calls, cache } = setup(t);
    cache.set('a', 1);
    clock.now = 1000;
    cache.set('a', 2);
    assert.deepEqual(calls, [[1, 'a', 'expire']], "the expired value set replaced was disposed as 'expire'");
    assert.equal(cache.get('a'), 2, 'the new value is stored');
  });

  it("removes a live entry on delete, reporting 'delete'", (t) => {
    const { calls, cache } = setup(t);
    cache.set('a', 1);
    assert.equal(cache.delete('a'), true, 'delete of a live entry answers true');
    assert.equal(cache.delete('a'), false, 'delete of a missing entry answers false');
    assert.equal(cache.has('a'), false, 'the deleted entry is gone');
    assert.deepEqual(calls, [[1, 'a', 'delete']], "delete disposed the entry as 'delete'");
  });

  it('lets dispose throw to the caller, with the cache already consistent', (t) => {
    const { clock, cache } = setup(t, {
      dispose: () => {
        throw new Error('boom');
      },
    });
    cache.set('a', 1).set('b', 2);
    assert.throws(() => cache.delete('a'), /boom/, "delete lets dispose's error through");
    clock.now = 1000;
    assert.throws(() => cache.get('b'), /boom/, "a get that expires an entry lets dispose's error through");
    assert.equal(cache.size, 0, 'both entries are gone despite the errors');
    assert.equal(cache.has('b'), false, 'the entry whose dispose threw is gone');
  });

  it('works without dispose', (t) => {
    const clock = { now: 0 };
    const cache = new ExpiringCache<string, number>({ ttl: 1000, max: 1, now: () => clock.now });
    t.after(() => cache.close());
    cache.set('a', 1).set('b', 2);
    assert.equal(cache.has('a'), false, 'max: 1 pushed out the first entry without a dispose');
    assert.equal(cache.delete('b'), true, 'delete works without a dispose');
    cache.set('c', 3);
    clock.now = 1000;
    assert.equal(cache.purgeStale(), 1, 'purgeStale counts the expired entry without a dispose');
  });
});

describe('ExpiringCache max', () => {
  it("evicts the least recently used entry as 'evict', a get making an entry recent", (t) => {
    const { calls, cache } = setup(t, { max: 3 });
    cache.set('a', 1).set('b', 2).set('c', 3);
    assert.equal(cache.get('a'), 1, 'get finds a live entry');
    cache.set('d', 4);
    assert.deepEqual(calls, [[2, 'b', 'evict']], "the least recently used entry, b, was evicted as 'evict'");
    assert.deepEqual([...cache.keys()], ['c', 'a', 'd'], 'the keys run from least to most recently used, a moved by the get');
    cache.set('e', 5);
    assert.deepEqual(calls.at(-1), [3, 'c', 'evict'], 'the next set evicted the next least recently used, c');
    assert.equal(cache.size, 3, 'the size stays at max');
  });

  it('does not make an entry recent on peek, has or expiresAt', (t) => {
    const { calls, cache } = setup(t, { max: 2 });
    cache.set('a', 1).set('b', 2);
    cache.peek('a');
    cache.has('a');
    cache.expiresAt('a');
    cache.set('c', 3);
    assert.deepEqual(calls, [[1, 'a', 'evict']], 'peek, has and expiresAt left a least recently used, so it was evicted');
  });

  it('makes an entry recent on set and touch, which never evict by themselves', (t) => {
    const { calls, cache } = setup(t, { max: 3 });
    cache.set('a', 1).set('b', 2).set('c', 3);
    cache.set('a', 10);
    cache.touch('b');
    assert.deepEqual(calls, [], 'set of an existing key and touch evicted nothing');
    cache.set('d', 4);
    assert.deepEqual(calls, [[3, 'c', 'evict']], 'c, least recently used after a was set and b touched, was evicted');
    assert.deepEqual([...cache.keys()], ['a', 'b', 'd'], 'a and b were made recent in that order');
  });

  it("reports an expired least recently used entry as 'expire' when it is pushed out", (t) => {
    const { clock, calls, cache } = setup(t, { max: 2 });
    cache.set('a', 1, 100).set('b', 2);
    clock.now = 100;
    cache.set('c', 3);
    assert.deepEqual(calls, [[1, 'a', 'expire']], "the pushed-out entry had expired, so it was reported as 'expire'");
  });

  it('evicts in order of use over many entries and keeps a hot key', (t) => {
    const { calls, cache } = setup(t, { max: 1000, ttl: '1h' });
    cache.set('hot', -1);
    for (let i = 0; i < 5000; i++) {
      cache.set(`k${i}`, i);
      assert.equal(cache.get('hot'), -1, 'the hot key, read after every set, is never evicted');
    }
    assert.equal(cache.size, 1000, 'the size stays at max');
    assert.deepEqual(
      calls.map(([, key]) => key),
      Array.from({ length: 4001 }, (_, i) => `k${i}`), 'the entries were evicted in the order they were set',
    );
    assert.ok(calls.every(([, , reason]) => reason === 'evict'), "every eviction was reported as 'evict'");
  });

  it('stays fast when two keys take turns on a large cache, each hit moving its entry', (t) => {
    const { cache } = setup(t, { max: 50_000, ttl: '1h' });
    for (let i = 0; i < 50_000; i++) cache.set(`k${i}`, i);
    const started = process.hrtime.bigint();
    for (let i = 0; i < 200_000; i++) cache.get(i % 2 === 0 ? 'k1' : 'k2');
    // With the Map itself reordered on every hit (a delete and a set), this takes seconds: each
    // lookup walks a hash chain that every move makes longer.
    assert.ok(process.hrtime.bigint() - started < 1_000_000_000n, '200 000 alternating hits on 50 000 entries take under a second');
  });

  it('tracks the order of use under a large max: a use moves its entry, unless among the last eighth moved', (t) => {
    const { calls, cache } = setup(t, { max: 1000, ttl: '1h' });
    for (let i = 0; i < 1000; i++) cache.set(`k${i}`, i);
    // The first 100, used in an order of their own: each is far from the end, so each moves.
    const used = Array.from({ length: 100 }, (_, i) => `k${(i * 37) % 100}`);
    for (const [i, key] of used.entries()) {
      if (i % 3 === 0) cache.get(key);
      else if (i % 3 === 1) cache.touch(key);
      else cache.set(key, Number(key.slice(1)));
    }
    const rest = Array.from({ length: 900 }, (_, i) => `k${i + 100}`);
    assert.deepEqual([...cache.keys()], [...rest, ...used], 'the keys run in the order of their last use');
    // k998 was set 102 additions or moves ago, within the last 125 (1000 / 8): it stays put.
    cache.get('k998');
    cache.touch('k999');
    assert.deepEqual([...cache.keys()], [...rest, ...used], 'a use of an entry among the last eighth moved nothing');
    cache.get('k100');
    assert.deepEqual([...cache.keys()].at(-1), 'k100', 'a use of an entry further back moved it to the end');
    for (let i = 0; i < 10; i++) cache.set(`new${i}`, -1);
    assert.deepEqual(calls.map(([, key]) => key), rest.slice(1, 11), 'the ten least recently used were evicted, in order, k100 spared by its get');
  });

  it('keeps the order of use whole through every way an entry leaves: delete, expiry on a read, purgeStale, eviction, the sweep and clear', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'setImmediate'] });
    // The timer is due at b's expiry (100) and runs only when the mocked timers are moved, at the sweep.
    const { clock, calls, cache } = setup(t, { max: 6, ttl: '1h', sweepInterval: 0 });
    cache.set('a', 1).set('b', 2, 100).set('c', 3).set('d', 4, 200).set('e', 5).set('f', 6, 300);
    cache.delete('c');
    assert.deepEqual([...cache.keys()], ['a', 'b', 'd', 'e', 'f'], 'a deleted entry leaves the order');
    clock.now = 100;
    assert.equal(cache.get('b'), undefined, 'b expired');
    assert.deepEqual([...cache.keys()], ['a', 'd', 'e', 'f'], 'an entry expired on a read leaves the order');
    clock.now = 200;
    assert.equal(cache.purgeStale(), 1, 'purgeStale removed d');
    assert.deepEqual([...cache.keys()], ['a', 'e', 'f'], 'an entry purged leaves the order');
    clock.now = 300;
    t.mock.timers.tick(300);
    assert.deepEqual(calls.at(-1), [6, 'f', 'expire'], 'the sweep removed f');
    assert.deepEqual([...cache.keys()], ['a', 'e'], 'an entry swept leaves the order');
    cache.set('g', 7).set('h', 8).set('i', 9).set('j', 10).set('k', 11);
    assert.deepEqual(calls.at(-1), [1, 'a', 'evict'], 'the seventh entry evicted the least recently used left, a');
    assert.deepEqual([...cache.values()], [5, 7, 8, 9, 10, 11], 'an evicted entry leaves the order; the rest are in it once each');
    assert.equal(cache.size, 6, 'the size is max');
    cache.set('l', 12).set('m', 13);
    assert.deepEqual(calls.slice(-2), [[5, 'e', 'evict'], [7, 'g', 'evict']], 'the next two sets evicted e and g: nothing that left before is evicted again');
    assert.equal(cache.size, 6, 'the size is still max');
    cache.clear();
    assert.deepEqual([...cache.entries()], [], 'clear leaves no order behind');
    cache.set('x', 1).set('y', 2);
    assert.deepEqual([...cache.entries()], [['x', 1], ['y', 2]], 'the order starts again after clear');
  });

  it('keeps the order of use whole when dispose uses the cache during an eviction and a sweep, and moves an expired key set again', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'setImmediate'] });
    const clock = { now: 0 };
    const calls: string[] = [];
    const cache: ExpiringCache<string, number> = new ExpiringCache<string, number>({
      ttl: '1h',
      max: 3,
      sweepInterval: 0,
      now: () => clock.now,
      dispose: (_value, key, reason) => {
        calls.push(`${key} ${reason}`);
        // An evicted entry brings back a key of its own (which evicts the next in line), once;
        // a swept one deletes another entry.
        if (key === 'a') cache.set('a2', 2);
        if (key === 'x') cache.delete('c');
      },
    });
    t.after(() => cache.close());
    cache.set('a', 1).set('b', 1).set('c', 1, 100).set('d', 1);
    assert.deepEqual(calls, ['a evict', 'b evict'], 'd evicted a, whose dispose set a2, which evicted b');
    assert.deepEqual([...cache.keys()], ['c', 'd', 'a2'], 'the order holds each entry once: c, d, then a2 (set from the dispose inside the set of d)');
    clock.now = 100;
    cache.set('c', 3);
    assert.deepEqual(calls.at(-1), 'c expire', 'a set of an expired key reports the expired value');
    assert.deepEqual([...cache.keys()], ['d', 'a2', 'c'], 'and makes the key the most recently used');
    cache.set('x', 1, 50);
    assert.deepEqual(calls.at(-1), 'd evict', 'x evicted d');
    clock.now = 150;
    t.mock.timers.tick(150);
    assert.deepEqual(calls.slice(-2), ['x expire', 'c delete'], "the sweep removed x, whose dispose deleted c");
    assert.deepEqual([...cache.keys()], ['a2'], 'the order holds what is left, once');
    cache.set('e', 1).set('f', 1).set('g', 1);
    assert.deepEqual(calls.at(-1), 'a2 evict', 'eviction goes on from the right entry');
    assert.deepEqual([...cache.keys()], ['e', 'f', 'g'], 'and the order is whole');
  });

  it('keeps the order keys were first set when there is no max', (t) => {
    const { cache } = setup(t);
    cache.set('a', 1).set('b', 2);
    cache.get('a');
    cache.touch('a');
    cache.set('a', 3);
    assert.deepEqual([...cache.keys()], ['a', 'b'], 'without max, get, touch and set keep the order keys were first set');
  });
});

describe('ExpiringCache size, purgeStale and iteration', () => {
  it('counts expired entries in size until something removes them', (t) => {
    const { clock, calls, cache } = setup(t);
    cache.set('a', 1, 100).set('b', 2, 200).set('c', 3);
    clock.now = 200;
    assert.equal(cache.size, 3, 'expired entries are counted until removed');
    assert.equal(cache.purgeStale(), 2, 'purgeStale removes and counts the two expired entries');
    assert.equal(cache.size, 1, 'only the live entry is left');
    assert.deepEqual(calls, [
      [1, 'a', 'expire'],
      [2, 'b', 'expire'],
    ], "purgeStale disposed the expired entries as 'expire', in order");
    assert.equal(cache.purgeStale(), 0, 'a second purgeStale finds nothing');
  });

  it('lists live entries only, from least to most recently used', (t) => {
    const { clock, cache } = setup(t, { max: 10 });
    cache.set('a', 1).set('b', 2, 100).set('c', 3);
    cache.get('a');
    clock.now = 100;
    assert.deepEqual([...cache.keys()], ['c', 'a'], 'keys lists live entries from least to most recently used');
    assert.deepEqual([...cache.values()], [3, 1], 'values follows the same order');
    assert.deepEqual([...cache.entries()], [
      ['c', 3],
      ['a', 1],
    ], 'entries follows the same order');
    assert.deepEqual([...cache], [...cache.entries()], 'iterating the cache itself gives its entries');
    assert.equal(cache.size, 3, 'iterating removes nothing');
  });

  it('iterates a snapshot, so the loop may use the cache', (t) => {
    const { cache } = setup(t, { max: 10 });
    cache.set('a', 1).set('b', 2).set('c', 3);
    const seen: string[] = [];
    for (const key of cache.keys()) {
      seen.push(key);
      cache.get(key);
      cache.set(`${key}2`, 0);
    }
    assert.deepEqual(seen, ['a', 'b', 'c'], 'the loop saw the snapshot taken before it changed the cache');
  });
});

describe('ExpiringCache clear and close', () => {
  it('clear removes everything without calling dispose, and the cache goes on', (t) => {
    const { clock, calls, cache } = setup(t);
    cache.set('a', 1).set('b', 2);
    cache.clear();
    assert.equal(cache.size, 0, 'clear left nothing');
    assert.equal(cache.get('a'), undefined, 'a cleared value is gone');
    cache.set('c', 3);
    clock.now = 1000;
    assert.equal(cache.get('c'), undefined, 'the cache still expires entries set after clear');
    assert.deepEqual(calls, [[3, 'c', 'expire']], 'clear disposed nothing; only the later expiry was disposed');
  });

  it('keeps no handle alive: no timer while empty, the timer unref()ed, close() clearing it', (t) => {
    const setTimeoutSpy = t.mock.method(globalThis, 'setTimeout');
    const clearTimeoutSpy = t.mock.method(globalThis, 'clearTimeout');
    const timeouts = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = timeouts();
    const cache = new ExpiringCache<string, number>({ ttl: '1m' });
    t.after(() => cache.close());
    assert.equal(setTimeoutSpy.mock.callCount(), 0, 'an empty cache starts no timer');

    cache.set('a', 1).set('b', 2);
    assert.equal(setTimeoutSpy.mock.callCount(), 1, 'one timer for both');
    const handle = setTimeoutSpy.mock.calls[0]?.result as NodeJS.Timeout;
    assert.equal(handle.hasRef(), false, 'the timer is unref()ed');
    assert.equal(timeouts(), before, 'the cache adds no active Timeout to the process');

    cache.delete('a');
    assert.equal(clearTimeoutSpy.mock.callCount(), 0, 'the timer stays while an entry is left');
    cache.delete('b');
    assert.deepEqual(clearTimeoutSpy.mock.calls.map((c) => c.arguments[0]), [handle], 'empty: cleared');

    cache.set('c', 3);
    const second = setTimeoutSpy.mock.calls[1]?.result;
    cache.close();
    assert.equal(clearTimeoutSpy.mock.calls[1]?.arguments[0], second, 'close cleared the second timer');
    assert.equal(cache.size, 0, 'close emptied the cache');
    cache.close();
    cache.set('d', 4);
    assert.equal(setTimeoutSpy.mock.callCount(), 2, 'none after close');
    assert.equal(cache.get('d'), 4, 'the cache still stores after close');
  });

  it('close calls no dispose, ever after sweeps nothing, and still expires lazily', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'setImmediate'] });
    const { clock, calls, cache } = setup(t);
    cache.set('a', 1);
    cache.close();
    assert.deepEqual(calls, [], 'close disposed nothing');
    cache.set('b', 2);
    advance(t, clock, 60_000);
    t.mock.timers.runAll();
    assert.deepEqual(calls, [], 'nothing was swept after close');
    assert.equal(cache.size, 1, 'the entry set after close is still counted');
    assert.equal(cache.get('b'), undefined, 'the entry set after close still expires on read');
    assert.deepEqual(calls, [[2, 'b', 'expire']], "the lazy expiry after close disposed as 'expire'");
  });
});

describe('ExpiringCache background sweep', () => {
  it("calls dispose('expire') from the timer, without any read", (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'setImmediate'] });
    const { clock, calls, cache } = setup(t);
    cache.set('a', 1).set('b', 2, 3000);
    advance(t, clock, 999);
    assert.deepEqual(calls, [], 'nothing is swept before the first expiry');
    advance(t, clock, 1);
    assert.deepEqual(calls, [[1, 'a', 'expire']], 'the timer swept a at its expiry, with no read');
    assert.equal(cache.size, 1, 'b, not yet expired, is left');
    advance(t, clock, 2000);
    assert.deepEqual(calls.at(-1), [2, 'b', 'expire'], 'the timer swept b at its own expiry');
    assert.equal(cache.size, 0, 'the sweeps left nothing');
  });

  it('sweeps no sooner than sweepInterval after scheduling', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'setImmediate'] });
    const { clock, calls, cache } = setup(t, { ttl: 10, sweepInterval: '1s' });
    cache.set('a', 1);
    cache.set('b', 2, 5);
    advance(t, clock, 999);
    assert.deepEqual(calls, [], 'nothing is swept before sweepInterval');
    advance(t, clock, 1);
    assert.deepEqual(calls, [
      [1, 'a', 'expire'],
      [2, 'b', 'expire'],
    ], 'the sweep at sweepInterval took both expired entries');
  });

  it('re-checks the clock when the timer fires, and schedules again when it is early', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'setImmediate'] });
    const { clock, calls, cache } = setup(t);
    cache.set('a', 1);
    t.mock.timers.tick(1000); // the timer fires; the clock says 0
    assert.equal(cache.size, 1, 'an early timer (the clock not moved) sweeps nothing');
    assert.deepEqual(calls, [], 'an early timer disposes nothing');
    advance(t, clock, 1000);
    assert.deepEqual(calls, [[1, 'a', 'expire']], 'the timer scheduled again swept once the clock reached the expiry');
  });

  it('moves the one timer earlier for a sooner expiry, never later', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'setImmediate'] });
    const clearTimeoutSpy = t.mock.method(globalThis, 'clearTimeout');
    const { clock, calls, cache } = setup(t, { ttl: '1m' });
    cache.set('late', 1);
    cache.set('soon', 2, '2s');
    assert.equal(clearTimeoutSpy.mock.callCount(), 1, 'a sooner expiry replaced the timer');
    cache.set('later', 3, '2m');
    cache.touch('soon', '3s');
    assert.equal(clearTimeoutSpy.mock.callCount(), 1, 'later expiries kept the timer');
    advance(t, clock, 2000);
    assert.deepEqual(calls, [], 'nothing is swept at 2 s: soon was touched to 3 s');
    advance(t, clock, 1000); // the timer was still for 2s: the sweep found nothing
    assert.deepEqual(calls, [[2, 'soon', 'expire']], 'soon was swept at 3 s');
    advance(t, clock, 57_000);
    assert.deepEqual(calls.at(-1), [1, 'late', 'expire'], 'late was swept at 1 min');
    advance(t, clock, 60_000);
    assert.deepEqual(calls.at(-1), [3, 'later', 'expire'], 'later was swept at 2 min');
  });

  it('moves the timer earlier when touch shortens a life', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'setImmediate'] });
    const { clock, calls, cache } = setup(t, { ttl: '1m' });
    cache.set('a', 1);
    cache.touch('a', '2s');
    advance(t, clock, 2000);
    assert.deepEqual(calls, [[1, 'a', 'expire']], 'the entry touched to 2 s was swept at 2 s, not 1 min');
  });

  it('keeps the timer when a sooner expiry still falls before the next allowed sweep', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'setImmediate'] });
    const clearTimeoutSpy = t.mock.method(globalThis, 'clearTimeout');
    const { clock, calls, cache } = setup(t, { ttl: 500 });
    cache.set('a', 1);
    cache.set('b', 2, 300);
    assert.equal(clearTimeoutSpy.mock.callCount(), 0, 'a sooner expiry within sweepInterval did not replace the timer');
    advance(t, clock, 1000);
    assert.equal(calls.length, 2, 'the one sweep took both entries');
  });

  it('never asks setTimeout for more than it can wait', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'setImmediate'] });
    const setTimeoutSpy = t.mock.method(globalThis, 'setTimeout');
    const { clock, calls, cache } = setup(t, { ttl: '30d' });
    cache.set('a', 1);
    assert.equal(setTimeoutSpy.mock.calls[0]?.arguments[1], 2_147_483_647, 'a 30-day expiry asks setTimeout for its largest delay, 2^31 - 1 ms');
    advance(t, clock, 2_147_483_647);
    assert.deepEqual(calls, [], 'nothing is swept when the longest timer fires early');
    advance(t, clock, 30 * 86_400_000 - 2_147_483_647);
    assert.deepEqual(calls, [[1, 'a', 'expire']], 'the entry is swept at its 30-day expiry');
  });

  it('sweeps a large cache in chunks of 10 000 with setImmediate between them', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'setImmediate'] });
    const immediate = t.mock.method(globalThis, 'setImmediate');
    const perChunk: number[] = [];
    const { clock, cache } = setup(t, {
      dispose: () => {
        const chunk = immediate.mock.callCount();
        perChunk[chunk] = (perChunk[chunk] ?? 0) + 1;
      },
    });
    for (let i = 0; i < 50_000; i++) cache.set(`k${i}`, i);
    cache.set('live', -1, 5000);
    advance(t, clock, 1001);
    assert.deepEqual(perChunk, [10_000, 10_000, 10_000, 10_000, 10_000], '50 000 expired entries were swept in five chunks of 10 000');
    assert.equal(immediate.mock.callCount(), 5, 'a setImmediate after each full chunk of 10 000, none per entry');
    assert.equal(cache.size, 1, 'the sweep left only the live entry');
    advance(t, clock, 3999);
    assert.equal(cache.size, 0, 'the next timer came at the soonest expiry left');
  });

  it('sweeps on real timers too, its immediates unref()ed, and close() stops it midway', async (t) => {
    // The one test on real timers: the timer is due 1 ms after the set. The cache's own
    // handles being unref()ed, something else has to keep the process up meanwhile.
    const keepAlive = setInterval(() => {}, 60_000);
    t.after(() => clearInterval(keepAlive));
    const immediate = t.mock.method(globalThis, 'setImmediate');
    const clock = { now: 0 };
    let calls = 0;
    let firstCall: () => void = () => {};
    const first = new Promise<void>((resolve) => (firstCall = resolve));
    const cache = new ExpiringCache<number, number>({
      ttl: 1,
      sweepInterval: 0,
      now: () => clock.now,
      dispose: () => {
        if (++calls === 1) firstCall();
      },
    });
    t.after(() => cache.close());
    for (let i = 0; i < 10_005; i++) cache.set(i, i);
    clock.now = 1;
    await first;
    assert.equal(cache.size, 5, 'one chunk swept, five entries to go');
    assert.equal(immediate.mock.callCount(), 1, 'one setImmediate was scheduled for the next chunk');
    const handle = immediate.mock.calls[0]?.result as NodeJS.Immediate;
    assert.equal(handle.hasRef(), false, "the sweep's immediate is unref()ed");
    assert.ok(!process.getActiveResourcesInfo().includes('Immediate'), 'no active Immediate keeps the process up');
    cache.close();
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(calls, 10_000, 'close stopped the sweep after the first chunk');
    assert.equal(cache.size, 0, 'close emptied the cache');
  });

  it('picks up entries set from dispose during a sweep, with no second timer', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'setImmediate'] });
    const setTimeoutSpy = t.mock.method(globalThis, 'setTimeout');
    const clock = { now: 0 };
    const keys: string[] = [];
    const cache: ExpiringCache<string, number> = new ExpiringCache<string, number>({
      ttl: 1000,
      now: () => clock.now,
      dispose: (value, key) => {
        keys.push(key);
        if (value < 3) cache.set(`${key}+`, value + 1, 2000 - value);
      },
    });
    t.after(() => cache.close());
    cache.set('a', 1).set('b', 5, 5000);
    advance(t, clock, 1000);
    assert.deepEqual(keys, ['a'], 'the first sweep took a');
    assert.equal(setTimeoutSpy.mock.callCount(), 2, 'the entry set from dispose got the one new timer');
    advance(t, clock, 1998);
    assert.deepEqual(keys, ['a'], 'a+ lives until 2999');
    advance(t, clock, 1);
    assert.deepEqual(keys, ['a', 'a+'], 'a+ was swept at its expiry');
    advance(t, clock, 3000);
    assert.deepEqual(keys, ['a', 'a+', 'b', 'a++'], 'b and a++ were swept at the next sweep');
  });

  it('stops a sweep under way when dispose clears the cache', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'setImmediate'] });
    const immediate = t.mock.method(globalThis, 'setImmediate');
    const clock = { now: 0 };
    let calls = 0;
    const cache: ExpiringCache<string, number> = new ExpiringCache<string, number>({
      ttl: 1000,
      now: () => clock.now,
      dispose: () => {
        calls++;
        cache.clear();
      },
    });
    t.after(() => cache.close());
    for (let i = 0; i < 20_000; i++) cache.set(`k${i}`, i);
    advance(t, clock, 1001);
    assert.equal(calls, 1, 'dispose ran once before it cleared the cache');
    assert.equal(cache.size, 0, 'clear in dispose emptied the cache');
    assert.equal(immediate.mock.callCount(), 0, 'the stopped sweep scheduled no next chunk');
  });

  it('goes on sweeping after dispose throws from the timer', async (t) => {
    // Real immediates: a mocked one would be run again after its callback throws.
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const clock = { now: 0 };
    let calls = 0;
    const swept = new ExpiringCache<string, number>({
      ttl: 1000,
      now: () => clock.now,
      dispose: () => {
        if (++calls === 1) throw new Error('boom');
      },
    });
    t.after(() => swept.close());
    swept.set('a', 1).set('b', 2).set('c', 3);
    clock.now = 1000;
    assert.throws(() => t.mock.timers.tick(1000), /boom/, "dispose's error from the timer reaches the timer's caller");
    assert.equal(swept.size, 2, 'the entry whose dispose threw is gone, the others still there');
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(swept.size, 0, 'the sweep went on after the error');
    assert.equal(calls, 3, 'dispose was called for every entry');
  });
});

describe('ExpiringCache: the entry last found', () => {
  // The cache remembers the entry it found last, so that a read, then a touch or set of the
  // same key, looks it up once. Every way an entry leaves the map must forget it: a remembered
  // entry that left would answer reads, and take the next set of its key out of the map.
  const ways: [string, (t: TestContext, c: ReturnType<typeof setup>) => void][] = [
    ['delete', (_t, { cache }) => void cache.delete('a')],
    ['expiry found on a read of another method', (_t, { clock, cache }) => {
      clock.now = 1000;
      assert.equal(cache.has('a'), false, 'the entry is expired');
    }],
    ['the background sweep', (t, { clock, cache }) => {
      advance(t, clock, 1000);
      assert.equal(cache.size, 0, 'the sweep removed the entry');
      // A wall clock may step back (NTP): the entry that left must not come back to life.
      clock.now = 0;
    }],
    ['eviction by max', (_t, { cache }) => void cache.set('b', 2).set('c', 3)],
    ['clear', (_t, { cache }) => cache.clear()],
    ['purgeStale', (_t, { clock, cache }) => {
      clock.now = 1000;
      assert.equal(cache.purgeStale(), 1, 'purgeStale removed the entry');
    }],
  ];
  for (const [way, remove] of ways) {
    it(`forgets it when it leaves by ${way}`, (t) => {
      t.mock.timers.enable({ apis: ['setTimeout', 'setImmediate'] });
      const c = setup(t, { max: 2 });
      c.cache.set('a', 1);
      assert.equal(c.cache.get('a'), 1, 'the entry is found, and remembered');
      remove(t, c);
      assert.equal(c.cache.get('a'), undefined, `after ${way}, a read does not find the entry`);
      c.cache.set('a', 9);
      assert.equal(c.cache.get('a'), 9, 'a new set of the key is read back');
      assert.ok([...c.cache.keys()].includes('a'), `the new entry is in the map, not in a forgotten one (keys: ${[...c.cache.keys()].join(',')})`);
      assert.equal(c.cache.touch('a'), true, 'and touch finds it');
    });
  }

  it('finds an entry by a key equal to the one remembered but made anew', (t) => {
    const { cache } = setup(t);
    const key = ['se', 'ss'].join('');
    cache.set(key, 1);
    assert.equal(cache.get(key), 1, 'found by the key it was set with');
    assert.equal(cache.get(['s', 'ess'].join('')), 1, 'found by an equal string made separately');
    assert.equal(cache.get('other'), undefined, 'another key is not taken for the remembered one');
    assert.equal(cache.touch('sess', 5000), true, 'touch finds the entry after a miss on another key');
  });
});

describe('ExpiringCache notes', () => {
  it('keeps a note beside a live entry: 0 until set, kept when set replaces the value, gone with the entry', (t) => {
    const { clock, cache } = setup(t);
    assert.equal(cache.noteOf('a'), undefined, 'a missing key has no note');
    assert.equal(cache.setNote('a', 5), false, 'a missing key takes no note');
    cache.set('a', 1);
    assert.equal(cache.noteOf('a'), 0, 'a new entry notes 0');
    assert.equal(cache.setNote('a', 7), true, 'a live entry takes a note');
    cache.set('a', 2);
    assert.equal(cache.noteOf('a'), 7, 'replacing the value keeps the note');
    cache.delete('a');
    cache.set('a', 3);
    assert.equal(cache.noteOf('a'), 0, 'an entry set again after a delete starts from 0');
    clock.now = 1000;
    assert.equal(cache.noteOf('a'), undefined, 'an expired entry has no note');
    assert.equal(cache.setNote('a', 9), false, 'and takes none');
    cache.set('b', 1);
    cache.setNote('b', 4);
    clock.now = 2000;
    cache.set('b', 2);
    assert.equal(cache.noteOf('b'), 0, 'a value set where an expired one was starts from 0, not with the old note');
  });
});
