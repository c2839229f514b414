//! Our server entries merged into one editor file, remembering which entries are ours.
//! Pure: the file's text, its format, our entries and the names we owned there before in;
//! the new text, the names we own now, and notes for the user out.
//!
//! Ownership rules:
//! - An entry we wrote before (recorded in `owned`) is updated, or removed once its server
//!   is gone from the config.
//! - An entry under one of our names that we did not write is taken over only when it
//!   already points at the same URL (a copy of ours, e.g. made by the reference tool);
//!   otherwise it is the user's: left as it is, with a note.
//! - Everything else in the file is the user's and is never touched.

use std::collections::BTreeSet;

use serde_json::Value;

use super::ServerEntry;
use super::formats::{self, fields, fresh, servers_path, syntax, url_key};
use super::jsonc::{Doc, update_entry, value_of};
use crate::config::EditorFormat;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    /// The new file text; `None` when there is no file and nothing to put in one.
    pub text: Option<String>,
    /// The entries we own in the file now.
    pub owned: BTreeSet<String>,
    /// Whether an entry of ours carries headers (tokens): the file must be private.
    pub holds_tokens: bool,
    /// Entries we left alone, for the user to resolve.
    pub notes: Vec<String>,
}

/// Merges `entries` into `existing` (the file's text, `None` if there is no file).
/// An error (the file does not parse, or its servers key holds something else) means the
/// file must be left untouched.
///
/// A file that only needs values of our keys replaced (every refresh after the first
/// write) takes the one-pass path of `spans`; everything else goes through the syntax
/// tree (`merge_tree`). Both give the same text.
pub fn merge(
    existing: Option<&str>,
    format: EditorFormat,
    entries: &[ServerEntry],
    owned_before: &BTreeSet<String>,
) -> Result<Merged, String> {
    if let Some(text) = existing.filter(|t| !t.trim().is_empty())
        && let Some(m) = super::spans::merge_in_place(text, format, entries, owned_before)
    {
        return Ok(m);
    }
    merge_tree(existing, format, entries, owned_before)
}

/// `merge` on jsonc-parser's concrete syntax tree: handles every case (additions,
/// removals, keys added to or removed from an entry). Public for the tests that hold the
/// fast path to it.
pub fn merge_tree(
    existing: Option<&str>,
    format: EditorFormat,
    entries: &[ServerEntry],
    owned_before: &BTreeSet<String>,
) -> Result<Merged, String> {
    let holds_tokens = entries.iter().any(|e| e.headers.is_some());
    let existing = existing.filter(|t| !t.trim().is_empty());
    let Some(text) = existing else {
        // No file (or an empty one): everything we write is new, and nothing to remove.
        let new: Vec<(String, Value)> = entries
            .iter()
            .map(|e| (e.name.clone(), fresh(&fields(format, e))))
            .collect();
        return Ok(Merged {
            text: (!new.is_empty()).then(|| formats::new_file(format, new)),
            owned: entries.iter().map(|e| e.name.clone()).collect(),
            holds_tokens,
            notes: Vec::new(),
        });
    };

    let mut doc = Doc::parse(text, syntax(format))?;
    let path = servers_path(format);
    let mut owned = BTreeSet::new();
    let mut notes = Vec::new();
    let mut holds_tokens = false;
    let mut new = Vec::new();
    // In place first: updates and removals keep the tree; additions re-parse it.
    let servers = doc.object_at(path)?;
    // One pass over the members: looking each entry up by name would be quadratic.
    let index: std::collections::HashMap<String, _> = servers
        .iter()
        .flat_map(|s| s.properties())
        .filter_map(|p| Some((p.name()?.decoded_value().ok()?, p)))
        .collect();
    for e in entries {
        let fs = fields(format, e);
        let value = fresh(&fs);
        match index.get(&e.name).cloned() {
            None => new.push((e.name.as_str(), value)),
            Some(prop) => {
                let ours = owned_before.contains(&e.name)
                    || value_of(&prop).is_some_and(|v| {
                        v.get(url_key(format)).and_then(Value::as_str) == Some(e.url.as_str())
                    });
                if !ours {
                    notes.push(format!(
                        "server `{}` there was not written by mcp-credd and points elsewhere; left as it is (rename or remove it, or rename the server in the config)",
                        e.name
                    ));
                    continue;
                }
                update_entry(&prop, &fs, &value);
            }
        }
        holds_tokens |= e.headers.is_some();
        owned.insert(e.name.clone());
    }
    // Ours before and not now: the server left the config (an entry still configured was
    // ours before, so it is in `owned` again).
    drop(servers);
    for gone in owned_before.difference(&owned) {
        doc.remove_member_at(path, gone)?;
    }
    if !new.is_empty() {
        doc.ensure_object_at(path)?;
        let new: Vec<(String, Value)> = new.into_iter().map(|(n, v)| (n.to_string(), v)).collect();
        doc.append_members(path, &new)?;
    }
    Ok(Merged {
        text: Some(doc.text()),
        owned,
        holds_tokens,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::render::test_entry as e;

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn json_of(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    /// Found by the fuzzer: editors read the last of duplicate keys, so the last is the one
    /// to keep current, and a removal must take every copy.
    #[test]
    fn duplicate_keys_are_resolved_the_way_editors_read_them() {
        let text = r#"{"servers":{"a":{"url":"old","url":"old2","type":"http"}}}"#;
        let m = merge(
            Some(text),
            EditorFormat::Vscode,
            &[e("a", Some("T"))],
            &set(&["a"]),
        )
        .unwrap();
        let out = m.text.unwrap();
        assert_eq!(out.matches("\"url\"").count(), 1, "{out}");
        assert_eq!(json_of(&out)["servers"]["a"]["url"], "https://gw/a/mcp");
        let text = r#"{"mcpServers":{"x":{"url":"u"},"x":{"url":"v"},"mine":{}}}"#;
        let m = merge(Some(text), EditorFormat::Roo, &[], &set(&["x"])).unwrap();
        let out = m.text.unwrap();
        assert!(!out.contains("\"x\""), "{out}");
        assert!(out.contains("\"mine\""), "{out}");
    }

    #[test]
    fn nothing_to_write_creates_no_file() {
        let m = merge(None, EditorFormat::Vscode, &[], &set(&[])).unwrap();
        assert_eq!(m.text, None);
        let m = merge(Some("  \n"), EditorFormat::Vscode, &[], &set(&[])).unwrap();
        assert_eq!(m.text, None);
    }

    #[test]
    fn a_fresh_file_is_owned_entirely() {
        let m = merge(
            None,
            EditorFormat::Cursor,
            &[e("a", Some("T")), e("b", None)],
            &set(&[]),
        )
        .unwrap();
        assert_eq!(m.owned, set(&["a", "b"]));
        assert!(m.holds_tokens);
        assert_eq!(
            json_of(m.text.as_deref().unwrap()),
            json!({"mcpServers": {
                "a": {"url": "https://gw/a/mcp", "headers": {"X-Authorization": "Bearer T"}},
                "b": {"url": "https://gw/b/mcp"}
            }})
        );
    }

    #[test]
    fn keeps_other_servers_keys_and_user_choices() {
        let old = r#"{"theme": 1, "mcpServers": {"mine": {"command": "x"}, "a": {"type": "sse", "url": "old", "disabled": true, "alwaysAllow": ["t"]}}}"#;
        let m = merge(
            Some(old),
            EditorFormat::Roo,
            &[e("a", Some("N"))],
            &set(&["a"]),
        )
        .unwrap();
        let r = json_of(m.text.as_deref().unwrap());
        assert_eq!(r["theme"], 1);
        assert_eq!(r["mcpServers"]["mine"], json!({"command": "x"}));
        assert_eq!(
            r["mcpServers"]["a"],
            json!({"type": "streamable-http", "url": "https://gw/a/mcp", "disabled": true, "alwaysAllow": ["t"], "headers": {"X-Authorization": "Bearer N"}})
        );
        let keys: Vec<&String> = r["mcpServers"].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["mine", "a"]);
    }

    #[test]
    fn same_input_same_output() {
        for f in EditorFormat::ALL {
            let once = merge(None, f, &[e("a", Some("T"))], &set(&[])).unwrap();
            let twice = merge(once.text.as_deref(), f, &[e("a", Some("T"))], &once.owned).unwrap();
            assert_eq!(twice.text, once.text, "{f:?}");
            assert_eq!(twice.owned, once.owned);
        }
    }

    #[test]
    fn removes_only_what_it_owned() {
        let old = r#"{"servers": {"gone": {"url": "x"}, "mine": {"url": "y"}, "a": {"url": "https://gw/a/mcp"}}}"#;
        let m = merge(
            Some(old),
            EditorFormat::Vscode,
            &[e("a", None)],
            &set(&["gone", "a"]),
        )
        .unwrap();
        assert_eq!(
            m.text.as_deref().unwrap(),
            "{\"servers\": {\"mine\": {\"url\": \"y\"}, \"a\": {\n      \"url\": \"https://gw/a/mcp\",\n      \"type\": \"http\"\n    }}}",
            "the user's part stays as it was; our entry gets the library's layout"
        );
        assert_eq!(m.owned, set(&["a"]));
        // Not configured and not ours: stays, even with a name we might use one day.
        let m = merge(Some(old), EditorFormat::Vscode, &[], &set(&[])).unwrap();
        assert_eq!(m.text.as_deref(), Some(old));
    }

    #[test]
    fn a_users_entry_under_our_name_is_taken_over_only_if_it_points_at_our_url() {
        let old = r#"{"mcpServers": {"a": {"url": "https://elsewhere/mcp"}, "b": {"url": "https://gw/b/mcp", "x": 1}}}"#;
        let m = merge(
            Some(old),
            EditorFormat::Cursor,
            &[e("a", Some("T")), e("b", Some("T"))],
            &set(&[]),
        )
        .unwrap();
        let r = json_of(m.text.as_deref().unwrap());
        assert_eq!(
            r["mcpServers"]["a"],
            json!({"url": "https://elsewhere/mcp"})
        );
        assert_eq!(
            r["mcpServers"]["b"],
            json!({"url": "https://gw/b/mcp", "x": 1, "headers": {"X-Authorization": "Bearer T"}})
        );
        assert_eq!(m.owned, set(&["b"]));
        assert_eq!(m.notes.len(), 1);
        assert!(m.notes[0].starts_with("server `a` there was not written by mcp-credd"));
    }

    #[test]
    fn an_owned_entry_that_is_not_an_object_is_replaced() {
        let m = merge(
            Some(r#"{"servers": {"a": "?"}}"#),
            EditorFormat::Vscode,
            &[e("a", None)],
            &set(&["a"]),
        )
        .unwrap();
        assert_eq!(
            json_of(m.text.as_deref().unwrap())["servers"]["a"],
            json!({"type": "http", "url": "https://gw/a/mcp"})
        );
    }

    #[test]
    fn refuses_what_it_cannot_merge() {
        let err = |t: &str, f| merge(Some(t), f, &[e("a", None)], &set(&[])).unwrap_err();
        assert!(err("{oops", EditorFormat::Roo).starts_with("line 1, column 2: not valid JSON"));
        assert_eq!(
            err("[]", EditorFormat::Roo),
            "the top level is not a JSON object"
        );
        assert_eq!(
            err(r#"{"mcp": 3}"#, EditorFormat::VscodeLegacy),
            "`mcp` is not an object"
        );
        assert!(
            err("{\"mcpServers\": {}, // c\n}", EditorFormat::Cline).contains("strict JSON"),
            "a strict editor's file with a comment is broken for that editor"
        );
    }
}
