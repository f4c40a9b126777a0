/**
 * A real `redis-server` for the tests of RedisStorage: started on a free port in a temporary
 * folder, stopped (and the folder removed) after the tests. Without `redis-server` on the
 * machine, {@link redisMissing} gives the reason to skip, loudly; with `CI` set it throws, so a
 * CI run can never skip these tests.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, type TestContext } from 'node:test';
import { createClient } from 'redis';
import { RedisStorage } from '../lib/storage/redis.js';
import type { Storage } from '../lib/storage/storage.js';

const INSTALL = 'apt-get install -y redis-server';

/** Whether an executable is on the PATH. */
function has(command: string): boolean {
  try {
    execFileSync(command, ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

let checked: string | false | undefined;

/**
 * `false` when `redis-server` and `redis-cli` are installed; otherwise the reason to skip, after
 * printing it loudly. With `CI` set, throws instead: CI must run the Redis tests.
 */
export function redisMissing(): string | false {
  if (checked !== undefined) return checked;
  if (has('redis-server') && has('redis-cli')) return (checked = false);
  const ci = process.env['CI'];
  if (ci !== undefined && ci !== '' && ci !== 'false') {
    throw new Error(`CI is set but redis-server is not installed (${INSTALL}; .ci/run does it): the RedisStorage tests never skip in CI.`);
  }
  const reason = `redis-server is not installed: the RedisStorage tests are SKIPPED. Install it (${INSTALL}) to run them.`;
  console.error(`\n${'!'.repeat(100)}\n!! ${reason}\n${'!'.repeat(100)}\n`);
  return (checked = reason);
}

/** A free TCP port on 127.0.0.1 whose cluster bus port (port + 10 000) is free too, when asked. */
export async function freePort(withBus = false): Promise<number> {
  for (;;) {
    const port = await listenAndClose(0);
    if (!withBus || port + 10_000 > 65_535) {
      if (!withBus) return port;
      continue;
    }
    try {
      await listenAndClose(port + 10_000);
      return port;
    } catch {
      // The bus port is taken: try another.
    }
  }
}

function listenAndClose(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(port, '127.0.0.1', () => {
      const { port: p } = srv.address() as AddressInfo;
      srv.close(() => resolve(p));
    });
  });
}

/** Options of {@link startRedis}. */
export interface RedisOptions {
  /** Append-only file with `appendfsync always`: every acknowledged write survives a kill. */
  persistent?: boolean;
  /** More `redis-server` arguments. */
  args?: string[];
}

/** A running `redis-server`. */
export class RedisServer {
  readonly port: number;
  readonly dir: string;
  readonly #args: string[];
  #child: ChildProcess | undefined;
  #log = '';

  private constructor(port: number, dir: string, args: string[]) {
    this.port = port;
    this.dir = dir;
    this.#args = args;
  }

  /** Starts a server on a free port, in a fresh temporary folder. */
  static async start(options: RedisOptions = {}): Promise<RedisServer> {
    for (let attempt = 1; ; attempt++) {
      const cluster = options.args?.includes('--cluster-enabled') === true;
      const port = await freePort(cluster);
      const dir = mkdtempSync(join(tmpdir(), 'bare-session-redis-'));
      const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--logfile', '', '--daemonize', 'no'];
      args.push(...(options.persistent === true ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no']));
      args.push(...(options.args ?? []));
      const server = new RedisServer(port, dir, args);
      try {
        await server.restart();
        return server;
      } catch (err) {
        rmSync(dir, { recursive: true, force: true });
        // Another process took the port between the probe and the start: try another.
        if (attempt >= 5 || !/Address already in use/.test(String(err))) throw err;
      }
    }
  }

  /** `redis://127.0.0.1:port`. */
  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Whether the process is running. */
  get running(): boolean {
    return this.#child !== undefined;
  }

  /** Starts the process (again, after a kill: same port, same folder, same files). */
  async restart(): Promise<void> {
    if (this.#child !== undefined) throw new Error('redis-server is already running');
    this.#log = '';
    const child = spawn('redis-server', this.#args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.#child = child;
    child.once('exit', () => {
      if (this.#child === child) this.#child = undefined;
    });
    await new Promise<void>((resolve, reject) => {
      const onData = (chunk: Buffer): void => {
        this.#log = (this.#log + chunk.toString()).slice(-4000);
        if (/Ready to accept connections/.test(this.#log)) resolve();
      };
      child.stdout?.on('data', onData);
      child.stderr?.on('data', onData);
      child.once('exit', (code, signal) => reject(new Error(`redis-server exited (${code ?? signal}) before it was ready: ${this.#log}`)));
      child.once('error', reject);
    });
  }

  /** Kills the process at once (SIGKILL), as a crash would, and waits for its exit. */
  async kill(): Promise<void> {
    const child = this.#child;
    if (child === undefined) return;
    const exited = once(child, 'exit');
    child.kill('SIGKILL');
    await exited;
  }

  /** Stops the process and removes its folder. */
  async stop(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Runs `redis-cli` against this server and returns its output. */
  cli(...args: string[]): string {
    return execFileSync('redis-cli', ['-h', '127.0.0.1', '-p', String(this.port), ...args], { encoding: 'utf8' });
  }
}

/** A test's clock, as test/helpers.ts's `Clock` is. */
interface MovableClock {
  readonly now: () => number;
  advance(ms: number): void;
}

/**
 * Shortens the time to live of every key matching ARGV[1] by ARGV[2] ms, deleting those it
 * ends: Redis's clock, moved as the test's.
 */
const SHORTEN = `
local ms = tonumber(ARGV[2])
for _, key in ipairs(redis.call('KEYS', ARGV[1])) do
  local ttl = redis.call('PTTL', key)
  if ttl > 0 then
    if ttl <= ms then redis.call('DEL', key) else redis.call('PEXPIRE', key, ttl - ms) end
  end
end
return 0
`;

/**
 * The RedisStorage entry of test/features.test.ts's `STORAGES` (in a list, empty when
 * redis-server is missing, which {@link redisMissing} says loudly). Call it at the top level of
 * the test file: one redis-server serves the file, started by the first test that makes a
 * storage and stopped after the file's last test. Each storage has a prefix of its own and the
 * test's clock (its rate limits and the expiries it reports); and since Redis expires keys on
 * its own clock, the clock's `advance` moves Redis's too, at once (a script sent by `redis-cli`,
 * synchronously, as `advance` is), shortening the life of the test's keys as the storage
 * contract's `advance` does.
 */
export function redisFeatureStorages(): { name: string; make: (clock: MovableClock, t: TestContext) => Storage }[] {
  if (redisMissing() !== false) return [];
  let started: Promise<{ redis: RedisServer; client: { sendCommand(args: string[]): Promise<unknown>; close(): Promise<void> } }> | undefined;
  let redis: RedisServer | undefined;
  after(async () => {
    if (started === undefined) return;
    const { client } = await started;
    await client.close();
    await redis?.stop();
  });
  let n = 0;
  const make = (clock: MovableClock, t: TestContext): Storage => {
    started ??= (async () => {
      redis = await RedisServer.start();
      return { redis, client: await createClient({ url: redis.url }).connect() };
    })();
    const ready = started;
    const prefix = `features-${++n}:`;
    const storage = new RedisStorage({ client: async (args) => (await ready).client.sendCommand(args), prefix, now: clock.now });
    const advance = clock.advance.bind(clock);
    clock.advance = (ms: number): void => {
      advance(ms);
      // Before the server started, there is no key to shorten.
      redis?.cli('EVAL', SHORTEN, '0', `${prefix}*`, String(ms));
    };
    t.after(() => storage.close());
    return storage;
  };
  return [{ name: 'RedisStorage', make }];
}
