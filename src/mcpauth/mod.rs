//! MCP-native authorization (the MCP authorization spec, 2025-11-25): the pure decisions.
//! Parsing a `WWW-Authenticate` challenge, the well-known URLs to try and in which order
//! (RFC 9728 protected resource metadata, RFC 8414 / OIDC authorization server metadata),
//! the canonical resource URL (RFC 8707), and the checks on both metadata documents.
//! `discover` does the HTTP around them.

pub mod discover;
pub mod interactive;

use crate::config::check_endpoint_url;
use crate::sanitize::{escape, first_unfit_in_word};

/// What a server's `Bearer` challenge says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Challenge {
    /// URL of the server's protected resource metadata (RFC 9728 §5.1).
    pub resource_metadata: Option<String>,
    /// Scopes the server wants (space separated in the header). A value holding a control
    /// character, other white space or a bidi override is dropped by the parser, so the
    /// scopes split from it are fit to ask for, store and show.
    pub scope: Option<String>,
    /// `invalid_token`, `insufficient_scope`...
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// Splits a header value into tokens: bare words, `=`, `,`, and quoted strings (RFC 9110
/// §5.6.4, backslash escapes resolved). `None` for an unterminated quote.
fn lex(s: &str) -> Option<Vec<Tok>> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            ' ' | '\t' => {
                chars.next();
            }
            ',' => {
                chars.next();
                out.push(Tok::Comma);
            }
            '=' => {
                chars.next();
                out.push(Tok::Eq);
            }
            '"' => {
                chars.next();
                let mut v = String::new();
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => v.push(chars.next()?),
                        x => v.push(x),
                    }
                }
                out.push(Tok::Quoted(v));
            }
            _ => {
                let mut w = String::new();
                while let Some(&x) = chars.peek() {
                    if matches!(x, ' ' | '\t' | ',' | '=' | '"') {
                        break;
                    }
                    w.push(x);
                    chars.next();
                }
                out.push(Tok::Word(w));
            }
        }
    }
    Some(out)
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Word(String),
    Quoted(String),
    Eq,
    Comma,
}

/// Parses the `Bearer` challenge among the challenges of one `WWW-Authenticate` value
/// (RFC 9110 §11.6.1: `scheme param=value, param="value", Other-scheme ...`). `None` when
/// there is no Bearer challenge or the value does not parse.
pub fn parse_www_authenticate(value: &str) -> Option<Challenge> {
    let toks = lex(value)?;
    let mut i = 0;
    let mut found: Option<Challenge> = None;
    let mut current_is_bearer = false;
    while i < toks.len() {
        match (&toks[i], toks.get(i + 1), toks.get(i + 2)) {
            (Tok::Comma, _, _) => i += 1,
            // name = value: a parameter of the current challenge.
            (Tok::Word(name), Some(Tok::Eq), Some(Tok::Word(v) | Tok::Quoted(v))) => {
                if current_is_bearer && let Some(c) = found.as_mut() {
                    let slot = match name.to_ascii_lowercase().as_str() {
                        "resource_metadata" => Some(&mut c.resource_metadata),
                        "scope" => Some(&mut c.scope),
                        "error" => Some(&mut c.error),
                        "error_description" => Some(&mut c.error_description),
                        _ => None,
                    };
                    if let Some(slot) = slot
                        && slot.is_none()
                    {
                        *slot = Some(v.clone());
                    }
                }
                i += 3;
            }
            (Tok::Word(name), Some(Tok::Eq), _) => {
                // token68 (`abc==`) or a parameter without a value: skip the `=` run.
                let _ = name;
                i += 2;
                while matches!(toks.get(i), Some(Tok::Eq)) {
                    i += 1;
                }
            }
            // A word not followed by `=`: a new challenge's scheme (or a token68).
            (Tok::Word(scheme), _, _) => {
                current_is_bearer = scheme.eq_ignore_ascii_case("bearer");
                if current_is_bearer && found.is_none() {
                    found = Some(Challenge::default());
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
    // Scopes are separated by spaces (RFC 6750 §3); any other control character, white
    // space or bidi override makes the value no list of scopes: dropped.
    if let Some(c) = found.as_mut()
        && c.scope
            .as_deref()
            .is_some_and(|s| s.split(' ').any(|w| first_unfit_in_word(w).is_some()))
    {
        c.scope = None;
    }
    found
}

/// The canonical URI of an MCP server as a resource indicator (RFC 8707; the MCP spec's
/// "canonical server URI"): absolute, https or loopback http, no fragment, lower-case
/// scheme and host, no default port, and no trailing slash on an empty path.
pub fn canonical_resource(url: &str) -> Result<String, String> {
    let u = reqwest::Url::parse(url).map_err(|e| format!("`{url}` is not a valid URL: {e}"))?;
    if u.fragment().is_some() {
        return Err(format!(
            "`{url}` has a fragment (#...); an MCP server URL cannot have one"
        ));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(format!(
            "`{url}` carries a user name or password; remove them from the URL"
        ));
    }
    check_endpoint_url(url)?;
    let mut s = u.to_string();
    if u.path() == "/" && u.query().is_none() {
        s.pop();
    }
    Ok(s)
}

/// Where a server's protected resource metadata may be (RFC 9728 §3.1), in the order the
/// MCP spec tries them: the path-inserted form, then the root.
pub fn prm_candidates(server_url: &str) -> Vec<String> {
    well_known(server_url, "oauth-protected-resource", true)
}

fn origin_and_path(url: &str) -> Option<(String, String)> {
    let u = reqwest::Url::parse(url).ok()?;
    let origin = u.origin().ascii_serialization();
    let path = u.path().trim_end_matches('/').to_string();
    Some((origin, path))
}

fn well_known(url: &str, suffix: &str, root_too: bool) -> Vec<String> {
    let Some((origin, path)) = origin_and_path(url) else {
        return vec![];
    };
    let mut v = Vec::new();
    if !path.is_empty() {
        v.push(format!("{origin}/.well-known/{suffix}{path}"));
        if !root_too {
            return v;
        }
    }
    v.push(format!("{origin}/.well-known/{suffix}"));
    v
}

/// Where an authorization server's metadata may be, in the MCP spec's order: for an
/// issuer with a path, RFC 8414 path-inserted, OIDC path-inserted, then OIDC appended;
/// without a path, RFC 8414 then OIDC at the root.
pub fn as_metadata_candidates(issuer: &str) -> Vec<String> {
    let Some((origin, path)) = origin_and_path(issuer) else {
        return vec![];
    };
    if path.is_empty() {
        vec![
            format!("{origin}/.well-known/oauth-authorization-server"),
            format!("{origin}/.well-known/openid-configuration"),
        ]
    } else {
        vec![
            format!("{origin}/.well-known/oauth-authorization-server{path}"),
            format!("{origin}/.well-known/openid-configuration{path}"),
            format!("{origin}{path}/.well-known/openid-configuration"),
        ]
    }
}

/// The parts of a protected resource metadata document (RFC 9728 §2) a client uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceMetadata {
    pub resource: String,
    pub authorization_servers: Vec<String>,
    pub scopes_supported: Vec<String>,
}

/// The strings of a list in a metadata document (`what` at `from`): scopes, methods, grant
/// types and issuers are single words, so an item with a control character or white space
/// refuses the document (it would otherwise travel into requests, messages and files).
fn str_list(
    doc: &serde_json::Value,
    key: &str,
    what: &str,
    from: &str,
) -> Result<Vec<String>, String> {
    let items: Vec<String> = doc
        .get(key)
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if let Some(bad) = items.iter().find(|i| first_unfit_in_word(i).is_some()) {
        return Err(format!(
            "the {what} at {from} lists `{}` under `{key}`, which holds a control character or white space; refused: ask the server's operator to fix its metadata",
            escape(bad)
        ));
    }
    Ok(items)
}

fn same_url(a: &str, b: &str) -> bool {
    let norm = |s: &str| canonical_resource(s).unwrap_or_else(|_| s.to_string());
    norm(a) == norm(b)
}

/// Checks a protected resource metadata document fetched from `from` for the server at
/// `server_url` (canonical): its `resource` must be that server (RFC 9728 §3.3, so one
/// server cannot send a client to another's authorization server), and every
/// authorization server must be https (or loopback http).
pub fn check_resource_metadata(
    doc: &serde_json::Value,
    server_url: &str,
    from: &str,
) -> Result<ResourceMetadata, String> {
    let resource = doc
        .get("resource")
        .and_then(|v| v.as_str())
        .ok_or_else(|| format!("the protected resource metadata at {from} has no `resource`"))?;
    if !same_url(resource, server_url) {
        return Err(format!(
            "the protected resource metadata at {from} is for `{}`, not for this server ({server_url}); check the server's `url`",
            escape(resource)
        ));
    }
    const PRM: &str = "protected resource metadata";
    let authorization_servers = str_list(doc, "authorization_servers", PRM, from)?;
    if authorization_servers.is_empty() {
        return Err(format!(
            "the protected resource metadata at {from} names no authorization server; set `authorization_server` under `auth.oauth`"
        ));
    }
    for a in &authorization_servers {
        check_endpoint_url(a).map_err(|m| {
            format!("the protected resource metadata at {from} names an unacceptable authorization server: {m}")
        })?;
    }
    Ok(ResourceMetadata {
        resource: resource.to_string(),
        authorization_servers,
        scopes_supported: str_list(doc, "scopes_supported", PRM, from)?,
    })
}

/// The parts of an authorization server's metadata (RFC 8414 §2) a client uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerMetadata {
    pub issuer: String,
    pub token_endpoint: String,
    pub authorization_endpoint: Option<String>,
    pub registration_endpoint: Option<String>,
    pub code_challenge_methods_supported: Vec<String>,
    pub scopes_supported: Vec<String>,
    pub token_endpoint_auth_methods_supported: Vec<String>,
    pub grant_types_supported: Vec<String>,
    pub revocation_endpoint: Option<String>,
    /// RFC 9207: the server puts `iss` on every authorization response.
    pub iss_parameter_supported: bool,
}

impl ServerMetadata {
    /// Refuses a server that does not announce PKCE S256: the MCP spec forbids the
    /// interactive grant without it.
    pub fn require_s256(&self) -> Result<(), String> {
        if self
            .code_challenge_methods_supported
            .iter()
            .any(|m| m == "S256")
        {
            Ok(())
        } else {
            Err(format!(
                "authorization server {} does not announce PKCE S256 (code_challenge_methods_supported), which MCP requires for a login; ask its operator to enable PKCE",
                self.issuer
            ))
        }
    }
}

/// The `issuer` a metadata document fetched from `from` names, if any; one that is not
/// `issuer` (RFC 8414 §3.3, a trailing `/` aside) refuses the document.
pub fn check_metadata_issuer<'d>(
    doc: &'d serde_json::Value,
    issuer: &str,
    from: &str,
) -> Result<Option<&'d str>, String> {
    let Some(got) = doc.get("issuer").and_then(|v| v.as_str()) else {
        return Ok(None);
    };
    if got.trim_end_matches('/') != issuer.trim_end_matches('/') {
        return Err(format!(
            "the authorization server metadata at {from} is for issuer `{}`, not `{issuer}`; refused",
            escape(got)
        ));
    }
    Ok(Some(got))
}

/// RFC 9207: whether the metadata says the server puts `iss` on every authorization
/// response.
pub fn iss_parameter_supported(doc: &serde_json::Value) -> bool {
    doc.get("authorization_response_iss_parameter_supported")
        .and_then(|v| v.as_bool())
        .unwrap_or(false)
}

/// Checks authorization server metadata fetched from `from` for `issuer`: the document's
/// `issuer` must be exactly that issuer (RFC 8414 §3.3) and every endpoint https (or
/// loopback http).
pub fn check_server_metadata(
    doc: &serde_json::Value,
    issuer: &str,
    from: &str,
) -> Result<ServerMetadata, String> {
    let got = check_metadata_issuer(doc, issuer, from)?
        .ok_or_else(|| format!("the authorization server metadata at {from} has no `issuer`"))?;
    let url = |key: &str| -> Result<Option<String>, String> {
        match doc.get(key).and_then(|v| v.as_str()) {
            None => Ok(None),
            Some(u) => {
                check_endpoint_url(u).map_err(|m| {
                    format!("the authorization server metadata at {from}: `{key}` {m}")
                })?;
                Ok(Some(u.to_string()))
            }
        }
    };
    let list = |key: &str| str_list(doc, key, "authorization server metadata", from);
    let token_endpoint = url("token_endpoint")?.ok_or_else(|| {
        format!("the authorization server metadata at {from} lists no `token_endpoint`")
    })?;
    Ok(ServerMetadata {
        issuer: got.to_string(),
        token_endpoint,
        authorization_endpoint: url("authorization_endpoint")?,
        registration_endpoint: url("registration_endpoint")?,
        code_challenge_methods_supported: list("code_challenge_methods_supported")?,
        scopes_supported: list("scopes_supported")?,
        token_endpoint_auth_methods_supported: list("token_endpoint_auth_methods_supported")?,
        grant_types_supported: list("grant_types_supported")?,
        revocation_endpoint: url("revocation_endpoint")?,
        iss_parameter_supported: iss_parameter_supported(doc),
    })
}

/// The scopes to ask for, in the spec's order: the configuration's, else the challenge's
/// `scope`, else the resource metadata's `scopes_supported`, else none.
pub fn scopes_to_request(
    configured: &[String],
    challenge: Option<&Challenge>,
    prm: &ResourceMetadata,
) -> Vec<String> {
    if !configured.is_empty() {
        return configured.to_vec();
    }
    if let Some(s) = challenge.and_then(|c| c.scope.as_deref()) {
        let v: Vec<String> = s.split_whitespace().map(str::to_string).collect();
        if !v.is_empty() {
            return v;
        }
    }
    prm.scopes_supported.clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn www_authenticate_bearer_parameters() {
        let c = parse_www_authenticate(
            r#"Bearer error="invalid_token", error_description="Authentication required", resource_metadata="http://127.0.0.1:9/.well-known/oauth-protected-resource/mcp""#,
        )
        .unwrap();
        assert_eq!(
            c.resource_metadata.as_deref(),
            Some("http://127.0.0.1:9/.well-known/oauth-protected-resource/mcp")
        );
        assert_eq!(c.error.as_deref(), Some("invalid_token"));
        // Several challenges, a token68 scheme first, unquoted values, escapes, case.
        let c = parse_www_authenticate(
            r#"Negotiate abc==, Basic realm="x, y", bearer scope="files:read files:write", error=insufficient_scope, error_description="say \"hi\"""#,
        )
        .unwrap();
        assert_eq!(c.scope.as_deref(), Some("files:read files:write"));
        assert_eq!(c.error.as_deref(), Some("insufficient_scope"));
        assert_eq!(c.error_description.as_deref(), Some("say \"hi\""));
        assert_eq!(c.resource_metadata, None);
        // Parameters of other schemes are not the Bearer challenge's.
        let c = parse_www_authenticate(r#"Bearer realm="a", DPoP scope="x""#).unwrap();
        assert_eq!(c.scope, None);
        assert_eq!(parse_www_authenticate(r#"Basic realm="x""#), None);
        assert_eq!(
            parse_www_authenticate(r#"Bearer scope="unterminated"#),
            None
        );
        assert_eq!(parse_www_authenticate("Bearer"), Some(Challenge::default()));
        // A scope with a control character, a tab or a bidi override is dropped; the rest
        // of the challenge stays.
        for v in [
            "Bearer error=insufficient_scope, scope=\"a\x1b[31mb c\"",
            "Bearer error=insufficient_scope, scope=\"a\tb\"",
            "Bearer error=insufficient_scope, scope=\"a\u{202e}b\"",
            "Bearer error=insufficient_scope, scope=\"a\r\nb\"",
        ] {
            let c = parse_www_authenticate(v).unwrap();
            assert_eq!(c.scope, None, "{v:?}");
            assert_eq!(c.error.as_deref(), Some("insufficient_scope"), "{v:?}");
        }
    }

    /// Every list item and URL a hostile server could slip a control character into.
    #[test]
    fn metadata_with_control_characters_is_refused_and_shown_escaped() {
        let from = "http://127.0.0.1:9/.well-known/oauth-protected-resource/mcp";
        let server = "http://127.0.0.1:9/mcp";
        for (key, bad) in [
            ("scopes_supported", json!(["mcp:tools", "x\x1b[31mFORGED"])),
            ("scopes_supported", json!(["a\nb"])),
            (
                "authorization_servers",
                json!(["http://127.0.0.1:9/as\x1b]0;t\x07"]),
            ),
        ] {
            let mut doc =
                json!({"resource": server, "authorization_servers": ["http://127.0.0.1:9/as"]});
            doc[key] = bad;
            let e = check_resource_metadata(&doc, server, from).unwrap_err();
            assert!(e.contains(key) || e.contains("no URL may hold"), "{e}");
            assert!(e.contains("\\u{") || e.contains("\\n"), "{e}");
            assert!(!e.chars().any(char::is_control), "{e:?}");
        }
        let evil = json!({"resource": "http://127.0.0.1:9/other\x1b[2J", "authorization_servers": ["http://127.0.0.1:9/as"]});
        let e = check_resource_metadata(&evil, server, from).unwrap_err();
        assert!(!e.chars().any(char::is_control), "{e:?}");
        let issuer = "http://127.0.0.1:9/as";
        let base = json!({"issuer": issuer, "token_endpoint": "http://127.0.0.1:9/token"});
        for (key, bad) in [
            ("scopes_supported", json!(["ok", "x\x07"])),
            ("grant_types_supported", json!(["client_credentials\r\n"])),
            ("code_challenge_methods_supported", json!(["S256 plain"])),
            (
                "token_endpoint_auth_methods_supported",
                json!(["none\u{202e}"]),
            ),
            ("token_endpoint", json!("http://127.0.0.1:9/token\x1b[31m")),
            ("issuer", json!("http://127.0.0.1:9/as\x1b[31mX")),
        ] {
            let mut doc = base.clone();
            doc[key] = bad;
            let e = check_server_metadata(&doc, issuer, "u").unwrap_err();
            assert!(e.contains(&format!("`{key}`")) || key == "issuer", "{e}");
            assert!(!e.chars().any(char::is_control), "{e:?}");
        }
    }

    #[test]
    fn canonical_resources() {
        assert_eq!(
            canonical_resource("HTTPS://MCP.Example.com:443/mcp").unwrap(),
            "https://mcp.example.com/mcp"
        );
        assert_eq!(
            canonical_resource("https://mcp.example.com/").unwrap(),
            "https://mcp.example.com"
        );
        assert_eq!(
            canonical_resource("http://127.0.0.1:8080/mcp/").unwrap(),
            "http://127.0.0.1:8080/mcp/"
        );
        assert!(
            canonical_resource("https://x.example.com/mcp#a")
                .unwrap_err()
                .contains("fragment")
        );
        assert!(
            canonical_resource("http://x.example.com/mcp")
                .unwrap_err()
                .contains("plain http")
        );
        assert!(canonical_resource("https://u:p@x.example.com/").is_err());
    }

    #[test]
    fn well_known_orders() {
        assert_eq!(
            prm_candidates("https://h.example.com/public/mcp"),
            [
                "https://h.example.com/.well-known/oauth-protected-resource/public/mcp",
                "https://h.example.com/.well-known/oauth-protected-resource"
            ]
        );
        assert_eq!(
            prm_candidates("https://h.example.com"),
            ["https://h.example.com/.well-known/oauth-protected-resource"]
        );
        assert_eq!(
            as_metadata_candidates("https://auth.example.com/tenant1"),
            [
                "https://auth.example.com/.well-known/oauth-authorization-server/tenant1",
                "https://auth.example.com/.well-known/openid-configuration/tenant1",
                "https://auth.example.com/tenant1/.well-known/openid-configuration"
            ]
        );
        assert_eq!(
            as_metadata_candidates("https://auth.example.com/"),
            [
                "https://auth.example.com/.well-known/oauth-authorization-server",
                "https://auth.example.com/.well-known/openid-configuration"
            ]
        );
    }

    #[test]
    fn resource_metadata_checks() {
        let from = "https://h.example.com/.well-known/oauth-protected-resource/mcp";
        let ok = json!({"resource": "https://h.example.com/mcp", "authorization_servers": ["https://as.example.com"], "scopes_supported": ["a", "b"]});
        let m = check_resource_metadata(&ok, "https://h.example.com/mcp", from).unwrap();
        assert_eq!(m.authorization_servers, ["https://as.example.com"]);
        assert_eq!(m.scopes_supported, ["a", "b"]);
        let other = json!({"resource": "https://evil.example.com/mcp", "authorization_servers": ["https://as.example.com"]});
        assert!(
            check_resource_metadata(&other, "https://h.example.com/mcp", from)
                .unwrap_err()
                .contains("not for this server")
        );
        let plain = json!({"resource": "https://h.example.com/mcp", "authorization_servers": ["http://as.example.com"]});
        assert!(
            check_resource_metadata(&plain, "https://h.example.com/mcp", from)
                .unwrap_err()
                .contains("plain http")
        );
        let none = json!({"resource": "https://h.example.com/mcp"});
        assert!(
            check_resource_metadata(&none, "https://h.example.com/mcp", from)
                .unwrap_err()
                .contains("names no authorization server")
        );
    }

    #[test]
    fn server_metadata_checks() {
        let doc = json!({"issuer": "https://as.example.com", "token_endpoint": "https://as.example.com/token", "code_challenge_methods_supported": ["S256"], "registration_endpoint": "https://as.example.com/reg"});
        let m = check_server_metadata(&doc, "https://as.example.com", "u").unwrap();
        assert_eq!(m.token_endpoint, "https://as.example.com/token");
        assert!(m.require_s256().is_ok());
        let no_pkce = json!({"issuer": "https://as.example.com", "token_endpoint": "https://as.example.com/token", "code_challenge_methods_supported": ["plain"]});
        let m = check_server_metadata(&no_pkce, "https://as.example.com", "u").unwrap();
        assert!(m.require_s256().unwrap_err().contains("PKCE S256"));
        let wrong_issuer = json!({"issuer": "https://evil.example.com", "token_endpoint": "https://as.example.com/token"});
        assert!(
            check_server_metadata(&wrong_issuer, "https://as.example.com", "u")
                .unwrap_err()
                .contains("not `https://as.example.com`")
        );
        let plain = json!({"issuer": "https://as.example.com", "token_endpoint": "http://as.example.com/token"});
        assert!(
            check_server_metadata(&plain, "https://as.example.com", "u")
                .unwrap_err()
                .contains("`token_endpoint`")
        );
    }

    #[test]
    fn scope_order() {
        let prm = ResourceMetadata {
            resource: "r".into(),
            authorization_servers: vec![],
            scopes_supported: vec!["s1".into()],
        };
        let ch = Challenge {
            scope: Some("c1 c2".into()),
            ..Default::default()
        };
        assert_eq!(scopes_to_request(&["x".into()], Some(&ch), &prm), ["x"]);
        assert_eq!(scopes_to_request(&[], Some(&ch), &prm), ["c1", "c2"]);
        assert_eq!(scopes_to_request(&[], None, &prm), ["s1"]);
    }
}
