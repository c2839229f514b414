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
    let took = start.elapsed();
    (
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        },
        took,
    )
}

/// A command run as uid/gid 65534 (nobody), with no supplementary groups.
fn as_nobody(program: &str, args: &[&str]) -> Command {
    let mut c = Command::new("setpriv");
    c.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--",
        program,
    ])
    .args(args);
    c
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
