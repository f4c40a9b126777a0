/**
 * examples/login.ts in Chromium: how long a login lives. Across a server restart on each
 * storage, and against the idle timeout, on the real clock.
 */
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import type { Browser } from 'playwright-core';
import { launchChromium, logIn, newContext, signedInAs, startApp, tempDir, visits } from './helpers.js';

describe('examples/login.ts in Chromium: how long a login lives', () => {
  let browser: Browser;

  before(async () => {
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
  });

  for (const storage of ['file', 'memory'] as const) {
    const survives = storage === 'file';
    it(`the counter ${survives ? 'survives' : 'is gone after'} a server restart on ${storage} storage${survives ? ', and so do the user\'s other sessions' : ''}`, async (t) => {
      const env = { STORAGE: storage, SESSIONS_PATH: tempDir(t, storage) };
      let app = await startApp(env, t);
      const context = await newContext(browser);
      const page = await context.newPage();
      const other = await (await newContext(browser)).newPage();
      await logIn(page, app.origin, 'ada', { remember: true });
      await logIn(other, app.origin, 'ada');
      await page.reload();
      await page.reload();
      assert.equal(await visits(page), 3, 'three visits before the restart');

      await app.stop();
      // The same port, so that the page simply reloads (a cookie is per host, not per port).
      app = await startApp({ ...env, PORT: String(app.port) }, t);
      await page.reload();
      if (survives) {
        assert.equal(await signedInAs(page), 'ada', 'after the restart the user is still logged in (file storage)');
        assert.equal(await visits(page), 4, 'the counter went on from 3 to 4 across the restart (file storage)');
        // The owner's sessions are found from the files too: listed, and ended everywhere else.
        await page.goto(`${app.origin}/sessions`);
        assert.equal(await page.locator('#session-count').textContent(), '2', 'after the restart the sessions page lists both browsers (file storage)');
        await Promise.all([page.waitForURL(`${app.origin}/sessions`), page.click('#logout-everywhere')]);
        assert.equal(await page.locator('#session-count').textContent(), '1', '"log out everywhere else" leaves this browser alone in the list (file storage)');
        await other.reload();
        assert.equal(new URL(other.url()).pathname, '/login', 'the other browser was logged out (file storage)');
      } else {
        assert.equal(new URL(page.url()).pathname, '/login', 'after the restart the session is gone: the login page (memory storage)');
        assert.equal(await signedInAs(page), undefined, 'nobody is signed in after the restart (memory storage)');
      }
      await context.close();
      await other.context().close();
      await app.stop();
    });
  }

  // On both storages: the default file storage, and memory.
  describe('idle expiry', () => {
    for (const storage of ['file', 'memory'] as const) {
      it(`an active user stays logged in past sessionMaxAge, an idle one is logged out (${storage} storage)`, async (t) => {
        const maxAgeMs = 4_000;
        const app = await startApp({ STORAGE: storage, SESSIONS_PATH: tempDir(t, `idle-${storage}`), SESSION_MAX_AGE: `${maxAgeMs / 1000}s` }, t);
        const active = await (await newContext(browser)).newPage();
        const idle = await (await newContext(browser)).newPage();

        await logIn(active, app.origin, 'eve');
        const activeSince = Date.now();
        // Taken before the idle browser's last request: its session cannot expire before this + maxAge.
        const idleSince = Date.now();
        await logIn(idle, app.origin, 'eve');
        // From here on the idle browser sends nothing.

        await active.goto(`${app.origin}/sessions`);
        assert.equal(await active.locator('#session-count').textContent(), '2', 'both browsers are logged in at first');

        // The real clock runs here: the only waiting in these tests is this bounded poll. The
        // active browser reloads its sessions page (a read-only request: it extends its session
        // without a write) every 250 ms until the idle session has left the list, or 4 s after
        // it should have.
        const deadline = idleSince + maxAgeMs + 4_000;
        let count = '2';
        while (count !== '1' && Date.now() < deadline) {
          await delay(250);
          await active.reload();
          assert.equal(await signedInAs(active), 'eve', `the active browser stays logged in while it polls (${Date.now() - activeSince} ms after its login)`);
          count = (await active.locator('#session-count').textContent()) ?? '';
        }
        const gone = Date.now();
        t.diagnostic(`the idle session left the list ${gone - idleSince} ms after its last request; the active browser was logged in for ${gone - activeSince} ms`);
        assert.equal(count, '1', `the idle session left the list within ${deadline - idleSince} ms of its last request`);
        assert.ok(gone - idleSince >= maxAgeMs, `the idle session lived at least sessionMaxAge (${gone - idleSince} ms ≥ ${maxAgeMs} ms)`);
        assert.ok(gone - activeSince > maxAgeMs, `the active browser is logged in past sessionMaxAge (${gone - activeSince} ms after its login)`);

        await idle.reload();
        assert.equal(new URL(idle.url()).pathname, '/login', 'the idle browser, back after the idle timeout, is on the login page');
        await active.goto(`${app.origin}/`);
        assert.equal(await signedInAs(active), 'eve', 'the active browser is still logged in');
        assert.equal(await visits(active), 2, 'and its counter went on (1 at login, 2 now: the polls only read)');
        await active.context().close();
        await idle.context().close();
        await app.stop();
      });
    }
  });
});
