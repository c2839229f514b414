//! The only code that writes MCP config files: reads the current file, merges, and writes
//! atomically (0600, since the files hold tokens) only when the content changes. A file it
//! cannot read or parse is left untouched and reported.

use std::path::{Path, PathBuf};

use super::ServerEntry;
use super::reference::{Shape, merge};
use crate::store::FILE_MODE;
use crate::store::atomic::{read_private, write_atomic};

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
    pub outcome: Outcome,
}

fn write_one(path: &Path, shape: Shape, entries: &[ServerEntry]) -> Outcome {
    let existing = match read_private(path, FILE_MODE) {
        Ok(None) => None,
        Ok(Some((bytes, _))) => match String::from_utf8(bytes) {
            Ok(s) => Some(s),
            Err(_) => {
                return Outcome::Skipped(format!(
                    "{} is not UTF-8; left untouched",
                    path.display()
                ));
            }
        },
        Err(e) => return Outcome::Skipped(format!("{e}; left untouched")),
    };
    let new = match merge(existing.as_deref(), shape, entries) {
        Ok(n) => n,
        Err(why) => {
            return Outcome::Skipped(format!(
                "{}: {why}; left untouched (fix or delete it)",
                path.display()
            ));
        }
    };
    if existing.as_deref() == Some(new.as_str()) {
        return Outcome::Unchanged;
    }
    match write_atomic(path, new.as_bytes(), FILE_MODE) {
        Ok(()) => Outcome::Written,
        Err(e) => Outcome::Skipped(format!("cannot write {}: {e}", path.display())),
    }
}

/// Writes the reference-layout copies into the tokens directory.
pub fn write_reference_copies(tokens_dir: &Path, entries: &[ServerEntry]) -> Vec<TargetResult> {
    [Shape::VsCodeLegacy, Shape::Roo]
        .into_iter()
        .map(|shape| {
            let path = tokens_dir.join(shape.file_name());
            let outcome = write_one(&path, shape, entries);
            TargetResult { path, outcome }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Transport;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn writes_once_then_leaves_alone() {
        let d = tempfile::tempdir().unwrap();
        let es = [ServerEntry {
            name: "a".into(),
            url: "u".into(),
            transport: Transport::StreamableHttp,
            headers: None,
        }];
        let r = write_reference_copies(d.path(), &es);
        assert!(r.iter().all(|t| t.outcome == Outcome::Written), "{r:?}");
        let p = d.path().join("mcp.json");
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
        let r = write_reference_copies(d.path(), &es);
        assert!(r.iter().all(|t| t.outcome == Outcome::Unchanged), "{r:?}");
        std::fs::write(&p, "{broken").unwrap();
        let r = write_reference_copies(d.path(), &es);
        assert!(
            matches!(&r[1].outcome, Outcome::Skipped(m) if m.contains("not valid JSON")),
            "{r:?}"
        );
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "{broken");
    }
}
