/**
 * The seed program on bare-session's RedisStorage, in one process (examples/cluster.ts runs the
 * same on node:cluster workers, whose CPU time the bench could not attribute to one pid), with
 * node-redis connected to REDIS_URL.
 *
 *   PORT=3000 REDIS_URL=redis://127.0.0.1:6379 node --import tsx servers/bare-redis.ts
 */
import { createClient } from 'redis';
import { RedisStorage, Server } from '../../lib/index.js';

const client = await createClient({ url: process.env['REDIS_URL'] || 'redis://127.0.0.1:6379' }).connect();

const s = new Server();
s.setSessionMaxAge('1m');
s.setSessionStorage(new RedisStorage({ client }));
s.group('/', (group) => {
  group.all('/set', (r) => {
    r.session.set('time', Math.floor(Date.now() / 1000));
    r.response.write('ok');
  });
  group.all('/get', (r) => {
    r.response.write(r.session.data());
  });
  group.all('/del', (r) => {
    r.session.removeAll();
    r.response.write('ok');
  });
});
s.setPort(Number(process.env['PORT'] || 8199));
void s.run();
