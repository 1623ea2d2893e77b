//! Runs the probes listed in probes.yaml, each on its own interval, and keeps their last
//! results for `/metrics`, the status page and `--once`.
//!
//! Start times are spread over the interval by a hash of the probe's name (as Prometheus
//! spreads scrapes), a probe never overlaps itself, and its timeout never exceeds its interval.

use super::history::{History, Run};
use super::{Outcome, PreparedModule};
use crate::metrics::exposition::{Family, Labels, Name};
use crate::metrics::self_metrics::SelfMetrics;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

/// One scheduled probe, ready to run.
pub struct Job {
    pub name: String,
    pub module: Arc<PreparedModule>,
    pub target: String,
    pub interval: Duration,
    pub labels: BTreeMap<String, String>,
}

impl Job {
    /// The module's timeout, or the interval when it has none; never more than the interval.
    pub fn timeout(&self) -> Duration {
        self.module.timeout.map_or(self.interval, |t| t.min(self.interval))
    }

    /// `probe`, `module`, `target`, then the probe's own labels, as put on every series.
    pub fn identity_labels(&self) -> Labels {
        let mut labels: Labels = vec![
            (Name::Borrowed("probe"), self.name.clone()),
            (Name::Borrowed("module"), self.module.name.clone()),
            (Name::Borrowed("target"), self.target.clone()),
        ];
        labels.extend(self.labels.iter().map(|(k, v)| (Name::Owned(k.clone()), v.clone())));
        labels
    }

    /// This probe's phase within its interval, from a hash of its name.
    fn phase(&self) -> u64 {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.name.hash(&mut hasher);
        hasher.finish() % self.interval_ms()
    }

    fn interval_ms(&self) -> u64 {
        self.interval.as_millis().max(1) as u64
    }

    /// How long until the probe's next run: runs fall at the same point of each interval on the
    /// wall clock (as Prometheus places scrapes), so a reload does not push them back.
    fn until_next_run(&self, now: SystemTime) -> Duration {
        let now_ms = now.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let interval = self.interval_ms();
        Duration::from_millis((self.phase() + interval - now_ms % interval) % interval)
    }
}

/// The last result of a scheduled probe.
pub struct StoredResult {
    pub job_key: String,
    pub name: String,
    pub module: String,
    pub target: String,
    pub outcome: Outcome,
    pub finished_at: SystemTime,
    /// The outcome's families with the job's identity labels put in front of every sample.
    pub families: Vec<Family>,
}

#[derive(Default)]
pub struct Results {
    by_probe: RwLock<BTreeMap<String, Arc<StoredResult>>>,
    /// The last runs of every probe, for the status page.
    history: RwLock<History>,
    generation: std::sync::atomic::AtomicU64,
}

impl Results {
    pub fn store(&self, job: &Job, outcome: Outcome) {
        let identity = job.identity_labels();
        let families = outcome
            .families
            .iter()
            .map(|family| {
                let mut family = family.clone();
                for sample in &mut family.samples {
                    let mut labels = identity.clone();
                    labels.append(&mut sample.labels);
                    sample.labels = labels;
                }
                family
            })
            .collect();
        let finished_at = SystemTime::now();
        let run = Run::of(&outcome, finished_at);
        let stored = StoredResult {
            job_key: job_key(job),
            name: job.name.clone(),
            module: job.module.name.clone(),
            target: job.target.clone(),
            outcome,
            finished_at,
            families,
        };
        self.history.write().expect("history lock").push(&job.name, run);
        self.by_probe.write().expect("results lock").insert(job.name.clone(), Arc::new(stored));
    }

    /// Starts a new generation: results of tasks from earlier ones are no longer taken.
    pub fn next_generation(&self) -> u64 {
        self.generation.fetch_add(1, std::sync::atomic::Ordering::AcqRel) + 1
    }

    fn store_if_current(&self, generation: u64, job: &Job, outcome: Outcome) {
        if self.generation.load(std::sync::atomic::Ordering::Acquire) == generation {
            self.store(job, outcome);
        }
    }

    pub fn all(&self) -> Vec<Arc<StoredResult>> {
        self.by_probe.read().expect("results lock").values().cloned().collect()
    }

    /// Reads the runs kept of every probe.
    pub fn history(&self) -> std::sync::RwLockReadGuard<'_, History> {
        self.history.read().expect("history lock")
    }

    /// Forgets results of probes that are gone or whose definition changed, and the runs of
    /// probes that are gone; keeps at most `history` runs of each.
    pub fn retain_jobs(&self, jobs: &[&Job], history: usize) {
        let keys: std::collections::HashSet<String> = jobs.iter().map(|j| job_key(j)).collect();
        self.by_probe.write().expect("results lock").retain(|_, r| keys.contains(&r.job_key));
        let names: Vec<&str> = jobs.iter().map(|j| j.name.as_str()).collect();
        self.history.write().expect("history lock").retain(&names, history);
    }
}

fn job_key(job: &Job) -> String {
    format!("{}\u{0}{}\u{0}{}\u{0}{:?}", job.name, job.module.name, job.target, job.labels)
}

/// The running probe tasks; dropping it stops them.
pub struct Scheduler {
    tasks: Vec<JoinHandle<()>>,
}

impl Scheduler {
    pub fn start(
        jobs: Vec<Arc<Job>>,
        results: Arc<Results>,
        metrics: Arc<SelfMetrics>,
        generation: u64,
    ) -> Scheduler {
        let tasks = jobs
            .into_iter()
            .map(|job| {
                let results = results.clone();
                let metrics = metrics.clone();
                tokio::spawn(async move {
                    let mut ticker = tokio::time::interval_at(Instant::now() + job.until_next_run(SystemTime::now()), job.interval);
                    // A run that overruns delays the next one instead of stacking them.
                    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
                    loop {
                        ticker.tick().await;
                        let outcome = super::run(&job.module, &job.target, job.timeout()).await;
                        metrics.record_probe_run(&job.name, outcome.success, outcome.duration);
                        if let Some(failure) = &outcome.failure {
                            tracing::debug!(probe = %job.name, target = %job.target, "probe failed: {failure}");
                        }
                        results.store_if_current(generation, &job, outcome);
                    }
                })
            })
            .collect();
        Scheduler { tasks }
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_offsets_spread_within_the_interval() {
        let module = Arc::new(PreparedModule {
            name: "m".into(),
            timeout: Some(Duration::from_secs(60)),
            prober: crate::probe::Prober::File(crate::probe::file::FileProbe),
            kind: "file".into(),
        });
        let now = SystemTime::now();
        let offsets: Vec<Duration> = (0..50)
            .map(|i| Job {
                name: format!("probe-{i}"),
                module: module.clone(),
                target: String::new(),
                interval: Duration::from_secs(10),
                labels: BTreeMap::new(),
            })
            .map(|job| {
                assert_eq!(
                    job.timeout(),
                    Duration::from_secs(10),
                    "timeout is capped at the interval"
                );
                // The phase holds on the wall clock: a second later, the wait is a second shorter.
                let wait = job.until_next_run(now);
                let later = job.until_next_run(now + Duration::from_millis(1000));
                assert!(
                    wait < Duration::from_secs(1) || later + Duration::from_millis(1000) == wait,
                    "{wait:?} {later:?}"
                );
                wait
            })
            .collect();
        assert!(offsets.iter().all(|o| *o < Duration::from_secs(10)));
        let early = offsets.iter().filter(|o| **o < Duration::from_secs(5)).count();
        assert!((10..=40).contains(&early), "offsets are spread, {early} of 50 in the first half");
    }
}
