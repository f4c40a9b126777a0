/**
 * FileStorage against a hostile or damaged folder: files that are not regular files (FIFOs,
 * sockets, devices), shard folders that are links or not ours, headers and bodies this library
 * could not have written, and paths that cannot be made into a folder. Real files in temporary
 * folders, an injected clock.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import {
  chmodSync,
  chownSync,
  closeSync,
  constants as fsc,
  existsSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  symlinkSync,
  truncateSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { type Server as NetServer, createServer } from 'node:net';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { SessionError, StorageError } from '../../../lib/errors.js';
import { fsCalls } from '../../../lib/storage/file/files.js';
import { FileStorage, type FileStorageOptions } from '../../../lib/storage/file/file-storage.js';
import { HEADER_SIZE } from '../../../lib/storage/file/format.js';
import { generateId } from '../../../lib/id.js';
import { Server } from '../../../lib/index.js';
import { MAX_DEPTH } from '../../../lib/json.js';
import { startChild } from '../../child.js';
import { Clock, send, tempDir } from '../../helpers.js';
import { MINUTE, codes, expiryOf, fileOf, hashOf, header, plant, setup } from './helpers.js';

const BAD_PATHS = join(import.meta.dirname, '..', '..', 'fixtures', 'file-bad-paths.ts');
const DAY = 86_400_000;
const IS_ROOT = process.getuid?.() === 0;

/** Makes the shard folder of `id` (0700, as the storage makes them) and returns the session's file name. */
function shardFor(dir: string, id: string): string {
  const file = fileOf(dir, id);
  mkdirSync(join(file, '..'), { recursive: true, mode: 0o700 });
  return file;
}

/** Makes a FIFO (mode 0600) at `path`. */
function mkfifo(path: string): void {
  execFileSync('mkfifo', ['-m', '600', path]);
}

/** Opens each FIFO for writing, without waiting, which frees a reader stuck on it (after a failure). */
function unblock(fifos: readonly string[]): void {
  for (const f of fifos) {
    for (const name of [f, `${f}.bad`]) {
      try {
        closeSync(openSync(name, fsc.O_WRONLY | fsc.O_NONBLOCK));
      } catch {
        // No reader waiting, or gone.
      }
    }
  }
}

describe('FileStorage: files that are not regular files', () => {
  it('sets aside FIFOs at session paths without waiting on them: reads, new shard folders, the sweep, touch and close() all finish', { timeout: 20_000 }, async (t) => {
    const { dir, clock, errors, make } = setup(t, 'bare-session-hostile-');
    const fifos: string[] = [];
    t.after(() => unblock(fifos));
    // Six FIFOs, more than Node's thread pool has threads, each at a session's file name.
    const ids = Array.from({ length: 6 }, () => generateId());
    for (const id of ids) {
      const file = shardFor(dir, id);
      mkfifo(file);
      fifos.push(file);
    }
    // One at a lock file's name too: the lock is read without waiting as well.
    const lockFifo = join(dir, '.lock.7');
    mkfifo(lockFifo);
    fifos.push(lockFifo);
    // A real session, written before and read cold after, and a new session in a new shard.
    const writer = make({ writerThreads: 4 });
    const cold = generateId();
    await writer.set(cold, { cold: true }, MINUTE);
    await writer.close();
    const s = make({ writerThreads: 4 });
    let fresh = generateId();
    while (existsSync(join(fileOf(dir, fresh), '..'))) fresh = generateId();

    const results = await Promise.all([...ids.map((id) => s.get(id)), s.get(cold), s.set(fresh, { fresh: true }, MINUTE).then(() => s.get(fresh))]);
    assert.deepEqual(results.slice(0, ids.length), ids.map(() => undefined), 'each FIFO reads as no session');
    assert.deepEqual(results.slice(ids.length), [{ cold: true }, { fresh: true }], 'a cold read and a write to a new shard folder finished meanwhile');
    for (const id of ids) {
      assert.equal(existsSync(fileOf(dir, id)), false, 'the FIFO left the session\'s name');
      assert.equal(lstatSync(`${fileOf(dir, id)}.bad`).isFIFO(), true, 'it was set aside as it is');
    }
    assert.deepEqual(codes(errors), ids.map(() => 'ECORRUPT'), 'each reported once');
    assert.ok(errors.every((e) => /is a FIFO/.test(e.message)), 'as a FIFO');

    // The sweep meets FIFOs it never read (one named like an expired session, one like a stale
    // temporary file, one set aside long ago), and finishes.
    const swept = shardFor(dir, generateId());
    mkfifo(swept);
    const tmp = `${swept}.999999-abc-1.tmp`;
    mkfifo(tmp);
    const oldBad = `${fileOf(dir, generateId())}.bad`;
    mkdirSync(join(oldBad, '..'), { recursive: true, mode: 0o700 });
    mkfifo(oldBad);
    utimesSync(oldBad, new Date(Date.now() - 8 * DAY), new Date(Date.now() - 8 * DAY));
    fifos.push(swept, tmp, oldBad);
    assert.equal(await s.sweep(), 0, 'the sweep finished');
    assert.equal(lstatSync(`${swept}.bad`).isFIFO(), true, 'the sweep set the FIFO aside');
    assert.equal(existsSync(tmp), false, 'the FIFO named like an orphan was removed');
    assert.equal(existsSync(oldBad), false, 'the old set-aside FIFO was removed');

    // A header rewrite meets a FIFO where a session's file was.
    const touched = generateId();
    await s.set(touched, { t: 1 }, MINUTE);
    const touchedFile = fileOf(dir, touched);
    execFileSync('rm', [touchedFile]);
    mkfifo(touchedFile);
    fifos.push(touchedFile);
    clock.advance(1_000);
    await s.touch(touched, MINUTE);
    await s.flush();
    assert.equal(lstatSync(`${touchedFile}.bad`).isFIFO(), true, 'the header rewrite set it aside');
    await s.close();
    assert.equal(existsSync(lockFifo), false, 'the FIFO at a lock\'s name was taken for a stale lock, and removed unopened');
  });

  it('sets aside a socket and a device at session paths, never reading the device', { timeout: 20_000 }, async (t) => {
    const { dir, errors, make } = setup(t, 'bare-session-hostile-');
    const s = make();
    const socketId = generateId();
    const socketFile = shardFor(dir, socketId);
    const server: NetServer = createServer();
    server.listen(socketFile);
    await once(server, 'listening');
    t.after(() => server.close());
    assert.equal(await s.get(socketId), undefined, 'a socket reads as no session');
    assert.equal(lstatSync(`${socketFile}.bad`).isSocket(), true, 'and is set aside');

    // A copy of /dev/zero: read whole, as a file, it would never end.
    const deviceId = generateId();
    const deviceFile = shardFor(dir, deviceId);
    try {
      execFileSync('mknod', ['-m', '600', deviceFile, 'c', '1', '5'], { stdio: 'ignore' });
    } catch {
      t.diagnostic('mknod is not allowed here: the device case is skipped');
      assert.deepEqual(codes(errors), ['ECORRUPT'], 'the socket was reported');
      return;
    }
    assert.equal(await s.get(deviceId), undefined, 'a device reads as no session');
    assert.equal(lstatSync(`${deviceFile}.bad`).isCharacterDevice(), true, 'and is set aside');
    assert.deepEqual(codes(errors), ['ECORRUPT', 'ECORRUPT'], 'both reported');
    assert.match(errors[0]?.message ?? '', /is a socket/, 'as a socket');
    assert.match(errors[1]?.message ?? '', /is a device/, 'as a device');
  });
});

describe('FileStorage: shard folders', () => {
  /** A folder outside the storage's, with a valid session file for `id` and an expired one. */
  function outside(t: TestContext, clock: Clock, id: string): { dir: string; files: Map<string, string> } {
    const out = tempDir(t, 'bare-session-outside-');
    const files = new Map<string, string>();
    const live = join(out, hashOf(id));
    files.set(live, `${header(clock.ms + 10 * MINUTE)}{"admin":true}`);
    const expired = join(out, hashOf(generateId()));
    files.set(expired, `${header(clock.ms - 1)}{"old":true}`);
    for (const [f, content] of files) writeFileSync(f, content);
    return { dir: out, files };
  }

  function assertUntouched(files: Map<string, string>): void {
    for (const [f, content] of files) assert.equal(readFileSync(f, 'utf8'), content, `${f} outside the folder is untouched`);
  }

  it('never follows a shard folder that is a symbolic link: not for reads, writes or the sweep', async (t) => {
    const { dir, clock, errors, make } = setup(t, 'bare-session-hostile-');
    const id = generateId();
    const shard = hashOf(id).slice(0, 2);
    const out = outside(t, clock, id);
    symlinkSync(out.dir, join(dir, shard));
    const s = make();
    assert.equal(await s.sweep(), 0, 'the sweep deleted nothing through the link');
    assertUntouched(out.files);
    assert.equal(await s.get(id), undefined, 'the session outside is not read through the link');
    await s.set(id, { mine: true }, MINUTE);
    assert.equal(lstatSync(join(dir, shard)).isDirectory(), true, 'a real shard folder replaced the link');
    assert.equal(lstatSync(join(dir, shard)).mode & 0o777, 0o700, 'private');
    assertUntouched(out.files);
    const aside = readdirSync(dir).filter((n) => n.startsWith(`${shard}.`) && n.endsWith('.bad'));
    assert.equal(aside.length, 1, 'the link was set aside');
    assert.equal(lstatSync(join(dir, aside[0] as string)).isSymbolicLink(), true, 'as a link');
    assert.deepEqual(codes(errors), ['EINSECURE'], 'reported once');
    assert.match(errors[0]?.message ?? '', /shard folder .. is a symbolic link/, 'as a link');
  });

  it('sets aside shard folders of another user or open to others, and a session file of another user', { skip: !IS_ROOT && 'needs root to chown' }, async (t) => {
    const { dir, clock, errors, make } = setup(t, 'bare-session-hostile-');
    const content = `${header(clock.ms + 10 * MINUTE)}{"admin":true}`;
    const theirs = generateId();
    let open = generateId();
    let foreignFile = generateId();
    while (hashOf(open).slice(0, 2) === hashOf(theirs).slice(0, 2)) open = generateId();
    while ([theirs, open].some((o) => hashOf(o).slice(0, 2) === hashOf(foreignFile).slice(0, 2))) foreignFile = generateId();
    chownSync(join(plant(dir, theirs, content), '..'), 12345, 12345);
    chmodSync(join(plant(dir, open, content), '..'), 0o777);
    chownSync(plant(dir, foreignFile, content), 12345, 12345);
    const s = make();
    for (const id of [theirs, open, foreignFile]) assert.equal(await s.get(id), undefined, 'a planted session reads as no session');
    assert.deepEqual(codes(errors).sort(), ['ECORRUPT', 'EINSECURE', 'EINSECURE'], 'each reported');
    assert.ok(errors.some((e) => /belongs to another user/.test(e.message) && /shard folder/.test(e.message)), 'the foreign shard, as such');
    assert.ok(errors.some((e) => /has mode 777/.test(e.message)), 'the open shard, as such');
    assert.ok(errors.some((e) => /a session file belongs to another user/.test(e.message)), 'the foreign file, as such');
    await s.set(theirs, { mine: true }, MINUTE);
    const st = lstatSync(join(fileOf(dir, theirs), '..'));
    assert.equal(st.uid, process.getuid?.(), 'a shard folder of ours replaced theirs');
    assert.equal(st.mode & 0o777, 0o700, 'private');
  });

  it('is safe after a chmod 700 of the folder, as its error advises: planted shards are still not followed', async (t) => {
    const { dir, clock, errors, make } = setup(t, 'bare-session-hostile-');
    chmodSync(dir, 0o777);
    assert.throws(() => make(), (err: unknown) => err instanceof TypeError && /chmod 700/.test(err.message), 'the open folder is refused, with the advice');
    // While it was open, someone planted a link to their own folder at a shard's name.
    const id = generateId();
    const out = outside(t, clock, id);
    symlinkSync(out.dir, join(dir, hashOf(id).slice(0, 2)));
    chmodSync(dir, 0o700); // the advice, followed
    const s = make();
    assert.equal(await s.get(id), undefined, 'the planted session is not read');
    assert.equal(await s.sweep(), 0, 'nothing deleted through the link');
    await s.set(id, { mine: true }, MINUTE);
    await s.close();
    assertUntouched(out.files);
    assert.deepEqual(codes(errors), ['EINSECURE'], 'the planted link reported');
  });
});

describe('FileStorage: headers and bodies it could not have written', () => {
  it('reads an expiry beyond 400 days as corrupt through the server: no session, set aside once, never a 5xx', async (t) => {
    const dir = tempDir(t, 'bare-session-hostile-');
    const errors: Error[] = [];
    const storage = new FileStorage({ path: dir, writerThreads: 0, onError: (e) => errors.push(e) });
    const s = new Server({ sessionStorage: storage, onError: () => undefined });
    s.all('/get', (r) => r.response.write(r.session.data()));
    s.all('/set', (r) => {
      r.session.set('n', 1);
      r.response.write('ok');
    });
    await s.start();
    t.after(() => s.close());
    // A digit flipped far ahead (past what a Date can hold), and just past 400 days and a minute.
    const far = [header('9000000000000000'), header(Date.now() + 400 * DAY + 2 * MINUTE)];
    for (const head of far) {
      const id = generateId();
      const file = plant(dir, id, `${head}{"admin":true}`);
      // Counts the opens that found the file: once to read it, once to check it again before it is set aside.
      const real = fsCalls.open;
      let found = 0;
      const opens = t.mock.method(fsCalls, 'open', async (...args: Parameters<typeof real>): Promise<FileHandle> => {
        const fh = await real(...args);
        if (String(args[0]) === file) found++;
        return fh;
      });
      for (const path of ['/get', '/get', '/set', '/get']) {
        const reply = await send(s.port, path, { headers: { cookie: `sid=${id}` } });
        assert.equal(reply.status, 200, `${path} answers 200 (header ${head.trim()})`);
        if (path === '/get') assert.equal(reply.body, '{}', 'as a new session');
      }
      assert.equal(found, 2, 'the file was read once (and checked once more), not on every request');
      opens.mock.restore();
      assert.equal(existsSync(`${file}.bad`), true, 'set aside');
    }
    assert.deepEqual(codes(errors), ['ECORRUPT', 'ECORRUPT'], 'each reported once');
    assert.ok(errors.every((e) => /expiry time no session can have/.test(e.message)), 'as an impossible expiry');
  });

  it('cuts an expiry beyond maxAgeMs to now + maxAgeMs, in memory and in the header at the next flush', async (t) => {
    const { dir, clock, errors, make } = setup(t, 'bare-session-hostile-');
    const s = make();
    s.configure({ maxAgeMs: 60 * MINUTE, maxSize: 1024 });
    const id = generateId();
    // Written when the max age was a year: within 400 days, so not corrupt.
    const file = plant(dir, id, `${header(clock.ms + 365 * DAY)}{"a":1}`);
    assert.deepEqual(await s.get(id), { a: 1 }, 'it reads');
    const cut = clock.ms + 60 * MINUTE;
    await s.flush();
    assert.equal(expiryOf(file), cut, 'the header no longer promises a year');
    clock.advance(60 * MINUTE + 1);
    assert.equal(await s.get(id), undefined, 'expired after the max age, in memory');
    await s.close();
    assert.equal(await make().get(id), undefined, 'and after a restart');
    assert.deepEqual(errors, [], 'nothing corrupt');
  });

  it('caps the life set() and touch() give at maxAgeMs', async (t) => {
    const { dir, clock, make } = setup(t, 'bare-session-hostile-');
    const s = make();
    s.configure({ maxAgeMs: MINUTE, maxSize: 1024 });
    const id = generateId();
    await s.set(id, { a: 1 }, 60 * MINUTE);
    assert.equal(expiryOf(fileOf(dir, id)), clock.ms + MINUTE, 'set: a minute, not an hour');
    clock.advance(1_000);
    assert.equal(await s.touch(id, 60 * MINUTE), true, 'touch extends a session that exists');
    await s.flush();
    assert.equal(expiryOf(fileOf(dir, id)), clock.ms + MINUTE, 'touch: a minute, not an hour');
    assert.equal(await s.touch(generateId(), MINUTE), false, 'touch says false for a session that does not exist');
  });

  const nested = (levels: number): string => `${'{"a":'.repeat(levels)}1${'}'.repeat(levels)}`;
  const bodies: [string, string][] = [
    [`nests deeper than MAX_DEPTH (${MAX_DEPTH}) levels`, nested(MAX_DEPTH + 2)],
    ['nests 200 000 levels deep, past the stack', `${'['.repeat(200_000)}${']'.repeat(200_000)}`],
    ['is a JSON string', '"text"'],
    ['is not UTF-8 JSON', '\u00ff\u00fe{}'],
  ];
  for (const [what, body] of bodies) {
    it(`reads a body that ${what} as no session, sets it aside once, and never throws`, async (t) => {
      const { dir, clock, errors, make } = setup(t, 'bare-session-hostile-');
      const s = make();
      const id = generateId();
      const file = plant(dir, id, `${header(clock.ms + MINUTE)}${body}`);
      assert.equal(await s.get(id), undefined, 'no session');
      assert.equal(await s.get(id), undefined, 'still none');
      assert.equal(existsSync(`${file}.bad`), true, 'set aside');
      assert.deepEqual(codes(errors), ['ECORRUPT'], 'reported once');
    });
  }

  it('reads a body nested as deep as a session value may be', async (t) => {
    const { dir, clock, errors, make } = setup(t, 'bare-session-hostile-');
    const s = make();
    const id = generateId();
    // The session object, then a value with MAX_DEPTH levels of objects: what the server accepts.
    plant(dir, id, `${header(clock.ms + MINUTE)}{"v":${nested(MAX_DEPTH - 1)}}`);
    assert.notEqual(await s.get(id), undefined, 'it reads');
    assert.deepEqual(errors, [], 'nothing reported');
  });

  it('sets aside unread a file larger than the header and maxSize', async (t) => {
    const { dir, clock, errors, make } = setup(t, 'bare-session-hostile-');
    const s = make();
    s.configure({ maxAgeMs: DAY, maxSize: 1_000 });
    const id = generateId();
    const file = plant(dir, id, `${header(clock.ms + MINUTE)}{"v":"${'x'.repeat(1_000)}"}`);
    const fits = generateId();
    plant(dir, fits, `${header(clock.ms + MINUTE)}{"v":"${'x'.repeat(1_000 - 8)}"}`);
    const real = fsCalls.open;
    let reads = 0;
    t.mock.method(fsCalls, 'open', async (...args: Parameters<typeof real>): Promise<FileHandle> => {
      const fh = await real(...args);
      if (String(args[0]) === file) {
        const read = fh.read.bind(fh);
        t.mock.method(fh, 'read', (...a: Parameters<typeof read>) => {
          reads++;
          return read(...a);
        });
      }
      return fh;
    });
    assert.equal(await s.get(id), undefined, 'too large: no session');
    assert.equal(reads, 0, 'not one byte of it was read');
    assert.equal(existsSync(`${file}.bad`), true, 'set aside');
    assert.match(errors[0]?.message ?? '', /is too large/, 'reported as too large');
    assert.deepEqual(Object.keys((await s.get(fits)) ?? {}), ['v'], 'a session of exactly maxSize bytes reads');
  });

  it('serializes a session once, and refuses one over maxSize with sessionTooLarge, changing nothing', async (t) => {
    const { dir, make } = setup(t, 'bare-session-hostile-');
    const s = make();
    s.configure({ maxAgeMs: DAY, maxSize: 100 });
    const id = generateId();
    const stringify = t.mock.method(JSON, 'stringify');
    await s.set(id, { v: 'small' }, MINUTE);
    assert.equal(stringify.mock.callCount(), 1, 'one JSON.stringify per set');
    const before = readFileSync(fileOf(dir, id));
    await assert.rejects(s.set(id, { v: 'x'.repeat(100) }, MINUTE), (err: unknown) => {
      assert.ok(err instanceof SessionError && !(err instanceof StorageError), 'a SessionError, not a storage failure');
      assert.equal(err.code, 'ESESSIONTOOLARGE', 'with its code');
      assert.match(err.message, /session data is 108 bytes, over the sessionMaxSize of 100 bytes; nothing was written/, 'naming both sizes');
      return true;
    }, 'a set over maxSize is refused as too large, not as a storage failure');
    assert.deepEqual(await s.get(id), { v: 'small' }, 'memory unchanged');
    assert.deepEqual(readFileSync(fileOf(dir, id)), before, 'disk unchanged');
    const fresh = generateId();
    await assert.rejects(s.set(fresh, { v: 'é'.repeat(50) }, MINUTE), { code: 'ESESSIONTOOLARGE' }, 'UTF-8 bytes are counted, not characters');
    assert.equal(await s.get(fresh), undefined, 'nothing stored for a new one');
    assert.equal(existsSync(fileOf(dir, fresh)), false, 'no file');
  });

  it('refuses settings that are not a max age up to 400 days and a size in bytes, naming them', (t) => {
    const { make } = setup(t, 'bare-session-hostile-');
    const s = make();
    const bad: [unknown, unknown, RegExp][] = [
      [0, 10, /option maxAgeMs is invalid: 0/],
      [401 * DAY, 10, /option maxAgeMs is invalid/],
      [Number.NaN, 10, /option maxAgeMs is invalid: NaN/],
      ['1d', 10, /option maxAgeMs is invalid: "1d"/],
      [DAY, 0, /option maxSize is invalid: 0/],
      [DAY, 1.5, /option maxSize is invalid: 1.5/],
      [DAY, '1kb', /option maxSize is invalid: "1kb"/],
    ];
    for (const [maxAgeMs, maxSize, message] of bad) {
      assert.throws(() => s.configure({ maxAgeMs, maxSize } as never), (err: unknown) => err instanceof TypeError && message.test(err.message), String(message));
    }
    s.configure({ maxAgeMs: 400 * DAY, maxSize: 1 });
  });
});

describe('FileStorage: the path option', () => {
  it('refuses at once, with a TypeError naming path and the reason, a path under /proc, /sys, a file, or too long', { timeout: 30_000 }, async (t) => {
    const dir = tempDir(t, 'bare-session-hostile-');
    const file = join(dir, 'file');
    writeFileSync(file, '');
    const paths = [
      '/proc/bare-session-test/sessions',
      '/proc/self/bare-session-test',
      '/sys/bare-session-test',
      '/sys/kernel/bare-session-test',
      join(file, 'sessions'),
      join(dir, 'x'.repeat(300)),
      join(dir, ...Array.from({ length: 40 }, () => 'y'.repeat(200))),
      join(dir, ...Array.from({ length: 100 }, (_, i) => `d${i}`)),
    ];
    // In a child with a deadline (its safety kill, which fails the wait saying so): a path that
    // made the constructor spin would hang this process.
    const { code, signal, stdout, stderr } = await startChild(BAD_PATHS, { args: paths, safetyMs: 20_000, t }).exited;
    assert.equal(signal, null, `the constructor returned for every path: ${stdout}${stderr}`);
    assert.equal(code, 0, `the child tried every path and exited cleanly: ${stderr}`);
    const results = JSON.parse(stdout) as { path: string; name: string; message: string; ms: number }[];
    assert.equal(results.length, paths.length, 'one answer per path');
    const why = [/cannot create \/proc\/bare-session-test \(ENOENT\)/, /cannot create \/proc\/self\/bare-session-test/, /cannot create \/sys\/bare-session-test \(EPERM\)/, /cannot create \/sys\/kernel\/bare-session-test \(EPERM\)/, /ENOTDIR/, /ENAMETOOLONG/, /ENAMETOOLONG/, /more than 64 folders/];
    for (const [i, r] of results.entries()) {
      assert.equal(r.name, 'TypeError', `${r.path.slice(0, 60)}: a TypeError (${r.message})`);
      assert.match(r.message, /^option path is invalid: /, 'naming the option');
      assert.match(r.message, why[i] as RegExp, 'with the reason');
      assert.ok(r.ms < 5_000, `at once (${r.ms} ms)`);
    }
    assert.equal(existsSync(join(dir, 'd0')), false, 'nothing was made for the path that needed too many folders');
  });
});
