//! `mcp-credd daemon`: the refresh scheduler. Keeps every identity's token fresh, re-renders
//! the MCP configs when tokens change, reloads on config edits and SIGHUP, refreshes all on
//! SIGUSR1, stops cleanly on SIGTERM/SIGINT, and speaks systemd's readiness protocol. It
//! never forks: systemd (or the user's terminal) supervises it.
//!
//! The decisions live in `schedule::slots`; this module is the event loop around them.

pub mod mem;
pub mod sd;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tracing::{error, info, warn};

use crate::clock::{Clock, Ts};
use crate::config::load::Loaded;
use crate::config::{Config, ConfigError, IdentityConfig};
use crate::dirs::Dirs;
use crate::exit::Exit;
use crate::failure::FailureKind;
use crate::failure::random_unit;
use crate::identity::oauth::Http;
use crate::refresh::{self, Outcome, token_file_name};
use crate::render::write::{Outcome as WriteOutcome, Report, write_all};
use crate::render::{ServerEntry, entries};
use crate::schedule::plan::{Expiry, TokenTimes};
use crate::schedule::slots::Schedule;
use crate::store::{Store, TokenRecord};
use crate::timefmt::short_duration;

/// Things that happen to the daemon from outside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// SIGHUP, or the config / env file changed.
    Reload,
    /// SIGUSR1.
    RefreshAll,
    /// SIGTERM, SIGINT.
    Stop,
    /// A token file was written by someone (a `login` or one-shot in another terminal).
    TokensChanged,
}

/// Refreshes one identity (`force`: even if still valid). The real one is
/// `refresh::ensure`; loop tests pass their own.
pub type RefreshFn = Arc<
    dyn Fn(Arc<IdentityConfig>, bool) -> Pin<Box<dyn Future<Output = Outcome> + Send>>
        + Send
        + Sync,
>;

/// Reloads the configuration (the same files as at start).
pub type Loader = Box<dyn FnMut() -> Result<Loaded, ConfigError> + Send>;

/// How long in-flight refreshes may take to finish after a stop request. Their writes are
/// atomic, so abandoning one after this is safe.
const DRAIN: Duration = Duration::from_secs(3);
/// The longest a token change waits to reach the editor files while other refreshes run.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Config files are often written in several steps; wait this long for the last one.
const RELOAD_SETTLE: Duration = Duration::from_millis(200);

pub struct Daemon {
    config: Config,
    /// The configured identities, kept equal to `config`'s.
    ids: Identities,
    pub store: Arc<Store>,
    pub clock: Arc<dyn Clock>,
    pub notifier: sd::Notifier,
    pub loader: Loader,
    /// `None`: the real refresh against the identity providers.
    pub refresher: Option<RefreshFn>,
    /// Where the editors' files are (from the injected HOME / XDG_CONFIG_HOME).
    dirs: Dirs,
    /// The servers source could not be read: entries already written are kept.
    pub keep_unlisted: bool,
    /// The unit is `Type=notify-reload`: say RELOADING=1 on reload (other types ignore it
    /// or, before systemd 253, do not expect it).
    pub notify_reload: bool,
    /// Editor files that could not be written (path, why), for STATUS= and `status`.
    /// `None` until the first render (a record left by an earlier run is replaced).
    unwritable: Option<Vec<(String, String)>>,
    /// The token files the watcher follows; kept equal to the configured identities'.
    pub watched: WatchedTokens,
    schedule: Schedule,
    records: HashMap<String, TokenRecord>,
    /// The entries of the last render started: an unchanged set is not written again.
    last_entries: Option<Vec<ServerEntry>>,
    /// The render in flight, and whether another was asked for meanwhile.
    rendering: Option<tokio::task::JoinHandle<Report>>,
    render_again: bool,
    /// Identities whose hook already ran in the current failure streak.
    hooked: HashSet<String>,
    http: Arc<Http>,
}
/// The configured identities, shared with the refresh tasks (an `Arc` each, so that
/// spawning a refresh copies a pointer) and found by name in constant time. Rebuilt only
/// when the configuration changes.
#[derive(Default)]
struct Identities {
    list: Vec<Arc<IdentityConfig>>,
    by_name: HashMap<String, Arc<IdentityConfig>>,
}

impl Identities {
    fn of(config: &Config) -> Identities {
        let list: Vec<Arc<IdentityConfig>> =
            config.all_identities().cloned().map(Arc::new).collect();
        let by_name = list.iter().map(|i| (i.name.clone(), i.clone())).collect();
        Identities { list, by_name }
    }

    fn get(&self, name: &str) -> Option<&Arc<IdentityConfig>> {
        self.by_name.get(name)
    }
}

/// The loop's own state between two wake-ups.
struct Loop {
    sem: Arc<Semaphore>,
    tasks: JoinSet<(String, Outcome)>,
    /// Token changes are rendered in batches: at once when no refresh is running, else at
    /// most every FLUSH_EVERY. Rendering after each of a thousand refreshes (or re-reading
    /// every token file after each of our own writes) would make a big setup quadratic.
    dirty: bool,
    /// A token file changed on disk (another process wrote it): re-read before rendering.
    reread: bool,
    last_flush: tokio::time::Instant,
    /// Work since the daemon last went idle: memory to give back before sleeping.
    busy: bool,
    ready: bool,
    last_status: String,
}

/// What woke the loop.
enum Wake {
    Timer,
    Refreshed(Box<Result<(String, Outcome), tokio::task::JoinError>>),
    Rendered(Result<Report, tokio::task::JoinError>),
    Event(Event),
}

impl Daemon {
    pub fn new(
        config: Config,
        store: Arc<Store>,
        clock: Arc<dyn Clock>,
        notifier: sd::Notifier,
        loader: Loader,
        dirs: Dirs,
    ) -> Result<Daemon, String> {
        let http = Arc::new(Http::with_proxy(config.http, &config.proxy)?);
        let schedule = Schedule::new(config.refresh);
        Ok(Daemon {
            ids: Identities::of(&config),
            config,
            store,
            clock,
            notifier,
            loader,
            refresher: None,
            dirs,
            keep_unlisted: false,
            notify_reload: false,
            unwritable: None,
            watched: Default::default(),
            schedule,
            records: HashMap::new(),
            last_entries: None,
            rendering: None,
            render_again: false,
            hooked: HashSet::new(),
            http,
        })
    }

    fn times_of(&self, id: &IdentityConfig) -> Option<TokenTimes> {
        self.records
            .get(&id.name)
            .filter(|r| crate::binding::matches(r, id))
            .map(TokenRecord::times)
    }

    /// Makes the watcher follow exactly the configured identities' token files.
    fn watch_token_files(&self) {
        let files: HashSet<String> = self.ids.list.iter().map(|i| token_file_name(i)).collect();
        if let Ok(mut w) = self.watched.write() {
            *w = files;
        }
    }

    /// Re-reads every identity's token file into the schedule.
    fn reread_tokens(&mut self) {
        for id in self.ids.list.clone() {
            match self.store.read_token(&token_file_name(&id)) {
                Ok(Some(r)) => {
                    self.records.insert(id.name.clone(), r);
                }
                Ok(None) => {
                    self.records.remove(&id.name);
                }
                Err(e) => warn!(identity = %id.name, error = %e, "cannot read the token file"),
            }
            let t = self.times_of(&id);
            self.schedule.set_token(&id.name, t);
        }
    }

    /// Starts writing the editor files from the current records, unless they would not
    /// change. The write runs as its own task (it may wait for the render lock a one-shot
    /// run holds); a request made meanwhile is served when it is done.
    fn start_render(&mut self) {
        if self.rendering.is_some() {
            self.render_again = true;
            return;
        }
        let now_entries = entries(&self.config, &self.records);
        if self.last_entries.as_ref() == Some(&now_entries) {
            return;
        }
        let (store, editors, dirs, keep) = (
            self.store.clone(),
            self.config.editors.clone(),
            self.dirs.clone(),
            self.keep_unlisted,
        );
        let job_entries = now_entries.clone();
        self.rendering = Some(tokio::spawn(async move {
            write_all(&store, &editors, &dirs, &job_entries, keep).await
        }));
        self.last_entries = Some(now_entries);
    }

    /// A render finished: says what it did, records the files it could not write, and
    /// starts the render asked for while it ran.
    async fn rendered(&mut self, done: Result<Report, tokio::task::JoinError>) {
        self.rendering = None;
        match done {
            Ok(report) => self.report_render(&report).await,
            Err(e) => {
                error!(error = %e, "writing the editor configs failed");
                // Written or not, the next request must try again.
                self.last_entries = None;
            }
        }
        if std::mem::take(&mut self.render_again) {
            self.start_render();
        }
    }

    /// Waits for the render in flight, if any.
    async fn finish_render(&mut self) {
        if let Some(job) = self.rendering.as_mut() {
            let done = job.await;
            self.render_again = false;
            self.rendered(done).await;
        }
    }

    async fn report_render(&mut self, report: &Report) {
        for w in &report.warnings {
            warn!("{w}");
        }
        for t in &report.targets {
            for n in &t.notes {
                warn!("{n}");
            }
            match &t.outcome {
                WriteOutcome::Written => info!(path = %t.path.display(), "config written"),
                WriteOutcome::Unchanged => {}
                WriteOutcome::Skipped(why) => error!("{why}"),
            }
        }
        for e in &report.errors {
            error!("{e}");
        }
        let unwritable: Vec<(String, String)> = report
            .targets
            .iter()
            .filter_map(|t| match &t.outcome {
                WriteOutcome::Skipped(why) => Some((t.path.display().to_string(), why.clone())),
                _ => None,
            })
            .collect();
        self.targets_changed(unwritable).await;
    }

    /// Records the editor files that could not be written (for `status`), and runs
    /// `on_error` once for each newly failing one.
    async fn targets_changed(&mut self, unwritable: Vec<(String, String)>) {
        if self.unwritable.as_ref() == Some(&unwritable) {
            return;
        }
        let before = self.unwritable.take().unwrap_or_default();
        for (path, why) in &unwritable {
            if !before.iter().any(|(p, _)| p == path)
                && let Some(argv) = &self.config.hooks.on_error
            {
                run_hook(argv, "error", "editors", &format!("{path}: {why}"));
            }
        }
        let now = crate::timefmt::rfc3339(self.clock.now());
        let doc = UnwritableTargets {
            schema: 1,
            updated_at: now,
            targets: unwritable
                .iter()
                .map(|(path, error)| crate::status::UnwritableTarget {
                    path: path.clone(),
                    error: error.clone(),
                })
                .collect(),
        };
        let mut bytes = serde_json::to_vec_pretty(&doc).expect("serializes");
        bytes.push(b'\n');
        if let Err(e) =
            crate::store::write_off_runtime(self.store.private_path(UNWRITABLE_FILE), bytes, 0o600)
                .await
        {
            warn!(error = %e, "cannot record the editor files that could not be written");
        }
        self.unwritable = Some(unwritable);
    }

    fn status_line(&self, now: Ts) -> String {
        let ids = &self.ids.list;
        let mut valid = 0;
        let mut failing = Vec::new();
        for id in ids {
            let slot = self.schedule.slot(&id.name);
            let usable = self.times_of(id).is_some_and(|t| match t.expiry {
                Expiry::At(e) => e > now,
                _ => true,
            });
            if slot.is_some_and(|s| s.needs_attention()) || !usable {
                failing.push(id.name.as_str());
            } else {
                valid += 1;
            }
        }
        let mut line = format!("{valid} of {} identities valid", ids.len());
        if !failing.is_empty() {
            line.push_str(&format!("; needs attention: {}", failing.join(", ")));
        }
        if let Some(u) = self.unwritable.as_ref().filter(|u| !u.is_empty()) {
            let paths: Vec<&str> = u.iter().map(|(p, _)| p.as_str()).collect();
            line.push_str(&format!("; cannot write: {}", paths.join(", ")));
        }
        if let Some(d) = self.schedule.next_deadline() {
            line.push_str(&format!(
                "; next refresh in {}",
                short_duration(d.ms_since(now).max(0))
            ));
        }
        line
    }

    fn spawn_due(&mut self, tasks: &mut JoinSet<(String, Outcome)>, sem: &Arc<Semaphore>) {
        let now = self.clock.now();
        for name in self.schedule.due(now) {
            let Some(id) = self.ids.get(&name).cloned() else {
                continue;
            };
            let forced = self.schedule.slot(&name).is_some_and(|s| s.forced());
            self.schedule.start(&name);
            let sem = sem.clone();
            let fut: Pin<Box<dyn Future<Output = Outcome> + Send>> = match &self.refresher {
                Some(f) => f(id.clone(), forced),
                None => {
                    let (store, http, clock, policy) = (
                        self.store.clone(),
                        self.http.clone(),
                        self.clock.clone(),
                        self.config.refresh,
                    );
                    let id = id.clone();
                    Box::pin(async move {
                        let ctx = refresh::Ctx {
                            store: &store,
                            http: &http,
                            policy: &policy,
                            clock: clock.as_ref(),
                        };
                        let (o, notes) = refresh::ensure(&id, &ctx, forced).await;
                        for n in notes {
                            warn!(identity = %id.name, "{n}");
                        }
                        o
                    })
                }
            };
            tasks.spawn(async move {
                let _permit = sem.acquire_owned().await;
                (name, fut.await)
            });
        }
    }

    fn finished(&mut self, name: String, outcome: Outcome) {
        let now = self.clock.now();
        let Some(id) = self.ids.get(&name).cloned() else {
            return;
        };
        match &outcome {
            Outcome::Refreshed(rec) | Outcome::Reused(rec) => {
                if matches!(outcome, Outcome::Refreshed(_)) {
                    info!(identity = %name, expires_at = ?rec.expires_at, "token refreshed");
                }
                self.records.insert(name.clone(), rec.clone());
                let t = self.times_of(&id);
                self.schedule.succeeded(&name, t);
                self.hooked.remove(&name);
            }
            Outcome::Failed { error, kept } => {
                match kept {
                    Some(k) => self.records.insert(name.clone(), k.clone()),
                    None => self.records.remove(&name),
                };
                let t = self.times_of(&id);
                self.schedule.failed(
                    &name,
                    error.kind,
                    error.retry_after_ms,
                    t,
                    now,
                    random_unit(),
                );
                let retry = self
                    .schedule
                    .deadline(&name)
                    .map(|d| short_duration(d.ms_since(now).max(0)));
                warn!(identity = %name, kind = error.kind.as_str(), retry_in = ?retry, "refresh failed: {}", error.message);
                let expired = t.is_none_or(|t| matches!(t.expiry, Expiry::At(e) if e <= now));
                let hook = match error.kind {
                    FailureKind::ReauthRequired => Some((
                        "reauth_required",
                        self.config.hooks.on_reauth_required.clone(),
                    )),
                    FailureKind::Permanent => Some(("error", self.config.hooks.on_error.clone())),
                    FailureKind::Transient if expired => {
                        Some(("error", self.config.hooks.on_error.clone()))
                    }
                    FailureKind::Transient => None,
                };
                if let Some((event, Some(argv))) = hook
                    && self.hooked.insert(name.clone())
                {
                    run_hook(&argv, event, &name, &error.message);
                }
            }
        }
    }

    fn reload(&mut self) {
        if self.notify_reload {
            self.notifier.reloading();
        }
        match (self.loader)() {
            Ok(loaded) => {
                for w in &loaded.warnings {
                    warn!("{w}");
                }
                if let Some(why) = &loaded.servers_unavailable {
                    error!("{why}");
                }
                self.keep_unlisted = loaded.servers_unavailable.is_some();
                let new = loaded.config;
                if new.tokens_dir != self.config.tokens_dir {
                    error!(old = %self.config.tokens_dir.display(), new = %new.tokens_dir.display(), "tokens_dir changed; restart the daemon to move to it (keeping the running configuration)");
                } else {
                    // A proxy set or changed in the secrets file reaches both HTTP stacks.
                    if new.http != self.config.http || new.proxy != self.config.proxy {
                        match Http::with_proxy(new.http, &new.proxy) {
                            Ok(h) => self.http = Arc::new(h),
                            Err(e) => error!("{e}"),
                        }
                    }
                    self.config = new;
                    self.ids = Identities::of(&self.config);
                    self.schedule.set_identities(
                        self.ids.list.iter().map(|i| i.name.as_str()),
                        self.config.refresh,
                    );
                    self.hooked.clear();
                    self.watch_token_files();
                    self.reread_tokens();
                    self.last_entries = None;
                    self.start_render();
                    info!(
                        identities = self.ids.list.len(),
                        servers = self.config.servers.len(),
                        "configuration reloaded"
                    );
                }
            }
            Err(e) => error!("configuration not reloaded, keeping the running one: {e}"),
        }
        self.notifier.ready();
    }

    /// Runs until a Stop event (or the event channel closes). Returns the exit code.
    pub async fn run(mut self, mut events: mpsc::Receiver<Event>) -> Exit {
        self.schedule.set_identities(
            self.ids.list.iter().map(|i| i.name.as_str()),
            self.config.refresh,
        );
        self.watch_token_files();
        self.reread_tokens();
        self.start_render();
        let mut st = Loop {
            sem: Arc::new(Semaphore::new(self.config.refresh.concurrency)),
            tasks: JoinSet::new(),
            dirty: false,
            reread: false,
            last_flush: tokio::time::Instant::now(),
            busy: true,
            ready: false,
            last_status: String::new(),
        };
        info!(identities = self.ids.list.len(), tokens_dir = %self.store.dir().display(), "daemon started");
        loop {
            let sleep = self.tick(&mut st);
            let wake = tokio::select! {
                _ = tokio::time::sleep(sleep) => Wake::Timer,
                Some(done) = st.tasks.join_next(), if !st.tasks.is_empty() => Wake::Refreshed(Box::new(done)),
                done = async { self.rendering.as_mut().expect("checked").await }, if self.rendering.is_some() => Wake::Rendered(done),
                ev = events.recv() => Wake::Event(ev.unwrap_or(Event::Stop)),
            };
            match wake {
                Wake::Timer => {}
                Wake::Refreshed(done) => match *done {
                    Ok((name, outcome)) => {
                        self.finished(name, outcome);
                        st.dirty = true;
                        st.busy = true;
                    }
                    Err(e) => error!(error = %e, "a refresh task failed"),
                },
                Wake::Rendered(done) => self.rendered(done).await,
                Wake::Event(ev) => {
                    st.busy = true;
                    if self.on_event(ev, &mut events, &mut st).await.is_break() {
                        break;
                    }
                }
            }
        }
        self.shut_down(st).await
    }

    /// One turn of the loop: starts due refreshes, renders batched token changes, tells
    /// systemd how things stand, and says how long to sleep.
    fn tick(&mut self, st: &mut Loop) -> Duration {
        self.spawn_due(&mut st.tasks, &st.sem);
        if (st.dirty || st.reread)
            && (st.tasks.is_empty() || st.last_flush.elapsed() >= FLUSH_EVERY)
        {
            if st.reread {
                self.reread_tokens();
            }
            self.start_render();
            (st.dirty, st.reread) = (false, false);
            st.last_flush = tokio::time::Instant::now();
        }
        let now = self.clock.now();
        // Ready once the stored tokens are read and rendered: a login or a slow provider
        // must not hold systemd's start job (90 s by default). The status, too, speaks of
        // tokens the editor files hold: it waits for the render in flight.
        if self.rendering.is_none() {
            if !st.ready {
                st.ready = true;
                self.notifier.ready();
            }
            let line = self.status_line(now);
            if line != st.last_status {
                self.notifier.status(&line);
                st.last_status = line;
            }
        }
        let mut sleep = Duration::from_millis(self.schedule.sleep_ms(now) as u64);
        if st.dirty || st.reread {
            sleep = sleep.min(FLUSH_EVERY.saturating_sub(st.last_flush.elapsed()));
        }
        if st.busy && st.tasks.is_empty() && !st.dirty && !st.reread && self.rendering.is_none() {
            mem::release();
            st.busy = false;
        }
        sleep
    }

    /// Handles an event from outside; `Break` to stop.
    async fn on_event(
        &mut self,
        first: Event,
        events: &mut mpsc::Receiver<Event>,
        st: &mut Loop,
    ) -> ControlFlow<()> {
        let mut pending = vec![first];
        if first == Event::Reload {
            // Let a multi-step save finish, and fold repeated events into one.
            tokio::time::sleep(RELOAD_SETTLE).await;
            while let Ok(e) = events.try_recv() {
                pending.push(e);
            }
        }
        if pending.contains(&Event::Stop) {
            return ControlFlow::Break(());
        }
        if pending.contains(&Event::Reload) {
            let before = self.config.refresh.concurrency;
            self.reload();
            if self.config.refresh.concurrency != before {
                st.sem = Arc::new(Semaphore::new(self.config.refresh.concurrency));
            }
        }
        if pending.contains(&Event::TokensChanged) {
            st.reread = true;
        }
        if pending.contains(&Event::RefreshAll) {
            info!("refreshing every identity now (SIGUSR1)");
            self.schedule.force_all();
        }
        ControlFlow::Continue(())
    }

    /// Lets refreshes in flight finish (up to DRAIN), then writes the editor files one
    /// last time (up to DRAIN again: a one-shot run holding the render lock writes them
    /// itself from the same token files).
    async fn shut_down(mut self, mut st: Loop) -> Exit {
        self.notifier.stopping();
        info!("stopping");
        let drained = tokio::time::timeout(DRAIN, async {
            while let Some(done) = st.tasks.join_next().await {
                if let Ok((name, outcome)) = done {
                    self.finished(name, outcome);
                }
            }
        })
        .await;
        if drained.is_err() {
            warn!(
                "abandoning refreshes still running after {}s (files are written atomically)",
                DRAIN.as_secs()
            );
            st.tasks.abort_all();
        }
        let flushed = tokio::time::timeout(DRAIN, async {
            self.finish_render().await;
            self.start_render();
            self.finish_render().await;
        })
        .await;
        if flushed.is_err() {
            warn!(
                "the editor configs were not rewritten before stopping: another mcp-credd process has held the render lock for over {}s",
                DRAIN.as_secs()
            );
        }
        Exit::Success
    }
}

/// The daemon's record of editor files it could not write, read by `status`.
pub const UNWRITABLE_FILE: &str = "unwritable.json";

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UnwritableTargets {
    pub schema: u32,
    pub updated_at: String,
    pub targets: Vec<crate::status::UnwritableTarget>,
}

/// The variables a hook inherits: PATH, HOME, LANG, the session bus (so that the
/// README's `notify-send` hook reaches the desktop) and mcp-credd's own settings. Nothing
/// else: the daemon's environment may hold client secrets and passwords.
pub const HOOK_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "LANG",
    "XDG_RUNTIME_DIR",
    "DBUS_SESSION_BUS_ADDRESS",
    "MCP_CREDD_CONFIG",
    "MCP_CREDD_ENV_FILE",
    "MCP_CREDD_TOKENS_DIR",
    "MCP_CREDD_SERVERS_DIR",
    "MCP_CREDD_LOG",
];

/// Runs a hook command without waiting for it; it gets the details in its environment.
fn run_hook(argv: &[String], event: &str, identity: &str, message: &str) {
    let Some((prog, args)) = argv.split_first() else {
        return;
    };
    let mut cmd = tokio::process::Command::new(prog);
    cmd.args(args).env_clear();
    for k in HOOK_ENV {
        if let Some(v) = std::env::var_os(k) {
            cmd.env(k, v);
        }
    }
    cmd.env("MCP_CREDD_EVENT", event)
        .env("MCP_CREDD_IDENTITY", identity)
        .env("MCP_CREDD_MESSAGE", message)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    match cmd.spawn() {
        Ok(mut child) => {
            let prog = prog.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(Duration::from_secs(60), child.wait()).await {
                    Ok(Ok(st)) if !st.success() => warn!(hook = %prog, status = %st, "hook failed"),
                    Ok(Err(e)) => warn!(hook = %prog, error = %e, "hook failed"),
                    Err(_) => warn!(hook = %prog, "hook still running after 60s; killed"),
                    _ => {}
                }
            });
        }
        Err(e) => warn!(hook = %prog, error = %e, "cannot run hook"),
    }
}

/// Forwards SIGHUP, SIGUSR1, SIGTERM and SIGINT to the event channel, from a task on the
/// runtime (its signal driver, no thread of its own). Must be called inside the runtime.
pub fn forward_signals(tx: mpsc::Sender<Event>) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup())?;
    let mut usr1 = signal(SignalKind::user_defined1())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        loop {
            let ev = tokio::select! {
                Some(()) = hup.recv() => Event::Reload,
                Some(()) = usr1.recv() => Event::RefreshAll,
                Some(()) = term.recv() => Event::Stop,
                Some(()) = int.recv() => Event::Stop,
                else => break,
            };
            if tx.send(ev).await.is_err() {
                break;
            }
        }
    });
    Ok(())
}

/// The token file names the watcher reports changes of; the daemon replaces the set when
/// a reload adds or removes identities.
pub type WatchedTokens = Arc<std::sync::RwLock<HashSet<String>>>;

/// Watches the config file(s) and the tokens directory. The watcher stops when dropped.
pub fn watch(
    config_files: Vec<PathBuf>,
    tokens_dir: PathBuf,
    token_files: WatchedTokens,
    tx: mpsc::Sender<Event>,
) -> notify::Result<notify::RecommendedWatcher> {
    use notify::{EventKind, RecursiveMode, Watcher};
    let cfg = config_files.clone();
    let tdir = tokens_dir.clone();
    let mut w = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let Ok(ev) = res else { return };
        if matches!(ev.kind, EventKind::Access(_)) {
            return;
        }
        for p in &ev.paths {
            if cfg.iter().any(|c| c == p) {
                let _ = tx.try_send(Event::Reload);
            } else if p.parent() == Some(tdir.as_path())
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| token_files.read().is_ok_and(|t| t.contains(n)))
            {
                let _ = tx.try_send(Event::TokensChanged);
            }
        }
    })?;
    // Watch directories, not files: editors save by renaming a new file into place.
    let mut dirs: Vec<PathBuf> = config_files
        .iter()
        .filter_map(|c| c.parent().map(PathBuf::from))
        .collect();
    dirs.push(tokens_dir);
    dirs.sort();
    dirs.dedup();
    for d in dirs {
        if let Err(e) = w.watch(&d, RecursiveMode::NonRecursive) {
            warn!(dir = %d.display(), error = %e, "cannot watch for changes; use SIGHUP to reload");
        }
    }
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::config::{ClientAuth, Endpoint, HttpPolicy, Kind, Origin, RefreshPolicy};
    use crate::identity::FetchError;
    use crate::secret::Secret;
    use std::os::unix::net::UnixDatagram;
    use std::sync::Mutex;

    const MIN: i64 = 60_000;

    fn config(tokens: &std::path::Path) -> Config {
        Config {
            origin: Origin::File("/c.yaml".into()),
            tokens_dir: tokens.to_path_buf(),
            gateway_url: None,
            identities: vec![],
            ingress: Some(IdentityConfig {
                gateway: None,
                name: "ingress".into(),
                file_name: "ingress.json".into(),
                kind: Kind::OidcM2m {
                    audience: None,
                    resource: None,
                },
                provider_label: crate::config::ProviderLabel::OidcM2m,
                client_id: "c".into(),
                client_secret: Some(Secret::new("s")),
                scopes: vec![],
                endpoint: Endpoint::TokenUrl("https://idp.invalid/token".into()),
                client_auth: ClientAuth::Basic,
                extra_fields: vec![],
                extra_headers: vec![],
            }),
            servers: vec![],
            refresh: RefreshPolicy {
                jitter_fraction: 0.0,
                ..RefreshPolicy::default()
            },
            http: HttpPolicy::default(),
            hooks: Default::default(),
            editors: vec![crate::config::EditorSpec::Reference],
            proxy: Default::default(),
        }
    }

    fn record(now: Ts, life_ms: i64) -> TokenRecord {
        TokenRecord {
            expires_at: Some(now.plus_ms(life_ms).as_secs_f64()),
            client_id: Some("c".into()),
            identity: Some("ingress".into()),
            obtained_at: Some(now.as_secs_f64()),
            expiry_source: Some(crate::store::record::ExpirySource::ExpiresIn),
            ..TokenRecord::bare("oidc_m2m", &format!("tok-{}", now.0))
        }
    }

    #[test]
    fn identities_are_found_by_name_without_copies() {
        let d = tempfile::tempdir().unwrap();
        let ids = Identities::of(&config(d.path()));
        let found = ids.get("ingress").unwrap();
        // The very `Arc` the refresh tasks get: a lookup copies no identity.
        assert!(Arc::ptr_eq(found, &ids.list[0]));
        assert!(ids.get("nope").is_none());
    }

    /// What the fake refresher answers, in turn; the last answer repeats.
    #[derive(Clone, Copy)]
    enum Answer {
        Ok,
        Transient,
        Permanent,
        Hang,
    }

    struct Harness {
        calls: Arc<Mutex<Vec<bool>>>,
        clock: ManualClock,
        tx: mpsc::Sender<Event>,
        handle: tokio::task::JoinHandle<Exit>,
        notify: UnixDatagram,
        _dir: tempfile::TempDir,
    }

    fn start(answers: Vec<Answer>) -> Harness {
        start_with(answers, true)
    }

    fn start_with(answers: Vec<Answer>, notify_reload: bool) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let tokens = dir.path().join("tokens");
        let (store, _) = Store::open(&tokens).unwrap();
        let sock_path = dir.path().join("notify.sock");
        let notify = UnixDatagram::bind(&sock_path).unwrap();
        notify.set_nonblocking(true).unwrap();
        let clock = ManualClock::new(Ts(1_000 * MIN));
        let calls = Arc::new(Mutex::new(Vec::new()));
        let cfg = config(&tokens);
        let reload_cfg = cfg.clone();
        let loader: Loader = Box::new(move || {
            Ok(Loaded {
                config: reload_cfg.clone(),
                warnings: vec![],
                missing_secrets: vec![],
                servers_dir: None,
                servers_unavailable: None,
                secrets_file: None,
                tokens_dir_overridden: false,
                servers_dir_overridden: false,
            })
        });
        let store = Arc::new(store);
        let mut d = Daemon::new(
            cfg,
            store.clone(),
            Arc::new(clock.clone()),
            sd::Notifier::new(sock_path.to_str()),
            loader,
            Dirs::new(Some(dir.path().join("home")), None, false),
        )
        .unwrap();
        d.notify_reload = notify_reload;
        let (c2, k2) = (calls.clone(), clock.clone());
        let answers = Arc::new(Mutex::new(answers));
        d.refresher = Some(Arc::new(move |_id, forced| {
            let (calls, clock, answers, store) =
                (c2.clone(), k2.clone(), answers.clone(), store.clone());
            Box::pin(async move {
                calls.lock().unwrap().push(forced);
                let answer = {
                    let mut a = answers.lock().unwrap();
                    if a.len() > 1 { a.remove(0) } else { a[0] }
                };
                if let Answer::Hang = answer {
                    // A provider that never answers (or a login nobody completes).
                    std::future::pending::<()>().await;
                }
                let now = clock.now();
                match answer {
                    Answer::Hang => unreachable!("never answers"),
                    Answer::Ok => {
                        // Like the real refresher: the token is stored before it is reported.
                        let r = record(now, 60 * MIN);
                        store.write_token("ingress.json", &r).await.unwrap();
                        Outcome::Refreshed(r)
                    }
                    Answer::Transient => Outcome::Failed {
                        error: FetchError::transient("down"),
                        kept: None,
                    },
                    Answer::Permanent => Outcome::Failed {
                        error: FetchError::permanent("bad secret"),
                        kept: None,
                    },
                }
            })
        }));
        let (tx, rx) = mpsc::channel(16);
        let handle = tokio::spawn(d.run(rx));
        Harness {
            calls,
            clock,
            tx,
            handle,
            notify,
            _dir: dir,
        }
    }

    impl Harness {
        fn calls(&self) -> usize {
            self.calls.lock().unwrap().len()
        }
        fn messages(&self) -> Vec<String> {
            let mut out = Vec::new();
            let mut buf = [0u8; 512];
            while let Ok(n) = self.notify.recv(&mut buf) {
                out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
            out
        }
        async fn idle(&self, ms: u64) {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        async fn stop(self) -> Vec<String> {
            self.tx.send(Event::Stop).await.unwrap();
            let Harness { handle, notify, .. } = self;
            assert_eq!(handle.await.unwrap(), Exit::Success);
            let mut out = Vec::new();
            let mut buf = [0u8; 512];
            while let Ok(n) = notify.recv(&mut buf) {
                out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
            out
        }
    }

    #[tokio::test(start_paused = true)]
    async fn refreshes_at_start_then_on_schedule_and_after_clock_jumps() {
        let h = start(vec![Answer::Ok]);
        h.idle(100).await;
        assert_eq!(h.calls(), 1, "no token at start: refreshed at once");
        let first = h.messages();
        assert!(first.iter().any(|m| m == "READY=1"), "{first:?}");
        assert!(
            first
                .iter()
                .any(|m| m.starts_with("STATUS=1 of 1 identities valid; next refresh in 45m")),
            "{first:?}"
        );
        // Time passes by the wall clock only (tokio's clock stands still): nothing due yet.
        h.clock.advance_ms(44 * MIN);
        h.idle(20_000).await;
        assert_eq!(h.calls(), 1);
        // A jump past the refresh point (a suspended laptop waking up) is seen within one
        // check interval, without waiting for any timer set before the jump.
        h.clock.advance_ms(3 * 60 * MIN);
        h.idle(10_500).await;
        assert_eq!(h.calls(), 2);
        let msgs = h.stop().await;
        assert_eq!(
            msgs.last().map(String::as_str),
            Some("STOPPING=1"),
            "{msgs:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_are_retried_with_backoff_forever() {
        let h = start(vec![
            Answer::Transient,
            Answer::Transient,
            Answer::Transient,
            Answer::Ok,
        ]);
        h.idle(100).await;
        assert_eq!(h.calls(), 1);
        // Retries come no sooner than a tenth of the backoff step, and keep coming.
        for want in 2..=4 {
            h.clock.advance_ms(5 * MIN);
            h.idle(10_500).await;
            assert_eq!(h.calls(), want);
        }
        h.clock.advance_ms(5 * MIN);
        h.idle(10_500).await;
        assert_eq!(h.calls(), 4, "succeeded: back on the normal schedule");
        h.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_failures_wait_for_sigusr1() {
        let h = start(vec![Answer::Permanent, Answer::Ok]);
        h.idle(100).await;
        assert_eq!(h.calls(), 1);
        let msgs = h.messages();
        assert!(
            msgs.iter().any(|m| m.contains("needs attention: ingress")),
            "{msgs:?}"
        );
        h.clock.advance_ms(600 * MIN);
        h.idle(30_000).await;
        assert_eq!(h.calls(), 1, "no retry of a permanent failure");
        h.tx.send(Event::RefreshAll).await.unwrap();
        h.idle(100).await;
        assert_eq!(*h.calls.lock().unwrap(), vec![false, true]);
        h.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn ready_at_once_and_no_reloading_unless_the_unit_type_uses_it() {
        // The first refresh never finishes: systemd still hears READY=1 at once.
        let h = start_with(vec![Answer::Hang], false);
        h.idle(100).await;
        let first = h.messages();
        assert_eq!(h.calls(), 1, "the refresh is in flight");
        assert_eq!(
            first.first().map(String::as_str),
            Some("READY=1"),
            "{first:?}"
        );
        h.tx.send(Event::Reload).await.unwrap();
        h.idle(500).await;
        let msgs = h.messages();
        assert!(
            !msgs.iter().any(|m| m.starts_with("RELOADING=1")),
            "Type=notify (systemd < 253) gets no RELOADING=1: {msgs:?}"
        );
        assert!(msgs.iter().any(|m| m == "READY=1"), "{msgs:?}");
        h.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn reload_says_reloading_then_ready() {
        let h = start(vec![Answer::Ok]);
        h.idle(100).await;
        h.messages();
        h.tx.send(Event::Reload).await.unwrap();
        h.idle(500).await;
        let msgs = h.messages();
        let i = msgs
            .iter()
            .position(|m| m.starts_with("RELOADING=1\nMONOTONIC_USEC="))
            .expect("RELOADING");
        assert!(msgs[i..].iter().any(|m| m == "READY=1"), "{msgs:?}");
        assert_eq!(h.calls(), 1, "a reload does not refresh a valid token");
        h.stop().await;
    }
}
