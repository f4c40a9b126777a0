/**
 * The floor on Redis: the least a session in Redis can cost on node:http. servers/floor.mjs
 * with each session as one JSON string in Redis instead of a Map entry, through node-redis: a
 * read is one GET; a write a GET (does the session exist?) then a SET; a new session one SET.
 * Every SET gives the session 10 min (PX), as the other servers' sessions live 10 min; a read does
 * not extend it. No signing, no merging of concurrent writes, no owner index.
 *
 *   PORT=3000 REDIS_URL=redis://127.0.0.1:6379 node servers/floor-redis.mjs
 */
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { NAME, cookieId } from './floor-cookie.mjs';
import { createClient } from 'redis';

const MAX_AGE = 600;
const PREFIX = 'floor:';
const client = await createClient({ url: process.env.REDIS_URL || 'redis://127.0.0.1:6379' }).connect();
/** This process's writes: every /set stores a new count, as on every server of the bench. */
let writes = 0;

const store = (id, data) => client.set(PREFIX + id, JSON.stringify(data), { PX: MAX_AGE * 1000 });

createServer(async (req, res) => {
  try {
    const path = req.url;
    const id = cookieId(req.headers.cookie);
    const json = id === undefined || (path !== '/set' && path !== '/get' && path !== '/del') ? null : await client.get(PREFIX + id);
    const data = json === null ? undefined : JSON.parse(json);
    if (path === '/set') {
      const next = { ...data, time: Math.floor(Date.now() / 1000), n: ++writes };
      if (data === undefined) {
        const fresh = randomBytes(32).toString('base64url');
        await store(fresh, next);
        res.setHeader('Set-Cookie', `${NAME}=${fresh}; Path=/; Max-Age=${MAX_AGE}; HttpOnly; SameSite=Lax`);
      } else {
        await store(id, next);
      }
      res.setHeader('Content-Type', 'text/plain; charset=utf-8');
      res.end('ok');
    } else if (path === '/get') {
      res.setHeader('Content-Type', 'application/json; charset=utf-8');
      res.end(json ?? '{}');
    } else if (path === '/del') {
      if (data !== undefined) await store(id, {});
      res.setHeader('Content-Type', 'text/plain; charset=utf-8');
      res.end('ok');
    } else {
      res.statusCode = 404;
      res.end('Not Found');
    }
  } catch {
    res.statusCode = 503;
    res.end('Service Unavailable');
  }
}).listen(Number(process.env.PORT ?? 3000), '127.0.0.1');
