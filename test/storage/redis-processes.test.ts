/**
 * RedisStorage across processes: four node:cluster workers (test/fixtures/redis-cluster-app.ts)
 * on one real redis-server, each on its own port, so every request goes to the process the test
 * chooses. The races are forced, not hoped for: requests wait in their handlers, after they
 * loaded the session, until the test releases them. Each race also runs against a control, a
 * store that writes the whole session as the peers do, which must lose the race: that proves
 * the harness produces it. And an owner logged in on two processes is listed, then logged out
 * everywhere, from a third.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, fork } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createClient } from 'redis';
import { Jar, type Reply, cookieValue, send } from '../helpers.js';
import { RedisServer, redisMissing } from '../redis-server.js';

const FIXTURE = join(import.meta.dirname, '..', 'fixtures', 'redis-cluster-app.ts');
const missing = redisMissing();

interface Message {
  type: string;
  [key: string]: unknown;
}

/** The node:cluster program: its ports, and the messages its workers send. */
class App {
  readonly child: ChildProcess;
  ports: number[] = [];
  controlPorts: number[] = [];
  readonly #counts = new Map<string, number>();
  readonly #waiters: { type: string; n: number; resolve: () => void }[] = [];
  #failure: Error | undefined;

  constructor(env: Record<string, string>) {
    this.child = fork(FIXTURE, [], { execArgv: ['--import', 'tsx'], env: { ...process.env, ...env }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.child.on('message', (m: Message) => {
      if (m.type === 'worker-exit') this.#failure = new Error(`a worker exited: ${JSON.stringify(m)}`);
      if (m.type === 'ready') {
        this.ports = m['ports'] as number[];
        this.controlPorts = m['controlPorts'] as number[];
      }
      this.#counts.set(m.type, (this.#counts.get(m.type) ?? 0) + 1);
      this.#wake();
    });
    this.child.on('exit', (code) => {
      this.#failure ??= new Error(`the cluster program exited (${code})`);
      this.#wake();
    });
  }

  /** Resolves once `n` messages of `type` came since the last {@link App.reset} (rejects if the program died). */
  until(type: string, n: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#waiters.push({ type, n, resolve: () => (this.#failure !== undefined ? reject(this.#failure) : resolve()) });
      this.#wake();
    });
  }

  /** Forgets the messages counted so far. */
  reset(type: string): void {
    this.#counts.delete(type);
  }

  /** Sends a message to every worker. */
  tell(type: 'release' | 'open'): void {
    this.child.send({ type });
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = once(this.child, 'exit');
    this.child.kill('SIGTERM');
    await exited;
  }

  #wake(): void {
    for (const w of [...this.#waiters]) {
      if (this.#failure !== undefined || (this.#counts.get(w.type) ?? 0) >= w.n) {
        this.#waiters.splice(this.#waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  }
}

function json(reply: Reply): Record<string, unknown> {
  assert.equal(reply.status, 200, `answered 200: ${reply.status} ${reply.body}`);
  return JSON.parse(reply.body) as Record<string, unknown>;
}

describe('RedisStorage across four processes', { skip: missing }, () => {
  let redis: RedisServer;
  let app: App;
  let admin: { sendCommand(args: string[]): Promise<unknown>; close(): Promise<void> };
  const prefix = 'procs:';

  before(async () => {
    redis = await RedisServer.start();
    admin = await createClient({ url: redis.url }).connect();
    app = new App({ REDIS_URL: redis.url, PREFIX: prefix });
    await app.until('ready', 1);
    assert.equal(app.ports.length, 4, 'four workers listen');
    assert.equal(new Set(app.ports).size, 4, 'each on a port of its own');
  });
  after(async () => {
    await app?.stop();
    await admin?.close();
    await redis?.stop();
  });

  /** Starts a session on `port` with key a=1 and returns its id (the cookie's value). */
  async function start(port: number, query = 'k=a&v=1'): Promise<string> {
    const jar = new Jar();
    const reply = await jar.send(port, `/set?${query}`);
    assert.equal(reply.status, 200, 'the session is created');
    const [name, sid] = [...jar.cookies][0] ?? [];
    assert.ok(name !== undefined && sid !== undefined, 'with a cookie');
    cookieName = name;
    return sid;
  }
  /** The session cookie's name (the server's default), learnt from the first Set-Cookie. */
  let cookieName = '';
  const withSid = (port: number, path: string, sid: string): Promise<Reply> => send(port, path, { headers: { cookie: `${cookieName}=${sid}` } });

  it('reads a write of one process at once in the three others', async () => {
    const [p0, p1, p2, p3] = app.ports as [number, number, number, number];
    const sid = await start(p0);
    for (const port of [p1, p2, p3]) assert.deepEqual(json(await withSid(port, '/get', sid)), { a: '1' }, `process on ${port} reads the write of the first`);
    assert.equal((await withSid(p2, '/set?k=b&v=2', sid)).status, 200, 'a write in the third');
    for (const port of [p0, p1, p3]) assert.deepEqual(json(await withSid(port, '/get', sid)), { a: '1', b: '2' }, `process on ${port} reads it too`);
  });

  for (const store of ['RedisStorage', 'control: whole-session writes'] as const) {
    const control = store !== 'RedisStorage';
    it(`${control ? 'loses some' : 'keeps all 200'} keys of 200 concurrent requests of one session spread over the processes (${store})`, { timeout: 60_000 }, async () => {
      const ports = control ? app.controlPorts : app.ports;
      const sid = await start(ports[0] as number, 'k=start&v=1');
      app.reset('arrived');
      const replies = Array.from({ length: 200 }, (_, i) => withSid(ports[i % 4] as number, `/add?k=k${i}`, sid));
      // Every request has loaded the session and set its key; none has committed yet.
      await app.until('arrived', 200);
      app.tell('release');
      for (const r of await Promise.all(replies)) assert.equal(r.status, 200, `every request succeeds: ${r.status} ${r.body}`);
      const data = json(await withSid(ports[3] as number, '/get', sid));
      const kept = Array.from({ length: 200 }, (_, i) => `k${i}`).filter((k) => data[k] === true).length;
      if (control) {
        assert.ok(kept < 200, `the whole-session control loses keys under this harness (kept ${kept} of 200)`);
      } else {
        assert.equal(kept, 200, `all 200 keys are kept (kept ${kept})`);
        assert.equal(data['start'], '1', 'and the key that was there');
      }
    });

    it(`${control ? 'brings back' : 'never brings back'} a session destroyed in one process by a slow write in another (${store})`, async () => {
      const ports = control ? app.controlPorts : app.ports;
      const [p0, p1, p2, p3] = ports as [number, number, number, number];
      const sid = await start(p0);
      app.reset('gate');
      // Loads the session in the first process, sets a key, and waits at the gate.
      const slow = withSid(p0, '/slow?k=late', sid);
      await app.until('gate', 1);
      const destroyed = await withSid(p1, '/destroy', sid);
      assert.equal(destroyed.status, 200, 'the second process destroys the session');
      assert.match(destroyed.setCookies.join('\n'), /Max-Age=0/, 'and expires its cookie');
      app.tell('open');
      const late = await slow;
      assert.equal(late.status, 200, 'the slow request ends normally');
      const key = `${prefix}${control ? 'control:' : ''}${createHash('sha256').update(sid).digest('hex')}`;
      const exists = Number(await admin.sendCommand(['EXISTS', key]));
      if (control) {
        assert.equal(exists, 1, 'the whole-session control writes the destroyed session back');
        return;
      }
      assert.equal(cookieValue(late.setCookies, cookieName), undefined, 'the slow request sends no cookie for the gone session');
      assert.equal(exists, 0, 'no key in Redis');
      for (const port of [p2, p3, p0]) {
        const r = await withSid(port, '/get', sid);
        assert.deepEqual(json(r), {}, `process on ${port} sees no session`);
        assert.equal(cookieValue(r.setCookies, cookieName), undefined, 'and adopts no id');
      }
    });
  }

  it('kills the old id in every process after a regenerate in one', async () => {
    const [p0, p1, p2, p3] = app.ports as [number, number, number, number];
    const old = await start(p0);
    const login = await withSid(p1, '/login', old);
    assert.equal(login.status, 200, 'the second process regenerates');
    const fresh = cookieValue(login.setCookies, cookieName);
    assert.ok(fresh !== undefined && fresh !== old, 'a new id is sent');
    for (const port of [p0, p2, p3, p1]) {
      const r = await withSid(port, '/get', old);
      assert.deepEqual(json(r), {}, `process on ${port}: the old id reads as no session`);
      assert.equal(cookieValue(r.setCookies, cookieName), undefined, 'and is not adopted');
      assert.deepEqual(json(await withSid(port, '/get', fresh)), { a: '1', user: 'alice' }, `process on ${port}: the new id has the data`);
    }
    const oldKey = `${prefix}${createHash('sha256').update(old).digest('hex')}`;
    assert.equal(Number(await admin.sendCommand(['EXISTS', oldKey])), 0, 'the old key is gone from Redis');
  });

  it('lists an owner\'s sessions of two processes in a third, and logs them out everywhere from it, in every process', async () => {
    const [p0, p1, p2, p3] = app.ports as [number, number, number, number];
    const sha256 = (v: string): string => createHash('sha256').update(v).digest('hex');
    /** Logs in as `user` on `port` and returns the session's id. */
    const login = async (port: number, user: string): Promise<string> => {
      const jar = new Jar();
      assert.equal((await jar.send(port, `/login-as?user=${user}`)).status, 200, `${user} logs in on ${port}`);
      const [name, sid] = [...jar.cookies][0] ?? [];
      assert.ok(name !== undefined && sid !== undefined, 'with a cookie');
      cookieName = name;
      return sid;
    };
    // Workers 0 and 1: node-redis and ioredis.
    const erin = [await login(p0, 'erin'), await login(p1, 'erin')];
    const frank = await login(p3, 'frank');
    for (const port of app.ports) {
      for (const sid of erin) assert.equal((await withSid(port, '/me', sid)).body, 'erin', `process on ${port} sees erin logged in`);
    }
    assert.deepEqual((JSON.parse((await send(p2, '/of?user=erin')).body) as string[]).sort(), erin.map(sha256).sort(), 'a third process lists both of erin\'s sessions');
    assert.equal((await send(p2, '/destroy-all?user=erin')).body, '2', 'and ends both');
    for (const port of app.ports) {
      for (const sid of erin) {
        const r = await withSid(port, '/me', sid);
        assert.equal(r.body, 'nobody', `process on ${port}: logged out`);
        assert.equal(cookieValue(r.setCookies, cookieName), undefined, 'and the old id is not adopted');
      }
    }
    for (const sid of erin) assert.equal(Number(await admin.sendCommand(['EXISTS', `${prefix}${sha256(sid)}`])), 0, 'no session key left in Redis');
    assert.equal(Number(await admin.sendCommand(['EXISTS', `${prefix}owner:${sha256('erin')}`])), 0, 'nor erin\'s set');
    assert.equal((await send(p2, '/of?user=erin')).body, '[]', 'erin has no session left');
    assert.equal((await withSid(p0, '/me', frank)).body, 'frank', 'another owner stays logged in');
  });

  it('holds a request at the barrier until the test releases it (the harness itself)', async () => {
    const sid = await start(app.ports[0] as number);
    app.reset('arrived');
    let done = false;
    const held = withSid(app.ports[1] as number, '/add?k=x', sid).then((r) => {
      done = true;
      return r;
    });
    await app.until('arrived', 1);
    // One more round trip through another process: the held request is still in its handler.
    await withSid(app.ports[2] as number, '/get', sid);
    assert.equal(done, false, 'the request waits at the barrier until released');
    app.tell('release');
    assert.equal((await held).status, 200, 'then it completes');
    assert.deepEqual(json(await send(app.ports[3] as number, '/get')), {}, 'a request without a cookie sees no session');
  });
});
