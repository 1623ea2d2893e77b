//! The sources being followed: one thread per source reads its files and counts its records,
//! one timed writer saves the positions of all of them.
//!
//! A scrape only reads each source's [`SourceState`] under its lock; that lock is taken per
//! record by the source's thread, never while it reads a file or while positions are written,
//! so `/metrics` does not wait for disk I/O. A reload swaps in new plans and carries each
//! source's state over (see [`SourceState::carry_over`]).

use super::plan::SourcePlan;
use super::positions::Positions;
use super::state::{SourceState, SourceSummary};
use crate::metrics::exposition::Family;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the positions writer saves what the sources have processed.
const SAVE_INTERVAL: Duration = Duration::from_millis(250);
/// How often a sleeping thread looks whether it should stop.
const STOP_CHECK: Duration = Duration::from_millis(50);

/// A source with what it has counted.
pub struct LiveSource {
    pub plan: Arc<SourcePlan>,
    pub state: Mutex<SourceState>,
}

impl LiveSource {
    fn state(&self) -> std::sync::MutexGuard<'_, SourceState> {
        self.state.lock().expect("source state lock")
    }
}

/// Threads of the sources of one configuration, stopped together.
#[derive(Default)]
struct Followers {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Followers {
    fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

struct PositionsWriter {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

pub struct LogRuntime {
    sources: RwLock<Vec<Arc<LiveSource>>>,
    followers: Mutex<Followers>,
    positions: Option<Arc<Positions>>,
    writer: Mutex<Option<PositionsWriter>>,
    save_errors: Arc<AtomicU64>,
}

impl LogRuntime {
    /// A runtime with no source yet; with `positions`, its writer starts now.
    pub fn new(positions: Option<Arc<Positions>>) -> LogRuntime {
        let save_errors = Arc::new(AtomicU64::new(0));
        let writer = positions.clone().map(|positions| {
            let stop = Arc::new(AtomicBool::new(false));
            let (flag, errors) = (stop.clone(), save_errors.clone());
            let thread = std::thread::Builder::new()
                .name("positions".into())
                .spawn(move || {
                    while sleep_unless_stopped(SAVE_INTERVAL, &flag) {
                        save(&positions, &errors);
                    }
                })
                .expect("spawning the positions writer");
            PositionsWriter { stop, thread }
        });
        LogRuntime {
            sources: RwLock::new(Vec::new()),
            followers: Mutex::new(Followers::default()),
            positions,
            writer: Mutex::new(writer),
            save_errors,
        }
    }

    /// Follows the sources of `plans` from now on, in place of those followed so far. A source
    /// of the same name keeps what it counted (rules that changed start again).
    pub fn apply(&self, plans: &[Arc<SourcePlan>]) {
        let mut followers = self.followers.lock().expect("followers lock");
        // The old threads finish their poll first: their states take no record after this.
        followers.stop();
        let next: Vec<Arc<LiveSource>> = {
            let mut sources = self.sources.write().expect("sources lock");
            let mut old: Vec<Arc<LiveSource>> = std::mem::take(&mut *sources);
            let next: Vec<Arc<LiveSource>> = plans
                .iter()
                .map(|plan| {
                    let state = match old.iter().position(|s| s.plan.name == plan.name) {
                        Some(i) => {
                            let previous = old.swap_remove(i);
                            let counted = std::mem::take(&mut *previous.state());
                            SourceState::carry_over(plan, &previous.plan, counted)
                        }
                        None => SourceState::new(plan),
                    };
                    Arc::new(LiveSource { plan: plan.clone(), state: Mutex::new(state) })
                })
                .collect();
            sources.clone_from(&next);
            next
        };
        let stop = Arc::new(AtomicBool::new(false));
        let threads = next
            .into_iter()
            .map(|source| {
                let (stop, positions) = (stop.clone(), self.positions.clone());
                std::thread::Builder::new()
                    .name(format!("tail-{}", source.plan.name))
                    .spawn(move || follow(&source, &stop, positions))
                    .expect("spawning a tailer thread")
            })
            .collect();
        *followers = Followers { stop, threads };
    }

    /// Stops following and saves where each source stopped.
    pub fn stop(&self) {
        self.followers.lock().expect("followers lock").stop();
        if let Some(writer) = self.writer.lock().expect("writer lock").take() {
            writer.stop.store(true, Ordering::Release);
            let _ = writer.thread.join();
        }
        if let Some(positions) = &self.positions {
            save(positions, &self.save_errors);
        }
    }

    /// The sources, held for the whole read so a reload cannot move a state away mid-scrape.
    fn sources(&self) -> std::sync::RwLockReadGuard<'_, Vec<Arc<LiveSource>>> {
        self.sources.read().expect("sources lock")
    }

    /// The rules' families and the self-metrics of every source.
    pub fn families(&self) -> Vec<Family> {
        let mut families = Vec::new();
        for source in self.sources().iter() {
            let state = source.state();
            families.extend(state.families(&source.plan));
            families.extend(state.self_families(&source.plan));
        }
        if self.positions.is_some() {
            families.push(
                Family::counter(
                    "lookout_log_position_save_errors",
                    "Failures to write the positions file",
                )
                .with(Vec::new(), self.save_errors.load(Ordering::Relaxed) as f64),
            );
        }
        families
    }

    /// A summary of each source for the status page.
    pub fn summaries(&self) -> Vec<SourceSummary> {
        self.sources().iter().map(|s| s.state().summary(&s.plan)).collect()
    }

    /// Query hash → SQL over every source that keeps an index, sorted.
    pub fn queries(&self) -> Vec<(String, String, String)> {
        let mut all = Vec::new();
        for source in self.sources().iter() {
            let state = source.state();
            all.extend(
                state
                    .queries
                    .entries
                    .iter()
                    .map(|(h, s)| (source.plan.name.clone(), h.clone(), s.clone())),
            );
        }
        all.sort();
        all
    }
}

fn save(positions: &Positions, errors: &AtomicU64) {
    if let Err(e) = positions.save() {
        errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!("saving positions: {e}");
    }
}

/// Sleeps for `period` in short steps; false once `stop` is set.
fn sleep_unless_stopped(period: Duration, stop: &AtomicBool) -> bool {
    let until = Instant::now() + period;
    loop {
        if stop.load(Ordering::Acquire) {
            return false;
        }
        let now = Instant::now();
        if now >= until {
            return true;
        }
        std::thread::sleep((until - now).min(STOP_CHECK));
    }
}

fn follow(source: &LiveSource, stop: &AtomicBool, positions: Option<Arc<Positions>>) {
    let plan = &source.plan;
    let mut tailer = plan.tailer(positions);
    // A multiline record is complete once its file has been quiet for a while.
    let idle_flush = (plan.poll_interval * 4).max(Duration::from_millis(500));
    loop {
        let now = Instant::now();
        // The state is locked per record: never while the tailer reads.
        tailer.poll(idle_flush, &mut |record| source.state().process(plan, record, now));
        let (lag, files) = (tailer.lag_bytes(), tailer.file_count());
        let mut state = source.state();
        state.add_tail(std::mem::take(&mut tailer.stats), lag, files, now);
        state.expire(plan, now);
        drop(state);
        if !sleep_unless_stopped(plan.poll_interval, stop) {
            return;
        }
    }
}
