//! What wakes a source's thread: inotify (through `notify`) when files under its paths are
//! written, created, renamed or deleted, or the end of a wait; a scan on a timer stays as a
//! safety net, since events can be dropped (queue overflow) or arrive in any order. The tailer
//! takes an event only as "look again", never as a fact about a file, so neither matters.
//!
//! Where inotify cannot be had (no support, `max_user_watches` exhausted, a directory missing
//! when the source starts), the source polls, and says so once.

use crate::config::log_rules::Watch;
use notify::{EventKind, RecursiveMode, Watcher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Test hook: inotify behaves as if `max_user_watches` allowed this many directories.
pub const MAX_WATCHES_ENV: &str = "LOOKOUT_TEST_INOTIFY_MAX_WATCHES";

/// Files named by write events beyond which a wake-up reads every file.
const MAX_WRITTEN: usize = 1024;

/// What events said since the last wait.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Woken {
    /// Something was written: these files (none when more were than are kept).
    pub data: bool,
    pub written: Vec<PathBuf>,
    /// A file or directory appeared, moved or went, or events were lost: scan the paths.
    pub rescan: bool,
}

impl Woken {
    /// Adds what later events said.
    pub fn merge(&mut self, later: Woken) {
        if later.data {
            // No names on either side: every file.
            if self.data && self.written.is_empty() || later.written.is_empty() {
                self.written = Vec::new();
            } else {
                self.written.extend(later.written);
            }
            self.data = true;
        }
        self.rescan |= later.rescan;
    }
}

type Signal = Arc<(Mutex<Woken>, Condvar)>;

pub struct Waker {
    /// Kept for its watches; none when polling.
    watcher: Option<notify::RecommendedWatcher>,
    signal: Signal,
}

impl Waker {
    /// Watches the directories of `patterns`, unless `forced` says to poll or inotify fails;
    /// `scan` and `poll` are the intervals said in the log line of each case.
    pub fn new(
        source: &str,
        patterns: &[String],
        forced: Option<Watch>,
        (scan, poll): (Duration, Duration),
    ) -> Waker {
        let signal: Signal = Arc::default();
        let watcher = match forced {
            Some(Watch::Poll) => None,
            _ => match watch(patterns, signal.clone()) {
                Ok(watcher) => Some(watcher),
                Err(why) => {
                    tracing::warn!(source, "inotify unavailable ({why}); polling files instead");
                    None
                }
            },
        };
        match &watcher {
            Some(_) => tracing::info!(
                source,
                "following files through inotify, with a scan every {scan:?} as a safety net"
            ),
            None => tracing::info!(source, "following files by polling every {poll:?}"),
        }
        Waker { watcher, signal }
    }

    pub fn inotify(&self) -> bool {
        self.watcher.is_some()
    }

    /// Waits for an event, at most until `until`; what the events said (nothing: timed out).
    pub fn wait(&self, until: Instant) -> Woken {
        let (lock, condvar) = &*self.signal;
        let mut woken = lock.lock().unwrap_or_else(PoisonError::into_inner);
        while !woken.data && !woken.rescan {
            let now = Instant::now();
            if now >= until {
                break;
            }
            woken =
                condvar.wait_timeout(woken, until - now).unwrap_or_else(PoisonError::into_inner).0;
        }
        std::mem::take(&mut *woken)
    }
}

/// The directory a pattern's files are found under, and whether files may be deeper in it.
fn root(pattern: &str) -> (PathBuf, RecursiveMode) {
    let path = Path::new(pattern);
    let mut root = PathBuf::new();
    let mut components = path.components();
    for component in components.by_ref() {
        if component.as_os_str().to_string_lossy().contains(['*', '?', '[']) {
            break;
        }
        root.push(component);
    }
    let (mut root, mode) = match components.next() {
        // A glob in the file name only: the directory it is in.
        None if root != path => (root, RecursiveMode::NonRecursive),
        // No glob: the file's directory (renames and re-creations happen there).
        None => {
            (path.parent().map(Path::to_path_buf).unwrap_or_default(), RecursiveMode::NonRecursive)
        }
        Some(_) => (root, RecursiveMode::Recursive),
    };
    // A relative path's files are in the working directory.
    if root.as_os_str().is_empty() {
        root = PathBuf::from(".");
    }
    (root, mode)
}

/// Directories a watch of `dir` takes (inotify watches one directory each).
fn directories(dir: &Path, mode: RecursiveMode) -> usize {
    if mode == RecursiveMode::NonRecursive {
        return 1;
    }
    1 + std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| directories(&e.path(), mode))
        .sum::<usize>()
}

fn watch(patterns: &[String], signal: Signal) -> Result<notify::RecommendedWatcher, String> {
    let mut roots: Vec<(PathBuf, RecursiveMode)> = patterns.iter().map(|p| root(p)).collect();
    roots.sort_by(|a, b| a.0.cmp(&b.0));
    roots.dedup_by(|a, b| a.0 == b.0);
    if let Some(max) = std::env::var(MAX_WATCHES_ENV).ok().and_then(|m| m.parse::<usize>().ok()) {
        let wanted: usize = roots.iter().map(|(dir, mode)| directories(dir, *mode)).sum();
        if wanted > max {
            return Err(format!("{wanted} directories, max_user_watches exhausted"));
        }
    }
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let (lock, condvar) = &*signal;
        let mut woken = lock.lock().unwrap_or_else(PoisonError::into_inner);
        // The thread waits only while nothing is said: telling it again costs a system call
        // per event, a hundred thousand a second with a thousand busy files.
        let idle = !woken.data && !woken.rescan;
        match event {
            Ok(e)
                if matches!(e.kind, EventKind::Modify(notify::event::ModifyKind::Data(_)))
                    && !e.need_rescan() =>
            {
                if !woken.data || !woken.written.is_empty() {
                    woken.written.extend(e.paths);
                }
                if woken.written.len() > MAX_WRITTEN {
                    woken.written = Vec::new();
                }
                woken.data = true;
            }
            Ok(e) if matches!(e.kind, EventKind::Access(_)) && !e.need_rescan() => return,
            // Creates, renames, deletes, attribute changes, overflow, errors: look at all.
            _ => woken.rescan = true,
        }
        if idle {
            condvar.notify_one();
        }
    })
    .map_err(describe)?;
    for (dir, mode) in &roots {
        watcher.watch(dir, *mode).map_err(|e| format!("{}: {}", dir.display(), describe(e)))?;
    }
    Ok(watcher)
}

fn describe(error: notify::Error) -> String {
    match error.kind {
        notify::ErrorKind::MaxFilesWatch => "max_user_watches exhausted".to_string(),
        _ => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_of_patterns() {
        let r = |p: &str| root(p);
        assert_eq!(
            r("/var/log/nginx/access.log"),
            ("/var/log/nginx".into(), RecursiveMode::NonRecursive)
        );
        assert_eq!(
            r("/var/log/nginx/*.log"),
            ("/var/log/nginx".into(), RecursiveMode::NonRecursive)
        );
        assert_eq!(
            r("/var/log/pods/*/*/*.log"),
            ("/var/log/pods".into(), RecursiveMode::Recursive)
        );
        assert_eq!(r("access.log"), (".".into(), RecursiveMode::NonRecursive));
        assert_eq!(r("*.log"), (".".into(), RecursiveMode::NonRecursive));
    }
}
