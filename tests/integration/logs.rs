//! Log-derived metrics through the binary: every format of the fixture generator, replay,
//! rule tests, live tailing through rotation and restart, exemplars, caps and bad input.

use crate::common::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const GENLOGS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fixtures/genlogs.py");
const RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/log_rules.yaml");

fn genlogs(dir: &Path, name: &str, args: &[&str]) -> PathBuf {
    let out =
        Command::new("python3").arg(GENLOGS).args(args).output().expect("python3 runs genlogs.py");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    write_file(dir, name, out.stdout)
}

fn replay(rules: &str, source: &str, file: &Path) -> String {
    let out = Command::new(LOOKOUT)
        .args(["--config.log-rules", rules, "replay", "--source", source])
        .arg(file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

pub(crate) fn total(exposition: &str, prefix: &str) -> f64 {
    exposition
        .lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn truth(file: &Path) -> serde_json::Value {
    let out = Command::new("python3").arg(GENLOGS).arg("summary").arg(file).output().unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn nginx_formats_count_every_request() {
    let dir = tempfile::tempdir().unwrap();
    for format in ["combined", "timed", "upstream"] {
        let file = genlogs(
            dir.path(),
            &format!("{format}.log"),
            &["nginx", "--format", format, "--lines", "5000", "--seed", "7"],
        );
        let log_format = match format {
            "combined" => "combined".to_string(),
            "timed" => "combined_timed".to_string(),
            _ => format!(
                "'{}rt=$request_time uct=\"$upstream_connect_time\" uht=\"$upstream_header_time\" urt=\"$upstream_response_time\"'",
                lookout::logs::parse::nginx::COMBINED
            ),
        };
        let rules = write_file(
            dir.path(),
            "rules.yaml",
            format!(
                "sources:\n  - name: web\n    paths: [x]\n    format: nginx\n    log_format: {log_format}\nmetrics:\n  - name: requests_total\n    type: counter\n    source: web\n    labels: {{ status: {{ field: status, map: status_class }} }}\n  - name: upstream_seconds\n    type: histogram\n    source: web\n    value: {}\n",
                if format == "upstream" { "upstream_response_time" } else { "status" }
            ),
        );
        let out = replay(rules.to_str().unwrap(), "web", &file);
        let t = truth(&file);
        assert_eq!(total(&out, "requests_total{"), 5000.0, "{format}");
        assert_eq!(
            total(&out, "requests_total{status=\"5xx\"}"),
            t["status_5xx"].as_f64().unwrap(),
            "{format}"
        );
        assert!(
            out.contains("lookout_log_records_total{source=\"web\",result=\"unmatched\"} 0"),
            "{format}: {out}"
        );
        if format == "upstream" {
            // `-` is no observation; `0.010, 0.020` is one, summed.
            let observed = total(&out, "upstream_seconds_count");
            assert!(observed > 3000.0 && observed < 5000.0, "{observed}");
        }
    }
}

#[test]
fn shipped_nginx_rules_match_ground_truth() {
    let dir = tempfile::tempdir().unwrap();
    let file = genlogs(
        dir.path(),
        "access.log",
        &["nginx", "--format", "timed", "--lines", "20000", "--seed", "3"],
    );
    let out = replay(RULES, "nginx", &file);
    let t = truth(&file);
    assert_eq!(total(&out, "http_requests_total{"), 20000.0);
    assert_eq!(total(&out, "http_responses_5xx_total"), t["status_5xx"].as_f64().unwrap());
    assert_eq!(total(&out, "http_slow_requests_total"), t["slow_over_1s"].as_f64().unwrap());
    assert_eq!(total(&out, "http_request_duration_seconds_count"), 20000.0);
    assert_eq!(total(&out, "http_request_duration_seconds_bucket{le=\"+Inf\"}"), 20000.0);
    assert!(!out.contains("method=\"-\""), "junk methods never become labels");
    promtool(&out);
}

pub(crate) fn promtool(exposition: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool");
    child.stdin.take().unwrap().write_all(exposition.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn spring_formats_records_levels_and_exceptions() {
    let dir = tempfile::tempdir().unwrap();
    for format in ["boot2", "boot3", "dash"] {
        let file = genlogs(
            dir.path(),
            &format!("{format}.log"),
            &["spring", "--format", format, "--lines", "3000", "--seed", "5"],
        );
        let text = std::fs::read(&file).unwrap();
        let starts = text
            .split(|b| *b == b'\n')
            .filter(|l| l.len() > 10 && l[..4].iter().all(u8::is_ascii_digit) && l[4] == b'-')
            .count() as f64;
        let errors = text
            .split(|b| *b == b'\n')
            .filter(|l| {
                String::from_utf8_lossy(l).contains(" ERROR ")
                    || String::from_utf8_lossy(l).contains("-ERROR ")
            })
            .count() as f64;
        let out = replay(RULES, "spring", &file);
        assert_eq!(
            total(&out, "spring_log_records_total{"),
            starts,
            "{format}: one record per first line, stack traces included"
        );
        assert_eq!(total(&out, "spring_errors_total{"), errors, "{format}");
        assert!(out.contains("exception=\"java.sql.SQLTransientConnectionException\""), "{format}");
        assert!(
            out.contains("exception=\"org.springframework.dao.DataIntegrityViolationException\""),
            "{format}"
        );
        assert!(total(&out, "spring_queries_total{") > 0.0, "{format}: p6spy hashes counted");
        assert!(
            total(&out, "spring_sql_statements_total{") > 0.0,
            "{format}: boundSql statements fingerprinted"
        );
        assert!(total(&out, "spring_request_duration_seconds_count") > 0.0, "{format}");
        assert!(
            out.contains("lookout_log_lines_cut_total{source=\"spring\"} ")
                && total(&out, "lookout_log_lines_cut_total") >= 1.0,
            "{format}: the 70 000-byte line is cut"
        );
        promtool(&out);
    }
}

#[test]
fn query_log_feeds_the_hash_index() {
    let dir = tempfile::tempdir().unwrap();
    let file = genlogs(dir.path(), "query.log", &["query", "--lines", "500"]);
    let out = replay(RULES, "spring-queries", &file);
    assert!(
        out.contains("lookout_log_records_total{source=\"spring-queries\",result=\"matched\"} 500"),
        "{out}"
    );
    assert_eq!(
        total(&out, "lookout_log_queries_indexed{source=\"spring-queries\"}"),
        5.0,
        "five distinct statements: {out}"
    );
}

/// Peak resident memory of a command, sampled from /proc while it runs.
fn peak_rss_mib(cmd: &mut Command) -> (f64, std::process::ExitStatus) {
    let mut child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut peak = 0.0f64;
    loop {
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{}/status", child.id())) {
            if let Some(kb) = status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<f64>().ok())
            {
                peak = peak.max(kb / 1024.0);
            }
        }
        if let Some(status) = child.try_wait().unwrap() {
            return (peak, status);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_100_mb_line_is_cut_with_memory_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.log");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        f.write_all(nginx_line(1, 200).as_bytes()).unwrap();
        let chunk = vec![b'A'; 1 << 20];
        for _ in 0..100 {
            f.write_all(&chunk).unwrap();
        }
        f.write_all(b"\n").unwrap();
        f.write_all(&[0xff, 0x00, 0xfe, b'\n']).unwrap();
        f.write_all(nginx_line(2, 500).as_bytes()).unwrap();
    }
    let (peak, status) = peak_rss_mib(
        Command::new(LOOKOUT)
            .args(["--config.log-rules", RULES, "replay", "--source", "nginx"])
            .arg(&path),
    );
    assert!(status.success());
    assert!(peak < 40.0, "peak RSS {peak:.1} MiB for a 100 MiB line");
    let out = replay(RULES, "nginx", &path);
    assert_eq!(total(&out, "http_requests_total{"), 2.0, "the lines around it still count: {out}");
    assert_eq!(total(&out, "lookout_log_lines_cut_total"), 1.0);
    assert_eq!(
        total(&out, "lookout_log_records_total{source=\"nginx\",result=\"unmatched\"}"),
        2.0,
        "the cut line and the binary one"
    );
}

#[test]
fn test_rules_command() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new(LOOKOUT)
        .current_dir(root)
        .args(["test-rules", "log_rules.test.yaml"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains(" passed, 0 failed"), "{text}");
    let dir = tempfile::tempdir().unwrap();
    let failing = write_file(
        dir.path(),
        "t.yaml",
        format!("rule_file: {RULES}\ntests:\n  - name: wrong on purpose\n    source: nginx\n    lines: |\n      1.2.3.4 - - [20/Nov/2026:10:00:00 +0900] \"GET / HTTP/1.1\" 500 1 \"-\" \"-\" 0.1\n    expect:\n      - series: http_responses_5xx_total\n        value: 2\n"),
    );
    let out = Command::new(LOOKOUT).arg("test-rules").arg(&failing).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("FAIL  wrong on purpose")
            && text.contains("http_responses_5xx_total: expected 2, got 1"),
        "{text}"
    );
}

#[test]
fn log_rule_errors_are_located() {
    let dir = tempfile::tempdir().unwrap();
    let probes = write_file(dir.path(), "probes.yaml", "modules: {}\n");
    let cases = [
        ("sources:\n  - name: web\n    paths: [a.log]\n    format: nginx\nmetrics:\n  - name: x_total\n    type: counter\n    source: web\n    when: ['statsu >= 500']\n", "9:12", "unknown field \"statsu\""),
        ("sources:\n  - name: web\n    paths: [a.log]\n    format: nginx\n    log_format: '$remote_addr $body_bytes_sent$status'\n", "5:31", "$body_bytes_sent and $status have no text between them"),
        ("sources:\n  - name: web\n    paths: [a.log]\n    format: nginx\n    log_format: |\n      log_format main '$remote_addr [$time_local] '\n                      '$http_user_agent$http_referer';\n", "7:24", "cannot be split"),
        ("sources:\n  - name: web\n    paths: [a.log]\n    format: nginxx\n", "4:13", "nginxx"),
        ("sources:\n  - name: web\n    paths: [a.log]\n    format: spring\n    log_format: combined\n", "5:17", "`log_format` is read only with `format: nginx`"),
        ("sources:\n  - name: web\n    paths: [a.log]\n    format: nginx\n    variables: { up: nope }\n", "5:22", "$nope is not a variable nginx knows"),
        ("sources:\n  - name: web\n    paths: [a.log]\n    format: nginx\n    log_format: \"log_format m escape=xml '$a'\"\n", "5:17", "unknown escape=xml"),
        ("sources:\n  - name: web\n    paths: [a.log]\n    format: nginx\nmetrics:\n  - name: h\n    type: histogram\n    source: web\n    value: request_time\n    buckets: [1, 0.5]\n", "10:14", "strictly increasing"),
        ("sources:\n  - name: web\n    paths: [a.log]\n    format: nginx\nmetrics:\n  - name: x_total\n    type: counter\n    source: nope\n", "8:13", "unknown source"),
        ("sources:\n  - name: web\n    paths: [a.log]\n    format: nginx\nmetrics:\n  - name: x_total\n    type: counter\n    source: web\n  - name: x\n    type: gauge\n    source: web\n    value: status\n", "9:11", "clashes"),
        ("sources:\n  - name: web\n    paths: [a.log]\n    format: nginx\nmetrics:\n  - name: probe_success\n    type: gauge\n    source: web\n    value: status\n", "6:11", "lookout's own"),
        ("sources:\n  - name: web\n    paths: [a.log]\n    format: nginx\n    container: podman\n", "5:16", "unknown variant `podman`"),
        ("sources:\n  - name: web\n    paths: [a.log]\n    format: nginx\n    watch: fanotify\n", "5:12", "unknown variant `fanotify`"),
        // The Kubernetes fields are a container source's only.
        ("sources:\n  - name: web\n    paths: [a.log]\n    format: nginx\nmetrics:\n  - name: x_total\n    type: counter\n    source: web\n    labels: { ns: namespace }\n", "9:19", "unknown field \"namespace\""),
    ];
    assert_config_errors(
        dir.path(),
        "rules.yaml",
        "--config.log-rules",
        &[format!("--config.probes={}", probes.display()), "check".into()],
        &cases,
    );
}

/// A lookout serving with the given log rules; lines appended to `files` show up in /metrics.
fn serve_logs(dir: &Path, rules: &str) -> Server {
    let rules = write_file(dir, "rules.yaml", rules);
    let probes = write_file(dir, "probes.yaml", "modules: {}\n");
    Server::with_logs(dir, &probes, &rules)
}

fn wait_value(addr: std::net::SocketAddr, prefix: &str, want: f64) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let body = get(addr, "/metrics", &[]).map(|r| r.body).unwrap_or_default();
        if total(&body, prefix) == want {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{prefix} never reached {want}; is {}:\n{body}",
            total(&body, prefix)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn append(path: &Path, text: &str) {
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
}

fn nginx_line(i: usize, status: u16) -> String {
    format!("10.0.0.{} - - [20/Nov/2026:10:00:00 +0900] \"GET /item/{i} HTTP/1.1\" {status} 12 \"-\" \"curl\" 0.0{}\n", i % 250, i % 10)
}

#[test]
fn live_tailing_through_rotation_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    append(&log, &nginx_line(0, 200)); // there before the first start: skipped (start_at: end)
    let rules = format!(
        "sources:\n  - name: web\n    paths: [\"{}/access.log\"]\n    format: nginx\n    log_format: combined_timed\n    poll_interval: 50ms\nmetrics:\n  - name: requests_total\n    type: counter\n    source: web\n",
        dir.path().display()
    );
    let server = serve_logs(dir.path(), &rules);
    std::thread::sleep(Duration::from_millis(300));
    for i in 1..=100 {
        append(&log, &nginx_line(i, 200));
    }
    wait_value(server.addr, "requests_total ", 100.0);
    // rename + create, with lines written to the old file after the rename (nginx before reopen)
    std::fs::rename(&log, dir.path().join("access.log.1")).unwrap();
    append(&dir.path().join("access.log.1"), &nginx_line(101, 200));
    append(&log, &nginx_line(102, 500));
    let body = wait_value(server.addr, "requests_total ", 102.0);
    assert_eq!(total(&body, "lookout_log_rotations_total"), 1.0, "{body}");
    // copytruncate
    std::thread::sleep(Duration::from_millis(200));
    std::fs::copy(&log, dir.path().join("access.log.2")).unwrap();
    std::fs::OpenOptions::new().write(true).truncate(true).open(&log).unwrap();
    append(&log, &nginx_line(103, 200));
    let body = wait_value(server.addr, "requests_total ", 103.0);
    assert_eq!(total(&body, "lookout_log_truncations_total"), 1.0, "{body}");
    // restart: lines written while down are read once, nothing before them again
    drop(server);
    for i in 104..=110 {
        append(&log, &nginx_line(i, 200));
    }
    let server = serve_logs(dir.path(), &rules);
    wait_value(server.addr, "requests_total ", 7.0);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        total(&get(server.addr, "/metrics", &[]).unwrap().body, "requests_total "),
        7.0,
        "nothing read twice"
    );
}

#[test]
fn queries_exemplars_caps_and_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app.log");
    let queries = dir.path().join("query.log");
    let rules = format!(
        r#"sources:
  - name: app
    paths: ["{app}"]
    format: spring
    start_at: beginning
    poll_interval: 50ms
    max_line_bytes: 1024
    extract:
      - field: message
        regex: '"QHash":"(?P<qhash>[0-9a-f]{{32}})"'
  - name: queries
    paths: ["{queries}"]
    format: json
    start_at: beginning
    poll_interval: 50ms
    queries: {{ hash: QHash, sql: sql, max_entries: 2 }}
metrics:
  - name: app_errors_total
    type: counter
    source: app
    when: ["level == ERROR"]
    labels: {{ exception: exception }}
    exemplar: trace_id
  - name: app_queries_total
    type: counter
    source: app
    when: ['qhash != ""']
    labels: {{ qhash: qhash }}
    max_series: 2
  - name: app_threads
    type: counter
    source: app
    labels: {{ thread: thread }}
    expire_after: 1s
"#,
        app = app.display(),
        queries = queries.display()
    );
    let q = |n: u32| format!("{n:032x}");
    append(&queries, &format!("{{\"QHash\":\"{}\",\"sql\":\"select 1\"}}\n{{\"QHash\":\"{}\",\"sql\":\"select 2\"}}\n{{\"QHash\":\"{}\",\"sql\":\"select 3\"}}\nnot json at all\n{{\"broken\": \n", q(1), q(2), q(3)));
    let prefix = |level: &str, thread: &str| {
        format!("2026-11-20T10:00:00.000+09:00 {level:>5} 1 --- [app] [{thread}] [4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7] c.e.Pay : ")
    };
    let mut text = String::new();
    text.push_str(&format!(
        "{}payment failed\njava.lang.IllegalStateException: no\n\tat a.b(C.java:1)\n",
        prefix("ERROR", "t1")
    ));
    for n in 1..=3 {
        text.push_str(&format!("{}\"QHash\":\"{}\"\n", prefix("DEBUG", "t2"), q(n)));
    }
    text.push_str(&"z".repeat(5000));
    text.push('\n');
    text.push_str("\u{0}\u{1}\u{2}binary\n");
    append(&app, &text);
    append(&app, &String::from_utf8_lossy(&[0xff, 0xfe, b'\n']));
    std::fs::OpenOptions::new()
        .append(true)
        .open(&app)
        .unwrap()
        .write_all(&[0xc3, 0x28, b'\n'])
        .unwrap();
    append(&app, &format!("{}after the garbage\n", prefix("INFO", "t3")));
    let server = serve_logs(dir.path(), &rules);
    let body = wait_value(server.addr, "app_errors_total{", 1.0);
    assert!(
        body.contains("app_errors_total{exception=\"java.lang.IllegalStateException\"} 1"),
        "{body}"
    );
    let body = wait_value(
        server.addr,
        "lookout_log_records_total{source=\"app\",result=\"matched\"}",
        5.0,
    );
    assert_eq!(total(&body, "app_queries_total{"), 2.0, "capped at two series");
    assert_eq!(
        total(
            &body,
            "lookout_log_series_dropped_total{source=\"app\",metric=\"app_queries_total\"}"
        ),
        1.0,
        "{body}"
    );
    assert_eq!(total(&body, "lookout_log_lines_cut_total{source=\"app\"}"), 1.0, "{body}");
    assert_eq!(
        total(&body, "lookout_log_records_total{source=\"queries\",result=\"unmatched\"}"),
        1.0,
        "{body}"
    );
    assert_eq!(
        total(&body, "lookout_log_records_total{source=\"queries\",result=\"error\"}"),
        1.0,
        "{body}"
    );
    assert_eq!(
        total(&body, "lookout_log_queries_dropped_total{source=\"queries\"}"),
        1.0,
        "index capped at 2"
    );

    let om =
        get(server.addr, "/metrics", &[("Accept", "application/openmetrics-text;version=1.0.0")])
            .unwrap()
            .body;
    assert!(
        om.contains(
            "app_errors_total{exception=\"java.lang.IllegalStateException\"} 1 # {trace_id=\"4bf92f3577b34da6a3ce929d0e0e4736\"} 1 "
        ),
        "{om}"
    );

    let all: serde_json::Value =
        serde_json::from_str(&get(server.addr, "/queries", &[]).unwrap().body).unwrap();
    assert_eq!(all["queries"].as_array().unwrap().len(), 2);
    let one = get(server.addr, &format!("/queries?hash={}", q(2)), &[]).unwrap();
    assert!(one.body.contains("select 2"), "{}", one.body);
    assert_eq!(get(server.addr, "/queries?hash=ffff", &[]).unwrap().status, 404);

    // Idle series expire; the source keeps running after all that input.
    std::thread::sleep(Duration::from_millis(1500));
    append(&app, &format!("{}still alive\n", prefix("INFO", "t9")));
    let body = wait_value(server.addr, "app_threads_total{", 1.0);
    assert!(body.contains("app_threads_total{thread=\"t9\"} 1"), "{body}");
}

#[test]
fn overlapping_reloads_keep_the_log_sources_running() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    std::fs::write(&log, "").unwrap();
    let rules = format!(
        "sources:\n  - name: web\n    paths: [\"{}\"]\n    format: nginx\n    log_format: combined_timed\n    poll_interval: 50ms\nmetrics:\n  - name: requests_total\n    type: counter\n    source: web\n",
        log.display()
    );
    let server = serve_logs(dir.path(), &rules);
    let reloads: Vec<_> = (0..4)
        .map(|_| {
            let addr = server.addr;
            std::thread::spawn(move || request(addr, "POST", "/-/reload", &[]).map(|r| r.status))
        })
        .collect();
    for r in reloads {
        assert_eq!(r.join().unwrap(), Some(200));
    }
    std::thread::sleep(Duration::from_millis(200));
    append(&log, &nginx_line(1, 200));
    append(&log, &nginx_line(2, 200));
    let body = wait_value(server.addr, "requests_total ", 2.0);
    assert!(body.contains("lookout_config_reloads_total{result=\"success\"} 4"), "{body}");
}

/// POSTs `/-/reload` and expects it to succeed.
fn reload(addr: std::net::SocketAddr) {
    let reply = request(addr, "POST", "/-/reload", &[]).unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[test]
fn a_reload_keeps_the_counts_of_rules_it_does_not_change() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    append(&log, "");
    let rules = |errors_help: &str| {
        format!(
            "sources:\n  - name: web\n    paths: [\"{}\"]\n    format: nginx\n    log_format: combined_timed\n    start_at: beginning\n    poll_interval: 50ms\nmetrics:\n  - name: requests_total\n    type: counter\n    source: web\n  - name: errors_total\n    type: counter\n    help: {errors_help}\n    source: web\n    when: ['status >= 500']\n",
            log.display()
        )
    };
    let server = serve_logs(dir.path(), &rules("Responses with a 5xx status"));
    for i in 0..30 {
        append(&log, &nginx_line(i, if i % 3 == 0 { 500 } else { 200 }));
    }
    wait_value(server.addr, "requests_total ", 30.0);
    wait_value(server.addr, "errors_total ", 10.0);

    // Nothing changed: every count goes on from where it was.
    reload(server.addr);
    for i in 30..50 {
        append(&log, &nginx_line(i, 500));
    }
    wait_value(server.addr, "requests_total ", 50.0);
    let body = wait_value(server.addr, "errors_total ", 30.0);
    assert_eq!(total(&body, "lookout_log_lines_total{source=\"web\"}"), 50.0, "{body}");

    // One rule changed: it alone starts again from zero.
    write_file(dir.path(), "rules.yaml", rules("Responses that failed on the server"));
    reload(server.addr);
    for i in 50..55 {
        append(&log, &nginx_line(i, 500));
    }
    wait_value(server.addr, "requests_total ", 55.0);
    let body = wait_value(server.addr, "errors_total ", 5.0);
    assert!(body.contains("# HELP errors_total Responses that failed on the server"), "{body}");
    assert_eq!(total(&body, "lookout_log_lines_total{source=\"web\"}"), 55.0, "{body}");
}

#[test]
fn scrapes_never_wait_for_file_reading_or_position_saving() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("big.log");
    // Enough lines to keep the source busy for the whole test.
    let mut text = String::with_capacity(64 << 20);
    let mut i = 0;
    while text.len() < 60 << 20 {
        text.push_str(&nginx_line(i, 200));
        i += 1;
    }
    std::fs::write(&log, &text).unwrap();
    drop(text);
    // The positions writer writes `positions.json.tmp` first: as a FIFO nobody reads, opening it
    // blocks, as a save to a hung disk would.
    let fifo = dir.path().join("positions.json.tmp");
    let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    let rules = format!(
        "sources:\n  - name: web\n    paths: [\"{}\"]\n    format: nginx\n    log_format: combined_timed\n    start_at: beginning\nmetrics:\n  - name: requests_total\n    type: counter\n    source: web\n    labels: {{ status: status }}\n",
        log.display()
    );
    let server = serve_logs(dir.path(), &rules);
    let mut slowest = Duration::ZERO;
    let mut scrapes = 0;
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        let started = Instant::now();
        let body = get(server.addr, "/metrics", &[]).expect("a scrape answers").body;
        slowest = slowest.max(started.elapsed());
        scrapes += 1;
        // Counts are shown once the positions that cover them are saved: none yet.
        assert!(total(&body, "requests_total{") < i as f64, "{body}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!dir.path().join("positions.json").exists(), "the positions writer was held up");
    assert!(scrapes >= 10 && slowest < Duration::from_millis(1000), "a scrape waited {slowest:?}");
    // The disk comes back: every line is counted once, and shown.
    std::fs::read(&fifo).unwrap();
    wait_value(server.addr, "requests_total{", i as f64);
    wait_value(server.addr, "lookout_log_lines_total{source=\"web\"}", i as f64);
    drop(server);
}

#[test]
fn a_file_lookout_may_not_read_is_reported_once_and_the_rest_goes_on() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    // lookout runs as nobody here (tests run as root, which may read anything).
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let binary = dir.path().join("lookout");
    std::fs::copy(LOOKOUT, &binary).unwrap();
    let secret = dir.path().join("secret.log");
    append(&secret, &nginx_line(0, 200));
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let open = dir.path().join("open.log");
    append(&open, "");
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o666)).unwrap();
    let rules = write_file(
        dir.path(),
        "rules.yaml",
        format!(
            "sources:\n  - name: web\n    paths: [\"{}\", \"{}\"]\n    format: nginx\n    log_format: combined_timed\n    start_at: beginning\n    poll_interval: 50ms\nmetrics:\n  - name: requests_total\n    type: counter\n    source: web\n",
            secret.display(),
            open.display()
        ),
    );
    let probes = write_file(dir.path(), "probes.yaml", "modules: {}\n");
    let port = closed_port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let stderr = std::fs::File::create(dir.path().join("stderr.txt")).unwrap();
    let child = Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        .arg(&binary)
        .arg(format!("--config.probes={}", probes.display()))
        .arg(format!("--config.log-rules={}", rules.display()))
        .arg(format!("--positions.file={}", dir.path().join("positions.json").display()))
        .arg(format!("--web.listen-address={addr}"))
        .stdout(std::process::Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    // Stopped when dropped, also when an assertion fails on the way.
    let lookout = Server { child, addr };
    let mut body = String::new();
    for _ in 0..100 {
        body = get(addr, "/metrics", &[]).map(|r| r.body).unwrap_or_default();
        if body.contains("permission_denied\"} 1") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    append(&open, &nginx_line(1, 200));
    let counted = wait_value(addr, "requests_total ", 1.0);
    drop(lookout);
    assert_eq!(
        total(&body, "lookout_log_unreadable_files{source=\"web\",reason=\"permission_denied\"}"),
        1.0,
        "{body}"
    );
    assert_eq!(total(&counted, "lookout_log_files{source=\"web\"}"), 1.0, "{counted}");
    let log = std::fs::read_to_string(dir.path().join("stderr.txt")).unwrap();
    let warning = format!("cannot read {}: permission_denied", secret.display());
    assert_eq!(log.matches(&warning).count(), 1, "warned once, not at every poll:\n{log}");
}

#[test]
fn a_corrupt_positions_file_is_moved_aside_and_nothing_else_stops() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    append(&log, &nginx_line(0, 200)); // there before the first start: skipped (start_at: end)
    std::fs::write(dir.path().join("positions.json"), "{\"version\": 2, \"files\": [tru").unwrap();
    let rules = format!(
        "sources:\n  - name: web\n    paths: [\"{}\"]\n    format: nginx\n    log_format: combined_timed\n    poll_interval: 50ms\nmetrics:\n  - name: requests_total\n    type: counter\n    source: web\n",
        log.display()
    );
    let server = serve_logs(dir.path(), &rules);
    assert_eq!(get(server.addr, "/-/healthy", &[]).unwrap().status, 200);
    let body = get(server.addr, "/metrics", &[]).unwrap().body;
    assert_eq!(total(&body, "lookout_log_positions_load_errors_total"), 1.0, "{body}");
    let aside: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("positions.json.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "the corrupt file is kept for a person to look at");
    std::thread::sleep(Duration::from_millis(300));
    append(&log, &nginx_line(1, 200));
    wait_value(server.addr, "requests_total ", 1.0);
    std::thread::sleep(Duration::from_millis(300));
    let body = get(server.addr, "/metrics", &[]).unwrap().body;
    assert_eq!(total(&body, "requests_total "), 1.0, "start_at: end, as on a first run");
}

#[test]
fn the_query_index_is_bounded_in_bytes_and_served_a_page_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let queries = dir.path().join("query.log");
    let mut lines = String::new();
    for i in 0..50 {
        // 32 bytes of hash and 68 of SQL: 100 bytes an entry.
        lines.push_str(&format!(
            "{{\"QHash\":\"{i:032x}\",\"sql\":\"select * from t where id = {i:039}\"}}\n"
        ));
    }
    append(&queries, &lines);
    let rules = format!(
        "sources:\n  - name: q\n    paths: [\"{}\"]\n    format: json\n    start_at: beginning\n    poll_interval: 50ms\n    queries: {{ hash: QHash, sql: sql, max_bytes: 2048 }}\n",
        queries.display()
    );
    let server = serve_logs(dir.path(), &rules);
    let body = wait_value(server.addr, "lookout_log_queries_indexed{source=\"q\"}", 20.0);
    assert_eq!(total(&body, "lookout_log_queries_dropped_total{source=\"q\"}"), 30.0, "{body}");

    let mut seen = Vec::new();
    let mut path = "/queries?limit=7".to_string();
    for _ in 0..10 {
        let reply = get(server.addr, &path, &[]).unwrap();
        assert_eq!(reply.status, 200, "{}", reply.body);
        let page: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
        let items = page["queries"].as_array().unwrap();
        assert!(items.len() <= 7);
        seen.extend(items.iter().map(|q| q["hash"].as_str().unwrap().to_string()));
        match page["next"].as_str() {
            Some(next) => {
                path = format!(
                    "/queries?limit=7&after={}",
                    form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
                )
            }
            None => break,
        }
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!((seen.len(), sorted.len()), (20, 20), "every entry once, in order: {seen:?}");
    assert_eq!(seen, sorted);
    assert_eq!(get(server.addr, "/queries?limit=0", &[]).unwrap().status, 400);
}

#[test]
fn a_reload_keeps_draining_a_file_rotated_just_before() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    append(&log, "");
    let rules = format!(
        "sources:\n  - name: web\n    paths: [\"{}\"]\n    format: nginx\n    log_format: combined_timed\n    start_at: beginning\n    poll_interval: 50ms\nmetrics:\n  - name: requests_total\n    type: counter\n    source: web\n",
        log.display()
    );
    let server = serve_logs(dir.path(), &rules);
    for i in 0..10 {
        append(&log, &nginx_line(i, 200));
    }
    wait_value(server.addr, "requests_total ", 10.0);
    // Rotated; nginx writes on to the renamed file until it reopens its log.
    let rotated = dir.path().join("access.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    reload(server.addr);
    for i in 10..15 {
        append(&rotated, &nginx_line(i, 200));
    }
    for i in 15..18 {
        append(&log, &nginx_line(i, 200));
    }
    wait_value(server.addr, "requests_total ", 18.0);
}

/// Real Spring Boot logs from public projects (`../shared/corpus/spring` and
/// `tests/data/spring`, each excerpt with a truth file written by reading it): records, levels,
/// and for every ERROR/WARN record that prints a throwable its line, top-level exception and
/// root cause.
#[test]
fn spring_corpus_from_public_projects_matches_its_truth() {
    let names = spring_excerpts();
    let mut wrong = Vec::new();
    for path in &names {
        let name = path.file_stem().unwrap().to_string_lossy();
        let got = spring_summary(&excerpt_body(path));
        let truth = std::fs::read_to_string(path.with_extension("truth")).unwrap();
        let mut want: Vec<String> = truth
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(str::to_string)
            .collect();
        want.sort_by_key(|l| !l.starts_with("records")); // records, then levels by name, stacks
        want[1..].sort_by_key(|l| {
            if l.starts_with("level") {
                (0, l.clone())
            } else {
                (1, String::new())
            }
        });
        if got != want {
            wrong.push(format!("{name}:\n  want {want:?}\n  got  {got:?}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} excerpts differ:\n{}",
        wrong.len(),
        names.len(),
        wrong.join("\n")
    );
}

/// The real Spring Boot excerpts: `../shared/corpus/spring` and `tests/data/spring`.
fn spring_excerpts() -> Vec<std::path::PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let excerpts = |dir: &Path| -> Vec<std::path::PathBuf> {
        let mut found: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(|e| Some(e.ok()?.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .collect();
        found.sort();
        found
    };
    let shared = excerpts(&root.join("../shared/corpus/spring"));
    let own = excerpts(&root.join("tests/data/spring"));
    assert!(
        shared.len() >= 27,
        "{} shared excerpts (../shared beside the repository)",
        shared.len()
    );
    assert!(own.len() >= 8, "{} excerpts of our own", own.len());
    shared.into_iter().chain(own).collect()
}

/// An excerpt without its `# ` header lines.
fn excerpt_body(path: &Path) -> String {
    let raw = std::fs::read(path).unwrap();
    let text = String::from_utf8_lossy(&raw);
    let mut lines = text.split_inclusive('\n').peekable();
    while lines.peek().is_some_and(|l| l.starts_with("# ")) {
        lines.next();
    }
    lines.collect()
}

/// A Spring log's records, framed as lookout frames them.
fn spring_records(body: &str) -> Vec<String> {
    use lookout::logs::framing::{self, Framer, Framing, LineSplitter};
    use lookout::logs::parse::spring::RECORD_START;
    let mut splitter = LineSplitter::new(1 << 20);
    let mut framer =
        Framer::new(Framing::multiline(Some(regex::Regex::new(RECORD_START).unwrap())));
    let mut records = Vec::new();
    let emit = &mut |r: &str| records.push(r.to_string());
    splitter
        .push(body.as_bytes(), &mut |line, raw| framer.push(&framing::line_text(line), raw, emit));
    framing::finish(&mut splitter, &mut framer, emit);
    records
}

/// Spring Boot's startup lines in the real excerpts, counted by reading them: 22 "Starting X"
/// lines (one with a version: the AirsKy application, 0.0.1-SNAPSHOT), 16 "Started X" (DevTools
/// restarts among them, which are application restarts), no Spring Cloud refresh; Tomcat's
/// "Starting service", Hibernate's and Eureka's "Starting …"/"Started …" are not startup lines.
#[test]
fn spring_startup_lines_in_the_real_corpus() {
    use lookout::logs::parse::spring::{SpringFormat, FIELDS};
    let format = SpringFormat::auto();
    let field = |name: &str| FIELDS.iter().position(|f| *f == name).unwrap();
    let mut lifecycles = std::collections::BTreeMap::<String, usize>::new();
    let mut versions = Vec::new();
    let mut started_apps = std::collections::BTreeSet::new();
    for path in spring_excerpts() {
        for record in spring_records(&excerpt_body(&path)) {
            let mut values: lookout::logs::record::Values = vec![None; FIELDS.len()];
            if format.parse(&record, &mut values) != lookout::logs::parse::Parsed::Record {
                continue;
            }
            let get = |name: &str| values[field(name)].as_deref().unwrap_or("").to_string();
            let lifecycle = get("lifecycle");
            if lifecycle.is_empty() {
                continue;
            }
            *lifecycles.entry(lifecycle.clone()).or_default() += 1;
            if !get("version").is_empty() {
                versions.push((get("app"), get("version")));
            }
            if lifecycle == "started" {
                started_apps.insert(get("app"));
            }
        }
    }
    let want: std::collections::BTreeMap<String, usize> =
        [("starting".to_string(), 22), ("started".to_string(), 16)].into();
    assert_eq!(lifecycles, want);
    assert_eq!(versions, [("AirsKy".to_string(), "0.0.1-SNAPSHOT".to_string())]);
    // The layout's [application] name where there is one, else the class of "Started X".
    for app in ["api-gateway", "order-service", "CommunityApplication", "application"] {
        assert!(started_apps.contains(app), "{app} in {started_apps:?}");
    }
}

/// The truth file's lines for a Spring log, as lookout reads it: `records N`, `level L N`, and
/// `stack LINE LEVEL EXCEPTION ROOT_CAUSE`.
fn spring_summary(body: &str) -> Vec<String> {
    use lookout::logs::parse::spring::SpringFormat;
    let format = SpringFormat::auto();
    let records = spring_records(body);
    let mut levels = std::collections::BTreeMap::<String, usize>::new();
    let mut stacks = Vec::new();
    let mut line = 1;
    for record in &records {
        let mut values: lookout::logs::record::Values =
            vec![None; lookout::logs::parse::spring::FIELDS.len()];
        if format.parse(record, &mut values) == lookout::logs::parse::Parsed::Record {
            let field = |i: usize| values[i].as_deref().unwrap_or("").to_string();
            *levels.entry(field(1)).or_default() += 1;
            if matches!(field(1).as_str(), "ERROR" | "WARN") && values[9].is_some() {
                stacks.push(format!("stack {line} {} {} {}", field(1), field(9), field(10)));
            }
        }
        line += record.matches('\n').count() + 1;
    }
    let mut summary = vec![format!("records {}", records.len())];
    summary.extend(levels.iter().map(|(level, n)| format!("level {level} {n}")));
    summary.extend(stacks);
    summary
}
