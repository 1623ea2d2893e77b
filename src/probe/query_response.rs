//! blackbox's `query_response` dialogue over a byte stream, shared by the tcp and unix probers:
//! `expect` a line matching a regex (whose captures fill `send` and the `probe_expect_info`
//! labels), `expect_bytes` an exact byte string, `send` a line, `starttls` upgrade.

use super::tls::TlsClient;
use super::{Failure, FailureReason, Report};
use crate::config::probes::QueryStep;
use crate::config::{ConfigError, Source};
use crate::metrics::exposition::Name;
use crate::metrics::families::{
    PROBE_EXPECT_INFO, PROBE_FAILED_DUE_TO_BYTES, PROBE_FAILED_DUE_TO_REGEX,
};
use regex::{Captures, Regex};
use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader,
};

/// Longest line an `expect` reads, as Go's bufio.Scanner (which blackbox uses) allows.
const MAX_LINE: usize = 64 * 1024;

pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// One `query_response` step with its payloads decoded.
pub struct Step {
    pub expect: Option<Regex>,
    expect_bytes: Option<Vec<u8>>,
    /// `probe_expect_info` label names and their value templates.
    labels: Vec<(String, String)>,
    pub send: Option<Vec<u8>>,
    starttls: bool,
}

impl Step {
    /// `section`: the key of the module's section, for errors.
    pub fn prepare_all(
        steps: &[QueryStep],
        section: &str,
        source: &Source,
    ) -> Result<Vec<Step>, ConfigError> {
        steps
            .iter()
            .enumerate()
            .map(|(index, step)| {
                let key = format!("{section}.query_response[{index}]");
                let bytes = |value: &Option<serde_saphyr::Spanned<String>>, name: &str| {
                    value.as_ref().map(|v| source.bytes_of(v, &format!("{key}.{name}"))).transpose()
                };
                Ok(Step {
                    expect: step.expect.as_ref().map(|e| e.value.0.clone()),
                    expect_bytes: bytes(&step.expect_bytes, "expect_bytes")?
                        .filter(|b| !b.is_empty()),
                    labels: step
                        .labels
                        .iter()
                        .map(|l| (l.name.value.clone(), l.value.clone()))
                        .collect(),
                    send: bytes(&step.send, "send")?.filter(|b| !b.is_empty()),
                    starttls: step.starttls,
                })
            })
            .collect()
    }

    /// The `probe_expect_info` label names this step sets.
    pub fn label_names(&self) -> impl Iterator<Item = &str> {
        self.labels.iter().map(|(name, _)| name.as_str())
    }

    /// What to send after `expect` matched with `caps`: `send` with `${1}`-style references
    /// replaced, as Go's Regexp.Expand; and the step's `probe_expect_info` sample.
    pub fn matched(&self, caps: &Captures<'_>, report: &mut Report) -> Option<Vec<u8>> {
        if !self.labels.is_empty() {
            let labels = self
                .labels
                .iter()
                .map(|(name, template)| {
                    let mut value = String::new();
                    caps.expand(template, &mut value);
                    (Name::Owned(name.clone()), value)
                })
                .collect();
            report.set_configured(&PROBE_EXPECT_INFO, labels, 1.0);
        }
        let send = self.send.as_ref()?;
        // A binary payload has no references to fill.
        Some(match std::str::from_utf8(send) {
            Ok(template) => {
                let mut expanded = String::new();
                caps.expand(template, &mut expanded);
                expanded.into_bytes()
            }
            Err(_) => send.clone(),
        })
    }
}

/// Runs `steps` over `conn`. `server_name` names the peer for a `starttls` step.
pub async fn run(
    conn: Box<dyn Stream>,
    steps: &[Step],
    tls: &TlsClient,
    server_name: &str,
    report: &mut Report,
) -> Result<(), Failure> {
    report.set(&PROBE_FAILED_DUE_TO_REGEX, 0.0);
    report.set(&PROBE_FAILED_DUE_TO_BYTES, 0.0);
    let mut conn = BufReader::new(conn);
    let io_failure = |e: std::io::Error| Failure::new(FailureReason::QueryResponse, e.to_string());
    for (index, step) in steps.iter().enumerate() {
        let mut send = step.send.clone();
        if let Some(expect) = &step.expect {
            report.log(format_args!("step {index}: expecting {:?}", expect.as_str()));
            let mut line = Vec::new();
            loop {
                line.clear();
                let read = read_line(&mut conn, &mut line).await.map_err(io_failure)?;
                if read == 0 {
                    report.set(&PROBE_FAILED_DUE_TO_REGEX, 1.0);
                    return Err(Failure::new(
                        FailureReason::QueryResponse,
                        format!("connection closed before a line matched {:?}", expect.as_str()),
                    ));
                }
                let text = String::from_utf8_lossy(&line);
                let text = text.trim_end_matches(['\r', '\n']);
                report.log(format_args!("read {text:?}"));
                if let Some(caps) = expect.captures(text) {
                    send = step.matched(&caps, report);
                    break;
                }
            }
        }
        if let Some(expected) = &step.expect_bytes {
            report.log(format_args!("step {index}: expecting bytes {:?}", expected.escape_ascii()));
            let mut got = vec![0; expected.len()];
            if let Err(e) = conn.read_exact(&mut got).await {
                return Err(Failure::new(
                    FailureReason::QueryResponse,
                    format!("reading {} bytes: {e}", expected.len()),
                ));
            }
            if &got != expected {
                report.set(&PROBE_FAILED_DUE_TO_BYTES, 1.0);
                return Err(Failure::new(
                    FailureReason::QueryResponse,
                    format!(
                        "read {:?}, expected {:?}",
                        got.escape_ascii().to_string(),
                        expected.escape_ascii().to_string()
                    ),
                ));
            }
        }
        if let Some(send) = &send {
            report.log(format_args!("step {index}: sending {:?}", send.escape_ascii().to_string()));
            // One write, as blackbox's: the peer receives the line and its newline together,
            // never the newline alone after it has answered (PostgreSQL's SSLRequest is
            // answered with one byte and followed by the TLS handshake).
            let line = [send.as_slice(), b"\n"].concat();
            let stream = conn.get_mut();
            stream.write_all(&line).await.map_err(io_failure)?;
            stream.flush().await.map_err(io_failure)?;
        }
        if step.starttls {
            report.log(format_args!("step {index}: starting TLS"));
            // Bytes the server sent ahead of the handshake would be lost: there are none in
            // a well-behaved STARTTLS exchange.
            let plain = conn.into_inner();
            conn = BufReader::new(Box::new(tls.handshake(plain, server_name, report).await?));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::probes::ProberKind;
    use crate::config::probes::ProbesFile;
    use std::path::Path;

    fn sends(yaml: &str) -> Vec<Option<Vec<u8>>> {
        let source = Source::from_text(Path::new("probes.yaml"), yaml).unwrap();
        let file = ProbesFile::load(&source).unwrap();
        let module = file.modules.values().next().unwrap();
        assert_eq!(module.kind(), ProberKind::Tcp);
        let tcp = &module.tcp.as_ref().unwrap().value;
        let steps = Step::prepare_all(&tcp.query_response, "modules.m.tcp", &source).unwrap();
        steps.into_iter().map(|s| s.send).collect()
    }

    #[test]
    fn binary_payloads_in_block_and_flow_style() {
        let postgres = vec![0u8, 0, 0, 8, 4, 0xD2, 0x16, 0x2F];
        let block = "modules:\n  m:\n    prober: tcp\n    tcp:\n      query_response:\n        - send: !!binary AAAACATSFi8=\n        - send: plain\n";
        assert_eq!(sends(block), [Some(postgres.clone()), Some(b"plain".to_vec())]);
        let flow = "modules:\n  m: { prober: tcp, tcp: { query_response: [{ send: !!binary AAAACATSFi8= }, { send: \"!!binary\" }] } }\n";
        assert_eq!(sends(flow), [Some(postgres), Some(b"!!binary".to_vec())]);
    }

    #[test]
    fn bad_base64_is_located() {
        let yaml = "modules:\n  m:\n    prober: tcp\n    tcp:\n      query_response:\n        - send: !!binary not*base64\n";
        let source = Source::from_text(Path::new("probes.yaml"), yaml).unwrap();
        let file = ProbesFile::load(&source).unwrap();
        let tcp = &file.modules["m"].tcp.as_ref().unwrap().value;
        let error = Step::prepare_all(&tcp.query_response, "modules.m.tcp", &source)
            .err()
            .expect("refused");
        assert_eq!(error.key, "modules.m.tcp.query_response[0].send");
        assert_eq!(error.line, 6);
        assert!(error.message.contains("!!binary"), "{}", error.message);
    }
}
