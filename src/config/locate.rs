//! Finds the line of a key path (`ingress.client_id`, `servers[2].url`) in YAML text.
//!
//! serde reports a location only for errors raised while the parser is positioned on the
//! value; checks done after parsing (a missing secret variable, an http:// URL) use this to
//! point at the line the user has to edit. It is a heuristic for block-style YAML, which is
//! what people write in config files; when it cannot tell, it returns `None`.

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// Parses `a.b[2].c` into segments.
pub fn parse_path(path: &str) -> Vec<Seg> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let mut rest = part;
        if let Some(i) = rest.find('[') {
            if i > 0 {
                out.push(Seg::Key(rest[..i].to_string()));
            }
            rest = &rest[i..];
            while let Some(stripped) = rest.strip_prefix('[') {
                let Some(end) = stripped.find(']') else { break };
                if let Ok(n) = stripped[..end].parse() {
                    out.push(Seg::Index(n));
                }
                rest = &stripped[end + 1..];
            }
        } else if !rest.is_empty() {
            out.push(Seg::Key(rest.to_string()));
        }
    }
    out
}

struct Line<'a> {
    no: usize,
    /// Column of the first character after indentation and any `- ` item markers.
    key_indent: usize,
    /// Column of the first `-` marker, if the line starts a list item.
    dash_indent: Option<usize>,
    body: &'a str,
}

fn lines(text: &str) -> Vec<Line<'_>> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let trimmed = raw.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with("---") {
            continue;
        }
        let mut col = raw.len() - trimmed.len();
        let mut body = trimmed;
        let mut dash = None;
        while let Some(after) = body
            .strip_prefix("- ")
            .or_else(|| (body == "-").then_some(""))
        {
            dash.get_or_insert(col);
            let t = after.trim_start();
            col += body.len() - t.len();
            body = t;
        }
        out.push(Line {
            no: i + 1,
            key_indent: col,
            dash_indent: dash,
            body,
        });
    }
    out
}

fn key_of(body: &str) -> Option<&str> {
    let (k, _) = body.split_once(':')?;
    let k = k.trim();
    Some(k.trim_matches(|c| c == '"' || c == '\''))
}

/// The 1-based line where `path` is written, or the nearest ancestor that is.
pub fn locate(text: &str, path: &str) -> Option<usize> {
    let all = lines(text);
    let segs = parse_path(path);
    let (mut lo, mut hi) = (0usize, all.len());
    let mut found = None;
    let mut parent_indent: Option<usize> = None;
    for seg in &segs {
        let region = &all[lo..hi];
        match seg {
            Seg::Key(k) => {
                let Some(level) = region
                    .iter()
                    .filter(|l| !l.body.is_empty())
                    .map(|l| l.key_indent)
                    .filter(|&c| {
                        parent_indent.is_none_or(|p| c > p) || lo == 0 && parent_indent.is_none()
                    })
                    .min()
                else {
                    return found;
                };
                let Some(pos) = region
                    .iter()
                    .position(|l| l.key_indent == level && key_of(l.body) == Some(k.as_str()))
                else {
                    return found;
                };
                let line = &region[pos];
                found = Some(line.no);
                let start = lo + pos + 1;
                let end = all[start..hi]
                    .iter()
                    .position(|l| l.key_indent <= level || l.dash_indent.is_some_and(|d| d < level))
                    .map_or(hi, |p| start + p);
                lo = start;
                hi = end;
                parent_indent = Some(level);
            }
            Seg::Index(n) => {
                let Some(dash_level) = region.iter().filter_map(|l| l.dash_indent).min() else {
                    return found;
                };
                let starts: Vec<usize> = region
                    .iter()
                    .enumerate()
                    .filter(|(_, l)| l.dash_indent == Some(dash_level))
                    .map(|(i, _)| i)
                    .collect();
                let Some(&pos) = starts.get(*n) else {
                    return found;
                };
                found = Some(region[pos].no);
                let end = starts.get(n + 1).map_or(hi, |&p| lo + p);
                // The item's own line holds its first key, so the region starts on it.
                lo += pos;
                hi = end;
                parent_indent = Some(dash_level);
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
# comment
tokens_dir: ~/.oauth-tokens
ingress:
  kind: cognito_m2m
  client_id: abc

  client_secret: {env: X}
servers:
  - name: one
  - name: two
    url: http://example.com
  -
    name: three
refresh:
  before_expiry: 5m
";

    fn check(path: &str, want: Option<usize>) {
        assert_eq!(locate(DOC, path), want, "{path}");
    }

    #[test]
    fn finds_keys_and_items() {
        check("tokens_dir", Some(2));
        check("ingress", Some(3));
        check("ingress.client_secret", Some(7));
        check("ingress.client_id", Some(5));
        check("servers", Some(8));
        check("servers[0].name", Some(9));
        check("servers[1].url", Some(11));
        check("servers[2].name", Some(13));
        check("refresh.before_expiry", Some(15));
        check("nope", None);
        check("servers[7]", Some(8));
        check("ingress.nope", Some(3));
    }

    #[test]
    fn does_not_match_a_nested_key_at_the_top() {
        assert_eq!(locate("a:\n  kind: x\nkind: y\n", "kind"), Some(3));
        assert_eq!(locate("a:\n  kind: x\n", "kind"), None);
    }

    #[test]
    fn path_syntax() {
        assert_eq!(
            parse_path("servers[2].url"),
            vec![
                Seg::Key("servers".into()),
                Seg::Index(2),
                Seg::Key("url".into())
            ]
        );
    }
}
