//! Finds and reads the configuration: the YAML file, or the reference tool's variables from
//! the environment and an env file. The only config code that does I/O.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::env::{EnvVars, from_env};
use super::parse::{Lookup, default_tokens_dir, parse};
use super::services::parse_service;
use super::{Config, ConfigError, Origin, ServerConfig};
use crate::dirs::Dirs;
use crate::secret::{CONFIG_FILE_MAX, read_regular_file};

/// What the command line says about where to look.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    pub config: Option<PathBuf>,
    pub env_file: Option<PathBuf>,
    pub tokens_dir: Option<PathBuf>,
    /// The reference tool's `registry/servers` directory (env MCP_CREDD_SERVERS_DIR).
    pub servers_dir: Option<PathBuf>,
    /// The command makes no network call: a secret that cannot be resolved is recorded in
    /// `Loaded::missing_secrets` (the identity gets an empty secret) instead of failing.
    pub lazy_secrets: bool,
}

#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    /// Things the user should hear about that do not stop the run.
    pub warnings: Vec<String>,
    /// With `lazy_secrets`: the secrets that could not be resolved, each naming its variable.
    pub missing_secrets: Vec<ConfigError>,
    /// The `registry/servers` directory the services came from (or were to come from).
    pub servers_dir: Option<PathBuf>,
    /// The servers source exists in the config but could not be read: the run must not
    /// remove the entries already written (see `render::write`), and must exit non-zero.
    pub servers_unavailable: Option<String>,
    /// The secrets file that was read, if any.
    pub secrets_file: Option<PathBuf>,
    /// The tokens and servers directories came from a flag or `MCP_CREDD_*` variable, not
    /// from the config file (a unit must then carry them; otherwise the file stays in charge).
    pub tokens_dir_overridden: bool,
    pub servers_dir_overridden: bool,
}

struct OsLookup<'a> {
    env: &'a EnvVars,
    dirs: &'a Dirs,
    deferred: Option<&'a std::cell::RefCell<Vec<ConfigError>>>,
}

impl Lookup for OsLookup<'_> {
    fn env(&self, name: &str) -> Option<String> {
        self.env.get(name).map(str::to_string)
    }
    fn read_file(&self, path: &Path) -> std::io::Result<String> {
        crate::secret::read_secret_file(path)
    }
    fn home_dir(&self) -> Option<PathBuf> {
        self.dirs.home.clone()
    }
    fn provider_files(&self) -> Result<Vec<(String, String, String)>, ConfigError> {
        user_provider_files(self.dirs)
    }
    fn defer(&self, e: ConfigError) -> Result<(), ConfigError> {
        match self.deferred {
            Some(d) => {
                d.borrow_mut().push(e);
                Ok(())
            }
            None => Err(e),
        }
    }
}

/// The user's provider definitions (`~/.config/mcp-credd/providers/*.yaml`), as
/// (key, file name, text), read with or without a config file.
fn user_provider_files(dirs: &Dirs) -> Result<Vec<(String, String, String)>, ConfigError> {
    let Some(dir) = dirs.providers_dir() else {
        return Ok(Vec::new());
    };
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return Ok(Vec::new());
    };
    let mut files: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for p in files {
        let Some(key) = p.file_stem().and_then(|s| s.to_str()).map(str::to_string) else {
            continue;
        };
        // A definition that cannot be read is an error, not a provider silently missing.
        let text = read_text(&p, "a provider file").map_err(|e| {
            ConfigError::new(
                p.display().to_string(),
                format!("cannot read this provider file: {e}; fix or remove it"),
            )
        })?;
        out.push((key, p.display().to_string(), text));
    }
    Ok(out)
}

/// Where the reference scripts keep their `.env`, relative to a gateway checkout's root.
pub const REFERENCE_ENV_PLACES: &[&str] = &[".env", "credentials-provider/oauth/.env"];

/// The gateway checkout's `registry/servers` for an env file: next to it, or at the root
/// of the checkout it sits in (`credentials-provider/oauth/.env` is two levels down).
pub fn servers_dir_for(env_file: &Path) -> Option<PathBuf> {
    let dir = env_file.parent()?;
    dir.ancestors()
        .take(3)
        .map(|d| d.join("registry").join("servers"))
        .find(|d| d.is_dir())
}

/// The text of a config, env, secrets or provider file: `read_regular_file`'s checks, at
/// most `CONFIG_FILE_MAX` bytes, UTF-8 (the error names the first byte that is not).
pub(crate) fn read_text(path: &Path, label: &str) -> std::io::Result<String> {
    let bytes = read_regular_file(path, CONFIG_FILE_MAX, label)?;
    String::from_utf8(bytes).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "it is not UTF-8 text (byte {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

/// The entries of a dotenv-format file, errors located at their line; `label` names it
/// for the reader, `what` in the error when it cannot be read.
pub(crate) fn dotenv_entries(
    path: &Path,
    label: &str,
    what: &str,
) -> Result<Vec<super::dotenv::Entry>, ConfigError> {
    let text = read_text(path, label).map_err(|e| {
        ConfigError::new(
            path.display().to_string(),
            format!("cannot read {what}: {e}"),
        )
    })?;
    super::dotenv::parse(&text).map_err(|e| {
        let mut ce = ConfigError::new(path.display().to_string(), e.message);
        ce.line = Some(e.line);
        ce
    })
}

fn read_env_file(path: &Path, env: &mut EnvVars) -> Result<(), ConfigError> {
    let entries = dotenv_entries(path, "an env file", "env file")?;
    env.file = Some(path.to_path_buf());
    for e in entries {
        // The process environment wins over the file, as with python-dotenv.
        env.vars.entry(e.key).or_insert((e.value, Some(e.line)));
    }
    Ok(())
}

/// Reads the secrets file into `env` (the process environment and an explicit env file
/// win). A missing file is fine; an unreadable or malformed one is an error.
fn read_secrets_file(
    path: &Path,
    env: &mut EnvVars,
    warnings: &mut Vec<String>,
) -> Result<bool, ConfigError> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => {
            return Err(ConfigError::new(
                path.display().to_string(),
                format!("cannot read the secrets file: {e}"),
            ));
        }
    };
    if meta.permissions().mode() & 0o077 != 0 {
        warnings.push(format!(
            "the secrets file {} is readable by other users; run `chmod 600 {}`",
            path.display(),
            path.display()
        ));
    }
    let entries = dotenv_entries(path, "the secrets file", "the secrets file")?;
    for e in entries {
        env.vars.entry(e.key).or_insert((e.value, None));
    }
    Ok(true)
}

/// Loads the configuration. `process_env` is the process environment (a parameter so that
/// tests need not mutate the real one).
pub fn load(
    opts: &LoadOptions,
    process_env: &HashMap<String, String>,
) -> Result<Loaded, ConfigError> {
    let mut warnings = Vec::new();
    let deferred = std::cell::RefCell::new(Vec::new());
    let mut env = EnvVars {
        used: Default::default(),
        file: None,
        vars: process_env
            .iter()
            .map(|(k, v)| (k.clone(), (v.clone(), None)))
            .collect(),
        deferred: None,
        provider_files: Vec::new(),
    };
    // A path from a set, non-empty variable.
    let path_var = |k: &str| {
        process_env
            .get(k)
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
    };
    let explicit_env_file = opts
        .env_file
        .clone()
        .or_else(|| path_var("MCP_CREDD_ENV_FILE"))
        .map(|p| std::path::absolute(&p).unwrap_or(p));
    if let Some(p) = &explicit_env_file {
        read_env_file(p, &mut env)?;
    }
    // The user's places, from the environment handed in (never the process's own).
    let dirs = Dirs::from_env(process_env);
    // The secrets file (`~/.config/mcp-credd/env`): the process environment wins over it.
    let mut secrets_file = None;
    if let Some(p) = dirs.secrets_file()
        && read_secrets_file(&p, &mut env, &mut warnings)?
    {
        secrets_file = Some(p);
    }
    let lazy = opts.lazy_secrets.then_some(&deferred);

    let explicit_config = opts.config.clone().or_else(|| path_var("MCP_CREDD_CONFIG"));
    let config_path = match explicit_config {
        Some(p) => Some(p),
        None => dirs.config_file().filter(|p| p.exists()),
    };

    let tokens_override = opts
        .tokens_dir
        .clone()
        .or_else(|| path_var("MCP_CREDD_TOKENS_DIR"));
    let servers_override = opts
        .servers_dir
        .clone()
        .or_else(|| path_var("MCP_CREDD_SERVERS_DIR"))
        .map(|p| std::path::absolute(&p).unwrap_or(p));
    let tokens_dir_overridden = tokens_override.is_some();
    let servers_dir_overridden = servers_override.is_some();
    let mut servers_dir = None;
    let mut servers_unavailable = None;

    let mut config = if let Some(path) = config_path {
        let path = std::path::absolute(&path).unwrap_or(path);
        let text = read_text(&path, "a config file").map_err(|e| {
            let hint = if e.kind() == std::io::ErrorKind::NotFound {
                "; create it or pass --config PATH"
            } else {
                ""
            };
            ConfigError::new(
                path.display().to_string(),
                format!("cannot read config file: {e}{hint}"),
            )
        })?;
        let lookup = OsLookup {
            env: &env,
            dirs: &dirs,
            deferred: lazy,
        };
        let parsed = parse(&text, &path, &lookup)?;
        if !parsed.literal_secrets.is_empty()
            && let Ok(meta) = std::fs::metadata(&path)
            && meta.permissions().mode() & 0o077 != 0
        {
            warnings.push(format!(
                "{} holds a secret ({}) and is readable by other users; run `chmod 600 {}` or use {{env: VARIABLE}}",
                path.display(),
                parsed.literal_secrets.join(", "),
                path.display()
            ));
        }
        let mut config = parsed.config;
        config.proxy = proxy_env(&env);
        if let Some(dir) = servers_override.clone().or(parsed.servers_dir) {
            servers_unavailable = import_servers(&mut config, &dir, &mut warnings);
            servers_dir = Some(dir);
        }
        config
    } else {
        // No config file: behave like the reference tool, which reads `.env` from where it
        // runs; from a gateway checkout's root, also where its scripts keep it.
        let mut implicit_env = None;
        if explicit_env_file.is_none()
            && let Some(found) = REFERENCE_ENV_PLACES
                .iter()
                .map(PathBuf::from)
                .find(|p| p.is_file())
        {
            let abs = std::fs::canonicalize(&found).unwrap_or(found);
            read_env_file(&abs, &mut env)?;
            implicit_env = Some(abs);
        }
        env.provider_files = user_provider_files(&dirs)?;
        env.deferred = lazy.map(|_| std::cell::RefCell::new(Vec::new()));
        let tokens_dir = default_tokens_dir(&OsLookup {
            env: &env,
            dirs: &dirs,
            deferred: None,
        });
        let from = from_env(&env, tokens_dir);
        if let Some(d) = env.deferred.take() {
            deferred.borrow_mut().extend(d.into_inner());
        }
        let mut built = from?;
        // Read before the implicit-.env rule: a proxy set by a current-directory `.env`
        // decides where requests go, like any other routing variable.
        let proxy = proxy_env(&env);
        if let Some(c) = built.as_mut() {
            c.proxy = proxy;
        }
        if let Some(path) = &implicit_env {
            check_implicit_env(&env, path)?;
        }
        let Some(mut config) = built else {
            let where_ = dirs
                .config_file()
                .map_or_else(|| "a config file".to_string(), |p| p.display().to_string());
            return Err(ConfigError::new(
                "configuration",
                format!(
                    "no configuration found: create {where_} (`mcp-credd init` writes a starter), pass --config PATH or --env-file PATH, or set the INGRESS_OAUTH_* variables (see README)"
                ),
            ));
        };
        let dir = servers_override.clone().or_else(|| {
            env.get("MCP_CREDD_SERVERS_DIR")
                .map(PathBuf::from)
                .or_else(|| env.file.as_deref().and_then(servers_dir_for))
        });
        match dir {
            Some(dir) => {
                servers_unavailable = import_servers(&mut config, &dir, &mut warnings);
                servers_dir = Some(dir);
            }
            None => {
                if let Some(f) = &env.file {
                    let why = format!(
                        "no registry/servers directory next to {} or at its gateway checkout's root; pass --servers-dir DIR",
                        f.display()
                    );
                    if config.gateway_url.is_some() {
                        // The gateway's servers are expected but their source is missing:
                        // keep what was written before.
                        servers_unavailable = Some(format!(
                            "{why} (the servers already written to the editor configs are kept)"
                        ));
                    } else {
                        warnings.push(why);
                    }
                }
            }
        }
        config
    };
    if let Some(t) = tokens_override {
        config.tokens_dir = t;
    }
    if config.tokens_dir.is_relative() {
        // Never depend on the working directory later: pin the path now.
        if let Ok(cwd) = std::env::current_dir() {
            config.tokens_dir = cwd.join(&config.tokens_dir);
        }
    }
    if let Origin::Environment { .. } = config.origin
        && config.gateway_url.is_none()
    {
        warnings.push(
            "REGISTRY_URL is not set: no gateway servers will be written to the MCP configs".into(),
        );
    }
    // Every token is bound to the gateway it is handed to (see `binding`).
    let gateway = config.gateway_url.clone();
    for id in config
        .ingress
        .iter_mut()
        .chain(config.identities.iter_mut())
    {
        id.gateway = gateway.clone();
    }
    Ok(Loaded {
        config,
        warnings,
        missing_secrets: deferred.into_inner(),
        servers_dir,
        servers_unavailable,
        secrets_file,
        tokens_dir_overridden,
        servers_dir_overridden,
    })
}

/// The proxy variables of the merged environment (process, env file, secrets file): the
/// one place they are read.
fn proxy_env(env: &EnvVars) -> crate::identity::proxy::ProxyEnv {
    crate::identity::proxy::ProxyEnv::from_lookup(&|k| env.get(k).map(str::to_string))
}

/// Whether a variable holds a secret (a client secret or a password).
fn is_secret_var(k: &str) -> bool {
    k.contains("SECRET") || k.contains("PASSWORD")
}

/// Variables that cannot send anything anywhere: which client, which scopes, which user.
fn is_inert_var(k: &str) -> bool {
    k.starts_with("MCP_CREDD_")
        || ["CLIENT_ID", "SCOPE", "SCOPES", "USERNAME"]
            .iter()
            .any(|s| k.ends_with(s) || k.contains(&format!("{s}_")))
}

/// The implicit `.env` rule. A `.env` read only because it sits in the current directory
/// (a cloned repository's, perhaps) may not choose where a secret from elsewhere (the
/// process environment or the secrets file) is sent: if the config uses such a secret and that file sets any
/// other variable the config was built from (a URL, domain, region, pool, tenant,
/// provider...), refuse. All from the file, or all from the environment, is fine; so is
/// the file named with `--env-file` or `MCP_CREDD_ENV_FILE`.
fn check_implicit_env(env: &EnvVars, path: &Path) -> Result<(), ConfigError> {
    let used = env.used.borrow();
    let line_in_file = |k: &str| env.vars.get(k).and_then(|(_, line)| *line);
    let secrets_elsewhere: Vec<&str> = used
        .iter()
        .map(String::as_str)
        .filter(|k| is_secret_var(k) && line_in_file(k).is_none())
        .collect();
    let routing_here: Vec<(&str, usize)> = used
        .iter()
        .filter(|k| !is_secret_var(k) && !is_inert_var(k))
        .filter_map(|k| line_in_file(k).map(|l| (k.as_str(), l)))
        .collect();
    let (Some(secret), Some(&(key, line))) = (secrets_elsewhere.first(), routing_here.first())
    else {
        return Ok(());
    };
    let shown = path.display();
    Err(ConfigError::new(
        shown.to_string(),
        format!(
            "this .env was read only because it is in the current directory, and it sets where requests go while {secret} comes from your environment or secrets file; a cloned repository's .env could send your secret to its own server. If you trust it, pass --env-file {shown} (or MCP_CREDD_ENV_FILE); otherwise put the secret in it too, or run elsewhere"
        ),
    )
    .at(key, Some(line)))
}

/// Appends the services of a reference-tool `registry/servers` directory; servers the
/// config already lists keep their own settings.
/// Returns why the directory could not be read: then nothing was imported, and entries
/// already written must be kept.
fn import_servers(config: &mut Config, dir: &Path, warnings: &mut Vec<String>) -> Option<String> {
    let Some(gateway) = config.gateway_url.clone() else {
        warnings.push(format!(
            "not importing services from {}: no gateway_url / REGISTRY_URL to build their URLs",
            dir.display()
        ));
        return None;
    };
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect(),
        Err(e) => {
            return Some(format!(
                "cannot read the servers directory {}: {e}; the servers already written to the editor configs are kept (fix the path or pass --servers-dir DIR)",
                dir.display()
            ));
        }
    };
    files.sort();
    for f in files {
        if f.file_name().is_some_and(|n| n == "server_state.json") {
            continue;
        }
        let parsed = read_text(&f, "a server file")
            .map_err(|e| e.to_string())
            .and_then(|t| parse_service(&t, &gateway));
        match parsed {
            Ok(Some(s)) => {
                if config.ingress.is_none() {
                    warnings.push(format!(
                        "service {} needs the gateway identity, but none is configured; skipped",
                        s.name
                    ));
                } else if !config
                    .servers
                    .iter()
                    .any(|x: &ServerConfig| x.name == s.name)
                {
                    config.servers.push(s);
                }
            }
            Ok(None) => {}
            Err(e) => warnings.push(format!("{}: {e}; skipped", f.display())),
        }
    }
    None
}
