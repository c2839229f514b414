//! Tolerant, pure parsing of token endpoint replies (RFC 6749 §5.1 and what providers
//! really send), and of their error replies (§5.2).

use serde::Deserialize;

use crate::clock::Ts;
use crate::schedule::plan::Expiry;
use crate::secret::Secret;
pub use crate::store::record::ExpirySource;

/// A successful token reply, normalised.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenReply {
    pub access_token: Secret,
    /// `Bearer` whatever case the provider used; other types kept as sent.
    pub token_type: String,
    /// Seconds, when given and positive.
    pub expires_in: Option<i64>,
    pub refresh_token: Option<Secret>,
    pub refresh_token_expires_in: Option<i64>,
    pub scope: Option<String>,
    pub id_token: Option<Secret>,
}

/// A number that some providers send as a string.
#[derive(Deserialize)]
#[serde(untagged)]
enum Num {
    I(i64),
    F(f64),
    S(String),
}

impl Num {
    fn get(&self) -> Option<i64> {
        match self {
            Num::I(i) => Some(*i),
            Num::F(f) if f.is_finite() => Some(*f as i64),
            Num::F(_) => None,
            Num::S(s) => s.trim().parse().ok(),
        }
    }
}

#[derive(Deserialize)]
struct Raw {
    access_token: Option<String>,
    token_type: Option<String>,
    expires_in: Option<Num>,
    refresh_token: Option<String>,
    refresh_token_expires_in: Option<Num>,
    scope: Option<serde_json::Value>,
    id_token: Option<String>,
    error: Option<String>,
}

/// An OAuth error reply: `error` and optional `error_description`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ErrorReply {
    pub error: String,
    pub error_description: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("the reply is not JSON ({0})")]
    NotJson(String),
    #[error("the reply is an OAuth error: {}", describe(.0))]
    OAuth(ErrorReply),
    #[error("the reply has no access_token")]
    NoAccessToken,
    #[error(
        "the reply's {0} holds characters not allowed in an HTTP header (control characters, spaces or non-ASCII); refused"
    )]
    UnsafeToken(&'static str),
}

/// The longest `error_description` we repeat.
const DESCRIPTION_MAX: usize = 300;

/// `error (description)`, escaped (the text comes from the server) and shortened.
pub fn describe(e: &ErrorReply) -> String {
    let error = crate::sanitize::escape(&e.error.chars().take(80).collect::<String>());
    match &e.error_description {
        Some(d) if !d.is_empty() => {
            let mut d: String = d.chars().take(DESCRIPTION_MAX).collect();
            if d.len() < e.error_description.as_deref().map_or(0, str::len) {
                d.push('…');
            }
            format!("{error} ({})", crate::sanitize::escape(&d))
        }
        _ => error,
    }
}

/// Whether a token (or token type) can go into an HTTP header as it is: visible ASCII,
/// no space. A CR/LF in a token would otherwise split the header it is written into.
pub fn header_safe(t: &str) -> bool {
    !t.is_empty() && t.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

/// Parses an error body, if it is an OAuth error.
pub fn parse_error(body: &[u8]) -> Option<ErrorReply> {
    serde_json::from_slice::<ErrorReply>(body).ok()
}

pub fn parse(body: &[u8]) -> Result<TokenReply, ReplyError> {
    parse_nested(body, None)
}

/// Like [`parse`], but the token may sit under `nesting` (Slack's `authed_user`); a reply
/// without that key is read at the top level (Slack's refresh replies are flat).
pub fn parse_nested(body: &[u8], nesting: Option<&str>) -> Result<TokenReply, ReplyError> {
    let mut value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| ReplyError::NotJson(e.to_string()))?;
    if !value.is_object() {
        return Err(ReplyError::NotJson("not a JSON object".into()));
    }
    if let Some(key) = nesting
        && value.get("error").is_none()
        && let Some(inner) = value.get(key).filter(|v| v.get("access_token").is_some())
    {
        value = inner.clone();
    }
    let raw: Raw = serde_json::from_value(value).map_err(|e| ReplyError::NotJson(e.to_string()))?;
    if let Some(error) = raw.error {
        let description = parse_error(body).and_then(|e| e.error_description);
        return Err(ReplyError::OAuth(ErrorReply {
            error,
            error_description: description,
        }));
    }
    let access_token = raw
        .access_token
        .filter(|t| !t.is_empty())
        .ok_or(ReplyError::NoAccessToken)?;
    if !header_safe(&access_token) {
        return Err(ReplyError::UnsafeToken("access_token"));
    }
    if raw.id_token.as_deref().is_some_and(|t| !header_safe(t)) {
        return Err(ReplyError::UnsafeToken("id_token"));
    }
    let token_type = match raw.token_type {
        Some(t) if t.eq_ignore_ascii_case("bearer") => "Bearer".to_string(),
        Some(t) if !t.is_empty() && header_safe(&t) => t,
        Some(t) if !t.is_empty() => return Err(ReplyError::UnsafeToken("token_type")),
        _ => "Bearer".to_string(),
    };
    let scope = match raw.scope {
        Some(serde_json::Value::String(s)) => Some(s),
        Some(serde_json::Value::Array(a)) => Some(
            a.iter()
                .filter_map(|v| v.as_str())
                .collect::<Vec<_>>()
                .join(" "),
        ),
        _ => None,
    }
    .map(|s| crate::sanitize::escape(&s));
    Ok(TokenReply {
        access_token: Secret::new(access_token),
        token_type,
        // `expires_in: 0` or negative says nothing usable; treat it as absent.
        expires_in: raw.expires_in.and_then(|n| n.get()).filter(|&n| n > 0),
        refresh_token: raw.refresh_token.filter(|t| !t.is_empty()).map(Secret::new),
        refresh_token_expires_in: raw
            .refresh_token_expires_in
            .and_then(|n| n.get())
            .filter(|&n| n > 0),
        scope,
        id_token: raw.id_token.map(Secret::new),
    })
}

/// The token's expiry: `expires_in` from `now`, else the JWT `exp`, else unknown.
pub fn expiry_of(reply: &TokenReply, now: Ts) -> (Expiry, ExpirySource) {
    if let Some(s) = reply.expires_in {
        return (
            Expiry::At(now.plus_ms(s.saturating_mul(1000))),
            ExpirySource::ExpiresIn,
        );
    }
    if let Some(exp) = super::jwt::exp_secs(reply.access_token.expose()) {
        return (Expiry::At(Ts::from_secs(exp)), ExpirySource::JwtExp);
    }
    (Expiry::Unknown, ExpirySource::Unknown)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    #[test]
    fn tokens_must_be_header_safe_and_errors_are_escaped() {
        for body in [
            "{\"access_token\":\"a\\r\\nX-Evil: 1\"}",
            "{\"access_token\":\"a b\"}",
            "{\"access_token\":\"caf\\u00e9\"}",
            "{\"access_token\":\"a\",\"id_token\":\"x\\ny\"}",
            "{\"access_token\":\"a\",\"token_type\":\"Bearer\\r\\nX: 1\"}",
        ] {
            assert!(
                matches!(parse(body.as_bytes()), Err(ReplyError::UnsafeToken(_))),
                "{body}"
            );
        }
        assert!(parse(br#"{"access_token":"xoxp-1|a.b~c+/=="}"#).is_ok());
        let e = ErrorReply {
            error: "invalid_client".into(),
            error_description: Some("\x1b[31mred\x07\r\nforged".into()),
        };
        assert_eq!(
            describe(&e),
            "invalid_client (\\u{1b}[31mred\\u{7}\\r\\nforged)"
        );
    }

    #[test]
    fn tolerant_forms() {
        let r = parse(
            br#"{"access_token":"a","token_type":"bearer","expires_in":"3600","scope":"x y"}"#,
        )
        .unwrap();
        assert_eq!(r.token_type, "Bearer");
        assert_eq!(r.expires_in, Some(3600));
        assert_eq!(r.scope.as_deref(), Some("x y"));
        let r = parse(br#"{"access_token":"a","expires_in":0}"#).unwrap();
        assert_eq!(r.expires_in, None);
        assert_eq!(r.token_type, "Bearer");
        let r = parse(br#"{"access_token":"a","token_type":"DPoP","expires_in":59.9,"refresh_token":"r","refresh_token_expires_in":100}"#).unwrap();
        assert_eq!(r.token_type, "DPoP");
        assert_eq!(r.expires_in, Some(59));
        assert_eq!(r.refresh_token.unwrap().expose(), "r");
        assert_eq!(r.refresh_token_expires_in, Some(100));
    }

    #[test]
    fn errors() {
        assert!(matches!(parse(b"<html>"), Err(ReplyError::NotJson(_))));
        assert_eq!(
            parse(br#"{"token_type":"Bearer"}"#),
            Err(ReplyError::NoAccessToken)
        );
        assert_eq!(
            parse(br#"{"access_token":""}"#),
            Err(ReplyError::NoAccessToken)
        );
        let e = parse(br#"{"error":"invalid_client","error_description":"bad"}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the reply is an OAuth error: invalid_client (bad)"
        );
        assert!(matches!(parse(b"[]"), Err(ReplyError::NotJson(_))));
    }

    #[test]
    fn nested_replies() {
        // Slack's code exchange: the user token under authed_user; refresh replies are flat.
        let body = br#"{"ok":true,"access_token":"bot","authed_user":{"access_token":"user","refresh_token":"r","expires_in":43200,"token_type":"user"}}"#;
        let r = parse_nested(body, Some("authed_user")).unwrap();
        assert_eq!(
            (r.access_token.expose(), r.expires_in),
            ("user", Some(43200))
        );
        let flat = parse_nested(
            br#"{"ok":true,"access_token":"a2","refresh_token":"r2"}"#,
            Some("authed_user"),
        )
        .unwrap();
        assert_eq!(flat.access_token.expose(), "a2");
        let e = parse_nested(
            br#"{"ok":false,"error":"invalid_refresh_token"}"#,
            Some("authed_user"),
        )
        .unwrap_err();
        assert!(matches!(e, ReplyError::OAuth(ref o) if o.error == "invalid_refresh_token"));
    }

    #[test]
    fn expiry_sources() {
        let now = Ts::from_secs(1000);
        let r = parse(br#"{"access_token":"a","expires_in":60}"#).unwrap();
        assert_eq!(
            expiry_of(&r, now),
            (Expiry::At(Ts::from_secs(1060)), ExpirySource::ExpiresIn)
        );
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"exp":5000}"#);
        let body = format!(r#"{{"access_token":"h.{payload}.s"}}"#);
        let r = parse(body.as_bytes()).unwrap();
        assert_eq!(
            expiry_of(&r, now),
            (Expiry::At(Ts::from_secs(5000)), ExpirySource::JwtExp)
        );
        let r = parse(br#"{"access_token":"opaque"}"#).unwrap();
        assert_eq!(expiry_of(&r, now), (Expiry::Unknown, ExpirySource::Unknown));
    }
}
