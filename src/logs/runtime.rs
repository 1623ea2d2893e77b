//! The sources being followed: one thread per source reads its files and counts its records,
//! one writer saves the positions of all of them.
//!
//! What a scrape shows is published, not live: after each poll a source stages a snapshot of
//! its families together with the positions of the records they count, and the writer
//! publishes the snapshots once those positions are on disk. So `/metrics` never waits for a
//! file read or a save, and a count is never shown before the position that covers it is
//! saved: after `kill -9`, a restart reads again only records no scrape has seen counted.
//!
//! The live [`SourceState`] is locked by its thread while it counts the records of one chunk
//! it read, and let go before it reads again ([`Records::before_io`]); the status page and
//! `/queries` read it under that lock. A reload swaps in new plans and carries each source's
//! state over (see [`SourceState::carry_over`]).

use super::plan::SourcePlan;
use super::positions::Positions;
use super::state::{SourceState, SourceSummary};
use super::tailer::Records;
use crate::metrics::exposition::Family;
use crate::metrics::families::{LOG_POSITIONS_LOAD_ERRORS, LOG_POSITION_SAVE_ERRORS};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the positions writer saves when no source asks it to sooner.
const SAVE_INTERVAL: Duration = Duration::from_millis(250);
/// How often a sleeping thread looks whether it should stop.
const STOP_CHECK: Duration = Duration::from_millis(50);

/// A source with what it has counted.
pub struct LiveSource {
    pub plan: Arc<SourcePlan>,
    state: Mutex<SourceState>,
    /// Families staged after a poll, waiting for the positions recorded with them to be saved.
    staged: Mutex<Option<Vec<Family>>>,
    /// What scrapes show.
    published: Mutex<Arc<Vec<Family>>>,
}

impl LiveSource {
    fn new(plan: Arc<SourcePlan>, state: SourceState, published: Arc<Vec<Family>>) -> LiveSource {
        let staged = snapshot(&plan, &state);
        LiveSource {
            plan,
            state: Mutex::new(state),
            staged: Mutex::new(Some(staged)),
            published: Mutex::new(published),
        }
    }

    fn state(&self) -> MutexGuard<'_, SourceState> {
        self.state.lock().expect("source state lock")
    }

    fn staged(&self) -> MutexGuard<'_, Option<Vec<Family>>> {
        self.staged.lock().expect("staged families lock")
    }

    fn publish(&self, families: Vec<Family>) {
        *self.published.lock().expect("published families lock") = Arc::new(families);
    }
}

fn snapshot(plan: &SourcePlan, state: &SourceState) -> Vec<Family> {
    let mut families = state.families(plan);
    families.extend(state.self_families(plan));
    families
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

/// What the source threads and the positions writer share.
struct Shared {
    sources: RwLock<Vec<Arc<LiveSource>>>,
    positions: Option<Arc<Positions>>,
    save_errors: AtomicU64,
    /// Set by a source after a poll that staged something; the writer saves then.
    save_wanted: Mutex<bool>,
    wake_writer: Condvar,
    stop_writer: AtomicBool,
}

impl Shared {
    fn want_save(&self) {
        *self.save_wanted.lock().expect("save request lock") = true;
        self.wake_writer.notify_one();
    }

    /// Waits for a request to save or the save interval; false once the writer should stop.
    fn wait_for_save(&self) -> bool {
        let wanted = self.save_wanted.lock().expect("save request lock");
        let (mut wanted, _) = self
            .wake_writer
            .wait_timeout_while(wanted, SAVE_INTERVAL, |wanted| {
                !*wanted && !self.stop_writer.load(Ordering::Acquire)
            })
            .expect("save request lock");
        *wanted = false;
        !self.stop_writer.load(Ordering::Acquire)
    }

    /// Saves the positions and publishes the families staged with them. A save that fails
    /// publishes all the same: counts shown late by a broken disk help no one.
    fn save_and_publish(&self) {
        let sources = self.sources.read().expect("sources lock").clone();
        let (staged, table) = {
            // Sources stage families and record positions under their staging lock, so what is
            // taken here is consistent.
            let mut guards: Vec<_> = sources.iter().map(|s| s.staged()).collect();
            let staged: Vec<Option<Vec<Family>>> = guards.iter_mut().map(|g| g.take()).collect();
            (staged, self.positions.as_ref().and_then(|p| p.snapshot()))
        };
        if let (Some(positions), Some(table)) = (&self.positions, table) {
            if let Err(e) = positions.write(table) {
                self.save_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("saving positions: {e}");
            }
        }
        for (source, families) in sources.iter().zip(staged) {
            if let Some(families) = families {
                source.publish(families);
            }
        }
    }
}

pub struct LogRuntime {
    shared: Arc<Shared>,
    followers: Mutex<Followers>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl LogRuntime {
    /// A runtime with no source yet; its positions writer starts now.
    pub fn new(positions: Option<Arc<Positions>>) -> LogRuntime {
        let shared = Arc::new(Shared {
            sources: RwLock::new(Vec::new()),
            positions,
            save_errors: AtomicU64::new(0),
            save_wanted: Mutex::new(false),
            wake_writer: Condvar::new(),
            stop_writer: AtomicBool::new(false),
        });
        let writer = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("positions".into())
                .spawn(move || {
                    while shared.wait_for_save() {
                        shared.save_and_publish();
                    }
                })
                .expect("spawning the positions writer")
        };
        LogRuntime {
            shared,
            followers: Mutex::new(Followers::default()),
            writer: Mutex::new(Some(writer)),
        }
    }

    /// Follows the sources of `plans` from now on, in place of those followed so far. A source
    /// of the same name keeps what it counted (rules that changed start again).
    pub fn apply(&self, plans: &[Arc<SourcePlan>]) {
        let mut followers = self.followers.lock().expect("followers lock");
        // The old threads finish their poll first: their states take no record after this.
        followers.stop();
        let next: Vec<Arc<LiveSource>> = {
            let mut sources = self.shared.sources.write().expect("sources lock");
            let mut old: Vec<Arc<LiveSource>> = std::mem::take(&mut *sources);
            let next: Vec<Arc<LiveSource>> = plans
                .iter()
                .map(|plan| {
                    let source = match old.iter().position(|s| s.plan.name == plan.name) {
                        Some(i) => {
                            let previous = old.swap_remove(i);
                            let counted = std::mem::take(&mut *previous.state());
                            let state = SourceState::carry_over(plan, &previous.plan, counted);
                            let shown = previous.published.lock().expect("published lock").clone();
                            LiveSource::new(plan.clone(), state, shown)
                        }
                        None => {
                            // Nothing counted yet: the zeros can be shown at once.
                            let state = SourceState::new(plan);
                            let zeros = Arc::new(snapshot(plan, &state));
                            LiveSource::new(plan.clone(), state, zeros)
                        }
                    };
                    Arc::new(source)
                })
                .collect();
            sources.clone_from(&next);
            next
        };
        self.shared.want_save();
        let stop = Arc::new(AtomicBool::new(false));
        let threads = next
            .into_iter()
            .map(|source| {
                let (stop, shared) = (stop.clone(), self.shared.clone());
                std::thread::Builder::new()
                    .name(format!("tail-{}", source.plan.name))
                    .spawn(move || follow(&source, &stop, &shared))
                    .expect("spawning a tailer thread")
            })
            .collect();
        *followers = Followers { stop, threads };
    }

    /// Stops following, saves where each source stopped, and publishes the last counts.
    pub fn stop(&self) {
        self.followers.lock().expect("followers lock").stop();
        if let Some(writer) = self.writer.lock().expect("writer lock").take() {
            self.shared.stop_writer.store(true, Ordering::Release);
            self.shared.wake_writer.notify_one();
            let _ = writer.join();
        }
        self.shared.save_and_publish();
    }

    /// The rules' families and the self-metrics of every source, as last published.
    pub fn families(&self) -> Vec<Family> {
        let sources = self.shared.sources.read().expect("sources lock").clone();
        let mut families = Vec::new();
        for source in &sources {
            let published = source.published.lock().expect("published lock").clone();
            families.extend(published.iter().cloned());
        }
        if let Some(positions) = &self.shared.positions {
            let errors = self.shared.save_errors.load(Ordering::Relaxed) as f64;
            families.push(Family::of(&LOG_POSITION_SAVE_ERRORS).with(Vec::new(), errors));
            let load_errors = if positions.load_problem().is_some() { 1.0 } else { 0.0 };
            families.push(Family::of(&LOG_POSITIONS_LOAD_ERRORS).with(Vec::new(), load_errors));
        }
        families
    }

    /// A summary of each source for the status page, from its live state.
    pub fn summaries(&self) -> Vec<SourceSummary> {
        let sources = self.shared.sources.read().expect("sources lock").clone();
        sources.iter().map(|s| s.state().summary(&s.plan)).collect()
    }

    /// One page of the query indexes: entries ordered by source then hash, those after
    /// `after` (a page's `next`), at most `limit`; or the entries of one `hash`. Only the page
    /// is copied, so an answer's size is bounded by `limit`, not by the index.
    pub fn queries(&self, hash: Option<&str>, after: Option<&str>, limit: usize) -> QueryPage {
        let limit = limit.max(1);
        let after = after.map(|a| a.split_once('\n').unwrap_or((a, "")));
        let sources = self.shared.sources.read().expect("sources lock").clone();
        let mut sources: Vec<&Arc<LiveSource>> = sources.iter().collect();
        sources.sort_by(|a, b| a.plan.name.cmp(&b.plan.name));
        let mut items = Vec::new();
        let mut more = false;
        for source in sources {
            let name = source.plan.name.as_str();
            if after.is_some_and(|(s, _)| name < s) {
                continue;
            }
            let state = source.state();
            let entries = &state.queries.entries;
            let room = limit - items.len();
            // The smallest keys past the cursor: a max-heap of one more than there is room for,
            // to know whether more follow.
            let mut page = std::collections::BinaryHeap::with_capacity(room + 2);
            for key in entries.keys() {
                let past = match after {
                    Some((s, h)) if s == name => key.as_str() > h,
                    _ => true,
                };
                if past && hash.is_none_or(|h| h == key) {
                    page.push(key.as_str());
                    if page.len() > room + 1 {
                        page.pop();
                    }
                }
            }
            let mut keys = page.into_sorted_vec();
            if keys.len() > room {
                keys.truncate(room);
                more = true;
            }
            items.extend(
                keys.into_iter().map(|k| (name.to_string(), k.to_string(), entries[k].clone())),
            );
            if items.len() == limit {
                // Full: a next page is offered, which may turn out empty.
                more = true;
                break;
            }
        }
        let next = more.then(|| items.last().map(|(s, h, _)| format!("{s}\n{h}"))).flatten();
        QueryPage { items, next }
    }
}

/// A page of `/queries`: (source, hash, SQL) entries, and where the next page starts.
pub struct QueryPage {
    pub items: Vec<(String, String, String)>,
    pub next: Option<String>,
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

fn follow(source: &LiveSource, stop: &AtomicBool, shared: &Shared) {
    let plan = &source.plan;
    let mut tailer = plan.tailer(shared.positions.clone());
    // A multiline record is complete once its file has been quiet for a while.
    let idle_flush = (plan.poll_interval * 4).max(Duration::from_millis(500));
    loop {
        let now = Instant::now();
        tailer.poll(idle_flush, &mut Counting { source, now, held: None });
        let progress = tailer.take_progress();
        {
            let mut staged = source.staged();
            let mut state = source.state();
            state.add_tail(progress, now);
            state.expire(plan, now);
            tailer.record_positions();
            *staged = Some(snapshot(plan, &state));
        }
        shared.want_save();
        if !sleep_unless_stopped(plan.poll_interval, stop) {
            return;
        }
    }
}

/// Counts records into a source's state, holding its lock from the first record of a chunk
/// until the tailer is about to do I/O.
struct Counting<'a> {
    source: &'a LiveSource,
    now: Instant,
    held: Option<MutexGuard<'a, SourceState>>,
}

impl Records for Counting<'_> {
    fn record(&mut self, record: &str) {
        let source = self.source;
        self.held.get_or_insert_with(|| source.state()).process(&source.plan, record, self.now);
    }

    fn before_io(&mut self) {
        self.held = None;
    }
}
