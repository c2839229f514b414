//! The OAuth 2.0 grants through the `oauth2` crate: the authorization URL (PKCE S256,
//! `state`), the code exchange, the refresh grant, client_credentials and the device flow
//! (RFC 8628). The crate builds every request, including its client authentication (the
//! one encoder: `client_secret_basic` or `client_secret_post`; `private_key_jwt` adds our
//! signed assertion to a request-body client), and types the error replies. Requests travel
//! through the crate's async HTTP hook on our `Http`: the https-except-loopback rule, the
//! proxy rules, the 1 MiB reply cap and the classification the daemon relies on (HTTP
//! 408/429/5xx and replies that are not JSON are transient, `Retry-After` kept) happen there.

use std::future::Future;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::http;
use oauth2::{
    AccessToken, AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken,
    DeviceAuthorizationUrl, DeviceCodeErrorResponseType, EndpointNotSet, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, RefreshToken, RequestTokenError, Scope,
    StandardDeviceAuthorizationResponse, StandardErrorResponse, StandardRevocableToken,
    TokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};
use tracing::debug;

use super::assertion::{ASSERTION_TYPE, SigningKey, random_jti};
use super::oauth::{
    Http, REPLY_MAX, Style, answered, classify_with, describe_transport, read_capped, refused,
    retry_after_ms, with_retries,
};
use super::reply::{ErrorReply, TokenReply};
use super::{FailureKind, FetchError};
use crate::config::{ClientAuth, IdentityConfig};
use crate::sanitize::redact_url;

/// A token reply as the crate hands it over: the JSON value, untouched. Our tolerant
/// parsing (`reply::parse_nested`: `expires_in` as a string, Slack's nesting, header-safe
/// tokens, an OAuth error inside a 200) reads it afterwards; the crate's standard reply type
/// refuses replies real providers send.
#[derive(Clone)]
pub struct RawReply {
    raw: serde_json::Value,
    access: AccessToken,
    token_type: BasicTokenType,
}

impl std::fmt::Debug for RawReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // It holds tokens.
        f.write_str("RawReply([redacted])")
    }
}

impl Serialize for RawReply {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.raw.serialize(s)
    }
}

impl<'de> Deserialize<'de> for RawReply {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = serde_json::Value::deserialize(d)?;
        let access = raw
            .get("access_token")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string();
        Ok(RawReply {
            raw,
            access: AccessToken::new(access),
            token_type: BasicTokenType::Bearer,
        })
    }
}

impl TokenResponse for RawReply {
    type TokenType = BasicTokenType;
    fn access_token(&self) -> &AccessToken {
        &self.access
    }
    fn token_type(&self) -> &BasicTokenType {
        &self.token_type
    }
    fn expires_in(&self) -> Option<Duration> {
        None
    }
    fn refresh_token(&self) -> Option<&RefreshToken> {
        None
    }
    fn scopes(&self) -> Option<&Vec<Scope>> {
        None
    }
}

type Client<HasTokenUrl = EndpointNotSet> = oauth2::Client<
    BasicErrorResponse,
    RawReply,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    HasTokenUrl,
>;

/// A client that knows its token endpoint.
type TokenClient = Client<oauth2::EndpointSet>;

/// Who the client is and how it authenticates.
#[derive(Clone, Copy)]
pub struct Creds<'a> {
    pub id: &'a str,
    pub secret: Option<&'a str>,
    pub auth: ClientAuth,
}

impl std::fmt::Debug for Creds<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Creds")
            .field("id", &self.id)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

impl<'a> Creds<'a> {
    /// An identity's client as its configuration gives it: the one place `Creds` are
    /// built from an identity.
    pub fn of(id: &'a IdentityConfig) -> Creds<'a> {
        Creds {
            id: &id.client_id,
            secret: id.client_secret.as_ref().map(|s| s.expose()),
            auth: id.client_auth,
        }
    }
}

/// A client's authentication for one request the crate does not build (RFC 7009
/// revocation): the `Authorization` header of `client_secret_basic`, or the form
/// parameters of the others. Not `Debug`: it holds the secret.
pub struct ClientAuthentication {
    pub authorization: Option<String>,
    pub form: Vec<(String, String)>,
}

/// The client authentication of `creds` for one request to `audience`, encoded as the
/// crate encodes it for the grants (RFC 6749 §2.3.1 for Basic; RFC 7523 for
/// `private_key_jwt`, a new assertion each call).
pub fn client_authentication(
    creds: Creds<'_>,
    audience: &str,
) -> Result<ClientAuthentication, FetchError> {
    let id = || ("client_id".to_string(), creds.id.to_string());
    Ok(match (creds.auth, creds.secret) {
        (ClientAuth::Basic, Some(s)) => ClientAuthentication {
            authorization: Some(basic_auth(creds.id, s)),
            form: Vec::new(),
        },
        (ClientAuth::Post, Some(s)) => ClientAuthentication {
            authorization: None,
            form: vec![id(), ("client_secret".into(), s.to_string())],
        },
        (ClientAuth::PrivateKeyJwt, Some(pem)) => {
            let key = SigningKey::from_pem(pem).map_err(FetchError::permanent)?;
            let mut form = vec![id()];
            form.extend(assertion(Some(&key), creds.id, audience)?);
            ClientAuthentication {
                authorization: None,
                form,
            }
        }
        (_, None) => ClientAuthentication {
            authorization: None,
            form: vec![id()],
        },
    })
}

/// RFC 6749 §2.3.1: id and secret are form-urlencoded before going into Basic auth.
fn basic_auth(id: &str, secret: &str) -> String {
    use base64::Engine;
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let raw = format!("{}:{}", enc(id), enc(secret));
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// The crate's client for `creds`, and the key that signs assertions for `private_key_jwt`.
fn client(creds: Creds<'_>) -> Result<(Client, Option<SigningKey>), FetchError> {
    let c = Client::new(ClientId::new(creds.id.to_string()));
    Ok(match (creds.auth, creds.secret) {
        (ClientAuth::Basic, Some(s)) => (
            c.set_client_secret(ClientSecret::new(s.to_string()))
                .set_auth_type(AuthType::BasicAuth),
            None,
        ),
        (ClientAuth::Post, Some(s)) => (
            c.set_client_secret(ClientSecret::new(s.to_string()))
                .set_auth_type(AuthType::RequestBody),
            None,
        ),
        // RFC 7523: the client id in the body, the assertion beside it (added per request).
        (ClientAuth::PrivateKeyJwt, Some(pem)) => (
            c.set_auth_type(AuthType::RequestBody),
            Some(SigningKey::from_pem(pem).map_err(FetchError::permanent)?),
        ),
        (_, None) => (c.set_auth_type(AuthType::RequestBody), None),
    })
}

/// The parameters a `private_key_jwt` client adds to one request to `audience`: a new
/// assertion (own jti, fresh exp) each time, since the server may remember a jti.
fn assertion(
    signer: Option<&SigningKey>,
    client_id: &str,
    audience: &str,
) -> Result<Vec<(String, String)>, FetchError> {
    let Some(k) = signer else {
        return Ok(Vec::new());
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let a = k
        .assertion(client_id, audience, now, random_jti())
        .map_err(FetchError::permanent)?;
    Ok(vec![
        ("client_assertion_type".into(), ASSERTION_TYPE.into()),
        ("client_assertion".into(), a),
    ])
}

/// The crate's client for `creds` with its token endpoint set, after the
/// https-except-loopback check, and the key that signs `private_key_jwt` assertions.
fn token_client(
    creds: Creds<'_>,
    token_url: &str,
) -> Result<(TokenClient, Option<SigningKey>), FetchError> {
    crate::config::check_endpoint_url(token_url).map_err(FetchError::permanent)?;
    let (base, signer) = client(creds)?;
    let base = base.set_token_uri(
        TokenUrl::new(token_url.to_string()).map_err(bad_url("token endpoint", token_url))?,
    );
    Ok((base, signer))
}

fn bad_url(what: &str, url: &str) -> impl Fn(url::ParseError) -> FetchError {
    let m = format!("{what} `{}` is not a valid URL", redact_url(url, true));
    move |e| FetchError::permanent(format!("{m}: {e}"))
}

/// The crate's HTTP hook: one request over `Http`, classified as the daemon needs.
struct Hook<'a> {
    http: &'a Http,
    /// What the endpoint is, for messages ("token endpoint").
    what: &'a str,
    /// Send the form as a JSON object (Notion).
    json_body: bool,
    /// The status of the last reply, for the messages about typed errors.
    status: AtomicU16,
}

impl<'a> Hook<'a> {
    fn new(http: &'a Http, what: &'a str, json_body: bool) -> Hook<'a> {
        Hook {
            http,
            what,
            json_body,
            status: AtomicU16::new(0),
        }
    }

    fn status(&self) -> u16 {
        self.status.load(Ordering::Relaxed)
    }

    /// Sends `req`. Transient failures (no connection, a timeout, HTTP 408/429/5xx, a
    /// success that is not JSON, a reply over the cap) are errors here, with `Retry-After`;
    /// every other reply goes back to the crate, a 2xx as 200 (the crate wants exactly 200).
    async fn send(&self, req: oauth2::HttpRequest) -> Result<oauth2::HttpResponse, FetchError> {
        let what = self.what;
        let url = req.uri().to_string();
        let client = self.http.client_checked(&url)?;
        let (parts, mut body) = req.into_parts();
        let form = parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|v| {
                v.as_bytes()
                    .starts_with(b"application/x-www-form-urlencoded")
            });
        let mut rb = client.request(parts.method, &url);
        // From here on the URL is only shown: without credentials or query.
        let url = redact_url(&url, true);
        for (k, v) in &parts.headers {
            if !(self.json_body && form && k == http::header::CONTENT_TYPE) {
                rb = rb.header(k, v);
            }
        }
        if self.json_body && form {
            let obj: serde_json::Map<String, serde_json::Value> =
                url::form_urlencoded::parse(&body)
                    .map(|(k, v)| (k.into_owned(), serde_json::Value::String(v.into_owned())))
                    .collect();
            body = serde_json::to_vec(&obj).expect("a map of strings serializes");
            rb = rb.header(http::header::CONTENT_TYPE, "application/json");
        }
        let resp = rb.body(body).send().await.map_err(|e| {
            FetchError::transient(format!("{what} {url}: {}", describe_transport(&e)))
        })?;
        let status = resp.status().as_u16();
        self.status.store(status, Ordering::Relaxed);
        let ct = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let ra = retry_after_ms(resp.headers());
        let bytes = read_capped(resp, REPLY_MAX)
            .await
            .map_err(|m| FetchError::transient(format!("{what} {url}: {m}")))?;
        debug!(url = %redact_url(&url, false), status, bytes = bytes.len(), "{what} replied");
        if super::oauth::is_transient_status(status) {
            return Err(FetchError {
                kind: FailureKind::Transient,
                message: format!("{what} {url} answered HTTP {status}; will retry"),
                retry_after_ms: ra,
                oauth_error: None,
            });
        }
        let json = serde_json::from_slice::<serde_json::Value>(&bytes).is_ok();
        let ok = (200..300).contains(&status);
        if ok && !json {
            // The one classification of a reply body: the same words as ever.
            return Err(
                match classify_with(&url, status, &ct, &bytes, ra, false, None) {
                    Err(e) => e,
                    Ok(_) => FetchError::transient(format!("{what} {url}: the reply is not JSON")),
                },
            );
        }
        let mut out = http::Response::builder().status(if ok { 200 } else { status });
        if json {
            out = out.header(http::header::CONTENT_TYPE, "application/json");
        }
        Ok(out
            .body(bytes)
            .expect("a status and a header make a response"))
    }
}

impl<'c> oauth2::AsyncHttpClient<'c> for Hook<'_> {
    type Error = FetchError;
    type Future = std::pin::Pin<
        Box<dyn Future<Output = Result<oauth2::HttpResponse, FetchError>> + Send + 'c>,
    >;
    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(self.send(request))
    }
}

/// What a grant's result means to the daemon.
fn judge<T: oauth2::ErrorResponseType + AsRef<str> + std::fmt::Display + 'static>(
    r: Result<RawReply, RequestTokenError<FetchError, StandardErrorResponse<T>>>,
    url: &str,
    status: u16,
    refresh_grant: bool,
    nesting: Option<&str>,
) -> Result<TokenReply, FetchError> {
    let url = &redact_url(url, true);
    match r {
        Ok(raw) => {
            let body = serde_json::to_vec(&raw.raw).expect("JSON serializes");
            classify_with(
                url,
                200,
                "application/json",
                &body,
                None,
                refresh_grant,
                nesting,
            )
        }
        Err(RequestTokenError::Request(e)) => Err(e),
        Err(RequestTokenError::ServerResponse(e)) => {
            Err(refused(url, Some(status), &typed(&e), refresh_grant))
        }
        // A refusal without an OAuth error body, or one the crate could not read.
        Err(RequestTokenError::Parse(..) | RequestTokenError::Other(_)) => {
            Err(if (200..300).contains(&status) {
                FetchError::transient(format!(
                    "token endpoint {url}: the reply could not be read; check the token URL if this persists"
                ))
            } else {
                answered(url, status)
            })
        }
    }
}

fn typed<T: oauth2::ErrorResponseType + AsRef<str>>(e: &StandardErrorResponse<T>) -> ErrorReply {
    ErrorReply {
        error: e.error().as_ref().to_string(),
        error_description: e.error_description().cloned(),
    }
}

/// One token request, with the policy's retries.
pub enum Grant<'a> {
    ClientCredentials {
        scopes: &'a [String],
        /// `audience`, `resource`: what some servers need besides the scopes.
        extra: Vec<(&'static str, String)>,
    },
    Code {
        code: &'a str,
        verifier: Option<&'a str>,
        redirect_uri: &'a str,
        extra: Vec<(&'static str, String)>,
    },
    Refresh {
        refresh_token: &'a str,
        extra: Vec<(&'static str, String)>,
    },
}

impl Grant<'_> {
    fn is_refresh(&self) -> bool {
        matches!(self, Grant::Refresh { .. })
    }
}

/// Sends `grant` to `token_url` and parses the reply; transient failures are retried per
/// the HTTP policy. `ReauthRequired` means a refresh token's grant is gone.
pub async fn token(
    http: &Http,
    token_url: &str,
    creds: Creds<'_>,
    grant: &Grant<'_>,
    style: &Style,
) -> Result<TokenReply, FetchError> {
    let (base, signer) = token_client(creds, token_url)?;
    let (base, signer) = (&base, &signer);
    with_retries(&http.policy, token_url, || {
        attempt(http, token_url, creds, base, signer.as_ref(), grant, style)
    })
    .await
    .map_err(|mut e| {
        if signer.is_some() {
            e.message = e.message.replace(
                super::oauth::hint_for("invalid_client"),
                "; check client_id, and that the authorization server holds the public half of `private_key` for this client",
            );
        }
        e
    })
}

/// One try of `token`.
async fn attempt(
    http: &Http,
    token_url: &str,
    creds: Creds<'_>,
    base: &TokenClient,
    signer: Option<&SigningKey>,
    grant: &Grant<'_>,
    style: &Style,
) -> Result<TokenReply, FetchError> {
    let hook = Hook::new(http, "token endpoint", style.json_body);
    let mut params: Vec<(String, String)> = assertion(signer, creds.id, token_url)?;
    let extra = match grant {
        Grant::ClientCredentials { extra, .. }
        | Grant::Code { extra, .. }
        | Grant::Refresh { extra, .. } => extra,
    };
    params.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
    let r = match grant {
        Grant::ClientCredentials { scopes, .. } => {
            let mut req = base.exchange_client_credentials();
            for s in *scopes {
                req = req.add_scope(Scope::new(s.clone()));
            }
            for (k, v) in params {
                req = req.add_extra_param(k, v);
            }
            req.request_async(&hook).await
        }
        Grant::Code {
            code,
            verifier,
            redirect_uri,
            ..
        } => {
            let c = base.clone().set_redirect_uri(
                RedirectUrl::new(redirect_uri.to_string())
                    .map_err(bad_url("redirect_uri", redirect_uri))?,
            );
            let mut req = c.exchange_code(AuthorizationCode::new(code.to_string()));
            if let Some(v) = verifier {
                req = req.set_pkce_verifier(PkceCodeVerifier::new(v.to_string()));
            }
            for (k, v) in params {
                req = req.add_extra_param(k, v);
            }
            req.request_async(&hook).await
        }
        Grant::Refresh { refresh_token, .. } => {
            let rt = RefreshToken::new(refresh_token.to_string());
            let mut req = base.exchange_refresh_token(&rt);
            for (k, v) in params {
                req = req.add_extra_param(k, v);
            }
            req.request_async(&hook).await
        }
    };
    judge(
        r,
        token_url,
        hook.status(),
        grant.is_refresh(),
        style.nesting.as_deref(),
    )
}

/// What an authorization URL needs besides the client.
pub struct Authorization<'a> {
    pub authorize_url: &'a str,
    pub redirect_uri: &'a str,
    pub state: &'a str,
    /// The PKCE verifier; the URL carries its S256 challenge.
    pub pkce_verifier: Option<&'a str>,
    /// The scope parameter's name and value (providers differ in both).
    pub scope: Option<(&'a str, String)>,
    pub extra: Vec<(&'a str, &'a str)>,
}

/// The authorization URL a person opens (pure).
pub fn authorize_url(client_id: &str, a: &Authorization<'_>) -> Result<String, String> {
    let c = Client::new(ClientId::new(client_id.to_string()))
        .set_auth_uri(
            AuthUrl::new(a.authorize_url.to_string()).map_err(|e| format!("authorize_url: {e}"))?,
        )
        .set_redirect_uri(
            RedirectUrl::new(a.redirect_uri.to_string())
                .map_err(|e| format!("redirect_uri: {e}"))?,
        );
    let state = a.state.to_string();
    let mut req = c.authorize_url(move || CsrfToken::new(state));
    if let Some(v) = a.pkce_verifier {
        req = req.set_pkce_challenge(PkceCodeChallenge::from_code_verifier_sha256(
            &PkceCodeVerifier::new(v.to_string()),
        ));
    }
    if let Some((name, value)) = &a.scope {
        req = req.add_extra_param(*name, value.clone());
    }
    for (k, v) in &a.extra {
        req = req.add_extra_param(*k, *v);
    }
    Ok(req.url().0.into())
}

/// RFC 8628 §3.1: asks for a device code at `url` (scope as the provider joins them).
pub async fn device_authorization(
    http: &Http,
    url: &str,
    creds: Creds<'_>,
    scope: Option<String>,
) -> Result<StandardDeviceAuthorizationResponse, FetchError> {
    crate::config::check_endpoint_url(url).map_err(FetchError::permanent)?;
    let (base, signer) = client(creds)?;
    let c = base.set_device_authorization_url(
        DeviceAuthorizationUrl::new(url.to_string())
            .map_err(bad_url("device authorization endpoint", url))?,
    );
    let hook = Hook::new(http, "device authorization", false);
    let mut req = c.exchange_device_code();
    if let Some(s) = scope {
        req = req.add_extra_param("scope", s);
    }
    for (k, v) in assertion(signer.as_ref(), creds.id, url)? {
        req = req.add_extra_param(k, v);
    }
    let url = redact_url(url, true);
    match req.request_async(&hook).await {
        Ok(d) => Ok(d),
        Err(RequestTokenError::Request(e)) => Err(e),
        Err(RequestTokenError::ServerResponse(e)) => Err(FetchError::permanent(format!(
            "device authorization {url} refused: {}",
            super::reply::describe(&typed(&e))
        ))),
        Err(RequestTokenError::Parse(e, _)) => Err(FetchError::permanent(format!(
            "device authorization {url}: unexpected reply ({})",
            crate::sanitize::escape(&e.to_string())
        ))),
        Err(RequestTokenError::Other(_)) => Err(FetchError::permanent(format!(
            "device authorization {url} refused: HTTP {}",
            hook.status()
        ))),
    }
}

/// RFC 8628 §3.4: polls `token_url` until the user approved, denied, or `details` expired.
/// The crate keeps the interval (and adds 5 s on `slow_down`); a transient failure backs off
/// and polling goes on.
pub async fn device_token(
    http: &Http,
    token_url: &str,
    creds: Creds<'_>,
    details: &StandardDeviceAuthorizationResponse,
    style: &Style,
) -> Result<TokenReply, FetchError> {
    let (c, signer) = token_client(creds, token_url)?;
    let hook = Hook::new(http, "token endpoint", style.json_body);
    let mut req = c
        .exchange_device_access_token(details)
        .set_max_backoff_interval(Duration::from_secs(60));
    for (k, v) in assertion(signer.as_ref(), creds.id, token_url)? {
        req = req.add_extra_param(k, v);
    }
    let r = req
        .request_async(&hook, tokio::time::sleep, Some(details.expires_in()))
        .await;
    match r {
        Err(RequestTokenError::ServerResponse(e))
            if *e.error() == DeviceCodeErrorResponseType::ExpiredToken =>
        {
            Err(FetchError::permanent(
                "the device code expired before the login was approved; run the login again",
            ))
        }
        Err(RequestTokenError::ServerResponse(e))
            if *e.error() == DeviceCodeErrorResponseType::AccessDenied =>
        {
            Err(FetchError::permanent(format!(
                "token endpoint {}: the login was denied ({}); run the login again to retry",
                redact_url(token_url, true),
                super::reply::describe(&typed(&e))
            )))
        }
        r => judge(r, token_url, hook.status(), false, style.nesting.as_deref()),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn the_authorization_url_carries_state_pkce_scope_and_extras() {
        let u = authorize_url(
            "cid",
            &Authorization {
                authorize_url: "https://idp.example/authorize?tenant=t",
                redirect_uri: "http://127.0.0.1:8765/callback",
                state: "S1",
                // RFC 7636 appendix B.
                pkce_verifier: Some("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
                scope: Some(("user_scope", "a,b".into())),
                extra: vec![("prompt", "consent")],
            },
        )
        .unwrap();
        let u = url::Url::parse(&u).unwrap();
        assert_eq!(u.host_str(), Some("idp.example"));
        let q: std::collections::BTreeMap<String, String> = u.query_pairs().into_owned().collect();
        let want = [
            ("tenant", "t"),
            ("response_type", "code"),
            ("client_id", "cid"),
            ("state", "S1"),
            (
                "code_challenge",
                "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            ),
            ("code_challenge_method", "S256"),
            ("redirect_uri", "http://127.0.0.1:8765/callback"),
            ("user_scope", "a,b"),
            ("prompt", "consent"),
        ];
        assert_eq!(
            q,
            want.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        );
    }

    #[test]
    fn a_raw_reply_hides_its_tokens() {
        let r: RawReply = serde_json::from_str(r#"{"access_token":"SECRET","x":1}"#).unwrap();
        assert_eq!(r.access_token().secret(), "SECRET");
        assert!(!format!("{r:?}").contains("SECRET"));
        assert_eq!(serde_json::to_value(&r).unwrap()["x"], 1);
    }

    /// A one-connection-per-reply HTTP server on 127.0.0.1: answers each request with the
    /// next of `replies` and hands back what it received (head and body).
    pub(crate) async fn server(
        replies: Vec<String>,
    ) -> (String, tokio::task::JoinHandle<Vec<(String, Vec<u8>)>>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://127.0.0.1:{}/token", l.local_addr().unwrap().port());
        let task = tokio::spawn(async move {
            let mut seen = Vec::new();
            for reply in replies {
                let (mut c, _) = l.accept().await.unwrap();
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let (head, want) = loop {
                    let n = c.read(&mut chunk).await.unwrap();
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_string();
                        let len = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap())
                            })
                            .unwrap_or(0);
                        buf.drain(..end + 4);
                        break (head, len);
                    }
                };
                while buf.len() < want {
                    let n = c.read(&mut chunk).await.unwrap();
                    buf.extend_from_slice(&chunk[..n]);
                }
                c.write_all(reply.as_bytes()).await.unwrap();
                seen.push((head, buf));
            }
            seen
        });
        (url, task)
    }

    pub(crate) fn reply(status: &str, extra: &str, body: &str) -> String {
        format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n{extra}content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
    }

    fn http(attempts: u32) -> Http {
        Http::new(crate::config::HttpPolicy {
            attempts,
            initial_backoff_ms: 1,
            max_backoff_ms: 1,
            ..Default::default()
        })
        .unwrap()
    }

    const CREDS: Creds<'static> = Creds {
        id: "cid",
        secret: Some("s:cret"),
        auth: ClientAuth::Basic,
    };

    #[test]
    fn basic_auth_encodes_per_rfc() {
        use base64::Engine;
        let h = basic_auth("a b", "p:w&");
        let raw = base64::engine::general_purpose::STANDARD
            .decode(h.strip_prefix("Basic ").unwrap())
            .unwrap();
        assert_eq!(String::from_utf8(raw).unwrap(), "a+b:p%3Aw%26");
    }

    /// The hand-written requests authenticate the client as the crate does for the grants.
    #[test]
    fn client_authentication_by_method() {
        let a = client_authentication(CREDS, "https://as.example/revoke").unwrap();
        // The header the crate sends for CREDS (see `a_json_body_and_a_nested_reply`).
        assert_eq!(
            a.authorization
                .as_deref()
                .map(str::to_ascii_lowercase)
                .as_deref(),
            Some("basic y2lkonmlm0fjcmv0")
        );
        assert!(a.form.is_empty());
        let post = Creds {
            auth: ClientAuth::Post,
            ..CREDS
        };
        let a = client_authentication(post, "u").unwrap();
        assert_eq!(a.authorization, None);
        assert_eq!(
            a.form,
            vec![
                ("client_id".to_string(), "cid".to_string()),
                ("client_secret".to_string(), "s:cret".to_string())
            ]
        );
        let public = Creds {
            secret: None,
            ..CREDS
        };
        let a = client_authentication(public, "u").unwrap();
        assert_eq!(a.authorization, None);
        assert_eq!(a.form, vec![("client_id".to_string(), "cid".to_string())]);
    }

    /// Notion's JSON body and Slack's nested user token, through the crate and the hook.
    #[tokio::test]
    async fn a_json_body_and_a_nested_reply() {
        let (url, seen) = server(vec![reply(
            "200 OK",
            "",
            r#"{"ok":true,"authed_user":{"access_token":"xoxp-1","token_type":"user"}}"#,
        )])
        .await;
        let style = Style {
            json_body: true,
            nesting: Some("authed_user".into()),
        };
        let g = Grant::Refresh {
            refresh_token: "R1",
            extra: vec![("resource", "https://mcp.example/".into())],
        };
        let r = token(&http(1), &url, CREDS, &g, &style).await.unwrap();
        assert_eq!(r.access_token.expose(), "xoxp-1");
        let (head, body) = seen.await.unwrap().remove(0);
        let head = head.to_ascii_lowercase();
        assert!(head.contains("content-type: application/json"), "{head}");
        // RFC 6749 §2.3.1: both halves form-encoded before Basic.
        assert!(
            head.contains("authorization: basic y2lkonmlm0fjcmv0"),
            "{head}"
        );
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"grant_type": "refresh_token", "refresh_token": "R1", "resource": "https://mcp.example/"})
        );
    }

    /// The classification the daemon relies on: 503 with Retry-After is transient and keeps
    /// the delay; a typed `invalid_grant` on a refresh means a new login is needed.
    #[tokio::test]
    async fn transient_then_typed_errors() {
        let (url, _seen) = server(vec![
            reply("503 Service Unavailable", "retry-after: 7\r\n", "{}"),
            reply(
                "400 Bad Request",
                "",
                r#"{"error":"invalid_grant","error_description":"gone"}"#,
            ),
        ])
        .await;
        let g = Grant::Refresh {
            refresh_token: "R1",
            extra: Vec::new(),
        };
        let e = token(&http(1), &url, CREDS, &g, &Style::default())
            .await
            .unwrap_err();
        assert_eq!(e.kind, FailureKind::Transient);
        assert_eq!(e.retry_after_ms, Some(7000));
        let e = token(&http(1), &url, CREDS, &g, &Style::default())
            .await
            .unwrap_err();
        assert_eq!(e.kind, FailureKind::ReauthRequired);
        assert_eq!(
            e.message,
            format!(
                "token endpoint {url} refused (HTTP 400): invalid_grant (gone); the grant is no longer valid"
            )
        );
    }
}
