//! lookout: one Prometheus exporter for synthetic probes, certificate expiry and log-derived
//! metrics.
//!
//! Data flows config → probe (probers, scheduler) and logs (tailer → framing → parsers →
//! rules, compiled plans apart from live state) → metrics (families, exposition) → web
//! (endpoints, status page). `app` holds what runs; `cli` is every command and `main.rs` only
//! calls it. docs/architecture.md draws the picture.

pub mod app;
pub mod cli;
pub mod config;
pub mod logs;
pub mod metrics;
pub mod pem;
pub mod probe;
pub mod web;
