// Shared helpers for drive-login.mjs, drive-device.mjs and browser-login.mjs: an HTTP "user agent"
// made of Node 20 built-ins only (fetch with redirect: 'manual', a cookie jar
// that honours Path/Domain/Expires/Max-Age/Secure, and a tiny HTML form parser
// that is just enough for oidc-provider's devInteractions and device pages).

export const REQUEST_TIMEOUT_MS = 10_000;

export class FlowError extends Error {}

// ---------------------------------------------------------------- cookies (RFC 6265, simplified)

function defaultPath(url) {
  const p = url.pathname;
  if (!p.startsWith('/') || p.lastIndexOf('/') === 0) return '/';
  return p.slice(0, p.lastIndexOf('/'));
}

function pathMatches(requestPath, cookiePath) {
  if (requestPath === cookiePath) return true;
  if (!requestPath.startsWith(cookiePath)) return false;
  return cookiePath.endsWith('/') || requestPath[cookiePath.length] === '/';
}

function domainMatches(host, domain) {
  return host === domain || (host.endsWith(`.${domain}`) && !/^[\d.]+$/.test(host));
}

export class CookieJar {
  #cookies = new Map(); // "domain;path;name" -> cookie

  // Store the Set-Cookie headers of a response to `url`.
  store(url, headers) {
    const lines = typeof headers.getSetCookie === 'function' ? headers.getSetCookie() : [];
    for (const line of lines) this.#storeOne(url, line);
  }

  #storeOne(url, line) {
    const [pair, ...attrs] = line.split(';');
    const eq = pair.indexOf('=');
    if (eq <= 0) return;
    const cookie = {
      name: pair.slice(0, eq).trim(),
      value: pair.slice(eq + 1).trim(),
      domain: url.hostname,
      hostOnly: true,
      path: defaultPath(url),
      secure: false,
      expires: Infinity,
    };
    let maxAge;
    for (const attr of attrs) {
      const i = attr.indexOf('=');
      const key = (i === -1 ? attr : attr.slice(0, i)).trim().toLowerCase();
      const val = i === -1 ? '' : attr.slice(i + 1).trim();
      if (key === 'path' && val.startsWith('/')) cookie.path = val;
      else if (key === 'domain' && val) {
        const d = val.replace(/^\./, '').toLowerCase();
        if (!domainMatches(url.hostname, d)) return; // a foreign domain: reject the cookie
        cookie.domain = d;
        cookie.hostOnly = false;
      } else if (key === 'secure') cookie.secure = true;
      else if (key === 'max-age' && /^-?\d+$/.test(val)) maxAge = Number(val);
      else if (key === 'expires') {
        const t = Date.parse(val);
        if (!Number.isNaN(t)) cookie.expires = t;
      }
    }
    if (maxAge !== undefined) cookie.expires = maxAge <= 0 ? 0 : Date.now() + maxAge * 1000;
    const key = `${cookie.domain};${cookie.path};${cookie.name}`;
    if (cookie.expires <= Date.now()) this.#cookies.delete(key);
    else this.#cookies.set(key, cookie);
  }

  // The Cookie header value for a request to `url` (undefined when none apply).
  header(url) {
    const now = Date.now();
    const matching = [];
    for (const [key, c] of this.#cookies) {
      if (c.expires <= now) { this.#cookies.delete(key); continue; }
      if (c.hostOnly ? url.hostname !== c.domain : !domainMatches(url.hostname, c.domain)) continue;
      if (!pathMatches(url.pathname, c.path)) continue;
      if (c.secure && url.protocol !== 'https:') continue;
      matching.push(c);
    }
    matching.sort((a, b) => b.path.length - a.path.length); // longer paths first, as browsers do
    return matching.length ? matching.map((c) => `${c.name}=${c.value}`).join('; ') : undefined;
  }
}

// ---------------------------------------------------------------- HTTP

// One request, no redirect following. Returns { url, status, location, text, contentType }.
export async function request(jar, url, { method = 'GET', form } = {}) {
  const u = new URL(url);
  const headers = { 'user-agent': 'mcp-credd-tests/drive (node fetch)', accept: 'text/html,*/*' };
  const cookie = jar?.header(u);
  if (cookie) headers.cookie = cookie;
  let body;
  if (form) {
    body = new URLSearchParams(form).toString();
    headers['content-type'] = 'application/x-www-form-urlencoded';
  }
  let res;
  let text;
  try {
    const signal = AbortSignal.timeout(REQUEST_TIMEOUT_MS);
    res = await fetch(u, { method, headers, body, redirect: 'manual', signal });
    text = await res.text();
  } catch (err) {
    const why = err?.name === 'TimeoutError' ? `no complete response within ${REQUEST_TIMEOUT_MS / 1000} s`
      : (err?.cause?.code || err?.cause?.message || err?.message || String(err));
    throw new FlowError(`${method} ${u.href} failed: ${why}`);
  }
  jar?.store(u, res.headers);
  const loc = res.headers.get('location');
  return {
    url: u.href,
    status: res.status,
    location: loc ? new URL(loc, u).href : undefined,
    contentType: res.headers.get('content-type') || '',
    text,
  };
}

// ---------------------------------------------------------------- HTML

const ENTITIES = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", '#39': "'", '#x27': "'", '#34': '"', '#x2F': '/' };
export function unescapeHtml(s) {
  return s.replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (m, e) => {
    if (ENTITIES[e] !== undefined) return ENTITIES[e];
    if (/^#x/i.test(e)) return String.fromCodePoint(parseInt(e.slice(2), 16));
    if (/^#\d/.test(e)) return String.fromCodePoint(parseInt(e.slice(1), 10));
    return m;
  });
}

function attributes(tag) {
  const out = {};
  const re = /([^\s=/>"']+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>"']+)))?/g;
  const inner = tag.replace(/^<\s*[a-z]+/i, '').replace(/\/?>$/, '');
  let m;
  while ((m = re.exec(inner))) {
    out[m[1].toLowerCase()] = unescapeHtml(m[2] ?? m[3] ?? m[4] ?? '');
  }
  return out;
}

// Forms of a page: [{ id, action (absolute), method, fields: {name: value} }].
// Only <input> elements inside the <form> count (hidden/text/password values as given).
export function parseForms(html, baseUrl) {
  const forms = [];
  const re = /<form\b[^>]*>([\s\S]*?)<\/form>/gi;
  let m;
  while ((m = re.exec(html))) {
    const open = m[0].match(/^<form\b[^>]*>/i)[0];
    const a = attributes(open);
    const fields = {};
    for (const input of m[1].match(/<input\b[^>]*>/gi) || []) {
      const ia = attributes(input);
      if (ia.name && !['submit', 'button', 'image', 'checkbox', 'radio'].includes((ia.type || '').toLowerCase())) {
        fields[ia.name] = ia.value ?? '';
      }
    }
    forms.push({
      id: a.id,
      action: new URL(a.action || baseUrl, baseUrl).href,
      method: (a.method || 'get').toUpperCase(),
      fields,
    });
  }
  return forms;
}

// Visible-ish text of a page, for error messages.
export function pageText(html) {
  return unescapeHtml(html
    .replace(/<(head|script|style)\b[\s\S]*?<\/\1>/gi, ' ')
    .replace(/<details\b[\s\S]*?<\/details>/gi, ' ')
    .replace(/<[^>]+>/g, ' '))
    .replace(/\s+/g, ' ')
    .trim();
}

export function describe(res, max = 300) {
  const text = /html/i.test(res.contentType) ? pageText(res.text) : res.text.trim();
  return `HTTP ${res.status} from ${res.url}${res.location ? ` (Location: ${res.location})` : ''}: ${text.slice(0, max)}`;
}

// ---------------------------------------------------------------- devInteractions forms

// The devInteractions login form (prompt=login) of a page, if any.
export const loginForm = (forms) => forms.find((f) => f.fields.prompt === 'login' && 'login' in f.fields);
// The devInteractions consent form (prompt=consent) of a page, if any.
export const consentForm = (forms) => forms.find((f) => f.fields.prompt === 'consent');
// The devInteractions "[ Cancel ]" link: /interaction/<uid>/abort.
export function abortLink(html, baseUrl) {
  const m = html.match(/href="([^"]*\/interaction\/[^"/]+\/abort)"/);
  return m ? new URL(unescapeHtml(m[1]), baseUrl).href : undefined;
}

// ---------------------------------------------------------------- CLI plumbing

// Parse argv: positional names, string options (--user NAME) and flags (--deny).
export function parseArgs(argv, { positional, options = [], flags = [], usage }) {
  const out = { _: [] };
  for (let i = 0; i < argv.length; i += 1) {
    const a = argv[i];
    if (a === '-h' || a === '--help') {
      process.stdout.write(`${usage}\n`);
      process.exit(0);
    }
    const [name, inline] = a.startsWith('--') ? a.slice(2).split(/=(.*)/s, 2) : [undefined];
    if (name !== undefined && options.includes(name)) {
      const v = inline ?? argv[(i += 1)];
      if (v === undefined || v === '') usageError(usage, `--${name} needs a value`);
      out[name] = v;
    } else if (name !== undefined && flags.includes(name) && inline === undefined) {
      out[name] = true;
    } else if (a.startsWith('-') && a !== '-') {
      usageError(usage, `unknown option ${a}`);
    } else {
      out._.push(a);
    }
  }
  if (out._.length !== positional.length) usageError(usage, `expected ${positional.length} argument(s): ${positional.join(' ')}`);
  return out;
}

// The URL argument `raw`, or a FlowError naming it.
export function urlArg(raw) {
  try {
    return new URL(raw);
  } catch {
    throw new FlowError(`not a URL: ${raw}`);
  }
}

// The account to sign in as: --user (default alice), --password (any will do).
export const account = (args) => ({ user: args.user ?? 'alice', password: args.password ?? 'any-password' });

// The client's callback for the login that starts at `authorize`: its redirect_uri
// parameter, and isCallback(href), true for that URL (same origin and path) or, without
// one, for any http(s) page outside the provider's origin.
export function callbackOf(authorize) {
  let redirectUri;
  const raw = authorize.searchParams.get('redirect_uri');
  if (raw) {
    try {
      redirectUri = new URL(raw);
    } catch {
      throw new FlowError(`the authorize URL's redirect_uri is not a URL: ${raw}`);
    }
  }
  const isCallback = (href) => {
    let u;
    try { u = new URL(href); } catch { return false; }
    if (redirectUri) return u.origin === redirectUri.origin && u.pathname === redirectUri.pathname;
    return /^https?:$/.test(u.protocol) && u.origin !== authorize.origin;
  };
  return { redirectUri, isCallback };
}

export function usageError(usage, msg) {
  process.stderr.write(`error: ${msg}\n${usage}\n`);
  process.exit(2);
}

// Run main() with an overall deadline; print FlowError/other failures to stderr and exit 1.
export function runMain(name, deadlineMs, main) {
  const timer = setTimeout(() => {
    process.stderr.write(`${name}: error: gave up after ${deadlineMs / 1000} s\n`);
    process.exit(1);
  }, deadlineMs);
  main().then(
    () => { clearTimeout(timer); process.exit(0); },
    (err) => {
      clearTimeout(timer);
      process.stderr.write(`${name}: error: ${err instanceof FlowError ? err.message : (err?.stack || err)}\n`);
      process.exit(1);
    },
  );
}
