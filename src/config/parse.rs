//! The YAML config file's front end: its text into raw structs (serde's errors located and
//! worded for people), the rules of the file's own structure (unknown keys, keys foreign to
//! a kind, editors, refresh and http settings), and the raw structs into the descriptions
//! the shared stage (`build`) checks and builds into [`Config`].
//!
//! Secrets given as `{env: NAME}` or `{file: PATH}` are resolved through a [`Lookup`] the
//! caller provides, so this module never touches the process environment or the disk.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::build::servers::{AuthSpec, OauthSpec, ServerSpec};
use super::build::{
    self, CognitoSpec, EgressKeys, EgressSpec, IdentitySpec, MachineKind, Secrets, Source,
    aws_endpoint, did_you_mean,
};
use super::locate::locate;
use super::{
    BearerToken, ClientAuth, Config, ConfigError, EditorFormat, EditorSpec, Hooks, HttpPolicy,
    IdentityConfig, Origin, ProviderLabel, RefreshPolicy, Transport, check_config_name,
};
use crate::providers::Catalog;
use crate::secret::Secret;

/// Access to the outside world that resolving a config needs.
pub trait Lookup {
    fn env(&self, name: &str) -> Option<String>;
    fn read_file(&self, path: &Path) -> std::io::Result<String>;
    fn home_dir(&self) -> Option<PathBuf>;
    /// The user's own provider definitions (`~/.config/mcp-credd/providers/*.yaml`), as
    /// (key, file name, text).
    fn provider_files(&self) -> Result<Vec<(String, String, String)>, ConfigError> {
        Ok(Vec::new())
    }
    /// A secret that cannot be resolved: `Err` stops the load (the default); `Ok` means the
    /// caller needs no secrets and the problem was recorded for it.
    fn defer(&self, e: ConfigError) -> Result<(), ConfigError> {
        Err(e)
    }
}

pub use super::build::SecretSpec;

const UNQUOTED_SECRET: &str = "a secret must be a quoted string; quote it (\"...\")";

/// A secret as written in the config: a literal, `{env: NAME}` or `{file: PATH}`.
impl<'de> Deserialize<'de> for SecretSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = SecretSpec;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string, {env: VARIABLE} or {file: PATH}")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<SecretSpec, E> {
                Ok(SecretSpec::Literal(Secret::new(v)))
            }
            // A secret written as a bare number or boolean: refuse without echoing it.
            fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<SecretSpec, E> {
                Err(E::custom(UNQUOTED_SECRET))
            }
            fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<SecretSpec, E> {
                Err(E::custom(UNQUOTED_SECRET))
            }
            fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<SecretSpec, E> {
                Err(E::custom(UNQUOTED_SECRET))
            }
            fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<SecretSpec, E> {
                Err(E::custom(UNQUOTED_SECRET))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<SecretSpec, A::Error> {
                use serde::de::Error;
                let Some(k) = m.next_key::<String>()? else {
                    return Err(A::Error::custom(
                        "expected {env: VARIABLE} or {file: PATH}, found an empty map",
                    ));
                };
                let v: String = m.next_value()?;
                let spec = match k.as_str() {
                    "env" => SecretSpec::Env(v),
                    "file" => SecretSpec::File(v),
                    // The key is not echoed: `{SECRET}` is a YAML map whose key is the secret.
                    _ => {
                        return Err(A::Error::custom(
                            "unknown secret source; use {env: VARIABLE}, {file: PATH} or a quoted string",
                        ));
                    }
                };
                if m.next_key::<String>()?.is_some() {
                    return Err(A::Error::custom(
                        "a secret takes exactly one of `env` or `file`",
                    ));
                }
                Ok(spec)
            }
        }
        d.deserialize_any(V)
    }
}

/// A list of scopes, written as a YAML list or one space-separated string.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Scopes(Vec<String>);

impl<'de> Deserialize<'de> for Scopes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Scopes;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of scopes or a space-separated string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Scopes, E> {
                Ok(Scopes(v.split_whitespace().map(str::to_string).collect()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut s: A) -> Result<Scopes, A::Error> {
                let mut out = Vec::new();
                while let Some(x) = s.next_element::<String>()? {
                    out.push(x);
                }
                Ok(Scopes(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// A duration: integer seconds or `90s`, `5m`, `2h`, `1d`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Millis(i64);

pub fn parse_duration_ms(s: &str) -> Option<i64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: i64 = num.parse().ok()?;
    let mult = match unit.trim() {
        "" | "s" => 1_000,
        "ms" => 1,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    n.checked_mul(mult)
}

impl<'de> Deserialize<'de> for Millis {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Millis;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a duration such as 300, 90s, 5m, 2h or 1d")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Millis, E> {
                i64::try_from(v)
                    .ok()
                    .and_then(|s| s.checked_mul(1000))
                    .map(Millis)
                    .ok_or_else(|| E::custom("duration too large"))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Millis, E> {
                if v < 0 {
                    return Err(E::custom("a duration cannot be negative"));
                }
                self.visit_u64(v as u64)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Millis, E> {
                parse_duration_ms(v).map(Millis).ok_or_else(|| {
                    E::custom(format!(
                        "`{v}` is not a duration; write e.g. 90s, 5m, 2h or 1d"
                    ))
                })
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum RawKind {
    CognitoM2m,
    OidcM2m,
    CognitoPassword,
}

#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum RawBearer {
    AccessToken,
    IdToken,
}

#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum RawClientAuth {
    Basic,
    Post,
    PrivateKeyJwt,
}

/// `auth:` of a server: `gateway`, `none`, `oauth`, `{identity: NAME, header: H, scheme: S}`
/// or `{oauth: {...}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RawServerAuth {
    Gateway,
    None,
    Identity(RawBinding),
    /// The MCP server announces its authorization; `None` for the bare `auth: oauth`.
    Oauth(Option<RawOauth>),
}

#[derive(Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct RawBinding {
    identity: String,
    header: Option<String>,
    scheme: Option<String>,
    gateway: Option<bool>,
}

/// `auth: {oauth: {...}}` of a server.
#[derive(Deserialize, Debug, Clone, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
struct RawOauth {
    grant: Option<RawGrant>,
    client_id: Option<String>,
    client_secret: Option<SecretSpec>,
    private_key: Option<SecretSpec>,
    scopes: Option<Scopes>,
    authorization_server: Option<String>,
    /// The interactive login's loopback redirect (a pre-registered client's).
    redirect_uri: Option<String>,
}

#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum RawGrant {
    ClientCredentials,
    AuthorizationCode,
}

/// The map form of a server's `auth:`: a binding or `oauth:`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RawAuthMap {
    identity: Option<String>,
    header: Option<String>,
    scheme: Option<String>,
    gateway: Option<bool>,
    oauth: Option<RawOauth>,
}

impl<'de> Deserialize<'de> for RawServerAuth {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawServerAuth;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(
                    "`gateway`, `none`, `oauth`, {identity: NAME, header: HEADER} or {oauth: {...}}",
                )
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawServerAuth, E> {
                match v {
                    "gateway" => Ok(RawServerAuth::Gateway),
                    "none" => Ok(RawServerAuth::None),
                    "oauth" => Ok(RawServerAuth::Oauth(None)),
                    other => Err(E::unknown_variant(other, &["gateway", "none", "oauth"])),
                }
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                m: A,
            ) -> Result<RawServerAuth, A::Error> {
                use serde::de::Error;
                let raw = RawAuthMap::deserialize(serde::de::value::MapAccessDeserializer::new(m))?;
                match (raw.identity, raw.oauth) {
                    (Some(_), Some(_)) => Err(A::Error::custom(
                        "give either `identity` or `oauth`, not both",
                    )),
                    (Some(identity), None) => Ok(RawServerAuth::Identity(RawBinding {
                        identity,
                        header: raw.header,
                        scheme: raw.scheme,
                        gateway: raw.gateway,
                    })),
                    (None, Some(o)) => {
                        if raw.header.is_some() || raw.scheme.is_some() || raw.gateway.is_some() {
                            return Err(A::Error::custom(
                                "`header`, `scheme` and `gateway` go with `identity`, not with `oauth` (its token is sent as Authorization: Bearer)",
                            ));
                        }
                        Ok(RawServerAuth::Oauth(Some(o)))
                    }
                    (None, None) => Err(A::Error::custom(
                        "missing `identity: NAME` or `oauth: {...}`",
                    )),
                }
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
enum RawTransport {
    StreamableHttp,
    Sse,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct RawIdentity {
    kind: Option<RawKind>,
    client_id: Option<String>,
    client_secret: Option<SecretSpec>,
    scopes: Option<Scopes>,
    client_auth: Option<RawClientAuth>,
    token_url: Option<String>,
    // cognito_m2m
    region: Option<String>,
    user_pool_id: Option<String>,
    domain: Option<String>,
    // both: discovery document location
    discovery_url: Option<String>,
    // oidc_m2m
    issuer: Option<String>,
    private_key: Option<SecretSpec>,
    audience: Option<String>,
    resource: Option<String>,
    // cognito_password
    username: Option<String>,
    password: Option<SecretSpec>,
    bearer: Option<RawBearer>,
    refresh_rotation: Option<bool>,
    endpoint_url: Option<String>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RawEgress {
    name: Option<String>,
    provider: String,
    client_id: String,
    client_secret: Option<SecretSpec>,
    redirect_uri: Option<String>,
    scopes: Option<Scopes>,
    server: Option<String>,
    variables: Option<std::collections::BTreeMap<String, String>>,
    cloud_site: Option<String>,
}

/// Where the browser comes back when the config does not say: a path of its own per
/// provider (`http://localhost:8080/callback/<provider>`), so that a code one provider
/// sends can never be taken for another's (the mix-up defence of RFC 9700 §4.4 for
/// providers that do not send `iss`).
pub const DEFAULT_REDIRECT_BASE: &str = "http://localhost:8080/callback";

pub fn default_redirect_uri(provider: &str) -> String {
    format!("{DEFAULT_REDIRECT_BASE}/{provider}")
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RawServer {
    name: String,
    url: Option<String>,
    transport: Option<RawTransport>,
    auth: Option<RawServerAuth>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct RawRefresh {
    at_fraction: Option<f64>,
    before_expiry: Option<Millis>,
    jitter: Option<f64>,
    unknown_expiry_interval: Option<Millis>,
    retry_initial: Option<Millis>,
    retry_max: Option<Millis>,
    check_interval: Option<Millis>,
    concurrency: Option<usize>,
}

/// A command: a YAML list (argv) or a string split on whitespace.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Argv(Vec<String>);

impl<'de> Deserialize<'de> for Argv {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Scopes::deserialize(d)?;
        if s.0.is_empty() {
            return Err(serde::de::Error::custom("a command cannot be empty"));
        }
        Ok(Argv(s.0))
    }
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    timeout: Option<Millis>,
    attempts: Option<u32>,
    initial_backoff: Option<Millis>,
    max_backoff: Option<Millis>,
}

/// An item of `editors:`: a format name (`vscode`) or `{format: NAME, path: PATH}`.
/// Names are checked after parsing, so that a typo gets a "did you mean".
#[derive(Debug)]
struct RawEditor {
    format: String,
    path: Option<String>,
    allow_tracked: Option<bool>,
    /// Written as a map (errors then point at `.format`).
    map: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEditorMap {
    format: String,
    path: Option<String>,
    allow_tracked: Option<bool>,
}

impl<'de> Deserialize<'de> for RawEditor {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawEditor;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an editor name or {format: NAME, path: PATH}")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawEditor, E> {
                Ok(RawEditor {
                    format: v.to_string(),
                    path: None,
                    allow_tracked: None,
                    map: false,
                })
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, m: A) -> Result<RawEditor, A::Error> {
                let r = RawEditorMap::deserialize(serde::de::value::MapAccessDeserializer::new(m))?;
                Ok(RawEditor {
                    format: r.format,
                    path: r.path,
                    allow_tracked: r.allow_tracked,
                    map: true,
                })
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    tokens_dir: Option<String>,
    gateway_url: Option<String>,
    ingress: Option<RawIdentity>,
    identities: Option<std::collections::BTreeMap<String, RawIdentity>>,
    egress: Option<Vec<RawEgress>>,
    providers: Option<std::collections::BTreeMap<String, yaml_serde::Mapping>>,
    servers: Option<Vec<RawServer>>,
    servers_dir: Option<String>,
    refresh: Option<RawRefresh>,
    http: Option<RawHttp>,
    on_error: Option<Argv>,
    on_reauth_required: Option<Argv>,
    editors: Option<Vec<RawEditor>>,
}

/// The result of parsing: the config plus the `servers_dir` to import service files from,
/// which the loader reads (I/O) and appends.
#[derive(Debug)]
pub struct Parsed {
    pub config: Config,
    pub servers_dir: Option<PathBuf>,
    /// Keys holding a literal secret, for the "file readable by others" warning.
    pub literal_secrets: Vec<String>,
}

/// The file being parsed: its text and name (to locate errors), and what resolving its
/// secrets needs.
struct Ctx<'a> {
    text: &'a str,
    origin: String,
    lookup: &'a dyn Lookup,
    /// The config file's directory: relative secret files are found from it.
    base: Option<&'a Path>,
    /// Keys holding a literal secret, for the "file readable by others" warning.
    literal_secrets: std::cell::RefCell<Vec<String>>,
}

impl Ctx<'_> {
    fn err(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::new(self.origin.clone(), message).at(key, locate(self.text, key))
    }
}

impl Source for Ctx<'_> {
    fn err(&self, key: &str, message: String) -> ConfigError {
        Ctx::err(self, key, message)
    }
    fn define_provider_hint(&self) -> &'static str {
        " (or define it under `providers:`)"
    }
    fn variables_hint(&self) -> &'static str {
        ""
    }
    fn define_identity_hint(&self) -> &'static str {
        "; define it under `identities:`"
    }
}

impl Secrets for Ctx<'_> {
    /// Resolves a secret through the `Lookup`, noting one written into the file itself (a
    /// warning names it).
    fn secret(&self, key: &str, spec: &SecretSpec) -> Result<Secret, ConfigError> {
        let lookup = self.lookup;
        let s = match spec {
            SecretSpec::Literal(s) => {
                self.literal_secrets.borrow_mut().push(key.to_string());
                s.clone()
            }
            SecretSpec::Env(var) => match lookup.env(var) {
                Some(v) if !v.is_empty() => Secret::new(v),
                _ => {
                    // Commands that need no secret go on without it (an empty secret).
                    lookup.defer(self.err(key, format!("environment variable `{var}` is not set; put `{var}=...` in the secrets file (~/.config/mcp-credd/env, mode 0600) or export it")))?;
                    return Ok(Secret::default());
                }
            },
            SecretSpec::File(path) => {
                let p = expand_path(path, self.base, lookup);
                match lookup.read_file(&p) {
                    Ok(v) => Secret::new(v.trim_end_matches(['\n', '\r'])),
                    Err(e) => {
                        lookup.defer(
                            self.err(key, format!("cannot read secret file {}: {e}", p.display())),
                        )?;
                        return Ok(Secret::default());
                    }
                }
            }
        };
        if s.is_empty() {
            return Err(self.err(key, "the secret is empty"));
        }
        Ok(s)
    }
}

/// Whether a config key path names a secret-bearing key (or something inside one).
fn is_secret_key(path: &str) -> bool {
    path.split(['.', '[']).any(|seg| {
        let seg = seg.trim_end_matches(']');
        matches!(seg, "client_secret" | "password")
    })
}

/// Replaces every quoted fragment (`...`, "...", '...') of an error message: for errors
/// about secret-bearing keys, where the fragment may be (part of) the secret.
fn redact_quoted(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut close: Option<char> = None;
    for c in msg.chars() {
        match close {
            Some(q) if c == q => {
                out.push_str("[redacted]");
                out.push(c);
                close = None;
            }
            Some(_) => {}
            None => {
                out.push(c);
                if matches!(c, '`' | '"' | '\'') {
                    close = Some(c);
                }
            }
        }
    }
    if close.is_some() {
        out.push_str("[redacted]");
    }
    out
}

/// Rewrites serde's error messages into our wording, without the location (we print it).
fn explain_serde_message(msg: &str, path: &str) -> String {
    let msg = msg.split(" at line ").next().unwrap_or(msg);
    let msg = msg
        .strip_prefix(path)
        .and_then(|m| m.strip_prefix(": "))
        .unwrap_or(msg);
    // The YAML error may start with the path ("ingress: unknown field ..."); we print the
    // path ourselves.
    let msg = ["unknown field `", "unknown variant `"]
        .iter()
        .find_map(|m| msg.find(m).map(|i| &msg[i..]))
        .unwrap_or(msg);
    // serde's "unknown field `x`, expected one of `a`, `b`": our word for it, a likely
    // typo's correction, or the choices.
    for (serde_word, word, choices) in [
        ("unknown field `", "key", "valid keys here"),
        ("unknown variant `", "value", "expected one of"),
    ] {
        if let Some(rest) = msg.strip_prefix(serde_word) {
            let (given, tail) = rest.split_once('`').unwrap_or((rest, ""));
            let expected: Vec<&str> = tail.split('`').skip(1).step_by(2).collect();
            let mut out = format!("unknown {word} `{given}`");
            if let Some(s) = did_you_mean(given, &expected) {
                out.push_str(&format!("; did you mean `{s}`?"));
            } else if !expected.is_empty() {
                out.push_str(&format!("; {choices}: {}", expected.join(", ")));
            }
            return out;
        }
    }
    msg.to_string()
}

fn expand_path(raw: &str, base: Option<&Path>, lookup: &dyn Lookup) -> PathBuf {
    let p = if raw == "~" {
        lookup.home_dir().unwrap_or_default()
    } else if let Some(rest) = raw.strip_prefix("~/") {
        lookup.home_dir().unwrap_or_default().join(rest)
    } else {
        PathBuf::from(raw)
    };
    match base {
        Some(b) if p.is_relative() => b.join(p),
        _ => p,
    }
}

/// Where the tokens go when nothing says otherwise: `~/.oauth-tokens`, never the cwd.
pub fn default_tokens_dir(lookup: &dyn Lookup) -> PathBuf {
    lookup.home_dir().unwrap_or_default().join(".oauth-tokens")
}

fn fraction(
    ctx: &Ctx,
    key: &str,
    v: Option<f64>,
    default: f64,
    lo: f64,
    hi: f64,
) -> Result<f64, ConfigError> {
    match v {
        None => Ok(default),
        Some(x) if x >= lo && x <= hi => Ok(x),
        Some(x) => Err(ctx.err(
            key,
            format!("{x} is out of range; use a number from {lo} to {hi}"),
        )),
    }
}

/// The line of `name:` inside the top-level mapping `parent` (a name the key-path
/// locator cannot split, such as one holding dots).
fn map_key_line(text: &str, parent: &str, name: &str) -> Option<usize> {
    let start = locate(text, parent)?;
    text.lines()
        .enumerate()
        .skip(start)
        .take_while(|(_, l)| l.is_empty() || l.starts_with([' ', '\t', '#']))
        .find(|(_, l)| {
            let t = l.trim_start();
            [
                format!("{name}:"),
                format!("\"{name}\":"),
                format!("'{name}':"),
            ]
            .iter()
            .any(|k| t.starts_with(k.as_str()))
        })
        .map(|(i, _)| i + 1)
}

/// Parses and validates config file text. `path` names the file in errors and anchors
/// relative paths.
pub fn parse(text: &str, path: &Path, lookup: &dyn Lookup) -> Result<Parsed, ConfigError> {
    let base = path.parent();
    let ctx = Ctx {
        text,
        origin: path.display().to_string(),
        lookup,
        base,
        literal_secrets: Default::default(),
    };
    let raw = deserialize(&ctx)?;

    let tokens_dir = match &raw.tokens_dir {
        Some(d) => expand_path(d, base, lookup),
        None => default_tokens_dir(lookup),
    };
    let gateway_url = raw
        .gateway_url
        .as_deref()
        .map(|u| build::gateway_url(&ctx, "gateway_url", u))
        .transpose()?;

    let (ingress, mut identities) =
        machine_identities(&ctx, raw.ingress.as_ref(), raw.identities.as_ref())?;

    // The provider catalog: built in, then the user's files, then `providers:`.
    let catalog = build::catalog(
        lookup.provider_files()?,
        raw.providers
            .iter()
            .flatten()
            .map(|(k, m)| (k.clone(), m.clone())),
    )?;
    for (i, e) in raw.egress.iter().flatten().enumerate() {
        let key = format!("egress[{i}]");
        let id = egress_identity(&ctx, &key, e, &catalog)?;
        if id.name == "ingress"
            || identities
                .iter()
                .any(|x: &IdentityConfig| x.name == id.name)
        {
            return Err(ctx.err(
                &format!("{key}.name"),
                format!(
                    "the name `{}` is taken; give this entry its own `name`",
                    id.name
                ),
            ));
        }
        identities.push(id);
    }

    let servers = raw.servers.iter().flatten().enumerate().map(server_spec);
    let mut servers = build::servers::servers(
        &ctx,
        servers.collect(),
        &mut identities,
        gateway_url.as_deref(),
        ingress.is_some(),
    )?;

    // Each egress identity's token goes to its server, with the gateway's headers when
    // there is a gateway identity; a server not listed is reached through the gateway.
    let bound = build::egress_bindings(&identities);
    build::bind_servers(
        &mut servers,
        &bound,
        gateway_url.as_deref(),
        ingress.is_some(),
    )
    .map_err(|i| {
        ctx.err(
            &format!("egress[{i}]"),
            format!("no `gateway_url` to build the URL of server `{}`; set it, or list the server under `servers:` with a `url`", bound[i].1),
        )
    })?;

    let refresh = refresh_policy(&ctx, raw.refresh.unwrap_or_default())?;
    let http = http_policy(&ctx, raw.http.unwrap_or_default())?;

    let editors = match &raw.editors {
        None => EditorSpec::defaults(),
        Some(list) => editors(&ctx, list, base, lookup)?,
    };

    Ok(Parsed {
        config: Config {
            origin: Origin::File(path.to_path_buf()),
            tokens_dir,
            gateway_url,
            ingress,
            identities,
            servers,
            refresh,
            http,
            hooks: Hooks {
                on_error: raw.on_error.map(|a| a.0),
                on_reauth_required: raw.on_reauth_required.map(|a| a.0),
            },
            editors,
            proxy: Default::default(),
        },
        servers_dir: raw
            .servers_dir
            .as_deref()
            .map(|d| expand_path(d, base, lookup)),
        literal_secrets: ctx.literal_secrets.into_inner(),
    })
}

/// A `servers:` entry as the shared stage's description.
fn server_spec((i, s): (usize, &RawServer)) -> ServerSpec {
    ServerSpec {
        key: format!("servers[{i}]"),
        name: s.name.clone(),
        url: s.url.clone(),
        transport: match s.transport {
            Some(RawTransport::Sse) => Transport::Sse,
            Some(RawTransport::StreamableHttp) | None => Transport::StreamableHttp,
        },
        auth: match &s.auth {
            None | Some(RawServerAuth::Gateway) => AuthSpec::Gateway,
            Some(RawServerAuth::None) => AuthSpec::None,
            Some(RawServerAuth::Identity(b)) => AuthSpec::Identity {
                identity: b.identity.clone(),
                header: b.header.clone(),
                scheme: b.scheme.clone(),
                gateway: b.gateway.unwrap_or(false),
            },
            Some(RawServerAuth::Oauth(o)) => {
                AuthSpec::Oauth(o.as_ref().map(oauth_spec).unwrap_or_default())
            }
        },
    }
}

/// `auth: {oauth: {...}}` as the shared stage's description.
fn oauth_spec(o: &RawOauth) -> OauthSpec {
    OauthSpec {
        client_credentials: o.grant == Some(RawGrant::ClientCredentials),
        client_id: o.client_id.clone(),
        client_secret: o.client_secret.clone(),
        private_key: o.private_key.clone(),
        scopes: o.scopes.clone().unwrap_or_default().0,
        authorization_server: o.authorization_server.clone(),
        redirect_uri: o.redirect_uri.clone(),
    }
}

/// `ingress:` and `identities:`: the gateway identity and the named machine identities.
fn machine_identities(
    ctx: &Ctx,
    raw_ingress: Option<&RawIdentity>,
    raw_identities: Option<&std::collections::BTreeMap<String, RawIdentity>>,
) -> Result<(Option<IdentityConfig>, Vec<IdentityConfig>), ConfigError> {
    let ingress = match raw_ingress {
        None => None,
        Some(r) => Some(identity(ctx, "ingress", "ingress", r)?),
    };
    let mut identities = Vec::new();
    for (name, r) in raw_identities.into_iter().flatten() {
        let key = format!("identities.{name}");
        // The key path cannot locate a name holding dots or slashes: find its own line.
        let at = |m: String| {
            ConfigError::new(ctx.origin.clone(), m)
                .at(&key, map_key_line(ctx.text, "identities", name))
        };
        if name == "ingress" {
            return Err(at(
                "`ingress` is the gateway identity's name; give this identity another".into(),
            ));
        }
        check_config_name(name).map_err(at)?;
        identities.push(identity(ctx, &key, name, r)?);
    }
    Ok((ingress, identities))
}

/// The file's text as the raw structure; serde's errors located and worded for people.
fn deserialize(ctx: &Ctx) -> Result<RawConfig, ConfigError> {
    let text = ctx.text;
    Ok(if text.trim().is_empty() {
        RawConfig::default()
    } else {
        let de = yaml_serde::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.inner();
            let line = inner
                .location()
                .map(|l| l.line())
                .or_else(|| locate(text, &key));
            let mut message = explain_serde_message(&inner.to_string(), &key);
            if is_secret_key(&key) {
                message = redact_quoted(&message);
            }
            let key = (key != "." && !key.is_empty()).then_some(key);
            ConfigError {
                origin: ctx.origin.clone(),
                line,
                key,
                message,
            }
        })?
    })
}

/// `refresh:` with its defaults, each value in its range.
fn refresh_policy(ctx: &Ctx, rr: RawRefresh) -> Result<RefreshPolicy, ConfigError> {
    let d = RefreshPolicy::default();
    let refresh = RefreshPolicy {
        at_fraction: fraction(
            ctx,
            "refresh.at_fraction",
            rr.at_fraction,
            d.at_fraction,
            0.05,
            1.0,
        )?,
        before_expiry_ms: rr.before_expiry.map_or(d.before_expiry_ms, |m| m.0),
        jitter_fraction: fraction(
            ctx,
            "refresh.jitter",
            rr.jitter,
            d.jitter_fraction,
            0.0,
            0.5,
        )?,
        unknown_expiry_interval_ms: rr
            .unknown_expiry_interval
            .map_or(d.unknown_expiry_interval_ms, |m| m.0),
        retry_initial_ms: rr.retry_initial.map_or(d.retry_initial_ms, |m| m.0),
        retry_max_ms: rr.retry_max.map_or(d.retry_max_ms, |m| m.0),
        check_interval_ms: rr.check_interval.map_or(d.check_interval_ms, |m| m.0),
        concurrency: rr.concurrency.unwrap_or(d.concurrency),
    };
    if refresh.retry_initial_ms < 100 || refresh.retry_max_ms < refresh.retry_initial_ms {
        return Err(ctx.err(
            "refresh.retry_max",
            "retry_initial must be at least 100ms and retry_max at least retry_initial",
        ));
    }
    if !(100..=3_600_000).contains(&refresh.check_interval_ms) {
        return Err(ctx.err("refresh.check_interval", "use a value from 100ms to 1h"));
    }
    if refresh.concurrency == 0 {
        return Err(ctx.err("refresh.concurrency", "must be at least 1"));
    }
    if refresh.unknown_expiry_interval_ms < 1000 {
        return Err(ctx.err("refresh.unknown_expiry_interval", "must be at least 1s"));
    }
    Ok(refresh)
}

/// `http:` with its defaults, each value in its range.
fn http_policy(ctx: &Ctx, rh: RawHttp) -> Result<HttpPolicy, ConfigError> {
    let dh = HttpPolicy::default();
    let http = HttpPolicy {
        timeout_ms: rh.timeout.map_or(dh.timeout_ms, |m| m.0 as u64),
        attempts: rh.attempts.unwrap_or(dh.attempts),
        initial_backoff_ms: rh
            .initial_backoff
            .map_or(dh.initial_backoff_ms, |m| m.0 as u64),
        max_backoff_ms: rh.max_backoff.map_or(dh.max_backoff_ms, |m| m.0 as u64),
    };
    if http.attempts == 0 {
        return Err(ctx.err("http.attempts", "must be at least 1"));
    }
    if http.timeout_ms < 100 {
        return Err(ctx.err("http.timeout", "must be at least 100ms"));
    }
    Ok(http)
}

/// Validates `editors:`. Paths are expanded (`~`, relative to the config file); default
/// locations are left to `render::targets`, which knows the platform.
fn editors(
    ctx: &Ctx,
    list: &[RawEditor],
    base: Option<&Path>,
    lookup: &dyn Lookup,
) -> Result<Vec<EditorSpec>, ConfigError> {
    // A flow map (`- {format: x}`) has no line of its own for `.format`: fall back to the item.
    let err = |i: usize, field: Option<&str>, msg: String| {
        let item = format!("editors[{i}]");
        let key = field.map_or_else(|| item.clone(), |f| format!("{item}.{f}"));
        let line = locate(ctx.text, &key).or_else(|| locate(ctx.text, &item));
        ConfigError::new(ctx.origin.clone(), msg).at(key, line)
    };
    let mut names: Vec<&str> = EditorFormat::ALL.iter().map(|f| f.name()).collect();
    names.push("reference");
    let mut out = Vec::new();
    for (i, r) in list.iter().enumerate() {
        let field = r.map.then_some("format");
        if r.format == "reference" {
            if r.path.is_some() || r.allow_tracked.is_some() {
                return Err(err(
                    i,
                    Some("path"),
                    "`reference` takes no path: its two files live in tokens_dir; for other places use {format: vscode_legacy, path: ...} and {format: roo, path: ...}".into(),
                ));
            }
            out.push(EditorSpec::Reference);
            continue;
        }
        let Some(format) = EditorFormat::from_name(&r.format) else {
            let mut msg = format!("unknown editor `{}`", r.format);
            match did_you_mean(&r.format, &names) {
                Some(s) => msg.push_str(&format!("; did you mean `{s}`?")),
                None => msg.push_str(&format!("; expected one of: {}", names.join(", "))),
            }
            return Err(err(i, field, msg));
        };
        let path = match r.path.as_deref() {
            Some("") => return Err(err(i, Some("path"), "the path is empty".into())),
            Some(p) => Some(expand_path(p, base, lookup)),
            None => None,
        };
        if path.is_none() {
            let why = match format {
                EditorFormat::ClaudeCode => Some(
                    "claude_code needs a `path` (a project's .mcp.json): mcp-credd never edits ~/.claude.json, which Claude Code rewrites itself; `mcp-credd headers SERVER` can serve as its headersHelper instead",
                ),
                EditorFormat::VscodeLegacy => Some(
                    "vscode_legacy needs a `path`; its usual copy in tokens_dir comes with `reference`",
                ),
                _ => None,
            };
            if let Some(why) = why {
                return Err(err(i, field, why.into()));
            }
        }
        out.push(EditorSpec::File {
            format,
            path,
            allow_tracked: r.allow_tracked.unwrap_or(false),
        });
    }
    Ok(out)
}

fn identity(
    ctx: &Ctx,
    key: &str,
    name: &str,
    r: &RawIdentity,
) -> Result<IdentityConfig, ConfigError> {
    let k = |field: &str| format!("{key}.{field}");
    let kind = match r.kind {
        Some(RawKind::CognitoM2m) => MachineKind::CognitoM2m,
        Some(RawKind::OidcM2m) => MachineKind::OidcM2m,
        Some(RawKind::CognitoPassword) => MachineKind::CognitoPassword,
        None => {
            return Err(ctx.err(
                key,
                "missing `kind`; use cognito_m2m, oidc_m2m or cognito_password",
            ));
        }
    };
    // Keys that belong to the other kind are mistakes worth naming.
    let foreign: &[(&str, bool)] = match kind {
        MachineKind::CognitoM2m => &[
            ("issuer", r.issuer.is_some()),
            ("audience", r.audience.is_some()),
            ("resource", r.resource.is_some()),
        ],
        MachineKind::OidcM2m => &[
            ("region", r.region.is_some()),
            ("user_pool_id", r.user_pool_id.is_some()),
            ("domain", r.domain.is_some()),
        ],
        MachineKind::CognitoPassword => &[
            ("issuer", r.issuer.is_some()),
            ("audience", r.audience.is_some()),
            ("resource", r.resource.is_some()),
            ("domain", r.domain.is_some()),
            ("token_url", r.token_url.is_some()),
            ("discovery_url", r.discovery_url.is_some()),
            ("scopes", r.scopes.is_some()),
            ("client_auth", r.client_auth.is_some()),
        ],
    };
    let password_keys = [
        ("username", r.username.is_some()),
        ("password", r.password.is_some()),
        ("bearer", r.bearer.is_some()),
        ("refresh_rotation", r.refresh_rotation.is_some()),
        ("endpoint_url", r.endpoint_url.is_some()),
    ];
    let foreign_password: &[(&str, bool)] = if kind == MachineKind::CognitoPassword {
        &[]
    } else {
        &password_keys
    };
    let foreign: Vec<(&str, bool)> = foreign.iter().chain(foreign_password).copied().collect();
    if let Some((f, _)) = foreign.iter().find(|(_, set)| *set) {
        return Err(ctx.err(
            &k(f),
            format!("`{f}` does not apply to kind {}", kind.as_str()),
        ));
    }
    let client_id = match &r.client_id {
        Some(c) if !c.is_empty() => c.clone(),
        _ => return Err(ctx.err(key, "missing `client_id`")),
    };
    if r.private_key.is_some() && kind != MachineKind::OidcM2m {
        return Err(ctx.err(
            &k("private_key"),
            format!(
                "`private_key` does not apply to kind {} (private_key_jwt is for oidc_m2m)",
                kind.as_str()
            ),
        ));
    }
    let credential =
        build::client_credential(ctx, key, r.client_secret.as_ref(), r.private_key.as_ref())?;
    let client_auth = match (r.client_auth, &credential) {
        (Some(RawClientAuth::PrivateKeyJwt), Some((_, ClientAuth::PrivateKeyJwt)))
        | (None, Some((_, ClientAuth::PrivateKeyJwt))) => ClientAuth::PrivateKeyJwt,
        (Some(RawClientAuth::PrivateKeyJwt), _) => {
            return Err(ctx.err(
                &k("client_auth"),
                "private_key_jwt needs `private_key` (a PEM file: {file: PATH})",
            ));
        }
        (Some(_), Some((_, ClientAuth::PrivateKeyJwt))) => {
            return Err(ctx.err(
                &k("client_auth"),
                "with `private_key` the client authenticates with private_key_jwt; remove `client_auth` or set it to private_key_jwt",
            ));
        }
        (Some(RawClientAuth::Post), _) => ClientAuth::Post,
        _ => ClientAuth::Basic,
    };
    let client_secret = match credential {
        Some((s, _)) => Some(s),
        // A Cognito app client without a secret (a public client) can sign users in.
        None if kind == MachineKind::CognitoPassword => None,
        None => {
            return Err(ctx.err(
                key,
                "missing `client_secret`; write {env: VARIABLE}, {file: PATH} or the value (oidc_m2m also takes `private_key`)",
            ));
        }
    };
    let cognito = if kind == MachineKind::CognitoPassword {
        let username = match &r.username {
            Some(u) if !u.is_empty() => u.clone(),
            _ => return Err(ctx.err(key, "missing `username` (the service account)")),
        };
        let Some(spec) = &r.password else {
            return Err(ctx.err(
                key,
                "missing `password`; write {env: VARIABLE}, {file: PATH} or the value",
            ));
        };
        let password = ctx.secret(&k("password"), spec)?;
        // The standard AWS endpoint variables apply too (VPC endpoints, local tests).
        let endpoint_url = match &r.endpoint_url {
            Some(u) => Some((k("endpoint_url"), u.clone(), None)),
            None => aws_endpoint(&|v| ctx.lookup.env(v))
                .map(|(var, u)| (k("endpoint_url"), u, Some(var))),
        };
        Some(CognitoSpec {
            username,
            password,
            bearer: match r.bearer {
                Some(RawBearer::IdToken) => BearerToken::IdToken,
                _ => BearerToken::AccessToken,
            },
            refresh_rotation: r.refresh_rotation.unwrap_or(false),
            endpoint_url,
        })
    } else {
        None
    };
    build::identity(
        ctx,
        key,
        &k,
        IdentitySpec {
            name: name.to_string(),
            file_name: format!("{name}.json"),
            kind,
            label: match kind {
                MachineKind::CognitoM2m => ProviderLabel::CognitoM2m,
                MachineKind::CognitoPassword => ProviderLabel::CognitoPassword,
                MachineKind::OidcM2m => ProviderLabel::OidcM2m,
            },
            client_id,
            client_secret,
            client_auth,
            scopes: r.scopes.clone().unwrap_or_default().0,
            token_url: r.token_url.clone(),
            domain: r.domain.clone(),
            region: r.region.clone(),
            user_pool_id: r.user_pool_id.clone(),
            discovery_url: r.discovery_url.clone(),
            issuer: r.issuer.clone(),
            audience: r.audience.clone(),
            resource: r.resource.clone(),
            cognito,
            extra_fields: Vec::new(),
            extra_headers: Vec::new(),
        },
    )
}

/// An egress (3-legged) identity from an `egress:` entry: names and secrets here, the
/// provider's rules in `build::egress_identity`.
fn egress_identity(
    ctx: &Ctx,
    key: &str,
    e: &RawEgress,
    catalog: &Catalog,
) -> Result<IdentityConfig, ConfigError> {
    let k = |field: &str| format!("{key}.{field}");
    let client_secret = match &e.client_secret {
        Some(spec) => Some(ctx.secret(&k("client_secret"), spec)?),
        None => None,
    };
    let name = e.name.clone().unwrap_or_else(|| e.provider.clone());
    let file_name = match &e.server {
        Some(s) => format!("{}-{s}-egress.json", e.provider),
        None if e.name.is_some() => format!("{}-{name}-egress.json", e.provider),
        None => format!("{}-egress.json", e.provider),
    };
    let server = e.server.clone().unwrap_or_else(|| name.clone());
    build::egress_identity(
        ctx,
        EgressSpec {
            keys: EgressKeys {
                provider: k("provider"),
                name: k("name"),
                server: k("server"),
                redirect_uri: k("redirect_uri"),
                variables: k("variables"),
            },
            provider: e.provider.clone(),
            name,
            file_name,
            server,
            client_id: e.client_id.clone(),
            client_secret,
            redirect_uri: e
                .redirect_uri
                .clone()
                .unwrap_or_else(|| default_redirect_uri(&e.provider)),
            scopes: e.scopes.clone().map(|s| s.0),
            variables: e.variables.clone().unwrap_or_default(),
            cloud_site: e.cloud_site.clone(),
        },
        catalog,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Endpoint, ServerAuth};
    use std::collections::HashMap;

    /// Variables by name, files as `file:PATH`; the home directory is /home/u.
    pub struct FakeLookup(pub HashMap<String, String>);
    impl Lookup for FakeLookup {
        fn env(&self, name: &str) -> Option<String> {
            self.0.get(name).cloned()
        }
        fn read_file(&self, path: &Path) -> std::io::Result<String> {
            self.0
                .get(&format!("file:{}", path.display()))
                .cloned()
                .ok_or_else(|| {
                    std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory")
                })
        }
        fn home_dir(&self) -> Option<PathBuf> {
            Some(PathBuf::from("/home/u"))
        }
    }

    pub fn lookup_of(pairs: &[(&str, &str)]) -> FakeLookup {
        FakeLookup(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    /// `text` parsed as the file `path`; the error as it is shown.
    pub fn parse_at(path: &str, l: &FakeLookup, text: &str) -> Result<Config, String> {
        parse(text, Path::new(path), l)
            .map(|p| p.config)
            .map_err(|e| e.to_string())
    }

    /// The error shown contains `want`.
    #[track_caller]
    pub fn assert_error(e: Result<Config, String>, want: &str) {
        let e = e.unwrap_err();
        assert!(e.contains(want), "{e}");
    }

    /// The error shown starts with `want` (file, line and key come first).
    #[track_caller]
    pub fn assert_error_starts(e: Result<Config, String>, want: &str) {
        let e = e.unwrap_err();
        assert!(e.starts_with(want), "{e}");
    }

    /// A server's auth: the identity's token as `Authorization: Bearer`, no gateway headers.
    pub fn bearer_of(name: &str) -> ServerAuth {
        ServerAuth::Identity {
            name: name.into(),
            header: "Authorization".into(),
            scheme: "Bearer".into(),
            gateway: false,
        }
    }

    fn lookup() -> FakeLookup {
        lookup_of(&[("SECRET", "s3cr3t"), ("file:/etc/secret", "from-file\n")])
    }

    fn parsed(text: &str) -> Parsed {
        parse(text, Path::new("/c/config.yaml"), &lookup()).unwrap()
    }

    fn parse_str(text: &str) -> Result<Config, String> {
        parse_at("/c/config.yaml", &lookup(), text)
    }

    fn ok(text: &str) -> Config {
        parse_str(text).unwrap()
    }

    fn err(text: &str) -> String {
        parse_str(text).unwrap_err()
    }

    #[test]
    fn each_provider_gets_its_own_default_redirect() {
        let c = ok(
            "gateway_url: https://gw.example.com\negress:\n  - provider: github\n    client_id: x\n    client_secret: {env: SECRET}\n  - provider: google\n    client_id: y\n    client_secret: {env: SECRET}\n",
        );
        let redirects: Vec<String> = c
            .all_identities()
            .filter_map(|i| i.egress().map(|e| e.redirect_uri.clone()))
            .collect();
        assert_eq!(
            redirects,
            [
                "http://localhost:8080/callback/github",
                "http://localhost:8080/callback/google"
            ]
        );
    }

    #[test]
    fn errors_on_secret_keys_never_show_the_value() {
        let head =
            "ingress:\n  kind: oidc_m2m\n  client_id: a\n  issuer: https://idp.example.com/\n";
        for bad in [
            "  client_secret: {SECRETabc}\n",
            "  client_secret: {SECRETabc: x}\n",
            "  client_secret: [SECRETabc]\n",
            "  client_secret: {env: [SECRETabc]}\n",
            "  client_secret: {env: {SECRETabc: 1}}\n",
            "  client_secret: !SECRETabc x\n",
            "  client_secret:\n    SECRETabc: 1\n",
        ] {
            let e = err(&format!("{head}{bad}"));
            assert!(!e.contains("SECRETabc"), "{bad:?} gave {e}");
            assert!(e.contains("client_secret"), "{bad:?} gave {e}");
        }
        let e = err("identities:\n  svc:\n    kind: cognito_password\n    password: {SECRETabc}\n");
        assert!(!e.contains("SECRETabc"), "{e}");
        assert_eq!(
            redact_quoted("x `a` \"b\" 'c"),
            "x `[redacted]` \"[redacted]\" '[redacted]"
        );
    }

    const FULL: &str = "\
tokens_dir: ~/.oauth-tokens
gateway_url: https://gw.example.com/
ingress:
  kind: cognito_m2m
  region: us-east-1
  user_pool_id: us-east-1_AbC123
  client_id: abc
  client_secret: {env: SECRET}
  scopes: [mcp-servers-unrestricted/read, mcp-servers-unrestricted/execute]
  domain: my-prefix
servers:
  - name: currenttime
  - name: docs
    url: https://docs.example.com/mcp
    auth: none
";

    #[test]
    fn full_example() {
        let c = ok(FULL);
        assert_eq!(c.tokens_dir, PathBuf::from("/home/u/.oauth-tokens"));
        assert_eq!(c.gateway_url.as_deref(), Some("https://gw.example.com"));
        let i = c.ingress.unwrap();
        assert_eq!(i.client_secret.unwrap().expose(), "s3cr3t");
        assert_eq!(i.scopes.len(), 2);
        assert_eq!(
            i.endpoint,
            Endpoint::TokenUrl(
                "https://my-prefix.auth.us-east-1.amazoncognito.com/oauth2/token".into()
            )
        );
        assert_eq!(c.servers[0].url, "https://gw.example.com/currenttime/mcp");
        assert_eq!(c.servers[1].auth, ServerAuth::None);
        assert_eq!(c.refresh, RefreshPolicy::default());
    }

    /// The token endpoint of the config's ingress identity.
    fn ingress_endpoint(text: &str) -> Endpoint {
        ok(text).ingress.unwrap().endpoint
    }

    #[test]
    fn cognito_endpoint_order() {
        let base = "ingress:\n  kind: cognito_m2m\n  user_pool_id: eu-west-1_Xy\n  client_id: a\n  client_secret: {env: SECRET}\n";
        assert_eq!(
            ingress_endpoint(base),
            Endpoint::Discovery {
                url: "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Xy/.well-known/openid-configuration".into(),
                fallback: Some("https://eu-west-1xy.auth.eu-west-1.amazoncognito.com/oauth2/token".into()),
            }
        );
        assert_eq!(
            ingress_endpoint(&format!("{base}  domain: auth.example.com\n")),
            Endpoint::TokenUrl("https://auth.example.com/oauth2/token".into())
        );
        assert_eq!(
            ingress_endpoint(&format!(
                "{base}  domain: auth.example.com\n  token_url: https://t.example.com/tok\n"
            )),
            Endpoint::TokenUrl("https://t.example.com/tok".into())
        );
    }

    #[test]
    fn errors_name_file_line_and_key() {
        assert_eq!(
            err("ingress:\n  kind: cognito_m2m\n  client_secrt: x\n"),
            "/c/config.yaml:3: ingress.client_secrt: unknown key `client_secrt`; did you mean `client_secret`?"
        );
        assert_error_starts(
            parse_str("ingress:\n  kind: oidc_m2n\n"),
            "/c/config.yaml:2: ingress.kind: unknown value `oidc_m2n`; did you mean `oidc_m2m`?",
        );
        assert_error_starts(
            parse_str("tokens_dir: [1]\n"),
            "/c/config.yaml:1: tokens_dir: ",
        );
        assert_eq!(
            err(
                "ingress:\n  kind: oidc_m2m\n  client_id: a\n  client_secret: {env: NOPE}\n  token_url: https://x/t\n"
            ),
            "/c/config.yaml:4: ingress.client_secret: environment variable `NOPE` is not set; put `NOPE=...` in the secrets file (~/.config/mcp-credd/env, mode 0600) or export it"
        );
        assert_error_starts(
            parse_str(
                "ingress:\n  kind: oidc_m2m\n  client_id: a\n  client_secret: x\n  token_url: http://idp.example.com/t\n",
            ),
            "/c/config.yaml:5: ingress.token_url: `http://idp.example.com/t` uses plain http",
        );
        assert_eq!(
            err(
                "ingress:\n  kind: oidc_m2m\n  client_id: a\n  client_secret: x\n  region: us-east-1\n  token_url: https://x/t\n"
            ),
            "/c/config.yaml:5: ingress.region: `region` does not apply to kind oidc_m2m"
        );
        assert_error_starts(
            parse_str("servers:\n  - name: a\n"),
            "/c/config.yaml:2: servers[0].name: no `url`",
        );
        assert_error(
            parse_str("refresh:\n  before_expiry: soon\n"),
            ":2: refresh.before_expiry: `soon` is not a duration",
        );
        assert_error(
            parse_str("ingress:\n  kind: oidc_m2m\n  client_id: a\n  client_secret: {vault: x}\n"),
            ":4: ingress.client_secret: unknown secret source; use {env: VARIABLE}",
        );
        assert_error_starts(parse_str("a: [\n"), "/c/config.yaml:");
    }

    #[test]
    fn secrets_from_files_and_literals() {
        let p = parsed(
            "ingress:\n  kind: oidc_m2m\n  client_id: a\n  client_secret: {file: /etc/secret}\n  issuer: https://idp.example.com/\n",
        );
        let i = p.config.ingress.unwrap();
        assert_eq!(i.client_secret.unwrap().expose(), "from-file");
        assert_eq!(
            i.endpoint,
            Endpoint::Discovery {
                url: "https://idp.example.com/.well-known/openid-configuration".into(),
                fallback: None
            }
        );
        assert!(p.literal_secrets.is_empty());
        let p = parsed(
            "ingress:\n  kind: oidc_m2m\n  client_id: a\n  client_secret: lit\n  token_url: https://x/t\n",
        );
        assert_eq!(p.literal_secrets, vec!["ingress.client_secret"]);
        // A secret never shows in Debug output of the config.
        assert!(!format!("{:?}", p.config).contains("lit\""));
    }

    #[test]
    fn scopes_as_string_and_durations() {
        let c = ok(
            "ingress:\n  kind: oidc_m2m\n  client_id: a\n  client_secret: x\n  token_url: https://x/t\n  scopes: a b  c\nrefresh:\n  before_expiry: 90\n  unknown_expiry_interval: 2h\nhttp:\n  timeout: 1500ms\n",
        );
        assert_eq!(c.ingress.unwrap().scopes, vec!["a", "b", "c"]);
        assert_eq!(c.refresh.before_expiry_ms, 90_000);
        assert_eq!(c.refresh.unknown_expiry_interval_ms, 7_200_000);
        assert_eq!(c.http.timeout_ms, 1500);
    }

    #[test]
    fn empty_file_is_an_empty_config() {
        let c = ok("");
        assert!(c.ingress.is_none());
        assert!(c.servers.is_empty());
    }

    /// An editor file entry.
    fn editor(format: EditorFormat, path: Option<&str>) -> EditorSpec {
        EditorSpec::File {
            format,
            path: path.map(PathBuf::from),
            allow_tracked: false,
        }
    }

    #[test]
    fn editors_defaults_names_and_paths() {
        assert_eq!(ok("").editors, EditorSpec::defaults());
        assert!(ok("editors: []\n").editors.is_empty());
        let c = ok("editors:
  - vscode
  - reference
  - {format: roo, path: ~/proj/.roo/mcp.json}
  - format: claude_code
    path: proj/.mcp.json
  - cursor
");
        assert_eq!(
            c.editors,
            vec![
                editor(EditorFormat::Vscode, None),
                EditorSpec::Reference,
                editor(EditorFormat::Roo, Some("/home/u/proj/.roo/mcp.json")),
                editor(EditorFormat::ClaudeCode, Some("/c/proj/.mcp.json")),
                editor(EditorFormat::Cursor, None),
            ]
        );
    }

    #[test]
    fn editors_errors_are_located() {
        assert_eq!(
            err("editors:\n  - vscode\n  - vscod\n"),
            "/c/config.yaml:3: editors[1]: unknown editor `vscod`; did you mean `vscode`?"
        );
        assert_error_starts(
            parse_str("editors:\n  - {format: emacs, path: /x}\n"),
            "/c/config.yaml:2: editors[0].format: unknown editor `emacs`; expected one of: vscode, vscode_legacy, roo",
        );
        assert_error_starts(
            parse_str("editors:\n  - claude_code\n"),
            "/c/config.yaml:2: editors[0]: claude_code needs a `path`",
        );
        assert_error_starts(
            parse_str("editors:\n  - format: reference\n    path: /x\n"),
            "/c/config.yaml:3: editors[0].path: `reference` takes no path",
        );
        assert_error_starts(
            parse_str("editors:\n  - format: roo\n    pth: /x\n"),
            "/c/config.yaml:3: editors[0].pth: unknown key `pth`; did you mean `path`?",
        );
        assert_error_starts(
            parse_str("editors: vscode\n"),
            "/c/config.yaml:1: editors: ",
        );
    }

    #[test]
    fn did_you_mean_table() {
        assert_eq!(
            did_you_mean("tokens_dri", &["tokens_dir", "servers"]),
            Some("tokens_dir")
        );
        assert_eq!(did_you_mean("zzzzzz", &["tokens_dir", "servers"]), None);
    }
}

#[cfg(test)]
mod identity_tests {
    use super::tests::{assert_error, bearer_of, lookup_of, parse_at};
    use super::*;

    fn parse_str(text: &str) -> Result<Config, String> {
        let l = lookup_of(&[("PW", "pw"), ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000")]);
        parse_at("/c.yaml", &l, text)
    }

    const SVC: &str = "identities:\n  svc:\n    kind: cognito_password\n    user_pool_id: eu-west-1_X\n    client_id: c\n    username: u\n    password: {env: PW}\n";

    #[test]
    fn service_accounts_and_bindings() {
        let c = parse_str(&format!(
            "{SVC}servers:\n  - name: d\n    url: https://d.example.com/mcp\n    auth: {{identity: svc}}\n"
        ))
        .unwrap();
        let svc = &c.identities[0];
        assert_eq!(
            (svc.name.as_str(), svc.file_name.as_str()),
            ("svc", "svc.json")
        );
        assert_eq!(svc.region(), Some("eu-west-1"));
        assert!(
            svc.client_secret.is_none(),
            "public app clients need no secret"
        );
        let cp = svc.cognito().unwrap();
        assert_eq!(cp.password.expose(), "pw");
        assert_eq!(
            cp.endpoint_url.as_deref(),
            Some("http://127.0.0.1:5000"),
            "from AWS_ENDPOINT_URL"
        );
        assert_eq!(c.servers[0].auth, bearer_of("svc"));
    }

    #[test]
    fn binding_and_identity_errors() {
        assert_error(
            parse_str(&format!(
                "{SVC}servers:\n  - name: d\n    url: https://d.example.com/mcp\n    auth: {{identity: scv}}\n"
            )),
            ":11: servers[0].auth.identity: no identity named `scv`; did you mean `svc`?",
        );
        assert_error(
            parse_str(
                "identities:\n  svc:\n    kind: cognito_password\n    region: us-east-1\n    client_id: c\n    username: u\n",
            ),
            "identities.svc: missing `password`",
        );
        assert_error(
            parse_str(
                "identities:\n  svc:\n    kind: oidc_m2m\n    client_id: c\n    client_secret: s\n    token_url: https://t/\n    username: u\n",
            ),
            ":7: identities.svc.username: `username` does not apply to kind oidc_m2m",
        );
        assert_error(
            parse_str("identities:\n  ingress:\n    kind: oidc_m2m\n"),
            "`ingress` is the gateway identity's name",
        );
        // One name rule for everything that becomes a file name: the key and line are named.
        assert_error(
            parse_str("identities:\n  ../evil:\n    kind: oidc_m2m\n"),
            ":2: identities.../evil: `../evil` starts with a dot",
        );
        assert_error(
            parse_str(
                "servers:\n  - name: ok\n    url: https://d/\n    auth: none\n  - name: a/b\n    url: https://d/\n    auth: none\n",
            ),
            ":5: servers[1].name: `a/b` contains `/`",
        );
        assert_error(
            parse_str("servers:\n  - name: d\n    url: https://d/\n    auth: sometimes\n"),
            ":4: servers[0].auth: unknown value `sometimes`",
        );
    }
}

#[cfg(test)]
mod bad_input {
    use super::tests::lookup_of;
    use super::*;

    /// Every malformed config gets an error that names the file and, where it can, the line
    /// and the key.
    #[test]
    fn corpus() {
        let huge = format!("tokens_dir: {}\n", "a".repeat(100_000));
        let deep = format!("servers: {}{}\n", "[".repeat(200), "]".repeat(200));
        let cases: &[(&str, &str)] = &[
            ("ingress: 5\n", ":1: ingress: invalid type"),
            ("servers: {a: 1}\n", ":1: servers: invalid type"),
            (
                "servers:\n  - name: [x]\n",
                ":2: servers[0].name: invalid type",
            ),
            (
                "ingress:\n  kind: oidc_m2m\n  kind: cognito_m2m\n",
                "duplicate",
            ),
            (
                "refresh:\n  at_fraction: 7\n",
                ":2: refresh.at_fraction: 7 is out of range",
            ),
            (
                "refresh:\n  concurrency: -1\n",
                ":2: refresh.concurrency: invalid type",
            ),
            ("http:\n  attempts: 99999999999\n", ":2: http.attempts"),
            (
                "refresh:\n  before_expiry: 99999999999999999999d\n",
                ":2: refresh.before_expiry",
            ),
            ("\t- bad\n", "/c.yaml"),
            ("key: \"unterminated\n", "/c.yaml"),
            (&deep, "/c.yaml"),
            (
                "egress:\n  - provider: nosuch\n    client_id: x\n",
                ":2: egress[0].provider: unknown provider `nosuch`",
            ),
            (
                "egress:\n  - provider: githb\n    client_id: x\n",
                "did you mean `github`?",
            ),
            (
                "egress:\n  - provider: github\n    client_id: x\n    redirect_uri: https://example.com/cb\n",
                ":4: egress[0].redirect_uri",
            ),
            (
                "egress:\n  - provider: keycloak\n    client_id: x\n",
                "egress[0].variables: `base_url` is not set",
            ),
            ("editors: [notepad]\n", ":1: editors"),
            (
                "gateway_url: http://gw.example.com\n",
                ":1: gateway_url: `http://gw.example.com` uses plain http",
            ),
            (
                "servers:\n  - name: a\n    url: http://mcp.example.com/mcp\n",
                ":3: servers[0].url",
            ),
            (
                "egress:\n  - provider: github\n    client_id: x\n    server: ../../etc\n",
                ":4: egress[0].server",
            ),
            (
                // The site-id endpoint gets the token: https, or http on loopback only.
                "providers:\n  atlassian:\n    extras: {cloud_id: {url: 'http://sites.example.com/r', header: X-C}}\negress:\n  - provider: atlassian\n    client_id: x\n",
                ":5: egress[0].provider: `http://sites.example.com/r` uses plain http",
            ),
            (
                "ingress:\n  kind: oidc_m2m\n  client_id: a\n  client_secret: 918273645\n",
                ":4: ingress.client_secret: a secret must be a quoted string",
            ),
        ];
        let l = lookup_of(&[]);
        for (text, want) in cases {
            let e = parse(text, Path::new("/c.yaml"), &l)
                .map(|_| ())
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("/c.yaml"), "{text:?}: {e}");
            assert!(e.contains(want), "{text:?}: wanted {want:?} in {e}");
            assert!(!e.contains("918273645"), "a secret echoed: {e}");
        }
        // A huge value is not an error by itself, and parses quickly.
        assert!(parse(&huge, Path::new("/c.yaml"), &l).is_ok());
    }
}

#[cfg(test)]
mod mcp_oauth_tests {
    use super::tests::{assert_error, bearer_of, lookup_of, parse_at};
    use super::*;
    use crate::config::Endpoint;

    fn parse_str(text: &str) -> Result<Config, String> {
        let l = lookup_of(&[
            ("AGENT_SECRET", "s3cret"),
            (
                "file:/k.pem",
                include_str!("../identity/testdata/ec-test.pem"),
            ),
            (
                "file:/bad.pem",
                "-----BEGIN PRIVATE KEY-----\nbm9wZQ==\n-----END PRIVATE KEY-----\n",
            ),
        ]);
        parse_at("/c.yaml", &l, text)
    }

    #[test]
    fn client_credentials_servers_get_an_identity_of_their_own() {
        let c = parse_str(
            "servers:\n  - name: reports\n    url: HTTPS://Reports.example.com:443/mcp\n    auth:\n      oauth:\n        grant: client_credentials\n        client_id: reports-agent\n        private_key: {file: /k.pem}\n  - name: calc\n    url: https://calc.example.com/mcp\n    auth:\n      oauth:\n        grant: client_credentials\n        client_id: calc-agent\n        client_secret: {env: AGENT_SECRET}\n        scopes: [mcp:tools]\n        authorization_server: https://as.example.com/t1\n",
        )
        .unwrap();
        let r = c.identity("reports").unwrap();
        assert_eq!(r.file_name, "reports.json");
        assert_eq!(r.client_auth, ClientAuth::PrivateKeyJwt);
        assert_eq!(r.resource(), Some("https://reports.example.com/mcp"));
        assert_eq!(
            r.endpoint,
            Endpoint::McpServer {
                server_url: "https://reports.example.com/mcp".into(),
                authorization_server: None
            }
        );
        let k = c.identity("calc").unwrap();
        assert_eq!(k.client_auth, ClientAuth::Basic);
        assert_eq!(k.client_secret.as_ref().unwrap().expose(), "s3cret");
        assert_eq!(k.scopes, ["mcp:tools"]);
        assert_eq!(
            k.endpoint,
            Endpoint::McpServer {
                server_url: "https://calc.example.com/mcp".into(),
                authorization_server: Some("https://as.example.com/t1".into())
            }
        );
        assert_eq!(c.servers[1].auth, bearer_of("calc"));
    }

    /// A server `r` with `auth: {oauth: ...}`, the oauth map's lines given.
    fn oauth_server(lines: &str) -> Result<Config, String> {
        parse_str(&format!(
            "servers:\n  - name: r\n    url: https://r.example.com/mcp\n    auth:\n      oauth:\n{lines}"
        ))
    }

    /// `oauth_server` with `grant: client_credentials` first.
    fn client_credentials(lines: &str) -> Result<Config, String> {
        oauth_server(&format!("        grant: client_credentials\n{lines}"))
    }

    #[test]
    fn oauth_errors_name_file_line_and_key() {
        let e = client_credentials("        client_id: a\n        private_key: {file: /bad.pem}\n")
            .unwrap_err();
        assert!(
            e.starts_with(
                "/c.yaml:8: servers[0].auth.oauth.private_key: the private key is neither"
            ),
            "{e}"
        );
        assert!(!e.contains("bm9wZQ"), "{e}");
        assert_error(
            client_credentials("        client_id: a\n"),
            "servers[0].auth.oauth: missing `client_secret` or `private_key`",
        );
        assert_error(
            client_credentials(
                "        client_id: a\n        client_secret: x\n        private_key: {file: /k.pem}\n",
            ),
            ":9: servers[0].auth.oauth.private_key: give `client_secret` or `private_key`, not both",
        );
        assert_error(
            client_credentials(
                "        client_id: a\n        client_secret: x\n        authorization_server: http://as.example.com\n",
            ),
            ":9: servers[0].auth.oauth.authorization_server: `http://as.example.com` uses plain http",
        );
        assert_error(
            client_credentials("        client_id: a\n        client_secret: x\n"),
            ":8: servers[0].auth.oauth.client_secret: a `client_secret` is sent only to an authorization server you name",
        );
        assert_error(
            oauth_server("        client_id: a\n        client_secret: x\n"),
            ":7: servers[0].auth.oauth.client_secret: a `client_secret` is sent only",
        );
        let e = client_credentials("        client_id: a\n        client_sceret: x\n").unwrap_err();
        assert!(
            e.contains(":8: servers[0].auth.oauth.client_sceret") || e.contains("client_sceret"),
            "{e}"
        );
        assert!(e.contains("unknown"), "{e}");
        assert_error(
            oauth_server("        private_key: {file: /k.pem}\n"),
            ":6: servers[0].auth.oauth.private_key: `private_key` goes with `grant: client_credentials`",
        );
        assert_error(
            oauth_server("        client_secret: x\n"),
            ":6: servers[0].auth.oauth.client_secret: a `client_secret` needs the `client_id`",
        );
        assert_error(
            oauth_server("        redirect_uri: https://r.example.com/cb\n"),
            ":6: servers[0].auth.oauth.redirect_uri: `https://r.example.com/cb`: the redirect URI must be",
        );
        assert_error(
            parse_str(
                "servers:\n  - name: r\n    url: https://r.example.com/mcp#x\n    auth:\n      oauth: {grant: client_credentials, client_id: a, client_secret: b}\n",
            ),
            ":3: servers[0].url: `https://r.example.com/mcp#x` has a fragment",
        );
        assert_error(
            parse_str(
                "identities:\n  r:\n    kind: oidc_m2m\n    client_id: c\n    client_secret: s\n    token_url: https://t.example.com/\nservers:\n  - name: r\n    url: https://r.example.com/mcp\n    auth:\n      oauth: {grant: client_credentials, client_id: a, client_secret: b, authorization_server: 'https://as.example.com'}\n",
            ),
            ":8: servers[0].name: an identity is already named `r`",
        );
    }

    #[test]
    fn the_interactive_login_forms() {
        let c = parse_str("servers:\n  - name: calc\n    url: HTTPS://Calc.example.com/mcp\n    auth: oauth\n  - name: docs\n    url: https://docs.example.com/mcp\n    auth:\n      oauth:\n        client_id: pre-registered\n        scopes: [mcp:tools]\n        authorization_server: https://as.example.com\n        redirect_uri: http://127.0.0.1:8765/callback\n").unwrap();
        let calc = c.identity("calc").unwrap();
        assert_eq!(calc.kind.tag(), crate::config::IdentityKind::Egress);
        assert_eq!(calc.file_name, "calc.json");
        assert_eq!(calc.client_id, "");
        assert_eq!(calc.resource(), Some("https://calc.example.com/mcp"));
        assert_eq!(
            calc.mcp_login(),
            Some(("https://calc.example.com/mcp", None))
        );
        let eg = calc.egress().unwrap();
        assert_eq!(eg.redirect_uri, "", "a port is chosen at login");
        assert!(eg.def.pkce);
        let docs = c.identity("docs").unwrap();
        assert_eq!(docs.client_id, "pre-registered");
        assert_eq!(docs.scopes, ["mcp:tools"]);
        assert_eq!(
            docs.mcp_login(),
            Some((
                "https://docs.example.com/mcp",
                Some("https://as.example.com")
            ))
        );
        assert_eq!(
            docs.egress().unwrap().redirect_uri,
            "http://127.0.0.1:8765/callback"
        );
        assert_eq!(c.servers[0].auth, bearer_of("calc"));
        // client_credentials has no redirect.
        assert_error(
            parse_str(
                "servers:\n  - name: r\n    url: https://r.example.com/mcp\n    auth:\n      oauth: {grant: client_credentials, client_id: a, client_secret: b, authorization_server: 'https://as.example.com', redirect_uri: 'http://127.0.0.1:1/cb'}\n",
            ),
            "servers[0].auth.oauth.redirect_uri: `redirect_uri` is for the interactive login",
        );
    }

    #[test]
    fn oidc_m2m_takes_a_private_key() {
        let base = "ingress:\n  kind: oidc_m2m\n  client_id: a\n  token_url: https://t.example.com/token\n";
        let auth_of = |extra: &str| {
            parse_str(&format!("{base}{extra}")).map(|c| c.ingress.unwrap().client_auth)
        };
        assert_eq!(
            auth_of("  private_key: {file: /k.pem}\n"),
            Ok(ClientAuth::PrivateKeyJwt)
        );
        assert_eq!(
            auth_of("  private_key: {file: /k.pem}\n  client_auth: private_key_jwt\n"),
            Ok(ClientAuth::PrivateKeyJwt)
        );
        assert_error(
            parse_str(&format!(
                "{base}  private_key: {{file: /k.pem}}\n  client_auth: post\n"
            )),
            ":6: ingress.client_auth: with `private_key`",
        );
        assert_error(
            parse_str(&format!(
                "{base}  client_secret: x\n  client_auth: private_key_jwt\n"
            )),
            ":6: ingress.client_auth: private_key_jwt needs `private_key`",
        );
        assert_error(
            parse_str(
                "ingress:\n  kind: cognito_m2m\n  client_id: a\n  domain: d\n  region: eu-west-1\n  private_key: {file: /k.pem}\n",
            ),
            ":6: ingress.private_key: `private_key` does not apply to kind cognito_m2m",
        );
    }
}
