/**
 * A `node:test` reporter for test/mutants/run.ts: a dot per passing test, and at the first
 * failing test one line naming it (`KILLED BY: <file> > <test>: <message>`), then the process
 * exits with 1. Node 20 has no `--test-bail`; a mutant is killed by its first failing test, so
 * waiting for the rest of the file would only cost time (the runner then stops whatever the test
 * file started). Plain JavaScript: Node loads reporters before `--import tsx` takes effect.
 *
 * @param {AsyncIterable<{ type: string, data: any }>} source
 */
export default async function* bailReporter(source) {
  let dots = 0;
  for await (const event of source) {
    if (event.type === 'test:pass') {
      yield '.';
      if (++dots % 80 === 0) yield '\n';
    } else if (event.type === 'test:fail') {
      const data = event.data;
      if (data.todo !== undefined && data.todo !== false) continue;
      const error = data.details?.error;
      const message = String(error?.cause?.message ?? error?.message ?? '').split('\n', 1)[0];
      // Written at once (a pipe is synchronous on POSIX), then the process ends.
      process.stdout.write(`\nKILLED BY: ${data.file ?? '?'} > ${data.name}: ${message}\n`);
      process.exit(1);
    }
  }
  yield '\n';
}
