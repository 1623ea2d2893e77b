//! Targets of a scheduled probe from service discovery, in Prometheus' own formats so users copy
//! what they have: `file_sd_configs` (target groups in JSON or YAML files, globs allowed) and
//! `http_sd_configs` (the same groups as JSON from a URL).
//!
//! Each probe with discovery has a task that reads its sources at start, every
//! `refresh_interval`, and whenever a matching file changes (checked every
//! [`WATCH_EVERY`], by modification time and size: it works the same on every file system,
//! bind mounts and Kubernetes ConfigMaps included). A source that fails keeps its last good
//! groups, is logged (with file:line:column for a file) and counted; the probe's targets are
//! handed to the scheduler whenever they change.

use crate::metrics::self_metrics::SelfMetrics;
use crate::probe::scheduler::{Job, TargetSink};
use crate::probe::shard::Shard;
use crate::probe::PreparedModule;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// How often matching files are looked at for changes.
pub const WATCH_EVERY: Duration = Duration::from_secs(2);
/// The largest HTTP discovery answer read, as Prometheus' limit.
const MAX_HTTP_BYTES: usize = 100 << 20;
/// How long an HTTP discovery request may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// A scheduled probe whose targets are discovered: what each of its jobs shares.
pub struct Discovery {
    pub name: String,
    pub module: Arc<PreparedModule>,
    pub interval: Duration,
    pub interval_when_failing: Option<Duration>,
    /// The probe's own labels; a target group's labels are added to (and win over) them.
    pub labels: BTreeMap<String, String>,
    /// Glob patterns (absolute) with their refresh interval, one entry per `file_sd_configs`.
    pub files: Vec<(Vec<String>, Duration)>,
    /// URLs with their refresh interval, one per `http_sd_configs`.
    pub urls: Vec<(String, Duration)>,
}

/// Prometheus' target group.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TargetGroup {
    #[serde(default)]
    pub targets: Vec<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// The last good groups of one source and what identifies its current content.
#[derive(Default)]
struct Known {
    groups: Vec<TargetGroup>,
    /// Modification time and size of a file when it was read.
    stamp: Option<(SystemTime, u64)>,
}

impl Discovery {
    /// Reads the sources as they change and hands the targets to `sink`, until aborted.
    pub async fn run(self: Arc<Self>, sink: TargetSink, metrics: Arc<SelfMetrics>, shard: Shard) {
        let mut files: BTreeMap<PathBuf, Known> = BTreeMap::new();
        let mut urls: Vec<Known> = self.urls.iter().map(|_| Known::default()).collect();
        let mut file_due = vec![Instant::now(); self.files.len()];
        let mut url_due = vec![Instant::now(); self.urls.len()];
        let mut handed: Option<Vec<(String, BTreeMap<String, String>)>> = None;
        loop {
            let now = Instant::now();
            let mut matched: Vec<PathBuf> = Vec::new();
            for (i, (patterns, refresh)) in self.files.iter().enumerate() {
                let full = file_due[i] <= now;
                if full {
                    file_due[i] = now + *refresh;
                }
                for path in expand(patterns) {
                    let stamp = stamp(&path);
                    let known = files.entry(path.clone()).or_default();
                    if full || known.stamp.is_none() || stamp != known.stamp {
                        match read_file(&path) {
                            Ok(groups) => *known = Known { groups, stamp },
                            Err(e) => {
                                // Not read again until it changes or the refresh comes.
                                known.stamp = stamp;
                                tracing::error!(probe = %self.name, "file_sd: {e}; keeping its last good targets");
                                metrics.record_sd_failure(&self.name, "file");
                            }
                        }
                    }
                    matched.push(path);
                }
            }
            // A file no longer matched (deleted, renamed away) takes its targets with it.
            files.retain(|path, _| matched.contains(path));
            for (i, (url, refresh)) in self.urls.iter().enumerate() {
                if url_due[i] <= now {
                    url_due[i] = now + *refresh;
                    match fetch(url).await {
                        Ok(groups) => urls[i].groups = groups,
                        Err(e) => {
                            tracing::error!(probe = %self.name, "http_sd: {url}: {e}; keeping its last good targets");
                            metrics.record_sd_failure(&self.name, "http");
                        }
                    }
                }
            }
            let groups = files.values().chain(&urls).flat_map(|k| &k.groups);
            let targets = self.targets(groups);
            if handed.as_ref() != Some(&targets) {
                let jobs: Vec<Arc<Job>> = targets
                    .iter()
                    .filter(|(target, _)| shard.owns(&self.name, target))
                    .map(|(target, labels)| self.job(target, labels))
                    .collect();
                metrics.set_sd_targets(&self.name, targets.len(), jobs.len());
                sink.set(&self.name, jobs);
                handed = Some(targets);
            }
            tokio::time::sleep(WATCH_EVERY).await;
        }
    }

    /// Every target once (the first group naming it wins) with its labels, checked by the
    /// module's prober: a target it cannot run is left out and logged.
    fn targets<'a>(
        &self,
        groups: impl Iterator<Item = &'a TargetGroup>,
    ) -> Vec<(String, BTreeMap<String, String>)> {
        let mut seen = std::collections::HashSet::new();
        let mut targets = Vec::new();
        for group in groups {
            for target in &group.targets {
                if !seen.insert(target.as_str()) {
                    continue;
                }
                if let Err(f) = self.module.check_target(target) {
                    tracing::warn!(probe = %self.name, "discovered target {target:?} left out: {}", f.message);
                    continue;
                }
                let mut labels = self.labels.clone();
                labels.extend(group.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
                targets.push((target.clone(), labels));
            }
        }
        targets
    }

    fn job(&self, target: &str, labels: &BTreeMap<String, String>) -> Arc<Job> {
        Arc::new(Job {
            name: self.name.clone(),
            module: self.module.clone(),
            target: target.to_string(),
            interval: self.interval,
            interval_when_failing: self.interval_when_failing,
            labels: labels.clone(),
        })
    }
}

/// The files matching any of `patterns`, sorted.
fn expand(patterns: &[String]) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = patterns
        .iter()
        .filter_map(|p| glob::glob(p).ok())
        .flat_map(|paths| paths.filter_map(Result::ok))
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    paths.dedup();
    paths
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// A file of target groups: JSON for `.json`, YAML otherwise; errors name file:line:column.
pub fn read_file(path: &Path) -> Result<Vec<TargetGroup>, String> {
    let bytes = crate::files::read(path, crate::files::MAX_CONFIG_BYTES)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    let text = String::from_utf8(bytes).map_err(|_| format!("{}: not UTF-8", path.display()))?;
    let groups = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str::<Vec<TargetGroup>>(&text)
            .map_err(|e| format!("{}:{}:{}: {e}", path.display(), e.line(), e.column()))?
    } else if text.trim().is_empty() {
        Vec::new()
    } else {
        serde_saphyr::from_str::<Vec<TargetGroup>>(&text).map_err(|e| {
            let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
            format!("{}:{line}:{column}: {}", path.display(), e.without_snippet())
        })?
    };
    check_groups(&groups).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(groups)
}

/// Label names must be valid and not ones lookout sets; `__` names (Prometheus' meta labels)
/// are not allowed either, as they never reach a series.
fn check_groups(groups: &[TargetGroup]) -> Result<(), String> {
    for (i, group) in groups.iter().enumerate() {
        for name in group.labels.keys() {
            let reserved = crate::config::probes::reserved_labels();
            if !crate::config::probes::is_label_name(name) || reserved.contains(&name.as_str()) {
                return Err(format!(
                    "group {i}: label name {name:?} is not allowed: use [a-zA-Z_][a-zA-Z0-9_]*, not __*, nor {}",
                    reserved.join(", ")
                ));
            }
        }
    }
    Ok(())
}

/// Prometheus' http_sd: a GET answered 200 with a JSON list of target groups.
async fn fetch(url: &str) -> Result<Vec<TargetGroup>, String> {
    let body = tokio::time::timeout(HTTP_TIMEOUT, get(url))
        .await
        .map_err(|_| format!("no answer within {}s", HTTP_TIMEOUT.as_secs()))??;
    let groups: Vec<TargetGroup> = serde_json::from_slice(&body)
        .map_err(|e| format!("line {} column {}: {e}", e.line(), e.column()))?;
    check_groups(&groups)?;
    Ok(groups)
}

async fn get(url: &str) -> Result<Bytes, String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("{e}"))?;
    let host = uri.host().ok_or("no host")?.trim_matches(['[', ']']).to_string();
    let port = uri.port_u16().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(connection);
    let authority = uri.authority().map(|a| a.to_string()).unwrap_or_default();
    let request = http::Request::get(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header(http::header::HOST, authority)
        .header(http::header::ACCEPT, "application/json")
        .header(http::header::USER_AGENT, concat!("lookout/", env!("CARGO_PKG_VERSION")))
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
    if response.status() != http::StatusCode::OK {
        driver.abort();
        return Err(format!("answered {}", response.status()));
    }
    let body = Limited::new(response.into_body(), MAX_HTTP_BYTES)
        .collect()
        .await
        .map_err(|e| format!("reading the answer: {e}"))?
        .to_bytes();
    driver.abort();
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_json_and_yaml_groups_and_locates_errors() {
        let dir = std::env::temp_dir().join(format!("lookout-sd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let json = dir.join("a.json");
        std::fs::write(&json, r#"[{"targets": ["http://a/"], "labels": {"env": "prod"}}]"#)
            .unwrap();
        let groups = read_file(&json).unwrap();
        assert_eq!(groups[0].targets, ["http://a/"]);
        assert_eq!(groups[0].labels["env"], "prod");
        let yaml = dir.join("b.yml");
        std::fs::write(&yaml, "- targets: [\"http://b/\"]\n  labels:\n    team: web\n").unwrap();
        assert_eq!(read_file(&yaml).unwrap()[0].labels["team"], "web");
        std::fs::write(&json, "[{\"targets\": [\"x\"],\n \"labels\": {\"a\": 1}}]").unwrap();
        let e = read_file(&json).unwrap_err();
        assert!(e.contains("a.json:2:"), "{e}");
        std::fs::write(&yaml, "- targets: [x]\n  labels: {probe: y}\n").unwrap();
        assert!(read_file(&yaml).unwrap_err().contains("label name \"probe\" is not allowed"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
