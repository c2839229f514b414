// Local OpenID provider for mcp-credd integration tests.
//
// Mimics an AWS Cognito user-pool domain closely enough for a client:
//   POST /oauth2/token      (client_credentials, authorization_code, refresh_token)
//   GET  /oauth2/authorize  (authorization code + PKCE S256, dev login/consent forms)
//   GET  /.well-known/openid-configuration
// plus the device authorization grant (RFC 8628), which Cognito does not have:
//   POST /device/auth       (device authorization endpoint)
//   GET  /device            (user code entry page, then the same login/consent forms)
//
// Protocol on stdout: exactly one line, `READY <port>`, once listening.
// Everything else goes to stderr.
//
// Environment:
//   PORT          listen port on 127.0.0.1 (default 0 = ephemeral)
//   TOKEN_TTL     client_credentials access token lifetime, seconds (default 3600)
//   AC_TTL        authorization-code flow access/id token lifetime, seconds (default 3600)
//   RT_TTL        refresh token lifetime, seconds (default 86400)
//   CLIENTS_JSON  optional JSON array of extra client metadata objects (a client
//                 with the same client_id as a built-in one replaces it)
//   RESOURCE      resource indicator / JWT `aud` of access tokens
//                 (default urn:mcp-servers-unrestricted)
//   DEVICE_TTL    device_code / user_code lifetime, seconds (default 600)
//   DEVICE_INTERVAL  the `interval` (seconds) in device authorization replies
//                 (default 1; 0 omits it, so clients fall back to RFC 8628's 5 s)

import * as crypto from 'node:crypto';

import {
  loadProvider, intEnv, signingKey, listen, ready,
} from './serve.mjs';

const { default: Provider, errors } = await loadProvider();

const PORT = intEnv('PORT', 0);
const TOKEN_TTL = intEnv('TOKEN_TTL', 3600);
const AC_TTL = intEnv('AC_TTL', 3600);
const RT_TTL = intEnv('RT_TTL', 86400);
const DEVICE_TTL = intEnv('DEVICE_TTL', 600);
const DEVICE_INTERVAL = intEnv('DEVICE_INTERVAL', 1);
const RESOURCE = process.env.RESOURCE || 'urn:mcp-servers-unrestricted';

const MCP_SCOPES = ['mcp-servers-unrestricted/read', 'mcp-servers-unrestricted/execute'];

const builtinClients = [
  {
    client_id: 'm2m-client',
    client_secret: 'm2m-secret',
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    scope: MCP_SCOPES.join(' '),
  },
  {
    client_id: 'm2m-post',
    client_secret: 'post-secret',
    token_endpoint_auth_method: 'client_secret_post',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    scope: MCP_SCOPES.join(' '),
  },
  {
    client_id: 'web-client',
    client_secret: 'web-secret',
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: ['http://127.0.0.1:8976/callback', 'http://localhost:8976/callback'],
    scope: 'openid offline_access profile',
  },
  // Device authorization grant (RFC 8628): a confidential and a public client.
  {
    client_id: 'device-client',
    client_secret: 'device-secret',
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['urn:ietf:params:oauth:grant-type:device_code', 'refresh_token'],
    response_types: [],
    redirect_uris: [],
    scope: 'openid offline_access profile',
  },
  {
    client_id: 'device-public',
    token_endpoint_auth_method: 'none',
    grant_types: ['urn:ietf:params:oauth:grant-type:device_code', 'refresh_token'],
    response_types: [],
    redirect_uris: [],
    scope: 'openid offline_access profile',
  },
];

let extraClients = [];
if (process.env.CLIENTS_JSON) {
  extraClients = JSON.parse(process.env.CLIENTS_JSON);
  if (!Array.isArray(extraClients) || !extraClients.every((c) => c && typeof c === 'object' && typeof c.client_id === 'string')) {
    throw new Error('CLIENTS_JSON must be a JSON array of client metadata objects with a client_id');
  }
}
const extraIds = new Set(extraClients.map((c) => c.client_id));
const clients = [...builtinClients.filter((c) => !extraIds.has(c.client_id)), ...extraClients];

// Every scope any client may use must be a provider-known ("static") scope:
// oidc-provider rejects client metadata whose `scope` has unknown values.
const allScopes = new Set(['openid', 'offline_access', 'profile', 'email', ...MCP_SCOPES]);
for (const c of clients) {
  if (typeof c.scope === 'string') c.scope.split(' ').filter(Boolean).forEach((s) => allScopes.add(s));
}
// Scopes carried in (JWT) access tokens for RESOURCE (and echoed as `scope` in
// token replies): all of them, so the reply shows e.g. offline_access as granted.
const resourceScopes = [...allScopes];

const isClientCredentials = (ctx) => ctx.oidc.route === 'token' && ctx.oidc.params.grant_type === 'client_credentials';

const listening = await listen(PORT);
const { issuer } = listening;

const provider = new Provider(issuer, {
  clients,
  jwks: { keys: [signingKey()] },
  cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
  scopes: [...allScopes],
  claims: {
    openid: ['sub'],
    profile: ['name', 'preferred_username'],
    email: ['email', 'email_verified'],
  },
  async findAccount(ctx, sub) {
    return {
      accountId: sub,
      async claims() {
        return {
          sub, name: sub, preferred_username: sub, email: `${sub}@example.test`, email_verified: true,
        };
      },
    };
  },
  routes: {
    authorization: '/oauth2/authorize',
    token: '/oauth2/token',
    userinfo: '/oauth2/userInfo',
    revocation: '/oauth2/revoke',
    introspection: '/oauth2/introspect',
    jwks: '/.well-known/jwks.json',
    end_session: '/logout',
    device_authorization: '/device/auth',
    code_verification: '/device',
  },
  responseTypes: ['code'],
  pkce: { required: () => true }, // oidc-provider 9 only supports S256
  rotateRefreshToken: true,
  // Default policy made explicit: a refresh token whenever offline_access was
  // granted (see the prompt=consent shim below) and the client may refresh.
  // The device flow keeps offline_access without it: its requests have no
  // prompt parameter, so oidc-provider only checks that the client may refresh.
  async issueRefreshToken(ctx, client, code) {
    return client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access');
  },
  features: {
    devInteractions: { enabled: true },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    deviceFlow: { enabled: true },
    resourceIndicators: {
      enabled: true,
      async defaultResource(ctx, client, oneOf) {
        if (isClientCredentials(ctx)) {
          // Cognito-like scope handling for client_credentials:
          // no scope => all of the client's scopes; unknown scope => invalid_scope.
          const allowed = new Set((client.scope || '').split(' ').filter(Boolean));
          const requested = (ctx.oidc.params.scope || '').split(' ').filter(Boolean);
          if (requested.length === 0) {
            ctx.oidc.params.scope = [...allowed].join(' ') || undefined;
          } else {
            const bad = requested.find((s) => !allowed.has(s));
            if (bad) throw new errors.InvalidScope('requested scope is not allowed', bad);
          }
        }
        if (oneOf) return oneOf;
        return RESOURCE;
      },
      // Access tokens from the code/refresh flow are JWTs for RESOURCE too.
      async useGrantedResource() { return true; },
      async getResourceServerInfo(ctx, resourceIndicator) {
        if (resourceIndicator !== RESOURCE) throw new errors.InvalidTarget();
        return {
          scope: resourceScopes.join(' '),
          audience: RESOURCE,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
  },
  async extraTokenClaims(ctx, token) {
    // Cognito access tokens carry client_id and token_use.
    return { token_use: 'access' };
  },
  ttl: {
    AccessToken: () => AC_TTL,
    IdToken: () => AC_TTL,
    ClientCredentials: () => TOKEN_TTL,
    RefreshToken: () => RT_TTL,
    AuthorizationCode: () => 300,
    DeviceCode: () => DEVICE_TTL,
    Interaction: () => 3600,
    Session: () => Math.max(RT_TTL, 14 * 24 * 3600),
    Grant: () => Math.max(RT_TTL, 14 * 24 * 3600),
  },
});

// OIDC Core drops offline_access unless prompt=consent; add it so a refresh
// token is issued whenever offline_access is requested (and so consent is
// always shown: the flow is always login form -> consent form -> callback).
provider.use(async (ctx, next) => {
  if (ctx.method === 'GET' && ctx.path === '/oauth2/authorize') {
    const q = new URLSearchParams(ctx.querystring);
    const scope = q.get('scope') || '';
    const prompt = (q.get('prompt') || '').split(' ').filter(Boolean);
    if (scope.split(' ').includes('offline_access') && !prompt.includes('consent') && !q.has('request_uri') && !q.has('request')) {
      prompt.push('consent');
      q.set('prompt', prompt.join(' '));
      ctx.querystring = q.toString();
    }
  }
  await next();
});

// oidc-provider accepts client_secret_basic and client_secret_post
// interchangeably. Unless STRICT_CLIENT_AUTH=0, insist on the registered
// method, so a test can tell that the client under test sends its secret the
// configured way. Checked before oidc-provider runs the grant (a rejected
// refresh request must not rotate the refresh token). The device authorization
// endpoint authenticates clients too, so it gets the same check.
const STRICT_CLIENT_AUTH = process.env.STRICT_CLIENT_AUTH !== '0';
const clientAuthMethod = new Map(clients.map((c) => [c.client_id, c.token_endpoint_auth_method || 'client_secret_basic']));
provider.use(async (ctx, next) => {
  if (STRICT_CLIENT_AUTH && ctx.method === 'POST' && (ctx.path === '/oauth2/token' || ctx.path === '/device/auth') && ctx.is('application/x-www-form-urlencoded')) {
    const chunks = [];
    let size = 0;
    for await (const chunk of ctx.req) {
      size += chunk.length;
      if (size > 56 * 1024) ctx.throw(413);
      chunks.push(chunk);
    }
    const raw = Buffer.concat(chunks).toString('utf8');
    ctx.request.body = raw; // oidc-provider parses a pre-read string body itself
    const form = new URLSearchParams(raw);
    let used;
    let clientId;
    const authz = ctx.get('authorization');
    if (form.has('client_secret')) {
      used = 'client_secret_post';
      clientId = form.get('client_id');
    } else if (/^basic /i.test(authz)) {
      used = 'client_secret_basic';
      const decoded = Buffer.from(authz.slice(6).trim(), 'base64').toString('utf8');
      const i = decoded.indexOf(':');
      try { clientId = decodeURIComponent(i === -1 ? decoded : decoded.slice(0, i)); } catch { clientId = undefined; }
    }
    const registered = clientAuthMethod.get(clientId);
    if (used && registered && registered !== used
      && ['client_secret_basic', 'client_secret_post'].includes(registered)) {
      process.stderr.write(`[idp] invalid_client: ${clientId} is registered for ${registered} but used ${used}\n`);
      ctx.status = 401;
      if (used === 'client_secret_basic') ctx.set('WWW-Authenticate', `Basic realm="${issuer}", error="invalid_client"`);
      ctx.set('Cache-Control', 'no-store');
      ctx.body = { error: 'invalid_client', error_description: `client authentication failed (client is registered for ${registered})` };
      return;
    }
  }
  await next();
});

// oidc-provider's device authorization reply has no `interval` (RFC 8628: the
// client then polls every 5 s); announce DEVICE_INTERVAL so tests poll faster.
// oidc-provider does not answer slow_down, whatever the polling rate.
provider.use(async (ctx, next) => {
  await next();
  if (DEVICE_INTERVAL > 0 && ctx.method === 'POST' && ctx.path === '/device/auth'
    && ctx.status === 200 && ctx.body && typeof ctx.body === 'object' && ctx.body.device_code) {
    ctx.body = { ...ctx.body, interval: DEVICE_INTERVAL };
  }
});

const logEvent = (name) => (ctx, err) => {
  const e = err || ctx;
  process.stderr.write(`[idp] ${name}: ${e?.name || ''} ${e?.message || ''} ${e?.error_description || ''} ${e?.error_detail || ''}\n`);
};
for (const ev of ['server_error', 'grant.error', 'authorization.error', 'introspection.error', 'revocation.error', 'userinfo.error',
  'device_authorization.error', 'code_verification.error', 'device_resume.error']) {
  provider.on(ev, logEvent(ev));
}
provider.on('grant.success', (ctx) => {
  process.stderr.write(`[idp] grant.success ${ctx.oidc.params.grant_type} client=${ctx.oidc.client?.clientId}\n`);
});

listening.serve(provider.callback());
ready(listening, 'idp', `issuer ${issuer}, TOKEN_TTL=${TOKEN_TTL} AC_TTL=${AC_TTL} RT_TTL=${RT_TTL} DEVICE_TTL=${DEVICE_TTL} DEVICE_INTERVAL=${DEVICE_INTERVAL}, clients: ${clients.map((c) => c.client_id).join(', ')}`);
