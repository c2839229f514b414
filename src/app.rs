//! Command glue: loads the config, runs the one-shot or `status`, prints what the user must
//! read, and picks the exit code. Network and file work happen here and in the modules it
//! calls; decisions come from the pure modules.

use std::collections::HashMap;

use crate::cli::{Cli, Command, OnceArgs};
use crate::clock::{Clock, Ts};
use crate::config::load::{LoadOptions, Loaded, load};
use crate::config::{Config, IdentityConfig};
use crate::exit::Exit;
use crate::identity::FailureKind;
use crate::identity::oauth::Http;
use crate::identity::reply::ExpirySource;
use crate::refresh::{self, Outcome, token_file_name};
use crate::render::write::{self as render_write, write_reference_copies};
use crate::schedule::plan::Expiry;
use crate::status;
use crate::store::{IdentityState, Store, TokenRecord};
use crate::timefmt::{human_utc, relative};

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
            render_write::Outcome::Written => ui.out(format!("wrote {}", t.path.display())),
            render_write::Outcome::Unchanged => {
                tracing::debug!(path = %t.path.display(), "config copy unchanged")
            }
            render_write::Outcome::Skipped(why) => {
                ui.error(why);
                exit = exit.worst(Exit::Failure);
            }
        }
    }
    exit
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
    store: &Store,
    config: &Config,
    http: &Http,
    force: bool,
    clock: &dyn Clock,
    ui: Ui,
) -> (Option<TokenRecord>, Exit) {
    let ctx = refresh::Ctx {
        store,
        http,
        policy: &config.refresh,
        clock,
    };
    let (outcome, notes) = refresh::ensure(id, &ctx, force).await;
    for n in notes {
        ui.warn(n);
    }
    let now = clock.now();
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
            if rec.expiry_source.as_deref() == Some(ExpirySource::Unknown.as_str()) {
                ui.warn(format!(
                    "{}: the provider gave no expiry (no expires_in, not a JWT); it will be refreshed every {}",
                    id.name,
                    crate::timefmt::short_duration(config.refresh.unknown_expiry_interval_ms)
                ));
            }
            ui.out(format!(
                "{}: new token obtained, {}",
                id.name,
                describe_expiry(&rec, now)
            ));
            (Some(rec), Exit::Success)
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
            let exit = if error.kind == FailureKind::ReauthRequired {
                Exit::ReauthRequired
            } else {
                Exit::Failure
            };
            (kept, exit)
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
