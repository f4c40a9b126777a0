/**
 * One process owns a FileStorage folder: the lock, with real second processes (spawned from
 * test/fixtures/file-lock-holder.ts), kill -9, stale locks, races, and the default path.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { StorageError } from '../../../lib/errors.js';
import { FileStorage } from '../../../lib/storage/file/file-storage.js';
import { defaultPath } from '../../../lib/storage/file/files.js';
import { generateId } from '../../../lib/id.js';
import { type Child, startChild } from '../../child.js';
import { tempDir } from '../../helpers.js';

const HOLDER = join(import.meta.dirname, '..', '..', 'fixtures', 'file-lock-holder.ts');
const MINUTE = 60_000;
const IS_LINUX = process.platform === 'linux';

interface Holder {
  child: Child;
  /** Sends the go, and resolves with what the child answered. */
  go(): Promise<{ held?: number; refused?: string; message?: string }>;
  /** Ends its stdin: a holder closes its storage and exits. */
  end(): Promise<void>;
}

/** Starts a lock holder on `dir` and waits until it is loaded. */
async function holder(t: TestContext, dir: string): Promise<Holder> {
  const child = startChild(HOLDER, { args: [dir], stdin: 'pipe', t });
  assert.equal(await child.nextLine(), 'ready', 'the holder loaded');
  return {
    child,
    go: async () => {
      child.proc.stdin?.write('go\n');
      return JSON.parse(await child.nextLine()) as { held?: number; refused?: string; message?: string };
    },
    end: async () => {
      child.proc.stdin?.end();
      await child.exited;
    },
  };
}

/** A pid that is surely dead: a child's, after it exited. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', '']);
  assert.throws(() => process.kill(child.pid, 0), { code: 'ESRCH' }, 'the pid is dead');
  return child.pid;
}

function locks(dir: string): string[] {
  return readdirSync(dir).filter((n) => n.startsWith('.lock'));
}

function isFolderInUse(dir: string, pid: number): (err: unknown) => boolean {
  return (err: unknown) => {
    assert.ok(err instanceof StorageError, `a StorageError, not ${String(err)}`);
    assert.equal(err.code, 'EFOLDERINUSE', 'with the code EFOLDERINUSE');
    assert.ok(err.message.includes(dir), 'naming the folder');
    assert.ok(err.message.includes(`pid ${pid}`) || err.message.includes(`process ${pid}`), `naming the holder's pid ${pid}: ${err.message}`);
    assert.match(err.message, /give each process its own path/, 'saying what to do');
    assert.match(err.message, /several processes need a shared storage such as RedisStorage/, 'and what to use instead');
    return true;
  };
}

describe('FileStorage: one process owns a folder', () => {
  it('refuses a folder another process holds, in this process and in a third, naming the folder, the pid and what to do', async (t) => {
    const dir = tempDir(t, 'bare-session-lock-');
    const first = await holder(t, dir);
    const held = await first.go();
    assert.equal(typeof held.held, 'number', `the first process holds the folder: ${JSON.stringify(held)}`);
    const pid = held.held as number;
    assert.throws(() => new FileStorage({ path: dir, writerThreads: 0 }), isFolderInUse(dir, pid), 'this process is refused');
    const third = await holder(t, dir);
    const refused = await third.go();
    assert.equal(refused.refused, 'EFOLDERINUSE', 'another process is refused');
    assert.ok(isFolderInUse(dir, pid)(Object.assign(new StorageError(refused.message ?? ''), { code: refused.refused })), 'with the same message');
    await third.end();
    // Once the holder closed its storage, the folder is free.
    await first.end();
    assert.deepEqual(locks(dir), [], 'close() released the lock');
    const s = new FileStorage({ path: dir, writerThreads: 0 });
    await s.set(generateId(), { a: 1 }, MINUTE);
    await s.close();
  });

  it('takes over the lock of a process killed with SIGKILL', async (t) => {
    const dir = tempDir(t, 'bare-session-lock-');
    const victim = await holder(t, dir);
    const { held } = await victim.go();
    assert.equal(typeof held, 'number', 'the victim holds the folder');
    const killed = await victim.child.stop('SIGKILL');
    assert.equal(killed.signal, 'SIGKILL', 'the holder died by SIGKILL, holding the folder');
    const stale = locks(dir);
    assert.equal(stale.length, 1, 'its lock is left behind');
    assert.equal(JSON.parse(readFileSync(join(dir, stale[0] as string), 'utf8')).pid, held, 'naming the dead process');
    const s = new FileStorage({ path: dir, writerThreads: 0 });
    const now = locks(dir);
    assert.equal(now.length, 1, 'one lock');
    assert.equal(JSON.parse(readFileSync(join(dir, now[0] as string), 'utf8')).pid, process.pid, 'this process holds it now');
    await s.close();
    assert.deepEqual(locks(dir), [], 'released on close');
  });

  it('refuses a second FileStorage of this process on one folder, however spelled, until the first is closed', async (t) => {
    const dir = tempDir(t, 'bare-session-lock-');
    const first = new FileStorage({ path: dir, writerThreads: 0 });
    for (const spelling of [dir, `${dir}/`, relative(process.cwd(), dir), join(dir, '..', dir.split('/').pop() as string)]) {
      assert.throws(() => new FileStorage({ path: spelling, writerThreads: 0 }), (err: unknown) => {
        isFolderInUse(spelling, process.pid)(err);
        assert.match((err as Error).message, /another FileStorage of this process/, 'saying it is this process');
        return true;
      }, 'every spelling of a held folder is refused as held by this process');
    }
    await first.close();
    const second = new FileStorage({ path: dir, writerThreads: 0 });
    await second.close();
  });

  it('takes over a stale lock race-free when four processes start on it at once: exactly one holds', async (t) => {
    const dir = tempDir(t, 'bare-session-lock-');
    writeFileSync(join(dir, '.lock.3'), JSON.stringify({ pid: deadPid(), start: null, boot: null, token: 'dead00000000' }), { mode: 0o600 });
    const children = await Promise.all(Array.from({ length: 4 }, () => holder(t, dir)));
    const answers = await Promise.all(children.map((c) => c.go()));
    const holders = answers.filter((a) => a.held !== undefined);
    assert.equal(holders.length, 1, `exactly one holds the folder: ${JSON.stringify(answers)}`);
    const pid = holders[0]?.held as number;
    for (const a of answers.filter((x) => x.held === undefined)) {
      assert.equal(a.refused, 'EFOLDERINUSE', 'the others are refused');
      assert.ok(a.message?.includes(`process ${pid}`), `naming the one holder: ${a.message}`);
    }
    assert.equal(locks(dir).length, 1, 'one lock file left, the stale one gone');
    await Promise.all(children.map((c) => c.end()));
    assert.deepEqual(locks(dir), [], 'released');
  });

  it('takes a lock as stale when its pid was reused, its boot was another, or its instance here is closed; holds it for a live one', { skip: !IS_LINUX && '/proc is Linux only' }, async (t) => {
    const dir = tempDir(t, 'bare-session-lock-');
    // The parent process is alive: a lock naming it with its real start time is held.
    const stat = readFileSync(`/proc/${process.ppid}/stat`, 'latin1');
    const start = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] as string;
    const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'latin1').trim();
    const plant = (lock: object | string): void => writeFileSync(join(dir, '.lock.1'), typeof lock === 'string' ? lock : JSON.stringify(lock), { mode: 0o600 });
    plant({ pid: process.ppid, start, boot, token: 'a00000000000' });
    assert.throws(() => new FileStorage({ path: dir, writerThreads: 0 }), isFolderInUse(dir, process.ppid), 'a live holder keeps the folder');
    const selfStat = readFileSync('/proc/self/stat', 'latin1');
    const selfStart = selfStat.slice(selfStat.lastIndexOf(')') + 2).split(' ')[19] as string;
    const stale: [string, object | string][] = [
      ['the pid now belongs to a process started at another time', { pid: process.ppid, start: String(Number(start) + 1), boot, token: 'b00000000000' }],
      ['the lock is from another boot', { pid: process.ppid, start, boot: '00000000-0000-0000-0000-000000000000', token: 'c00000000000' }],
      ['the lock is this process\'s, from an instance that is closed', { pid: process.pid, start: selfStart, boot, token: 'd00000000000' }],
      ['the lock file is not JSON', 'garbage'],
    ];
    for (const [why, lock] of stale) {
      plant(lock);
      const s = new FileStorage({ path: dir, writerThreads: 0 });
      assert.deepEqual(locks(dir), ['.lock.2'], `taken over when ${why}`);
      await s.close();
      assert.deepEqual(locks(dir), [], 'and released');
    }
  });

  it('keeps its lock file out of the sweep and the orphan clean-up', async (t) => {
    const dir = tempDir(t, 'bare-session-lock-');
    const s = new FileStorage({ path: dir, writerThreads: 0 });
    const lock = locks(dir);
    assert.equal(lock.length, 1, 'a lock file while open');
    await s.set(generateId(), { a: 1 }, 1_000);
    assert.equal(await s.sweep(), 0, 'nothing expired yet');
    assert.deepEqual(locks(dir), lock, 'the sweep left the lock alone');
    assert.equal(existsSync(join(dir, lock[0] as string)), true, 'still there');
    await s.close();
  });

  it('derives the default path from the user and the entry script, so two programs of one user never share it', (t) => {
    const argv1 = process.argv[1];
    t.after(() => {
      process.argv[1] = argv1 as string;
    });
    const paths = ['/srv/shop/server.js', '/srv/blog/server.js', '/srv/shop/worker.mjs'].map((script) => {
      process.argv[1] = script;
      return defaultPath();
    });
    const hash = (s: string): string => createHash('sha256').update(s).digest('hex').slice(0, 8);
    const uid = process.getuid?.() ?? 'user';
    assert.deepEqual(
      paths,
      [
        join(tmpdir(), `bare-session-${uid}-server-${hash('/srv/shop/server.js')}`),
        join(tmpdir(), `bare-session-${uid}-server-${hash('/srv/blog/server.js')}`),
        join(tmpdir(), `bare-session-${uid}-worker-${hash('/srv/shop/worker.mjs')}`),
      ],
      'per user and per script, the name readable, the path hashed',
    );
    assert.equal(new Set(paths).size, 3, 'two apps named alike do not share a folder');
    process.argv.splice(1, 1);
    t.after(() => process.argv.splice(1, 0, argv1 as string));
    assert.match(defaultPath(), new RegExp(`bare-session-${uid}-[\\w.-]+-[0-9a-f]{8}$`), 'without a script: from the working folder');
  });
});
