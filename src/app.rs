//! Command glue: loads the config, runs the one-shot or `status`, prints what the user must
//! read, and picks the exit code. Network and file work happen here and in the modules it
//! calls; decisions come from the pure modules.

use std::collections::HashMap;
use std::time::Duration;

use crate::cli::{Cli, Command, OnceArgs};
use crate::clock::{Clock, Ts};
use crate::config::load::{LoadOptions, Loaded, load};
use crate::config::{Config, IdentityConfig, IdentityKind};
use crate::exit::Exit;
use crate::identity::FailureKind;
use crate::identity::oauth::{Http, client_credentials, resolve_token_endpoint};
use crate::identity::reply::{ExpirySource, TokenReply, expiry_of};
use crate::render::write::{Outcome, write_reference_copies};
use crate::schedule::plan::{Expiry, Standing, jitter_unit, standing};
use crate::status;
use crate::store::atomic::ReadError;
use crate::store::{IdentityState, Store, StoreError, TokenRecord};
use crate::timefmt::{human_utc, relative};

/// How long a run waits for another process that is refreshing the same identity. Longer
/// than one full retry cycle of a token request with the default HTTP policy.
const LOCK_WAIT: Duration = Duration::from_secs(180);

/// What the user reads: results on stdout, problems on stderr. Logs are separate (tracing).
#[derive(Clone, Copy, Debug)]
pub struct Ui {
    pub quiet: bool,
}

impl Ui {
    pub fn out(&self, s: impl AsRef<str>) {
        if !self.quiet {
            println!("{}", s.as_ref());
        }
    }
    pub fn warn(&self, s: impl AsRef<str>) {
        if !self.quiet {
            eprintln!("warning: {}", s.as_ref());
        }
    }
    pub fn error(&self, s: impl AsRef<str>) {
        eprintln!("error: {}", s.as_ref());
    }
}

/// The token file of an identity; `ingress.json` for the gateway identity, as the
/// reference tool names it.
pub fn token_file_name(id: &IdentityConfig) -> String {
    format!("{}.json", id.name)
}

pub async fn run(cli: Cli, clock: &dyn Clock, process_env: &HashMap<String, String>) -> Exit {
    let ui = Ui { quiet: cli.quiet };
    let opts = LoadOptions {
        config: cli.config.clone(),
        env_file: cli.env_file.clone(),
        tokens_dir: cli.tokens_dir.clone(),
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
    match cli.command {
        Some(Command::Status { json }) => status_cmd(&loaded.config, json, clock, ui),
        None => oneshot(loaded, &cli.once, clock, ui).await,
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

async fn oneshot(loaded: Loaded, args: &OnceArgs, clock: &dyn Clock, ui: Ui) -> Exit {
    let config = loaded.config;
    if let Some(p) = &args.provider {
        ui.error(format!("no egress provider named `{p}` is configured (the configuration from {} has no egress providers)", config.origin));
        return Exit::Config;
    }
    let store = match open_store(&config, ui) {
        Ok(s) => s,
        Err(e) => return e,
    };
    let http = match Http::new(config.http) {
        Ok(h) => h,
        Err(e) => {
            ui.error(e);
            return Exit::Failure;
        }
    };
    let mut exit = Exit::Success;
    if args.egress_only {
        ui.out("no egress provider is configured; nothing to do for --egress-only");
    }
    let ingress_record = match &config.ingress {
        Some(id) if !args.egress_only => {
            let (rec, ex) = ensure_m2m(id, &store, &config, &http, args.force, clock, ui).await;
            exit = exit.worst(ex);
            rec
        }
        Some(id) => store.read_token(&token_file_name(id)).ok().flatten(),
        None => {
            if !args.egress_only {
                ui.out("no ingress identity is configured");
            }
            None
        }
    };
    let entries = crate::render::entries(&config, ingress_record.as_ref());
    for t in write_reference_copies(store.dir(), &entries) {
        match t.outcome {
            Outcome::Written => ui.out(format!("wrote {}", t.path.display())),
            Outcome::Unchanged => {
                tracing::debug!(path = %t.path.display(), "config copy unchanged")
            }
            Outcome::Skipped(why) => {
                ui.error(why);
                exit = exit.worst(Exit::Failure);
            }
        }
    }
    exit
}

fn usage_notes(label: &str) -> String {
    let which = match label {
        "cognito_m2m" => "Cognito M2M",
        "keycloak_m2m" => "Keycloak M2M",
        "entra_m2m" => "Entra ID M2M",
        _ => "OAuth M2M",
    };
    format!("This token is for INGRESS authentication to the MCP Gateway ({which})")
}

/// The token file record for a fresh reply. `sent_at` is when the request left, so the
/// recorded expiry errs early rather than late.
pub fn build_record(
    id: &IdentityConfig,
    reply: &TokenReply,
    sent_at: Ts,
    token_url: &str,
) -> TokenRecord {
    let (expiry, source) = expiry_of(reply, sent_at);
    let expires_at = match expiry {
        Expiry::At(t) => Some(t),
        _ => None,
    };
    let mut extra = serde_json::Map::new();
    for (k, v) in &id.extra_fields {
        extra.insert(k.clone(), serde_json::Value::String(v.clone()));
    }
    let cognito = id.kind == IdentityKind::CognitoM2m;
    TokenRecord {
        provider: id.provider_label.clone(),
        access_token: reply.access_token.clone(),
        refresh_token: reply.refresh_token.clone(),
        expires_at: expires_at.map(Ts::as_secs_f64),
        expires_at_human: expires_at.map(human_utc),
        token_type: reply.token_type.clone(),
        client_id: Some(id.client_id.clone()),
        saved_at: human_utc(sent_at),
        user_pool_id: if cognito {
            id.user_pool_id.clone()
        } else {
            None
        },
        region: if cognito { id.region.clone() } else { None },
        usage_notes: Some(usage_notes(&id.provider_label)),
        identity: Some(id.name.clone()),
        obtained_at: Some(sent_at.as_secs_f64()),
        expiry_source: Some(source.as_str().to_string()),
        scope: reply
            .scope
            .clone()
            .or_else(|| (!id.scopes.is_empty()).then(|| id.scopes.join(" "))),
        token_endpoint: Some(token_url.to_string()),
        extra,
    }
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

/// Makes sure a machine-to-machine identity holds a usable token: reuses a valid one,
/// otherwise obtains a new one. On failure the stored token is left as it was.
async fn ensure_m2m(
    id: &IdentityConfig,
    store: &Store,
    config: &Config,
    http: &Http,
    force: bool,
    clock: &dyn Clock,
    ui: Ui,
) -> (Option<TokenRecord>, Exit) {
    let file = token_file_name(id);
    let _lock = match store.lock(&id.name, LOCK_WAIT).await {
        Ok(l) => l,
        Err(e) => {
            ui.error(format!("{}: {e}", id.name));
            return (store.read_token(&file).ok().flatten(), Exit::Failure);
        }
    };
    // Read after taking the lock: another process may just have refreshed it.
    let existing = match store.read_token(&file) {
        Ok(r) => r,
        Err(e @ (StoreError::Read(ReadError::Symlink(_)) | StoreError::Corrupt(..))) => {
            ui.warn(format!("{e}; a new token will replace it"));
            None
        }
        Err(e) => {
            ui.error(format!("{}: {e}", id.name));
            return (None, Exit::Failure);
        }
    };
    let now = clock.now();
    if let Some(rec) = &existing {
        let same = rec.client_id.as_deref() == Some(id.client_id.as_str())
            && rec.provider == id.provider_label;
        let t = rec.times();
        if same
            && !force
            && standing(
                &t,
                &config.refresh,
                jitter_unit(&id.name, t.obtained_at),
                now,
            ) == Standing::Valid
        {
            ui.out(format!(
                "{}: stored token still valid, {}; use --force to replace it",
                id.name,
                describe_expiry(rec, now)
            ));
            return (existing, Exit::Success);
        }
    }
    let mut state = store.read_state(&id.name);
    state.last_attempt_at = Some(now.as_secs_f64());
    tracing::info!(identity = %id.name, force, "requesting a new token");
    let result = async {
        let url = resolve_token_endpoint(http, id).await?;
        let sent_at = clock.now();
        let reply = client_credentials(http, id, &url).await?;
        Ok::<_, crate::identity::FetchError>(build_record(id, &reply, sent_at, &url))
    }
    .await;
    match result {
        Ok(rec) => {
            if let Err(e) = store.write_token(&file, &rec) {
                ui.error(format!("{}: {e}", id.name));
                record_failure(store, &id.name, &mut state, &e.to_string(), "permanent", ui);
                return (existing, Exit::Failure);
            }
            state.last_success_at = Some(clock.now().as_secs_f64());
            state.last_error = None;
            state.last_error_kind = None;
            if let Err(e) = store.write_state(&id.name, &state) {
                ui.warn(format!("{}: cannot record the run's outcome: {e}", id.name));
            }
            if rec.expiry_source.as_deref() == Some(ExpirySource::Unknown.as_str()) {
                ui.warn(format!("{}: the provider gave no expiry (no expires_in, not a JWT); it will be refreshed every {}", id.name, crate::timefmt::short_duration(config.refresh.unknown_expiry_interval_ms)));
            }
            ui.out(format!(
                "{}: new token obtained, {}",
                id.name,
                describe_expiry(&rec, clock.now())
            ));
            (Some(rec), Exit::Success)
        }
        Err(e) => {
            let kind = match e.kind {
                FailureKind::Transient => "transient",
                FailureKind::Permanent => "permanent",
                FailureKind::ReauthRequired => "reauth_required",
            };
            ui.error(format!("{}: {}", id.name, e.message));
            record_failure(store, &id.name, &mut state, &e.message, kind, ui);
            if let Some(rec) = &existing {
                ui.out(format!(
                    "{}: kept the stored token, {}",
                    id.name,
                    describe_expiry(rec, clock.now())
                ));
            }
            let exit = if e.kind == FailureKind::ReauthRequired {
                Exit::ReauthRequired
            } else {
                Exit::Failure
            };
            (existing, exit)
        }
    }
}

fn record_failure(
    store: &Store,
    name: &str,
    state: &mut IdentityState,
    message: &str,
    kind: &str,
    ui: Ui,
) {
    state.last_error = Some(message.to_string());
    state.last_error_kind = Some(kind.to_string());
    if let Err(e) = store.write_state(name, state) {
        ui.warn(format!("{name}: cannot record the run's outcome: {e}"));
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
    let mut rows = Vec::new();
    if let Some(id) = &config.ingress {
        let file = token_file_name(id);
        let (record, state) = match &store {
            Some(s) => (
                s.read_token(&file).map_err(|e| e.to_string()),
                s.read_state(&id.name),
            ),
            None => (Ok(None), IdentityState::default()),
        };
        let input = status::Input {
            name: &id.name,
            provider: &id.provider_label,
            token_file: config.tokens_dir.join(&file),
            record: record.as_ref().map(Option::as_ref).map_err(Clone::clone),
            state: &state,
        };
        rows.push(status::row(&input, &config.refresh, now));
    }
    let report = status::Report {
        schema: 1,
        generated_at: crate::timefmt::rfc3339(now),
        tokens_dir: config.tokens_dir.clone(),
        identities: rows,
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("status serializes")
        );
    } else {
        print!("{}", status::render_table(&report, now));
    }
    if report
        .identities
        .iter()
        .any(|r| r.state == status::State::NeedsLogin)
    {
        Exit::ReauthRequired
    } else if report.identities.iter().all(|r| r.state.usable()) {
        Exit::Success
    } else {
        Exit::Failure
    }
}
