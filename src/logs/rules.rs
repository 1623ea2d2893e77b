//! Rules: the metrics of log_rules.yaml, compiled against a source's schema and applied to each
//! record: conditions, labels with value mapping, counters, gauges and histograms with their own
//! buckets, a series cap per metric and optional idle expiry.

use super::record::{number, Numbers, Schema, Values};
use crate::config::log_rules::{LabelMap, LabelSpec, MetricKind, MetricSpec, DEFAULT_MAX_SERIES};
use crate::config::{ConfigError, Source};
use crate::metrics::exposition::{Exemplar, Family, Labels, Name, Sample};
use regex::Regex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Prometheus' default buckets, for histograms that name none.
const DEFAULT_BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Label values are cut at this length so one odd line cannot make a huge series.
const MAX_LABEL_VALUE: usize = 256;
const MAX_EXEMPLAR_VALUE: usize = 100;

/// At most `max` bytes of `text`, ending on a character boundary.
fn cut(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Matches,
    NotMatches,
    In,
    NotIn,
}

struct Condition {
    field: usize,
    op: Op,
    text: String,
    number: Option<f64>,
    regex: Option<Regex>,
    list: Vec<String>,
}

impl Condition {
    fn holds(&self, values: &Values, numbers: &mut Numbers) -> bool {
        let value = values[self.field].as_deref();
        match self.op {
            Op::Eq | Op::Ne => {
                // Numerically when both are numbers (`503` equals `503.0`), else as text.
                let numerically =
                    self.number.and_then(|b| Some(numbers.of(values, self.field)? == b));
                let equal = numerically.unwrap_or_else(|| value.unwrap_or("") == self.text);
                equal == (self.op == Op::Eq)
            }
            Op::Lt | Op::Le | Op::Gt | Op::Ge => {
                let (Some(a), Some(b)) = (numbers.of(values, self.field), self.number) else {
                    return false;
                };
                match self.op {
                    Op::Lt => a < b,
                    Op::Le => a <= b,
                    Op::Gt => a > b,
                    _ => a >= b,
                }
            }
            Op::Matches | Op::NotMatches => {
                let matched = self.regex.as_ref().is_some_and(|r| r.is_match(value.unwrap_or("")));
                matched == (self.op == Op::Matches)
            }
            Op::In | Op::NotIn => {
                let v = value.unwrap_or("");
                self.list.iter().any(|item| item == v) == (self.op == Op::In)
            }
        }
    }

    /// `FIELD OP VALUE`; VALUE may be quoted; `in`/`not in` take `[a, b]`.
    fn parse(text: &str, schema: &mut Schema, open_schema: bool) -> Result<Condition, String> {
        let text = text.trim();
        let (field, rest) =
            text.split_once(char::is_whitespace).ok_or("expected `FIELD OP VALUE`")?;
        let rest = rest.trim_start();
        let ops = [
            ("not in ", Op::NotIn),
            ("in ", Op::In),
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("=~", Op::Matches),
            ("!~", Op::NotMatches),
            ("<", Op::Lt),
            (">", Op::Gt),
        ];
        let (op, value) = ops
            .iter()
            .find_map(|(word, op)| rest.strip_prefix(word).map(|v| (*op, v.trim())))
            .ok_or_else(|| {
                format!("unknown operator in {text:?} (==, !=, <, <=, >, >=, =~, !~, in, not in)")
            })?;
        let field = schema.resolve(field, open_schema)?;
        let unquoted = unquote(value);
        let mut condition = Condition {
            field,
            op,
            text: unquoted.to_string(),
            number: number(unquoted),
            regex: None,
            list: Vec::new(),
        };
        match op {
            Op::Lt | Op::Le | Op::Gt | Op::Ge if condition.number.is_none() => {
                return Err(format!("{value:?} is not a number"))
            }
            Op::Matches | Op::NotMatches => {
                condition.regex =
                    Some(Regex::new(unquoted).map_err(|e| format!("invalid regexp: {e}"))?)
            }
            Op::In | Op::NotIn => {
                let inner = value
                    .strip_prefix('[')
                    .and_then(|v| v.strip_suffix(']'))
                    .ok_or("`in` takes a list: [a, b]")?;
                condition.list = inner
                    .split(',')
                    .map(|item| unquote(item.trim()).to_string())
                    .filter(|i| !i.is_empty())
                    .collect();
            }
            _ => {}
        }
        Ok(condition)
    }
}

fn unquote(value: &str) -> &str {
    for quote in ['"', '\''] {
        if let Some(inner) = value.strip_prefix(quote).and_then(|v| v.strip_suffix(quote)) {
            return inner;
        }
    }
    value
}

struct LabelRule {
    name: String,
    field: usize,
    map: Option<LabelMap>,
    templates: Vec<Vec<String>>,
    template_text: Vec<String>,
    allowed: Vec<String>,
}

impl LabelRule {
    fn value<'v>(&'v self, values: &'v Values) -> &'v str {
        let raw = values[self.field].as_deref().unwrap_or("");
        let mapped = match self.map {
            Some(LabelMap::StatusClass) => match raw.as_bytes() {
                [b'1', _, _] => "1xx",
                [b'2', _, _] => "2xx",
                [b'3', _, _] => "3xx",
                [b'4', _, _] => "4xx",
                [b'5', _, _] => "5xx",
                _ => "other",
            },
            Some(LabelMap::PathTemplate) => self.template(raw),
            None => raw,
        };
        if !self.allowed.is_empty() && !self.allowed.iter().any(|a| a == mapped) {
            return "other";
        }
        cut(mapped, MAX_LABEL_VALUE)
    }

    fn template(&self, path: &str) -> &str {
        let path = path.split('?').next().unwrap_or(path);
        let segments: Vec<&str> = path.split('/').collect();
        for (template, text) in self.templates.iter().zip(&self.template_text) {
            let fits = if template.last().is_some_and(|s| s == "*") {
                segments.len() >= template.len() - 1
                    && template[..template.len() - 1]
                        .iter()
                        .zip(&segments)
                        .all(|(t, s)| segment_fits(t, s))
            } else {
                template.len() == segments.len()
                    && template.iter().zip(&segments).all(|(t, s)| segment_fits(t, s))
            };
            if fits {
                return text;
            }
        }
        "other"
    }
}

fn segment_fits(template: &str, segment: &str) -> bool {
    if template.starts_with(':') {
        !segment.is_empty()
    } else {
        template == segment
    }
}

/// One series' figures. Its label values are shared, so a snapshot copies numbers only.
#[derive(Clone)]
struct Series {
    labels: Arc<[String]>,
    value: f64,
    count: u64,
    buckets: Vec<u64>,
    updated: Instant,
    /// Trace id, observed value and when, in seconds since the epoch.
    exemplar: Option<(Arc<str>, f64, f64)>,
}

/// One metric of log_rules.yaml, compiled: what it counts and how. Immutable and shared; the
/// series it has counted live apart, in a [`RuleState`], so a reload that leaves the rule as it
/// was keeps them.
pub struct Rule {
    /// The family name (a counter's without `_total`).
    pub name: String,
    /// The name as configured, and as Prometheus shows it.
    pub full_name: String,
    /// Everything the configuration says of the rule, spelled out: equal definitions count the
    /// same way, so a reload carries the state over only when this is unchanged.
    pub definition: String,
    help: String,
    kind: MetricKind,
    conditions: Vec<Condition>,
    labels: Vec<LabelRule>,
    value: Option<usize>,
    scale: f64,
    buckets: Vec<f64>,
    max_series: usize,
    expire_after: Option<Duration>,
    exemplar: Option<usize>,
    /// Indexes in `labels` of `latest_per`: a new series replaces those equal in these.
    latest_per: Vec<usize>,
}

/// What a rule has counted: its series and how often it matched.
#[derive(Default)]
pub struct RuleState {
    /// Series by their label values, length-prefixed so no label value can make two label sets
    /// share a key. Hashed with a seeded hash (label values come from log lines) that is cheap
    /// for short keys.
    series: HashMap<Box<[u8]>, Series, foldhash::fast::RandomState>,
    /// The one series of a rule without labels, kept apart: counting it looks nothing up.
    unlabelled: Option<Series>,
    /// Scratch space for the series key of the record being counted.
    key: Vec<u8>,
    pub matched: u64,
    pub dropped_series: u64,
}

impl RuleState {
    pub fn series_count(&self) -> usize {
        self.series.len() + usize::from(self.unlabelled.is_some())
    }

    fn all_series(&self) -> impl Iterator<Item = &Series> {
        self.series.values().chain(&self.unlabelled)
    }

    /// What the rule has counted so far, for a scrape to show later.
    pub fn snapshot(&self) -> RuleSnapshot {
        RuleSnapshot {
            series: self.all_series().cloned().collect(),
            matched: self.matched,
            dropped_series: self.dropped_series,
        }
    }
}

/// A rule's series and counts at one moment.
pub struct RuleSnapshot {
    series: Vec<Series>,
    pub matched: u64,
    pub dropped_series: u64,
}

impl RuleSnapshot {
    pub fn series_count(&self) -> usize {
        self.series.len()
    }
}

impl Rule {
    pub fn compile(
        spec: &MetricSpec,
        schema: &mut Schema,
        open_schema: bool,
        source: &Source,
    ) -> Result<Rule, ConfigError> {
        let mut conditions = Vec::new();
        for when in &spec.when {
            conditions.push(
                Condition::parse(&when.value, schema, open_schema)
                    .map_err(|e| source.error_at_span(when, e))?,
            );
        }
        let mut labels = Vec::new();
        for (name, label) in &spec.labels {
            let (field, map, templates, allowed) = match &label.value {
                LabelSpec::Field(field) => (field.clone(), None, Vec::new(), Vec::new()),
                LabelSpec::Full(m) => (
                    m.field.clone().unwrap_or_else(|| name.clone()),
                    m.map,
                    m.templates.clone(),
                    m.allowed.clone(),
                ),
            };
            if map == Some(LabelMap::PathTemplate) && templates.is_empty() {
                return Err(source.error_at_span(label, "map: path_template needs `templates:`"));
            }
            let field =
                schema.resolve(&field, open_schema).map_err(|e| source.error_at_span(label, e))?;
            labels.push(LabelRule {
                name: name.clone(),
                field,
                map,
                templates: templates
                    .iter()
                    .map(|t| t.split('/').map(str::to_string).collect())
                    .collect(),
                template_text: templates,
                allowed,
            });
        }
        let mut field = |name: &Option<serde_saphyr::Spanned<String>>| match name {
            Some(v) => schema
                .resolve(&v.value, open_schema)
                .map(Some)
                .map_err(|e| source.error_at_span(v, e)),
            None => Ok(None),
        };
        let value = field(&spec.value)?;
        let exemplar = field(&spec.exemplar)?;
        let mut latest_per = Vec::new();
        if let Some(names) = &spec.latest_per {
            for name in &names.value {
                let index = labels.iter().position(|l| &l.name == name).ok_or_else(|| {
                    source.error_at_span(names, format!("latest_per: {name:?} is not a label"))
                })?;
                latest_per.push(index);
            }
        }
        let name = match spec.kind {
            MetricKind::Counter => {
                spec.name.value.strip_suffix("_total").unwrap_or(&spec.name.value).to_string()
            }
            _ => spec.name.value.clone(),
        };
        Ok(Rule {
            name,
            full_name: spec.name.value.clone(),
            definition: definition(spec),
            help: spec.help.clone().unwrap_or_else(|| {
                format!("{} from log source {}", spec.name.value, spec.source.value)
            }),
            kind: spec.kind,
            conditions,
            labels,
            value,
            scale: spec.scale.unwrap_or(1.0),
            buckets: spec
                .buckets
                .as_ref()
                .map_or_else(|| DEFAULT_BUCKETS.to_vec(), |b| b.value.clone()),
            max_series: spec.max_series.unwrap_or(DEFAULT_MAX_SERIES),
            expire_after: spec.expire_after.map(|d| d.0),
            exemplar,
            latest_per,
        })
    }

    /// Counts a record whose fields are `values` (read as numbers through `numbers`).
    pub fn apply(
        &self,
        state: &mut RuleState,
        values: &Values,
        numbers: &mut Numbers,
        now: Instant,
    ) {
        if !self.conditions.iter().all(|c| c.holds(values, numbers)) {
            return;
        }
        let observed = match self.value {
            Some(field) => {
                match numbers.of(values, field).map(|v| v * self.scale) {
                    Some(v) if v.is_finite() && (v >= 0.0 || self.kind != MetricKind::Counter) => v,
                    // No number, or one that would make a counter go down.
                    _ => return,
                }
            }
            None => 1.0,
        };
        state.matched += 1;
        let series = if self.labels.is_empty() {
            state.unlabelled.get_or_insert_with(|| self.new_series(Arc::new([]), now))
        } else {
            state.key.clear();
            for label in &self.labels {
                let value = label.value(values);
                state.key.extend_from_slice(&(value.len() as u32).to_le_bytes());
                state.key.extend_from_slice(value.as_bytes());
            }
            match state.series.get_mut(state.key.as_slice()) {
                Some(series) => series,
                None => {
                    if state.series.len() >= self.max_series {
                        state.dropped_series += 1;
                        return;
                    }
                    let labels: Arc<[String]> =
                        self.labels.iter().map(|l| l.value(values).to_string()).collect();
                    if !self.latest_per.is_empty() {
                        // The new series replaces those that share these labels' values.
                        state.series.retain(|_, s| {
                            self.latest_per.iter().any(|&i| s.labels[i] != labels[i])
                        });
                    }
                    let series = self.new_series(labels, now);
                    state.series.entry(state.key.as_slice().into()).or_insert(series)
                }
            }
        };
        series.updated = now;
        match self.kind {
            MetricKind::Counter => series.value += observed,
            MetricKind::Gauge => series.value = observed,
            MetricKind::Histogram => {
                // Buckets are increasing: the first that holds the value is past all those
                // below it. Counting them takes no branch that depends on the value.
                let bucket = self.buckets.iter().filter(|upper| **upper < observed).count();
                if let Some(b) = series.buckets.get_mut(bucket) {
                    *b += 1;
                }
                series.value += observed;
                series.count += 1;
            }
        }
        if let Some(trace) =
            self.exemplar.and_then(|f| values[f].as_deref()).filter(|t| !t.is_empty())
        {
            // OpenMetrics allows 128 characters of exemplar labels in all.
            let trace = cut(trace, MAX_EXEMPLAR_VALUE);
            let at = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            series.exemplar = Some((trace.into(), observed, at));
        }
    }

    fn new_series(&self, labels: Arc<[String]>, now: Instant) -> Series {
        let buckets = if self.kind == MetricKind::Histogram {
            vec![0; self.buckets.len()]
        } else {
            Vec::new()
        };
        Series { labels, value: 0.0, count: 0, buckets, updated: now, exemplar: None }
    }

    /// Drops series idle for longer than `expire_after`.
    pub fn expire(&self, state: &mut RuleState, now: Instant) {
        if let Some(after) = self.expire_after {
            state.series.retain(|_, s| now.duration_since(s.updated) < after);
            state.unlabelled.take_if(|s| now.duration_since(s.updated) >= after);
        }
    }

    /// The series with the highest values (counts), for reports.
    pub fn top(&self, state: &RuleState, n: usize) -> Vec<(Vec<(String, String)>, f64)> {
        let mut all: Vec<_> = state
            .all_series()
            .map(|s| {
                (
                    self.labels
                        .iter()
                        .map(|l| l.name.clone())
                        .zip(s.labels.iter().cloned())
                        .collect::<Vec<_>>(),
                    if self.kind == MetricKind::Histogram { s.count as f64 } else { s.value },
                )
            })
            .collect();
        all.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        all.truncate(n);
        all
    }

    pub fn family(&self, snapshot: &RuleSnapshot) -> Family {
        let mut family = match self.kind {
            MetricKind::Counter => Family::counter(self.name.clone(), self.help.clone()),
            MetricKind::Gauge => Family::gauge(self.name.clone(), self.help.clone()),
            MetricKind::Histogram => Family::histogram(self.name.clone(), self.help.clone()),
        };
        let mut series: Vec<&Series> = snapshot.series.iter().collect();
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
        for s in series {
            let labels: Labels = self
                .labels
                .iter()
                .zip(s.labels.iter())
                .map(|(l, v)| (Name::Owned(l.name.clone()), v.clone()))
                .collect();
            let exemplar = s.exemplar.as_ref().map(|(trace, value, at)| {
                Box::new(Exemplar {
                    labels: vec![(Name::Borrowed("trace_id"), trace.to_string())],
                    value: *value,
                    timestamp: *at,
                })
            });
            match self.kind {
                MetricKind::Counter | MetricKind::Gauge => {
                    family.samples.push(Sample { exemplar, ..Sample::new(labels, s.value) })
                }
                MetricKind::Histogram => {
                    let mut cumulative = 0;
                    let exemplar_bucket = exemplar
                        .as_ref()
                        .map(|e| self.buckets.partition_point(|upper| *upper < e.value));
                    for (i, (upper, count)) in self.buckets.iter().zip(&s.buckets).enumerate() {
                        cumulative += count;
                        let mut bucket_labels = labels.clone();
                        bucket_labels.push((Name::Borrowed("le"), format_bound(*upper)));
                        let ex = if exemplar_bucket == Some(i) { exemplar.clone() } else { None };
                        family.samples.push(Sample {
                            suffix: "_bucket",
                            exemplar: ex,
                            ..Sample::new(bucket_labels, cumulative as f64)
                        });
                    }
                    let mut inf = labels.clone();
                    inf.push((Name::Borrowed("le"), "+Inf".into()));
                    let ex = if exemplar_bucket == Some(self.buckets.len()) {
                        exemplar.clone()
                    } else {
                        None
                    };
                    family.samples.push(Sample {
                        suffix: "_bucket",
                        exemplar: ex,
                        ..Sample::new(inf, s.count as f64)
                    });
                    family
                        .samples
                        .push(Sample { suffix: "_sum", ..Sample::new(labels.clone(), s.value) });
                    family
                        .samples
                        .push(Sample { suffix: "_count", ..Sample::new(labels, s.count as f64) });
                }
            }
        }
        family
    }
}

/// The rule's configuration without its place in the file: moving a rule, or editing another
/// one, leaves it equal.
fn definition(spec: &MetricSpec) -> String {
    let when: Vec<&str> = spec.when.iter().map(|w| w.value.as_str()).collect();
    let labels: Vec<(&String, &LabelSpec)> =
        spec.labels.iter().map(|(name, l)| (name, &l.value)).collect();
    format!(
        "{:?}",
        (
            &spec.name.value,
            spec.kind,
            &spec.help,
            &spec.source.value,
            when,
            labels,
            spec.value.as_ref().map(|v| &v.value),
            spec.scale,
            spec.buckets.as_ref().map(|b| &b.value),
            spec.max_series,
            spec.expire_after.map(|d| d.0),
            (spec.exemplar.as_ref().map(|e| &e.value), spec.latest_per.as_ref().map(|l| &l.value)),
        )
    )
}

fn format_bound(upper: f64) -> String {
    if upper.fract() == 0.0 && upper.abs() < 1e15 {
        format!("{upper:.1}")
    } else {
        format!("{upper}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    fn schema() -> Schema {
        Schema::new(vec!["status".into(), "method".into(), "rt".into(), "path".into()])
    }

    fn values<'a>(status: &'a str, method: &'a str, rt: &'a str, path: &'a str) -> Values<'a> {
        vec![
            Some(Cow::Borrowed(status)),
            Some(Cow::Borrowed(method)),
            Some(Cow::Borrowed(rt)),
            Some(Cow::Borrowed(path)),
        ]
    }

    #[test]
    fn conditions() {
        let mut s = schema();
        let holds = |t: &str, s: &mut Schema, v: &Values| {
            let mut numbers = Numbers::default();
            numbers.clear(v.len());
            Condition::parse(t, s, false).unwrap().holds(v, &mut numbers)
        };
        let v = values("503", "GET", "1.5", "/a");
        assert!(holds("status >= 500", &mut s, &v));
        assert!(holds("status == 503", &mut s, &v));
        assert!(holds("status == 503.0", &mut s, &v));
        assert!(!holds("status != 503", &mut s, &v));
        assert!(holds("rt > 1", &mut s, &v));
        assert!(holds("method in [GET, 'POST']", &mut s, &v));
        assert!(holds("method not in [PUT]", &mut s, &v));
        assert!(holds("path =~ \"^/a$\"", &mut s, &v));
        assert!(holds("path !~ ^/b", &mut s, &v));
        assert!(holds("method == GET", &mut s, &v));
        assert!(!holds("rt < 1", &mut s, &values("200", "GET", "-", "/")), "no value, no match");
        assert!(
            matches!(Condition::parse("nope == 1", &mut s, false), Err(e) if e.contains("unknown field"))
        );
        assert!(Condition::parse("status >= abc", &mut s, false).is_err());
        assert!(Condition::parse("status ~~ 1", &mut s, false).is_err());
    }

    #[test]
    fn counters_never_go_down() {
        use crate::config::{log_rules::MetricSpec, Source};
        let source = Source::from_text(
            std::path::Path::new("r.yaml"),
            "name: bytes_total\ntype: counter\nsource: s\nvalue: rt\n",
        )
        .unwrap();
        let spec: MetricSpec = source.parse().unwrap();
        let rule =
            Rule::compile(&spec, &mut schema(), false, &source).unwrap_or_else(|e| panic!("{e}"));
        let mut state = RuleState::default();
        let now = Instant::now();
        let mut numbers = Numbers::default();
        for rt in ["5", "-3", "inf", "2"] {
            numbers.clear(4);
            rule.apply(&mut state, &values("200", "GET", rt, "/"), &mut numbers, now);
        }
        assert_eq!(rule.family(&state.snapshot()).samples[0].value, 7.0);
    }

    /// A snapshot keeps the figures of its moment while the rule goes on counting.
    #[test]
    fn a_snapshot_keeps_its_figures() {
        use crate::config::{log_rules::MetricSpec, Source};
        let text = "name: rt_seconds\ntype: histogram\nsource: s\nvalue: rt\nbuckets: [1, 2]\n\
                    labels: { method: method }\n";
        let source = Source::from_text(std::path::Path::new("r.yaml"), text).unwrap();
        let spec: MetricSpec = source.parse().unwrap();
        let rule =
            Rule::compile(&spec, &mut schema(), false, &source).unwrap_or_else(|e| panic!("{e}"));
        let (mut state, mut numbers, now) =
            (RuleState::default(), Numbers::default(), Instant::now());
        let mut count = |state: &mut RuleState, rt| {
            numbers.clear(4);
            rule.apply(state, &values("200", "GET", rt, "/"), &mut numbers, now);
        };
        count(&mut state, "1.5");
        let before = state.snapshot();
        count(&mut state, "0.5");
        count(&mut state, "9");
        let figures = |snapshot: &RuleSnapshot| {
            let family = rule.family(snapshot);
            family.samples.iter().map(|s| (s.suffix, s.value)).collect::<Vec<_>>()
        };
        let bucket = "_bucket";
        assert_eq!(
            figures(&before),
            [(bucket, 0.0), (bucket, 1.0), (bucket, 1.0), ("_sum", 1.5), ("_count", 1.0)]
        );
        assert_eq!(
            figures(&state.snapshot()),
            [(bucket, 1.0), (bucket, 2.0), (bucket, 3.0), ("_sum", 11.0), ("_count", 3.0)]
        );
        assert_eq!((before.matched, state.snapshot().matched), (1, 3));
    }

    #[test]
    fn label_mapping() {
        let rule = |map, templates: &[&str], allowed: &[&str], field| LabelRule {
            name: "x".into(),
            field,
            map,
            templates: templates
                .iter()
                .map(|t| t.split('/').map(str::to_string).collect())
                .collect(),
            template_text: templates.iter().map(|t| t.to_string()).collect(),
            allowed: allowed.iter().map(|a| a.to_string()).collect(),
        };
        let v = values("503", "BREW", "1", "/users/42/orders?x=1");
        assert_eq!(rule(Some(LabelMap::StatusClass), &[], &[], 0).value(&v), "5xx");
        assert_eq!(rule(None, &[], &["GET", "POST"], 1).value(&v), "other");
        let paths = rule(
            Some(LabelMap::PathTemplate),
            &["/users/:id", "/users/:id/orders", "/static/*"],
            &[],
            3,
        );
        assert_eq!(paths.value(&v), "/users/:id/orders");
        assert_eq!(paths.value(&values("", "", "", "/static/app.1.js")), "/static/*");
        assert_eq!(paths.value(&values("", "", "", "/elsewhere")), "other");
    }
}
