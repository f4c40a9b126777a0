/**
 * fastify 5 + @fastify/cookie + @fastify/session (its default in-memory store). The seed's
 * three routes, with the same semantics. `rolling: false` is its `resave: false`: with the
 * default `rolling: true` every read would save the session again.
 *
 *   PORT=3000 node servers/fastify.mjs
 */
import fastifyCookie from '@fastify/cookie';
import fastifySession from '@fastify/session';
import Fastify from 'fastify';

const app = Fastify({ logger: false });
await app.register(fastifyCookie);
await app.register(fastifySession, {
  secret: 'bench secret: not a real one, long enough for everybody',
  saveUninitialized: false,
  rolling: false,
  cookie: { secure: false, httpOnly: true, sameSite: 'lax', path: '/', maxAge: 60_000 },
});
app.all('/set', async (req, reply) => {
  req.session.set('time', Math.floor(Date.now() / 1000));
  reply.type('text/plain; charset=utf-8');
  return 'ok';
});
app.all('/get', async (req) => {
  const time = req.session.get('time');
  return time === undefined ? {} : { time };
});
app.all('/del', async (req, reply) => {
  delete req.session.time;
  reply.type('text/plain; charset=utf-8');
  return 'ok';
});
await app.listen({ port: Number(process.env.PORT ?? 3000), host: '127.0.0.1' });
