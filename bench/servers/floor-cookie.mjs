/**
 * How both floors (floor.mjs, floor-redis.mjs) read the session cookie: a scan of the Cookie
 * header for `sid`, with no parsing beyond it.
 */
export const NAME = 'sid';

/** The value of the `sid` cookie, or undefined. */
export function cookieId(header) {
  if (header === undefined) return undefined;
  for (const pair of header.split(';')) {
    const eq = pair.indexOf('=');
    if (eq !== -1 && pair.slice(0, eq).trim() === NAME) return pair.slice(eq + 1).trim();
  }
  return undefined;
}
