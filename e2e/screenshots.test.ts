/**
 * The README's pictures of examples/login.ts, taken in Chromium at 1000×700: the login page,
 * the counter page and the sessions page, written to docs/.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { ROOT } from '../test/child.js';
import { type App, PASSWORD, launchChromium, logIn, newContext, startApp } from './helpers.js';

const DOCS = join(ROOT, 'docs');

/** Two other browsers of the same user, for a sessions page that shows what it is for. */
const OTHER_BROWSERS = [
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0',
  'Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1',
];

async function shoot(page: Page, name: string): Promise<void> {
  const path = join(DOCS, `${name}.png`);
  // The text cursor blinks: hide it, so that two runs give the same picture.
  await page.screenshot({ path, caret: 'hide', animations: 'disabled' });
  assert.ok(statSync(path).size > 10_000, `${path} was written and is not blank`);
}

describe('examples/login.ts in Chromium: the screenshots in docs/', () => {
  let browser: Browser;
  let app: App;
  // The example as `npx tsx examples/login.ts` runs it: on file storage, here in a new folder.
  const sessions = mkdtempSync(join(tmpdir(), 'bare-session-e2e-shots-'));

  before(async () => {
    [browser, app] = await Promise.all([launchChromium(), startApp({ STORAGE: 'file', SESSIONS_PATH: sessions })]);
    mkdirSync(DOCS, { recursive: true });
  });
  after(async () => {
    await browser?.close();
    await app?.stop();
    rmSync(sessions, { recursive: true, force: true });
  });

  it('takes docs/login.png, docs/counter.png and docs/sessions.png', async () => {
    // "HeadlessChrome" is what this browser says it is, but not what a reader's browser says.
    const userAgent = `Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/${browser.version()} Safari/537.36`;
    for (const ua of OTHER_BROWSERS) {
      const other = await newContext(browser, { userAgent: ua });
      await logIn(await other.newPage(), app.origin, 'ada');
      await other.close();
    }

    const context = await newContext(browser, { userAgent });
    const page = await context.newPage();
    // Logged in and out once, so that the login page shows the flash message of a logout.
    await logIn(page, app.origin, 'ada');
    await Promise.all([page.waitForURL(`${app.origin}/login`), page.click('#logout')]);
    await page.fill('#name', 'ada');
    await page.fill('#password', PASSWORD);
    await page.check('#remember');
    await page.locator('button[type=submit]').focus();
    await shoot(page, 'login');

    await Promise.all([page.waitForURL(`${app.origin}/`), page.click('button[type=submit]')]);
    await page.reload();
    await page.reload();
    await shoot(page, 'counter');

    await page.goto(`${app.origin}/sessions`);
    assert.equal(await page.locator('#session-count').textContent(), '3', 'the sessions page lists the three browsers');
    await shoot(page, 'sessions');
    await context.close();
  });
});
