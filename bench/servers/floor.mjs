/**
 * The floor: the least a session can cost on node:http. A Map of sessions, no expiry, no
 * signing, no persistence: parse the cookie, issue a random 32-byte base64url id on the first
 * write (with Set-Cookie), answer JSON. Same routes and answers as the seed program.
 *
 *   PORT=3000 node servers/floor.mjs
 */
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { NAME, cookieId } from './floor-cookie.mjs';

const MAX_AGE = 600;
/** @type {Map<string, Record<string, number>>} */
const sessions = new Map();
/** This process's writes: every /set stores a new count, as on every server of the bench. */
let writes = 0;

createServer((req, res) => {
  const path = req.url;
  const id = cookieId(req.headers.cookie);
  const data = id === undefined ? undefined : sessions.get(id);
  if (path === '/set') {
    if (data === undefined) {
      const fresh = randomBytes(32).toString('base64url');
      sessions.set(fresh, { time: Math.floor(Date.now() / 1000), n: ++writes });
      res.setHeader('Set-Cookie', `${NAME}=${fresh}; Path=/; Max-Age=${MAX_AGE}; HttpOnly; SameSite=Lax`);
    } else {
      data.time = Math.floor(Date.now() / 1000);
      data.n = ++writes;
    }
    res.setHeader('Content-Type', 'text/plain; charset=utf-8');
    res.end('ok');
  } else if (path === '/get') {
    res.setHeader('Content-Type', 'application/json; charset=utf-8');
    res.end(data === undefined ? '{}' : JSON.stringify(data));
  } else if (path === '/del') {
    if (data !== undefined) sessions.set(id, {});
    res.setHeader('Content-Type', 'text/plain; charset=utf-8');
    res.end('ok');
  } else {
    res.statusCode = 404;
    res.end('Not Found');
  }
}).listen(Number(process.env.PORT ?? 3000), '127.0.0.1');
