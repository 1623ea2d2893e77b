//! The unix prober: blackbox's `prober: unix`: connect to a Unix stream socket, optionally in
//! TLS, then the same `query_response` dialogue as the tcp prober.

use super::query_response::{self, Step, Stream};
use super::tls::TlsClient;
use super::{Failure, FailureReason, Guard, Report};
use crate::config::probes::UnixModule;
use crate::config::{ConfigError, Source};
use std::io::ErrorKind;
use tokio::net::UnixStream;

/// The name TLS verifies when `tls_config.server_name` is unset: a socket path is no host name.
const DEFAULT_SERVER_NAME: &str = "localhost";

/// A module's `unix:` section with its TLS client built and its dialogue prepared.
pub struct UnixProbe {
    tls_enabled: bool,
    steps: Vec<Step>,
    tls: TlsClient,
}

impl UnixProbe {
    /// Its `query_response` steps.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    pub fn prepare(
        config: UnixModule,
        section: &str,
        source: &Source,
    ) -> Result<UnixProbe, ConfigError> {
        let tls = TlsClient::new(&config.tls_config, &[], source)?;
        let steps = Step::prepare_all(&config.query_response, section, source)?;
        Ok(UnixProbe { tls_enabled: config.tls, steps, tls })
    }
}

/// Connects to the socket at `target`, or, for `@name`, to the abstract socket `name` (Linux's
/// namespace of sockets without a file, as Go writes them).
async fn connect(target: &str) -> std::io::Result<UnixStream> {
    let Some(name) = target.strip_prefix('@') else {
        return UnixStream::connect(target).await;
    };
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
    // A local connect completes at once or fails; it never waits on the network.
    let stream = std::os::unix::net::UnixStream::connect_addr(&addr)?;
    stream.set_nonblocking(true)?;
    UnixStream::from_std(stream)
}

/// A socket path: anything but empty, and without the NUL no path can hold.
pub fn check_target(target: &str) -> Result<(), Failure> {
    if target.is_empty() || target.contains('\0') {
        return Err(Failure::new(
            FailureReason::InvalidTarget,
            format!("target {target:?}: expected the path of a Unix socket"),
        ));
    }
    Ok(())
}

pub async fn probe(
    target: &str,
    probe: &UnixProbe,
    guard: Option<&Guard<'_>>,
    report: &mut Report,
) -> Result<(), Failure> {
    check_target(target)?;
    if let Some(guard) = guard {
        guard.check_unix_socket(target)?;
    }
    let stream = connect(target).await.map_err(|e| {
        let reason = match e.kind() {
            ErrorKind::ConnectionRefused => FailureReason::ConnectRefused,
            _ => FailureReason::Connect,
        };
        let why = match e.kind() {
            ErrorKind::PermissionDenied => "permission denied connecting to unix socket",
            _ => "connecting to unix socket",
        };
        Failure::new(reason, format!("{why} {target}: {e}"))
    })?;
    report.log(format_args!("connected to {target}"));
    let name = probe.tls.server_name().unwrap_or(DEFAULT_SERVER_NAME);
    let conn: Box<dyn Stream> = if probe.tls_enabled {
        Box::new(probe.tls.handshake(stream, name, report).await?)
    } else {
        Box::new(stream)
    };
    query_response::run(conn, &probe.steps, &probe.tls, name, report).await
}
