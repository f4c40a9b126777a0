/**
 * A full disk, for real: a small tmpfs mounted as the storage folder (needs root, as CI has).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { FileStorage, Server } from '../../../lib/index.js';
import { Jar, send } from '../../helpers.js';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const skip = isRoot ? false : 'mounting a tmpfs needs root; CI runs as root';

/** Mounts a tmpfs of `size` in a private temporary folder; unmounted, then removed, after the test. */
function tmpfs(t: TestContext, size: string): string {
  const base = mkdtempSync(join(tmpdir(), 'bare-session-disk-'));
  const mount = join(base, 'disk');
  mkdirSync(mount, { mode: 0o700 });
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'tmpfs', mount]);
  t.after(() => {
    execFileSync('umount', ['-l', mount]);
    rmSync(base, { recursive: true, force: true });
  });
  return mount;
}

/** Fills the file system of `mount` until `free` bytes are left, with one file. */
function fillUntil(mount: string, free: number): string {
  const filler = join(mount, 'filler');
  const { bavail, bsize } = statfsSync(mount);
  writeFileSync(filler, Buffer.alloc(Math.max(0, bavail * bsize - free)));
  return filler;
}

/** Every file in the shard folders of `dir`. */
function sessionFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((n) => /^[0-9a-f]{2}$/.test(n))
    .flatMap((shard) => readdirSync(join(dir, shard)));
}

describe('a full disk', () => {
  it('answers 503 with a clear error, keeps earlier sessions, and writes again once space is freed', { skip }, async (t) => {
    const mount = tmpfs(t, '256k');
    const dir = join(mount, 'sessions');
    const errors: unknown[] = [];
    const s = new Server({ sessionStorage: new FileStorage({ path: dir }), onError: (e) => errors.push(e) });
    s.all('/set/:v', (r) => {
      r.session.set('v', r.params['v'] as string);
      r.response.write('ok');
    });
    s.all('/get', (r) => r.response.write(r.session.data()));
    await s.start();
    let closed = false;
    t.after(async () => {
      if (!closed) await s.close();
    });
    const early = new Jar();
    assert.equal((await early.send(s.port, '/set/before')).status, 200, 'a write while there is room');
    // Fill the disk to the last byte.
    const filler = join(mount, 'filler');
    try {
      writeFileSync(filler, Buffer.alloc(1024 * 1024));
    } catch (e) {
      assert.equal((e as { code?: string }).code, 'ENOSPC', 'the filler filled the disk');
    }
    const late = new Jar();
    const full = await late.send(s.port, `/set/${'x'.repeat(4000)}`);
    assert.equal(full.status, 503, 'a new session on a full disk: 503');
    assert.equal(full.body, 'Service Unavailable', 'with the generic body');
    assert.deepEqual(full.setCookies, [], 'and no cookie');
    const overwrite = await early.send(s.port, `/set/${'y'.repeat(4000)}`);
    assert.equal(overwrite.status, 503, 'an update on a full disk: 503');
    assert.match(String(errors.at(-1)), /could not write a session file \(ENOSPC\); the previous version is kept/, 'reported with the cause');
    // The earlier session still reads, and no temporary file is left.
    assert.equal((await early.send(s.port, '/get')).body, '{"v":"before"}', 'the earlier session reads');
    const files = sessionFiles(dir);
    assert.ok(files.every((f) => !f.endsWith('.tmp')), `no temporary file: ${files.join(',')}`);
    // Space comes back: writes succeed again.
    rmSync(filler);
    assert.equal((await late.send(s.port, '/set/after')).status, 200, 'writes again once space is freed');
    assert.equal((await late.send(s.port, '/get')).body, '{"v":"after"}', 'and reads back');
    assert.equal((await send(s.port, '/get', { headers: { cookie: `sid=${early.cookies.get('sid')}` } })).body, '{"v":"before"}', 'the earlier one too');
    await s.close();
    closed = true;
    // From its file, after a restart.
    const check = new FileStorage({ path: dir });
    assert.equal((await check.get(early.cookies.get('sid') as string))?.['v'], 'before', 'the earlier session is on disk as it was');
    await check.close();
  });

  for (const writerThreads of [4, 0]) {
    it(`never answers 200 for a write larger than the free space: 503, the old file kept across a restart, no cookie for a new session (writerThreads ${writerThreads})`, { skip }, async (t) => {
      const mount = tmpfs(t, '512k');
      const dir = join(mount, 'sessions');
      const errors: unknown[] = [];
      const s = new Server({ sessionStorage: new FileStorage({ path: dir, writerThreads }), onError: (e) => errors.push(e) });
      s.all('/big/:n', (r) => {
        r.session.set('v', 'x'.repeat(Number(r.params['n'])));
        r.response.write('ok');
      });
      s.all('/get', (r) => r.response.write(String((r.session.get('v') as string | undefined)?.length)));
      await s.start();
      let closed = false;
      t.after(async () => {
        if (!closed) await s.close();
      });
      const early = new Jar();
      assert.equal((await early.send(s.port, '/big/100')).status, 200, 'a small session is written');
      // 16 KiB left; each write below needs 40 KB: the first part of it fits, the rest does not.
      fillUntil(mount, 16 * 1024);
      const update = await early.send(s.port, '/big/40000');
      assert.equal(update.status, 503, 'an update that does not fit: 503, not 200 with a torn file');
      assert.equal((await early.send(s.port, '/get')).body, '100', 'the session still holds its old data');
      const fresh = new Jar();
      const created = await fresh.send(s.port, '/big/40000');
      assert.equal(created.status, 503, 'a new session that does not fit: 503');
      assert.deepEqual(created.setCookies, [], 'and no cookie for it');
      assert.match(String(errors.at(-1)), /could not write a session file \(ENOSPC\); the previous version is kept/, 'reported as ENOSPC');
      assert.ok(sessionFiles(dir).every((f) => !f.endsWith('.tmp')), 'no temporary file left');
      await s.close();
      closed = true;
      // A restart: the file on disk is the old, whole one.
      const check = new FileStorage({ path: dir, writerThreads: 0 });
      const data = await check.get(early.cookies.get('sid') as string);
      assert.equal((data?.['v'] as string | undefined)?.length, 100, 'after a restart the old data reads back, whole');
      await check.close();
    });
  }
});
