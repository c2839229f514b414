//! `status`: each identity's standing, computed purely from config, stored files and `now`,
//! and shown as a table for people or as stable JSON (schema 1) for programs.

use std::path::PathBuf;

use serde::Serialize;

use crate::clock::Ts;
use crate::config::RefreshPolicy;
use crate::failure::FailureKind;
use crate::schedule::plan::{Expiry, Standing, jitter_unit, refresh_at, standing};
use crate::store::record::ExpirySource;
use crate::store::{IdentityState, TokenRecord};
use crate::timefmt::{human_utc, relative, rfc3339};

/// How far ahead `status` warns that a refresh token will stop working (7 days).
pub const REFRESH_TOKEN_WARNING_MS: i64 = 7 * 86_400_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Usable and not yet due for refresh.
    Valid,
    /// Usable, due for refresh.
    Expiring,
    /// Past its expiry.
    Expired,
    /// No token yet; a run will obtain one (machine-to-machine identities).
    Missing,
    /// A person must log in (again).
    NeedsLogin,
    /// The last attempt failed and no usable token is stored.
    Error,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Valid => "valid",
            State::Expiring => "expiring",
            State::Expired => "expired",
            State::Missing => "missing",
            State::NeedsLogin => "needs login",
            State::Error => "error",
        }
    }
    /// Does the identity hold a token an editor can use right now?
    pub fn usable(self) -> bool {
        matches!(self, State::Valid | State::Expiring)
    }
}

/// Input for one identity.
pub struct Input<'a> {
    pub name: &'a str,
    pub provider: &'a str,
    pub token_file: PathBuf,
    pub record: Result<Option<&'a TokenRecord>, String>,
    pub state: &'a IdentityState,
    /// Only a person's login can create this identity's first token (egress).
    pub needs_login_when_missing: bool,
    /// Why the stored token is not used (it was obtained for another identity), if so.
    pub not_used: Option<String>,
    /// The identity lives on a refresh token (egress, service accounts): say if one is held.
    pub uses_refresh_token: bool,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Row {
    pub name: String,
    pub provider: String,
    pub state: State,
    pub token_file: PathBuf,
    pub expires_at: Option<String>,
    pub expires_at_epoch: Option<f64>,
    pub expires_in_seconds: Option<i64>,
    pub expiry_source: Option<ExpirySource>,
    pub refresh_at: Option<String>,
    pub obtained_at: Option<String>,
    pub refresh_token_expires_at: Option<String>,
    #[serde(skip)]
    pub refresh_token_expires_at_epoch: Option<f64>,
    pub last_attempt_at: Option<String>,
    pub last_success_at: Option<String>,
    pub last_error: Option<String>,
    /// Why the stored token is not used: it was obtained for another identity than the one
    /// configured now (another user, issuer, client, scopes...).
    pub not_used: Option<String>,
    /// Whether a refresh token is held; `null` for identities that do not use one.
    pub refresh_token_held: Option<bool>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Report {
    pub schema: u32,
    pub generated_at: String,
    pub tokens_dir: PathBuf,
    pub identities: Vec<Row>,
    /// Editor files the daemon could not write (its last render), if any.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unwritable_targets: Vec<UnwritableTarget>,
}

/// An editor file the daemon could not write, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct UnwritableTarget {
    pub path: String,
    pub error: String,
}

/// The lines `status` prints about editor files the daemon could not write.
fn unwritable_lines(report: &Report) -> String {
    let mut out = String::new();
    for t in &report.unwritable_targets {
        out.push_str(&format!(
            "not written by the daemon: {}: {}\n",
            t.path, t.error
        ));
    }
    if !report.unwritable_targets.is_empty() {
        out.push_str("the service may write only where its unit allows: run `mcp-credd install-service` again, then `systemctl --user daemon-reload && systemctl --user restart mcp-credd`\n");
    }
    out
}

fn ts_str(secs: Option<f64>) -> Option<String> {
    secs.map(|s| rfc3339(Ts::from_secs_f64(s)))
}

pub fn row(input: &Input, policy: &RefreshPolicy, now: Ts) -> Row {
    let st = input.state;
    let mut last_error = st.last_error.clone();
    let record = match &input.record {
        // A token of another identity is as good as none.
        Ok(_) if input.not_used.is_some() => None,
        Ok(r) => *r,
        Err(e) => {
            last_error = Some(e.clone());
            None
        }
    };
    let held = record.map(|r| r.refresh_token.is_some());
    let failed_last = st.last_error.is_some();
    let reauth = st.last_error_kind == Some(FailureKind::ReauthRequired);
    let (state, times) = match record {
        None if reauth || (input.needs_login_when_missing && input.record.is_ok()) => {
            (State::NeedsLogin, None)
        }
        None if failed_last || input.record.is_err() => (State::Error, None),
        None => (State::Missing, None),
        Some(r) => {
            let t = r.times();
            let s = match standing(&t, policy, jitter_unit(input.name, t.obtained_at), now) {
                // The grant is gone: whatever the stored token still does, a login is due.
                _ if reauth => State::NeedsLogin,
                Standing::Valid => State::Valid,
                Standing::Expiring => State::Expiring,
                Standing::Expired if reauth => State::NeedsLogin,
                // Only a login can replace a person's token that has no refresh token.
                Standing::Expired
                    if input.needs_login_when_missing && r.refresh_token.is_none() =>
                {
                    State::NeedsLogin
                }
                Standing::Expired if failed_last => State::Error,
                Standing::Expired => State::Expired,
            };
            (s, Some((r, t)))
        }
    };
    let (expires_at, expires_in, source, refresh, obtained, rt_exp) = match times {
        None => (None, None, None, None, None, None),
        Some((r, t)) => {
            let exp = match t.expiry {
                Expiry::At(e) => Some(e),
                _ => None,
            };
            let source = r.expiry_source.or(Some(if exp.is_some() {
                ExpirySource::ExpiresIn
            } else {
                ExpirySource::Unknown
            }));
            let refresh = refresh_at(&t, policy, jitter_unit(input.name, t.obtained_at));
            let rt = r.refresh_token_expires_at;
            (
                exp,
                exp.map(|e| e.ms_since(now).div_euclid(1000)),
                source,
                refresh,
                r.obtained_at,
                rt,
            )
        }
    };
    Row {
        name: input.name.to_string(),
        provider: input.provider.to_string(),
        state,
        token_file: input.token_file.clone(),
        expires_at: expires_at.map(rfc3339),
        expires_at_epoch: expires_at.map(Ts::as_secs_f64),
        expires_in_seconds: expires_in,
        expiry_source: source,
        refresh_at: refresh.filter(|r| r.0 != i64::MIN).map(rfc3339),
        obtained_at: ts_str(obtained),
        refresh_token_expires_at: ts_str(rt_exp),
        refresh_token_expires_at_epoch: rt_exp,
        last_attempt_at: ts_str(st.last_attempt_at),
        last_success_at: ts_str(st.last_success_at),
        last_error,
        not_used: input.not_used.clone(),
        refresh_token_held: if input.uses_refresh_token { held } else { None },
    }
}

/// The human table.
pub fn render_table(report: &Report, now: Ts) -> String {
    let mut out = String::new();
    if report.identities.is_empty() {
        out.push_str("no identities configured\n");
        out.push_str(&unwritable_lines(report));
        return out;
    }
    let w_name = report
        .identities
        .iter()
        .map(|r| r.name.len())
        .max()
        .unwrap_or(0)
        .max(8);
    let w_prov = report
        .identities
        .iter()
        .map(|r| r.provider.len())
        .max()
        .unwrap_or(0)
        .max(8);
    out.push_str(&format!(
        "{:<w_name$}  {:<w_prov$}  {:<11}  EXPIRES\n",
        "IDENTITY", "PROVIDER", "STATE"
    ));
    for r in &report.identities {
        let expires = match (&r.expires_at_epoch, r.expiry_source) {
            (Some(e), _) => {
                let t = Ts::from_secs_f64(*e);
                format!("{} ({})", human_utc(t), relative(t, now))
            }
            (None, Some(ExpirySource::Never)) => "never".to_string(),
            (None, Some(_)) => "unknown".to_string(),
            (None, None) => "-".to_string(),
        };
        out.push_str(&format!(
            "{:<w_name$}  {:<w_prov$}  {:<11}  {expires}\n",
            r.name,
            r.provider,
            r.state.as_str()
        ));
        if let Some(why) = &r.not_used {
            out.push_str(&format!("{:w_name$}  stored token not used: {why}\n", ""));
        }
        match (r.refresh_token_held, r.expiry_source) {
            (Some(false), Some(ExpirySource::Never)) => {}
            (Some(false), _) => out.push_str(&format!(
                "{:w_name$}  no refresh token held: a login is needed once it expires\n",
                ""
            )),
            (Some(true), _) if r.refresh_token_expires_at_epoch.is_none() => {
                out.push_str(&format!(
                    "{:w_name$}  refresh token held (the provider gave no expiry)\n",
                    ""
                ))
            }
            _ => {}
        }
        if let Some(rt) = &r.refresh_token_expires_at_epoch {
            let t = Ts::from_secs_f64(*rt);
            // Say it days ahead, so a login can be planned rather than discovered.
            let soon = if t.ms_since(now) < REFRESH_TOKEN_WARNING_MS {
                "warning: "
            } else {
                ""
            };
            out.push_str(&format!(
                "{:w_name$}  {soon}refresh token held, expires {} ({}); log in again before then\n",
                "",
                human_utc(t),
                relative(t, now)
            ));
        }
        if let Some(e) = &r.last_error {
            out.push_str(&format!("{:w_name$}  last error: {e}\n", ""));
        }
    }
    out.push_str(&unwritable_lines(report));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn rec(obtained: f64, expires: Option<f64>) -> TokenRecord {
        TokenRecord {
            expires_at: expires,
            obtained_at: Some(obtained),
            ..TokenRecord::bare("cognito_m2m", "t")
        }
    }

    fn state_of(
        record: Result<Option<&TokenRecord>, String>,
        st: &IdentityState,
        now_s: i64,
    ) -> State {
        let i = Input {
            name: "ingress",
            provider: "p",
            token_file: "/t/ingress.json".into(),
            record,
            state: st,
            needs_login_when_missing: false,
            not_used: None,
            uses_refresh_token: false,
        };
        let p = RefreshPolicy {
            jitter_fraction: 0.0,
            ..RefreshPolicy::default()
        };
        row(&i, &p, Ts::from_secs(now_s)).state
    }

    #[test]
    fn states() {
        let ok = IdentityState::default();
        let failed = IdentityState {
            last_error: Some("boom".into()),
            last_error_kind: Some(FailureKind::Transient),
            ..Default::default()
        };
        let reauth = IdentityState {
            last_error: Some("gone".into()),
            last_error_kind: Some(FailureKind::ReauthRequired),
            ..Default::default()
        };
        let r = rec(0.0, Some(3600.0));
        assert_eq!(state_of(Ok(Some(&r)), &ok, 60), State::Valid);
        assert_eq!(state_of(Ok(Some(&r)), &ok, 2800), State::Expiring);
        assert_eq!(state_of(Ok(Some(&r)), &ok, 3600), State::Expired);
        assert_eq!(state_of(Ok(Some(&r)), &failed, 60), State::Valid);
        assert_eq!(state_of(Ok(Some(&r)), &failed, 4000), State::Error);
        assert_eq!(state_of(Ok(Some(&r)), &reauth, 4000), State::NeedsLogin);
        assert_eq!(state_of(Ok(Some(&r)), &reauth, 60), State::NeedsLogin);
        assert_eq!(state_of(Ok(None), &ok, 0), State::Missing);
        assert_eq!(state_of(Ok(None), &failed, 0), State::Error);
        assert_eq!(state_of(Ok(None), &reauth, 0), State::NeedsLogin);
        assert_eq!(state_of(Err("corrupt".into()), &ok, 0), State::Error);
    }

    #[test]
    fn egress_rows_say_why_a_token_is_not_used_and_whether_a_refresh_token_is_held() {
        let st = IdentityState::default();
        let r = rec(0.0, Some(3600.0));
        let p = RefreshPolicy {
            jitter_fraction: 0.0,
            ..RefreshPolicy::default()
        };
        let input = |rec, not_used: Option<&str>| Input {
            name: "local",
            provider: "local",
            token_file: "/t/local-egress.json".into(),
            record: Ok(Some(rec)),
            state: &st,
            needs_login_when_missing: true,
            not_used: not_used.map(str::to_string),
            uses_refresh_token: true,
        };
        let row_at = |i: &Input, s| row(i, &p, Ts::from_secs(s));
        // No refresh token: valid while it lasts, then only a login helps.
        let a = row_at(&input(&r, None), 60);
        assert_eq!((a.state, a.refresh_token_held), (State::Valid, Some(false)));
        assert_eq!(row_at(&input(&r, None), 4000).state, State::NeedsLogin);
        let mut with_rt = r.clone();
        with_rt.refresh_token = Some(Secret::new("rt"));
        assert_eq!(row_at(&input(&with_rt, None), 4000).state, State::Expired);
        let why = "it was obtained for client `a`, the configuration says `b`";
        let b = row_at(&input(&r, Some(why)), 60);
        assert_eq!(b.state, State::NeedsLogin);
        assert_eq!(b.expires_at, None, "nothing of the foreign token is shown");
        let now = Ts::from_secs(60);
        let report = Report {
            schema: 1,
            generated_at: rfc3339(now),
            tokens_dir: "/t".into(),
            identities: vec![a, b],
            unwritable_targets: vec![],
        };
        let t = render_table(&report, now);
        assert!(
            t.contains("no refresh token held: a login is needed once it expires"),
            "{t}"
        );
        assert!(t.contains(&format!("stored token not used: {why}")), "{t}");
    }

    #[test]
    fn table_and_json() {
        let r = rec(0.0, Some(3600.0));
        let st = IdentityState::default();
        let i = Input {
            name: "ingress",
            provider: "cognito_m2m",
            token_file: "/t/ingress.json".into(),
            record: Ok(Some(&r)),
            state: &st,
            needs_login_when_missing: false,
            not_used: None,
            uses_refresh_token: false,
        };
        let now = Ts::from_secs(1080);
        let p = RefreshPolicy {
            jitter_fraction: 0.0,
            ..RefreshPolicy::default()
        };
        let report = Report {
            schema: 1,
            generated_at: rfc3339(now),
            tokens_dir: "/t".into(),
            identities: vec![row(&i, &p, now)],
            unwritable_targets: vec![],
        };
        let table = render_table(&report, now);
        assert_eq!(
            table,
            "IDENTITY  PROVIDER     STATE        EXPIRES\ningress   cognito_m2m  valid        1970-01-01 01:00:00 UTC (in 42m)\n"
        );
        let j = serde_json::to_value(&report).unwrap();
        assert_eq!(j["identities"][0]["state"], "valid");
        assert_eq!(j["identities"][0]["expires_in_seconds"], 2520);
        assert_eq!(j["identities"][0]["refresh_at"], "1970-01-01T00:45:00Z");
        assert_eq!(j["identities"][0]["expires_at"], "1970-01-01T01:00:00Z");
    }
}
