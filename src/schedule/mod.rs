//! When to refresh: pure planning (`plan`) and retry backoff (`backoff`).

pub mod backoff;
pub mod plan;
pub mod slots;
