//! What nginx can write for a variable: each variable gets the grammar of its values, so a
//! format whose variables can hold the text that follows them (`$request $status`, unquoted
//! `$time_local`, upstream lists such as `10.0.0.1:80, 10.0.0.2:80`, the decoded `$uri`) is
//! split where the values' shapes say, and adjacent variables (`$host$request_uri`) where one
//! value's characters end.

/// How nginx escapes values (`log_format … escape=`): which bytes a value can hold as themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Escape {
    /// `"`, `\`, control bytes and bytes from 0x7f up are written as `\xHH`.
    #[default]
    Default,
    /// `"` and `\` are written as `\"` and `\\`, control bytes as `\n`, `\u0001`…
    Json,
    /// Values are written as they are.
    None,
}

impl Escape {
    pub fn parse(name: &str) -> Option<Escape> {
        match name {
            "default" => Some(Escape::Default),
            "json" => Some(Escape::Json),
            "none" => Some(Escape::None),
            _ => None,
        }
    }

    /// Whether a value written in this mode can hold `byte` as itself. With `json`, a `"` in a
    /// value is always preceded by a backslash; the matcher finds unescaped quotes by counting
    /// backslashes, so a quote counts as not held.
    /// What nginx writes for a variable without a value: `-`, or nothing with `json`.
    pub fn absent(self) -> &'static [u8] {
        match self {
            Escape::Json => b"",
            _ => b"-",
        }
    }

    pub fn writes(self, byte: u8) -> bool {
        match self {
            Escape::Default => (0x20..0x7f).contains(&byte) && byte != b'"',
            Escape::Json => byte >= 0x20 && byte != b'"',
            Escape::None => true,
        }
    }
}

/// The shape of one item of an upstream list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item {
    /// An address (`10.0.0.1:80`, `[::1]:80`, `unix:/run/app.sock`) or an upstream group name.
    Address,
    /// Bytes (`$upstream_response_length`, `$upstream_bytes_received`).
    Integer,
    /// Seconds with milliseconds (`0.012`).
    Millis,
    /// A status code (`502`).
    Status,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grammar {
    /// Anything the escape mode writes: headers, `$request`, `$remote_user`, custom variables.
    Text,
    /// No spaces: addresses, ids, query strings, protocol names.
    Word,
    /// An HTTP token (`$request_method`, `$scheme`): no `/`, no space.
    Token,
    /// `$host`: never holds `/` (nginx refuses such a Host) or a space.
    Host,
    /// `$request_uri`: the request target as sent, `/…` or `*`; no spaces (nginx refuses them).
    Target,
    /// `$uri`, `$document_uri`: decoded and normalised, `/…`, may hold spaces.
    Path,
    /// Decimal digits: sizes, counts, ports.
    Integer,
    /// Digits with an optional fraction (`$gzip_ratio` `2.51`).
    Decimal,
    /// Seconds with three decimals (`$request_time`, `$msec`).
    Millis,
    /// Three digits (`$status`).
    Status,
    /// `20/Nov/2026:10:00:00 +0900`.
    TimeLocal,
    /// `2026-11-20T10:00:00+09:00`.
    TimeIso8601,
    /// Items separated by `, ` (another upstream tried) or ` : ` (an internal redirect).
    List(Item),
}

impl Grammar {
    /// The grammar of a variable nginx writes; variables it does not know (`set`, `map`,
    /// modules) are free text.
    pub fn of(variable: &str) -> Grammar {
        Grammar::of_builtin(variable).unwrap_or(Grammar::Text)
    }

    /// The grammar of a built-in variable of the http modules in Debian's nginx; `None` for a
    /// variable nginx does not know.
    pub fn of_builtin(variable: &str) -> Option<Grammar> {
        use Grammar::*;
        Some(match variable {
            "time_local" => TimeLocal,
            "time_iso8601" => TimeIso8601,
            "msec" | "request_time" => Millis,
            "status" => Status,
            "body_bytes_sent"
            | "bytes_sent"
            | "request_length"
            | "connection"
            | "connection_requests"
            | "pid"
            | "remote_port"
            | "server_port"
            | "proxy_port" => Integer,
            "gzip_ratio" => Decimal,
            "request_method" | "scheme" => Token,
            "host" => Host,
            "request_uri" => Target,
            "uri" | "document_uri" => Path,
            "remote_addr"
            | "realip_remote_addr"
            | "realip_remote_port"
            | "server_addr"
            | "request_id"
            | "server_protocol"
            | "args"
            | "query_string"
            | "is_args"
            | "pipe"
            | "https"
            | "server_name"
            | "hostname"
            | "nginx_version"
            | "proxy_host"
            | "proxy_protocol_addr"
            | "proxy_protocol_port"
            | "upstream_cache_status"
            | "ssl_protocol"
            | "ssl_cipher"
            | "ssl_session_id"
            | "ssl_session_reused"
            | "ssl_server_name"
            | "ssl_client_verify"
            | "ssl_early_data"
            | "http2"
            | "binary_remote_addr"
            | "request_completion" => Word,
            "upstream_addr" => List(Item::Address),
            "upstream_status" => List(Item::Status),
            "upstream_response_time"
            | "upstream_connect_time"
            | "upstream_header_time"
            | "upstream_queue_time" => List(Item::Millis),
            "upstream_response_length" | "upstream_bytes_received" | "upstream_bytes_sent" => {
                List(Item::Integer)
            }
            name if name.starts_with("arg_") => Word,
            "connection_time"
            | "content_length"
            | "content_type"
            | "document_root"
            | "limit_rate"
            | "proxy_add_x_forwarded_for"
            | "realpath_root"
            | "remote_user"
            | "request"
            | "request_body"
            | "request_body_file"
            | "request_filename" => Text,
            name if ["http_", "sent_http_", "cookie_", "upstream_http_"]
                .iter()
                .any(|p| name.starts_with(p)) =>
            {
                Text
            }
            _ => return None,
        })
    }

    /// Whether the value's own shape says where it ends, whatever follows it.
    pub fn delimits_itself(self) -> bool {
        use Grammar::*;
        matches!(self, Millis | Status | TimeLocal | TimeIso8601 | List(_))
    }

    /// Whether a value can hold `byte` (written in `escape` mode).
    pub fn holds(self, byte: u8, escape: Escape) -> bool {
        use Grammar::*;
        if !escape.writes(byte) {
            return false;
        }
        match self {
            Text | Path => true,
            Word | Target => byte != b' ',
            Token => is_token(byte),
            Host => byte != b'/' && byte != b' ',
            Integer | Status => byte.is_ascii_digit() || byte == b'-',
            Decimal | Millis => byte.is_ascii_digit() || byte == b'.' || byte == b'-',
            TimeLocal => byte.is_ascii_alphanumeric() || b"/: +-".contains(&byte),
            TimeIso8601 => byte.is_ascii_alphanumeric() || b":+-".contains(&byte),
            List(_) => true,
        }
    }

    /// Whether a value of the usual shape can begin with `byte`.
    pub fn can_start_with(self, byte: u8, escape: Escape) -> bool {
        use Grammar::*;
        match self {
            Target | Path => byte == b'/',
            Integer | Decimal | Millis | Status | TimeLocal | TimeIso8601 => byte.is_ascii_digit(),
            Token => is_token(byte) && byte != b'-',
            Host => byte.is_ascii_alphanumeric() || byte == b'[',
            _ => self.holds(byte, escape),
        }
    }

    /// Whether a value that does not have the usual shape can begin with `byte`: nginx's `-`
    /// for "no value", `*` for `OPTIONS *`.
    pub fn may_start_with(self, byte: u8, escape: Escape) -> bool {
        self.can_start_with(byte, escape)
            || byte == b'-'
            || (self == Grammar::Target && byte == b'*')
    }

    /// Whether `value` is one nginx can write for this grammar. No value always is, and so is
    /// an empty one (a `set` variable of a request that never reached the `set`).
    pub fn accepts(self, value: &[u8], escape: Escape) -> bool {
        use Grammar::*;
        if value == escape.absent() || value.is_empty() {
            return true;
        }
        match self {
            Text | Path => true,
            Word => !value.contains(&b' '),
            Host => !value.iter().any(|&b| b == b' ' || b == b'/'),
            Token => value.iter().all(|&b| is_token(b)),
            Target => (value.first() == Some(&b'/') && !value.contains(&b' ')) || value == b"*",
            Integer => !value.is_empty() && value.iter().all(u8::is_ascii_digit),
            Decimal => decimal(value),
            _ => self.end(value, 0, escape) == Some(value.len()),
        }
    }

    /// For grammars that delimit themselves: where a value starting at `pos` ends (an empty
    /// value when none of the shape is there).
    #[inline]
    pub fn end(self, line: &[u8], pos: usize, escape: Escape) -> Option<usize> {
        use Grammar::*;
        let rest = &line[pos..];
        let len = match self {
            Status => shape(rest, b"ddd"),
            Millis => millis(rest),
            TimeLocal => time_local(rest),
            TimeIso8601 => {
                shape(rest, b"dddd-dd-ddTdd:dd:dd").and_then(|n| Some(n + zone(&rest[n..])?))
            }
            List(item) => list(rest, item),
            _ => None,
        };
        match len {
            Some(n) => Some(pos + n),
            None if rest.starts_with(escape.absent()) => Some(pos + escape.absent().len()),
            None => Some(pos),
        }
    }
}

fn is_token(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// The length of `text`'s prefix of this shape: `d` a digit, `a` a letter, `s` a sign, other
/// bytes themselves.
fn shape(text: &[u8], pattern: &[u8]) -> Option<usize> {
    if text.len() < pattern.len() {
        return None;
    }
    let fits = pattern.iter().zip(text).all(|(&p, &b)| match p {
        b'd' => b.is_ascii_digit(),
        b'a' => b.is_ascii_alphabetic(),
        b's' => b == b'+' || b == b'-',
        _ => p == b,
    });
    fits.then_some(pattern.len())
}

/// `20/Nov/2026:10:00:00 +0900`: its separators where they belong (checked on every record of
/// the common formats, so only what tells it from other text).
fn time_local(text: &[u8]) -> Option<usize> {
    let fits = text.len() >= 26
        && text[2] == b'/'
        && text[6] == b'/'
        && text[11] == b':'
        && text[14] == b':'
        && text[17] == b':'
        && text[20] == b' '
        && (text[21] == b'+' || text[21] == b'-')
        && text[0].is_ascii_digit()
        && text[25].is_ascii_digit();
    fits.then_some(26)
}

/// `+09:00`, `-05:00` or `Z`.
fn zone(text: &[u8]) -> Option<usize> {
    if text.first() == Some(&b'Z') {
        return Some(1);
    }
    shape(text, b"sdd:dd")
}

fn digits(text: &[u8]) -> usize {
    text.iter().take_while(|b| b.is_ascii_digit()).count()
}

/// Seconds with milliseconds: `digits.ddd`. nginx always writes three decimals, so a value
/// followed directly by digits ends after the third; fewer are taken as they are.
fn millis(text: &[u8]) -> Option<usize> {
    let whole = digits(text);
    let fraction = text.get(whole + 1..).map_or(0, digits).min(3);
    (whole > 0 && text.get(whole) == Some(&b'.') && fraction > 0).then_some(whole + 1 + fraction)
}

fn decimal(value: &[u8]) -> bool {
    let whole = digits(value);
    match value.get(whole) {
        None => whole > 0,
        Some(b'.') => {
            whole > 0
                && value.len() > whole + 1
                && digits(&value[whole + 1..]) == value.len() - whole - 1
        }
        Some(_) => false,
    }
}

/// An upstream list: items separated by `, ` or ` : `; an item is `-` when that upstream gave
/// no value.
fn list(text: &[u8], item: Item) -> Option<usize> {
    let mut pos = 0;
    loop {
        pos += list_item(&text[pos..], item)?;
        let rest = &text[pos..];
        let separator = if rest.starts_with(b", ") {
            2
        } else if rest.starts_with(b" : ") {
            3
        } else {
            return Some(pos);
        };
        // A separator counts only when an item follows it.
        if list_item(&rest[separator..], item).is_none() {
            return Some(pos);
        }
        pos += separator;
    }
}

fn list_item(text: &[u8], item: Item) -> Option<usize> {
    if text.first() == Some(&b'-') && !matches!(text.get(1), Some(b) if b.is_ascii_digit()) {
        return Some(1);
    }
    let len = match item {
        Item::Address => text.iter().take_while(|&&b| b != b' ' && b != b',' && b != b'"').count(),
        Item::Integer => digits(text),
        Item::Millis => millis(text).unwrap_or(0),
        Item::Status => shape(text, b"ddd").unwrap_or(0),
    };
    (len > 0).then_some(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_nginx_writes() {
        fn ends(g: Grammar, text: &str) -> Option<&str> {
            g.end(text.as_bytes(), 0, Escape::Default).map(|n| &text[..n])
        }
        assert_eq!(
            ends(Grammar::TimeLocal, "20/Nov/2026:10:00:00 +0900] x"),
            Some("20/Nov/2026:10:00:00 +0900")
        );
        assert_eq!(
            ends(Grammar::TimeIso8601, "2026-11-20T10:00:00+09:00 x"),
            Some("2026-11-20T10:00:00+09:00")
        );
        assert_eq!(ends(Grammar::Millis, "1700000000.123 5"), Some("1700000000.123"));
        assert_eq!(ends(Grammar::Millis, "0.12 5"), Some("0.12"));
        assert_eq!(ends(Grammar::Millis, "0. 5"), Some(""));
        assert_eq!(ends(Grammar::Status, "2005"), Some("200"));
        let addr = Grammar::List(Item::Address);
        assert_eq!(
            ends(addr, "10.0.0.1:80, 10.0.0.2:80 : unix:/s 0"),
            Some("10.0.0.1:80, 10.0.0.2:80 : unix:/s")
        );
        assert_eq!(ends(addr, "- 0"), Some("-"));
        let times = Grammar::List(Item::Millis);
        assert_eq!(ends(times, "0.001, - : 0.500 x"), Some("0.001, - : 0.500"));
        assert_eq!(ends(Grammar::List(Item::Status), "502, 200 5"), Some("502, 200"));
        let accepts = |g: Grammar, value: &[u8]| g.accepts(value, Escape::Default);
        assert!(accepts(Grammar::Target, b"/a?b") && accepts(Grammar::Target, b"*"));
        assert!(!accepts(Grammar::Target, b"a/b"));
        assert!(accepts(Grammar::Decimal, b"2.51") && !accepts(Grammar::Decimal, b"2."));
        assert!(accepts(Grammar::Token, b"GET") && !accepts(Grammar::Token, b"GET /"));
        assert!(!accepts(Grammar::Status, b"20") && accepts(Grammar::Status, b""));
    }
}
