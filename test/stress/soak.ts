/**
 * `npm run test:soak`: mixed reads, writes, new sessions, regenerates and destroys from many
 * concurrent clients on file storage, for SOAK_SECONDS (default 60). Afterwards:
 * - no error responses, and every read matched what its client last wrote;
 * - every session's final state is exactly what its client last wrote;
 * - after expiry and the sweep, heap and open file descriptors are back near their baseline;
 * - no event-loop stall over 100 ms (perf_hooks.monitorEventLoopDelay);
 * - a slowloris client, trickling one header line every few seconds throughout, is cut off by
 *   Node's default headersTimeout (60 s, checked every 30 s) while everyone else is served.
 * Run with --expose-gc for the heap figure (the npm script does).
 */
import { cpSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { FileStorage, Server } from '../../lib/index.js';
import { generateId } from '../../lib/id.js';
import { isMetaKey } from '../../lib/storage/storage.js';
import { prng } from '../prng.js';

const SECONDS = Number(process.env['SOAK_SECONDS'] ?? 60);
const CLIENTS = Number(process.env['SOAK_CLIENTS'] ?? 50);
const gc = (globalThis as { gc?: () => void }).gc;

function fds(): number {
  try {
    return readdirSync('/proc/self/fd').length;
  } catch {
    return -1;
  }
}

function heapMb(): number {
  gc?.();
  gc?.();
  return process.memoryUsage().heapUsed / 1024 / 1024;
}

interface Reply {
  status: number;
  body: string;
  cookie: string | undefined;
}

function call(agent: Agent, port: number, path: string, sid: string | undefined): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent, headers: sid === undefined ? {} : { cookie: `sid=${sid}` } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => {
        const set = res.headers['set-cookie']?.find((c) => c.startsWith('sid='));
        resolve({ status: res.statusCode ?? 0, body, cookie: set === undefined ? undefined : set.slice(4, set.indexOf(';')) });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

const dir = mkdtempSync(join(tmpdir(), 'bare-session-soak-'));
let clock = Date.now();
const now = (): number => clock;
const problems: string[] = [];
const storage = new FileStorage({ path: dir, now, maxInMemory: 2_000, onError: (e) => problems.push(`storage: ${e.message}`) });
const server = new Server({ sessionStorage: storage, sessionMaxAge: '1h', now, onError: (e) => problems.push(`request: ${String(e)}`) });
server.all('/set/:k/:v', (r) => {
  r.session.set(r.params['k'] as string, Number(r.params['v']));
  r.response.write('ok');
});
server.all('/get', (r) => r.response.write(r.session.data()));
server.all('/regen', async (r) => {
  await r.session.regenerate();
  r.response.write('ok');
});
server.all('/destroy', async (r) => {
  await r.session.destroy();
  r.response.write('ok');
});

const baseline = { heap: heapMb(), fds: fds() };
await server.start();
const port = server.port;
const agent = new Agent({ keepAlive: true, maxSockets: CLIENTS });
// The slowloris: headers that never end, one line every 5 s.
const loris = connect(port, '127.0.0.1');
const lorisStart = Date.now();
let lorisAnswer = '';
loris.on('data', (c: Buffer) => (lorisAnswer += c.toString()));
loris.on('error', () => undefined);
const lorisClosed = new Promise<number>((resolve) => loris.once('close', () => resolve(Date.now() - lorisStart)));
loris.write('GET /get HTTP/1.1\r\nHost: x\r\n');
const trickle = setInterval(() => loris.write(`x-slow-${Date.now()}: 1\r\n`), 5_000);
const delay = monitorEventLoopDelay({ resolution: 10 });
delay.enable();
const deadline = Date.now() + SECONDS * 1000;
const counts = { requests: 0, writes: 0, reads: 0, news: 0, regenerates: 0, destroys: 0 };

/** One client: its own session and a model of what it should hold. */
async function client(seed: number): Promise<{ sid: string | undefined; model: Record<string, number> }> {
  const rand = prng(seed);
  let sid: string | undefined;
  let model: Record<string, number> = {};
  let n = 0;
  while (Date.now() < deadline) {
    const p = rand();
    counts.requests++;
    if (p < 0.45) {
      const key = `k${Math.floor(rand() * 8)}`;
      const value = n++;
      const r = await call(agent, port, `/set/${key}/${value}`, sid);
      if (r.status !== 200) problems.push(`set answered ${r.status}`);
      if (sid === undefined) counts.news++;
      sid = r.cookie ?? sid;
      model[key] = value;
      counts.writes++;
    } else if (p < 0.9) {
      const r = await call(agent, port, '/get', sid);
      if (r.status !== 200) problems.push(`get answered ${r.status}`);
      if (r.body !== JSON.stringify(sortedLike(model, r.body))) problems.push(`read ${r.body}, expected ${JSON.stringify(model)}`);
      counts.reads++;
    } else if (p < 0.96) {
      const r = await call(agent, port, '/regen', sid);
      if (r.status !== 200) problems.push(`regen answered ${r.status}`);
      if (r.cookie === undefined || r.cookie === sid) problems.push('regenerate kept the id');
      sid = r.cookie;
      counts.regenerates++;
    } else {
      const r = await call(agent, port, '/destroy', sid);
      if (r.status !== 200) problems.push(`destroy answered ${r.status}`);
      sid = undefined;
      model = {};
      counts.destroys++;
    }
  }
  return { sid, model };
}

/** The model in the key order of the server's answer, so the two compare as strings. */
function sortedLike(model: Record<string, number>, body: string): Record<string, number> {
  let order: string[] = [];
  try {
    order = Object.keys(JSON.parse(body) as object);
  } catch {
    return model;
  }
  const out: Record<string, number> = {};
  for (const k of order) if (k in model) out[k] = model[k] as number;
  for (const k of Object.keys(model)) if (!(k in out)) out[k] = model[k] as number;
  return out;
}

/** A stored session's keys as its client sees them: the library's own (its creation time) left out. */
function userKeys(data: Record<string, unknown> | undefined): Record<string, unknown> {
  return Object.fromEntries(Object.entries(data ?? {}).filter(([k]) => !isMetaKey(k)));
}

const started = Date.now();
const finals = await Promise.all(Array.from({ length: CLIENTS }, (_, i) => client(1000 + i)));
delay.disable();
const stallMs = delay.max / 1e6;

// Every session's final state is what its client last wrote, read straight from storage.
for (const { sid, model } of finals) {
  if (sid === undefined) continue;
  const data = userKeys(await storage.get(sid));
  if (JSON.stringify(Object.entries(data).sort()) !== JSON.stringify(Object.entries(model).sort())) {
    problems.push(`final state ${JSON.stringify(data)}, expected ${JSON.stringify(model)}`);
  }
}
// And from disk: a fresh storage agrees, on a copy of the folder (one process owns a folder, and
// this one still holds it; the lock is not copied).
const copy = `${dir}-copy`;
cpSync(dir, copy, { recursive: true, filter: (src) => !basename(src).startsWith('.lock') });
const check = new FileStorage({ path: copy, now, onError: (e) => problems.push(`check: ${e.message}`) });
for (const { sid, model } of finals) {
  if (sid === undefined) continue;
  const data = userKeys(await check.get(sid));
  if (JSON.stringify(Object.entries(data).sort()) !== JSON.stringify(Object.entries(model).sort())) {
    problems.push(`on disk ${JSON.stringify(data)}, expected ${JSON.stringify(model)}`);
  }
}
await check.close();
rmSync(copy, { recursive: true, force: true });
const elapsed = (Date.now() - started) / 1000;
// Node cuts the slowloris at headersTimeout (60 s) on its next check (every 30 s).
const lorisMs = await Promise.race([lorisClosed, new Promise<number>((resolve) => setTimeout(() => resolve(-1), Math.max(0, 100_000 - (Date.now() - lorisStart))))]);
clearInterval(trickle);
loris.destroy();
if (lorisMs < 0) problems.push('the slowloris connection was not cut off within 100 s');

agent.destroy();
// Let every session expire, then sweep: files and memory go, and resources come back.
clock += 2 * 3_600_000;
await storage.get(generateId());
const swept = await storage.sweep();
const files = readdirSync(dir)
  .filter((shard) => /^[0-9a-f]{2}$/.test(shard))
  .flatMap((shard) => readdirSync(join(dir, shard)));
if (files.length > 0) problems.push(`${files.length} files left after the sweep`);
await server.close();
const after = { heap: heapMb(), fds: fds() };
rmSync(dir, { recursive: true, force: true });

const heapGrowth = after.heap - baseline.heap;
if (gc !== undefined && heapGrowth > 20) problems.push(`heap grew by ${heapGrowth.toFixed(1)} MB`);
if (baseline.fds >= 0 && after.fds > baseline.fds + 2) problems.push(`open file descriptors ${baseline.fds} → ${after.fds}`);
if (stallMs > 100) problems.push(`event loop stalled ${stallMs.toFixed(0)} ms`);

console.log(
  `soak: ${elapsed.toFixed(0)} s, ${CLIENTS} clients, ${counts.requests} requests (${(counts.requests / elapsed).toFixed(0)}/s): ` +
    `${counts.writes} writes, ${counts.reads} reads, ${counts.news} new sessions, ${counts.regenerates} regenerates, ${counts.destroys} destroys; ` +
    `slowloris cut after ${(lorisMs / 1000).toFixed(0)} s (${lorisAnswer.split('\r\n', 1)[0] || 'no answer'}); ` +
    `${swept} files swept; heap ${baseline.heap.toFixed(1)} → ${after.heap.toFixed(1)} MB; fds ${baseline.fds} → ${after.fds}; longest stall ${stallMs.toFixed(1)} ms`,
);
for (const p of problems.slice(0, 20)) console.log(`  ${p}`);
console.log(`${problems.length === 0 ? 1 : 0} passed, ${problems.length === 0 ? 0 : 1} failed`);
process.exitCode = problems.length === 0 ? 0 : 1;
