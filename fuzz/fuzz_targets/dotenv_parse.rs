//! The `.env` parser (`config::dotenv::parse`) on arbitrary text.
//!
//! Properties: no panic; keys are valid variable names; lines are 1-based, inside the
//! text and increasing; and every parsed value survives being written back double-quoted
//! (`KEY="..."` with `\\`, `\"`, `\n`, `\t` escaped) and parsed again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_credd::config::dotenv::parse;

fn quote(v: &str) -> String {
    let mut s = String::from("\"");
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            '\t' => s.push_str("\\t"),
            o => s.push(o),
        }
    }
    s.push('"');
    s
}

fuzz_target!(|data: &[u8]| {
    let text = match std::str::from_utf8(data) {
        Ok(t) => t,
        Err(e) => std::str::from_utf8(&data[..e.valid_up_to()]).unwrap(),
    };
    let lines = text.lines().count();
    match parse(text) {
        Ok(entries) => {
            let mut last = 0;
            for e in &entries {
                assert!(!e.key.is_empty());
                assert!(
                    e.key
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.'),
                    "bad key {:?}",
                    e.key
                );
                assert!(
                    e.line > last && e.line <= lines,
                    "line {} after {last} of {lines}",
                    e.line
                );
                last = e.line;
            }
            let rendered: String = entries
                .iter()
                .map(|e| format!("{}={}\n", e.key, quote(&e.value)))
                .collect();
            let again = parse(&rendered)
                .unwrap_or_else(|err| panic!("re-parse of {rendered:?} failed: {err:?}"));
            let a: Vec<(&str, &str)> = entries.iter().map(|e| (&*e.key, &*e.value)).collect();
            let b: Vec<(&str, &str)> = again.iter().map(|e| (&*e.key, &*e.value)).collect();
            assert_eq!(a, b, "round trip through {rendered:?}");
        }
        Err(e) => {
            assert!(
                e.line >= 1 && e.line <= lines.max(1),
                "error line {} of {lines}",
                e.line
            );
        }
    }
});
