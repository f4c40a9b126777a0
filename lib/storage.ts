/** Temporary: the contract moved to lib/storage/storage.ts. */
export * from './storage/storage.js';
