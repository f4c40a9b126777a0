import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Jar } from './helpers.js';

const ROOT = join(import.meta.dirname, '..');

/** Starts an example on a free port and resolves once it printed its address. */
export async function startExample(file: string, env: NodeJS.ProcessEnv = {}): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, file)], {
    cwd: ROOT,
    env: { ...process.env, PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const m = /listening on http:\/\/[^:]+:(\d+)/.exec(out);
      if (m !== null) resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`${file} exited with ${code} before listening: ${out}`)));
  });
  return { child, port };
}

/** Sends SIGTERM and resolves to the exit code. */
export async function stopExample(child: ChildProcess): Promise<number | null> {
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const [code] = (await exited) as [number | null];
  return code;
}

describe('examples/memory.ts', () => {
  it('takes an empty PORT to mean 8199, not a random port', { timeout: 20_000 }, async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'examples/memory.ts')], { cwd: ROOT, env: { ...process.env, PORT: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout?.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr?.on('data', (c: Buffer) => (out += c.toString()));
    // Listening on 8199, or (when something else holds it) refusing 8199 by name: either way 8199.
    const exited = once(child, 'exit');
    await new Promise<void>((resolve) => {
      const check = (): void => {
        if (/listening on http:\/\/\S+:\d+|could not listen/.test(out)) resolve();
      };
      child.stdout?.on('data', check);
      child.stderr?.on('data', check);
      void exited.then(() => resolve());
    });
    if (child.exitCode === null) child.kill('SIGTERM');
    await exited;
    assert.match(out, /listening on http:\/\/localhost:8199 |could not listen on port 8199 /, `the example used port 8199: ${out}`);
  });

  it('walks the seed: set, get, restart, the session is gone', async () => {
    const jar = new Jar();
    let { child, port } = await startExample('examples/memory.ts');
    try {
      assert.equal((await jar.send(port, '/set')).body, 'ok');
      const got = await jar.send(port, '/get');
      assert.match(got.body, /^\{"time":\d+\}$/);
      assert.equal(await stopExample(child), 0);
      ({ child, port } = await startExample('examples/memory.ts'));
      assert.equal((await jar.send(port, '/get')).body, '{}');
      assert.equal((await jar.send(port, '/del')).body, 'ok');
    } finally {
      assert.equal(await stopExample(child), 0);
    }
  });
});
