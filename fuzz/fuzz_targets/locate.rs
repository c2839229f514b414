//! `config::locate::locate` (the key path -> line heuristic) on arbitrary YAML-ish text.
//!
//! Input: the key path on the first line, the text after it.
//! Properties: no panic; a line it returns exists in the text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_credd::config::locate::{locate, parse_path};

fuzz_target!(|data: &[u8]| {
    let input = match std::str::from_utf8(data) {
        Ok(t) => t,
        Err(e) => std::str::from_utf8(&data[..e.valid_up_to()]).unwrap(),
    };
    let (path, text) = input.split_once('\n').unwrap_or((input, ""));
    let _ = parse_path(path);
    if let Some(line) = locate(text, path) {
        let lines = text.lines().count();
        assert!(
            (1..=lines).contains(&line),
            "line {line} outside 1..={lines} for path {path:?}"
        );
    }
});
