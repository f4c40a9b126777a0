import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemoryStorage, type WriteValue } from '../lib/index.js';
import { deferred, send, serve } from './helpers.js';

const JSON_TYPE = 'application/json; charset=utf-8';
const TEXT_TYPE = 'text/plain; charset=utf-8';
const BYTES_TYPE = 'application/octet-stream';

describe('r.response.write', () => {
  const cases: [string, () => WriteValue[], string, string | undefined][] = [
    ['a string as text', () => ['hello'], 'hello', TEXT_TYPE],
    ['a multi-byte string with its byte length', () => ['héllo ✓'], 'héllo ✓', TEXT_TYPE],
    ['a Buffer as bytes', () => [Buffer.from('bytes')], 'bytes', BYTES_TYPE],
    ['a Uint8Array as bytes', () => [new Uint8Array([104, 105])], 'hi', BYTES_TYPE],
    ['several byte arrays as bytes', () => [Buffer.from('ab'), new Uint8Array([99])], 'abc', BYTES_TYPE],
    ['a number as text', () => [42.5], '42.5', TEXT_TYPE],
    ['a boolean as text', () => [false], 'false', TEXT_TYPE],
    ['null as nothing', () => [null], '', undefined],
    ['undefined as nothing', () => [undefined], '', undefined],
    ['no value as nothing', () => [], '', undefined],
    ['an object as JSON', () => [{ a: 1, b: [true, null] }], '{"a":1,"b":[true,null]}', JSON_TYPE],
    ['an array as JSON', () => [[1, 'two']], '[1,"two"]', JSON_TYPE],
    ['one object among nulls as JSON', () => [null, { a: 1 }, undefined], '{"a":1}', JSON_TYPE],
    ['two strings as text', () => ['a', 'b'], 'ab', TEXT_TYPE],
    ['two objects as text', () => [{ a: 1 }, { b: 2 }], '{"a":1}{"b":2}', TEXT_TYPE],
    ['an object then a string as text', () => [{ a: 1 }, 'x'], '{"a":1}x', TEXT_TYPE],
    ['a string then an object as text', () => ['x', [1]], 'x[1]', TEXT_TYPE],
    ['bytes then a string as text', () => [Buffer.from('b'), 's'], 'bs', TEXT_TYPE],
    ['a string then bytes as text', () => ['s', Buffer.from('b')], 'sb', TEXT_TYPE],
    ['an object then bytes as text', () => [{ a: 1 }, Buffer.from('b')], '{"a":1}b', TEXT_TYPE],
    ['a number then bytes as text', () => [1, Buffer.from('b')], '1b', TEXT_TYPE],
  ];
  for (const [name, values, body, type] of cases) {
    it(`sends ${name}`, async (t) => {
      const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => {
        s.get('/w', (r) => {
          r.response.write(...values());
        });
      });
      const reply = await send(s.port, '/w');
      assert.equal(reply.status, 200);
      assert.equal(reply.body, body);
      assert.equal(reply.headers['content-type'], type);
      assert.equal(reply.headers['content-length'], String(Buffer.byteLength(body)));
    });
  }

  it('appends across calls and is chainable', async (t) => {
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => {
      s.get('/w', (r) => {
        r.response.write('a').write(1).write(null).write(Buffer.from('!'));
      });
    });
    const reply = await send(s.port, '/w');
    assert.equal(reply.body, 'a1!');
    assert.equal(reply.headers['content-type'], TEXT_TYPE);
  });

  it('keeps a Content-Type the handler set', async (t) => {
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => {
      s.get('/html', (r) => {
        r.response.header('content-type', 'text/html; charset=utf-8').write({ not: 'json' });
      });
      s.get('/svg', (r) => {
        r.response.write(Buffer.from('<svg/>')).header('Content-Type', 'image/svg+xml');
      });
    });
    assert.equal((await send(s.port, '/html')).headers['content-type'], 'text/html; charset=utf-8');
    assert.equal((await send(s.port, '/svg')).headers['content-type'], 'image/svg+xml');
  });

  it('refuses values it cannot send with a TypeError, answering 500', async (t) => {
    const results: string[] = [];
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => {
      s.get('/bad', (r) => {
        for (const v of [() => 1, Symbol('s'), 10n]) {
          try {
            r.response.write(v as never);
            results.push('accepted');
          } catch (e) {
            results.push(e instanceof TypeError && /response value is invalid/.test(e.message) ? 'TypeError' : 'other');
          }
        }
        r.response.write(Symbol('uncaught') as never);
      });
    });
    const reply = await send(s.port, '/bad');
    assert.deepEqual(results, ['TypeError', 'TypeError', 'TypeError']);
    assert.equal(reply.status, 500);
    assert.equal(reply.body, 'Internal Server Error');
  });
});

describe('r.response.writeJson', () => {
  it('replaces the body with one JSON value', async (t) => {
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => {
      s.get('/obj', (r) => {
        r.response.write('dropped').writeJson({ a: [1] });
      });
      s.get('/str', (r) => {
        r.response.writeJson('text');
      });
      s.get('/undef', (r) => {
        r.response.writeJson(undefined);
      });
    });
    const obj = await send(s.port, '/obj');
    assert.equal(obj.body, '{"a":[1]}');
    assert.equal(obj.headers['content-type'], JSON_TYPE);
    assert.equal((await send(s.port, '/str')).body, '"text"');
    const undef = await send(s.port, '/undef');
    assert.equal(undef.body, 'null');
    assert.equal(undef.headers['content-type'], JSON_TYPE);
  });
});

describe('r.response.status', () => {
  it('sets the status, chainably, and reads it back', async (t) => {
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => {
      s.post('/create', (r) => {
        r.response.status(201).write(String(r.response.statusCode));
      });
    });
    const reply = await send(s.port, '/create', { method: 'POST' });
    assert.equal(reply.status, 201);
    assert.equal(reply.body, '201');
  });

  it('throws a TypeError for an invalid status, keeping the previous one', async (t) => {
    const results: string[] = [];
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => {
      s.get('/s', (r) => {
        r.response.status(202);
        for (const code of [99, 1000, 200.5, NaN, '200', -1]) {
          try {
            r.response.status(code as number);
            results.push(`accepted ${String(code)}`);
          } catch (e) {
            results.push(e instanceof TypeError && /response status is invalid/.test(e.message) ? 'TypeError' : 'other');
          }
        }
        r.response.write(r.response.statusCode);
      });
      s.get('/uncaught', (r) => {
        r.response.status(42);
      });
    });
    const reply = await send(s.port, '/s');
    assert.deepEqual(results, Array(6).fill('TypeError'));
    assert.equal(reply.status, 202);
    assert.equal((await send(s.port, '/uncaught')).status, 500);
  });

  it('sends no body with 204 and 304', async (t) => {
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => {
      s.delete('/item', (r) => {
        r.response.status(204).write('ignored');
      });
      s.get('/item', (r) => {
        r.response.status(304).header('ETag', '"v1"').write('ignored');
      });
    });
    const deleted = await send(s.port, '/item', { method: 'DELETE' });
    assert.equal(deleted.status, 204);
    assert.equal(deleted.body, '');
    assert.equal(deleted.headers['content-length'], undefined);
    const notModified = await send(s.port, '/item');
    assert.equal(notModified.status, 304);
    assert.equal(notModified.body, '');
    assert.equal(notModified.headers['etag'], '"v1"');
  });
});

describe('r.response.header', () => {
  it('sets, replaces case-insensitively, and sends arrays and numbers', async (t) => {
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => {
      s.get('/h', (r) => {
        r.response.header('X-One', 'first').header('x-one', 'second');
        r.response.header('X-Num', 7).header('Vary', ['Accept', 'Cookie']);
        r.response.write(String(r.response.getHeader('X-ONE')), ',', String(r.response.getHeader('x-missing')));
      });
    });
    const reply = await send(s.port, '/h');
    assert.equal(reply.headers['x-one'], 'second');
    assert.equal(reply.headers['x-num'], '7');
    assert.equal(reply.headers['vary'], 'Accept, Cookie');
    assert.equal(reply.body, 'second,undefined');
  });

  it('refuses CR, LF, NUL, other controls and bad names with a TypeError', async (t) => {
    const results: string[] = [];
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => {
      s.get('/h', (r) => {
        const bad: [unknown, unknown][] = [
          ['X-A', 'a\r\nSet-Cookie: evil=1'],
          ['X-A', 'a\nb'],
          ['X-A', 'a\rb'],
          ['X-A', 'a\0b'],
          ['X-A', 'a\u0001b'],
          ['X-A', 'euro €'],
          ['X-A', ['ok', 'b\r\nc']],
          ['X-A', { toString: () => 'x' }],
          ['X A', 'v'],
          ['X-A\r\nX-B', 'v'],
          ['', 'v'],
          [5, 'v'],
        ];
        for (const [name, value] of bad) {
          try {
            r.response.header(name as string, value as string);
            results.push(`accepted ${String(name)}`);
          } catch (e) {
            results.push(e instanceof TypeError && /^header .*invalid/.test(e.message) ? 'TypeError' : `other ${String(e)}`);
          }
        }
        r.response.header('X-Latin1', 'café\tok').write('ok');
      });
      s.get('/uncaught', (r) => {
        r.response.header('X-Evil', 'a\r\nSet-Cookie: evil=1').write('never sent');
      });
    });
    const reply = await send(s.port, '/h');
    assert.deepEqual(results, Array(12).fill('TypeError'));
    assert.equal(reply.status, 200);
    assert.equal(reply.headers['x-a'], undefined);
    // Sent as UTF-8 bytes, which the client reads back as latin1.
    assert.equal(Buffer.from(reply.headers['x-latin1'] as string, 'latin1').toString('utf8'), 'café\tok');
    const uncaught = await send(s.port, '/uncaught');
    assert.equal(uncaught.status, 500);
    assert.equal(uncaught.headers['x-evil'], undefined);
    assert.deepEqual(uncaught.setCookies, []);
  });
});

describe('r.response.redirect', () => {
  it('redirects with 302 and Location by default, dropping the body', async (t) => {
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => {
      s.get('/old', (r) => {
        r.response.write('dropped').redirect('/new?x=1');
      });
    });
    const reply = await send(s.port, '/old');
    assert.equal(reply.status, 302);
    assert.equal(reply.headers['location'], '/new?x=1');
    assert.equal(reply.body, '');
    assert.equal(reply.headers['content-length'], '0');
    assert.equal(reply.headers['content-type'], undefined);
  });

  it('redirects with the code given', async (t) => {
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => {
      s.get('/r/:code', (r) => {
        r.response.redirect('https://example.com/', Number(r.params['code']));
      });
    });
    for (const code of [301, 303, 307, 308]) {
      const reply = await send(s.port, `/r/${code}`);
      assert.equal(reply.status, code);
      assert.equal(reply.headers['location'], 'https://example.com/');
    }
  });

  it('throws a TypeError for a code outside 300 to 399, and for a Location with CR or LF', async (t) => {
    const results: string[] = [];
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => {
      s.get('/r', (r) => {
        for (const code of [200, 400, 299, 302.5, NaN]) {
          try {
            r.response.redirect('/x', code);
            results.push(`accepted ${code}`);
          } catch (e) {
            results.push(e instanceof TypeError && /redirect status is invalid/.test(e.message) ? 'TypeError' : 'other');
          }
        }
        try {
          r.response.redirect('/x\r\nSet-Cookie: evil=1');
          results.push('accepted CRLF');
        } catch (e) {
          results.push(e instanceof TypeError ? 'TypeError' : 'other');
        }
        r.response.write('no redirect');
      });
    });
    const reply = await send(s.port, '/r');
    assert.deepEqual(results, Array(6).fill('TypeError'));
    assert.equal(reply.status, 200);
    assert.equal(reply.headers['location'], undefined);
    assert.equal(reply.body, 'no redirect');
  });
});

describe('r.response.raw', () => {
  it('lets a handler stream on its own; the server then writes nothing', async (t) => {
    const storage = new MemoryStorage();
    const tick = deferred();
    const s = await serve(t, { sessionStorage: storage }, (s) => {
      s.get('/events', async (r) => {
        r.response.header('X-Buffered', 'never sent').write('never sent');
        r.response.raw.writeHead(200, { 'Content-Type': 'text/event-stream' });
        r.response.raw.write('data: one\n\n');
        setImmediate(tick.resolve);
        await tick.promise;
        r.response.raw.write('data: two\n\n');
        r.response.raw.end('data: end\n\n');
      });
    });
    const reply = await send(s.port, '/events');
    assert.equal(reply.status, 200);
    assert.equal(reply.headers['content-type'], 'text/event-stream');
    assert.equal(reply.body, 'data: one\n\ndata: two\n\ndata: end\n\n');
    assert.equal(reply.headers['x-buffered'], undefined);
    assert.equal(reply.headers['content-length'], undefined);
    assert.equal(reply.headers['transfer-encoding'], 'chunked');
    assert.deepEqual(reply.setCookies, []);
  });

  it('sends exactly the bytes of a handler that ended raw itself', async (t) => {
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => {
      s.get('/raw', (r) => {
        r.response.raw.statusCode = 418;
        r.response.raw.end('teapot');
        r.response.status(200).write('ignored');
      });
    });
    const reply = await send(s.port, '/raw');
    assert.equal(reply.status, 418);
    assert.equal(reply.body, 'teapot');
  });
});

describe('response edge cases', () => {
  it('refuses an interim 1xx status, which a client would wait past', async (t) => {
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => {
      s.get('/s', (r) => {
        const out: string[] = [];
        for (const code of [100, 199, 200, 599, 600]) {
          try {
            r.response.status(code);
            out.push(`${code}:ok`);
          } catch (e) {
            out.push(`${code}:${e instanceof TypeError ? 'TypeError' : 'other'}`);
          }
        }
        r.response.status(200).write(out.join(','));
      });
    });
    assert.equal((await send(s.port, '/s')).body, '100:TypeError,199:TypeError,200:ok,599:ok,600:TypeError');
  });

  it('sends 204 and 304 with neither a body nor a Content-Type', async (t) => {
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => {
      s.get('/n/:code', (r) => r.response.status(Number(r.params['code'])).write({ ignored: true }));
    });
    for (const code of [204, 304]) {
      const out = await send(s.port, `/n/${code}`);
      assert.equal(out.status, code);
      assert.equal(out.body, '');
      assert.equal(out.headers['content-type'], undefined);
    }
  });

  it('keeps a raw Set-Cookie header beside the jar\'s cookies', async (t) => {
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => {
      s.get('/c', (r) => {
        r.response.header('Set-Cookie', 'raw=1; Path=/');
        r.cookie.set('jar', '2');
        r.response.write('ok');
      });
      s.get('/only', (r) => {
        r.response.header('Set-Cookie', ['a=1', 'b=2']);
        r.response.write('ok');
      });
    });
    assert.deepEqual((await send(s.port, '/c')).setCookies, ['raw=1; Path=/', 'jar=2; Path=/; SameSite=Lax']);
    assert.deepEqual((await send(s.port, '/only')).setCookies, ['a=1', 'b=2']);
  });
});
