//! Randomized round-trips of the editor-file merge: generated user files (comments, trailing
//! commas, blank lines, one-line objects, CRLF, tabs, other servers and keys) merged with
//! random sets of our entries and random ownership records. Checked: everything outside
//! the entries we touch is byte-identical, the JSON is what the ownership rules say, and a
//! second merge changes nothing. And the one-pass merge (`render::spans`) gives the tree
//! merge's text byte for byte whenever it does not decline.

use std::collections::BTreeSet;

use mcp_credd::config::{EditorFormat, Transport};
use mcp_credd::render::ServerEntry;
use mcp_credd::render::formats::{Field, Syntax, fields, fresh, servers_path, syntax, url_key};
use mcp_credd::render::jsonc::Doc;
use mcp_credd::render::merge::{merge, merge_tree};
use mcp_credd::render::spans::merge_in_place;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// Names mcp-credd may use; the user's servers never take them.
const OURS: [&str; 4] = ["currenttime", "fininfo", "docs", "retired"];
const USERS: [&str; 6] = ["mine", "local-tool", "ünïcode", "quo\"te", "sp ace", "z"];

#[derive(Clone, Debug)]
struct Member {
    name: String,
    value: Value,
    pretty: bool,
    comment_above: bool,
    comment_after: bool,
    blank_before: bool,
}

#[derive(Clone, Debug)]
struct Servers {
    one_line: bool,
    members: Vec<Member>,
}

#[derive(Clone, Debug)]
struct FileSpec {
    format: EditorFormat,
    unit: &'static str,
    crlf: bool,
    trailing: bool,
    header_comment: bool,
    before: Vec<(String, Value)>,
    after: Vec<(String, Value)>,
    servers: Option<Servers>,
}

fn our_url(name: &str) -> String {
    format!("https://gw.example.com/{name}/mcp")
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-1000i64..1000).prop_map(|n| json!(n)),
        prop::sample::select(vec![
            "",
            "x",
            "a \"q\" \\ b",
            "ünï",
            "line\nbreak",
            "//not a comment"
        ])
        .prop_map(|s| json!(s)),
    ]
}

fn user_value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(("[a-z]{1,6}", inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A value under one of our names: ours-looking (our URL or another), or anything.
fn our_value(name: &'static str, format: EditorFormat) -> impl Strategy<Value = Value> {
    let key = url_key(format);
    prop_oneof![
        3 => (any::<bool>(), any::<bool>(), any::<bool>()).prop_map(move |(same_url, headers, extra)| {
            let mut m = Map::new();
            m.insert("type".into(), json!("http"));
            let url = if same_url { our_url(name) } else { "https://elsewhere/mcp".into() };
            m.insert(key.into(), json!(url));
            if headers {
                m.insert("headers".into(), json!({"X-Authorization": "Bearer old"}));
            }
            if extra {
                m.insert("disabled".into(), json!(true));
            }
            Value::Object(m)
        }),
        1 => user_value(),
    ]
}

fn member(name: String, value: Value, jsonc: bool) -> impl Strategy<Value = Member> {
    (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()).prop_map(
        move |(pretty, above, after, blank)| Member {
            name: name.clone(),
            value: value.clone(),
            pretty,
            comment_above: above && jsonc,
            comment_after: after && jsonc,
            blank_before: blank,
        },
    )
}

fn members(format: EditorFormat) -> impl Strategy<Value = Vec<Member>> {
    let jsonc = syntax(format) == Syntax::Jsonc;
    let ours = prop::sample::subsequence(OURS.to_vec(), 0..=OURS.len());
    let users = prop::sample::subsequence(USERS.to_vec(), 0..=4);
    (ours, users)
        .prop_flat_map(|(o, u)| {
            let names: Vec<(&'static str, bool)> = o
                .into_iter()
                .map(|n| (n, true))
                .chain(u.into_iter().map(|n| (n, false)))
                .collect();
            Just(names).prop_shuffle()
        })
        .prop_flat_map(move |names| {
            names
                .into_iter()
                .map(|(n, ours)| {
                    let value = if ours {
                        our_value(n, format).boxed()
                    } else {
                        user_value().boxed()
                    };
                    value
                        .prop_flat_map(move |v| member(n.to_string(), v, jsonc))
                        .boxed()
                })
                .collect::<Vec<_>>()
        })
}

fn file_spec(format: EditorFormat) -> impl Strategy<Value = FileSpec> {
    let jsonc = syntax(format) == Syntax::Jsonc;
    let keys = || {
        prop::collection::vec(
            (
                prop::sample::select(vec!["inputs", "theme", "n", "x"]),
                user_value(),
            ),
            0..3,
        )
    };
    (
        prop::sample::select(vec!["  ", "    ", "\t"]),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        keys(),
        keys(),
        prop::option::weighted(0.9, (prop::bool::weighted(0.15), members(format))),
    )
        .prop_map(
            move |(unit, crlf, trailing, header, before, after, servers)| {
                let dedup = |v: Vec<(&str, Value)>, taken: &mut BTreeSet<String>| {
                    v.into_iter()
                        .filter(|(k, _)| taken.insert(k.to_string()))
                        .map(|(k, v)| (k.to_string(), v))
                        .collect::<Vec<_>>()
                };
                let mut taken = BTreeSet::new();
                let before = dedup(before, &mut taken);
                let after = dedup(after, &mut taken);
                FileSpec {
                    format,
                    unit,
                    crlf,
                    // Comments and trailing commas only where the editor accepts them; one-line
                    // objects are written without trailing commas, as people do.
                    trailing: trailing && jsonc,
                    header_comment: header && jsonc,
                    before,
                    after,
                    servers: servers.map(|(one_line, members)| Servers { one_line, members }),
                }
            },
        )
}

/// `v` as people write it: pretty with `unit` at `indent`, or on one line.
fn render_value(
    v: &Value,
    pretty: bool,
    indent: &str,
    unit: &str,
    nl: &str,
    trailing: bool,
) -> String {
    match v {
        Value::Array(a) if pretty && !a.is_empty() => {
            let inner = format!("{indent}{unit}");
            let items: Vec<String> = a
                .iter()
                .map(|x| {
                    format!(
                        "{inner}{}",
                        render_value(x, true, &inner, unit, nl, trailing)
                    )
                })
                .collect();
            let tc = if trailing { "," } else { "" };
            format!("[{nl}{}{tc}{nl}{indent}]", items.join(&format!(",{nl}")))
        }
        Value::Object(m) if pretty && !m.is_empty() => {
            let inner = format!("{indent}{unit}");
            let items: Vec<String> = m
                .iter()
                .map(|(k, x)| {
                    format!(
                        "{inner}{}: {}",
                        json!(k),
                        render_value(x, true, &inner, unit, nl, trailing)
                    )
                })
                .collect();
            let tc = if trailing { "," } else { "" };
            format!("{{{nl}{}{tc}{nl}{indent}}}", items.join(&format!(",{nl}")))
        }
        Value::Array(a) => format!(
            "[{}]",
            a.iter()
                .map(|x| render_value(x, false, "", unit, nl, false))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Object(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, x)| format!(
                    "{}: {}",
                    json!(k),
                    render_value(x, false, "", unit, nl, false)
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}

/// The file text for `spec`.
fn render(spec: &FileSpec) -> String {
    let nl = if spec.crlf { "\r\n" } else { "\n" };
    let unit = spec.unit;
    let path = servers_path(spec.format);
    let mut out = String::new();
    if spec.header_comment {
        out.push_str(&format!("// user settings{nl}"));
    }
    // Top-level members (and the nested container for the legacy shape).
    let mut top: Vec<String> = spec
        .before
        .iter()
        .map(|(k, v)| {
            format!(
                "{unit}{}: {}",
                json!(k),
                render_value(v, true, unit, unit, nl, spec.trailing)
            )
        })
        .collect();
    if let Some(s) = &spec.servers {
        let depth = path.len();
        let ind = unit.repeat(depth);
        let inner = unit.repeat(depth + 1);
        let body = if s.members.is_empty() {
            "{}".to_string()
        } else if s.one_line {
            let items: Vec<String> = s
                .members
                .iter()
                .map(|m| {
                    format!(
                        "{}: {}",
                        json!(m.name),
                        render_value(&m.value, false, "", unit, nl, false)
                    )
                })
                .collect();
            format!("{{{}}}", items.join(", "))
        } else {
            let mut b = format!("{{{nl}");
            let n = s.members.len();
            for (i, m) in s.members.iter().enumerate() {
                if m.blank_before && i > 0 {
                    b.push_str(nl);
                }
                if m.comment_above {
                    b.push_str(&format!(
                        "{inner}// about {}{nl}",
                        m.name.replace(['\n', '\r'], " ")
                    ));
                }
                b.push_str(&format!(
                    "{inner}{}: {}",
                    json!(m.name),
                    render_value(&m.value, m.pretty, &inner, unit, nl, spec.trailing)
                ));
                if i + 1 < n || spec.trailing {
                    b.push(',');
                }
                if m.comment_after {
                    b.push_str(" /* note */ // trailing note");
                }
                b.push_str(nl);
            }
            b.push_str(&format!("{ind}}}"));
            b
        };
        let mut member = format!("{}: {body}", json!(path[depth - 1]));
        // Wrap in the outer keys of the path (the legacy shape's `mcp`).
        for (level, key) in path[..depth - 1].iter().enumerate().rev() {
            let ind_outer = unit.repeat(level + 1);
            member = format!(
                "{}: {{{nl}{ind_outer}{unit}{member}{nl}{ind_outer}}}",
                json!(key)
            );
        }
        top.push(format!("{unit}{member}"));
    }
    top.extend(spec.after.iter().map(|(k, v)| {
        format!(
            "{unit}{}: {}",
            json!(k),
            render_value(v, true, unit, unit, nl, spec.trailing)
        )
    }));
    if top.is_empty() {
        out.push_str(&format!("{{}}{nl}"));
    } else {
        let tc = if spec.trailing { "," } else { "" };
        out.push_str(&format!(
            "{{{nl}{}{tc}{nl}}}{nl}",
            top.join(&format!(",{nl}"))
        ));
    }
    out
}

fn entry(name: &str, token: Option<u32>, sse: bool) -> ServerEntry {
    ServerEntry {
        name: name.into(),
        url: our_url(name),
        transport: if sse {
            Transport::Sse
        } else {
            Transport::StreamableHttp
        },
        headers: token.map(|t| vec![("X-Authorization".into(), format!("Bearer tok{t}"))]),
    }
}

fn entries_strategy() -> impl Strategy<Value = Vec<ServerEntry>> {
    prop::sample::subsequence(OURS.to_vec(), 0..=OURS.len())
        .prop_shuffle()
        .prop_flat_map(|names| {
            let n = names.len();
            (
                Just(names),
                prop::collection::vec((prop::option::of(0u32..3), any::<bool>()), n),
            )
        })
        .prop_map(|(names, opts)| {
            names
                .iter()
                .zip(opts)
                .map(|(n, (t, sse))| entry(n, t, sse))
                .collect()
        })
}

/// `text` without the members named in `names` (removed the way the merge removes them).
fn strip(text: &str, format: EditorFormat, names: &BTreeSet<String>) -> String {
    let mut doc = Doc::parse(text, syntax(format)).unwrap();
    for n in names {
        doc.remove_member_at(servers_path(format), n).unwrap();
    }
    doc.text()
}

/// The servers object of a text, as JSON.
fn servers_json(text: &str, format: EditorFormat) -> Option<Map<String, Value>> {
    let doc = Doc::parse(text, syntax(format)).unwrap();
    let obj = doc.object_at(servers_path(format)).unwrap()?;
    let node: jsonc_parser::cst::CstNode = obj.into();
    match node.to_serde_value() {
        Some(Value::Object(m)) => Some(m),
        _ => None,
    }
}

/// What the ownership rules say our entry becomes: managed keys set in place or appended,
/// cleared ones removed, everything else kept.
fn updated(old: &Value, fs: &[(&'static str, Field)]) -> Value {
    let Value::Object(old) = old else {
        return fresh(fs);
    };
    let mut m = old.clone();
    for (k, f) in fs {
        match f {
            Field::Managed(Some(v)) => {
                m.insert((*k).to_string(), v.clone());
            }
            Field::Managed(None) => {
                m.shift_remove(*k);
            }
            Field::Initial(_) => {}
        }
    }
    Value::Object(m)
}

fn check(
    spec: &FileSpec,
    entries: &[ServerEntry],
    owned_before: &BTreeSet<String>,
) -> Result<(), TestCaseError> {
    let format = spec.format;
    let input = render(spec);
    prop_assert!(
        Doc::parse(&input, syntax(format)).is_ok(),
        "generated file must parse:\n{}",
        input
    );
    let merged = merge(Some(&input), format, entries, owned_before)
        .map_err(|e| TestCaseError::fail(format!("{e}\n{input}")))?;
    let output = merged.text.clone().unwrap();
    let ctx = || {
        format!(
            "\n--- input\n{input}\n--- output\n{output}\n--- owned before {owned_before:?}, entries {:?}",
            entries.iter().map(|e| &e.name).collect::<Vec<_>>()
        )
    };
    prop_assert!(
        Doc::parse(&output, syntax(format)).is_ok(),
        "output must parse{}",
        ctx()
    );

    // The JSON the rules call for.
    let before = servers_json(&input, format).unwrap_or_default();
    let mut want = Map::new();
    let mut touched = BTreeSet::new();
    let mut want_owned = BTreeSet::new();
    for (name, v) in &before {
        let configured = entries.iter().find(|e| &e.name == name);
        let ours = owned_before.contains(name)
            || v.get(url_key(format)).and_then(Value::as_str) == Some(our_url(name).as_str());
        match configured {
            Some(e) if ours => {
                want.insert(name.clone(), updated(v, &fields(format, e)));
                touched.insert(name.clone());
                want_owned.insert(name.clone());
            }
            None if owned_before.contains(name) => {
                touched.insert(name.clone());
            }
            _ => {
                want.insert(name.clone(), v.clone());
            }
        }
    }
    for e in entries {
        if !before.contains_key(&e.name) {
            want.insert(e.name.clone(), fresh(&fields(format, e)));
            touched.insert(e.name.clone());
            want_owned.insert(e.name.clone());
        }
    }
    let got = servers_json(&output, format).unwrap_or_default();
    prop_assert_eq!(Value::Object(got), Value::Object(want.clone()), "{}", ctx());
    prop_assert_eq!(&merged.owned, &want_owned, "{}", ctx());
    // The rest of the document's JSON is untouched.
    let without_servers = |t: &str| {
        let doc = Doc::parse(t, syntax(format)).unwrap();
        let mut v = doc_value(&doc);
        remove_path(&mut v, servers_path(format));
        v
    };
    prop_assert_eq!(
        without_servers(&input),
        without_servers(&output),
        "{}",
        ctx()
    );

    // Bytes: with the entries we touched taken out of both, the texts are identical. A
    // servers object that had to be created, or filled from empty, is the exception.
    if spec
        .servers
        .as_ref()
        .is_some_and(|s| !s.members.is_empty() || touched.is_empty())
    {
        prop_assert_eq!(
            strip(&input, format, &touched),
            strip(&output, format, &touched),
            "{}",
            ctx()
        );
    } else if touched.is_empty() {
        prop_assert_eq!(&input, &output, "{}", ctx());
    }
    // Nothing touched, nothing changed.
    if touched.is_empty() {
        prop_assert_eq!(&input, &output, "{}", ctx());
    }
    // A second merge with the new record finds nothing to do.
    let again = merge(Some(&output), format, entries, &merged.owned).unwrap();
    prop_assert_eq!(
        again.text.as_deref(),
        Some(output.as_str()),
        "second merge{}",
        ctx()
    );
    // And removing everything of ours gives back the user's file without our entries.
    let cleared = merge(Some(&output), format, &[], &merged.owned).unwrap();
    let cleared = cleared.text.unwrap();
    let mut ours_in_input: BTreeSet<String> = merged.owned.clone();
    ours_in_input.extend(owned_before.iter().cloned());
    if spec.servers.as_ref().is_some_and(|s| !s.members.is_empty()) {
        prop_assert_eq!(
            strip(&cleared, format, &ours_in_input),
            strip(&input, format, &ours_in_input),
            "clearing{}",
            ctx()
        );
    }
    Ok(())
}

fn doc_value(doc: &Doc) -> Value {
    match doc.object_at(&[]).unwrap() {
        Some(root) => jsonc_parser::cst::CstNode::from(root)
            .to_serde_value()
            .unwrap_or(Value::Null),
        None => Value::Null,
    }
}

fn remove_path(v: &mut Value, path: &[&str]) {
    let Some((last, init)) = path.split_last() else {
        return;
    };
    let mut cur = Some(&mut *v);
    for k in init {
        cur = cur.and_then(|c| c.get_mut(*k));
    }
    if let Some(m) = cur.and_then(Value::as_object_mut) {
        m.shift_remove(*last);
    }
    // An outer key created to hold the servers (`mcp`) may be new: drop it when empty.
    if path.len() > 1
        && v.get(path[0])
            .and_then(Value::as_object)
            .is_some_and(Map::is_empty)
        && let Some(m) = v.as_object_mut()
    {
        m.shift_remove(path[0]);
    }
}

fn owned_strategy() -> impl Strategy<Value = BTreeSet<String>> {
    prop::sample::subsequence(OURS.to_vec(), 0..=OURS.len())
        .prop_map(|v| v.into_iter().map(String::from).collect())
}

fn format_strategy() -> impl Strategy<Value = EditorFormat> {
    prop::sample::select(EditorFormat::ALL.to_vec())
}

proptest! {
    // 512 by default; PROPTEST_CASES=N runs more.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512),
        ..ProptestConfig::default()
    })]

    #[test]
    fn everything_outside_our_entries_survives(
        (spec, entries, owned) in format_strategy().prop_flat_map(|f| (file_spec(f), entries_strategy(), owned_strategy()))
    ) {
        check(&spec, &entries, &owned)?;
    }
}

/// The one-pass merge against the tree merge: on the generated file, and on the file as
/// merged once and then refreshed with other tokens (the case the one-pass merge is for,
/// which it must not decline). Returns how many of the two it took.
fn same_as_tree(
    spec: &FileSpec,
    entries: &[ServerEntry],
    owned_before: &BTreeSet<String>,
    bump: u32,
) -> Result<usize, TestCaseError> {
    let input = render(spec);
    let format = spec.format;
    let mut taken = 0;
    let tree = merge_tree(Some(&input), format, entries, owned_before);
    if let Some(fast) = merge_in_place(&input, format, entries, owned_before) {
        prop_assert_eq!(Ok(fast), tree.clone(), "first merge of\n{}", input);
        taken += 1;
    }
    let Ok(first) = tree else { return Ok(taken) };
    let text = first.text.unwrap();
    // Every token changes (and some transports): what a refresh cycle does.
    let next: Vec<ServerEntry> = entries
        .iter()
        .map(|e| {
            let mut e = e.clone();
            if let Some(h) = e.headers.as_mut() {
                h[0].1 = format!("Bearer tok{bump}-\"\u{1}é");
            }
            e
        })
        .collect();
    let tree = merge_tree(Some(&text), format, &next, &first.owned).unwrap();
    let fast = merge_in_place(&text, format, &next, &first.owned);
    // Declining is allowed only where a key must be added to or removed from one of our
    // entries (a user's entry we took over lacks `type`, or keeps one we do not write).
    if let Some(fast) = fast {
        prop_assert_eq!(&fast, &tree, "refresh of\n{}", text);
        taken += 1;
    }
    Ok(taken)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512),
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_one_pass_merge_gives_the_tree_merges_text(
        (spec, entries, owned, bump) in format_strategy().prop_flat_map(|f| (file_spec(f), entries_strategy(), owned_strategy(), 3u32..9))
    ) {
        same_as_tree(&spec, &entries, &owned, bump)?;
    }
}

/// The one-pass merge takes a refresh of every file it wrote itself, in every format.
#[test]
fn the_one_pass_merge_takes_refreshes_of_our_own_files() {
    for format in EditorFormat::ALL {
        let es = [
            entry("currenttime", Some(1), false),
            entry("fininfo", None, true),
        ];
        let first = merge(None, format, &es, &BTreeSet::new()).unwrap();
        let text = first.text.unwrap();
        let next = [
            entry("currenttime", Some(2), false),
            entry("fininfo", None, true),
        ];
        let fast = merge_in_place(&text, format, &next, &first.owned).expect("taken");
        assert_eq!(
            fast,
            merge_tree(Some(&text), format, &next, &first.owned).unwrap()
        );
        let text = fast.text.unwrap();
        if format == EditorFormat::ClaudeCode {
            // Claude Code's entries name the headers helper, never a token.
            assert!(
                text.contains("headersHelper") && !text.contains("tok2"),
                "{text}"
            );
        } else {
            assert!(text.contains("Bearer tok2"), "{format:?}: {text}");
        }
    }
}

/// One hand-picked case per format, so a failure in the generator shows up plainly.
#[test]
fn a_known_case_per_format() {
    for format in EditorFormat::ALL {
        let jsonc = syntax(format) == Syntax::Jsonc;
        let spec = FileSpec {
            format,
            unit: "  ",
            crlf: false,
            trailing: jsonc,
            header_comment: jsonc,
            before: vec![("inputs".into(), json!([]))],
            after: vec![("theme".into(), json!({"a": 1}))],
            servers: Some(Servers {
                one_line: false,
                members: vec![
                    Member {
                        name: "mine".into(),
                        value: json!({"command": "x", "args": ["-v"]}),
                        pretty: true,
                        comment_above: jsonc,
                        comment_after: jsonc,
                        blank_before: false,
                    },
                    Member {
                        name: "retired".into(),
                        value: json!({"url": our_url("retired")}),
                        pretty: true,
                        comment_above: false,
                        comment_after: jsonc,
                        blank_before: true,
                    },
                ],
            }),
        };
        let owned: BTreeSet<String> = ["retired".to_string()].into();
        check(&spec, &[entry("currenttime", Some(1), false)], &owned).unwrap();
    }
}
