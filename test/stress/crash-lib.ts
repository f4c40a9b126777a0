/**
 * The crash harness: starts the crash server, writes concurrently over many sessions, kills the
 * server with SIGKILL once a random number of writes were acknowledged, and checks that every
 * acknowledged write survived and every file reads. Used by `npm run test:crash` (100 rounds)
 * and by a short version in `npm test`.
 */
import { readdirSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import { FileStorage } from '../../lib/index.js';
import { startChild } from '../child.js';
import { prng } from '../prng.js';

const SERVER = join(import.meta.dirname, '..', 'fixtures', 'file-crash-server.ts');

/** What a run found. */
export interface CrashReport {
  rounds: number;
  /** Rounds that lost a write or left an unreadable file. */
  failedRounds: number;
  acknowledged: number;
  lost: number;
  unreadable: number;
  details: string[];
}

interface Writer {
  /** Session id, once the first write of the session was acknowledged. */
  id: string | undefined;
  key: string;
  /** Highest value acknowledged for `key`. */
  acked: number;
  next: number;
}

function write(agent: Agent, port: number, w: Writer): Promise<string | undefined> {
  return new Promise((resolve) => {
    const req = request(
      { host: '127.0.0.1', port, path: `/set/${w.key}/${w.next}`, agent, headers: w.id === undefined ? {} : { cookie: `sid=${w.id}` } },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve(res.statusCode === 200 ? body : undefined));
        res.on('error', () => resolve(undefined));
      },
    );
    req.on('error', () => resolve(undefined));
    req.end();
  });
}

/**
 * Runs `rounds` rounds of: start the server (its storage on `writerThreads` writer threads), write
 * from `sessions` × 2 concurrent writers (two keys per session), SIGKILL it after a random number
 * of acknowledgements, then open the folder with a new `FileStorage` (taking over the dead
 * server's lock) and check every acknowledged value (or a later one) is there.
 */
export async function crashRounds(
  dir: string,
  rounds: number,
  { sessions = 12, seed = 0x5eed, minAcks = 20, maxAcks = 400, writerThreads = 4 } = {},
): Promise<CrashReport> {
  const rand = prng(seed);
  const report: CrashReport = { rounds: 0, failedRounds: 0, acknowledged: 0, lost: 0, unreadable: 0, details: [] };
  const writers: Writer[] = [];
  for (let i = 0; i < sessions; i++) {
    const first: Writer = { id: undefined, key: `a${i}`, acked: -1, next: 0 };
    writers.push(first, { id: undefined, key: `b${i}`, acked: -1, next: 0 });
  }
  for (let round = 0; round < rounds; round++) {
    // No safety kill: every round ends with the test's own kill -9.
    const child = startChild(SERVER, { args: [dir, String(writerThreads)], safetyMs: Infinity });
    const port = Number((await child.line(/port (\d+)/))[1]);
    const agent = new Agent({ keepAlive: true, maxSockets: 64 });
    const target = minAcks + Math.floor(rand() * (maxAcks - minAcks));
    let acks = 0;
    let killed = false;
    const loop = async (pair: [Writer, Writer]): Promise<void> => {
      const [a, b] = pair;
      // The first writer of a session creates it; then both write concurrently under one id.
      while (!killed && a.id === undefined) {
        const id = await write(agent, port, a);
        if (id === undefined) return;
        a.id = id;
        b.id = id;
        a.acked = a.next++;
      }
      const run = async (w: Writer): Promise<void> => {
        while (!killed) {
          const value = w.next++;
          const id = await write(agent, port, w);
          if (id === undefined) return;
          if (id !== w.id) throw new Error(`write of an existing session came back under another id`);
          w.acked = value;
          report.acknowledged++;
          if (++acks >= target && !killed) {
            killed = true;
            child.proc.kill('SIGKILL');
          }
        }
      };
      await Promise.all([run(a), run(b)]);
    };
    const pairs: [Writer, Writer][] = [];
    for (let i = 0; i < writers.length; i += 2) pairs.push([writers[i] as Writer, writers[i + 1] as Writer]);
    await Promise.all(pairs.map(loop));
    if (!killed) child.proc.kill('SIGKILL');
    await child.exited;
    agent.destroy();
    report.rounds++;
    // Restart: a new storage on the same folder must hold every acknowledged write.
    const before = report.lost + report.unreadable;
    const errors: Error[] = [];
    const storage = new FileStorage({ path: dir, onError: (e) => errors.push(e) });
    for (const w of writers) {
      if (w.id === undefined) continue;
      const data = await storage.get(w.id);
      const value = data?.[w.key];
      if (data === undefined) {
        report.lost++;
        report.details.push(`round ${round}: session of ${w.key} missing`);
      } else if (w.acked >= 0 && (typeof value !== 'number' || value < w.acked)) {
        report.lost++;
        report.details.push(`round ${round}: ${w.key} = ${String(value)}, acknowledged ${w.acked}`);
      }
    }
    await storage.close();
    report.unreadable += errors.length + countBad(dir);
    for (const e of errors) report.details.push(`round ${round}: ${e.message}`);
    if (report.lost + report.unreadable > before) report.failedRounds++;
  }
  return report;
}

function countBad(dir: string): number {
  let n = 0;
  for (const shard of readdirSync(dir).filter((name) => /^[0-9a-f]{2}$/.test(name))) {
    for (const name of readdirSync(join(dir, shard))) if (name.endsWith('.bad')) n++;
  }
  return n;
}
