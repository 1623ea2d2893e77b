//! `lookout --once`: every scheduled probe run once, reported as a table, Prometheus text
//! or JSON, for a terminal or a CI step.

use super::{Error, Verdict};
use crate::app::{Config, ConfigPaths};
use crate::logs::{offline, SourcePlan, SourceState};
use crate::metrics::exposition::{self, Format};
use crate::metrics::families::PROBE_HTTP_STATUS_CODE;
use crate::probe::certs::{CertificateView, Expiry};
use crate::probe::scheduler::{Results, StoredResult};
use crate::probe::Failure;
use std::fmt::Write;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Table,
    Prometheus,
    Json,
}

/// `lookout --once`: prints the report; fails when a probe failed.
pub fn main(paths: &ConfigPaths, output: Output) -> Result<Verdict, Error> {
    let config = Config::load(paths)?;
    let (report, ok) = super::runtime().block_on(run(&config, output));
    if config.shard.count > 1 {
        // Said apart from the report, which stays in its format.
        eprintln!("lookout: --once ran shard {} of the scheduled probes", config.shard);
    }
    print!("{report}");
    Ok(Verdict::from_ok(ok))
}

/// Runs all probes concurrently, at most `--probe.max-concurrency` at once; returns the report
/// and whether every probe succeeded.
async fn run(config: &Config, output: Output) -> (String, bool) {
    let results = Arc::new(Results::default());
    let limit = crate::probe::scheduler::concurrency();
    let mut tasks = tokio::task::JoinSet::new();
    for job in config.jobs.iter().cloned() {
        let (results, limit) = (results.clone(), limit.clone());
        tasks.spawn(async move {
            let Ok(_permit) = limit.acquire_owned().await else { return };
            let outcome = crate::probe::run(&job.module, &job.target, job.timeout()).await;
            results.store(&job, outcome);
        });
    }
    while tasks.join_next().await.is_some() {}
    let order = |r: &Arc<StoredResult>| config.jobs.iter().position(|j| j.name == r.job.name);
    let mut all = results.all();
    all.sort_by_key(order);
    let ok = all.iter().all(|r| r.outcome.success);
    let sources: Vec<Counted> = config
        .log_plans
        .iter()
        .map(|plan| {
            let mut state = SourceState::new(plan);
            offline::read_files(plan, &mut state, plan.patterns.clone());
            (plan.as_ref(), state)
        })
        .collect();
    let text = match output {
        Output::Table => {
            let mut text = table(&all, config.warn_before);
            if !sources.is_empty() {
                text.push('\n');
                text.push_str(&logs_table(&sources));
            }
            text
        }
        Output::Prometheus => {
            let probes = all.iter().flat_map(|r| r.families());
            let logs = sources.iter().flat_map(|(plan, state)| state.exposition(plan));
            exposition::encode(&exposition::merge(probes.chain(logs)), Format::Text)
        }
        Output::Json => json(&all, &sources),
    };
    (text, ok)
}

const TOP: usize = 5;

/// A log source read to its end, with what it counted.
type Counted<'p> = (&'p SourcePlan, SourceState);

/// Lines and records per source, the busiest series of each rule, and the top query hashes
/// with their SQL where an index knows it.
fn logs_table(sources: &[Counted]) -> String {
    let mut rows = vec![[
        "SOURCE".to_string(),
        "FILES".into(),
        "LINES".into(),
        "RECORDS".into(),
        "UNMATCHED".into(),
        "ERRORS".into(),
    ]];
    for (plan, state) in sources {
        rows.push([
            plan.name.clone(),
            state.counts.files.to_string(),
            state.counts.tail.lines.to_string(),
            state.counts.records.matched.to_string(),
            state.counts.records.unmatched.to_string(),
            state.counts.records.errors.to_string(),
        ]);
    }
    let mut out = align(&rows);
    let sql: std::collections::HashMap<&str, &str> = sources
        .iter()
        .flat_map(|(_, state)| state.queries.entries.iter().map(|(h, s)| (h.as_str(), s.as_str())))
        .collect();
    let mut rows = vec![[
        "METRIC".to_string(),
        "SERIES".into(),
        "COUNT".into(),
        "".into(),
        "".into(),
        "".into(),
    ]];
    let mut queries = vec![[
        "METRIC".to_string(),
        "HASH".into(),
        "COUNT".into(),
        "SQL".into(),
        "".into(),
        "".into(),
    ]];
    for (plan, state) in sources {
        for (m, rule_state) in plan.rules.iter().zip(&state.rules) {
            for (labels, value) in m.top(rule_state, TOP) {
                let shown = labels
                    .iter()
                    .map(|(k, v)| format!("{k}=\"{v}\""))
                    .collect::<Vec<_>>()
                    .join(",");
                rows.push([
                    m.full_name.clone(),
                    format!("{{{shown}}}"),
                    format!("{value}"),
                    String::new(),
                    String::new(),
                    String::new(),
                ]);
                if let Some((hash, text)) =
                    labels.iter().find_map(|(_, v)| sql.get(v.as_str()).map(|s| (v.clone(), *s)))
                {
                    let text: String = text.chars().take(100).collect();
                    queries.push([
                        m.full_name.clone(),
                        hash,
                        format!("{value}"),
                        text,
                        String::new(),
                        String::new(),
                    ]);
                }
            }
        }
    }
    if rows.len() > 1 {
        out.push('\n');
        out.push_str(&align(&rows));
    }
    if queries.len() > 1 {
        out.push('\n');
        out.push_str(&align(&queries));
    }
    out
}

fn table(results: &[Arc<StoredResult>], warn_before: Duration) -> String {
    let mut rows = vec![[
        "PROBE".to_string(),
        "TARGET".into(),
        "RESULT".into(),
        "STATUS".into(),
        "DURATION".into(),
        "REASON".into(),
    ]];
    for r in results {
        let o = &r.outcome.expand();
        rows.push([
            r.job.name.clone(),
            r.job.target.clone(),
            if o.success { "ok".into() } else { "FAIL".into() },
            o.status().unwrap_or_else(|| "-".into()),
            format!("{:.3}s", o.duration.as_secs_f64()),
            o.failure.as_ref().map_or(String::new(), Failure::to_string),
        ]);
    }
    let mut out = align(&rows);
    let now = SystemTime::now();
    let certs: Vec<(&Arc<StoredResult>, CertificateView)> = results
        .iter()
        .flat_map(|r| r.outcome.certificates(now).into_iter().map(move |c| (r, c)))
        .collect();
    if !certs.is_empty() {
        let mut rows = vec![[
            "PROBE".to_string(),
            "CERTIFICATE".into(),
            "SOURCE".into(),
            "DAYS LEFT".into(),
            "".into(),
            "".into(),
        ]];
        for (r, c) in &certs {
            let source = match c.label("source") {
                "served" => format!("served #{}", c.label("chain_position")),
                "file" => format!("{} #{}", c.label("path"), c.label("chain_position")),
                other => other.to_string(),
            };
            let mark = match c.expiry(warn_before) {
                Expiry::Expired => "EXPIRED".to_string(),
                Expiry::Soon => {
                    format!("expires within {:.0} days", warn_before.as_secs_f64() / 86_400.0)
                }
                Expiry::Fine => String::new(),
            };
            rows.push([
                r.job.name.clone(),
                c.label("subject_cn").to_string(),
                source,
                format!("{:.1}", c.days_left),
                mark,
                String::new(),
            ]);
        }
        out.push('\n');
        out.push_str(&align(&rows));
    }
    let failed = results.iter().filter(|r| !r.outcome.success).count();
    let _ = writeln!(
        out,
        "\n{} probes, {} ok, {} failed",
        results.len(),
        results.len() - failed,
        failed
    );
    out
}

fn align(rows: &[[String; 6]]) -> String {
    let mut widths = [0usize; 6];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            let _ = write!(line, "{cell:<width$}  ", width = widths[i]);
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn json(results: &[Arc<StoredResult>], sources: &[Counted]) -> String {
    let now = SystemTime::now();
    let logs: Vec<serde_json::Value> = sources
        .iter()
        .map(|(plan, state)| {
            serde_json::json!({
                "source": plan.name,
                "files": state.counts.files,
                "lines": state.counts.tail.lines,
                "records": state.counts.records.matched,
                "unmatched": state.counts.records.unmatched,
                "errors": state.counts.records.errors,
                "metrics": plan.rules.iter().zip(&state.rules).map(|(m, rule_state)| serde_json::json!({
                    "name": m.full_name,
                    "series": rule_state.series_count(),
                    "top": m.top(rule_state, TOP).into_iter().map(|(labels, value)| serde_json::json!({
                        "labels": labels.into_iter().map(|(k, v)| (k, serde_json::Value::from(v))).collect::<serde_json::Map<_, _>>(),
                        "value": value,
                    })).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let probes: Vec<serde_json::Value> = results
        .iter()
        .map(|r| {
            let o = &r.outcome.expand();
            serde_json::json!({
                "probe": r.job.name,
                "module": r.job.module.name,
                "target": r.job.target,
                "success": o.success,
                "duration_seconds": o.duration.as_secs_f64(),
                "status_code": o.value(&PROBE_HTTP_STATUS_CODE).filter(|c| *c > 0.0),
                "status": o.status(),
                "failure_reason": o.failure.as_ref().map(|f| f.reason.as_str()),
                "failure_message": o.failure.as_ref().map(|f| f.message.clone()),
                "certificates": o.certificates(now).iter().map(|c| {
                    let mut cert: serde_json::Map<String, serde_json::Value> = c.labels.iter().map(|(k, v)| (k.clone(), serde_json::Value::from(v.clone()))).collect();
                    cert.insert("days_left".into(), serde_json::json!(c.days_left));
                    serde_json::Value::Object(cert)
                }).collect::<Vec<_>>(),
            })
        })
        .collect();
    let report = serde_json::json!({ "probes": probes, "logs": logs });
    let mut text = serde_json::to_string_pretty(&report).unwrap_or_default();
    text.push('\n');
    text
}
