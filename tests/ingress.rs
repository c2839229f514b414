//! The real binary against a real OpenID provider (oidc-provider on 127.0.0.1, set up like
//! a Cognito domain): machine-to-machine tokens obtained, stored, reused and rendered.

mod common;

use common::*;

const SECRET: &str = "m2m-secret";

fn cognito_config(base: &str, extra: &str) -> String {
    format!(
        "gateway_url: https://gw.example.com
{}  scopes: [mcp-servers-unrestricted/read, mcp-servers-unrestricted/execute]
servers:
  - name: currenttime
  - name: docs
    url: https://docs.example.com/mcp
    auth: none
http:
  attempts: 2
  initial_backoff: 100ms
  timeout: 5s
{extra}",
        cognito_m2m_ingress(base, "{env: INGRESS_OAUTH_CLIENT_SECRET}")
    )
}

fn secret_env() -> [(&'static str, &'static str); 1] {
    [("INGRESS_OAUTH_CLIENT_SECRET", SECRET)]
}

/// The identity provider (with `env`) and a sandbox configured for it ([`cognito_config`]).
fn setup(env: &[(&str, &str)]) -> (Idp, Sandbox) {
    let idp = Idp::start(env);
    let sb = Sandbox::new();
    sb.write_config(&cognito_config(&idp.base(), ""));
    (idp, sb)
}

/// [`setup`] with a first run that stores a token.
fn setup_with_token() -> (Idp, Sandbox) {
    let (idp, sb) = setup(&[]);
    assert_eq!(sb.run_env(&[], &secret_env()).code, 0);
    (idp, sb)
}

#[test]
fn obtains_stores_and_renders_a_token() {
    let (idp, sb) = setup(&[("TOKEN_TTL", "600")]);
    let before = now_secs();
    let r = sb.run_env(&[], &secret_env());
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains("ingress: new token obtained, expires"),
        "{r:?}"
    );

    let tokens = sb.tokens();
    assert_eq!(mode(&tokens), 0o700);
    let file = tokens.join("ingress.json");
    assert_eq!(mode(&file), 0o600);
    let t = sb.read_json(&file);
    assert_eq!(t["provider"], "cognito_m2m");
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["client_id"], "m2m-client");
    assert_eq!(t["user_pool_id"], "us-east-1_AbC123");
    assert_eq!(t["region"], "us-east-1");
    assert!(t["refresh_token"].is_null());
    assert_eq!(t["expiry_source"], "expires_in");
    assert_eq!(t["token_endpoint"], idp.token_url());
    let token = t["access_token"].as_str().unwrap();
    let claims = jwt_claims(token);
    assert_eq!(claims["client_id"], "m2m-client");
    let exp = t["expires_at"].as_f64().unwrap();
    assert!(
        exp >= before + 599.0 && exp <= now_secs() + 601.0,
        "expires_at {exp}"
    );
    assert!((claims["exp"].as_f64().unwrap() - exp).abs() < 3.0);
    let human = t["expires_at_human"].as_str().unwrap();
    assert!(human.ends_with(" UTC") && human.len() == 23, "{human}");
    assert!(t["saved_at"].as_str().unwrap().ends_with(" UTC"));
    assert_eq!(
        t["scope"],
        "mcp-servers-unrestricted/read mcp-servers-unrestricted/execute"
    );

    // The reference-layout copies.
    let v = sb.read_json(&tokens.join("vscode_mcp.json"));
    let ct = &v["mcp"]["servers"]["currenttime"];
    assert_eq!(ct["url"], "https://gw.example.com/currenttime/mcp");
    assert_eq!(ct["headers"]["X-Authorization"], format!("Bearer {token}"));
    assert_eq!(ct["headers"]["X-User-Pool-Id"], "us-east-1_AbC123");
    assert_eq!(ct["headers"]["X-Client-Id"], "m2m-client");
    assert_eq!(ct["headers"]["X-Region"], "us-east-1");
    assert!(v["mcp"]["servers"]["docs"].get("headers").is_none());
    let roo = sb.read_json(&tokens.join("mcp.json"));
    let e = &roo["mcpServers"]["currenttime"];
    assert_eq!(e["type"], "streamable-http");
    assert_eq!(e["disabled"], false);
    assert_eq!(e["alwaysAllow"], serde_json::json!([]));
    assert_eq!(e["headers"]["X-Authorization"], format!("Bearer {token}"));
    assert_eq!(
        roo["mcpServers"]["docs"]["url"],
        "https://docs.example.com/mcp"
    );
    assert_eq!(mode(&tokens.join("mcp.json")), 0o600);
    assert_eq!(mode(&tokens.join("vscode_mcp.json")), 0o600);

    // status agrees.
    let s = sb.run_env(&["status", "--json"], &secret_env());
    assert_eq!(s.code, 0, "{s:?}");
    let j: serde_json::Value = serde_json::from_str(&s.stdout).unwrap();
    assert_eq!(j["schema"], 1);
    let row = &j["identities"][0];
    assert_eq!(row["name"], "ingress");
    assert_eq!(row["state"], "valid");
    let left = row["expires_in_seconds"].as_i64().unwrap();
    assert!((590..=600).contains(&left), "{left}");
    let table = sb.run_env(&["status"], &secret_env());
    assert!(
        table.stdout.contains("ingress")
            && table.stdout.contains("valid")
            && table.stdout.contains("(in 9m)"),
        "{table:?}"
    );
}

#[test]
fn reuses_a_valid_token_and_force_replaces_it() {
    let (_idp, sb) = setup_with_token();
    let file = sb.tokens().join("ingress.json");
    let first = std::fs::read(&file).unwrap();
    let roo_mtime = std::fs::metadata(sb.tokens().join("mcp.json"))
        .unwrap()
        .modified()
        .unwrap();

    let r = sb.run_env(&[], &secret_env());
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("stored token still valid"), "{r:?}");
    assert!(
        !r.stdout.contains("wrote"),
        "nothing changed, nothing rewritten: {r:?}"
    );
    assert_eq!(std::fs::read(&file).unwrap(), first);
    assert_eq!(
        std::fs::metadata(sb.tokens().join("mcp.json"))
            .unwrap()
            .modified()
            .unwrap(),
        roo_mtime
    );

    let r = sb.run_env(&["--force"], &secret_env());
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("new token obtained"), "{r:?}");
    let second = sb.read_json(&file);
    let old: serde_json::Value = serde_json::from_slice(&first).unwrap();
    assert_ne!(second["access_token"], old["access_token"]);
    let roo = sb.read_json(&sb.tokens().join("mcp.json"));
    assert_eq!(
        roo["mcpServers"]["currenttime"]["headers"]["X-Authorization"],
        format!("Bearer {}", second["access_token"].as_str().unwrap())
    );
}

#[test]
fn a_token_past_its_refresh_point_is_refreshed_without_force() {
    let (_idp, sb) = setup_with_token();
    let file = sb.tokens().join("ingress.json");
    // Age the stored token: obtained 50 min ago, expiring in 10 min (past 75 % of its life).
    let old = sb.read_json(&file)["access_token"].clone();
    let now = now_secs();
    sb.edit_json(&file, |t| {
        t["obtained_at"] = serde_json::json!(now - 3000.0);
        t["expires_at"] = serde_json::json!(now + 600.0);
    });
    let j = sb.status_json(&secret_env());
    assert_eq!(j["identities"][0]["state"], "expiring", "{j}");

    let r = sb.run_env(&[], &secret_env());
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("new token obtained"), "{r:?}");
    assert_ne!(sb.read_json(&file)["access_token"], old);
}

#[test]
fn umask_000_still_gives_private_files() {
    let (_idp, sb) = setup(&[]);
    let r = sb.run_umask(&[], 0o000, &secret_env());
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(mode(&sb.tokens()), 0o700);
    for f in ["ingress.json", "mcp.json", "vscode_mcp.json", ".mcp-credd"] {
        let want = if f.starts_with('.') { 0o700 } else { 0o600 };
        assert_eq!(mode(&sb.tokens().join(f)), want, "{f}");
    }
    for e in std::fs::read_dir(sb.tokens().join(".mcp-credd")).unwrap() {
        assert_eq!(mode(&e.unwrap().path()), 0o600);
    }
}

#[test]
fn a_loose_tokens_directory_is_tightened() {
    use std::os::unix::fs::PermissionsExt;
    let (_idp, sb) = setup(&[]);
    std::fs::create_dir_all(sb.tokens()).unwrap();
    std::fs::set_permissions(sb.tokens(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let r = sb.run_env(&[], &secret_env());
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("tightened to 700"), "{r:?}");
    assert_eq!(mode(&sb.tokens()), 0o700);
}

#[test]
fn client_secret_post_and_discovery() {
    let idp = Idp::start(&[]);
    let sb = Sandbox::new();
    sb.write_config(&format!(
        "ingress:
  kind: oidc_m2m
  issuer: {base}
  client_id: m2m-post
  client_secret: {{env: S}}
  client_auth: post
",
        base = idp.base()
    ));
    let r = sb.run_env(&[], &[("S", "post-secret")]);
    assert_eq!(r.code, 0, "{r:?}");
    let t = sb.read_json(&sb.tokens().join("ingress.json"));
    assert_eq!(t["provider"], "oidc_m2m");
    assert_eq!(
        t["token_endpoint"],
        idp.token_url(),
        "found through the discovery document"
    );
    assert!(t.get("user_pool_id").is_none());
}

#[test]
fn wrong_secret_is_a_clear_error_and_keeps_the_old_token() {
    let (_idp, sb) = setup_with_token();
    let file = sb.tokens().join("ingress.json");
    let before = std::fs::read(&file).unwrap();
    let r = sb.run_env(
        &["--force"],
        &[("INGRESS_OAUTH_CLIENT_SECRET", "wrong-secret")],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("error: ingress: token endpoint") && r.stderr.contains("invalid_client"),
        "{r:?}"
    );
    assert!(
        r.stderr.contains("check client_id and client_secret"),
        "{r:?}"
    );
    assert!(r.stdout.contains("kept the stored token"), "{r:?}");
    assert!(!r.all().contains("wrong-secret"));
    assert_eq!(std::fs::read(&file).unwrap(), before);
    let j = sb.status_json(&secret_env());
    assert_eq!(j["identities"][0]["state"], "valid");
    assert!(
        j["identities"][0]["last_error"]
            .as_str()
            .unwrap()
            .contains("invalid_client")
    );
}

#[test]
fn provider_down_retries_then_fails_and_loses_nothing() {
    let (idp, sb) = setup_with_token();
    let file = sb.tokens().join("ingress.json");
    let before = std::fs::read(&file).unwrap();
    let roo_before = std::fs::read(sb.tokens().join("mcp.json")).unwrap();
    // The same provider, now down (its address answers nothing).
    drop(idp);
    let r = sb.run_env(&["--force"], &secret_env());
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("could not connect") && r.stderr.contains("gave up after 2 attempts"),
        "{r:?}"
    );
    assert_eq!(std::fs::read(&file).unwrap(), before);
    assert_eq!(
        std::fs::read(sb.tokens().join("mcp.json")).unwrap(),
        roo_before
    );
    let s = sb.run_env(&["status"], &secret_env());
    assert!(
        s.stdout.contains("last error:") && s.stdout.contains("could not connect"),
        "{s:?}"
    );
}

#[test]
fn malformed_config_names_file_line_and_key() {
    let sb = Sandbox::new();
    let p = sb.write_config("gateway_url: https://gw.example.com\ningress:\n  kind: cognito_m2m\n  client_id: a\n  clientsecret: x\n");
    let r = sb.run(&[]);
    assert_eq!(r.code, 3, "{r:?}");
    let want = format!(
        "error: {}:5: ingress.clientsecret: unknown key `clientsecret`; did you mean `client_secret`?",
        p.display()
    );
    assert!(r.stderr.contains(&want), "{r:?}");
    assert!(!sb.tokens().exists(), "nothing written on a config error");

    let p = sb.write_config("ingress:\n  kind: oidc_m2m\n  client_id: a\n  client_secret: {env: MISSING_VAR}\n  token_url: https://idp.example.com/t\n");
    let r = sb.run(&[]);
    assert_eq!(r.code, 3);
    assert!(
        r.stderr.contains(&format!(
            "{}:4: ingress.client_secret: environment variable `MISSING_VAR` is not set",
            p.display()
        )),
        "{r:?}"
    );

    let r = sb.run(&["--config", "/nonexistent/c.yaml"]);
    assert_eq!(r.code, 3);
    assert!(
        r.stderr
            .contains("/nonexistent/c.yaml: cannot read config file"),
        "{r:?}"
    );
}

#[test]
fn a_planted_symlink_is_replaced_not_followed() {
    let (_idp, sb) = setup(&[]);
    std::fs::create_dir_all(sb.tokens()).unwrap();
    let victim = sb.home().join("victim.txt");
    std::fs::write(&victim, "do not touch").unwrap();
    std::os::unix::fs::symlink(&victim, sb.tokens().join("ingress.json")).unwrap();
    std::os::unix::fs::symlink(&victim, sb.tokens().join("mcp.json")).unwrap();
    let r = sb.run_env(&[], &secret_env());
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "do not touch");
    assert!(r.stderr.contains("symbolic link"), "{r:?}");
    let meta = std::fs::symlink_metadata(sb.tokens().join("ingress.json")).unwrap();
    assert!(meta.file_type().is_file());
    assert_eq!(mode(&sb.tokens().join("ingress.json")), 0o600);
    // An editor file that is a symlink is followed to the user's own file (dotfile
    // managers); this one leads to a file that is not JSON: reported, and left alone.
    assert!(
        r.stderr.contains(&format!(
            "{}: line 1, column 1: not valid JSON",
            victim.display()
        )),
        "{r:?}"
    );
    assert!(
        std::fs::symlink_metadata(sb.tokens().join("mcp.json"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(r.code, 1, "{r:?}");
}

#[test]
fn reference_env_file_gives_the_same_token_file() {
    let idp = Idp::start(&[]);
    // The YAML way.
    let a = Sandbox::new();
    a.write_config(&cognito_config(&idp.base(), ""));
    assert_eq!(a.run_env(&[], &secret_env()).code, 0);
    let ta = a.read_json(&a.tokens().join("ingress.json"));

    // The reference tool's way: a .env (with inline comments) and registry/servers.
    let b = Sandbox::new();
    let repo = b.home().join("repo");
    std::fs::create_dir_all(repo.join("registry/servers")).unwrap();
    std::fs::write(
        repo.join(".env"),
        format!(
            "# gateway\nREGISTRY_URL=https://gw.example.com  # the registry\nAWS_REGION=us-east-1\nINGRESS_OAUTH_USER_POOL_ID=us-east-1_AbC123\nINGRESS_OAUTH_CLIENT_ID=m2m-client\nINGRESS_OAUTH_CLIENT_SECRET=\"{SECRET}\"\nINGRESS_OAUTH_TOKEN_URL={}\n",
            idp.token_url()
        ),
    )
    .unwrap();
    std::fs::write(repo.join("registry/servers/currenttime.json"), r#"{"server_name":"Current Time","path":"/currenttime/","proxy_pass_url":"http://currenttime-server:8000/","supported_transports":["streamable-http"]}"#).unwrap();
    std::fs::write(
        repo.join("registry/servers/server_state.json"),
        r#"{"currenttime": true}"#,
    )
    .unwrap();
    let mut c = b.command(&[]);
    c.current_dir(&repo);
    let r = Sandbox::run_cmd(c);
    assert_eq!(r.code, 0, "{r:?}");
    let tb = b.read_json(&b.tokens().join("ingress.json"));
    let keys = |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    let (mut ka, mut kb) = (keys(&ta), keys(&tb));
    ka.retain(|k| k != "scope");
    kb.retain(|k| k != "scope");
    assert_eq!(ka, kb);
    for k in [
        "provider",
        "client_id",
        "user_pool_id",
        "region",
        "token_type",
        "usage_notes",
        "token_endpoint",
    ] {
        assert_eq!(ta[k], tb[k], "{k}");
    }
    let roo = b.read_json(&b.tokens().join("mcp.json"));
    let e = &roo["mcpServers"]["currenttime"];
    assert_eq!(e["url"], "https://gw.example.com/currenttime/mcp");
    assert_eq!(
        e["headers"]["X-Authorization"],
        format!("Bearer {}", tb["access_token"].as_str().unwrap())
    );
    assert_eq!(roo["mcpServers"].as_object().unwrap().len(), 1);
}

#[test]
fn egress_flags_say_what_they_do() {
    let (_idp, sb) = setup(&[]);
    let r = sb.run_env(&["--egress-only"], &secret_env());
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains("no egress provider is configured"),
        "{r:?}"
    );
    assert!(!sb.tokens().join("ingress.json").exists());
    let r = sb.run_env(&["--provider", "atlassian"], &secret_env());
    assert_eq!(r.code, 3, "{r:?}");
    assert!(
        r.stderr
            .contains("no egress provider named `atlassian` is configured"),
        "{r:?}"
    );
    let r = sb.run_env(&["--ingress-only"], &secret_env());
    assert_eq!(r.code, 0, "{r:?}");
    assert!(sb.tokens().join("ingress.json").exists());
}

#[test]
fn status_before_any_run_says_missing() {
    let (_idp, sb) = setup(&[]);
    let r = sb.run_env(&["status", "--json"], &secret_env());
    assert_eq!(r.code, 1, "{r:?}");
    let j: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(j["identities"][0]["state"], "missing");
    assert!(!sb.tokens().exists(), "status does not create anything");
}

#[test]
fn secrets_never_reach_the_output() {
    let (_idp, sb) = setup(&[]);
    let r = sb.run_env(&["-vvv", "--force"], &secret_env());
    assert_eq!(r.code, 0, "{r:?}");
    let token = sb.read_json(&sb.tokens().join("ingress.json"))["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    for run in [
        r,
        sb.run_env(&["-vvv", "status", "--json"], &secret_env()),
        sb.run_env(&["-vvv", "status"], &secret_env()),
    ] {
        let all = run.all();
        assert!(!all.contains(SECRET), "client secret leaked: {run:?}");
        assert!(!all.contains(&token), "access token leaked: {run:?}");
    }
}

/// `headers` loads without secrets (Claude Code's environment has none); when the stored
/// token needs renewing and the secret is missing, it says so and sends nothing, rather
/// than asking the provider with an empty secret.
#[test]
fn headers_without_the_secret_never_sends_an_empty_one() {
    let (_idp, sb) = setup(&[("TOKEN_TTL", "2")]);
    let r = sb.run_env(&[], &secret_env());
    assert_eq!(r.code, 0, "{r:?}");
    let old = sb.read_json(&sb.tokens().join("ingress.json"))["access_token"].clone();
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let h = sb.run(&["headers", "currenttime"]);
    assert_eq!((h.code, h.stdout.as_str()), (1, ""), "{h:?}");
    assert!(h.stderr.contains("secret is not set"), "{h:?}");
    assert_eq!(
        sb.read_json(&sb.tokens().join("ingress.json"))["access_token"],
        old,
        "the stored token is left as it was"
    );
    // With the secret, the same command renews and prints.
    let h = sb.run_env(&["headers", "currenttime"], &secret_env());
    assert_eq!(h.code, 0, "{h:?}");
    let new = sb.read_json(&sb.tokens().join("ingress.json"))["access_token"].clone();
    assert_ne!(new, old);
}

/// A stored token is handed only to the gateway it was obtained for: a config (or a `.env`
/// planted in a checkout) naming another gateway never gets it rendered; the identity
/// fetches its own token for the new gateway.
#[test]
fn a_token_is_never_rendered_for_another_gateway() {
    let (idp, sb) = setup(&[("TOKEN_TTL", "600")]);
    let r = sb.run_env(&[], &secret_env());
    assert_eq!(r.code, 0, "{r:?}");
    let first = sb.read_json(&sb.tokens().join("ingress.json"))["access_token"]
        .as_str()
        .unwrap()
        .to_string();

    let other = cognito_config(&idp.base(), "")
        .replace("https://gw.example.com", "https://other.example.com");
    sb.write_config(&other);
    let r = sb.run(&["render"]);
    let vscode = std::fs::read_to_string(sb.home().join(".config/Code/User/mcp.json")).unwrap();
    assert!(
        !vscode.contains(&first),
        "rendered for another gateway: {r:?}"
    );
    let s = sb.run(&["status"]);
    assert!(s.stdout.contains("gateway"), "status says why: {s:?}");

    let r = sb.run_env(&[], &secret_env());
    assert_eq!(r.code, 0, "{r:?}");
    let second = sb.read_json(&sb.tokens().join("ingress.json"))["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(second, first, "a token of its own for the new gateway");
    let v = sb.read_json(&sb.home().join(".config/Code/User/mcp.json"));
    assert_eq!(
        v["servers"]["currenttime"]["url"],
        "https://other.example.com/currenttime/mcp"
    );
    assert_eq!(
        v["servers"]["currenttime"]["headers"]["X-Authorization"],
        format!("Bearer {second}")
    );
}
