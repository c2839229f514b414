//! In-place edits of a JSON or JSONC document, never parse-and-reprint: the members we touch
//! change, and every other byte (comments, key order, indentation, blank lines, other keys)
//! stays as the user wrote it. Pure.
//!
//! The document is jsonc-parser's concrete syntax tree, which holds every byte. Values are
//! replaced through its API. Members are removed and added by our own rules, because the
//! library's also reflow neighbouring whitespace (an added member drops blank lines next to
//! the braces and spreads a one-line object over lines):
//! - removing a member takes its comma, the comments on its own line, and the line itself
//!   when the member had it alone; nothing else;
//! - adding a member splices its text after the last member (in that member's indentation,
//!   with a comma as the object's style wants) and parses the result again.

use jsonc_parser::ParseOptions;
use jsonc_parser::cst::{
    CstInputValue, CstNewlineKind, CstNode, CstObject, CstObjectProp, CstRootNode,
};
use serde_json::Value;

use super::formats::{Field, Syntax};

/// A UTF-8 byte order mark: some Windows editors write one; the parser rejects it, so it is
/// set aside and put back.
const BOM: char = '\u{feff}';

fn options(syntax: Syntax) -> ParseOptions {
    // Only what the editor's own parser accepts: VS Code's JSONC allows comments and
    // trailing commas, nothing else (no single quotes, no missing commas, no hex).
    let jsonc = syntax == Syntax::Jsonc;
    ParseOptions {
        allow_comments: jsonc,
        allow_trailing_commas: jsonc,
        allow_loose_object_property_names: false,
        allow_missing_commas: false,
        allow_single_quoted_strings: false,
        allow_hexadecimal_numbers: false,
        allow_unary_plus_numbers: false,
        allow_bare_decimal_point_numbers: false,
        allow_non_finite_numbers: false,
        allow_extended_string_escapes: false,
    }
}

/// A parsed document, edited in place.
pub struct Doc {
    // Every node taken from the tree must be used while this root lives (the tree's parent
    // links are weak).
    root: CstRootNode,
    syntax: Syntax,
    bom: bool,
}

impl Doc {
    /// Parses `text`; the error says where and why, for the user to fix.
    pub fn parse(text: &str, syntax: Syntax) -> Result<Doc, String> {
        let (bom, body) = match text.strip_prefix(BOM) {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let what = match syntax {
            Syntax::Jsonc => "JSON with comments",
            Syntax::Json => "JSON (this editor reads strict JSON: no comments or trailing commas)",
        };
        let located = |e: jsonc_parser::errors::ParseError| {
            format!(
                "line {}, column {}: not valid {what}: {}",
                e.line_display(),
                e.column_display(),
                e.kind()
            )
        };
        // jsonc-parser does not enforce `allow_comments: false` while it keeps comments as
        // tokens for the tree, so the text is checked once without them first.
        jsonc_parser::parse_to_ast(body, &Default::default(), &options(syntax)).map_err(located)?;
        let root = CstRootNode::parse(body, &options(syntax)).map_err(located)?;
        match root.value() {
            None => {}
            Some(v) if v.as_object().is_some() => {}
            Some(_) => return Err("the top level is not a JSON object".into()),
        }
        Ok(Doc { root, syntax, bom })
    }

    /// The object at `path` (`["mcp", "servers"]`); `Ok(None)` if a key on the way is
    /// missing, an error if something other than an object is in the way.
    pub fn object_at(&self, path: &[&str]) -> Result<Option<CstObject>, String> {
        let Some(mut obj) = self.root.object_value() else {
            return Ok(None);
        };
        for (i, key) in path.iter().enumerate() {
            obj = match obj.get(key) {
                None => return Ok(None),
                Some(prop) => match prop.value().and_then(|v| v.as_object()) {
                    Some(o) => o,
                    None => return Err(format!("`{}` is not an object", path[..=i].join("."))),
                },
            };
        }
        Ok(Some(obj))
    }

    /// Makes sure the object at `path` exists, adding what is missing.
    pub fn ensure_object_at(&mut self, path: &[&str]) -> Result<(), String> {
        self.reparse(self.root.to_string())?;
        if self.root.value().is_none() {
            // Only comments (or nothing): the object goes after them.
            let body = self.root.to_string();
            let nl = self.newline();
            let sep = if body.is_empty() || body.ends_with('\n') {
                ""
            } else {
                nl
            };
            self.reparse(format!("{body}{sep}{{}}{nl}"))?;
        }
        for i in 0..path.len() {
            if self.object_at(&path[..=i])?.is_none() {
                self.append_member(&path[..i], path[i], &Value::Object(Default::default()))?;
            }
        }
        Ok(())
    }

    /// Adds `"name": value` as the last member of the object at `path`, which must exist.
    pub fn append_member(
        &mut self,
        path: &[&str],
        name: &str,
        value: &Value,
    ) -> Result<(), String> {
        self.append_members(path, &[(name.to_string(), value.clone())])
    }

    /// Adds members at the end of the object at `path`, in order, with one re-parse for
    /// all of them (a re-parse per member would make large files quadratic).
    pub fn append_members(
        &mut self,
        path: &[&str],
        items: &[(String, Value)],
    ) -> Result<(), String> {
        if items.is_empty() {
            return Ok(());
        }
        let obj = self
            .object_at(path)?
            .ok_or_else(|| format!("`{}` is missing", path.join(".")))?;
        let body = self.root.to_string();
        let nl = self.newline();
        let unit = self
            .root
            .single_indent_text()
            .unwrap_or_else(|| "  ".to_string());
        let key_of = |name: &str| serde_json::to_string(name).expect("strings serialize");
        // Every member inline (`"k": v`), or pretty at an indent, joined by `sep`.
        let inline_all = |sep: &str| {
            items
                .iter()
                .map(|(k, v)| format!("{}: {}", key_of(k), inline(v)))
                .collect::<Vec<_>>()
                .join(sep)
        };
        let pretty_all = |indent: &str, sep: &str| {
            items
                .iter()
                .map(|(k, v)| format!("{}: {}", key_of(k), pretty(v, indent, &unit, nl)))
                .collect::<Vec<_>>()
                .join(sep)
        };
        let obj_node: CstNode = obj.clone().into();
        let (obj_start, obj_end) = span(&obj_node);
        let brace_indent = line_indent(&body, obj_start);
        let multiline = obj.children().iter().any(CstNode::is_newline);
        let mut edits: Vec<(usize, String)> = Vec::new();
        match obj.properties().last() {
            None => {
                let (inner_start, inner_end) = (obj_start + 1, obj_end - 1);
                let inner = &body[inner_start..inner_end];
                // An empty object inside a one-line object stays on one line.
                let one_line = obj
                    .parent()
                    .and_then(|prop| prop.parent())
                    .is_some_and(|outer| !outer.children().iter().any(CstNode::is_newline));
                if one_line && inner.trim().is_empty() {
                    let member = inline_all(", ");
                    return self.reparse(format!(
                        "{}{member}{}",
                        &body[..inner_start],
                        &body[inner_end..]
                    ));
                }
                let indent = format!("{brace_indent}{unit}");
                let member = pretty_all(&indent, &format!(",{nl}{indent}"));
                if inner.trim().is_empty() {
                    // `{}` or braces around whitespace: the member on its own line between.
                    return self.reparse(format!(
                        "{}{nl}{indent}{member}{nl}{brace_indent}{}",
                        &body[..inner_start],
                        &body[inner_end..]
                    ));
                }
                // Only comments inside: the member goes after the last one.
                let last = inner_start + inner.trim_end().len();
                let close = if body[last..inner_end].contains('\n') {
                    String::new()
                } else {
                    format!("{nl}{brace_indent}")
                };
                edits.push((last, format!("{nl}{indent}{member}{close}")));
            }
            Some(last) => {
                let last_node: CstNode = last.clone().into();
                let (_, last_end) = span(&last_node);
                let comma: Option<CstNode> = last.trailing_comma().map(Into::into);
                let anchor = comma.clone().unwrap_or_else(|| last_node.clone());
                let (_, mut anchor_end) = span(&anchor);
                if multiline {
                    // Comments on the last member's line stay with it.
                    for s in anchor.next_siblings() {
                        if s.is_whitespace() {
                            continue;
                        }
                        if s.is_comment() {
                            anchor_end = span(&s).1;
                            continue;
                        }
                        break;
                    }
                    let indent = own_line_indent(&last_node)
                        .unwrap_or_else(|| format!("{brace_indent}{unit}"));
                    let member = pretty_all(&indent, &format!(",{nl}{indent}"));
                    match comma {
                        // Trailing-comma style: ours gets one too.
                        Some(_) => edits.push((anchor_end, format!("{nl}{indent}{member},"))),
                        None => {
                            edits.push((anchor_end, format!("{nl}{indent}{member}")));
                            edits.push((last_end, ",".into()));
                        }
                    }
                } else {
                    // A one-line object stays on one line.
                    let member = inline_all(", ");
                    match comma {
                        Some(_) => edits.push((anchor_end, format!(" {member},"))),
                        None => edits.push((last_end, format!(", {member}"))),
                    }
                }
            }
        }
        // Apply from the end so that earlier offsets stay valid.
        edits.sort_by_key(|e| std::cmp::Reverse(e.0));
        let mut text = body;
        for (at, s) in edits {
            text.insert_str(at, &s);
        }
        self.reparse(text)
    }

    /// Removes the member `name` of the object at `path`, if there is one (see
    /// `remove_member`). Returns whether it was there.
    pub fn remove_member_at(&mut self, path: &[&str], name: &str) -> Result<bool, String> {
        // A fresh tree: members emptied by an earlier removal are gone from it. Every
        // member of that name goes: with duplicates, editors read the last one.
        let mut removed = false;
        loop {
            self.reparse(self.root.to_string())?;
            match self.object_at(path)?.and_then(|o| o.get(name)) {
                Some(prop) => {
                    remove_member(&prop);
                    removed = true;
                }
                None => return Ok(removed),
            }
        }
    }

    fn newline(&self) -> &'static str {
        match self.root.newline_kind() {
            CstNewlineKind::CarriageReturnLineFeed => "\r\n",
            CstNewlineKind::CarriageReturn => "\r",
            CstNewlineKind::LineFeed => "\n",
        }
    }

    fn reparse(&mut self, body: String) -> Result<(), String> {
        self.root = CstRootNode::parse(&body, &options(self.syntax)).map_err(|e| {
            format!("internal error: the edited file would not parse ({e}); left untouched")
        })?;
        Ok(())
    }

    pub fn text(&self) -> String {
        let body = self.root.to_string();
        if self.bom {
            format!("{BOM}{body}")
        } else {
            body
        }
    }
}

/// Byte offsets of `node` in the document.
fn span(node: &CstNode) -> (usize, usize) {
    let mut start = 0;
    let mut cur = node.clone();
    loop {
        start += cur
            .previous_siblings()
            .map(|s| s.to_string().len())
            .sum::<usize>();
        match cur.parent() {
            Some(p) => cur = p.into(),
            None => break,
        }
    }
    (start, start + node.to_string().len())
}

/// The indentation of the line `pos` is on.
fn line_indent(text: &str, pos: usize) -> String {
    let line_start = text[..pos].rfind(['\n', '\r']).map_or(0, |i| i + 1);
    text[line_start..]
        .chars()
        .take_while(|c| *c == ' ' || *c == '\t')
        .collect()
}

/// The whitespace before `node` if it starts its line; `None` if something precedes it.
fn own_line_indent(node: &CstNode) -> Option<String> {
    let mut indent = String::new();
    for s in node.previous_siblings() {
        if s.is_newline() {
            return Some(indent);
        }
        if !s.is_whitespace() {
            return None;
        }
        indent.insert_str(0, &s.to_string());
    }
    None
}

/// `v` over several lines, each after the first starting with `indent`.
fn pretty(v: &Value, indent: &str, unit: &str, nl: &str) -> String {
    use serde::Serialize;
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(unit.as_bytes());
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    v.serialize(&mut ser).expect("JSON values serialize");
    let text = String::from_utf8(buf).expect("serde_json writes UTF-8");
    text.replace('\n', &format!("{nl}{indent}"))
}

/// `v` on one line, spaced as people write it.
fn inline(v: &Value) -> String {
    match v {
        Value::Array(a) => format!("[{}]", a.iter().map(inline).collect::<Vec<_>>().join(", ")),
        Value::Object(m) if m.is_empty() => "{}".into(),
        Value::Object(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!("{}: {}", Value::String(k.clone()), inline(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}

/// Trivia, or a member emptied by `remove_member` (it prints as nothing).
fn is_gap(n: &CstNode) -> bool {
    n.is_trivia() || n.to_string().is_empty()
}

/// Removes the member `prop` (see the module comment for what goes with it). The tree is
/// left with an empty member in its place: use `Doc::remove_member_at` for more than one.
pub fn remove_member(prop: &CstObjectProp) {
    let node: CstNode = prop.clone().into();
    let parent = prop.parent();
    let comma: Option<CstNode> = prop.trailing_comma().map(Into::into);
    let mut doomed: Vec<CstNode> = Vec::new();

    // What is before it on its line, back to the previous token or the line's start.
    let mut before = Vec::new();
    let mut newline_before = None;
    for s in node.previous_siblings() {
        if s.is_newline() {
            newline_before = Some(s);
            break;
        }
        if !is_gap(&s) {
            break;
        }
        before.push(s);
    }
    // The previous member's comma, or the opening brace.
    let previous_token = node.previous_siblings().find(|s| !is_gap(s));
    let own_line = newline_before.is_some();

    // What follows the member (or its comma) on the same line.
    let anchor = comma.clone().unwrap_or_else(|| node.clone());
    let mut after = Vec::new();
    let mut line_ends = false;
    let mut newline_after = None;
    for s in anchor.next_siblings() {
        if s.is_newline() {
            line_ends = true;
            newline_after = Some(s);
            break;
        }
        if s.is_whitespace() || s.is_comment() || is_gap(&s) {
            after.push(s);
            continue;
        }
        break;
    }

    match &comma {
        Some(c) => {
            // Between the member and its comma (whitespace, comments), and the comma.
            for s in node.next_siblings() {
                let is_comma = s.child_index() == c.child_index();
                doomed.push(s);
                if is_comma {
                    break;
                }
            }
            if line_ends {
                // Its comments and, when it had the line to itself, the line.
                doomed.extend(after);
                doomed.extend(before);
                if own_line {
                    doomed.extend(newline_after);
                }
            } else {
                // Another member follows on the line: take the spaces up to it.
                doomed.extend(after.into_iter().take_while(CstNode::is_whitespace));
            }
        }
        None => {
            // The last member: the previous member's comma goes (a trailing comma stays,
            // as there is none here).
            doomed.extend(previous_token.filter(CstNode::is_comma));
            doomed.extend(before);
            if own_line {
                doomed.extend(newline_before);
                doomed.extend(after);
            } else {
                // Up to its last comment: the space before a `}` on the line is the object's.
                let last_comment = after.iter().rposition(CstNode::is_comment);
                doomed.extend(after.into_iter().take(last_comment.map_or(0, |i| i + 1)));
            }
        }
    }
    // All of these are leaves. Comments first, while their neighbours are still there:
    // removing a line comment also takes the whitespace before it, doomed anyway.
    doomed.sort_by_key(|n| !n.is_comment());
    for n in doomed {
        n.remove();
    }
    // The member itself is emptied rather than removed: the library's removal of a member
    // also edits its neighbours (commas, whitespace). Its value goes first, so that the
    // value's own removal only finds the member's parts around it. The empty member
    // prints as nothing; `Doc` re-parses before it adds anything.
    for c in node.children().into_iter().rev() {
        c.remove();
    }
    // An object left with nothing but whitespace between its braces becomes `{}`.
    if let Some(p) = parent {
        let children = p.children();
        let inner = &children[1..children.len().saturating_sub(1)];
        let blank = |c: &CstNode| c.is_whitespace() || c.is_newline() || c.to_string().is_empty();
        if inner.iter().all(blank) {
            for c in inner.iter().filter(|c| c.is_whitespace() || c.is_newline()) {
                c.clone().remove();
            }
        }
    }
}

/// A member's value as plain JSON (for comparing and recognising entries).
pub fn value_of(prop: &CstObjectProp) -> Option<Value> {
    prop.value().and_then(|v| v.to_serde_value())
}

pub fn to_input(v: &Value) -> CstInputValue {
    match v {
        Value::Null => CstInputValue::Null,
        Value::Bool(b) => CstInputValue::Bool(*b),
        Value::Number(n) => CstInputValue::Number(n.to_string()),
        Value::String(s) => CstInputValue::String(s.clone()),
        Value::Array(a) => CstInputValue::Array(a.iter().map(to_input).collect()),
        Value::Object(m) => {
            CstInputValue::Object(m.iter().map(|(k, v)| (k.clone(), to_input(v))).collect())
        }
    }
}

/// Brings our entry `prop` in line with `fields`, touching only keys whose value differs.
/// The user's own keys in it, and the initial keys once written, are left alone. An entry
/// that is not an object is replaced by `fresh`.
pub fn update_entry(prop: &CstObjectProp, fields: &[(&'static str, Field)], fresh: &Value) {
    let Some(obj) = prop.value().and_then(|v| v.as_object()) else {
        prop.set_value(to_input(fresh));
        return;
    };
    let mut remove = Vec::new();
    for (key, field) in fields {
        let Field::Managed(want) = field else {
            continue;
        };
        // A key written twice in our entry: editors read the last, so that is the one we
        // keep current; the earlier copies go.
        let mut same: Vec<CstObjectProp> = obj
            .properties()
            .into_iter()
            .filter(|p| p.name().and_then(|n| n.decoded_value().ok()).as_deref() == Some(*key))
            .collect();
        let last = same.pop();
        remove.extend(same);
        match (last, want) {
            (Some(p), Some(w)) => {
                if value_of(&p).as_ref() != Some(w) {
                    p.set_value(to_input(w));
                }
            }
            (Some(p), None) => remove.push(p),
            // Inside our own entry the library's append (and its reflow) is fine.
            (None, Some(w)) => {
                obj.append(key, to_input(w));
            }
            (None, None) => {}
        }
    }
    // Last: the library's append must not meet an emptied member.
    for p in remove {
        remove_member(&p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn servers(doc: &Doc) -> CstObject {
        doc.object_at(&["servers"]).unwrap().unwrap()
    }

    fn removed(text: &str, name: &str) -> String {
        let doc = Doc::parse(text, Syntax::Jsonc).unwrap();
        remove_member(&servers(&doc).get(name).unwrap());
        let out = doc.text();
        Doc::parse(&out, Syntax::Jsonc).unwrap_or_else(|e| panic!("{e}\n{out}"));
        out
    }

    fn appended(text: &str, name: &str) -> String {
        let mut doc = Doc::parse(text, Syntax::Jsonc).unwrap();
        doc.ensure_object_at(&["servers"]).unwrap();
        doc.append_member(&["servers"], name, &json!({"url": "u"}))
            .unwrap();
        doc.text()
    }

    #[test]
    fn removal_takes_the_line_and_nothing_else() {
        let cases = [
            // Middle member with a comment on its line; the comment above it stays.
            (
                "{\"servers\": {\n  \"x\": 1,\n  // above\n  \"P\": 2, // on P\n\n  \"y\": 3\n}}",
                "{\"servers\": {\n  \"x\": 1,\n  // above\n\n  \"y\": 3\n}}",
            ),
            // Last member: the comma before it goes, the comment after x stays.
            (
                "{\"servers\": {\n  \"x\": 1, // on x\n\n  \"P\": 2 // on P\n}}",
                "{\"servers\": {\n  \"x\": 1 // on x\n\n}}",
            ),
            // Trailing-comma style keeps its trailing comma.
            (
                "{\"servers\": {\n\t\"x\": 1,\n\t\"P\": 2,\n}}",
                "{\"servers\": {\n\t\"x\": 1,\n}}",
            ),
            // One line, in every position.
            (
                "{\"servers\": { \"P\": 2, \"x\": 1 }}",
                "{\"servers\": { \"x\": 1 }}",
            ),
            (
                "{\"servers\": { \"x\": 1, \"P\": 2 }}",
                "{\"servers\": { \"x\": 1 }}",
            ),
            (
                "{\"servers\": {\"x\": 1, \"P\": 2, \"y\": 3}}",
                "{\"servers\": {\"x\": 1, \"y\": 3}}",
            ),
            // The only member: the object closes up.
            (
                "{\n  \"servers\": {\n    \"P\": {\n      \"a\": 1\n    }\n  }\n}\n",
                "{\n  \"servers\": {}\n}\n",
            ),
            // ... unless a comment is left inside.
            (
                "{\"servers\": {\n  // none\n  \"P\": 2\n}}",
                "{\"servers\": {\n  // none\n}}",
            ),
            // Two members on one line of a multi-line object.
            (
                "{\"servers\": {\n  \"x\": 1, \"P\": 2,\n  \"y\": 3\n}}",
                "{\"servers\": {\n  \"x\": 1,\n  \"y\": 3\n}}",
            ),
            // CRLF.
            (
                "{\r\n  \"servers\": {\r\n    \"x\": 1,\r\n    \"P\": 2\r\n  }\r\n}\r\n",
                "{\r\n  \"servers\": {\r\n    \"x\": 1\r\n  }\r\n}\r\n",
            ),
        ];
        for (before, want) in cases {
            assert_eq!(removed(before, "P"), want, "from:\n{before}");
        }
    }

    #[test]
    fn appending_keeps_the_objects_style() {
        let cases = [
            // After the last member, in its indentation, past its comment.
            (
                "{\n  \"servers\": {\n\n    \"x\": 1 // on x\n\n  }\n}\n",
                "{\n  \"servers\": {\n\n    \"x\": 1, // on x\n    \"new\": {\n      \"url\": \"u\"\n    }\n\n  }\n}\n",
            ),
            // Trailing-comma style, tabs.
            (
                "{\n\t\"servers\": {\n\t\t\"x\": 1,\n\t},\n}",
                "{\n\t\"servers\": {\n\t\t\"x\": 1,\n\t\t\"new\": {\n\t\t\t\"url\": \"u\"\n\t\t},\n\t},\n}",
            ),
            // One line stays one line.
            (
                "{\"servers\": {\"x\": 1}, \"y\": 2}",
                "{\"servers\": {\"x\": 1, \"new\": {\"url\": \"u\"}}, \"y\": 2}",
            ),
            // Empty object; a missing one is created after the last key.
            (
                "{\n  \"servers\": {}\n}",
                "{\n  \"servers\": {\n    \"new\": {\n      \"url\": \"u\"\n    }\n  }\n}",
            ),
            (
                "{\n    \"inputs\": [] // mine\n}\n",
                "{\n    \"inputs\": [], // mine\n    \"servers\": {\n        \"new\": {\n            \"url\": \"u\"\n        }\n    }\n}\n",
            ),
            // Only a comment inside.
            (
                "{\"servers\": {\n  // none yet\n}}",
                "{\"servers\": {\n  // none yet\n  \"new\": {\n    \"url\": \"u\"\n  }\n}}",
            ),
            // A file of comments only, and CRLF.
            (
                "// mine\r\n",
                "// mine\r\n{\r\n  \"servers\": {\r\n    \"new\": {\r\n      \"url\": \"u\"\r\n    }\r\n  }\r\n}\r\n",
            ),
        ];
        for (before, want) in cases {
            assert_eq!(appended(before, "new"), want, "from:\n{before}");
        }
    }

    #[test]
    fn unchanged_values_leave_the_text_alone() {
        let text = "// c\n{\n  \"servers\": { \"a\": {\"url\": \"u\" , /* x */ \"headers\": {\"h\": \"1\"}} },\n}\n";
        let doc = Doc::parse(text, Syntax::Jsonc).unwrap();
        let prop = servers(&doc).get("a").unwrap();
        let fields = [
            ("url", Field::Managed(Some(json!("u")))),
            ("headers", Field::Managed(Some(json!({"h": "1"})))),
        ];
        update_entry(&prop, &fields, &json!({}));
        assert_eq!(doc.text(), text);
    }

    #[test]
    fn only_changed_keys_are_replaced() {
        let text = "{\n  \"servers\": {\n    \"a\": {\n      // mine\n      \"url\": \"u\",\n      \"dev\": true,\n      \"headers\": {\"h\": \"1\"}\n    }\n  }\n}\n";
        let doc = Doc::parse(text, Syntax::Jsonc).unwrap();
        let prop = servers(&doc).get("a").unwrap();
        let fields = [
            ("type", Field::Managed(Some(json!("http")))),
            ("url", Field::Managed(Some(json!("u")))),
            ("headers", Field::Managed(Some(json!({"h": "2"})))),
        ];
        update_entry(&prop, &fields, &json!({}));
        assert_eq!(
            doc.text(),
            "{\n  \"servers\": {\n    \"a\": {\n      // mine\n      \"url\": \"u\",\n      \"dev\": true,\n      \"headers\": {\n        \"h\": \"2\"\n      },\n      \"type\": \"http\"\n    }\n  }\n}\n"
        );
        // Without headers, the key goes.
        update_entry(&prop, &[("headers", Field::Managed(None))], &json!({}));
        assert_eq!(
            doc.text(),
            "{\n  \"servers\": {\n    \"a\": {\n      // mine\n      \"url\": \"u\",\n      \"dev\": true,\n      \"type\": \"http\"\n    }\n  }\n}\n"
        );
    }

    #[test]
    fn object_at_finds_or_refuses() {
        let mut doc = Doc::parse("{\"x\": 1}", Syntax::Json).unwrap();
        assert!(doc.object_at(&["mcp", "servers"]).unwrap().is_none());
        doc.ensure_object_at(&["mcp", "servers"]).unwrap();
        assert_eq!(doc.text(), "{\"x\": 1, \"mcp\": {\"servers\": {}}}");
        let doc = Doc::parse("{\"mcp\": {\"servers\": []}}", Syntax::Json).unwrap();
        assert_eq!(
            doc.object_at(&["mcp", "servers"]).err().unwrap(),
            "`mcp.servers` is not an object"
        );
    }

    #[test]
    fn parse_errors_say_where_and_follow_the_editor() {
        assert_eq!(
            Doc::parse("{\n  \"a\": 1 \"b\": 2\n}", Syntax::Jsonc)
                .err()
                .unwrap(),
            "line 2, column 9: not valid JSON with comments: Expected comma"
        );
        let e = Doc::parse("{\"a\": 1,}", Syntax::Json).err().unwrap();
        assert_eq!(
            e,
            "line 1, column 8: not valid JSON (this editor reads strict JSON: no comments or trailing commas): Trailing commas are not allowed"
        );
        let e = Doc::parse("{\"a\": 1} // c\n", Syntax::Json).err().unwrap();
        assert!(e.starts_with("line 1, column 10: not valid JSON"), "{e}");
        assert!(e.ends_with("Comments are not allowed"), "{e}");
        assert!(Doc::parse("{\"a\": 1,}", Syntax::Jsonc).is_ok());
        assert_eq!(
            Doc::parse("[1]", Syntax::Json).err().unwrap(),
            "the top level is not a JSON object"
        );
        assert!(Doc::parse("{'a': 1}", Syntax::Jsonc).is_err());
    }

    #[test]
    fn a_byte_order_mark_is_kept() {
        let text = "\u{feff}{\"servers\": {}}";
        let doc = Doc::parse(text, Syntax::Jsonc).unwrap();
        assert_eq!(doc.text(), text);
    }
}
