//! The positions file: where reading stopped in each file, so a restart resumes exactly there.
//!
//! A file is identified by device, inode and a fingerprint of its first bytes: a new file that
//! reuses an old inode has other first bytes and is read from its start. The file is written
//! to a temporary name and renamed over the old one, so a crash never leaves half of it.

use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

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

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    source: String,
    path: String,
    dev: u64,
    ino: u64,
    fingerprint: u64,
    fingerprint_len: u32,
    offset: u64,
}

/// The table at one moment, to be written.
pub struct Snapshot(Vec<Entry>);

#[derive(Serialize, Deserialize)]
struct FileFormat {
    version: u32,
    files: Vec<Entry>,
}

pub struct Positions {
    path: PathBuf,
    /// Sources the file had entries for when it was loaded: they have run here before.
    known_sources: HashSet<String>,
    entries: Mutex<HashMap<(String, u64, u64), Entry>>,
    dirty: AtomicBool,
    /// One writer at a time: every source's thread saves.
    writing: Mutex<()>,
}

impl Positions {
    /// Loads the file; a missing file is an empty one (lookout has not run here before).
    pub fn load(path: &Path) -> Result<Positions, String> {
        let entries: HashMap<(String, u64, u64), Entry> = match std::fs::read(path) {
            Ok(bytes) => {
                let parsed: FileFormat = serde_json::from_slice(&bytes)
                    .map_err(|e| format!("{}: not a positions file: {e}", path.display()))?;
                parsed.files.into_iter().map(|e| ((e.source.clone(), e.dev, e.ino), e)).collect()
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashMap::new(),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let known_sources = entries.keys().map(|(source, _, _)| source.clone()).collect();
        Ok(Positions {
            path: path.to_path_buf(),
            known_sources,
            entries: Mutex::new(entries),
            dirty: AtomicBool::new(false),
            writing: Mutex::new(()),
        })
    }

    /// Whether this source had saved positions when lookout started: it has run here before.
    pub fn knows(&self, source: &str) -> bool {
        self.known_sources.contains(source)
    }

    /// The saved offset of this file, if it is the same file (inode and first bytes).
    pub fn lookup(&self, source: &str, identity: &Identity, file: &mut File) -> Option<u64> {
        let entries = self.entries.lock().expect("positions lock");
        let entry = entries.get(&(source.to_string(), identity.dev, identity.ino))?;
        (hash_prefix(file, entry.fingerprint_len as usize) == Some(entry.fingerprint))
            .then_some(entry.offset)
    }

    pub fn record(&self, source: &str, path: &Path, identity: &Identity, offset: u64) {
        let mut entries = self.entries.lock().expect("positions lock");
        let key = (source.to_string(), identity.dev, identity.ino);
        let changed = entries
            .get(&key)
            .is_none_or(|e| e.offset != offset || e.fingerprint != identity.fingerprint);
        if changed {
            let entry = Entry {
                source: source.to_string(),
                path: path.display().to_string(),
                dev: identity.dev,
                ino: identity.ino,
                fingerprint: identity.fingerprint,
                fingerprint_len: identity.fingerprint_len,
                offset,
            };
            entries.insert(key, entry);
            self.dirty.store(true, Ordering::Release);
        }
    }

    pub fn forget(&self, source: &str, identity: &Identity) {
        if self
            .entries
            .lock()
            .expect("positions lock")
            .remove(&(source.to_string(), identity.dev, identity.ino))
            .is_some()
        {
            self.dirty.store(true, Ordering::Release);
        }
    }

    /// Writes the file if anything changed: to a temporary file, synced, then renamed over.
    pub fn save(&self) -> std::io::Result<()> {
        match self.snapshot() {
            Some(snapshot) => self.write(snapshot),
            None => Ok(()),
        }
    }

    /// The table as it is now, if it changed since the last snapshot.
    pub fn snapshot(&self) -> Option<Snapshot> {
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return None;
        }
        let mut files: Vec<Entry> =
            self.entries.lock().expect("positions lock").values().cloned().collect();
        files.sort_by(|a, b| (&a.source, &a.path).cmp(&(&b.source, &b.path)));
        Some(Snapshot(files))
    }

    /// Writes a copy of the table to the file.
    pub fn write(&self, Snapshot(files): Snapshot) -> std::io::Result<()> {
        let _writing = self.writing.lock().expect("positions write lock");
        let text = serde_json::to_vec_pretty(&FileFormat { version: 1, files })?;
        let tmp = self.path.with_extension("tmp");
        let result = (|| {
            let file = File::create(&tmp)?;
            std::io::Write::write_all(&mut &file, &text)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        })();
        if result.is_err() {
            self.dirty.store(true, Ordering::Release);
        }
        result
    }
}
