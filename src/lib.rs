//! lookout: one Prometheus exporter for synthetic probes and certificate expiry.
//!
//! Data flows config → probe (probers, scheduler) → metrics (families, exposition) → web;
//! `app` holds the running state and `once` is the one-shot command-line run.

pub mod app;
pub mod config;
pub mod metrics;
pub mod once;
pub mod probe;
pub mod web;
