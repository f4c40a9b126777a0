/**
 * RedisStorage on a real Redis Cluster of three masters (three redis-server with
 * `--cluster-enabled yes`, joined by `redis-cli --cluster create`): the storage contract
 * through node-redis's `createCluster` and ioredis's `Cluster`, and sessions spread over every
 * node. Every operation names exactly one key, so no command crosses slots: the owner index is
 * kept with commands of its own, and count() and list() SCAN every master.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { Cluster } from 'ioredis';
import { createClient, createCluster } from 'redis';
import { createHash } from 'node:crypto';
import { RedisStorage } from '../../lib/storage/redis.js';
import type { RedisClient } from '../../lib/storage/redis.js';
import { META } from '../../lib/storage/storage.js';
import { storageContract } from '../../lib/testing.js';
import { Clock } from '../helpers.js';
import { RedisServer, redisMissing } from '../redis-server.js';

const missing = redisMissing();

if (missing !== false) {
  it('RedisStorage on a Redis Cluster', { skip: missing }, () => undefined);
} else {
  const nodes = await Promise.all([0, 1, 2].map(() => RedisServer.start({ args: ['--cluster-enabled', 'yes', '--cluster-node-timeout', '2000'] })));
  const stopNodes = (): Promise<unknown> => Promise.all(nodes.map((n) => n.stop()));
  try {
    execFileSync('redis-cli', ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '0', '--cluster-yes'], { stdio: 'pipe' });
    // `--cluster create` returns once the slots are assigned and the nodes met; each node then
    // says so in CLUSTER INFO. Ask each until it does (every ask is a round trip, not a sleep).
    for (const node of nodes) {
      for (let i = 0; !/cluster_state:ok/.test(node.cli('CLUSTER', 'INFO')); i++) {
        if (i > 5_000) throw new Error(`node ${node.port} never reached cluster_state:ok`);
      }
    }
  } catch (err) {
    await stopNodes();
    throw err;
  }
  // A plain connection to each node, to move the clock of the keys it holds.
  const direct = await Promise.all(nodes.map((n) => createClient({ url: n.url }).connect()));
  const nodeRedis = createCluster({ rootNodes: nodes.map((n) => ({ url: n.url })) });
  await nodeRedis.connect();
  const ioredis = new Cluster(nodes.map((n) => ({ host: '127.0.0.1', port: n.port })), { lazyConnect: true });
  await ioredis.connect();
  after(async () => {
    await nodeRedis.close();
    ioredis.disconnect();
    await Promise.all(direct.map((c) => c.close()));
    await stopNodes();
  });

  /** Shortens the life of every key under `prefix`, on every node, by `ms`. */
  const shorten = async (prefix: string, ms: number): Promise<void> => {
    for (const c of direct) {
      let cursor = '0';
      do {
        const [next, keys] = (await c.sendCommand(['SCAN', cursor, 'MATCH', `${prefix}*`, 'COUNT', '1000'])) as [string, string[]];
        cursor = next;
        for (const key of keys) {
          const pttl = Number(await c.sendCommand(['PTTL', key]));
          if (pttl < 0) continue;
          if (pttl - ms <= 0) await c.sendCommand(['DEL', key]);
          else await c.sendCommand(['PEXPIRE', key, String(pttl - ms)]);
        }
      } while (cursor !== '0');
    }
  };

  for (const [name, client] of [['node-redis createCluster', nodeRedis], ['ioredis Cluster', ioredis]] as [string, RedisClient][]) {
    const clock = new Clock();
    const base = `cluster-${name.replace(/\W+/g, '-')}:`;
    let n = 0;
    storageContract(`RedisStorage on a Redis Cluster (${name})`, {
      create: () => new RedisStorage({ client, prefix: `${base}${++n}:`, ttlUpdateInterval: 0, now: clock.now }),
      advance: async (ms) => {
        clock.advance(ms);
        await shorten(base, ms);
      },
    });
  }

  describe('RedisStorage on a Redis Cluster', () => {
    it('spreads sessions over every node and reads each through either client', async () => {
      const a = new RedisStorage({ client: nodeRedis, prefix: 'spread:' });
      const b = new RedisStorage({ client: ioredis, prefix: 'spread:' });
      const ids = Array.from({ length: 30 }, () => randomBytes(32).toString('base64url'));
      for (const [i, id] of ids.entries()) await a.set(id, { i }, 60_000);
      for (const [i, id] of ids.entries()) {
        assert.equal(await b.patch(id, { set: { j: i }, remove: [], clear: false }, 60_000), true, 'patched through the other client');
        assert.deepEqual({ ...(await a.get(id)) }, { i, j: i }, 'read back through the first');
      }
      const perNode = await Promise.all(direct.map(async (c) => ((await c.sendCommand(['KEYS', 'spread:*'])) as string[]).length));
      assert.equal(perNode.reduce((x, y) => x + y, 0), 30, 'every session is one key');
      assert.ok(perNode.every((k) => k > 0), `every node holds some sessions (${perNode.join(', ')})`);
    });

    it('counts, lists and ends an owner\'s sessions spread over every node, through either client', async () => {
      const sha256 = (v: string): string => createHash('sha256').update(v).digest('hex');
      const a = new RedisStorage({ client: nodeRedis, prefix: 'owned:' });
      const b = new RedisStorage({ client: ioredis, prefix: 'owned:' });
      const ids = Array.from({ length: 30 }, () => randomBytes(32).toString('base64url'));
      // Every other session is ann's, written through one client or the other.
      await Promise.all(ids.map((id, i) => (i % 2 === 0 ? a : b).set(id, i % 2 === 0 ? { [META.owner]: 'ann', i } : { i }, 60_000)));
      const ownerKeys = await Promise.all(direct.map(async (c) => ((await c.sendCommand(['KEYS', 'owned:owner:*'])) as string[]).length));
      assert.equal(ownerKeys.reduce((x, y) => x + y, 0), 1, 'one set for ann, on one node');
      for (const [name, s] of [['node-redis', a], ['ioredis', b]] as const) {
        assert.equal(await s.count(), 30, `${name}: every session counted, on every node, and not ann's set`);
        const listed: string[] = [];
        for await (const x of s.list()) listed.push(x.idHash);
        assert.deepEqual(listed.sort(), ids.map(sha256).sort(), `${name}: every session listed once`);
        const owned = await s.ownerSessions('ann');
        assert.deepEqual(owned.map((x) => x.idHash).sort(), ids.filter((_, i) => i % 2 === 0).map(sha256).sort(), `${name}: ann's 15 sessions, read from every node`);
      }
      const keep = sha256(ids[0] as string);
      assert.equal(await b.removeOwner('ann', keep), 14, 'all of ann\'s sessions but one ended');
      assert.deepEqual((await a.ownerSessions('ann')).map((x) => x.idHash), [keep], 'the one kept is all that is left');
      assert.equal(await a.count(), 16, 'the 15 others\' and ann\'s one');
    });
  });
}
