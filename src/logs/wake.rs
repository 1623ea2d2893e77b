//! What wakes a source's thread: inotify events for files under its paths being written,
//! created, renamed or deleted, or the end of a wait; a scan on a timer stays as a safety net,
//! since events can be dropped (queue overflow) or arrive in any order. The tailer takes an
//! event only as "look again", never as a fact about a file, so neither matters.
//!
//! The source's own thread reads the inotify descriptor, a buffer of events per system call,
//! when it is about to wait anyway: a writer's hundred thousand events a second cost no thread
//! hand-off each (an event thread handing them over, as `notify` does, took more CPU than
//! reading the lines), and events that come while the tailer reads pile up in the kernel's queue
//! to be taken in one read. Directories under a recursive root (`/var/log/pods/*/*/*.log`) are
//! watched as they appear.
//!
//! Where inotify cannot be had (no support, `max_user_watches` exhausted, a directory missing
//! when the source starts), the source polls, and says so once.

use crate::config::log_rules::Watch;
use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};
use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::io::ErrorKind;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Test hook: inotify behaves as if `max_user_watches` allowed this many directories.
pub const MAX_WATCHES_ENV: &str = "LOOKOUT_TEST_INOTIFY_MAX_WATCHES";

/// Files named by write events beyond which a wake-up reads every file.
const MAX_WRITTEN: usize = 1024;

/// Bytes of events taken per read: a few thousand events.
const EVENT_BUFFER: usize = 64 << 10;

/// Reads of the queue per wake-up at most, so a flood of events cannot keep the thread from
/// reading files; what is left is taken at the next wake-up.
const MAX_READS: usize = 16;

/// What the events a directory's watch gets say, and what a directory's watch asks for.
const WATCHED: WatchMask = WatchMask::MODIFY
    .union(WatchMask::ATTRIB)
    .union(WatchMask::CREATE)
    .union(WatchMask::DELETE)
    .union(WatchMask::MOVED_FROM)
    .union(WatchMask::MOVED_TO)
    .union(WatchMask::DELETE_SELF)
    .union(WatchMask::MOVE_SELF)
    .union(WatchMask::ONLYDIR)
    .union(WatchMask::EXCL_UNLINK);

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
            self.wrote(later.written);
        }
        self.rescan |= later.rescan;
    }

    /// Files were written (no names: any file).
    fn wrote(&mut self, files: Vec<PathBuf>) {
        // No names on either side: every file.
        if self.data && self.written.is_empty() || files.is_empty() {
            self.written = Vec::new();
        } else {
            self.written.extend(files);
            if self.written.len() > MAX_WRITTEN {
                self.written = Vec::new();
            }
        }
        self.data = true;
    }

    fn said(&self) -> bool {
        self.data || self.rescan
    }
}

pub struct Waker {
    /// None when polling.
    watching: Option<Watching>,
}

/// An inotify instance and what each of its watches is of.
struct Watching {
    inotify: Inotify,
    dirs: HashMap<WatchDescriptor, Dir>,
    buffer: Vec<u8>,
    /// Set once a directory that appeared could not be watched (its files are then found by
    /// the safety-net scan), so the warning is logged once.
    warned: bool,
}

struct Dir {
    path: PathBuf,
    recursive: bool,
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
        let watching = match forced {
            Some(Watch::Poll) => None,
            _ => match Watching::new(patterns) {
                Ok(watching) => Some(watching),
                Err(why) => {
                    tracing::warn!(source, "inotify unavailable ({why}); polling files instead");
                    None
                }
            },
        };
        match &watching {
            Some(_) => tracing::info!(
                source,
                "following files through inotify, with a scan every {scan:?} as a safety net"
            ),
            None => tracing::info!(source, "following files by polling every {poll:?}"),
        }
        Waker { watching }
    }

    pub fn inotify(&self) -> bool {
        self.watching.is_some()
    }

    /// Waits for an event, at most until `until`; what the events said (nothing: timed out).
    pub fn wait(&mut self, until: Instant) -> Woken {
        let mut woken = Woken::default();
        loop {
            if let Some(watching) = &mut self.watching {
                watching.take_events(&mut woken);
            }
            let now = Instant::now();
            if woken.said() || now >= until {
                return woken;
            }
            match &self.watching {
                Some(watching) => watching.readable_within(until - now),
                None => std::thread::sleep(until - now),
            }
        }
    }
}

impl Watching {
    fn new(patterns: &[String]) -> Result<Watching, String> {
        let mut roots: Vec<(PathBuf, bool)> = patterns.iter().map(|p| root(p)).collect();
        roots.sort();
        roots.dedup_by(|a, b| a.0 == b.0);
        if let Some(max) = std::env::var(MAX_WATCHES_ENV).ok().and_then(|m| m.parse::<usize>().ok())
        {
            let wanted: usize =
                roots.iter().map(|(dir, recursive)| directories(dir, *recursive)).sum();
            if wanted > max {
                return Err(format!("{wanted} directories, max_user_watches exhausted"));
            }
        }
        let inotify = Inotify::init().map_err(|e| describe(&e))?;
        let mut watching = Watching {
            inotify,
            dirs: HashMap::new(),
            buffer: vec![0; EVENT_BUFFER],
            warned: false,
        };
        for (dir, recursive) in roots {
            watching
                .add(&dir, recursive)
                .map_err(|e| format!("{}: {}", dir.display(), describe(&e)))?;
        }
        Ok(watching)
    }

    /// Watches `dir`, and when `recursive` every directory under it.
    fn add(&mut self, dir: &Path, recursive: bool) -> std::io::Result<()> {
        let wd = self.inotify.watches().add(dir, WATCHED)?;
        let entry = self.dirs.entry(wd).or_insert(Dir { path: dir.to_path_buf(), recursive });
        entry.recursive |= recursive;
        if recursive {
            // Symbolic links to directories are not followed: a loop would never end.
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    self.add(&entry.path(), true)?;
                }
            }
        }
        Ok(())
    }

    /// Waits until events are queued or `timeout` has passed.
    fn readable_within(&self, timeout: Duration) {
        let mut fd =
            libc::pollfd { fd: self.inotify.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // Rounded up: a wait cut short would spin until the deadline.
        let millis = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd for the duration of the call. An interrupted wait returns
        // early; the caller's loop waits again.
        unsafe { libc::poll(&mut fd, 1, millis) };
    }

    /// Reads what is queued, without waiting, into `woken`.
    fn take_events(&mut self, woken: &mut Woken) {
        // Each file once however many writes named it: one busy file among ten thousand quiet
        // ones must not make every wake-up read them all.
        let mut written: HashMap<WatchDescriptor, HashSet<OsString>> = HashMap::new();
        let mut named = 0;
        let mut appeared = Vec::new();
        for _ in 0..MAX_READS {
            let events = match self.inotify.read_events(&mut self.buffer) {
                Ok(events) => events,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::debug!("reading inotify events: {e}");
                    woken.rescan = true;
                    break;
                }
            };
            for event in events {
                let mask = event.mask;
                if mask.contains(EventMask::MODIFY) && !mask.contains(EventMask::ISDIR) {
                    match event.name.filter(|_| named <= MAX_WRITTEN) {
                        Some(name) => {
                            let names = written.entry(event.wd).or_default();
                            if !names.contains(name) {
                                names.insert(name.to_os_string());
                                named += 1;
                            }
                        }
                        // Too many, or not named: any file may have been written.
                        None => woken.wrote(Vec::new()),
                    }
                    continue;
                }
                // Creates, renames, deletes, attribute changes, overflow: look at all.
                woken.rescan = true;
                if mask.contains(EventMask::IGNORED) {
                    self.dirs.remove(&event.wd);
                } else if mask.contains(EventMask::ISDIR)
                    && mask.intersects(EventMask::CREATE | EventMask::MOVED_TO)
                {
                    if let Some(dir) = self.dirs.get(&event.wd).filter(|d| d.recursive) {
                        appeared.push(dir.path.join(event.name.unwrap_or(OsStr::new(""))));
                    }
                }
            }
        }
        let mut paths = Vec::new();
        for (wd, names) in written {
            match self.dirs.get(&wd) {
                Some(dir) => paths.extend(names.into_iter().map(|name| dir.path.join(name))),
                // A directory no longer watched: which file is not known.
                None => woken.wrote(Vec::new()),
            }
        }
        if !paths.is_empty() {
            woken.wrote(paths);
        }
        for dir in appeared {
            if let Err(e) = self.add(&dir, true) {
                if !std::mem::replace(&mut self.warned, true) {
                    tracing::warn!(
                        "cannot watch {} ({}): its files are found by the safety-net scan",
                        dir.display(),
                        describe(&e)
                    );
                }
            }
        }
    }
}

/// The directory a pattern's files are found under, and whether files may be deeper in it.
fn root(pattern: &str) -> (PathBuf, bool) {
    let path = Path::new(pattern);
    let mut root = PathBuf::new();
    let mut components = path.components();
    for component in components.by_ref() {
        if component.as_os_str().to_string_lossy().contains(['*', '?', '[']) {
            break;
        }
        root.push(component);
    }
    let (mut root, recursive) = match components.next() {
        // A glob in the file name only: the directory it is in.
        None if root != path => (root, false),
        // No glob: the file's directory (renames and re-creations happen there).
        None => (path.parent().map(Path::to_path_buf).unwrap_or_default(), false),
        Some(_) => (root, true),
    };
    // A relative path's files are in the working directory.
    if root.as_os_str().is_empty() {
        root = PathBuf::from(".");
    }
    (root, recursive)
}

/// Directories a watch of `dir` takes (inotify watches one directory each).
fn directories(dir: &Path, recursive: bool) -> usize {
    if !recursive {
        return 1;
    }
    1 + std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| directories(&e.path(), recursive))
        .sum::<usize>()
}

fn describe(error: &std::io::Error) -> String {
    match error.raw_os_error() {
        Some(libc::ENOSPC) => "max_user_watches exhausted".to_string(),
        Some(libc::EMFILE) => "max_user_instances exhausted".to_string(),
        _ => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_of_patterns() {
        assert_eq!(root("/var/log/nginx/access.log"), ("/var/log/nginx".into(), false));
        assert_eq!(root("/var/log/nginx/*.log"), ("/var/log/nginx".into(), false));
        assert_eq!(root("/var/log/pods/*/*/*.log"), ("/var/log/pods".into(), true));
        assert_eq!(root("access.log"), (".".into(), false));
        assert_eq!(root("*.log"), (".".into(), false));
    }

    #[test]
    fn writes_name_files_and_new_directories_are_watched() {
        let dir = tempfile::tempdir().unwrap();
        let pattern = format!("{}/*/*.log", dir.path().display());
        let mut waker = Waker::new("t", &[pattern], None, (Duration::ZERO, Duration::ZERO));
        assert!(waker.inotify());
        let soon = || Instant::now() + Duration::from_secs(2);
        // A directory appears: a rescan, and its files are watched from then on.
        let pod = dir.path().join("pod");
        std::fs::create_dir(&pod).unwrap();
        assert!(waker.wait(soon()).rescan);
        let log = pod.join("0.log");
        std::fs::write(&log, "").unwrap();
        assert!(waker.wait(soon()).rescan);
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        file.write_all(b"a\n").unwrap();
        file.write_all(b"b\n").unwrap();
        let woken = waker.wait(soon());
        assert!(woken.data && !woken.rescan, "{woken:?}");
        // Named once, however many writes.
        assert_eq!(woken.written, vec![log.clone()]);
        // Nothing more: the wait times out.
        let start = Instant::now();
        assert_eq!(waker.wait(start + Duration::from_millis(50)), Woken::default());
        assert!(start.elapsed() >= Duration::from_millis(50));
    }
}
