//! Egress (3-legged) token calls: the code exchange, the refresh grant, the device
//! authorization grant (RFC 8628), and provider extras (Atlassian's cloud id). The
//! interactive part of a login (browser, loopback listener) is in `login`.

use oauth2::StandardDeviceAuthorizationResponse;
use serde::Deserialize;

use super::FetchError;
use super::grant::{self, Creds, Grant};
use super::oauth::{Http, Style};
use super::reply::TokenReply;
use crate::config::{EgressConfig, Login, LoginBuf};
use crate::providers::TokenBody;

fn style(eg: &EgressConfig) -> Style {
    Style {
        json_body: eg.def.token_body == TokenBody::Json,
        nesting: eg.def.reply_nesting.clone(),
    }
}

async fn grant(http: &Http, l: Login<'_>, g: Grant<'_>) -> Result<TokenReply, FetchError> {
    grant::token(http, &l.eg.def.token_url, Creds::of(l.id), &g, &style(l.eg)).await
}

/// The login with its provider's endpoints filled in from the issuer's discovery document,
/// for user-defined providers that give only an `issuer`. Others are returned as they are.
pub async fn discovered(http: &Http, l: Login<'_>) -> Result<LoginBuf, FetchError> {
    let eg = l.eg;
    if !eg.def.authorize_url.is_empty() && !eg.def.token_url.is_empty() {
        return Ok(l.resolve(|_, _| {}));
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
    let mut def = eg.def.clone();
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
    Ok(l.resolve(|_, eg| eg.def = def))
}

/// RFC 8707: the `resource` parameter of every request of a login whose token is for one
/// resource (an MCP server's canonical URL): the authorization request, the code exchange
/// and each refresh. Other providers get none.
pub fn resource_param(l: Login<'_>) -> Option<(&'static str, String)> {
    l.eg.resource.as_ref().map(|r| ("resource", r.clone()))
}

/// Trades an authorization code (and the PKCE verifier) for tokens.
pub async fn exchange_code(
    http: &Http,
    l: Login<'_>,
    code: &str,
    verifier: Option<&str>,
) -> Result<TokenReply, FetchError> {
    let g = Grant::Code {
        code,
        verifier,
        redirect_uri: &l.eg.redirect_uri,
        extra: resource_param(l).into_iter().collect(),
    };
    grant(http, l, g).await
}

/// The refresh_token grant. `ReauthRequired` means the grant is gone.
pub async fn refresh(
    http: &Http,
    l: Login<'_>,
    refresh_token: &str,
) -> Result<TokenReply, FetchError> {
    let g = Grant::Refresh {
        refresh_token,
        extra: resource_param(l).into_iter().collect(),
    };
    grant(http, l, g).await
}

/// The start of a device login: what the user must enter, and where.
#[derive(Clone, Debug)]
pub struct DeviceStart {
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: Option<String>,
    pub expires_in: u64,
    pub interval: u64,
    /// The crate's record of it (the device code, a bearer secret until used, inside),
    /// with the bounds below applied.
    details: StandardDeviceAuthorizationResponse,
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

pub async fn device_start(http: &Http, l: Login<'_>) -> Result<DeviceStart, FetchError> {
    let (id, eg) = (l.id, l.eg);
    let url = eg.def.device_authorization_url.as_deref().ok_or_else(|| {
        FetchError::permanent(format!(
            "provider `{}` offers no device login; log in with the browser",
            eg.provider
        ))
    })?;
    let scope = (!id.scopes.is_empty()).then(|| id.scopes.join(&eg.def.scope_separator));
    let details = grant::device_authorization(http, url, Creds::of(id), scope).await?;
    // What the user is sent to must be a web page of the provider's, not anything else.
    let uri = details.verification_uri().as_str();
    crate::config::check_endpoint_url(uri).map_err(|m| {
        FetchError::permanent(format!("device authorization {url}: verification_uri {m}"))
    })?;
    let complete = details
        .verification_uri_complete()
        .map(|c| c.secret().as_str())
        .filter(|c| crate::config::check_endpoint_url(c).is_ok());
    // Bounds on what the provider asks for: at most an hour, polling at most every minute
    // and at least every second (a zero interval would poll without pause).
    let expires_in = details.expires_in().as_secs().clamp(1, 3600);
    let interval = details.interval().as_secs().clamp(1, 60);
    let mut v = serde_json::to_value(&details).expect("the device reply serializes");
    v["expires_in"] = expires_in.into();
    v["interval"] = interval.into();
    let bounded: StandardDeviceAuthorizationResponse = serde_json::from_value(v)
        .map_err(|e| FetchError::permanent(format!("device authorization {url}: {e}")))?;
    Ok(DeviceStart {
        // Shown to the user: the URLs as the parser writes them (controls percent-encoded),
        // the code escaped and short.
        verification_uri: normal_url(uri),
        verification_uri_complete: complete.map(normal_url),
        user_code: crate::sanitize::escape(
            &details
                .user_code()
                .secret()
                .chars()
                .take(64)
                .collect::<String>(),
        ),
        expires_in,
        interval,
        details: bounded,
    })
}

/// Polls the token endpoint until the user has approved, denied, or the code expired.
pub async fn device_poll(
    http: &Http,
    l: Login<'_>,
    start: &DeviceStart,
) -> Result<TokenReply, FetchError> {
    grant::device_token(
        http,
        &l.eg.def.token_url,
        Creds::of(l.id),
        &start.details,
        &style(l.eg),
    )
    .await
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

/// The site id a new token of `eg` is for (Atlassian's cloud id, chosen by `cloud_site`),
/// when the provider's catalog entry has one to read: `None` for other providers.
pub async fn site_id(
    http: &Http,
    eg: &EgressConfig,
    access_token: &str,
) -> Option<Result<Option<String>, FetchError>> {
    let extra = eg.def.extras.cloud_id.as_ref()?;
    Some(fetch_cloud_id(http, &extra.url, access_token, eg.cloud_site.as_deref()).await)
}

async fn fetch_cloud_id(
    http: &Http,
    url: &str,
    access_token: &str,
    wanted: Option<&str>,
) -> Result<Option<String>, FetchError> {
    let resp = http
        .client_checked(url)?
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
