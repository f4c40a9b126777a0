/**
 * The session features no single peer has together: absolute timeout, "remember me", flash
 * messages, log out everywhere, CSRF protection, lifecycle events, HTTPS, and administration;
 * each over real sockets, on every storage the test knows how to make.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { FileStorage, MemoryStorage, Server, type Storage, csrf, isValidId } from '../lib/index.js';
import { hashId } from '../lib/id.js';
import type { SessionEvent } from '../lib/session.js';
import { Clock, Jar, type Reply, cookieValue, send, serve, tempDir } from './helpers.js';
import { redisFeatureStorages } from './redis-server.js';

/** The storages the features are proven on, each made with the test's clock. */
const STORAGES: { name: string; make: (clock: Clock, t: TestContext) => Storage }[] = [
  { name: 'MemoryStorage', make: (clock) => new MemoryStorage({ now: clock.now }) },
  {
    name: 'FileStorage',
    make: (clock, t) => {
      let storage: FileStorage | undefined;
      // Registered before tempDir's removal (after-hooks run in order): closed, its writes
      // finished, before its folder goes.
      t.after(() => storage?.close());
      storage = new FileStorage({ path: tempDir(t, 'bare-session-features-'), now: clock.now, writerThreads: 0 });
      return storage;
    },
  },
  // One redis-server for the file; advancing the test's clock shortens the keys' lives in Redis too.
  ...redisFeatureStorages(),
];

for (const { name, make } of STORAGES) {
  describe(`features on ${name}`, () => {
    it('ends a session at its absolute timeout however active, keeping the creation time over a regenerate', async (t) => {
      const clock = new Clock();
      const s = await serve(t, { sessionStorage: make(clock, t), now: clock.now, sessionMaxAge: '5m', sessionMaxLifetime: '10m' }, (s) => {
        s.get('/set', (r) => {
          r.session.set('user', 'ann');
          r.response.write('ok');
        });
        s.get('/get', (r) => r.response.write(r.session.data()));
        s.get('/login', async (r) => {
          await r.session.regenerate();
          r.response.write('ok');
        });
      });
      const jar = new Jar(clock);
      await jar.send(s.port, '/set');
      for (let minute = 2; minute <= 8; minute += 2) {
        clock.advance(120_000);
        if (minute === 6) {
          const login = await jar.send(s.port, '/login');
          assert.equal(login.status, 200, 'the regenerate succeeded');
          const maxAge = Number(/Max-Age=(\d+)/.exec(login.setCookies[0] ?? '')?.[1]);
          assert.ok(maxAge <= 240, `after the regenerate at 6 min the cookie lives at most the 4 min left of the lifetime, not ${maxAge} s`);
        }
        assert.equal((await jar.send(s.port, '/get')).body, '{"user":"ann"}', `still logged in at ${minute} min, active every 2 min`);
      }
      clock.advance(120_001);
      assert.equal((await jar.send(s.port, '/get')).body, '{}', 'gone 10 min after its creation, active or not');
    });

    it('gives a browser-session cookie with remember(false), and a longer idle timeout with remember(duration)', async (t) => {
      const clock = new Clock();
      const errors: unknown[] = [];
      const s = await serve(t, { sessionStorage: make(clock, t), now: clock.now, sessionMaxAge: '1h', sessionMaxAgeLimit: '30d', onError: (e) => errors.push(e) }, (s) => {
        s.get('/login', (r) => {
          const remember = r.query.get('remember');
          r.session.set('user', 'ann');
          r.session.remember(remember === 'no' ? false : remember === 'too-long' ? '31d' : '20d');
          r.response.write('ok');
        });
        s.get('/get', (r) => r.response.write(r.session.data()));
      });
      const forget = await send(s.port, '/login?remember=no');
      assert.doesNotMatch(forget.setCookies[0] ?? '', /Max-Age|Expires/, 'remember(false): a browser-session cookie');
      const jar = new Jar(clock);
      const keep = await jar.send(s.port, '/login?remember=yes');
      assert.match(keep.setCookies[0] ?? '', /; Max-Age=1728000;/, 'remember("20d"): a cookie of 20 days');
      clock.advance(19 * 86_400_000);
      assert.equal((await jar.send(s.port, '/get')).body, '{"user":"ann"}', 'idle 19 days, past the server\'s 1 h: still logged in');
      clock.advance(20 * 86_400_000 + 1);
      assert.equal((await jar.send(s.port, '/get')).body, '{}', 'idle 20 days and more: logged out');
      const refused = await send(s.port, '/login?remember=too-long');
      assert.equal(refused.status, 500, 'a duration over sessionMaxAgeLimit is a programmer error');
      assert.match(String(errors[0]), /option remember is invalid: "31d"/, 'the error names the option and the value');
    });

    it('shows a flash message once, on the next request, and keeps it until read', async (t) => {
      const clock = new Clock();
      const s = await serve(t, { sessionStorage: make(clock, t), now: clock.now }, (s) => {
        s.post('/login', (r) => {
          r.session.set('user', 'ann');
          r.session.flash('info', 'Welcome back');
          r.session.flash('info', { text: 'You have 2 messages' });
          r.response.redirect('/');
        });
        s.get('/', (r) => r.response.writeJson(r.session.flashes()));
        s.get('/elsewhere', (r) => r.response.write(r.session.get('user') as string));
        s.get('/info', (r) => r.response.writeJson(r.session.flash('info')));
      });
      const jar = new Jar();
      const login = await jar.send(s.port, '/login', { method: 'POST' });
      assert.equal(login.status, 302, 'post, then redirect');
      assert.equal((await jar.send(s.port, '/elsewhere')).body, 'ann', 'a request that reads no flash');
      assert.equal((await jar.send(s.port, '/')).body, '{"info":["Welcome back",{"text":"You have 2 messages"}]}', 'the messages, in order, once');
      assert.equal((await jar.send(s.port, '/')).body, '{}', 'gone after they were read');
      assert.equal((await jar.send(s.port, '/info')).body, '[]', 'reading one name that holds nothing gives an empty list');
    });

    it('lists an owner\'s sessions and logs them out everywhere but here', async (t) => {
      const clock = new Clock();
      const s = await serve(t, { sessionStorage: make(clock, t), now: clock.now }, (s) => {
        s.get('/login', async (r) => {
          await r.session.regenerate();
          r.session.set('user', r.query.get('user') as string);
          r.session.setOwner(r.query.get('user') as string, { ua: r.header('user-agent') ?? '' });
          r.response.write('ok');
        });
        s.get('/me', (r) => r.response.write(r.session.owner ?? 'nobody'));
        s.get('/my-hash', (r) => r.response.write(r.session.idHash));
        s.get('/others', async (r) => r.response.writeJson(await s.sessions.of(r.session.owner as string)));
        s.post('/everywhere', async (r) => {
          r.response.writeJson(await s.sessions.destroyAll(r.session.owner as string, { except: r.session }));
        });
      });
      const browsers = [new Jar(), new Jar(), new Jar()];
      for (const [i, b] of browsers.entries()) {
        await b.send(s.port, '/login?user=ann', { headers: { 'user-agent': `browser ${i}` } });
        clock.advance(1_000);
      }
      const bob = new Jar();
      await bob.send(s.port, '/login?user=bob');
      const listed = JSON.parse((await (browsers[0] as Jar).send(s.port, '/others')).body) as { idHash: string; created: number; ownedSince: number; lastSeen: number; info: { ua: string } }[];
      assert.equal(listed.length, 3, 'ann has three sessions');
      assert.deepEqual(listed.map((x) => x.info.ua), ['browser 2', 'browser 1', 'browser 0'], 'most recently used first, with the info the app stored');
      assert.ok(listed.every((x) => /^[0-9a-f]{64}$/.test(x.idHash) && x.created > 0 && x.lastSeen >= x.created), 'each by id hash, with its creation and last use');
      assert.ok(listed.every((x) => x.ownedSince >= x.created), 'and when it got its owner (the login)');
      assert.equal((await (browsers[0] as Jar).send(s.port, '/my-hash')).body, hashId(browsers[0]?.cookies.get('sid') as string), 'r.session.idHash names this session as the listing does');
      const ids = browsers.map((b) => b.cookies.get('sid') as string);
      assert.ok(listed.every((x) => !ids.includes(x.idHash)), 'no id in the listing');
      assert.equal((await (browsers[0] as Jar).send(s.port, '/everywhere', { method: 'POST' })).body, '2', 'two other sessions ended');
      assert.equal((await (browsers[0] as Jar).send(s.port, '/me')).body, 'ann', 'this one stays');
      assert.equal((await (browsers[1] as Jar).send(s.port, '/me')).body, 'nobody', 'the second browser is logged out');
      assert.equal((await (browsers[2] as Jar).send(s.port, '/me')).body, 'nobody', 'the third browser is logged out');
      assert.equal((await bob.send(s.port, '/me')).body, 'bob', 'another owner is untouched');
    });

    it('counts and lists the live sessions without their ids', async (t) => {
      const clock = new Clock();
      const s = await serve(t, { sessionStorage: make(clock, t), now: clock.now }, (s) => {
        s.get('/set', (r) => {
          r.session.set('n', 1);
          r.response.write(r.session.id);
        });
      });
      const ids = [(await send(s.port, '/set')).body, (await send(s.port, '/set')).body];
      assert.equal(await s.sessions.count(), 2, 'two sessions');
      const listed: string[] = [];
      for await (const x of s.sessions.list()) listed.push(x.idHash);
      assert.deepEqual(listed.sort(), ids.map(hashId).sort(), 'listed by id hash');
    });
  });
}

describe('CSRF protection', () => {
  async function csrfServer(t: TestContext) {
    return serve(t, { sessionStorage: new MemoryStorage() }, (s) => {
      s.use(csrf({ origins: ['https://partner.example'] }));
      s.get('/form', (r) => r.response.write(r.session.csrfToken()));
      s.post('/submit', (r) => r.response.write('accepted'));
      s.put('/api', (r) => r.response.write('put accepted'));
    });
  }

  it('refuses an unsafe request without a valid token with 403, and accepts one with it', async (t) => {
    const s = await csrfServer(t);
    const jar = new Jar();
    const token = (await jar.send(s.port, '/form')).body;
    assert.ok(token.length > 40, 'a token');
    assert.notEqual((await jar.send(s.port, '/form')).body, token, 'a fresh mask per page: tokens never repeat');
    const form = (body: string): { method: string; body: string; headers: Record<string, string> } => ({ method: 'POST', body, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    assert.equal((await jar.send(s.port, '/submit', { method: 'POST' })).status, 403, 'no token: 403');
    assert.equal((await jar.send(s.port, '/submit', form('_csrf=forged'))).status, 403, 'a forged token: 403');
    assert.equal((await jar.send(s.port, '/submit', form(`_csrf=${encodeURIComponent(token)}`))).body, 'accepted', 'the token in a form field');
    assert.equal((await jar.send(s.port, '/submit', { method: 'POST', headers: { 'x-csrf-token': token } })).body, 'accepted', 'the token in the header');
    assert.equal((await jar.send(s.port, '/api', { method: 'PUT', body: JSON.stringify({ _csrf: token }), headers: { 'content-type': 'application/json' } })).body, 'put accepted', 'the token in a JSON body');
    const other = new Jar();
    await other.send(s.port, '/form');
    assert.equal((await other.send(s.port, '/submit', { method: 'POST', headers: { 'x-csrf-token': token } })).status, 403, 'another session\'s token: 403');
    assert.equal((await send(s.port, '/submit', { method: 'POST', headers: { 'x-csrf-token': token } })).status, 403, 'a token without its session: 403');
  });

  it('refuses a request the browser says is cross-site, even with a valid token', async (t) => {
    const s = await csrfServer(t);
    const jar = new Jar();
    const token = (await jar.send(s.port, '/form')).body;
    const post = (headers: Record<string, string>): Promise<Reply> => jar.send(s.port, '/submit', { method: 'POST', headers: { 'x-csrf-token': token, ...headers } });
    assert.equal((await post({ 'sec-fetch-site': 'cross-site' })).status, 403, 'Sec-Fetch-Site: cross-site');
    assert.equal((await post({ origin: 'https://evil.example' })).status, 403, 'a foreign Origin');
    assert.equal((await post({ origin: 'null' })).status, 403, 'an opaque Origin');
    assert.equal((await post({ origin: `http://127.0.0.1:${s.port}`, 'sec-fetch-site': 'same-origin' })).status, 200, 'its own origin');
    assert.equal((await post({ origin: 'https://partner.example', 'sec-fetch-site': 'cross-site' })).status, 200, 'an allowed origin');
  });
});

describe('lifecycle events', () => {
  it('reports created, regenerated, destroyed, expired, refused and storage errors, with hashed ids only', async (t) => {
    const clock = new Clock();
    let failing = false;
    const inner = new MemoryStorage({ now: clock.now });
    const storage: Storage = {
      get: (id) => (failing ? Promise.reject(new Error('backend down')) : inner.get(id)),
      set: (id, data, ttl) => inner.set(id, data, ttl),
      patch: (id, changes, ttl) => inner.patch(id, changes, ttl),
      touch: (id, ttl) => inner.touch(id, ttl),
      remove: (id) => inner.remove(id),
      configure: (settings) => inner.configure(settings),
    };
    const s = await serve(t, { sessionStorage: storage, now: clock.now, sessionMaxAge: '1h', sessionMaxLifetime: '2h' }, (s) => {
      s.get('/set', (r) => {
        r.session.set('n', 1);
        r.response.write('ok');
      });
      s.get('/login', async (r) => {
        await r.session.regenerate();
        r.response.write('ok');
      });
      s.get('/logout', async (r) => {
        await r.session.destroy();
        r.response.write('ok');
      });
    });
    const events: { event: SessionEvent; path: string | undefined }[] = [];
    const off = (['created', 'regenerated', 'destroyed', 'expired', 'refused', 'storageError'] as const).map((type) =>
      s.sessions.on(type, (event, request) => events.push({ event, path: (request as { path?: string } | undefined)?.path })),
    );
    const jar = new Jar();
    await jar.send(s.port, '/set');
    const first = jar.cookies.get('sid') as string;
    await jar.send(s.port, '/login');
    const second = jar.cookies.get('sid') as string;
    await jar.send(s.port, '/logout');
    await send(s.port, '/set', { headers: { cookie: 'sid=not-an-id' } });
    const unknown = 'A'.repeat(42) + 'A';
    await send(s.port, '/set', { headers: { cookie: `sid=${unknown}` } });
    // Past the absolute timeout, with an idle timeout that would still let it live.
    const old = cookieValue((await send(s.port, '/set')).setCookies, 'sid') as string;
    for (const minutes of [50, 50]) {
      clock.advance(minutes * 60_000);
      await send(s.port, '/set', { headers: { cookie: `sid=${old}` } }); // used within its idle hour
    }
    clock.advance(30 * 60_000);
    await send(s.port, '/set', { headers: { cookie: `sid=${old}` } }); // 130 min after its creation
    failing = true;
    assert.equal((await send(s.port, '/set', { headers: { cookie: `sid=${second}` } })).status, 503, 'a failing storage');
    failing = false;
    const types = events.map((e) => `${e.event.type}${'reason' in e.event ? `:${e.event.reason}` : ''}`);
    // Each refused id is followed by the new session its write created.
    assert.deepEqual(types.slice(0, 8), ['created', 'regenerated', 'destroyed', 'refused:malformed', 'created', 'refused:unknown', 'created', 'created'], 'in order, with their reasons');
    assert.ok(events.some((e) => e.event.type === 'expired' && e.event.idHash === hashId(old)), `the session past its absolute timeout is reported expired: ${types.join(', ')}`);
    assert.equal(types.at(-1), 'storageError', 'the storage error is reported');
    const regenerated = events[1]?.event as Extract<SessionEvent, { type: 'regenerated' }>;
    assert.equal(regenerated.previousIdHash, hashId(first), 'the regenerate names the old id by its hash');
    assert.equal(regenerated.idHash, hashId(second), 'and the new one');
    assert.equal(events[0]?.path, '/set', 'each event comes with its request');
    const text = JSON.stringify(events.map((e) => e.event));
    for (const id of [first, second, old]) assert.ok(!text.includes(id), 'no raw id in any event');
    for (const stop of off) stop();
    const created = events.filter((e) => e.event.type === 'created').length;
    await jar.send(s.port, '/set');
    assert.equal(events.filter((e) => e.event.type === 'created').length, created, 'no events after the listeners left');
    assert.ok(isValidId(jar.cookies.get('sid') as string), 'the server still works');
  });
});

describe('HTTPS', () => {
  it('serves HTTPS itself: the cookie is Secure with cookieSecure auto, and a __Host- name works', async (t) => {
    const dir = tempDir(t);
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '1', '-subj', '/CN=localhost'], { stdio: 'ignore' });
    const key = readFileSync(join(dir, 'key.pem'));
    const cert = readFileSync(join(dir, 'cert.pem'));
    const s = await serve(t, { sessionStorage: new MemoryStorage(), https: { key, cert }, sessionIdName: '__Host-sid' }, (s) => {
      s.get('/set', (r) => {
        r.session.set('n', 1);
        r.response.write('ok');
      });
    });
    const reply = await new Promise<{ status: number; cookies: string[] }>((resolve, reject) => {
      const req = httpsRequest({ host: '127.0.0.1', port: s.port, path: '/set', ca: cert, servername: 'localhost', rejectUnauthorized: false }, (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, cookies: res.headers['set-cookie'] ?? [] }));
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(reply.status, 200, 'served over TLS');
    assert.match(reply.cookies[0] ?? '', /^__Host-sid=[A-Za-z0-9_-]{43}; Max-Age=86400; Path=\/; HttpOnly; Secure; SameSite=Lax$/, 'a Secure __Host- cookie');
  });

  it('refuses a __Host- name with cookieSecure auto without https', () => {
    assert.throws(() => new Server({ sessionIdName: '__Host-sid' }), /option cookieSecure is invalid: "auto" .*'auto' with https/, 'auto is only Secure for sure over HTTPS');
  });
});
