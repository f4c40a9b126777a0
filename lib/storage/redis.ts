/**
 * Redis storage: sessions in a Redis (or Valkey) that any number of processes and machines
 * share, through the user's own connected client. No Redis package is imported: the client is
 * recognised by its shape (node-redis, ioredis, iovalkey, their cluster clients, or a plain
 * function that sends one command).
 *
 * Layout. One Redis hash per session, at the key `prefix + sha256(id)` (hex), so that the
 * keyspace, a replica or a backup holds no usable id. Its fields:
 *
 * | field      | value                                                                   |
 * |------------|-------------------------------------------------------------------------|
 * | `m:v`      | `1`, the layout's version: the marker that makes an empty session exist  |
 * | `m:…`      | reserved for metadata of later versions (never a session key)            |
 * | `k:<key>`  | the JSON of the session's value under `<key>`, one field per key         |
 *
 * Session keys live under `k:` and metadata under `m:`, so the two can never collide, whatever
 * the keys are called. The hash expires with Redis's own `PEXPIRE`.
 *
 * One round trip per operation:
 *
 * | operation | command                                                                    |
 * |-----------|----------------------------------------------------------------------------|
 * | `get`     | `HGETALL`                                                                  |
 * | `set`     | `EVALSHA` of a script: `DEL`, `HSET` (marker and every key), `PEXPIRE`     |
 * | `patch`   | `EVALSHA` of a script: nothing if the key is gone, else the size check,    |
 * |           | then `HDEL` (clear, remove), `HSET` (set) and `PEXPIRE`, atomically          |
 * | `touch`   | `PEXPIRE`, at most once per `ttlUpdateInterval` per session and process     |
 * | `remove`  | `UNLINK`                                                                   |
 *
 * A script the server no longer knows (`NOSCRIPT`: a restart, a failover, `SCRIPT FLUSH`) is
 * sent again whole with `EVAL`, within the same operation and its timeout. Every operation
 * names exactly one key, declared in `KEYS`, so it works on Redis Cluster.
 *
 * @module
 */
import { createHash, hash } from 'node:crypto';
import { ExpiringCache } from '../cache.js';
import { type Duration, describe, parseDuration } from '../duration.js';
import { StorageError, sessionTooLarge } from '../errors.js';
import { setOwn } from '../json.js';
import type { JsonValue, SessionChanges, SessionData, Storage, StorageSettings } from './storage.js';

/** A function that sends one command (`['HGETALL', key]`) and resolves to Redis's reply. */
export type RedisCommandFunction = (args: string[]) => Promise<unknown>;

/**
 * The Redis clients {@link RedisStorage} takes, by the one method it calls:
 * - node-redis v4 to v6 (`createClient()`): `sendCommand(args)`;
 * - node-redis's cluster (`createCluster()`): `sendCommand(firstKey, isReadonly, args)`;
 * - ioredis and iovalkey, and their `Cluster`: `call(command, ...args)`;
 * - or a plain {@link RedisCommandFunction}.
 */
export type RedisClient =
  | RedisCommandFunction
  | { sendCommand(args: string[]): Promise<unknown> }
  | { sendCommand(firstKey: string | undefined, isReadonly: boolean | undefined, args: string[]): Promise<unknown> }
  | { call(command: string, ...args: string[]): Promise<unknown> };

/** Options of {@link RedisStorage}. */
export interface RedisStorageOptions {
  /**
   * The user's own client, already connected (see {@link RedisClient}). The storage never
   * connects, quits or reconfigures it; `close()` leaves it open.
   */
  client: RedisClient;
  /**
   * The start of every key. Keep braces out of it on Redis Cluster: a `{hash tag}` would put
   * every session in one slot.
   * @default 'bare-session:'
   */
  prefix?: string;
  /**
   * How long one operation may take, retries after `NOSCRIPT` included. Past it, the operation
   * rejects with a `StorageError` (the request gets a 503); the command may still reach Redis
   * later (a client's offline queue sends it on reconnection), so a write that timed out may or
   * may not have been applied, as with any timeout.
   * @default '2s'
   */
  timeout?: Duration;
  /**
   * A read extends a session's life (one `PEXPIRE`) at most once per this interval per session
   * and process; `touch` within it sends nothing and resolves `undefined`. For a short session
   * life, the interval is cut to a quarter of it, so a session read at least every three
   * quarters of its life stays alive. `0`: every `touch` sends its `PEXPIRE`.
   * @default '1m'
   */
  ttlUpdateInterval?: Duration;
  /** The clock of the `ttlUpdateInterval` rate limit, in milliseconds; tests inject one. @default Date.now */
  now?: () => number;
}

/** The field of the layout's version; its presence makes a session exist. */
const MARKER = 'm:v';
const LAYOUT_VERSION = '1';
/** Session keys' fields start with this. */
const DATA = 'k:';
/** The default `sessionMaxSize` until the server configures the storage. */
const DEFAULT_MAX_SIZE = 1024 * 1024;
/** Sessions whose last life extension is remembered; past it the least recently used is forgotten. */
const RATE_LIMIT_MAX = 100_000;
/** The longest life given to a session, as `parseDuration` allows. */
const MAX_TTL = 8.64e15;

// Arguments go to HSET and HDEL 1 000 at a time: Lua's unpack() has a limit of about 8 000.
const LUA_CHUNK = `
local function chunked(cmd, key, list, from, to)
  local i = from
  while i <= to do
    local j = math.min(i + 999, to)
    redis.call(cmd, key, unpack(list, i, j))
    i = j + 1
  end
end
`;

/**
 * Writes a whole session. KEYS[1]: the session's key. ARGV[1]: time to live in ms; ARGV[2..]:
 * field, value pairs (the marker first). Returns 1.
 */
const SET_SCRIPT = `${LUA_CHUNK}
redis.call('DEL', KEYS[1])
chunked('HSET', KEYS[1], ARGV, 2, #ARGV)
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
`;

/**
 * Applies one request's changes. KEYS[1]: the session's key. ARGV[1]: time to live in ms;
 * ARGV[2]: the largest size; ARGV[3]: '1' to clear first; ARGV[4]: n, the number of fields to
 * remove, in ARGV[5..4+n]; then field, value pairs to set. Returns 0 (writing nothing) when the
 * key does not exist, -size (writing nothing) when the result would be larger than ARGV[2],
 * else 1. The size of a session: the sum over its keys of key bytes + value bytes + 4, plus 2,
 * less 1 when it has a key: its JSON's length when no key needs escaping.
 */
const PATCH_SCRIPT = `${LUA_CHUNK}
local key = KEYS[1]
local all = redis.call('HGETALL', key)
if #all == 0 then return 0 end
local clear = ARGV[3] == '1'
local nremove = tonumber(ARGV[4])
local firstSet = 5 + nremove
local sizes = {}
local stored = {}
for i = 1, #all, 2 do
  local f = all[i]
  if string.sub(f, 1, 2) == '${DATA}' then
    stored[#stored + 1] = f
    if not clear then sizes[f] = #f - 2 + #all[i + 1] + 4 end
  end
end
for i = 5, firstSet - 1 do sizes[ARGV[i]] = nil end
for i = firstSet, #ARGV, 2 do sizes[ARGV[i]] = #ARGV[i] - 2 + #ARGV[i + 1] + 4 end
local size, n = 2, 0
for _, s in pairs(sizes) do size = size + s; n = n + 1 end
if n > 0 then size = size - 1 end
if size > tonumber(ARGV[2]) then return -size end
if clear then
  chunked('HDEL', key, stored, 1, #stored)
else
  chunked('HDEL', key, ARGV, 5, firstSet - 1)
end
chunked('HSET', key, ARGV, firstSet, #ARGV)
redis.call('PEXPIRE', key, ARGV[1])
return 1
`;

/** A script, with the digest `EVALSHA` runs it by. */
interface Script {
  readonly source: string;
  readonly sha: string;
}

function script(source: string): Script {
  return { source, sha: createHash('sha1').update(source).digest('hex') };
}

const SET: Script = script(SET_SCRIPT);
const PATCH: Script = script(PATCH_SCRIPT);

/** Sends one command; `key` is the one key it names (for a cluster client's routing). */
type Send = (key: string, args: string[]) => Promise<unknown>;

/**
 * How to send a command through `client`, recognised by its shape.
 * @throws TypeError when it is none of the {@link RedisClient}s
 */
function sender(client: unknown): Send {
  if (typeof client === 'function') {
    const fn = client as RedisCommandFunction;
    return (_key, args) => fn(args);
  }
  if (client !== null && typeof client === 'object') {
    const c = client as Record<string, unknown>;
    // ioredis and iovalkey (and their Cluster) also have a sendCommand, of a Command object.
    if (typeof c['call'] === 'function') {
      const io = client as { call(command: string, ...args: string[]): Promise<unknown> };
      return (_key, args) => io.call(...(args as [string, ...string[]]));
    }
    if (typeof c['sendCommand'] === 'function') {
      const sendCommand = c['sendCommand'] as (...a: unknown[]) => Promise<unknown>;
      // node-redis's cluster: routed by the first key. Reads go to the master too (isReadonly
      // false), so that a write in one process is read at once in every other.
      const isCluster = typeof c['getSlotRandomNode'] === 'function' || typeof c['nodeClient'] === 'function' || typeof c['getMasters'] === 'function' || sendCommand.length >= 3;
      return isCluster ? (key, args) => sendCommand.call(client, key, false, args) : (_key, args) => sendCommand.call(client, args);
    }
  }
  throw new TypeError(`option client is invalid: ${describe(client)} (expected a node-redis or ioredis client, or a function taking the command's arguments)`);
}

/**
 * Sessions in Redis or Valkey, shared by every process and machine that uses the same server
 * and `prefix`. Pass your own connected client; the storage sends it one command per operation.
 *
 * Concurrent requests of one session never lose each other's changes, in one process or many:
 * a write applies only that request's changes, atomically, to the session as stored at that
 * moment (a Lua script), and a session that another request destroyed or regenerated meanwhile
 * stays gone. Sessions expire by Redis's own `PEXPIRE`, so there is no sweep.
 *
 * The session's size, checked against the server's `sessionMaxSize` (in JavaScript for a whole
 * session, in the script for a change, where the merged result is known): the sum over its keys
 * of the key's UTF-8 bytes, plus its value's JSON bytes, plus 4, plus 2 for the braces, less 1
 * when there is a key; that is the length of the session's JSON whenever no key needs escaping
 * (a key with `"`, `\` or a control character counts the few bytes of its escapes less).
 *
 * When Redis is down, slow or answers an error, the operation rejects with a `StorageError`
 * within `timeout` (the request gets a 503; the server never falls back to an empty session).
 * Once Redis answers again, so does the storage: it keeps no state that an outage could spoil.
 * A value that is not valid JSON (written by something else) reads as no session.
 *
 * `close()` stops the storage's timer and does **not** quit the client: close it yourself
 * after `server.close()`.
 *
 * @example
 * ```ts
 * // npm install redis
 * import cluster from 'node:cluster';
 * import { availableParallelism } from 'node:os';
 * import { createClient } from 'redis';
 * import { RedisStorage, Server } from 'bare-session';
 *
 * if (cluster.isPrimary) {
 *   for (let i = 0; i < availableParallelism(); i++) cluster.fork();
 * } else {
 *   const client = await createClient({ url: process.env.REDIS_URL }).connect();
 *   const s = new Server().setSessionStorage(new RedisStorage({ client }));
 *   s.all('/count', (r) => {
 *     const n = Number(r.session.get('n') ?? 0) + 1;
 *     r.session.set('n', n);
 *     r.response.write({ n, pid: process.pid });
 *   });
 *   s.setPort(8199).run(); // every worker on one port; any worker serves any session
 * }
 * ```
 */
export class RedisStorage implements Storage {
  readonly #send: Send;
  readonly #prefix: string;
  readonly #timeoutMs: number;
  readonly #intervalMs: number;
  /** Sessions (by key) whose life was extended within the rate limit's window. */
  readonly #extended: ExpiringCache<string, true> | undefined;
  #maxSize = DEFAULT_MAX_SIZE;
  #maxAgeMs = MAX_TTL;

  /**
   * @throws TypeError when an option is invalid (the client is none of the {@link RedisClient}s,
   *   the prefix not a string, a duration not one)
   */
  constructor({ client, prefix = 'bare-session:', timeout = '2s', ttlUpdateInterval = '1m', now = Date.now }: RedisStorageOptions) {
    this.#send = sender(client);
    if (typeof prefix !== 'string') throw new TypeError(`option prefix is invalid: ${describe(prefix)} (expected a string)`);
    if (typeof now !== 'function') throw new TypeError(`option now is invalid: ${describe(now)} (expected a function returning milliseconds)`);
    this.#prefix = prefix;
    this.#timeoutMs = parseDuration(timeout, 'timeout');
    this.#intervalMs = parseDuration(ttlUpdateInterval, 'ttlUpdateInterval', true);
    this.#extended = this.#intervalMs > 0 ? new ExpiringCache<string, true>({ max: RATE_LIMIT_MAX, now, sweepInterval: this.#intervalMs }) : undefined;
  }

  /** Takes the server's `sessionMaxAge` (no life is longer) and `sessionMaxSize` (enforced by `set` and `patch`). */
  configure(settings: StorageSettings): void {
    this.#maxAgeMs = settings.maxAgeMs;
    this.#maxSize = settings.maxSize;
  }

  /** The session (one `HGETALL`), or `undefined` when it is missing, expired or not valid JSON. */
  async get(id: string): Promise<SessionData | undefined> {
    const key = this.#key(id);
    const reply = await this.#run('read', (send) => send(key, ['HGETALL', key]));
    return decode(reply);
  }

  /** Stores the whole session for `ttlMs` (one `EVALSHA`), replacing what was there. */
  async set(id: string, data: SessionData, ttlMs: number): Promise<void> {
    const key = this.#key(id);
    const ttl = this.#ttl(ttlMs);
    const args = ['EVALSHA', SET.sha, '1', key, ttl, MARKER, LAYOUT_VERSION];
    let size = 2;
    let n = 0;
    for (const k of Object.keys(data)) {
      const json = JSON.stringify(data[k]);
      if (json === undefined) continue;
      size += Buffer.byteLength(k) + Buffer.byteLength(json) + 4;
      n++;
      args.push(DATA + k, json);
    }
    if (n > 0) size--;
    if (size > this.#maxSize) throw sessionTooLarge(size, this.#maxSize);
    const reply = await this.#run('write', (send) => this.#eval(send, SET, key, args));
    if (reply !== 1) throw unexpected('write', reply);
    this.#extended?.set(key, true, this.#window(ttlMs));
  }

  /**
   * Applies one request's changes to the session as stored now, atomically (one `EVALSHA`),
   * and gives it `ttlMs` from now.
   * @returns `false`, writing nothing, when the session no longer exists
   * @throws SessionError `ESESSIONTOOLARGE` when the result would exceed `sessionMaxSize`
   *   (nothing is written)
   */
  async patch(id: string, changes: SessionChanges, ttlMs: number): Promise<boolean> {
    const key = this.#key(id);
    const args = ['EVALSHA', PATCH.sha, '1', key, this.#ttl(ttlMs), String(this.#maxSize), changes.clear ? '1' : '0', String(changes.remove.length)];
    for (const k of changes.remove) args.push(DATA + k);
    const set = changes.set;
    for (const k of Object.keys(set)) {
      const json = JSON.stringify(set[k]);
      if (json !== undefined) args.push(DATA + k, json);
    }
    const reply = await this.#run('write', (send) => this.#eval(send, PATCH, key, args));
    if (reply === 1) {
      this.#extended?.set(key, true, this.#window(ttlMs));
      return true;
    }
    if (reply === 0) {
      this.#extended?.delete(key);
      return false;
    }
    if (typeof reply === 'number' && Number.isSafeInteger(reply) && reply < 0) throw sessionTooLarge(-reply, this.#maxSize);
    throw unexpected('write', reply);
  }

  /**
   * Extends the session's life to `ttlMs` from now (one `PEXPIRE`), unless this process did
   * within `ttlUpdateInterval`: then it sends nothing.
   * @returns whether the session exists, or `undefined` when nothing was sent (the storage
   *   cannot tell then)
   */
  async touch(id: string, ttlMs: number): Promise<boolean | undefined> {
    const key = this.#key(id);
    const extended = this.#extended;
    if (extended?.has(key) === true) return undefined;
    const reply = await this.#run('touch', (send) => send(key, ['PEXPIRE', key, this.#ttl(ttlMs)]));
    if (reply === 1) {
      extended?.set(key, true, this.#window(ttlMs));
      return true;
    }
    if (reply === 0) return false;
    throw unexpected('touch', reply);
  }

  /** Deletes the session (one `UNLINK`); a missing one is no error. */
  async remove(id: string): Promise<void> {
    const key = this.#key(id);
    this.#extended?.delete(key);
    const reply = await this.#run('delete', (send) => send(key, ['UNLINK', key]));
    if (typeof reply !== 'number') throw unexpected('delete', reply);
  }

  /** Stops the rate limit's timer. Does not quit the client, which stays the user's to close. */
  async close(): Promise<void> {
    this.#extended?.close();
  }

  /** The Redis key of a session: the prefix and the SHA-256 of its id. */
  #key(id: string): string {
    return this.#prefix + hash('sha256', id, 'hex');
  }

  /** A time to live as `PEXPIRE` takes it: whole milliseconds, at least 1, at most `sessionMaxAge`. */
  #ttl(ttlMs: number): string {
    const ms = Math.min(ttlMs, this.#maxAgeMs, MAX_TTL);
    return String(ms >= 1 ? Math.ceil(ms) : 1);
  }

  /** How long a life extension stands: the interval, at most a quarter of the life. */
  #window(ttlMs: number): number {
    return Math.max(1, Math.min(this.#intervalMs, Math.floor(Math.min(ttlMs, this.#maxAgeMs) / 4)));
  }

  /**
   * Runs a script by its digest (`args` is its `EVALSHA` command); sends it whole (`EVAL`) when
   * the server does not know it.
   */
  async #eval(send: Send, s: Script, key: string, args: string[]): Promise<unknown> {
    try {
      return await send(key, args);
    } catch (err) {
      if (!/^NOSCRIPT\b/.test(errorMessage(err))) throw err;
    }
    const again = args.slice();
    again[0] = 'EVAL';
    again[1] = s.source;
    return send(key, again);
  }

  /**
   * Runs one operation against the client within the timeout. Any failure becomes a
   * `StorageError`.
   */
  #run(what: string, work: (send: Send) => Promise<unknown>): Promise<unknown> {
    return new Promise((resolve, reject) => {
      let settled = false;
      const timer = setTimeout(() => {
        settled = true;
        reject(new StorageError(`redis did not answer within ${this.#timeoutMs} ms; could not ${what} a session`));
      }, this.#timeoutMs);
      timer.unref();
      let pending: Promise<unknown>;
      try {
        pending = work(this.#send);
      } catch (err) {
        pending = Promise.reject(err);
      }
      // Settles once; an answer after the timeout is dropped (and a late rejection handled).
      pending.then(
        (reply) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          resolve(reply);
        },
        (err: unknown) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          reject(new StorageError(`redis failed to ${what} a session: ${errorMessage(err).slice(0, 200)}`, { cause: err }));
        },
      );
    });
  }
}

/** The message of an error, whatever was thrown. */
function errorMessage(err: unknown): string {
  const message = (err as { message?: unknown } | null)?.message;
  return typeof message === 'string' ? message : String(err);
}

function unexpected(what: string, reply: unknown): StorageError {
  const shape = reply === null ? 'null' : Array.isArray(reply) ? 'an array' : typeof reply;
  return new StorageError(`redis answered ${shape} where a ${what} expects something else`);
}

/**
 * A session from an `HGETALL` reply: a flat array of fields and values (RESP2), or a `Map` or
 * a record (RESP3). `undefined` for an empty reply (no such key) or a value that is not JSON.
 * @throws StorageError for a reply of another shape
 */
function decode(reply: unknown): SessionData | undefined {
  let pairs: unknown[];
  if (Array.isArray(reply)) {
    pairs = reply;
    if (pairs.length % 2 !== 0) throw unexpected('read', reply);
  } else if (reply instanceof Map) {
    pairs = [...reply].flat();
  } else if (reply !== null && typeof reply === 'object') {
    // node-redis answers HGETALL with a record (our fields are never "__proto__").
    pairs = [];
    for (const field of Object.keys(reply)) pairs.push(field, (reply as Record<string, unknown>)[field]);
  } else {
    throw unexpected('read', reply);
  }
  if (pairs.length === 0) return undefined;
  const data: SessionData = Object.create(null);
  for (let i = 0; i < pairs.length; i += 2) {
    const field = text(pairs[i]);
    const value = text(pairs[i + 1]);
    if (field === undefined || value === undefined) throw unexpected('read', reply);
    if (!field.startsWith(DATA)) continue;
    let parsed: JsonValue;
    try {
      parsed = JSON.parse(value) as JsonValue;
    } catch {
      return undefined;
    }
    setOwn(data, field.slice(DATA.length), parsed);
  }
  return data;
}

/** A reply's string (a `Buffer` decoded as UTF-8), or `undefined` for anything else. */
function text(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('utf8');
  return undefined;
}
