//! nginx access logs: the `log_format` itself is compiled into a matcher, so whatever an
//! operator pasted from nginx.conf is parsed exactly; variables become fields.
//!
//! Where a format is provably unambiguous the matcher is a `memchr` split: nginx escapes `"`,
//! `\\` and control bytes in values, so a value never holds a literal that has one of them (or
//! a byte the variable's values never hold, see [`grammar`]) and ends where it starts. Elsewhere
//! each variable's grammar decides: values with a shape of their own (`$time_local`, `$status`,
//! upstream lists) end where the shape does, adjacent variables where the first one's
//! characters end (`$host$request_uri`), and free text before a literal it can hold
//! (`$request $status`) at the nearest occurrence after which the rest of the record matches.
//!
//! `$request` is also split into `request_method`, `request_uri`, `request_path` and
//! `server_protocol`, unless the format logs them itself; an empty or garbage request line (nginx
//! logs `-` with status 400) leaves them empty but the record still counts.

mod directive;
pub mod grammar;

use super::Parsed;
use crate::logs::framing::Framing;
use crate::logs::record::Values;
use grammar::{Escape, Grammar};
use memchr::memmem::Finder;
use regex::Regex;
use std::borrow::Cow;

pub const COMBINED: &str = r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent""#;

/// A regex for the first line of a format that spans several: its literals, anything for its
/// variables.
fn first_line_pattern(parts: &[Result<(usize, &str), Vec<u8>>]) -> Regex {
    let mut pattern = String::from("^");
    for part in parts {
        match part {
            Ok(_) => pattern.push_str("(?s:.*)"),
            Err(text) => {
                let text = String::from_utf8_lossy(text);
                pattern.push_str(&regex::escape(text.split('\n').next().unwrap_or_default()));
                if text.contains('\n') {
                    break;
                }
            }
        }
    }
    pattern.push('$');
    Regex::new(&pattern).expect("escaped literals make a valid regex")
}

pub fn preset(name: &str) -> Option<String> {
    match name {
        "combined" => Some(COMBINED.to_string()),
        "main" => Some(format!("{COMBINED} \"$http_x_forwarded_for\"")),
        "combined_timed" | "timed" => Some(format!("{COMBINED} $request_time")),
        _ => None,
    }
}

/// Candidate ends tried per record before it counts as unmatched: a hostile line cannot make
/// the backtracking matcher work without bound.
const MAX_ATTEMPTS: u32 = 1024;

/// How a variable's value ends.
enum End {
    /// At the first occurrence of the literal after it: its values never hold that literal.
    Literal(Box<Finder<'static>>),
    /// Where the value's own shape ends.
    Shape,
    /// At an occurrence of the literal after it, nearest first, such that the rest matches.
    Search(Box<Finder<'static>>),
    /// Where the characters its values hold end: the variable after it (of this grammar)
    /// starts with another.
    Charset(Grammar),
    /// At the end of the record.
    Record,
}

enum Segment {
    Literal(Vec<u8>),
    Variable {
        field: usize,
        grammar: Grammar,
        /// Written before in the format: the value must be the same.
        repeat: bool,
        /// The value after a split that was a choice: its grammar confirms the choice (others
        /// are where nginx's escaping or their shape put them, and need no check).
        check: bool,
        end: End,
    },
}

/// A format that cannot be compiled, and the text of the format the error is about (to be
/// located in the configuration file).
#[derive(Debug)]
pub struct FormatError {
    pub message: String,
    pub near: Option<String>,
}

impl From<String> for FormatError {
    fn from(message: String) -> FormatError {
        FormatError { message, near: None }
    }
}

/// The fields split out of `$request`; `None` where the format logs that variable itself.
struct RequestSplit {
    request: usize,
    method: Option<usize>,
    uri: Option<usize>,
    path: Option<usize>,
    protocol: Option<usize>,
}

pub struct NginxFormat {
    segments: Vec<Segment>,
    fields: Vec<String>,
    escape: Escape,
    request: Option<RequestSplit>,
    /// Lines a record spans (the format's newlines plus one), and what the first of them
    /// looks like when there are several.
    lines: usize,
    first_line: Option<Regex>,
}

const DERIVED: [&str; 4] = ["request_method", "request_uri", "request_path", "server_protocol"];

impl NginxFormat {
    /// Compiles a preset name, a pasted `log_format` directive, its quoted strings or the bare
    /// format text.
    pub fn compile(text: &str) -> Result<NginxFormat, FormatError> {
        Self::compile_with(text, &|name| Grammar::of(name))
    }

    /// [`NginxFormat::compile`] with the grammar of each variable from `grammar`.
    pub fn compile_with(
        text: &str,
        grammar: &dyn Fn(&str) -> Grammar,
    ) -> Result<NginxFormat, FormatError> {
        match preset(text) {
            Some(format) => Self::compile_format(&format, Escape::Default, grammar),
            None => {
                let directive = directive::read(text)?;
                Self::compile_format(&directive.format, directive.escape, grammar)
            }
        }
    }

    fn compile_format(
        format: &str,
        escape: Escape,
        grammar_of: &dyn Fn(&str) -> Grammar,
    ) -> Result<NginxFormat, FormatError> {
        // (field, as written) per variable occurrence, literals between them.
        let mut parts: Vec<Result<(usize, &str), Vec<u8>>> = Vec::new();
        let mut fields: Vec<String> = Vec::new();
        let bytes = format.as_bytes();
        let mut literal = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] != b'$' {
                literal.push(bytes[i]);
                i += 1;
                continue;
            }
            let (name, next) = if bytes.get(i + 1) == Some(&b'{') {
                let close =
                    format[i..].find('}').ok_or_else(|| format!("unclosed ${{ at byte {i}"))? + i;
                (&format[i + 2..close], close + 1)
            } else {
                let end = format[i + 1..]
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .map_or(format.len(), |e| e + i + 1);
                (&format[i + 1..end], end)
            };
            if name.is_empty() {
                literal.push(b'$');
                i += 1;
                continue;
            }
            if !literal.is_empty() {
                parts.push(Err(std::mem::take(&mut literal)));
            }
            let field = fields.iter().position(|f| f == name).unwrap_or_else(|| {
                fields.push(name.to_string());
                fields.len() - 1
            });
            parts.push(Ok((field, &format[i..next])));
            i = next;
        }
        if !literal.is_empty() {
            parts.push(Err(literal));
        }
        if fields.is_empty() {
            return Err("log_format has no $variable".to_string().into());
        }
        let mut segments = Vec::with_capacity(parts.len());
        let mut seen = vec![false; fields.len()];
        let mut after_choice = false;
        for (k, part) in parts.iter().enumerate() {
            let (field, written) = match part {
                Err(text) => {
                    segments.push(Segment::Literal(text.clone()));
                    continue;
                }
                Ok(variable) => *variable,
            };
            let grammar = grammar_of(&fields[field]);
            let end = match parts.get(k + 1) {
                None if grammar.delimits_itself() => End::Shape,
                None => End::Record,
                Some(Err(text)) => {
                    let finder = Box::new(Finder::new(text).into_owned());
                    if text.iter().any(|&b| !grammar.holds(b, escape)) {
                        End::Literal(finder)
                    } else if grammar.delimits_itself() {
                        End::Shape
                    } else {
                        End::Search(finder)
                    }
                }
                Some(Ok((next, next_written))) => {
                    let next_grammar = grammar_of(&fields[*next]);
                    let overlap = (0..=255u8).find(|&b| {
                        next_grammar.can_start_with(b, escape) && grammar.holds(b, escape)
                    });
                    match overlap {
                        _ if grammar.delimits_itself() => End::Shape,
                        None => End::Charset(next_grammar),
                        Some(b) => {
                            return Err(FormatError {
                                message: format!(
                                    "{written} and {next_written} have no text between them, and a value of {written} can hold {:?}, which can begin one of {next_written}, so nginx's output cannot be split; put a separator between them",
                                    b as char
                                ),
                                near: Some(format!("{written}{next_written}")),
                            });
                        }
                    }
                }
            };
            let chose = matches!(end, End::Search(_) | End::Charset(_));
            let check = std::mem::replace(&mut after_choice, chose);
            segments.push(Segment::Variable { field, grammar, repeat: seen[field], check, end });
            seen[field] = true;
        }
        let logged = fields.len();
        let request = fields.iter().position(|f| f == "request").map(|request| {
            let mut slot = |name: &str| match fields.iter().position(|f| f == name) {
                Some(i) if i < logged => None,
                Some(i) => Some(i),
                None => {
                    fields.push(name.to_string());
                    Some(fields.len() - 1)
                }
            };
            let [method, uri, path, protocol] = DERIVED.map(&mut slot);
            RequestSplit { request, method, uri, path, protocol }
        });
        let lines = format.matches('\n').count() + 1;
        let first_line = (lines > 1).then(|| first_line_pattern(&parts));
        Ok(NginxFormat { segments, fields, escape, request, lines, first_line })
    }

    pub fn fields(&self) -> &[String] {
        &self.fields
    }

    /// How records are framed: a format with newlines writes records of several lines.
    pub fn framing(&self) -> Framing {
        match &self.first_line {
            Some(start) => Framing { start: Some(start.clone()), lines: self.lines },
            None => Framing::default(),
        }
    }

    pub fn parse<'a>(&self, record: &'a str, values: &mut Values<'a>) -> Parsed {
        let mut attempts = MAX_ATTEMPTS;
        if !self.matches(record, 0, 0, values, &mut attempts) {
            return Parsed::Unmatched;
        }
        if let Some(split) = &self.request {
            let text: &'a str = match &values[split.request] {
                Some(Cow::Borrowed(t)) => t,
                _ => "",
            };
            // `METHOD URI PROTOCOL`, split by bytes: a per-record hot path.
            let space =
                |t: &'a str| memchr::memchr(b' ', t.as_bytes()).map(|i| (&t[..i], &t[i + 1..]));
            let (method, uri, protocol) = match space(text) {
                Some((method, rest)) => match space(rest) {
                    Some((uri, protocol)) => (Some(method), Some(uri), Some(protocol)),
                    None => (Some(method), Some(rest), None),
                },
                None => (Some(text), None, None),
            };
            let mut set = |slot: Option<usize>, value: &'a str| {
                if let Some(i) = slot {
                    values[i] = Some(Cow::Borrowed(value));
                }
            };
            match (method, uri) {
                (Some(method), Some(uri)) => {
                    set(split.method, method);
                    set(split.uri, uri);
                    set(
                        split.path,
                        memchr::memchr(b'?', uri.as_bytes()).map_or(uri, |q| &uri[..q]),
                    );
                    set(split.protocol, protocol.unwrap_or(""));
                }
                _ => set(split.method, ""),
            }
        }
        Parsed::Record
    }

    /// Whether `record` from `pos` matches the segments from `seg` on, filling `values`.
    fn matches<'a>(
        &self,
        record: &'a str,
        mut seg: usize,
        mut pos: usize,
        values: &mut Values<'a>,
        attempts: &mut u32,
    ) -> bool {
        let bytes = record.as_bytes();
        while let Some(segment) = self.segments.get(seg) {
            seg += 1;
            let (field, grammar, end, check) = match segment {
                Segment::Literal(text) => {
                    if !bytes[pos..].starts_with(text) {
                        return false;
                    }
                    pos += text.len();
                    continue;
                }
                Segment::Variable { field, repeat: true, .. } => {
                    let earlier = values[*field].as_deref().unwrap_or("");
                    if !record[pos..].starts_with(earlier) {
                        return false;
                    }
                    pos += earlier.len();
                    continue;
                }
                Segment::Variable { field, grammar, end, check, .. } => {
                    (*field, *grammar, end, *check)
                }
            };
            // Where the value stops, and where matching goes on: past the literal after it
            // when that literal is what was found (no need to compare it again).
            let (stop, next) = match end {
                End::Literal(finder) => match self.find(finder, bytes, pos) {
                    Some(at) if !check || grammar.accepts(&bytes[pos..at], self.escape) => {
                        (at, at + finder.needle().len())
                    }
                    _ => return false,
                },
                End::Shape => match grammar.end(bytes, pos, self.escape) {
                    Some(at) => (at, at),
                    None => return false,
                },
                End::Record if !check || grammar.accepts(&bytes[pos..], self.escape) => {
                    (bytes.len(), bytes.len())
                }
                End::Record => return false,
                End::Search(finder) => {
                    let mut from = pos;
                    while let Some(at) = self.find(finder, bytes, from) {
                        let past = (seg + 1, at + finder.needle().len());
                        if self.attempt(record, field, grammar, pos..at, past, values, attempts) {
                            return true;
                        }
                        from = at + 1;
                    }
                    return false;
                }
                End::Charset(next) => {
                    let held = bytes[pos..].iter().take_while(|&&b| grammar.holds(b, self.escape));
                    let longest = pos + held.count();
                    // Longest first where the next value can begin; then any split (the next
                    // value empty).
                    let starts = |at: usize| {
                        bytes.get(at).is_some_and(|&b| next.may_start_with(b, self.escape))
                    };
                    let candidates = (pos..=longest).rev().filter(|&at| starts(at));
                    let mut others = (pos..=longest).rev().filter(|&at| !starts(at));
                    return candidates.chain(&mut others).any(|at| {
                        record.is_char_boundary(at)
                            && self.attempt(
                                record,
                                field,
                                grammar,
                                pos..at,
                                (seg, at),
                                values,
                                attempts,
                            )
                    });
                }
            };
            values[field] = Some(Cow::Borrowed(&record[pos..stop]));
            if next > stop {
                seg += 1;
            }
            pos = next;
        }
        pos == bytes.len()
    }

    /// Tries `record[value]` for `field`, then the rest of the record from segment and
    /// position `resume`.
    #[allow(clippy::too_many_arguments)]
    fn attempt<'a>(
        &self,
        record: &'a str,
        field: usize,
        grammar: Grammar,
        value: std::ops::Range<usize>,
        resume: (usize, usize),
        values: &mut Values<'a>,
        attempts: &mut u32,
    ) -> bool {
        if *attempts == 0 || !grammar.accepts(&record.as_bytes()[value.clone()], self.escape) {
            return false;
        }
        *attempts -= 1;
        values[field] = Some(Cow::Borrowed(&record[value]));
        self.matches(record, resume.0, resume.1, values, attempts)
    }

    /// The first occurrence of a literal from `from` on; with `escape=json`, a `"` that is
    /// escaped (after an odd number of backslashes) is part of a value, not the literal.
    #[inline]
    fn find(&self, finder: &Finder<'_>, bytes: &[u8], mut from: usize) -> Option<usize> {
        loop {
            let at = from + finder.find(&bytes[from..])?;
            if self.escape != Escape::Json || finder.needle()[0] != b'"' {
                return Some(at);
            }
            let backslashes = bytes[..at].iter().rev().take_while(|&&b| b == b'\\').count();
            if backslashes % 2 == 0 {
                return Some(at);
            }
            from = at + 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse<'a>(format: &NginxFormat, line: &'a str) -> Option<Vec<(String, String)>> {
        let mut values: Values<'a> = vec![None; format.fields().len()];
        match format.parse(line, &mut values) {
            Parsed::Record => Some(
                format
                    .fields()
                    .iter()
                    .cloned()
                    .zip(values.into_iter().map(|v| v.map(|c| c.into_owned()).unwrap_or_default()))
                    .collect(),
            ),
            _ => None,
        }
    }

    fn get<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
        fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap()
    }

    #[test]
    fn combined_with_request_time() {
        let f = NginxFormat::compile(&preset("combined_timed").unwrap()).unwrap();
        let line = r#"2001:db8::1f - alice [20/Nov/2026:10:00:00 +0900] "GET /api/v1/users/7?x=1 HTTP/1.1" 503 123 "-" "evil\x22agent" 1.250"#;
        let fields = parse(&f, line).unwrap();
        assert_eq!(get(&fields, "remote_addr"), "2001:db8::1f");
        assert_eq!(get(&fields, "remote_user"), "alice");
        assert_eq!(get(&fields, "time_local"), "20/Nov/2026:10:00:00 +0900");
        assert_eq!(get(&fields, "status"), "503");
        assert_eq!(get(&fields, "http_user_agent"), r"evil\x22agent");
        assert_eq!(get(&fields, "request_time"), "1.250");
        assert_eq!(get(&fields, "request_method"), "GET");
        assert_eq!(get(&fields, "request_uri"), "/api/v1/users/7?x=1");
        assert_eq!(get(&fields, "request_path"), "/api/v1/users/7");
        assert_eq!(get(&fields, "server_protocol"), "HTTP/1.1");
    }

    #[test]
    fn empty_and_garbage_request_lines_still_count() {
        let f = NginxFormat::compile(COMBINED).unwrap();
        let dash =
            parse(&f, r#"10.0.0.1 - - [20/Nov/2026:10:00:00 +0900] "-" 400 0 "-" "-""#).unwrap();
        assert_eq!(get(&dash, "status"), "400");
        assert_eq!(get(&dash, "request_method"), "");
        let tls = parse(&f, r#"10.0.0.1 - - [20/Nov/2026:10:00:00 +0900] "\x16\x03\x01\x00\xF4\x01" 400 157 "" "-""#).unwrap();
        assert_eq!(get(&tls, "request"), r"\x16\x03\x01\x00\xF4\x01");
        assert_eq!(get(&tls, "http_referer"), "");
    }

    #[test]
    fn upstream_format_without_space_before_rt() {
        let format = format!(
            "{COMBINED}rt=$request_time uct=\"$upstream_connect_time\" uht=\"$upstream_header_time\" urt=\"$upstream_response_time\""
        );
        let f = NginxFormat::compile(&format).unwrap();
        let line = r#"1.2.3.4 - - [20/Nov/2026:10:00:00 +0900] "POST /login HTTP/1.1" 502 0 "-" "curl/8.5.0"rt=0.100 uct="0.001" uht="0.098" urt="0.050, 0.050""#;
        let fields = parse(&f, line).unwrap();
        assert_eq!(get(&fields, "upstream_response_time"), "0.050, 0.050");
        assert_eq!(get(&fields, "request_time"), "0.100");
    }

    #[test]
    fn lines_of_another_format_do_not_match() {
        let f = NginxFormat::compile(COMBINED).unwrap();
        assert!(parse(&f, "2026-11-20 10:00:00.000  INFO 1 --- [main] x : y").is_none());
        assert!(parse(&f, "").is_none());
    }

    #[test]
    fn ambiguous_formats_are_refused() {
        let refused = |format: &str| NginxFormat::compile(format).err().map(|e| e.near);
        assert_eq!(
            refused("$remote_addr$remote_user"),
            Some(Some("$remote_addr$remote_user".into()))
        );
        assert_eq!(
            refused("$http_user_agent$http_referer").flatten().as_deref(),
            Some("$http_user_agent$http_referer")
        );
        assert_eq!(
            refused("$status $body_bytes_sent${request_length}").flatten().as_deref(),
            Some("$body_bytes_sent${request_length}")
        );
        // README's table of refused pairs.
        for pair in [
            "$remote_user$request",
            "$request_length$status",
            "$remote_addr$remote_port",
            "$server_name$server_port",
            "$host$http_host",
            "$host$server_port",
        ] {
            assert_eq!(refused(pair).flatten().as_deref(), Some(pair));
        }
        assert!(refused("no variables").is_some());
        assert!(refused("${remote_addr}-${status}").is_none());
        assert!(refused("$scheme://$host$request_uri").is_none());
        assert!(refused("$request_method$request_uri").is_none());
        assert!(refused("$msec$request_time$status").is_none());
    }

    #[test]
    fn addresses_before_a_port() {
        let f = NginxFormat::compile("$remote_addr:$remote_port $status").unwrap();
        let fields = parse(&f, "2001:db8::1:8080 200").unwrap();
        assert_eq!(get(&fields, "remote_addr"), "2001:db8::1");
        assert_eq!(get(&fields, "remote_port"), "8080");
    }

    #[test]
    fn repeated_variables_hold_one_value() {
        let f = NginxFormat::compile(
            r#"{"rt": $request_time, "duration": $request_time, "s": "$status"}"#,
        )
        .unwrap();
        let fields = parse(&f, r#"{"rt": 0.250, "duration": 0.250, "s": "200"}"#).unwrap();
        assert_eq!(get(&fields, "request_time"), "0.250");
        assert!(parse(&f, r#"{"rt": 0.250, "duration": 0.251, "s": "200"}"#).is_none());
    }

    #[test]
    fn adjacent_variables_split_by_their_shapes() {
        let f = NginxFormat::compile("$request_method $scheme://$host$request_uri => $status (${body_bytes_sent}B in ${request_time}s) <- $http_referer").unwrap();
        let fields = parse(&f, "GET https://example.com-x.org/a/b?c=d => 200 (612B in 0.001s) <- https://ref.example/ x").unwrap();
        assert_eq!(get(&fields, "host"), "example.com-x.org");
        assert_eq!(get(&fields, "request_uri"), "/a/b?c=d");
        assert_eq!(get(&fields, "http_referer"), "https://ref.example/ x");
        let fields = parse(&f, "OPTIONS http://example.com* => 204 (0B in 0.000s) <- -").unwrap();
        assert_eq!((get(&fields, "host"), get(&fields, "request_uri")), ("example.com", "*"));
        let f = NginxFormat::compile("$msec$request_time$status").unwrap();
        let fields = parse(&f, "1700000000.1230.002404").unwrap();
        assert_eq!(get(&fields, "msec"), "1700000000.123");
        assert_eq!(get(&fields, "request_time"), "0.002");
        assert_eq!(get(&fields, "status"), "404");
    }

    #[test]
    fn free_text_unquoted_ends_where_the_rest_fits() {
        let f = NginxFormat::compile("$remote_addr $remote_user [$time_local] $request $status $body_bytes_sent $http_user_agent").unwrap();
        let fields =
            parse(&f, "::1 a [b [20/Nov/2026:10:00:00 +0900] GET / HTTP/1.1 200 5 curl/8 (x) 1")
                .unwrap();
        assert_eq!(get(&fields, "remote_user"), "a [b");
        assert_eq!(get(&fields, "request"), "GET / HTTP/1.1");
        assert_eq!(get(&fields, "status"), "200");
        assert_eq!(get(&fields, "http_user_agent"), "curl/8 (x) 1");
        let f = NginxFormat::compile("$time_local $uri $status").unwrap();
        let fields = parse(&f, "20/Nov/2026:10:00:00 +0900 /a b 200 /c 404").unwrap();
        assert_eq!(get(&fields, "uri"), "/a b 200 /c");
        assert_eq!(get(&fields, "status"), "404");
    }

    #[test]
    fn upstream_lists_unquoted() {
        let f = NginxFormat::compile("$upstream_addr $upstream_response_length $upstream_response_time $upstream_status $request_id").unwrap();
        let fields = parse(&f, "127.0.0.1:81, 127.0.0.1:82 : unix:/run/a.sock 0, 12 : 7 0.001, 0.002 : - 502, 200 : 404 abc").unwrap();
        assert_eq!(get(&fields, "upstream_addr"), "127.0.0.1:81, 127.0.0.1:82 : unix:/run/a.sock");
        assert_eq!(get(&fields, "upstream_response_length"), "0, 12 : 7");
        assert_eq!(get(&fields, "upstream_response_time"), "0.001, 0.002 : -");
        assert_eq!(get(&fields, "upstream_status"), "502, 200 : 404");
        let fields = parse(&f, "- - - - abc").unwrap();
        assert_eq!(get(&fields, "upstream_status"), "-");
    }

    #[test]
    fn logged_fields_are_never_overwritten_by_derived_ones() {
        let f = NginxFormat::compile(r#""$request" $request_uri $server_protocol $request_method"#)
            .unwrap();
        let fields = parse(&f, r#""GET /a%20b?x HTTP/1.1" /logged HTTP/2.0 POST"#).unwrap();
        assert_eq!(get(&fields, "request_uri"), "/logged");
        assert_eq!(get(&fields, "server_protocol"), "HTTP/2.0");
        assert_eq!(get(&fields, "request_method"), "POST");
        assert_eq!(get(&fields, "request_path"), "/a%20b");
    }

    #[test]
    fn json_escaped_quotes_stay_in_values() {
        let f = NginxFormat::compile(
            r#"log_format j escape=json '{"ua":"$http_user_agent","s":$status}';"#,
        )
        .unwrap();
        let fields = parse(&f, r#"{"ua":"a \"q\" \\","s":200}"#).unwrap();
        assert_eq!(get(&fields, "http_user_agent"), r#"a \"q\" \\"#);
        assert_eq!(get(&fields, "status"), "200");
    }

    #[test]
    fn hostile_records_stop_after_a_bounded_search() {
        let f = NginxFormat::compile("$request $http_x $request $http_y $status").unwrap();
        let line = format!("{} x", "a ".repeat(5000));
        assert!(parse(&f, &line).is_none());
    }

    #[test]
    fn formats_with_newlines_frame_several_lines() {
        let f = NginxFormat::compile(r#"'$remote_addr [$time_local]\n  "$request" $status\n'"#)
            .unwrap();
        let framing = f.framing();
        assert_eq!(framing.lines, 3);
        assert!(framing.start.unwrap().is_match("::1 [20/Nov/2026:10:00:00 +0900]"));
        let fields =
            parse(&f, "::1 [20/Nov/2026:10:00:00 +0900]\n  \"GET / HTTP/1.1\" 200\n").unwrap();
        assert_eq!(get(&fields, "status"), "200");
    }
}
