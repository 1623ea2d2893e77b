//! The tailer: follows the files of one source by polling, through rotation.
//!
//! A file is known by its identity (device, inode) and a fingerprint of its first bytes, not by
//! its path, so a renamed file keeps its offset and a reused inode is not mistaken for the old
//! file. What rotation looks like, and what happens:
//! - rename + create: the path shows a new inode; the old file is read to its end (it is kept
//!   while it still grows, for a grace period) and the new one from its start;
//! - copytruncate: the size drops below the offset, or the first bytes change: read from 0;
//! - delete + recreate: as rename, the old handle is drained before it is let go.
//!
//! Compressed files (gzip, zstd; known by their first bytes) are old content: a live source
//! leaves them alone, a source read once (`replay`, `--once`) reads them through a decoder.
//! Read once, the rotations of a log are taken oldest first (see [`rotation_order`]).
//!
//! After a poll, [`Tailer::record_positions`] puts each file's offset up to the last record
//! handed out in the shared positions table, which one writer saves to disk. So a restart
//! skips nothing and reads nothing twice.

use super::container::{Container, Meta, PodPath};
use super::framing::{Framing, Pipeline};
use super::positions::{Identity, Positions};
use crate::config::log_rules::StartAt;
use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How much of a file is read in one go; larger files are read over several polls.
const READ_CHUNK: usize = 256 * 1024;
const MAX_READ_PER_POLL: u64 = 64 << 20;
/// How long a rotated-away file is still read after its last growth; also how often the
/// positions of files no longer followed are swept.
const DRAIN_GRACE: Duration = super::positions::GONE_GRACE;
/// How long a file must have been unchanged before an unchanged size and change time are taken
/// to mean nothing happened to it.
const QUIET: Duration = Duration::from_secs(1);

/// Why a path of a source cannot be read: a small fixed set, for a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Unreadable {
    PermissionDenied,
    NotAFile,
    SymlinkLoop,
    NotFound,
    TooManyOpenFiles,
    Io,
}

impl Unreadable {
    pub const ALL: [Unreadable; 6] = [
        Unreadable::PermissionDenied,
        Unreadable::NotAFile,
        Unreadable::SymlinkLoop,
        Unreadable::NotFound,
        Unreadable::TooManyOpenFiles,
        Unreadable::Io,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Unreadable::PermissionDenied => "permission_denied",
            Unreadable::NotAFile => "not_a_file",
            Unreadable::SymlinkLoop => "symlink_loop",
            Unreadable::NotFound => "not_found",
            Unreadable::TooManyOpenFiles => "too_many_open_files",
            Unreadable::Io => "io",
        }
    }

    fn of(error: &std::io::Error) -> Unreadable {
        match (error.kind(), error.raw_os_error()) {
            (std::io::ErrorKind::PermissionDenied, _) => Unreadable::PermissionDenied,
            (std::io::ErrorKind::NotFound, _) => Unreadable::NotFound,
            (_, Some(libc::ELOOP)) => Unreadable::SymlinkLoop,
            (_, Some(libc::EMFILE | libc::ENFILE)) => Unreadable::TooManyOpenFiles,
            _ => Unreadable::Io,
        }
    }
}

/// What happened during polls, for self-metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TailStats {
    pub bytes: u64,
    pub lines: u64,
    pub rotations: u64,
    pub truncations: u64,
    pub cut_lines: u64,
    pub dropped_lines: u64,
    pub read_errors: u64,
    /// Lines whose container wrapper could not be read.
    pub wrapper_errors: u64,
}

impl TailStats {
    pub fn add(&mut self, other: &TailStats) {
        self.bytes += other.bytes;
        self.lines += other.lines;
        self.rotations += other.rotations;
        self.truncations += other.truncations;
        self.cut_lines += other.cut_lines;
        self.dropped_lines += other.dropped_lines;
        self.read_errors += other.read_errors;
        self.wrapper_errors += other.wrapper_errors;
    }
}

/// A tailer's counts since it was last asked, and its state now.
pub struct Progress {
    pub stats: TailStats,
    /// Bytes written to the files but not read yet.
    pub lag_bytes: u64,
    pub files: usize,
    /// How many of the source's paths cannot be read, by reason (in `Unreadable::ALL`'s order).
    pub unreadable: [usize; Unreadable::ALL.len()],
}

struct Watched {
    path: PathBuf,
    file: File,
    identity: Identity,
    offset: u64,
    /// The file's size when it was last looked at, for the lag.
    seen_len: u64,
    /// The file's change time when it was last read to its end, its start checked: while its
    /// size and change time stay so there is nothing to read or check (a safety-net scan of ten
    /// thousand quiet files costs a `fstat` each).
    read_through: Option<(i64, i64)>,
    /// What the scan just found at the file's path (the same inode): read in place of a
    /// `fstat` of the handle.
    scanned: Option<Stamp>,
    pipeline: Pipeline,
    /// What the records of a compressed file are read from (read once only).
    decoder: Option<Box<dyn Read + Send>>,
    /// The Kubernetes names in the file's path, for a container source.
    pod: Option<PodPath>,
    /// Found compressed once its first bytes were written (a compressor's output being
    /// written): let go of, unread.
    compressed: bool,
    /// Seen at its path in the last scan; if not, it was rotated away and is being drained,
    /// or its directory cannot be seen for now.
    at_path: bool,
    last_growth: Instant,
    /// Since when the file has not been seen although it still exists and no other file took
    /// its path: its directory is missing or unreadable (renamed away, permissions, no file
    /// descriptors left). It is read on through its handle and never finished early.
    hidden_since: Option<Instant>,
}

/// A file's size and change time, as one look at it found them.
#[derive(Clone, Copy)]
struct Stamp {
    len: u64,
    changed: (i64, i64),
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Stamp {
        Stamp { len: meta.len(), changed: (meta.ctime(), meta.ctime_nsec()) }
    }
}

impl Watched {
    fn committed(&self) -> u64 {
        self.offset - self.pipeline.pending()
    }
}

/// Whether a file not seen at its path still exists there out of sight: not deleted, and its
/// directory missing or unreadable or the file still at its path (a glob that cannot list it),
/// rather than a directory that lists without it or another file at its path.
fn hidden(w: &Watched) -> bool {
    if w.file.metadata().map_or(true, |m| m.nlink() == 0) {
        return false;
    }
    let presence = super::positions::presence(
        &w.path,
        w.identity.dev,
        w.identity.ino,
        &mut std::collections::HashMap::new(),
    );
    presence != super::positions::Presence::Gone
}

/// Where a tailer hands the records it reads. Any `FnMut(&str)` is one.
pub trait Records {
    fn record(&mut self, record: &str, meta: Meta);

    /// Called before the tailer reads or looks at files, which may block: a receiver that holds
    /// a lock others wait for lets go of it here.
    fn before_io(&mut self) {}
}

impl<F: FnMut(&str)> Records for F {
    fn record(&mut self, record: &str, _: Meta) {
        self(record)
    }
}

/// A receiver of a file's records, each with the file's Kubernetes names.
fn of_file<'a>(pod: &'a Option<PodPath>, out: &'a mut impl Records) -> impl FnMut(&str, Meta) + 'a {
    move |record, meta| out.record(record, Meta { pod: pod.as_ref(), ..meta })
}

/// A file that will not grow again: its last line counts even without a newline.
fn finish(w: &mut Watched, out: &mut impl Records) {
    w.pipeline.finish(&mut of_file(&w.pod, out));
}

/// Which compression a file's first bytes announce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    Gzip,
    Zstd,
}

impl Compression {
    fn of(file: &File) -> Option<Compression> {
        let mut magic = [0u8; 4];
        let n = file.read_at(&mut magic, 0).ok()?;
        match &magic[..n] {
            [0x1f, 0x8b, ..] => Some(Compression::Gzip),
            [0x28, 0xb5, 0x2f, 0xfd] => Some(Compression::Zstd),
            _ => None,
        }
    }

    fn decoder(self, file: File) -> std::io::Result<Box<dyn Read + Send>> {
        let file = std::io::BufReader::new(file);
        Ok(match self {
            // Several members (`cat a.gz b.gz`) read as one stream, as gunzip does.
            Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(file)),
            Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(file)?),
        })
    }
}

/// The order in which rotations of one log were written: for `access.log`, `access.log.2.gz`
/// (logrotate's numbers: higher is older), then `access.log.1`, then dated rotations
/// (`access.log-20260101`, kubelet's `0.log.20260101-000000`) oldest first, then `access.log`.
/// Paths sort by the log they rotate, then by that order.
pub fn rotation_order(path: &Path) -> (String, u8, std::cmp::Reverse<u64>, String) {
    let text = path.to_string_lossy();
    let plain = ["gz", "zst", "zstd"]
        .iter()
        .find_map(|ext| text.strip_suffix(&format!(".{ext}")))
        .unwrap_or(&text);
    if let Some((base, n)) = plain.rsplit_once('.') {
        if !n.is_empty() && n.len() <= 6 && n.bytes().all(|b| b.is_ascii_digit()) {
            let n = n.parse().unwrap_or(0);
            return (base.to_string(), 0, std::cmp::Reverse(n), String::new());
        }
    }
    let dated = |date: &str| {
        date.bytes().filter(u8::is_ascii_digit).count() >= 8
            && date.bytes().all(|b| b.is_ascii_digit() || b == b'-' || b == b'T')
    };
    // kubelet's `0.log.20260101-000000`, then logrotate's `dateext` `access.log-20260101`.
    for split in ['.', '-'] {
        if let Some((base, date)) = plain.rsplit_once(split).filter(|(_, d)| dated(d)) {
            return (base.to_string(), 1, std::cmp::Reverse(0), date.to_string());
        }
    }
    (plain.to_string(), 2, std::cmp::Reverse(0), String::new())
}

/// How far a poll looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Look<'a> {
    /// Scan the paths for new, renamed and deleted files, and read every file.
    Scan,
    /// Read every file followed (only writes happened since the last poll).
    Files,
    /// Read only the files write events named, by their paths.
    Written(&'a HashSet<PathBuf>),
}

pub struct Tailer {
    source: String,
    patterns: Vec<String>,
    files: Vec<Watched>,
    start_at: StartAt,
    max_line_bytes: usize,
    framing: Framing,
    container: Option<Container>,
    positions: Option<Arc<Positions>>,
    first_scan: bool,
    /// Read once to the end (replay, `--once`): compressed files are read too.
    once: bool,
    /// Compressed files a live glob matched, left alone (each said once).
    compressed: HashSet<PathBuf>,
    last_sweep: Option<Instant>,
    /// Paths that cannot be read, and why; each is warned about once.
    unreadable: BTreeMap<PathBuf, Unreadable>,
    /// Where files are read into; kept, as zeroing a fresh one per read costs more than the
    /// read at a thousand busy files.
    buffer: Vec<u8>,
    pub stats: TailStats,
}

impl Tailer {
    pub fn new(
        source: &str,
        patterns: Vec<String>,
        start_at: StartAt,
        max_line_bytes: usize,
        framing: Framing,
        positions: Option<Arc<Positions>>,
    ) -> Tailer {
        Tailer {
            source: source.to_string(),
            patterns,
            files: Vec::new(),
            start_at,
            max_line_bytes,
            framing,
            container: None,
            positions,
            first_scan: true,
            once: false,
            compressed: HashSet::new(),
            last_sweep: None,
            unreadable: BTreeMap::new(),
            buffer: Vec::new(),
            stats: TailStats::default(),
        }
    }

    /// Reads the files as wrapped by a container runtime.
    pub fn with_container(mut self, container: Option<Container>) -> Tailer {
        self.container = container;
        self
    }

    /// Bytes not read yet, as of each file's last look (a file no event named is as it was).
    fn lag_bytes(&self) -> u64 {
        self.files
            .iter()
            .filter(|w| w.decoder.is_none())
            .map(|w| w.seen_len.saturating_sub(w.offset))
            .sum()
    }

    /// What happened since the last call, and what the tailer holds now.
    pub fn take_progress(&mut self) -> Progress {
        Progress {
            stats: std::mem::take(&mut self.stats),
            lag_bytes: self.lag_bytes(),
            files: self.files.len(),
            unreadable: Unreadable::ALL
                .map(|r| self.unreadable.values().filter(|u| **u == r).count()),
        }
    }

    /// Scans the paths, reads what is new and hands each complete record to `out`.
    /// `idle_flush`: emit a pending multiline record once its file has been quiet this long.
    pub fn poll(&mut self, idle_flush: Duration, out: &mut impl Records) {
        self.poll_with(idle_flush, Look::Scan, out)
    }

    /// As `poll`, looking only as far as `look` says.
    pub fn poll_with(&mut self, idle_flush: Duration, look: Look, out: &mut impl Records) {
        out.before_io();
        if look == Look::Scan {
            self.scan();
        }
        let now = Instant::now();
        for w in self.files.iter_mut() {
            w.hidden_since = match (w.at_path, w.hidden_since) {
                (true, _) => None,
                (false, since) if hidden(w) => Some(since.unwrap_or(now)),
                (false, _) => None,
            };
        }
        self.sweep(now);
        // Rotated-away files first, so records keep their order.
        self.files.sort_by_key(|w| w.at_path);
        let named = match look {
            Look::Written(paths) => Some((paths, self.named_elsewise(paths))),
            _ => None,
        };
        let retention = self.positions.as_ref().map(|p| p.retention());
        let mut index = 0;
        while index < self.files.len() {
            let w = &self.files[index];
            // A file rotated away is read at every poll: events may no longer name it (deleted,
            // moved out of the watched directory), and it is let go once quiet.
            let unwritten = named.as_ref().is_some_and(|(paths, ids)| {
                w.at_path
                    && !paths.contains(&w.path)
                    && !ids.contains(&(w.identity.dev, w.identity.ino))
            });
            let read = if unwritten { 0 } else { self.read_file(index, out) };
            if self.files[index].compressed {
                let w = self.files.remove(index);
                self.note_compressed(w.path);
                continue;
            }
            let w = &mut self.files[index];
            if read > 0 {
                w.last_growth = now;
            }
            let quiet = now.duration_since(w.last_growth);
            if quiet >= idle_flush {
                w.pipeline.flush(&mut of_file(&w.pod, out));
            }
            match w.hidden_since {
                // Hidden for longer than positions are kept: let the handle go, unfinished.
                Some(since) if retention.is_some_and(|r| now.duration_since(since) >= r) => {
                    self.files.remove(index);
                    continue;
                }
                Some(_) => {}
                None if !w.at_path && quiet >= DRAIN_GRACE => {
                    finish(w, out);
                    let gone = self.files.remove(index);
                    if let Some(p) = &self.positions {
                        p.forget(&self.source, &gone.identity);
                    }
                    continue;
                }
                None => {}
            }
            index += 1;
        }
    }

    /// The (device, inode) of written files named by another path than the one they are
    /// followed at (`./access.log` for `access.log`, a link): looked up, which the usual case
    /// spares.
    fn named_elsewise(&self, paths: &HashSet<PathBuf>) -> HashSet<(u64, u64)> {
        let followed = self.files.iter().filter(|w| w.at_path && paths.contains(&w.path)).count();
        if followed == paths.len() {
            return HashSet::new();
        }
        let at_paths: HashSet<&Path> =
            self.files.iter().filter(|w| w.at_path).map(|w| w.path.as_path()).collect();
        paths
            .iter()
            .filter(|p| !at_paths.contains(p.as_path()))
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| (m.dev(), m.ino()))
            .collect()
    }

    /// Every few seconds, has the positions table look at entries of files not followed.
    fn sweep(&mut self, now: Instant) {
        let Some(positions) = &self.positions else { return };
        if self.last_sweep.is_some_and(|at| now.duration_since(at) < DRAIN_GRACE) {
            return;
        }
        self.last_sweep = Some(now);
        let followed: HashSet<(u64, u64)> =
            self.files.iter().map(|w| (w.identity.dev, w.identity.ino)).collect();
        positions.sweep(&self.source, &followed);
    }

    /// Reads every file to its end once and emits what is pending (replay and `--once`).
    pub fn read_to_end(&mut self, out: &mut impl Records) {
        self.start_at = StartAt::Beginning;
        self.once = true;
        self.scan();
        for index in 0..self.files.len() {
            while self.read_file(index, out) > 0 {}
            finish(&mut self.files[index], out);
        }
    }

    fn scan(&mut self) {
        for w in &mut self.files {
            w.at_path = false;
        }
        let mut problems = BTreeMap::new();
        let mut paths = Vec::new();
        for pattern in &self.patterns {
            if pattern.contains(['*', '?', '[']) {
                // Validated when the configuration is compiled.
                for found in glob::glob(pattern).into_iter().flatten() {
                    match found {
                        Ok(path) => paths.push(path),
                        Err(e) => {
                            problems.insert(e.path().to_path_buf(), Unreadable::of(e.error()));
                        }
                    }
                }
            } else {
                paths.push(PathBuf::from(pattern));
            }
        }
        paths.sort_by_cached_key(|p| rotation_order(p));
        paths.dedup();
        // Compressed files that went (deleted by logrotate) are forgotten.
        if !self.compressed.is_empty() {
            let listed: HashSet<&Path> = paths.iter().map(PathBuf::as_path).collect();
            self.compressed.retain(|p| listed.contains(p.as_path()));
        }
        // The files followed by identity, and (once a file is new) the paths they were at: a
        // scan of ten thousand files must not compare each with all.
        let mut by_identity: std::collections::HashMap<(u64, u64), usize> = self
            .files
            .iter()
            .enumerate()
            .map(|(i, w)| ((w.identity.dev, w.identity.ino), i))
            .collect();
        let mut known_paths: Option<HashSet<PathBuf>> = None;
        for path in paths {
            let meta = match std::fs::metadata(&path) {
                Ok(meta) if meta.is_file() => meta,
                Ok(_) => {
                    problems.insert(path, Unreadable::NotAFile);
                    continue;
                }
                Err(e) => {
                    problems.insert(path, Unreadable::of(&e));
                    continue;
                }
            };
            let (dev, ino) = (meta.dev(), meta.ino());
            if let Some(&i) = by_identity.get(&(dev, ino)) {
                let w = &mut self.files[i];
                w.path = path;
                w.at_path = true;
                w.scanned = Some(Stamp::of(&meta));
                continue;
            }
            if self.compressed.contains(&path) {
                continue;
            }
            match self.open(&path, meta.len()) {
                Ok(None) => self.note_compressed(path),
                Ok(Some(w)) => {
                    let files = &self.files;
                    let known = known_paths
                        .get_or_insert_with(|| files.iter().map(|w| w.path.clone()).collect());
                    if known.contains(&path) {
                        self.stats.rotations += 1;
                    }
                    by_identity.insert((dev, ino), self.files.len());
                    self.files.push(w);
                }
                Err(reason) => {
                    problems.insert(path, reason);
                }
            }
        }
        self.first_scan = false;
        self.note_unreadable(problems);
    }

    /// Leaves a compressed file alone from now on, and says so once.
    fn note_compressed(&mut self, path: PathBuf) {
        tracing::debug!(
            source = %self.source,
            "{} is compressed: old content, not followed",
            path.display()
        );
        self.compressed.insert(path);
    }

    /// Warns once about each path that became unreadable, and says when it is readable again.
    fn note_unreadable(&mut self, now: BTreeMap<PathBuf, Unreadable>) {
        for (path, reason) in &now {
            if self.unreadable.get(path) != Some(reason) {
                tracing::warn!(
                    source = %self.source,
                    "cannot read {}: {}",
                    path.display(),
                    reason.as_str()
                );
            }
        }
        for path in self.unreadable.keys().filter(|p| !now.contains_key(*p)) {
            tracing::info!(source = %self.source, "{} can be read now", path.display());
        }
        self.unreadable = now;
    }

    /// Opens a file to follow; none for a compressed file followed live.
    fn open(&mut self, path: &Path, len: u64) -> Result<Option<Watched>, Unreadable> {
        // Non-blocking, so a path swapped for a FIFO after the check above cannot hang the
        // source; only a regular file is kept.
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map_err(|e| Unreadable::of(&e))?;
        let meta = file.metadata().map_err(|e| Unreadable::of(&e))?;
        if !meta.is_file() {
            return Err(Unreadable::NotAFile);
        }
        let pipeline = Pipeline::new(self.max_line_bytes, self.container, self.framing.clone());
        let pod = self.container.and_then(|_| PodPath::of(path));
        let compression = Compression::of(&file);
        if let Some(compression) = compression {
            if !self.once {
                return Ok(None);
            }
            let identity =
                Identity { dev: meta.dev(), ino: meta.ino(), fingerprint: 0, fingerprint_len: 0 };
            let decoder = compression.decoder(file.try_clone().map_err(|e| Unreadable::of(&e))?);
            return Ok(Some(Watched {
                path: path.to_path_buf(),
                file,
                identity,
                offset: 0,
                seen_len: 0,
                read_through: None,
                scanned: None,
                pipeline,
                decoder: Some(decoder.map_err(|e| Unreadable::of(&e))?),
                pod,
                compressed: false,
                at_path: true,
                last_growth: Instant::now(),
                hidden_since: None,
            }));
        }
        let mut identity =
            Identity { dev: meta.dev(), ino: meta.ino(), fingerprint: 0, fingerprint_len: 0 };
        identity.fingerprint_from(&mut file);
        let saved =
            self.positions.as_ref().and_then(|p| p.lookup(&self.source, &identity, &mut file));
        let ran_before = self.positions.as_ref().is_some_and(|p| p.knows(&self.source));
        let offset = match saved {
            Some(offset) if offset <= len => offset,
            Some(_) => 0,
            // Only files there when the source first starts are skipped to their end; files
            // that appear while running, or since the last run, are new and read whole.
            None if self.first_scan && self.start_at == StartAt::End && !ran_before => len,
            None => 0,
        };
        Ok(Some(Watched {
            path: path.to_path_buf(),
            file,
            identity,
            offset,
            seen_len: len,
            read_through: None,
            scanned: None,
            pipeline,
            decoder: None,
            pod,
            compressed: false,
            at_path: true,
            last_growth: Instant::now(),
            hidden_since: None,
        }))
    }

    /// Reads new bytes of one file (up to a limit); returns how many.
    fn read_file(&mut self, index: usize, out: &mut impl Records) -> u64 {
        out.before_io();
        let stats = &mut self.stats;
        let w = &mut self.files[index];
        // The size and change time this read started from.
        let mut looked = None;
        if w.decoder.is_none() {
            let Some(stamp) =
                w.scanned.take().or_else(|| w.file.metadata().ok().map(|m| Stamp::of(&m)))
            else {
                stats.read_errors += 1;
                return 0;
            };
            w.seen_len = stamp.len;
            if stamp.len == w.offset && w.read_through == Some(stamp.changed) {
                return 0;
            }
            w.read_through = None;
            looked = Some(stamp);
            if w.offset == 0 && stamp.len > 0 && Compression::of(&w.file).is_some() {
                w.compressed = true;
                return 0;
            }
            if stamp.len < w.offset
                || (w.identity.fingerprint_len > 0 && !w.identity.same_start(&mut w.file))
            {
                stats.truncations += 1;
                w.offset = 0;
                w.pipeline.truncated(&mut of_file(&w.pod, out));
                w.identity.fingerprint_len = 0;
            }
        }
        if self.buffer.is_empty() {
            self.buffer = vec![0u8; READ_CHUNK];
        }
        let buffer = &mut self.buffer;
        let mut total = 0u64;
        let before = w.pipeline.stats();
        while total < MAX_READ_PER_POLL {
            out.before_io();
            let read = match &mut w.decoder {
                Some(decoder) => decoder.read(buffer),
                // At the offset, not the handle's position: no seek before each read.
                None => w.file.read_at(buffer, w.offset),
            };
            let n = match read {
                Ok(0) => break,
                Ok(n) => n,
                Err(_) => {
                    stats.read_errors += 1;
                    // A corrupt compressed stream yields nothing more.
                    w.decoder = w.decoder.take().map(|_| Box::new(std::io::empty()) as _);
                    break;
                }
            };
            total += n as u64;
            w.offset += n as u64;
            w.pipeline.push(&buffer[..n], &mut of_file(&w.pod, out));
            // A short read of a file is its end for now; the next poll reads what follows.
            if w.decoder.is_none() && n < buffer.len() {
                break;
            }
        }
        if w.decoder.is_none()
            && w.identity.fingerprint_len < super::positions::FINGERPRINT_BYTES as u32
            && total > 0
        {
            out.before_io();
            w.identity.fingerprint_from(&mut w.file);
        }
        if let Some(Stamp { changed, .. }) = looked.filter(|s| s.len == w.offset) {
            // Only once the file has been quiet a while: file times tick coarsely (a clock tick
            // of a few ms), so a change right after this read could bear the same time.
            let (secs, nanos) = (u64::try_from(changed.0), u32::try_from(changed.1));
            let at = secs.ok().zip(nanos.ok()).map(|(s, n)| UNIX_EPOCH + Duration::new(s, n));
            if at.is_some_and(|at| SystemTime::now().duration_since(at).is_ok_and(|q| q > QUIET)) {
                w.read_through = Some(changed);
            }
        }
        let after = w.pipeline.stats();
        stats.bytes += total;
        stats.lines += after.lines - before.lines;
        stats.cut_lines += after.cut_lines - before.cut_lines;
        stats.dropped_lines += after.dropped_lines - before.dropped_lines;
        stats.wrapper_errors += after.wrapper_errors - before.wrapper_errors;
        total
    }

    /// Whether a record or line is held back, waiting for more of its file or for quiet.
    pub fn holds_records(&self) -> bool {
        self.files.iter().any(|w| w.pipeline.pending() > 0)
    }

    /// Records each file's committed offset (up to the last record handed out) in the
    /// positions table, which its writer saves.
    pub fn record_positions(&self) {
        if let Some(p) = &self.positions {
            for w in &self.files {
                p.record(&self.source, &w.path, &w.identity, w.committed());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::rotation_order;
    use std::path::PathBuf;

    #[test]
    fn rotations_sort_oldest_first() {
        let mut paths: Vec<PathBuf> = [
            "a/access.log",
            "a/access.log.1",
            "a/access.log.10.gz",
            "a/access.log.2.zst",
            "k/0.log",
            "k/0.log.20260102-000000",
            "k/0.log.20260101-000000.gz",
            "d/app.log-20260102.gz",
            "d/app.log",
            "d/app.log-20260101",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        paths.sort_by_cached_key(|p| rotation_order(p));
        let order: Vec<&str> = paths.iter().map(|p| p.to_str().unwrap()).collect();
        assert_eq!(
            order,
            [
                "a/access.log.10.gz",
                "a/access.log.2.zst",
                "a/access.log.1",
                "a/access.log",
                "d/app.log-20260101",
                "d/app.log-20260102.gz",
                "d/app.log",
                "k/0.log.20260101-000000.gz",
                "k/0.log.20260102-000000",
                "k/0.log",
            ]
        );
    }
}
