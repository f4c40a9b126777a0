/**
 * JSON values: the checks and copies session data goes through. Only what JSON can hold gets
 * in, and a copy never writes through `__proto__`.
 */
import type { JsonValue } from './storage/storage.js';

/** How deep a session value may nest before `set` refuses it. */
export const MAX_DEPTH = 100;

/**
 * Checks that `value` is a JSON value and returns a copy of it that shares nothing with the
 * caller's object. Throws a `TypeError` naming the key for a function, symbol, bigint,
 * `undefined`, a number that is not finite, an object that is not plain (a `Date`, a `Map`, a
 * class instance), a cycle, or nesting deeper than {@link MAX_DEPTH}.
 */
export function toJsonValue(value: unknown, key: string): JsonValue {
  // Strings, booleans, finite numbers and null are JSON values as they are: no copy to make.
  if (typeof value === 'string' || typeof value === 'boolean' || value === null || (typeof value === 'number' && Number.isFinite(value))) return value;
  return copy(value, key, [], 0);
}

function copy(value: unknown, path: string, stack: object[], depth: number): JsonValue {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value;
    case 'number':
      if (Number.isFinite(value)) return value;
      return fail(path, `${value} is not a JSON number`);
    case 'object': {
      if (value === null) return null;
      if (depth >= MAX_DEPTH) return fail(path, `it nests deeper than ${MAX_DEPTH} levels`);
      if (stack.includes(value)) return fail(path, 'it contains a cycle');
      stack.push(value);
      let out: JsonValue;
      if (Array.isArray(value)) {
        const arr: JsonValue[] = new Array(value.length);
        for (let i = 0; i < value.length; i++) arr[i] = copy(value[i], `${path}[${i}]`, stack, depth + 1);
        out = arr;
      } else {
        const proto: unknown = Object.getPrototypeOf(value);
        if (proto !== Object.prototype && proto !== null && proto !== RECORD_PROTO) {
          return fail(path, `a ${(value as { constructor?: { name?: string } }).constructor?.name ?? 'non-plain'} object is not a JSON value (store a plain object, string or number)`);
        }
        const obj: Record<string, JsonValue> = {};
        for (const k of Object.keys(value)) {
          setOwn(obj, k, copy((value as Record<string, unknown>)[k], `${path}.${k}`, stack, depth + 1));
        }
        out = obj;
      }
      stack.pop();
      return out;
    }
    default:
      return fail(path, `${typeof value === 'undefined' ? 'undefined' : `a ${typeof value}`} is not a JSON value`);
  }
}

function fail(path: string, why: string): never {
  throw new TypeError(`session value ${JSON.stringify(path)} is invalid: ${why}`);
}

/**
 * The prototype of session records: empty, frozen, with no prototype of its own, so that a
 * record inherits no name at all (no `toString`, no `constructor`, no `__proto__` accessor), as
 * with `Object.create(null)`. Unlike `Object.create(null)`, which V8 keeps as a dictionary, a
 * record made on it keeps fast properties: reading, copying and listing its keys cost less.
 */
const RECORD_PROTO: object = Object.freeze(Object.create(null) as object);

/** A new, empty session record (see {@link RECORD_PROTO}); write its keys with {@link setOwn}. */
export function newRecord<V = JsonValue>(): Record<string, V> {
  return Object.create(RECORD_PROTO) as Record<string, V>;
}

/** Sets an own property, also for the key `__proto__`, without touching any prototype. */
export function setOwn(obj: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') {
    Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
  } else {
    obj[key] = value;
  }
}

/** A deep copy of a JSON value (objects and arrays copied, primitives as they are). */
export function cloneJson<V extends JsonValue | undefined>(value: V): V {
  if (value === null || typeof value !== 'object') return value;
  return JSON.parse(JSON.stringify(value)) as V;
}

/** Whether two JSON values are equal: the same primitives, arrays and objects, key order aside. */
export function jsonEqual(a: JsonValue | undefined, b: JsonValue | undefined): boolean {
  if (a === b) return true;
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!jsonEqual(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(b)) return false;
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  for (const k of keys) if (!Object.hasOwn(b, k) || !jsonEqual(a[k], b[k])) return false;
  return true;
}

/**
 * The UTF-8 bytes one entry adds to an object's JSON: `"key":value` and a comma. An object's
 * JSON is 2 bytes when empty, else the sum of its entries plus 1 (the braces, less the last
 * comma), so a storage can keep the sum and measure a change by its entries alone.
 */
export function entryBytes(key: string, value: JsonValue): number {
  return stringBytes(key) + valueBytes(value) + 2;
}

/** Printable ASCII that JSON writes as it is (no `"` or `\`): one byte a character. */
const PLAIN_RE = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

/** The UTF-8 bytes of a string's JSON, without serializing a plain one. */
function stringBytes(s: string): number {
  return PLAIN_RE.test(s) ? s.length + 2 : Buffer.byteLength(JSON.stringify(s));
}

/** The UTF-8 bytes of a JSON value's JSON, serializing only objects and arrays. */
export function valueBytes(value: JsonValue): number {
  switch (typeof value) {
    case 'string':
      return stringBytes(value);
    case 'number':
      // A finite number's JSON is its String() (JSON values are finite).
      return String(value).length;
    case 'boolean':
      return value ? 4 : 5;
    default:
      return value === null ? 4 : Buffer.byteLength(JSON.stringify(value));
  }
}
