//! A log source compiled: which files to follow, how to frame and parse their records, which
//! fields to derive, and the rules that count them. A plan is immutable and shared (`Arc`);
//! what it has counted lives in a [`SourceState`](super::state::SourceState), so a reload
//! replaces plans without touching counts.

use super::container::Meta;
use super::framing::{Framing, Pipeline};
use super::parse::nginx::grammar::Grammar;
use super::parse::{self, Parsed, Parser};
use super::positions::Positions;
use super::record::{Schema, Values};
use super::rules::Rule;
use super::sql;
use super::tailer::Tailer;
use crate::config::log_rules::{
    Container, LogFormat, LogRulesFile, SourceSpec, StartAt, Watch, DEFAULT_MAX_LINE_BYTES,
    DEFAULT_MAX_QUERIES, DEFAULT_MAX_QUERY_BYTES,
};
use crate::config::{ConfigError, Source};
use regex::Regex;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

const DEFAULT_POLL: Duration = Duration::from_millis(250);
/// The safety-net scan when inotify tells of changes.
const DEFAULT_SAFETY_SCAN: Duration = Duration::from_secs(10);

/// The fields a container source adds to its records, where the parser left them empty.
struct ContainerFields {
    stream: usize,
    time: usize,
    namespace: usize,
    pod: usize,
    container: usize,
}

/// More fields from the named captures of a regex run on a field.
struct Extract {
    field: usize,
    regex: Regex,
    /// (capture group, field it fills)
    targets: Vec<(usize, usize)>,
}

impl Extract {
    /// (field, text) of each named capture the regex finds in `text`.
    fn captures<'s: 'r, 't: 'r, 'r>(
        &'s self,
        text: &'t str,
    ) -> impl Iterator<Item = (usize, &'t str)> + 'r {
        let caps = self.regex.captures(text);
        self.targets.iter().filter_map(move |(group, field)| {
            caps.as_ref()?.get(*group).map(|m| (*field, m.as_str()))
        })
    }
}

/// The fields a source's hash → SQL index is built from, and how much it keeps.
pub struct QueryIndexPlan {
    pub hash: usize,
    pub sql: usize,
    pub max_entries: usize,
    pub max_bytes: u64,
}

/// The SQL fingerprint option: the field holding SQL, and the two fields it fills.
struct SqlFingerprint {
    sql: usize,
    normalized: usize,
    hash: usize,
}

pub struct SourcePlan {
    pub name: String,
    pub patterns: Vec<String>,
    pub start_at: StartAt,
    pub max_line_bytes: usize,
    pub poll_interval: Duration,
    /// How often files are scanned when inotify tells of changes.
    pub safety_scan: Duration,
    /// Forced wake-up mechanism; none: inotify where it can be had.
    pub watch: Option<Watch>,
    pub container: Option<Container>,
    container_fields: Option<ContainerFields>,
    pub framing: Framing,
    parser: Parser,
    schema: Schema,
    extracts: Vec<Extract>,
    sql: Option<SqlFingerprint>,
    pub queries: Option<QueryIndexPlan>,
    pub rules: Vec<Rule>,
}

/// Compiles every source of the file.
pub fn compile(file: &LogRulesFile, source: &Source) -> Result<Vec<Arc<SourcePlan>>, ConfigError> {
    file.sources.iter().map(|s| SourcePlan::compile(s, file, source).map(Arc::new)).collect()
}

impl SourcePlan {
    pub fn compile(
        spec: &SourceSpec,
        file: &LogRulesFile,
        source: &Source,
    ) -> Result<SourcePlan, ConfigError> {
        let format = spec.format.value;
        let needs = |what: &str| {
            source.error_at_span(&spec.format, format!("format {format:?} needs `{what}:`"))
        };
        let variables = spec.variables.values().next();
        let keys = [
            ("log_format", spec.log_format.as_ref(), LogFormat::Nginx),
            ("variables", variables, LogFormat::Nginx),
            ("pattern", spec.pattern.as_ref(), LogFormat::Spring),
            ("regex", spec.regex.as_ref(), LogFormat::Regex),
        ];
        for (key, value, owner) in keys {
            if let Some(value) = value.filter(|_| owner != format) {
                let owner = format!("{owner:?}").to_lowercase();
                return Err(source
                    .error_at_span(value, format!("`{key}` is read only with `format: {owner}`")));
            }
        }
        let parser = match format {
            LogFormat::Nginx => {
                let text = spec.log_format.as_ref().map_or("combined", |f| f.value.as_str());
                let mut like = BTreeMap::new();
                for (name, builtin) in &spec.variables {
                    let grammar = Grammar::of_builtin(&builtin.value).ok_or_else(|| {
                        source.error_at_span(
                            builtin,
                            format!(
                                "variables.{name}: ${} is not a variable nginx knows",
                                builtin.value
                            ),
                        )
                    })?;
                    like.insert(name.as_str(), grammar);
                }
                let grammar = |name: &str| like.get(name).copied().unwrap_or(Grammar::of(name));
                let format =
                    parse::nginx::NginxFormat::compile_with(text, &grammar).map_err(|e| {
                        let message = format!("log_format: {}", e.message);
                        match (&spec.log_format, e.near) {
                            (Some(f), Some(near)) => source.error_at_text(f, &near, message),
                            (Some(f), None) => source.error_at_span(f, message),
                            (None, _) => source.error_at_span(&spec.format, message),
                        }
                    })?;
                Parser::Nginx(format)
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
        let framing = match (&spec.multiline, &parser) {
            (Some(m), _) => Framing::multiline(Some(m.start.0.clone())),
            (None, Parser::Spring(_)) => Framing::multiline(Some(
                Regex::new(parse::spring::RECORD_START).expect("static regex"),
            )),
            (None, Parser::Nginx(format)) => format.framing(),
            (None, _) => Framing::default(),
        };
        let container_fields = spec.container.map(|_| ContainerFields {
            stream: schema.add("stream"),
            time: schema.add("container_time"),
            namespace: schema.add("namespace"),
            pod: schema.add("pod"),
            container: schema.add("container"),
        });
        let resolve = |name: &serde_saphyr::Spanned<String>, schema: &mut Schema| {
            schema.resolve(&name.value, open).map_err(|e| source.error_at_span(name, e))
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
            Some(field) => Some(SqlFingerprint {
                sql: resolve(field, &mut schema)?,
                normalized: schema.add("sql_normalized"),
                hash: schema.add("sql_hash"),
            }),
            None => None,
        };
        let queries = match &spec.queries {
            Some(q) => Some(QueryIndexPlan {
                hash: resolve(&q.hash, &mut schema)?,
                sql: resolve(&q.sql, &mut schema)?,
                max_entries: q.max_entries.unwrap_or(DEFAULT_MAX_QUERIES),
                max_bytes: q.max_bytes.map_or(DEFAULT_MAX_QUERY_BYTES, |b| b.0),
            }),
            None => None,
        };
        let mut rules = Vec::new();
        for m in file.metrics.iter().filter(|m| m.source.value == spec.name.value) {
            rules.push(Rule::compile(m, &mut schema, open, source)?);
        }
        Ok(SourcePlan {
            name: spec.name.value.clone(),
            patterns: spec.paths.clone(),
            start_at: spec.start_at,
            max_line_bytes: spec.max_line_bytes.unwrap_or(DEFAULT_MAX_LINE_BYTES).max(64),
            poll_interval: spec
                .poll_interval
                .map_or(DEFAULT_POLL, |p| p.0.max(Duration::from_millis(10))),
            safety_scan: spec
                .poll_interval
                .map_or(DEFAULT_SAFETY_SCAN, |p| p.0.max(Duration::from_millis(10))),
            watch: spec.watch,
            container: spec.container,
            container_fields,
            framing,
            parser,
            schema,
            extracts,
            sql,
            queries,
            rules,
        })
    }

    /// Whether `other` finds, frames and splits files as this plan does, so a tailer built for
    /// one serves the other.
    pub fn reads_like(&self, other: &SourcePlan) -> bool {
        self.patterns == other.patterns
            && self.start_at == other.start_at
            && self.max_line_bytes == other.max_line_bytes
            && self.framing.same_as(&other.framing)
            && self.container == other.container
    }

    /// The stages from bytes to records of one file of this source.
    pub fn pipeline(&self) -> Pipeline {
        Pipeline::new(self.max_line_bytes, self.container, self.framing.clone())
    }

    /// A tailer for this source's files, resuming from `positions` when given.
    pub fn tailer(&self, positions: Option<Arc<Positions>>) -> Tailer {
        self.tailer_of(self.patterns.clone(), positions)
    }

    /// A tailer for other files read the way this source reads its own (replay).
    pub fn tailer_of(&self, paths: Vec<String>, positions: Option<Arc<Positions>>) -> Tailer {
        Tailer::new(
            &self.name,
            paths,
            self.start_at,
            self.max_line_bytes,
            self.framing.clone(),
            positions,
        )
        .with_container(self.container)
    }

    /// How many fields a record of this source has.
    pub fn field_count(&self) -> usize {
        self.schema.field_count()
    }

    /// Parses a record into `values` and derives the extracted and SQL fields.
    pub fn fields<'a>(&self, record: &'a str, meta: Meta<'a>, values: &mut Values<'a>) -> Parsed {
        let parsed = self.parser.parse(record, &self.schema, values);
        if parsed != Parsed::Record {
            return parsed;
        }
        if let Some(c) = &self.container_fields {
            let pod = meta.pod;
            let facts = [
                (c.stream, meta.stream),
                (c.time, meta.time),
                (c.namespace, pod.map(|p| p.namespace.as_str())),
                (c.pod, pod.map(|p| p.pod.as_str())),
                (c.container, pod.map(|p| p.container.as_str())),
            ];
            for (field, value) in facts {
                if values[field].is_none() {
                    values[field] = value.map(Cow::Borrowed);
                }
            }
        }
        for e in &self.extracts {
            // A capture of text borrowed from the record is borrowed too; of a value made
            // while parsing (JSON), it is copied.
            let found: Vec<(usize, Cow<str>)> = match &values[e.field] {
                Some(Cow::Borrowed(text)) => {
                    e.captures(text).map(|(f, m)| (f, Cow::Borrowed(m))).collect()
                }
                Some(Cow::Owned(text)) => {
                    e.captures(text).map(|(f, m)| (f, Cow::Owned(m.to_string()))).collect()
                }
                None => Vec::new(),
            };
            for (field, value) in found {
                values[field] = Some(value);
            }
        }
        if let Some(fingerprint) = &self.sql {
            if let Some(text) = values[fingerprint.sql].as_deref().filter(|t| !t.trim().is_empty())
            {
                let normalized = sql::normalize(text);
                values[fingerprint.hash] = Some(Cow::Owned(sql::fingerprint(&normalized)));
                values[fingerprint.normalized] = Some(Cow::Owned(normalized));
            }
        }
        Parsed::Record
    }
}
