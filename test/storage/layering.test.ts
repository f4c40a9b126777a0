/**
 * The one direction of the house: storages know the contract, the cache, durations, errors, ids
 * and JSON, and nothing of HTTP. A user writes a storage without reading our server, and our
 * storages can be lifted out with the contract alone.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve, dirname } from 'node:path';
import { describe, it } from 'node:test';

const LIB = join(import.meta.dirname, '..', '..', 'lib');
/** Modules a storage must never import, directly or through another module of lib/. */
const HTTP_SIDE = ['server.ts', 'server-options.ts', 'route-group.ts', 'router.ts', 'request.ts', 'response.ts', 'session.ts', 'sessions.ts', 'csrf.ts', 'index.ts'];

/** Every .ts file under a folder. */
function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

/** The lib/ modules a file imports (relative imports only; `node:` modules are not ours). */
function imports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/^\s*(?:import|export)\b[^'";]*?from\s+'(\.[^']+)'/gm)) {
    out.push(resolve(dirname(file), (m[1] as string).replace(/\.js$/, '.ts')));
  }
  for (const m of text.matchAll(/\bimport\(\s*'(\.[^']+)'\s*\)/g)) out.push(resolve(dirname(file), (m[1] as string).replace(/\.js$/, '.ts')));
  return out;
}

describe('layering', () => {
  it('keeps lib/storage/ free of the server, the router, requests, responses and sessions, however indirectly', () => {
    const storages = walk(join(LIB, 'storage'));
    assert.ok(storages.length >= 4, `the storages were found: ${storages.length}`);
    const forbidden = new Set(HTTP_SIDE.map((f) => join(LIB, f)));
    for (const start of storages) {
      // Follows imports through lib/ (the cache, errors, …), so an indirect path is caught too.
      const seen = new Set<string>();
      const stack: { file: string; via: string[] }[] = [{ file: start, via: [] }];
      while (stack.length > 0) {
        const { file, via } = stack.pop() as { file: string; via: string[] };
        if (seen.has(file)) continue;
        seen.add(file);
        const path = [...via, relative(LIB, file)];
        assert.ok(!forbidden.has(file), `${relative(LIB, start)} reaches the HTTP side: ${path.join(' → ')}`);
        for (const next of imports(file)) if (next.startsWith(LIB)) stack.push({ file: next, via: path });
      }
    }
  });

  it('finds an import that breaks the rule (the check itself can fail)', () => {
    const found = imports(join(LIB, 'server.ts'));
    assert.ok(found.includes(join(LIB, 'session.ts')), 'the scanner sees server.ts import session.ts');
  });
});
