// Plain node, ESM: the installed package exports its API, serves a request and keeps a session.
import * as lib from 'bare-session';

const names = ['Server', 'RouteGroup', 'createServer', 'Request', 'CookieJar', 'Response', 'Session',
  'MemoryStorage', 'FileStorage', 'ExpiringCache', 'parseCookie', 'serializeCookie', 'SessionError',
  'HttpError', 'StorageError', 'generateId', 'isValidId', 'Sessions', 'csrf'];
for (const name of names) {
  if (typeof lib[name] !== 'function') throw new Error(`'bare-session' does not export ${name}`);
}
// The storage contract as tests, for users who write a storage.
const testing = await import('bare-session/testing');
if (typeof testing.storageContract !== 'function') throw new Error("'bare-session/testing' does not export storageContract");

const { Server, MemoryStorage } = lib;
const s = new Server({ sessionStorage: new MemoryStorage() });
s.get('/n', (r) => {
  const n = (r.session.get('n') ?? 0) + 1;
  r.session.set('n', n);
  r.response.write(String(n));
});
await s.start();
try {
  const url = `http://127.0.0.1:${s.port}/n`;
  const first = await fetch(url, { signal: AbortSignal.timeout(5000) });
  const body1 = await first.text();
  const cookie = first.headers.get('set-cookie')?.split(';')[0];
  if (first.status !== 200 || body1 !== '1' || !cookie) {
    throw new Error(`first request: ${first.status} ${JSON.stringify(body1)}, cookie ${cookie}`);
  }
  const second = await fetch(url, { headers: { cookie }, signal: AbortSignal.timeout(5000) });
  const body2 = await second.text();
  if (body2 !== '2') throw new Error(`the session was not kept: second request answered ${JSON.stringify(body2)}`);
} finally {
  await s.close();
}
// FileStorage from the installed package: its writer threads load their module from dist/.
{
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const dir = mkdtempSync(join(tmpdir(), 'pack-check-files-'));
  try {
    const id = lib.generateId();
    const files = new lib.FileStorage({ path: join(dir, 'sessions') });
    await files.set(id, { n: 1 }, 60_000);
    await files.close();
    const again = new lib.FileStorage({ path: join(dir, 'sessions') });
    const back = await again.get(id);
    await again.close();
    if (back?.n !== 1) throw new Error(`FileStorage did not read back what it wrote: ${JSON.stringify(back)}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
console.log('import: the installed package serves and keeps a session, in memory and in files');
