//! Metrics: the family model and its encodings, the families lookout declares, lookout's own
//! counters, process metrics.

pub mod exposition;
pub mod families;
pub mod process;
pub mod self_metrics;
