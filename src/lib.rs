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
pub mod discovery;
pub mod files;
pub mod logs;
pub mod metrics;
pub mod pem;
pub mod probe;
pub mod web;

#[cfg(test)]
mod layout {
    use std::path::Path;

    /// Data flows one way: the pipeline stages never reach up into what runs or serves them.
    #[test]
    fn stages_do_not_import_what_runs_them() {
        fn check(dir: &Path) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    check(&path);
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                for upward in ["crate::app", "crate::web", "crate::cli"] {
                    assert!(!text.contains(upward), "{} uses {upward}", path.display());
                }
            }
        }
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        for stage in ["config", "logs", "probe", "metrics"] {
            check(&src.join(stage));
        }
    }
}
