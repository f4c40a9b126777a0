/**
 * examples/login.ts in Chromium over HTTPS, with a self-signed certificate the test makes with
 * openssl and the browser is told to accept.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Browser } from 'playwright-core';
import { launchChromium, logIn, newContext, selfSignedCertificate, sessionCookie, signedInAs, startApp, tempDir, visits } from './helpers.js';

describe('examples/login.ts in Chromium over HTTPS', () => {
  let browser: Browser;

  before(async () => {
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
  });

  it('sets a Secure cookie, and a __Host- cookie name works', async (t) => {
    const { key, cert } = selfSignedCertificate(tempDir(t, 'tls'));
    const app = await startApp({ STORAGE: 'memory', HTTPS_KEY: key, HTTPS_CERT: cert, SESSION_ID_NAME: '__Host-sid' }, t);
    assert.match(app.origin, /^https:\/\/localhost:\d+$/, 'the example serves HTTPS when given a key and a certificate');
    const context = await newContext(browser, { ignoreHTTPSErrors: true });
    const page = await context.newPage();

    await logIn(page, app.origin, 'ada');
    const cookie = await sessionCookie(context, app.origin, '__Host-sid');
    assert.ok(cookie !== undefined, `the browser accepted the __Host-sid cookie (it holds: ${JSON.stringify((await context.cookies()).map((c) => c.name))})`);
    assert.equal(cookie.secure, true, 'over HTTPS the session cookie is Secure (cookieSecure: auto)');
    assert.equal(cookie.httpOnly, true, 'the cookie is HttpOnly');
    assert.equal(cookie.path, '/', 'a __Host- cookie has Path=/');
    assert.equal(cookie.domain, 'localhost', 'a __Host- cookie is host-only (no Domain attribute)');
    assert.equal((await context.cookies()).filter((c) => c.name === 'sid').length, 0, 'no cookie under the default name');
    assert.equal(await page.evaluate(() => document.cookie), '', 'document.cookie cannot see it');
    assert.equal(await signedInAs(page), 'ada', 'logged in over HTTPS');

    await page.reload();
    assert.equal(await visits(page), 2, 'the browser sends the __Host- cookie back: the counter goes on');
    assert.match((await page.locator('footer').textContent()) ?? '', /__Host-sid.*Secure/, 'the page says which cookie it uses');

    await Promise.all([page.waitForURL(`${app.origin}/login`), page.click('#logout')]);
    assert.equal(await signedInAs(page), undefined, 'logout works over HTTPS');
    await context.close();
    await app.stop();
  });
});
