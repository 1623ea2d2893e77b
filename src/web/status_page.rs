//! `/`: a page an operator can read at a glance: every scheduled probe with its last result,
//! why it failed, and how many days its certificates have left.

use crate::app::App;
use crate::probe::certs::Expiry;
use crate::probe::Failure;
use std::fmt::Write;
use std::time::SystemTime;

pub fn render(app: &App) -> String {
    let config = app.config();
    let results = app.results.all();
    let now = SystemTime::now();
    let mut html = String::with_capacity(4096);
    html.push_str(concat!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"15\">",
        "<title>lookout</title><style>",
        "body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse}",
        "td,th{padding:.3em .8em;border-bottom:1px solid #ddd;text-align:left}",
        ".ok{color:#1a7f37;font-weight:bold}.fail{color:#cf222e;font-weight:bold}.pending{color:#888}",
        ".warn{background:#fff3cd}.expired{background:#f8d7da}",
        "</style></head><body><h1>lookout</h1>",
        "<p><a href=\"/metrics\">/metrics</a> · <a href=\"/queries\">/queries</a> · <a href=\"/-/healthy\">/-/healthy</a> · <a href=\"/-/ready\">/-/ready</a></p>",
    ));
    let _ = write!(html, "<h2>Scheduled probes ({})</h2>", config.jobs.len());
    html.push_str("<table id=\"probes\"><tr><th>Probe</th><th>Module</th><th>Target</th><th>Result</th><th>Status</th><th>Duration</th><th>Reason</th><th>Certificate days left</th><th>Last run</th></tr>");
    for job in &config.jobs {
        let result = results.iter().find(|r| r.name == job.name);
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td>",
            escape(&job.name),
            escape(&job.module.name),
            escape(&job.target)
        );
        match result {
            None => html.push_str("<td class=\"pending\">pending</td><td></td><td></td><td></td><td></td><td></td></tr>"),
            Some(r) => {
                let o = &r.outcome;
                let (class, word) = if o.success { ("ok", "ok") } else { ("fail", "FAIL") };
                let status = o.status().map_or(String::new(), |s| escape(&s));
                let reason = o.failure.as_ref().map_or(String::new(), Failure::to_string);
                let (cert_class, cert_text) = match o.soonest_certificate(now) {
                    None => ("", String::new()),
                    Some(c) => {
                        let d = c.days_left;
                        match c.expiry(config.warn_before) {
                            Expiry::Expired => ("expired", format!("expired {:.0} days ago", -d)),
                            Expiry::Soon => ("warn", format!("{d:.1}")),
                            Expiry::Fine => ("", format!("{d:.0}")),
                        }
                    }
                };
                let age = now.duration_since(r.finished_at).map_or(0, |d| d.as_secs());
                let _ = write!(
                    html,
                    "<td class=\"{class}\">{word}</td><td>{status}</td><td>{:.3}s</td><td>{}</td><td class=\"{cert_class}\">{cert_text}</td><td>{age}s ago</td></tr>",
                    o.duration.as_secs_f64(),
                    escape(&reason)
                );
            }
        }
    }
    html.push_str("</table>");
    let sources = app.logs.summaries();
    let _ = write!(html, "<h2>Log sources ({})</h2>", sources.len());
    html.push_str("<table id=\"sources\"><tr><th>Source</th><th>Paths</th><th>Files</th><th>Lines/s</th><th>Last record</th><th>Unmatched</th><th>Lag</th></tr>");
    for s in &sources {
        let age = match s.last_record_age {
            Some(a) => format!("{}s ago", a.as_secs()),
            None => "none yet".to_string(),
        };
        let unmatched_class = if s.unmatched_share > 0.05 { "warn" } else { "" };
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{age}</td><td class=\"{unmatched_class}\">{:.1}%</td><td>{} bytes</td></tr>",
            escape(&s.name),
            escape(&s.patterns),
            s.files,
            s.lines_per_second,
            100.0 * s.unmatched_share,
            s.lag_bytes
        );
    }
    html.push_str("</table>");
    let _ = write!(
        html,
        "<h2>Modules</h2><p>{}</p><p>/probe is {}.</p></body></html>",
        config
            .modules
            .iter()
            .map(|(name, m)| format!("{} ({})", escape(name), m.prober_name()))
            .collect::<Vec<_>>()
            .join(", "),
        if config.probe_endpoint.enabled { "enabled" } else { "disabled" }
    );
    html
}

pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
