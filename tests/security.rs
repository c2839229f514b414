//! The security promises of README's "Security" section, each against the real binary: a
//! hostile config or secret file, another local user (uid 65534 through `setpriv`), and
//! hostile servers on 127.0.0.1.

mod common;

use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const NOBODY: u32 = 65534;

/// Runs `c`, killing it (by its PID) if it has not finished within `limit`.
fn run_bounded(mut c: Command, limit: Duration) -> (Run, Duration) {
    let start = Instant::now();
    let mut child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mcp-credd");
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = child.wait_with_output().unwrap();
    (Run::from(o), start.elapsed())
}

fn m2m_config(secret: &str, token_url: &str) -> String {
    format!(
        "ingress:\n  kind: oidc_m2m\n  client_id: m2m\n  client_secret: {secret}\n  token_url: {token_url}\n"
    )
}

#[test]
fn file_secrets_are_small_regular_files_only() {
    let sb = Sandbox::new();
    let fifo = sb.home().join("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let big = sb.home().join("big");
    std::fs::write(&big, vec![b'x'; 65 * 1024]).unwrap();
    let url = format!("http://127.0.0.1:{}/token", closed_port());
    for (path, want) in [
        ("/dev/zero".to_string(), "a device"),
        ("/proc/self/environ".to_string(), "pseudo-filesystem"),
        (fifo.display().to_string(), "a FIFO"),
        (big.display().to_string(), "larger than 64 KiB"),
    ] {
        sb.write_config(&m2m_config(&format!("{{file: {path}}}"), &url));
        let (r, took) = run_bounded(sb.command(&["--ingress-only"]), Duration::from_secs(20));
        assert_eq!(r.code, 3, "{path}: {r:?}");
        assert!(
            r.stderr.contains("cannot read secret file") && r.stderr.contains(want),
            "{path}: {r:?}"
        );
        assert!(took < Duration::from_secs(10), "{path} took {took:?}");
    }
}

#[test]
fn config_errors_on_secret_keys_do_not_echo_the_value() {
    let sb = Sandbox::new();
    let env_file = sb.home().join("gw.env");
    std::fs::write(
        &env_file,
        "INGRESS_OAUTH_CLIENT_ID=m2m\nINGRESS_OAUTH_CLIENT_SECRET:Zx9+SECRETabc==\n",
    )
    .unwrap();
    let r = sb.run(&["--env-file", env_file.to_str().unwrap(), "status"]);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("gw.env:2"), "{r:?}");
    assert!(!r.all().contains("SECRETabc"), "{r:?}");

    for secret in ["{SECRETabc}", "[SECRETabc]", "{env: [SECRETabc]}"] {
        sb.write_config(&m2m_config(secret, "https://idp.example.com/token"));
        let r = sb.run(&["status"]);
        assert_eq!(r.code, 3, "{r:?}");
        assert!(r.stderr.contains("ingress.client_secret"), "{r:?}");
        assert!(!r.all().contains("SECRETabc"), "{secret}: {r:?}");
    }
}

#[test]
fn the_process_is_not_dumpable() {
    // Run the daemon as nobody (its HOME owned by nobody), then look at it as nobody.
    let sb = Sandbox::new();
    let url = format!("http://127.0.0.1:{}/token", closed_port());
    sb.write_config(&m2m_config("plain-secret", &url));
    for e in [
        "",
        ".config",
        ".config/mcp-credd",
        ".config/mcp-credd/config.yaml",
    ] {
        std::os::unix::fs::chown(sb.home().join(e), Some(NOBODY), Some(NOBODY)).unwrap();
    }
    let mut c = as_nobody(common::BIN, &["daemon"]);
    c.env_clear()
        .env("HOME", sb.home())
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DAEMON_MARKER", "secret-in-environ")
        .current_dir(sb.home())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut daemon = c.spawn().unwrap();
    // A control process of the same user: dumpable, so /proc shows it as nobody's.
    let mut control = as_nobody("sleep", &["30"]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(800));
    let owner = |pid: u32| std::fs::metadata(format!("/proc/{pid}/environ")).map(|m| m.uid());
    let control_owner = owner(control.id());
    let daemon_owner = owner(daemon.id());
    // Another process of the same user tries to read the daemon's environment.
    let peek = as_nobody("cat", &[&format!("/proc/{}/environ", daemon.id())])
        .output()
        .unwrap();
    let _ = daemon.kill();
    let _ = control.kill();
    let _ = daemon.wait();
    let _ = control.wait();
    assert_eq!(control_owner.unwrap(), NOBODY, "control must be dumpable");
    assert_eq!(daemon_owner.unwrap(), 0, "the daemon must be non-dumpable");
    assert!(!peek.status.success());
    assert!(!String::from_utf8_lossy(&peek.stdout).contains("secret-in-environ"));
}

/// The hostile identity server (`tests/hostile/server.py`), killed by its PID on drop.
struct Hostile {
    server: Server,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Hostile {
    fn start() -> Hostile {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("requests.jsonl");
        let script =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hostile/server.py");
        let server = Server::start(
            || {
                let mut c = Command::new("python3");
                c.arg(&script).env("LOG", &log);
                c
            },
            "the hostile server",
        );
        Hostile {
            server,
            log,
            _dir: dir,
        }
    }
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.base())
    }
    fn requests(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

const ONE_ATTEMPT: &str = "http:\n  attempts: 1\n  timeout: 20s\n";

/// Runs the binary to completion and returns its run and peak resident memory (KiB),
/// measured for that process alone (wait4).
fn run_measured(sb: &Sandbox, args: &[&str]) -> (Run, i64) {
    let out = sb.home().join("out.txt");
    let err = sb.home().join("err.txt");
    let mut c = sb.command(args);
    c.stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap());
    // Reaped by wait4 below, which also gives the child's own rusage.
    #[allow(clippy::zombie_processes)]
    let child = c.spawn().unwrap();
    let mut status = 0;
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: waits for our own child by its PID; both out-pointers are valid.
    let rc = unsafe { libc::wait4(child.id() as i32, &mut status, 0, ru.as_mut_ptr()) };
    assert_eq!(rc, child.id() as i32);
    // SAFETY: wait4 succeeded and filled the struct.
    let ru = unsafe { ru.assume_init() };
    let run = Run {
        code: if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            -1
        },
        stdout: std::fs::read_to_string(&out).unwrap(),
        stderr: std::fs::read_to_string(&err).unwrap(),
    };
    (run, ru.ru_maxrss)
}

#[test]
fn a_256_mib_reply_is_refused_at_1_mib() {
    let h = Hostile::start();
    let sb = Sandbox::new();
    for path in ["/big/token", "/chunked/token"] {
        sb.write_config(&format!("{}{ONE_ATTEMPT}", m2m_config("s", &h.url(path))));
        let (r, max_kib) = run_measured(&sb, &["--ingress-only"]);
        assert_ne!(r.code, 0, "{r:?}");
        assert!(
            r.stderr
                .contains("the reply is larger than 1024 KiB; refused"),
            "{path}: {r:?}"
        );
        assert!(max_kib < 64 * 1024, "{path}: peak {max_kib} KiB");
        assert!(!sb.tokens().join("ingress.json").exists());
    }
    // The discovery document too.
    sb.write_config(&format!(
        "ingress:\n  kind: oidc_m2m\n  client_id: m2m\n  client_secret: s\n  issuer: {}\n{ONE_ATTEMPT}",
        h.url("/big")
    ));
    let (r, max_kib) = run_measured(&sb, &["--ingress-only"]);
    assert!(
        r.stderr.contains("discovery document") && r.stderr.contains("larger than 1024 KiB"),
        "{r:?}"
    );
    assert!(max_kib < 64 * 1024, "discovery: peak {max_kib} KiB");
}

#[test]
fn plain_http_never_goes_through_a_proxy_https_does() {
    let h = Hostile::start();
    let proxy = h.url("");
    let sb = Sandbox::new();
    sb.write_config(&m2m_config("the-client-secret", &h.url("/ok/token")));
    let proxies = [
        ("http_proxy", proxy.as_str()),
        ("HTTP_PROXY", proxy.as_str()),
        ("https_proxy", proxy.as_str()),
        ("ALL_PROXY", proxy.as_str()),
    ];
    let r = sb.run_env(&["--ingress-only"], &proxies);
    assert_eq!(r.code, 0, "{r:?}");
    let stored = sb.read_json(&sb.tokens().join("ingress.json"));
    assert_eq!(stored["access_token"], "good-token");
    let reqs = h.requests();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert_eq!(reqs[0]["target"], "/ok/token", "went through the proxy");

    // https goes through the proxy (a CONNECT tunnel, which this one refuses).
    sb.write_config(&format!(
        "{}{ONE_ATTEMPT}",
        m2m_config("the-client-secret", "https://idp.invalid/token")
    ));
    let r = sb.run_env(&["--ingress-only", "--force"], &proxies);
    assert_ne!(r.code, 0, "{r:?}");
    let reqs = h.requests();
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    assert_eq!(reqs[1]["method"], "CONNECT");
    assert_eq!(reqs[1]["target"], "idp.invalid:443");
}

/// A proxy set only in mcp-credd's secrets file (as `install-service` tells users to put
/// their variables there) is followed by both HTTP stacks: the OAuth client and the
/// Cognito SDK's client.
#[test]
fn a_proxy_in_the_secrets_file_is_followed_by_both_http_stacks() {
    let h = Hostile::start();
    let sb = Sandbox::new();
    sb.write_secrets(&format!("HTTPS_PROXY={}\n", h.url("")));
    sb.write_config(&format!(
        "{}{ONE_ATTEMPT}",
        m2m_config("the-client-secret", "https://idp.invalid/token")
    ));
    let r = sb.run(&["--ingress-only"]);
    assert_ne!(r.code, 0, "{r:?}");
    let reqs = h.requests();
    assert_eq!(reqs.len(), 1, "{r:?} {reqs:?}");
    assert_eq!(reqs[0]["method"], "CONNECT");
    assert_eq!(reqs[0]["target"], "idp.invalid:443");

    sb.write_config(&format!(
        "ingress:
  kind: cognito_password
  region: us-east-1
  user_pool_id: us-east-1_AbC123
  client_id: m2m
  client_secret: s
  username: svc
  password: p
  endpoint_url: https://cognito-idp.invalid
{ONE_ATTEMPT}"
    ));
    let r = sb.run(&["--ingress-only", "--force"]);
    assert_ne!(r.code, 0, "{r:?}");
    let reqs = h.requests();
    assert_eq!(reqs.len(), 2, "{r:?} {reqs:?}");
    assert_eq!(reqs[1]["method"], "CONNECT");
    assert_eq!(reqs[1]["target"], "cognito-idp.invalid:443");
}

fn has_control(s: &str) -> bool {
    s.chars().any(|c| c.is_control() && c != '\n')
}

/// Every string in a JSON document, for checking what a stored file holds once decoded.
fn strings(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        serde_json::Value::Object(o) => o.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

fn state_strings(sb: &Sandbox) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(sb.tokens().join(".mcp-credd")).unwrap() {
        let p = e.unwrap().path();
        if p.to_string_lossy().ends_with(".state.json") {
            strings(&sb.read_json(&p), &mut out);
        }
    }
    assert!(!out.is_empty(), "no state was written");
    out
}

#[test]
fn escape_sequences_from_a_server_are_escaped_everywhere() {
    let h = Hostile::start();
    let sb = Sandbox::new();
    sb.write_config(&format!(
        "{}{ONE_ATTEMPT}",
        m2m_config("s", &h.url("/escape/token"))
    ));
    let r = sb.run(&["-vv", "--ingress-only"]);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("invalid_client"), "{r:?}");
    assert!(r.stderr.contains("\\u{1b}[31mFORGED"), "{r:?}");
    assert!(!has_control(&r.all()), "{r:?}");
    assert!(
        !r.stderr.lines().any(|l| l.starts_with("2026-01-01")),
        "a forged log line: {r:?}"
    );
    for s in state_strings(&sb) {
        assert!(!has_control(&s), "state holds {s:?}");
    }
    for args in [&["status"][..], &["status", "--json"]] {
        let r = sb.run(args);
        assert!(r.all().contains("FORGED"), "{args:?} {r:?}");
        assert!(!has_control(&r.all()), "{args:?} {r:?}");
        if args.len() == 2 {
            let mut all = Vec::new();
            strings(&serde_json::from_str(&r.stdout).unwrap(), &mut all);
            assert!(all.iter().all(|s| !has_control(s)), "{all:?}");
        }
    }
}

#[test]
fn escape_sequences_in_mcp_metadata_are_refused_and_never_stored_raw() {
    let h = Hostile::start();
    let sb = Sandbox::new();
    for (case, expect) in [
        ("prm-scope", "under `scopes_supported`"),
        ("issuer", "under `authorization_servers`"),
        ("as-scope", "under `scopes_supported`"),
        ("as-endpoint", "which no URL may hold"),
    ] {
        sb.write_config(&format!(
            "servers:\n  - name: calc\n    url: {}\n    auth: oauth\n{ONE_ATTEMPT}",
            h.url(&format!("/{case}/mcp"))
        ));
        let r = sb.run(&["-vv", "login", "calc", "--no-browser", "--timeout", "5"]);
        assert_eq!(r.code, 1, "{case}: {r:?}");
        assert!(
            r.stderr.contains(expect) && r.stderr.contains("\\u{1b}[31mFORGED"),
            "{case}: {r:?}"
        );
        assert!(!has_control(&r.all()), "{case}: {r:?}");
        assert!(
            !r.stderr.lines().any(|l| l.starts_with("2026-01-01")),
            "{case}: a forged log line: {r:?}"
        );
        for s in state_strings(&sb) {
            assert!(!has_control(&s), "{case}: state holds {s:?}");
        }
        let st = sb.run(&["status", "--json"]);
        assert!(st.stdout.contains("FORGED"), "{case}: {st:?}");
        assert!(!has_control(&st.all()), "{case}: {st:?}");
    }
    // An OIDC discovery document's token endpoint: refused before any request is sent.
    let sb = Sandbox::new();
    sb.write_config(&format!(
        "ingress:\n  kind: oidc_m2m\n  client_id: m2m\n  client_secret: s\n  issuer: {}\n{ONE_ATTEMPT}",
        h.url("/esc-endpoint")
    ));
    let r = sb.run(&["-vv", "--ingress-only"]);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains("which no URL may hold") && r.stderr.contains("\\u{1b}[31mFORGED"),
        "{r:?}"
    );
    assert!(!has_control(&r.all()), "{r:?}");
    for s in state_strings(&sb) {
        assert!(!has_control(&s), "state holds {s:?}");
    }
    assert!(
        !h.requests()
            .iter()
            .any(|q| q["target"].as_str().unwrap().starts_with("/ok/token")),
        "a request went to the smuggled endpoint"
    );
}

#[test]
fn tokens_that_are_not_header_safe_are_refused() {
    let h = Hostile::start();
    let sb = Sandbox::new();
    for path in ["/crlf/token", "/space/token"] {
        sb.write_config(&format!("{}{ONE_ATTEMPT}", m2m_config("s", &h.url(path))));
        let r = sb.run(&["--ingress-only"]);
        assert_ne!(r.code, 0, "{r:?}");
        assert!(
            r.stderr.contains("not allowed in an HTTP header"),
            "{path}: {r:?}"
        );
        assert!(!sb.tokens().join("ingress.json").exists(), "{path}");
    }
}

/// A `cognito_password` service account whose Cognito API is at `endpoint`, tried once.
fn cognito_password_config(endpoint: &str) -> String {
    format!(
        "ingress:
  kind: cognito_password
  region: us-east-1
  user_pool_id: us-east-1_AbC123
  client_id: cid
  username: svc
  password: pw
  endpoint_url: {endpoint}
{ONE_ATTEMPT}"
    )
}

#[test]
fn a_malformed_cognito_reply_leaks_no_token() {
    let h = Hostile::start();
    let sb = Sandbox::new();
    sb.write_config(&cognito_password_config(&h.url("")));
    // A proxy that would be used (and fail) if the SDK followed HTTP_PROXY to loopback.
    let dead_proxy = format!("http://127.0.0.1:{}", closed_port());
    let r = sb.run_env(
        &["-vvv", "--ingress-only"],
        &[
            ("http_proxy", &dead_proxy),
            ("HTTP_PROXY", &dead_proxy),
            ("ALL_PROXY", &dead_proxy),
        ],
    );
    assert_ne!(r.code, 0, "{r:?}");
    assert!(!h.requests().is_empty(), "the SDK went to the proxy: {r:?}");
    assert!(r.stderr.contains("the reply could not be read"), "{r:?}");
    let leaked = |s: &str| s.contains("LEAKED");
    assert!(!leaked(&r.all()), "{r:?}");
    assert!(!state_strings(&sb).iter().any(|s| leaked(s)));
    for args in [&["status"][..], &["status", "--json"]] {
        let r = sb.run(args);
        assert!(!leaked(&r.all()), "{args:?} {r:?}");
    }
}

#[test]
fn directories_created_under_umask_000_are_0700() {
    let h = Hostile::start();
    let sb = Sandbox::new();
    // The config outside ~/.config, so that mcp-credd is the one creating ~/.config.
    let cfg = sb.home().join("cfg.yaml");
    std::fs::write(
        &cfg,
        format!(
            "gateway_url: https://gw.example.com\n{}tokens_dir: ~/deep/er/tokens\neditors: [vscode, cursor]\nservers:\n  - name: currenttime\n",
            m2m_config("s", &h.url("/ok/token"))
        ),
    )
    .unwrap();
    let r = sb.run_umask(&["--config", cfg.to_str().unwrap()], 0o000, &[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        sb.home().join(".config/Code/User/mcp.json").is_file(),
        "{r:?}"
    );
    assert!(sb.home().join(".cursor/mcp.json").is_file(), "{r:?}");
    for d in [
        ".config",
        ".config/Code",
        ".config/Code/User",
        ".cursor",
        "deep",
        "deep/er",
        "deep/er/tokens",
    ] {
        assert_eq!(mode(&sb.home().join(d)), 0o700, "{d}");
    }
    for f in [".config/Code/User/mcp.json", ".cursor/mcp.json"] {
        assert_eq!(mode(&sb.home().join(f)), 0o600, "{f}");
    }
}

#[test]
fn hooks_get_a_minimal_environment() {
    let h = Hostile::start();
    let sb = Sandbox::new();
    let out = sb.home().join("hook-env.txt");
    sb.write_config(&format!(
        "{}{ONE_ATTEMPT}on_error: [sh, -c, 'env > {}.tmp && mv {}.tmp {}']\n",
        m2m_config("{env: THE_CLIENT_SECRET}", &h.url("/escape/token")),
        out.display(),
        out.display(),
        out.display()
    ));
    let daemon = Daemon::start(
        &sb,
        &["daemon"],
        &[
            ("THE_CLIENT_SECRET", "hunter2-client-secret"),
            ("AWS_SECRET_ACCESS_KEY", "aws-secret"),
            ("LANG", "C.UTF-8"),
            ("DBUS_SESSION_BUS_ADDRESS", "unix:path=/run/user/0/bus"),
            ("MCP_CREDD_LOG", "info"),
        ],
    );
    wait_for(Duration::from_secs(20), Duration::from_millis(100), || {
        out.exists()
    });
    drop(daemon);
    let env = std::fs::read_to_string(&out).expect("the on_error hook ran");
    let names: Vec<&str> = env
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k))
        .collect();
    for want in [
        "PATH",
        "HOME",
        "LANG",
        "DBUS_SESSION_BUS_ADDRESS",
        "MCP_CREDD_EVENT",
        "MCP_CREDD_LOG",
    ] {
        assert!(names.contains(&want), "{want} missing: {env}");
    }
    // What sh itself adds (PWD, SHLVL, _) aside, nothing else is passed.
    for n in &names {
        assert!(
            [
                "PATH",
                "HOME",
                "LANG",
                "XDG_RUNTIME_DIR",
                "DBUS_SESSION_BUS_ADDRESS",
                "PWD",
                "SHLVL",
                "_",
                "OLDPWD"
            ]
            .contains(n)
                || n.starts_with("MCP_CREDD_"),
            "{n} reached the hook: {env}"
        );
    }
    assert!(!env.contains("hunter2") && !env.contains("aws-secret"));
}

#[test]
fn an_implicit_env_cannot_send_an_exported_secret_elsewhere() {
    let h = Hostile::start();
    let sb = Sandbox::new();
    // A cloned repository's .env in the current directory names the endpoint.
    std::fs::write(
        sb.home().join(".env"),
        format!(
            "INGRESS_OAUTH_CLIENT_ID=m2m\nINGRESS_OAUTH_TOKEN_URL={}\nINGRESS_OAUTH_USER_POOL_ID=us-east-1_AbC123\n",
            h.url("/ok/token")
        ),
    )
    .unwrap();
    let exported = [("INGRESS_OAUTH_CLIENT_SECRET", "exported-secret")];
    let r = sb.run_env(&["--ingress-only"], &exported);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(
        r.stderr.contains(".env:2: INGRESS_OAUTH_TOKEN_URL")
            && r.stderr
                .contains("INGRESS_OAUTH_CLIENT_SECRET comes from your environment")
            && r.stderr.contains("--env-file"),
        "{r:?}"
    );
    assert!(h.requests().is_empty(), "the secret was sent");
    // The same with the secret in the secrets file (~/.config/mcp-credd/env).
    let secrets = sb.write_secrets("INGRESS_OAUTH_CLIENT_SECRET=file-secret\n");
    let r = sb.run(&["--ingress-only"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(
        r.stderr.contains("INGRESS_OAUTH_CLIENT_SECRET comes from"),
        "{r:?}"
    );
    assert!(h.requests().is_empty(), "the secret was sent");
    std::fs::remove_file(&secrets).unwrap();
    // Chosen explicitly, the same file is trusted.
    let r = sb.run_env(&["--ingress-only", "--env-file", ".env"], &exported);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(h.requests().len(), 1);
    // A .env that carries its own secret sends only that.
    std::fs::write(
        sb.home().join(".env"),
        format!(
            "INGRESS_OAUTH_CLIENT_ID=m2m\nINGRESS_OAUTH_CLIENT_SECRET=its-own\nINGRESS_OAUTH_TOKEN_URL={}\nINGRESS_OAUTH_USER_POOL_ID=us-east-1_AbC123\n",
            h.url("/ok/token")
        ),
    )
    .unwrap();
    let r = sb.run(&["--ingress-only", "--force"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(h.requests().len(), 2);
}

#[test]
fn a_256_mib_cognito_reply_is_refused_at_1_mib() {
    let h = Hostile::start();
    let sb = Sandbox::new();
    sb.write_config(&cognito_password_config(&h.url("/big")));
    let (r, max_kib) = run_measured(&sb, &["--ingress-only"]);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(!h.requests().is_empty());
    assert!(
        r.stderr
            .contains("the reply is larger than 1024 KiB; refused"),
        "{r:?}"
    );
    assert!(max_kib < 64 * 1024, "peak {max_kib} KiB");
}

#[test]
fn a_device_code_with_escape_sequences_is_shown_escaped() {
    let h = Hostile::start();
    let sb = Sandbox::new();
    let config = |device: &str| {
        format!(
            "gateway_url: https://gw.example.com
providers:
  hostile:
    display_name: Hostile
    authorize_url: {base}/authorize
    token_url: {base}/escape/token
    device_authorization_url: {base}{device}
    scopes: [x]
    pkce: false
    token_auth: post
    refresh: reusable
egress:
  - name: hostile
    provider: hostile
    client_id: c
    redirect_uri: http://127.0.0.1:{port}/callback
{ONE_ATTEMPT}",
            base = h.url(""),
            port = closed_port()
        )
    };
    let login = || {
        run_bounded(
            sb.command(&[
                "login",
                "hostile",
                "--device",
                "--no-browser",
                "--timeout",
                "10",
            ]),
            Duration::from_secs(30),
        )
    };
    sb.write_config(&config("/device/auth"));
    let (r, took) = login();
    assert!(took < Duration::from_secs(25), "{r:?}");
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("AB\\u{1b}]0;pwned\\u{7}CD"), "{r:?}");
    assert!(r.stderr.contains("\\u{1b}[31mFORGED"), "{r:?}");
    assert!(!has_control(&r.all()), "{r:?}");
    // CR/LF in the verification URI: refused before anything is shown, named escaped.
    sb.write_config(&config("/device-uri/auth"));
    let (r, _) = login();
    assert_ne!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains("verification_uri")
            && r.stderr
                .contains("/device\\r\\nFORGED` contains the character `\\r`"),
        "{r:?}"
    );
    assert!(!r.stdout.contains("pwned"), "{r:?}");
    assert!(!has_control(&r.all()), "{r:?}");
}

#[test]
fn doctor_shows_hostile_token_claims_escaped() {
    use base64::Engine;
    let h = Hostile::start();
    let sb = Sandbox::new();
    sb.write_config(&m2m_config("s", &h.url("/ok/token")));
    let b64 = |v: &serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let claims = serde_json::json!({
        "iss": "https://evil\u{1b}[2J", "sub": "x\u{7}\r\nforged", "aud": "a\u{9b}b",
        "client_id": "m2m", "exp": now_secs() as i64 + 3600
    });
    let token = format!(
        "{}.{}.sig",
        b64(&serde_json::json!({"alg": "none"})),
        b64(&claims)
    );
    let dir = sb.tokens();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let file = dir.join("ingress.json");
    std::fs::write(
        &file,
        serde_json::json!({"provider": "oidc_m2m", "access_token": token, "expires_at": now_secs() + 3600.0})
            .to_string(),
    )
    .unwrap();
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let r = sb.run(&["doctor"]);
    assert!(r.stdout.contains("\\u{1b}[2J"), "{r:?}");
    assert!(!has_control(&r.all()), "{r:?}");
    let r = sb.run(&["doctor", "--json"]);
    let mut all = Vec::new();
    strings(&serde_json::from_str(&r.stdout).unwrap(), &mut all);
    assert!(all.iter().any(|s| s.contains("\\u{1b}[2J")), "{all:?}");
    assert!(all.iter().all(|s| !has_control(s)), "{all:?}");
}

#[test]
fn a_stored_token_that_could_split_a_header_is_never_handed_on() {
    let h = Hostile::start();
    let sb = Sandbox::new();
    sb.write_config(&format!(
        "gateway_url: https://gw.example.com\n{}editors: [vscode]\nservers:\n  - name: currenttime\n",
        m2m_config("s", &h.url("/ok/token"))
    ));
    let r = sb.run(&["--ingress-only"]);
    assert_eq!(r.code, 0, "{r:?}");
    // Another tool (or a hand edit) leaves a token with CR/LF in the file.
    let file = sb.tokens().join("ingress.json");
    sb.edit_json(&file, |rec| {
        rec["access_token"] = "good\r\nX-Injected: 1".into()
    });
    let _ = sb.run(&["render"]);
    let vscode = std::fs::read_to_string(sb.home().join(".config/Code/User/mcp.json")).unwrap();
    assert!(!vscode.contains("X-Injected"), "{vscode}");
    let r = sb.run(&["headers", "currenttime"]);
    assert!(!r.stdout.contains("X-Injected"), "{r:?}");
}
