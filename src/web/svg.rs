//! Inline SVG for the status page and its badges: the uptime bar of the last runs, the
//! latency sparkline, and shields-style badges. Every text is escaped; nothing is loaded from
//! elsewhere.

use super::status_page::escape;
use crate::probe::history::Run;
use std::fmt::Write;

pub const GREEN: &str = "#2da44e";
pub const RED: &str = "#cf222e";
pub const GREY: &str = "#8c959f";
pub const AMBER: &str = "#bf8700";

/// One cell per run, oldest left, `capacity` cells wide so bars line up; each cell's `<title>`
/// says when it ran, how it ended and why.
pub fn uptime_bar(runs: &[Run], capacity: usize) -> String {
    let width = capacity.max(runs.len()) * 4;
    let mut svg = format!(
        "<svg class=\"bar\" viewBox=\"0 0 {width} 16\" preserveAspectRatio=\"none\" role=\"img\" \
         aria-label=\"last {} runs\">",
        runs.len()
    );
    let first = width - runs.len() * 4;
    for (i, run) in runs.iter().enumerate() {
        let (color, word) = if run.success() { (GREEN, "up") } else { (RED, "down") };
        let _ = write!(
            svg,
            "<rect class=\"{word}\" x=\"{}\" width=\"3\" height=\"16\" fill=\"{color}\"><title>{} · {word}{}{}</title></rect>",
            first + i * 4,
            httpdate::fmt_http_date(run.finished_at()),
            if run.status > 0 { format!(" · {}", run.status) } else { String::new() },
            run.failure.map_or(String::new(), |r| format!(" · {}", r.as_str())),
        );
    }
    svg.push_str("</svg>");
    svg
}

/// The runs' durations as a line over the whole width, failed runs marked red, scaled to the
/// slowest.
pub fn sparkline(runs: &[Run]) -> String {
    const HEIGHT: f32 = 20.0;
    let width = (runs.len().max(2) - 1) * 4;
    let slowest = runs.iter().map(|r| r.seconds).fold(0.0f32, f32::max).max(1e-3);
    let point = |i: usize, run: &Run| {
        let x = (4 * i) as f32;
        (x, HEIGHT - 1.0 - (HEIGHT - 2.0) * run.seconds / slowest)
    };
    let mut svg = format!(
        "<svg class=\"spark\" viewBox=\"0 0 {width} {HEIGHT}\" preserveAspectRatio=\"none\" \
         role=\"img\" aria-label=\"latency, slowest {:.3}s\"><title>slowest {:.3}s</title>\
         <polyline fill=\"none\" stroke=\"currentColor\" stroke-width=\"1\" \
         vector-effect=\"non-scaling-stroke\" points=\"",
        slowest, slowest
    );
    for (i, run) in runs.iter().enumerate() {
        let (x, y) = point(i, run);
        let _ = write!(svg, "{x:.0},{y:.1} ");
    }
    svg.push_str("\"/>");
    for (i, run) in runs.iter().enumerate().filter(|(_, r)| !r.success()) {
        let (x, y) = point(i, run);
        let _ = write!(
            svg,
            "<line class=\"fail\" x1=\"{x:.0}\" y1=\"{:.1}\" x2=\"{x:.0}\" y2=\"{:.1}\" stroke=\"{RED}\" \
             stroke-width=\"3\" vector-effect=\"non-scaling-stroke\"/>",
            y - 2.0,
            y + 2.0
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Longest label a badge shows; longer ones are cut with an ellipsis.
const BADGE_LABEL_CHARS: usize = 40;

/// A flat badge: `label` on grey, `value` on `color`, widths estimated from the characters.
pub fn badge(label: &str, value: &str, color: &str) -> String {
    let label: String = if label.chars().count() > BADGE_LABEL_CHARS {
        label.chars().take(BADGE_LABEL_CHARS - 1).chain(['…']).collect()
    } else {
        label.to_string()
    };
    let text_width = |t: &str| 10 + t.chars().count() * 7;
    let (left, right) = (text_width(&label), text_width(value));
    let (label, value) = (escape(&label), escape(value));
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"20\" role=\"img\" \
         aria-label=\"{label}: {value}\"><title>{label}: {value}</title>\
         <rect width=\"{left}\" height=\"20\" fill=\"#555\"/>\
         <rect x=\"{left}\" width=\"{right}\" height=\"20\" fill=\"{color}\"/>\
         <g fill=\"#fff\" font-family=\"Verdana,DejaVu Sans,sans-serif\" font-size=\"11\" \
         text-anchor=\"middle\"><text x=\"{lx}\" y=\"14\">{label}</text>\
         <text x=\"{rx}\" y=\"14\">{value}</text></g></svg>\n",
        w = left + right,
        lx = left / 2,
        rx = left + right / 2,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::FailureReason;

    fn runs() -> Vec<Run> {
        vec![
            Run { at: 1_800_000_000, seconds: 0.2, status: 200, failure: None },
            Run {
                at: 1_800_000_030,
                seconds: 1.0,
                status: 503,
                failure: Some(FailureReason::StatusCode),
            },
        ]
    }

    #[test]
    fn the_bar_has_a_cell_with_a_title_per_run() {
        let bar = uptime_bar(&runs(), 90);
        assert_eq!(bar.matches("<rect").count(), 2);
        assert!(bar.contains("viewBox=\"0 0 360 16\""), "{bar}");
        assert!(bar.contains(" · down · 503 · status_code</title>"), "{bar}");
        assert!(
            bar.contains(&format!("fill=\"{GREEN}\"")) && bar.contains(&format!("fill=\"{RED}\""))
        );
    }

    #[test]
    fn the_sparkline_spans_the_runs_and_marks_failures() {
        let line = sparkline(&runs());
        assert!(line.contains("viewBox=\"0 0 4 20\"") && line.contains("points=\"0,"), "{line}");
        assert!(line.contains("4,1.0"), "the slowest run is at the top: {line}");
        assert_eq!(line.matches("class=\"fail\"").count(), 1);
        assert!(sparkline(&[]).contains("points=\"\""));
    }

    #[test]
    fn badges_escape_and_cut_their_label() {
        let svg = badge(&format!("<script>{}", "x".repeat(100)), "up", GREEN);
        assert!(!svg.contains("<script>") && svg.contains("&lt;script&gt;"), "{svg}");
        assert!(svg.contains('…') && !svg.contains(&"x".repeat(40)));
    }
}
