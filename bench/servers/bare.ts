/**
 * bare-session for the bench: the seed program's routes, except that /set stores, beside the
 * time, a count of this process's writes (`n`), so that every write changes the session, on
 * every server the bench compares (without it, two writes in one second would store what is
 * there already, which bare-session does not count as a change: a write would be a read).
 *
 *   STORE=memory|file|redis PORT=3000 [REDIS_URL=redis://127.0.0.1:6379] node --import tsx servers/bare.ts
 *
 * RedisStorage runs in one process (examples/cluster.ts runs it on node:cluster workers, whose
 * CPU time the bench could not attribute to one pid), with node-redis.
 */
// The library as users run it, compiled into dist/ (run.ts builds it first).
import { FileStorage, MemoryStorage, RedisStorage, Server, type Storage } from '../../dist/index.js';

let storage: Storage;
const store = process.env['STORE'] ?? 'memory';
if (store === 'redis') {
  const { createClient } = await import('redis');
  storage = new RedisStorage({ client: await createClient({ url: process.env['REDIS_URL'] || 'redis://127.0.0.1:6379' }).connect() });
} else if (store === 'file') {
  storage = new FileStorage();
} else {
  storage = new MemoryStorage();
}

let writes = 0;
const s = new Server({ sessionStorage: storage });
// 10 minutes, as on every server of the bench: longer than a round, in which the servers take turns.
s.setSessionMaxAge('10m');
s.group('/', (group) => {
  group.all('/set', (r) => {
    r.session.setMap({ time: Math.floor(Date.now() / 1000), n: ++writes });
    r.response.write('ok');
  });
  group.all('/get', (r) => {
    r.response.write(r.session.data());
  });
  group.all('/del', (r) => {
    r.session.removeAll();
    r.response.write('ok');
  });
  // For run.ts's warm-up only (never timed): FileStorage writes the renewals it has batched
  // (it does so every `ttlUpdateInterval`, a minute), so that the code of that batch is
  // compiled before the measurement, as the warm-up's reads compile the request's. The
  // measured windows still pay for every batch that falls in them, once a minute.
  group.all('/flush', async (r) => {
    if (storage instanceof FileStorage) await storage.flush();
    r.response.write('ok');
  });
});
s.setPort(Number(process.env['PORT'] || 8199));
void s.run();
