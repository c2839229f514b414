//! What goes into MCP config files: per-server entries with their headers (pure, here),
//! each editor's format (`formats`), in-place JSONC edits (`jsonc`), the merge with what is
//! in a file and which entries are ours (`merge`), where the files are (`targets`), and the
//! one writer that touches them (`write`).

pub mod formats;
pub mod jsonc;
pub mod merge;
pub mod targets;
pub mod write;

use std::collections::HashMap;
use std::fmt;

use crate::config::{Config, IdentityConfig, IdentityKind, ServerAuth, Transport};
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

/// The gateway's ingress headers for a token of `id`.
pub fn gateway_headers(id: &IdentityConfig, rec: &TokenRecord) -> Vec<(String, String)> {
    let mut h = vec![(
        "X-Authorization".to_string(),
        format!("Bearer {}", rec.access_token.expose()),
    )];
    match id.kind {
        IdentityKind::CognitoM2m => {
            h.push((
                "X-User-Pool-Id".into(),
                id.user_pool_id.clone().unwrap_or_default(),
            ));
            h.push(("X-Client-Id".into(), id.client_id.clone()));
            h.push((
                "X-Region".into(),
                id.region.clone().unwrap_or_else(|| "us-east-1".into()),
            ));
        }
        IdentityKind::OidcM2m => h.push(("X-Client-Id".into(), id.client_id.clone())),
    }
    h.extend(id.extra_headers.iter().cloned());
    h
}

/// Entries for every configured server, given the stored tokens by identity name.
pub fn entries(config: &Config, records: &HashMap<String, TokenRecord>) -> Vec<ServerEntry> {
    let ingress = config.ingress.as_ref().and_then(|i| records.get(&i.name));
    let gateway = match (&config.ingress, ingress) {
        (Some(id), Some(rec)) => Some(gateway_headers(id, rec)),
        _ => None,
    };
    config
        .servers
        .iter()
        .map(|s| ServerEntry {
            name: s.name.clone(),
            url: s.url.clone(),
            transport: s.transport,
            headers: match s.auth {
                ServerAuth::None => None,
                ServerAuth::Gateway => gateway.clone(),
            },
        })
        .collect()
}
