//! Identity-provider outages during a daemon run: the provider (behind a fault-injecting
//! proxy on 127.0.0.1) goes down, answers 500, 503, 429 with Retry-After, HTML, truncated
//! JSON, or hangs. The daemon keeps running, keeps the old token (never deletes or
//! truncates it), and recovers within one backoff cap after the provider returns.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// The fault-injecting proxy (`tests/faults/flaky.py`) in front of `upstream`; what it
/// does is in its mode file.
struct Proxy {
    server: Server,
    mode_file: std::path::PathBuf,
}

impl Proxy {
    fn start(upstream: &str, dir: &std::path::Path) -> Proxy {
        let mode_file = dir.join("mode");
        std::fs::write(&mode_file, "pass").unwrap();
        let server = Server::start(
            || {
                let mut c = Command::new("python3");
                c.arg(
                    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/faults/flaky.py"),
                )
                .arg(upstream)
                .arg(&mode_file);
                c
            },
            "the fault-injecting proxy",
        );
        Proxy { server, mode_file }
    }
    fn set(&self, mode: &str) {
        std::fs::write(&self.mode_file, mode).unwrap();
    }
}

#[test]
fn outages_of_every_kind_keep_the_old_token_and_the_daemon_recovers() {
    let idp = Idp::start(&[("TOKEN_TTL", "6")]);
    let sb = Sandbox::new();
    let proxy = Proxy::start(&idp.base(), sb.home());
    sb.write_config(&format!(
        "gateway_url: https://gw.example.com
{}servers:
  - name: currenttime
http:
  timeout: 1s
  attempts: 2
  initial_backoff: 100ms
  max_backoff: 500ms
refresh:
  retry_initial: 500ms
  retry_max: 2s
  check_interval: 500ms
",
        oidc_m2m_ingress(&format!("{}/oauth2/token", proxy.server.base()))
    ));
    let mut daemon = Daemon::start(&sb, &["daemon"], &[]);
    let file = sb.tokens().join("ingress.json");
    let token = || {
        sb.read_json(&file)["access_token"]
            .as_str()
            .unwrap()
            .to_string()
    };
    wait_until(
        Duration::from_secs(10),
        Duration::from_millis(50),
        || file.exists(),
        || "no first token".into(),
    );
    for mode in ["500", "503", "429", "html", "truncated", "hang", "down"] {
        proxy.set(mode);
        let before = token();
        // The outage outlasts the token (6 s): the stored token stays as it was.
        let until = Instant::now() + Duration::from_secs(7);
        while Instant::now() < until {
            assert!(daemon.running(), "the daemon died during `{mode}`");
            assert_eq!(token(), before, "the stored token changed during `{mode}`");
            std::thread::sleep(Duration::from_millis(200));
        }
        proxy.set("pass");
        // Recovery within one backoff cap (2 s) plus a request.
        wait_until(
            Duration::from_secs(5),
            Duration::from_millis(100),
            || token() != before,
            || format!("no recovery after `{mode}`\n{}", daemon.log_text()),
        );
        assert!(sb.read_json(&file)["expires_at"].as_f64().unwrap() > now_secs());
    }
    let log_text = std::fs::read_to_string(&daemon.log).unwrap();
    for what in [
        "HTTP 500",
        "HTTP 503",
        "HTTP 429",
        "text/html",
        "not a JSON token reply",
        "timed out",
    ] {
        assert!(
            log_text.contains(what),
            "the log names `{what}`:\n{log_text}"
        );
    }
    assert!(daemon.stop().success());
    assert!(
        std::fs::read_dir(sb.tokens()).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains("tmp")),
        "no temp files left"
    );
}
