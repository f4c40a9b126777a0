/**
 * Shared test helpers: a small HTTP client over real sockets, a cookie jar, temporary folders,
 * a movable clock, and a storage spy.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent, request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { Server, type ServerOptions } from '../lib/index.js';
import type { SessionData, Storage, StorageSettings } from '../lib/storage/storage.js';

/** What {@link send} resolves to. */
export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  setCookies: string[];
}

/** Options of {@link send}. */
export interface SendOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  agent?: Agent | false;
}

/** Sends one request to 127.0.0.1:`port` and reads the whole answer. */
export function send(port: number, path: string, options: SendOptions = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: '127.0.0.1', port, path, method: options.method ?? 'GET', headers: options.headers, agent: options.agent ?? false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString('utf8'),
            setCookies: res.headers['set-cookie'] ?? [],
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

/**
 * A browser's cookie jar, for one host: keeps what `Set-Cookie` sets, sends it back. Given a
 * clock, it drops a cookie once its `Max-Age` has run out, as a browser does.
 */
export class Jar {
  readonly cookies = new Map<string, string>();
  /** When each cookie with a `Max-Age` expires, on the clock. */
  readonly #expires = new Map<string, number>();
  readonly #now: (() => number) | undefined;

  constructor(clock?: { now: () => number }) {
    this.#now = clock?.now;
  }

  /** Stores the cookies of a reply; `Max-Age=0` deletes one. */
  take(reply: Reply): Reply {
    for (const line of reply.setCookies) {
      const [pair = '', ...attrs] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const maxAge = attrs.map((a) => /^\s*max-age=(\d+)\s*$/i.exec(a)).find((m) => m !== null);
      if (maxAge?.[1] === '0') {
        this.cookies.delete(name);
        this.#expires.delete(name);
        continue;
      }
      this.cookies.set(name, value);
      if (maxAge !== undefined && this.#now !== undefined) this.#expires.set(name, this.#now() + Number(maxAge[1]) * 1000);
      else this.#expires.delete(name);
    }
    return reply;
  }

  /** The `Cookie` header to send (cookies whose `Max-Age` ran out are dropped first). */
  header(): string {
    if (this.#now !== undefined) {
      const now = this.#now();
      for (const [name, at] of this.#expires) {
        if (now >= at) {
          this.cookies.delete(name);
          this.#expires.delete(name);
        }
      }
    }
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  /** Sends a request with the jar's cookies and keeps the ones the answer sets. */
  async send(port: number, path: string, options: SendOptions = {}): Promise<Reply> {
    const headers = { ...options.headers };
    const cookie = this.header();
    if (cookie !== '') headers['cookie'] = cookie;
    return this.take(await send(port, path, { ...options, headers }));
  }
}

/** The value of cookie `name` in a list of `Set-Cookie` lines. */
export function cookieValue(setCookies: readonly string[], name: string): string | undefined {
  for (const line of setCookies) {
    const pair = line.split(';', 1)[0] ?? '';
    const eq = pair.indexOf('=');
    if (pair.slice(0, eq) === name) return pair.slice(eq + 1);
  }
  return undefined;
}

/** A fresh private temporary folder, removed after the test. */
export function tempDir(t: TestContext, prefix = 'bare-session-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A clock the test moves by hand. */
export class Clock {
  ms: number;
  constructor(start = 1_700_000_000_000) {
    this.ms = start;
  }
  readonly now = (): number => this.ms;
  /** Moves time forward. */
  advance(ms: number): void {
    this.ms += ms;
  }
}

/** Wraps a storage and counts the calls it gets, by method. */
export class SpyStorage implements Storage {
  readonly calls: { method: string; id: string }[] = [];
  readonly inner: Storage;
  /** Present when the wrapped storage has one, as the server would see it. */
  readonly patch?: NonNullable<Storage['patch']>;
  constructor(inner: Storage) {
    this.inner = inner;
    const patch = inner.patch;
    if (patch !== undefined) {
      this.patch = (id, changes, ttlMs) => {
        this.calls.push({ method: 'patch', id });
        return patch.call(inner, id, changes, ttlMs);
      };
    }
  }
  configure(settings: StorageSettings): void {
    this.inner.configure?.(settings);
  }
  get(id: string): Promise<SessionData | undefined> {
    this.calls.push({ method: 'get', id });
    return this.inner.get(id);
  }
  set(id: string, data: SessionData, ttlMs: number): Promise<void> {
    this.calls.push({ method: 'set', id });
    return this.inner.set(id, data, ttlMs);
  }
  touch(id: string, ttlMs: number): Promise<boolean | void> {
    this.calls.push({ method: 'touch', id });
    return this.inner.touch(id, ttlMs);
  }
  remove(id: string): Promise<void> {
    this.calls.push({ method: 'remove', id });
    return this.inner.remove(id);
  }
  async close(): Promise<void> {
    await this.inner.close?.();
  }
}

/** Starts a server on port 0 (after `setup` registered its routes) and closes it after the test. */
export async function serve<T extends object = SessionData>(
  t: TestContext,
  options: ServerOptions<T>,
  setup: (s: Server<T>) => void,
): Promise<Server<T>> {
  const s = new Server<T>({ onError: () => undefined, ...options });
  setup(s);
  await s.start();
  t.after(() => s.close());
  return s;
}

/** A promise and the functions that settle it, for tests that wait on an event they cause. */
export interface Deferred<T> {
  readonly promise: Promise<T>;
  readonly resolve: (value: T) => void;
  readonly reject: (reason: unknown) => void;
}

/** Makes a {@link Deferred}. */
export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (reason: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** What {@link rawRequest} resolves to. */
export interface RawReply {
  /** Everything the server sent, as latin1 text. */
  text: string;
  /** The socket error seen on the way (a reset while still writing, say), if any. */
  error: Error | undefined;
}

/**
 * Writes raw bytes to 127.0.0.1:`port` and resolves, once the connection is closed, with
 * everything the server sent. It never closes the connection itself: a test that awaits it
 * proves the server closed it (or sends `Connection: close`).
 */
export function rawRequest(port: number, ...parts: (string | Buffer)[]): Promise<RawReply> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let error: Error | undefined;
    const socket = connect(port, '127.0.0.1', () => {
      for (const part of parts) socket.write(part);
    });
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', (e) => {
      error = e;
    });
    socket.on('close', () => resolve({ text: Buffer.concat(chunks).toString('latin1'), error }));
  });
}

/** A logger that keeps its lines, by level. */
export class MemoryLogger {
  readonly lines: { level: 'info' | 'warn' | 'error'; message: string }[] = [];
  readonly info = (message: string): void => {
    this.lines.push({ level: 'info', message });
  };
  readonly warn = (message: string): void => {
    this.lines.push({ level: 'warn', message });
  };
  readonly error = (message: string): void => {
    this.lines.push({ level: 'error', message });
  };
  /** The lines of one level. */
  of(level: 'info' | 'warn' | 'error'): string[] {
    return this.lines.filter((l) => l.level === level).map((l) => l.message);
  }
}

/**
 * A barrier for `n` parties: `wait()` resolves for all of them once the `n`th arrives. Tests use
 * it to hold every request in its handler until all have loaded their session.
 */
export class Barrier {
  readonly #n: number;
  #arrived = 0;
  readonly #all = deferred();
  constructor(n: number) {
    this.#n = n;
  }
  /** Arrives, and resolves once all `n` have arrived. */
  wait(): Promise<void> {
    if (++this.#arrived === this.#n) this.#all.resolve();
    return this.#all.promise;
  }
}

/** A call a {@link GatedStorage} holds until the test releases it. */
export interface HeldCall {
  readonly method: StorageMethod;
  readonly id: string;
  release(): void;
}

/** The methods a {@link GatedStorage} can hold. */
export type StorageMethod = 'get' | 'set' | 'patch' | 'touch' | 'remove';

/**
 * A storage that forces the interleavings a concurrency test claims. It wraps another storage,
 * and for the methods the test `hold`s, each call waits until the test releases it. A held
 * `get` reads the inner storage when it is called and answers that snapshot when released, as
 * a backend's answer in flight would. With `delay: true` every call also waits one turn of the
 * event loop (`setImmediate`), so that calls of many requests interleave. Without
 * `withPatch` it hides the inner storage's `patch`, so the server uses its own read-merge-write
 * under its lock.
 */
export class GatedStorage implements Storage {
  readonly inner: Storage;
  readonly held: HeldCall[] = [];
  readonly calls: { method: StorageMethod; id: string }[] = [];
  readonly patch?: NonNullable<Storage['patch']>;
  readonly #holding = new Set<StorageMethod>();
  readonly #delay: boolean;
  #waiters: (() => void)[] = [];

  constructor(inner: Storage, { withPatch = false, delay = false }: { withPatch?: boolean; delay?: boolean } = {}) {
    this.inner = inner;
    this.#delay = delay;
    const patch = inner.patch;
    if (withPatch && patch !== undefined) {
      this.patch = async (id, changes, ttlMs) => {
        await this.#gate('patch', id);
        return patch.call(inner, id, changes, ttlMs);
      };
    }
  }

  /** From now on, calls of `method` wait for a release. */
  hold(method: StorageMethod): void {
    this.#holding.add(method);
  }

  /** From now on, calls of `method` go through (the ones already held stay held). */
  pass(method: StorageMethod): void {
    this.#holding.delete(method);
  }

  /** Resolves once `n` calls of `method` are held. */
  async whenHeld(method: StorageMethod, n: number): Promise<void> {
    while (this.held.filter((h) => h.method === method).length < n) {
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
  }

  /** Releases the oldest held call of `method` and returns it. */
  release(method: StorageMethod): HeldCall {
    const i = this.held.findIndex((h) => h.method === method);
    if (i === -1) throw new Error(`no ${method} call is held`);
    const [call] = this.held.splice(i, 1) as [HeldCall];
    call.release();
    return call;
  }

  /** Holds nothing more and releases every held call (so a failed test does not hang). */
  releaseAll(): void {
    this.#holding.clear();
    for (const call of this.held.splice(0)) call.release();
  }

  configure(settings: StorageSettings): void {
    this.inner.configure?.(settings);
  }

  async get(id: string): Promise<SessionData | undefined> {
    const snapshot = await this.inner.get(id);
    await this.#gate('get', id);
    return snapshot;
  }

  async set(id: string, data: SessionData, ttlMs: number): Promise<void> {
    await this.#gate('set', id);
    await this.inner.set(id, data, ttlMs);
  }

  async touch(id: string, ttlMs: number): Promise<boolean | void> {
    await this.#gate('touch', id);
    return this.inner.touch(id, ttlMs);
  }

  async remove(id: string): Promise<void> {
    await this.#gate('remove', id);
    await this.inner.remove(id);
  }

  async close(): Promise<void> {
    await this.inner.close?.();
  }

  async #gate(method: StorageMethod, id: string): Promise<void> {
    this.calls.push({ method, id });
    if (this.#delay) await new Promise((resolve) => setImmediate(resolve));
    if (!this.#holding.has(method)) return;
    const d = deferred();
    this.held.push({ method, id, release: () => d.resolve() });
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
    await d.promise;
  }
}

/** Resolves after every pending microtask and one turn of the event loop: not a timer. */
export function turn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Resolves once `check()` is true, looking again after each turn of the event loop. */
export async function waitFor(check: () => boolean, turns = 10_000): Promise<void> {
  for (let i = 0; i < turns; i++) {
    if (check()) return;
    await turn();
  }
  throw new Error('waitFor: the condition never became true');
}

/** The methods a {@link FailingStorage} can make fail. */
export type FailableMethod = 'get' | 'set' | 'patch' | 'touch' | 'remove' | 'close';

/** The optional methods of a storage, which a {@link FailingStorage} shows or hides. */
export type OptionalMethod = 'patch' | 'configure' | 'close';

/** What a failing call rejects with: an error, or a function that makes one for each call (`id` is undefined for `close`). */
export type Failure = Error | ((method: FailableMethod, id: string | undefined) => unknown);

/** Options of {@link FailingStorage}. */
export interface FailingStorageOptions {
  /**
   * Which of the inner storage's optional methods (`patch`, `configure`, `close`) it shows, where
   * the inner one has them: `true` (the default) all, `false` none (a user's minimal storage, so
   * the server uses its own read-merge-write and checks sizes itself), or a list.
   */
  optional?: boolean | readonly OptionalMethod[];
}

/**
 * A storage that fails on demand, for tests of what the server does when its backend breaks.
 * It wraps another storage; after `fail(method, error)` each call of that method rejects (with
 * `error`, or an `EIO` error naming the method by default) without reaching the inner storage,
 * until `heal(method)`. `fail('all')` and `heal()` act on every method.
 *
 * @example
 * ```ts
 * const storage = new FailingStorage(new MemoryStorage(), { optional: false });
 * storage.fail('get', (method, id) => new Error(`backend lost ${id}`)).fail('set');
 * // … requests answer 503 …
 * storage.heal();
 * ```
 */
export class FailingStorage implements Storage {
  readonly inner: Storage;
  /** The calls that failed, in order. */
  readonly failed: { method: FailableMethod; id: string | undefined }[] = [];
  readonly patch?: NonNullable<Storage['patch']>;
  readonly configure?: NonNullable<Storage['configure']>;
  readonly close?: NonNullable<Storage['close']>;
  readonly #failing = new Map<FailableMethod, Failure>();

  constructor(inner: Storage, { optional = true }: FailingStorageOptions = {}) {
    this.inner = inner;
    const shown = (method: OptionalMethod): boolean => (Array.isArray(optional) ? optional.includes(method) : optional === true);
    const { patch, configure, close } = inner;
    if (patch !== undefined && shown('patch')) {
      this.patch = (id, changes, ttlMs) => this.#call('patch', id, () => patch.call(inner, id, changes, ttlMs));
    }
    if (configure !== undefined && shown('configure')) this.configure = (settings) => configure.call(inner, settings);
    if (close !== undefined && shown('close')) this.close = () => this.#call('close', undefined, () => close.call(inner));
  }

  /** From now on, calls of `method` (every method for `'all'`) reject with `error`. */
  fail(method: FailableMethod | 'all', error?: Failure): this {
    const failure: Failure = error ?? ((m) => Object.assign(new Error(`EIO: ${m} failed (FailingStorage)`), { code: 'EIO' }));
    const methods: readonly FailableMethod[] = method === 'all' ? ['get', 'set', 'patch', 'touch', 'remove', 'close'] : [method];
    for (const m of methods) this.#failing.set(m, failure);
    return this;
  }

  /** From now on, calls of `method` (every method when omitted or `'all'`) reach the inner storage again. */
  heal(method: FailableMethod | 'all' = 'all'): this {
    if (method === 'all') this.#failing.clear();
    else this.#failing.delete(method);
    return this;
  }

  get(id: string): Promise<SessionData | undefined> {
    return this.#call('get', id, () => this.inner.get(id));
  }
  set(id: string, data: SessionData, ttlMs: number): Promise<void> {
    return this.#call('set', id, () => this.inner.set(id, data, ttlMs));
  }
  touch(id: string, ttlMs: number): Promise<boolean | void> {
    return this.#call('touch', id, () => this.inner.touch(id, ttlMs));
  }
  remove(id: string): Promise<void> {
    return this.#call('remove', id, () => this.inner.remove(id));
  }

  #call<T>(method: FailableMethod, id: string | undefined, pass: () => Promise<T>): Promise<T> {
    if (!this.#failing.has(method)) return pass();
    const failure = this.#failing.get(method);
    this.failed.push({ method, id });
    return Promise.reject(typeof failure === 'function' ? failure(method, id) : failure);
  }
}
