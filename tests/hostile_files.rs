//! Files mcp-credd reads that a cloned checkout or a mistake can make hostile: an
//! implicit `.env` that is a FIFO or a link to `/dev/zero`, a huge or unreadable provider
//! file. Each is a clear configuration error at once, never a hang or a memory blow-up.

mod common;

use std::time::{Duration, Instant};

use common::*;

fn mkfifo(p: &std::path::Path) {
    let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

#[test]
fn a_hostile_env_file_is_refused_at_once() {
    let sb = Sandbox::new();
    // The sandbox runs in HOME: its `.env` is the implicit one a checkout would plant.
    let env = sb.home().join(".env");
    mkfifo(&env);
    let t = Instant::now();
    let r = sb.run(&["status"]);
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "a FIFO must not hang"
    );
    // Not a regular file: not taken for the checkout's `.env`; named, refused unread.
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("no configuration found"), "{r:?}");
    let t = Instant::now();
    let r = sb.run(&["--env-file", env.to_str().unwrap(), "status"]);
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "a FIFO must not hang"
    );
    assert_eq!(r.code, 3, "{r:?}");
    assert!(
        r.stderr.contains("a FIFO") && r.stderr.contains(".env"),
        "{r:?}"
    );

    // A planted link to a device is not taken for the checkout's `.env` at all, and named
    // explicitly it is refused without being read.
    std::fs::remove_file(&env).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &env).unwrap();
    let r = sb.run(&["status"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("no configuration found"), "{r:?}");
    let r = sb.run(&["--env-file", "/dev/zero", "status"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("a device"), "{r:?}");

    // The secrets file and an explicit --env-file go through the same reader.
    std::fs::remove_file(&env).unwrap();
    let big = sb.home().join("big.env");
    std::fs::write(&big, vec![b'#'; 5 * 1024 * 1024]).unwrap();
    let r = sb.run(&["--env-file", big.to_str().unwrap(), "status"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("larger than 4096 KiB"), "{r:?}");
}

#[test]
fn an_unreadable_provider_file_is_named_not_skipped() {
    let sb = Sandbox::new();
    sb.write_config("tokens_dir: ~/tok\n");
    let dir = sb.home().join(".config/mcp-credd/providers");
    std::fs::create_dir_all(&dir).unwrap();
    mkfifo(&dir.join("acme.yaml"));
    let r = sb.run(&["status"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(
        r.stderr.contains("acme.yaml") && r.stderr.contains("a FIFO"),
        "{r:?}"
    );
    std::fs::remove_file(dir.join("acme.yaml")).unwrap();
    let r = sb.run(&["status"]);
    assert_eq!(r.code, 0, "{r:?}");
}
