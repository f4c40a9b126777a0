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
import { FileStorage, Server } from '../lib/index.js';
import { FailingStorage, Jar, send, tempDir } from './helpers.js';

describe('nothing leaks', () => {
  it('logs no issued id over create, regenerate, destroy, a corrupt file and a disk error', async (t) => {
    const dir = tempDir(t);
    const captured: string[] = [];
    const capture = (m: unknown): void => {
      captured.push(typeof m === 'string' ? m : inspect(m, { depth: 5 }));
    };
    const files = new FileStorage({ path: join(dir, 's'), onError: capture });
    // A backend whose own error messages carry the id, as a careless driver's might (it shows only close of the optional methods).
    const storage = new FailingStorage(files, { optional: ['close'] });
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
    assert.equal(await fresh.get(id), undefined, 'a corrupt record reads as no session');
    await fresh.close();
    // A failing disk, on write and on read.
    storage
      .fail('get', (_, id) => new Error(`backend lost ${id}`))
      .fail('set', (_, id) => Object.assign(new Error(`EIO writing ${id}`), { code: 'EIO' }));
    assert.equal((await jar.send(s.port, '/set')).status, 503, 'a failing write answers 503');
    assert.equal((await send(s.port, '/set', { headers: { cookie: `sid=${id}` } })).status, 503, 'a failing read answers 503');
    storage.heal();
    assert.ok(ids.size >= 3, 'the run issued at least three ids to look for');
    assert.ok(captured.length >= 4, `the run logged at least four lines to search: ${captured.join('\n')}`);
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
