/**
 * The library's error classes. Each carries a stable `code`, the HTTP `status` the server
 * answers with when the error ends a request, and the original error as `cause`.
 * Programmer errors (a bad option, a value JSON cannot hold) are plain `TypeError`s instead.
 */

/** Base class of the errors bare-session throws at run time. */
export class SessionError extends Error {
  /** A stable, machine-readable code such as `'ESTORAGE'`. */
  readonly code: string;
  /** The HTTP status the server answers with when this error ends a request. */
  readonly status: number;

  constructor(message: string, code = 'ESESSION', status = 500, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SessionError';
    this.code = code;
    this.status = status;
  }
}

/**
 * An error that maps to an HTTP answer, with a message safe to send to the client.
 * Throw one from a handler to answer with its status, for example `new HttpError(403)`.
 */
export class HttpError extends SessionError {
  /** Whether `message` may be sent to the client as the body (true for 4xx). */
  readonly expose: boolean;

  constructor(status: number, message?: string, options?: { cause?: unknown; code?: string }) {
    if (!Number.isInteger(status) || status < 400 || status > 599) {
      throw new TypeError(`HttpError status is invalid: ${String(status)} (expected an integer from 400 to 599)`);
    }
    super(message ?? STATUS_TEXT[status] ?? 'Error', options?.code ?? `EHTTP${status}`, status, options);
    this.name = 'HttpError';
    this.expose = status < 500;
  }
}

/**
 * A storage could not read or write a session (a full disk, an I/O error, a failing backend).
 * The request that needed it fails with 503 and the previous data is kept.
 */
export class StorageError extends SessionError {
  constructor(message: string, options?: { cause?: unknown; code?: string }) {
    super(message, options?.code ?? 'ESTORAGE', 503, options);
    this.name = 'StorageError';
  }
}

/**
 * The error for a session over the server's `sessionMaxSize`: nothing was written. Storages
 * that enforce the size themselves (see `Storage.configure`) throw this one.
 */
export function sessionTooLarge(size: number, maxSize: number): SessionError {
  return new SessionError(`session data is ${size} bytes, over the sessionMaxSize of ${maxSize} bytes; nothing was written`, 'ESESSIONTOOLARGE', 500);
}

/** The `code` of a system error (`'ENOENT'`, `'EACCES'`, …), or `undefined`. */
export function errCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * `err` itself when it is an `Error`; else an `Error` saying what was thrown, with it as its
 * `cause` and its `code` kept (something other than an `Error` thrown or rejected with).
 */
export function asError(err: unknown): Error {
  if (err instanceof Error) return err;
  const wrapped = new Error(String(err), { cause: err });
  const code = errCode(err);
  return code === undefined ? wrapped : Object.assign(wrapped, { code });
}

/** Reason phrases for the statuses the library answers with itself. */
export const STATUS_TEXT: Readonly<Record<number, string>> = Object.freeze({
  400: 'Bad Request',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
});
