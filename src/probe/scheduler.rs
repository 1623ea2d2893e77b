//! Runs the probes listed in probes.yaml, each on its own interval, and keeps their last
//! results for `/metrics`, the status page and `--once`.
//!
//! Start times are spread over the interval by a hash of the probe's name (as Prometheus
//! spreads scrapes), a probe never overlaps itself, and its timeout never exceeds its interval.
//! One task keeps every probe's next start in a heap and spawns a run only when it is due, so an
//! idle probe costs a heap entry, not a task holding a whole probe future; at most
//! `--probe.max-concurrency` runs are in flight, and how late each starts is recorded.

use super::compact::CompactOutcome;
use super::history::{History, Run};
use super::{Outcome, PreparedModule};
use crate::metrics::exposition::{Family, Labels, Name};
use crate::metrics::self_metrics::SelfMetrics;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, SystemTime};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Runs in flight at once when `--probe.max-concurrency` is not given.
pub const DEFAULT_MAX_CONCURRENCY: usize = 2048;

/// The timeout of a scheduled run whose module sets none: Prometheus' default
/// `scrape_timeout`, the time the same module gets from blackbox_exporter behind a Prometheus
/// left at its defaults. A module without one must not hold a run slot for a whole interval
/// (an hour, for a certificate check) on a target that never answers.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Permits for scheduled runs in flight, shared by every configuration a reload brings.
static CONCURRENCY: OnceLock<Arc<Semaphore>> = OnceLock::new();

/// Sets how many scheduled runs may be in flight at once (`--probe.max-concurrency`); only the
/// first call, before any probe runs, counts.
pub fn limit_concurrency(runs: usize) {
    let _ = CONCURRENCY.set(Arc::new(Semaphore::new(runs.clamp(1, Semaphore::MAX_PERMITS))));
}

/// The permits of runs in flight (`--probe.max-concurrency`), for every runner of scheduled
/// probes: the scheduler, and `--once`.
pub fn concurrency() -> Arc<Semaphore> {
    CONCURRENCY.get_or_init(|| Arc::new(Semaphore::new(DEFAULT_MAX_CONCURRENCY))).clone()
}

/// One scheduled probe, ready to run.
pub struct Job {
    pub name: String,
    pub module: Arc<PreparedModule>,
    pub target: String,
    pub interval: Duration,
    /// While the last run failed, the next comes after this instead of `interval`.
    pub interval_when_failing: Option<Duration>,
    pub labels: JobLabels,
}

/// A probe's own labels, sorted by name. Shared: the discovered targets of one group mostly
/// have the same, and one copy serves them all.
pub type JobLabels = Arc<[(String, String)]>;

impl Job {
    /// The module's timeout ([`DEFAULT_TIMEOUT`] when it has none), never more than the
    /// interval. Not capped at `interval_when_failing`: a probe that answers slower than its
    /// quick re-checks must still be able to pass; the runs cannot overlap anyway (see
    /// [`Job::next_slot`]).
    pub fn timeout(&self) -> Duration {
        self.module.timeout.unwrap_or(DEFAULT_TIMEOUT).min(self.interval)
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

    /// The same labels as pairs of borrowed strings, for writing them out without copies.
    pub fn identity_pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        [("probe", self.name.as_str()), ("module", &self.module.name), ("target", &self.target)]
            .into_iter()
            .chain(self.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }

    /// This probe's phase within its interval, from a hash of its name and target.
    fn phase(&self) -> u64 {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.name.hash(&mut hasher);
        self.target.hash(&mut hasher);
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

    /// When to run next, after the run due at `slot` ended at `now`: `interval_when_failing`
    /// after a failed slot while one is set, else the next slot of the regular grid. Slots
    /// that passed while the run was in flight are skipped, so a probe never overlaps itself.
    fn next_slot(&self, slot: Instant, success: bool, now: Instant, wall: SystemTime) -> Instant {
        match self.interval_when_failing {
            Some(step) if !success => {
                let mut next = slot + step;
                while next <= now {
                    next += step;
                }
                next
            }
            _ => {
                let next = now + self.until_next_run(wall);
                // The grid slot this run was started for (the clocks may differ by a few ms).
                if next <= slot + Duration::from_millis(5) {
                    next + self.interval
                } else {
                    next
                }
            }
        }
    }
}

/// The last result of a scheduled probe.
pub struct StoredResult {
    pub job: Arc<Job>,
    pub outcome: CompactOutcome,
    pub finished_at: SystemTime,
}

impl StoredResult {
    /// The outcome's families with the job's identity labels put in front of every sample.
    pub fn families(&self) -> Vec<Family> {
        let identity = self.job.identity_labels();
        let mut families = self.outcome.expand().families;
        for family in &mut families {
            for sample in &mut family.samples {
                let mut labels = identity.clone();
                labels.append(&mut sample.labels);
                sample.labels = labels;
            }
        }
        families
    }
}

#[derive(Default)]
pub struct Results {
    /// By probe name and target.
    by_probe: RwLock<BTreeMap<(String, String), Arc<StoredResult>>>,
    /// The last runs of every probe, for the status page.
    history: RwLock<History>,
    generation: std::sync::atomic::AtomicU64,
}

impl Results {
    pub fn store(&self, job: &Arc<Job>, outcome: Outcome) {
        let finished_at = SystemTime::now();
        let run = Run::of(&outcome, finished_at);
        let stored =
            StoredResult { job: job.clone(), outcome: CompactOutcome::of(outcome), finished_at };
        self.history.write().expect("history lock").push(&job.name, &job.target, run);
        let key = (job.name.clone(), job.target.clone());
        self.by_probe.write().expect("results lock").insert(key, Arc::new(stored));
    }

    /// Starts a new generation: results of tasks from earlier ones are no longer taken.
    pub fn next_generation(&self) -> u64 {
        self.generation.fetch_add(1, std::sync::atomic::Ordering::AcqRel) + 1
    }

    fn store_if_current(&self, generation: u64, job: &Arc<Job>, outcome: Outcome) {
        if self.generation.load(std::sync::atomic::Ordering::Acquire) == generation {
            self.store(job, outcome);
        }
    }

    /// When the last run of `job` (the same definition) ended, if it failed.
    fn failed_at(&self, job: &Job) -> Option<SystemTime> {
        let key = (job.name.clone(), job.target.clone());
        let results = self.by_probe.read().expect("results lock");
        let stored = results.get(&key)?;
        (!stored.outcome.success && job_key(&stored.job) == job_key(job))
            .then_some(stored.finished_at)
    }

    pub fn all(&self) -> Vec<Arc<StoredResult>> {
        self.by_probe.read().expect("results lock").values().cloned().collect()
    }

    /// Reads the runs kept of every probe.
    pub fn history(&self) -> std::sync::RwLockReadGuard<'_, History> {
        self.history.read().expect("history lock")
    }

    /// Forgets results of probes that are gone or whose definition changed, and the runs of
    /// probes that are gone; keeps at most `history` runs of each. Probes named in `discovered`
    /// keep theirs: their discovery decides.
    pub fn retain_jobs(&self, jobs: &[&Job], discovered: &[&str], history: usize) {
        let keys: HashSet<String> = jobs.iter().map(|j| job_key(j)).collect();
        let pairs: HashSet<(&str, &str)> =
            jobs.iter().map(|j| (j.name.as_str(), j.target.as_str())).collect();
        self.by_probe.write().expect("results lock").retain(|(name, _), r| {
            keys.contains(&job_key(&r.job)) || discovered.contains(&name.as_str())
        });
        self.history.write().expect("history lock").retain(
            |name, target| pairs.contains(&(name, target)) || discovered.contains(&name),
            history,
        );
    }

    /// Drops the result and runs `job` stored, unless another job has replaced them since.
    fn forget(&self, job: &Arc<Job>) {
        let key = (job.name.clone(), job.target.clone());
        let mut results = self.by_probe.write().expect("results lock");
        if results.get(&key).is_some_and(|r| Arc::ptr_eq(&r.job, job)) {
            results.remove(&key);
            let mut history = self.history.write().expect("history lock");
            let capacity = history.capacity();
            history.retain(|name, target| (name, target) != (&job.name, &job.target), capacity);
        }
    }

    /// Keeps of the probe `name` only the results and runs of `jobs` (its discovered targets):
    /// a target that vanished leaves `/metrics` at the next scrape.
    pub fn retain_targets(&self, name: &str, jobs: &[Arc<Job>]) {
        let keys: HashSet<String> = jobs.iter().map(|j| job_key(j)).collect();
        let targets: HashSet<&str> = jobs.iter().map(|j| j.target.as_str()).collect();
        self.by_probe
            .write()
            .expect("results lock")
            .retain(|(n, _), r| n != name || keys.contains(&job_key(&r.job)));
        let mut history = self.history.write().expect("history lock");
        let capacity = history.capacity();
        history.retain(|n, target| n != name || targets.contains(target), capacity);
    }
}

fn job_key(job: &Job) -> String {
    format!(
        "{}\u{0}{}\u{0}{}\u{0}{:?}\u{0}{:?}",
        job.name, job.module.name, job.target, job.labels, job.interval_when_failing
    )
}

/// The task that starts probes when they are due; dropping it stops them.
pub struct Scheduler {
    task: JoinHandle<()>,
    commands: mpsc::UnboundedSender<Command>,
}

/// What the scheduling task is told while it runs.
enum Command {
    /// A run of `job` ended: its slot and serial, the slot it was due at, whether it passed.
    Ended { job: Arc<Job>, index: usize, serial: u64, slot: Instant, success: bool },
    /// The targets of a probe with discovery changed: these are all of them now.
    Targets { probe: String, jobs: Vec<Arc<Job>> },
}

/// What the scheduling task shares with the runs it spawns.
struct Shared {
    results: Arc<Results>,
    metrics: Arc<SelfMetrics>,
    generation: u64,
    /// Permits for runs in flight (`--probe.max-concurrency`), shared across reloads.
    limit: Arc<Semaphore>,
    commands: mpsc::UnboundedSender<Command>,
}

/// The jobs being scheduled: a slab whose slots are reused, each with a serial so a heap entry
/// or a run of a job that was replaced meanwhile is known as stale.
#[derive(Default)]
struct Jobs {
    slots: Vec<Option<(Arc<Job>, u64)>>,
    free: Vec<usize>,
    serial: u64,
    due: BinaryHeap<Reverse<(Instant, usize, u64)>>,
}

impl Jobs {
    /// Schedules `job`: at its next slot, or sooner when its last run (before a reload)
    /// failed and it has `interval_when_failing`, so a reload does not hold up the re-check.
    fn add(&mut self, job: Arc<Job>, now: Instant, wall: SystemTime, results: &Results) {
        self.serial += 1;
        let mut at = now + job.until_next_run(wall);
        if let (Some(step), Some(failed)) = (job.interval_when_failing, results.failed_at(&job)) {
            let recheck = (failed + step).duration_since(wall).unwrap_or(Duration::ZERO);
            at = at.min(now + recheck);
        }
        let index = match self.free.pop() {
            Some(index) => {
                self.slots[index] = Some((job, self.serial));
                index
            }
            None => {
                self.slots.push(Some((job, self.serial)));
                self.slots.len() - 1
            }
        };
        self.due.push(Reverse((at, index, self.serial)));
    }

    fn get(&self, index: usize, serial: u64) -> Option<&Arc<Job>> {
        self.slots.get(index)?.as_ref().filter(|(_, s)| *s == serial).map(|(job, _)| job)
    }

    /// Makes `jobs` the targets of `probe`: a target whose job is unchanged keeps its schedule.
    fn replace(&mut self, probe: &str, jobs: Vec<Arc<Job>>, results: &Results) {
        let (now, wall) = (Instant::now(), SystemTime::now());
        let mut kept: HashSet<String> = HashSet::new();
        let wanted: HashSet<String> = jobs.iter().map(|j| job_key(j)).collect();
        for index in 0..self.slots.len() {
            let Some((job, _)) = &self.slots[index] else { continue };
            if job.name != probe {
                continue;
            }
            let key = job_key(job);
            if wanted.contains(&key) {
                kept.insert(key);
            } else {
                self.slots[index] = None;
                self.free.push(index);
            }
        }
        results.retain_targets(probe, &jobs);
        for job in jobs {
            if !kept.contains(&job_key(&job)) {
                self.add(job, now, wall, results);
            }
        }
    }
}

impl Scheduler {
    pub fn start(
        jobs: Vec<Arc<Job>>,
        results: Arc<Results>,
        metrics: Arc<SelfMetrics>,
        generation: u64,
    ) -> Scheduler {
        let (commands, mut received) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            results,
            metrics,
            generation,
            limit: concurrency(),
            commands: commands.clone(),
        });
        let task = tokio::spawn(async move {
            // The runs in flight: dropped with this task (a reload, a stop), which aborts them,
            // so a run of an old configuration neither probes on nor holds a permit.
            let mut runs = tokio::task::JoinSet::new();
            // What each run in flight is for, so one that panics is put back on the schedule
            // (as a failed run) instead of leaving its job unscheduled.
            let mut in_flight: HashMap<tokio::task::Id, (Arc<Job>, usize, u64, Instant)> =
                HashMap::new();
            let mut scheduled = Jobs::default();
            let (now, wall) = (Instant::now(), SystemTime::now());
            for job in jobs {
                scheduled.add(job, now, wall, &shared.results);
            }
            loop {
                let next = scheduled.due.peek().map(|Reverse((at, _, _))| *at);
                tokio::select! {
                    () = tokio::time::sleep_until(next.unwrap_or_else(Instant::now)), if next.is_some() => {
                        let now = Instant::now();
                        while let Some(&Reverse((slot, index, serial))) = scheduled.due.peek() {
                            if slot > now {
                                break;
                            }
                            scheduled.due.pop();
                            if let Some(job) = scheduled.get(index, serial) {
                                let run = run_one(job.clone(), index, serial, slot, shared.clone());
                                let id = runs.spawn(run).id();
                                in_flight.insert(id, (job.clone(), index, serial, slot));
                            }
                        }
                    }
                    Some(joined) = runs.join_next_with_id(), if !runs.is_empty() => match joined {
                        Ok((id, ())) => {
                            in_flight.remove(&id);
                        }
                        Err(e) => {
                            if let Some((job, index, serial, slot)) = in_flight.remove(&e.id()) {
                                tracing::error!(probe = %job.name, target = %job.target, "probe run panicked: {e}");
                                let ended = Command::Ended { job, index, serial, slot, success: false };
                                let _ = shared.commands.send(ended);
                            }
                        }
                    },
                    Some(command) = received.recv() => match command {
                        Command::Ended { job, index, serial, slot, success } => {
                            if scheduled.get(index, serial).is_some() {
                                let next = job.next_slot(slot, success, Instant::now(), SystemTime::now());
                                scheduled.due.push(Reverse((next, index, serial)));
                            } else {
                                // Its target went while it ran: what it stored goes too.
                                shared.results.forget(&job);
                            }
                        }
                        Command::Targets { probe, jobs } => {
                            scheduled.replace(&probe, jobs, &shared.results);
                        }
                    },
                }
            }
        });
        Scheduler { task, commands }
    }

    /// A handle that sets the targets of probes with discovery while this scheduler runs.
    pub fn targets(&self) -> TargetSink {
        TargetSink(self.commands.clone())
    }
}

/// Gives a running scheduler the current targets of a probe with discovery.
#[derive(Clone)]
pub struct TargetSink(mpsc::UnboundedSender<Command>);

impl TargetSink {
    pub fn set(&self, probe: &str, jobs: Vec<Arc<Job>>) {
        let _ = self.0.send(Command::Targets { probe: probe.to_string(), jobs });
    }
}

/// One run of `job`, due at `slot`: waits for a permit when the limit is reached (counted),
/// records how late it started, stores the result and reports back for the next slot.
async fn run_one(job: Arc<Job>, index: usize, serial: u64, slot: Instant, shared: Arc<Shared>) {
    let permit = match shared.limit.clone().try_acquire_owned() {
        Ok(permit) => permit,
        Err(_) => {
            shared.metrics.record_probe_start_waited();
            match shared.limit.clone().acquire_owned().await {
                Ok(permit) => permit,
                Err(_) => return,
            }
        }
    };
    shared.metrics.record_probe_start_lateness(Instant::now().saturating_duration_since(slot));
    // The stored result keeps no log: none is built.
    let outcome = super::run_guarded(&job.module, &job.target, job.timeout(), None, false).await;
    drop(permit);
    shared.metrics.record_probe_run(&job.name, outcome.success, outcome.duration);
    if let Some(failure) = &outcome.failure {
        tracing::debug!(probe = %job.name, target = %job.target, "probe failed: {failure}");
    }
    let success = outcome.success;
    shared.results.store_if_current(shared.generation, &job, outcome);
    let _ = shared.commands.send(Command::Ended { job, index, serial, slot, success });
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(interval: u64, when_failing: Option<u64>) -> Job {
        Job {
            name: "p".into(),
            module: Arc::new(PreparedModule {
                name: "m".into(),
                timeout: None,
                prober: crate::probe::Prober::File(crate::probe::file::FileProbe),
                kind: "file".into(),
            }),
            target: String::new(),
            interval: Duration::from_secs(interval),
            interval_when_failing: when_failing.map(Duration::from_secs),
            labels: Arc::new([]),
        }
    }

    #[test]
    fn a_failing_probe_is_checked_sooner_until_it_passes() {
        let job = job(300, Some(30));
        assert_eq!(job.timeout(), DEFAULT_TIMEOUT, "a module without a timeout gets 10 s");
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let slot = Instant::now();
        let ended = slot + Duration::from_millis(20);
        // Failed: 30 s after the slot, not 300.
        assert_eq!(job.next_slot(slot, false, ended, wall), slot + Duration::from_secs(30));
        // A failed run that outlasted several short slots skips them instead of piling up.
        let late = slot + Duration::from_secs(65);
        assert_eq!(job.next_slot(slot, false, late, wall), slot + Duration::from_secs(90));
        // Passed: back on the 300 s grid.
        let next = job.next_slot(slot, true, ended, wall);
        assert_eq!(next, ended + job.until_next_run(wall));
        assert!(next <= ended + Duration::from_secs(300));
        // Without interval_when_failing a failure keeps the regular grid.
        let plain = self::job(300, None);
        assert_eq!(plain.next_slot(slot, false, ended, wall), ended + plain.until_next_run(wall));
    }

    #[test]
    fn a_result_stored_after_its_target_went_is_dropped_but_not_a_newer_one() {
        let results = Results::default();
        let outcome =
            || crate::probe::Report::new(std::time::Instant::now()).finish(Ok(()), Duration::ZERO);
        let (old, new) = (Arc::new(job(10, None)), Arc::new(job(10, None)));
        results.store(&old, outcome());
        results.forget(&old);
        assert!(results.all().is_empty());
        assert_eq!(results.history().runs("p", "").count(), 0);
        results.store(&new, outcome());
        results.forget(&old);
        assert_eq!(results.all().len(), 1, "the newer job's result stays");
    }

    #[test]
    fn a_run_finishing_on_its_own_slot_waits_a_whole_interval() {
        let job = job(10, None);
        let slot = Instant::now();
        let on_slot =
            SystemTime::UNIX_EPOCH + Duration::from_millis(1_800_000_000_000 + job.phase());
        assert_eq!(job.until_next_run(on_slot), Duration::ZERO);
        assert_eq!(job.next_slot(slot, true, slot, on_slot), slot + Duration::from_secs(10));
    }

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
                interval_when_failing: None,
                labels: Arc::new([]),
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
