//! Configuration: the validated types every other module reads, built by the pure parsers
//! in `parse` (YAML file) and `env` (the reference tool's variables) through the rules they
//! share in `build`; `load` does the I/O.

pub mod build;
pub mod dotenv;
pub mod env;
pub mod load;
pub mod locate;
pub mod parse;
pub mod services;

use std::fmt;
use std::path::PathBuf;

use crate::failure::Backoff;
use crate::secret::Secret;

/// Where the configuration came from; errors and `status` name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    File(PathBuf),
    /// The reference tool's variables, from the process environment and optional env file.
    Environment {
        env_file: Option<PathBuf>,
    },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(p) => write!(f, "{}", p.display()),
            Origin::Environment { env_file: Some(p) } => {
                write!(f, "environment and {}", p.display())
            }
            Origin::Environment { env_file: None } => f.write_str("environment"),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    pub origin: Origin,
    pub tokens_dir: PathBuf,
    pub gateway_url: Option<String>,
    pub ingress: Option<IdentityConfig>,
    /// Named identities, bound to servers through `ServerAuth::Identity`.
    pub identities: Vec<IdentityConfig>,
    pub servers: Vec<ServerConfig>,
    pub refresh: RefreshPolicy,
    pub http: HttpPolicy,
    pub hooks: Hooks,
    /// Editor config files to keep current (`editors:`); `EditorSpec::defaults()` if omitted.
    pub editors: Vec<EditorSpec>,
    /// The proxy variables of the environment the configuration was loaded from (the
    /// process's, an env file's, the secrets file's): both HTTP stacks take it from here.
    pub proxy: crate::identity::proxy::ProxyEnv,
}

/// Commands the daemon runs when an identity needs attention. Each is an argv (no shell);
/// the identity and the message arrive in MCP_CREDD_* environment variables, never argv.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hooks {
    pub on_error: Option<Vec<String>>,
    pub on_reauth_required: Option<Vec<String>>,
}

impl Config {
    /// Every identity: the gateway's first, then the named ones.
    pub fn all_identities(&self) -> impl Iterator<Item = &IdentityConfig> {
        self.ingress.iter().chain(self.identities.iter())
    }

    pub fn identity(&self, name: &str) -> Option<&IdentityConfig> {
        self.all_identities().find(|i| i.name == name)
    }
}

/// The kind of an identity, as `kind:` and a token's binding spell it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentityKind {
    CognitoM2m,
    OidcM2m,
    /// A Cognito user (service account) signing in through the Cognito API.
    CognitoPassword,
    /// A person's token at a provider (3-legged: browser login, then refresh).
    Egress,
}

impl IdentityKind {
    pub fn as_str(self) -> &'static str {
        match self {
            IdentityKind::CognitoM2m => "cognito_m2m",
            IdentityKind::OidcM2m => "oidc_m2m",
            IdentityKind::CognitoPassword => "cognito_password",
            IdentityKind::Egress => "egress",
        }
    }
}

/// What `provider` says in an identity's token file (the reference tool's names), and what
/// `status` shows. A stored token of another provider is not the identity's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProviderLabel {
    CognitoM2m,
    OidcM2m,
    KeycloakM2m,
    EntraM2m,
    CognitoPassword,
    /// An AgentCore gateway's Cognito M2M client.
    BedrockAgentcore,
    /// An MCP server's own authorization (`auth: oauth`).
    McpOauth,
    /// A provider login (egress): the provider's catalog key.
    Egress(String),
}

impl ProviderLabel {
    pub fn as_str(&self) -> &str {
        match self {
            ProviderLabel::CognitoM2m => "cognito_m2m",
            ProviderLabel::OidcM2m => "oidc_m2m",
            ProviderLabel::KeycloakM2m => "keycloak_m2m",
            ProviderLabel::EntraM2m => "entra_m2m",
            ProviderLabel::CognitoPassword => "cognito_password",
            ProviderLabel::BedrockAgentcore => "bedrock-agentcore",
            ProviderLabel::McpOauth => "mcp_oauth",
            ProviderLabel::Egress(p) => p,
        }
    }
}

impl fmt::Display for ProviderLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which Cognito token a server wants as its bearer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BearerToken {
    #[default]
    AccessToken,
    IdToken,
}

/// A Cognito service account: USER_PASSWORD_AUTH, then REFRESH_TOKEN_AUTH.
#[derive(Clone, Debug)]
pub struct CognitoPassword {
    pub username: String,
    pub password: Secret,
    pub bearer: BearerToken,
    /// The app client rotates refresh tokens: refresh with GetTokensFromRefreshToken.
    pub refresh_rotation: bool,
    /// The Cognito API endpoint, when not AWS's public one (VPC endpoints, tests).
    pub endpoint_url: Option<String>,
}

/// How the client authenticates at the token endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// HTTP Basic with the form-urlencoded id and secret (RFC 6749 §2.3.1).
    #[default]
    Basic,
    /// `client_id` and `client_secret` in the form body.
    Post,
    /// A JWT signed with the client's private key (RFC 7523). The identity's
    /// `client_secret` then holds the PEM private key.
    PrivateKeyJwt,
}

/// Where the token endpoint comes from, in the order the config allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// A token endpoint URL given (or derived from a Cognito domain) in the config.
    TokenUrl(String),
    /// Not a token endpoint: the Cognito user-pool API (`cognito_password`).
    CognitoApi,
    /// Fetch this OIDC discovery document and use its `token_endpoint`; when that fails and
    /// `fallback` is set, use it (with a warning): the reference tool's pool-id guess.
    Discovery {
        url: String,
        fallback: Option<String>,
    },
    /// An MCP server that announces its authorization (the MCP authorization spec):
    /// probe it, read its protected resource metadata, then its authorization server's
    /// metadata; or go straight to `authorization_server` when the config names one.
    McpServer {
        /// The server's canonical URL: the `resource` of every token request.
        server_url: String,
        authorization_server: Option<String>,
    },
}

/// What an identity is, with what only its kind has.
#[derive(Clone, Debug)]
pub enum Kind {
    /// client_credentials at a Cognito domain. The pool and its region, when known, go
    /// into the token file as the reference tool wrote them.
    CognitoM2m {
        region: Option<String>,
        user_pool_id: Option<String>,
    },
    /// client_credentials at an OAuth/OIDC token endpoint, with the `audience` and
    /// `resource` (RFC 8707) the config asks for.
    OidcM2m {
        audience: Option<String>,
        resource: Option<String>,
    },
    /// A Cognito user (service account) signing in through the Cognito API.
    CognitoPassword {
        /// Required: the Cognito API is regional.
        region: String,
        user_pool_id: Option<String>,
        account: CognitoPassword,
    },
    /// A person's token at a provider (3-legged: browser login, then refresh). Boxed: the
    /// provider's definition is large.
    Egress(Box<EgressConfig>),
}

impl Kind {
    pub fn tag(&self) -> IdentityKind {
        match self {
            Kind::CognitoM2m { .. } => IdentityKind::CognitoM2m,
            Kind::OidcM2m { .. } => IdentityKind::OidcM2m,
            Kind::CognitoPassword { .. } => IdentityKind::CognitoPassword,
            Kind::Egress(_) => IdentityKind::Egress,
        }
    }
}

/// An identity: who asks for tokens, where, and what its kind adds.
#[derive(Clone, Debug)]
pub struct IdentityConfig {
    /// Unique name; the gateway identity is `ingress`. Names the lock and state.
    pub name: String,
    /// The token file in `tokens_dir`: `ingress.json`, `{name}.json`, or the reference
    /// tool's name for identities it also knew (AgentCore).
    pub file_name: String,
    pub kind: Kind,
    /// What `provider` says in the token file.
    pub provider_label: ProviderLabel,
    pub client_id: String,
    /// Required for the M2M kinds; optional for `cognito_password` (public app clients).
    /// With `ClientAuth::PrivateKeyJwt`, the PEM private key that signs the assertions.
    pub client_secret: Option<Secret>,
    pub scopes: Vec<String>,
    pub endpoint: Endpoint,
    pub client_auth: ClientAuth,
    /// Extra fields written into the token file for compatibility (keycloak_url, realm...).
    pub extra_fields: Vec<(String, String)>,
    /// Extra headers sent with the token (X-Keycloak-Realm...).
    pub extra_headers: Vec<(String, String)>,
    /// The gateway its tokens are handed to (`gateway_url`), recorded in the token's
    /// binding: a stored token is never rendered for another gateway. Set by the loader.
    pub gateway: Option<String>,
}

impl IdentityConfig {
    /// An MCP server's interactive identity (`auth: oauth` without client_credentials):
    /// the server's canonical URL and the configured authorization server. Its issuer,
    /// endpoints and (unless configured) client are found at login time.
    pub fn mcp_login(&self) -> Option<(&str, Option<&str>)> {
        match (&self.endpoint, &self.kind) {
            (
                Endpoint::McpServer {
                    server_url,
                    authorization_server,
                },
                Kind::Egress(_),
            ) => Some((server_url, authorization_server.as_deref())),
            _ => None,
        }
    }

    /// The Cognito service account, for `cognito_password`.
    pub fn cognito(&self) -> Option<&CognitoPassword> {
        match &self.kind {
            Kind::CognitoPassword { account, .. } => Some(account),
            _ => None,
        }
    }

    /// The provider login, for egress identities.
    pub fn egress(&self) -> Option<&EgressConfig> {
        match &self.kind {
            Kind::Egress(e) => Some(e.as_ref()),
            _ => None,
        }
    }

    /// The identity as a login, for egress identities.
    pub fn login(&self) -> Option<Login<'_>> {
        match &self.kind {
            Kind::Egress(eg) => Some(Login { id: self, eg }),
            _ => None,
        }
    }

    /// The Cognito region (the Cognito kinds).
    pub fn region(&self) -> Option<&str> {
        match &self.kind {
            Kind::CognitoM2m { region, .. } => region.as_deref(),
            Kind::CognitoPassword { region, .. } => Some(region),
            _ => None,
        }
    }

    /// The Cognito user pool (the Cognito kinds).
    pub fn user_pool_id(&self) -> Option<&str> {
        match &self.kind {
            Kind::CognitoM2m { user_pool_id, .. } | Kind::CognitoPassword { user_pool_id, .. } => {
                user_pool_id.as_deref()
            }
            _ => None,
        }
    }

    /// The `audience` asked for (oidc_m2m).
    pub fn audience(&self) -> Option<&str> {
        match &self.kind {
            Kind::OidcM2m { audience, .. } => audience.as_deref(),
            _ => None,
        }
    }

    /// The `resource` asked for (oidc_m2m; an MCP server's canonical URL, for both grants).
    pub fn resource(&self) -> Option<&str> {
        match &self.kind {
            Kind::OidcM2m { resource, .. } => resource.as_deref(),
            Kind::Egress(e) => e.resource.as_deref(),
            _ => None,
        }
    }

    /// A secret this identity needs was left unresolved by a load that makes no network
    /// call (`LoadOptions::lazy_secrets`): it holds an empty value that must never be sent.
    pub fn secret_unresolved(&self) -> bool {
        self.client_secret
            .as_ref()
            .is_some_and(|s| s.expose().is_empty())
            || self
                .cognito()
                .is_some_and(|c| c.password.expose().is_empty())
    }
}

/// An identity that logs a person in (`Kind::Egress`), seen with its provider login: what
/// the login, the code exchange, the refresh and the device flow take, so none of them
/// asks at run time whether it was handed the right kind. Made by
/// [`IdentityConfig::login`], or by [`LoginBuf::login`] for one whose endpoints and client
/// were resolved.
#[derive(Clone, Copy, Debug)]
pub struct Login<'a> {
    pub id: &'a IdentityConfig,
    pub eg: &'a EgressConfig,
}

impl<'a> Login<'a> {
    /// The login to an MCP server (`auth: oauth`); `None` for a provider login (`egress:`).
    pub fn mcp(self) -> Option<McpLogin<'a>> {
        let (server_url, authorization_server) = self.id.mcp_login()?;
        Some(McpLogin {
            login: self,
            server_url,
            authorization_server,
        })
    }

    /// An owned copy, changed by `edit`: what discovery or a client registration resolved.
    pub fn resolve(self, edit: impl FnOnce(&mut IdentityConfig, &mut EgressConfig)) -> LoginBuf {
        let mut id = self.id.clone();
        let mut eg = self.eg.clone();
        edit(&mut id, &mut eg);
        id.kind = Kind::Egress(Box::new(eg));
        LoginBuf(id)
    }
}

/// A login to an MCP server with `auth: oauth`: its canonical URL and the authorization
/// server the config names, if any (otherwise the server's metadata names it).
#[derive(Clone, Copy, Debug)]
pub struct McpLogin<'a> {
    pub login: Login<'a>,
    pub server_url: &'a str,
    pub authorization_server: Option<&'a str>,
}

/// An owned [`Login`]: an egress identity as discovery or registration resolved it. Only
/// [`Login::resolve`] makes one, so it always holds the egress kind.
#[derive(Clone, Debug)]
pub struct LoginBuf(IdentityConfig);

impl LoginBuf {
    pub fn login(&self) -> Login<'_> {
        match &self.0.kind {
            Kind::Egress(eg) => Login { id: &self.0, eg },
            _ => unreachable!("Login::resolve builds a LoginBuf with the egress kind"),
        }
    }
}

/// A provider login whose token the gateway forwards to one MCP server.
#[derive(Clone, Debug)]
pub struct EgressConfig {
    /// The catalog key (`atlassian`...).
    pub provider: String,
    /// The provider's definition with its variables filled in.
    pub def: crate::providers::ProviderDef,
    /// Where the browser comes back: a loopback http URL mcp-credd listens on.
    pub redirect_uri: String,
    /// The MCP server whose entries carry this token.
    pub server: String,
    /// Atlassian: which site's cloud id to use when the token reaches several (name or URL).
    pub cloud_site: Option<String>,
    /// RFC 8707: the one resource the token is for (an MCP server's canonical URL, sent
    /// with every request of the login and refresh); `None` for provider logins.
    pub resource: Option<String>,
}

/// Checks a redirect URI mcp-credd can listen on: http, a loopback host, a port.
pub fn check_redirect_uri(uri: &str) -> Result<(), String> {
    let u = reqwest::Url::parse(uri).map_err(|e| format!("`{uri}` is not a valid URL: {e}"))?;
    if u.scheme() != "http" || !is_loopback_host(&u) {
        return Err(format!(
            "`{uri}`: the redirect URI must be http://localhost:PORT/PATH (or 127.0.0.1, [::1]) so mcp-credd can receive the login on this machine"
        ));
    }
    if u.port().is_none() {
        return Err(format!(
            "`{uri}`: give the redirect URI an explicit port (e.g. http://localhost:8080/callback)"
        ));
    }
    Ok(())
}

/// How a server entry is authenticated.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum ServerAuth {
    /// The gateway's ingress headers (`X-Authorization` and friends).
    #[default]
    Gateway,
    /// No headers at all.
    None,
    /// A named identity's token in one header: `{header}: {scheme} {token}`.
    Identity {
        name: String,
        header: String,
        /// `Bearer` unless configured; empty for the bare token.
        scheme: String,
        /// Also send the gateway's ingress headers (a server behind the gateway that
        /// wants its own token too).
        gateway: bool,
    },
}

impl ServerAuth {
    /// A named identity's token in `header` (default `Authorization`) with `scheme`
    /// (default `Bearer`); `gateway`: the gateway's headers go along.
    pub fn identity(
        name: &str,
        header: Option<String>,
        scheme: Option<String>,
        gateway: bool,
    ) -> ServerAuth {
        ServerAuth::Identity {
            name: name.to_string(),
            header: header.unwrap_or_else(|| "Authorization".into()),
            scheme: scheme.unwrap_or_else(|| "Bearer".into()),
            gateway,
        }
    }

    /// A named identity's token as `Authorization: Bearer`.
    pub fn bearer(name: &str, gateway: bool) -> ServerAuth {
        ServerAuth::identity(name, None, None, gateway)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Transport {
    #[default]
    StreamableHttp,
    Sse,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::StreamableHttp => "streamable-http",
            Transport::Sse => "sse",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    pub name: String,
    pub url: String,
    pub transport: Transport,
    pub auth: ServerAuth,
}

/// An editor's MCP config file format (REFERENCE.md §2). `render::formats` knows each
/// one's layout; `render::targets` knows where each lives by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EditorFormat {
    /// VS Code `mcp.json` (user or `.vscode/`): JSONC, `servers`.
    Vscode,
    /// `{"mcp": {"servers": ...}}`: the reference tool's `vscode_mcp.json`, read by agents.
    VscodeLegacy,
    /// Roo Code `mcp_settings.json` / `.roo/mcp.json`, and the reference tool's `mcp.json`.
    Roo,
    Cline,
    Cursor,
    /// A Claude Code project's `.mcp.json` (never `~/.claude.json`, which the app rewrites).
    ClaudeCode,
    Windsurf,
}

impl EditorFormat {
    pub const ALL: [EditorFormat; 7] = [
        EditorFormat::Vscode,
        EditorFormat::VscodeLegacy,
        EditorFormat::Roo,
        EditorFormat::Cline,
        EditorFormat::Cursor,
        EditorFormat::ClaudeCode,
        EditorFormat::Windsurf,
    ];

    /// The name used in the config file.
    pub fn name(self) -> &'static str {
        match self {
            EditorFormat::Vscode => "vscode",
            EditorFormat::VscodeLegacy => "vscode_legacy",
            EditorFormat::Roo => "roo",
            EditorFormat::Cline => "cline",
            EditorFormat::Cursor => "cursor",
            EditorFormat::ClaudeCode => "claude_code",
            EditorFormat::Windsurf => "windsurf",
        }
    }

    pub fn from_name(name: &str) -> Option<EditorFormat> {
        EditorFormat::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// One item of `editors:`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EditorSpec {
    /// The reference tool's two copies in `tokens_dir` (`vscode_mcp.json`, `mcp.json`).
    Reference,
    /// A format at its usual place (`path: None`) or at the given path.
    File {
        format: EditorFormat,
        path: Option<PathBuf>,
        /// Write tokens even when the file is in a git work tree that does not ignore it.
        allow_tracked: bool,
    },
}

impl EditorSpec {
    /// What an omitted `editors:` means: VS Code's and Roo Code's user files, and the
    /// reference copies that existing agents read.
    pub fn defaults() -> Vec<EditorSpec> {
        vec![
            EditorSpec::File {
                format: EditorFormat::Vscode,
                path: None,
                allow_tracked: false,
            },
            EditorSpec::File {
                format: EditorFormat::Roo,
                path: None,
                allow_tracked: false,
            },
            EditorSpec::Reference,
        ]
    }
}

/// When tokens are refreshed; one policy for the one-shot and the daemon.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RefreshPolicy {
    /// Refresh once this fraction of the lifetime has passed.
    pub at_fraction: f64,
    /// ... and never later than this long before expiry (milliseconds).
    pub before_expiry_ms: i64,
    /// Refresh up to this fraction of the lifetime earlier, spread per identity.
    pub jitter_fraction: f64,
    /// Tokens whose expiry is unknown are refreshed this long after they were obtained.
    pub unknown_expiry_interval_ms: i64,
    /// Daemon: first wait after a failed refresh; doubled per failure, full jitter...
    pub retry_initial_ms: i64,
    /// ...up to this cap. Retries never stop for transient failures.
    pub retry_max_ms: i64,
    /// Daemon: the longest it sleeps before looking at the wall clock again, so a laptop
    /// waking from suspend or a clock jump is noticed within this time.
    pub check_interval_ms: i64,
    /// Daemon: refreshes running at once.
    pub concurrency: usize,
}

impl RefreshPolicy {
    /// The daemon's backoff between refreshes after transient failures.
    pub fn retry_backoff(&self) -> Backoff {
        Backoff {
            initial_ms: self.retry_initial_ms.max(0) as u64,
            max_ms: self.retry_max_ms.max(0) as u64,
        }
    }
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        RefreshPolicy {
            at_fraction: 0.75,
            before_expiry_ms: 5 * 60_000,
            jitter_fraction: 0.05,
            unknown_expiry_interval_ms: 30 * 60_000,
            retry_initial_ms: 10_000,
            retry_max_ms: 5 * 60_000,
            check_interval_ms: 10_000,
            concurrency: 8,
        }
    }
}

/// Network behaviour of every call to an identity provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpPolicy {
    /// Whole-request timeout (milliseconds).
    pub timeout_ms: u64,
    /// Attempts for one token request, the first included; transient errors only.
    pub attempts: u32,
    /// First backoff; doubled each attempt, full jitter, capped by `max_backoff_ms`.
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
}

impl HttpPolicy {
    /// The backoff between the attempts of one request.
    pub fn backoff(&self) -> Backoff {
        Backoff {
            initial_ms: self.initial_backoff_ms,
            max_ms: self.max_backoff_ms,
        }
    }
}

impl Default for HttpPolicy {
    fn default() -> Self {
        HttpPolicy {
            timeout_ms: 30_000,
            attempts: 4,
            initial_backoff_ms: 500,
            max_backoff_ms: 10_000,
        }
    }
}

/// A configuration problem, located as precisely as we can: file, line, key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub origin: String,
    pub line: Option<usize>,
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.origin)?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        f.write_str(": ")?;
        if let Some(k) = &self.key {
            write!(f, "{k}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl ConfigError {
    pub fn new(origin: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            origin: origin.into(),
            line: None,
            key: None,
            message: message.into(),
        }
    }
    pub fn at(mut self, key: impl Into<String>, line: Option<usize>) -> Self {
        self.key = Some(key.into());
        self.line = line;
        self
    }
}

/// Is `url` acceptable for sending secrets to: https, or http to a loopback host?
/// A URL with a control character or white space is refused before it is parsed (the URL
/// parser would quietly drop some of them, while the text itself travels on into messages,
/// logs and token files). Refusals show the URL escaped, without credentials or query.
pub fn check_endpoint_url(url: &str) -> Result<(), String> {
    let shown = crate::sanitize::redact_url(url, true);
    if let Some(c) = crate::sanitize::first_unfit_in_word(url) {
        return Err(format!(
            "`{shown}` contains {}, which no URL may hold; remove it (from a server, ask its operator to fix its metadata)",
            if c.is_whitespace() && !c.is_control() {
                "white space".to_string()
            } else {
                format!(
                    "the character `{}`",
                    crate::sanitize::escape(&c.to_string())
                )
            }
        ));
    }
    let parsed =
        reqwest::Url::parse(url).map_err(|e| format!("`{shown}` is not a valid URL: {e}"))?;
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if is_loopback_host(&parsed) => Ok(()),
        "http" => Err(format!(
            "`{shown}` uses plain http; use https (plain http is allowed only for 127.0.0.1, ::1 and localhost)"
        )),
        other => Err(format!("`{shown}` has scheme `{other}`; use https")),
    }
}

pub fn is_loopback_host(url: &reqwest::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Names whose files (`NAME.json`, `NAME.lock`) are mcp-credd's own in the tokens directory.
const RESERVED_NAMES: [&str; 4] = ["daemon", "owned", "render", "unwritable"];

/// The one rule for names that become parts of file names (identities, servers,
/// providers), from YAML or `.env`: letters, digits, `-`, `_` and `.`, not starting with a
/// dot, at most 100 characters. So no name can reach outside the tokens directory (`..`,
/// `/`), hide a file (`.x`), or carry a control character into a path or a log line.
pub fn check_name(name: &str) -> Result<(), String> {
    let shown: String = name.chars().flat_map(char::escape_default).collect();
    if name.is_empty() {
        return Err("a name cannot be empty; use letters, digits, `-`, `_` and `.`".into());
    }
    if name.len() > 100 {
        return Err(format!(
            "`{}...` is too long for a name; use at most 100 characters",
            shown.chars().take(40).collect::<String>()
        ));
    }
    if name.starts_with('.') {
        return Err(format!(
            "`{shown}` starts with a dot; a name uses letters, digits, `-`, `_` and `.` and does not start with `.`"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        let c: String = c.escape_default().collect();
        return Err(format!(
            "`{shown}` contains `{c}`; a name uses only letters, digits, `-`, `_` and `.` (it becomes part of a file name)"
        ));
    }
    Ok(())
}

/// `check_name` for the names a configuration gives (identities, servers, providers):
/// also not one of mcp-credd's own files in the tokens directory, which such a name would
/// overwrite (the ownership record) or share a lock with (the daemon, the render).
pub fn check_config_name(name: &str) -> Result<(), String> {
    check_name(name)?;
    if RESERVED_NAMES.contains(&name) || name.starts_with("mcp-client-") {
        return Err(format!(
            "`{name}` is a name mcp-credd keeps for its own files in the tokens directory ({}, mcp-client-*); choose another name",
            RESERVED_NAMES.join(", ")
        ));
    }
    Ok(())
}

/// Server URL when the config gives none: `{gateway_url}/{name}/mcp`.
pub fn default_server_url(gateway_url: &str, name: &str) -> String {
    format!("{}/{}/mcp", gateway_url.trim_end_matches('/'), name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_rule_for_names() {
        for ok in ["ingress", "a.b", "my-server_2", "A1", "x.."] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".hidden",
            "..",
            "../../evil",
            "a/b",
            "a b",
            "a\nb",
            "é",
            &"x".repeat(101),
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        let e = check_name("../../evil").unwrap_err();
        assert!(e.contains("starts with a dot"), "{e}");
        let e = check_name("a\nb").unwrap_err();
        assert!(e.contains("`a\\nb` contains `\\n`"), "{e}");
        for reserved in [
            "owned",
            "render",
            "daemon",
            "unwritable",
            "mcp-client-0123abcd",
        ] {
            assert!(
                check_name(reserved).is_ok(),
                "mcp-credd's own files pass the file rule"
            );
            let e = check_config_name(reserved).unwrap_err();
            assert!(e.contains("keeps for its own files"), "{e}");
        }
        assert!(check_config_name("rendering").is_ok());
        assert!(check_config_name("../x").is_err());
    }

    #[test]
    fn endpoint_urls() {
        assert!(check_endpoint_url("https://x.example.com/oauth2/token").is_ok());
        assert!(check_endpoint_url("http://127.0.0.1:9/t").is_ok());
        assert!(check_endpoint_url("http://127.5.0.1/t").is_ok());
        assert!(check_endpoint_url("http://[::1]:8/t").is_ok());
        assert!(check_endpoint_url("http://localhost/t").is_ok());
        assert!(
            check_endpoint_url("http://example.com/t")
                .unwrap_err()
                .contains("plain http")
        );
        assert!(check_endpoint_url("http://10.0.0.1/t").is_err());
        assert!(check_endpoint_url("ftp://x/t").is_err());
        assert!(check_endpoint_url("not a url").is_err());
        // Control characters and white space are refused, not dropped by the parser, and
        // the refusal shows them escaped.
        for (url, shown) in [
            ("http://127.0.0.1:9/as\x1b[31mX", "\\u{1b}"),
            ("https://as.example.com/\r\nforged", "\\r"),
            ("https://as.example.com/a\tb", "\\t"),
            ("https://as.example.com/\u{202e}x", "\\u{202e}"),
        ] {
            let e = check_endpoint_url(url).unwrap_err();
            assert!(e.contains("no URL may hold") && e.contains(shown), "{e}");
            assert!(!e.chars().any(char::is_control), "{e:?}");
        }
        assert!(
            check_endpoint_url(" https://as.example.com/t")
                .unwrap_err()
                .contains("white space")
        );
        // A refusal never shows credentials or a query.
        let e = check_endpoint_url("http://user:s3cret@cognito.example.com/p?key=k3y").unwrap_err();
        assert!(
            e.contains("`http://cognito.example.com/p?[redacted]` uses plain http"),
            "{e}"
        );
        assert!(!e.contains("s3cret") && !e.contains("k3y"), "{e}");
    }

    #[test]
    fn error_display_names_file_line_and_key() {
        let e = ConfigError::new("/c.yaml", "unknown key").at("ingress.x", Some(4));
        assert_eq!(e.to_string(), "/c.yaml:4: ingress.x: unknown key");
    }
}
