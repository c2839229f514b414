//! Disk trouble: a full tokens directory (a tiny tmpfs) gives a clear error and leaves the
//! stored token whole; and a token file owned by another user is refused, not used.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::*;

struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn config(idp: &Idp) -> String {
    format!(
        "gateway_url: https://gw.example.com
{}servers:
  - name: a
editors: [reference]
",
        oidc_m2m_ingress(&idp.token_url())
    )
}

#[test]
fn a_full_disk_is_a_clear_error_and_loses_nothing() {
    let idp = Idp::start(&[]);
    let sb = Sandbox::new();
    sb.write_config(&config(&idp));
    std::fs::create_dir_all(sb.tokens()).unwrap();
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs"])
        .arg(sb.tokens())
        .status();
    if !ok.is_ok_and(|s| s.success()) {
        // Mounting needs root (CI runs as root); say so rather than pass silently.
        eprintln!("SKIPPED: cannot mount a tmpfs here (not root)");
        return;
    }
    let _m = Mount(sb.tokens());
    assert_eq!(sb.run(&[]).code, 0);
    let file = sb.tokens().join("ingress.json");
    let before = std::fs::read(&file).unwrap();
    // Fill the file system.
    let filler = sb.tokens().join("filler");
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=4k", "count=100"])
        .arg(format!("of={}", filler.display()))
        .stderr(std::process::Stdio::null())
        .status();
    let r = sb.run(&["--force"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("No space left on device") && r.stderr.contains("ingress.json"),
        "{r:?}"
    );
    assert_eq!(
        std::fs::read(&file).unwrap(),
        before,
        "the stored token is whole"
    );
    let temps: Vec<_> = std::fs::read_dir(sb.tokens())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("tmp"))
        .collect();
    assert!(temps.is_empty(), "no temp files left: {temps:?}");
    // Space again: the next run works.
    std::fs::remove_file(&filler).unwrap();
    assert_eq!(sb.run(&["--force"]).code, 0);
    // A read-only file system: a clear error, the token untouched.
    let before = std::fs::read(&file).unwrap();
    assert!(
        Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(sb.tokens())
            .status()
            .unwrap()
            .success()
    );
    let r = sb.run(&["--force"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("Read-only file system"), "{r:?}");
    assert_eq!(std::fs::read(&file).unwrap(), before);
    let s = sb.run(&["status"]);
    assert!(s.stdout.contains("ingress"), "status still reads: {s:?}");
}

#[test]
fn a_token_file_owned_by_another_user_is_refused() {
    let idp = Idp::start(&[]);
    let sb = Sandbox::new();
    sb.write_config(&config(&idp));
    assert_eq!(sb.run(&[]).code, 0);
    let file = sb.tokens().join("ingress.json");
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: giving a file to another user needs root");
        return;
    }
    let c = std::ffi::CString::new(file.to_str().unwrap()).unwrap();
    // SAFETY: chown on a path we own; 65534 is `nobody`.
    assert_eq!(unsafe { libc::chown(c.as_ptr(), 65534, 65534) }, 0);
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let r = sb.run(&["status"]);
    assert!(r.stdout.contains("owned by uid 65534, not by you"), "{r:?}");
    let r = sb.run(&[]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("owned by uid 65534"), "{r:?}");
}
