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
 * The owner index: one Redis set per owner (the session's `META.owner` key, on login) at
 * `prefix + 'owner:' + sha256(owner)`, whose members are the id hashes of the owner's sessions.
 * It never matches a session key (those are the prefix and 64 hex digits, nothing else).
 *
 * Round trips per operation:
 *
 * | operation | commands                                                                   |
 * |-----------|----------------------------------------------------------------------------|
 * | `get`     | `HGETALL`                                                                  |
 * | `set`     | `EVALSHA` of a script: `DEL`, `HSET` (marker and every key), `PEXPIRE`;     |
 * |           | with an owner, then one `EVALSHA` that adds it to the owner's set           |
 * | `patch`   | `EVALSHA` of a script: nothing if the key is gone, else the size check,    |
 * |           | then `HDEL` (clear, remove), `HSET` (set) and `PEXPIRE`, atomically; it     |
 * |           | answers the owner before and after: only when it changed (login, logout)   |
 * |           | does the client join the new owner's set (`EVALSHA`) and leave the former's |
 * |           | (`SREM`, then an `HGET` to check no other write gave the session back)      |
 * | `touch`   | `EVALSHA` (`PEXPIRE`, and the owner), at most once per `ttlUpdateInterval`   |
 * | `remove`  | `EVALSHA` (the owner, then `UNLINK`); with an owner, then one `SREM`        |
 * | `ownerSessions` | `SMEMBERS`, one `EVALSHA` (`HGETALL`, `PTTL`) per member in parallel,  |
 * |           | and a `SREM` of the members gone or no longer of that owner                 |
 * | `removeOwner` | `SMEMBERS`, one `EVALSHA` per member in parallel (`UNLINK` if still of   |
 * |           | that owner), then a `SREM`                                                  |
 * | `count`   | `SCAN` on each master                                                      |
 * | `list`    | `SCAN` on each master, and each batch's `PTTL`s in parallel                |
 *
 * A write or touch of an owned session also renews the owner's set (one more `EVALSHA`) when
 * this process has not done so for that session within the hour: see {@link RedisStorage}.
 *
 * A script the server no longer knows (`NOSCRIPT`: a restart, a failover, `SCRIPT FLUSH`) is
 * sent again whole with `EVAL`, within the same operation and its timeout. Every command names
 * exactly one key, declared in `KEYS`, so it works on Redis Cluster; the owner index is kept
 * with commands of their own (a session and its owner's set are in different slots), the same
 * on one Redis and on a cluster. `count()` and `list()` `SCAN` every master.
 *
 * @module
 */
import { createHash, hash } from 'node:crypto';
import { ExpiringCache } from '../cache.js';
import { type Duration, describe, parseDuration } from '../duration.js';
import { SessionError, StorageError, sessionTooLarge } from '../errors.js';
import { newRecord, setOwn } from '../json.js';
import { META, NOT_NOW, SYNC, type JsonValue, type SessionChanges, type SessionData, type Storage, type StorageSettings, type StoredSession, type SyncStorage } from './storage.js';

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
  /**
   * The clock, in milliseconds: of the `ttlUpdateInterval` rate limit, of the owner index's
   * renewals, and of the expiries `list()` and `ownerSessions()` report (Redis's time to live
   * added to it). Tests inject one. @default Date.now
   */
  now?: () => number;
}


/** The field of the layout's version; its presence makes a session exist. */
const MARKER = 'm:v';
const LAYOUT_VERSION = '1';
/** Session keys' fields start with this. */
const DATA = 'k:';
/** The field of a session's owner: its `META.owner` key, as any key is stored. */
const OWNER_FIELD = DATA + META.owner;
/** What follows the prefix in the key of an owner's set (then the owner's SHA-256, in hex). */
const OWNER_KEY = 'owner:';
/** The default `sessionMaxSize` until the server configures the storage. */
const DEFAULT_MAX_SIZE = 1024 * 1024;
/** Sessions whose last life extension is remembered; past it the least recently used is forgotten. */
const RATE_LIMIT_MAX = 100_000;
/** The longest life given to a session, as `parseDuration` allows. */
const MAX_TTL = 8.64e15;
/** The longest idle timeout a server gives (400 days): the owner index's life before `configure`. */
const LONGEST_LIFE = 400 * 86_400_000;
/** A session's owner's set is renewed at most once per this, per session and process. */
const OWNER_RENEWAL = 3_600_000;
/** Keys `SCAN` is asked for per call. */
const SCAN_COUNT = 1_000;
/** Sessions of an owner read or removed at once. */
const OWNER_BATCH = 100;
/** A session's key, after the prefix. */
const ID_HASH = /^[0-9a-f]{64}$/;

/** A string as a Lua literal (decimal escapes for anything but printable ASCII). */
function lua(value: string): string {
  let out = "'";
  for (const byte of Buffer.from(value)) {
    out += byte >= 0x20 && byte < 0x7f && byte !== 0x27 && byte !== 0x5c ? String.fromCharCode(byte) : `\\${String(byte).padStart(3, '0')}`;
  }
  return `${out}'`;
}

// Arguments go to HSET and HDEL 1 000 at a time: Lua's unpack() has a limit of about 8 000.
const LUA_CHUNK = `
local OWNER = ${lua(OWNER_FIELD)}
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
 * field, value pairs (the marker first). Returns 1, or {1, owner} when what it replaced had an
 * owner (the JSON of its `META.owner`).
 */
const SET_SCRIPT = `${LUA_CHUNK}
local prev = redis.call('HGET', KEYS[1], OWNER)
redis.call('DEL', KEYS[1])
chunked('HSET', KEYS[1], ARGV, 2, #ARGV)
redis.call('PEXPIRE', KEYS[1], ARGV[1])
if prev then return {1, prev} end
return 1
`;

/**
 * Applies one request's changes. KEYS[1]: the session's key. ARGV[1]: time to live in ms;
 * ARGV[2]: the largest size; ARGV[3]: '1' to clear first; ARGV[4]: n, the number of fields to
 * remove, in ARGV[5..4+n]; then field, value pairs to set. Returns 0 (writing nothing) when the
 * key does not exist, -size (writing nothing) when the result would be larger than ARGV[2],
 * else 1, or {1, owner before, owner after} (each the JSON of `META.owner`, or '' for none) when
 * the session had or has an owner. The size of a session: the sum over its keys of key bytes +
 * value bytes + 4, plus 2, less 1 when it has a key: its JSON's length when no key needs
 * escaping.
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
local prev = ''
for i = 1, #all, 2 do
  local f = all[i]
  if string.sub(f, 1, 2) == '${DATA}' then
    stored[#stored + 1] = f
    if not clear then sizes[f] = #f - 2 + #all[i + 1] + 4 end
    if f == OWNER then prev = all[i + 1] end
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
local cur = redis.call('HGET', key, OWNER) or ''
if prev == '' and cur == '' then return 1 end
return {1, prev, cur}
`;

/**
 * Extends a session's life. KEYS[1]: the session's key; ARGV[1]: time to live in ms. Returns 0
 * when the key does not exist (creating nothing), else 1, or {1, owner} when it has an owner.
 */
const TOUCH_SCRIPT = `${LUA_CHUNK}
if redis.call('PEXPIRE', KEYS[1], ARGV[1]) == 0 then return 0 end
local owner = redis.call('HGET', KEYS[1], OWNER)
if owner then return {1, owner} end
return 1
`;

/**
 * Deletes a session. KEYS[1]: the session's key. Returns how many keys it deleted (0 or 1), or
 * {1, owner} when the deleted session had an owner.
 */
const REMOVE_SCRIPT = `${LUA_CHUNK}
local owner = redis.call('HGET', KEYS[1], OWNER)
local n = redis.call('UNLINK', KEYS[1])
if owner and n == 1 then return {1, owner} end
return n
`;

/**
 * A session with its time to live, at once. KEYS[1]: the session's key. Returns 0 when it does
 * not exist, else {pttl, field, value, field, value, ...}.
 */
const READ_SCRIPT = `
local all = redis.call('HGETALL', KEYS[1])
if #all == 0 then return 0 end
table.insert(all, 1, redis.call('PTTL', KEYS[1]))
return all
`;

/**
 * Deletes a session if it belongs to an owner. KEYS[1]: the session's key; ARGV[1]: the JSON of
 * the owner. Returns 1 when deleted, 0 when there was no session, -1 when it has another owner
 * or none.
 */
const REMOVE_OWNED_SCRIPT = `${LUA_CHUNK}
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HGET', KEYS[1], OWNER) ~= ARGV[1] then return -1 end
redis.call('UNLINK', KEYS[1])
return 1
`;

/**
 * Adds sessions to an owner's set and makes the set live at least so long. KEYS[1]: the set's
 * key; ARGV[1]: its time to live in ms; ARGV[2..]: id hashes. Returns 1.
 */
const OWNER_ADD_SCRIPT = `
redis.call('SADD', KEYS[1], unpack(ARGV, 2))
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
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
const TOUCH: Script = script(TOUCH_SCRIPT);
const REMOVE: Script = script(REMOVE_SCRIPT);
const READ: Script = script(READ_SCRIPT);
const REMOVE_OWNED: Script = script(REMOVE_OWNED_SCRIPT);
const OWNER_ADD: Script = script(OWNER_ADD_SCRIPT);

/** Sends one command; `key` is the one key it names (for a cluster client's routing). */
type Send = (key: string, args: string[]) => Promise<unknown>;
/** Sends one command to one node. */
type NodeSend = (args: string[]) => Promise<unknown>;

/** How the storage talks to the client: by key, and to each master for `SCAN`. */
interface Connection {
  readonly send: Send;
  /** One sender per master; `undefined` for a cluster client that gives no list of its masters. */
  readonly masters: (() => Promise<NodeSend[]>) | undefined;
}

/**
 * How to send commands through `client`, recognised by its shape.
 * @throws TypeError when it is none of the {@link RedisClient}s
 */
function connect(client: unknown): Connection {
  if (typeof client === 'function') {
    // A function sends to one Redis: SCAN through it is the whole keyspace.
    const fn = client as RedisCommandFunction;
    return { send: (_key, args) => fn(args), masters: async () => [fn] };
  }
  if (client !== null && typeof client === 'object') {
    const c = client as Record<string, unknown>;
    // ioredis and iovalkey (and their Cluster) also have a sendCommand, of a Command object.
    if (typeof c['call'] === 'function') {
      type Io = { call(command: string, ...args: string[]): Promise<unknown> };
      const io = client as Io;
      const viaIo = (node: Io): NodeSend => (args) => node.call(...(args as [string, ...string[]]));
      // ioredis's Cluster: nodes('master') gives a client per master.
      const nodes = c['nodes'];
      const masters = typeof nodes === 'function' ? async () => (nodes.call(client, 'master') as Io[]).map(viaIo) : async () => [viaIo(io)];
      return { send: (_key, args) => io.call(...(args as [string, ...string[]])), masters };
    }
    if (typeof c['sendCommand'] === 'function') {
      const sendCommand = c['sendCommand'] as (...a: unknown[]) => Promise<unknown>;
      // node-redis's cluster: routed by the first key. Reads go to the master too (isReadonly
      // false), so that a write in one process is read at once in every other.
      const isCluster = typeof c['getSlotRandomNode'] === 'function' || typeof c['nodeClient'] === 'function' || typeof c['getMasters'] === 'function' || sendCommand.length >= 3;
      if (!isCluster) return { send: (_key, args) => sendCommand.call(client, args), masters: async () => [(args) => sendCommand.call(client, args)] };
      return { send: (key, args) => sendCommand.call(client, key, false, args), masters: nodeRedisMasters(c) };
    }
  }
  throw new TypeError(`option client is invalid: ${describe(client)} (expected a node-redis or ioredis client, or a function taking the command's arguments)`);
}

/** The masters of a node-redis cluster (`masters` and `nodeClient`), when it gives them. */
function nodeRedisMasters(c: Record<string, unknown>): (() => Promise<NodeSend[]>) | undefined {
  const nodeClient = typeof c['nodeClient'] === 'function' ? c['nodeClient'] : c['getNodeClient'];
  if (typeof nodeClient !== 'function') return undefined;
  const list = (): unknown => (typeof c['getMasters'] === 'function' ? (c['getMasters'] as () => unknown).call(c) : c['masters']);
  if (!Array.isArray(list())) return undefined;
  return async () =>
    Promise.all(
      (list() as unknown[]).map(async (master) => {
        const node = (await (nodeClient as (m: unknown) => unknown).call(c, master)) as { sendCommand(args: string[]): Promise<unknown> };
        return (args: string[]) => node.sendCommand(args);
      }),
    );
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
 * **Owners** (`server.sessions.of` and `destroyAll`). Each owner has a Redis set of its
 * sessions' id hashes, kept with commands of their own, on one Redis as on a cluster (where a
 * session and its owner's set are in different slots). The scripts that write, touch or remove
 * a session answer its owner, so an ordinary read or write costs nothing more; a session joins
 * its owner's set after the write that gives it the owner (a login: one more command), and
 * leaves it after the removal that ends it (a logout by `destroy`: one `SREM`) or the write
 * that takes the owner away (a `SREM`, then an `HGET` that puts it back if another write gave
 * it to that owner again meanwhile). The set may hold a session that is gone or owned by
 * someone else, never lack one but for a command that failed (which the next renewal, below,
 * repairs): `ownerSessions` reads each member (one script each, in parallel) and lists only
 * the live sessions still of that owner, taking the others out of the set, and `removeOwner`
 * deletes a member only if it is still of that owner, in one script each, so a session that
 * changed hands is never ended for its former owner. A write in flight elsewhere never brings
 * an ended session back (a `patch` or `touch` of a missing key writes nothing, and `set` only
 * ever writes a new id); a login that lands while `removeOwner` runs may survive it, as if it
 * came just after.
 *
 * The set expires too, so an owner who never comes back leaves nothing behind. Trade-off: its
 * time to live is the longest a session may live (the server's `sessionMaxAge`, or its
 * `sessionMaxAgeLimit` when longer; 400 days by default) plus up to an hour, renewed when a
 * session joins it and, since a session in use outlives its login, when a write or a touch of
 * an owned session finds that this process has not renewed it for that session within the
 * hour (or a quarter of the life, when shorter): one more command, at most once an hour per
 * session and process. An owner's set thus outlives the owner's last session by up to that
 * life, and never expires before it; each renewal also adds the session again, so an index
 * that lost one (a failed command, an eviction) is whole again within the hour of its next use.
 *
 * **Counting and listing.** `count()` and `list()` `SCAN` the session keys only (`MATCH` the
 * prefix followed by 64 hex digits, so never an owner's set), 1 000 keys asked for at a time;
 * `list()` reads the time to live of each batch (`PTTL`, in parallel) and yields it before the
 * next, holding no more than a batch. `SCAN`'s own guarantees hold: a session that lives
 * through the whole walk is counted and listed, one created or ended during it may or may not
 * be, and while Redis resizes its table one may come twice. On Redis Cluster both `SCAN` every
 * master, through the client's list of them (ioredis's `nodes('master')`, node-redis's
 * `masters` and `nodeClient`); a cluster client that gives none makes them reject with a
 * `SessionError` of code `'ENOTSUPPORTED'`. A function client is taken as one Redis.
 *
 * `close()` stops the storage's timers and does **not** quit the client: close it yourself
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
  readonly #masters: (() => Promise<NodeSend[]>) | undefined;
  readonly #prefix: string;
  /** The `SCAN` pattern of session keys: the prefix, escaped, and 64 hex digits. */
  readonly #pattern: string;
  readonly #timeoutMs: number;
  readonly #intervalMs: number;
  readonly #now: () => number;
  /** Sessions (by key) whose life was extended within the rate limit's window. */
  readonly #extended: ExpiringCache<string, true> | undefined;
  /** Sessions (by owner's key and id hash) whose owner's set this process renewed lately. */
  readonly #renewed: ExpiringCache<string, true>;
  #maxSize = DEFAULT_MAX_SIZE;
  #maxAgeMs = MAX_TTL;
  #configured = false;
  /**
   * The id last named, with its SHA-256 and its Redis key: a request reads its session, then
   * touches or patches it under the same id, which is hashed once.
   */
  #named: Named | undefined;

  /**
   * @throws TypeError when an option is invalid (the client is none of the {@link RedisClient}s,
   *   the prefix not a string, a duration not one)
   */
  constructor({ client, prefix = 'bare-session:', timeout = '2s', ttlUpdateInterval = '1m', now = Date.now }: RedisStorageOptions) {
    const connection = connect(client);
    this.#send = connection.send;
    this.#masters = connection.masters;
    if (typeof prefix !== 'string') throw new TypeError(`option prefix is invalid: ${describe(prefix)} (expected a string)`);
    if (typeof now !== 'function') throw new TypeError(`option now is invalid: ${describe(now)} (expected a function returning milliseconds)`);
    this.#prefix = prefix;
    this.#pattern = prefix.replace(/[*?[\]\\]/g, '\\$&') + '[0-9a-f]'.repeat(64);
    this.#now = now;
    this.#timeoutMs = parseDuration(timeout, 'timeout');
    this.#intervalMs = parseDuration(ttlUpdateInterval, 'ttlUpdateInterval', true);
    this.#extended = this.#intervalMs > 0 ? new ExpiringCache<string, true>({ max: RATE_LIMIT_MAX, now, sweepInterval: this.#intervalMs }) : undefined;
    this.#renewed = new ExpiringCache<string, true>({ max: RATE_LIMIT_MAX, now, sweepInterval: '1m' });
  }

  /** Takes the server's `sessionMaxAge` (no life is longer) and `sessionMaxSize` (enforced by `set` and `patch`). */
  configure(settings: StorageSettings): void {
    this.#maxAgeMs = settings.maxAgeMs;
    this.#maxSize = settings.maxSize;
    this.#configured = true;
  }

  /**
   * @internal What answers at once: a touch within the rate limit, which sends nothing (and so
   * cannot tell whether the session exists); everything else goes to Redis.
   */
  readonly [SYNC]: SyncStorage = {
    get: () => NOT_NOW,
    set: () => NOT_NOW,
    touch: (id) => (this.#extended?.has(this.#name(id).key) === true ? undefined : NOT_NOW),
  };

  /** The session (one `HGETALL`), or `undefined` when it is missing, expired or not valid JSON. */
  get(id: string): Promise<SessionData | undefined> {
    const { key } = this.#name(id);
    return this.#run('read', (send) => send(key, ['HGETALL', key]), decode);
  }

  /**
   * Stores the whole session for `ttlMs` (one `EVALSHA`), replacing what was there; then, when
   * it has an owner, adds it to the owner's set (one more).
   */
  async set(id: string, data: SessionData, ttlMs: number): Promise<void> {
    const { hash: idHash, key } = this.#name(id);
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
    if (reply !== 1 && !isPair(reply)) throw unexpected('write', reply);
    this.#extended?.set(key, true, this.#window(ttlMs));
    const owner = ownerOf(data[META.owner]);
    const before = reply === 1 ? undefined : ownerOf(jsonOf(reply[1]));
    // Joined after the write, never before: a member whose key does not exist yet could be
    // taken out as gone by a concurrent ownerSessions.
    await Promise.all([owner === undefined ? undefined : this.#join(owner, [idHash], Number(ttl), true), before === undefined || before === owner ? undefined : this.#leave(before, [idHash], [idHash])]);
  }

  /**
   * Applies one request's changes to the session as stored now, atomically (one `EVALSHA`),
   * and gives it `ttlMs` from now. When the changes gave the session another owner, adds it to
   * that owner's set and takes it from the former's (a command each).
   * @returns `false`, writing nothing, when the session no longer exists
   * @throws SessionError `ESESSIONTOOLARGE` when the result would exceed `sessionMaxSize`
   *   (nothing is written)
   */
  async patch(id: string, changes: SessionChanges, ttlMs: number): Promise<boolean> {
    const { hash: idHash, key } = this.#name(id);
    const ttl = this.#ttl(ttlMs);
    const args = ['EVALSHA', PATCH.sha, '1', key, ttl, String(this.#maxSize), changes.clear ? '1' : '0', String(changes.remove.length)];
    for (const k of changes.remove) args.push(DATA + k);
    const set = changes.set;
    for (const k of Object.keys(set)) {
      const json = JSON.stringify(set[k]);
      if (json !== undefined) args.push(DATA + k, json);
    }
    const reply = await this.#run('write', (send) => this.#eval(send, PATCH, key, args));
    if (reply === 0) {
      this.#extended?.delete(key);
      return false;
    }
    if (reply === 1 || (Array.isArray(reply) && reply.length === 3 && reply[0] === 1)) {
      this.#extended?.set(key, true, this.#window(ttlMs));
      if (reply !== 1) {
        const before = ownerOf(jsonOf(reply[1]));
        const after = ownerOf(jsonOf(reply[2]));
        await Promise.all([
          // A new owner: joined now. The same owner: its set renewed, at most once an hour.
          after === undefined ? undefined : this.#join(after, [idHash], Number(ttl), after !== before),
          before === undefined || before === after ? undefined : this.#leave(before, [idHash], [idHash]),
        ]);
      }
      return true;
    }
    if (typeof reply === 'number' && Number.isSafeInteger(reply) && reply < 0) throw sessionTooLarge(-reply, this.#maxSize);
    throw unexpected('write', reply);
  }

  /**
   * Extends the session's life to `ttlMs` from now (one `EVALSHA`: `PEXPIRE`, and the owner),
   * unless this process did within `ttlUpdateInterval`: then it sends nothing.
   * @returns whether the session exists, or `undefined` when nothing was sent (the storage
   *   cannot tell then)
   */
  async touch(id: string, ttlMs: number): Promise<boolean | undefined> {
    const { hash: idHash, key } = this.#name(id);
    const extended = this.#extended;
    if (extended?.has(key) === true) return undefined;
    const ttl = this.#ttl(ttlMs);
    const reply = await this.#run('touch', (send) => this.#eval(send, TOUCH, key, ['EVALSHA', TOUCH.sha, '1', key, ttl]));
    if (reply === 0) return false;
    if (reply === 1 || isPair(reply)) {
      extended?.set(key, true, this.#window(ttlMs));
      const owner = reply === 1 ? undefined : ownerOf(jsonOf(reply[1]));
      if (owner !== undefined) await this.#join(owner, [idHash], Number(ttl), false);
      return true;
    }
    throw unexpected('touch', reply);
  }

  /**
   * Deletes the session (one `EVALSHA`: its owner, then `UNLINK`); a missing one is no error.
   * A session that had an owner then leaves the owner's set (one `SREM`).
   */
  async remove(id: string): Promise<void> {
    const { hash: idHash, key } = this.#name(id);
    this.#extended?.delete(key);
    const reply = await this.#run('delete', (send) => this.#eval(send, REMOVE, key, ['EVALSHA', REMOVE.sha, '1', key]));
    if (isPair(reply)) {
      const owner = ownerOf(jsonOf(reply[1]));
      if (owner !== undefined) await this.#leave(owner, [idHash], []);
      return;
    }
    if (typeof reply !== 'number') throw unexpected('delete', reply);
  }

  /**
   * The live sessions of `owner`: the members of its set, each read with its time to live (one
   * `EVALSHA` each, in parallel), those gone or no longer of that owner left out, and taken out
   * of the set.
   */
  async ownerSessions(owner: string): Promise<StoredSession[]> {
    const members = await this.#members(owner);
    const out: StoredSession[] = [];
    const gone: string[] = [];
    const others: string[] = [];
    await inBatches(members, async (idHash) => {
      const key = this.#prefix + idHash;
      const reply = await this.#run('read', (send) => this.#eval(send, READ, key, ['EVALSHA', READ.sha, '1', key]));
      if (reply === 0) {
        gone.push(idHash);
        return;
      }
      if (!Array.isArray(reply) || typeof reply[0] !== 'number') throw unexpected('read', reply);
      const data = decode(reply.slice(1));
      // Not JSON: unreadable, and so not listed; it stays in the set, for removeOwner to end.
      if (data === undefined) return;
      if (data[META.owner] !== owner) {
        others.push(idHash);
        return;
      }
      out.push({ idHash, expiresAt: this.#expiresAt(reply[0]), data });
    });
    await this.#leave(owner, [...gone, ...others], others);
    return out;
  }

  /**
   * Ends every live session of `owner` but the one whose id hashes to `exceptIdHash`, for every
   * process at once: each member of the owner's set is deleted (one `EVALSHA` each, in
   * parallel) if it is still of that owner, then taken out of the set.
   * @returns how many sessions were ended
   */
  async removeOwner(owner: string, exceptIdHash?: string): Promise<number> {
    const members = (await this.#members(owner)).filter((m) => m !== exceptIdHash);
    const json = JSON.stringify(owner);
    const removed: string[] = [];
    const gone: string[] = [];
    const others: string[] = [];
    await inBatches(members, async (idHash) => {
      const key = this.#prefix + idHash;
      const reply = await this.#run('delete', (send) => this.#eval(send, REMOVE_OWNED, key, ['EVALSHA', REMOVE_OWNED.sha, '1', key, json]));
      if (reply === 1) {
        this.#extended?.delete(key);
        removed.push(idHash);
      } else if (reply === 0) {
        gone.push(idHash);
      } else if (reply === -1) {
        others.push(idHash);
      } else {
        throw unexpected('delete', reply);
      }
    });
    await this.#leave(owner, [...removed, ...gone, ...others], others);
    return removed.length;
  }

  /** How many live sessions there are: the session keys `SCAN` finds, on every master. */
  async count(): Promise<number> {
    const masters = await this.#nodes();
    const counts = await Promise.all(
      masters.map(async (node) => {
        let n = 0;
        let cursor = '0';
        do {
          const [next, keys] = await this.#scan(node, cursor);
          n += keys.length;
          cursor = next;
        } while (cursor !== '0');
        return n;
      }),
    );
    return counts.reduce((a, b) => a + b, 0);
  }

  /**
   * Every live session's id hash and expiry, a `SCAN` batch at a time (each batch's `PTTL`s in
   * parallel), master after master.
   */
  async *list(): AsyncGenerator<{ readonly idHash: string; readonly expiresAt: number }> {
    const masters = await this.#nodes();
    const skip = this.#prefix.length;
    for (const node of masters) {
      let cursor = '0';
      do {
        const [next, keys] = await this.#scan(node, cursor);
        cursor = next;
        const ttls = await Promise.all(keys.map((key) => this.#run('list', (send) => send(key, ['PTTL', key]))));
        for (const [i, key] of keys.entries()) {
          const pttl = ttls[i];
          if (typeof pttl !== 'number') throw unexpected('list', pttl);
          // -2: expired or removed since the SCAN.
          if (pttl !== -2) yield { idHash: key.slice(skip), expiresAt: this.#expiresAt(pttl) };
        }
      } while (cursor !== '0');
    }
  }

  /** Stops the rate limits' timers. Does not quit the client, which stays the user's to close. */
  async close(): Promise<void> {
    this.#extended?.close();
    this.#renewed.close();
  }

  /** A session's id hash and Redis key (the prefix and the hash). */
  #name(id: string): Named {
    let named = this.#named;
    if (named === undefined || named.id !== id) {
      const hash = hashOf(id);
      named = { id, hash, key: this.#prefix + hash };
      this.#named = named;
    }
    return named;
  }

  /** The Redis key of an owner's set. */
  #ownerKey(owner: string): string {
    return this.#prefix + OWNER_KEY + hashOf(owner);
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

  /** When a session with `pttl` ms to live expires, on the storage's clock (`-1`, no expiry: the longest life). */
  #expiresAt(pttl: number): number {
    return this.#now() + (pttl >= 0 ? pttl : Math.min(this.#maxAgeMs, MAX_TTL));
  }

  /**
   * Adds sessions to an owner's set, and makes the set live at least the longest a session may
   * (plus the renewal window), in one `EVALSHA`. Unless `force`, does nothing for a session
   * whose set this process renewed within the window.
   */
  async #join(owner: string, idHashes: string[], ttlMs: number, force: boolean): Promise<void> {
    const ownerKey = this.#ownerKey(owner);
    const due = force ? idHashes : idHashes.filter((h) => !this.#renewed.has(`${ownerKey} ${h}`));
    if (due.length === 0) return;
    // Before configure: the longest life a server gives, or this one when longer.
    const base = this.#configured ? Math.max(Math.min(this.#maxAgeMs, MAX_TTL), ttlMs) : Math.max(LONGEST_LIFE, ttlMs);
    const window = Math.max(1, Math.min(OWNER_RENEWAL, Math.floor(base / 4)));
    const args = ['EVALSHA', OWNER_ADD.sha, '1', ownerKey, String(Math.ceil(base + window)), ...due];
    const reply = await this.#run('index', (send) => this.#eval(send, OWNER_ADD, ownerKey, args));
    if (reply !== 1) throw unexpected('index', reply);
    for (const h of due) this.#renewed.set(`${ownerKey} ${h}`, true, window);
  }

  /**
   * Takes sessions out of an owner's set (one `SREM`); then reads the owner of those that were
   * live (`live`, a subset), and puts back any that was given this owner again meanwhile (by a
   * write whose own join came before this `SREM`). Never rejects: a member left behind is
   * harmless (never listed, never ended for this owner, taken out by a later listing), and one
   * taken out by a failed check is put back by the next renewal.
   */
  async #leave(owner: string, idHashes: string[], live: string[]): Promise<void> {
    if (idHashes.length === 0) return;
    const ownerKey = this.#ownerKey(owner);
    for (const h of idHashes) this.#renewed.delete(`${ownerKey} ${h}`);
    try {
      await this.#run('unindex', (send) => send(ownerKey, ['SREM', ownerKey, ...idHashes]));
      if (live.length === 0) return;
      const back: string[] = [];
      await inBatches(live, async (idHash) => {
        const key = this.#prefix + idHash;
        const reply = await this.#run('read', (send) => send(key, ['HGET', key, OWNER_FIELD]));
        if (ownerOf(jsonOf(reply)) === owner) back.push(idHash);
      });
      if (back.length > 0) await this.#join(owner, back, 0, true);
    } catch {
      // See above: the index tolerates a stale member, and heals a missing one.
    }
  }

  /** The id hashes in an owner's set (`SMEMBERS`). */
  async #members(owner: string): Promise<string[]> {
    const ownerKey = this.#ownerKey(owner);
    const reply = await this.#run('list', (send) => send(ownerKey, ['SMEMBERS', ownerKey]));
    const members = reply instanceof Set ? [...reply] : reply;
    if (!Array.isArray(members)) throw unexpected('list', reply);
    const out: string[] = [];
    for (const m of members) {
      const idHash = text(m);
      if (idHash === undefined) throw unexpected('list', reply);
      if (ID_HASH.test(idHash)) out.push(idHash);
    }
    return out;
  }

  /** A sender per master, to `SCAN` with. */
  async #nodes(): Promise<NodeSend[]> {
    const masters = this.#masters;
    if (masters === undefined) {
      throw new SessionError("RedisStorage cannot count or list sessions through this Redis Cluster client: it gives no list of its masters to SCAN (node-redis's cluster needs masters and nodeClient, ioredis's Cluster nodes('master'))", 'ENOTSUPPORTED', 500);
    }
    const nodes = await this.#run('list', () => masters());
    return nodes as NodeSend[];
  }

  /** One `SCAN` of session keys on one node: the next cursor, and the keys. */
  async #scan(node: NodeSend, cursor: string): Promise<[string, string[]]> {
    const reply = await this.#run('list', () => node(['SCAN', cursor, 'MATCH', this.#pattern, 'COUNT', String(SCAN_COUNT)]));
    if (Array.isArray(reply) && reply.length === 2 && Array.isArray(reply[1])) {
      const next = text(reply[0]);
      const keys = (reply[1] as unknown[]).map(text);
      if (next !== undefined && keys.every((k) => k !== undefined)) return [next, keys as string[]];
    }
    throw unexpected('list', reply);
  }

  /**
   * Runs a script by its digest (`args` is its `EVALSHA` command); sends it whole (`EVAL`) when
   * the server does not know it.
   */
  #eval(send: Send, s: Script, key: string, args: string[]): Promise<unknown> {
    return Promise.resolve(send(key, args)).then(undefined, (err: unknown) => {
      if (!/^NOSCRIPT\b/.test(errorMessage(err))) throw err;
      const again = args.slice();
      again[0] = 'EVAL';
      again[1] = s.source;
      return send(key, again);
    });
  }

  /**
   * Runs one operation against the client within the timeout, and `map` on its answer. Any
   * failure of the client becomes a `StorageError`; `map`'s own error is passed on as it is.
   */
  #run(what: string, work: (send: Send) => Promise<unknown>): Promise<unknown>;
  #run<R>(what: string, work: (send: Send) => Promise<unknown>, map: (reply: unknown) => R): Promise<R>;
  #run(what: string, work: (send: Send) => Promise<unknown>, map?: (reply: unknown) => unknown): Promise<unknown> {
    return new Promise((resolve, reject) => {
      let settled = false;
      const timer = setTimeout(() => {
        settled = true;
        reject(new StorageError(`redis did not answer within ${this.#timeoutMs} ms; could not ${what} a session`));
      }, this.#timeoutMs);
      timer.unref();
      let pending: Promise<unknown>;
      try {
        // A plain function client may answer with a value rather than a promise.
        pending = Promise.resolve(work(this.#send));
      } catch (err) {
        pending = Promise.reject(err);
      }
      // Settles once; an answer after the timeout is dropped (and a late rejection handled).
      pending.then(
        (reply) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          if (map === undefined) {
            resolve(reply);
            return;
          }
          try {
            resolve(map(reply));
          } catch (err) {
            reject(err);
          }
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

/** The SHA-256 of a string, in hex. */
function hashOf(value: string): string {
  return hash('sha256', value, 'hex');
}

/** A session id with its SHA-256 and its Redis key. */
interface Named {
  readonly id: string;
  readonly hash: string;
  readonly key: string;
}

/** Runs `fn` on every item, {@link OWNER_BATCH} at a time in parallel. */
async function inBatches<T>(items: readonly T[], fn: (item: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += OWNER_BATCH) await Promise.all(items.slice(i, i + OWNER_BATCH).map(fn));
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

/** Whether a script answered `{1, value}`. */
function isPair(reply: unknown): reply is [1, unknown] {
  return Array.isArray(reply) && reply.length === 2 && reply[0] === 1;
}

/** The value of a stored field (JSON), or `undefined` when it is none or not JSON. */
function jsonOf(field: unknown): JsonValue | undefined {
  const json = text(field);
  if (json === undefined || json === '') return undefined;
  try {
    return JSON.parse(json) as JsonValue;
  } catch {
    return undefined;
  }
}

/** An owner, from a `META.owner` value: a non-empty string, else `undefined`. */
function ownerOf(value: JsonValue | undefined): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
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
  const data: SessionData = newRecord();
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
