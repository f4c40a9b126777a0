import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { type Child, startChild } from './child.js';
import { Jar } from './helpers.js';

/** Starts an example on a free port and resolves once it printed its address. */
async function startExample(t: TestContext, file: string): Promise<{ child: Child; port: number }> {
  const child = startChild(file, { t, env: { PORT: '0' } });
  const [, port] = await child.line(/listening on http:\/\/[^:]+:(\d+)/);
  return { child, port: Number(port) };
}

/** Sends SIGTERM and resolves to the exit code. */
async function stopExample(child: Child): Promise<number | null> {
  return (await child.stop('SIGTERM')).code;
}

describe('examples/memory.ts', () => {
  it('takes an empty PORT to mean 8199, not a random port', { timeout: 20_000 }, async (t) => {
    const child = startChild('examples/memory.ts', { t, env: { PORT: '' } });
    // Listening on 8199, or (when something else holds it) refusing 8199 by name: either way 8199.
    // (An exit without either line is caught by the assertion below, which shows the output.)
    await child.line(/listening on http:\/\/\S+:\d+|could not listen/, 'output').catch(() => undefined);
    await child.stop('SIGTERM');
    assert.match(child.output, /listening on http:\/\/localhost:8199 |could not listen on port 8199 /, `the example used port 8199: ${child.output}`);
  });

  it('walks the seed: set, get, restart, the session is gone', async (t) => {
    const jar = new Jar();
    let { child, port } = await startExample(t, 'examples/memory.ts');
    try {
      assert.equal((await jar.send(port, '/set')).body, 'ok', '/set answers ok');
      const got = await jar.send(port, '/get');
      assert.match(got.body, /^\{"time":\d+\}$/, '/get shows the time /set stored');
      assert.equal(await stopExample(child), 0, 'the example exits with 0 on SIGTERM');
      ({ child, port } = await startExample(t, 'examples/memory.ts'));
      assert.equal((await jar.send(port, '/get')).body, '{}', 'after a restart the memory session is gone');
      assert.equal((await jar.send(port, '/del')).body, 'ok', '/del answers ok');
    } finally {
      assert.equal(await stopExample(child), 0, 'the restarted example exits with 0 on SIGTERM');
    }
  });
});
