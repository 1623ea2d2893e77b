//! The tailer against a model: random sequences of writes, polls, rotations (rename + create,
//! copytruncate, delete + recreate) and restarts, checking that every line that can be read is
//! counted exactly once — as Vector's file source is tested. The tailer is also woken as inotify
//! wakes it: by write events alone (the create or rename event dropped, or still to come: events
//! out of order), and by a queue overflow, which asks for a full scan.

use lookout::config::log_rules::StartAt;
use lookout::logs::framing::Framing;
use lookout::logs::positions::{Positions, DEFAULT_RETENTION};
use lookout::logs::tailer::{Look, Tailer, Unreadable};
use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A small deterministic generator, so a failing seed can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

struct Harness {
    dir: PathBuf,
    live: PathBuf,
    positions_path: PathBuf,
    tailer: Tailer,
    positions: Arc<Positions>,
    seen: HashMap<String, u32>,
    next_line: u64,
    /// Lines in files the tailer has not read yet: (file generation, line)
    unread: Vec<(u64, String)>,
    /// Lines that cannot be read by design (copied away before a poll saw them).
    lost: Vec<String>,
    generation: u64,
    /// Generations of files the tailer has opened (it drains those after rotation).
    opened: Vec<u64>,
    rotated: u32,
}

fn new_tailer(live: &Path, positions: &Path) -> (Tailer, Arc<Positions>) {
    let positions = Arc::new(Positions::open(positions, DEFAULT_RETENTION));
    let tailer = Tailer::new(
        "model",
        vec![live.display().to_string()],
        StartAt::Beginning,
        4096,
        Framing::default(),
        Some(positions.clone()),
    );
    (tailer, positions)
}

impl Harness {
    fn new(dir: &Path) -> Harness {
        let live = dir.join("access.log");
        std::fs::write(&live, "").unwrap();
        let positions_path = dir.join("positions.json");
        let (tailer, positions) = new_tailer(&live, &positions_path);
        Harness {
            dir: dir.to_path_buf(),
            tailer,
            positions,
            live,
            positions_path,
            seen: HashMap::new(),
            next_line: 0,
            unread: Vec::new(),
            lost: Vec::new(),
            generation: 0,
            opened: Vec::new(),
            rotated: 0,
        }
    }

    fn write(&mut self, lines: u64) {
        let mut f = OpenOptions::new().append(true).create(true).open(&self.live).unwrap();
        for _ in 0..lines {
            let line = format!(
                "line-{:06} {}",
                self.next_line,
                "x".repeat((self.next_line % 50) as usize)
            );
            self.next_line += 1;
            writeln!(f, "{line}").unwrap();
            self.unread.push((self.generation, line));
        }
    }

    /// Polls as the tailer's thread does; `rescan`: as woken by a create, rename, delete or
    /// overflow, or for the safety-net scan, rather than by write events alone.
    fn poll_as(&mut self, rescan: bool) {
        let seen = &mut self.seen;
        // A zero idle flush: nothing is pending without multiline anyway.
        // Write events name the live path.
        let written: std::collections::HashSet<PathBuf> = [self.live.clone()].into();
        let look = if rescan { Look::Scan } else { Look::Written(&written) };
        self.tailer.poll_with(Duration::ZERO, look, &mut |record: &str| {
            *seen.entry(record.split(' ').next().unwrap().to_string()).or_default() += 1
        });
    }

    fn poll(&mut self) {
        self.poll_as(true);
        self.unread.clear();
        if !self.opened.contains(&self.generation) {
            self.opened.push(self.generation);
        }
    }

    /// A poll woken by write events only, without a scan: the files already open are read.
    fn poll_writes_only(&mut self) {
        self.poll_as(false);
        let opened = &self.opened;
        self.unread.retain(|(g, _)| !opened.contains(g));
    }

    /// The live file's unread lines are lost unless the tailer already has the file open.
    fn forget_unread_unless_open(&mut self) {
        let open = self.opened.contains(&self.generation);
        let gen = self.generation;
        if !open {
            let lost: Vec<String> =
                self.unread.iter().filter(|(g, _)| *g == gen).map(|(_, l)| l.clone()).collect();
            self.lost.extend(lost);
            self.unread.retain(|(g, _)| *g != gen);
        }
    }

    fn rename_and_create(&mut self) {
        self.forget_unread_unless_open();
        self.rotated += 1;
        std::fs::rename(&self.live, self.dir.join(format!("access.log.{}", self.rotated))).unwrap();
        std::fs::write(&self.live, "").unwrap();
        self.generation += 1;
    }

    fn delete_and_recreate(&mut self) {
        self.forget_unread_unless_open();
        std::fs::remove_file(&self.live).unwrap();
        std::fs::write(&self.live, "").unwrap();
        self.generation += 1;
    }

    fn copytruncate(&mut self) {
        // Lines not read before the copy are in the copy only, which is not watched.
        let gen = self.generation;
        let lost: Vec<String> =
            self.unread.iter().filter(|(g, _)| *g == gen).map(|(_, l)| l.clone()).collect();
        self.lost.extend(lost);
        self.unread.retain(|(g, _)| *g != gen);
        self.rotated += 1;
        std::fs::copy(&self.live, self.dir.join(format!("access.log.{}", self.rotated))).unwrap();
        OpenOptions::new().write(true).truncate(true).open(&self.live).unwrap();
    }

    fn restart(&mut self) {
        // A restart happens after a final poll, as lookout polls and saves on shutdown.
        self.poll();
        self.tailer.record_positions();
        self.positions.save().unwrap();
        (self.tailer, self.positions) = new_tailer(&self.live, &self.positions_path);
        self.opened.clear();
    }
}

fn run_model(seed: u64, steps: usize) {
    let dir = tempfile::tempdir().unwrap();
    let mut h = Harness::new(dir.path());
    let mut rng = Rng(seed);
    let mut log = Vec::new();
    for _ in 0..steps {
        let op = rng.next(100);
        match op {
            0..=44 => {
                let n = 1 + rng.next(20);
                h.write(n);
                log.push(format!("write {n}"));
            }
            45..=59 => {
                h.poll();
                log.push("poll".into());
            }
            60..=69 => {
                h.poll_writes_only();
                log.push("write events".into());
            }
            70..=74 => {
                // inotify's queue overflowed: the waker asks for a full scan.
                h.poll();
                log.push("overflow".into());
            }
            75..=82 => {
                h.rename_and_create();
                log.push("rename".into());
            }
            83..=88 => {
                h.copytruncate();
                log.push("copytruncate".into());
            }
            89..=94 => {
                h.delete_and_recreate();
                log.push("delete".into());
            }
            _ => {
                h.restart();
                log.push("restart".into());
            }
        }
    }
    h.poll();
    h.poll();
    let expected_total = h.next_line as usize - h.lost.len();
    let duplicates: Vec<_> = h.seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(duplicates.is_empty(), "seed {seed}: counted twice: {duplicates:?}\nops: {log:?}");
    for lost in &h.lost {
        let id = lost.split(' ').next().unwrap();
        assert!(
            !h.seen.contains_key(id),
            "seed {seed}: {id} was expected lost to copytruncate but was read\nops: {log:?}"
        );
    }
    assert_eq!(
        h.seen.len(),
        expected_total,
        "seed {seed}: {} lines written, {} lost by design\nops: {log:?}",
        h.next_line,
        h.lost.len()
    );
}

#[test]
fn model_based_rotation() {
    for seed in 1..=40 {
        run_model(seed, 120);
    }
}

#[test]
fn partial_line_waits_for_its_newline() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("a.log");
    std::fs::write(&live, "first\nsecond-ha").unwrap();
    let mut tailer = Tailer::new(
        "p",
        vec![live.display().to_string()],
        StartAt::Beginning,
        4096,
        Framing::default(),
        None,
    );
    let mut got = Vec::new();
    tailer.poll(Duration::ZERO, &mut |r: &str| got.push(r.to_string()));
    assert_eq!(got, ["first"]);
    OpenOptions::new().append(true).open(&live).unwrap().write_all(b"lf\n").unwrap();
    tailer.poll(Duration::ZERO, &mut |r: &str| got.push(r.to_string()));
    assert_eq!(got, ["first", "second-half"]);
}

#[test]
fn start_at_end_skips_existing_content_only_on_the_first_run() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("a.log");
    let positions = dir.path().join("positions.json");
    std::fs::write(&live, "old-1\nold-2\n").unwrap();
    let make = || {
        let p = Arc::new(Positions::open(&positions, DEFAULT_RETENTION));
        let tailer = Tailer::new(
            "s",
            vec![live.display().to_string()],
            StartAt::End,
            4096,
            Framing::default(),
            Some(p.clone()),
        );
        (tailer, p)
    };
    let mut got = Vec::new();
    let (mut tailer, p) = make();
    tailer.poll(Duration::ZERO, &mut |r: &str| got.push(r.to_string()));
    assert!(got.is_empty(), "existing lines are skipped at the first start");
    OpenOptions::new().append(true).open(&live).unwrap().write_all(b"new-1\n").unwrap();
    tailer.poll(Duration::ZERO, &mut |r: &str| got.push(r.to_string()));
    tailer.record_positions();
    p.save().unwrap();
    drop(tailer);
    // Written while lookout was down: read after the restart, nothing skipped, nothing twice.
    OpenOptions::new().append(true).open(&live).unwrap().write_all(b"down-1\ndown-2\n").unwrap();
    let (mut tailer, p) = make();
    tailer.poll(Duration::ZERO, &mut |r: &str| got.push(r.to_string()));
    tailer.record_positions();
    p.save().unwrap();
    assert_eq!(got, ["new-1", "down-1", "down-2"]);
    // A file that appears later is read from its start.
    let later = dir.path().join("b.log");
    std::fs::write(&later, "b-1\n").unwrap();
    let mut tailer = Tailer::new(
        "s",
        vec![format!("{}/*.log", dir.path().display())],
        StartAt::End,
        4096,
        Framing::default(),
        Some(Arc::new(Positions::open(&positions, DEFAULT_RETENTION))),
    );
    got.clear();
    tailer.poll(Duration::ZERO, &mut |r: &str| got.push(r.to_string()));
    assert_eq!(got, ["b-1"]);
}

#[test]
fn a_reused_inode_is_not_the_old_file() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("a.log");
    let positions = dir.path().join("positions.json");
    std::fs::write(&live, "aaaa-1\naaaa-2\naaaa-3\n").unwrap();
    let p = Arc::new(Positions::open(&positions, DEFAULT_RETENTION));
    let mut tailer = Tailer::new(
        "s",
        vec![live.display().to_string()],
        StartAt::Beginning,
        4096,
        Framing::default(),
        Some(p.clone()),
    );
    tailer.poll(Duration::ZERO, &mut |_: &str| {});
    tailer.record_positions();
    p.save().unwrap();
    drop(tailer);
    // Replace the file with other content of the same length (the inode may well be reused).
    std::fs::remove_file(&live).unwrap();
    std::fs::write(&live, "bbbb-1\nbbbb-2\nbbbb-3\nbbbb-4\n").unwrap();
    let mut got = Vec::new();
    let mut tailer = Tailer::new(
        "s",
        vec![live.display().to_string()],
        StartAt::Beginning,
        4096,
        Framing::default(),
        Some(Arc::new(Positions::open(&positions, DEFAULT_RETENTION))),
    );
    tailer.poll(Duration::ZERO, &mut |r: &str| got.push(r.to_string()));
    assert_eq!(got, ["bbbb-1", "bbbb-2", "bbbb-3", "bbbb-4"]);
}

#[test]
fn multiline_record_is_not_committed_before_it_is_complete() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("app.log");
    let positions = dir.path().join("positions.json");
    let start = regex::Regex::new(r"^\d{4}-").unwrap();
    std::fs::write(&live, "2026-01 one\n\tat a\n2026-02 two\n\tat b\n").unwrap();
    let p = Arc::new(Positions::open(&positions, DEFAULT_RETENTION));
    let mut tailer = Tailer::new(
        "s",
        vec![live.display().to_string()],
        StartAt::Beginning,
        4096,
        Framing::multiline(Some(start.clone())),
        Some(p.clone()),
    );
    let mut got = Vec::new();
    tailer.poll(Duration::from_secs(3600), &mut |r: &str| got.push(r.to_string()));
    assert_eq!(got, ["2026-01 one\n\tat a"], "the second record may still continue");
    tailer.record_positions();
    p.save().unwrap();
    drop(tailer);
    OpenOptions::new()
        .append(true)
        .open(&live)
        .unwrap()
        .write_all(b"\tat c\n2026-03 three\n")
        .unwrap();
    let mut tailer = Tailer::new(
        "s",
        vec![live.display().to_string()],
        StartAt::Beginning,
        4096,
        Framing::multiline(Some(start)),
        Some(Arc::new(Positions::open(&positions, DEFAULT_RETENTION))),
    );
    tailer.poll(Duration::from_secs(3600), &mut |r: &str| got.push(r.to_string()));
    tailer.poll(Duration::ZERO, &mut |r: &str| got.push(r.to_string()));
    assert_eq!(got, ["2026-01 one\n\tat a", "2026-02 two\n\tat b\n\tat c", "2026-03 three"]);
}

#[test]
fn copytruncate_keeps_the_record_being_assembled() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("app.log");
    let start = regex::Regex::new(r"^\d{4}-").unwrap();
    std::fs::write(&live, "2026-01 one\n\tat a\n").unwrap();
    let mut tailer = Tailer::new(
        "s",
        vec![live.display().to_string()],
        StartAt::Beginning,
        4096,
        Framing::multiline(Some(start)),
        None,
    );
    let mut got = Vec::new();
    tailer.poll(Duration::from_secs(3600), &mut |r: &str| got.push(r.to_string()));
    assert!(got.is_empty(), "the record may still continue");
    OpenOptions::new().write(true).truncate(true).open(&live).unwrap();
    std::fs::write(&live, "2026-02 two\n").unwrap();
    tailer.poll(Duration::from_secs(3600), &mut |r: &str| got.push(r.to_string()));
    tailer.poll(Duration::ZERO, &mut |r: &str| got.push(r.to_string()));
    assert_eq!(got, ["2026-01 one\n\tat a", "2026-02 two"]);
}

#[test]
fn a_new_source_starts_at_the_end_even_when_others_have_positions() {
    let dir = tempfile::tempdir().unwrap();
    let positions = dir.path().join("positions.json");
    let old = dir.path().join("old.log");
    let new = dir.path().join("new.log");
    std::fs::write(&old, "o-1\n").unwrap();
    let p = Arc::new(Positions::open(&positions, DEFAULT_RETENTION));
    let mut tailer = Tailer::new(
        "old",
        vec![old.display().to_string()],
        StartAt::End,
        4096,
        Framing::default(),
        Some(p.clone()),
    );
    tailer.poll(Duration::ZERO, &mut |_: &str| {});
    tailer.record_positions();
    p.save().unwrap();
    // Later a source is added whose file already has a long history.
    std::fs::write(&new, "history-1\nhistory-2\n").unwrap();
    let p = Arc::new(Positions::open(&positions, DEFAULT_RETENTION));
    let mut got = Vec::new();
    let mut tailer = Tailer::new(
        "new",
        vec![new.display().to_string()],
        StartAt::End,
        4096,
        Framing::default(),
        Some(p),
    );
    tailer.poll(Duration::ZERO, &mut |r: &str| got.push(r.to_string()));
    OpenOptions::new().append(true).open(&new).unwrap().write_all(b"fresh\n").unwrap();
    tailer.poll(Duration::ZERO, &mut |r: &str| got.push(r.to_string()));
    assert_eq!(got, ["fresh"]);
}

#[test]
fn the_last_line_of_a_file_read_to_its_end_counts_without_a_newline() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.log");
    std::fs::write(&file, "one\ntwo").unwrap();
    let mut tailer = Tailer::new(
        "s",
        vec![file.display().to_string()],
        StartAt::Beginning,
        4096,
        Framing::default(),
        None,
    );
    let mut got = Vec::new();
    tailer.read_to_end(&mut |r: &str| got.push(r.to_string()));
    assert_eq!(got, ["one", "two"]);
}

#[test]
fn a_quiet_file_rewritten_to_the_same_length_is_read_again() {
    // A file read through and then quiet is skipped while its size and change time stay the
    // same; a truncation and rewrite to the very same length must still be seen, right after a
    // read and after the file has been quiet long enough to be skipped.
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("a.log");
    let p = Arc::new(Positions::open(&dir.path().join("positions.json"), DEFAULT_RETENTION));
    let mut tailer = tailer_with(live.display().to_string(), &p);
    let mut got = Vec::new();
    std::fs::write(&live, "aaaa-1\naaaa-2\n").unwrap();
    poll_into(&mut tailer, &mut got);
    std::fs::write(&live, "bbbb-1\nbbbb-2\n").unwrap();
    poll_into(&mut tailer, &mut got);
    assert_eq!(got, ["aaaa-1", "aaaa-2", "bbbb-1", "bbbb-2"]);
    std::thread::sleep(Duration::from_millis(1100));
    // Read through while quiet: skipped from now on, until something changes.
    poll_into(&mut tailer, &mut got);
    poll_into(&mut tailer, &mut got);
    std::fs::write(&live, "cccc-1\ncccc-2\n").unwrap();
    poll_into(&mut tailer, &mut got);
    assert_eq!(got[4..], ["cccc-1", "cccc-2"]);
    append_lines(&live, "dddd", 0..1);
    poll_into(&mut tailer, &mut got);
    assert_eq!(got[6..], ["dddd-0"]);
}

fn append_lines(path: &Path, prefix: &str, range: std::ops::Range<u32>) {
    let mut f = OpenOptions::new().append(true).create(true).open(path).unwrap();
    for i in range {
        writeln!(f, "{prefix}-{i}").unwrap();
    }
}

fn tailer_with(pattern: String, positions: &Arc<Positions>) -> Tailer {
    Tailer::new(
        "s",
        vec![pattern],
        StartAt::Beginning,
        4096,
        Framing::default(),
        Some(positions.clone()),
    )
}

/// Polls and records positions, as the runtime does after each poll.
fn poll_into(tailer: &mut Tailer, got: &mut Vec<String>) {
    tailer.poll(Duration::ZERO, &mut |r: &str| got.push(r.to_string()));
    tailer.record_positions();
}

#[test]
fn a_directory_that_disappears_for_a_while_is_resumed_not_read_again() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    append_lines(&logs.join("app.log"), "a", 0..30);
    let positions = dir.path().join("positions.json");
    let p = Arc::new(Positions::open(&positions, DEFAULT_RETENTION));
    let pattern = format!("{}/*.log", logs.display());
    let mut tailer = tailer_with(pattern.clone(), &p);
    let mut got = Vec::new();
    poll_into(&mut tailer, &mut got);
    assert_eq!(got.len(), 30);

    // The directory is renamed away for longer than a rotated file is drained.
    let away = dir.path().join("logs.away");
    std::fs::rename(&logs, &away).unwrap();
    append_lines(&away.join("app.log"), "a", 30..35);
    let until = std::time::Instant::now() + Duration::from_millis(6500);
    while std::time::Instant::now() < until {
        poll_into(&mut tailer, &mut got);
        std::thread::sleep(Duration::from_millis(500));
    }
    // lookout restarts while it is still away.
    p.save().unwrap();
    drop(tailer);
    let p = Arc::new(Positions::open(&positions, DEFAULT_RETENTION));
    let mut tailer = tailer_with(pattern, &p);
    poll_into(&mut tailer, &mut got);
    p.save().unwrap();

    std::fs::rename(&away, &logs).unwrap();
    append_lines(&logs.join("app.log"), "a", 35..40);
    poll_into(&mut tailer, &mut got);
    let expected: Vec<String> = (0..40).map(|i| format!("a-{i}")).collect();
    assert_eq!(got, expected, "every line once, in order");
}

#[test]
fn unreadable_paths_are_reported_and_never_block() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.log");
    let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o644) }, 0);
    let looped = dir.path().join("loop.log");
    std::os::unix::fs::symlink(&looped, &looped).unwrap();
    let subdir = dir.path().join("dir.log");
    std::fs::create_dir(&subdir).unwrap();
    let good = dir.path().join("good.log");
    append_lines(&good, "g", 0..3);
    let paths = [
        fifo.display().to_string(),
        looped.display().to_string(),
        subdir.display().to_string(),
        "/dev/zero".to_string(),
        dir.path().join("absent.log").display().to_string(),
        good.display().to_string(),
    ];
    let mut tailer =
        Tailer::new("s", paths.to_vec(), StartAt::Beginning, 4096, Framing::default(), None);
    let mut got = Vec::new();
    let started = std::time::Instant::now();
    for _ in 0..3 {
        tailer.poll(Duration::ZERO, &mut |r: &str| got.push(r.to_string()));
    }
    assert!(started.elapsed() < Duration::from_secs(2), "no path blocks the source");
    assert_eq!(got, ["g-0", "g-1", "g-2"], "the readable file is read all the same");
    let progress = tailer.take_progress();
    let count = |reason: Unreadable| {
        progress.unreadable[Unreadable::ALL.iter().position(|r| *r == reason).unwrap()]
    };
    assert_eq!(count(Unreadable::NotAFile), 3, "FIFO, directory, /dev/zero");
    assert_eq!(count(Unreadable::SymlinkLoop), 1);
    assert_eq!(count(Unreadable::NotFound), 1);
    assert_eq!(progress.files, 1);
}

/// The entries of a positions file, by path.
fn saved_paths(file: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let parsed: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    let mut paths: Vec<String> = parsed["files"]
        .as_array()
        .map(|files| files.iter().map(|f| f["path"].as_str().unwrap().to_string()).collect())
        .unwrap_or_default();
    paths.sort();
    paths
}

#[test]
fn positions_of_files_gone_for_good_are_pruned_and_saves_stay_small() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live");
    let pods = dir.path().join("pods");
    std::fs::create_dir_all(live.join("x")).unwrap();
    std::fs::create_dir_all(pods.join("p1")).unwrap();
    let (a, b, c) = (live.join("x/a.log"), live.join("x/b.log"), pods.join("p1/c.log"));
    for file in [&a, &b, &c] {
        append_lines(file, "l", 0..2);
    }
    let positions = dir.path().join("positions.json");
    let dormant = dir.path().join("positions.json.dormant");
    let patterns = |p: &Arc<Positions>| {
        Tailer::new(
            "s",
            vec![format!("{}/*/*.log", live.display()), format!("{}/*/*.log", pods.display())],
            StartAt::Beginning,
            4096,
            Framing::default(),
            Some(p.clone()),
        )
    };
    let p = Arc::new(Positions::open(&positions, DEFAULT_RETENTION));
    let mut got = Vec::new();
    poll_into(&mut patterns(&p), &mut got);
    p.save().unwrap();
    assert_eq!(saved_paths(&positions).len(), 3);

    // While lookout is stopped: b.log is deleted from a directory that still lists, and the
    // whole directory of c.log goes (Kubernetes deleting a pod's logs).
    std::fs::remove_file(&b).unwrap();
    std::fs::remove_dir_all(pods.join("p1")).unwrap();
    // Many more entries of directories that are gone, as a busy node leaves behind.
    let mut text = std::fs::read_to_string(&positions).unwrap();
    let stale: Vec<String> = (0..5000)
        .map(|i| {
            format!(
                r#"{{"source":"s","path":"{}/gone-{}/0.log","dev":1,"ino":{},"fingerprint":7,"fingerprint_len":9,"offset":10}}"#,
                pods.display(),
                i / 10,
                1_000_000 + i
            )
        })
        .collect();
    text = text.replacen("\"files\":[\n", &format!("\"files\":[\n{},\n", stale.join(",\n")), 1);
    std::fs::write(&positions, text).unwrap();

    let p = Arc::new(Positions::open(&positions, DEFAULT_RETENTION));
    assert!(p.load_problem().is_none());
    let mut tailer = patterns(&p);
    poll_into(&mut tailer, &mut got);
    p.save().unwrap();
    // Not yet: a file gone from a listing directory gets a few seconds' grace.
    assert!(saved_paths(&positions).contains(&b.display().to_string()));
    std::thread::sleep(Duration::from_millis(5200));
    poll_into(&mut tailer, &mut got);
    let snapshot = p.snapshot(false).unwrap();
    p.write(snapshot).unwrap();
    // Made durable: that save is the main file now.
    p.settle(true).unwrap();
    assert_eq!(saved_paths(&positions), [a.display().to_string()], "b.log forgotten");
    let kept = saved_paths(&dormant);
    assert_eq!(kept.len(), 5001, "entries of missing directories kept, apart");
    assert!(kept.contains(&c.display().to_string()));

    // The next saves write the live files only.
    let dormant_inode = std::fs::metadata(&dormant).unwrap().ino();
    append_lines(&a, "l", 2..4);
    poll_into(&mut tailer, &mut got);
    let snapshot = p.snapshot(false).unwrap();
    p.write(snapshot).unwrap();
    p.settle(true).unwrap();
    assert_eq!(std::fs::metadata(&dormant).unwrap().ino(), dormant_inode, "not rewritten");
    assert!(std::fs::metadata(&positions).unwrap().len() < 1024);

    // Past the retention they go too.
    drop(tailer);
    std::thread::sleep(Duration::from_millis(1100));
    let p = Arc::new(Positions::open(&positions, Duration::from_secs(1)));
    poll_into(&mut patterns(&p), &mut got);
    p.save().unwrap();
    assert_eq!(saved_paths(&positions), [a.display().to_string()]);
    assert!(saved_paths(&dormant).is_empty());
}

/// A save as the positions writer makes them between syncs.
fn save_between_syncs(p: &Positions) {
    let snapshot = p.snapshot(false).expect("something to save");
    p.write(snapshot).unwrap();
}

/// What a restart reads from `log` with the positions at `positions`.
fn read_after_restart(positions: &Path, log: &Path) -> Vec<String> {
    let p = Arc::new(Positions::open(positions, DEFAULT_RETENTION));
    assert!(p.load_problem().is_none());
    let mut got = Vec::new();
    poll_into(&mut tailer_with(log.display().to_string(), &p), &mut got);
    got
}

fn lines(prefix: &str, range: std::ops::Range<u32>) -> Vec<String> {
    range.map(|i| format!("{prefix}-{i}")).collect()
}

#[test]
fn saves_between_syncs_go_to_slots_in_place_and_a_restart_takes_the_newest_whole_one() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let positions = dir.path().join("positions.json");
    let slots = [0, 1].map(|i| dir.path().join(format!("positions.json.live-{i}")));
    let saved_offset = || -> u64 {
        let text = std::fs::read_to_string(&positions).unwrap();
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        parsed["files"][0]["offset"].as_u64().unwrap()
    };
    append_lines(&log, "l", 0..10);
    let p = Arc::new(Positions::open(&positions, DEFAULT_RETENTION));
    let mut tailer = tailer_with(log.display().to_string(), &p);
    let mut got = Vec::new();
    poll_into(&mut tailer, &mut got);
    // The first save has no main file to follow: it is the main file.
    save_between_syncs(&p);
    assert_eq!(saved_offset(), 40);
    let main_inode = std::fs::metadata(&positions).unwrap().ino();
    for round in 1..4 {
        append_lines(&log, "l", round * 10..round * 10 + 10);
        poll_into(&mut tailer, &mut got);
        save_between_syncs(&p);
    }
    assert_eq!(got, lines("l", 0..40));
    assert_eq!(std::fs::metadata(&positions).unwrap().ino(), main_inode, "not rewritten");
    assert_eq!(saved_offset(), 40, "the main file waits for the sync");
    assert!(slots.iter().all(|slot| slot.exists()));
    append_lines(&log, "l", 40..45);

    // A restart (after kill -9) resumes at the last save.
    assert_eq!(read_after_restart(&positions, &log), lines("l", 40..45));

    // A kill that tore the last save: the save before it, whose lines were not shown yet.
    let newest = slots
        .iter()
        .max_by_key(|slot| {
            let text = std::fs::read_to_string(slot).unwrap();
            let seq = text.split(' ').nth(1).unwrap().strip_prefix("seq=").unwrap().to_string();
            seq.parse::<u64>().unwrap()
        })
        .unwrap();
    let mut torn = std::fs::read(newest).unwrap();
    let last = torn.len() - 3;
    torn[last] ^= 0x20;
    std::fs::write(newest, &torn).unwrap();
    assert_eq!(read_after_restart(&positions, &log), lines("l", 30..45));

    // Made durable (at a stop, or a second later): the main file holds the last save.
    p.settle(true).unwrap();
    assert_ne!(std::fs::metadata(&positions).unwrap().ino(), main_inode);
    assert_eq!(saved_offset(), 40 + 30 * 5);
    assert_eq!(read_after_restart(&positions, &log), lines("l", 40..45));

    // Slots never speak for a main file they did not follow: deleted by hand, it starts over.
    std::fs::remove_file(&positions).unwrap();
    assert_eq!(read_after_restart(&positions, &log), lines("l", 0..45));
}
