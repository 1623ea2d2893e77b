//! The sources being followed: one thread per source reads its files and counts its records,
//! one writer saves the positions of all of them.
//!
//! What a scrape shows is published, not live: after each poll a source stages a snapshot of
//! its counts together with the positions of the records they count, and the writer
//! publishes the snapshots once those positions are on disk; a scrape makes families of them.
//! So `/metrics` never waits for a file read or a save, and a count is never shown before the
//! position that covers it is saved: after `kill -9`, a restart reads again only records no
//! scrape has seen counted.
//!
//! The live [`SourceState`] is locked by its thread while it counts the records of one chunk
//! it read, and let go before it reads again ([`Records::before_io`]); the status page and
//! `/queries` read it under that lock. A reload swaps in new plans and carries each source's
//! state over (see [`SourceState::carry_over`]).

use super::container::Meta;
use super::plan::SourcePlan;
use super::positions::Positions;
use super::state::{Snapshot, SourceState, SourceSummary};
use super::tailer::{Look, Records, Tailer};
use super::wake::{Waker, Woken};
use crate::metrics::exposition::Family;
use crate::metrics::families::{LOG_POSITIONS_LOAD_ERRORS, LOG_POSITION_SAVE_ERRORS};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the positions writer saves when no source asks it to sooner.
const SAVE_INTERVAL: Duration = Duration::from_millis(250);
/// The least time between two polls of a source woken by writes.
const MIN_POLL_GAP: Duration = Duration::from_millis(10);
/// The most: what a write waits at worst, besides the save that publishes it.
const MAX_POLL_GAP: Duration = Duration::from_millis(100);
/// A poll woken by writes waits this many times as long as the last one took.
const BUSY_SHARE_INVERSE: u32 = 8;
/// How often a sleeping thread looks whether it should stop.
const STOP_CHECK: Duration = Duration::from_millis(50);

/// A source with what it has counted.
pub struct LiveSource {
    pub plan: Arc<SourcePlan>,
    state: Mutex<SourceState>,
    /// Counts staged after a poll, waiting for the positions recorded with them to be saved.
    staged: Mutex<Option<Snapshot>>,
    /// What scrapes show.
    published: Mutex<Arc<Published>>,
}

/// A snapshot a scrape shows, with the plan it was taken under (a reload shows the counts of
/// the old plan until the new one's are saved).
struct Published {
    plan: Arc<SourcePlan>,
    snapshot: Snapshot,
}

impl LiveSource {
    fn new(plan: Arc<SourcePlan>, state: SourceState, published: Arc<Published>) -> LiveSource {
        let staged = state.snapshot();
        LiveSource {
            plan,
            state: Mutex::new(state),
            staged: Mutex::new(Some(staged)),
            published: Mutex::new(published),
        }
    }

    fn state(&self) -> MutexGuard<'_, SourceState> {
        lock(&self.state)
    }

    fn staged(&self) -> MutexGuard<'_, Option<Snapshot>> {
        lock(&self.staged)
    }

    fn publish(&self, snapshot: Snapshot) {
        *lock(&self.published) = Arc::new(Published { plan: self.plan.clone(), snapshot });
    }
}

/// Locks a mutex even if a thread panicked while holding it: counts and snapshots stay usable,
/// and one broken source must not take `/metrics` down with it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn read<T>(rw: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    rw.read().unwrap_or_else(PoisonError::into_inner)
}

/// Threads of the sources of one configuration, stopped together.
#[derive(Default)]
struct Followers {
    stop: Arc<AtomicBool>,
    /// Each source's thread, which hands back its tailer when it stops.
    threads: Vec<(String, JoinHandle<Tailer>)>,
}

impl Followers {
    /// Stops the threads; the tailers of those that stopped cleanly, by source.
    fn stop(&mut self) -> HashMap<String, Tailer> {
        self.stop.store(true, Ordering::Release);
        let mut tailers = HashMap::new();
        for (name, thread) in self.threads.drain(..) {
            match thread.join() {
                Ok(tailer) => {
                    tailers.insert(name, tailer);
                }
                Err(_) => tracing::error!(source = %name, "the source's thread panicked"),
            }
        }
        tailers
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
        *lock(&self.save_wanted) = true;
        self.wake_writer.notify_one();
    }

    /// Waits for a request to save or the save interval; false once the writer should stop.
    fn wait_for_save(&self) -> bool {
        let wanted = lock(&self.save_wanted);
        let (mut wanted, _) = self
            .wake_writer
            .wait_timeout_while(wanted, SAVE_INTERVAL, |wanted| {
                !*wanted && !self.stop_writer.load(Ordering::Acquire)
            })
            .unwrap_or_else(PoisonError::into_inner);
        *wanted = false;
        !self.stop_writer.load(Ordering::Acquire)
    }

    /// Saves the positions (everything, at the last save) and publishes the counts staged
    /// with them. A save that fails publishes all the same: counts frozen by a broken disk help
    /// no one; such a failure is counted, and a kill -9 while it lasts may count records again.
    fn save_and_publish(&self, last: bool) {
        let sources = read(&self.sources).clone();
        let (staged, table) = {
            // Sources stage counts and record positions under their staging lock, so what is
            // taken here is consistent.
            let mut guards: Vec<_> = sources.iter().map(|s| s.staged()).collect();
            let staged: Vec<Option<Snapshot>> = guards.iter_mut().map(|g| g.take()).collect();
            (staged, self.positions.as_ref().and_then(|p| p.snapshot(last)))
        };
        if let Some(positions) = &self.positions {
            let saved = match table {
                Some(table) => positions.write(table),
                // Nothing new: the last save is made durable once it is due.
                None => positions.settle(last),
            };
            if let Err(e) = saved {
                self.save_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("saving positions: {e}");
            }
        }
        for (source, snapshot) in sources.iter().zip(staged) {
            if let Some(snapshot) = snapshot {
                source.publish(snapshot);
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
                        shared.save_and_publish(false);
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
        let mut followers = lock(&self.followers);
        // The old threads finish their poll first: their states take no record after this.
        let mut tailers = followers.stop();
        if let Some(positions) = &self.shared.positions {
            positions.keep_sources(&plans.iter().map(|p| p.name.as_str()).collect());
        }
        let mut next_tailers = HashMap::new();
        let next: Vec<Arc<LiveSource>> = {
            let mut sources = self.shared.sources.write().unwrap_or_else(PoisonError::into_inner);
            let mut old: Vec<Arc<LiveSource>> = std::mem::take(&mut *sources);
            let next: Vec<Arc<LiveSource>> = plans
                .iter()
                .map(|plan| {
                    let source = match old.iter().position(|s| s.plan.name == plan.name) {
                        Some(i) => {
                            let previous = old.swap_remove(i);
                            // A source that reads as before goes on with its tailer, and so
                            // with the files it drains after rotation or follows out of sight.
                            if let Some(tailer) = tailers.remove(&plan.name) {
                                if previous.plan.reads_like(plan) {
                                    next_tailers.insert(plan.name.clone(), tailer);
                                }
                            }
                            let counted = std::mem::take(&mut *previous.state());
                            let state = SourceState::carry_over(plan, &previous.plan, counted);
                            let shown = lock(&previous.published).clone();
                            LiveSource::new(plan.clone(), state, shown)
                        }
                        None => {
                            // Nothing counted yet: the zeros can be shown at once.
                            let state = SourceState::new(plan);
                            let snapshot = state.snapshot();
                            let zeros = Arc::new(Published { plan: plan.clone(), snapshot });
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
                let name = source.plan.name.clone();
                let tailer = next_tailers
                    .remove(&name)
                    .unwrap_or_else(|| source.plan.tailer(shared.positions.clone()));
                let thread = std::thread::Builder::new()
                    .name(format!("tail-{name}"))
                    .spawn(move || follow(&source, tailer, &stop, &shared))
                    .expect("spawning a tailer thread");
                (name, thread)
            })
            .collect();
        *followers = Followers { stop, threads };
    }

    /// Stops following, saves where each source stopped, and publishes the last counts.
    pub fn stop(&self) {
        lock(&self.followers).stop();
        if let Some(writer) = lock(&self.writer).take() {
            self.shared.stop_writer.store(true, Ordering::Release);
            self.shared.wake_writer.notify_one();
            let _ = writer.join();
        }
        self.shared.save_and_publish(true);
    }

    /// The rules' families and the self-metrics of every source, as last published.
    pub fn families(&self) -> Vec<Family> {
        let sources = read(&self.shared.sources).clone();
        let mut families = Vec::new();
        for source in &sources {
            let published = lock(&source.published).clone();
            families.extend(published.snapshot.families(&published.plan));
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
        let sources = read(&self.shared.sources).clone();
        sources.iter().map(|s| s.state().summary(&s.plan)).collect()
    }

    /// One page of the query indexes: entries ordered by source then hash, those after
    /// `after` (a page's `next`), at most `limit`; or the entries of one `hash`. Only the page
    /// is copied, so an answer's size is bounded by `limit`, not by the index.
    pub fn queries(&self, hash: Option<&str>, after: Option<&str>, limit: usize) -> QueryPage {
        let limit = limit.max(1);
        let after = after.map(|a| a.split_once('\n').unwrap_or((a, "")));
        let sources = read(&self.shared.sources).clone();
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

/// Follows a source's files until `stop`; hands its tailer back.
fn follow(source: &LiveSource, mut tailer: Tailer, stop: &AtomicBool, shared: &Shared) -> Tailer {
    let plan = &source.plan;
    // A multiline record is complete once its file has been quiet for a while.
    let idle_flush = (plan.poll_interval * 4).max(Duration::from_millis(500));
    let intervals = (plan.safety_scan, plan.poll_interval);
    let mut waker = Waker::new(&plan.name, &plan.patterns, plan.watch, intervals);
    let scan_every = if waker.inotify() { plan.safety_scan } else { plan.poll_interval };
    let mut next_scan = Instant::now();
    let mut woken = Woken { data: true, rescan: true, written: Vec::new() };
    loop {
        let now = Instant::now();
        let rescan = woken.rescan || now >= next_scan;
        if rescan {
            next_scan = now + scan_every;
        }
        let written: HashSet<PathBuf> = woken.written.drain(..).collect();
        let look = match (rescan, woken.data && !written.is_empty()) {
            (true, _) => Look::Scan,
            (false, true) => Look::Written(&written),
            (false, false) => Look::Files,
        };
        tailer.poll_with(idle_flush, look, &mut Counting { source, now, held: None });
        let progress = tailer.take_progress();
        {
            let mut staged = source.staged();
            let mut state = source.state();
            state.add_tail(progress, now);
            state.expire(plan, now);
            tailer.record_positions();
            *staged = Some(state.snapshot());
        }
        shared.want_save();
        let poll_took = now.elapsed();
        // A held record is handed out once its file has been quiet for `idle_flush`.
        let mut until = next_scan;
        if tailer.holds_records() {
            until = until.min(Instant::now() + idle_flush / 2);
        }
        woken = Woken::default();
        while !woken.data && !woken.rescan && Instant::now() < until {
            if stop.load(Ordering::Acquire) {
                return tailer;
            }
            woken = waker.wait(until.min(Instant::now() + STOP_CHECK));
        }
        // Writes that come in a stream are read in batches: a poll costs about the same for one
        // line of a file as for a thousand. The more a poll costs (many busy files), the longer
        // the next one waits, so polling takes a bounded share of a core.
        let gap = (poll_took * BUSY_SHARE_INVERSE).clamp(MIN_POLL_GAP, MAX_POLL_GAP);
        let since = now.elapsed();
        if !woken.rescan && since < gap {
            std::thread::sleep(gap - since);
            woken.merge(waker.wait(Instant::now()));
        }
        if stop.load(Ordering::Acquire) {
            return tailer;
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
    fn record(&mut self, record: &str, meta: Meta) {
        let source = self.source;
        let state = self.held.get_or_insert_with(|| source.state());
        state.process(&source.plan, record, meta, self.now);
    }

    fn before_io(&mut self) {
        self.held = None;
    }
}
