/**
 * RedisStorage: how it recognises clients and refuses others, its timeouts and errors, the
 * storage contract on a real redis-server through node-redis, ioredis and a plain function, the
 * key layout, the owner index (its sets, their life and renewal, its races), counting and
 * listing by SCAN, NOSCRIPT recovery, the size limit, and the round trips of each kind of
 * request, with and without an owner.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { createClient, createCluster } from 'redis';
import { Server, SessionError, StorageError } from '../../lib/index.js';
import { META, type SessionData } from '../../lib/storage/storage.js';
import { type RedisClient, RedisStorage } from '../../lib/storage/redis.js';
import { storageContract } from '../../lib/testing.js';
import { Clock, Jar, deferred, serve, turn } from '../helpers.js';
import { RedisServer, redisMissing } from '../redis-server.js';

const missing = redisMissing();

function newId(): string {
  return randomBytes(32).toString('base64url');
}

function sha256(id: string): string {
  return createHash('sha256').update(id).digest('hex');
}

const MINUTE = 60_000;
const EXPECTED_CLIENT = /^option client is invalid: .+ \(expected a node-redis or ioredis client, or a function taking the command's arguments\)$/;

/** A storage error of the storage's own, as the server answers it: 503. */
function isStorageError(err: unknown): boolean {
  return err instanceof StorageError && err.status === 503 && err.code === 'ESTORAGE';
}

describe('RedisStorage: clients and options', () => {
  it('recognises each client by its shape and sends it the command as that client takes it', async () => {
    const seen: unknown[][] = [];
    const reply = async (): Promise<unknown> => ['m:v', '1', 'k:a', '1'];
    const clients: [string, RedisClient, (id: string) => unknown[]][] = [
      ['a function', async (args: string[]) => (seen.push(['fn', args]), reply()), (key) => ['fn', ['HGETALL', key]]],
      ['node-redis', { sendCommand: async (args: string[]) => (seen.push(['sendCommand', args]), reply()) }, (key) => ['sendCommand', ['HGETALL', key]]],
      [
        'node-redis cluster',
        { sendCommand: async (firstKey: string | undefined, isReadonly: boolean | undefined, args: string[]) => (seen.push(['cluster', firstKey, isReadonly, args]), reply()), getSlotRandomNode: () => undefined } as RedisClient,
        (key) => ['cluster', key, false, ['HGETALL', key]],
      ],
      [
        'ioredis (it has a sendCommand of its own too)',
        { call: async (command: string, ...args: string[]) => (seen.push(['call', command, ...args]), reply()), sendCommand: () => assert.fail('ioredis sendCommand must not be used') } as RedisClient,
        (key) => ['call', 'HGETALL', key],
      ],
    ];
    for (const [name, client, expected] of clients) {
      seen.length = 0;
      const s = new RedisStorage({ client, prefix: 'p:' });
      const id = newId();
      assert.deepEqual({ ...(await s.get(id)) }, { a: 1 }, `${name}: the reply is decoded`);
      assert.deepEqual(seen, [expected(`p:${sha256(id)}`)], `${name}: one command, in the client's own form`);
      await s.close();
    }
  });

  it('recognises the real clients of node-redis and ioredis without connecting them', async () => {
    const ioredis = new Redis({ lazyConnect: true });
    const clients: [string, RedisClient][] = [
      ['createClient', createClient()],
      ['createCluster', createCluster({ rootNodes: [{ url: 'redis://127.0.0.1:1' }] })],
      ['ioredis', ioredis],
    ];
    for (const [name, client] of clients) {
      assert.doesNotThrow(() => new RedisStorage({ client }), `${name} is accepted`);
    }
    ioredis.disconnect();
  });

  it('counts and lists on every master a cluster client names, and refuses one that names none with ENOTSUPPORTED', async () => {
    const HEX = '[0-9a-f]'.repeat(64);
    const key = (n: number): string => `p*[?\\:${String(n).padStart(64, '0')}`;
    const scans: unknown[][] = [];
    /** A node that answers SCAN with two pages of its keys. */
    const node = (name: string, keys: string[]) => async (args: string[]): Promise<unknown> => {
      scans.push([name, ...args]);
      return args[1] === '0' ? ['7', keys.slice(0, 1)] : ['0', keys.slice(1)];
    };
    const pttl = async (k: string | undefined, args: string[]): Promise<unknown> => (args[0] === 'PTTL' ? (k === key(3) ? -2 : 5_000) : assert.fail(`unexpected ${args[0]}`));
    const nodeRedisCluster = {
      masters: [{ id: 'a' }, { id: 'b' }],
      nodeClient: async (m: { id: string }) => ({ sendCommand: node(m.id, m.id === 'a' ? [key(1), key(2)] : [key(3), key(4)]) }),
      sendCommand: async (k: string | undefined, _ro: boolean | undefined, args: string[]) => pttl(k, args),
    } as unknown as RedisClient;
    const ioredisCluster = {
      nodes: (role: string) => (role === 'master' ? [{ call: (...args: string[]) => node('io', [key(1), key(3)])(args) }] : assert.fail('masters only')),
      call: async (...args: string[]) => pttl(args[1], args),
    } as unknown as RedisClient;
    for (const [name, client, count, listed] of [
      ['node-redis cluster', nodeRedisCluster, 4, [1, 2, 4]],
      ['ioredis Cluster', ioredisCluster, 2, [1]],
    ] as const) {
      scans.length = 0;
      const s = new RedisStorage({ client, prefix: 'p*[?\\:', now: () => 1_000 });
      assert.equal(await s.count(), count, `${name}: the keys of every master`);
      assert.ok(scans.length >= 2 && scans.every((c) => c[3] === 'MATCH' && c[4] === `p\\*\\[\\?\\\\:${HEX}` && c[6] === '1000'), `${name}: SCAN MATCH the escaped prefix and 64 hex digits, 1000 at a time`);
      const seen: { idHash: string; expiresAt: number }[] = [];
      for await (const x of s.list()) seen.push(x);
      assert.deepEqual(seen, listed.map((n) => ({ idHash: String(n).padStart(64, '0'), expiresAt: 6_000 })), `${name}: listed with now + PTTL, one gone since the SCAN left out`);
    }
    const blind = new RedisStorage({ client: { sendCommand: async (_k: string | undefined, _r: boolean | undefined, _a: string[]) => 1, getSlotRandomNode: () => undefined } as RedisClient });
    const notSupported = (err: unknown): boolean => err instanceof SessionError && !(err instanceof StorageError) && err.code === 'ENOTSUPPORTED' && /no list of its masters/.test(err.message);
    await assert.rejects(blind.count(), notSupported, 'count: ENOTSUPPORTED, saying why');
    await assert.rejects(async () => {
      for await (const _ of blind.list()) assert.fail('nothing is listed');
    }, notSupported, 'list: the same');
  });

  it('names every id by its hash under the prefix, the empty one and one named twice in a row included', async () => {
    const sent: string[][] = [];
    const s = new RedisStorage({ client: async (args: string[]) => (sent.push(args), []), prefix: 'p:', ttlUpdateInterval: 0 });
    const [a, b] = [newId(), newId()];
    for (const id of ['', a, a, b, '']) await s.get(id);
    assert.deepEqual(sent.map((args) => args[1]), ['', a, a, b, ''].map((id) => `p:${sha256(id)}`), 'each read names the key of its own id');
  });

  it('takes a function client that answers with a plain value instead of a promise', async () => {
    const sent: string[] = [];
    // Answers at once: the session's hash for a read, 1 (done, no owner) for every script.
    const client = ((args: string[]) => (sent.push(args[0] as string), args[0] === 'HGETALL' ? ['m:v', '1', 'k:a', '1'] : 1)) as unknown as RedisClient;
    const s = new RedisStorage({ client, prefix: 'p:', ttlUpdateInterval: 0 });
    const id = newId();
    assert.deepEqual({ ...(await s.get(id)) }, { a: 1 }, 'a read is decoded');
    await s.set(id, { a: 2 }, MINUTE);
    assert.equal(await s.patch(id, { set: { b: 1 }, remove: [], clear: false }, MINUTE), true, 'a patch is applied');
    assert.equal(await s.touch(id, MINUTE), true, 'a touch tells the session exists');
    await s.remove(id);
    assert.deepEqual(sent, ['HGETALL', 'EVALSHA', 'EVALSHA', 'EVALSHA', 'EVALSHA'], 'every operation reached the client once');
  });

  it('refuses anything else with a TypeError that says what it expects', () => {
    for (const client of [undefined, null, {}, 'redis://127.0.0.1:6379', 6379, { sendCommand: 'no' }, { call: 1 }, [async () => 1]]) {
      assert.throws(() => new RedisStorage({ client: client as unknown as RedisClient }), (err: unknown) => err instanceof TypeError && EXPECTED_CLIENT.test(err.message), `client ${String(client)} is refused`);
    }
  });

  it('refuses invalid options by name', () => {
    const client = async (): Promise<unknown> => null;
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ prefix: 1 }, /^option prefix is invalid: 1 \(expected a string\)$/],
      [{ timeout: 'soon' }, /^option timeout is invalid: "soon"/],
      [{ timeout: 0 }, /^option timeout is invalid: 0/],
      [{ ttlUpdateInterval: -1 }, /^option ttlUpdateInterval is invalid: -1/],
      [{ now: 'x' }, /^option now is invalid: "x"/],
    ];
    for (const [options, message] of cases) {
      assert.throws(() => new RedisStorage({ client, ...options }), (err: unknown) => err instanceof TypeError && message.test(err.message), `${JSON.stringify(options)} is refused`);
    }
    assert.doesNotThrow(() => new RedisStorage({ client, ttlUpdateInterval: 0, prefix: '' }), 'a zero interval and an empty prefix are allowed');
  });
});

describe('RedisStorage: failures', () => {
  it('rejects every operation with a StorageError within the timeout when the client never answers', async () => {
    const s = new RedisStorage({ client: () => new Promise<never>(() => undefined), timeout: 50 });
    const id = newId();
    const ops: [string, () => Promise<unknown>][] = [
      ['get', () => s.get(id)],
      ['set', () => s.set(id, { a: 1 }, MINUTE)],
      ['patch', () => s.patch(id, { set: { a: 2 }, remove: [], clear: false }, MINUTE)],
      ['touch', () => s.touch(id, MINUTE)],
      ['remove', () => s.remove(id)],
    ];
    for (const [name, op] of ops) {
      const t0 = performance.now();
      await assert.rejects(op(), (err: unknown) => isStorageError(err) && /did not answer within 50 ms/.test((err as Error).message), `${name} rejects with a StorageError`);
      const took = performance.now() - t0;
      assert.ok(took >= 45 && took < 1_000, `${name} rejected after its 50 ms timeout, not much later (${took.toFixed(0)} ms)`);
    }
  });

  it('drops an answer or an error that comes after the timeout, without an unhandled rejection', async () => {
    const late = deferred<unknown>();
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): void => {
      unhandled.push(reason);
    };
    process.on('unhandledRejection', onUnhandled);
    try {
      const s = new RedisStorage({ client: () => late.promise, timeout: 20 });
      await assert.rejects(s.get(newId()), isStorageError, 'the read times out');
      late.reject(new Error('ECONNRESET, too late'));
      await turn();
      await turn();
      assert.deepEqual(unhandled, [], 'the late rejection is handled');
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });

  it('turns errors of the client, thrown or rejected, into StorageErrors that keep the cause and name no id', async () => {
    const id = newId();
    const cause = new Error('WRONGTYPE Operation against a key holding the wrong kind of value');
    for (const client of [async () => Promise.reject(cause), () => { throw cause; }]) {
      const s = new RedisStorage({ client: client as RedisClient });
      for (const op of [() => s.get(id), () => s.patch(id, { set: {}, remove: [], clear: true }, MINUTE), () => s.remove(id)]) {
        await assert.rejects(op(), (err: unknown) => isStorageError(err) && (err as Error).cause === cause && /WRONGTYPE/.test((err as Error).message) && !(err as Error).message.includes(id), 'a StorageError with the cause');
      }
    }
  });

  it('skips undefined values, gives every life at least 1 ms, and reports what a client throws that is no Error', async () => {
    const sent: string[][] = [];
    const s = new RedisStorage({ client: async (args: string[]) => (sent.push(args), 1), ttlUpdateInterval: 0 });
    await s.set(newId(), { a: 1, gone: undefined } as unknown as SessionData, 0.2);
    assert.deepEqual(sent[0]?.slice(4), ['1', 'm:v', '1', 'k:a', '1'], 'no field for an undefined value, and a ttl of 1 ms');
    await s.patch(newId(), { set: { b: undefined } as unknown as SessionData, remove: [], clear: false }, -5);
    assert.deepEqual(sent[1]?.slice(4), ['1', '1048576', '0', '0'], 'the patch sets nothing, with a ttl of 1 ms');
    const odd = new RedisStorage({ client: () => Promise.reject('a bare string') });
    await assert.rejects(odd.get(newId()), (err: unknown) => isStorageError(err) && /a bare string/.test((err as Error).message), 'a StorageError that says what was thrown');
  });

  it('refuses replies of an unexpected shape with a StorageError', async () => {
    const id = newId();
    const cases: [string, unknown, (s: RedisStorage) => Promise<unknown>][] = [
      ['get: a status', 'OK', (s) => s.get(id)],
      ['get: an odd array', ['k:a'], (s) => s.get(id)],
      ['get: numbers for fields', [1, 2], (s) => s.get(id)],
      ['get: null', null, (s) => s.get(id)],
      ['set: 0', 0, (s) => s.set(id, { a: 1 }, MINUTE)],
      ['patch: a string', '1', (s) => s.patch(id, { set: {}, remove: [], clear: false }, MINUTE)],
      ['patch: a fraction', -0.5, (s) => s.patch(id, { set: {}, remove: [], clear: false }, MINUTE)],
      ['touch: a string', 'yes', (s) => s.touch(id, MINUTE)],
      ['remove: null', null, (s) => s.remove(id)],
    ];
    for (const [name, reply, op] of cases) {
      const s = new RedisStorage({ client: async () => reply, ttlUpdateInterval: 0 });
      await assert.rejects(op(s), (err: unknown) => isStorageError(err) && /^redis answered/.test((err as Error).message), name);
    }
  });

  it('takes odd replies of the owner index and of SCAN as StorageErrors, and never fails a listing or a removal over a cleanup', async () => {
    const h = 'a'.repeat(64);
    let replies: Record<string, unknown> = {};
    const sent: string[] = [];
    // Answers by command, a script by its key: an owner's set, or a session.
    const client = async (args: string[]): Promise<unknown> => {
      const name = args[0] === 'EVALSHA' && args[3]?.includes(':owner:') === true ? 'EVALSHA owner' : (args[0] as string);
      sent.push(name);
      const reply = replies[name];
      if (reply instanceof Error) throw reply;
      return reply;
    };
    const s = new RedisStorage({ client, prefix: 'p:', ttlUpdateInterval: 0, now: () => 1_000 });
    s.configure({ maxAgeMs: MINUTE, maxSize: 1_000 });
    const odd = (err: unknown): boolean => isStorageError(err) && /^redis answered/.test((err as Error).message);

    replies = { SMEMBERS: [h, 'not-an-id-hash'], EVALSHA: 0, SREM: new Error('READONLY You can\'t write against a read only replica.') };
    assert.deepEqual(await s.ownerSessions('ann'), [], 'a member that is gone is not listed, though taking it out failed');
    assert.deepEqual(sent.splice(0), ['SMEMBERS', 'EVALSHA', 'SREM'], 'one read for the id hash, none for what is not one');
    assert.equal(await s.removeOwner('ann'), 0, 'nor counted as ended');
    assert.deepEqual(sent.splice(0), ['SMEMBERS', 'EVALSHA', 'SREM'], 'and taken out of the set (tried)');
    replies = { SMEMBERS: [h], EVALSHA: [-1, 'm:v', '1', `k:${META.owner}`, '"ann"'] };
    const listed = (await s.ownerSessions('ann')).map((x) => ({ ...x, data: { ...x.data } }));
    assert.deepEqual(listed, [{ idHash: h, expiresAt: 1_000 + MINUTE, data: { [META.owner]: 'ann' } }], 'a session without an expiry is listed with the longest life');

    for (const [name, r, op] of [
      ['SMEMBERS: a status', { SMEMBERS: 'OK' }, () => s.ownerSessions('ann')],
      ['SMEMBERS: numbers', { SMEMBERS: [1] }, () => s.removeOwner('ann')],
      ['a read of a member: a string', { SMEMBERS: [h], EVALSHA: 'x' }, () => s.ownerSessions('ann')],
      ['a removal of a member: a string', { SMEMBERS: [h], EVALSHA: 'x' }, () => s.removeOwner('ann')],
      ['joining an owner\'s set: 0', { EVALSHA: 1, 'EVALSHA owner': 0 }, () => s.set(newId(), { [META.owner]: 'ann' }, MINUTE)],
      ['SCAN: no keys', { SCAN: ['0'] }, () => s.count()],
      ['SCAN: numbers for keys', { SCAN: ['0', [1]] }, () => s.count()],
      ['PTTL: a string', { SCAN: ['0', [`p:${h}`]], PTTL: 'x' }, async () => {
        for await (const _ of s.list()) assert.fail('nothing is listed');
      }],
    ] as [string, Record<string, unknown>, () => Promise<unknown>][]) {
      replies = r;
      await assert.rejects(op(), odd, name);
    }
    sent.length = 0;
    replies = { EVALSHA: [1, '{not json'] };
    assert.equal(await s.touch(newId(), MINUTE), true, 'a touch of a session whose owner is not JSON');
    assert.deepEqual(sent, ['EVALSHA'], 'renews no owner\'s set');
  });

  it('decodes RESP3 maps and records and Buffer replies, and reads a value that is not JSON as no session', async () => {
    const replies: [string, unknown, SessionData | undefined][] = [
      ['a Map', new Map([['m:v', '1'], ['k:a', '{"b":[1]}']]), { a: { b: [1] } }],
      ['a record', { 'm:v': '1', 'k:x': '"y"' }, { x: 'y' }],
      ['Buffers', [Buffer.from('m:v'), Buffer.from('1'), Buffer.from('k:é'), Buffer.from('"☃"')], { é: '☃' }],
      ['an empty array (no key)', [], undefined],
      ['an empty Map', new Map(), undefined],
      ['a value that is not JSON', ['m:v', '1', 'k:a', '{oops'], undefined],
      ['a field of something else', ['m:v', '1', 'other', 'x', 'k:__proto__', '{"admin":true}'], JSON.parse('{"__proto__":{"admin":true}}') as SessionData],
    ];
    for (const [name, reply, expected] of replies) {
      const got = await new RedisStorage({ client: async () => reply }).get(newId());
      if (expected === undefined) assert.equal(got, undefined, name);
      else assert.deepEqual({ ...got }, { ...expected }, name);
    }
    assert.equal(({} as { admin?: unknown }).admin, undefined, 'Object.prototype is untouched');
  });
});

if (missing !== false) {
  it('RedisStorage on a real redis-server', { skip: missing }, () => undefined);
} else {
  const redis = await RedisServer.start();
  const nodeRedis = await createClient({ url: redis.url }).connect();
  const admin = await createClient({ url: redis.url }).connect();
  const ioredis = new Redis({ host: '127.0.0.1', port: redis.port, lazyConnect: true });
  await ioredis.connect();
  after(async () => {
    await nodeRedis.close();
    await admin.close();
    ioredis.disconnect();
    await redis.stop();
  });

  /** Shortens the life of every key under `prefix` by `ms`, deleting those it ends: Redis's clock, moved. */
  const shorten = async (prefix: string, ms: number): Promise<void> => {
    let cursor = '0';
    do {
      const [next, keys] = (await admin.sendCommand(['SCAN', cursor, 'MATCH', `${prefix}*`, 'COUNT', '1000'])) as [string, string[]];
      cursor = next;
      for (const key of keys) {
        const pttl = Number(await admin.sendCommand(['PTTL', key]));
        if (pttl < 0) continue;
        if (pttl - ms <= 0) await admin.sendCommand(['DEL', key]);
        else await admin.sendCommand(['PEXPIRE', key, String(pttl - ms)]);
      }
    } while (cursor !== '0');
  };

  const contract = (name: string, client: RedisClient, { interval = 0 as number | '1m', touchTells = true } = {}): void => {
    const clock = new Clock();
    const base = `contract-${name.replace(/\W+/g, '-')}:`;
    let n = 0;
    storageContract(`RedisStorage (${name})`, {
      create: () => new RedisStorage({ client, prefix: `${base}${++n}:`, ttlUpdateInterval: interval, now: clock.now }),
      advance: async (ms) => {
        clock.advance(ms);
        await shorten(base, ms);
      },
      touchTells,
    });
  };
  contract('node-redis', nodeRedis);
  contract('ioredis', ioredis);
  contract('a function', (args: string[]) => nodeRedis.sendCommand(args));
  contract('default ttlUpdateInterval', nodeRedis, { interval: '1m', touchTells: false });

  /**
   * A function client over node-redis that records every command; `names()` gives (and forgets)
   * their names, a script on an owner's set as `EVALSHA owner`.
   */
  const recording = (): { client: (args: string[]) => Promise<unknown>; commands: string[][]; names: () => string[] } => {
    const commands: string[][] = [];
    return {
      client: (args) => {
        commands.push(args);
        return nodeRedis.sendCommand(args);
      },
      commands,
      names: () => commands.splice(0).map((c) => (c[0] === 'EVALSHA' && c[3]?.includes(':owner:') === true ? 'EVALSHA owner' : (c[0] as string))),
    };
  };

  describe('RedisStorage on a real redis-server', () => {
    it('keys a session by prefix + SHA-256 of its id, one hash with a marker and one JSON field per key: no id in the keyspace', async () => {
      const prefix = `layout-${newId().slice(0, 8)}:`;
      const s = new RedisStorage({ client: nodeRedis, prefix });
      const ids = [newId(), newId(), newId()];
      for (const id of ids) await s.set(id, { a: 1, 'k:odd': 'x', 'm:v': { nested: true } }, MINUTE);
      const keys = (await admin.sendCommand(['KEYS', '*'])) as string[];
      for (const id of ids) {
        assert.ok(keys.includes(`${prefix}${sha256(id)}`), 'the key is the prefix and the id\'s SHA-256');
        assert.ok(!keys.some((k) => k.includes(id)), 'no key holds the id');
      }
      // node-redis answers HGETALL with a record.
      const fields = (await admin.sendCommand(['HGETALL', `${prefix}${sha256(ids[0] as string)}`])) as Record<string, string>;
      assert.deepEqual({ ...fields }, { 'm:v': '1', 'k:a': '1', 'k:k:odd': '"x"', 'k:m:v': '{"nested":true}' }, 'marker, then one k: field per key, whatever the key is called');
      assert.deepEqual({ ...(await s.get(ids[0] as string)) }, { a: 1, 'k:odd': 'x', 'm:v': { nested: true } }, 'keys named like fields read back as they were');
    });

    it('keeps an emptied session as a key that reads as an empty session', async () => {
      const s = new RedisStorage({ client: nodeRedis, prefix: 'empty:' });
      const id = newId();
      await s.set(id, { a: 1 }, MINUTE);
      assert.equal(await s.patch(id, { set: {}, remove: ['a'], clear: false }, MINUTE), true, 'the last key removed');
      assert.deepEqual({ ...(await s.get(id)) }, {}, 'the session exists, empty');
      assert.equal(await s.patch(id, { set: { b: 2 }, remove: [], clear: false }, MINUTE), true, 'and can be written again');
      await s.set(id, {}, MINUTE);
      assert.deepEqual({ ...(await s.get(id)) }, {}, 'an empty session set whole exists too');
    });

    it('sends a script again with EVAL when Redis lost it (NOSCRIPT), within the same operation', async () => {
      const rec = recording();
      const s = new RedisStorage({ client: rec.client, prefix: 'noscript:' });
      const id = newId();
      await s.set(id, { a: 1 }, MINUTE);
      await s.patch(id, { set: { b: 2 }, remove: [], clear: false }, MINUTE);
      rec.names();
      await admin.sendCommand(['SCRIPT', 'FLUSH']);
      assert.equal(await s.patch(id, { set: { c: 3 }, remove: [], clear: false }, MINUTE), true, 'the patch after SCRIPT FLUSH succeeds');
      assert.deepEqual(rec.names(), ['EVALSHA', 'EVAL'], 'EVALSHA answered NOSCRIPT, EVAL sent the script');
      assert.equal(await s.patch(id, { set: { d: 4 }, remove: [], clear: false }, MINUTE), true, 'the next patch');
      assert.deepEqual(rec.names(), ['EVALSHA'], 'runs by digest again');
      await admin.sendCommand(['SCRIPT', 'FLUSH']);
      await s.set(newId(), { x: 1 }, MINUTE);
      assert.deepEqual(rec.names(), ['EVALSHA', 'EVAL'], 'the same for set');
      assert.deepEqual({ ...(await s.get(id)) }, { a: 1, b: 2, c: 3, d: 4 }, 'nothing lost');
    });

    it('measures a session as its JSON, and refuses one over maxSize in set and in patch, writing nothing', async () => {
      const s = new RedisStorage({ client: nodeRedis, prefix: 'size:' });
      const data: SessionData = { a: 'é☃', list: [1, 'two'], nested: { x: null } };
      const size = Buffer.byteLength(JSON.stringify(data));
      s.configure({ maxAgeMs: MINUTE, maxSize: size });
      const id = newId();
      await s.set(id, data, MINUTE);
      assert.deepEqual({ ...(await s.get(id)) }, data, 'a session of exactly maxSize bytes of JSON is stored');
      const tooLarge = (n: number) => (err: unknown) => err instanceof SessionError && err.code === 'ESESSIONTOOLARGE' && err.message.includes(`${n} bytes`);
      await assert.rejects(s.set(newId(), { ...data, a: 'é☃x' }, MINUTE), tooLarge(size + 1), 'one byte more is refused by set, with its size');
      assert.equal(await s.patch(id, { set: { a: 'e☃x' }, remove: [], clear: false }, MINUTE), true, 'a patch to exactly maxSize applies');
      await assert.rejects(s.patch(id, { set: { a: 'e☃xy' }, remove: [], clear: false }, MINUTE), tooLarge(size + 1), 'a patch one byte over is refused, with the merged size');
      await assert.rejects(s.patch(id, { set: { b: 1 }, remove: [], clear: false }, MINUTE), tooLarge(size + 6), 'a new key counts its comma, quotes and colon');
      assert.equal(await s.patch(id, { set: { b: 1 }, remove: ['list'], clear: false }, MINUTE), true, 'removing a key makes room first');
      assert.equal(await s.patch(id, { set: { big: 'x'.repeat(size - 10) }, remove: [], clear: true }, MINUTE), true, 'a clear makes room for all of it');
      assert.equal(Buffer.byteLength(JSON.stringify(await s.get(id))), size, 'and that session is maxSize bytes of JSON');
    });

    it('never gives a session a longer life than the configured maxAgeMs', async () => {
      const s = new RedisStorage({ client: nodeRedis, prefix: 'clamp:', ttlUpdateInterval: 0 });
      s.configure({ maxAgeMs: 1_000, maxSize: 1_000 });
      const id = newId();
      const key = `clamp:${sha256(id)}`;
      const pttl = async (): Promise<number> => Number(await admin.sendCommand(['PTTL', key]));
      await s.set(id, { a: 1 }, MINUTE);
      assert.ok((await pttl()) <= 1_000 && (await pttl()) > 0, 'set: cut to maxAgeMs');
      await admin.sendCommand(['PEXPIRE', key, '500']);
      await s.patch(id, { set: { b: 1 }, remove: [], clear: false }, MINUTE);
      assert.ok((await pttl()) > 500 && (await pttl()) <= 1_000, 'patch: renewed, cut to maxAgeMs');
      await admin.sendCommand(['PEXPIRE', key, '500']);
      assert.equal(await s.touch(id, MINUTE), true, 'touch of a live session');
      assert.ok((await pttl()) > 500 && (await pttl()) <= 1_000, 'touch: renewed, cut to maxAgeMs');
    });

    it('extends a life at most once per ttlUpdateInterval, at most a quarter of the life, and says when it cannot tell', async () => {
      const clock = new Clock();
      const rec = recording();
      const s = new RedisStorage({ client: rec.client, prefix: 'rate:', now: clock.now });
      const id = newId();
      await s.set(id, { a: 1 }, 24 * 3_600_000);
      rec.names();
      assert.equal(await s.touch(id, 24 * 3_600_000), undefined, 'a touch right after the write sends nothing, and cannot tell');
      clock.advance(59_999);
      assert.equal(await s.touch(id, 24 * 3_600_000), undefined, 'still within the minute');
      assert.deepEqual(rec.names(), [], 'no command within the interval');
      clock.advance(1);
      assert.equal(await s.touch(id, 24 * 3_600_000), true, 'a minute later: one EVALSHA (PEXPIRE, and the owner)');
      assert.equal(await s.touch(id, 24 * 3_600_000), undefined, 'then none again');
      assert.deepEqual(rec.names(), ['EVALSHA'], 'one command in all');
      await s.remove(id);
      assert.equal(await s.touch(id, 24 * 3_600_000), false, 'after a remove the next touch asks Redis, which says gone');
      const short = newId();
      await s.set(short, { a: 1 }, 20_000);
      clock.advance(5_000);
      rec.names();
      assert.equal(await s.touch(short, 20_000), true, 'a life of 20 s is extended after 5 s, a quarter of it');
      assert.deepEqual(rec.names(), ['EVALSHA'], 'one touch');
      await s.close();
    });

    it('keeps each owner\'s sessions in a set at prefix + "owner:" + SHA-256 of the owner, that follows logins and logouts and outlives any session', async () => {
      const prefix = `owners-${newId().slice(0, 8)}:`;
      const s = new RedisStorage({ client: nodeRedis, prefix, ttlUpdateInterval: 0 });
      s.configure({ maxAgeMs: 3_600_000, maxSize: 100_000 });
      const ownerKey = (owner: string): string => `${prefix}owner:${sha256(owner)}`;
      const members = async (owner: string): Promise<string[]> => ((await admin.sendCommand(['SMEMBERS', ownerKey(owner)])) as string[]).sort();
      const [a, b, c] = [newId(), newId(), newId()] as [string, string, string];
      await s.set(a, { [META.owner]: 'ann' }, MINUTE);
      await s.set(b, { [META.owner]: 'ann', x: 1 }, MINUTE);
      await s.set(c, { x: 1 }, MINUTE);
      assert.deepEqual(await members('ann'), [a, b].map(sha256).sort(), 'the set holds the id hashes of the owner\'s sessions');
      const keys = (await admin.sendCommand(['KEYS', `${prefix}*`])) as string[];
      assert.deepEqual(keys.sort(), [...[a, b, c].map((id) => prefix + sha256(id)), ownerKey('ann')].sort(), 'one key per session and one per owner');
      assert.ok(!keys.some((k) => k.includes('ann') || [a, b, c].some((id) => k.includes(id))), 'no owner and no id in the keyspace');
      const pttl = Number(await admin.sendCommand(['PTTL', ownerKey('ann')]));
      assert.ok(pttl > 3_600_000 && pttl <= 4_500_000, `the set lives maxAgeMs and its renewal window, a quarter of it at most (${pttl} ms)`);

      await s.patch(c, { set: { [META.owner]: 'ann' }, remove: [], clear: false }, MINUTE);
      assert.deepEqual(await members('ann'), [a, b, c].map(sha256).sort(), 'a login by patch joins the set');
      await s.patch(a, { set: { [META.owner]: 'bob' }, remove: [], clear: false }, MINUTE);
      assert.deepEqual(await members('ann'), [b, c].map(sha256).sort(), 'a session that changes hands leaves its former owner\'s set');
      assert.deepEqual(await members('bob'), [sha256(a)], 'and joins the new owner\'s');
      await s.patch(b, { set: { y: 2 }, remove: [META.owner], clear: false }, MINUTE);
      assert.deepEqual(await members('ann'), [sha256(c)], 'a logout by patch leaves it');
      await s.patch(c, { set: { [META.owner]: 'ann' }, remove: [], clear: true }, MINUTE);
      assert.deepEqual(await members('ann'), [sha256(c)], 'a clear that keeps the owner keeps the session in the set');
      await s.remove(c);
      assert.equal(Number(await admin.sendCommand(['EXISTS', ownerKey('ann')])), 0, 'removing the last session empties the set, and Redis drops it');

      // A stale member (bob's session in ann's set) and one that is no id hash.
      await admin.sendCommand(['SADD', ownerKey('ann'), sha256(a), 'not-an-id-hash']);
      assert.deepEqual(await s.ownerSessions('ann'), [], 'a session of another owner is not listed for ann');
      await admin.sendCommand(['SADD', ownerKey('ann'), sha256(a)]);
      assert.equal(await s.removeOwner('ann'), 0, 'nor ended for ann');
      assert.equal((await s.get(a))?.[META.owner], 'bob', 'bob\'s session lives on');
      assert.deepEqual(await members('ann'), ['not-an-id-hash'], 'and was taken out of ann\'s set');

      // Log out everywhere, then writes that were in flight: none brings the session back.
      assert.equal(await s.removeOwner('bob'), 1, 'bob\'s one session is ended');
      assert.equal(await s.patch(a, { set: { late: true }, remove: [], clear: false }, MINUTE), false, 'a late patch finds it gone');
      assert.equal(await s.touch(a, MINUTE), false, 'a late touch too');
      assert.equal(await s.get(a), undefined, 'it stays gone');
      assert.equal(Number(await admin.sendCommand(['EXISTS', ownerKey('bob')])), 0, 'and bob\'s set with it');
    });

    it('renews an owner\'s set when a session in use would outlive it, at most once per window per session, adding the session back', async () => {
      const prefix = `renew-${newId().slice(0, 8)}:`;
      const clock = new Clock();
      const rec = recording();
      const s = new RedisStorage({ client: rec.client, prefix, ttlUpdateInterval: 0, now: clock.now });
      // A life of 40 s: the set lives 40 s and a window of 10 s, and is renewed at most every 10 s.
      s.configure({ maxAgeMs: 40_000, maxSize: 100_000 });
      const ownerKey = `${prefix}owner:${sha256('ann')}`;
      const pttl = async (): Promise<number> => Number(await admin.sendCommand(['PTTL', ownerKey]));
      const id = newId();
      await s.set(id, { [META.owner]: 'ann' }, 40_000);
      assert.deepEqual(rec.names(), ['EVALSHA', 'EVALSHA owner'], 'a new owned session: its write, then it joins its owner\'s set');
      assert.ok((await pttl()) > 40_000 && (await pttl()) <= 50_000, 'the set lives the session\'s 40 s and the 10 s window');
      // The set's clock, moved: 30 s left, less than a session used now gets.
      await admin.sendCommand(['PEXPIRE', ownerKey, '30000']);
      clock.advance(9_999);
      assert.equal(await s.touch(id, 40_000), true, 'a touch within the window');
      assert.equal(await s.patch(id, { set: { n: 1 }, remove: [], clear: false }, 40_000), true, 'and a write');
      assert.deepEqual(rec.names(), ['EVALSHA', 'EVALSHA'], 'are one command each');
      clock.advance(1);
      assert.equal(await s.touch(id, 40_000), true, 'a touch when the window is over');
      assert.deepEqual(rec.names(), ['EVALSHA', 'EVALSHA owner'], 'renews the set, once');
      assert.ok((await pttl()) > 40_000, 'which outlives the session again');
      await admin.sendCommand(['SREM', ownerKey, sha256(id)]);
      clock.advance(10_000);
      assert.equal(await s.patch(id, { set: { n: 2 }, remove: [], clear: false }, 40_000), true, 'a write a window later');
      assert.deepEqual(rec.names(), ['EVALSHA', 'EVALSHA owner'], 'renews it too');
      assert.equal(Number(await admin.sendCommand(['SISMEMBER', ownerKey, sha256(id)])), 1, 'and puts back a member the set had lost');
      await s.close();
    });

    it('puts back a member it took out when a write gave the session to that owner meanwhile', async () => {
      const prefix = `leave-${newId().slice(0, 8)}:`;
      let beforeSrem: (() => Promise<void>) | undefined;
      // Runs `beforeSrem` just before the next SREM reaches Redis: a write in another process, landed in between.
      const client = async (args: string[]): Promise<unknown> => {
        const hook = args[0] === 'SREM' ? beforeSrem : undefined;
        if (hook !== undefined) {
          beforeSrem = undefined;
          await hook();
        }
        return nodeRedis.sendCommand(args);
      };
      const s = new RedisStorage({ client, prefix });
      const ownerKey = `${prefix}owner:${sha256('ann')}`;
      const id = newId();
      const key = prefix + sha256(id);
      await s.set(id, { [META.owner]: 'bob' }, MINUTE);
      await admin.sendCommand(['SADD', ownerKey, sha256(id)]);
      assert.deepEqual(await s.ownerSessions('ann'), [], 'bob\'s session is not listed for ann');
      assert.equal(Number(await admin.sendCommand(['SISMEMBER', ownerKey, sha256(id)])), 0, 'and is taken out of ann\'s set');
      await admin.sendCommand(['SADD', ownerKey, sha256(id)]);
      // Between the listing's read (bob's) and its SREM, a login as ann: its write, then its join.
      let landed = false;
      beforeSrem = async () => {
        await admin.sendCommand(['HSET', key, `k:${META.owner}`, '"ann"']);
        await admin.sendCommand(['SADD', ownerKey, sha256(id)]);
        landed = true;
      };
      assert.deepEqual(await s.ownerSessions('ann'), [], 'read while it was bob\'s: not listed');
      assert.equal(landed, true, 'the login landed before the SREM');
      assert.equal(Number(await admin.sendCommand(['SISMEMBER', ownerKey, sha256(id)])), 1, 'the SREM was checked, and the session put back in ann\'s set');
      assert.deepEqual((await s.ownerSessions('ann')).map((x) => x.idHash), [sha256(id)], 'so it is listed, and can be ended');
    });

    it('counts and lists only session keys, yielding a batch before it scans the next', async (t) => {
      // A database of its own, so that the walk's SCANs see these keys alone.
      const db = await createClient({ url: redis.url, database: 1 }).connect();
      t.after(() => db.close());
      const commands: string[][] = [];
      const client = (args: string[]): Promise<unknown> => {
        commands.push(args);
        return db.sendCommand(args);
      };
      // Glob characters in the prefix: matched as themselves.
      const prefix = `scan*[x]?\\${newId().slice(0, 4)}:`;
      const s = new RedisStorage({ client, prefix });
      const N = 1_200;
      const ids = Array.from({ length: N }, () => newId());
      const write = (id: string, i: number): Promise<void> => s.set(id, i % 10 === 0 ? { [META.owner]: `owner${i}` } : { i }, MINUTE);
      // The first alone, so that Redis knows the scripts before the others come all at once.
      await write(ids[0] as string, 0);
      await Promise.all(ids.slice(1).map((id, i) => write(id, i + 1)));
      const unescaped = `scanZZxQ${prefix.slice(prefix.indexOf('\\') + 1)}`;
      for (const look of [`${prefix}${'a'.repeat(63)}`, `${prefix}${'a'.repeat(64)}x`, `${prefix}${'A'.repeat(64)}`, `${unescaped}${'b'.repeat(64)}`]) {
        await db.sendCommand(['SET', look, 'x', 'PX', String(MINUTE)]);
      }
      assert.equal(await s.count(), N, 'every session once, and nothing else: no owner\'s set, no key that only looks like a session\'s');
      commands.length = 0;
      const walk = s.list()[Symbol.asyncIterator]();
      const first = await walk.next();
      assert.equal(first.done, false, 'a first session');
      const scansBefore = commands.filter((c) => c[0] === 'SCAN').length;
      const seen = new Set<string>([first.value?.idHash as string]);
      for (let next = await walk.next(); next.done !== true; next = await walk.next()) {
        assert.ok(next.value.expiresAt > Date.now() && next.value.expiresAt <= Date.now() + MINUTE, 'each with its expiry');
        seen.add(next.value.idHash);
      }
      const scans = commands.filter((c) => c[0] === 'SCAN').length;
      // SCAN stops once it has gathered its COUNT of keys: 1 000 of these 1 200 and more.
      assert.ok(scansBefore === 1 && scans >= 2, `the first session came after the first of the walk's ${scans} SCANs (${scansBefore})`);
      assert.deepEqual([...seen].sort(), ids.map(sha256).sort(), 'every session, by id hash');
      assert.equal(commands.filter((c) => c[0] === 'PTTL').length, N, 'one PTTL per session listed');
    });

    it('rejects with a StorageError within the timeout while Redis is paused, and works again after', async () => {
      const s = new RedisStorage({ client: nodeRedis, prefix: 'pause:', timeout: 100 });
      const id = newId();
      await s.set(id, { a: 1 }, MINUTE);
      await admin.sendCommand(['CLIENT', 'PAUSE', '400', 'ALL']);
      const t0 = performance.now();
      await assert.rejects(s.get(id), isStorageError, 'a read while Redis answers nobody');
      const took = performance.now() - t0;
      assert.ok(took >= 95 && took < 400, `rejected at its timeout (${took.toFixed(0)} ms)`);
      const t1 = performance.now();
      await assert.rejects(s.patch(id, { set: { b: 2 }, remove: [], clear: false }, MINUTE), isStorageError, 'a write too');
      assert.ok(performance.now() - t1 < 400, 'within its timeout');
      // The paused commands are answered once the pause ends: wait for that, then read.
      await admin.sendCommand(['CLIENT', 'UNPAUSE']);
      const back = await s.get(id);
      assert.ok(back !== undefined && back['a'] === 1, 'the session reads again once Redis answers');
    });
  });

  describe('RedisStorage with the server: round trips per request', () => {
    it('reads with 1 command, writes with 1 after the read, creates with 1, and extends a life once per interval', async (t) => {
      const clock = new Clock();
      const rec = recording();
      const storage = new RedisStorage({ client: rec.client, prefix: 'trips:', now: clock.now });
      const s = await serve(t, { sessionStorage: storage, sessionMaxAge: '24h', now: clock.now }, (s) => {
        s.all('/set', (r) => {
          r.session.set('time', clock.now());
          r.response.write('ok');
        });
        s.all('/get', (r) => r.response.write(r.session.data()));
        s.all('/destroy', async (r) => {
          await r.session.destroy();
          r.response.write('ok');
        });
      });
      const port = s.port;
      const jar = new Jar();
      assert.equal((await jar.send(port, '/get')).body, '{}', 'no session yet');
      assert.deepEqual(rec.names(), [], 'a request without a session sends nothing');
      await jar.send(port, '/set');
      assert.deepEqual(rec.names(), ['EVALSHA'], 'new: one EVALSHA');
      await jar.send(port, '/get');
      assert.deepEqual(rec.names(), ['HGETALL'], 'read: one HGETALL (the life was just extended by the write)');
      clock.advance(1_000);
      await jar.send(port, '/set');
      assert.deepEqual(rec.names(), ['HGETALL', 'EVALSHA'], 'write: the read, then one EVALSHA');
      let touches = 0;
      let reads = 0;
      // Ten minutes of reads, one every 10 s: every read is one HGETALL, and one a minute adds a touch.
      for (let i = 0; i < 60; i++) {
        clock.advance(10_000);
        const reply = await jar.send(port, '/get');
        assert.equal(reply.status, 200, 'read answered');
        const names = rec.names();
        reads += names.filter((n) => n === 'HGETALL').length;
        touches += names.filter((n) => n === 'EVALSHA').length;
        assert.ok(names.length <= 2 && names[0] === 'HGETALL', `read ${i}: HGETALL, and a touch at most (${names.join(' ')})`);
      }
      assert.equal(reads, 60, 'one HGETALL per read');
      assert.ok(touches >= 9 && touches <= 10, `one touch per minute of reads: ${touches} in 10 minutes`);
      await jar.send(port, '/destroy');
      assert.deepEqual(rec.names(), ['HGETALL', 'EVALSHA'], 'destroy: the read, then one EVALSHA (the owner, then UNLINK)');
    });
    it('answers the touch of a read within the rate limit at once, and reads again before a due cookie goes out', async (t) => {
      const clock = new Clock();
      const rec = recording();
      const prefix = `confirm-${newId().slice(0, 8)}:`;
      const storage = new RedisStorage({ client: rec.client, prefix, ttlUpdateInterval: '10m', now: clock.now });
      const s = await serve(t, { sessionStorage: storage, sessionMaxAge: '24h', now: clock.now }, (s) => {
        s.all('/set', (r) => {
          r.session.set('time', clock.now());
          r.response.write('ok');
        });
        s.all('/get', (r) => r.response.write(r.session.data()));
        // Another process destroys the session while this request runs.
        s.all('/get-killed', async (r) => {
          await admin.sendCommand(['DEL', prefix + sha256(r.session.id)]);
          r.response.write(r.session.data());
        });
      });
      const jar = new Jar();
      await jar.send(s.port, '/set');
      rec.names();
      const touch = t.mock.method(storage, 'touch');
      const quiet = await jar.send(s.port, '/get');
      assert.deepEqual([quiet.setCookies.length, rec.names()], [0, ['HGETALL']], 'a read within the rate limit, its cookie not due: one HGETALL, no cookie');
      assert.equal(touch.mock.callCount(), 0, 'the skipped touch was answered at once, not by the awaited touch');
      clock.advance(61_000);
      const due = await jar.send(s.port, '/get');
      assert.equal(due.setCookies.length, 1, 'a read whose cookie is due, its touch skipped by the rate limit, refreshes the cookie');
      assert.deepEqual(rec.names(), ['HGETALL', 'HGETALL'], 'after reading again: the touch could not tell whether the session still exists');
      clock.advance(61_000);
      const killed = await jar.send(s.port, '/get-killed');
      assert.equal(killed.status, 200, 'the read answered');
      assert.deepEqual(killed.setCookies, [], 'no cookie for a session destroyed meanwhile: the read before the refresh found it gone');
      assert.equal((await jar.send(s.port, '/get')).body, '{}', 'and it stays gone');
    });

    it('with an owner: a read and a write stay one command each; a login, a logout and the hourly renewal of the owner\'s set cost one more', async (t) => {
      const clock = new Clock();
      const rec = recording();
      const storage = new RedisStorage({ client: rec.client, prefix: 'trips-owner:', now: clock.now });
      const s = await serve(t, { sessionStorage: storage, sessionMaxAge: '24h', now: clock.now }, (s) => {
        s.all('/login', async (r) => {
          await r.session.regenerate();
          r.session.setOwner('ann');
          r.response.write('ok');
        });
        s.all('/set', (r) => {
          r.session.set('time', clock.now());
          r.response.write('ok');
        });
        s.all('/get', (r) => r.response.write(r.session.owner ?? 'nobody'));
        s.all('/logout', async (r) => {
          await r.session.destroy();
          r.response.write('ok');
        });
      });
      const port = s.port;
      const jar = new Jar();
      await jar.send(port, '/set');
      assert.deepEqual(rec.names(), ['EVALSHA'], 'an anonymous session: one EVALSHA');
      await jar.send(port, '/login');
      assert.deepEqual(rec.names(), ['HGETALL', 'HGETALL', 'EVALSHA', 'EVALSHA owner', 'EVALSHA'], 'login: the reads of the server, the new id\'s write, its owner\'s set, the old id\'s removal');
      assert.equal((await jar.send(port, '/get')).body, 'ann', 'logged in');
      assert.deepEqual(rec.names(), ['HGETALL'], 'read: one HGETALL');
      clock.advance(1_000);
      await jar.send(port, '/set');
      assert.deepEqual(rec.names(), ['HGETALL', 'EVALSHA'], 'write: the read, then one EVALSHA');
      for (let i = 0; i < 60; i++) {
        clock.advance(10_000);
        await jar.send(port, '/get');
        const names = rec.names();
        assert.ok(names.length <= 2 && names[0] === 'HGETALL' && !names.includes('EVALSHA owner'), `read ${i} in the hour: HGETALL, and a touch at most (${names.join(' ')})`);
      }
      clock.advance(3_600_000);
      await jar.send(port, '/get');
      assert.deepEqual(rec.names(), ['HGETALL', 'EVALSHA', 'EVALSHA owner'], 'an hour later: the read, the touch, and the owner\'s set renewed');
      clock.advance(60_000);
      await jar.send(port, '/set');
      await jar.send(port, '/get');
      assert.deepEqual(rec.names(), ['HGETALL', 'EVALSHA', 'HGETALL'], 'then one command per read and write again');
      await jar.send(port, '/logout');
      assert.deepEqual(rec.names(), ['HGETALL', 'EVALSHA', 'SREM'], 'logout: the read, the removal, and the session leaves its owner\'s set');
      assert.equal(Number(await admin.sendCommand(['EXISTS', `trips-owner:owner:${sha256('ann')}`])), 0, 'which is then empty, and gone');
    });
  });
}
