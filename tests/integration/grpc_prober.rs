//! The grpc prober against a tonic-health server (clear text and TLS), a server without the
//! health service, a plain HTTP/2 server, and a closed port.

use crate::common::*;
use crate::peers::{grpc_server, Health};

fn serving_status(outcome: &lookout::probe::Outcome) -> Vec<(String, f64)> {
    family(outcome, &PROBE_GRPC_HEALTHCHECK_RESPONSE)
        .map(|f| {
            f.samples
                .iter()
                .map(|s| (s.labels.iter().map(|(_, v)| v.clone()).collect(), s.value))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn health_check_answers() {
    let addr = grpc_server(Health::Reporter, None);
    let target = addr.to_string();
    let outcome = probe("prober: grpc\ngrpc: { preferred_ip_protocol: ip4 }", &target).await;
    assert!(outcome.success, "{:?}", outcome.failure);
    assert_eq!(outcome.value(&PROBE_GRPC_STATUS_CODE), Some(0.0));
    assert_eq!(outcome.value(&PROBE_GRPC_SSL), Some(0.0));
    let statuses = serving_status(&outcome);
    assert_eq!(statuses.len(), 4);
    assert!(statuses.contains(&("SERVING".to_string(), 1.0)), "{statuses:?}");
    assert_eq!(statuses.iter().map(|(_, v)| v).sum::<f64>(), 1.0);
    let phases: Vec<String> = label_sets(&outcome, &PROBE_GRPC_DURATION_SECONDS)
        .iter()
        .map(|set| label(set, "phase").to_string())
        .collect();
    assert_eq!(phases, ["resolve", "check"]);

    let outcome =
        probe("prober: grpc\ngrpc: { service: shop, metadata: { x-team: [a, b] } }", &target).await;
    assert!(outcome.success, "{:?}", outcome.failure);
    let outcome = probe("prober: grpc\ngrpc: { service: billing }", &target).await;
    assert_eq!(reason(&outcome), "grpc_status");
    assert!(serving_status(&outcome).contains(&("NOT_SERVING".to_string(), 1.0)));
    // tonic-health answers NOT_FOUND for a service it does not know.
    let outcome = probe("prober: grpc\ngrpc: { service: nobody }", &target).await;
    assert_eq!(reason(&outcome), "grpc_status");
    assert_eq!(outcome.value(&PROBE_GRPC_STATUS_CODE), Some(5.0));
}

#[tokio::test]
async fn unimplemented_and_not_grpc() {
    let addr = grpc_server(Health::Unimplemented, None);
    let outcome = probe("prober: grpc", &addr.to_string()).await;
    assert_eq!(reason(&outcome), "grpc_status");
    assert_eq!(outcome.value(&PROBE_GRPC_STATUS_CODE), Some(12.0));
    assert!(outcome.failure.unwrap().message.contains("12"));
    // An HTTP/1.1-only server does not speak HTTP/2: UNAVAILABLE.
    let http = http_server().await;
    let outcome = probe("prober: grpc", &http.to_string()).await;
    assert!(!outcome.success);
    assert_eq!(outcome.value(&PROBE_GRPC_STATUS_CODE), Some(14.0));
    // Nothing listening.
    let outcome = probe("prober: grpc", &format!("127.0.0.1:{}", closed_port())).await;
    assert_eq!(reason(&outcome), "connect_refused");
    assert_eq!(outcome.value(&PROBE_GRPC_STATUS_CODE), Some(14.0));
}

#[tokio::test]
async fn over_tls_with_certificate_metrics() {
    let ca = Ca::new("grpc test CA");
    let leaf = ca.leaf("grpc.test", &["grpc.test"], -1, 20);
    let dir = tempfile::tempdir().unwrap();
    let ca_file = write_file(dir.path(), "ca.pem", pem(&ca.der()));
    let addr = grpc_server(Health::Reporter, Some((vec![leaf.der.clone()], leaf.key_der())));
    let module = format!(
        "prober: grpc\ngrpc:\n  tls: true\n  tls_config: {{ ca_file: {}, server_name: grpc.test }}",
        ca_file.display()
    );
    let outcome = probe(&module, &format!("https://{addr}")).await;
    assert!(outcome.success, "{:?}", outcome.failure);
    assert_eq!(outcome.value(&PROBE_GRPC_SSL), Some(1.0));
    assert!(outcome.value(&PROBE_SSL_EARLIEST_CERT_EXPIRY).is_some());
    assert!(family(&outcome, &PROBE_SSL_LAST_CHAIN_INFO).is_some());
    // The expiry warning of --once and the status page reads these.
    let soonest = outcome.soonest_certificate(std::time::SystemTime::now()).unwrap();
    assert!(soonest.days_left > 18.0 && soonest.days_left < 21.0, "{}", soonest.days_left);

    let outcome = probe("prober: grpc\ngrpc: { tls: true }", &addr.to_string()).await;
    assert_eq!(reason(&outcome), "tls_verify");
    assert_eq!(outcome.value(&PROBE_GRPC_STATUS_CODE), Some(14.0));
    assert!(family(&outcome, &CERT_NOT_AFTER).is_some());
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let silent = raw_server(|stream| async move {
        tokio::time::sleep(std::time::Duration::from_secs(30)).await;
        drop(stream);
    })
    .await;
    let started = std::time::Instant::now();
    let outcome = probe_with_timeout(
        "prober: grpc",
        &silent.to_string(),
        std::time::Duration::from_millis(500),
    )
    .await;
    assert_eq!(reason(&outcome), "timeout");
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    assert_eq!(outcome.value(&PROBE_GRPC_SSL), Some(0.0));
}
