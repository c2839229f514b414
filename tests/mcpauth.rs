//! MCP servers that announce their authorization, for real: an MCP server on the official
//! MCP Python SDK (a protected resource whose token verifier checks signature, issuer,
//! audience and scope) and its authorization server (oidc-provider, `tests/idp/mcp-as.mjs`)
//! on 127.0.0.1. mcp-credd discovers everything from the server's URL, obtains a token
//! with client_credentials (client_secret_basic, private_key_jwt), and writes it into VS
//! Code's and Roo Code's files; the SDK's own client must then get in with only those files.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn python() -> PathBuf {
    let p = root().join("tests/mcp/.venv/bin/python");
    assert!(
        p.exists(),
        "tests/mcp/.venv is missing: run `bash scripts/test-deps.sh` (it installs the MCP Python SDK)"
    );
    p
}

/// The authorization server, with extra environment (TOKEN_TTL, CLIENT_PUBLIC_KEY...).
fn auth_server(env: &[(&str, &str)]) -> Server {
    Server::start(
        || idp_node("mcp-as.mjs", env),
        "the MCP authorization server",
    )
}

/// The MCP server (Python SDK) trusting `issuer`.
fn mcp_server(issuer: &str, extra: &[&str]) -> Server {
    let make = || {
        let mut c = Command::new(python());
        c.arg(root().join("tests/mcp/server.py"))
            .args(["--issuer", issuer])
            .args(extra);
        c
    };
    Server::start(make, "the MCP server")
}

/// The authorization server (with `env`), the MCP server trusting it, and a sandbox.
fn servers(env: &[(&str, &str)]) -> (Server, Server, Sandbox) {
    let auth = auth_server(env);
    let server = mcp_server(&auth.base(), &[]);
    (auth, server, Sandbox::new())
}

fn vscode_file(sb: &Sandbox) -> PathBuf {
    sb.home().join("editors/vscode/mcp.json")
}

fn roo_file(sb: &Sandbox) -> PathBuf {
    sb.home().join("editors/roo/mcp_settings.json")
}

/// The config of a `client_credentials` agent for `calc` at `server`, with `oauth` (its
/// client) below `grant`.
fn config(sb: &Sandbox, server: &Server, oauth: &str) -> String {
    login_config(
        sb,
        server,
        &format!("    auth:\n      oauth:\n        grant: client_credentials\n{oauth}"),
    )
}

/// A client_secret_basic agent: a shared secret goes only to the authorization server the
/// config names.
fn basic(auth: &Server) -> String {
    format!(
        "        client_id: agent-basic\n        client_secret: {{env: AGENT_SECRET}}\n        authorization_server: {}\n        scopes: [mcp:tools]\n",
        auth.base()
    )
}

/// The private_key_jwt client `agent-jwt` signing with `key`: where it goes is left to
/// discovery.
fn jwt_client(key: &Path) -> String {
    format!(
        "        client_id: agent-jwt\n        private_key: {{file: {}}}\n",
        key.display()
    )
}

/// [`jwt_client`] with a fresh EC key.
fn jwt_agent(sb: &Sandbox) -> String {
    jwt_client(&key_pair(sb.home(), "agent", EC).0)
}

/// The official MCP client, given only an editor file: prints `RESULT 5` when it got in.
fn sdk_client(file: &Path, key: &str) -> Run {
    let out = Command::new(python())
        .arg(root().join("tests/mcp/client.py"))
        .arg(file)
        .args([key, "calc"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    Run::from(out)
}

/// Both editor files, with the key their servers are under.
fn editor_files(sb: &Sandbox) -> [(PathBuf, &'static str); 2] {
    [(vscode_file(sb), "servers"), (roo_file(sb), "mcpServers")]
}

/// Both editor files send `calc` the access token `at`.
fn assert_both_editors_carry(sb: &Sandbox, at: &str) {
    for (file, key) in editor_files(sb) {
        assert_eq!(bearer_in(sb, &file, key), format!("Bearer {at}"));
    }
}

fn assert_client_gets_in(sb: &Sandbox) {
    for (file, key) in editor_files(sb) {
        let r = sdk_client(&file, key);
        assert!(
            r.code == 0 && r.stdout.contains("RESULT 5"),
            "the MCP client did not get in with {}: {r:?}",
            file.display()
        );
    }
}

fn bearer_in(sb: &Sandbox, file: &Path, key: &str) -> String {
    let v = sb.read_json(file);
    v[key]["calc"]["headers"]["Authorization"]
        .as_str()
        .unwrap_or_else(|| panic!("no Authorization for calc in {}: {v}", file.display()))
        .to_string()
}

/// The access token stored for `calc`, once there is one.
fn stored_token(sb: &Sandbox) -> Option<String> {
    std::fs::read_to_string(sb.tokens().join("calc.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["access_token"].as_str().map(str::to_string))
}

/// Waits until the daemon has stored a token other than `first`, past `first`'s expiry
/// (so that only a refreshed token can get in), and every editor file of `files` (with
/// its key) carries it; returns it.
fn wait_for_refresh(
    sb: &Sandbox,
    daemon: &Daemon,
    first: &str,
    files: &[(PathBuf, &str)],
    within: Duration,
) -> String {
    let first_exp = jwt_claims(first)["exp"].as_f64().unwrap();
    let end = Instant::now() + within;
    loop {
        if now_secs() > first_exp + 1.0
            && let Some(cur) = stored_token(sb).filter(|t| t != first)
            && files
                .iter()
                .all(|(f, key)| bearer_in(sb, f, key) == format!("Bearer {cur}"))
        {
            return cur;
        }
        assert!(
            Instant::now() < end,
            "the daemon did not refresh: {}",
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn client_secret_basic_from_the_url_to_a_working_token_in_both_editors() {
    let (auth, server, sb) = servers(&[]);
    sb.write_config(&config(&sb, &server, &basic(&auth)));
    // Without a token, the official client is refused: the server really checks.
    let r = sb.run_env(&[], &[("AGENT_SECRET", "agent-secret")]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_client_gets_in(&sb);

    let tok = sb.read_json(&sb.tokens().join("calc.json"));
    assert_eq!(mode(&sb.tokens().join("calc.json")), 0o600);
    let at = tok["access_token"].as_str().unwrap();
    let claims = jwt_claims(at);
    let resource = format!("{}/mcp", server.base());
    assert_eq!(claims["aud"], resource.as_str(), "{claims}");
    assert_eq!(claims["iss"], auth.base().as_str());
    assert_eq!(
        claims["scope"], "mcp:tools",
        "the configured scopes (a named authorization server skips the metadata)"
    );
    assert_eq!(claims["client_id"], "agent-basic");
    assert_both_editors_carry(&sb, at);
    // The other commands treat the server's identity like any other.
    let h = sb.run_env(&["headers", "calc"], &[("AGENT_SECRET", "agent-secret")]);
    assert_eq!(h.code, 0, "{h:?}");
    let hv: serde_json::Value = serde_json::from_str(&h.stdout).unwrap();
    assert_eq!(hv["Authorization"], format!("Bearer {at}").as_str());
    let st = sb.run_env(&["status", "--json"], &[("AGENT_SECRET", "agent-secret")]);
    assert_eq!(st.code, 0, "{st:?}");
    assert!(st.stdout.contains("\"calc\""), "{st:?}");
    // A token with a wrong signature would not do: prove the server checks.
    let forged = format!("{}x", &at[..at.len() - 1]);
    let text = std::fs::read_to_string(vscode_file(&sb))
        .unwrap()
        .replace(at, &forged);
    let bad = sb.home().join("forged.json");
    std::fs::write(&bad, text).unwrap();
    let r = sdk_client(&bad, "servers");
    assert_ne!(r.code, 0, "a forged token got in: {r:?}");
    // logout forgets the token and takes our header out of both editor files.
    let r = sb.run_env(&["logout", "calc"], &[("AGENT_SECRET", "agent-secret")]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!sb.tokens().join("calc.json").exists(), "{r:?}");
    for (file, key) in editor_files(&sb) {
        let v = sb.read_json(&file);
        assert!(
            v[key]["calc"]["headers"]["Authorization"].is_null(),
            "{}: {v}",
            file.display()
        );
    }
}

#[test]
fn the_daemon_keeps_short_lived_tokens_working() {
    let (auth, server, sb) = servers(&[("TOKEN_TTL", "6")]);
    sb.write_config(&config(&sb, &server, &basic(&auth)));
    let mut daemon = Daemon::start(&sb, &["daemon"], &[("AGENT_SECRET", "agent-secret")]);
    let end = Instant::now() + Duration::from_secs(20);
    let first = loop {
        if let Some(t) = stored_token(&sb)
            && vscode_file(&sb).exists()
        {
            break t;
        }
        assert!(Instant::now() < end, "no first token from the daemon");
        std::thread::sleep(Duration::from_millis(100));
    };
    wait_for_refresh(
        &sb,
        &daemon,
        &first,
        &[(roo_file(&sb), "mcpServers")],
        Duration::from_secs(30),
    );
    assert_client_gets_in(&sb);
    daemon.stop();
}

const RSA: [&str; 4] = ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"];
/// EC P-256 (PKCS#8).
const EC: [&str; 4] = ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"];

/// Writes a key pair of `kind` ([`RSA`], [`EC`]) with openssl; returns (private, public)
/// PEM paths.
fn key_pair(dir: &Path, name: &str, kind: [&str; 4]) -> (PathBuf, PathBuf) {
    let key = dir.join(format!("{name}.pem"));
    let public = dir.join(format!("{name}.pub.pem"));
    let ok = Command::new("openssl")
        .arg("genpkey")
        .args(kind)
        .arg("-out")
        .arg(&key)
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
        && Command::new("openssl")
            .args(["pkey", "-pubout", "-in"])
            .arg(&key)
            .arg("-out")
            .arg(&public)
            .status()
            .unwrap()
            .success();
    assert!(ok, "openssl could not make a {} key pair", kind[1]);
    (key, public)
}

/// A sandbox with a key pair of `kind` named `name`, the authorization server that knows
/// its public half (as the client `agent-jwt`), and the MCP server trusting it; returns
/// the private key's path too.
fn key_servers(name: &str, kind: [&str; 4]) -> (PathBuf, Server, Server, Sandbox) {
    let sb = Sandbox::new();
    let (key, public) = key_pair(sb.home(), name, kind);
    let auth = auth_server(&[("CLIENT_PUBLIC_KEY", public.to_str().unwrap())]);
    let server = mcp_server(&auth.base(), &[]);
    (key, auth, server, sb)
}

/// A first run that succeeds and lets the official client in; the claims of the access
/// token it stored in `file`.
fn first_run_claims(sb: &Sandbox, file: &str) -> serde_json::Value {
    let r = sb.run(&[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_client_gets_in(sb);
    let tok = sb.read_json(&sb.tokens().join(file));
    jwt_claims(tok["access_token"].as_str().unwrap())
}

#[test]
fn private_key_jwt_gets_in_and_a_wrong_key_overwrites_nothing() {
    let (key, _auth, server, sb) = key_servers("agent", RSA);
    let (other, _) = key_pair(sb.home(), "other", RSA);
    sb.write_config(&config(&sb, &server, &jwt_client(&key)));
    let r = sb.run(&[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_client_gets_in(&sb);
    let token_before = std::fs::read(sb.tokens().join("calc.json")).unwrap();
    let vscode_before = std::fs::read(vscode_file(&sb)).unwrap();
    let roo_before = std::fs::read(roo_file(&sb)).unwrap();

    sb.write_config(&config(&sb, &server, &jwt_client(&other)));
    let r = sb.run(&["--force"]);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains("invalid_client") && r.stderr.contains("public half of `private_key`"),
        "{r:?}"
    );
    assert!(!r.all().contains("PRIVATE KEY"), "{r:?}");
    assert_eq!(
        std::fs::read(sb.tokens().join("calc.json")).unwrap(),
        token_before
    );
    assert_eq!(std::fs::read(vscode_file(&sb)).unwrap(), vscode_before);
    assert_eq!(std::fs::read(roo_file(&sb)).unwrap(), roo_before);
    assert_client_gets_in(&sb);
}

/// The user's own VS Code file, with a comment.
const MINE: &str = "{\n  // my own\n  \"servers\": {}\n}\n";

/// Writes the user's own VS Code file.
fn write_vscode(sb: &Sandbox, text: &str) {
    std::fs::create_dir_all(vscode_file(sb).parent().unwrap()).unwrap();
    std::fs::write(vscode_file(sb), text).unwrap();
}

/// `args` with `env` over the user's own VS Code file ([`MINE`]) fail with `code` (any
/// but 0 when `None`), saying each of `expect`, and store no token.
fn fails_storing_nothing(
    sb: &Sandbox,
    args: &[&str],
    env: &[(&str, &str)],
    code: Option<i32>,
    expect: &[&str],
) -> Run {
    write_vscode(sb, MINE);
    let r = sb.run_env(args, env);
    match code {
        Some(c) => assert_eq!(r.code, c, "{r:?}"),
        None => assert_ne!(r.code, 0, "{r:?}"),
    }
    for e in expect {
        assert!(r.stderr.contains(e), "expected {e:?} in: {r:?}");
    }
    assert!(!sb.tokens().join("calc.json").exists(), "{r:?}");
    r
}

/// A failed first run writes no token and leaves an existing editor file as it was.
fn fails_cleanly(sb: &Sandbox, env: &[(&str, &str)], expect: &[&str]) -> Run {
    let r = fails_storing_nothing(sb, &[], env, None, expect);
    let after = std::fs::read_to_string(vscode_file(sb)).unwrap();
    assert!(
        !after.contains("Bearer"),
        "the editor file got a token: {after}"
    );
    r
}

#[test]
fn a_server_without_metadata_is_a_clear_error() {
    let server = mcp_server("http://127.0.0.1:9", &["--no-metadata"]);
    let sb = Sandbox::new();
    sb.write_config(&config(&sb, &server, &jwt_agent(&sb)));
    fails_cleanly(
        &sb,
        &[("AGENT_SECRET", "agent-secret")],
        &[
            "does not announce its authorization",
            "oauth-protected-resource/mcp",
            "authorization_server",
        ],
    );
}

#[test]
fn insufficient_scope_is_a_clear_error_for_m2m() {
    let (auth, server, sb) = servers(&[]);
    sb.write_config(&config(
        &sb,
        &server,
        &format!(
            "        client_id: agent-narrow\n        client_secret: narrow-secret\n        scopes: [mcp:read]\n        authorization_server: {}\n",
            auth.base()
        ),
    ));
    fails_cleanly(&sb, &[], &["insufficient scope", "mcp:read"]);
}

#[test]
fn metadata_pointing_to_plain_http_elsewhere_is_refused() {
    // The server names an authorization server on plain http off this machine.
    let server = mcp_server("http://as.example.com", &[]);
    let sb = Sandbox::new();
    sb.write_config(&config(&sb, &server, &jwt_agent(&sb)));
    fails_cleanly(
        &sb,
        &[("AGENT_SECRET", "agent-secret")],
        &["http://as.example.com", "plain http"],
    );
}

#[test]
fn es256_keys_and_a_configured_authorization_server() {
    let (key, auth, server, sb) = key_servers("agent-ec", EC);
    sb.write_config(&config(
        &sb,
        &server,
        &format!(
            "        client_id: agent-jwt\n        private_key: {{file: {}}}\n        scopes: mcp:tools\n        authorization_server: {}\n",
            key.display(),
            auth.base()
        ),
    ));
    let claims = first_run_claims(&sb, "calc.json");
    assert_eq!(claims["client_id"], "agent-jwt");
    assert_eq!(claims["aud"], format!("{}/mcp", server.base()).as_str());
}

#[test]
fn oidc_m2m_identities_take_private_key_jwt_too() {
    let (key, auth, server, sb) = key_servers("agent", RSA);
    sb.write_config(&format!(
        "editors:
  - {{format: vscode, path: {}}}
  - {{format: roo, path: {}}}
identities:
  agent:
    kind: oidc_m2m
    client_id: agent-jwt
    private_key: {{file: {}}}
    issuer: {}
    scopes: [mcp:tools]
    resource: {}/mcp
servers:
  - name: calc
    url: {}/mcp
    auth: {{identity: agent}}
",
        vscode_file(&sb).display(),
        roo_file(&sb).display(),
        key.display(),
        auth.base(),
        server.base(),
        server.base()
    ));
    assert_eq!(
        first_run_claims(&sb, "agent.json")["client_id"],
        "agent-jwt"
    );
}

// --- The interactive login (`auth: oauth`): discovery, dynamic client registration,
// authorization code + PKCE S256 + `resource`, a real headless Chromium at the
// authorization server's login and consent pages.

/// Both editors, short timings, and the server `calc` at `server` with `oauth` (its `auth`).
fn login_config(sb: &Sandbox, server: &Server, oauth: &str) -> String {
    format!(
        "editors:
  - {{format: vscode, path: {}}}
  - {{format: roo, path: {}}}
http:
  timeout: 5s
  attempts: 2
  initial_backoff: 100ms
refresh:
  before_expiry: 2s
  check_interval: 500ms
servers:
  - name: calc
    url: {}/mcp
{oauth}",
        vscode_file(sb).display(),
        roo_file(sb).display(),
        server.base()
    )
}

const BARE: &str = "    auth: oauth\n";

/// A sandbox whose `calc` at `server` logs in with `auth: oauth` and nothing more.
fn login_sandbox(server: &Server) -> Sandbox {
    let sb = Sandbox::new();
    sb.write_config(&login_config(&sb, server, BARE));
    sb
}

/// [`servers`] (the authorization server with `env`), with [`login_sandbox`].
fn login_servers(env: &[(&str, &str)]) -> (Server, Server, Sandbox) {
    let auth = auth_server(env);
    let server = mcp_server(&auth.base(), &[]);
    let sb = login_sandbox(&server);
    (auth, server, sb)
}

/// A whole `login calc --no-browser`, the person at the authorization server played by a
/// real headless Chromium (`browser`) or over plain HTTP; returns its output and the
/// authorization URL.
fn login(sb: &Sandbox, auth: &Server, browser: bool) -> (Run, String) {
    let l = Login::at(
        sb.command(&["login", "calc", "--no-browser", "--timeout", "60"]),
        &auth.base(),
    );
    if browser {
        browser_login(&l.url, &[]);
    } else {
        node_ok("drive-login.mjs", &[&l.url]);
    }
    let url = l.url.clone();
    (l.finish(Duration::from_secs(40)), url)
}

fn query(url: &str, key: &str) -> Option<String> {
    let u = reqwest_url(url);
    u.into_iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// The query pairs of a URL, percent-decoded.
fn reqwest_url(url: &str) -> Vec<(String, String)> {
    let q = url.split_once('?').map(|(_, q)| q).unwrap_or("");
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

fn decode(s: &str) -> String {
    let s = s.replace('+', " ");
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// The client registrations mcp-credd keeps in the tokens directory.
fn registrations(sb: &Sandbox) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(sb.tokens())
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("mcp-client-"))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn an_interactive_login_registers_a_client_and_the_daemon_keeps_it_working() {
    let (auth, server, sb) = login_servers(&[("TOKEN_TTL", "15")]);
    // Before any login: `status` says one is needed, and the one-shot says so (exit 4).
    assert_eq!(sb.status_of("calc")["state"], "needs_login");
    let r = sb.run(&[]);
    assert_eq!(r.code, 4, "{r:?}");
    assert!(r.stderr.contains("mcp-credd login calc"), "{r:?}");

    let (r, url) = login(&sb, &auth, true);
    assert_eq!(r.code, 0, "{r:?}");
    // Asked at once: the token lives 15 s, and what follows can take longer on a busy
    // machine (it would then be `expiring`).
    assert_eq!(sb.status_of("calc")["state"], "valid");
    let resource = format!("{}/mcp", server.base());
    assert_eq!(
        query(&url, "resource").as_deref(),
        Some(resource.as_str()),
        "{url}"
    );
    assert_eq!(
        query(&url, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert!(query(&url, "state").is_some_and(|s| s.len() >= 32), "{url}");
    let scope = query(&url, "scope").unwrap();
    assert!(
        scope.split(' ').any(|s| s == "mcp:tools"),
        "the server's scope: {url}"
    );
    assert!(r.stdout.contains("registered mcp-credd as client"), "{r:?}");
    // The registration: one file for this issuer, 0600, a public client.
    let regs = registrations(&sb);
    assert_eq!(regs.len(), 1, "{regs:?}");
    assert_eq!(mode(&regs[0]), 0o600);
    let reg = sb.read_json(&regs[0]);
    let client_id = reg["client_id"].as_str().unwrap().to_string();
    assert_eq!(
        query(&url, "client_id").as_deref(),
        Some(client_id.as_str())
    );
    assert_eq!(reg["issuer"], auth.base().as_str());
    assert!(reg.get("client_secret").is_none(), "{reg}");

    let file = sb.tokens().join("calc.json");
    assert_eq!(mode(&file), 0o600);
    let tok = sb.read_json(&file);
    assert!(tok["refresh_token"].is_string(), "{tok}");
    let at = tok["access_token"].as_str().unwrap().to_string();
    let claims = jwt_claims(&at);
    assert_eq!(claims["aud"], resource.as_str(), "{claims}");
    assert_eq!(claims["client_id"], client_id.as_str());
    assert_eq!(tok["binding"]["endpoint"], auth.base().as_str());
    assert_eq!(tok["binding"]["resource"], resource.as_str());
    assert_both_editors_carry(&sb, &at);
    // The official MCP client gets in with only what the editor files say.
    assert_client_gets_in(&sb);
    let h = sb.run(&["headers", "calc"]);
    assert_eq!(h.code, 0, "{h:?}");
    assert!(h.stdout.contains(&at), "{h:?}");
    let t = sb.run(&["token", "calc"]);
    assert_eq!((t.code, t.stdout.trim()), (0, at.as_str()), "{t:?}");
    // `render` (no network) writes it again from the store.
    std::fs::remove_file(roo_file(&sb)).unwrap();
    let r = sb.run(&["render"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        bearer_in(&sb, &roo_file(&sb), "mcpServers"),
        format!("Bearer {at}")
    );

    // The daemon refreshes the short-lived token with the refresh token (and `resource`).
    let mut daemon = Daemon::start(&sb, &["daemon"], &[]);
    let refreshed = wait_for_refresh(
        &sb,
        &daemon,
        &at,
        &editor_files(&sb),
        Duration::from_secs(40),
    );
    daemon.stop();
    let c2 = jwt_claims(&refreshed);
    assert_eq!(
        c2["aud"],
        resource.as_str(),
        "refreshed with `resource`: {c2}"
    );
    assert_eq!(c2["client_id"], client_id.as_str());
    assert_client_gets_in(&sb);

    // A second login reuses the registration: no new client, the file untouched.
    let reg_before = std::fs::read(&regs[0]).unwrap();
    let (r, url) = login(&sb, &auth, false);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!r.stdout.contains("registered mcp-credd"), "{r:?}");
    assert_eq!(
        query(&url, "client_id").as_deref(),
        Some(client_id.as_str())
    );
    assert_eq!(registrations(&sb), regs);
    assert_eq!(std::fs::read(&regs[0]).unwrap(), reg_before);
    let tok = sb.read_json(&file);
    assert_eq!(
        jwt_claims(tok["access_token"].as_str().unwrap())["client_id"],
        client_id.as_str()
    );
    assert_client_gets_in(&sb);

    // logout forgets the token and takes our header out of both files; the registration stays.
    let r = sb.run(&["logout", "calc"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!file.exists());
    assert!(
        sb.read_json(&vscode_file(&sb))["servers"]["calc"]["headers"]["Authorization"].is_null()
    );
    assert_eq!(registrations(&sb), regs);
    assert_eq!(sb.status_of("calc")["state"], "needs_login");
}

/// A login that fails before any browser: a clear error naming `expect`, no token, no
/// registration, and the user's editor file exactly as it was.
fn login_fails_cleanly(sb: &Sandbox, expect: &[&str]) -> Run {
    let r = fails_storing_nothing(
        sb,
        &["login", "calc", "--no-browser", "--timeout", "10"],
        &[],
        Some(1),
        expect,
    );
    assert!(
        !r.stdout.contains("open this URL"),
        "a login was started: {r:?}"
    );
    assert!(registrations(sb).is_empty(), "{r:?}");
    assert_eq!(std::fs::read_to_string(vscode_file(sb)).unwrap(), MINE);
    r
}

#[test]
fn an_authorization_server_without_s256_is_refused() {
    let (_auth, _server, sb) = login_servers(&[("NO_S256", "1")]);
    login_fails_cleanly(
        &sb,
        &[
            "calc: authorization server",
            "does not announce PKCE S256 (code_challenge_methods_supported)",
        ],
    );
}

#[test]
fn a_refused_registration_is_a_clear_error() {
    let (auth, _server, sb) = login_servers(&[("REGISTRATION", "closed")]);
    login_fails_cleanly(
        &sb,
        &[
            "refused to register mcp-credd as a client",
            &format!("{}/reg", auth.base()),
            "set `client_id`",
        ],
    );
    assert_eq!(sb.status_of("calc")["state"], "needs_login");
}

#[test]
fn a_login_to_a_server_without_metadata_is_a_clear_error() {
    let server = mcp_server("http://127.0.0.1:9", &["--no-metadata"]);
    let sb = login_sandbox(&server);
    login_fails_cleanly(
        &sb,
        &[
            "does not announce its authorization",
            "authorization_server",
        ],
    );
}

#[test]
fn a_pre_registered_client_logs_in_without_registering() {
    let (auth, server, sb) = servers(&[]);
    // Register a client the way an operator would, outside mcp-credd.
    let port = closed_port();
    let redirect = format!("http://127.0.0.1:{port}/cb");
    let reg = Command::new("node")
        .arg("-e")
        .arg(format!(
            "fetch('{}/reg',{{method:'POST',headers:{{'content-type':'application/json'}},body:JSON.stringify({{application_type:'native',redirect_uris:['{redirect}'],grant_types:['authorization_code','refresh_token'],response_types:['code'],token_endpoint_auth_method:'none'}})}}).then(r=>r.json()).then(j=>console.log(j.client_id))",
            auth.base()
        ))
        .output()
        .unwrap();
    let client_id = String::from_utf8_lossy(&reg.stdout).trim().to_string();
    assert!(!client_id.is_empty(), "{reg:?}");
    sb.write_config(&login_config(
        &sb,
        &server,
        &format!(
            "    auth:\n      oauth:\n        client_id: {client_id}\n        redirect_uri: {redirect}\n        authorization_server: {}\n        scopes: [mcp:tools]\n",
            auth.base()
        ),
    ));
    let (r, url) = login(&sb, &auth, false);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        query(&url, "client_id").as_deref(),
        Some(client_id.as_str())
    );
    assert_eq!(
        query(&url, "redirect_uri").as_deref(),
        Some(redirect.as_str())
    );
    assert!(!r.stdout.contains("registered mcp-credd"), "{r:?}");
    assert!(registrations(&sb).is_empty());
    assert_client_gets_in(&sb);
    // A one-shot refresh uses the configured client too.
    let before = sb.read_json(&sb.tokens().join("calc.json"));
    let r = sb.run(&["--force"]);
    assert_eq!(r.code, 0, "{r:?}");
    let after = sb.read_json(&sb.tokens().join("calc.json"));
    assert_ne!(before["refresh_token"], after["refresh_token"], "rotated");
    assert_client_gets_in(&sb);
}

#[test]
fn a_forgotten_client_is_registered_again_and_a_new_issuer_needs_a_login() {
    let auth = auth_server(&[]);
    let as_port = auth.port.to_string();
    let server = mcp_server(&auth.base(), &[]);
    let sb = login_sandbox(&server);
    let (r, url) = login(&sb, &auth, false);
    assert_eq!(r.code, 0, "{r:?}");
    let first_client = query(&url, "client_id").unwrap();

    // The authorization server restarts and forgets every client (same issuer).
    drop(auth);
    let auth = auth_server(&[("PORT", &as_port)]);
    let token_before = std::fs::read(sb.tokens().join("calc.json")).unwrap();
    let r = sb.run(&["--force"]);
    assert_eq!(r.code, 4, "{r:?}");
    assert!(
        r.stderr.contains("no longer knows client") && r.stderr.contains("mcp-credd login calc"),
        "{r:?}"
    );
    assert_eq!(
        std::fs::read(sb.tokens().join("calc.json")).unwrap(),
        token_before,
        "a failed refresh keeps the token"
    );
    assert_eq!(sb.status_of("calc")["state"], "needs_login");
    let (r, url) = login(&sb, &auth, false);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout
            .contains("no longer knows the registered client; registering again"),
        "{r:?}"
    );
    let second_client = query(&url, "client_id").unwrap();
    assert_ne!(second_client, first_client);
    assert_eq!(registrations(&sb).len(), 1, "one registration per issuer");
    assert_client_gets_in(&sb);

    // The MCP server moves to another authorization server: its token is not refreshed
    // there, a login is asked for, and that login registers at the new issuer.
    let other = auth_server(&[]);
    let port = server.port.to_string();
    drop(server);
    let server = mcp_server(&other.base(), &["--port", &port]);
    let r = sb.run(&["--force"]);
    assert_eq!(r.code, 4, "{r:?}");
    assert!(
        r.stderr
            .contains(&format!("now names authorization server {}", other.base()))
            && r.stderr.contains(&format!("came from {}", auth.base())),
        "{r:?}"
    );
    let st = sb.status_of("calc");
    assert_eq!(st["state"], "needs_login", "{st}");
    let (r, url) = login(&sb, &other, false);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("registered mcp-credd as client"), "{r:?}");
    assert!(url.starts_with(&other.base()), "{url}");
    assert_eq!(registrations(&sb).len(), 2, "one registration per issuer");
    let tok = sb.read_json(&sb.tokens().join("calc.json"));
    assert_eq!(tok["binding"]["endpoint"], other.base().as_str());
    assert_client_gets_in(&sb);
    drop(server);
}

#[test]
fn a_registration_whose_redirect_port_is_taken_is_not_reused() {
    let (auth, server, sb) = login_servers(&[]);
    let (r, url) = login(&sb, &auth, false);
    assert_eq!(r.code, 0, "{r:?}");
    let first_client = query(&url, "client_id").unwrap();
    let first_redirect = query(&url, "redirect_uri").unwrap();
    let port: u16 = first_redirect
        .rsplit_once(':')
        .and_then(|(_, rest)| rest.split('/').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {first_redirect}"));

    // Someone else on this machine holds the registered port now: the login listens
    // elsewhere, and a redirect the client was not registered with would be refused, so
    // it registers again instead of reusing the stored client.
    let _squatter = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let (r, url) = login(&sb, &auth, false);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains("its port is taken); registering again"),
        "{r:?}"
    );
    assert_ne!(query(&url, "client_id").unwrap(), first_client);
    assert_ne!(query(&url, "redirect_uri").unwrap(), first_redirect);
    assert_eq!(registrations(&sb).len(), 1, "one registration per issuer");
    assert_client_gets_in(&sb);
    drop(server);
}

#[test]
fn insufficient_scope_steps_up_at_the_next_login() {
    let (auth, server, sb) = servers(&[]);
    // Pinned to a scope the server does not accept: the login's token is refused, nothing
    // is stored, and the next login asks for what the server wants too.
    sb.write_config(&login_config(
        &sb,
        &server,
        "    auth:\n      oauth:\n        scopes: [mcp:read]\n",
    ));
    let mine = "{\n  \"servers\": {}\n}\n";
    write_vscode(&sb, mine);
    let (r, url) = login(&sb, &auth, false);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(
        query(&url, "scope").as_deref(),
        Some("mcp:read offline_access")
    );
    assert!(
        r.stderr
            .contains("refused the token for insufficient scope")
            && r.stderr.contains(
                "run `mcp-credd login calc`: it asks for `mcp:read offline_access mcp:tools`"
            ),
        "{r:?}"
    );
    assert!(!sb.tokens().join("calc.json").exists());
    assert_eq!(std::fs::read_to_string(vscode_file(&sb)).unwrap(), mine);
    let st = sb.status_of("calc");
    assert_eq!(st["state"], "needs_login", "{st}");
    assert!(
        st["last_error"]
            .as_str()
            .unwrap()
            .contains("insufficient scope"),
        "{st}"
    );
    let (r, url) = login(&sb, &auth, false);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        query(&url, "scope").as_deref(),
        Some("mcp:read offline_access mcp:tools")
    );
    assert_client_gets_in(&sb);

    // The server comes to want another scope: the next refresh finds out, `status` says a
    // login is needed and why, and that login asks for the union.
    let port = server.port.to_string();
    drop(server);
    let server = mcp_server(
        &auth.base(),
        &["--port", &port, "--scope", "mcp:tools mcp:admin"],
    );
    // `doctor` sends the stored token to the server and says what an editor would meet.
    let d = sb.run(&["doctor"]);
    assert_eq!(d.code, 1, "{d:?}");
    assert!(
        d.all()
            .contains("refuses the stored token for insufficient scope")
            && d.all().contains("mcp-credd login calc"),
        "{d:?}"
    );
    let r = sb.run(&["--force"]);
    assert_eq!(r.code, 4, "{r:?}");
    // The stored token is now the refreshed one the server refused: the one-shot says a
    // login is needed, as `status` does, and does not call that token kept.
    assert!(
        r.stderr.contains("error: calc: needs login: MCP server")
            && !r.all().contains("kept the stored token"),
        "{r:?}"
    );
    assert!(
        r.stderr.contains("insufficient scope")
            && r.stderr
                .contains("it asks for `mcp:read mcp:tools offline_access mcp:admin`"),
        "{r:?}"
    );
    let st = sb.status_of("calc");
    assert_eq!(st["state"], "needs_login", "{st}");
    assert!(
        st["last_error"].as_str().unwrap().contains("mcp:admin"),
        "{st}"
    );
    let (r, url) = login(&sb, &auth, false);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        query(&url, "scope")
            .unwrap()
            .split(' ')
            .any(|s| s == "mcp:admin"),
        "{url}"
    );
    assert_client_gets_in(&sb);
    let d = sb.run(&["doctor"]);
    assert!(d.all().contains("accepts the stored token"), "{d:?}");
    assert_eq!(sb.status_of("calc")["state"], "valid");
    drop(server);
}
