/**
 * The in-memory stack of the in-process benchmarks (inproc.ts, instructions.ts): the whole
 * `node:http` stack (parser, server, response) on in-memory sockets, with no kernel and no load
 * generator; a keep-alive client on it; the floor (a `Map` of sessions on bare `node:http`) and
 * bare-session with the seed's routes, answering the same requests.
 */
import { randomBytes } from 'node:crypto';
import { type IncomingMessage, type ServerResponse, createServer } from 'node:http';
import { Duplex } from 'node:stream';
import type * as Lib from '../lib/index.js';

/** Requests before a measurement or a count, so that the JIT has compiled what it will. */
export const WARMUP = 10_000;

/** What a benchmark measures: read = GET /get with a session; write = GET /set with one; new = GET /set without a cookie. */
export type Scenario = 'read' | 'write' | 'new';

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

export type Listener = (req: IncomingMessage, res: ServerResponse) => void;

/** A keep-alive client on an in-memory connection to `listener`: one request at a time. */
export class Client {
  readonly #end: End;
  #buf: Buffer = Buffer.alloc(0);
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
export function floor(): Listener {
  const sessions = new Map<string, { time: number; n: number }>();
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
        sessions.set(fresh, { time: Math.floor(Date.now() / 1000), n: counter++ });
        res.setHeader('Set-Cookie', `sid=${fresh}; Max-Age=86400; Path=/; HttpOnly; SameSite=Lax`);
      } else {
        data.time = Math.floor(Date.now() / 1000);
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

/**
 * bare-session with the seed's routes, on `storage`; /set stores what bench/servers/bare.ts
 * stores under wrk (the time in seconds and a count), as the floor does. `now`: the server's
 * clock for cookie refreshes (Date.now when left out).
 */
export function bare(Server: typeof Lib.Server, storage: Lib.Storage, now?: () => number): Listener {
  const s = new Server({ sessionStorage: storage, onError: (e) => console.error(e), ...(now === undefined ? {} : { now }) });
  s.get('/set', (r) => {
    r.session.setMap({ time: Math.floor(Date.now() / 1000), n: counter++ });
    r.response.write('ok');
  });
  s.get('/get', (r) => {
    r.response.write(r.session.data());
  });
  return s.handler;
}

/** A subject ready to measure. */
export interface Subject {
  readonly name: string;
  readonly client: Client;
  readonly cookies: string[];
}

/** A client on `listener` and `sessions` sessions made through it (a /set each), ready to measure. */
export async function prepare(name: string, listener: Listener, sessions: number): Promise<Subject> {
  const client = new Client(listener);
  const cookies: string[] = [];
  for (let i = 0; i < sessions; i++) {
    const { head } = await client.get('/set', undefined);
    const cookie = /set-cookie: ([^;\r\n]+)/i.exec(head)?.[1];
    if (cookie === undefined) throw new Error(`${name}: no cookie`);
    cookies.push(cookie);
  }
  return { name, client, cookies };
}

/** One request of `scenario` on `subject`, its `i`th. */
export function request(subject: Subject, scenario: Scenario, i: number): Promise<unknown> {
  const n = subject.cookies.length;
  return subject.client.get(scenario === 'read' ? '/get' : '/set', scenario === 'new' ? undefined : subject.cookies[(i * 7919) % n]);
}
