/**
 * What the FileStorage tests share: where a session's file and owner index marker live, how to
 * read a file's header and body behind the storage's back, a storage per test on a temporary
 * folder with an injected clock, and gates that hold a file call while the test acts.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { StorageError } from '../../../lib/errors.js';
import { FileStorage, type FileStorageOptions } from '../../../lib/storage/file/file-storage.js';
import { fsCalls } from '../../../lib/storage/file/files.js';
import { HEADER_SIZE } from '../../../lib/storage/file/format.js';
import { Clock, tempDir } from '../../helpers.js';

/** A minute, in milliseconds. */
export const MINUTE = 60_000;

/** The SHA-256 of a string in hex: a session's file name from its id, an owner's folder name from the owner. */
export function hashOf(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** Where the session `id` lives under `dir`: `<dir>/<xx>/<sha256(id)>`. */
export function fileOf(dir: string, id: string): string {
  const hash = hashOf(id);
  return join(dir, hash.slice(0, 2), hash);
}

/** The owner index folder of `owner` under `dir`: `<dir>/owners/<sha256(owner)>`. */
export function ownerDirOf(dir: string, owner: string): string {
  return join(dir, 'owners', hashOf(owner));
}

/** Where the owner index marks the session `id` as `owner`'s: `<dir>/owners/<sha256(owner)>/<sha256(id)>`. */
export function markerOf(dir: string, owner: string, id: string): string {
  return join(ownerDirOf(dir, owner), hashOf(id));
}

/** A version-1 header for an expiry time. */
export function header(expiresAt: number | string): string {
  return `BS1 ${String(expiresAt).padStart(16, '0')}\n`;
}

/** The expiry digits of a session file's header, as a number, after checking the header's frame. */
export function expiryOf(file: string): number {
  const buf = readFileSync(file);
  assert.equal(buf.toString('latin1', 0, 4), 'BS1 ', 'the header starts with the magic');
  assert.equal(buf[HEADER_SIZE - 1], 10, 'the header ends with a newline');
  return Number(buf.toString('latin1', 4, HEADER_SIZE - 1));
}

/** The JSON body of a session file, parsed. */
export function bodyOf(file: string): unknown {
  return JSON.parse(readFileSync(file).toString('utf8', HEADER_SIZE));
}

/** Writes `content` at the session file of `id`, creating its shard folder, behind the storage's back. */
export function plant(dir: string, id: string, content: string | Buffer): string {
  const file = fileOf(dir, id);
  mkdirSync(join(file, '..'), { recursive: true, mode: 0o700 });
  writeFileSync(file, content, { mode: 0o600 });
  return file;
}

/** The entries of the folder `dir` but its lock file. */
export function entries(dir: string): string[] {
  return readdirSync(dir).filter((name) => !/^\.lock\.\d+$/.test(name));
}

/** Codes of reported errors. */
export function codes(errors: readonly Error[]): string[] {
  return errors.map((e) => (e instanceof StorageError ? e.code : e.name));
}

/** An error with a code, as node:fs makes them. */
export function fsError(code: string): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error(`${code}: injected`);
  err.code = code;
  return err;
}

/** What {@link setup} gives a test. */
export interface Setup {
  dir: string;
  clock: Clock;
  /** What every storage made by `make` reported to `onError`. */
  errors: Error[];
  /** A storage on `dir` with the shared clock and error list; closed after the test. */
  make(options?: FileStorageOptions): FileStorage;
}

/**
 * A temporary folder, a clock and a maker of storages on them, on Node's thread pool (whose calls
 * `fsCalls.io` lets a test replace) unless the options say otherwise. Every storage is closed
 * after the test, before its folder is removed.
 */
export function setup(t: TestContext, prefix = 'bare-session-file-'): Setup {
  const storages: FileStorage[] = [];
  // Registered before tempDir's removal (after-hooks run in order), so every storage is closed
  // (its writes finished) before its folder is deleted.
  t.after(async () => {
    for (const s of storages) await s.close();
  });
  const dir = tempDir(t, prefix);
  const clock = new Clock();
  const errors: Error[] = [];
  const make = (options: FileStorageOptions = {}): FileStorage => {
    const s = new FileStorage({ path: dir, now: clock.now, onError: (e) => errors.push(e), writerThreads: 0, ...options });
    storages.push(s);
    return s;
  };
  return { dir, clock, errors, make };
}

/** The arguments of `fsCalls.open`. */
export type OpenArgs = Parameters<typeof fsCalls.open>;

/** A call held until the test lets it go. */
export interface Gate {
  /** Resolves when a mocked call arrived at the gate. */
  reached: Promise<void>;
  /** Lets it go on. */
  release(): void;
  /** Called by the mock: holds until `release()`. */
  wait(): Promise<void>;
}

/** A {@link Gate} not yet attached to any call. */
export function gate(): Gate {
  let arrived!: () => void;
  let release!: () => void;
  const reached = new Promise<void>((resolve) => (arrived = resolve));
  const released = new Promise<void>((resolve) => (release = resolve));
  return {
    reached,
    release,
    wait: async () => {
      arrived();
      await released;
    },
  };
}

/**
 * Makes the first `fsCalls.open` that `match`es stop after the real open, until `release()`:
 * the file is open (its bytes fixed for this reader) while the test does something else.
 * `closed` resolves once the reader closed that handle (it is done with the file).
 */
export function gateOpen(t: TestContext, match: (path: string, flags: OpenArgs[1]) => boolean): Gate & { closed: Promise<void> } {
  const real = fsCalls.open;
  const g = gate();
  let closed!: () => void;
  const closedP = new Promise<void>((resolve) => (closed = resolve));
  let armed = true;
  t.mock.method(fsCalls, 'open', async (...args: OpenArgs): Promise<FileHandle> => {
    const fh = await real(...args);
    if (armed && match(String(args[0]), args[1])) {
      armed = false;
      const realClose = fh.close.bind(fh);
      t.mock.method(fh, 'close', async () => {
        await realClose();
        closed();
      });
      await g.wait();
    }
    return fh;
  });
  return { ...g, closed: closedP };
}

/** Makes the first rename onto `file` (of a write on the thread pool) wait until `release()`: a write stays under way. */
export function gateRename(t: TestContext, file: string): Gate {
  const real = fsCalls.io.rename;
  const g = gate();
  let armed = true;
  t.mock.method(fsCalls.io, 'rename', async (from: string, to: string): Promise<void> => {
    if (armed && to === file) {
      armed = false;
      await g.wait();
    }
    return real(from, to);
  });
  return g;
}
