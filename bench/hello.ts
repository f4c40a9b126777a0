/**
 * Hello world on bare node:http and on the router, for measuring what the router adds.
 * Run one of them, then load it with autocannon:
 *   npx tsx bench/hello.ts bare   (or: router)     PORT defaults to 3000
 *   (npm run bench:hello in bench/ runs both in turn, five times, and prints the medians)
 *   npx autocannon -c 50 -d 10 http://127.0.0.1:3000/hello
 */
import { createServer } from 'node:http';
import { MemoryStorage, Server } from '../lib/index.js';

const mode = process.argv[2] ?? 'router';
const port = Number(process.env['PORT'] ?? 3000);

if (mode === 'bare') {
  createServer((req, res) => {
    if (req.url === '/hello') {
      res.setHeader('Content-Type', 'text/plain; charset=utf-8');
      res.end('hello');
    } else {
      res.statusCode = 404;
      res.end();
    }
  }).listen(port, '127.0.0.1', () => console.log(`bare node:http on ${port}`));
} else {
  const s = new Server({ sessionStorage: new MemoryStorage(), port, address: '127.0.0.1' });
  s.get('/hello', (r) => {
    r.response.write('hello');
  });
  void s.run();
}
