//! log_rules.yaml: log sources (files, their format, how records span lines) and the metrics
//! derived from their records. Field names are checked against what each source's parser
//! produces when the file is compiled (see `logs::Pipeline`), with the line of the mistake.

use super::values::{ByteSize, Pattern, PromDuration};
use super::{ConfigError, Source};
use serde::Deserialize;
use serde_saphyr::Spanned;
use std::collections::{BTreeMap, HashSet};

pub const DEFAULT_MAX_LINE_BYTES: usize = 64 * 1024;
pub const DEFAULT_MAX_SERIES: usize = 1000;
pub const DEFAULT_MAX_QUERIES: usize = 10_000;
/// Bytes of hashes and SQL text a source's query index holds at most by default.
pub const DEFAULT_MAX_QUERY_BYTES: u64 = 16 << 20;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct LogRulesFile {
    #[serde(default)]
    pub sources: Vec<SourceSpec>,
    #[serde(default)]
    pub metrics: Vec<MetricSpec>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Nginx,
    Spring,
    Regex,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum StartAt {
    #[default]
    End,
    Beginning,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    pub name: Spanned<String>,
    /// Paths or globs; globs are scanned again while running, so files that appear later are read.
    pub paths: Vec<String>,
    pub format: Spanned<LogFormat>,
    /// nginx: a preset (`combined`, `main`, `combined_timed`), the `log_format` directive as in
    /// nginx.conf, its quoted strings, or the format text itself.
    #[serde(default)]
    pub log_format: Option<Spanned<String>>,
    /// nginx: the values of variables nginx does not know (`set`, `map`, Lua), each as the name
    /// of a built-in variable whose values they have (`upstream_host: host`).
    #[serde(default)]
    pub variables: BTreeMap<String, Spanned<String>>,
    /// spring: a logback pattern; by default the patterns of Spring Boot 1.5 to 3.x are recognised.
    #[serde(default)]
    pub pattern: Option<Spanned<String>>,
    /// regex: named captures become fields.
    #[serde(default)]
    pub regex: Option<Spanned<String>>,
    /// A record starts at a line matching `start`; other lines continue it (spring: a timestamp).
    #[serde(default)]
    pub multiline: Option<Multiline>,
    #[serde(default)]
    pub start_at: StartAt,
    #[serde(default)]
    pub max_line_bytes: Option<usize>,
    #[serde(default)]
    pub poll_interval: Option<PromDuration>,
    /// The wrapper of a container runtime around each line: `docker` (json-file), `cri`
    /// (containerd, CRI-O) or `auto`; adds fields `stream`, `container_time`, and `namespace`,
    /// `pod`, `container` from a Kubernetes log path.
    #[serde(default)]
    pub container: Option<Container>,
    /// How the tailer learns that files changed: `inotify` (with a scan every `poll_interval`
    /// as a safety net) or `poll` (every `poll_interval`); by default inotify where it can.
    #[serde(default)]
    pub watch: Option<Watch>,
    /// More fields from named captures of a regex run on a field.
    #[serde(default)]
    pub extract: Vec<Extract>,
    /// Normalise the SQL in a field (literals and IN-lists replaced, whitespace collapsed) into
    /// `sql_normalized`, and its fingerprint into `sql_hash`.
    #[serde(default)]
    pub sql_fingerprint: Option<Spanned<String>>,
    /// Keep a bounded hash → SQL index from two fields, served on `/queries`.
    #[serde(default)]
    pub queries: Option<QueryIndexSpec>,
}

/// Which wrapper a container runtime puts around the lines of a source's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Container {
    Docker,
    Cri,
    /// Each line tells: a Docker line is a JSON object, a CRI line starts with a timestamp.
    Auto,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Watch {
    Inotify,
    Poll,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Multiline {
    pub start: Pattern,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Extract {
    pub field: Spanned<String>,
    pub regex: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryIndexSpec {
    pub hash: Spanned<String>,
    pub sql: Spanned<String>,
    #[serde(default)]
    pub max_entries: Option<usize>,
    /// Bytes of hashes and SQL text kept at most (16MiB).
    #[serde(default)]
    pub max_bytes: Option<ByteSize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricSpec {
    /// The name as Prometheus shows it (a counter's `_total` included).
    pub name: Spanned<String>,
    #[serde(rename = "type")]
    pub kind: MetricKind,
    #[serde(default)]
    pub help: Option<String>,
    pub source: Spanned<String>,
    /// Conditions, all of which must hold: `FIELD OP VALUE` with ==, !=, <, <=, >, >=, =~, !~,
    /// `in [a, b]`, `not in [a, b]`.
    #[serde(default)]
    pub when: Vec<Spanned<String>>,
    #[serde(default)]
    pub labels: BTreeMap<String, Spanned<LabelSpec>>,
    /// The field a counter adds, a gauge is set to, or a histogram observes.
    #[serde(default)]
    pub value: Option<Spanned<String>>,
    /// Multiplies the value (e.g. 0.001 for milliseconds to seconds).
    #[serde(default)]
    pub scale: Option<f64>,
    #[serde(default)]
    pub buckets: Option<Spanned<Vec<f64>>>,
    #[serde(default)]
    pub max_series: Option<usize>,
    /// Series not updated for this long are dropped (off unless set).
    #[serde(default)]
    pub expire_after: Option<PromDuration>,
    /// A field holding a trace id: updated samples carry it as an OpenMetrics exemplar.
    #[serde(default)]
    pub exemplar: Option<Spanned<String>>,
    /// Labels whose values name one thing (an application): a gauge's new series replaces the
    /// series that share them, so an info metric shows only the current version. Such a gauge
    /// needs no `value:` (it is 1).
    #[serde(default)]
    pub latest_per: Option<Spanned<Vec<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum LabelSpec {
    /// `label: field`
    Field(String),
    Full(LabelMapping),
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct LabelMapping {
    /// The field; by default the label's own name.
    #[serde(default)]
    pub field: Option<String>,
    /// `status_class` (503 → 5xx) or `path_template` (with `templates`).
    #[serde(default)]
    pub map: Option<LabelMap>,
    /// Path templates such as `/users/:id`; a path matching none becomes `other`.
    #[serde(default)]
    pub templates: Vec<String>,
    /// Values outside this set become `other`.
    #[serde(default)]
    pub allowed: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LabelMap {
    StatusClass,
    PathTemplate,
}

impl LogRulesFile {
    pub fn load(source: &Source) -> Result<LogRulesFile, ConfigError> {
        let file: LogRulesFile = source.parse()?;
        let mut names = HashSet::new();
        for s in &file.sources {
            if !names.insert(s.name.value.as_str()) {
                return Err(source
                    .error_at_span(&s.name, format!("duplicate source name {:?}", s.name.value)));
            }
            if s.paths.is_empty() {
                return Err(source.error_at_span(&s.name, "a source needs at least one path"));
            }
        }
        let mut metric_names = HashSet::new();
        for m in &file.metrics {
            // The family a name makes: a counter's `x_total` is family `x`, which clashes with
            // a gauge `x` or another counter `x_total`.
            let family = if m.kind == MetricKind::Counter {
                m.name.value.strip_suffix("_total").unwrap_or(&m.name.value)
            } else {
                &m.name.value
            };
            if ["probe_", "lookout_", "process_"].iter().any(|p| family.starts_with(p)) {
                return Err(source.error_at_span(
                    &m.name,
                    "names starting with probe_, lookout_ or process_ are lookout's own",
                ));
            }
            if !metric_names.insert(family.to_string()) {
                return Err(source.error_at_span(
                    &m.name,
                    format!("metric {:?} clashes with another metric's name", m.name.value),
                ));
            }
            if let (Some(e), MetricKind::Gauge) = (&m.exemplar, m.kind) {
                return Err(source.error_at_span(
                    e,
                    "OpenMetrics allows exemplars on counters and histograms only",
                ));
            }
            if !names.contains(m.source.value.as_str()) {
                return Err(
                    source.error_at_span(&m.source, format!("unknown source {:?}", m.source.value))
                );
            }
            if !is_metric_name(&m.name.value) {
                return Err(source
                    .error_at_span(&m.name, format!("invalid metric name {:?}", m.name.value)));
            }
            // An info gauge (`latest_per`) is 1 for the current label set; other gauges and
            // histograms take a field.
            let info = m.kind == MetricKind::Gauge && m.latest_per.is_some();
            if m.kind != MetricKind::Counter && m.value.is_none() && !info {
                return Err(source.error_at_span(
                    &m.name,
                    "a gauge or histogram needs `value:` (the field it takes), or a gauge \
                     `latest_per:` (an info metric, 1 for the current label set)",
                ));
            }
            if let Some(buckets) = &m.buckets {
                if m.kind != MetricKind::Histogram {
                    return Err(source.error_at_span(buckets, "buckets are for histograms"));
                }
                if buckets.value.is_empty()
                    || buckets.value.windows(2).any(|w| w[0] >= w[1])
                    || buckets.value.iter().any(|b| !b.is_finite())
                {
                    return Err(source
                        .error_at_span(buckets, "buckets must be finite and strictly increasing"));
                }
            }
            for name in m.labels.keys() {
                if !super::probes::is_user_label_name(name) || name == "le" {
                    return Err(
                        source.error_at_span(&m.name, format!("invalid label name {name:?}"))
                    );
                }
            }
            if let Some(latest) = m.latest_per.as_ref().filter(|_| m.kind != MetricKind::Gauge) {
                return Err(source.error_at_span(latest, "latest_per is for gauges"));
            }
            if m.max_series == Some(0) {
                return Err(source.error_at_span(&m.name, "max_series must be at least 1"));
            }
        }
        Ok(file)
    }
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}
