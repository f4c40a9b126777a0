/**
 * Runs a TypeScript program in a child process, for the tests that need a real second process:
 * `run()` and its signals, the examples, crashes, a lock held by another process.
 *
 * ```ts
 * const c = startChild('test/fixtures/run-server.ts', { t, env: { PORT: '0' } });
 * const [, port] = await c.line(/listening on http:\/\/127\.0\.0\.1:(\d+)\n/);
 * // … talk to Number(port) …
 * const { code, signal, stdout, stderr } = await c.stop('SIGTERM');
 * ```
 *
 * The child is `node --import tsx <file> ...args` in the project's root, with the test's
 * environment plus `env`. Its stdout and stderr are collected (never shown unless a test fails
 * with them), and every wait is bounded: when the child is still running `safetyMs` after it
 * started, it is killed with SIGKILL and every wait on it ({@link Child.exited},
 * {@link Child.line}, {@link Child.nextLine}, {@link Child.stop}) rejects with an error that says
 * so and shows what the child printed. A hang is then a failure with a name, not a silent wait
 * until the runner's timeout.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { isAbsolute, join } from 'node:path';
import type { TestContext } from 'node:test';

/** The project's root: where children run, and what a relative `file` is relative to. */
export const ROOT = join(import.meta.dirname, '..');

/** Options of {@link startChild}. */
export interface ChildOptions {
  /** Arguments after the file. */
  args?: readonly string[];
  /** Node flags before `--import tsx` (`--expose-gc`, say). */
  nodeArgs?: readonly string[];
  /** Added to the test's own environment; a key set to `undefined` is removed from it. */
  env?: Readonly<Record<string, string | undefined>>;
  /** The working folder; the project's root by default. */
  cwd?: string;
  /** `'pipe'` to write to the child's stdin ({@link Child.proc}`.stdin`); `'ignore'` by default. */
  stdin?: 'pipe' | 'ignore';
  /**
   * How long the child may run, in ms, before the safety kill (SIGKILL) fails every wait on it;
   * 15 s by default. `Infinity` for none (a soak run that ends itself).
   */
  safetyMs?: number;
  /** When given, the child is killed (SIGKILL) after the test if still running: no orphan outlives a failed test. */
  t?: TestContext;
}

/** How a child ended, and everything it printed. */
export interface ChildExit {
  /** The exit code, or `null` when a signal ended it. */
  code: number | null;
  /** The signal that ended it, or `null` when it exited by itself. */
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** A running child: see {@link startChild}. */
export interface Child {
  /** The process, to send it signals or write to its stdin (with `stdin: 'pipe'`). */
  readonly proc: ChildProcess;
  /** All it printed on stdout so far. */
  readonly stdout: string;
  /** All it printed on stderr so far. */
  readonly stderr: string;
  /** Both streams so far, in the order the chunks arrived. */
  readonly output: string;
  /**
   * Resolves once the child exited, with its code or signal and what it printed; rejects when
   * the safety kill ended it. (A rejection nobody awaits is not reported as unhandled.)
   */
  readonly exited: Promise<ChildExit>;
  /**
   * Resolves with the match once `re` matches what `from` printed so far (stdout by default;
   * `'output'` for both streams). Rejects when the child exits first, or the safety kill fires.
   * `re` is matched against the whole text, so `^` needs the `m` flag to match at a line's start.
   */
  line(re: RegExp, from?: 'stdout' | 'stderr' | 'output'): Promise<RegExpExecArray>;
  /**
   * The next whole line of stdout, without its `\n`, each line once, in order (for a child that
   * answers line by line). Rejects when the child exits with no line left, or at the safety kill.
   */
  nextLine(): Promise<string>;
  /** Sends `signal` (SIGTERM by default) unless it has exited already, and resolves as {@link exited} does. */
  stop(signal?: NodeJS.Signals): Promise<ChildExit>;
}

/**
 * Starts `node --import tsx <file>` (a path relative to the project's root, or absolute): see
 * the module's documentation.
 */
export function startChild(file: string, options: ChildOptions = {}): Child {
  const { args = [], nodeArgs = [], cwd = ROOT, stdin = 'ignore', safetyMs = 15_000, t } = options;
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const [key, value] of Object.entries(options.env ?? {})) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  const path = isAbsolute(file) ? file : join(ROOT, file);
  const proc = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', path, ...args], { cwd, env, stdio: [stdin, 'pipe', 'pipe'] });

  let stdout = '';
  let stderr = '';
  let output = '';
  /** Complete stdout lines not yet taken by nextLine(), and the unfinished tail. */
  const lines: string[] = [];
  let tail = '';
  /** Called after every chunk and at the exit, so that waits look again. */
  const listeners = new Set<() => void>();
  const wake = (): void => {
    for (const listener of [...listeners]) listener();
  };
  proc.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
    output += chunk;
    const parts = (tail + chunk).split('\n');
    tail = parts.pop() ?? '';
    lines.push(...parts);
    wake();
  });
  proc.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
    output += chunk;
    wake();
  });

  const name = file;
  const printed = (): string => `\n--- stdout:\n${stdout}\n--- stderr:\n${stderr}`;
  let safetyKilled = false;
  const safety = Number.isFinite(safetyMs)
    ? setTimeout(() => {
        safetyKilled = true;
        proc.kill('SIGKILL');
      }, safetyMs)
    : undefined;
  /** Set once the child exited (and its streams ended), with the error the waits reject with, if any. */
  let ended: { exit: ChildExit; error: Error | undefined } | undefined;
  const exited = new Promise<ChildExit>((resolve, reject) => {
    // 'close', not 'exit': once the streams are drained too, so the result holds all the output.
    proc.once('close', (code: number | null, signal: NodeJS.Signals | null) => {
      clearTimeout(safety);
      if (tail !== '') lines.push(tail);
      tail = '';
      const exit = { code, signal, stdout, stderr };
      const error = safetyKilled ? new Error(`${name} was still running after ${safetyMs} ms: the safety kill (SIGKILL) ended it${printed()}`) : undefined;
      ended = { exit, error };
      wake();
      if (error === undefined) resolve(exit);
      else reject(error);
    });
    proc.once('error', (e) => {
      clearTimeout(safety);
      const error = new Error(`${name} could not be started: ${e.message}`, { cause: e });
      ended ??= { exit: { code: null, signal: null, stdout, stderr }, error };
      wake();
      reject(error);
    });
  });
  exited.catch(() => undefined);
  t?.after(() => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  });

  /** Resolves with `look()`'s first defined answer, looking after each chunk; rejects at the exit. */
  const waitUntil = <T>(look: () => T | undefined, what: string): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const check = (): void => {
        const found = look();
        if (found !== undefined) {
          listeners.delete(check);
          resolve(found);
        } else if (ended !== undefined) {
          listeners.delete(check);
          reject(ended.error ?? new Error(`${name} exited (code ${ended.exit.code}, signal ${ended.exit.signal}) before ${what}${printed()}`));
        }
      };
      listeners.add(check);
      check();
    });

  return {
    proc,
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
    get output() {
      return output;
    },
    exited,
    line(re, from = 'stdout') {
      const text = (): string => (from === 'stdout' ? stdout : from === 'stderr' ? stderr : output);
      return waitUntil(() => re.exec(text()) ?? undefined, `printing ${re} on ${from}`);
    },
    nextLine() {
      return waitUntil(() => lines.shift(), 'printing another line');
    },
    stop(signal = 'SIGTERM') {
      if (ended === undefined && proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
  };
}
