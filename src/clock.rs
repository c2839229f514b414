//! Wall-clock time behind a trait, so planning and status can be tested with a manual clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch. Wall-clock, not monotonic: deadlines expressed in it
/// survive suspend and clock jumps, which is what token expiry needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ts(pub i64);

impl Ts {
    pub fn from_secs_f64(secs: f64) -> Ts {
        Ts((secs * 1000.0).round() as i64)
    }
    pub fn from_secs(secs: i64) -> Ts {
        Ts(secs.saturating_mul(1000))
    }
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }
    pub fn as_secs(self) -> i64 {
        self.0.div_euclid(1000)
    }
    pub fn plus_ms(self, ms: i64) -> Ts {
        Ts(self.0.saturating_add(ms))
    }
    /// `self - earlier` in milliseconds (negative when `earlier` is later).
    pub fn ms_since(self, earlier: Ts) -> i64 {
        self.0.saturating_sub(earlier.0)
    }
}

pub trait Clock: Send + Sync {
    fn now(&self) -> Ts;
}

/// The operating system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Ts {
        let d = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Ts(d.as_millis() as i64)
    }
}

/// A clock that moves only when told to; shared handles see the same time.
#[derive(Clone, Debug, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn new(start: Ts) -> Self {
        ManualClock(Arc::new(AtomicI64::new(start.0)))
    }
    pub fn set(&self, t: Ts) {
        self.0.store(t.0, Ordering::SeqCst);
    }
    pub fn advance_ms(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Ts {
        Ts(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(Ts::from_secs(100));
        let c2 = c.clone();
        assert_eq!(c.now(), Ts(100_000));
        c2.advance_ms(1500);
        assert_eq!(c.now(), Ts(101_500));
        c.set(Ts::from_secs(5));
        assert_eq!(c2.now().as_secs(), 5);
    }

    #[test]
    fn negative_times_round_down() {
        assert_eq!(Ts(-1).as_secs(), -1);
        assert_eq!(Ts::from_secs_f64(1.2345), Ts(1235));
    }
}
