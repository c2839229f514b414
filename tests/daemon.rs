//! The daemon, for real: `mcp-credd daemon` against oidc-provider on 127.0.0.1 with tokens
//! that live a few seconds, signals, config edits, a fake NOTIFY_SOCKET, a second daemon.

mod common;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use common::*;

fn config(idp: &Idp, servers: &str) -> String {
    format!(
        "gateway_url: https://gw.example.com
{}http:
  timeout: 3s
  attempts: 2
  initial_backoff: 100ms
servers:
{servers}",
        cognito_m2m_ingress(&idp.base(), "{env: INGRESS_OAUTH_CLIENT_SECRET}")
    )
}

/// oidc-provider (with `env`), a sandbox whose config (at the returned path) lists
/// `currenttime`, and the daemon running in it.
fn started(env: &[(&str, &str)]) -> (Idp, Sandbox, std::path::PathBuf, Notified) {
    let idp = Idp::start(env);
    let sb = Sandbox::new();
    let cfg = sb.write_config(&config(&idp, "  - name: currenttime\n"));
    let d = Notified::start(&sb);
    (idp, sb, cfg, d)
}

/// The daemon, with a notify socket as systemd gives it.
struct Notified {
    daemon: Daemon,
    notify: UnixDatagram,
}

impl Notified {
    fn start(sb: &Sandbox) -> Notified {
        let sock = sb.home().join("notify.sock");
        let _ = std::fs::remove_file(&sock);
        let notify = UnixDatagram::bind(&sock).unwrap();
        notify
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let daemon = Daemon::start(
            sb,
            &["daemon"],
            &[
                ("INGRESS_OAUTH_CLIENT_SECRET", "m2m-secret"),
                ("NOTIFY_SOCKET", sock.to_str().unwrap()),
                // As under Type=notify-reload (install-service sets it there only).
                ("MCP_CREDD_NOTIFY_RELOAD", "1"),
            ],
        );
        Notified { daemon, notify }
    }

    /// Messages received within `within`, until one equal to `until` arrives.
    fn wait_for(&self, until: &str, within: Duration) -> Vec<String> {
        let end = Instant::now() + within;
        let mut seen = Vec::new();
        let mut buf = [0u8; 1024];
        while Instant::now() < end {
            if let Ok(n) = self.notify.recv(&mut buf) {
                let m = String::from_utf8_lossy(&buf[..n]).into_owned();
                let done = m == until || m.starts_with(until);
                seen.push(m);
                if done {
                    return seen;
                }
            }
        }
        panic!(
            "no {until:?} within {within:?}; got {seen:?}\nlog:\n{}",
            self.log_text()
        );
    }

    /// Reads what is queued, as systemd would, so the socket's small queue never fills.
    fn drain(&self) {
        let mut buf = [0u8; 1024];
        self.notify.set_nonblocking(true).unwrap();
        while self.notify.recv(&mut buf).is_ok() {}
        self.notify.set_nonblocking(false).unwrap();
    }

    fn log_text(&self) -> String {
        self.daemon.log_text()
    }

    fn signal(&self, sig: i32) {
        self.daemon.signal(sig);
    }

    /// SIGUSR1, and a stored token other than `old` within 5 s (else fails saying `what`).
    fn refresh(&self, sb: &Sandbox, old: &str, what: &str) {
        self.signal(libc::SIGUSR1);
        wait_until(
            Duration::from_secs(5),
            Duration::from_millis(50),
            || sb.access_token("ingress.json") != old,
            || format!("{what}\n{}", self.log_text()),
        );
    }

    /// SIGTERM, then the exit code, which must come within `within`, and the messages
    /// still queued.
    fn stop(mut self, within: Duration) -> (i32, Vec<String>) {
        let st = self.daemon.stop_within(within);
        let mut msgs = Vec::new();
        let mut buf = [0u8; 1024];
        while let Ok(n) = self.notify.recv(&mut buf) {
            msgs.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        (st.code().unwrap_or(-1), msgs)
    }
}

#[test]
fn keeps_every_token_valid_while_they_expire_every_few_seconds() {
    let (idp, sb, cfg, d) = started(&[("TOKEN_TTL", "4")]);
    // Ready at once (before any token is fetched), valid soon after.
    d.wait_for("READY=1", Duration::from_secs(10));
    d.wait_for("STATUS=1 of 1 identities valid", Duration::from_secs(10));

    // A second daemon for the same tokens directory refuses to start.
    let second = sb.run_env(
        &["daemon"],
        &[("INGRESS_OAUTH_CLIENT_SECRET", "m2m-secret")],
    );
    assert_eq!(second.code, 1, "{second:?}");
    assert!(
        second
            .stderr
            .contains("another mcp-credd daemon is already running"),
        "{second:?}"
    );

    // Sample the files for 12 s (three token lifetimes): every sample holds a valid token.
    let mut tokens = std::collections::HashSet::new();
    let end = Instant::now() + Duration::from_secs(12);
    let mut samples = 0;
    while Instant::now() < end {
        let now = now_secs();
        let t = sb.read_json(&sb.tokens().join("ingress.json"));
        assert!(
            t["expires_at"].as_f64().unwrap() > now,
            "token file holds an expired token at {now}: {t}"
        );
        let roo = sb.read_json(&sb.tokens().join("mcp.json"));
        let header = roo["mcpServers"]["currenttime"]["headers"]["X-Authorization"]
            .as_str()
            .unwrap()
            .to_string();
        let jwt = header.strip_prefix("Bearer ").unwrap();
        assert!(
            jwt_claims(jwt)["exp"].as_f64().unwrap() > now,
            "mcp.json holds an expired token at {now}"
        );
        tokens.insert(jwt.to_string());
        samples += 1;
        d.drain();
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(samples > 40, "{samples}");
    assert!(
        tokens.len() >= 4,
        "tokens are refreshed before they expire: saw {}",
        tokens.len()
    );

    // An edit of the config file adds a server to the MCP configs.
    std::fs::write(
        &cfg,
        config(&idp, "  - name: currenttime\n  - name: added\n"),
    )
    .unwrap();
    wait_until(
        Duration::from_secs(5),
        Duration::from_millis(100),
        || {
            let roo = sb.read_json(&sb.tokens().join("mcp.json"));
            roo["mcpServers"]["added"]["url"] == "https://gw.example.com/added/mcp"
        },
        || format!("the added server did not appear\n{}", d.log_text()),
    );
    // A broken edit is reported and the running configuration kept.
    std::fs::write(&cfg, "ingress: [\n").unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        d.log_text()
            .contains("configuration not reloaded, keeping the running one"),
        "{}",
        d.log_text()
    );
    let t = sb.read_json(&sb.tokens().join("ingress.json"));
    assert!(t["expires_at"].as_f64().unwrap() > now_secs());

    let (code, msgs) = d.stop(Duration::from_secs(5));
    assert_eq!(code, 0);
    assert!(msgs.iter().any(|m| m == "STOPPING=1"), "{msgs:?}");
}

#[test]
fn signals_refresh_reload_and_stop() {
    let (_idp, sb, _cfg, d) = started(&[]);
    let msgs = d.wait_for("READY=1", Duration::from_secs(10));
    let status = d.wait_for("STATUS=1 of 1 identities valid", Duration::from_secs(10));
    assert!(
        status
            .last()
            .unwrap()
            .starts_with("STATUS=1 of 1 identities valid; next refresh in"),
        "{msgs:?} {status:?}"
    );
    let first = sb.access_token("ingress.json");

    // SIGUSR1: a new token now, although the current one is good for an hour.
    d.refresh(&sb, &first, "SIGUSR1 did not refresh");

    // SIGHUP: reload, announced to systemd.
    d.signal(libc::SIGHUP);
    let msgs = d.wait_for("READY=1", Duration::from_secs(5));
    assert!(
        msgs.iter()
            .any(|m| m.starts_with("RELOADING=1\nMONOTONIC_USEC=")),
        "{msgs:?}"
    );
    assert!(
        d.log_text().contains("configuration reloaded"),
        "{}",
        d.log_text()
    );

    // A token written by another process (a one-shot --force) is picked up.
    let r = sb.run_env(
        &["--force"],
        &[("INGRESS_OAUTH_CLIENT_SECRET", "m2m-secret")],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let forced = sb.access_token("ingress.json");
    std::thread::sleep(Duration::from_millis(500));
    let roo = sb.read_json(&sb.tokens().join("mcp.json"));
    assert_eq!(
        roo["mcpServers"]["currenttime"]["headers"]["X-Authorization"],
        format!("Bearer {forced}")
    );

    let started = Instant::now();
    let (code, msgs) = d.stop(Duration::from_secs(5));
    assert_eq!(code, 0);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(msgs.iter().any(|m| m == "STOPPING=1"), "{msgs:?}");
    // The log is journald-friendly: no ANSI colours when not on a terminal.
    assert!(!d_log_has_escape(&sb));
}

/// The editor configs' `X-Authorization` in the reference copy (`mcp.json`).
fn rendered_token(sb: &Sandbox) -> String {
    let roo = sb.read_json(&sb.tokens().join("mcp.json"));
    roo["mcpServers"]["currenttime"]["headers"]["X-Authorization"]
        .as_str()
        .unwrap_or_default()
        .trim_start_matches("Bearer ")
        .to_string()
}

/// Holds the render lock as a one-shot run does while it writes the editor files.
fn hold_render_lock(sb: &Sandbox) -> std::fs::File {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(sb.tokens().join(".mcp-credd/render.lock"))
        .unwrap();
    f.try_lock().expect("the daemon is not rendering now");
    f
}

#[test]
fn answers_signals_and_keeps_refreshing_while_another_process_holds_the_render_lock() {
    let (_idp, sb, _cfg, d) = started(&[]);
    d.wait_for("READY=1", Duration::from_secs(10));
    d.wait_for("STATUS=1 of 1 identities valid", Duration::from_secs(10));
    wait_until(
        Duration::from_secs(5),
        Duration::from_millis(50),
        || rendered_token(&sb) == sb.access_token("ingress.json"),
        || format!("first render\n{}", d.log_text()),
    );
    let first = sb.access_token("ingress.json");

    let lock = hold_render_lock(&sb);
    // SIGUSR1 under the lock: the token is refreshed all the same...
    d.refresh(&sb, &first, "no refresh while the render lock is held");
    let second = sb.access_token("ingress.json");
    // ...and its render now waits for the lock (a render takes milliseconds otherwise).
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(rendered_token(&sb), first, "the lock is honoured");

    // SIGHUP is answered at once, not after the render lock's 10 s wait.
    d.drain();
    let asked = Instant::now();
    d.signal(libc::SIGHUP);
    let msgs = d.wait_for("READY=1", Duration::from_secs(3));
    assert!(
        msgs.iter()
            .any(|m| m.starts_with("RELOADING=1\nMONOTONIC_USEC=")),
        "{msgs:?}"
    );
    assert!(asked.elapsed() < Duration::from_secs(3));
    // And a second refresh goes through while the first render still waits.
    d.refresh(
        &sb,
        &second,
        "no second refresh while the render lock is held",
    );
    let third = sb.access_token("ingress.json");

    // Released: the waiting render writes the newest token.
    drop(lock);
    wait_until(
        Duration::from_secs(5),
        Duration::from_millis(50),
        || rendered_token(&sb) == third,
        || {
            format!(
                "the render did not follow the lock's release\n{}",
                d.log_text()
            )
        },
    );

    // SIGTERM under the lock: the daemon stops within its drain bound, the editor files
    // left to the lock's holder.
    let _lock = hold_render_lock(&sb);
    d.refresh(&sb, &third, "no third refresh");
    std::thread::sleep(Duration::from_millis(300));
    let log = d.daemon.log.clone();
    let started = Instant::now();
    let (code, msgs) = d.stop(Duration::from_secs(8));
    assert_eq!(code, 0);
    assert!(msgs.iter().any(|m| m == "STOPPING=1"), "{msgs:?}");
    assert!(
        started.elapsed() < Duration::from_secs(7),
        "{:?}",
        started.elapsed()
    );
    let log = std::fs::read_to_string(log).unwrap();
    assert!(
        log.contains("the editor configs were not rewritten before stopping"),
        "{log}"
    );
    assert_eq!(rendered_token(&sb), third);
}

fn d_log_has_escape(sb: &Sandbox) -> bool {
    std::fs::read_to_string(sb.home().join("daemon.log"))
        .unwrap_or_default()
        .contains('\u{1b}')
}

#[test]
fn the_unit_file_verifies_and_install_service_fills_it_in() {
    let sb = Sandbox::new();
    sb.write_config("tokens_dir: ~/tok\n");
    let unit = sb.home().join("units/mcp-credd.service");
    let r = sb.run(&["install-service", "--unit-path", unit.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout
            .contains("systemctl --user daemon-reload && systemctl --user enable --now mcp-credd"),
        "{r:?}"
    );
    let text = std::fs::read_to_string(&unit).unwrap();
    // The config file names its tokens directory; the unit leaves that to the file.
    assert!(
        text.contains(&format!(
            "ExecStart=\"{BIN}\" \"--config\" \"{}\" daemon",
            sb.config_path().display(),
        )),
        "{text}"
    );
    // A flag given to install-service is carried into the unit.
    let other = sb.home().join("units/other.service");
    let r = sb.run(&[
        "--tokens-dir",
        sb.home().join("tok2").to_str().unwrap(),
        "install-service",
        "--unit-path",
        other.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let t2 = std::fs::read_to_string(&other).unwrap();
    assert!(
        t2.contains(&format!(
            "\"--config\" \"{}\" \"--tokens-dir\" \"{}/tok2\" daemon",
            sb.config_path().display(),
            sb.home().display()
        )),
        "{t2}"
    );
    assert!(
        text.contains(&format!("ReadWritePaths=\"-{}/tok\"", sb.home().display())),
        "{text}"
    );
    assert!(
        text.contains("Type=notify")
            && text.contains("UMask=0077")
            && text.contains("ExecReload=/bin/kill -HUP $MAINPID")
    );
    assert_eq!(
        mode(&sb.home().join("tok")),
        0o700,
        "the token directory exists before the unit starts"
    );
    // systemd's own checker (scripts/test-deps.sh installs it). It needs a runtime
    // directory for a user manager, which a test machine may not have.
    let rt = sb.home().join("xdg-runtime");
    std::fs::create_dir_all(&rt).unwrap();
    std::fs::set_permissions(&rt, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .args(["verify", "--user"])
        .arg(&unit)
        .env("XDG_RUNTIME_DIR", &rt)
        .env("HOME", sb.home())
        .output()
        .expect("systemd-analyze (run scripts/test-deps.sh)");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.trim().is_empty(),
        "systemd-analyze verify: {err}"
    );
}
