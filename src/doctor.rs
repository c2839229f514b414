//! `mcp-credd doctor`: checks the setup and says what to do. The judgements (a token's
//! claims against the config, file modes, clock skew) are pure functions; `run` gathers
//! the facts (files, one request per endpoint) and prints or returns the findings.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde::Serialize;

use crate::clock::{Clock, Ts};
use crate::config::{Config, Endpoint, IdentityConfig};
use crate::dirs::Dirs;
use crate::identity::jwt;
use crate::identity::oauth::Http;
use crate::render::formats::syntax;
use crate::render::jsonc::Doc;
use crate::render::targets::resolve;
use crate::store::TokenRecord;
use crate::store::atomic::euid;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Finding {
    pub level: Level,
    pub check: String,
    pub message: String,
    /// What to do about it, when something is wrong.
    pub hint: Option<String>,
}

fn f(level: Level, check: &str, message: impl Into<String>, hint: Option<&str>) -> Finding {
    Finding {
        level,
        check: check.into(),
        message: message.into(),
        hint: hint.map(str::to_string),
    }
}

/// A file or directory's mode and owner against what it should be.
pub fn judge_mode(path: &Path, mode: u32, uid: u32, want: u32, me: u32) -> Finding {
    let check = format!("permissions {}", path.display());
    if uid != me {
        return f(
            Level::Fail,
            &check,
            format!("owned by uid {uid}, not you"),
            Some("move it away; mcp-credd refuses files owned by others"),
        );
    }
    if mode & 0o077 != 0 {
        return f(
            Level::Fail,
            &check,
            format!("mode {:o}: readable by other users", mode & 0o777),
            Some(&format!("chmod {:o} {}", want, path.display())),
        );
    }
    f(
        Level::Ok,
        &check,
        format!("mode {:o}, yours", mode & 0o777),
        None,
    )
}

/// A stored token's own claims (read without verification) against the configuration.
pub fn judge_token(id: &IdentityConfig, rec: &TokenRecord, now: Ts) -> Vec<Finding> {
    let check = format!("token {}", id.name);
    let mut out = Vec::new();
    if let Some(c) = &rec.client_id
        && c != &id.client_id
    {
        out.push(f(
            Level::Fail,
            &check,
            format!(
                "stored for client `{c}`, configured client is `{}`",
                id.client_id
            ),
            Some("run mcp-credd --force to replace it"),
        ));
    }
    match rec.expires_at {
        Some(e) if Ts::from_secs_f64(e) <= now => out.push(f(
            Level::Warn,
            &check,
            "expired",
            Some("run mcp-credd (or start the daemon) to refresh it"),
        )),
        _ => {}
    }
    let Some(claims) = jwt::claims(rec.access_token.expose()) else {
        out.push(f(
            Level::Ok,
            &check,
            "opaque access token (not a JWT): nothing more to check",
            None,
        ));
        return out;
    };
    if let Some(cid) = claims.get("client_id").and_then(|v| v.as_str())
        && id.egress().is_none()
        && cid != id.client_id
    {
        out.push(f(
            Level::Fail,
            &check,
            format!(
                "the token's client_id claim is `{cid}`, the configured client is `{}`",
                id.client_id
            ),
            Some("run mcp-credd --force"),
        ));
    }
    if let (Some(exp), Some(stored)) = (claims.get("exp").and_then(|v| v.as_f64()), rec.expires_at)
        && (exp - stored).abs() > 120.0
    {
        out.push(f(Level::Warn, &check, format!("the token's exp claim differs from the recorded expiry by {:.0}s", exp - stored), Some("the provider's expires_in and the token disagree; mcp-credd refreshes by the earlier")));
    }
    if let Some(scope) = claims.get("scope").and_then(|v| v.as_str())
        && !id.scopes.is_empty()
    {
        let granted: Vec<&str> = scope.split(' ').collect();
        let missing: Vec<&str> = id
            .scopes
            .iter()
            .map(String::as_str)
            .filter(|s| !granted.contains(s))
            .collect();
        if !missing.is_empty() {
            out.push(f(
                Level::Warn,
                &check,
                format!("scopes asked for but not granted: {}", missing.join(", ")),
                Some("check the client's allowed scopes at the provider"),
            ));
        }
    }
    // Claims are the token issuer's text: escaped before they are shown.
    for x in &mut out {
        x.message = crate::sanitize::escape(&x.message);
    }
    let who = ["iss", "aud", "sub"]
        .iter()
        .filter_map(|k| {
            claims.get(*k).map(|v| {
                format!(
                    "{k}={}",
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string())
                )
            })
        })
        .collect::<Vec<_>>()
        .join(", ");
    let who = crate::sanitize::escape(&who);
    if out.is_empty() {
        out.push(f(
            Level::Ok,
            &check,
            format!("claims fit the configuration ({who})"),
            None,
        ));
    }
    out
}

/// The provider's clock against ours, from an HTTP Date header.
pub fn judge_skew(endpoint: &str, date: Option<&str>, now: Ts) -> Option<Finding> {
    let t = crate::timefmt::parse_http_date(date?)?;
    let skew = (t.0 - now.0) / 1000;
    let check = format!("clock {}", crate::sanitize::redact_url(endpoint, true));
    Some(if skew.abs() > 60 {
        f(
            Level::Warn,
            &check,
            format!("the provider's clock is {skew}s from ours"),
            Some("fix this machine's clock (timedatectl / NTP): expiries are judged by it"),
        )
    } else {
        f(
            Level::Ok,
            &check,
            format!("clocks agree within {}s", skew.abs()),
            None,
        )
    })
}

/// An MCP server's stored token, sent to the server once (both grants): what an editor
/// would meet with it. A 403 `insufficient_scope` or a refusal is a failure.
async fn mcp_token_check(
    http: &Http,
    id: &IdentityConfig,
    path: &std::path::Path,
    now: Ts,
    out: &mut Vec<Finding>,
) {
    use crate::mcpauth::interactive::{Standing, token_standing};
    let Endpoint::McpServer { server_url, .. } = &id.endpoint else {
        return;
    };
    let Some(rec) = stored_token(path)
        .ok()
        .flatten()
        .filter(|r| crate::binding::matches(r, id))
        .filter(|r| r.expires_at.is_none_or(|e| Ts::from_secs_f64(e) > now))
    else {
        return;
    };
    let check = format!("token {} at the MCP server", id.name);
    let interactive = id.mcp_login().is_some();
    match token_standing(http, server_url, rec.access_token.expose()).await {
        Standing::Accepted => out.push(f(
            Level::Ok,
            &check,
            format!("{server_url} accepts the stored token"),
            None,
        )),
        Standing::InsufficientScope { description, .. } => {
            let hint = if interactive {
                format!(
                    "run `mcp-credd --force` (a refresh records the scopes the server wants), then `mcp-credd login {}`, which asks for them",
                    id.name
                )
            } else {
                "allow this client the scopes the server needs at the authorization server, or set `scopes` under `auth.oauth`".to_string()
            };
            out.push(f(
                Level::Fail,
                &check,
                format!(
                    "{server_url} refuses the stored token for insufficient scope{}",
                    description.map(|d| format!(" ({d})")).unwrap_or_default()
                ),
                Some(&hint),
            ))
        }
        Standing::Refused(m) => out.push(f(Level::Fail, &check, m, None)),
    }
}

async fn probe(http: &Http, id: &IdentityConfig, now: Ts, out: &mut Vec<Finding>) {
    let (url, what) = match &id.endpoint {
        Endpoint::TokenUrl(u) => (u.clone(), "token endpoint"),
        Endpoint::Discovery { url, .. } => (url.clone(), "discovery document"),
        Endpoint::McpServer { server_url, .. } => (server_url.clone(), "MCP server"),
        Endpoint::CognitoApi => (crate::binding::endpoint_of(id), "Cognito API"),
    };
    let check = format!("reach {}", id.name);
    // What the findings show: never the URL's user name, password or query.
    let shown = crate::sanitize::redact_url(&url, true);
    let client = match http.client_for(&url) {
        Ok(c) => c,
        Err(e) => {
            out.push(f(Level::Fail, &check, e, None));
            return;
        }
    };
    match client.get(&url).send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let date = resp
                .headers()
                .get(reqwest::header::DATE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            if let Some(s) = judge_skew(&url, date.as_deref(), now) {
                out.push(s);
            }
            if what == "discovery document" {
                // The document as a refresh reads it: the one discovery fetch.
                match crate::identity::oauth::discover_token_endpoint(http, &url).await {
                    Ok(ep) => out.push(f(
                        Level::Ok,
                        &check,
                        format!(
                            "{what} {shown} lists token_endpoint {}",
                            crate::sanitize::escape(&ep)
                        ),
                        None,
                    )),
                    Err(e) => out.push(f(
                        Level::Fail,
                        &check,
                        e.message,
                        Some("set `token_url` or `domain`"),
                    )),
                }
            } else if (status == 404 || status == 410)
                && post_status(http, &url)
                    .await
                    .is_none_or(|s| s == 404 || s == 410)
            {
                // Some token endpoints route only POST: a 404 counts when POST says so too.
                out.push(f(
                    Level::Fail,
                    &check,
                    format!("{what} {shown} answers HTTP {status}: there is no such endpoint"),
                    Some("check the URL (`token_url`, `domain`, `issuer`)"),
                ));
            } else {
                // Any other answer shows the endpoint is there (a GET to a token endpoint is
                // usually refused with 400 or 405).
                out.push(f(
                    Level::Ok,
                    &check,
                    format!("{what} {shown} answers (HTTP {status})"),
                    None,
                ));
            }
        }
        Err(e) => out.push(f(
            Level::Fail,
            &check,
            format!(
                "{what} {shown}: {}",
                if e.is_timeout() {
                    "timed out".to_string()
                } else {
                    "could not connect".to_string()
                }
            ),
            Some("check the URL, the network and any proxy (HTTPS_PROXY)"),
        )),
    }
}

/// The status of a credential-less token request (changes nothing at the provider).
async fn post_status(http: &Http, url: &str) -> Option<u16> {
    http.client_for(url)
        .ok()?
        .post(url)
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

/// What `doctor` knows besides the configuration.
#[derive(Debug, Default)]
pub struct Facts {
    /// Secrets that could not be resolved, each naming its variable.
    pub missing_secrets: Vec<String>,
    pub servers_unavailable: Option<String>,
    pub unit: Option<UnitFacts>,
}

/// The installed unit against the one `install-service` would write now.
#[derive(Debug)]
pub struct UnitFacts {
    pub path: std::path::PathBuf,
    pub installed: String,
    /// `Err`: the current config cannot make a unit (why).
    pub wanted: Result<String, String>,
}

/// The lines that matter (ExecStart, ReadWritePaths, Type) of both units compared.
pub fn judge_unit(u: &UnitFacts) -> Finding {
    let check = format!("service {}", u.path.display());
    let key = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| {
                l.starts_with("ExecStart=")
                    || l.starts_with("ReadWritePaths=")
                    || l.starts_with("Type=")
            })
            .map(str::to_string)
            .collect()
    };
    match &u.wanted {
        Err(e) => f(
            Level::Fail,
            &check,
            format!("the installed unit cannot match this configuration: {e}"),
            None,
        ),
        Ok(w) => {
            let (have, want) = (key(&u.installed), key(w));
            let missing: Vec<&String> = want.iter().filter(|l| !have.contains(l)).collect();
            let extra: Vec<&String> = have.iter().filter(|l| !want.contains(l)).collect();
            if missing.is_empty() && extra.is_empty() {
                f(
                    Level::Ok,
                    &check,
                    "matches the configuration (binary, config source, writable paths)",
                    None,
                )
            } else {
                let mut msg = String::from("differs from the configuration:");
                for l in &extra {
                    msg.push_str(&format!(" installed `{l}`;"));
                }
                for l in &missing {
                    msg.push_str(&format!(" wanted `{l}`;"));
                }
                f(
                    Level::Fail,
                    &check,
                    msg.trim_end_matches(';').to_string(),
                    Some(
                        "run `mcp-credd install-service` again with the same options, then `systemctl --user daemon-reload && systemctl --user restart mcp-credd`",
                    ),
                )
            }
        }
    }
}

/// Asks the token endpoint for a token with the configured client (not stored): a wrong
/// secret, a wrong endpoint or a stored token from another provider shows up here.
async fn try_token(http: &Http, id: &IdentityConfig, stored: &Path, out: &mut Vec<Finding>) {
    let check = format!("credentials {}", id.name);
    let url = match crate::identity::oauth::resolve_token_endpoint(http, id).await {
        Ok(u) => u,
        Err(_) => return, // `probe` already said why.
    };
    match crate::identity::oauth::client_credentials(http, id, &url).await {
        Ok(reply) => {
            out.push(f(
                Level::Ok,
                &check,
                format!(
                    "{} issues a token to client `{}` (not stored)",
                    crate::sanitize::redact_url(&url, true),
                    id.client_id
                ),
                None,
            ));
            let fresh_iss = jwt::claims(reply.access_token.expose())
                .and_then(|c| c.get("iss").and_then(|v| v.as_str()).map(str::to_string));
            let rec = stored_token(stored).ok().flatten();
            let stored_iss = rec.as_ref().and_then(|r| {
                jwt::claims(r.access_token.expose())
                    .and_then(|c| c.get("iss").and_then(|v| v.as_str()).map(str::to_string))
            });
            if let (Some(a), Some(b)) = (&fresh_iss, &stored_iss)
                && a != b
            {
                out.push(f(
                    Level::Fail,
                    &format!("token {}", id.name),
                    format!("the stored token was issued by `{b}`; the configured provider issues `{a}`"),
                    Some("run mcp-credd --force to replace it"),
                ));
            }
        }
        Err(e) => out.push(f(
            Level::Fail,
            &check,
            format!("no token for client `{}`: {}", id.client_id, e.message),
            Some("check client_id and the client secret (in ~/.config/mcp-credd/env or the env file) against the provider's console"),
        )),
    }
}

fn mode_of(path: &Path, want: u32, out: &mut Vec<Finding>) {
    if let Ok(m) = std::fs::symlink_metadata(path) {
        out.push(judge_mode(path, m.mode(), m.uid(), want, euid()));
    }
}

/// The token file at `path` read as the store reads it (no symlink, no FIFO or device,
/// owned by the user, size-capped), its mode left as it is; `Ok(None)` if there is none.
fn stored_token(path: &Path) -> Result<Option<TokenRecord>, String> {
    let Some(bytes) = crate::store::atomic::read_private_as_is(path).map_err(|e| e.to_string())?
    else {
        return Ok(None);
    };
    serde_json::from_slice::<TokenRecord>(&bytes)
        .map(Some)
        .map_err(|_| format!("{} is not a valid token file", path.display()))
}

/// Runs every check.
pub async fn run(
    config: &Config,
    warnings: &[String],
    facts: &Facts,
    dirs: &Dirs,
    clock: &dyn Clock,
) -> Vec<Finding> {
    let now = clock.now();
    let mut out = vec![f(
        Level::Ok,
        "config",
        format!("configuration from {} is valid", config.origin),
        None,
    )];
    for w in warnings {
        out.push(f(Level::Warn, "config", w.clone(), None));
    }
    for m in &facts.missing_secrets {
        out.push(f(
            Level::Fail,
            "secret",
            m.clone(),
            Some("put VAR=value in ~/.config/mcp-credd/env (chmod 600) or export it; the service reads only that file"),
        ));
    }
    if let Some(why) = &facts.servers_unavailable {
        out.push(f(
            Level::Fail,
            "servers",
            why.clone(),
            Some("pass --servers-dir DIR (then run install-service again if the service uses it)"),
        ));
    }
    if let Some(u) = &facts.unit {
        out.push(judge_unit(u));
    }
    if !config.tokens_dir.exists() {
        out.push(f(
            Level::Warn,
            "tokens",
            format!("{} does not exist yet", config.tokens_dir.display()),
            Some("run mcp-credd once"),
        ));
    } else {
        mode_of(&config.tokens_dir, 0o700, &mut out);
    }
    let policy = crate::config::HttpPolicy {
        timeout_ms: 5_000,
        attempts: 1,
        ..config.http
    };
    let http = match Http::with_proxy(policy, &config.proxy) {
        Ok(h) => Some(h),
        Err(e) => {
            out.push(f(Level::Fail, "http", e, None));
            None
        }
    };
    for id in config.all_identities() {
        let path = config.tokens_dir.join(&id.file_name);
        match stored_token(&path) {
            Ok(Some(rec)) => {
                mode_of(&path, 0o600, &mut out);
                out.extend(judge_token(id, &rec, now));
            }
            Err(why) => out.push(f(
                Level::Fail,
                &format!("token {}", id.name),
                why,
                Some("delete it; the next run obtains a new one"),
            )),
            Ok(None) => {
                let hint = if id.egress().is_some() {
                    format!("run mcp-credd login {}", id.name)
                } else {
                    "run mcp-credd".to_string()
                };
                out.push(f(
                    Level::Warn,
                    &format!("token {}", id.name),
                    "no token stored yet",
                    Some(&hint),
                ));
            }
        }
        if let Some(h) = &http {
            probe(h, id, now, &mut out).await;
            mcp_token_check(h, id, &path, now, &mut out).await;
            if id.egress().is_none()
                && id.cognito().is_none()
                && id.client_secret.as_ref().is_some_and(|s| !s.is_empty())
            {
                try_token(h, id, &path, &mut out).await;
            }
        }
    }
    let (targets, problems) = resolve(&config.editors, dirs, &config.tokens_dir);
    for p in problems {
        out.push(f(Level::Warn, "editors", p, None));
    }
    for t in targets {
        let check = format!("editor {}", t.path.display());
        if !t.allow_tracked
            && t.format != crate::config::EditorFormat::ClaudeCode
            && let Some(why) = crate::render::write::git_exposure(&t.path)
        {
            out.push(f(
                Level::Warn,
                &check,
                format!("gets no tokens: {why}"),
                Some("add it to .gitignore, or set `allow_tracked: true` on this editor if it must hold them"),
            ));
        }
        match crate::render::write::read_editor_file(&t.path) {
            Ok(None) => out.push(f(
                Level::Warn,
                &check,
                "missing (written on the next run)",
                None,
            )),
            Err(why) => out.push(f(
                Level::Fail,
                &check,
                why,
                Some("a render leaves this file untouched until it is fixed"),
            )),
            Ok(Some(text)) => match Doc::parse(&text, syntax(t.format)) {
                Ok(_) => {
                    let ours = config
                        .servers
                        .iter()
                        .filter(|s| text.contains(&format!("\"{}\"", s.name)))
                        .count();
                    let level = if ours == config.servers.len() {
                        Level::Ok
                    } else {
                        Level::Warn
                    };
                    out.push(f(
                        level,
                        &check,
                        format!("parses; {ours} of {} servers present", config.servers.len()),
                        (level == Level::Warn).then_some("run mcp-credd render"),
                    ));
                }
                Err(e) => out.push(f(
                    Level::Fail,
                    &check,
                    format!("does not parse: {e}"),
                    Some("fix the file; mcp-credd leaves it untouched until then"),
                )),
            },
        }
    }
    out
}

pub fn render_text(findings: &[Finding]) -> String {
    let mut s = String::new();
    for x in findings {
        let tag = match x.level {
            Level::Ok => "ok  ",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
        };
        s.push_str(&format!("{tag}  {}: {}\n", x.check, x.message));
        if let Some(h) = &x.hint {
            s.push_str(&format!("      -> {h}\n"));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judge_unit_compares_what_the_service_runs_and_may_write() {
        let wanted = "[Service]\nType=notify\nExecStart=\"/bin/m\" \"--config\" \"/c.yaml\" daemon\nReadWritePaths=\"-/t\"\nLimitCORE=0\n";
        let unit = |installed: &str| UnitFacts {
            path: std::path::PathBuf::from("/u/mcp-credd.service"),
            installed: installed.to_string(),
            wanted: Ok(wanted.to_string()),
        };
        // Comments and other directives do not matter; the three keys do.
        let same = format!("# installed by hand\n{wanted}Restart=on-failure\n");
        assert_eq!(judge_unit(&unit(&same)).level, Level::Ok);
        let other_config = wanted.replace("/c.yaml", "/old.yaml");
        let r = judge_unit(&unit(&other_config));
        assert_eq!(r.level, Level::Fail);
        assert!(
            r.message.contains("/old.yaml") && r.hint.is_some(),
            "{}",
            r.message
        );
        let extra_path = format!("{wanted}ReadWritePaths=\"-/elsewhere\"\n");
        assert_eq!(judge_unit(&unit(&extra_path)).level, Level::Fail);
        let missing_path = wanted.replace("ReadWritePaths=\"-/t\"\n", "");
        assert_eq!(judge_unit(&unit(&missing_path)).level, Level::Fail);
        let cannot = UnitFacts {
            wanted: Err("no config".into()),
            ..unit(wanted)
        };
        assert_eq!(judge_unit(&cannot).level, Level::Fail);
    }

    #[test]
    fn modes() {
        let p = Path::new("/t");
        assert_eq!(judge_mode(p, 0o700, 1, 0o700, 1).level, Level::Ok);
        let w = judge_mode(p, 0o755, 1, 0o700, 1);
        assert_eq!(w.level, Level::Fail);
        assert_eq!(w.hint.as_deref(), Some("chmod 700 /t"));
        assert_eq!(judge_mode(p, 0o600, 2, 0o600, 1).level, Level::Fail);
    }

    #[test]
    fn dates_and_skew() {
        let now = Ts::from_secs(784_111_777);
        assert_eq!(
            judge_skew("u", Some("Sun, 06 Nov 1994 08:49:40 GMT"), now)
                .unwrap()
                .level,
            Level::Ok
        );
        assert_eq!(
            judge_skew("u", Some("Sun, 06 Nov 1994 08:59:37 GMT"), now)
                .unwrap()
                .level,
            Level::Warn
        );
        assert!(judge_skew("u", None, now).is_none());
    }
}
