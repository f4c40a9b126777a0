/**
 * The deterministic benchmark: what a request costs the CPU, counted by valgrind's callgrind
 * rather than timed, so that a subject's count moves by about 1 % from one run of the same code
 * to the next whatever else the machine is doing, its ratio to the floor by one or two
 * hundredths (timed measurements here swing by tens of percent between rounds). The same
 * in-memory `node:http` stack as inproc.ts (stack.ts), one subject and scenario per process:
 * sessions made, 10 000 requests to warm the JIT up, then the counted requests, between two
 * calls of `process.cpuUsage()` (callgrind dumps its counts at each, `--dump-before=uv_getrusage`).
 * Node runs with `--single-threaded`: V8 compiles and collects garbage on the main thread, the
 * only one counted, rather than on helper threads whose timing no two runs share (with them,
 * two runs of the same code differed by 3 %; without, by about 1 %).
 *
 * Per request, for the floor (a `Map` of sessions on bare `node:http`) and each subject:
 * - instructions executed;
 * - an estimate of cycles from callgrind's simulation of the caches and branch predictors:
 *   instructions + 10 per first-level cache miss (instructions and data) + 100 per last-level
 *   miss + 15 per mispredicted branch. The weights are the usual rough ones; what matters is
 *   that the floor and the subject are weighed alike.
 *
 * Neither is the time a request takes under load (bench:wrk): the kernel's and the load
 * generator's work is not here, nor the machine's real caches. It is the library's own work,
 * counted, so that a change of a few thousand cycles (about a µs; a request of the floor is
 * some 110,000) shows from one run to the next, and `--profile` says where the difference to
 * the floor is: each function's own estimated cycles (JavaScript named through `--perf-basic-prof`'s map) against
 * the floor's.
 *
 *   npm run bench:instructions [-- --only 'MemoryStorage write'] [--requests 2000] [--profile] [--top 40] [--no-write]
 *
 * A whole run writes the section "Counted by callgrind" of bench/RESULTS.md. BENCH_VALGRIND
 * adds options to valgrind's, such as `--LL=2097152,16,64` to simulate a last level of 2 MB
 * (the machine's L2) instead of callgrind's default, the L3.
 * Needs valgrind (`apt-get install valgrind`); one to three minutes per subject and scenario, two at a time.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import type * as Lib from '../lib/index.js';
import { putSection } from './sections.js';
import { type Listener, type Scenario, WARMUP, bare, floor, prepare, request } from './stack.js';

const { values: args } = parseArgs({
  options: {
    requests: { type: 'string', default: '2000' },
    sessions: { type: 'string', default: '2000' },
    only: { type: 'string' },
    profile: { type: 'boolean', default: false },
    top: { type: 'string', default: '40' },
    // Print only: leave RESULTS.md as it is (a run with --only never writes it).
    'no-write': { type: 'boolean', default: false },
    // Internal: run one subject and scenario in this process (under valgrind).
    child: { type: 'string' },
  },
});
const REQUESTS = Number(args.requests);
const SESSIONS = Number(args.sessions);
const SUBJECTS = ['floor', 'MemoryStorage', 'FileStorage'] as const;
/** New sessions are left to the timed benchmarks (see the section this script writes). */
const SCENARIOS: readonly Scenario[] = ['read', 'write'];
/** The section of RESULTS.md this script writes. */
const TITLE = '## Counted by callgrind';

if (args.child !== undefined) {
  const [name, scenario] = args.child.split(' ') as [string, Scenario];
  const { FileStorage, MemoryStorage, Server } = (await import('../dist/index.js')) as unknown as typeof Lib;
  const dir = mkdtempSync(join(tmpdir(), 'bench-instructions-'));
  // The library's clock (cookie refreshes, expiry, the sweep) moves 0.1 ms a request, as under
  // a load of 10,000 requests a second, not with the wall clock: under valgrind a request
  // takes some 50 times as long, so that every session's cookie would fall due for its refresh
  // (a minute) within the count, and whether a sweep fell in it would depend on the machine.
  const start = Date.now();
  let clock = start;
  const now = (): number => clock;
  let listener: Listener;
  let storage: Lib.Storage | undefined;
  if (name === 'floor') listener = floor();
  else {
    storage = name === 'MemoryStorage' ? new MemoryStorage({ now }) : new FileStorage({ path: join(dir, 'sessions'), now });
    listener = bare(Server, storage, now);
  }
  const subject = await prepare(name, listener, SESSIONS);
  const run = async (from: number, to: number): Promise<void> => {
    for (let i = from; i < to; i++) {
      clock = start + Math.floor(i / 10);
      await request(subject, scenario, i);
    }
  };
  await run(0, WARMUP);
  process.cpuUsage(); // the count starts (callgrind dumps what came before)
  await run(WARMUP, WARMUP + REQUESTS);
  process.cpuUsage(); // and ends
  await storage?.close?.();
  rmSync(dir, { recursive: true, force: true });
  process.stdout.write(`${process.pid}\n`);
} else {
  await main();
}

/** What callgrind counted in one process, per request. */
interface Counted {
  readonly instructions: number;
  readonly cycles: number;
  /** Estimated cycles per function (self), with `--profile`. */
  readonly functions?: Map<string, number> | undefined;
}

/** Estimated cycles of one cost line of callgrind with `--cache-sim=yes --branch-sim=yes`, whose events are, in order, Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw Bc Bcm Bi Bim. */
function cycles(e: readonly number[]): number {
  const at = (i: number): number => e[i] ?? 0;
  return at(0) + 10 * (at(3) + at(4) + at(5)) + 100 * (at(6) + at(7) + at(8)) + 15 * (at(10) + at(12));
}

async function count(name: string, scenario: Scenario): Promise<Counted> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-callgrind-'));
  try {
    const out = join(dir, 'callgrind.out');
    const valgrind = ['--tool=callgrind', '--cache-sim=yes', '--branch-sim=yes', '--separate-threads=yes', '--dump-before=uv_getrusage', `--callgrind-out-file=${out}`];
    if (args.profile) valgrind.push('--dump-instr=yes', '--dump-line=no');
    valgrind.push(...(process.env['BENCH_VALGRIND'] ?? '').split(' ').filter(Boolean));
    const node = ['--single-threaded', ...(args.profile ? ['--perf-basic-prof'] : []), '--import', 'tsx', fileURLToPath(import.meta.url)];
    const { stdout } = await promisify(execFile)('valgrind', [...valgrind, process.execPath, ...node, '--child', `${name} ${scenario}`, '--requests', String(REQUESTS), '--sessions', String(SESSIONS)], { maxBuffer: 1 << 26 });
    // Part 2 of thread 1: from the first process.cpuUsage() to the second.
    const text = readFileSync(`${out}.2-01`, 'utf8');
    const totals = /^totals: (.*)$/m.exec(text)?.[1]?.split(' ').map(Number);
    if (totals === undefined) throw new Error(`${name} ${scenario}: callgrind wrote no totals`);
    let functions: Map<string, number> | undefined;
    if (args.profile) {
      const pid = stdout.trim();
      const map = `/tmp/perf-${pid}.map`;
      functions = selfCosts(text, existsSync(map) ? readFileSync(map, 'utf8') : '');
      rmSync(map, { force: true });
    }
    return { instructions: (totals[0] ?? 0) / REQUESTS, cycles: cycles(totals) / REQUESTS, functions };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Each function's own estimated cycles per request, from a callgrind file written with
 * `--dump-instr=yes --dump-line=no`: native functions by callgrind's name; JIT code (which
 * callgrind knows only by address) by the perf map's name for the address, the latest entry
 * that covers it.
 */
function selfCosts(text: string, perfMap: string): Map<string, number> {
  const ranges = perfMap
    .split('\n')
    .filter(Boolean)
    .map((line, order) => {
      const [start, size, ...name] = line.split(' ');
      return { start: parseInt(start as string, 16), end: parseInt(start as string, 16) + parseInt(size as string, 16), name: name.join(' '), order };
    })
    .sort((a, b) => a.start - b.start);
  const jsName = (addr: number): string => {
    // The last range starting at or before addr, and the few before it (ranges overlap when code is freed and replaced).
    let lo = 0;
    let hi = ranges.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((ranges[mid] as { start: number }).start <= addr) lo = mid + 1;
      else hi = mid;
    }
    let best: { name: string; order: number } | undefined;
    for (let i = lo - 1; i >= 0 && i >= lo - 50; i--) {
      const r = ranges[i] as (typeof ranges)[number];
      if (addr < r.end && (best === undefined || r.order > best.order)) best = r;
    }
    return best === undefined ? '(JIT code, unnamed)' : best.name;
  };
  const names = new Map<string, string>();
  const costs = new Map<string, number>();
  let fn = '';
  let pos = 0;
  let callCost = false;
  for (const line of text.split('\n')) {
    const named = /^c?fn=\((\d+)\)(?: (.*))?$/.exec(line);
    if (named !== null) {
      if (named[2] !== undefined) names.set(named[1] as string, named[2]);
      if (line.startsWith('fn=')) fn = names.get(named[1] as string) ?? '';
      continue;
    }
    if (line.startsWith('calls=')) {
      callCost = true;
      continue;
    }
    const cost = /^(0x[0-9a-f]+|[+-](?:0x[0-9a-f]+|\d+)|\*|\d+)((?: \d+)*)$/.exec(line);
    if (cost === null) continue;
    const p = cost[1] as string;
    if (p.startsWith('0x')) pos = parseInt(p, 16);
    else if (p[0] === '+') pos += Number(p.slice(1));
    else if (p[0] === '-') pos -= Number(p.slice(1));
    else if (p !== '*') pos = Number(p);
    // The line after calls= is the call's inclusive cost: not the caller's own.
    if (callCost) {
      callCost = false;
      continue;
    }
    const key = fn.startsWith('0x') ? jsName(pos) : fn;
    costs.set(key, (costs.get(key) ?? 0) + cycles((cost[2] as string).trim().split(' ').map(Number)) / REQUESTS);
  }
  return costs;
}

async function main(): Promise<void> {
  if (!(process.env['PATH'] ?? '').split(':').some((d) => d !== '' && existsSync(join(d, 'valgrind')))) {
    console.error('instructions.ts needs valgrind: apt-get install valgrind');
    process.exit(2);
  }
  // --only 'MemoryStorage write': that subject and scenario, and the floor's same scenario.
  const [onlyName, onlyScenario] = args.only?.split(' ') ?? [];
  const jobs: { name: string; scenario: Scenario }[] = [];
  for (const scenario of SCENARIOS) {
    for (const name of SUBJECTS) {
      if (name === 'FileStorage' && scenario !== 'read') continue; // disk-bound, as in run.ts and inproc.ts
      if (args.only !== undefined && (scenario !== onlyScenario || (name !== 'floor' && name !== onlyName))) continue;
      jobs.push({ name, scenario });
    }
  }
  if (!jobs.some((job) => job.name !== 'floor')) {
    console.error(`--only ${JSON.stringify(args.only)} names no subject and scenario counted here: one of ${SUBJECTS.slice(1).flatMap((n) => SCENARIOS.filter((sc) => n !== 'FileStorage' || sc === 'read').map((sc) => `'${n} ${sc}'`)).join(', ')}`);
    process.exit(2);
  }
  // Two at a time: the counts do not depend on what else runs.
  const results = new Map<string, Counted>();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < jobs.length) {
      const job = jobs[next++] as (typeof jobs)[number];
      results.set(`${job.name} ${job.scenario}`, await count(job.name, job.scenario));
    }
  };
  await Promise.all([worker(), worker()]);
  const lines = [
    TITLE,
    '',
    `Written by \`npm run bench:instructions\` (bench/instructions.ts) on ${new Date().toISOString()}, Node ${process.version}: per request, counted by valgrind's callgrind over ${REQUESTS} requests after ${WARMUP} to warm up, Node with \`--single-threaded\` (V8 compiles and collects on the main thread, the one counted); the in-memory \`node:http\` stack of bench/stack.ts (as bench/inproc.ts), no kernel and no load generator.`,
    '',
    '- Instructions: what the CPU executed. Estimated cycles: instructions + 10 per first-level cache miss + 100 per last-level miss + 15 per mispredicted branch, from callgrind\'s simulation of the caches and branch predictors. The same weights for the floor and the subjects; a subject\'s count moves by about 1 % from run to run, its ratio to the floor by one or two hundredths',
    '- Counted, not timed: the machine\'s load does not change them. They are the library\'s own work against the floor\'s; under wrk the kernel\'s and the real caches\' costs come on top (see "Why some targets are not met")',
    '- The library\'s clock moves 0.1 ms a request (see instructions.ts), so that cookie refreshes and sweeps fall as often as under a real load',
    '- Reads and writes only. New sessions grow the heap, and the count of 2,000 of them is decided by whether V8 marks the heap for a full collection among them (it did for MemoryStorage: 1.87× the floor\'s cycles, three quarters of the extra in marking; and did for both after a collection forced before the count: 1.75×); the timed benchmarks, over seconds of them, measure new sessions',
    '- Where the difference is: `npm run bench:instructions -- --only \'MemoryStorage write\' --profile`',
    '',
    '| | read | write |',
    '|---|---:|---:|',
  ];
  for (const name of SUBJECTS) {
    const cells = SCENARIOS.map((scenario) => {
      const x = results.get(`${name} ${scenario}`);
      const f = results.get(`floor ${scenario}`);
      if (x === undefined || f === undefined) return '–';
      if (name === 'floor') return `${Math.round(x.instructions).toLocaleString('en')} instructions, ${Math.round(x.cycles).toLocaleString('en')} cycles`;
      return `${(x.instructions / f.instructions).toFixed(3)}× instructions, **${(x.cycles / f.cycles).toFixed(3)}× cycles** (+${Math.round(x.cycles - f.cycles).toLocaleString('en')})`;
    });
    lines.push(`| ${name} | ${cells.join(' | ')} |`);
  }
  console.log(lines.join('\n'));
  if (args.only === undefined && !args['no-write']) {
    const file = fileURLToPath(new URL('RESULTS.md', import.meta.url));
    writeFileSync(file, putSection(readFileSync(file, 'utf8'), TITLE, lines.join('\n'), /^## Why\b/m));
    console.log(`\nwrote the "${TITLE.slice(3)}" section of ${file}`);
  }
  if (!args.profile) return;
  for (const [key, x] of results) {
    if (key.startsWith('floor ')) continue;
    const f = results.get(`floor ${key.split(' ')[1]}`)?.functions ?? new Map<string, number>();
    const own = x.functions ?? new Map<string, number>();
    const rows = [...new Set([...own.keys(), ...f.keys()])].map((k) => ({ k, extra: (own.get(k) ?? 0) - (f.get(k) ?? 0), own: own.get(k) ?? 0 }));
    rows.sort((a, b) => Math.abs(b.extra) - Math.abs(a.extra));
    console.log(`\n${key}: estimated cycles per request by function (its own, not its callees'), against the floor's; largest differences first`);
    console.log('| extra | this | function |\n|---:|---:|---|');
    for (const r of rows.slice(0, Number(args.top))) console.log(`| ${Math.round(r.extra)} | ${Math.round(r.own)} | ${r.k.slice(0, 120).replaceAll('|', '\\|')} |`);
  }
}
