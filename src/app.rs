//! The running state: the loaded configuration, scheduled results, self-metrics, and the
//! reload that swaps a new configuration in only when all of it is valid.

use crate::config::probes::{DEFAULT_FILE_SD_REFRESH, DEFAULT_HTTP_SD_REFRESH};
use crate::config::{ConfigError, LogRulesFile, ProbesFile, Source, DEFAULT_LOG_RULES};
use crate::discovery::http_sd::HttpSource;
use crate::discovery::relabel::Rule;
use crate::discovery::{Discovery, Sources};
use crate::logs::positions::Positions;
use crate::logs::{LogRuntime, SourcePlan};
use crate::metrics::self_metrics::SelfMetrics;
use crate::probe::scheduler::{Job, Results, Scheduler};
use crate::probe::PreparedModule;
use crate::web::error_count::ErrorCount;
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

#[derive(Debug, Clone)]
pub struct ConfigPaths {
    pub probes: PathBuf,
    /// `None`: the default path, which may be absent.
    pub log_rules: Option<PathBuf>,
    /// The share of scheduled probes this replica runs (`--shard`); log sources are not shared.
    pub shard: crate::probe::shard::Shard,
}

impl ConfigPaths {
    /// The log rules file read: the one given, else the default when it exists.
    fn log_rules_read(&self) -> Option<&std::path::Path> {
        match &self.log_rules {
            Some(path) => Some(path),
            None => Some(DEFAULT_LOG_RULES.as_ref()).filter(|p: &&std::path::Path| p.exists()),
        }
    }

    /// A digest of what both files hold now (or why one cannot be read), so a change of
    /// content is seen whatever the file system says of times: a Kubernetes ConfigMap's files
    /// are replaced by swapping a link.
    pub fn digest(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::hash::DefaultHasher::new();
        for path in std::iter::once(self.probes.as_path()).chain(self.log_rules_read()) {
            match crate::files::read(path, crate::files::MAX_CONFIG_BYTES) {
                Ok(bytes) => bytes.hash(&mut hasher),
                Err(e) => e.kind().hash(&mut hasher),
            }
        }
        hasher.finish()
    }
}

/// Returns to the kernel the pages of the calling thread's stack below the caller's frame.
/// The YAML deserializer's frames reach about 200 KiB deep; the pages they touched would stay
/// resident, unused, for the life of the process on the main thread (at start) or on a
/// runtime worker (at a reload). glibc does the same with a thread's stack when the thread
/// ends. Everything below a thread's stack pointer is dead, so the pages fault in again, zeroed,
/// if a deeper call ever needs them.
#[inline(never)]
fn release_stack_below_caller() {
    // The margin covers this frame and madvise's below it.
    const MARGIN: usize = 16 * 1024;
    let marker = 0u8;
    let here = std::hint::black_box(std::ptr::addr_of!(marker)) as usize;
    let below = here.saturating_sub(MARGIN) & !(PAGE - 1);
    let Some(floor) = stack_floor(here) else { return };
    if below > floor {
        // SAFETY: [floor, below) is this thread's stack (or, on the main thread, address space
        // reserved for it) below the deepest live frame, where no data of the program lives.
        // Parts not mapped are skipped by madvise, which then reports ENOMEM, ignored.
        unsafe { libc::madvise(floor as *mut libc::c_void, below - floor, libc::MADV_DONTNEED) };
    }
}

const PAGE: usize = 4096;

/// The lowest address of the calling thread's stack that [`release_stack_below_caller`] may
/// clear, given the address of one of its locals.
fn stack_floor(here: usize) -> Option<usize> {
    // How far below the main thread's current frame the release reaches.
    const MAIN_THREAD_REACH: usize = 1 << 20;
    // SAFETY: plain system calls, and an attribute object initialised by pthread_getattr_np
    // before it is read and destroyed after.
    unsafe {
        if libc::gettid() == libc::getpid() {
            // glibc finds the main thread's bounds by reading /proc/self/maps through stdio,
            // which maps in more of libc than the release gives back. Linux places other
            // mappings at least 128 MiB below the top of the main thread's stack, so the MiB
            // under this frame belongs to the stack.
            return Some(here.saturating_sub(MAIN_THREAD_REACH) & !(PAGE - 1));
        }
        let mut attr = std::mem::MaybeUninit::<libc::pthread_attr_t>::uninit();
        if libc::pthread_getattr_np(libc::pthread_self(), attr.as_mut_ptr()) != 0 {
            return None;
        }
        let (mut lowest, mut size) = (std::ptr::null_mut(), 0usize);
        let got = libc::pthread_attr_getstack(attr.as_ptr(), &mut lowest, &mut size);
        libc::pthread_attr_destroy(attr.as_mut_ptr());
        let lowest = lowest as usize;
        (got == 0 && (lowest..lowest + size).contains(&here)).then_some(lowest)
    }
}

/// Both configuration files, parsed, validated and prepared.
pub struct Config {
    pub modules: BTreeMap<String, Arc<PreparedModule>>,
    /// The scheduled probes with a `target` (this replica's share of them).
    pub jobs: Vec<Arc<Job>>,
    /// The scheduled probes whose targets are discovered.
    pub discoveries: Vec<Arc<Discovery>>,
    pub probe_endpoint: crate::config::probes::ProbeEndpoint,
    /// Compiled log sources.
    pub log_plans: Vec<Arc<SourcePlan>>,
    /// Certificates closer to expiry than this are marked in `--once` and on the status page.
    pub warn_before: std::time::Duration,
    /// Runs of each probe the status page keeps.
    pub history: usize,
    /// The log counters (without `_total`) the status page's error count sums.
    pub error_metrics: Vec<String>,
    pub shard: crate::probe::shard::Shard,
}

impl Config {
    /// Reads, validates and prepares both files, then gives back the stack the YAML
    /// deserializer used (see [`release_stack_below_caller`]).
    pub fn load(paths: &ConfigPaths) -> Result<Config, ConfigError> {
        let config = Config::read_and_prepare(paths);
        release_stack_below_caller();
        config
    }

    fn read_and_prepare(paths: &ConfigPaths) -> Result<Config, ConfigError> {
        let source = Source::read(&paths.probes)?;
        let probes = ProbesFile::load(&source)?;
        let log_source = match paths.log_rules_read() {
            Some(path) => Some(Source::read(path)?),
            None => None,
        };
        let log_plans = match &log_source {
            Some(source) => crate::logs::compile(&LogRulesFile::load(source)?, source)?,
            None => Vec::new(),
        };
        let ProbesFile { modules, probes, probe_endpoint, warn_before, status_page } = probes;
        let warn_before = warn_before.map_or(crate::config::probes::DEFAULT_WARN_BEFORE, |w| w.0);
        let mut prepared = BTreeMap::new();
        for (name, module) in modules {
            let module = PreparedModule::prepare(&name, module, &source)?;
            prepared.insert(name, Arc::new(module));
        }
        let mut jobs = Vec::with_capacity(probes.len());
        let mut discoveries = Vec::new();
        // Discovery files are named relative to probes.yaml, as Prometheus does.
        let base = paths.probes.parent().unwrap_or(std::path::Path::new(""));
        // What a discovered target's `__param_module` may name.
        let all_modules = Arc::new(prepared.clone());
        for p in probes {
            let module: &Arc<PreparedModule> = &prepared[&p.module.value];
            let (interval, interval_when_failing) = (p.interval(), p.interval_when_failing());
            let step_labels: Vec<&str> = module.step_label_names().collect();
            if let Some((name, value)) =
                p.labels.iter().find(|(k, _)| step_labels.contains(&k.as_str()))
            {
                return Err(source.error_at_span(
                    value,
                    format!("label {name:?} is also one module {}'s query_response gives probe_expect_info: a series cannot have it twice", module.name),
                ));
            }
            let labels = p.labels.into_iter().map(|(k, v)| (k, v.value)).collect();
            let Some(target) = p.target else {
                let files = p.file_sd_configs.into_iter().map(|c| {
                    let patterns = c.value.files.into_iter().map(|f| base.join(f.value));
                    let refresh =
                        c.value.refresh_interval.map_or(DEFAULT_FILE_SD_REFRESH, |r| r.value.0);
                    (patterns.map(|p| p.to_string_lossy().into_owned()).collect(), refresh)
                });
                let urls = p.http_sd_configs.into_iter().map(|c| {
                    let refresh = c
                        .value
                        .refresh_interval
                        .as_ref()
                        .map_or(DEFAULT_HTTP_SD_REFRESH, |r| r.value.0);
                    HttpSource::prepare(c.value, refresh, &source)
                });
                let relabel = p.relabel_configs.iter().map(|r| Rule::prepare(r, &source));
                discoveries.push(Arc::new(Discovery {
                    name: p.name.value,
                    module: module.clone(),
                    modules: all_modules.clone(),
                    interval,
                    interval_when_failing,
                    labels,
                    relabel: relabel.collect::<Result<_, _>>()?,
                    files: files.collect(),
                    urls: urls.collect::<Result<_, _>>()?,
                }));
                continue;
            };
            // The prober's own parser decides, so a target `check` accepts is one it can run.
            module
                .check_target(&target.value)
                .map_err(|f| source.error_at_span(&target, f.message))?;
            if !paths.shard.owns(&p.name.value, &target.value) {
                continue;
            }
            jobs.push(Arc::new(Job {
                interval,
                interval_when_failing,
                module: module.clone(),
                name: p.name.value,
                target: target.value,
                labels: labels.into_iter().collect(),
            }));
        }
        Ok(Config {
            modules: prepared,
            jobs,
            discoveries,
            probe_endpoint,
            log_plans,
            warn_before,
            history: status_page.history(),
            error_metrics: status_page.error_metrics(),
            shard: paths.shard,
        })
    }
}

pub struct App {
    pub paths: ConfigPaths,
    config: RwLock<Arc<Config>>,
    pub results: Arc<Results>,
    pub metrics: Arc<SelfMetrics>,
    /// The log sources being followed, with what they counted.
    pub logs: LogRuntime,
    /// Recent totals of the error counters, for the status page's count of the last minutes.
    pub errors: ErrorCount,
    /// Seconds taken off Prometheus' scrape timeout for `/probe`, as blackbox's `--timeout-offset`.
    pub timeout_offset: f64,
    scheduler: Mutex<Option<Scheduler>>,
    /// The discovery tasks of the running configuration, each with what its sources last
    /// gave: a reload carries what each file and URL gave over to the probe's new task.
    discovering: Mutex<Vec<Discovering>>,
    reload_lock: Mutex<()>,
    /// [`ConfigPaths::digest`] of the files as the running configuration was loaded from them
    /// (or last tried): taken before they are read, so a change while they are never goes
    /// unseen by `--config.auto-reload-interval`.
    loaded_digest: std::sync::atomic::AtomicU64,
    /// The ports lookout's endpoint listens on, once it does: `/probe` keeps away from them.
    pub listening: std::sync::OnceLock<Vec<u16>>,
    /// `/probe` requests that may run at once, set by the server: fewer than its connections,
    /// so slow probes (a scraper may ask for a timeout of an hour) cannot hold every one.
    pub probe_slots: std::sync::OnceLock<tokio::sync::Semaphore>,
}

struct Discovering {
    discovery: Arc<Discovery>,
    sources: Arc<Mutex<Sources>>,
    task: tokio::task::JoinHandle<()>,
}

impl App {
    pub fn new(
        paths: ConfigPaths,
        config: Config,
        timeout_offset: f64,
        positions: Option<Arc<Positions>>,
    ) -> Arc<App> {
        Arc::new(App {
            paths,
            timeout_offset,
            logs: LogRuntime::new(positions),
            errors: ErrorCount::default(),
            reload_lock: Mutex::new(()),
            loaded_digest: std::sync::atomic::AtomicU64::new(0),
            config: RwLock::new(Arc::new(config)),
            results: Arc::new(Results::default()),
            metrics: Arc::new(SelfMetrics::new()),
            scheduler: Mutex::new(None),
            discovering: Mutex::new(Vec::new()),
            listening: std::sync::OnceLock::new(),
            probe_slots: std::sync::OnceLock::new(),
        })
    }

    pub fn config(&self) -> Arc<Config> {
        self.config.read().expect("config lock").clone()
    }

    /// Starts (or restarts) the scheduled probes and the log sources of the current configuration.
    pub fn start(&self) {
        self.start_scheduler();
        self.logs.apply(&self.config().log_plans);
    }

    /// Stops the log sources, saving where they stopped.
    pub fn stop_logs(&self) {
        self.logs.stop();
    }

    fn start_scheduler(&self) {
        let config = self.config();
        let mut scheduler = self.scheduler.lock().expect("scheduler lock");
        *scheduler = None;
        // Results an aborted task may still store carry the old generation and are ignored.
        let generation = self.results.next_generation();
        let jobs: Vec<&Job> = config.jobs.iter().map(|j| j.as_ref()).collect();
        let discovered: Vec<&str> = config.discoveries.iter().map(|d| d.name.as_str()).collect();
        self.results.retain_jobs(&jobs, &discovered, config.history);
        let mechanisms = config.discoveries.iter().flat_map(|d| {
            let file = (!d.files.is_empty()).then_some((d.name.as_str(), "file"));
            let http = (!d.urls.is_empty()).then_some((d.name.as_str(), "http"));
            file.into_iter().chain(http)
        });
        self.metrics.retain_sd(&mechanisms.collect::<Vec<_>>());
        let names: HashSet<&str> =
            jobs.iter().map(|j| j.name.as_str()).chain(discovered.iter().copied()).collect();
        let modules: HashSet<&str> = config.modules.keys().map(String::as_str).collect();
        self.metrics.retain_configured(&names, &modules);
        let started = Scheduler::start(
            config.jobs.clone(),
            self.results.clone(),
            self.metrics.clone(),
            generation,
        );
        let mut discovering = self.discovering.lock().expect("discovery lock");
        let before: Vec<Discovering> = discovering.drain(..).collect();
        for old in &before {
            old.task.abort();
        }
        for discovery in &config.discoveries {
            let carried = before.iter().find(|old| old.discovery.name == discovery.name);
            let sources =
                discovery.sources_after(carried.map(|old| (&*old.discovery, &*old.sources)));
            let run = discovery.clone().run(
                sources.clone(),
                started.targets(),
                self.metrics.clone(),
                config.shard,
            );
            let task = tokio::spawn(run);
            discovering.push(Discovering { discovery: discovery.clone(), sources, task });
        }
        *scheduler = Some(started);
    }

    /// Records the digest of the files the running configuration comes from.
    pub fn set_loaded_digest(&self, digest: u64) {
        self.loaded_digest.store(digest, std::sync::atomic::Ordering::Release);
    }

    /// Whether what the configuration files hold now differs from what was last loaded (or
    /// tried); reads both files.
    pub fn config_changed(&self) -> bool {
        self.paths.digest() != self.loaded_digest.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Loads both files again; on any error the running configuration stays. Reloads run one
    /// at a time; this blocks (file reads, stopping log threads), so async callers use
    /// `block_in_place`.
    pub fn reload(&self) -> Result<(), ConfigError> {
        let _one_at_a_time = self.reload_lock.lock().expect("reload lock");
        self.set_loaded_digest(self.paths.digest());
        match Config::load(&self.paths) {
            Ok(config) => {
                *self.config.write().expect("config lock") = Arc::new(config);
                self.start();
                self.metrics.record_reload(true);
                tracing::info!("configuration reloaded");
                Ok(())
            }
            Err(e) => {
                self.metrics.record_reload(false);
                tracing::error!("reload failed, keeping the running configuration: {e}");
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sums `depth` frames of 4 KiB each, releasing the stack below the deepest one: the frames
    /// above it must keep their contents.
    #[inline(never)]
    fn frames_summed_after_release(depth: u64) -> u64 {
        let frame = std::hint::black_box([depth; 512]);
        let inner = if depth == 0 {
            release_stack_below_caller();
            0
        } else {
            frames_summed_after_release(depth - 1)
        };
        inner + std::hint::black_box(&frame).iter().sum::<u64>()
    }

    #[test]
    fn releasing_the_stack_keeps_live_frames_and_lets_it_grow_again() {
        std::thread::Builder::new()
            .stack_size(4 << 20)
            .spawn(|| {
                let expected: u64 = (0..=64u64).map(|d| d * 512).sum();
                // Deep once, so there are touched pages below to release.
                assert_eq!(frames_summed_after_release(64), expected);
                let marker = 0u8;
                let here = std::ptr::addr_of!(marker) as usize;
                let floor = stack_floor(here).expect("a spawned thread's stack bounds");
                assert!(floor < here && here - floor < 4 << 20, "{floor:#x} {here:#x}");
                // Released at every depth on the way, then grown again past it.
                for depth in [0, 8, 64] {
                    let expected: u64 = (0..=depth).map(|d| d * 512).sum();
                    assert_eq!(frames_summed_after_release(depth), expected);
                }
            })
            .expect("spawn")
            .join()
            .expect("no crash");
    }
}
