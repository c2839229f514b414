//! The daemon's schedule as a pure state machine: one slot per identity, holding its stored
//! token's times and its `Phase` (scheduled, forced, in flight, backing off, blocked), and
//! answering "what is due, and when is the next deadline". Events (a refresh finished, a
//! token file changed, a signal) go in; decisions come out. No I/O, no clock: `now` is an argument.

use std::collections::BTreeMap;

use crate::clock::Ts;
use crate::config::RefreshPolicy;
use crate::failure::FailureKind;
use crate::schedule::plan::{TokenTimes, jitter_unit, refresh_at};

/// What is going on with one identity, besides its stored token.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Phase {
    /// Nothing pending: the token's own refresh time decides (now, without a token).
    #[default]
    Scheduled,
    /// Refresh at the next opportunity even if the token is still valid (SIGUSR1).
    /// `failures` counts transient failures not yet followed by a success.
    Forced { failures: u32 },
    /// A refresh is running. `forced`: a SIGUSR1 came meanwhile, so should it fail, the
    /// next attempt is at once.
    InFlight { failures: u32, forced: bool },
    /// After `failures` consecutive transient failures: the next attempt is at `retry_at`.
    BackingOff { failures: u32, retry_at: Ts },
    /// A permanent failure or lost grant: no automatic retry until something changes
    /// (config reload, a new token file, SIGUSR1).
    Blocked(FailureKind),
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Slot {
    /// The stored token's times, when there is a token of this identity as configured.
    pub token: Option<TokenTimes>,
    pub phase: Phase,
}

impl Slot {
    /// Consecutive transient failures.
    pub fn failures(&self) -> u32 {
        match self.phase {
            Phase::Forced { failures }
            | Phase::InFlight { failures, .. }
            | Phase::BackingOff { failures, .. } => failures,
            Phase::Scheduled | Phase::Blocked(_) => 0,
        }
    }

    /// Why no automatic retry happens, if blocked.
    pub fn blocked(&self) -> Option<FailureKind> {
        match self.phase {
            Phase::Blocked(k) => Some(k),
            _ => None,
        }
    }

    /// Whether the next refresh was forced (SIGUSR1): it replaces a still-valid token.
    pub fn forced(&self) -> bool {
        matches!(self.phase, Phase::Forced { .. })
    }

    pub fn in_flight(&self) -> bool {
        matches!(self.phase, Phase::InFlight { .. })
    }

    /// Blocked, or failing and retrying.
    pub fn needs_attention(&self) -> bool {
        self.blocked().is_some() || self.failures() > 0
    }
}

#[derive(Clone, Debug)]
pub struct Schedule {
    slots: BTreeMap<String, Slot>,
    policy: RefreshPolicy,
}

impl Schedule {
    pub fn new(policy: RefreshPolicy) -> Self {
        Schedule {
            slots: BTreeMap::new(),
            policy,
        }
    }

    pub fn policy(&self) -> &RefreshPolicy {
        &self.policy
    }

    /// Makes the set of identities exactly `names`, keeping what is known of the ones that
    /// stay. Blocks are lifted: the configuration may have fixed them.
    pub fn set_identities<'a>(
        &mut self,
        names: impl IntoIterator<Item = &'a str>,
        policy: RefreshPolicy,
    ) {
        self.policy = policy;
        let mut next = BTreeMap::new();
        for n in names {
            let mut s = self.slots.remove(n).unwrap_or_default();
            if let Phase::Blocked(_) = s.phase {
                s.phase = Phase::Scheduled;
            }
            next.insert(n.to_string(), s);
        }
        self.slots = next;
    }

    pub fn slot(&self, name: &str) -> Option<&Slot> {
        self.slots.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.slots.keys().map(String::as_str)
    }

    /// The stored token changed (read from disk). A new token lifts a block, a first one
    /// included: someone logged in or fixed things from another terminal.
    pub fn set_token(&mut self, name: &str, token: Option<TokenTimes>) {
        if let Some(s) = self.slots.get_mut(name)
            && s.token != token
        {
            if token.is_some() {
                s.phase = match s.phase {
                    Phase::InFlight { forced, .. } => Phase::InFlight {
                        failures: 0,
                        forced,
                    },
                    Phase::Forced { .. } => Phase::Forced { failures: 0 },
                    Phase::Scheduled | Phase::BackingOff { .. } | Phase::Blocked(_) => {
                        Phase::Scheduled
                    }
                };
            }
            s.token = token;
        }
    }

    /// When `name` should next be refreshed; `None` if never (blocked, in flight, or a
    /// token that does not expire).
    pub fn deadline(&self, name: &str) -> Option<Ts> {
        let s = self.slots.get(name)?;
        match (s.phase, &s.token) {
            (Phase::InFlight { .. } | Phase::Blocked(_), _) => None,
            (Phase::Forced { .. }, _) | (Phase::Scheduled, None) => Some(Ts(i64::MIN)),
            (Phase::BackingOff { retry_at, .. }, _) => Some(retry_at),
            (Phase::Scheduled, Some(t)) => {
                refresh_at(t, &self.policy, jitter_unit(name, t.obtained_at))
            }
        }
    }

    /// Identities due at `now`, in name order.
    pub fn due(&self, now: Ts) -> Vec<String> {
        self.slots
            .keys()
            .filter(|n| self.deadline(n).is_some_and(|d| d <= now))
            .cloned()
            .collect()
    }

    /// The earliest deadline, if any.
    pub fn next_deadline(&self) -> Option<Ts> {
        self.slots.keys().filter_map(|n| self.deadline(n)).min()
    }

    /// How long to sleep from `now`: until the next deadline, but never longer than the
    /// check interval, so wall-clock jumps (suspend) are noticed.
    pub fn sleep_ms(&self, now: Ts) -> i64 {
        let cap = self.policy.check_interval_ms;
        match self.next_deadline() {
            Some(d) => d.ms_since(now).clamp(0, cap),
            None => cap,
        }
    }

    pub fn start(&mut self, name: &str) {
        if let Some(s) = self.slots.get_mut(name)
            && !s.in_flight()
        {
            s.phase = Phase::InFlight {
                failures: s.failures(),
                forced: false,
            };
        }
    }

    pub fn succeeded(&mut self, name: &str, token: Option<TokenTimes>) {
        if let Some(s) = self.slots.get_mut(name) {
            *s = Slot {
                token,
                phase: Phase::Scheduled,
            };
        }
    }

    /// A refresh failed. Transient failures back off exponentially with full jitter
    /// (`unit` in [0, 1)), capped, forever, and no sooner than the server's Retry-After
    /// (`retry_after_ms`, capped too); others block the slot.
    pub fn failed(
        &mut self,
        name: &str,
        kind: FailureKind,
        retry_after_ms: Option<u64>,
        kept: Option<TokenTimes>,
        now: Ts,
        unit: f64,
    ) {
        let policy = self.policy;
        let Some(s) = self.slots.get_mut(name) else {
            return;
        };
        s.token = kept;
        let failures = s.failures();
        let forced = matches!(s.phase, Phase::InFlight { forced: true, .. });
        s.phase = match kind {
            // A SIGUSR1 came while it ran: try again at once.
            FailureKind::Transient if forced => Phase::Forced {
                failures: failures.saturating_add(1),
            },
            FailureKind::Transient => {
                // Full jitter, but never sooner than a tenth of the step: no hot loops.
                let backoff = policy.retry_backoff();
                let step = backoff.ceiling_ms(failures);
                let d = backoff.delay_ms(failures, unit, retry_after_ms);
                Phase::BackingOff {
                    failures: failures.saturating_add(1),
                    retry_at: now.plus_ms(d.max(step / 10).max(100) as i64),
                }
            }
            other => Phase::Blocked(other),
        };
    }

    /// SIGUSR1: everything, blocked or not, is refreshed at once.
    pub fn force_all(&mut self) {
        for s in self.slots.values_mut() {
            s.phase = match s.phase {
                Phase::InFlight { .. } => Phase::InFlight {
                    failures: 0,
                    forced: true,
                },
                _ => Phase::Forced { failures: 0 },
            };
        }
    }

    pub fn any_in_flight(&self) -> bool {
        self.slots.values().any(Slot::in_flight)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::plan::Expiry;

    const MIN: i64 = 60_000;

    fn policy() -> RefreshPolicy {
        RefreshPolicy {
            jitter_fraction: 0.0,
            ..RefreshPolicy::default()
        }
    }

    fn hour_token(obtained_min: i64) -> Option<TokenTimes> {
        Some(TokenTimes {
            obtained_at: Some(Ts(obtained_min * MIN)),
            expiry: Expiry::At(Ts((obtained_min + 60) * MIN)),
        })
    }

    fn sched() -> Schedule {
        let mut s = Schedule::new(policy());
        s.set_identities(["a", "b"], policy());
        s
    }

    #[test]
    fn missing_tokens_are_due_now_and_valid_ones_later() {
        let mut s = sched();
        assert_eq!(s.due(Ts(0)), vec!["a", "b"]);
        s.set_token("a", hour_token(0));
        s.set_token("b", hour_token(10));
        assert!(s.due(Ts(0)).is_empty());
        assert_eq!(s.next_deadline(), Some(Ts(45 * MIN)));
        assert_eq!(s.due(Ts(45 * MIN)), vec!["a"]);
        assert_eq!(s.due(Ts(55 * MIN)), vec!["a", "b"]);
    }

    #[test]
    fn sleep_is_bounded_so_clock_jumps_are_seen() {
        let mut s = sched();
        s.set_token("a", hour_token(0));
        s.set_token("b", hour_token(0));
        assert_eq!(s.sleep_ms(Ts(0)), 10_000);
        assert_eq!(s.sleep_ms(Ts(45 * MIN - 3_000)), 3_000);
        // The wall clock jumped past the deadline (a laptop woke up): due at once.
        assert_eq!(s.sleep_ms(Ts(90 * MIN)), 0);
        assert_eq!(s.due(Ts(90 * MIN)), vec!["a", "b"]);
    }

    #[test]
    fn transient_failures_back_off_and_never_give_up() {
        let mut s = sched();
        s.set_token("a", hour_token(0));
        s.start("a");
        assert_eq!(s.deadline("a"), None, "in flight");
        let mut last = 0;
        for i in 0..12 {
            s.failed(
                "a",
                FailureKind::Transient,
                None,
                hour_token(0),
                Ts(50 * MIN),
                0.999_999,
            );
            let wait = s.deadline("a").unwrap().ms_since(Ts(50 * MIN));
            assert!(wait >= last || wait >= 299_000, "attempt {i}: {wait}");
            assert!(wait <= 5 * MIN, "capped: {wait}");
            last = wait;
        }
        assert_eq!(last, 5 * MIN - 1);
        s.failed(
            "a",
            FailureKind::Transient,
            None,
            hour_token(0),
            Ts(50 * MIN),
            0.0,
        );
        assert_eq!(
            s.deadline("a"),
            Some(Ts(50 * MIN + 30_000)),
            "a tenth of the cap at least"
        );
        s.succeeded("a", hour_token(60));
        assert_eq!(s.slot("a").unwrap().failures(), 0);
        assert_eq!(s.deadline("a"), Some(Ts(105 * MIN)));
    }

    #[test]
    fn a_retry_after_is_waited_for_up_to_the_cap() {
        let mut s = sched();
        s.set_token("a", hour_token(0));
        s.start("a");
        s.failed(
            "a",
            FailureKind::Transient,
            Some(200_000),
            hour_token(0),
            Ts(50 * MIN),
            0.0,
        );
        assert_eq!(s.deadline("a"), Some(Ts(50 * MIN + 200_000)));
        s.start("a");
        s.failed(
            "a",
            FailureKind::Transient,
            Some(3_600_000),
            hour_token(0),
            Ts(50 * MIN),
            0.0,
        );
        assert_eq!(
            s.deadline("a"),
            Some(Ts(55 * MIN)),
            "capped at the backoff's cap"
        );
    }

    #[test]
    fn permanent_failures_block_until_something_changes() {
        let mut s = sched();
        s.set_token("a", hour_token(0));
        s.start("a");
        s.failed(
            "a",
            FailureKind::Permanent,
            None,
            hour_token(0),
            Ts(50 * MIN),
            0.5,
        );
        assert_eq!(s.deadline("a"), None);
        assert!(!s.due(Ts(500 * MIN)).contains(&"a".to_string()));
        // A new token on disk (another process) lifts the block.
        s.set_token("a", hour_token(55));
        assert_eq!(s.deadline("a"), Some(Ts(100 * MIN)));
        s.start("a");
        s.failed(
            "a",
            FailureKind::ReauthRequired,
            None,
            hour_token(55),
            Ts(60 * MIN),
            0.5,
        );
        assert_eq!(s.deadline("a"), None);
        // A reload lifts it too.
        s.set_identities(["a"], policy());
        assert_eq!(s.deadline("a"), Some(Ts(100 * MIN)));
        assert!(s.slot("b").is_none());
    }

    #[test]
    fn a_first_token_lifts_a_block() {
        // Never logged in: the refresh says a login is needed and the slot blocks.
        let mut s = sched();
        s.start("a");
        s.failed("a", FailureKind::ReauthRequired, None, None, Ts(0), 0.5);
        assert_eq!(s.deadline("a"), None);
        // `mcp-credd login` in another terminal writes the first token: adopted, scheduled.
        s.set_token("a", hour_token(1));
        assert_eq!(s.slot("a").unwrap().blocked(), None);
        assert_eq!(s.deadline("a"), Some(Ts(46 * MIN)));
    }

    #[test]
    fn a_force_during_a_refresh_retries_at_once_if_it_fails() {
        let mut s = sched();
        s.set_token("a", hour_token(0));
        s.start("a");
        s.force_all();
        assert_eq!(s.deadline("a"), None, "still in flight");
        s.failed(
            "a",
            FailureKind::Transient,
            None,
            hour_token(0),
            Ts(MIN),
            0.5,
        );
        let a = s.slot("a").unwrap();
        assert!(a.forced() && a.needs_attention());
        assert_eq!(a.failures(), 1);
        assert_eq!(s.deadline("a"), Some(Ts(i64::MIN)));
        // The next failure backs off from the count so far.
        s.start("a");
        s.failed(
            "a",
            FailureKind::Transient,
            None,
            hour_token(0),
            Ts(MIN),
            0.0,
        );
        assert_eq!(s.slot("a").unwrap().failures(), 2);
        assert_eq!(s.deadline("a"), Some(Ts(MIN + 2_000)), "a tenth of 20s");
        s.succeeded("a", hour_token(1));
        assert!(!s.slot("a").unwrap().needs_attention());
    }

    #[test]
    fn force_all_makes_everything_due() {
        let mut s = sched();
        s.set_token("a", hour_token(0));
        s.set_token("b", hour_token(0));
        s.force_all();
        assert_eq!(s.due(Ts(0)), vec!["a", "b"]);
        s.start("a");
        assert_eq!(s.due(Ts(0)), vec!["b"]);
        assert!(s.any_in_flight());
    }
}
