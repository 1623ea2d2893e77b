//! Targets of a scheduled probe from service discovery, in Prometheus' own formats so users copy
//! what they have: `file_sd_configs` (target groups in JSON or YAML files, globs allowed) and
//! `http_sd_configs` (the same groups as JSON from a URL).
//!
//! Each probe with discovery has a task that reads its files at start, every
//! `refresh_interval`, and whenever a matching file changes (checked every [`WATCH_EVERY`], by
//! modification time and size: it works the same on every file system, bind mounts and
//! Kubernetes ConfigMaps included), and one task per URL, so a slow answer holds up nothing
//! else. A source that fails keeps its last good groups, is logged (with file:line:column for
//! a file) and counted; the probe's targets are handed to the scheduler whenever they change.
//! What the sources last gave is kept by the app across reloads ([`Sources`]), so a reload
//! while a source fails does not lose its targets. Each target then goes through the probe's
//! `relabel_configs` ([`relabel`]).

pub mod http_sd;
pub mod relabel;

use http_sd::HttpSource;

use crate::metrics::self_metrics::SelfMetrics;
use crate::probe::scheduler::{Job, JobLabels, TargetSink};
use crate::probe::shard::Shard;
use crate::probe::PreparedModule;
use serde::{Deserialize, Deserializer};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::Notify;
use tokio::time::Instant;

/// How often matching files are looked at for changes.
pub const WATCH_EVERY: Duration = Duration::from_secs(2);
/// Targets left out that are logged one by one each time the targets are worked out; the
/// rest are counted in one line (and in `lookout_sd_dropped_targets`).
const LEFT_OUT_LOGGED: usize = 10;

/// A scheduled probe whose targets are discovered: what each of its jobs shares.
pub struct Discovery {
    pub name: String,
    /// The probe's `module`: its targets' unless relabelling sets `__param_module`.
    pub module: Arc<PreparedModule>,
    /// Every module of the configuration, which `__param_module` may name.
    pub modules: Arc<BTreeMap<String, Arc<PreparedModule>>>,
    pub interval: Duration,
    pub interval_when_failing: Option<Duration>,
    /// The probe's own labels; a target group's labels are added to (and win over) them.
    pub labels: BTreeMap<String, String>,
    /// `relabel_configs`, run on each discovered target.
    pub relabel: Vec<relabel::Rule>,
    /// Glob patterns (absolute) with their refresh interval, one entry per `file_sd_configs`.
    pub files: Vec<(Vec<String>, Duration)>,
    /// One per `http_sd_configs`.
    pub urls: Vec<HttpSource>,
}

/// A discovered target, its labels as relabelling left them, and the module it runs.
struct Target {
    target: String,
    labels: JobLabels,
    module: Arc<PreparedModule>,
}

/// Prometheus' target group. `null` stands for empty, as Go writes a nil list or map.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetGroup {
    #[serde(default, deserialize_with = "null_as_empty")]
    pub targets: Vec<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub labels: BTreeMap<String, String>,
}

fn null_as_empty<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(
    d: D,
) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// The last good groups of one source and what identifies its current content.
#[derive(Default)]
struct Known {
    groups: Vec<TargetGroup>,
    /// Modification time and size of a file when it was read.
    stamp: Option<(SystemTime, u64)>,
}

/// What the sources of one probe last gave.
#[derive(Default)]
pub struct Sources {
    files: BTreeMap<PathBuf, Known>,
    urls: Vec<Known>,
    /// Counts every change of the groups, so targets are worked out only when they may differ.
    version: u64,
}

/// The sources' record, even after a panic while it was held: it outlives the task (a reload
/// carries it over), and what it holds is whole at every point a panic could come from.
fn lock(sources: &Mutex<Sources>) -> std::sync::MutexGuard<'_, Sources> {
    sources.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Sources {
    fn set_url(&mut self, index: usize, groups: Vec<TargetGroup>) -> bool {
        let known = &mut self.urls[index];
        if known.groups == groups {
            return false;
        }
        known.groups = groups;
        self.version += 1;
        true
    }
}

impl Discovery {
    /// The record of what this probe's sources give, starting from what the same sources gave
    /// `before` (the probe of that name in the configuration a reload replaces): each file and
    /// each URL keeps its last good groups, whatever else changed.
    pub fn sources_after(
        &self,
        before: Option<(&Discovery, &Mutex<Sources>)>,
    ) -> Arc<Mutex<Sources>> {
        let mut urls: Vec<Known> = self.urls.iter().map(|_| Known::default()).collect();
        let mut files = BTreeMap::new();
        if let Some((discovery, sources)) = before {
            let mut old = lock(sources);
            // Files no pattern matches any more are dropped at the first look.
            files = std::mem::take(&mut old.files);
            for (known, url) in urls.iter_mut().zip(&self.urls) {
                if let Some(i) = discovery.urls.iter().position(|u| u.url == url.url) {
                    *known = std::mem::take(&mut old.urls[i]);
                }
            }
        }
        Arc::new(Mutex::new(Sources { files, urls, version: 0 }))
    }

    /// Reads the sources as they change and hands the targets to `sink`, until aborted.
    pub async fn run(
        self: Arc<Self>,
        sources: Arc<Mutex<Sources>>,
        sink: TargetSink,
        metrics: Arc<SelfMetrics>,
        shard: Shard,
    ) {
        let changed = Arc::new(Notify::new());
        // Dropped with this task when it is aborted, which aborts them.
        let mut fetchers = tokio::task::JoinSet::new();
        for index in 0..self.urls.len() {
            let (discovery, sources, changed, metrics) =
                (self.clone(), sources.clone(), changed.clone(), metrics.clone());
            fetchers.spawn(discovery.poll_url(index, sources, changed, metrics));
        }
        let mut file_due = vec![Instant::now(); self.files.len()];
        let mut worked_out: Option<u64> = None;
        // What the scheduler was last given (it holds the same jobs).
        let mut handed: Option<Vec<Arc<Job>>> = None;
        loop {
            let targets = {
                let mut sources = lock(&sources);
                self.read_files(&mut sources, &mut file_due, &metrics);
                (worked_out != Some(sources.version)).then(|| {
                    worked_out = Some(sources.version);
                    // Prometheus' meta label of each source, for relabelling.
                    let files = sources.files.iter().map(|(path, known)| {
                        (("__meta_filepath", path.to_string_lossy().into_owned()), known)
                    });
                    let urls = self.urls.iter().zip(&sources.urls);
                    let urls = urls.map(|(url, known)| (("__meta_url", url.url.clone()), known));
                    let groups = files.chain(urls).flat_map(|(meta, known)| {
                        known.groups.iter().map(move |group| (group, meta.clone()))
                    });
                    let (targets, dropped) = self.targets(groups);
                    metrics.set_sd_dropped(&self.name, dropped);
                    targets
                })
            };
            if let Some(targets) = targets {
                let targets_len = targets.len();
                let jobs: Vec<Arc<Job>> = targets
                    .into_iter()
                    .filter(|t| shard.owns(&self.name, &t.target))
                    .map(|t| self.job(t))
                    .collect();
                metrics.set_sd_targets(&self.name, targets_len, jobs.len());
                if !handed.as_ref().is_some_and(|before| same_jobs(before, &jobs)) {
                    sink.set(&self.name, jobs.clone());
                    handed = Some(jobs);
                }
            }
            tokio::select! {
                () = tokio::time::sleep(WATCH_EVERY) => {}
                () = changed.notified() => {}
            }
        }
    }

    /// Reads the files that changed, or all at their refresh; a file no longer matched
    /// (deleted, renamed away) takes its targets with it.
    fn read_files(&self, sources: &mut Sources, file_due: &mut [Instant], metrics: &SelfMetrics) {
        let now = Instant::now();
        let mut matched = BTreeSet::new();
        for (i, (patterns, refresh)) in self.files.iter().enumerate() {
            let full = file_due[i] <= now;
            if full {
                file_due[i] = now + *refresh;
            }
            for path in expand(patterns) {
                let stamp = stamp(&path);
                let known = sources.files.entry(path.clone()).or_default();
                if full || known.stamp.is_none() || stamp != known.stamp {
                    // Not read again until it changes or the refresh comes, whatever it gave.
                    known.stamp = stamp;
                    match read_file(&path) {
                        Ok(groups) if groups == known.groups => {}
                        Ok(groups) => {
                            known.groups = groups;
                            sources.version += 1;
                        }
                        Err(e) => {
                            tracing::error!(probe = %self.name, "file_sd: {e}; keeping its last good targets");
                            metrics.record_sd_failure(&self.name, "file");
                        }
                    }
                }
                matched.insert(path);
            }
        }
        let before = sources.files.len();
        sources.files.retain(|path, _| matched.contains(path));
        if sources.files.len() != before {
            sources.version += 1;
        }
    }

    /// Asks one URL now and at every refresh, keeping what it last gave when it fails.
    async fn poll_url(
        self: Arc<Self>,
        index: usize,
        sources: Arc<Mutex<Sources>>,
        changed: Arc<Notify>,
        metrics: Arc<SelfMetrics>,
    ) {
        let source = &self.urls[index];
        loop {
            match source.fetch().await {
                Ok(groups) => {
                    if lock(&sources).set_url(index, groups) {
                        changed.notify_one();
                    }
                }
                Err(e) => {
                    tracing::error!(probe = %self.name, "http_sd: {}: {e}; keeping its last good targets", source.url);
                    metrics.record_sd_failure(&self.name, "http");
                }
            }
            tokio::time::sleep(source.refresh).await;
        }
    }

    /// Every target once (the first that can run wins) with its labels and module, and how
    /// many were left out. Each starts with the labels [`Discovery::start_labels`] gives, goes
    /// through `relabel_configs` (which may drop it), then runs the target and module
    /// [`Discovery::resolve`] finds (or is left out, with a warning), with the labels
    /// [`exposed_labels`] keeps: a series must not carry a name twice.
    fn targets<'a>(
        &self,
        groups: impl Iterator<Item = (&'a TargetGroup, (&'static str, String))>,
    ) -> (Vec<Target>, usize) {
        // One copy of each label set, however many targets have it.
        let mut label_sets: std::collections::HashSet<JobLabels> = Default::default();
        let mut renamed = BTreeSet::new();
        let mut seen = std::collections::HashSet::new();
        let mut targets = Vec::new();
        let (mut left_out, mut unrunnable) = (0, 0);
        for (group, (meta_name, meta_value)) in groups {
            for address in &group.targets {
                let mut labels = self.start_labels(group, address, (meta_name, &meta_value));
                if !relabel::apply(&self.relabel, &mut labels) {
                    left_out += 1;
                    continue;
                }
                match self.resolve(&labels) {
                    Err(why) => {
                        unrunnable += 1;
                        if unrunnable <= LEFT_OUT_LOGGED {
                            tracing::warn!(probe = %self.name, "discovered target {address:?} left out: {why}");
                        }
                        left_out += 1;
                    }
                    Ok((target, _)) if seen.contains(&target) => left_out += 1,
                    Ok((target, module)) => {
                        seen.insert(target.clone());
                        let exposed = exposed_labels(&labels, module, &mut renamed);
                        let labels = match label_sets.get(exposed.as_slice()) {
                            Some(shared) => shared.clone(),
                            None => {
                                let shared: JobLabels = exposed.into();
                                label_sets.insert(shared.clone());
                                shared
                            }
                        };
                        targets.push(Target { target, labels, module: module.clone() });
                    }
                }
            }
        }
        if unrunnable > LEFT_OUT_LOGGED {
            let more = unrunnable - LEFT_OUT_LOGGED;
            tracing::warn!(probe = %self.name, "{more} more discovered targets left out, not logged one by one");
        }
        if !renamed.is_empty() {
            let names: Vec<String> = renamed.into_iter().collect();
            tracing::warn!(probe = %self.name, "discovered labels named as lookout's own are kept as exported_<name>: {}", names.join(", "));
        }
        (targets, left_out)
    }

    /// A target's labels before relabelling, as Prometheus sets them: the probe's labels, its
    /// group's (a label with an empty value is none), `__address__`, `__param_module` (as a
    /// scrape job's `params`: a group's own wins) and the source's meta label.
    fn start_labels(
        &self,
        group: &TargetGroup,
        address: &str,
        (meta_name, meta_value): (&'static str, &str),
    ) -> relabel::Labels {
        let mut labels = self.labels.clone();
        let given = group.labels.iter().filter(|(_, v)| !v.is_empty());
        labels.extend(given.map(|(k, v)| (k.clone(), v.clone())));
        labels.insert("__address__".into(), address.to_string());
        labels.entry("__param_module".into()).or_insert_with(|| self.module.name.clone());
        labels.insert(meta_name.into(), meta_value.to_string());
        labels
    }

    /// The target and module relabelled `labels` name, or why there is none to run.
    fn resolve(&self, labels: &relabel::Labels) -> Result<(String, &Arc<PreparedModule>), String> {
        let target = ["__param_target", "__address__"]
            .iter()
            .find_map(|name| labels.get(*name).filter(|t| !t.is_empty()))
            .ok_or("relabelling left it no __address__")?;
        let module = match labels.get("__param_module").filter(|m| !m.is_empty()) {
            None => &self.module,
            Some(name) => self
                .modules
                .get(name)
                .ok_or_else(|| format!("__param_module names no module ({name:?})"))?,
        };
        module.check_target(target).map_err(|f| f.message)?;
        // labelmap may make any name, as in Prometheus, which refuses such a target.
        if let Some(name) = labels.keys().find(|n| !crate::config::probes::is_label_name(n)) {
            return Err(format!("relabelling gave it the label name {name:?}, which is none"));
        }
        Ok((target.clone(), module))
    }

    fn job(&self, target: Target) -> Arc<Job> {
        Arc::new(Job {
            name: self.name.clone(),
            module: target.module,
            target: target.target,
            interval: self.interval,
            interval_when_failing: self.interval_when_failing,
            labels: target.labels,
        })
    }
}

/// The labels a target's series carry, sorted: relabelled `labels` without the `__` ones,
/// a name lookout sets itself (or `module`'s `query_response` does) kept as `exported_<name>`
/// (noted in `renamed`) unless that name is given too.
fn exposed_labels(
    labels: &relabel::Labels,
    module: &PreparedModule,
    renamed: &mut BTreeSet<String>,
) -> Vec<(String, String)> {
    let reserved = crate::config::probes::reserved_labels();
    let mut exposed = BTreeMap::new();
    for (name, value) in labels.iter().filter(|(name, _)| !name.starts_with("__")) {
        let taken =
            reserved.contains(&name.as_str()) || module.step_label_names().any(|step| step == name);
        if !taken {
            exposed.insert(name.clone(), value.clone());
            continue;
        }
        let exported = format!("exported_{name}");
        if !labels.contains_key(&exported) {
            exposed.insert(exported, value.clone());
        }
        renamed.insert(name.clone());
    }
    exposed.into_iter().collect()
}

/// Whether `before` and `now` run the same targets with the same labels and modules.
fn same_jobs(before: &[Arc<Job>], now: &[Arc<Job>]) -> bool {
    before.len() == now.len()
        && before.iter().zip(now).all(|(a, b)| {
            a.target == b.target && a.labels == b.labels && Arc::ptr_eq(&a.module, &b.module)
        })
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
    let json = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json"));
    parse_groups(&text, json).map_err(|e| format!("{}:{e}", path.display()))
}

/// Target groups from the text of a file or an HTTP answer, JSON or YAML, made to fit (see
/// [`check_label_names`]); an error starts with `line:column: ` where the parser gives one.
pub fn parse_groups(text: &str, json: bool) -> Result<Vec<TargetGroup>, String> {
    let groups = if json {
        serde_json::from_str::<Option<Vec<TargetGroup>>>(text)
            .map_err(|e| format!("{}:{}: {e}", e.line(), e.column()))?
    } else if text.trim().is_empty() {
        None
    } else {
        serde_saphyr::from_str::<Option<Vec<TargetGroup>>>(text).map_err(|e| {
            let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
            format!("{line}:{column}: {}", e.without_snippet())
        })?
    };
    let groups = groups.unwrap_or_default();
    check_label_names(&groups).map_err(|e| format!(" {e}"))?;
    Ok(groups)
}

/// Checks the groups' label names: one that is no label name at all is an error, as in
/// Prometheus. Meta labels (`__meta_…`) are kept for relabelling, which drops them after.
fn check_label_names(groups: &[TargetGroup]) -> Result<(), String> {
    for (i, group) in groups.iter().enumerate() {
        if let Some(name) = group.labels.keys().find(|n| !crate::config::probes::is_label_name(n)) {
            return Err(format!(
                "group {i}: {name:?} is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)"
            ));
        }
    }
    Ok(())
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
        std::fs::write(&yaml, "- targets: [x]\n  labels: {probe: y, __meta_dc: eu, a: b}\n")
            .unwrap();
        let groups = read_file(&yaml).unwrap();
        // Meta labels reach relabelling and are dropped after; a name lookout sets is kept
        // under another.
        let meta = || ("__meta_filepath", yaml.to_string_lossy().into_owned());
        let modules = Arc::new(modules());
        let mut discovery = Discovery {
            name: "p".into(),
            module: modules["m"].clone(),
            modules: modules.clone(),
            interval: Duration::from_secs(10),
            interval_when_failing: None,
            labels: BTreeMap::new(),
            relabel: Vec::new(),
            files: Vec::new(),
            urls: Vec::new(),
        };
        let (targets, dropped) = discovery.targets(groups.iter().map(|g| (g, meta())));
        let labels: Vec<(&str, &str)> =
            targets[0].labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(labels, [("a", "b"), ("exported_probe", "y")]);
        assert_eq!(dropped, 0);
        // The rules see the meta labels and `__address__`; `__param_target` wins over it.
        discovery.relabel = relabel_rules(
            "- {source_labels: [__meta_dc], target_label: dc}\n\
             - {source_labels: [__meta_filepath], regex: '.*/(.*)', target_label: file}\n\
             - {source_labels: [__address__], regex: skip, action: drop}\n\
             - {source_labels: [__address__], replacement: '/srv/$1', target_label: __param_target}\n",
        );
        std::fs::write(&yaml, "- targets: [x, skip, x]\n  labels: {__meta_dc: eu}\n").unwrap();
        let groups = read_file(&yaml).unwrap();
        let (targets, dropped) = discovery.targets(groups.iter().map(|g| (g, meta())));
        assert_eq!(targets.len(), 1);
        assert_eq!(targets[0].target, "/srv/x");
        let labels: Vec<(&str, &str)> =
            targets[0].labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(labels, [("dc", "eu"), ("file", "b.yml")]);
        assert_eq!(dropped, 2, "one dropped by a rule, one named twice");
        // `__param_module` picks the module: set by a rule or by the group, else the probe's.
        discovery.relabel = relabel_rules(
            "- {source_labels: [kind], regex: '(.+)', target_label: __param_module}\n",
        );
        std::fs::write(
            &yaml,
            "- {targets: ['h:1'], labels: {kind: t}}\n- {targets: [x]}\n\
             - {targets: ['y:2'], labels: {kind: nope}}\n- {targets: ['z:3'], labels: {__param_module: t}}\n",
        )
        .unwrap();
        let groups = read_file(&yaml).unwrap();
        let (targets, dropped) = discovery.targets(groups.iter().map(|g| (g, meta())));
        let picked: Vec<(&str, &str)> =
            targets.iter().map(|t| (t.target.as_str(), t.module.name.as_str())).collect();
        assert_eq!(picked, [("h:1", "t"), ("x", "m"), ("z:3", "t")]);
        assert_eq!(targets[0].labels.iter().map(|(k, _)| k).collect::<Vec<_>>(), ["kind"]);
        assert_eq!(dropped, 1, "an unknown module");
        assert!(Arc::ptr_eq(&targets[1].labels, &targets[2].labels), "one copy of a label set");
        // A target that cannot run does not keep a later one of the same address out; a
        // labelmap giving no label name leaves its target out; an empty value is no label.
        discovery.relabel = relabel_rules(
            "- {source_labels: [kind], regex: '(.+)', target_label: __param_module}\n\
             - {regex: '__meta_(.*)', action: labelmap}\n",
        );
        std::fs::write(
            &yaml,
            "- {targets: ['h:1'], labels: {kind: nope}}\n- {targets: ['h:1'], labels: {kind: t, e: ''}}\n\
             - {targets: ['q:1'], labels: {kind: t, __meta_: x}}\n",
        )
        .unwrap();
        let groups = read_file(&yaml).unwrap();
        let (targets, dropped) = discovery.targets(groups.iter().map(|g| (g, meta())));
        let kept: Vec<(&str, Vec<&str>)> = targets
            .iter()
            .map(|t| (t.target.as_str(), t.labels.iter().map(|(k, _)| k.as_str()).collect()))
            .collect();
        assert_eq!(kept, [("h:1", vec!["filepath", "kind"])]);
        assert_eq!(dropped, 2);
        std::fs::write(&yaml, "- targets: [x]\n  labels: {\"a-b\": y}\n").unwrap();
        assert!(read_file(&yaml).unwrap_err().contains("\"a-b\" is not a label name"));
        std::fs::write(&yaml, "- targets: [x]\n  label: {a: b}\n").unwrap();
        assert!(read_file(&yaml).unwrap_err().contains("b.yml:2:"), "a misspelt key is located");
        std::fs::write(&json, r#"[{"targets": ["x"], "labels": null}, {"targets": null}]"#)
            .unwrap();
        assert_eq!(read_file(&json).unwrap().len(), 2);
        std::fs::write(&json, "null").unwrap();
        assert!(read_file(&json).unwrap().is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn relabel_rules(yaml: &str) -> Vec<relabel::Rule> {
        #[derive(Deserialize)]
        struct Rules {
            relabel_configs: Vec<serde_saphyr::Spanned<crate::config::probes::RelabelConfig>>,
        }
        let text = format!("relabel_configs:\n{yaml}");
        let source = crate::config::Source::from_text(Path::new("p.yaml"), &text).unwrap();
        let rules: Rules = source.parse().unwrap();
        rules.relabel_configs.iter().map(|r| relabel::Rule::prepare(r, &source).unwrap()).collect()
    }

    /// `m`, a file module, and `t`, a tcp one.
    fn modules() -> BTreeMap<String, Arc<PreparedModule>> {
        let text = "modules:\n  m:\n    prober: file\n  t:\n    prober: tcp\n";
        let source = crate::config::Source::from_text(Path::new("p.yaml"), text).unwrap();
        let file = crate::config::ProbesFile::load(&source).unwrap();
        let prepare = |(name, module): (String, _)| {
            let prepared = PreparedModule::prepare(&name, module, &source).unwrap();
            (name, Arc::new(prepared))
        };
        file.modules.into_iter().map(prepare).collect()
    }
}
