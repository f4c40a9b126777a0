// Plain node, CommonJS: require() of the ESM package (Node >= 20.19), then one request.
const { Server, MemoryStorage } = require('bare-session');

if (typeof Server !== 'function') throw new Error("require('bare-session') has no Server");
const s = new Server({ sessionStorage: new MemoryStorage() });
s.get('/', (r) => r.response.write('ok'));
s.start()
  .then(async () => {
    try {
      const res = await fetch(`http://127.0.0.1:${s.port}/`, { signal: AbortSignal.timeout(5000) });
      const body = await res.text();
      if (body !== 'ok') throw new Error(`required server answered ${res.status} ${JSON.stringify(body)}`);
    } finally {
      await s.close();
    }
    console.log('require: the installed package serves');
  })
  .catch((error) => {
    console.error(error);
    process.exitCode = 1;
  });
