//! OAuth over HTTP: the one `Http` client, bounded reads, the classification of token
//! replies, retries, OIDC discovery and RFC 7009 revocation. The grants themselves go
//! through the `oauth2` crate (`grant`), over this client.
//! Redirects are never followed (a token request must not be bounced elsewhere), every
//! request has a timeout, and secrets go only into the request itself.

use std::time::Duration;

use tracing::{debug, warn};

use super::grant::Creds;
use super::proxy::ProxyEnv;
use super::reply::{self, ReplyError, TokenReply};
use super::{FailureKind, FetchError};
use crate::config::{Endpoint, HttpPolicy, IdentityConfig, check_endpoint_url};
use crate::failure::random_unit;
use crate::sanitize::redact_url;

/// The HTTP client every identity call goes through: one for https, verifying against the
/// system's roots, and one for plain http (loopback only), which never loads them. The
/// https one is built on first use: loading and parsing the system's certificates is most
/// of a one-shot's start-up and of an idle daemon's heap, and a setup that only talks to
/// a local provider never needs them (curl does the same: no CA bundle for http://).
#[derive(Clone, Debug)]
pub struct Http {
    tls: std::sync::Arc<std::sync::OnceLock<Result<reqwest::Client, String>>>,
    plain: reqwest::Client,
    proxy: Option<reqwest::Proxy>,
    pub policy: HttpPolicy,
    /// The proxy variables it was built with (the Cognito SDK's client follows them too).
    pub proxy_env: ProxyEnv,
}

impl Http {
    /// The client for `url` after the https-except-loopback check (`check_endpoint_url`):
    /// how every request to an endpoint starts.
    pub fn client_checked(&self, url: &str) -> Result<&reqwest::Client, FetchError> {
        check_endpoint_url(url).map_err(FetchError::permanent)?;
        self.client_for(url).map_err(FetchError::permanent)
    }

    /// The client for `url`: the plain one for `http:`, else the TLS one.
    pub fn client_for(&self, url: &str) -> Result<&reqwest::Client, String> {
        if url.len() >= 5 && url[..5].eq_ignore_ascii_case("http:") {
            return Ok(&self.plain);
        }
        self.tls
            .get_or_init(|| {
                let mut b = Http::builder(&self.policy);
                if let Some(p) = &self.proxy {
                    b = b.proxy(p.clone());
                }
                b.build()
                    .map_err(|e| format!("cannot set up the HTTP client: {e}"))
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Without a proxy, for unit tests; the program builds its clients with
    /// [`Http::with_proxy`] and the configuration's `proxy`.
    #[cfg(test)]
    pub fn new(policy: HttpPolicy) -> Result<Http, String> {
        Http::with_proxy(policy, &ProxyEnv::default())
    }

    /// Everything both clients share.
    fn builder(policy: &HttpPolicy) -> reqwest::ClientBuilder {
        let timeout = Duration::from_millis(policy.timeout_ms);
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("mcp-credd/", env!("CARGO_PKG_VERSION")))
            .no_proxy()
            .resolve_to_addrs(
                "localhost",
                &[
                    std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
                    std::net::SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 0)),
                ],
            )
    }

    /// Builds the client with the proxy rules of `identity::proxy`. `localhost` is pinned
    /// to 127.0.0.1 and ::1, never looked up, so plain http cannot leave the machine.
    pub fn with_proxy(policy: HttpPolicy, env: &ProxyEnv) -> Result<Http, String> {
        let mut proxy = None;
        if let Some(p) = &env.https {
            let no_proxy = env
                .no_proxy
                .as_deref()
                .and_then(reqwest::NoProxy::from_string);
            proxy = Some(
                reqwest::Proxy::https(p)
                    .map_err(|_| format!("{}; fix or unset it", super::proxy::INVALID))?
                    .no_proxy(no_proxy),
            );
        }
        // No roots: this client only ever speaks plain http.
        let plain = Http::builder(&policy)
            .tls_certs_only(std::iter::empty())
            .build()
            .map_err(|e| format!("cannot set up the HTTP client: {e}"))?;
        Ok(Http {
            tls: Default::default(),
            plain,
            proxy,
            policy,
            proxy_env: env.clone(),
        })
    }
}

/// The most a token, discovery or other JSON reply of an identity provider may hold.
pub const REPLY_MAX: usize = 1024 * 1024;

/// Reads a reply body, refusing (without reading further) one larger than `cap` bytes,
/// whether it says so in `Content-Length` or only streams on.
pub async fn read_capped(mut resp: reqwest::Response, cap: usize) -> Result<Vec<u8>, String> {
    let too_big = || format!("the reply is larger than {} KiB; refused", cap / 1024);
    if resp.content_length().is_some_and(|n| n > cap as u64) {
        return Err(too_big());
    }
    let mut body = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => {
                if body.len() + c.len() > cap {
                    return Err(too_big());
                }
                body.extend_from_slice(&c);
            }
            Ok(None) => return Ok(body),
            Err(e) => return Err(format!("reading the reply: {}", describe_transport(&e))),
        }
    }
}

/// RFC 7009: asks `url` to revoke `token` (`hint`: `refresh_token` or `access_token`),
/// authenticating the client as at the token endpoint (`grant::client_authentication`).
/// One attempt, no retries: a logout must not hang on a provider that is down.
/// Hand-written: the `oauth2` crate refuses a revocation URL that is not https.
pub async fn revoke(
    http: &Http,
    url: &str,
    token: &str,
    hint: &str,
    creds: Creds<'_>,
) -> Result<(), FetchError> {
    let client = http.client_checked(url)?;
    let ca = super::grant::client_authentication(creds, url)?;
    let mut form = vec![
        ("token".to_string(), token.to_string()),
        ("token_type_hint".to_string(), hint.to_string()),
    ];
    form.extend(ca.form);
    let mut req = client.post(url);
    if let Some(h) = ca.authorization {
        req = req.header(reqwest::header::AUTHORIZATION, h);
    }
    let url = redact_url(url, true);
    let resp = req.form(&form).send().await.map_err(|e| {
        FetchError::transient(format!(
            "revocation endpoint {url}: {}",
            describe_transport(&e)
        ))
    })?;
    let status = resp.status().as_u16();
    if (200..300).contains(&status) {
        return Ok(());
    }
    let body = read_capped(resp, 4096).await.unwrap_or_default();
    let code = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string));
    let shown = code
        .as_deref()
        .map(crate::sanitize::escape)
        .unwrap_or_default();
    Err(FetchError {
        oauth_error: code,
        ..FetchError::permanent(format!(
            "revocation endpoint {url} answered HTTP {status} {shown}"
        ))
    })
}

pub(crate) fn retry_after_ms(h: &reqwest::header::HeaderMap) -> Option<u64> {
    let v = h.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    v.trim().parse::<u64>().ok().map(|s| s.saturating_mul(1000))
}

/// HTTP statuses worth trying again: the server timed out, is rate-limiting, or failed.
pub(crate) fn is_transient_status(status: u16) -> bool {
    status == 408 || status == 429 || status >= 500
}

/// Sends `req`. A transport failure, or a reply of a status worth trying again (with the
/// server's `Retry-After`), is a transient failure named by `what`; any other reply is
/// returned as it is, body unread.
pub(crate) async fn send(
    req: reqwest::RequestBuilder,
    what: &str,
) -> Result<reqwest::Response, FetchError> {
    let resp = req
        .send()
        .await
        .map_err(|e| FetchError::transient(format!("{what}: {}", describe_transport(&e))))?;
    let status = resp.status().as_u16();
    if is_transient_status(status) {
        return Err(FetchError {
            kind: FailureKind::Transient,
            message: format!("{what} answered HTTP {status}"),
            retry_after_ms: retry_after_ms(resp.headers()),
            oauth_error: None,
        });
    }
    Ok(resp)
}

pub(crate) fn describe_transport(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "could not connect".into()
    } else {
        // The source chain says what failed (DNS, TLS...) without any request content.
        let mut s = e.to_string();
        let mut src = std::error::Error::source(e);
        while let Some(inner) = src {
            s = format!("{s}: {inner}");
            src = inner.source();
        }
        s
    }
}

pub(crate) fn hint_for(error: &str) -> &'static str {
    match error {
        "invalid_client" => "; check client_id and client_secret (and client_auth: basic or post)",
        "unauthorized_client" => "; allow the client_credentials grant for this app client",
        "invalid_scope" => "; check `scopes`: the client may not be allowed them",
        "unsupported_grant_type" => "; this endpoint does not offer the client_credentials grant",
        "invalid_grant" => "; the grant is no longer valid",
        _ => "",
    }
}

/// Errors that mean the grant behind a refresh token is gone (Slack names its own).
fn grant_gone(error: &str) -> bool {
    matches!(
        error,
        "invalid_grant" | "invalid_refresh_token" | "token_revoked" | "token_expired"
    )
}

/// How a provider wants its token requests.
#[derive(Clone, Debug, Default)]
pub struct Style {
    /// A JSON body instead of a form (Notion).
    pub json_body: bool,
    /// The token sits under this key of the reply (Slack's `authed_user`).
    pub nesting: Option<String>,
}

/// Classifies an HTTP reply from a token endpoint (`nesting`: where a provider puts the
/// token in its reply, as `reply::parse_nested` reads it).
pub(crate) fn classify_with(
    url: &str,
    status: u16,
    content_type: &str,
    body: &[u8],
    retry_after: Option<u64>,
    refresh_grant: bool,
    nesting: Option<&str>,
) -> Result<TokenReply, FetchError> {
    let url = &redact_url(url, true);
    let transient = |m: String| FetchError {
        kind: FailureKind::Transient,
        message: m,
        retry_after_ms: retry_after,
        oauth_error: None,
    };
    if is_transient_status(status) {
        return Err(transient(format!(
            "token endpoint {url} answered HTTP {status}; will retry"
        )));
    }
    if (200..300).contains(&status) {
        return match reply::parse_nested(body, nesting) {
            Ok(r) => Ok(r),
            Err(ReplyError::NotJson(_)) => Err(transient(format!(
                "token endpoint {url} answered HTTP {status} with {} ({} bytes) that is not a JSON token reply; check the token URL if this persists",
                if content_type.is_empty() {
                    "no content type"
                } else {
                    content_type
                },
                body.len()
            ))),
            Err(ReplyError::OAuth(e)) => Err(refused(url, None, &e, refresh_grant)),
            Err(ReplyError::NoAccessToken) => Err(FetchError::permanent(format!(
                "token endpoint {url} answered without an access_token"
            ))),
            Err(e @ ReplyError::UnsafeToken(_)) => {
                Err(FetchError::permanent(format!("token endpoint {url}: {e}")))
            }
        };
    }
    match reply::parse_error(body) {
        Some(e) => Err(refused(url, Some(status), &e, refresh_grant)),
        None => Err(answered(url, status)),
    }
}

/// A token endpoint's OAuth error (`status`: the HTTP status, if it was not a success).
/// On a refresh, an error that says the grant is gone means a new login is needed.
pub(crate) fn refused(
    url: &str,
    status: Option<u16>,
    e: &reply::ErrorReply,
    refresh_grant: bool,
) -> FetchError {
    let url = redact_url(url, true);
    FetchError {
        kind: if refresh_grant && grant_gone(&e.error) {
            FailureKind::ReauthRequired
        } else {
            FailureKind::Permanent
        },
        message: format!(
            "token endpoint {url} refused{}: {}{}",
            status.map(|s| format!(" (HTTP {s})")).unwrap_or_default(),
            reply::describe(e),
            hint_for(&e.error)
        ),
        retry_after_ms: None,
        oauth_error: Some(e.error.clone()),
    }
}

/// A token endpoint's refusal without an OAuth error in it.
pub(crate) fn answered(url: &str, status: u16) -> FetchError {
    let url = redact_url(url, true);
    let hint = match status {
        404 => "; check the token URL (or Cognito domain)",
        401 | 403 => "; check client_id and client_secret",
        _ => "",
    };
    FetchError::permanent(format!("token endpoint {url} answered HTTP {status}{hint}"))
}

/// Runs `attempt` until it succeeds, fails for good, or the attempts run out.
pub(crate) async fn with_retries<T, F, Fut>(
    policy: &HttpPolicy,
    what: &str,
    mut attempt: F,
) -> Result<T, FetchError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, FetchError>>,
{
    let mut n = 0;
    loop {
        match attempt().await {
            Ok(v) => return Ok(v),
            Err(e) if e.kind == FailureKind::Transient && n + 1 < policy.attempts => {
                let d = policy
                    .backoff()
                    .delay_ms(n, random_unit(), e.retry_after_ms);
                warn!(what = %redact_url(what, false), attempt = n + 1, retry_in_ms = d, error = %e.message, "transient failure; retrying");
                tokio::time::sleep(Duration::from_millis(d)).await;
                n += 1;
            }
            Err(mut e) => {
                if e.kind == FailureKind::Transient && n > 0 {
                    e.message = format!("{} (gave up after {} attempts)", e.message, n + 1);
                }
                return Err(e);
            }
        }
    }
}

/// Fetches an OIDC discovery document and returns its `token_endpoint`.
pub async fn discover_token_endpoint(http: &Http, url: &str) -> Result<String, FetchError> {
    let doc = discovery_document(http, url).await?;
    let url = redact_url(url, true);
    let ep = doc.get("token_endpoint").and_then(|v| v.as_str()).ok_or_else(|| FetchError::permanent(format!("discovery document {url} lists no token_endpoint (a Cognito pool lists one only once it has a domain; set `domain` or `token_url`)")))?;
    check_endpoint_url(ep).map_err(|m| {
        FetchError::permanent(format!("discovery document {url}: token_endpoint {m}"))
    })?;
    Ok(ep.to_string())
}

/// Fetches an OIDC discovery document (bounded retries on transient failures).
pub async fn discovery_document(http: &Http, url: &str) -> Result<serde_json::Value, FetchError> {
    let what = format!("discovery document {}", redact_url(url, true));
    match fetch_document(http, url, &what, FailureKind::Transient).await? {
        Document::Found(doc) => Ok(doc),
        Document::Absent(status) => Err(FetchError::permanent(format!(
            "{what} answered HTTP {status}"
        ))),
    }
}

/// What a GET of a metadata document found.
#[derive(Debug)]
pub enum Document {
    /// A JSON object.
    Found(serde_json::Value),
    /// The server has none there: it answered with this status (not 2xx, 408, 429, 5xx).
    Absent(u16),
}

/// The one fetch of a JSON metadata document (OIDC discovery, RFC 8414 authorization
/// server metadata, RFC 9728 resource metadata): a GET through `Http`, bounded retries on
/// transport failures, 408, 429 and 5xx (honouring Retry-After), the body read capped.
/// A body that is not a JSON object fails with `bad_body`'s kind. Every message starts
/// with `what` (the document's name and URL).
pub async fn fetch_document(
    http: &Http,
    url: &str,
    what: &str,
    bad_body: FailureKind,
) -> Result<Document, FetchError> {
    let client = http.client_checked(url)?;
    with_retries(&http.policy, url, || async move {
        let req = client
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json");
        let resp = send(req, what).await?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            debug!(url = %redact_url(url, false), status, "no document here");
            return Ok(Document::Absent(status));
        }
        let body = read_capped(resp, REPLY_MAX)
            .await
            .map_err(|m| FetchError::transient(format!("{what}: {m}")))?;
        match serde_json::from_slice::<serde_json::Value>(&body) {
            Ok(v) if v.is_object() => Ok(Document::Found(v)),
            _ => Err(FetchError {
                kind: bad_body,
                message: format!(
                    "{what} answered HTTP {status} with something that is not a JSON metadata document"
                ),
                retry_after_ms: None,
                oauth_error: None,
            }),
        }
    })
    .await
}

/// The token endpoint of an identity, resolving discovery (and the Cognito guess) if needed.
pub async fn resolve_token_endpoint(
    http: &Http,
    id: &IdentityConfig,
) -> Result<String, FetchError> {
    match &id.endpoint {
        Endpoint::TokenUrl(u) => Ok(u.clone()),
        Endpoint::CognitoApi => Err(FetchError::permanent(format!(
            "identity `{}` signs in through the Cognito API, not a token endpoint",
            id.name
        ))),
        Endpoint::Discovery { url, fallback } => match discover_token_endpoint(http, url).await {
            Ok(ep) => Ok(ep),
            Err(e) => match fallback {
                Some(guess) => {
                    warn!(identity = %id.name, error = %e.message, guess = %guess, "discovery failed; using the domain guessed from the pool id (set `domain` or `token_url` to be sure)");
                    Ok(guess.clone())
                }
                None => Err(e),
            },
        },
        Endpoint::McpServer {
            server_url,
            authorization_server,
        } => crate::mcpauth::discover::discover(
            http,
            server_url,
            authorization_server.as_deref(),
            &id.scopes,
        )
        .await
        .map(|d| d.server.token_endpoint),
    }
}

/// The client_credentials grant for a machine-to-machine identity.
pub async fn client_credentials(
    http: &Http,
    id: &IdentityConfig,
    token_url: &str,
) -> Result<TokenReply, FetchError> {
    let mut extra = Vec::new();
    if let Some(a) = id.audience() {
        extra.push(("audience", a.to_string()));
    }
    if let Some(r) = id.resource() {
        extra.push(("resource", r.to_string()));
    }
    super::grant::token(
        http,
        token_url,
        Creds::of(id),
        &super::grant::Grant::ClientCredentials {
            scopes: &id.scopes,
            extra,
        },
        &Style::default(),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ClientAuth;

    fn kind(status: u16, body: &str) -> Result<(), FailureKind> {
        classify_with(
            "u",
            status,
            "application/json",
            body.as_bytes(),
            None,
            false,
            None,
        )
        .map(|_| ())
        .map_err(|e| e.kind)
    }

    #[test]
    fn classification() {
        assert_eq!(kind(200, r#"{"access_token":"a"}"#), Ok(()));
        assert_eq!(kind(200, "<html>"), Err(FailureKind::Transient));
        assert_eq!(
            kind(200, r#"{"access_token":"a""#),
            Err(FailureKind::Transient)
        );
        assert_eq!(kind(503, ""), Err(FailureKind::Transient));
        assert_eq!(kind(429, ""), Err(FailureKind::Transient));
        assert_eq!(kind(408, ""), Err(FailureKind::Transient));
        assert_eq!(
            kind(400, r#"{"error":"invalid_client"}"#),
            Err(FailureKind::Permanent)
        );
        assert_eq!(kind(404, "nope"), Err(FailureKind::Permanent));
        let e = classify_with(
            "u",
            400,
            "",
            br#"{"error":"invalid_grant"}"#,
            None,
            true,
            None,
        )
        .unwrap_err();
        assert_eq!(e.kind, FailureKind::ReauthRequired);
        let e = classify_with(
            "https://t",
            401,
            "",
            br#"{"error":"invalid_client","error_description":"bad secret"}"#,
            None,
            false,
            None,
        )
        .unwrap_err();
        assert_eq!(
            e.message,
            "token endpoint https://t refused (HTTP 401): invalid_client (bad secret); check client_id and client_secret (and client_auth: basic or post)"
        );
        let e = classify_with("u", 429, "", b"", Some(3000), false, None).unwrap_err();
        assert_eq!(e.retry_after_ms, Some(3000));
    }

    /// RFC 7009: the refusal's `error` is kept as sent, for callers to match; the client
    /// authenticates as at the token endpoint.
    #[tokio::test]
    async fn revocation_refusals_carry_their_code() {
        use crate::identity::grant::tests::{reply, server};
        let (url, seen) = server(vec![
            reply(
                "400 Bad Request",
                "",
                r#"{"error":"unsupported_token_type"}"#,
            ),
            reply(
                "400 Bad Request",
                "",
                r#"{"error":"invalid_request","error_description":"unsupported_token_type"}"#,
            ),
            reply("200 OK", "", "{}"),
        ])
        .await;
        let http = Http::new(HttpPolicy::default()).unwrap();
        let revoke = |auth| {
            let creds = Creds {
                id: "cid",
                secret: Some("s:cret"),
                auth,
            };
            revoke(&http, &url, "T1", "access_token", creds)
        };
        let e = revoke(ClientAuth::Basic).await.unwrap_err();
        assert_eq!(e.oauth_error.as_deref(), Some("unsupported_token_type"));
        let e = revoke(ClientAuth::Basic).await.unwrap_err();
        assert_eq!(e.oauth_error.as_deref(), Some("invalid_request"));
        revoke(ClientAuth::Post).await.unwrap();
        let seen = seen.await.unwrap();
        let head = seen[0].0.to_ascii_lowercase();
        assert!(
            head.contains("authorization: basic y2lkonmlm0fjcmv0"),
            "{head}"
        );
        assert_eq!(seen[0].1, b"token=T1&token_type_hint=access_token");
        assert!(!seen[2].0.to_ascii_lowercase().contains("authorization:"));
        assert_eq!(
            seen[2].1,
            b"token=T1&token_type_hint=access_token&client_id=cid&client_secret=s%3Acret"
        );
    }
}
