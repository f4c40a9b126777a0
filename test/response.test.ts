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
      assert.equal(reply.status, 200, `${name}: answered 200`);
      assert.equal(reply.body, body, `${name}: the body`);
      assert.equal(reply.headers['content-type'], type, `${name}: the Content-Type that fits the values`);
      assert.equal(reply.headers['content-length'], String(Buffer.byteLength(body)), `${name}: Content-Length is the body's byte length`);
    });
  }

  it('appends across calls and is chainable', async (t) => {
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => {
      s.get('/w', (r) => {
        r.response.write('a').write(1).write(null).write(Buffer.from('!'));
      });
    });
    const reply = await send(s.port, '/w');
    assert.equal(reply.body, 'a1!', 'every write appends to the body, null adding nothing');
    assert.equal(reply.headers['content-type'], TEXT_TYPE, 'mixed writes are sent as text');
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
    assert.equal((await send(s.port, '/html')).headers['content-type'], 'text/html; charset=utf-8', 'a Content-Type set before the write is kept, an object not turned into JSON');
    assert.equal((await send(s.port, '/svg')).headers['content-type'], 'image/svg+xml', 'a Content-Type set after the write is kept');
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
    assert.deepEqual(results, ['TypeError', 'TypeError', 'TypeError'], 'a function, a symbol and a bigint are each refused with a TypeError');
    assert.equal(reply.status, 500, 'an uncaught refusal fails the request with 500');
    assert.equal(reply.body, 'Internal Server Error', 'the 500 shows only its status text');
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
    assert.equal(obj.body, '{"a":[1]}', 'writeJson replaces what was written before it');
    assert.equal(obj.headers['content-type'], JSON_TYPE, 'writeJson sends the JSON Content-Type');
    assert.equal((await send(s.port, '/str')).body, '"text"', 'a string is sent as a JSON string');
    const undef = await send(s.port, '/undef');
    assert.equal(undef.body, 'null', 'undefined is sent as JSON null');
    assert.equal(undef.headers['content-type'], JSON_TYPE, 'JSON null is sent with the JSON Content-Type');
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
    assert.equal(reply.status, 201, 'the status set is sent');
    assert.equal(reply.body, '201', 'statusCode reads back the status set');
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
    assert.deepEqual(results, Array(6).fill('TypeError'), 'each invalid status is refused with a TypeError');
    assert.equal(reply.status, 202, 'a refused status leaves the one set before');
    assert.equal((await send(s.port, '/uncaught')).status, 500, 'an uncaught invalid status fails the request with 500');
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
    assert.equal(deleted.status, 204, '204 is sent');
    assert.equal(deleted.body, '', 'a 204 has no body, whatever was written');
    assert.equal(deleted.headers['content-length'], undefined, 'a 204 has no Content-Length');
    const notModified = await send(s.port, '/item');
    assert.equal(notModified.status, 304, '304 is sent');
    assert.equal(notModified.body, '', 'a 304 has no body, whatever was written');
    assert.equal(notModified.headers['etag'], '"v1"', 'a 304 keeps the headers set');
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
    assert.equal(reply.headers['x-one'], 'second', 'a header set again under another case replaces the first');
    assert.equal(reply.headers['x-num'], '7', 'a number is sent as its digits');
    assert.equal(reply.headers['vary'], 'Accept, Cookie', 'an array is sent as one joined header');
    assert.equal(reply.body, 'second,undefined', 'getHeader reads case-insensitively, and a missing header is undefined');
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
    assert.deepEqual(results, Array(12).fill('TypeError'), 'every bad header name or value is refused with a TypeError');
    assert.equal(reply.status, 200, 'caught refusals leave the request to succeed');
    assert.equal(reply.headers['x-a'], undefined, 'no refused header was sent');
    // Sent as UTF-8 bytes, which the client reads back as latin1.
    assert.equal(Buffer.from(reply.headers['x-latin1'] as string, 'latin1').toString('utf8'), 'café\tok', 'a value with a tab and a non-ASCII Latin-1 letter is sent as UTF-8 bytes');
    const uncaught = await send(s.port, '/uncaught');
    assert.equal(uncaught.status, 500, 'an uncaught header refusal fails the request with 500');
    assert.equal(uncaught.headers['x-evil'], undefined, 'the refused header was not sent');
    assert.deepEqual(uncaught.setCookies, [], 'no header was smuggled into a Set-Cookie');
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
    assert.equal(reply.status, 302, 'a redirect answers 302 by default');
    assert.equal(reply.headers['location'], '/new?x=1', 'Location is the target given');
    assert.equal(reply.body, '', 'a redirect drops what was written before it');
    assert.equal(reply.headers['content-length'], '0', 'a redirect has an empty body');
    assert.equal(reply.headers['content-type'], undefined, 'a redirect has no Content-Type');
  });

  it('redirects with the code given', async (t) => {
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => {
      s.get('/r/:code', (r) => {
        r.response.redirect('https://example.com/', Number(r.params['code']));
      });
    });
    for (const code of [301, 303, 307, 308]) {
      const reply = await send(s.port, `/r/${code}`);
      assert.equal(reply.status, code, `redirect with ${code} answers ${code}`);
      assert.equal(reply.headers['location'], 'https://example.com/', `the ${code} redirect sends its Location`);
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
    assert.deepEqual(results, Array(6).fill('TypeError'), 'each status outside 300 to 399 and the CRLF Location are refused with a TypeError');
    assert.equal(reply.status, 200, 'the refused redirects did not change the status');
    assert.equal(reply.headers['location'], undefined, 'no Location was sent');
    assert.equal(reply.body, 'no redirect', 'the body written after the refusals is sent');
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
    assert.equal(reply.status, 200, 'the status the handler wrote raw is sent');
    assert.equal(reply.headers['content-type'], 'text/event-stream', 'the Content-Type the handler wrote raw is sent');
    assert.equal(reply.body, 'data: one\n\ndata: two\n\ndata: end\n\n', 'every raw write reaches the client, in order');
    assert.equal(reply.headers['x-buffered'], undefined, 'the buffered header is not sent once the handler went raw');
    assert.equal(reply.headers['content-length'], undefined, 'no Content-Length for a raw stream');
    assert.equal(reply.headers['transfer-encoding'], 'chunked', 'the raw stream is chunked');
    assert.deepEqual(reply.setCookies, [], 'the server adds no cookie to a raw response');
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
    assert.equal(reply.status, 418, 'the status of a response ended raw is kept');
    assert.equal(reply.body, 'teapot', 'the body of a response ended raw is kept, later writes ignored');
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
    assert.equal((await send(s.port, '/s')).body, '100:TypeError,199:TypeError,200:ok,599:ok,600:TypeError', '1xx and 600 are refused, 200 and 599 accepted');
  });

  it('sends 204 and 304 with neither a body nor a Content-Type', async (t) => {
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => {
      s.get('/n/:code', (r) => r.response.status(Number(r.params['code'])).write({ ignored: true }));
    });
    for (const code of [204, 304]) {
      const out = await send(s.port, `/n/${code}`);
      assert.equal(out.status, code, `${code} is sent`);
      assert.equal(out.body, '', `a ${code} has no body`);
      assert.equal(out.headers['content-type'], undefined, `a ${code} has no Content-Type`);
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
    assert.deepEqual((await send(s.port, '/c')).setCookies, ['raw=1; Path=/', 'jar=2; Path=/; SameSite=Lax'], 'a raw Set-Cookie header comes first, then the jar cookies');
    assert.deepEqual((await send(s.port, '/only')).setCookies, ['a=1', 'b=2'], 'a raw Set-Cookie array is sent as it is');
  });
});
