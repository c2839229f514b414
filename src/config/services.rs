//! Import of the reference tool's `registry/servers/*.json` service files as servers.
//!
//! Each file describes one gateway service: `path` ("/currenttime/"), `proxy_pass_url`,
//! `supported_transports`, optional `auth_scheme` / `auth_type`. The URL rules follow the
//! reference tool so that its users get the same URLs.

use serde::Deserialize;

use super::{ServerAuth, ServerConfig, Transport};

#[derive(Deserialize)]
struct ServiceFile {
    path: Option<String>,
    proxy_pass_url: Option<String>,
    #[serde(default)]
    supported_transports: Vec<String>,
}

/// Parses one service file; `Ok(None)` for files that are not services (no `path` or
/// `proxy_pass_url`), as the reference tool skips them.
pub fn parse_service(text: &str, gateway_url: &str) -> Result<Option<ServerConfig>, String> {
    let f: ServiceFile =
        serde_json::from_str(text).map_err(|e| format!("not a service file: {e}"))?;
    let (Some(path), Some(proxy)) = (f.path, f.proxy_pass_url) else {
        return Ok(None);
    };
    let name = path.trim_matches('/').to_string();
    if name.is_empty() {
        return Ok(None);
    }
    let has = |t: &str| f.supported_transports.iter().any(|x| x == t);
    let transport = if f.supported_transports.is_empty() || has("streamable-http") || !has("sse") {
        Transport::StreamableHttp
    } else {
        Transport::Sse
    };
    let suffix = match transport {
        Transport::Sse => "sse",
        Transport::StreamableHttp => "mcp",
    };
    let base = gateway_url.trim_end_matches('/');
    let path = if path.starts_with('/') {
        path
    } else {
        format!("/{path}")
    };
    let proxy_path = reqwest::Url::parse(&proxy)
        .map(|u| u.path().trim_end_matches('/').to_string())
        .unwrap_or_default();
    let url = if path.ends_with('/') {
        format!("{base}{}/{suffix}", path.trim_end_matches('/'))
    } else if proxy_path.ends_with(&format!("/{suffix}")) {
        format!("{base}{path}")
    } else {
        format!("{base}{path}/{suffix}")
    };
    Ok(Some(ServerConfig {
        name,
        url,
        transport,
        auth: ServerAuth::Gateway,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url_of(json: &str) -> Option<(String, String, Transport)> {
        parse_service(json, "https://gw.example.com/")
            .unwrap()
            .map(|s| (s.name, s.url, s.transport))
    }

    #[test]
    fn url_rules() {
        assert_eq!(
            url_of(
                r#"{"path":"/currenttime/","proxy_pass_url":"http://x:8000/","supported_transports":["streamable-http"]}"#
            ),
            Some((
                "currenttime".into(),
                "https://gw.example.com/currenttime/mcp".into(),
                Transport::StreamableHttp
            ))
        );
        assert_eq!(
            url_of(r#"{"path":"/fin","proxy_pass_url":"http://x:8000/mcp"}"#),
            Some((
                "fin".into(),
                "https://gw.example.com/fin".into(),
                Transport::StreamableHttp
            ))
        );
        assert_eq!(
            url_of(
                r#"{"path":"old","proxy_pass_url":"http://x:8000/","supported_transports":["sse"]}"#
            ),
            Some((
                "old".into(),
                "https://gw.example.com/old/sse".into(),
                Transport::Sse
            ))
        );
        assert_eq!(url_of(r#"{"server_name":"state"}"#), None);
        assert_eq!(url_of(r#"{"path":"/","proxy_pass_url":"http://x/"}"#), None);
        assert!(parse_service("{", "https://g").is_err());
    }
}
