/**
 * Secrets and raw ids never appear in logs, errors or messages (security.md item 30): the whole
 * life cycle runs with a capturing logger and error hook, and no captured text holds an id.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { inspect } from 'node:util';
import { FileStorage, Server, type SessionData, type Storage } from '../lib/index.js';
import { Jar, send, tempDir } from './helpers.js';

describe('nothing leaks', () => {
  it('logs no issued id over create, regenerate, destroy, a corrupt file and a disk error', async (t) => {
    const dir = tempDir(t);
    const captured: string[] = [];
    const capture = (m: unknown): void => {
      captured.push(typeof m === 'string' ? m : inspect(m, { depth: 5 }));
    };
    const files = new FileStorage({ path: join(dir, 's'), onError: capture });
    let failing = false;
    // A backend whose own error messages carry the id, as a careless driver's might.
    const storage: Storage = {
      get: (id: string) => (failing ? Promise.reject(new Error(`backend lost ${id}`)) : files.get(id)),
      set: (id: string, data: SessionData, ttl: number) => (failing ? Promise.reject(Object.assign(new Error(`EIO writing ${id}`), { code: 'EIO' })) : files.set(id, data, ttl)),
      touch: (id: string, ttl: number) => files.touch(id, ttl),
      remove: (id: string) => files.remove(id),
      close: () => files.close(),
    };
    const logger = { info: capture, warn: capture, error: capture };
    // The default error hook (the error and its first stack lines, through the logger) is under test here.
    const s = new Server({ sessionStorage: storage, logger, cookieSecure: true });
    s.all('/set', (r) => {
      r.session.set('secret', 'hunter2');
      r.response.write('ok');
    });
    s.all('/regen', async (r) => {
      await r.session.regenerate();
      r.response.write('ok');
    });
    s.all('/destroy', async (r) => {
      await r.session.destroy();
      r.response.write('ok');
    });
    s.all('/boom', (r) => {
      throw new Error(`handler failed for ${r.session.id}`);
    });
    await s.start();
    t.after(() => s.close());
    const ids = new Set<string>();
    const jar = new Jar();
    const track = (): void => {
      const id = jar.cookies.get('sid');
      if (id !== undefined && id !== '') ids.add(id);
    };
    await jar.send(s.port, '/set');
    track();
    await jar.send(s.port, '/regen');
    track();
    await jar.send(s.port, '/boom');
    await jar.send(s.port, '/destroy');
    await jar.send(s.port, '/set');
    track();
    // A corrupt file for a live session.
    const id = jar.cookies.get('sid') as string;
    const hash = createHash('sha256').update(id).digest('hex');
    mkdirSync(join(dir, 's', hash.slice(0, 2)), { recursive: true });
    const fresh = new FileStorage({ path: join(dir, 's2'), onError: capture });
    const freshHash = hash;
    mkdirSync(join(dir, 's2', freshHash.slice(0, 2)), { recursive: true, mode: 0o700 });
    writeFileSync(join(dir, 's2', freshHash.slice(0, 2), freshHash), 'BS1 garbage{{{');
    assert.equal(await fresh.get(id), undefined);
    await fresh.close();
    // A failing disk, on write and on read.
    failing = true;
    assert.equal((await jar.send(s.port, '/set')).status, 503);
    assert.equal((await send(s.port, '/set', { headers: { cookie: `sid=${id}` } })).status, 503);
    failing = false;
    assert.ok(ids.size >= 3);
    assert.ok(captured.length >= 4, captured.join('\n'));
    for (const text of captured) {
      for (const issued of ids) assert.ok(!text.includes(issued), `an id leaked into: ${text}`);
      assert.ok(!text.includes('hunter2'), `session data leaked into: ${text}`);
    }
    // The stack lines of the default log name code locations only, never data.
    for (const line of captured.filter((c) => c.startsWith('bare-session:'))) {
      for (const extra of line.split('\n').slice(1)) assert.match(extra, /^ {4}at /, `a stack line only: ${extra}`);
    }
  });
});
