/**
 * Durations: every duration option takes a number of milliseconds or a string such as
 * `'500ms'`, `'90s'`, `'1m'`, `'24h'` or `'7d'`. Parsed in this one place.
 */

/** A number of milliseconds, or a string of digits followed by `ms`, `s`, `m`, `h` or `d`. */
export type Duration = number | `${number}${'ms' | 's' | 'm' | 'h' | 'd'}`;

const UNIT_MS: Readonly<Record<string, number>> = Object.freeze({
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
});

/** The longest duration: 8.64e15 ms, the range of a JavaScript `Date`. */
export const MAX_DURATION_MS = 8.64e15;

// An unsigned decimal (integer or with a fraction), then a unit.
const DURATION_RE = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/;

/**
 * Turns a {@link Duration} into milliseconds.
 *
 * @param value - the duration as the user gave it
 * @param option - the option's name, used in the error message
 * @param allowZero - whether `0` is accepted
 * @throws TypeError naming the option and the value when it is not a finite, non-negative
 *   duration (or zero when zero is not allowed)
 */
export function parseDuration(value: unknown, option: string, allowZero = false): number {
  let ms: number | undefined;
  if (typeof value === 'number') {
    ms = value;
  } else if (typeof value === 'string') {
    const m = DURATION_RE.exec(value);
    if (m !== null) ms = Number(m[1]) * (UNIT_MS[m[2] as string] as number);
  }
  if (ms !== undefined) ms = Math.round(ms);
  if (ms === undefined || !Number.isFinite(ms) || ms < 0 || (ms === 0 && !allowZero) || ms > MAX_DURATION_MS) {
    throw new TypeError(`option ${option} is invalid: ${describe(value)} (expected milliseconds or a string like '90s', '1m', '24h'${allowZero ? '' : ', above zero'})`);
  }
  return ms;
}

/** A short, safe rendering of a value for an error message. */
export function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}…` : value);
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'symbol' || typeof value === 'bigint') return String(value);
  if (value === null || typeof value !== 'object') return String(value);
  return Array.isArray(value) ? 'an array' : 'an object';
}
