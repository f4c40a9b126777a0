// A CommonJS TypeScript consumer: `import = require` of the ESM package (TypeScript >= 5.8,
// module nodenext; Node >= 20.19). Typechecked only.
import bs = require('bare-session');

const s: bs.Server<{ n: number }> = new bs.Server<{ n: number }>({ sessionStorage: new bs.MemoryStorage() });
const handler: bs.Handler<{ n: number }> = (r) => {
  r.response.write(String(r.session.get('n', 0)));
};
s.get('/', handler);
