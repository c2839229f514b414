//! Crash consistency: one-shot runs and the daemon are killed with SIGKILL at random
//! moments while tokens refresh and configs are written, many times over. Afterwards every
//! token and config file parses, has its mode, holds a token that was valid when written,
//! and no temp files are left once the next run has swept them.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

fn files_are_whole(sb: &Sandbox) {
    let t = sb.tokens().join("ingress.json");
    if t.exists() {
        assert_eq!(mode(&t), 0o600);
        let v = sb.read_json(&t);
        let (obtained, expires) = (
            v["obtained_at"].as_f64().unwrap(),
            v["expires_at"].as_f64().unwrap(),
        );
        assert!(expires > obtained, "a token valid when written: {v}");
        assert!(v["access_token"].as_str().unwrap().len() > 20);
    }
    for p in [
        sb.tokens().join("mcp.json"),
        sb.tokens().join("vscode_mcp.json"),
        sb.home().join(
            ".config/Code/User/globalStorage/rooveterinaryinc.roo-cline/settings/mcp_settings.json",
        ),
    ] {
        if p.exists() {
            assert_eq!(mode(&p), 0o600, "{}", p.display());
            let text = std::fs::read_to_string(&p).unwrap();
            serde_json::from_str::<serde_json::Value>(&text)
                .unwrap_or_else(|e| panic!("{} torn: {e}", p.display()));
        }
    }
    let vscode = sb.home().join(".config/Code/User/mcp.json");
    if vscode.exists() {
        let text = std::fs::read_to_string(&vscode).unwrap();
        assert!(text.trim_end().ends_with('}'), "VS Code file torn: {text}");
    }
}

fn temp_files(dir: &std::path::Path) -> Vec<String> {
    walk(dir, 16)
        .into_iter()
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .contains("mcp-credd-tmp")
        })
        .map(|p| p.display().to_string())
        .collect()
}

#[test]
fn sigkill_at_random_moments_never_tears_a_file() {
    let idp = Idp::start(&[("TOKEN_TTL", "2")]);
    let sb = Sandbox::new();
    sb.write_config(&format!(
        "gateway_url: https://gw.example.com
{}servers:
  - name: a
  - name: b
  - name: c
",
        oidc_m2m_ingress(&idp.token_url())
    ));
    let mut seed: u64 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    println!("seed {seed}");
    let mut rand = move |n: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    let started = Instant::now();
    let mut kills = 0;
    for i in 0..200 {
        let args: &[&str] = if i % 10 == 0 {
            &["daemon"]
        } else {
            &["--force"]
        };
        let mut child = sb
            .command(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let delay = if i % 10 == 0 { rand(1500) } else { rand(60) };
        std::thread::sleep(Duration::from_millis(delay));
        if child.try_wait().unwrap().is_none() {
            kills += 1;
        }
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        files_are_whole(&sb);
        if started.elapsed() > Duration::from_secs(100) {
            break;
        }
    }
    assert!(kills > 50, "most runs were killed mid-way ({kills})");
    // The next run sweeps what killed writers left behind, and everything is whole.
    let r = sb.run(&["--force"]);
    assert_eq!(r.code, 0, "{r:?}");
    files_are_whole(&sb);
    let left = temp_files(sb.home());
    assert!(left.is_empty(), "temp files left: {left:?}");
}
