import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { Agent } from 'node:http';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { CookieJar, MemoryStorage, Request, type Response } from '../lib/index.js';
import { readBody } from '../lib/request.js';
import { rawRequest, send, serve } from './helpers.js';

describe('Request over HTTP', () => {
  it('exposes method, path without the query, url and query', async (t) => {
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => {
      s.all('/info/:id', (r) =>
        r.response.writeJson({
          method: r.method,
          path: r.path,
          isUrl: r.url instanceof URL,
          href: r.url.href,
          pathname: r.url.pathname,
          sameUrl: r.url === r.url,
          query: [...r.query],
          sameQuery: r.query === r.query,
          raw: r.raw.url,
        }),
      );
    });
    const reply = await send(s.port, '/info/42?x=1&y=two%20words&x=3', { method: 'PATCH', headers: { host: 'example.test:8080' } });
    assert.deepEqual(JSON.parse(reply.body), {
      method: 'PATCH',
      path: '/info/42',
      isUrl: true,
      href: 'http://example.test:8080/info/42?x=1&y=two%20words&x=3',
      pathname: '/info/42',
      sameUrl: true,
      query: [['x', '1'], ['y', 'two words'], ['x', '3']],
      sameQuery: true,
      raw: '/info/42?x=1&y=two%20words&x=3',
    }, 'method, path, url and query as the handler saw them, with the raw target kept');
    const bare = JSON.parse((await send(s.port, '/info/1')).body) as { path: string; query: unknown[] };
    assert.equal(bare.path, '/info/1', 'the path of a request without a query');
    assert.deepEqual(bare.query, [], 'no query gives an empty query');
  });

  it('builds url on localhost when the Host header is not a host', async (t) => {
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => {
      s.get('/u', (r) => r.response.write(r.url.href));
    });
    assert.equal((await send(s.port, '/u?a=1', { headers: { host: 'bad host' } })).body, 'http://localhost/u?a=1', 'a Host header that is not a host gives a url on localhost');
  });

  it('gives route parameters in a null-prototype record, percent-decoded', async (t) => {
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => {
      s.get('/p/:constructor/:name', (r) =>
        r.response.writeJson({ proto: Object.getPrototypeOf(r.params) === null, params: { ...r.params }, toString: r.params['toString'] ?? null }),
      );
      s.get('/none', (r) => r.response.writeJson({ proto: Object.getPrototypeOf(r.params) === null, keys: Object.keys(r.params) }));
    });
    assert.deepEqual(JSON.parse((await send(s.port, '/p/a/b%2Fc%20d')).body), {
      proto: true,
      params: { constructor: 'a', name: 'b/c d' },
      toString: null,
    }, 'parameters are decoded, in a record without a prototype, where constructor is a plain key and toString absent');
    assert.deepEqual(JSON.parse((await send(s.port, '/none')).body), { proto: true, keys: [] }, 'a route without parameters gives an empty record without a prototype');
  });

  it('reads headers case-insensitively, joining repeated ones, and only real headers', async (t) => {
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => {
      s.get('/h', (r) =>
        r.response.writeJson({
          lower: r.header('x-custom') ?? null,
          upper: r.header('X-CUSTOM') ?? null,
          missing: r.header('x-missing') ?? null,
          setCookie: r.header('Set-Cookie') ?? null,
          dup: r.header('x-dup') ?? null,
          ctor: typeof r.header('constructor'),
          proto: typeof r.header('__proto__'),
        }),
      );
    });
    const reply = await rawRequest(
      s.port,
      'GET /h HTTP/1.1\r\nHost: x\r\nX-Custom: value\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nX-Dup: one\r\nX-Dup: two\r\nConnection: close\r\n\r\n',
    );
    const body = reply.text.slice(reply.text.indexOf('\r\n\r\n') + 4);
    assert.deepEqual(JSON.parse(body), {
      lower: 'value',
      upper: 'value',
      missing: null,
      setCookie: 'a=1, b=2',
      dup: 'one, two',
      ctor: 'undefined',
      proto: 'undefined',
    }, 'headers read in any case, repeated ones joined, prototype names not headers');
  });

  it('looks up get() in the route parameter, then the query, then a body read by json()', async (t) => {
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => {
      s.post('/g/:k', async (r) => {
        const before = [r.get('k'), r.get('q'), r.get('b') ?? null];
        await r.json();
        const after = [r.get('k'), r.get('q'), r.get('b') ?? null, r.get('n') ?? null, r.get('missing') ?? null, r.get('toString') ?? null];
        r.response.writeJson({ before, after });
      });
    });
    const reply = await send(s.port, '/g/param?k=query&q=query', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ k: 'body', q: 'body', b: 'body', n: { nested: [1] } }),
    });
    assert.deepEqual(JSON.parse(reply.body), {
      before: ['param', 'query', null],
      after: ['param', 'query', 'body', { nested: [1] }, null, null],
    }, 'get() prefers the parameter, then the query, and sees the JSON body only once it was read');
  });

  it('looks up get() in a body read by form(), and not in a JSON array', async (t) => {
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => {
      s.post('/form', async (r) => {
        const form = await r.form();
        r.response.writeJson({ a: r.get('a') ?? null, b: r.get('b') ?? null, all: form.getAll('a'), missing: r.get('c') ?? null });
      });
      s.post('/array', async (r) => {
        const value = await r.json<string[]>();
        r.response.writeJson({ value, zero: r.get('0') ?? null });
      });
    });
    const form = await send(s.port, '/form?b=query', { method: 'POST', body: 'a=1&a=2&b=body' });
    assert.deepEqual(JSON.parse(form.body), { a: '1', b: 'query', all: ['1', '2'], missing: null }, 'get() finds a form field, after the query, and form() keeps repeated fields');
    const array = await send(s.port, '/array', { method: 'POST', body: '["x"]' });
    assert.deepEqual(JSON.parse(array.body), { value: ['x'], zero: null }, 'get() does not index into a JSON array body');
  });

  it('reads the body as text, JSON or a form, and the same body twice', async (t) => {
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => {
      s.post('/text', async (r) => {
        const a = await r.text();
        const b = await r.text();
        r.response.write(a === b ? a : 'differs');
      });
      s.post('/json', async (r) => r.response.writeJson({ got: await r.json() }));
      s.post('/form', async (r) => r.response.writeJson(Object.fromEntries(await r.form())));
      s.get('/empty', async (r) => r.response.writeJson({ text: await r.text() }));
    });
    const unicode = 'héllo wörld ✓';
    assert.equal((await send(s.port, '/text', { method: 'POST', body: Buffer.from(unicode) })).body, unicode, 'a UTF-8 body reads back as the same text, twice');
    assert.equal((await send(s.port, '/json', { method: 'POST', body: '{"a":[1,null,"x"]}' })).body, '{"got":{"a":[1,null,"x"]}}', 'a JSON object body is parsed');
    assert.equal((await send(s.port, '/json', { method: 'POST', body: '7' })).body, '{"got":7}', 'a JSON body that is a bare number is parsed');
    assert.equal((await send(s.port, '/form', { method: 'POST', body: 'a=1&b=two+words&c=%26' })).body, '{"a":"1","b":"two words","c":"&"}', 'a form body is decoded, + as a space');
    assert.equal((await send(s.port, '/empty')).body, '{"text":""}', 'a request without a body reads as empty text');
    // A body in many chunks is put back together.
    const big = 'x'.repeat(200_000);
    assert.equal((await send(s.port, '/text', { method: 'POST', body: big })).body.length, big.length, 'a 200 KB body in many chunks is read whole');
  });

  it('answers 400 with a safe message to malformed JSON, without reporting it', async (t) => {
    const errors: unknown[] = [];
    const s = await serve(t, { sessionStorage: new MemoryStorage(), onError: (e) => errors.push(e) }, (s) => {
      s.post('/json', async (r) => r.response.writeJson(await r.json()));
    });
    for (const body of ['{"a":', "{'a':1}", '', 'undefined']) {
      const reply = await send(s.port, '/json', { method: 'POST', body });
      assert.equal(reply.status, 400, `the malformed JSON ${JSON.stringify(body)} is answered 400`);
      assert.equal(reply.body, 'Bad Request: the body is not valid JSON', `the malformed JSON ${JSON.stringify(body)} gets the fixed 400 message`);
      assert.doesNotMatch(reply.body, /Unexpected|position|token/, `the 400 for ${JSON.stringify(body)} does not show the parser's message`);
    }
    assert.deepEqual(errors, [], 'a client sending bad JSON is not reported as a server error');
  });

  it('accepts a body of exactly bodyLimit bytes', async (t) => {
    const s = await serve(t, { sessionStorage: new MemoryStorage(), bodyLimit: 10 }, (s) => {
      s.post('/echo', async (r) => r.response.write(await r.text()));
    });
    assert.equal((await send(s.port, '/echo', { method: 'POST', body: '0123456789' })).body, '0123456789', 'a body of exactly bodyLimit bytes is accepted');
  });

  it('answers 413 to a Content-Length over bodyLimit and closes the connection', async (t) => {
    let reached = 0;
    const s = await serve(t, { sessionStorage: new MemoryStorage(), bodyLimit: 10 }, (s) => {
      s.post('/echo', async (r) => {
        const text = await r.text();
        reached++;
        r.response.write(text);
      });
    });
    const reply = await send(s.port, '/echo', { method: 'POST', body: 'x'.repeat(11) });
    assert.equal(reply.status, 413, 'a Content-Length over bodyLimit is refused with 413');
    assert.equal(reply.body, 'Payload Too Large', 'the 413 carries only its status text');
    assert.equal(reply.headers['connection'], 'close', 'the 413 closes the connection');
    // On a keep-alive connection (HTTP/1.1's default), the server still closes it.
    const raw = await rawRequest(s.port, `POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n${'y'.repeat(100)}`);
    assert.match(raw.text, /^HTTP\/1\.1 413 /, 'a keep-alive request over the limit is refused with 413 too');
    assert.match(raw.text, /\r\nConnection: close\r\n/i, 'the 413 closes even a keep-alive connection');
    assert.equal(reached, 0, 'the handler never ran for a body over the limit');
  });

  it('answers 413 to a chunked body that grows over bodyLimit and closes the connection', async (t) => {
    const errors: unknown[] = [];
    let reached = 0;
    const s = await serve(t, { sessionStorage: new MemoryStorage(), bodyLimit: 1024, onError: (e) => errors.push(e) }, (s) => {
      s.post('/echo', async (r) => {
        const text = await r.text();
        reached++;
        r.response.write(text);
      });
    });
    const chunk = `200\r\n${'z'.repeat(0x200)}\r\n`;
    // Three chunks of 512 bytes and no final chunk: the server must answer and close by itself.
    const raw = await rawRequest(s.port, 'POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n', chunk, chunk, chunk);
    assert.match(raw.text, /^HTTP\/1\.1 413 Payload Too Large\r\n/, 'a chunked body over the limit is refused with 413 before it ends');
    assert.match(raw.text, /\r\nConnection: close\r\n/i, 'the 413 closes the connection');
    assert.match(raw.text, /\r\n\r\nPayload Too Large$/, 'the 413 carries only its status text');
    assert.equal(reached, 0, 'the handler never ran for a chunked body over the limit');
    assert.deepEqual(errors, [], 'a client sending too much is not reported as a server error');
  });

  it('reads the body only when asked', async (t) => {
    const agent = new Agent({ keepAlive: true });
    t.after(() => agent.destroy());
    const s = await serve(t, { sessionStorage: new MemoryStorage(), bodyLimit: 10 }, (s) => {
      s.post('/ignore', (r) => r.response.writeJson({ flowing: r.raw.readableFlowing, consumed: r.raw.readableEnded }));
      s.get('/next', (r) => r.response.write('next'));
    });
    // Over the limit, but never read: no 413.
    const reply = await send(s.port, '/ignore', { method: 'POST', body: 'q'.repeat(5000), agent });
    assert.equal(reply.status, 200, 'a body over the limit that is never read is no error');
    assert.deepEqual(JSON.parse(reply.body), { flowing: null, consumed: false }, 'the server did not start reading the body by itself');
    // The unread body does not spoil the connection for the next request.
    assert.equal((await send(s.port, '/next', { agent })).body, 'next', 'the connection with an unread body still serves the next request');
  });
});

describe('r.cookie', () => {
  it('reads request cookies, decoded, prototype names absent', async (t) => {
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => {
      s.get('/c', (r) =>
        r.response.writeJson({
          a: r.cookie.get('a') ?? null,
          b: r.cookie.get('b') ?? null,
          missing: r.cookie.get('missing') ?? null,
          ctor: r.cookie.get('constructor') ?? null,
          toString: r.cookie.get('toString') ?? null,
        }),
      );
    });
    const reply = await send(s.port, '/c', { headers: { cookie: 'a=1; b=hello%20world; a=2' } });
    assert.deepEqual(JSON.parse(reply.body), { a: '1', b: 'hello world', missing: null, ctor: null, toString: null }, 'cookies are decoded, the first of duplicates wins, and prototype names are absent');
    assert.deepEqual(JSON.parse((await send(s.port, '/c')).body), { a: null, b: null, missing: null, ctor: null, toString: null }, 'without a Cookie header every cookie is absent');
  });

  it('sets cookies with Path=/ and SameSite=Lax by default, one Set-Cookie per name', async (t) => {
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => {
      s.get('/set', (r) => {
        r.cookie.set('theme', 'dark').set('theme', 'light');
        r.cookie.set('lang', 'en', { maxAge: 60, path: '/docs', httpOnly: true, sameSite: 'Strict' });
        r.cookie.set('note', 'a b;c');
        r.response.write('ok');
      });
    });
    const reply = await send(s.port, '/set');
    assert.deepEqual(reply.setCookies, [
      'theme=light; Path=/; SameSite=Lax',
      'lang=en; Max-Age=60; Path=/docs; HttpOnly; SameSite=Strict',
      'note=a%20b%3Bc; Path=/; SameSite=Lax',
    ], 'one Set-Cookie per name, the last set wins, with Path=/ and SameSite=Lax by default and values encoded');
  });

  it('removes a cookie with Max-Age=0 and the same Path and Domain, once per name', async (t) => {
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => {
      s.get('/remove', (r) => {
        r.cookie.set('a', 'first');
        r.cookie.remove('a');
        r.cookie.remove('scoped', { path: '/app', domain: 'example.com', secure: true, sameSite: 'None', httpOnly: true, partitioned: true });
        r.response.write('ok');
      });
    });
    const reply = await send(s.port, '/remove');
    assert.deepEqual(reply.setCookies, [
      'a=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; SameSite=Lax',
      'scoped=; Max-Age=0; Domain=example.com; Path=/app; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; Secure; Partitioned; SameSite=None',
    ], "a removed cookie is expired with the Path and Domain it was set with, replacing this request's set");
  });

  it('throws a TypeError at once for a bad cookie, failing the request with 500', async (t) => {
    const errors: unknown[] = [];
    const s = await serve(t, { sessionStorage: new MemoryStorage(), onError: (e) => errors.push(e) }, (s) => {
      s.get('/bad', (r) => {
        r.cookie.set('good', 'x');
        r.cookie.set('bad name', 'x');
      });
    });
    const reply = await send(s.port, '/bad');
    assert.equal(reply.status, 500, 'a bad cookie name fails the request with 500');
    assert.deepEqual(reply.setCookies, [], 'a failed request sets no cookie, not even the good one set before');
    assert.ok(errors[0] instanceof TypeError, 'the error reported is a TypeError');
    assert.match((errors[0] as Error).message, /cookie name is invalid/, 'the error names the invalid cookie name');
  });
});

describe('Request and readBody without a server', () => {
  /** An `IncomingMessage` stand-in: a readable of `chunks` with the given fields. */
  function fakeRequest(chunks: string[], fields: { method?: string; url?: string; headers?: Record<string, string> }): IncomingMessage {
    return Object.assign(Readable.from(chunks.map((c) => Buffer.from(c))), { headers: {}, ...fields }) as unknown as IncomingMessage;
  }

  it('defaults the method to GET and the target to /', () => {
    const r = new Request(fakeRequest([], {}), {} as Response, { bodyLimit: 10, cookieDefaults: {} }, Object.create(null));
    assert.equal(r.method, 'GET', 'the method defaults to GET');
    assert.equal(r.path, '/', 'the path defaults to /');
    assert.equal(r.url.href, 'http://localhost/', 'the url defaults to http://localhost/');
    assert.ok(r.cookie instanceof CookieJar, 'r.cookie is a CookieJar');
  });

  it('puts several chunks together and refuses one byte over the limit', async () => {
    assert.equal((await readBody(fakeRequest(['ab', 'cd', 'ef'], {}), 6)).toString(), 'abcdef', 'several chunks are put together');
    await assert.rejects(readBody(fakeRequest(['abc', 'def', 'g'], {}), 6), (e: unknown) => (e as { status?: number }).status === 413, 'one byte over the limit is refused with 413');
    assert.equal((await readBody(fakeRequest([], {}), 6)).length, 0, 'an empty stream gives an empty body');
  });

  it('rejects with the stream\'s error, and when the stream closes before its end', async () => {
    const failing = fakeRequest([], {});
    const boom = new Error('boom');
    const p = readBody(failing, 100);
    (failing as unknown as Readable).destroy(boom);
    await assert.rejects(p, boom, "readBody rejects with the stream's own error");
    const cut = new Readable({ read() {} });
    const q = readBody(Object.assign(cut, { headers: {} }) as unknown as IncomingMessage, 100);
    cut.push('partial');
    cut.destroy();
    await assert.rejects(q, 'a stream destroyed before its end rejects');
  });
});
