/**
 * Route groups and the middleware chain: `server.group('/api', (g) => …)` hands a group to its
 * callback, and each route remembers the groups it was registered in, whose middleware runs
 * around its handler.
 */
import { describe } from './duration.js';
import { type Method, joinPath } from './router.js';
import type { Req } from './server-options.js';
import type { SessionData } from './storage/storage.js';

/** A route handler; may be async. What it returns is ignored: it writes to `r.response`. */
export type Handler<T extends object = SessionData> = (r: Req<T>) => unknown;

/** A middleware: runs around the rest of the chain, which `await next()` runs. */
export type Middleware<T extends object = SessionData> = (r: Req<T>, next: () => Promise<void>) => unknown;

/** What the router stores per route: the handler and the groups around it. */
export interface RouteEntry<T extends object> {
  readonly handler: Handler<T>;
  readonly groups: readonly RouteGroup<T>[];
  /** The middleware of every group, outermost first, as of `version`. */
  chain?: readonly Middleware<T>[];
  version?: number;
}

/** What the groups of one server share: where routes go, and a count of middleware changes. */
export interface RouteTable<T extends object> {
  add(method: Method | 'ALL', pattern: string, entry: RouteEntry<T>): void;
  /** Bumped whenever any group of this server gains middleware, so routes rebuild their chains. */
  version: number;
}

/**
 * A set of routes under one prefix, with its own middleware. `server.group('/api', (g) => …)`
 * hands one to its callback; groups nest with `g.group(…)`.
 */
export class RouteGroup<T extends object = SessionData> {
  readonly #prefix: string;
  readonly #parents: readonly RouteGroup<T>[];
  readonly #table: RouteTable<T>;
  readonly #middleware: Middleware<T>[] = [];

  /** Made by the server, and by {@link RouteGroup.group}. */
  protected constructor(prefix: string, parents: readonly RouteGroup<T>[], table: RouteTable<T>) {
    this.#prefix = prefix;
    this.#parents = parents;
    this.#table = table;
  }

  /** A nested group: its prefix is appended to this one's, and this group's middleware runs first. */
  group(prefix: string, fn: (group: RouteGroup<T>) => void): this {
    if (typeof prefix !== 'string') throw new TypeError(`group prefix is invalid: ${describe(prefix)}`);
    if (typeof fn !== 'function') throw new TypeError(`group callback is invalid: ${describe(fn)}`);
    fn(new RouteGroup<T>(joinPath(this.#prefix, prefix), [...this.#parents, this], this.#table));
    return this;
  }

  /** Adds middleware for this group's routes (and its nested groups'), whenever they were registered. */
  middleware(...middleware: Middleware<T>[]): this {
    for (const m of middleware) {
      if (typeof m !== 'function') throw new TypeError(`middleware is invalid: ${describe(m)}`);
    }
    this.#middleware.push(...middleware);
    this.#table.version++;
    return this;
  }

  /** Registers `handler` for every method. */
  all(pattern: string, handler: Handler<T>): this {
    return this.#route('ALL', pattern, handler);
  }
  /** Registers a `GET` route (it answers `HEAD` too, without a body). */
  get(pattern: string, handler: Handler<T>): this {
    return this.#route('GET', pattern, handler);
  }
  /** Registers a `POST` route. */
  post(pattern: string, handler: Handler<T>): this {
    return this.#route('POST', pattern, handler);
  }
  /** Registers a `PUT` route. */
  put(pattern: string, handler: Handler<T>): this {
    return this.#route('PUT', pattern, handler);
  }
  /** Registers a `PATCH` route. */
  patch(pattern: string, handler: Handler<T>): this {
    return this.#route('PATCH', pattern, handler);
  }
  /** Registers a `DELETE` route. */
  delete(pattern: string, handler: Handler<T>): this {
    return this.#route('DELETE', pattern, handler);
  }
  /** Registers a `HEAD` route. */
  head(pattern: string, handler: Handler<T>): this {
    return this.#route('HEAD', pattern, handler);
  }
  /** Registers an `OPTIONS` route (without one, `OPTIONS` answers 204 with `Allow`). */
  options(pattern: string, handler: Handler<T>): this {
    return this.#route('OPTIONS', pattern, handler);
  }

  /** @internal This group's own middleware. */
  ownMiddleware(): readonly Middleware<T>[] {
    return this.#middleware;
  }

  #route(method: Method | 'ALL', pattern: string, handler: Handler<T>): this {
    if (typeof handler !== 'function') throw new TypeError(`handler for ${method} ${String(pattern)} is invalid: ${describe(handler)}`);
    if (typeof pattern !== 'string') throw new TypeError(`route pattern is invalid: ${describe(pattern)}`);
    this.#table.add(method, joinPath(this.#prefix, pattern), { handler, groups: [...this.#parents, this] });
    return this;
  }
}

/** The middleware around a route, outermost first: rebuilt only after middleware was added. */
export function chainOf<T extends object>(entry: RouteEntry<T>, version: number): readonly Middleware<T>[] {
  if (entry.chain === undefined || entry.version !== version) {
    entry.chain = entry.groups.flatMap((g) => g.ownMiddleware());
    entry.version = version;
  }
  return entry.chain;
}

/** How many middleware calls may nest on one stack before the chain yields to the microtask queue. */
const SYNC_DEPTH = 64;

/**
 * Runs middleware in order around `last`; each `next()` runs the rest once. Without middleware
 * it returns what `last` returns (a promise or not), so a synchronous handler costs no promise.
 * The stack does not grow with the chain: every {@link SYNC_DEPTH} steps the next one starts
 * from the microtask queue, so thousands of middleware run as well as three.
 */
export function runChain<T extends object>(chain: readonly Middleware<T>[], last: Handler<T>, r: Req<T>): unknown {
  if (chain.length === 0) return last(r);
  const step = async (i: number): Promise<void> => {
    if (i % SYNC_DEPTH === SYNC_DEPTH - 1) await undefined;
    if (i === chain.length) {
      await last(r);
      return;
    }
    let called = false;
    await (chain[i] as Middleware<T>)(r, () => {
      if (called) return Promise.reject(new Error('next() called twice'));
      called = true;
      return step(i + 1);
    });
  };
  return step(0);
}
