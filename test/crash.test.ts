import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { tempDir } from './helpers.js';
import { crashRounds } from './stress/crash-lib.js';

describe('kill -9 during concurrent writes (short version of npm run test:crash)', () => {
  it('loses no acknowledged write and leaves no unreadable file over 3 rounds', async (t) => {
    const report = await crashRounds(tempDir(t), 3, { seed: 7 });
    assert.equal(report.rounds, 3);
    assert.ok(report.acknowledged > 3 * 20, `only ${report.acknowledged} writes acknowledged`);
    assert.deepEqual(report.details, []);
    assert.equal(report.lost, 0);
    assert.equal(report.unreadable, 0);
  });
});
