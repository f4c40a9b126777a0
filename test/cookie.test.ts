import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  MAX_COOKIE_AGE_SECONDS,
  MAX_COOKIE_ATTRIBUTE_BYTES,
  MAX_COOKIE_NAME_VALUE_BYTES,
  MAX_COOKIE_PAIRS,
  parseCookie,
  serializeCookie,
  type CookieOptions,
} from '../lib/cookie.js';
import { prng } from './prng.js';

const DAY_MS = 86_400_000;

/** A null-prototype record with these own entries, the shape `parseCookie` returns. */
function rec(entries: ReadonlyArray<readonly [string, string]> = []): Record<string, string> {
  const out = Object.create(null) as Record<string, string>;
  for (const [k, v] of entries) out[k] = v;
  return out;
}

function pick<T>(rand: () => number, items: readonly T[]): T {
  return items[Math.floor(rand() * items.length)] as T;
}

/** A plain split-based parser with the documented semantics, as an oracle for the fast one. */
function referenceParse(header: string): Record<string, string> {
  const out = rec();
  const trim = (s: string): string => s.replace(/^[ \t]+/, '').replace(/[ \t]+$/, '');
  let pairs = 0;
  for (const segment of header.split(';')) {
    const eq = segment.indexOf('=');
    if (eq === -1) continue;
    if (++pairs > MAX_COOKIE_PAIRS) break;
    const name = trim(segment.slice(0, eq));
    if (name === '' || Object.hasOwn(out, name)) continue;
    let value = trim(segment.slice(eq + 1));
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    if (value.includes('%')) {
      try {
        value = decodeURIComponent(value);
      } catch {
        // a bad escape keeps the raw value
      }
    }
    out[name] = value;
  }
  return out;
}

describe('parseCookie', () => {
  const cases: ReadonlyArray<readonly [string, string, ReadonlyArray<readonly [string, string]>]> = [
    // RFC 6265 section 5.4 and section 3.1 examples
    ['one cookie (RFC 6265)', 'SID=31d4d96e407aad42', [['SID', '31d4d96e407aad42']]],
    ['two cookies (RFC 6265)', 'SID=31d4d96e407aad42; lang=en-US', [['SID', '31d4d96e407aad42'], ['lang', 'en-US']]],
    ['an empty header', '', []],
    ['pairs without a space', 'foo=bar;bar=baz', [['foo', 'bar'], ['bar', 'baz']]],
    ['an empty value', 'foo=', [['foo', '']]],
    ['a value holding =', 'foo=a=b==', [['foo', 'a=b==']]],
    // duplicates
    ['the first of duplicates', 'foo=bar; foo=baz', [['foo', 'bar']]],
    ['the first of duplicates even when empty', 'foo=; foo=baz', [['foo', '']]],
    ['duplicates after trimming', 'foo=1;  foo =2', [['foo', '1']]],
    // whitespace
    ['spaces around names and values', '  foo  =  bar  ;  baz = qux  ', [['foo', 'bar'], ['baz', 'qux']]],
    ['tabs around names and values', '\tfoo\t=\tbar\t;\tbaz=qux', [['foo', 'bar'], ['baz', 'qux']]],
    ['inner spaces', 'a b=c d', [['a b', 'c d']]],
    ['a value of spaces only', 'foo=   ', [['foo', '']]],
    // quotes
    ['a quoted value', 'foo="bar=123456789&name=Magic+Mouse"', [['foo', 'bar=123456789&name=Magic+Mouse']]],
    ['an empty quoted value', 'foo=""', [['foo', '']]],
    ['a quoted value with spaces outside', 'foo=  "bar"  ', [['foo', 'bar']]],
    ['spaces inside quotes', 'foo=" bar "', [['foo', ' bar ']]],
    ['a lone quote', 'foo="', [['foo', '"']]],
    ['an opening quote only', 'foo="bar', [['foo', '"bar']]],
    ['a closing quote only', 'foo=bar"', [['foo', 'bar"']]],
    ['three quotes', 'foo="""', [['foo', '"']]],
    // pairs without = and empty names
    ['a pair without =', 'foo=bar; flag; baz=qux', [['foo', 'bar'], ['baz', 'qux']]],
    ['only pairs without =', 'flag; other', []],
    ['an empty name', '=bar; foo=baz', [['foo', 'baz']]],
    ['a name of spaces', ' \t =bar; foo=baz', [['foo', 'baz']]],
    ['empty segments', ';;a=1;;;b=2;;', [['a', '1'], ['b', '2']]],
    ['a segment of spaces', 'a=1;   ; b=2', [['a', '1'], ['b', '2']]],
    // percent-decoding
    ['an escaped space', 'foo=%20bar', [['foo', ' bar']]],
    ['escaped UTF-8', 'foo=%E2%9C%93%F0%9F%98%80', [['foo', '✓😀']]],
    ['escaped separators', 'email=%20%22%2c%3b%2f', [['email', ' ",;/']]],
    ['a quoted escape', 'foo="%20"', [['foo', ' ']]],
    ['a bad escape', 'foo=%zz', [['foo', '%zz']]],
    ['a trailing %', 'foo=bar%', [['foo', 'bar%']]],
    ['truncated UTF-8', 'foo=%E2%9C', [['foo', '%E2%9C']]],
    ['a bad escape next to a good one', 'foo=%20%', [['foo', '%20%']]],
    ['a plus left alone', 'foo=a+b', [['foo', 'a+b']]],
    ['an encoded name left alone', 'a%20b=c', [['a%20b', 'c']]],
    // prototype names
    ['a __proto__ name', '__proto__=x', [['__proto__', 'x']]],
    ['prototype names', '__proto__=x; constructor=y; hasOwnProperty=z; toString=w; valueOf=v',
      [['__proto__', 'x'], ['constructor', 'y'], ['hasOwnProperty', 'z'], ['toString', 'w'], ['valueOf', 'v']]],
    ['the first of duplicate __proto__', '__proto__=a; __proto__=b', [['__proto__', 'a']]],
  ];

  for (const [title, header, entries] of cases) {
    it(`parses ${title}: ${JSON.stringify(header)}`, () => {
      assert.deepStrictEqual(parseCookie(header), rec(entries), `${title} parses to its cookies`);
    });
  }

  it('returns a fresh null-prototype record', () => {
    const a = parseCookie('a=1');
    const b = parseCookie('a=1');
    assert.equal(Object.getPrototypeOf(a), null, 'the record has no prototype');
    assert.notEqual(a, b, 'each call returns a new record');
    assert.equal(a['constructor'], undefined, 'constructor is not inherited');
    assert.equal(a['toString'], undefined, 'toString is not inherited');
    assert.equal(Object.getPrototypeOf(parseCookie(undefined)), null, 'the record for a missing header has no prototype either');
  });

  it('stores prototype names as own keys and leaves Object.prototype unchanged', () => {
    const before = Object.getOwnPropertyNames(Object.prototype).sort();
    const protoBefore = Object.getPrototypeOf(Object.prototype) as unknown;
    const cookies = parseCookie('__proto__=x; constructor=y; hasOwnProperty=z');
    assert.equal(Object.getPrototypeOf(cookies), null, 'the record holding prototype names has no prototype');
    assert.deepStrictEqual(Object.keys(cookies), ['__proto__', 'constructor', 'hasOwnProperty'], 'every prototype name is an own key, in header order');
    assert.ok(Object.hasOwn(cookies, '__proto__'), '__proto__ is an own key, not the prototype');
    assert.equal(cookies['__proto__'], 'x', '__proto__ holds its cookie value');
    assert.equal(cookies['constructor'], 'y', 'constructor holds its cookie value');
    assert.equal(cookies['hasOwnProperty'], 'z', 'hasOwnProperty holds its cookie value');
    assert.deepStrictEqual(Object.getOwnPropertyNames(Object.prototype).sort(), before, 'Object.prototype gained or lost no property');
    assert.equal(Object.getPrototypeOf(Object.prototype), protoBefore, "Object.prototype's own prototype is unchanged");
    const plain: Record<string, unknown> = {};
    assert.equal(plain['x'], undefined, 'a plain object did not inherit a cookie');
    assert.equal(typeof plain['hasOwnProperty'], 'function', 'a plain object still inherits hasOwnProperty');
  });

  const nonStrings: readonly unknown[] = [undefined, null, 42, true, {}, [], ['a=1'], Symbol('a=1'), () => 'a=1', new String('a=1')];
  for (const input of nonStrings) {
    it(`returns an empty record for non-string input: ${typeof input}`, () => {
      const cookies = parseCookie(input as string);
      assert.deepStrictEqual(cookies, rec(), `${typeof input} input gives an empty record`);
    });
  }

  describe('pair bound', () => {
    it(`examines at most MAX_COOKIE_PAIRS (${MAX_COOKIE_PAIRS}) pairs`, () => {
      const header = Array.from({ length: MAX_COOKIE_PAIRS + 10 }, (_, i) => `c${i}=${i}`).join('; ');
      const cookies = parseCookie(header);
      assert.equal(Object.keys(cookies).length, MAX_COOKIE_PAIRS, 'the cookies stop at MAX_COOKIE_PAIRS');
      assert.equal(cookies[`c${MAX_COOKIE_PAIRS - 1}`], String(MAX_COOKIE_PAIRS - 1), 'the last pair within the bound is kept');
      assert.equal(cookies[`c${MAX_COOKIE_PAIRS}`], undefined, 'the first pair past the bound is dropped');
    });

    it('counts pairs with an empty name', () => {
      assert.deepStrictEqual(parseCookie(`${'=x; '.repeat(MAX_COOKIE_PAIRS - 1)}a=1`), rec([['a', '1']]), 'a pair with an empty name counts: the last pair within the bound is kept');
      assert.deepStrictEqual(parseCookie(`${'=x; '.repeat(MAX_COOKIE_PAIRS)}a=1`), rec(), 'a pair with an empty name counts: the pair past the bound is dropped');
    });

    it('counts duplicates', () => {
      assert.deepStrictEqual(parseCookie(`${'a=1; '.repeat(MAX_COOKIE_PAIRS)}b=2`), rec([['a', '1']]), 'duplicates count toward the bound');
    });

    it('does not count segments without =', () => {
      assert.deepStrictEqual(parseCookie(`${'flag; '.repeat(MAX_COOKIE_PAIRS * 5)}a=1`), rec([['a', '1']]), 'segments without = are not pairs and do not count');
    });
  });

  describe('adversarial 16 KiB headers', () => {
    const N = 16_384;
    const cases: ReadonlyArray<readonly [string, string, ReadonlyArray<readonly [string, string]>]> = [
      ['semicolons', ';'.repeat(N), []],
      ['equals signs', '='.repeat(N), []],
      ['quotes', '"'.repeat(N), []],
      ['spaces', ' '.repeat(N), []],
      ['tabs', '\t'.repeat(N), []],
      ['percent signs', '%'.repeat(N), []],
      ['";="', ';='.repeat(N / 2), []],
      ['"=;"', '=;'.repeat(N / 2), []],
      ['a value of equals signs', `a${'='.repeat(N)}`, [['a', '='.repeat(N - 1)]]],
      ['a value of quotes', `a=${'"'.repeat(N)}`, [['a', '"'.repeat(N - 2)]]],
      ['a value of percent signs', `a=${'%'.repeat(N)}`, [['a', '%'.repeat(N)]]],
      ['a value of escapes', `a=${'%41'.repeat(N / 4)}`, [['a', 'A'.repeat(N / 4)]]],
      ['a value of bad escapes', `a=${'%E2'.repeat(N / 4)}`, [['a', '%E2'.repeat(N / 4)]]],
      ['spaces around a value', `a=${' '.repeat(N)}b${' '.repeat(N)}`, [['a', 'b']]],
      ['spaces around a name', `${' '.repeat(N)}a${' '.repeat(N)}=b`, [['a', 'b']]],
      ['a repeated pair', 'a=1; '.repeat(N / 5), [['a', '1']]],
      ['segments without = then a pair', `${'x;'.repeat(N / 2)}y=1`, [['y', '1']]],
      ['long segments without =', `${`${'x'.repeat(1000)};`.repeat(16)}y=1`, [['y', '1']]],
      ['one long name', `${'n'.repeat(N)}=1`, [['n'.repeat(N), '1']]],
    ];
    for (const [title, header, entries] of cases) {
      it(`parses ${title} without throwing`, () => {
        assert.deepStrictEqual(parseCookie(header), rec(entries), `${title}: the 16 KiB header parses to its cookies`);
      });
    }

    it('keeps only the first MAX_COOKIE_PAIRS distinct names', () => {
      const header = Array.from({ length: 3000 }, (_, i) => `k${i}=v`).join(';');
      assert.ok(header.length >= N, 'the header is at least 16 KiB');
      const cookies = parseCookie(header);
      assert.equal(Object.keys(cookies).length, MAX_COOKIE_PAIRS, '3 000 distinct names yield MAX_COOKIE_PAIRS cookies');
    });

    it('agrees with a reference parser on 5000 random headers up to 16 KiB', () => {
      const rand = prng(0x5eed);
      const alphabet = [';', ';', '=', '=', ' ', '\t', '"', '%', '%2', '%20', '%E2%9C%93', '%zz', 'a', 'b', 'x', 'é', '😀', ',', '\\'];
      for (let i = 0; i < 5000; i++) {
        const length = rand() < 0.05 ? Math.floor(rand() * N) : Math.floor(rand() * 80);
        let header = '';
        while (header.length < length) header += pick(rand, alphabet);
        const cookies = parseCookie(header);
        assert.equal(Object.getPrototypeOf(cookies), null, `random header #${i} parses to a record without a prototype`);
        assert.deepStrictEqual(cookies, referenceParse(header), `header ${JSON.stringify(header)}`);
      }
    });
  });
});

describe('serializeCookie', () => {
  const now = Date.now();
  const soon = new Date(now + 399 * DAY_MS);
  const cases: ReadonlyArray<readonly [string, string, string, CookieOptions | undefined, string]> = [
    ['a plain pair', 'foo', 'bar', undefined, 'foo=bar'],
    ['empty options', 'foo', 'bar', {}, 'foo=bar'],
    ['options left undefined', 'foo', 'bar', { maxAge: undefined, path: undefined, secure: undefined, sameSite: undefined }, 'foo=bar'],
    ['an empty value', 'foo', '', undefined, 'foo='],
    ['every tchar in a name', "!#$%&'*+-.^_`|~09AZaz", 'v', undefined, "!#$%&'*+-.^_`|~09AZaz=v"],
    ['every safe cookie-octet as is', 'a', "!#$&'()*+-./:<=>?@[]^_`{|}~09AZaz", undefined, "a=!#$&'()*+-./:<=>?@[]^_`{|}~09AZaz"],
    ['a space encoded', 'foo', 'a b', undefined, 'foo=a%20b'],
    ['a semicolon encoded', 'foo', 'a;b', undefined, 'foo=a%3Bb'],
    ['CR, LF and NUL encoded', 'foo', 'a\r\nb\0', undefined, 'foo=a%0D%0Ab%00'],
    ['a percent sign encoded', 'foo', '100%', undefined, 'foo=100%25'],
    ['an escape-like value encoded', 'foo', '%41', undefined, 'foo=%2541'],
    ['quotes encoded', 'foo', '"bar"', undefined, 'foo=%22bar%22'],
    ['a comma and backslash encoded', 'foo', 'a,b\\c', undefined, 'foo=a%2Cb%5Cc'],
    ['emoji encoded', 'foo', '😀', undefined, 'foo=%F0%9F%98%80'],
    // Max-Age
    ['Max-Age=0', 'foo', 'bar', { maxAge: 0 }, 'foo=bar; Max-Age=0'],
    ['Max-Age in seconds', 'foo', 'bar', { maxAge: 3600 }, 'foo=bar; Max-Age=3600'],
    ['Max-Age of 400 days', 'foo', 'bar', { maxAge: MAX_COOKIE_AGE_SECONDS }, 'foo=bar; Max-Age=34560000'],
    // Domain
    ['a Domain', 'foo', 'bar', { domain: 'example.com' }, 'foo=bar; Domain=example.com'],
    ['a Domain with a leading dot', 'foo', 'bar', { domain: '.example.com' }, 'foo=bar; Domain=.example.com'],
    ['a deep Domain', 'foo', 'bar', { domain: 'a-1.sub.example.co.uk' }, 'foo=bar; Domain=a-1.sub.example.co.uk'],
    ['a one-label Domain', 'foo', 'bar', { domain: 'localhost' }, 'foo=bar; Domain=localhost'],
    ['an upper-case Domain', 'foo', 'bar', { domain: 'EXAMPLE.com' }, 'foo=bar; Domain=EXAMPLE.com'],
    ['a 63-character label', 'foo', 'bar', { domain: `${'a'.repeat(63)}.com` }, `foo=bar; Domain=${'a'.repeat(63)}.com`],
    // Path
    ['Path=/', 'foo', 'bar', { path: '/' }, 'foo=bar; Path=/'],
    ['a deep Path', 'foo', 'bar', { path: '/a/b/' }, 'foo=bar; Path=/a/b/'],
    ['a Path with a space and printable characters', 'foo', 'bar', { path: '/a b/~u/%20/=,"' }, 'foo=bar; Path=/a b/~u/%20/=,"'],
    ['a Path of 1024 characters', 'foo', 'bar', { path: `/${'p'.repeat(1023)}` }, `foo=bar; Path=/${'p'.repeat(1023)}`],
    // Expires
    ['Expires at the epoch', 'foo', 'bar', { expires: new Date(0) }, 'foo=bar; Expires=Thu, 01 Jan 1970 00:00:00 GMT'],
    ['Expires in 399 days', 'foo', 'bar', { expires: soon }, `foo=bar; Expires=${soon.toUTCString()}`],
    // flags
    ['HttpOnly', 'foo', 'bar', { httpOnly: true }, 'foo=bar; HttpOnly'],
    ['no HttpOnly', 'foo', 'bar', { httpOnly: false }, 'foo=bar'],
    ['Secure', 'foo', 'bar', { secure: true }, 'foo=bar; Secure'],
    ['no Secure', 'foo', 'bar', { secure: false }, 'foo=bar'],
    ['Partitioned', 'foo', 'bar', { partitioned: true, secure: true }, 'foo=bar; Secure; Partitioned'],
    ['no Partitioned', 'foo', 'bar', { partitioned: false }, 'foo=bar'],
    // Priority
    ['Priority=Low', 'foo', 'bar', { priority: 'low' }, 'foo=bar; Priority=Low'],
    ['Priority=Medium', 'foo', 'bar', { priority: 'Medium' }, 'foo=bar; Priority=Medium'],
    ['Priority=High', 'foo', 'bar', { priority: 'high' }, 'foo=bar; Priority=High'],
    // SameSite
    ['SameSite=Strict', 'foo', 'bar', { sameSite: 'strict' }, 'foo=bar; SameSite=Strict'],
    ['SameSite=Lax', 'foo', 'bar', { sameSite: 'Lax' }, 'foo=bar; SameSite=Lax'],
    ['SameSite=None with Secure', 'foo', 'bar', { sameSite: 'none', secure: true }, 'foo=bar; Secure; SameSite=None'],
    // prefixes
    ['a __Host- cookie', '__Host-sid', 'x', { secure: true, path: '/' }, '__Host-sid=x; Path=/; Secure'],
    ['a lower-case __host- cookie', '__host-sid', 'x', { secure: true, path: '/' }, '__host-sid=x; Path=/; Secure'],
    ['a __Secure- cookie', '__Secure-sid', 'x', { secure: true, domain: 'example.com', path: '/app' }, '__Secure-sid=x; Domain=example.com; Path=/app; Secure'],
    ['a name merely containing a prefix', 'a__Host-sid', 'x', {}, 'a__Host-sid=x'],
    // encode
    ['a custom encode', 'foo', 'bar', { encode: (v) => v.toUpperCase() }, 'foo=BAR'],
    ['a custom encode giving a quoted value', 'foo', 'bar', { encode: (v) => `"${v}"` }, 'foo="bar"'],
    // everything, in the documented order
    ['every attribute in order', '__Host-sid', 'abc', {
      sameSite: 'none', priority: 'high', partitioned: true, secure: true, httpOnly: true,
      expires: new Date(Date.UTC(2000, 0, 2, 3, 4, 5)), path: '/', maxAge: 60,
    }, '__Host-sid=abc; Max-Age=60; Path=/; Expires=Sun, 02 Jan 2000 03:04:05 GMT; HttpOnly; Secure; Partitioned; Priority=High; SameSite=None'],
    ['Domain before Path', 'foo', 'bar', { path: '/', domain: 'example.com', maxAge: 1 }, 'foo=bar; Max-Age=1; Domain=example.com; Path=/'],
  ];

  for (const [title, name, value, options, expected] of cases) {
    it(`serializes ${title}`, () => {
      assert.equal(options === undefined ? serializeCookie(name, value) : serializeCookie(name, value, options), expected, `${title} serializes to ${expected.slice(0, 80)}`);
    });
  }

  it('accepts a name and value of 4096 bytes together', () => {
    assert.equal(serializeCookie('n', 'v'.repeat(MAX_COOKIE_NAME_VALUE_BYTES - 1)), `n=${'v'.repeat(MAX_COOKIE_NAME_VALUE_BYTES - 1)}`, 'a name and value of 4096 bytes together are within the limit');
  });

  /** Asserts that `fn` throws a TypeError whose message matches `message`; `what` names the case. */
  function throwsTypeError(fn: () => unknown, message: RegExp, what: string): void {
    assert.throws(fn, (err: unknown) => {
      assert.ok(err instanceof TypeError, `expected a TypeError, got ${String(err)}`);
      assert.match(err.message, message, `${what}: the error says what is invalid`);
      return true;
    }, `${what} is refused with a TypeError`);
  }

  const bad = (name: string, value: string, options?: CookieOptions) => () => serializeCookie(name, value, options);
  const loose = <T>(value: unknown): T => value as T;
  const late = new Date(now + 401 * DAY_MS);

  const rejections: ReadonlyArray<readonly [string, () => unknown, RegExp]> = [
    // names
    ['an empty name', bad('', 'v'), /^cookie name is invalid: ""/],
    ['a name with a space', bad('a b', 'v'), /^cookie name is invalid: "a b"/],
    ['a name with ;', bad('a;b', 'v'), /^cookie name is invalid: "a;b"/],
    ['a name with CR LF', bad('a\r\nSet-Cookie: x', 'v'), /^cookie name is invalid: "a\\r\\nSet-Cookie: x"/],
    ['a name with NUL', bad('a\0', 'v'), /^cookie name is invalid: "a\\u0000"/],
    ['a name with =', bad('a=b', 'v'), /^cookie name is invalid/],
    ['a name with a comma', bad('a,b', 'v'), /^cookie name is invalid/],
    ['a name with a quote', bad('a"b', 'v'), /^cookie name is invalid/],
    ['a name with parentheses', bad('(a)', 'v'), /^cookie name is invalid/],
    ['a name with a tab', bad('a\tb', 'v'), /^cookie name is invalid/],
    ['a name with a non-ASCII letter', bad('é', 'v'), /^cookie name is invalid/],
    ['a name that is not a string', bad(loose(42), 'v'), /^cookie name is invalid: 42/],
    ['a long name, shortened in the message', bad(`${'a'.repeat(100)} `, 'v'), /^cookie name is invalid: "a{64}…"/],
    // values
    ['a value that is not a string', bad('n', loose(42)), /^cookie value is invalid: expected a string, not number/],
    ['a null value', bad('n', loose(null)), /^cookie value is invalid: expected a string, not null/],
    ['a lone high surrogate', bad('n', 'a\uD800'), /^cookie value is invalid: .*lone surrogate/],
    ['a lone low surrogate', bad('n', '\uDC00b'), /^cookie value is invalid: .*lone surrogate/],
    ['an encoded ;', bad('n', 'a;b', { encode: (v) => v }), /^cookie value is invalid/],
    ['an encoded CR LF', bad('n', 'a\r\nb', { encode: (v) => v }), /^cookie value is invalid/],
    ['an encoded NUL', bad('n', 'a\0', { encode: (v) => v }), /^cookie value is invalid/],
    ['an encoded space', bad('n', 'a b', { encode: (v) => v }), /^cookie value is invalid/],
    ['an encoded half-quoted value', bad('n', '"ab', { encode: (v) => v }), /^cookie value is invalid/],
    ['an encode returning a non-string', bad('n', 'a', { encode: loose(() => 1) }), /^cookie value is invalid/],
    ['a name and value over 4096 bytes', bad('n', 'v'.repeat(MAX_COOKIE_NAME_VALUE_BYTES)), /^cookie value is invalid: .*4097 bytes/],
    // Path
    ['a Path without a leading /', bad('n', 'v', { path: 'a' }), /^option path is invalid: "a"/],
    ['an empty Path', bad('n', 'v', { path: '' }), /^option path is invalid: ""/],
    ['a Path with ;', bad('n', 'v', { path: '/a;b' }), /^option path is invalid: "\/a;b"/],
    ['a Path with CR LF', bad('n', 'v', { path: '/\r\nSet-Cookie: x=y' }), /^option path is invalid/],
    ['a Path with NUL', bad('n', 'v', { path: '/a\0' }), /^option path is invalid/],
    ['a Path with DEL', bad('n', 'v', { path: '/a\u007f' }), /^option path is invalid/],
    ['a Path with a tab', bad('n', 'v', { path: '/a\tb' }), /^option path is invalid/],
    ['a Path with non-ASCII', bad('n', 'v', { path: '/é' }), /^option path is invalid/],
    ['a Path over 1024 bytes', bad('n', 'v', { path: `/${'p'.repeat(MAX_COOKIE_ATTRIBUTE_BYTES)}` }), /^option path is invalid/],
    ['a Path that is not a string', bad('n', 'v', { path: loose(1) }), /^option path is invalid: 1/],
    // Domain
    ['an empty Domain', bad('n', 'v', { domain: '' }), /^option domain is invalid: ""/],
    ['a Domain of a dot', bad('n', 'v', { domain: '.' }), /^option domain is invalid/],
    ['a Domain with ;', bad('n', 'v', { domain: 'example.com;' }), /^option domain is invalid: "example.com;"/],
    ['a Domain with CR LF', bad('n', 'v', { domain: 'example.com\r\nX: y' }), /^option domain is invalid/],
    ['a Domain with NUL', bad('n', 'v', { domain: 'example.com\0' }), /^option domain is invalid/],
    ['a Domain with a space', bad('n', 'v', { domain: 'exa mple.com' }), /^option domain is invalid/],
    ['a Domain with a leading hyphen', bad('n', 'v', { domain: '-example.com' }), /^option domain is invalid/],
    ['a Domain label ending in a hyphen', bad('n', 'v', { domain: 'example-.com' }), /^option domain is invalid/],
    ['a Domain with an empty label', bad('n', 'v', { domain: 'example..com' }), /^option domain is invalid/],
    ['a Domain with two leading dots', bad('n', 'v', { domain: '..example.com' }), /^option domain is invalid/],
    ['a Domain with a trailing dot', bad('n', 'v', { domain: 'example.com.' }), /^option domain is invalid/],
    ['a Domain with an underscore', bad('n', 'v', { domain: 'ex_ample.com' }), /^option domain is invalid/],
    ['a Domain with non-ASCII', bad('n', 'v', { domain: 'bücher.de' }), /^option domain is invalid/],
    ['a Domain with a port', bad('n', 'v', { domain: 'example.com:80' }), /^option domain is invalid/],
    ['a Domain label of 64 characters', bad('n', 'v', { domain: `${'a'.repeat(64)}.com` }), /^option domain is invalid/],
    ['a Domain over 253 characters', bad('n', 'v', { domain: `${'a'.repeat(63)}.`.repeat(4) + 'com' }), /^option domain is invalid/],
    ['a null Domain', bad('n', 'v', { domain: loose(null) }), /^option domain is invalid: null/],
    ['a Domain that is not a string', bad('n', 'v', { domain: loose(['example.com']) }), /^option domain is invalid: an object/],
    // Max-Age
    ['a fractional Max-Age', bad('n', 'v', { maxAge: 1.5 }), /^option maxAge is invalid: 1.5/],
    ['a negative Max-Age', bad('n', 'v', { maxAge: -1 }), /^option maxAge is invalid: -1/],
    ['a NaN Max-Age', bad('n', 'v', { maxAge: NaN }), /^option maxAge is invalid: NaN/],
    ['an infinite Max-Age', bad('n', 'v', { maxAge: Infinity }), /^option maxAge is invalid: Infinity/],
    ['a Max-Age over 400 days', bad('n', 'v', { maxAge: MAX_COOKIE_AGE_SECONDS + 1 }), /^option maxAge is invalid: 34560001/],
    ['a Max-Age that is a string', bad('n', 'v', { maxAge: loose('60') }), /^option maxAge is invalid: "60"/],
    // Expires
    ['an invalid Date', bad('n', 'v', { expires: new Date(NaN) }), /^option expires is invalid: Invalid Date/],
    ['Expires as a string', bad('n', 'v', { expires: loose('2030-01-01') }), /^option expires is invalid: "2030-01-01"/],
    ['Expires as a number', bad('n', 'v', { expires: loose(now) }), /^option expires is invalid/],
    ['Expires over 400 days ahead', bad('n', 'v', { expires: late }), new RegExp(`^option expires is invalid: ${late.toISOString()} \\(more than 400 days`)],
    // SameSite and Priority
    ['an unknown SameSite', bad('n', 'v', { sameSite: loose('Sometimes') }), /^option sameSite is invalid: "Sometimes"/],
    ['an upper-case SameSite', bad('n', 'v', { sameSite: loose('STRICT') }), /^option sameSite is invalid: "STRICT"/],
    ['SameSite true', bad('n', 'v', { sameSite: loose(true) }), /^option sameSite is invalid: true/],
    ['SameSite as a function', bad('n', 'v', { sameSite: loose(() => 'Lax') }), /^option sameSite is invalid: a function/],
    ['SameSite=None without Secure', bad('n', 'v', { sameSite: 'None' }), /^option sameSite is invalid: "None" \(.*secure/],
    ['SameSite=none with Secure false', bad('n', 'v', { sameSite: 'none', secure: false }), /^option sameSite is invalid: "none"/],
    ['an unknown Priority', bad('n', 'v', { priority: loose('urgent') }), /^option priority is invalid: "urgent"/],
    ['an upper-case Priority', bad('n', 'v', { priority: loose('LOW') }), /^option priority is invalid: "LOW"/],
    // Partitioned and flags
    ['Partitioned without Secure', bad('n', 'v', { partitioned: true }), /^option partitioned is invalid: true \(.*secure/],
    ['Partitioned with Secure false', bad('n', 'v', { partitioned: true, secure: false }), /^option partitioned is invalid/],
    ['Secure that is not a boolean', bad('n', 'v', { secure: loose('true') }), /^option secure is invalid: "true"/],
    ['HttpOnly that is not a boolean', bad('n', 'v', { httpOnly: loose(1) }), /^option httpOnly is invalid: 1/],
    ['Partitioned that is not a boolean', bad('n', 'v', { partitioned: loose('yes') }), /^option partitioned is invalid: "yes"/],
    // prefixes
    ['__Host- without Secure', bad('__Host-sid', 'v', { path: '/' }), /^option secure is invalid: undefined \(a "__Host-"/],
    ['__Host- with Secure false', bad('__Host-sid', 'v', { path: '/', secure: false }), /^option secure is invalid: false/],
    ['__Host- with a Domain', bad('__Host-sid', 'v', { path: '/', secure: true, domain: 'example.com' }), /^option domain is invalid: "example.com" \(a "__Host-"/],
    ['__Host- with a Path other than /', bad('__Host-sid', 'v', { path: '/app', secure: true }), /^option path is invalid: "\/app" \(a "__Host-"/],
    ['__Host- without a Path', bad('__Host-sid', 'v', { secure: true }), /^option path is invalid: undefined \(a "__Host-"/],
    ['__host- (lower case) without Secure', bad('__host-sid', 'v', { path: '/' }), /^option secure is invalid/],
    ['__Secure- without Secure', bad('__Secure-sid', 'v'), /^option secure is invalid: undefined \(a "__Secure-"/],
    ['__SECURE- (upper case) without Secure', bad('__SECURE-sid', 'v', { secure: false }), /^option secure is invalid: false/],
  ];

  for (const [title, fn, message] of rejections) {
    it(`rejects ${title}`, () => {
      throwsTypeError(fn, message, title);
    });
  }

  it('never shows the value in an error message', () => {
    for (const fn of [bad('n', 'top-secret\uD800'), bad('n', 'top-secret;x', { encode: (v) => v }), bad('n', `top-secret${'v'.repeat(5000)}`)]) {
      assert.throws(fn, (err: unknown) => err instanceof TypeError && !err.message.includes('top-secret'), 'the refusal of a value never quotes the value');
    }
  });

  it('lets an error thrown by a custom encode through', () => {
    const boom = new Error('boom');
    assert.throws(bad('n', 'v', { encode: () => { throw boom; } }), (err: unknown) => err === boom, "an encode function's own error reaches the caller unchanged");
  });
});

describe('parseCookie(serializeCookie(n, v))', () => {
  const TCHARS = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  const SPECIALS = [' ', ' ', ';', '"', '%', ',', '\\', '=', '\t', '\r', '\n', '\0', '%41', '%zz', '%E2', '+', '\u007f'];
  const UNICODE = ['é', 'ß', '中文', '€', '😀', '👍🏽', '🏳️‍🌈', '\u2028', '\uFEFF', '\u00a0'];

  function randomName(rand: () => number): string {
    const length = 1 + Math.floor(rand() * 20);
    let name = '';
    for (let i = 0; i < length; i++) name += pick(rand, [...TCHARS]);
    return name;
  }

  /** A string of ASCII, separators, escapes, emoji and random code points, never a lone surrogate. */
  function randomValue(rand: () => number): string {
    const length = Math.floor(rand() * 40);
    let value = rand() < 0.1 ? '"' : '';
    for (let i = 0; i < length; i++) {
      const r = rand();
      if (r < 0.35) value += String.fromCharCode(0x20 + Math.floor(rand() * 95));
      else if (r < 0.6) value += pick(rand, SPECIALS);
      else if (r < 0.75) value += pick(rand, UNICODE);
      else if (r < 0.9) {
        // A BMP code unit outside the surrogates D800-DFFF.
        const code = Math.floor(rand() * 0xf800);
        value += String.fromCharCode(code < 0xd800 ? code : code + 0x800);
      } else value += String.fromCodePoint(0x10000 + Math.floor(rand() * 0x100000));
    }
    if (value.startsWith('"') && rand() < 0.5) value += '"';
    return value;
  }

  const attributes: CookieOptions = { maxAge: 60, path: '/', httpOnly: true, secure: true, sameSite: 'lax', priority: 'high' };

  it('round-trips 5000 random pairs, alone and with attributes', () => {
    const rand = prng(20_240_917);
    for (let i = 0; i < 5000; i++) {
      const name = randomName(rand);
      const value = randomValue(rand);
      const header = serializeCookie(name, value);
      assert.match(header, /^[\x21-\x7e]*$/, 'a bare pair is printable ASCII without spaces');
      assert.equal(parseCookie(header)[name], value, `${JSON.stringify(name)} = ${JSON.stringify(value)}`);
      const full = serializeCookie(name, value, attributes);
      assert.ok(full.startsWith(`${header}; `), `${JSON.stringify(name)}: the attributes follow the bare pair`);
      assert.match(full, /^[\x20-\x7e]*$/, 'no control characters');
      assert.equal(parseCookie(full)[name], value, `${JSON.stringify(name)} = ${JSON.stringify(value)} round-trips with attributes`);
      assert.equal(parseCookie(`other=1; ${header}; ${name}=shadowed`)[name], name === 'other' ? '1' : value, `${JSON.stringify(name)}: the first of duplicate names wins, after another cookie`);
    }
  });

  it('round-trips names that look like prototype members', () => {
    for (const name of ['__proto__', 'constructor', 'hasOwnProperty', 'toString', 'valueOf']) {
      const cookies = parseCookie(serializeCookie(name, 'v; "x" %'));
      assert.equal(cookies[name], 'v; "x" %', `a cookie named ${name} round-trips with separators and quotes in its value`);
      assert.ok(Object.hasOwn(cookies, name), `${name} is an own key`);
    }
  });

  it('rejects 500 random values holding a lone surrogate', () => {
    const rand = prng(7);
    for (let i = 0; i < 500; i++) {
      const value = randomValue(rand);
      const at = Math.floor(rand() * (value.length + 1));
      const lone = String.fromCharCode(0xd800 + Math.floor(rand() * 0x800));
      // Split at a code point boundary so the inserted unit stays alone.
      const cut = at > 0 && at < value.length && /[\uDC00-\uDFFF]/.test(value.charAt(at)) ? at + 1 : at;
      const broken = value.slice(0, cut) + lone + (/[\uDC00-\uDFFF]/.test(lone) ? '' : 'x') + value.slice(cut);
      assert.throws(() => serializeCookie('n', broken), (err: unknown) => err instanceof TypeError && /lone surrogate/.test(err.message), `a value with a lone surrogate (#${i}) is refused with a TypeError`);
    }
  });
});
