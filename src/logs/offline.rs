//! One-shot runs of the log pipeline: `lookout replay` (files from start to end, then the
//! exposition, like mtail's one-shot mode) and `lookout test-rules` (rule unit tests: input
//! lines → expected series, like `promtool test rules`).

use super::framing::{Framer, LineSplitter};
use super::{compile, read_files, Pipeline};
use crate::config::log_rules::LogRulesFile;
use crate::config::{ConfigError, Source};
use crate::metrics::exposition::{self, Family, Format};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

pub fn load(path: &Path) -> Result<Vec<Pipeline>, ConfigError> {
    let source = Source::read(path)?;
    compile(&LogRulesFile::load(&source)?, &source)
}

fn pick<'p>(pipelines: &'p mut [Pipeline], name: Option<&str>) -> Result<&'p mut Pipeline, String> {
    let names: Vec<String> = pipelines.iter().map(|p| p.name.clone()).collect();
    let found = match name {
        Some(n) => pipelines.iter_mut().find(|p| p.name == n),
        None => pipelines.first_mut(),
    };
    found.ok_or_else(|| match name {
        Some(n) => format!("no source named {n:?} (sources: {})", names.join(", ")),
        None => "the log rules file has no source".to_string(),
    })
}

/// Reads `files` through the source's parser and rules; returns the exposition.
pub fn replay(rules: &Path, source: Option<&str>, files: Vec<String>) -> Result<String, String> {
    let mut pipelines = load(rules).map_err(|e| e.to_string())?;
    let pipeline = pick(&mut pipelines, source)?;
    for file in &files {
        std::fs::metadata(file).map_err(|e| format!("{file}: {e}"))?;
    }
    read_files(pipeline, files);
    let mut families: Vec<Family> = pipeline.families();
    families.extend(pipeline.self_families());
    Ok(exposition::encode(&families, Format::Text))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    /// The rules under test, relative to the tests file; `--config.log-rules` otherwise.
    #[serde(default)]
    rule_file: Option<String>,
    tests: Vec<RuleTest>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleTest {
    name: String,
    #[serde(default)]
    source: Option<String>,
    lines: String,
    #[serde(default)]
    expect: Vec<Expected>,
    /// Series that must not exist.
    #[serde(default)]
    absent: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Expected {
    series: String,
    value: f64,
}

/// Runs the tests; returns the report and whether all passed.
pub fn test_rules(
    tests_path: &Path,
    default_rules: Option<&Path>,
) -> Result<(String, bool), String> {
    let source = Source::read(tests_path).map_err(|e| e.to_string())?;
    let file: TestFile = source.parse().map_err(|e| e.to_string())?;
    let rules: PathBuf = match (&file.rule_file, default_rules) {
        (Some(r), _) => tests_path.parent().unwrap_or(Path::new(".")).join(r),
        (None, Some(r)) => r.to_path_buf(),
        (None, None) => PathBuf::from(crate::app::DEFAULT_LOG_RULES),
    };
    let mut report = String::new();
    let mut passed = 0;
    for test in &file.tests {
        let mut pipelines = load(&rules).map_err(|e| e.to_string())?;
        let pipeline = pick(&mut pipelines, test.source.as_deref())?;
        feed(pipeline, &test.lines);
        let actual = series(&pipeline.families());
        let mut problems = Vec::new();
        for e in &test.expect {
            let key = canonical(&e.series).map_err(|err| format!("test {:?}: {err}", test.name))?;
            match actual.get(&key) {
                Some(v) if (v - e.value).abs() <= 1e-9 * e.value.abs().max(1.0) => {}
                Some(v) => problems.push(format!("{}: expected {}, got {v}", e.series, e.value)),
                None => {
                    problems.push(format!("{}: expected {}, series missing", e.series, e.value))
                }
            }
        }
        for a in &test.absent {
            let key = canonical(a).map_err(|err| format!("test {:?}: {err}", test.name))?;
            if let Some(v) = actual.get(&key) {
                problems.push(format!("{a}: expected no series, got {v}"));
            }
        }
        if problems.is_empty() {
            passed += 1;
            report.push_str(&format!("PASS  {}\n", test.name));
        } else {
            report.push_str(&format!("FAIL  {}\n", test.name));
            for p in problems {
                report.push_str(&format!("        {p}\n"));
            }
            report.push_str("      series present:\n");
            for (k, v) in &actual {
                report.push_str(&format!("        {k} {v}\n"));
            }
        }
    }
    let failed = file.tests.len() - passed;
    report.push_str(&format!("{passed} passed, {failed} failed\n"));
    Ok((report, failed == 0))
}

/// Runs text through the pipeline's framing and rules, as if it were a file read to its end.
fn feed(pipeline: &mut Pipeline, text: &str) {
    let mut splitter = LineSplitter::new(pipeline.max_line_bytes);
    let mut framer = Framer::new(pipeline.multiline.clone());
    let now = Instant::now();
    let mut records = Vec::new();
    let mut data = text.as_bytes().to_vec();
    if !data.ends_with(b"\n") {
        data.push(b'\n');
    }
    splitter.push(&data, &mut |line, raw| {
        framer.push(&String::from_utf8_lossy(line), raw, &mut |r| records.push(r.to_string()))
    });
    framer.flush(&mut |r| records.push(r.to_string()));
    for r in records {
        pipeline.process(&r, now);
    }
}

/// Every sample of the families as `name{labels sorted}` → value.
fn series(families: &[Family]) -> BTreeMap<String, f64> {
    let text = exposition::encode(families, Format::Text);
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((canonical(name).ok()?, value.parse().ok()?))
        })
        .collect()
}

/// `name{b="2",a="1"}` → `name{a="1",b="2"}`.
fn canonical(series: &str) -> Result<String, String> {
    let series = series.trim();
    let Some((name, rest)) = series.split_once('{') else { return Ok(series.to_string()) };
    let body = rest.strip_suffix('}').ok_or_else(|| format!("{series:?}: missing }}"))?;
    let mut labels = Vec::new();
    let mut chars = body.char_indices().peekable();
    let mut start = 0;
    let mut in_quotes = false;
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' if in_quotes => {
                chars.next();
            }
            '"' => in_quotes = !in_quotes,
            ',' if !in_quotes => {
                labels.push(body[start..i].trim().to_string());
                start = i + 1;
            }
            _ => {}
        }
    }
    if !body[start..].trim().is_empty() {
        labels.push(body[start..].trim().to_string());
    }
    for l in &labels {
        if !l.contains("=\"") || !l.ends_with('"') {
            return Err(format!("{series:?}: label {l:?} is not name=\"value\""));
        }
    }
    labels.sort();
    Ok(format!("{name}{{{}}}", labels.join(",")))
}

#[cfg(test)]
mod tests {
    use super::canonical;

    #[test]
    fn canonical_series() {
        assert_eq!(canonical(r#"x{b="2",a="1,\"z"}"#).unwrap(), r#"x{a="1,\"z",b="2"}"#);
        assert_eq!(canonical("x").unwrap(), "x");
        assert!(canonical("x{a=1}").is_err());
    }
}
