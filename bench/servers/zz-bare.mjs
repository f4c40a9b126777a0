import { MemoryStorage, FileStorage, Server } from '../../dist/index.js';
const storage = process.env.STORE === 'file' ? new FileStorage() : new MemoryStorage();
let writes = 0;
const s = new Server({ sessionStorage: storage });
s.setSessionMaxAge('1m');
s.group('/', (group) => {
  group.all('/set', (r) => { r.session.setMap({ time: Math.floor(Date.now() / 1000), n: ++writes }); r.response.write('ok'); });
  group.all('/get', (r) => { r.response.write(r.session.data()); });
  group.all('/del', (r) => { r.session.removeAll(); r.response.write('ok'); });
});
s.setPort(Number(process.env['PORT'] || 8199));
void s.run();
