/**
 * The router: patterns compiled once at registration into segments, matched at request time by a
 * short loop. Static segments, `:name` parameters and a trailing `*` for the rest.
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

/** A compiled route: its segments, and the value stored per method. */
export interface Route<H> {
  readonly pattern: string;
  readonly segments: readonly Segment[];
  readonly handlers: Map<Method | 'ALL', H>;
}

/** The result of {@link Router.find}. */
export type Match<H> =
  | { readonly kind: 'found'; readonly handler: H; readonly params: Params; readonly route: Route<H> }
  | { readonly kind: 'method'; readonly allow: string }
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

/** Decodes a path segment; a malformed escape leaves the segment as it was. */
function decodeSegment(text: string): string {
  if (!text.includes('%')) return text;
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/**
 * A table of routes. Static-only patterns are found with one `Map` lookup; the others are tried
 * in registration order, static segments first compared as strings.
 */
export class Router<H> {
  readonly #static = new Map<string, Route<H>>();
  readonly #dynamic: Route<H>[] = [];
  readonly #byShape = new Map<string, Route<H>>();

  /** Registers `handler` for `method` (or `'ALL'`) on `pattern`; a second registration throws. */
  add(method: Method | 'ALL', pattern: string, handler: H): void {
    const segments = compile(pattern);
    const key = shapeKey(segments);
    let route = this.#byShape.get(key);
    if (route === undefined) {
      route = { pattern, segments, handlers: new Map() };
      this.#byShape.set(key, route);
      if (segments.every((s) => s.kind === 'static')) {
        this.#static.set(`/${segments.map((s) => s.text).join('/')}`, route);
      } else {
        this.#dynamic.push(route);
      }
    }
    if (route.handlers.has(method)) {
      throw new TypeError(`route ${method} ${pattern} is already registered${route.pattern === pattern ? '' : ` (as ${route.pattern})`}`);
    }
    route.handlers.set(method, handler);
  }

  /** Finds the handler for a method and a raw (still percent-encoded) path. */
  find(method: string, path: string): Match<H> {
    let route = this.#static.get(path);
    let params: Params | undefined;
    if (route === undefined) {
      const parts = splitPath(path);
      // `/a/` and `//a` are looked up as `/a`.
      route = parts.length === 0 ? this.#static.get('/') : this.#static.get(`/${parts.join('/')}`);
      if (route === undefined) {
        for (const candidate of this.#dynamic) {
          const p = matchSegments(candidate.segments, parts);
          if (p !== undefined) {
            route = candidate;
            params = p;
            break;
          }
        }
      }
    }
    if (route === undefined) return NONE;
    const handler =
      route.handlers.get(method as Method) ??
      (method === 'HEAD' ? route.handlers.get('GET') : undefined) ??
      route.handlers.get('ALL');
    if (handler === undefined) return { kind: 'method', allow: allowHeader(route) };
    return { kind: 'found', handler, params: params ?? Object.create(null), route };
  }
}

const NONE = { kind: 'none' } as const;

function allowHeader(route: Route<unknown>): string {
  const allow = new Set<string>();
  for (const m of route.handlers.keys()) {
    allow.add(m);
    if (m === 'GET') allow.add('HEAD');
  }
  return METHODS.filter((m) => allow.has(m)).join(', ');
}

function matchSegments(segments: readonly Segment[], parts: readonly string[]): Params | undefined {
  const params: Params = Object.create(null);
  const n = segments.length;
  for (let i = 0; i < n; i++) {
    const seg = segments[i] as Segment;
    if (seg.kind === 'rest') {
      params['*'] = parts.slice(i).map(decodeSegment).join('/');
      return params;
    }
    const part = parts[i];
    if (part === undefined) return undefined;
    if (seg.kind === 'static') {
      if (part !== seg.text) return undefined;
    } else {
      params[seg.text] = decodeSegment(part);
    }
  }
  return parts.length === n ? params : undefined;
}
