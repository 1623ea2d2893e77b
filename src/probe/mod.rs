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

pub mod certs;
pub mod dial;
pub mod file;
pub mod guard;
pub mod history;
pub mod http;
mod report;
pub mod scheduler;
pub mod tcp;
pub mod tls;

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
    File(file::FileProbe),
    /// A blackbox prober lookout does not implement, by name.
    Unsupported(String),
}

impl PreparedModule {
    pub fn prepare(
        name: &str,
        module: Module,
        source: &Source,
    ) -> Result<PreparedModule, ConfigError> {
        let timeout = module.timeout.map(|t| t.0).filter(|t| !t.is_zero());
        let kind = module.prober.value.clone();
        let prober = match module.kind() {
            ProberKind::Http => {
                Prober::Http(Box::new(http::HttpProbe::prepare(name, module.http, source)?))
            }
            ProberKind::Tcp => Prober::Tcp(Box::new(tcp::TcpProbe::prepare(
                module.tcp.map(|t| t.value).unwrap_or_default(),
                source,
            )?)),
            ProberKind::File => Prober::File(file::FileProbe),
            ProberKind::Unsupported => Prober::Unsupported(kind.clone()),
        };
        Ok(PreparedModule { name: name.to_string(), timeout, prober, kind })
    }

    pub fn prober_name(&self) -> &str {
        &self.kind
    }

    /// Whether `target` is one this module's prober can ever run, by the prober's own parser.
    pub fn check_target(&self, target: &str) -> Result<(), Failure> {
        match &self.prober {
            Prober::Http(_) => http::parse_target(target).map(drop),
            Prober::Tcp(_) => tcp::split_host_port(target).map(drop),
            Prober::File(_) => file::check_target(target),
            Prober::Unsupported(_) => Ok(()),
        }
    }
}

/// Runs one probe of `target` with `module`, bounded by `timeout`: a scheduled probe, which
/// may reach whatever the operator configured.
pub async fn run(module: &PreparedModule, target: &str, timeout: Duration) -> Outcome {
    run_guarded(module, target, timeout, None).await
}

/// [`run`] for a `/probe` request: every hop is checked by `guard` before it is contacted.
pub async fn run_guarded(
    module: &PreparedModule,
    target: &str,
    timeout: Duration,
    guard: Option<&Guard<'_>>,
) -> Outcome {
    let start = Instant::now();
    let mut report = Report::new(start);
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
            Prober::File(probe) => file::probe(target, probe, &mut report).await,
            Prober::Unsupported(name) => Err(Failure::new(
                FailureReason::UnsupportedProber,
                format!("prober {name:?} is not implemented by lookout"),
            )),
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
