//! The status page as a person sees it: rendered by headless Chromium (Debian's package), with
//! probes failing first, their last runs, uptime and latency, reasons, certificate warnings in
//! colour, the log rules' error count and the log sources; its JSON API and badges with hostile
//! names; ten thousand probes a page at a time; the history's configuration.

use crate::common::*;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn json(addr: std::net::SocketAddr, path: &str) -> serde_json::Value {
    let reply = get(addr, path, &[]).unwrap();
    assert_eq!(reply.status, 200, "{path}: {}", reply.body);
    serde_json::from_str(&reply.body).unwrap_or_else(|e| panic!("{path}: {e}: {}", reply.body))
}

/// The probe named `name` in a `/api/v1/status` answer.
fn probe<'a>(status: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    status["probes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("{name} missing: {status}"))
}

const CHROMIUM: &str = "/usr/bin/chromium";

fn chromium(dir: &Path, url: &str, extra: &[&str]) -> String {
    assert!(
        Path::new(CHROMIUM).exists(),
        "chromium must be installed (Debian package chromium); .ci/run installs it"
    );
    let profile = dir.join("chromium-profile");
    let out = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1400,1000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .output()
        .unwrap();
    assert!(out.status.success(), "chromium: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A TCP port that accepts for a second, then refuses for a second, and so on, while the test runs.
fn flapping_port() -> u16 {
    let port = closed_port();
    std::thread::spawn(move || loop {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port));
        std::thread::sleep(Duration::from_millis(1000));
        drop(listener);
        std::thread::sleep(Duration::from_millis(1000));
    });
    port
}

#[test]
fn status_page_shows_failing_first_with_history_errors_and_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let web = in_background(http_server);
    let ca = Ca::new("Page CA");
    write_file(dir.path(), "soon.pem", ca.leaf("soon.example", &["soon.example"], -100, 10).pem());
    write_file(dir.path(), "gone.pem", ca.leaf("gone.example", &["gone.example"], -100, -3).pem());
    let log = dir.path().join("access.log");
    std::fs::write(&log, "").unwrap();
    let probes = format!(
        "modules:\n  http_2xx:\n    prober: http\n    http:\n      preferred_ip_protocol: ip4\n  tcp_connect:\n    prober: tcp\n  certs:\n    prober: file\nprobes:\n  - name: shop-home\n    module: http_2xx\n    target: http://{web}/\n    interval: 500ms\n  - name: payments-api\n    module: http_2xx\n    target: http://127.0.0.1:{}/\n    interval: 500ms\n  - name: search-flapping\n    module: tcp_connect\n    target: 127.0.0.1:{}\n    interval: 300ms\n  - name: soon-cert\n    module: certs\n    target: {d}/soon.pem\n    interval: 1s\n  - name: gone-cert\n    module: certs\n    target: {d}/gone.pem\n    interval: 1s\nstatus_page:\n  history: 60\n",
        closed_port(),
        flapping_port(),
        d = dir.path().display()
    );
    let rules = write_file(
        dir.path(),
        "rules.yaml",
        format!("sources:\n  - name: edge-nginx\n    paths: [\"{}\"]\n    format: nginx\n    poll_interval: 100ms\nmetrics:\n  - name: http_responses_5xx_total\n    type: counter\n    source: edge-nginx\n    when: [\"status >= 500\"]\n", log.display()),
    );
    let probes_path = write_file(dir.path(), "probes.yaml", probes);
    let server = Server::with_logs(dir.path(), &probes_path, &rules);
    let addr = server.addr;
    std::thread::sleep(Duration::from_millis(300));
    let mut lines = String::new();
    for i in 0..20 {
        let status = if i % 7 == 3 { 502 } else { 200 };
        lines.push_str(&format!(
            "10.0.0.1 - - [20/Nov/2026:10:00:00 +0900] \"GET /{i} HTTP/1.1\" {status} 1 \"-\" \"-\"\n"
        ));
    }
    lines.push_str("this line is not nginx's\n");
    std::fs::write(&log, lines).unwrap();
    // Until every probe has run, the flapping one both ways, and the errors are counted.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = json(addr, "/api/v1/status");
        let flapping = probe(&status, "search-flapping")["runs"].as_array().unwrap().clone();
        let both = flapping.iter().any(|r| r["success"] == true)
            && flapping.iter().any(|r| r["success"] == false);
        if status["summary"]["pending"] == 0 && both && status["errors"]["since_start"] == 3.0 {
            assert_eq!(status["errors"]["last_5m"], 3.0, "{status}");
            assert_eq!(status["summary"]["certificates_expiring"], 1);
            assert_eq!(status["summary"]["certificates_expired"], 1);
            assert_eq!(status["history"], 60);
            let down = probe(&status, "payments-api");
            assert_eq!(down["state"], "down");
            assert_eq!(down["reason"], "connect_refused");
            assert_eq!(down["uptime_percent"], 0.0);
            assert_eq!(probe(&status, "shop-home")["status"], "200");
            assert_eq!(probe(&status, "soon-cert")["certificate"]["state"], "expiring");
            break;
        }
        assert!(Instant::now() < deadline, "the page never showed every case: {status:#}");
        std::thread::sleep(Duration::from_millis(200));
    }

    let url = format!("http://{addr}/");
    let dom = chromium(dir.path(), &url, &["--dump-dom"]);
    let body = &dom[dom.find("<table id=\"probes\">").expect("the probes table")..];
    let rows: Vec<&str> =
        body[..body.find("</tbody>").unwrap()].split("<tr class=\"probe ").skip(1).collect();
    assert_eq!(rows.len(), 5, "{dom}");
    let row = |name: &str| -> &str {
        rows.iter()
            .find(|r| r.contains(&format!("<b>{name}</b>")))
            .unwrap_or_else(|| panic!("{name} missing:\n{dom}"))
    };
    assert!(
        rows[0].starts_with("down") && rows[0].contains("<b>payments-api</b>"),
        "the failing probe first: {}",
        rows[0]
    );
    assert!(
        row("payments-api").contains("connect_refused") && row("payments-api").contains(">0%<"),
        "{}",
        row("payments-api")
    );
    // Since when: down in every kept run, so at least since the first of them.
    assert!(
        row("payments-api").contains("<small class=\"since\" title=\"since ")
            && row("payments-api").contains(">for ≥ "),
        "{}",
        row("payments-api")
    );
    let up = row("shop-home");
    assert!(
        up.starts_with("up") && up.contains("<td class=\"status\" data-label=\"Status\">200</td>"),
        "{up}"
    );
    assert!(
        up.contains(">100%<") && up.contains("<svg class=\"spark\"") && up.contains("<polyline"),
        "{up}"
    );
    assert!(up.contains("<svg class=\"bar\"") && up.contains(" · up · 200</title>"), "{up}");
    let flapping = row("search-flapping");
    let uptime: f64 = {
        let cell = &flapping[flapping.find("class=\"uptime\"").unwrap()..];
        let text = &cell[cell.find('>').unwrap() + 1..cell.find('%').unwrap()];
        text.parse().unwrap()
    };
    assert!(uptime > 0.0 && uptime < 100.0, "flapping: {uptime}%: {flapping}");
    assert!(flapping.contains("fill=\"#cf222e\"") && flapping.contains("fill=\"#2da44e\""));
    assert!(row("soon-cert").contains("<span class=\"cert soon\">"), "{}", row("soon-cert"));
    assert!(row("gone-cert").contains("<span class=\"cert expired\">expired 3 days ago</span>"));
    let errors = &dom[dom.find("id=\"errors\"").expect("the error count") - 40..];
    assert!(errors.contains("class=\"tile red bad\" id=\"errors\""), "{}", &errors[..300]);
    assert!(errors.contains("<b id=\"error-count\">3</b>"), "{}", &errors[..300]);
    assert!(dom.contains("id=\"count-down\"><b>"), "{dom}");
    let sources = &dom[dom.find("<table id=\"sources\">").unwrap()..];
    let source = &sources[sources.find("edge-nginx").unwrap()..sources.find("</tbody>").unwrap()];
    assert!(source.contains("4.8%"), "1 of 21 lines unmatched: {source}");
    assert!(source.contains("s ago"), "{source}");
    assert!(dom.contains("href=\"/queries\"") && dom.contains("href=\"/api/v1/status\""));
    assert!(
        !dom.contains("src=\"http") && !dom.contains("href=\"http"),
        "nothing loaded from elsewhere"
    );
    assert!(dom.contains("prefers-color-scheme:dark") && dom.contains("name=\"viewport\""));

    // A screenshot for a person to look at, kept beside the test's other output.
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("status_page");
    std::fs::create_dir_all(&out).unwrap();
    let shot = out.join("status-page.png");
    chromium(dir.path(), &url, &[&format!("--screenshot={}", shot.display())]);
    let png = std::fs::read(&shot).unwrap();
    assert!(png.len() > 10_000 && png.starts_with(b"\x89PNG"), "a real screenshot");
    if let Ok(keep) = std::env::var("LOOKOUT_KEEP_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }
}

#[test]
fn status_page_api_and_badges_escape_hostile_names_and_answer_404() {
    let dir = tempfile::tempdir().unwrap();
    let long = "n".repeat(5000);
    let probes = format!(
        "modules:\n  certs:\n    prober: file\nprobes:\n  - name: \"<script>alert(1)</script>\"\n    module: certs\n    target: \"{d}/<script>x</script>.pem\"\n    interval: 200ms\n  - name: \"quo\\\"te's & co\"\n    module: certs\n    target: \"{d}/missing.pem\"\n    interval: 200ms\n  - name: {long}\n    module: certs\n    target: {d}/{long}.pem\n    interval: 200ms\n",
        d = dir.path().display()
    );
    let server = Server::start(dir.path(), &probes);
    let deadline = Instant::now() + Duration::from_secs(10);
    while json(server.addr, "/api/v1/status")["summary"]["pending"] != 0 {
        assert!(Instant::now() < deadline, "the probes never ran");
        std::thread::sleep(Duration::from_millis(100));
    }
    let page = get(server.addr, "/", &[]).unwrap();
    assert_eq!(page.status, 200);
    assert!(!page.body.contains("<script>alert") && !page.body.contains("<script>x"), "unescaped");
    assert!(page.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(page.body.contains("quo&quot;te&#39;s &amp; co"));
    assert!(!page.body.contains(&long), "very long names are cut");
    assert!(page.body.len() < 200_000, "{}", page.body.len());
    let status = json(server.addr, "/api/v1/status");
    assert_eq!(
        probe(&status, "<script>alert(1)</script>")["target"],
        format!("{}/<script>x</script>.pem", dir.path().display())
    );
    // A filter typed into the page's form.
    let filtered = json(server.addr, "/api/v1/status?q=QUO%22TE");
    assert_eq!(filtered["matching"], 1, "{filtered}");
    let filtered_page = get(server.addr, "/?q=%3Cscript%3E", &[]).unwrap().body;
    assert!(
        filtered_page.contains("value=\"&lt;script&gt;\"") && !filtered_page.contains("<b>quo")
    );

    let badge =
        get(server.addr, "/badge/%3Cscript%3Ealert(1)%3C%2Fscript%3E/status.svg", &[]).unwrap();
    assert_eq!(badge.status, 200, "{}", badge.body);
    assert!(badge.headers.contains("image/svg+xml"), "{}", badge.headers);
    assert!(badge.body.starts_with("<svg") && !badge.body.contains("<script>"), "{}", badge.body);
    assert!(badge.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;: down"), "{}", badge.body);
    let uptime = get(server.addr, "/badge/quo%22te's%20%26%20co/uptime.svg", &[]).unwrap();
    assert_eq!(uptime.status, 200);
    assert!(uptime.body.contains("quo&quot;te&#39;s &amp; co: 0%"), "{}", uptime.body);
    let long_badge = get(server.addr, &format!("/badge/{long}/status.svg"), &[]).unwrap();
    assert!(long_badge.status == 200 && long_badge.body.len() < 2000);
    for path in [
        "/badge/unknown/status.svg",
        "/badge/%3Cscript%3E/status.svg",
        "/badge/quo%22te's%20%26%20co/other.svg",
        "/badge/",
        "/badge/%FF/status.svg",
    ] {
        let reply = get(server.addr, path, &[]).unwrap();
        assert_eq!(reply.status, 404, "{path}");
        assert!(!reply.body.contains('<'), "{path}: nothing of the request echoed: {}", reply.body);
    }
    for path in ["/?page=0", "/api/v1/status?page=x"] {
        assert_eq!(get(server.addr, path, &[]).unwrap().status, 400, "{path}");
    }
}

#[test]
fn status_page_with_ten_thousand_probes_is_paged_and_fast() {
    let dir = tempfile::tempdir().unwrap();
    let mut probes = String::from("modules:\n  certs:\n    prober: file\nprobes:\n");
    for i in 0..10_000 {
        probes.push_str(&format!(
            "  - {{ name: probe-{i:05}, module: certs, target: {}/none-{i}.pem, interval: 1h }}\n",
            dir.path().display()
        ));
    }
    let server = Server::start(dir.path(), &probes);
    let started = Instant::now();
    let page = get(server.addr, "/", &[]).unwrap();
    let took = started.elapsed();
    assert_eq!(page.status, 200);
    assert!(took < Duration::from_secs(3), "the first page took {took:?}");
    assert!(page.body.len() < 1_000_000, "a page is bounded: {} bytes", page.body.len());
    assert!(page.body.contains("page 1 of 100 (10000 probes, 100 a page)"));
    assert_eq!(page.body.matches("<tr class=\"probe ").count(), 100);
    assert!(page.body.contains("href=\"/?page=2\""));
    let last = json(server.addr, "/api/v1/status?page=100");
    assert_eq!(last["probes"].as_array().unwrap().len(), 100);
    assert_eq!(last["summary"]["probes"], 10_000);
    let filtered = get(server.addr, "/?q=probe-0999", &[]).unwrap().body;
    assert_eq!(filtered.matches("<tr class=\"probe ").count(), 10, "probe-09990 to probe-09999");
    assert_eq!(json(server.addr, "/api/v1/status?page=101")["probes"].as_array().unwrap().len(), 0);
}

#[test]
fn history_length_error_metrics_and_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    std::fs::write(&log, "").unwrap();
    let rules = write_file(
        dir.path(),
        "rules.yaml",
        format!("sources:\n  - name: app\n    paths: [\"{}\"]\n    format: nginx\n    poll_interval: 100ms\nmetrics:\n  - name: teapots_total\n    type: counter\n    source: app\n    when: [\"status == 418\"]\n  - name: http_responses_5xx_total\n    type: counter\n    source: app\n    when: [\"status >= 500\"]\n", log.display()),
    );
    let config = |history: usize, probes: &[&str]| {
        let mut yaml = format!("modules:\n  certs:\n    prober: file\nstatus_page:\n  history: {history}\n  error_metrics: [teapots_total]\nprobes:\n");
        for name in probes {
            yaml.push_str(&format!(
                "  - {{ name: {name}, module: certs, target: {}/none.pem, interval: 100ms }}\n",
                dir.path().display()
            ));
        }
        write_file(dir.path(), "probes.yaml", yaml)
    };
    let probes = config(5, &["kept", "dropped"]);
    let server = Server::with_logs(dir.path(), &probes, &rules);
    let line = |status: u16| {
        format!(
            "10.0.0.1 - - [20/Nov/2026:10:00:00 +0900] \"GET / HTTP/1.1\" {status} 1 \"-\" \"-\"\n"
        )
    };
    std::fs::write(&log, [line(418), line(500), line(418)].concat()).unwrap();
    let runs = |status: &serde_json::Value, name: &str| {
        probe(status, name)["runs"].as_array().unwrap().len()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = json(server.addr, "/api/v1/status");
        if runs(&status, "kept") == 5 && status["errors"]["since_start"] == 2.0 {
            assert_eq!(
                status["errors"]["metrics"],
                serde_json::json!(["teapots_total"]),
                "only the configured counters"
            );
            break;
        }
        assert!(runs(&status, "kept") <= 5, "at most `history` runs");
        assert!(Instant::now() < deadline, "{status:#}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // A reload keeps the runs of probes that stay, down to the new length, and forgets the rest.
    config(3, &["kept", "added"]);
    assert_eq!(request(server.addr, "POST", "/-/reload", &[]).unwrap().status, 200);
    let status = json(server.addr, "/api/v1/status");
    assert!((2..=3).contains(&runs(&status, "kept")), "{status:#}");
    assert!(status["probes"].as_array().unwrap().iter().all(|p| p["name"] != "dropped"));
    assert_eq!(status["history"], 3);

    let cases = [
        (
            "status_page:\n  history: 0\n",
            "2:12",
            "key 'status_page.history': history must be 1 to 1440 runs",
        ),
        ("status_page:\n  history: 100000\n", "2:12", "history must be 1 to 1440 runs"),
        (
            "status_page:\n  error_metrics: [ok_total, \"no good\"]\n",
            "2:29",
            "\"no good\" is not a metric name",
        ),
        ("status_page:\n  histroy: 5\n", "2:3", "histroy"),
    ];
    assert_config_errors(dir.path(), "probes.yaml", "--config.probes", &[], &cases);
}
