//! Crash-safe file writes and symlink-safe reads, shared by the token store and the editor
//! config writer.
//!
//! A write goes to a fresh temp file in the target's directory (created with O_EXCL and
//! O_NOFOLLOW, so nothing planted there is followed), is fsynced, renamed over the target
//! (rename replaces a planted symlink instead of following it), and the directory is
//! fsynced so the rename survives a crash.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The suffix of our temp files; `sweep_temp_files` removes stale ones.
const TMP_SUFFIX: &str = ".mcp-credd-tmp";

pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

fn temp_path(path: &Path) -> io::Result<PathBuf> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    let mut rnd = [0u8; 6];
    getrandom::fill(&mut rnd).map_err(|e| io::Error::other(e.to_string()))?;
    let mut t = OsString::from(".");
    t.push(name);
    t.push(format!(
        ".{}.{}{TMP_SUFFIX}",
        std::process::id(),
        rnd.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ));
    Ok(dir.join(t))
}

/// Writes `data` to `path` atomically with exactly `mode`, whatever the umask.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    let tmp = temp_path(path)?;
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)?;
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.write_all(data)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // The rename has happened: the new file is in place. A failed directory fsync
        // only weakens durability across a power cut, so it is not reported as a failed
        // write (which would make callers keep a token the provider already replaced).
        if let Err(e) = File::open(dir).and_then(|d| d.sync_all()) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot fsync the directory");
        }
    }
    Ok(())
}

/// Why a file was not read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read {path}: {err}", path = .0.display(), err = .1)]
    Io(PathBuf, io::Error),
    #[error("{path} is a symbolic link; refusing to follow it (remove it so mcp-credd can write a real file)", path = .0.display())]
    Symlink(PathBuf),
    #[error("{path} is not a regular file", path = .0.display())]
    NotFile(PathBuf),
    #[error("{path} is owned by uid {uid}, not by you; refusing to use it", path = .0.display(), uid = .1)]
    Foreign(PathBuf, u32),
    #[error("{path} is larger than {kib} KiB, so it is not one of mcp-credd's files; move it away", path = .0.display(), kib = .1)]
    TooBig(PathBuf, u64),
}

/// Creates `dir` and every missing parent, each new one exactly 0700 whatever the umask
/// (mkdir with 0700 can only come out tighter; the chmod puts back what a strict umask
/// took). Directories that already exist are left as they are.
pub fn create_private_dirs(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    let mut missing = Vec::new();
    let mut cur = Some(dir);
    while let Some(d) = cur.filter(|d| !d.as_os_str().is_empty()) {
        match std::fs::metadata(d) {
            Ok(m) if m.is_dir() => break,
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists and is not a directory", d.display()),
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                missing.push(d);
                cur = d.parent();
            }
            Err(e) => return Err(e),
        }
    }
    for d in missing.into_iter().rev() {
        match std::fs::DirBuilder::new().mode(0o700).create(d) {
            Ok(()) => std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700))?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The most a file read by [`read_private`] may hold: token, state and bookkeeping files
/// are a few KiB, so anything larger is not ours.
pub const PRIVATE_FILE_MAX: u64 = crate::secret::CONFIG_FILE_MAX;

/// Reads a file we own without following a symlink, at most [`PRIVATE_FILE_MAX`] bytes.
/// `Ok(None)` if it does not exist. A file readable by others is tightened to `mode`; the
/// returned flag says so.
pub fn read_private(path: &Path, mode: u32) -> Result<Option<(Vec<u8>, bool)>, ReadError> {
    read_private_with(path, Some(mode))
}

/// [`read_private`]'s checks and cap, but the file's mode is left as it is (for `doctor`,
/// which reports modes rather than changing them).
pub fn read_private_as_is(path: &Path) -> Result<Option<Vec<u8>>, ReadError> {
    Ok(read_private_with(path, None)?.map(|(b, _)| b))
}

fn read_private_with(path: &Path, mode: Option<u32>) -> Result<Option<(Vec<u8>, bool)>, ReadError> {
    let f = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(ReadError::Symlink(path.to_path_buf()));
        }
        Err(e) => return Err(ReadError::Io(path.to_path_buf(), e)),
    };
    let io = |e| ReadError::Io(path.to_path_buf(), e);
    let meta = f.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(ReadError::NotFile(path.to_path_buf()));
    }
    if meta.uid() != euid() {
        return Err(ReadError::Foreign(path.to_path_buf(), meta.uid()));
    }
    if meta.len() > PRIVATE_FILE_MAX {
        return Err(ReadError::TooBig(
            path.to_path_buf(),
            PRIVATE_FILE_MAX / 1024,
        ));
    }
    let mut tightened = false;
    if let Some(mode) = mode
        && meta.mode() & 0o7777 != mode
    {
        f.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(io)?;
        tightened = true;
    }
    let mut buf = Vec::with_capacity(meta.len() as usize);
    // The cap holds even if the file grows after the length was checked.
    (&f).take(PRIVATE_FILE_MAX + 1)
        .read_to_end(&mut buf)
        .map_err(io)?;
    if buf.len() as u64 > PRIVATE_FILE_MAX {
        return Err(ReadError::TooBig(
            path.to_path_buf(),
            PRIVATE_FILE_MAX / 1024,
        ));
    }
    Ok(Some((buf, tightened)))
}

/// Removes temp files left by processes that died mid-write (their pid is in the name).
pub fn sweep_temp_files(dir: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for e in rd.flatten() {
        let name = e.file_name();
        let bytes = name.as_bytes();
        let Some(stem) = std::str::from_utf8(bytes)
            .ok()
            .and_then(|s| s.strip_suffix(TMP_SUFFIX))
        else {
            continue;
        };
        let pid = stem.rsplit('.').nth(1).and_then(|p| p.parse::<u32>().ok());
        let alive = pid
            .is_some_and(|p| p == std::process::id() || Path::new(&format!("/proc/{p}")).exists());
        if !alive && std::fs::remove_file(e.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_with_mode_and_replaces_symlinks() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("t.json");
        let victim = d.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        std::os::unix::fs::symlink(&victim, &target).unwrap();
        write_atomic(&target, b"new", 0o600).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "new");
        let meta = std::fs::symlink_metadata(&target).unwrap();
        assert!(meta.is_file());
        assert_eq!(meta.mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 2);
    }

    #[test]
    fn read_refuses_symlinks_and_tightens() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a");
        assert!(read_private(&p, 0o600).unwrap().is_none());
        std::fs::write(&p, "x").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let (data, tightened) = read_private(&p, 0o600).unwrap().unwrap();
        assert_eq!((data.as_slice(), tightened), (&b"x"[..], true));
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
        let l = d.path().join("l");
        std::os::unix::fs::symlink(&p, &l).unwrap();
        assert!(matches!(
            read_private(&l, 0o600),
            Err(ReadError::Symlink(_))
        ));
    }

    #[test]
    fn read_is_capped_and_as_is_leaves_the_mode() {
        let d = tempfile::tempdir().unwrap();
        let big = d.path().join("big");
        std::fs::write(&big, vec![b' '; PRIVATE_FILE_MAX as usize + 1]).unwrap();
        assert!(matches!(
            read_private(&big, 0o600),
            Err(ReadError::TooBig(..))
        ));
        let p = d.path().join("a");
        std::fs::write(&p, "x").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(read_private_as_is(&p).unwrap().unwrap(), b"x");
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o777, 0o644);
        let fifo = d.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(matches!(
            read_private_as_is(&fifo),
            Err(ReadError::NotFile(_))
        ));
    }

    #[test]
    fn sweeps_only_dead_writers() {
        let d = tempfile::tempdir().unwrap();
        let dead = d
            .path()
            .join(format!(".x.json.4000000000.abcd{TMP_SUFFIX}"));
        let live = d
            .path()
            .join(format!(".x.json.{}.abcd{TMP_SUFFIX}", std::process::id()));
        std::fs::write(&dead, "").unwrap();
        std::fs::write(&live, "").unwrap();
        assert_eq!(sweep_temp_files(d.path()), 1);
        assert!(!dead.exists() && live.exists());
    }
}
