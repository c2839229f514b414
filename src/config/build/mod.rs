//! The validation both configuration sources share: the YAML file (`parse`) and the
//! reference tool's variables (`env`) each turn their text into raw descriptions, and the
//! rules here turn those into the validated types. A `Source` names the file, key and line
//! of a value in errors, whichever source it came from; a `Secrets` source also reads the
//! secrets it names by reference. `servers`: the servers section and the MCP servers'
//! own identities.

pub mod servers;

use std::collections::BTreeMap;

use super::{
    BearerToken, ClientAuth, CognitoPassword, ConfigError, EgressConfig, Endpoint, IdentityConfig,
    IdentityKind, Kind, ProviderLabel, ServerAuth, ServerConfig, Transport, check_config_name,
    check_endpoint_url, check_redirect_uri, default_server_url,
};
use crate::providers::{Catalog, TokenAuth};
use crate::secret::Secret;

/// Where raw values came from: locates a key for an error.
pub trait Source {
    /// An error about `key`, with the file and line it was read from when known.
    fn err(&self, key: &str, message: String) -> ConfigError;

    /// What to add to "unknown provider": where this source's users define one.
    fn define_provider_hint(&self) -> &'static str;

    /// What to add when a provider's variables cannot be filled from this source.
    fn variables_hint(&self) -> &'static str;

    /// What to add to "no identity named": where this source's users define one.
    fn define_identity_hint(&self) -> &'static str;

    /// A URL tokens or secrets travel to: https, or plain http on loopback only.
    fn url(&self, key: &str, url: &str) -> Result<String, ConfigError> {
        check_endpoint_url(url).map_err(|m| self.err(key, m))?;
        Ok(url.to_string())
    }

    /// A name that becomes part of a path (see `check_name`).
    fn name(&self, key: &str, name: &str) -> Result<(), ConfigError> {
        check_config_name(name).map_err(|m| self.err(key, m))
    }
}

/// A secret as a source gives it: the value itself, or the environment variable or file
/// that holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretSpec {
    Literal(Secret),
    Env(String),
    File(String),
}

/// A source whose secrets may be references (`SecretSpec::Env`, `SecretSpec::File`): the
/// rules read each one only when they reach it, so that a mistake written before it is
/// reported first.
pub trait Secrets: Source {
    /// The secret `spec` names, not empty; errors name `key`.
    fn secret(&self, key: &str, spec: &SecretSpec) -> Result<Secret, ConfigError>;
}

/// How a client proves itself at the token endpoint: a secret, or a private key for
/// `private_key_jwt` (checked here, so a key that cannot sign is a config error). The
/// values are at `{key}.client_secret` and `{key}.private_key`.
pub fn client_credential(
    src: &dyn Secrets,
    key: &str,
    client_secret: Option<&SecretSpec>,
    private_key: Option<&SecretSpec>,
) -> Result<Option<(Secret, ClientAuth)>, ConfigError> {
    let k = |field: &str| format!("{key}.{field}");
    match (client_secret, private_key) {
        (Some(_), Some(_)) => Err(src.err(
            &k("private_key"),
            "give `client_secret` or `private_key`, not both".into(),
        )),
        (Some(spec), None) => Ok(Some((
            src.secret(&k("client_secret"), spec)?,
            ClientAuth::Basic,
        ))),
        (None, Some(spec)) => {
            let pem = src.secret(&k("private_key"), spec)?;
            crate::identity::assertion::SigningKey::from_pem(pem.expose())
                .map_err(|m| src.err(&k("private_key"), m))?;
            Ok(Some((pem, ClientAuth::PrivateKeyJwt)))
        }
        (None, None) => Ok(None),
    }
}

/// The provider catalog: the built-in definitions, then the user's provider files (key,
/// file name, text), then the config's own `providers:` entries.
pub fn catalog(
    files: Vec<(String, String, String)>,
    overlays: impl IntoIterator<Item = (String, yaml_serde::Mapping)>,
) -> Result<Catalog, ConfigError> {
    let mut catalog = Catalog::builtin();
    for (key, file, text) in files {
        match yaml_serde::from_str::<yaml_serde::Mapping>(&text) {
            Ok(m) => catalog.overlay(&key, m),
            Err(e) => {
                return Err(ConfigError::new(
                    file,
                    format!("not a provider definition: {e}"),
                ));
            }
        }
    }
    for (key, m) in overlays {
        catalog.overlay(&key, m);
    }
    Ok(catalog)
}

/// The kinds a machine identity can be (a provider login is built by `egress_identity`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MachineKind {
    CognitoM2m,
    OidcM2m,
    CognitoPassword,
}

impl MachineKind {
    /// The identity kind it is, as `kind:` names it.
    pub fn as_str(self) -> &'static str {
        self.tag().as_str()
    }

    pub fn tag(self) -> IdentityKind {
        match self {
            MachineKind::CognitoM2m => IdentityKind::CognitoM2m,
            MachineKind::OidcM2m => IdentityKind::OidcM2m,
            MachineKind::CognitoPassword => IdentityKind::CognitoPassword,
        }
    }
}

/// A machine identity (the M2M kinds and Cognito service accounts) as a source describes
/// it, its secrets resolved. `key(field)` names where a field came from, `whole` the
/// identity itself, for errors.
pub struct IdentitySpec {
    pub name: String,
    pub file_name: String,
    pub kind: MachineKind,
    pub label: ProviderLabel,
    pub client_id: String,
    pub client_secret: Option<Secret>,
    pub client_auth: ClientAuth,
    pub scopes: Vec<String>,
    pub token_url: Option<String>,
    /// A Cognito domain: a prefix (with `region`), a custom domain or a base URL.
    pub domain: Option<String>,
    pub region: Option<String>,
    pub user_pool_id: Option<String>,
    pub discovery_url: Option<String>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub resource: Option<String>,
    /// `cognito_password` settings.
    pub cognito: Option<CognitoSpec>,
    pub extra_fields: Vec<(String, String)>,
    pub extra_headers: Vec<(String, String)>,
}

/// A Cognito service account as a source describes it.
pub struct CognitoSpec {
    pub username: String,
    pub password: Secret,
    pub bearer: BearerToken,
    pub refresh_rotation: bool,
    /// The Cognito API endpoint when not AWS's: the URL, its key, and the AWS variable it
    /// was taken from when the source did not name it itself.
    pub endpoint_url: Option<(String, String, Option<&'static str>)>,
}

/// Checks a machine identity's endpoints (https rules, the Cognito and OIDC ways of finding
/// the token endpoint) and builds it.
pub fn identity(
    src: &dyn Source,
    whole: &str,
    key: &dyn Fn(&str) -> String,
    r: IdentitySpec,
) -> Result<IdentityConfig, ConfigError> {
    let kind = r.kind;
    let pool_region = || r.user_pool_id.as_deref().and_then(region_of_pool);
    let cognito = match r.cognito {
        Some(c) => {
            let endpoint_url = match c.endpoint_url {
                Some((k, u, from)) => Some(check_endpoint_url(&u).map(|_| u).map_err(|m| {
                    src.err(
                        &k,
                        match from {
                            Some(var) => format!("from ${var}: {m}"),
                            None => m,
                        },
                    )
                })?),
                None => None,
            };
            // The Cognito API is regional.
            let region = r
                .region
                .clone()
                .or_else(|| pool_region().map(str::to_string))
                .ok_or_else(|| {
                    src.err(
                        whole,
                        "cognito_password needs `region` (or a `user_pool_id` to take it from)"
                            .into(),
                    )
                })?;
            let account = CognitoPassword {
                username: c.username,
                password: c.password,
                bearer: c.bearer,
                refresh_rotation: c.refresh_rotation,
                endpoint_url,
            };
            Some((region, account))
        }
        None => None,
    };
    let endpoint = match kind {
        MachineKind::CognitoPassword => Endpoint::CognitoApi,
        MachineKind::CognitoM2m => {
            if let Some(u) = &r.token_url {
                Endpoint::TokenUrl(src.url(&key("token_url"), u)?)
            } else if let Some(d) = &r.domain {
                let url = cognito_domain_token_url(d, r.region.as_deref())
                    .map_err(|m| src.err(&key("domain"), m))?;
                Endpoint::TokenUrl(src.url(&key("domain"), &url)?)
            } else {
                let (Some(region), Some(pool)) = (
                    r.region.as_deref().or_else(pool_region),
                    r.user_pool_id.as_deref(),
                ) else {
                    return Err(src.err(whole, "cognito_m2m needs `token_url`, `domain`, or `user_pool_id` (and `region`) to find its token endpoint".into()));
                };
                let url = match &r.discovery_url {
                    Some(u) => src.url(&key("discovery_url"), u)?,
                    None => cognito_discovery_url(region, pool),
                };
                Endpoint::Discovery {
                    url,
                    fallback: Some(cognito_guessed_token_url(region, pool)),
                }
            }
        }
        MachineKind::OidcM2m => {
            if let Some(u) = &r.token_url {
                Endpoint::TokenUrl(src.url(&key("token_url"), u)?)
            } else if let Some(u) = &r.discovery_url {
                Endpoint::Discovery {
                    url: src.url(&key("discovery_url"), u)?,
                    fallback: None,
                }
            } else if let Some(i) = &r.issuer {
                src.url(&key("issuer"), i)?;
                Endpoint::Discovery {
                    url: issuer_discovery_url(i),
                    fallback: None,
                }
            } else {
                return Err(src.err(
                    whole,
                    "oidc_m2m needs `token_url`, `discovery_url` or `issuer`".into(),
                ));
            }
        }
    };
    let kind = match kind {
        MachineKind::CognitoM2m => Kind::CognitoM2m {
            region: r
                .region
                .clone()
                .or_else(|| pool_region().map(str::to_string)),
            user_pool_id: r.user_pool_id,
        },
        MachineKind::CognitoPassword => {
            let (region, account) = cognito.ok_or_else(|| {
                src.err(
                    whole,
                    "missing `username` and `password` (the service account)".into(),
                )
            })?;
            Kind::CognitoPassword {
                region,
                user_pool_id: r.user_pool_id,
                account,
            }
        }
        MachineKind::OidcM2m => Kind::OidcM2m {
            audience: r.audience,
            resource: r.resource,
        },
    };
    Ok(IdentityConfig {
        gateway: None,
        name: r.name,
        file_name: r.file_name,
        kind,
        provider_label: r.label,
        client_id: r.client_id,
        client_secret: r.client_secret,
        scopes: r.scopes,
        endpoint,
        client_auth: r.client_auth,
        extra_fields: r.extra_fields,
        extra_headers: r.extra_headers,
    })
}

/// The keys an egress entry's values came from, for errors.
pub struct EgressKeys {
    pub provider: String,
    pub name: String,
    pub server: String,
    pub redirect_uri: String,
    pub variables: String,
}

/// An egress (3-legged) identity as a source describes it. The names are decided by the
/// source (the reference tool names its files its own way); everything else is checked here.
pub struct EgressSpec {
    pub keys: EgressKeys,
    /// The catalog key.
    pub provider: String,
    pub name: String,
    pub file_name: String,
    pub server: String,
    pub client_id: String,
    pub client_secret: Option<Secret>,
    pub redirect_uri: String,
    /// `None`: the provider's default scopes.
    pub scopes: Option<Vec<String>>,
    pub variables: BTreeMap<String, String>,
    pub cloud_site: Option<String>,
}

/// Validates an egress entry against the catalog and builds its identity.
pub fn egress_identity(
    src: &dyn Source,
    e: EgressSpec,
    catalog: &Catalog,
) -> Result<IdentityConfig, ConfigError> {
    let keys = &e.keys;
    src.name(&keys.provider, &e.provider)?;
    let def = match catalog.get(&e.provider) {
        Some(Ok(d)) => d,
        Some(Err(m)) => return Err(src.err(&keys.provider, m)),
        None => {
            let known: Vec<&str> = catalog.keys().collect();
            let hint = did_you_mean(&e.provider, &known)
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_else(|| {
                    format!(
                        "; known: {}{}",
                        known.join(", "),
                        src.define_provider_hint()
                    )
                });
            return Err(src.err(
                &keys.provider,
                format!("unknown provider `{}`{hint}", e.provider),
            ));
        }
    };
    let def = def
        .resolved(&e.variables)
        .map_err(|m| src.err(&keys.variables, format!("{m}{}", src.variables_hint())))?;
    // A user-defined provider may give only its issuer: discovery gives the endpoints.
    let from_issuer = def.authorize_url.is_empty() || def.token_url.is_empty();
    match (&def.issuer, from_issuer) {
        (None, true) => {
            return Err(src.err(
                &keys.provider,
                format!(
                    "provider `{}` needs `authorize_url` and `token_url`, or an `issuer` whose discovery document lists them",
                    e.provider
                ),
            ));
        }
        (Some(iss), true) => {
            src.url(&keys.provider, iss)?;
        }
        _ => {}
    }
    // Every URL of the definition a token or code goes to: https, or http on loopback only.
    let optional = [
        def.device_authorization_url.as_ref(),
        def.revocation_url.as_ref(),
        def.userinfo_url.as_ref(),
        def.extras.cloud_id.as_ref().map(|c| &c.url),
    ];
    for url in [Some(&def.authorize_url), Some(&def.token_url)]
        .into_iter()
        .chain(optional)
        .flatten()
    {
        if !url.is_empty() {
            src.url(&keys.provider, url)?;
        }
    }
    check_redirect_uri(&e.redirect_uri).map_err(|m| src.err(&keys.redirect_uri, m))?;
    src.name(&keys.name, &e.name)?;
    src.name(&keys.server, &e.server)?;
    Ok(IdentityConfig {
        gateway: None,
        name: e.name,
        file_name: e.file_name,
        provider_label: ProviderLabel::Egress(e.provider.clone()),
        client_id: e.client_id,
        client_secret: e.client_secret,
        scopes: e.scopes.unwrap_or_else(|| def.scopes.clone()),
        endpoint: match (&def.issuer, def.token_url.is_empty()) {
            (Some(iss), true) => Endpoint::Discovery {
                url: issuer_discovery_url(iss),
                fallback: None,
            },
            _ => Endpoint::TokenUrl(def.token_url.clone()),
        },
        client_auth: match def.token_auth {
            TokenAuth::Basic => ClientAuth::Basic,
            TokenAuth::Post => ClientAuth::Post,
        },
        extra_fields: Vec::new(),
        extra_headers: Vec::new(),
        kind: Kind::Egress(Box::new(EgressConfig {
            provider: e.provider,
            def,
            redirect_uri: e.redirect_uri,
            server: e.server,
            cloud_site: e.cloud_site,
            resource: None,
        })),
    })
}

/// The gateway's URL, given at `key`: https, or plain http on loopback only (tokens
/// travel to its servers); without a trailing slash.
pub fn gateway_url(src: &dyn Source, key: &str, url: &str) -> Result<String, ConfigError> {
    src.url(key, url)?;
    Ok(url.trim_end_matches('/').to_string())
}

/// Each egress identity's server, as (identity, server) pairs for `bind_servers`.
pub fn egress_bindings(identities: &[IdentityConfig]) -> Vec<(String, String)> {
    identities
        .iter()
        .filter_map(|id| Some((id.name.clone(), id.egress()?.server.clone())))
        .collect()
}

/// Servers that identities of their own section (egress, AgentCore) are bound to, as
/// (identity, server) pairs: a listed server still on the gateway's headers takes the
/// identity's token; an unlisted one is added at its gateway URL. `with_gateway`: the
/// gateway's headers go along (there is a gateway identity). `Err(i)`: pair `i` names a
/// server that is not listed, and there is no gateway URL to build its URL from.
pub fn bind_servers(
    servers: &mut Vec<ServerConfig>,
    bound: &[(String, String)],
    gateway_url: Option<&str>,
    with_gateway: bool,
) -> Result<(), usize> {
    for (i, (identity, server)) in bound.iter().enumerate() {
        let auth = ServerAuth::bearer(identity, with_gateway);
        match servers.iter_mut().find(|s| &s.name == server) {
            Some(s) => {
                if s.auth == ServerAuth::Gateway {
                    s.auth = auth;
                }
            }
            None => {
                let Some(g) = gateway_url else {
                    return Err(i);
                };
                servers.push(ServerConfig {
                    name: server.clone(),
                    url: default_server_url(g, server),
                    transport: Transport::StreamableHttp,
                    auth,
                });
            }
        }
    }
    Ok(())
}

/// Levenshtein distance, for "did you mean".
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The closest of `candidates` to `word`, if close enough to be a likely typo.
pub fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// The Cognito API endpoint from the standard AWS variables, with the variable's name.
pub fn aws_endpoint(env: &dyn Fn(&str) -> Option<String>) -> Option<(&'static str, String)> {
    if env("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS").is_some_and(|v| v == "true") {
        return None;
    }
    [
        "AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER",
        "AWS_ENDPOINT_URL",
    ]
    .into_iter()
    .find_map(|k| env(k).filter(|v| !v.is_empty()).map(|v| (k, v)))
}

/// `us-east-1_AbC123` → `us-east-1`.
pub fn region_of_pool(pool: &str) -> Option<&str> {
    pool.split_once('_')
        .map(|(r, _)| r)
        .filter(|r| !r.is_empty())
}

/// Token endpoint for a Cognito domain: a prefix (`my-prefix`), a custom domain
/// (`auth.example.com`) or a full base URL (`https://auth.example.com`).
pub fn cognito_domain_token_url(domain: &str, region: Option<&str>) -> Result<String, String> {
    let d = domain.trim().trim_end_matches('/');
    if d.starts_with("https://") || d.starts_with("http://") {
        return Ok(format!("{d}/oauth2/token"));
    }
    if d.contains('.') {
        return Ok(format!("https://{d}/oauth2/token"));
    }
    let region =
        region.ok_or("a domain prefix needs `region` (or a `user_pool_id` to take it from)")?;
    Ok(format!(
        "https://{d}.auth.{region}.amazoncognito.com/oauth2/token"
    ))
}

pub fn cognito_discovery_url(region: &str, pool: &str) -> String {
    format!("https://cognito-idp.{region}.amazonaws.com/{pool}/.well-known/openid-configuration")
}

/// The reference tool's guess: the pool id without its underscore as the domain prefix.
pub fn cognito_guessed_token_url(region: &str, pool: &str) -> String {
    format!(
        "https://{}.auth.{region}.amazoncognito.com/oauth2/token",
        pool.replace('_', "").to_lowercase()
    )
}

pub fn issuer_discovery_url(issuer: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(name: &str, auth: ServerAuth) -> ServerConfig {
        ServerConfig {
            name: name.into(),
            url: format!("https://{name}.example.com/mcp"),
            transport: Transport::StreamableHttp,
            auth,
        }
    }

    #[test]
    fn bound_identities_take_gateway_servers_and_add_missing_ones() {
        let mut servers = vec![
            server("jira", ServerAuth::Gateway),
            server("wiki", ServerAuth::None),
        ];
        let bound = [
            ("atlassian".to_string(), "jira".to_string()),
            ("atlassian-2".to_string(), "jira".to_string()),
            ("wiki-id".to_string(), "wiki".to_string()),
            ("github".to_string(), "github".to_string()),
        ];
        bind_servers(&mut servers, &bound, Some("https://gw.example.com/"), true).unwrap();
        assert_eq!(
            servers[0].auth,
            ServerAuth::bearer("atlassian", true),
            "first wins"
        );
        assert_eq!(servers[1].auth, ServerAuth::None, "configured auth is kept");
        assert_eq!(servers[2].url, "https://gw.example.com/github/mcp");
        assert_eq!(servers[2].auth, ServerAuth::bearer("github", true));
        let mut servers = Vec::new();
        assert_eq!(bind_servers(&mut servers, &bound, None, false), Err(0));
    }
}
