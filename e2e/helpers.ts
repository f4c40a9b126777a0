/**
 * What the end-to-end tests share: Debian's Chromium driven by playwright-core, the example
 * started as a child process on a free port, and the steps a person takes (log in, read the
 * counter, read the session cookie).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { type Browser, type BrowserContext, type Cookie, type Page, chromium } from 'playwright-core';
import { type Child, type ChildExit, startChild } from '../test/child.js';

/** The browser: Debian's Chromium (`apt-get install chromium`), or CHROMIUM_PATH. */
export const CHROMIUM = process.env['CHROMIUM_PATH'] || '/usr/bin/chromium';

/** The example under test. */
export const EXAMPLE = 'examples/login.ts';

/** The demo password the example shows on its login page. */
export const PASSWORD = 'demo';

/**
 * Launches headless Chromium with a new, empty profile (playwright-core makes one per launch).
 * Without the background-networking flags it would try to reach Google's services, which this
 * closed network refuses.
 */
export async function launchChromium(): Promise<Browser> {
  assert.ok(existsSync(CHROMIUM), `Chromium is at ${CHROMIUM} (install it: apt-get update && apt-get install -y chromium, or set CHROMIUM_PATH)`);
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/** A new browser context (its own cookie jar: one "browser" of a user) at the screenshots' size. */
export async function newContext(browser: Browser, options: { userAgent?: string; ignoreHTTPSErrors?: boolean } = {}): Promise<BrowserContext> {
  return browser.newContext({ viewport: { width: 1000, height: 700 }, ...options });
}

/** The running example. */
export interface App {
  readonly child: Child;
  readonly port: number;
  /** `http://localhost:<port>` (or https). */
  readonly origin: string;
  /** SIGTERM; resolves once it exited. */
  stop(): Promise<ChildExit>;
}

/**
 * Starts examples/login.ts with `env` (PORT 0 unless given) and resolves once it listens. A
 * `t` kills it after the test if it still runs.
 */
export async function startApp(env: Readonly<Record<string, string>>, t?: TestContext): Promise<App> {
  // The example's settings come from `env` alone, never from the shell the tests run in.
  const unset = { STORAGE: undefined, SESSIONS_PATH: undefined, SESSION_MAX_AGE: undefined, SESSION_ID_NAME: undefined, HTTPS_KEY: undefined, HTTPS_CERT: undefined };
  const child = startChild(EXAMPLE, { env: { ...unset, PORT: '0', ...env }, safetyMs: 110_000, ...(t === undefined ? {} : { t }) });
  const [, scheme, port] = await child.line(/listening on (https?):\/\/localhost:(\d+)/);
  return {
    child,
    port: Number(port),
    origin: `${scheme}://localhost:${port}`,
    async stop() {
      const exit = await child.stop('SIGTERM');
      assert.equal(exit.code, 0, `the example exits with 0 on SIGTERM\n${exit.stdout}\n${exit.stderr}`);
      return exit;
    },
  };
}

/** A new temporary folder, removed after the test. */
export function tempDir(t: TestContext, prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `bare-session-e2e-${prefix}-`));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * A self-signed certificate for localhost and 127.0.0.1, made with openssl in `dir`.
 * @returns the paths of the key and the certificate, PEM
 */
export function selfSignedCertificate(dir: string): { key: string; cert: string } {
  const key = join(dir, 'key.pem');
  const cert = join(dir, 'cert.pem');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
  ], { stdio: 'pipe' });
  return { key, cert };
}

/**
 * Logs in through the form, as a person would: name, the demo password, "remember me" when
 * asked; resolves on the counter page it redirects to.
 */
export async function logIn(page: Page, origin: string, name: string, { remember = false } = {}): Promise<void> {
  await page.goto(`${origin}/login`);
  await page.fill('#name', name);
  await page.fill('#password', PASSWORD);
  if (remember) await page.check('#remember');
  await Promise.all([page.waitForURL(`${origin}/`), page.click('button[type=submit]')]);
}

/** The visit count the counter page shows. */
export async function visits(page: Page): Promise<number> {
  return Number(await page.locator('#visits').textContent());
}

/** The name the page header shows as signed in, or `undefined` on a page without one. */
export async function signedInAs(page: Page): Promise<string | undefined> {
  const user = page.locator('#user');
  return (await user.count()) === 0 ? undefined : ((await user.textContent()) ?? undefined);
}

/** The session cookie as the browser holds it (`context.cookies()` sees HttpOnly ones too). */
export async function sessionCookie(context: BrowserContext, origin: string, name = 'sid'): Promise<Cookie | undefined> {
  return (await context.cookies(origin)).find((c) => c.name === name);
}
