//! `lookout test-rules`: rule unit tests, input lines → expected series, like `promtool test
//! rules`. Each test runs on fresh counts.

use super::replay::{load, pick};
use super::{Error, Verdict};
use crate::config::{Source, DEFAULT_LOG_RULES};
use crate::logs::{offline, SourceState};
use crate::metrics::exposition::{self, Family, Format};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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

/// Runs the tests, prints the report, and passes when every test does.
pub fn run(tests_path: &Path, default_rules: Option<&Path>) -> Result<Verdict, Error> {
    let source = Source::read(tests_path)?;
    let file: TestFile = source.parse()?;
    let rules: PathBuf = match (&file.rule_file, default_rules) {
        (Some(r), _) => tests_path.parent().unwrap_or(Path::new(".")).join(r),
        (None, Some(r)) => r.to_path_buf(),
        (None, None) => PathBuf::from(DEFAULT_LOG_RULES),
    };
    let plans = load(&rules)?;
    let mut report = String::new();
    let mut passed = 0;
    for test in &file.tests {
        let plan = pick(&plans, test.source.as_deref())?;
        let mut state = SourceState::new(plan);
        offline::feed(plan, &mut state, &test.lines);
        let actual = series(&state.families(plan));
        let mut problems = Vec::new();
        for e in &test.expect {
            let key = canonical(&e.series)
                .map_err(|err| Error::Usage(format!("test {:?}: {err}", test.name)))?;
            match actual.get(&key) {
                Some(v) if (v - e.value).abs() <= 1e-9 * e.value.abs().max(1.0) => {}
                Some(v) => problems.push(format!("{}: expected {}, got {v}", e.series, e.value)),
                None => {
                    problems.push(format!("{}: expected {}, series missing", e.series, e.value))
                }
            }
        }
        for a in &test.absent {
            let key =
                canonical(a).map_err(|err| Error::Usage(format!("test {:?}: {err}", test.name)))?;
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
    print!("{report}");
    Ok(Verdict::from_ok(failed == 0))
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
