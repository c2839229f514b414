//! The reference tool's two config copies in the tokens directory: `vscode_mcp.json`
//! (`{"mcp": {"servers": ...}}`, read by agents as `config["mcp"]["servers"]`) and
//! `mcp.json` (Roo Code's `{"mcpServers": ...}`). Pure: existing text in, new text out.
//! Our servers' entries are replaced; every other key and server is kept in its order.

use serde_json::{Map, Value, json};

use super::ServerEntry;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// `vscode_mcp.json`: `{"mcp": {"servers": {NAME: {"url", "headers"}}}}`.
    VsCodeLegacy,
    /// `mcp.json`: `{"mcpServers": {NAME: {"type", "url", "headers", "disabled", "alwaysAllow"}}}`.
    Roo,
}

impl Shape {
    pub fn file_name(self) -> &'static str {
        match self {
            Shape::VsCodeLegacy => "vscode_mcp.json",
            Shape::Roo => "mcp.json",
        }
    }
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

fn entry(shape: Shape, e: &ServerEntry) -> Value {
    let mut m = Map::new();
    if shape == Shape::Roo {
        m.insert("type".into(), json!(e.transport.as_str()));
    }
    m.insert("url".into(), json!(e.url));
    if let Some(h) = headers_value(e) {
        m.insert("headers".into(), h);
    }
    if shape == Shape::Roo {
        m.insert("disabled".into(), json!(false));
        m.insert("alwaysAllow".into(), json!([]));
    }
    Value::Object(m)
}

/// Object at `key` in `obj`, created if missing; an error if it holds something else.
fn object_at<'a>(
    obj: &'a mut Map<String, Value>,
    key: &str,
    where_: &str,
) -> Result<&'a mut Map<String, Value>, String> {
    let v = obj
        .entry(key.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    v.as_object_mut()
        .ok_or_else(|| format!("`{where_}` is not an object"))
}

/// New file text for `shape`, merging our `entries` into `existing` (if any).
/// An entry the user disabled in Roo stays disabled, and their `alwaysAllow` list is kept.
pub fn merge(
    existing: Option<&str>,
    shape: Shape,
    entries: &[ServerEntry],
) -> Result<String, String> {
    let mut root = match existing.map(str::trim) {
        None | Some("") => Map::new(),
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(m)) => m,
            Ok(_) => return Err("the top level is not a JSON object".into()),
            Err(e) => return Err(format!("not valid JSON: {e}")),
        },
    };
    let servers = match shape {
        Shape::VsCodeLegacy => object_at(
            object_at(&mut root, "mcp", "mcp")?,
            "servers",
            "mcp.servers",
        )?,
        Shape::Roo => object_at(&mut root, "mcpServers", "mcpServers")?,
    };
    for e in entries {
        let mut new = entry(shape, e);
        if shape == Shape::Roo
            && let Some(Value::Object(old)) = servers.get(&e.name)
            && let Value::Object(n) = &mut new
        {
            for keep in ["disabled", "alwaysAllow"] {
                if let Some(v) = old.get(keep) {
                    n.insert(keep.into(), v.clone());
                }
            }
        }
        servers.insert(e.name.clone(), new);
    }
    let mut out =
        serde_json::to_string_pretty(&Value::Object(root)).expect("JSON values serialize");
    out.push('\n');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Transport;

    fn e(name: &str, tok: Option<&str>) -> ServerEntry {
        ServerEntry {
            name: name.into(),
            url: format!("https://gw/{name}/mcp"),
            transport: Transport::StreamableHttp,
            headers: tok.map(|t| vec![("X-Authorization".into(), format!("Bearer {t}"))]),
        }
    }

    #[test]
    fn fresh_files() {
        let v = merge(None, Shape::VsCodeLegacy, &[e("a", Some("T"))]).unwrap();
        assert_eq!(
            v,
            "{\n  \"mcp\": {\n    \"servers\": {\n      \"a\": {\n        \"url\": \"https://gw/a/mcp\",\n        \"headers\": {\n          \"X-Authorization\": \"Bearer T\"\n        }\n      }\n    }\n  }\n}\n"
        );
        let r: Value =
            serde_json::from_str(&merge(Some(""), Shape::Roo, &[e("a", None)]).unwrap()).unwrap();
        assert_eq!(
            r,
            json!({"mcpServers": {"a": {"type": "streamable-http", "url": "https://gw/a/mcp", "disabled": false, "alwaysAllow": []}}})
        );
    }

    #[test]
    fn keeps_other_servers_keys_and_user_choices() {
        let old = r#"{"theme": 1, "mcpServers": {"mine": {"command": "x"}, "a": {"type": "sse", "url": "old", "disabled": true, "alwaysAllow": ["t"]}}}"#;
        let r: Value =
            serde_json::from_str(&merge(Some(old), Shape::Roo, &[e("a", Some("N"))]).unwrap())
                .unwrap();
        assert_eq!(r["theme"], 1);
        assert_eq!(r["mcpServers"]["mine"], json!({"command": "x"}));
        assert_eq!(r["mcpServers"]["a"]["disabled"], true);
        assert_eq!(r["mcpServers"]["a"]["alwaysAllow"], json!(["t"]));
        assert_eq!(
            r["mcpServers"]["a"]["headers"]["X-Authorization"],
            "Bearer N"
        );
        let keys: Vec<&String> = r["mcpServers"].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["mine", "a"]);
    }

    #[test]
    fn same_input_same_output() {
        let once = merge(None, Shape::Roo, &[e("a", Some("T"))]).unwrap();
        assert_eq!(
            merge(Some(&once), Shape::Roo, &[e("a", Some("T"))]).unwrap(),
            once
        );
    }

    #[test]
    fn refuses_what_it_cannot_merge() {
        assert!(
            merge(Some("{oops"), Shape::Roo, &[])
                .unwrap_err()
                .starts_with("not valid JSON")
        );
        assert_eq!(
            merge(Some("[]"), Shape::Roo, &[]).unwrap_err(),
            "the top level is not a JSON object"
        );
        assert_eq!(
            merge(Some(r#"{"mcp": 3}"#), Shape::VsCodeLegacy, &[]).unwrap_err(),
            "`mcp` is not an object"
        );
    }

    #[test]
    fn debug_hides_header_values() {
        let d = format!("{:?}", e("a", Some("SECRETTOKEN")));
        assert!(
            !d.contains("SECRETTOKEN") && d.contains("X-Authorization"),
            "{d}"
        );
    }
}
