//! The interactive part of a provider login: the authorization URL (PKCE S256, `state`),
//! the loopback listener the browser comes back to, opening the browser, the pasted-URL
//! fallback for machines without one, and the device flow. The URL building and callback
//! parsing are pure; the listener and the browser are the I/O around them.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::config::Login;
use crate::failure::FailureKind;
use crate::identity::FetchError;
use crate::identity::egress;
use crate::identity::oauth::Http;
use crate::identity::reply::TokenReply;

/// Connections the callback listener holds at once. When full, the oldest connection
/// that has not yet sent a request is dropped for the new one, so a flood of idle
/// connections can never keep the browser's redirect out. Each is bounded to 3 s.
const MAX_CONNECTIONS: usize = 256;

fn random_b64(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    getrandom::fill(&mut b).expect("the OS random source works");
    URL_SAFE_NO_PAD.encode(b)
}

/// PKCE (RFC 7636), S256 only, from the `oauth2` crate.
#[derive(Clone)]
pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

impl Pkce {
    pub fn new() -> Pkce {
        let (challenge, verifier) = oauth2::PkceCodeChallenge::new_random_sha256();
        Pkce {
            verifier: verifier.secret().clone(),
            challenge: challenge.as_str().to_string(),
        }
    }
    pub fn from_verifier(verifier: String) -> Pkce {
        let challenge = oauth2::PkceCodeChallenge::from_code_verifier_sha256(
            &oauth2::PkceCodeVerifier::new(verifier.clone()),
        );
        Pkce {
            verifier,
            challenge: challenge.as_str().to_string(),
        }
    }
}

impl Default for Pkce {
    fn default() -> Self {
        Pkce::new()
    }
}

/// The authorization URL a person opens (built by the `oauth2` crate).
pub fn authorize_url(l: Login<'_>, state: &str, pkce: Option<&Pkce>) -> Result<String, String> {
    let (id, eg) = (l.id, l.eg);
    let resource = egress::resource_param(l);
    let mut extra: Vec<(&str, &str)> = resource
        .as_ref()
        .map(|(k, v)| (*k, v.as_str()))
        .into_iter()
        .collect();
    extra.extend(
        eg.def
            .auth_params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str())),
    );
    crate::identity::grant::authorize_url(
        &id.client_id,
        &crate::identity::grant::Authorization {
            authorize_url: &eg.def.authorize_url,
            redirect_uri: &eg.redirect_uri,
            state,
            pkce_verifier: pkce.map(|p| p.verifier.as_str()),
            scope: (!id.scopes.is_empty()).then(|| {
                (
                    eg.def.scope_param.as_str(),
                    id.scopes.join(&eg.def.scope_separator),
                )
            }),
            extra,
        },
    )
}

/// What one request to the loopback listener amounts to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Callback {
    /// Another path: 404.
    NotOurs,
    /// Our path without the right `state`: refused, and the listener keeps waiting.
    BadState,
    /// The provider reports a failure (`error=access_denied`...).
    Error(String),
    /// `iss` names another issuer than the provider's (RFC 9207 mix-up defence), escaped;
    /// `None`: the callback has no `iss` though the provider promised one.
    WrongIssuer(Option<String>),
    Code(String),
}

/// Why a callback judged `WrongIssuer(iss)` is refused, for the terminal.
fn wrong_issuer(iss: Option<&str>) -> String {
    match iss {
        None => "the callback has no `iss`, though the provider's metadata says it always sends one (RFC 9207); refused".to_string(),
        Some(iss) => format!("the callback came from issuer {iss}, not the provider's; refused"),
    }
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// What the callback's `iss` (RFC 9207) must be: the provider's issuer, and whether the
/// provider says (in its metadata) that it always sends one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IssuerCheck {
    pub issuer: Option<String>,
    pub required: bool,
}

/// Judges a request target (`/callback?code=...&state=...`) against what we expect.
pub fn judge(target: &str, path: &str, state: &str, iss_check: &IssuerCheck) -> Callback {
    let issuer = iss_check.issuer.as_deref();
    let Ok(u) = reqwest::Url::parse(&format!("http://localhost{target}")) else {
        return Callback::NotOurs;
    };
    if u.path() != path {
        return Callback::NotOurs;
    }
    let get = |k: &str| {
        u.query_pairs()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.into_owned())
    };
    // The state is checked before anything else is believed, the code included.
    match get("state") {
        Some(s) if constant_time_eq(&s, state) => {}
        _ => return Callback::BadState,
    }
    match (issuer, get("iss")) {
        (Some(expected), Some(iss))
            if iss.trim_end_matches('/') != expected.trim_end_matches('/') =>
        {
            return Callback::WrongIssuer(Some(crate::sanitize::escape(&iss)));
        }
        // The provider promised `iss` on every response: one without it is not its own.
        (Some(_), None) if iss_check.required => {
            return Callback::WrongIssuer(None);
        }
        _ => {}
    }
    if let Some(e) = get("error") {
        let d = get("error_description")
            .map(|d| format!(" ({d})"))
            .unwrap_or_default();
        // The browser's query comes from whoever sent it there: escaped, shortened.
        let text: String = format!("{e}{d}").chars().take(300).collect();
        return Callback::Error(crate::sanitize::escape(&text));
    }
    match get("code") {
        Some(c) if !c.is_empty() => Callback::Code(c),
        _ => Callback::Error("the provider sent neither a code nor an error".into()),
    }
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html><head><meta charset=utf-8><title>{title}</title></head>\
<body style=\"font-family:sans-serif;max-width:36em;margin:4em auto\"><h1>{title}</h1><p>{body}</p></body></html>"
    )
}

async fn respond(stream: &mut tokio::net::TcpStream, status: &str, html: &str) {
    let resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n{html}",
        html.len()
    );
    let _ = stream.write_all(resp.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// Reads one request head (bounded in size and time) and returns its target.
async fn read_target(stream: &mut tokio::net::TcpStream) -> Option<String> {
    let mut buf = Vec::with_capacity(1024);
    let read = async {
        let mut chunk = [0u8; 1024];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
            let n = stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        Some(())
    };
    tokio::time::timeout(Duration::from_secs(3), read)
        .await
        .ok()??;
    let head = String::from_utf8_lossy(&buf);
    let line = head.lines().next()?;
    let mut parts = line.split(' ');
    match (parts.next(), parts.next()) {
        (Some("GET"), Some(t)) => Some(t.to_string()),
        _ => None,
    }
}

/// The addresses to listen on for a redirect URI's host: loopback only.
fn listen_addrs(redirect: &reqwest::Url) -> Result<Vec<SocketAddr>, String> {
    let port = redirect.port().ok_or("the redirect URI has no port")?;
    Ok(match redirect.host() {
        Some(url::Host::Ipv4(ip)) if ip.is_loopback() => vec![SocketAddr::from((ip, port))],
        Some(url::Host::Ipv6(ip)) if ip.is_loopback() => vec![SocketAddr::from((ip, port))],
        // Browsers may resolve localhost to either family: listen on both loopbacks.
        Some(url::Host::Domain(d)) if d.eq_ignore_ascii_case("localhost") => vec![
            SocketAddr::from(([127, 0, 0, 1], port)),
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port)),
        ],
        _ => return Err("the redirect URI's host must be localhost, 127.0.0.1 or [::1]".into()),
    })
}

/// Binds the loopback listeners for `redirect_uri`. A taken port is a clear error.
pub async fn bind(redirect_uri: &str) -> Result<Vec<TcpListener>, String> {
    let u = reqwest::Url::parse(redirect_uri).map_err(|e| format!("redirect_uri: {e}"))?;
    let mut out = Vec::new();
    for (i, addr) in listen_addrs(&u)?.into_iter().enumerate() {
        match TcpListener::bind(addr).await {
            Ok(l) => out.push(l),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                return Err(format!(
                    "port {} of the redirect URI {redirect_uri} is already in use (another login running?); stop that program or register another redirect URI",
                    addr.port()
                ));
            }
            // The second (IPv6) listener is a nicety; a host without IPv6 does without it.
            Err(_) if i > 0 => {}
            Err(e) => return Err(format!("cannot listen on {addr}: {e}")),
        }
    }
    Ok(out)
}

/// Serves the callback until a code (or a provider error) arrives, or `timeout` passes.
/// Requests with a wrong `state` are refused and waiting goes on.
pub async fn wait_for_code(
    listeners: Vec<TcpListener>,
    path: String,
    state: String,
    issuer: IssuerCheck,
    timeout: Duration,
    pasted: Option<mpsc::Receiver<String>>,
) -> Result<String, FetchError> {
    let (tx, mut rx) = mpsc::channel::<Result<String, String>>(4);
    let mut tasks = tokio::task::JoinSet::new();
    for l in listeners {
        let (tx, path, state, issuer) = (tx.clone(), path.clone(), state.clone(), issuer.clone());
        tasks.spawn(async move {
            // Each connection is bounded in time and size and their number is capped; at
            // the cap the oldest one still silent is dropped (never one whose request has
            // arrived), so a flood of idle connections cannot hold the listener and the
            // request with the right state is always judged at once.
            let mut live: std::collections::VecDeque<(tokio::task::AbortHandle, std::sync::Arc<std::sync::atomic::AtomicBool>)> =
                std::collections::VecDeque::new();
            loop {
                let Ok((mut stream, _)) = l.accept().await else {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                live.retain(|(h, _)| !h.is_finished());
                if live.len() >= MAX_CONNECTIONS {
                    let silent = live
                        .iter()
                        .position(|(_, spoke)| !spoke.load(std::sync::atomic::Ordering::Acquire));
                    match silent {
                        Some(i) => {
                            if let Some((h, _)) = live.remove(i) {
                                h.abort();
                            }
                        }
                        // All are busy with real requests (each bounded): drop the new one.
                        None => continue,
                    }
                }
                let spoke = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
                let tx = tx.clone();
                let (path, state, issuer) = (path.clone(), state.clone(), issuer.clone());
                let spoke2 = spoke.clone();
                let handle = tokio::spawn(async move {
                    let target = read_target(&mut stream).await;
                    spoke2.store(true, std::sync::atomic::Ordering::Release);
                    let Some(target) = target else {
                        respond(&mut stream, "400 Bad Request", &page("Bad request", "mcp-credd expected a browser redirect.")).await;
                        return;
                    };
                    match judge(&target, &path, &state, &issuer) {
                        Callback::NotOurs => respond(&mut stream, "404 Not Found", &page("Not found", "Nothing here.")).await,
                        Callback::BadState => {
                            tracing::warn!("refused a login callback with a missing or wrong state");
                            respond(&mut stream, "400 Bad Request", &page("Login refused", "This response does not belong to the login mcp-credd started (wrong state). Start the login again.")).await;
                        }
                        Callback::WrongIssuer(iss) => {
                            respond(&mut stream, "400 Bad Request", &page("Login refused", "The response came from an unexpected identity provider.")).await;
                            let _ = tx.send(Err(wrong_issuer(iss.as_deref()))).await;
                        }
                        Callback::Error(e) => {
                            respond(&mut stream, "200 OK", &page("Login failed", "The provider did not grant access. You can close this tab; mcp-credd says why in the terminal.")).await;
                            let _ = tx.send(Err(format!("the provider refused the login: {e}"))).await;
                        }
                        Callback::Code(code) => {
                            respond(&mut stream, "200 OK", &page("Logged in", "mcp-credd received the login. You can close this tab.")).await;
                            let _ = tx.send(Ok(code)).await;
                        }
                    }
                });
                live.push_back((handle.abort_handle(), spoke));
            }
        });
    }
    drop(tx);
    let mut pasted = pasted;
    let result = tokio::time::timeout(timeout, async {
        loop {
            tokio::select! {
                Some(r) = rx.recv() => return r,
                Some(line) = async { match pasted.as_mut() { Some(p) => p.recv().await, None => std::future::pending().await } } => {
                    let target = match reqwest::Url::parse(line.trim()) {
                        Ok(u) => format!("{}{}", u.path(), u.query().map(|q| format!("?{q}")).unwrap_or_default()),
                        Err(_) => { eprintln!("that is not a URL; paste the whole address the browser ended on"); continue; }
                    };
                    match judge(&target, &path, &state, &issuer) {
                        Callback::Code(c) => return Ok(c),
                        Callback::Error(e) => return Err(format!("the provider refused the login: {e}")),
                        other => eprintln!("that URL is not this login's redirect ({other:?}); paste the address the browser ended on"),
                    }
                }
            }
        }
    })
    .await;
    tasks.abort_all();
    match result {
        Ok(Ok(code)) => Ok(code),
        Ok(Err(m)) => Err(FetchError::permanent(m)),
        Err(_) => Err(FetchError::permanent(format!(
            "no login arrived within {}s; run the login again",
            timeout.as_secs()
        ))),
    }
}

/// Options of `mcp-credd login`.
#[derive(Clone, Debug)]
pub struct LoginOptions {
    pub open_browser: bool,
    pub device: bool,
    pub timeout: Duration,
    pub env: LoginEnv,
}

/// What a login reads from the environment `main` collected: where the page for the
/// browser goes, which browser to start, and whether this is a remote shell.
#[derive(Clone, Debug, Default)]
pub struct LoginEnv {
    /// `$XDG_RUNTIME_DIR` when it is an absolute path (else the system's temp directory).
    pub runtime_dir: Option<std::path::PathBuf>,
    /// `$BROWSER`, tried before the desktop's opener.
    pub browser: Option<String>,
    /// `$SSH_CONNECTION` is set: the browser is on another computer.
    pub remote_shell: bool,
}

impl LoginEnv {
    pub fn from_env(env: &std::collections::HashMap<String, String>) -> LoginEnv {
        let var = |k: &str| env.get(k).filter(|v| !v.is_empty()).cloned();
        LoginEnv {
            runtime_dir: var("XDG_RUNTIME_DIR")
                .map(std::path::PathBuf::from)
                .filter(|d| d.is_absolute()),
            browser: var("BROWSER"),
            remote_shell: env.contains_key("SSH_CONNECTION"),
        }
    }
}

/// A 0600 HTML file, in a 0700 directory of ours, that sends the browser on to the
/// authorization URL. The browser launcher is given this file's path, never the URL: a
/// process's command line is readable by every local user, and the URL's `state` would
/// let one of them complete the login with their own account. Removed on drop.
pub struct LaunchFile {
    dir: std::path::PathBuf,
    pub path: std::path::PathBuf,
}

impl LaunchFile {
    pub fn create(url: &str, runtime_dir: Option<&std::path::Path>) -> std::io::Result<LaunchFile> {
        use std::os::unix::fs::DirBuilderExt;
        let base = runtime_dir
            .filter(|d| d.is_absolute() && d.is_dir())
            .map_or_else(std::env::temp_dir, std::path::Path::to_path_buf);
        // A fresh directory only we can enter (mkdir fails if the name exists).
        let dir = base.join(format!("mcp-credd-login-{}", random_b64(12)));
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        let path = dir.join("login.html");
        let href = html_escape(url);
        let js = serde_json::to_string(url)
            .unwrap_or_default()
            .replace('<', "\\u003c");
        let html = format!(
            "<!doctype html><html><head><meta charset=utf-8><meta name=referrer content=no-referrer>\
<meta http-equiv=refresh content=\"0;url={href}\"><title>mcp-credd login</title></head>\
<body><p><a id=go href=\"{href}\">Continue to the login page</a></p>\
<script>location.replace({js})</script></body></html>"
        );
        let file = LaunchFile { dir, path };
        crate::store::atomic::write_atomic(&file.path, html.as_bytes(), 0o600)?;
        Ok(file)
    }
}

impl Drop for LaunchFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Opens `url` in the user's browser through a [`LaunchFile`]; `None` if no browser could
/// be started. Keep the returned file until the browser has come back.
fn open_browser_privately(url: &str, env: &LoginEnv) -> Option<LaunchFile> {
    let file = match LaunchFile::create(url, env.runtime_dir.as_deref()) {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(error = %e, "cannot write the login page for the browser");
            return None;
        }
    };
    open_browser(&file.path.to_string_lossy(), env.browser.as_deref()).then_some(file)
}

/// Starts the user's browser on `target` (a local file path); false if none could be started.
fn open_browser(url: &str, browser: Option<&str>) -> bool {
    let candidates: Vec<String> = browser
        .map(str::to_string)
        .into_iter()
        .chain(if cfg!(target_os = "macos") {
            vec!["open".to_string()]
        } else {
            vec!["xdg-open".to_string(), "gio".to_string()]
        })
        .collect();
    for c in candidates {
        let mut cmd = std::process::Command::new(&c);
        if c == "gio" {
            cmd.arg("open");
        }
        let ok = cmd
            .arg(url)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .is_ok();
        if ok {
            return true;
        }
    }
    false
}

/// Lines typed on the terminal, for the pasted-URL fallback (only when stdin is a TTY).
fn pasted_lines() -> Option<mpsc::Receiver<String>> {
    if !std::io::stdin().is_terminal() {
        return None;
    }
    let (tx, rx) = mpsc::channel(4);
    std::thread::spawn(move || {
        let mut line = String::new();
        while std::io::stdin()
            .read_line(&mut line)
            .map(|n| n > 0)
            .unwrap_or(false)
        {
            if tx.blocking_send(std::mem::take(&mut line)).is_err() {
                break;
            }
        }
    });
    Some(rx)
}

/// Runs a login for `id` and returns the provider's token reply.
pub async fn login(
    l: Login<'_>,
    http: &Http,
    opts: LoginOptions,
    say: &dyn Fn(String),
) -> Result<TokenReply, FetchError> {
    let (id, eg) = (l.id, l.eg);
    if opts.device {
        let start = egress::device_start(http, l).await?;
        let target = start
            .verification_uri_complete
            .clone()
            .unwrap_or_else(|| start.verification_uri.clone());
        say(format!(
            "To log in to {} as `{}`, open {} on any device and enter the code {}",
            eg.def.display_name, id.name, start.verification_uri, start.user_code
        ));
        let _page = if opts.open_browser {
            open_browser_privately(&target, &opts.env)
        } else {
            None
        };
        let reply = egress::device_poll(http, l, &start).await?;
        say_account(http, l, &reply, say).await;
        return Ok(reply);
    }
    let listeners = bind(&eg.redirect_uri)
        .await
        .map_err(FetchError::permanent)?;
    let issuer = issuer_check(http, eg.def.issuer.as_deref()).await?;
    browser_login(l, http, opts, say, listeners, issuer).await
}

/// The browser part of a login, on listeners already bound to `redirect_uri`'s port and
/// with the callback's `iss` check decided: authorization URL (PKCE S256, `state`, and
/// `resource` where the identity has one), the wait for the callback, the code exchange.
pub async fn browser_login(
    l: Login<'_>,
    http: &Http,
    opts: LoginOptions,
    say: &dyn Fn(String),
    listeners: Vec<TcpListener>,
    issuer: IssuerCheck,
) -> Result<TokenReply, FetchError> {
    let (id, eg) = (l.id, l.eg);
    let state = random_b64(32);
    let pkce = eg.def.pkce.then(Pkce::new);
    let url = authorize_url(l, &state, pkce.as_ref()).map_err(FetchError::permanent)?;
    say(format!(
        "To log in to {} as `{}`, open this URL in a browser:\n\n  {url}\n",
        eg.def.display_name, id.name
    ));
    let redirect =
        reqwest::Url::parse(&eg.redirect_uri).map_err(|e| FetchError::permanent(e.to_string()))?;
    if opts.env.remote_shell {
        let port = redirect.port().unwrap_or(80);
        say(format!(
            "This is a remote shell: open the URL on your own computer after forwarding the port, e.g.\n  ssh -L {port}:127.0.0.1:{port} <this host>\nor use --device where the provider supports it."
        ));
    }
    let pasted = pasted_lines();
    if pasted.is_some() {
        say("If the browser cannot reach this machine, paste the address it ends on here and press Enter.".into());
    }
    let page = if opts.open_browser {
        let p = open_browser_privately(&url, &opts.env);
        if p.is_none() {
            say("(could not start a browser; open the URL yourself)".into());
        }
        p
    } else {
        None
    };
    let code = wait_for_code(
        listeners,
        redirect.path().to_string(),
        state,
        issuer,
        opts.timeout,
        pasted,
    )
    .await;
    drop(page);
    let reply = egress::exchange_code(http, l, &code?, pkce.as_ref().map(|p| p.verifier.as_str()))
        .await
        .map_err(|e| match e.kind {
            FailureKind::ReauthRequired => FetchError::permanent(e.message),
            _ => e,
        })?;
    say_account(http, l, &reply, say).await;
    Ok(reply)
}

/// Whether callbacks must carry `iss`: the provider's metadata
/// (`authorization_response_iss_parameter_supported`, RFC 9207) says so. Without an
/// issuer there is nothing to check; metadata that cannot be read leaves `iss` checked
/// only when present (with a warning); metadata naming another issuer is refused. The
/// metadata is looked for where MCP discovery looks (`mcpauth::as_metadata_candidates`:
/// RFC 8414's path-inserted URL first).
async fn issuer_check(http: &Http, issuer: Option<&str>) -> Result<IssuerCheck, FetchError> {
    let Some(issuer) = issuer else {
        return Ok(IssuerCheck::default());
    };
    let (mut required, mut wrong) = (None, None);
    for url in crate::mcpauth::as_metadata_candidates(issuer) {
        if crate::config::check_endpoint_url(&url).is_err() {
            break;
        }
        let found = crate::identity::oauth::fetch_document(
            http,
            &url,
            &format!("the provider's metadata {url}"),
            FailureKind::Permanent,
        )
        .await;
        let Ok(crate::identity::oauth::Document::Found(doc)) = found else {
            continue;
        };
        // A document of another issuer (a server answering every path with its root's)
        // is not this one's: look on, and refuse only if none is.
        if let Err(m) = crate::mcpauth::check_metadata_issuer(&doc, issuer, &url) {
            wrong.get_or_insert(m);
            continue;
        }
        required = Some(crate::mcpauth::iss_parameter_supported(&doc));
        break;
    }
    if required.is_none()
        && let Some(m) = wrong
    {
        return Err(FetchError::permanent(format!(
            "{m}; check the provider's `issuer`"
        )));
    }
    if required.is_none() {
        tracing::warn!(
            issuer = %crate::sanitize::redact_url(issuer, false),
            "cannot read the provider's metadata; the callback's `iss` is checked only when present"
        );
    }
    Ok(IssuerCheck {
        issuer: Some(issuer.to_string()),
        required: required.unwrap_or(false),
    })
}

/// Who a set of OpenID claims names: name, email or username, and the subject.
pub fn account_of(claims: &serde_json::Map<String, serde_json::Value>) -> Option<String> {
    let get = |k: &str| {
        claims
            .get(k)
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
    };
    let label = get("name")
        .or_else(|| get("preferred_username"))
        .or_else(|| get("email"))
        .or_else(|| get("login"));
    let email = get("email").filter(|e| Some(*e) != label);
    let sub = get("sub");
    let text = match (label, email, sub) {
        (Some(l), Some(e), _) => format!("{l} <{e}>"),
        (Some(l), None, Some(s)) if l != s => format!("{l} (sub {s})"),
        (Some(l), _, _) => l.to_string(),
        (None, _, Some(s)) => format!("sub {s}"),
        (None, _, None) => return None,
    };
    Some(crate::sanitize::escape(
        &text.chars().take(200).collect::<String>(),
    ))
}

/// Says which account the new token belongs to, from the ID token or the provider's
/// userinfo endpoint, so that a person notices a login to the wrong account.
async fn say_account(http: &Http, l: Login<'_>, reply: &TokenReply, say: &dyn Fn(String)) {
    let (id, eg) = (l.id, l.eg);
    let mut who = reply
        .id_token
        .as_ref()
        .and_then(|t| crate::identity::jwt::claims(t.expose()))
        .and_then(|c| account_of(&c));
    if who.is_none()
        && let Some(url) = eg.def.userinfo_url.as_deref()
        && let Ok(client) = http.client_checked(url)
        && let Ok(resp) = client
            .get(url)
            .bearer_auth(reply.access_token.expose())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
        && resp.status().is_success()
        && let Ok(body) =
            crate::identity::oauth::read_capped(resp, crate::identity::oauth::REPLY_MAX).await
        && let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body)
    {
        who = v.as_object().and_then(account_of);
    }
    say(match who {
        Some(w) => format!(
            "{}: the token belongs to {w}; if that is not your account, log in again (sign out of the provider in the browser first)",
            id.name
        ),
        None => format!(
            "{}: the provider did not say which account the token belongs to (no ID token or userinfo)",
            id.name
        ),
    });
}

/// What would make the provider give a refresh token, from its catalog entry.
pub fn no_refresh_token_hint(l: Login<'_>) -> String {
    let (id, eg) = (l.id, l.eg);
    if l.mcp().is_some() {
        return format!(
            "The authorization server of MCP server `{}` must allow refresh tokens for this client: ask its operator; if it wants a scope for them, add it to `scopes` under `auth.oauth`",
            id.name
        );
    }
    let mut ways = Vec::new();
    let asks_offline = id.scopes.iter().any(|s| s == "offline_access");
    if !asks_offline
        && (eg.def.scopes.iter().any(|s| s == "offline_access") || eg.def.issuer.is_some())
    {
        ways.push(format!(
            "ask for the `offline_access` scope (add it to `scopes:` of `{}`)",
            id.name
        ));
    }
    if !eg.def.auth_params.contains_key("prompt") {
        ways.push(format!(
            "send `prompt=consent` with the login (`auth_params: {{prompt: consent}}` under `providers: {}:`)",
            eg.provider
        ));
    }
    if ways.is_empty() {
        return format!(
            "mcp-credd already asks as the catalog says for {}; check that the app registration allows refresh tokens",
            eg.def.display_name
        );
    }
    format!("To get one: {}", ways.join("; or "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_matches_rfc7636_appendix_b() {
        let p = Pkce::from_verifier("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".into());
        assert_eq!(p.challenge, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
        assert_eq!(Pkce::new().verifier.len(), 43);
    }

    #[test]
    fn callbacks_are_judged_state_first() {
        let check = IssuerCheck {
            issuer: Some("https://idp".into()),
            required: false,
        };
        let j = |t: &str| judge(t, "/callback", "S", &check);
        assert_eq!(j("/callback?code=C&state=S"), Callback::Code("C".into()));
        assert_eq!(
            j("/callback?code=C&state=S&iss=https://idp/"),
            Callback::Code("C".into())
        );
        assert_eq!(
            j("/callback?code=C&state=S&iss=https://evil"),
            Callback::WrongIssuer(Some("https://evil".into()))
        );
        assert_eq!(j("/callback?code=C&state=X"), Callback::BadState);
        assert_eq!(j("/callback?code=C"), Callback::BadState);
        assert_eq!(
            j("/callback?error=access_denied&state=X"),
            Callback::BadState,
            "even errors need the state"
        );
        assert_eq!(
            j("/callback?error=access_denied&error_description=no&state=S"),
            Callback::Error("access_denied (no)".into())
        );
        assert_eq!(
            j("/callback?error=x&error_description=%1b%5b2J%0d%0aforged&state=S"),
            Callback::Error("x (\\u{1b}[2J\\r\\nforged)".into()),
            "the browser's text is escaped"
        );
        assert_eq!(j("/other?code=C&state=S"), Callback::NotOurs);
        assert_eq!(j("/favicon.ico"), Callback::NotOurs);
        assert_eq!(
            judge(
                "/callback?code=C&state=S&iss=x",
                "/callback",
                "S",
                &IssuerCheck::default()
            ),
            Callback::Code("C".into())
        );
        // RFC 9207: a provider that says it sends `iss` must send it.
        let strict = IssuerCheck {
            issuer: Some("https://idp".into()),
            required: true,
        };
        assert_eq!(
            judge("/callback?code=C&state=S", "/callback", "S", &strict),
            Callback::WrongIssuer(None)
        );
        assert!(wrong_issuer(None).contains("has no `iss`"));
        // An `iss` that happens to read "(none)" is an issuer like any other.
        let literal = judge(
            "/callback?code=C&state=S&iss=(none)",
            "/callback",
            "S",
            &strict,
        );
        assert_eq!(literal, Callback::WrongIssuer(Some("(none)".into())));
        let Callback::WrongIssuer(iss) = literal else {
            unreachable!()
        };
        assert_eq!(
            wrong_issuer(iss.as_deref()),
            "the callback came from issuer (none), not the provider's; refused"
        );
        assert_eq!(
            judge(
                "/callback?code=C&state=S&iss=https://idp",
                "/callback",
                "S",
                &strict
            ),
            Callback::Code("C".into())
        );
    }

    /// RFC 8414 §3.1: an issuer with a path has its metadata at the path-inserted URL,
    /// then OIDC's, as MCP discovery looks for them.
    #[tokio::test]
    async fn the_issuer_check_looks_where_rfc_8414_puts_the_metadata() {
        use crate::identity::grant::tests::{reply, server};
        let wrong = r#"{"issuer":"https://elsewhere.example/t"}"#;
        let (url, seen) = server(vec![
            // First check: the path-inserted RFC 8414 document answers.
            reply(
                "200 OK",
                "",
                r#"{"authorization_response_iss_parameter_supported":true}"#,
            ),
            // Second: another issuer's document is passed over for the next place.
            reply("404 Not Found", "", "{}"),
            reply("200 OK", "", wrong),
            reply(
                "200 OK",
                "",
                r#"{"authorization_response_iss_parameter_supported":false}"#,
            ),
            // Third: only other issuers' documents, refused.
            reply("404 Not Found", "", "{}"),
            reply("200 OK", "", wrong),
            reply("200 OK", "", wrong),
        ])
        .await;
        let origin = url.trim_end_matches("/token");
        let issuer = format!("{origin}/tenant/");
        let http = Http::new(crate::config::HttpPolicy::default()).unwrap();
        let check = issuer_check(&http, Some(&issuer)).await.unwrap();
        assert!(check.required);
        assert_eq!(check.issuer.as_deref(), Some(issuer.as_str()));
        let check = issuer_check(&http, Some(&issuer)).await.unwrap();
        assert!(!check.required);
        let e = issuer_check(&http, Some(&issuer)).await.unwrap_err();
        assert!(
            e.message
                .contains("is for issuer `https://elsewhere.example/t`"),
            "{}",
            e.message
        );
        let paths: Vec<String> = seen
            .await
            .unwrap()
            .iter()
            .map(|(head, _)| head.split(' ').nth(1).unwrap_or_default().to_string())
            .collect();
        let all = [
            "/.well-known/oauth-authorization-server/tenant",
            "/.well-known/openid-configuration/tenant",
            "/tenant/.well-known/openid-configuration",
        ];
        let mut want = vec![all[0]];
        want.extend(all);
        want.extend(all);
        assert_eq!(paths, want);
    }

    #[test]
    fn the_account_is_named() {
        let c = serde_json::json!({"sub": "u1", "name": "Alice", "email": "a@x.test"});
        let account_of = |v: &serde_json::Value| super::account_of(v.as_object().unwrap());
        assert_eq!(account_of(&c).unwrap(), "Alice <a@x.test>");
        let c = serde_json::json!({"sub": "u1", "preferred_username": "alice"});
        assert_eq!(account_of(&c).unwrap(), "alice (sub u1)");
        let c = serde_json::json!({"sub": "u1\u{1b}[2J"});
        assert_eq!(account_of(&c).unwrap(), "sub u1\\u{1b}[2J");
        assert_eq!(account_of(&serde_json::json!({})), None);
    }

    #[test]
    fn a_login_reads_the_environment_it_is_given() {
        let env = |kv: &[(&str, &str)]| {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<std::collections::HashMap<_, _>>()
        };
        let e = LoginEnv::from_env(&env(&[
            ("XDG_RUNTIME_DIR", "/run/user/1000"),
            ("BROWSER", "firefox"),
            ("SSH_CONNECTION", "10.0.0.1 5000 10.0.0.2 22"),
        ]));
        assert_eq!(
            e.runtime_dir.as_deref(),
            Some(std::path::Path::new("/run/user/1000"))
        );
        assert_eq!(e.browser.as_deref(), Some("firefox"));
        assert!(e.remote_shell);
        // A relative runtime directory and an empty BROWSER count as unset.
        let e = LoginEnv::from_env(&env(&[("XDG_RUNTIME_DIR", "run"), ("BROWSER", "")]));
        assert_eq!(
            (e.runtime_dir, e.browser, e.remote_shell),
            (None, None, false)
        );
        // The launch page goes into the runtime directory it is given.
        let dir = std::env::temp_dir().join(format!("mcp-credd-rt-{}", random_b64(6)));
        std::fs::create_dir(&dir).unwrap();
        let f = LaunchFile::create("https://idp.example/a", Some(&dir)).unwrap();
        assert!(f.path.starts_with(&dir), "{}", f.path.display());
        drop(f);
        std::fs::remove_dir(&dir).unwrap();
    }

    #[test]
    fn the_launch_file_holds_the_url_privately_and_goes_away() {
        use std::os::unix::fs::PermissionsExt;
        let url = "https://idp.example/authorize?state=S&x=\"<b>";
        let f = LaunchFile::create(url, None).unwrap();
        let html = std::fs::read_to_string(&f.path).unwrap();
        assert!(html.contains("state=S&amp;x=&quot;&lt;b&gt;"), "{html}");
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&f.path), 0o600);
        assert_eq!(mode(f.path.parent().unwrap()), 0o700);
        let (p, d) = (f.path.clone(), f.path.parent().unwrap().to_path_buf());
        drop(f);
        assert!(!p.exists() && !d.exists());
    }
}
