//! The status page's error count: the sum of the log counters named by
//! `status_page.error_metrics` (nginx's 5xx answers and Spring's ERROR records by default),
//! since lookout started and over the last five minutes, from totals sampled every few seconds.

use crate::app::App;
use crate::metrics::exposition::{Family, Kind};
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The span of the recent count.
pub const WINDOW: Duration = Duration::from_secs(300);
/// How often the totals are sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// Samples kept: the window's worth and one before it.
const KEPT: usize = (WINDOW.as_secs() / SAMPLE_EVERY.as_secs()) as usize + 2;

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ErrorCounts {
    pub last_window: f64,
    pub since_start: f64,
}

/// Totals sampled over the last window, bounded.
#[derive(Default)]
pub struct ErrorCount {
    samples: Mutex<VecDeque<(Instant, f64)>>,
}

/// The sum of the counters named in `metrics` (names without `_total`).
pub fn total(families: &[Family], metrics: &[String]) -> f64 {
    families
        .iter()
        .filter(|f| f.kind == Kind::Counter && metrics.iter().any(|m| f.name == m.as_str()))
        .flat_map(|f| f.samples.iter())
        .fold(0.0, |sum, s| sum + s.value)
}

impl ErrorCount {
    /// Records the total at `now`, forgetting what fell out of the window.
    pub fn observe(&self, now: Instant, total: f64) {
        let mut samples = self.samples.lock().expect("error samples lock");
        samples.push_back((now, total));
        // Keep one sample at or before the window's start as its baseline.
        while samples.len() > KEPT
            || (samples.len() > 1
                && samples.get(1).is_some_and(|(at, _)| now.duration_since(*at) >= WINDOW))
        {
            samples.pop_front();
        }
    }

    /// The counts at `now`, when the counters add up to `total`. Until lookout has run for a
    /// whole window, the recent count is the count since start. A counter that went down (a
    /// source that restarted counting) counts from zero again, as Prometheus' `increase`.
    pub fn counts(&self, now: Instant, total: f64) -> ErrorCounts {
        let samples = self.samples.lock().expect("error samples lock");
        let mut previous = samples
            .iter()
            .rev()
            .find(|(at, _)| now.duration_since(*at) >= WINDOW)
            .map_or(0.0, |(_, value)| *value);
        let mut last_window = 0.0;
        let recent = samples.iter().filter(|(at, _)| now.duration_since(*at) < WINDOW);
        for value in recent.map(|(_, v)| *v).chain(std::iter::once(total)) {
            last_window += if value >= previous { value - previous } else { value };
            previous = value;
        }
        ErrorCounts { last_window, since_start: total }
    }
}

/// Samples the totals every [`SAMPLE_EVERY`] while the server runs.
pub async fn sample(app: std::sync::Arc<App>) {
    let mut ticker = tokio::time::interval(SAMPLE_EVERY);
    loop {
        ticker.tick().await;
        let now = Instant::now();
        app.errors.observe(now, total(&app.logs.families(), &app.config().error_metrics));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::exposition::{Name, Sample};

    fn counter(name: &'static str, values: &[f64]) -> Family {
        Family {
            name: Name::Borrowed(name),
            help: Name::Borrowed(""),
            kind: Kind::Counter,
            samples: values
                .iter()
                .map(|v| Sample { labels: Vec::new(), value: *v, suffix: "", exemplar: None })
                .collect(),
        }
    }

    #[test]
    fn sums_only_the_named_counters() {
        let families = [
            counter("http_responses_5xx", &[2.0, 3.0]),
            counter("spring_errors", &[4.0]),
            counter("http_requests", &[100.0]),
        ];
        let metrics = ["http_responses_5xx".to_string(), "spring_errors".to_string()];
        assert_eq!(total(&families, &metrics), 9.0);
    }

    #[test]
    fn counts_the_last_window_and_since_start() {
        let errors = ErrorCount::default();
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        // Young: everything since start is recent.
        errors.observe(at(0), 0.0);
        errors.observe(at(10), 4.0);
        assert_eq!(errors.counts(at(12), 5.0), ErrorCounts { last_window: 5.0, since_start: 5.0 });
        // 400 s later the first errors have left the window.
        for s in (15..=400).step_by(5) {
            errors.observe(at(s), if s < 200 { 5.0 } else { 7.0 });
        }
        assert_eq!(errors.counts(at(401), 7.0).last_window, 2.0);
        assert_eq!(errors.counts(at(700), 7.0).last_window, 0.0);
        // A counter that restarted counts from zero: 2 before the restart, 3 after it.
        errors.observe(at(405), 1.0);
        assert_eq!(errors.counts(at(406), 3.0).last_window, 5.0);
        assert!(errors.samples.lock().unwrap().len() <= KEPT);
    }
}
