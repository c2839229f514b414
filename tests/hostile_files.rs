//! Files mcp-credd reads that a cloned checkout or a mistake can make hostile: an
//! implicit `.env` that is a FIFO or a link to `/dev/zero`, a huge or unreadable provider
//! file, a FIFO or symlink planted where `doctor` reads a token or editor file or where
//! `init` reads the reference `.env` or the secrets file. Each is a clear error at once,
//! never a hang, a followed link or a memory blow-up.

mod common;

use std::time::{Duration, Instant};

use common::*;

fn mkfifo(p: &std::path::Path) {
    let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

/// Runs `c`, killing it (by its own handle) and failing the test if it takes more than
/// 30 s: a read that blocks on a FIFO shows up as a failure, not a stuck suite.
fn run_within_30s(mut c: std::process::Command) -> Run {
    use std::process::Stdio;
    let mut child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mcp-credd");
    let done = wait_for(Duration::from_secs(30), Duration::from_millis(50), || {
        child.try_wait().unwrap().is_some()
    });
    if !done {
        let _ = child.kill();
        let _ = child.wait();
        panic!("mcp-credd hung on a planted file");
    }
    Run::from(child.wait_with_output().unwrap())
}

#[test]
fn doctor_reports_a_fifo_or_symlink_at_a_token_or_editor_path_without_following_it() {
    let sb = Sandbox::new();
    let port = closed_port();
    sb.write_config(&format!(
        "gateway_url: https://gw.example.com\n{}servers:\n  - name: currenttime\neditors:\n  - vscode\n",
        oidc_m2m_ingress(&format!("http://127.0.0.1:{port}/token"))
    ));
    let tokens = sb.tokens();
    std::fs::create_dir_all(&tokens).unwrap();
    std::fs::set_permissions(&tokens, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let token = tokens.join("ingress.json");
    mkfifo(&token);
    let vscode = sb.home().join(".config/Code/User/mcp.json");
    std::fs::create_dir_all(vscode.parent().unwrap()).unwrap();
    mkfifo(&vscode);
    let r = run_within_30s(sb.command(&["doctor"]));
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stdout.contains("token ingress") && r.stdout.contains("is not a regular file"),
        "{r:?}"
    );
    assert!(
        r.stdout
            .lines()
            .any(|l| l.contains("mcp.json") && l.contains("not a regular file")),
        "{r:?}"
    );

    // A link at the token path is named, not followed to what it points at.
    std::fs::remove_file(&token).unwrap();
    let elsewhere = sb.home().join("elsewhere.json");
    std::fs::write(&elsewhere, "{}").unwrap();
    std::os::unix::fs::symlink(&elsewhere, &token).unwrap();
    let r = run_within_30s(sb.command(&["doctor"]));
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("is a symbolic link"), "{r:?}");
    assert!(!r.stdout.contains("not a valid token file"), "{r:?}");
}

#[test]
fn init_refuses_a_fifo_as_the_reference_env_or_the_secrets_file() {
    let sb = Sandbox::new();
    let fifo = sb.home().join("ref.env");
    mkfifo(&fifo);
    let r = run_within_30s(sb.command(&["init", "--from-env", fifo.to_str().unwrap()]));
    assert_ne!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains("ref.env") && r.stderr.contains("a FIFO"),
        "{r:?}"
    );
    assert!(!sb.config_path().exists(), "{r:?}");

    // A good reference `.env`, but the secrets file init would add to is a FIFO.
    std::fs::remove_file(&fifo).unwrap();
    std::fs::write(
        &fifo,
        "REGISTRY_URL=https://gw.example.com\nINGRESS_OAUTH_USER_POOL_ID=us-east-1_AbC123\nINGRESS_OAUTH_CLIENT_ID=m2m-client\nINGRESS_OAUTH_CLIENT_SECRET=s3cret\nINGRESS_OAUTH_TOKEN_URL=https://idp.example.com/oauth2/token\n",
    )
    .unwrap();
    let secrets = sb.home().join(".config/mcp-credd/env");
    std::fs::create_dir_all(secrets.parent().unwrap()).unwrap();
    mkfifo(&secrets);
    let r = run_within_30s(sb.command(&["init", "--from-env", fifo.to_str().unwrap()]));
    assert_ne!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains("mcp-credd/env") && r.stderr.contains("a FIFO"),
        "{r:?}"
    );
    assert!(!sb.config_path().exists(), "{r:?}");
}

/// A proxy is a routing variable: a current-directory `.env` that sets one may not send a
/// secret from the environment through it (the implicit-.env rule), while the same proxy
/// from the environment itself is fine.
#[test]
fn an_implicit_env_may_not_set_the_proxy_for_a_secret_from_elsewhere() {
    let sb = Sandbox::new();
    std::fs::write(sb.home().join(".env"), "HTTPS_PROXY=http://127.0.0.1:9\n").unwrap();
    let env = [
        ("REGISTRY_URL", "https://gw.example.com"),
        ("INGRESS_OAUTH_USER_POOL_ID", "us-east-1_AbC123"),
        ("INGRESS_OAUTH_CLIENT_ID", "m2m-client"),
        ("INGRESS_OAUTH_CLIENT_SECRET", "from-the-environment"),
        (
            "INGRESS_OAUTH_TOKEN_URL",
            "https://idp.example.com/oauth2/token",
        ),
    ];
    let r = sb.run_env(&["status"], &env);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(
        r.stderr.contains("HTTPS_PROXY") && r.stderr.contains("current directory"),
        "{r:?}"
    );
    std::fs::remove_file(sb.home().join(".env")).unwrap();
    let mut with_proxy = env.to_vec();
    with_proxy.push(("HTTPS_PROXY", "http://127.0.0.1:9"));
    let r = sb.run_env(&["status"], &with_proxy);
    // Loaded (exit 1 only says that no token is stored yet).
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("missing") && r.stderr.is_empty(), "{r:?}");
}

#[test]
fn a_hostile_env_file_is_refused_at_once() {
    let sb = Sandbox::new();
    // The sandbox runs in HOME: its `.env` is the implicit one a checkout would plant.
    let env = sb.home().join(".env");
    mkfifo(&env);
    let t = Instant::now();
    let r = sb.run(&["status"]);
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "a FIFO must not hang"
    );
    // Not a regular file: not taken for the checkout's `.env`; named, refused unread.
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("no configuration found"), "{r:?}");
    let t = Instant::now();
    let r = sb.run(&["--env-file", env.to_str().unwrap(), "status"]);
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "a FIFO must not hang"
    );
    assert_eq!(r.code, 3, "{r:?}");
    assert!(
        r.stderr.contains("a FIFO") && r.stderr.contains(".env"),
        "{r:?}"
    );

    // A planted link to a device is not taken for the checkout's `.env` at all, and named
    // explicitly it is refused without being read.
    std::fs::remove_file(&env).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &env).unwrap();
    let r = sb.run(&["status"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("no configuration found"), "{r:?}");
    let r = sb.run(&["--env-file", "/dev/zero", "status"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("a device"), "{r:?}");

    // The secrets file and an explicit --env-file go through the same reader.
    std::fs::remove_file(&env).unwrap();
    let big = sb.home().join("big.env");
    std::fs::write(&big, vec![b'#'; 5 * 1024 * 1024]).unwrap();
    let r = sb.run(&["--env-file", big.to_str().unwrap(), "status"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("larger than 4096 KiB"), "{r:?}");
}

#[test]
fn an_unreadable_provider_file_is_named_not_skipped() {
    let sb = Sandbox::new();
    sb.write_config("tokens_dir: ~/tok\n");
    let dir = sb.home().join(".config/mcp-credd/providers");
    std::fs::create_dir_all(&dir).unwrap();
    mkfifo(&dir.join("acme.yaml"));
    let r = sb.run(&["status"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(
        r.stderr.contains("acme.yaml") && r.stderr.contains("a FIFO"),
        "{r:?}"
    );
    std::fs::remove_file(dir.join("acme.yaml")).unwrap();
    let r = sb.run(&["status"]);
    assert_eq!(r.code, 0, "{r:?}");
}
