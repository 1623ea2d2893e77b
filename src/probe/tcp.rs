//! The tcp prober: blackbox's `prober: tcp`: connect, optionally TLS, then a scripted
//! dialogue of `expect` regexes and `send` lines, with STARTTLS upgrades in between.

use super::tls::TlsClient;
use super::{dial, Failure, FailureReason, Guard, Report};
use crate::config::probes::TcpModule;
use crate::config::{ConfigError, Source};
use crate::metrics::families::PROBE_FAILED_DUE_TO_REGEX;
use std::net::SocketAddr;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

/// Longest line an `expect` reads, as Go's bufio.Scanner (which blackbox uses) allows.
const MAX_LINE: usize = 64 * 1024;

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// A module's `tcp:` section with its TLS client built.
pub struct TcpProbe {
    config: TcpModule,
    tls: TlsClient,
}

impl TcpProbe {
    pub fn prepare(config: TcpModule, source: &Source) -> Result<TcpProbe, ConfigError> {
        let tls = TlsClient::new(&config.tls_config, &[], source)?;
        Ok(TcpProbe { config, tls })
    }
}

pub async fn probe(
    target: &str,
    probe: &TcpProbe,
    guard: Option<&Guard<'_>>,
    report: &mut Report,
) -> Result<(), Failure> {
    let TcpProbe { config, tls } = probe;
    let (host, port) = split_host_port(target)?;
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
    let mut conn: BufReader<Box<dyn Stream>> = if config.tls {
        BufReader::new(Box::new(
            tls.handshake(stream, tls.server_name().unwrap_or(host), report).await?,
        ))
    } else {
        BufReader::new(Box::new(stream))
    };
    let io_failure = |e: std::io::Error| Failure::new(FailureReason::QueryResponse, e.to_string());
    for (step, query) in config.query_response.iter().enumerate() {
        let mut captured: Option<String> = None;
        if let Some(expect) = &query.expect {
            report.log(format_args!("step {step}: expecting {:?}", expect.0.as_str()));
            let mut line = Vec::new();
            loop {
                line.clear();
                let read = read_line(&mut conn, &mut line).await.map_err(io_failure)?;
                if read == 0 {
                    report.set(&PROBE_FAILED_DUE_TO_REGEX, 1.0);
                    return Err(Failure::new(
                        FailureReason::QueryResponse,
                        format!("connection closed before a line matched {:?}", expect.0.as_str()),
                    ));
                }
                let text = String::from_utf8_lossy(&line);
                let text = text.trim_end_matches(['\r', '\n']);
                report.log(format_args!("read {text:?}"));
                if let Some(caps) = expect.0.captures(text) {
                    if let Some(send) = &query.send {
                        let mut expanded = String::new();
                        caps.expand(send, &mut expanded);
                        captured = Some(expanded);
                    }
                    break;
                }
            }
        }
        if let Some(send) = captured.as_deref().or(query.send.as_deref()) {
            report.log(format_args!("step {step}: sending {send:?}"));
            let stream = conn.get_mut();
            stream.write_all(send.as_bytes()).await.map_err(io_failure)?;
            stream.write_all(b"\n").await.map_err(io_failure)?;
            stream.flush().await.map_err(io_failure)?;
        }
        if query.starttls {
            report.log(format_args!("step {step}: starting TLS"));
            let plain = conn.into_inner();
            conn = BufReader::new(Box::new(
                tls.handshake(plain, tls.server_name().unwrap_or(host), report).await?,
            ));
        }
    }
    Ok(())
}

/// Reads up to and including `\n`, refusing lines longer than [`MAX_LINE`].
async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
) -> std::io::Result<usize> {
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(line.len());
        }
        let (take, done) = match memchr::memchr(b'\n', available) {
            Some(i) => (i + 1, true),
            None => (available.len(), false),
        };
        line.extend_from_slice(&available[..take]);
        reader.consume(take);
        if done {
            return Ok(line.len());
        }
        if line.len() > MAX_LINE {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("line longer than {MAX_LINE} bytes"),
            ));
        }
    }
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
