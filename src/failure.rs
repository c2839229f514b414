//! How a failure is treated: its kind (retry, give up, ask for a login) and the backoff
//! before the next try. A leaf module: the identity providers classify with it, the
//! daemon's schedule and the state files record it, and it depends on nothing of theirs.

use serde::{Deserialize, Serialize};

/// How a failed token request should be treated. The serde spellings are those the state
/// files (`last_error_kind`) have always held.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// Network trouble, timeouts, 408, 429, 5xx: retry later, keep the old token.
    Transient,
    /// The provider refused (bad client, bad scope) or answered nonsense: retrying the same
    /// request will not help until the configuration changes.
    Permanent,
    /// The grant is gone (`invalid_grant` on refresh): a human must log in again.
    ReauthRequired,
}

impl FailureKind {
    /// The name used in logs, state files and `status --json`.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Transient => "transient",
            FailureKind::Permanent => "permanent",
            FailureKind::ReauthRequired => "reauth_required",
        }
    }
}

/// Exponential backoff with full jitter, capped: the one backoff rule, used between the
/// attempts of one HTTP request (`HttpPolicy`) and between the daemon's refreshes after a
/// failure (`RefreshPolicy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The first step; doubled per retry...
    pub initial_ms: u64,
    /// ...up to this cap.
    pub max_ms: u64,
}

impl Backoff {
    /// The largest delay before retry number `retry` (0 for the first retry).
    pub fn ceiling_ms(&self, retry: u32) -> u64 {
        self.initial_ms
            .saturating_mul(1u64.checked_shl(retry.min(32)).unwrap_or(u64::MAX))
            .min(self.max_ms)
    }

    /// Delay before retry number `retry`, given a uniform `unit` in [0, 1) and an optional
    /// server-sent Retry-After, which is honoured up to the cap.
    pub fn delay_ms(&self, retry: u32, unit: f64, retry_after_ms: Option<u64>) -> u64 {
        let jittered = (self.ceiling_ms(retry) as f64 * unit.clamp(0.0, 1.0)) as u64;
        match retry_after_ms {
            Some(ra) => ra.min(self.max_ms).max(jittered),
            None => jittered,
        }
    }
}

/// A uniform number in [0, 1) from the OS random source.
pub fn random_unit() -> f64 {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_and_caps() {
        let p = Backoff {
            initial_ms: 500,
            max_ms: 4000,
        };
        let top: Vec<u64> = (0..6).map(|r| p.delay_ms(r, 0.999_999, None)).collect();
        assert_eq!(top, vec![499, 999, 1999, 3999, 3999, 3999]);
        assert_eq!(p.ceiling_ms(1), 1000);
        assert_eq!(p.delay_ms(3, 0.0, None), 0);
        assert_eq!(p.delay_ms(0, 0.0, Some(2500)), 2500);
        assert_eq!(p.delay_ms(0, 0.0, Some(60_000)), 4000);
        assert_eq!(p.delay_ms(40, 0.5, None), 2000);
        let u = random_unit();
        assert!((0.0..1.0).contains(&u));
    }

    #[test]
    fn kinds_keep_their_state_file_spellings() {
        for k in [
            FailureKind::Transient,
            FailureKind::Permanent,
            FailureKind::ReauthRequired,
        ] {
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(json, format!("\"{}\"", k.as_str()));
            assert_eq!(serde_json::from_str::<FailureKind>(&json).unwrap(), k);
        }
    }
}
