/**
 * The mutation check: plants each mutant of test/mutants/mutants.ts (a small, plausible bug, as a
 * source edit) in a scratch copy of the project, runs the mutant's test files, and reports
 * whether the suite noticed. Run on demand, not in CI:
 *
 * ```sh
 * npm run test:mutants                      # every mutant
 * npm run test:mutants -- --only lock-no-wait,session-merge-loaded-copy
 * npm run test:mutants -- --check           # only checks that every mutant still applies
 * npm run test:mutants -- --list            # lists the mutants
 * ```
 *
 * Other options: `--verbose` (the tail of each run's output), `--keep` (keeps the scratch
 * copy), `--skip-baseline` (does not run the unmutated files first), `--timeout <seconds>` (per
 * test file, default 180; a run past it counts as killed).
 *
 * How it works:
 * - One scratch copy, made once, under the system's temporary folder: lib/, test/, examples/,
 *   package.json and tsconfig.json copied, node_modules linked. The working tree is never
 *   written to.
 * - Every mutant is checked first: its `find` must occur exactly once in its file, the mutated
 *   file must parse, and its test files must exist. A mutant that no longer applies stops the run
 *   (fix it, never skip it).
 * - Baseline: every test file the selected mutants use runs once unmutated and must pass (once
 *   more on a failure, to tell a flaky file from a broken one; a file that fails twice stops the
 *   run, as every mutant it would kill would count for nothing).
 * - Each mutant: the edit is applied, its test files run one at a time in the order listed
 *   (`node --import tsx --test --test-timeout=60000 <file>`, with test/mutants/bail-reporter.mjs,
 *   which ends a run at its first failing test), stopping at the first file that fails (the
 *   mutant is killed, by that file and test), and the file is restored.
 * - At the end: a table (id, file, result, killing test file, time) and the score. The exit code
 *   is 1 when a mutant survived that is not marked `equivalent`, 2 when a mutant does not apply,
 *   3 when the baseline fails.
 */
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, sep } from 'node:path';
import ts from 'typescript';
import { MUTANTS, type Mutant } from './mutants.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
/** What the scratch copy holds: copied (node_modules is linked). */
const COPIED = ['lib', 'test', 'examples', 'package.json', 'tsconfig.json'];
/** The reporter of the test runs (relative to the scratch copy): it stops a run at its first failing test. */
const REPORTER = './test/mutants/bail-reporter.mjs';

interface Args {
  only: Set<string> | undefined;
  check: boolean;
  list: boolean;
  verbose: boolean;
  keep: boolean;
  baseline: boolean;
  timeoutMs: number;
}

function parseArgs(argv: readonly string[]): Args {
  const args: Args = { only: undefined, check: false, list: false, verbose: false, keep: false, baseline: true, timeoutMs: 180_000 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--only') {
      args.only ??= new Set();
      for (const id of value().split(',')) if (id !== '') args.only.add(id);
    } else if (a.startsWith('--only=')) {
      args.only ??= new Set();
      for (const id of a.slice('--only='.length).split(',')) if (id !== '') args.only.add(id);
    } else if (a === '--check') args.check = true;
    else if (a === '--list') args.list = true;
    else if (a === '--verbose') args.verbose = true;
    else if (a === '--keep') args.keep = true;
    else if (a === '--skip-baseline') args.baseline = false;
    else if (a === '--timeout') args.timeoutMs = Number(value()) * 1000;
    else throw new Error(`unknown option ${a} (see the notes at the top of test/mutants/run.ts)`);
  }
  if (!(args.timeoutMs > 0)) throw new Error('--timeout needs a positive number of seconds');
  return args;
}

/** How many times `find` occurs in `text` (overlapping occurrences counted). */
function occurrences(text: string, find: string): number {
  let n = 0;
  for (let i = text.indexOf(find); i !== -1; i = text.indexOf(find, i + 1)) n++;
  return n;
}

/** The syntax errors of a TypeScript source, as messages (types are not checked: tsx does not either). */
function syntaxErrors(fileName: string, text: string): string[] {
  const out = ts.transpileModule(text, { fileName, reportDiagnostics: true, compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext } });
  return (out.diagnostics ?? []).map((d) => {
    const where = d.file !== undefined && d.start !== undefined ? `line ${d.file.getLineAndCharacterOfPosition(d.start).line + 1}: ` : '';
    return where + ts.flattenDiagnosticMessageText(d.messageText, ' ');
  });
}

/** Why each mutant cannot be applied in `root`, if any: an empty list when all apply. */
export function problemsOf(mutants: readonly Mutant[], root: string): string[] {
  const problems: string[] = [];
  const ids = new Set<string>();
  for (const m of mutants) {
    if (ids.has(m.id)) problems.push(`${m.id}: the id is used twice`);
    ids.add(m.id);
    if (m.find === m.replace) problems.push(`${m.id}: replace is the same as find`);
    if (m.tests.length === 0) problems.push(`${m.id}: no test files`);
    for (const t of m.tests) if (!existsSync(join(root, t))) problems.push(`${m.id}: test file ${t} does not exist`);
    const path = join(root, m.file);
    if (!existsSync(path)) {
      problems.push(`${m.id}: ${m.file} does not exist`);
      continue;
    }
    const text = readFileSync(path, 'utf8');
    const n = occurrences(text, m.find);
    if (n !== 1) {
      problems.push(`${m.id}: find occurs ${n} times in ${m.file} (expected exactly once): ${JSON.stringify(m.find.length > 120 ? `${m.find.slice(0, 117)}...` : m.find)}`);
      continue;
    }
    // A mutant that does not even parse is no plausible bug: every test file would "kill" it.
    const broken = syntaxErrors(m.file, text.replace(m.find, () => m.replace));
    if (broken.length > 0) problems.push(`${m.id}: the mutated ${m.file} does not parse: ${broken.join('; ')}`);
  }
  return problems;
}

/** Makes the scratch copy of the project. */
function makeScratch(): string {
  const dir = mkdtempSync(join(tmpdir(), 'bare-session-mutants-'));
  for (const name of COPIED) cpSync(join(ROOT, name), join(dir, name), { recursive: true });
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
  return dir;
}

interface RunResult {
  passed: boolean;
  timedOut: boolean;
  ms: number;
  output: string;
  /** The first failing test, as the reporter names it. */
  failed: string | undefined;
}

/** The environment of a test run: none of this process's test runner or coverage settings. */
function childEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env['NODE_TEST_CONTEXT'];
  delete env['NODE_V8_COVERAGE'];
  delete env['NODE_OPTIONS'];
  return env;
}

/** Runs one test file in `cwd`; a run past `timeoutMs` is killed (with everything it started) and fails. */
function runTestFile(cwd: string, file: string, timeoutMs: number): Promise<RunResult> {
  const started = performance.now();
  return new Promise((done) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--test', `--test-reporter=${REPORTER}`, '--test-timeout=60000', file], {
      cwd,
      env: childEnv(),
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    const keep = (chunk: Buffer): void => {
      output += chunk.toString('utf8');
      if (output.length > 200_000) output = output.slice(-100_000);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-(child.pid as number), 'SIGKILL');
      } catch {
        // Gone already.
      }
    }, timeoutMs);
    let exitCode: number | null = null;
    child.on('exit', (code) => {
      exitCode = code;
      // Whatever the test file started (servers, writer threads, child processes) goes with it.
      try {
        process.kill(-(child.pid as number), 'SIGKILL');
      } catch {
        // Nothing left.
      }
    });
    child.on('close', () => {
      clearTimeout(timer);
      const killer = /^KILLED BY: (.*)$/m.exec(output)?.[1]?.split(cwd + sep).join('');
      done({ passed: exitCode === 0 && !timedOut, timedOut, ms: performance.now() - started, output, failed: killer });
    });
  });
}

type Verdict = 'killed' | 'timeout' | 'survived' | 'equivalent';

interface Outcome {
  mutant: Mutant;
  verdict: Verdict;
  killer: string | undefined;
  /** The first failing test of the killing file. */
  test: string | undefined;
  ms: number;
  output: string;
}

/** Applies a mutant in the scratch copy, runs its tests until one fails, and restores the file. */
async function runMutant(scratch: string, m: Mutant, timeoutMs: number): Promise<Outcome> {
  const path = join(scratch, m.file);
  if (!path.startsWith(scratch + sep)) throw new Error(`${m.id}: ${m.file} is outside the scratch copy`);
  const original = readFileSync(path, 'utf8');
  if (occurrences(original, m.find) !== 1) throw new Error(`${m.id}: find no longer occurs exactly once in ${m.file}`);
  const mutated = original.replace(m.find, () => m.replace);
  writeFileSync(path, mutated);
  let ms = 0;
  try {
    for (const test of m.tests) {
      const r = await runTestFile(scratch, test, timeoutMs);
      ms += r.ms;
      if (!r.passed) return { mutant: m, verdict: r.timedOut ? 'timeout' : 'killed', killer: test, test: r.failed, ms, output: r.output };
    }
    return { mutant: m, verdict: m.equivalent === undefined ? 'survived' : 'equivalent', killer: undefined, test: undefined, ms, output: '' };
  } finally {
    writeFileSync(path, original);
    if (readFileSync(path, 'utf8') !== original) throw new Error(`${m.id}: ${m.file} could not be restored in the scratch copy`);
  }
}

function pad(text: string, width: number): string {
  return text.length >= width ? text : text + ' '.repeat(width - text.length);
}

function tail(text: string, lines = 40): string {
  return text.trimEnd().split('\n').slice(-lines).map((l) => `    ${l}`).join('\n');
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  if (args.only !== undefined) {
    const unknown = [...args.only].filter((id) => !MUTANTS.some((m) => m.id === id));
    if (unknown.length > 0) throw new Error(`no mutant named ${unknown.join(', ')} (see --list)`);
  }
  const selected = MUTANTS.filter((m) => args.only === undefined || args.only.has(m.id));
  if (args.list) {
    for (const m of MUTANTS) console.log(`${pad(m.id, 40)} ${pad(m.file, 36)} ${m.why}${m.equivalent === undefined ? '' : ` [equivalent: ${m.equivalent}]`}`);
    return 0;
  }

  // Every mutant must apply to the working tree as it is now: checked there (read only) first.
  const problems = problemsOf(MUTANTS, ROOT);
  if (problems.length > 0) {
    console.error(`${problems.length} mutant(s) do not apply to the working tree; fix them in test/mutants/mutants.ts:`);
    for (const p of problems) console.error(`  ${p}`);
    return 2;
  }
  if (args.check) {
    console.log(`all ${MUTANTS.length} mutants apply (each find occurs exactly once, each mutated file parses, every test file exists)`);
    return 0;
  }

  const scratch = makeScratch();
  console.log(`scratch copy: ${scratch}`);
  const cleanUp = (): void => {
    if (!args.keep) rmSync(scratch, { recursive: true, force: true });
  };
  const onSignal = (): void => {
    cleanUp();
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    // The copy is taken while others may be editing: check again there.
    const copied = problemsOf(selected, scratch);
    if (copied.length > 0) {
      console.error('the scratch copy changed under the run; mutants that do not apply there:');
      for (const p of copied) console.error(`  ${p}`);
      return 2;
    }

    if (args.baseline) {
      const files = [...new Set(selected.flatMap((m) => m.tests))];
      console.log(`baseline: ${files.length} test file(s), unmutated`);
      const broken: string[] = [];
      for (const file of files) {
        let r = await runTestFile(scratch, file, args.timeoutMs);
        if (!r.passed) {
          console.log(`  ${file} failed unmutated (${(r.ms / 1000).toFixed(1)} s); running it again`);
          const first = r;
          r = await runTestFile(scratch, file, args.timeoutMs);
          if (r.passed) console.log(`  ${file} is flaky: it passed the second time. Its first failure:\n${tail(first.output, 25)}`);
        }
        if (!r.passed) {
          broken.push(file);
          console.error(`  ${file} fails unmutated${r.timedOut ? ' (timed out)' : ''}:\n${tail(r.output)}`);
        } else {
          console.log(`  ${pad(file, 48)} ok  ${(r.ms / 1000).toFixed(1)} s`);
        }
      }
      if (broken.length > 0) {
        console.error(`the baseline fails (${broken.join(', ')}): no mutant can be judged against it`);
        return 3;
      }
    }

    const outcomes: Outcome[] = [];
    const started = performance.now();
    for (const [i, m] of selected.entries()) {
      const o = await runMutant(scratch, m, args.timeoutMs);
      outcomes.push(o);
      const where = o.killer === undefined ? '' : ` by ${o.killer}`;
      console.log(`[${i + 1}/${selected.length}] ${pad(m.id, 40)} ${pad(o.verdict, 10)} ${(o.ms / 1000).toFixed(1)} s${where}`);
      if (o.test !== undefined) console.log(`      ${o.test.length > 200 ? `${o.test.slice(0, 197)}...` : o.test}`);
      if (args.verbose && o.output !== '') console.log(tail(o.output));
    }

    const total = (performance.now() - started) / 1000;
    const idW = Math.max(2, ...outcomes.map((o) => o.mutant.id.length));
    const fileW = Math.max(4, ...outcomes.map((o) => o.mutant.file.length));
    const killW = Math.max(9, ...outcomes.map((o) => (o.killer ?? '-').length));
    console.log('');
    console.log(`${pad('id', idW)}  ${pad('file', fileW)}  ${pad('result', 10)}  ${pad('killed by', killW)}  time`);
    for (const o of outcomes) {
      console.log(`${pad(o.mutant.id, idW)}  ${pad(o.mutant.file, fileW)}  ${pad(o.verdict, 10)}  ${pad(o.killer ?? '-', killW)}  ${(o.ms / 1000).toFixed(1)} s`);
    }
    const killed = outcomes.filter((o) => o.verdict === 'killed' || o.verdict === 'timeout');
    const equivalent = outcomes.filter((o) => o.verdict === 'equivalent');
    const survived = outcomes.filter((o) => o.verdict === 'survived');
    const wronglyEquivalent = killed.filter((o) => o.mutant.equivalent !== undefined);
    const judged = outcomes.length - equivalent.length;
    console.log('');
    console.log(`score: ${killed.length} killed of ${outcomes.length} mutants; ${equivalent.length} equivalent; ${killed.length}/${judged} = ${judged === 0 ? '-' : ((100 * killed.length) / judged).toFixed(1)}% of the non-equivalent ones (${total.toFixed(0)} s)`);
    for (const o of equivalent) console.log(`  equivalent: ${o.mutant.id}: ${o.mutant.equivalent}`);
    for (const o of wronglyEquivalent) console.log(`  WARNING: ${o.mutant.id} is marked equivalent but ${o.killer} killed it: drop the mark`);
    for (const o of survived) {
      console.log(`  SURVIVED: ${o.mutant.id} (${o.mutant.file}): ${o.mutant.why}`);
    }
    return survived.length > 0 ? 1 : 0;
  } finally {
    cleanUp();
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
    process.exitCode = 2;
  },
);
