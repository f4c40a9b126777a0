/**
 * The storage contract (lib/testing.ts, published as `bare-session/testing`) run against every
 * storage of the library, and against a minimal storage without the optional methods.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { FileStorage, MemoryStorage } from '../../lib/index.js';
import type { SessionData, Storage } from '../../lib/storage/storage.js';
import { storageContract } from '../../lib/testing.js';
import { Clock } from '../helpers.js';

{
  const clock = new Clock();
  storageContract('MemoryStorage', { create: () => new MemoryStorage({ now: clock.now }), advance: (ms) => clock.advance(ms) });
}

{
  // One temporary folder per storage, inside one removed after the file's tests (each storage is
  // closed by the contract after its test, so nothing writes there by then).
  const root = mkdtempSync(join(tmpdir(), 'bare-session-contract-'));
  after(() => rmSync(root, { recursive: true, force: true }));
  let n = 0;
  const clock = new Clock();
  storageContract('FileStorage', {
    create: () => new FileStorage({ path: join(root, String(n++)), now: clock.now, writerThreads: 0 }),
    advance: (ms) => clock.advance(ms),
  });
}

/** The smallest storage a user could write: a Map with expiry, no patch, no configure. */
class MinimalStorage implements Storage {
  readonly #map = new Map<string, { data: SessionData; expiresAt: number }>();
  constructor(readonly now: () => number) {}
  async get(id: string): Promise<SessionData | undefined> {
    const e = this.#map.get(id);
    if (e === undefined || e.expiresAt <= this.now()) return undefined;
    return JSON.parse(JSON.stringify(e.data)) as SessionData;
  }
  async set(id: string, data: SessionData, ttlMs: number): Promise<void> {
    this.#map.set(id, { data: JSON.parse(JSON.stringify(data)) as SessionData, expiresAt: this.now() + ttlMs });
  }
  async touch(id: string, ttlMs: number): Promise<void> {
    const e = this.#map.get(id);
    if (e !== undefined && e.expiresAt > this.now()) e.expiresAt = this.now() + ttlMs;
  }
  async remove(id: string): Promise<void> {
    this.#map.delete(id);
  }
}

{
  const clock = new Clock();
  storageContract('a minimal storage of a user', { create: () => new MinimalStorage(clock.now), advance: (ms) => clock.advance(ms), touchTells: false });
}
