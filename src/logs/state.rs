//! What a log source has counted: its rules' series, record and tail counts, the query index,
//! and the figures the status page shows. Kept apart from the compiled
//! [`SourcePlan`](super::plan::SourcePlan) so that a reload keeps every count whose rule did not
//! change, and so that a scrape reads counts without waiting for the files being read.

use super::container::Meta;
use super::parse::Parsed;
use super::plan::{QueryIndexPlan, SourcePlan};
use super::record::{Numbers, Values};
use super::rules::{RuleSnapshot, RuleState};
use super::tailer::{Progress, TailStats, Unreadable};
use crate::metrics::exposition::Family;
use crate::metrics::families::{
    FamilyDef, LOG_BYTES, LOG_CONTINUATION_LINES_DROPPED, LOG_FILES, LOG_LAG_BYTES,
    LOG_LAST_RECORD_TIMESTAMP_SECONDS, LOG_LINES, LOG_LINES_CUT, LOG_QUERIES_DROPPED,
    LOG_QUERIES_INDEXED, LOG_READ_ERRORS, LOG_RECORDS, LOG_ROTATIONS, LOG_RULE_MATCHES, LOG_SERIES,
    LOG_SERIES_DROPPED, LOG_TRUNCATIONS, LOG_UNREADABLE_FILES,
};
use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

#[derive(Debug, Default, Clone, Copy)]
pub struct RecordCounts {
    pub matched: u64,
    pub unmatched: u64,
    pub errors: u64,
}

/// A bounded index from query hash to SQL text, for `/queries`: bounded in entries and in bytes.
#[derive(Default)]
pub struct QueryIndex {
    pub entries: HashMap<String, String>,
    /// Bytes of hashes and SQL text held.
    bytes: u64,
    pub dropped: u64,
}

impl QueryIndex {
    fn add(&mut self, plan: &QueryIndexPlan, hash: &str, sql: &str) {
        if self.entries.contains_key(hash) {
            return;
        }
        let cost = (hash.len() + sql.len()) as u64;
        if self.entries.len() < plan.max_entries && self.bytes + cost <= plan.max_bytes {
            self.entries.insert(hash.to_string(), sql.to_string());
            self.bytes += cost;
        } else {
            self.dropped += 1;
        }
    }
}

/// Everything a source has counted, one entry in `rules` per rule of its plan.
#[derive(Default)]
pub struct SourceState {
    pub counts: Counts,
    /// Lines per second over the last few seconds, for the status page.
    pub lines_per_second: f64,
    rate_window: Option<(Instant, u64)>,
    pub queries: QueryIndex,
    pub rules: Vec<RuleState>,
    /// The buffer of a record's values, kept empty between records.
    spare_values: Values<'static>,
    numbers: Numbers,
}

/// The source's own figures, for its self-metrics.
#[derive(Default, Clone, Copy)]
pub struct Counts {
    pub records: RecordCounts,
    pub tail: TailStats,
    pub lag_bytes: u64,
    pub files: usize,
    /// How many of the source's paths cannot be read, by reason (in `Unreadable::ALL`'s order).
    pub unreadable: [usize; Unreadable::ALL.len()],
    /// When the last record was counted: the reader's clock reading for the chunk it came in,
    /// so counting a record reads no clock.
    pub last_record: Option<Instant>,
}

/// What a source has counted at one moment, as numbers (label values are shared with the live
/// series): cheap to take after every poll, and made into families only when a scrape asks.
pub struct Snapshot {
    counts: Counts,
    queries_indexed: usize,
    queries_dropped: u64,
    rules: Vec<RuleSnapshot>,
}

/// A source as the status page shows it.
pub struct SourceSummary {
    pub name: String,
    pub patterns: String,
    pub files: usize,
    pub lines_per_second: f64,
    pub last_record_age: Option<Duration>,
    pub unmatched_share: f64,
    pub lag_bytes: u64,
}

impl SourceState {
    pub fn new(plan: &SourcePlan) -> SourceState {
        SourceState {
            rules: plan.rules.iter().map(|_| RuleState::default()).collect(),
            ..SourceState::default()
        }
    }

    /// The state for `plan` after a reload, from the state the source had under `old`: the
    /// source's own counts go on, and so does each rule whose definition is unchanged; a rule
    /// that changed starts again from zero, and so does one that is new.
    pub fn carry_over(plan: &SourcePlan, old: &SourcePlan, mut state: SourceState) -> SourceState {
        let mut kept: HashMap<&str, RuleState> = old
            .rules
            .iter()
            .zip(std::mem::take(&mut state.rules))
            .map(|(rule, rule_state)| (rule.definition.as_str(), rule_state))
            .collect();
        state.rules = plan
            .rules
            .iter()
            .map(|rule| match kept.remove(rule.definition.as_str()) {
                Some(rule_state) => rule_state,
                None => {
                    if old.rules.iter().any(|r| r.full_name == rule.full_name) {
                        tracing::info!(
                            source = %plan.name,
                            "rule {} changed: its series start again from zero",
                            rule.full_name
                        );
                    }
                    RuleState::default()
                }
            })
            .collect();
        for removed in old.rules.iter().filter(|r| kept.contains_key(r.definition.as_str())) {
            if !plan.rules.iter().any(|r| r.full_name == removed.full_name) {
                tracing::info!(source = %plan.name, "rule {} removed", removed.full_name);
            }
        }
        if plan.queries.is_none() {
            state.queries = QueryIndex::default();
        }
        state
    }

    /// Runs one record through the plan's parser and field extractors, then every rule.
    pub fn process(&mut self, plan: &SourcePlan, record: &str, meta: Meta, now: Instant) {
        let mut values = recycle(std::mem::take(&mut self.spare_values));
        values.resize(plan.field_count(), None);
        self.count(plan, record, meta, now, &mut values);
        self.spare_values = recycle(values);
    }

    fn count<'a>(
        &mut self,
        plan: &SourcePlan,
        record: &'a str,
        meta: Meta<'a>,
        now: Instant,
        values: &mut Values<'a>,
    ) {
        match plan.fields(record, meta, values) {
            Parsed::Record => self.counts.records.matched += 1,
            Parsed::Unmatched => {
                self.counts.records.unmatched += 1;
                return;
            }
            Parsed::Error => {
                self.counts.records.errors += 1;
                return;
            }
        }
        if let Some(index) = &plan.queries {
            if let (Some(hash), Some(sql)) =
                (values[index.hash].as_deref(), values[index.sql].as_deref())
            {
                self.queries.add(index, hash, sql);
            }
        }
        self.numbers.clear(values.len());
        for (rule, state) in plan.rules.iter().zip(&mut self.rules) {
            rule.apply(state, values, &mut self.numbers, now);
        }
        self.counts.last_record = Some(now);
    }

    /// Takes what the tailer counted since it was last asked (file reads, rotations…), and
    /// what it holds now.
    pub fn add_tail(&mut self, progress: Progress, now: Instant) {
        let counts = &mut self.counts;
        counts.tail.add(&progress.stats);
        // A line whose container wrapper is broken is a broken record.
        counts.records.errors += progress.stats.wrapper_errors;
        counts.lag_bytes = progress.lag_bytes;
        counts.files = progress.files;
        counts.unreadable = progress.unreadable;
        self.update_rate(now);
    }

    /// Updates `lines_per_second` once its window of a few seconds has passed.
    fn update_rate(&mut self, now: Instant) {
        const WINDOW: Duration = Duration::from_secs(5);
        let lines_now = self.counts.tail.lines;
        match self.rate_window {
            Some((start, lines)) if now.duration_since(start) >= WINDOW => {
                self.lines_per_second =
                    (lines_now - lines) as f64 / now.duration_since(start).as_secs_f64();
                self.rate_window = Some((now, lines_now));
            }
            Some(_) => {}
            None => self.rate_window = Some((now, lines_now)),
        }
    }

    pub fn expire(&mut self, plan: &SourcePlan, now: Instant) {
        for (rule, state) in plan.rules.iter().zip(&mut self.rules) {
            rule.expire(state, now);
        }
    }

    /// What the source has counted so far, for a scrape to show later.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            counts: self.counts,
            queries_indexed: self.queries.entries.len(),
            queries_dropped: self.queries.dropped,
            rules: self.rules.iter().map(RuleState::snapshot).collect(),
        }
    }

    /// The rules' metric families.
    pub fn families(&self, plan: &SourcePlan) -> Vec<Family> {
        self.snapshot().rule_families(plan)
    }

    /// Everything a scrape shows of this source: its rules' families, then its self-metrics.
    pub fn exposition(&self, plan: &SourcePlan) -> Vec<Family> {
        self.snapshot().families(plan)
    }

    pub fn summary(&self, plan: &SourcePlan) -> SourceSummary {
        let r = self.counts.records;
        let total = r.matched + r.unmatched + r.errors;
        SourceSummary {
            name: plan.name.clone(),
            patterns: plan.patterns.join(", "),
            files: self.counts.files,
            lines_per_second: self.lines_per_second,
            last_record_age: self.counts.last_record.map(|t| t.elapsed()),
            unmatched_share: if total == 0 {
                0.0
            } else {
                (r.unmatched + r.errors) as f64 / total as f64
            },
            lag_bytes: self.counts.lag_bytes,
        }
    }
}

/// `values` emptied, in the same allocation, for values of another lifetime: a record's values
/// borrow from the record, and the buffer outlives it.
fn recycle<'b>(mut values: Values<'_>) -> Values<'b> {
    values.clear();
    values.into_iter().map(|_| None).collect()
}

impl Snapshot {
    /// Everything a scrape shows of the source: its rules' families, then its self-metrics.
    /// `plan` is the one the snapshot was taken under.
    pub fn families(&self, plan: &SourcePlan) -> Vec<Family> {
        let mut families = self.rule_families(plan);
        families.extend(self.self_families(plan));
        families
    }

    fn rule_families(&self, plan: &SourcePlan) -> Vec<Family> {
        plan.rules.iter().zip(&self.rules).map(|(rule, snapshot)| rule.family(snapshot)).collect()
    }

    /// Self-metrics of this source and its rules.
    fn self_families(&self, plan: &SourcePlan) -> Vec<Family> {
        let of_source = |def: &FamilyDef, value: f64| {
            Family::of(def).with(def.labels([plan.name.clone()]), value)
        };
        let (c, t) = (&self.counts, &self.counts.tail);
        let records = |result: &str| LOG_RECORDS.labels([plan.name.clone(), result.to_string()]);
        let mut families = vec![
            of_source(&LOG_LINES, t.lines as f64),
            of_source(&LOG_BYTES, t.bytes as f64),
            Family::of(&LOG_RECORDS)
                .with(records("matched"), c.records.matched as f64)
                .with(records("unmatched"), c.records.unmatched as f64)
                .with(records("error"), c.records.errors as f64),
            of_source(&LOG_ROTATIONS, t.rotations as f64),
            of_source(&LOG_TRUNCATIONS, t.truncations as f64),
            of_source(&LOG_LINES_CUT, t.cut_lines as f64),
            of_source(&LOG_CONTINUATION_LINES_DROPPED, t.dropped_lines as f64),
            of_source(&LOG_READ_ERRORS, t.read_errors as f64),
            of_source(&LOG_LAG_BYTES, c.lag_bytes as f64),
            of_source(&LOG_FILES, c.files as f64),
        ];
        let mut unreadable = Family::of(&LOG_UNREADABLE_FILES);
        for (reason, count) in Unreadable::ALL.into_iter().zip(c.unreadable) {
            let labels = LOG_UNREADABLE_FILES.labels([plan.name.clone(), reason.as_str().into()]);
            unreadable = unreadable.with(labels, count as f64);
        }
        families.push(unreadable);
        if let Some(at) = c.last_record {
            let at = SystemTime::now() - at.elapsed();
            let seconds =
                at.duration_since(SystemTime::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
            families.push(of_source(&LOG_LAST_RECORD_TIMESTAMP_SECONDS, seconds));
        }
        let mut matched = Family::of(&LOG_RULE_MATCHES);
        let mut series = Family::of(&LOG_SERIES);
        let mut dropped = Family::of(&LOG_SERIES_DROPPED);
        for (rule, counted) in plan.rules.iter().zip(&self.rules) {
            let metric = || [plan.name.clone(), rule.full_name.clone()];
            matched = matched.with(LOG_RULE_MATCHES.labels(metric()), counted.matched as f64);
            series = series.with(LOG_SERIES.labels(metric()), counted.series_count() as f64);
            dropped =
                dropped.with(LOG_SERIES_DROPPED.labels(metric()), counted.dropped_series as f64);
        }
        families.extend([matched, series, dropped]);
        if plan.queries.is_some() {
            families.push(of_source(&LOG_QUERIES_INDEXED, self.queries_indexed as f64));
            families.push(of_source(&LOG_QUERIES_DROPPED, self.queries_dropped as f64));
        }
        families
    }
}
