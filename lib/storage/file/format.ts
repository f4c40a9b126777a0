/**
 * The session file format of `FileStorage` (version 1), as pure functions: no file system here.
 *
 * A session file is a 21-byte header, then the session as JSON: `BS1 ` (magic and version,
 * 4 bytes), the expiry time in milliseconds since the epoch as 16 zero-padded decimal digits,
 * and `\n`. The fixed header lets the sweep read an expiry without parsing JSON, and lets a
 * renewal rewrite the digits in place.
 */
import { MAX_DEPTH } from '../../json.js';
import type { SessionData } from '../storage.js';

/** Magic and version of the file format. */
export const MAGIC = 'BS1 ';
/** How many decimal digits the expiry has. */
export const EXPIRY_DIGITS = 16;
/** Bytes before the JSON body: the magic, the expiry digits and a newline. */
export const HEADER_SIZE = MAGIC.length + EXPIRY_DIGITS + 1;
/** A day, in milliseconds. */
export const DAY_MS = 86_400_000;
/** The longest life a session can have: the server caps `sessionMaxAge` at 400 days, as browsers cap cookies. */
export const MAX_AGE_MS = 400 * DAY_MS;
/** Clock slack: an expiry further ahead than {@link MAX_AGE_MS} and this cannot have been written, and is corrupt. */
export const EXPIRY_SLACK_MS = 60_000;

/** Why a file is not a session this library wrote, when its bytes say nothing more precise. */
const CORRUPT = 'is corrupt or of an unknown format';

/** A session file's expiry and data. */
export interface Parsed {
  /** When the session expires, in ms since the epoch. */
  expiresAt: number;
  /** The session. */
  data: SessionData;
}

/** Formats the 21-byte header for an expiry time (whole milliseconds, never negative). */
export function header(expiresAt: number): string {
  return `${MAGIC}${String(Math.max(0, Math.floor(expiresAt))).padStart(EXPIRY_DIGITS, '0')}\n`;
}

/**
 * The expiry in a header, or why the bytes cannot be the header of a file this library wrote: not
 * a version-1 header, or an expiry further ahead than any session can live (`now` + 400 days).
 * Reads the first {@link HEADER_SIZE} bytes of `buf` only.
 */
export function parseHeader(buf: Buffer, now: number): number | string {
  if (buf.length === 0) return 'is empty';
  if (buf.length < HEADER_SIZE || buf.toString('latin1', 0, MAGIC.length) !== MAGIC || buf[HEADER_SIZE - 1] !== 10) return CORRUPT;
  const digits = buf.toString('latin1', MAGIC.length, MAGIC.length + EXPIRY_DIGITS);
  if (!/^\d{16}$/.test(digits)) return CORRUPT;
  const expiresAt = Number(digits);
  return expiresAt > now + MAX_AGE_MS + EXPIRY_SLACK_MS ? 'has an expiry time no session can have' : expiresAt;
}

/**
 * The expiry and data in a session file's bytes, or why they are not a session this library
 * wrote: a bad header, a body that is not a JSON object, or one nested deeper than the server
 * lets a value nest.
 */
export function parseFile(buf: Buffer, now: number): Parsed | string {
  const expiresAt = parseHeader(buf, now);
  if (typeof expiresAt === 'string') return expiresAt;
  let data: unknown;
  try {
    // A body nested deep enough overflows the stack here (a RangeError): corrupt as well.
    data = JSON.parse(buf.toString('utf8', HEADER_SIZE));
  } catch {
    return CORRUPT;
  }
  if (data === null || typeof data !== 'object' || Array.isArray(data)) return CORRUPT;
  if (!nestsWithin(data, 0)) return `nests deeper than ${MAX_DEPTH} levels`;
  return { expiresAt, data: data as SessionData };
}

/**
 * Whether a parsed session nests no deeper than the server lets a value nest: the session object
 * is level 0, each of its values may hold objects down to level {@link MAX_DEPTH}. Stops at the
 * first level too deep, so the recursion is bounded.
 */
function nestsWithin(value: object, depth: number): boolean {
  if (depth > MAX_DEPTH) return false;
  const items: unknown[] = Array.isArray(value) ? value : Object.values(value);
  for (const item of items) {
    if (item !== null && typeof item === 'object' && !nestsWithin(item, depth + 1)) return false;
  }
  return true;
}
