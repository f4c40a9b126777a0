/**
 * HTTP limits with the server's defaults: oversized headers and bodies are refused while everyone
 * else is served. (Slowloris needs Node's 60 s headersTimeout to pass, so it runs in
 * `npm run test:soak`, alongside the load.)
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { describe, it } from 'node:test';
import { MemoryStorage } from '../lib/index.js';
import { send, serve } from './helpers.js';

describe('HTTP limits', () => {
  it('answers 431 to a 17 KiB header block and 413 to a body over the limit, serving others meanwhile', async (t) => {
    const s = await serve(t, { sessionStorage: new MemoryStorage(), bodyLimit: 1024 }, (s) => {
      s.get('/ok', (r) => r.response.write('ok'));
      s.post('/echo', async (r) => r.response.write(await r.text()));
    });
    const big = 'x'.repeat(17 * 1024);
    const results = await Promise.all([
      send(s.port, '/ok', { headers: { 'x-big': big } }),
      send(s.port, '/echo', { method: 'POST', body: 'y'.repeat(4096) }),
      send(s.port, '/echo', { method: 'POST', body: 'small' }),
      ...Array.from({ length: 20 }, () => send(s.port, '/ok')),
    ]);
    assert.equal(results[0]?.status, 431, 'the 17 KiB header block is refused with 431');
    assert.equal(results[1]?.status, 413, 'the 4 KiB body over the 1 KiB bodyLimit is refused with 413');
    assert.equal(results[1]?.body, 'Payload Too Large', 'the 413 carries only its status text');
    assert.equal(results[2]?.body, 'small', 'the small body sent alongside is echoed whole');
    for (const r of results.slice(3)) assert.equal(r.body, 'ok', 'a plain request sent alongside the oversized ones is served');
  });

  it('cuts a chunked body that grows past the limit without reading the rest', async (t) => {
    const s = await serve(t, { sessionStorage: new MemoryStorage(), bodyLimit: 1024 }, (s) => {
      s.post('/echo', async (r) => r.response.write(await r.text()));
    });
    const socket = connect(s.port, '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    let answer = '';
    socket.on('data', (c: Buffer) => (answer += c.toString()));
    const closed = new Promise((resolve) => socket.once('close', resolve));
    socket.write('POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n');
    for (let i = 0; i < 4; i++) socket.write(`400\r\n${'z'.repeat(1024)}\r\n`);
    await closed;
    assert.match(answer, /^HTTP\/1\.1 413 /, 'the chunked body past the limit is answered 413');
    assert.match(answer, /connection: close/i, 'the 413 closes the connection instead of reading the rest');
  });
});
