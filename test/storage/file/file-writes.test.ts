/**
 * FileStorage's writes and header rewrites (renewals) under faults, on both write paths: the writer threads (the default,
 * `writerThreads: 4`) and Node's thread pool (`writerThreads: 0`). One routine
 * (lib/writer-thread.ts) serves both; the faults of test/fixtures/write-faults.ts are installed
 * in the threads themselves (through `fsCalls.writerHooks`) or on `fsCalls.io`.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { constants as fsc, existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { StorageError } from '../../../lib/errors.js';
import { fsCalls } from '../../../lib/storage/file/files.js';
import { FileStorage, type FileStorageOptions } from '../../../lib/storage/file/file-storage.js';
import { HEADER_SIZE, MAX_AGE_MS, header } from '../../../lib/storage/file/format.js';
import { type WriteIo, rewriteHeader, threadIo } from '../../../lib/storage/file/writer-thread.js';
import { generateId } from '../../../lib/id.js';
import install, { type Call, type Fault, type Plan } from '../../fixtures/write-faults.js';
import { Clock, tempDir } from '../../helpers.js';
import { codes } from './helpers.js';

const MINUTE = 60_000;
const FAULTS = new URL('../../fixtures/write-faults.ts', import.meta.url).href;
const MODES = [
  { name: 'writer threads', writerThreads: 4 },
  { name: 'thread pool', writerThreads: 0 },
] as const;

function fileOf(dir: string, id: string): string {
  const hash = createHash('sha256').update(id).digest('hex');
  return join(dir, hash.slice(0, 2), hash);
}

function bodyOf(file: string): unknown {
  return JSON.parse(readFileSync(file).toString('utf8', HEADER_SIZE));
}

interface Setup {
  dir: string;
  clock: Clock;
  errors: Error[];
  /** A storage that only reads `dir` back (on the thread pool, no thread to start); closed after the test. */
  reader(): FileStorage;
  /**
   * A storage on `dir` whose writes (on the path of `writerThreads`) take the faults the test
   * sets between writes (`fault`: the plan's file, read again at each write and header rewrite),
   * and the log of its calls (`log`); closed after the test.
   */
  faultable(options?: FileStorageOptions): { s: FileStorage; fault(faults: Fault[]): void; log: string };
}

function setup(t: TestContext, writerThreads: number): Setup {
  const storages: FileStorage[] = [];
  let restore = (): void => undefined;
  t.after(async () => {
    for (const s of storages) await s.close();
    restore();
  });
  const dir = tempDir(t, 'bare-session-writes-');
  const clock = new Clock();
  const errors: Error[] = [];
  const options = (more: FileStorageOptions): FileStorageOptions => ({ path: dir, now: clock.now, onError: (e) => errors.push(e), writerThreads, ...more });
  const make = (plan: Plan = {}, more: FileStorageOptions = {}): FileStorage => {
    let s: FileStorage;
    if (writerThreads === 0) {
      restore();
      restore = install(fsCalls.io, plan);
      s = new FileStorage(options(more));
    } else {
      // The storage hands the hooks to its threads when it is made: set for that moment only.
      fsCalls.writerHooks = { module: FAULTS, data: plan };
      try {
        s = new FileStorage(options(more));
      } finally {
        fsCalls.writerHooks = undefined;
      }
    }
    storages.push(s);
    return s;
  };
  const reader = (): FileStorage => {
    restore();
    const s = new FileStorage(options({ writerThreads: 0 }));
    storages.push(s);
    return s;
  };
  const faultable = (more: FileStorageOptions = {}): { s: FileStorage; fault(faults: Fault[]): void; log: string } => {
    const logs = tempDir(t);
    const file = join(logs, 'faults.json');
    const log = join(logs, 'calls');
    const fault = (faults: Fault[]): void => writeFileSync(file, JSON.stringify(faults));
    fault([]);
    return { s: make({ file, log }, more), fault, log };
  };
  return { dir, clock, errors, reader, faultable };
}

/** The calls a plan's log recorded. */
function calls(log: string): Call[] {
  let text: string;
  try {
    text = readFileSync(log, 'utf8');
  } catch {
    return []; // no call yet
  }
  return text.split('\n').filter((line) => line !== '').map((line) => JSON.parse(line) as Call);
}

/** Faults of a write without fsync, each on the second write of a session (the first one is clean). */
const failures: [string, Fault][] = [
  ['creating the temporary file fails (ENOSPC)', { call: 'open', code: 'ENOSPC' }],
  ['the disk fills in the middle of the file: a short write, then ENOSPC', { call: 'write', afterBytes: HEADER_SIZE + 100, code: 'ENOSPC' }],
  ['writing fails (EIO)', { call: 'write', code: 'EIO' }],
  ['a write makes no progress (0 bytes)', { call: 'write', zero: true }],
  ['closing the temporary file fails (EIO)', { call: 'close', code: 'EIO' }],
  ['the rename fails (EACCES)', { call: 'rename', code: 'EACCES' }],
  ['the rename fails with an error that has no code', { call: 'rename' }],
  ['the shard folder keeps vanishing (ENOENT, twice)', { call: 'open', code: 'ENOENT' }],
];

/** Checks that a write was refused as a failed write that kept the previous version. */
function keptPrevious(err: unknown): boolean {
  assert.ok(err instanceof StorageError, `a StorageError, not ${String(err)}`);
  assert.equal(err.status, 503, 'answered 503');
  assert.match(err.message, /^could not write a session file( \([A-Z]+\))?; the previous version is kept$/, 'the message says what happened');
  return true;
}

for (const mode of MODES) {
  describe(`FileStorage writes on the ${mode.name} (writerThreads ${mode.writerThreads})`, () => {
    // One storage per test, whose faults change between writes (the plan file is read at each
    // write): a writer thread started from the TypeScript sources takes a while to load.
    it('keeps the previous file whatever fails in a write: 503, no temporary file, the old data after a restart', async (t) => {
      const { dir, errors, reader, faultable } = setup(t, mode.writerThreads);
      const { s, fault, log } = faultable();
      const kept = new Map<string, unknown>();
      for (const [what, f] of failures) {
        await t.test(`when ${what}`, async () => {
          const id = generateId();
          const previous = { v: 'previous', what };
          await s.set(id, previous, MINUTE);
          const sessionFile = fileOf(dir, id);
          const before = readFileSync(sessionFile);
          fault([f]);
          try {
            await assert.rejects(s.set(id, { v: 'next', pad: 'x'.repeat(5_000) }, MINUTE), keptPrevious, 'the write is refused');
          } finally {
            fault([]);
          }
          assert.deepEqual(readFileSync(sessionFile), before, 'the previous file is untouched');
          // Other sessions may share the shard folder (ids are random): only temporary files count.
          assert.deepEqual(readdirSync(join(sessionFile, '..')).filter((n) => n.endsWith('.tmp')), [], 'no temporary file left');
          assert.deepEqual(await s.get(id), previous, 'the memory copy was dropped: the file\'s data reads');
          kept.set(id, previous);
        });
      }
      await t.test('writes every byte when the file system takes a few at a time (short writes)', async () => {
        fault([{ call: 'write', maxBytes: 7 }]);
        const id = generateId();
        const data = { text: 'é'.repeat(300), n: 12_345 };
        const writes = (): number => calls(log).filter((c) => c.call === 'write').length;
        const before = writes();
        try {
          await s.set(id, data, MINUTE);
        } finally {
          fault([]);
        }
        assert.deepEqual(bodyOf(fileOf(dir, id)), data, 'the whole session is in the file');
        const size = readFileSync(fileOf(dir, id)).length;
        assert.ok(writes() - before >= Math.ceil(size / 7), `${writes() - before} write calls for ${size} bytes: the routine went on after each short one`);
        kept.set(id, data);
      });
      assert.deepEqual(calls(log).filter((c) => c.call === 'fsync'), [], 'no sync without fsync: true');
      await s.close();
      const restarted = reader();
      for (const [id, data] of kept) assert.deepEqual(await restarted.get(id), data, 'a new storage on the folder reads the data last acknowledged');
      assert.deepEqual(errors, [], 'nothing else to report');
    });

    it('syncs the file before its rename and its folder after it with fsync: true', async (t) => {
      const { dir, errors, faultable } = setup(t, mode.writerThreads);
      const { s, fault, log } = faultable({ fsync: true });
      await t.test('the file, then the folder, each opened safely', async () => {
        const id = generateId();
        await s.set(id, { durable: true }, MINUTE);
        const sessionFile = fileOf(dir, id);
        const seen = calls(log).map((c) => `${c.call} ${c.on}`);
        assert.deepEqual(
          seen.filter((c) => c !== 'write tmp'),
          ['open tmp', 'fsync tmp', 'close tmp', 'rename tmp', 'open folder', 'fsync folder', 'close folder'],
          'the file is synced before it is renamed, then its folder',
        );
        const folderOpen = calls(log).find((c) => c.call === 'open' && c.on === 'folder');
        assert.equal(folderOpen?.path, join(sessionFile, '..'), 'the session file\'s own folder is synced');
        assert.equal((folderOpen?.flags ?? 0) & fsc.O_DIRECTORY, fsc.O_DIRECTORY, 'opened as a folder (O_DIRECTORY)');
        assert.equal((folderOpen?.flags ?? 0) & fsc.O_NOFOLLOW, fsc.O_NOFOLLOW, 'never through a link (O_NOFOLLOW)');
        assert.deepEqual(bodyOf(sessionFile), { durable: true }, 'and the data is there');
      });
      await t.test('a failing fsync of the file keeps the previous file', async () => {
        const id = generateId();
        await s.set(id, { v: 1 }, MINUTE);
        const before = readFileSync(fileOf(dir, id));
        fault([{ call: 'fsync', code: 'EIO' }]);
        try {
          await assert.rejects(s.set(id, { v: 2 }, MINUTE), keptPrevious, 'the write is refused');
        } finally {
          fault([]);
        }
        assert.deepEqual(readFileSync(fileOf(dir, id)), before, 'the previous file is untouched');
        assert.deepEqual(readdirSync(join(fileOf(dir, id), '..')).filter((n) => n.endsWith('.tmp')), [], 'no temporary file left');
      });
      await t.test('a failing sync of the folder after the rename is reported as such: 503, the new version in place', async () => {
        const id = generateId();
        await s.set(id, { v: 1 }, MINUTE);
        fault([{ call: 'fsync', on: 'folder', code: 'EIO' }]);
        try {
          await assert.rejects(
            s.set(id, { v: 2 }, MINUTE),
            (err: unknown) => {
              assert.ok(err instanceof StorageError, 'a StorageError');
              assert.equal(err.status, 503, 'answered 503');
              assert.match(err.message, /could not sync the folder of a session file \(EIO\); the new version is in place/, 'the message does not claim the previous version was kept');
              return true;
            },
            'the write is reported',
          );
        } finally {
          fault([]);
        }
        assert.deepEqual(bodyOf(fileOf(dir, id)), { v: 2 }, 'the new version is in place');
        assert.deepEqual(await s.get(id), { v: 2 }, 'memory agrees with the file');
      });
      assert.deepEqual(errors, [], 'nothing else reported');
    });

    it('renews a session by rewriting its header in place, and reports a rewrite that fails without losing the session', async (t) => {
      const { dir, clock, errors, faultable } = setup(t, mode.writerThreads);
      const { s, fault, log } = faultable();
      const logs = tempDir(t);
      /**
       * A session written at the clock's time, renewed 1 s later, `tamper`ed with behind the
       * storage's back, and flushed under `faults`: its file's bytes before and after (`undefined`
       * when no regular file is left), the calls of the flush on the header, and what was reported.
       */
      const renew = async (faults: Fault[], tamper?: (file: string) => void) => {
        const id = generateId();
        await s.set(id, { v: 1, pad: 'x'.repeat(100) }, MINUTE);
        const file = fileOf(dir, id);
        const before = readFileSync(file);
        clock.advance(1_000);
        assert.equal(await s.touch(id, MINUTE), true, 'the session is renewed in memory');
        tamper?.(file);
        const seen = errors.length;
        const mark = calls(log).length;
        fault(faults);
        try {
          await s.flush();
        } finally {
          fault([]);
        }
        const after = existsSync(file) && lstatSync(file).isFile() ? readFileSync(file) : undefined;
        const header = calls(log).slice(mark).filter((c) => c.on === 'header');
        return { id, file, before, after, header, reported: errors.splice(seen) };
      };
      /** The header of a session file that expires at `expiresAt`. */
      const headerOf = (expiresAt: number): string => `BS1 ${String(expiresAt).padStart(16, '0')}\n`;

      await t.test('the header gets the new expiry through one safe open of the file; the body is untouched', async () => {
        const start = clock.ms;
        const { id, file, before, after, header, reported } = await renew([]);
        assert.deepEqual(header.map((c) => c.call), ['open', 'stat', 'read', 'write', 'close'], 'one open, a look at the file, its header read, written, closed');
        const flags = header[0]?.flags ?? 0;
        assert.equal(header[0]?.path, file, 'the session\'s own file');
        assert.equal(flags & fsc.O_NOFOLLOW, fsc.O_NOFOLLOW, 'never through a link (O_NOFOLLOW)');
        assert.equal(flags & fsc.O_CREAT, 0, 'never created (no O_CREAT)');
        assert.equal(flags & fsc.O_NONBLOCK, fsc.O_NONBLOCK, 'never waiting on a FIFO (O_NONBLOCK)');
        assert.equal(after?.toString('latin1', 0, HEADER_SIZE), headerOf(start + 1_000 + MINUTE), 'the header holds the renewed expiry');
        assert.deepEqual(after?.subarray(HEADER_SIZE), before.subarray(HEADER_SIZE), 'the body is untouched');
        assert.deepEqual(reported, [], 'nothing reported');
        assert.deepEqual(await s.get(id), { v: 1, pad: 'x'.repeat(100) }, 'the session reads back');
      });

      await t.test('a header written a few bytes at a time is written whole', async () => {
        const start = clock.ms;
        const { after, header, reported } = await renew([{ call: 'write', on: 'header', maxBytes: 4 }]);
        assert.equal(header.filter((c) => c.call === 'write').length, Math.ceil(HEADER_SIZE / 4), 'the header went 4 bytes at a time');
        assert.equal(after?.toString('latin1', 0, HEADER_SIZE), headerOf(start + 1_000 + MINUTE), 'every byte of the header was written');
        assert.deepEqual(reported, [], 'a short write is no failure');
      });

      await t.test('a header that already promises as long is left as it is', async () => {
        const later = clock.ms + 10 * MINUTE;
        const { after, header, reported } = await renew([], (file) => {
          const bytes = readFileSync(file);
          bytes.write(headerOf(later), 0, 'latin1');
          writeFileSync(file, bytes);
        });
        assert.deepEqual(header.map((c) => c.call), ['open', 'stat', 'read', 'close'], 'read, not written');
        assert.equal(after?.toString('latin1', 0, HEADER_SIZE), headerOf(later), 'the later expiry is kept');
        assert.deepEqual(reported, [], 'nothing reported');
      });

      await t.test('a header that promises more than maxAgeMs from now is cut to the renewal', async () => {
        s.configure({ maxAgeMs: 5 * MINUTE, maxSize: 1_048_576 });
        try {
          const start = clock.ms;
          const { after, reported } = await renew([], (file) => {
            const bytes = readFileSync(file);
            bytes.write(headerOf(start + 60 * MINUTE), 0, 'latin1');
            writeFileSync(file, bytes);
          });
          assert.equal(after?.toString('latin1', 0, HEADER_SIZE), headerOf(start + 1_000 + MINUTE), 'the header holds the renewal, not the hour it promised');
          assert.deepEqual(reported, [], 'nothing reported');
        } finally {
          s.configure({ maxAgeMs: MAX_AGE_MS, maxSize: 1_048_576 });
        }
      });

      await t.test('a file removed behind the storage\'s back is not made again', async () => {
        const { file, after, reported } = await renew([], (f) => rmSync(f));
        assert.equal(after, undefined, 'no file');
        assert.deepEqual(readdirSync(join(file, '..')).filter((n) => n.startsWith(basename(file))), [], 'nothing at its name, nothing set aside');
        assert.deepEqual(reported, [], 'nothing reported');
      });

      const planted: [string, (file: string) => void, (file: string) => boolean][] = [
        ['a symbolic link', (file) => symlinkSync(join(logs, 'target'), file), (bad) => lstatSync(bad).isSymbolicLink()],
        ['a FIFO', (file) => execFileSync('mkfifo', [file]), (bad) => lstatSync(bad).isFIFO()],
        ['a folder', (file) => mkdirSync(file), (bad) => lstatSync(bad).isDirectory()],
        ['a file with no header', (file) => writeFileSync(file, 'not a session file'), (bad) => readFileSync(bad, 'utf8') === 'not a session file'],
      ];
      for (const [what, plant, isIt] of planted) {
        await t.test(`${what} at the session's name is set aside as it is, and reported`, async () => {
          writeFileSync(join(logs, 'target'), 'target');
          const { file, reported } = await renew([], (f) => {
            rmSync(f);
            plant(f);
          });
          assert.equal(existsSync(file), false, 'nothing left at the session\'s name');
          assert.equal(isIt(`${file}.bad`), true, `${what}, set aside as it was`);
          assert.equal(readFileSync(join(logs, 'target'), 'utf8'), 'target', 'nothing written through a link');
          assert.deepEqual(codes(reported), ['ECORRUPT'], 'reported once, as not a session file');
          rmSync(`${file}.bad`, { recursive: true });
        });
      }

      const broken: [string, Fault, RegExp][] = [
        ['the open fails (EIO)', { call: 'open', on: 'header', code: 'EIO' }, /EIO/],
        ['the look at the file fails (EIO)', { call: 'stat', on: 'header', code: 'EIO' }, /EIO/],
        ['reading the header fails (EIO)', { call: 'read', on: 'header', code: 'EIO' }, /EIO/],
        ['writing the header fails (EIO)', { call: 'write', on: 'header', code: 'EIO' }, /EIO/],
        ['writing the header makes no progress (0 bytes)', { call: 'write', on: 'header', zero: true }, /ESHORTWRITE/],
      ];
      for (const [what, f, why] of broken) {
        await t.test(`when ${what}: reported, the file as it was, the session alive`, async () => {
          const { id, before, after, reported } = await renew([f]);
          assert.ok(after !== undefined, 'the file is still there');
          assert.deepEqual(codes(reported), ['ESTORAGE'], 'the failed renewal is reported once');
          assert.match(reported[0]?.message ?? '', /could not extend a session file's lifetime/, 'saying what could not be done');
          assert.match(reported[0]?.message ?? '', why, `and why: ${reported[0]?.message}`);
          assert.deepEqual(after, before, 'the file is as it was');
          assert.deepEqual(await s.get(id), { v: 1, pad: 'x'.repeat(100) }, 'the session still reads back');
        });
      }

      await t.test('a close that fails after the header was written is no failure', async () => {
        const start = clock.ms;
        const { after, header, reported } = await renew([{ call: 'close', on: 'header', code: 'EIO' }]);
        assert.deepEqual(header.map((c) => c.call), ['open', 'stat', 'read', 'write', 'close'], 'the failing close was the header\'s');
        assert.equal(after?.toString('latin1', 0, HEADER_SIZE), headerOf(start + 1_000 + MINUTE), 'the header holds the renewed expiry');
        assert.deepEqual(reported, [], 'nothing reported');
      });
      assert.deepEqual(errors, [], 'nothing else reported');
    });
  });
}

describe('rewriteHeader: synchronous on synchronous calls, a promise on asynchronous ones', () => {
  it('answers at once through a writer thread\'s calls, and as a promise through promised calls, with the same outcome and the same cleanup', async (t) => {
    const dir = tempDir(t);
    const file = join(dir, 'a'.repeat(64));
    writeFileSync(file, `${header(1_000)}{}`);
    const closed: number[] = [];
    const sync: WriteIo = { ...threadIo, close: (fd) => (closed.push(fd), threadIo.close(fd)) };
    const outcome = rewriteHeader(sync, file, 2_000, MAX_AGE_MS, 0);
    assert.equal(outcome, 'written', 'synchronous calls: the outcome itself, no promise (no turn of the thread\'s loop per header)');
    assert.equal(readFileSync(file, 'latin1').slice(0, HEADER_SIZE), header(2_000), 'the header holds the renewal');
    assert.equal(closed.length, 1, 'the descriptor was closed');
    const promised: WriteIo = Object.fromEntries(Object.entries(sync).map(([k, f]) => [k, async (...a: unknown[]) => (f as (...x: unknown[]) => unknown)(...a)])) as unknown as WriteIo;
    const later = rewriteHeader(promised, file, 3_000, MAX_AGE_MS, 0);
    assert.ok(later instanceof Promise, 'promised calls: a promise');
    assert.equal(await later, 'written', 'with the same outcome');
    assert.equal(readFileSync(file, 'latin1').slice(0, HEADER_SIZE), header(3_000), 'and the same rewrite');
    assert.equal(closed.length, 2, 'and the descriptor closed');
    assert.equal(rewriteHeader(sync, join(dir, 'missing'), 1, MAX_AGE_MS, 0), 'missing', 'a missing file: at once, not a throw');
    assert.equal(await rewriteHeader(promised, join(dir, 'missing'), 1, MAX_AGE_MS, 0), 'missing', 'and through promised calls');
    const failing: WriteIo = { ...sync, read: () => { throw Object.assign(new Error('EIO injected'), { code: 'EIO' }); } };
    assert.throws(() => rewriteHeader(failing, file, 4_000, MAX_AGE_MS, 0), /EIO injected/, 'a failing synchronous call throws');
    assert.equal(closed.length, 3, 'after closing the descriptor');
    const failingLater: WriteIo = { ...promised, read: async () => { throw Object.assign(new Error('EIO later'), { code: 'EIO' }); } };
    await assert.rejects(async () => rewriteHeader(failingLater, file, 4_000, MAX_AGE_MS, 0), /EIO later/, 'a failing promised call rejects');
    assert.equal(closed.length, 4, 'after closing the descriptor');
  });
});
