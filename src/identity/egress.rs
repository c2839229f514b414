//! Egress (3-legged) token calls: the code exchange, the refresh grant, the device
//! authorization grant (RFC 8628), and provider extras (Atlassian's cloud id). The
//! interactive part of a login (browser, loopback listener) is in `login`.

use std::time::Duration;

use serde::Deserialize;

use super::oauth::{Http, Style, token_request_styled};
use super::reply::TokenReply;
use super::{FailureKind, FetchError};
use crate::config::{EgressConfig, IdentityConfig};
use crate::providers::TokenBody;

fn egress(id: &IdentityConfig) -> Result<&EgressConfig, FetchError> {
    id.egress()
        .ok_or_else(|| FetchError::permanent(format!("`{}` is not an egress identity", id.name)))
}

fn style(eg: &EgressConfig) -> Style {
    Style {
        json_body: eg.def.token_body == TokenBody::Json,
        nesting: eg.def.reply_nesting.clone(),
    }
}

async fn grant(
    http: &Http,
    id: &IdentityConfig,
    form: Vec<(&'static str, String)>,
    refresh: bool,
) -> Result<TokenReply, FetchError> {
    let eg = egress(id)?;
    token_request_styled(
        http,
        &eg.def.token_url,
        form,
        &id.client_id,
        id.client_secret.as_ref().map(|s| s.expose()),
        id.client_auth,
        refresh,
        &style(eg),
    )
    .await
}

/// `id` with its provider's endpoints filled in from the issuer's discovery document, for
/// user-defined providers that give only an `issuer`. Others are returned as they are.
pub async fn discovered(http: &Http, id: &IdentityConfig) -> Result<IdentityConfig, FetchError> {
    let eg = egress(id)?;
    if !eg.def.authorize_url.is_empty() && !eg.def.token_url.is_empty() {
        return Ok(id.clone());
    }
    let Some(issuer) = eg.def.issuer.clone() else {
        return Err(FetchError::permanent(format!(
            "provider `{}` has no token_url and no issuer; give both endpoints or an issuer",
            eg.provider
        )));
    };
    let url = crate::config::build::issuer_discovery_url(&issuer);
    let doc = super::oauth::discovery_document(http, &url).await?;
    let field = |k: &str| -> Result<Option<String>, FetchError> {
        match doc.get(k).and_then(|v| v.as_str()) {
            None => Ok(None),
            Some(u) => {
                crate::config::check_endpoint_url(u).map_err(|m| {
                    FetchError::permanent(format!("discovery document {url}: {k} {m}"))
                })?;
                Ok(Some(u.to_string()))
            }
        }
    };
    let mut out = id.clone();
    let def = &mut out.egress_mut().expect("egress").def;
    for (k, slot) in [
        ("authorization_endpoint", &mut def.authorize_url),
        ("token_endpoint", &mut def.token_url),
    ] {
        if slot.is_empty() {
            *slot = field(k)?.ok_or_else(|| {
                FetchError::permanent(format!(
                    "discovery document {url} lists no {k}; give it in the provider definition"
                ))
            })?;
        }
    }
    if def.revocation_url.is_none() {
        def.revocation_url = field("revocation_endpoint")?;
    }
    if def.device_authorization_url.is_none() {
        def.device_authorization_url = field("device_authorization_endpoint")?;
    }
    Ok(out)
}

/// RFC 8707: the `resource` parameter of every request of a login whose token is for one
/// resource (an MCP server's canonical URL): the authorization request, the code exchange
/// and each refresh. Other providers get none.
pub fn resource_param(id: &IdentityConfig) -> Option<(&'static str, String)> {
    id.resource().map(|r| ("resource", r.to_string()))
}

/// Trades an authorization code (and the PKCE verifier) for tokens.
pub async fn exchange_code(
    http: &Http,
    id: &IdentityConfig,
    code: &str,
    verifier: Option<&str>,
) -> Result<TokenReply, FetchError> {
    let eg = egress(id)?;
    let mut form = vec![
        ("grant_type", "authorization_code".to_string()),
        ("code", code.to_string()),
        ("redirect_uri", eg.redirect_uri.clone()),
    ];
    if let Some(v) = verifier {
        form.push(("code_verifier", v.to_string()));
    }
    form.extend(resource_param(id));
    grant(http, id, form, false).await
}

/// The refresh_token grant. `ReauthRequired` means the grant is gone.
pub async fn refresh(
    http: &Http,
    id: &IdentityConfig,
    refresh_token: &str,
) -> Result<TokenReply, FetchError> {
    let mut form = vec![
        ("grant_type", "refresh_token".to_string()),
        ("refresh_token", refresh_token.to_string()),
    ];
    form.extend(resource_param(id));
    grant(http, id, form, true).await
}

/// The start of a device login: what the user must enter, and where.
#[derive(Clone, Debug, Deserialize)]
pub struct DeviceStart {
    /// A bearer secret until used.
    pub device_code: crate::secret::Secret,
    pub user_code: String,
    #[serde(alias = "verification_url")]
    pub verification_uri: String,
    pub verification_uri_complete: Option<String>,
    pub expires_in: u64,
    #[serde(default = "default_interval")]
    pub interval: u64,
}

fn default_interval() -> u64 {
    5
}

impl std::fmt::Display for DeviceStart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The device code is a bearer secret until used; show only what the user needs.
        write!(f, "code {} at {}", self.user_code, self.verification_uri)
    }
}

/// A URL as the parser writes it back: control characters percent-encoded or dropped.
fn normal_url(u: &str) -> String {
    reqwest::Url::parse(u).map_or_else(|_| String::new(), String::from)
}

pub async fn device_start(http: &Http, id: &IdentityConfig) -> Result<DeviceStart, FetchError> {
    let eg = egress(id)?;
    let url = eg.def.device_authorization_url.as_deref().ok_or_else(|| {
        FetchError::permanent(format!(
            "provider `{}` offers no device login; log in with the browser",
            eg.provider
        ))
    })?;
    crate::config::check_endpoint_url(url).map_err(FetchError::permanent)?;
    let mut form = Vec::new();
    if !id.scopes.is_empty() {
        form.push(("scope", id.scopes.join(&eg.def.scope_separator)));
    }
    // Client authentication as at the token endpoint.
    let mut basic = None;
    match (&id.client_secret, id.client_auth) {
        (Some(s), crate::config::ClientAuth::Basic) => basic = Some(s.expose().to_string()),
        (Some(s), crate::config::ClientAuth::Post) => {
            form.push(("client_id", id.client_id.clone()));
            form.push(("client_secret", s.expose().to_string()));
        }
        // Provider logins never sign assertions (the config offers it to M2M only).
        (Some(_), crate::config::ClientAuth::PrivateKeyJwt) | (None, _) => {
            form.push(("client_id", id.client_id.clone()))
        }
    }
    let mut req = http
        .client_for(url)
        .map_err(FetchError::permanent)?
        .post(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .form(&form);
    if let Some(secret) = &basic {
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        req = req.basic_auth(enc(&id.client_id), Some(enc(secret)));
    }
    let resp = req
        .send()
        .await
        .map_err(|e| FetchError::transient(format!("device authorization {url}: {e}")))?;
    let status = resp.status().as_u16();
    let body = super::oauth::read_capped(resp, super::oauth::REPLY_MAX)
        .await
        .map_err(|m| FetchError::transient(format!("device authorization {url}: {m}")))?;
    if !(200..300).contains(&status) {
        let why = super::reply::parse_error(&body)
            .map(|e| super::reply::describe(&e))
            .unwrap_or_else(|| format!("HTTP {status}"));
        return Err(FetchError::permanent(format!(
            "device authorization {url} refused: {why}"
        )));
    }
    let mut start: DeviceStart = serde_json::from_slice(&body).map_err(|e| {
        FetchError::permanent(format!(
            "device authorization {url}: unexpected reply ({e})"
        ))
    })?;
    // What the user is sent to must be a web page of the provider's, not anything else.
    crate::config::check_endpoint_url(&start.verification_uri).map_err(|m| {
        FetchError::permanent(format!("device authorization {url}: verification_uri {m}"))
    })?;
    if let Some(c) = &start.verification_uri_complete
        && crate::config::check_endpoint_url(c).is_err()
    {
        start.verification_uri_complete = None;
    }
    // Shown to the user: the URLs as the parser writes them (controls percent-encoded),
    // the code escaped and short.
    start.verification_uri = normal_url(&start.verification_uri);
    start.verification_uri_complete = start.verification_uri_complete.as_deref().map(normal_url);
    start.user_code =
        crate::sanitize::escape(&start.user_code.chars().take(64).collect::<String>());
    // Bounds on what the provider asks for: at most an hour, polling at most every minute.
    start.expires_in = start.expires_in.clamp(1, 3600);
    start.interval = start.interval.clamp(1, 60);
    Ok(start)
}

/// Polls the token endpoint until the user has approved, denied, or the code expired.
pub async fn device_poll(
    http: &Http,
    id: &IdentityConfig,
    start: &DeviceStart,
) -> Result<TokenReply, FetchError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(start.expires_in.max(1));
    let mut interval = start.interval.max(1);
    loop {
        tokio::time::sleep(Duration::from_secs(interval)).await;
        let form = vec![
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:device_code".to_string(),
            ),
            ("device_code", start.device_code.expose().to_string()),
        ];
        match grant(http, id, form, false).await {
            Ok(r) => return Ok(r),
            Err(e) if e.message.contains("authorization_pending") => {}
            Err(e) if e.message.contains("slow_down") => interval = (interval + 5).min(60),
            Err(e) if e.kind == FailureKind::Transient => {}
            Err(e) => return Err(e),
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(FetchError::permanent(
                "the device code expired before the login was approved; run the login again",
            ));
        }
    }
}

/// One entry of Atlassian's accessible-resources list.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Site {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub url: String,
}

/// The site to use: the one named by `wanted` (name, URL or host), else the only or first.
pub fn choose_site<'a>(
    sites: &'a [Site],
    wanted: Option<&str>,
) -> Result<Option<&'a Site>, String> {
    match wanted {
        None => Ok(sites.first()),
        Some(w) => {
            let w = w.trim_end_matches('/');
            sites
                .iter()
                .find(|s| {
                    s.name.eq_ignore_ascii_case(w)
                        || s.url.trim_end_matches('/').eq_ignore_ascii_case(w)
                        || s.url.ends_with(&format!("//{w}"))
                        || s.id == w
                })
                .map(Some)
                .ok_or_else(|| {
                    let names: Vec<&str> = sites.iter().map(|s| s.url.as_str()).collect();
                    crate::sanitize::escape(&format!(
                        "no site `{w}` among those this login can reach ({})",
                        names.join(", ")
                    ))
                })
        }
    }
}

/// Atlassian's cloud id for the token, chosen by `cloud_site`.
pub async fn fetch_cloud_id(
    http: &Http,
    url: &str,
    access_token: &str,
    wanted: Option<&str>,
) -> Result<Option<String>, FetchError> {
    crate::config::check_endpoint_url(url).map_err(FetchError::permanent)?;
    let resp = http
        .client_for(url)
        .map_err(FetchError::permanent)?
        .get(url)
        .bearer_auth(access_token)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| FetchError::transient(format!("{url}: {e}")))?;
    let status = resp.status().as_u16();
    if !(200..300).contains(&status) {
        return Err(FetchError::transient(format!(
            "{url} answered HTTP {status}"
        )));
    }
    let body = super::oauth::read_capped(resp, super::oauth::REPLY_MAX)
        .await
        .map_err(|m| FetchError::transient(format!("{url}: {m}")))?;
    let sites: Vec<Site> = serde_json::from_slice(&body)
        .map_err(|e| FetchError::permanent(format!("{url}: unexpected reply ({e})")))?;
    let id = choose_site(&sites, wanted)
        .map(|s| s.map(|s| s.id.clone()))
        .map_err(FetchError::permanent)?;
    // The id goes into server URLs: letters, digits and dashes only (it is a UUID).
    if let Some(i) = &id
        && (i.is_empty() || !i.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
    {
        return Err(FetchError::permanent(format!(
            "{url} answered a site id that is not a plain identifier; refused"
        )));
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn site_choice() {
        let sites = vec![
            Site {
                id: "1".into(),
                name: "acme".into(),
                url: "https://acme.atlassian.net".into(),
            },
            Site {
                id: "2".into(),
                name: "beta".into(),
                url: "https://beta.atlassian.net".into(),
            },
        ];
        assert_eq!(choose_site(&sites, None).unwrap().unwrap().id, "1");
        assert_eq!(choose_site(&sites, Some("beta")).unwrap().unwrap().id, "2");
        assert_eq!(
            choose_site(&sites, Some("https://beta.atlassian.net/"))
                .unwrap()
                .unwrap()
                .id,
            "2"
        );
        assert_eq!(
            choose_site(&sites, Some("beta.atlassian.net"))
                .unwrap()
                .unwrap()
                .id,
            "2"
        );
        assert!(
            choose_site(&sites, Some("gamma"))
                .unwrap_err()
                .contains("https://acme.atlassian.net")
        );
        assert_eq!(choose_site(&[], None).unwrap(), None);
    }
}
