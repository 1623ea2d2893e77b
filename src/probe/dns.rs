//! The dns prober: blackbox's `prober: dns` — one query over UDP, TCP or DNS over TLS, its
//! rcode checked against `valid_rcodes` and each section's records against regexes.
//!
//! Messages are built and read by hickory-proto, so no DNS parsing lives here. The regexes of
//! `validate_*_rrs` are matched against each record written exactly as blackbox prints it (Go's
//! miekg/dns `RR.String()`: owner, TTL, class, type and data, tab-separated, TXT strings
//! quoted), so regexes written for blackbox keep working; [`record_text`] is that printer.

use super::tls::TlsClient;
use super::{dial, Failure, FailureReason, Guard, Report};
use crate::config::probes::{DnsModule, RecordValidator};
use crate::config::values::IpProtocol;
use crate::config::{ConfigError, Source};
use crate::metrics::families::{
    PROBE_DNS_ADDITIONAL_RRS, PROBE_DNS_ANSWER_RRS, PROBE_DNS_AUTHORITY_RRS,
    PROBE_DNS_DURATION_SECONDS, PROBE_DNS_QUERY_SUCCEEDED, PROBE_DNS_SERIAL,
};
use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Response codes by the names blackbox (miekg/dns) gives them.
const RCODES: [(&str, u16); 20] = [
    ("NOERROR", 0),
    ("FORMERR", 1),
    ("SERVFAIL", 2),
    ("NXDOMAIN", 3),
    ("NOTIMP", 4),
    ("REFUSED", 5),
    ("YXDOMAIN", 6),
    ("YXRRSET", 7),
    ("NXRRSET", 8),
    ("NOTAUTH", 9),
    ("NOTZONE", 10),
    ("BADSIG", 16),
    ("BADVERS", 16),
    ("BADKEY", 17),
    ("BADTIME", 18),
    ("BADMODE", 19),
    ("BADNAME", 20),
    ("BADALG", 21),
    ("BADTRUNC", 22),
    ("BADCOOKIE", 23),
];

/// A module's `dns:` section with its query built and its values checked.
pub struct DnsProbe {
    query: Query,
    recursion_desired: bool,
    tcp: bool,
    dns_over_tls: Option<TlsClient>,
    valid_rcodes: Vec<u16>,
    /// Answer, authority, additional.
    validators: [(&'static str, RecordValidator); 3],
    preferred_ip_protocol: IpProtocol,
    ip_protocol_fallback: bool,
    source_ip_address: Option<IpAddr>,
}

impl DnsProbe {
    pub fn prepare(config: DnsModule, source: &Source) -> Result<DnsProbe, ConfigError> {
        let name = Name::from_str_relaxed(&config.query_name.value)
            .map(|mut n| {
                n.set_fqdn(true);
                n
            })
            .map_err(|e| {
                source.error_at_span(
                    &config.query_name,
                    format!("invalid query_name {:?}: {e}", config.query_name.value),
                )
            })?;
        let record_type = match &config.query_type {
            None => RecordType::ANY,
            Some(text) => RecordType::from_str(&text.value)
                .ok()
                .filter(|t| !matches!(t, RecordType::Unknown(_)))
                .ok_or_else(|| {
                    source.error_at_span(
                        text,
                        format!("unknown query_type {:?} (A, AAAA, MX, SOA, TXT, …)", text.value),
                    )
                })?,
        };
        let class = match &config.query_class {
            None => DNSClass::IN,
            Some(text) => match text.value.as_str() {
                "IN" | "CH" | "HS" | "NONE" | "ANY" => {
                    DNSClass::from_str(&text.value).expect("a known class")
                }
                "CS" => DNSClass::Unknown(2),
                other => {
                    return Err(source.error_at_span(
                        text,
                        format!("unknown query_class {other:?} (IN, CS, CH, HS, NONE, ANY)"),
                    ))
                }
            },
        };
        let mut query = Query::query(name, record_type);
        query.set_query_class(class);
        let mut valid_rcodes = Vec::with_capacity(config.valid_rcodes.len().max(1));
        for rcode in &config.valid_rcodes {
            let code = RCODES.iter().find(|(n, _)| *n == rcode.value).ok_or_else(|| {
                source.error_at_span(
                    rcode,
                    format!("unknown rcode {:?} (NOERROR, NXDOMAIN, SERVFAIL, …)", rcode.value),
                )
            })?;
            valid_rcodes.push(code.1);
        }
        if valid_rcodes.is_empty() {
            valid_rcodes.push(0);
        }
        let tcp = match &config.transport_protocol {
            None => false,
            Some(p) if p.value == "udp" => false,
            Some(p) if p.value == "tcp" => true,
            Some(p) => {
                return Err(source.error_at_span(
                    p,
                    format!("transport_protocol must be udp or tcp, not {:?}", p.value),
                ))
            }
        };
        if config.dns_over_tls && !tcp {
            let place = config.transport_protocol.as_ref().unwrap_or(&config.query_name);
            return Err(source
                .error_at_span(place, "dns_over_tls needs transport_protocol: tcp (as blackbox)"));
        }
        let dns_over_tls = if config.dns_over_tls {
            Some(TlsClient::new(&config.tls_config, &[], source)?)
        } else {
            None
        };
        Ok(DnsProbe {
            query,
            recursion_desired: config.recursion_desired,
            tcp,
            dns_over_tls,
            valid_rcodes,
            validators: [
                ("answer", config.validate_answer_rrs),
                ("authority", config.validate_authority_rrs),
                ("additional", config.validate_additional_rrs),
            ],
            preferred_ip_protocol: config.preferred_ip_protocol,
            ip_protocol_fallback: config.ip_protocol_fallback,
            source_ip_address: config.source_ip_address,
        })
    }
}

/// `host` or `host:port` (as Go's net.SplitHostPort; an unbracketed IPv6 address is a host).
pub fn split_target(target: &str) -> Result<(&str, Option<u16>), Failure> {
    let (host, port) = match super::tcp::split_host_port(target) {
        Ok((host, port)) => (host, Some(port)),
        Err(_) => (target, None),
    };
    dial::check_host(host)?;
    Ok((host, port))
}

pub async fn probe(
    target: &str,
    probe: &DnsProbe,
    guard: Option<&Guard<'_>>,
    report: &mut Report,
) -> Result<(), Failure> {
    for phase in ["resolve", "connect", "request"] {
        phase_time(report, phase, Duration::ZERO);
    }
    for family in [
        &PROBE_DNS_ANSWER_RRS,
        &PROBE_DNS_AUTHORITY_RRS,
        &PROBE_DNS_ADDITIONAL_RRS,
        &PROBE_DNS_QUERY_SUCCEEDED,
    ] {
        report.set(family, 0.0);
    }
    let (host, port) = split_target(target)?;
    let port = port.unwrap_or(if probe.dns_over_tls.is_some() { 853 } else { 53 });
    let resolved =
        dial::resolve(host, probe.preferred_ip_protocol, probe.ip_protocol_fallback, report)
            .await?;
    dial::record(&resolved, report);
    phase_time(report, "resolve", resolved.lookup);
    let addr = SocketAddr::new(resolved.ip, port);
    if let Some(guard) = guard {
        guard.check_address(addr)?;
    }

    let mut request = Message::new();
    let id = super::random_id();
    request
        .set_id(id)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(probe.recursion_desired)
        .add_query(probe.query.clone());
    let wire = request.to_vec().map_err(|e| {
        Failure::new(FailureReason::InvalidTarget, format!("encoding the query: {e}"))
    })?;
    report.log(format_args!(
        "querying {addr} over {} for {} {} {}",
        match (&probe.dns_over_tls, probe.tcp) {
            (Some(_), _) => "TLS",
            (None, true) => "TCP",
            (None, false) => "UDP",
        },
        probe.query.name(),
        probe.query.query_class(),
        probe.query.query_type()
    ));
    let response = if probe.tcp {
        exchange_tcp(addr, host, &wire, id, probe, report).await?
    } else {
        exchange_udp(addr, &wire, id, probe.source_ip_address, report).await?
    };
    if response.truncated() {
        report.log("the answer is truncated (TC): transport_protocol: tcp would get all of it");
    }
    // hickory keeps an OPT record apart; blackbox counts it among the additional records.
    let additional = response.additionals().len() + usize::from(response.extensions().is_some());
    report.set(&PROBE_DNS_ANSWER_RRS, response.answers().len() as f64);
    report.set(&PROBE_DNS_AUTHORITY_RRS, response.name_servers().len() as f64);
    report.set(&PROBE_DNS_ADDITIONAL_RRS, additional as f64);
    report.set(&PROBE_DNS_QUERY_SUCCEEDED, 1.0);
    if probe.query.query_type() == RecordType::SOA {
        let serial = response.answers().iter().rev().find_map(|r| match r.data() {
            RData::SOA(soa) => Some(soa.serial()),
            _ => None,
        });
        report.set(&PROBE_DNS_SERIAL, serial.map_or(0.0, f64::from));
    }

    let rcode = u16::from(response.response_code());
    if !probe.valid_rcodes.contains(&rcode) {
        let name = RCODES.iter().find(|(_, c)| *c == rcode).map_or("unknown", |(n, _)| n);
        return Err(Failure::new(
            FailureReason::DnsRcode,
            format!("rcode {name} ({rcode}) is not one of valid_rcodes"),
        ));
    }
    let sections = [response.answers(), response.name_servers(), response.additionals()];
    for ((section, validator), records) in probe.validators.iter().zip(sections) {
        let texts: Vec<String> = records.iter().map(record_text).collect();
        for text in &texts {
            report.log(format_args!("{section}: {text}"));
        }
        validate(&texts, validator).map_err(|why| {
            Failure::new(FailureReason::DnsRecordRegex, format!("{section}: {why}"))
        })?;
    }
    Ok(())
}

async fn exchange_udp(
    addr: SocketAddr,
    wire: &[u8],
    id: u16,
    source: Option<IpAddr>,
    report: &mut Report,
) -> Result<Message, Failure> {
    let failed =
        |what: &str, e: std::io::Error| dial::connect_failure(&e, format!("{what} {addr}: {e}"));
    let started = Instant::now();
    let local = source.unwrap_or(if addr.is_ipv4() {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    });
    let socket = tokio::net::UdpSocket::bind(SocketAddr::new(local, 0))
        .await
        .map_err(|e| failed("binding a socket for", e))?;
    // A connected socket receives datagrams from `addr` only: a reply from another host
    // never reaches the probe.
    socket.connect(addr).await.map_err(|e| failed("connecting to", e))?;
    phase_time(report, "connect", started.elapsed());
    let requested = Instant::now();
    socket.send(wire).await.map_err(|e| failed("sending to", e))?;
    let mut buffer = vec![0u8; 65_535];
    loop {
        let length = socket.recv(&mut buffer).await.map_err(|e| failed("reading from", e))?;
        match read_reply(&buffer[..length], id) {
            Ok(Some(message)) => {
                phase_time(report, "request", requested.elapsed());
                return Ok(message);
            }
            Ok(None) => report.log("ignored a datagram that is not the reply to this query"),
            Err(failure) => {
                phase_time(report, "request", requested.elapsed());
                return Err(failure);
            }
        }
    }
}

async fn exchange_tcp(
    addr: SocketAddr,
    host: &str,
    wire: &[u8],
    id: u16,
    probe: &DnsProbe,
    report: &mut Report,
) -> Result<Message, Failure> {
    let started = Instant::now();
    let stream = dial::connect(addr, probe.source_ip_address, report).await?;
    match &probe.dns_over_tls {
        Some(tls) => {
            let stream = tls.handshake(stream, tls.server_name().unwrap_or(host), report).await?;
            phase_time(report, "connect", started.elapsed());
            framed_exchange(stream, wire, id, report).await
        }
        None => {
            phase_time(report, "connect", started.elapsed());
            framed_exchange(stream, wire, id, report).await
        }
    }
}

/// A query and its reply with the two-byte length prefix of DNS over TCP.
async fn framed_exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    wire: &[u8],
    id: u16,
    report: &mut Report,
) -> Result<Message, Failure> {
    let failed =
        |e: std::io::Error| Failure::new(FailureReason::Connect, format!("DNS over TCP: {e}"));
    let requested = Instant::now();
    let length = u16::try_from(wire.len()).expect("a query fits in 64 KiB");
    let mut framed = Vec::with_capacity(wire.len() + 2);
    framed.extend_from_slice(&length.to_be_bytes());
    framed.extend_from_slice(wire);
    stream.write_all(&framed).await.map_err(failed)?;
    stream.flush().await.map_err(failed)?;
    loop {
        let length = stream.read_u16().await.map_err(failed)?;
        let mut buffer = vec![0u8; usize::from(length)];
        stream.read_exact(&mut buffer).await.map_err(failed)?;
        if let Some(message) = read_reply(&buffer, id).inspect_err(|_| {
            phase_time(report, "request", requested.elapsed());
        })? {
            phase_time(report, "request", requested.elapsed());
            return Ok(message);
        }
        report.log("ignored a message that is not the reply to this query");
    }
}

/// The reply to query `id`, `None` for another message, a failure for one that cannot be read.
fn read_reply(bytes: &[u8], id: u16) -> Result<Option<Message>, Failure> {
    if bytes.len() < 2 || u16::from_be_bytes([bytes[0], bytes[1]]) != id {
        return Ok(None);
    }
    let message = Message::from_vec(bytes).map_err(|e| {
        let truncated = bytes.get(2).is_some_and(|flags| flags & 0x02 != 0);
        let hint = if truncated { " (truncated: try transport_protocol: tcp)" } else { "" };
        Failure::new(FailureReason::Dns, format!("unreadable DNS reply{hint}: {e}"))
    })?;
    Ok((message.message_type() == MessageType::Response).then_some(message))
}

/// blackbox's checks of one section, in its order.
fn validate(records: &[String], v: &RecordValidator) -> Result<(), String> {
    if records.is_empty() && !v.fail_if_not_matches_regexp.is_empty() {
        return Err("fail_if_not_matches_regexp is set but there are no records".into());
    }
    if records.is_empty() && !v.fail_if_none_matches_regexp.is_empty() {
        return Err("fail_if_none_matches_regexp is set but there are no records".into());
    }
    for record in records {
        if let Some(p) = v.fail_if_matches_regexp.iter().find(|p| p.0.is_match(record)) {
            return Err(format!("{record:?} matched {:?}", p.0.as_str()));
        }
        if let Some(p) = v.fail_if_not_matches_regexp.iter().find(|p| !p.0.is_match(record)) {
            return Err(format!("{record:?} did not match {:?}", p.0.as_str()));
        }
    }
    // What blackbox does (0.23 and upstream alike), whatever the name suggests: the probe
    // fails unless every record matches every one of these regexes.
    for p in &v.fail_if_all_match_regexp {
        if let Some(record) = records.iter().find(|r| !p.0.is_match(r)) {
            return Err(format!(
                "{record:?} did not match {:?} (fail_if_all_match_regexp)",
                p.0.as_str()
            ));
        }
    }
    if !v.fail_if_none_matches_regexp.is_empty()
        && !records.iter().any(|r| v.fail_if_none_matches_regexp.iter().any(|p| p.0.is_match(r)))
    {
        return Err("no record matched any of fail_if_none_matches_regexp".into());
    }
    Ok(())
}

/// A record as Go's miekg/dns `RR.String()` writes it: `owner\tTTL\tCLASS\tTYPE\tDATA`.
pub fn record_text(record: &Record) -> String {
    // Types and classes without a name are written as RFC 3597 says, as miekg/dns does.
    let kind = match record.record_type() {
        RecordType::Unknown(code) => format!("TYPE{code}"),
        known => known.to_string(),
    };
    let class = match record.dns_class() {
        DNSClass::Unknown(code) => format!("CLASS{code}"),
        known => known.to_string(),
    };
    let mut text = format!("{}\t{}\t{class}\t{kind}\t", record.name(), record.ttl());
    let _ = match record.data() {
        RData::A(a) => write!(text, "{a}"),
        RData::AAAA(aaaa) => write!(text, "{aaaa}"),
        RData::NS(name) => write!(text, "{name}"),
        RData::CNAME(name) => write!(text, "{name}"),
        RData::PTR(name) => write!(text, "{name}"),
        RData::MX(mx) => write!(text, "{} {}", mx.preference(), mx.exchange()),
        RData::SOA(soa) => write!(
            text,
            "{} {} {} {} {} {} {}",
            soa.mname(),
            soa.rname(),
            soa.serial(),
            soa.refresh() as u32,
            soa.retry() as u32,
            soa.expire() as u32,
            soa.minimum()
        ),
        RData::SRV(srv) => {
            write!(text, "{} {} {} {}", srv.priority(), srv.weight(), srv.port(), srv.target())
        }
        RData::TXT(txt) => {
            let quoted: Vec<String> = txt.txt_data().iter().map(|s| quote(s)).collect();
            write!(text, "{}", quoted.join(" "))
        }
        RData::Unknown { rdata, .. } => {
            let data = rdata.anything();
            let hex: String = data.iter().map(|b| format!("{b:02x}")).collect();
            write!(text, "\\# {} {hex}", data.len())
        }
        other => write!(text, "{other}"),
    };
    text
}

/// A character-string as miekg/dns quotes it: `"`, `\` escaped, unprintable bytes as `\DDD`.
fn quote(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    for &b in bytes {
        match b {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(char::from(b));
            }
            0x20..=0x7e => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "\\{b:03}");
            }
        }
    }
    out.push('"');
    out
}

fn phase_time(report: &mut Report, phase: &str, duration: Duration) {
    report.set_labeled(&PROBE_DNS_DURATION_SECONDS, [phase.to_string()], duration.as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::{MX, SOA, TXT};

    fn name(text: &str) -> Name {
        Name::from_str(text).unwrap()
    }

    #[test]
    fn records_print_as_miekg() {
        let a = Record::from_rdata(
            name("www.example.org."),
            300,
            RData::A("192.0.2.1".parse().unwrap()),
        );
        assert_eq!(record_text(&a), "www.example.org.\t300\tIN\tA\t192.0.2.1");
        let mx = Record::from_rdata(
            name("example.org."),
            60,
            RData::MX(MX::new(10, name("mail.example.org."))),
        );
        assert_eq!(record_text(&mx), "example.org.\t60\tIN\tMX\t10 mail.example.org.");
        let soa = SOA::new(
            name("ns1.example.org."),
            name("hostmaster.example.org."),
            2024010101,
            3600,
            900,
            604800,
            300,
        );
        let soa = Record::from_rdata(name("example.org."), 3600, RData::SOA(soa));
        assert_eq!(
            record_text(&soa),
            "example.org.\t3600\tIN\tSOA\tns1.example.org. hostmaster.example.org. 2024010101 3600 900 604800 300"
        );
        let txt = TXT::new(vec!["v=spf1 -all".into(), "say \"hi\"".into()]);
        let txt = Record::from_rdata(name("example.org."), 5, RData::TXT(txt));
        assert_eq!(
            record_text(&txt),
            "example.org.\t5\tIN\tTXT\t\"v=spf1 -all\" \"say \\\"hi\\\"\""
        );
        let unknown = RData::Unknown {
            code: RecordType::Unknown(65280),
            rdata: hickory_proto::rr::rdata::NULL::with(vec![10, 11, 12, 13]),
        };
        let unknown = Record::from_rdata(name("x.example."), 1, unknown);
        assert_eq!(record_text(&unknown), "x.example.\t1\tIN\tTYPE65280\t\\# 4 0a0b0c0d");
    }

    #[test]
    fn targets() {
        assert_eq!(split_target("127.0.0.1:5353").unwrap(), ("127.0.0.1", Some(5353)));
        assert_eq!(split_target("ns.example").unwrap(), ("ns.example", None));
        assert_eq!(split_target("::1").unwrap(), ("::1", None));
        assert!(split_target("a b").is_err());
    }
}
