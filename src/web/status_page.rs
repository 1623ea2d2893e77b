//! `/`: a page an operator can read at a glance, on a desk or a phone, light or dark: counts of
//! probes up and down, the log rules' error count, then every scheduled probe (failing first)
//! with its last runs, uptime, latency, status, why it failed and its certificate's days left,
//! and every log source. Server-rendered from [`Snapshot`]; no script but a small filter, nothing
//! loaded from elsewhere, every configured text escaped.

use super::status::{percent, Certificate, ProbeView, Query, Snapshot, PER_PAGE};
use super::svg;
use super::Reply;
use crate::app::App;
use crate::probe::certs::Expiry;
use http::StatusCode;
use std::fmt::Write;
use std::time::SystemTime;

const STYLE: &str = concat!(
    ":root{--bg:#fff;--fg:#1f2328;--muted:#656d76;--line:#d0d7de;--tile:#f6f8fa;--ok:#1a7f37;",
    "--bad:#cf222e;--warn:#9a6700;--warnbg:#fff8c5;--badbg:#ffebe9}",
    "@media(prefers-color-scheme:dark){:root{--bg:#0d1117;--fg:#e6edf3;--muted:#8d96a0;",
    "--line:#30363d;--tile:#161b22;--ok:#3fb950;--bad:#f85149;--warn:#d29922;--warnbg:#3b2e00;",
    "--badbg:#490202}}",
    "body{font-family:system-ui,sans-serif;margin:0 auto;padding:1em;max-width:1400px;",
    "background:var(--bg);color:var(--fg)}a{color:inherit}small{color:var(--muted)}",
    "header{display:flex;flex-wrap:wrap;gap:1em;align-items:baseline}h1{margin:0}",
    ".tiles{display:flex;flex-wrap:wrap;gap:.6em;margin:1em 0}",
    ".tile{background:var(--tile);border:1px solid var(--line);border-radius:8px;padding:.5em 1em}",
    ".tile b{font-size:1.8em;display:block}.tile.bad{border-color:var(--bad);color:var(--bad)}",
    ".tile.warn{border-color:var(--warn);color:var(--warn)}",
    "#errors{font-size:1.2em}#errors b{font-size:3em;line-height:1}",
    "#errors.calm b{color:var(--ok)}#errors.red{background:var(--badbg)}",
    "table{border-collapse:collapse;width:100%}",
    "td,th{padding:.35em .6em;border-bottom:1px solid var(--line);text-align:left;vertical-align:middle}",
    "td.name{min-width:10em;max-width:24em}.name b{display:block}.name b,.name small{overflow-wrap:anywhere}",
    ".state{font-weight:bold;text-transform:uppercase}.up .state{color:var(--ok)}",
    ".state .since{display:block;font-weight:normal;text-transform:none;white-space:nowrap}",
    ".down .state{color:var(--bad)}.pending .state{color:var(--muted)}tr.down{background:var(--badbg)}",
    "svg.bar{width:180px;max-width:25vw;height:16px;display:block}",
    "svg.spark{width:120px;height:20px;display:block;color:var(--muted)}",
    ".cert{border-radius:1em;padding:.1em .6em;display:inline-block}.scroll{overflow-x:auto}",
    ".cert.fine{color:var(--ok);border:1px solid var(--ok)}.cert.soon{background:var(--warnbg);",
    "color:var(--warn);border:1px solid var(--warn)}.cert.expired{background:var(--bad);color:#fff}",
    ".reason{min-width:10em;overflow-wrap:anywhere}.warncell{color:var(--warn);font-weight:bold}",
    "input[type=search]{font-size:1em;padding:.4em;width:min(30em,100%);background:var(--bg);",
    "color:var(--fg);border:1px solid var(--line);border-radius:6px}",
    "nav.pages{margin:.8em 0}nav.pages a,nav.pages span{margin-right:.8em}",
    "@media(max-width:1000px){thead{display:none}tr{display:block;border-bottom:2px solid var(--line);",
    "padding:.4em 0}td{display:block;border:0;padding:.15em .4em}td[data-label]::before{",
    "content:attr(data-label) \": \";color:var(--muted)}svg.bar{width:100%;max-width:none}}",
);

/// Filters the rows of this page as one types; the form's `?q=` filters across pages.
const FILTER_SCRIPT: &str = concat!(
    "<script>(function(){var f=document.getElementById('filter');if(!f)return;",
    "f.addEventListener('input',function(){var q=f.value.toLowerCase();",
    "document.querySelectorAll('#probes tbody tr').forEach(function(r){",
    "r.hidden=q!==''&&r.dataset.search.indexOf(q)<0;});});})();</script>",
);

/// Displayed texts (names, targets, messages) longer than this are cut.
const SHOWN_CHARS: usize = 200;

pub fn handle(app: &App, query: Option<&str>) -> Reply {
    match Query::parse(query) {
        Ok(query) => Reply {
            status: StatusCode::OK,
            content_type: "text/html; charset=utf-8",
            body: render(&Snapshot::take(app, &query), &query),
        },
        Err(reply) => reply,
    }
}

fn render(s: &Snapshot, query: &Query) -> String {
    let now = SystemTime::now();
    let mut html = String::with_capacity(8192 + s.probes.len() * 6000);
    let _ = write!(
        html,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <meta name=\"color-scheme\" content=\"light dark\">\
         <meta http-equiv=\"refresh\" content=\"15\"><title>{}lookout</title><style>{STYLE}</style>\
         </head><body><header><h1>lookout</h1><nav><a href=\"/metrics\">/metrics</a> · \
         <a href=\"/api/v1/status\">/api/v1/status</a> · <a href=\"/queries\">/queries</a> · \
         <a href=\"/-/healthy\">/-/healthy</a> · <a href=\"/-/ready\">/-/ready</a></nav></header>",
        if s.summary.down > 0 { format!("{} down · ", s.summary.down) } else { String::new() }
    );
    summary(&mut html, s);
    let _ = write!(
        html,
        "<h2>Scheduled probes ({})</h2><form method=\"get\" action=\"/\"><input type=\"search\" \
         id=\"filter\" name=\"q\" value=\"{}\" placeholder=\"Filter by name, module or target\" \
         aria-label=\"Filter probes\"></form>",
        s.summary.probes,
        escape(&query.filter)
    );
    html.push_str(
        "<div class=\"scroll\"><table id=\"probes\"><thead><tr><th>Probe</th><th>State</th><th>Last runs</th>\
         <th>Uptime</th><th>Latency</th><th>Status</th><th>Reason</th><th>Certificate</th>\
         <th>Last run</th></tr></thead><tbody>",
    );
    for probe in &s.probes {
        probe_row(&mut html, probe, s.history, now);
    }
    html.push_str("</tbody></table></div>");
    pager(&mut html, s, query);
    sources(&mut html, s);
    let modules: Vec<String> =
        s.modules.iter().map(|(name, prober)| format!("{} ({prober})", escape(name))).collect();
    let _ = write!(
        html,
        "<h2>Modules</h2><p>{}</p><p>/probe is {}.</p>{FILTER_SCRIPT}</body></html>",
        modules.join(", "),
        if s.probe_endpoint { "enabled" } else { "disabled" }
    );
    html
}

fn summary(html: &mut String, s: &Snapshot) {
    let m = &s.summary;
    let tile = |html: &mut String, id: &str, class: &str, count: usize, words: &str| {
        let _ = write!(html, "<div class=\"tile {class}\" id=\"{id}\"><b>{count}</b>{words}</div>");
    };
    html.push_str("<section class=\"tiles\">");
    let errors = s.errors;
    let _ = write!(
        html,
        "<div class=\"tile {}\" id=\"errors\" title=\"{}\"><b id=\"error-count\">{:.0}</b>errors in \
         the last 5 minutes<br><small>{:.0} since start</small></div>",
        if errors.since_start > 0.0 { "red bad" } else { "calm" },
        escape(&format!("sum of {}", s.error_metrics.join("_total, ") + "_total")),
        errors.last_window,
        errors.since_start,
    );
    tile(html, "count-up", "", m.up, "up");
    tile(html, "count-down", if m.down > 0 { "bad" } else { "" }, m.down, "down");
    if m.pending > 0 {
        tile(html, "count-pending", "", m.pending, "pending");
    }
    let expiring = m.certificates_expiring + m.certificates_expired;
    let class = match (m.certificates_expired, m.certificates_expiring) {
        (0, 0) => "",
        (0, _) => "warn",
        _ => "bad",
    };
    tile(html, "count-certificates", class, expiring, "certificates expiring or expired");
    html.push_str("</section>");
}

fn probe_row(html: &mut String, p: &ProbeView, history: usize, now: SystemTime) {
    let search = format!("{} {} {}", p.name, p.module, p.target).to_lowercase();
    let _ = write!(
        html,
        "<tr class=\"probe {state}\" id=\"probe-{job}\" data-search=\"{}\"><td class=\"name\">\
         <b>{}</b><small>{} · {}</small></td><td class=\"state\" data-label=\"State\">{state}\
         {since}</td>",
        escape(&cut(&search)),
        escape(&cut(&p.name)),
        escape(&cut(&p.module)),
        escape(&cut(&p.target)),
        state = p.state.word(),
        job = p.job,
        since = since(p, now),
    );
    let uptime = p.uptime().map_or(String::new(), |u| format!("{}%", percent(u)));
    let _ = write!(
        html,
        "<td data-label=\"Last runs\">{}</td><td class=\"uptime\" data-label=\"Uptime\">{uptime}\
         <small> of {}</small></td><td data-label=\"Latency\">{}</td>",
        svg::uptime_bar(&p.runs, history),
        p.runs.len(),
        svg::sparkline(&p.runs),
    );
    let Some(last) = &p.last else {
        html.push_str("<td></td><td></td><td></td><td></td></tr>");
        return;
    };
    let reason = match &last.outcome.failure {
        Some(f) => format!("{} <small>({})</small>", escape(&cut(&f.message)), f.reason.as_str()),
        None => String::new(),
    };
    let age = now.duration_since(last.finished_at).map_or(0, |d| d.as_secs());
    let _ = write!(
        html,
        "<td class=\"status\" data-label=\"Status\">{}</td><td class=\"reason\" \
         data-label=\"Reason\">{reason}</td><td data-label=\"Certificate\">{}</td>\
         <td data-label=\"Last run\">{age}s ago <small>{:.3}s</small></td></tr>",
        p.status().map_or(String::new(), |s| escape(&cut(&s))),
        p.certificate.map_or(String::new(), certificate_badge),
        last.outcome.duration.as_secs_f64(),
    );
}

/// How long the probe has been in its state (from its kept runs), with the time as a tooltip.
fn since(p: &ProbeView, now: SystemTime) -> String {
    let Some((at, before)) = p.since() else {
        return String::new();
    };
    let now = now.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let at_least = if before { "≥ " } else { "" };
    format!(
        "<small class=\"since\" title=\"since {}\">for {at_least}{}</small>",
        httpdate::fmt_http_date(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(at)),
        span(now.saturating_sub(at))
    )
}

/// `42s`, `5m 10s`, `3h 5m`, `2d 4h`.
fn span(seconds: u64) -> String {
    let (d, h, m, s) = (seconds / 86_400, seconds / 3600 % 24, seconds / 60 % 60, seconds % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

fn certificate_badge(c: Certificate) -> String {
    let d = c.days_left;
    match c.expiry {
        Expiry::Expired => {
            format!("<span class=\"cert expired\">expired {:.0} days ago</span>", -d)
        }
        Expiry::Soon => format!("<span class=\"cert soon\">{d:.1} days left</span>"),
        Expiry::Fine => format!("<span class=\"cert fine\">{d:.0} days left</span>"),
    }
}

fn pager(html: &mut String, s: &Snapshot, query: &Query) {
    if s.pages <= 1 {
        return;
    }
    let link = |page: usize| {
        let mut url = form_urlencoded::Serializer::new(String::new());
        url.append_pair("page", &page.to_string());
        if !query.filter.is_empty() {
            url.append_pair("q", &query.filter);
        }
        escape(&format!("/?{}", url.finish()))
    };
    let _ = write!(
        html,
        "<nav class=\"pages\"><span>page {} of {} ({} probes, {PER_PAGE} a page)</span>",
        s.page, s.pages, s.matching
    );
    if s.page > 1 {
        let _ = write!(html, "<a rel=\"prev\" href=\"{}\">previous</a>", link(s.page - 1));
    }
    if s.page < s.pages {
        let _ = write!(html, "<a rel=\"next\" href=\"{}\">next</a>", link(s.page + 1));
    }
    html.push_str("</nav>");
}

fn sources(html: &mut String, s: &Snapshot) {
    let _ = write!(html, "<h2>Log sources ({})</h2>", s.sources.len());
    html.push_str(
        "<table id=\"sources\"><thead><tr><th>Source</th><th>Paths</th><th>Files</th>\
         <th>Lines/s</th><th>Last record</th><th>Unmatched</th><th>Lag</th></tr></thead><tbody>",
    );
    for src in &s.sources {
        let age = match src.last_record_age {
            Some(a) => format!("{}s ago", a.as_secs()),
            None => "none yet".to_string(),
        };
        let unmatched_class = if src.unmatched_share > 0.05 { "warncell" } else { "" };
        let _ = write!(
            html,
            "<tr><td class=\"name\"><b>{}</b></td><td data-label=\"Paths\">{}</td>\
             <td data-label=\"Files\">{}</td><td data-label=\"Lines/s\">{:.1}</td>\
             <td data-label=\"Last record\">{age}</td><td class=\"{unmatched_class}\" \
             data-label=\"Unmatched\">{:.1}%</td><td data-label=\"Lag\">{} bytes</td></tr>",
            escape(&src.name),
            escape(&src.patterns),
            src.files,
            src.lines_per_second,
            100.0 * src.unmatched_share,
            src.lag_bytes
        );
    }
    html.push_str("</tbody></table>");
}

fn cut(text: &str) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(SHOWN_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]).into(),
        None => text.into(),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_texts_are_cut_and_markup_escaped() {
        assert_eq!(cut("short"), "short");
        let long = "x".repeat(500);
        assert_eq!(cut(&long).chars().count(), SHOWN_CHARS + 1);
        assert_eq!(escape("<a href='x'>\"&"), "&lt;a href=&#39;x&#39;&gt;&quot;&amp;");
    }

    #[test]
    fn how_long_a_state_has_lasted() {
        assert_eq!(span(42), "42s");
        assert_eq!(span(310), "5m 10s");
        assert_eq!(span(3 * 3600 + 5 * 60 + 9), "3h 5m");
        assert_eq!(span(2 * 86_400 + 4 * 3600), "2d 4h");
    }
}
