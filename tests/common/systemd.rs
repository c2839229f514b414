//! A real systemd user manager for the service journeys (REFERENCE.md §6): started by PID
//! with HOME under /home and XDG_RUNTIME_DIR under /run, stopped by that PID on Drop, with
//! the `/run/systemd/system` marker created only if absent and removed only if created here.
//! One manager at a time on the machine (an exclusive flock on the systemd binary itself,
//! so no lock file is left behind), so the marker is never pulled from under another
//! test's manager.

use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const SYSTEMD: &str = "/usr/lib/systemd/systemd";
const MARKER: &str = "/run/systemd/system";

/// The three options this VM kind cannot apply (REFERENCE.md §6); nothing else is relaxed.
pub const TEST_DROP_IN: &str = "[Service]
ProtectKernelTunables=no
ProtectKernelLogs=no
ProtectControlGroups=no
";

pub struct UserManager {
    child: Child,
    home: tempfile::TempDir,
    runtime: tempfile::TempDir,
    made_marker: bool,
    /// The binary as a user installs it (`~/.cargo/bin`): the unit's PrivateTmp would hide
    /// a build tree under /tmp (a CI clone), and ExecStart names this copy.
    bin: PathBuf,
    _lock: File,
}

/// Why a real user manager cannot run here, if it cannot.
fn unavailable() -> Option<String> {
    if !Path::new(SYSTEMD).is_file() {
        return Some(format!(
            "{SYSTEMD} is missing (scripts/test-deps.sh installs systemd)"
        ));
    }
    if Command::new("systemctl").arg("--version").output().is_err() {
        return Some("systemctl is missing (scripts/test-deps.sh installs systemd)".into());
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 && !Path::new(MARKER).is_dir() {
        return Some(format!(
            "{MARKER} is absent and only root may create it (run the tests as root, or on a machine booted with systemd)"
        ));
    }
    None
}

impl UserManager {
    /// Starts a manager. Without one the service journeys fail, so a CI run can never pass
    /// them unseen; `MCP_CREDD_ALLOW_NO_SYSTEMD=1` turns that into a skip (returns `None`)
    /// for machines where a user manager cannot run.
    pub fn start() -> Option<UserManager> {
        if let Some(why) = unavailable() {
            if std::env::var_os("MCP_CREDD_ALLOW_NO_SYSTEMD").is_some_and(|v| v == "1") {
                eprintln!(
                    "*** SKIPPED (MCP_CREDD_ALLOW_NO_SYSTEMD=1): no systemd user manager: {why} ***"
                );
                return None;
            }
            panic!(
                "no real systemd user manager: {why}; the service journeys need one \
                 (set MCP_CREDD_ALLOW_NO_SYSTEMD=1 to skip them on this machine)"
            );
        }
        let lock = File::open(SYSTEMD).expect("open the systemd binary to lock it");
        // SAFETY: flock on a descriptor we own.
        assert_eq!(
            unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) },
            0,
            "lock {SYSTEMD}"
        );
        let made_marker = if Path::new(MARKER).exists() {
            false
        } else {
            std::fs::create_dir_all(MARKER).expect("create the systemd marker directory");
            true
        };
        let home = tempfile::Builder::new()
            .prefix("mcp-credd-sd.")
            .tempdir_in("/home")
            .expect("a HOME under /home");
        let runtime = tempfile::Builder::new()
            .prefix("mcp-credd-sd.")
            .tempdir_in("/run")
            .expect("a runtime dir under /run");
        std::fs::set_permissions(runtime.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let bin_dir = home.path().join(".cargo/bin");
        std::fs::create_dir_all(&bin_dir).unwrap();
        let bin = bin_dir.join("mcp-credd");
        std::fs::copy(super::BIN, &bin).expect("install the binary in the test HOME");
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let log = File::create(runtime.path().join("manager.log")).unwrap();
        let child = Command::new(SYSTEMD)
            .arg("--user")
            .env_clear()
            .env("HOME", home.path())
            .env("XDG_RUNTIME_DIR", runtime.path())
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("USER", "root")
            .env("LOGNAME", "root")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start systemd --user");
        let m = UserManager {
            child,
            home,
            runtime,
            made_marker,
            bin,
            _lock: lock,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let o = m.systemctl(&["is-system-running"]);
            let state = String::from_utf8_lossy(&o.stdout).trim().to_string();
            if state == "running" || state == "degraded" {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the user manager did not come up ({state}); log:\n{}",
                m.manager_log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(m)
    }

    pub fn home(&self) -> &Path {
        self.home.path()
    }

    pub fn runtime(&self) -> &Path {
        self.runtime.path()
    }

    pub fn manager_log(&self) -> String {
        std::fs::read_to_string(self.runtime().join("manager.log")).unwrap_or_default()
    }

    fn env(&self, c: &mut Command) {
        c.env_clear()
            .env("HOME", self.home())
            .env("XDG_RUNTIME_DIR", self.runtime())
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .stdin(Stdio::null());
    }

    /// `systemctl --user ARGS` against this manager.
    pub fn systemctl(&self, args: &[&str]) -> Output {
        let mut c = Command::new("systemctl");
        c.arg("--user").args(args);
        self.env(&mut c);
        c.output().expect("run systemctl")
    }

    /// One property of a unit (`systemctl --user show -p NAME --value`).
    pub fn show(&self, unit: &str, prop: &str) -> String {
        let o = self.systemctl(&["show", "-p", prop, "--value", unit]);
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    /// `systemctl --user status` text, for failure messages.
    pub fn status(&self, unit: &str) -> String {
        let o = self.systemctl(&["status", "--no-pager", "-l", unit]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    }

    /// The real binary with this manager's HOME and runtime directory (what the user's
    /// shell would have), in `cwd`.
    pub fn mcp_credd(&self, args: &[&str], cwd: &Path) -> Command {
        let mut c = Command::new(&self.bin);
        c.args(args);
        self.env(&mut c);
        c.current_dir(cwd);
        c
    }

    /// Installs the test drop-in for a unit (the three options this machine cannot apply).
    pub fn test_drop_in(&self, unit: &str) {
        let d = self
            .home()
            .join(".config/systemd/user")
            .join(format!("{unit}.d"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("test-vm.conf"), TEST_DROP_IN).unwrap();
    }

    /// Waits until `cond` holds, or panics after `secs` with `what` and the unit's status.
    pub fn wait(&self, secs: u64, what: &str, unit: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !cond() {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; unit status:\n{}\nmanager log:\n{}",
                self.status(unit),
                self.manager_log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.home().join(rel)
    }
}

impl Drop for UserManager {
    fn drop(&mut self) {
        // The services' main PIDs, in case the manager leaves one behind.
        let o = self.systemctl(&["show", "-p", "MainPID", "--value", "*.service"]);
        let pids: Vec<i32> = String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .filter(|p| *p > 0)
            .collect();
        let pid = self.child.id() as i32;
        // SAFETY: signalling the manager we started, by its PID.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.child.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        for p in pids {
            let ours = std::fs::read_link(format!("/proc/{p}/exe"))
                .is_ok_and(|e| e.to_string_lossy().contains("mcp-credd"));
            if ours {
                // SAFETY: a service process this manager started for the test.
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
        }
        if self.made_marker {
            let _ = std::fs::remove_dir(MARKER);
        }
    }
}
