/**
 * `npm run test:crash`: 100 rounds of kill -9 at a random moment during concurrent writes over
 * many sessions. Exits non-zero if any acknowledged write was lost or any file is unreadable.
 * ROUNDS in the environment changes the count.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crashRounds } from './crash-lib.js';

const rounds = Number(process.env['ROUNDS'] ?? 100);
const dir = mkdtempSync(join(tmpdir(), 'bare-session-crash-'));
const started = Date.now();
try {
  const r = await crashRounds(dir, rounds, { seed: Number(process.env['SEED'] ?? 0x5eed) });
  for (const d of r.details.slice(0, 20)) console.log(`  ${d}`);
  console.log(`crash: ${r.rounds} rounds, ${r.acknowledged} acknowledged writes, ${r.lost} lost, ${r.unreadable} unreadable (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  console.log(`${r.rounds - r.failedRounds} passed, ${r.failedRounds} failed`);
  process.exitCode = r.failedRounds > 0 ? 1 : 0;
} finally {
  rmSync(dir, { recursive: true, force: true });
}
