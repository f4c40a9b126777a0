/**
 * examples/cluster.ts on a real redis-server: the seed program on two node:cluster workers
 * sharing one port and one Redis; the session works whichever worker answers, and survives a
 * restart of the whole program.
 */
import assert from 'node:assert/strict';
import { type TestContext, describe, it } from 'node:test';
import { type Child, startChild } from '../child.js';
import { Jar } from '../helpers.js';
import { RedisServer, redisMissing } from '../redis-server.js';

const missing = redisMissing();

/** Starts the example and resolves once each of its `workers` printed its address. */
async function start(t: TestContext, redisUrl: string, workers: number, port = 0): Promise<{ child: Child; port: number }> {
  const child = startChild('examples/cluster.ts', { env: { PORT: String(port), WORKERS: String(workers), REDIS_URL: redisUrl }, safetyMs: 50_000, t });
  const listening = await child.line(new RegExp(`(?:listening on http://[^:]+:(\\d+)[^]*){${workers}}`));
  return { child, port: Number(listening[1]) };
}

describe('examples/cluster.ts', { skip: missing }, () => {
  it('walks the seed on two workers sharing one Redis, and keeps the session over a restart', { timeout: 60_000 }, async (t) => {
    const redis = await RedisServer.start();
    t.after(() => redis.stop());
    let { child, port } = await start(t, redis.url, 2);
    const jar = new Jar();
    assert.equal((await jar.send(port, '/set')).body, 'ok', '/set answers ok');
    assert.ok(jar.cookies.size === 1, 'and sets the session cookie');
    // New connections are dealt round-robin to the workers: both serve the session.
    for (let i = 0; i < 6; i++) assert.match((await jar.send(port, '/get')).body, /^\{"time":\d+\}$/, `read ${i} has the time, whichever worker answers`);
    assert.equal((await child.stop()).code, 0, 'the program stops with status 0 on SIGTERM');
    ({ child, port } = await start(t, redis.url, 2, port));
    assert.match((await jar.send(port, '/get')).body, /^\{"time":\d+\}$/, 'the session survives a restart of the program');
    assert.equal((await jar.send(port, '/del')).body, 'ok', '/del answers ok');
    assert.equal((await jar.send(port, '/get')).body, '{}', 'then the session is empty');
    assert.equal((await child.stop()).code, 0, 'and the program stops again with status 0');
  });
});
