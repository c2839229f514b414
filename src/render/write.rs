//! The only code that writes MCP config files. For each target it finds the real file (a
//! symlink, as dotfile managers make, is followed to a file the user owns), reads it,
//! merges our entries (pure, `merge`), and writes atomically next to the real file only
//! when the content changes. A file it cannot read or parse is left untouched and reported;
//! the other targets are still written. Which entries are ours is remembered per file in
//! `tokens_dir/.mcp-credd/owned.json`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ServerEntry;
use super::merge::merge;
use super::targets::{Target, resolve};
use crate::config::{EditorFormat, EditorSpec};
use crate::dirs::Dirs;
use crate::store::atomic::{euid, read_private, sweep_temp_files, write_atomic};
use crate::store::{FILE_MODE, FileLock, LockError, Store};

/// Which entries we wrote, per file; in the store's private directory.
const OWNED_FILE: &str = "owned.json";
/// Taken while writing editor files, so a one-shot run and the daemon take turns.
const LOCK_FILE: &str = "render.lock";
/// A render takes milliseconds; waiting longer means something is stuck.
const LOCK_WAIT: Duration = Duration::from_secs(10);

/// The largest editor file read: generous, as Claude Code's `~/.claude.json` keeps
/// per-project history, but bounded, so a runaway file is reported rather than read.
pub const EDITOR_FILE_MAX: u64 = 64 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Written,
    Unchanged,
    /// Left untouched; the reason names the file and the problem.
    Skipped(String),
}

#[derive(Debug, Clone)]
pub struct TargetResult {
    pub path: PathBuf,
    pub format: EditorFormat,
    pub outcome: Outcome,
    /// Things the user should know that did not stop the write (an entry left to the user,
    /// a file made private).
    pub notes: Vec<String>,
}

/// Everything one render did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub targets: Vec<TargetResult>,
    /// Problems outside any one file (no home directory, the ownership record).
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
}

impl Report {
    /// Every target written or already current, and no other error.
    pub fn ok(&self) -> bool {
        self.errors.is_empty()
            && self
                .targets
                .iter()
                .all(|t| !matches!(t.outcome, Outcome::Skipped(_)))
    }
}

/// The ownership record. Schema 2 keeps each file's format, so that a file dropped from
/// `editors:` can still be cleaned of our entries; schema 1 (names only) is still read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Owned {
    schema: u32,
    /// Target path (as configured) → what we own in it.
    files: BTreeMap<String, OwnedFile>,
}

/// What we own in one file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "OwnedFileRepr")]
struct OwnedFile {
    /// The format it was written in (`EditorFormat::name`); `None` in a schema 1 record.
    #[serde(skip_serializing_if = "Option::is_none")]
    format: Option<String>,
    names: BTreeSet<String>,
}

/// Both shapes of a file's record: schema 2's object, schema 1's list of names.
#[derive(Deserialize)]
#[serde(untagged)]
enum OwnedFileRepr {
    Current {
        format: Option<String>,
        names: BTreeSet<String>,
    },
    Names(BTreeSet<String>),
}

impl From<OwnedFileRepr> for OwnedFile {
    fn from(r: OwnedFileRepr) -> OwnedFile {
        match r {
            OwnedFileRepr::Current { format, names } => OwnedFile { format, names },
            OwnedFileRepr::Names(names) => OwnedFile {
                format: None,
                names,
            },
        }
    }
}

/// The record's current schema.
const OWNED_SCHEMA: u32 = 2;

/// The format of a file we own that `editors:` no longer lists: the recorded one, or for
/// a schema 1 record, the format whose usual place (or reference copy) the path is.
fn recorded_format(
    path: &str,
    file: &OwnedFile,
    dirs: &Dirs,
    tokens_dir: &Path,
) -> Option<EditorFormat> {
    if let Some(f) = &file.format {
        return EditorFormat::from_name(f);
    }
    let mut usual = vec![EditorSpec::Reference];
    usual.extend(
        EditorFormat::ALL
            .into_iter()
            .map(|format| EditorSpec::File {
                format,
                path: None,
                allow_tracked: false,
            }),
    );
    let (places, _) = resolve(&usual, dirs, tokens_dir);
    places
        .into_iter()
        .find(|t| t.path == Path::new(path))
        .map(|t| t.format)
}

/// Writes `entries` into every editor file `editors` names; with `keep_unlisted`, entries
/// we own that `entries` does not list are kept as they are (the servers source could not
/// be read: its absence says nothing). The render lock is waited for on the async timer and
/// the file work (reads, merges, fsyncs) runs on a blocking thread, so a daemon calling this
/// keeps answering signals while a one-shot run holds the lock.
pub async fn write_all(
    store: &Store,
    editors: &[EditorSpec],
    dirs: &Dirs,
    entries: &[ServerEntry],
    keep_unlisted: bool,
) -> Report {
    let (targets, errors) = resolve(editors, dirs, store.dir());
    let all_resolved = errors.is_empty();
    let mut report = Report {
        errors,
        ..Report::default()
    };
    let lock = match FileLock::take(&store.private_path(LOCK_FILE), LOCK_WAIT).await {
        Ok(l) => l,
        Err(LockError::Timeout) => {
            report.errors.push(format!(
                "another mcp-credd process has been writing the editor configs for over {}s; try again later",
                LOCK_WAIT.as_secs()
            ));
            return report;
        }
        Err(LockError::Io(e)) => {
            report.errors.push(format!(
                "cannot lock {}: {e}",
                store.private_path(LOCK_FILE).display()
            ));
            return report;
        }
    };
    let job = Locked {
        tokens_dir: store.dir().to_path_buf(),
        owned_path: store.private_path(OWNED_FILE),
        dirs: dirs.clone(),
        targets,
        all_resolved,
        entries: entries.to_vec(),
        keep_unlisted,
    };
    let work = tokio::task::spawn_blocking(move || {
        let _lock = lock;
        job.write(report)
    });
    work.await.unwrap_or_else(|e| Report {
        errors: vec![format!("the editor configs were not written: {e}")],
        ..Report::default()
    })
}

/// One render's file work, done under the render lock on a blocking thread.
struct Locked {
    tokens_dir: PathBuf,
    owned_path: PathBuf,
    dirs: Dirs,
    targets: Vec<Target>,
    /// Every `editors` item resolved to a path.
    all_resolved: bool,
    entries: Vec<ServerEntry>,
    keep_unlisted: bool,
}

impl Locked {
    /// Every target, the files dropped from `editors:`, then the ownership record.
    fn write(self, mut report: Report) -> Report {
        let Locked {
            tokens_dir,
            owned_path,
            dirs,
            targets,
            all_resolved,
            entries,
            keep_unlisted,
        } = self;
        let (dirs, entries) = (&dirs, &entries[..]);
        let before = match read_private(&owned_path, FILE_MODE) {
            Ok(None) => Owned::default(),
            Ok(Some((bytes, _))) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                report.warnings.push(format!(
                    "{} is not valid ({e}); starting a new record: entries written before are kept in the editors' files until removed by hand",
                    owned_path.display()
                ));
                Owned::default()
            }),
            Err(e) => {
                report.warnings.push(format!("{e}; starting a new record"));
                Owned::default()
            }
        };
        let mut owned = before.clone();
        owned.schema = OWNED_SCHEMA;
        for t in &targets {
            let key = t.path.display().to_string();
            let was = owned
                .files
                .get(&key)
                .map(|f| f.names.clone())
                .unwrap_or_default();
            let (kept, was): (BTreeSet<String>, BTreeSet<String>) = if keep_unlisted {
                was.into_iter()
                    .partition(|n| !entries.iter().any(|e| &e.name == n))
            } else {
                (BTreeSet::new(), was)
            };
            let (result, now) = write_target(t, entries, &was);
            let now = now.map(|mut n| {
                n.extend(kept);
                n
            });
            record(&mut owned, key, t.format, now);
            report.targets.push(result);
        }
        // Files we wrote that `editors:` no longer lists: our entries (and their tokens) go,
        // the user's stay. Removing the editor is the user's word, whatever the servers source.
        let listed: BTreeSet<String> = targets
            .iter()
            .map(|t| t.path.display().to_string())
            .collect();
        let dropped: Vec<(String, OwnedFile)> = before
            .files
            .iter()
            .filter(|(k, _)| !listed.contains(*k))
            .map(|(k, f)| (k.clone(), f.clone()))
            .collect();
        if !dropped.is_empty() && !all_resolved {
            // Some configured place could not be worked out (no home directory): a file
            // missing from the list may still be meant; it is left as it is.
            report.warnings.push(format!(
                "the editor files {} were written before but are not among the targets now; left as they are until every `editors` item resolves",
                dropped.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(", ")
            ));
        }
        for (key, file) in dropped.into_iter().filter(|_| all_resolved) {
            let Some(format) = recorded_format(&key, &file, dirs, &tokens_dir) else {
                report.warnings.push(format!(
                    "{key} is no longer in `editors` and its format was not recorded; remove the entries {} from it by hand",
                    file.names.iter().cloned().collect::<Vec<_>>().join(", ")
                ));
                continue;
            };
            // A listed file may be a symlink (dotfile managers): listing it is the user's
            // word for where it leads. A dropped one has no such word, and a link there may
            // have been planted since (a checkout's workspace file): not followed.
            if let Ok(meta) = std::fs::symlink_metadata(&key)
                && meta.file_type().is_symlink()
            {
                let to = std::fs::read_link(&key)
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|e| format!("unreadable: {e}"));
                report.warnings.push(format!(
                    "{key} is no longer in `editors` and is a symbolic link (to {to}); not followed, left untouched: remove the entries {} from the file it leads to by hand and then the link, or list it in `editors` again",
                    file.names.iter().cloned().collect::<Vec<_>>().join(", ")
                ));
                continue;
            }
            let t = Target {
                path: PathBuf::from(&key),
                format,
                allow_tracked: false,
            };
            let (mut result, now) = write_target(&t, &[], &file.names);
            if result.outcome == Outcome::Written {
                result.notes.push(format!(
                    "{key}: no longer in `editors`; removed the entries mcp-credd wrote there"
                ));
            }
            record(&mut owned, key, format, now);
            report.targets.push(result);
        }
        if owned != before {
            let mut bytes = serde_json::to_vec_pretty(&owned).expect("the record serializes");
            bytes.push(b'\n');
            if let Err(e) = write_atomic(&owned_path, &bytes, FILE_MODE) {
                report.errors.push(format!(
                    "cannot write {}: {e} (entries of servers removed from the config may stay in the editors' files)",
                    owned_path.display()
                ));
            }
        }
        report
    }
}

/// Records what we own in one file after writing it (`None`: skipped, nothing changed).
fn record(owned: &mut Owned, key: String, format: EditorFormat, now: Option<BTreeSet<String>>) {
    match now {
        Some(now) if now.is_empty() => {
            owned.files.remove(&key);
        }
        Some(names) => {
            owned.files.insert(
                key,
                OwnedFile {
                    format: Some(format.name().to_string()),
                    names,
                },
            );
        }
        // Skipped: the file is as it was, and so is what we own in it.
        None => {}
    }
}

/// The file to read and replace for `path`: itself, or the file its symlink leads to,
/// which must be a regular file the user owns. `Ok` for a path that does not exist yet.
fn real_path(path: &Path) -> Result<PathBuf, String> {
    let shown = path.display();
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(path.to_path_buf()),
        Err(e) => return Err(format!("cannot use {shown}: {e}")),
    };
    if !meta.file_type().is_symlink() {
        check_file(&meta, &shown.to_string())?;
        return Ok(path.to_path_buf());
    }
    let real = std::fs::canonicalize(path).map_err(|e| {
        format!("{shown} is a symbolic link that leads nowhere ({e}); left untouched: point it at an existing file or remove it")
    })?;
    let meta =
        std::fs::metadata(&real).map_err(|e| format!("cannot use {}: {e}", real.display()))?;
    check_file(
        &meta,
        &format!("{shown} is a symbolic link to {}, which", real.display()),
    )?;
    Ok(real)
}

fn check_file(meta: &std::fs::Metadata, what: &str) -> Result<(), String> {
    if !meta.is_file() {
        return Err(format!("{what} is not a regular file; left untouched"));
    }
    if meta.uid() != euid() {
        return Err(format!(
            "{what} is owned by uid {}, not by you; left untouched",
            meta.uid()
        ));
    }
    Ok(())
}

/// An editor file's text as a render would read it (a symlink only to a regular file the
/// user owns, no FIFO or device, at most [`EDITOR_FILE_MAX`]); `None` if it does not exist.
pub fn read_editor_file(path: &Path) -> Result<Option<String>, String> {
    read_existing(&real_path(path)?).map(|x| x.map(|(text, _)| text))
}

/// The text and permission bits of `real`, `None` if it does not exist. It is opened
/// without following a symlink: `real_path` already resolved them, so one appearing now
/// is a race, not the user's setup.
fn read_existing(real: &Path) -> Result<Option<(String, u32)>, String> {
    let f = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(real)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", real.display())),
    };
    let meta = f
        .metadata()
        .map_err(|e| format!("cannot read {}: {e}", real.display()))?;
    check_file(&meta, &real.display().to_string())?;
    let too_big = || {
        format!(
            "{} is larger than {} MiB; left untouched",
            real.display(),
            EDITOR_FILE_MAX >> 20
        )
    };
    if meta.len() > EDITOR_FILE_MAX {
        return Err(too_big());
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    (&f).take(EDITOR_FILE_MAX + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {}: {e}", real.display()))?;
    if bytes.len() as u64 > EDITOR_FILE_MAX {
        return Err(too_big());
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        format!(
            "{} is not UTF-8 text (byte {}); left untouched",
            real.display(),
            e.utf8_error().valid_up_to()
        )
    })?;
    Ok(Some((text, meta.mode() & 0o7777)))
}

/// Why tokens must not go into `path`: it lies in a git work tree that does not ignore it
/// (so a commit would publish them). `None` when it is outside any work tree or ignored.
/// Asks git itself (`check-ignore`), which knows every ignore file and rule; with git
/// missing or failing, the answer is to keep tokens out.
pub fn git_exposure(path: &Path) -> Option<String> {
    let dir = path.parent()?;
    let root = dir
        .ancestors()
        .find(|d| d.join(".git").symlink_metadata().is_ok())?;
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(root)
        // A repository's own config must not run anything here (fsmonitor hooks).
        .args(["-c", "core.fsmonitor=false", "check-ignore", "-q", "--"])
        .arg(path)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .status();
    let root = root.display();
    match out.map(|s| s.code()) {
        Ok(Some(0)) => None,
        Ok(Some(1)) => Some(format!(
            "it is inside the git work tree {root}, and git does not ignore it"
        )),
        Ok(_) => Some(format!(
            "it is inside the git work tree {root}, and git could not say whether it ignores it"
        )),
        Err(e) => Some(format!(
            "it is inside the git work tree {root}, and git could not be run to check whether it ignores it ({e})"
        )),
    }
}

/// Writes one target; also returns the entries we own in it now (`None`: skipped).
fn write_target(
    t: &Target,
    entries: &[ServerEntry],
    owned_before: &BTreeSet<String>,
) -> (TargetResult, Option<BTreeSet<String>>) {
    let mut result = TargetResult {
        path: t.path.clone(),
        format: t.format,
        outcome: Outcome::Unchanged,
        notes: Vec::new(),
    };
    let skip = |mut r: TargetResult, why: String| {
        r.outcome = Outcome::Skipped(why);
        (r, None)
    };
    let real = match real_path(&t.path) {
        Ok(r) => r,
        Err(why) => return skip(result, why),
    };
    let existing = match read_existing(&real) {
        Ok(x) => x,
        Err(why) => return skip(result, why),
    };
    let old_text = existing.as_ref().map(|(t, _)| t.as_str());
    // A file git would commit gets no token (Claude Code's files never hold one).
    let stripped: Vec<ServerEntry>;
    let mut entries = entries;
    if !t.allow_tracked
        && t.format != EditorFormat::ClaudeCode
        && entries.iter().any(|e| e.headers.is_some())
        && let Some(why) = git_exposure(&real)
    {
        result.notes.push(format!(
            "{}: no tokens written: {why}; add it to .gitignore, or set `allow_tracked: true` on this editor",
            t.path.display()
        ));
        stripped = entries
            .iter()
            .map(|e| ServerEntry {
                headers: None,
                ..e.clone()
            })
            .collect();
        entries = &stripped;
    }
    let merged = match merge(old_text, t.format, entries, owned_before) {
        Ok(m) => m,
        Err(why) => {
            return skip(
                result,
                format!(
                    "{}: {why}; left untouched (fix it, or delete it to have it recreated)",
                    real.display()
                ),
            );
        }
    };
    let shown = t.path.display();
    result
        .notes
        .extend(merged.notes.iter().map(|n| format!("{shown}: {n}")));
    let Some(text) = merged.text else {
        return (result, Some(merged.owned));
    };
    // A file holding our tokens is private to the user, whatever it was before; one
    // without them keeps its mode (a new one is private anyway).
    // Claude Code's entries name a helper, not a token.
    let holds_tokens = merged.holds_tokens && t.format != EditorFormat::ClaudeCode;
    let old_mode = existing.as_ref().map(|(_, m)| *m);
    let loose = old_mode.is_some_and(|m| m & 0o077 != 0);
    let mode = match old_mode {
        Some(m) if !holds_tokens => m & 0o777,
        _ => FILE_MODE,
    };
    let tightened =
        || format!("{shown} was readable by others; made it private (600): it holds tokens");
    if old_text == Some(text.as_str()) {
        if holds_tokens && loose {
            if let Err(e) =
                std::fs::set_permissions(&real, std::fs::Permissions::from_mode(FILE_MODE))
            {
                return skip(
                    result,
                    format!("cannot make {} private: {e}", real.display()),
                );
            }
            result.notes.push(tightened());
        }
        return (result, Some(merged.owned));
    }
    let dir = real
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if existing.is_none()
        && let Err(e) = crate::store::atomic::create_private_dirs(dir)
    {
        return skip(result, format!("cannot create {}: {e}", dir.display()));
    }
    sweep_temp_files(dir);
    if let Err(e) = write_atomic(&real, text.as_bytes(), mode) {
        return skip(result, format!("cannot write {}: {e}", real.display()));
    }
    if holds_tokens && loose {
        result.notes.push(tightened());
    }
    result.outcome = Outcome::Written;
    (result, Some(merged.owned))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    struct Env {
        _dir: tempfile::TempDir,
        home: PathBuf,
        store: Store,
    }

    fn env() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let (store, _) = Store::open(&home.join(".oauth-tokens")).unwrap();
        Env {
            home,
            store,
            _dir: dir,
        }
    }

    impl Env {
        fn dirs(&self) -> Dirs {
            Dirs::new(Some(self.home.clone()), None, false)
        }
        fn write(&self, editors: &[EditorSpec], entries: &[ServerEntry]) -> Report {
            self.write_with(editors, &self.dirs(), entries)
        }
        /// The real, async path, on a runtime of its own.
        fn write_with(
            &self,
            editors: &[EditorSpec],
            dirs: &Dirs,
            entries: &[ServerEntry],
        ) -> Report {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(write_all(&self.store, editors, dirs, entries, false))
        }
        fn outcomes(&self, editors: &[EditorSpec], entries: &[ServerEntry]) -> Vec<Outcome> {
            self.write(editors, entries)
                .targets
                .into_iter()
                .map(|t| t.outcome)
                .collect()
        }
    }

    use crate::render::test_entry as e;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().mode() & 0o777
    }

    fn cursor_at(p: &Path) -> Vec<EditorSpec> {
        vec![EditorSpec::File {
            format: EditorFormat::Cursor,
            path: Some(p.to_path_buf()),
            allow_tracked: false,
        }]
    }

    #[test]
    fn writes_once_then_leaves_alone() {
        let env = env();
        let es = [e("a", Some("T"))];
        let specs = [EditorSpec::Reference];
        assert_eq!(
            env.outcomes(&specs, &es),
            [Outcome::Written, Outcome::Written]
        );
        let p = env.store.dir().join("mcp.json");
        assert_eq!(mode(&p), 0o600);
        let mtime = std::fs::metadata(&p).unwrap().modified().unwrap();
        assert_eq!(
            env.outcomes(&specs, &es),
            [Outcome::Unchanged, Outcome::Unchanged]
        );
        assert_eq!(std::fs::metadata(&p).unwrap().modified().unwrap(), mtime);
    }

    #[test]
    fn a_broken_file_is_left_alone_and_the_others_written() {
        let env = env();
        let vscode = env.home.join(".config/Code/User/mcp.json");
        std::fs::create_dir_all(vscode.parent().unwrap()).unwrap();
        std::fs::write(&vscode, "{\n  \"servers\": {\n    \"x\": 1,,\n  }\n}\n").unwrap();
        let r = env.write(&EditorSpec::defaults(), &[e("a", Some("T"))]);
        assert!(!r.ok());
        let Outcome::Skipped(why) = &r.targets[0].outcome else {
            panic!("{r:?}");
        };
        assert!(
            why.starts_with(&format!("{}: line 3, column 12: ", vscode.display())),
            "{why}"
        );
        assert!(why.ends_with("left untouched (fix it, or delete it to have it recreated)"));
        assert_eq!(
            std::fs::read_to_string(&vscode).unwrap(),
            "{\n  \"servers\": {\n    \"x\": 1,,\n  }\n}\n"
        );
        assert!(r.targets[1..].iter().all(|t| t.outcome == Outcome::Written));
        assert!(
            !format!("{r:?}").contains("Bearer T"),
            "no token in reports"
        );
    }

    #[test]
    fn a_symlink_is_written_through_to_its_target() {
        let env = env();
        let dotfiles = env.home.join("dotfiles");
        std::fs::create_dir_all(&dotfiles).unwrap();
        let real = dotfiles.join("cursor-mcp.json");
        std::fs::write(&real, "{\"mcpServers\": {\"mine\": {\"command\": \"x\"}}}").unwrap();
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o644)).unwrap();
        let link = env.home.join(".cursor/mcp.json");
        std::fs::create_dir_all(link.parent().unwrap()).unwrap();
        symlink("../dotfiles/cursor-mcp.json", &link).unwrap();
        let r = env.write(&cursor_at(&link), &[e("a", Some("T"))]);
        assert_eq!(r.targets[0].outcome, Outcome::Written, "{r:?}");
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&real).unwrap()).unwrap();
        assert_eq!(v["mcpServers"]["mine"]["command"], "x");
        assert_eq!(
            v["mcpServers"]["a"]["headers"]["X-Authorization"],
            "Bearer T"
        );
        assert_eq!(mode(&real), 0o600, "it holds a token now");
        assert!(r.targets[0].notes[0].contains("made it private"), "{r:?}");
        // No temp file left next to the link or the target.
        assert_eq!(std::fs::read_dir(&dotfiles).unwrap().count(), 1);
        assert_eq!(
            std::fs::read_dir(link.parent().unwrap()).unwrap().count(),
            1
        );
    }

    #[test]
    fn foreign_and_dangling_targets_are_refused() {
        let env = env();
        let theirs = env.home.join("theirs.json");
        std::fs::create_dir_all(&env.home).unwrap();
        std::fs::write(&theirs, "{}").unwrap();
        let link = env.home.join("link.json");
        symlink(&theirs, &link).unwrap();
        if euid() == 0 {
            // Only root can hand a file to someone else; elsewhere this part is skipped.
            std::os::unix::fs::chown(&theirs, Some(4242), None).unwrap();
            for p in [&theirs, &link] {
                let r = env.write(&cursor_at(p), &[e("a", None)]);
                assert!(
                    matches!(&r.targets[0].outcome, Outcome::Skipped(m) if m.contains("owned by uid 4242, not by you")),
                    "{r:?}"
                );
            }
            assert_eq!(std::fs::read_to_string(&theirs).unwrap(), "{}");
        }
        let dangling = env.home.join("dangling.json");
        symlink(env.home.join("nowhere.json"), &dangling).unwrap();
        let r = env.write(&cursor_at(&dangling), &[e("a", None)]);
        assert!(
            matches!(&r.targets[0].outcome, Outcome::Skipped(m) if m.contains("leads nowhere")),
            "{r:?}"
        );
        assert!(!env.home.join("nowhere.json").exists());
    }

    #[test]
    fn entries_of_removed_servers_go_and_the_users_stay() {
        let env = env();
        let p = env.home.join("proj/.vscode/mcp.json");
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let user = "{\n  // my servers\n  \"servers\": {\n    \"mine\": {\"command\": \"x\"}, // keep\n  },\n  \"inputs\": []\n}\n";
        std::fs::write(&p, user).unwrap();
        let specs = vec![EditorSpec::File {
            format: EditorFormat::Vscode,
            path: Some(p.clone()),
            allow_tracked: false,
        }];
        let r = env.write(&specs, &[e("a", Some("T")), e("b", Some("T"))]);
        assert!(r.ok(), "{r:?}");
        let owned = std::fs::read_to_string(env.store.private_path(OWNED_FILE)).unwrap();
        assert!(
            owned.contains("\"a\"") && owned.contains("\"b\""),
            "{owned}"
        );
        assert_eq!(mode(&env.store.private_path(OWNED_FILE)), 0o600);
        // `b` leaves the config: its entry goes; `a` is updated.
        let r = env.write(&specs, &[e("a", Some("U"))]);
        assert_eq!(r.targets[0].outcome, Outcome::Written);
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(
            !text.contains("\"b\"") && text.contains("Bearer U"),
            "{text}"
        );
        // Everything leaves: the user's file is back to what they wrote.
        env.write(&specs, &[]);
        assert_eq!(std::fs::read_to_string(&p).unwrap(), user);
        let owned = std::fs::read_to_string(env.store.private_path(OWNED_FILE)).unwrap();
        assert!(!owned.contains("mcp.json"), "{owned}");
    }

    #[test]
    fn a_file_without_our_tokens_keeps_its_mode() {
        let env = env();
        // Claude Code's file names a helper, not a token: it keeps its mode either way.
        let claude = env.home.join("p/.mcp.json");
        std::fs::create_dir_all(claude.parent().unwrap()).unwrap();
        std::fs::write(&claude, "{\"mcpServers\": {}}\n").unwrap();
        std::fs::set_permissions(&claude, std::fs::Permissions::from_mode(0o644)).unwrap();
        let specs = vec![EditorSpec::File {
            format: EditorFormat::ClaudeCode,
            path: Some(claude.clone()),
            allow_tracked: false,
        }];
        let r = env.write(&specs, &[e("public", Some("T"))]);
        assert_eq!(r.targets[0].outcome, Outcome::Written);
        assert_eq!(mode(&claude), 0o644);
        assert!(
            !std::fs::read_to_string(&claude)
                .unwrap()
                .contains("Bearer T")
        );
        let p = env.home.join("p/.cursor/mcp.json");
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, "{\"mcpServers\": {}}\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let specs = vec![EditorSpec::File {
            format: EditorFormat::Cursor,
            path: Some(p.clone()),
            allow_tracked: false,
        }];
        let r = env.write(&specs, &[e("public", None)]);
        assert_eq!(r.targets[0].outcome, Outcome::Written);
        assert_eq!(mode(&p), 0o644);
        // Now with a token in it: private.
        let r = env.write(&specs, &[e("public", Some("T"))]);
        assert_eq!(r.targets[0].outcome, Outcome::Written);
        assert_eq!(mode(&p), 0o600);
        // Loosened by hand with nothing to change: tightened without a rewrite.
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let r = env.write(&specs, &[e("public", Some("T"))]);
        assert_eq!(r.targets[0].outcome, Outcome::Unchanged);
        assert_eq!(mode(&p), 0o600);
        assert_eq!(r.targets[0].notes.len(), 1);
    }

    #[test]
    fn a_schema_1_record_is_read_and_a_dropped_usual_file_cleaned() {
        let env = env();
        let vscode = env.home.join(".config/Code/User/mcp.json");
        let elsewhere = env.home.join("elsewhere.json");
        std::fs::create_dir_all(vscode.parent().unwrap()).unwrap();
        let user = "{\n  \"servers\": {\n    \"mine\": {\"command\": \"x\"}\n  }\n}\n";
        std::fs::write(&vscode, user).unwrap();
        let specs = vec![EditorSpec::File {
            format: EditorFormat::Vscode,
            path: None,
            allow_tracked: false,
        }];
        assert!(env.write(&specs, &[e("a", Some("T"))]).ok());
        std::fs::write(&elsewhere, "{\"mcpServers\": {\"a\": {\"url\": \"u\"}}}").unwrap();
        // The record as an older mcp-credd wrote it: names only.
        let v1 = serde_json::json!({"schema": 1, "files": {
            vscode.display().to_string(): ["a"],
            elsewhere.display().to_string(): ["a"],
        }});
        std::fs::write(env.store.private_path(OWNED_FILE), v1.to_string()).unwrap();
        let r = env.write(&[], &[e("a", Some("T"))]);
        // The usual VS Code place tells its format; the other file's is unknown.
        assert_eq!(std::fs::read_to_string(&vscode).unwrap(), user);
        assert!(
            r.warnings.iter().any(|w| w.contains(
                "elsewhere.json is no longer in `editors` and its format was not recorded"
            )),
            "{r:?}"
        );
        assert!(
            std::fs::read_to_string(&elsewhere)
                .unwrap()
                .contains("\"a\"")
        );
        let owned: Owned =
            serde_json::from_slice(&std::fs::read(env.store.private_path(OWNED_FILE)).unwrap())
                .unwrap();
        assert_eq!(owned.schema, OWNED_SCHEMA);
        assert_eq!(
            owned.files.keys().cloned().collect::<Vec<_>>(),
            [elsewhere.display().to_string()]
        );
    }

    #[test]
    fn a_dropped_file_is_kept_while_a_listed_place_cannot_be_resolved() {
        let env = env();
        let p = env.home.join("proj/.cursor/mcp.json");
        assert!(env.write(&cursor_at(&p), &[e("a", Some("T"))]).ok());
        let written = std::fs::read_to_string(&p).unwrap();
        // No home directory: `cursor` at its usual place cannot be placed.
        let specs = [EditorSpec::File {
            format: EditorFormat::Cursor,
            path: None,
            allow_tracked: false,
        }];
        let r = env.write_with(&specs, &Dirs::new(None, None, false), &[]);
        assert!(!r.errors.is_empty(), "{r:?}");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), written);
        assert!(
            r.warnings.iter().any(|w| w.contains("left as they are")),
            "{r:?}"
        );
    }

    #[test]
    fn nothing_to_write_creates_nothing() {
        let env = env();
        let r = env.write(&EditorSpec::defaults(), &[]);
        assert!(r.ok());
        assert!(!env.home.join(".config").exists());
        assert!(!env.store.dir().join("mcp.json").exists());
    }
}
