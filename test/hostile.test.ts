/**
 * Hostile input, from seeded generators (no dependency): cookie headers, ids, request paths and
 * session data. Thousands of cases each; the same seed gives the same cases on every run.
 */
import assert from 'node:assert/strict';
import { Agent } from 'node:http';
import { describe, it } from 'node:test';
import { MemoryStorage, parseCookie } from '../lib/index.js';
import { generateId, isValidId } from '../lib/id.js';
import { Router } from '../lib/router.js';
import { SpyStorage, send, serve } from './helpers.js';
import { prng } from './prng.js';

const ALPHABET = ' ;=,"\\%\t\r\n\0abcXYZ019_-.~/+:<>{}[]()@?é€💥';

function randomString(rand: () => number, max: number, alphabet = ALPHABET): string {
  const n = Math.floor(rand() * max);
  let s = '';
  for (let i = 0; i < n; i++) s += alphabet[Math.floor(rand() * alphabet.length)] ?? '';
  return [...s].join('');
}

function randomBytesString(rand: () => number, max: number): string {
  const n = Math.floor(rand() * max);
  let s = '';
  for (let i = 0; i < n; i++) s += String.fromCharCode(Math.floor(rand() * 256));
  return s;
}

/** Median wall time of `fn` over a few runs, in ms. */
function medianMs(fn: () => void, runs = 7): number {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    fn();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(runs / 2)] as number;
}

describe('hostile cookie headers', () => {
  it('never throw, over 5 000 generated headers of random bytes and cookie syntax', () => {
    const rand = prng(0xc00c1e);
    for (let i = 0; i < 5000; i++) {
      const header = i % 2 === 0 ? randomBytesString(rand, 2048) : randomString(rand, 2048);
      const out = parseCookie(header);
      assert.equal(Object.getPrototypeOf(out), null, `the cookies of generated header #${i} sit in an object without a prototype`);
      for (const v of Object.values(out)) assert.equal(typeof v, 'string', `every cookie value of generated header #${i} is a string`);
    }
    assert.equal(({} as Record<string, unknown>)['a'], undefined, 'no generated header polluted Object.prototype');
  });

  it('stay linear: 10x the input costs about 10x the time, not 100x', () => {
    // Quadratic parsing would show ~100x; we allow 30x for a noisy machine. The inputs are the
    // pathological shapes of style.md: runs of separators, quotes and huge pair counts.
    for (const unit of [';', '=', '"', 'a=1; ', ' = ;', '%%;']) {
      const small = unit.repeat(Math.ceil(16_384 / unit.length));
      const big = unit.repeat(Math.ceil(163_840 / unit.length));
      parseCookie(big); // warm up
      const tSmall = Math.max(medianMs(() => parseCookie(small)), 0.05);
      const tBig = medianMs(() => parseCookie(big));
      assert.ok(tBig < tSmall * 30, `${JSON.stringify(unit)}: ${tSmall.toFixed(3)} ms → ${tBig.toFixed(3)} ms`);
    }
  });

  it('stop after a bounded number of pairs', () => {
    const header = Array.from({ length: 100_000 }, (_, i) => `k${i}=v`).join('; ');
    assert.ok(Object.keys(parseCookie(header)).length <= 200, 'a header of 100 000 pairs yields at most 200 cookies');
  });
});

describe('hostile ids', () => {
  const corpus = [
    '../../etc/passwd', '..%2f..%2fetc%2fpasswd', '/abs', 'a\u0000b', 'x'.repeat(10_000), '', '""', '"quoted"', '__proto__',
    'constructor', 'hasOwnProperty', 'toString', `${generateId()}\r\nSet-Cookie: x=1`, `${generateId()}\u0000`,
  ];

  it('never reach the storage: the corpus and 3 000 generated ids', async (t) => {
    const spy = new SpyStorage(new MemoryStorage());
    const s = await serve(t, { sessionStorage: spy }, (s) => s.all('/get', (r) => r.response.write(r.session.data())));
    const rand = prng(1234);
    const generated = Array.from({ length: 3000 }, () => {
      // Near misses: 43 characters with one foreign byte, wrong lengths, random text.
      const id = generateId();
      const k = Math.floor(rand() * 3);
      if (k === 0) return id.slice(0, 42) + '!';
      if (k === 1) return id + 'A'.repeat(1 + Math.floor(rand() * 5));
      return randomString(rand, 80, 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./%');
    }).filter((id) => !isValidId(id));
    const agent = new Agent({ keepAlive: true, maxSockets: 16 });
    t.after(() => agent.destroy());
    const ids = [...corpus, ...generated];
    for (let i = 0; i < ids.length; i += 100) {
      await Promise.all(
        ids.slice(i, i + 100).map(async (id) => {
          const safe = encodeURIComponent(id);
          const a = await send(s.port, '/get', { agent, headers: { cookie: `sid=${safe}` } });
          assert.equal(a.body, '{}', `the hostile cookie id ${JSON.stringify(id.slice(0, 60))} gets an empty session`);
        }),
      );
    }
    for (const id of corpus.filter((c) => !/[\r\n\0]/.test(c) && c.length < 8000)) {
      const b = await send(s.port, '/get', { agent, headers: { sid: id } });
      assert.equal(b.body, '{}', `an id sent in a header named sid, ${JSON.stringify(id.slice(0, 60))}, is ignored`);
    }
    assert.deepEqual(spy.calls, [], 'no hostile id reached the storage, not even for a read');
  });
});

describe('hostile paths', () => {
  it('never crash the router: 5 000 generated paths', () => {
    const r = new Router<string>();
    r.add('GET', '/', 'root');
    r.add('GET', '/users/:id', 'user');
    r.add('GET', '/files/*', 'files');
    const rand = prng(42);
    const pieces = ['..', '%2e', '%2e%2e', '%2f', '/', '//', 'users', 'files', '%', '%zz', '%E0%A4%A', '.', ':id', '*', '\u0000', 'é'];
    for (let i = 0; i < 5000; i++) {
      let path = '/';
      const n = Math.floor(rand() * 12);
      for (let j = 0; j < n; j++) path += pieces[Math.floor(rand() * pieces.length)];
      const m = r.find('GET', path);
      assert.ok(m.kind === 'found' || m.kind === 'none' || m.kind === 'method' || m.kind === 'bad', `${JSON.stringify(path)} gave ${m.kind}`);
    }
    assert.equal(r.find('GET', `/${'a/'.repeat(20_000)}`).kind, 'none', 'a path of 20 000 segments matches no route');
  });

  it('answer every odd path over HTTP and keep serving', async (t) => {
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => {
      s.get('/files/*', (r) => r.response.write(r.params['*'] ?? ''));
      s.get('/ok', (r) => r.response.write('ok'));
    });
    for (const path of ['/..', '/%2e%2e/%2e%2e/etc/passwd', '//files//a', '/files/%E0%A4%A', '/files/..%2f..%2f', `/${'x'.repeat(8000)}`, '/files/%00']) {
      const out = await send(s.port, path);
      assert.ok(out.status === 200 || out.status === 400 || out.status === 404, `${path}: ${out.status}`);
    }
    assert.equal((await send(s.port, '/files/a%2Fb')).body, 'a/b', 'an escaped slash in the rest of a path is decoded into it');
    assert.equal((await send(s.port, '/ok')).body, 'ok', 'the server still serves after the odd paths');
  });
});

describe('hostile session data', () => {
  it('keeps __proto__ and constructor keys as data and caps the size with a clear error', async (t) => {
    const errors: unknown[] = [];
    const storage = new MemoryStorage();
    const s = await serve(t, { sessionStorage: storage, sessionMaxSize: 64 * 1024, onError: (e) => errors.push(e) }, (s) => {
      s.post('/put', async (r) => {
        const body = await r.json<Record<string, unknown>>();
        r.session.setMap(body as never);
        r.response.write(String(r.session.get('admin' as never)), ',', String(({} as Record<string, unknown>)['admin']));
      });
      s.post('/deep', async (r) => {
        const depth = Number(r.query.get('depth'));
        let v: unknown = 1;
        for (let i = 0; i < depth; i++) v = { v };
        try {
          r.session.set('deep', v as never);
          r.response.write('stored');
        } catch (e) {
          r.response.status(400).write((e as Error).message);
        }
      });
      s.post('/big', (r) => {
        r.session.set('big', 'x'.repeat(Number(r.query.get('n'))));
        r.response.write('ok');
      });
    });
    const proto = await send(s.port, '/put', { method: 'POST', body: '{"__proto__":{"admin":true},"constructor":{"prototype":{"admin":true}}}' });
    assert.equal(proto.body, 'undefined,undefined', '__proto__ and constructor keys set no inherited admin, on the session or on Object.prototype');
    assert.equal((await send(s.port, '/deep?depth=50', { method: 'POST' })).body, 'stored', 'a value 50 levels deep is stored');
    const deep = await send(s.port, '/deep?depth=5000', { method: 'POST' });
    assert.equal(deep.status, 400, 'a value 5 000 levels deep is refused, and the handler turns that into a 400');
    assert.match(deep.body, /deeper than 100/, 'the refusal names the depth limit');
    assert.equal((await send(s.port, '/big?n=1000', { method: 'POST' })).status, 200, 'a 1 000-byte value fits under sessionMaxSize');
    const big = await send(s.port, '/big?n=100000', { method: 'POST' });
    assert.equal(big.status, 500, 'a session over sessionMaxSize fails the request with 500');
    assert.match(String(errors.at(-1)), /over the sessionMaxSize of 65536 bytes/, 'the error says the session is over sessionMaxSize, with the limit');
  });
});
