/**
 * Session ids: 32 bytes from the operating system's CSPRNG, base64url, 43 characters.
 */
import { createHash, randomBytes } from 'node:crypto';

/** The format of the ids bare-session issues: 43 base64url characters (32 bytes). */
const ID_RE = /^[A-Za-z0-9_-]{43}$/;

/** How many ids one draw from the CSPRNG serves. */
const POOL_IDS = 128;
let pool = Buffer.alloc(0);
let offset = 0;

/**
 * A fresh session id: 32 bytes of the operating system's CSPRNG in base64url (43 characters).
 * The bytes are drawn 128 ids at a time (one `crypto.randomBytes` call instead of 128); each id
 * takes 32 bytes of its own, which are zeroed as soon as they are read, so no id's bytes stay in
 * memory or serve twice.
 */
export function generateId(): string {
  if (offset === pool.length) {
    pool = randomBytes(32 * POOL_IDS);
    offset = 0;
  }
  const id = pool.toString('base64url', offset, offset + 32);
  pool.fill(0, offset, offset + 32);
  offset += 32;
  return id;
}

/**
 * Whether `id` has the format of the ids {@link generateId} issues. Checked before any storage
 * call, so a path, a prototype name or a 10 000-character string never reaches a storage.
 */
export function isValidId(id: string): boolean {
  // The last character of 32 bytes in base64url carries 2 padding bits that must be zero:
  // only A, E, I, M, Q, U, Y, c, g, k, o, s, w, 0, 4, 8 can end an id we issued.
  // (A value that is not a string is refused, not converted: ['A'.repeat(43)] would pass.)
  return typeof id === 'string' && ID_RE.test(id) && LAST_CHARS.has(id.charCodeAt(42));
}

const LAST_CHARS = new Set([...'AEIMQUYcgkosw048'].map((c) => c.charCodeAt(0)));

/**
 * The SHA-256 of an id, in hex. What the library shows of an id wherever it must name a
 * session without revealing it: file names, Redis keys, listings and events.
 */
export function hashId(id: string): string {
  return createHash('sha256').update(id).digest('hex');
}
