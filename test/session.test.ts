import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FileStorage, HttpError, MemoryStorage, Server, type SessionData, generateId } from '../lib/index.js';
import { isValidId } from '../lib/id.js';
import type { TestContext } from 'node:test';
import type { Storage } from '../lib/storage/storage.js';
import { Barrier, Clock, FailingStorage, GatedStorage, Jar, SpyStorage, cookieValue, deferred, send, serve, tempDir, turn, waitFor } from './helpers.js';

/** The seed's routes, plus a few more used below. */
function seed(s: Server): void {
  s.group('/', (group) => {
    group.all('/set', (r) => {
      r.session.set('time', 1700000000);
      r.response.write('ok');
    });
    group.all('/get', (r) => {
      r.response.write(r.session.data());
    });
    group.all('/del', (r) => {
      r.session.removeAll();
      r.response.write('ok');
    });
    group.all('/remember', (r) => {
      r.session.remember('10m');
      r.response.write('ok');
    });
    group.all('/set-other', (r) => {
      r.session.set('other', (r.session.get('other') as number | undefined ?? 0) + 1);
      r.response.write('ok');
    });
  });
}

describe('the session over HTTP', () => {
  it('sets, gets, removes and clears over a cookie jar (GoFrame\'s HTTP script)', async (t) => {
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => {
      s.all('/set', (r) => {
        r.session.set(r.query.get('k') ?? 'k', r.query.get('v') ?? '');
        r.response.write('ok');
      });
      s.all('/get', (r) => r.response.write(r.session.get(r.query.get('k') ?? 'k', null)));
      s.all('/remove', (r) => {
        r.session.remove(r.query.get('k') ?? 'k');
        r.response.write('ok');
      });
      s.all('/clear', (r) => {
        r.session.removeAll();
        r.response.write('ok');
      });
      s.all('/all', (r) => r.response.write(r.session.data()));
    });
    const jar = new Jar();
    assert.equal((await jar.send(s.port, '/set?k=k1&v=v1')).body, 'ok', '/set answers ok');
    await jar.send(s.port, '/set?k=k2&v=v2');
    assert.equal((await jar.send(s.port, '/get?k=k1')).body, 'v1', 'k1 reads back');
    assert.equal((await jar.send(s.port, '/get?k=k2')).body, 'v2', 'k2 reads back');
    await jar.send(s.port, '/remove?k=k1');
    assert.equal((await jar.send(s.port, '/get?k=k1')).body, '', 'a removed key reads as nothing');
    assert.equal((await jar.send(s.port, '/all')).body, '{"k2":"v2"}', 'the session holds only the key left');
    await jar.send(s.port, '/clear');
    assert.equal((await jar.send(s.port, '/all')).body, '{}', 'removeAll left an empty session');
  });

  it('reads the id from a header when no cookie carries it', async (t) => {
    const s = await serve(t, { sessionStorage: new MemoryStorage(), sessionIdName: 'token' }, seed);
    const first = await send(s.port, '/set');
    const id = cookieValue(first.setCookies, 'token') as string;
    assert.ok(isValidId(id), 'the id is issued in a cookie named by sessionIdName');
    const got = await send(s.port, '/get', { headers: { token: id } });
    assert.equal(got.body, '{"time":1700000000}', 'the id sent in a header of that name loads the session');
    // The cookie wins over the header.
    const other = await send(s.port, '/set');
    const otherId = cookieValue(other.setCookies, 'token') as string;
    const both = await send(s.port, '/get', { headers: { token: id, cookie: `token=${otherId}` } });
    assert.equal(both.body, '{"time":1700000000}', 'the id in the cookie wins over the one in the header');
  });

  it('uses a custom id generator and validator', async (t) => {
    let n = 0;
    const s = await serve(
      t,
      {
        sessionStorage: new MemoryStorage(),
        sessionIdGenerator: () => `custom-${++n}-${'x'.repeat(20)}`,
        sessionIdValidator: (id) => /^custom-\d+-x{20}$/.test(id),
      },
      (s) => {
        seed(s);
        s.all('/id', (r) => r.response.write(r.session.id));
      },
    );
    const jar = new Jar();
    await jar.send(s.port, '/set');
    assert.equal(jar.cookies.get('sid'), `custom-1-${'x'.repeat(20)}`, 'the cookie carries the id the custom generator made');
    assert.equal((await jar.send(s.port, '/get')).body, '{"time":1700000000}', 'an id the custom validator accepts loads its session');
    assert.equal((await jar.send(s.port, '/id')).body, `custom-1-${'x'.repeat(20)}`, 'r.session.id is the custom id');
  });

  it('refuses a generator without a validator, and ids the validator refuses', async (t) => {
    assert.throws(() => new Server({ sessionIdGenerator: () => 'x' }), /together/, 'a generator without a validator is refused');
    const errors: unknown[] = [];
    const s = await serve(
      t,
      { sessionStorage: new MemoryStorage(), sessionIdGenerator: () => 'bad', sessionIdValidator: () => false, onError: (e) => errors.push(e) },
      seed,
    );
    assert.equal((await send(s.port, '/set')).status, 500, 'a generated id the validator refuses fails the request with 500');
    assert.match(String(errors[0]), /sessionIdGenerator/, 'the error names the sessionIdGenerator');
  });

  it('regenerates with and without the data, deleting the old record', async (t) => {
    const storage = new MemoryStorage();
    const s = await serve(t, { sessionStorage: storage }, (s) => {
      seed(s);
      s.all('/regen', async (r) => {
        const keep = r.query.get('keep') !== 'no';
        const old = r.session.id;
        const id = await r.session.regenerate({ keepData: keep });
        r.response.write(old !== id && r.session.id === id ? 'new' : 'same');
      });
    });
    const jar = new Jar();
    await jar.send(s.port, '/set');
    const first = jar.cookies.get('sid') as string;
    const regen = await jar.send(s.port, '/regen');
    assert.equal(regen.body, 'new', 'regenerate gave the session a new id, r.session.id included');
    assert.equal(regen.headers['cache-control'], 'no-store', 'a regenerated session is sent with Cache-Control: no-store');
    const second = jar.cookies.get('sid') as string;
    assert.notEqual(second, first, 'the cookie carries the new id');
    assert.equal((await jar.send(s.port, '/get')).body, '{"time":1700000000}', 'the data moved to the new id');
    assert.equal(await storage.get(first), undefined, 'the old record was deleted');
    // The old cookie replayed reads an empty session.
    assert.equal((await send(s.port, '/get', { headers: { cookie: `sid=${first}` } })).body, '{}', 'the old id replayed reads an empty session');
    await jar.send(s.port, '/regen?keep=no');
    assert.notEqual(jar.cookies.get('sid'), second, 'regenerate without the data gave another new id');
    assert.equal((await jar.send(s.port, '/get')).body, '{}', 'regenerate without the data left an empty session');
    assert.equal(await storage.get(second), undefined, 'the record before that regenerate was deleted too');
  });

  it('destroys: record deleted, cookie expired with the same Path and Domain', async (t) => {
    const storage = new MemoryStorage();
    const s = await serve(t, { sessionStorage: storage, cookieDomain: 'example.com', cookiePath: '/' }, (s) => {
      seed(s);
      s.all('/logout', async (r) => {
        await r.session.destroy();
        r.response.write(r.session.id === '' && r.session.size === 0 ? 'gone' : 'still');
      });
    });
    const set = await send(s.port, '/set');
    const id = cookieValue(set.setCookies, 'sid') as string;
    const out = await send(s.port, '/logout', { headers: { cookie: `sid=${id}` } });
    assert.equal(out.body, 'gone', 'after destroy the session has no id and no data');
    const line = out.setCookies.find((c) => c.startsWith('sid=')) as string;
    assert.match(line, /^sid=; Max-Age=0; Domain=example\.com; Path=\//, 'the cookie is expired with the Domain and Path it was set with');
    assert.equal(out.headers['cache-control'], 'no-store', 'a destroy is sent with Cache-Control: no-store');
    assert.equal(await storage.get(id), undefined, 'the record was deleted');
    const replay = await send(s.port, '/get', { headers: { cookie: `sid=${id}` } });
    assert.equal(replay.body, '{}', 'the destroyed id replayed reads an empty session');
    assert.deepEqual(replay.setCookies, [], 'the destroyed id replayed gets no cookie');
  });

  it('gives a write on a destroyed session a new id', async (t) => {
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => {
      seed(s);
      s.all('/relogin', async (r) => {
        await r.session.destroy();
        r.session.set('user', 'b');
        r.response.write('ok');
      });
    });
    const id = cookieValue((await send(s.port, '/set')).setCookies, 'sid') as string;
    const out = await send(s.port, '/relogin', { headers: { cookie: `sid=${id}` } });
    const next = cookieValue(out.setCookies, 'sid') as string;
    assert.ok(isValidId(next), 'a write after destroy issues a new id');
    assert.notEqual(next, id, 'the new id is not the destroyed one');
    assert.equal(out.setCookies.length, 1, 'one Set-Cookie: the new id, no expiry of the old one besides');
    assert.equal((await send(s.port, '/get', { headers: { cookie: `sid=${next}` } })).body, '{"user":"b"}', 'the write after destroy is stored under the new id');
  });
});

describe('strict ids', () => {
  it('never adopts a well-formed id it did not issue', async (t) => {
    const spy = new SpyStorage(new MemoryStorage());
    const s = await serve(t, { sessionStorage: spy }, seed);
    const forged = 'A'.repeat(43);
    const out = await send(s.port, '/set', { headers: { cookie: `sid=${forged}` } });
    const issued = cookieValue(out.setCookies, 'sid');
    assert.ok(issued !== undefined && issued !== forged, 'a forged id gets a fresh id instead of being adopted');
    assert.equal(spy.calls.filter((c) => c.method === 'set' && c.id === forged).length, 0, 'nothing was written under the forged id');
    assert.equal(await spy.inner.get(forged), undefined, 'no record exists under the forged id');
  });

  it('makes no storage call for a malformed id', async (t) => {
    const spy = new SpyStorage(new MemoryStorage());
    const s = await serve(t, { sessionStorage: spy }, seed);
    const corpus = ['../../etc/passwd', '..%2f..%2f', '/abs', 'a%00b', 'x'.repeat(10_000), '', '"quoted"', '__proto__', 'constructor', 'hasOwnProperty'];
    for (const id of corpus) {
      await send(s.port, '/get', { headers: { cookie: `sid=${id}` } });
      await send(s.port, '/get', { headers: { sid: id } });
    }
    assert.deepEqual(spy.calls, [], 'a malformed id, in a cookie or a header, costs no storage call');
  });

  it('treats prototype names in cookies as absent and leaves Object.prototype alone', async (t) => {
    const s = await serve(t, { sessionStorage: new MemoryStorage(), sessionIdName: 'constructor' }, seed);
    const out = await send(s.port, '/get', { headers: { cookie: '__proto__=x; constructor=y; hasOwnProperty=z' } });
    assert.equal(out.body, '{}', 'prototype names in the Cookie header give no session');
    assert.equal(({} as Record<string, unknown>)['x'], undefined, 'Object.prototype was not polluted');
    assert.equal(Object.prototype.hasOwnProperty, Object.getOwnPropertyDescriptor(Object.prototype, 'hasOwnProperty')?.value, 'Object.prototype.hasOwnProperty was not replaced');
  });
});

describe('lazy sessions', () => {
  it('creates nothing for 10 000 requests that carry no id and do not write', async (t) => {
    const storage = new MemoryStorage();
    const spy = new SpyStorage(storage);
    const s = await serve(t, { sessionStorage: spy }, (s) => {
      seed(s);
      s.all('/read', (r) => r.response.write(r.session.get('time', 0), r.session.has('x'), r.session.size, r.session.id));
      s.all('/noop-del', (r) => {
        r.session.remove('x');
        r.session.removeAll();
        r.response.write('ok');
      });
    });
    const { Agent } = await import('node:http');
    const agent = new Agent({ keepAlive: true, maxSockets: 20 });
    t.after(() => agent.destroy());
    let cookies = 0;
    for (let batch = 0; batch < 50; batch++) {
      const replies = await Promise.all(
        Array.from({ length: 200 }, (_, i) => send(s.port, i % 2 === 0 ? '/read' : '/noop-del', { agent })),
      );
      for (const r of replies) cookies += r.setCookies.length;
    }
    assert.equal(cookies, 0, 'requests that only read or remove get no cookie');
    assert.equal(storage.size, 0, 'nothing was stored');
    assert.deepEqual(spy.calls, [], 'requests that carry no id and do not write make no storage call');
  });

  it('loads with one storage call and touches a clean session once', async (t) => {
    const spy = new SpyStorage(new MemoryStorage());
    const s = await serve(t, { sessionStorage: spy }, seed);
    const jar = new Jar();
    await jar.send(s.port, '/set');
    spy.calls.length = 0;
    await jar.send(s.port, '/get');
    assert.deepEqual(spy.calls.map((c) => c.method), ['get', 'touch'], 'a read of a clean session is one get and one touch');
  });
});

describe('session values', () => {
  it('refuses values JSON cannot hold, changing nothing', async (t) => {
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => {
      s.all('/bad', (r) => {
        r.session.set('ok', 1);
        const results: string[] = [];
        const cyclic: Record<string, unknown> = {};
        cyclic['me'] = cyclic;
        for (const v of [() => 1, Symbol('s'), 10n, undefined, cyclic, new Date()]) {
          try {
            r.session.set('bad', v as never);
            results.push('accepted');
          } catch (e) {
            results.push(e instanceof TypeError ? 'TypeError' : 'other');
          }
        }
        try {
          r.session.setMap({ a: 1, b: () => 2 } as never);
        } catch {
          results.push('map refused');
        }
        results.push(JSON.stringify(r.session.data()));
        r.response.write(results.join(','));
      });
    });
    const out = await send(s.port, '/bad');
    assert.equal(out.body, 'TypeError,TypeError,TypeError,TypeError,TypeError,TypeError,map refused,{"ok":1}', 'every value JSON cannot hold is refused with a TypeError, a bad map is refused whole, the session unchanged');
  });

  it('loads stored data as plain JSON: __proto__ grants nothing', async (t) => {
    const storage = new MemoryStorage();
    const s = await serve(t, { sessionStorage: storage }, (s) => {
      s.all('/admin', (r) => r.response.write(String(r.session.get('admin' as never)), ',', String(r.session.has('constructor'))));
    });
    const id = (await import('../lib/id.js')).generateId();
    await storage.set(id, JSON.parse('{"__proto__":{"admin":true},"user":"u"}') as SessionData, 60_000);
    const out = await send(s.port, '/admin', { headers: { cookie: `sid=${id}` } });
    assert.equal(out.body, 'undefined,false', 'a stored __proto__ key grants no admin, and constructor is no key');
    assert.equal(({} as Record<string, unknown>)['admin'], undefined, 'Object.prototype was not polluted');
  });

  it('types values with the server\'s data type and copies objects', async (t) => {
    interface Data {
      time: number;
      cart: { items: string[] };
    }
    const s = await serve<Data>(t, { sessionStorage: new MemoryStorage() }, (s) => {
      s.all('/cart', (r) => {
        const cart = { items: ['a'] };
        r.session.set('cart', cart);
        cart.items.push('mutated after set');
        const got = r.session.get('cart', { items: [] });
        got.items.push('mutated after get');
        const time: number | undefined = r.session.get('time');
        r.response.write({ cart: r.session.get('cart'), time: time ?? null, dirty: r.session.isDirty });
      });
    });
    assert.equal((await send(s.port, '/cart')).body, '{"cart":{"items":["a"]},"time":null,"dirty":true}', 'set and get copy objects, and get is typed by the data type');
  });

  it('fails a request whose session is over sessionMaxSize, writing nothing', async (t) => {
    const errors: unknown[] = [];
    const storage = new MemoryStorage();
    const s = await serve(t, { sessionStorage: storage, sessionMaxSize: 1000, onError: (e) => errors.push(e) }, (s) => {
      s.all('/big', (r) => {
        r.session.set('big', 'x'.repeat(2000));
        r.response.write('ok');
      });
    });
    const out = await send(s.port, '/big');
    assert.equal(out.status, 500, 'a session over sessionMaxSize fails the request with 500');
    assert.deepEqual(out.setCookies, [], 'the failed request sets no cookie');
    assert.equal(storage.size, 0, 'nothing was stored');
    assert.match(String(errors[0]), /sessionMaxSize/, 'the error names sessionMaxSize');
  });
});

describe('expiry', () => {
  it('expires a session after its max age on every read, swept or not', async (t) => {
    const clock = new Clock();
    const storage = new MemoryStorage({ now: clock.now });
    const s = await serve(t, { sessionStorage: storage, sessionMaxAge: '1m', now: clock.now }, seed);
    const jar = new Jar();
    await jar.send(s.port, '/set');
    clock.advance(50_000);
    assert.equal((await jar.send(s.port, '/get')).body, '{"time":1700000000}', 'the session is live 50 s after the write');
    // The read extended it: 50 s more is still within a minute of the last use.
    clock.advance(50_000);
    assert.equal((await jar.send(s.port, '/get')).body, '{"time":1700000000}', 'the read extended the life: live 50 s after it');
    clock.advance(60_000);
    assert.equal((await jar.send(s.port, '/get')).body, '{}', 'the session is gone 60 s after the last use');
  });

  it('runs GoFrame\'s storage script: set keys and maps, size, has, remove, removeAll, expiry', async (t) => {
    const clock = new Clock();
    const storage = new MemoryStorage({ now: clock.now });
    const s = await serve(t, { sessionStorage: storage, sessionMaxAge: '1m', now: clock.now }, (s) => {
      s.all('/write', (r) => {
        r.session.set('k1', 'v1').set('k2', 'v2');
        r.session.setMap({ k3: 'v3', k4: 'v4' });
        r.response.write(r.session.size);
      });
      s.all('/read', (r) => {
        const out = [r.session.get('k1'), r.session.get('k3'), r.session.size, r.session.has('k4'), r.session.has('k9')];
        r.session.remove('k1');
        r.session.remove('absent');
        out.push(r.session.size);
        r.response.writeJson(out);
      });
      s.all('/clear', (r) => {
        r.session.removeAll();
        r.response.write(r.session.size);
      });
      s.all('/size', (r) => r.response.write(r.session.size));
    });
    const jar = new Jar();
    assert.equal((await jar.send(s.port, '/write')).body, '4', 'set and setMap stored four keys');
    assert.equal((await jar.send(s.port, '/read')).body, '["v1","v3",4,true,false,3]', 'get, size and has see the stored keys, and remove of a missing key changes nothing');
    assert.equal((await jar.send(s.port, '/size')).body, '3', 'the removal was stored');
    assert.equal((await jar.send(s.port, '/clear')).body, '0', 'removeAll left an empty session');
    assert.equal((await jar.send(s.port, '/size')).body, '0', 'the empty session was stored');
    await jar.send(s.port, '/write');
    clock.advance(60_001);
    assert.equal((await jar.send(s.port, '/size')).body, '0', 'the session expired past sessionMaxAge');
  });
});

describe('the session cookie', () => {
  it('has the default attributes and Max-Age of the session', async (t) => {
    const s = await serve(t, { sessionStorage: new MemoryStorage(), sessionMaxAge: '1h' }, seed);
    const out = await send(s.port, '/set');
    assert.equal(out.setCookies.length, 1, 'one Set-Cookie for the session');
    assert.match(out.setCookies[0] as string, /^sid=[A-Za-z0-9_-]{43}; Max-Age=3600; Path=\/; HttpOnly; SameSite=Lax$/, 'the cookie has the default attributes and the Max-Age of sessionMaxAge');
    assert.equal(out.headers['cache-control'], 'no-store', 'a new session is sent with Cache-Control: no-store');
  });

  it('is Secure behind a trusted proxy that says https, and only then', async (t) => {
    const warnings: string[] = [];
    const logger = { info: () => undefined, warn: (m: string) => warnings.push(m), error: () => undefined };
    const trusted = await serve(t, { sessionStorage: new MemoryStorage(), trustProxy: true, logger }, seed);
    const a = await send(trusted.port, '/set', { headers: { 'x-forwarded-proto': 'https' } });
    assert.match(a.setCookies[0] as string, /; Secure/, 'a trusted proxy that says https gives a Secure cookie');
    const untrusted = await serve(t, { sessionStorage: new MemoryStorage(), logger }, seed);
    const b = await send(untrusted.port, '/set', { headers: { 'x-forwarded-proto': 'https' } });
    await send(untrusted.port, '/set', { headers: { 'x-forwarded-proto': 'https' } });
    assert.doesNotMatch(b.setCookies[0] as string, /Secure/, 'an untrusted X-Forwarded-Proto: https gives no Secure cookie');
    assert.equal(warnings.length, 1, 'the ignored X-Forwarded-Proto warns once, not per request');
    assert.match(warnings[0] as string, /trustProxy/, 'the warning names trustProxy');
  });

  it('warns once when a Secure cookie goes out over plain HTTP', async (t) => {
    const warnings: string[] = [];
    const logger = { info: () => undefined, warn: (m: string) => warnings.push(m), error: () => undefined };
    const s = await serve(t, { sessionStorage: new MemoryStorage(), cookieSecure: true, logger }, seed);
    const out = await send(s.port, '/set');
    await send(s.port, '/set');
    assert.match(out.setCookies[0] as string, /; Secure/, 'cookieSecure: true gives a Secure cookie over plain HTTP');
    assert.equal(warnings.length, 1, 'the Secure cookie over plain HTTP warns once, not per request');
  });

  // When a cookie is next due is kept beside the session by the library's storages (in memory),
  // and in the server's own map for a storage of the user's.
  const dueKeepers: [string, (t: TestContext, clock: Clock) => Storage][] = [
    ['MemoryStorage', (_t, clock) => new MemoryStorage({ now: clock.now })],
    ['FileStorage', (t, clock) => new FileStorage({ path: tempDir(t), now: clock.now })],
    ['a storage of the user\'s own', (_t, clock) => new SpyStorage(new MemoryStorage({ now: clock.now }))],
  ];
  for (const [name, make] of dueKeepers) {
    it(`keeps a cookie's refresh due across a regenerate and a write, on ${name}`, async (t) => {
      const clock = new Clock();
      const s = await serve(t, { sessionStorage: make(t, clock), now: clock.now }, (s) => {
        seed(s);
        s.all('/regenerate', (r) => {
          r.session.regenerate();
          r.response.write('ok');
        });
      });
      const jar = new Jar();
      assert.equal((await jar.send(s.port, '/set')).setCookies.length, 1, 'a new session sends its cookie');
      assert.equal((await jar.send(s.port, '/get')).setCookies.length, 0, 'a read right after its creation sends none');
      assert.equal((await jar.send(s.port, '/set-other')).setCookies.length, 0, 'nor does a write');
      assert.equal((await jar.send(s.port, '/get')).setCookies.length, 0, 'nor a read after the write');
      assert.equal((await jar.send(s.port, '/regenerate')).setCookies.length, 1, 'a regenerate sends the new id');
      assert.equal((await jar.send(s.port, '/get')).setCookies.length, 0, 'a read under the new id sends none');
      clock.advance(61_000);
      assert.equal((await jar.send(s.port, '/get')).setCookies.length, 1, 'a read past a minute refreshes it');
      assert.equal((await jar.send(s.port, '/set-other')).setCookies.length, 0, 'a write right after the refresh sends none');
      assert.equal((await jar.send(s.port, '/get')).setCookies.length, 0, 'nor a read after it');
    });
  }

  it('refreshes the cookie on reads and writes at most once a minute, and at once when its life changes', async (t) => {
    const clock = new Clock();
    const s = await serve(t, { sessionStorage: new MemoryStorage({ now: clock.now }), now: clock.now }, seed);
    const jar = new Jar();
    await jar.send(s.port, '/set');
    assert.equal((await jar.send(s.port, '/get')).setCookies.length, 0, 'a read right after the write sends no cookie');
    clock.advance(30_000);
    assert.equal((await jar.send(s.port, '/get')).setCookies.length, 0, 'a read 30 s later sends no cookie');
    clock.advance(31_000);
    const refreshed = await jar.send(s.port, '/get');
    assert.equal(refreshed.setCookies.length, 1, 'a read past a minute refreshes the cookie');
    assert.equal(refreshed.headers['cache-control'], 'no-store', 'a refreshed cookie is sent with Cache-Control: no-store');
    assert.equal((await jar.send(s.port, '/get')).setCookies.length, 0, 'refreshed once per interval');
    // A write of the value already stored is no change: no write, no cookie.
    assert.equal((await jar.send(s.port, '/set')).setCookies.length, 0, 'setting the same value is a read');
    // A write follows the same rule as a read: the id did not change, the cookie is not due.
    assert.equal((await jar.send(s.port, '/set-other')).setCookies.length, 0, 'a write before the refresh is due sends no cookie');
    clock.advance(60_000);
    const due = await jar.send(s.port, '/set-other');
    assert.equal(due.setCookies.length, 1, 'a write once the refresh is due sends the cookie');
    assert.equal(due.headers['cache-control'], 'no-store', 'with Cache-Control: no-store');
    // A write that changes the cookie's life sends it at once.
    const remembered = await jar.send(s.port, '/remember');
    assert.match(remembered.setCookies[0] ?? '', /; Max-Age=600;/, 'remember(duration) sends the new Max-Age at once');
  });

  it('makes a browser-session cookie with sessionCookieMaxAge 0', async (t) => {
    const s = await serve(t, { sessionStorage: new MemoryStorage(), sessionCookieMaxAge: 0 }, seed);
    const out = await send(s.port, '/set');
    assert.doesNotMatch(out.setCookies[0] as string, /Max-Age/, 'sessionCookieMaxAge 0 gives a cookie without Max-Age');
  });

  it('sends no cookie with sessionCookieOutput false, and the session still works by header', async (t) => {
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => {
      seed(s);
      s.all('/id', (r) => {
        r.session.set('x', 1);
        r.response.write(r.session.id);
      });
    });
    s.setSessionCookieOutput(false);
    const out = await send(s.port, '/id');
    assert.deepEqual(out.setCookies, [], 'sessionCookieOutput false sends no cookie');
    assert.equal(out.headers['cache-control'], undefined, 'without a session cookie, no Cache-Control is added');
    assert.equal((await send(s.port, '/get', { headers: { sid: out.body } })).body, '{"x":1}', 'the id sent in a header loads the session');
  });

  it('keeps the handler\'s own Cache-Control and cookies, one Set-Cookie per name', async (t) => {
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => {
      s.all('/mixed', (r) => {
        r.response.header('Cache-Control', 'private, max-age=0');
        r.cookie.set('theme', 'dark');
        r.cookie.set('theme', 'light');
        r.cookie.set('sid', 'handler-value');
        r.session.set('x', 1);
        r.response.write('ok');
      });
    });
    const out = await send(s.port, '/mixed');
    assert.equal(out.headers['cache-control'], 'private, max-age=0', "the handler's own Cache-Control is kept");
    const names = out.setCookies.map((c) => c.split('=', 1)[0]);
    assert.deepEqual(names.sort(), ['sid', 'theme'], "one Set-Cookie per name: the server's sid replaces the handler's");
    assert.equal(cookieValue(out.setCookies, 'theme'), 'light', 'the last value the handler set for theme is sent');
    assert.ok(isValidId(cookieValue(out.setCookies, 'sid') as string), 'the sid sent is an issued id, not the value the handler set');
  });
});

describe('commit semantics', () => {
  it('leaves a removed key out of what it writes, on a storage without patch and across a regenerate', async (t) => {
    const inner = new MemoryStorage();
    t.after(() => inner.close());
    // Only the contract's four required methods: the server merges and writes whole sessions.
    const plain: Storage = {
      get: (id) => inner.get(id),
      set: (id, data, ttlMs) => inner.set(id, data, ttlMs),
      touch: (id, ttlMs) => inner.touch(id, ttlMs),
      remove: (id) => inner.remove(id),
    };
    const s = await serve(t, { sessionStorage: plain }, (s) => {
      s.all('/set', (r) => {
        r.session.setMap({ a: 1, b: 2, c: 3 });
        r.response.write('ok');
      });
      s.all('/drop-a', (r) => {
        r.session.remove('a');
        r.response.write('ok');
      });
      s.all('/drop-b-regenerate', async (r) => {
        r.session.remove('b');
        await r.session.regenerate();
        r.response.write('ok');
      });
      s.all('/get', (r) => r.response.write(r.session.data()));
    });
    const jar = new Jar();
    await jar.send(s.port, '/set');
    await jar.send(s.port, '/drop-a');
    assert.equal((await jar.send(s.port, '/get')).body, '{"b":2,"c":3}', 'the merged write left the removed key out');
    await jar.send(s.port, '/drop-b-regenerate');
    assert.equal((await jar.send(s.port, '/get')).body, '{"c":3}', 'the session under the new id holds the kept data without the removed key');
  });

  /** Routes that change the session and then fail, or not. */
  function failing(s: Server): void {
    seed(s);
    s.all('/regen-then', async (r) => {
      await r.session.regenerate();
      r.session.set('after', true);
      if (r.query.get('fail') === 'http') throw new HttpError(403);
      if (r.query.get('fail') === 'yes') throw new Error('the handler failed after regenerate');
      r.response.write('ok');
    });
    s.all('/destroy-then', async (r) => {
      await r.session.destroy();
      if (r.query.get('fail') === 'http') throw new HttpError(409, 'conflict');
      throw new Error('the handler failed after destroy');
    });
  }

  for (const fail of ['yes', 'http']) {
    it(`keeps the old session and its cookie when a handler fails after regenerate or destroy (${fail === 'yes' ? 'a thrown Error' : 'an HttpError'})`, async (t) => {
      const spy = new SpyStorage(new MemoryStorage());
      const s = await serve(t, { sessionStorage: spy }, failing);
      const jar = new Jar();
      await jar.send(s.port, '/set');
      const id = jar.cookies.get('sid') as string;
      const calls = spy.calls.length;
      for (const path of [`/regen-then?fail=${fail}`, `/destroy-then?fail=${fail}`]) {
        const out = await jar.send(s.port, path);
        assert.ok(out.status >= 400, `${path} failed: ${out.status}`);
        assert.deepEqual(out.setCookies, [], `${path}: no cookie is set or expired`);
        assert.equal(jar.cookies.get('sid'), id, `${path}: the browser keeps the old id`);
        assert.equal((await jar.send(s.port, '/get')).body, '{"time":1700000000}', `${path}: the old session is still valid`);
      }
      const writes = spy.calls.slice(calls).filter((c) => c.method !== 'get' && c.method !== 'touch');
      assert.deepEqual(writes, [], 'a failed request wrote and deleted nothing');
    });
  }

  it('writes the new id, then deletes the old one, at the commit of a regenerate', async (t) => {
    const spy = new SpyStorage(new MemoryStorage());
    const s = await serve(t, { sessionStorage: spy }, failing);
    const jar = new Jar();
    await jar.send(s.port, '/set');
    const old = jar.cookies.get('sid') as string;
    const from = spy.calls.length;
    const out = await jar.send(s.port, '/regen-then');
    assert.equal(out.status, 200, 'the regenerate succeeded');
    const next = jar.cookies.get('sid') as string;
    assert.notEqual(next, old, 'a new id');
    assert.deepEqual(spy.calls.slice(from).map((c) => `${c.method} ${c.id === old ? 'old' : c.id === next ? 'new' : c.id}`), ['get old', 'get old', 'set new', 'remove old'], 'load, re-read at commit, write new, delete old');
    assert.equal((await jar.send(s.port, '/get')).body, '{"time":1700000000,"after":true}', 'the data and this request\'s change moved to the new id');
  });

  it('drops a key set earlier in the request on regenerate({ keepData: false }), and keeps it otherwise', async (t) => {
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => {
      seed(s);
      s.all('/login', async (r) => {
        r.session.set('before', true);
        await r.session.regenerate({ keepData: r.query.get('keep') !== 'no' });
        r.session.set('user', 'ann');
        r.response.write(r.session.data());
      });
    });
    const keep = new Jar();
    await keep.send(s.port, '/set');
    assert.equal((await keep.send(s.port, '/login')).body, '{"time":1700000000,"before":true,"user":"ann"}', 'keepData keeps the stored data and this request\'s earlier set');
    assert.equal((await keep.send(s.port, '/get')).body, '{"time":1700000000,"before":true,"user":"ann"}', 'and stores them');
    const drop = new Jar();
    await drop.send(s.port, '/set');
    assert.equal((await drop.send(s.port, '/login?keep=no')).body, '{"user":"ann"}', 'keepData: false drops the stored data and the key set before it');
    assert.equal((await drop.send(s.port, '/get')).body, '{"user":"ann"}', 'and stores only what was set after it');
    // A new visitor: its session is emptied to no changes at all, then changed again.
    const fresh = new Jar();
    assert.equal((await fresh.send(s.port, '/login?keep=no')).body, '{"user":"ann"}', 'a new session: keepData: false drops the key set before it');
    assert.equal((await fresh.send(s.port, '/get')).body, '{"user":"ann"}', 'and stores only what was set after it');
    const other = new Jar();
    await other.send(s.port, '/set');
    assert.equal((await other.send(s.port, '/get')).body, '{"time":1700000000}', 'another session shows none of those changes');
    assert.equal((await new Jar().send(s.port, '/get')).body, '{}', 'nor does a request without a session');
  });

  for (const end of ['regenerate', 'destroy'] as const) {
    for (const touchTells of [true, false]) {
      it(`never sends back the id a concurrent ${end} killed, to a slow read whose cookie refresh is due (touch ${touchTells ? 'says' : 'does not say'} whether the session exists)`, async (t) => {
        const clock = new Clock();
        const inner = new MemoryStorage({ now: clock.now });
        // A storage written by a user: its touch resolves nothing, so the server must ask.
        const storage: Storage = touchTells ? inner : {
          get: (id) => inner.get(id),
          set: (id, data, ttl) => inner.set(id, data, ttl),
          touch: async (id, ttl) => {
            await inner.touch(id, ttl);
          },
          remove: (id) => inner.remove(id),
        };
        const loaded = deferred();
        const gate = deferred();
        const s = await serve(t, { sessionStorage: storage, now: clock.now }, (s) => {
          seed(s);
          s.all('/slow-read', async (r) => {
            loaded.resolve();
            await gate.promise;
            r.response.write(r.session.data());
          });
          s.all('/end', async (r) => {
            if (end === 'regenerate') await r.session.regenerate();
            else await r.session.destroy();
            r.response.write('ok');
          });
        });
        const jar = new Jar();
        await jar.send(s.port, '/set');
        const old = jar.cookies.get('sid') as string;
        clock.advance(61_000); // the read-only refresh of the cookie is due
        const slow = send(s.port, '/slow-read', { headers: { cookie: `sid=${old}` } });
        await loaded.promise;
        const ended = await jar.send(s.port, '/end');
        assert.equal(ended.status, 200, `the ${end} succeeded`);
        gate.resolve();
        const late = await slow;
        assert.equal(late.status, 200, 'the slow read succeeded');
        assert.equal(cookieValue(late.setCookies, 'sid'), undefined, 'the slow read sends no cookie for the dead id');
      });
    }
  }

  it('writes nothing and touches as a read when a request sets what is already stored', async (t) => {
    const spy = new SpyStorage(new MemoryStorage());
    const s = await serve(t, { sessionStorage: spy }, (s) => {
      seed(s);
      s.all('/same', (r) => {
        r.session.set('time', 1700000000);
        r.session.setMap({ list: [1, { a: 'b' }] });
        r.session.remove('absent' as never);
        r.response.write(String(r.session.isDirty));
      });
      s.all('/clear-same', (r) => {
        r.session.removeAll();
        r.session.setMap({ list: [1, { a: 'b' }], time: 1700000000 });
        r.response.write(String(r.session.isDirty));
      });
      s.all('/list', (r) => {
        r.session.set('list', [1, { a: 'b' }]);
        r.response.write('ok');
      });
    });
    const jar = new Jar();
    await jar.send(s.port, '/set');
    await jar.send(s.port, '/list');
    for (const path of ['/same', '/clear-same']) {
      const from = spy.calls.length;
      const out = await jar.send(s.port, path);
      assert.equal(out.body, 'false', `${path}: isDirty is false when the data equals what was loaded`);
      assert.deepEqual(out.setCookies, [], `${path}: no cookie re-sent`);
      assert.deepEqual(spy.calls.slice(from).map((c) => c.method), ['get', 'touch'], `${path}: loaded and touched, never written`);
    }
  });

  it('refuses a write before storing anything when its cookie cannot be sent', async (t) => {
    const spy = new SpyStorage(new MemoryStorage());
    const errors: unknown[] = [];
    // Ids too long for a cookie (name and value over 4096 bytes): the generator's own fault.
    const s = await serve(t, { sessionStorage: spy, sessionIdGenerator: () => 'x'.repeat(5000), sessionIdValidator: (id) => /^x+$/.test(id), onError: (e) => errors.push(e) }, seed);
    const out = await send(s.port, '/set');
    assert.equal(out.status, 500, 'the request fails');
    assert.deepEqual(out.setCookies, [], 'no cookie');
    assert.deepEqual(spy.calls.filter((c) => c.method === 'set'), [], 'nothing was written to the storage');
    assert.match(String(errors[0]), /cookie value is invalid/, 'the reason reaches onError');
  });
});

describe('duplicate session cookies', () => {
  it('adopts the first value of the session cookie that names a live session', async (t) => {
    const spy = new SpyStorage(new MemoryStorage());
    const s = await serve(t, { sessionStorage: spy }, seed);
    const live = cookieValue((await send(s.port, '/set')).setCookies, 'sid') as string;
    const other = cookieValue((await send(s.port, '/set-other')).setCookies, 'sid') as string;
    const unknown = generateId();
    const cases: [string, string, string][] = [
      ['garbage first, as a sibling subdomain can plant', `sid=garbage; sid=${live}`, '{"time":1700000000}'],
      ['an unknown well-formed id first', `sid=${unknown}; other=1; sid=${live}`, '{"time":1700000000}'],
      ['two live ones: the first wins', `sid=${other}; sid=${live}`, '{"other":1}'],
      ['an empty value first', `sid=; sid=${live}`, '{"time":1700000000}'],
    ];
    for (const [what, cookie, body] of cases) {
      const out = await send(s.port, '/get', { headers: { cookie } });
      assert.equal(out.body, body, `${what}: the live session is adopted`);
    }
    // At most four values are considered: a fifth costs no storage call and is not adopted.
    const from = spy.calls.length;
    const five = [generateId(), generateId(), generateId(), generateId(), live].map((id) => `sid=${id}`).join('; ');
    assert.equal((await send(s.port, '/get', { headers: { cookie: five } })).body, '{}', 'the fifth value is not looked at');
    assert.equal(spy.calls.slice(from).filter((c) => c.method === 'get').length, 4, 'four storage reads at most');
  });
});

describe('cookie life', () => {
  it('keeps an active reader logged in past a short sessionMaxAge, with a client that drops expired cookies', async (t) => {
    const clock = new Clock();
    const s = await serve(t, { sessionStorage: new MemoryStorage({ now: clock.now }), sessionMaxAge: '1m', now: clock.now }, seed);
    const jar = new Jar(clock);
    const set = await jar.send(s.port, '/set');
    assert.match(set.setCookies[0] as string, /; Max-Age=60;/, 'the cookie lives as long as the session');
    // Reads every 40 s for ten minutes: each is within the session's idle minute.
    for (let i = 0; i < 15; i++) {
      clock.advance(40_000);
      assert.equal((await jar.send(s.port, '/get')).body, '{"time":1700000000}', `still logged in after ${(i + 1) * 40} s of reads`);
    }
    // Idle past the minute: logged out, on the server and in the browser alike.
    clock.advance(61_000);
    assert.equal(jar.header(), '', 'the browser dropped the expired cookie');
    assert.equal((await jar.send(s.port, '/get')).body, '{}', 'the idle user is logged out');
  });

  it('refreshes the cookie at most every quarter of its life, and at most once a minute', async (t) => {
    const clock = new Clock();
    const s = await serve(t, { sessionStorage: new MemoryStorage({ now: clock.now }), sessionMaxAge: '1m', now: clock.now }, seed);
    const jar = new Jar(clock);
    await jar.send(s.port, '/set');
    clock.advance(14_000);
    assert.equal((await jar.send(s.port, '/get')).setCookies.length, 0, 'not due before 15 s');
    clock.advance(1_000);
    assert.equal((await jar.send(s.port, '/get')).setCookies.length, 1, 'due after a quarter of 60 s');
  });

  it('rounds the cookie\'s Max-Age up to whole seconds, never down to 0', async (t) => {
    for (const [ms, seconds] of [[1, 1], [999, 1], [1000, 1], [1001, 2], [1500, 2], [59_999, 60]] as const) {
      const s = await serve(t, { sessionStorage: new MemoryStorage(), sessionCookieMaxAge: ms }, seed);
      const line = (await send(s.port, '/set')).setCookies[0] as string;
      assert.match(line, new RegExp(`; Max-Age=${seconds};`), `${ms} ms gives Max-Age=${seconds}`);
    }
    const sub = await serve(t, { sessionStorage: new MemoryStorage(), sessionMaxAge: 500 }, seed);
    assert.match((await send(sub.port, '/set')).setCookies[0] as string, /; Max-Age=1;/, 'a sub-second sessionMaxAge gives Max-Age=1');
  });
});

describe('concurrency', () => {
  /** A server whose `/k/:name` sets one key after every request of the round has loaded. */
  async function keyServer(t: TestContext, storage: Storage, barrier: () => Barrier | undefined) {
    return serve(t, { sessionStorage: storage }, (s) => {
      seed(s);
      s.all('/k/:name', async (r) => {
        await barrier()?.wait();
        r.session.set(r.params['name'] as string, true);
        r.response.write('ok');
      });
    });
  }

  for (const withPatch of [false, true]) {
    const how = withPatch ? 'through the storage\'s patch' : 'through the server\'s read-merge-write under its lock';
    it(`keeps all 200 keys of 200 concurrent disjoint writes on one session (${how})`, async (t) => {
      const inner = new MemoryStorage();
      const storage = new GatedStorage(inner, { withPatch, delay: true });
      let barrier: Barrier | undefined;
      const s = await keyServer(t, storage, () => barrier);
      const id = cookieValue((await send(s.port, '/set')).setCookies, 'sid') as string;
      // Every request loads before any commits, and each storage call waits a turn of the event
      // loop, so that commits interleave with each other's reads and writes.
      barrier = new Barrier(200);
      const replies = await Promise.all(Array.from({ length: 200 }, (_, i) => send(s.port, `/k/k${i}`, { headers: { cookie: `sid=${id}` } })));
      assert.ok(replies.every((r) => r.status === 200), 'every request succeeded');
      const data = (await inner.get(id)) as SessionData;
      for (let i = 0; i < 200; i++) assert.equal(data[`k${i}`], true, `key k${i} is kept`);
      assert.equal(data['time'], 1700000000, 'the key written before is kept');
    });
  }

  it('keeps all 200 keys of 200 concurrent disjoint writes on one session of a FileStorage, in memory and on disk (through its patch)', async (t) => {
    const storages: FileStorage[] = [];
    // Registered before tempDir's removal (after-hooks run in order): closed before the folder goes.
    t.after(async () => {
      for (const f of storages) await f.close();
    });
    const dir = tempDir(t, 'bare-session-concurrency-');
    const inner = new FileStorage({ path: dir, writerThreads: 0, maxInMemory: 1 });
    storages.push(inner);
    const storage = new GatedStorage(inner, { withPatch: true, delay: true });
    let barrier: Barrier | undefined;
    const s = await keyServer(t, storage, () => barrier);
    const id = cookieValue((await send(s.port, '/set')).setCookies, 'sid') as string;
    // Every request loads before any commits (the test waits at the barrier too); then another
    // session pushes this one out of memory before the first patch runs (each storage call waits
    // a turn), so every patch waits for one shared read of the file and must merge into the
    // session as it is when its turn comes.
    barrier = new Barrier(201);
    const sent = Promise.all(Array.from({ length: 200 }, (_, i) => send(s.port, `/k/k${i}`, { headers: { cookie: `sid=${id}` } })));
    await barrier.wait();
    await inner.set(generateId(), { other: true }, 60_000);
    assert.equal(inner.sizeInMemory, 1, 'only the other session is held in memory');
    const replies = await sent;
    assert.ok(replies.every((r) => r.status === 200), 'every request succeeded');
    assert.equal(storage.calls.filter((c) => c.method === 'patch').length, 200, 'each commit went through FileStorage.patch, with no lock of the server');
    const data = (await inner.get(id)) as SessionData;
    for (let i = 0; i < 200; i++) assert.equal(data[`k${i}`], true, `key k${i} is kept in memory`);
    await inner.close();
    const reopened = new FileStorage({ path: dir, writerThreads: 0 });
    storages.push(reopened);
    const onDisk = (await reopened.get(id)) as SessionData;
    for (let i = 0; i < 200; i++) assert.equal(onDisk[`k${i}`], true, `key k${i} is kept on disk`);
    assert.equal(onDisk['time'], 1700000000, 'the key written before is kept on disk');
  });

  it('keeps both keys of two requests of one id that loaded together and commit one after the other', async (t) => {
    const inner = new MemoryStorage();
    const s = await keyServer(t, new GatedStorage(inner), () => undefined);
    const id = cookieValue((await send(s.port, '/set')).setCookies, 'sid') as string;
    const gates = { a: deferred(), b: deferred() };
    const loaded = new Barrier(3);
    s.all('/hold/:name', async (r) => {
      await loaded.wait();
      await gates[r.params['name'] as 'a' | 'b'].promise;
      r.session.set(r.params['name'] as string, true);
      r.response.write('ok');
    });
    const a = send(s.port, '/hold/a', { headers: { cookie: `sid=${id}` } });
    const b = send(s.port, '/hold/b', { headers: { cookie: `sid=${id}` } });
    await loaded.wait();
    gates.a.resolve();
    assert.equal((await a).status, 200, 'a committed');
    gates.b.resolve();
    assert.equal((await b).status, 200, 'b committed');
    const data = (await inner.get(id)) as SessionData;
    assert.equal(data['a'], true, 'the first commit is kept: the second applied its change to the stored state, not its own loaded copy');
    assert.equal(data['b'], true, 'the second commit is kept');
  });

  it('keeps both keys of two overlapping commits: the second waits for the first', async (t) => {
    const inner = new MemoryStorage();
    const storage = new GatedStorage(inner);
    // Registered before the server's close (hooks run in order): a failed test releases all.
    const release: (() => void)[] = [() => storage.releaseAll()];
    t.after(() => release.forEach((f) => f()));
    const s = await keyServer(t, storage, () => undefined);
    const id = cookieValue((await send(s.port, '/set')).setCookies, 'sid') as string;
    const loaded = new Barrier(3);
    const go = deferred();
    release.push(() => go.resolve());
    s.all('/both/:name', async (r) => {
      await loaded.wait();
      await go.promise;
      r.session.set(r.params['name'] as string, true);
      r.response.write('ok');
    });
    const cookie = { headers: { cookie: `sid=${id}` } };
    const a = send(s.port, '/both/a', cookie);
    const b = send(s.port, '/both/b', cookie);
    await loaded.wait();
    // Both loaded; from now on every get is a commit's read, held until released.
    storage.hold('get');
    go.resolve();
    await storage.whenHeld('get', 1);
    // A second commit that did not wait for the lock would be reading now, before the first wrote.
    await turn();
    await turn();
    assert.equal(storage.held.length, 1, 'only one commit reads at a time');
    storage.pass('get');
    storage.release('get');
    assert.deepEqual([(await a).status, (await b).status], [200, 200], 'both committed');
    const data = (await inner.get(id)) as SessionData;
    assert.equal(data['a'], true, 'a is kept');
    assert.equal(data['b'], true, 'b is kept');
  });

  it('keeps all three keys when one commit holds the lock, one waits and one arrives after the release', async (t) => {
    const inner = new MemoryStorage();
    const storage = new GatedStorage(inner);
    // Registered before the server's close (hooks run in order): a failed test releases all.
    const release: (() => void)[] = [() => storage.releaseAll()];
    t.after(() => release.forEach((f) => f()));
    const s = await keyServer(t, storage, () => undefined);
    const id = cookieValue((await send(s.port, '/set')).setCookies, 'sid') as string;
    const loaded = new Barrier(4);
    const go = { a: deferred(), b: deferred(), c: deferred() };
    release.push(() => Object.values(go).forEach((d) => d.resolve()));
    s.all('/three/:name', async (r) => {
      await loaded.wait();
      await go[r.params['name'] as 'a' | 'b' | 'c'].promise;
      r.session.set(r.params['name'] as string, true);
      r.response.write('ok');
    });
    const cookie = { headers: { cookie: `sid=${id}` } };
    const replies = { a: send(s.port, '/three/a', cookie), b: send(s.port, '/three/b', cookie), c: send(s.port, '/three/c', cookie) };
    await loaded.wait();
    storage.hold('get');
    go.a.resolve();
    await storage.whenHeld('get', 1); // a holds the lock, reading
    go.b.resolve();
    await turn(); // b waits for the lock
    assert.equal(storage.held.length, 1, 'b does not read while a holds the lock');
    storage.pass('get');
    storage.release('get');
    assert.equal((await replies.a).status, 200, 'a committed');
    assert.equal((await replies.b).status, 200, 'b committed after a');
    go.c.resolve(); // c commits after the lock was released
    assert.equal((await replies.c).status, 200, 'c committed');
    const data = (await inner.get(id)) as SessionData;
    assert.deepEqual([data['a'], data['b'], data['c']], [true, true, true], 'all three keys are kept');
  });

  it('never brings back a session destroyed or regenerated by another request', async (t) => {
    const storage = new MemoryStorage();
    let release!: () => void;
    let gate!: Promise<void>;
    let loaded!: () => void;
    let slowLoaded!: Promise<void>;
    const s = await serve(t, { sessionStorage: storage }, (s) => {
      seed(s);
      s.all('/slow', async (r) => {
        loaded();
        await gate;
        r.session.set('late', true);
        r.response.write('ok');
      });
      s.all('/logout', async (r) => {
        await r.session.destroy();
        r.response.write('ok');
      });
      s.all('/login', async (r) => {
        await r.session.regenerate();
        r.response.write('ok');
      });
    });
    for (const end of ['/logout', '/login']) {
      gate = new Promise<void>((resolve) => {
        release = resolve;
      });
      slowLoaded = new Promise<void>((resolve) => {
        loaded = resolve;
      });
      const id = cookieValue((await send(s.port, '/set')).setCookies, 'sid') as string;
      const slow = send(s.port, '/slow', { headers: { cookie: `sid=${id}` } });
      await slowLoaded;
      await send(s.port, end, { headers: { cookie: `sid=${id}` } });
      release();
      const late = await slow;
      assert.equal(late.status, 200, `${end}: the slow request still succeeds`);
      assert.deepEqual(late.setCookies, [], `${end}: the slow request sends no cookie for the ended session`);
      assert.equal(await storage.get(id), undefined, `${end}: the slow request did not bring the session back`);
    }
  });
});

describe('storage failures', () => {
  it('answers 503 when a write fails, and when a read fails, never an empty session', async (t) => {
    const errors: unknown[] = [];
    // A user's storage without the optional methods, whose reads and writes break on demand.
    const storage = new FailingStorage(new MemoryStorage(), { optional: false });
    const s = await serve(t, { sessionStorage: storage, onError: (e) => errors.push(e) }, seed);
    const jar = new Jar();
    await jar.send(s.port, '/set');
    storage.fail('get', () => Object.assign(new Error('EIO'), { code: 'EIO' })).fail('set', () => new Error('disk'));
    const w = await jar.send(s.port, '/set');
    assert.equal(w.status, 503, 'a failing storage answers 503');
    assert.equal(w.body, 'Service Unavailable', 'the 503 shows only its status text');
    const r = await jar.send(s.port, '/get');
    assert.equal(r.status, 503, 'a failing read answers 503, never an empty session');
    assert.equal(errors.length, 2, 'each failure is reported once');
    assert.equal((errors[0] as { code: string }).code, 'ESTORAGE', 'the failure is reported as a StorageError');
    storage.heal();
    assert.equal((await jar.send(s.port, '/get')).body, '{"time":1700000000}', 'once the storage heals, the session is there again');
  });
  it('answers 503 when an atomic patch fails, and keeps the session as it was', async (t) => {
    const errors: unknown[] = [];
    // A user's storage with patch (awaited: not one of the library's own), whose patch breaks on demand.
    const storage = new FailingStorage(new MemoryStorage());
    const s = await serve(t, { sessionStorage: storage, onError: (e) => errors.push(e) }, (s) => {
      s.get('/set', (r) => {
        r.session.set('n', Number(r.query.get('n')));
        r.response.write('ok');
      });
      s.get('/get', (r) => r.response.write(r.session.data()));
    });
    const jar = new Jar();
    await jar.send(s.port, '/set?n=1');
    storage.fail('patch', () => new Error('disk full'));
    const w = await jar.send(s.port, '/set?n=2');
    assert.equal(w.status, 503, 'a failing patch answers 503');
    assert.deepEqual(storage.failed.map((f) => f.method), ['patch'], 'the write went through patch');
    assert.equal(errors.length, 1, 'the failure is reported once');
    assert.equal((errors[0] as { code: string }).code, 'ESTORAGE', 'the failure is reported as a StorageError');
    storage.heal();
    assert.equal((await jar.send(s.port, '/get')).body, '{"n":1}', 'the session keeps what it held before the failed write');
  });
});

describe('the size check of an awaited patch', () => {
  it('passes on its own error as it is: a session the storage handed over that is not JSON is no storage outage (500, not 503)', async (t) => {
    const errors: unknown[] = [];
    const patched: string[] = [];
    // A user's storage with patch and without configure (so the manager checks the size), whose
    // get hands over a value JSON cannot hold.
    const storage: Storage = {
      get: async () => ({ big: 1n }) as unknown as SessionData,
      set: async () => undefined,
      patch: async (id) => (patched.push(id), true),
      touch: async () => true,
      remove: async () => undefined,
    };
    const s = await serve(t, { sessionStorage: storage, onError: (e) => errors.push(e) }, (s) => {
      s.get('/set', (r) => {
        r.session.set('n', 1);
        r.response.write('ok');
      });
    });
    const res = await send(s.port, '/set', { headers: { cookie: `sid=${generateId()}` } });
    assert.equal(res.status, 500, 'a programming error answers 500');
    assert.deepEqual(patched, [], 'nothing was sent to the storage');
    assert.equal(errors.length, 1, 'the error is reported once');
    assert.ok(errors[0] instanceof TypeError, `the error is JSON's own TypeError, not a StorageError: ${String(errors[0])}`);
  });
});

describe('absolute timeout on an awaited storage', () => {
  it('never adopts a session past its lifetime that the storage still hands over, and deletes it', async (t) => {
    const clock = new Clock();
    // A user's storage that ignores the time to live it is given: only the manager's check stands.
    const held = new Map<string, SessionData>();
    const removed: string[] = [];
    const storage: Storage = {
      get: async (id) => held.get(id),
      set: async (id, data) => {
        held.set(id, data);
      },
      touch: async (id) => held.has(id),
      remove: async (id) => {
        removed.push(id);
        held.delete(id);
      },
    };
    const s = await serve(t, { sessionStorage: storage, now: clock.now, sessionMaxAge: '1h', sessionMaxLifetime: '10m' }, (s) => {
      s.get('/set', (r) => {
        r.session.set('user', 'ann');
        r.response.write('ok');
      });
      s.get('/get', (r) => r.response.write(r.session.data()));
    });
    const expired: string[] = [];
    s.sessions.on('expired', (event) => expired.push(event.idHash));
    const jar = new Jar(clock);
    await jar.send(s.port, '/set');
    const id = jar.cookies.get('sid') as string;
    clock.advance(9 * 60_000);
    assert.equal((await jar.send(s.port, '/get')).body, '{"user":"ann"}', 'adopted within its lifetime');
    clock.advance(60_001);
    assert.equal(held.has(id), true, 'the storage still holds the session past its lifetime');
    assert.equal((await send(s.port, '/get', { headers: { cookie: `sid=${id}` } })).body, '{}', 'past its lifetime the session is not adopted');
    assert.deepEqual(removed, [id], 'and its record is deleted');
    assert.equal(expired.length, 1, 'an expired event is sent');
  });
});
