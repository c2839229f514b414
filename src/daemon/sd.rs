//! The systemd readiness protocol (sd_notify): datagrams to $NOTIFY_SOCKET. A no-op when
//! not started by systemd.

use std::os::unix::net::{SocketAddr, UnixDatagram};

pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
}

impl Notifier {
    /// From the value of NOTIFY_SOCKET: a path, or `@name` for the abstract namespace.
    pub fn new(socket: Option<&str>) -> Notifier {
        let target = socket.filter(|s| !s.is_empty()).and_then(|s| {
            let addr = if let Some(name) = s.strip_prefix('@') {
                #[cfg(target_os = "linux")]
                {
                    use std::os::linux::net::SocketAddrExt;
                    SocketAddr::from_abstract_name(name.as_bytes()).ok()?
                }
                #[cfg(not(target_os = "linux"))]
                {
                    let _ = name;
                    return None;
                }
            } else {
                SocketAddr::from_pathname(s).ok()?
            };
            let sock = UnixDatagram::unbound().ok()?;
            // Never let a stuck reader stall the daemon for long: a message that cannot be
            // queued within this time is dropped.
            sock.set_write_timeout(Some(std::time::Duration::from_millis(50)))
                .ok()?;
            Some((sock, addr))
        });
        Notifier { target }
    }

    pub fn disabled() -> Notifier {
        Notifier { target: None }
    }

    pub fn send(&self, msg: &str) {
        if let Some((sock, addr)) = &self.target
            && let Err(e) = sock.send_to_addr(msg.as_bytes(), addr)
        {
            tracing::debug!(error = %e, "sd_notify failed");
        }
    }

    pub fn ready(&self) {
        self.send("READY=1");
    }

    /// RELOADING=1 with the monotonic timestamp systemd's notify-reload mode asks for.
    pub fn reloading(&self) {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes into the timespec we own.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        let usec = ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000;
        self.send(&format!("RELOADING=1\nMONOTONIC_USEC={usec}"));
    }

    pub fn stopping(&self) {
        self.send("STOPPING=1");
    }

    pub fn status(&self, line: &str) {
        self.send(&format!("STATUS={}", line.replace('\n', " ")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_datagrams_to_the_socket() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("notify.sock");
        let server = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::new(Some(path.to_str().unwrap()));
        n.ready();
        n.status("2 identities valid\nnext");
        let mut buf = [0u8; 256];
        let k = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..k], b"READY=1");
        let k = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..k], b"STATUS=2 identities valid next");
        Notifier::new(None).ready();
        Notifier::new(Some("")).ready();
    }
}
