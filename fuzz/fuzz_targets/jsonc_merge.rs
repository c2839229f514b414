//! The in-place JSON/JSONC merge of our server entries into an editor's MCP config file
//! (`render::merge::merge`), on arbitrary file text, entries and ownership records.
//!
//! Input layout (so that seeds are readable files):
//! - byte 0: flags. bits 0-3: the format, `EditorFormat::ALL[n % 7]` (0 VS Code, 1 legacy
//!   `vscode_mcp.json`, 2 Roo, 3 Cline, 4 Cursor, 5 Claude Code, 6 Windsurf); bit 4: no
//!   existing file (`None`); bit 5: with the default entries, all of them (and `retired`)
//!   were ours before;
//! - then the existing file's text, up to the first NUL byte or the end;
//! - after a NUL, our entries, one a line: `name|url|sse|Header=value;Header2=value`
//!   (fields after the name optional; `-` for headers means none). A line starting with `+`
//!   is an entry we owned before; one starting with `-` names a server we owned before and
//!   that is gone from the config. Without a NUL, a fixed set of entries is used.
//!
//! Properties, when the merge succeeds:
//! - the text it writes parses again with the format's own syntax (and as strict JSON for
//!   the strict formats, when the input was strict JSON);
//! - every entry it says it owns is there with exactly our managed keys (url, type,
//!   headers: absent when we send none);
//! - a server that was ours and left the config is gone from the servers object;
//! - merging the same entries into its output, with the ownership it returned, changes
//!   nothing (idempotence: the daemon re-renders on every token change and writes only
//!   when the text changes).
#![no_main]

use std::collections::BTreeSet;

use libfuzzer_sys::fuzz_target;
use mcp_credd::config::{EditorFormat, Transport};
use mcp_credd::render::ServerEntry;
use mcp_credd::render::formats::{Field, Syntax, fields, servers_path, syntax};
use mcp_credd::render::jsonc::Doc;
use mcp_credd::render::merge::merge;
use serde_json::{Map, Value};

fn entry(name: &str, url: &str, sse: bool, headers: Option<&[(&str, &str)]>) -> ServerEntry {
    ServerEntry {
        name: name.into(),
        url: url.into(),
        transport: if sse {
            Transport::Sse
        } else {
            Transport::StreamableHttp
        },
        headers: headers.map(|h| {
            h.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        }),
    }
}

fn default_entries() -> Vec<ServerEntry> {
    vec![
        entry(
            "currenttime",
            "https://gateway.example.com/currenttime/mcp",
            false,
            Some(&[
                ("X-Authorization", "Bearer eyJ.tok.sig"),
                ("X-User-Pool-Id", "us-east-1_AbC123"),
            ]),
        ),
        entry(
            "fininfo",
            "https://gateway.example.com/fininfo/mcp",
            true,
            None,
        ),
    ]
}

/// Entries and the names owned before, from the spec lines.
fn parse_spec(spec: &str) -> (Vec<ServerEntry>, BTreeSet<String>) {
    let mut entries: Vec<ServerEntry> = Vec::new();
    let mut owned = BTreeSet::new();
    for line in spec.lines().take(16) {
        if let Some(gone) = line.strip_prefix('-') {
            owned.insert(gone.to_string());
            continue;
        }
        let (line, was_ours) = match line.strip_prefix('+') {
            Some(l) => (l, true),
            None => (line, false),
        };
        let mut f = line.split('|');
        let name = f.next().unwrap_or_default().to_string();
        let url = f.next().unwrap_or_default().to_string();
        let transport = match f.next() {
            Some("sse") => Transport::Sse,
            _ => Transport::StreamableHttp,
        };
        let headers = match f.next() {
            None | Some("-") => None,
            Some(h) => Some(
                h.split(';')
                    .filter(|kv| !kv.is_empty())
                    .map(|kv| {
                        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                        (k.to_string(), v.to_string())
                    })
                    .collect(),
            ),
        };
        // Server names are unique in a valid config ("server `x` is listed twice").
        if entries.iter().any(|e| e.name == name) {
            continue;
        }
        if was_ours {
            owned.insert(name.clone());
        }
        entries.push(ServerEntry {
            name,
            url,
            transport,
            headers,
        });
    }
    (entries, owned)
}

/// The servers object of `text`, as JSON (`None`: no servers object).
fn servers_json(text: &str, format: EditorFormat) -> Option<Map<String, Value>> {
    let doc = Doc::parse(text, syntax(format))
        .unwrap_or_else(|e| panic!("merge wrote a file its own parser rejects ({e}): {text:?}"));
    let obj = doc
        .object_at(servers_path(format))
        .unwrap_or_else(|e| panic!("servers object unreadable in output ({e}): {text:?}"))?;
    let node: jsonc_parser::cst::CstNode = obj.into();
    match node.to_serde_value() {
        Some(Value::Object(m)) => Some(m),
        other => panic!("servers object is {other:?} in {text:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let format = EditorFormat::ALL[(flags & 0x0f) as usize % EditorFormat::ALL.len()];
    let rest = match std::str::from_utf8(rest) {
        Ok(t) => t,
        Err(e) => std::str::from_utf8(&rest[..e.valid_up_to()]).unwrap(),
    };
    let (text, (entries, owned_before)) = match rest.split_once('\0') {
        Some((t, spec)) => (t, parse_spec(spec)),
        None => {
            let entries = default_entries();
            let owned = if flags & 0x20 != 0 {
                entries
                    .iter()
                    .map(|e| e.name.clone())
                    .chain(["retired".to_string()])
                    .collect()
            } else {
                BTreeSet::new()
            };
            (rest, (entries, owned))
        }
    };
    let existing = (flags & 0x10 == 0).then_some(text);

    let Ok(once) = merge(existing, format, &entries, &owned_before) else {
        return;
    };
    let Some(out) = once.text.as_deref() else {
        assert!(
            entries.is_empty(),
            "no text written for {} entries",
            entries.len()
        );
        return;
    };

    // Strict formats stay strict JSON (when the user's file was).
    if syntax(format) == Syntax::Json
        && existing.is_none_or(|t| t.trim().is_empty() || serde_json::from_str::<Value>(t).is_ok())
    {
        if let Err(e) = serde_json::from_str::<Value>(out) {
            panic!("{format:?}: merge wrote invalid strict JSON ({e}): {out:?}");
        }
    }

    let servers = servers_json(out, format).unwrap_or_default();
    for e in entries.iter().filter(|e| once.owned.contains(&e.name)) {
        let Some(Value::Object(got)) = servers.get(&e.name) else {
            panic!(
                "owned entry {:?} missing or not an object in {out:?}",
                e.name
            );
        };
        for (key, field) in fields(format, e) {
            if let Field::Managed(want) = field {
                assert_eq!(
                    got.get(key),
                    want.as_ref(),
                    "{format:?}: entry {:?} key {key:?} in {out:?}",
                    e.name
                );
            }
        }
    }
    for gone in owned_before.difference(&once.owned) {
        assert!(
            !servers.contains_key(gone),
            "{format:?}: server {gone:?} left the config but is still in {out:?}"
        );
    }

    let twice = merge(Some(out), format, &entries, &once.owned)
        .unwrap_or_else(|e| panic!("{format:?}: merge refused its own output ({e}): {out:?}"));
    assert_eq!(
        twice.text.as_deref(),
        Some(out),
        "{format:?}: merge is not idempotent"
    );
    assert_eq!(
        twice.owned, once.owned,
        "{format:?}: ownership changed on a second merge"
    );
});
