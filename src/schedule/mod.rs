//! When to refresh: pure planning (`plan`) and the daemon's schedule (`slots`).

pub mod plan;
pub mod slots;
