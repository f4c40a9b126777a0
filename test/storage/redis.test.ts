/**
 * RedisStorage: how it recognises clients and refuses others, its timeouts and errors, the
 * storage contract on a real redis-server through node-redis, ioredis and a plain function, the
 * key layout, NOSCRIPT recovery, the size limit, and the round trips of each kind of request.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { createClient, createCluster } from 'redis';
import { Server, SessionError, StorageError } from '../../lib/index.js';
import type { SessionData } from '../../lib/storage/storage.js';
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

  /** A function client over node-redis that records every command. */
  const recording = (): { client: (args: string[]) => Promise<unknown>; commands: string[][]; names: () => string[] } => {
    const commands: string[][] = [];
    return {
      client: (args) => {
        commands.push(args);
        return nodeRedis.sendCommand(args);
      },
      commands,
      names: () => commands.splice(0).map((c) => c[0] as string),
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
      assert.equal(await s.touch(id, 24 * 3_600_000), true, 'a minute later: one PEXPIRE');
      assert.equal(await s.touch(id, 24 * 3_600_000), undefined, 'then none again');
      assert.deepEqual(rec.names(), ['PEXPIRE'], 'one command in all');
      await s.remove(id);
      assert.equal(await s.touch(id, 24 * 3_600_000), false, 'after a remove the next touch asks Redis, which says gone');
      const short = newId();
      await s.set(short, { a: 1 }, 20_000);
      clock.advance(5_000);
      rec.names();
      assert.equal(await s.touch(short, 20_000), true, 'a life of 20 s is extended after 5 s, a quarter of it');
      assert.deepEqual(rec.names(), ['PEXPIRE'], 'one PEXPIRE');
      await s.close();
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
      let pexpires = 0;
      let reads = 0;
      // Ten minutes of reads, one every 10 s: every read is one HGETALL, and one a minute adds a PEXPIRE.
      for (let i = 0; i < 60; i++) {
        clock.advance(10_000);
        const reply = await jar.send(port, '/get');
        assert.equal(reply.status, 200, 'read answered');
        const names = rec.names();
        reads += names.filter((n) => n === 'HGETALL').length;
        pexpires += names.filter((n) => n === 'PEXPIRE').length;
        assert.ok(names.length <= 2 && names[0] === 'HGETALL', `read ${i}: HGETALL, and a PEXPIRE at most (${names.join(' ')})`);
      }
      assert.equal(reads, 60, 'one HGETALL per read');
      assert.ok(pexpires >= 9 && pexpires <= 10, `one PEXPIRE per minute of reads: ${pexpires} in 10 minutes`);
      await jar.send(port, '/destroy');
      assert.deepEqual(rec.names(), ['HGETALL', 'UNLINK'], 'destroy: the read, then one UNLINK');
    });
  });
}
