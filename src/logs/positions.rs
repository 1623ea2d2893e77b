//! The positions file: where reading stopped in each file, so a restart resumes exactly there.
//!
//! A file is identified by device, inode and a fingerprint of its first bytes: a new file that
//! reuses an old inode has other first bytes and is read from its start.
//!
//! Entries of files a source no longer follows are swept: a file gone from a directory that
//! still lists is forgotten after a short grace; a file whose directory is missing or
//! unreadable may come back (a directory renamed away and back, Kubernetes pod directories), so
//! its entry is kept, marked with when it went missing, for `retention` (24 h by default).
//! Such dormant entries move to a second file, `<positions>.dormant`, rewritten only when that
//! set changes (at most once a minute, or when many went missing at once), so the saves made
//! several times a second stay as small as the set of live files.
//!
//! Saves come up to a hundred times a second under load. Each is numbered. The main file is
//! written to a temporary name, synced and renamed over the old one: at most once in
//! [`SYNC_INTERVAL`], and at a stop. The saves in between are written in place, in turn, to
//! two slot files, `<positions>.live-0` and `.live-1`, each headed by its number, the number of
//! the main file it follows and a checksum; they are never synced. A rename over a file makes
//! ext4 write the new data out at once, which cost more than the reading it recorded; a write in
//! place stays in the page cache. A restart reads the main file and takes the newer slot whose
//! checksum holds and that follows that very main file:
//! - after `kill -9`, the last save, or the one before it if the kill tore the last one (whose
//!   counts were not shown yet, as counts are shown only once their positions are saved);
//! - after a power loss, the newest save that reached the disk whole, at worst the main file
//!   synced less than a second before: the records of that last second may be counted again,
//!   none is skipped;
//! - a main file deleted or put back by hand is not overridden by slots that followed another.
//!
//! A file that cannot be parsed is moved aside (`<positions>.corrupt-<unix time>`) and lookout
//! starts as on a first run, rather than not at all.

use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

pub const FINGERPRINT_BYTES: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    pub dev: u64,
    pub ino: u64,
    /// FNV-1a of the first `fingerprint_len` bytes.
    pub fingerprint: u64,
    pub fingerprint_len: u32,
}

impl Identity {
    /// Fingerprints the file's first bytes (up to FINGERPRINT_BYTES, fewer while it is shorter).
    pub fn fingerprint_from(&mut self, file: &mut File) {
        let mut head = [0u8; FINGERPRINT_BYTES];
        let n = read_prefix(file, &mut head);
        self.fingerprint = fnv1a(&head[..n]);
        self.fingerprint_len = n as u32;
    }

    /// Whether the file still starts with the bytes that were fingerprinted.
    pub fn same_start(&self, file: &mut File) -> bool {
        hash_prefix(file, self.fingerprint_len as usize) == Some(self.fingerprint)
    }
}

fn read_prefix(file: &File, buf: &mut [u8]) -> usize {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], filled as u64) {
            Ok(0) | Err(_) => break,
            Ok(n) => filled += n,
        }
    }
    filled
}

fn hash_prefix(file: &File, len: usize) -> Option<u64> {
    let mut head = [0u8; FINGERPRINT_BYTES];
    let len = len.min(FINGERPRINT_BYTES);
    (read_prefix(file, &mut head[..len]) == len).then(|| fnv1a(&head[..len]))
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// How long an entry whose file is gone from a directory that lists fine is kept; also how long
/// a rotated-away file is still read after its last growth.
pub const GONE_GRACE: Duration = Duration::from_secs(5);
/// Entries whose directory is missing or unreadable are kept this long by default.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(24 * 3600);
/// Dormant entries are written to their own file at most this often…
const DORMANT_FLUSH_INTERVAL: Duration = Duration::from_secs(60);
/// …unless this many went dormant since the last time.
const DORMANT_FLUSH_BATCH: usize = 1024;
const FORMAT_VERSION: u32 = 2;
/// How long a save may stay in the page cache only, before it is synced to disk.
pub const SYNC_INTERVAL: Duration = Duration::from_secs(1);
/// A positions file larger than this is not one (a million files take about 200 MB).
const MAX_FILE_BYTES: u64 = 1 << 30;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    source: String,
    path: String,
    dev: u64,
    ino: u64,
    fingerprint: u64,
    fingerprint_len: u32,
    offset: u64,
    /// Unix seconds since the file's directory went missing or unreadable (version 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    missing_since: Option<u64>,
}

type Key = (String, u64, u64);

impl Entry {
    fn key(&self) -> Key {
        (self.source.clone(), self.dev, self.ino)
    }
}

#[derive(Serialize, Deserialize)]
struct FileFormat {
    version: u32,
    /// The number of the save (0 in files from before saves were numbered).
    #[serde(default)]
    seq: u64,
    files: Vec<Entry>,
}

/// The table at one moment, to be written: the main file's entries, and the dormant file's
/// when that is due.
pub struct Snapshot {
    main: Vec<Entry>,
    dormant: Option<Vec<Entry>>,
    /// Synced at once (the last save, at a stop).
    sync: bool,
}

#[derive(Default)]
struct Table {
    entries: HashMap<String, HashMap<(u64, u64), Entry>>,
    /// The main file is out of date.
    dirty: bool,
    /// Keys the dormant file on disk holds; the main file holds every other entry.
    in_dormant_file: HashSet<Key>,
    /// The set of dormant entries differs from the dormant file's.
    dormant_changed: bool,
    /// Entries that went dormant since the dormant file was written.
    newly_dormant: usize,
    last_dormant_flush: Option<Instant>,
    /// Entries whose file is gone from a directory that lists, and since when.
    gone_since: HashMap<Key, Instant>,
}

impl Table {
    fn get_mut(&mut self, key: &Key) -> Option<&mut Entry> {
        self.entries.get_mut(&key.0)?.get_mut(&(key.1, key.2))
    }

    fn remove(&mut self, key: &Key) -> Option<Entry> {
        let removed = self.entries.get_mut(&key.0)?.remove(&(key.1, key.2))?;
        self.dirty = true;
        self.gone_since.remove(key);
        if self.in_dormant_file.contains(key) {
            self.dormant_changed = true;
        }
        Some(removed)
    }

    /// The dormant file holds an entry that is live again: it must be written without it, or a
    /// restart would take its old offset from there.
    fn back_from_dormancy(&mut self, key: &Key) {
        if self.in_dormant_file.remove(key) {
            self.dormant_changed = true;
        }
    }

    fn all(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values().flat_map(|files| files.values())
    }
}

pub struct Positions {
    path: PathBuf,
    dormant_path: PathBuf,
    retention: Duration,
    /// Sources the file had entries for when it was loaded: they have run here before.
    known_sources: HashSet<String>,
    table: Mutex<Table>,
    /// One write at a time.
    writing: Mutex<Durability>,
    /// Why the files could not be read when they were opened.
    load_problem: Option<String>,
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Reads one positions file; `Ok(None)` when it does not exist.
fn read_file(path: &Path) -> Result<Option<FileFormat>, String> {
    match crate::files::read(path, MAX_FILE_BYTES) {
        Ok(bytes) => serde_json::from_slice::<FileFormat>(&bytes)
            .map(Some)
            .map_err(|e| format!("not a positions file: {e}")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// What the first line of a slot file starts with.
const SLOT_MAGIC: &str = "lookout-positions-slot";

/// The slot files' paths.
fn slot_paths(path: &Path) -> [PathBuf; 2] {
    [0, 1].map(|i| PathBuf::from(format!("{}.live-{i}", path.display())))
}

/// A save written to a slot file.
struct Slot {
    seq: u64,
    /// The number of the main file it follows.
    base: u64,
    /// `None` when the save is torn (its checksum does not hold) or does not parse.
    files: Option<Vec<Entry>>,
}

/// The bytes of a slot file: a header line, then the main file's own format.
fn slot_bytes(seq: u64, base: u64, body: &[u8]) -> Vec<u8> {
    let header = format!(
        "{SLOT_MAGIC} seq={seq} base={base} bytes={} crc32={:08x}\n",
        body.len(),
        crc32fast::hash(body)
    );
    let mut bytes = Vec::with_capacity(header.len() + body.len());
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(body);
    bytes
}

/// Reads a slot file; `None` when it is missing or its header cannot be read.
fn read_slot(path: &Path) -> Option<Slot> {
    let bytes = crate::files::read(path, MAX_FILE_BYTES).ok()?;
    let newline = memchr::memchr(b'\n', &bytes)?;
    let header = std::str::from_utf8(&bytes[..newline]).ok()?;
    let mut words = header.split(' ');
    if words.next() != Some(SLOT_MAGIC) {
        return None;
    }
    let mut field = |name: &str| words.next()?.strip_prefix(name)?.strip_prefix('=');
    let seq = field("seq")?.parse().ok()?;
    let base = field("base")?.parse().ok()?;
    let len: usize = field("bytes")?.parse().ok()?;
    let crc = u32::from_str_radix(field("crc32")?, 16).ok()?;
    // A slot that shrank keeps the old tail until it is truncated: read what the header says.
    let files = bytes
        .get(newline + 1..)
        .and_then(|rest| rest.get(..len))
        .filter(|body| crc32fast::hash(body) == crc)
        .and_then(|body| serde_json::from_slice::<FileFormat>(body).ok())
        .map(|f| f.files);
    Some(Slot { seq, base, files })
}

/// Moves a file that cannot be read or parsed aside, so the next save does not destroy it.
fn move_aside(path: &Path) -> String {
    let aside = PathBuf::from(format!("{}.corrupt-{}", path.display(), unix_now()));
    match std::fs::rename(path, &aside) {
        Ok(()) => format!("moved to {}", aside.display()),
        Err(e) => format!("could not be moved aside: {e}"),
    }
}

/// The text of a positions file holding `entries`, as save number `seq`.
fn encode(seq: u64, entries: &[Entry]) -> std::io::Result<Vec<u8>> {
    // One entry a line: small, and still readable by a person.
    let mut text =
        format!("{{\"version\":{FORMAT_VERSION},\"seq\":{seq},\"files\":[\n").into_bytes();
    for (i, entry) in entries.iter().enumerate() {
        if i > 0 {
            text.extend_from_slice(b",\n");
        }
        serde_json::to_writer(&mut text, entry)?;
    }
    text.extend_from_slice(b"\n]}\n");
    Ok(text)
}

/// Writes `text` to `path` through a temporary file renamed over it; `sync`: the data before the
/// rename, and the directory after it.
fn replace_file(path: &Path, text: &[u8], sync: bool) -> std::io::Result<()> {
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    let file = File::create(&tmp)?;
    std::io::Write::write_all(&mut &file, text)?;
    if sync {
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if sync {
        sync_dir(path)?;
    }
    Ok(())
}

fn sync_dir(path: &Path) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    File::open(dir)?.sync_all()
}

/// Makes a file renamed into place durable: its data, and its name in its directory. Opened
/// without blocking, and its data synced only if it is a regular file: a FIFO or device put at
/// the path must not hold the writer up.
fn sync_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path)?;
    if file.metadata()?.is_file() {
        file.sync_all()?;
    }
    sync_dir(path)
}

/// The two slot files, written in place.
struct Slots {
    files: [File; 2],
    /// Their lengths, so a shorter save truncates the old tail away.
    lens: [u64; 2],
}

impl Slots {
    /// Opens (creates) the slot files; `None` if they are not regular files or cannot be opened:
    /// then every save renames the main file.
    fn open(path: &Path) -> Option<Slots> {
        use std::os::unix::fs::OpenOptionsExt;
        let open = |path: &PathBuf| {
            // Non-blocking and not through a symlink: a FIFO or a link put there is not used.
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
                .open(path);
            match file.and_then(|f| f.metadata().map(|m| (f, m))) {
                Ok((file, meta)) if meta.is_file() => Some((file, meta.len())),
                Ok(_) => {
                    tracing::warn!(
                        "{} is not a regular file: positions saved by renames only",
                        path.display()
                    );
                    None
                }
                Err(e) => {
                    tracing::warn!("{}: {e}: positions saved by renames only", path.display());
                    None
                }
            }
        };
        let [a, b] = slot_paths(path);
        let ((a, a_len), (b, b_len)) = (open(&a)?, open(&b)?);
        Some(Slots { files: [a, b], lens: [a_len, b_len] })
    }

    /// Writes save `seq`, which follows main file `base`, over the older of the two slots.
    fn write(&mut self, seq: u64, base: u64, body: &[u8]) -> std::io::Result<()> {
        let slot = (seq % 2) as usize;
        let bytes = slot_bytes(seq, base, body);
        self.files[slot].write_all_at(&bytes, 0)?;
        let len = bytes.len() as u64;
        if self.lens[slot] > len {
            // Not to zero: ext4 writes a file truncated to zero out at its close.
            self.files[slot].set_len(len)?;
        }
        self.lens[slot] = len;
        Ok(())
    }
}

/// Which save is where, and which is on disk for good.
struct Durability {
    /// The number of the last save.
    seq: u64,
    /// The number of the main file on disk, if known: slots name it as the one they follow.
    main_seq: Option<u64>,
    /// The last save, with its number, when it is in a slot only.
    pending: Option<(u64, Vec<u8>)>,
    /// The main file was renamed into place and not synced yet.
    unsynced: bool,
    last_sync: Instant,
    /// Opened at the first save that uses them; `Some(None)`: they cannot be used.
    slots: Option<Option<Slots>>,
}

/// Where a file stands, from what the file system shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// At its path.
    There,
    /// Not at its path, in a directory that lists: gone for good.
    Gone,
    /// Its directory is missing or unreadable, or its path cannot be looked at: it may be
    /// there out of sight, or come back.
    Unknown,
}

/// Where the file `dev`/`ino` recorded at `path` stands. `listable` caches, per directory,
/// whether it lists, so many entries in directories that are gone cost one look per directory.
pub fn presence(
    path: &Path,
    dev: u64,
    ino: u64,
    listable: &mut HashMap<PathBuf, bool>,
) -> Presence {
    let parent = path.parent().unwrap_or(Path::new("/")).to_path_buf();
    if !*listable.entry(parent).or_insert_with_key(|dir| std::fs::read_dir(dir).is_ok()) {
        return Presence::Unknown;
    }
    match std::fs::metadata(path) {
        Ok(meta) if meta.dev() == dev && meta.ino() == ino => Presence::There,
        Ok(_) => Presence::Gone,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Presence::Gone,
        Err(_) => Presence::Unknown,
    }
}

impl Positions {
    /// Opens the positions file; a missing file is an empty one (lookout has not run here
    /// before). A file that cannot be read or parsed is reported by [`Positions::load_problem`],
    /// and lookout goes on as on a first run.
    pub fn open(path: &Path, retention: Duration) -> Positions {
        let dormant_path = PathBuf::from(format!("{}.dormant", path.display()));
        let mut problems = Vec::new();
        let mut read = |file: &Path| match read_file(file) {
            Ok(read) => read,
            Err(e) => {
                // Kept for a person to look at, rather than overwritten by the next save.
                problems.push(format!("{}: {e}, {}", file.display(), move_aside(file)));
                None
            }
        };
        let main = read(path);
        let dormant = read(&dormant_path).map(|f| f.files).unwrap_or_default();
        let main_seq = main.as_ref().map(|f| f.seq);
        let slots: Vec<Slot> = slot_paths(path).iter().filter_map(|p| read_slot(p)).collect();
        // Numbers go on from the highest seen, so slots left by a main file since deleted never
        // follow the next one.
        let seq = slots.iter().map(|s| s.seq).chain(main_seq).max().unwrap_or(0);
        let newer = slots
            .into_iter()
            .filter(|s| Some(s.base) == main_seq && s.seq > s.base)
            .filter_map(|s| Some((s.seq, s.files?)))
            .max_by_key(|(seq, _)| *seq);
        let from_slot = newer.is_some();
        let main = match newer {
            Some((_, files)) => files,
            None => main.map(|f| f.files).unwrap_or_default(),
        };
        let mut table = Table { dirty: from_slot, ..Table::default() };
        let in_main: HashSet<Key> = main.iter().map(Entry::key).collect();
        for entry in dormant {
            if !in_main.contains(&entry.key()) {
                table.in_dormant_file.insert(entry.key());
                table
                    .entries
                    .entry(entry.source.clone())
                    .or_default()
                    .insert((entry.dev, entry.ino), entry);
            }
        }
        for entry in main {
            table
                .entries
                .entry(entry.source.clone())
                .or_default()
                .insert((entry.dev, entry.ino), entry);
        }
        let known_sources = table
            .entries
            .iter()
            .filter(|(_, files)| !files.is_empty())
            .map(|(s, _)| s.clone())
            .collect();
        Positions {
            path: path.to_path_buf(),
            dormant_path,
            retention,
            known_sources,
            table: Mutex::new(table),
            writing: Mutex::new(Durability {
                seq,
                main_seq,
                pending: None,
                unsynced: false,
                last_sync: Instant::now(),
                slots: None,
            }),
            load_problem: (!problems.is_empty()).then(|| problems.join("; ")),
        }
    }

    /// How long entries of files whose directory is missing or unreadable are kept.
    pub fn retention(&self) -> Duration {
        self.retention
    }

    /// Why the positions could not be read at start, if they could not.
    pub fn load_problem(&self) -> Option<&str> {
        self.load_problem.as_deref()
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().expect("positions lock")
    }

    /// Whether this source had saved positions when lookout started: it has run here before.
    pub fn knows(&self, source: &str) -> bool {
        self.known_sources.contains(source)
    }

    /// The saved offset of this file, if it is the same file (inode and first bytes).
    pub fn lookup(&self, source: &str, identity: &Identity, file: &mut File) -> Option<u64> {
        let (len, fingerprint, offset) = {
            let table = self.table();
            let entry = table.entries.get(source)?.get(&(identity.dev, identity.ino))?;
            (entry.fingerprint_len as usize, entry.fingerprint, entry.offset)
        };
        // The file is read without the table locked: a slow disk holds up this source only.
        (hash_prefix(file, len) == Some(fingerprint)).then_some(offset)
    }

    pub fn record(&self, source: &str, path: &Path, identity: &Identity, offset: u64) {
        let mut table = self.table();
        // A followed file is not gone; the map is empty but while files are going away.
        if !table.gone_since.is_empty() {
            table.gone_since.remove(&(source.to_string(), identity.dev, identity.ino));
        }
        // Most files did not move since the last poll: found without building a key.
        let entry = table.entries.get(source).and_then(|f| f.get(&(identity.dev, identity.ino)));
        if entry.is_some_and(|e| {
            e.offset == offset && e.fingerprint == identity.fingerprint && e.missing_since.is_none()
        }) {
            return;
        }
        let key = (source.to_string(), identity.dev, identity.ino);
        let entry = Entry {
            source: source.to_string(),
            path: path.display().to_string(),
            dev: identity.dev,
            ino: identity.ino,
            fingerprint: identity.fingerprint,
            fingerprint_len: identity.fingerprint_len,
            offset,
            missing_since: None,
        };
        // A file back from dormancy belongs to the main file again.
        table.back_from_dormancy(&key);
        table.entries.entry(key.0).or_default().insert((key.1, key.2), entry);
        table.dirty = true;
    }

    pub fn forget(&self, source: &str, identity: &Identity) {
        self.table().remove(&(source.to_string(), identity.dev, identity.ino));
    }

    /// Looks at the entries of `source` whose files it does not follow (`followed`: device and
    /// inode of those it does): forgets those gone for good and those missing for longer than
    /// the retention, marks those that went missing. The file system is looked at without the
    /// table locked.
    pub fn sweep(&self, source: &str, followed: &HashSet<(u64, u64)>) {
        let candidates: Vec<(Key, PathBuf)> = match self.table().entries.get(source) {
            Some(files) => files
                .values()
                .filter(|e| !followed.contains(&(e.dev, e.ino)))
                .map(|e| (e.key(), PathBuf::from(&e.path)))
                .collect(),
            None => return,
        };
        let mut listable = HashMap::new();
        let found: Vec<(Key, Presence)> = candidates
            .into_iter()
            .map(|(key, path)| {
                let presence = presence(&path, key.1, key.2, &mut listable);
                (key, presence)
            })
            .collect();
        let (now, now_unix) = (Instant::now(), unix_now());
        let mut table = self.table();
        for (key, presence) in found {
            match presence {
                Presence::There => {
                    table.gone_since.remove(&key);
                    if let Some(entry) = table.get_mut(&key).filter(|e| e.missing_since.is_some()) {
                        entry.missing_since = None;
                        table.back_from_dormancy(&key);
                        table.dirty = true;
                    }
                }
                Presence::Gone => {
                    let since = *table.gone_since.entry(key.clone()).or_insert(now);
                    if now.duration_since(since) >= GONE_GRACE {
                        table.remove(&key);
                    }
                }
                Presence::Unknown => {
                    table.gone_since.remove(&key);
                    let Some(entry) = table.get_mut(&key) else { continue };
                    match entry.missing_since {
                        None => {
                            entry.missing_since = Some(now_unix);
                            table.dirty = true;
                            table.dormant_changed = true;
                            table.newly_dormant += 1;
                        }
                        Some(since)
                            if now_unix.saturating_sub(since) >= self.retention.as_secs() =>
                        {
                            table.remove(&key);
                        }
                        Some(_) => {}
                    }
                }
            }
        }
    }

    /// Entries of sources no longer configured become dormant, and go after the retention: a
    /// source renamed back soon resumes, one removed for good does not weigh on every save.
    pub fn keep_sources(&self, configured: &HashSet<&str>) {
        let now_unix = unix_now();
        let mut table = self.table();
        let mut expired = Vec::new();
        let mut newly = 0;
        for (source, files) in table.entries.iter_mut() {
            if configured.contains(source.as_str()) {
                continue;
            }
            for entry in files.values_mut() {
                match entry.missing_since {
                    None => {
                        entry.missing_since = Some(now_unix);
                        newly += 1;
                    }
                    Some(since) if now_unix.saturating_sub(since) >= self.retention.as_secs() => {
                        expired.push(entry.key())
                    }
                    Some(_) => {}
                }
            }
        }
        if newly > 0 {
            table.dirty = true;
            table.dormant_changed = true;
            table.newly_dormant += newly;
        }
        for key in expired {
            table.remove(&key);
        }
    }

    /// Writes everything that changed, the dormant file included, and syncs it (at a stop).
    pub fn save(&self) -> std::io::Result<()> {
        match self.snapshot(true) {
            Some(snapshot) => self.write(snapshot),
            None => self.settle(true),
        }
    }

    /// The table as it is now, if it changed since the last snapshot; with the dormant entries
    /// when `flush_dormant` or when their file is due.
    pub fn snapshot(&self, flush_dormant: bool) -> Option<Snapshot> {
        let mut table = self.table();
        let due = table.dormant_changed
            && (flush_dormant
                || table.newly_dormant >= DORMANT_FLUSH_BATCH
                || table.last_dormant_flush.is_none_or(|t| t.elapsed() >= DORMANT_FLUSH_INTERVAL));
        if !table.dirty && !due {
            return None;
        }
        table.dirty = false;
        let sorted = |mut entries: Vec<Entry>| {
            entries.sort_by(|a, b| (&a.source, &a.path).cmp(&(&b.source, &b.path)));
            entries
        };
        if due {
            table.dormant_changed = false;
            table.newly_dormant = 0;
            table.last_dormant_flush = Some(Instant::now());
            let (dormant, main): (Vec<Entry>, Vec<Entry>) =
                table.all().cloned().partition(|e| e.missing_since.is_some());
            table.in_dormant_file = dormant.iter().map(Entry::key).collect();
            Some(Snapshot {
                main: sorted(main),
                dormant: Some(sorted(dormant)),
                sync: flush_dormant,
            })
        } else {
            let main = table.all().filter(|e| !table.in_dormant_file.contains(&e.key())).cloned();
            Some(Snapshot { main: sorted(main.collect()), dormant: None, sync: flush_dormant })
        }
    }

    /// Writes a snapshot: the dormant file first, so no entry is ever in neither file. The
    /// dormant file, written rarely, is synced each time; the main file at most once in
    /// [`SYNC_INTERVAL`] (see [`Positions::settle`]), the slots in between.
    pub fn write(&self, snapshot: Snapshot) -> std::io::Result<()> {
        let mut durability = self.writing.lock().expect("positions write lock");
        let durability = &mut *durability;
        durability.seq += 1;
        let seq = durability.seq;
        let result = match &snapshot.dormant {
            Some(dormant) => {
                encode(seq, dormant).and_then(|text| replace_file(&self.dormant_path, &text, true))
            }
            None => Ok(()),
        }
        .and_then(|()| encode(seq, &snapshot.main))
        .and_then(|text| self.write_main(durability, seq, text, snapshot.sync));
        if result.is_err() {
            let mut table = self.table();
            table.dirty = true;
            if snapshot.dormant.is_some() {
                // Not known to be on disk: write every entry to the main file until it is.
                table.in_dormant_file.clear();
                table.dormant_changed = true;
            }
            return result;
        }
        self.sync_if_due(durability, snapshot.sync)
    }

    /// Writes save `seq` to a slot, or renames it into place as the main file: when it is to be
    /// synced now, when there is no main file yet for a slot to follow, or when the slots
    /// cannot be used.
    fn write_main(
        &self,
        durability: &mut Durability,
        seq: u64,
        text: Vec<u8>,
        sync: bool,
    ) -> std::io::Result<()> {
        if let (false, Some(base)) = (sync, durability.main_seq) {
            if let Some(slots) = durability.slots.get_or_insert_with(|| Slots::open(&self.path)) {
                slots.write(seq, base, &text)?;
                durability.pending = Some((seq, text));
                return Ok(());
            }
        }
        self.rename_main(durability, seq, &text, sync)
    }

    /// Renames save `seq` into place as the main file; `sync`: made durable too.
    fn rename_main(
        &self,
        durability: &mut Durability,
        seq: u64,
        text: &[u8],
        sync: bool,
    ) -> std::io::Result<()> {
        replace_file(&self.path, text, sync)?;
        durability.main_seq = Some(seq);
        durability.pending = None;
        durability.unsynced = !sync;
        if sync {
            durability.last_sync = Instant::now();
        }
        Ok(())
    }

    /// Makes the last save durable once it is due (or at once with `now`).
    pub fn settle(&self, now: bool) -> std::io::Result<()> {
        let mut durability = self.writing.lock().expect("positions write lock");
        self.sync_if_due(&mut durability, now)
    }

    /// Makes the last save durable if it has waited [`SYNC_INTERVAL`] (or at once with `now`):
    /// a save in a slot becomes the main file, synced; a main file renamed unsynced is synced.
    fn sync_if_due(&self, durability: &mut Durability, now: bool) -> std::io::Result<()> {
        let waiting = durability.unsynced || durability.pending.is_some();
        if !waiting || !(now || durability.last_sync.elapsed() >= SYNC_INTERVAL) {
            return Ok(());
        }
        if let Some((seq, text)) = durability.pending.take() {
            let renamed = self.rename_main(durability, seq, &text, true);
            if renamed.is_err() {
                durability.pending = Some((seq, text));
            }
            return renamed;
        }
        sync_file(&self.path)?;
        durability.unsynced = false;
        durability.last_sync = Instant::now();
        Ok(())
    }
}
