/**
 * Session ids: 32 bytes from the operating system's CSPRNG, base64url, 43 characters.
 */
import { createHash, randomBytes } from 'node:crypto';

/** The format of the ids bare-session issues: 43 base64url characters (32 bytes). */
const ID_RE = /^[A-Za-z0-9_-]{43}$/;

/** A fresh session id: `crypto.randomBytes(32)` in base64url (43 characters). */
export function generateId(): string {
  return randomBytes(32).toString('base64url');
}

/**
 * Whether `id` has the format of the ids {@link generateId} issues. Checked before any storage
 * call, so a path, a prototype name or a 10 000-character string never reaches a storage.
 */
export function isValidId(id: string): boolean {
  // The last character of 32 bytes in base64url carries 2 padding bits that must be zero:
  // only A, E, I, M, Q, U, Y, c, g, k, o, s, w, 0, 4, 8 can end an id we issued.
  return ID_RE.test(id) && LAST_CHARS.has(id.charCodeAt(42));
}

const LAST_CHARS = new Set([...'AEIMQUYcgkosw048'].map((c) => c.charCodeAt(0)));

/**
 * The SHA-256 of an id, in hex. What the library shows of an id wherever it must name a
 * session without revealing it: file names, Redis keys, listings and events.
 */
export function hashId(id: string): string {
  return createHash('sha256').update(id).digest('hex');
}
