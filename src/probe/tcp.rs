//! The tcp prober: blackbox's `prober: tcp`: connect, optionally TLS, then a scripted
//! dialogue of `expect` regexes and `send` lines, with STARTTLS upgrades in between
//! (see `query_response`).

use super::query_response::{self, Step, Stream};
use super::tls::TlsClient;
use super::{dial, Failure, FailureReason, Guard, Report};
use crate::config::probes::TcpModule;
use crate::config::{ConfigError, Source};
use crate::metrics::families::PROBE_FAILED_DUE_TO_REGEX;
use std::net::SocketAddr;

/// A module's `tcp:` section with its TLS client built and its dialogue prepared.
pub struct TcpProbe {
    config: TcpModule,
    steps: Vec<Step>,
    tls: TlsClient,
}

impl TcpProbe {
    /// Its `query_response` steps.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    pub fn prepare(
        config: TcpModule,
        section: &str,
        source: &Source,
    ) -> Result<TcpProbe, ConfigError> {
        let tls = TlsClient::new(&config.tls_config, &[], source)?;
        let steps = Step::prepare_all(&config.query_response, section, source)?;
        Ok(TcpProbe { config, steps, tls })
    }
}

pub async fn probe(
    target: &str,
    probe: &TcpProbe,
    guard: Option<&Guard<'_>>,
    report: &mut Report,
) -> Result<(), Failure> {
    let TcpProbe { config, steps, tls } = probe;
    let (host, port) = split_host_port(target)?;
    // Present from the start, as blackbox's tcp prober registers it before connecting.
    report.set(&PROBE_FAILED_DUE_TO_REGEX, 0.0);
    let resolved =
        dial::resolve(host, config.preferred_ip_protocol, config.ip_protocol_fallback, report)
            .await?;
    dial::record(&resolved, report);
    let addr = SocketAddr::new(resolved.ip, port);
    if let Some(guard) = guard {
        guard.check_address(addr)?;
    }
    let stream = dial::connect(addr, config.source_ip_address, report).await?;
    let name = tls.server_name().unwrap_or(host);
    let conn: Box<dyn Stream> = if config.tls {
        Box::new(tls.handshake(stream, name, report).await?)
    } else {
        Box::new(stream)
    };
    query_response::run(conn, steps, tls, name, report).await
}

/// `host:port` or `[v6]:port`; the port is required, as in blackbox.
pub fn split_host_port(target: &str) -> Result<(&str, u16), Failure> {
    let invalid =
        |why: &str| Failure::new(FailureReason::InvalidTarget, format!("target {target:?}: {why}"));
    let (host, port) = target.rsplit_once(':').ok_or_else(|| invalid("expected host:port"))?;
    let port: u16 = port.parse().map_err(|_| invalid("invalid port"))?;
    let (host, bracketed) = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(inner) => (inner, true),
        None => (host, false),
    };
    // As Go's net.SplitHostPort: an IPv6 address needs its brackets.
    if host.is_empty()
        || host.contains(['/', ' ', '[', ']'])
        || (host.contains(':') && (!bracketed || host.parse::<std::net::Ipv6Addr>().is_err()))
    {
        return Err(invalid("invalid host"));
    }
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port() {
        assert_eq!(split_host_port("localhost:25").unwrap(), ("localhost", 25));
        assert_eq!(split_host_port("[::1]:443").unwrap(), ("::1", 443));
        for bad in ["localhost", "host:99999", ":80", "a b:1", "http://x:80", "::1:80"] {
            assert!(split_host_port(bad).is_err(), "{bad}");
        }
    }
}
