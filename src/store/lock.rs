//! The one file lock: an advisory `flock` on a 0600 file in the store's private directory,
//! for every lock mcp-credd takes (the one-daemon lock, each identity's refresh lock, the
//! render lock). Taking it never blocks a thread: a busy lock is tried again on the async
//! timer, so the runtime keeps answering signals meanwhile, and a waiter dropped half way
//! (a command's time budget ran out) leaves nothing behind.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

use super::FILE_MODE;

/// How often a busy lock is tried again. Holders keep it for milliseconds (a refresh for a
/// provider round trip), so a short poll costs nothing and keeps the wait short.
const POLL: Duration = Duration::from_millis(20);

/// A held lock; released when dropped (the file is closed).
#[derive(Debug)]
pub struct FileLock {
    file: File,
}

/// Why a lock was not taken.
#[derive(Debug)]
pub enum LockError {
    /// Another process still held it when the wait was over.
    Timeout,
    Io(io::Error),
}

/// Opens (creating it 0600) the lock file at `path`, never through a symlink.
fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(FILE_MODE)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// One attempt: `Ok(Err(file))` when another process holds the lock.
fn attempt(file: File) -> io::Result<Result<FileLock, File>> {
    match file.try_lock() {
        Ok(()) => Ok(Ok(FileLock { file })),
        Err(std::fs::TryLockError::WouldBlock) => Ok(Err(file)),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

impl FileLock {
    /// Takes the lock at `path` if it is free. `Ok(Err(file))` when another process holds
    /// it; the file is open for reading what the holder wrote there.
    pub fn try_take(path: &Path) -> io::Result<Result<FileLock, File>> {
        attempt(open(path)?)
    }

    /// Takes the lock at `path`, waiting up to `wait` for another process to release it.
    pub async fn take(path: &Path, wait: Duration) -> Result<FileLock, LockError> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut file = open(path).map_err(LockError::Io)?;
        loop {
            file = match attempt(file).map_err(LockError::Io)? {
                Ok(lock) => return Ok(lock),
                Err(file) => file,
            };
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(LockError::Timeout);
            }
            tokio::time::sleep(POLL.min(deadline - now)).await;
        }
    }

    /// The lock file itself (the daemon lock records its PID there).
    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_second_holder_waits_then_gets_it() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.lock");
        let held = FileLock::take(&p, Duration::ZERO).await.unwrap();
        assert!(FileLock::try_take(&p).unwrap().is_err());
        assert!(matches!(
            FileLock::take(&p, Duration::from_millis(60)).await,
            Err(LockError::Timeout)
        ));
        let waiter = tokio::spawn({
            let p = p.clone();
            async move { FileLock::take(&p, Duration::from_secs(5)).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(held);
        waiter.await.unwrap().unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_does_not_hold_the_thread() {
        // On a single-threaded runtime with paused time: if the wait slept the thread, the
        // other task could not run before the deadline passed.
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.lock");
        let _held = FileLock::take(&p, Duration::ZERO).await.unwrap();
        let ticks = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let t = ticks.clone();
        let ticker = tokio::spawn(async move {
            for _ in 0..10 {
                tokio::time::sleep(Duration::from_millis(10)).await;
                t.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        });
        let r = FileLock::take(&p, Duration::from_millis(500)).await;
        assert!(matches!(r, Err(LockError::Timeout)));
        // Counted when the wait ends, before the ticker is awaited.
        assert_eq!(ticks.load(std::sync::atomic::Ordering::SeqCst), 10);
        ticker.await.unwrap();
    }

    #[test]
    fn a_symlink_in_place_of_the_lock_file_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("elsewhere");
        let p = d.path().join("x.lock");
        std::os::unix::fs::symlink(&target, &p).unwrap();
        assert!(FileLock::try_take(&p).is_err());
        assert!(!target.exists());
    }
}
