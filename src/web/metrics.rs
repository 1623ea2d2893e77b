//! `/metrics`: the exposition written straight into the response a chunk at a time, gzip-encoded
//! when asked, so a scrape of ten thousand probes never holds the whole text (or a copy of every
//! probe's families) in memory.
//!
//! Probe families come first, each family once with the samples of every probe that has it,
//! written from the compact results with the probe's identity labels in front; then the log
//! sources' and lookout's own families.

use crate::app::App;
use crate::metrics::exposition::{self, Family, Format};
use crate::metrics::families::PROBE_FAMILIES;
use crate::probe::scheduler::StoredResult;
use bytes::Bytes;
use flate2::write::GzEncoder;
use hyper::body::{Body, Frame, SizeHint};
use std::convert::Infallible;
use std::io::Write;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// Text gathered before it is compressed or sent: large enough that a chunk's framing is noise.
const CHUNK_BYTES: usize = 64 * 1024;

/// The exposition of the moment it was asked for, written as the client reads it.
pub struct MetricsBody {
    app: Arc<App>,
    format: Format,
    /// Every probe's last result, taken when the request came.
    results: Vec<Arc<StoredResult>>,
    /// Where the writing is: a family of [`PROBE_FAMILIES`] and a result within it.
    family: usize,
    result: usize,
    header_written: bool,
    /// The log sources' and lookout's own families, written after the probes', a family at a
    /// time. Gathered only once the probes' are written: a client that stops reading holds the
    /// results (a pointer each), not a copy of every self-metric series.
    rest: Option<std::vec::IntoIter<Family>>,
    /// Everything is written (OpenMetrics' `# EOF` included).
    ended: bool,
    gzip: Option<GzEncoder<Vec<u8>>>,
    done: bool,
}

impl MetricsBody {
    pub fn new(app: Arc<App>, format: Format, gzip: bool) -> MetricsBody {
        MetricsBody {
            format,
            results: app.results.all(),
            app,
            family: 0,
            result: 0,
            header_written: false,
            rest: None,
            ended: false,
            gzip: gzip.then(|| GzEncoder::new(Vec::new(), flate2::Compression::fast())),
            done: false,
        }
    }

    /// The log sources' and lookout's own families, as they are now.
    fn rest_families(app: &App) -> Vec<Family> {
        let config = app.config();
        let shard = app.metrics.shard(config.shard, config.jobs.len());
        let own = app.metrics.collect().into_iter().chain(shard);
        exposition::merge(app.logs.families().into_iter().chain(own))
    }

    /// The next piece of text, about [`CHUNK_BYTES`] long; empty once all is written.
    fn next_text(&mut self) -> String {
        let mut out = String::with_capacity(CHUNK_BYTES + 4096);
        while out.len() < CHUNK_BYTES && self.family < PROBE_FAMILIES.len() {
            let def = PROBE_FAMILIES[self.family];
            let Some(result) = self.results.get(self.result) else {
                (self.family, self.result, self.header_written) = (self.family + 1, 0, false);
                continue;
            };
            for sample in result.outcome.samples_of(self.family) {
                if !self.header_written {
                    exposition::write_header(&mut out, def.name, def.help, def.kind, self.format);
                    self.header_written = true;
                }
                exposition::write_sample_name(&mut out, def.name, def.kind, "");
                let identity = result.job.identity_pairs();
                let own = sample.labels.iter().flat_map(|l| l.iter());
                let own = own.map(|(name, value)| (name.as_ref(), value.as_str()));
                exposition::write_label_pairs(&mut out, identity.chain(own));
                out.push(' ');
                exposition::write_value(&mut out, sample.value);
                out.push('\n');
            }
            self.result += 1;
        }
        while out.len() < CHUNK_BYTES && !self.ended {
            let app = &self.app;
            let rest = self.rest.get_or_insert_with(|| Self::rest_families(app).into_iter());
            match rest.next() {
                Some(family) => {
                    exposition::encode_into(&mut out, std::slice::from_ref(&family), self.format)
                }
                None => {
                    if self.format == Format::OpenMetrics {
                        out.push_str("# EOF\n");
                    }
                    self.ended = true;
                }
            }
        }
        out
    }
}

impl Body for MetricsBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        while !self.done {
            let text = self.next_text();
            let finished = text.is_empty();
            let bytes = match &mut self.gzip {
                None => text.into_bytes(),
                Some(encoder) if finished => {
                    let encoder = std::mem::replace(
                        encoder,
                        GzEncoder::new(Vec::new(), flate2::Compression::fast()),
                    );
                    encoder.finish().unwrap_or_default()
                }
                Some(encoder) => {
                    // Writing into a Vec cannot fail.
                    let _ = encoder.write_all(text.as_bytes());
                    std::mem::take(encoder.get_mut())
                }
            };
            self.done = finished;
            if !bytes.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(Bytes::from(bytes)))));
            }
        }
        Poll::Ready(None)
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}
