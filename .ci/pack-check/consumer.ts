// A TypeScript consumer of the installed package, typechecked with skipLibCheck: false and
// strict options, then compiled and run. The @ts-expect-error lines prove the types are real
// (an `any` would make them unused, which is an error).
import { MemoryStorage, Server, type Handler, type Middleware, type Req } from 'bare-session';

interface Data {
  n: number;
}

const s = new Server<Data>({ sessionStorage: new MemoryStorage(), sessionMaxAge: '1m' });

const describe = (r: Req<Data>): string => `${r.method} ${r.path}`;

const timing: Middleware<Data> = async (r, next) => {
  r.response.header('x-route', describe(r));
  await next();
};

const count: Handler<Data> = (r) => {
  const n: number = r.session.get('n', 0) + 1;
  r.session.set('n', n);
  // @ts-expect-error: 'n' holds a number
  r.session.set('n', 'one');
  // @ts-expect-error: the session has no key 'm'
  r.session.get('m');
  r.response.write(String(n));
};

s.middleware(timing);
s.group('/api', (group) => {
  group.get('/n', count);
});

export const wrongOptions = (): Server<Data> =>
  // @ts-expect-error: sessionMaxAge is a Duration, not an object
  new Server<Data>({ sessionMaxAge: {} });

await s.start();
try {
  const res = await fetch(`http://127.0.0.1:${s.port}/api/n`, { signal: AbortSignal.timeout(5000) });
  const body = await res.text();
  if (body !== '1' || res.headers.get('x-route') !== 'GET /api/n') {
    throw new Error(`typed server answered ${res.status} ${JSON.stringify(body)}`);
  }
} finally {
  await s.close();
}
console.log('typescript: the consumer typechecks and its server serves');
