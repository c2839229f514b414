//! The HTTP side of MCP authorization discovery: probe the server, fetch its protected
//! resource metadata, then its authorization server's metadata; and check a new token
//! against the server. Every reply is read through `read_capped`, every URL is checked
//! (https, or http on loopback) before it is fetched, and redirects are never followed.

use tracing::debug;

use super::{
    Challenge, ResourceMetadata, ServerMetadata, as_metadata_candidates, check_resource_metadata,
    check_server_metadata, parse_www_authenticate, prm_candidates, scopes_to_request,
};
use crate::config::check_endpoint_url;
use crate::failure::FailureKind;
use crate::identity::FetchError;
use crate::identity::oauth::{Document, Http, fetch_document, read_capped, send, with_retries};
use crate::sanitize::{escape, redact_url};

/// What a server said to a request.
#[derive(Clone, Debug)]
pub struct Probe {
    pub status: u16,
    pub challenge: Option<Challenge>,
}

/// A JSON-RPC `ping` without a session: an MCP server that checks tokens answers 401/403
/// before looking at it, and one that accepted the token answers without starting a session.
const PING: &str = r#"{"jsonrpc":"2.0","id":"mcp-credd-probe","method":"ping"}"#;

/// Sends the MCP server one request, with `token` as its bearer when given.
pub async fn probe(
    http: &Http,
    server_url: &str,
    token: Option<&str>,
) -> Result<Probe, FetchError> {
    let client = http.client_checked(server_url)?;
    with_retries(&http.policy, server_url, || async move {
        let mut req = client
            .post(server_url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(
                reqwest::header::ACCEPT,
                "application/json, text/event-stream",
            )
            .body(PING);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = send(req, &format!("MCP server {server_url}")).await?;
        let status = resp.status().as_u16();
        let challenge = resp
            .headers()
            .get_all(reqwest::header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(parse_www_authenticate);
        // The body is not needed; reading a little of it lets the connection be reused.
        let _ = read_capped(resp, 64 * 1024).await;
        debug!(server_url = %redact_url(server_url, false), status, ?challenge, "probed the MCP server");
        Ok(Probe { status, challenge })
    })
    .await
}

/// GETs a metadata document. `Ok(None)` when the server has none there (404 and other
/// refusals), so the caller tries the next candidate.
async fn fetch_metadata(http: &Http, url: &str) -> Result<Option<serde_json::Value>, FetchError> {
    match fetch_document(http, url, url, FailureKind::Permanent).await? {
        Document::Found(doc) => Ok(Some(doc)),
        Document::Absent(_) => Ok(None),
    }
}

/// Fetches and checks an authorization server's metadata, trying the spec's URLs in order.
pub async fn server_metadata(http: &Http, issuer: &str) -> Result<ServerMetadata, FetchError> {
    check_endpoint_url(issuer)
        .map_err(|m| FetchError::permanent(format!("authorization server {m}")))?;
    let candidates = as_metadata_candidates(issuer);
    for url in &candidates {
        if let Some(doc) = fetch_metadata(http, url).await? {
            return check_server_metadata(&doc, issuer, url)
                .map_err(|m| FetchError::permanent(escape(&m)));
        }
    }
    Err(FetchError::permanent(format!(
        "authorization server {issuer} publishes no metadata (tried {}); check `authorization_server`",
        candidates.join(", ")
    )))
}

/// Everything discovery found out about one MCP server.
#[derive(Clone, Debug)]
pub struct Discovered {
    /// The issuer asked for: `authorization_server` when configured, else the resource
    /// metadata's first authorization server. Tokens are bound to it.
    pub issuer: String,
    /// The challenge of the unauthenticated probe, when discovery probed.
    pub challenge: Option<Challenge>,
    pub resource: Option<ResourceMetadata>,
    pub server: ServerMetadata,
    /// The scopes to ask for (configured, else the challenge's, else the metadata's).
    pub scopes: Vec<String>,
}

/// Probe → protected resource metadata → authorization server metadata. With
/// `authorization_server` configured, the server is not asked: that issuer is used.
pub async fn discover(
    http: &Http,
    server_url: &str,
    authorization_server: Option<&str>,
    configured_scopes: &[String],
) -> Result<Discovered, FetchError> {
    if let Some(issuer) = authorization_server {
        let server = server_metadata(http, issuer).await?;
        return Ok(Discovered {
            issuer: issuer.to_string(),
            challenge: None,
            resource: None,
            server,
            scopes: configured_scopes.to_vec(),
        });
    }
    let p = probe(http, server_url, None).await?;
    let challenge = if matches!(p.status, 401 | 403) {
        p.challenge
    } else {
        None
    };
    let candidates = match challenge.as_ref().and_then(|c| c.resource_metadata.clone()) {
        Some(u) => {
            check_endpoint_url(&u).map_err(|m| {
                FetchError::permanent(format!(
                    "MCP server {server_url} points to resource metadata {}",
                    escape(&m)
                ))
            })?;
            vec![u]
        }
        None => prm_candidates(server_url),
    };
    let mut prm = None;
    for url in &candidates {
        if let Some(doc) = fetch_metadata(http, url).await? {
            prm = Some(
                check_resource_metadata(&doc, server_url, url)
                    .map_err(|m| FetchError::permanent(escape(&m)))?,
            );
            break;
        }
    }
    let Some(prm) = prm else {
        return Err(FetchError::permanent(format!(
            "MCP server {server_url} does not announce its authorization: {} and no protected resource metadata at {}; check the server's `url`, or set `authorization_server` under `auth.oauth`",
            match p.status {
                401 | 403 => format!(
                    "it answered HTTP {} without a resource_metadata challenge",
                    p.status
                ),
                s => format!("it answered HTTP {s} without asking for a token"),
            },
            candidates.join(", ")
        )));
    };
    let issuer = prm.authorization_servers[0].clone();
    let server = server_metadata(http, &issuer).await?;
    let scopes = scopes_to_request(configured_scopes, challenge.as_ref(), &prm);
    Ok(Discovered {
        issuer,
        challenge,
        resource: Some(prm),
        server,
        scopes,
    })
}

/// Sends a freshly obtained token to the server once. A 401 or 403 means it is of no use
/// there (wrong audience, too few scopes): a permanent failure, so it is not stored. Other
/// answers (including the server being down) do not hold the token back.
pub async fn check_token(
    http: &Http,
    server_url: &str,
    token: &str,
    asked: &[String],
) -> Result<(), FetchError> {
    let p = match probe(http, server_url, Some(token)).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(server_url = %redact_url(server_url, false), error = %e.message, "could not check the new token against the MCP server; keeping it");
            return Ok(());
        }
    };
    if !matches!(p.status, 401 | 403) {
        return Ok(());
    }
    let c = p.challenge.unwrap_or_default();
    let desc = c
        .error_description
        .as_deref()
        .map(|d| format!(" ({})", escape(d)))
        .unwrap_or_default();
    let message = if c.error.as_deref() == Some("insufficient_scope") {
        let wanted = c
            .scope
            .as_deref()
            .map(|s| format!("; it wants scope `{}`", escape(s)))
            .unwrap_or_default();
        format!(
            "MCP server {server_url} refused the new token for insufficient scope{desc}{wanted}; the token has `{}`; allow this client the scopes the server needs at the authorization server, or set `scopes` under `auth.oauth`",
            escape(&asked.join(" "))
        )
    } else {
        format!(
            "MCP server {server_url} refused the new token (HTTP {}{}{desc}); check that the authorization server issues tokens for this server (resource {server_url})",
            p.status,
            c.error
                .as_deref()
                .map(|e| format!(", {}", escape(e)))
                .unwrap_or_default()
        )
    };
    Err(FetchError::permanent(message))
}
