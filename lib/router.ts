/**
 * The router: patterns compiled once at registration into segments, matched at request time by a
 * short loop. Static segments, `:name` parameters and a trailing `*` for the rest.
 *
 * Matching rules:
 *
 * - Paths are compared segment by segment, empty segments dropped: a trailing slash is ignored
 *   (`/users/` is `/users`), and so are doubled slashes (`//users` is `/users`).
 * - A trailing `*` matches ONE OR MORE segments, given as `params['*']` joined by `/`. So
 *   `/files/*` matches `/files/a` and `/files/a/b` but not `/files` (nor `/files/`, which is
 *   `/files`): register `/files` as well to serve it. `/*` alone matches every path but `/`.
 * - Static segments are compared raw, as the request spells them. Parameters and the rest are
 *   percent-decoded; a malformed escape in one of them (`/users/%bob`) makes the request bad
 *   (`{ kind: 'bad' }`, answered 400), whatever the method.
 * - Routes of one shape (`/u/:id` and `/u/:name`) share the path, and so the `Allow` list, but
 *   each handler receives the parameter names of the pattern it was registered with.
 * - `HEAD` falls back to `GET`, then `ALL`. `OPTIONS` on a known path without an `OPTIONS` or
 *   `ALL` route is `{ kind: 'options', allow }`, answered 204 with `Allow`. Any other method
 *   without a route is `{ kind: 'method', allow }`, answered 405. `Allow` lists the path's
 *   methods, `HEAD` when there is `GET`, and always `OPTIONS`.
 */

/** The HTTP methods a route can be registered for. */
export const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS'] as const;

/** One of {@link METHODS}. */
export type Method = (typeof METHODS)[number];

/** Route parameters: a null-prototype record. */
export type Params = Record<string, string>;

interface Segment {
  /** The literal text, or the parameter's name. */
  readonly text: string;
  readonly kind: 'static' | 'param' | 'rest';
}

/** What one registration stores: the handler and the names its own pattern gives. */
interface Entry<H> {
  readonly handler: H;
  /** The pattern as registered, for the duplicate message. */
  readonly pattern: string;
  /** The parameter names in path order, `'*'` for the rest. */
  readonly names: readonly string[];
  /** The match of a request without parameters, made on its first use and shared. */
  found?: Match<H>;
}

/** The routes of one shape: the segments of the first pattern, one entry per method. */
interface Route<H> {
  readonly segments: readonly Segment[];
  readonly entries: Map<Method | 'ALL', Entry<H>>;
  /** The `Allow` header for this path, kept up to date by `add`. */
  allow: string;
}

/**
 * The result of {@link Router.find}:
 *
 * - `found`: the handler, with the parameters decoded and named by its own pattern.
 * - `method`: the path is known but has no route for this method (answer 405 with `Allow`).
 * - `options`: `OPTIONS` on a known path that has no `OPTIONS` or `ALL` route (answer 204
 *   with `Allow`).
 * - `bad`: the path matches a route, but a parameter or the rest holds a malformed
 *   percent-escape (answer 400).
 * - `none`: no route has this path (answer 404).
 */
export type Match<H> =
  | { readonly kind: 'found'; readonly handler: H; readonly params: Params }
  | { readonly kind: 'method'; readonly allow: string }
  | { readonly kind: 'options'; readonly allow: string }
  | { readonly kind: 'bad' }
  | { readonly kind: 'none' };

// A parameter name: an identifier.
const PARAM_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Splits a path into its non-empty segments: `/a//b/` is `['a', 'b']`. */
function splitPath(path: string): string[] {
  const out: string[] = [];
  let start = 0;
  for (let i = 0; i <= path.length; i++) {
    if (i === path.length || path.charCodeAt(i) === 47 /* / */) {
      if (i > start) out.push(path.slice(start, i));
      start = i + 1;
    }
  }
  return out;
}

/**
 * Joins a group prefix and a pattern: `('/api', '/users')` is `/api/users`, `('/', '/set')` is
 * `/set`.
 */
export function joinPath(prefix: string, pattern: string): string {
  const joined = `/${[...splitPath(prefix), ...splitPath(pattern)].join('/')}`;
  return joined;
}

/** Compiles a pattern into segments; throws a `TypeError` for a malformed one. */
export function compile(pattern: string): Segment[] {
  if (typeof pattern !== 'string' || !pattern.startsWith('/')) {
    throw new TypeError(`route pattern is invalid: ${JSON.stringify(pattern)} (it must start with "/")`);
  }
  const parts = splitPath(pattern);
  const seen = new Set<string>();
  return parts.map((part, i): Segment => {
    if (part === '*') {
      if (i !== parts.length - 1) {
        throw new TypeError(`route pattern is invalid: ${JSON.stringify(pattern)} ("*" must be last)`);
      }
      return { text: '*', kind: 'rest' };
    }
    if (part.startsWith(':')) {
      const name = part.slice(1);
      if (!PARAM_NAME_RE.test(name) || seen.has(name)) {
        throw new TypeError(`route pattern is invalid: ${JSON.stringify(pattern)} (bad or repeated parameter "${part}")`);
      }
      seen.add(name);
      return { text: name, kind: 'param' };
    }
    if (part.includes('*') || part.includes(':')) {
      throw new TypeError(`route pattern is invalid: ${JSON.stringify(pattern)} (":" and "*" must start a segment)`);
    }
    return { text: part, kind: 'static' };
  });
}

/** The key two patterns share when they match the same paths: `/u/:id` and `/u/:name` clash. */
function shapeKey(segments: readonly Segment[]): string {
  return segments.map((s) => (s.kind === 'static' ? `s:${s.text}` : s.kind === 'param' ? 'p' : 'r')).join('/');
}

/** Decodes a path segment; `undefined` for a malformed escape. */
function decodeSegment(text: string): string | undefined {
  if (!text.includes('%')) return text;
  try {
    return decodeURIComponent(text);
  } catch {
    return undefined;
  }
}

/**
 * A table of routes. Static-only patterns are found with one `Map` lookup; the others are tried
 * in registration order, static segments first compared as strings. See the module notes for
 * the matching rules.
 */
export class Router<H> {
  readonly #static = new Map<string, Route<H>>();
  readonly #dynamic: Route<H>[] = [];
  readonly #byShape = new Map<string, Route<H>>();

  /**
   * Registers `handler` for `method` (or `'ALL'`) on `pattern`.
   *
   * @throws TypeError for a malformed pattern, or when `method` already has a route of this
   *   shape (`/u/:id` and `/u/:name` are one shape)
   */
  add(method: Method | 'ALL', pattern: string, handler: H): void {
    const segments = compile(pattern);
    const key = shapeKey(segments);
    let route = this.#byShape.get(key);
    if (route === undefined) {
      route = { segments, entries: new Map(), allow: '' };
      this.#byShape.set(key, route);
      if (segments.every((s) => s.kind === 'static')) {
        this.#static.set(`/${segments.map((s) => s.text).join('/')}`, route);
      } else {
        this.#dynamic.push(route);
      }
    }
    const existing = route.entries.get(method);
    if (existing !== undefined) {
      throw new TypeError(`route ${method} ${pattern} is already registered${existing.pattern === pattern ? '' : ` (as ${existing.pattern})`}`);
    }
    const names = segments.filter((s) => s.kind !== 'static').map((s) => s.text);
    route.entries.set(method, { handler, pattern, names });
    route.allow = allowHeader(route.entries.keys());
  }

  /** Finds the handler for a method and a raw (still percent-encoded) path. */
  find(method: string, path: string): Match<H> {
    let route = this.#static.get(path);
    let values: string[] | undefined;
    if (route === undefined) {
      const parts = splitPath(path);
      // `/a/` and `//a` are looked up as `/a`.
      route = this.#static.get(parts.length === 0 ? '/' : `/${parts.join('/')}`);
      if (route === undefined) {
        for (const candidate of this.#dynamic) {
          if (fits(candidate.segments, parts)) {
            values = decodeValues(candidate.segments, parts);
            if (values === undefined) return BAD;
            route = candidate;
            break;
          }
        }
        if (route === undefined) return NONE;
      }
    }
    const entry =
      route.entries.get(method as Method) ??
      (method === 'HEAD' ? route.entries.get('GET') : undefined) ??
      route.entries.get('ALL');
    if (entry === undefined) return { kind: method === 'OPTIONS' ? 'options' : 'method', allow: route.allow };
    // A route without parameters answers with one match made once: nothing to allocate.
    if (values === undefined) return (entry.found ??= Object.freeze({ kind: 'found', handler: entry.handler, params: EMPTY_PARAMS }));
    const params: Params = Object.create(null);
    const { names } = entry;
    for (let i = 0; i < names.length; i++) params[names[i] as string] = values[i] as string;
    return { kind: 'found', handler: entry.handler, params };
  }
}

/** The parameters of a route that has none. */
export const EMPTY_PARAMS: Readonly<Params> = Object.freeze(Object.create(null) as Params);

const NONE = { kind: 'none' } as const;
const BAD = { kind: 'bad' } as const;

/** The `Allow` header of a path with routes for `methods`: in {@link METHODS} order, `HEAD` with `GET`, always `OPTIONS`. */
function allowHeader(methods: Iterable<Method | 'ALL'>): string {
  const allow = new Set<string>(['OPTIONS']);
  for (const m of methods) {
    allow.add(m);
    if (m === 'GET') allow.add('HEAD');
  }
  return METHODS.filter((m) => allow.has(m)).join(', ');
}

/** Whether `parts` have the shape of `segments`: same static texts, and at least one part for a rest. */
function fits(segments: readonly Segment[], parts: readonly string[]): boolean {
  const n = segments.length;
  for (let i = 0; i < n; i++) {
    const seg = segments[i] as Segment;
    if (seg.kind === 'rest') return parts.length > i;
    const part = parts[i];
    if (part === undefined) return false;
    if (seg.kind === 'static' && part !== seg.text) return false;
  }
  return parts.length === n;
}

/** The decoded values of the parameters and the rest, in path order; `undefined` for a malformed escape. */
function decodeValues(segments: readonly Segment[], parts: readonly string[]): string[] | undefined {
  const values: string[] = [];
  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i] as Segment;
    if (seg.kind === 'static') continue;
    if (seg.kind === 'param') {
      const value = decodeSegment(parts[i] as string);
      if (value === undefined) return undefined;
      values.push(value);
      continue;
    }
    let rest = '';
    for (let j = i; j < parts.length; j++) {
      const value = decodeSegment(parts[j] as string);
      if (value === undefined) return undefined;
      rest = j === i ? value : `${rest}/${value}`;
    }
    values.push(rest);
  }
  return values;
}
