/**
 * examples/login.ts in Chromium: what the browser does with the session cookie at login and
 * logout, across browsers of one user, and against requests from another site.
 */
import assert from 'node:assert/strict';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { Browser, Request } from 'playwright-core';
import { type App, launchChromium, logIn, newContext, sessionCookie, signedInAs, startApp, visits } from './helpers.js';

describe('examples/login.ts in Chromium: the session cookie', () => {
  let browser: Browser;
  let app: App;

  before(async () => {
    [browser, app] = await Promise.all([launchChromium(), startApp({ STORAGE: 'memory' })]);
  });
  after(async () => {
    await browser?.close();
    await app?.stop();
  });

  it('login sets an HttpOnly cookie that document.cookie cannot see, and regenerates its value', async () => {
    const context = await newContext(browser);
    const page = await context.newPage();
    await page.goto(`${app.origin}/`);
    assert.equal(new URL(page.url()).pathname, '/login', 'a visitor without a session is sent to the login page');
    const before = await sessionCookie(context, app.origin);
    assert.ok(before !== undefined, 'the login page starts a session (for its form\'s CSRF token) and sets its cookie');
    assert.equal(await page.evaluate(() => document.cookie), '', 'document.cookie does not show the anonymous session cookie');

    await logIn(page, app.origin, 'ada');
    const cookie = await sessionCookie(context, app.origin);
    assert.ok(cookie !== undefined, 'the browser holds a session cookie after login');
    assert.equal(cookie.httpOnly, true, 'the session cookie is HttpOnly');
    assert.equal(cookie.sameSite, 'Lax', 'the session cookie is SameSite=Lax');
    assert.equal(cookie.secure, false, 'over plain HTTP the cookie is not Secure (cookieSecure: auto)');
    assert.equal(cookie.path, '/', 'the cookie covers the whole site');
    assert.notEqual(cookie.value, before.value, 'login regenerated the session id: the cookie value changed');
    assert.equal(await page.evaluate(() => document.cookie), '', 'document.cookie cannot see the HttpOnly session cookie');
    assert.equal(await signedInAs(page), 'ada', 'the header shows who is signed in');
    assert.match((await page.locator('.flash.info').textContent()) ?? '', /Welcome, ada/, 'a flash message greets the user after login');
    assert.equal(await visits(page), 1, 'the counter page counts the first visit');

    await page.reload();
    assert.equal(await visits(page), 2, 'a reload counts a second visit: the browser sent the cookie back');
    assert.equal(await page.locator('.flash').count(), 0, 'the flash message was shown once and is gone');
    assert.equal((await sessionCookie(context, app.origin))?.value, cookie.value, 'the id stays the same between requests');

    // The id before login is dead: replayed in another browser, it is not the logged-in session.
    const replay = await newContext(browser);
    await replay.addCookies([{ name: 'sid', value: before.value, url: app.origin }]);
    const replayPage = await replay.newPage();
    await replayPage.goto(`${app.origin}/`);
    assert.equal(new URL(replayPage.url()).pathname, '/login', 'the pre-login id, replayed, does not get in');
    await replay.close();
    await context.close();
  });

  it('remember me gives a 30-day cookie; without it the cookie ends with the browser', async () => {
    const remembered = await newContext(browser);
    const page = await remembered.newPage();
    await logIn(page, app.origin, 'ada', { remember: true });
    const cookie = await sessionCookie(remembered, app.origin);
    const thirtyDays = Date.now() / 1000 + 30 * 86_400;
    assert.ok(cookie !== undefined && Math.abs(cookie.expires - thirtyDays) < 120, `remember me: the cookie expires in 30 days (expires ${cookie?.expires}, expected about ${Math.round(thirtyDays)})`);
    assert.match((await page.locator('#remember').textContent()) ?? '', /^on/, 'the counter page says remember me is on');
    await remembered.close();

    const forgetful = await newContext(browser);
    const page2 = await forgetful.newPage();
    await logIn(page2, app.origin, 'ada');
    assert.equal((await sessionCookie(forgetful, app.origin))?.expires, -1, 'without remember me: a browser-session cookie (no Max-Age, no Expires)');
    assert.match((await page2.locator('#remember').textContent()) ?? '', /^off/, 'the counter page says remember me is off');
    await forgetful.close();
  });

  it('escapes what the user typed', async () => {
    const context = await newContext(browser);
    const page = await context.newPage();
    const name = '<img src=x onerror=alert(1)>"\'&';
    let dialog = false;
    page.on('dialog', (d) => {
      dialog = true;
      void d.dismiss();
    });
    await logIn(page, app.origin, name);
    assert.equal(await signedInAs(page), name, 'the name is shown as the text typed');
    assert.equal(await page.locator('main img').count(), 0, 'no element was made from the name');
    assert.equal(dialog, false, 'no script ran');
    await context.close();
  });

  it('logout expires the login cookie in the browser and says so with a flash message', async () => {
    const context = await newContext(browser);
    const page = await context.newPage();
    await logIn(page, app.origin, 'ada');
    const loggedIn = await sessionCookie(context, app.origin);
    assert.ok(loggedIn !== undefined, 'logged in, the browser holds the session cookie');

    const [logout] = await Promise.all([page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/logout'), page.click('#logout')]);
    assert.equal(logout.status(), 303, 'the logout answers with a redirect');
    await page.waitForURL(`${app.origin}/login`);
    assert.match((await page.locator('.flash.info').textContent()) ?? '', /signed out/, 'a flash message says the user is signed out');
    assert.equal(await signedInAs(page), undefined, 'the header shows nobody signed in');
    const jar = await context.cookies(app.origin);
    assert.equal(jar.some((c) => c.value === loggedIn.value), false, 'the browser no longer holds the logged-in session cookie');

    await page.goto(`${app.origin}/`);
    assert.equal(new URL(page.url()).pathname, '/login', 'after logout the counter page sends the user to the login page');

    // The server deleted the session too: the old id, put back by hand, does not log in.
    const replay = await newContext(browser);
    await replay.addCookies([{ name: 'sid', value: loggedIn.value, url: app.origin }]);
    const replayPage = await replay.newPage();
    await replayPage.goto(`${app.origin}/`);
    assert.equal(new URL(replayPage.url()).pathname, '/login', 'the logged-out id, replayed, does not get in');
    await replay.close();
    await context.close();
  });

  it('"log out everywhere else" logs out a second browser and keeps this one', async () => {
    const laptop = await newContext(browser);
    const phone = await newContext(browser, { userAgent: 'Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1' });
    const a = await laptop.newPage();
    const b = await phone.newPage();
    await logIn(a, app.origin, 'grace');
    await logIn(b, app.origin, 'grace');

    await a.goto(`${app.origin}/sessions`);
    assert.equal(await a.locator('#session-count').textContent(), '2', 'the sessions page lists both browsers');
    assert.equal(await a.locator('tbody tr.current').count(), 1, 'one row is marked as this browser');
    assert.match((await a.locator('tbody').textContent()) ?? '', /Safari 18 on iOS/, 'the other session shows the user agent given to setOwner');

    await Promise.all([a.waitForURL(`${app.origin}/sessions`), a.click('#logout-everywhere')]);
    assert.match((await a.locator('.flash.info').textContent()) ?? '', /Signed out of 1 other session/, 'a flash message says one other session was ended');
    assert.equal(await a.locator('#session-count').textContent(), '1', 'only this browser is left in the list');
    assert.equal(await signedInAs(a), 'grace', 'this browser is still signed in');

    await b.goto(`${app.origin}/`);
    assert.equal(new URL(b.url()).pathname, '/login', 'the second browser was logged out');
    await a.goto(`${app.origin}/`);
    assert.equal(await signedInAs(a), 'grace', 'the first browser stays logged in');
    await laptop.close();
    await phone.close();
  });

  it('refuses a POST without the CSRF token with 403, and the session stays', async () => {
    const context = await newContext(browser);
    const page = await context.newPage();
    await logIn(page, app.origin, 'ada');

    // The page's own logout form, with its token taken out: a real form submission in the browser.
    await page.evaluate(() => {
      for (const input of document.querySelectorAll('input[name="_csrf"]')) input.remove();
    });
    const [refused] = await Promise.all([page.waitForResponse((r) => new URL(r.url()).pathname === '/logout'), page.click('#logout')]);
    assert.equal(refused.status(), 403, 'the form POST without a token is refused with 403');
    assert.match((await page.locator('h1').textContent()) ?? '', /refused/, 'the browser shows the refusal page');
    assert.match((await page.locator('#refused-as').textContent()) ?? '', /session of ada/, 'the refused request did carry the session cookie: only the token was missing');

    // Again with a token that is not the session's: a forged one.
    await page.goto(`${app.origin}/`);
    await page.evaluate(() => {
      for (const input of document.querySelectorAll<HTMLInputElement>('input[name="_csrf"]')) input.value = 'AAAA' + input.value.slice(4);
    });
    const [forged] = await Promise.all([page.waitForResponse((r) => new URL(r.url()).pathname === '/logout'), page.click('#logout')]);
    assert.equal(forged.status(), 403, 'the form POST with a forged token is refused with 403');

    await page.goto(`${app.origin}/`);
    assert.equal(await signedInAs(page), 'ada', 'the refused logouts did not log the user out');
    await context.close();
  });

  describe('SameSite=Lax, against a page of another site', () => {
    // localhost and 127.0.0.1 are different sites (two ports of one host would be the same site).
    let evil: Server;
    let evilOrigin: string;

    before(async () => {
      evil = createServer((req, res) => {
        res.setHeader('Content-Type', 'text/html; charset=utf-8');
        res.end(`<!doctype html><title>Another site</title>
<form method="post" action="${app.origin}/logout"><input type="hidden" name="_csrf" value="forged"><button id="attack">Claim your prize</button></form>
<a id="link" href="${app.origin}/">Open the login demo</a>`);
      });
      await new Promise<void>((resolve) => evil.listen(0, '127.0.0.1', resolve));
      evilOrigin = `http://127.0.0.1:${(evil.address() as AddressInfo).port}`;
    });
    after(() => new Promise<void>((resolve) => evil.close(() => resolve())));

    it('a form POST from another site arrives without the cookie and is refused; a link from it keeps the login', async () => {
      const context = await newContext(browser);
      const page = await context.newPage();
      await logIn(page, app.origin, 'ada');
      const seen: Request[] = [];
      page.on('request', (r) => {
        if (r.url().startsWith(app.origin)) seen.push(r);
      });

      await page.goto(`${evilOrigin}/`);
      const [refused] = await Promise.all([page.waitForResponse((r) => r.url() === `${app.origin}/logout`), page.click('#attack')]);
      const post = refused.request();
      assert.equal(post.method(), 'POST', 'the other site\'s form sent a POST to the app');
      assert.equal((await post.allHeaders())['cookie'], undefined, 'the cross-site POST carried no cookie (SameSite=Lax)');
      assert.equal(refused.status(), 403, 'the cross-site POST is refused with 403');
      assert.match((await page.locator('#refused-as').textContent()) ?? '', /carried no session/, 'the app saw no session in the cross-site POST');

      await page.goto(`${evilOrigin}/`);
      await Promise.all([page.waitForURL(`${app.origin}/`), page.click('#link')]);
      const get = seen.find((r) => r.method() === 'GET' && r.url() === `${app.origin}/` && r.isNavigationRequest());
      assert.ok(get !== undefined, 'the link navigated the top-level page to the app');
      assert.ok(((await get.allHeaders())['cookie'] ?? '').includes('sid='), 'the top-level GET from the other site carried the session cookie');
      assert.equal(await signedInAs(page), 'ada', 'following the link, the user is still logged in');
      assert.equal(await visits(page), 2, 'and the counter went on from where it was');
      await context.close();
    });
  });
});
