//! Configuration errors name file, line, column and key; lookout refuses to start on them.

use crate::common::*;
use std::process::Command;

fn check(dir: &std::path::Path, probes: &str) -> (i32, String, String) {
    let path = write_file(dir, "probes.yaml", probes);
    let out = Command::new(LOOKOUT)
        .current_dir(dir)
        .arg(format!("--config.probes={}", path.display()))
        .arg("check")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn unknown_key_is_located() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = "modules:\n  http_2xx:\n    prober: http\n    timeout: 5s\n    http:\n      valid_status_codez: [200]\n";
    let (code, _, err) = check(dir.path(), yaml);
    assert_eq!(code, 2);
    assert!(err.contains("probes.yaml:6:7: key 'modules.http_2xx.http.valid_status_codez': unknown field `valid_status_codez`"), "{err}");
}

#[test]
fn bad_values_are_located() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("modules:\n  m:\n    prober: http\n    http:\n      fail_if_body_matches_regexp: ['(unclosed']\n", "5:37", "invalid regexp"),
        ("modules:\n  m:\n    prober: http\n    timeout: 5 seconds\n", "4:14", "invalid duration"),
        ("modules:\n  m:\n    prober: http\n    http:\n      preferred_ip_protocol: ip5\n", "5:30", "ip5"),
        ("modules:\n  m:\n    prober: ftp\n", "3:13", "unknown prober"),
        ("modules:\n  m:\n    prober: http\nprobes:\n  - name: a\n    module: nope\n    target: x\n", "6:13", "unknown module \"nope\""),
        ("modules:\n  m:\n    prober: http\nprobes:\n  - name: a\n    module: m\n    target: x\n  - name: a\n    module: m\n    target: y\n", "8:11", "duplicate probe name"),
        ("modules:\n  m:\n    prober: http\nprobes:\n  - name: a\n    module: m\n    target: x\n    labels:\n      __bad: x\n", "9:14", "label name \"__bad\""),
        ("modules:\n  m:\n    prober: http\nprobes:\n  - name: a\n    module: m\n    target: x\n    labels:\n      reason: x\n", "9:15", "nor a label lookout sets"),
        ("modules:\n  m:\n    prober: http\n    http:\n      tls_config:\n        max_version: TLS11\n", "6:22", "TLS 1.2 and 1.3 only"),
        ("modules:\n  m:\n    prober: http\n    http:\n      tls_config:\n        ca_file: /etc/passwd\n", "6:18", "/etc/passwd: no PEM certificate found"),
        ("modules:\n  m:\n    prober: http\n    http:\n      bearer_token: a\n      basic_auth:\n        username: u\n", "5:7", "at most one of"),
        ("modules:\n  m:\n    prober: http\n    tcp:\n      tls: true\n", "3:13", "has a `tcp:` section"),
        ("modules:\n  m:\n    prober: http\nprobes:\n  - name: a\n    module: m\n    target: x\n    interval: 10ms\n", "8:15", "at least 100ms"),
    ];
    assert_config_errors(dir.path(), "probes.yaml", "--config.probes", &["check".into()], &cases);
}

#[test]
fn scheduled_targets_that_can_never_work_are_located() {
    let dir = tempfile::tempdir().unwrap();
    let head = "modules:\n  h:\n    prober: http\n  t:\n    prober: tcp\n  f:\n    prober: file\nprobes:\n  - name: a\n";
    let case =
        |module: &str, target: &str| format!("{head}    module: {module}\n    target: {target}\n");
    let cases = [
        (case("h", "\"\""), "11:13", "key 'probes[0].target': target \"\""),
        (case("h", "gopher://x"), "11:13", "scheme must be http or https"),
        (case("h", "http://"), "11:13", "target \"http://\""),
        (case("t", "db.example"), "11:13", "expected host:port"),
        (case("t", "http://db.example:5432"), "11:13", "invalid host"),
        (case("f", "\"  \""), "11:13", "a path or a glob"),
        (case("f", "'/etc/ssl/[x'"), "11:13", "glob"),
    ];
    let cases: Vec<(&str, &str, &str)> =
        cases.iter().map(|(y, p, m)| (y.as_str(), *p, *m)).collect();
    assert_config_errors(dir.path(), "probes.yaml", "--config.probes", &["check".into()], &cases);
}

#[test]
fn environment_variables_are_expanded() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = "modules:\n  m:\n    prober: http\nprobes:\n  - name: a\n    module: m\n    target: http://${LOOKOUT_TEST_HOST}:${LOOKOUT_TEST_PORT:-8080}/\n";
    let path = write_file(dir.path(), "probes.yaml", yaml);
    let run = |host: Option<&str>| {
        let mut cmd = Command::new(LOOKOUT);
        cmd.current_dir(dir.path())
            .arg(format!("--config.probes={}", path.display()))
            .arg("--once")
            .arg("--output=json");
        cmd.env_remove("LOOKOUT_TEST_PORT");
        match host {
            Some(h) => cmd.env("LOOKOUT_TEST_HOST", h),
            None => cmd.env_remove("LOOKOUT_TEST_HOST"),
        };
        cmd.output().unwrap()
    };
    let out = run(Some("127.0.0.1"));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["probes"][0]["target"], "http://127.0.0.1:8080/");
    let out = run(None);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "probes.yaml:7:20: key 'probes[0].target': environment variable LOOKOUT_TEST_HOST is not set"
        ),
        "{err}"
    );
}

#[test]
fn a_blackbox_modules_file_is_a_probes_file() {
    let dir = tempfile::tempdir().unwrap();
    let blackbox = r#"modules:
  http_2xx:
    prober: http
    http:
      preferred_ip_protocol: "ip4"
  http_post_2xx:
    prober: http
    http:
      method: POST
  tcp_connect:
    prober: tcp
  pop3s_banner:
    prober: tcp
    tcp:
      query_response:
      - expect: "^+OK"
      tls: true
      tls_config:
        insecure_skip_verify: false
  grpc:
    prober: grpc
    grpc:
      tls: true
      preferred_ip_protocol: "ip4"
  ssh_banner:
    prober: tcp
    tcp:
      query_response:
      - expect: "^SSH-2.0-"
      - send: "SSH-2.0-blackbox-ssh-check"
  icmp:
    prober: icmp
  icmp_ttl5:
    prober: icmp
    timeout: 5s
    icmp:
      ttl: 5
"#;
    let (code, out, err) = check(dir.path(), blackbox);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("8 modules, 0 scheduled probes, 0 log sources: OK"), "{out}");
    // check says whether the icmp modules can open their sockets here.
    assert!(out.contains("icmp modules (icmp, icmp_ttl5): "), "{out}");
    // Every prober of the file can be scheduled.
    let scheduled = format!(
        "{blackbox}probes:\n  - name: ping\n    module: icmp\n    target: 127.0.0.1\n  - name: health\n    module: grpc\n    target: 127.0.0.1:50051\n"
    );
    let (code, out, err) = check(dir.path(), &scheduled);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("8 modules, 2 scheduled probes"), "{out}");
    // A target the prober cannot parse is refused at its line.
    let bad = format!("{blackbox}probes:\n  - name: ping\n    module: icmp\n    target: \"a b\"\n");
    let (code, _, err) = check(dir.path(), &bad);
    assert_eq!(code, 2);
    assert!(err.contains("expected a host name or an IP address"), "{err}");
}

#[test]
fn an_explicit_log_rules_file_must_exist() {
    let dir = tempfile::tempdir().unwrap();
    let probes = write_file(dir.path(), "probes.yaml", "modules: {}\n");
    let out = Command::new(LOOKOUT)
        .args([
            format!("--config.probes={}", probes.display()),
            "--config.log-rules=/nonexistent/rules.yaml".into(),
            "check".into(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/rules.yaml"));
}

#[test]
fn repository_configs_are_valid() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new(LOOKOUT).current_dir(root).arg("check").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn shipped_alert_rules_pass_their_unit_tests() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/prometheus");
    let check = Command::new("promtool")
        .current_dir(dir)
        .args(["check", "rules", "lookout.rules.yml"])
        .output()
        .expect("promtool");
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));
    let test = Command::new("promtool")
        .current_dir(dir)
        .args(["test", "rules", "lookout.rules.test.yml"])
        .output()
        .expect("promtool");
    assert!(
        test.status.success(),
        "{}{}",
        String::from_utf8_lossy(&test.stdout),
        String::from_utf8_lossy(&test.stderr)
    );
}

/// `lookout check` on `yaml` as probes.yaml, with `env` set; returns exit code and stderr.
fn check_with_env(dir: &std::path::Path, yaml: &str, env: &[(&str, &str)]) -> (i32, String) {
    let path = write_file(dir, "probes.yaml", yaml);
    let mut cmd = Command::new(LOOKOUT);
    cmd.current_dir(dir).arg(format!("--config.probes={}", path.display())).arg("check");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn an_environment_value_is_one_string_and_errors_point_into_the_file() {
    let dir = tempfile::tempdir().unwrap();
    // Values that would add keys if they were pasted into the YAML stay one string each.
    let yaml = "modules:\n  m:\n    prober: http\nprobe_endpoint:\n  allowed_targets: [\"${LOOKOUT_TEST_ALLOWED}\"]\nprobes:\n  - name: a\n    module: m\n    target: ${LOOKOUT_TEST_TARGET}\n";
    let injected = "http://x/\nprobe_endpoint:\n  enabled: false";
    let (code, err) = check_with_env(
        dir.path(),
        yaml,
        &[("LOOKOUT_TEST_TARGET", "http://x/"), ("LOOKOUT_TEST_ALLOWED", "a\"\nextra: b")],
    );
    assert_eq!(code, 0, "{err}");
    let (code, err) = check_with_env(
        dir.path(),
        yaml,
        &[("LOOKOUT_TEST_TARGET", injected), ("LOOKOUT_TEST_ALLOWED", "a")],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains(
            "probes.yaml:9:13: key 'probes[0].target': target \"http://x/\\nprobe_endpoint:"
        ),
        "the whole value is the target: {err}"
    );
    // A long value before a mistake on the same line does not move the mistake's column.
    let yaml = "modules:\n  m: {prober: \"${LOOKOUT_TEST_LONG}\", timeoutt: 5s}\n";
    let (code, err) = check_with_env(dir.path(), yaml, &[("LOOKOUT_TEST_LONG", &"h".repeat(300))]);
    assert_eq!(code, 2);
    assert!(err.contains("probes.yaml:2:39:"), "{err}");
    // Unquoted in a flow collection it is not YAML; the error says so.
    let yaml = "modules: {m: {prober: ${LOOKOUT_TEST_PROBER}}}\n";
    let (code, err) = check_with_env(dir.path(), yaml, &[("LOOKOUT_TEST_PROBER", "http")]);
    assert_eq!(code, 2);
    assert!(err.contains("must be quoted"), "{err}");
}

#[test]
fn a_file_that_is_not_utf8_is_refused_at_its_first_bad_byte() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("probes.yaml");
    std::fs::write(&path, b"modules:\n  m:\n    prober: ht\xfftp\n").unwrap();
    let out = Command::new(LOOKOUT)
        .arg(format!("--config.probes={}", path.display()))
        .arg("check")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("probes.yaml:3:15: not UTF-8: byte 0xff"), "{err}");
}

#[test]
fn files_that_are_devices_or_fifos_are_refused_not_read_forever() {
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let yaml = "modules:\n  m:\n    prober: http\n    http:\n      tls_config:\n        ca_file: /dev/zero\n";
    let (code, err) = check_with_env(dir.path(), yaml, &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("probes.yaml:6:18:") && err.contains("/dev/zero: not a regular file"),
        "{err}"
    );
    let out = Command::new(LOOKOUT).arg("--config.probes=/dev/zero").arg("check").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a regular file"));
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}
