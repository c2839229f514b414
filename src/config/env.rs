//! The reference tool's environment variables as a [`Config`], so its users switch with no
//! edits. Pure: the variables arrive as an [`EnvVars`] map, merged by the loader from the
//! process environment and the env file (the process environment wins, as with dotenv).

use std::collections::HashMap;
use std::path::PathBuf;

use super::build::{
    self, CognitoSpec, EgressKeys, EgressSpec, IdentitySpec, MachineKind, Source, aws_endpoint,
    bind_servers, catalog, cognito_domain_token_url, egress_bindings, egress_identity, identity,
    region_of_pool,
};
use super::{
    BearerToken, ClientAuth, Config, ConfigError, HttpPolicy, IdentityConfig, Origin,
    ProviderLabel, RefreshPolicy,
};
use crate::providers::Catalog;
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
}

impl Source for EnvVars {
    fn err(&self, key: &str, message: String) -> ConfigError {
        EnvVars::err(self, key, message)
    }
    fn define_provider_hint(&self) -> &'static str {
        ""
    }
    fn variables_hint(&self) -> &'static str {
        "; configure the provider in a config file"
    }
    // The variables bind no server to an identity by name.
    fn define_identity_hint(&self) -> &'static str {
        ""
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
    let gateway_url = env
        .get("REGISTRY_URL")
        .map(|u| build::gateway_url(env, "REGISTRY_URL", u))
        .transpose()?;
    let catalog = catalog(env.provider_files.clone(), [])?;
    // Each provider login and AgentCore gateway is bound to its server, reached through
    // the gateway (without REGISTRY_URL there is no server to write).
    // A provider login takes a name no other identity has (a server called `cognito` must
    // not be bound to the service account's token).
    let taken: Vec<String> = std::iter::once("ingress".to_string())
        .chain(identities.iter().map(|i| i.name.clone()))
        .collect();
    identities.extend(egress_from_env(env, &catalog, &taken)?);
    let mut bound = egress_bindings(&identities);
    for (id, server) in agentcore_from_env(env)? {
        bound.push((id.name.clone(), server));
        identities.push(id);
    }
    // The names above are the reference tool's; one that came out twice (an egress server
    // named like an AgentCore gateway) would share a lock and a binding.
    let mut names: Vec<&str> = identities.iter().map(|i| i.name.as_str()).collect();
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(ConfigError::new(
            env.file_name(),
            format!(
                "two entries are named `{}`; rename one of their MCP servers (EGRESS_MCP_SERVER_NAME_N or AGENTCORE_SERVER_NAME_N)",
                w[0]
            ),
        ));
    }
    let mut servers = Vec::new();
    if let Some(g) = &gateway_url {
        // Cannot fail: with a gateway URL every server has one.
        let _ = bind_servers(&mut servers, &bound, Some(g), ingress.is_some());
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
        proxy: Default::default(),
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

/// Scopes as the reference tool writes them: separated by spaces or commas.
fn split_scopes(s: &str) -> Vec<String> {
    s.split([' ', ','])
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect()
}

fn scopes(env: &EnvVars, key: &str) -> Vec<String> {
    env.get(key).map(split_scopes).unwrap_or_default()
}

/// An identity as the reference tool describes it: the gateway's name and file unless
/// changed, basic client authentication, nothing else set.
fn spec(
    kind: MachineKind,
    label: ProviderLabel,
    client_id: String,
    client_secret: Option<Secret>,
) -> IdentitySpec {
    IdentitySpec {
        name: "ingress".into(),
        file_name: "ingress.json".into(),
        kind,
        label,
        client_id,
        client_secret,
        client_auth: ClientAuth::Basic,
        scopes: Vec::new(),
        token_url: None,
        domain: None,
        region: None,
        user_pool_id: None,
        discovery_url: None,
        issuer: None,
        audience: None,
        resource: None,
        cognito: None,
        extra_fields: Vec::new(),
        extra_headers: Vec::new(),
    }
}

/// A client of the reference tool's: its id and secret from the variables `id_var` and
/// `secret_var`, which `why` needs.
fn client(
    env: &EnvVars,
    kind: MachineKind,
    label: ProviderLabel,
    [id_var, secret_var]: [&str; 2],
    why: &str,
) -> Result<IdentitySpec, ConfigError> {
    let client_id = env.require(id_var, why)?;
    let secret = env.secret(secret_var, why)?;
    Ok(spec(kind, label, client_id, Some(Secret::new(secret))))
}

/// Checks and builds an identity whose values came from the variables `keys` names per
/// field (`whole` for the rest), by the rules the config file's identities follow.
fn build_identity(
    env: &EnvVars,
    whole: &str,
    keys: &[(&str, &str)],
    spec: IdentitySpec,
) -> Result<IdentityConfig, ConfigError> {
    let key = |field: &str| {
        keys.iter()
            .find(|(f, _)| *f == field)
            .map_or(whole, |(_, k)| *k)
            .to_string()
    };
    identity(env, whole, &key, spec)
}

/// The reference tool's numbered egress sets: `EGRESS_OAUTH_CLIENT_ID_N`,
/// `EGRESS_OAUTH_CLIENT_SECRET_N`, `EGRESS_OAUTH_REDIRECT_URI_N` (all three make a set),
/// `EGRESS_OAUTH_SCOPE_N`, `EGRESS_PROVIDER_NAME_N`, `EGRESS_MCP_SERVER_NAME_N`. Named and
/// stored as the reference tool does; checked by the rules of `build::egress_identity`.
fn egress_from_env(
    env: &EnvVars,
    catalog: &Catalog,
    taken: &[String],
) -> Result<Vec<IdentityConfig>, ConfigError> {
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
        let server_var = env.get(&var("MCP_SERVER_NAME")).map(str::to_string);
        let server = server_var.clone().unwrap_or_else(|| provider.clone());
        let name = if taken.contains(&server) || out.iter().any(|i| i.name == server) {
            format!("{server}-{n}")
        } else {
            server.clone()
        };
        let file_name = match &server_var {
            Some(s) => format!("{provider}-{s}-egress.json"),
            None => format!("{provider}-egress.json"),
        };
        let server_key = var(if server_var.is_some() {
            "MCP_SERVER_NAME"
        } else {
            "PROVIDER_NAME"
        });
        let spec = EgressSpec {
            keys: EgressKeys {
                provider: var("PROVIDER_NAME"),
                name: server_key.clone(),
                server: server_key,
                redirect_uri: var("OAUTH_REDIRECT_URI"),
                variables: var("PROVIDER_NAME"),
            },
            provider,
            name,
            file_name,
            server,
            client_id: cid.to_string(),
            client_secret: Some(Secret::new(secret)),
            redirect_uri: redirect.to_string(),
            scopes: env.get(&var("OAUTH_SCOPE")).map(split_scopes),
            variables: Default::default(),
            cloud_site: None,
        };
        out.push(egress_identity(env, spec, catalog)?);
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
    let endpoint_url = aws_endpoint(&|k| env.get(k).map(str::to_string))
        .map(|(var, u)| (var.to_string(), u, None));
    let mut id = spec(
        MachineKind::CognitoPassword,
        ProviderLabel::CognitoPassword,
        client_id,
        env.get("COGNITO_CLIENT_SECRET").map(Secret::new),
    );
    id.region = Some(region);
    id.user_pool_id = pool;
    id.cognito = Some(CognitoSpec {
        username,
        password: Secret::new(password),
        bearer: match env.get("COGNITO_BEARER") {
            Some("id_token") => BearerToken::IdToken,
            _ => BearerToken::AccessToken,
        },
        refresh_rotation: env.get("COGNITO_REFRESH_ROTATION") == Some("true"),
        endpoint_url,
    });
    build_identity(env, "COGNITO_USERNAME", &[], id).map(Some)
}

/// The reference tool's AgentCore gateways: `AGENTCORE_CLIENT_ID_N`,
/// `AGENTCORE_CLIENT_SECRET_N`, `AGENTCORE_SERVER_NAME_N` (N = 1..100, gaps allowed), M2M
/// clients of one Cognito domain (`COGNITO_DOMAIN` or `OAUTH_DOMAIN`). Each is an identity
/// bound to its server, stored where the reference tool stored it.
fn agentcore_from_env(env: &EnvVars) -> Result<Vec<(IdentityConfig, String)>, ConfigError> {
    let mut out = Vec::new();
    let (mut servers, mut numbers) = (Vec::new(), Vec::new());
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
        env.name(&format!("AGENTCORE_SERVER_NAME_{n}"), &server)?;
        // One token file and one lock per gateway: two entries for one server would share them.
        if let Some(m) = servers.iter().position(|s| *s == server) {
            let first = numbers[m];
            return Err(env.err(
                &format!("AGENTCORE_SERVER_NAME_{n}"),
                format!("names server `{server}`, as entry {first} does; give each AgentCore entry its own AGENTCORE_SERVER_NAME_N"),
            ));
        }
        servers.push(server.clone());
        numbers.push(n);
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
        let mut id = spec(
            MachineKind::CognitoM2m,
            ProviderLabel::BedrockAgentcore,
            cid.to_string(),
            Some(Secret::new(secret)),
        );
        id.token_url = Some(url);
        id.name = format!("agentcore-{server}");
        id.file_name = format!("bedrock-agentcore-{server}-egress.json");
        id.client_auth = ClientAuth::Post;
        let whole = format!("AGENTCORE_CLIENT_ID_{n}");
        out.push((
            build_identity(env, &whole, &[("token_url", domain_key)], id)?,
            server,
        ));
    }
    Ok(out)
}

fn ingress_from_env(env: &EnvVars) -> Result<Option<IdentityConfig>, ConfigError> {
    let provider = env
        .get("AUTH_PROVIDER")
        .unwrap_or("cognito")
        .to_ascii_lowercase();
    const OVERRIDE: &str = "INGRESS_OAUTH_TOKEN_URL";
    let token_url_override = match env.get(OVERRIDE) {
        Some(u) => Some(env.url(OVERRIDE, u)?),
        None => None,
    };
    // The variable a derived token URL came from, for errors.
    let from = |derived_from: &'static str| {
        if token_url_override.is_some() {
            OVERRIDE
        } else {
            derived_from
        }
    };
    let (mut id, whole, keys) = match provider.as_str() {
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
            let mut id = client(
                env,
                MachineKind::OidcM2m,
                ProviderLabel::KeycloakM2m,
                ["KEYCLOAK_M2M_CLIENT_ID", "KEYCLOAK_M2M_CLIENT_SECRET"],
                why,
            )?;
            let base = url.trim_end_matches('/');
            id.token_url =
                Some(token_url_override.clone().unwrap_or_else(|| {
                    format!("{base}/realms/{realm}/protocol/openid-connect/token")
                }));
            id.extra_fields = vec![
                ("keycloak_url".into(), url.clone()),
                ("realm".into(), realm.clone()),
            ];
            id.extra_headers = vec![
                ("X-Keycloak-Realm".into(), realm),
                ("X-Keycloak-URL".into(), url),
            ];
            (
                id,
                "KEYCLOAK_M2M_CLIENT_ID",
                vec![("token_url", from(url_key))],
            )
        }
        "entra" => {
            let why = "AUTH_PROVIDER=entra";
            let tenant = env.require("ENTRA_TENANT_ID", why)?;
            let mut id = client(
                env,
                MachineKind::OidcM2m,
                ProviderLabel::EntraM2m,
                ["ENTRA_CLIENT_ID", "ENTRA_CLIENT_SECRET"],
                why,
            )?;
            id.token_url = Some(token_url_override.clone().unwrap_or_else(|| {
                format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token")
            }));
            id.scopes = vec![format!("api://{}/.default", id.client_id)];
            id.extra_fields = vec![("tenant_id".into(), tenant)];
            (
                id,
                "ENTRA_CLIENT_ID",
                vec![("token_url", from("ENTRA_TENANT_ID"))],
            )
        }
        _ if env.get("INGRESS_OAUTH_CLIENT_ID").is_some()
            || env.get("INGRESS_OAUTH_USER_POOL_ID").is_some() =>
        {
            let why = "the Cognito ingress identity";
            let pool = env.require("INGRESS_OAUTH_USER_POOL_ID", why)?;
            let mut id = client(
                env,
                MachineKind::CognitoM2m,
                ProviderLabel::CognitoM2m,
                ["INGRESS_OAUTH_CLIENT_ID", "INGRESS_OAUTH_CLIENT_SECRET"],
                why,
            )?;
            id.token_url = token_url_override.clone();
            id.domain = env.get("COGNITO_DOMAIN").map(str::to_string);
            id.region = Some(env.get("AWS_REGION").unwrap_or("us-east-1").to_string());
            id.user_pool_id = Some(pool);
            id.scopes = scopes(env, "INGRESS_OAUTH_SCOPES");
            (
                id,
                "INGRESS_OAUTH_USER_POOL_ID",
                vec![("token_url", OVERRIDE), ("domain", "COGNITO_DOMAIN")],
            )
        }
        _ if env.get("OAUTH_CLIENT_ID").is_some() => {
            let why = "the generic OIDC identity (OAUTH_CLIENT_ID)";
            let mut id = client(
                env,
                MachineKind::OidcM2m,
                ProviderLabel::OidcM2m,
                ["OAUTH_CLIENT_ID", "OAUTH_CLIENT_SECRET"],
                why,
            )?;
            id.token_url = token_url_override.clone();
            if id.token_url.is_none() {
                id.discovery_url = Some(env.require("OAUTH_DISCOVERY_URL", why)?);
            }
            id.scopes = scopes(env, "OAUTH_M2M_SCOPES");
            (
                id,
                "OAUTH_CLIENT_ID",
                vec![
                    ("token_url", OVERRIDE),
                    ("discovery_url", "OAUTH_DISCOVERY_URL"),
                ],
            )
        }
        _ => return Ok(None),
    };
    id.client_auth = client_auth(env)?;
    build_identity(env, whole, &keys, id).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Endpoint, ServerAuth};

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
        assert_eq!(i.region(), Some("us-west-2"));
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
    fn egress_sets_follow_the_config_files_rules() {
        let set = [
            ("REGISTRY_URL", "https://gw.example.com"),
            ("EGRESS_OAUTH_CLIENT_ID_1", "c"),
            ("EGRESS_OAUTH_CLIENT_SECRET_1", "s"),
            (
                "EGRESS_OAUTH_REDIRECT_URI_1",
                "http://localhost:8080/callback",
            ),
            ("EGRESS_PROVIDER_NAME_1", "Atlassian"),
        ];
        let c = cfg(&set).unwrap().unwrap();
        let id = c.identity("atlassian").unwrap();
        assert_eq!(id.file_name, "atlassian-egress.json");
        assert_eq!(id.egress().unwrap().server, "atlassian");
        assert_eq!(c.servers[0].url, "https://gw.example.com/atlassian/mcp");
        assert_eq!(c.servers[0].auth, ServerAuth::bearer("atlassian", false));
        // A user's provider file is held to the https rule, as in a config file: the site-id
        // endpoint gets the token.
        let mut e = env(&set);
        e.provider_files = vec![(
            "atlassian".into(),
            "/p/atlassian.yaml".into(),
            "extras: {cloud_id: {url: 'http://sites.example.com/r', header: X-C}}\n".into(),
        )];
        let err = from_env(&e, PathBuf::from("/t")).unwrap_err().to_string();
        assert!(
            err.starts_with(
                "/r/.env:5: EGRESS_PROVIDER_NAME_1: `http://sites.example.com/r` uses plain http"
            ),
            "{err}"
        );
    }

    #[test]
    fn a_provider_login_never_takes_another_identitys_name() {
        let c = cfg(&[
            ("REGISTRY_URL", "https://gw.example.com"),
            ("INGRESS_OAUTH_USER_POOL_ID", "us-east-1_Ab"),
            ("INGRESS_OAUTH_CLIENT_ID", "c"),
            ("INGRESS_OAUTH_CLIENT_SECRET", "s"),
            ("COGNITO_USERNAME", "svc"),
            ("COGNITO_PASSWORD", "pw"),
            ("COGNITO_CLIENT_ID", "sc"),
            ("COGNITO_USER_POOL_ID", "us-east-1_Sv"),
            ("EGRESS_OAUTH_CLIENT_ID_1", "e"),
            ("EGRESS_OAUTH_CLIENT_SECRET_1", "es"),
            (
                "EGRESS_OAUTH_REDIRECT_URI_1",
                "http://localhost:8080/callback",
            ),
            ("EGRESS_PROVIDER_NAME_1", "atlassian"),
            ("EGRESS_MCP_SERVER_NAME_1", "cognito"),
        ])
        .unwrap()
        .unwrap();
        // The service account keeps its name; the login gets its own, and the server
        // named `cognito` carries the login's token, not the service account's.
        assert!(c.identity("cognito").unwrap().cognito().is_some());
        let login = c.identity("cognito-1").unwrap();
        assert_eq!(login.egress().unwrap().server, "cognito");
        assert_eq!(login.file_name, "atlassian-cognito-egress.json");
        let server = c.servers.iter().find(|s| s.name == "cognito").unwrap();
        assert_eq!(server.auth, ServerAuth::bearer("cognito-1", true));
    }

    #[test]
    fn two_agentcore_entries_for_one_server_are_refused() {
        let e = cfg(&[
            ("COGNITO_DOMAIN", "pfx"),
            ("AGENTCORE_CLIENT_ID_1", "a"),
            ("AGENTCORE_CLIENT_SECRET_1", "as"),
            ("AGENTCORE_SERVER_NAME_1", "Jira"),
            ("AGENTCORE_CLIENT_ID_2", "b"),
            ("AGENTCORE_CLIENT_SECRET_2", "bs"),
            ("AGENTCORE_SERVER_NAME_2", "jira"),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with(
                "/r/.env:7: AGENTCORE_SERVER_NAME_2: names server `jira`, as entry 1 does"
            ),
            "{e}"
        );
        // An egress server named like an AgentCore gateway's identity.
        let e = cfg(&[
            ("COGNITO_DOMAIN", "pfx"),
            ("AGENTCORE_CLIENT_ID_1", "a"),
            ("AGENTCORE_CLIENT_SECRET_1", "as"),
            ("AGENTCORE_SERVER_NAME_1", "jira"),
            ("EGRESS_OAUTH_CLIENT_ID_1", "e"),
            ("EGRESS_OAUTH_CLIENT_SECRET_1", "es"),
            (
                "EGRESS_OAUTH_REDIRECT_URI_1",
                "http://localhost:8080/callback",
            ),
            ("EGRESS_MCP_SERVER_NAME_1", "agentcore-jira"),
        ])
        .unwrap_err()
        .to_string();
        assert!(e.contains("two entries are named `agentcore-jira`"), "{e}");
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
