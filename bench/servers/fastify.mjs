/**
 * fastify 5 + @fastify/cookie + @fastify/session: its default in-memory store (STORE unset), or
 * connect-redis on node-redis at REDIS_URL (STORE=redis), the Redis store its documentation
 * points to. The seed's three routes, with the same semantics. `rolling: false` is its
 * `resave: false`: with the default `rolling: true` every read would save the session again.
 *
 *   PORT=3000 node servers/fastify.mjs
 *   PORT=3000 STORE=redis REDIS_URL=redis://127.0.0.1:6379 node servers/fastify.mjs
 */
import fastifyCookie from '@fastify/cookie';
import fastifySession from '@fastify/session';
import Fastify from 'fastify';

const app = Fastify({ logger: false });
await app.register(fastifyCookie);
let store;
if (process.env.STORE === 'redis') {
  const { RedisStore } = await import('connect-redis');
  const { createClient } = await import('redis');
  store = new RedisStore({ client: await createClient({ url: process.env.REDIS_URL }).connect() });
}
await app.register(fastifySession, {
  ...(store === undefined ? {} : { store }),
  secret: 'bench secret: not a real one, long enough for everybody',
  saveUninitialized: false,
  rolling: false,
  cookie: { secure: false, httpOnly: true, sameSite: 'lax', path: '/', maxAge: 600_000 },
});
/** This process's writes: every /set stores a new count, as on every server of the bench. */
let writes = 0;
app.all('/set', async (req, reply) => {
  req.session.set('time', Math.floor(Date.now() / 1000));
  req.session.set('n', ++writes);
  reply.type('text/plain; charset=utf-8');
  return 'ok';
});
app.all('/get', async (req) => {
  const time = req.session.get('time');
  return time === undefined ? {} : { time, n: req.session.get('n') };
});
app.all('/del', async (req, reply) => {
  delete req.session.time;
  delete req.session.n;
  reply.type('text/plain; charset=utf-8');
  return 'ok';
});
await app.listen({ port: Number(process.env.PORT ?? 3000), host: '127.0.0.1' });
