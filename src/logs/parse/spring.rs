//! Spring Boot logs. Without a pattern, the default console/file layouts of Spring Boot 1.5 and
//! 2.x (`yyyy-MM-dd HH:mm:ss.SSS`), 3.0–3.1 (ISO-8601 with offset), 3.2+ (`[application]` and
//! the `[traceId-spanId]` correlation id) and the `-LEVEL` variant are recognised; a custom
//! logback pattern made of the usual conversion words can be given instead.
//!
//! A record is a first line and its continuation lines (stack traces, multi-line SQL), joined
//! by framing before parsing. Fields: timestamp, level, pid, app, thread, trace_id, span_id,
//! logger, message (the whole text after the logger, continuation lines included), exception
//! (fully qualified class of the top-level exception, which may open in the first line's message)
//! and root_cause (of the last top-level `Caused by:`; indented ones belong to suppressed
//! exceptions).
//!
//! Spring Boot's startup lines (`StartupInfoLogger`, Boot 1.5–3.x) add lifecycle (`starting`,
//! `started`, `restored` for a CRaC restore, `refreshed` for Spring Cloud's context refresh in a
//! running application), version, startup_seconds and process_uptime_seconds; their application
//! name fills `app` when the layout has none.

use super::Parsed;
use crate::logs::record::Values;
use regex::Regex;
use std::borrow::Cow;

pub const FIELDS: [&str; 15] = [
    "timestamp",
    "level",
    "pid",
    "app",
    "thread",
    "trace_id",
    "span_id",
    "logger",
    "message",
    "exception",
    "root_cause",
    "lifecycle",
    "version",
    "startup_seconds",
    "process_uptime_seconds",
];
const TIMESTAMP: &str = r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}[.,]\d{3}(?:Z|[+-]\d{2}:?\d{2})?";

/// A line that starts a Spring record: it begins with a date and time.
pub const RECORD_START: &str = r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}";

pub struct SpringFormat {
    /// None: Spring Boot's default layouts, read by [`default_layout`].
    first_line: Option<Regex>,
    /// Capture group index of each of FIELDS[..9] in `first_line`, when it has one.
    groups: [Option<usize>; 9],
    exception_line: Regex,
}

/// The first line of a record in one of Spring Boot's default layouts:
/// `TIMESTAMP  LEVEL PID --- [app] [thread] [traceId-spanId] logger : message`, where the
/// application and correlation groups are optional and LEVEL may read `-INFO`; with Spring Cloud
/// Sleuth, `TIMESTAMP  LEVEL [app,traceId,spanId] PID --- [thread] logger : message`.
struct Default<'a> {
    timestamp: &'a str,
    level: &'a str,
    pid: &'a str,
    app: Option<&'a str>,
    thread: &'a str,
    correlation: Option<&'a str>,
    logger: &'a str,
    /// Byte offset of the message in the line.
    message: usize,
}

fn default_layout(line: &str) -> Option<Default<'_>> {
    let bytes = line.as_bytes();
    let date = bytes.get(..10)?;
    let digits = |r: std::ops::Range<usize>| date[r].iter().all(u8::is_ascii_digit);
    if !(digits(0..4) && date[4] == b'-' && digits(5..7) && date[7] == b'-' && digits(8..10)) {
        return None;
    }
    // `2026-11-20 10:00:00.007` or `2026-11-20T10:00:00.007+09:00`
    let time_start = 11;
    let ts_end = time_start + line.get(time_start..)?.find(char::is_whitespace)?;
    let rest = line[ts_end..].trim_start();
    let rest = rest.strip_prefix('-').unwrap_or(rest);
    let (level, rest) = word(rest)?;
    // Spring Cloud Sleuth (Boot 2.x) adds `[app,traceId,spanId(,exportable)]` after the level.
    let (sleuth, rest) = match rest.trim_start().strip_prefix('[') {
        Some(inner) => {
            let close = inner.find(']')?;
            (inner[..close].split_once(','), &inner[close + 1..])
        }
        None => (None, rest),
    };
    let (pid, rest) = word(rest.trim_start())?;
    if level.is_empty()
        || !level.bytes().all(|b| b.is_ascii_uppercase())
        || !pid.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let mut rest = rest.trim_start().strip_prefix("---")?.trim_start();
    let mut groups: Vec<&str> = Vec::with_capacity(3);
    while groups.len() < 3 {
        let Some(inner) = rest.strip_prefix('[') else { break };
        let close = inner.find(']')?;
        groups.push(&inner[..close]);
        rest = inner[close + 1..].trim_start();
    }
    let (app, thread, correlation) = match groups.as_slice() {
        [thread] => (None, *thread, None),
        [thread, correlation] if is_correlation(correlation) => (None, *thread, Some(*correlation)),
        [app, thread] => (Some(*app), *thread, None),
        [app, thread, correlation] => (Some(*app), *thread, Some(*correlation)),
        _ => return None,
    };
    let (app, correlation) = match sleuth {
        Some((name, ids)) => {
            (app.or(Some(name).filter(|n| !n.is_empty())), correlation.or(Some(ids)))
        }
        None => (app, correlation),
    };
    let (logger, after) = word(rest)?;
    let after = after.trim_start().strip_prefix(':')?;
    let message = after.strip_prefix(' ').unwrap_or(after);
    Some(Default {
        timestamp: &line[..ts_end],
        level,
        pid,
        app,
        thread: thread.trim(),
        correlation,
        logger,
        message: line.len() - message.len(),
    })
}

fn word(text: &str) -> Option<(&str, &str)> {
    let end = text.find(char::is_whitespace).unwrap_or(text.len());
    (end > 0).then(|| (&text[..end], &text[end..]))
}

/// `traceId-spanId` in hex, or blank where tracing has no span.
fn is_correlation(text: &str) -> bool {
    let text = text.trim();
    text.is_empty()
        || text.split_once('-').is_some_and(|(t, s)| {
            !t.is_empty()
                && !s.is_empty()
                && t.bytes().chain(s.bytes()).all(|b| b.is_ascii_hexdigit())
        })
}

impl SpringFormat {
    pub fn auto() -> SpringFormat {
        SpringFormat { first_line: None, groups: [None; 9], exception_line: exception_line() }
    }

    /// A logback pattern such as `%d{yyyy-MM-dd HH:mm:ss.SSS} %5p ${PID} --- [%t] %-40.40logger{39} : %m%n`.
    pub fn logback(pattern: &str) -> Result<SpringFormat, String> {
        SpringFormat::from_regex(&logback_to_regex(pattern)?)
    }

    fn from_regex(pattern: &str) -> Result<SpringFormat, String> {
        let first_line = Regex::new(pattern).map_err(|e| e.to_string())?;
        let exception_line = exception_line();
        let mut groups = [None; 9];
        for (slot, name) in groups.iter_mut().zip(FIELDS) {
            *slot = first_line.capture_names().position(|n| n == Some(name));
        }
        let correlation = first_line.capture_names().position(|n| n == Some("correlation"));
        if correlation.is_some() {
            // trace_id and span_id come from the correlation group.
            groups[5] = None;
            groups[6] = None;
        }
        if groups[8].is_none() {
            return Err("the pattern has no message (%m)".into());
        }
        Ok(SpringFormat { first_line: Some(first_line), groups, exception_line })
    }

    pub fn parse<'a>(&self, record: &'a str, values: &mut Values<'a>) -> Parsed {
        let (first, rest) = match record.find('\n') {
            Some(nl) => (&record[..nl], Some(&record[nl + 1..])),
            None => (record, None),
        };
        let (message_start, correlation) = match &self.first_line {
            None => {
                let Some(d) = default_layout(first) else { return Parsed::Unmatched };
                values[0] = Some(Cow::Borrowed(d.timestamp));
                values[1] = Some(Cow::Borrowed(d.level));
                values[2] = Some(Cow::Borrowed(d.pid));
                values[3] = d.app.map(|a| Cow::Borrowed(a.trim()));
                values[4] = Some(Cow::Borrowed(d.thread));
                values[7] = Some(Cow::Borrowed(d.logger));
                values[8] = Some(Cow::Borrowed(&first[d.message..]));
                (d.message, d.correlation)
            }
            Some(regex) => {
                let Some(caps) = regex.captures(first) else { return Parsed::Unmatched };
                for (i, group) in self.groups.iter().enumerate() {
                    if let Some(m) = group.and_then(|g| caps.get(g)) {
                        values[i] = Some(Cow::Borrowed(m.as_str().trim()));
                    }
                }
                let Some(message) = caps.name("message") else { return Parsed::Unmatched };
                (message.start(), caps.name("correlation").map(|c| c.as_str()))
            }
        };
        if let Some(text) = correlation.map(str::trim) {
            // `traceId-spanId` (Boot 3.2+) or Sleuth's `traceId,spanId,exportable`.
            let (trace, span) = text.split_once(['-', ',']).unwrap_or((text, ""));
            let span = span.split(',').next().unwrap_or_default();
            for (slot, id) in [(5, trace.trim()), (6, span.trim())] {
                if !id.is_empty() {
                    values[slot] = Some(Cow::Borrowed(id));
                }
            }
        }
        if let Some(startup) = startup(&first[message_start..]) {
            if values[3].is_none() && startup.lifecycle != "refreshed" {
                values[3] = Some(Cow::Borrowed(startup.app));
            }
            values[11] = Some(Cow::Borrowed(startup.lifecycle));
            values[12] = startup.version.map(Cow::Borrowed);
            values[13] = startup.seconds.map(Cow::Borrowed);
            values[14] = startup.uptime.map(Cow::Borrowed);
        }
        if let Some(rest) = rest {
            // The message runs on through the continuation lines.
            values[8] = Some(Cow::Borrowed(&record[message_start..]));
            let (exception, root) = self.throwables(&first[message_start..], rest);
            values[9] = exception.map(Cow::Borrowed);
            values[10] = root.map(Cow::Borrowed);
        }
        Parsed::Record
    }

    /// The top-level exception and the root cause (the last top-level `Caused by:`) of the stack
    /// trace in a record, as Java prints one: `Class: message` or `Class`, then `\tat` frames;
    /// `Caused by: …` at the start of a line; suppressed exceptions and their causes indented.
    /// The trace may start in the message of the record's first line.
    fn throwables<'a>(
        &self,
        message: &'a str,
        rest: &'a str,
    ) -> (Option<&'a str>, Option<&'a str>) {
        let mut lines = rest.lines().peekable();
        let mut top = self
            .throwable(message.trim_start(), lines.peek().copied())
            .filter(|(_, caused_by)| !caused_by)
            .filter(|_| lines.peek().is_some_and(|l| is_frame(l)))
            .map(|(class, _)| class);
        let mut root = top;
        while let Some(line) = lines.next() {
            if let Some((class, _)) = self.throwable(line, lines.peek().copied()) {
                top = top.or(Some(class));
                root = Some(class);
            }
        }
        (top, root)
    }

    /// The class of a line that starts a throwable (`Class: message`, `Class`, after
    /// `Caused by: `), and whether it is a cause. A class whose name does not say it is a
    /// throwable (`…Exception`, `…Error`, `Throwable`) counts when frames follow it, or its
    /// cause (a throwable without a stack trace).
    fn throwable<'a>(&self, line: &'a str, next: Option<&str>) -> Option<(&'a str, bool)> {
        let caps = self.exception_line.captures(line)?;
        let class = caps.get(2)?.as_str();
        let simple = class.rsplit(['.', '$']).next().unwrap_or(class);
        let named =
            ["Exception", "Error", "Throwable", "Fault"].iter().any(|s| simple.ends_with(s));
        let traced = next.is_some_and(|n| is_frame(n) || n.starts_with("Caused by: "));
        (named || traced).then_some((class, caps.get(1).is_some()))
    }
}

/// What one of Spring Boot's startup lines says.
struct Startup<'a> {
    lifecycle: &'static str,
    app: &'a str,
    version: Option<&'a str>,
    seconds: Option<&'a str>,
    uptime: Option<&'a str>,
}

/// Spring Cloud starts contexts of its own inside a running application (a configuration
/// refresh); they have no main class, so Spring Boot names them `application`, and their process
/// has been running for much longer than they took to start. An application without a main class
/// that has just been launched (a JavaFX launcher) is a start all the same.
const REFRESH_AFTER_SECONDS: f64 = 120.0;

/// Spring Boot's `StartupInfoLogger` lines, as each major version writes them:
/// `Starting [AOT-processed ]X[ vVERSION][ using Java J][ on HOST][ with PID N][ (…)]` and
/// `Started X in S seconds[ (JVM running for U)]` (1.5–2.x), `… (process running for U)` (3.x),
/// `Restored X in S seconds (process running for U)` (3.2+, CRaC). Other messages that happen to
/// begin with these words (Tomcat's `Starting service [Tomcat]`, Jetty's `Started
/// ServerConnector@…`) are not startup lines.
fn startup(message: &str) -> Option<Startup<'_>> {
    if let Some(rest) = message.strip_prefix("Starting ") {
        let rest = rest.strip_prefix("AOT-processed ").unwrap_or(rest);
        let (app, rest) = word(rest)?;
        let mut rest = rest.trim_start();
        let mut version = None;
        if let Some((v, after)) = rest.strip_prefix('v').and_then(word) {
            version = Some(v);
            rest = after.trim_start();
        }
        ["using Java ", "on ", "with PID "]
            .iter()
            .any(|marker| rest.starts_with(marker))
            .then_some(Startup { lifecycle: "starting", app, version, seconds: None, uptime: None })
    } else {
        let (lifecycle, rest) = match message.strip_prefix("Started ") {
            Some(rest) => ("started", rest),
            None => ("restored", message.strip_prefix("Restored ")?),
        };
        let (app, rest) = word(rest)?;
        let (seconds, rest) = word(rest.strip_prefix(" in ")?)?;
        let taken = seconds.parse::<f64>().ok()?;
        let rest = rest.strip_prefix(" seconds")?.trim_start();
        let uptime = rest
            .strip_prefix("(JVM running for ")
            .or_else(|| rest.strip_prefix("(process running for "))
            .and_then(|r| r.split_once(')'))
            .map(|(uptime, _)| uptime);
        let running_longer = uptime
            .and_then(|u| u.parse::<f64>().ok())
            .is_some_and(|u| u - taken > REFRESH_AFTER_SECONDS);
        let lifecycle = if lifecycle == "started" && app == "application" && running_longer {
            "refreshed"
        } else {
            lifecycle
        };
        Some(Startup { lifecycle, app, version: None, seconds: Some(seconds), uptime })
    }
}

/// A stack frame line: `\tat …` or `\t... 12 more`.
fn is_frame(line: &str) -> bool {
    let trimmed = line.trim_start();
    trimmed.len() < line.len() && (trimmed.starts_with("at ") || trimmed.starts_with("... "))
}

fn exception_line() -> Regex {
    // A package (lower-case first letter), then the class (upper-case first letter).
    Regex::new(r"^(Caused by: )?([a-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*\.[A-Z][\w$]*)(?::|\s*$)")
        .expect("static regex")
}

fn logback_to_regex(pattern: &str) -> Result<String, String> {
    let mut out = String::from("^");
    let mut chars = pattern.char_indices().peekable();
    let mut seen = std::collections::HashSet::new();
    let mut group = |out: &mut String, name: &str, body: &str| {
        if seen.insert(name.to_string()) {
            out.push_str(&format!("(?P<{name}>{body})"));
        } else {
            out.push_str(&format!("(?:{body})"));
        }
    };
    while let Some((i, c)) = chars.next() {
        match c {
            '%' => {
                // Format modifiers: %-5p, %.-1p, %40.40logger
                let mut word = String::new();
                while let Some(&(_, m)) = chars.peek() {
                    if m == '-' || m == '.' || m.is_ascii_digit() {
                        chars.next();
                    } else {
                        break;
                    }
                }
                while let Some(&(_, m)) = chars.peek() {
                    if m.is_ascii_alphabetic() {
                        word.push(m);
                        chars.next();
                    } else {
                        break;
                    }
                }
                let mut option = None;
                if let Some(&(start, '{')) = chars.peek() {
                    let close = pattern[start..]
                        .find('}')
                        .ok_or_else(|| format!("unclosed {{ at {start}"))?
                        + start;
                    option = Some(&pattern[start + 1..close]);
                    while chars.peek().is_some_and(|&(j, _)| j <= close) {
                        chars.next();
                    }
                }
                match word.as_str() {
                    "d" | "date" => group(&mut out, "timestamp", TIMESTAMP),
                    "p" | "le" | "level" => group(&mut out, "level", r"\s*[A-Z]+\s*"),
                    "t" | "thread" => group(&mut out, "thread", r"[^\]]*?"),
                    "c" | "lo" | "logger" => group(&mut out, "logger", r"\S+"),
                    "m" | "msg" | "message" => group(&mut out, "message", ".*"),
                    "pid" => group(&mut out, "pid", r"\d+"),
                    "X" | "mdc" => match option {
                        Some("traceId") => group(&mut out, "trace_id", r"[0-9a-fA-F]*"),
                        Some("spanId") => group(&mut out, "span_id", r"[0-9a-fA-F]*"),
                        _ => out.push_str(r"[^\s\]]*"),
                    },
                    "n" | "wEx" | "ex" | "xEx" | "throwable" | "exception" => {}
                    "clr" => {
                        return Err(
                            "%clr(…) is a colour wrapper: give the pattern without it".into()
                        )
                    }
                    "" if chars.peek().map(|&(_, c)| c) == Some('%') => {
                        chars.next();
                        out.push('%');
                    }
                    other => return Err(format!("conversion word %{other} is not supported")),
                }
            }
            '$' if pattern[i..].starts_with("${PID}") => {
                for _ in 0..5 {
                    chars.next();
                }
                group(&mut out, "pid", r"\d+");
            }
            ' ' => {
                out.push_str(r"\s+");
                while chars.peek().is_some_and(|&(_, c)| c == ' ') {
                    chars.next();
                }
            }
            c => out.push_str(&regex::escape(&c.to_string())),
        }
    }
    out.push('$');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse<'a>(format: &SpringFormat, record: &'a str) -> Option<Vec<(&'static str, String)>> {
        let mut values: Values<'a> = vec![None; FIELDS.len()];
        match format.parse(record, &mut values) {
            Parsed::Record => Some(
                FIELDS
                    .iter()
                    .copied()
                    .zip(values.into_iter().map(|v| v.map(|c| c.into_owned()).unwrap_or_default()))
                    .collect(),
            ),
            _ => None,
        }
    }

    fn get<'a>(fields: &'a [(&'static str, String)], name: &str) -> &'a str {
        fields.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str()).unwrap()
    }

    #[test]
    fn boot2() {
        let f = SpringFormat::auto();
        let r = parse(&f, "2026-11-20 10:00:00.007 ERROR 10788 --- [http-nio-8081-exec-3] k.c.e.p.d.PayService                     : Payment failed: transactionId=tx-1\njava.sql.SQLTransientConnectionException: HikariPool-1 - Connection is not available\n\tat com.example.pay.PayService.charge(PayService.java:10)\nCaused by: java.io.IOException: Broken pipe\n\t... 12 more").unwrap();
        assert_eq!(get(&r, "level"), "ERROR");
        assert_eq!(get(&r, "pid"), "10788");
        assert_eq!(get(&r, "thread"), "http-nio-8081-exec-3");
        assert_eq!(get(&r, "logger"), "k.c.e.p.d.PayService");
        assert!(get(&r, "message").starts_with("Payment failed: transactionId=tx-1\njava.sql"));
        assert_eq!(get(&r, "exception"), "java.sql.SQLTransientConnectionException");
        assert_eq!(get(&r, "root_cause"), "java.io.IOException");
        assert_eq!(get(&r, "trace_id"), "");
    }

    #[test]
    fn dash_variant_and_boot30() {
        let f = SpringFormat::auto();
        let r = parse(
            &f,
            "2026-11-20 10:00:00.007 -INFO  10788 --- [main] o.s.web.servlet.DispatcherServlet        : Completed GET /health in 12ms",
        )
        .unwrap();
        assert_eq!(get(&r, "level"), "INFO");
        assert_eq!(get(&r, "message"), "Completed GET /health in 12ms");
        let r = parse(&f, "2026-11-20T10:00:00.007+09:00  WARN 10788 --- [main] c.z.hikari.pool.HikariPool : starvation").unwrap();
        assert_eq!(get(&r, "timestamp"), "2026-11-20T10:00:00.007+09:00");
        assert_eq!(get(&r, "level"), "WARN");
    }

    #[test]
    fn boot32_app_and_correlation() {
        let f = SpringFormat::auto();
        let line = "2026-11-20T10:00:00.007+09:00 DEBUG 10788 --- [pay-api] [http-nio-8081-exec-1] [0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331] p6spy                                    : \"QHash\":\"0123456789abcdef0123456789abcdef\"";
        let r = parse(&f, line).unwrap();
        assert_eq!(get(&r, "app"), "pay-api");
        assert_eq!(get(&r, "thread"), "http-nio-8081-exec-1");
        assert_eq!(get(&r, "trace_id"), "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(get(&r, "span_id"), "b7ad6b7169203331");
        assert_eq!(get(&r, "logger"), "p6spy");
        let blank = "2026-11-20T10:00:00.007+09:00  INFO 10788 --- [pay-api] [main] [                                                 ] k.c.e.p.d.OrderService : Service start";
        let r = parse(&f, blank).unwrap();
        assert_eq!(get(&r, "trace_id"), "");
        assert_eq!(get(&r, "thread"), "main");
        let no_app = "2026-11-20T10:00:00.007+09:00  INFO 10788 --- [main] k.c.e.p.d.OrderService : Service start";
        assert_eq!(get(&parse(&f, no_app).unwrap(), "thread"), "main");
        let no_app_traced =
            "2026-11-20T10:00:00.007+09:00  INFO 10788 --- [main] [0af7651916cd43dd-b7ad6b7169203331] k.c.e.p.d.OrderService : traced";
        let r = parse(&f, no_app_traced).unwrap();
        assert_eq!(
            (get(&r, "app"), get(&r, "thread"), get(&r, "trace_id")),
            ("", "main", "0af7651916cd43dd")
        );
        assert_eq!(get(&r, "message"), "traced");
    }

    #[test]
    fn custom_logback_pattern() {
        let f = SpringFormat::logback("%d{yyyy-MM-dd HH:mm:ss.SSS} [%thread] %-5level %logger{36} - traceId=%X{traceId} %msg%n").unwrap();
        let r = parse(
            &f,
            "2026-11-20 10:00:00.007 [main] INFO  com.example.App - traceId=abc123 hello world",
        )
        .unwrap();
        assert_eq!(get(&r, "thread"), "main");
        assert_eq!(get(&r, "level"), "INFO");
        assert_eq!(get(&r, "logger"), "com.example.App");
        assert_eq!(get(&r, "trace_id"), "abc123");
        assert_eq!(get(&r, "message"), "hello world");
        assert!(SpringFormat::logback("%d %p %zz %m").is_err());
        assert!(SpringFormat::logback("%d %p").is_err(), "a pattern needs %m");
    }

    /// Startup lines as `StartupInfoLogger` writes them in each major version, and messages of
    /// the same first word that are not startup lines.
    #[test]
    fn startup_lines_of_every_major_version() {
        let f = SpringFormat::auto();
        let fields = |message: &str| {
            let line = format!(
                "2026-11-20 10:00:00.007  INFO 1 --- [main] c.e.DemoApplication : {message}"
            );
            let r = parse(&f, &line).unwrap();
            ["lifecycle", "app", "version", "startup_seconds", "process_uptime_seconds"]
                .map(|name| get(&r, name).to_string())
        };
        let cases = [
            // 1.5 and 2.0–2.4
            (
                "Starting DemoApplication v0.0.1-SNAPSHOT on web-1 with PID 7 (/app/demo.jar started by app in /app)",
                ["starting", "DemoApplication", "0.0.1-SNAPSHOT", "", ""],
            ),
            (
                "Started DemoApplication in 4.215 seconds (JVM running for 5.023)",
                ["started", "DemoApplication", "", "4.215", "5.023"],
            ),
            // 2.5–2.7
            (
                "Starting DemoApplication v2.7.1 using Java 11.0.16 on web-1 with PID 7 (/app/demo.jar started by app in /app)",
                ["starting", "DemoApplication", "2.7.1", "", ""],
            ),
            // 3.x, unpackaged (no version), AOT-processed (3.0+ native/AOT)
            (
                "Starting DemoApplication using Java 17.0.5 with PID 7 (/app/classes started by app in /app)",
                ["starting", "DemoApplication", "", "", ""],
            ),
            (
                "Starting AOT-processed DemoApplication v1.4.2 using Java 21.0.1 with PID 1 (/workspace/app started by cnb in /workspace)",
                ["starting", "DemoApplication", "1.4.2", "", ""],
            ),
            (
                "Started DemoApplication in 2.981 seconds (process running for 3.402)",
                ["started", "DemoApplication", "", "2.981", "3.402"],
            ),
            // 3.2+ restored from a CRaC checkpoint
            (
                "Restored DemoApplication in 0.051 seconds (process running for 0.186)",
                ["restored", "DemoApplication", "", "0.051", "0.186"],
            ),
            // Spring Cloud's context refresh, hours into the process: not a start
            (
                "Started application in 0.2 seconds (JVM running for 7930.4)",
                ["refreshed", "", "", "0.2", "7930.4"],
            ),
            // An application without a main class, just launched: a start
            (
                "Started application in 1.708 seconds (process running for 2.374)",
                ["started", "application", "", "1.708", "2.374"],
            ),
            ("Starting service [Tomcat]", ["", "", "", "", ""]),
            ("Starting Servlet engine: [Apache Tomcat/10.1.40]", ["", "", "", "", ""]),
            ("Starting QueryInterpretationCache(2048)", ["", "", "", "", ""]),
            ("Started Eureka Server", ["", "", "", "", ""]),
            ("Started ServerConnector@1f2a{HTTP/1.1}{0.0.0.0:8080}", ["", "", "", "", ""]),
        ];
        for (message, want) in cases {
            assert_eq!(fields(message), want.map(str::to_string), "{message}");
        }
        // The layout's own application name wins over the class name.
        let line = "2026-11-20T10:00:00.007+09:00  INFO 1 --- [pay-api] [main] [                                                 ] c.e.PayApplication : Starting PayApplication v3.1.0 using Java 21 with PID 1 (/app.jar started by app in /)";
        let r = parse(&f, line).unwrap();
        assert_eq!((get(&r, "app"), get(&r, "version")), ("pay-api", "3.1.0"));
    }

    #[test]
    fn other_lines_do_not_match() {
        assert!(parse(&SpringFormat::auto(), "\tat com.example.X.y(X.java:1)").is_none());
    }

    #[test]
    fn sleuth_adds_app_and_ids_after_the_level() {
        let f = SpringFormat::auto();
        let r = parse(&f, "2021-05-01 10:00:00.007  INFO [pay-api,5f1c3e0b9a2d4c7e,8f1a2b3c4d5e6f70,true] 4242 --- [nio-8080-exec-1] c.e.PayController : paid").unwrap();
        assert_eq!(get(&r, "app"), "pay-api");
        assert_eq!(get(&r, "trace_id"), "5f1c3e0b9a2d4c7e");
        assert_eq!(get(&r, "span_id"), "8f1a2b3c4d5e6f70");
        assert_eq!(get(&r, "pid"), "4242");
        let r =
            parse(&f, "2021-05-01 10:00:00.007  WARN [SERVICE-DISCOVERY,,] 1 --- [main] c.e.A : x")
                .unwrap();
        assert_eq!((get(&r, "app"), get(&r, "trace_id")), ("SERVICE-DISCOVERY", ""));
    }

    #[test]
    fn every_throwable_java_prints() {
        let f = SpringFormat::auto();
        let first = "2026-11-20 10:00:00.007 ERROR 1 --- [main] o.s.i.h.LoggingHandler : ";
        let case = |message: &str, rest: &str| {
            let r = parse(&f, &format!("{first}{message}\n{rest}")).unwrap();
            (get(&r, "exception").to_string(), get(&r, "root_cause").to_string())
        };
        // The trace opens in the first line's message.
        assert_eq!(
            case(
                "org.springframework.messaging.MessagingException: failed",
                "\tat a.B.c(B.java:1)\nCaused by: java.lang.Throwable: null\n\tat a.B.d(B.java:2)"
            ),
            (
                "org.springframework.messaging.MessagingException".into(),
                "java.lang.Throwable".into()
            )
        );
        // Bare Exception, Error; a class without a throwable's suffix when frames follow it.
        assert_eq!(
            case("failed", "java.lang.Exception\n\tat a.B.c(B.java:1)\nCaused by: java.lang.Error: boom\n\t... 3 more"),
            ("java.lang.Exception".into(), "java.lang.Error".into())
        );
        assert_eq!(
            case(
                "failed",
                "com.mysql.cj.exceptions.NumberOutOfRange: Value '1'\n\tat a.B.c(B.java:1)"
            ),
            (
                "com.mysql.cj.exceptions.NumberOutOfRange".into(),
                "com.mysql.cj.exceptions.NumberOutOfRange".into()
            )
        );
        // Suppressed exceptions and their causes are indented: not the root cause.
        assert_eq!(
            case("failed", "a.b.OuterException: x\n\tat a.B.c(B.java:1)\n\tSuppressed: a.b.SideException: y\n\t\tat a.B.c(B.java:1)\n\tCaused by: a.b.Inner$DeepError: z\nCaused by: a.b.RootFault: w"),
            ("a.b.OuterException".into(), "a.b.RootFault".into())
        );
        // A message that names a class is not a stack trace; nor is a class-like word without frames.
        assert_eq!(
            case("java.lang.IllegalStateException: just text", "more text"),
            (String::new(), String::new())
        );
        assert_eq!(
            case("failed", "com.example.Thing: value\nnext line"),
            (String::new(), String::new())
        );
    }
}
