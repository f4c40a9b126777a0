/**
 * The session file format (lib/storage/file/format.ts), as pure functions: the header, its
 * limits, and what a body must be to read as a session.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_DEPTH } from '../../../lib/json.js';
import { DAY_MS, EXPIRY_SLACK_MS, HEADER_SIZE, MAX_AGE_MS, header, parseFile, parseHeader } from '../../../lib/storage/file/format.js';

const NOW = 1_700_000_000_000;

describe('the session file format', () => {
  it('writes a 21-byte header: the magic, 16 zero-padded digits of the expiry, a newline', () => {
    assert.equal(HEADER_SIZE, 21, 'the header size is fixed, so the sweep reads exactly that many bytes');
    assert.equal(header(NOW), 'BS1 0001700000000000\n', 'the expiry in milliseconds, zero-padded to 16 digits');
    assert.equal(header(NOW + 0.9), 'BS1 0001700000000000\n', 'a fractional expiry is cut to whole milliseconds');
    assert.equal(header(-5), 'BS1 0000000000000000\n', 'a negative expiry is written as 0, never as a minus sign');
    assert.equal(Buffer.byteLength(header(NOW)), HEADER_SIZE, 'the header is HEADER_SIZE bytes');
  });

  it('reads back the expiry of every header it writes', () => {
    for (const at of [0, 1, NOW, NOW + MAX_AGE_MS]) {
      assert.equal(parseHeader(Buffer.from(header(at)), NOW), at, `the expiry ${at} round-trips`);
    }
    assert.equal(parseHeader(Buffer.from(`${header(NOW)}{"a":1}`), NOW), NOW, 'a body after the header is not looked at');
  });

  it('refuses a header this library could not have written, saying why', () => {
    const bad: [string, string, RegExp][] = [
      ['an empty file', '', /^is empty$/],
      ['a partial header', 'BS1 00017', /corrupt or of an unknown format/],
      ['another magic', 'BS2 0001700000000000\n', /corrupt or of an unknown format/],
      ['no newline after the digits', 'BS1 0001700000000000 {}', /corrupt or of an unknown format/],
      ['a letter among the digits', 'BS1 00017000000000x0\n', /corrupt or of an unknown format/],
      ['a sign among the digits', 'BS1 -001700000000000\n', /corrupt or of an unknown format/],
      ['an expiry past 400 days and the clock slack', header(NOW + MAX_AGE_MS + EXPIRY_SLACK_MS + 1), /an expiry time no session can have/],
      ['an expiry past what a Date can hold', 'BS1 9999999999999999\n', /an expiry time no session can have/],
    ];
    for (const [what, text, why] of bad) {
      const result = parseHeader(Buffer.from(text), NOW);
      assert.equal(typeof result, 'string', `${what} is refused`);
      assert.match(String(result), why, `${what}: the reason says what is wrong`);
    }
    assert.equal(parseHeader(Buffer.from(header(NOW + MAX_AGE_MS + EXPIRY_SLACK_MS)), NOW), NOW + MAX_AGE_MS + EXPIRY_SLACK_MS, 'the furthest expiry a clock a minute behind could have written is accepted');
    assert.equal(MAX_AGE_MS, 400 * DAY_MS, 'no session lives longer than 400 days, as browsers cap cookies');
  });

  it('parses a whole file into its expiry and its JSON object, keys named like prototype members as plain data', () => {
    const parsed = parseFile(Buffer.from(`${header(NOW)}{"user":"ann","n":[1,{"x":null}],"__proto__":{"admin":true}}`), NOW);
    assert.ok(typeof parsed === 'object', 'a file this library wrote parses');
    assert.equal(parsed.expiresAt, NOW, 'with its expiry');
    assert.equal(parsed.data['user'], 'ann', 'and its data');
    assert.deepEqual(parsed.data['n'], [1, { x: null }], 'nested values included');
    assert.ok(Object.hasOwn(parsed.data, '__proto__'), '__proto__ is an own key of the data');
    assert.equal((parsed.data as { admin?: unknown }).admin, undefined, 'it grants nothing through the prototype');
    assert.deepEqual(parseFile(Buffer.from(`${header(NOW)}{"é":"☃"}`), NOW), { expiresAt: NOW, data: { é: '☃' } }, 'a UTF-8 body parses');
  });

  it('refuses a body that is not a JSON object, or nests deeper than a value may', () => {
    const head = header(NOW);
    const deep = (levels: number): string => `{"v":${'['.repeat(levels)}${']'.repeat(levels)}}`;
    const bad: [string, string, RegExp][] = [
      ['no body', head, /corrupt/],
      ['a torn body', `${head}{"a": 1,`, /corrupt/],
      ['a JSON array', `${head}[1,2]`, /corrupt/],
      ['JSON null', `${head}null`, /corrupt/],
      ['a JSON string', `${head}"text"`, /corrupt/],
      ['a bad header before a good body', `BS1 x\n{}`, /corrupt/],
      ['a value one level deeper than MAX_DEPTH', `${head}${deep(MAX_DEPTH + 1)}`, new RegExp(`nests deeper than ${MAX_DEPTH} levels`)],
      ['a body nested past the stack', `${head}${'['.repeat(200_000)}`, /corrupt/],
    ];
    for (const [what, text, why] of bad) {
      const result = parseFile(Buffer.from(text), NOW);
      assert.equal(typeof result, 'string', `${what} is refused`);
      assert.match(String(result), why, `${what}: the reason says what is wrong`);
    }
    assert.equal(typeof parseFile(Buffer.from(`${head}${deep(MAX_DEPTH)}`), NOW), 'object', 'a value exactly MAX_DEPTH deep is accepted');
  });
});
