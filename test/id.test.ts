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

describe('isValidId against its definition', () => {
  // The definition the check implements, written another way: 43 base64url characters whose
  // last carries 2 zero padding bits.
  const reference = (id: string): boolean => /^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/.test(id);
  const base = 'A'.repeat(43);
  it('agrees on every character up to U+017F, and some beyond, at every position', () => {
    // Beyond: characters whose low byte is a base64url one (U+2041, U+FF21), a lone surrogate, U+FFFF.
    const codes = [...Array.from({ length: 0x180 }, (_, c) => c), 0x2041, 0xff21, 0xd800, 0xffff];
    let checked = 0;
    for (let at = 0; at < 43; at++) {
      for (const code of codes) {
        const id = base.slice(0, at) + String.fromCharCode(code) + base.slice(at + 1);
        assert.equal(isValidId(id), reference(id), `${JSON.stringify(id)}: the check and its definition disagree (U+${code.toString(16)} at ${at})`);
        checked++;
      }
    }
    assert.equal(checked, 43 * codes.length, 'every position and character was checked');
  });
  it('agrees on every length from 0 to 50', () => {
    for (let n = 0; n <= 50; n++) {
      const id = 'w'.repeat(n);
      assert.equal(isValidId(id), reference(id), `an id of ${n} characters: the check and its definition disagree`);
    }
  });
  it('refuses what is not a string, without throwing', () => {
    for (const value of [undefined, null, 43, {}, ['A'.repeat(43)], { length: 43 }]) {
      assert.equal(isValidId(value as unknown as string), false, `${JSON.stringify(value)} is not an id`);
    }
  });
});
