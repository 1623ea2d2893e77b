//! The binary as an operator runs it: `--once`, serving `/metrics` and `/probe`, reloads,
//! and output that promtool accepts.

use crate::common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn probes_yaml(good: &str, bad_port: u16, extra: &str) -> String {
    format!(
        r#"modules:
  http_2xx:
    prober: http
    timeout: 2s
    http:
      preferred_ip_protocol: ip4
  tcp_connect:
    prober: tcp
    timeout: 2s
probes:
  - name: web
    module: http_2xx
    target: http://{good}/
    interval: 1s
    labels:
      team: "payments \"core\""
  - name: port
    module: tcp_connect
    target: {good}
    interval: 1s
  - name: down
    module: http_2xx
    target: http://127.0.0.1:{bad_port}/
    interval: 1s
{extra}"#
    )
}

fn background_http_server() -> std::net::SocketAddr {
    in_background(http_server)
}

/// Accepts connections and never answers.
fn background_silent_server() -> std::net::SocketAddr {
    in_background(|| {
        raw_server(|s| async move {
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(s);
        })
    })
}

#[test]
fn once_prints_a_table_and_exits_by_result() {
    let target = background_http_server();
    let dir = tempfile::tempdir().unwrap();
    let path =
        write_file(dir.path(), "probes.yaml", probes_yaml(&target.to_string(), closed_port(), ""));
    let out = Command::new(LOOKOUT)
        .current_dir(dir.path())
        .arg(format!("--config.probes={}", path.display()))
        .arg("--once")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "one probe fails: {text}");
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("PROBE") && lines[0].contains("TARGET") && lines[0].contains("REASON"),
        "{text}"
    );
    let web = lines.iter().find(|l| l.starts_with("web ")).unwrap();
    assert!(web.contains(" ok ") && web.contains(" 200 "), "{web}");
    let down = lines.iter().find(|l| l.starts_with("down ")).unwrap();
    assert!(down.contains("FAIL") && down.contains("connect_refused"), "{down}");
    assert!(text.contains("3 probes, 2 ok, 1 failed"), "{text}");

    let only_good = format!(
        "modules:\n  http_2xx:\n    prober: http\n  tcp_connect:\n    prober: tcp\nprobes:\n  - name: web\n    module: http_2xx\n    target: http://{target}/\n  - name: port\n    module: tcp_connect\n    target: {target}\n"
    );
    let path = write_file(dir.path(), "ok.yaml", &only_good);
    let out = Command::new(LOOKOUT)
        .arg(format!("--config.probes={}", path.display()))
        .arg("--once")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn once_prometheus_and_json_outputs() {
    let target = background_http_server();
    let dir = tempfile::tempdir().unwrap();
    let path =
        write_file(dir.path(), "probes.yaml", probes_yaml(&target.to_string(), closed_port(), ""));
    let run = |format: &str| {
        Command::new(LOOKOUT)
            .arg(format!("--config.probes={}", path.display()))
            .arg("--once")
            .arg(format!("--output={format}"))
            .output()
            .unwrap()
    };
    let prom = String::from_utf8(run("prometheus").stdout).unwrap();
    assert!(
        prom.contains(&format!(
            "probe_success{{probe=\"web\",module=\"http_2xx\",target=\"http://{target}/\",team=\"payments \\\"core\\\"\"}} 1"
        )),
        "{prom}"
    );
    assert!(prom.contains("lookout_probe_failure_reason{probe=\"down\""), "{prom}");
    promtool_check(&prom);
    let json: serde_json::Value = serde_json::from_slice(&run("json").stdout).unwrap();
    let down = json["probes"].as_array().unwrap().iter().find(|p| p["probe"] == "down").unwrap();
    assert_eq!(down["success"], false);
    assert_eq!(down["failure_reason"], "connect_refused");
}

#[test]
fn bad_config_exits_two() {
    let dir = tempfile::tempdir().unwrap();
    let path =
        write_file(dir.path(), "probes.yaml", "modules:\n  m:\n    prober: http\n    bogus: 1\n");
    let out = Command::new(LOOKOUT)
        .arg(format!("--config.probes={}", path.display()))
        .arg("--once")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(LOOKOUT)
        .arg(format!("--config.probes={}", path.display()))
        .arg("--web.listen-address=127.0.0.1:0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "refuses to start");
}

pub fn promtool_check(exposition: &str) {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool must be installed (Debian package prometheus); .ci/run installs it");
    child.stdin.take().unwrap().write_all(exposition.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The raw bytes of a response (head and body), for bodies that are not text.
fn raw_get(addr: std::net::SocketAddr, path: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let extra: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n{extra}\r\n").as_bytes())
        .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    raw
}

pub fn wait_for(addr: std::net::SocketAddr, path: &str, what: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let body = get(addr, path, &[]).map(|r| r.body).unwrap_or_default();
        if body.contains(what) {
            return body;
        }
        assert!(Instant::now() < deadline, "{what:?} never appeared in {path}:\n{body}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn serves_scheduled_results_self_metrics_and_status_page() {
    let target = background_http_server();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &probes_yaml(&target.to_string(), closed_port(), ""));
    let body = wait_for(server.addr, "/metrics", "probe_success{probe=\"down\"");
    let body = if body.contains("probe=\"web\"") {
        body
    } else {
        wait_for(server.addr, "/metrics", "probe_success{probe=\"web\"")
    };
    assert!(body.contains("lookout_build_info{version="), "{body}");
    assert!(body.contains("process_open_fds "));
    assert!(body.contains("lookout_config_last_reload_successful 1"));
    assert!(
        body.contains("lookout_probe_failure_reason{probe=\"down\",module=\"http_2xx\",target="),
        "{body}"
    );
    promtool_check(&body);

    let om = get(
        server.addr,
        "/metrics",
        &[("Accept", "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5")],
    )
    .unwrap();
    assert!(om.headers.contains("application/openmetrics-text; version=1.0.0"), "{}", om.headers);
    assert!(om.body.ends_with("# EOF\n"));
    assert!(om.body.contains("# TYPE lookout_probe_runs counter\n"));
    // promtool lints the classic text format only (it reads an OpenMetrics counter's
    // `_total` sample as a family without help), so the OpenMetrics body is checked here.
    for line in om.body.lines().filter(|l| l.starts_with("# TYPE ") && l.ends_with(" counter")) {
        let family = line.split(' ').nth(2).unwrap();
        assert!(!family.ends_with("_total"), "{line}");
        assert!(om.body.contains(&format!("\n{family}_total")), "{family} has _total samples");
    }
    let text = get(server.addr, "/metrics", &[]).unwrap();
    assert!(text.headers.contains("text/plain; version=0.0.4"), "{}", text.headers);
    assert!(
        !text.headers.to_ascii_lowercase().contains("content-encoding"),
        "no gzip unless asked"
    );
    let zipped = raw_get(server.addr, "/metrics", &[("Accept-Encoding", "gzip")]);
    let split = zipped.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    assert!(String::from_utf8_lossy(&zipped[..split])
        .to_ascii_lowercase()
        .contains("content-encoding: gzip"));
    let mut body = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(&zipped[split + 4..]),
        &mut body,
    )
    .unwrap();
    assert!(body.contains("lookout_build_info"), "{body}");

    let page = get(server.addr, "/", &[]).unwrap();
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("<b>web</b>") && page.body.contains("connect_refused"),
        "{}",
        page.body
    );
    assert_eq!(get(server.addr, "/-/healthy", &[]).unwrap().status, 200);
    assert_eq!(get(server.addr, "/nope", &[]).unwrap().status, 404);
}

#[test]
fn probe_endpoint_is_blackbox_compatible() {
    let target = background_http_server();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &probes_yaml(&target.to_string(), closed_port(), ""));
    let reply =
        get(server.addr, &format!("/probe?module=http_2xx&target=http://{target}/"), &[]).unwrap();
    assert_eq!(reply.status, 200);
    assert!(reply.body.contains("probe_success 1"), "{}", reply.body);
    assert!(reply.body.contains("probe_http_status_code 200"));
    promtool_check(&reply.body);

    let failed = get(
        server.addr,
        &format!("/probe?module=http_2xx&target=http://127.0.0.1:{}/", closed_port()),
        &[],
    )
    .unwrap();
    assert_eq!(failed.status, 200, "a failed probe still answers 200");
    assert!(failed.body.contains("probe_success 0"));
    assert!(failed.body.contains("lookout_probe_failure_reason{reason=\"connect_refused\"} 1"));

    let tcp = get(server.addr, &format!("/probe?module=tcp_connect&target={target}"), &[]).unwrap();
    assert!(tcp.body.contains("probe_success 1"), "{}", tcp.body);

    let debug = get(
        server.addr,
        &format!("/probe?module=http_2xx&target=http://{target}/&debug=true"),
        &[],
    )
    .unwrap();
    assert!(debug.body.starts_with("Logs for the probe:"), "{}", debug.body);
    assert!(debug.body.contains("Metrics that would have been returned:"));

    assert_eq!(get(server.addr, "/probe?module=nope&target=x", &[]).unwrap().status, 400);
    assert_eq!(get(server.addr, "/probe?module=http_2xx", &[]).unwrap().status, 400);
    let metrics = get(server.addr, "/metrics", &[]).unwrap().body;
    assert!(
        metrics.contains("lookout_probe_request_errors_total{reason=\"unknown_module\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("lookout_probe_request_errors_total{reason=\"missing_target\"} 1"));
    assert!(
        metrics.contains("lookout_probe_requests_total{module=\"http_2xx\",result=\"failure\"} 1")
    );
}

#[test]
fn probe_endpoint_honours_the_scrape_timeout_header() {
    let silent = background_silent_server();
    let dir = tempfile::tempdir().unwrap();
    let yaml = "modules:\n  slow:\n    prober: http\n    http:\n      preferred_ip_protocol: ip4\n";
    let server = Server::start(dir.path(), yaml);
    let start = Instant::now();
    let reply = get(
        server.addr,
        &format!("/probe?module=slow&target=http://{silent}/"),
        &[("X-Prometheus-Scrape-Timeout-Seconds", "1.5")],
    )
    .unwrap();
    let took = start.elapsed();
    assert!(
        reply.body.contains("probe_success 0") && reply.body.contains("reason=\"timeout\""),
        "{}",
        reply.body
    );
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(1800),
        "took {took:?}, expected about 1.0 s"
    );
}

#[test]
fn probe_endpoint_allowlist_and_switch() {
    let target = background_http_server();
    let dir = tempfile::tempdir().unwrap();
    let allow = format!("probe_endpoint:\n  allowed_targets:\n    - 'http://{target}/.*'\n");
    let server =
        Server::start(dir.path(), &probes_yaml(&target.to_string(), closed_port(), &allow));
    assert_eq!(
        get(server.addr, &format!("/probe?module=http_2xx&target=http://{target}/x"), &[])
            .unwrap()
            .status,
        200
    );
    let denied = get(
        server.addr,
        "/probe?module=http_2xx&target=http://169.254.169.254/latest/meta-data/",
        &[],
    )
    .unwrap();
    assert_eq!(denied.status, 403);
    assert!(get(server.addr, "/metrics", &[])
        .unwrap()
        .body
        .contains("lookout_probe_request_errors_total{reason=\"target_not_allowed\"} 1"));
    drop(server);

    let off = Server::start(
        dir.path(),
        &probes_yaml(&target.to_string(), closed_port(), "probe_endpoint:\n  enabled: false\n"),
    );
    assert_eq!(
        get(off.addr, &format!("/probe?module=http_2xx&target=http://{target}/"), &[])
            .unwrap()
            .status,
        404
    );
}

#[test]
fn reload_keeps_the_old_config_when_the_new_one_is_bad() {
    let target = background_http_server();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &probes_yaml(&target.to_string(), closed_port(), ""));
    wait_for(server.addr, "/metrics", "probe_success{probe=\"web\"");

    write_file(dir.path(), "probes.yaml", "modules:\n  http_2xx:\n    prober: http\n    htp: {}\n");
    let reply = request(server.addr, "POST", "/-/reload", &[]).unwrap();
    assert_eq!(reply.status, 500);
    assert!(reply.body.contains("probes.yaml:4:5"), "{}", reply.body);
    let metrics = get(server.addr, "/metrics", &[]).unwrap().body;
    assert!(metrics.contains("lookout_config_last_reload_successful 0"), "{metrics}");
    assert!(metrics.contains("probe_success{probe=\"web\""), "old probes keep running");
    assert_eq!(get(server.addr, "/-/reload", &[]).unwrap().status, 405);

    let renamed =
        probes_yaml(&target.to_string(), closed_port(), "").replace("name: web", "name: web2");
    write_file(dir.path(), "probes.yaml", &renamed);
    assert_eq!(request(server.addr, "POST", "/-/reload", &[]).unwrap().status, 200);
    let metrics = wait_for(server.addr, "/metrics", "probe_success{probe=\"web2\"");
    assert!(metrics.contains("lookout_config_last_reload_successful 1"));
    assert!(
        !metrics.contains("probe_success{probe=\"web\","),
        "results of removed probes are dropped"
    );
    assert!(
        !metrics.contains("lookout_probe_runs_total{probe=\"web\","),
        "and so are their run counts: {metrics}"
    );

    // SIGHUP reloads too.
    let back =
        probes_yaml(&target.to_string(), closed_port(), "").replace("name: web", "name: web3");
    write_file(dir.path(), "probes.yaml", &back);
    unsafe { libc::kill(server.child.id() as i32, libc::SIGHUP) };
    wait_for(server.addr, "/metrics", "probe_success{probe=\"web3\"");
}

#[test]
fn auto_reload_applies_a_changed_file_and_reports_a_bad_one_once() {
    let target = background_http_server();
    let dir = tempfile::tempdir().unwrap();
    let probes =
        write_file(dir.path(), "probes.yaml", probes_yaml(&target.to_string(), closed_port(), ""));
    let server = Server::spawn(
        dir.path(),
        &[
            format!("--config.probes={}", probes.display()),
            "--config.auto-reload-interval=500ms".into(),
        ],
    );
    wait_for(server.addr, "/metrics", "probe_success{probe=\"web\"");
    // A ConfigMap update: the new file replaces the old through a rename, as the kubelet's link
    // swap does, and keeps its size.
    let renamed =
        probes_yaml(&target.to_string(), closed_port(), "").replace("name: web", "name: wob");
    let next = write_file(dir.path(), "probes.yaml.new", &renamed);
    std::fs::rename(&next, &probes).unwrap();
    wait_for(server.addr, "/metrics", "probe_success{probe=\"wob\"");

    write_file(dir.path(), "probes.yaml", "modules:\n  http_2xx:\n    prober: http\n    htp: {}\n");
    let failed = "lookout_config_reloads_total{result=\"failure\"} 1";
    wait_for(server.addr, "/metrics", failed);
    std::thread::sleep(Duration::from_millis(1500));
    let metrics = get(server.addr, "/metrics", &[]).unwrap().body;
    assert!(metrics.contains(failed), "a bad file is reported once, not at every look: {metrics}");
    assert!(metrics.contains("lookout_config_last_reload_successful 0"), "{metrics}");
    assert!(metrics.contains("probe_success{probe=\"wob\""), "the running probes stay");
}

#[test]
fn scheduled_probe_timeout_never_exceeds_interval_and_runs_do_not_overlap() {
    let silent = background_silent_server();
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "modules:\n  slow:\n    prober: http\n    timeout: 10s\n    http:\n      preferred_ip_protocol: ip4\nprobes:\n  - name: hang\n    module: slow\n    target: http://{silent}/\n    interval: 500ms\n"
    );
    let server = Server::start(dir.path(), &yaml);
    std::thread::sleep(Duration::from_millis(2600));
    let metrics = get(server.addr, "/metrics", &[]).unwrap().body;
    let runs =
        sample_value(&metrics, "lookout_probe_runs_total{probe=\"hang\",result=\"failure\"}")
            .unwrap_or(0.0);
    assert!((2.0..=5.0).contains(&runs), "runs {runs}:\n{metrics}");
    let duration = sample_value(&metrics, "probe_duration_seconds{probe=\"hang\"").unwrap();
    assert!(duration < 0.7, "timeout is clamped to the 500ms interval: {duration}");
    assert!(
        metrics.contains("lookout_probe_failure_reason{probe=\"hang\",module=\"slow\",target=")
            && metrics.contains("reason=\"timeout\"} 1")
    );
}
