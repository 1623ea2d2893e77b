//! Probers: one module per protocol, all with the same shape (as blackbox's prober/), the TLS
//! inspection they share, and the scheduler that runs configured probes.
//!
//! A prober is a file with a prepared form of its module section, built once at load
//! (`XProbe::prepare`, which reports bad values with their place in probes.yaml), and
//! `async fn probe(target, &XProbe, report) -> Result<(), Failure>`, which writes blackbox-named
//! gauges into the report as it learns them and returns why it failed. [`run`] bounds it with
//! the timeout, so a probe that hangs still yields what it learned. Adding a prober is its file
//! plus one arm in [`PreparedModule::prepare`] and one in [`run`] (and its section's schema in
//! `config::probes`).

mod body_cel;
pub mod certs;
pub mod compact;
pub mod dial;
pub mod dns;
pub mod file;
pub mod grpc;
pub mod guard;
pub mod history;
pub mod hosts;
pub mod http;
mod http3;
pub mod icmp;
mod oauth2;
mod proxy;
pub mod query_response;
mod report;
pub mod scheduler;
pub mod shard;
pub mod tcp;
pub mod tls;
pub mod unix;
pub mod websocket;

use crate::config::probes::{Module, ProberKind};
use crate::config::{ConfigError, Source};
pub use guard::Guard;
pub use report::{Failure, FailureReason, Outcome, Report};
use std::time::{Duration, Instant};

/// A module from probes.yaml with what its prober needs built once.
pub struct PreparedModule {
    pub name: String,
    pub timeout: Option<Duration>,
    pub prober: Prober,
    /// The module's `prober:` as written.
    kind: String,
}

pub enum Prober {
    Http(Box<http::HttpProbe>),
    Tcp(Box<tcp::TcpProbe>),
    Icmp(icmp::IcmpProbe),
    Dns(Box<dns::DnsProbe>),
    Grpc(Box<grpc::GrpcProbe>),
    Unix(Box<unix::UnixProbe>),
    Websocket(Box<websocket::WebsocketProbe>),
    File(file::FileProbe),
}

impl PreparedModule {
    pub fn prepare(
        name: &str,
        module: Module,
        source: &Source,
    ) -> Result<PreparedModule, ConfigError> {
        let timeout = module.timeout.map(|t| t.0).filter(|t| !t.is_zero());
        let kind = module.prober.value.clone();
        let section = |prober: &str| format!("modules.{name}.{prober}");
        let prober = match module.kind() {
            ProberKind::Http => {
                Prober::Http(Box::new(http::HttpProbe::prepare(module.http, source)?))
            }
            ProberKind::Tcp => Prober::Tcp(Box::new(tcp::TcpProbe::prepare(
                module.tcp.map(|t| t.value).unwrap_or_default(),
                &section("tcp"),
                source,
            )?)),
            ProberKind::Icmp => Prober::Icmp(icmp::IcmpProbe::prepare(
                module.icmp.map(|t| t.value).unwrap_or_default(),
                source,
            )?),
            ProberKind::Dns => Prober::Dns(Box::new(dns::DnsProbe::prepare(
                module.dns.expect("validation requires a dns section").value,
                source,
            )?)),
            ProberKind::Grpc => Prober::Grpc(Box::new(grpc::GrpcProbe::prepare(
                module.grpc.map(|t| t.value).unwrap_or_default(),
                source,
            )?)),
            ProberKind::Unix => Prober::Unix(Box::new(unix::UnixProbe::prepare(
                module.unix.map(|t| t.value).unwrap_or_default(),
                &section("unix"),
                source,
            )?)),
            ProberKind::Websocket => {
                Prober::Websocket(Box::new(websocket::WebsocketProbe::prepare(
                    module.websocket.map(|t| t.value).unwrap_or_default(),
                    &section("websocket"),
                    source,
                )?))
            }
            ProberKind::File => Prober::File(file::FileProbe),
        };
        Ok(PreparedModule { name: name.to_string(), timeout, prober, kind })
    }

    pub fn prober_name(&self) -> &str {
        &self.kind
    }

    /// The label names the module's `query_response` steps give `probe_expect_info`: a
    /// probe's own labels must not repeat them, or that series would carry a name twice.
    pub fn step_label_names(&self) -> impl Iterator<Item = &str> {
        let steps = match &self.prober {
            Prober::Tcp(probe) => probe.steps(),
            Prober::Unix(probe) => probe.steps(),
            Prober::Websocket(probe) => probe.steps(),
            _ => &[],
        };
        steps.iter().flat_map(|step| step.label_names())
    }

    /// Whether `target` is one this module's prober can ever run, by the prober's own parser.
    pub fn check_target(&self, target: &str) -> Result<(), Failure> {
        match &self.prober {
            Prober::Http(_) => http::parse_target(target).map(drop),
            Prober::Tcp(_) => tcp::split_host_port(target).map(drop),
            Prober::Icmp(_) => icmp::check_target(target),
            Prober::Dns(_) => dns::split_target(target).map(drop),
            Prober::Grpc(_) => grpc::parse_target(target).map(drop),
            Prober::Unix(_) => unix::check_target(target),
            Prober::Websocket(_) => websocket::parse_target(target).map(drop),
            Prober::File(_) => file::check_target(target),
        }
    }
}

/// A random 16-bit identifier (ICMP echo identifiers, DNS message IDs), so concurrent probes
/// and other exporters on the machine do not share them.
fn random_id() -> u16 {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 2];
    let _ = ring::rand::SystemRandom::new().fill(&mut bytes);
    u16::from_be_bytes(bytes)
}

/// Runs one probe of `target` with `module`, bounded by `timeout`, keeping its debug log: a
/// probe the operator configured, which may reach whatever that names.
pub async fn run(module: &PreparedModule, target: &str, timeout: Duration) -> Outcome {
    run_guarded(module, target, timeout, None, true).await
}

/// [`run`] with every hop checked by `guard` (if any) before it is contacted (a `/probe`
/// request), and the debug log kept only when `keep_log` asks for it.
pub async fn run_guarded(
    module: &PreparedModule,
    target: &str,
    timeout: Duration,
    guard: Option<&Guard<'_>>,
    keep_log: bool,
) -> Outcome {
    let start = Instant::now();
    let mut report = if keep_log { Report::new(start) } else { Report::without_log(start) };
    report.log(format_args!(
        "beginning probe: module {} ({}), target {target}, timeout {:?}",
        module.name,
        module.prober_name(),
        timeout
    ));
    let probing = async {
        match &module.prober {
            Prober::Http(probe) => http::probe(target, probe, guard, &mut report).await,
            Prober::Tcp(probe) => tcp::probe(target, probe, guard, &mut report).await,
            Prober::Icmp(probe) => icmp::probe(target, probe, timeout, &mut report).await,
            Prober::Dns(probe) => dns::probe(target, probe, guard, &mut report).await,
            Prober::Grpc(probe) => grpc::probe(target, probe, guard, &mut report).await,
            Prober::Unix(probe) => unix::probe(target, probe, guard, &mut report).await,
            Prober::Websocket(probe) => websocket::probe(target, probe, guard, &mut report).await,
            Prober::File(probe) => file::probe(target, probe, &mut report).await,
        }
    };
    let result = match tokio::time::timeout(timeout, probing).await {
        Ok(result) => result,
        Err(_) => Err(Failure::new(
            FailureReason::Timeout,
            format!("probe timed out after {:.3}s", timeout.as_secs_f64()),
        )),
    };
    report.finish(result, start.elapsed())
}
