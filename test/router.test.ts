import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Router, compile, joinPath } from '../lib/router.js';

function table(): Router<string> {
  const r = new Router<string>();
  r.add('GET', '/', 'root');
  r.add('GET', '/users', 'list');
  r.add('POST', '/users', 'create');
  r.add('GET', '/users/:id', 'show');
  r.add('DELETE', '/users/:id', 'remove');
  r.add('GET', '/users/:id/posts/:post', 'post');
  r.add('ALL', '/any', 'any');
  r.add('GET', '/files/*', 'files');
  r.add('HEAD', '/head-only', 'head');
  return r;
}

describe('Router.find', () => {
  const r = table();
  const found: [string, string, string, Record<string, string>][] = [
    ['GET', '/', 'root', {}],
    ['GET', '/users', 'list', {}],
    ['GET', '/users/', 'list', {}],
    ['GET', '//users', 'list', {}],
    ['POST', '/users', 'create', {}],
    ['GET', '/users/42', 'show', { id: '42' }],
    ['GET', '/users/42/', 'show', { id: '42' }],
    ['DELETE', '/users/7', 'remove', { id: '7' }],
    ['GET', '/users/a%20b', 'show', { id: 'a b' }],
    ['GET', '/users/%E0%A4%A', 'show', { id: '%E0%A4%A' }],
    ['GET', '/users/1/posts/2', 'post', { id: '1', post: '2' }],
    ['PATCH', '/any', 'any', {}],
    ['GET', '/files/a/b/c.txt', 'files', { '*': 'a/b/c.txt' }],
    ['GET', '/files', 'files', { '*': '' }],
    ['HEAD', '/users', 'list', {}],
    ['HEAD', '/head-only', 'head', {}],
  ];
  for (const [method, path, handler, params] of found) {
    it(`finds ${method} ${path}`, () => {
      const m = r.find(method, path);
      assert.equal(m.kind, 'found');
      if (m.kind !== 'found') return;
      assert.equal(m.handler, handler);
      assert.deepEqual({ ...m.params }, params);
      assert.equal(Object.getPrototypeOf(m.params), null);
    });
  }

  it('answers none for an unknown path', () => {
    for (const path of ['/nope', '/users/1/2', '/users/1/posts', '/..', '/%2e%2e/etc/passwd', `/${'a/'.repeat(5000)}`]) {
      assert.equal(r.find('GET', path).kind, 'none', path);
    }
  });

  it('answers method with Allow for a known path and another method', () => {
    assert.deepEqual(r.find('PUT', '/users'), { kind: 'method', allow: 'GET, POST, HEAD' });
    assert.deepEqual(r.find('POST', '/users/1'), { kind: 'method', allow: 'GET, DELETE, HEAD' });
    assert.deepEqual(r.find('GET', '/head-only'), { kind: 'method', allow: 'HEAD' });
  });

  it('keeps parameters named like prototype members as plain keys', () => {
    const p = new Router<string>();
    p.add('GET', '/x/:constructor/:__proto__', 'x');
    const m = p.find('GET', '/x/a/b');
    assert.equal(m.kind, 'found');
    if (m.kind === 'found') {
      assert.equal(m.params['constructor'], 'a');
      assert.equal(Object.getOwnPropertyDescriptor(m.params, '__proto__')?.value, 'b');
    }
    assert.equal(({} as Record<string, unknown>)['b'], undefined);
  });
});

describe('Router.add', () => {
  it('throws when a route is registered twice for one method', () => {
    const r = table();
    assert.throws(() => r.add('GET', '/users', 'again'), /already registered/);
    assert.throws(() => r.add('GET', '/users/:other', 'again'), /already registered \(as \/users\/:id\)/);
    assert.throws(() => r.add('ALL', '/any/', 'again'), TypeError);
    r.add('PUT', '/users/:x', 'put');
    assert.equal(r.find('PUT', '/users/1').kind, 'found');
  });

  it('tries dynamic routes in registration order', () => {
    const r = new Router<string>();
    r.add('GET', '/a/:x', 'param');
    r.add('GET', '/a/b/:y', 'deeper');
    const m = r.find('GET', '/a/b/c');
    assert.equal(m.kind === 'found' && m.handler, 'deeper');
  });
});

describe('compile', () => {
  for (const bad of ['', 'users', '/a/*/b', '/a/:', '/a/:1x', '/a/:x/:x', '/a/b*', '/a/x:y']) {
    it(`refuses ${JSON.stringify(bad)}`, () => {
      assert.throws(() => compile(bad), TypeError);
    });
  }
  it('compiles static, param and rest segments', () => {
    assert.deepEqual(compile('/a/:b/*'), [
      { text: 'a', kind: 'static' },
      { text: 'b', kind: 'param' },
      { text: '*', kind: 'rest' },
    ]);
  });
});

describe('joinPath', () => {
  for (const [prefix, pattern, out] of [
    ['/', '/set', '/set'],
    ['/api', '/users', '/api/users'],
    ['/api/', 'users/', '/api/users'],
    ['/', '/', '/'],
  ] as const) {
    it(`joins ${prefix} and ${pattern}`, () => assert.equal(joinPath(prefix, pattern), out));
  }
});
