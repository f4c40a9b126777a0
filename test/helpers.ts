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
import type { SessionData, Storage } from '../lib/storage.js';

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

/** A browser's cookie jar, for one host: keeps what `Set-Cookie` sets, sends it back. */
export class Jar {
  readonly cookies = new Map<string, string>();

  /** Stores the cookies of a reply; `Max-Age=0` deletes one. */
  take(reply: Reply): Reply {
    for (const line of reply.setCookies) {
      const [pair = '', ...attrs] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const expired = attrs.some((a) => /^\s*max-age=0\s*$/i.test(a));
      if (expired) this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
    return reply;
  }

  /** The `Cookie` header to send. */
  header(): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  /** Sends a request with the jar's cookies and keeps the ones the answer sets. */
  async send(port: number, path: string, options: SendOptions = {}): Promise<Reply> {
    const headers = { ...options.headers };
    if (this.cookies.size > 0) headers['cookie'] = this.header();
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
  constructor(inner: Storage) {
    this.inner = inner;
  }
  get(id: string): Promise<SessionData | undefined> {
    this.calls.push({ method: 'get', id });
    return this.inner.get(id);
  }
  set(id: string, data: SessionData, ttlMs: number): Promise<void> {
    this.calls.push({ method: 'set', id });
    return this.inner.set(id, data, ttlMs);
  }
  touch(id: string, ttlMs: number): Promise<void> {
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
