/**
 * A small server-rendered app on bare-session alone: log in and out, a visit counter, flash
 * messages, CSRF tokens in every form, "remember me", the list of a user's sessions and
 * "log out everywhere else". Inline HTML and CSS, every value escaped, no template library.
 *
 * Run: npx tsx examples/login.ts   then open http://localhost:8199 (any name, password "demo")
 *
 * Environment (all optional):
 * - PORT: the port (empty or unset: 8199; 0: a free one)
 * - STORAGE: `file` (the default: sessions survive a restart) or `memory`
 * - SESSIONS_PATH: the file storage's folder (default: <tmp>/bare-session-login)
 * - SESSION_MAX_AGE: the idle timeout, a duration such as `30m` or `4s`, or ms (default 2h)
 * - SESSION_ID_NAME: the cookie's name (default `sid`; `__Host-sid` needs HTTPS)
 * - HTTPS_KEY, HTTPS_CERT: PEM files; both given, the app serves HTTPS (the cookie gets `Secure`)
 *
 * In your own project, import from 'bare-session' instead of '../lib/index.js'.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Duration, FileStorage, HttpError, MemoryStorage, type OwnedSession, type Req, Server, csrf } from '../lib/index.js';

/** What a session holds once its user logged in. */
interface AppData {
  user: string;
  visits: number;
  loginAt: number;
  rememberMe: boolean;
}
type R = Req<AppData>;

const PASSWORD = 'demo';
const env = process.env;

// ---- Configuration, from the environment ----

const storageKind = env['STORAGE'] || 'file';
if (storageKind !== 'file' && storageKind !== 'memory') throw new TypeError(`STORAGE is invalid: ${JSON.stringify(storageKind)} (expected file or memory)`);
const storage = storageKind === 'memory' ? new MemoryStorage() : new FileStorage({ path: env['SESSIONS_PATH'] || join(tmpdir(), 'bare-session-login') });
const maxAgeText = env['SESSION_MAX_AGE'] || '2h';
// Checked by the server: a bad duration throws a TypeError naming sessionMaxAge and the value.
const maxAge: Duration = /^\d+$/.test(maxAgeText) ? Number(maxAgeText) : (maxAgeText as Duration);
const keyFile = env['HTTPS_KEY'];
const certFile = env['HTTPS_CERT'];
if (Boolean(keyFile) !== Boolean(certFile)) throw new TypeError('HTTPS_KEY and HTTPS_CERT go together: give both files or neither');
const https = Boolean(keyFile && certFile);

const s = new Server<AppData>({ sessionMaxAge: maxAge, sessionStorage: storage });
// HTTPS first: a `__Host-` cookie name is refused on a server that cannot set `Secure`.
if (keyFile && certFile) s.setHttps({ key: readFileSync(keyFile), cert: readFileSync(certFile) });
if (env['SESSION_ID_NAME']) s.setSessionIdName(env['SESSION_ID_NAME']);
const cookieName = env['SESSION_ID_NAME'] || 'sid';

// ---- HTML ----

/** Escapes text for HTML content and double- or single-quoted attributes. */
function esc(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const CSS = `
:root{--ink:#1e2330;--muted:#667085;--line:#e6e8ef;--bg:#f5f6fb;--brand:#4f46e5;--brand2:#8b5cf6;--ok:#05603a;--okbg:#ecfdf3;--okline:#abefc6;--bad:#b42318;--badbg:#fef3f2;--badline:#fecdca}
*{box-sizing:border-box}
html{background:var(--bg)}
body{margin:0;min-height:100vh;display:flex;flex-direction:column;font:15px/1.55 -apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,"Liberation Sans",sans-serif;color:var(--ink);background:radial-gradient(900px 420px at 0% -8%,#e4e7ff 0,transparent 62%),radial-gradient(760px 380px at 100% 0%,#f1e8ff 0,transparent 58%)}
a{color:var(--brand)}
.bar{display:flex;align-items:center;justify-content:space-between;gap:16px;padding:14px 32px;background:rgba(255,255,255,.78);border-bottom:1px solid var(--line)}
.brand{display:flex;align-items:center;gap:10px;font-weight:700;color:var(--ink);text-decoration:none;letter-spacing:-.01em}
.logo{display:grid;place-items:center;width:30px;height:30px;border-radius:9px;background:linear-gradient(135deg,var(--brand),var(--brand2));color:#fff;font-size:13px}
.tag{font-weight:600;font-size:11.5px;color:var(--brand);background:#eef0ff;border-radius:999px;padding:2px 9px}
nav{display:flex;align-items:center;gap:22px}
nav a{color:var(--muted);text-decoration:none;font-weight:600}
nav a[aria-current=page]{color:var(--ink)}
nav form{margin:0}
.who{display:flex;align-items:center;gap:8px;font-weight:600;padding-left:22px;border-left:1px solid var(--line)}
.avatar{display:grid;place-items:center;width:28px;height:28px;border-radius:50%;background:#e7e9ff;color:var(--brand);font-size:12.5px;font-weight:700;text-transform:uppercase}
main{flex:1;width:100%;max-width:760px;margin:44px auto 24px;padding:0 24px}
.card{background:#fff;border:1px solid var(--line);border-radius:18px;padding:34px 36px;box-shadow:0 1px 2px rgba(16,24,40,.04),0 18px 40px -18px rgba(30,35,48,.22)}
.narrow{max-width:430px;margin-left:auto;margin-right:auto}
h1{margin:0 0 6px;font-size:26px;line-height:1.25;letter-spacing:-.02em}
.lead{margin:0 0 22px;color:var(--muted)}
label{display:block;font-weight:600;font-size:14px;margin:16px 0 6px}
input[type=text],input[type=password]{width:100%;padding:10px 12px;border:1px solid #d0d5dd;border-radius:10px;font:inherit;color:inherit;background:#fff}
input[type=text]:focus,input[type=password]:focus{outline:3px solid #e0e3ff;border-color:var(--brand)}
.check{display:flex;align-items:center;gap:9px;font-weight:500;margin:18px 0 24px}
.check input{width:16px;height:16px;accent-color:var(--brand);margin:0}
button{display:inline-flex;align-items:center;justify-content:center;padding:10px 18px;border-radius:10px;border:1px solid transparent;font:inherit;font-weight:600;cursor:pointer;text-decoration:none}
.primary{width:100%;color:#fff;background:linear-gradient(135deg,var(--brand),var(--brand2));box-shadow:0 6px 16px -8px rgba(79,70,229,.7)}
.secondary{display:inline-flex;align-items:center;padding:10px 18px;border-radius:10px;font-weight:600;text-decoration:none;color:var(--ink);background:#fff;border:1px solid #d0d5dd}
.danger{color:var(--bad);background:#fff;border-color:var(--badline)}
.link{padding:0;color:var(--muted);background:none;border:none}
button:disabled{opacity:.45;cursor:default}
code{font:13px/1 ui-monospace,"DejaVu Sans Mono",monospace;background:#f2f4f7;border-radius:6px;padding:3px 6px}
.flash{display:flex;align-items:center;gap:10px;margin:0 0 20px;padding:12px 16px;border:1px solid;border-radius:12px;font-weight:500}
.flash::before{content:"";flex:none;width:8px;height:8px;border-radius:50%;background:currentColor}
.flash.info{color:var(--ok);background:var(--okbg);border-color:var(--okline)}
.flash.error{color:var(--bad);background:var(--badbg);border-color:var(--badline)}
.counter{display:flex;align-items:baseline;gap:14px;margin:18px 0 26px;padding:22px 26px;border-radius:14px;background:linear-gradient(135deg,#f5f5ff,#faf5ff);border:1px solid #ebe9fe}
.counter b{font-size:64px;line-height:1;font-weight:800;letter-spacing:-.03em;color:var(--brand)}
.counter span{color:var(--muted);font-weight:500}
dl{display:grid;grid-template-columns:max-content 1fr;gap:8px 24px;margin:0 0 28px}
dt{color:var(--muted)}
dd{margin:0;font-weight:500}
.actions{display:flex;flex-wrap:wrap;align-items:center;gap:12px}
.actions form{margin:0}
table{width:100%;border-collapse:collapse;margin:6px 0 26px}
th{padding:8px 10px;border-bottom:1px solid var(--line);font-size:11.5px;font-weight:700;letter-spacing:.06em;text-transform:uppercase;text-align:left;color:var(--muted)}
td{padding:13px 10px;border-bottom:1px solid var(--line);vertical-align:middle}
tr:last-child td{border-bottom:none}
.device{display:flex;align-items:center;gap:12px}
.device svg{flex:none;color:var(--muted)}
.device strong{display:block}
.ua{display:block;max-width:300px;overflow:hidden;color:var(--muted);font-size:12px;white-space:nowrap;text-overflow:ellipsis}
.badge{margin-left:6px;padding:2px 8px;border-radius:999px;font-size:11.5px;font-weight:700;color:var(--ok);background:var(--okbg)}
.muted{color:var(--muted)}
footer{padding:18px;color:var(--muted);font-size:12.5px;text-align:center}
`;

/** The only style the pages may use: its hash is in the Content-Security-Policy. */
const CSP = [
  "default-src 'none'",
  `style-src 'sha256-${createHash('sha256').update(CSS).digest('base64')}'`,
  'img-src data:',
  "form-action 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
].join('; ');

const ICONS = {
  desktop: '<svg width="22" height="22" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="1.8" stroke-linecap="round" aria-hidden="true"><rect x="3" y="4" width="18" height="12" rx="2"/><path d="M8 20h8M12 16v4"/></svg>',
  phone: '<svg width="22" height="22" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="1.8" stroke-linecap="round" aria-hidden="true"><rect x="7" y="2.5" width="10" height="19" rx="2.5"/><path d="M11 18.5h2"/></svg>',
};

/** The hidden field the `csrf()` middleware checks, with a freshly masked token. */
function csrfField(r: R): string {
  return `<input type="hidden" name="_csrf" value="${esc(r.session.csrfToken())}">`;
}

/** The logged-in user's name, or `undefined`. */
function userOf(r: R): string | undefined {
  return r.session.owner === undefined ? undefined : r.session.get('user');
}

/** Sends a whole page: the layout around `main`, with the flash messages not yet shown. */
function page(r: R, title: string, main: string, status = 200): void {
  const user = userOf(r);
  const here = r.path;
  const current = (path: string): string => (here === path ? ' aria-current="page"' : '');
  const nav =
    user === undefined
      ? ''
      : `<nav><a href="/"${current('/')}>Counter</a><a href="/sessions"${current('/sessions')}>Sessions</a>` +
        `<span class="who"><span class="avatar">${esc(Array.from(user)[0] ?? '')}</span><span id="user">${esc(user)}</span></span>` +
        `<form method="post" action="/logout">${csrfField(r)}<button class="link" id="logout">Log out</button></form></nav>`;
  const flashes = (['info', 'error'] as const)
    .flatMap((kind) => r.session.flash(kind).map((m) => `<p class="flash ${kind}" role="${kind === 'error' ? 'alert' : 'status'}">${esc(m)}</p>`))
    .join('');
  const body = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)} · bare-session</title><link rel="icon" href="data:,"><style>${CSS}</style></head>
<body><header class="bar"><a class="brand" href="/"><span class="logo">bs</span>bare-session <span class="tag">login demo</span></a>${nav}</header>
<main>${flashes}${main}</main>
<footer>Sessions in ${storage.constructor.name} · idle timeout ${esc(maxAgeText)} · cookie <code>${esc(cookieName)}</code>: HttpOnly, SameSite=Lax${https ? ', Secure' : ''}</footer>
</body></html>`;
  r.response
    .status(status)
    .header('Content-Type', 'text/html; charset=utf-8')
    .header('Content-Security-Policy', CSP)
    .header('X-Content-Type-Options', 'nosniff')
    .header('Referrer-Policy', 'same-origin')
    .header('Cache-Control', 'no-store')
    .write(body);
}

/** "3 min ago", with the exact time (UTC) as a tooltip. */
function when(ms: number | undefined): string {
  if (ms === undefined) return '<span class="muted">unknown</span>';
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  const text = s < 10 ? 'just now' : s < 60 ? `${s} s ago` : s < 3600 ? `${Math.floor(s / 60)} min ago` : s < 86_400 ? `${Math.floor(s / 3600)} h ago` : `${Math.floor(s / 86_400)} d ago`;
  const exact = new Date(ms).toISOString().replace('T', ' ').slice(0, 19);
  return `<time datetime="${esc(new Date(ms).toISOString())}" title="${esc(exact)} UTC">${esc(text)}</time>`;
}

/** "Chrome 131 on Windows" from a user agent; good enough to tell one's devices apart. */
function device(userAgent: string): { name: string; mobile: boolean } {
  const browser =
    [/(Edg)\/(\d+)/, /(Firefox)\/(\d+)/, /(HeadlessChrome|Chrome|Chromium)\/(\d+)/, /Version\/(\d+).*(Safari)/]
      .map((re) => re.exec(userAgent))
      .find((m) => m !== null) ?? null;
  let name = 'Unknown browser';
  if (browser !== null) {
    const [, a = '', b = ''] = browser;
    name = a === 'Edg' ? `Edge ${b}` : /^\d+$/.test(a) ? `${b} ${a}` : `${a} ${b}`;
  }
  const os = /iPhone|iPad/.test(userAgent) ? 'iOS' : /Android/.test(userAgent) ? 'Android' : /Windows/.test(userAgent) ? 'Windows' : /Mac OS X/.test(userAgent) ? 'macOS' : /CrOS/.test(userAgent) ? 'ChromeOS' : /Linux/.test(userAgent) ? 'Linux' : undefined;
  return { name: os === undefined ? name : `${name} on ${os}`, mobile: /Mobile|iPhone|Android/.test(userAgent) };
}

// ---- Routes ----

// A refused request (403 from csrf(), say) gets a page, not a line of text. Outermost, so it
// sees what csrf() throws; the session is still committed (only read) afterwards.
s.use(async (r, next) => {
  try {
    await next();
  } catch (err) {
    if (!(err instanceof HttpError) || !err.expose) throw err;
    r.response.reset(err.status, '');
    const user = userOf(r);
    page(
      r,
      'Refused',
      `<section class="card narrow"><h1>Request refused</h1><p class="lead">${esc(err.message)}</p>` +
        `<p id="refused-as">${user === undefined ? 'This request carried no session.' : `This request carried the session of ${esc(user)}.`}</p>` +
        `<a class="secondary" href="/">Back to the app</a></section>`,
      err.status,
    );
  }
});
// Every POST, PUT, PATCH and DELETE must carry the session's token: 403 otherwise.
s.use(csrf());

s.get('/', (r) => {
  const user = userOf(r);
  if (user === undefined) {
    r.response.redirect('/login');
    return;
  }
  const visits = r.session.get('visits', 0) + 1;
  r.session.set('visits', visits);
  const remembered = r.session.get('rememberMe', false);
  page(
    r,
    'Counter',
    `<section class="card"><h1>Hello, ${esc(user)}</h1><p class="lead">This page counts your visits in this session. Reload it.</p>` +
      `<div class="counter"><b id="visits">${visits}</b><span>${visits === 1 ? 'visit' : 'visits'} in this session</span></div>` +
      `<dl><dt>Signed in</dt><dd>${when(r.session.get('loginAt'))}</dd>` +
      `<dt>Remember me</dt><dd id="remember">${remembered ? 'on: 30 days, even after the browser closes' : 'off: until the browser closes'}</dd>` +
      `<dt>Logged out after</dt><dd>${remembered ? '30 days' : esc(maxAgeText)} without a request</dd></dl>` +
      `<div class="actions"><a class="secondary" href="/sessions">Your sessions</a>` +
      `<form method="post" action="/logout">${csrfField(r)}<button class="danger">Log out</button></form></div></section>`,
  );
});

s.get('/login', (r) => {
  if (userOf(r) !== undefined) {
    r.response.redirect('/');
    return;
  }
  const name = r.session.flash('name')[0];
  page(
    r,
    'Sign in',
    `<section class="card narrow"><h1>Sign in</h1><p class="lead">Any name will do. The password is <code>${PASSWORD}</code>.</p>` +
      `<form method="post" action="/login" id="login">${csrfField(r)}` +
      `<label for="name">Name</label><input type="text" id="name" name="name" maxlength="64" required autocomplete="username" autofocus value="${esc(typeof name === 'string' ? name : '')}">` +
      `<label for="password">Password</label><input type="password" id="password" name="password" required autocomplete="current-password" placeholder="${PASSWORD}">` +
      `<label class="check"><input type="checkbox" name="remember" id="remember" value="1"> Remember me for 30 days</label>` +
      `<button class="primary" type="submit">Sign in</button></form></section>`,
  );
});

s.post('/login', async (r) => {
  const form = await r.form();
  const name = (form.get('name') ?? '').trim();
  if (name === '' || name.length > 64) {
    r.session.flash('error', 'Enter a name of 1 to 64 characters.');
    r.response.redirect('/login', 303);
    return;
  }
  if (form.get('password') !== PASSWORD) {
    r.session.flash('error', `Wrong password: it is "${PASSWORD}".`);
    r.session.flash('name', name);
    r.response.redirect('/login', 303);
    return;
  }
  const remember = form.get('remember') === '1';
  // A new id at login (session fixation), with nothing of the anonymous session kept: a new
  // CSRF secret too. Then the owner, so that the user's sessions can be listed and ended.
  await r.session.regenerate({ keepData: false });
  r.session.setOwner(name, { userAgent: (r.header('user-agent') ?? '').slice(0, 300) });
  r.session.setMap({ user: name, visits: 0, loginAt: Date.now(), rememberMe: remember });
  // Checked: a 30-day cookie and idle timeout; not: a cookie the browser forgets when it closes.
  r.session.remember(remember ? '30d' : false);
  r.session.flash('info', `Welcome, ${name}. You are signed in.`);
  r.response.redirect('/', 303);
});

s.post('/logout', async (r) => {
  // The session is deleted and its cookie expired; the flash starts a new, anonymous session
  // (a new id) that carries the message to the login page.
  await r.session.destroy();
  r.session.flash('info', 'You are signed out.');
  r.response.redirect('/login', 303);
});

s.get('/sessions', async (r) => {
  const user = userOf(r);
  if (user === undefined) {
    r.response.redirect('/login');
    return;
  }
  const mine = r.session.idHash;
  const sessions: OwnedSession[] = await s.sessions.of(user);
  const rows = sessions
    .map((x) => {
      const ua = typeof x.info === 'object' && x.info !== null && !Array.isArray(x.info) && typeof x.info['userAgent'] === 'string' ? x.info['userAgent'] : '';
      const d = device(ua);
      const badge = x.idHash === mine ? '<span class="badge">this browser</span>' : '';
      return `<tr data-session="${esc(x.idHash.slice(0, 12))}"${x.idHash === mine ? ' class="current"' : ''}><td><div class="device">${d.mobile ? ICONS.phone : ICONS.desktop}<div><strong>${esc(d.name)}${badge}</strong><span class="ua" title="${esc(ua)}">${esc(ua || 'no user agent')}</span></div></div></td>` +
        `<td>${when(x.created)}</td><td>${when(x.lastSeen)}</td></tr>`;
    })
    .join('');
  const others = sessions.filter((x) => x.idHash !== mine).length;
  page(
    r,
    'Sessions',
    `<section class="card"><h1>Your sessions</h1><p class="lead">${esc(user)} is signed in on <span id="session-count">${sessions.length}</span> ${sessions.length === 1 ? 'browser' : 'browsers'}.</p>` +
      `<table><thead><tr><th>Browser</th><th>Started</th><th>Last seen</th></tr></thead><tbody>${rows}</tbody></table>` +
      `<div class="actions"><form method="post" action="/logout-everywhere">${csrfField(r)}<button class="danger" id="logout-everywhere"${others === 0 ? ' disabled' : ''}>Log out everywhere else</button></form>` +
      `<span class="muted">${others === 0 ? 'No other session to end.' : `Ends the ${others === 1 ? 'other session' : `${others} other sessions`}; this one stays.`}</span></div></section>`,
  );
});

s.post('/logout-everywhere', async (r) => {
  const user = userOf(r);
  if (user === undefined) {
    r.response.redirect('/login', 303);
    return;
  }
  // Every session of the user but this one, in every process that shares the storage.
  const ended = await s.sessions.destroyAll(user, { except: r.session });
  r.session.flash('info', `Signed out of ${ended} other ${ended === 1 ? 'session' : 'sessions'}.`);
  r.response.redirect('/sessions', 303);
});

s.setPort(Number(env['PORT'] || 8199));
await s.run();
if (process.exitCode !== 1) process.stdout.write(`login demo: any name, password "${PASSWORD}"\n`);
