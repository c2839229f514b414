//! The real binary running a while: a daemon with its log, and an interactive `login`
//! read line by line as it prints its URL. Both are started by PID and killed by that PID
//! if a test ends without stopping them.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use super::{Run, Sandbox, wait_until};

/// A running `mcp-credd ... daemon`: stdout in `daemon.out`, stderr in `daemon.log`, both
/// in the sandbox's HOME.
pub struct Daemon {
    child: Child,
    pub log: PathBuf,
    out: PathBuf,
}

impl Daemon {
    /// `mcp-credd ARGS` (which name the daemon) with `env` added.
    pub fn start(sb: &Sandbox, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        let log = sb.home().join("daemon.log");
        let out = sb.home().join("daemon.out");
        let mut c = sb.command(args);
        for (k, v) in env {
            c.env(k, v);
        }
        c.stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&log).unwrap());
        Daemon {
            child: c.spawn().unwrap(),
            log,
            out,
        }
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn out_text(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// Waits until the log holds `needle` `times` times.
    pub fn wait_log(&self, needle: &str, times: usize, within: Duration) {
        wait_until(
            within,
            Duration::from_millis(100),
            || self.log_text().matches(needle).count() >= times,
            || {
                format!(
                    "no {times}x {needle:?} within {within:?}; log:\n{}",
                    self.log_text()
                )
            },
        );
    }

    /// Sends it `sig`.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on the PID of a child we started and have not reaped.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, sig) }, 0);
    }

    /// SIGTERM, then its exit.
    pub fn stop(&mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        self.child.wait().unwrap()
    }

    /// SIGTERM, then its exit, which must come within `within`.
    pub fn stop_within(&mut self, within: Duration) -> ExitStatus {
        self.signal(libc::SIGTERM);
        let end = Instant::now() + within;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(
                Instant::now() < end,
                "the daemon did not exit within {within:?} of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // After `stop` the child is reaped: std then sends nothing.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Everything a login printed on stdout so far.
pub type Lines = Arc<Mutex<String>>;

/// A running `mcp-credd login ...`, with the line it printed that a test acts on (the
/// authorization URL, or the device code).
pub struct Login {
    child: Option<Child>,
    lines: Lines,
    reader: std::thread::JoinHandle<()>,
    pub url: String,
}

impl Login {
    /// Starts `c` and waits (20 s at most) for the first line on its stdout that
    /// `wanted` accepts; `url` is that line, trimmed.
    pub fn start(mut c: Command, wanted: impl Fn(&str) -> bool + Send + 'static) -> Login {
        let mut child = c
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let lines: Lines = Default::default();
        let sink = lines.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                sink.lock().unwrap().push_str(&format!("{line}\n"));
                let t = line.trim();
                if wanted(t) {
                    let _ = tx.send(t.to_string());
                }
            }
        });
        let Ok(url) = rx.recv_timeout(Duration::from_secs(20)) else {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "login printed no URL: {}\n{}",
                lines.lock().unwrap(),
                String::from_utf8_lossy(&out.stderr)
            );
        };
        Login {
            child: Some(child),
            lines,
            reader,
            url,
        }
    }

    /// [`Login::start`], waiting for a line that starts with `base` (the authorization
    /// server's address).
    pub fn at(c: Command, base: &str) -> Login {
        let base = base.to_string();
        Login::start(c, move |l| l.starts_with(&base))
    }

    /// All it printed on stdout so far.
    pub fn printed(&self) -> String {
        self.lines.lock().unwrap().clone()
    }

    /// Waits (`within` at most) for it to end: its exit code, all it printed, its stderr.
    pub fn finish(mut self, within: Duration) -> Run {
        let mut child = self.child.take().unwrap();
        let end = Instant::now() + within;
        let st = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break st;
            }
            if Instant::now() >= end {
                let _ = child.kill();
                let _ = child.wait();
                panic!("login did not finish within {within:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        // Its stdout is closed once it exited (unless a process it started holds it).
        let end = Instant::now() + Duration::from_secs(2);
        while !self.reader.is_finished() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(20));
        }
        Run {
            code: st.code().unwrap_or(-1),
            stdout: self.printed(),
            stderr: err,
        }
    }
}

impl Drop for Login {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
