//! Name resolution with blackbox's IP protocol preference, and TCP connects: the first two
//! phases every prober shares.
//!
//! Every connection a prober opens is known as lookout's own while it is open (see
//! [`ProbeStream`]), so a request it carries into lookout's own endpoint can be told apart
//! from a scraper's by its exact address pair, which no other socket can have at that moment.

use super::{Failure, FailureReason, Report};
use crate::config::values::IpProtocol;
use crate::metrics::families::{
    PROBE_DNS_LOOKUP_TIME_SECONDS, PROBE_IP_ADDR_HASH, PROBE_IP_PROTOCOL,
};
use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
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
        Err(_) => match super::hosts::system().and_then(|hosts| hosts.lookup(host)) {
            Some(listed) => {
                report.log(format_args!("{host} is in /etc/hosts"));
                listed
            }
            None => {
                report.log(format_args!("resolving {host}"));
                let found = tokio::net::lookup_host((host, 0)).await.map_err(|e| {
                    Failure::new(FailureReason::Dns, format!("resolving {host}: {e}"))
                })?;
                found.map(|addr| addr.ip()).collect()
            }
        },
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

/// A host name or an IP address (brackets allowed): an icmp target, or a dns target's host.
pub fn check_host(host: &str) -> Result<(), Failure> {
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    let valid = !bare.is_empty()
        && bare.len() <= 253
        && (bare.parse::<IpAddr>().is_ok()
            || bare.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')));
    if valid {
        Ok(())
    } else {
        Err(Failure::new(
            FailureReason::InvalidTarget,
            format!("target {host:?}: expected a host name or an IP address"),
        ))
    }
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
) -> Result<ProbeStream, Failure> {
    let connect_error =
        |e: std::io::Error| connect_failure(&e, format!("connecting to {addr}: {e}"));
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
    Ok(ProbeStream::new(stream, addr))
}

/// A socket error as a probe failure: a refusal (a RST, or ICMP port unreachable for UDP) apart
/// from every other error.
pub fn connect_failure(error: &std::io::Error, message: String) -> Failure {
    let reason = if error.kind() == ErrorKind::ConnectionRefused {
        FailureReason::ConnectRefused
    } else {
        FailureReason::Connect
    };
    Failure::new(reason, message)
}

/// (local, remote) of every prober connection open now.
static OPEN: Mutex<BTreeSet<(SocketAddr, SocketAddr)>> = Mutex::new(BTreeSet::new());

/// A prober's TCP connection, listed in [`OPEN`] from connect until it is dropped.
pub struct ProbeStream {
    inner: TcpStream,
    pair: Option<(SocketAddr, SocketAddr)>,
}

impl ProbeStream {
    /// `inner`, connected to `peer` (known, so not asked of the kernel).
    fn new(inner: TcpStream, peer: SocketAddr) -> ProbeStream {
        let pair = inner.local_addr().map(|local| (canonical(local), canonical(peer))).ok();
        if let Some(pair) = pair {
            OPEN.lock().expect("open connections lock").insert(pair);
        }
        ProbeStream { inner, pair }
    }
}

impl Drop for ProbeStream {
    fn drop(&mut self) {
        if let Some(pair) = &self.pair {
            OPEN.lock().expect("open connections lock").remove(pair);
        }
    }
}

/// Whether a connection lookout accepted (`peer` → `local`) is one its own prober opened.
pub fn is_own_connection(peer: SocketAddr, local: SocketAddr) -> bool {
    OPEN.lock().expect("open connections lock").contains(&(canonical(peer), canonical(local)))
}

/// An IPv4-mapped IPv6 address (a dual-stack listener's view of an IPv4 peer) as IPv4.
fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// Whether `ip` reaches this machine: loopback, unspecified (0.0.0.0 and :: connect to the
/// machine itself), or one of its interfaces' addresses — the ones a socket can bind to.
pub fn is_local_ip(ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    ip.is_loopback()
        || ip.is_unspecified()
        || (!ip.is_multicast() && std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok())
}

impl AsyncRead for ProbeStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for ProbeStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_hash_matches_fnv1a() {
        // What blackbox_exporter 0.23 reports for 127.0.0.1.
        assert_eq!(ip_hash(&"127.0.0.1".parse().unwrap()), 3_668_918_509.0);
    }

    #[test]
    fn local_addresses() {
        for local in ["127.0.0.1", "127.0.0.2", "0.0.0.0", "::", "::1", "::ffff:127.0.0.1"] {
            assert!(is_local_ip(local.parse().unwrap()), "{local}");
        }
        for remote in ["192.0.2.1", "2001:db8::1", "224.0.0.1"] {
            assert!(!is_local_ip(remote.parse().unwrap()), "{remote}");
        }
    }
}
