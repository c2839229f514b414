//! The servers section as a source describes it, and its rules: each entry's name and URL
//! (https unless it sends nothing), its authentication (none, the gateway's headers, a
//! named identity's token, or the MCP server's own OAuth), and the identity an `oauth`
//! entry brings, named after the server and bound to its canonical URL.

use super::{SecretSpec, Secrets, client_credential, did_you_mean};
use crate::config::{
    ClientAuth, ConfigError, EgressConfig, Endpoint, IdentityConfig, Kind, ProviderLabel,
    ServerAuth, ServerConfig, Transport, check_endpoint_url, check_redirect_uri,
    default_server_url,
};

/// A server entry as a source describes it. `key` is where the entry was written; its
/// values are at `{key}.name`, `{key}.url`, `{key}.auth.identity` and
/// `{key}.auth.oauth.FIELD`.
pub struct ServerSpec {
    pub key: String,
    pub name: String,
    /// `None`: the server is reached through the gateway, at its default URL.
    pub url: Option<String>,
    pub transport: Transport,
    pub auth: AuthSpec,
}

/// How a server entry says it is authenticated.
pub enum AuthSpec {
    /// The gateway's headers (also when the entry does not say).
    Gateway,
    /// No headers at all.
    None,
    /// A named identity's token.
    Identity {
        identity: String,
        header: Option<String>,
        scheme: Option<String>,
        /// The gateway's headers go along.
        gateway: bool,
    },
    /// The MCP server announces its authorization (MCP authorization spec).
    Oauth(OauthSpec),
}

/// An MCP server's own OAuth, as written (all empty for the bare form).
#[derive(Default)]
pub struct OauthSpec {
    /// `grant: client_credentials`; otherwise the interactive login.
    pub client_credentials: bool,
    pub client_id: Option<String>,
    pub client_secret: Option<SecretSpec>,
    pub private_key: Option<SecretSpec>,
    pub scopes: Vec<String>,
    pub authorization_server: Option<String>,
    /// The interactive login's loopback redirect (a pre-registered client's).
    pub redirect_uri: Option<String>,
}

/// Checks the server entries and builds them. An `oauth` entry's identity is added to
/// `identities` (which holds every identity named so far, for bindings and name clashes).
/// `gateway_url`: where entries without a URL are; `has_ingress`: there is a gateway
/// identity for the entries that use the gateway's headers.
pub fn servers(
    src: &dyn Secrets,
    specs: Vec<ServerSpec>,
    identities: &mut Vec<IdentityConfig>,
    gateway_url: Option<&str>,
    has_ingress: bool,
) -> Result<Vec<ServerConfig>, ConfigError> {
    let mut servers: Vec<ServerConfig> = Vec::new();
    for s in specs {
        let key = |field: &str| format!("{}.{field}", s.key);
        src.name(&key("name"), &s.name)?;
        if servers.iter().any(|x| x.name == s.name) {
            return Err(src.err(&key("name"), format!("server `{}` is listed twice", s.name)));
        }
        let url = match (&s.url, gateway_url) {
            (Some(u), _) => {
                if matches!(s.auth, AuthSpec::None) {
                    // Nothing is sent to it: any URL will do.
                    reqwest::Url::parse(u).map_err(|e| {
                        src.err(&key("url"), format!("`{u}` is not a valid URL: {e}"))
                    })?;
                } else {
                    // Tokens travel to it: https, or plain http on loopback only.
                    check_endpoint_url(u).map_err(|m| src.err(&key("url"), m))?;
                }
                u.clone()
            }
            (None, Some(g)) => default_server_url(g, &s.name),
            (None, None) => {
                return Err(src.err(
                    &key("name"),
                    "no `url` and no top-level `gateway_url` to build it from; set one of them"
                        .into(),
                ));
            }
        };
        let auth = match &s.auth {
            AuthSpec::Gateway => ServerAuth::Gateway,
            AuthSpec::None => ServerAuth::None,
            AuthSpec::Oauth(o) => {
                let id = mcp_identity(src, &s.key, &s.name, &url, o)?;
                if identities.iter().any(|i| i.name == id.name) {
                    return Err(src.err(
                        &key("name"),
                        format!("an identity is already named `{}`; a server with `auth: oauth` gets an identity of its own name, so rename one of them", id.name),
                    ));
                }
                identities.push(id);
                ServerAuth::bearer(&s.name, false)
            }
            AuthSpec::Identity {
                identity,
                header,
                scheme,
                gateway,
            } => {
                if !identities.iter().any(|i| &i.name == identity) {
                    let known: Vec<&str> = identities.iter().map(|i| i.name.as_str()).collect();
                    let hint = did_you_mean(identity, &known)
                        .map(|s| format!("; did you mean `{s}`?"))
                        .unwrap_or_else(|| src.define_identity_hint().into());
                    return Err(src.err(
                        &key("auth.identity"),
                        format!("no identity named `{identity}`{hint}"),
                    ));
                }
                ServerAuth::identity(identity, header.clone(), scheme.clone(), *gateway)
            }
        };
        if matches!(
            auth,
            ServerAuth::Gateway | ServerAuth::Identity { gateway: true, .. }
        ) && !has_ingress
        {
            return Err(src.err(&key("name"), "this server uses the gateway identity but no `ingress` is configured; add `ingress:` or set `auth: none`".into()));
        }
        servers.push(ServerConfig {
            name: s.name,
            url,
            transport: s.transport,
            auth,
        });
    }
    Ok(servers)
}

/// The identity of an MCP server with `auth: oauth` (the entry at `server_key`): named
/// after the server, its token bound to the server's canonical URL as `resource`, its
/// endpoints found by discovery.
fn mcp_identity(
    src: &dyn Secrets,
    server_key: &str,
    server: &str,
    url: &str,
    o: &OauthSpec,
) -> Result<IdentityConfig, ConfigError> {
    let key = format!("{server_key}.auth.oauth");
    let k = |field: &str| format!("{key}.{field}");
    let resource = crate::mcpauth::canonical_resource(url)
        .map_err(|m| src.err(&format!("{server_key}.url"), m))?;
    let authorization_server = match &o.authorization_server {
        Some(a) => Some(src.url(&k("authorization_server"), a)?),
        None => None,
    };
    // The server's metadata names the authorization server; a hostile or compromised MCP
    // server could name one of its own and collect a shared secret sent there. A signed
    // assertion is bound to one token endpoint, so only the secret needs this.
    if o.client_secret.is_some()
        && o.private_key.is_none()
        && o.client_id.as_deref().is_some_and(|c| !c.is_empty())
        && authorization_server.is_none()
    {
        return Err(src.err(
            &k("client_secret"),
            "a `client_secret` is sent only to an authorization server you name, since the MCP server's metadata could name any server: add `authorization_server:` with the issuer URL that issued this client (or use `private_key` with `grant: client_credentials`)".into(),
        ));
    }
    if !o.client_credentials {
        return mcp_login_identity(src, &key, server, resource, authorization_server, o);
    }
    if o.redirect_uri.is_some() {
        return Err(src.err(
            &k("redirect_uri"),
            "`redirect_uri` is for the interactive login; client_credentials has no redirect"
                .into(),
        ));
    }
    let client_id = match &o.client_id {
        Some(c) if !c.is_empty() => c.clone(),
        _ => {
            return Err(src.err(
                &key,
                "missing `client_id` (the client registered for this agent at the authorization server)".into(),
            ));
        }
    };
    let Some((secret, client_auth)) =
        client_credential(src, &key, o.client_secret.as_ref(), o.private_key.as_ref())?
    else {
        return Err(src.err(
            &key,
            "missing `client_secret` or `private_key`; write {env: VARIABLE}, {file: PATH} or the value".into(),
        ));
    };
    Ok(IdentityConfig {
        gateway: None,
        name: server.to_string(),
        file_name: format!("{server}.json"),
        kind: Kind::OidcM2m {
            audience: None,
            resource: Some(resource.clone()),
        },
        provider_label: ProviderLabel::McpOauth,
        client_id,
        client_secret: Some(secret),
        scopes: o.scopes.clone(),
        endpoint: Endpoint::McpServer {
            server_url: resource,
            authorization_server,
        },
        client_auth,
        extra_fields: Vec::new(),
        extra_headers: Vec::new(),
    })
}

/// The identity of an MCP server with the interactive `auth: oauth`: an egress-like
/// identity named after the server. Its authorization server, endpoints and (without a
/// configured `client_id`) its client are found at login time (`mcpauth::interactive`);
/// its token is bound to the server's canonical URL as `resource`.
fn mcp_login_identity(
    src: &dyn Secrets,
    key: &str,
    server: &str,
    resource: String,
    authorization_server: Option<String>,
    o: &OauthSpec,
) -> Result<IdentityConfig, ConfigError> {
    let k = |field: &str| format!("{key}.{field}");
    if o.private_key.is_some() {
        return Err(src.err(
            &k("private_key"),
            "`private_key` goes with `grant: client_credentials`; the interactive login uses PKCE (and at most a `client_secret` of a pre-registered client)".into(),
        ));
    }
    let client_id = o.client_id.clone().unwrap_or_default();
    let client_secret = match &o.client_secret {
        Some(_) if client_id.is_empty() => {
            return Err(src.err(
                &k("client_secret"),
                "a `client_secret` needs the `client_id` it belongs to; without `client_id` mcp-credd registers a public client itself".into(),
            ));
        }
        Some(spec) => Some(src.secret(&k("client_secret"), spec)?),
        None => None,
    };
    // Empty: a loopback port chosen at login (RFC 8252 §7.3).
    let redirect_uri = match &o.redirect_uri {
        Some(r) => {
            check_redirect_uri(r).map_err(|m| src.err(&k("redirect_uri"), m))?;
            r.clone()
        }
        None => String::new(),
    };
    let def: crate::providers::ProviderDef = serde_json::from_value(serde_json::json!({
        "display_name": format!("MCP server `{server}`"),
        "pkce": true,
        "refresh": "rotating",
    }))
    .expect("a provider definition with defaults");
    Ok(IdentityConfig {
        gateway: None,
        name: server.to_string(),
        file_name: format!("{server}.json"),
        kind: Kind::Egress(Box::new(EgressConfig {
            provider: server.to_string(),
            def,
            redirect_uri,
            server: server.to_string(),
            cloud_site: None,
            resource: Some(resource.clone()),
        })),
        provider_label: ProviderLabel::McpOauth,
        client_id,
        client_secret,
        scopes: o.scopes.clone(),
        endpoint: Endpoint::McpServer {
            server_url: resource,
            authorization_server,
        },
        client_auth: ClientAuth::Basic,
        extra_fields: Vec::new(),
        extra_headers: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::build::Source;
    use crate::secret::Secret;

    /// A source that is not a file: keys as given, no lines; it has only literal secrets and
    /// says which reference it was asked to read.
    struct Given;
    impl Source for Given {
        fn err(&self, key: &str, message: String) -> ConfigError {
            ConfigError::new("given", message).at(key, None)
        }
        fn define_provider_hint(&self) -> &'static str {
            ""
        }
        fn variables_hint(&self) -> &'static str {
            ""
        }
        fn define_identity_hint(&self) -> &'static str {
            "; name one the source defines"
        }
    }
    impl Secrets for Given {
        fn secret(&self, key: &str, spec: &SecretSpec) -> Result<Secret, ConfigError> {
            match spec {
                SecretSpec::Literal(s) => Ok(s.clone()),
                other => Err(self.err(key, format!("read {other:?}"))),
            }
        }
    }

    fn spec(name: &str, url: Option<&str>, auth: AuthSpec) -> ServerSpec {
        ServerSpec {
            key: format!("s.{name}"),
            name: name.into(),
            url: url.map(str::to_string),
            transport: Transport::Sse,
            auth,
        }
    }

    fn error_of(specs: Vec<ServerSpec>, has_ingress: bool) -> String {
        servers(&Given, specs, &mut Vec::new(), None, has_ingress)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn the_rules_speak_through_the_source() {
        let mut ids = Vec::new();
        let oauth = OauthSpec {
            client_credentials: true,
            client_id: Some("agent".into()),
            client_secret: Some(SecretSpec::Literal(Secret::new("s"))),
            authorization_server: Some("https://as.example.com".into()),
            ..Default::default()
        };
        let out = servers(
            &Given,
            vec![
                spec("gw", None, AuthSpec::Gateway),
                spec(
                    "m",
                    Some("https://m.example.com/mcp"),
                    AuthSpec::Oauth(oauth),
                ),
            ],
            &mut ids,
            Some("https://gw.example.com"),
            true,
        )
        .unwrap();
        assert_eq!(out[0].url, "https://gw.example.com/gw/mcp");
        assert_eq!(out[0].transport, Transport::Sse);
        assert_eq!(out[1].auth, ServerAuth::bearer("m", false));
        assert_eq!(ids[0].name, "m");
        assert_eq!(ids[0].resource(), Some("https://m.example.com/mcp"));

        assert_eq!(
            error_of(
                vec![spec("gw", Some("https://gw/"), AuthSpec::Gateway)],
                false
            ),
            "given: s.gw.name: this server uses the gateway identity but no `ingress` is configured; add `ingress:` or set `auth: none`"
        );
        let bound = AuthSpec::Identity {
            identity: "nobody".into(),
            header: None,
            scheme: None,
            gateway: false,
        };
        assert_eq!(
            error_of(vec![spec("x", Some("https://x/"), bound)], true),
            "given: s.x.auth.identity: no identity named `nobody`; name one the source defines"
        );
    }

    /// A secret is read only when the rules reach it: a rule broken before it is the error.
    #[test]
    fn secrets_are_read_when_a_rule_reaches_them() {
        let oauth = |authorization_server: Option<&str>| OauthSpec {
            client_credentials: true,
            client_id: Some("agent".into()),
            client_secret: Some(SecretSpec::Env("AGENT_SECRET".into())),
            authorization_server: authorization_server.map(str::to_string),
            ..Default::default()
        };
        let at = |o| {
            vec![spec(
                "m",
                Some("https://m.example.com/mcp"),
                AuthSpec::Oauth(o),
            )]
        };
        let e = error_of(at(oauth(None)), true);
        assert!(
            e.starts_with("given: s.m.auth.oauth.client_secret: a `client_secret` is sent only"),
            "{e}"
        );
        assert_eq!(
            error_of(at(oauth(Some("https://as.example.com"))), true),
            "given: s.m.auth.oauth.client_secret: read Env(\"AGENT_SECRET\")"
        );
    }
}
