#!/usr/bin/env node
// Plays the user's part of an authorization-code login against the local
// OpenID provider (oidc-server.mjs) in a real headless Chromium (/usr/bin/chromium,
// Debian's package; scripts/test-deps.sh installs it), driven by playwright-core.
//
//   node browser-login.mjs <authorize-url> [--user NAME] [--password PW] [--deny] [--screenshot PATH]
//
// Opens <authorize-url> in a fresh profile (a temporary user-data-dir, removed
// afterwards), fills the devInteractions login form (any user, default alice;
// any password), clicks "Continue" on the consent page (or, with --deny, the
// "[ Cancel ]" link, so the client gets error=access_denied), and waits until
// the browser has navigated to the client's redirect_uri (the authorize URL's
// redirect_uri parameter; without one, the first page outside the provider's
// origin) — that is the client's loopback listener. Requests to hosts other
// than 127.0.0.1/localhost/[::1] are blocked (the provider's pages @import a web font).
//
// stdout, one JSON line, once the callback page has loaded (whatever its status):
//   {"callback_url": "...", "status": 200, "text": "<page body innerText, first 500 chars>"}
// --screenshot PATH saves a PNG of the final page (also of the page at hand on failure).
// Exit status: 0 then; 1 if the browser could not start, the flow or the callback
// navigation failed (reason on stderr); 2 for bad usage. The run is bounded by 60 s.

import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';

import {
  FlowError, parseArgs, urlArg, account, callbackOf,
} from './http-flow.mjs';

const USAGE = 'usage: node browser-login.mjs <authorize-url> [--user NAME] [--password PW] [--deny] [--screenshot PATH]';
const args = parseArgs(process.argv.slice(2), {
  positional: ['<authorize-url>'], options: ['user', 'password', 'screenshot'], flags: ['deny'], usage: USAGE,
});

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const RUN_MS = 60_000;
const STEP_MS = 15_000;
const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);

const sleep = (ms) => new Promise((r) => { setTimeout(r, ms); });
const log = (msg) => process.stderr.write(`browser-login: ${msg}\n`);

let context;
let userDataDir;
let page;

async function cleanup() {
  if (context) {
    const c = context;
    context = undefined;
    await Promise.race([c.close().catch(() => {}), sleep(5000)]);
  }
  if (userDataDir) {
    const d = userDataDir;
    userDataDir = undefined;
    await fs.rm(d, { recursive: true, force: true }).catch(() => {});
  }
}

async function screenshot() {
  if (args.screenshot && page) {
    await page.screenshot({ path: args.screenshot, fullPage: true, timeout: 5000 })
      .catch((e) => log(`screenshot failed: ${e.message.split('\n')[0]}`));
  }
}

let failing = false;
async function fail(msg) {
  if (failing) return;
  failing = true;
  log(`error: ${msg}`);
  await screenshot();
  await cleanup();
  process.exit(1);
}

const runTimer = setTimeout(() => { fail(`gave up after ${RUN_MS / 1000} s${page ? ` (page: ${page.url()})` : ''}`); }, RUN_MS);

async function main() {
  const authorize = urlArg(args._[0]);
  const { user, password } = account(args);
  const { isCallback } = callbackOf(authorize);

  try {
    await fs.access(CHROMIUM);
  } catch {
    throw new FlowError(`${CHROMIUM} not found (install Debian's chromium package: scripts/test-deps.sh)`);
  }
  const { chromium } = await import('playwright-core');
  userDataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'browser-login-'));
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 30_000,
    });
  } catch (e) {
    throw new FlowError(`could not start ${CHROMIUM}: ${e.message}`);
  }
  await context.route('**/*', (route) => {
    const u = new URL(route.request().url());
    if (LOOPBACK.has(u.hostname) || !/^https?:$/.test(u.protocol)) return route.continue();
    return route.abort('blockedbyclient');
  });
  page = context.pages()[0] ?? await context.newPage();
  page.setDefaultTimeout(STEP_MS);
  page.setDefaultNavigationTimeout(STEP_MS);

  // The callback: the main-frame navigation to the redirect_uri (response or failure).
  // Also the last main-frame document response from the provider (to fail fast on its error pages).
  let callback;
  let providerDoc;
  page.on('response', (r) => {
    try {
      if (!r.request().isNavigationRequest() || r.frame() !== page.mainFrame()) return;
      if (!callback && isCallback(r.url())) callback = { url: r.url(), status: r.status() };
      else if (new URL(r.url()).origin === authorize.origin) providerDoc = { url: r.url(), status: r.status() };
    } catch { /* a response without a frame */ }
  });
  let callbackRequested;
  page.on('request', (req) => {
    if (!callbackRequested && req.isNavigationRequest() && isCallback(req.url())) callbackRequested = req.url();
  });
  page.on('requestfailed', (req) => {
    if (!callback && req.isNavigationRequest() && isCallback(req.url())) {
      callback = { url: req.url(), error: req.failure()?.errorText || 'failed' };
    }
  });

  // Poll until cond() is true, up to STEP_MS.
  const until = async (what, cond) => {
    const deadline = Date.now() + STEP_MS;
    while (!(await cond())) {
      if (Date.now() > deadline) throw new FlowError(`timed out after ${STEP_MS / 1000} s waiting for ${what} (page: ${page.url()})`);
      await sleep(100);
    }
  };
  // The prompt ("login"/"consent") of the devInteractions form on the page, if any.
  const promptOnPage = async () => {
    try {
      return await page.locator('form input[name="prompt"]').first().getAttribute('value', { timeout: 250 });
    } catch {
      return undefined; // not (yet) there, or the page is navigating
    }
  };

  try {
    await page.goto(authorize.href, { waitUntil: 'commit' });
  } catch (e) {
    if (!callback) throw new FlowError(`could not open ${authorize.href}: ${e.message.split('\n')[0]}`);
  }

  // Login form -> consent form -> callback; each step bounded by STEP_MS.
  let loggedIn = false;
  let consented = false;
  const flow = async () => {
    while (!callback) {
      let prompt;
      await until('the login form, the consent form or the callback', async () => {
        if (callback) return true;
        if (providerDoc?.status >= 400 && page.url() === providerDoc.url) {
          const text = await page.locator('body').innerText({ timeout: 2000 }).catch(() => '');
          throw new FlowError(`HTTP ${providerDoc.status} from ${providerDoc.url}: ${text.replace(/\s+/g, ' ').trim().slice(0, 300)}`);
        }
        prompt = await promptOnPage();
        return prompt !== undefined && prompt !== null;
      });
      if (callback) break;
      const before = page.url();
      if (prompt === 'login') {
        if (loggedIn) throw new FlowError(`login form shown again after signing in (page: ${before})`);
        loggedIn = true;
        const form = page.locator('form:has(input[name="prompt"][value="login"])');
        await form.locator('input[name="login"]').fill(user);
        await form.locator('input[name="password"]').fill(password);
        await form.locator('button[type="submit"]').click({ noWaitAfter: true });
      } else if (prompt === 'consent') {
        if (consented) throw new FlowError(`consent form shown again after consenting (page: ${before})`);
        consented = true;
        if (args.deny) {
          await page.locator('a[href*="/interaction/"][href$="/abort"]').click({ noWaitAfter: true });
        } else {
          await page.locator('form:has(input[name="prompt"][value="consent"]) button[type="submit"]').click({ noWaitAfter: true });
        }
      } else {
        throw new FlowError(`unexpected form (prompt=${prompt}) on ${before}`);
      }
      await until(`the page after the ${prompt} form`, async () => callback || page.url() !== before);
    }
  };
  try {
    await flow();
  } catch (e) {
    if (e instanceof FlowError && callbackRequested && !callback) {
      throw new FlowError(`the browser's request to the callback ${callbackRequested} got no response within ${STEP_MS / 1000} s; is the client answering?`);
    }
    throw e;
  }

  if (callback.error) {
    throw new FlowError(`the browser's request to the callback ${callback.url} failed (${callback.error}); is the client listening?`);
  }
  // The page the callback navigation ends on (the listener may redirect, e.g. to a "done" page).
  await until('the callback page', async () => isCallback(page.url()) || new URL(page.url()).origin !== authorize.origin);
  await page.waitForLoadState('load')
    .catch((e) => { throw new FlowError(`callback page did not load: ${e.message.split('\n')[0]}`); });
  const text = await page.locator('body').innerText({ timeout: 5000 }).catch(() => '');
  await screenshot();
  process.stdout.write(`${JSON.stringify({ callback_url: callback.url, status: callback.status, text: text.slice(0, 500) })}\n`);
}

main().then(
  async () => { clearTimeout(runTimer); await cleanup(); process.exit(0); },
  (err) => fail(err instanceof FlowError ? err.message : (err?.stack || String(err))),
);
