//! The token store: the only code that writes token files. Every file is 0600 in a 0700
//! directory we own, written atomically, never through a symlink; a lock per identity keeps
//! two processes from refreshing the same identity at once.

pub mod atomic;
pub mod lock;
pub mod record;

use std::fs::File;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::failure::FailureKind;

use atomic::{ReadError, euid, read_private, sweep_temp_files, write_atomic};
pub use lock::{FileLock, LockError};
pub use record::TokenRecord;

pub const FILE_MODE: u32 = 0o600;
pub const DIR_MODE: u32 = 0o700;
/// Our private subdirectory of the tokens directory: locks and per-identity state.
const PRIVATE: &str = ".mcp-credd";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("tokens directory {path}: {msg}", path = .0.display(), msg = .1)]
    Dir(PathBuf, String),
    #[error("{0}")]
    Read(#[from] ReadError),
    #[error("{path} is not a valid token file ({msg}); fix or delete it", path = .0.display(), msg = .1)]
    Corrupt(PathBuf, String),
    #[error("cannot write {path}: {err}", path = .0.display(), err = .1)]
    Write(PathBuf, std::io::Error),
    #[error("another mcp-credd process has been refreshing `{0}` for over {1}s; try again later")]
    LockTimeout(String, u64),
    #[error("cannot lock `{0}`: {1}")]
    Lock(String, std::io::Error),
    #[error("refusing the file name {0:?}: {1}")]
    Name(String, String),
}

/// Every name the store turns into a path passes the config's name rule (plus the
/// `.json` suffix of token files), so no input can build a path outside the tokens
/// directory, whatever a caller forgot to check.
fn checked(name: &str) -> Result<&str, StoreError> {
    crate::config::check_name(name).map_err(|m| StoreError::Name(name.to_string(), m))?;
    Ok(name)
}

/// What happened at the last attempt for an identity; `status` shows it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct IdentityState {
    pub last_attempt_at: Option<f64>,
    pub last_success_at: Option<f64>,
    pub last_error: Option<String>,
    #[serde(default, deserialize_with = "record::lenient_known")]
    pub last_error_kind: Option<FailureKind>,
    /// An MCP server refused the token for insufficient scope: the scopes the next login
    /// asks for (those asked so far and those the server wants).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub step_up_scopes: Vec<String>,
}

#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
}

/// Held while an identity is being refreshed; released on drop.
#[derive(Debug)]
pub struct IdentityLock {
    _lock: FileLock,
}

/// Writes `bytes` to `path` atomically on a blocking thread: the fsyncs stay off the
/// async runtime, which keeps answering signals and other refreshes meanwhile.
pub async fn write_off_runtime(path: PathBuf, bytes: Vec<u8>, mode: u32) -> std::io::Result<()> {
    tokio::task::spawn_blocking(move || write_atomic(&path, &bytes, mode))
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())))
}

fn ensure_private_dir(dir: &Path, warnings: &mut Vec<String>) -> Result<(), StoreError> {
    let derr = |m: String| StoreError::Dir(dir.to_path_buf(), m);
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = dir.parent() {
                atomic::create_private_dirs(parent)
                    .map_err(|e| derr(format!("cannot create its parent: {e}")))?;
            }
            std::fs::DirBuilder::new()
                .mode(DIR_MODE)
                .create(dir)
                .or_else(|e| {
                    if e.kind() == std::io::ErrorKind::AlreadyExists {
                        Ok(())
                    } else {
                        Err(e)
                    }
                })
                .map_err(|e| derr(format!("cannot create it: {e}")))?;
            // The mode given to mkdir is reduced by the umask; set it exactly.
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(DIR_MODE))
                .map_err(|e| derr(e.to_string()))?;
            return ensure_private_dir(dir, warnings);
        }
        Err(e) => return Err(derr(e.to_string())),
        Ok(m) if m.file_type().is_symlink() => {
            // A symlinked tokens directory (dotfile managers) is used only if the link and
            // its target are ours.
            if m.uid() != euid() {
                return Err(derr(format!(
                    "it is a symbolic link owned by uid {}; refusing to follow it",
                    m.uid()
                )));
            }
            let t = std::fs::metadata(dir).map_err(|e| {
                derr(format!(
                    "it is a symbolic link whose target cannot be used: {e}"
                ))
            })?;
            check_dir_meta(dir, &t, warnings)?;
        }
        Ok(m) => check_dir_meta(dir, &m, warnings)?,
    }
    Ok(())
}

fn check_dir_meta(
    dir: &Path,
    m: &std::fs::Metadata,
    warnings: &mut Vec<String>,
) -> Result<(), StoreError> {
    let derr = |msg: String| StoreError::Dir(dir.to_path_buf(), msg);
    if !m.is_dir() {
        return Err(derr("it is not a directory".into()));
    }
    if m.uid() != euid() {
        return Err(derr(format!(
            "it is owned by uid {}, not by you; refusing to keep tokens there",
            m.uid()
        )));
    }
    if m.mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(DIR_MODE))
            .map_err(|e| derr(format!("cannot tighten its permissions: {e}")))?;
        warnings.push(format!(
            "{} was accessible to other users (mode {:o}); tightened to 700",
            dir.display(),
            m.mode() & 0o777
        ));
    }
    Ok(())
}

/// Removes a file (a symlink itself, never its target); `Ok(false)` if there was none.
/// The directory fsync runs on a blocking thread.
async fn remove(path: PathBuf) -> Result<bool, StoreError> {
    tokio::task::spawn_blocking(move || remove_now(&path))
        .await
        .unwrap_or_else(|e| Err(StoreError::Dir(PathBuf::new(), e.to_string())))
}

fn remove_now(path: &Path) -> Result<bool, StoreError> {
    match std::fs::remove_file(path) {
        Ok(()) => {
            if let Some(dir) = path.parent()
                && let Ok(d) = File::open(dir)
            {
                let _ = d.sync_all();
            }
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(StoreError::Write(path.to_path_buf(), e)),
    }
}

impl Store {
    /// Opens (creating if needed) the tokens directory. Returns warnings for the user.
    pub fn open(dir: &Path) -> Result<(Store, Vec<String>), StoreError> {
        let mut warnings = Vec::new();
        ensure_private_dir(dir, &mut warnings)?;
        ensure_private_dir(&dir.join(PRIVATE), &mut warnings)?;
        sweep_temp_files(dir);
        sweep_temp_files(&dir.join(PRIVATE));
        Ok((
            Store {
                dir: dir.to_path_buf(),
            },
            warnings,
        ))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of a token file; the name must pass the name rule.
    pub fn path_of(&self, file_name: &str) -> Result<PathBuf, StoreError> {
        Ok(self.dir.join(checked(file_name)?))
    }

    /// Reads a token file; `Ok(None)` if there is none.
    pub fn read_token(&self, file_name: &str) -> Result<Option<TokenRecord>, StoreError> {
        let path = self.path_of(file_name)?;
        let Some((bytes, _)) = read_private(&path, FILE_MODE)? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StoreError::Corrupt(path, e.to_string()))
    }

    /// Writes a token file (atomically, off the runtime).
    pub async fn write_token(
        &self,
        file_name: &str,
        record: &TokenRecord,
    ) -> Result<(), StoreError> {
        let path = self.path_of(file_name)?;
        write_off_runtime(path.clone(), record.to_json(), FILE_MODE)
            .await
            .map_err(|e| StoreError::Write(path, e))
    }

    /// Deletes a token file (logout). `Ok(false)` if there was none.
    pub async fn delete_token(&self, file_name: &str) -> Result<bool, StoreError> {
        remove(self.path_of(file_name)?).await
    }

    /// Deletes an identity's last-attempt state (logout).
    pub async fn delete_state(&self, identity: &str) -> Result<bool, StoreError> {
        remove(self.state_path(identity)?).await
    }

    /// A file in our private subdirectory (0700), for other modules' bookkeeping.
    pub fn private_path(&self, name: &str) -> PathBuf {
        self.dir.join(PRIVATE).join(name)
    }

    fn state_path(&self, identity: &str) -> Result<PathBuf, StoreError> {
        Ok(self
            .dir
            .join(PRIVATE)
            .join(format!("{}.state.json", checked(identity)?)))
    }

    pub fn read_state(&self, identity: &str) -> IdentityState {
        let Ok(path) = self.state_path(identity) else {
            return IdentityState::default();
        };
        match read_private(&path, FILE_MODE) {
            Ok(Some((bytes, _))) => serde_json::from_slice(&bytes).unwrap_or_default(),
            _ => IdentityState::default(),
        }
    }

    pub async fn write_state(
        &self,
        identity: &str,
        state: &IdentityState,
    ) -> Result<(), StoreError> {
        let path = self.state_path(identity)?;
        let mut bytes = serde_json::to_vec_pretty(state).expect("state serializes");
        bytes.push(b'\n');
        write_off_runtime(path.clone(), bytes, FILE_MODE)
            .await
            .map_err(|e| StoreError::Write(path, e))
    }

    /// The one-daemon-per-tokens-directory lock. `Ok(Err(pid))` names the holder when
    /// another daemon has it. Held until the returned lock is dropped.
    pub fn try_daemon_lock(&self) -> Result<Result<FileLock, String>, StoreError> {
        use std::io::{Read, Seek, Write};
        let lock_err = |e| StoreError::Lock("daemon".into(), e);
        match FileLock::try_take(&self.private_path("daemon.lock")).map_err(lock_err)? {
            Ok(mut lock) => {
                let file = lock.file();
                let _ = file.set_len(0);
                let _ = file.rewind();
                let _ = write!(file, "{}", std::process::id());
                Ok(Ok(lock))
            }
            Err(mut file) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                Ok(Err(pid.trim().to_string()))
            }
        }
    }

    /// Takes the identity's lock, waiting up to `wait` for another process to finish.
    pub async fn lock(&self, identity: &str, wait: Duration) -> Result<IdentityLock, StoreError> {
        let path = self.private_path(&format!("{}.lock", checked(identity)?));
        match FileLock::take(&path, wait).await {
            Ok(lock) => Ok(IdentityLock { _lock: lock }),
            Err(LockError::Timeout) => Err(StoreError::LockTimeout(
                identity.to_string(),
                wait.as_secs(),
            )),
            Err(LockError::Io(e)) => Err(StoreError::Lock(identity.to_string(), e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_and_tightens_the_directory() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("a/b/tokens");
        let (_s, w) = Store::open(&dir).unwrap();
        assert!(w.is_empty());
        assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let (_s, w) = Store::open(&dir).unwrap();
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
    }

    #[tokio::test]
    async fn state_files_of_earlier_versions_still_load() {
        let d = tempfile::tempdir().unwrap();
        let (s, _) = Store::open(d.path()).unwrap();
        // A state file as earlier versions wrote it (kinds as strings).
        let old = r#"{
  "last_attempt_at": 1718000000.5,
  "last_success_at": null,
  "last_error": "the grant is gone; run `mcp-credd login github`",
  "last_error_kind": "reauth_required"
}
"#;
        let path = s.state_path("github").unwrap();
        write_atomic(&path, old.as_bytes(), FILE_MODE).unwrap();
        let st = s.read_state("github");
        assert_eq!(st.last_error_kind, Some(FailureKind::ReauthRequired));
        assert_eq!(st.last_attempt_at, Some(1_718_000_000.5));
        // Written back, it reads the same, in the same spelling.
        s.write_state("github", &st).await.unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), old);
        for (text, kind) in [
            ("transient", Some(FailureKind::Transient)),
            ("permanent", Some(FailureKind::Permanent)),
            ("from_the_future", None),
        ] {
            let t = old.replace("reauth_required", text);
            write_atomic(&path, t.as_bytes(), FILE_MODE).unwrap();
            let st = s.read_state("github");
            assert_eq!(st.last_error_kind, kind, "{text}");
            assert!(st.last_error.is_some(), "the rest of the state is kept");
        }
    }

    #[test]
    fn a_file_in_place_of_the_directory_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        std::fs::write(&f, "").unwrap();
        let e = Store::open(&f).unwrap_err().to_string();
        assert!(e.contains("not a directory"), "{e}");
    }

    #[tokio::test]
    async fn no_path_outside_the_directory_is_built_from_a_name() {
        let d = tempfile::tempdir().unwrap();
        let (s, _) = Store::open(&d.path().join("t")).unwrap();
        for bad in ["../evil.json", "../../evil", "a/b.json", ".hidden.json", ""] {
            assert!(
                matches!(s.read_token(bad), Err(StoreError::Name(..))),
                "{bad}"
            );
            assert!(s.path_of(bad).is_err());
            assert!(s.write_state(bad, &IdentityState::default()).await.is_err());
            assert!(s.lock(bad, Duration::from_millis(10)).await.is_err());
        }
        assert!(
            std::fs::read_dir(d.path()).unwrap().count() == 1,
            "nothing beside t/"
        );
    }

    #[tokio::test]
    async fn lock_excludes_a_second_holder() {
        let d = tempfile::tempdir().unwrap();
        let (s, _) = Store::open(d.path()).unwrap();
        let held = s.lock("ingress", Duration::from_secs(1)).await.unwrap();
        let e = s
            .lock("ingress", Duration::from_millis(120))
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::LockTimeout(..)));
        drop(held);
        s.lock("ingress", Duration::from_millis(120)).await.unwrap();
    }
}
