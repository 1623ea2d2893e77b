//! nginx access logs: the `log_format` string itself is compiled into a matcher, so whatever an
//! operator pasted from nginx.conf is parsed exactly; variables become fields.
//!
//! nginx escapes `"` and non-printable bytes in variables (`\x22`), so a value never contains
//! the literal text that follows it in the format: each variable ends where that text starts.
//! `$request` is also split into `request_method`, `request_uri`, `request_path` and
//! `server_protocol`; an empty or garbage request line (nginx logs `-` with status 400) leaves
//! them empty but the record still counts.

use super::Parsed;
use crate::logs::record::Values;
use memchr::memmem::Finder;
use std::borrow::Cow;

pub const COMBINED: &str = r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent""#;

pub fn preset(name: &str) -> Option<String> {
    match name {
        "combined" => Some(COMBINED.to_string()),
        "main" => Some(format!("{COMBINED} \"$http_x_forwarded_for\"")),
        "combined_timed" | "timed" => Some(format!("{COMBINED} $request_time")),
        _ => None,
    }
}

enum Segment {
    Literal(Vec<u8>),
    /// A variable's field index and the finder of the literal after it (none: to the end).
    Variable(usize, Option<Box<Finder<'static>>>),
}

pub struct NginxFormat {
    segments: Vec<Segment>,
    fields: Vec<String>,
    /// Index of `$request` and of the fields derived from it.
    request: Option<(usize, [usize; 4])>,
}

const DERIVED: [&str; 4] = ["request_method", "request_uri", "request_path", "server_protocol"];

impl NginxFormat {
    pub fn compile(format: &str) -> Result<NginxFormat, String> {
        let mut segments = Vec::new();
        let mut fields: Vec<String> = Vec::new();
        let mut literal = Vec::new();
        let bytes = format.as_bytes();
        let mut i = 0;
        let mut last_was_variable = false;
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
                segments.push(Segment::Literal(std::mem::take(&mut literal)));
            } else if last_was_variable {
                return Err(format!("variables ${} and the one before it have no text between them, so they cannot be told apart", name));
            }
            if fields.iter().any(|f| f == name) {
                return Err(format!("variable ${name} appears twice"));
            }
            fields.push(name.to_string());
            segments.push(Segment::Variable(fields.len() - 1, None));
            last_was_variable = true;
            i = next;
        }
        if !literal.is_empty() {
            segments.push(Segment::Literal(literal));
        }
        if fields.is_empty() {
            return Err("log_format has no $variable".into());
        }
        // Each variable ends where the literal after it begins.
        for k in 0..segments.len() {
            if let Segment::Literal(text) = &segments[k] {
                let finder = Box::new(Finder::new(text).into_owned());
                if let Some(Segment::Variable(_, end)) = k.checked_sub(1).map(|p| &mut segments[p])
                {
                    *end = Some(finder);
                }
            }
        }
        let request = fields.iter().position(|f| f == "request").map(|r| {
            let mut derived = [0; 4];
            for (slot, name) in derived.iter_mut().zip(DERIVED) {
                *slot = fields.iter().position(|f| f == name).unwrap_or_else(|| {
                    fields.push(name.to_string());
                    fields.len() - 1
                });
            }
            (r, derived)
        });
        Ok(NginxFormat { segments, fields, request })
    }

    pub fn fields(&self) -> &[String] {
        &self.fields
    }

    pub fn parse<'a>(&self, line: &'a str, values: &mut Values<'a>) -> Parsed {
        let bytes = line.as_bytes();
        let mut pos = 0;
        for segment in &self.segments {
            match segment {
                Segment::Literal(text) => {
                    if !bytes[pos..].starts_with(text) {
                        return Parsed::Unmatched;
                    }
                    pos += text.len();
                }
                Segment::Variable(field, end) => {
                    let stop = match end {
                        Some(finder) => match finder.find(&bytes[pos..]) {
                            Some(offset) => pos + offset,
                            None => return Parsed::Unmatched,
                        },
                        None => bytes.len(),
                    };
                    values[*field] = Some(Cow::Borrowed(&line[pos..stop]));
                    pos = stop;
                }
            }
        }
        if let Some((request, [method, uri, path, protocol])) = self.request {
            let text: &'a str = match &values[request] {
                Some(Cow::Borrowed(t)) => t,
                _ => "",
            };
            let mut parts = text.splitn(3, ' ');
            let (m, u, p) = (parts.next(), parts.next(), parts.next());
            if let (Some(m), Some(u), Some(p)) = (m, u, p) {
                if values[method].is_none() {
                    values[method] = Some(Cow::Borrowed(m));
                }
                values[uri] = Some(Cow::Borrowed(u));
                values[path] = Some(Cow::Borrowed(u.split('?').next().unwrap_or(u)));
                values[protocol] = Some(Cow::Borrowed(p));
            } else if values[method].is_none() {
                values[method] = Some(Cow::Borrowed(""));
            }
        }
        Parsed::Record
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
        assert!(NginxFormat::compile("$remote_addr$remote_user").is_err());
        assert!(NginxFormat::compile("no variables").is_err());
        assert!(NginxFormat::compile("$a $a").is_err());
        assert!(NginxFormat::compile("${remote_addr}-${status}").is_ok());
    }
}
