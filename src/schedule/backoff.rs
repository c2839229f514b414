//! Exponential backoff with full jitter, capped; pure so it can be tested exactly.

use crate::config::HttpPolicy;

/// Delay before retry number `retry` (0 for the first retry), given a uniform `unit` in
/// [0, 1) and an optional server-sent Retry-After, which is honoured up to the cap.
pub fn delay_ms(retry: u32, policy: &HttpPolicy, unit: f64, retry_after_ms: Option<u64>) -> u64 {
    let ceiling = policy
        .initial_backoff_ms
        .saturating_mul(1u64.checked_shl(retry.min(32)).unwrap_or(u64::MAX))
        .min(policy.max_backoff_ms);
    let jittered = (ceiling as f64 * unit.clamp(0.0, 1.0)) as u64;
    match retry_after_ms {
        Some(ra) => ra.min(policy.max_backoff_ms).max(jittered),
        None => jittered,
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
        let p = HttpPolicy {
            initial_backoff_ms: 500,
            max_backoff_ms: 4000,
            ..HttpPolicy::default()
        };
        let top: Vec<u64> = (0..6).map(|r| delay_ms(r, &p, 0.999_999, None)).collect();
        assert_eq!(top, vec![499, 999, 1999, 3999, 3999, 3999]);
        assert_eq!(delay_ms(3, &p, 0.0, None), 0);
        assert_eq!(delay_ms(0, &p, 0.0, Some(2500)), 2500);
        assert_eq!(delay_ms(0, &p, 0.0, Some(60_000)), 4000);
        assert_eq!(delay_ms(40, &p, 0.5, None), 2000);
        let u = random_unit();
        assert!((0.0..1.0).contains(&u));
    }
}
