//! Container logs through the binary: Docker and CRI wrappers (with pieces of long lines and
//! broken wrappers), a kubelet node's /var/log/pods written under load with rotation,
//! compression, restarts and /var/log/containers links, compressed rotations replayed in order,
//! and the wake-up mechanism (inotify, or polling when watches run out).

use crate::common::*;
use crate::logs::total;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const GENLOGS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fixtures/genlogs.py");
const GENPODS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/containers/genpods.py");

fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

fn genlogs(args: &[&str]) -> Vec<u8> {
    run(Command::new("python3").arg(GENLOGS).args(args))
}

/// `plain` wrapped by genpods.py (`wrap --as …`).
fn wrapped(plain: &[u8], args: &[&str]) -> Vec<u8> {
    let mut child = Command::new("python3")
        .arg(GENPODS)
        .arg("wrap")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(plain).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    out.stdout
}

fn replay(rules: &Path, source: &str, files: &[PathBuf]) -> String {
    let out = run(Command::new(LOOKOUT)
        .args(["--config.log-rules", rules.to_str().unwrap(), "replay", "--source", source])
        .args(files));
    String::from_utf8(out).unwrap()
}

const NGINX_RULES: &str = "
metrics:
  - name: requests_total
    type: counter
    source: web
  - name: errors_total
    type: counter
    source: web
    when: [\"status >= 500\"]
";

/// The rules of a Spring source, by level; the same for a plain and a wrapped file.
const SPRING_RULES: &str = "
metrics:
  - name: records_total
    type: counter
    source: app
    labels: { level: level }
  - name: exceptions_total
    type: counter
    source: app
    when: [\"exception =~ .\"]
";

fn rules(dir: &Path, name: &str, sources: &str, metrics: &str) -> PathBuf {
    write_file(dir, name, format!("sources:\n{sources}{metrics}"))
}

#[test]
fn docker_and_cri_files_count_what_the_plain_file_counts() {
    let dir = tempfile::tempdir().unwrap();
    let nginx = genlogs(&["nginx", "--format", "timed", "--lines", "4000", "--seed", "5"]);
    let spring = genlogs(&["spring", "--format", "boot3", "--lines", "4000", "--seed", "5"]);
    let plain_nginx = write_file(dir.path(), "access.log", &nginx);
    let plain_spring = write_file(dir.path(), "spring.log", &spring);
    let source = |name: &str, format: &str, container: &str| {
        format!("  - name: {name}\n    paths: [x]\n    format: {format}\n{container}")
    };
    let plain_rules = rules(
        dir.path(),
        "plain.yaml",
        &source("web", "nginx\n    log_format: combined_timed", ""),
        NGINX_RULES,
    );
    let plain = replay(&plain_rules, "web", &[plain_nginx]);
    assert_eq!(total(&plain, "requests_total"), 4000.0);
    let spring_plain_rules =
        rules(dir.path(), "spring-plain.yaml", &source("app", "spring", ""), SPRING_RULES);
    let spring_truth = replay(&spring_plain_rules, "app", &[plain_spring]);
    assert!(total(&spring_truth, "exceptions_total") > 10.0, "{spring_truth}");

    for (kind, container) in
        [("docker", "docker"), ("cri", "cri"), ("docker", "auto"), ("cri", "auto")]
    {
        let key = format!("    container: {container}\n");
        let web_rules = rules(
            dir.path(),
            "web.yaml",
            &source("web", "nginx\n    log_format: combined_timed", &key),
            &format!("{NGINX_RULES}  - {{ name: stderr_total, type: counter, source: web, when: [\"stream == stderr\"] }}\n"),
        );
        let file = write_file(
            dir.path(),
            "web.log",
            wrapped(&nginx, &["--as", kind, "--split", "50", "--broken", "7"]),
        );
        let out = replay(&web_rules, "web", &[file]);
        assert_eq!(total(&out, "requests_total"), 4000.0, "{kind}/{container}: {out}");
        assert_eq!(total(&out, "errors_total"), total(&plain, "errors_total"), "{kind}");
        // Every seventh line went to stderr (genpods.py): the stream is a field.
        assert_eq!(total(&out, "stderr_total"), (4000 / 7 + 1) as f64);
        assert_eq!(
            total(&out, "lookout_log_records_total{source=\"web\",result=\"error\"}"),
            7.0,
            "broken wrappers are counted, and nothing else stops: {out}"
        );

        // A Spring stack trace cut in pieces across wrapper lines is still one record.
        let app_rules = rules(dir.path(), "app.yaml", &source("app", "spring", &key), SPRING_RULES);
        let file =
            write_file(dir.path(), "app.log", wrapped(&spring, &["--as", kind, "--split", "30"]));
        let out = replay(&app_rules, "app", &[file]);
        for level in ["ERROR", "WARN", "INFO", "DEBUG"] {
            let prefix = format!("records_total{{level=\"{level}\"}}");
            assert_eq!(total(&out, &prefix), total(&spring_truth, &prefix), "{kind} {level}");
        }
        assert_eq!(total(&out, "exceptions_total"), total(&spring_truth, "exceptions_total"));
    }
}

#[test]
fn an_unfinished_partial_line_is_bounded_by_max_line_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::new();
    for _ in 0..20_000 {
        text.push_str("2026-01-01T00:00:00.000000000Z stdout P xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n");
    }
    text.push_str("2026-01-01T00:00:00.000000000Z stdout F end\n");
    text.push_str("2026-01-01T00:00:00.000000000Z stdout F next\n");
    let file = write_file(dir.path(), "0.log", text);
    let rules = rules(
        dir.path(),
        "r.yaml",
        "  - name: r\n    paths: [x]\n    format: regex\n    regex: '^(?P<text>.*)$'\n    container: cri\n    max_line_bytes: 1000\n",
        "metrics:\n  - name: lines_total\n    type: counter\n    source: r\n",
    );
    let out = replay(&rules, "r", &[file]);
    assert_eq!(total(&out, "lines_total"), 2.0, "{out}");
    assert_eq!(total(&out, "lookout_log_lines_cut_total"), 1.0, "{out}");
}

/// lookout serving `rules` with `env`, its log in `dir/lookout.log`.
fn serve(dir: &Path, rules: &Path, env: &[(&str, &str)]) -> Server {
    let probes = write_file(dir, "probes.yaml", "modules: {}\n");
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", closed_port()).parse().unwrap();
    let log = std::fs::File::create(dir.join("lookout.log")).unwrap();
    let child = Command::new(LOOKOUT)
        .current_dir(dir)
        .envs(env.iter().copied())
        .args([
            "--log.level=debug".to_string(),
            format!("--config.probes={}", probes.display()),
            format!("--config.log-rules={}", rules.display()),
            format!("--positions.file={}", dir.join("positions.json").display()),
            format!("--web.listen-address={addr}"),
        ])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    Server::ready(child, addr)
}

fn metrics(addr: std::net::SocketAddr) -> String {
    get(addr, "/metrics", &[]).map(|r| r.body).unwrap_or_default()
}

fn wait_for(addr: std::net::SocketAddr, within: Duration, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + within;
    loop {
        let body = metrics(addr);
        if done(&body) || Instant::now() >= deadline {
            return body;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_kubernetes_node_under_load_is_counted_once_per_namespace_and_container() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("node");
    std::fs::create_dir_all(root.join("pods")).unwrap();
    std::fs::create_dir_all(root.join("containers")).unwrap();
    let r = root.display();
    let rules = rules(
        dir.path(),
        "rules.yaml",
        &format!(
            "  - name: web\n    paths: [\"{r}/pods/*_web-*/nginx/*.log\", \"{r}/containers/web-*.log\", \"{r}/pods/*_web-*/nginx/*.log.*\"]\n    format: nginx\n    log_format: combined_timed\n    container: cri\n    start_at: beginning\n  - name: app\n    paths: [\"{r}/pods/*/app/*.log\"]\n    format: spring\n    container: auto\n    start_at: beginning\n"
        ),
        "metrics:
  - name: requests_total
    type: counter
    source: web
    labels: { namespace: namespace, container: container }
  - name: errors_total
    type: counter
    source: web
    when: [\"status >= 500\", \"namespace in [shop, billing]\"]
    labels: { namespace: namespace }
  - name: app_records_total
    type: counter
    source: app
    labels: { namespace: namespace }
",
    );
    let server = serve(dir.path(), &rules, &[]);
    let addr = server.addr;
    let truth = run(Command::new("python3").arg(GENPODS).arg("pods").arg(&root).args([
        "--lines",
        "3000",
        "--rotate-every",
        "700",
        "--interval",
        "0.01",
    ]));
    let truth: serde_json::Value = serde_json::from_slice(&truth).unwrap();
    let want = |ns: &str, key: &str| truth[ns][key].as_f64().unwrap();
    let done = |body: &str| {
        total(body, "requests_total{container=\"nginx\",namespace=\"shop\"}")
            >= want("shop", "requests")
            && total(body, "requests_total{container=\"nginx\",namespace=\"billing\"}")
                >= want("billing", "requests")
    };
    wait_for(addr, Duration::from_secs(20), done);
    // Time for anything read twice (links, rotations, compressed copies) to show.
    std::thread::sleep(Duration::from_millis(1500));
    let body = metrics(addr);
    drop(server);
    let log = std::fs::read_to_string(dir.path().join("lookout.log")).unwrap();
    for ns in ["shop", "billing"] {
        assert_eq!(
            total(&body, &format!("requests_total{{container=\"nginx\",namespace=\"{ns}\"}}")),
            want(ns, "requests"),
            "{ns}\n{body}\n{log}"
        );
        assert_eq!(total(&body, &format!("errors_total{{namespace=\"{ns}\"}}")), want(ns, "5xx"));
        assert_eq!(
            total(&body, "lookout_log_records_total{source=\"web\",result=\"unmatched\"}"),
            0.0,
            "no compressed bytes read as lines"
        );
    }
    // The Spring records of each namespace: those of the plain file genpods.py wrapped.
    let spring_rules = write_file(
        dir.path(),
        "spring.yaml",
        "sources:\n  - name: app\n    paths: [x]\n    format: spring\nmetrics:\n  - name: app_records_total\n    type: counter\n    source: app\n",
    );
    for (n, ns) in ["shop", "billing"].iter().enumerate() {
        let plain = genlogs(&[
            "spring",
            "--format",
            "boot3",
            "--lines",
            "3000",
            "--seed",
            &(1 + n).to_string(),
        ]);
        // genpods.py leaves blank lines out.
        let plain: Vec<u8> = String::from_utf8_lossy(&plain)
            .split('\n')
            .filter(|l| !l.is_empty())
            .flat_map(|l| format!("{l}\n").into_bytes())
            .collect();
        let file = write_file(dir.path(), "plain-spring.log", plain);
        let expected = total(&replay(&spring_rules, "app", &[file]), "app_records_total");
        assert_eq!(
            total(&body, &format!("app_records_total{{namespace=\"{ns}\"}}")),
            expected,
            "{ns}"
        );
    }
    assert!(log.contains("is compressed: old content, not followed"), "{log}");
    assert!(log.contains("following files through inotify"), "{log}");
}

#[test]
fn replay_reads_compressed_rotations_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let line = |bytes: usize| {
        format!("10.0.0.1 - - [20/Nov/2026:10:00:00 +0900] \"GET / HTTP/1.1\" 200 {bytes} \"-\" \"curl\" 0.010\n")
    };
    let lines = |range: std::ops::Range<usize>| range.map(line).collect::<String>();
    let base = dir.path().join("access.log");
    let gz = |text: String| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(text.as_bytes()).unwrap();
        e.finish().unwrap()
    };
    std::fs::write(format!("{}.3.gz", base.display()), gz(lines(0..10))).unwrap();
    std::fs::write(
        format!("{}.2.zst", base.display()),
        zstd::encode_all(lines(10..20).as_bytes(), 3).unwrap(),
    )
    .unwrap();
    std::fs::write(format!("{}.10.gz", base.display()), gz(String::new())).unwrap();
    std::fs::write(format!("{}.1", base.display()), lines(20..30)).unwrap();
    std::fs::write(&base, lines(30..40)).unwrap();
    let rules = rules(
        dir.path(),
        "r.yaml",
        "  - name: web\n    paths: [x]\n    format: nginx\n    log_format: combined_timed\n",
        "metrics:
  - name: requests_total
    type: counter
    source: web
  - name: bytes_total
    type: counter
    source: web
    value: body_bytes_sent
  - name: last_bytes
    type: gauge
    source: web
    value: body_bytes_sent
",
    );
    // As a shell expands `access.log*`: in name order, not the order of writing.
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.path()).collect();
    files.retain(|f| f.file_name().unwrap().to_string_lossy().starts_with("access.log"));
    files.sort();
    let out = replay(&rules, "web", &files);
    assert_eq!(total(&out, "requests_total"), 40.0, "{out}");
    assert_eq!(total(&out, "bytes_total"), (0..40).sum::<usize>() as f64);
    assert_eq!(total(&out, "last_bytes"), 39.0, "the live file is read last");

    // The same files followed live: the compressed ones are old content, counted by no one.
    let live = rules.parent().unwrap().join("live.yaml");
    std::fs::write(
        &live,
        std::fs::read_to_string(&rules).unwrap().replace(
            "paths: [x]",
            &format!("paths: [\"{}*\"]\n    start_at: beginning", base.display()),
        ),
    )
    .unwrap();
    let server = serve(dir.path(), &live, &[]);
    let addr = server.addr;
    let body = wait_for(addr, Duration::from_secs(10), |b| total(b, "requests_total") >= 20.0);
    std::thread::sleep(Duration::from_millis(500));
    let body2 = metrics(addr);
    drop(server);
    assert_eq!(total(&body2, "requests_total"), 20.0, "{body}");
}

#[test]
fn writes_wake_the_tailer_and_exhausted_watches_fall_back_to_polling() {
    for (env, mechanism, within) in [
        (None, "following files through inotify", Duration::from_millis(1500)),
        (Some("0"), "polling every", Duration::from_secs(3)),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("app.log");
        std::fs::write(&log, "").unwrap();
        // A safety-net scan far away: only inotify can make a line count quickly.
        let rules = rules(
            dir.path(),
            "r.yaml",
            &format!(
                "  - name: r\n    paths: [\"{}\"]\n    format: regex\n    regex: '^(?P<text>.*)$'\n    poll_interval: 30s\n",
                log.display()
            ),
            "metrics:\n  - name: lines_total\n    type: counter\n    source: r\n",
        );
        let env: Vec<(&str, &str)> =
            env.map(|v| (lookout::logs::wake::MAX_WATCHES_ENV, v)).into_iter().collect();
        let server = serve(dir.path(), &rules, &env);
        let addr = server.addr;
        std::thread::sleep(Duration::from_millis(300));
        std::fs::OpenOptions::new().append(true).open(&log).unwrap().write_all(b"one\n").unwrap();
        let body = wait_for(addr, within, |b| total(b, "lines_total") == 1.0);
        drop(server);
        let text = std::fs::read_to_string(dir.path().join("lookout.log")).unwrap();
        assert!(text.contains(mechanism), "{text}");
        if env.is_empty() {
            assert_eq!(total(&body, "lines_total"), 1.0, "a write wakes the tailer: {text}");
        } else {
            // Polling every 30 s: the line is not seen yet, and the log says why.
            assert!(text.contains("max_user_watches exhausted"), "{text}");
            assert_eq!(total(&body, "lines_total"), 0.0);
        }
    }
}

#[test]
fn shipped_kubernetes_rules_label_by_namespace_and_container() {
    // The shipped rules as the DaemonSet runs them: following the node's folder their own
    // paths name (`${PODS:-/var/log/pods}` inside each source's default), not given files.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("node");
    std::fs::create_dir_all(root.join("pods")).unwrap();
    let rules = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/log_rules.kubernetes.yaml"));
    let pods = root.join("pods").display().to_string();
    let server = serve(dir.path(), rules, &[("PODS", pods.as_str())]);
    let addr = server.addr;
    // Rotation is left out: its renamed files are not in the shipped paths, so one renamed
    // before lookout first looks (writes here are far faster than a kubelet's 10 MiB
    // rotations) would not be read; the test under load above follows them.
    let truth = run(Command::new("python3").arg(GENPODS).arg("pods").arg(&root).args([
        "--lines",
        "1000",
        "--rotate-every",
        "1000000",
        "--interval",
        "0",
    ]));
    let truth: serde_json::Value = serde_json::from_slice(&truth).unwrap();
    let series = |ns: &str| format!("http_requests_total{{container=\"nginx\",namespace=\"{ns}\",");
    let want = |ns: &str, key: &str| truth[ns][key].as_f64().unwrap();
    let done = |body: &str| {
        ["shop", "billing"].iter().all(|ns| total(body, &series(ns)) >= want(ns, "requests"))
    };
    wait_for(addr, Duration::from_secs(20), done);
    std::thread::sleep(Duration::from_millis(500));
    let out = metrics(addr);
    drop(server);
    let log = std::fs::read_to_string(dir.path().join("lookout.log")).unwrap();
    for ns in ["shop", "billing"] {
        assert_eq!(total(&out, &series(ns)), want(ns, "requests"), "{out}\n{log}");
        assert_eq!(total(&out, &format!("{}status=\"5xx\"}}", series(ns))), want(ns, "5xx"));
    }
    for ns in ["shop", "billing"] {
        let of_ns = format!("namespace=\"{ns}\"");
        let records = out.lines().filter(|l| {
            l.starts_with("spring_log_records_total{container=\"app\",") && l.contains(&of_ns)
        });
        assert!(records.count() > 0, "the app containers are followed too: {out}");
    }
    assert!(!out.contains("pod=\""), "no series per pod");
    crate::logs::promtool(&out);
}
