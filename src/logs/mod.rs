//! Log-derived metrics: tailer → framing (lines, multiline records) → parsers → rules.
//!
//! Each source runs on its own thread (file reads block), feeding its records through its
//! pipeline under a lock that `/metrics` takes only to read the results.

pub mod framing;
pub mod offline;
pub mod parse;
pub mod positions;
pub mod record;
pub mod rules;
pub mod sql;
pub mod tailer;

use crate::config::log_rules::{
    LogFormat, LogRulesFile, SourceSpec, DEFAULT_MAX_LINE_BYTES, DEFAULT_MAX_QUERIES,
};
use crate::config::{ConfigError, Source};
use crate::metrics::exposition::{Family, Name};
use parse::{Parsed, Parser};
use positions::Positions;
use record::{Schema, Values};
use regex::Regex;
use rules::Metric;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tailer::{TailStats, Tailer};

const DEFAULT_POLL: Duration = Duration::from_millis(250);

/// More fields from the named captures of a regex run on a field.
struct Extract {
    field: usize,
    regex: Regex,
    /// (capture group, field it fills)
    targets: Vec<(usize, usize)>,
}

/// A bounded index from query hash to SQL text, for `/queries`.
#[derive(Default)]
pub struct QueryIndex {
    hash: usize,
    sql: usize,
    max: usize,
    pub entries: HashMap<String, String>,
    pub dropped: u64,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct RecordCounts {
    pub matched: u64,
    pub unmatched: u64,
    pub errors: u64,
}

/// One source compiled: how to find, frame, parse and measure its records.
pub struct Pipeline {
    pub name: String,
    pub patterns: Vec<String>,
    pub start_at: crate::config::log_rules::StartAt,
    pub max_line_bytes: usize,
    pub poll_interval: Duration,
    pub multiline: Option<Regex>,
    parser: Parser,
    schema: Schema,
    extracts: Vec<Extract>,
    sql: Option<(usize, usize, usize)>,
    pub queries: Option<QueryIndex>,
    pub metrics: Vec<Metric>,
    pub records: RecordCounts,
    pub tail: TailStats,
    pub lag_bytes: u64,
    pub files: usize,
    pub last_record: Option<SystemTime>,
    /// Lines per second over the last few seconds, for the status page.
    pub lines_per_second: f64,
    rate_window: Option<(Instant, u64)>,
}

impl Pipeline {
    pub fn compile(
        spec: &SourceSpec,
        file: &LogRulesFile,
        source: &Source,
    ) -> Result<Pipeline, ConfigError> {
        let format = spec.format.value;
        let needs = |what: &str| {
            source.error_at_span(&spec.format, format!("format {format:?} needs `{what}:`"))
        };
        let parser = match format {
            LogFormat::Nginx => {
                let text = spec.log_format.as_ref().map_or("combined", |f| f.value.as_str());
                let compiled = parse::nginx::preset(text).unwrap_or_else(|| text.to_string());
                let at = |e: String| match &spec.log_format {
                    Some(f) => source.error_at_span(f, format!("log_format: {e}")),
                    None => source.error_at_span(&spec.format, e),
                };
                Parser::Nginx(parse::nginx::NginxFormat::compile(&compiled).map_err(at)?)
            }
            LogFormat::Spring => match &spec.pattern {
                Some(p) => Parser::Spring(
                    parse::spring::SpringFormat::logback(&p.value)
                        .map_err(|e| source.error_at_span(p, e))?,
                ),
                None => Parser::Spring(parse::spring::SpringFormat::auto()),
            },
            LogFormat::Regex => {
                let text = spec.regex.as_ref().ok_or_else(|| needs("regex"))?;
                let regex = Regex::new(&text.value)
                    .map_err(|e| source.error_at_span(text, format!("invalid regexp: {e}")))?;
                if regex.capture_names().flatten().next().is_none() {
                    return Err(
                        source.error_at_span(text, "the regex has no named capture (?P<name>…)")
                    );
                }
                Parser::Regex(regex)
            }
            LogFormat::Json => Parser::Json,
        };
        let open = parser.open_schema();
        let mut schema = Schema::new(parser.fields());
        let multiline = match (&spec.multiline, format) {
            (Some(m), _) => Some(m.start.0.clone()),
            (None, LogFormat::Spring) => {
                Some(Regex::new(parse::spring::RECORD_START).expect("static regex"))
            }
            (None, _) => None,
        };
        let resolve = |name: &serde_saphyr::Spanned<String>,
                       schema: &mut Schema|
         -> Result<usize, ConfigError> {
            match schema.index(&name.value) {
                Some(i) => Ok(i),
                None if open => Ok(schema.add(&name.value)),
                None => Err(source.error_at_span(
                    name,
                    format!(
                        "unknown field {:?}; this source has: {}",
                        name.value,
                        schema.names().join(", ")
                    ),
                )),
            }
        };
        let mut extracts = Vec::new();
        for e in &spec.extract {
            let field = resolve(&e.field, &mut schema)?;
            let regex = Regex::new(&e.regex.value)
                .map_err(|err| source.error_at_span(&e.regex, format!("invalid regexp: {err}")))?;
            let targets = regex
                .capture_names()
                .enumerate()
                .filter_map(|(g, n)| n.map(|n| (g, schema.add(n))))
                .collect::<Vec<_>>();
            if targets.is_empty() {
                return Err(
                    source.error_at_span(&e.regex, "the regex has no named capture (?P<name>…)")
                );
            }
            extracts.push(Extract { field, regex, targets });
        }
        let sql = match &spec.sql_fingerprint {
            Some(field) => Some((
                resolve(field, &mut schema)?,
                schema.add("sql_normalized"),
                schema.add("sql_hash"),
            )),
            None => None,
        };
        let queries = match &spec.queries {
            Some(q) => Some(QueryIndex {
                hash: resolve(&q.hash, &mut schema)?,
                sql: resolve(&q.sql, &mut schema)?,
                max: q.max_entries.unwrap_or(DEFAULT_MAX_QUERIES),
                ..QueryIndex::default()
            }),
            None => None,
        };
        let mut metrics = Vec::new();
        for m in file.metrics.iter().filter(|m| m.source.value == spec.name.value) {
            metrics.push(Metric::compile(m, &mut schema, open, source)?);
        }
        Ok(Pipeline {
            name: spec.name.value.clone(),
            patterns: spec.paths.clone(),
            start_at: spec.start_at,
            max_line_bytes: spec.max_line_bytes.unwrap_or(DEFAULT_MAX_LINE_BYTES).max(64),
            poll_interval: spec
                .poll_interval
                .map_or(DEFAULT_POLL, |p| p.0.max(Duration::from_millis(10))),
            multiline,
            parser,
            schema,
            extracts,
            sql,
            queries,
            metrics,
            records: RecordCounts::default(),
            tail: TailStats::default(),
            lag_bytes: 0,
            files: 0,
            last_record: None,
            lines_per_second: 0.0,
            rate_window: None,
        })
    }

    pub fn tailer(&self, positions: Option<Arc<Positions>>) -> Tailer {
        Tailer::new(
            &self.name,
            self.patterns.clone(),
            self.start_at,
            self.max_line_bytes,
            self.multiline.clone(),
            positions,
        )
    }

    /// Runs one record through the parser, the field extractors and every metric.
    pub fn process(&mut self, record: &str, now: Instant) {
        let mut values: Values = vec![None; self.schema.len()];
        match self.parser.parse(record, &self.schema, &mut values) {
            Parsed::Record => self.records.matched += 1,
            Parsed::Unmatched => {
                self.records.unmatched += 1;
                return;
            }
            Parsed::Error => {
                self.records.errors += 1;
                return;
            }
        }
        for e in &self.extracts {
            let found: Vec<(usize, Cow<str>)> = match &values[e.field] {
                Some(Cow::Borrowed(text)) => match e.regex.captures(text) {
                    Some(caps) => e
                        .targets
                        .iter()
                        .filter_map(|(g, f)| caps.get(*g).map(|m| (*f, Cow::Borrowed(m.as_str()))))
                        .collect(),
                    None => Vec::new(),
                },
                Some(Cow::Owned(text)) => match e.regex.captures(text) {
                    Some(caps) => e
                        .targets
                        .iter()
                        .filter_map(|(g, f)| {
                            caps.get(*g).map(|m| (*f, Cow::Owned(m.as_str().to_string())))
                        })
                        .collect(),
                    None => Vec::new(),
                },
                None => Vec::new(),
            };
            for (field, value) in found {
                values[field] = Some(value);
            }
        }
        if let Some((field, normalized_field, hash_field)) = self.sql {
            if let Some(text) = values[field].as_deref().filter(|t| !t.trim().is_empty()) {
                let normalized = sql::normalize(text);
                values[hash_field] = Some(Cow::Owned(sql::fingerprint(&normalized)));
                values[normalized_field] = Some(Cow::Owned(normalized));
            }
        }
        if let Some(index) = &mut self.queries {
            if let (Some(hash), Some(text)) =
                (values[index.hash].as_deref(), values[index.sql].as_deref())
            {
                if !index.entries.contains_key(hash) {
                    if index.entries.len() < index.max {
                        index.entries.insert(hash.to_string(), text.to_string());
                    } else {
                        index.dropped += 1;
                    }
                }
            }
        }
        for metric in &mut self.metrics {
            metric.apply(&values, now);
        }
        self.last_record = Some(SystemTime::now());
    }

    /// Updates `lines_per_second` once its window of a few seconds has passed.
    fn update_rate(&mut self, now: Instant) {
        const WINDOW: Duration = Duration::from_secs(5);
        match self.rate_window {
            Some((start, lines)) if now.duration_since(start) >= WINDOW => {
                self.lines_per_second =
                    (self.tail.lines - lines) as f64 / now.duration_since(start).as_secs_f64();
                self.rate_window = Some((now, self.tail.lines));
            }
            Some(_) => {}
            None => self.rate_window = Some((now, self.tail.lines)),
        }
    }

    pub fn expire(&mut self, now: Instant) {
        for metric in &mut self.metrics {
            metric.expire(now);
        }
    }

    /// The rules' metric families.
    pub fn families(&self) -> Vec<Family> {
        self.metrics.iter().map(Metric::family).collect()
    }

    /// Self-metrics of this source and its rules.
    pub fn self_families(&self) -> Vec<Family> {
        let source = || vec![(Name::Borrowed("source"), self.name.clone())];
        let with = |name: &'static str, value: &str| {
            let mut l = source();
            l.push((Name::Borrowed(name), value.to_string()));
            l
        };
        let t = &self.tail;
        let mut families = vec![
            Family::counter("lookout_log_lines", "Lines read, by source").with(source(), t.lines as f64),
            Family::counter("lookout_log_bytes", "Bytes read, by source").with(source(), t.bytes as f64),
            Family::counter(
                "lookout_log_records",
                "Records by source and result: matched (parsed), unmatched (not of the format), error (broken)",
            )
            .with(with("result", "matched"), self.records.matched as f64)
            .with(with("result", "unmatched"), self.records.unmatched as f64)
            .with(with("result", "error"), self.records.errors as f64),
            Family::counter("lookout_log_rotations", "Files replaced at their path (rename or delete and create)")
                .with(source(), t.rotations as f64),
            Family::counter("lookout_log_truncations", "Files truncated or rewritten in place (copytruncate)")
                .with(source(), t.truncations as f64),
            Family::counter("lookout_log_lines_cut", "Lines longer than max_line_bytes, cut to it").with(source(), t.cut_lines as f64),
            Family::counter("lookout_log_continuation_lines_dropped", "Continuation lines dropped from records over 1 MiB")
                .with(source(), t.dropped_lines as f64),
            Family::counter("lookout_log_read_errors", "Errors reading files").with(source(), t.read_errors as f64),
            Family::counter("lookout_log_position_save_errors", "Failures to write the positions file")
                .with(source(), t.position_errors as f64),
            Family::gauge("lookout_log_lag_bytes", "Bytes written to the source's files and not read yet")
                .with(source(), self.lag_bytes as f64),
            Family::gauge("lookout_log_files", "Files being read").with(source(), self.files as f64),
        ];
        if let Some(at) = self.last_record {
            let seconds =
                at.duration_since(SystemTime::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
            families.push(
                Family::gauge(
                    "lookout_log_last_record_timestamp_seconds",
                    "When the source last produced a record",
                )
                .with(source(), seconds),
            );
        }
        let mut matched =
            Family::counter("lookout_log_rule_matches", "Records a rule counted, by metric");
        let mut series = Family::gauge("lookout_log_series", "Series a rule holds, by metric");
        let mut dropped = Family::counter(
            "lookout_log_series_dropped",
            "Updates refused because the metric reached max_series, by metric",
        );
        for m in &self.metrics {
            let metric = with("metric", &m.full_name);
            matched = matched.with(metric.clone(), m.matched as f64);
            series = series.with(metric.clone(), m.series_count() as f64);
            dropped = dropped.with(metric, m.dropped_series as f64);
        }
        families.extend([matched, series, dropped]);
        if let Some(q) = &self.queries {
            families.push(
                Family::gauge(
                    "lookout_log_queries_indexed",
                    "Query hashes with their SQL kept for /queries",
                )
                .with(source(), q.entries.len() as f64),
            );
            families.push(
                Family::counter(
                    "lookout_log_queries_dropped",
                    "Query hashes not kept because the index was full",
                )
                .with(source(), q.dropped as f64),
            );
        }
        families
    }
}

/// Compiles every source of the file.
pub fn compile(file: &LogRulesFile, source: &Source) -> Result<Vec<Pipeline>, ConfigError> {
    file.sources.iter().map(|s| Pipeline::compile(s, file, source)).collect()
}

pub struct SourceSummary {
    pub name: String,
    pub patterns: String,
    pub files: usize,
    pub lines_per_second: f64,
    pub last_record_age: Option<Duration>,
    pub unmatched_share: f64,
    pub lag_bytes: u64,
}

/// The sources being tailed, each on its own thread.
pub struct LogRuntime {
    pub pipelines: Vec<Arc<Mutex<Pipeline>>>,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
    positions: Option<Arc<Positions>>,
}

impl LogRuntime {
    pub fn start(pipelines: Vec<Pipeline>, positions: Option<Arc<Positions>>) -> LogRuntime {
        let stop = Arc::new(AtomicBool::new(false));
        let pipelines: Vec<Arc<Mutex<Pipeline>>> =
            pipelines.into_iter().map(|p| Arc::new(Mutex::new(p))).collect();
        let threads = pipelines
            .iter()
            .map(|pipeline| {
                let (pipeline, stop, positions) =
                    (pipeline.clone(), stop.clone(), positions.clone());
                let name = pipeline.lock().expect("pipeline lock").name.clone();
                std::thread::Builder::new()
                    .name(format!("tail-{name}"))
                    .spawn(move || follow(&pipeline, &stop, positions))
                    .expect("spawning a tailer thread")
            })
            .collect();
        LogRuntime { pipelines, stop, threads, positions }
    }

    pub fn families(&self) -> Vec<Family> {
        let mut families = Vec::new();
        for p in &self.pipelines {
            let p = p.lock().expect("pipeline lock");
            families.extend(p.families());
            families.extend(p.self_families());
        }
        families
    }

    /// A summary of each source for the status page.
    pub fn summaries(&self) -> Vec<SourceSummary> {
        self.pipelines
            .iter()
            .map(|p| {
                let p = p.lock().expect("pipeline lock");
                let r = p.records;
                let total = r.matched + r.unmatched + r.errors;
                SourceSummary {
                    name: p.name.clone(),
                    patterns: p.patterns.join(", "),
                    files: p.files,
                    lines_per_second: p.lines_per_second,
                    last_record_age: p.last_record.and_then(|t| t.elapsed().ok()),
                    unmatched_share: if total == 0 {
                        0.0
                    } else {
                        (r.unmatched + r.errors) as f64 / total as f64
                    },
                    lag_bytes: p.lag_bytes,
                }
            })
            .collect()
    }

    /// Query hash → SQL over every source that keeps an index.
    pub fn queries(&self) -> Vec<(String, String, String)> {
        let mut all = Vec::new();
        for p in &self.pipelines {
            let p = p.lock().expect("pipeline lock");
            if let Some(q) = &p.queries {
                all.extend(q.entries.iter().map(|(h, s)| (p.name.clone(), h.clone(), s.clone())));
            }
        }
        all.sort();
        all
    }

    /// Stops the threads and saves positions.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Release);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        if let Some(p) = &self.positions {
            if let Err(e) = p.save() {
                tracing::error!("saving positions: {e}");
            }
        }
    }
}

fn follow(pipeline: &Mutex<Pipeline>, stop: &AtomicBool, positions: Option<Arc<Positions>>) {
    let (mut tailer, poll) = {
        let p = pipeline.lock().expect("pipeline lock");
        (p.tailer(positions.clone()), p.poll_interval)
    };
    // A multiline record is complete once its file has been quiet for a while.
    let idle_flush = (poll * 4).max(Duration::from_millis(500));
    while !stop.load(Ordering::Acquire) {
        {
            let mut p = pipeline.lock().expect("pipeline lock");
            let now = Instant::now();
            tailer.poll(idle_flush, &mut |record| p.process(record, now));
            p.tail = tailer.stats;
            p.lag_bytes = tailer.lag_bytes();
            p.files = tailer.file_count();
            p.update_rate(now);
            p.expire(now);
        }
        let until = Instant::now() + poll;
        while Instant::now() < until && !stop.load(Ordering::Acquire) {
            std::thread::sleep((until - Instant::now()).min(Duration::from_millis(50)));
        }
    }
}

/// Reads files from start to end through a pipeline (replay, `--once`, rule tests).
pub fn read_files(pipeline: &mut Pipeline, paths: Vec<String>) {
    let mut tailer = Tailer::new(
        &pipeline.name,
        paths,
        pipeline.start_at,
        pipeline.max_line_bytes,
        pipeline.multiline.clone(),
        None,
    );
    let now = Instant::now();
    tailer.read_to_end(&mut |record| pipeline.process(record, now));
    pipeline.tail = tailer.stats;
    pipeline.files = tailer.file_count();
}
