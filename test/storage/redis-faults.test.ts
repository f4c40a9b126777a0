/**
 * RedisStorage when Redis fails under load, with a real redis-server: killed (SIGKILL) and
 * restarted from its append-only file, and its scripts flushed again and again. A server on
 * port 0 serves real HTTP requests throughout; nothing waits for time, every step waits for
 * the event it needs (so many acknowledged writes, so many 503s, so many successes after).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { createClient } from 'redis';
import { RedisStorage, type Server } from '../../lib/index.js';
import type { RedisClient } from '../../lib/storage/redis.js';
import { Jar, deferred, serve } from '../helpers.js';
import { RedisServer, redisMissing } from '../redis-server.js';

const missing = redisMissing();

/** A connected client of each kind that reconnects quickly and keeps quiet about its errors. */
const clients: Record<string, (port: number) => Promise<{ client: RedisClient; close: () => void }>> = {
  'node-redis': async (port) => {
    const client = createClient({ url: `redis://127.0.0.1:${port}`, socket: { reconnectStrategy: () => 50 } });
    client.on('error', () => undefined);
    await client.connect();
    return { client, close: () => client.destroy() };
  },
  ioredis: async (port) => {
    const client = new Redis({ host: '127.0.0.1', port, lazyConnect: true, retryStrategy: () => 50, maxRetriesPerRequest: null });
    client.on('error', () => undefined);
    await client.connect();
    return { client, close: () => client.disconnect() };
  },
};

function routes(s: Server): void {
  s.all('/w', (r) => {
    r.session.set(`s${r.query.get('n')}`, true);
    r.response.write('ok');
  });
  s.all('/get', (r) => r.response.write(r.session.data()));
}

describe('RedisStorage when Redis fails', { skip: missing }, () => {
  for (const [name, connect] of Object.entries(clients)) {
    it(`answers 503 within the timeout while redis-server is killed, and keeps every acknowledged write after its restart (${name})`, { timeout: 60_000 }, async (t) => {
      const redis = await RedisServer.start({ persistent: true });
      t.after(() => redis.stop());
      const { client, close } = await connect(redis.port);
      t.after(close);
      const TIMEOUT = 300;
      // One request makes at most two storage calls (the read, then the write), each within TIMEOUT.
      const LIMIT = 2 * TIMEOUT + 500;
      const s = await serve(t, { sessionStorage: new RedisStorage({ client, timeout: TIMEOUT }), sessionMaxAge: '1h' }, routes);
      const SESSIONS = 10;
      const jars = Array.from({ length: SESSIONS }, () => new Jar());
      for (const jar of jars) assert.equal((await jar.send(s.port, '/w?n=0')).status, 200, 'a session is created');
      const acked = jars.map(() => new Set<string>(['s0']));

      let phase: 'up' | 'down' | 'back' = 'up';
      const count = { upOk: 0, down503: 0, backOkPerLoop: jars.map(() => 0) };
      const wrong: string[] = [];
      const slow: number[] = [];
      const done = deferred();
      let stopping = false;
      const step = (): void => {
        if (phase === 'up' && count.upOk >= 100) {
          phase = 'down';
          void redis.kill();
        } else if (phase === 'down' && count.down503 >= 3 * SESSIONS && redis.running === false) {
          phase = 'back';
          redis.restart().catch(done.reject);
        } else if (phase === 'back' && count.backOkPerLoop.every((n) => n >= 3) && !stopping) {
          stopping = true;
          done.resolve();
        }
      };
      const loop = async (i: number): Promise<void> => {
        const jar = jars[i] as Jar;
        for (let n = 1; !stopping; n++) {
          const at = phase;
          const t0 = performance.now();
          const reply = await jar.send(s.port, `/w?n=${n}`);
          const took = performance.now() - t0;
          if (took > LIMIT) slow.push(took);
          if (reply.status === 200) {
            acked[i]?.add(`s${n}`);
            if (at === 'up') count.upOk++;
            if (at === 'back' && phase === 'back') count.backOkPerLoop[i]!++;
          } else if (reply.status === 503) {
            if (at === 'up' && phase === 'up') wrong.push(`503 while Redis was up: ${reply.body}`);
            if (phase === 'down') count.down503++;
          } else {
            wrong.push(`${reply.status} ${reply.body}`);
          }
          step();
        }
      };
      const loops = jars.map((_, i) => loop(i));
      await done.promise;
      await Promise.all(loops);

      assert.deepEqual(wrong, [], 'only 200s while Redis is up, only 503s while it is down');
      assert.ok(count.down503 >= 3 * SESSIONS, `requests answered 503 while Redis was down (${count.down503})`);
      assert.deepEqual(slow.map((ms) => Math.round(ms)), [], `no request took longer than ${LIMIT} ms`);
      for (const [i, jar] of jars.entries()) {
        const reply = await jar.send(s.port, '/get');
        assert.equal(reply.status, 200, 'the session reads after the restart');
        const data = JSON.parse(reply.body) as Record<string, unknown>;
        const lost = [...(acked[i] as Set<string>)].filter((k) => data[k] !== true);
        assert.deepEqual(lost, [], `session ${i}: every acknowledged write is there (${acked[i]?.size} of them)`);
      }
    });
  }

  it('serves every request while SCRIPT FLUSH runs again and again under load', { timeout: 60_000 }, async (t) => {
    const redis = await RedisServer.start();
    const node = await createClient({ url: redis.url }).connect();
    const admin = await createClient({ url: redis.url }).connect();
    t.after(async () => {
      await Promise.all([node.close(), admin.close()]);
      await redis.stop();
    });
    let evals = 0;
    const client = (args: string[]): Promise<unknown> => {
      if (args[0] === 'EVAL') evals++;
      return node.sendCommand(args);
    };
    const s = await serve(t, { sessionStorage: new RedisStorage({ client }), sessionMaxAge: '1h' }, routes);
    const jars = Array.from({ length: 20 }, () => new Jar());
    const statuses = new Map<number, number>();
    let completed = 0;
    let flushes = 0;
    const written = jars.map(() => new Set<string>());
    await Promise.all(
      jars.map(async (jar, i) => {
        for (let n = 0; n < 25; n++) {
          // The first request of each creates its session (the set script), the others patch it.
          const reply = await jar.send(s.port, `/w?n=${n}`);
          statuses.set(reply.status, (statuses.get(reply.status) ?? 0) + 1);
          if (reply.status === 200) written[i]?.add(`s${n}`);
          if (++completed % 25 === 0) {
            flushes++;
            await admin.sendCommand(['SCRIPT', 'FLUSH']);
          }
        }
      }),
    );
    assert.deepEqual(Object.fromEntries(statuses), { 200: 500 }, 'all 500 requests answered 200');
    assert.ok(flushes >= 19, `SCRIPT FLUSH ran under load (${flushes} times)`);
    assert.ok(evals >= flushes / 2, `the scripts were sent again after the flushes (${evals} EVALs)`);
    for (const [i, jar] of jars.entries()) {
      const data = JSON.parse((await jar.send(s.port, '/get')).body) as Record<string, unknown>;
      assert.equal(Object.keys(data).length, 25, `session ${i} has all 25 keys`);
    }
  });
});
