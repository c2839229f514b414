// Authorization server for MCP servers (the MCP authorization spec), for mcp-credd tests.
//
// An oidc-provider on 127.0.0.1 with:
//   - open dynamic client registration (RFC 7591) at /reg;
//   - resource indicators (RFC 8707): every access token is a JWT whose `aud` is the
//     `resource` the client asked for (any http://127.0.0.1 or http://localhost URL);
//   - PKCE required for the authorization code grant; every request (authorization, code
//     exchange, refresh, client_credentials) must name its `resource`; rotating refresh tokens for clients
//     registered for the refresh_token grant;
//   - pre-registered clients for client_credentials:
//       agent-basic  client_secret_basic, secret `agent-secret`
//       agent-jwt    private_key_jwt, public key from CLIENT_PUBLIC_KEY (a PEM file)
//     Both may ask for the scopes `mcp:tools`, `mcp:read` and `mcp:admin`; `agent-narrow` only
//     for `mcp:read` (secret `narrow-secret`), to provoke insufficient_scope.
//
// Protocol on stdout: exactly one line, `READY <port>`, once listening; logs on stderr.
//
// Environment:
//   PORT               listen port (default 0 = ephemeral)
//   TOKEN_TTL          access token lifetime, seconds (default 3600)
//   CLIENT_PUBLIC_KEY  PEM file with agent-jwt's public key (RSA or EC P-256)
//   NO_S256=1          the metadata documents announce no S256 (a broken server)
//   REGISTRATION=closed  registration needs an initial access token (so it is refused)

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';

import {
  loadProvider, intEnv, signingKey, listen, ready,
} from './serve.mjs';

const { default: Provider, errors } = await loadProvider();

const PORT = intEnv('PORT', 0);
const TOKEN_TTL = intEnv('TOKEN_TTL', 3600);
const NO_S256 = process.env.NO_S256 === '1';
const CLOSED = process.env.REGISTRATION === 'closed';
const SCOPES = ['mcp:tools', 'mcp:read', 'mcp:admin'];

const clients = [
  {
    client_id: 'agent-basic',
    client_secret: 'agent-secret',
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    scope: SCOPES.join(' '),
  },
  {
    client_id: 'agent-narrow',
    client_secret: 'narrow-secret',
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    scope: 'mcp:read',
  },
];
if (process.env.CLIENT_PUBLIC_KEY) {
  const pem = fs.readFileSync(process.env.CLIENT_PUBLIC_KEY, 'utf8');
  const jwk = crypto.createPublicKey(pem).export({ format: 'jwk' });
  clients.push({
    client_id: 'agent-jwt',
    token_endpoint_auth_method: 'private_key_jwt',
    jwks: { keys: [jwk] },
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    scope: SCOPES.join(' '),
  });
}

const listening = await listen(PORT);
const { issuer } = listening;

const loopbackResource = (r) => {
  try {
    const u = new URL(r);
    return u.protocol === 'http:' && ['127.0.0.1', 'localhost'].includes(u.hostname) && !u.hash;
  } catch { return false; }
};

const provider = new Provider(issuer, {
  clients,
  jwks: { keys: [signingKey()] },
  cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
  scopes: ['openid', 'offline_access', ...SCOPES],
  async findAccount(ctx, sub) {
    return { accountId: sub, async claims() { return { sub }; } };
  },
  responseTypes: ['code'],
  pkce: { required: () => true },
  rotateRefreshToken: true,
  clientAuthMethods: ['none', 'client_secret_basic', 'private_key_jwt'],
  enabledJWA: { clientAuthSigningAlgValues: ['RS256', 'ES256'] },
  // As MCP authorization servers do for public clients: a (rotating) refresh token to
  // every client registered for the refresh_token grant, without `offline_access`.
  async issueRefreshToken(ctx, client) {
    return client.grantTypeAllowed('refresh_token');
  },
  features: {
    devInteractions: { enabled: true },
    clientCredentials: { enabled: true },
    registration: CLOSED ? { enabled: true, initialAccessToken: crypto.randomBytes(16).toString('hex') } : { enabled: true },
    resourceIndicators: {
      enabled: true,
      // No resource, no token: an MCP client must say which server it wants.
      async defaultResource(ctx, client, oneOf) { return oneOf; },
      async useGrantedResource() { return true; },
      async getResourceServerInfo(ctx, resource) {
        if (!loopbackResource(resource)) throw new errors.InvalidTarget();
        // Every request names the resource itself (RFC 8707): the authorization request,
        // the code exchange and each refresh, not only the first.
        if (!ctx.oidc.params?.resource) throw new errors.InvalidTarget('the request names no resource');
        return {
          scope: SCOPES.join(' '),
          audience: resource,
          accessTokenFormat: 'jwt',
          accessTokenTTL: TOKEN_TTL,
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
  },
  ttl: {
    AccessToken: () => TOKEN_TTL,
    ClientCredentials: () => TOKEN_TTL,
    RefreshToken: () => 86400,
    AuthorizationCode: () => 300,
    Interaction: () => 3600,
    Session: () => 86400,
    Grant: () => 86400,
  },
});

// RFC 8414 metadata at its own well-known URI (oidc-provider serves only the OIDC one),
// and, with NO_S256, documents that announce no PKCE method.
provider.use(async (ctx, next) => {
  const rfc8414 = ctx.method === 'GET' && ctx.path === '/.well-known/oauth-authorization-server';
  if (rfc8414) ctx.path = '/.well-known/openid-configuration';
  await next();
  if ((rfc8414 || ctx.path === '/.well-known/openid-configuration') && ctx.status === 200 && NO_S256) {
    const body = { ...ctx.body };
    delete body.code_challenge_methods_supported;
    ctx.body = body;
  }
});

for (const ev of ['server_error', 'grant.error', 'registration_create.error', 'authorization.error']) {
  provider.on(ev, (ctx, err) => {
    const e = err || ctx;
    process.stderr.write(`[mcp-as] ${ev}: ${e?.name || ''} ${e?.message || ''} ${e?.error_description || ''} ${e?.error_detail || ''}\n`);
  });
}
provider.on('grant.success', (ctx) => {
  process.stderr.write(`[mcp-as] grant.success ${ctx.oidc.params.grant_type} client=${ctx.oidc.client?.clientId} resource=${ctx.oidc.params.resource}\n`);
});

listening.serve(provider.callback());
ready(listening, 'mcp-as', `issuer ${issuer}, TOKEN_TTL=${TOKEN_TTL}, clients: ${clients.map((c) => c.client_id).join(', ')}`);
