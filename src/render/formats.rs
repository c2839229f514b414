//! Each editor's MCP config format (REFERENCE.md §2): where its servers live in the file,
//! whether the file may hold comments, and the JSON of one remote server entry. Pure.

use std::sync::OnceLock;

use serde_json::{Map, Value, json};

use super::ServerEntry;
use crate::config::{EditorFormat, Transport};

/// What a format's parser accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Syntax {
    /// VS Code's JSON with comments and trailing commas.
    Jsonc,
    /// Plain JSON: the editor reads the file with a strict parser.
    Json,
}

/// How one key of an entry we own is kept.
#[derive(Clone, Debug, PartialEq)]
pub enum Field {
    /// Ours: set to this value on every write; `None`: the key must be absent.
    Managed(Option<Value>),
    /// Written when the entry is created; after that the user's (Roo's `disabled` toggle).
    Initial(Value),
}

/// The keys leading to the servers object.
pub fn servers_path(format: EditorFormat) -> &'static [&'static str] {
    match format {
        EditorFormat::Vscode => &["servers"],
        EditorFormat::VscodeLegacy => &["mcp", "servers"],
        EditorFormat::Roo
        | EditorFormat::Cline
        | EditorFormat::Cursor
        | EditorFormat::ClaudeCode
        | EditorFormat::Windsurf => &["mcpServers"],
    }
}

pub fn syntax(format: EditorFormat) -> Syntax {
    match format {
        // VS Code parses mcp.json (and settings.json, the legacy shape's home) as JSONC.
        EditorFormat::Vscode | EditorFormat::VscodeLegacy => Syntax::Jsonc,
        _ => Syntax::Json,
    }
}

/// The key holding the server's URL: how an entry we did not record is recognised as ours.
pub fn url_key(format: EditorFormat) -> &'static str {
    match format {
        EditorFormat::Windsurf => "serverUrl",
        _ => "url",
    }
}

/// The `type` value the format wants for a transport; `None`: the format has no `type`.
fn type_value(format: EditorFormat, t: Transport) -> Option<&'static str> {
    let sse = t == Transport::Sse;
    match format {
        // VS Code: "http" tries streamable HTTP and falls back to SSE; "sse" forces SSE.
        EditorFormat::Vscode | EditorFormat::ClaudeCode => Some(if sse { "sse" } else { "http" }),
        // Roo requires `type` next to `url`.
        EditorFormat::Roo => Some(t.as_str()),
        // Cline reads an entry without `type` as SSE.
        EditorFormat::Cline => Some(if sse { "sse" } else { "streamableHttp" }),
        EditorFormat::VscodeLegacy | EditorFormat::Cursor | EditorFormat::Windsurf => None,
    }
}

/// The command Claude Code runs for headers (`headersHelper`): this binary's `headers`.
/// Set once at start (`set_headers_helper`), since only the process knows where it is.
static HEADERS_HELPER: OnceLock<String> = OnceLock::new();

/// Sets the `headersHelper` command written into Claude Code files; first call wins.
pub fn set_headers_helper(command: String) {
    let _ = HEADERS_HELPER.set(command);
}

/// The `headersHelper` shell command line: `bin headers` with the given options, each word
/// quoted for the shell where it needs it.
pub fn helper_command(bin: &str, options: &[(&str, Option<String>)]) -> String {
    let quote = |s: &str| {
        if !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "/._-+=:@%".contains(c))
        {
            s.to_string()
        } else {
            format!("'{}'", s.replace('\'', "'\\''"))
        }
    };
    let mut cmd = format!("{} headers", quote(bin));
    for (flag, value) in options {
        if let Some(v) = value {
            cmd.push_str(&format!(" {flag} {}", quote(v)));
        }
    }
    cmd
}

pub fn headers_helper() -> &'static str {
    HEADERS_HELPER
        .get()
        .map_or("mcp-credd headers", String::as_str)
}

fn headers_value(e: &ServerEntry) -> Option<Value> {
    e.headers.as_ref().map(|h| {
        Value::Object(
            h.iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect(),
        )
    })
}

/// The keys of our entry for `e`, in the order a new entry is written.
pub fn fields(format: EditorFormat, e: &ServerEntry) -> Vec<(&'static str, Field)> {
    let mut f = Vec::new();
    if let Some(t) = type_value(format, e.transport) {
        f.push(("type", Field::Managed(Some(json!(t)))));
    }
    f.push((url_key(format), Field::Managed(Some(json!(e.url)))));
    if format == EditorFormat::ClaudeCode {
        // Project `.mcp.json` files are meant to be committed: no token in them. Claude
        // Code asks `mcp-credd headers` at each connection instead (a static `headers`
        // written before is removed).
        let helper = e.headers.as_ref().map(|_| json!(headers_helper()));
        f.push(("headersHelper", Field::Managed(helper)));
        f.push(("headers", Field::Managed(None)));
    } else {
        f.push(("headers", Field::Managed(headers_value(e))));
    }
    if format == EditorFormat::Roo {
        f.push(("disabled", Field::Initial(json!(false))));
        f.push(("alwaysAllow", Field::Initial(json!([]))));
    }
    f
}

/// A new entry: every managed key that has a value, and the initial ones.
pub fn fresh(fields: &[(&'static str, Field)]) -> Value {
    let mut m = Map::new();
    for (k, f) in fields {
        match f {
            Field::Managed(Some(v)) | Field::Initial(v) => {
                m.insert((*k).to_string(), v.clone());
            }
            Field::Managed(None) => {}
        }
    }
    Value::Object(m)
}

/// A whole new file holding `entries` (already in `fresh` form), as we write it: two-space
/// indents and a final newline, like the editors' own writers.
pub fn new_file(format: EditorFormat, entries: Vec<(String, Value)>) -> String {
    let mut v = Value::Object(entries.into_iter().collect());
    for key in servers_path(format).iter().rev() {
        let mut m = Map::new();
        m.insert((*key).to_string(), v);
        v = Value::Object(m);
    }
    let mut out = serde_json::to_string_pretty(&v).expect("JSON values serialize");
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_helper_command_quotes_what_the_shell_would_split() {
        assert_eq!(
            helper_command(
                "/usr/bin/mcp-credd",
                &[
                    ("--config", Some("/home/u/my cfg/it's.yaml".into())),
                    ("--env-file", None),
                    ("--tokens-dir", Some("/home/u/.oauth-tokens".into())),
                ]
            ),
            "/usr/bin/mcp-credd headers --config '/home/u/my cfg/it'\\''s.yaml' --tokens-dir /home/u/.oauth-tokens"
        );
        assert_eq!(helper_command("", &[]), "'' headers");
    }

    fn e(transport: Transport, headers: bool) -> ServerEntry {
        ServerEntry {
            name: "a".into(),
            url: "https://gw/a/mcp".into(),
            transport,
            headers: headers.then(|| vec![("X-Authorization".into(), "Bearer T".into())]),
        }
    }

    /// The `type` each editor accepts (REFERENCE.md §2), per transport.
    #[test]
    fn type_values_are_what_each_editor_accepts() {
        use EditorFormat::*;
        let table = [
            (Vscode, Some("http"), Some("sse")),
            (VscodeLegacy, None, None),
            (Roo, Some("streamable-http"), Some("sse")),
            (Cline, Some("streamableHttp"), Some("sse")),
            (Cursor, None, None),
            (ClaudeCode, Some("http"), Some("sse")),
            (Windsurf, None, None),
        ];
        for (f, http, sse) in table {
            for (t, want) in [(Transport::StreamableHttp, http), (Transport::Sse, sse)] {
                let v = fresh(&fields(f, &e(t, true)));
                assert_eq!(v.get("type").and_then(Value::as_str), want, "{f:?} {t:?}");
                assert_eq!(v[url_key(f)], "https://gw/a/mcp", "{f:?}");
                if f == ClaudeCode {
                    assert_eq!(v["headersHelper"], headers_helper());
                    assert!(v.get("headers").is_none(), "no token in .mcp.json");
                } else {
                    assert_eq!(v["headers"]["X-Authorization"], "Bearer T");
                }
            }
        }
    }

    #[test]
    fn no_headers_key_without_headers_and_roo_defaults() {
        let v = fresh(&fields(
            EditorFormat::Roo,
            &e(Transport::StreamableHttp, false),
        ));
        assert_eq!(
            v,
            json!({"type": "streamable-http", "url": "https://gw/a/mcp", "disabled": false, "alwaysAllow": []})
        );
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["type", "url", "disabled", "alwaysAllow"]);
        let w = fresh(&fields(EditorFormat::Windsurf, &e(Transport::Sse, false)));
        assert_eq!(w, json!({"serverUrl": "https://gw/a/mcp"}));
    }

    #[test]
    fn new_files_nest_under_the_servers_path() {
        let t = new_file(EditorFormat::VscodeLegacy, vec![("a".into(), json!({}))]);
        assert_eq!(
            t,
            "{\n  \"mcp\": {\n    \"servers\": {\n      \"a\": {}\n    }\n  }\n}\n"
        );
    }
}
