//! Metric families and their two text encodings: Prometheus text format 0.0.4 and
//! OpenMetrics 1.0.0, chosen from the scraper's Accept header as Prometheus negotiates.

use super::families::FamilyDef;
use std::borrow::Cow;
use std::fmt::Write;

pub type Name = Cow<'static, str>;
pub type Labels = Vec<(Name, String)>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    /// A counter's family name carries no `_total`; the encoder adds it where each format wants it.
    Counter,
    /// Samples carry their own suffix: `_bucket` (with an `le` label), `_sum`, `_count`.
    Histogram,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: Labels,
    pub value: f64,
    /// Appended to the family name; only histograms use it.
    pub suffix: &'static str,
    /// Shown in OpenMetrics only, as `# {labels} value timestamp`.
    pub exemplar: Option<Box<Exemplar>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Exemplar {
    pub labels: Labels,
    pub value: f64,
    pub timestamp: f64,
}

impl Sample {
    pub fn new(labels: Labels, value: f64) -> Sample {
        Sample { labels, value, suffix: "", exemplar: None }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    pub name: Name,
    pub help: Name,
    pub kind: Kind,
    pub samples: Vec<Sample>,
}

impl Family {
    /// An empty family as declared in [`super::families`].
    pub fn of(def: &FamilyDef) -> Family {
        Family {
            name: Name::Borrowed(def.name),
            help: Name::Borrowed(def.help),
            kind: def.kind,
            samples: Vec::new(),
        }
    }

    pub fn gauge(name: impl Into<Name>, help: impl Into<Name>) -> Family {
        Family { name: name.into(), help: help.into(), kind: Kind::Gauge, samples: Vec::new() }
    }

    pub fn counter(name: impl Into<Name>, help: impl Into<Name>) -> Family {
        Family { name: name.into(), help: help.into(), kind: Kind::Counter, samples: Vec::new() }
    }

    pub fn histogram(name: impl Into<Name>, help: impl Into<Name>) -> Family {
        Family { name: name.into(), help: help.into(), kind: Kind::Histogram, samples: Vec::new() }
    }

    pub fn with(mut self, labels: Labels, value: f64) -> Family {
        self.samples.push(Sample::new(labels, value));
        self
    }
}

/// Groups families of the same name (from several sources) into one, keeping first-seen order.
pub fn merge(families: impl IntoIterator<Item = Family>) -> Vec<Family> {
    let mut out: Vec<Family> = Vec::new();
    let mut index: std::collections::HashMap<Name, usize> = std::collections::HashMap::new();
    for family in families {
        match index.get(&family.name) {
            Some(&i) => out[i].samples.extend(family.samples),
            None => {
                index.insert(family.name.clone(), out.len());
                out.push(family);
            }
        }
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    OpenMetrics,
}

impl Format {
    /// OpenMetrics when the Accept header lists it (Prometheus asks for it first), text otherwise.
    pub fn negotiate(accept: Option<&str>) -> Format {
        // The highest `q` each format is accepted with (absent: 1); `*/*` and `text/*` count
        // for text.
        let (mut openmetrics, mut text) = (0.0f64, 0.0f64);
        for part in accept.unwrap_or_default().split(',') {
            let mut params = part.split(';').map(str::trim);
            let media = params.next().unwrap_or_default().to_ascii_lowercase();
            let q = params
                .find_map(|p| p.strip_prefix("q="))
                .map_or(1.0, |q| q.parse::<f64>().unwrap_or(0.0));
            match media.as_str() {
                "application/openmetrics-text" => openmetrics = openmetrics.max(q),
                "text/plain" | "text/*" | "*/*" => text = text.max(q),
                _ => {}
            }
        }
        if openmetrics > 0.0 && openmetrics >= text {
            Format::OpenMetrics
        } else {
            Format::Text
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

pub fn encode(families: &[Family], format: Format) -> String {
    let mut out = String::with_capacity(families.len() * 128);
    encode_into(&mut out, families, format);
    if format == Format::OpenMetrics {
        out.push_str("# EOF\n");
    }
    out
}

/// Appends the families, without OpenMetrics' closing `# EOF`.
pub fn encode_into(out: &mut String, families: &[Family], format: Format) {
    for family in families.iter().filter(|f| !f.samples.is_empty()) {
        encode_family(out, family, format);
    }
}

/// `# HELP` and `# TYPE` of a family, as `format` spells them.
pub fn write_header(out: &mut String, name: &str, help: &str, kind: Kind, format: Format) {
    let meta_suffix = if format == Format::Text { counter_suffix(kind) } else { "" };
    let kind = match kind {
        Kind::Gauge => "gauge",
        Kind::Counter => "counter",
        Kind::Histogram => "histogram",
    };
    for part in ["# HELP ", name, meta_suffix, " "] {
        out.push_str(part);
    }
    escape_help(out, help, format);
    for part in ["\n# TYPE ", name, meta_suffix, " ", kind, "\n"] {
        out.push_str(part);
    }
}

fn counter_suffix(kind: Kind) -> &'static str {
    if kind == Kind::Counter {
        "_total"
    } else {
        ""
    }
}

/// The start of a sample line: its name with the suffixes its kind and sample take.
pub fn write_sample_name(out: &mut String, name: &str, kind: Kind, suffix: &str) {
    out.push_str(name);
    out.push_str(counter_suffix(kind));
    out.push_str(suffix);
}

fn encode_family(out: &mut String, family: &Family, format: Format) {
    write_header(out, &family.name, &family.help, family.kind, format);
    for sample in &family.samples {
        write_sample_name(out, &family.name, family.kind, sample.suffix);
        write_labels(out, &sample.labels);
        out.push(' ');
        write_value(out, sample.value);
        if let (Format::OpenMetrics, Some(exemplar)) = (format, &sample.exemplar) {
            out.push_str(" # ");
            if exemplar.labels.is_empty() {
                out.push_str("{}");
            }
            write_labels(out, &exemplar.labels);
            out.push(' ');
            write_value(out, exemplar.value);
            let _ = write!(out, " {:.3}", exemplar.timestamp);
        }
        out.push('\n');
    }
}

fn write_labels(out: &mut String, labels: &Labels) {
    write_label_pairs(out, labels.iter().map(|(name, value)| (name.as_ref(), value.as_str())));
}

/// `{name="value",…}` with values escaped; nothing for no labels.
pub fn write_label_pairs<'a>(out: &mut String, labels: impl Iterator<Item = (&'a str, &'a str)>) {
    let mark = out.len();
    for (name, value) in labels {
        out.push(if out.len() == mark { '{' } else { ',' });
        out.push_str(name);
        out.push_str("=\"");
        escape_label_value(out, value);
        out.push('"');
    }
    if out.len() > mark {
        out.push('}');
    }
}

fn escape_help(out: &mut String, help: &str, format: Format) {
    push_escaped(out, help, format == Format::OpenMetrics);
}

fn escape_label_value(out: &mut String, value: &str) {
    push_escaped(out, value, true);
}

/// `text` with backslashes and line feeds escaped, and double quotes if `quotes`; the runs
/// between them are copied whole, as most text has nothing to escape.
fn push_escaped(out: &mut String, text: &str, quotes: bool) {
    let mut copied = 0;
    for (at, byte) in text.bytes().enumerate() {
        let escaped = match byte {
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'"' if quotes => "\\\"",
            _ => continue,
        };
        // The bytes escaped are ASCII, so `at` is on a character boundary.
        out.push_str(&text[copied..at]);
        out.push_str(escaped);
        copied = at + 1;
    }
    out.push_str(&text[copied..]);
}

pub fn write_value(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        let _ = write!(out, "{}", v as i64);
    } else {
        let _ = write!(out, "{v}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::families;

    fn sample_families() -> Vec<Family> {
        vec![
            Family::of(&families::PROBE_SUCCESS)
                .with(vec![("target".into(), "a\"b\\c\nd".into())], 1.0),
            Family::of(&families::PROBE_RUNS).with(vec![("result".into(), "success".into())], 3.0),
            Family::of(&families::PROBE_HTTP_VERSION).with(vec![], 1.1),
            Family::gauge("x_inf", "Infinite").with(vec![], f64::INFINITY),
        ]
    }

    #[test]
    fn text_format() {
        let text = encode(&sample_families(), Format::Text);
        assert!(text.contains("probe_success{target=\"a\\\"b\\\\c\\nd\"} 1\n"), "{text}");
        assert!(text.contains("# TYPE lookout_probe_runs_total counter\nlookout_probe_runs_total{result=\"success\"} 3\n"));
        assert!(text.contains("probe_http_version 1.1\n"));
        assert!(text.contains("x_inf +Inf\n"));
        assert!(!text.contains("# EOF"));
    }

    #[test]
    fn openmetrics_format() {
        let text = encode(&sample_families(), Format::OpenMetrics);
        assert!(text.contains("# TYPE lookout_probe_runs counter\nlookout_probe_runs_total{result=\"success\"} 3\n"), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn histogram_and_exemplar() {
        let mut family = Family::histogram("latency_seconds", "Latency");
        family.samples.push(Sample {
            suffix: "_bucket",
            ..Sample::new(vec![("le".into(), "0.5".into())], 3.0)
        });
        family.samples.push(Sample {
            suffix: "_count",
            exemplar: Some(Box::new(Exemplar {
                labels: vec![("trace_id".into(), "abc".into())],
                value: 0.25,
                timestamp: 1.5,
            })),
            ..Sample::new(vec![], 3.0)
        });
        let text = encode(std::slice::from_ref(&family), Format::Text);
        assert!(
            text.contains("# TYPE latency_seconds histogram\nlatency_seconds_bucket{le=\"0.5\"} 3\nlatency_seconds_count 3\n"),
            "{text}"
        );
        let om = encode(&[family], Format::OpenMetrics);
        assert!(om.contains("latency_seconds_count 3 # {trace_id=\"abc\"} 0.25 1.500\n"), "{om}");
    }

    #[test]
    fn escaping_keeps_other_text_whole() {
        let family = Family::gauge("g", "Größe \\ in \"m²\"\nzweite Zeile")
            .with(vec![("ort".into(), "Zürich \"日本\" \\ ä\n".into())], 1.0);
        let text = encode(std::slice::from_ref(&family), Format::Text);
        assert!(text.starts_with("# HELP g Größe \\\\ in \"m²\"\\nzweite Zeile\n"), "{text}");
        assert!(text.contains("g{ort=\"Zürich \\\"日本\\\" \\\\ ä\\n\"} 1\n"), "{text}");
        let open = encode(&[family], Format::OpenMetrics);
        assert!(open.starts_with("# HELP g Größe \\\\ in \\\"m²\\\"\\nzweite Zeile\n"), "{open}");
    }

    #[test]
    fn negotiation() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(Format::negotiate(Some("text/plain")), Format::Text);
        assert_eq!(Format::negotiate(None), Format::Text);
        // q-values decide: refused (q=0), or preferred less than text.
        assert_eq!(Format::negotiate(Some("application/openmetrics-text;q=0")), Format::Text);
        let text_first = "application/openmetrics-text;q=0.3,text/plain;q=0.9";
        assert_eq!(Format::negotiate(Some(text_first)), Format::Text);
        let om_only = "application/openmetrics-text; version=1.0.0";
        assert_eq!(Format::negotiate(Some(om_only)), Format::OpenMetrics);
    }

    #[test]
    fn merge_groups_by_name() {
        let a = Family::gauge("g", "h").with(vec![("p".into(), "a".into())], 1.0);
        let b = Family::gauge("g", "h").with(vec![("p".into(), "b".into())], 2.0);
        let merged = merge(vec![a, Family::gauge("other", "o"), b]);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].samples.len(), 2);
    }
}
