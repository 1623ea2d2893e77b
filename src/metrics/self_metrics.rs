//! lookout's own metrics: build info, probe runs, `/probe` requests and rejections, HTTP
//! requests, configuration reloads. Every label value comes from the configuration or a fixed
//! set, never from a request, so a scraper cannot grow them.

use super::exposition::Family;
use super::exposition::Sample;
use super::families::{
    BUILD_INFO, CONFIG_LAST_RELOAD_SUCCESSFUL, CONFIG_LAST_RELOAD_SUCCESS_TIMESTAMP_SECONDS,
    CONFIG_RELOADS, HTTP_REQUESTS, PROBE_REQUESTS, PROBE_REQUEST_ERRORS, PROBE_RUNS,
    PROBE_RUN_SECONDS, PROBE_STARTS_WAITED, PROBE_START_LATENESS_SECONDS, SD_DROPPED_TARGETS,
    SD_REFRESH_FAILURES, SD_TARGETS, SHARD_INFO, SHARD_PROBES,
};
use crate::probe::shard::Shard;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// Upper bounds of the start-lateness buckets, in seconds: the 50 ms a slot may be missed by
/// sits in the middle.
const LATENESS_BUCKETS: [f64; 10] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

#[derive(Default)]
struct Counters {
    /// Runs per lateness bucket (the last one: later than every bound), and their sum.
    lateness: [u64; LATENESS_BUCKETS.len() + 1],
    lateness_sum: f64,
    starts_waited: u64,
    sd_failures: BTreeMap<(String, &'static str), u64>,
    /// Per probe with discovery: targets discovered, and those this replica runs.
    sd_targets: BTreeMap<String, (usize, usize)>,
    /// Per probe with discovery: targets discovered but left out.
    sd_dropped: BTreeMap<String, usize>,
    /// Per probe name; looked up by `&str` at each run, so the name is copied only at its first.
    probe_runs: BTreeMap<String, ProbeRuns>,
    probe_requests: BTreeMap<(String, bool), u64>,
    probe_rejections: BTreeMap<&'static str, u64>,
    http_requests: BTreeMap<(&'static str, u16), u64>,
    reloads: BTreeMap<bool, u64>,
    last_reload_ok: bool,
    last_reload_success: f64,
}

#[derive(Default)]
struct ProbeRuns {
    succeeded: u64,
    failed: u64,
    seconds: f64,
}

pub struct SelfMetrics {
    counters: Mutex<Counters>,
}

impl Default for SelfMetrics {
    fn default() -> Self {
        SelfMetrics::new()
    }
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

fn result_label(success: bool) -> String {
    if success { "success" } else { "failure" }.to_string()
}

impl SelfMetrics {
    /// Which share of the scheduled probes this replica runs, and how many that is: `fixed`
    /// probes with a `target`, plus the discovered ones it runs.
    pub fn shard(&self, shard: Shard, fixed: usize) -> [Family; 2] {
        let discovered: usize = self.with(|c| c.sd_targets.values().map(|(_, owned)| owned).sum());
        let labels = SHARD_INFO.labels([shard.index.to_string(), shard.count.to_string()]);
        [
            Family::of(&SHARD_INFO).with(labels, 1.0),
            Family::of(&SHARD_PROBES).with(vec![], (fixed + discovered) as f64),
        ]
    }

    /// A discovery source of `probe` failed to read (`mechanism`: file or http).
    pub fn record_sd_failure(&self, probe: &str, mechanism: &'static str) {
        self.with(|c| *c.sd_failures.entry((probe.to_string(), mechanism)).or_default() += 1);
    }

    /// Discovery gives `probe` these many targets, `owned` of them run by this replica.
    pub fn set_sd_targets(&self, probe: &str, targets: usize, owned: usize) {
        self.with(|c| c.sd_targets.insert(probe.to_string(), (targets, owned)));
    }

    /// Discovery left out `dropped` of the targets its sources give `probe`.
    pub fn set_sd_dropped(&self, probe: &str, dropped: usize) {
        self.with(|c| c.sd_dropped.insert(probe.to_string(), dropped));
    }

    /// Forgets the run counts of probes and the `/probe` counts of modules no longer
    /// configured, so names that churn with a generated probes.yaml do not pile up.
    pub fn retain_configured(
        &self,
        probes: &std::collections::HashSet<&str>,
        modules: &std::collections::HashSet<&str>,
    ) {
        self.with(|c| {
            c.probe_runs.retain(|name, _| probes.contains(&name.as_str()));
            c.probe_requests.retain(|(module, _), _| modules.contains(&module.as_str()));
        });
    }

    /// The discovery sources configured, as (probe, mechanism): their failure counts start at
    /// 0, so the first failure is an increase; figures of others are forgotten.
    pub fn retain_sd(&self, sources: &[(&str, &'static str)]) {
        self.with(|c| {
            c.sd_targets.retain(|p, _| sources.iter().any(|(probe, _)| probe == p));
            c.sd_dropped.retain(|p, _| sources.iter().any(|(probe, _)| probe == p));
            c.sd_failures.retain(|(p, m), _| sources.contains(&(p.as_str(), *m)));
            for (probe, mechanism) in sources {
                c.sd_failures.entry((probe.to_string(), mechanism)).or_default();
            }
        });
    }

    pub fn new() -> SelfMetrics {
        let counters = Counters {
            last_reload_ok: true,
            last_reload_success: unix_now(),
            ..Counters::default()
        };
        SelfMetrics { counters: Mutex::new(counters) }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Counters) -> R) -> R {
        f(&mut self.counters.lock().expect("self metrics lock"))
    }

    pub fn record_probe_run(&self, probe: &str, success: bool, duration: Duration) {
        self.with(|c| {
            let runs = match c.probe_runs.get_mut(probe) {
                Some(runs) => runs,
                None => c.probe_runs.entry(probe.to_string()).or_default(),
            };
            *if success { &mut runs.succeeded } else { &mut runs.failed } += 1;
            runs.seconds += duration.as_secs_f64();
        });
    }

    /// A scheduled run started `lateness` after its slot.
    pub fn record_probe_start_lateness(&self, lateness: Duration) {
        let seconds = lateness.as_secs_f64();
        let bucket = LATENESS_BUCKETS.iter().position(|b| seconds <= *b);
        self.with(|c| {
            c.lateness[bucket.unwrap_or(LATENESS_BUCKETS.len())] += 1;
            c.lateness_sum += seconds;
        });
    }

    /// A scheduled run found every `--probe.max-concurrency` slot taken and waited.
    pub fn record_probe_start_waited(&self) {
        self.with(|c| c.starts_waited += 1);
    }

    /// A `/probe` request that ran; `module` is a configured module name.
    pub fn record_probe_request(&self, module: &str, success: bool) {
        self.with(|c| *c.probe_requests.entry((module.to_string(), success)).or_default() += 1);
    }

    /// A `/probe` request refused before probing (`reason` from a fixed set).
    pub fn record_probe_rejection(&self, reason: &'static str) {
        self.with(|c| *c.probe_rejections.entry(reason).or_default() += 1);
    }

    pub fn record_http_request(&self, handler: &'static str, code: u16) {
        self.with(|c| *c.http_requests.entry((handler, code)).or_default() += 1);
    }

    pub fn record_reload(&self, success: bool) {
        self.with(|c| {
            *c.reloads.entry(success).or_default() += 1;
            c.last_reload_ok = success;
            if success {
                c.last_reload_success = unix_now();
            }
        });
    }

    pub fn collect(&self) -> Vec<Family> {
        let mut families = vec![Family::of(&BUILD_INFO)
            .with(BUILD_INFO.labels([env!("CARGO_PKG_VERSION").to_string()]), 1.0)];
        self.with(|c| {
            let mut runs = Family::of(&PROBE_RUNS);
            let mut seconds = Family::of(&PROBE_RUN_SECONDS);
            for (probe, counts) in &c.probe_runs {
                for (success, n) in [(false, counts.failed), (true, counts.succeeded)] {
                    if n > 0 {
                        runs = runs.with(
                            PROBE_RUNS.labels([probe.clone(), result_label(success)]),
                            n as f64,
                        );
                    }
                }
                seconds = seconds.with(PROBE_RUN_SECONDS.labels([probe.clone()]), counts.seconds);
            }
            let mut requests = Family::of(&PROBE_REQUESTS);
            for ((module, success), n) in &c.probe_requests {
                requests = requests.with(
                    PROBE_REQUESTS.labels([module.clone(), result_label(*success)]),
                    *n as f64,
                );
            }
            let mut rejections = Family::of(&PROBE_REQUEST_ERRORS);
            for (reason, n) in &c.probe_rejections {
                rejections =
                    rejections.with(PROBE_REQUEST_ERRORS.labels([reason.to_string()]), *n as f64);
            }
            let mut http = Family::of(&HTTP_REQUESTS);
            for ((handler, code), n) in &c.http_requests {
                http = http
                    .with(HTTP_REQUESTS.labels([handler.to_string(), code.to_string()]), *n as f64);
            }
            let mut reloads = Family::of(&CONFIG_RELOADS);
            for (success, n) in &c.reloads {
                reloads = reloads.with(CONFIG_RELOADS.labels([result_label(*success)]), *n as f64);
            }
            let mut lateness = Family::of(&PROBE_START_LATENESS_SECONDS);
            let mut cumulative = 0;
            for (i, n) in c.lateness.iter().enumerate() {
                cumulative += n;
                let le = LATENESS_BUCKETS.get(i).map_or("+Inf".to_string(), |b| b.to_string());
                lateness.samples.push(Sample {
                    suffix: "_bucket",
                    ..Sample::new(vec![("le".into(), le)], cumulative as f64)
                });
            }
            lateness.samples.push(Sample { suffix: "_sum", ..Sample::new(vec![], c.lateness_sum) });
            lateness
                .samples
                .push(Sample { suffix: "_count", ..Sample::new(vec![], cumulative as f64) });
            let waited = Family::of(&PROBE_STARTS_WAITED).with(vec![], c.starts_waited as f64);
            let mut sd_failures = Family::of(&SD_REFRESH_FAILURES);
            for ((probe, mechanism), n) in &c.sd_failures {
                let labels = SD_REFRESH_FAILURES.labels([probe.clone(), mechanism.to_string()]);
                sd_failures = sd_failures.with(labels, *n as f64);
            }
            let mut sd_targets = Family::of(&SD_TARGETS);
            for (probe, (n, _)) in &c.sd_targets {
                sd_targets = sd_targets.with(SD_TARGETS.labels([probe.clone()]), *n as f64);
            }
            let mut sd_dropped = Family::of(&SD_DROPPED_TARGETS);
            for (probe, n) in &c.sd_dropped {
                sd_dropped = sd_dropped.with(SD_DROPPED_TARGETS.labels([probe.clone()]), *n as f64);
            }
            families.extend([sd_failures, sd_targets, sd_dropped]);
            families.extend([runs, seconds, lateness, waited, requests, rejections, http, reloads]);
            families.push(
                Family::of(&CONFIG_LAST_RELOAD_SUCCESSFUL)
                    .with(vec![], if c.last_reload_ok { 1.0 } else { 0.0 }),
            );
            families.push(
                Family::of(&CONFIG_LAST_RELOAD_SUCCESS_TIMESTAMP_SECONDS)
                    .with(vec![], c.last_reload_success),
            );
        });
        families.extend(super::process::collect());
        families
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::exposition::{encode, Format};

    #[test]
    fn runs_are_counted_per_probe_and_result() {
        let metrics = SelfMetrics::new();
        metrics.record_probe_run("web", true, Duration::from_millis(250));
        metrics.record_probe_run("web", false, Duration::from_millis(500));
        metrics.record_probe_run("web", true, Duration::from_millis(250));
        metrics.record_probe_run("db", true, Duration::from_secs(1));
        let text = encode(&metrics.collect(), Format::Text);
        for line in [
            "lookout_probe_runs_total{probe=\"db\",result=\"success\"} 1\n",
            "lookout_probe_runs_total{probe=\"web\",result=\"failure\"} 1\n\
             lookout_probe_runs_total{probe=\"web\",result=\"success\"} 2\n",
            "lookout_probe_run_seconds_total{probe=\"db\"} 1\n",
            "lookout_probe_run_seconds_total{probe=\"web\"} 1\n",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        assert!(!text.contains("probe=\"db\",result=\"failure\""), "{text}");
    }
}
