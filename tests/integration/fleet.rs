//! Many scheduled probes: `/metrics` streamed in chunks, probes re-checked sooner while they
//! fail, the start-lateness self-metrics.

use crate::cli::promtool_check;
use crate::common::*;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

/// `n` tcp probes of a closed port, every second: each fails at once with a handful of series.
fn many_probes(n: usize, extra: &str) -> String {
    let port = closed_port();
    let mut yaml = String::from("modules:\n  tcp:\n    prober: tcp\n    timeout: 1s\nprobes:\n");
    for i in 0..n {
        yaml.push_str(&format!(
            "  - {{name: p{i}, module: tcp, target: \"127.0.0.1:{port}\", interval: 1s{extra}}}\n"
        ));
    }
    yaml
}

/// The response head and body of an HTTP/1.1 GET, the body decoded from its chunks.
fn get_chunked(addr: std::net::SocketAddr, path: &str) -> (String, String, usize) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let (mut rest, mut body, mut chunks) = (&raw[split + 4..], Vec::new(), 0);
    loop {
        let line = rest.windows(2).position(|w| w == b"\r\n").expect("chunk size line");
        let size = usize::from_str_radix(std::str::from_utf8(&rest[..line]).unwrap(), 16).unwrap();
        if size == 0 {
            break;
        }
        body.extend_from_slice(&rest[line + 2..line + 2 + size]);
        rest = &rest[line + 4 + size..];
        chunks += 1;
    }
    (head, String::from_utf8(body).unwrap(), chunks)
}

#[test]
fn metrics_of_many_probes_are_streamed_in_chunks_and_stay_valid() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &many_probes(600, ""));
    let deadline = Instant::now() + Duration::from_secs(15);
    let (head, body, chunks) = loop {
        let (head, body, chunks) = get_chunked(server.addr, "/metrics");
        if body.matches("\nprobe_success{").count() == 600 || Instant::now() > deadline {
            break (head, body, chunks);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    assert!(!head.contains("content-length"), "{head}");
    assert!(chunks > 1, "{} bytes in {chunks} chunk(s)", body.len());
    for i in 0..600 {
        let series = format!("probe_success{{probe=\"p{i}\",module=\"tcp\",target=");
        assert_eq!(body.matches(&series).count(), 1, "p{i} once");
    }
    for line in body.lines().filter(|l| l.starts_with("# TYPE ")) {
        assert_eq!(body.matches(&format!("{line}\n")).count(), 1, "{line} once");
    }
    assert!(body.contains("lookout_probe_start_lateness_seconds_bucket{le=\"0.05\"}"), "{body}");
    assert!(body.contains("lookout_probe_starts_waited_total 0"));
    promtool_check(&body);
}

#[test]
fn a_concurrency_limit_of_one_makes_runs_wait_and_counts_them() {
    // A listener that never answers: each run waits for its whole 300 ms timeout, so ten probes
    // every second need three runs at a time and, with one allowed, most wait.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let mut yaml = String::from(
        "modules:\n  slow:\n    prober: tcp\n    timeout: 300ms\n    tcp:\n      query_response: [{expect: never}]\nprobes:\n",
    );
    for i in 0..10 {
        yaml.push_str(&format!(
            "  - {{name: p{i}, module: slow, target: \"127.0.0.1:{port}\", interval: 1s}}\n"
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let probes = write_file(dir.path(), "probes.yaml", yaml);
    let server = Server::spawn(
        dir.path(),
        &[format!("--config.probes={}", probes.display()), "--probe.max-concurrency=1".into()],
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let body = get(server.addr, "/metrics", &[]).unwrap().body;
        let waited = sample_value(&body, "lookout_probe_starts_waited_total").unwrap();
        if waited >= 3.0 {
            break;
        }
        assert!(Instant::now() < deadline, "{body}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_failing_probe_is_rechecked_at_interval_when_failing() {
    let dir = tempfile::tempdir().unwrap();
    let port = closed_port();
    let yaml = format!(
        "modules:\n  tcp:\n    prober: tcp\n    timeout: 1s\nprobes:\n  \
         - {{name: slow, module: tcp, target: \"127.0.0.1:{port}\", interval: 5s, interval_when_failing: 200ms}}\n"
    );
    let server = Server::start(dir.path(), &yaml);
    // The first run falls somewhere within 5 s; from there on it fails every 200 ms.
    let deadline = Instant::now() + Duration::from_secs(10);
    let runs = |body: &str| {
        sample_value(body, "lookout_probe_runs_total{probe=\"slow\",result=\"failure\"}")
    };
    let first = loop {
        let body = get(server.addr, "/metrics", &[]).unwrap().body;
        if let Some(n) = runs(&body) {
            break n;
        }
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(100));
    };
    std::thread::sleep(Duration::from_millis(1500));
    let later = runs(&get(server.addr, "/metrics", &[]).unwrap().body).unwrap();
    assert!(later - first >= 4.0, "{first} then {later} runs in 1.5 s, not one in 5 s");

    // A reload keeps the quick re-check of a probe that was failing: not a wait for its slot.
    unsafe { libc::kill(server.child.id() as i32, libc::SIGHUP) };
    crate::cli::wait_for(
        server.addr,
        "/metrics",
        "lookout_config_reloads_total{result=\"success\"} 1",
    );
    let reloaded = runs(&get(server.addr, "/metrics", &[]).unwrap().body).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let after = runs(&get(server.addr, "/metrics", &[]).unwrap().body).unwrap();
    assert!(after - reloaded >= 4.0, "{reloaded} then {after} runs in 1.5 s after a reload");
}

/// A server that accepts and never answers; each connection's (accepted, closed) instants are
/// sent as it closes.
fn silent_server() -> (std::net::SocketAddr, std::sync::mpsc::Receiver<(Instant, Instant)>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (sender, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let (sender, accepted) = (sender.clone(), Instant::now());
            std::thread::spawn(move || {
                let mut buf = [0u8; 1024];
                while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
                let _ = sender.send((accepted, Instant::now()));
            });
        }
    });
    (addr, received)
}

#[test]
fn a_reload_stops_the_runs_of_the_old_configuration() {
    let (silent, closed) = silent_server();
    let dir = tempfile::tempdir().unwrap();
    let yaml = |target: &str| {
        format!(
            "modules:\n  tcp:\n    prober: tcp\n    timeout: 4s\n    tcp:\n      query_response: [{{expect: never}}]\nprobes:\n  \
             - {{name: old, module: tcp, target: \"{target}\", interval: 4s}}\n"
        )
    };
    let server = Server::start(dir.path(), &yaml(&silent.to_string()));
    // The run is in flight once it has started: it waits 4 s for an answer.
    let deadline = Instant::now() + Duration::from_secs(6);
    loop {
        let body = get(server.addr, "/metrics", &[]).unwrap().body;
        if body.contains("lookout_probe_start_lateness_seconds_count 1") {
            break;
        }
        assert!(Instant::now() < deadline, "the probe never started: {body}");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    write_file(dir.path(), "probes.yaml", yaml(&format!("127.0.0.1:{}", closed_port())));
    let reloaded = Instant::now();
    unsafe { libc::kill(server.child.id() as i32, libc::SIGHUP) };
    let (_, ended) = closed.recv_timeout(Duration::from_secs(6)).expect("the connection closes");
    assert!(
        ended.duration_since(reloaded) < Duration::from_millis(1500),
        "the old run was stopped by the reload, not by its timeout: {:?}",
        ended.duration_since(reloaded)
    );
    // And the removed probe does not run again.
    assert!(closed.recv_timeout(Duration::from_secs(5)).is_err(), "no run of the old probe");
}

#[test]
fn once_keeps_to_the_concurrency_limit() {
    let (silent, closed) = silent_server();
    let dir = tempfile::tempdir().unwrap();
    let probes: String = (0..3)
        .map(|i| format!("  - {{name: p{i}, module: tcp, target: \"{silent}\"}}\n"))
        .collect();
    let yaml = format!(
        "modules:\n  tcp:\n    prober: tcp\n    timeout: 500ms\n    tcp:\n      query_response: [{{expect: never}}]\nprobes:\n{probes}"
    );
    let config = write_file(dir.path(), "probes.yaml", yaml);
    let out = std::process::Command::new(LOOKOUT)
        .current_dir(dir.path())
        .arg(format!("--config.probes={}", config.display()))
        .arg("--probe.max-concurrency=1")
        .arg("--once")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
    // Each run holds its connection for its whole timeout: one at a time, they do not overlap.
    // (The server sees a close a little after it happens: 100 ms of slack.)
    let mut spans: Vec<(Instant, Instant)> = (0..3)
        .map(|_| closed.recv_timeout(Duration::from_secs(5)).expect("every probe ran"))
        .collect();
    spans.sort();
    for pair in spans.windows(2) {
        let overlap = pair[0].1.saturating_duration_since(pair[1].0);
        assert!(overlap < Duration::from_millis(100), "two runs at once: {spans:?}");
    }
}

/// The probe names in an exposition's `probe_success` series.
fn probes_in(body: &str) -> std::collections::BTreeSet<String> {
    body.lines()
        .filter_map(|l| l.strip_prefix("probe_success{probe=\""))
        .map(|l| l[..l.find('"').unwrap()].to_string())
        .collect()
}

#[test]
fn shards_together_run_every_probe_once() {
    let dir = tempfile::tempdir().unwrap();
    let probes = write_file(dir.path(), "probes.yaml", many_probes(40, ""));
    let config = format!("--config.probes={}", probes.display());
    let first = Server::spawn(dir.path(), &[config.clone(), "--shard=0/2".into()]);
    // The second replica as a StatefulSet pod would find it: its ordinal in the host name.
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", closed_port()).parse().unwrap();
    let child = std::process::Command::new(LOOKOUT)
        .current_dir(dir.path())
        .args([config, format!("--web.listen-address={addr}")])
        .env("HOSTNAME", "lookout-probes-1")
        .env("LOOKOUT_SHARD_COUNT", "2")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let second = Server { child, addr };
    crate::cli::wait_for(addr, "/-/ready", "Ready");
    let mut seen = Vec::new();
    for (server, index) in [(&first, 0), (&second, 1)] {
        let info = format!("lookout_shard_info{{index=\"{index}\",count=\"2\"}} 1");
        let body = crate::cli::wait_for(server.addr, "/metrics", &info);
        let share = sample_value(&body, "lookout_shard_probes ").unwrap() as usize;
        assert!((10..=30).contains(&share), "replica {index} runs {share} of 40");
        let deadline = Instant::now() + Duration::from_secs(10);
        let names = loop {
            let names = probes_in(&get(server.addr, "/metrics", &[]).unwrap().body);
            if names.len() == share || Instant::now() > deadline {
                break names;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        assert_eq!(names.len(), share);
        seen.push(names);
    }
    assert!(seen[0].is_disjoint(&seen[1]), "no probe runs twice");
    assert_eq!(seen[0].len() + seen[1].len(), 40, "every probe runs");
}

#[test]
fn a_shard_out_of_range_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let probes = write_file(dir.path(), "probes.yaml", many_probes(1, ""));
    for (flags, env, message) in [
        (vec!["--shard=2/2"], vec![], "INDEX must be from 0 to COUNT-1"),
        (vec!["--shard.count=3"], vec![("HOSTNAME", "lookout")], "does not end in -N"),
        (vec![], vec![("LOOKOUT_SHARD", "a/b")], "expected INDEX/COUNT"),
        (vec!["--shard=0/5000"], vec![], "COUNT must be at most 1000"),
        // A flag and the environment that disagree: neither is taken over the other.
        (vec!["--shard.count=3"], vec![("LOOKOUT_SHARD", "0/1")], "not both"),
    ] {
        let out = std::process::Command::new(LOOKOUT)
            .current_dir(dir.path())
            .arg(format!("--config.probes={}", probes.display()))
            .args(&flags)
            .envs(env)
            .arg("check")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {err}");
        assert!(err.contains(message), "{err}");
    }
    // Commands that run no scheduled probe do not read the shard.
    let out = std::process::Command::new(LOOKOUT)
        .env("LOOKOUT_SHARD", "a/b")
        .args(["--web.listen-address", &format!("127.0.0.1:{}", closed_port()), "healthcheck"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "not alive, and no usage error");
}

/// A probes.yaml whose one probe `found` takes its targets from `sd` (a YAML flow mapping key).
fn discovering(sd: &str) -> String {
    format!(
        "modules:\n  tcp:\n    prober: tcp\n    timeout: 1s\nprobes:\n  \
         - name: found\n    module: tcp\n    interval: 1s\n    labels: {{tier: edge}}\n    {sd}\n"
    )
}

/// The `target` labels of `found`'s probe_success series, once they are `expected`.
fn wait_targets(addr: std::net::SocketAddr, expected: &[String]) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let body = get(addr, "/metrics", &[]).unwrap().body;
        let mut targets: Vec<String> = body
            .lines()
            .filter_map(|l| {
                l.strip_prefix("probe_success{probe=\"found\",module=\"tcp\",target=\"")
            })
            .map(|l| l[..l.find('"').unwrap()].to_string())
            .collect();
        targets.sort();
        let mut want = expected.to_vec();
        want.sort();
        if targets == want {
            return body;
        }
        assert!(Instant::now() < deadline, "targets {targets:?}, expected {want:?}:\n{body}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn file_sd_follows_json_and_yaml_files_and_keeps_the_last_good_list() {
    let dir = tempfile::tempdir().unwrap();
    let targets = dir.path().join("targets");
    std::fs::create_dir(&targets).unwrap();
    let t: Vec<String> = (0..4).map(|_| format!("127.0.0.1:{}", closed_port())).collect();
    write_file(
        &targets,
        "a.json",
        format!(r#"[{{"targets": ["{}", "{}"], "labels": {{"env": "prod"}}}}]"#, t[0], t[1]),
    );
    write_file(
        &targets,
        "b.yml",
        format!("- targets: [\"{}\"]\n  labels: {{env: test, tier: core}}\n", t[2]),
    );
    write_file(&targets, "ignored.txt", "not matched");
    let sd =
        "file_sd_configs: [{files: [\"targets/*.json\", \"targets/*.yml\"], refresh_interval: 1m}]";
    let server = Server::start(dir.path(), &discovering(sd));
    let body = wait_targets(server.addr, &t[..3]);
    // The group's labels are the probe's labels, over the probe's own.
    let yaml_series = format!(
        "probe_success{{probe=\"found\",module=\"tcp\",target=\"{}\",env=\"test\",tier=\"core\"}}",
        t[2]
    );
    assert!(body.contains(&yaml_series), "{body}");
    let json_series = format!("target=\"{}\",env=\"prod\",tier=\"edge\"}}", t[0]);
    assert!(body.contains(&json_series), "{body}");
    assert!(body.contains("lookout_sd_targets{probe=\"found\"} 3"), "{body}");
    let failures = "lookout_sd_refresh_failures_total{probe=\"found\",mechanism=\"file\"}";
    assert_eq!(sample_value(&body, failures), Some(0.0), "counted from 0: {body}");
    promtool_check(&body);
    let status = get(server.addr, "/api/v1/status", &[]).unwrap().body;
    assert!(t[..3].iter().all(|t| status.contains(t.as_str())), "status page lists them: {status}");

    // A change applies without a reload; a target that goes leaves /metrics.
    write_file(&targets, "a.json", format!(r#"[{{"targets": ["{}", "{}"]}}]"#, t[0], t[3]));
    wait_targets(server.addr, &[t[0].clone(), t[3].clone(), t[2].clone()]);

    // A broken file keeps its last good targets and is counted.
    write_file(&targets, "b.yml", "- targets: [unclosed\n");
    write_file(&targets, "a.json", "[{\"targets\": [1]}]");
    let deadline = Instant::now() + Duration::from_secs(10);
    while sample_value(&get(server.addr, "/metrics", &[]).unwrap().body, failures) < Some(2.0) {
        assert!(Instant::now() < deadline, "both broken files are counted");
        std::thread::sleep(Duration::from_millis(200));
    }
    wait_targets(server.addr, &[t[0].clone(), t[3].clone(), t[2].clone()]);

    // A file that is deleted takes its targets with it.
    std::fs::remove_file(targets.join("b.yml")).unwrap();
    wait_targets(server.addr, &[t[0].clone(), t[3].clone()]);
}

/// What [`sd_server`] answers: status, Content-Type and body (for a 3xx, the Location).
type Answer = std::sync::Arc<std::sync::Mutex<(u16, &'static str, String)>>;

/// An HTTP server that answers every request with the current `answer`, and keeps the heads
/// of the requests, one after the other.
fn sd_server(answer: Answer) -> (std::net::SocketAddr, std::sync::Arc<std::sync::Mutex<String>>) {
    sd_server_with(answer, None)
}

/// [`sd_server`], over TLS with `tls`.
fn sd_server_with(
    answer: Answer,
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
) -> (std::net::SocketAddr, std::sync::Arc<std::sync::Mutex<String>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let heads = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let answer = answer.lock().unwrap().clone();
            match &tls {
                Some(config) => {
                    let connection = rustls::ServerConnection::new(config.clone()).unwrap();
                    sd_answer(&mut rustls::StreamOwned::new(connection, stream), answer, &heads)
                }
                None => sd_answer(&mut { stream }, answer, &heads),
            }
        }
    });
    (addr, seen)
}

fn sd_answer<S: Read + Write>(
    stream: &mut S,
    (status, content_type, body): (u16, &str, String),
    seen: &std::sync::Mutex<String>,
) {
    let mut buf = [0u8; 4096];
    let n = stream.read(&mut buf).unwrap_or(0);
    seen.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
    let _ = if (300..400).contains(&status) {
        write!(stream, "HTTP/1.1 {status} X\r\nLocation: {body}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    } else {
        write!(
            stream,
            "HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    let _ = stream.flush();
}

#[test]
fn http_sd_reads_prometheus_target_groups_and_survives_bad_answers() {
    let t: Vec<String> = (0..3).map(|_| format!("127.0.0.1:{}", closed_port())).collect();
    const JSON: &str = "application/json";
    // As Go SD servers write them: a nil map is `null`; meta labels are there for relabelling.
    let groups = |targets: &[String]| {
        let list: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
        let body = format!(
            r#"[{{"targets": [{}], "labels": {{"dc": "fra", "__meta_rack": "r1", "job": "web"}}}}, {{"targets": null, "labels": null}}]"#,
            list.join(",")
        );
        (200, JSON, body)
    };
    let answer: Answer = std::sync::Arc::new(std::sync::Mutex::new(groups(&t[..2])));
    let (addr, seen) = sd_server(answer.clone());
    let dir = tempfile::tempdir().unwrap();
    let sd = format!("http_sd_configs: [{{url: \"http://{addr}/sd\", refresh_interval: 1s}}]");
    let server = Server::start(dir.path(), &discovering(&sd));
    let body = wait_targets(server.addr, &t[..2]);
    // `__` labels are dropped, and a label lookout's series would have twice is exported_.
    let series = format!("target=\"{}\",dc=\"fra\",exported_job=\"web\",tier=\"edge\"}}", t[0]);
    assert!(body.contains(&series), "{body}");
    assert!(!body.contains("rack"), "{body}");
    let failures = "lookout_sd_refresh_failures_total{probe=\"found\",mechanism=\"http\"}";
    assert_eq!(sample_value(&body, failures), Some(0.0), "counted from 0: {body}");
    let head = seen.lock().unwrap().to_ascii_lowercase();
    assert!(head.contains("x-prometheus-refresh-interval-seconds: 1\r\n"), "{head}");

    let other = std::sync::Arc::new(std::sync::Mutex::new(groups(&t[1..])));
    let (moved, _) = sd_server(other);
    for bad in [
        (500, JSON, "oops".to_string()),
        (200, JSON, "{\"targets\": 1}".to_string()),
        (200, JSON, "[".to_string()),
        (200, JSON, "[{\"targets\": [], \"label\": {}}]".to_string()),
        (200, "text/html", "[]".to_string()),
        (302, "", format!("https://{moved}/sd")),
    ] {
        let before =
            sample_value(&get(server.addr, "/metrics", &[]).unwrap().body, failures).unwrap();
        *answer.lock().unwrap() = bad.clone();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let body = get(server.addr, "/metrics", &[]).unwrap().body;
            if sample_value(&body, failures).unwrap() > before {
                break;
            }
            assert!(Instant::now() < deadline, "{bad:?} is counted:\n{body}");
            std::thread::sleep(Duration::from_millis(200));
        }
        // The last good list stays.
        wait_targets(server.addr, &t[..2]);
    }
    // A reload while the source fails keeps what it last gave.
    unsafe { libc::kill(server.child.id() as i32, libc::SIGHUP) };
    std::thread::sleep(Duration::from_millis(2500));
    wait_targets(server.addr, &t[..2]);
    // A redirect is followed, as Prometheus does by default.
    *answer.lock().unwrap() = (307, "", format!("http://{moved}/elsewhere"));
    wait_targets(server.addr, &t[1..]);
}

#[test]
fn http_sd_over_tls_with_credentials_as_prometheus_configures_them() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Inventory CA");
    let leaf = ca.leaf("inventory", &["127.0.0.1", "localhost"], -1, 30);
    write_file(dir.path(), "ca.pem", pem(&ca.der()));
    write_file(dir.path(), "token", "s3cret\n");
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![leaf.der.clone()], leaf.key_der())
    .unwrap();
    let t: Vec<String> = (0..2).map(|_| format!("127.0.0.1:{}", closed_port())).collect();
    let groups = |t: &str| (200, "application/json", format!(r#"[{{"targets": ["{t}"]}}]"#));
    let answer: Answer = std::sync::Arc::new(std::sync::Mutex::new(groups(&t[0])));
    let (tls_addr, tls_seen) = sd_server_with(answer.clone(), Some(std::sync::Arc::new(config)));
    let (plain_addr, plain_seen) =
        sd_server(std::sync::Arc::new(std::sync::Mutex::new(groups(&t[1]))));
    // The name in the certificate is checked against the URL's host, or `server_name`.
    let probes = format!(
        "modules:\n  tcp:\n    prober: tcp\n    timeout: 1s\nprobes:\n  \
         - name: found\n    module: tcp\n    interval: 1s\n    http_sd_configs:\n      \
         - url: https://127.0.0.1:{port}/sd\n        refresh_interval: 1s\n        \
         authorization: {{credentials_file: token}}\n        \
         tls_config: {{ca_file: ca.pem, server_name: localhost}}\n  \
         - name: untrusted\n    module: tcp\n    interval: 1s\n    http_sd_configs:\n      \
         - {{url: \"https://127.0.0.1:{port}/sd\", refresh_interval: 1s}}\n  \
         - name: stays\n    module: tcp\n    interval: 1s\n    http_sd_configs:\n      \
         - {{url: \"https://localhost:{port}/sd\", refresh_interval: 1s, follow_redirects: false, \
         basic_auth: {{username: u, password: p}}, tls_config: {{ca_file: ca.pem}}}}\n",
        port = tls_addr.port()
    );
    let server = Server::start(dir.path(), &probes);
    let body = wait_targets(server.addr, &t[..1]);
    let head = tls_seen.lock().unwrap().to_ascii_lowercase();
    assert!(head.contains("authorization: bearer s3cret\r\n"), "{head}");
    // A server the trust store does not know gives nothing, and is counted.
    let failures = "lookout_sd_refresh_failures_total{probe=\"untrusted\",mechanism=\"http\"}";
    assert!(sample_value(&body, failures) >= Some(1.0), "{body}");
    assert!(!body.contains("probe=\"untrusted\",module"), "{body}");
    let stays = format!("probe_success{{probe=\"stays\",module=\"tcp\",target=\"{}\"}}", t[0]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !get(server.addr, "/metrics", &[]).unwrap().body.contains(&stays) {
        assert!(Instant::now() < deadline, "basic_auth and a name from the URL's host");
        std::thread::sleep(Duration::from_millis(200));
    }
    let heads = tls_seen.lock().unwrap().to_ascii_lowercase();
    assert!(heads.contains("authorization: basic dtpw\r\n"), "u:p: {heads}");
    // A redirect elsewhere is followed without the credentials; not at all where
    // follow_redirects is false, which keeps the last good targets.
    *answer.lock().unwrap() = (307, "", format!("http://{plain_addr}/sd"));
    let body = wait_targets(server.addr, &t[1..]);
    let head = plain_seen.lock().unwrap().to_ascii_lowercase();
    assert!(head.starts_with("get /sd ") && !head.contains("authorization"), "{head}");
    let failed = "lookout_sd_refresh_failures_total{probe=\"stays\",mechanism=\"http\"}";
    let deadline = Instant::now() + Duration::from_secs(10);
    while sample_value(&get(server.addr, "/metrics", &[]).unwrap().body, failed) < Some(1.0) {
        assert!(Instant::now() < deadline, "{body}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(get(server.addr, "/metrics", &[]).unwrap().body.contains(&stays));
}

#[test]
fn a_url_that_never_answers_holds_up_no_file() {
    // Accepts, and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let t = format!("127.0.0.1:{}", closed_port());
    write_file(dir.path(), "t.json", format!(r#"[{{"targets": ["{t}"]}}]"#));
    let sd = format!(
        "http_sd_configs: [{{url: \"http://{silent_addr}/sd\"}}]\n    file_sd_configs: [{{files: [t.json]}}]"
    );
    let started = Instant::now();
    let server = Server::start(dir.path(), &discovering(&sd));
    wait_targets(server.addr, std::slice::from_ref(&t));
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    // A change of the file applies while the URL still has not answered.
    let u = format!("127.0.0.1:{}", closed_port());
    write_file(dir.path(), "t.json", format!(r#"[{{"targets": ["{u}"]}}]"#));
    wait_targets(server.addr, &[u]);
    drop(silent);
}

#[test]
fn target_and_discovery_are_exclusive_and_sd_values_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let head = "modules:\n  tcp:\n    prober: tcp\nprobes:\n";
    let cases = [
        (
            format!("{head}  - name: a\n    module: tcp\n    target: x:1\n    file_sd_configs: [{{files: [t.json]}}]\n"),
            "7:13",
            "`target` and `file_sd_configs`/`http_sd_configs` are exclusive",
        ),
        (format!("{head}  - name: a\n    module: tcp\n"), "5:11", "needs a `target`"),
        (
            format!("{head}  - name: a\n    module: tcp\n    file_sd_configs: [{{files: [t.txt]}}]\n"),
            "7:32",
            "must end in .json, .yml or .yaml",
        ),
        (
            format!("{head}  - name: a\n    module: tcp\n    http_sd_configs: [{{url: \"ftp://x/\"}}]\n"),
            "7:29",
            "url must start with http:// or https://",
        ),
        (
            format!("{head}  - name: a\n    module: tcp\n    http_sd_configs: [{{url: \"http://u:p@x/\"}}]\n"),
            "7:29",
            "credentials in the URL are not supported",
        ),
        (
            format!("{head}  - name: a\n    module: tcp\n    http_sd_configs: [{{url: \"http://x/\", refresh_interval: 10ms}}]\n"),
            "7:60",
            "refresh_interval must be at least 1s",
        ),
        (
            format!("{head}  - name: a\n    module: tcp\n    target: x:1\n    relabel_configs: [{{action: drop}}]\n"),
            "8:23",
            "relabel_configs apply to discovered targets",
        ),
        (
            format!("{head}  - name: a\n    module: tcp\n    file_sd_configs: [{{files: [t.json]}}]\n    relabel_configs:\n      - {{source_labels: [a], regex: '(', target_label: b}}\n"),
            "9:37",
            "relabel_configs: invalid regexp",
        ),
    ];
    let cases: Vec<(&str, &str, &str)> =
        cases.iter().map(|(y, p, m)| (y.as_str(), *p, *m)).collect();
    assert_config_errors(dir.path(), "probes.yaml", "--config.probes", &["check".into()], &cases);
    // A probe label its module's query_response also gives probe_expect_info: the series would
    // carry the name twice, and Prometheus refuse the whole scrape.
    let stepped = "modules:\n  tcp:\n    prober: tcp\n    tcp:\n      query_response:\n        - expect: \"^SSH-(.+)$\"\n          labels: [{name: team, value: \"${1}\"}]\nprobes:\n";
    let clash = format!("{stepped}  - name: a\n    module: tcp\n    target: x:22\n    interval: 10s\n    labels: {{team: payments}}\n");
    let late = format!("{stepped}  - name: a\n    module: tcp\n    target: x:22\n    interval: 10s\n    interval_when_failing: 10s\n");
    assert_config_errors(
        dir.path(),
        "probes.yaml",
        "--config.probes",
        &["check".into()],
        &[
            (
                clash.as_str(),
                "13:20",
                "label \"team\" is also one module tcp's query_response gives",
            ),
            (late.as_str(), "13:28", "interval_when_failing must be shorter than interval"),
        ],
    );
}

#[test]
fn a_probes_file_with_tens_of_thousands_of_probes_loads() {
    let dir = tempfile::tempdir().unwrap();
    let probes = write_file(dir.path(), "probes.yaml", many_probes(40_000, ""));
    let out = std::process::Command::new(LOOKOUT)
        .current_dir(dir.path())
        .arg(format!("--config.probes={}", probes.display()))
        .arg("check")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Labels of a series line of the exposition (`name{a="b",…} value`), escapes left as written.
fn series_labels(line: &str) -> std::collections::BTreeMap<String, String> {
    let inner = &line[line.find('{').unwrap() + 1..line.rfind('}').unwrap()];
    let mut labels = std::collections::BTreeMap::new();
    for pair in inner.split("\",").filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once("=\"").unwrap();
        labels.insert(name.to_string(), value.trim_end_matches('"').to_string());
    }
    labels
}

#[test]
fn relabel_configs_give_the_labels_prometheus_gives() {
    let dir = tempfile::tempdir().unwrap();
    let targets = dir.path().join("targets");
    std::fs::create_dir(&targets).unwrap();
    let t: Vec<String> = (0..3).map(|_| format!("127.0.0.1:{}", closed_port())).collect();
    write_file(
        &targets,
        "hosts.yml",
        format!(
            "- targets: [\"{}\", \"{}\"]\n  labels: {{__meta_dc: eu-west, env: Prod, tmp_x: a, extra_1: z}}\n\
             - targets: [\"{}\", \"skip-me:1\"]\n  labels: {{__meta_dc: us-east, env: staging}}\n",
            t[0], t[1], t[2]
        ),
    );
    // Every action that keeps the target, and one that drops one; the same text goes to
    // Prometheus' scrape job.
    let rules = "      - {source_labels: [__meta_dc], target_label: dc}
      - {source_labels: [__address__], regex: 'skip-.*', action: drop}
      - {source_labels: [env], target_label: env, action: lowercase}
      - {source_labels: [env], target_label: ENV, action: uppercase}
      - {source_labels: [__address__], modulus: 4, target_label: bucket, action: hashmod}
      - {regex: 'tmp_.*', action: labeldrop}
      - {source_labels: [__meta_filepath], regex: '.*/(.*)', target_label: file}
      - {regex: '__meta_(dc)', replacement: 'meta_$1', action: labelmap}
      - {source_labels: [dc, env], separator: '/', target_label: where}
      - {source_labels: [env], regex: 'prod|staging', action: keep}
      - {regex: '__.*|[a-zA-Z]+|meta_dc', action: labelkeep}
";
    let probes = format!(
        "modules:\n  tcp:\n    prober: tcp\n    timeout: 1s\nprobes:\n  - name: found\n    \
         module: tcp\n    interval: 1s\n    file_sd_configs: [{{files: [targets/*.yml]}}]\n    \
         relabel_configs:\n{rules}"
    );
    let server = Server::start(dir.path(), &probes);
    let prom_port = closed_port();
    let config = write_file(
        dir.path(),
        "prometheus.yml",
        format!(
            "global: {{scrape_interval: 1m}}\nscrape_configs:\n  - job_name: found\n    \
             file_sd_configs: [{{files: ['{}/*.yml']}}]\n    relabel_configs:\n{rules}",
            targets.display()
        ),
    );
    let prometheus = Server::prometheus(&config, dir.path(), prom_port, &[]);
    let prom = prometheus.addr;

    // Prometheus' labels of each target, without the two it adds after relabelling.
    let deadline = Instant::now() + Duration::from_secs(30);
    let theirs = loop {
        let answer = get(prom, "/api/v1/targets", &[])
            .and_then(|r| serde_json::from_str::<serde_json::Value>(&r.body).ok());
        let active = answer.as_ref().and_then(|a| a["data"]["activeTargets"].as_array().cloned());
        if let Some(active) = active.filter(|a| a.len() == 3) {
            let mut by_target = std::collections::BTreeMap::new();
            for target in active {
                let mut labels: std::collections::BTreeMap<String, String> =
                    serde_json::from_value(target["labels"].clone()).unwrap();
                labels.remove("job");
                let address = labels.remove("instance").unwrap();
                by_target.insert(address, labels);
            }
            break by_target;
        }
        assert!(Instant::now() < deadline, "Prometheus' targets: {answer:?}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let body = wait_targets(server.addr, &t);
    for line in body.lines().filter(|l| l.starts_with("probe_success{")) {
        let mut ours = series_labels(line);
        for own in ["probe", "module"] {
            ours.remove(own);
        }
        let target = ours.remove("target").unwrap();
        assert_eq!(Some(&ours), theirs.get(&target), "{target}: {body}");
    }
    assert!(theirs.values().all(|l| l["file"] == "hosts.yml" && l.contains_key("bucket")));
    assert!(theirs.values().all(|l| !l.contains_key("extra_1") && !l.contains_key("tmp_x")));
    assert_eq!(sample_value(&body, "lookout_sd_dropped_targets{probe=\"found\"}"), Some(1.0));
    assert_eq!(sample_value(&body, "lookout_sd_targets{probe=\"found\"}"), Some(3.0));
    promtool_check(&body);
}

#[test]
fn a_blackbox_scrape_jobs_rules_work_as_copied() {
    let dir = tempfile::tempdir().unwrap();
    let port = format!("127.0.0.1:{}", closed_port());
    let file = write_file(dir.path(), "cert.pem", self_signed("c", &["c"]).pem());
    // A targets file and relabelling as blackbox_exporter's README has them: the module
    // from a label, the target from __address__, instance from the target, the exporter's
    // address last.
    write_file(
        dir.path(),
        "targets.yml",
        format!(
            "- {{targets: ['{port}'], labels: {{module: tcp_connect}}}}\n\
             - {{targets: ['{}'], labels: {{module: on_disk}}}}\n\
             - {{targets: ['x:1'], labels: {{module: no_such_module}}}}\n",
            file.display()
        ),
    );
    let probes = "modules:\n  tcp_connect:\n    prober: tcp\n    timeout: 1s\n  on_disk:\n    \
                  prober: file\nprobes:\n  - name: bb\n    module: tcp_connect\n    interval: 1s\n    \
                  file_sd_configs: [{files: [targets.yml]}]\n    relabel_configs:\n      \
                  - {source_labels: [module], target_label: __param_module}\n      \
                  - {source_labels: [__address__], target_label: __param_target}\n      \
                  - {source_labels: [__param_target], target_label: instance}\n      \
                  - {target_label: __address__, replacement: '127.0.0.1:9115'}\n      \
                  - {regex: module, action: labeldrop}\n";
    let server = Server::start(dir.path(), probes);
    let tcp = format!(
        "probe_success{{probe=\"bb\",module=\"tcp_connect\",target=\"{port}\",exported_instance=\"{port}\"}} 0"
    );
    let on_disk = format!(
        "probe_success{{probe=\"bb\",module=\"on_disk\",target=\"{0}\",exported_instance=\"{0}\"}} 1",
        file.display()
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let body = get(server.addr, "/metrics", &[]).unwrap().body;
        if body.contains(&tcp) && body.contains(&on_disk) {
            assert_eq!(sample_value(&body, "lookout_sd_targets{probe=\"bb\"}"), Some(2.0));
            assert_eq!(sample_value(&body, "lookout_sd_dropped_targets{probe=\"bb\"}"), Some(1.0));
            assert!(!body.contains("9115"), "the exporter's address is no target: {body}");
            promtool_check(&body);
            break;
        }
        assert!(Instant::now() < deadline, "{tcp}\n{on_disk}\n{body}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
