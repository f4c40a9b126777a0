/** lib/duration.ts: durations in options (milliseconds or '90s'-style strings), and how a bad value is described. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { describe as describeValue, parseDuration } from '../lib/duration.js';

describe('parseDuration', () => {
  const good: [unknown, number][] = [
    [1500, 1500], ['500ms', 500], ['90s', 90_000], ['1m', 60_000], ['24h', 86_400_000], ['7d', 604_800_000], ['1.5s', 1500],
  ];
  for (const [value, ms] of good) {
    it(`reads ${String(value)}`, () => assert.equal(parseDuration(value, 'x'), ms, `${String(value)} is ${ms} ms`));
  }
  const bad: unknown[] = [0, 0.4, '0.2ms', -1, NaN, Infinity, '1', '1w', ' 1m', '1m ', '-1m', 'abc', null, undefined, {}, '0s', 1e16];
  for (const value of bad) {
    it(`refuses ${describeValue(value)}`, () =>
      assert.throws(
        () => parseDuration(value, 'sessionMaxAge'),
        (e: unknown) => e instanceof TypeError && /option sessionMaxAge is invalid/.test(e.message),
        `${describeValue(value)} is refused with a TypeError naming the option`,
      ));
  }
  it('accepts zero when asked', () => {
    assert.equal(parseDuration(0, 'x', true), 0, 'the number 0 is allowed when zero is');
    assert.equal(parseDuration('0s', 'x', true), 0, "the string '0s' is allowed when zero is");
  });
  it('describes values safely', () => {
    assert.equal(describeValue('x'.repeat(100)).length, 67, 'a long string is cut short in a message');
    assert.equal(describeValue(() => 1), 'a function', 'a function is named by its kind, never its source');
    assert.equal(describeValue([]), 'an array', 'an array is named by its kind');
    assert.equal(describeValue({}), 'an object', 'an object is named by its kind, never its contents');
    assert.equal(describeValue(Symbol('s')), 'Symbol(s)', 'a symbol is shown without throwing');
    assert.equal(describeValue(10n), '10', 'a bigint is shown as its digits');
  });
});
