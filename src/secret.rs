//! Secret values (client secrets, tokens) that cannot leak through Debug or Display.

use std::fmt;

/// A secret string. `Debug` and `Display` print `[redacted]`; the value is reached only
/// through [`Secret::expose`], so every place that uses it is greppable.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret value itself. Call only where it leaves the process on purpose
    /// (an HTTP request body, a token file, an editor config).
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

// `Secret` is deliberately not `Serialize`: a struct holding one cannot reach JSON, a
// state file or `status --json` by accident. The token file, the one place a secret is
// written on purpose, opts in field by field with `serialize_with = "expose_ser"`.

/// Writes the secret's value: for `#[serde(serialize_with = "...")]` on the token file's
/// fields, the only serialized form of a secret.
pub fn expose_ser<S: serde::Serializer>(s: &Secret, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_str(s.expose())
}

/// [`expose_ser`] for an optional secret.
pub fn expose_ser_opt<S: serde::Serializer>(s: &Option<Secret>, ser: S) -> Result<S::Ok, S::Error> {
    match s {
        Some(s) => ser.serialize_some(s.expose()),
        None => ser.serialize_none(),
    }
}

/// The largest secret file read through `{file: PATH}`: secrets are short, and a cap
/// stops `/dev/zero` or a huge file from eating memory.
pub const SECRET_FILE_MAX: u64 = 64 * 1024;

/// Reads a secret file: a regular file only (no FIFO, device, socket, nor a file of a
/// kernel pseudo-filesystem such as `/proc` or `/sys`), at most [`SECRET_FILE_MAX`]
/// bytes, UTF-8. Opened non-blocking, so a FIFO cannot hang the process.
pub fn read_secret_file(path: &std::path::Path) -> std::io::Result<String> {
    let buf = read_regular_file(path, SECRET_FILE_MAX, "a secret file")?;
    String::from_utf8(buf)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "it is not UTF-8 text"))
}

/// The largest config, `.env`, secrets or provider file read: far above any real one, low
/// enough that a planted `/dev/zero` link or a huge file cannot eat memory.
pub const CONFIG_FILE_MAX: u64 = 4 * 1024 * 1024;

/// Reads a file that may come from a hostile checkout (`.env`) or a mistaken path: a
/// regular file on disk only, at most `max` bytes, opened non-blocking (a FIFO cannot hang
/// the process). `label` names the kind of file in the error ("a secret file").
pub fn read_regular_file(
    path: &std::path::Path,
    max: u64,
    label: &str,
) -> std::io::Result<Vec<u8>> {
    use std::io::{Error, ErrorKind, Read};
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(path)?;
    let meta = f.metadata()?;
    let ft = meta.file_type();
    if !ft.is_file() {
        let what = if ft.is_fifo() {
            "a FIFO"
        } else if ft.is_char_device() || ft.is_block_device() {
            "a device"
        } else if ft.is_socket() {
            "a socket"
        } else if ft.is_dir() {
            "a directory"
        } else {
            "not a regular file"
        };
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("it is {what}; {label} must be a regular file"),
        ));
    }
    if on_pseudo_fs(&f) {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "it is on a kernel pseudo-filesystem (/proc, /sys); {label} must be a regular file on disk"
            ),
        ));
    }
    let too_big = || {
        Error::new(
            ErrorKind::InvalidInput,
            format!(
                "it is larger than {} KiB, far more than {label} holds",
                max / 1024
            ),
        )
    };
    if meta.len() > max {
        return Err(too_big());
    }
    let mut buf = Vec::new();
    f.take(max + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > max {
        return Err(too_big());
    }
    Ok(buf)
}

/// Whether the open file lives on a kernel pseudo-filesystem, whose "regular" files are
/// views of process or kernel state (`/proc/self/environ`, `/sys/...`).
fn on_pseudo_fs(f: &std::fs::File) -> bool {
    use std::os::fd::AsRawFd;
    // Magic numbers from linux/magic.h.
    const PSEUDO: &[i64] = &[
        0x9fa0,      // proc
        0x6265_6572, // sysfs
        0x6462_6720, // debugfs
        0x7472_6163, // tracefs
        0x7363_6673, // securityfs
        0x6367_7270, // cgroup2
        0x0027_e0eb, // cgroup
        0x6265_6570, // configfs
        0xde5e_81e4, // efivarfs
        0xcafe_4a11, // bpf
        0x1cd1,      // devpts
    ];
    let mut st = std::mem::MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: fstatfs writes a statfs into the buffer we own; the fd is open for the call.
    let rc = unsafe { libc::fstatfs(f.as_raw_fd(), st.as_mut_ptr()) };
    if rc != 0 {
        return false;
    }
    // SAFETY: fstatfs returned 0, so the struct is initialised.
    let st = unsafe { st.assume_init() };
    #[allow(clippy::unnecessary_cast)]
    let t = st.f_type as i64;
    PSEUDO.contains(&t)
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_hide_the_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(format!("{s}"), "[redacted]");
        assert_eq!(format!("{:?}", Some(s.clone())), "Some([redacted])");
        assert_eq!(s.expose(), "hunter2");
    }

    fn read_err(p: &str) -> String {
        read_secret_file(std::path::Path::new(p))
            .expect_err(p)
            .to_string()
    }

    #[test]
    fn secret_files_must_be_small_regular_files() {
        assert!(read_err("/dev/zero").contains("a device"));
        assert!(read_err("/proc/self/environ").contains("pseudo-filesystem"));
        assert!(read_err("/tmp").contains("a directory"));
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        // Returns at once (non-blocking open), no writer needed.
        assert!(read_err(fifo.to_str().unwrap()).contains("a FIFO"));
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'a'; SECRET_FILE_MAX as usize + 1]).unwrap();
        assert!(read_err(big.to_str().unwrap()).contains("larger than 64 KiB"));
        let ok = dir.path().join("ok");
        std::fs::write(&ok, "s3cret\n").unwrap();
        assert_eq!(read_secret_file(&ok).unwrap(), "s3cret\n");
    }
}
