/** lib/json.ts: session values are JSON values, copied on the way in and out. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_DEPTH, cloneJson, entryBytes, newRecord, setOwn, toJsonValue, valueBytes } from '../lib/json.js';
import type { JsonValue } from '../lib/storage/storage.js';

describe('toJsonValue', () => {
  it('copies JSON values', () => {
    const input = { a: [1, 'two', true, null, { b: 2 }] };
    const out = toJsonValue(input, 'k');
    assert.deepEqual(out, input, 'the copy holds the same values');
    assert.notEqual(out, input, 'the copy is a new object');
    input.a.push(3);
    assert.equal((out as { a: unknown[] }).a.length, 5, 'a later change of the input does not reach the copy');
  });
  const bad: [string, unknown][] = [
    ['a function', () => 1], ['a symbol', Symbol('s')], ['a bigint', 1n], ['undefined', undefined], ['NaN', NaN],
    ['Infinity', Infinity], ['a Date', new Date()], ['a Map', new Map()], ['a nested function', { a: { b: () => 1 } }],
    ['a nested undefined', [1, undefined]], ['a class instance', new (class Foo {})()],
  ];
  for (const [name, value] of bad) {
    it(`refuses ${name}`, () =>
      assert.throws(
        () => toJsonValue(value, 'k'),
        (e: unknown) => e instanceof TypeError && /session value "k/.test(e.message),
        `${name} is refused with a TypeError naming the session key`,
      ));
  }
  it('refuses a cycle', () => {
    const a: Record<string, unknown> = {};
    a['self'] = { a };
    assert.throws(() => toJsonValue(a, 'k'), /cycle/, 'a value that contains itself is refused as a cycle');
  });
  it('accepts a value seen twice without a cycle', () => {
    const shared = { x: 1 };
    assert.deepEqual(toJsonValue({ a: shared, b: shared }, 'k'), { a: { x: 1 }, b: { x: 1 } }, 'one object under two keys is copied twice, not taken for a cycle');
  });
  it('refuses nesting deeper than the limit', () => {
    let deep: unknown = 1;
    for (let i = 0; i < MAX_DEPTH + 1; i++) deep = [deep];
    assert.throws(() => toJsonValue(deep, 'k'), /deeper/, 'a value nested past MAX_DEPTH is refused');
  });
  it('keeps a __proto__ key as data, never as a prototype', () => {
    const input = JSON.parse('{"__proto__":{"admin":true}}') as unknown;
    const out = toJsonValue(input, 'k') as Record<string, unknown>;
    assert.equal(Object.getPrototypeOf(out), Object.prototype, "the copy's prototype is still Object.prototype");
    assert.equal(out['admin'], undefined, 'the __proto__ value did not become inherited properties');
    assert.deepEqual(Object.keys(out), ['__proto__'], '__proto__ is kept as an own key');
    assert.equal(({} as Record<string, unknown>)['admin'], undefined, 'Object.prototype was not polluted');
    const nullProto = Object.create(null) as Record<string, unknown>;
    nullProto['x'] = 1;
    assert.deepEqual(toJsonValue(nullProto, 'k'), { x: 1 }, 'an object without a prototype is accepted as plain data');
  });
  it('clones objects and passes primitives through', () => {
    const v = { a: [1] };
    const c = cloneJson(v);
    assert.deepEqual(c, v, 'the clone holds the same values');
    assert.notEqual(c, v, 'the clone is a new object');
    assert.equal(cloneJson(5), 5, 'a number is passed through');
    assert.equal(cloneJson(undefined), undefined, 'undefined is passed through');
  });
});

describe('newRecord', () => {
  it('makes a record that inherits no name, and keeps __proto__ as its own key', () => {
    const r = newRecord();
    for (const name of ['toString', 'constructor', 'hasOwnProperty', 'valueOf', '__proto__', '__defineGetter__']) {
      assert.equal(name in r, false, `a new record inherits no ${name}`);
    }
    setOwn(r, '__proto__', { admin: true });
    setOwn(r, 'constructor', 1);
    assert.deepEqual(Object.keys(r), ['__proto__', 'constructor'], '__proto__ and constructor are own keys, in order');
    assert.equal((r as Record<string, unknown>)['admin'], undefined, 'the __proto__ value did not become inherited properties');
    assert.equal(JSON.stringify(r), '{"__proto__":{"admin":true},"constructor":1}', 'its JSON holds its own keys only');
    assert.equal(({} as Record<string, unknown>)['admin'], undefined, 'Object.prototype was not polluted');
  });
  it('gives records no common state: a key set on one is not seen on another', () => {
    const a = newRecord();
    setOwn(a, 'x', 1);
    assert.equal('x' in newRecord(), false, 'a key of one record is not inherited by the next');
    assert.ok(Object.isFrozen(Object.getPrototypeOf(a)), 'the prototype records share is frozen, so nothing can be added to it');
  });
  it('is taken by toJsonValue as a plain object', () => {
    const r = newRecord();
    setOwn(r, 'a', [1, { b: 2 }]);
    const out = toJsonValue(r, 'k');
    assert.deepEqual(out, { a: [1, { b: 2 }] }, 'a record is copied as a plain object, not refused as a class instance');
  });
});

describe('valueBytes and entryBytes', () => {
  const utf8 = (v: unknown): number => Buffer.byteLength(JSON.stringify(v));
  it("count a number's JSON bytes exactly, on both sides of every power of ten and past 1e21", () => {
    const numbers: number[] = [0, -0, 0.5, -0.5, 1e-7, 5e-324, 1.5e300, Number.MAX_VALUE, -Number.MAX_VALUE, Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER, 2 ** 53 + 2, 123456789012345680000, 1e21, -1e21, 1e21 - 65536, 1.0000000000000001e21, 1796090095391];
    for (let p = 1; p <= 1e22; p *= 10) numbers.push(p, p - 1, p + 1, -p, -(p - 1), p / 3, p + 0.5);
    for (const n of numbers) assert.equal(valueBytes(n), utf8(n), `valueBytes(${String(n)}) is the length of ${JSON.stringify(n)}`);
  });
  it('count every other JSON value, and a key beside it', () => {
    const values: JsonValue[] = ['', 'plain', 'quote"and\\back', 'é', '😀', '\u0000', '\u2028', true, false, null, [], [1, 'x'], { a: { b: [null] } }];
    for (const v of values) {
      assert.equal(valueBytes(v), utf8(v), `valueBytes(${JSON.stringify(v)})`);
      for (const k of ['k', 'ключ', '"', '\u0000created']) assert.equal(entryBytes(k, v), utf8({ [k]: v }) - 1, `entryBytes(${JSON.stringify(k)}, ${JSON.stringify(v)}) is "key":value and a comma`);
    }
  });
});
