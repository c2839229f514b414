//! Cognito service accounts through the Cognito user-pool API: sign-in with
//! USER_PASSWORD_AUTH (+ SECRET_HASH), refresh with REFRESH_TOKEN_AUTH (or
//! GetTokensFromRefreshToken when the app client rotates refresh tokens), and sign-in again
//! when the refresh token is gone. The calls are unauthenticated: no AWS credentials are
//! read or needed. Error codes become messages that say what to do.

use std::time::Duration;

use aws_sdk_cognitoidentityprovider as cip;
use base64::Engine;
use cip::config::retry::RetryConfig;
use cip::config::timeout::TimeoutConfig;
use cip::config::{BehaviorVersion, Region};
use cip::error::{ProvideErrorMetadata, SdkError};
use cip::types::{AuthFlowType, AuthenticationResultType};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tracing::{info, warn};

use super::reply::TokenReply;
use super::{FailureKind, FetchError};
use crate::config::{CognitoPassword, HttpPolicy, IdentityConfig};
use crate::identity::jwt;
use crate::secret::Secret;
use crate::store::TokenRecord;

/// base64(HMAC-SHA256(key = client secret, message = username + client id)).
pub fn secret_hash(username: &str, client_id: &str, client_secret: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(client_secret.as_bytes())
        .expect("HMAC takes any key length");
    mac.update(username.as_bytes());
    mac.update(client_id.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The username a refresh's SECRET_HASH must use: the access token's `username` claim (in
/// pools that sign in by email alias it is the internal name, not the email), else the
/// configured one.
pub fn canonical_username(access_token: &str, configured: &str) -> String {
    jwt::claims(access_token)
        .and_then(|c| {
            c.get("username")
                .and_then(|v| v.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| configured.to_string())
}

/// The call a Cognito error came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    SignIn,
    Refresh,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Step::SignIn => "sign-in",
            Step::Refresh => "refresh",
        })
    }
}

/// Turns a Cognito error code and message into what the user must do.
pub fn classify(
    code: Option<&str>,
    message: Option<&str>,
    username: &str,
    during: Step,
) -> FetchError {
    // Code and message only, escaped and shortened: they come from the server.
    let msg: String = message.unwrap_or("").chars().take(300).collect();
    let msg = crate::sanitize::escape(&msg);
    let msg = msg.as_str();
    let code: Option<String> =
        code.map(|c| crate::sanitize::escape(&c.chars().take(80).collect::<String>()));
    let code = code.as_deref();
    let text = |what: String| format!("Cognito {during} for `{username}` failed: {what}");
    let permanent = |what: String| FetchError::permanent(text(what));
    match code.unwrap_or("") {
        "NotAuthorizedException" if msg.contains("secret hash") => permanent(format!(
            "{msg}; check client_secret (the app client's secret) and client_id"
        )),
        "NotAuthorizedException" if msg.contains("disabled") => {
            permanent(format!("{msg}; enable the user in the pool"))
        }
        "NotAuthorizedException" if during == Step::Refresh => {
            permanent(format!("{msg}; the refresh token is no longer accepted"))
        }
        "NotAuthorizedException" => permanent(format!(
            "{msg} (wrong username or password, or a wrong client secret); check username, password and client_secret"
        )),
        "UserNotFoundException" => permanent(format!(
            "{msg}; check `username` (usernames are case-sensitive) and the pool"
        )),
        "UserNotConfirmedException" => permanent(format!(
            "{msg}; confirm the user (aws cognito-idp admin-confirm-sign-up)"
        )),
        "PasswordResetRequiredException" => permanent(format!(
            "{msg}; the password must be reset (aws cognito-idp admin-set-user-password --permanent)"
        )),
        "InvalidParameterException" => permanent(format!(
            "{msg}; enable ALLOW_USER_PASSWORD_AUTH and ALLOW_REFRESH_TOKEN_AUTH on the app client"
        )),
        "ResourceNotFoundException" => {
            permanent(format!("{msg}; check client_id, region and user_pool_id"))
        }
        "InvalidUserPoolConfigurationException" => {
            permanent(format!("{msg}; the pool does not allow this sign-in"))
        }
        "TooManyRequestsException"
        | "LimitExceededException"
        | "InternalErrorException"
        | "ServiceUnavailable"
        | "ThrottlingException" => FetchError::transient(text(format!("{msg} (will retry)"))),
        "" => FetchError::transient(text(if msg.is_empty() {
            "no error code in the reply".into()
        } else {
            msg.to_string()
        })),
        other => permanent(format!("{other}: {msg}")),
    }
}

/// Does a refresh error say the app client rotates refresh tokens (so the refresh must go
/// through GetTokensFromRefreshToken)? Cognito says so only in the message (the code is a
/// plain NotAuthorizedException), so the message is what is read.
pub fn says_rotation(message: &str) -> bool {
    message.to_ascii_lowercase().contains("rotation")
}

/// What to do about an authentication challenge: a daemon can answer none of them.
pub fn challenge_error(challenge: &str, username: &str) -> FetchError {
    let hint = match challenge {
        "NEW_PASSWORD_REQUIRED" => {
            "the user still has a temporary password; set a permanent one (aws cognito-idp admin-set-user-password --permanent)"
        }
        "SMS_MFA" | "SOFTWARE_TOKEN_MFA" | "EMAIL_OTP" | "MFA_SETUP" | "SELECT_MFA_TYPE" => {
            "a service account cannot do multi-factor authentication; turn MFA off for this user or pool"
        }
        _ => {
            "a service account cannot answer challenges; change the user's settings so sign-in needs none"
        }
    };
    FetchError::permanent(format!(
        "Cognito sign-in for `{username}` asks for the {challenge} challenge, which a daemon cannot answer: {hint}"
    ))
}

/// The Cognito client, configured as AWS tools configure it (aws-config: `AWS_PROFILE`,
/// the shared config file's `endpoint_url` and `services` sections, `AWS_ENDPOINT_URL*`)
/// but without credentials (the calls are unauthenticated), with our HTTP client, our
/// timeouts and no SDK retries (our loop retries, as for every provider). The region is
/// the configured one: the token's binding records it when the config is read. An
/// endpoint from the AWS configuration obeys the rule every endpoint does: https, or http
/// on loopback only (the password goes to it).
async fn client(
    id: &IdentityConfig,
    region: &str,
    c: &CognitoPassword,
    policy: &HttpPolicy,
    proxy: &crate::identity::proxy::ProxyEnv,
) -> Result<cip::Client, FetchError> {
    let t = Duration::from_millis(policy.timeout_ms);
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .no_credentials()
        .region(Region::new(region.to_string()))
        .http_client(sdk_http::client(proxy))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(t.min(Duration::from_secs(10)))
                .read_timeout(t)
                .operation_attempt_timeout(t)
                .operation_timeout(t)
                .build(),
        )
        .retry_config(RetryConfig::disabled())
        .load()
        .await;
    let mut b = cip::config::Builder::from(&sdk);
    let endpoint = match &c.endpoint_url {
        Some(ep) => Some(ep.clone()),
        None => aws_endpoint(&sdk),
    };
    tracing::debug!(
        identity = %id.name,
        endpoint = %endpoint.as_deref().map_or("none".into(), |e| crate::sanitize::redact_url(e, false)),
        "Cognito endpoint (none: the regional one)"
    );
    if let Some(ep) = endpoint {
        crate::config::check_endpoint_url(&ep).map_err(|m| {
            FetchError::permanent(format!(
                "the Cognito endpoint from the AWS configuration (AWS_PROFILE, ~/.aws/config): {m}; set `endpoint_url` on identity `{}`",
                id.name
            ))
        })?;
        // The SDK ignores a query, and says so in a warning that quotes it (a query may
        // carry a secret): it gets the endpoint without one.
        let ep = match reqwest::Url::parse(&ep) {
            Ok(mut u) if u.query().is_some() => {
                u.set_query(None);
                u.to_string()
            }
            _ => ep,
        };
        b = b.endpoint_url(ep);
    }
    Ok(cip::Client::from_conf(b.build()))
}

/// The Cognito endpoint the AWS configuration names, as the SDK itself would pick it: the
/// service's own setting (`AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER`, a profile's
/// `services` section), else the global one (`AWS_ENDPOINT_URL`, a profile's
/// `endpoint_url`). `None`: the SDK's regional endpoint.
fn aws_endpoint(sdk: &aws_config::SdkConfig) -> Option<String> {
    let key = aws_types::service_config::ServiceConfigKey::builder()
        .service_id("Cognito Identity Provider")
        .env("AWS_ENDPOINT_URL")
        .profile("endpoint_url")
        .build()
        .ok()?;
    sdk.service_config()
        .and_then(|s| s.load_config(key))
        .or_else(|| sdk.endpoint_url().map(str::to_string))
        .filter(|u| !u.trim().is_empty())
}

/// The SDK's HTTP client, built like its default (hyper, rustls with aws-lc) but with our
/// rules: no proxy for plain http (which goes only to loopback), `HTTPS_PROXY`/`ALL_PROXY`
/// (minus `NO_PROXY`) for https only, and every reply read with the 1 MiB cap. The SDK's
/// own default follows `HTTP_PROXY` for a plain-http endpoint and reads replies unbounded.
mod sdk_http {
    use aws_smithy_http_client::proxy::ProxyConfig;
    use aws_smithy_http_client::{Builder, ConnectorBuilder, tls};
    use aws_smithy_runtime_api::client::http::{
        HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
        SharedHttpConnector,
    };
    use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
    use aws_smithy_runtime_api::client::result::ConnectorError;
    use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
    use aws_smithy_types::body::SdkBody;
    use http_body_util::BodyExt;

    use crate::identity::oauth::REPLY_MAX;
    use crate::identity::proxy::ProxyEnv;

    pub const TOO_BIG: &str = "the reply is larger than 1024 KiB; refused";

    pub fn client(env: &ProxyEnv) -> SharedHttpClient {
        let proxy = match env.https.as_deref().map(ProxyConfig::https) {
            Some(Ok(c)) => match &env.no_proxy {
                Some(n) => c.no_proxy(n),
                None => c,
            },
            Some(Err(_)) => {
                tracing::warn!("{}; not using it", crate::identity::proxy::INVALID);
                ProxyConfig::disabled()
            }
            None => ProxyConfig::disabled(),
        };
        let inner = Builder::new().build_with_connector_fn(move |settings, components| {
            let mut cb = ConnectorBuilder::default().tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::AwsLc,
            ));
            cb.set_connector_settings(settings.cloned());
            if let Some(c) = components {
                cb.set_sleep_impl(c.sleep_impl());
            }
            cb.set_proxy_config(Some(proxy.clone()));
            cb.build()
        });
        SharedHttpClient::new(Capped(inner))
    }

    #[derive(Debug)]
    struct Capped(SharedHttpClient);

    impl HttpClient for Capped {
        fn http_connector(
            &self,
            settings: &HttpConnectorSettings,
            components: &RuntimeComponents,
        ) -> SharedHttpConnector {
            SharedHttpConnector::new(CappedConnector(self.0.http_connector(settings, components)))
        }
    }

    #[derive(Debug)]
    struct CappedConnector(SharedHttpConnector);

    impl HttpConnector for CappedConnector {
        fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
            let fut = self.0.call(request);
            HttpConnectorFuture::new(async move {
                let mut resp = fut.await?;
                let too_big = || ConnectorError::other(TOO_BIG.into(), None);
                if resp
                    .headers()
                    .get("content-length")
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .is_some_and(|n| n > REPLY_MAX as u64)
                {
                    return Err(too_big());
                }
                let mut body = resp.take_body();
                let mut buf = Vec::new();
                while let Some(frame) = body.frame().await {
                    let frame = frame.map_err(ConnectorError::io)?;
                    if let Ok(data) = frame.into_data() {
                        if buf.len() + data.len() > REPLY_MAX {
                            return Err(too_big());
                        }
                        buf.extend_from_slice(&data);
                    }
                }
                *resp.body_mut() = SdkBody::from(buf);
                Ok(resp)
            })
        }
    }
}

fn sdk_error<E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug>(
    e: SdkError<E, R>,
    username: &str,
    during: Step,
) -> FetchError {
    match e {
        SdkError::ServiceError(se) => {
            let err = se.into_err();
            classify(err.code(), err.message(), username, during)
        }
        SdkError::TimeoutError(_) => {
            FetchError::transient(format!("Cognito {during} for `{username}`: timed out"))
        }
        SdkError::DispatchFailure(d) => FetchError::transient(format!(
            "Cognito {during} for `{username}`: {}",
            if d.is_timeout() {
                "timed out"
            } else if d.is_other() {
                // Our own cap is the one "other" connector error.
                sdk_http::TOO_BIG
            } else {
                "could not connect"
            }
        )),
        // Never the SDK's own rendering: a reply it could not parse is kept raw inside
        // the error, tokens included. Only what kind of failure it was.
        SdkError::ResponseError(_) => FetchError::transient(format!(
            "Cognito {during} for `{username}`: the reply could not be read (not a Cognito API reply); check endpoint_url, or retry later"
        )),
        SdkError::ConstructionFailure(_) => FetchError::permanent(format!(
            "Cognito {during} for `{username}`: the request could not be built; check region, client_id and username"
        )),
        _ => FetchError::transient(format!(
            "Cognito {during} for `{username}`: the call failed"
        )),
    }
}

fn reply_of(r: &AuthenticationResultType) -> Result<TokenReply, FetchError> {
    let access = r
        .access_token()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| FetchError::permanent("Cognito answered without an access token"))?;
    let unsafe_token = |what: &str| {
        FetchError::permanent(format!(
            "Cognito's {what} holds characters not allowed in an HTTP header; refused"
        ))
    };
    if !super::reply::header_safe(access) {
        return Err(unsafe_token("access token"));
    }
    if r.id_token().is_some_and(|t| !super::reply::header_safe(t)) {
        return Err(unsafe_token("ID token"));
    }
    Ok(TokenReply {
        access_token: Secret::new(access),
        token_type: match r.token_type() {
            Some(t) if !t.eq_ignore_ascii_case("bearer") && !t.is_empty() => t.to_string(),
            _ => "Bearer".into(),
        },
        expires_in: Some(i64::from(r.expires_in())).filter(|&s| s > 0),
        refresh_token: r.refresh_token().filter(|t| !t.is_empty()).map(Secret::new),
        refresh_token_expires_in: None,
        scope: None,
        id_token: r.id_token().map(Secret::new),
    })
}

/// The tokens of a reply, or an error naming the step that got none.
fn tokens(r: Option<&AuthenticationResultType>, during: Step) -> Result<TokenReply, FetchError> {
    reply_of(r.ok_or_else(|| {
        FetchError::permanent(format!("Cognito answered the {during} without tokens"))
    })?)
}

/// InitiateAuth: the password sign-in (USER_PASSWORD_AUTH) or REFRESH_TOKEN_AUTH, with
/// SECRET_HASH when the app client has a secret.
async fn initiate(
    client: &cip::Client,
    id: &IdentityConfig,
    username: &str,
    flow: AuthFlowType,
    params: &[(&str, &str)],
    during: Step,
) -> Result<TokenReply, FetchError> {
    let mut req = client
        .initiate_auth()
        .client_id(&id.client_id)
        .auth_flow(flow);
    for (k, v) in params {
        req = req.auth_parameters(*k, *v);
    }
    if let Some(s) = &id.client_secret {
        req = req.auth_parameters(
            "SECRET_HASH",
            secret_hash(username, &id.client_id, s.expose()),
        );
    }
    let out = req
        .send()
        .await
        .map_err(|e| sdk_error(e, username, during))?;
    if during == Step::SignIn
        && let Some(ch) = out.challenge_name()
    {
        return Err(challenge_error(ch.as_str(), username));
    }
    tokens(out.authentication_result(), during)
}

async fn sign_in(
    client: &cip::Client,
    id: &IdentityConfig,
    c: &CognitoPassword,
) -> Result<TokenReply, FetchError> {
    let params = [
        ("USERNAME", c.username.as_str()),
        ("PASSWORD", c.password.expose()),
    ];
    initiate(
        client,
        id,
        &c.username,
        AuthFlowType::UserPasswordAuth,
        &params,
        Step::SignIn,
    )
    .await
}

/// One refresh: GetTokensFromRefreshToken for an app client that rotates refresh tokens,
/// else REFRESH_TOKEN_AUTH.
async fn refresh_once(
    client: &cip::Client,
    id: &IdentityConfig,
    username: &str,
    refresh: &str,
    rotation: bool,
) -> Result<TokenReply, FetchError> {
    if !rotation {
        let params = [("REFRESH_TOKEN", refresh)];
        return initiate(
            client,
            id,
            username,
            AuthFlowType::RefreshTokenAuth,
            &params,
            Step::Refresh,
        )
        .await;
    }
    let mut req = client
        .get_tokens_from_refresh_token()
        .client_id(&id.client_id)
        .refresh_token(refresh);
    if let Some(s) = &id.client_secret {
        req = req.client_secret(s.expose());
    }
    let out = req
        .send()
        .await
        .map_err(|e| sdk_error(e, username, Step::Refresh))?;
    tokens(out.authentication_result(), Step::Refresh)
}

/// Runs `f` with the HTTP policy's retries for transient failures.
async fn retrying<F, Fut>(policy: &HttpPolicy, what: &str, f: F) -> Result<TokenReply, FetchError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<TokenReply, FetchError>>,
{
    super::oauth::with_retries(policy, what, f).await
}

/// New tokens for a service account: refresh if a refresh token is stored, otherwise (or
/// when the refresh token is no longer accepted) sign in with the password.
pub async fn obtain(
    id: &IdentityConfig,
    region: &str,
    c: &CognitoPassword,
    existing: Option<&TokenRecord>,
    policy: &HttpPolicy,
    proxy: &crate::identity::proxy::ProxyEnv,
) -> Result<TokenReply, FetchError> {
    let client = client(id, region, c, policy, proxy).await?;
    if let Some(rec) = existing
        && let Some(rt) = &rec.refresh_token
    {
        let username = canonical_username(rec.access_token.expose(), &c.username);
        let rt = rt.expose().to_string();
        let refresh = |rotation| {
            retrying(policy, "cognito refresh", {
                let (client, username, rt) = (&client, &username, &rt);
                move || refresh_once(client, id, username, rt, rotation)
            })
        };
        let mut rotation = c.refresh_rotation;
        let mut result = refresh(rotation).await;
        if !rotation && matches!(&result, Err(e) if says_rotation(&e.message)) {
            info!(identity = %id.name, "the app client rotates refresh tokens; refreshing with GetTokensFromRefreshToken (set refresh_rotation: true)");
            rotation = true;
            result = refresh(rotation).await;
        }
        match result {
            Ok(mut reply) => {
                info!(identity = %id.name, rotation, "refreshed with the stored refresh token");
                // REFRESH_TOKEN_AUTH returns no refresh token: the stored one stays valid.
                if reply.refresh_token.is_none() && !rotation {
                    reply.refresh_token = Some(Secret::new(rt));
                }
                return Ok(reply);
            }
            Err(e) if e.kind == FailureKind::Transient => return Err(e),
            Err(e) => {
                warn!(identity = %id.name, error = %e.message, "refresh refused; signing in again with the password")
            }
        }
    }
    let reply = retrying(policy, "cognito sign-in", || sign_in(&client, id, c)).await?;
    info!(identity = %id.name, "signed in with the password");
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_hash_matches_the_documented_formula() {
        // base64(HMAC-SHA256("client-secret", "alice" + "client-id")), computed independently.
        assert_eq!(
            secret_hash("alice", "client-id", "client-secret"),
            "qROqM+PMKX09MK8ulDVm8LCWdCRqQQEUG9HcF+N7/S4="
        );
    }

    #[test]
    fn canonical_username_prefers_the_claim() {
        let payload =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"username":"7f1c-uuid"}"#);
        assert_eq!(
            canonical_username(&format!("h.{payload}.s"), "alice@example.com"),
            "7f1c-uuid"
        );
        assert_eq!(canonical_username("opaque", "alice"), "alice");
    }

    #[test]
    fn errors_say_what_to_do() {
        use FailureKind::{Permanent, Transient};
        // Code, message, step; the kind and the advice the error must carry, where given.
        type Case<'a> = (
            Option<&'a str>,
            Option<&'a str>,
            Step,
            Option<FailureKind>,
            Option<&'a str>,
        );
        let cases: [Case; 10] = [
            (
                Some("NotAuthorizedException"),
                Some("Incorrect username or password."),
                Step::SignIn,
                Some(Permanent),
                Some("check username, password and client_secret"),
            ),
            (
                Some("NotAuthorizedException"),
                Some("Unable to verify secret hash for client x"),
                Step::SignIn,
                None,
                Some("check client_secret"),
            ),
            (
                Some("NotAuthorizedException"),
                Some("Refresh Token has been revoked"),
                Step::Refresh,
                None,
                Some("no longer accepted"),
            ),
            (
                Some("UserNotFoundException"),
                Some("User does not exist."),
                Step::SignIn,
                None,
                Some("case-sensitive"),
            ),
            (
                Some("UserNotConfirmedException"),
                Some("x"),
                Step::SignIn,
                None,
                Some("admin-confirm-sign-up"),
            ),
            (
                Some("PasswordResetRequiredException"),
                Some("x"),
                Step::SignIn,
                None,
                Some("reset"),
            ),
            (
                Some("InvalidParameterException"),
                Some("x"),
                Step::SignIn,
                None,
                Some("ALLOW_USER_PASSWORD_AUTH"),
            ),
            (
                Some("TooManyRequestsException"),
                Some("slow down"),
                Step::SignIn,
                Some(Transient),
                None,
            ),
            (
                Some("InternalErrorException"),
                Some("x"),
                Step::Refresh,
                Some(Transient),
                None,
            ),
            (None, None, Step::SignIn, Some(Transient), None),
        ];
        for (code, msg, during, kind, advice) in cases {
            let e = classify(code, msg, "svc", during);
            if let Some(k) = kind {
                assert_eq!(e.kind, k, "{code:?} {msg:?}");
            }
            if let Some(a) = advice {
                assert!(e.message.contains(a), "{code:?} {msg:?}: {}", e.message);
            }
        }
        let ch = challenge_error("NEW_PASSWORD_REQUIRED", "svc");
        assert!(ch.message.contains("NEW_PASSWORD_REQUIRED") && ch.message.contains("--permanent"));
        assert!(
            challenge_error("SOFTWARE_TOKEN_MFA", "svc")
                .message
                .contains("MFA")
        );
        assert!(says_rotation(
            "Refresh token rotation is enabled for this client"
        ));
        assert!(!says_rotation("Refresh Token has been revoked"));
    }
}
