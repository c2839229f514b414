//! The one refresh policy: from a token's obtained time and expiry, when to refresh it.
//! The one-shot's "still valid?" and the daemon's next deadline both come from here.

use crate::clock::Ts;
use crate::config::RefreshPolicy;

/// What is known about when a token stops working.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    At(Ts),
    /// The provider said nothing we could read (no `expires_in`, no JWT `exp`).
    Unknown,
    /// The provider documents the token as non-expiring (GitHub OAuth apps).
    Never,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenTimes {
    /// When the token was obtained, if recorded (files written by the reference tool lack it).
    pub obtained_at: Option<Ts>,
    pub expiry: Expiry,
}

/// A token's standing at an instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    /// Usable, and not yet due for refresh.
    Valid,
    /// Usable, but due for refresh.
    Expiring,
    /// Past its expiry.
    Expired,
}

/// A stable number in [0, 1) per identity and token, so jitter is spread across identities
/// yet the same inputs always plan the same instant (FNV-1a).
pub fn jitter_unit(identity: &str, obtained_at: Option<Ts>) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let salt = obtained_at.map_or(0, |t| t.0).to_le_bytes();
    for b in identity.as_bytes().iter().chain(salt.iter()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// The instant at which `t` should be refreshed, or `None` for a token that never expires.
///
/// Known expiry: at `at_fraction` of the lifetime, minus up to `jitter_fraction` of it, but
/// no later than `before_expiry` ahead of expiry. A lifetime too short for that margin is
/// refreshed at half its length rather than at once, so short-lived tokens do not thrash.
pub fn refresh_at(t: &TokenTimes, policy: &RefreshPolicy, jitter: f64) -> Option<Ts> {
    match (t.expiry, t.obtained_at) {
        (Expiry::Never, _) => None,
        (Expiry::Unknown, Some(obtained)) => {
            Some(obtained.plus_ms(policy.unknown_expiry_interval_ms))
        }
        // Unknown expiry and unknown age: nothing says it is still good.
        (Expiry::Unknown, None) => Some(Ts(i64::MIN)),
        (Expiry::At(exp), None) => Some(exp.plus_ms(-policy.before_expiry_ms)),
        (Expiry::At(exp), Some(obtained)) => {
            let lifetime = exp.ms_since(obtained);
            if lifetime <= 0 {
                return Some(exp);
            }
            let life = lifetime as f64;
            let at_fraction = obtained
                .plus_ms((life * (policy.at_fraction - policy.jitter_fraction * jitter)) as i64);
            let latest = exp.plus_ms(-policy.before_expiry_ms);
            let floor = obtained.plus_ms((life * policy.at_fraction.min(0.5)) as i64);
            Some(at_fraction.min(latest).max(floor.min(at_fraction)))
        }
    }
}

pub fn standing(t: &TokenTimes, policy: &RefreshPolicy, jitter: f64, now: Ts) -> Standing {
    if let Expiry::At(exp) = t.expiry
        && now >= exp
    {
        return Standing::Expired;
    }
    match refresh_at(t, policy, jitter) {
        Some(at) if now >= at => Standing::Expiring,
        _ => Standing::Valid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn policy() -> RefreshPolicy {
        RefreshPolicy {
            at_fraction: 0.75,
            before_expiry_ms: 5 * MIN,
            jitter_fraction: 0.0,
            unknown_expiry_interval_ms: 30 * MIN,
            ..RefreshPolicy::default()
        }
    }

    fn at(obtained_min: i64, expiry: Expiry) -> Option<i64> {
        let t = TokenTimes {
            obtained_at: Some(Ts(obtained_min * MIN)),
            expiry,
        };
        refresh_at(&t, &policy(), 0.0).map(|x| x.0 / MIN)
    }

    #[test]
    fn table() {
        // (obtained, expiry, refresh at) in minutes.
        let cases = [
            (0, Expiry::At(Ts(60 * MIN)), Some(45)), // 1 h token: 75 %
            (0, Expiry::At(Ts(24 * 60 * MIN)), Some(1080)), // 1 day: 75 % = 18 h
            (0, Expiry::At(Ts(12 * MIN)), Some(7)),  // 12 min: capped at 5 min before
            (0, Expiry::At(Ts(6 * MIN)), Some(3)),   // too short for 5 min: half-life
            (10, Expiry::At(Ts(10 * MIN)), Some(10)), // zero lifetime: at expiry
            (0, Expiry::Unknown, Some(30)),          // unknown: fixed interval
            (0, Expiry::Never, None),                // never expires: never
        ];
        for (obtained, expiry, want) in cases {
            assert_eq!(at(obtained, expiry), want, "{obtained} {expiry:?}");
        }
    }

    #[test]
    fn unknown_age() {
        let p = policy();
        let t = TokenTimes {
            obtained_at: None,
            expiry: Expiry::At(Ts(60 * MIN)),
        };
        assert_eq!(refresh_at(&t, &p, 0.0), Some(Ts(55 * MIN)));
        let t = TokenTimes {
            obtained_at: None,
            expiry: Expiry::Unknown,
        };
        assert_eq!(standing(&t, &p, 0.0, Ts(0)), Standing::Expiring);
    }

    #[test]
    fn standings() {
        let p = policy();
        let t = TokenTimes {
            obtained_at: Some(Ts(0)),
            expiry: Expiry::At(Ts(60 * MIN)),
        };
        assert_eq!(standing(&t, &p, 0.0, Ts(44 * MIN)), Standing::Valid);
        assert_eq!(standing(&t, &p, 0.0, Ts(45 * MIN)), Standing::Expiring);
        assert_eq!(standing(&t, &p, 0.0, Ts(60 * MIN)), Standing::Expired);
        let never = TokenTimes {
            obtained_at: None,
            expiry: Expiry::Never,
        };
        assert_eq!(standing(&never, &p, 0.0, Ts(i64::MAX)), Standing::Valid);
    }

    #[test]
    fn jitter_moves_earlier_within_bounds_and_is_stable() {
        let p = RefreshPolicy {
            jitter_fraction: 0.1,
            ..policy()
        };
        let t = TokenTimes {
            obtained_at: Some(Ts(0)),
            expiry: Expiry::At(Ts(100 * MIN)),
        };
        let lo = refresh_at(&t, &p, 0.999).unwrap();
        let hi = refresh_at(&t, &p, 0.0).unwrap();
        assert_eq!(hi, Ts(75 * MIN));
        assert!(lo >= Ts(65 * MIN) && lo < hi, "{lo:?}");
        let u = jitter_unit("ingress", Some(Ts(5)));
        assert!((0.0..1.0).contains(&u));
        assert_eq!(u, jitter_unit("ingress", Some(Ts(5))));
        assert_ne!(u, jitter_unit("other", Some(Ts(5))));
    }
}
