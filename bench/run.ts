/**
 * The benchmark: the seed program's routes (/set, /get, /del) on bare-session (MemoryStorage and
 * FileStorage), on the peers a user would pick instead (express-session, session-file-store,
 * @fastify/session), and on a floor (bare node:http with a Map), one after another in one run,
 * plus what the disk allows for temp-file-plus-rename writes.
 *
 *   cd bench && npm install && npm run bench          10 s per measurement
 *   npm run bench:quick                               3 s per measurement (smoke run)
 *   npm run bench -- --duration 20 --only floor,memory
 *   npm run bench -- --rounds 3                       the whole sequence 3 times, medians reported
 *   npm run bench -- --no-write …                     a diagnostic run: tables printed, RESULTS.md and results.svg left as they are
 *   npm run bench:wrk                                 the floor, MemoryStorage and FileStorage under wrk
 *                                                     (= --client wrk --only floor,memory,file --rounds 9 --duration 8)
 *
 * Each round starts every server (`node --import tsx …`, with PORT and a fresh TMPDIR), checks that
 * it answers right (a server that fails is reported, not timed), creates 2 000 sessions in each
 * and warms it up (reads; FileStorage then writes the renewals they made, its once-a-minute
 * batch, so that the batch's code too is compiled before it is timed); then times three
 * scenarios with autocannon (50 connections): read (/get with
 * one of the 2 000 cookies, rotating per request), write (/set, same cookies), new (/set without
 * a cookie). Within a scenario the servers take turns, one slice (`--slice`, 2 s) each, the order
 * reversed every other slice, until each has had its time: every server is measured over the same
 * stretch of time as the floor, so a swing of the machine's speed (tens of percent within a
 * minute on a shared VM) hits them alike. Only one server is loaded at a time; the others idle.
 * Every server runs under `--import tsx`, even the .mjs ones, so that RSS compares like with
 * like (the loader costs about 30 MB).
 *
 * Redis: bare-session's RedisStorage (servers/bare.ts), express-session + connect-redis
 * and @fastify/session + connect-redis run on one redis-server that the bench starts (on a free
 * port, in a temporary folder, no persistence; emptied before each server), with the same
 * scenarios, and also report the commands Redis ran per request (INFO commandstats before and
 * after each scenario) and redis-server's CPU time per request. Only them:
 *
 *   npm run bench:redis                               (= npm run bench -- --only floor-redis,redis,express-redis,fastify-redis --rounds 3)
 *
 * Writes bench/RESULTS.md (keeping the "Why" section written by hand and the "Scale" section
 * that scale.ts writes; the "Redis" section holds the Redis servers, and a run of only them
 * rewrites that section alone) and
 * bench/results.svg (without the Redis servers). Only 127.0.0.1 is ever contacted. Every child server is killed at the end,
 * whatever happens.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { open, rename } from 'node:fs/promises';
import { Agent, request as httpRequest } from 'node:http';
import { type AddressInfo, connect, createServer as createNetServer } from 'node:net';
import { execFileSync } from 'node:child_process';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { cutSection, putSection } from './sections.js';

// ---------------------------------------------------------------------------------------------
// Options

const { values: flags } = parseArgs({
  options: {
    duration: { type: 'string' },
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    connections: { type: 'string', default: '50' },
    rounds: { type: 'string', default: '1' },
    client: { type: 'string', default: 'autocannon' },
    slice: { type: 'string', default: '2' },
    'no-write': { type: 'boolean', default: false },
  },
});
const DURATION = flags.duration !== undefined ? Number(flags.duration) : flags.quick ? 3 : 10;
const CONNECTIONS = Number(flags.connections);
const ROUNDS = Number(flags.rounds);
/** The load generator: autocannon (in this process), or wrk (a C program; `apt-get install wrk`). */
const CLIENT = flags.client;
/** Seconds of one slice: a server's measurement is made of slices taken in turn with the other servers'. */
const SLICE = Number(flags.slice);
if (!(DURATION > 0) || !Number.isInteger(CONNECTIONS) || CONNECTIONS < 1 || !Number.isInteger(ROUNDS) || ROUNDS < 1 || !Number.isInteger(SLICE) || SLICE < 1 || (CLIENT !== 'autocannon' && CLIENT !== 'wrk')) {
  console.error('usage: run.ts [--quick] [--duration SECONDS] [--rounds N] [--connections N] [--only key,key] [--client autocannon|wrk] [--slice SECONDS] [--no-write]');
  process.exit(2);
}
const WARMUP = Math.min(2, Math.max(1, Math.round(DURATION / 5)));
const SESSIONS = 2_000;
const HOST = '127.0.0.1';

const BENCH = fileURLToPath(new URL('.', import.meta.url));
const ROOT = fileURLToPath(new URL('..', import.meta.url));

// ---------------------------------------------------------------------------------------------
// The servers and scenarios

interface ServerSpec {
  key: string;
  label: string;
  colour: string;
  cwd: string;
  script: string;
  env?: Record<string, string>;
  /** Needs the bench's redis-server (its URL in REDIS_URL); reported in the "Redis" section. */
  redis?: boolean;
  /**
   * A path the warm-up asks once after its reads, which must answer 200: FileStorage's `/flush`
   * writes the batch of renewals the warm-up made, so that the code of that once-a-minute batch
   * is compiled before the measurement, as the warm-up's reads compile the request's.
   */
  warmPath?: string;
}

const SERVERS: ServerSpec[] = [
  { key: 'floor', label: 'floor: node:http + Map', colour: '#7f7f7f', cwd: BENCH, script: 'servers/floor.mjs' },
  { key: 'memory', label: 'bare-session MemoryStorage', colour: '#1f77b4', cwd: BENCH, script: 'servers/bare.ts', env: { STORE: 'memory' } },
  { key: 'file', label: 'bare-session FileStorage', colour: '#2ca02c', cwd: BENCH, script: 'servers/bare.ts', env: { STORE: 'file' }, warmPath: '/flush' },
  { key: 'express', label: 'express-session MemoryStore', colour: '#ff7f0e', cwd: BENCH, script: 'servers/express.mjs' },
  { key: 'express-file', label: 'express-session + session-file-store', colour: '#d62728', cwd: BENCH, script: 'servers/express.mjs', env: { STORE: 'file' } },
  { key: 'fastify', label: '@fastify/session', colour: '#9467bd', cwd: BENCH, script: 'servers/fastify.mjs' },
  { key: 'floor-redis', label: 'floor on Redis: node:http + GET/SET', colour: '#bcbd22', cwd: BENCH, script: 'servers/floor-redis.mjs', redis: true },
  { key: 'redis', label: 'bare-session RedisStorage', colour: '#17becf', cwd: BENCH, script: 'servers/bare.ts', env: { STORE: 'redis' }, redis: true },
  { key: 'express-redis', label: 'express-session + connect-redis', colour: '#8c564b', cwd: BENCH, script: 'servers/express.mjs', env: { STORE: 'redis' }, redis: true },
  { key: 'fastify-redis', label: '@fastify/session + connect-redis', colour: '#e377c2', cwd: BENCH, script: 'servers/fastify.mjs', env: { STORE: 'redis' }, redis: true },
];

type ScenarioKey = 'read' | 'write' | 'new';
const SCENARIOS: { key: ScenarioKey; path: string; withCookie: boolean; what: string }[] = [
  { key: 'read', path: '/get', withCookie: true, what: `/get with one of ${SESSIONS} sessions` },
  { key: 'write', path: '/set', withCookie: true, what: `/set with one of ${SESSIONS} sessions` },
  { key: 'new', path: '/set', withCookie: false, what: '/set without a cookie' },
];

interface Measurement {
  rps: number;
  p99: number;
  rssMb: number;
  /** CPU time of the server process (all its threads) per request, in microseconds. */
  cpuUs: number;
  /** CPU use of the server and of the load generator (this process), in % of one core. */
  serverCpu: number;
  clientCpu: number;
  total: number;
  problems: string[];
  /** For a Redis server: commands the server sent Redis per request, by name (MONITOR, over a sample). */
  roundTrips?: Record<string, number>;
  /** For a Redis server: commands Redis ran per request, scripts' own included, by name (INFO commandstats). */
  redisCalls?: Record<string, number>;
  /** For a Redis server: redis-server's CPU time per request, in microseconds. */
  redisCpuUs?: number;
}

interface ServerResult {
  spec: ServerSpec;
  failed?: string;
  scenarios: Partial<Record<ScenarioKey, Measurement>>;
}

// ---------------------------------------------------------------------------------------------
// autocannon (CommonJS, without types: the little we use, typed here)

interface CannonRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
}
interface CannonOptions {
  url: string;
  connections: number;
  duration: number;
  /** A number of requests instead of a duration. */
  amount?: number;
  requests: { method: string; path: string; setupRequest?: (req: CannonRequest) => CannonRequest }[];
}
interface CannonResult {
  requests: { average: number; total: number };
  latency: { p50: number; p99: number };
  errors: number;
  timeouts: number;
  non2xx: number;
}
const autocannon = createRequire(import.meta.url)('autocannon') as (options: CannonOptions) => Promise<CannonResult>;

// ---------------------------------------------------------------------------------------------
// Children and temporary folders: whatever happens, nothing is left behind

const children = new Set<ChildProcess>();
const tempDirs = new Set<string>();

function cleanupSync(): void {
  for (const child of children) child.kill('SIGKILL');
  children.clear();
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}
process.on('exit', cleanupSync);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => {
    console.error(`\n${signal}: stopping the servers`);
    cleanupSync();
    process.exit(130);
  });
}

function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

/** A free TCP port on 127.0.0.1. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createNetServer();
    srv.once('error', reject);
    srv.listen(0, HOST, () => {
      const { port } = srv.address() as AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

interface Running {
  child: ChildProcess;
  port: number;
  dir: string;
  output: () => string;
}

/**
 * The bench's own tsx, by its full URL: the examples run from the repository root, which may
 * have no node_modules of its own (a fresh clone where only bench/ was installed).
 */
const TSX = import.meta.resolve('tsx');

async function startServer(spec: ServerSpec): Promise<Running> {
  const port = await freePort();
  const dir = tempDir(`bs-bench-${spec.key}-`);
  const child = spawn(process.execPath, ['--import', TSX, spec.script], {
    cwd: spec.cwd,
    env: { ...process.env, ...spec.env, ...(spec.redis === true ? { REDIS_URL: redisServer?.url ?? '' } : {}), PORT: String(port), TMPDIR: dir, NODE_ENV: 'production' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  // Drain the pipes (a full pipe would block the server); keep the tail for error messages.
  let tail = '';
  const keep = (chunk: Buffer): void => {
    tail = (tail + chunk.toString()).slice(-2000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const running: Running = { child, port, dir, output: () => tail.trim() };
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`exited (${child.exitCode ?? child.signalCode}) before listening: ${running.output()}`);
    }
    if (await canConnect(port)) return running;
    if (Date.now() > deadline) throw new Error(`not listening after 30 s: ${running.output()}`);
    await sleep(100);
  }
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, HOST);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** SIGTERM (bare-session then closes its storage), SIGKILL after 10 s; removes its TMPDIR. */
async function stopServer(running: Running): Promise<void> {
  const { child } = running;
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
  children.delete(child);
  removeTempDir(running.dir);
}

function rssMb(pid: number | undefined): number {
  try {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m === null ? NaN : Number(m[1]) / 1024;
  } catch {
    return NaN;
  }
}

const CLK_TCK = ((): number => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** CPU time (user + system, all threads) of a process so far, in microseconds, from /proc. */
function cpuTimeUs(pid: number | undefined): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) / CLK_TCK) * 1e6;
  } catch {
    return NaN;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------------------------
// The redis-server of the Redis servers: one for the whole run, emptied before each server

interface RedisProcess {
  child: ChildProcess;
  port: number;
  url: string;
}

let redisServer: RedisProcess | undefined;

/** Starts redis-server on a free port in a temporary folder, without persistence. */
async function startRedis(): Promise<RedisProcess> {
  const port = await freePort();
  const dir = tempDir('bs-bench-redis-');
  const child = spawn('redis-server', ['--port', String(port), '--bind', HOST, '--dir', dir, '--save', '', '--appendonly', 'no', '--logfile', ''], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  child.once('exit', () => children.delete(child));
  let log = '';
  await new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      log = (log + chunk.toString()).slice(-4000);
      if (/Ready to accept connections/.test(log)) resolve();
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('error', (err) => reject(new Error(`redis-server could not start (${err.message}); install it: apt-get install -y redis-server`)));
    child.once('exit', (code) => reject(new Error(`redis-server exited (${code}) before it was ready: ${log}`)));
  });
  return { child, port, url: `redis://${HOST}:${port}` };
}

function redisCli(...args: string[]): string {
  return execFileSync('redis-cli', ['-h', HOST, '-p', String(redisServer?.port), ...args], { encoding: 'utf8' });
}

/**
 * The commands that clients sent Redis (scripts' own calls left out) per request, over `amount`
 * requests of a scenario: MONITOR on a socket of its own, then a marker (an ECHO from redis-cli)
 * that says every command before it has been seen. Taken after the timed run, so that MONITOR's
 * own cost is not in the figures.
 */
async function sampleRoundTrips(port: number, path: string, cookies: readonly string[] | undefined, amount: number): Promise<Record<string, number>> {
  const marker = `bench-marker-${process.pid}-${Date.now()}`;
  const socket = connect(redisServer?.port as number, HOST);
  const counts = new Map<string, number>();
  let buffer = '';
  let onLine: (line: string) => void = () => undefined;
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    buffer += chunk;
    let nl: number;
    while ((nl = buffer.indexOf('\r\n')) !== -1) {
      onLine(buffer.slice(0, nl));
      buffer = buffer.slice(nl + 2);
    }
  });
  try {
    await new Promise<void>((resolve, reject) => {
      onLine = (line) => (line === '+OK' ? resolve() : reject(new Error(`MONITOR answered ${line}`)));
      socket.once('error', reject);
      socket.write('MONITOR\r\n');
    });
    let seenMarker!: () => void;
    const done = new Promise<void>((resolve) => (seenMarker = resolve));
    onLine = (line) => {
      const m = /^\+[\d.]+ \[\d+ ([^\]]+)\] "([^"]*)"/.exec(line);
      if (m === null || m[1] === 'lua') return;
      const name = (m[2] as string).toUpperCase();
      if (name === 'ECHO' && line.includes(marker)) seenMarker();
      else counts.set(name, (counts.get(name) ?? 0) + 1);
    };
    const r = await load(port, path, cookies, DURATION, amount);
    redisCli('ECHO', marker);
    await done;
    const perRequest: Record<string, number> = {};
    for (const [name, n] of counts) perRequest[name] = n / Math.max(1, r.requests.total);
    return perRequest;
  } finally {
    socket.destroy();
  }
}

/** Calls so far of each command, from INFO commandstats (INFO itself left out). */
function commandCalls(): Map<string, number> {
  const calls = new Map<string, number>();
  for (const m of redisCli('INFO', 'commandstats').matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
    if (m[1] !== 'info') calls.set((m[1] as string).toUpperCase(), Number(m[2]));
  }
  return calls;
}

// ---------------------------------------------------------------------------------------------
// One request, for the checks and for creating sessions

interface Reply {
  status: number;
  body: string;
  contentType: string;
  /** `name=value` of the first Set-Cookie, if any. */
  cookie: string | undefined;
}

const agent = new Agent({ keepAlive: true, maxSockets: CONNECTIONS });

function send(port: number, path: string, cookie?: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: HOST, port, path, agent, headers: cookie === undefined ? {} : { cookie } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => {
        const set = res.headers['set-cookie']?.[0];
        resolve({
          status: res.statusCode ?? 0,
          body,
          contentType: String(res.headers['content-type'] ?? ''),
          cookie: set === undefined ? undefined : (set.split(';', 1)[0] as string),
        });
      });
      res.on('error', reject);
    });
    req.setTimeout(10_000, () => req.destroy(new Error(`GET ${path} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

/** Checks the seed's semantics; returns what is wrong, or undefined. */
async function check(port: number): Promise<string | undefined> {
  const now = Math.floor(Date.now() / 1000);
  const anon = await send(port, '/get');
  if (anon.status !== 200 || anon.body !== '{}') return `/get without a cookie answered ${anon.status} ${JSON.stringify(anon.body)}, expected {}`;
  if (anon.cookie !== undefined) return '/get without a cookie issued a cookie (a read must create no session)';
  const set = await send(port, '/set');
  if (set.status !== 200 || set.body !== 'ok') return `/set answered ${set.status} ${JSON.stringify(set.body)}, expected ok`;
  let jar = set.cookie;
  if (jar === undefined) return '/set issued no cookie';
  const get = await send(port, '/get', jar);
  jar = get.cookie ?? jar;
  const m = /^\{"time":(\d+),"n":\d+\}$/.exec(get.body);
  if (get.status !== 200 || m === null) return `/get with the cookie answered ${get.status} ${JSON.stringify(get.body)}, expected {"time":N,"n":W}`;
  if (Math.abs(Number(m[1]) - now) > 5) return `/get answered time ${m[1]}, not about ${now}`;
  if (!get.contentType.startsWith('application/json')) return `/get answered Content-Type ${JSON.stringify(get.contentType)}`;
  const del = await send(port, '/del', jar);
  jar = del.cookie ?? jar;
  if (del.status !== 200 || del.body !== 'ok') return `/del answered ${del.status} ${JSON.stringify(del.body)}, expected ok`;
  const after = await send(port, '/get', jar);
  if (after.status !== 200 || after.body !== '{}') return `/get after /del answered ${after.status} ${JSON.stringify(after.body)}, expected {}`;
  return undefined;
}

/** Creates `count` sessions with /set (no cookie), CONNECTIONS at a time; their cookies. */
async function createSessions(port: number, count: number): Promise<string[]> {
  const cookies: string[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      next++;
      const r = await send(port, '/set');
      if (r.status !== 200 || r.cookie === undefined) throw new Error(`/set answered ${r.status} without a cookie while creating sessions`);
      cookies.push(r.cookie);
    }
  };
  await Promise.all(Array.from({ length: CONNECTIONS }, worker));
  if (new Set(cookies).size !== count) throw new Error('two sessions got the same cookie');
  return cookies;
}

/** After a scenario: do some of the 2 000 sessions still read back as {"time":N,"n":W}? */
async function spotCheck(port: number, cookies: readonly string[]): Promise<string | undefined> {
  let bad = 0;
  const sample = 20;
  for (let i = 0; i < sample; i++) {
    const r = await send(port, '/get', cookies[Math.floor((i * cookies.length) / sample)]);
    if (r.status !== 200 || !/^\{"time":\d+,"n":\d+\}$/.test(r.body)) bad++;
  }
  return bad === 0 ? undefined : `${bad} of ${sample} sessions no longer read back afterwards`;
}

// ---------------------------------------------------------------------------------------------
// Load

/** A load run's result: autocannon's, and the load generator's CPU time when it ran in a process of its own. */
type LoadResult = CannonResult & { clientUs?: number };

async function load(port: number, path: string, cookies: readonly string[] | undefined, seconds: number, amount?: number): Promise<LoadResult> {
  // wrk runs for a time only: a fixed number of requests (the round-trip sample) is autocannon's.
  if (CLIENT === 'wrk' && amount === undefined) return wrk(port, path, cookies, seconds);
  let i = 0;
  const setupRequest =
    cookies === undefined
      ? undefined
      : (req: CannonRequest): CannonRequest => {
          req.headers['cookie'] = cookies[i++ % cookies.length] as string;
          return req;
        };
  return autocannon({
    url: `http://${HOST}:${port}`,
    connections: CONNECTIONS,
    duration: seconds,
    ...(amount === undefined ? {} : { amount }),
    requests: [setupRequest === undefined ? { method: 'GET', path } : { method: 'GET', path, setupRequest }],
  });
}

/** Where wrk's cookie file goes (made on first use, removed at exit). */
let wrkDir: string | undefined;

/**
 * One run of wrk (one thread, which keeps up with any of these servers on its own core), the
 * cookies rotating per request through wrk-cookies.lua. It runs under a shell that prints, once
 * wrk has exited, its own /proc stat: the CPU time of the children it waited for, wrk's.
 */
async function wrk(port: number, path: string, cookies: readonly string[] | undefined, seconds: number): Promise<LoadResult> {
  let cookieFile = '';
  if (cookies !== undefined) {
    cookieFile = join((wrkDir ??= tempDir('bs-bench-wrk-')), 'cookies.txt');
    writeFileSync(cookieFile, `${cookies.join('\n')}\n`);
  }
  const args = ['-t1', `-c${CONNECTIONS}`, `-d${seconds}s`, '--latency', '-s', join(BENCH, 'wrk-cookies.lua'), `http://${HOST}:${port}${path}`];
  const out = await new Promise<string>((resolve, reject) => {
    const child = spawn('sh', ['-c', 'wrk "$@" && cat /proc/$$/stat', 'sh', ...args], { env: { ...process.env, BENCH_COOKIES: cookieFile }, stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    child.stdout.on('data', (c: Buffer) => (text += c.toString()));
    child.stderr.on('data', (c: Buffer) => (text += c.toString()));
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve(text) : reject(new Error(`wrk failed (${code}): ${text.trim().slice(-500)}`))));
  });
  const num = (re: RegExp): number => Number(re.exec(out)?.[1] ?? NaN);
  const ms = (re: RegExp): number => {
    const m = re.exec(out);
    return m === null ? NaN : Number(m[1]) * ({ us: 0.001, ms: 1, s: 1000 }[m[2] as 'us' | 'ms' | 's'] ?? NaN);
  };
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const stat = out.trimEnd().split('\n').at(-1) ?? '';
  // Fields after the command name: state is field 3; cutime and cstime are fields 16 and 17.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return {
    requests: { average: num(/Requests\/sec:\s+([\d.]+)/), total: num(/(\d+) requests in/) },
    latency: { p50: ms(/^\s+50%\s+([\d.]+)(us|ms|s)/m), p99: ms(/^\s+99%\s+([\d.]+)(us|ms|s)/m) },
    errors: socket === null ? 0 : Number(socket[1]) + Number(socket[2]) + Number(socket[3]),
    timeouts: socket === null ? 0 : Number(socket[4]),
    non2xx: num(/Non-2xx or 3xx responses: (\d+)/) || 0,
    clientUs: ((Number(fields[13]) + Number(fields[14])) / CLK_TCK) * 1e6,
  };
}

/** A server of a round: started, checked, with its sessions made and warmed up; or failed. */
interface Prepared {
  spec: ServerSpec;
  result: ServerResult;
  running?: Running;
  cookies: string[];
}

/** Starts a server, checks its answers, makes its sessions and warms it up; a failure is kept in its result. */
async function prepareServer(spec: ServerSpec): Promise<Prepared> {
  const prepared: Prepared = { spec, result: { spec, scenarios: {} }, cookies: [] };
  try {
    prepared.running = await startServer(spec);
    const wrong = await check(prepared.running.port);
    if (wrong !== undefined) {
      prepared.result.failed = `check failed: ${wrong}`;
      return prepared;
    }
    prepared.cookies = await createSessions(prepared.running.port, SESSIONS);
    await load(prepared.running.port, '/get', prepared.cookies, WARMUP);
    if (spec.warmPath !== undefined) {
      const warm = await send(prepared.running.port, spec.warmPath);
      if (warm.status !== 200) prepared.result.failed = `the warm-up's ${spec.warmPath} answered ${warm.status} ${JSON.stringify(warm.body)}`;
    }
  } catch (err) {
    prepared.result.failed = `${(err as Error).message}`;
  }
  return prepared;
}

function isAlive(p: Prepared): p is Prepared & { running: Running } {
  const child = p.running?.child;
  return p.result.failed === undefined && child !== undefined && child.exitCode === null && child.signalCode === null;
}

/**
 * Waits until none of the servers uses the CPU any more (at most one clock tick, 10 ms, over
 * 200 ms; at most 10 s): what one server still does after its slice (FileStorage's writes behind, a GC) must not
 * run during another's slice.
 */
async function quiet(list: readonly Prepared[]): Promise<void> {
  const total = (): number => list.reduce((sum, p) => sum + (isAlive(p) ? cpuTimeUs(p.running.child.pid) : 0), 0);
  const deadline = performance.now() + 10_000;
  let last = total();
  while (performance.now() < deadline) {
    await sleep(200);
    const now = total();
    if (now - last <= 1e6 / CLK_TCK) return;
    last = now;
  }
}

/** What a server's slices of one scenario add up to. */
interface Tally {
  cpu0: number;
  requests: number;
  wallUs: number;
  clientUs: number;
  errors: number;
  timeouts: number;
  non2xx: number;
  rps: number[];
  p99: number[];
  redisUs: number;
  redisCalls?: Map<string, number>;
}

/**
 * One scenario for every live server of the round, in slices of SLICE seconds taken in turn
 * (one server's slice, then the next's, the order reversed every other slice), so that each
 * server is measured in the same minute as the floor: the machine's swings, which reach tens of
 * percent within a minute on a shared VM, then hit the floor and the servers alike. A server's
 * CPU time is read before its first slice and after the last (a background flush between its
 * slices is its own cost); its requests are those of its slices.
 */
async function measureScenario(list: Prepared[], sc: (typeof SCENARIOS)[number], round: number): Promise<void> {
  const live = list.filter(isAlive);
  const slices = Math.max(1, Math.round(DURATION / SLICE));
  const seconds = DURATION < SLICE ? DURATION : SLICE;
  const tallies = new Map<Prepared, Tally>();
  for (const p of live) {
    tallies.set(p, { cpu0: cpuTimeUs(p.running.child.pid), requests: 0, wallUs: 0, clientUs: 0, errors: 0, timeouts: 0, non2xx: 0, rps: [], p99: [], redisUs: 0, ...(p.spec.redis === true ? { redisCalls: new Map<string, number>() } : {}) });
  }
  for (let s = 0; s < slices; s++) {
    for (const p of (s + round) % 2 === 1 ? live : [...live].reverse()) {
      const t = tallies.get(p) as Tally;
      if (!isAlive(p)) continue;
      await quiet(live);
      const calls0 = t.redisCalls === undefined ? undefined : commandCalls();
      const redisCpu0 = cpuTimeUs(redisServer?.child.pid);
      const client0 = process.cpuUsage();
      const t0 = performance.now();
      const r = await load(p.running.port, sc.path, sc.withCookie ? p.cookies : undefined, seconds);
      t.wallUs += (performance.now() - t0) * 1000;
      const client = process.cpuUsage(client0);
      t.clientUs += r.clientUs ?? client.user + client.system;
      t.redisUs += cpuTimeUs(redisServer?.child.pid) - redisCpu0;
      if (calls0 !== undefined) {
        for (const [name, n] of commandCalls()) t.redisCalls?.set(name, (t.redisCalls.get(name) ?? 0) + n - (calls0.get(name) ?? 0));
      }
      t.requests += r.requests.total;
      t.errors += r.errors;
      t.timeouts += r.timeouts;
      t.non2xx += r.non2xx;
      t.rps.push(r.requests.average);
      t.p99.push(r.latency.p99);
    }
  }
  for (const p of live) {
    const t = tallies.get(p) as Tally;
    const running = p.running;
    const pid = running.child.pid;
    const serverUs = cpuTimeUs(pid) - t.cpu0;
    const rss = rssMb(pid);
    const per = (x: number): number => x / Math.max(1, t.requests);
    const problems: string[] = [];
    if (t.errors > 0) problems.push(`${t.errors} errors`);
    if (t.timeouts > 0) problems.push(`${t.timeouts} timeouts`);
    if (t.non2xx > 0) problems.push(`${t.non2xx} non-2xx`);
    let roundTrips: Record<string, number> | undefined;
    if (!isAlive(p)) {
      problems.push(`server died: ${running.output()}`);
    } else {
      if (p.spec.redis === true) roundTrips = await sampleRoundTrips(running.port, sc.path, sc.withCookie ? p.cookies : undefined, SESSIONS);
      if (sc.withCookie) {
        const lost = await spotCheck(running.port, p.cookies);
        if (lost !== undefined) problems.push(lost);
      }
    }
    let redisCalls: Record<string, number> | undefined;
    if (t.redisCalls !== undefined) {
      redisCalls = {};
      for (const [name, n] of t.redisCalls) if (n > 0) redisCalls[name] = per(n);
    }
    const m: Measurement = {
      // The load generator's own req/s, the median of the slices (the wall time above includes starting wrk).
      rps: median(t.rps),
      p99: median(t.p99),
      rssMb: rss,
      cpuUs: per(serverUs),
      serverCpu: (100 * serverUs) / t.wallUs,
      clientCpu: (100 * t.clientUs) / t.wallUs,
      total: t.requests,
      problems,
      ...(redisCalls === undefined ? {} : { redisCalls, redisCpuUs: per(t.redisUs) }),
      ...(roundTrips === undefined ? {} : { roundTrips }),
    };
    p.result.scenarios[sc.key] = m;
    console.log(
      `  ${sc.key.padEnd(5)} ${p.spec.key.padEnd(14)} ${fmtInt(m.rps).padStart(8)} req/s  p99 ${fmtMs(m.p99).padStart(6)} ms  ${m.cpuUs.toFixed(1).padStart(6)} µs CPU/req  CPU server ${m.serverCpu.toFixed(0)}% client ${m.clientCpu.toFixed(0)}%  RSS ${rss.toFixed(0)} MB${m.redisCalls === undefined ? '' : `\n        round trips/req ${fmtCalls(m.roundTrips)}; commands Redis ran/req ${fmtCalls(m.redisCalls)}; Redis CPU ${(m.redisCpuUs ?? NaN).toFixed(0)} µs/req`}${problems.length > 0 ? `  (${problems.join('; ')})` : ''}`,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// What the disk allows: 50 async writers, temp file (open wx 0600, write, close) + rename

interface DiskResult {
  rate: number;
  writes: number;
  bytes: number;
  /** CPU time of this process per write (the thread pool's included), and the kernel's share. */
  cpuUs: number;
  systemShare: number;
}

async function diskRate(seconds: number): Promise<DiskResult> {
  const dir = tempDir('bs-bench-disk-');
  // The layout of FileStorage: 2 000 targets spread over shard folders named by 2 hex digits.
  const targets = Array.from({ length: SESSIONS }, (_, i) => {
    const shard = (i % 256).toString(16).padStart(2, '0');
    return join(dir, shard, `target-${i}`);
  });
  for (let s = 0; s < 256; s++) mkdirSync(join(dir, s.toString(16).padStart(2, '0')), { mode: 0o700 });
  // ~100 bytes: a 21-byte header and a session of about 80 bytes of JSON.
  const content = `BS1 0001763778060000\n${JSON.stringify({ time: 1763778000, user: 'someone@example.com', pad: 'x'.repeat(22) })}`;
  let stop = false;
  let writes = 0;
  let seq = 0;
  const writer = async (): Promise<void> => {
    while (!stop) {
      const target = targets[Math.floor(Math.random() * targets.length)] as string;
      const tmp = `${target}.${seq++}.tmp`;
      const fh = await open(tmp, 'wx', 0o600);
      try {
        await fh.writeFile(content);
      } finally {
        await fh.close();
      }
      await rename(tmp, target);
      writes++;
    }
  };
  const cpu0 = process.cpuUsage();
  const started = performance.now();
  const timer = setTimeout(() => (stop = true), seconds * 1000);
  await Promise.all(Array.from({ length: CONNECTIONS }, writer));
  clearTimeout(timer);
  const elapsed = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpu0);
  removeTempDir(dir);
  return { rate: writes / elapsed, writes, bytes: Buffer.byteLength(content), cpuUs: (cpu.user + cpu.system) / Math.max(1, writes), systemShare: cpu.system / Math.max(1, cpu.user + cpu.system) };
}

// ---------------------------------------------------------------------------------------------
// Formatting

function fmtInt(n: number): string {
  return Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '–';
}
function fmtMs(n: number): string {
  return Number.isFinite(n) ? (n >= 100 ? n.toFixed(0) : n.toFixed(1)) : '–';
}
function fmtRatio(n: number | undefined): string {
  if (n === undefined || !Number.isFinite(n)) return '–';
  return `${n >= 10 ? n.toFixed(1) : n.toFixed(2)}×`;
}
/**
 * A ratio beside the bound it is held to: as {@link fmtRatio}, with more decimals (up to six)
 * while fewer would round it onto the other side of the bound (a miss of 1.4004 is shown as
 * 1.4004×, not as "1.40× ≤ 1.4×: no").
 */
function fmtAgainst(n: number, bound: number): string {
  if (!Number.isFinite(n) || n >= 10) return fmtRatio(n);
  let digits = 2;
  while (digits < 6 && Number(n.toFixed(digits)) <= bound !== n <= bound) digits++;
  return `${n.toFixed(digits)}×`;
}
/** Commands per request: the total, then each command (`2.00 (GET 1.00, EXPIRE 1.00)`). */
function fmtCalls(calls: Record<string, number> | undefined): string {
  if (calls === undefined) return '–';
  const entries = Object.entries(calls).filter(([, n]) => n >= 0.005).sort((a, b) => b[1] - a[1]);
  const total = Object.values(calls).reduce((a, b) => a + b, 0);
  return `${total.toFixed(2)}${entries.length > 0 ? ` (${entries.map(([k, n]) => `${k} ${n.toFixed(2)}`).join(', ')})` : ''}`;
}

function fmtShort(n: number): string {
  if (n >= 10_000) return `${(n / 1000).toFixed(1)}k`;
  if (n >= 1_000) return `${(n / 1000).toFixed(2)}k`;
  return n.toFixed(0);
}
function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

type Row = string[];

function resultRows(results: ServerResult[], rounds: Rounds): Row[] {
  const rows: Row[] = [];
  for (const sc of SCENARIOS) {
    // Each ratio to the floor: within each round (the two measured in turns), the median over the rounds.
    const toFloor = (key: string, f: (m: Measurement) => number): string | undefined => (rounds.has('floor') ? fmtRatio(roundRatio(rounds, key, 'floor', sc.key, f)) : undefined);
    for (const r of results) {
      const m = r.scenarios[sc.key];
      if (m === undefined) {
        rows.push([sc.key, r.spec.label, '–', '', '–', '', '–', '', '–', '–', '', (r.failed ?? 'not measured').replace(/\s+/g, ' ').slice(0, 300)]);
        continue;
      }
      rows.push([
        sc.key,
        r.spec.label,
        fmtInt(m.rps),
        toFloor(r.spec.key, (x) => x.rps) ?? '–',
        fmtMs(m.p99),
        toFloor(r.spec.key, (x) => x.p99) ?? '–',
        m.cpuUs.toFixed(0),
        toFloor(r.spec.key, (x) => x.cpuUs) ?? '–',
        `${m.serverCpu.toFixed(0)} / ${m.clientCpu.toFixed(0)}`,
        m.rssMb.toFixed(0),
        toFloor(r.spec.key, (x) => x.rssMb) ?? '–',
        m.problems.join('; '),
      ]);
    }
  }
  return rows;
}

const HEADER: Row = ['scenario', 'server', 'req/s', '×floor', 'p99 ms', '×floor', 'CPU µs/req', '×floor', 'CPU % srv/load', 'RSS MB', '×floor', 'notes'];
const NUMERIC = new Set([2, 3, 4, 5, 6, 7, 8, 9, 10]);

function textTable(header: Row, rows: Row[], right: Set<number> = NUMERIC): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: Row): string =>
    r
      .map((c, i) => (right.has(i) ? c.padStart(widths[i] as number) : c.padEnd(widths[i] as number)))
      .join('  ')
      .trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

function mdTable(header: Row, rows: Row[], right: Set<number> = NUMERIC): string {
  const esc = (c: string): string => c.replace(/\|/g, '\\|');
  return [
    `| ${header.map(esc).join(' | ')} |`,
    `|${header.map((_, i) => (right.has(i) ? '---:' : '---')).join('|')}|`,
    ...rows.map((r) => `| ${r.map(esc).join(' | ')} |`),
  ].join('\n');
}

/**
 * The team's targets, with what this run measured: the ratio of requests per second, and the
 * ratio of CPU time per request (the other's over this one's), which is what the req/s ratio
 * would be if both were bound by the server's CPU rather than by the load generator.
 */
const TARGET_HEADER: Row = ['target', 'req/s ratio', 'by CPU/req', 'required', 'met (req/s, CPU)'];

function targetRows(results: ServerResult[], rounds: Rounds, disk: DiskResult): Row[] {
  const rows: Row[] = [];
  const fmt = (x: number | undefined): string => (x === undefined ? '–' : `${x >= 10 ? x.toFixed(1) : x.toFixed(3)}×`);
  const ratio = (a: number | undefined, b: number | undefined): number | undefined => (a === undefined || b === undefined || !Number.isFinite(a / b) ? undefined : a / b);
  const yes = (x: number | undefined, min: number): string => (x === undefined ? '–' : x >= min ? 'yes' : 'no');
  const push = (what: string, byRps: number | undefined, byCpu: number | undefined, min: number): void => {
    rows.push([what, fmt(byRps), fmt(byCpu), `≥ ${min}×`, byRps === undefined && byCpu === undefined ? 'not measured' : `${yes(byRps, min)}, ${yes(byCpu, min)}`]);
  };
  // Against another server: the ratios of the same round (the two measured in turns), the median over the rounds.
  const add = (what: string, key: string, other: string, sc: ScenarioKey, min: number): void =>
    push(what, roundRatio(rounds, key, other, sc, (m) => m.rps), roundRatio(rounds, other, key, sc, (m) => m.cpuUs), min);
  for (const sc of ['read', 'write'] as const) {
    add(`MemoryStorage ${sc} / floor`, 'memory', 'floor', sc, 0.75);
    add(`MemoryStorage ${sc} / @fastify/session`, 'memory', 'fastify', sc, 3);
    add(`MemoryStorage ${sc} / express-session`, 'memory', 'express', sc, 10);
  }
  add('FileStorage read / floor', 'file', 'floor', 'read', 0.7);
  add('FileStorage read / session-file-store', 'file', 'express-file', 'read', 30);
  add('FileStorage write / session-file-store', 'file', 'express-file', 'write', 2.5);
  const fileWrite = results.find((r) => r.spec.key === 'file')?.scenarios.write;
  push('FileStorage write / disk temp+rename rate', ratio(fileWrite?.rps, Number.isFinite(disk.rate) ? disk.rate : undefined), ratio(disk.cpuUs, fileWrite?.cpuUs), 0.8);
  add('FileStorage new / session-file-store', 'file', 'express-file', 'new', 2.5);
  return rows;
}

// ---------------------------------------------------------------------------------------------
// The chart: grouped bars per scenario, one colour per server, values on the bars

function svgChart(results: ServerResult[], measuredDisk: number, subtitle: string): string {
  const disk = Number.isFinite(measuredDisk) ? measuredDisk : 0;
  const W = 960;
  const H = 540;
  const left = 70;
  const right = 20;
  const top = 60;
  const bottom = 150;
  const plotW = W - left - right;
  const plotH = H - top - bottom;
  const values = results.flatMap((r) => Object.values(r.scenarios).map((m) => m.rps));
  const rawMax = Math.max(1, disk, ...values.filter(Number.isFinite));
  const magnitude = 10 ** Math.floor(Math.log10(rawMax));
  const step = [1, 2, 2.5, 5, 10].map((f) => f * magnitude).find((s) => rawMax / s <= 6) ?? magnitude * 10;
  const max = Math.ceil(rawMax / step) * step;
  const y = (v: number): number => top + plotH - (v / max) * plotH;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif">`);
  out.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`);
  out.push(`<text x="${W / 2}" y="24" text-anchor="middle" font-size="18" font-weight="bold">Requests per second (higher is better)</text>`);
  out.push(`<text x="${W / 2}" y="44" text-anchor="middle" font-size="12" fill="#555">${escapeXml(subtitle)}</text>`);
  for (let v = 0; v <= max + step / 2; v += step) {
    out.push(`<line x1="${left}" x2="${W - right}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#e0e0e0"/>`);
    out.push(`<text x="${left - 8}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end" font-size="11" fill="#555">${fmtShort(v)}</text>`);
  }
  out.push(`<line x1="${left}" x2="${left}" y1="${top}" y2="${top + plotH}" stroke="#333"/>`);
  out.push(`<line x1="${left}" x2="${W - right}" y1="${top + plotH}" y2="${top + plotH}" stroke="#333"/>`);
  const groupW = plotW / SCENARIOS.length;
  const barW = Math.min(48, (groupW * 0.8) / results.length);
  SCENARIOS.forEach((sc, g) => {
    const x0 = left + g * groupW + (groupW - barW * results.length) / 2;
    results.forEach((r, i) => {
      const x = x0 + i * barW;
      const m = r.scenarios[sc.key];
      if (m === undefined || !Number.isFinite(m.rps)) {
        out.push(`<text x="${(x + barW / 2).toFixed(1)}" y="${top + plotH - 6}" text-anchor="middle" font-size="10" fill="#b00" transform="rotate(-90 ${(x + barW / 2).toFixed(1)} ${top + plotH - 6})">${r.failed !== undefined ? 'failed' : 'n/a'}</text>`);
        return;
      }
      const h = Math.max(1, top + plotH - y(m.rps));
      out.push(`<rect x="${(x + 2).toFixed(1)}" y="${(top + plotH - h).toFixed(1)}" width="${(barW - 4).toFixed(1)}" height="${h.toFixed(1)}" fill="${r.spec.colour}"><title>${escapeXml(`${r.spec.label}, ${sc.key}: ${fmtInt(m.rps)} req/s, p99 ${fmtMs(m.p99)} ms, RSS ${m.rssMb.toFixed(0)} MB`)}</title></rect>`);
      out.push(`<text x="${(x + barW / 2).toFixed(1)}" y="${(top + plotH - h - 4).toFixed(1)}" text-anchor="middle" font-size="10" fill="#222">${fmtShort(m.rps)}</text>`);
    });
    out.push(`<text x="${(left + g * groupW + groupW / 2).toFixed(1)}" y="${top + plotH + 20}" text-anchor="middle" font-size="14" font-weight="bold">${sc.key}</text>`);
    out.push(`<text x="${(left + g * groupW + groupW / 2).toFixed(1)}" y="${top + plotH + 36}" text-anchor="middle" font-size="11" fill="#555">${escapeXml(sc.what)}</text>`);
    if (sc.key === 'write' && disk > 0) {
      const x1 = left + g * groupW + 6;
      const x2 = left + (g + 1) * groupW - 6;
      out.push(`<line x1="${x1.toFixed(1)}" x2="${x2.toFixed(1)}" y1="${y(disk).toFixed(1)}" y2="${y(disk).toFixed(1)}" stroke="#000" stroke-dasharray="6 4"/>`);
      out.push(`<text x="${(x1 - 2).toFixed(1)}" y="${(y(disk) - 4).toFixed(1)}" font-size="10">disk</text>`);
    }
  });
  const legendTop = top + plotH + 60;
  results.forEach((r, i) => {
    const col = i % 3;
    const row = Math.floor(i / 3);
    const x = left + col * 290;
    const yy = legendTop + row * 22;
    out.push(`<rect x="${x}" y="${yy}" width="14" height="14" fill="${r.spec.colour}"/>`);
    out.push(`<text x="${x + 20}" y="${yy + 12}" font-size="12">${escapeXml(r.spec.label)}${r.failed !== undefined ? ' (failed)' : ''}</text>`);
  });
  if (disk > 0) {
    const yy = legendTop + Math.ceil(results.length / 3) * 22;
    out.push(`<line x1="${left}" x2="${left + 14}" y1="${yy + 7}" y2="${yy + 7}" stroke="#000" stroke-dasharray="4 3"/>`);
    out.push(`<text x="${left + 20}" y="${yy + 12}" font-size="12">${escapeXml(`disk: temp file + rename, ${CONNECTIONS} writers: ${fmtInt(disk)} writes/s (what FileStorage writes can reach)`)}</text>`);
  }
  out.push(`<text x="16" y="${top + plotH / 2}" text-anchor="middle" font-size="12" fill="#555" transform="rotate(-90 16 ${top + plotH / 2})">requests / s</text>`);
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

// ---------------------------------------------------------------------------------------------
// The "Redis" section

const REDIS_HEADER: Row = ['scenario', 'server', 'req/s', 'p99 ms', 'CPU µs/req', '×connect-redis by CPU', 'round trips/req', 'commands Redis ran/req', 'Redis CPU µs/req', 'CPU % srv/load', 'RSS MB', 'notes'];
const REDIS_NUMERIC = new Set([2, 3, 4, 5, 8, 9, 10]);

function redisRows(results: ServerResult[], rounds: Rounds): Row[] {
  const rows: Row[] = [];
  for (const sc of SCENARIOS) {
    for (const r of results) {
      const m = r.scenarios[sc.key];
      if (m === undefined) {
        rows.push([sc.key, r.spec.label, '–', '–', '–', '', '–', '–', '–', '–', '–', (r.failed ?? 'not measured').replace(/\s+/g, ' ').slice(0, 300)]);
        continue;
      }
      rows.push([
        sc.key,
        r.spec.label,
        fmtInt(m.rps),
        fmtMs(m.p99),
        m.cpuUs.toFixed(0),
        // Within each round (the two measured in turns), the median over the rounds.
        fmtRatio(roundRatio(rounds, 'express-redis', r.spec.key, sc.key, (x) => x.cpuUs)),
        fmtCalls(m.roundTrips),
        fmtCalls(m.redisCalls),
        (m.redisCpuUs ?? NaN).toFixed(0),
        `${m.serverCpu.toFixed(0)} / ${m.clientCpu.toFixed(0)}`,
        m.rssMb.toFixed(0),
        m.problems.join('; '),
      ]);
    }
  }
  return rows;
}

function redisTargetRows(rounds: Rounds): Row[] {
  const fmt = (x: number | undefined): string => (x === undefined || !Number.isFinite(x) ? '–' : `${x >= 10 ? x.toFixed(1) : x.toFixed(3)}×`);
  const rows: Row[] = [];
  for (const sc of ['read', 'write', 'new'] as const) {
    // The floor on Redis: the same cost is the target, within the tolerance of the Map floor's read target.
    if (rounds.has('floor-redis')) {
      const byCpu = roundRatio(rounds, 'redis', 'floor-redis', sc, (m) => m.cpuUs);
      rows.push([`RedisStorage ${sc} / floor on Redis (CPU: lower is better)`, fmt(roundRatio(rounds, 'redis', 'floor-redis', sc, (m) => m.rps)), fmt(byCpu), '≤ 1.25× by CPU', byCpu === undefined ? 'not measured' : byCpu <= 1.25 ? 'yes' : 'no']);
    }
    for (const [peer, label, min] of [['express-redis', 'express-session + connect-redis', sc === 'new' ? undefined : 3], ['fastify-redis', '@fastify/session + connect-redis', undefined]] as const) {
      const byRps = roundRatio(rounds, 'redis', peer, sc, (m) => m.rps);
      const byCpu = roundRatio(rounds, peer, 'redis', sc, (m) => m.cpuUs);
      const met = min === undefined ? '(for comparison)' : byRps === undefined ? 'not measured' : `${byRps >= min ? 'yes' : 'no'}, ${byCpu !== undefined && byCpu >= min ? 'yes' : 'no'}`;
      rows.push([`RedisStorage ${sc} / ${label}`, fmt(byRps), fmt(byCpu), min === undefined ? '–' : `≥ ${min}×`, met]);
    }
  }
  return rows;
}

function versionOf(pkg: string): string {
  try {
    return (JSON.parse(readFileSync(join(BENCH, 'node_modules', pkg, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return '?';
  }
}

function redisMarkdown(started: Date, rows: Row[], targets: Row[]): string {
  let redisVersion = '?';
  try {
    redisVersion = /v=(\S+)/.exec(execFileSync('redis-server', ['--version'], { encoding: 'utf8' }))?.[1] ?? '?';
  } catch {
    // Reported as '?'.
  }
  const argv = process.argv.slice(2);
  return `## Redis

Written by \`npm run bench${argv.length > 0 ? ` -- ${argv.join(' ')}` : ''}\` (bench/run.ts) on ${started.toISOString()}, Node ${process.version}, ${cpus().length} cores${ROUNDS > 1 ? `, median of ${ROUNDS} rounds` : ''}${DURATION < 5 ? ' — a short run: figures are indicative only' : ''}.

- One redis-server ${redisVersion}, started by the bench on 127.0.0.1 (no persistence) and emptied before each server, on the same machine as the servers and the load generator; node-redis ${versionOf('redis')} in every server
- The same load and scenarios as the table at the top (autocannon, ${CONNECTIONS} connections, ${DURATION} s per measurement, ${SESSIONS} sessions)
- round trips/req: the commands the server sent Redis per request (each waits for its answer: one round trip), then each command's share, counted with \`MONITOR\` over ${SESSIONS} more requests of the scenario right after it was timed (so that MONITOR's cost is not in the figures); the commands that a script runs inside Redis are not round trips and are left out (this sample reads each of the ${SESSIONS} sessions once; RedisStorage extends a session's life at most once per \`ttlUpdateInterval\`, a minute, and the servers' turns spread a scenario over about a minute, so in the read sample most sessions are due an extension, \`EVALSHA\`, which over the timed turns came to about one read in a hundred: see commands Redis ran/req)
- commands Redis ran/req: every command redis-server executed during the timed scenario (\`INFO commandstats\` before and after), those run by scripts included, over the requests answered. Redis CPU µs/req: redis-server's own CPU time per request, which CPU µs/req does not include
- ×connect-redis by CPU: express-session + connect-redis's CPU time per request over this server's (higher is better)
- Every \`/set\` stores a new count of the process's writes beside the time, so every write request writes
- ×floor on Redis: the floor on Redis's CPU time per request is the target for RedisStorage's (the floor's \`Map\` plus the round trips a request needs); in the targets, RedisStorage's CPU time over the floor's (lower is better)

${mdTable(REDIS_HEADER, rows, REDIS_NUMERIC)}

### Targets

${mdTable(TARGET_HEADER, targets, new Set([1, 2, 3]))}

### The servers

- **floor on Redis** (\`servers/floor-redis.mjs\`): the floor with each session as one JSON string in Redis: a read is one \`GET\`, a write \`GET\` then \`SET … PX\`, a new session one \`SET … PX\`; no life extension on reads, no merging of concurrent writes, no owner index, no hashing of ids.
- **bare-session RedisStorage** (\`servers/bare.ts\`): the seed program with \`RedisStorage\` (defaults: \`ttlUpdateInterval\` 1 min, \`timeout\` 2 s), \`sessionMaxAge\` 10 min, in one process (\`examples/cluster.ts\` runs the same on node:cluster workers, whose CPU time would not show in one pid). A read is \`HGETALL\`, and a life extension (one script, \`EVALSHA\`) at most once a minute per session; a write applies the request's changes with one script (\`EVALSHA\`); a new session is one script.
- **express-session + connect-redis** (\`servers/express.mjs\`, \`STORE=redis\`): connect-redis ${versionOf('connect-redis')}, defaults (prefix \`sess:\` and the raw session id as the key; the whole session as one JSON string): a read is \`GET\` and \`EXPIRE\` (express-session's touch), a write \`GET\` then \`SET … EX\` of the whole session.
- **@fastify/session + connect-redis** (\`servers/fastify.mjs\`, \`STORE=redis\`): the same store (@fastify/session takes express-session stores), \`rolling: false\`.
`;
}

// ---------------------------------------------------------------------------------------------
// Rounds: the median of each figure over the rounds

/** Each server's results, round by round. */
type Rounds = Map<string, ServerResult[]>;

/**
 * `f` of server `key` over `f` of server `base` in the same round and scenario (the two measured
 * in turns), the median over the rounds; `undefined` when either was not measured.
 */
function roundRatio(rounds: Rounds, key: string, base: string, sc: ScenarioKey, f: (m: Measurement) => number): number | undefined {
  const bases = rounds.get(base) ?? [];
  const x = median((rounds.get(key) ?? []).map((r, i) => {
    const a = r.scenarios[sc];
    const b = bases[i]?.scenarios[sc];
    return a === undefined || b === undefined ? NaN : f(a) / f(b);
  }));
  return Number.isFinite(x) ? x : undefined;
}

function median(values: number[]): number {
  const v = values.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 === 1 ? (v[mid] as number) : ((v[mid - 1] as number) + (v[mid] as number)) / 2;
}

function combine(spec: ServerSpec, runs: ServerResult[]): ServerResult {
  if (runs.length === 1) return runs[0] as ServerResult;
  const failedAt = runs.findIndex((r) => r.failed !== undefined);
  if (failedAt !== -1) return { spec, failed: `round ${failedAt + 1}: ${runs[failedAt]?.failed}`, scenarios: {} };
  const out: ServerResult = { spec, scenarios: {} };
  for (const sc of SCENARIOS) {
    const ms = runs.map((r) => r.scenarios[sc.key]).filter((m): m is Measurement => m !== undefined);
    if (ms.length === 0) continue;
    const med = (f: (m: Measurement) => number): number => median(ms.map(f));
    out.scenarios[sc.key] = {
      rps: med((m) => m.rps),
      p99: med((m) => m.p99),
      rssMb: med((m) => m.rssMb),
      cpuUs: med((m) => m.cpuUs),
      serverCpu: med((m) => m.serverCpu),
      clientCpu: med((m) => m.clientCpu),
      total: med((m) => m.total),
      problems: [...new Set(ms.flatMap((m) => m.problems))],
    };
    if (ms.every((m) => m.redisCalls !== undefined)) {
      const names = new Set(ms.flatMap((m) => Object.keys(m.redisCalls ?? {})));
      const calls: Record<string, number> = {};
      for (const name of names) calls[name] = med((m) => m.redisCalls?.[name] ?? 0);
      const o = out.scenarios[sc.key] as Measurement;
      o.redisCalls = calls;
      const tripNames = new Set(ms.flatMap((m) => Object.keys(m.roundTrips ?? {})));
      const trips: Record<string, number> = {};
      for (const name of tripNames) trips[name] = med((m) => m.roundTrips?.[name] ?? 0);
      o.roundTrips = trips;
      o.redisCpuUs = med((m) => m.redisCpuUs ?? NaN);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The run under wrk: its own section of RESULTS.md

/** The sections of RESULTS.md that a full run keeps, from the first of them to the end. */
const KEPT_SECTIONS = /^## (Against the floor under wrk|Why|Scale)\b/m;
const WRK_TITLE = '## Against the floor under wrk';

/** The targets against the floor, by CPU time per request (issue 17): at most this many times the floor's. */
const FLOOR_TARGETS: { key: string; scenario: ScenarioKey; most: number }[] = [
  { key: 'memory', scenario: 'read', most: 1.25 },
  { key: 'memory', scenario: 'write', most: 1.4 },
  { key: 'memory', scenario: 'new', most: 1.2 },
  { key: 'file', scenario: 'read', most: 1.3 },
  // Issue 13: "the same session cost on Redis as the floor's Map plus one round trip", against the floor on Redis.
  { key: 'redis', scenario: 'read', most: 1.25 },
  { key: 'redis', scenario: 'write', most: 1.25 },
  { key: 'redis', scenario: 'new', most: 1.25 },
];

/** The floor a server is held against: the floor on Redis for the Redis servers, else the floor. */
function floorOf(spec: ServerSpec): string {
  return spec.redis === true ? 'floor-redis' : 'floor';
}

/**
 * Writes (or replaces) the section of a run under wrk: each server's medians, and its CPU time
 * per request over the floor's measured in the same round (the median over the rounds), which
 * cancels out the machine's swings between rounds. The rest of RESULTS.md stays as it was.
 */
function writeWrkSection(file: string, started: Date, invocation: string, all: ServerResult[], rounds: Map<string, ServerResult[]>): void {
  const spec = (key: string): ServerSpec | undefined => SERVERS.find((x) => x.key === key);
  const ratio = (key: string, sc: ScenarioKey): number => {
    const s = spec(key);
    return s === undefined ? NaN : (roundRatio(rounds, key, floorOf(s), sc, (m) => m.cpuUs) ?? NaN);
  };
  const rows: Row[] = [];
  for (const sc of SCENARIOS) {
    for (const r of all) {
      const m = r.scenarios[sc.key];
      if (r.failed !== undefined || m === undefined) {
        rows.push([sc.key, r.spec.label, '–', '–', '–', '–', '–', r.failed ?? 'not measured']);
        continue;
      }
      rows.push([sc.key, r.spec.label, fmtInt(m.rps), fmtMs(m.p99), m.cpuUs.toFixed(1), fmtRatio(ratio(r.spec.key, sc.key)), `${m.serverCpu.toFixed(0)} / ${m.clientCpu.toFixed(0)}`, m.problems.join('; ')]);
    }
  }
  const header: Row = ['scenario', 'server', 'req/s', 'p99 ms', 'CPU µs/req', '×floor by CPU', 'CPU % srv/load', 'notes'];
  const targets: Row[] = FLOOR_TARGETS.filter((t) => rounds.has(t.key) && rounds.has(floorOf(spec(t.key) as ServerSpec))).map((t) => {
    const x = ratio(t.key, t.scenario);
    const s = spec(t.key) as ServerSpec;
    return [`${s.label} ${t.scenario} / ${s.redis === true ? 'floor on Redis' : 'floor'}`, fmtAgainst(x, t.most), `≤ ${t.most}×`, Number.isNaN(x) ? '–' : x <= t.most ? 'yes' : 'no'];
  });
  console.log(`\n${textTable(header, rows)}`);
  if (targets.length > 0) console.log(`\n${textTable(['target', 'by CPU/req', 'required', 'met'], targets, new Set([1, 2]))}`);
  const section = `${WRK_TITLE}

Written by \`${invocation}\` (bench/run.ts) on ${started.toISOString()}, Node ${process.version}, ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'})${ROUNDS > 1 ? `, median of ${ROUNDS} rounds` : ''}${DURATION < 5 ? ' — a short run: figures are indicative only' : ''}.

- The same servers and scenarios as above, loaded by [wrk](https://github.com/wg/wrk) (C, one thread, ${CONNECTIONS} connections, ${DURATION} s per measurement) instead of autocannon: autocannon, in Node, needs a core of its own and holds the fastest servers below their speed (the floor at about 86 % of a core), so that their CPU time per request includes idle wake-ups and their ratios to the floor shrink towards 1. wrk leaves the server the CPU it can use
- Within a scenario the servers take turns of ${SLICE} s, the order reversed every other turn, so that each server and the floor are measured over the same stretch of time
- A server's CPU time counts every thread over the whole scenario, its turns and the waits between them: FileStorage's batch of renewals (every minute) is paid by the reads of the turns around it. The warm-up (${WARMUP} s of reads) ends, for FileStorage, with one such batch written, so that the batch's code is compiled before the measurement as the request's is: the first batch of a process costs two to three times a later one (bench/RESULTS.md, "What was left for FileStorage's reads")
- ×floor by CPU: the server's CPU time per request over the floor's in the same round and scenario (measured in turns with it), the median over the rounds; for a server on Redis, over the floor on Redis's (\`node:http\` with a \`GET\` and a \`SET\`, see "Redis" above). The targets of the floor are by this figure
- Install wrk with \`apt-get install wrk\` (Debian, Ubuntu) or \`brew install wrk\`

${mdTable(header, rows)}
${targets.length === 0 ? '' : `\n${mdTable(['target', 'by CPU/req', 'required', 'met'], targets, new Set([1, 2]))}\n`}`;
  let old = '';
  try {
    old = readFileSync(file, 'utf8');
  } catch {
    // No RESULTS.md yet: the section alone.
  }
  save(file, putSection(old, WRK_TITLE, section, /^## (Why|Scale)\b/m).trimStart(), `the "${WRK_TITLE.slice(3)}" section of ${file}`);
}

/**
 * Writes one of the files the bench keeps (RESULTS.md, results.svg), and says so when `what` is
 * given; with `--no-write` (a diagnostic run) writes nothing and says that instead.
 */
function save(file: string, text: string, what?: string): void {
  if (flags['no-write']) {
    if (what !== undefined) console.log(`\n--no-write: ${what} not written`);
    return;
  }
  writeFileSync(file, text);
  if (what !== undefined) console.log(`\nwrote ${what}`);
}

// ---------------------------------------------------------------------------------------------
// Main

async function main(): Promise<void> {
  const only = flags.only?.split(',').map((s) => s.trim());
  const servers = only === undefined ? SERVERS : SERVERS.filter((s) => only.includes(s.key));
  if (servers.length === 0) throw new Error(`--only matched no server; keys: ${SERVERS.map((s) => s.key).join(', ')}`);
  const cpuModel = cpus()[0]?.model ?? 'unknown';
  const argv = process.argv.slice(2);
  const invocation = argv.length === 1 && argv[0] === '--quick' ? 'npm run bench:quick' : `npm run bench${argv.length > 0 ? ` -- ${argv.join(' ')}` : ''}`;
  const started = new Date();
  console.log(`bare-session benchmark: Node ${process.version}, ${cpus().length} cores (${cpuModel}), ${CONNECTIONS} connections, ${DURATION} s per measurement, ${WARMUP} s warm-up`);
  // bare-session runs as users run it, from dist/: built now from the sources.
  execFileSync('npm', ['run', 'build'], { cwd: ROOT, stdio: 'inherit' });

  // The disk is measured right before FileStorage, so that both see the same disk weather.
  const disks: DiskResult[] = [];
  const measureDisk = async (): Promise<void> => {
    console.log(`\ndisk: temp file + rename, ${CONNECTIONS} writers, ${SESSIONS} targets, ${DURATION} s`);
    const d = await diskRate(DURATION);
    console.log(`  ${fmtInt(d.rate)} writes/s, ${d.cpuUs.toFixed(0)} µs CPU per write (${(100 * d.systemShare).toFixed(0)}% in the kernel)`);
    disks.push(d);
  };
  const rounds = new Map<string, ServerResult[]>(servers.map((s) => [s.key, []]));
  for (let round = 1; round <= ROUNDS; round++) {
    if (ROUNDS > 1) console.log(`\n=== round ${round} of ${ROUNDS}`);
    // Every server of the round runs at once, each on its own fresh state; only one is loaded at a time.
    if (servers.some((s) => s.redis === true)) {
      redisServer ??= await startRedis();
      redisCli('FLUSHALL');
    }
    const prepared: Prepared[] = [];
    try {
      for (const spec of servers) {
        console.log(`${spec.label}  (node --import tsx ${spec.script}${spec.env === undefined ? '' : `, ${Object.entries(spec.env).map(([k, v]) => `${k}=${v}`).join(' ')}`})`);
        const p = await prepareServer(spec);
        if (p.result.failed !== undefined) console.log(`  FAILED, not timed: ${p.result.failed}`);
        prepared.push(p);
      }
      // The disk is measured right before the servers, so that FileStorage and it see the same disk weather.
      if (servers.some((s) => s.redis !== true)) await measureDisk();
      for (const sc of SCENARIOS) {
        console.log(`\n${sc.key}: ${sc.what}, ${Math.max(1, Math.round(DURATION / SLICE))} slice(s) per server, in turn`);
        await measureScenario(prepared, sc, round);
      }
    } finally {
      for (const p of prepared) if (p.running !== undefined) await stopServer(p.running);
    }
    for (const p of prepared) rounds.get(p.spec.key)?.push(p.result);
  }
  const all = servers.map((spec) => combine(spec, rounds.get(spec.key) ?? []));
  const resultsFile = join(BENCH, 'RESULTS.md');
  if (CLIENT === 'wrk') {
    writeWrkSection(resultsFile, started, invocation, all, rounds);
    return;
  }
  const results = all.filter((r) => r.spec.redis !== true);
  const redisResults = all.filter((r) => r.spec.redis === true);
  let old = '';
  try {
    old = readFileSync(resultsFile, 'utf8');
  } catch {
    // First run: no previous file.
  }
  // The "Redis" section: this run's when it ran Redis servers, else the one already there.
  let redisSection: string;
  [old, redisSection] = cutSection(old, '## Redis');
  if (redisResults.length > 0) {
    const rows = redisRows(redisResults, rounds);
    const targets = redisTargetRows(rounds);
    console.log(`\n${textTable(REDIS_HEADER, rows, REDIS_NUMERIC)}`);
    console.log(`\n${textTable(TARGET_HEADER, targets, new Set([1, 2]))}`);
    redisSection = redisMarkdown(started, rows, targets);
  }
  if (results.length === 0) {
    // Only Redis servers ran: the rest of the file stays as it was.
    const at = old.search(KEPT_SECTIONS);
    const text = at === -1 ? `${old.trimEnd()}\n\n${redisSection}` : `${old.slice(0, at)}${redisSection.trimEnd()}\n\n${old.slice(at)}`;
    save(resultsFile, text, `the "Redis" section of ${resultsFile}`);
    return;
  }
  const disk: DiskResult = {
    rate: median(disks.map((d) => d.rate)),
    writes: median(disks.map((d) => d.writes)),
    bytes: disks[0]?.bytes ?? 0,
    cpuUs: median(disks.map((d) => d.cpuUs)),
    systemShare: median(disks.map((d) => d.systemShare)),
  };
  const rows = resultRows(results, rounds);
  const targets = targetRows(results, rounds, disk);
  console.log(`\n${textTable(HEADER, rows)}`);
  console.log(`\ndisk temp+rename: ${fmtInt(disk.rate)} writes/s; FileStorage write: ${fmtRatio((results.find((r) => r.spec.key === 'file')?.scenarios.write?.rps ?? NaN) / disk.rate)} of it`);
  console.log(`\n${textTable(TARGET_HEADER, targets, new Set([1, 2]))}`);

  const subtitle = `${CONNECTIONS} connections, ${DURATION} s each${ROUNDS > 1 ? `, median of ${ROUNDS} rounds` : ''} · Node ${process.version} · ${cpus().length} cores · ${started.toISOString().slice(0, 10)}`;
  save(join(BENCH, 'results.svg'), svgChart(results, disk.rate, subtitle));

  let scale = '';
  // The wrk section, the hand-written "Why targets are not met" section and scale.ts's "Scale"
  // section stay.
  const at = old.search(KEPT_SECTIONS);
  if (at !== -1) scale = old.slice(at);
  if (redisSection !== '') scale = `${redisSection.trimEnd()}\n\n${scale}`;
  const md = `# Benchmark results

Written by \`${invocation}\` (bench/run.ts)${DURATION < 5 ? ' — a short run: figures are indicative only' : ''}.

- Date: ${started.toISOString()}
- Node ${process.version}, ${cpus().length} cores (${cpuModel}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB
- autocannon, ${CONNECTIONS} connections, ${DURATION} s per measurement, after ${WARMUP} s of warm-up per server; the load generator runs on the same machine
- All servers of a round run at once (only one is loaded at a time); within a scenario they take turns of ${SLICE} s, the order reversed every other turn, so that a swing of the machine's speed hits all of them alike${ROUNDS > 1 ? `\n- ${ROUNDS} rounds of the whole sequence; each figure is the median over the rounds` : ''}
- ${SESSIONS} sessions created first with \`/set\`; **read** = \`/get\` and **write** = \`/set\` with one of their cookies, rotating per request; **new** = \`/set\` without a cookie
- RSS: VmRSS of the server process at the end of each scenario. Every server runs as \`node --import tsx …\` (the loader adds about 30 MB to each)
- CPU µs/req: CPU time of the server process (user + system, all threads, from /proc) per request; it depends less than req/s on what else the machine runs. CPU % srv/load: the server's and the load generator's CPU use during the scenario, in % of one core: a load generator near 100 % while the server is well under it means the figure is bounded by the client, not the server
- ×floor: the ratio to the floor (bare node:http with a Map). For req/s higher is better; for p99, CPU and RSS lower is better

![requests per second](results.svg)

${mdTable(HEADER, rows)}

## Disk: temp file + rename

${CONNECTIONS} async writers on node:fs/promises, each writing a ${disk.bytes}-byte file as temp file (open \`wx\` 0600, write, close) + rename over one of ${SESSIONS} targets (in 256 shard folders, like FileStorage), for ${DURATION} s, measured right before the FileStorage server: **${fmtInt(disk.rate)} writes/s** (${fmtInt(disk.writes)} writes), costing ${disk.cpuUs.toFixed(0)} µs of CPU per write, ${(100 * disk.systemShare).toFixed(0)} % of it in the kernel. On a machine this size the rate is bounded by CPU as much as by the disk, and during the HTTP benchmark the server shares the CPU with the load generator; compare FileStorage's CPU µs/req in the write scenario with this CPU per write plus MemoryStorage's CPU µs/req.

## Targets

${mdTable(TARGET_HEADER, targets, new Set([1, 2, 3]))}

"req/s ratio" divides requests per second. "by CPU/req" divides the other side's CPU time per request by this one's (for the disk: its CPU per write). Between two servers, both are the ratio within each round (the two measured in turns), the median over the rounds: it is what the req/s ratio would be if both were bound by the server's CPU. On a 2-core machine that also runs the load generator, the fastest servers (the floor, MemoryStorage, @fastify/session) are often bound by the load generator instead (see "CPU % srv/load"), which squeezes their req/s ratios towards 1, so read both.

## The servers

- **floor** (\`servers/floor.mjs\`): node:http, a \`Map\` of sessions, no expiry, no persistence: cookie parse, a random 32-byte base64url id on the first write with \`Set-Cookie\`, JSON out.
- **bare-session MemoryStorage / FileStorage** (\`servers/bare.ts\`, \`STORE=memory\` or \`file\`): the seed program's routes, with \`TMPDIR\` set to a fresh temporary folder (FileStorage writes under it), and \`sessionMaxAge\` 10 min.
- Sessions live 10 minutes on every server (the seed program's minute is shorter than a round, in which the servers take turns, and @fastify/session does not extend a session on reads).
- On every server \`/set\` stores the time and a count of the process's writes (\`n\`), so that every write changes the session: bare-session writes nothing for a write that stores what is already there, which would turn the write scenario into reads.
- **express-session** (\`servers/express.mjs\`): express 5, \`saveUninitialized: false\`, \`resave: false\`, a secret, cookie not secure, \`maxAge\` 10 min; its MemoryStore, or **session-file-store** (\`STORE=file\`, \`ttl\` 600, defaults otherwise: it writes with write-file-atomic, which fsyncs, and rewrites the file on every read to record the access time).
- **@fastify/session** (\`servers/fastify.mjs\`): fastify 5 with @fastify/cookie, \`saveUninitialized: false\`, \`rolling: false\` (its \`resave: false\`), a secret, cookie not secure, \`maxAge\` 10 min, its default memory store.
- Each server's answers are checked before it is timed (\`/get\` without cookie → \`{}\` and no cookie; \`/set\` → a cookie; \`/get\` → \`{"time":N,"n":W}\`; \`/del\` then \`/get\` → \`{}\`), and after each cookie scenario 20 of the 2 000 sessions must still read back.
`;
  save(resultsFile, scale === '' ? md : `${md}\n${scale}`, `${join(BENCH, 'RESULTS.md')} and ${join(BENCH, 'results.svg')}`);
}

main()
  .catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  })
  .finally(() => {
    agent.destroy();
    cleanupSync();
  });
