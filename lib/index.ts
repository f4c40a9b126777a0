/**
 * bare-session: HTTP sessions for Node on `node:http` alone, with memory + file storage.
 * This module only re-exports.
 */
export { Server, createServer } from './server.js';
export type { ErrorHook, Logger, Req, ServerOptions } from './server-options.js';
export { RouteGroup } from './route-group.js';
export type { Handler, Middleware } from './route-group.js';
export { Request, CookieJar } from './request.js';
export { Response } from './response.js';
export type { WriteValue } from './response.js';
export { Session } from './session.js';
export type { SessionEvent } from './session.js';
export { Sessions } from './sessions.js';
export type { OwnedSession, SessionListener } from './sessions.js';
export { csrf } from './csrf.js';
export type { CsrfOptions } from './csrf.js';
export { MemoryStorage } from './storage/memory.js';
export type { MemoryStorageOptions } from './storage/memory.js';
export { FileStorage } from './storage/file/file-storage.js';
export type { FileStorageOptions } from './storage/file/file-storage.js';
export { ExpiringCache } from './cache.js';
export type { EvictionReason, ExpiringCacheOptions } from './cache.js';
export { parseCookie, serializeCookie } from './cookie.js';
export type { CookieOptions, CookiePriority, CookieSameSite } from './cookie.js';
export { SessionError, HttpError, StorageError } from './errors.js';
export { generateId, isValidId } from './id.js';
export type { Duration } from './duration.js';
export { META } from './storage/storage.js';
export type { JsonValue, SessionChanges, SessionData, Storage, StorageEvent, StorageSettings, StoredSession } from './storage/storage.js';
export type { Method, Params } from './router.js';
export { RedisStorage } from './storage/redis.js';
export type { RedisClient, RedisCommandFunction, RedisStorageOptions } from './storage/redis.js';
