//! Identity-provider outages during a daemon run: the provider (behind a fault-injecting
//! proxy on 127.0.0.1) goes down, answers 500, 503, 429 with Retry-After, HTML, truncated
//! JSON, or hangs. The daemon keeps running, keeps the old token (never deletes or
//! truncates it), and recovers within one backoff cap after the provider returns.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

struct Proxy {
    port: u16,
    mode_file: std::path::PathBuf,
    child: Child,
}

impl Proxy {
    fn start(upstream: &str, dir: &std::path::Path) -> Proxy {
        let mode_file = dir.join("mode");
        std::fs::write(&mode_file, "pass").unwrap();
        let mut child = Command::new("python3")
            .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/faults/flaky.py"))
            .arg(upstream)
            .arg(&mode_file)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("READY ")
            .expect("proxy ready")
            .parse()
            .unwrap();
        Proxy {
            port,
            mode_file,
            child,
        }
    }
    fn set(&self, mode: &str) {
        std::fs::write(&self.mode_file, mode).unwrap();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn outages_of_every_kind_keep_the_old_token_and_the_daemon_recovers() {
    let idp = Idp::start(&[("TOKEN_TTL", "6")]);
    let sb = Sandbox::new();
    let proxy = Proxy::start(&idp.base(), sb.home());
    sb.write_config(&format!(
        "gateway_url: https://gw.example.com
ingress:
  kind: oidc_m2m
  client_id: m2m-client
  client_secret: m2m-secret
  token_url: http://127.0.0.1:{}/oauth2/token
servers:
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
        proxy.port
    ));
    let log = sb.home().join("daemon.log");
    let mut daemon = sb
        .command(&["daemon"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let file = sb.tokens().join("ingress.json");
    let token = || {
        sb.read_json(&file)["access_token"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let end = Instant::now() + Duration::from_secs(10);
    while !file.exists() {
        assert!(Instant::now() < end, "no first token");
        std::thread::sleep(Duration::from_millis(50));
    }
    for mode in ["500", "503", "429", "html", "truncated", "hang", "down"] {
        proxy.set(mode);
        let before = token();
        // The outage outlasts the token (6 s): the stored token stays as it was.
        let until = Instant::now() + Duration::from_secs(7);
        while Instant::now() < until {
            assert!(
                daemon.try_wait().unwrap().is_none(),
                "the daemon died during `{mode}`"
            );
            assert_eq!(token(), before, "the stored token changed during `{mode}`");
            std::thread::sleep(Duration::from_millis(200));
        }
        proxy.set("pass");
        // Recovery within one backoff cap (2 s) plus a request.
        let back = Instant::now() + Duration::from_secs(5);
        while token() == before {
            assert!(
                Instant::now() < back,
                "no recovery after `{mode}`\n{}",
                std::fs::read_to_string(&log).unwrap()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(sb.read_json(&file)["expires_at"].as_f64().unwrap() > now_secs());
    }
    let log_text = std::fs::read_to_string(&log).unwrap();
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
    // SAFETY: kill(2) on our child's PID.
    unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) };
    assert!(daemon.wait().unwrap().success());
    assert!(
        std::fs::read_dir(sb.tokens()).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains("tmp")),
        "no temp files left"
    );
}
