/**
 * RSS of 1 000 000 sessions of `{ time }` in plain node (no tsx), the way a built app runs:
 * MemoryStorage from dist/ (run `npm run build` at the root first), or a plain Map of the same
 * ids and objects, for scale. One process each:
 *   node --expose-gc bench/memory-1m.mjs storage
 *   node --expose-gc bench/memory-1m.mjs map
 */
import { randomBytes } from 'node:crypto';

const COUNT = 1_000_000;
const what = process.argv[2] ?? 'storage';
const base = 1_763_778_000;
globalThis.gc?.();
const before = process.memoryUsage().rss;
let held;
if (what === 'map') {
  const map = new Map();
  for (let i = 0; i < COUNT; i++) map.set(randomBytes(32).toString('base64url'), { time: base + (i % 100_000) });
  held = map;
} else {
  const { MemoryStorage, generateId } = await import('../dist/index.js');
  const storage = new MemoryStorage({ max: COUNT, sweepInterval: '1h' });
  for (let i = 0; i < COUNT; i++) await storage.set(generateId(), { time: base + (i % 100_000) }, 3_600_000);
  held = storage;
}
globalThis.gc?.();
const u = process.memoryUsage();
const mb = (b) => (b / 2 ** 20).toFixed(0);
console.log(`${what === 'map' ? 'plain Map' : 'MemoryStorage (dist/)'}, ${COUNT.toLocaleString('en')} sessions: RSS ${mb(u.rss)} MB (${mb(before)} MB before), heap ${mb(u.heapUsed)} MB, held ${held.size}`);
await held.close?.();
