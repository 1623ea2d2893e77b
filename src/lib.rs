//! lookout: one Prometheus exporter for synthetic probes, certificate expiry and log-derived
//! metrics.
//!
//! Data flows config → probe (probers, scheduler) and logs (tailer → framing → parsers →
//! rules) → metrics (families, exposition) → web; `app` holds the running state, `once` and
//! `replay` are the one-shot command-line runs.

pub mod app;
pub mod config;
pub mod logs;
pub mod metrics;
pub mod once;
pub mod pem;
pub mod probe;
pub mod web;
