/**
 * express 5 + express-session, with its MemoryStore (STORE unset), session-file-store in
 * $TMPDIR/sessions (STORE=file), or connect-redis on node-redis at REDIS_URL (STORE=redis).
 * The seed's three routes, with the same semantics.
 *
 *   PORT=3000 node servers/express.mjs            PORT=3000 STORE=file node servers/express.mjs
 *   PORT=3000 STORE=redis REDIS_URL=redis://127.0.0.1:6379 node servers/express.mjs
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import express from 'express';
import session from 'express-session';
import sessionFileStore from 'session-file-store';

const options = {
  secret: 'bench secret: not a real one, long enough for everybody',
  resave: false,
  saveUninitialized: false,
  cookie: { secure: false, httpOnly: true, sameSite: 'lax', maxAge: 600_000 },
};
if (process.env.STORE === 'file') {
  const FileStore = sessionFileStore(session);
  // ttl follows the cookie's maxAge (10 min); defaults otherwise (retries, write-file-atomic).
  options.store = new FileStore({ path: join(tmpdir(), 'sessions'), ttl: 600 });
} else if (process.env.STORE === 'redis') {
  const { RedisStore } = await import('connect-redis');
  const { createClient } = await import('redis');
  const client = await createClient({ url: process.env.REDIS_URL }).connect();
  // Defaults otherwise: prefix 'sess:', the ttl from the cookie's maxAge (10 min), touch on.
  options.store = new RedisStore({ client });
}

const app = express();
app.disable('x-powered-by');
app.use(session(options));
/** This process's writes: every /set stores a new count, as on every server of the bench. */
let writes = 0;
app.all('/set', (req, res) => {
  req.session.time = Math.floor(Date.now() / 1000);
  req.session.n = ++writes;
  res.type('text/plain').send('ok');
});
app.all('/get', (req, res) => {
  res.json(req.session.time === undefined ? {} : { time: req.session.time, n: req.session.n });
});
app.all('/del', (req, res) => {
  delete req.session.time;
  delete req.session.n;
  res.type('text/plain').send('ok');
});
app.listen(Number(process.env.PORT ?? 3000), '127.0.0.1');
