//! Golden files for every editor format: a new file as mcp-credd writes it
//! (`tests/golden/new/FORMAT.json`), and a hand-written user file merged with our entries
//! (`tests/golden/merge/FORMAT.before.*` → `.after.*`). The goldens were reviewed by hand;
//! `MCP_CREDD_BLESS=1 cargo test --test golden` rewrites them, for review in `git diff`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use mcp_credd::config::{EditorFormat, Transport};
use mcp_credd::render::ServerEntry;
use mcp_credd::render::formats::{Syntax, syntax};
use mcp_credd::render::merge::merge;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn ext(format: EditorFormat) -> &'static str {
    match syntax(format) {
        Syntax::Jsonc => "jsonc",
        Syntax::Json => "json",
    }
}

/// Compares `actual` with the golden file, or rewrites it when blessing.
fn check(path: &Path, actual: &str) {
    if std::env::var_os("MCP_CREDD_BLESS").is_some() {
        std::fs::write(path, actual).unwrap();
        return;
    }
    let want = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e} (MCP_CREDD_BLESS=1 creates it)", path.display()));
    assert!(
        want == actual,
        "{} differs; got:\n{actual}\n(MCP_CREDD_BLESS=1 rewrites it: review the diff)",
        path.display()
    );
}

fn ingress_headers(token: &str) -> Vec<(String, String)> {
    vec![
        ("X-Authorization".into(), format!("Bearer {token}")),
        ("X-User-Pool-Id".into(), "us-east-1_AbC123".into()),
        ("X-Client-Id".into(), "m2m-client".into()),
        ("X-Region".into(), "us-east-1".into()),
    ]
}

/// The configured servers: one per transport behind the gateway, one without auth.
fn entries() -> Vec<ServerEntry> {
    vec![
        ServerEntry {
            name: "currenttime".into(),
            url: "https://gw.example.com/currenttime/mcp".into(),
            transport: Transport::StreamableHttp,
            headers: Some(ingress_headers("NEW")),
        },
        ServerEntry {
            name: "fininfo".into(),
            url: "https://gw.example.com/fininfo/mcp".into(),
            transport: Transport::Sse,
            headers: Some(ingress_headers("NEW")),
        },
        ServerEntry {
            name: "docs".into(),
            url: "https://docs.example.com/mcp".into(),
            transport: Transport::StreamableHttp,
            headers: None,
        },
    ]
}

#[test]
fn new_files() {
    for f in EditorFormat::ALL {
        let m = merge(None, f, &entries(), &BTreeSet::new()).unwrap();
        let text = m.text.unwrap();
        check(&dir().join(format!("new/{}.json", f.name())), &text);
        // What the editor reads is plain JSON, whatever its parser allows.
        serde_json::from_str::<serde_json::Value>(&text).unwrap();
    }
}

#[test]
fn merged_user_files() {
    // Written by us before: `currenttime` and `retired` (now gone from the config).
    let owned: BTreeSet<String> = ["currenttime", "retired"].map(String::from).into();
    for f in EditorFormat::ALL {
        let before = dir().join(format!("merge/{}.before.{}", f.name(), ext(f)));
        let text = std::fs::read_to_string(&before).unwrap();
        let m = merge(Some(&text), f, &entries(), &owned)
            .unwrap_or_else(|e| panic!("{}: {e}", before.display()));
        check(
            &dir().join(format!("merge/{}.after.{}", f.name(), ext(f))),
            m.text.as_deref().unwrap(),
        );
        // Only VS Code's file has a `docs` of the user's own, pointing elsewhere.
        let conflicts: Vec<&String> = m.notes.iter().collect();
        if f == EditorFormat::Vscode {
            assert_eq!(conflicts.len(), 1, "{conflicts:?}");
            assert!(conflicts[0].starts_with("server `docs` there was not written by mcp-credd"));
            assert!(!m.owned.contains("docs"));
        } else {
            assert!(conflicts.is_empty(), "{f:?}: {conflicts:?}");
        }
    }
}
