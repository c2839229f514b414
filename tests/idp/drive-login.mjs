#!/usr/bin/env node
// Plays the user's part of an authorization-code login against the local
// OpenID provider (oidc-server.mjs), over plain HTTP with Node built-ins only.
//
//   node drive-login.mjs <authorize-url> [--user NAME] [--password PW] [--deny]
//
// Follows <authorize-url> through the devInteractions login form (any user,
// default alice; any password) and the consent form (or, with --deny, the
// "[ Cancel ]" link /interaction/<uid>/abort, so the client gets
// error=access_denied). When the provider redirects to the client's
// redirect_uri (the authorize URL's redirect_uri parameter; without one, the
// first URL outside the provider's origin), sends a GET to that URL, as a
// browser would: that is the client's loopback listener.
//
// stdout, one JSON line, when the callback GET got a response (any status):
//   {"callback_url": "...", "status": 200, "body": "<first 500 chars>"}
// Exit status: 0 then; 1 if the flow or the callback GET failed (reason on
// stderr); 2 for bad usage. Each request is bounded by 10 s, the run by 30 s.

import {
  CookieJar, FlowError, request, parseForms, describe, loginForm, consentForm, abortLink, parseArgs, runMain,
  urlArg, account, callbackOf,
} from './http-flow.mjs';

const USAGE = 'usage: node drive-login.mjs <authorize-url> [--user NAME] [--password PW] [--deny]';
const args = parseArgs(process.argv.slice(2), {
  positional: ['<authorize-url>'], options: ['user', 'password'], flags: ['deny'], usage: USAGE,
});
const MAX_STEPS = 20;

runMain('drive-login', 30_000, async () => {
  const authorize = urlArg(args._[0]);
  const { user, password } = account(args);
  const providerOrigin = authorize.origin;
  const { redirectUri, isCallback } = callbackOf(authorize);

  const jar = new CookieJar();
  const seen = [];
  let next = { method: 'GET', url: authorize.href };
  let consented = false;
  for (let step = 0; ; step += 1) {
    if (step >= MAX_STEPS) throw new FlowError(`no redirect to the client after ${MAX_STEPS} requests: ${seen.join(' -> ')}`);
    if (isCallback(next.url)) break;
    if (new URL(next.url).origin !== providerOrigin) {
      throw new FlowError(`redirected to ${next.url}, which is neither the provider (${providerOrigin}) nor the redirect_uri (${redirectUri?.href})`);
    }
    seen.push(`${next.method} ${new URL(next.url).pathname}`);
    const res = await request(jar, next.url, next);
    if (res.status >= 300 && res.status < 400 && res.location) {
      next = { method: 'GET', url: res.location };
      continue;
    }
    if (res.status !== 200) throw new FlowError(`unexpected response: ${describe(res)}`);
    const forms = parseForms(res.text, res.url);
    const login = loginForm(forms);
    const consent = consentForm(forms);
    if (login) {
      next = { method: 'POST', url: login.action, form: { ...login.fields, login: user, password } };
    } else if (consent) {
      if (args.deny) {
        const abort = abortLink(res.text, res.url);
        if (!abort) throw new FlowError(`consent page without an abort link: ${describe(res)}`);
        next = { method: 'GET', url: abort };
      } else {
        if (consented) throw new FlowError(`consent form shown again after consenting: ${describe(res)}`);
        consented = true;
        next = { method: 'POST', url: consent.action, form: { ...consent.fields } };
      }
    } else {
      throw new FlowError(`page is neither the login nor the consent form: ${describe(res)}`);
    }
  }

  // The callback: a plain GET, as the browser would send it (no redirects followed).
  const cb = await request(jar, next.url).catch((err) => {
    throw new FlowError(`the callback GET failed (is the client listening?): ${err.message}`);
  });
  process.stdout.write(`${JSON.stringify({ callback_url: next.url, status: cb.status, body: cb.text.slice(0, 500) })}\n`);
});
