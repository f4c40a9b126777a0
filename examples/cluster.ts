/**
 * The seed program on every CPU: node:cluster workers (one per CPU, WORKERS to choose) share
 * one port and one Redis, so any worker serves any session, and a session survives a restart
 * of the program. Two overlapping requests of one session never lose each other's changes,
 * whichever workers (or machines) serve them.
 *
 * Run: npx tsx examples/cluster.ts   (PORT from the environment, else 8199; REDIS_URL, else
 * redis://127.0.0.1:6379)
 * In your own project: `npm install bare-session redis`, and import from 'bare-session' instead
 * of '../lib/index.js'. (`redis`, the node-redis client, is only a dev dependency here: the
 * library itself depends on nothing and takes the client you connected.)
 */
import cluster from 'node:cluster';
import { availableParallelism } from 'node:os';
import { createClient } from 'redis';
import { RedisStorage, Server } from '../lib/index.js';

if (cluster.isPrimary) {
  const workers = Number(process.env['WORKERS'] || availableParallelism());
  for (let i = 0; i < workers; i++) cluster.fork();
  // A worker that dies is replaced, unless the program is stopping.
  let stopping = false;
  cluster.on('exit', (_worker, code) => {
    if (!stopping && code !== 0) cluster.fork();
    else if (stopping && Object.keys(cluster.workers ?? {}).length === 0) process.exit(0);
  });
  // Stop: each worker finishes its requests and exits (Server.run closes on SIGTERM), then the primary.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      stopping = true;
      for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGTERM');
    });
  }
} else {
  const client = createClient({ url: process.env['REDIS_URL'] || 'redis://127.0.0.1:6379' });
  client.on('error', (err: Error) => console.error(`redis: ${err.message}`));
  await client.connect();

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
}
