//! The icmp prober against this machine's own stack: blackbox's metrics, lookout's series of
//! echoes, concurrent pings, and both kinds of socket in network namespaces the test makes
//! (one whose `ping_group_range` allows unprivileged pings, one where nothing does).

use crate::common::*;
use crate::peers::in_namespace;
use std::time::Duration;

#[tokio::test]
async fn echo_to_loopback_has_blackbox_metrics() {
    for (target, protocol) in [("127.0.0.1", 4.0), ("::1", 6.0)] {
        let outcome = probe("prober: icmp", target).await;
        assert!(outcome.success, "{target}: {:?}", outcome.failure);
        assert_eq!(outcome.value(&PROBE_IP_PROTOCOL), Some(protocol));
        assert_eq!(outcome.value(&PROBE_ICMP_REPLY_HOP_LIMIT), Some(64.0), "{target}");
        let phases: Vec<String> = label_sets(&outcome, &PROBE_ICMP_DURATION_SECONDS)
            .iter()
            .map(|set| label(set, "phase").to_string())
            .collect();
        assert_eq!(phases, ["resolve", "setup", "rtt"]);
        // Without `packets`, nothing beyond blackbox's output.
        assert!(family(&outcome, &ICMP_PACKETS_SENT).is_none());
        assert!(family(&outcome, &ICMP_RTT_SECONDS).is_none());
    }
}

#[tokio::test]
async fn every_option_is_applied() {
    let module = "prober: icmp\nicmp:\n  preferred_ip_protocol: ip4\n  ip_protocol_fallback: false\n  source_ip_address: 127.0.0.1\n  payload_size: 1200\n  dont_fragment: true\n  ttl: 3";
    let outcome = probe(module, "127.0.0.1").await;
    assert!(outcome.success, "{:?}", outcome.failure);
    // A source address of the other family cannot send to the target.
    let outcome = probe("prober: icmp\nicmp:\n  source_ip_address: \"::1\"", "127.0.0.1").await;
    assert!(!outcome.success);
    // ip4 only, no fallback: an IPv6-only target has no address.
    let outcome = probe(
        "prober: icmp\nicmp:\n  preferred_ip_protocol: ip4\n  ip_protocol_fallback: false",
        "::1",
    )
    .await;
    assert_eq!(reason(&outcome), "dns");
}

#[tokio::test]
async fn a_series_reports_loss_and_jitter() {
    let module = "prober: icmp\nicmp:\n  packets: 5\n  packet_interval: 20ms";
    let outcome = probe(module, "127.0.0.1").await;
    assert!(outcome.success, "{:?}", outcome.failure);
    assert_eq!(outcome.value(&ICMP_PACKETS_SENT), Some(5.0));
    assert_eq!(outcome.value(&ICMP_PACKETS_RECEIVED), Some(5.0));
    let stat = |name: &str| {
        family(&outcome, &ICMP_RTT_SECONDS)
            .unwrap()
            .samples
            .iter()
            .find(|s| s.labels.iter().any(|(_, v)| v == name))
            .unwrap()
            .value
    };
    assert!(stat("min") > 0.0 && stat("min") <= stat("avg") && stat("avg") <= stat("max"));
    assert!(stat("stddev") >= 0.0 && stat("stddev") <= stat("max") - stat("min"));
    // A series longer than the timeout reports the echoes it sent, and succeeds on their replies.
    let long = "prober: icmp\nicmp:\n  packets: 100\n  packet_interval: 100ms";
    let outcome = probe_with_timeout(long, "127.0.0.1", Duration::from_millis(500)).await;
    assert!(outcome.success, "{:?}", outcome.failure);
    let sent = outcome.value(&ICMP_PACKETS_SENT).unwrap();
    assert!((4.0..=6.0).contains(&sent), "{sent}");
    assert_eq!(outcome.value(&ICMP_PACKETS_RECEIVED), Some(sent));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pings_to_one_host_keep_their_own_replies() {
    let module =
        std::sync::Arc::new(prepare("prober: icmp\nicmp:\n  packets: 3\n  packet_interval: 10ms"));
    let runs: Vec<_> = (0..40)
        .map(|_| {
            let module = module.clone();
            tokio::spawn(async move {
                lookout::probe::run(&module, "127.0.0.1", Duration::from_secs(5)).await
            })
        })
        .collect();
    for run in runs {
        let outcome = run.await.unwrap();
        assert!(outcome.success, "{:?}", outcome.failure);
        assert_eq!(outcome.value(&ICMP_PACKETS_RECEIVED), Some(3.0), "a reply was lost or taken");
    }
}

/// Sets the namespace's net.ipv4.ping_group_range to every group (as `sysctl -w` would).
const ALLOW_PING: &str = "echo '0 2147483647' > /proc/sys/net/ipv4/ping_group_range &&";

/// `lookout --once --output OUTPUT` on one icmp probe of `target`, in a new network namespace
/// after `setup`, without CAP_NET_RAW.
fn once_in_namespace(
    dir: &std::path::Path,
    setup: &str,
    target: &str,
    output: &str,
) -> (i32, String) {
    let probes = write_file(
        dir,
        "probes.yaml",
        format!(
            "modules:\n  icmp: {{ prober: icmp, timeout: 2s }}\nprobes:\n  - {{ name: ping, module: icmp, target: \"{target}\" }}\n"
        ),
    );
    let out = in_namespace(&format!(
        "{setup} exec setpriv --bounding-set=-net_raw --inh-caps=-net_raw {LOOKOUT} --once --output {output} --config.probes={}",
        probes.display()
    ));
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn unprivileged_sockets_where_the_sysctl_allows_them() {
    let dir = tempfile::tempdir().unwrap();
    let allow = ALLOW_PING;
    for target in ["127.0.0.1", "::1"] {
        let (code, out) = once_in_namespace(dir.path(), allow, target, "prometheus");
        assert_eq!(code, 0, "{out}");
        assert!(
            out.contains(&format!(
                "probe_success{{probe=\"ping\",module=\"icmp\",target=\"{target}\"}} 1"
            )),
            "{out}"
        );
        // The reply's TTL comes from a control message on these sockets.
        assert!(out.contains("probe_icmp_reply_hop_limit{probe=\"ping\""), "{out}");
    }
}

#[test]
fn without_sysctl_or_capability_the_reason_says_what_to_change() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out) = once_in_namespace(dir.path(), "", "127.0.0.1", "table");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("icmp_permission"), "{out}");
    assert!(out.contains("net.ipv4.ping_group_range") && out.contains("CAP_NET_RAW"), "{out}");
    // `lookout check` says so before anything runs (the configuration itself is valid).
    let check = in_namespace(&format!(
        "exec setpriv --bounding-set=-net_raw --inh-caps=-net_raw {LOOKOUT} check --config.probes={}",
        dir.path().join("probes.yaml").display()
    ));
    let text = String::from_utf8_lossy(&check.stdout);
    assert_eq!(check.status.code(), Some(0), "{text}");
    assert!(
        text.contains("warning: icmp modules (icmp) will fail") && text.contains("CAP_NET_RAW"),
        "{text}"
    );
}

#[test]
fn an_unreachable_host_fails_quickly_and_clearly() {
    // In a namespace with loopback only, nothing routes to a documentation address.
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let allow = ALLOW_PING;
    let (code, out) = once_in_namespace(dir.path(), allow, "192.0.2.1", "table");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAIL") && out.contains("192.0.2.1"), "{out}");
    assert!(started.elapsed() < Duration::from_secs(10));
}
