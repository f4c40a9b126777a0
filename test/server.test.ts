import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Agent, createServer as createHttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type TestContext, describe, it } from 'node:test';
import { HttpError, META, MemoryStorage, Server, type ServerOptions, type Storage, createServer } from '../lib/index.js';
import { isValidId } from '../lib/id.js';
import { type Child, startChild } from './child.js';
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
    assert.equal((await send(s.port, '/')).body, 'root', '/ reaches the root route');
    assert.equal((await send(s.port, '/users')).body, 'list', 'a static path reaches its route');
    assert.equal((await send(s.port, '/users/42')).body, 'user 42', 'a :param takes its segment');
    assert.equal((await send(s.port, '/users/a%20b')).body, 'user a b', 'a :param is percent-decoded');
    assert.equal((await send(s.port, '/users/1/posts/2')).body, '{"id":"1","post":"2"}', 'two :params each take their segment');
    assert.equal((await send(s.port, '/files/a/b/c.txt')).body, 'rest=a/b/c.txt', 'a trailing * takes the rest of the path');
    // `*` is one or more segments: the folder itself is not matched (as Express and trouter).
    assert.equal((await send(s.port, '/files')).status, 404, '/files/* does not match /files');
    assert.equal((await send(s.port, '/files/')).status, 404, '/files/* does not match /files/ either (trailing slash ignored)');
    assert.equal((await send(s.port, '/users/42?x=1')).body, 'user 42', 'the query is not part of the path matched');
  });

  it('ignores a trailing slash in the request path', async (t) => {
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => {
      s.get('/users', ok('list'));
      s.get('/users/:id', (r) => r.response.write(r.params['id'] ?? ''));
    });
    assert.equal((await send(s.port, '/users/')).body, 'list', 'a trailing slash reaches the static route');
    assert.equal((await send(s.port, '/users/7/')).body, '7', 'a trailing slash reaches the :param route, not into the param');
    assert.equal((await send(s.port, '/users/?q=1')).body, 'list', 'a trailing slash before the query is ignored too');
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
    assert.equal((await send(s.port, '/api/ping')).body, 'api ping', "a group's route is under its prefix");
    assert.equal((await send(s.port, '/api/v1/users/9')).body, 'v1 user 9', 'a nested group joins both prefixes, whatever their slashes');
    assert.equal((await send(s.port, '/api/v1/admin')).body, 'v1 admin', "a group's / route is the group's own path");
    assert.equal((await send(s.port, '/ping')).status, 404, 'a group route is not served without its prefix');
    assert.equal((await send(s.port, '/v1/users/9')).status, 404, 'a nested group route is not served without the outer prefix');
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
    assert.equal(ran, 2, 'HEAD ran the GET handler, once for each request');
    assert.equal(head.status, 200, 'HEAD answers with the GET status');
    assert.equal(head.body, '', 'HEAD sends no body');
    assert.equal(head.headers['content-length'], String(Buffer.byteLength(get.body)), "HEAD's Content-Length is the GET body's length");
    assert.equal(head.headers['content-length'], get.headers['content-length'], 'HEAD and GET send the same Content-Length');
    assert.equal(head.headers['content-type'], get.headers['content-type'], 'HEAD and GET send the same Content-Type');
    assert.equal(head.headers['x-doc'], 'yes', "HEAD sends the handler's own headers");
  });

  it('answers 404 for an unknown path', async (t) => {
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => s.get('/here', ok('here')));
    for (const path of ['/nope', '/here/there', '/%2e%2e/etc/passwd']) {
      const reply = await send(s.port, path);
      assert.equal(reply.status, 404, `${path} is not found`);
      assert.equal(reply.body, 'Not Found', `${path}: the 404 body is the status text`);
      assert.deepEqual(reply.setCookies, [], `${path}: a 404 sets no cookie`);
    }
  });

  it('answers 405 with Allow for a known path and another method', async (t) => {
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => {
      s.get('/thing', ok('get'));
      s.post('/thing', ok('post'));
      s.delete('/thing/:id', ok('delete'));
    });
    const put = await send(s.port, '/thing', { method: 'PUT' });
    assert.equal(put.status, 405, 'another method on a known path is 405');
    assert.equal(put.body, 'Method Not Allowed', 'the 405 body is the status text');
    assert.equal(put.headers['allow'], 'GET, POST, HEAD, OPTIONS', "405 lists the path's methods, with HEAD and OPTIONS");
    const get = await send(s.port, '/thing/3');
    assert.equal(get.status, 405, 'GET on a path with only DELETE is 405');
    assert.equal(get.headers['allow'], 'DELETE, OPTIONS', 'the 405 of a :param route lists its methods');
  });

  it('routes each method to its own handler', async (t) => {
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => {
      s.get('/m', ok('GET')).post('/m', ok('POST')).put('/m', ok('PUT')).patch('/m', ok('PATCH'));
      s.delete('/m', ok('DELETE')).options('/m', ok('OPTIONS')).head('/h', (r) => r.response.header('X-Head', 'own'));
    });
    for (const method of ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']) {
      assert.equal((await send(s.port, '/m', { method })).body, method, `${method} reaches its own handler`);
    }
    const head = await send(s.port, '/h', { method: 'HEAD' });
    assert.equal(head.status, 200, 'an explicit head route answers HEAD');
    assert.equal(head.headers['x-head'], 'own', 'the head handler ran');
    assert.equal((await send(s.port, '/h')).headers['allow'], 'HEAD, OPTIONS', 'GET on a HEAD-only path lists HEAD and OPTIONS');
  });

  it('matches every method with all', async (t) => {
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => {
      s.all('/any', (r) => r.response.write(r.method));
      s.get('/mixed', ok('get wins'));
      s.all('/mixed', ok('all'));
    });
    for (const method of ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'PURGE']) {
      const reply = await send(s.port, '/any', { method });
      assert.equal(reply.status, 200, `${method} reaches the all route`);
      assert.equal(reply.body, method, `the all route sees the method ${method}`);
    }
    assert.equal((await send(s.port, '/any', { method: 'HEAD' })).status, 200, 'the all route answers HEAD');
    assert.equal((await send(s.port, '/mixed')).body, 'get wins', 'a get route wins over an all route on its path');
    assert.equal((await send(s.port, '/mixed', { method: 'POST' })).body, 'all', 'the all route takes the methods without their own route');
  });

  it('serves routes registered on the server and in group("/")', async (t) => {
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => {
      s.all('/on-server', ok('server'));
      s.group('/', (group) => group.all('/in-group', ok('group')));
    });
    assert.equal((await send(s.port, '/on-server')).body, 'server', 'a route registered on the server is served');
    assert.equal((await send(s.port, '/in-group')).body, 'group', 'a route registered in group("/") is served');
  });

  it('throws when a route is registered twice, on the server or in a group', () => {
    const s = new Server({ sessionStorage: new MemoryStorage() });
    s.get('/x', ok('x'));
    assert.throws(() => s.get('/x', ok('again')), (e: unknown) => e instanceof TypeError && /already registered/.test(e.message), 'the same GET route twice is refused with a TypeError');
    assert.throws(() => s.group('/', (g) => g.get('/x/', ok('again'))), /already registered/, 'a route in group("/") that the server already has (a trailing slash aside) is refused');
    s.all('/y', ok('y'));
    assert.throws(() => s.all('/y', ok('y')), /already registered/, 'the same all route twice is refused');
    s.post('/x', ok('post is new'));
  });

  it('refuses a handler that is not a function and a malformed pattern', () => {
    const s = new Server({ sessionStorage: new MemoryStorage() });
    assert.throws(() => s.get('/x', 'nope' as never), /handler for GET \/x is invalid/, 'a handler that is not a function is refused, naming the route');
    assert.throws(() => s.get(5 as never, ok('x')), /route pattern is invalid/, 'a pattern that is not a string is refused');
    assert.throws(() => s.get('/a/*/b', ok('x')), TypeError, 'a * that is not last is refused');
    assert.throws(() => s.use('nope' as never), /middleware is invalid/, 'a middleware that is not a function is refused');
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
    assert.equal(out.body, '', 'the automatic OPTIONS answer has no body');
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
    assert.deepEqual(seen, ['böb'], 'the escape is decoded as UTF-8');
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
    assert.equal(out.status, 200, `the 10 000 middleware ran without an error: ${out.body}`);
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
    assert.equal((await send(s.port, '/h')).status, 200, 'the handler answers 200 through the middleware');
    assert.deepEqual(log, ['a before /h', 'b before', 'handler', 'b after', 'a after 200'], 'the middleware run in order, before and after the handler');
    log.length = 0;
    const missing = await send(s.port, '/missing');
    assert.equal(missing.status, 404, 'an unknown path answers 404');
    assert.deepEqual(log, ['a before /missing', 'b before', 'b after', 'a after 404'], 'the middleware run around a 404 too');
    log.length = 0;
    const wrong = await send(s.port, '/h', { method: 'POST' });
    assert.equal(wrong.status, 405, 'a wrong method answers 405');
    assert.equal(wrong.headers['allow'], 'GET, HEAD, OPTIONS', 'the 405 lists the methods of the path');
    assert.deepEqual(log, ['a before /h', 'b before', 'b after', 'a after 405'], 'the middleware run around a 405 too');
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
      assert.deepEqual(log, expected, `${path} runs the middleware of its groups, parents first`);
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
    assert.equal(denied.status, 401, "the middleware's status is sent");
    assert.equal(denied.body, 'denied', "the middleware's body is sent");
    assert.equal(denied.headers['www-authenticate'], 'Bearer', "the middleware's header is sent");
    assert.equal(handled, 0, 'the handler never ran');
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
    assert.equal(reply.status, 500, 'a second next() fails the request with 500');
    assert.equal(reply.body, 'Internal Server Error', 'the 500 shows only its status text');
    assert.equal(handled, 1, 'the handler ran once');
    assert.equal(errors.length, 1, 'the failure is reported once');
    assert.match(String(errors[0]), /next\(\) called twice/, 'the error says next() was called twice');
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
    assert.equal(first.body, '1', "the handler sees the middleware's write");
    assert.equal(first.headers['x-handler-wrote'], 'yes', "the middleware sees the handler's write after next()");
    assert.equal((await jar.send(s.port, '/count')).body, '2', 'the count was stored and read back on the next request');
    const id = jar.cookies.get('sid') as string;
    const { [META.created]: created, ...stored } = { ...(await storage.get(id)) };
    assert.deepEqual(stored, { visits: 2, handler: 'yes' }, 'both writes were stored');
    assert.equal(typeof created, 'number', 'beside the creation time the library keeps');
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
      assert.equal(reply.status, 500, `a handler that ${name} fails the request with 500`);
      assert.equal(reply.body, 'Internal Server Error', `a handler that ${name}: the 500 shows only its status text`);
      assert.doesNotMatch(reply.body, /secret|detail|at /, `a handler that ${name}: nothing of the error reaches the client`);
      assert.equal(reply.headers['content-type'], 'text/plain; charset=utf-8', `a handler that ${name}: the 500 is plain text`);
      assert.equal(errors.length, 1, `a handler that ${name} is reported once`);
      assert.equal(errors[0]?.[1], '/fail', `a handler that ${name}: the report carries the request`);
      assert.equal((await send(s.port, '/fine')).body, 'fine', `after a handler that ${name}, the server still serves`);
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
    assert.deepEqual(seen, [boom, 'POST', '/fail', '1'], 'onError receives the very error, and the request with its method, path and query');
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
    assert.equal((await send(s.port, '/fail')).status, 500, 'the handler failure still answers 500');
    assert.equal((await send(s.port, '/fine')).body, 'fine', 'the server still serves after the hook threw');
    const lines = logger.of('error');
    assert.equal(lines.length, 1, "the hook's failure is logged once");
    assert.match(lines[0] as string, /hook broke/, "the log line carries the hook's error");
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
    assert.equal(reply.status, 500, 'the handler failure still answers 500');
    assert.equal(reply.body, 'Internal Server Error', 'the 500 shows only its status text');
    assert.equal((await send(s.port, '/fine')).body, 'fine', 'the server still serves after the hook and the logger threw');
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
    assert.equal(forbidden.status, 403, "an HttpError's status is sent");
    assert.equal(forbidden.body, 'nope', "a 4xx HttpError's message is sent");
    assert.equal(forbidden.headers['x-before'], undefined, 'headers set before the HttpError are dropped');
    assert.equal((await send(s.port, '/gone')).body, 'Not Found', 'an HttpError without a message sends its status text');
    assert.equal(errors.length, 0, 'a 4xx HttpError is not reported');
    // A 5xx HttpError is not exposed: generic body, and reported.
    const upstream = await send(s.port, '/upstream');
    assert.equal(upstream.status, 503, "a 5xx HttpError's status is sent");
    assert.equal(upstream.body, 'Service Unavailable', "a 5xx HttpError's message is not sent: only the status text");
    assert.equal(errors.length, 1, 'a 5xx HttpError is reported');
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
    assert.equal(reply.status, 500, 'the failed handler answers 500');
    assert.deepEqual(reply.setCookies, [], 'the cookies set before the failure are dropped');
    assert.equal(reply.headers['x-partial'], undefined, 'the headers set before the failure are dropped');
    assert.equal(reply.headers['cache-control'], undefined, "the handler's Cache-Control is dropped");
    assert.equal(reply.body, 'Internal Server Error', 'the body written before the failure is dropped');
    assert.equal(storage.size, 0, 'the session write before the failure is dropped');
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
    assert.ok(isValidId(id), '/login issued a valid id');
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
    await assert.rejects(send(s.port, '/stream'), /aborted|socket hang up|ECONNRESET/, 'the client sees the connection cut mid-answer');
    assert.equal(errors.length, 1, 'the failure after the response was taken over is reported');
    assert.equal((await send(s.port, '/fine')).body, 'fine', 'the server still serves after cutting the connection');
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
    ['SameSite=None without Secure', { cookieSameSite: 'None' }, /^option cookieSecure is invalid: "auto" \(expected true: cookieSameSite 'None' needs cookieSecure: true \(or 'auto' with https\)\)/],
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
      assert.throws(() => new Server(options), (e: unknown) => e instanceof TypeError && message.test(e.message), `${name} is refused with a TypeError naming the option`);
    });
  }

  it('refuses options that are not an object', () => {
    assert.throws(() => new Server(null as never), /^TypeError: options are invalid: null/, 'null options are refused');
    assert.throws(() => new Server('port=1' as never), /options are invalid/, 'a string for options is refused');
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
      assert.ok(new Server({ sessionStorage: new MemoryStorage(), ...options }) instanceof Server, `${JSON.stringify(options)} is accepted`);
    }
  });

  it('returns the server from every setter', () => {
    const s = new Server();
    const storage = new MemoryStorage();
    assert.equal(s.setPort(0), s, 'setPort returns the server');
    assert.equal(s.setAddress('127.0.0.1'), s, 'setAddress returns the server');
    assert.equal(s.setSessionMaxAge('1m'), s, 'setSessionMaxAge returns the server');
    assert.equal(s.setSessionStorage(storage), s, 'setSessionStorage returns the server');
    assert.equal(s.setSessionIdName('token'), s, 'setSessionIdName returns the server');
    assert.equal(s.setSessionCookieOutput(false), s, 'setSessionCookieOutput returns the server');
    assert.equal(s.setSessionCookieMaxAge(0), s, 'setSessionCookieMaxAge returns the server');
    assert.equal(s.setSessionIdGenerator(() => 'i'.repeat(20), (id) => id === 'i'.repeat(20)), s, 'setSessionIdGenerator returns the server');
    assert.equal(s.setSessionMaxSize(2048), s, 'setSessionMaxSize returns the server');
    assert.equal(s.setCookiePath('/app'), s, 'setCookiePath returns the server');
    assert.equal(s.setCookieDomain('example.com'), s, 'setCookieDomain returns the server');
    assert.equal(s.setCookieSameSite('strict'), s, 'setCookieSameSite returns the server');
    assert.equal(s.setCookieSecure(true), s, 'setCookieSecure returns the server');
    assert.equal(s.setCookieHttpOnly(false), s, 'setCookieHttpOnly returns the server');
    assert.equal(s.setTrustProxy(true), s, 'setTrustProxy returns the server');
    assert.equal(s.setBodyLimit(10), s, 'setBodyLimit returns the server');
    assert.equal(s.setCloseTimeout('1s'), s, 'setCloseTimeout returns the server');
    assert.equal(s.setOnError(() => undefined), s, 'setOnError returns the server');
    assert.equal(s.setLogger(new MemoryLogger()), s, 'setLogger returns the server');
    assert.equal(s.use(async (_r, next) => next()), s, 'use returns the server');
    assert.equal(s.middleware(), s, 'middleware() with nothing returns the server');
    assert.equal(s.group('/g', () => undefined), s, 'group returns the server');
    assert.equal(s.storage, storage, 'storage is the storage set');
  });

  it('refuses bad setter values with the option\'s name, keeping the previous value', async (t) => {
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => {
      s.get('/set', (r) => {
        r.session.set('x', 1);
        r.response.write('ok');
      });
    });
    assert.throws(() => s.setPort(1.5), /^TypeError: option port is invalid/, 'setPort refuses a fractional port');
    assert.throws(() => s.setSessionMaxAge('forever' as never), /option sessionMaxAge is invalid/, 'setSessionMaxAge refuses a malformed duration');
    assert.throws(() => s.setSessionStorage({ get() {} } as never), /option sessionStorage is invalid/, 'setSessionStorage refuses a storage without its methods');
    assert.throws(() => s.setSessionIdName('__Host-sid'), /option cookieSecure is invalid/, 'setSessionIdName refuses __Host- while cookieSecure is not true');
    const reply = await send(s.port, '/set');
    assert.equal(reply.status, 200, 'the server still serves with its previous settings');
    assert.ok(cookieValue(reply.setCookies, 'sid') !== undefined, 'the cookie keeps its name');
  });

  it('applies session settings changed after the first request', async (t) => {
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => {
      s.get('/set', (r) => {
        r.session.set('x', 1);
        r.response.write('ok');
      });
    });
    assert.ok(cookieValue((await send(s.port, '/set')).setCookies, 'sid') !== undefined, 'the first cookie is named sid');
    s.setSessionIdName('token').setSessionCookieMaxAge('2h');
    const after = await send(s.port, '/set');
    assert.match(after.setCookies[0] as string, /^token=[\w-]{43}; Max-Age=7200;/, 'the cookie name and Max-Age changed after the first request apply to the next');
  });

  it('makes the same thing with createServer', () => {
    const s = createServer({ port: 1234, sessionStorage: new MemoryStorage() });
    assert.ok(s instanceof Server, 'createServer makes a Server');
    assert.equal(s.port, 1234, 'createServer takes the options');
  });
});

describe('lifecycle', () => {
  it('listens on a real port after start()', async (t) => {
    const s = new Server({ sessionStorage: new MemoryStorage(), address: '127.0.0.1' });
    s.get('/', ok('up'));
    assert.equal(s.port, 0, 'the port is 0 before start()');
    assert.equal(await s.start(), s, 'start() resolves to the server');
    t.after(() => s.close());
    assert.ok(s.port > 0 && s.port < 65536, 'start() took a real port');
    assert.equal((await send(s.port, '/')).body, 'up', 'the server answers on that port');
  });

  it('rejects a second start()', async (t) => {
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, () => undefined);
    await assert.rejects(s.start(), /already started/, 'a second start() is refused');
  });

  it('rejects start() on a port in use, and can start again on another', async (t) => {
    const first = await serve(t, { sessionStorage: new MemoryStorage(), address: '127.0.0.1' }, () => undefined);
    const second = new Server({ sessionStorage: new MemoryStorage(), address: '127.0.0.1', port: first.port });
    second.get('/', ok('second'));
    await assert.rejects(second.start(), { code: 'EADDRINUSE' }, 'start() on a port in use rejects with EADDRINUSE');
    second.setPort(0);
    await second.start();
    t.after(() => second.close());
    assert.notEqual(second.port, first.port, 'the second start took another port');
    assert.equal((await send(second.port, '/')).body, 'second', 'the server that failed to start serves once started');
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
    await assert.rejects(send(port, '/slow'), { code: 'ECONNREFUSED' }, 'a new connection after close() is refused');
    assert.equal(closed, false, 'close() waits for the in-flight request');
    release.resolve();
    const reply = await slow;
    assert.equal(reply.status, 200, 'the in-flight request succeeds');
    assert.equal(reply.body, 'finished', 'the in-flight request gets its whole body');
    assert.equal(reply.headers['connection'], 'close', 'the in-flight answer closes its connection');
    assert.equal(reply.setCookies.length, 1, 'the in-flight request still gets its session cookie');
    await closing;
    assert.equal(closed, true, 'close() resolves once the in-flight request is done');
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
    assert.equal(reply.status, 200, 'the large in-flight answer succeeds');
    assert.equal(reply.body.length, size, 'all 16 MiB reach the client');
  });

  it('resolves close() with an idle keep-alive connection open', { timeout: 10_000 }, async (t) => {
    const agent = new Agent({ keepAlive: true });
    t.after(() => agent.destroy());
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => s.get('/', ok('hi')));
    assert.equal((await send(s.port, '/', { agent })).body, 'hi', 'the keep-alive request is answered');
    const idle = Object.values(agent.freeSockets).flat();
    assert.equal(idle.length, 1, 'one idle keep-alive socket is left open');
    const socket = idle[0];
    assert.ok(socket !== undefined, 'the idle socket is there');
    // The agent unref()s its idle sockets; keep this one counted until the server closes it.
    socket.ref();
    const socketClosed = once(socket, 'close');
    await s.close();
    await socketClosed;
    assert.equal(socket.destroyed, true, 'close() destroyed the idle keep-alive socket');
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
    await assert.rejects(hanging, /socket hang up|ECONNRESET/, 'the request past closeTimeout is cut');
    assert.ok(waited >= 40, `close() waited ${waited} ms for the 50 ms closeTimeout`);
    assert.ok(waited < 5_000, `close() waited ${waited} ms`);
  });

  it('returns the same promise from a second close()', async (t) => {
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, () => undefined);
    const a = s.close();
    const b = s.close();
    assert.equal(a, b, 'a second close() returns the same promise');
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
    assert.equal(started.closed, 1, 'the storage was closed once, for two close() calls');

    // A storage the user gave is closed even when no request ever needed it.
    const idle = new Closing();
    const never = new Server({ sessionStorage: idle });
    await never.close();
    assert.equal(idle.closed, 1, 'a server never started closes the storage it was given');
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
    assert.equal((await send(s.port, '/set')).status, 200, 'a storage without close() serves');
    await s.close();
    assert.equal(inner.size, 1, 'the session was written to the storage without close()');
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
    assert.equal((await send(port, '/found', { agent })).headers['connection'], 'keep-alive', 'a found path keeps the connection alive before close()');
    assert.equal((await send(port, '/missing', { agent })).headers['connection'], 'keep-alive', 'a 404 keeps the connection alive before close()');
    await s.close();
    const found = await send(port, '/found', { agent });
    assert.equal(found.body, 'found', 'a found path is still served after close() on an open connection');
    assert.equal(found.headers['connection'], 'close', 'after close() a found path answers Connection: close');
    const missing = await send(port, '/missing', { agent });
    assert.equal(missing.status, 404, 'a missing path is still 404 after close()');
    assert.equal(missing.headers['connection'], 'close', 'after close() a 404 answers Connection: close');
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
    assert.equal(set.body, 'own server', "server.handler serves in the user's own http server");
    assert.ok(isValidId(jar.cookies.get('sid') as string), "server.handler issues a session cookie in the user's own http server");
    assert.equal((await jar.send(port, '/get')).body, '{"n":1}', "the session is read back through the user's own http server");
    assert.equal((await send(port, '/nope')).status, 404, "an unknown path is 404 in the user's own http server");
  });
});

describe('run() in a child process', () => {
  // A child that hangs is killed after 15 s by startChild's safety kill, which fails the wait on it.
  const fixture = (t: TestContext, name: string, env: Record<string, string> = {}): Child => startChild(`test/fixtures/${name}`, { env, t });

  it('says in one line that it could not listen, and exits with 1', { timeout: 20_000 }, async (t) => {
    const taken = createHttpServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    t.after(() => new Promise((resolve) => taken.close(resolve)));
    const c = fixture(t, 'run-server.ts', { PORT: String((taken.address() as AddressInfo).port) });
    const result = await c.exited;
    assert.equal(result.signal, null, 'exited by itself');
    assert.equal(result.code, 1, 'a port in use exits with 1');
    assert.match(result.stderr, /^bare-session: could not listen on 127\.0\.0\.1 \d+ \(EADDRINUSE\)\n$/, 'one line on stderr says the port is in use, and nothing else');
  });

  it('exits with 0 on a SIGTERM sent as soon as the address is printed', { timeout: 20_000 }, async (t) => {
    const c = fixture(t, 'run-server.ts');
    await c.line(/listening on http:\/\/127\.0\.0\.1:\d+\n/);
    const result = await c.stop('SIGTERM');
    assert.equal(result.signal, null, 'the signal was handled, not fatal');
    assert.equal(result.code, 0, `exited with 0: ${result.stderr}`);
  });

  it('prints the address, serves, and exits with 0 on SIGTERM', { timeout: 20_000 }, async (t) => {
    const c = fixture(t, 'run-server.ts');
    const [, port] = await c.line(/listening on http:\/\/127\.0\.0\.1:(\d+)\n/);
    await c.line(/^bare-session: sessions in memory \(MemoryStorage: lost on restart\)\n/m);
    const reply = await send(Number(port), '/hello');
    assert.equal(reply.status, 200, "the child's server answers");
    assert.equal(reply.body, 'hello from run', "the child's route ran");
    assert.equal(reply.setCookies.length, 1, "the child's server sets the session cookie");
    const result = await c.stop('SIGTERM');
    assert.equal(result.code, 0, `exited with 0: ${result.stderr}`);
    assert.equal(result.signal, null, 'the SIGTERM was handled, not fatal');
    assert.match(result.stdout, /\nbare-session: stopped \(SIGTERM\)\n$/, 'one line says it stopped');
  });

  it('prints "all interfaces" when no address is set', { timeout: 20_000 }, async (t) => {
    const c = fixture(t, 'run-server.ts', { ADDRESS: '' });
    await c.line(/listening on http:\/\/localhost:\d+ \(all interfaces\)\n/);
    const result = await c.stop('SIGINT');
    assert.equal(result.code, 0, `exited with 0: ${result.stderr}`);
    assert.match(result.stdout, /stopped \(SIGINT\)\n$/, 'names the signal');
  });

  it('exits with 1 on SIGINT when the storage fails to close', { timeout: 20_000 }, async (t) => {
    const c = fixture(t, 'run-server.ts', { FAIL_CLOSE: '1' });
    await c.line(/listening on/);
    const result = await c.stop('SIGINT');
    assert.equal(result.signal, null, 'exited by itself');
    assert.equal(result.code, 1, 'a storage that fails to close makes the exit code 1');
    assert.match(result.stderr, /close failed/, "stderr shows the storage's close failure");
  });

  it('lets a program that starts and closes a server exit by itself', { timeout: 20_000 }, async (t) => {
    // Were something to keep the process alive, the safety kill would end it and fail this wait.
    const result = await fixture(t, 'start-close.ts').exited;
    assert.equal(result.signal, null, 'exited by itself');
    assert.equal(result.code, 0, `exited with 0: ${result.stderr}`);
    assert.match(result.stdout, /served 200, closed\n/, 'the program served its request and closed');
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
    assert.equal(reply.status, 431, 'a 17 KiB header block is refused with 431');
    assert.equal(handled, 0, 'the handler never ran');
  });
});

describe('later changes', () => {
  it('applies middleware added after a route already served', async (t) => {
    const s = await serve(t, { sessionStorage: new MemoryStorage() }, (s) => {
      s.get('/x', (r) => r.response.write('x'));
    });
    assert.equal((await send(s.port, '/x')).body, 'x', 'the route answers before the middleware is added');
    s.use(async (r, next) => {
      r.response.header('x-late', 'yes');
      await next();
    });
    assert.equal((await send(s.port, '/x')).headers['x-late'], 'yes', 'middleware added after the first request runs for the next');
  });

  it('gives r.cookie.set the server\'s cookiePath, cookieDomain and cookieSameSite', async (t) => {
    const s = await serve(t, { sessionStorage: new MemoryStorage(), cookiePath: '/app', cookieDomain: 'example.com', cookieSameSite: 'Strict' }, (s) => {
      s.get('/app/c', (r) => {
        r.cookie.set('theme', 'dark');
        r.response.write('ok');
      });
    });
    assert.deepEqual((await send(s.port, '/app/c')).setCookies, ['theme=dark; Domain=example.com; Path=/app; SameSite=Strict'], "r.cookie.set takes the server's cookiePath, cookieDomain and cookieSameSite");
  });
});
