/**
 * examples/cluster.ts on a real redis-server: the seed program on two node:cluster workers
 * sharing one port and one Redis; the session works whichever worker answers, and survives a
 * restart of the whole program.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Jar } from '../helpers.js';
import { RedisServer, redisMissing } from '../redis-server.js';

const ROOT = join(import.meta.dirname, '..', '..');
const missing = redisMissing();

/** Starts the example and resolves once each of its `workers` printed its address. */
async function start(redisUrl: string, workers: number, port = 0): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'examples/cluster.ts')], {
    cwd: ROOT,
    env: { ...process.env, PORT: String(port), WORKERS: String(workers), REDIS_URL: redisUrl },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  const listening = await new Promise<number>((resolve, reject) => {
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const ports = [...out.matchAll(/listening on http:\/\/[^:]+:(\d+)/g)].map((m) => Number(m[1]));
      if (ports.length === workers) resolve(ports[0] as number);
    });
    child.once('exit', (code) => reject(new Error(`examples/cluster.ts exited with ${code} before listening: ${out}`)));
  });
  return { child, port: listening };
}

async function stop(child: ChildProcess): Promise<number | null> {
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const [code] = (await exited) as [number | null];
  return code;
}

describe('examples/cluster.ts', { skip: missing }, () => {
  it('walks the seed on two workers sharing one Redis, and keeps the session over a restart', { timeout: 60_000 }, async (t) => {
    const redis = await RedisServer.start();
    let child: ChildProcess | undefined;
    t.after(async () => {
      if (child !== undefined && child.exitCode === null && child.signalCode === null) {
        const exited = once(child, 'exit');
        child.kill('SIGKILL');
        await exited;
      }
      await redis.stop();
    });
    let port: number;
    ({ child, port } = await start(redis.url, 2));
    const jar = new Jar();
    assert.equal((await jar.send(port, '/set')).body, 'ok', '/set answers ok');
    assert.ok(jar.cookies.size === 1, 'and sets the session cookie');
    // New connections are dealt round-robin to the workers: both serve the session.
    for (let i = 0; i < 6; i++) assert.match((await jar.send(port, '/get')).body, /^\{"time":\d+\}$/, `read ${i} has the time, whichever worker answers`);
    assert.equal(await stop(child), 0, 'the program stops with status 0 on SIGTERM');
    ({ child, port } = await start(redis.url, 2, port));
    assert.match((await jar.send(port, '/get')).body, /^\{"time":\d+\}$/, 'the session survives a restart of the program');
    assert.equal((await jar.send(port, '/del')).body, 'ok', '/del answers ok');
    assert.equal((await jar.send(port, '/get')).body, '{}', 'then the session is empty');
    assert.equal(await stop(child), 0, 'and the program stops again with status 0');
  });
});
