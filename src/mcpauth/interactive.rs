//! The interactive login to an MCP server with `auth: oauth` (authorization code + PKCE
//! S256): discovery and the S256 requirement, the client (the configured `client_id`, or
//! one registered dynamically (RFC 7591) as a public native client and kept per issuer in
//! the tokens directory), and the egress-like identity that the provider login
//! (`login::browser_login`) and refresh (`identity::egress::refresh`) run with: endpoints
//! from the authorization server's metadata, `resource` = the server's canonical URL.
//! After a new token, one request to the server says whether it is enough
//! (`token_standing`): a 403 `insufficient_scope` becomes a step-up (the next login asks
//! for the union of scopes).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;

use super::discover::{Discovered, discover, probe};
use crate::clock::Ts;
use crate::config::{ClientAuth, Endpoint, Login, LoginBuf, McpLogin};
use crate::identity::oauth::{Http, REPLY_MAX, Style, read_capped, send, with_retries};
use crate::identity::{FailureKind, FetchError};
use crate::login::IssuerCheck;
use crate::sanitize::escape;
use crate::secret::Secret;
use crate::store::Store;
use crate::store::atomic::read_private;
use crate::store::record::TokenRecord;

/// How long a login waits for another one deciding on the same issuer's registration.
const REGISTRATION_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(180);

/// The path of the loopback redirect when mcp-credd chooses it.
pub const CALLBACK_PATH: &str = "/callback";

/// A client registered dynamically at one authorization server. Shared by every MCP
/// server that uses that issuer; 0600 in the tokens directory.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Registration {
    pub issuer: String,
    pub client_id: String,
    /// Only when the server insisted on giving one (we ask for a public client).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::secret::expose_ser_opt"
    )]
    pub client_secret: Option<Secret>,
    /// Epoch seconds; 0 or absent: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_expires_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_method: Option<String>,
    /// The redirect URI registered; its port is tried first at the next login.
    pub redirect_uri: String,
    pub registered_at: f64,
}

impl Registration {
    fn expired(&self, now: Ts) -> bool {
        self.client_secret_expires_at
            .is_some_and(|e| e > 0 && (e as f64) <= now.as_secs_f64())
    }

    fn client_auth(&self) -> ClientAuth {
        match self.token_endpoint_auth_method.as_deref() {
            Some("client_secret_post") => ClientAuth::Post,
            _ => ClientAuth::Basic,
        }
    }
}

/// The file that holds the registration at `issuer`: a name derived from the issuer (a
/// hash), so that no issuer text reaches a path.
pub fn registration_file(issuer: &str) -> String {
    let h = Sha256::digest(issuer.trim_end_matches('/').as_bytes());
    let hex: String = h[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("mcp-client-{hex}.json")
}

/// The stored registration at `issuer`, if there is a readable one for exactly it.
pub fn load_registration(store: &Store, issuer: &str) -> Option<Registration> {
    let path = store.path_of(&registration_file(issuer)).ok()?;
    match read_private(&path, 0o600) {
        Ok(Some((bytes, _))) => serde_json::from_slice::<Registration>(&bytes)
            .ok()
            .filter(|r| r.issuer.trim_end_matches('/') == issuer.trim_end_matches('/')),
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the stored client registration; registering again");
            None
        }
    }
}

async fn save_registration(store: &Store, reg: &Registration) -> Result<(), FetchError> {
    let path = store
        .path_of(&registration_file(&reg.issuer))
        .map_err(|e| FetchError::permanent(e.to_string()))?;
    let mut bytes = serde_json::to_vec_pretty(reg).expect("a registration serializes");
    bytes.push(b'\n');
    let shown = path.display().to_string();
    crate::store::write_off_runtime(path, bytes, 0o600)
        .await
        .map_err(|e| FetchError::permanent(format!("cannot write {shown}: {e}")))
}

/// What is sent to a registration endpoint: a public native client with a loopback
/// redirect (RFC 7591, RFC 8252). No `scope`: a step-up may need more later.
pub fn registration_request(redirect_uri: &str) -> serde_json::Value {
    serde_json::json!({
        "client_name": "mcp-credd",
        "application_type": "native",
        "redirect_uris": [redirect_uri],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    })
}

/// Reads a registration endpoint's answer (RFC 7591 §3.2).
pub fn parse_registration(
    status: u16,
    body: &[u8],
    issuer: &str,
    endpoint: &str,
    redirect_uri: &str,
    now: Ts,
) -> Result<Registration, String> {
    if !(200..300).contains(&status) {
        let why = crate::identity::reply::parse_error(body)
            .map(|e| crate::identity::reply::describe(&e))
            .unwrap_or_else(|| format!("HTTP {status}"));
        return Err(format!(
            "authorization server {issuer} refused to register mcp-credd as a client at {endpoint}: {why}; if it does not allow dynamic registration, register a public client there (redirect URI http://127.0.0.1:PORT{CALLBACK_PATH}, any port) and set `client_id` (and `redirect_uri` if it needs a fixed one) under `auth.oauth`"
        ));
    }
    let doc: serde_json::Value = serde_json::from_slice(body).map_err(|_| {
        format!("the registration endpoint {endpoint} answered something that is not JSON")
    })?;
    let s = |k: &str| doc.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let client_id = s("client_id")
        .filter(|c| crate::identity::reply::header_safe(c) && c.len() <= 512)
        .ok_or_else(|| {
            format!("the registration endpoint {endpoint} answered no usable `client_id`")
        })?;
    Ok(Registration {
        issuer: issuer.to_string(),
        client_id,
        client_secret: s("client_secret")
            .filter(|x| !x.is_empty())
            .map(Secret::new),
        client_secret_expires_at: doc.get("client_secret_expires_at").and_then(|v| v.as_i64()),
        token_endpoint_auth_method: s("token_endpoint_auth_method"),
        redirect_uri: redirect_uri.to_string(),
        registered_at: now.as_secs_f64(),
    })
}

/// Registers mcp-credd at `endpoint` (RFC 7591).
async fn register(
    http: &Http,
    endpoint: &str,
    issuer: &str,
    redirect_uri: &str,
    now: Ts,
) -> Result<Registration, FetchError> {
    let client = http.client_checked(endpoint)?;
    let body = registration_request(redirect_uri);
    let body = &body;
    with_retries(&http.policy, endpoint, || async move {
        let req = client
            .post(endpoint)
            .header(reqwest::header::ACCEPT, "application/json")
            .json(body);
        let resp = send(req, &format!("registration endpoint {endpoint}")).await?;
        let status = resp.status().as_u16();
        let bytes = read_capped(resp, REPLY_MAX)
            .await
            .map_err(|m| FetchError::transient(format!("registration endpoint {endpoint}: {m}")))?;
        parse_registration(status, &bytes, issuer, endpoint, redirect_uri, now)
            .map_err(FetchError::permanent)
    })
    .await
}

/// Does the authorization server still know this registered client? A code exchange
/// with a made-up code answers `invalid_grant` for a known client and `invalid_client`
/// for one it forgot (RFC 6749 §5.2: the client is authenticated first). Anything else
/// (the server down included) counts as known: the login itself will tell.
async fn still_registered(http: &Http, token_endpoint: &str, reg: &Registration) -> bool {
    let code = format!("mcp-credd-probe-{}", crate::login::Pkce::new().verifier);
    let verifier = crate::login::Pkce::new().verifier;
    let answer = crate::identity::grant::token(
        http,
        token_endpoint,
        crate::identity::grant::Creds {
            id: &reg.client_id,
            secret: reg.client_secret.as_ref().map(|s| s.expose()),
            auth: reg.client_auth(),
        },
        &crate::identity::grant::Grant::Code {
            code: &code,
            verifier: Some(&verifier),
            redirect_uri: &reg.redirect_uri,
            extra: Vec::new(),
        },
        &Style::default(),
    )
    .await;
    !matches!(answer, Err(e) if e.kind != FailureKind::Transient && e.oauth_error.as_deref() == Some("invalid_client"))
}

/// The scopes a login asks for: the configured ones, else the challenge's, else the
/// resource metadata's (discovery decided), plus those a step-up found missing, plus
/// `offline_access` when the authorization server lists it (most servers give a refresh
/// token only for it). In order, without duplicates.
pub fn login_scopes(
    discovered: &[String],
    needed: &[String],
    as_supported: &[String],
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in discovered.iter().chain(needed) {
        if !out.contains(s) {
            out.push(s.clone());
        }
    }
    let offline = "offline_access".to_string();
    if as_supported.contains(&offline) && !out.contains(&offline) {
        out.push(offline);
    }
    out
}

/// `id` with what discovery and registration found: the issuer (the token's binding),
/// the endpoints, the client, the scopes and the redirect.
#[allow(clippy::too_many_arguments)]
fn resolved(
    l: Login<'_>,
    d: &Discovered,
    client_id: String,
    client_secret: Option<Secret>,
    client_auth: ClientAuth,
    scopes: Vec<String>,
    redirect_uri: String,
) -> LoginBuf {
    l.resolve(|id, eg| {
        id.client_id = client_id;
        id.client_secret = client_secret;
        id.client_auth = client_auth;
        id.scopes = scopes;
        if let Endpoint::McpServer {
            authorization_server,
            ..
        } = &mut id.endpoint
        {
            *authorization_server = Some(d.issuer.clone());
        }
        eg.def.display_name = d.issuer.clone();
        eg.def.authorize_url = d.server.authorization_endpoint.clone().unwrap_or_default();
        eg.def.token_url = d.server.token_endpoint.clone();
        eg.def.revocation_url = d.server.revocation_endpoint.clone();
        eg.def.issuer = Some(d.server.issuer.clone());
        eg.def.device_authorization_url = None;
        eg.redirect_uri = redirect_uri;
    })
}

/// Everything a login needs, ready: the resolved identity, the callback's `iss` check,
/// and the listeners already bound to the redirect URI's port.
pub struct Prepared {
    pub login: LoginBuf,
    pub issuer: IssuerCheck,
    pub listeners: Vec<TcpListener>,
    pub discovered: Discovered,
}

/// Binds the loopback listener: the configured redirect, else `preferred` (the port of
/// the stored registration, so its exact redirect URI is used again), else any free port.
async fn listen(
    configured: &str,
    preferred: Option<u16>,
) -> Result<(Vec<TcpListener>, String), FetchError> {
    if !configured.is_empty() {
        let l = crate::login::bind(configured)
            .await
            .map_err(FetchError::permanent)?;
        return Ok((l, configured.to_string()));
    }
    let mut listener = None;
    if let Some(p) = preferred {
        listener = TcpListener::bind(("127.0.0.1", p)).await.ok();
    }
    let listener = match listener {
        Some(l) => l,
        None => TcpListener::bind(("127.0.0.1", 0)).await.map_err(|e| {
            FetchError::permanent(format!(
                "cannot listen on a loopback port for the login: {e}"
            ))
        })?,
    };
    let port = listener
        .local_addr()
        .map_err(|e| FetchError::permanent(e.to_string()))?
        .port();
    Ok((
        vec![listener],
        format!("http://127.0.0.1:{port}{CALLBACK_PATH}"),
    ))
}

/// Discovery, the S256 check, the listener and the client, for a login to `id`
/// (`needed`: scopes a step-up found missing).
pub async fn prepare_login(
    m: McpLogin<'_>,
    http: &Http,
    store: &Store,
    now: Ts,
    needed: &[String],
    say: &dyn Fn(String),
) -> Result<Prepared, FetchError> {
    let (l, server_url, authorization_server) = (m.login, m.server_url, m.authorization_server);
    let (id, eg) = (l.id, l.eg);
    let d = discover(http, server_url, authorization_server, &id.scopes).await?;
    d.server.require_s256().map_err(FetchError::permanent)?;
    if d.server.authorization_endpoint.is_none() {
        return Err(FetchError::permanent(format!(
            "authorization server {} lists no `authorization_endpoint`, so no one can log in there; ask its operator",
            d.issuer
        )));
    }
    let scopes = login_scopes(&d.scopes, needed, &d.server.scopes_supported);
    // One login at a time decides on the registration at this issuer (another server's
    // login may be registering there right now): read after the lock is taken.
    let _registration_lock = if id.client_id.is_empty() {
        let name = registration_file(&d.issuer);
        Some(
            store
                .lock(name.trim_end_matches(".json"), REGISTRATION_LOCK_WAIT)
                .await
                .map_err(|e| FetchError::transient(e.to_string()))?,
        )
    } else {
        None
    };
    let stored = if id.client_id.is_empty() {
        load_registration(store, &d.issuer).filter(|r| !r.expired(now))
    } else {
        None
    };
    let preferred = stored
        .as_ref()
        .and_then(|r| reqwest::Url::parse(&r.redirect_uri).ok())
        .and_then(|u| u.port());
    let (listeners, redirect_uri) = listen(&eg.redirect_uri, preferred).await?;
    let (client_id, secret, auth) = if !id.client_id.is_empty() {
        (
            id.client_id.clone(),
            id.client_secret.clone(),
            id.client_auth,
        )
    } else {
        let reg = match stored {
            // A registration is reused only with the redirect it was registered with: its
            // port may be taken now (by anyone on this machine), and servers compare
            // redirect URIs exactly.
            Some(r)
                if r.redirect_uri == redirect_uri
                    && still_registered(http, &d.server.token_endpoint, &r).await =>
            {
                tracing::debug!(issuer = %crate::sanitize::redact_url(&d.issuer, false), client_id = %r.client_id, "reusing the stored client registration");
                r
            }
            known => {
                let Some(endpoint) = d.server.registration_endpoint.as_deref() else {
                    return Err(FetchError::permanent(format!(
                        "authorization server {} offers no dynamic client registration (no `registration_endpoint`); register a public client for mcp-credd there (redirect URI http://127.0.0.1:PORT{CALLBACK_PATH}, any port) and set `client_id` (and `redirect_uri` if it needs a fixed one) under `auth.oauth`",
                        d.issuer
                    )));
                };
                match &known {
                    Some(k) if k.redirect_uri != redirect_uri => say(format!(
                        "{}: the registered redirect {} cannot be used now (its port is taken); registering again with {redirect_uri}",
                        id.name, k.redirect_uri
                    )),
                    Some(_) => say(format!(
                        "{}: authorization server {} no longer knows the registered client; registering again",
                        id.name, d.issuer
                    )),
                    None => {}
                }
                let reg = register(http, endpoint, &d.issuer, &redirect_uri, now).await?;
                save_registration(store, &reg).await?;
                say(format!(
                    "{}: registered mcp-credd as client `{}` at {}",
                    id.name,
                    escape(&reg.client_id),
                    d.issuer
                ));
                reg
            }
        };
        let auth = reg.client_auth();
        (reg.client_id, reg.client_secret, auth)
    };
    let issuer = IssuerCheck {
        issuer: Some(d.server.issuer.clone()),
        required: d.server.iss_parameter_supported,
    };
    let login = resolved(l, &d, client_id, secret, auth, scopes, redirect_uri);
    Ok(Prepared {
        login,
        issuer,
        listeners,
        discovered: d,
    })
}

fn reauth(message: String) -> FetchError {
    FetchError::reauth(message)
}

/// The identity a refresh of `rec` runs with: discovery again, and the token's issuer and
/// client must still be those discovery and the configuration lead to. Otherwise a login
/// is required (a server that moved to another authorization server is not served a
/// token of the old one).
pub async fn for_refresh(
    m: McpLogin<'_>,
    http: &Http,
    store: &Store,
    rec: &TokenRecord,
) -> Result<(LoginBuf, Discovered), FetchError> {
    let (l, server_url, authorization_server) = (m.login, m.server_url, m.authorization_server);
    let id = l.id;
    let login = format!("run `mcp-credd login {}`", id.name);
    let d = discover(http, server_url, authorization_server, &id.scopes).await?;
    let Some(b) = &rec.binding else {
        return Err(reauth(format!(
            "the stored token does not say which authorization server issued it; {login}"
        )));
    };
    if b.endpoint.trim_end_matches('/') != d.issuer.trim_end_matches('/') {
        return Err(reauth(format!(
            "MCP server {server_url} now names authorization server {}, and the stored token came from {}; {login}",
            d.issuer, b.endpoint
        )));
    }
    let (client_id, secret, auth, redirect) = if !id.client_id.is_empty() {
        (
            id.client_id.clone(),
            id.client_secret.clone(),
            id.client_auth,
            String::new(),
        )
    } else {
        let Some(reg) = load_registration(store, &d.issuer) else {
            return Err(reauth(format!(
                "the client registration at {} is gone from the tokens directory; {login} (it registers again)",
                d.issuer
            )));
        };
        let auth = reg.client_auth();
        (reg.client_id, reg.client_secret, auth, reg.redirect_uri)
    };
    if b.client_id != client_id {
        return Err(reauth(format!(
            "the stored token belongs to client `{}`, and the client for {} is now `{client_id}`; {login}",
            b.client_id, d.issuer
        )));
    }
    let scopes = b.scopes.clone();
    let out = resolved(l, &d, client_id, secret, auth, scopes, redirect);
    Ok((out, d))
}

/// What the MCP server says to a new token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Standing {
    /// Accepted, or the server could not be asked (the token is kept either way).
    Accepted,
    /// 403 `insufficient_scope`; the challenge's `scope` when it named one.
    InsufficientScope {
        wanted: Option<Vec<String>>,
        description: Option<String>,
    },
    /// 401 or another 403: of no use there.
    Refused(String),
}

/// Sends the new token to the server once.
pub async fn token_standing(http: &Http, server_url: &str, token: &str) -> Standing {
    let p = match probe(http, server_url, Some(token)).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(server_url = %crate::sanitize::redact_url(server_url, false), error = %e.message, "could not check the new token against the MCP server; keeping it");
            return Standing::Accepted;
        }
    };
    if !matches!(p.status, 401 | 403) {
        return Standing::Accepted;
    }
    let c = p.challenge.unwrap_or_default();
    if p.status == 403 && c.error.as_deref() == Some("insufficient_scope") {
        return Standing::InsufficientScope {
            wanted: c
                .scope
                .as_deref()
                .map(|s| s.split_whitespace().map(str::to_string).collect())
                .filter(|v: &Vec<String>| !v.is_empty()),
            description: c.error_description.as_deref().map(escape),
        };
    }
    Standing::Refused(format!(
        "MCP server {server_url} refused the new token (HTTP {}{}{}); check that its authorization server issues tokens for this server (resource {server_url})",
        p.status,
        c.error
            .as_deref()
            .map(|e| format!(", {}", escape(e)))
            .unwrap_or_default(),
        c.error_description
            .as_deref()
            .map(|d| format!(": {}", escape(d)))
            .unwrap_or_default()
    ))
}

/// The scopes the next login asks for after an `insufficient_scope`: those asked so far
/// and those the server wants (its challenge's `scope`, else its metadata's
/// `scopes_supported`).
pub fn step_up_scopes(asked: &[String], wanted: Option<&[String]>, d: &Discovered) -> Vec<String> {
    let wanted: Vec<String> = match wanted {
        Some(w) => w.to_vec(),
        None => d
            .resource
            .as_ref()
            .map(|r| r.scopes_supported.clone())
            .unwrap_or_default(),
    };
    let mut out = asked.to_vec();
    for w in wanted {
        if !out.contains(&w) {
            out.push(w);
        }
    }
    out
}

/// The message of an `insufficient_scope` for a person's token.
pub fn step_up_message(
    name: &str,
    server_url: &str,
    asked: &[String],
    next: &[String],
    description: Option<&str>,
) -> String {
    // Scopes and the description came from servers: shown escaped, whatever checked them.
    let desc = description
        .map(|d| format!(" ({})", escape(d)))
        .unwrap_or_default();
    let (asked_s, next_s) = (escape(&asked.join(" ")), escape(&next.join(" ")));
    if next.len() > asked.len() {
        format!(
            "MCP server {server_url} refused the token for insufficient scope{desc}; the login asked for `{asked_s}`; run `mcp-credd login {name}`: it asks for `{next_s}`"
        )
    } else {
        format!(
            "MCP server {server_url} refused the token for insufficient scope{desc}, though the login asked for `{asked_s}`; the authorization server did not grant them: ask its operator to allow them for this client, then run `mcp-credd login {name}`"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A registered client is forgotten only when the server's error code says
    /// `invalid_client`, not when its description happens to name it.
    #[tokio::test]
    async fn a_forgotten_client_is_told_by_its_error_code() {
        use crate::identity::grant::tests::{reply, server};
        let (url, _seen) = server(vec![
            reply(
                "400 Bad Request",
                "",
                r#"{"error":"invalid_grant","error_description":"no such code (not an invalid_client)"}"#,
            ),
            reply("401 Unauthorized", "", r#"{"error":"invalid_client"}"#),
        ])
        .await;
        let http = Http::new(crate::config::HttpPolicy::default()).unwrap();
        let reg = Registration {
            issuer: "http://127.0.0.1".into(),
            client_id: "c1".into(),
            client_secret: None,
            client_secret_expires_at: None,
            token_endpoint_auth_method: None,
            redirect_uri: "http://127.0.0.1:1/callback".into(),
            registered_at: 0.0,
        };
        assert!(still_registered(&http, &url, &reg).await);
        assert!(!still_registered(&http, &url, &reg).await);
    }

    #[test]
    fn the_registration_asks_for_a_public_native_client() {
        let r = registration_request("http://127.0.0.1:4711/callback");
        assert_eq!(r["application_type"], "native");
        assert_eq!(r["token_endpoint_auth_method"], "none");
        assert_eq!(
            r["grant_types"],
            serde_json::json!(["authorization_code", "refresh_token"])
        );
        assert_eq!(
            r["redirect_uris"],
            serde_json::json!(["http://127.0.0.1:4711/callback"])
        );
        assert!(r.get("scope").is_none(), "a step-up may need more scopes");
    }

    #[test]
    fn registration_answers() {
        let now = Ts::from_secs(1000);
        let ok = parse_registration(
            201,
            br#"{"client_id":"c-1","client_secret_expires_at":0}"#,
            "https://as",
            "https://as/reg",
            "http://127.0.0.1:1/callback",
            now,
        )
        .unwrap();
        assert_eq!(ok.client_id, "c-1");
        assert!(ok.client_secret.is_none() && !ok.expired(now));
        let e = parse_registration(
            401,
            br#"{"error":"invalid_token","error_description":"no initial access token"}"#,
            "https://as",
            "https://as/reg",
            "r",
            now,
        )
        .unwrap_err();
        assert!(
            e.contains("refused to register")
                && e.contains("invalid_token (no initial access token)")
                && e.contains("set `client_id`"),
            "{e}"
        );
        for bad in [
            &br#"{"client_id":"a\r\nb"}"#[..],
            br#"{"client_id":""}"#,
            b"not json",
        ] {
            assert!(parse_registration(201, bad, "i", "e", "r", now).is_err());
        }
        let expiring = parse_registration(
            201,
            br#"{"client_id":"c","client_secret":"s","client_secret_expires_at":999}"#,
            "i",
            "e",
            "r",
            now,
        )
        .unwrap();
        assert!(expiring.expired(now));
        // The secret stays out of Debug output.
        assert!(!format!("{expiring:?}").contains("\"s\""));
    }

    #[test]
    fn registrations_are_filed_by_issuer() {
        assert_eq!(
            registration_file("https://as.example"),
            registration_file("https://as.example/")
        );
        assert_ne!(
            registration_file("https://as.example"),
            registration_file("https://as2.example")
        );
        let f = registration_file("https://as.example/../../x");
        assert!(crate::config::check_name(&f).is_ok(), "{f}");
    }

    #[test]
    fn a_step_up_adds_what_the_challenge_names_else_the_metadata() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let d = Discovered {
            issuer: "https://as".into(),
            challenge: None,
            resource: Some(super::super::ResourceMetadata {
                resource: "https://c/mcp".into(),
                authorization_servers: s(&["https://as"]),
                scopes_supported: s(&["mcp:tools", "mcp:admin"]),
            }),
            server: super::super::check_server_metadata(
                &serde_json::json!({"issuer": "https://as", "token_endpoint": "https://as/token"}),
                "https://as",
                "u",
            )
            .unwrap(),
            scopes: s(&["mcp:tools"]),
        };
        let asked = s(&["mcp:tools", "offline_access"]);
        // The challenge's `scope` (RFC 6750 §3) wins...
        assert_eq!(
            step_up_scopes(&asked, Some(&s(&["files:write"])), &d),
            s(&["mcp:tools", "offline_access", "files:write"])
        );
        // ...else the resource metadata's scopes_supported (the MCP SDK sends no `scope`).
        assert_eq!(
            step_up_scopes(&asked, None, &d),
            s(&["mcp:tools", "offline_access", "mcp:admin"])
        );
    }

    #[test]
    fn scopes_of_a_login_and_a_step_up() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            login_scopes(
                &s(&["mcp:tools"]),
                &s(&["mcp:read", "mcp:tools"]),
                &s(&["offline_access"])
            ),
            s(&["mcp:tools", "mcp:read", "offline_access"])
        );
        assert_eq!(login_scopes(&s(&["a"]), &[], &s(&["b"])), s(&["a"]));
        let msg = step_up_message("calc", "https://c/mcp", &s(&["a"]), &s(&["a", "b"]), None);
        assert!(
            msg.contains("run `mcp-credd login calc`: it asks for `a b`"),
            "{msg}"
        );
        let msg = step_up_message(
            "calc",
            "https://c/mcp",
            &s(&["a", "b"]),
            &s(&["a", "b"]),
            None,
        );
        assert!(msg.contains("did not grant them"), "{msg}");
        // Whatever reaches it from a server is escaped.
        for next in [s(&["a"]), s(&["a", "b\x1b[31m"])] {
            let msg = step_up_message(
                "calc",
                "https://c/mcp",
                &s(&["a\r\nforged"]),
                &next,
                Some("say\x07"),
            );
            assert!(!msg.chars().any(char::is_control), "{msg:?}");
            assert!(
                msg.contains("a\\r\\nforged") && msg.contains("say\\u{7}"),
                "{msg}"
            );
        }
    }
}
