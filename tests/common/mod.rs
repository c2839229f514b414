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

pub mod procs;
pub mod systemd;

#[allow(unused_imports)] // Not every test binary runs a daemon or a login.
pub use procs::{Daemon, Login};

fn idp_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/idp")
}

/// `node tests/idp/SCRIPT` with `PORT=0` and `env`, run in tests/idp: one of the local
/// identity servers, for [`Server::start`].
pub fn idp_node(script: &str, env: &[(&str, &str)]) -> Command {
    let dir = idp_dir();
    assert!(
        dir.join("node_modules/oidc-provider").is_dir(),
        "tests/idp/node_modules is missing: run `bash scripts/test.sh` (it installs the test identity provider)"
    );
    let mut cmd = Command::new("node");
    cmd.arg(dir.join(script)).current_dir(&dir).env("PORT", "0");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Runs the helper script `tests/idp/SCRIPT ARGS` with node (a login driven over HTTP or
/// through Chromium, a device code entered) and returns what it did.
pub fn node(script: &str, args: &[&str]) -> Output {
    Command::new("node")
        .arg(idp_dir().join(script))
        .args(args)
        .output()
        .expect("run node")
}

/// [`node`], which must succeed: its stderr is the failure message.
pub fn node_ok(script: &str, args: &[&str]) -> Output {
    let out = node(script, args);
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Plays the person at the authorization server: a real headless Chromium through its
/// login and consent pages, with `args` after the URL; what the browser saw is on stdout.
pub fn browser_login(url: &str, args: &[&str]) -> Output {
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "chromium is missing: run scripts/test-deps.sh"
    );
    let mut all = vec![url];
    all.extend_from_slice(args);
    node_ok("browser-login.mjs", &all)
}

/// A server started by PID that prints `READY <port>` as its first line; killed by that
/// PID on Drop.
pub struct Server {
    pub port: u16,
    child: Child,
}

impl Server {
    /// Starts the server `make` builds. A start that fails or hangs (seen on a heavily
    /// loaded shared machine) is tried once more, with more time; a second failure shows
    /// the end of its stderr (`MCP_TEST_LOGS=1` shows all of it as it comes).
    pub fn start(make: impl Fn() -> Command, what: &str) -> Server {
        match Self::try_start(make(), what, Duration::from_secs(30)) {
            Ok(s) => s,
            Err(first) => Self::try_start(make(), what, Duration::from_secs(60))
                .unwrap_or_else(|second| panic!("{what} did not start: {first}; then: {second}")),
        }
    }

    fn try_start(mut cmd: Command, what: &str, within: Duration) -> Result<Server, String> {
        let log = tempfile::NamedTempFile::new().unwrap();
        cmd.stdout(Stdio::piped())
            .stderr(if std::env::var_os("MCP_TEST_LOGS").is_some() {
                Stdio::inherit()
            } else {
                Stdio::from(log.reopen().unwrap())
            });
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("start {what}: {e}"));
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(within).unwrap_or_default();
        match line
            .trim()
            .strip_prefix("READY ")
            .and_then(|p| p.parse().ok())
        {
            Some(port) => Ok(Server { port, child }),
            None => {
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
                Err(format!(
                    "first line {line:?} (within {within:?}); its stderr: {tail}"
                ))
            }
        }
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running oidc-provider (`tests/idp/oidc-server.mjs`), killed (by its PID) when dropped.
pub struct Idp(Server);

impl std::ops::Deref for Idp {
    type Target = Server;
    fn deref(&self) -> &Server {
        &self.0
    }
}

impl Idp {
    pub fn start(env: &[(&str, &str)]) -> Idp {
        Idp(Server::start(
            || idp_node("oidc-server.mjs", env),
            "the test identity provider",
        ))
    }

    /// With the confidential web client `mcp-web` (secret `mcp-web-secret`, client_secret_basic,
    /// authorization code and refresh token) whose redirect URI is
    /// `http://127.0.0.1:PORT/callback`, and `env` besides.
    pub fn with_web_client(port: u16, env: &[(&str, &str)]) -> Idp {
        let clients = format!(
            r#"[{{"client_id":"mcp-web","client_secret":"mcp-web-secret","token_endpoint_auth_method":"client_secret_basic","grant_types":["authorization_code","refresh_token"],"response_types":["code"],"redirect_uris":["http://127.0.0.1:{port}/callback"],"scope":"openid offline_access profile"}}]"#
        );
        let mut all = vec![("CLIENTS_JSON", clients.as_str())];
        all.extend_from_slice(env);
        Idp::start(&all)
    }

    pub fn token_url(&self) -> String {
        format!("{}/oauth2/token", self.base())
    }
}

/// Checks `done` every `step` until it holds or `within` has passed; whether it held.
pub fn wait_for(within: Duration, step: Duration, mut done: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + within;
    loop {
        if done() {
            return true;
        }
        if std::time::Instant::now() >= end {
            return false;
        }
        std::thread::sleep(step);
    }
}

/// [`wait_for`] that must succeed: fails with `what()` when `within` has passed.
pub fn wait_until(
    within: Duration,
    step: Duration,
    done: impl FnMut() -> bool,
    what: impl Fn() -> String,
) {
    assert!(wait_for(within, step, done), "{}", what());
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

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Run {
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

    /// Writes the secrets file `~/.config/mcp-credd/env` (0600); returns its path.
    pub fn write_secrets(&self, text: &str) -> PathBuf {
        let p = self.home().join(".config/mcp-credd/env");
        write_private(&p, text);
        p
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

    /// The access token stored in the tokens directory's `file`.
    pub fn access_token(&self, file: &str) -> String {
        self.read_json(&self.tokens().join(file))["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no access_token in {file}"))
            .to_string()
    }

    /// `status --json` with `env`: the whole document.
    pub fn status_json(&self, env: &[(&str, &str)]) -> serde_json::Value {
        let st = self.run_env(&["status", "--json"], env);
        serde_json::from_str(&st.stdout).unwrap_or_else(|_| panic!("{st:?}"))
    }

    /// The row of `status --json` for the identity `name`.
    pub fn status_of(&self, name: &str) -> serde_json::Value {
        let j = self.status_json(&[]);
        j["identities"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name} in {j}"))
    }
}

/// An `oidc_m2m` ingress (client `m2m-client`, secret `m2m-secret`) at `token_url`, as the
/// `ingress:` block of a config.
pub fn oidc_m2m_ingress(token_url: &str) -> String {
    format!(
        "ingress:
  kind: oidc_m2m
  client_id: m2m-client
  client_secret: m2m-secret
  token_url: {token_url}
"
    )
}

/// A `cognito_m2m` ingress (pool `us-east-1_AbC123`, client `m2m-client`) whose token
/// endpoint is at `domain`, with `secret` as its `client_secret` value, as the `ingress:`
/// block of a config.
pub fn cognito_m2m_ingress(domain: &str, secret: &str) -> String {
    format!(
        "ingress:
  kind: cognito_m2m
  region: us-east-1
  user_pool_id: us-east-1_AbC123
  client_id: m2m-client
  client_secret: {secret}
  domain: {domain}
"
    )
}

/// A command run as uid/gid 65534 (nobody), with no supplementary groups: another local user.
pub fn as_nobody(program: &str, args: &[&str]) -> Command {
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

/// Every path below `dir`, `depth` directories down at most (symbolic links not followed).
pub fn walk(dir: &Path, depth: usize) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if depth > 0 && p.is_dir() && !p.is_symlink() {
                out.extend(walk(&p, depth - 1));
            }
            out.push(p);
        }
    }
    out
}

/// Writes `text` to `path` (its directories created) and makes it 0600, as a user keeps a
/// secrets file.
pub fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
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
