//! The tailer against a model: random sequences of writes, polls, rotations (rename + create,
//! copytruncate, delete + recreate) and restarts, checking that every line that can be read is
//! counted exactly once — as Vector's file source is tested.

use lookout::config::log_rules::StartAt;
use lookout::logs::positions::{Positions, DEFAULT_RETENTION};
use lookout::logs::tailer::Tailer;
use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::Write;
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
        None,
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

    fn poll(&mut self) {
        let seen = &mut self.seen;
        // A zero idle flush: nothing is pending without multiline anyway.
        self.tailer.poll(Duration::ZERO, &mut |record: &str| {
            *seen.entry(record.split(' ').next().unwrap().to_string()).or_default() += 1
        });
        self.unread.clear();
        if !self.opened.contains(&self.generation) {
            self.opened.push(self.generation);
        }
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
            45..=74 => {
                h.poll();
                log.push("poll".into());
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
    let mut tailer =
        Tailer::new("p", vec![live.display().to_string()], StartAt::Beginning, 4096, None, None);
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
            None,
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
        None,
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
        None,
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
        None,
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
        Some(start.clone()),
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
        Some(start),
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
        Some(start),
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
        None,
        Some(p.clone()),
    );
    tailer.poll(Duration::ZERO, &mut |_: &str| {});
    tailer.record_positions();
    p.save().unwrap();
    // Later a source is added whose file already has a long history.
    std::fs::write(&new, "history-1\nhistory-2\n").unwrap();
    let p = Arc::new(Positions::open(&positions, DEFAULT_RETENTION));
    let mut got = Vec::new();
    let mut tailer =
        Tailer::new("new", vec![new.display().to_string()], StartAt::End, 4096, None, Some(p));
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
    let mut tailer =
        Tailer::new("s", vec![file.display().to_string()], StartAt::Beginning, 4096, None, None);
    let mut got = Vec::new();
    tailer.read_to_end(&mut |r: &str| got.push(r.to_string()));
    assert_eq!(got, ["one", "two"]);
}
