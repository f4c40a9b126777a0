/**
 * The scale benchmark: how the storages behave with many sessions.
 *
 *   cd bench && npm run bench:scale                     100 000 sessions on disk
 *   npm run bench:scale -- --sessions 1000000           a million
 *   node --expose-gc --import tsx bench/scale.ts        the same, from the repository root
 *
 * 1. FileStorage (maxInMemory 10 000) in a temporary folder: creates the sessions (50 `set`s at a
 *    time; half with a short life, through an injected clock), reports the time and RSS; then
 *    50 000 `get`s spread uniformly over all sessions, one at a time: the share found, the share
 *    served from memory (counted by wrapping the storage's file `open`), p50/p99 latency; then
 *    moves the clock past the short life and runs the sweep, with the longest event-loop stall
 *    (perf_hooks.monitorEventLoopDelay) and the files left.
 * 2. MemoryStorage with 1 000 000 sessions of `{ time: <number> }`: heap bytes per session beyond
 *    the data's JSON size (gc before measuring), and RSS; a plain `Map` of the same for scale.
 *
 * Each phase runs in a child process of its own, so that one's memory does not count in the
 * other's RSS. Prints a table and writes it into bench/RESULTS.md under "## Scale" (replacing
 * that section; run.ts keeps it when it rewrites the file).
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { FileStorage, MemoryStorage, generateId } from '../lib/index.js';
import { putSection } from './sections.js';

const { values: flags } = parseArgs({
  options: {
    sessions: { type: 'string', default: '100000' },
    'memory-sessions': { type: 'string', default: '1000000' },
    gets: { type: 'string', default: '50000' },
    phase: { type: 'string' },
  },
});
const SESSIONS = Number(flags.sessions);
const MEMORY_SESSIONS = Number(flags['memory-sessions']);
const GETS = Number(flags.gets);
for (const [name, n] of [['sessions', SESSIONS], ['memory-sessions', MEMORY_SESSIONS], ['gets', GETS]] as const) {
  if (!Number.isInteger(n) || n < 2) {
    console.error(`--${name} must be an integer of at least 2`);
    process.exit(2);
  }
}
const MAX_IN_MEMORY = 10_000;
const CONCURRENCY = 50;
// An hour, so that creating a million sessions (minutes) on the real clock does not expire them
// before the gets; the injected clock then moves past it for the sweep.
const SHORT_TTL = 3_600_000;
const LONG_TTL = 86_400_000;
const BENCH = fileURLToPath(new URL('.', import.meta.url));
const RESULT_MARK = 'SCALE-RESULT ';

const mb = (bytes: number): number => bytes / 2 ** 20;
const gc = (): void => (globalThis as { gc?: () => void }).gc?.();

function percentile(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

/** Runs `fn` over 0…count-1, `limit` at a time. */
async function runLimited(count: number, limit: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) await fn(next++);
  };
  await Promise.all(Array.from({ length: Math.min(limit, count) }, worker));
}

// ---------------------------------------------------------------------------------------------
// Phase 1: FileStorage

interface FileResult {
  sessions: number;
  createSeconds: number;
  rssAfterCreateMb: number;
  heapAfterCreateMb: number;
  gets: number;
  found: number;
  fromMemory: number | undefined;
  p50us: number;
  p99us: number;
  maxUs: number;
  rssAfterGetsMb: number;
  sweepSeconds: number;
  swept: number;
  expired: number;
  filesLeft: number;
  stallMs: number;
  stallP99Ms: number;
  sweepCorrect: boolean;
  errors: string[];
}

async function filePhase(): Promise<FileResult> {
  const dir = mkdtempSync(join(tmpdir(), 'bs-scale-'));
  const errors: string[] = [];
  try {
    let offset = 0;
    const now = (): number => Date.now() + offset;
    const storage = new FileStorage({
      path: join(dir, 'sessions'),
      maxInMemory: MAX_IN_MEMORY,
      now,
      // The sweep and the flush run when this script says so, not on their own.
      sweepInterval: '24h',
      ttlUpdateInterval: '24h',
      onError: (err) => {
        if (errors.length < 10) errors.push(err.message);
      },
    });
    // Count file reads: a `get` served from memory opens no file. `fsCalls` is the storage's
    // internal hook for tests; without it the memory share is not reported.
    let opens = 0;
    const internals = (await import('../lib/storage/file/files.js')) as { fsCalls?: { open: (...a: unknown[]) => Promise<unknown> } };
    const fsCalls = internals.fsCalls;
    if (fsCalls !== undefined) {
      const open = fsCalls.open;
      fsCalls.open = (...a: unknown[]) => {
        opens++;
        return open(...a);
      };
    }

    // The ids are derived from their index, not held: an array of a million id strings would
    // add about 70 MB to the heap measured here, and its marking to the GC pauses of the sweep.
    const idAt = (i: number): string => createHash('sha256').update(`scale-${i}`).digest('base64url');
    const short = (i: number): boolean => i % 2 === 0;
    const t0 = performance.now();
    await runLimited(SESSIONS, CONCURRENCY, (i) => storage.set(idAt(i), { time: 1_763_778_000 + i }, short(i) ? SHORT_TTL : LONG_TTL));
    const createSeconds = (performance.now() - t0) / 1000;
    const afterCreate = process.memoryUsage();
    console.error(`  created ${SESSIONS} in ${createSeconds.toFixed(1)} s`);

    const latencies = new Float64Array(GETS);
    let found = 0;
    const opensBefore = opens;
    for (let k = 0; k < GETS; k++) {
      const id = idAt(Math.floor(Math.random() * SESSIONS));
      const s = performance.now();
      const data = await storage.get(id);
      latencies[k] = (performance.now() - s) * 1000;
      if (data !== undefined) found++;
    }
    const fileReads = opens - opensBefore;
    latencies.sort();
    const rssAfterGets = process.memoryUsage().rss;
    console.error(`  ${GETS} gets done`);

    // Past the short life: half of the sessions are expired. Sweep them with the loop watched.
    offset += SHORT_TTL + 60_000;
    const loop = monitorEventLoopDelay({ resolution: 10 });
    loop.enable();
    const s0 = performance.now();
    const swept = await storage.sweep();
    const sweepSeconds = (performance.now() - s0) / 1000;
    loop.disable();
    console.error(`  swept ${swept} in ${sweepSeconds.toFixed(1)} s`);

    let filesLeft = 0;
    const root = join(dir, 'sessions');
    // The shard folders only (two hex digits): not the lock, nor the owner index.
    for (const shard of readdirSync(root, { withFileTypes: true })) {
      if (!shard.isDirectory() || !/^[0-9a-f]{2}$/.test(shard.name)) continue;
      for (const name of readdirSync(join(root, shard.name))) if (/^[0-9a-f]{64}$/.test(name)) filesLeft++;
    }
    // The right ones went: an expired session reads as missing, a live one still reads.
    let sweepCorrect = true;
    for (let i = 0; i < 200; i++) {
      const data = await storage.get(idAt(i));
      if ((data === undefined) !== short(i)) sweepCorrect = false;
    }
    await storage.close();
    const expired = Math.ceil(SESSIONS / 2);
    return {
      sessions: SESSIONS,
      createSeconds,
      rssAfterCreateMb: mb(afterCreate.rss),
      heapAfterCreateMb: mb(afterCreate.heapUsed),
      gets: GETS,
      found,
      fromMemory: fsCalls === undefined ? undefined : GETS - fileReads,
      p50us: percentile(latencies, 50),
      p99us: percentile(latencies, 99),
      maxUs: latencies[latencies.length - 1] as number,
      rssAfterGetsMb: mb(rssAfterGets),
      sweepSeconds,
      swept,
      expired,
      filesLeft,
      stallMs: loop.max / 1e6,
      stallP99Ms: loop.percentile(99) / 1e6,
      sweepCorrect,
      errors,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// Phase 2: MemoryStorage

interface MemoryResult {
  sessions: number;
  jsonBytes: number;
  fillSeconds: number;
  bytesPerSession: number;
  rssMb: number;
  rssBeforeMb: number;
  heapMb: number;
  mapBytesPerSession: number;
  gcExposed: boolean;
}

async function memoryPhase(): Promise<MemoryResult> {
  const count = MEMORY_SESSIONS;
  const base = 1_763_778_000;
  const jsonBytes = Buffer.byteLength(JSON.stringify({ time: base }));
  gc();
  const rssBefore = process.memoryUsage().rss;
  const before = process.memoryUsage().heapUsed;
  const storage = new MemoryStorage({ max: count, sweepInterval: '1h' });
  const t0 = performance.now();
  for (let i = 0; i < count; i++) await storage.set(generateId(), { time: base + (i % 100_000) }, LONG_TTL);
  const fillSeconds = (performance.now() - t0) / 1000;
  gc();
  const after = process.memoryUsage();
  const bytesPerSession = (after.heapUsed - before) / count - jsonBytes;
  const held = storage.size;
  await storage.close();

  // For scale: the same sessions in a plain Map, the least they can take.
  gc();
  const before2 = process.memoryUsage().heapUsed;
  const map = new Map<string, { time: number }>();
  for (let i = 0; i < count; i++) map.set(generateId(), { time: base + (i % 100_000) });
  gc();
  const mapBytesPerSession = (process.memoryUsage().heapUsed - before2) / count - jsonBytes;
  if (map.size !== count || held !== count) throw new Error(`expected ${count} sessions, MemoryStorage held ${held}`);
  return {
    sessions: count,
    jsonBytes,
    fillSeconds,
    bytesPerSession,
    rssMb: mb(after.rss),
    rssBeforeMb: mb(rssBefore),
    heapMb: mb(after.heapUsed),
    mapBytesPerSession,
    gcExposed: typeof (globalThis as { gc?: unknown }).gc === 'function',
  };
}

// ---------------------------------------------------------------------------------------------
// The parent: runs each phase in a child, prints and records

function runPhase<T>(phase: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const args = [...process.execArgv.filter((a) => a !== '--expose-gc'), '--expose-gc', fileURLToPath(import.meta.url), '--phase', phase, '--sessions', String(SESSIONS), '--memory-sessions', String(MEMORY_SESSIONS), '--gets', String(GETS)];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    const kill = (): void => {
      child.kill('SIGKILL');
    };
    process.once('exit', kill);
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      process.off('exit', kill);
      const line = out.split('\n').find((l) => l.startsWith(RESULT_MARK));
      if (code !== 0 || line === undefined) reject(new Error(`phase ${phase} failed (${code ?? signal}): ${out.slice(-1000)}`));
      else resolve(JSON.parse(line.slice(RESULT_MARK.length)) as T);
    });
  });
}

const int = (n: number): string => Math.round(n).toLocaleString('en-US');

function table(f: FileResult, m: MemoryResult): string[][] {
  return [
    ['FileStorage', 'sessions on disk (half with a 1-hour life, expired for the sweep)', int(f.sessions), ''],
    ['FileStorage', `create all (${CONCURRENCY} \`set\`s at a time)`, `${f.createSeconds.toFixed(1)} s (${int(f.sessions / f.createSeconds)}/s)`, ''],
    ['FileStorage', 'RSS after creating (heap used)', `${f.rssAfterCreateMb.toFixed(0)} MB (${f.heapAfterCreateMb.toFixed(0)} MB)`, ''],
    ['FileStorage', `\`get\` ×${int(f.gets)}, uniform over all: found`, `${((100 * f.found) / f.gets).toFixed(1)} %`, '100 %'],
    ['FileStorage', `served from memory (maxInMemory ${int(MAX_IN_MEMORY)})`, f.fromMemory === undefined ? 'not measured' : `${((100 * f.fromMemory) / f.gets).toFixed(1)} %`, `≈ ${Math.min(100, (100 * MAX_IN_MEMORY) / f.sessions).toFixed(0)} % for uniform access`],
    ['FileStorage', '`get` latency p50 / p99 / max', `${f.p50us.toFixed(0)} / ${f.p99us.toFixed(0)} / ${int(f.maxUs)} µs`, ''],
    ['FileStorage', 'RSS after the gets', `${f.rssAfterGetsMb.toFixed(0)} MB`, ''],
    ['FileStorage', 'sweep: expired files deleted', `${int(f.swept)} of ${int(f.expired)} in ${f.sweepSeconds.toFixed(1)} s; ${int(f.filesLeft)} files left; ${f.sweepCorrect ? 'the right ones' : 'WRONG ONES'}`, `${int(f.expired)}`],
    ['FileStorage', 'longest event-loop stall during the sweep (p99)', `${f.stallMs.toFixed(1)} ms (${f.stallP99Ms.toFixed(1)} ms)`, '< 50 ms'],
    ['MemoryStorage', `${int(m.sessions)} sessions of \`{ time }\` (${m.jsonBytes} bytes of JSON): RSS`, `${m.rssMb.toFixed(0)} MB (heap ${m.heapMb.toFixed(0)} MB; ${m.rssBeforeMb.toFixed(0)} MB before the sessions, node + tsx)`, '< 300 MB'],
    ['MemoryStorage', 'heap bytes per session beyond the JSON (id included)', `${m.bytesPerSession.toFixed(0)} B`, ''],
    ['plain Map', 'the same, in a `Map<string, { time }>`, for scale', `${m.mapBytesPerSession.toFixed(0)} B`, ''],
    ['MemoryStorage', `fill (one \`set\` at a time)`, `${m.fillSeconds.toFixed(1)} s (${int(m.sessions / m.fillSeconds)}/s)`, ''],
  ];
}

function textTable(rows: string[][]): string {
  const header = ['storage', 'measure', 'value', 'target'];
  const w = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
  const line = (r: string[]): string => r.map((c, i) => c.padEnd(w[i] as number)).join('  ').trimEnd();
  return [line(header), w.map((n) => '-'.repeat(n)).join('  '), ...rows.map(line)].join('\n');
}

async function main(): Promise<void> {
  if (flags.phase === 'file') {
    process.stdout.write(`${RESULT_MARK}${JSON.stringify(await filePhase())}\n`);
    return;
  }
  if (flags.phase === 'memory') {
    process.stdout.write(`${RESULT_MARK}${JSON.stringify(await memoryPhase())}\n`);
    return;
  }
  const started = new Date();
  console.log(`bare-session scale benchmark: Node ${process.version}, ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'})`);
  console.log(`\nFileStorage, ${int(SESSIONS)} sessions, maxInMemory ${int(MAX_IN_MEMORY)}`);
  const f = await runPhase<FileResult>('file');
  console.log(`\nMemoryStorage, ${int(MEMORY_SESSIONS)} sessions`);
  const m = await runPhase<MemoryResult>('memory');
  const rows = table(f, m);
  console.log(`\n${textTable(rows)}`);
  if (f.errors.length > 0) console.log(`\nFileStorage reported: ${f.errors.join(' | ')}`);
  const met = [
    `- 1M sessions RSS < 300 MB, FileStorage: ${f.sessions < 1_000_000 ? 'not measured (run with --sessions 1000000)' : Math.max(f.rssAfterCreateMb, f.rssAfterGetsMb) < 300 ? 'yes' : 'no'} (${int(f.sessions)} sessions: ${Math.max(f.rssAfterCreateMb, f.rssAfterGetsMb).toFixed(0)} MB at most)`,
    `- 1M sessions RSS < 300 MB, MemoryStorage: ${m.sessions < 1_000_000 ? 'not measured' : m.rssMb < 300 ? 'yes' : 'no'} (${int(m.sessions)} sessions: ${m.rssMb.toFixed(0)} MB, ${m.rssBeforeMb.toFixed(0)} MB of it before the sessions)`,
    `- no stall > 50 ms during the sweep: ${f.stallMs <= 50 ? 'yes' : 'no'} (${f.stallMs.toFixed(1)} ms, ${int(f.sessions)} files)`,
  ];
  console.log(`\n${met.join('\n')}`);

  const section = `## Scale

Written by \`npm run bench:scale${SESSIONS === 100_000 ? '' : ` -- --sessions ${SESSIONS}`}\` (bench/scale.ts) on ${started.toISOString()}, Node ${process.version}, ${cpus().length} cores. Each part runs in a process of its own; the FileStorage in a temporary folder, with an injected clock moved past the short life before the sweep.

| storage | measure | value | target |
|---|---|---|---|
${rows.map((r) => `| ${r.join(' | ')} |`).join('\n')}

${met.join('\n')}
${f.errors.length > 0 ? `\nFileStorage reported: ${f.errors.join(' | ')}\n` : ''}`;
  const file = join(BENCH, 'RESULTS.md');
  let md = '';
  try {
    md = readFileSync(file, 'utf8');
  } catch {
    md = '# Benchmark results\n\nRun `npm run bench` for the HTTP benchmark.\n';
  }
  // The sections after it (written by hand) stay.
  writeFileSync(file, putSection(md, '## Scale', section));
  console.log(`\nwrote the "Scale" section of ${file}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
