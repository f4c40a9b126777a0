/** lib/id.ts: the session ids the library issues, and the check every id from a cookie passes. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { generateId, isValidId } from '../lib/id.js';

describe('generateId', () => {
  it('makes 10^5 distinct ids of 32 random bytes in base64url', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 100_000; i++) {
      const id = generateId();
      assert.equal(id.length, 43, 'an id is 43 characters: 32 bytes in unpadded base64url');
      seen.add(id);
    }
    assert.equal(seen.size, 100_000, 'no id repeats in 10^5');
    for (const id of [...seen].slice(0, 1000)) {
      assert.equal(Buffer.from(id, 'base64url').length, 32, `${id} decodes to 32 bytes`);
      assert.ok(isValidId(id), `the issued id ${id} passes the id check`);
    }
  });
});

describe('isValidId', () => {
  const corpus = [
    '', '../../etc/passwd', '..%2f..%2fetc%2fpasswd', '/abs', 'a\u0000b', 'x'.repeat(10_000), '"quoted"',
    `"${generateId()}"`, '__proto__', 'constructor', 'hasOwnProperty', `${generateId()}=`, `${generateId().slice(0, 42)}+`,
    `${generateId().slice(0, 42)}B`, generateId().slice(0, 42), `${generateId()}A`,
  ];
  for (const id of corpus) {
    const name = JSON.stringify(id.slice(0, 40));
    it(`refuses ${name}`, () => assert.equal(isValidId(id), false, `${name} is not an id the library could have issued`));
  }
});
