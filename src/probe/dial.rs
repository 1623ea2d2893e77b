//! Name resolution with blackbox's IP protocol preference, and TCP connects: the first two
//! phases every prober shares.

use super::{Failure, FailureReason, Report};
use crate::config::values::IpProtocol;
use crate::metrics::families::{
    PROBE_DNS_LOOKUP_TIME_SECONDS, PROBE_IP_ADDR_HASH, PROBE_IP_PROTOCOL,
};
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::net::{TcpSocket, TcpStream};

pub struct Resolved {
    pub ip: IpAddr,
    pub lookup: Duration,
}

/// Resolves `host` (a name or an IP literal, brackets allowed) to one address, preferring
/// `preferred` and falling back to the other family when `fallback` is set.
pub async fn resolve(
    host: &str,
    preferred: IpProtocol,
    fallback: bool,
    report: &mut Report,
) -> Result<Resolved, Failure> {
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    let start = Instant::now();
    let candidates: Vec<IpAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => {
            report.log(format_args!("resolving {host}"));
            let found = tokio::net::lookup_host((host, 0))
                .await
                .map_err(|e| Failure::new(FailureReason::Dns, format!("resolving {host}: {e}")))?;
            found.map(|addr| addr.ip()).collect()
        }
    };
    let lookup = start.elapsed();
    let wanted = |ip: &IpAddr| match preferred {
        IpProtocol::V4 => ip.is_ipv4(),
        IpProtocol::V6 => ip.is_ipv6(),
    };
    let ip = candidates
        .iter()
        .find(|ip| wanted(ip))
        .or_else(|| if fallback { candidates.first() } else { None })
        .copied()
        .ok_or_else(|| {
            let family = if preferred == IpProtocol::V4 { "IPv4" } else { "IPv6" };
            Failure::new(
                FailureReason::Dns,
                format!("no {family} address for {host} and ip_protocol_fallback is off"),
            )
        })?;
    report.log(format_args!("resolved {host} to {ip} in {:.6}s", lookup.as_secs_f64()));
    Ok(Resolved { ip, lookup })
}

/// Records the resolution as blackbox does for the probe's first target.
pub fn record(resolved: &Resolved, report: &mut Report) {
    report.set(&PROBE_DNS_LOOKUP_TIME_SECONDS, resolved.lookup.as_secs_f64());
    report.set(&PROBE_IP_PROTOCOL, if resolved.ip.is_ipv4() { 4.0 } else { 6.0 });
    report.set(&PROBE_IP_ADDR_HASH, ip_hash(&resolved.ip));
}

/// FNV-1a (32 bit) of the address's bytes (4 or 16), the hash blackbox_exporter reports.
pub fn ip_hash(ip: &IpAddr) -> f64 {
    let bytes = match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    };
    let mut hash: u32 = 0x811c_9dc5;
    for byte in bytes {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    f64::from(hash)
}

pub async fn connect(
    addr: SocketAddr,
    source: Option<IpAddr>,
    report: &mut Report,
) -> Result<TcpStream, Failure> {
    let connect_error = |e: std::io::Error| {
        let reason = if e.kind() == ErrorKind::ConnectionRefused {
            FailureReason::ConnectRefused
        } else {
            FailureReason::Connect
        };
        Failure::new(reason, format!("connecting to {addr}: {e}"))
    };
    let socket = if addr.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() }
        .map_err(connect_error)?;
    if let Some(source) = source {
        socket.bind(SocketAddr::new(source, 0)).map_err(|e| {
            Failure::new(FailureReason::Connect, format!("binding source address {source}: {e}"))
        })?;
    }
    let stream = socket.connect(addr).await.map_err(connect_error)?;
    let _ = stream.set_nodelay(true);
    report.log(format_args!("connected to {addr}"));
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_hash_matches_fnv1a() {
        // What blackbox_exporter 0.23 reports for 127.0.0.1.
        assert_eq!(ip_hash(&"127.0.0.1".parse().unwrap()), 3_668_918_509.0);
    }
}
