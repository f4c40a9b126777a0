import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { describe as describeValue, parseDuration } from '../lib/duration.js';
import { HttpError, SessionError, StorageError } from '../lib/errors.js';
import { generateId, isValidId } from '../lib/id.js';
import { MAX_DEPTH, cloneJson, toJsonValue } from '../lib/json.js';

describe('generateId', () => {
  it('makes 10^5 distinct ids of 32 random bytes in base64url', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 100_000; i++) {
      const id = generateId();
      assert.equal(id.length, 43);
      seen.add(id);
    }
    assert.equal(seen.size, 100_000);
    for (const id of [...seen].slice(0, 1000)) {
      assert.equal(Buffer.from(id, 'base64url').length, 32);
      assert.ok(isValidId(id));
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
    it(`refuses ${JSON.stringify(id.slice(0, 40))}`, () => assert.equal(isValidId(id), false));
  }
});

describe('parseDuration', () => {
  const good: [unknown, number][] = [
    [1500, 1500], ['500ms', 500], ['90s', 90_000], ['1m', 60_000], ['24h', 86_400_000], ['7d', 604_800_000], ['1.5s', 1500],
  ];
  for (const [value, ms] of good) it(`reads ${String(value)}`, () => assert.equal(parseDuration(value, 'x'), ms));
  const bad: unknown[] = [0, 0.4, '0.2ms', -1, NaN, Infinity, '1', '1w', ' 1m', '1m ', '-1m', 'abc', null, undefined, {}, '0s', 1e16];
  for (const value of bad) {
    it(`refuses ${describeValue(value)}`, () =>
      assert.throws(() => parseDuration(value, 'sessionMaxAge'), (e: unknown) => e instanceof TypeError && /option sessionMaxAge is invalid/.test(e.message)));
  }
  it('accepts zero when asked', () => {
    assert.equal(parseDuration(0, 'x', true), 0);
    assert.equal(parseDuration('0s', 'x', true), 0);
  });
  it('describes values safely', () => {
    assert.equal(describeValue('x'.repeat(100)).length, 67);
    assert.equal(describeValue(() => 1), 'a function');
    assert.equal(describeValue([]), 'an array');
    assert.equal(describeValue({}), 'an object');
    assert.equal(describeValue(Symbol('s')), 'Symbol(s)');
    assert.equal(describeValue(10n), '10');
  });
});

describe('errors', () => {
  it('carry a code, a status and the cause', () => {
    const cause = new Error('disk');
    const e = new StorageError('could not write', { cause });
    assert.ok(e instanceof SessionError);
    assert.equal(e.code, 'ESTORAGE');
    assert.equal(e.status, 503);
    assert.equal(e.cause, cause);
    assert.equal(e.name, 'StorageError');
    const h = new HttpError(404);
    assert.equal(h.message, 'Not Found');
    assert.equal(h.expose, true);
    assert.equal(h.code, 'EHTTP404');
    assert.equal(new HttpError(502).expose, false);
    assert.equal(new HttpError(599).message, 'Error');
    assert.throws(() => new HttpError(200), TypeError);
    assert.equal(new SessionError('x').status, 500);
  });
});

describe('toJsonValue', () => {
  it('copies JSON values', () => {
    const input = { a: [1, 'two', true, null, { b: 2 }] };
    const out = toJsonValue(input, 'k');
    assert.deepEqual(out, input);
    assert.notEqual(out, input);
    input.a.push(3);
    assert.equal((out as { a: unknown[] }).a.length, 5);
  });
  const bad: [string, unknown][] = [
    ['a function', () => 1], ['a symbol', Symbol('s')], ['a bigint', 1n], ['undefined', undefined], ['NaN', NaN],
    ['Infinity', Infinity], ['a Date', new Date()], ['a Map', new Map()], ['a nested function', { a: { b: () => 1 } }],
    ['a nested undefined', [1, undefined]], ['a class instance', new (class Foo {})()],
  ];
  for (const [name, value] of bad) {
    it(`refuses ${name}`, () => assert.throws(() => toJsonValue(value, 'k'), (e: unknown) => e instanceof TypeError && /session value "k/.test(e.message)));
  }
  it('refuses a cycle', () => {
    const a: Record<string, unknown> = {};
    a['self'] = { a };
    assert.throws(() => toJsonValue(a, 'k'), /cycle/);
  });
  it('accepts a value seen twice without a cycle', () => {
    const shared = { x: 1 };
    assert.deepEqual(toJsonValue({ a: shared, b: shared }, 'k'), { a: { x: 1 }, b: { x: 1 } });
  });
  it('refuses nesting deeper than the limit', () => {
    let deep: unknown = 1;
    for (let i = 0; i < MAX_DEPTH + 1; i++) deep = [deep];
    assert.throws(() => toJsonValue(deep, 'k'), /deeper/);
  });
  it('keeps a __proto__ key as data, never as a prototype', () => {
    const input = JSON.parse('{"__proto__":{"admin":true}}') as unknown;
    const out = toJsonValue(input, 'k') as Record<string, unknown>;
    assert.equal(Object.getPrototypeOf(out), Object.prototype);
    assert.equal(out['admin'], undefined);
    assert.deepEqual(Object.keys(out), ['__proto__']);
    assert.equal(({} as Record<string, unknown>)['admin'], undefined);
    const nullProto = Object.create(null) as Record<string, unknown>;
    nullProto['x'] = 1;
    assert.deepEqual(toJsonValue(nullProto, 'k'), { x: 1 });
  });
  it('clones objects and passes primitives through', () => {
    const v = { a: [1] };
    const c = cloneJson(v);
    assert.deepEqual(c, v);
    assert.notEqual(c, v);
    assert.equal(cloneJson(5), 5);
    assert.equal(cloneJson(undefined), undefined);
  });
});
