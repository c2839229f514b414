//! Command glue: loads the config, runs the one-shot or `status`, prints what the user must
//! read, and picks the exit code. Network and file work happen here and in the modules it
//! calls; decisions come from the pure modules.

use std::collections::HashMap;
use std::sync::Arc;

use crate::cli::{Cli, Command, OnceArgs};
use crate::clock::{Clock, Ts};
use crate::config::load::{LoadOptions, Loaded, load};
use crate::config::{Config, IdentityConfig, Origin, ServerAuth};
use crate::daemon;
use crate::dirs::Dirs;
use crate::exit::Exit;
use crate::failure::FailureKind;
use crate::identity::oauth::Http;
use crate::identity::reply::ExpirySource;
use crate::refresh::{self, Outcome, token_file_name};
use crate::render::ServerEntry;
use crate::render::write::{Outcome as WriteOutcome, write_all};
use crate::sanitize::escape_keep_newlines;
use crate::schedule::plan::Expiry;
use crate::status;
use crate::store::{Store, TokenRecord};
use crate::timefmt::{human_utc, relative};

/// What the user reads: results on stdout, problems on stderr. Logs are separate (tracing).
#[derive(Clone, Copy, Debug)]
pub struct Ui {
    pub quiet: bool,
}

impl Ui {
    // Every line we print goes through `escape_keep_newlines`: text from a server that
    // was not escaped where it entered still cannot drive the terminal.
    pub fn out(&self, s: impl AsRef<str>) {
        if !self.quiet {
            println!("{}", escape_keep_newlines(s.as_ref()));
        }
    }
    pub fn warn(&self, s: impl AsRef<str>) {
        if !self.quiet {
            eprintln!("warning: {}", escape_keep_newlines(s.as_ref()));
        }
    }
    pub fn error(&self, s: impl AsRef<str>) {
        eprintln!("error: {}", escape_keep_newlines(s.as_ref()));
    }
    /// The value, or `None` with the error printed (the caller returns its exit code).
    fn ok<T>(&self, r: Result<T, String>) -> Option<T> {
        r.map_err(|e| self.error(e)).ok()
    }
    /// Prints what a command did, or its error; `failed` is the exit code for the error.
    fn said(&self, done: Result<Vec<String>, String>, failed: Exit) -> Exit {
        match done {
            Ok(said) => {
                for s in said {
                    self.out(s);
                }
                Exit::Success
            }
            Err(e) => {
                self.error(e);
                failed
            }
        }
    }
}

pub async fn run(cli: Cli, clock: Arc<dyn Clock>, process_env: &HashMap<String, String>) -> Exit {
    let ui = Ui { quiet: cli.quiet };
    // The user's places, from the environment handed in (never the process's own).
    let dirs = Dirs::from_env(process_env);
    crate::render::formats::set_headers_helper(headers_helper_command(&cli));
    // Commands that make no network call need no secret: resolved only where used.
    let lazy_secrets = matches!(
        cli.command,
        Some(
            Command::Status { .. }
                | Command::Render
                | Command::Headers { .. }
                | Command::Doctor { .. }
                | Command::InstallService { .. }
        )
    );
    // Commands that need no configuration.
    match &cli.command {
        Some(Command::Completions { shell }) => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(*shell, &mut cmd, "mcp-credd", &mut std::io::stdout());
            return Exit::Success;
        }
        Some(Command::Man) => {
            let cmd = <Cli as clap::CommandFactory>::command();
            let mut out = Vec::new();
            if let Err(e) = clap_mangen::Man::new(cmd).render(&mut out) {
                ui.error(format!("cannot render the manual page: {e}"));
                return Exit::Failure;
            }
            let _ = std::io::Write::write_all(&mut std::io::stdout(), &out);
            return Exit::Success;
        }
        Some(Command::Init { from_env, force }) => {
            let source = from_env.clone().or_else(|| cli.env_file.clone());
            let done = crate::init::run(cli.config.clone(), source, *force, process_env);
            return ui.said(done, Exit::Config);
        }
        _ => {}
    }
    if let Some(Command::UninstallService { unit_path }) = &cli.command {
        let done = crate::service::uninstall(unit_path.clone(), process_env);
        return ui.said(done, Exit::Failure);
    }
    let opts = LoadOptions {
        config: cli.config.clone(),
        env_file: cli.env_file.clone(),
        tokens_dir: cli.tokens_dir.clone(),
        servers_dir: cli.servers_dir.clone(),
        lazy_secrets,
    };
    let loaded = match load(&opts, process_env) {
        Ok(l) => l,
        Err(e) => {
            ui.error(e.to_string());
            return Exit::Config;
        }
    };
    for w in &loaded.warnings {
        ui.warn(w);
    }
    if let Some(why) = &loaded.servers_unavailable {
        ui.error(why);
    }
    match cli.command {
        Some(Command::CheckConfig) => {
            if loaded.servers_unavailable.is_some() {
                return Exit::Config;
            }
            ui.out(format!("configuration from {} loads", loaded.config.origin));
            Exit::Success
        }
        Some(
            Command::UninstallService { .. }
            | Command::Init { .. }
            | Command::Completions { .. }
            | Command::Man,
        ) => unreachable!("handled before loading"),
        Some(Command::Status { json }) => status_cmd(&loaded.config, json, clock.as_ref(), ui),
        Some(Command::Login { name, args }) => {
            login_cmd(
                &loaded.config,
                loaded.servers_unavailable.is_some(),
                name,
                &args.options(process_env),
                &dirs,
                clock.as_ref(),
                ui,
            )
            .await
        }
        Some(Command::Doctor { json }) => {
            let facts = crate::doctor::Facts {
                missing_secrets: loaded
                    .missing_secrets
                    .iter()
                    .map(|e| e.to_string())
                    .collect(),
                servers_unavailable: loaded.servers_unavailable.clone(),
                unit: crate::service::installed_unit(&loaded, process_env),
            };
            let findings = crate::doctor::run(
                &loaded.config,
                &loaded.warnings,
                &facts,
                &dirs,
                clock.as_ref(),
            )
            .await;
            print_report(json, &findings, || crate::doctor::render_text(&findings));
            if findings
                .iter()
                .any(|f| f.level == crate::doctor::Level::Fail)
            {
                Exit::Failure
            } else {
                Exit::Success
            }
        }
        Some(Command::Daemon) => {
            daemon_cmd(loaded, opts, process_env.clone(), dirs, clock, ui).await
        }
        Some(Command::InstallService { unit_path }) => {
            install_service(&loaded, unit_path, process_env, ui)
        }
        Some(Command::Render) => {
            render_cmd(
                &loaded.config,
                loaded.servers_unavailable.is_some(),
                &dirs,
                clock.as_ref(),
                ui,
            )
            .await
        }
        Some(Command::Headers { server }) => {
            headers_cmd(&loaded.config, server, process_env, clock.as_ref(), ui).await
        }
        Some(Command::Logout { name, all }) => {
            logout_cmd(
                &loaded.config,
                loaded.servers_unavailable.is_some(),
                name,
                all,
                &dirs,
                clock.as_ref(),
                ui,
            )
            .await
        }
        Some(Command::Token { name }) => token_cmd(&loaded.config, &name, clock.as_ref(), ui).await,
        None => {
            let login = cli.once.login.options(process_env);
            oneshot(loaded, &cli.once, &login, &dirs, clock.as_ref(), ui).await
        }
    }
}

/// A command's report on stdout: JSON with `--json`, else the text (escaped).
fn print_report<T: serde::Serialize>(json: bool, report: &T, text: impl FnOnce() -> String) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(report).expect("reports serialize")
        );
    } else {
        print!("{}", escape_keep_newlines(&text()));
    }
}

/// What Claude Code runs for headers: this binary's `headers`, with the same config,
/// env file and tokens directory options as this run (a shell command line).
fn headers_helper_command(cli: &Cli) -> String {
    let bin = std::env::current_exe()
        .ok()
        .and_then(|p| p.to_str().map(str::to_string))
        .unwrap_or_else(|| "mcp-credd".into());
    let abs = |v: &Option<std::path::PathBuf>| {
        v.as_ref()
            .and_then(|p| std::path::absolute(p).ok())
            .and_then(|p| p.to_str().map(str::to_string))
    };
    crate::render::formats::helper_command(
        &bin,
        &[
            ("--config", abs(&cli.config)),
            ("--env-file", abs(&cli.env_file)),
            ("--tokens-dir", abs(&cli.tokens_dir)),
        ],
    )
}

async fn daemon_cmd(
    loaded: Loaded,
    opts: LoadOptions,
    env: HashMap<String, String>,
    dirs: Dirs,
    clock: Arc<dyn Clock>,
    ui: Ui,
) -> Exit {
    let keep_unlisted = loaded.servers_unavailable.is_some();
    let notify_reload = env.get("MCP_CREDD_NOTIFY_RELOAD").is_some_and(|v| v == "1");
    let secrets_file = loaded.secrets_file.clone();
    let config = loaded.config;
    let store = match open_store(&config, ui) {
        Ok(s) => Arc::new(s),
        Err(e) => return e,
    };
    let _daemon_lock = match store.try_daemon_lock() {
        Ok(Ok(f)) => f,
        Ok(Err(pid)) => {
            let who = if pid.is_empty() {
                String::new()
            } else {
                format!(" (pid {pid})")
            };
            ui.error(format!(
                "another mcp-credd daemon is already running for {}{who}; stop it first",
                config.tokens_dir.display()
            ));
            return Exit::Failure;
        }
        Err(e) => {
            ui.error(e.to_string());
            return Exit::Failure;
        }
    };
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    if let Err(e) = daemon::forward_signals(tx.clone()) {
        ui.error(format!("cannot install signal handlers: {e}"));
        return Exit::Failure;
    }
    let mut watched: Vec<std::path::PathBuf> = Vec::new();
    match &config.origin {
        Origin::File(p) => watched.push(absolute(p)),
        Origin::Environment { env_file } => watched.extend(env_file.iter().map(|p| absolute(p))),
    }
    if let Some(p) = &opts.env_file {
        watched.push(absolute(p));
    }
    // A secret changed in the secrets file takes effect like a config change.
    watched.extend(
        secrets_file
            .or_else(|| dirs.secrets_file())
            .filter(|p| p.parent().is_some_and(std::path::Path::is_dir)),
    );
    let token_files = daemon::WatchedTokens::default();
    let _watcher = match daemon::watch(
        watched,
        store.dir().to_path_buf(),
        token_files.clone(),
        tx.clone(),
    ) {
        Ok(w) => Some(w),
        Err(e) => {
            ui.warn(format!(
                "cannot watch the config for changes ({e}); use SIGHUP to reload"
            ));
            None
        }
    };
    let notifier = daemon::sd::Notifier::new(env.get("NOTIFY_SOCKET").map(String::as_str));
    let loader: daemon::Loader = Box::new(move || load(&opts, &env));
    let d = match daemon::Daemon::new(config, store, clock, notifier, loader, dirs) {
        Ok(mut d) => {
            d.keep_unlisted = keep_unlisted;
            d.notify_reload = notify_reload;
            d.watched = token_files;
            d
        }
        Err(e) => {
            ui.error(e);
            return Exit::Failure;
        }
    };
    d.run(rx).await
}

fn absolute(p: &std::path::Path) -> std::path::PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

fn install_service(
    loaded: &Loaded,
    unit_path: Option<std::path::PathBuf>,
    env: &HashMap<String, String>,
    ui: Ui,
) -> Exit {
    match crate::service::install(loaded, unit_path, env) {
        Ok(done) => {
            for n in &done.notes {
                ui.warn(n);
            }
            for d in &done.created {
                ui.out(format!(
                    "created {} (the service may write there)",
                    d.display()
                ));
            }
            ui.out(format!("wrote {}", done.unit_path.display()));
            ui.out("start it with:\n  systemctl --user daemon-reload && systemctl --user enable --now mcp-credd");
            ui.out("if it was already running:\n  systemctl --user daemon-reload && systemctl --user restart mcp-credd");
            ui.out(
                "then check it with:\n  mcp-credd status   (or: systemctl --user status mcp-credd)",
            );
            Exit::Success
        }
        Err(e) => {
            ui.error(e);
            Exit::Config
        }
    }
}

fn open_store(config: &Config, ui: Ui) -> Result<Store, Exit> {
    match Store::open(&config.tokens_dir) {
        Ok((s, warnings)) => {
            for w in warnings {
                ui.warn(w);
            }
            Ok(s)
        }
        Err(e) => {
            ui.error(e.to_string());
            Err(Exit::Failure)
        }
    }
}

async fn oneshot(
    loaded: Loaded,
    args: &OnceArgs,
    login: &crate::login::LoginOptions,
    dirs: &Dirs,
    clock: &dyn Clock,
    ui: Ui,
) -> Exit {
    // The servers source could not be read: keep what was written, and say so in the code.
    let keep = loaded.servers_unavailable.is_some();
    let config = loaded.config;
    let choice = crate::selection::oneshot(
        &config,
        args.provider.as_deref(),
        args.egress_only,
        args.ingress_only,
    );
    let Some(choice) = ui.ok(choice) else {
        return Exit::Config;
    };
    let egress_only = choice.egress_only;
    let is_egress = |id: &IdentityConfig| id.egress().is_some();
    let (store, http) = match open_store_and_http(&config, ui) {
        Ok(x) => x,
        Err(e) => return e,
    };
    let ctx = refresh_ctx(&store, &http, &config.refresh, clock);
    let mut exit = if keep { Exit::Failure } else { Exit::Success };
    if egress_only && !config.all_identities().any(is_egress) {
        ui.out("no egress provider is configured; nothing to do for --egress-only");
    }
    if config.ingress.is_none() && config.identities.is_empty() && !egress_only {
        ui.out("no ingress identity is configured");
    }
    let mut records = HashMap::new();
    for (id, run) in choice.identities {
        let rec = if !run {
            store.read_token(&token_file_name(id)).ok().flatten()
        } else {
            let (mut rec, mut ex) = ensure_m2m(id, &ctx, args.force, ui).await;
            // Asked for egress explicitly, by a person at a terminal: log in where a login
            // is what it takes. Unattended runs report it (exit 4) instead of waiting.
            if ex == Exit::ReauthRequired
                && egress_only
                && let Some(l) = id.login()
                && std::io::IsTerminal::is_terminal(&std::io::stdin())
            {
                (rec, ex) = login_one(l, &ctx, login, ui).await;
            }
            exit = exit.worst(ex);
            rec
        };
        if let Some(rec) = rec {
            records.insert(id.name.clone(), rec);
        }
    }
    let entries = crate::render::entries(&config, &records);
    exit.worst(write_editors(&config, &store, dirs, &entries, keep, ui).await)
}

/// Writes every editor target and tells the user what happened; `Failure` if one could
/// not be written (the others still are).
async fn write_editors(
    config: &Config,
    store: &Store,
    dirs: &Dirs,
    entries: &[ServerEntry],
    keep_unlisted: bool,
    ui: Ui,
) -> Exit {
    let report = write_all(store, &config.editors, dirs, entries, keep_unlisted).await;
    for w in &report.warnings {
        ui.warn(w);
    }
    for t in &report.targets {
        for n in &t.notes {
            ui.warn(n);
        }
        match &t.outcome {
            WriteOutcome::Written => ui.out(format!("wrote {}", t.path.display())),
            WriteOutcome::Unchanged => {
                tracing::debug!(path = %t.path.display(), "editor config unchanged")
            }
            WriteOutcome::Skipped(why) => ui.error(why),
        }
    }
    for e in &report.errors {
        ui.error(e);
    }
    if report.ok() {
        Exit::Success
    } else {
        Exit::Failure
    }
}

/// What the refresh step works with, for a command that refreshes or logs in.
fn refresh_ctx<'a>(
    store: &'a Store,
    http: &'a Http,
    policy: &'a crate::config::RefreshPolicy,
    clock: &'a dyn Clock,
) -> refresh::Ctx<'a> {
    refresh::Ctx {
        store,
        http,
        policy,
        clock,
    }
}

/// The store and the HTTP client, for commands that may fetch tokens.
fn open_store_and_http(config: &Config, ui: Ui) -> Result<(Store, Http), Exit> {
    let store = open_store(config, ui)?;
    let http = Http::with_proxy(config.http, &config.proxy).map_err(|e| {
        ui.error(e);
        Exit::Failure
    })?;
    Ok((store, http))
}

/// `render`: every editor target from the stored tokens, without any network call.
async fn render_cmd(config: &Config, keep: bool, dirs: &Dirs, clock: &dyn Clock, ui: Ui) -> Exit {
    let store = match open_store(config, ui) {
        Ok(s) => s,
        Err(e) => return e,
    };
    let (records, problems) =
        crate::selection::stored_tokens(config, Some(&store), clock.now(), false);
    for p in &problems {
        ui.warn(p);
    }
    let entries = crate::render::entries(config, &records);
    let exit = write_editors(config, &store, dirs, &entries, keep, ui).await;
    if keep { Exit::Failure } else { exit }
}

/// `headers [SERVER]`: the server's headers as one JSON object on stdout (Claude Code's
/// headersHelper runs this, naming the server in CLAUDE_CODE_MCP_SERVER_NAME). A token
/// expired or about to expire is refreshed first, within Claude Code's 10 s limit;
/// without a usable token nothing is printed and the exit code is 1.
async fn headers_cmd(
    config: &Config,
    server: Option<String>,
    env: &HashMap<String, String>,
    clock: &dyn Clock,
    ui: Ui,
) -> Exit {
    let Some(server) = server.or_else(|| {
        env.get("CLAUDE_CODE_MCP_SERVER_NAME")
            .filter(|s| !s.is_empty())
            .cloned()
    }) else {
        ui.error("name the server: `mcp-credd headers SERVER` (Claude Code sets CLAUDE_CODE_MCP_SERVER_NAME for its headersHelper)");
        return Exit::Usage;
    };
    let Some(s) = config.servers.iter().find(|s| s.name == server) else {
        let names: Vec<&str> = config.servers.iter().map(|s| s.name.as_str()).collect();
        let known = if names.is_empty() {
            "none is configured".to_string()
        } else {
            format!("configured: {}", names.join(", "))
        };
        ui.error(format!(
            "no server named `{}` in the configuration from {} ({known})",
            crate::sanitize::escape(&server),
            config.origin
        ));
        return Exit::Failure;
    };
    if s.auth == ServerAuth::None {
        // A server that needs no token has no headers: an empty object is its answer.
        println!("{{}}");
        return Exit::Success;
    }
    let needed = crate::selection::of_server(config, &s.auth);
    let work = async {
        let store = open_store(config, ui).map_err(|_| Vec::new())?;
        let http = refresh::on_demand_http(&config.http, &config.proxy).map_err(|e| vec![e])?;
        let mut records = HashMap::new();
        let mut problems = Vec::new();
        for id in needed {
            match refresh::usable_now(&config.refresh, &store, &http, id, clock).await {
                Ok(r) => {
                    records.insert(id.name.clone(), r);
                }
                Err(e) => problems.push(e),
            }
        }
        if problems.is_empty() {
            Ok(records)
        } else {
            Err(problems)
        }
    };
    let records = match tokio::time::timeout(refresh::ON_DEMAND_BUDGET, work).await {
        Ok(Ok(r)) => r,
        Ok(Err(problems)) => {
            for p in problems {
                ui.error(p);
            }
            ui.error(format!(
                "no usable token for server `{server}`; nothing printed"
            ));
            return Exit::Failure;
        }
        Err(_) => {
            ui.error(format!(
                "no usable token for server `{server}` within {}s (the identity provider is slow or another process holds the lock); nothing printed",
                refresh::ON_DEMAND_BUDGET.as_secs()
            ));
            return Exit::Failure;
        }
    };
    let Some(headers) = crate::render::entries(config, &records)
        .into_iter()
        .find(|e| e.name == server)
        .and_then(|e| e.headers)
    else {
        ui.error(format!(
            "no usable token for server `{server}`; nothing printed"
        ));
        return Exit::Failure;
    };
    let obj: serde_json::Map<String, serde_json::Value> = headers
        .into_iter()
        .map(|(k, v)| (k, serde_json::Value::String(v)))
        .collect();
    println!("{}", serde_json::Value::Object(obj));
    Exit::Success
}

/// `logout NAME|--all`: revoke where the provider can (RFC 7009), delete the token and
/// its state, rewrite the editor files without its headers, and say each step.
async fn logout_cmd(
    config: &Config,
    keep: bool,
    name: Option<String>,
    all: bool,
    dirs: &Dirs,
    clock: &dyn Clock,
    ui: Ui,
) -> Exit {
    let targets: Vec<&IdentityConfig> = if all {
        config.all_identities().collect()
    } else {
        let named = crate::selection::named(config, name.as_deref().unwrap_or_default());
        let Some(id) = ui.ok(named) else {
            return Exit::Config;
        };
        vec![id]
    };
    let (store, http) = match open_store_and_http(config, ui) {
        Ok(x) => x,
        Err(e) => return e,
    };
    let daemon_running = matches!(store.try_daemon_lock(), Ok(Err(_)));
    let mut exit = Exit::Success;
    for id in targets {
        let _lock = match store
            .lock(&id.name, std::time::Duration::from_secs(30))
            .await
        {
            Ok(l) => l,
            Err(e) => {
                ui.error(format!("{}: {e}", id.name));
                exit = exit.worst(Exit::Failure);
                continue;
            }
        };
        let file = token_file_name(id);
        let rec = store.read_token(&file).ok().flatten();
        match &rec {
            None => ui.out(format!("{}: no stored token", id.name)),
            Some(r) if !crate::binding::matches(r, id) => ui.out(format!(
                "{}: the stored token belongs to another identity (the configuration changed); not revoked",
                id.name
            )),
            Some(r) => revoke_all(id, r, &http, &store, clock.now(), ui).await,
        }
        match store.delete_token(&file).await {
            Ok(true) => ui.out(format!(
                "{}: deleted {}",
                id.name,
                store.dir().join(&file).display()
            )),
            Ok(false) => {}
            Err(e) => {
                ui.error(format!("{}: {e}", id.name));
                exit = exit.worst(Exit::Failure);
            }
        }
        if let Err(e) = store.delete_state(&id.name).await {
            ui.warn(format!("{}: {e}", id.name));
        }
        if daemon_running && id.egress().is_none() {
            ui.warn(format!(
                "{}: the running daemon obtains a new token for this machine identity; remove it from the configuration to stop that",
                id.name
            ));
        }
    }
    // Every editor file keeps its entries, without the headers of the tokens just removed.
    let (records, _) = crate::selection::stored_tokens(config, Some(&store), clock.now(), false);
    let entries = crate::render::entries(config, &records);
    let exit = exit.worst(write_editors(config, &store, dirs, &entries, keep, ui).await);
    if keep {
        // The entries of servers the unreadable source listed were kept verbatim, headers
        // (and so the removed tokens) included: not a clean logout.
        ui.error("the servers source could not be read, so the editor entries written for its servers still hold the removed token; restore it and run `mcp-credd render`");
        return exit.worst(Exit::Failure);
    }
    exit
}

/// Revokes what `rec` holds at the provider's revocation endpoint, if it has one.
async fn revoke_all(
    id: &IdentityConfig,
    rec: &TokenRecord,
    http: &Http,
    store: &Store,
    now: Ts,
    ui: Ui,
) {
    // A login's endpoints and client are those its token was obtained with (an MCP
    // login's), or its provider's as discovery completes them.
    let resolved = match id.login() {
        None => None,
        Some(l) => {
            let r = match l.mcp() {
                Some(m) => crate::mcpauth::interactive::for_refresh(m, http, store, rec)
                    .await
                    .map(|(r, _)| r),
                None => crate::identity::egress::discovered(http, l).await,
            };
            match r {
                Ok(r) => Some(r),
                Err(e) => {
                    ui.warn(format!("{}: {}; not revoked", id.name, e.message));
                    return;
                }
            }
        }
    };
    let (id, url) = match &resolved {
        Some(r) => (r.login().id, r.login().eg.def.revocation_url.clone()),
        None => (id, None),
    };
    // What is not revoked lapses at its expiry.
    let until = match rec.times().expiry {
        Expiry::At(t) => format!("until it expires {} ({})", human_utc(t), relative(t, now)),
        _ => "until the provider expires it".into(),
    };
    let Some(url) = url else {
        ui.out(format!(
            "{}: the provider has no revocation endpoint known to mcp-credd; the token stays valid there {until}",
            id.name
        ));
        return;
    };
    // The refresh token first: revoking it ends the grant at most providers.
    let mut tokens = Vec::new();
    if let Some(rt) = &rec.refresh_token {
        tokens.push((rt.expose(), "refresh_token", "refresh token"));
    }
    tokens.push((rec.access_token.expose(), "access_token", "access token"));
    for (token, hint, what) in tokens {
        match crate::identity::oauth::revoke(
            http,
            &url,
            token,
            hint,
            crate::identity::grant::Creds::of(id),
        )
        .await
        {
            Ok(()) => ui.out(format!("{}: revoked the {what} at {url}", id.name)),
            // RFC 7009 §2.2.1: this kind of token cannot be revoked there (self-contained
            // JWT access tokens, typically): it lapses at its expiry.
            Err(e) if e.oauth_error.as_deref() == Some("unsupported_token_type") => {
                ui.out(format!(
                    "{}: the provider does not revoke {what}s; this one stays valid there {until}",
                    id.name
                ))
            }
            Err(e) => ui.warn(format!(
                "{}: the {what} was not revoked ({}); it is deleted here anyway",
                id.name, e.message
            )),
        }
    }
}

/// `token NAME`: the identity's current access token on stdout, for scripts (like
/// `gh auth token`); refreshed first when expired or about to expire.
async fn token_cmd(config: &Config, name: &str, clock: &dyn Clock, ui: Ui) -> Exit {
    let Some(id) = ui.ok(crate::selection::named(config, name)) else {
        return Exit::Config;
    };
    let work = async {
        let store = open_store(config, ui).map_err(|_| String::new())?;
        let http = refresh::on_demand_http(&config.http, &config.proxy)?;
        refresh::usable_now(&config.refresh, &store, &http, id, clock).await
    };
    match tokio::time::timeout(refresh::ON_DEMAND_BUDGET, work).await {
        Ok(Ok(rec)) => match crate::render::bearer_of(id, &rec) {
            Some(t) => {
                println!("{t}");
                Exit::Success
            }
            None => {
                ui.error(format!("{}: the stored token has no ID token", id.name));
                Exit::Failure
            }
        },
        Ok(Err(e)) => {
            if !e.is_empty() {
                ui.error(e);
            }
            Exit::Failure
        }
        Err(_) => {
            ui.error(format!(
                "{}: no token within {}s",
                id.name,
                refresh::ON_DEMAND_BUDGET.as_secs()
            ));
            Exit::Failure
        }
    }
}

/// Logs one egress identity in and reports it.
async fn login_one(
    l: crate::config::Login<'_>,
    ctx: &refresh::Ctx<'_>,
    opts: &crate::login::LoginOptions,
    ui: Ui,
) -> (Option<TokenRecord>, Exit) {
    let id = l.id;
    let say = |s: String| println!("{}", escape_keep_newlines(&s));
    match refresh::login_and_store(l, ctx, opts.clone(), &say).await {
        Ok(rec) => {
            ui.out(format!(
                "{}: logged in, {}",
                id.name,
                describe_expiry(&rec, ctx.clock.now())
            ));
            if rec.refresh_token.is_none() && rec.times().expiry != Expiry::Never {
                ui.warn(format!(
                    "{}: the provider gave no refresh token, so this token cannot be renewed: log in again when it expires. {}",
                    id.name,
                    crate::login::no_refresh_token_hint(l)
                ));
            }
            (Some(rec), Exit::Success)
        }
        Err(e) => {
            ui.error(format!("{}: {}", id.name, e.message));
            (
                ctx.store.read_token(&token_file_name(id)).ok().flatten(),
                Exit::ReauthRequired,
            )
        }
    }
}

/// `mcp-credd login [NAME]`.
async fn login_cmd(
    config: &Config,
    keep: bool,
    name: Option<String>,
    opts: &crate::login::LoginOptions,
    dirs: &Dirs,
    clock: &dyn Clock,
    ui: Ui,
) -> Exit {
    let Some(targets) = ui.ok(crate::selection::to_log_in(config, name.as_deref())) else {
        return Exit::Config;
    };
    let (store, http) = match open_store_and_http(config, ui) {
        Ok(x) => x,
        Err(e) => return e,
    };
    let ctx = refresh_ctx(&store, &http, &config.refresh, clock);
    let mut exit = Exit::Success;
    let mut logged_in = false;
    for l in targets {
        let id = l.id;
        // Without a name: exactly those `status` reports as needing a login.
        if name.is_none() {
            let row = crate::selection::status_row(config, Some(&store), id, clock.now());
            if row.state != status::State::NeedsLogin {
                let why = match row.state {
                    status::State::Valid | status::State::Expiring => "already logged in",
                    _ => "holds a refresh token; `mcp-credd --egress-only` renews it",
                };
                ui.out(format!(
                    "{}: {why} (status: {})",
                    id.name,
                    row.state.as_str()
                ));
                continue;
            }
        }
        let (_, ex) = login_one(l, &ctx, opts, ui).await;
        logged_in |= ex == Exit::Success;
        exit = exit.worst(if ex == Exit::ReauthRequired {
            Exit::Failure
        } else {
            ex
        });
    }
    // A login that failed changes no file.
    if !logged_in {
        return exit;
    }
    // Render with every stored token, so editors see the new login at once.
    let (records, _) = crate::selection::stored_tokens(config, Some(&store), clock.now(), false);
    let entries = crate::render::entries(config, &records);
    exit.worst(write_editors(config, &store, dirs, &entries, keep, ui).await)
}

fn describe_expiry(rec: &TokenRecord, now: Ts) -> String {
    match rec.times().expiry {
        Expiry::At(t) => format!("expires {} ({})", human_utc(t), relative(t, now)),
        Expiry::Never => "never expires".into(),
        Expiry::Unknown => {
            "expiry unknown (the provider did not say); it will be refreshed on schedule".into()
        }
    }
}

/// Runs the shared refresh step for a machine-to-machine identity and tells the user.
async fn ensure_m2m(
    id: &IdentityConfig,
    ctx: &refresh::Ctx<'_>,
    force: bool,
    ui: Ui,
) -> (Option<TokenRecord>, Exit) {
    let (outcome, notes) = refresh::ensure(id, ctx, force).await;
    for n in notes {
        ui.warn(n);
    }
    let now = ctx.clock.now();
    match outcome {
        Outcome::Reused(rec) => {
            ui.out(format!(
                "{}: stored token still valid, {}; use --force to replace it",
                id.name,
                describe_expiry(&rec, now)
            ));
            (Some(rec), Exit::Success)
        }
        Outcome::Refreshed(rec) => {
            if rec.expiry_source == Some(ExpirySource::Unknown) {
                ui.warn(format!(
                    "{}: the provider gave no expiry (no expires_in, not a JWT); it will be refreshed every {}",
                    id.name,
                    crate::timefmt::short_duration(ctx.policy.unknown_expiry_interval_ms)
                ));
            }
            ui.out(format!(
                "{}: new token obtained, {}",
                id.name,
                describe_expiry(&rec, now)
            ));
            (Some(rec), Exit::Success)
        }
        Outcome::Failed { error, kept } if error.kind == FailureKind::ReauthRequired => {
            // As `status` says it. Nothing is said of the stored token: after a refresh that
            // an MCP server refused (a step-up), it is that refused token.
            ui.error(format!("{}: needs login: {}", id.name, error.message));
            (kept, Exit::ReauthRequired)
        }
        Outcome::Failed { error, kept } => {
            ui.error(format!("{}: {}", id.name, error.message));
            if let Some(rec) = &kept {
                ui.out(format!(
                    "{}: kept the stored token, {}",
                    id.name,
                    describe_expiry(rec, now)
                ));
            }
            (kept, Exit::Failure)
        }
    }
}

fn status_cmd(config: &Config, json: bool, clock: &dyn Clock, ui: Ui) -> Exit {
    let now = clock.now();
    // `status` only reads: it does not create the tokens directory.
    let store = if config.tokens_dir.exists() {
        open_store(config, ui).ok()
    } else {
        None
    };
    let rows = config
        .all_identities()
        .map(|id| crate::selection::status_row(config, store.as_ref(), id, now))
        .collect();
    // What the daemon could not write (its last render), as it recorded it.
    let unwritable_targets = store
        .as_ref()
        .and_then(|s| {
            crate::store::atomic::read_private(&s.private_path(daemon::UNWRITABLE_FILE), 0o600)
                .ok()
                .flatten()
        })
        .and_then(|(bytes, _)| serde_json::from_slice::<daemon::UnwritableTargets>(&bytes).ok())
        .map(|d| d.targets)
        .unwrap_or_default();
    let report = status::Report {
        schema: 1,
        generated_at: crate::timefmt::rfc3339(now),
        tokens_dir: config.tokens_dir.clone(),
        identities: rows,
        unwritable_targets,
    };
    print_report(json, &report, || status::render_table(&report, now));
    if report
        .identities
        .iter()
        .any(|r| r.state == status::State::NeedsLogin)
    {
        Exit::ReauthRequired
    } else if report.identities.iter().all(|r| r.state.usable())
        && report.unwritable_targets.is_empty()
    {
        Exit::Success
    } else {
        Exit::Failure
    }
}
