//! Probers: one module per protocol, all with the same signature (as blackbox's prober/),
//! the TLS inspection they share, and the scheduler that runs configured probes.
//!
//! A prober is `async fn probe(target, module, report) -> Result<(), Failure>`: it writes
//! blackbox-named gauges into the report as it learns them and returns why it failed.
//! [`run`] bounds it with the timeout, so a probe that hangs still yields what it learned.

pub mod certs;
pub mod dial;
pub mod file;
pub mod http;
mod report;
pub mod scheduler;
pub mod tcp;
pub mod tls;

use crate::config::probes::{HttpModule, Module, ProberKind, TcpModule};
use crate::config::{ConfigError, Source};
pub use report::{Failure, FailureReason, Outcome, Report};
use std::time::{Duration, Instant};

/// A module from probes.yaml with what it needs at probe time built once (TLS client settings).
pub struct PreparedModule {
    pub name: String,
    pub timeout: Option<Duration>,
    pub prober: Prober,
}

pub enum Prober {
    Http { config: Box<HttpModule>, tls: tls::TlsClient },
    Tcp { config: Box<TcpModule>, tls: tls::TlsClient },
    File,
    Unsupported(String),
}

impl PreparedModule {
    pub fn prepare(
        name: &str,
        module: Module,
        source: &Source,
    ) -> Result<PreparedModule, ConfigError> {
        let timeout = module.timeout.map(|t| t.0).filter(|t| !t.is_zero());
        let prober = match module.kind() {
            ProberKind::Http => {
                let config = module.http.map(|h| h.value).unwrap_or_default();
                let alpn: &[&[u8]] =
                    if config.enable_http2 { &[b"h2", b"http/1.1"] } else { &[b"http/1.1"] };
                let tls = tls::TlsClient::new(&config.tls_config, alpn, source)?;
                Prober::Http { config: Box::new(config), tls }
            }
            ProberKind::Tcp => {
                let config = module.tcp.map(|t| t.value).unwrap_or_default();
                let tls = tls::TlsClient::new(&config.tls_config, &[], source)?;
                Prober::Tcp { config: Box::new(config), tls }
            }
            ProberKind::File => Prober::File,
            ProberKind::Unsupported => Prober::Unsupported(module.prober.value),
        };
        Ok(PreparedModule { name: name.to_string(), timeout, prober })
    }

    pub fn prober_name(&self) -> &str {
        match &self.prober {
            Prober::Http { .. } => "http",
            Prober::Tcp { .. } => "tcp",
            Prober::File => "file",
            Prober::Unsupported(name) => name,
        }
    }
}

/// Runs one probe of `target` with `module`, bounded by `timeout`.
pub async fn run(module: &PreparedModule, target: &str, timeout: Duration) -> Outcome {
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
            Prober::Http { .. } => http::probe(target, module, &mut report).await,
            Prober::Tcp { .. } => tcp::probe(target, module, &mut report).await,
            Prober::File => file::probe(target, module, &mut report).await,
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
