/**
 * The in-process benchmark: the whole `node:http` stack (parser, server, response) on in-memory
 * sockets, with no kernel and no load generator, so that a change of a few microseconds shows on
 * a noisy machine. It measures the CPU time of this process per request (user + system, from
 * `process.cpuUsage()`) of bare-session on MemoryStorage and on FileStorage (hot: every session
 * in memory) against the floor (a `Map` of sessions on bare `node:http`) in the same process,
 * in turns of 1000 requests each, so that both see the same swings of the machine (on this VM,
 * a process's speed drifts by half within seconds; the ratio of two turns side by side drifts
 * by a few percent). It prints the medians over the turns, then over the rounds (one fresh
 * process each).
 *
 * Sharing one heap, the floor and the subject also share the garbage collector's bill: what
 * one of them leaves to the old generation is collected in both's turns. So each process also
 * runs {@link PROMOTION} requests of each alone, after a full collection, and reports what the
 * old generation grew by a request: bytes that outlived the young generation (a cache that
 * rebuilt its table on reads made FileStorage's reads cost a third more under wrk, and showed
 * only here and in `--trace-gc`).
 *
 *   npm run build && npx tsx inproc.ts [--rounds 7] [--requests 20000] [--sessions 2000] [--verbose]
 *
 * Scenarios, as in run.ts: read = GET /get with one of the sessions; write = GET /set with one
 * of them (each write stores the time in seconds and a new count, as bench/servers/bare.ts
 * does under wrk, so every one is a real change); new = GET /set without a cookie.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { getHeapSpaceStatistics } from 'node:v8';
import type * as Lib from '../lib/index.js';
import { type Scenario, type Subject, WARMUP, bare, floor, prepare, request } from './stack.js';

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
    // Each process's medians too.
    verbose: { type: 'boolean', default: false },
  },
});
// The library as users run it: compiled by tsc into dist/ (`npm run build` first), not through
// tsx, whose helpers (such as esbuild's __name on every closure) cost a few µs a request.
const { FileStorage, MemoryStorage, Server } = (await import(args.source === 'lib' ? '../lib/index.js' : '../dist/index.js')) as typeof Lib;
const ROUNDS = Number(args.rounds);
const REQUESTS = Number(args.requests);
const SESSIONS = Number(args.sessions);
/** Requests in a turn: short enough that the machine's speed barely changes within a pair of turns. */
const BATCH = 1000;
/** Requests of each alone for the old generation's growth, and how often its size is read meanwhile. */
const PROMOTION = 5000;
const STEP = 100;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

/** CPU µs per request of `count` requests of `scenario` on `subject`, from its `from`th on. */
async function batch(subject: Subject, scenario: Scenario, from: number, count: number): Promise<number> {
  const start = process.cpuUsage();
  for (let i = from; i < from + count; i++) await request(subject, scenario, i);
  const used = process.cpuUsage(start);
  return (used.user + used.system) / count;
}

/** What one process measured: the medians of its batches, and the old generation's growth. */
interface Measured {
  readonly floor: number;
  readonly subject: number;
  readonly ratio: number;
  /** Bytes the old generation grew by a request of the floor's (see {@link promoted}); null without `--expose-gc`. */
  readonly floorPromoted: number | null;
  readonly subjectPromoted: number | null;
}

/** What the old generation (V8's old space) holds now, in bytes. */
function oldSpaceUsed(): number {
  return getHeapSpaceStatistics().find((space) => space.space_name === 'old_space')?.space_used_size ?? NaN;
}

/**
 * Bytes the old generation grows by per request: after a full collection (which leaves the
 * old generation only what is live, and the young one empty), {@link PROMOTION} requests of
 * `subject` alone, the old generation's size read every {@link STEP}; what it grew by, live
 * or not, outlived the young generation. A step in which it shrank held a full collection,
 * which hides the growth: such steps are left out, with their requests. Null without
 * `--expose-gc`.
 */
async function promoted(subject: Subject, scenario: Scenario, from: number): Promise<number | null> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) return null;
  gc();
  let grown = 0;
  let counted = 0;
  let last = oldSpaceUsed();
  for (let i = 0; i < PROMOTION; i += STEP) {
    for (let j = i; j < i + STEP; j++) await request(subject, scenario, from + j);
    const now = oldSpaceUsed();
    if (now >= last) {
      grown += now - last;
      counted += STEP;
    }
    last = now;
  }
  return counted === 0 ? null : grown / counted;
}

/**
 * Measures one subject against the floor in this process, which was started for them alone:
 * both warmed up, then batches of {@link BATCH} requests, the floor's and the subject's in
 * turn (which goes first alternates), so that both see the same swings of the machine; the
 * ratio of each pair is kept, and the medians reported.
 */
async function child(name: string, scenario: Scenario): Promise<Measured> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-inproc-'));
  try {
    // Each as it ships: FileStorage keeps at most 10,000 sessions in memory, every one of the 2,000 here.
    const storage = name === 'MemoryStorage' ? new MemoryStorage() : new FileStorage({ path: join(dir, 'sessions') });
    const base = await prepare('floor', floor(), SESSIONS);
    const subject = await prepare(name, bare(Server, storage), SESSIONS);
    for (const x of [base, subject]) for (let i = 0; i < WARMUP; i++) await request(x, scenario, i);
    const floors: number[] = [];
    const subjects: number[] = [];
    const ratios: number[] = [];
    for (let b = 0; b < REQUESTS / BATCH; b++) {
      let f: number;
      let x: number;
      if (b % 2 === 0) {
        f = await batch(base, scenario, b * BATCH, BATCH);
        x = await batch(subject, scenario, b * BATCH, BATCH);
      } else {
        x = await batch(subject, scenario, b * BATCH, BATCH);
        f = await batch(base, scenario, b * BATCH, BATCH);
      }
      floors.push(f);
      subjects.push(x);
      ratios.push(x / f);
    }
    const from = REQUESTS + WARMUP;
    const floorPromoted = await promoted(base, scenario, from);
    const subjectPromoted = await promoted(subject, scenario, from);
    await storage.close();
    return { floor: median(floors), subject: median(subjects), ratio: median(ratios), floorPromoted, subjectPromoted };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (args.child !== undefined) {
  const [name, scenario] = args.child.split(' ') as [string, Scenario];
  process.stdout.write(`${JSON.stringify(await child(name, scenario))}\n`);
} else {
  // Each subject and scenario in a fresh process (a fresh heap, nothing left by the others),
  // the floor beside it in the same process; one process per round.
  const names = ['MemoryStorage', 'FileStorage'];
  const scenarios = ['read', 'write', 'new'] as const;
  const run = (key: string): Measured =>
    JSON.parse(execFileSync(process.execPath, [...process.execArgv, '--expose-gc', fileURLToPath(import.meta.url), '--child', key, '--requests', String(REQUESTS), '--sessions', String(SESSIONS), '--source', args.source ?? 'dist'], { encoding: 'utf8' })) as Measured;
  const results = new Map<string, Measured[]>();
  for (let round = 0; round < ROUNDS; round++) {
    for (const scenario of scenarios) {
      for (const name of names) {
        if (name === 'FileStorage' && scenario !== 'read') continue; // disk-bound: see run.ts
        const key = `${name} ${scenario}`;
        if (args.only !== undefined && key !== args.only) continue;
        results.set(key, [...(results.get(key) ?? []), run(key)]);
      }
    }
  }
  console.log(`CPU µs per request, the floor and the subject in one process, in turns of ${BATCH} requests (${REQUESTS} each); medians over the turns, then over ${ROUNDS} processes (Node ${process.version})`);
  console.log('| | read | write | new |\n|---|---:|---:|---:|');
  for (const name of names) {
    const cells = scenarios.map((scenario) => {
      const r = results.get(`${name} ${scenario}`);
      if (r === undefined) return '–';
      const m = (f: (x: Measured) => number): number => median(r.map(f));
      return `${m((x) => x.subject).toFixed(1)} µs vs ${m((x) => x.floor).toFixed(1)}: **${m((x) => x.ratio).toFixed(2)}×**`;
    });
    console.log(`| ${name} | ${cells.join(' | ')} |`);
  }
  console.log(`\nOld generation's growth, bytes per request: ${PROMOTION} requests of each alone after a full collection, what outlived the young generation (live or not); medians over the processes`);
  console.log('| | read | write | new |\n|---|---:|---:|---:|');
  const bytes = (xs: (number | null)[]): string => {
    const known = xs.filter((x): x is number => x !== null);
    return known.length === 0 ? 'n/a' : `${Math.round(median(known))} B`;
  };
  for (const name of names) {
    const cells = scenarios.map((scenario) => {
      const r = results.get(`${name} ${scenario}`);
      return r === undefined ? '–' : `${bytes(r.map((x) => x.subjectPromoted))} vs ${bytes(r.map((x) => x.floorPromoted))}`;
    });
    console.log(`| ${name} | ${cells.join(' | ')} |`);
  }
  if (args.verbose) for (const [key, r] of results) console.log(key, r.map((x) => `${x.subject.toFixed(1)}/${x.floor.toFixed(1)}=${x.ratio.toFixed(2)}`).join(' '));
}
