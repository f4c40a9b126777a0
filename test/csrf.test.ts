/**
 * lib/csrf.ts on what the mutation check (test/mutants/) found open: which tokens verify (only a
 * masked token of the session's own secret, never the bare secret or a token of another length),
 * that the comparison goes through `crypto.timingSafeEqual`, and that every unsafe method needs
 * the token, not only POST and PUT.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { syncBuiltinESMExports } from 'node:module';
import { describe, it } from 'node:test';
import { MemoryStorage, csrf } from '../lib/index.js';
import { maskCsrfToken, newCsrfSecret, verifyCsrfToken } from '../lib/csrf.js';
import { Jar, serve } from './helpers.js';

describe('verifyCsrfToken', () => {
  it('verifies every masked token of the secret, and nothing else', () => {
    const secret = newCsrfSecret();
    const raw = Buffer.from(secret, 'base64url');
    const token = maskCsrfToken(secret);
    const masked = Buffer.from(token, 'base64url');
    assert.equal(raw.length, 32, 'a secret is 32 bytes');
    assert.equal(verifyCsrfToken(secret, token), true, 'a masked token verifies');
    assert.equal(verifyCsrfToken(secret, maskCsrfToken(secret)), true, 'so does another mask of the same secret');
    // Any mask will do, the all-zero one included: the secret after 32 zero bytes is a valid token,
    // but the secret alone (which an unmasking that reads past the end would take for one) is not.
    assert.equal(verifyCsrfToken(secret, Buffer.concat([Buffer.alloc(32), raw]).toString('base64url')), true, 'the zero mask is a mask');
    const refused: [string, unknown][] = [
      ['the bare secret (half the length of a token)', secret],
      ['the mask alone', masked.subarray(0, 32).toString('base64url')],
      ['a token with one byte cut off', masked.subarray(0, 63).toString('base64url')],
      ['a token with one byte more', Buffer.concat([masked, Buffer.from([0])]).toString('base64url')],
      ['a token with one bit flipped', Buffer.from(masked.map((b, i) => (i === 40 ? b ^ 1 : b))).toString('base64url')],
      ['a token of another secret', maskCsrfToken(newCsrfSecret())],
      ['an empty string', ''],
      ['a token over 200 characters', token + 'A'.repeat(200)],
      ['a number', 42],
      ['undefined', undefined],
    ];
    for (const [what, value] of refused) assert.equal(verifyCsrfToken(secret, value), false, `${what} does not verify`);
  });

  it('compares through crypto.timingSafeEqual, in constant time', () => {
    const secret = newCsrfSecret();
    const token = maskCsrfToken(secret);
    const real = crypto.timingSafeEqual;
    const seen: number[] = [];
    // Replaced on the module's exports, which the library's named import then sees.
    crypto.timingSafeEqual = (a: NodeJS.ArrayBufferView, b: NodeJS.ArrayBufferView): boolean => {
      seen.push(a.byteLength, b.byteLength);
      return real(a, b);
    };
    syncBuiltinESMExports();
    try {
      assert.equal(verifyCsrfToken(secret, token), true, 'the token verifies');
      assert.equal(verifyCsrfToken(secret, maskCsrfToken(newCsrfSecret())), false, 'another secret\'s token does not');
    } finally {
      crypto.timingSafeEqual = real;
      syncBuiltinESMExports();
    }
    assert.deepEqual(seen, [32, 32, 32, 32], 'each verification compared the 32 unmasked bytes with timingSafeEqual');
  });
});

describe('the csrf() middleware', () => {
  it('asks a token of every unsafe method (POST, PUT, PATCH, DELETE), and of none of the safe ones', async (t) => {
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => {
      s.use(csrf());
      s.get('/form', (r) => r.response.write(r.session.csrfToken()));
      for (const method of ['post', 'put', 'patch', 'delete'] as const) s[method]('/thing', (r) => r.response.write(`${r.method} done`));
      s.all('/safe', (r) => r.response.write(`${r.method} done`));
    });
    const jar = new Jar();
    const token = (await jar.send(s.port, '/form')).body;
    for (const method of ['POST', 'PUT', 'PATCH', 'DELETE']) {
      assert.equal((await jar.send(s.port, '/thing', { method })).status, 403, `${method} without a token: 403`);
      const ok = await jar.send(s.port, '/thing', { method, headers: { 'x-csrf-token': token } });
      assert.equal(ok.body, `${method} done`, `${method} with the token is served`);
    }
    for (const method of ['GET', 'HEAD', 'OPTIONS']) {
      assert.equal((await jar.send(s.port, '/safe', { method })).status, 200, `${method} needs no token`);
    }
  });
});
