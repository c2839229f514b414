//! What goes into MCP config files: per-server entries with their headers (pure, here),
//! each editor's format (`formats`), in-place JSONC edits (`jsonc`), the merge with what is
//! in a file and which entries are ours (`merge`), its one-pass fast path (`spans`),
//! where the files are (`targets`), and the one writer that touches them (`write`).

pub mod formats;
pub mod jsonc;
pub mod merge;
pub mod spans;
pub mod targets;
pub mod write;

use std::collections::HashMap;
use std::fmt;

use crate::binding;
use crate::config::{BearerToken, Config, IdentityConfig, Kind, ServerAuth, Transport};
use crate::store::TokenRecord;

/// One server as every format needs it. Header values hold tokens: Debug hides them.
#[derive(Clone, PartialEq, Eq)]
pub struct ServerEntry {
    pub name: String,
    pub url: String,
    pub transport: Transport,
    /// `None`: write no `headers` key (no token available, or `auth: none`).
    pub headers: Option<Vec<(String, String)>>,
}

impl fmt::Debug for ServerEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Option<Vec<&str>> = self
            .headers
            .as_ref()
            .map(|h| h.iter().map(|(k, _)| k.as_str()).collect());
        f.debug_struct("ServerEntry")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("transport", &self.transport)
            .field("header_names", &names)
            .finish()
    }
}

/// The token a server receives from `id`: the access token, or the ID token for a
/// Cognito service account configured with `bearer: id_token`.
/// A stored token that could split a header (written by another tool, or edited by hand)
/// counts as no token.
pub fn bearer_of<'a>(id: &IdentityConfig, rec: &'a TokenRecord) -> Option<&'a str> {
    match id.cognito().map(|c| c.bearer) {
        Some(BearerToken::IdToken) => rec.id_token.as_ref().map(|t| t.expose()),
        _ => Some(rec.access_token.expose()),
    }
    .filter(|t| crate::identity::reply::header_safe(t))
}

/// The gateway's ingress headers for a token of `id`.
pub fn gateway_headers(id: &IdentityConfig, rec: &TokenRecord) -> Option<Vec<(String, String)>> {
    let mut h = vec![(
        "X-Authorization".to_string(),
        format!("Bearer {}", bearer_of(id, rec)?),
    )];
    match id.kind {
        Kind::CognitoM2m { .. } | Kind::CognitoPassword { .. } => {
            h.push((
                "X-User-Pool-Id".into(),
                id.user_pool_id().map(str::to_string).unwrap_or_default(),
            ));
            h.push(("X-Client-Id".into(), id.client_id.clone()));
            h.push((
                "X-Region".into(),
                id.region()
                    .map(str::to_string)
                    .unwrap_or_else(|| "us-east-1".into()),
            ));
        }
        Kind::OidcM2m { .. } | Kind::Egress(_) => {
            h.push(("X-Client-Id".into(), id.client_id.clone()))
        }
    }
    h.extend(id.extra_headers.iter().cloned());
    Some(h)
}

/// `{header}: {scheme} {token}` for a server bound to a named identity.
fn bound_header(
    config: &Config,
    records: &HashMap<String, TokenRecord>,
    name: &str,
    header: &str,
    scheme: &str,
) -> Option<Vec<(String, String)>> {
    let id = config.identity(name)?;
    let rec = records.get(name).filter(|r| binding::matches(r, id))?;
    let token = bearer_of(id, rec)?;
    let value = if scheme.is_empty() {
        token.to_string()
    } else {
        format!("{scheme} {token}")
    };
    let mut out = vec![(header.to_string(), value)];
    // Provider extras: Atlassian's site, in the header MCP servers read it from.
    if let (Some(extra), Some(cloud)) = (
        id.egress().and_then(|e| e.def.extras.cloud_id.as_ref()),
        rec.cloud_id
            .as_ref()
            .filter(|c| crate::identity::reply::header_safe(c)),
    ) {
        out.push((extra.header.clone(), cloud.clone()));
    }
    Some(out)
}

/// Entries for every configured server, given the stored tokens by identity name.
pub fn entries(config: &Config, records: &HashMap<String, TokenRecord>) -> Vec<ServerEntry> {
    // A token obtained for another identity (the configuration changed) is never written.
    let ingress = config
        .ingress
        .as_ref()
        .and_then(|i| records.get(&i.name).filter(|r| binding::matches(r, i)));
    let gateway = match (&config.ingress, ingress) {
        (Some(id), Some(rec)) => gateway_headers(id, rec),
        _ => None,
    };
    config
        .servers
        .iter()
        .map(|s| ServerEntry {
            name: s.name.clone(),
            url: s.url.clone(),
            transport: s.transport,
            headers: match &s.auth {
                ServerAuth::None => None,
                ServerAuth::Gateway => gateway.clone(),
                ServerAuth::Identity {
                    name,
                    header,
                    scheme,
                    gateway: with_gateway,
                } => bound_header(config, records, name, header, scheme).and_then(|h| {
                    if !with_gateway {
                        return Some(h);
                    }
                    // Both are needed; without the gateway token the entry is unusable.
                    let mut all = gateway.clone()?;
                    all.extend(h);
                    Some(all)
                }),
            },
        })
        .collect()
}

/// An entry for unit tests: server `name` at `https://gw/{name}/mcp`, with a gateway
/// bearer header when `tok` is given.
#[cfg(test)]
pub(crate) fn test_entry(name: &str, tok: Option<&str>) -> ServerEntry {
    ServerEntry {
        name: name.into(),
        url: format!("https://gw/{name}/mcp"),
        transport: Transport::StreamableHttp,
        headers: tok.map(|t| vec![("X-Authorization".into(), format!("Bearer {t}"))]),
    }
}
