//! The reference tool's environment variables as a [`Config`], so its users switch with no
//! edits. Pure: the variables arrive as an [`EnvVars`] map, merged by the loader from the
//! process environment and the env file (the process environment wins, as with dotenv).

use std::collections::HashMap;
use std::path::PathBuf;

use super::parse::{
    aws_endpoint, cognito_discovery_url, cognito_domain_token_url, cognito_guessed_token_url,
    region_of_pool,
};
use super::{
    BearerToken, ClientAuth, CognitoPassword, Config, ConfigError, EgressConfig, Endpoint,
    HttpPolicy, IdentityConfig, IdentityKind, Origin, ProviderLabel, RefreshPolicy, ServerAuth,
    ServerConfig, Transport, check_endpoint_url, check_name, check_redirect_uri,
    default_server_url,
};
use crate::providers::{Catalog, TokenAuth};
use crate::secret::Secret;

/// Variables with the line of the env file they came from (`None`: process environment).
#[derive(Clone, Debug, Default)]
pub struct EnvVars {
    pub file: Option<PathBuf>,
    pub vars: HashMap<String, (String, Option<usize>)>,
    /// When set, a missing secret is recorded here instead of failing the load (commands
    /// that make no network call need no secret); the identity gets an empty secret.
    pub deferred: Option<std::cell::RefCell<Vec<ConfigError>>>,
    /// The user's provider files (key, file name, text), overlaid on the built-in catalog.
    pub provider_files: Vec<(String, String, String)>,
    /// Every set variable the config was built from (see `load`'s implicit-.env rule).
    pub used: std::cell::RefCell<std::collections::BTreeSet<String>>,
}

impl EnvVars {
    /// A set, non-empty variable.
    pub fn get(&self, k: &str) -> Option<&str> {
        let v = self
            .vars
            .get(k)
            .map(|(v, _)| v.as_str())
            .filter(|v| !v.is_empty());
        if v.is_some() {
            self.used.borrow_mut().insert(k.to_string());
        }
        v
    }

    fn err(&self, key: &str, message: impl Into<String>) -> ConfigError {
        match self.vars.get(key) {
            Some((_, Some(line))) => {
                ConfigError::new(self.file_name(), message).at(key, Some(*line))
            }
            _ => ConfigError::new("environment", message).at(key, None),
        }
    }

    fn file_name(&self) -> String {
        self.file
            .as_ref()
            .map_or_else(|| "environment".to_string(), |p| p.display().to_string())
    }

    fn require(&self, key: &str, why: &str) -> Result<String, ConfigError> {
        self.get(key).map(str::to_string).ok_or_else(|| {
            ConfigError::new(
                self.file_name(),
                format!("not set; {why} needs it (add it to the env file or export it)"),
            )
            .at(key, None)
        })
    }

    /// A secret variable: like `require`, but deferred in lazy mode.
    fn secret(&self, key: &str, why: &str) -> Result<String, ConfigError> {
        match (self.require(key, why), &self.deferred) {
            (Err(e), Some(d)) => {
                d.borrow_mut().push(e);
                Ok(String::new())
            }
            (r, _) => r,
        }
    }

    fn url(&self, key: &str, url: String) -> Result<String, ConfigError> {
        check_endpoint_url(&url).map_err(|m| self.err(key, m))?;
        Ok(url)
    }
}

/// Variables that signal a reference-tool setup is present.
pub const MARKERS: &[&str] = &[
    "COGNITO_USERNAME",
    "AGENTCORE_CLIENT_ID_1",
    "INGRESS_OAUTH_CLIENT_ID",
    "INGRESS_OAUTH_USER_POOL_ID",
    "KEYCLOAK_M2M_CLIENT_ID",
    "ENTRA_CLIENT_ID",
    "OAUTH_CLIENT_ID",
    "REGISTRY_URL",
];

/// Builds the config the reference tool would act on. `Ok(None)` when no variable of it is
/// set at all.
pub fn from_env(env: &EnvVars, tokens_dir: PathBuf) -> Result<Option<Config>, ConfigError> {
    let agentcore = env
        .vars
        .keys()
        .any(|k| k.starts_with("AGENTCORE_CLIENT_ID_") || k.starts_with("EGRESS_OAUTH_CLIENT_ID_"));
    if !agentcore && !MARKERS.iter().any(|k| env.get(k).is_some()) {
        return Ok(None);
    }
    let mut ingress = ingress_from_env(env)?;
    let mut identities = Vec::new();
    if let Some(mut cp) = cognito_password_from_env(env)? {
        if ingress.is_none() {
            ingress = Some(cp);
        } else {
            // The gateway has its own identity: keep the service account's token fresh
            // under its own name for the scripts that read it.
            cp.name = "cognito".into();
            cp.file_name = "cognito.json".into();
            identities.push(cp);
        }
    }
    let gateway_url = match env.get("REGISTRY_URL") {
        Some(u) => {
            env.url("REGISTRY_URL", u.to_string())?;
            Some(u.trim_end_matches('/').to_string())
        }
        None => None,
    };
    let mut servers = Vec::new();
    for id in egress_from_env(env)? {
        let server = id
            .egress
            .as_ref()
            .map(|e| e.server.clone())
            .unwrap_or_default();
        if let Some(g) = &gateway_url
            && !servers.iter().any(|s: &ServerConfig| s.name == server)
        {
            servers.push(ServerConfig {
                name: server.clone(),
                url: default_server_url(g, &server),
                transport: Transport::StreamableHttp,
                auth: ServerAuth::Identity {
                    name: id.name.clone(),
                    header: "Authorization".into(),
                    scheme: "Bearer".into(),
                    gateway: ingress.is_some(),
                },
            });
        }
        identities.push(id);
    }
    for (id, server) in agentcore_from_env(env)? {
        if let Some(g) = &gateway_url {
            servers.push(ServerConfig {
                name: server.clone(),
                url: default_server_url(g, &server),
                transport: Transport::StreamableHttp,
                auth: ServerAuth::Identity {
                    name: id.name.clone(),
                    header: "Authorization".into(),
                    scheme: "Bearer".into(),
                    gateway: ingress.is_some(),
                },
            });
        }
        identities.push(id);
    }
    Ok(Some(Config {
        origin: Origin::Environment {
            env_file: env.file.clone(),
        },
        tokens_dir,
        gateway_url,
        ingress,
        identities,
        servers,
        refresh: RefreshPolicy::default(),
        http: HttpPolicy::default(),
        hooks: Default::default(),
        editors: super::EditorSpec::defaults(),
    }))
}

fn client_auth(env: &EnvVars) -> Result<ClientAuth, ConfigError> {
    match env.get("INGRESS_OAUTH_CLIENT_AUTH") {
        None | Some("basic") => Ok(ClientAuth::Basic),
        Some("post") => Ok(ClientAuth::Post),
        Some(o) => Err(env.err(
            "INGRESS_OAUTH_CLIENT_AUTH",
            format!("`{o}` is not a client authentication; use basic or post"),
        )),
    }
}

fn scopes(env: &EnvVars, key: &str) -> Vec<String> {
    env.get(key)
        .map(|s| {
            s.split([' ', ','])
                .filter(|x| !x.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn base_identity(
    kind: IdentityKind,
    label: ProviderLabel,
    client_id: String,
    secret: String,
    endpoint: Endpoint,
) -> IdentityConfig {
    IdentityConfig {
        gateway: None,
        name: "ingress".into(),
        file_name: "ingress.json".into(),
        kind,
        provider_label: label,
        client_id,
        client_secret: Some(Secret::new(secret)),
        scopes: Vec::new(),
        endpoint,
        client_auth: ClientAuth::Basic,
        audience: None,
        resource: None,
        region: None,
        user_pool_id: None,
        extra_fields: Vec::new(),
        extra_headers: Vec::new(),
        cognito: None,
        egress: None,
    }
}

/// The reference tool's numbered egress sets: `EGRESS_OAUTH_CLIENT_ID_N`,
/// `EGRESS_OAUTH_CLIENT_SECRET_N`, `EGRESS_OAUTH_REDIRECT_URI_N` (all three make a set),
/// `EGRESS_OAUTH_SCOPE_N`, `EGRESS_PROVIDER_NAME_N`, `EGRESS_MCP_SERVER_NAME_N`.
fn egress_from_env(env: &EnvVars) -> Result<Vec<IdentityConfig>, ConfigError> {
    let mut catalog = Catalog::builtin();
    for (key, file, text) in &env.provider_files {
        match yaml_serde::from_str::<yaml_serde::Mapping>(text) {
            Ok(m) => catalog.overlay(key, m),
            Err(e) => {
                return Err(ConfigError::new(
                    file.clone(),
                    format!("not a provider definition: {e}"),
                ));
            }
        }
    }
    let mut out: Vec<IdentityConfig> = Vec::new();
    for n in 1..=100 {
        let var = |k: &str| format!("EGRESS_{k}_{n}");
        let (Some(cid), Some(secret), Some(redirect)) = (
            env.get(&var("OAUTH_CLIENT_ID")),
            env.get(&var("OAUTH_CLIENT_SECRET")),
            env.get(&var("OAUTH_REDIRECT_URI")),
        ) else {
            continue;
        };
        let provider = env
            .get(&var("PROVIDER_NAME"))
            .unwrap_or("atlassian")
            .to_lowercase();
        let def = match catalog.get(&provider) {
            Some(Ok(d)) => d,
            _ => {
                let known: Vec<&str> = catalog.keys().collect();
                return Err(env.err(
                    &var("PROVIDER_NAME"),
                    format!("unknown provider `{provider}`; known: {}", known.join(", ")),
                ));
            }
        };
        let def = def.resolved(&Default::default()).map_err(|m| {
            env.err(
                &var("PROVIDER_NAME"),
                format!("provider `{provider}`: {m}; configure it in a config file"),
            )
        })?;
        check_redirect_uri(redirect).map_err(|m| env.err(&var("OAUTH_REDIRECT_URI"), m))?;
        check_name(&provider).map_err(|m| env.err(&var("PROVIDER_NAME"), m))?;
        let server_var = env.get(&var("MCP_SERVER_NAME")).map(str::to_string);
        if let Some(s) = &server_var {
            check_name(s).map_err(|m| env.err(&var("MCP_SERVER_NAME"), m))?;
        }
        let server = server_var.clone().unwrap_or_else(|| provider.clone());
        let name = if out.iter().any(|i| i.name == server) {
            format!("{server}-{n}")
        } else {
            server.clone()
        };
        let mut id = base_identity(
            IdentityKind::Egress,
            ProviderLabel::Egress(provider.clone()),
            cid.to_string(),
            secret.to_string(),
            Endpoint::TokenUrl(def.token_url.clone()),
        );
        id.name = name;
        id.file_name = match &server_var {
            Some(s) => format!("{provider}-{s}-egress.json"),
            None => format!("{provider}-egress.json"),
        };
        id.scopes = match env.get(&var("OAUTH_SCOPE")) {
            Some(s) => s
                .split([' ', ','])
                .filter(|x| !x.is_empty())
                .map(str::to_string)
                .collect(),
            None => def.scopes.clone(),
        };
        id.client_auth = match def.token_auth {
            TokenAuth::Basic => ClientAuth::Basic,
            TokenAuth::Post => ClientAuth::Post,
        };
        id.egress = Some(EgressConfig {
            provider,
            def,
            redirect_uri: redirect.to_string(),
            server,
            cloud_site: None,
        });
        out.push(id);
    }
    Ok(out)
}

/// A Cognito service account from COGNITO_USERNAME and friends (USER_PASSWORD_AUTH).
fn cognito_password_from_env(env: &EnvVars) -> Result<Option<IdentityConfig>, ConfigError> {
    if env.get("COGNITO_USERNAME").is_none() {
        return Ok(None);
    }
    let why = "the Cognito service account (COGNITO_USERNAME)";
    let username = env.require("COGNITO_USERNAME", why)?;
    let password = env.secret("COGNITO_PASSWORD", why)?;
    let client_id = env.require("COGNITO_CLIENT_ID", why)?;
    let pool = env.get("COGNITO_USER_POOL_ID").map(str::to_string);
    let region = env
        .get("COGNITO_USER_POOL_REGION")
        .map(str::to_string)
        .or_else(|| pool.as_deref().and_then(region_of_pool).map(str::to_string))
        .or_else(|| env.get("AWS_REGION").map(str::to_string))
        .ok_or_else(|| env.require("COGNITO_USER_POOL_REGION", why).unwrap_err())?;
    let endpoint_url = match aws_endpoint(&|k| env.get(k).map(str::to_string)) {
        Some((var, u)) => Some(env.url(var, u)?),
        None => None,
    };
    let mut id = base_identity(
        IdentityKind::CognitoPassword,
        ProviderLabel::CognitoPassword,
        client_id,
        String::new(),
        Endpoint::CognitoApi,
    );
    id.client_secret = env.get("COGNITO_CLIENT_SECRET").map(Secret::new);
    id.region = Some(region);
    id.user_pool_id = pool;
    id.cognito = Some(CognitoPassword {
        username,
        password: Secret::new(password),
        bearer: match env.get("COGNITO_BEARER") {
            Some("id_token") => BearerToken::IdToken,
            _ => BearerToken::AccessToken,
        },
        refresh_rotation: env.get("COGNITO_REFRESH_ROTATION") == Some("true"),
        endpoint_url,
    });
    Ok(Some(id))
}

/// The reference tool's AgentCore gateways: `AGENTCORE_CLIENT_ID_N`,
/// `AGENTCORE_CLIENT_SECRET_N`, `AGENTCORE_SERVER_NAME_N` (N = 1..100, gaps allowed), M2M
/// clients of one Cognito domain (`COGNITO_DOMAIN` or `OAUTH_DOMAIN`). Each is an identity
/// bound to its server, stored where the reference tool stored it.
fn agentcore_from_env(env: &EnvVars) -> Result<Vec<(IdentityConfig, String)>, ConfigError> {
    let mut out = Vec::new();
    for n in 1..=100 {
        let (Some(cid), Some(secret)) = (
            env.get(&format!("AGENTCORE_CLIENT_ID_{n}")),
            env.get(&format!("AGENTCORE_CLIENT_SECRET_{n}")),
        ) else {
            continue;
        };
        let server = env
            .get(&format!("AGENTCORE_SERVER_NAME_{n}"))
            .map(str::to_lowercase)
            .unwrap_or_else(|| format!("agentcore-{n}"));
        check_name(&server).map_err(|m| env.err(&format!("AGENTCORE_SERVER_NAME_{n}"), m))?;
        let region = env.get("AWS_REGION").unwrap_or("us-east-1");
        let (domain_key, domain) = ["COGNITO_DOMAIN", "OAUTH_DOMAIN"]
            .iter()
            .find_map(|k| env.get(k).map(|v| (*k, v)))
            .ok_or_else(|| {
                ConfigError::new(
                    env.file_name(),
                    format!("AGENTCORE_CLIENT_ID_{n} is set but there is no Cognito domain to get its token from"),
                )
                .at("COGNITO_DOMAIN", None)
            })?;
        let url =
            cognito_domain_token_url(domain, Some(region)).map_err(|m| env.err(domain_key, m))?;
        let url = env.url(domain_key, url)?;
        let mut id = base_identity(
            IdentityKind::CognitoM2m,
            ProviderLabel::BedrockAgentcore,
            cid.to_string(),
            secret.to_string(),
            Endpoint::TokenUrl(url),
        );
        id.name = format!("agentcore-{server}");
        id.file_name = format!("bedrock-agentcore-{server}-egress.json");
        id.client_auth = ClientAuth::Post;
        out.push((id, server));
    }
    Ok(out)
}

fn ingress_from_env(env: &EnvVars) -> Result<Option<IdentityConfig>, ConfigError> {
    let provider = env
        .get("AUTH_PROVIDER")
        .unwrap_or("cognito")
        .to_ascii_lowercase();
    let token_url_override = match env.get("INGRESS_OAUTH_TOKEN_URL") {
        Some(u) => Some(env.url("INGRESS_OAUTH_TOKEN_URL", u.to_string())?),
        None => None,
    };
    let mut id = match provider.as_str() {
        "keycloak" => {
            let why = "AUTH_PROVIDER=keycloak";
            let (url_key, url) = [
                "KEYCLOAK_ADMIN_URL",
                "KEYCLOAK_EXTERNAL_URL",
                "KEYCLOAK_URL",
            ]
            .iter()
            .find_map(|k| env.get(k).map(|v| (*k, v.to_string())))
            .ok_or_else(|| env.require("KEYCLOAK_URL", why).unwrap_err())?;
            let realm = env.require("KEYCLOAK_REALM", why)?;
            let cid = env.require("KEYCLOAK_M2M_CLIENT_ID", why)?;
            let secret = env.secret("KEYCLOAK_M2M_CLIENT_SECRET", why)?;
            let base = url.trim_end_matches('/');
            let tok = match token_url_override.clone() {
                Some(t) => t,
                None => env.url(
                    url_key,
                    format!("{base}/realms/{realm}/protocol/openid-connect/token"),
                )?,
            };
            let mut id = base_identity(
                IdentityKind::OidcM2m,
                ProviderLabel::KeycloakM2m,
                cid,
                secret,
                Endpoint::TokenUrl(tok),
            );
            id.extra_fields = vec![
                ("keycloak_url".into(), url.clone()),
                ("realm".into(), realm.clone()),
            ];
            id.extra_headers = vec![
                ("X-Keycloak-Realm".into(), realm),
                ("X-Keycloak-URL".into(), url),
            ];
            id
        }
        "entra" => {
            let why = "AUTH_PROVIDER=entra";
            let tenant = env.require("ENTRA_TENANT_ID", why)?;
            let cid = env.require("ENTRA_CLIENT_ID", why)?;
            let secret = env.secret("ENTRA_CLIENT_SECRET", why)?;
            let tok = token_url_override.clone().unwrap_or_else(|| {
                format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token")
            });
            let mut id = base_identity(
                IdentityKind::OidcM2m,
                ProviderLabel::EntraM2m,
                cid.clone(),
                secret,
                Endpoint::TokenUrl(tok),
            );
            id.scopes = vec![format!("api://{cid}/.default")];
            id.extra_fields = vec![("tenant_id".into(), tenant)];
            id
        }
        _ if env.get("INGRESS_OAUTH_CLIENT_ID").is_some()
            || env.get("INGRESS_OAUTH_USER_POOL_ID").is_some() =>
        {
            let why = "the Cognito ingress identity";
            let pool = env.require("INGRESS_OAUTH_USER_POOL_ID", why)?;
            let cid = env.require("INGRESS_OAUTH_CLIENT_ID", why)?;
            let secret = env.secret("INGRESS_OAUTH_CLIENT_SECRET", why)?;
            let region = env.get("AWS_REGION").unwrap_or("us-east-1").to_string();
            let endpoint = if let Some(t) = token_url_override.clone() {
                Endpoint::TokenUrl(t)
            } else if let Some(d) = env.get("COGNITO_DOMAIN") {
                let u = cognito_domain_token_url(d, Some(&region))
                    .map_err(|m| env.err("COGNITO_DOMAIN", m))?;
                Endpoint::TokenUrl(env.url("COGNITO_DOMAIN", u)?)
            } else {
                Endpoint::Discovery {
                    url: cognito_discovery_url(&region, &pool),
                    fallback: Some(cognito_guessed_token_url(&region, &pool)),
                }
            };
            let mut id = base_identity(
                IdentityKind::CognitoM2m,
                ProviderLabel::CognitoM2m,
                cid,
                secret,
                endpoint,
            );
            id.region = Some(region);
            id.user_pool_id = Some(pool);
            id.scopes = scopes(env, "INGRESS_OAUTH_SCOPES");
            id
        }
        _ if env.get("OAUTH_CLIENT_ID").is_some() => {
            let why = "the generic OIDC identity (OAUTH_CLIENT_ID)";
            let cid = env.require("OAUTH_CLIENT_ID", why)?;
            let secret = env.secret("OAUTH_CLIENT_SECRET", why)?;
            let endpoint = match token_url_override.clone() {
                Some(t) => Endpoint::TokenUrl(t),
                None => Endpoint::Discovery {
                    url: env.url(
                        "OAUTH_DISCOVERY_URL",
                        env.require("OAUTH_DISCOVERY_URL", why)?,
                    )?,
                    fallback: None,
                },
            };
            let mut id = base_identity(
                IdentityKind::OidcM2m,
                ProviderLabel::OidcM2m,
                cid,
                secret,
                endpoint,
            );
            id.scopes = scopes(env, "OAUTH_M2M_SCOPES");
            id
        }
        _ => return Ok(None),
    };
    id.client_auth = client_auth(env)?;
    Ok(Some(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> EnvVars {
        EnvVars {
            deferred: None,
            provider_files: Vec::new(),
            used: Default::default(),
            file: Some(PathBuf::from("/r/.env")),
            vars: pairs
                .iter()
                .enumerate()
                .map(|(i, (k, v))| (k.to_string(), (v.to_string(), Some(i + 1))))
                .collect(),
        }
    }

    fn cfg(pairs: &[(&str, &str)]) -> Result<Option<Config>, ConfigError> {
        from_env(&env(pairs), PathBuf::from("/t"))
    }

    #[test]
    fn nothing_set_is_none() {
        assert!(cfg(&[("PATH", "/bin")]).unwrap().is_none());
    }

    #[test]
    fn cognito_like_the_reference_tool() {
        let c = cfg(&[
            ("REGISTRY_URL", "https://gw.example.com/"),
            ("INGRESS_OAUTH_USER_POOL_ID", "us-west-2_Ab"),
            ("INGRESS_OAUTH_CLIENT_ID", "cid"),
            ("INGRESS_OAUTH_CLIENT_SECRET", "sec"),
            ("AWS_REGION", "us-west-2"),
        ])
        .unwrap()
        .unwrap();
        let i = c.ingress.unwrap();
        assert_eq!(i.provider_label, ProviderLabel::CognitoM2m);
        assert_eq!(i.region.as_deref(), Some("us-west-2"));
        assert_eq!(
            i.endpoint,
            Endpoint::Discovery {
                url: "https://cognito-idp.us-west-2.amazonaws.com/us-west-2_Ab/.well-known/openid-configuration".into(),
                fallback: Some("https://us-west-2ab.auth.us-west-2.amazoncognito.com/oauth2/token".into())
            }
        );
        assert_eq!(c.gateway_url.as_deref(), Some("https://gw.example.com"));
    }

    #[test]
    fn token_url_override_and_domain() {
        let base = [
            ("INGRESS_OAUTH_USER_POOL_ID", "us-east-1_Ab"),
            ("INGRESS_OAUTH_CLIENT_ID", "c"),
            ("INGRESS_OAUTH_CLIENT_SECRET", "s"),
        ];
        let mut v = base.to_vec();
        v.push(("COGNITO_DOMAIN", "pfx"));
        assert_eq!(
            cfg(&v).unwrap().unwrap().ingress.unwrap().endpoint,
            Endpoint::TokenUrl("https://pfx.auth.us-east-1.amazoncognito.com/oauth2/token".into())
        );
        v.push(("INGRESS_OAUTH_TOKEN_URL", "http://127.0.0.1:9/oauth2/token"));
        assert_eq!(
            cfg(&v).unwrap().unwrap().ingress.unwrap().endpoint,
            Endpoint::TokenUrl("http://127.0.0.1:9/oauth2/token".into())
        );
        let mut bad = base.to_vec();
        bad.push(("INGRESS_OAUTH_TOKEN_URL", "http://idp.example.com/t"));
        let e = cfg(&bad).unwrap_err().to_string();
        assert!(e.starts_with("/r/.env:4: INGRESS_OAUTH_TOKEN_URL: "), "{e}");
    }

    #[test]
    fn missing_secret_names_the_variable() {
        let e = cfg(&[
            ("INGRESS_OAUTH_USER_POOL_ID", "p_1"),
            ("INGRESS_OAUTH_CLIENT_ID", "c"),
        ])
        .unwrap_err();
        assert_eq!(e.key.as_deref(), Some("INGRESS_OAUTH_CLIENT_SECRET"));
        assert!(e.to_string().contains("not set"));
    }

    #[test]
    fn keycloak_and_entra() {
        let k = cfg(&[
            ("AUTH_PROVIDER", "Keycloak"),
            ("KEYCLOAK_URL", "http://localhost:8080/"),
            ("KEYCLOAK_REALM", "mcp"),
            ("KEYCLOAK_M2M_CLIENT_ID", "kc"),
            ("KEYCLOAK_M2M_CLIENT_SECRET", "ks"),
        ])
        .unwrap()
        .unwrap()
        .ingress
        .unwrap();
        assert_eq!(k.provider_label, ProviderLabel::KeycloakM2m);
        assert_eq!(
            k.endpoint,
            Endpoint::TokenUrl(
                "http://localhost:8080/realms/mcp/protocol/openid-connect/token".into()
            )
        );
        let e = cfg(&[
            ("AUTH_PROVIDER", "entra"),
            ("ENTRA_TENANT_ID", "t"),
            ("ENTRA_CLIENT_ID", "ec"),
            ("ENTRA_CLIENT_SECRET", "es"),
        ])
        .unwrap()
        .unwrap()
        .ingress
        .unwrap();
        assert_eq!(e.scopes, vec!["api://ec/.default"]);
        assert_eq!(
            e.endpoint,
            Endpoint::TokenUrl("https://login.microsoftonline.com/t/oauth2/v2.0/token".into())
        );
    }
}
