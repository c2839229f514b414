//! Making sure one identity holds a usable token: the step the one-shot and the daemon
//! share. Takes the identity's lock, re-reads the store, reuses a token that is still good
//! (by the one refresh policy), otherwise obtains a new one. A failure leaves the stored
//! token exactly as it was.

use std::time::Duration;

use crate::clock::{Clock, Ts};
use crate::config::{IdentityConfig, IdentityKind, RefreshPolicy};
use crate::identity::cognito;
use crate::identity::oauth::{Http, client_credentials, resolve_token_endpoint};
use crate::identity::reply::{TokenReply, expiry_of};
use crate::identity::{FailureKind, FetchError};
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
    let which = match id.provider_label.as_str() {
        "cognito_m2m" => "Cognito M2M",
        "keycloak_m2m" => "Keycloak M2M",
        "entra_m2m" => "Entra ID M2M",
        "cognito_password" => "Cognito service account",
        "bedrock-agentcore" => {
            return "This token is for EGRESS authentication to a Bedrock AgentCore gateway".into();
        }
        _ => "OAuth M2M",
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
    let expires_at = match expiry {
        Expiry::At(t) => Some(t),
        _ => None,
    };
    let mut extra = serde_json::Map::new();
    for (k, v) in &id.extra_fields {
        extra.insert(k.clone(), serde_json::Value::String(v.clone()));
    }
    let cognito = matches!(
        id.kind,
        IdentityKind::CognitoM2m | IdentityKind::CognitoPassword
    );
    TokenRecord {
        provider: id.provider_label.clone(),
        access_token: reply.access_token.clone(),
        refresh_token: reply.refresh_token.clone(),
        id_token: reply.id_token.clone(),
        expires_at: expires_at.map(Ts::as_secs_f64),
        expires_at_human: expires_at.map(human_utc),
        token_type: reply.token_type.clone(),
        client_id: Some(id.client_id.clone()),
        saved_at: human_utc(sent_at),
        user_pool_id: if cognito {
            id.user_pool_id.clone()
        } else {
            None
        },
        region: if cognito { id.region.clone() } else { None },
        usage_notes: Some(usage_notes(id)),
        identity: Some(id.name.clone()),
        obtained_at: Some(sent_at.as_secs_f64()),
        expiry_source: Some(source.as_str().to_string()),
        scope: reply
            .scope
            .clone()
            .or_else(|| (!id.scopes.is_empty()).then(|| id.scopes.join(" "))),
        token_endpoint: Some(token_url.to_string()),
        extra,
    }
}

/// Where a service account's tokens come from, for the token file.
fn cognito_api_url(id: &IdentityConfig) -> String {
    match id.cognito.as_ref().and_then(|c| c.endpoint_url.clone()) {
        Some(u) => u,
        None => format!(
            "https://cognito-idp.{}.amazonaws.com/",
            id.region.as_deref().unwrap_or("us-east-1")
        ),
    }
}

/// Is `rec` a token of this identity as configured now (same provider and client)?
pub fn belongs_to(rec: &TokenRecord, id: &IdentityConfig) -> bool {
    rec.client_id.as_deref() == Some(id.client_id.as_str()) && rec.provider == id.provider_label
}

/// Is the stored token still good by the refresh policy?
pub fn still_valid(
    rec: &TokenRecord,
    id: &IdentityConfig,
    policy: &RefreshPolicy,
    now: Ts,
) -> bool {
    let t = rec.times();
    belongs_to(rec, id)
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
            let kept = ctx.store.read_token(&file).ok().flatten();
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
    let mut state = ctx.store.read_state(&id.name);
    state.last_attempt_at = Some(now.as_secs_f64());
    tracing::info!(identity = %id.name, force, "requesting a new token");
    let result = async {
        if id.kind == IdentityKind::CognitoPassword {
            let sent_at = ctx.clock.now();
            let mine = existing.as_ref().filter(|r| belongs_to(r, id));
            let reply = cognito::obtain(id, mine, &ctx.http.policy).await?;
            let endpoint = cognito_api_url(id);
            return Ok(build_record(id, &reply, sent_at, &endpoint));
        }
        let url = resolve_token_endpoint(ctx.http, id).await?;
        let sent_at = ctx.clock.now();
        let reply = client_credentials(ctx.http, id, &url).await?;
        Ok::<_, FetchError>(build_record(id, &reply, sent_at, &url))
    }
    .await;
    let outcome = match result {
        Ok(rec) => match ctx.store.write_token(&file, &rec) {
            Ok(()) => {
                state.last_success_at = Some(ctx.clock.now().as_secs_f64());
                state.last_error = None;
                state.last_error_kind = None;
                tracing::debug!(identity = %id.name, expires_at = ?rec.expires_at, "stored a new token");
                Outcome::Refreshed(rec)
            }
            Err(e) => Outcome::Failed {
                error: store_failure(e),
                kept: existing,
            },
        },
        Err(error) => Outcome::Failed {
            error,
            kept: existing,
        },
    };
    if let Outcome::Failed { error, .. } = &outcome {
        tracing::warn!(identity = %id.name, kind = ?error.kind, error = %error.message, "refresh failed");
        state.last_error = Some(error.message.clone());
        state.last_error_kind = Some(kind_str(error.kind).to_string());
    }
    if let Err(e) = ctx.store.write_state(&id.name, &state) {
        notes.push(format!("{}: cannot record the outcome: {e}", id.name));
    }
    (outcome, notes)
}

pub fn kind_str(k: FailureKind) -> &'static str {
    match k {
        FailureKind::Transient => "transient",
        FailureKind::Permanent => "permanent",
        FailureKind::ReauthRequired => "reauth_required",
    }
}
