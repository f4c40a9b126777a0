/**
 * The server the crash harness kills: file storage in the folder given as argv[2], a route that
 * writes one key, and the port printed on stdout once listening.
 */
import { FileStorage, Server } from '../../lib/index.js';

const dir = process.argv[2];
if (dir === undefined) throw new TypeError('usage: crash-server.ts <folder>');
const s = new Server({
  sessionStorage: new FileStorage({ path: dir, onError: (e) => process.stderr.write(`storage error: ${e.message}\n`) }),
  onError: (e) => process.stderr.write(`request error: ${String(e)}\n`),
});
s.all('/w/:k/:v', (r) => {
  r.session.set(r.params['k'] as string, Number(r.params['v']));
  r.response.write(r.session.id);
});
await s.start();
process.stdout.write(`port ${s.port}\n`);
