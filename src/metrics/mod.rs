//! Metrics: the family model and its encodings, lookout's own counters, process metrics.

pub mod exposition;
pub mod process;
pub mod self_metrics;
