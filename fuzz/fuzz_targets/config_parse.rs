//! The YAML config parser (`config::parse::parse`) on arbitrary text.
//!
//! Properties: no panic; an error names the file first (`/fuzz/config.yaml...`) and, when
//! it gives a line, a line that exists (1..=lines+1, the +1 for an error at end of input),
//! lines counted as YAML counts them: LF, CRLF, and also a lone CR, NEL, LS and PS end a
//! line (so a file with old Mac CR line endings has as many lines as an editor shows).
#![no_main]

use std::io;
use std::path::{Path, PathBuf};

use libfuzzer_sys::fuzz_target;
use mcp_credd::config::parse::{Lookup, parse};

/// A fixed outside world: most variables and files exist, some are missing or empty, so
/// both the resolved and the error paths of `{env: ...}` / `{file: ...}` are reached.
struct FuzzLookup;

impl Lookup for FuzzLookup {
    fn env(&self, name: &str) -> Option<String> {
        if name.is_empty() || name.starts_with("UNSET") {
            None
        } else if name.starts_with("EMPTY") {
            Some(String::new())
        } else {
            Some(format!("value-of-{name}"))
        }
    }
    fn read_file(&self, path: &Path) -> io::Result<String> {
        let s = path.to_string_lossy();
        if s.contains("missing") {
            Err(io::Error::new(io::ErrorKind::NotFound, "no such file"))
        } else if s.contains("empty") {
            Ok("\n".into())
        } else {
            Ok("file-secret\n".into())
        }
    }
    fn home_dir(&self) -> Option<PathBuf> {
        Some(PathBuf::from("/home/fuzz"))
    }
}

const ORIGIN: &str = "/fuzz/config.yaml";

/// Lines as a YAML parser (and an editor) counts them.
fn yaml_lines(text: &str) -> usize {
    let mut n = 0;
    let mut chars = text.chars().peekable();
    let mut at_line_start = true;
    while let Some(c) = chars.next() {
        at_line_start = false;
        match c {
            '\r' => {
                chars.next_if_eq(&'\n');
                n += 1;
                at_line_start = true;
            }
            '\n' | '\u{85}' | '\u{2028}' | '\u{2029}' => {
                n += 1;
                at_line_start = true;
            }
            _ => {}
        }
    }
    if at_line_start { n } else { n + 1 }
}

fuzz_target!(|data: &[u8]| {
    // The longest valid UTF-8 prefix: the daemon reads the file as a String, so invalid
    // UTF-8 never reaches the parser.
    let text = match std::str::from_utf8(data) {
        Ok(t) => t,
        Err(e) => std::str::from_utf8(&data[..e.valid_up_to()]).unwrap(),
    };
    match parse(text, Path::new(ORIGIN), &FuzzLookup) {
        Ok(parsed) => {
            // Debug must not panic either (it is logged at -vvv).
            let _ = format!("{parsed:?}");
        }
        Err(e) => {
            let shown = e.to_string();
            assert!(
                shown.starts_with(ORIGIN),
                "error does not start with the file name: {shown:?}"
            );
            if let Some(line) = e.line {
                let lines = yaml_lines(text);
                assert!(
                    (1..=lines + 1).contains(&line),
                    "error line {line} outside 1..={} : {shown:?}",
                    lines + 1
                );
            }
        }
    }
});
