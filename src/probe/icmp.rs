//! The icmp prober: blackbox's `prober: icmp` — an echo request and its reply over IPv4 or
//! IPv6 — and, beyond blackbox, a series of echoes per probe (`packets:`) that reports loss and
//! jitter as smokeping does.
//!
//! Sockets, as blackbox picks them: an unprivileged ICMP datagram ("ping") socket first, which
//! Linux allows to the groups in the sysctl `net.ipv4.ping_group_range`, else a raw socket,
//! which needs `CAP_NET_RAW`; when neither opens the probe fails with `icmp_permission`, naming
//! both. Every probe opens its own socket: a ping socket receives only the replies to the
//! identifier the kernel gave it, and every raw socket receives a copy of every reply, which the
//! probe matches by source address, identifier, sequence number and payload — so concurrent
//! pings to one host never take each other's replies. `dont_fragment` sets the DF bit with
//! `IP_MTU_DISCOVER`, which works on both kinds of socket.
//!
//! `/probe`'s guard has nothing to check here: an echo reaches no listening socket.

use super::{dial, Failure, FailureReason, Report};
use crate::config::probes::IcmpModule;
use crate::config::values::IpProtocol;
use crate::config::{ConfigError, Source};
use crate::metrics::families::{
    ICMP_PACKETS_RECEIVED, ICMP_PACKETS_SENT, ICMP_RTT_SECONDS, PROBE_ICMP_DURATION_SECONDS,
    PROBE_ICMP_REPLY_HOP_LIMIT,
};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io::{self, ErrorKind};
use std::mem::MaybeUninit;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU16, AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tokio::io::unix::AsyncFd;

/// Echo data when `payload_size` is unset: as long as blackbox's.
const DEFAULT_PAYLOAD: &[u8] = b"lookout ICMP echo request..";
const DEFAULT_TTL: u32 = 64;
const DEFAULT_PACKET_INTERVAL: Duration = Duration::from_secs(1);
/// Most data an echo can carry in one IPv4 datagram.
const MAX_PAYLOAD: u16 = 65_507;
const MAX_PACKETS: u32 = 1_000;
/// An identifier not known yet.
const UNKNOWN: u32 = u32::MAX;
/// A series of echoes stops waiting for replies this share of the timeout before it ends, so
/// what arrived is reported rather than lost to the timeout.
const SERIES_MARGIN: f64 = 0.1;

/// A module's `icmp:` section, checked at load.
pub struct IcmpProbe {
    preferred_ip_protocol: IpProtocol,
    ip_protocol_fallback: bool,
    source_ip_address: Option<IpAddr>,
    payload: Vec<u8>,
    dont_fragment: bool,
    ttl: u32,
    /// `None`: blackbox's single echo and nothing more.
    packets: Option<u32>,
    packet_interval: Duration,
}

impl IcmpProbe {
    pub fn prepare(config: IcmpModule, source: &Source) -> Result<IcmpProbe, ConfigError> {
        let payload = match &config.payload_size {
            Some(size) if size.value > MAX_PAYLOAD => {
                return Err(source.error_at_span(
                    size,
                    format!("payload_size must be at most {MAX_PAYLOAD} bytes"),
                ))
            }
            Some(size) if size.value > 0 => {
                let mut data = vec![0; usize::from(size.value)];
                let text = &DEFAULT_PAYLOAD[..DEFAULT_PAYLOAD.len().min(data.len())];
                data[..text.len()].copy_from_slice(text);
                data
            }
            _ => DEFAULT_PAYLOAD.to_vec(),
        };
        let ttl = match &config.ttl {
            Some(ttl) if ttl.value > 255 => {
                return Err(source.error_at_span(ttl, "ttl cannot exceed 255"))
            }
            Some(ttl) if ttl.value > 0 => ttl.value,
            _ => DEFAULT_TTL,
        };
        if let Some(packets) = &config.packets {
            if !(1..=MAX_PACKETS).contains(&packets.value) {
                return Err(source.error_at_span(
                    packets,
                    format!("packets must be between 1 and {MAX_PACKETS}"),
                ));
            }
        }
        let packet_interval = match &config.packet_interval {
            Some(interval) if config.packets.is_none() => {
                return Err(source.error_at_span(interval, "packet_interval needs packets"));
            }
            Some(interval) if interval.value.0 < Duration::from_millis(10) => {
                return Err(source.error_at_span(interval, "packet_interval must be at least 10ms"))
            }
            Some(interval) => interval.value.0,
            None => DEFAULT_PACKET_INTERVAL,
        };
        Ok(IcmpProbe {
            preferred_ip_protocol: config.preferred_ip_protocol,
            ip_protocol_fallback: config.ip_protocol_fallback,
            source_ip_address: config.source_ip_address,
            payload,
            dont_fragment: config.dont_fragment,
            ttl,
            packets: config.packets.map(|p| p.value),
            packet_interval,
        })
    }
}

/// A host name or an IP address (brackets allowed), as blackbox takes an icmp target.
pub fn check_target(target: &str) -> Result<(), Failure> {
    dial::check_host(target)
}

/// `timeout`: the probe's, so a series of echoes can stop listening in time to report.
pub async fn probe(
    target: &str,
    probe: &IcmpProbe,
    timeout: Duration,
    report: &mut Report,
) -> Result<(), Failure> {
    let start = Instant::now();
    for phase in ["resolve", "setup", "rtt"] {
        phase_time(report, phase, Duration::ZERO);
    }
    check_target(target)?;
    let resolved =
        dial::resolve(target, probe.preferred_ip_protocol, probe.ip_protocol_fallback, report)
            .await?;
    dial::record(&resolved, report);
    phase_time(report, "resolve", resolved.lookup);
    let destination = resolved.ip;

    let setup = Instant::now();
    let socket = EchoSocket::open(destination, probe)?;
    report.log(format_args!(
        "opened {} socket for {destination}",
        if socket.raw { "a raw ICMP" } else { "an unprivileged ICMP datagram" }
    ));
    phase_time(report, "setup", setup.elapsed());

    let count = probe.packets.unwrap_or(1);
    // A single echo waits as long as the probe may (blackbox's behaviour: no reply is a timeout).
    let listen_until = probe.packets.map(|_| start + timeout.mul_f64(1.0 - SERIES_MARGIN));
    // (sequence, sent at, answered): each sequence number counts once, even when duplicated.
    let mut sent: Vec<(u16, Instant, bool)> = Vec::with_capacity(count as usize);
    let mut rtts: Vec<Duration> = Vec::with_capacity(count as usize);
    let mut next_send = Instant::now();
    let mut buffer = vec![MaybeUninit::<u8>::uninit(); 65_536];
    while rtts.len() < count as usize {
        let send_now = sent.len() < count as usize;
        let wait_until = match (send_now, listen_until) {
            (true, Some(end)) => Some(next_send.min(end)),
            (true, None) => Some(next_send),
            (false, end) => end,
        };
        let sleep = async {
            match wait_until {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = sleep => {
                if !send_now || listen_until.is_some_and(|end| Instant::now() >= end) {
                    break;
                }
                let sequence = next_sequence();
                socket.send(sequence, &probe.payload)?;
                report.log(format_args!("sent echo request, sequence {sequence}"));
                sent.push((sequence, Instant::now(), false));
                next_send += probe.packet_interval;
            }
            received = socket.receive(&mut buffer) => {
                let Some(reply) = received? else { continue };
                let Some(echo) = sent.iter_mut().find(|(s, _, answered)| {
                    *s == reply.sequence && !answered
                }) else {
                    continue;
                };
                if reply.from != destination || reply.data != probe.payload {
                    report.log(format_args!("ignored a reply from {}", reply.from));
                    continue;
                }
                echo.2 = true;
                let sent_at = echo.1;
                let rtt = reply.at.saturating_duration_since(sent_at);
                report.log(format_args!(
                    "echo reply, sequence {}, {:.6}s",
                    reply.sequence,
                    rtt.as_secs_f64()
                ));
                if rtts.is_empty() {
                    if let Some(hops) = reply.hop_limit {
                        report.set(&PROBE_ICMP_REPLY_HOP_LIMIT, f64::from(hops));
                    }
                }
                rtts.push(rtt);
            }
        }
    }
    if !rtts.is_empty() {
        let mean = rtts.iter().map(Duration::as_secs_f64).sum::<f64>() / rtts.len() as f64;
        phase_time(report, "rtt", Duration::from_secs_f64(mean));
    }
    if probe.packets.is_some() {
        // The echoes sent: fewer than `packets` when the series did not fit in the timeout.
        record_series(report, sent.len() as u32, &rtts);
    }
    if rtts.is_empty() {
        return Err(Failure::new(
            FailureReason::Timeout,
            format!("no echo reply from {destination} to {count} request(s)"),
        ));
    }
    Ok(())
}

fn record_series(report: &mut Report, sent: u32, rtts: &[Duration]) {
    report.set(&ICMP_PACKETS_SENT, f64::from(sent));
    report.set(&ICMP_PACKETS_RECEIVED, rtts.len() as f64);
    if rtts.is_empty() {
        return;
    }
    let seconds: Vec<f64> = rtts.iter().map(Duration::as_secs_f64).collect();
    let n = seconds.len() as f64;
    let mean = seconds.iter().sum::<f64>() / n;
    let variance = seconds.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / n;
    let min = seconds.iter().copied().fold(f64::INFINITY, f64::min);
    let max = seconds.iter().copied().fold(0.0, f64::max);
    for (stat, value) in [("min", min), ("avg", mean), ("max", max), ("stddev", variance.sqrt())] {
        report.set_labeled(&ICMP_RTT_SECONDS, [stat.to_string()], value);
    }
}

fn phase_time(report: &mut Report, phase: &str, duration: Duration) {
    report.add_labeled(&PROBE_ICMP_DURATION_SECONDS, [phase.to_string()], duration.as_secs_f64());
}

/// Echo sequence numbers, shared by all probes and starting at a random offset (as blackbox,
/// so restarted exporters do not send in step).
fn next_sequence() -> u16 {
    static SEQUENCE: OnceLock<AtomicU16> = OnceLock::new();
    SEQUENCE.get_or_init(|| AtomicU16::new(super::random_id())).fetch_add(1, Ordering::Relaxed)
}

struct EchoSocket {
    fd: AsyncFd<Socket>,
    destination: IpAddr,
    raw: bool,
    /// The identifier replies carry: random for a raw socket, the kernel's for a ping socket
    /// (known after the first send); [`UNKNOWN`] before.
    identifier: AtomicU32,
}

struct Reply<'a> {
    from: IpAddr,
    sequence: u16,
    data: &'a [u8],
    hop_limit: Option<u8>,
    at: Instant,
}

impl EchoSocket {
    fn open(destination: IpAddr, probe: &IcmpProbe) -> Result<EchoSocket, Failure> {
        let (socket, raw) = open_socket(destination.is_ipv4())?;
        let setup = |what: &str, e: io::Error| {
            Failure::new(FailureReason::Connect, format!("ICMP socket: {what}: {e}"))
        };
        if raw {
            only_echo_replies(&socket, destination.is_ipv4())
                .map_err(|e| setup("filtering echo replies", e))?;
        }
        socket.set_nonblocking(true).map_err(|e| setup("non-blocking mode", e))?;
        if let Some(source) = probe.source_ip_address {
            // The kernel would read an address of the other family as garbage, not refuse it.
            if source.is_ipv4() != destination.is_ipv4() {
                return Err(Failure::new(
                    FailureReason::Connect,
                    format!("source_ip_address {source} cannot reach {destination}"),
                ));
            }
            socket
                .bind(&SocketAddr::new(source, 0).into())
                .map_err(|e| setup(&format!("binding source address {source}"), e))?;
        }
        match destination {
            IpAddr::V4(_) => {
                socket.set_ttl_v4(probe.ttl).map_err(|e| setup("setting the TTL", e))?;
                if !raw {
                    set_int(&socket, libc::IPPROTO_IP, libc::IP_RECVTTL, 1)
                        .map_err(|e| setup("asking for the reply TTL", e))?;
                }
                if probe.dont_fragment {
                    set_int(&socket, libc::IPPROTO_IP, libc::IP_MTU_DISCOVER, libc::IP_PMTUDISC_DO)
                        .map_err(|e| setup("setting don't fragment", e))?;
                }
            }
            IpAddr::V6(_) => {
                socket
                    .set_unicast_hops_v6(probe.ttl)
                    .map_err(|e| setup("setting the hop limit", e))?;
                set_int(&socket, libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT, 1)
                    .map_err(|e| setup("asking for the reply hop limit", e))?;
            }
        }
        let identifier = AtomicU32::new(if raw { u32::from(super::random_id()) } else { UNKNOWN });
        // SAFETY: the Socket owns its descriptor, which stays open (and the same) until the
        // AsyncFd that owns the Socket is dropped.
        let fd = unsafe { AsyncFd::register(socket) }
            .map_err(|e| setup("registering", io::Error::other(e.to_string())))?;
        Ok(EchoSocket { fd, destination, raw, identifier })
    }

    fn identifier(&self) -> Option<u16> {
        u16::try_from(self.identifier.load(Ordering::Relaxed)).ok()
    }

    fn send(&self, sequence: u16, payload: &[u8]) -> Result<(), Failure> {
        let v4 = self.destination.is_ipv4();
        let mut packet = Vec::with_capacity(8 + payload.len());
        packet.extend_from_slice(&[if v4 { 8 } else { 128 }, 0, 0, 0]);
        packet.extend_from_slice(&self.identifier().unwrap_or(0).to_be_bytes());
        packet.extend_from_slice(&sequence.to_be_bytes());
        packet.extend_from_slice(payload);
        // The kernel sums ICMPv6 (and ping sockets' ICMP) itself; a raw IPv4 socket does not.
        if v4 && self.raw {
            let sum = checksum(&packet);
            packet[2..4].copy_from_slice(&sum.to_be_bytes());
        }
        let to = SockAddr::from(SocketAddr::new(self.destination, 0));
        self.fd.get_ref().send_to(&packet, &to).map_err(|e| {
            Failure::new(FailureReason::Connect, format!("sending to {}: {e}", self.destination))
        })?;
        if self.identifier().is_none() {
            // A ping socket's identifier is the port the kernel bound it to.
            let port = self.fd.get_ref().local_addr().ok().and_then(|a| a.as_socket());
            self.identifier.store(port.map_or(UNKNOWN, |a| u32::from(a.port())), Ordering::Relaxed);
        }
        Ok(())
    }

    /// The next echo reply addressed to this probe's identifier, or `None` for anything else
    /// (other ICMP messages, others' replies, a transient receive error).
    async fn receive<'b>(
        &self,
        buffer: &'b mut [MaybeUninit<u8>],
    ) -> Result<Option<Reply<'b>>, Failure> {
        let (length, from, hop_limit) = loop {
            let mut ready = self.fd.readable().await.map_err(|e| {
                Failure::new(FailureReason::Connect, format!("waiting for replies: {e}"))
            })?;
            match ready.try_io(|fd| receive_message(fd.get_ref(), buffer)) {
                Ok(Ok(received)) => break received,
                Ok(Err(e)) => {
                    // An ICMP error for an earlier datagram, for example: not ours to act on.
                    tracing::debug!("ICMP receive: {e}");
                    return Ok(None);
                }
                Err(_would_block) => continue,
            }
        };
        let at = Instant::now();
        // SAFETY: recvmsg initialised the first `length` bytes.
        let bytes: &[u8] =
            unsafe { std::slice::from_raw_parts(buffer.as_ptr().cast::<u8>(), length) };
        // A raw IPv4 socket reads the IP header too.
        let with_ip_header = self.raw && self.destination.is_ipv4();
        let Some(reply) = parse_reply(bytes, with_ip_header, self.destination.is_ipv4()) else {
            return Ok(None);
        };
        if self.raw && Some(reply.identifier) != self.identifier() {
            return Ok(None);
        }
        Ok(Some(Reply {
            from,
            sequence: reply.sequence,
            data: reply.data,
            hop_limit: reply.ttl.or(hop_limit),
            at,
        }))
    }
}

/// An echo reply as read off the wire.
#[derive(Debug, PartialEq, Eq)]
pub struct EchoReply<'a> {
    pub identifier: u16,
    pub sequence: u16,
    pub data: &'a [u8],
    /// The TTL of the IP header, when the packet has one.
    pub ttl: Option<u8>,
}

/// The echo reply in a received packet (ICMP, or ICMPv6 when not `ipv4`), after an IPv4
/// header when `with_ip_header`; `None` for anything else or anything cut short.
pub fn parse_reply(packet: &[u8], with_ip_header: bool, ipv4: bool) -> Option<EchoReply<'_>> {
    let (icmp, ttl) = if with_ip_header {
        let header = usize::from(packet.first()? & 0x0f) * 4;
        if header < 20 || packet.len() < header {
            return None;
        }
        (&packet[header..], Some(packet[8]))
    } else {
        (packet, None)
    };
    let reply_type = if ipv4 { 0 } else { 129 };
    if icmp.len() < 8 || icmp[0] != reply_type || icmp[1] != 0 {
        return None;
    }
    Some(EchoReply {
        identifier: u16::from_be_bytes([icmp[4], icmp[5]]),
        sequence: u16::from_be_bytes([icmp[6], icmp[7]]),
        data: &icmp[8..],
        ttl,
    })
}

/// An ICMP socket of the family, unprivileged if the sysctl allows, else raw; `true` for raw.
fn open_socket(ipv4: bool) -> Result<(Socket, bool), Failure> {
    let (domain, protocol) =
        if ipv4 { (Domain::IPV4, Protocol::ICMPV4) } else { (Domain::IPV6, Protocol::ICMPV6) };
    match Socket::new(domain, Type::DGRAM, Some(protocol)) {
        Ok(socket) => Ok((socket, false)),
        Err(ping_error) => match Socket::new(domain, Type::RAW, Some(protocol)) {
            Ok(socket) => Ok((socket, true)),
            Err(raw_error) => Err(permission_failure(&ping_error, &raw_error)),
        },
    }
}

/// Which ICMP sockets this process can open (for `lookout check`), or why none.
pub fn socket_access() -> Result<&'static str, Failure> {
    open_socket(true).map(|(_, raw)| if raw { "raw" } else { "unprivileged ICMP datagram" })
}

/// The failure when neither kind of ICMP socket opens: what to change for each.
fn permission_failure(ping_error: &io::Error, raw_error: &io::Error) -> Failure {
    let denied = |e: &io::Error| e.kind() == ErrorKind::PermissionDenied;
    if !denied(ping_error) && !denied(raw_error) {
        return Failure::new(
            FailureReason::Connect,
            format!("cannot open an ICMP socket: {ping_error}; raw: {raw_error}"),
        );
    }
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ping_group_range")
        .map(|r| r.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_string());
    // SAFETY: getgid cannot fail.
    let gid = unsafe { libc::getgid() };
    Failure::new(
        FailureReason::IcmpPermission,
        format!(
            "cannot open an ICMP socket: an unprivileged one needs group {gid} inside the sysctl \
             net.ipv4.ping_group_range (now \"{range}\"; e.g. sysctl -w \
             net.ipv4.ping_group_range=\"0 2147483647\"), a raw one needs the capability \
             CAP_NET_RAW ({raw_error})"
        ),
    )
}

fn set_int(
    socket: &Socket,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    set_option(socket, level, name, &value)
}

fn set_option<T>(
    socket: &Socket,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    // SAFETY: a valid descriptor and a pointer to a live value of the size given.
    let result = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Lets only echo replies through to a raw socket: every raw ICMP socket otherwise wakes for
/// every ICMP message the machine receives. Linux's ICMP_FILTER and ICMP6_FILTER (both option
/// 1) take the types to block.
fn only_echo_replies(socket: &Socket, ipv4: bool) -> io::Result<()> {
    const FILTER: libc::c_int = 1;
    if ipv4 {
        let block: u32 = !1; // everything but type 0
        set_option(socket, libc::SOL_RAW, FILTER, &block)
    } else {
        let mut block = [u32::MAX; 8];
        block[129 >> 5] &= !(1 << (129 & 31));
        set_option(socket, libc::SOL_ICMPV6, FILTER, &block)
    }
}

/// One datagram with its sender and, from the control messages, its TTL or hop limit.
fn receive_message(
    socket: &Socket,
    buffer: &mut [MaybeUninit<u8>],
) -> io::Result<(usize, IpAddr, Option<u8>)> {
    // SAFETY: zeroed sockaddr_storage and msghdr are valid; every pointer handed to recvmsg
    // points into a live buffer of the length given with it.
    unsafe {
        let mut address: libc::sockaddr_storage = std::mem::zeroed();
        let mut control = [0u64; 16];
        let mut vector =
            libc::iovec { iov_base: buffer.as_mut_ptr().cast(), iov_len: buffer.len() };
        let mut message: libc::msghdr = std::mem::zeroed();
        message.msg_name = (&mut address as *mut libc::sockaddr_storage).cast();
        message.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        message.msg_iov = &mut vector;
        message.msg_iovlen = 1;
        message.msg_control = control.as_mut_ptr().cast();
        message.msg_controllen = std::mem::size_of_val(&control) as _;
        let length = libc::recvmsg(socket.as_raw_fd(), &mut message, 0);
        if length < 0 {
            return Err(io::Error::last_os_error());
        }
        let from = match libc::c_int::from(address.ss_family) {
            libc::AF_INET => {
                let v4 = &*(&address as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>();
                IpAddr::from(u32::from_be(v4.sin_addr.s_addr).to_be_bytes())
            }
            libc::AF_INET6 => {
                let v6 = &*(&address as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>();
                IpAddr::from(v6.sin6_addr.s6_addr)
            }
            _ => return Err(io::Error::new(ErrorKind::InvalidData, "reply without an address")),
        };
        let mut hop_limit = None;
        let mut header = libc::CMSG_FIRSTHDR(&message);
        while !header.is_null() {
            let level = (*header).cmsg_level;
            let kind = (*header).cmsg_type;
            if (level == libc::IPPROTO_IP && kind == libc::IP_TTL)
                || (level == libc::IPPROTO_IPV6 && kind == libc::IPV6_HOPLIMIT)
            {
                let value = std::ptr::read_unaligned(libc::CMSG_DATA(header).cast::<libc::c_int>());
                hop_limit = u8::try_from(value).ok();
            }
            header = libc::CMSG_NXTHDR(&message, header);
        }
        Ok((length as usize, from, hop_limit))
    }
}

/// The Internet checksum (RFC 1071).
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|pair| u32::from(u16::from_be_bytes([pair[0], pair.get(1).copied().unwrap_or(0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internet_checksum() {
        // An echo request with identifier 1, sequence 1 and no data.
        let packet = [8, 0, 0, 0, 0, 1, 0, 1];
        assert_eq!(checksum(&packet), 0xf7fd);
        let mut with_sum = packet;
        with_sum[2..4].copy_from_slice(&0xf7fdu16.to_be_bytes());
        assert_eq!(checksum(&with_sum), 0);
    }

    #[test]
    fn replies() {
        let echo = [0, 0, 0xab, 0xcd, 0, 7, 1, 2, b'h', b'i'];
        let parsed = parse_reply(&echo, false, true).unwrap();
        assert_eq!((parsed.identifier, parsed.sequence, parsed.data), (7, 258, &b"hi"[..]));
        let mut with_header =
            vec![0x45, 0, 0, 0, 0, 0, 0, 0, 61, 1, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1];
        with_header.extend_from_slice(&echo);
        assert_eq!(parse_reply(&with_header, true, true).unwrap().ttl, Some(61));
        // A request, an ICMPv6 reply read as ICMP, short or lying headers: not replies.
        assert!(parse_reply(&[8, 0, 0, 0, 0, 7, 1, 2], false, true).is_none());
        assert!(parse_reply(&echo, false, false).is_none());
        assert!(parse_reply(&echo[..7], false, true).is_none());
        assert!(parse_reply(&[0x4f, 0, 0], true, true).is_none());
        assert!(parse_reply(&[0x41; 30], true, true).is_none());
    }

    #[test]
    fn targets() {
        for good in ["127.0.0.1", "::1", "[::1]", "example.org", "a-b.example"] {
            assert!(check_target(good).is_ok(), "{good}");
        }
        for bad in ["", "http://x/", "a b", "x:80", "[::1"] {
            assert!(check_target(bad).is_err(), "{bad}");
        }
    }
}
