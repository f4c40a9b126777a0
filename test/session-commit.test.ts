/**
 * The commit of a session, on the paths test/session.test.ts leaves open (found by the mutation
 * check, test/mutants/): the server's own read-merge-write for a storage without `patch`, a
 * regenerate racing a logout, strict ids on a storage that answers at once, the size check at its exact bound for a storage without
 * `configure`, a changed value of a key already stored, and a new session emptied in the request
 * that started it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemoryStorage, type Server, type SessionData, generateId, isValidId } from '../lib/index.js';
import type { Storage } from '../lib/storage/storage.js';
import { Clock, FailingStorage, GatedStorage, Jar, SpyStorage, cookieValue, deferred, send, serve } from './helpers.js';

/** The storages a commit takes a different path for: with `patch`, and without it (the server's read-merge-write under its lock). */
const PATHS: { name: string; make: () => { storage: Storage; inner: MemoryStorage } }[] = [
  { name: 'a storage with patch', make: () => { const inner = new MemoryStorage(); return { storage: inner, inner }; } },
  { name: 'a storage without patch', make: () => { const inner = new MemoryStorage(); return { storage: new GatedStorage(inner), inner }; } },
];

function basics(s: Server): void {
  s.all('/set', (r) => {
    r.session.set('time', 1700000000);
    r.response.write('ok');
  });
  s.all('/get', (r) => r.response.write(r.session.data()));
}

describe('a commit racing the end of its session', () => {
  for (const { name, make } of PATHS) {
    for (const end of ['destroy', 'regenerate'] as const) {
      it(`never brings back a session a concurrent ${end} ended, through a slow write (${name})`, async (t) => {
        const { storage, inner } = make();
        const loaded = deferred();
        const gate = deferred();
        t.after(() => gate.resolve());
        const s = await serve(t, { sessionStorage: storage }, (s) => {
          basics(s);
          s.all('/slow-write', async (r) => {
            loaded.resolve();
            await gate.promise;
            r.session.set('late', true);
            r.response.write('ok');
          });
          s.all('/end', async (r) => {
            if (end === 'destroy') await r.session.destroy();
            else await r.session.regenerate();
            r.response.write('ok');
          });
        });
        const id = cookieValue((await send(s.port, '/set')).setCookies, 'sid') as string;
        const slow = send(s.port, '/slow-write', { headers: { cookie: `sid=${id}` } });
        await loaded.promise;
        assert.equal((await send(s.port, '/end', { headers: { cookie: `sid=${id}` } })).status, 200, `the ${end} succeeded`);
        gate.resolve();
        const late = await slow;
        assert.equal(late.status, 200, 'the slow write still answers');
        assert.equal(cookieValue(late.setCookies, 'sid'), undefined, 'the slow write sends no cookie for the ended session');
        assert.equal(await inner.get(id), undefined, 'the ended session stays gone: the slow write did not bring it back');
      });
    }

    it(`never carries a session a concurrent logout destroyed to the new id of a slow login (${name})`, async (t) => {
      const { storage, inner } = make();
      const loaded = deferred();
      const gate = deferred();
      t.after(() => gate.resolve());
      const s = await serve(t, { sessionStorage: storage }, (s) => {
        basics(s);
        s.all('/slow-login', async (r) => {
          loaded.resolve();
          await gate.promise;
          await r.session.regenerate();
          r.session.set('user', 'ann');
          r.response.write(r.session.id);
        });
        s.all('/logout', async (r) => {
          await r.session.destroy();
          r.response.write('ok');
        });
      });
      const id = cookieValue((await send(s.port, '/set')).setCookies, 'sid') as string;
      const login = send(s.port, '/slow-login', { headers: { cookie: `sid=${id}` } });
      await loaded.promise;
      assert.equal((await send(s.port, '/logout', { headers: { cookie: `sid=${id}` } })).status, 200, 'the logout succeeded');
      gate.resolve();
      const out = await login;
      assert.equal(out.status, 200, 'the slow login answers');
      assert.equal(out.body.length, 43, 'the login was given a new id');
      assert.equal(await inner.get(out.body), undefined, 'nothing is stored under the new id: the destroyed session is not carried over');
      assert.equal(await inner.get(id), undefined, 'the destroyed session stays gone');
      const sent = cookieValue(out.setCookies, 'sid');
      if (sent !== undefined && sent !== '') {
        assert.equal((await send(s.port, '/get', { headers: { cookie: `sid=${sent}` } })).body, '{}', 'a cookie the login sent names no session');
      }
    });
  }
});

describe('strict ids on every load path', () => {
  for (const { name, make } of PATHS) {
    it(`never adopts a well-formed id it did not issue: a write gets a new id (${name})`, async (t) => {
      const { storage, inner } = make();
      const s = await serve(t, { sessionStorage: storage }, basics);
      const forged = generateId();
      const out = await send(s.port, '/set', { headers: { cookie: `sid=${forged}` } });
      assert.equal(out.status, 200, 'the write succeeds');
      const issued = cookieValue(out.setCookies, 'sid');
      assert.ok(issued !== undefined && isValidId(issued), 'the write is given an issued id');
      assert.notEqual(issued, forged, 'not the one the client offered');
      assert.equal(await inner.get(forged), undefined, 'nothing is stored under the offered id');
      assert.deepEqual({ ...(await inner.get(issued as string)) }['time'], 1700000000, 'the write is stored under the issued id');
    });
  }
});

describe('the size check of a storage without configure', () => {
  it('accepts a session of exactly sessionMaxSize bytes and refuses one byte more, storing nothing', async (t) => {
    const clock = new Clock();
    const inner = new MemoryStorage({ now: clock.now });
    // A user's storage without the optional methods: the server measures every write itself.
    const storage = new FailingStorage(inner, { optional: false });
    const errors: unknown[] = [];
    const maxSize = 300;
    const s = await serve(t, { sessionStorage: storage, sessionMaxSize: maxSize, now: clock.now, onError: (e) => errors.push(e) }, (s) => {
      basics(s);
      s.all('/fill/:n', (r) => {
        r.session.set('k', 'x'.repeat(Number(r.params['n'])));
        r.response.write('ok');
      });
    });
    // What a session holds besides the value (its creation time, the key): measured on a small one.
    const probe = cookieValue((await send(s.port, '/fill/10')).setCookies, 'sid') as string;
    const overhead = Buffer.byteLength(JSON.stringify(await inner.get(probe))) - 10;
    const exact = maxSize - overhead;
    const fits = await send(s.port, `/fill/${exact}`);
    assert.equal(fits.status, 200, `a session of exactly ${maxSize} bytes is accepted`);
    const id = cookieValue(fits.setCookies, 'sid') as string;
    assert.equal(Buffer.byteLength(JSON.stringify(await inner.get(id))), maxSize, 'and stored, at exactly sessionMaxSize bytes');
    const over = await send(s.port, `/fill/${exact + 1}`);
    assert.equal(over.status, 500, 'one byte more fails the request');
    assert.deepEqual(over.setCookies, [], 'with no cookie');
    assert.match(String(errors[0]), /sessionMaxSize/, 'the error names sessionMaxSize');
    // An existing session that grows past the bound: refused too, the stored one kept.
    const jar = new Jar();
    jar.cookies.set('sid', id);
    assert.equal((await jar.send(s.port, `/fill/${exact + 1}`)).status, 500, 'a write that grows a session one byte past the bound fails');
    assert.equal(((await inner.get(id)) as SessionData)['k'], 'x'.repeat(exact), 'the stored session is unchanged');
  });
});

describe('what a commit writes', () => {
  for (const { name, make } of PATHS) {
    it(`stores a new value of a key the session already holds (${name})`, async (t) => {
      const { storage, inner } = make();
      const s = await serve(t, { sessionStorage: storage }, (s) => {
        basics(s);
        s.all('/put/:v', (r) => {
          r.session.set('v', Number(r.params['v']));
          r.response.write('ok');
        });
      });
      const jar = new Jar();
      await jar.send(s.port, '/put/1');
      const id = jar.cookies.get('sid') as string;
      await jar.send(s.port, '/put/2');
      assert.equal((await jar.send(s.port, '/get')).body, '{"v":2}', 'the session reads the new value');
      assert.equal(((await inner.get(id)) as SessionData)['v'], 2, 'the storage holds the new value');
    });
  }

  for (const sync of [false, true]) {
    // A MemoryStorage of its own answers at once (the server commits a new session without a
    // promise); wrapped in a spy, it answers through promises.
    it(`creates nothing for a new session emptied in the request that started it (${sync ? 'a storage that answers at once' : 'a storage of promises'})`, async (t) => {
      const memory = new MemoryStorage();
      const spy = new SpyStorage(memory);
      const created: string[] = [];
      const s = await serve(t, { sessionStorage: sync ? memory : spy }, (s) => {
        s.sessions.on('created', (e) => created.push(e.idHash));
        s.all('/set-remove', (r) => {
          r.session.set('x', 1);
          r.session.remove('x');
          r.response.write(r.session.id === '' ? 'no id' : 'an id');
        });
        s.all('/set-clear', (r) => {
          r.session.setMap({ a: 1, b: 2 });
          r.session.removeAll();
          r.response.write('ok');
        });
        s.all('/regenerate', async (r) => {
          await r.session.regenerate();
          r.response.write('ok');
        });
      });
      for (const path of ['/set-remove', '/set-clear']) {
        const out = await send(s.port, path);
        assert.equal(out.status, 200, `${path} answers`);
        assert.deepEqual(out.setCookies, [], `${path}: no cookie for a session that holds nothing`);
      }
      assert.equal(await memory.count(), 0, 'no session was stored');
      assert.deepEqual(created, [], 'no session was reported created');
      if (!sync) assert.deepEqual(spy.calls.filter((c) => c.method === 'set' || c.method === 'patch'), [], 'nothing was written to the storage');
      // A regenerate asks for a session, even an empty one: it is created.
      const regenerated = await send(s.port, '/regenerate');
      const id = cookieValue(regenerated.setCookies, 'sid');
      assert.ok(id !== undefined, 'a regenerate of no session issues a cookie');
      assert.ok((await memory.get(id)) !== undefined, 'and stores its session');
      assert.equal(created.length, 1, 'reported as created once');
    });
  }
});
