/**
 * The in-process benchmark: the whole `node:http` stack (parser, server, response) on in-memory
 * sockets, with no kernel and no load generator, so that a change of a few microseconds shows on
 * a noisy machine. It measures the CPU time of this process per request (user + system, from
 * `process.cpuUsage()`) of bare-session on MemoryStorage and on FileStorage (hot: every session
 * in memory) against the floor (a `Map` of sessions on bare `node:http`) in the same process,
 * and prints the median of each over rounds.
 *
 *   npm run build && npx tsx inproc.ts [--rounds 7] [--requests 20000] [--sessions 2000]
 *
 * Scenarios, as in run.ts: read = GET /get with one of the sessions; write = GET /set with one
 * of them (each write stores a new value, so every one is a real change); new = GET /set
 * without a cookie.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { type IncomingMessage, type ServerResponse, createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Duplex } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type * as Lib from '../lib/index.js';

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '7' },
    requests: { type: 'string', default: '20000' },
    sessions: { type: 'string', default: '2000' },
    // One subject and scenario only, e.g. --only 'MemoryStorage write', for a CPU profile.
    only: { type: 'string' },
    // 'dist' (the default, built by `npm run build`) or 'lib' (the sources, through tsx).
    source: { type: 'string', default: 'dist' },
    // Internal: measure one subject and scenario in this process.
    child: { type: 'string' },
  },
});
// The library as users run it: compiled by tsc into dist/ (`npm run build` first), not through
// tsx, whose helpers (such as esbuild's __name on every closure) cost a few µs a request.
const { FileStorage, MemoryStorage, Server } = (await import(args.source === 'lib' ? '../lib/index.js' : '../dist/index.js')) as typeof Lib;
type Storage = Lib.Storage;
const ROUNDS = Number(args.rounds);
const REQUESTS = Number(args.requests);
const SESSIONS = Number(args.sessions);
/** Requests before the measurement, so that the JIT has compiled what it will. */
const WARMUP = 10_000;

/** One end of an in-memory connection: what one end writes, the other reads. */
class End extends Duplex {
  peer: End | undefined;
  readonly remoteAddress = '127.0.0.1';
  readonly remotePort = 40000;
  override _read(): void {}
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.peer?.push(chunk);
    cb();
  }
  override _final(cb: () => void): void {
    this.peer?.push(null);
    cb();
  }
  setTimeout(): this {
    return this;
  }
  setNoDelay(): this {
    return this;
  }
  setKeepAlive(): this {
    return this;
  }
}

type Listener = (req: IncomingMessage, res: ServerResponse) => void;

/** A keep-alive client on an in-memory connection to `listener`: one request at a time. */
class Client {
  readonly #end: End;
  #buf = Buffer.alloc(0);
  #waiting: ((reply: { head: string; body: string }) => void) | undefined;
  constructor(listener: Listener) {
    const server = createServer(listener);
    const a = new End();
    const b = new End();
    a.peer = b;
    b.peer = a;
    server.emit('connection', a);
    this.#end = b;
    b.on('data', (chunk: Buffer) => {
      this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
      this.#parse();
    });
  }
  /** Sends a GET and resolves with the response's head and body. */
  get(path: string, cookie: string | undefined): Promise<{ head: string; body: string }> {
    return new Promise((resolve) => {
      this.#waiting = resolve;
      this.#end.write(`GET ${path} HTTP/1.1\r\nHost: bench\r\n${cookie === undefined ? '' : `Cookie: ${cookie}\r\n`}\r\n`);
    });
  }
  #parse(): void {
    const end = this.#buf.indexOf('\r\n\r\n');
    if (end === -1) return;
    const head = this.#buf.toString('latin1', 0, end);
    const length = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0);
    if (this.#buf.length < end + 4 + length) return;
    const body = this.#buf.toString('utf8', end + 4, end + 4 + length);
    this.#buf = this.#buf.subarray(end + 4 + length);
    const w = this.#waiting;
    this.#waiting = undefined;
    w?.({ head, body });
  }
}

let counter = 0;

/** The floor: a Map of sessions on bare node:http, the same routes and answers. */
function floor(): Listener {
  const sessions = new Map<string, { n: number }>();
  return (req, res) => {
    const header = req.headers.cookie;
    let id: string | undefined;
    if (header !== undefined) {
      for (const pair of header.split(';')) {
        const eq = pair.indexOf('=');
        if (eq !== -1 && pair.slice(0, eq).trim() === 'sid') id = pair.slice(eq + 1).trim();
      }
    }
    const data = id === undefined ? undefined : sessions.get(id);
    if (req.url === '/set') {
      if (data === undefined) {
        const fresh = randomBytes(32).toString('base64url');
        sessions.set(fresh, { n: counter++ });
        res.setHeader('Set-Cookie', `sid=${fresh}; Max-Age=86400; Path=/; HttpOnly; SameSite=Lax`);
      } else {
        data.n = counter++;
      }
      res.setHeader('Content-Type', 'text/plain; charset=utf-8');
      res.end('ok');
    } else {
      res.setHeader('Content-Type', 'application/json; charset=utf-8');
      res.end(data === undefined ? '{}' : JSON.stringify(data));
    }
  };
}

/** bare-session with the seed's routes, on `storage`. */
function bare(storage: Storage): Listener {
  const s = new Server({ sessionStorage: storage, onError: (e) => console.error(e) });
  s.get('/set', (r) => {
    r.session.set('n', counter++);
    r.response.write('ok');
  });
  s.get('/get', (r) => {
    r.response.write(r.session.data());
  });
  return s.handler;
}

/** A subject ready to measure. */
interface Subject {
  readonly name: string;
  readonly client: Client;
  readonly cookies: string[];
}

async function prepare(name: string, listener: Listener): Promise<Subject> {
  const client = new Client(listener);
  const cookies: string[] = [];
  for (let i = 0; i < SESSIONS; i++) {
    const { head } = await client.get('/set', undefined);
    const cookie = /set-cookie: ([^;\r\n]+)/i.exec(head)?.[1];
    if (cookie === undefined) throw new Error(`${name}: no cookie`);
    cookies.push(cookie);
  }
  return { name, client, cookies };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

/** CPU µs per request of one scenario on one subject, after a warm-up. */
async function measure(subject: Subject, scenario: 'read' | 'write' | 'new'): Promise<number> {
  const path = scenario === 'read' ? '/get' : '/set';
  const n = subject.cookies.length;
  for (let i = 0; i < WARMUP; i++) await subject.client.get(path, scenario === 'new' ? undefined : subject.cookies[i % n]);
  const start = process.cpuUsage();
  for (let i = 0; i < REQUESTS; i++) await subject.client.get(path, scenario === 'new' ? undefined : subject.cookies[(i * 7919) % n]);
  const used = process.cpuUsage(start);
  return (used.user + used.system) / REQUESTS;
}

/** Measures one subject and scenario in this process, which was started for it alone. */
async function child(name: string, scenario: 'read' | 'write' | 'new'): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-inproc-'));
  try {
    const storage = name === 'MemoryStorage' ? new MemoryStorage() : name === 'FileStorage' ? new FileStorage({ path: join(dir, 'sessions'), maxInMemory: 100_000 }) : undefined;
    const subject = await prepare(name, storage === undefined ? floor() : bare(storage));
    const us = await measure(subject, scenario);
    await storage?.close();
    return us;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (args.child !== undefined) {
  const [name, scenario] = args.child.split(' ') as [string, 'read' | 'write' | 'new'];
  process.stdout.write(`${await child(name, scenario)}\n`);
} else {
  // Each measurement in a fresh process (a fresh heap, nothing left by the others); each subject
  // right after a floor measurement of the same scenario, and its ratio to that floor kept, so
  // that the machine's swings between minutes cancel out.
  const names = ['MemoryStorage', 'FileStorage'];
  const scenarios = ['read', 'write', 'new'] as const;
  const run = (key: string): number =>
    Number(execFileSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--child', key, '--requests', String(REQUESTS), '--sessions', String(SESSIONS), '--source', args.source ?? 'dist'], { encoding: 'utf8' }).trim());
  const results = new Map<string, { floor: number[]; subject: number[]; ratio: number[] }>();
  for (let round = 0; round < ROUNDS; round++) {
    for (const scenario of scenarios) {
      for (const name of names) {
        if (name === 'FileStorage' && scenario !== 'read') continue; // disk-bound: see run.ts
        const key = `${name} ${scenario}`;
        if (args.only !== undefined && key !== args.only) continue;
        // The floor before the subject in even rounds, after it in odd ones.
        let f: number;
        let x: number;
        if (round % 2 === 0) {
          f = run(`floor ${scenario}`);
          x = run(key);
        } else {
          x = run(key);
          f = run(`floor ${scenario}`);
        }
        const r = results.get(key) ?? { floor: [], subject: [], ratio: [] };
        r.floor.push(f);
        r.subject.push(x);
        r.ratio.push(x / f);
        results.set(key, r);
      }
    }
  }
  console.log(`CPU µs per request, each measurement in a fresh process beside a floor measurement; medians of ${ROUNDS} rounds of ${REQUESTS} requests (Node ${process.version})`);
  console.log('| | read | write | new |\n|---|---:|---:|---:|');
  for (const name of names) {
    const cells = scenarios.map((scenario) => {
      const r = results.get(`${name} ${scenario}`);
      return r === undefined ? '–' : `${median(r.subject).toFixed(1)} µs vs ${median(r.floor).toFixed(1)}: **${median(r.ratio).toFixed(2)}×**`;
    });
    console.log(`| ${name} | ${cells.join(' | ')} |`);
  }
}
