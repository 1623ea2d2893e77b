//! Framing: bytes → complete lines → records. A partial last line waits for its newline; a line
//! over the length limit is cut (and counted) without holding more than the limit in memory;
//! with a multiline start pattern, lines that do not start a record continue the one before.
//!
//! Container sources have a stage between the two: the [`Unwrapper`] takes the runtime's
//! wrapper off each line and joins the pieces of long lines (see `container`).
//!
//! Every stage tracks how many bytes of the file they still hold, so the offset saved in the
//! positions file never passes a record that has not been processed.

use super::container::{Container, Meta, Unwrapper};
use regex::Regex;
use std::borrow::Cow;

/// Bytes of a pending multiline record beyond which continuation lines are dropped.
const MAX_RECORD_BYTES: usize = 1 << 20;

pub struct LineSplitter {
    partial: Vec<u8>,
    /// Bytes of the current incomplete line read so far, including any cut off.
    pending: u64,
    /// The current line is over the limit: the rest of it is skipped.
    cut: bool,
    max: usize,
    pub cut_lines: u64,
}

impl LineSplitter {
    pub fn new(max: usize) -> LineSplitter {
        LineSplitter { partial: Vec::new(), pending: 0, cut: false, max, cut_lines: 0 }
    }

    /// Bytes read but not yet part of a complete line.
    pub fn pending(&self) -> u64 {
        self.pending
    }

    /// Feeds bytes; `line` receives each complete line (no `\n` or `\r\n`) and the number of
    /// file bytes it took, newline included.
    pub fn push(&mut self, mut data: &[u8], line: &mut impl FnMut(&[u8], u64)) {
        while !data.is_empty() {
            let Some(nl) = memchr::memchr(b'\n', data) else {
                self.append(data);
                self.pending += data.len() as u64;
                return;
            };
            let raw = self.pending + nl as u64 + 1;
            if self.pending == 0 {
                let mut text = &data[..nl];
                if text.len() > self.max {
                    self.cut_lines += 1;
                    text = &text[..self.max];
                }
                line(strip_cr(text), raw);
            } else {
                self.append(&data[..nl]);
                let text = std::mem::take(&mut self.partial);
                line(strip_cr(&text), raw);
                self.partial = text;
                self.partial.clear();
            }
            self.pending = 0;
            self.cut = false;
            data = &data[nl + 1..];
        }
    }

    fn append(&mut self, bytes: &[u8]) {
        let room = self.max - self.partial.len();
        if bytes.len() > room {
            self.partial.extend_from_slice(&bytes[..room]);
            if !self.cut {
                self.cut = true;
                self.cut_lines += 1;
            }
        } else {
            self.partial.extend_from_slice(bytes);
        }
    }

    /// Hands out a partial last line as complete (its file will not grow again).
    pub fn finish(&mut self, line: &mut impl FnMut(&[u8], u64)) {
        if self.pending > 0 {
            let text = std::mem::take(&mut self.partial);
            line(strip_cr(&text), self.pending);
            self.reset();
        }
    }

    /// Forgets a partial line (the file was truncated under it).
    pub fn reset(&mut self) {
        self.partial.clear();
        self.pending = 0;
        self.cut = false;
    }
}

/// How lines make records: one line each; with a start pattern, from a line that matches it up
/// to the next such line; or, for formats that write several lines (an nginx `log_format` with
/// newlines), a fixed number of lines from a line that matches the start pattern.
#[derive(Clone, Debug, Default)]
pub struct Framing {
    pub start: Option<Regex>,
    /// Lines per record when more than one: a record ends after this many.
    pub lines: usize,
}

impl Framing {
    pub fn multiline(start: Option<Regex>) -> Framing {
        Framing { start, lines: 1 }
    }

    pub fn same_as(&self, other: &Framing) -> bool {
        self.lines == other.lines
            && self.start.as_ref().map(Regex::as_str) == other.start.as_ref().map(Regex::as_str)
    }
}

pub struct Framer {
    framing: Framing,
    record: String,
    /// The stream and runtime time of the pending record's first line.
    stream: Option<&'static str>,
    time: Option<String>,
    /// Lines in the pending record.
    count: usize,
    /// File bytes of the pending record.
    pending: u64,
    pub dropped_lines: u64,
}

impl Framer {
    pub fn new(framing: Framing) -> Framer {
        Framer {
            framing,
            record: String::new(),
            stream: None,
            time: None,
            count: 0,
            pending: 0,
            dropped_lines: 0,
        }
    }

    pub fn pending(&self) -> u64 {
        self.pending
    }

    pub fn push(&mut self, line: &str, raw: u64, emit: &mut impl FnMut(&str)) {
        self.push_with(line, raw, Meta::default(), &mut |r, _| emit(r));
    }

    /// As `push`, for a line with facts from its container runtime; a record keeps those of
    /// its first line.
    pub fn push_with(
        &mut self,
        line: &str,
        raw: u64,
        meta: Meta,
        emit: &mut impl FnMut(&str, Meta),
    ) {
        if self.framing.lines > 1 {
            return self.push_counted(line, raw, meta, emit);
        }
        let Some(start) = &self.framing.start else {
            emit(line, meta);
            return;
        };
        if start.is_match(line) {
            self.flush_with(emit);
            self.begin(line, meta);
        } else if self.pending == 0 {
            // A continuation with nothing before it (the file began mid-record): a record of its own.
            self.begin(line, meta);
        } else if self.record.len() + line.len() < MAX_RECORD_BYTES {
            self.record.push('\n');
            self.record.push_str(line);
        } else {
            self.dropped_lines += 1;
        }
        self.pending += raw;
    }

    fn begin(&mut self, line: &str, meta: Meta) {
        self.record.push_str(line);
        self.stream = meta.stream;
        match (&mut self.time, meta.time) {
            (Some(kept), Some(time)) => {
                kept.clear();
                kept.push_str(time);
            }
            (kept, time) => *kept = time.map(str::to_string),
        }
    }

    /// A record of a fixed number of lines; a line that cannot start one while none is open
    /// (the file began mid-record, or someone else wrote to it) is a record of its own.
    fn push_counted(
        &mut self,
        line: &str,
        raw: u64,
        meta: Meta,
        emit: &mut impl FnMut(&str, Meta),
    ) {
        if self.count == 0 && !self.framing.start.as_ref().is_none_or(|s| s.is_match(line)) {
            emit(line, meta);
            return;
        }
        if self.count > 0 {
            self.record.push('\n');
            self.record.push_str(line);
        } else {
            self.begin(line, meta);
        }
        self.count += 1;
        self.pending += raw;
        if self.count == self.framing.lines {
            self.flush_with(emit);
        }
    }

    pub fn flush(&mut self, emit: &mut impl FnMut(&str)) {
        self.flush_with(&mut |r, _| emit(r));
    }

    pub fn flush_with(&mut self, emit: &mut impl FnMut(&str, Meta)) {
        if self.pending > 0 {
            let meta = Meta { stream: self.stream, time: self.time.as_deref(), pod: None };
            emit(&self.record, meta);
            self.record.clear();
            self.pending = 0;
        }
        self.count = 0;
    }
}

/// Hands out what `splitter` and `framer` still hold, as at the end of a file that will not grow
/// again: a last line without its newline, then the record being assembled.
pub fn finish(splitter: &mut LineSplitter, framer: &mut Framer, emit: &mut impl FnMut(&str)) {
    splitter.finish(&mut |line, raw| framer.push(&line_text(line), raw, emit));
    framer.flush(emit);
}

/// A line as text: borrowed when it is valid UTF-8, else with U+FFFD for each invalid sequence.
/// Log lines are nearly always ASCII: OR-ing all the bytes (a loop the compiler makes into
/// vector instructions) tells so in half the time of the standard library's validation, which
/// checks the other lines.
pub fn line_text(line: &[u8]) -> Cow<'_, str> {
    if line.iter().fold(0u8, |any, &byte| any | byte).is_ascii() {
        // SAFETY: every byte is ASCII, and ASCII text is valid UTF-8.
        return Cow::Borrowed(unsafe { std::str::from_utf8_unchecked(line) });
    }
    match std::str::from_utf8(line) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(line),
    }
}

/// What a record went through: line counts and lines cut, dropped or of a broken wrapper.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FrameStats {
    pub lines: u64,
    pub cut_lines: u64,
    pub dropped_lines: u64,
    pub wrapper_errors: u64,
}

/// The stages from a file's bytes to its records: lines, the container wrapper when the source
/// has one, records.
pub struct Pipeline {
    splitter: LineSplitter,
    unwrapper: Option<Unwrapper>,
    framer: Framer,
    lines: u64,
}

impl Pipeline {
    pub fn new(max_line_bytes: usize, container: Option<Container>, framing: Framing) -> Pipeline {
        Pipeline {
            // A wrapper line holds its runtime's fields and escapes besides the text.
            splitter: LineSplitter::new(match container {
                Some(_) => max_line_bytes.saturating_mul(2).saturating_add(512),
                None => max_line_bytes,
            }),
            unwrapper: container.map(|c| Unwrapper::new(c, max_line_bytes)),
            framer: Framer::new(framing),
            lines: 0,
        }
    }

    /// File bytes read but not yet part of a record handed out.
    pub fn pending(&self) -> u64 {
        self.splitter.pending()
            + self.unwrapper.as_ref().map_or(0, Unwrapper::pending)
            + self.framer.pending()
    }

    pub fn stats(&self) -> FrameStats {
        FrameStats {
            lines: self.lines,
            cut_lines: self.splitter.cut_lines + self.unwrapper.as_ref().map_or(0, |u| u.cut_lines),
            dropped_lines: self.framer.dropped_lines,
            wrapper_errors: self.unwrapper.as_ref().map_or(0, |u| u.errors),
        }
    }

    pub fn push(&mut self, data: &[u8], emit: &mut impl FnMut(&str, Meta)) {
        let (framer, lines) = (&mut self.framer, &mut self.lines);
        match &mut self.unwrapper {
            None => self.splitter.push(data, &mut |line, raw| {
                *lines += 1;
                framer.push_with(&line_text(line), raw, Meta::default(), emit)
            }),
            Some(unwrapper) => self.splitter.push(data, &mut |wrapper, raw| {
                *lines += 1;
                unwrapper.push(wrapper, raw, &mut |line, raw, meta| {
                    framer.push_with(&line_text(line), raw, meta, emit)
                })
            }),
        }
    }

    /// Emits the pending record (its file has been quiet for a while).
    pub fn flush(&mut self, emit: &mut impl FnMut(&str, Meta)) {
        self.framer.flush_with(emit);
    }

    /// Hands out everything held, as at the end of a file that will not grow again.
    pub fn finish(&mut self, emit: &mut impl FnMut(&str, Meta)) {
        let framer = &mut self.framer;
        let unwrapper = &mut self.unwrapper;
        self.splitter.finish(&mut |line, raw| match unwrapper {
            None => framer.push_with(&line_text(line), raw, Meta::default(), emit),
            Some(u) => u.push(line, raw, &mut |line, raw, meta| {
                framer.push_with(&line_text(line), raw, meta, emit)
            }),
        });
        if let Some(u) = &mut self.unwrapper {
            u.finish(&mut |line, raw, meta| framer.push_with(&line_text(line), raw, meta, emit));
        }
        self.framer.flush_with(emit);
    }

    /// The file was truncated: a partial line is lost with the copy, the record being
    /// assembled was read whole and is handed out.
    pub fn truncated(&mut self, emit: &mut impl FnMut(&str, Meta)) {
        self.splitter.reset();
        if let Some(u) = &mut self.unwrapper {
            u.reset();
        }
        self.framer.flush_with(emit);
    }
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(max: usize, chunks: &[&[u8]]) -> (Vec<(String, u64)>, u64, u64) {
        let mut splitter = LineSplitter::new(max);
        let mut lines = Vec::new();
        for chunk in chunks {
            splitter.push(chunk, &mut |l, raw| {
                lines.push((String::from_utf8_lossy(l).into_owned(), raw))
            });
        }
        (lines, splitter.pending(), splitter.cut_lines)
    }

    #[test]
    fn line_text_borrows_valid_text_and_replaces_invalid_bytes() {
        let borrowed = |line: &[u8]| matches!(line_text(line), Cow::Borrowed(_));
        assert!(borrowed(b"GET /a 200") && borrowed("GET /caf\u{e9} 200 \u{1f600}".as_bytes()));
        assert_eq!(line_text("caf\u{e9}".as_bytes()), "caf\u{e9}");
        assert_eq!(line_text(b"a\xff b\xc3"), "a\u{fffd} b\u{fffd}");
        assert!(!borrowed(b"a\xff"));
        assert_eq!(line_text(b""), "");
    }

    #[test]
    fn complete_lines_only_across_chunks() {
        let (lines, pending, _) = split(100, &[b"ab", b"c\nde", b"f\r\ngh"]);
        assert_eq!(lines, [("abc".to_string(), 4), ("def".to_string(), 5)]);
        assert_eq!(pending, 2);
    }

    #[test]
    fn long_lines_are_cut_and_counted_with_bounded_memory() {
        let long = vec![b'x'; 10_000];
        let (lines, pending, cut) =
            split(16, &[&long[..5000], &long[5000..], b"\nshort\n", &long, b"\n"]);
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], ("x".repeat(16), 10_001));
        assert_eq!(lines[1], ("short".to_string(), 6));
        assert_eq!(lines[2].0.len(), 16);
        assert_eq!((pending, cut), (0, 2));
    }

    #[test]
    fn multiline_records() {
        let mut framer = Framer::new(Framing::multiline(Some(Regex::new(r"^\d{4}-").unwrap())));
        let mut records = Vec::new();
        for line in ["orphan", "2026-01 first", "\tat x", "Caused by: y", "2026-02 second"] {
            framer.push(line, line.len() as u64 + 1, &mut |r| records.push(r.to_string()));
        }
        assert_eq!(records, ["orphan", "2026-01 first\n\tat x\nCaused by: y"]);
        assert_eq!(framer.pending(), 15);
        framer.flush(&mut |r| records.push(r.to_string()));
        assert_eq!(records[2], "2026-02 second");
        assert_eq!(framer.pending(), 0);
    }

    #[test]
    fn records_of_a_fixed_number_of_lines() {
        let framing = Framing { start: Some(Regex::new(r"^\d").unwrap()), lines: 3 };
        let mut framer = Framer::new(framing);
        let mut records = Vec::new();
        for line in ["", "1 a", "b", "", "2 c", "d", "", "stray", "3 e"] {
            framer.push(line, line.len() as u64 + 1, &mut |r| records.push(r.to_string()));
        }
        assert_eq!(records, ["", "1 a\nb\n", "2 c\nd\n", "stray"]);
        assert_eq!(framer.pending(), 4);
    }
}
