/**
 * The seed program with the default memory + file storage: sessions survive a restart.
 * Run: npx tsx examples/file.ts   (PORT from the environment, else 8199)
 * In your own project, import from 'bare-session' instead of '../lib/index.js'.
 */
import { Server } from '../lib/index.js';

const s = new Server();
s.setSessionMaxAge('1m');
s.group('/', (group) => {
  group.all('/set', (r) => {
    r.session.set('time', Math.floor(Date.now() / 1000));
    r.response.write('ok');
  });
  group.all('/get', (r) => {
    r.response.write(r.session.data());
  });
  group.all('/del', (r) => {
    r.session.removeAll();
    r.response.write('ok');
  });
});
s.setPort(Number(process.env['PORT'] || 8199));
void s.run();
