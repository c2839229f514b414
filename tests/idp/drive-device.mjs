#!/usr/bin/env node
// Plays the user's part of a device authorization grant (RFC 8628) against the
// local OpenID provider (oidc-server.mjs), over plain HTTP with Node built-ins only.
//
//   node drive-device.mjs <issuer-base-url> <user_code> [--user NAME] [--password PW] [--deny]
//
// Opens <issuer-base-url>/device (the verification_uri), enters <user_code>,
// confirms it (or, with --deny, presses "[ Abort ]", so the client's polling
// gets access_denied), then signs in on the devInteractions login form (any
// user, default alice) and consents. <issuer-base-url> may also be the
// verification_uri itself (…/device).
//
// stdout, one JSON line on success:
//   {"result": "approved"|"denied", "user": "alice", "user_code": "...", "status": 200, "text": "<final page text>"}
// Exit status: 0 then (the client's next poll gets its tokens, or access_denied
// with --deny); 1 if the flow failed (reason on stderr, e.g. an unknown or
// expired user code); 2 for bad usage. Each request is bounded by 10 s, the run by 30 s.

import {
  CookieJar, FlowError, request, parseForms, pageText, describe, loginForm, consentForm, parseArgs, runMain,
  urlArg, account,
} from './http-flow.mjs';

const USAGE = 'usage: node drive-device.mjs <issuer-base-url> <user_code> [--user NAME] [--password PW] [--deny]';
const args = parseArgs(process.argv.slice(2), {
  positional: ['<issuer-base-url>', '<user_code>'], options: ['user', 'password'], flags: ['deny'], usage: USAGE,
});
const MAX_STEPS = 20;

runMain('drive-device', 30_000, async () => {
  const base = urlArg(args._[0]);
  const userCode = args._[1];
  const { user, password } = account(args);
  const deviceUrl = /\/device\/?$/.test(base.pathname)
    ? new URL(base.pathname.replace(/\/$/, ''), base).href
    : new URL(`${base.pathname.replace(/\/$/, '')}/device`, base).href;
  const jar = new CookieJar();

  // 1. The user code entry page.
  let res = await request(jar, deviceUrl);
  if (res.status !== 200) throw new FlowError(`device page: ${describe(res)}`);
  const input = parseForms(res.text, res.url).find((f) => 'user_code' in f.fields && 'xsrf' in f.fields);
  if (!input) throw new FlowError(`device page has no user code form: ${describe(res)}`);

  // 2. Submit the code; the provider answers with the confirmation page.
  res = await request(jar, input.action, { method: 'POST', form: { ...input.fields, user_code: userCode } });
  const confirm = res.status === 200 && parseForms(res.text, res.url).find((f) => f.fields.confirm === 'yes' && 'xsrf' in f.fields);
  if (!confirm) {
    throw new FlowError(`user code ${JSON.stringify(userCode)} was not accepted: ${describe(res)}`);
  }

  // 3. Confirm (or abort), then log in and consent.
  const { confirm: _, ...confirmFields } = confirm.fields;
  let next = args.deny
    ? { method: 'POST', url: confirm.action, form: { ...confirmFields, abort: 'yes' } }
    : { method: 'POST', url: confirm.action, form: confirm.fields };
  const seen = [];
  let consented = false;
  for (let step = 0; ; step += 1) {
    if (step >= MAX_STEPS) throw new FlowError(`no result page after ${MAX_STEPS} requests: ${seen.join(' -> ')}`);
    if (new URL(next.url).origin !== base.origin) throw new FlowError(`redirected away from the provider, to ${next.url}`);
    seen.push(`${next.method} ${new URL(next.url).pathname}`);
    res = await request(jar, next.url, next);
    if (res.status >= 300 && res.status < 400 && res.location) {
      next = { method: 'GET', url: res.location };
      continue;
    }
    const forms = parseForms(res.text, res.url);
    const login = res.status === 200 && loginForm(forms);
    const consent = res.status === 200 && consentForm(forms);
    if (login) {
      next = { method: 'POST', url: login.action, form: { ...login.fields, login: user, password } };
      continue;
    }
    if (consent) {
      if (consented) throw new FlowError(`consent form shown again after consenting: ${describe(res)}`);
      consented = true;
      next = { method: 'POST', url: consent.action, form: { ...consent.fields } };
      continue;
    }
    const text = pageText(res.text);
    // oidc-provider's default pages: successSource / userCodeInputSource(AbortedError).
    if (!args.deny && res.status === 200 && /Sign-in Success/i.test(text)) {
      process.stdout.write(`${JSON.stringify({ result: 'approved', user, user_code: userCode, status: res.status, text: text.slice(0, 500) })}\n`);
      return;
    }
    if (args.deny && /interrupted/i.test(text)) {
      process.stdout.write(`${JSON.stringify({ result: 'denied', user, user_code: userCode, status: res.status, text: text.slice(0, 500) })}\n`);
      return;
    }
    throw new FlowError(`unexpected page: ${describe(res)}`);
  }
});
