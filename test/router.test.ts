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
    ['GET', '/users/1/posts/2', 'post', { id: '1', post: '2' }],
    ['PATCH', '/any', 'any', {}],
    ['GET', '/files/a/b/c.txt', 'files', { '*': 'a/b/c.txt' }],
    ['GET', '/files/a', 'files', { '*': 'a' }],
    ['GET', '/files/a%2Fb/', 'files', { '*': 'a/b' }],
    ['HEAD', '/users', 'list', {}],
    ['HEAD', '/head-only', 'head', {}],
  ];
  for (const [method, path, handler, params] of found) {
    it(`finds ${method} ${path}`, () => {
      const m = r.find(method, path);
      assert.equal(m.kind, 'found', `${method} ${path} is found`);
      if (m.kind !== 'found') return;
      assert.equal(m.handler, handler, `${method} ${path} reaches the ${handler} route`);
      assert.deepEqual({ ...m.params }, params, `${method} ${path} has its parameters, decoded`);
      assert.equal(Object.getPrototypeOf(m.params), null, `the parameters of ${method} ${path} have no prototype`);
    });
  }

  it('answers none for an unknown path', () => {
    for (const path of ['/nope', '/users/1/2', '/users/1/posts', '/..', '/%2e%2e/etc/passwd', `/${'a/'.repeat(5000)}`]) {
      assert.equal(r.find('GET', path).kind, 'none', `${path.slice(0, 40)} matches no route`);
    }
  });

  it('answers method with an Allow that lists OPTIONS, and HEAD with GET', () => {
    assert.deepEqual(r.find('PUT', '/users'), { kind: 'method', allow: 'GET, POST, HEAD, OPTIONS' }, 'a static route answers 405 listing its methods, HEAD and OPTIONS');
    assert.deepEqual(r.find('POST', '/users/1'), { kind: 'method', allow: 'GET, DELETE, HEAD, OPTIONS' }, 'a dynamic route answers 405 listing its methods, HEAD and OPTIONS');
    assert.deepEqual(r.find('GET', '/head-only'), { kind: 'method', allow: 'HEAD, OPTIONS' }, 'a HEAD-only route lists HEAD and OPTIONS, not GET');
  });

  it('answers options with Allow for OPTIONS on a known path without an OPTIONS or ALL route', () => {
    assert.deepEqual(r.find('OPTIONS', '/users'), { kind: 'options', allow: 'GET, POST, HEAD, OPTIONS' }, 'OPTIONS on a static route lists its methods');
    assert.deepEqual(r.find('OPTIONS', '/users/1/'), { kind: 'options', allow: 'GET, DELETE, HEAD, OPTIONS' }, 'OPTIONS on a dynamic route lists its methods');
    assert.equal(r.find('OPTIONS', '/nope').kind, 'none', 'OPTIONS on an unknown path matches nothing');
  });

  it('lets an explicit OPTIONS or ALL route answer OPTIONS itself', () => {
    const o = new Router<string>();
    o.add('GET', '/x', 'get');
    o.add('OPTIONS', '/x', 'own options');
    o.add('GET', '/y/:id', 'get');
    o.add('ALL', '/y/:name', 'all');
    const x = o.find('OPTIONS', '/x');
    assert.equal(x.kind === 'found' && x.handler, 'own options', 'explicit OPTIONS route');
    const y = o.find('OPTIONS', '/y/1');
    assert.equal(y.kind === 'found' && y.handler, 'all', 'an ALL route answers OPTIONS itself');
    assert.deepEqual(o.find('PUT', '/x'), { kind: 'method', allow: 'GET, HEAD, OPTIONS' }, 'OPTIONS listed once');
  });

  it('matches a trailing * against one or more segments: /files/* not /files, /* all but /', () => {
    const rest = new Router<string>();
    rest.add('GET', '/files/*', 'files');
    rest.add('GET', '/*', 'everything');
    for (const [path, kind, star] of [
      ['/files', 'found', 'files'],
      ['/files/', 'found', 'files'],
      ['//files//', 'found', 'files'],
      ['/files/x', 'found', 'x'],
      ['/other/x/y', 'found', 'other/x/y'],
      ['/', 'none', ''],
    ] as const) {
      const m = rest.find('GET', path);
      assert.equal(m.kind, kind, `${path} is ${kind === 'found' ? 'matched' : 'not matched'}`);
      if (m.kind === 'found') assert.equal(m.params['*'], star, `${path}: '/files' falls through to '/*', not '/files/*'`);
    }
    const only = new Router<string>();
    only.add('GET', '/files/*', 'files');
    for (const path of ['/files', '/files/', '/files//']) {
      assert.equal(only.find('GET', path).kind, 'none', `${path} is not matched by /files/*`);
    }
  });

  it('answers bad for a malformed escape in a parameter or the rest, whatever the method', () => {
    for (const [method, path] of [
      ['GET', '/users/%bob'],
      ['GET', '/users/%E0%A4%A'],
      ['GET', '/users/1/posts/%zz'],
      ['GET', '/files/ok/%'],
      ['GET', '/files/%zz/ok'],
      ['PUT', '/users/%bob'],
      ['OPTIONS', '/users/%bob/'],
    ] as const) {
      assert.deepEqual(r.find(method, path), { kind: 'bad' }, `${method} ${path} is a bad request`);
    }
  });

  it('compares a static segment raw, never decoding it', () => {
    const s = new Router<string>();
    s.add('GET', '/a%zz', 'raw');
    s.add('GET', '/b%zz/:id', 'raw param');
    const a = s.find('GET', '/a%zz');
    assert.equal(a.kind === 'found' && a.handler, 'raw', 'a malformed static segment matches as it is');
    const b = s.find('GET', '/b%zz/1');
    assert.equal(b.kind === 'found' && b.params['id'], '1', 'a malformed static segment before a parameter');
    assert.equal(s.find('GET', '/a%7A%7A').kind, 'none', 'an escaped form of a static segment is another path');
  });

  it('gives each route its own parameter names when routes share a shape', () => {
    const p = new Router<string>();
    p.add('GET', '/u/:id', 'get');
    p.add('POST', '/u/:name', 'post');
    p.add('ALL', '/u/:any', 'all');
    p.add('GET', '/f/:dir/*', 'files');
    p.add('PUT', '/f/:folder/*', 'put files');
    for (const [method, path, params] of [
      ['GET', '/u/7', { id: '7' }],
      ['HEAD', '/u/7', { id: '7' }],
      ['POST', '/u/ann', { name: 'ann' }],
      ['DELETE', '/u/x', { any: 'x' }],
      ['GET', '/f/a/b/c', { dir: 'a', '*': 'b/c' }],
      ['PUT', '/f/a/b/c', { folder: 'a', '*': 'b/c' }],
    ] as const) {
      const m = p.find(method, path);
      assert.equal(m.kind, 'found', `${method} ${path}: kind`);
      if (m.kind === 'found') assert.deepEqual({ ...m.params }, params, `${method} ${path}: params`);
    }
  });

  it('keeps parameters named like prototype members as plain keys', () => {
    const p = new Router<string>();
    p.add('GET', '/x/:constructor/:__proto__', 'x');
    const m = p.find('GET', '/x/a/b');
    assert.equal(m.kind, 'found', 'a route with parameters named constructor and __proto__ is found');
    if (m.kind === 'found') {
      assert.equal(m.params['constructor'], 'a', 'a parameter named constructor holds its segment, not the Object constructor');
      assert.equal(Object.getOwnPropertyDescriptor(m.params, '__proto__')?.value, 'b', 'a parameter named __proto__ is an own key holding its segment');
    }
    assert.equal(({} as Record<string, unknown>)['b'], undefined, 'Object.prototype was not polluted by the __proto__ parameter');
  });
});

describe('Router.add', () => {
  it('throws when a route is registered twice for one method', () => {
    const r = table();
    assert.throws(() => r.add('GET', '/users', 'again'), /already registered/, 'a second GET /users is refused');
    assert.throws(() => r.add('GET', '/users/:other', 'again'), /already registered \(as \/users\/:id\)/, 'the same shape under another parameter name is refused, naming the route registered first');
    r.add('PATCH', '/users/:uid', 'patch');
    assert.throws(() => r.add('PATCH', '/users/:x', 'again'), /PATCH \/users\/:x is already registered \(as \/users\/:uid\)/, 'the refusal names the method, the pattern and the route it clashes with');
    assert.throws(() => r.add('ALL', '/any/', 'again'), TypeError, 'ALL /any/ clashes with ALL /any (the trailing slash does not make another route)');
    r.add('PUT', '/users/:x', 'put');
    assert.equal(r.find('PUT', '/users/1').kind, 'found', 'a method not yet registered on that shape is accepted');
  });

  it('tries dynamic routes in registration order', () => {
    const r = new Router<string>();
    r.add('GET', '/a/:x', 'param');
    r.add('GET', '/a/b/:y', 'deeper');
    const m = r.find('GET', '/a/b/c');
    assert.equal(m.kind === 'found' && m.handler, 'deeper', 'the first dynamic route registered does not hide a deeper one it cannot match');
  });
});

describe('compile', () => {
  for (const bad of ['', 'users', '/a/*/b', '/a/:', '/a/:1x', '/a/:x/:x', '/a/b*', '/a/x:y']) {
    it(`refuses ${JSON.stringify(bad)}`, () => {
      assert.throws(() => compile(bad), TypeError, `the pattern ${JSON.stringify(bad)} is refused`);
    });
  }
  it('compiles static, param and rest segments', () => {
    assert.deepEqual(compile('/a/:b/*'), [
      { text: 'a', kind: 'static' },
      { text: 'b', kind: 'param' },
      { text: '*', kind: 'rest' },
    ], 'a pattern compiles into one segment per part, each with its kind');
  });
});

describe('joinPath', () => {
  for (const [prefix, pattern, out] of [
    ['/', '/set', '/set'],
    ['/api', '/users', '/api/users'],
    ['/api/', 'users/', '/api/users'],
    ['/', '/', '/'],
  ] as const) {
    it(`joins ${prefix} and ${pattern}`, () => assert.equal(joinPath(prefix, pattern), out, `${prefix} joined with ${pattern} is ${out}, with no doubled or trailing slash`));
  }
});
