/**
 * A full disk, for real: a small tmpfs mounted as the storage folder (needs root, as CI has).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync, rmSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { FileStorage, Server } from '../lib/index.js';
import { Jar, send, tempDir } from './helpers.js';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

describe('a full disk', () => {
  it(
    'answers 503 with a clear error, keeps earlier sessions, and writes again once space is freed',
    { skip: isRoot ? false : 'mounting a tmpfs needs root; CI runs as root' },
    async (t) => {
      const mount = join(tempDir(t), 'disk');
      mkdirSync(mount, { mode: 0o700 });
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k,mode=0700', 'tmpfs', mount]);
      const dir = join(mount, 'sessions');
      const errors: unknown[] = [];
      const s = new Server({ sessionStorage: new FileStorage({ path: dir }), onError: (e) => errors.push(e) });
      s.all('/set/:v', (r) => {
        r.session.set('v', r.params['v'] as string);
        r.response.write('ok');
      });
      s.all('/get', (r) => r.response.write(r.session.data()));
      await s.start();
      try {
        const early = new Jar();
        assert.equal((await early.send(s.port, '/set/before')).status, 200);
        // Fill the disk to the last byte.
        const filler = join(mount, 'filler');
        try {
          writeFileSync(filler, Buffer.alloc(1024 * 1024));
        } catch (e) {
          assert.equal((e as { code?: string }).code, 'ENOSPC');
        }
        const late = new Jar();
        const full = await late.send(s.port, `/set/${'x'.repeat(4000)}`);
        assert.equal(full.status, 503);
        assert.equal(full.body, 'Service Unavailable');
        assert.deepEqual(full.setCookies, []);
        const overwrite = await early.send(s.port, `/set/${'y'.repeat(4000)}`);
        assert.equal(overwrite.status, 503);
        assert.match(String(errors.at(-1)), /could not write a session file \(ENOSPC\); the previous version is kept/);
        // The earlier session still reads, from memory and from its file, and no temporary file is left.
        assert.equal((await early.send(s.port, '/get')).body, '{"v":"before"}');
        const files = readdirSync(dir).flatMap((shard) => readdirSync(join(dir, shard)));
        assert.ok(files.every((f) => !f.endsWith('.tmp')), files.join(','));
        const check = new FileStorage({ path: dir });
        assert.equal((await check.get(early.cookies.get('sid') as string))?.['v'], 'before', 'the file still holds the earlier value');
        await check.close();
        // Space comes back: writes succeed again.
        rmSync(filler);
        assert.equal((await late.send(s.port, '/set/after')).status, 200);
        assert.equal((await late.send(s.port, '/get')).body, '{"v":"after"}');
        assert.equal((await send(s.port, '/get', { headers: { cookie: `sid=${early.cookies.get('sid')}` } })).body, '{"v":"before"}');
      } finally {
        await s.close();
        execFileSync('umount', ['-l', mount]);
      }
    },
  );
});
