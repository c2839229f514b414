// What the two local authorization servers (oidc-server.mjs, mcp-as.mjs) share: stdout
// kept for the READY line, whole-number settings from the environment, a fresh RS256
// signing key, and an HTTP server on 127.0.0.1 that answers 503 until the provider is
// set, stops on SIGTERM/SIGINT and then says `READY <port>`.

import * as crypto from 'node:crypto';
import * as http from 'node:http';

// oidc-provider, loaded once everything console prints goes to stderr (it prints NOTICEs
// with console.info), so that stdout holds the READY line only.
export async function loadProvider() {
  const toStderr = (...args) => process.stderr.write(`${args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' ')}\n`);
  console.log = toStderr;
  console.info = toStderr;
  console.debug = toStderr;
  return import('oidc-provider');
}

// A non-negative whole number from the environment variable `name` (`dflt` when unset).
export function intEnv(name, dflt) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return dflt;
  const n = Number.parseInt(raw, 10);
  if (!Number.isFinite(n) || n < 0 || String(n) !== raw.trim()) {
    throw new Error(`env ${name} must be a non-negative integer, got ${JSON.stringify(raw)}`);
  }
  return n;
}

// A fresh RS256 signing key (private JWK with a random kid).
export function signingKey() {
  const key = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
  key.kid = crypto.randomBytes(8).toString('hex');
  key.use = 'sig';
  key.alg = 'RS256';
  return key;
}

// Listens on 127.0.0.1:`port` (0: any free one) first, since the issuer needs the real
// port. Returns the server, its port and issuer, and serve(handler), which puts the
// provider in place of the 503 answer.
export async function listen(port) {
  let handler = (req, res) => { res.statusCode = 503; res.end('starting'); };
  const server = http.createServer((req, res) => handler(req, res));
  server.keepAliveTimeout = 1000;
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  const bound = server.address().port;
  return {
    server,
    port: bound,
    issuer: `http://127.0.0.1:${bound}`,
    serve(h) { handler = h; },
  };
}

// Stops on SIGTERM/SIGINT (the handlers go in before READY, so a harness may signal right
// after reading it), writes `summary` to stderr, then `READY <port>` on stdout.
export function ready({ server, port }, tag, summary) {
  let stopping = false;
  const shutdown = (signal) => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`[${tag}] ${signal}, shutting down\n`);
    server.close(() => process.exit(0));
    server.closeAllConnections();
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.stderr.write(`[${tag}] ${summary}\n`);
  process.stdout.write(`READY ${port}\n`);
}
