//! Escaping text that came from outside (identity providers, the browser, token claims)
//! before it is printed, logged or stored: control characters (C0, DEL, C1) and the
//! Unicode bidi overrides become visible escapes, so a server cannot move the cursor,
//! change the terminal's title, ring its bell or forge a log line.

use std::borrow::Cow;

fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn escape_with(s: &str, keep_newline: bool) -> Cow<'_, str> {
    if !s
        .chars()
        .any(|c| is_unsafe(c) && !(keep_newline && c == '\n'))
    {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' if keep_newline => out.push('\n'),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_unsafe(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// The first character of `s` that has no place in a single word from outside (a URL, a
/// scope): a control character, a bidi override, or white space. Such words are refused
/// where they enter, rather than escaped.
pub fn first_unfit_in_word(s: &str) -> Option<char> {
    s.chars().find(|&c| is_unsafe(c) || c.is_whitespace())
}

/// A URL as it may be shown or logged: never its user name, password or query (they may
/// carry secrets: `http://user:pass@host`, `?api_key=...`); with `keep_path` (an error that
/// must say which URL), its path stays; without (a log line), only scheme, host and port.
/// Works on the text, so a URL that does not parse is redacted too (up to its last `@`
/// anywhere: a password may hold `/`, `?` or `#` unencoded, which is why it does not
/// parse); text without `://` (a label) is returned as it is. Escaped either way.
pub fn redact_url(s: &str, keep_path: bool) -> String {
    let Some((scheme, rest)) = s.split_once("://") else {
        return escape(s);
    };
    let rest = match reqwest::Url::parse(s) {
        Ok(_) => rest,
        Err(_) => rest.rsplit_once('@').map_or(rest, |(_, r)| r),
    };
    let (authority, tail) = rest.split_at(rest.find(['/', '?', '#']).unwrap_or(rest.len()));
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let mut out = format!("{scheme}://{host}");
    if keep_path {
        let path = tail.split(['?', '#']).next().unwrap_or_default();
        out.push_str(path);
        if tail[path.len()..].starts_with('?') {
            out.push_str("?[redacted]");
        }
    }
    escape(&out)
}

/// `s` with every control character (newlines included) written as an escape.
pub fn escape(s: &str) -> String {
    escape_with(s, false).into_owned()
}

/// Like [`escape`], but keeps `\n`: for our own multi-line output, whose network-sourced
/// parts were already escaped with [`escape`].
pub fn escape_keep_newlines(s: &str) -> Cow<'_, str> {
    escape_with(s, true)
}

/// A log writer that escapes each formatted event: everything but the final newline, so
/// one event is always one line.
#[derive(Clone, Copy, Default)]
pub struct EscapingStderr;

impl std::io::Write for EscapingStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let (body, nl) = match text.strip_suffix('\n') {
            Some(b) => (b, "\n"),
            None => (&*text, ""),
        };
        let line = format!("{}{nl}", escape_with(body, false));
        std::io::stderr().write_all(line.as_bytes())?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for EscapingStderr {
    type Writer = EscapingStderr;
    fn make_writer(&'a self) -> Self::Writer {
        EscapingStderr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_controls_and_bidi() {
        assert_eq!(escape("plain text é"), "plain text é");
        assert_eq!(
            escape("a\x1b[31mb\x07c\r\nd\u{9b}e\u{202e}f\x7f"),
            "a\\u{1b}[31mb\\u{7}c\\r\\nd\\u{9b}e\\u{202e}f\\u{7f}"
        );
        assert_eq!(escape_keep_newlines("a\nb\x1b"), "a\nb\\u{1b}");
    }

    #[test]
    fn urls_lose_credentials_and_queries() {
        let u = "http://user:s3cret@127.0.0.1:5000/p/a?api_key=k3y#f";
        assert_eq!(redact_url(u, false), "http://127.0.0.1:5000");
        assert_eq!(redact_url(u, true), "http://127.0.0.1:5000/p/a?[redacted]");
        assert_eq!(
            redact_url("https://a@b@h.example.com#x@y", true),
            "https://h.example.com"
        );
        assert_eq!(
            redact_url("https://h.example.com/t", true),
            "https://h.example.com/t"
        );
        assert_eq!(
            redact_url("https://h.example.com?q", false),
            "https://h.example.com"
        );
        // Labels stay; what does not parse still loses its credentials.
        assert_eq!(
            redact_url("Cognito InitiateAuth", false),
            "Cognito InitiateAuth"
        );
        assert_eq!(
            redact_url("http://u:p w@host:99999/x y", true),
            "http://host:99999/x y"
        );
        // A password with an unencoded `/`, `?` or `#`: the URL does not parse.
        assert_eq!(redact_url("http://u:p/s?s#@host/x", true), "http://host/x");
        assert_eq!(redact_url("http://u:p/ss@host/x", false), "http://host");
        // A valid URL keeps an `@` in its path.
        assert_eq!(
            redact_url("https://h.example.com/users/@me", true),
            "https://h.example.com/users/@me"
        );
        assert_eq!(redact_url("a\x1b[31m", false), "a\\u{1b}[31m");
        assert_eq!(
            redact_url("http://h/a\x1b[31m", true),
            "http://h/a\\u{1b}[31m"
        );
    }

    #[test]
    fn words_with_controls_bidi_or_spaces_are_unfit() {
        assert_eq!(first_unfit_in_word("https://a.example.com/x?y=é"), None);
        for (s, c) in [
            ("a\x1b[31m", '\x1b'),
            ("a\nb", '\n'),
            ("a b", ' '),
            ("a\tb", '\t'),
            ("a\u{202e}b", '\u{202e}'),
            ("a\u{a0}b", '\u{a0}'),
            ("a\u{85}b", '\u{85}'),
        ] {
            assert_eq!(first_unfit_in_word(s), Some(c), "{s:?}");
        }
    }
}
