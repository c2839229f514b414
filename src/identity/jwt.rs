//! Reads a JWT's claims without verifying it: we only need what the token says about
//! itself (expiry, username), never to trust it.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The payload of a JWT as JSON, or `None` for tokens that are not JWTs (opaque tokens).
pub fn claims(token: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    let mut parts = token.split('.');
    let (_h, p, _s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(p.trim_end_matches('=')).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        serde_json::Value::Object(m) => Some(m),
        _ => None,
    }
}

/// The `exp` claim in seconds, if the token is a JWT that has one.
pub fn exp_secs(token: &str) -> Option<i64> {
    let c = claims(token)?;
    let v = c.get("exp")?;
    v.as_i64().or_else(|| v.as_f64().map(|f| f as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(payload: &str) -> String {
        format!(
            "eyJhbGciOiJub25lIn0.{}.sig",
            URL_SAFE_NO_PAD.encode(payload)
        )
    }

    #[test]
    fn reads_claims() {
        assert_eq!(
            exp_secs(&jwt(r#"{"exp":1700000000,"sub":"a"}"#)),
            Some(1_700_000_000)
        );
        assert_eq!(exp_secs(&jwt(r#"{"exp":1.7e9}"#)), Some(1_700_000_000));
        assert_eq!(exp_secs(&jwt(r#"{"sub":"a"}"#)), None);
        assert_eq!(exp_secs("opaque-token"), None);
        assert_eq!(exp_secs("a.!!!.c"), None);
        assert_eq!(exp_secs(&jwt("[1]")), None);
        assert_eq!(
            claims(&jwt(r#"{"username":"u"}"#)).unwrap()["username"],
            "u"
        );
    }
}
