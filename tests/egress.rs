//! Egress (3-legged) logins and refreshes, for real: `mcp-credd login` against oidc-provider
//! on 127.0.0.1 (PKCE required, refresh-token rotation on), driven over plain HTTP, through
//! a real headless Chromium, and with the device flow.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::Duration;

use common::*;

struct Setup {
    idp: Idp,
    sb: Sandbox,
    port: u16,
}

fn setup(ttl: &str) -> Setup {
    let port = closed_port();
    let idp = Idp::with_web_client(port, &[("AC_TTL", ttl)]);
    let sb = Sandbox::new();
    sb.write_config(&format!(
        "gateway_url: https://gw.example.com
{ingress}providers:
  local:
    display_name: Local IdP
    authorize_url: {base}/oauth2/authorize
    token_url: {base}/oauth2/token
    device_authorization_url: {base}/device/auth
    scopes: [openid, offline_access, profile]
    pkce: true
    token_auth: basic
    refresh: rotating
    issuer: {base}
egress:
  - name: local
    provider: local
    client_id: mcp-web
    client_secret: {{env: LOCAL_SECRET}}
    redirect_uri: http://127.0.0.1:{port}/callback
    server: tools
  - name: dev
    provider: local
    client_id: device-client
    client_secret: device-secret
    redirect_uri: http://127.0.0.1:{port}/callback
    server: devtools
http:
  attempts: 2
  initial_backoff: 100ms
",
        ingress = cognito_m2m_ingress(&idp.base(), "m2m-secret"),
        base = idp.base()
    ));
    Setup { idp, sb, port }
}

const ENV: &[(&str, &str)] = &[("LOCAL_SECRET", "mcp-web-secret")];

/// `mcp-credd login ARGS` running with [`ENV`] and `env`, waiting for the authorization
/// URL (a line starting with `url_prefix`) or the device code it printed.
fn start_login(s: &Setup, args: &[&str], url_prefix: &str, env: &[(&str, &str)]) -> Login {
    let mut all = vec!["login"];
    all.extend_from_slice(args);
    let mut c = s.sb.command(&all);
    for (k, v) in ENV.iter().chain(env) {
        c.env(k, v);
    }
    let prefix = url_prefix.to_string();
    Login::start(c, move |t| {
        t.starts_with(&prefix) || t.contains("enter the code")
    })
}

/// `login local --no-browser --timeout SECS`, waiting for its authorization URL.
fn start_local(s: &Setup, secs: &str) -> Login {
    start_login(
        s,
        &["local", "--no-browser", "--timeout", secs],
        &s.idp.base(),
        &[],
    )
}

fn raw_get(port: u16, target: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn token_file(s: &Setup) -> std::path::PathBuf {
    s.sb.tokens().join("local-tools-egress.json")
}

fn login_over_http(s: &Setup) {
    let l = start_local(s, "30");
    node_ok("drive-login.mjs", &[&l.url]);
    let r = l.finish(Duration::from_secs(20));
    assert_eq!(r.code, 0, "{r:?}");
}

/// Four processes refreshing `local` at once (`args`, with its secret): each succeeds.
fn refresh_at_once(s: &Setup, args: &[&str]) {
    let kids: Vec<Child> = (0..4)
        .map(|_| {
            let mut c = s.sb.command(args);
            c.env("LOCAL_SECRET", "mcp-web-secret")
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            c.spawn().unwrap()
        })
        .collect();
    for k in kids {
        let out = k.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn login_over_http_then_refresh_with_rotation_then_revocation() {
    let s = setup("3600");
    assert_eq!(s.sb.run_env(&["--ingress-only"], ENV).code, 0);
    let l = start_local(&s, "30");
    let url = &l.url;
    assert!(
        url.contains("code_challenge_method=S256") && url.contains("state="),
        "{url}"
    );
    // While it waits: a wrong state is refused, another path is 404.
    let bad = raw_get(s.port, "/callback?code=forged&state=wrong");
    assert!(bad.starts_with("HTTP/1.1 400"), "{bad}");
    assert!(raw_get(s.port, "/elsewhere").starts_with("HTTP/1.1 404"));
    let out = node_ok("drive-login.mjs", &[&l.url]);
    let cb: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cb["status"], 200, "{cb}");
    assert!(
        cb["callback_url"].as_str().unwrap().contains("iss="),
        "the provider sends iss: {cb}"
    );
    let r = l.finish(Duration::from_secs(20));
    assert_eq!(r.code, 0, "{r:?}");

    let file = token_file(&s);
    assert_eq!(mode(&file), 0o600);
    let t1 = s.sb.read_json(&file);
    assert_eq!(t1["provider"], "local");
    assert!(t1["refresh_token"].is_string() && t1["access_token"].is_string());
    assert!(t1["expires_at"].as_f64().unwrap() > now_secs() + 3000.0);
    assert!(
        t1["scopes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v == "offline_access")
    );
    let roo = s.sb.read_json(&s.sb.tokens().join("mcp.json"));
    let h = &roo["mcpServers"]["tools"]["headers"];
    assert_eq!(
        h["Authorization"],
        format!("Bearer {}", t1["access_token"].as_str().unwrap())
    );
    assert!(
        h["X-Authorization"]
            .as_str()
            .unwrap()
            .starts_with("Bearer "),
        "gateway headers too: {h}"
    );
    assert_eq!(
        roo["mcpServers"]["tools"]["url"],
        "https://gw.example.com/tools/mcp"
    );
    // `headers` and `render` (no network) see the provider token too.
    let hd = s.sb.run_env(&["headers", "tools"], ENV);
    assert_eq!(hd.code, 0, "{hd:?}");
    let hv: serde_json::Value = serde_json::from_str(&hd.stdout).unwrap();
    assert_eq!(
        hv["Authorization"],
        format!("Bearer {}", t1["access_token"].as_str().unwrap())
    );
    assert!(hv["X-Authorization"].is_string(), "{hv}");
    std::fs::remove_file(s.sb.tokens().join("mcp.json")).unwrap();
    assert_eq!(s.sb.run_env(&["render"], ENV).code, 0);
    let again = s.sb.read_json(&s.sb.tokens().join("mcp.json"));
    assert_eq!(
        again["mcpServers"]["tools"]["headers"]["Authorization"],
        h["Authorization"]
    );

    // Refresh with rotation: a new refresh token is stored.
    let r =
        s.sb.run_env(&["--egress-only", "--provider", "local", "--force"], ENV);
    assert_eq!(r.code, 0, "{r:?}");
    let t2 = s.sb.read_json(&file);
    assert_ne!(t2["refresh_token"], t1["refresh_token"]);
    assert_ne!(t2["access_token"], t1["access_token"]);

    // Several processes refreshing the same grant at once leave a working grant: the
    // provider revokes the whole grant on reuse, so a race would fail loudly.
    refresh_at_once(&s, &["--egress-only", "--force", "--provider", "local"]);
    let r = s.sb.run_env(&["--provider", "local", "--force"], ENV);
    assert_eq!(r.code, 0, "the grant survived the race: {r:?}");

    // Replaying an old refresh token makes the provider revoke the grant: re-authorization
    // required, said by status and the exit code; the other identities are unaffected.
    let mut t = s.sb.read_json(&file);
    t["refresh_token"] = t1["refresh_token"].clone();
    std::fs::write(&file, serde_json::to_string(&t).unwrap()).unwrap();
    let r = s.sb.run_env(&["--force"], ENV);
    assert_eq!(r.code, 4, "{r:?}");
    assert!(
        r.stderr.contains("invalid_grant") && r.stderr.contains("mcp-credd login local"),
        "{r:?}"
    );
    assert!(r.stdout.contains("ingress: new token obtained"), "{r:?}");
    let st = s.sb.run_env(&["status", "--json"], ENV);
    assert_eq!(st.code, 4, "{st:?}");
    let j: serde_json::Value = serde_json::from_str(&st.stdout).unwrap();
    let state = |n: &str| {
        j["identities"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == n)
            .unwrap()["state"]
            .clone()
    };
    assert_eq!(state("ingress"), "valid");
    assert_eq!(state("local"), "needs_login");
    assert_eq!(state("dev"), "needs_login");
}

#[test]
fn callback_refusals_timeout_port_in_use_and_denial() {
    let s = setup("3600");
    // Timeout.
    let r =
        s.sb.run_env(&["login", "local", "--no-browser", "--timeout", "1"], ENV);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("no login arrived within 1s"), "{r:?}");
    // Port already in use.
    let hold = std::net::TcpListener::bind(("127.0.0.1", s.port)).unwrap();
    let r =
        s.sb.run_env(&["login", "local", "--no-browser", "--timeout", "5"], ENV);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .contains(&format!("port {} of the redirect URI", s.port))
            && r.stderr.contains("already in use"),
        "{r:?}"
    );
    drop(hold);
    // The user says no at the consent screen.
    let l = start_local(&s, "30");
    node_ok("drive-login.mjs", &[&l.url, "--deny"]);
    let r = l.finish(Duration::from_secs(20));
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("access_denied"), "{r:?}");
    assert!(!token_file(&s).exists());
    // Nothing to refresh without a login: unattended runs say so and exit 4.
    let r = s.sb.run_env(&["--egress-only"], ENV);
    assert_eq!(r.code, 4, "{r:?}");
    assert!(
        r.stderr
            .contains("not logged in yet: run `mcp-credd login local`"),
        "{r:?}"
    );
}

#[test]
fn tokens_that_expire_in_seconds_are_refreshed_by_the_daemon_flow() {
    let s = setup("4");
    login_over_http(&s);
    let t1 = s.sb.read_json(&token_file(&s));
    std::thread::sleep(Duration::from_millis(2500));
    // Past half its 4 s life: due, refreshed without --force.
    let r = s.sb.run_env(&["--provider", "local"], ENV);
    assert_eq!(r.code, 0, "{r:?}");
    let t2 = s.sb.read_json(&token_file(&s));
    assert_ne!(t1["access_token"], t2["access_token"]);
    assert!(t2["expires_at"].as_f64().unwrap() > now_secs());
}

#[test]
fn device_login() {
    let s = setup("3600");
    let l = start_login(
        &s,
        &["dev", "--device", "--no-browser", "--timeout", "30"],
        "never-a-url",
        &[],
    );
    let code = l.url.rsplit(' ').next().unwrap().to_string();
    node_ok("drive-device.mjs", &[&s.idp.base(), &code]);
    let r = l.finish(Duration::from_secs(30));
    assert_eq!(r.code, 0, "{r:?}");
    let t =
        s.sb.read_json(&s.sb.tokens().join("local-devtools-egress.json"));
    assert!(
        t["access_token"].is_string() && t["refresh_token"].is_string(),
        "{t}"
    );
}

#[test]
fn login_through_a_real_browser() {
    let s = setup("3600");
    let l = start_local(&s, "60");
    let shot = s.sb.home().join("browser.png");
    let out = browser_login(&l.url, &["--screenshot", shot.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], 200, "{v}");
    assert!(
        v["text"]
            .as_str()
            .unwrap()
            .contains("mcp-credd received the login"),
        "{v}"
    );
    let r = l.finish(Duration::from_secs(30));
    assert_eq!(r.code, 0, "{r:?}");
    assert!(s.sb.read_json(&token_file(&s))["refresh_token"].is_string());
}

#[test]
fn a_request_flood_does_not_wedge_the_callback() {
    let s = setup("3600");
    let l = start_local(&s, "30");
    // 150 connections that never send a byte, and 150 forged callbacks.
    let idle: Vec<TcpStream> = (0..150)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", s.port)).ok())
        .collect();
    assert!(idle.len() > 100);
    let forged: Vec<std::thread::JoinHandle<String>> = (0..150)
        .map(|i| {
            let port = s.port;
            std::thread::spawn(move || {
                raw_get(port, &format!("/callback?code=forged{i}&state=wrong{i}"))
            })
        })
        .collect();
    for f in forged {
        assert!(f.join().unwrap().starts_with("HTTP/1.1 400"));
    }
    // The real login still gets through, and only its code is used.
    node_ok("drive-login.mjs", &[&l.url]);
    let r = l.finish(Duration::from_secs(20));
    assert_eq!(r.code, 0, "{r:?}");
    drop(idle);
    assert!(s.sb.read_json(&token_file(&s))["refresh_token"].is_string());
    // Once the code is taken the listener is gone: a late callback finds nobody.
    assert!(TcpStream::connect(("127.0.0.1", s.port)).is_err());
}

#[test]
fn concurrent_one_shots_and_the_daemon_keep_a_rotating_grant_alive() {
    let s = setup("4");
    login_over_http(&s);
    let mut daemon = Daemon::start(&s.sb, &["daemon"], &[("LOCAL_SECRET", "mcp-web-secret")]);
    // The daemon refreshes every ~2 s on its own; four one-shots force refreshes alongside.
    for _ in 0..4 {
        refresh_at_once(&s, &["--provider", "local", "--force"]);
        std::thread::sleep(Duration::from_millis(1500));
    }
    assert!(daemon.stop().success());
    let log_text = std::fs::read_to_string(&daemon.log).unwrap();
    assert!(!log_text.contains("invalid_grant"), "{log_text}");
    let r = s.sb.run_env(&["--provider", "local", "--force"], ENV);
    assert_eq!(r.code, 0, "the grant survived: {r:?}");
}

#[test]
fn the_authorization_url_never_reaches_a_command_line() {
    let s = setup("3600");
    // A "browser" that notes its PID and arguments and stays up for a while, as a real one would.
    let seen = s.sb.home().join("browser-seen");
    let fake = s.sb.home().join("fake-browser");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$$\" \"$@\" > {seen}.tmp && mv {seen}.tmp {seen}\nsleep 10\n",
            seen = seen.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let l = start_login(
        &s,
        &["local", "--timeout", "60"],
        &s.idp.base(),
        &[("BROWSER", fake.to_str().unwrap())],
    );
    wait_for(Duration::from_secs(15), Duration::from_millis(50), || {
        seen.exists()
    });
    let seen = std::fs::read_to_string(&seen).expect("the browser was started");
    let mut it = seen.lines();
    let pid = it.next().unwrap().to_string();
    let page = it.next().expect("the browser got an argument").to_string();
    // Another user reads the launcher's command line: a path, no URL, no state.
    let cmdline = as_nobody("cat", &[&format!("/proc/{pid}/cmdline")])
        .output()
        .unwrap();
    assert!(cmdline.status.success(), "{cmdline:?}");
    let cmdline = String::from_utf8_lossy(&cmdline.stdout).replace('\0', " ");
    assert!(cmdline.contains(&page), "{cmdline}");
    for secret in ["state=", "code_challenge", "authorize", "http"] {
        assert!(!cmdline.contains(secret), "{secret} in {cmdline}");
    }
    // The page itself is the user's alone.
    let peek = as_nobody("cat", &[&page]).output().unwrap();
    assert!(!peek.status.success(), "another user read the login page");
    let html = std::fs::read_to_string(&page).unwrap();
    assert_eq!(mode(std::path::Path::new(&page)), 0o600);
    let href = html
        .split("id=go href=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .replace("&amp;", "&");
    assert_eq!(href, l.url, "the page leads to the printed URL");
    // The login completes from that page; the page is gone afterwards, and the account is named.
    node_ok("drive-login.mjs", &[&href]);
    let r = l.finish(Duration::from_secs(30));
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        !std::path::Path::new(&page).exists(),
        "the login page was left behind"
    );
    let said = r.stdout;
    assert!(
        said.contains("local: the token belongs to alice;"),
        "{said}"
    );
}

#[test]
fn a_provider_that_promises_iss_must_send_it() {
    let s = setup("3600");
    let l = start_local(&s, "30");
    let state = l
        .url
        .split(['?', '&'])
        .find_map(|kv| kv.strip_prefix("state="))
        .unwrap()
        .to_string();
    // The right state (as a mix-up attacker relaying it would have), but no `iss`.
    let resp = raw_get(s.port, &format!("/callback?code=relayed&state={state}"));
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
    let r = l.finish(Duration::from_secs(20));
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("has no `iss`"), "{r:?}");
}

#[test]
fn seven_hundred_idle_connections_do_not_block_the_callback() {
    let s = setup("3600");
    let l = start_local(&s, "40");
    let idle: Vec<TcpStream> = (0..700)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", s.port)).ok())
        .collect();
    assert!(idle.len() >= 600, "only {} connections", idle.len());
    node_ok("drive-login.mjs", &[&l.url]);
    let r = l.finish(Duration::from_secs(20));
    assert_eq!(r.code, 0, "{r:?}");
    drop(idle);
    assert!(s.sb.read_json(&token_file(&s))["refresh_token"].is_string());
}
