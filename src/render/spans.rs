//! The fast path of the merge: one scan of the file into byte spans, the changed values
//! computed from it, and all edits applied in one pass over the text. Pure.
//!
//! It covers what a refresh does to a file it wrote before: our entries are all there and
//! only values of keys we manage change (a new token in `headers`, a new URL). Anything
//! else (an entry to add or remove, a key to add to or remove from an entry, duplicate
//! keys, a file the scanner does not accept) makes it decline, and the merge runs on the
//! concrete syntax tree (`jsonc::Doc`) instead. When it does not decline, its text is the
//! one the tree-based merge would produce, byte for byte: a replaced value is laid out
//! with the rules the tree library uses for a set value (indentation from the enclosing
//! members, the file's newline, trailing commas as the old value had them).
//! `tests/merge_props.rs` checks the two against each other on generated files.
//!
//! The scanner accepts a subset of what the editors' parsers (and jsonc-parser) accept:
//! RFC 8259 JSON, plus comments and trailing commas for JSONC. Anything outside it
//! (control characters in strings, lone surrogates, odd whitespace, mixed newlines) is
//! left to the tree path, which gives the precise error when there is one.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};

use serde_json::Value;

use super::ServerEntry;
use super::formats::{Field, Syntax, fields, servers_path, syntax, url_key};
use super::merge::Merged;
use crate::config::EditorFormat;

/// Deeper nesting than this is left to the tree path.
const MAX_DEPTH: usize = 64;

/// A value's kind and span. Containers point into `Scan::nodes`.
#[derive(Clone, Copy, Debug)]
struct Val {
    kind: Kind,
    start: usize,
    end: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Str,
    Num,
    True,
    False,
    Null,
    Obj(usize),
    Arr(usize),
}

/// An object member: the key's span (with quotes), its value, and the indentation the
/// tree library sees for it (the whitespace right after the last line break before the
/// key; `None` when the key does not start its line).
#[derive(Clone, Copy, Debug)]
struct Member {
    key: (usize, usize),
    value: Val,
    indent: Option<(usize, usize)>,
}

/// An object or array: its items (members or elements), whether spaces or tabs sit
/// directly between its tokens, and whether its last item has a trailing comma.
#[derive(Clone, Copy, Debug)]
struct Node {
    items: (usize, usize),
    has_ws: bool,
    last_comma: bool,
}

/// One scan of a document.
struct Scan<'a> {
    text: &'a str,
    members: Vec<Member>,
    elems: Vec<Val>,
    nodes: Vec<Node>,
    root: Val,
    /// The indentation of the root value (whitespace after the last line break before it,
    /// or at the very start).
    root_indent: Option<(usize, usize)>,
    newline: &'static str,
}

/// What the scanner saw between two tokens.
#[derive(Default)]
struct Gap {
    has_ws: bool,
    saw_newline: bool,
    after_newline: bool,
    indent: Option<(usize, usize)>,
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
    jsonc: bool,
    newline: Option<&'static str>,
    members: Vec<Member>,
    elems: Vec<Val>,
    nodes: Vec<Node>,
    depth: usize,
}

/// Not accepted by the scanner: the tree path decides.
struct Decline;

type Res<T> = Result<T, Decline>;

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn saw_newline(&mut self, kind: &'static str) -> Res<()> {
        match self.newline {
            None => self.newline = Some(kind),
            Some(k) if k == kind => {}
            Some(_) => return Err(Decline),
        }
        Ok(())
    }

    /// Skips whitespace, line breaks and (JSONC) comments.
    fn trivia(&mut self, at_start: bool) -> Res<Gap> {
        let mut g = Gap {
            after_newline: at_start,
            saw_newline: at_start,
            ..Gap::default()
        };
        while let Some(c) = self.peek() {
            match c {
                b' ' | b'\t' => {
                    let s = self.i;
                    while matches!(self.peek(), Some(b' ' | b'\t')) {
                        self.i += 1;
                    }
                    g.has_ws = true;
                    if g.after_newline {
                        g.indent = Some((s, self.i));
                    }
                    g.after_newline = false;
                }
                b'\n' | b'\r' => {
                    if c == b'\r' {
                        if self.b.get(self.i + 1) != Some(&b'\n') {
                            return Err(Decline);
                        }
                        self.saw_newline("\r\n")?;
                        self.i += 2;
                    } else {
                        self.saw_newline("\n")?;
                        self.i += 1;
                    }
                    g.saw_newline = true;
                    g.after_newline = true;
                    g.indent = None;
                }
                b'/' if self.jsonc => {
                    match self.b.get(self.i + 1) {
                        Some(b'/') => {
                            self.i += 2;
                            while !matches!(self.peek(), None | Some(b'\n' | b'\r')) {
                                self.i += 1;
                            }
                        }
                        Some(b'*') => {
                            let rest = &self.b[self.i + 2..];
                            let end = rest.windows(2).position(|w| w == b"*/").ok_or(Decline)?;
                            self.i += 2 + end + 2;
                        }
                        _ => return Err(Decline),
                    }
                    g.after_newline = false;
                }
                _ => break,
            }
        }
        Ok(g)
    }

    fn expect(&mut self, c: u8) -> Res<()> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(Decline)
        }
    }

    fn value(&mut self) -> Res<Val> {
        let start = self.i;
        let kind = match self.peek().ok_or(Decline)? {
            b'{' => Kind::Obj(self.object()?),
            b'[' => Kind::Arr(self.array()?),
            b'"' => {
                self.string()?;
                Kind::Str
            }
            b'-' | b'0'..=b'9' => {
                self.number()?;
                Kind::Num
            }
            b't' => self.word(b"true", Kind::True)?,
            b'f' => self.word(b"false", Kind::False)?,
            b'n' => self.word(b"null", Kind::Null)?,
            _ => return Err(Decline),
        };
        Ok(Val {
            kind,
            start,
            end: self.i,
        })
    }

    fn word(&mut self, w: &[u8], kind: Kind) -> Res<Kind> {
        if !self.b[self.i..].starts_with(w) {
            return Err(Decline);
        }
        self.i += w.len();
        if self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80)
        {
            return Err(Decline);
        }
        Ok(kind)
    }

    /// RFC 8259 numbers only.
    fn number(&mut self) -> Res<()> {
        let digits = |s: &mut Self| {
            let from = s.i;
            while s.peek().is_some_and(|c| c.is_ascii_digit()) {
                s.i += 1;
            }
            s.i - from
        };
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                digits(self);
            }
            _ => return Err(Decline),
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if digits(self) == 0 {
                return Err(Decline);
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if digits(self) == 0 {
                return Err(Decline);
            }
        }
        if self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'_' || c >= 0x80)
        {
            return Err(Decline);
        }
        Ok(())
    }

    /// A double-quoted string: standard escapes, `\u` outside the surrogates, no control
    /// characters.
    fn string(&mut self) -> Res<()> {
        self.i += 1;
        loop {
            // Tokens make up most of the text: jump to the next quote or backslash, and
            // check the run in between for control characters in one vectorizable pass.
            let rest = &self.b[self.i..];
            let n = memchr::memchr2(b'"', b'\\', rest).ok_or(Decline)?;
            if rest[..n].iter().fold(false, |bad, &c| bad | (c < 0x20)) {
                return Err(Decline);
            }
            self.i += n;
            let c = self.b[self.i];
            self.i += 1;
            match c {
                b'"' => return Ok(()),
                b'\\' => {
                    let e = self.peek().ok_or(Decline)?;
                    self.i += 1;
                    match e {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                        b'u' => {
                            let hex = self.b.get(self.i..self.i + 4).ok_or(Decline)?;
                            let hex = std::str::from_utf8(hex).map_err(|_| Decline)?;
                            let n = u32::from_str_radix(hex, 16).map_err(|_| Decline)?;
                            if !hex.bytes().all(|h| h.is_ascii_hexdigit())
                                || (0xd800..=0xdfff).contains(&n)
                            {
                                return Err(Decline);
                            }
                            self.i += 4;
                        }
                        _ => return Err(Decline),
                    }
                }
                _ => unreachable!("memchr2 stops only at a quote or a backslash"),
            }
        }
    }

    fn enter(&mut self) -> Res<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Decline);
        }
        self.i += 1;
        Ok(())
    }

    fn object(&mut self) -> Res<usize> {
        self.enter()?;
        let mut items = Vec::new();
        let mut has_ws = false;
        let mut last_comma = false;
        let mut gap = self.trivia(false)?;
        has_ws |= gap.has_ws;
        loop {
            match self.peek() {
                Some(b'}') => {
                    self.i += 1;
                    break;
                }
                Some(b'"') => {
                    let ks = self.i;
                    self.string()?;
                    let key = (ks, self.i);
                    self.trivia(false)?;
                    self.expect(b':')?;
                    self.trivia(false)?;
                    let value = self.value()?;
                    items.push(Member {
                        key,
                        value,
                        indent: if gap.saw_newline { gap.indent } else { None },
                    });
                    let after = self.trivia(false)?;
                    has_ws |= after.has_ws;
                    match self.peek() {
                        Some(b',') => {
                            self.i += 1;
                            gap = self.trivia(false)?;
                            has_ws |= gap.has_ws;
                            if self.peek() == Some(b'}') {
                                if !self.jsonc {
                                    return Err(Decline);
                                }
                                last_comma = true;
                                self.i += 1;
                                break;
                            }
                        }
                        Some(b'}') => {
                            self.i += 1;
                            break;
                        }
                        _ => return Err(Decline),
                    }
                }
                _ => return Err(Decline),
            }
        }
        self.depth -= 1;
        let from = self.members.len();
        self.members.extend(items);
        self.nodes.push(Node {
            items: (from, self.members.len()),
            has_ws,
            last_comma,
        });
        Ok(self.nodes.len() - 1)
    }

    fn array(&mut self) -> Res<usize> {
        self.enter()?;
        let mut items = Vec::new();
        let mut has_ws = false;
        let mut last_comma = false;
        has_ws |= self.trivia(false)?.has_ws;
        if self.peek() == Some(b']') {
            self.i += 1;
        } else {
            loop {
                items.push(self.value()?);
                has_ws |= self.trivia(false)?.has_ws;
                match self.peek() {
                    Some(b',') => {
                        self.i += 1;
                        has_ws |= self.trivia(false)?.has_ws;
                        if self.peek() == Some(b']') {
                            if !self.jsonc {
                                return Err(Decline);
                            }
                            last_comma = true;
                            self.i += 1;
                            break;
                        }
                    }
                    Some(b']') => {
                        self.i += 1;
                        break;
                    }
                    _ => return Err(Decline),
                }
            }
        }
        self.depth -= 1;
        let from = self.elems.len();
        self.elems.extend(items);
        self.nodes.push(Node {
            items: (from, self.elems.len()),
            has_ws,
            last_comma,
        });
        Ok(self.nodes.len() - 1)
    }
}

impl<'a> Scan<'a> {
    /// Scans `text` (without a byte order mark); `None` if the scanner does not accept it
    /// or the top level is not an object.
    fn new(text: &'a str, syntax: Syntax) -> Option<Scan<'a>> {
        let mut s = Scanner {
            b: text.as_bytes(),
            i: 0,
            jsonc: syntax == Syntax::Jsonc,
            newline: None,
            members: Vec::new(),
            elems: Vec::new(),
            nodes: Vec::new(),
            depth: 0,
        };
        let lead = s.trivia(true).ok()?;
        let root = s.value().ok()?;
        s.trivia(false).ok()?;
        if s.i != s.b.len() || !matches!(root.kind, Kind::Obj(_)) {
            return None;
        }
        Some(Scan {
            text,
            members: s.members,
            elems: s.elems,
            nodes: s.nodes,
            root,
            root_indent: lead.indent,
            newline: s.newline.unwrap_or("\n"),
        })
    }

    fn members_of(&self, node: usize) -> &[Member] {
        let (a, b) = self.nodes[node].items;
        &self.members[a..b]
    }

    fn elems_of(&self, node: usize) -> &[Val] {
        let (a, b) = self.nodes[node].items;
        &self.elems[a..b]
    }

    fn key(&self, m: &Member) -> Cow<'a, str> {
        decode(&self.text[m.key.0..m.key.1])
    }

    /// The member named `key`; `Err` when there are several (left to the tree path).
    fn get(&self, node: usize, key: &str) -> Res<Option<&Member>> {
        let mut found = None;
        for m in self.members_of(node) {
            if self.key(m) == key {
                if found.is_some() {
                    return Err(Decline);
                }
                found = Some(m);
            }
        }
        Ok(found)
    }

    fn span(&self, r: Option<(usize, usize)>) -> Option<&'a str> {
        r.map(|(a, b)| &self.text[a..b])
    }

    /// Whether the value at `v` equals `w` as the tree library's `to_serde_value` would
    /// see it; `Err` where that is not certain (numbers, duplicate keys).
    fn equals(&self, v: &Val, w: &Value) -> Res<bool> {
        Ok(match (v.kind, w) {
            (Kind::Str, Value::String(s)) => decode(&self.text[v.start..v.end]) == s.as_str(),
            (Kind::True, Value::Bool(b)) => *b,
            (Kind::False, Value::Bool(b)) => !*b,
            (Kind::Null, Value::Null) => true,
            (Kind::Num, Value::Number(_)) => return Err(Decline),
            (Kind::Obj(n), Value::Object(map)) => {
                let ms = self.members_of(n);
                let mut seen = BTreeSet::new();
                for m in ms {
                    if !seen.insert(self.key(m)) {
                        return Err(Decline);
                    }
                }
                if ms.len() != map.len() {
                    return Ok(false);
                }
                for m in ms {
                    match map.get(self.key(m).as_ref()) {
                        Some(x) if self.equals(&m.value, x)? => {}
                        _ => return Ok(false),
                    }
                }
                true
            }
            (Kind::Arr(n), Value::Array(a)) => {
                let es = self.elems_of(n);
                if es.len() != a.len() {
                    return Ok(false);
                }
                for (e, x) in es.iter().zip(a) {
                    if !self.equals(e, x)? {
                        return Ok(false);
                    }
                }
                true
            }
            _ => false,
        })
    }

    fn has_number(&self, v: &Val) -> bool {
        match v.kind {
            Kind::Num => true,
            Kind::Obj(n) => self.members_of(n).iter().any(|m| self.has_number(&m.value)),
            Kind::Arr(n) => self.elems_of(n).iter().any(|e| self.has_number(e)),
            _ => false,
        }
    }

    /// jsonc-parser's `uses_trailing_commas` for a value about to be replaced: the first
    /// object or array (breadth first, members counting as a level) that has whitespace
    /// between its own tokens and items decides by its last item.
    fn uses_trailing_commas(&self, v: &Val) -> bool {
        enum Q {
            Node(usize, bool),
            Member(Val),
        }
        let mut queue = std::collections::VecDeque::new();
        match v.kind {
            Kind::Obj(n) => queue.push_back(Q::Node(n, true)),
            Kind::Arr(n) => queue.push_back(Q::Node(n, false)),
            _ => return false,
        }
        while let Some(q) = queue.pop_front() {
            match q {
                Q::Node(n, is_obj) => {
                    let node = self.nodes[n];
                    if node.has_ws && node.items.1 > node.items.0 {
                        return node.last_comma;
                    }
                    if is_obj {
                        for m in self.members_of(n) {
                            queue.push_back(Q::Member(m.value));
                        }
                    } else {
                        for e in self.elems_of(n) {
                            match e.kind {
                                Kind::Obj(c) => queue.push_back(Q::Node(c, true)),
                                Kind::Arr(c) => queue.push_back(Q::Node(c, false)),
                                _ => {}
                            }
                        }
                    }
                }
                Q::Member(v) => match v.kind {
                    Kind::Obj(c) => queue.push_back(Q::Node(c, true)),
                    Kind::Arr(c) => queue.push_back(Q::Node(c, false)),
                    _ => {}
                },
            }
        }
        false
    }
}

/// A JSON string literal's text (quotes included) decoded; the scanner checked it.
fn decode(lit: &str) -> Cow<'_, str> {
    let inner = &lit[1..lit.len() - 1];
    if !inner.contains('\\') {
        return Cow::Borrowed(inner);
    }
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('b') => out.push('\u{08}'),
            Some('f') => out.push('\u{0c}'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let n = u32::from_str_radix(&hex, 16).unwrap_or(0xfffd);
                out.push(char::from_u32(n).unwrap_or('\u{fffd}'));
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    Cow::Owned(out)
}

/// jsonc-parser's indentation for a value set on a member: `current` for the member's
/// own line, `single` for one level.
struct Indents {
    current: String,
    single: String,
}

impl Indents {
    fn inner(&self) -> Indents {
        Indents {
            current: format!("{}{}", self.current, self.single),
            single: self.single.clone(),
        }
    }
}

/// jsonc-parser's `compute_indents` for a member, from its own indentation and that of
/// each enclosing member (innermost first), then the root object's. `None` where the
/// library would look further (at the root's other children): left to the tree path.
fn compute_indents(own: Option<&str>, enclosing: &[Option<&str>]) -> Option<Indents> {
    let mut stored: Option<&str> = own;
    for (i, it) in enclosing.iter().enumerate() {
        let level = i + 1;
        match (it, stored) {
            (Some(t), Some(last)) => {
                if let Some(single) = last.strip_prefix(t) {
                    return Some(Indents {
                        current: format!("{last}{}", single.repeat(level - 1)),
                        single: single.to_string(),
                    });
                }
                stored = None;
            }
            (Some(t), None) => stored = Some(t),
            (None, _) => stored = None,
        }
    }
    None
}

/// A string as jsonc-parser writes a new one.
fn escaped(out: &mut String, s: &str) {
    // Tokens and URLs need no escape (no quote, backslash or control character; C1
    // controls start with 0xC2): copied whole.
    if s.bytes()
        .all(|b| b >= 0x20 && b != b'"' && b != b'\\' && b != 0x7f && b != 0xc2)
    {
        out.reserve(s.len() + 2);
        out.push('"');
        out.push_str(s);
        out.push('"');
        return;
    }
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `v` laid out as jsonc-parser lays out a value it sets.
fn render(out: &mut String, v: &Value, ind: &Indents, nl: &str, trailing: bool) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => escaped(out, s),
        Value::Array(a) => {
            let multiline = a.iter().any(|x| match x {
                Value::Array(y) => !y.is_empty(),
                Value::Object(y) => !y.is_empty(),
                _ => false,
            });
            out.push('[');
            let inner = ind.inner();
            for (i, x) in a.iter().enumerate() {
                if multiline {
                    out.push_str(nl);
                    out.push_str(&inner.current);
                }
                render(out, x, &inner, nl, trailing);
                if trailing && multiline || i + 1 < a.len() {
                    out.push_str(if multiline { "," } else { ", " });
                }
            }
            if multiline {
                out.push_str(nl);
                out.push_str(&ind.current);
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push('{');
            if !m.is_empty() {
                let inner = ind.inner();
                for (i, (k, x)) in m.iter().enumerate() {
                    out.push_str(nl);
                    out.push_str(&inner.current);
                    escaped(out, k);
                    out.push_str(": ");
                    render(out, x, &inner, nl, trailing);
                    if trailing || i + 1 < m.len() {
                        out.push(',');
                    }
                }
                out.push_str(nl);
                out.push_str(&ind.current);
            }
            out.push('}');
        }
    }
}

/// The merge of `text` (not blank) when it only needs values of our keys replaced;
/// `None` to leave it to the tree path. See the module comment.
pub fn merge_in_place(
    text: &str,
    format: EditorFormat,
    entries: &[ServerEntry],
    owned_before: &BTreeSet<String>,
) -> Option<Merged> {
    let (bom, body) = match text.strip_prefix('\u{feff}') {
        Some(rest) => ("\u{feff}", rest),
        None => ("", text),
    };
    let scan = Scan::new(body, syntax(format))?;
    let Kind::Obj(root) = scan.root.kind else {
        return None;
    };
    // The members leading to the servers object, outermost first.
    let mut chain: Vec<&Member> = Vec::new();
    let mut obj = Some(root);
    for key in servers_path(format) {
        let Some(o) = obj else { break };
        match scan.get(o, key).ok()? {
            None => obj = None,
            Some(m) => match m.value.kind {
                Kind::Obj(n) => {
                    chain.push(m);
                    obj = Some(n);
                }
                _ => return None,
            },
        }
    }
    let servers = obj;
    let mut notes = Vec::new();
    let mut owned = BTreeSet::new();
    let mut holds_tokens = false;
    let Some(servers) = servers else {
        // No servers object: fine only when there is nothing to add.
        return entries.is_empty().then(|| Merged {
            text: Some(text.to_string()),
            owned,
            holds_tokens,
            notes,
        });
    };
    let mut index: HashMap<Cow<str>, &Member> = HashMap::new();
    for m in scan.members_of(servers) {
        if index.insert(scan.key(m), m).is_some() {
            return None;
        }
    }
    // Indentation of the members around an entry, innermost first, then the root's.
    let mut outer: Vec<Option<&str>> = chain.iter().rev().map(|m| scan.span(m.indent)).collect();
    outer.push(scan.span(scan.root_indent));
    let mut edits: Vec<(usize, usize, String)> = Vec::new();
    for e in entries {
        let m = index.get(e.name.as_str())?;
        let fs = fields(format, e);
        if !owned_before.contains(&e.name) {
            let ours = match m.value.kind {
                Kind::Obj(n) => {
                    if scan.has_number(&m.value) {
                        return None;
                    }
                    scan.get(n, url_key(format)).ok()?.is_some_and(|u| {
                        u.value.kind == Kind::Str
                            && decode(&scan.text[u.value.start..u.value.end]) == e.url.as_str()
                    })
                }
                _ => false,
            };
            if !ours {
                notes.push(format!(
                    "server `{}` there was not written by mcp-credd and points elsewhere; left as it is (rename or remove it, or rename the server in the config)",
                    e.name
                ));
                continue;
            }
        }
        let Kind::Obj(entry) = m.value.kind else {
            return None;
        };
        for (key, field) in &fs {
            let Field::Managed(want) = field else {
                continue;
            };
            match (scan.get(entry, key).ok()?, want) {
                (Some(p), Some(w)) => {
                    if scan.equals(&p.value, w).ok()? {
                        continue;
                    }
                    let mut enclosing = vec![scan.span(m.indent)];
                    enclosing.extend(outer.iter().copied());
                    let ind = compute_indents(scan.span(p.indent), &enclosing)?;
                    let mut out = String::new();
                    render(
                        &mut out,
                        w,
                        &ind,
                        scan.newline,
                        scan.uses_trailing_commas(&p.value),
                    );
                    edits.push((p.value.start, p.value.end, out));
                }
                (None, None) => {}
                // A key to add or remove: the tree path.
                _ => return None,
            }
        }
        holds_tokens |= e.headers.is_some();
        owned.insert(e.name.clone());
    }
    // Entries of ours whose servers left the config are removed by the tree path.
    if owned_before
        .difference(&owned)
        .any(|gone| index.contains_key(gone.as_str()))
    {
        return None;
    }
    edits.sort_by_key(|e| e.0);
    let grow: usize = edits.iter().map(|e| e.2.len()).sum();
    let mut out = String::with_capacity(text.len() + grow);
    out.push_str(bom);
    let mut at = 0;
    for (start, end, with) in &edits {
        out.push_str(&body[at..*start]);
        out.push_str(with);
        at = *end;
    }
    out.push_str(&body[at..]);
    Some(Merged {
        text: Some(out),
        owned,
        holds_tokens,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Transport;
    use crate::render::merge::merge_tree;

    fn e(name: &str, tok: &str) -> ServerEntry {
        ServerEntry {
            name: name.into(),
            url: format!("https://gw/{name}/mcp"),
            transport: Transport::StreamableHttp,
            headers: Some(vec![
                ("X-Authorization".into(), format!("Bearer {tok}")),
                ("X-Quote".into(), "a\"b\\c\u{7f}\u{1}é".into()),
            ]),
        }
    }

    fn owned(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    /// Same text as the tree path, or declined.
    fn same(text: &str, format: EditorFormat, es: &[ServerEntry], own: &[&str]) -> bool {
        let own = owned(own);
        let slow = merge_tree(Some(text), format, es, &own).unwrap();
        match merge_in_place(text, format, es, &own) {
            Some(fast) => {
                assert_eq!(fast, slow, "from:\n{text}");
                true
            }
            None => false,
        }
    }

    #[test]
    fn token_updates_match_the_tree_path_in_every_layout() {
        for f in EditorFormat::ALL {
            let es = [e("a", "OLD"), e("b", "OLD")];
            let first = merge_tree(None, f, &es, &owned(&[])).unwrap();
            let text = first.text.unwrap();
            let new = [e("a", "NEW"), e("b", "OLD")];
            assert!(same(&text, f, &new, &["a", "b"]), "{f:?} declined");
            // CRLF, tabs, a BOM.
            let crlf = format!("\u{feff}{}", text.replace("  ", "\t").replace('\n', "\r\n"));
            assert!(same(&crlf, f, &new, &["a", "b"]), "{f:?} declined");
            // Unchanged: the same text.
            let m = merge_in_place(&text, f, &es, &owned(&["a", "b"])).unwrap();
            assert_eq!(m.text.as_deref(), Some(text.as_str()));
        }
    }

    #[test]
    fn hand_written_layouts_match_or_decline() {
        let f = EditorFormat::Vscode;
        let es = [e("a", "NEW")];
        // Taken: comments everywhere, trailing commas, a user entry, one-line headers, odd
        // but consistent indentation, escapes in keys and values.
        let taken = [
            "// top\n{\n  /* a */ \"servers\": { // s\n    \"mine\": {\"command\": \"x\"},\n    \"a\": {\n      \"type\": \"http\", // t\n      \"url\": \"https://gw/a/mcp\",\n      \"headers\": {\n        \"X-Authorization\": \"Bearer OLD\",\n        \"X-Quote\": \"q\",\n      },\n    },\n  },\n}\n",
            "{\n \"servers\": {\n   \"a\": {\n     \"type\": \"http\",\n     \"url\": \"https://gw/a/mcp\",\n     \"headers\": {\"X-Authorization\": \"Bearer OLD\", \"X-Quote\": \"\"}\n   }\n }\n}",
            "{\n\t\"serv\\u0065rs\": {\n\t\t\"\\u0061\": { \"type\": \"http\", \"url\": \"https:\\/\\/gw/a/mcp\",\n\t\t\t\"headers\": null }\n\t}\n}",
            "{\n  \"servers\": {\n    \"a\": {\n      \"type\": \"http\",\n      \"url\": \"https://gw/a/mcp\",\n      \"headers\": [1, {\"x\": [ ]}, \"s\" ,],\n    }\n  }\n}",
        ];
        for text in taken {
            assert!(same(text, f, &es, &["a"]), "declined:\n{text}");
        }
        // Declined where the library would look at the rest of the file for an indent
        // (nothing in the chain starts a line), or where the chain is inconsistent.
        let either = [
            "{\"servers\": {\"a\": {\"type\": \"http\", \"url\": \"https://gw/a/mcp\", \"headers\": {\"X-Authorization\": \"Bearer OLD\", \"X-Quote\": \"\"}}}}",
            "{\n\"servers\": {\n      \"a\": {\n  \"type\": \"http\",\n  \"url\": \"https://gw/a/mcp\",\n  \"headers\": [1]\n      }\n}\n}",
            "  {\"servers\":\n {\"a\":\n{\"type\":\"sse\",\n\"url\":\"https://gw/a/mcp\",\"headers\":{}}}}",
        ];
        for text in either {
            same(text, f, &es, &["a"]);
        }
    }

    #[test]
    fn declines_what_needs_the_tree() {
        let f = EditorFormat::Cursor;
        let es = [e("a", "T")];
        let none = |t: &str, own: &[&str]| merge_in_place(t, f, &es, &owned(own)).is_none();
        // An entry to add, one to remove, a key to add, a duplicate, a non-object.
        assert!(none("{\"mcpServers\": {}}", &[]));
        assert!(none(
            "{\"mcpServers\": {\"a\": {\"url\": \"https://gw/a/mcp\", \"headers\": {}}, \"gone\": {}}}",
            &["a", "gone"]
        ));
        assert!(none(
            "{\"mcpServers\": {\"a\": {\"url\": \"https://gw/a/mcp\"}}}",
            &["a"]
        ));
        assert!(none("{\"mcpServers\": {\"a\": {}, \"a\": {}}}", &["a"]));
        assert!(none("{\"mcpServers\": {\"a\": 1}}", &["a"]));
        // What the scanner does not take: comments in strict JSON, a raw tab in a string,
        // a lone surrogate, a lone CR, trailing text.
        for bad in [
            "{\"mcpServers\": {}} // c",
            "{\"x\": \"a\tb\", \"mcpServers\": {}}",
            "{\"x\": \"\\ud800\", \"mcpServers\": {}}",
            "{\r\"mcpServers\": {}}",
            "{\"mcpServers\": {}} x",
            "{\"mcpServers\": {}, \"n\": 01}",
        ] {
            assert!(merge_in_place(bad, f, &[], &owned(&[])).is_none(), "{bad}");
        }
        // Nothing to do and no servers object: the same text.
        let m = merge_in_place("{\"x\": [1, 2.5e3, true, null]}", f, &[], &owned(&[])).unwrap();
        assert_eq!(m.text.as_deref(), Some("{\"x\": [1, 2.5e3, true, null]}"));
    }

    #[test]
    fn a_users_entry_gets_the_same_note() {
        let text = "{\"mcpServers\": {\"a\": {\"url\": \"https://elsewhere\"}}}";
        assert!(same(text, EditorFormat::Cursor, &[e("a", "T")], &[]));
    }
}
