//! One identity's whole life, with the real binary against real servers on 127.0.0.1
//! (oidc-provider, moto): a daemon that sees a login made in another terminal, tokens
//! bound to the identity they were obtained for, names that cannot leave the tokens
//! directory, logout, `token`, `headers` on demand, no token in files git would commit.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// A free redirect port, oidc-provider with the web client `mcp-web` redirecting to it
/// (its codes and tokens living `ttl` seconds), and a sandbox.
fn web_setup(ttl: &str) -> (u16, Idp, Sandbox) {
    let port = closed_port();
    let idp = Idp::with_web_client(port, &[("AC_TTL", ttl)]);
    (port, idp, Sandbox::new())
}

fn provider_yaml(idp: &Idp) -> String {
    format!(
        "providers:
  local:
    authorize_url: {base}/oauth2/authorize
    token_url: {base}/oauth2/token
    revocation_url: {base}/oauth2/revoke
    scopes: [openid, offline_access, profile]
",
        base = idp.base()
    )
}

fn egress_yaml(name: &str, port: u16, scopes: Option<&str>) -> String {
    let scopes = scopes
        .map(|s| format!("    scopes: [{s}]\n"))
        .unwrap_or_default();
    format!(
        "  - name: {name}
    provider: local
    client_id: mcp-web
    client_secret: mcp-web-secret
    redirect_uri: http://127.0.0.1:{port}/callback
    server: {name}
{scopes}"
    )
}

/// A config with `head` (its editors, timings...), the provider `local` with
/// `provider_extra` (more of its keys), and the egress identity `local` redirecting to `port`.
fn local_config(idp: &Idp, port: u16, head: &str, provider_extra: &str) -> String {
    format!(
        "gateway_url: https://gw.example.com
{head}{}{provider_extra}egress:
{}",
        provider_yaml(idp),
        egress_yaml("local", port, None)
    )
}

/// `mcp-credd login NAME --no-browser`, driven through the provider's login and consent
/// forms over plain HTTP; returns what the login printed.
fn login(sb: &Sandbox, name: &str, base: &str) -> Run {
    login_args(sb, &[name], base)
}

fn login_args(sb: &Sandbox, names: &[&str], base: &str) -> Run {
    let mut args = vec!["login"];
    args.extend_from_slice(names);
    args.extend_from_slice(&["--no-browser", "--timeout", "30"]);
    let l = Login::at(sb.command(&args), base);
    node_ok("drive-login.mjs", &[&l.url]);
    l.finish(Duration::from_secs(20))
}

#[test]
fn the_daemon_adopts_a_first_login_and_identities_added_by_a_reload() {
    let (port, idp, sb) = web_setup("8");
    let head = format!(
        "gateway_url: https://gw.example.com
editors: [reference]
refresh:
  before_expiry: 2s
  jitter: 0
  check_interval: 1s
http:
  attempts: 2
  initial_backoff: 100ms
{}egress:
",
        provider_yaml(&idp)
    );
    let cfg = sb.write_config(&format!("{head}{}", egress_yaml("first", port, None)));
    let d = Daemon::start(&sb, &["daemon", "-v"], &[]);
    d.wait_log("not logged in yet", 1, Duration::from_secs(10));

    // A login in another terminal: the daemon adopts the token and refreshes it on time
    // (8 s tokens, refreshed at 6 s), without any signal.
    let r = login(&sb, "first", &idp.base());
    assert_eq!(r.code, 0, "{r:?}");
    let t1 = sb.access_token("local-first-egress.json");
    d.wait_log("token refreshed", 1, Duration::from_secs(15));
    let t2 = sb.access_token("local-first-egress.json");
    assert_ne!(t1, t2, "the daemon refreshed the adopted token");

    // An identity added by a config edit is watched too: its first login is adopted.
    std::fs::write(
        &cfg,
        format!(
            "{head}{}{}",
            egress_yaml("first", port, None),
            egress_yaml("second", port, None)
        ),
    )
    .unwrap();
    d.wait_log("configuration reloaded", 1, Duration::from_secs(10));
    let r = login(&sb, "second", &idp.base());
    assert_eq!(r.code, 0, "{r:?}");
    let s1 = sb.access_token("local-second-egress.json");
    wait_until(
        Duration::from_secs(15),
        Duration::from_millis(200),
        || sb.access_token("local-second-egress.json") != s1,
        || {
            format!(
                "the daemon did not refresh the second identity; log:\n{}",
                d.log_text()
            )
        },
    );
    // Both are in the editors' copy.
    let roo = sb.read_json(&sb.tokens().join("mcp.json"));
    for name in ["first", "second"] {
        let shown = roo["mcpServers"][name]["headers"]["Authorization"].as_str();
        assert!(shown.is_some_and(|s| s.starts_with("Bearer ey")), "{roo}");
    }
    assert_eq!(sb.status_of("first")["state"], "valid");
    assert_eq!(sb.status_of("second")["state"], "valid");
}

#[test]
fn a_changed_token_url_unbinds_the_stored_token() {
    let a = Idp::start(&[]);
    let b = Idp::start(&[]);
    let sb = Sandbox::new();
    let config = |idp: &Idp| {
        format!(
            "gateway_url: https://gw.example.com
editors: [reference]
{}servers:
  - name: currenttime
",
            oidc_m2m_ingress(&idp.token_url())
        )
    };
    sb.write_config(&config(&a));
    assert_eq!(sb.run(&[]).code, 0);
    let old = sb.access_token("ingress.json");
    assert_eq!(
        jwt_claims(&old)["iss"],
        a.base().as_str(),
        "obtained from the first issuer"
    );

    // Same client id, another issuer: the old token is neither shown nor rendered...
    sb.write_config(&config(&b));
    let st = sb.status_of("ingress");
    assert_eq!(st["state"], "missing", "{st}");
    assert!(
        st["not_used"]
            .as_str()
            .unwrap()
            .contains(&format!("token endpoint `{}`", a.token_url())),
        "{st}"
    );
    let r = sb.run(&["render"]);
    assert!(r.stderr.contains("the stored token is not used"), "{r:?}");
    let roo = sb.read_json(&sb.tokens().join("mcp.json"));
    assert!(
        roo["mcpServers"]["currenttime"].get("headers").is_none(),
        "{roo}"
    );
    // ...`headers` gets a new one from the new issuer rather than serve it...
    let h = sb.run(&["headers", "currenttime"]);
    assert_eq!(h.code, 0, "{h:?}");
    assert!(!h.stdout.contains(&old), "{h:?}");
    assert_eq!(
        jwt_claims(&sb.access_token("ingress.json"))["iss"],
        b.base().as_str()
    );
    // ...and so would the next run, saying why.
    std::fs::write(
        sb.tokens().join("ingress.json"),
        serde_json::to_string(&serde_json::json!({
            "provider": "oidc_m2m", "access_token": old, "refresh_token": null,
            "expires_at": now_secs() + 3000.0, "expires_at_human": null, "client_id": "m2m-client",
            "binding": {"kind": "oidc_m2m", "endpoint": a.token_url(), "client_id": "m2m-client", "scopes": []}
        }))
        .unwrap(),
    )
    .unwrap();
    let r = sb.run(&[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("stored token is not used"), "{r:?}");
    let new = sb.access_token("ingress.json");
    assert_eq!(jwt_claims(&new)["iss"], b.base().as_str());
    let roo = sb.read_json(&sb.tokens().join("mcp.json"));
    assert_eq!(
        roo["mcpServers"]["currenttime"]["headers"]["X-Authorization"],
        format!("Bearer {new}")
    );
}

#[test]
fn a_changed_username_unbinds_the_service_accounts_token() {
    let m = Moto::start();
    let sb = Sandbox::new();
    let config = |user: &str| {
        format!(
            "gateway_url: https://gw.example.com
editors: [reference]
ingress:
  kind: cognito_password
  region: us-east-1
  user_pool_id: {pool}
  client_id: {cid}
  client_secret: {secret}
  username: {user}
  password: Svc-Passw0rd!
  endpoint_url: {ep}
http:
  attempts: 1
servers:
  - name: currenttime
",
            pool = m.pool_id,
            cid = m.client_id,
            secret = m.client_secret,
            ep = m.endpoint
        )
    };
    sb.write_config(&config("svc-account"));
    assert_eq!(sb.run(&[]).code, 0);
    let alice = sb.access_token("ingress.json");
    // Another user, whose sign-in fails (a temporary password): the first user's token is
    // not refreshed, not shown as valid, not written into the editors; the file stays.
    sb.write_config(&config("temp-user"));
    let r = sb.run(&[]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains(
            "the stored token is not used: it was obtained for username `svc-account`, the configuration says `temp-user`"
        ),
        "{r:?}"
    );
    assert!(!r.stdout.contains("kept the stored token"), "{r:?}");
    let roo = sb.read_json(&sb.tokens().join("mcp.json"));
    assert!(
        roo["mcpServers"]["currenttime"].get("headers").is_none(),
        "{roo}"
    );
    let st = sb.status_of("ingress");
    assert_ne!(st["state"], "valid", "{st}");
    assert!(st["not_used"].as_str().unwrap().contains("svc-account"));
    assert_eq!(sb.access_token("ingress.json"), alice, "nothing lost");
    // Back to the first user: its token is good again.
    sb.write_config(&config("svc-account"));
    let r = sb.run(&[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("stored token still valid"), "{r:?}");
}

#[test]
fn a_name_that_would_leave_the_tokens_directory_is_a_config_error() {
    let sb = Sandbox::new();
    std::fs::write(
        sb.home().join(".env"),
        "REGISTRY_URL=https://gw.example.com
INGRESS_OAUTH_USER_POOL_ID=us-east-1_AbC123
INGRESS_OAUTH_CLIENT_ID=c
INGRESS_OAUTH_CLIENT_SECRET=s
EGRESS_OAUTH_CLIENT_ID_1=id
EGRESS_OAUTH_CLIENT_SECRET_1=secret
EGRESS_OAUTH_REDIRECT_URI_1=http://localhost:8080/callback
EGRESS_MCP_SERVER_NAME_1=../../evil
",
    )
    .unwrap();
    for args in [&[][..], &["status"], &["login"], &["daemon"]] {
        let r = sb.run(args);
        assert_eq!(r.code, 3, "{args:?}: {r:?}");
        assert!(
            r.stderr
                .contains(".env:8: EGRESS_MCP_SERVER_NAME_1: `../../evil` starts with a dot"),
            "{r:?}"
        );
    }
    let evil: Vec<_> = walk(sb.home(), 4)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("evil"))
        .collect();
    assert!(evil.is_empty(), "{evil:?}");
    assert!(!sb.tokens().exists(), "nothing written");

    // The same in YAML, for an identity's name: the key and its line.
    sb.write_config("identities:\n  ok:\n    kind: oidc_m2m\n  ../x:\n    kind: oidc_m2m\n");
    let r = sb.run(&["status"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(
        r.stderr
            .contains("config.yaml:4: identities.../x: `../x` starts with a dot"),
        "{r:?}"
    );
}

/// A refresh-token grant at the provider, from outside mcp-credd: `error` of the reply, or
/// `ok` when it gave tokens.
fn try_refresh(idp: &Idp, refresh_token: &str) -> String {
    let script = format!(
        "const r = await fetch('{}', {{method: 'POST', headers: {{'content-type': 'application/x-www-form-urlencoded', authorization: 'Basic ' + Buffer.from('mcp-web:mcp-web-secret').toString('base64')}}, body: new URLSearchParams({{grant_type: 'refresh_token', refresh_token: process.env.PROBE_REFRESH_TOKEN}})}}); const j = await r.json(); console.log(j.error || (j.access_token ? 'ok' : JSON.stringify(j)));",
        idp.token_url()
    );
    let out = Command::new("node")
        // Through the environment: a token starting with `-` would be taken for a flag.
        .args(["--input-type=module", "-e", &script])
        .env("PROBE_REFRESH_TOKEN", refresh_token)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if said.is_empty() {
        return format!("probe failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    said
}

const USER_VSCODE: &str = r#"{
  // my own servers, by hand
  "servers": {
    "mine": { "type": "http", "url": "https://mine.example/mcp", "headers": { "Authorization": "Bearer my-own" } }, // keep me
  },
  "inputs": [],
}
"#;

/// Writes [`USER_VSCODE`] as the workspace file `~/proj/.vscode/mcp.json`; returns its path.
fn write_user_vscode(sb: &Sandbox) -> std::path::PathBuf {
    let vscode = sb.home().join("proj/.vscode/mcp.json");
    std::fs::create_dir_all(vscode.parent().unwrap()).unwrap();
    std::fs::write(&vscode, USER_VSCODE).unwrap();
    vscode
}

#[test]
fn logout_revokes_deletes_and_cleans_the_editor_files_only_of_our_headers() {
    let (port, idp, sb) = web_setup("3600");
    let vscode = write_user_vscode(&sb);
    sb.write_config(&local_config(
        &idp,
        port,
        "editors: [reference, {format: vscode, path: ~/proj/.vscode/mcp.json}]\n",
        "",
    ));
    let r = login(&sb, "local", &idp.base());
    assert_eq!(r.code, 0, "{r:?}");
    let file = sb.tokens().join("local-local-egress.json");
    let rt = sb.read_json(&file)["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    let at = sb.access_token("local-local-egress.json");
    assert!(std::fs::read_to_string(&vscode).unwrap().contains(&at));
    assert_eq!(
        try_refresh(&idp, "not-a-token"),
        "invalid_grant",
        "the probe works"
    );

    let r = sb.run(&["logout", "local"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains(&format!(
            "local: revoked the refresh token at {}/oauth2/revoke",
            idp.base()
        )) && (r.stdout.contains("local: revoked the access token")
            || r.stdout
                .contains("local: the provider does not revoke access tokens"))
            && r.stdout
                .contains(&format!("local: deleted {}", file.display()))
            && r.stdout.contains(&format!("wrote {}", vscode.display())),
        "{r:?}"
    );
    assert!(!file.exists());
    assert!(!sb.tokens().join(".mcp-credd/local.state.json").exists());
    // The provider no longer honours the grant.
    assert_eq!(try_refresh(&idp, &rt), "invalid_grant");
    // The editors keep our entry, without headers; the user's entries, comments and
    // trailing commas are byte for byte what they were.
    let text = std::fs::read_to_string(&vscode).unwrap();
    assert!(!text.contains(&at) && !text.contains("Bearer ey"), "{text}");
    let v: serde_json::Value = serde_json::from_str(
        &text
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .map(|l| l.split(" // ").next().unwrap())
            .collect::<Vec<_>>()
            .join("\n")
            .replace(",\n  }", "\n  }")
            .replace(",\n}", "\n}"),
    )
    .unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(
        v["servers"]["local"]["url"],
        "https://gw.example.com/local/mcp"
    );
    assert!(v["servers"]["local"].get("headers").is_none(), "{text}");
    for line in USER_VSCODE
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.contains("\"servers\""))
    {
        if line.trim() == "}," || line.trim() == "}" {
            continue;
        }
        assert!(text.contains(line), "lost {line:?}:\n{text}");
    }
    let roo = sb.read_json(&sb.tokens().join("mcp.json"));
    assert!(roo["mcpServers"]["local"].get("headers").is_none(), "{roo}");
    assert_eq!(sb.status_of("local")["state"], "needs_login");
    // Again: nothing left to do, and it says so.
    let r = sb.run(&["logout", "--all"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("local: no stored token"), "{r:?}");
}

#[test]
fn headers_past_expiry_refresh_first_and_token_prints_the_token() {
    let (port, idp, sb) = web_setup("3");
    sb.write_config(&local_config(
        &idp,
        port,
        "editors: [{format: claude_code, path: ~/proj/.mcp.json}]
http:
  attempts: 2
  initial_backoff: 100ms
",
        "",
    ));
    let r = login(&sb, "local", &idp.base());
    assert_eq!(r.code, 0, "{r:?}");
    let old = sb.access_token("local-local-egress.json");
    std::thread::sleep(Duration::from_millis(3500));
    // Claude Code runs `mcp-credd headers` with the server's name in its environment.
    let started = Instant::now();
    let h = sb.run_env(&["headers"], &[("CLAUDE_CODE_MCP_SERVER_NAME", "local")]);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(h.code, 0, "{h:?}");
    let v: serde_json::Value = serde_json::from_str(&h.stdout).unwrap();
    let new = sb.access_token("local-local-egress.json");
    assert_ne!(new, old, "refreshed before printing");
    assert_eq!(v["Authorization"], format!("Bearer {new}"));
    let t = sb.run(&["token", "local"]);
    assert_eq!((t.code, t.stdout.trim()), (0, new.as_str()), "{t:?}");
    // Expired and the provider gone: nothing on stdout, exit 1, well within the limit.
    drop(idp);
    std::thread::sleep(Duration::from_millis(3500));
    let started = Instant::now();
    let h = sb.run(&["headers", "local"]);
    assert!(started.elapsed() < Duration::from_secs(10), "{h:?}");
    assert_eq!((h.code, h.stdout.as_str()), (1, ""), "{h:?}");
    assert!(
        h.stderr.contains("no usable token for server `local`"),
        "{h:?}"
    );
    let t = sb.run(&["token", "local"]);
    assert_eq!((t.code, t.stdout.as_str()), (1, ""), "{t:?}");
}

#[test]
fn a_provider_that_gives_no_refresh_token() {
    let (port, idp, sb) = web_setup("6");
    // A provider of one's own given by its issuer only (discovery gives the endpoints);
    // `short` asks for no offline_access, so the provider gives no refresh token.
    sb.write_config(&format!(
        "gateway_url: https://gw.example.com
editors: [reference]
providers:
  local:
    issuer: {}
egress:
{}{}",
        idp.base(),
        egress_yaml("short", port, Some("openid, profile")),
        egress_yaml("kept", port, Some("openid, offline_access"))
    ));
    let r = login(&sb, "short", &idp.base());
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr
            .contains("short: the provider gave no refresh token")
            && r.stderr.contains("`offline_access`")
            && r.stderr.contains("prompt=consent"),
        "{r:?}"
    );
    let st = sb.status_of("short");
    assert_eq!(
        (st["state"].as_str(), st["refresh_token_held"].as_bool()),
        (Some("valid"), Some(false)),
        "{st}"
    );
    let table = sb.run(&["status"]).stdout;
    assert!(table.contains("no refresh token held"), "{table}");
    let r = login(&sb, "kept", &idp.base());
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!r.stderr.contains("no refresh token"), "{r:?}");
    assert_eq!(sb.status_of("kept")["refresh_token_held"], true);

    // --force cannot renew it: the still-valid token is kept.
    let before = sb.access_token("local-short-egress.json");
    let r = sb.run(&["--egress-only", "--provider", "short", "--force"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr
            .contains("no refresh token is held, so --force keeps the still-valid token"),
        "{r:?}"
    );
    assert_eq!(sb.access_token("local-short-egress.json"), before);

    // Once it expires only a login helps; `login` with no name logs in exactly that one.
    std::thread::sleep(Duration::from_millis(6500));
    let st = sb.run(&["status", "--json"]);
    assert_eq!(st.code, 4, "{st:?}");
    assert_eq!(sb.status_of("short")["state"], "needs_login");
    assert_ne!(sb.status_of("kept")["state"], "needs_login");
    let r = login_args(&sb, &[], &idp.base());
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("To log in to local as `short`"), "{r:?}");
    assert!(!r.stdout.contains("as `kept`"), "{r:?}");
    assert!(r.stdout.contains("kept: holds a refresh token"), "{r:?}");
    assert_eq!(sb.status_of("short")["state"], "valid");
}

#[test]
fn a_workspace_file_git_would_commit_gets_no_token() {
    let idp = Idp::start(&[]);
    let sb = Sandbox::new();
    let repo = sb.home().join("proj");
    std::fs::create_dir_all(&repo).unwrap();
    let git = |args: &[&str]| {
        let st = Command::new("git")
            .arg("-C")
            .arg(&repo)
            .args(args)
            .env("HOME", sb.home())
            .output()
            .unwrap();
        assert!(
            st.status.success(),
            "{}",
            String::from_utf8_lossy(&st.stderr)
        );
    };
    git(&["init", "-q"]);
    sb.write_config(&format!(
        "gateway_url: https://gw.example.com
{}servers:
  - name: currenttime
editors:
  - {{format: vscode, path: ~/proj/.vscode/mcp.json}}
  - {{format: claude_code, path: ~/proj/.mcp.json}}
  - {{format: cursor, path: ~/proj/.cursor/mcp.json, allow_tracked: true}}
",
        oidc_m2m_ingress(&idp.token_url())
    ));
    let r = sb.run(&[]);
    assert_eq!(r.code, 0, "{r:?}");
    let tok = sb.access_token("ingress.json");
    let vscode = repo.join(".vscode/mcp.json");
    assert!(
        r.stderr.contains(&format!(
            "{}: no tokens written: it is inside the git work tree {}, and git does not ignore it",
            vscode.display(),
            repo.display()
        )),
        "{r:?}"
    );
    let text = std::fs::read_to_string(&vscode).unwrap();
    assert!(!text.contains(&tok), "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        v["servers"]["currenttime"]["url"],
        "https://gw.example.com/currenttime/mcp"
    );
    assert!(v["servers"]["currenttime"].get("headers").is_none());
    // Claude Code's project file names the helper, never a token.
    let claude = std::fs::read_to_string(repo.join(".mcp.json")).unwrap();
    assert!(!claude.contains(&tok), "{claude}");
    let c: serde_json::Value = serde_json::from_str(&claude).unwrap();
    let helper = c["mcpServers"]["currenttime"]["headersHelper"]
        .as_str()
        .unwrap();
    assert!(helper.ends_with("mcp-credd headers"), "{helper}");
    assert!(c["mcpServers"]["currenttime"].get("headers").is_none());
    // ...and that helper, run as Claude Code runs it, gives the headers.
    let out = Command::new("sh")
        .args(["-c", helper])
        .env_clear()
        .env("HOME", sb.home())
        .env("PATH", std::env::var("PATH").unwrap())
        .env("CLAUDE_CODE_MCP_SERVER_NAME", "currenttime")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let h: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(h["X-Authorization"], format!("Bearer {tok}"));
    // Allowed explicitly: written.
    let cursor = std::fs::read_to_string(repo.join(".cursor/mcp.json")).unwrap();
    assert!(cursor.contains(&tok));
    // doctor says why too.
    let d = sb.run(&["doctor"]);
    assert!(
        d.stdout
            .contains("gets no tokens: it is inside the git work tree"),
        "{d:?}"
    );
    // Once git ignores it, it gets its token.
    std::fs::write(repo.join(".gitignore"), ".vscode/\n").unwrap();
    let r = sb.run(&["render"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!r.stderr.contains("no tokens written"), "{r:?}");
    let v = sb.read_json(&vscode);
    assert_eq!(
        v["servers"]["currenttime"]["headers"]["X-Authorization"],
        format!("Bearer {tok}")
    );
}

/// `logout` while the servers source cannot be read: the entries written for its servers
/// are kept verbatim (tokens in their headers included), so the logout is not clean and
/// says so with a non-zero exit, instead of claiming the token is gone from the editors.
#[test]
fn logout_with_the_servers_source_gone_says_the_editors_still_hold_the_token() {
    let idp = Idp::start(&[]);
    let sb = Sandbox::new();
    let gw = sb.home().join("gw");
    std::fs::create_dir_all(gw.join("registry/servers")).unwrap();
    std::fs::write(
        gw.join("registry/servers/currenttime.json"),
        r#"{"server_name":"Current Time","path":"/currenttime/","proxy_pass_url":"http://x:8000/","supported_transports":["streamable-http"]}"#,
    )
    .unwrap();
    let env = gw.join(".env");
    std::fs::write(
        &env,
        format!(
            "REGISTRY_URL=https://gw.example.com\nINGRESS_OAUTH_USER_POOL_ID=us-east-1_AbC123\nINGRESS_OAUTH_CLIENT_ID=m2m-client\nINGRESS_OAUTH_CLIENT_SECRET=m2m-secret\nINGRESS_OAUTH_TOKEN_URL={}\n",
            idp.token_url()
        ),
    )
    .unwrap();
    let env_s = env.to_str().unwrap();
    let r = sb.run(&["--env-file", env_s]);
    assert_eq!(r.code, 0, "{r:?}");
    let vscode = sb.home().join(".config/Code/User/mcp.json");
    let tok = sb.read_json(&sb.tokens().join("ingress.json"))["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(std::fs::read_to_string(&vscode).unwrap().contains(&tok));

    std::fs::rename(gw.join("registry"), gw.join("registry.moved")).unwrap();
    let r = sb.run(&["--env-file", env_s, "logout", "--all"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("still hold the removed token"), "{r:?}");
    assert!(!sb.tokens().join("ingress.json").exists(), "{r:?}");

    // With the source back, `render` finishes the job.
    std::fs::rename(gw.join("registry.moved"), gw.join("registry")).unwrap();
    let r = sb.run(&["--env-file", env_s, "render"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!std::fs::read_to_string(&vscode).unwrap().contains(&tok));
}

/// An editor dropped from `editors:` after mcp-credd wrote into it: `logout` still removes
/// our entry (and its token) from that file, and the user's text stays byte for byte.
#[test]
fn logout_cleans_an_editor_file_no_longer_listed() {
    let (port, idp, sb) = web_setup("3600");
    let vscode = write_user_vscode(&sb);
    let config = |editors: &str| local_config(&idp, port, &format!("editors: [{editors}]\n"), "");
    sb.write_config(&config(
        "reference, {format: vscode, path: ~/proj/.vscode/mcp.json}",
    ));
    let r = login(&sb, "local", &idp.base());
    assert_eq!(r.code, 0, "{r:?}");
    let at = sb.access_token("local-local-egress.json");
    assert!(std::fs::read_to_string(&vscode).unwrap().contains(&at));
    let owned = sb.read_json(&sb.tokens().join(".mcp-credd/owned.json"));
    assert_eq!(
        owned["files"][vscode.display().to_string()]["format"],
        "vscode",
        "{owned}"
    );

    // The user stops using VS Code with mcp-credd, then logs out.
    sb.write_config(&config("reference"));
    let r = sb.run(&["logout", "local"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains(&format!(
            "{}: no longer in `editors`; removed the entries mcp-credd wrote there",
            vscode.display()
        )) && r.stdout.contains(&format!("wrote {}", vscode.display())),
        "{r:?}"
    );
    assert_eq!(std::fs::read_to_string(&vscode).unwrap(), USER_VSCODE);
    let owned = sb.read_json(&sb.tokens().join(".mcp-credd/owned.json"));
    assert!(
        owned["files"].get(vscode.display().to_string()).is_none(),
        "{owned}"
    );
    // The listed copies keep their entry, without the token.
    let roo = sb.read_json(&sb.tokens().join("mcp.json"));
    assert!(roo["mcpServers"]["local"].get("headers").is_none(), "{roo}");
    // Nothing more to do: the file is not touched again.
    let r = sb.run(&["render"]);
    assert!(!r.stdout.contains(&vscode.display().to_string()), "{r:?}");
}

/// The accessible-resources stand-in (`tests/sites/accessible_resources.py`), by PID.
struct Sites {
    server: Server,
    dir: tempfile::TempDir,
}

impl Sites {
    fn start() -> Sites {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(
            || {
                let mut c = Command::new("python3");
                c.arg(
                    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                        .join("tests/sites/accessible_resources.py"),
                )
                .arg(dir.path().join("mode"))
                .arg(dir.path().join("seen"));
                c
            },
            "the sites server",
        );
        Sites { server, dir }
    }
    fn answer(&self, mode: &str) {
        std::fs::write(self.dir.path().join("mode"), mode).unwrap();
    }
    fn url(&self) -> String {
        format!("{}/oauth/token/accessible-resources", self.server.base())
    }
    /// The Authorization header of every request so far.
    fn seen(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("seen"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

/// A site id (Atlassian's cloud id) that could not be read at login is asked for at each
/// refresh until it is known, then recorded and rendered as the provider's header.
#[test]
fn a_site_id_missed_at_login_is_read_by_a_later_refresh() {
    let (port, idp, sb) = web_setup("3600");
    let sites = Sites::start();
    sb.write_config(&local_config(
        &idp,
        port,
        "editors: [reference]\n",
        &format!(
            "    extras:\n      cloud_id: {{url: '{}', header: X-Atlassian-Cloud-Id}}\n",
            sites.url()
        ),
    ));
    let file = sb.tokens().join("local-local-egress.json");
    let roo_headers =
        || sb.read_json(&sb.tokens().join("mcp.json"))["mcpServers"]["local"]["headers"].clone();

    // Login while the endpoint fails: logged in, without a site id, and told so.
    sites.answer("fail");
    let r = login(&sb, "local", &idp.base());
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.all()
            .contains("logged in, but the site id could not be read")
            && r.all()
                .contains("servers get no X-Atlassian-Cloud-Id header until a refresh reads it"),
        "{r:?}"
    );
    assert!(
        sb.read_json(&file)
            .get("cloud_id")
            .is_none_or(|c| c.is_null())
    );
    assert!(
        roo_headers().get("X-Atlassian-Cloud-Id").is_none(),
        "{}",
        roo_headers()
    );
    let at = sb.access_token("local-local-egress.json");
    assert_eq!(sites.seen(), [format!("Bearer {at}")]);

    // A refresh while it still fails: the refresh itself succeeds, the id stays unknown.
    let r = sb.run(&["--egress-only", "--provider", "local", "--force"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        sb.read_json(&file)
            .get("cloud_id")
            .is_none_or(|c| c.is_null())
    );
    assert_eq!(sites.seen().len(), 2);

    // The endpoint is back: the next refresh records the id and the editors get it.
    sites.answer("ok");
    let r = sb.run(&["--egress-only", "--provider", "local", "--force"]);
    assert_eq!(r.code, 0, "{r:?}");
    let at = sb.access_token("local-local-egress.json");
    assert_eq!(
        sites.seen().last().unwrap(),
        &format!("Bearer {at}"),
        "asked with the new token"
    );
    assert_eq!(
        sb.read_json(&file)["cloud_id"],
        "1324a887-45db-1bf4-1e99-ef0ff456d421"
    );
    assert_eq!(
        roo_headers()["X-Atlassian-Cloud-Id"],
        "1324a887-45db-1bf4-1e99-ef0ff456d421"
    );
    // Known now: later refreshes do not ask again.
    let r = sb.run(&["--egress-only", "--provider", "local", "--force"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(sites.seen().len(), 3);
    assert_eq!(
        sb.read_json(&file)["cloud_id"],
        "1324a887-45db-1bf4-1e99-ef0ff456d421"
    );
}
