//! Making sure one identity holds a usable token: the step the one-shot and the daemon
//! share. Takes the identity's lock, re-reads the store, reuses a token that is still good
//! (by the one refresh policy), otherwise obtains a new one. A failure leaves the stored
//! token exactly as it was.

use std::time::Duration;

use crate::clock::{Clock, Ts};
use crate::config::{
    Endpoint, IdentityConfig, Kind, Login, McpLogin, ProviderLabel, RefreshPolicy,
};
use crate::failure::FailureKind;
use crate::identity::FetchError;
use crate::identity::oauth::{Http, client_credentials, resolve_token_endpoint};
use crate::identity::reply::{ExpirySource, TokenReply, expiry_of};
use crate::identity::{cognito, egress};
use crate::providers::RefreshKind;
use crate::schedule::plan::{Expiry, Standing, jitter_unit, standing};
use crate::store::atomic::ReadError;
use crate::store::{Store, StoreError, TokenRecord};
use crate::timefmt::human_utc;

/// How long to wait for another process refreshing the same identity: longer than one
/// full retry cycle of a token request with the default HTTP policy.
pub const LOCK_WAIT: Duration = Duration::from_secs(180);

#[derive(Debug, Clone)]
pub enum Outcome {
    /// The stored token is still good.
    Reused(TokenRecord),
    /// A new token was obtained and stored.
    Refreshed(TokenRecord),
    /// Nothing new; `kept` is the stored token, untouched.
    Failed {
        error: FetchError,
        kept: Option<TokenRecord>,
    },
}

impl Outcome {
    pub fn record(&self) -> Option<&TokenRecord> {
        match self {
            Outcome::Reused(r) | Outcome::Refreshed(r) => Some(r),
            Outcome::Failed { kept, .. } => kept.as_ref(),
        }
    }
}

/// What a refresh needs from its surroundings.
pub struct Ctx<'a> {
    pub store: &'a Store,
    pub http: &'a Http,
    pub policy: &'a RefreshPolicy,
    pub clock: &'a dyn Clock,
}

/// The token file of an identity; `ingress.json` for the gateway identity, as the
/// reference tool names it.
pub fn token_file_name(id: &IdentityConfig) -> String {
    id.file_name.clone()
}

fn usage_notes(id: &IdentityConfig) -> String {
    let which = match id.provider_label {
        ProviderLabel::CognitoM2m => "Cognito M2M",
        ProviderLabel::KeycloakM2m => "Keycloak M2M",
        ProviderLabel::EntraM2m => "Entra ID M2M",
        ProviderLabel::CognitoPassword => "Cognito service account",
        ProviderLabel::BedrockAgentcore => {
            return "This token is for EGRESS authentication to a Bedrock AgentCore gateway".into();
        }
        ProviderLabel::OidcM2m | ProviderLabel::McpOauth | ProviderLabel::Egress(_) => "OAuth M2M",
    };
    if id.name == "ingress" {
        format!("This token is for INGRESS authentication to the MCP Gateway ({which})")
    } else {
        format!("This token authenticates identity `{}` ({which})", id.name)
    }
}

/// The token file record for a fresh reply. `sent_at` is when the request left, so the
/// recorded expiry errs early rather than late.
pub fn build_record(
    id: &IdentityConfig,
    reply: &TokenReply,
    sent_at: Ts,
    token_url: &str,
) -> TokenRecord {
    let (expiry, source) = expiry_of(reply, sent_at);
    let (expires_at, source) = match (expiry, id.egress()) {
        (Expiry::At(t), _) => (Some(t), source),
        // The reply says nothing: the catalog may (the reply always wins over it).
        (_, Some(eg)) if eg.def.refresh == RefreshKind::None && reply.refresh_token.is_none() => {
            (None, ExpirySource::Never)
        }
        (_, Some(eg)) if eg.def.access_token_lifetime.is_some() => (
            eg.def
                .access_token_lifetime
                .map(|s| sent_at.plus_ms(s * 1000)),
            ExpirySource::Catalog,
        ),
        _ => (None, source),
    };
    let egress = id.egress().is_some();
    let mut extra = serde_json::Map::new();
    for (k, v) in &id.extra_fields {
        extra.insert(k.clone(), serde_json::Value::String(v.clone()));
    }
    TokenRecord {
        provider: id.provider_label.as_str().to_string(),
        access_token: reply.access_token.clone(),
        refresh_token: reply.refresh_token.clone(),
        id_token: reply.id_token.clone(),
        expires_at: expires_at.map(Ts::as_secs_f64),
        expires_at_human: expires_at.map(human_utc),
        token_type: reply.token_type.clone(),
        client_id: Some(id.client_id.clone()),
        saved_at: human_utc(sent_at),
        // The Cognito kinds' pool and region, as the reference tool recorded them.
        user_pool_id: id.user_pool_id().map(str::to_string),
        region: id.region().map(str::to_string),
        usage_notes: Some(match (id.egress(), id.mcp_login()) {
            (Some(_), Some((server_url, _))) => {
                format!("This token authenticates a person to the MCP server {server_url}")
            }
            (Some(eg), None) => format!(
                "This token is for EGRESS authentication to {} external services",
                eg.provider
            ),
            (None, _) => usage_notes(id),
        }),
        cloud_id: None,
        scopes: egress.then(|| match &reply.scope {
            Some(s) => s
                .split([' ', ','])
                .filter(|x| !x.is_empty())
                .map(str::to_string)
                .collect(),
            None => id.scopes.clone(),
        }),
        refresh_token_expires_at: reply
            .refresh_token_expires_in
            .map(|s| sent_at.plus_ms(s.saturating_mul(1000)).as_secs_f64()),
        identity: Some(id.name.clone()),
        obtained_at: Some(sent_at.as_secs_f64()),
        expiry_source: Some(source),
        scope: reply
            .scope
            .clone()
            .or_else(|| (!id.scopes.is_empty()).then(|| id.scopes.join(" "))),
        token_endpoint: Some(token_url.to_string()),
        binding: Some(crate::binding::of(id)),
        extra,
    }
}

/// Logs `l` in (interactively) and stores the token, under the identity's lock.
pub async fn login_and_store(
    l: Login<'_>,
    ctx: &Ctx<'_>,
    opts: crate::login::LoginOptions,
    say: &dyn Fn(String),
) -> Result<TokenRecord, FetchError> {
    let id = l.id;
    let _lock = ctx
        .store
        .lock(&id.name, LOCK_WAIT)
        .await
        .map_err(|e| FetchError::transient(e.to_string()))?;
    let mut state = ctx.store.read_state(&id.name);
    state.last_attempt_at = Some(ctx.clock.now().as_secs_f64());
    let result = match l.mcp() {
        Some(m) => mcp_login_and_store(m, ctx, opts, say, &mut state).await,
        None => login_and_store_egress(l, ctx, opts, say).await,
    };
    match &result {
        Ok(_) => {
            state.last_success_at = Some(ctx.clock.now().as_secs_f64());
            state.last_error = None;
            state.last_error_kind = None;
        }
        Err(e) => {
            state.last_error = Some(e.message.clone());
            state.last_error_kind = Some(e.kind);
        }
    }
    let _ = ctx.store.write_state(&id.name, &state).await;
    result
}

/// The login to an MCP server with `auth: oauth`: discovery, the client (registered when
/// needed), the browser login with `resource`, then one request to the server with the
/// new token. A token the server refuses is not stored; for too few scopes the scopes it
/// wants are recorded, so the next login asks for them too.
async fn mcp_login_and_store(
    m: McpLogin<'_>,
    ctx: &Ctx<'_>,
    opts: crate::login::LoginOptions,
    say: &dyn Fn(String),
    state: &mut crate::store::IdentityState,
) -> Result<TokenRecord, FetchError> {
    use crate::mcpauth::interactive::{self, Standing};
    let (id, server_url) = (m.login.id, m.server_url);
    if opts.device {
        return Err(FetchError::permanent(format!(
            "`{}` is an MCP server: its login runs in a browser (authorization code with PKCE), not with a device code; run `mcp-credd login {}` (with --no-browser on a machine without one)",
            id.name, id.name
        )));
    }
    let p = interactive::prepare_login(
        m,
        ctx.http,
        ctx.store,
        ctx.clock.now(),
        &state.step_up_scopes,
        say,
    )
    .await?;
    let sent_at = ctx.clock.now();
    let resolved = p.login.login();
    let reply = crate::login::browser_login(resolved, ctx.http, opts, say, p.listeners, p.issuer)
        .await
        .map_err(|e| match e.kind {
            FailureKind::ReauthRequired => FetchError::permanent(e.message),
            _ => e,
        })?;
    match interactive::token_standing(ctx.http, server_url, reply.access_token.expose()).await {
        Standing::Accepted => {}
        Standing::InsufficientScope {
            wanted,
            description,
        } => {
            let next =
                interactive::step_up_scopes(&resolved.id.scopes, wanted.as_deref(), &p.discovered);
            let message = interactive::step_up_message(
                &id.name,
                server_url,
                &resolved.id.scopes,
                &next,
                description.as_deref(),
            );
            state.step_up_scopes = next;
            return Err(FetchError::permanent(message));
        }
        Standing::Refused(m) => return Err(FetchError::permanent(m)),
    }
    let rec = build_record(resolved.id, &reply, sent_at, &resolved.eg.def.token_url);
    ctx.store
        .write_token(&id.file_name, &rec)
        .await
        .map_err(store_failure)?;
    state.step_up_scopes.clear();
    Ok(rec)
}

/// A provider login (`egress:`), stored.
async fn login_and_store_egress(
    l: Login<'_>,
    ctx: &Ctx<'_>,
    opts: crate::login::LoginOptions,
    say: &dyn Fn(String),
) -> Result<TokenRecord, FetchError> {
    async {
        let resolved = egress::discovered(ctx.http, l).await?;
        let l = resolved.login();
        let reply = crate::login::login(l, ctx.http, opts, say).await?;
        let (id, eg) = (l.id, l.eg);
        let mut rec = build_record(id, &reply, ctx.clock.now(), &eg.def.token_url);
        // The code is spent: store the tokens before anything else can fail.
        ctx.store
            .write_token(&id.file_name, &rec)
            .await
            .map_err(store_failure)?;
        match egress::site_id(ctx.http, eg, reply.access_token.expose()).await {
            Some(Ok(cloud)) => {
                rec.cloud_id = cloud;
                ctx.store
                    .write_token(&id.file_name, &rec)
                    .await
                    .map_err(store_failure)?;
            }
            Some(Err(e)) => say(format!(
                "logged in, but the site id could not be read ({}); servers get no {} header until a refresh reads it",
                e.message,
                eg.def.extras.cloud_id.as_ref().map_or("", |x| x.header.as_str())
            )),
            None => {}
        }
        Ok::<_, FetchError>(rec)
    }
    .await
}

fn reauth(message: String) -> FetchError {
    FetchError::reauth(message)
}

/// Refreshes a provider token with its refresh token. Only a login can create the first
/// one, and only a login can replace a grant the provider no longer honours.
async fn refresh_egress(
    l: Login<'_>,
    ctx: &Ctx<'_>,
    existing: Option<&TokenRecord>,
    file: &str,
) -> Result<TokenRecord, FetchError> {
    let id = l.id;
    let login = format!("run `mcp-credd login {}`", id.name);
    let Some(rec) = existing else {
        return Err(reauth(format!("not logged in yet: {login}")));
    };
    if let Some(why) = crate::binding::mismatch(rec, id) {
        return Err(reauth(format!(
            "the stored token is not used: {why}; {login}"
        )));
    }
    let Some(rt) = rec.refresh_token.clone() else {
        return Err(reauth(format!(
            "the token expired and the provider gave no refresh token: {login}"
        )));
    };
    let (resolved, mcp) = match l.mcp() {
        Some(m) => {
            let (r, d) =
                crate::mcpauth::interactive::for_refresh(m, ctx.http, ctx.store, rec).await?;
            (r, Some((m.server_url, d)))
        }
        None => (egress::discovered(ctx.http, l).await?, None),
    };
    let l = resolved.login();
    let (id, eg) = (l.id, l.eg);
    let token_url = &eg.def.token_url;
    let sent_at = ctx.clock.now();
    match egress::refresh(ctx.http, l, rt.expose()).await {
        Ok(reply) => {
            let mut new = build_record(id, &reply, sent_at, token_url);
            // A provider that does not rotate keeps the refresh token valid.
            if new.refresh_token.is_none() {
                new.refresh_token = Some(rt);
            }
            new.cloud_id = rec.cloud_id.clone();
            // A site id that could not be read at login is asked for again at each refresh
            // until it is known; its absence never fails the refresh.
            if new.cloud_id.is_none() {
                match egress::site_id(ctx.http, eg, reply.access_token.expose()).await {
                    Some(Ok(cloud)) => new.cloud_id = cloud,
                    Some(Err(e)) => {
                        tracing::warn!(identity = %id.name, error = %e.message, "the site id is still unknown; asking again at the next refresh")
                    }
                    None => {}
                }
            }
            if reply.scope.is_none() {
                new.scopes = rec.scopes.clone().or(new.scopes);
            }
            if new.refresh_token_expires_at.is_none() {
                new.refresh_token_expires_at = rec.refresh_token_expires_at;
            }
            if let Some((server_url, d)) = &mcp {
                check_refreshed_mcp_token(id, server_url, ctx, d, &new).await?;
            }
            Ok(new)
        }
        Err(e) if mcp.is_some() && e.oauth_error.as_deref() == Some("invalid_client") => {
            Err(reauth(format!(
                "{}; the authorization server no longer knows client `{}`: {login} (it registers again)",
                e.message, id.client_id
            )))
        }
        Err(e) if e.kind == FailureKind::ReauthRequired => {
            // Another process (one that does not take our lock) may have refreshed and
            // rotated the grant meanwhile: its token is good.
            if let Ok(Some(now)) = ctx.store.read_token(file)
                && crate::binding::matches(&now, id)
                && now.refresh_token.is_some()
                && now.refresh_token != rec.refresh_token
            {
                return Ok(now);
            }
            Err(reauth(format!("{}; {login}", e.message)))
        }
        Err(e) => Err(e),
    }
}

/// After a refresh of an MCP server's login: one request to the server with the new
/// token. A token it refuses is stored all the same (the refresh token may have rotated,
/// so the old one is spent), and a login is asked for; for too few scopes, the scopes the
/// server wants are recorded so that the login asks for them too.
async fn check_refreshed_mcp_token(
    id: &IdentityConfig,
    server_url: &str,
    ctx: &Ctx<'_>,
    d: &crate::mcpauth::discover::Discovered,
    new: &TokenRecord,
) -> Result<(), FetchError> {
    use crate::mcpauth::interactive::{self, Standing};
    let standing =
        interactive::token_standing(ctx.http, server_url, new.access_token.expose()).await;
    if standing == Standing::Accepted {
        return Ok(());
    }
    ctx.store
        .write_token(&id.file_name, new)
        .await
        .map_err(store_failure)?;
    match standing {
        Standing::InsufficientScope {
            wanted,
            description,
        } => {
            let next = interactive::step_up_scopes(&id.scopes, wanted.as_deref(), d);
            let message = interactive::step_up_message(
                &id.name,
                server_url,
                &id.scopes,
                &next,
                description.as_deref(),
            );
            let mut st = ctx.store.read_state(&id.name);
            st.step_up_scopes = next;
            let _ = ctx.store.write_state(&id.name, &st).await;
            Err(reauth(message))
        }
        Standing::Refused(m) => Err(FetchError::permanent(m)),
        Standing::Accepted => Ok(()),
    }
}

/// An MCP server's machine identity: discovery, client_credentials with the server as
/// `resource` and the discovered scopes, then one request to the server with the new
/// token, so a token the server refuses (too few scopes, wrong audience) is never stored.
async fn mcp_client_credentials(
    id: &IdentityConfig,
    ctx: &Ctx<'_>,
    server_url: &str,
    authorization_server: Option<&str>,
) -> Result<TokenRecord, FetchError> {
    let d =
        crate::mcpauth::discover::discover(ctx.http, server_url, authorization_server, &id.scopes)
            .await?;
    if !d.server.grant_types_supported.is_empty()
        && !d
            .server
            .grant_types_supported
            .iter()
            .any(|g| g == "client_credentials")
    {
        return Err(FetchError::permanent(format!(
            "authorization server {} does not offer the client_credentials grant (grant_types_supported); use `auth: oauth` and `mcp-credd login`, or ask its operator",
            d.server.issuer
        )));
    }
    let mut asking = id.clone();
    asking.scopes = d.scopes.clone();
    let url = d.server.token_endpoint.clone();
    let sent_at = ctx.clock.now();
    let reply = client_credentials(ctx.http, &asking, &url).await?;
    crate::mcpauth::discover::check_token(
        ctx.http,
        server_url,
        reply.access_token.expose(),
        &asking.scopes,
    )
    .await?;
    Ok(build_record(id, &reply, sent_at, &url))
}

/// Is the stored token still good by the refresh policy?
pub fn still_valid(
    rec: &TokenRecord,
    id: &IdentityConfig,
    policy: &RefreshPolicy,
    now: Ts,
) -> bool {
    let t = rec.times();
    crate::binding::matches(rec, id)
        && standing(&t, policy, jitter_unit(&id.name, t.obtained_at), now) == Standing::Valid
}

fn store_failure(e: StoreError) -> FetchError {
    FetchError::permanent(e.to_string())
}

/// Ensures `id` holds a usable token. Notes are things the user should hear about.
pub async fn ensure(id: &IdentityConfig, ctx: &Ctx<'_>, force: bool) -> (Outcome, Vec<String>) {
    let mut notes = Vec::new();
    let file = token_file_name(id);
    let _lock = match ctx.store.lock(&id.name, LOCK_WAIT).await {
        Ok(l) => l,
        Err(e) => {
            let kept = ctx
                .store
                .read_token(&file)
                .ok()
                .flatten()
                .filter(|r| crate::binding::matches(r, id));
            return (
                Outcome::Failed {
                    error: FetchError::transient(e.to_string()),
                    kept,
                },
                notes,
            );
        }
    };
    // Read after taking the lock: another process may just have refreshed it.
    let existing = match ctx.store.read_token(&file) {
        Ok(r) => r,
        Err(e @ (StoreError::Read(ReadError::Symlink(_)) | StoreError::Corrupt(..))) => {
            notes.push(format!("{e}; a new token will replace it"));
            None
        }
        Err(e) => {
            return (
                Outcome::Failed {
                    error: store_failure(e),
                    kept: None,
                },
                notes,
            );
        }
    };
    let now = ctx.clock.now();
    if let Some(rec) = &existing
        && !force
        && still_valid(rec, id, ctx.policy, now)
    {
        return (Outcome::Reused(rec.clone()), notes);
    }
    // Forcing a person's token that has no refresh token could only lose it: keep it while
    // it lasts (a login replaces it).
    if let Some(rec) = &existing
        && force
        && matches!(id.kind, Kind::Egress(_))
        && rec.refresh_token.is_none()
        && crate::binding::matches(rec, id)
        && !matches!(rec.times().expiry, Expiry::At(t) if t <= now)
    {
        notes.push(format!(
            "{}: no refresh token is held, so --force keeps the still-valid token; `mcp-credd login {}` replaces it",
            id.name, id.name
        ));
        return (Outcome::Reused(rec.clone()), notes);
    }
    if let Some(rec) = &existing
        && !matches!(id.kind, Kind::Egress(_))
        && let Some(why) = crate::binding::mismatch(rec, id)
    {
        notes.push(format!(
            "{}: the stored token is not used: {why}; getting a new one",
            id.name
        ));
    }
    tracing::info!(identity = %id.name, force, "requesting a new token");
    let result = async {
        match &id.kind {
            Kind::Egress(eg) => {
                let l = Login { id, eg };
                return refresh_egress(l, ctx, existing.as_ref(), &file).await;
            }
            Kind::CognitoPassword {
                region, account, ..
            } => {
                let sent_at = ctx.clock.now();
                let mine = existing.as_ref().filter(|r| crate::binding::matches(r, id));
                let reply = cognito::obtain(
                    id,
                    region,
                    account,
                    mine,
                    &ctx.http.policy,
                    &ctx.http.proxy_env,
                )
                .await?;
                let endpoint = crate::binding::endpoint_of(id);
                return Ok(build_record(id, &reply, sent_at, &endpoint));
            }
            Kind::CognitoM2m { .. } | Kind::OidcM2m { .. } => {}
        }
        if let Endpoint::McpServer {
            server_url,
            authorization_server,
        } = &id.endpoint
        {
            return mcp_client_credentials(id, ctx, server_url, authorization_server.as_deref())
                .await;
        }
        let url = resolve_token_endpoint(ctx.http, id).await?;
        let sent_at = ctx.clock.now();
        let reply = client_credentials(ctx.http, id, &url).await?;
        Ok::<_, FetchError>(build_record(id, &reply, sent_at, &url))
    }
    .await;
    // Read after the attempt: it may have recorded something (an MCP step-up).
    let mut state = ctx.store.read_state(&id.name);
    state.last_attempt_at = Some(now.as_secs_f64());
    // What is stored now: a failed attempt leaves the file as it was, except for an MCP
    // token whose rotated refresh token had to be kept.
    let stored_now = |existing: Option<TokenRecord>| match ctx.store.read_token(&file) {
        Ok(r) => r,
        Err(_) => existing,
    };
    let outcome = match result {
        Ok(rec) => match ctx.store.write_token(&file, &rec).await {
            Ok(()) => {
                state.last_success_at = Some(ctx.clock.now().as_secs_f64());
                state.last_error = None;
                state.last_error_kind = None;
                tracing::debug!(identity = %id.name, expires_at = ?rec.expires_at, "stored a new token");
                Outcome::Refreshed(rec)
            }
            Err(e) => Outcome::Failed {
                error: store_failure(e),
                kept: existing.filter(|r| crate::binding::matches(r, id)),
            },
        },
        Err(error) => Outcome::Failed {
            error,
            // A token of another identity is not "kept" for use.
            kept: stored_now(existing).filter(|r| crate::binding::matches(r, id)),
        },
    };
    if let Outcome::Failed { error, .. } = &outcome {
        tracing::warn!(identity = %id.name, kind = ?error.kind, error = %error.message, "refresh failed");
        state.last_error = Some(error.message.clone());
        state.last_error_kind = Some(error.kind);
    }
    if let Err(e) = ctx.store.write_state(&id.name, &state).await {
        notes.push(format!("{}: cannot record the outcome: {e}", id.name));
    }
    (outcome, notes)
}

// --- Tokens on demand (`headers`, `token`) ---

/// How close to its expiry a token handed out by `headers` or `token` may be: less than
/// this left and it is refreshed first (a client needs time to use it).
pub const ON_DEMAND_MARGIN_MS: i64 = 60_000;
/// Claude Code gives a headersHelper 10 s; everything `headers` does fits in this.
pub const ON_DEMAND_BUDGET: std::time::Duration = std::time::Duration::from_secs(8);

/// The token of `id` for immediate use: the stored one while it has more than a minute
/// left, else a fresh one obtained under the identity's lock (another process may just have
/// refreshed it: the store is re-read after the lock is taken).
pub async fn usable_now(
    policy: &RefreshPolicy,
    store: &Store,
    http: &Http,
    id: &IdentityConfig,
    clock: &dyn Clock,
) -> Result<TokenRecord, String> {
    let now = clock.now();
    let fresh = |r: &TokenRecord| match r.times().expiry {
        Expiry::At(t) => t.ms_since(now) > ON_DEMAND_MARGIN_MS,
        Expiry::Never | Expiry::Unknown => true,
    };
    if let Ok(Some(r)) = store.read_token(&token_file_name(id))
        && crate::binding::matches(&r, id)
        && fresh(&r)
    {
        return Ok(r);
    }
    // `headers` and `token` load without secrets; an empty one must not reach the provider
    // (for a service account it would be a failed sign-in counted against the user).
    if id.secret_unresolved() {
        return Err(format!(
            "{}: the token needs renewing, but its secret is not set; put it in the secrets file (~/.config/mcp-credd/env) or export it (`mcp-credd doctor` names the variable)",
            id.name
        ));
    }
    let ctx = Ctx {
        store,
        http,
        policy,
        clock,
    };
    let (outcome, _) = ensure(id, &ctx, false).await;
    match outcome {
        Outcome::Reused(r) | Outcome::Refreshed(r) => match r.times().expiry {
            Expiry::At(t) if t <= clock.now() => Err(format!(
                "{}: the token expired and could not be renewed",
                id.name
            )),
            _ => Ok(r),
        },
        Outcome::Failed { error, .. } => Err(format!("{}: {}", id.name, error.message)),
    }
}

/// An HTTP client whose whole retry cycle fits in the on-demand budget.
pub fn on_demand_http(
    policy: &crate::config::HttpPolicy,
    proxy: &crate::identity::proxy::ProxyEnv,
) -> Result<Http, String> {
    let mut p = *policy;
    p.timeout_ms = p.timeout_ms.min(3_000);
    p.attempts = p.attempts.min(2);
    p.max_backoff_ms = p.max_backoff_ms.min(500);
    p.initial_backoff_ms = p.initial_backoff_ms.min(p.max_backoff_ms);
    Http::with_proxy(p, proxy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ClientAuth, EgressConfig, Endpoint, Kind};
    use crate::identity::reply;
    use crate::providers::Catalog;
    use crate::schedule::plan::Expiry;

    fn egress_id(provider: &str) -> IdentityConfig {
        let def = Catalog::builtin()
            .get(provider)
            .unwrap()
            .unwrap()
            .resolved(&Default::default())
            .unwrap();
        IdentityConfig {
            gateway: None,
            name: provider.into(),
            file_name: format!("{provider}-egress.json"),
            provider_label: ProviderLabel::Egress(provider.into()),
            client_id: "c".into(),
            client_secret: None,
            scopes: def.scopes.clone(),
            endpoint: Endpoint::TokenUrl(def.token_url.clone()),
            client_auth: ClientAuth::Basic,
            extra_fields: vec![],
            extra_headers: vec![],
            kind: Kind::Egress(Box::new(EgressConfig {
                provider: provider.into(),
                def,
                redirect_uri: "http://localhost:8080/callback".into(),
                server: provider.into(),
                cloud_site: None,
                resource: None,
            })),
        }
    }

    fn record(provider: &str, body: &str) -> TokenRecord {
        let r = reply::parse(body.as_bytes()).unwrap();
        build_record(&egress_id(provider), &r, Ts::from_secs(1000), "https://t")
    }

    #[test]
    fn expiry_comes_from_the_reply_then_the_catalog() {
        // GitHub OAuth app: no expires_in, no refresh token, `bearer` in lower case.
        let gh = record(
            "github",
            r#"{"access_token":"gho_x","token_type":"bearer","scope":"repo,read:org"}"#,
        );
        assert_eq!(gh.times().expiry, Expiry::Never);
        assert_eq!(gh.expiry_source, Some(ExpirySource::Never));
        assert_eq!(gh.token_type, "Bearer");
        assert_eq!(
            gh.scopes.as_deref(),
            Some(&["repo".to_string(), "read:org".to_string()][..])
        );
        assert!(gh.refresh_token.is_none());
        // A GitHub App answers with expiries: the reply wins over the catalog.
        let app = record(
            "github",
            r#"{"access_token":"ghu_x","expires_in":28800,"refresh_token":"ghr_x","refresh_token_expires_in":15811200}"#,
        );
        assert_eq!(app.times().expiry, Expiry::At(Ts::from_secs(1000 + 28800)));
        assert_eq!(
            app.refresh_token_expires_at,
            Some((1000 + 15_811_200) as f64)
        );
        // Salesforce sends no expires_in: the catalog's typical lifetime stands in.
        let sf = record(
            "salesforce",
            r#"{"access_token":"00D","refresh_token":"r"}"#,
        );
        assert_eq!(sf.expiry_source, Some(ExpirySource::Catalog));
        assert!(matches!(sf.times().expiry, Expiry::At(_)));
        assert_eq!(
            sf.usage_notes.as_deref(),
            Some("This token is for EGRESS authentication to salesforce external services")
        );
    }
}
