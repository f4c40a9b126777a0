/** lib/errors.ts: the library's error classes. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HttpError, SessionError, StorageError, asError } from '../lib/errors.js';

describe('errors', () => {
  it('carry a code, a status and the cause', () => {
    const cause = new Error('disk');
    const e = new StorageError('could not write', { cause });
    assert.ok(e instanceof SessionError, 'a StorageError is a SessionError');
    assert.equal(e.code, 'ESTORAGE', 'a StorageError has the code ESTORAGE');
    assert.equal(e.status, 503, 'a StorageError answers 503');
    assert.equal(e.cause, cause, 'a StorageError keeps the error it wraps');
    assert.equal(e.name, 'StorageError', 'a StorageError names its class');
    const h = new HttpError(404);
    assert.equal(h.message, 'Not Found', 'an HttpError without a message takes the status text');
    assert.equal(h.expose, true, 'a 4xx message may be shown to the client');
    assert.equal(h.code, 'EHTTP404', "an HttpError's code holds its status");
    assert.equal(new HttpError(502).expose, false, 'a 5xx message is not shown to the client');
    assert.equal(new HttpError(599).message, 'Error', 'a status with no standard text gets the message "Error"');
    assert.throws(() => new HttpError(200), TypeError, 'an HttpError refuses a status that is not an error');
    assert.equal(new SessionError('x').status, 500, 'a SessionError answers 500 by default');
  });
});

describe('asError', () => {
  it('passes an Error through and wraps anything else, keeping it as the cause and its code', () => {
    const err = Object.assign(new Error('boom'), { code: 'EIO' });
    assert.equal(asError(err), err, 'an Error is itself');
    const plain = { code: 'EWRITER', toString: () => 'a plain object' };
    const wrapped = asError(plain) as Error & { code?: string };
    assert.ok(wrapped instanceof Error, 'anything else becomes an Error');
    assert.equal(wrapped.message, 'a plain object', 'saying what was thrown');
    assert.equal(wrapped.cause, plain, 'with it as the cause');
    assert.equal(wrapped.code, 'EWRITER', 'and its code kept');
    assert.equal((asError('text') as Error & { code?: string }).code, undefined, 'no code invented');
  });
});
