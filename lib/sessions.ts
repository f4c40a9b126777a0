/**
 * `server.sessions`: what an application does with sessions other than the request's own:
 * count and walk them, list and end an owner's ("log out everywhere"), and listen to their
 * lifecycle events. Each call goes to the storage, so it holds for every process that shares it.
 */
import { SessionError } from './errors.js';
import { hashId } from './id.js';
import type { Session, SessionEvent } from './session.js';
import { META, type JsonValue, type Storage, type StoredSession } from './storage/storage.js';

/** One session of an owner, as {@link Sessions.of} lists it. */
export interface OwnedSession {
  /** The SHA-256 of its id, in hex: enough to tell sessions apart, useless to log in with. */
  readonly idHash: string;
  /** When it was created, in ms since the epoch (`undefined` for a session from before the library kept it). */
  readonly created: number | undefined;
  /** When it got its owner (the login), in ms since the epoch. */
  readonly ownedSince: number | undefined;
  /**
   * When it was last used, in ms since the epoch: its expiry less its idle timeout, so as exact
   * as the storage keeps the expiry (`FileStorage` writes reads' extensions once per
   * `ttlUpdateInterval`).
   */
  readonly lastSeen: number;
  /** When it expires, in ms since the epoch. */
  readonly expiresAt: number;
  /** What the application gave `setOwner` about it (a user agent, say). */
  readonly info: JsonValue | undefined;
}

/** A listener of {@link Sessions.on}; `request` is the request the event happened in, if any. */
export type SessionListener<E extends SessionEvent['type']> = (event: Extract<SessionEvent, { type: E }>, request: unknown) => void;

/** What the server hands {@link Sessions}. */
export interface SessionsHost {
  /** The storage in use. */
  storage(): Storage;
  /** The idle timeout of sessions, in ms. */
  maxAgeMs(): number;
  /** The clock, in ms. */
  now(): number;
  /** Called when the first listener arrives or the last leaves (the server rebuilds its manager). */
  listenersChanged(): void;
}

function unsupported(method: string, storage: Storage): SessionError {
  const name = (storage as { constructor?: { name?: unknown } }).constructor?.name;
  return new SessionError(`the session storage${typeof name === 'string' && name !== 'Object' ? ` ${name}` : ''} has no ${method}(): this feature needs a storage that has (MemoryStorage, FileStorage and RedisStorage do)`, 'ENOTSUPPORTED', 500);
}

/**
 * The sessions of a server, beyond the request's own.
 *
 * @example
 * ```ts
 * s.post('/logout-everywhere', async (r) => {
 *   await s.sessions.destroyAll(r.session.owner as string, { except: r.session });
 *   r.response.redirect('/');
 * });
 * s.sessions.on('created', (e) => audit.write(`session ${e.idHash} created`));
 * ```
 */
export class Sessions {
  readonly #host: SessionsHost;
  readonly #listeners = new Map<SessionEvent['type'], Set<(event: SessionEvent, request: unknown) => void>>();

  /** Made by the server: use `server.sessions`. */
  constructor(host: SessionsHost) {
    this.#host = host;
  }

  /** How many live sessions the storage holds. */
  async count(): Promise<number> {
    const storage = this.#host.storage();
    if (typeof storage.count !== 'function') throw unsupported('count', storage);
    return storage.count();
  }

  /** Every live session's id hash and expiry, walked a few at a time. */
  async *list(): AsyncGenerator<{ readonly idHash: string; readonly expiresAt: number }> {
    const storage = this.#host.storage();
    if (typeof storage.list !== 'function') throw unsupported('list', storage);
    yield* storage.list();
  }

  /** The live sessions of `owner` (see `r.session.setOwner`), the most recently used first. */
  async of(owner: string): Promise<OwnedSession[]> {
    if (typeof owner !== 'string' || owner === '') throw new TypeError(`session owner is invalid: ${String(owner)} (expected a non-empty string)`);
    const storage = this.#host.storage();
    if (typeof storage.ownerSessions !== 'function') throw unsupported('ownerSessions', storage);
    const stored = await storage.ownerSessions(owner);
    return stored.map((s) => this.#describe(s)).sort((a, b) => b.lastSeen - a.lastSeen);
  }

  /**
   * Ends every session of `owner`, at once, in every process that shares the storage; all but
   * `except` (a session, such as `r.session`, or an id hash), when given.
   * @returns how many sessions were ended
   */
  async destroyAll(owner: string, { except }: { except?: Session<object> | string } = {}): Promise<number> {
    if (typeof owner !== 'string' || owner === '') throw new TypeError(`session owner is invalid: ${String(owner)} (expected a non-empty string)`);
    const storage = this.#host.storage();
    if (typeof storage.removeOwner !== 'function') throw unsupported('removeOwner', storage);
    const keep = except === undefined ? undefined : typeof except === 'string' ? except : except.id === '' ? undefined : hashId(except.id);
    return storage.removeOwner(owner, keep);
  }

  /**
   * Listens to one type of lifecycle event (see `SessionEvent`). Returns a function that stops
   * listening. A listener that throws is ignored: it never fails a request.
   */
  on<E extends SessionEvent['type']>(type: E, listener: SessionListener<E>): () => void {
    if (typeof listener !== 'function') throw new TypeError(`session listener is invalid: ${String(listener)} (expected a function)`);
    let set = this.#listeners.get(type);
    if (set === undefined) {
      set = new Set();
      this.#listeners.set(type, set);
    }
    const wasEmpty = this.#listenerCount() === 0;
    const fn = listener as (event: SessionEvent, request: unknown) => void;
    set.add(fn);
    if (wasEmpty) this.#host.listenersChanged();
    return () => {
      const had = this.#listenerCount();
      set.delete(fn);
      if (had > 0 && this.#listenerCount() === 0) this.#host.listenersChanged();
    };
  }

  /** The function the manager emits through, or `undefined` while nobody listens (so events cost nothing). */
  emitter(): ((event: SessionEvent, request: unknown) => void) | undefined {
    if (this.#listenerCount() === 0) return undefined;
    return (event, request) => {
      const set = this.#listeners.get(event.type);
      if (set === undefined) return;
      for (const fn of set) {
        try {
          fn(event, request);
        } catch {
          // An audit listener must not fail the request it observes.
        }
      }
    };
  }

  #listenerCount(): number {
    let n = 0;
    for (const set of this.#listeners.values()) n += set.size;
    return n;
  }

  #describe(s: StoredSession): OwnedSession {
    const created = s.data[META.created];
    const ownedSince = s.data[META.ownedSince];
    const remember = s.data[META.remember];
    const idle = typeof remember === 'number' ? remember : this.#host.maxAgeMs();
    return {
      idHash: s.idHash,
      created: typeof created === 'number' ? created : undefined,
      ownedSince: typeof ownedSince === 'number' ? ownedSince : undefined,
      lastSeen: Math.max(typeof created === 'number' ? created : 0, Math.min(this.#host.now(), s.expiresAt - idle)),
      expiresAt: s.expiresAt,
      info: s.data[META.info],
    };
  }
}
