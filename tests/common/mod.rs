//! Test harness: starts the local identity provider (oidc-provider on 127.0.0.1, by PID,
//! stopped on Drop) and runs the real `mcp-credd` binary in a temporary HOME.

#![allow(dead_code)] // Each test binary uses a different part of the harness.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_mcp-credd");

pub mod systemd;

fn idp_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/idp")
}

/// A running oidc-provider, killed (by its PID) when dropped.
pub struct Idp {
    pub port: u16,
    child: Child,
}

impl Idp {
    pub fn start(env: &[(&str, &str)]) -> Idp {
        // A start that hangs (seen on a heavily loaded shared machine) is retried once.
        match Self::try_start(env, Duration::from_secs(30)) {
            Ok(idp) => idp,
            Err(first) => Self::try_start(env, Duration::from_secs(60)).unwrap_or_else(|second| {
                panic!("the test identity provider did not start: {first}; then: {second}")
            }),
        }
    }

    fn try_start(env: &[(&str, &str)], within: Duration) -> Result<Idp, String> {
        let dir = idp_dir();
        assert!(
            dir.join("node_modules/oidc-provider").is_dir(),
            "tests/idp/node_modules is missing: run `bash scripts/test.sh` (it installs the test identity provider)"
        );
        let log = tempfile::NamedTempFile::new().unwrap();
        let mut cmd = Command::new("node");
        cmd.arg(dir.join("oidc-server.mjs"))
            .current_dir(&dir)
            .env("PORT", "0")
            .stdout(Stdio::piped())
            .stderr(log.reopen().unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start node (is Node.js installed?)");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let fail = |child: &mut Child, why: String| {
            let _ = child.kill();
            let _ = child.wait();
            let err = std::fs::read_to_string(log.path()).unwrap_or_default();
            let tail: String = err
                .chars()
                .rev()
                .take(2000)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            Err(format!("{why}; its stderr: {tail}"))
        };
        let line = match rx.recv_timeout(within) {
            Ok(l) => l,
            Err(_) => return fail(&mut child, format!("no READY within {within:?}")),
        };
        match line
            .trim()
            .strip_prefix("READY ")
            .and_then(|p| p.parse().ok())
        {
            Some(port) => Ok(Idp { port, child }),
            None => fail(&mut child, format!("unexpected first line {line:?}")),
        }
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn token_url(&self) -> String {
        format!("{}/oauth2/token", self.base())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port on 127.0.0.1 with nothing listening (bound, then released).
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A temporary HOME with a config directory, and a way to run the binary in it.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl Sandbox {
    pub fn new() -> Sandbox {
        Sandbox {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn home(&self) -> &Path {
        self.dir.path()
    }

    pub fn tokens(&self) -> PathBuf {
        self.home().join(".oauth-tokens")
    }

    pub fn config_path(&self) -> PathBuf {
        self.home().join(".config/mcp-credd/config.yaml")
    }

    pub fn write_config(&self, text: &str) -> PathBuf {
        let p = self.config_path();
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args)
            .env_clear()
            .env("HOME", self.home())
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .current_dir(self.home())
            .stdin(Stdio::null());
        c
    }

    pub fn run_cmd(mut c: Command) -> Run {
        Run::from(c.output().expect("run mcp-credd"))
    }

    pub fn run(&self, args: &[&str]) -> Run {
        Self::run_cmd(self.command(args))
    }

    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut c = self.command(args);
        for (k, v) in env {
            c.env(k, v);
        }
        Self::run_cmd(c)
    }

    /// Runs with the process umask set to `mask`.
    pub fn run_umask(&self, args: &[&str], mask: u32, env: &[(&str, &str)]) -> Run {
        let mut c = self.command(args);
        for (k, v) in env {
            c.env(k, v);
        }
        // SAFETY: umask is async-signal-safe and touches only this child's state.
        unsafe {
            c.pre_exec(move || {
                libc::umask(mask as libc::mode_t);
                Ok(())
            });
        }
        Self::run_cmd(c)
    }

    pub fn read_json(&self, path: &Path) -> serde_json::Value {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("parse {}: {e}\n{text}", path.display()))
    }
}

pub fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(p).unwrap().mode() & 0o7777
}

pub fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The claims of a JWT, without verification.
pub fn jwt_claims(token: &str) -> serde_json::Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// A running moto server (the Cognito user-pool API) with one pool set up, killed (by its
/// PID) when dropped.
pub struct Moto {
    pub endpoint: String,
    pub pool_id: String,
    pub client_id: String,
    pub client_secret: String,
    child: Child,
}

fn moto_python() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/moto/.venv/bin/python")
}

impl Moto {
    pub fn start() -> Moto {
        let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/moto/.venv/bin");
        assert!(
            venv.join("moto_server").exists(),
            "tests/moto/.venv is missing: run `bash scripts/test-deps.sh` (it installs moto)"
        );
        let mut child = Command::new(venv.join("moto_server"))
            .args(["-H", "127.0.0.1", "-p", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start moto_server");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            // Report the port, then keep draining so moto never blocks on a full pipe.
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !sent && let Some(rest) = line.split("Running on http://127.0.0.1:").nth(1) {
                    let _ = tx.send(rest.trim().to_string());
                    sent = true;
                }
            }
        });
        let port = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(p) => p,
            Err(_) => {
                let _ = child.kill();
                panic!("moto did not start within 30s");
            }
        };
        let endpoint = format!("http://127.0.0.1:{port}");
        let out = Command::new(moto_python())
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/moto/cognito_pool.py"))
            .args(["setup", &endpoint])
            .output()
            .expect("run cognito_pool.py");
        if !out.status.success() {
            let _ = child.kill();
            panic!(
                "pool setup failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let s = |k: &str| v[k].as_str().unwrap().to_string();
        Moto {
            endpoint,
            pool_id: s("pool_id"),
            client_id: s("client_id"),
            client_secret: s("client_secret"),
            child,
        }
    }

    /// Revokes every refresh token of `user` (AdminUserGlobalSignOut).
    pub fn sign_out(&self, user: &str) {
        let st = Command::new(moto_python())
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/moto/cognito_pool.py"))
            .args(["signout", &self.endpoint, &self.pool_id, user])
            .status()
            .unwrap();
        assert!(st.success());
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
