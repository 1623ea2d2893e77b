//! What the repository ships for the rest of the stack: a real Prometheus scraping lookout
//! (OpenMetrics, `/probe` relabelling, exemplars), the alert rules, Alertmanager's and
//! Prometheus' configuration, the Grafana dashboard and the Compose file.

use crate::common::*;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const GENLOGS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fixtures/genlogs.py");

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e} (installed by .ci/run)"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn prometheus_and_alertmanager_configs_are_valid() {
    run_ok(Command::new("promtool").current_dir(ROOT).args([
        "check",
        "config",
        "deploy/prometheus/prometheus.yml",
    ]));
    run_ok(
        Command::new("amtool")
            .current_dir(ROOT)
            .args(["check-config", "deploy/alertmanager/alertmanager.yml"]),
    );
    let route = |labels: &[&str]| {
        run_ok(
            Command::new("amtool")
                .current_dir(ROOT)
                .args([
                    "config",
                    "routes",
                    "test",
                    "--config.file=deploy/alertmanager/alertmanager.yml",
                ])
                .args(labels),
        )
    };
    assert_eq!(route(&["severity=P1", "alertname=ProbeDown"]).trim(), "discord-urgent");
    assert_eq!(route(&["severity=P2", "alertname=HttpLatencyP99High"]).trim(), "discord-urgent");
    assert_eq!(route(&["severity=P3", "alertname=LogSourceStalled"]).trim(), "discord-normal");
    assert_eq!(
        route(&["severity=P4", "alertname=CertificateExpiringSoon"]).trim(),
        "discord-normal"
    );
    // Every severity the shipped rules use is routed to one of the two.
    let rules =
        std::fs::read_to_string(Path::new(ROOT).join("deploy/prometheus/lookout.rules.yml"))
            .unwrap();
    let rules: serde_json::Value = serde_saphyr::from_str(&rules).unwrap();
    let severities: BTreeSet<&str> = rules["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .map(|r| r["labels"]["severity"].as_str().expect("every alert has a severity"))
        .collect();
    assert_eq!(severities, BTreeSet::from(["P1", "P2", "P3", "P4"]));
    for severity in severities {
        let receiver = route(&[&format!("severity={severity}"), "alertname=X"]);
        let want =
            if matches!(severity, "P1" | "P2") { "discord-urgent" } else { "discord-normal" };
        assert_eq!(receiver.trim(), want, "{severity}");
    }
}

#[test]
fn yaml_and_json_files_parse_and_compose_mounts_exist() {
    for file in [
        "deploy/docker-compose.yml",
        "deploy/grafana/provisioning/datasources/prometheus.yml",
        "deploy/grafana/provisioning/dashboards/lookout.yml",
        "deploy/alertmanager/alertmanager.yml",
    ] {
        let text = std::fs::read_to_string(Path::new(ROOT).join(file)).unwrap();
        serde_saphyr::from_str::<serde_json::Value>(&text)
            .unwrap_or_else(|e| panic!("{file}: {e}"));
    }
    let compose: serde_json::Value = serde_saphyr::from_str(
        &std::fs::read_to_string(Path::new(ROOT).join("deploy/docker-compose.yml")).unwrap(),
    )
    .unwrap();
    for (name, service) in compose["services"].as_object().unwrap() {
        for volume in service["volumes"].as_array().into_iter().flatten() {
            let host = volume.as_str().unwrap().split(':').next().unwrap();
            if host.starts_with('.') {
                assert!(
                    Path::new(ROOT).join("deploy").join(host).exists(),
                    "service {name} mounts missing {host}"
                );
            }
        }
    }
    // Pings need no capability: Compose and Kubernetes set the ping sysctl instead.
    let lookout = &compose["services"]["lookout"];
    assert_eq!(lookout["sysctls"]["net.ipv4.ping_group_range"], "0 2147483647");
    assert!(lookout.get("cap_add").is_none());
    let manifest =
        std::fs::read_to_string(Path::new(ROOT).join("deploy/kubernetes/lookout.yaml")).unwrap();
    let documents: Vec<serde_json::Value> = manifest
        .split("\n---\n")
        .map(|d| serde_saphyr::from_str(d).unwrap_or_else(|e| panic!("kubernetes: {e}")))
        .collect();
    let pod = &documents[0]["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["sysctls"][0]["name"], "net.ipv4.ping_group_range");
    assert_eq!(pod["containers"][0]["securityContext"]["capabilities"]["drop"][0], "ALL");
    let alloy = std::fs::read_to_string(Path::new(ROOT).join("deploy/alloy/config.alloy")).unwrap();
    assert_eq!(alloy.matches('{').count(), alloy.matches('}').count(), "alloy braces balance");
    assert_eq!(alloy.matches('[').count(), alloy.matches(']').count(), "alloy brackets balance");
    assert!(
        alloy.contains("metrics_path = \"/probe\"") && alloy.contains("prometheus.remote_write")
    );
}

/// Every metric name lookout exports in the shipped configuration's scenarios: probes (plain,
/// TLS, failing), certificate files, self-metrics, and the shipped log rules on generated logs.
fn exported_names() -> BTreeSet<String> {
    let dir = tempfile::tempdir().unwrap();
    let mut expositions = Vec::new();
    for (name, args, source) in [
        ("access.log", ["nginx", "--format", "timed"], "nginx"),
        ("spring.log", ["spring", "--format", "boot3"], "spring"),
    ] {
        let out = Command::new("python3")
            .arg(GENLOGS)
            .args(args)
            .args(["--lines", "3000"])
            .output()
            .unwrap();
        let mut text = out.stdout;
        if source == "spring" {
            // genlogs writes a running application; add the start it would have logged.
            text.extend_from_slice(
                b"2026-11-20T10:00:00.007+09:00  INFO 7 --- [main] c.e.pay.PayApplication : \
                  Starting PayApplication v1.5.0 using Java 21.0.1 with PID 7 (/app.jar started by app in /)\n\
                  2026-11-20T10:00:03.000+09:00  INFO 7 --- [main] c.e.pay.PayApplication : \
                  Started PayApplication in 2.981 seconds (process running for 3.402)\n",
            );
        }
        let file = write_file(dir.path(), name, text);
        expositions.push(run_ok(
            Command::new(LOOKOUT)
                .args([
                    "--config.log-rules",
                    &format!("{ROOT}/log_rules.yaml"),
                    "replay",
                    "--source",
                    source,
                ])
                .arg(&file),
        ));
    }
    let ca = Ca::new("Names CA");
    let leaf = ca.leaf("localhost", &["localhost"], -1, 20);
    let (chain, key) = (vec![leaf.der.clone()], leaf.key_der());
    let tls = in_background(move || https_server(chain, key, None, false));
    let ca_file = write_file(dir.path(), "ca.pem", pem(&ca.der()));
    let cert_file = write_file(dir.path(), "cert.pem", leaf.pem());
    let yaml = format!(
        "modules:\n  https:\n    prober: http\n    http:\n      tls_config:\n        ca_file: {}\n  files:\n    prober: file\nprobes:\n  - name: tls\n    module: https\n    target: https://localhost:{}/\n    interval: 1s\n  - name: down\n    module: https\n    target: https://127.0.0.1:{}/\n    interval: 1s\n  - name: disk\n    module: files\n    target: {}\n    interval: 1s\n",
        ca_file.display(),
        tls.port(),
        closed_port(),
        cert_file.display()
    );
    let server = Server::start(dir.path(), &yaml);
    std::thread::sleep(Duration::from_millis(1500));
    expositions.push(get(server.addr, "/metrics", &[]).unwrap().body);
    expositions
        .iter()
        .flat_map(|e| e.lines())
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_string())
        .collect()
}

/// Metric names in a PromQL expression: identifiers outside label matchers, groupings and
/// strings that are not functions or keywords.
fn metric_names(expr: &str) -> Vec<String> {
    const WORDS: [&str; 34] = [
        "sum",
        "avg",
        "min",
        "max",
        "count",
        "topk",
        "bottomk",
        "rate",
        "irate",
        "increase",
        "delta",
        "histogram_quantile",
        "time",
        "vector",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "and",
        "or",
        "unless",
        "offset",
        "bool",
        "abs",
        "clamp_min",
        "clamp_max",
        "label_replace",
        "sort_desc",
        "sort",
        "scalar",
        "absent",
        "quantile",
    ];
    let mut cleaned = String::new();
    let mut depth = 0;
    let mut in_string = false;
    for c in expr.chars() {
        match c {
            '"' => in_string = !in_string,
            _ if in_string => {}
            '{' | '[' => depth += 1,
            '}' | ']' => depth -= 1,
            _ if depth > 0 => {}
            c => cleaned.push(c),
        }
    }
    let grouping =
        regex::Regex::new(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
            .unwrap();
    let numbers = regex::Regex::new(r"\boffset\s+[0-9a-z]+|\b\d+(\.\d+)?(e\d+)?\b").unwrap();
    let cleaned = numbers.replace_all(&grouping.replace_all(&cleaned, " "), " ").into_owned();
    let ident = regex::Regex::new(r"[A-Za-z_:][A-Za-z0-9_:]*").unwrap();
    ident
        .find_iter(&cleaned)
        .map(|m| m.as_str())
        .filter(|w| !WORDS.contains(w))
        .map(str::to_string)
        .collect()
}

#[test]
fn metric_name_extraction() {
    assert_eq!(
        metric_names(
            r#"histogram_quantile(0.99, sum by (job, le) (rate(a_bucket{x="by (y)"}[5m]))) > 5 and b_total > 50e6 * c offset 1h"#
        ),
        ["a_bucket", "b_total", "c"]
    );
}

#[test]
fn dashboard_and_alerts_query_only_metrics_lookout_exports() {
    let names = exported_names();
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(ROOT).join("deploy/grafana/lookout.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(dashboard["uid"], "lookout", "the alerts' dashboard_url points at this uid");
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            exprs.push(target["expr"].as_str().unwrap().to_string());
        }
    }
    assert!(exprs.len() >= 14, "{exprs:?}");
    let rules: serde_json::Value = serde_saphyr::from_str(
        &std::fs::read_to_string(Path::new(ROOT).join("deploy/prometheus/lookout.rules.yml"))
            .unwrap(),
    )
    .unwrap();
    for group in rules["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            exprs.push(rule["expr"].as_str().unwrap().to_string());
        }
    }
    for expr in &exprs {
        for name in metric_names(expr) {
            assert!(
                names.contains(&name),
                "{name} (in {expr:?}) is not exported by lookout; exported: {names:?}"
            );
        }
    }
}

#[test]
fn real_prometheus_scrapes_metrics_and_probe() {
    let dir = tempfile::tempdir().unwrap();
    let web = in_background(http_server);
    let log = dir.path().join("app.log");
    std::fs::write(&log, "").unwrap();
    let rules = write_file(
        dir.path(),
        "rules.yaml",
        format!("sources:\n  - name: app\n    paths: [\"{}\"]\n    format: spring\n    poll_interval: 50ms\nmetrics:\n  - name: app_errors_total\n    type: counter\n    source: app\n    when: [\"level == ERROR\"]\n    labels: {{ exception: exception }}\n    exemplar: trace_id\n", log.display()),
    );
    let probes = write_file(
        dir.path(),
        "probes.yaml",
        format!("modules:\n  http_2xx:\n    prober: http\n    http:\n      preferred_ip_protocol: ip4\nprobes:\n  - name: web\n    module: http_2xx\n    target: http://{web}/\n    interval: 1s\n"),
    );
    let lookout = Server::with_logs(dir.path(), &probes, &rules);
    let addr = lookout.addr;
    let prom_port = closed_port();
    let config = write_file(
        dir.path(),
        "prometheus.yml",
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: lookout\n    static_configs:\n      - targets: ['{addr}']\n  - job_name: probe\n    metrics_path: /probe\n    params:\n      module: [http_2xx]\n    static_configs:\n      - targets: ['http://{web}/status?code=200', 'http://{web}/status?code=500']\n    relabel_configs:\n      - source_labels: [__address__]\n        target_label: __param_target\n      - source_labels: [__param_target]\n        target_label: instance\n      - target_label: __address__\n        replacement: '{addr}'\n"
        ),
    );
    let _prometheus =
        Server::prometheus(&config, dir.path(), prom_port, &["--enable-feature=exemplar-storage"]);
    let prom: std::net::SocketAddr = format!("127.0.0.1:{prom_port}").parse().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .and_then(|mut f| {
            use std::io::Write;
            f.write_all(b"2026-11-20T10:00:00.000+09:00 ERROR 1 --- [app] [main] [4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7] c.e.Pay : failed\njava.lang.IllegalStateException: boom\n\tat a.b(C.java:1)\n2026-11-20T10:00:01.000+09:00  INFO 1 --- [app] [main] [4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7] c.e.Pay : next\n")
        })
        .unwrap();
    let query = |q: &str| -> serde_json::Value {
        let path = format!(
            "/api/v1/query?query={}",
            form_urlencoded::byte_serialize(q.as_bytes()).collect::<String>()
        );
        get(prom, &path, &[])
            .and_then(|r| serde_json::from_str(&r.body).ok())
            .unwrap_or(serde_json::Value::Null)
    };
    let wait = |q: &str, want: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let answer = query(q);
            let values: Vec<String> = answer["data"]["result"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| r["value"][1].as_str().unwrap_or("").to_string())
                .collect();
            if values.iter().any(|v| v == want) {
                return;
            }
            assert!(Instant::now() < deadline, "{q} never gave {want}: {answer}");
            std::thread::sleep(Duration::from_millis(250));
        }
    };
    wait("up{job=\"lookout\"}", "1");
    wait(&format!("probe_success{{job=\"lookout\",probe=\"web\",target=\"http://{web}/\"}}"), "1");
    wait(
        &format!(
            "probe_http_status_code{{job=\"probe\",instance=\"http://{web}/status?code=200\"}}"
        ),
        "200",
    );
    wait(&format!("probe_success{{job=\"probe\",instance=\"http://{web}/status?code=500\"}}"), "0");
    wait(&format!("lookout_probe_failure_reason{{job=\"probe\",instance=\"http://{web}/status?code=500\",reason=\"status_code\"}}"), "1");
    wait("app_errors_total{exception=\"java.lang.IllegalStateException\"}", "1");
    wait("count(lookout_probe_runs_total{probe=\"web\"})", "1");
    // The exemplar made it through OpenMetrics into Prometheus.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let path = format!(
            "/api/v1/query_exemplars?query=app_errors_total&start={}&end={}",
            0, 4_000_000_000u64
        );
        let body = get(prom, &path, &[]).map(|r| r.body).unwrap_or_default();
        if body.contains("4bf92f3577b34da6a3ce929d0e0e4736") {
            break;
        }
        assert!(Instant::now() < deadline, "no exemplar: {body}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A stand-in for Discord's webhook endpoint on 127.0.0.1: answers 204 to every POST and keeps
/// its path and JSON body.
fn webhook_receiver() -> (std::net::SocketAddr, std::sync::mpsc::Receiver<(String, String)>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (sender, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let path = line.split_whitespace().nth(1).unwrap_or_default().to_string();
            let mut length = 0;
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap_or(0) == 0 || header.trim().is_empty() {
                    break;
                }
                if let Some((name, value)) = header.split_once(':') {
                    if name.eq_ignore_ascii_case("content-length") {
                        length = value.trim().parse().unwrap_or(0);
                    }
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let _ =
                reader.get_mut().write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
            let _ = sender.send((path, String::from_utf8_lossy(&body).into_owned()));
        }
    });
    (addr, received)
}

/// Sets every `key` in `value` (at any depth) to `to`.
fn set_everywhere(value: &mut serde_json::Value, key: &str, to: &str) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if k == key {
                    *v = serde_json::Value::String(to.to_string());
                } else {
                    set_everywhere(v, key, to);
                }
            }
        }
        serde_json::Value::Array(items) => {
            items.iter_mut().for_each(|v| set_everywhere(v, key, to));
        }
        _ => {}
    }
}

/// A copy of a shipped YAML file with `changes` applied, written as JSON (which YAML reads).
fn shortened_copy(shipped: &str, to: &Path, changes: &[(&str, &str)]) {
    let text = std::fs::read_to_string(Path::new(ROOT).join(shipped)).unwrap();
    let mut value: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    for (key, to) in changes {
        set_everywhere(&mut value, key, to);
    }
    std::fs::write(to, serde_json::to_string_pretty(&value).unwrap()).unwrap();
}

#[test]
fn alerts_reach_discord_by_severity_end_to_end() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::new("Alert CA");
    write_file(d, "soon.pem", ca.leaf("soon.example", &["soon.example"], -100, 10).pem());
    let probes = format!(
        "modules:\n  http_2xx:\n    prober: http\n  certs:\n    prober: file\nprobes:\n  - name: payments-api\n    module: http_2xx\n    target: http://127.0.0.1:{}/\n    interval: 1s\n  - name: soon-cert\n    module: certs\n    target: {}/soon.pem\n    interval: 1s\n",
        closed_port(),
        d.display()
    );
    let lookout = Server::start(d, &probes);
    let (discord, deliveries) = webhook_receiver();

    // Alertmanager through the compose entrypoint, with the test's short waits.
    let source = d.join("alertmanager-src");
    std::fs::create_dir_all(source.join("templates")).unwrap();
    std::fs::copy(
        Path::new(ROOT).join("deploy/alertmanager/templates/discord.tmpl"),
        source.join("templates/discord.tmpl"),
    )
    .unwrap();
    shortened_copy(
        "deploy/alertmanager/alertmanager.yml",
        &source.join("alertmanager.yml"),
        &[("group_wait", "1s"), ("group_interval", "1s"), ("repeat_interval", "1m")],
    );
    let am_port = closed_port();
    let alertmanager = Command::new("sh")
        .arg(Path::new(ROOT).join("deploy/alertmanager/entrypoint.sh"))
        .arg("/usr/bin/prometheus-alertmanager")
        .arg(format!("--storage.path={}/am-data", d.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{am_port}"))
        .arg("--cluster.listen-address=")
        .env("DISCORD_URGENT_WEBHOOK_URL", format!("http://{discord}/urgent"))
        .env("DISCORD_NORMAL_WEBHOOK_URL", format!("http://{discord}/normal"))
        .env("ALERTMANAGER_CONFIG_DIR", &source)
        .env("ALERTMANAGER_RENDERED_DIR", d.join("alertmanager"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus-alertmanager (Debian package; .ci/run installs it)");
    let _alertmanager =
        Server { child: alertmanager, addr: format!("127.0.0.1:{am_port}").parse().unwrap() };

    // Prometheus evaluating the shipped rules, every `for:` shortened.
    shortened_copy("deploy/prometheus/lookout.rules.yml", &d.join("rules.yml"), &[("for", "0s")]);
    let prom_port = closed_port();
    let config = write_file(
        d,
        "prometheus.yml",
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: [rules.yml]\nalerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{am_port}']\nscrape_configs:\n  - job_name: lookout\n    static_configs:\n      - targets: ['{}']\n",
            lookout.addr
        ),
    );
    let _prometheus = Server::prometheus(&config, d, prom_port, &[]);

    let (mut urgent, mut normal) = (None, None);
    let deadline = started + Duration::from_secs(60);
    while urgent.is_none() || normal.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok((path, body)) = deliveries.recv_timeout(left) else {
            panic!("within 60 s: urgent {urgent:?}, normal {normal:?}");
        };
        let message: serde_json::Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
        let embed = &message["embeds"][0];
        let title = embed["title"].as_str().unwrap_or_else(|| panic!("Discord's shape: {body}"));
        let description = embed["description"].as_str().unwrap_or_default().to_string();
        match path.as_str() {
            "/urgent" if title.contains("P1 ProbeDown") => {
                assert!(title.starts_with("[FIRING:"), "{title}");
                assert!(description.contains("**P1** Probe payments-api of http://127.0.0.1:"));
                assert!(
                    description.contains("Runbook: docs/runbook.md#probedown")
                        && description.contains("Dashboard: /d/lookout/lookout"),
                    "{description}"
                );
                urgent = Some(title.to_string());
            }
            "/normal" if title.contains("P4 CertificateExpiringSoon") => {
                assert!(description.contains("**P4** Certificate soon.example expires in"));
                assert!(description.contains("Runbook: docs/runbook.md#certificateexpiringsoon"));
                normal = Some(title.to_string());
            }
            "/urgent" | "/normal" => {
                // Another alert (a P1 elsewhere, a P3): it must still be on its severity's path.
                let p = if path == "/urgent" { ["P1", "P2"] } else { ["P3", "P4"] };
                assert!(p.iter().any(|s| title.contains(&format!("] {s} "))), "{path}: {title}");
            }
            other => panic!("delivered to {other}: {body}"),
        }
    }
    assert!(started.elapsed() < Duration::from_secs(60));
}

fn yaml(file: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(Path::new(ROOT).join(file)).unwrap();
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// Grafana's unified alerting provisioning, in its documented file format: the two contact
/// points, the policy tree routing by severity as Alertmanager does, and the same alert rules
/// as Prometheus' (names, expressions, `for`, severities, annotations).
#[test]
fn grafana_alerting_provisioning_matches_the_prometheus_path() {
    let dir = "deploy/grafana/provisioning/alerting";
    let contacts = yaml(&format!("{dir}/contact-points.yaml"));
    assert_eq!(contacts["apiVersion"], 1);
    let mut names = BTreeSet::new();
    for point in contacts["contactPoints"].as_array().unwrap() {
        assert_eq!(point["orgId"], 1);
        names.insert(point["name"].as_str().unwrap().to_string());
        for receiver in point["receivers"].as_array().unwrap() {
            assert!(receiver["uid"].is_string());
            assert_eq!(receiver["type"], "discord");
            let url = receiver["settings"]["url"].as_str().unwrap();
            assert!(url.starts_with("${DISCORD_") && url.ends_with("_WEBHOOK_URL}"), "{url}");
            assert!(receiver["settings"]["message"].as_str().unwrap().contains("lookout.discord"));
        }
    }
    assert_eq!(names, BTreeSet::from(["discord-normal".into(), "discord-urgent".into()]));
    let template = contacts["templates"][0]["template"].as_str().unwrap();
    assert!(template.contains("define \"lookout.discord.title\""));
    assert!(
        template.contains("define \"lookout.discord.message\"") && template.contains("Runbook:")
    );
    let alertmanager =
        std::fs::read_to_string(Path::new(ROOT).join("deploy/alertmanager/templates/discord.tmpl"))
            .unwrap();
    let definitions = &alertmanager[alertmanager.find("{{ define").unwrap()..];
    assert_eq!(template, definitions, "Grafana's and Alertmanager's Discord templates differ");

    let policies = yaml(&format!("{dir}/notification-policies.yaml"));
    assert_eq!(policies["apiVersion"], 1);
    let root = &policies["policies"][0];
    assert_eq!(root["orgId"], 1);
    assert!(names.contains(root["receiver"].as_str().unwrap()));
    let routes: Vec<(String, String)> = root["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let matcher = &r["object_matchers"][0];
            assert_eq!((&matcher[0], &matcher[1]), (&"severity".into(), &"=~".into()));
            (matcher[2].as_str().unwrap().to_string(), r["receiver"].as_str().unwrap().to_string())
        })
        .collect();
    assert_eq!(
        routes,
        [("P1|P2".into(), "discord-urgent".into()), ("P3|P4".into(), "discord-normal".into())]
    );

    let grafana = yaml(&format!("{dir}/alert-rules.yaml"));
    assert_eq!(grafana["apiVersion"], 1);
    let mut by_title = std::collections::BTreeMap::new();
    let mut uids = BTreeSet::new();
    for group in grafana["groups"].as_array().unwrap() {
        for key in ["orgId", "name", "folder", "interval"] {
            assert!(!group[key].is_null(), "group without {key}");
        }
        for rule in group["rules"].as_array().unwrap() {
            for key in ["uid", "title", "condition", "data", "noDataState", "execErrState", "for"] {
                assert!(!rule[key].is_null(), "{rule} without {key}");
            }
            let uid = rule["uid"].as_str().unwrap();
            assert!(uid.len() <= 40 && uids.insert(uid.to_string()), "uid {uid}");
            let refs: Vec<&str> = rule["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["refId"].as_str().unwrap())
                .collect();
            assert!(refs.contains(&rule["condition"].as_str().unwrap()));
            let key = (
                rule["title"].as_str().unwrap().to_string(),
                rule["labels"]["severity"].as_str().unwrap().to_string(),
            );
            by_title.insert(key, rule.clone());
        }
    }
    // Grafana expands $NAME from its environment: a literal `$` is `$$`, and Prometheus'
    // $value is $values.A.Value.
    let unescape = |s: &str| s.replace("$$", "$").replace("$values.A.Value", "$value");
    let prometheus = yaml("deploy/prometheus/lookout.rules.yml");
    let mut count = 0;
    for rule in
        prometheus["groups"].as_array().unwrap().iter().flat_map(|g| g["rules"].as_array().unwrap())
    {
        count += 1;
        let key = (
            rule["alert"].as_str().unwrap().to_string(),
            rule["labels"]["severity"].as_str().unwrap().to_string(),
        );
        let twin =
            by_title.get(&key).unwrap_or_else(|| panic!("{key:?} missing in Grafana's rules"));
        let query = &twin["data"][0]["model"];
        assert_eq!(
            unescape(query["expr"].as_str().unwrap()),
            rule["expr"].as_str().unwrap().trim()
        );
        assert_eq!(twin["for"].as_str().unwrap(), rule["for"].as_str().unwrap_or("0s"), "{key:?}");
        for (name, text) in rule["annotations"].as_object().unwrap() {
            let theirs = twin["annotations"][name].as_str().unwrap_or_default();
            assert_eq!(unescape(theirs), text.as_str().unwrap().trim(), "{key:?} {name}");
        }
    }
    assert_eq!(by_title.len(), count, "no rule only Grafana has");
}

/// docs/runbook.md has an entry for every shipped alert, where its `runbook_url` points, each
/// with what it means, three things to check and how to silence it.
#[test]
fn every_alert_has_a_runbook_entry() {
    let runbook = std::fs::read_to_string(Path::new(ROOT).join("docs/runbook.md")).unwrap();
    let entry = |heading: &str| -> Option<String> {
        let start = runbook.find(&format!("\n## {heading}\n"))?;
        let rest = &runbook[start + 4..];
        Some(rest[..rest.find("\n## ").unwrap_or(rest.len())].to_string())
    };
    let prometheus = yaml("deploy/prometheus/lookout.rules.yml");
    for rule in
        prometheus["groups"].as_array().unwrap().iter().flat_map(|g| g["rules"].as_array().unwrap())
    {
        let alert = rule["alert"].as_str().unwrap();
        let severity = rule["labels"]["severity"].as_str().unwrap();
        assert_eq!(
            rule["annotations"]["runbook_url"].as_str().unwrap(),
            format!("docs/runbook.md#{}", alert.to_lowercase()),
            "{alert}"
        );
        let text = entry(alert).unwrap_or_else(|| panic!("no runbook entry for {alert}"));
        assert!(text.contains(&format!("**{severity}")), "{alert}: its severity {severity}");
        for item in ["\n1. ", "\n2. ", "\n3. ", "\nSilence: `amtool silence add alertname="] {
            assert!(text.contains(item), "{alert}: missing {item:?}");
        }
    }
}

/// The documents of a multi-document YAML file in deploy/.
/// The Dockerfile's build stage gets what cargo needs: its COPY lines, copied into an empty
/// folder, make a package cargo accepts (no Docker engine needed; the build itself is the one
/// the tests already run).
#[test]
fn the_dockerfile_build_stage_copies_every_file_cargo_needs() {
    let dockerfile = std::fs::read_to_string(Path::new(ROOT).join("Dockerfile")).unwrap();
    let build_stage = dockerfile.split("\nFROM ").nth(1).unwrap();
    let context = tempfile::tempdir().unwrap();
    for line in build_stage.lines().filter(|l| l.starts_with("COPY ")) {
        let words: Vec<&str> = line.split_whitespace().skip(1).collect();
        let (sources, dest) = words.split_at(words.len() - 1);
        for source in sources {
            let to = match dest[0].trim_end_matches('/') {
                "." => context.path().join(source),
                dir => context.path().join(dir),
            };
            run_ok(Command::new("cp").arg("-r").arg(Path::new(ROOT).join(source)).arg(&to));
        }
    }
    let out = Command::new(env!("CARGO"))
        .current_dir(context.path())
        .env("CARGO_TARGET_DIR", context.path().join("target"))
        .args(["build", "--offline", "--locked", "--release", "--bin", "no-such-bin"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no bin target named `no-such-bin`"), "{stderr}");
}

fn documents(file: &str) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(Path::new(ROOT).join("deploy").join(file)).unwrap();
    text.split("\n---\n")
        .map(|d| serde_saphyr::from_str(d).unwrap_or_else(|e| panic!("{file}: {e}")))
        .collect()
}

#[test]
fn kubernetes_manifests_validate_for_1_30_and_keep_their_promises() {
    let dir = Path::new(ROOT).join("deploy/kubernetes");
    let manifests: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    assert!(!manifests.is_empty());
    // Offline schemas of the stated version; strict: a misspelt field fails.
    let mut validate = Command::new("kubernetes-validate");
    validate.args(["--kubernetes-version", "1.30.0", "--strict", "--no-warn"]).args(&manifests);
    let out = validate.output().expect(
        "kubernetes-validate must be installed (PyPI kubernetes-validate); .ci/run installs it",
    );
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let docs = documents("kubernetes/lookout.yaml");
    let kind = |k: &str| docs.iter().find(|d| d["kind"] == k).unwrap_or_else(|| panic!("{k}"));
    let (probes, service, logs) = (kind("StatefulSet"), kind("Service"), kind("DaemonSet"));
    // Every replica is one shard: the shard count is the replica count, the index the ordinal.
    let replicas = probes["spec"]["replicas"].as_u64().unwrap();
    let env = probes["spec"]["template"]["spec"]["containers"][0]["env"].as_array().unwrap();
    let count = env.iter().find(|e| e["name"] == "LOOKOUT_SHARD_COUNT").unwrap();
    assert_eq!(count["value"], replicas.to_string());
    // Each set's flags as lookout reads them, with the files its ConfigMap is made of (the
    // commands in the manifest's comments): they load, and the probes are not read twice.
    let work = tempfile::tempdir().unwrap();
    for (set, probes_file, rules_file, expect) in [
        (probes, "probes.yaml", "deploy/kubernetes/config/no_log_rules.yaml", "0 log sources"),
        (
            logs,
            "deploy/kubernetes/config/no_probes.yaml",
            "log_rules.kubernetes.yaml",
            "0 scheduled",
        ),
    ] {
        let container = &set["spec"]["template"]["spec"]["containers"][0];
        let args: Vec<String> = container["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| match a.as_str().unwrap().split_once('=') {
                Some((flag, "/etc/lookout/config/probes.yaml")) => {
                    format!("{flag}={ROOT}/{probes_file}")
                }
                Some((flag, "/etc/lookout/config/log_rules.yaml")) => {
                    format!("{flag}={ROOT}/{rules_file}")
                }
                Some(("--positions.file", _)) => {
                    format!("--positions.file={}/positions.json", work.path().display())
                }
                _ => a.as_str().unwrap().to_string(),
            })
            .collect();
        assert!(args.iter().any(|a| a.starts_with("--config.auto-reload-interval=")), "{args:?}");
        let out = run_ok(Command::new(LOOKOUT).args(&args).arg("check").env("PODS", work.path()));
        assert!(out.contains(expect), "{args:?}: {out}");
    }
    assert_eq!(service["spec"]["clusterIP"], "None", "headless");
    assert_eq!(probes["spec"]["serviceName"], service["metadata"]["name"]);
    for set in [probes, logs] {
        let pod = &set["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        let container = &pod["containers"][0];
        assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/-/ready");
        assert_eq!(container["livenessProbe"]["exec"]["command"][1], "healthcheck");
        assert!(container["resources"]["requests"]["memory"].is_string());
        assert!(container["securityContext"]["capabilities"].get("add").is_none());
    }
    let pod = &probes["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["sysctls"][0]["name"], "net.ipv4.ping_group_range");
    let pod = &logs["spec"]["template"]["spec"];
    let mounts = pod["containers"][0]["volumeMounts"].as_array().unwrap();
    for path in ["/var/log/pods", "/var/log/containers"] {
        let mount = mounts.iter().find(|m| m["mountPath"] == path).unwrap();
        assert_eq!(mount["readOnly"], true, "{path} read-only");
    }
    let positions = pod["volumes"].as_array().unwrap().iter().find(|v| v["name"] == "positions");
    assert!(positions.unwrap()["hostPath"]["path"].is_string(), "positions on the node");

    // Debian's promtool is built without Kubernetes discovery, so it checks the file with the
    // kubernetes_sd_configs block swapped for a static one; the block is checked here.
    let prometheus = yaml("deploy/kubernetes/prometheus.yml");
    let job = &prometheus["scrape_configs"][0];
    assert_eq!(job["kubernetes_sd_configs"][0]["role"], "pod");
    let keeps: Vec<&serde_json::Value> = job["relabel_configs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "keep")
        .collect();
    assert!(keeps.iter().any(|r| r["regex"] == "lookout"));
    // A target label named as a label of the log readers' series would rename theirs
    // (`namespace` → `exported_namespace`).
    let rules = yaml("log_rules.kubernetes.yaml");
    let series_labels: BTreeSet<&str> = rules["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|m| m["labels"].as_object().into_iter().flatten().map(|(k, _)| k.as_str()))
        .collect();
    assert!(series_labels.contains("namespace"));
    for relabel in job["relabel_configs"].as_array().unwrap() {
        if let Some(target) = relabel["target_label"].as_str() {
            assert!(!series_labels.contains(target), "target label {target} clashes");
        }
    }
    let text = std::fs::read_to_string(dir.join("prometheus.yml")).unwrap();
    let checked = text.replace(
        "kubernetes_sd_configs:\n      - role: pod",
        "static_configs:\n      - targets: [\"lookout-probes-0.lookout-probes:9925\"]",
    );
    assert_ne!(checked, text);
    let path = write_file(work.path(), "prometheus.yml", checked);
    run_ok(Command::new("promtool").arg("check").arg("config").arg(&path));
}
