//! The cap on open connections (`--web.max-connections`). At the cap a new connection takes the
//! place of the one idle the longest (waiting for its TLS handshake or its next request), or of
//! one whose client has read nothing of a response for [`STALLED_AFTER_MS`], so a scraper still
//! gets in while idle or slow clients hold every slot; when every connection is busy with a
//! request, the new one is closed instead. Connections, and the memory and file descriptors
//! they hold, stay within the cap.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::oneshot;

/// Prometheus' default for the same flag.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;

/// How long a response being written may wait for its client to read before the connection
/// counts as idle (and may be shed at the cap): a scraper reading 100 MB reads all the time.
pub const STALLED_AFTER_MS: u64 = 30_000;

pub struct Connections {
    max: usize,
    started: Instant,
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    next_id: u64,
    slots: BTreeMap<u64, Slot>,
}

struct Slot {
    activity: Arc<Activity>,
    /// Closes the connection when sent to (or dropped).
    shed: oneshot::Sender<()>,
}

/// Whether a connection is serving a request, and since when it has not.
pub struct Activity {
    requests: AtomicUsize,
    /// Milliseconds after [`Connections::started`].
    idle_since: AtomicU64,
    /// While a response body is written as its client reads it: when the client last took a
    /// piece, in milliseconds after [`Connections::started`] (0: no such body).
    streamed_at: AtomicU64,
    started: Instant,
}

/// A connection's place under the cap; it gives the place back when dropped.
pub struct Admitted {
    id: u64,
    connections: Arc<Connections>,
    pub activity: Arc<Activity>,
    /// Completes when the connection is shed to make room for a newer one.
    pub shed: oneshot::Receiver<()>,
}

impl Connections {
    pub fn new(max: usize) -> Arc<Connections> {
        Arc::new(Connections {
            max: max.max(1),
            started: Instant::now(),
            open: Mutex::new(Open::default()),
        })
    }

    /// Admits a new connection, shedding the longest idle one at the cap; `None` when every
    /// connection is busy.
    pub fn admit(self: &Arc<Self>) -> Option<Admitted> {
        let mut open = self.open.lock().expect("connections lock");
        if open.slots.len() >= self.max {
            let now = self.started.elapsed().as_millis() as u64;
            let oldest_idle = open
                .slots
                .iter()
                .filter_map(|(id, slot)| Some((slot.activity.idle_at(now)?, *id)))
                .min()
                .map(|(_, id)| id)?;
            if let Some(slot) = open.slots.remove(&oldest_idle) {
                let _ = slot.shed.send(());
            }
        }
        let id = open.next_id;
        open.next_id += 1;
        let activity = Arc::new(Activity {
            requests: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            streamed_at: AtomicU64::new(0),
            started: self.started,
        });
        activity.mark_idle();
        let (shed, shed_receiver) = oneshot::channel();
        open.slots.insert(id, Slot { activity: activity.clone(), shed });
        Some(Admitted { id, connections: self.clone(), activity, shed: shed_receiver })
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.connections.open.lock().expect("connections lock").slots.remove(&self.id);
    }
}

impl Activity {
    /// Marks a request in progress until the returned guard is dropped.
    pub fn busy(self: &Arc<Self>) -> Busy {
        self.requests.fetch_add(1, Ordering::AcqRel);
        Busy(self.clone())
    }

    fn mark_idle(&self) {
        self.idle_since.store(self.now(), Ordering::Release);
    }

    fn now(&self) -> u64 {
        // At least 1: 0 stands for "no body being written".
        (self.started.elapsed().as_millis() as u64).max(1)
    }

    /// Since when the connection has been idle at `now`, if it counts as idle: no request, or
    /// a response whose client has stalled.
    fn idle_at(&self, now: u64) -> Option<u64> {
        if self.requests.load(Ordering::Acquire) == 0 {
            return Some(self.idle_since.load(Ordering::Acquire));
        }
        let streamed_at = self.streamed_at.load(Ordering::Acquire);
        (streamed_at > 0 && now.saturating_sub(streamed_at) >= STALLED_AFTER_MS)
            .then_some(streamed_at)
    }
}

pub struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.streamed_at.store(0, Ordering::Release);
        self.0.mark_idle();
        self.0.requests.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body written as its client reads it, keeping its connection busy until it is all
/// sent, and noting each piece the client takes.
pub struct Streaming {
    body: crate::web::ResponseBody,
    busy: Busy,
}

impl Streaming {
    pub fn new(body: crate::web::ResponseBody, busy: Busy) -> Streaming {
        busy.0.streamed_at.store(busy.0.now(), Ordering::Release);
        Streaming { body, busy }
    }
}

impl hyper::body::Body for Streaming {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, Self::Error>>> {
        let polled = std::pin::Pin::new(&mut self.body).poll_frame(cx);
        if polled.is_ready() {
            let activity = &self.busy.0;
            activity.streamed_at.store(activity.now(), Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_idle_connection_makes_room() {
        let connections = Connections::new(2);
        let mut first = connections.admit().unwrap();
        let second = connections.admit().unwrap();
        let _busy = second.activity.busy();
        let mut third = connections.admit().expect("the idle first one is shed");
        assert!(first.shed.try_recv().is_ok(), "first was told to close");
        let _also_busy = third.activity.busy();
        assert!(connections.admit().is_none(), "all busy: no room");
        drop(first);
        assert!(third.shed.try_recv().is_err(), "third still open");
        assert_eq!(connections.open.lock().unwrap().slots.len(), 2);
    }

    #[test]
    fn a_response_being_read_keeps_its_connection_until_its_reader_stalls() {
        use http_body_util::BodyExt;
        let connections = Connections::new(1);
        let scrape = connections.admit().unwrap();
        let body = http_body_util::Empty::<bytes::Bytes>::new().boxed();
        let streaming = Streaming::new(body, scrape.activity.busy());
        let now = scrape.activity.now();
        assert_eq!(scrape.activity.idle_at(now), None, "busy while it is read");
        assert!(connections.admit().is_none(), "not shed for a newcomer");
        let stalled = scrape.activity.idle_at(now + STALLED_AFTER_MS);
        assert!(stalled.is_some_and(|since| since <= now), "stalled: counts as idle");
        drop(streaming);
        assert!(scrape.activity.idle_at(now).is_some(), "idle once the body is sent");
    }
}
