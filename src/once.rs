//! `lookout --once`: every scheduled probe run once, reported as a table, Prometheus text
//! or JSON, for a terminal or a CI step.

use crate::app::Config;
use crate::metrics::exposition::{self, Format};
use crate::probe::certs::NOT_AFTER;
use crate::probe::scheduler::{Results, StoredResult};
use std::fmt::Write;
use std::sync::Arc;
use std::time::SystemTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Table,
    Prometheus,
    Json,
}

/// Runs all probes concurrently; returns the report and whether every probe succeeded.
pub async fn run(config: &Config, output: Output) -> (String, bool) {
    let results = Arc::new(Results::default());
    let mut tasks = tokio::task::JoinSet::new();
    for job in config.jobs.iter().cloned() {
        let results = results.clone();
        tasks.spawn(async move {
            let outcome = crate::probe::run(&job.module, &job.target, job.timeout()).await;
            results.store(&job, outcome);
        });
    }
    while tasks.join_next().await.is_some() {}
    let order = |r: &Arc<StoredResult>| config.jobs.iter().position(|j| j.name == r.name);
    let mut all = results.all();
    all.sort_by_key(order);
    let ok = all.iter().all(|r| r.outcome.success);
    let text = match output {
        Output::Table => table(&all, config.warn_before.as_secs_f64() / 86_400.0),
        Output::Prometheus => exposition::encode(&exposition::merge(all.iter().flat_map(|r| r.families.iter().cloned())), Format::Text),
        Output::Json => json(&all),
    };
    (text, ok)
}

struct CertRow {
    labels: Vec<(String, String)>,
    days_left: f64,
}

fn certificates(result: &StoredResult) -> Vec<CertRow> {
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    result
        .outcome
        .families
        .iter()
        .filter(|f| f.name == NOT_AFTER)
        .flat_map(|f| f.samples.iter())
        .map(|s| CertRow {
            labels: s.labels.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
            days_left: (s.value as i64 - now) as f64 / 86_400.0,
        })
        .collect()
}

fn label<'a>(row: &'a CertRow, name: &str) -> &'a str {
    row.labels.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.as_str())
}

fn table(results: &[Arc<StoredResult>], warn_days: f64) -> String {
    let mut rows = vec![["PROBE".to_string(), "TARGET".into(), "RESULT".into(), "STATUS".into(), "DURATION".into(), "REASON".into()]];
    for r in results {
        let o = &r.outcome;
        rows.push([
            r.name.clone(),
            r.target.clone(),
            if o.success { "ok".into() } else { "FAIL".into() },
            o.value("probe_http_status_code").map_or("-".into(), |s| format!("{s}")),
            format!("{:.3}s", o.duration.as_secs_f64()),
            o.failure.as_ref().map_or(String::new(), |f| format!("{}: {}", f.reason.as_str(), f.message)),
        ]);
    }
    let mut out = align(&rows);
    let certs: Vec<(&Arc<StoredResult>, CertRow)> = results.iter().flat_map(|r| certificates(r).into_iter().map(move |c| (r, c))).collect();
    if !certs.is_empty() {
        let mut rows = vec![["PROBE".to_string(), "CERTIFICATE".into(), "SOURCE".into(), "DAYS LEFT".into(), "".into(), "".into()]];
        for (r, c) in &certs {
            let source = match label(c, "source") {
                "served" => format!("served #{}", label(c, "chain_position")),
                "file" => format!("{} #{}", label(c, "path"), label(c, "chain_position")),
                other => other.to_string(),
            };
            let mark = if c.days_left < 0.0 {
                "EXPIRED".to_string()
            } else if c.days_left < warn_days {
                format!("expires within {warn_days:.0} days")
            } else {
                String::new()
            };
            rows.push([r.name.clone(), label(c, "subject_cn").to_string(), source, format!("{:.1}", c.days_left), mark, String::new()]);
        }
        out.push('\n');
        out.push_str(&align(&rows));
    }
    let failed = results.iter().filter(|r| !r.outcome.success).count();
    let _ = writeln!(out, "\n{} probes, {} ok, {} failed", results.len(), results.len() - failed, failed);
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

fn json(results: &[Arc<StoredResult>]) -> String {
    let items: Vec<serde_json::Value> = results
        .iter()
        .map(|r| {
            let o = &r.outcome;
            serde_json::json!({
                "probe": r.name,
                "module": r.module,
                "target": r.target,
                "success": o.success,
                "duration_seconds": o.duration.as_secs_f64(),
                "status_code": o.value("probe_http_status_code"),
                "failure_reason": o.failure.as_ref().map(|f| f.reason.as_str()),
                "failure_message": o.failure.as_ref().map(|f| f.message.clone()),
                "certificates": certificates(r).iter().map(|c| {
                    let mut cert: serde_json::Map<String, serde_json::Value> = c.labels.iter().map(|(k, v)| (k.clone(), serde_json::Value::from(v.clone()))).collect();
                    cert.insert("days_left".into(), serde_json::json!(c.days_left));
                    serde_json::Value::Object(cert)
                }).collect::<Vec<_>>(),
            })
        })
        .collect();
    let mut text = serde_json::to_string_pretty(&items).unwrap_or_default();
    text.push('\n');
    text
}
