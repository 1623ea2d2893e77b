//! Container log files: the wrappers Docker (`json-file`) and CRI runtimes (containerd, CRI-O)
//! put around each line a container writes, and the Kubernetes names in the path kubelet gives
//! those files.
//!
//! A runtime splits a long line into pieces (CRI: `P` lines ended by an `F` line; Docker: `log`
//! values without their final `\n`). The [`Unwrapper`] joins the pieces of each stream, so what
//! leaves it is the line the program wrote, which the source's own format and multiline rules
//! then read as if the program had written to a plain file. A wrapper that cannot be read is
//! counted and skipped: it never stops the source.

pub use crate::config::log_rules::Container;
use serde::Deserialize;
use std::borrow::Cow;
use std::path::Path;

/// Facts about a record that are not in its text: the stream and time its runtime wrote with
/// its first line, and the Kubernetes names of its file.
#[derive(Debug, Clone, Copy, Default)]
pub struct Meta<'a> {
    pub stream: Option<&'static str>,
    pub time: Option<&'a str>,
    pub pod: Option<&'a PodPath>,
}

/// The Kubernetes names in a container log's path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodPath {
    pub namespace: String,
    pub pod: String,
    pub container: String,
}

impl PodPath {
    fn new(namespace: &str, pod: &str, container: &str) -> PodPath {
        PodPath {
            namespace: namespace.to_string(),
            pod: pod.to_string(),
            container: container.to_string(),
        }
    }

    /// The names in a path shaped `…/<namespace>_<pod>_<uid>/<container>/<N>.log` (kubelet's
    /// `/var/log/pods`, wherever its root is), also once rotated (`N.log.<time>`, `.gz`); or, for
    /// a `/var/log/containers/<pod>_<namespace>_<container>-<id>.log` link that does not lead
    /// into such a tree, the names in the link's own name.
    pub fn of(path: &Path) -> Option<PodPath> {
        let resolved = std::fs::canonicalize(path).ok();
        resolved
            .as_deref()
            .and_then(Self::of_pods_tree)
            .or_else(|| Self::of_pods_tree(path).or_else(|| Self::of_containers_link(path)))
    }

    fn of_pods_tree(path: &Path) -> Option<PodPath> {
        let mut parts = path.iter().rev().map(|p| p.to_str());
        let file = parts.next()??;
        let restart = file.split('.').next()?;
        if restart.is_empty()
            || !restart.bytes().all(|b| b.is_ascii_digit())
            || !file[restart.len()..].starts_with(".log")
        {
            return None;
        }
        let container = parts.next()??;
        let (namespace, rest) = parts.next()??.split_once('_')?;
        // A pod's name has no `_` (it is a DNS name); its uid follows the last one.
        let (pod, uid) = rest.rsplit_once('_')?;
        if [namespace, pod, uid, container].iter().any(|s| s.is_empty()) {
            return None;
        }
        Some(PodPath::new(namespace, pod, container))
    }

    fn of_containers_link(path: &Path) -> Option<PodPath> {
        let name = path.file_name()?.to_str()?.strip_suffix(".log")?;
        let (pod, rest) = name.split_once('_')?;
        let (namespace, rest) = rest.split_once('_')?;
        // The container id (64 hex digits) follows the container's name.
        let (container, id) = rest.rsplit_once('-')?;
        if [pod, namespace, container, id].iter().any(|s| s.is_empty()) {
            return None;
        }
        Some(PodPath::new(namespace, pod, container))
    }
}

/// One wrapper line read: the text inside it, whether the line continues in a later one, and
/// what the runtime says of it.
struct Wrapped<'a> {
    text: Cow<'a, [u8]>,
    partial: bool,
    stdout: bool,
    time: Cow<'a, str>,
}

#[derive(Deserialize)]
struct DockerLine<'a> {
    #[serde(borrow)]
    log: Cow<'a, str>,
    #[serde(borrow)]
    stream: Cow<'a, str>,
    #[serde(borrow)]
    time: Cow<'a, str>,
}

fn docker(line: &[u8]) -> Option<Wrapped<'_>> {
    let parsed: DockerLine = serde_json::from_slice(line).ok()?;
    let stdout = stream(&parsed.stream)?;
    let (text, partial) = match parsed.log {
        Cow::Borrowed(log) => match log.strip_suffix('\n') {
            Some(line) => (Cow::Borrowed(line.as_bytes()), false),
            None => (Cow::Borrowed(log.as_bytes()), true),
        },
        Cow::Owned(mut log) => {
            let complete = log.ends_with('\n');
            if complete {
                log.pop();
            }
            (Cow::Owned(log.into_bytes()), !complete)
        }
    };
    Some(Wrapped { text: strip_cr(text), partial, stdout, time: parsed.time })
}

/// `<RFC 3339 time> <stdout|stderr> <P|F> <text>`; the space before an empty text may be missing.
fn cri(line: &[u8]) -> Option<Wrapped<'_>> {
    let mut fields = line.splitn(4, |b| *b == b' ');
    let time = std::str::from_utf8(fields.next()?).ok()?;
    let stdout = stream(std::str::from_utf8(fields.next()?).ok()?)?;
    let partial = match fields.next()? {
        b"P" => true,
        b"F" => false,
        _ => return None,
    };
    let text = fields.next().unwrap_or_default();
    if !looks_like_time(time) {
        return None;
    }
    Some(Wrapped {
        text: strip_cr(Cow::Borrowed(text)),
        partial,
        stdout,
        time: Cow::Borrowed(time),
    })
}

/// `2026-01-01T00:00:00…`: enough to tell a CRI line from something else, without parsing.
fn looks_like_time(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() >= 20
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
}

fn stream(name: &str) -> Option<bool> {
    match name {
        "stdout" => Some(true),
        "stderr" => Some(false),
        _ => None,
    }
}

fn strip_cr(text: Cow<'_, [u8]>) -> Cow<'_, [u8]> {
    match text {
        Cow::Borrowed(t) => Cow::Borrowed(t.strip_suffix(b"\r").unwrap_or(t)),
        Cow::Owned(mut t) => {
            if t.last() == Some(&b'\r') {
                t.pop();
            }
            Cow::Owned(t)
        }
    }
}

/// The pieces of a line of one stream read so far.
#[derive(Default)]
struct Partial {
    text: Vec<u8>,
    time: String,
    open: bool,
    /// The line is over the length limit: later pieces are skipped until it ends.
    cut: bool,
}

/// Wrapper lines in, the lines the container wrote out (see the module's comment).
pub struct Unwrapper {
    format: Container,
    max: usize,
    /// stdout's pieces, then stderr's: a runtime may interleave the two streams' pieces.
    partial: [Partial; 2],
    /// File bytes read since the last line handed on.
    pending: u64,
    /// Wrapper lines that could not be read.
    pub errors: u64,
    /// Lines cut at the length limit.
    pub cut_lines: u64,
}

impl Unwrapper {
    pub fn new(format: Container, max_line_bytes: usize) -> Unwrapper {
        Unwrapper {
            format,
            max: max_line_bytes,
            partial: Default::default(),
            pending: 0,
            errors: 0,
            cut_lines: 0,
        }
    }

    /// File bytes read but not yet handed on as part of a line. A line's bytes handed on
    /// include those of the other stream's pieces read since the line before: positions stay
    /// whole lines of the file, at the cost of losing the start of a line whose pieces were
    /// interleaved with the other stream's when lookout stops right between them.
    pub fn pending(&self) -> u64 {
        self.pending
    }

    /// Reads one wrapper line (`raw` file bytes); hands `line` each line completed.
    pub fn push(&mut self, wrapper: &[u8], raw: u64, line: &mut impl FnMut(&[u8], u64, Meta)) {
        self.pending += raw;
        let wrapped = match self.format {
            Container::Docker => docker(wrapper),
            Container::Cri => cri(wrapper),
            Container::Auto if wrapper.first() == Some(&b'{') => docker(wrapper),
            Container::Auto => cri(wrapper),
        };
        let Some(w) = wrapped else {
            // An empty line between wrappers is no error (a file ending in a blank line).
            if !wrapper.is_empty() {
                self.errors += 1;
            }
            // Skipped for good, unless the pieces of a line before it are still held.
            if !self.partial.iter().any(|p| p.open) {
                self.pending = 0;
            }
            return;
        };
        let stream = if w.stdout { "stdout" } else { "stderr" };
        let max = self.max;
        let p = &mut self.partial[usize::from(!w.stdout)];
        if !p.open && !w.partial {
            let mut text = &w.text[..];
            if text.len() > max {
                self.cut_lines += 1;
                text = &text[..max];
            }
            let meta = Meta { stream: Some(stream), time: Some(&w.time), pod: None };
            line(text, std::mem::take(&mut self.pending), meta);
            return;
        }
        if !p.open {
            p.open = true;
            p.time.clear();
            p.time.push_str(&w.time);
        }
        let room = max - p.text.len();
        if w.text.len() > room {
            p.text.extend_from_slice(&w.text[..room]);
            if !p.cut {
                p.cut = true;
                self.cut_lines += 1;
            }
        } else {
            p.text.extend_from_slice(&w.text);
        }
        if !w.partial {
            let meta = Meta { stream: Some(stream), time: Some(&p.time), pod: None };
            line(&p.text, std::mem::take(&mut self.pending), meta);
            p.text.clear();
            p.open = false;
            p.cut = false;
        }
    }

    /// Hands on the pieces of unfinished lines as lines (their file will not grow again).
    pub fn finish(&mut self, line: &mut impl FnMut(&[u8], u64, Meta)) {
        for (index, p) in self.partial.iter_mut().enumerate() {
            if p.open {
                let stream = if index == 0 { "stdout" } else { "stderr" };
                let meta = Meta { stream: Some(stream), time: Some(&p.time), pod: None };
                line(&p.text, std::mem::take(&mut self.pending), meta);
                p.text.clear();
                p.open = false;
                p.cut = false;
            }
        }
        self.pending = 0;
    }

    /// Forgets unfinished lines (the file was truncated under them).
    pub fn reset(&mut self) {
        self.partial = Default::default();
        self.pending = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unwrap(format: Container, max: usize, lines: &[&str]) -> (Vec<(String, String)>, Unwrapper) {
        let mut u = Unwrapper::new(format, max);
        let mut out = Vec::new();
        for l in lines {
            u.push(l.as_bytes(), l.len() as u64 + 1, &mut |text, _, meta| {
                out.push((String::from_utf8_lossy(text).into_owned(), meta.stream.unwrap().into()))
            });
        }
        (out, u)
    }

    #[test]
    fn docker_lines_and_their_pieces() {
        let (out, u) = unwrap(
            Container::Docker,
            100,
            &[
                r#"{"log":"GET / 200\n","stream":"stdout","time":"2026-01-01T00:00:00.1Z"}"#,
                r#"{"log":"first half ","stream":"stderr","time":"2026-01-01T00:00:00.2Z"}"#,
                r#"{"log":"out \"quoted\"\r\n","stream":"stdout","time":"2026-01-01T00:00:00.3Z"}"#,
                r#"{"log":"second half\n","stream":"stderr","time":"2026-01-01T00:00:00.4Z"}"#,
                r#"{"log":"no stream\n","time":"2026-01-01T00:00:00.4Z"}"#,
                "not json",
            ],
        );
        let expected = [
            ("GET / 200", "stdout"),
            ("out \"quoted\"", "stdout"),
            ("first half second half", "stderr"),
        ];
        assert_eq!(out, expected.map(|(a, b)| (a.to_string(), b.to_string())));
        assert_eq!(u.errors, 2);
        assert_eq!(u.pending(), 0);
    }

    #[test]
    fn cri_partials_are_joined_and_bounded() {
        let (out, u) = unwrap(
            Container::Cri,
            8,
            &[
                "2026-01-01T00:00:00.000000001Z stdout P abc",
                "2026-01-01T00:00:00.000000002Z stdout P def",
                "2026-01-01T00:00:00.000000003Z stdout P ghi",
                "2026-01-01T00:00:00.000000004Z stdout F jkl",
                "2026-01-01T00:00:00.000000005Z stderr F",
                "2026-01-01T00:00:00.000000006Z stdout X broken",
                "garbage stdout F x",
                "2026-01-01T00:00:00.000000007Z stdout P pending",
            ],
        );
        assert_eq!(out[0], ("abcdefgh".to_string(), "stdout".to_string()));
        assert_eq!(out[1], (String::new(), "stderr".to_string()));
        assert_eq!((out.len(), u.errors, u.cut_lines), (2, 2, 1));
        assert_eq!(u.pending(), "2026-01-01T00:00:00.000000007Z stdout P pending".len() as u64 + 1);
    }

    #[test]
    fn auto_tells_the_wrappers_apart() {
        let (out, u) = unwrap(
            Container::Auto,
            100,
            &[
                r#"{"log":"docker\n","stream":"stdout","time":"2026-01-01T00:00:00Z"}"#,
                "2026-01-01T00:00:00.000000000Z stderr F cri",
            ],
        );
        assert_eq!(out, [("docker".into(), "stdout".into()), ("cri".into(), "stderr".into())]);
        assert_eq!(u.errors, 0);
    }

    #[test]
    fn kubernetes_names_from_paths() {
        let pod = |p: &str| PodPath::of(Path::new(p)).map(|p| (p.namespace, p.pod, p.container));
        let shop = Some(("shop".to_string(), "web-7d4b9c-x2x9z".to_string(), "nginx".to_string()));
        assert_eq!(pod("/var/log/pods/shop_web-7d4b9c-x2x9z_0f1e-22/nginx/0.log"), shop);
        assert_eq!(
            pod("/tmp/t/pods/shop_web-7d4b9c-x2x9z_0f1e-22/nginx/3.log.20260101-000000.gz"),
            shop
        );
        assert_eq!(pod("/var/log/containers/web-7d4b9c-x2x9z_shop_nginx-0123abcd.log"), shop);
        assert_eq!(pod("/var/log/nginx/access.log"), None);
        assert_eq!(pod("/var/log/pods/shop_web_uid/nginx/access.log"), None);
    }
}
