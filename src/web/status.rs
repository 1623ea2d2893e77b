//! What the status page shows, gathered once per request and shared by its three forms: the
//! HTML page (`status_page.rs`), the JSON API `/api/v1/status` and the SVG badges
//! `/badge/<probe>/status.svg` and `/badge/<probe>/uptime.svg`.
//!
//! Probes are ordered failing first, then by certificate trouble, then by name; a page holds
//! at most [`PER_PAGE`] of them and only those are read in full, so ten thousand probes cost
//! one sort, not ten thousand histories.

use super::error_count::{self, ErrorCounts};
use super::svg;
use super::Reply;
use crate::app::App;
use crate::logs::SourceSummary;
use crate::probe::certs::Expiry;
use crate::probe::history::Run;
use crate::probe::scheduler::{Job, StoredResult};
use http::StatusCode;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// Probes on one page of the status page and of `/api/v1/status`.
pub const PER_PAGE: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum State {
    Down,
    Pending,
    Up,
}

impl State {
    pub fn word(self) -> &'static str {
        match self {
            State::Down => "down",
            State::Pending => "pending",
            State::Up => "up",
        }
    }
}

/// The soonest-expiring certificate of a probe's last run.
#[derive(Debug, Clone, Copy)]
pub struct Certificate {
    pub days_left: f64,
    pub expiry: Expiry,
}

/// One probe as shown.
pub struct ProbeView {
    pub job: usize,
    pub name: String,
    pub module: String,
    pub target: String,
    pub state: State,
    pub last: Option<Arc<StoredResult>>,
    pub certificate: Option<Certificate>,
    /// Filled for the probes of the page only.
    pub runs: Vec<Run>,
}

impl ProbeView {
    /// The share of kept runs that succeeded, in percent; `None` before the first run.
    pub fn uptime(&self) -> Option<f64> {
        let ok = self.runs.iter().filter(|r| r.success()).count();
        (!self.runs.is_empty()).then(|| 100.0 * ok as f64 / self.runs.len() as f64)
    }

    /// When the current state began: the first of the latest runs that all succeeded or all
    /// failed (Unix seconds), and whether that is the oldest run kept (it began before).
    pub fn since(&self) -> Option<(u64, bool)> {
        let last = self.runs.last()?.success();
        let streak = self.runs.iter().rev().take_while(|r| r.success() == last).count();
        let first = &self.runs[self.runs.len() - streak];
        Some((first.at.into(), streak == self.runs.len()))
    }

    /// What the target last answered, in a word (HTTP status, gRPC serving status, DNS
    /// answers, echo replies).
    pub fn status(&self) -> Option<String> {
        self.last.as_ref().and_then(|r| r.outcome.status())
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub struct Summary {
    pub probes: usize,
    pub up: usize,
    pub down: usize,
    pub pending: usize,
    pub certificates_expiring: usize,
    pub certificates_expired: usize,
}

/// The `?page=` and `?q=` of a request.
#[derive(Debug, Default)]
pub struct Query {
    /// From 1.
    pub page: usize,
    /// Probes whose name, module or target contain it (case-insensitive).
    pub filter: String,
}

impl Query {
    pub fn parse(query: Option<&str>) -> Result<Query, Reply> {
        let mut parsed = Query { page: 1, filter: String::new() };
        for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            match key.as_ref() {
                "page" => match value.parse::<usize>() {
                    Ok(n) if n >= 1 => parsed.page = n,
                    _ => {
                        let message = "page must be a whole number from 1\n".to_string();
                        return Err(Reply::text(StatusCode::BAD_REQUEST, message));
                    }
                },
                "q" => parsed.filter = value.chars().take(200).collect::<String>().to_lowercase(),
                _ => {}
            }
        }
        Ok(parsed)
    }
}

pub struct Snapshot {
    pub summary: Summary,
    pub errors: ErrorCounts,
    pub error_metrics: Vec<String>,
    /// The probes of the requested page, in order.
    pub probes: Vec<ProbeView>,
    pub page: usize,
    pub pages: usize,
    /// Probes that pass the filter, on every page.
    pub matching: usize,
    pub history: usize,
    pub sources: Vec<SourceSummary>,
    pub probe_endpoint: bool,
    pub modules: Vec<(String, String)>,
}

impl Snapshot {
    pub fn take(app: &App, query: &Query) -> Snapshot {
        let config = app.config();
        let now = SystemTime::now();
        let results: HashMap<(String, String), Arc<StoredResult>> = app
            .results
            .all()
            .into_iter()
            .map(|r| ((r.job.name.clone(), r.job.target.clone()), r))
            .collect();
        // Probes with a target, then the discovered targets that have run.
        let discovered =
            results.values().filter(|r| config.discoveries.iter().any(|d| d.name == r.job.name));
        let jobs: Vec<Arc<Job>> =
            config.jobs.iter().cloned().chain(discovered.map(|r| r.job.clone())).collect();
        let mut summary = Summary { probes: jobs.len(), ..Summary::default() };
        let mut probes: Vec<ProbeView> = jobs
            .iter()
            .enumerate()
            .map(|(job, j)| {
                let last = results.get(&(j.name.clone(), j.target.clone())).cloned();
                let state = match &last {
                    None => State::Pending,
                    Some(r) if r.outcome.success => State::Up,
                    Some(_) => State::Down,
                };
                let certificate = last.as_ref().and_then(|r| {
                    let c = r.outcome.soonest_certificate(now)?;
                    Some(Certificate {
                        days_left: c.days_left,
                        expiry: c.expiry(config.warn_before),
                    })
                });
                match state {
                    State::Up => summary.up += 1,
                    State::Down => summary.down += 1,
                    State::Pending => summary.pending += 1,
                }
                match certificate.map(|c| c.expiry) {
                    Some(Expiry::Soon) => summary.certificates_expiring += 1,
                    Some(Expiry::Expired) => summary.certificates_expired += 1,
                    _ => {}
                }
                ProbeView {
                    job,
                    name: j.name.clone(),
                    module: j.module.name.clone(),
                    target: j.target.clone(),
                    state,
                    last,
                    certificate,
                    runs: Vec::new(),
                }
            })
            .filter(|p| query.filter.is_empty() || p.matches(&query.filter))
            .collect();
        let matching = probes.len();
        let rank = |p: &ProbeView| {
            let certificate = match p.certificate.map(|c| c.expiry) {
                Some(Expiry::Expired) => 0,
                Some(Expiry::Soon) => 1,
                _ => 2,
            };
            (p.state, certificate)
        };
        probes.sort_by(|a, b| rank(a).cmp(&rank(b)).then_with(|| a.name.cmp(&b.name)));
        let pages = matching.div_ceil(PER_PAGE).max(1);
        let mut probes: Vec<ProbeView> = probes
            .into_iter()
            .skip((query.page - 1).saturating_mul(PER_PAGE))
            .take(PER_PAGE)
            .collect();
        {
            let history = app.results.history();
            for probe in &mut probes {
                probe.runs = history.runs(&probe.name, &probe.target).copied().collect();
            }
        }
        let total = error_count::total(&app.logs.families(), &config.error_metrics);
        Snapshot {
            summary,
            errors: app.errors.counts(Instant::now(), total),
            error_metrics: config.error_metrics.clone(),
            probes,
            page: query.page,
            pages,
            matching,
            history: config.history,
            sources: app.logs.summaries(),
            probe_endpoint: config.probe_endpoint.enabled,
            modules: config
                .modules
                .iter()
                .map(|(n, m)| (n.clone(), m.prober_name().to_string()))
                .collect(),
        }
    }
}

impl ProbeView {
    fn matches(&self, filter: &str) -> bool {
        [&self.name, &self.module, &self.target].iter().any(|t| t.to_lowercase().contains(filter))
    }
}

/// `/api/v1/status`: the page's data as JSON, a page at a time.
pub fn api(app: &App, query: Option<&str>) -> Reply {
    let query = match Query::parse(query) {
        Ok(q) => q,
        Err(reply) => return reply,
    };
    let s = Snapshot::take(app, &query);
    let probes: Vec<serde_json::Value> = s.probes.iter().map(probe_json).collect();
    let sources: Vec<serde_json::Value> = s
        .sources
        .iter()
        .map(|src| {
            serde_json::json!({
                "name": src.name,
                "paths": src.patterns,
                "files": src.files,
                "lines_per_second": src.lines_per_second,
                "last_record_age_seconds": src.last_record_age.map(|a| a.as_secs_f64()),
                "unmatched_share": src.unmatched_share,
                "lag_bytes": src.lag_bytes,
            })
        })
        .collect();
    let answer = serde_json::json!({
        "summary": {
            "probes": s.summary.probes,
            "up": s.summary.up,
            "down": s.summary.down,
            "pending": s.summary.pending,
            "certificates_expiring": s.summary.certificates_expiring,
            "certificates_expired": s.summary.certificates_expired,
        },
        "errors": {
            "last_5m": s.errors.last_window,
            "since_start": s.errors.since_start,
            "metrics": s.error_metrics.iter().map(|m| format!("{m}_total")).collect::<Vec<_>>(),
        },
        "page": s.page,
        "pages": s.pages,
        "per_page": PER_PAGE,
        "matching": s.matching,
        "history": s.history,
        "probes": probes,
        "sources": sources,
    });
    let mut body = serde_json::to_string_pretty(&answer).unwrap_or_default();
    body.push('\n');
    Reply { status: StatusCode::OK, content_type: "application/json", body }
}

fn probe_json(p: &ProbeView) -> serde_json::Value {
    let failure = p.last.as_ref().and_then(|r| r.outcome.failure.as_ref());
    serde_json::json!({
        "name": p.name,
        "module": p.module,
        "target": p.target,
        "state": p.state.word(),
        "status": p.status(),
        "reason": failure.map(|f| f.reason.as_str()),
        "message": failure.map(|f| f.message.as_str()),
        "duration_seconds": p.last.as_ref().map(|r| r.outcome.duration.as_secs_f64()),
        "last_run": p.last.as_ref().map(|r| unix(r.finished_at)),
        "uptime_percent": p.uptime(),
        "state_since": p.since().map(|(at, _)| at),
        "state_since_before_history": p.since().map(|(_, before)| before),
        "certificate": p.certificate.map(|c| serde_json::json!({
            "days_left": c.days_left,
            "state": match c.expiry { Expiry::Expired => "expired", Expiry::Soon => "expiring", Expiry::Fine => "fine" },
        })),
        "runs": p.runs.iter().map(|r| serde_json::json!({
            "at": r.at,
            "success": r.success(),
            "seconds": r.seconds,
            "status_code": (r.status > 0).then_some(r.status),
            "reason": r.failure.map(|f| f.as_str()),
        })).collect::<Vec<_>>(),
    })
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `/badge/<probe>/status.svg` and `/badge/<probe>/uptime.svg` (the name percent-encoded);
/// 404 for an unknown probe or badge.
pub fn badge(app: &App, rest: &str) -> Reply {
    let not_found = || Reply::text(StatusCode::NOT_FOUND, "Not found\n".into());
    let Some((name, kind)) = rest.rsplit_once('/') else { return not_found() };
    let Some(name) = percent_decode(name) else { return not_found() };
    let config = app.config();
    let Some(job) = config.jobs.iter().find(|j| j.name == name) else { return not_found() };
    if !matches!(kind, "status.svg" | "uptime.svg") {
        return not_found();
    }
    let last = app.results.all().into_iter().find(|r| r.job.name == name);
    let body = if kind == "status.svg" {
        match last {
            None => svg::badge(&name, "pending", svg::GREY),
            Some(r) if r.outcome.success => svg::badge(&name, "up", svg::GREEN),
            Some(_) => svg::badge(&name, "down", svg::RED),
        }
    } else {
        let history = app.results.history();
        let (ok, all) = history
            .runs(&name, &job.target)
            .fold((0, 0), |(ok, all), r| (ok + r.success() as usize, all + 1));
        match all {
            0 => svg::badge(&name, "no runs", svg::GREY),
            _ => {
                let uptime = 100.0 * ok as f64 / all as f64;
                let color = if uptime >= 99.0 {
                    svg::GREEN
                } else if uptime >= 95.0 {
                    svg::AMBER
                } else {
                    svg::RED
                };
                svg::badge(&name, &format!("{}%", percent(uptime)), color)
            }
        }
    };
    Reply { status: StatusCode::OK, content_type: "image/svg+xml", body }
}

/// A percentage as shown: whole when it is, else with one decimal (never 100 when below it).
pub fn percent(value: f64) -> String {
    if value >= 100.0 {
        "100".to_string()
    } else if value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{:.1}", (value * 10.0).floor() / 10.0)
    }
}

/// `%XX` decoded; `None` when that is not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).and_then(|b| hex(*b)),
            bytes.get(i + 2).and_then(|b| hex(*b)),
        ) {
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_and_percentages() {
        assert_eq!(percent_decode("a%20b%2Fc").as_deref(), Some("a b/c"));
        assert_eq!(percent_decode("%3Cscript%3E%").as_deref(), Some("<script>%"));
        assert_eq!(percent_decode("%FF"), None);
        assert_eq!(percent(100.0), "100");
        assert_eq!(percent(99.99), "99.9");
        assert_eq!(percent(50.0), "50");
    }

    #[test]
    fn queries_parse_or_answer_400() {
        let q = Query::parse(Some("page=3&q=Shop")).unwrap();
        assert_eq!((q.page, q.filter.as_str()), (3, "shop"));
        assert!(Query::parse(Some("page=0")).is_err());
        assert!(Query::parse(Some("page=x")).is_err());
        assert_eq!(Query::parse(None).unwrap().page, 1);
    }
}
