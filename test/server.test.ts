import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { Agent, createServer as createHttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { HttpError, MemoryStorage, Server, type ServerOptions, type Storage, createServer } from '../lib/index.js';
import { isValidId } from '../lib/id.js';
import { Jar, MemoryLogger, cookieValue, deferred, send, serve } from './helpers.js';

const ok = (text: string) => (r: { response: { write(v: string): unknown } }): void => {
  r.response.write(text);
};

describe('routing over HTTP', () => {
  it('routes static paths, :params and a trailing *', async (t) => {
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => {
      s.get('/', ok('root'));
      s.get('/users', ok('list'));
      s.get('/users/:id', (r) => r.response.write(`user ${r.params['id'] ?? ''}`));
      s.get('/users/:id/posts/:post', (r) => r.response.writeJson({ ...r.params }));
      s.get('/files/*', (r) => r.response.write(`rest=${r.params['*'] ?? ''}`));
    });
    assert.equal((await send(s.port, '/')).body, 'root');
    assert.equal((await send(s.port, '/users')).body, 'list');
    assert.equal((await send(s.port, '/users/42')).body, 'user 42');
    assert.equal((await send(s.port, '/users/a%20b')).body, 'user a b');
    assert.equal((await send(s.port, '/users/1/posts/2')).body, '{"id":"1","post":"2"}');
    assert.equal((await send(s.port, '/files/a/b/c.txt')).body, 'rest=a/b/c.txt');
    // `*` is one or more segments: the folder itself is not matched (as Express and trouter).
    assert.equal((await send(s.port, '/files')).status, 404, '/files/* does not match /files');
    assert.equal((await send(s.port, '/files/')).status, 404, '/files/* does not match /files/ either (trailing slash ignored)');
    assert.equal((await send(s.port, '/users/42?x=1')).body, 'user 42');
  });

  it('ignores a trailing slash in the request path', async (t) => {
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => {
      s.get('/users', ok('list'));
      s.get('/users/:id', (r) => r.response.write(r.params['id'] ?? ''));
    });
    assert.equal((await send(s.port, '/users/')).body, 'list');
    assert.equal((await send(s.port, '/users/7/')).body, '7');
    assert.equal((await send(s.port, '/users/?q=1')).body, 'list');
  });

  it('nests groups, joining their prefixes', async (t) => {
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => {
      s.group('/api', (api) => {
        api.get('/ping', ok('api ping'));
        api.group('/v1/', (v1) => {
          v1.get('/users/:id', (r) => r.response.write(`v1 user ${r.params['id'] ?? ''}`));
          v1.group('admin', (admin) => admin.get('/', ok('v1 admin')));
        });
      });
    });
    assert.equal((await send(s.port, '/api/ping')).body, 'api ping');
    assert.equal((await send(s.port, '/api/v1/users/9')).body, 'v1 user 9');
    assert.equal((await send(s.port, '/api/v1/admin')).body, 'v1 admin');
    assert.equal((await send(s.port, '/ping')).status, 404);
    assert.equal((await send(s.port, '/v1/users/9')).status, 404);
  });

  it('answers HEAD with the GET route: same headers, no body', async (t) => {
    let ran = 0;
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => {
      s.get('/doc', (r) => {
        ran++;
        r.response.header('X-Doc', 'yes').write('a body of some length');
      });
    });
    const get = await send(s.port, '/doc');
    const head = await send(s.port, '/doc', { method: 'HEAD' });
    assert.equal(ran, 2);
    assert.equal(head.status, 200);
    assert.equal(head.body, '');
    assert.equal(head.headers['content-length'], String(Buffer.byteLength(get.body)));
    assert.equal(head.headers['content-length'], get.headers['content-length']);
    assert.equal(head.headers['content-type'], get.headers['content-type']);
    assert.equal(head.headers['x-doc'], 'yes');
  });

  it('answers 404 for an unknown path', async (t) => {
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => s.get('/here', ok('here')));
    for (const path of ['/nope', '/here/there', '/%2e%2e/etc/passwd']) {
      const reply = await send(s.port, path);
      assert.equal(reply.status, 404, path);
      assert.equal(reply.body, 'Not Found');
      assert.deepEqual(reply.setCookies, []);
    }
  });

  it('answers 405 with Allow for a known path and another method', async (t) => {
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => {
      s.get('/thing', ok('get'));
      s.post('/thing', ok('post'));
      s.delete('/thing/:id', ok('delete'));
    });
    const put = await send(s.port, '/thing', { method: 'PUT' });
    assert.equal(put.status, 405);
    assert.equal(put.body, 'Method Not Allowed');
    assert.equal(put.headers['allow'], 'GET, POST, HEAD, OPTIONS');
    const get = await send(s.port, '/thing/3');
    assert.equal(get.status, 405);
    assert.equal(get.headers['allow'], 'DELETE, OPTIONS');
  });

  it('routes each method to its own handler', async (t) => {
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => {
      s.get('/m', ok('GET')).post('/m', ok('POST')).put('/m', ok('PUT')).patch('/m', ok('PATCH'));
      s.delete('/m', ok('DELETE')).options('/m', ok('OPTIONS')).head('/h', (r) => r.response.header('X-Head', 'own'));
    });
    for (const method of ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']) {
      assert.equal((await send(s.port, '/m', { method })).body, method);
    }
    const head = await send(s.port, '/h', { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers['x-head'], 'own');
    assert.equal((await send(s.port, '/h')).headers['allow'], 'HEAD, OPTIONS');
  });

  it('matches every method with all', async (t) => {
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => {
      s.all('/any', (r) => r.response.write(r.method));
      s.get('/mixed', ok('get wins'));
      s.all('/mixed', ok('all'));
    });
    for (const method of ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'PURGE']) {
      const reply = await send(s.port, '/any', { method });
      assert.equal(reply.status, 200, method);
      assert.equal(reply.body, method);
    }
    assert.equal((await send(s.port, '/any', { method: 'HEAD' })).status, 200);
    assert.equal((await send(s.port, '/mixed')).body, 'get wins');
    assert.equal((await send(s.port, '/mixed', { method: 'POST' })).body, 'all');
  });

  it('serves routes registered on the server and in group("/")', async (t) => {
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => {
      s.all('/on-server', ok('server'));
      s.group('/', (group) => group.all('/in-group', ok('group')));
    });
    assert.equal((await send(s.port, '/on-server')).body, 'server');
    assert.equal((await send(s.port, '/in-group')).body, 'group');
  });

  it('throws when a route is registered twice, on the server or in a group', () => {
    const s = new Server({ sessionStorage: new MemoryStorage() });
    s.get('/x', ok('x'));
    assert.throws(() => s.get('/x', ok('again')), (e: unknown) => e instanceof TypeError && /already registered/.test(e.message));
    assert.throws(() => s.group('/', (g) => g.get('/x/', ok('again'))), /already registered/);
    s.all('/y', ok('y'));
    assert.throws(() => s.all('/y', ok('y')), /already registered/);
    s.post('/x', ok('post is new'));
  });

  it('refuses a handler that is not a function and a malformed pattern', () => {
    const s = new Server({ sessionStorage: new MemoryStorage() });
    assert.throws(() => s.get('/x', 'nope' as never), /handler for GET \/x is invalid/);
    assert.throws(() => s.get(5 as never, ok('x')), /route pattern is invalid/);
    assert.throws(() => s.get('/a/*/b', ok('x')), TypeError);
    assert.throws(() => s.use('nope' as never), /middleware is invalid/);
  });
});

describe('routing conformance with Express and trouter', () => {
  it('answers OPTIONS on a known path with 204 and Allow, unless an options or all route handles it', async (t) => {
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => {
      s.get('/thing', ok('get')).post('/thing', ok('post'));
      s.options('/own', ok('own options')).get('/own', ok('get'));
      s.all('/any', ok('any'));
    });
    const out = await send(s.port, '/thing', { method: 'OPTIONS' });
    assert.equal(out.status, 204, 'OPTIONS on a known path is answered');
    assert.equal(out.headers['allow'], 'GET, POST, HEAD, OPTIONS', 'Allow lists the path\'s methods');
    assert.equal(out.body, '', 'no body');
    assert.equal((await send(s.port, '/own', { method: 'OPTIONS' })).body, 'own options', 'an explicit options route wins');
    assert.equal((await send(s.port, '/any', { method: 'OPTIONS' })).body, 'any', 'an all route wins');
    assert.equal((await send(s.port, '/thing', { method: 'PUT' })).status, 405, 'other methods still get 405');
    assert.equal((await send(s.port, '/missing', { method: 'OPTIONS' })).status, 404, 'an unknown path is still 404');
  });

  it('answers 400 to a malformed escape in a path parameter or the rest', async (t) => {
    const seen: string[] = [];
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => {
      s.get('/user/:name', (r) => {
        seen.push(r.params['name'] as string);
        r.response.write('ok');
      });
      s.get('/files/*', ok('file'));
    });
    for (const path of ['/user/%bob', '/user/%E0%A4%A', '/files/a/%zz']) {
      const out = await send(s.port, path);
      assert.equal(out.status, 400, `${path} is a bad request`);
      assert.equal(out.body, 'Bad Request', `${path}: a generic body`);
    }
    assert.deepEqual(seen, [], 'the handler never saw a raw, undecodable parameter');
    assert.equal((await send(s.port, '/user/b%C3%B6b')).body, 'ok', 'a good escape is decoded');
    assert.deepEqual(seen, ['böb'], 'as UTF-8');
  });

  it('gives each route its own parameter names, for routes of one shape', async (t) => {
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => {
      s.get('/u/:id', (r) => r.response.writeJson({ ...r.params }));
      s.post('/u/:name', (r) => r.response.writeJson({ ...r.params }));
      s.all('/v/:any', (r) => r.response.writeJson({ ...r.params }));
      s.put('/v/:key', (r) => r.response.writeJson({ ...r.params }));
    });
    assert.equal((await send(s.port, '/u/1')).body, '{"id":"1"}', 'GET keeps :id');
    assert.equal((await send(s.port, '/u/1', { method: 'POST' })).body, '{"name":"1"}', 'POST keeps :name');
    assert.equal((await send(s.port, '/v/2', { method: 'PUT' })).body, '{"key":"2"}', 'PUT keeps :key beside all');
    assert.equal((await send(s.port, '/v/2')).body, '{"any":"2"}', 'all keeps :any');
  });

  it('runs a chain of 10 000 pass-through middleware without growing the stack', async (t) => {
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => {
      for (let i = 0; i < 5_000; i++) s.use((_r, next) => next());
      s.group('/deep', (g) => {
        for (let i = 0; i < 5_000; i++) g.middleware(async (_r, next) => next());
        g.get('/end', ok('reached'));
      });
    });
    const out = await send(s.port, '/deep/end');
    assert.equal(out.status, 200, out.body);
    assert.equal(out.body, 'reached', 'the handler ran after every middleware');
  });
});

describe('middleware', () => {
  it('runs server.use middleware in order around the handler, for every request', async (t) => {
    const log: string[] = [];
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => {
      s.use(
        async (r, next) => {
          log.push(`a before ${r.path}`);
          await next();
          log.push(`a after ${r.response.statusCode}`);
        },
        async (_r, next) => {
          log.push('b before');
          await next();
          log.push('b after');
        },
      );
      s.get('/h', () => {
        log.push('handler');
      });
    });
    assert.equal((await send(s.port, '/h')).status, 200);
    assert.deepEqual(log, ['a before /h', 'b before', 'handler', 'b after', 'a after 200']);
    log.length = 0;
    const missing = await send(s.port, '/missing');
    assert.equal(missing.status, 404);
    assert.deepEqual(log, ['a before /missing', 'b before', 'b after', 'a after 404']);
    log.length = 0;
    const wrong = await send(s.port, '/h', { method: 'POST' });
    assert.equal(wrong.status, 405);
    assert.equal(wrong.headers['allow'], 'GET, HEAD, OPTIONS');
    assert.deepEqual(log, ['a before /h', 'b before', 'b after', 'a after 405']);
  });

  it('runs group middleware only for its group, parents first', async (t) => {
    const log: string[] = [];
    const mark = (name: string) => async (_r: unknown, next: () => Promise<void>): Promise<void> => {
      log.push(name);
      await next();
    };
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => {
      s.use(mark('global'));
      s.get('/outside', ok('outside'));
      s.group('/a', (a) => {
        a.middleware(mark('a'));
        a.get('/x', ok('a x'));
        a.group('/n', (n) => {
          n.get('/y', ok('a n y'));
          // Added after the route: still runs for it.
          n.middleware(mark('n'));
        });
      });
      s.group('/b', (b) => {
        b.middleware(mark('b'));
        b.get('/z', ok('b z'));
      });
    });
    const cases: [string, string[]][] = [
      ['/outside', ['global']],
      ['/a/x', ['global', 'a']],
      ['/a/n/y', ['global', 'a', 'n']],
      ['/b/z', ['global', 'b']],
      ['/a/missing', ['global']],
    ];
    for (const [path, expected] of cases) {
      log.length = 0;
      await send(s.port, path);
      assert.deepEqual(log, expected, path);
    }
  });

  it('short-circuits when a middleware does not call next, sending its response', async (t) => {
    let handled = 0;
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => {
      s.group('/private', (g) => {
        g.middleware((r) => {
          if (r.header('authorization') !== 'Bearer ok') r.response.status(401).header('WWW-Authenticate', 'Bearer').write('denied');
          else return undefined;
          return undefined;
        });
        g.get('/data', (r) => {
          handled++;
          r.response.write('secret');
        });
      });
    });
    const denied = await send(s.port, '/private/data');
    assert.equal(denied.status, 401);
    assert.equal(denied.body, 'denied');
    assert.equal(denied.headers['www-authenticate'], 'Bearer');
    assert.equal(handled, 0);
  });

  it('rejects a second call of next(), answering 500 and running the handler once', async (t) => {
    const errors: unknown[] = [];
    let handled = 0;
    const s = await serve(t, { sessionStorage: new MemoryStorage(), onError: (e) => errors.push(e) }, (s) => {
      s.use(async (_r, next) => {
        await next();
        await next();
      });
      s.get('/twice', (r) => {
        handled++;
        r.response.write('ok');
      });
    });
    const reply = await send(s.port, '/twice');
    assert.equal(reply.status, 500);
    assert.equal(reply.body, 'Internal Server Error');
    assert.equal(handled, 1);
    assert.equal(errors.length, 1);
    assert.match(String(errors[0]), /next\(\) called twice/);
  });

  it('lets middleware read and write the session around the handler', async (t) => {
    const storage = new MemoryStorage();
    const s = await serve(t, { sessionStorage: storage }, (s) => {
      s.use(async (r, next) => {
        r.session.set('visits', ((r.session.get('visits') as number | undefined) ?? 0) + 1);
        await next();
        r.response.header('X-Handler-Wrote', String(r.session.get('handler')));
      });
      s.get('/count', (r) => {
        r.session.set('handler', 'yes');
        r.response.write(r.session.get('visits'));
      });
    });
    const jar = new Jar();
    const first = await jar.send(s.port, '/count');
    assert.equal(first.body, '1');
    assert.equal(first.headers['x-handler-wrote'], 'yes');
    assert.equal((await jar.send(s.port, '/count')).body, '2');
    const id = jar.cookies.get('sid') as string;
    assert.deepEqual({ ...(await storage.get(id)) }, { visits: 2, handler: 'yes' });
  });
});

describe('error isolation', () => {
  const throwers: [string, () => unknown][] = [
    ['throws an Error', () => {
      throw new Error('secret detail /etc/passwd');
    }],
    ['rejects', async () => {
      await Promise.resolve();
      throw new Error('secret detail async');
    }],
    ['throws a string', () => {
      throw 'secret detail string';
    }],
    ['throws an object', () => {
      throw { secret: 'detail' };
    }],
    ['throws undefined', () => {
      throw undefined;
    }],
  ];
  for (const [name, fail] of throwers) {
    it(`answers 500 with a generic body when a handler ${name}, and keeps serving`, async (t) => {
      const errors: [unknown, string | undefined][] = [];
      const s = await serve(t, { sessionStorage: new MemoryStorage(), onError: (e, r) => errors.push([e, r?.path]) }, (s) => {
        s.get('/fail', () => fail());
        s.get('/fine', ok('fine'));
      });
      const reply = await send(s.port, '/fail');
      assert.equal(reply.status, 500);
      assert.equal(reply.body, 'Internal Server Error');
      assert.doesNotMatch(reply.body, /secret|detail|at /);
      assert.equal(reply.headers['content-type'], 'text/plain; charset=utf-8');
      assert.equal(errors.length, 1);
      assert.equal(errors[0]?.[1], '/fail');
      assert.equal((await send(s.port, '/fine')).body, 'fine');
    });
  }

  it('passes the error and the request to onError', async (t) => {
    const boom = new Error('boom');
    const seen: unknown[] = [];
    const s = await serve(t, { sessionStorage: new MemoryStorage(), onError: (e, r) => seen.push(e, r?.method, r?.path, r?.query.get('q')) }, (s) => {
      s.post('/fail', () => {
        throw boom;
      });
    });
    await send(s.port, '/fail?q=1', { method: 'POST' });
    assert.deepEqual(seen, [boom, 'POST', '/fail', '1']);
  });

  it('survives an onError hook that throws, logging the hook\'s failure', async (t) => {
    const logger = new MemoryLogger();
    const s = await serve(
      t,
      {
        sessionStorage: new MemoryStorage(),
        logger,
        onError: () => {
          throw new Error('hook broke');
        },
      },
      (s) => {
        s.get('/fail', () => {
          throw new Error('handler broke');
        });
        s.get('/fine', ok('fine'));
      },
    );
    assert.equal((await send(s.port, '/fail')).status, 500);
    assert.equal((await send(s.port, '/fine')).body, 'fine');
    const lines = logger.of('error');
    assert.equal(lines.length, 1);
    assert.match(lines[0] as string, /hook broke/);
  });

  it('survives an onError hook and a logger that both throw', async (t) => {
    const broken = {
      info: () => undefined,
      warn: () => undefined,
      error: () => {
        throw new Error('logger broke');
      },
    };
    const s = await serve(
      t,
      {
        sessionStorage: new MemoryStorage(),
        logger: broken,
        onError: () => {
          throw new Error('hook broke');
        },
      },
      (s) => {
        s.get('/fail', () => {
          throw new Error('handler broke');
        });
        s.get('/fine', ok('fine'));
      },
    );
    const reply = await send(s.port, '/fail');
    assert.equal(reply.status, 500);
    assert.equal(reply.body, 'Internal Server Error');
    assert.equal((await send(s.port, '/fine')).body, 'fine');
  });

  it('answers an HttpError with its status and message, without reporting it', async (t) => {
    const errors: unknown[] = [];
    const s = await serve(t, { sessionStorage: new MemoryStorage(), onError: (e) => errors.push(e) }, (s) => {
      s.get('/forbidden', (r) => {
        r.response.header('X-Before', '1');
        throw new HttpError(403, 'nope');
      });
      s.get('/gone', () => {
        throw new HttpError(404);
      });
      s.get('/upstream', () => {
        throw new HttpError(503, 'the database password is hunter2');
      });
    });
    const forbidden = await send(s.port, '/forbidden');
    assert.equal(forbidden.status, 403);
    assert.equal(forbidden.body, 'nope');
    assert.equal(forbidden.headers['x-before'], undefined);
    assert.equal((await send(s.port, '/gone')).body, 'Not Found');
    assert.equal(errors.length, 0);
    // A 5xx HttpError is not exposed: generic body, and reported.
    const upstream = await send(s.port, '/upstream');
    assert.equal(upstream.status, 503);
    assert.equal(upstream.body, 'Service Unavailable');
    assert.equal(errors.length, 1);
  });

  it('drops pending cookies, headers and session writes when the handler fails', async (t) => {
    const storage = new MemoryStorage();
    const s = await serve(t, { sessionStorage: storage }, (s) => {
      s.get('/fail', (r) => {
        r.session.set('user', 'mallory');
        r.cookie.set('theme', 'dark');
        r.response.header('X-Partial', 'yes').header('Cache-Control', 'public, max-age=3600').write('partial body');
        throw new Error('late failure');
      });
    });
    const reply = await send(s.port, '/fail');
    assert.equal(reply.status, 500);
    assert.deepEqual(reply.setCookies, []);
    assert.equal(reply.headers['x-partial'], undefined);
    assert.equal(reply.headers['cache-control'], undefined);
    assert.equal(reply.body, 'Internal Server Error');
    assert.equal(storage.size, 0);
  });

  it('logs the error and the first lines of its stack by default, with no session id', async (t) => {
    const logger = new MemoryLogger();
    const storage = new MemoryStorage();
    const s = new Server({ sessionStorage: storage, logger });
    s.get('/login', (r) => {
      r.session.set('user', 'u');
      r.response.write(r.session.id);
    });
    s.get('/fail', (r) => {
      throw new Error(`failed\nfor ${r.session.get('user') as string} in ${r.session.id}`, { cause: Object.assign(new Error('disk'), { code: 'EIO' }) });
    });
    s.get('/regenerate-fail', async (r) => {
      const old = r.session.id;
      await r.session.regenerate();
      throw new Error(`moved ${old} to ${r.session.id}`);
    });
    s.get('/throw-string', () => {
      throw 'plain string';
    });
    await s.start();
    t.after(() => s.close());
    const jar = new Jar();
    const id = (await jar.send(s.port, '/login')).body;
    assert.ok(isValidId(id));
    await jar.send(s.port, `/fail?sid=${id}`, { headers: { sid: id } });
    const entries = logger.of('error');
    assert.equal(entries.length, 1, 'one log entry per failed request');
    const [first = '', ...frames] = (entries[0] as string).split('\n');
    assert.ok(!(entries[0] as string).includes(id), 'the session id is not logged');
    assert.match(first, /^bare-session: Error: failed for u in \[session id\] \(cause: Error EIO\) \[GET \/fail\]$/, 'the first line: class, message on one line, cause, route');
    assert.ok(frames.length >= 1 && frames.length <= 6, `one to six stack lines, got ${frames.length}`);
    assert.match(frames[0] as string, /^ {4}at .*server\.test\.ts:\d+:\d+/, 'the first stack line points to where the handler threw');
    await send(s.port, `/throw-string`);
    assert.equal(logger.of('error')[1], 'bare-session: Error: "plain string" [GET /throw-string]', 'a thrown non-Error has no stack to show');
    await jar.send(s.port, '/regenerate-fail');
    assert.match(logger.of('error')[2] as string, /^bare-session: Error: moved \[session id\] to \[session id\] \[GET \/regenerate-fail\]\n/, 'old and new ids are hidden');
  });

  it('cuts the connection when a handler that took over the response fails', async (t) => {
    const errors: unknown[] = [];
    const s = await serve(t, { sessionStorage: new MemoryStorage(), onError: (e) => errors.push(e) }, (s) => {
      s.get('/stream', async (r) => {
        r.response.raw.writeHead(200, { 'Content-Type': 'text/plain' });
        r.response.raw.write('first part');
        await Promise.resolve();
        throw new Error('stream broke');
      });
      s.get('/fine', ok('fine'));
    });
    await assert.rejects(send(s.port, '/stream'), /aborted|socket hang up|ECONNRESET/);
    assert.equal(errors.length, 1);
    assert.equal((await send(s.port, '/fine')).body, 'fine');
  });
});

describe('options', () => {
  const bad: [string, ServerOptions, RegExp][] = [
    ['a negative port', { port: -1 }, /^option port is invalid: -1/],
    ['a port above 65535', { port: 65536 }, /^option port is invalid/],
    ['an empty address', { address: '' }, /^option address is invalid/],
    ['a malformed sessionMaxAge', { sessionMaxAge: 'abc' as never }, /^option sessionMaxAge is invalid: "abc"/],
    ['a sessionCookieMaxAge over 400 days', { sessionCookieMaxAge: '401d' }, /^option sessionCookieMaxAge is invalid/],
    ['a malformed closeTimeout', { closeTimeout: -5 }, /^option closeTimeout is invalid/],
    ['a bodyLimit of 0', { bodyLimit: 0 }, /^option bodyLimit is invalid: 0/],
    ['a fractional sessionMaxSize', { sessionMaxSize: 1.5 }, /^option sessionMaxSize is invalid/],
    ['an unknown cookieSameSite', { cookieSameSite: 'Sometimes' as never }, /^option cookieSameSite is invalid: "Sometimes"/],
    ['SameSite=None without Secure', { cookieSameSite: 'None' }, /^option cookieSecure is invalid: "auto" \(expected true: cookieSameSite 'None' needs cookieSecure: true\)/],
    ['SameSite=none (any case) without Secure', { cookieSameSite: 'none', cookieSecure: false }, /^option cookieSecure is invalid: false/],
    ['a sessionMaxAge over 400 days', { sessionMaxAge: '401d' }, /^option sessionMaxAge is invalid: "401d" \(expected at most 400 days\)/],
    ['a sessionCookieMaxAge over 400 days', { sessionCookieMaxAge: '401d' }, /^option sessionCookieMaxAge is invalid: "401d"/],
    ['a __Host- name without Secure', { sessionIdName: '__Host-sid' }, /^option cookieSecure is invalid: .*__Host-/],
    ['a __Host- name with a Domain', { sessionIdName: '__Host-sid', cookieSecure: true, cookieDomain: 'example.com' }, /^option cookieDomain is invalid/],
    ['a __Secure- name without Secure', { sessionIdName: '__Secure-sid', cookieSecure: false }, /^option cookieSecure is invalid/],
    ['a sessionIdName that is not a token', { sessionIdName: 'my sid' }, /^option sessionIdName is invalid: "my sid"/],
    ['an empty sessionIdName', { sessionIdName: '' }, /^option sessionIdName is invalid/],
    ['a cookiePath without a leading slash', { cookiePath: 'app' }, /^option cookiePath is invalid: "app"/],
    ['a cookiePath that is not a string', { cookiePath: 5 as never }, /^option cookiePath is invalid/],
    ['a malformed cookieDomain', { cookieDomain: 'bad_domain;x' }, /^option cookieDomain is invalid/],
    ['a cookieSecure that is not a boolean or auto', { cookieSecure: 'yes' as never }, /^option cookieSecure is invalid/],
    ['a cookieHttpOnly that is not a boolean', { cookieHttpOnly: 'no' as never }, /^option cookieHttpOnly is invalid/],
    ['a trustProxy that is not a boolean', { trustProxy: 1 as never }, /^option trustProxy is invalid/],
    ['a sessionCookieOutput that is not a boolean', { sessionCookieOutput: 'yes' as never }, /^option sessionCookieOutput is invalid/],
    ['an onError that is not a function', { onError: 'log' as never }, /^option onError is invalid/],
    ['a now that is not a function', { now: 5 as never }, /^option now is invalid/],
    ['a logger missing error', { logger: { info: () => undefined, warn: () => undefined } as never }, /^option logger is invalid/],
    ['a storage missing touch', { sessionStorage: { get: async () => undefined, set: async () => undefined, remove: async () => undefined } as never }, /^option sessionStorage is invalid/],
    ['a null storage', { sessionStorage: null as never }, /^option sessionStorage is invalid/],
    ['a generator without a validator', { sessionIdGenerator: () => 'x' }, /^option sessionIdGenerator is invalid/],
    ['an unknown option', { prot: 8080 } as never, /^option prot is unknown/],
  ];
  for (const [name, options, message] of bad) {
    it(`refuses ${name} with a TypeError naming the option`, () => {
      assert.throws(() => new Server(options), (e: unknown) => e instanceof TypeError && message.test(e.message));
    });
  }

  it('refuses options that are not an object', () => {
    assert.throws(() => new Server(null as never), /^TypeError: options are invalid: null/);
    assert.throws(() => new Server('port=1' as never), /options are invalid/);
  });

  it('accepts Secure settings whatever their order', () => {
    const good: ServerOptions[] = [
      { sessionIdName: '__Host-sid', cookieSecure: true },
      { cookieSecure: true, sessionIdName: '__Host-sid' },
      { cookieSameSite: 'None', cookieSecure: true },
      { cookieSecure: true, cookieSameSite: 'None' },
      { sessionIdName: '__Secure-sid', cookieSecure: true, cookieDomain: 'example.com', cookiePath: '/app' },
    ];
    for (const options of good) {
      assert.ok(new Server({ sessionStorage: new MemoryStorage(), ...options }) instanceof Server, JSON.stringify(options));
    }
  });

  it('returns the server from every setter', () => {
    const s = new Server();
    const storage = new MemoryStorage();
    assert.equal(s.setPort(0), s);
    assert.equal(s.setAddress('127.0.0.1'), s);
    assert.equal(s.setSessionMaxAge('1m'), s);
    assert.equal(s.setSessionStorage(storage), s);
    assert.equal(s.setSessionIdName('token'), s);
    assert.equal(s.setSessionCookieOutput(false), s);
    assert.equal(s.setSessionCookieMaxAge(0), s);
    assert.equal(s.setSessionIdGenerator(() => 'i'.repeat(20), (id) => id === 'i'.repeat(20)), s);
    assert.equal(s.setSessionMaxSize(2048), s);
    assert.equal(s.setCookiePath('/app'), s);
    assert.equal(s.setCookieDomain('example.com'), s);
    assert.equal(s.setCookieSameSite('strict'), s);
    assert.equal(s.setCookieSecure(true), s);
    assert.equal(s.setCookieHttpOnly(false), s);
    assert.equal(s.setTrustProxy(true), s);
    assert.equal(s.setBodyLimit(10), s);
    assert.equal(s.setCloseTimeout('1s'), s);
    assert.equal(s.setOnError(() => undefined), s);
    assert.equal(s.setLogger(new MemoryLogger()), s);
    assert.equal(s.use(async (_r, next) => next()), s);
    assert.equal(s.middleware(), s);
    assert.equal(s.group('/g', () => undefined), s);
    assert.equal(s.storage, storage);
  });

  it('refuses bad setter values with the option\'s name, keeping the previous value', async (t) => {
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => {
      s.get('/set', (r) => {
        r.session.set('x', 1);
        r.response.write('ok');
      });
    });
    assert.throws(() => s.setPort(1.5), /^TypeError: option port is invalid/);
    assert.throws(() => s.setSessionMaxAge('forever' as never), /option sessionMaxAge is invalid/);
    assert.throws(() => s.setSessionStorage({ get() {} } as never), /option sessionStorage is invalid/);
    assert.throws(() => s.setSessionIdName('__Host-sid'), /option cookieSecure is invalid/);
    const reply = await send(s.port, '/set');
    assert.equal(reply.status, 200);
    assert.ok(cookieValue(reply.setCookies, 'sid') !== undefined, 'the cookie keeps its name');
  });

  it('applies session settings changed after the first request', async (t) => {
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => {
      s.get('/set', (r) => {
        r.session.set('x', 1);
        r.response.write('ok');
      });
    });
    assert.ok(cookieValue((await send(s.port, '/set')).setCookies, 'sid') !== undefined);
    s.setSessionIdName('token').setSessionCookieMaxAge('2h');
    const after = await send(s.port, '/set');
    assert.match(after.setCookies[0] as string, /^token=[\w-]{43}; Max-Age=7200;/);
  });

  it('makes the same thing with createServer', () => {
    const s = createServer({ port: 1234, sessionStorage: new MemoryStorage() });
    assert.ok(s instanceof Server);
    assert.equal(s.port, 1234);
  });
});

describe('lifecycle', () => {
  it('listens on a real port after start()', async (t) => {
    const s = new Server({ sessionStorage: new MemoryStorage(), address: '127.0.0.1' });
    s.get('/', ok('up'));
    assert.equal(s.port, 0);
    assert.equal(await s.start(), s);
    t.after(() => s.close());
    assert.ok(s.port > 0 && s.port < 65536);
    assert.equal((await send(s.port, '/')).body, 'up');
  });

  it('rejects a second start()', async (t) => {
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, () => undefined);
    await assert.rejects(s.start(), /already started/);
  });

  it('rejects start() on a port in use, and can start again on another', async (t) => {
    const first = await serve(t, { sessionStorage: new MemoryStorage(), address: '127.0.0.1' }, () => undefined);
    const second = new Server({ sessionStorage: new MemoryStorage(), address: '127.0.0.1', port: first.port });
    second.get('/', ok('second'));
    await assert.rejects(second.start(), { code: 'EADDRINUSE' });
    second.setPort(0);
    await second.start();
    t.after(() => second.close());
    assert.notEqual(second.port, first.port);
    assert.equal((await send(second.port, '/')).body, 'second');
  });

  it('lets an in-flight request finish on close(), refusing new connections', { timeout: 10_000 }, async (t) => {
    const entered = deferred();
    const release = deferred();
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => {
      s.get('/slow', async (r) => {
        entered.resolve();
        await release.promise;
        r.session.set('late', true);
        r.response.write('finished');
      });
    });
    const port = s.port;
    const slow = send(port, '/slow');
    await entered.promise;
    let closed = false;
    const closing = s.close().then(() => {
      closed = true;
    });
    await assert.rejects(send(port, '/slow'), { code: 'ECONNREFUSED' });
    assert.equal(closed, false);
    release.resolve();
    const reply = await slow;
    assert.equal(reply.status, 200);
    assert.equal(reply.body, 'finished');
    assert.equal(reply.headers['connection'], 'close');
    assert.equal(reply.setCookies.length, 1);
    await closing;
    assert.equal(closed, true);
  });

  it('lets a large in-flight answer reach the client whole on close()', { timeout: 10_000 }, async (t) => {
    const entered = deferred();
    const release = deferred();
    const size = 16 * 1024 * 1024;
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => {
      s.get('/big', async (r) => {
        entered.resolve();
        await release.promise;
        r.response.write(Buffer.alloc(size, 'x'));
      });
    });
    const big = send(s.port, '/big');
    await entered.promise;
    const closing = s.close();
    release.resolve();
    const reply = await big;
    await closing;
    assert.equal(reply.status, 200);
    assert.equal(reply.body.length, size);
  });

  it('resolves close() with an idle keep-alive connection open', { timeout: 10_000 }, async (t) => {
    const agent = new Agent({ keepAlive: true });
    t.after(() => agent.destroy());
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => s.get('/', ok('hi')));
    assert.equal((await send(s.port, '/', { agent })).body, 'hi');
    const idle = Object.values(agent.freeSockets).flat();
    assert.equal(idle.length, 1);
    const socket = idle[0];
    assert.ok(socket !== undefined);
    // The agent unref()s its idle sockets; keep this one counted until the server closes it.
    socket.ref();
    const socketClosed = once(socket, 'close');
    await s.close();
    await socketClosed;
    assert.equal(socket.destroyed, true);
  });

  it('cuts a request that outlives closeTimeout', { timeout: 10_000 }, async (t) => {
    const entered = deferred();
    const never = new Promise<never>(() => undefined);
    const s = await serve(t, { sessionStorage: new MemoryStorage(), closeTimeout: 50 }, (s) => {
      s.get('/hang', async () => {
        entered.resolve();
        await never;
      });
    });
    const hanging = send(s.port, '/hang');
    await entered.promise;
    const started = performance.now();
    await s.close();
    const waited = performance.now() - started;
    await assert.rejects(hanging, /socket hang up|ECONNRESET/);
    assert.ok(waited >= 40, `close() waited ${waited} ms for the 50 ms closeTimeout`);
    assert.ok(waited < 5_000, `close() waited ${waited} ms`);
  });

  it('returns the same promise from a second close()', async (t) => {
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, () => undefined);
    const a = s.close();
    const b = s.close();
    assert.equal(a, b);
    await a;
  });

  it('closes the storage on close(), even when never started', async () => {
    class Closing extends MemoryStorage {
      closed = 0;
      override async close(): Promise<void> {
        this.closed++;
        await super.close();
      }
    }
    const started = new Closing();
    const s = new Server({ sessionStorage: started });
    s.get('/set', (r) => {
      r.session.set('x', 1);
      r.response.write('ok');
    });
    await s.start();
    await send(s.port, '/set');
    await s.close();
    await s.close();
    assert.equal(started.closed, 1);

    // A storage the user gave is closed even when no request ever needed it.
    const idle = new Closing();
    const never = new Server({ sessionStorage: idle });
    await never.close();
    assert.equal(idle.closed, 1);
  });

  it('closes a storage without a close() method', async () => {
    const inner = new MemoryStorage();
    const storage: Storage = {
      get: (id) => inner.get(id),
      set: (id, data, ttl) => inner.set(id, data, ttl),
      touch: (id, ttl) => inner.touch(id, ttl),
      remove: (id) => inner.remove(id),
    };
    const s = new Server({ sessionStorage: storage });
    s.get('/set', (r) => {
      r.session.set('x', 1);
      r.response.write('ok');
    });
    await s.start();
    assert.equal((await send(s.port, '/set')).status, 200);
    await s.close();
    assert.equal(inner.size, 1);
    await inner.close();
  });

  it('answers with Connection: close once close() was called, found or not', async (t) => {
    const s = new Server({ sessionStorage: new MemoryStorage() });
    s.get('/found', ok('found'));
    const http = createHttpServer(s.handler);
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    t.after(() => new Promise((resolve) => http.close(resolve)));
    const port = (http.address() as AddressInfo).port;
    const agent = new Agent({ keepAlive: true });
    t.after(() => agent.destroy());
    assert.equal((await send(port, '/found', { agent })).headers['connection'], 'keep-alive');
    assert.equal((await send(port, '/missing', { agent })).headers['connection'], 'keep-alive');
    await s.close();
    const found = await send(port, '/found', { agent });
    assert.equal(found.body, 'found');
    assert.equal(found.headers['connection'], 'close');
    const missing = await send(port, '/missing', { agent });
    assert.equal(missing.status, 404);
    assert.equal(missing.headers['connection'], 'close');
  });

  it('serves through server.handler inside the user\'s own http server', async (t) => {
    const s = new Server({ sessionStorage: new MemoryStorage(), onError: () => undefined });
    s.get('/set', (r) => {
      r.session.set('n', 1);
      r.response.write('own server');
    });
    s.get('/get', (r) => r.response.write(r.session.data()));
    const http = createHttpServer(s.handler);
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    t.after(async () => {
      await new Promise((resolve) => http.close(resolve));
      await s.close();
    });
    const port = (http.address() as AddressInfo).port;
    const jar = new Jar();
    const set = await jar.send(port, '/set');
    assert.equal(set.body, 'own server');
    assert.ok(isValidId(jar.cookies.get('sid') as string));
    assert.equal((await jar.send(port, '/get')).body, '{"n":1}');
    assert.equal((await send(port, '/nope')).status, 404);
  });
});

describe('run() in a child process', () => {
  const cwd = fileURLToPath(new URL('..', import.meta.url));
  const fixture = (name: string): string => fileURLToPath(new URL(`fixtures/${name}`, import.meta.url));

  /** Spawns a fixture; the child is killed after `safetyMs` (which fails the test) if it has not exited. */
  function child(name: string, env: Record<string, string> = {}, safetyMs = 15_000) {
    const proc = spawn(process.execPath, ['--import', 'tsx', fixture(name)], { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.setEncoding('utf8').on('data', (c: string) => {
      stdout += c;
    });
    proc.stderr.setEncoding('utf8').on('data', (c: string) => {
      stderr += c;
    });
    let killed = false;
    const safety = setTimeout(() => {
      killed = true;
      proc.kill('SIGKILL');
    }, safetyMs);
    const exited = once(proc, 'exit').then(([code, signal]) => {
      clearTimeout(safety);
      return { code: code as number | null, signal: signal as NodeJS.Signals | null, killed, stdout, stderr };
    });
    const line = (re: RegExp): Promise<RegExpExecArray> =>
      new Promise((resolve, reject) => {
        const check = (): void => {
          const m = re.exec(stdout);
          if (m !== null) {
            proc.stdout.off('data', check);
            resolve(m);
          }
        };
        proc.stdout.on('data', check);
        void exited.then(() => reject(new Error(`exited before printing ${re}: ${stdout} ${stderr}`)));
        check();
      });
    return { proc, exited, line };
  }

  it('says in one line that it could not listen, and exits with 1', { timeout: 20_000 }, async (t) => {
    const taken = createHttpServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    t.after(() => new Promise((resolve) => taken.close(resolve)));
    const c = child('run-server.ts', { PORT: String((taken.address() as AddressInfo).port) });
    const result = await c.exited;
    assert.equal(result.killed, false, 'exited by itself');
    assert.equal(result.code, 1);
    assert.match(result.stderr, /^bare-session: could not listen on 127\.0\.0\.1 \d+ \(EADDRINUSE\)\n$/);
  });

  it('exits with 0 on a SIGTERM sent as soon as the address is printed', { timeout: 20_000 }, async () => {
    const c = child('run-server.ts');
    await c.line(/listening on http:\/\/127\.0\.0\.1:\d+\n/);
    c.proc.kill('SIGTERM');
    const result = await c.exited;
    assert.equal(result.killed, false, 'exited by itself');
    assert.equal(result.signal, null, 'the signal was handled, not fatal');
    assert.equal(result.code, 0, result.stderr);
  });

  it('prints the address, serves, and exits with 0 on SIGTERM', { timeout: 20_000 }, async () => {
    const c = child('run-server.ts');
    const [, port] = await c.line(/listening on http:\/\/127\.0\.0\.1:(\d+)\n/);
    await c.line(/^bare-session: sessions in memory \(MemoryStorage: lost on restart\)\n/m);
    const reply = await send(Number(port), '/hello');
    assert.equal(reply.status, 200);
    assert.equal(reply.body, 'hello from run');
    assert.equal(reply.setCookies.length, 1);
    c.proc.kill('SIGTERM');
    const result = await c.exited;
    assert.equal(result.killed, false, 'exited by itself');
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.signal, null);
    assert.match(result.stdout, /\nbare-session: stopped \(SIGTERM\)\n$/, 'one line says it stopped');
  });

  it('prints "all interfaces" when no address is set', { timeout: 20_000 }, async () => {
    const c = child('run-server.ts', { ADDRESS: '' });
    await c.line(/listening on http:\/\/localhost:\d+ \(all interfaces\)\n/);
    c.proc.kill('SIGINT');
    const result = await c.exited;
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /stopped \(SIGINT\)\n$/, 'names the signal');
  });

  it('exits with 1 on SIGINT when the storage fails to close', { timeout: 20_000 }, async () => {
    const c = child('run-server.ts', { FAIL_CLOSE: '1' });
    await c.line(/listening on/);
    c.proc.kill('SIGINT');
    const result = await c.exited;
    assert.equal(result.killed, false, 'exited by itself');
    assert.equal(result.code, 1);
    assert.match(result.stderr, /close failed/);
  });

  it('lets a program that starts and closes a server exit by itself', { timeout: 20_000 }, async () => {
    const c = child('start-close.ts');
    const result = await c.exited;
    assert.equal(result.killed, false, 'the safety kill fired: something kept the process alive');
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /served 200, closed\n/);
  });
});

describe('HTTP limits from node:http', () => {
  it('answers 431 to a 17 KiB header block', async (t) => {
    let handled = 0;
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => {
      s.get('/', () => {
        handled++;
      });
    });
    const reply = await send(s.port, '/', { headers: { 'x-big': 'a'.repeat(17 * 1024) } });
    assert.equal(reply.status, 431);
    assert.equal(handled, 0);
  });
});

describe('later changes', () => {
  it('applies middleware added after a route already served', async (t) => {
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => {
      s.get('/x', (r) => r.response.write('x'));
    });
    assert.equal((await send(s.port, '/x')).body, 'x');
    s.use(async (r, next) => {
      r.response.header('x-late', 'yes');
      await next();
    });
    assert.equal((await send(s.port, '/x')).headers['x-late'], 'yes');
  });

  it('gives r.cookie.set the server\'s cookiePath, cookieDomain and cookieSameSite', async (t) => {
    const s = await serve(t, { sessionStorage: new MemoryStorage(), cookiePath: '/app', cookieDomain: 'example.com', cookieSameSite: 'Strict' }, (s) => {
      s.get('/app/c', (r) => {
        r.cookie.set('theme', 'dark');
        r.response.write('ok');
      });
    });
    assert.deepEqual((await send(s.port, '/app/c')).setCookies, ['theme=dark; Domain=example.com; Path=/app; SameSite=Strict']);
  });
});
