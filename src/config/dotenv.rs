//! Pure parser for `.env` files as the reference tool's users write them.
//!
//! Accepts `KEY=value`, `export KEY=value`, single- and double-quoted values (double quotes
//! understand `\n`, `\"` and `\\`), and inline comments after unquoted values
//! (`KEY=value # note`), as python-dotenv and the shell both do.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: String,
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DotenvError {
    pub line: usize,
    pub message: String,
}

pub fn parse(text: &str) -> Result<Vec<Entry>, DotenvError> {
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((i, raw)) = lines.next() {
        let line_no = i + 1;
        let line = raw.trim_start_matches('\u{feff}').trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").map_or(line, str::trim_start);
        let Some((key, rest)) = line.split_once('=') else {
            return Err(DotenvError {
                line: line_no,
                message: "expected KEY=value".into(),
            });
        };
        let key = key.trim();
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        {
            return Err(DotenvError {
                line: line_no,
                // Not echoed: a line such as `SECRET:Zx9+..=` puts the secret in the "name".
                message: "not a valid variable name (letters, digits, _ and .); the line is not shown as it may hold a secret".into(),
            });
        }
        let rest = rest.trim_start();
        let value = if let Some(q) = rest.strip_prefix('"') {
            // A double-quoted value may span lines.
            let mut buf = q.to_string();
            loop {
                if let Some(v) = close_double(&buf) {
                    break v;
                }
                match lines.next() {
                    Some((_, more)) => {
                        buf.push('\n');
                        buf.push_str(more);
                    }
                    None => {
                        return Err(DotenvError {
                            line: line_no,
                            message: "unterminated double quote".into(),
                        });
                    }
                }
            }
        } else if let Some(q) = rest.strip_prefix('\'') {
            match q.find('\'') {
                Some(end) => q[..end].to_string(),
                None => {
                    return Err(DotenvError {
                        line: line_no,
                        message: "unterminated single quote".into(),
                    });
                }
            }
        } else {
            // An unquoted value ends at ` #`.
            let v = match rest.find(" #").or_else(|| rest.find("\t#")) {
                Some(p) => &rest[..p],
                None => rest,
            };
            v.trim_end().to_string()
        };
        out.push(Entry {
            key: key.to_string(),
            value,
            line: line_no,
        });
    }
    Ok(out)
}

/// If `s` (after the opening quote) holds the closing quote, the unescaped value.
fn close_double(s: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(o) => out.push(o),
                None => return None,
            },
            o => out.push(o),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(text: &str) -> Vec<(String, String)> {
        parse(text)
            .unwrap()
            .into_iter()
            .map(|e| (e.key, e.value))
            .collect()
    }

    #[test]
    fn forms() {
        let got = kv(
            "# c\n\nA=1\nexport B = two \nC=\"x # y\" # z\nD='a\"b' \nE=v # comment\nF=\nG=\"l1\\nl2\"\nH=a#b\n",
        );
        let want = [
            ("A", "1"),
            ("B", "two"),
            ("C", "x # y"),
            ("D", "a\"b"),
            ("E", "v"),
            ("F", ""),
            ("G", "l1\nl2"),
            ("H", "a#b"),
        ];
        assert_eq!(got, want.map(|(a, b)| (a.to_string(), b.to_string())));
    }

    #[test]
    fn multiline_double_quotes_and_lines() {
        let e = parse("A=\"one\ntwo\"\nB=3\n").unwrap();
        assert_eq!(e[0].value, "one\ntwo");
        assert_eq!(e[1].line, 3);
    }

    #[test]
    fn errors_have_lines() {
        assert_eq!(parse("A=1\nnonsense\n").unwrap_err().line, 2);
        assert_eq!(
            parse("A=\"open\n").unwrap_err().message,
            "unterminated double quote"
        );
        assert_eq!(parse("BAD KEY=1").unwrap_err().line, 1);
    }

    #[test]
    fn errors_never_show_the_line() {
        for bad in [
            "INGRESS_OAUTH_CLIENT_SECRET:Zx9+SECRETabc==\n",
            "INGRESS_OAUTH_CLIENT_SECRET Zx9+SECRETabc\n",
            "INGRESS_OAUTH_CLIENT_SECRET=\"Zx9+SECRETabc\n",
            "INGRESS_OAUTH_CLIENT_SECRET='Zx9+SECRETabc\n",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(!e.message.contains("SECRETabc"), "{bad:?}: {}", e.message);
            assert_eq!(e.line, 1);
        }
    }
}
